//! # shared-subscription-rumqttc-blocking — `shared-subscription` with threads instead of async
//! Read more: docs/src/shared-subscriptions.md
//!
//! **What it shows.** `shared-subscription` (read its `main.rs` first: it explains groups, client
//! ids and what happens to messages when a member goes away) with rumqttc's blocking `Client`
//! and threads: one member per process, subscribed to `$share/<group>/<topic>`, so the broker
//! hands each message to one member of the group. Start it several times with different
//! `--instance` values and the stream is split between the processes.
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
//! - rumqttc's blocking `Client` and two threads, as `tls-connect-rumqttc-blocking` explains: the
//!   connection thread never blocks on a client call (`try_subscribe`, `try_unsubscribe`), the
//!   handler thread acks after processing, Ctrl-C / SIGTERM arrive through the `ctrlc` crate.
//! - The same graceful stop as the default: a clean-start member first leaves the group
//!   (UNSUBSCRIBE), handles what the broker had already dealt it until the broker says there is
//!   nothing more (`common::share_drain`; at most 10 s), then disconnects; a member with a
//!   persistent session disconnects at once, because its session keeps its share for the restart.
//!
//! **What it cannot do.** Nothing is lost compared with the default: acks after processing,
//! back-pressure, the split without loss, the graceful stop.

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, TrySendError};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::error::ErrorKind;
use clap::{CommandFactory, Parser};
use common::share_drain::{Drain, Step};
use common::supervisor::NextStep;
use common::{BrokerTarget, ConnectArgs, ConnectionSupervisor, MessagePrinter};
use rumqttc::v5::mqttbytes::v5::{Filter, Packet, Publish, RetainForwardRule};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{Client, Event, MqttOptions, RecvTimeoutError};
use rumqttc::Transport;

/// MQTT v5 Receive Maximum: how many unacked messages the broker may send us at a time (a backlog
/// waits on the broker, not here). Also the work queue's size: every queued message is unacked.
const RECEIVE_MAXIMUM: u16 = 32;

/// A PINGREQ every 30 s: a dead link is noticed within 1.5 × this, for one ping pair per 30 s.
const KEEP_ALIVE: Duration = Duration::from_secs(30);

/// A stop drains (leaves the group, finishes what was received) for at most this long:
/// Kubernetes sends SIGKILL 30 s after SIGTERM, and the DISCONNECT must go out before.
const DRAIN_MAX: Duration = Duration::from_secs(10);

/// How long the connection thread waits for room in a full work queue before looking again.
const QUEUE_FULL_PAUSE: Duration = Duration::from_millis(20);

/// How long the connection thread waits for network events before checking for Ctrl-C.
const WAKE_UP: Duration = Duration::from_millis(200);

/// One member of a shared subscription ($share/<group>/<topic>), with threads.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    connect: ConnectArgs,

    /// Shared-subscription group. Every process in one group splits one stream; each group gets
    /// every message. Default: `<clientId>-workers`.
    #[arg(long, value_name = "NAME", value_parser = common::share_group::parse_group)]
    group: Option<String>,

    /// Keep this member's session this long after a disconnect, so a restart with the same
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
             clean-start members; a persistent session needs a stable --instance"
        );
        connect.instance = Some(derived);
    }
    let target = connect.load_target()?;

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

    // `ack()` must never wait for room: see common::rumqttc_util::REQUEST_CHANNEL_CAPACITY.
    let (client, mut connection) = Client::new(
        mqtt_options(&target, expiry)?,
        common::rumqttc_util::REQUEST_CHANNEL_CAPACITY,
    );
    tracing::info!("connecting to {}", target.address());

    // Ctrl-C / SIGTERM: the handler runs on its own thread and only sends a note.
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    ctrlc::set_handler(move || {
        let _ = stop_tx.send(());
    })
    .context("installing the Ctrl-C / SIGTERM handler")?;

    // The stale-ack guard: bumped whenever a connection fails, and every message carries the
    // number of the connection that delivered it (a packet id means nothing on a later one).
    let connection_number = Arc::new(AtomicU64::new(0));
    let handler_connection = Arc::clone(&connection_number);

    // The bounded work queue between the connection thread (this one) and the handler thread.
    let (work_tx, work_rx) = mpsc::sync_channel::<(Publish, u64)>(usize::from(RECEIVE_MAXIMUM));
    let handler_client = client.clone();
    let count = args.connect.count;
    let work = Duration::from_millis(args.work_ms);
    let mut printer = MessagePrinter::new(args.connect.stats);
    let handler_id = id.clone();
    let handler = thread::spawn(move || -> anyhow::Result<u64> {
        let mut handled = 0u64;
        // Ends when the connection thread drops `work_tx`.
        for (publish, delivered_on) in work_rx {
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
            // Handled: now, and only now, the broker may forget it; but only on the connection
            // that delivered it (after a reconnect the broker resends it, or it died with it).
            if delivered_on == handler_connection.load(Ordering::SeqCst) {
                handler_client.ack(&publish)?;
            }
            if count == Some(handled) {
                break;
            }
        }
        printer.finish();
        Ok(handled)
    });

    // The idle watchdog: 1.5 × keep-alive without a packet from the broker means a dead link
    // (see the `RecvTimeoutError::Timeout` arm below).
    let idle_limit = KEEP_ALIVE * 3 / 2;
    let mut last_heard = std::time::Instant::now();
    let mut supervisor = ConnectionSupervisor::new(&target);
    let mut connected = false;
    // While leaving the group: has the broker sent us everything? (see common::share_drain)
    let mut drain = Drain::new();
    // A message received but not yet on the work queue (the queue was full).
    let mut pending: Option<(Publish, u64)> = None;
    loop {
        if !drain.is_leaving() && stop_rx.try_recv().is_ok() {
            if expiry > 0 {
                // Our session keeps our share while we restart: nothing to drain.
                break;
            }
            // Clean start: whatever the broker already dealt us dies with the session, so leave
            // the group first and handle what is on its way (a graceful scale-down).
            client.try_unsubscribe(filter.clone())?;
            tracing::info!("stopping: leaving the group; handling what the broker already sent us");
            drain.leave(Instant::now() + DRAIN_MAX);
        }
        if drain
            .deadline()
            .is_some_and(|limit| Instant::now() >= limit)
        {
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
        // The back-pressure: while the queue is full, read nothing more from the connection; keep
        // coming back here, so a stop (and the drain's limit) is still seen at the top.
        if let Some(delivery) = pending.take() {
            match work_tx.try_send(delivery) {
                Ok(()) => {}
                Err(TrySendError::Full(delivery)) => {
                    pending = Some(delivery);
                    thread::sleep(QUEUE_FULL_PAUSE);
                    continue;
                }
                Err(TrySendError::Disconnected(_)) => break, // the handler is gone
            }
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
        // Leaving: ask "anything more for me?" (UNSUBSCRIBE) until the UNSUBACKs say no.
        match drain.observe(&event) {
            Step::Done => break,
            Step::AskAgain => client.try_unsubscribe(filter.clone())?,
            Step::Continue => {}
        }
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
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                // Handed over at the top of the loop, before anything else is read.
                pending = Some((publish, connection_number.load(Ordering::SeqCst)));
            }
            Ok(_) => {}
            // Stopping anyway: a clean-start session is gone with the connection.
            Err(_) if drain.is_leaving() => break,
            Err(err) => {
                // This connection's packet ids mean nothing any more (the stale-ack guard).
                connection_number.fetch_add(1, Ordering::SeqCst);
                // Retry with backoff (broker restarting, network blip), waking up for Ctrl-C;
                // give up on what a retry cannot fix (wrong password, id in use).
                match supervisor.failed(&err) {
                    NextStep::RetryAfter(delay) => {
                        if stop_rx.recv_timeout(delay).is_ok() {
                            break;
                        }
                    }
                    NextStep::GiveUp(failure) => return Err(failure.into()),
                }
            }
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
    Ok(())
}

/// Every connection setting, in one place.
fn mqtt_options(target: &BrokerTarget, expiry: u32) -> anyhow::Result<MqttOptions> {
    let creds = &target.credentials;
    let mut options = MqttOptions::new(target.client_id.clone(), creds.host.clone(), creds.port);
    options
        .set_credentials(creds.username.clone(), creds.password.expose().to_owned())
        .set_keep_alive(KEEP_ALIVE)
        .set_max_packet_size(Some(256 * 1024)) // rumqttc's 10 KiB is tight for batched events
        // We publish nothing: a few outgoing slots, not rumqttc's 65,536 (13.5 MiB up front).
        .set_outgoing_inflight_upper_limit(common::cli::CONSUMER_OUTGOING_INFLIGHT)
        // Ack after processing (see the handler): a crash in between means a redelivery.
        .set_manual_acks(true)
        // Flow control: at most RECEIVE_MAXIMUM unacked messages on their way. Mosquitto 2.0.11
        // keeps to it only until our first ack, which is why `ack()` must never wait for room.
        .set_receive_maximum(Some(RECEIVE_MAXIMUM));
    // Clean start, or resume the session this id left behind, kept `expiry` s after we leave.
    options.set_clean_start(expiry == 0);
    if expiry > 0 {
        options.set_session_expiry_interval(Some(expiry));
    }
    // TLS, the broker verified against the system's CAs or --ca-file; None: --insecure-plaintext.
    let tls = target
        .rumqttc_tls()
        .context("setting up TLS for the broker connection")?;
    if let Some(tls) = tls {
        options.set_transport(Transport::tls_with_config(tls));
    }
    Ok(options)
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
