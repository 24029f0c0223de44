//! # client-id-collision-paho-async-std — detect a shared client id, on paho-mqtt and async-std
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
//! cargo run -p client-id-collision --features paho --bin client-id-collision-paho-async-std -- --creds creds.json
//! # the fix: one id per process
//! cargo run -p client-id-collision --features paho --bin client-id-collision-paho-async-std -- --creds creds.json --instance 1
//! cargo run -p client-id-collision --features paho --bin client-id-collision-paho-async-std -- --creds creds.json --instance 2
//! ```
//! Paho C is compiled from source: this needs cmake, a C compiler, pkg-config and the OpenSSL
//! headers (Debian/Ubuntu: `apt-get install cmake build-essential pkg-config libssl-dev`).
//!
//! **How it differs from the default program.** On paho-mqtt 0.14 (Paho C) and async-std; `tls-connect-paho-async-std` explains
//! the Paho specifics (OpenSSL with `.verify(true)`, an unbounded event stream, our own
//! reconnects through the supervisor instead of Paho's automatic reconnect, which would
//! otherwise keep fighting for the id for ever).
//!
//! **async-std is deprecated** (RUSTSEC-2025-0052): this variant is for code bases already on
//! it; new code should use smol (`client-id-collision-paho-smol`, the same program) or Tokio.
//!
//! **What it cannot do.** Ack after processing: Paho C acknowledges each message as it arrives
//! (see `tls-connect-paho-tokio`). The detection itself works as in the default: Paho reports
//! Mosquitto's silent close as `Event::ConnectionLost` and a DISCONNECT 0x8E as
//! `Event::Disconnected`, and both go to `common::ConnectionSupervisor`.
//!
//! **Exit codes.** 6 = the client id is used by another process: restarting will not help, so a
//! supervisor (systemd, Kubernetes) should not restart on 6 without a configuration change.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use async_std::channel::Receiver;
use clap::Parser;
use common::supervisor::NextStep;
use common::{
    BrokerTarget, ConnectArgs, ConnectFailure, ConnectionSupervisor, FailureKind, MessagePrinter,
};
use futures::FutureExt;
use paho_mqtt as mqtt;

/// One connection per process (Paho on async-std, deprecated); stop with exit code 6 when another
/// process uses our client id.
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

    // Ctrl-C / SIGTERM: the handler runs on its own thread and only sends a note.
    let (stop_tx, stop_rx) = async_std::channel::bounded::<()>(1);
    ctrlc::set_handler(move || {
        let _ = stop_tx.try_send(());
        // A stop always stops: at most STOP_MAX, even with a handler stuck in a message.
        common::paho_util::stop_within(common::paho_util::STOP_MAX);
    })
    .context("installing the Ctrl-C / SIGTERM handler")?;

    async_std::task::block_on(consume(&args, &target, &stop_rx))
}

async fn consume(
    args: &Args,
    target: &BrokerTarget,
    stop_signal: &Receiver<()>,
) -> anyhow::Result<()> {
    let topic = target.credentials.topic.clone();

    let create = mqtt::CreateOptionsBuilder::new()
        .server_uri(common::paho_util::server_uri(target))
        .client_id(&target.client_id)
        .mqtt_version(mqtt::MQTT_VERSION_5)
        .persistence(mqtt::PersistenceType::None)
        .finalize();
    let mut client = mqtt::AsyncClient::new(create).context("creating the Paho client")?;
    // Open the stream before connecting, and unbounded (see the header).
    let events = client.get_event_stream(None);
    let connect_options = connect_options(target)?;
    tracing::info!(
        "connecting to {} as client id {} with Paho",
        target.address(),
        target.client_id
    );

    let mut supervisor = ConnectionSupervisor::new(target);
    // Only for the log line that makes the symptom visible: how long each connection lived.
    let mut connected_at: Option<Instant> = None;
    let mut printer = MessagePrinter::new(args.connect.stats);
    let count = args.connect.count;
    let mut handled = 0u64;

    let stop = loop {
        // 1. Connect (or reconnect). A failure goes to the supervisor (step 3) with its reason.
        let attempt = futures::select! {
            _ = stop_signal.recv().fuse() => break Stop::Requested,
            result = client.connect(connect_options.clone()).fuse() => result,
        };
        let failure = match attempt {
            Err(err) => ConnectFailure::from_paho(&err, target),
            Ok(response) => {
                supervisor.connected();
                connected_at = Some(Instant::now());
                let session_present = response
                    .connect_response()
                    .is_some_and(|connack| connack.session_present);
                tracing::info!("connected (session present: {session_present})");
                // Subscribe after EVERY CONNACK (not only when no session is present), with
                // Retain Handling "only if new": a repeat does not resend retained messages.
                // `false`: the connection dropped first; the event stream says so next.
                if subscribe(&client, &topic).await? {
                    tracing::info!("subscribed to {topic} with QoS 1");
                }

                // 2. Handle events until the connection drops, --count is reached, or Ctrl-C.
                let lost = loop {
                    let event = futures::select! {
                        _ = stop_signal.recv().fuse() => break Err(Stop::Requested),
                        event = events.recv().fuse() => event,
                    };
                    match event {
                        Ok(mqtt::Event::Message(message)) => {
                            handled += 1;
                            show(&mut printer, handled, &message);
                            if count == Some(handled) {
                                break Err(Stop::CountReached);
                            }
                        }
                        // Mosquitto drops a connection without a DISCONNECT packet (also when
                        // another process takes our client id over).
                        Ok(mqtt::Event::ConnectionLost) => {
                            break Ok(ConnectFailure::paho_connection_lost(target));
                        }
                        // Other brokers send DISCONNECT with a reason code (0x8E: taken over).
                        Ok(mqtt::Event::Disconnected { reason_code, .. }) => {
                            break Ok(ConnectFailure::from_paho_disconnect(reason_code, target));
                        }
                        Ok(mqtt::Event::Connected | mqtt::Event::Shutdown) => {}
                        Err(_) => anyhow::bail!("Paho's event stream closed unexpectedly"),
                    }
                };
                match lost {
                    Ok(failure) => failure,
                    Err(stop) => break stop,
                }
            }
        };

        // 3. Not connected: wait and retry, or give up with a plain message. The symptom of a
        //    shared id: a connection closed by the broker moments after it was accepted. Once is
        //    an accident; again and again is another client with our id.
        if let Some(since) = connected_at.take() {
            tracing::warn!(
                "connection ended {} ms after its CONNACK",
                since.elapsed().as_millis()
            );
        }
        match supervisor.decide(failure) {
            NextStep::RetryAfter(delay) => {
                // Sleep before reconnecting, but wake up for Ctrl-C.
                if async_std::future::timeout(delay, stop_signal.recv())
                    .await
                    .is_ok()
                {
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
    };

    // 4. Stop. DISCONNECT first, so that no more messages arrive...
    if let Stop::Requested = stop {
        tracing::info!("stop requested: disconnecting, then handling what Paho already acked");
    }
    // Says whether the DISCONNECT really went out: the last log line must not claim it otherwise.
    let disconnected = common::paho_util::disconnect(&client).await;
    // ...then deal with what is still in the stream: Paho C has already acknowledged it, so
    // nobody will ever redeliver it. On Ctrl-C we handle it; after --count we can only say so.
    let waiting = common::paho_util::take_waiting_messages(&events);
    match stop {
        Stop::Requested => {
            for message in waiting {
                handled += 1;
                show(&mut printer, handled, &message);
            }
        }
        Stop::CountReached => common::paho_util::report_dropped(waiting.len()),
    }
    printer.finish();
    tracing::info!("processed {handled} messages; {disconnected}");
    Ok(())
}

/// Subscribes with QoS 1 (Retain Handling "only if new") and waits for the SUBACK: `Ok(true)`
/// when granted, `Ok(false)` when the connection dropped first (the event stream reports the
/// loss next), an error when refused.
///
/// Not just `.await` on the token: see `wait_for_suback` for the hang that avoids.
async fn subscribe(client: &mqtt::AsyncClient, filter: &str) -> anyhow::Result<bool> {
    // Retain Handling 1: retained messages only for a new subscription, not on every reconnect.
    let options =
        mqtt::SubscribeOptions::with_retain_handling(mqtt::RetainHandling::SendRetainedOnNew);
    let suback = client.subscribe_with_options(filter, mqtt::QOS_1, options, None);
    common::paho_util::wait_for_suback(client, suback, filter).await
}

/// The CONNECT options: MQTT v5, a fresh session, user name and password, TLS that verifies.
fn connect_options(target: &BrokerTarget) -> anyhow::Result<mqtt::ConnectOptions> {
    // MQTT v5, user name and password, keep-alive, and TLS that verifies the broker's certificate
    // and host name (Paho leaves the host name unchecked unless told): see common::paho_util.
    let mut builder = common::paho_util::connect_options(target)
        .context("setting up TLS for the broker connection")?;
    // This example does not keep a session across restarts; see `persistent-session`.
    builder.clean_start(true);
    Ok(builder.finalize())
}

/// "Handles" one message: prints it (or counts it with --stats).
fn show(printer: &mut MessagePrinter, handled: u64, message: &mqtt::Message) {
    let label = format!("message {handled} on {}", message.topic());
    printer.show(&label, message.payload());
}

/// Why the main loop ended.
enum Stop {
    /// Ctrl-C or SIGTERM.
    Requested,
    /// `--count` messages were handled.
    CountReached,
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
