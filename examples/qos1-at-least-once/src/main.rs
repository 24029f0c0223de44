//! # qos1-at-least-once — duplicates are normal: ack after processing, make processing idempotent
//! Read more: docs/src/qos1.md
//!
//! **What it shows.** A QoS 1 consumer that
//! 1. acks each message only after its handler has finished, one message at a time, in the order
//!    the messages arrived (`set_manual_acks(true)`);
//! 2. keeps a persistent session (`clean_start = false` plus a session expiry above 0, see
//!    `persistent-session`), so a message received but not acked before a crash is sent again after
//!    the restart, marked with the DUP flag;
//! 3. survives duplicates: an *idempotency key* is taken from each payload (its `messageId`, `uuid`
//!    or `seq` field, else a SHA-256 of topic and payload) and looked up in a bounded set of the
//!    last N keys; a repeat is printed as `duplicate skipped: <key> (dup flag: …)`, acked, and not
//!    processed again. A `summary:` line at the end counts them.
//!
//! **Why: QoS 1 means *at least* once.** The broker promises delivery, not uniqueness, and a
//! healthy system sees duplicates:
//! - *the PUBACK was lost*: the connection dropped after we processed a message but before our ack
//!   reached the broker. On reconnect the broker resends every unacked message with DUP=1
//!   (MQTT 5 [MQTT-4.4.0-1]; that is the only time it resends);
//! - *the process crashed between processing and ack*: the restarted process gets it again, DUP=1;
//! - *a shared-subscription member failed* with messages in flight: the broker may hand them to
//!   another member (MQTT 5 §4.8.2), which sees them for the first time, DUP=0;
//! - *the publisher retried* after losing the broker's PUBACK: the broker forwards a second copy
//!   with DUP=0, because the flag describes one hop and is never passed on ([MQTT-3.3.1-3]).
//!
//! So the DUP flag is a hint, not a way to deduplicate: DUP=1 does not mean you processed the
//! message (it may have died in your queue), DUP=0 does not mean you did not, and not every broker
//! sets it (rumqttd 0.20 resends with DUP=0; Mosquitto and the demo broker set it). Deduplicate by a key
//! that is *in the message*, and ack a skipped duplicate like any other message: a client must
//! acknowledge every PUBLISH whether or not it processes it ([MQTT-4.5.0-2]).
//!
//! **Where the keys must live.** The set here is in memory. It catches duplicates within one
//! process's lifetime (a reconnect, a publisher's retry) and forgets everything on restart, so the
//! message that was processed but not acked before a crash *is processed again* after it; the
//! integration test shows exactly that. In production the key store is the database your effect
//! goes into: a unique constraint or an upsert on the key, written in the same transaction as the
//! effect (`INSERT … ON CONFLICT (event_key) DO NOTHING`), shared by every member of a shared
//! subscription. Pick a key that identifies the *event* (a per-publisher `seq` is unique only
//! together with its publisher); hashing the payload is the fallback when there is none.
//!
//! **Acks in receive order: what is actually required.** MQTT 5 §4.6 [MQTT-4.6.0-2]: "The Client
//! MUST send PUBACK packets in the order in which the corresponding PUBLISH packets were received
//! (QoS 1 messages)". No conditions. Together with the broker resending unacked messages in their
//! original order, it keeps what is acked a prefix of the stream, so the last copy of each message
//! arrives in publish order. Brokers match a PUBACK by its packet id: Mosquitto 2.0.11 took three
//! PUBACKs in reverse order without a word and never resent those messages (measured), so an
//! out-of-order ack is a broken rule you would not notice. rumqttc does not order them either:
//! with manual acks, `ack()` queues a PUBACK for that packet id and PUBACKs leave in the order of
//! the calls. Ordering is the application's job; here one task handles messages from a FIFO queue
//! and acks each before taking the next. If you process in parallel, release the acks through a
//! reorder buffer.
//!
//! **An ack belongs to one connection.** A packet id names a message only on the connection that
//! delivered it. rumqttc drops PUBACKs still queued when a connection fails, but an ack queued
//! *after* the failure would go out on the next connection and could acknowledge whatever the
//! broker sent there under the same id. So the handler does not ack a message that arrived on an
//! earlier connection; the resumed session resends it, it is skipped as a duplicate and acked then.
//!
//! **Back-pressure without a deadlock.** The work queue between the polling task and the handler
//! is bounded (32): when the handler falls behind, the polling task waits, stops reading, and TCP
//! slows the broker down. That wait is safe only if the handler never waits for the polling task,
//! and it does when it acks: `ack()` puts the PUBACK in rumqttc's request channel, which only
//! `poll()` empties. So that channel has no practical limit (it fills lazily). We also announce a
//! Receive Maximum of 32 so a well-behaved broker keeps at most 32 unacked messages in flight to
//! us; Mosquitto 2.0.11 does not (measured: every PUBACK lets it send 32 more), so during a large
//! backlog our acks pile up in that channel: with a limit of 65,535 every consumer froze on a
//! backlog above ~70,000 messages (tests/backlog.rs).
//!
//! **Run it.**
//! ```text
//! cargo run -p qos1-at-least-once                        # no creds.json: local demo broker
//! cargo run -p qos1-at-least-once -- --creds creds.json
//! cargo run -p qos1-at-least-once -- --creds creds.json --work-ms 500 --crash-after 5
//! cargo run -p qos1-at-least-once -- --creds creds.json   # again: the 5th message comes back
//! ```
//! `--count N` stops after N messages, skipped duplicates included. `--work-ms N` makes each new
//! message take N ms. `--crash-after N` is a **test aid**: after
//! processing the Nth new message the process exits at once (code 99) without acking it, as a
//! crash would. The demo broker lives inside the process and dies with it, so the crash demo needs
//! a real broker (or see `tests/qos1_at_least_once.rs`, which uses Mosquitto).
//!
//! **What you will see.** `connected (session present: …)`, then for each message
//! `processed <key> (dup flag: …) on <topic>` and its JSON, or `duplicate skipped: <key> (dup flag:
//! …)`. Ctrl-C (or SIGTERM) finishes the queued messages, acks them, disconnects (the session stays
//! on the broker for `--session-expiry` seconds) and prints
//! `summary: P processed, D duplicates skipped, F arrived with the DUP flag`.
//!
//! **Deliberately left out:** the durable key store (use your database, as said above), parallel
//! processing with a reorder buffer for the acks, and QoS 2 (exactly-once between two MQTT hops
//! only; it does not make your database write happen once).

use std::collections::{HashSet, VecDeque};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use common::rumqttc_util::REQUEST_CHANNEL_CAPACITY;
use common::supervisor::NextStep;
use common::{ConnectArgs, ConnectionSupervisor, MessagePrinter};
use rumqttc::v5::mqttbytes::v5::{Filter, Packet, Publish, RetainForwardRule};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

/// How long a stop (Ctrl-C, SIGTERM) waits for the handler to finish what it already received.
/// Kubernetes sends SIGKILL 30 s after SIGTERM; stopping well before leaves time for DISCONNECT.
const DRAIN_MAX: std::time::Duration = std::time::Duration::from_secs(10);

/// Capacity of the work queue, and the Receive Maximum we announce: the most unacked messages a
/// (well-behaved) broker sends us at once.
const IN_FLIGHT: u16 = 32;

/// Payload fields tried, in this order, as the idempotency key. Illustrative: use the field that
/// identifies an event in your payloads.
const KEY_FIELDS: [&str; 3] = ["messageId", "uuid", "seq"];

/// Exit code of `--crash-after`; outside the codes in `common::exit`.
const SIMULATED_CRASH_EXIT: i32 = 99;

/// Consume QoS 1 events at least once: ack after processing, in receive order; skip duplicates.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    connect: ConnectArgs,

    /// How long, in seconds, the broker keeps our session (subscription, unacked and queued
    /// messages) after we disconnect or crash. Above 0: with 0 the session ends with the
    /// connection, and an unacked message is lost instead of redelivered.
    #[arg(long, value_name = "SECS", default_value_t = 3600,
          value_parser = clap::value_parser!(u32).range(1..))]
    session_expiry: u32,

    /// How many recent idempotency keys to remember. In memory: it catches duplicates within this
    /// process's lifetime only.
    #[arg(long, value_name = "N", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    remember: u64,

    /// Simulated processing time per new message, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    work_ms: u64,

    /// TEST AID, not for production: after processing the Nth new message, exit at once (code 99)
    /// WITHOUT acking it, like a crash between processing and ack.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    crash_after: Option<u64>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    common::logging::init(&args.connect.log);
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => common::exit::report(&err),
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    // Real credentials when there is a creds.json (or --creds); otherwise an in-process demo
    // broker with generated credentials. Either way the code below is the same.
    let (target, demo) = demo_broker::target_or_demo(&args.connect).await?;
    let topic = target.credentials.topic.clone();

    let mut options = target
        .rumqttc_options()
        .context("setting up TLS for the broker connection")?;
    // ANCHOR: qos1_options
    options
        // Ack after processing, not on receipt: a crash between the two means redelivery.
        .set_manual_acks(true)
        // Resume the session (and its unacked messages) after a restart, and keep it that long.
        .set_clean_start(false)
        .set_session_expiry_interval(Some(args.session_expiry))
        // Ask for at most IN_FLIGHT unacked messages at once (not every broker keeps to it).
        .set_receive_maximum(Some(IN_FLIGHT));
    // ANCHOR_END: qos1_options
    let (client, mut eventloop) = AsyncClient::new(options, REQUEST_CHANNEL_CAPACITY);
    tracing::info!(
        "connecting to {} as client id {} (persistent session, expiry {} s)",
        target.address(),
        target.client_id,
        args.session_expiry
    );

    // Bumped whenever a connection fails; each message carries the number of the connection that
    // delivered it, so the handler can tell an ack that still means something from a stale one.
    let connection = Arc::new(AtomicU64::new(0));

    let (work_tx, work_rx) = mpsc::channel::<Delivery>(usize::from(IN_FLIGHT));
    let handler = Handler {
        client: client.clone(),
        connection: Arc::clone(&connection),
        recent: RecentKeys::new(usize::try_from(args.remember).unwrap_or(usize::MAX)),
        printer: MessagePrinter::new(args.connect.stats),
        work: Duration::from_millis(args.work_ms),
        crash_after: args.crash_after,
        count: args.connect.count,
        tally: Tally::default(),
    };
    let mut handler = tokio::spawn(handler.run(work_rx));

    // The idle watchdog (see `poll_or_silence`): 1.5 × keep-alive without a packet from the
    // broker means a dead link. The keep-alive (30 s, set in common::cli) is the trade-off:
    // shorter notices a dead link sooner, and costs a PINGREQ/PINGRESP pair per keep-alive.
    let idle_limit = eventloop.options.keep_alive() * 3 / 2;
    let mut last_heard = tokio::time::Instant::now();
    let mut supervisor = ConnectionSupervisor::new(&target);
    let shutdown = common::shutdown::signal();
    tokio::pin!(shutdown);

    let stop = loop {
        tokio::select! {
            _ = &mut shutdown => break Stop::Requested,
            // The handler ends on its own only when --count messages were handled (or on error).
            result = &mut handler => break Stop::HandlerFinished(result),
            event = poll_or_silence(&mut eventloop, &mut last_heard, idle_limit) => match event {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    supervisor.connected();
                    if ack.session_present {
                        tracing::info!(
                            "connected (session present: true): the broker resends what we had \
                             not acked (DUP flag), then what arrived while we were away \
                             (subscribing again anyway, in case the previous run died before its \
                             SUBSCRIBE)"
                        );
                    } else {
                        tracing::info!("connected (session present: false): a new session");
                    }
                    // Subscribe after EVERY CONNACK, a resumed session too. `session present: true`
                    // normally means our subscription survived, but it cannot say *which*
                    // subscriptions the session holds: a run that died after its CONNACK and before
                    // its SUBSCRIBE reached the broker leaves a session with none, and skipping the
                    // SUBSCRIBE would then receive nothing, silently, until that session expires.
                    // Subscribing to the same filter again is harmless in MQTT 5: it replaces the
                    // subscription and the queued messages stay [MQTT-3.8.4-3]; Retain Handling 1
                    // (see `subscription`) keeps it from replaying retained messages.
                    client.try_subscribe_many([subscription(&topic)])?;
                }
                Ok(Event::Incoming(Packet::SubAck(ack))) => {
                    common::rumqttc_util::check_suback(&ack, &topic)?;
                    tracing::info!("subscribed to {topic} with QoS 1");
                }
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    tracing::debug!("PUBLISH packet id {} (DUP {})", publish.pkid, publish.dup);
                    let delivery = Delivery {
                        publish,
                        connection: connection.load(Ordering::SeqCst),
                    };
                    // Waits while the queue is full: that is the back-pressure. Safe because the
                    // handler never waits for us (see REQUEST_CHANNEL_CAPACITY).
                    // A stop request still wins while we wait: a consumer must never be deaf to
                    // SIGTERM.
                    tokio::select! {
                        sent = work_tx.send(delivery) => if sent.is_err() {
                            // The handler is gone; its result (an error or --count) comes next.
                            break Stop::HandlerFinished((&mut handler).await);
                        },
                        _ = &mut shutdown => break Stop::Requested,
                    }
                }
                Ok(_) => {}
                Err(err) => {
                    // This connection's packet ids mean nothing any more (see `Handler::handle`).
                    connection.fetch_add(1, Ordering::SeqCst);
                    match supervisor.failed(&err) {
                        NextStep::RetryAfter(delay) => {
                            // Sleep before reconnecting, but wake up for Ctrl-C.
                            if tokio::time::timeout(delay, &mut shutdown).await.is_ok() {
                                break Stop::Requested;
                            }
                        }
                        NextStep::GiveUp(failure) => return Err(failure.into()),
                    }
                }
            },
        }
    };

    let tally = match stop {
        Stop::Requested => {
            drop(work_tx);
            // At most DRAIN_MAX: a stop always stops, even with a stuck handler.
            common::shutdown::drain(handler, DRAIN_MAX)
                .await?
                .unwrap_or_default()
        }
        Stop::HandlerFinished(result) => result??,
    };
    // Flushes the queued acks, then DISCONNECT. The session stays for --session-expiry seconds.
    let disconnected = common::rumqttc_util::disconnect(&client, &mut eventloop).await;
    println!(
        "summary: {} processed, {} duplicates skipped, {} arrived with the DUP flag",
        tally.processed, tally.skipped, tally.dup_flagged
    );
    tracing::info!(
        "handled {} messages; {disconnected}",
        tally.processed + tally.skipped
    );
    if let Some(demo) = demo {
        demo.shutdown().await;
    }
    Ok(())
}

/// Our subscription: QoS 1, and MQTT 5 Retain Handling 1 ("send retained messages only if the
/// subscription is new"), so the SUBSCRIBE after a resumed session's CONNACK, which replaces a
/// subscription the session still holds, does not replay the retained messages.
fn subscription(filter: &str) -> Filter {
    Filter {
        retain_forward_rule: RetainForwardRule::OnNewSubscribe,
        ..Filter::new(filter, QoS::AtLeastOnce)
    }
}

/// Why the main loop ended.
enum Stop {
    /// Ctrl-C or SIGTERM.
    Requested,
    /// The handler task returned (after `--count` messages, or with an error).
    HandlerFinished(Result<anyhow::Result<Tally>, tokio::task::JoinError>),
}

/// A message as the handler gets it.
struct Delivery {
    publish: Publish,
    /// The number of the connection that delivered it.
    connection: u64,
}

/// What happened to the messages, for the `summary:` line.
#[derive(Debug, Default)]
struct Tally {
    processed: u64,
    skipped: u64,
    dup_flagged: u64,
}

/// The handler task: processes each new message, skips duplicates, acks in receive order.
struct Handler {
    client: AsyncClient,
    /// The number of the current connection (see `run`).
    connection: Arc<AtomicU64>,
    recent: RecentKeys,
    printer: MessagePrinter,
    work: Duration,
    crash_after: Option<u64>,
    count: Option<u64>,
    tally: Tally,
}

impl Handler {
    /// One message at a time, in queue order (= receive order): that keeps the acks in order.
    async fn run(mut self, mut work_rx: mpsc::Receiver<Delivery>) -> anyhow::Result<Tally> {
        while let Some(delivery) = work_rx.recv().await {
            self.handle(delivery).await?;
            if self.count == Some(self.tally.processed + self.tally.skipped) {
                break;
            }
        }
        self.printer.finish();
        Ok(self.tally)
    }

    async fn handle(&mut self, delivery: Delivery) -> anyhow::Result<()> {
        let Delivery {
            publish,
            connection,
        } = delivery;
        let key = idempotency_key(&publish.topic, &publish.payload);
        if publish.dup {
            self.tally.dup_flagged += 1;
        }
        if self.recent.contains(&key) {
            println!("duplicate skipped: {key} (dup flag: {})", publish.dup);
            self.tally.skipped += 1;
        } else {
            self.process(&key, &publish).await;
            // Remembered only once processed: a message that failed halfway is not a duplicate.
            self.recent.insert(key.clone());
            self.tally.processed += 1;
            if self.crash_after == Some(self.tally.processed) {
                eprintln!(
                    "--crash-after {}: exiting WITHOUT acking this message, like a crash (test aid)",
                    self.tally.processed
                );
                std::process::exit(SIMULATED_CRASH_EXIT);
            }
        }

        // ANCHOR: stale_ack_guard
        // Processed (or known to be): now, and only now, the broker may forget it. But only on the
        // connection that delivered it: on a later one its packet id may name another message.
        // The resumed session resends it; that copy is skipped as a duplicate and acked. (A check
        // racing the failure itself can still slip through: rumqttc offers no hook to close that
        // window of a few instructions.)
        if connection == self.connection.load(Ordering::SeqCst) {
            self.client.ack(&publish).await?;
        } else {
            tracing::info!(
                "not acking {key}: it arrived on an earlier connection; the broker resends it"
            );
        }
        // ANCHOR_END: stale_ack_guard
        Ok(())
    }

    /// Stands in for your business logic: the effect that must happen once per event.
    async fn process(&mut self, key: &str, publish: &Publish) {
        if !self.work.is_zero() {
            tokio::time::sleep(self.work).await;
        }
        let topic = String::from_utf8_lossy(&publish.topic);
        let label = format!("processed {key} (dup flag: {}) on {topic}", publish.dup);
        self.printer.show(&label, &publish.payload);
    }
}

/// The idempotency key of a message: the first of [`KEY_FIELDS`] present in its JSON payload,
/// else `sha256=<hex>` of topic and payload (equal bytes on the same topic = the same event).
// ANCHOR: idempotency_key
fn idempotency_key(topic: &[u8], payload: &[u8]) -> String {
    if let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(payload) {
        for name in KEY_FIELDS {
            match fields.get(name) {
                Some(Value::String(text)) if !text.is_empty() => return format!("{name}={text}"),
                Some(Value::Number(number)) => return format!("{name}={number}"),
                _ => {}
            }
        }
    }
    let mut hash = Sha256::new();
    hash.update(topic);
    hash.update([0]);
    hash.update(payload);
    let hex: String = hash
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    format!("sha256={hex}")
}
// ANCHOR_END: idempotency_key

/// The last `capacity` keys, oldest forgotten first: bounded memory however long the process runs.
/// Duplicates arrive close together (a redelivery is at most `IN_FLIGHT` messages behind), so a
/// window of thousands of keys catches them.
struct RecentKeys {
    capacity: usize,
    set: HashSet<String>,
    order: VecDeque<String>,
}

impl RecentKeys {
    fn new(capacity: usize) -> Self {
        RecentKeys {
            capacity: capacity.max(1),
            set: HashSet::new(),
            order: VecDeque::new(),
        }
    }

    fn contains(&self, key: &str) -> bool {
        self.set.contains(key)
    }

    fn insert(&mut self, key: String) {
        if !self.set.insert(key.clone()) {
            return;
        }
        self.order.push_back(key);
        if self.order.len() > self.capacity {
            if let Some(oldest) = self.order.pop_front() {
                self.set.remove(&oldest);
            }
        }
    }
}

/// One `eventloop.poll()`, watched by the idle watchdog (issue #12).
///
/// rumqttc sends a PINGREQ every keep-alive, so a live broker sends us something — a PINGRESP at
/// least — within every keep-alive. Nothing for `idle_limit` (1.5 × keep-alive) means the link
/// died without a FIN or RST (a pulled cable, a NAT or firewall that forgot us, a frozen host),
/// which TCP does not notice for minutes and rumqttc only after about 2 × keep-alive. Then
/// `clean()` drops the dead connection (unacked messages are kept for the next one) and the
/// error takes the supervisor's retry path like any other failure: the next `poll()` reconnects.
async fn poll_or_silence(
    eventloop: &mut rumqttc::v5::EventLoop,
    last_heard: &mut tokio::time::Instant,
    idle_limit: std::time::Duration,
) -> Result<rumqttc::v5::Event, rumqttc::v5::ConnectionError> {
    tokio::select! {
        // Biased: data already waiting wins over a deadline that passed while we were busy.
        biased;
        event = eventloop.poll() => {
            // Anything but our own outgoing packets (a packet, or a failure) rewinds the watchdog.
            if !matches!(event, Ok(rumqttc::v5::Event::Outgoing(_))) {
                *last_heard = tokio::time::Instant::now();
            }
            event
        }
        () = tokio::time::sleep_until(*last_heard + idle_limit) => {
            eventloop.clean();
            *last_heard = tokio::time::Instant::now();
            Err(common::supervisor::LinkSilent { silent_for: idle_limit }.into_error())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_comes_from_the_payload_or_its_hash() {
        let topic = b"airfinder/org/events/tag-1";
        assert_eq!(idempotency_key(topic, br#"{"seq":7,"x":1}"#), "seq=7");
        assert_eq!(
            idempotency_key(topic, br#"{"seq":7,"uuid":"a-b"}"#),
            "uuid=a-b"
        );
        let hashed = idempotency_key(topic, b"not json");
        assert!(
            hashed.starts_with("sha256=") && hashed.len() == 7 + 64,
            "{hashed}"
        );
        assert_eq!(hashed, idempotency_key(topic, b"not json"));
        assert_ne!(hashed, idempotency_key(b"other/topic", b"not json"));
    }

    #[test]
    fn recent_keys_forget_the_oldest_beyond_capacity() {
        let mut recent = RecentKeys::new(2);
        recent.insert("a".into());
        recent.insert("b".into());
        recent.insert("a".into());
        assert!(recent.contains("a") && recent.contains("b"));
        recent.insert("c".into());
        assert!(!recent.contains("a") && recent.contains("b") && recent.contains("c"));
    }
}
