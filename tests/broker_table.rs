//! The broker behaviour table of the book (docs/src/brokers-measured.md), measured on every run.
//!
//! [`measure`] starts each [`BrokerKind`] (TLS, password, throwaway CA) and probes, with
//! rumqttc 0.25 v5 clients and one byte-level connection, what differs between brokers: the
//! takeover signal, shared-subscription dispatch, an offline persistent member's share, session
//! expiry, the per-client queue limit, whether the client's Receive Maximum is honoured, and the
//! CONNACK's capabilities. `broker_table_is_current` renders the results and compares them with
//! the block between `<!-- brokers-measured:start … -->` and `<!-- brokers-measured:end -->` in
//! the page: a broker upgrade (or a new kind) that behaves differently fails the test. After a
//! deliberate change, rewrite the block with
//! `UPDATE_BOOK=1 cargo test -p scenario-tests --test broker_table`.
//!
//! Every cell is a count or a category, never a time, so the table is the same on a loaded
//! machine. Waits are for an expected count, or for a quiet period of [`QUIET`] when the answer
//! may be "nothing more".

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use mosquitto_harness::rumqttc::v5::mqttbytes::v5::{ConnAck, Packet, Publish};
use mosquitto_harness::rumqttc::v5::mqttbytes::QoS;
use mosquitto_harness::rumqttc::v5::{Client, Connection, Event, MqttOptions};
use mosquitto_harness::{
    publish_blocking_to, BrokerKind, KindOptions, RawConnection, RawEvent, TestBroker,
};

/// "Nothing more is coming": no message for this long (generous on a loaded 2-core machine;
/// every wait that expects a count returns as soon as it is reached).
const QUIET: Duration = Duration::from_secs(3);

/// Upper bound on any single wait.
const WAIT: Duration = Duration::from_secs(30);

/// The queue limit the queue probe configures on every kind.
const QUEUE_LIMIT: u32 = 100;

/// The Receive Maximum the flow-control probe announces.
const RECEIVE_MAXIMUM: u16 = 10;

/// One broker's row.
#[derive(Debug, Clone)]
struct Row {
    version: String,
    takeover: String,
    dispatch: String,
    offline_share: String,
    expiry: String,
    queue: String,
    receive_maximum: String,
    connack: String,
}

// ---------------------------------------------------------------------------------------------
// Small rumqttc helpers

/// A connected client: its handle, its connection and the CONNACK.
struct Session {
    client: Client,
    connection: Connection,
    connack: ConnAck,
}

/// Connects with `options` and waits for the CONNACK.
fn connect(options: MqttOptions) -> Session {
    let (client, mut connection) = Client::new(options, 1000);
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match connection.recv_timeout(left) {
            Ok(Ok(Event::Incoming(Packet::ConnAck(connack)))) => {
                return Session {
                    client,
                    connection,
                    connack,
                }
            }
            Ok(Ok(_)) => {}
            other => panic!("no CONNACK: {other:?}"),
        }
    }
}

/// Options for `id`: clean start or not, a session expiry, a Receive Maximum, manual acks.
fn options(
    broker: &TestBroker,
    id: &str,
    clean: bool,
    expiry: Option<u32>,
    receive_maximum: Option<u16>,
) -> MqttOptions {
    let mut options = broker.mqtt_options(id).expect("client options");
    options
        .set_clean_start(clean)
        .set_session_expiry_interval(expiry)
        .set_receive_maximum(receive_maximum)
        .set_manual_acks(receive_maximum.is_some());
    options
}

impl Session {
    fn subscribe(&mut self, filter: &str) {
        self.client
            .subscribe(filter, QoS::AtLeastOnce)
            .expect("queue SUBSCRIBE");
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.connection.recv_timeout(left) {
                Ok(Ok(Event::Incoming(Packet::SubAck(_)))) => return,
                Ok(Ok(_)) => {}
                other => panic!("no SUBACK for {filter}: {other:?}"),
            }
        }
    }

    /// Sends DISCONNECT (the session stays if it has an expiry) and lets the socket close.
    fn leave(mut self) {
        let _ = self.client.disconnect();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            match self.connection.recv_timeout(Duration::from_millis(500)) {
                Ok(Ok(Event::Outgoing(mosquitto_harness::rumqttc::Outgoing::Disconnect))) => {
                    // Give the DISCONNECT a moment on the wire before the socket is dropped.
                    let _ = self.connection.recv_timeout(Duration::from_millis(200));
                    return;
                }
                Ok(Ok(_)) => {}
                _ => return,
            }
        }
    }

    /// Receives PUBLISHes until `enough` arrived or nothing came for [`QUIET`].
    fn collect(&mut self, held: &mut Vec<Publish>, enough: usize) {
        let deadline = Instant::now() + WAIT;
        while held.len() < enough && Instant::now() < deadline {
            match self.connection.recv_timeout(QUIET) {
                Ok(Ok(Event::Incoming(Packet::Publish(publish)))) => held.push(publish),
                Ok(Ok(_)) => {}
                Ok(Err(err)) => panic!("connection failed: {err}"),
                Err(_) => return,
            }
        }
    }
}

/// A member that records what it receives on its own thread (two members must be polled at
/// once for a fair dispatch), acking automatically.
struct Member {
    received: Arc<Mutex<Vec<u64>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<thread::JoinHandle<Session>>,
}

impl Member {
    fn start(mut session: Session, filter: &str) -> Member {
        session.subscribe(filter);
        let received = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (received2, stop2) = (Arc::clone(&received), Arc::clone(&stop));
        let thread = thread::spawn(move || {
            while !stop2.load(std::sync::atomic::Ordering::SeqCst) {
                if let Ok(Ok(Event::Incoming(Packet::Publish(publish)))) =
                    session.connection.recv_timeout(Duration::from_millis(100))
                {
                    let seq = String::from_utf8_lossy(&publish.payload)
                        .parse()
                        .unwrap_or(0);
                    received.lock().expect("lock").push(seq);
                }
            }
            session
        });
        Member {
            received: received2,
            stop,
            thread: Some(thread),
        }
    }

    fn count(&self) -> usize {
        self.received.lock().expect("lock").len()
    }

    fn seqs(&self) -> Vec<u64> {
        self.received.lock().expect("lock").clone()
    }

    /// Stops polling and hands back the session (to leave, or to drop without DISCONNECT).
    fn stop(mut self) -> Session {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.thread
            .take()
            .expect("running")
            .join()
            .expect("member thread")
    }
}

/// Waits until the members together hold `n` messages, or [`QUIET`] passes without progress.
fn wait_total(members: &[&Member], n: usize) {
    let mut last = (0, Instant::now());
    loop {
        let total: usize = members.iter().map(|m| m.count()).sum();
        if total >= n {
            return;
        }
        if total != last.0 {
            last = (total, Instant::now());
        } else if last.1.elapsed() >= QUIET {
            return;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

fn publish(broker: &TestBroker, topic: &str, first: u64, n: u64) {
    publish_blocking_to(broker, topic, n, |i| (first + i).to_string().into_bytes())
        .unwrap_or_else(|err| panic!("publishing to {}: {err}", broker.version()));
}

// ---------------------------------------------------------------------------------------------
// The probes

/// What the first connection sees when a second one connects with the same client id.
fn takeover(broker: &TestBroker) -> String {
    let (mut first, code) = RawConnection::connect(broker, "probe-takeover").expect("first");
    assert_eq!(code, 0, "first CONNACK");
    let (_second, code) = RawConnection::connect(broker, "probe-takeover").expect("second");
    assert_eq!(code, 0, "second CONNACK");
    match first.next(Duration::from_secs(10)) {
        RawEvent::Packet { header: 0xE0, body } => match body.first() {
            Some(reason) => format!("DISCONNECT 0x{reason:02X}"),
            None => "DISCONNECT, no reason code (0x00)".to_string(),
        },
        RawEvent::Packet { header, .. } => format!("packet 0x{header:02X}, then ?"),
        RawEvent::Closed => "closed, no DISCONNECT".to_string(),
        RawEvent::Failed(err) if err.contains("reset") => {
            "connection reset, no DISCONNECT".to_string()
        }
        RawEvent::Failed(err) => format!("socket error, no DISCONNECT ({err})"),
        RawEvent::Quiet => "first connection left open (no takeover)".to_string(),
    }
}

/// Two online members of one group, 100 QoS 1 messages.
fn dispatch(broker: &TestBroker) -> String {
    let filter = "$share/probe/probe/dispatch";
    let m1 = Member::start(
        connect(options(broker, "probe-d1", true, None, None)),
        filter,
    );
    let m2 = Member::start(
        connect(options(broker, "probe-d2", true, None, None)),
        filter,
    );
    publish(broker, "probe/dispatch", 0, 100);
    wait_total(&[&m1, &m2], 100);
    let (a, b) = (m1.seqs(), m2.seqs());
    m1.stop().leave();
    m2.stop().leave();
    let mut all: Vec<u64> = a.iter().chain(&b).copied().collect();
    all.sort_unstable();
    let total = all.len();
    all.dedup();
    let (lost, dup) = (100 - all.len(), total - all.len());
    // Round-robin: each member gets every other message.
    let alternating =
        a.windows(2).all(|w| w[1] == w[0] + 2) && b.windows(2).all(|w| w[1] == w[0] + 2);
    let shape = if alternating && a.len() == 50 && b.len() == 50 {
        "round-robin, 50 / 50".to_string()
    } else if a.is_empty() || b.is_empty() {
        "all to one member".to_string()
    } else {
        "both members, not alternating".to_string()
    };
    format!("{shape}; lost {lost}, dup {dup}")
}

/// Two persistent members; one leaves (session kept), 20 messages, then it comes back.
fn offline_share(broker: &TestBroker) -> String {
    let filter = "$share/probe/probe/offline";
    let opts = |id: &str| options(broker, id, false, Some(600), None);
    let m1 = Member::start(connect(opts("probe-o1")), filter);
    let m2 = Member::start(connect(opts("probe-o2")), filter);
    m2.stop().leave();
    publish(broker, "probe/offline", 0, 20);
    wait_total(&[&m1], 20);
    let online = m1.count();
    // Back with the same id and session: what was kept for it arrives now.
    let mut back = connect(opts("probe-o2"));
    let mut kept = Vec::new();
    back.collect(&mut kept, 20 - online);
    back.leave();
    m1.stop().leave();
    format!(
        "online member got {online} of 20; {} delivered to the offline one on its return",
        kept.len()
    )
}

/// Session expiry 2 s with 4 s offline; and no expiry at all (= 0).
fn expiry(broker: &TestBroker) -> String {
    let probe = |id: &str, expiry: Option<u32>, offline: Duration| {
        let topic = format!("probe/expiry/{id}");
        let mut session = connect(options(broker, id, false, expiry, None));
        session.subscribe(&topic);
        session.leave();
        publish(broker, &topic, 0, 10);
        thread::sleep(offline);
        let mut back = connect(options(broker, id, false, expiry, None));
        let present = back.connack.session_present;
        let mut held = Vec::new();
        back.collect(&mut held, 10);
        // Clean up: a clean start with no expiry ends the session.
        back.leave();
        connect(options(broker, id, true, None, None)).leave();
        (present, held.len())
    };
    let describe = |(present, n): (bool, usize)| {
        if present || n > 0 {
            format!("kept ({n} of 10 delivered, session present {present})")
        } else {
            "honoured (0 of 10, no session)".to_string()
        }
    };
    format!(
        "2 s, offline 4 s: {}; absent: {}",
        describe(probe("probe-e1", Some(2), Duration::from_secs(4))),
        describe(probe("probe-e2", None, Duration::from_millis(500)))
    )
}

/// A persistent session offline while 150 messages arrive, with the queue limit at 100.
fn queue_limit(kind: BrokerKind) -> String {
    let broker = TestBroker::start(
        kind,
        KindOptions {
            max_queued_messages: QUEUE_LIMIT,
        },
    )
    .expect("start the broker with a small queue");
    let mut session = connect(options(&broker, "probe-q", false, Some(600), None));
    session.subscribe("probe/queue");
    session.leave();
    let sent = 150;
    let published =
        publish_blocking_to(&broker, "probe/queue", sent, |i| i.to_string().into_bytes());
    let refused = match published {
        Ok(()) => "every PUBACK success".to_string(),
        Err(err) => format!("publisher: {err}"),
    };
    let mut back = connect(options(&broker, "probe-q", false, Some(600), None));
    let mut held = Vec::new();
    back.collect(&mut held, sent as usize);
    back.leave();
    let seqs: Vec<u64> = held
        .iter()
        .filter_map(|p| String::from_utf8_lossy(&p.payload).parse().ok())
        .collect();
    let which = match (seqs.first(), seqs.last()) {
        _ if seqs.len() as u64 == sent => "none dropped".to_string(),
        (Some(0), Some(last)) => format!("kept the oldest (0–{last}), dropped newer"),
        (Some(first), Some(last)) if *last == sent - 1 => {
            format!("dropped the oldest, kept {first}–{last}")
        }
        (Some(first), Some(last)) => format!("kept {first}–{last}"),
        _ => "nothing delivered".to_string(),
    };
    format!(
        "limit {QUEUE_LIMIT}, {sent} sent: {} delivered, {which}; {refused}",
        seqs.len()
    )
}

/// A backlog of 100, the client announcing Receive Maximum 10 and acking by hand.
fn receive_maximum(broker: &TestBroker) -> String {
    let id = "probe-rm";
    let mut session = connect(options(broker, id, false, Some(600), None));
    session.subscribe("probe/rm");
    session.leave();
    publish(broker, "probe/rm", 0, 100);
    let mut back = connect(options(broker, id, false, Some(600), Some(RECEIVE_MAXIMUM)));
    let mut held = Vec::new();
    back.collect(&mut held, 100);
    let before = held.len();
    if let Some(first) = held.first().cloned() {
        back.client.ack(&first).expect("ack");
    }
    back.collect(&mut held, 100);
    let after_one = held.len() - before;
    for publish in held.iter().skip(1) {
        let _ = back.client.ack(publish);
    }
    back.leave();
    let verdict = if before == usize::from(RECEIVE_MAXIMUM) && after_one == 1 {
        "honoured"
    } else if before <= usize::from(RECEIVE_MAXIMUM) {
        "honoured at first, exceeded after acks"
    } else {
        "not honoured"
    };
    format!("{verdict}: {before} before any PUBACK, {after_one} more after one")
}

/// The CONNACK's capability properties (absent ones take the MQTT 5 default).
fn connack(broker: &TestBroker) -> String {
    let session = connect(options(broker, "probe-connack", true, None, None));
    let connack = session.connack.clone();
    session.leave();
    let Some(p) = connack.properties else {
        return "no properties (all defaults)".to_string();
    };
    let flag = |value: Option<u8>| match value {
        None | Some(1) => "yes",
        Some(_) => "**no**",
    };
    let opt = |value: Option<u32>| value.map_or("—".to_string(), |v| v.to_string());
    format!(
        "Receive Maximum {}; Maximum QoS {}; Topic Alias Maximum {}; Maximum Packet Size {}; \
         Server Keep Alive {}; retain {}, wildcards {}, subscription ids {}, shared {}",
        opt(p.receive_max.map(u32::from)),
        opt(p.max_qos.map(u32::from)),
        opt(p.topic_alias_max.map(u32::from)),
        opt(p.max_packet_size),
        opt(p.server_keep_alive.map(u32::from)),
        flag(p.retain_available),
        flag(p.wildcard_subscription_available),
        flag(p.subscription_identifiers_available),
        flag(p.shared_subscription_available),
    )
}

fn measure(kind: BrokerKind) -> Row {
    let broker = TestBroker::start(kind, KindOptions::default())
        .unwrap_or_else(|err| panic!("starting {kind}: {err}"));
    let row = Row {
        version: broker.version().to_string(),
        takeover: takeover(&broker),
        dispatch: dispatch(&broker),
        offline_share: offline_share(&broker),
        expiry: expiry(&broker),
        queue: queue_limit(kind),
        receive_maximum: receive_maximum(&broker),
        connack: connack(&broker),
    };
    eprintln!("{kind}: {row:#?}");
    row
}

// ---------------------------------------------------------------------------------------------
// The page

const PAGE: &str = "docs/src/brokers-measured.md";
const START: &str = "<!-- brokers-measured:start (generated by tests/broker_table.rs: UPDATE_BOOK=1 cargo test -p scenario-tests --test broker_table) -->";
const END: &str = "<!-- brokers-measured:end -->";

/// Picks one measurement out of a row.
type Cell = fn(&Row) -> &str;

fn render(rows: &[Row]) -> String {
    let mut out = String::new();
    let columns: [(&str, Cell); 7] = [
        ("takeover: what the first connection gets", |r| &r.takeover),
        ("`$share`, 2 online members, 100 QoS 1", |r| &r.dispatch),
        ("`$share`, one persistent member offline, 20 QoS 1", |r| {
            &r.offline_share
        }),
        ("session expiry", |r| &r.expiry),
        ("queue limit, persistent session offline", |r| &r.queue),
        ("client Receive Maximum 10, backlog of 100", |r| {
            &r.receive_maximum
        }),
        ("CONNACK capabilities", |r| &r.connack),
    ];
    for (title, cell) in columns {
        out.push_str(&format!(
            "\n### {title}\n\n| broker | measured |\n|---|---|\n"
        ));
        for row in rows {
            out.push_str(&format!("| {} | {} |\n", row.version, cell(row)));
        }
    }
    out
}

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

#[test]
fn broker_table_is_current() {
    // MEASURE_ONLY=mqtt5,rmqtt measures some kinds and prints them, without comparing.
    let only: Option<Vec<BrokerKind>> = std::env::var("MEASURE_ONLY")
        .ok()
        .map(|names| names.split(',').filter_map(BrokerKind::from_name).collect());
    let handles: Vec<_> = only
        .clone()
        .unwrap_or_else(|| BrokerKind::ALL.to_vec())
        .into_iter()
        .map(|kind| thread::spawn(move || measure(kind)))
        .collect();
    let rows: Vec<Row> = handles
        .into_iter()
        .map(|h| h.join().expect("a measurement panicked"))
        .collect();
    let rendered = format!("{START}\n{}\n{END}", render(&rows));
    if only.is_some() {
        println!("{rendered}");
        return;
    }
    let path = workspace_root().join(PAGE);
    let page = std::fs::read_to_string(&path).unwrap_or_default();
    let (start, end) = (page.find(START), page.find(END));
    let current = match (start, end) {
        (Some(s), Some(e)) if s < e => Some(&page[s..e + END.len()]),
        _ => None,
    };
    if current == Some(rendered.as_str()) {
        return;
    }
    if std::env::var_os("UPDATE_BOOK").is_some() {
        let (Some(s), Some(e)) = (start, end) else {
            panic!("{PAGE} has no {START} … {END} block to update");
        };
        let updated = format!("{}{rendered}{}", &page[..s], &page[e + END.len()..]);
        std::fs::write(&path, updated).expect("write the page");
        return;
    }
    panic!(
        "{PAGE}'s measured block differs from a fresh measurement: a broker behaves differently \
         (or the page was edited by hand). If the change is expected, run\n  UPDATE_BOOK=1 cargo \
         test -p scenario-tests --test broker_table\nFresh block:\n{rendered}"
    );
}
