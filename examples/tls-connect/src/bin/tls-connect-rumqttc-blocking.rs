//! # tls-connect-rumqttc-blocking — `tls-connect` with threads instead of async
//!
//! **What it shows.** The same consumer as `tls-connect` (read that one first) written without
//! `async`: rumqttc's blocking `Client` and `Connection`, one thread that drives the connection,
//! one handler thread, a bounded `std::sync::mpsc::sync_channel` between them. For code bases
//! that have no async runtime and do not want one.
//!
//! **Run it.**
//! ```text
//! cargo run -p tls-connect --bin tls-connect-rumqttc-blocking -- --creds creds.json
//! cargo run -p tls-connect --bin tls-connect-rumqttc-blocking -- --creds creds.json --count 10
//! ```
//!
//! **How it differs from the default program.**
//! - The TLS trust comes from `common` (`target.rumqttc_tls()`): `tls-connect` builds the very
//!   same rustls configuration in view; this program's lesson is the threads.
//! - `rumqttc::v5::Client::new` instead of `AsyncClient::new`; `connection.recv_timeout(..)`
//!   instead of `eventloop.poll().await`. (The blocking client runs a private single-threaded
//!   Tokio runtime inside `Connection`; you write no async code.)
//! - The same rule as in the async program, in thread form: the thread that drives the
//!   connection never calls a *blocking* client method (`client.subscribe(..)` waits for room in
//!   a queue that only this thread empties: a deadlock). It uses `try_subscribe` /
//!   `try_disconnect`. The handler thread may block on `client.ack(..)`.
//! - Ctrl-C and SIGTERM come from the `ctrlc` crate (feature `termination`): its handler only
//!   sends on a channel, and the connection thread looks at that channel between events. Once
//!   connected it wakes at least every 200 ms for that (`recv_timeout`), since a thread cannot
//!   `select!`. While connecting it waits without a time limit (`recv`, bounded by rumqttc's
//!   connection timeout): a `recv_timeout` that expires mid-connect abandons the attempt after
//!   the broker may have seen our CONNECT.
//!
//! **What it cannot do.** Nothing is lost compared with the default: acks after processing,
//! back-pressure, backoff, client-id-collision detection and the clean DISCONNECT all carry over.
//! The price is two OS threads per connection, a 200 ms wake-up while idle, and a Ctrl-C during a
//! connection attempt that waits for the attempt to end.

use common::rumqttc_sync::Handoff;
use std::process::ExitCode;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use common::supervisor::NextStep;
use common::{ConnectArgs, ConnectionSupervisor, MessagePrinter};
use rumqttc::v5::mqttbytes::v5::{Filter, Packet, Publish, RetainForwardRule};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{Client, Event, MqttOptions, RecvTimeoutError};
use rumqttc::Transport;

/// MQTT v5 Receive Maximum: how many unacked messages the broker may send us. Also the work
/// queue's size (every queued message is unacked), so a broker that keeps to it never fills it.
const RECEIVE_MAXIMUM: u16 = 128;

/// A PINGREQ this often when idle: shorter notices a dead link sooner, at a PINGREQ per interval.
const KEEP_ALIVE: Duration = Duration::from_secs(30);

/// How long a stop (Ctrl-C, SIGTERM) waits for the handler to finish what it already received.
/// Kubernetes sends SIGKILL 30 s after SIGTERM; stopping well before leaves time for DISCONNECT.
const DRAIN_MAX: Duration = Duration::from_secs(10);

/// How long the connection thread waits for network events before checking for Ctrl-C.
const WAKE_UP: Duration = Duration::from_millis(200);

/// Connect to the Link Labs broker over TLS with threads and print each event.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    connect: ConnectArgs,
}

fn main() -> ExitCode {
    let args = Args::parse();
    common::logging::init(&args.connect.log);
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => common::exit::report(&err),
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    // creds.json (or --creds / MQTT_CREDS), validated; missing: an error saying where to get one.
    let target = args.connect.load_target()?;
    let topic = target.credentials.topic.clone();
    let creds = &target.credentials;
    let mut options = MqttOptions::new(target.client_id.clone(), creds.host.clone(), creds.port);
    options
        .set_credentials(creds.username.clone(), creds.password.expose().to_owned())
        .set_keep_alive(KEEP_ALIVE)
        // The largest packet we accept: rumqttc's 10 KiB default is tight for batched events.
        .set_max_packet_size(Some(256 * 1024))
        // rumqttc reserves memory per outgoing in-flight slot (65,536 by default: 13.5 MiB).
        .set_outgoing_inflight_upper_limit(common::cli::CONSUMER_OUTGOING_INFLIGHT)
        // Ack after handling, not on receipt: a crash in between means redelivery, not a loss.
        .set_manual_acks(true)
        // This example does not keep a session across restarts (see `persistent-session`), so
        // there are no acks owed to an earlier connection and no stale-ack guard is needed.
        .set_clean_start(true)
        // Flow control: a burst waits on the broker, not in this process.
        .set_receive_maximum(Some(RECEIVE_MAXIMUM));
    // TLS (rustls, the chain and host name verified), unless --insecure-plaintext (`None`).
    let tls = target
        .rumqttc_tls()
        .context("setting up TLS for the broker connection")?;
    if let Some(tls) = tls {
        options.set_transport(Transport::tls_with_config(tls));
    }
    // `ack()` must never wait for room in rumqttc's request channel: the handler would then
    // wait for this thread and this thread for the handler, for ever. See
    // common::rumqttc_util::REQUEST_CHANNEL_CAPACITY.
    let (client, mut connection) =
        Client::new(options, common::rumqttc_util::REQUEST_CHANNEL_CAPACITY);
    tracing::info!(
        "connecting to {} as client id {} (TLS: {})",
        target.address(),
        target.client_id,
        target.security
    );

    // Ctrl-C / SIGTERM: the handler runs on its own thread and only sends a note.
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    ctrlc::set_handler(move || {
        let _ = stop_tx.send(());
    })
    .context("installing the Ctrl-C / SIGTERM handler")?;

    // The bounded work queue between the connection thread (this one) and the handler thread.
    let (work_tx, work_rx) = mpsc::sync_channel::<Publish>(usize::from(RECEIVE_MAXIMUM));
    let handler_client = client.clone();
    let count = args.connect.count;
    let mut printer = MessagePrinter::new(args.connect.stats);
    let handler = thread::spawn(move || -> anyhow::Result<u64> {
        let mut handled = 0u64;
        // Ends when the connection thread drops `work_tx`.
        for publish in work_rx {
            handled += 1;
            let topic = String::from_utf8_lossy(&publish.topic);
            printer.show(&format!("message {handled} on {topic}"), &publish.payload);
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
    // (see the `RecvTimeoutError::Timeout` arm below).
    let idle_limit = KEEP_ALIVE * 3 / 2;
    let mut last_heard = std::time::Instant::now();
    let mut supervisor = ConnectionSupervisor::new(&target);
    let mut connected = false;
    loop {
        if stop_rx.try_recv().is_ok() {
            tracing::info!("stop requested: finishing the messages already received");
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
                // Subscribe after EVERY CONNACK (not only when no session is present), with
                // Retain Handling "only if new": a repeat does not resend retained messages.
                let filter = Filter {
                    retain_forward_rule: RetainForwardRule::OnNewSubscribe,
                    ..Filter::new(topic.clone(), QoS::AtLeastOnce)
                };
                client.try_subscribe_many([filter])?;
            }
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                common::rumqttc_util::check_suback(&ack, &topic)?;
                tracing::info!("subscribed to {topic} with QoS 1");
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => {
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
    drop(work_tx);
    // At most DRAIN_MAX: a stop always stops, even with a stuck handler.
    let handled = common::rumqttc_sync::drain(handler, DRAIN_MAX)?.unwrap_or_default();
    // A clean DISCONNECT, when there is a connection to end (not in the middle of a reconnect).
    let disconnected = if connected {
        common::rumqttc_sync::disconnect(&client, &mut connection).to_string()
    } else {
        "not connected, so no DISCONNECT to send".to_owned()
    };
    tracing::info!("processed {handled} messages; {disconnected}");
    Ok(())
}
