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
//! **How it differs from the default program.** TLS through native-tls
//! (`target.rumqttc_native_tls()`), the change `tls-connect-rumqttc-native-tls` explains; and
//! the detection is left to `common::ConnectionSupervisor`, which applies the very rule the
//! default program writes out (`TakeoverDetector`), with the same constants.
//!
//! **What it cannot do.** Nothing is lost compared with the default. (rumqttc 0.25.1 cannot parse the short 3-byte
//! DISCONNECT `e0 01 8e` some brokers send, so here too the *pattern* is what detects a takeover
//! on those brokers; Mosquitto sends no DISCONNECT at all.)
//!
//! **Exit codes.** 6 = the client id is used by another process: restarting will not help, so a
//! supervisor (systemd, Kubernetes) should not restart on 6 without a configuration change.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use common::rumqttc_util::poll_or_silence;
use common::supervisor::NextStep;
use common::{ConnectArgs, ConnectionSupervisor, FailureKind, MessagePrinter};
use rumqttc::v5::mqttbytes::v5::{Filter, Packet, Publish, RetainForwardRule};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use rumqttc::Transport;
use tokio::sync::mpsc;

/// MQTT v5 Receive Maximum: how many unacked messages the broker may send us. Also the work
/// queue's size (every queued message is unacked), so a broker that keeps to it never fills it.
const RECEIVE_MAXIMUM: u16 = 128;

/// A PINGREQ this often when idle: shorter notices a dead link sooner, at a PINGREQ per interval.
const KEEP_ALIVE: Duration = Duration::from_secs(30);

/// How long a stop (Ctrl-C, SIGTERM) waits for the handler: well inside Kubernetes' 30 s grace.
const DRAIN_MAX: Duration = Duration::from_secs(10);

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
    // The line that differs from the default: native-tls (OpenSSL) instead of rustls.
    let tls = target.rumqttc_native_tls();
    if let Some(tls) = tls.context("setting up TLS for the broker connection")? {
        options.set_transport(Transport::tls_with_config(tls));
    }
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

    // The idle watchdog: nothing from the broker for 1.5 × keep-alive means a dead link.
    let idle_limit = KEEP_ALIVE * 3 / 2;
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
                    // Subscribe after EVERY CONNACK, with Retain Handling "only if new".
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
