//! # shared-subscription-rumqttc-blocking — `shared-subscription` with threads instead of async
//!
//! **What it shows.** The production shape of `shared-subscription` (read its `main.rs` first: it
//! explains groups, client ids and what happens to messages when a member goes away): ONE worker
//! per process, subscribed to `$share/<group>/<topic>`, so the broker hands each message to one
//! member of the group. Start it several times with different `--instance` values and the
//! stream is split between the processes. Written with rumqttc's blocking `Client` and threads.
//!
//! **Run it.**
//! ```text
//! cargo run -p shared-subscription --bin shared-subscription-rumqttc-blocking -- --creds creds.json --instance 1
//! cargo run -p shared-subscription --bin shared-subscription-rumqttc-blocking -- --creds creds.json --instance 2
//! cargo run -p shared-subscription --bin shared-subscription-rumqttc-blocking -- --creds creds.json --instance 1 --session-expiry 300
//! ```
//! Flags: `--group NAME` (default `<clientId>-workers`), `--instance N` (default
//! `<host name>-<pid>`), `--session-expiry SECS` (default 0: clean start; more needs a stable
//! `--instance`), `--work-ms N` (simulated processing), `--count N`, `--stats`. Each message is
//! printed as `[<client id>] message 7 on <topic>`.
//!
//! **How it differs from the default program.**
//! - One worker per process: the default's `--workers N` (several connections in one process,
//!   used by its demo) is left out.
//! - rumqttc's blocking `Client` and two threads, as `tls-connect-rumqttc-blocking` explains: the
//!   connection thread never blocks on a client call (`try_subscribe`, `try_unsubscribe`), the
//!   handler thread acks after processing, Ctrl-C / SIGTERM arrive through the `ctrlc` crate.
//! - The same graceful stop as the default: a clean-start worker first leaves the group
//!   (UNSUBSCRIBE), then handles what the broker had already sent it until nothing has come for
//!   0.5 s (at most 10 s), then disconnects; a worker with a persistent session disconnects at
//!   once, because its session keeps its share for the restart.
//!
//! **What it cannot do.** Nothing is lost compared with the default's one-worker-per-process
//! shape: acks after processing, back-pressure, the split without loss, the graceful stop.

use common::rumqttc_sync::Handoff;
use std::process::ExitCode;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::error::ErrorKind;
use clap::{CommandFactory, Parser};
use common::supervisor::NextStep;
use common::{ConnectArgs, ConnectionSupervisor, MessagePrinter};
use rumqttc::v5::mqttbytes::v5::{Filter, Packet, Publish, RetainForwardRule};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{Client, Event, RecvTimeoutError};
use rumqttc::Outgoing;

/// Messages received but not yet handled. Also the Receive Maximum we ask the broker for: how
/// many unacked messages it may send at a time.
const WORK_QUEUE: usize = 32;

/// A stopping clean-start worker drains until the broker says it has nothing more for it (see
/// [`Drain`]), but no longer than this (Kubernetes allows 30 s between SIGTERM and SIGKILL).
const DRAIN_MAX: Duration = Duration::from_secs(10);

/// How long the connection thread waits for network events before checking for Ctrl-C.
const WAKE_UP: Duration = Duration::from_millis(200);

/// One worker of a shared subscription ($share/<group>/<topic>), with threads.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    connect: ConnectArgs,

    /// Shared-subscription group. Every process in one group splits one stream; each group gets
    /// every message. Default: `<clientId>-workers`.
    #[arg(long, value_name = "NAME", value_parser = common::share_group::parse_group)]
    group: Option<String>,

    /// Keep this worker's session this long after a disconnect, so a restart with the same
    /// --instance loses nothing. 0: clean start, nothing kept (right for pid-based ids).
    #[arg(long, value_name = "SECS", default_value_t = 0)]
    session_expiry: u32,

    /// Simulated I/O-bound processing per message, in milliseconds (tests, benchmarks).
    #[arg(long, value_name = "MS", default_value_t = 0)]
    work_ms: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.session_expiry > 0 && args.connect.instance.is_none() {
        // Exits with the usage code (2), like any other bad flag.
        Args::command()
            .error(
                ErrorKind::MissingRequiredArgument,
                "--session-expiry needs a stable --instance: without one the client id contains \
                 the process id, the next process never resumes this session, and the messages \
                 the broker keeps routing to it are stranded until it expires",
            )
            .exit();
    }
    common::logging::init(&args.connect.log);
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => common::exit::report(&err),
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    // One client id per process: `<clientId>-<instance>`.
    let mut connect = args.connect.clone();
    if connect.instance.is_none() {
        let derived = common::share_group::derived_instance();
        tracing::info!(
            "no --instance given: using {derived} (host name and process id). Fine for \
             clean-start workers; a persistent session needs a stable --instance"
        );
        connect.instance = Some(derived);
    }
    // Real credentials when there is a creds.json (or --creds); otherwise a local demo broker,
    // which runs on its own background threads.
    let (target, demo) = demo_broker::target_or_demo_blocking(&connect)?;

    let base_id = connect
        .client_id
        .clone()
        .unwrap_or_else(|| target.credentials.client_id.clone());
    let topic = common::credentials::strip_share_prefix(&target.credentials.topic).to_owned();
    let group = args
        .group
        .clone()
        .unwrap_or_else(|| common::share_group::default_group(&target.credentials.topic, &base_id));
    let filter = format!("$share/{group}/{topic}");
    let expiry = args.session_expiry;
    let id = target.client_id.clone();
    tracing::info!("group {group}: subscribing to {filter}");
    tracing::info!(
        "client id {id}; {}",
        match expiry {
            0 => "clean start (no session kept)".to_owned(),
            secs => format!("persistent session kept {secs} s after a disconnect"),
        }
    );

    let mut options = target
        .rumqttc_options()
        .context("setting up TLS for the broker connection")?;
    options
        // Ack after processing, not on receipt: a crash between the two means redelivery (with
        // a persistent session) instead of a message marked done that never was.
        .set_manual_acks(true)
        // MQTT v5 flow control: at most WORK_QUEUE unacked messages at a time, please.
        .set_receive_maximum(Some(WORK_QUEUE as u16));
    if expiry == 0 {
        options.set_clean_start(true);
    } else {
        // Resume the session this id left behind; the broker keeps it `expiry` seconds.
        options
            .set_clean_start(false)
            .set_session_expiry_interval(Some(expiry));
    }
    // `ack()` must never wait for room: see common::rumqttc_util::REQUEST_CHANNEL_CAPACITY.
    let (client, mut connection) =
        Client::new(options, common::rumqttc_util::REQUEST_CHANNEL_CAPACITY);
    tracing::info!("connecting to {}", target.address());

    // Ctrl-C / SIGTERM: the handler runs on its own thread and only sends a note.
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    ctrlc::set_handler(move || {
        let _ = stop_tx.send(());
    })
    .context("installing the Ctrl-C / SIGTERM handler")?;

    // The bounded work queue between the connection thread (this one) and the handler thread.
    let (work_tx, work_rx) = mpsc::sync_channel::<Publish>(WORK_QUEUE);
    let handler_client = client.clone();
    let count = args.connect.count;
    let work = Duration::from_millis(args.work_ms);
    let mut printer = MessagePrinter::new(args.connect.stats);
    let handler_id = id.clone();
    let handler = thread::spawn(move || -> anyhow::Result<u64> {
        let mut handled = 0u64;
        // Ends when the connection thread drops `work_tx`.
        for publish in work_rx {
            if !work.is_zero() {
                // Stand-in for your real work: a database write, an HTTP call...
                thread::sleep(work);
            }
            handled += 1;
            let topic = String::from_utf8_lossy(&publish.topic);
            printer.show(
                &format!("[{handler_id}] message {handled} on {topic}"),
                &publish.payload,
            );
            // Handled: now, and only now, tell the broker it may forget the message.
            handler_client.ack(&publish)?;
            if count == Some(handled) {
                break;
            }
        }
        printer.finish();
        Ok(handled)
    });

    // The idle watchdog: 1.5 × keep-alive without a packet from the broker means a dead link
    // (see the `RecvTimeoutError::Timeout` arm below). The keep-alive (30 s, set in common::cli) is
    // the trade-off: shorter notices a dead link sooner, and costs a PINGREQ/PINGRESP pair per
    // keep-alive.
    let idle_limit = connection.eventloop.options.keep_alive() * 3 / 2;
    let mut last_heard = std::time::Instant::now();
    let mut supervisor = ConnectionSupervisor::new(&target);
    let mut connected = false;
    // While a clean-start worker stops: the drain's progress (None: not stopping).
    let mut drain: Option<Drain> = None;
    // Every PUBLISH received and every PUBACK written, to know when all are acked.
    let (mut received, mut acked) = (0u64, 0u64);
    loop {
        if drain.is_none() && stop_rx.try_recv().is_ok() {
            if expiry > 0 {
                // Our session keeps our share while we restart: nothing to drain.
                break;
            }
            // Clean start: whatever the broker already dealt us dies with the session, so leave
            // the group first and handle what is on its way (a graceful scale-down).
            client.try_unsubscribe(filter.clone())?;
            tracing::info!("stopping: leaving the group; handling what the broker already sent us");
            let mut leaving = Drain::new(Instant::now() + DRAIN_MAX);
            // The UNSUBSCRIBE is the first question; it counts only if nothing was unacked.
            leaving.asked(received, acked);
            drain = Some(leaving);
        }
        if drain.as_ref().is_some_and(|d| Instant::now() >= d.limit) {
            tracing::warn!(
                "the drain did not end within {} s; stopping anyway",
                DRAIN_MAX.as_secs()
            );
            break;
        }
        // The handler ends on its own only when --count messages were handled (or on error).
        if handler.is_finished() {
            break;
        }
        // While (re)connecting, wait without a time limit: a `recv_timeout` that expires abandons
        // the attempt half-way, possibly after the broker has seen our CONNECT (and with a
        // persistent session it then keeps a session without our subscription). rumqttc's
        // connection timeout bounds the wait. Once connected, wake up every WAKE_UP for Ctrl-C.
        let event = if connected {
            match connection.recv_timeout(WAKE_UP) {
                Ok(event) => event,
                // The idle watchdog: rumqttc sends a PINGREQ every keep-alive, so a live broker
                // sends us something within every keep-alive. Nothing for 1.5 × keep-alive means
                // the link died without a FIN or RST (a pulled cable, a NAT that forgot us), which
                // rumqttc alone notices only after about 2 × keep-alive. `clean()` drops the dead
                // connection (unacked messages are kept for the next one); the error takes the
                // retry path below, and the next `recv()` reconnects.
                Err(RecvTimeoutError::Timeout) if last_heard.elapsed() >= idle_limit => {
                    connection.eventloop.clean();
                    Err(common::supervisor::LinkSilent {
                        silent_for: idle_limit,
                    }
                    .into_error())
                }
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => {
                    anyhow::bail!("rumqttc's request queue closed")
                }
            }
        } else {
            match connection.recv() {
                Ok(event) => event,
                Err(_) => anyhow::bail!("rumqttc's request queue closed"),
            }
        };
        // Anything but our own outgoing packets (a packet, or a failure) rewinds the watchdog.
        if !matches!(event, Ok(Event::Outgoing(_))) {
            last_heard = std::time::Instant::now();
        }
        // rumqttc reports a failed or lost connection as an error and reconnects at the next call.
        connected = event.is_ok();
        match event {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                supervisor.connected();
                tracing::info!("connected (session present: {})", ack.session_present);
                if ack.session_present {
                    tracing::info!(
                        "the broker kept our session: messages queued while we were away arrive \
                         first (subscribing again anyway, in case the previous run died before \
                         its SUBSCRIBE)"
                    );
                }
                // Subscribe after EVERY CONNACK. With a clean start the session is always new; a
                // resumed persistent session normally still has the subscription, but `session
                // present` cannot say *which* subscriptions it holds (a run that died between its
                // CONNACK and its SUBSCRIBE leaves one with none, which would then get nothing
                // until it expires). Subscribing to the same filter again replaces the
                // subscription; the queued messages stay. Retain Handling 1: see `subscription`.
                client.try_subscribe_many([subscription(&filter)])?;
            }
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                common::rumqttc_util::check_suback(&ack, &filter)?;
                tracing::info!("subscribed to {filter} with QoS 1");
            }
            Ok(Event::Incoming(Packet::UnsubAck(_))) => {
                if let Some(leaving) = drain.as_mut() {
                    if leaving.answered(received) {
                        break; // the broker has nothing more for us
                    }
                    if received == acked {
                        leaving.asked(received, acked);
                        client.try_unsubscribe(filter.clone())?;
                    }
                }
            }
            Ok(Event::Outgoing(Outgoing::PubAck(_))) => {
                acked += 1;
                // Everything handled and acked, and no question on the way: ask (again).
                if let Some(leaving) = drain.as_mut() {
                    if received == acked && !leaving.waiting {
                        leaving.asked(received, acked);
                        client.try_unsubscribe(filter.clone())?;
                    }
                }
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                received += 1;
                // Blocks while the queue is full: that is the back-pressure.
                match common::rumqttc_sync::hand_over(&work_tx, publish, &stop_rx) {
                    Handoff::Queued => {}
                    // The handler is gone; its result (an error or --count) comes next.
                    Handoff::HandlerGone => break,
                    Handoff::StopRequested => {
                        tracing::info!("stop requested: finishing the messages already received");
                        break;
                    }
                }
            }
            Ok(_) => {}
            // Stopping anyway: a clean-start session is gone with the connection.
            Err(_) if drain.is_some() => break,
            Err(err) => match supervisor.failed(&err) {
                NextStep::RetryAfter(delay) => {
                    // Sleep before reconnecting, but wake up for Ctrl-C.
                    if stop_rx.recv_timeout(delay).is_ok() {
                        break;
                    }
                }
                NextStep::GiveUp(failure) => return Err(failure.into()),
            },
        }
    }

    // Let the handler finish what is queued (and ack it), then send DISCONNECT after the acks.
    // With a persistent session, messages not handed over yet are not acked: the broker sends
    // them again after the restart.
    drop(work_tx);
    // At most DRAIN_MAX: a stop always stops, even with a stuck handler.
    let handled = common::rumqttc_sync::drain(handler, DRAIN_MAX)?.unwrap_or_default();
    // A clean DISCONNECT, when there is a connection to end (not in the middle of a reconnect).
    let disconnected = if connected {
        common::rumqttc_sync::disconnect(&client, &mut connection).to_string()
    } else {
        "not connected, so no DISCONNECT to send".to_owned()
    };
    tracing::info!("handled {handled} messages; {disconnected}");
    if let Some(demo) = demo {
        demo.shutdown();
    }
    Ok(())
}

/// How a leaving clean-start worker knows the broker has sent it everything it dealt it: it asks,
/// and waits for an answer that no message overtook.
///
/// After our UNSUBSCRIBE (Mosquitto handles a connection's packets in order) the broker deals us
/// nothing new, but messages already dealt to us may still be queued on its side, beyond our
/// Receive Maximum: each PUBACK we send releases more. So the question is an UNSUBSCRIBE of the
/// same filter (harmless: "no subscription existed"), sent only when every message received so
/// far is acked, and the answer is its UNSUBACK: the broker writes a connection's packets in
/// order, so a message released by our PUBACKs arrives before the UNSUBACK of a question sent
/// after them. An answer with no message before it means "nothing more". Two such answers in a
/// row are required, because Mosquitto may write the messages a PUBACK released on its next
/// loop turn, after answering a question read in the same batch; a second question, sent after
/// the first answer, cannot overtake them. No idle timer: a loaded machine only makes it slower
/// (the earlier 0.5 s idle gap lost messages when a gap was longer; issue #16).
struct Drain {
    /// Give up here (a stuck handler, a wedged connection).
    limit: Instant,
    /// A question is on its way.
    waiting: bool,
    /// The question was asked with every received message acked...
    clean: bool,
    /// ...and this many received: a different count at the answer means a message came first.
    received_at_question: u64,
    /// Consecutive clean answers with no message before them.
    quiet_answers: u32,
}

impl Drain {
    fn new(limit: Instant) -> Self {
        Drain {
            limit,
            waiting: false,
            clean: false,
            received_at_question: 0,
            quiet_answers: 0,
        }
    }

    /// A question (UNSUBSCRIBE) is sent now.
    fn asked(&mut self, received: u64, acked: u64) {
        self.waiting = true;
        self.clean = received == acked;
        self.received_at_question = received;
    }

    /// Its answer (UNSUBACK) arrived: `true` when the drain is complete.
    fn answered(&mut self, received: u64) -> bool {
        self.waiting = false;
        if self.clean && received == self.received_at_question {
            self.quiet_answers += 1;
        } else {
            self.quiet_answers = 0;
        }
        self.quiet_answers >= 2
    }
}

/// Our subscription: QoS 1, and MQTT 5 Retain Handling 1 ("send retained messages only if the
/// subscription is new"), so the SUBSCRIBE after a resumed session's CONNACK, which replaces a
/// subscription the session still holds, does not replay the retained messages. (MQTT 5 sends
/// no retained messages to a new shared subscription anyway; asking explicitly costs nothing.)
fn subscription(filter: &str) -> Filter {
    Filter {
        retain_forward_rule: RetainForwardRule::OnNewSubscribe,
        ..Filter::new(filter, QoS::AtLeastOnce)
    }
}
