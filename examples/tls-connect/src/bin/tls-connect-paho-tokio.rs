//! # tls-connect-paho-tokio — `tls-connect` on paho-mqtt (Eclipse Paho C) and Tokio
//!
//! **What it shows.** The same consumer as `tls-connect` (read that one first): MQTT v5 over TLS
//! on port 8883 with the broker's certificate *and host name* verified, user name and password
//! from `creds.json`, a QoS 1 subscription, every event printed, reconnects that back off, a
//! plain-words error and a meaningful exit code for every wrong setting, a clean DISCONNECT on
//! Ctrl-C or SIGTERM. Here the MQTT client is paho-mqtt 0.14, the Rust wrapper of the Eclipse
//! Paho C library, driven from Tokio.
//!
//! **Run it.** Paho C is compiled from source, so this needs cmake, a C compiler, pkg-config and
//! the OpenSSL headers (Debian/Ubuntu: `apt-get install cmake build-essential pkg-config
//! libssl-dev`), and the package feature `paho`:
//! ```text
//! cargo run -p tls-connect --features paho --bin tls-connect-paho-tokio
//! cargo run -p tls-connect --features paho --bin tls-connect-paho-tokio -- --creds creds.json
//! ```
//!
//! **How it differs from the default (rumqttc) program.**
//! - TLS is OpenSSL inside Paho C. `common::TlsRoots::paho_ssl_options` sets `.verify(true)`:
//!   Paho's default checks that the certificate chains to a trusted CA but **not** that it was
//!   issued for the host you dialled. Without that line any certificate from any trusted CA
//!   would be accepted.
//! - Paho C runs the network I/O on its own threads and hands events to Rust through a callback.
//!   We read them from `get_event_stream(None)`: an *unbounded* stream. A bounded stream
//!   (`get_event_stream(25)`) silently drops messages when it is full ("Event stream full. Losing
//!   messages") — after Paho has already acknowledged them, so they are gone for good.
//! - Paho's automatic reconnect is left off: every (re)connect goes through
//!   `ConnectionSupervisor`, so a wrong password stops the program instead of being retried
//!   forever, and two processes sharing a client id are detected.
//! - Client-side persistence is off (`PersistenceType::None`): Paho's default writes outgoing
//!   QoS 1/2 messages to files in the current directory, and a consumer publishes nothing.
//!
//! **What this library cannot do** (and the default program does).
//! - *Ack after processing.* Paho C sends the PUBACK as soon as a message arrives, before your
//!   code sees it. A crash (or a kill) while messages wait in the stream loses them: the broker
//!   will not redeliver what was acknowledged. Ctrl-C is handled by disconnecting *first* and then
//!   handling every message still in the stream, so a normal stop loses nothing.
//! - *Back-pressure.* Nothing slows the broker down when your handler is slow: the stream grows in
//!   memory instead.
//! - *Say which TLS check failed.* Paho reports an unknown CA, a certificate for another host
//!   name and a port that does not speak TLS all as `TCP/TLS connect failure`, so the error
//!   message lists the likely causes instead of naming one.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use common::supervisor::NextStep;
use common::{BrokerTarget, ConnectArgs, ConnectFailure, ConnectionSupervisor, MessagePrinter};
use paho_mqtt as mqtt;

/// Connect to the Link Labs broker over TLS with Paho (on Tokio) and print each event.
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
    // creds.json (or --creds / MQTT_CREDS), validated; missing: an error saying where to get one.
    let target = args.connect.load_target()?;
    let topic = target.credentials.topic.clone();

    let create = mqtt::CreateOptionsBuilder::new()
        .server_uri(common::paho_util::server_uri(&target))
        .client_id(&target.client_id)
        .mqtt_version(mqtt::MQTT_VERSION_5)
        .persistence(mqtt::PersistenceType::None)
        .finalize();
    let mut client = mqtt::AsyncClient::new(create).context("creating the Paho client")?;
    // Open the stream before connecting, and unbounded (see the header).
    let events = client.get_event_stream(None);
    let connect_options = connect_options(&target)?;
    tracing::info!(
        "connecting to {} as client id {} with Paho",
        target.address(),
        target.client_id
    );

    let mut supervisor = ConnectionSupervisor::new(&target);
    let mut printer = MessagePrinter::new(args.connect.stats);
    let count = args.connect.count;
    let mut handled = 0u64;
    // A stop always stops: at most STOP_MAX after Ctrl-C / SIGTERM, even with a handler stuck
    // in a message (it runs inside the loop below, which then polls nothing else).
    tokio::spawn(async {
        common::shutdown::signal().await;
        common::paho_util::stop_within(common::paho_util::STOP_MAX);
    });
    let shutdown = common::shutdown::signal();
    tokio::pin!(shutdown);

    let stop = loop {
        // 1. Connect (or reconnect). A failure goes to the supervisor (step 3) with its reason.
        let attempt = tokio::select! {
            _ = &mut shutdown => break Stop::Requested,
            result = client.connect(connect_options.clone()) => result,
        };
        let failure = match attempt {
            Err(err) => ConnectFailure::from_paho(&err, &target),
            Ok(response) => {
                supervisor.connected();
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
                    let event = tokio::select! {
                        _ = &mut shutdown => break Err(Stop::Requested),
                        event = events.recv() => event,
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
                            break Ok(ConnectFailure::paho_connection_lost(&target));
                        }
                        // Other brokers send DISCONNECT with a reason code (0x8E: taken over).
                        Ok(mqtt::Event::Disconnected { reason_code, .. }) => {
                            break Ok(ConnectFailure::from_paho_disconnect(reason_code, &target));
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

        // 3. Not connected: wait and retry, or give up with a plain message.
        match supervisor.decide(failure) {
            NextStep::RetryAfter(delay) => {
                // Sleep before reconnecting, but wake up for Ctrl-C.
                if tokio::time::timeout(delay, &mut shutdown).await.is_ok() {
                    break Stop::Requested;
                }
            }
            NextStep::GiveUp(failure) => return Err(failure.into()),
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
