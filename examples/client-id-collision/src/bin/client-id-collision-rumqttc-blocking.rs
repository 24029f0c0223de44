//! # client-id-collision-rumqttc-blocking — detect a shared client id, with threads instead of async
//!
//! **What it shows.** The production shape of `client-id-collision` (read its `main.rs` first: it
//! explains the problem and writes out the detection rule): ONE connection per process.
//! Start two processes with the same client id and the broker keeps closing one to let the other
//! in. This program recognises that pattern — the broker closed the connection within 5 s of
//! accepting it, 3 times in a row, or sent DISCONNECT 0x8E *Session taken over* — logs
//! `client id collision detected N ms after the first takeover`, and exits with code 6 and the
//! plain message ("client id X is used by another process … give each process its own id, for
//! example --instance 1, --instance 2"). The other process keeps its connection.
//!
//! **Run it.** The same command in two terminals, with the same credentials (the demo
//! launcher, `cargo run -p client-id-collision`, does this against a local broker):
//! ```text
//! cargo run -p client-id-collision --bin client-id-collision-rumqttc-blocking -- --creds creds.json
//! # the fix: one id per process
//! cargo run -p client-id-collision --bin client-id-collision-rumqttc-blocking -- --creds creds.json --instance 1
//! cargo run -p client-id-collision --bin client-id-collision-rumqttc-blocking -- --creds creds.json --instance 2
//! ```
//! **How it differs from the default program.** Written with rumqttc's blocking `Client` and two
//! threads — the change `tls-connect-rumqttc-blocking` explains (the connection thread never
//! blocks on a client call; Ctrl-C / SIGTERM through the `ctrlc` crate); TLS from
//! `target.rumqttc_tls()`; and the detection is left to `common::ConnectionSupervisor`, which
//! applies the very rule the default program writes out (`TakeoverDetector`), same constants.
//!
//! **What it cannot do.** Nothing is lost compared with the default. (rumqttc 0.25.1 cannot parse the short 3-byte
//! DISCONNECT `e0 01 8e` some brokers send, so here too the *pattern* is what detects a takeover
//! on those brokers; Mosquitto sends no DISCONNECT at all.)
//!
//! **Exit codes.** 6 = the client id is used by another process: restarting will not help, so a
//! supervisor (systemd, Kubernetes) should not restart on 6 without a configuration change.

use common::rumqttc_sync::Handoff;
use std::process::ExitCode;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use common::supervisor::NextStep;
use common::{ConnectArgs, ConnectionSupervisor, FailureKind, MessagePrinter};
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

/// One connection per process (threads); stop with exit code 6 when another process uses our
/// client id.
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
    // creds.json (or --creds / MQTT_CREDS), validated; `--instance N` makes the id `<clientId>-N`.
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
        // No session kept across restarts, so no acks owed to an earlier connection: no stale-ack
        // guard needed (`persistent-session` keeps one).
        .set_clean_start(true)
        .set_receive_maximum(Some(RECEIVE_MAXIMUM));
    // TLS (rustls, the chain and host name verified), unless --insecure-plaintext (`None`).
    let tls = target.rumqttc_tls();
    if let Some(tls) = tls.context("setting up TLS for the broker connection")? {
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
    // Only for the log line that makes the symptom visible: how long each connection lived.
    let mut connected_at: Option<Instant> = None;
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
                connected_at = Some(Instant::now());
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
            Err(err) => {
                // The symptom: a connection closed by the broker moments after it was accepted.
                // Once is an accident; again and again is another client with our id.
                if let Some(since) = connected_at.take() {
                    tracing::warn!(
                        "connection ended {} ms after its CONNACK",
                        since.elapsed().as_millis()
                    );
                }
                match supervisor.failed(&err) {
                    NextStep::RetryAfter(delay) => {
                        // Sleep before reconnecting, but wake up for Ctrl-C.
                        if stop_rx.recv_timeout(delay).is_ok() {
                            break;
                        }
                    }
                    NextStep::GiveUp(failure) => {
                        if failure.kind == FailureKind::ClientIdTaken {
                            report_detection(&supervisor);
                        }
                        return Err(failure.into());
                    }
                }
            }
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

/// Logs how long the collision took to recognise: from the first drop (the moment the other
/// process's CONNACK pushed us out) to the decision to stop.
fn report_detection(supervisor: &ConnectionSupervisor) {
    match supervisor.takeover_suspected_at() {
        Some(first_drop) => tracing::error!(
            "client id collision detected {} ms after the first takeover; not reconnecting",
            first_drop.elapsed().as_millis()
        ),
        None => tracing::error!("client id collision detected; not reconnecting"),
    }
}
