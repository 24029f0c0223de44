//! # client-id-collision-rumqttc-native-tls — detect a shared client id, with native-tls (OpenSSL)
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
//! cargo run -p client-id-collision --features native-tls --bin client-id-collision-rumqttc-native-tls -- --creds creds.json
//! # the fix: one id per process
//! cargo run -p client-id-collision --features native-tls --bin client-id-collision-rumqttc-native-tls -- --creds creds.json --instance 1
//! cargo run -p client-id-collision --features native-tls --bin client-id-collision-rumqttc-native-tls -- --creds creds.json --instance 2
//! ```
//! **How it differs from the default program.** One connection per process (the default's
//! `--single` mode), and TLS through native-tls (`target.rumqttc_options_native_tls()`) — the
//! change `tls-connect-rumqttc-native-tls` explains.
//!
//! **What it cannot do.** Nothing is lost compared with the default: the detection is
//! `common::ConnectionSupervisor`, the same code. (rumqttc 0.25.1 cannot parse the short 3-byte
//! DISCONNECT `e0 01 8e` some brokers send, so here too the *pattern* is what detects a takeover
//! on those brokers; Mosquitto sends no DISCONNECT at all.)
//!
//! **Exit codes.** 6 = the client id is used by another process: restarting will not help, so a
//! supervisor (systemd, Kubernetes) should not restart on 6 without a configuration change.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use common::supervisor::NextStep;
use common::{ConnectArgs, ConnectionSupervisor, FailureKind, MessagePrinter};
use rumqttc::v5::mqttbytes::v5::{Packet, Publish};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event};
use tokio::sync::mpsc;

/// MQTT v5 Receive Maximum: how many messages the broker may send before we ack one. Also the
/// work queue's size: every queued message is unacked, so a broker that keeps to it never finds
/// the queue full.
const RECEIVE_MAXIMUM: u16 = 128;

/// How long a stop (Ctrl-C, SIGTERM) waits for the handler to finish what it already received.
/// Kubernetes sends SIGKILL 30 s after SIGTERM; stopping well before leaves time for DISCONNECT.
const DRAIN_MAX: std::time::Duration = std::time::Duration::from_secs(10);

/// One connection per process (native-tls); stop with exit code 6 when another process uses our
/// client id.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    connect: ConnectArgs,
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

    // The one line that differs from `tls-connect`: native-tls (OpenSSL) instead of rustls.
    let mut options = target
        .rumqttc_options_native_tls()
        .context("setting up TLS for the broker connection")?;
    options
        // Ack after processing, not on receipt: a crash between the two then means redelivery,
        // not a lost event.
        .set_manual_acks(true)
        // This example does not keep a session across restarts; see `persistent-session`.
        .set_clean_start(true)
        // At most RECEIVE_MAXIMUM unacked messages on their way to us.
        .set_receive_maximum(Some(RECEIVE_MAXIMUM));
    // `ack()` must never wait for room: see common::rumqttc_util::REQUEST_CHANNEL_CAPACITY.
    let (client, mut eventloop) =
        AsyncClient::new(options, common::rumqttc_util::REQUEST_CHANNEL_CAPACITY);
    tracing::info!(
        "connecting to {} as client id {} (native TLS: {})",
        target.address(),
        target.client_id,
        target.security
    );

    // The bounded work queue between the polling task (here) and the handler task.
    let (work_tx, mut work_rx) = mpsc::channel::<Publish>(usize::from(RECEIVE_MAXIMUM));
    let handler_client = client.clone();
    let count = args.connect.count;
    let mut printer = MessagePrinter::new(args.connect.stats);
    let mut handler = tokio::spawn(async move {
        let mut handled = 0u64;
        while let Some(publish) = work_rx.recv().await {
            handled += 1;
            let topic = String::from_utf8_lossy(&publish.topic);
            printer.show(&format!("message {handled} on {topic}"), &publish.payload);
            // Handled: now, and only now, tell the broker it may forget the message.
            handler_client.ack(&publish).await?;
            if count == Some(handled) {
                break;
            }
        }
        printer.finish();
        anyhow::Ok(handled)
    });

    // The idle watchdog (see `poll_or_silence`): 1.5 × keep-alive without a packet from the
    // broker means a dead link. The keep-alive (30 s, set in common::cli) is the trade-off:
    // shorter notices a dead link sooner, and costs a PINGREQ/PINGRESP pair per keep-alive.
    let idle_limit = eventloop.options.keep_alive() * 3 / 2;
    let mut last_heard = tokio::time::Instant::now();
    let mut supervisor = ConnectionSupervisor::new(&target);
    // Only for the log line that makes the symptom visible: how long each connection lived.
    let mut connected_at: Option<Instant> = None;
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
                    connected_at = Some(Instant::now());
                    tracing::info!("connected (session present: {})", ack.session_present);
                    // A new session has no subscriptions: (re)subscribe after every such CONNACK.
                    if !ack.session_present {
                        client.try_subscribe(topic.clone(), QoS::AtLeastOnce)?;
                    }
                }
                Ok(Event::Incoming(Packet::SubAck(ack))) => {
                    common::rumqttc_util::check_suback(&ack, &topic)?;
                    tracing::info!("subscribed to {topic} with QoS 1");
                }
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    // Waits while the queue is full: that is the back-pressure.
                    // A stop request still wins while we wait: a consumer must never be deaf to
                    // SIGTERM.
                    tokio::select! {
                        sent = work_tx.send(publish) => if sent.is_err() {
                            // The handler is gone; its result (an error or --count) comes next.
                            break Stop::HandlerFinished((&mut handler).await);
                        },
                        _ = &mut shutdown => break Stop::Requested,
                    }
                }
                Ok(_) => {}
                Err(err) => {
                    // The symptom: a connection closed by the broker moments after it was
                    // accepted. Once is an accident; again and again is another client with our id.
                    if let Some(since) = connected_at.take() {
                        tracing::warn!(
                            "connection ended {} ms after its CONNACK",
                            since.elapsed().as_millis()
                        );
                    }
                    match supervisor.failed(&err) {
                        NextStep::RetryAfter(delay) => {
                            // Sleep before reconnecting, but wake up for Ctrl-C.
                            if tokio::time::timeout(delay, &mut shutdown).await.is_ok() {
                                break Stop::Requested;
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
            },
        }
    };

    let handled = match stop {
        Stop::Requested => {
            drop(work_tx);
            // At most DRAIN_MAX: a stop always stops, even with a stuck handler.
            common::shutdown::drain(handler, DRAIN_MAX)
                .await?
                .unwrap_or_default()
        }
        Stop::HandlerFinished(result) => result??,
    };
    let disconnected = common::rumqttc_util::disconnect(&client, &mut eventloop).await;
    tracing::info!("processed {handled} messages; {disconnected}");
    if let Some(demo) = demo {
        demo.shutdown().await;
    }
    Ok(())
}

/// Why the main loop ended.
enum Stop {
    /// Ctrl-C or SIGTERM.
    Requested,
    /// The handler task returned (after `--count` messages, or with an error).
    HandlerFinished(Result<anyhow::Result<u64>, tokio::task::JoinError>),
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
