//! # persistent-session-paho-async-std — `persistent-session` on paho-mqtt (Paho C) and async-std
//!
//! **What it shows.** The same consumer as `persistent-session` (read its `main.rs` first: it
//! explains the MQTT v5 trap and what must hold for a backlog to survive): `clean_start = false`
//! **and** a session expiry (`--session-expiry SECS`, default 3600), so the events published
//! while the consumer was down arrive when it comes back with the same client id, and a line at
//! every CONNACK saying whether the broker still had our session.
//!
//! **Run it.**
//! ```text
//! cargo run -p persistent-session --features paho --bin persistent-session-paho-async-std -- --creds creds.json --instance 1
//! cargo run -p persistent-session --features paho --bin persistent-session-paho-async-std -- --creds creds.json --session-expiry 0  # the trap
//! ```
//! Run, Ctrl-C (or `--count N`), wait while events are published, run again with the same
//! `--instance`: `session present: true`, then the backlog.
//!
//! Paho C is compiled from source: this needs cmake, a C compiler, pkg-config and the OpenSSL
//! headers (Debian/Ubuntu: `apt-get install cmake build-essential pkg-config libssl-dev`).
//!
//! **How it differs from the default program.** paho-mqtt 0.14 on async-std, as
//! `tls-connect-paho-async-std` explains (OpenSSL with `.verify(true)`, an unbounded event stream
//! opened before connecting — a resumed session's backlog starts flowing right after CONNACK —,
//! our own reconnects through the supervisor). The session is `clean_start(false)` plus the
//! `SessionExpiryInterval` property on the CONNECT; the CONNACK's `session_present` comes back
//! in the connect response. Paho's client-side persistence stays off: it stores *outgoing*
//! messages, it is not the broker session.
//!
//! **async-std is deprecated** (RUSTSEC-2025-0052): this variant is for code bases already on
//! it; new code should use smol (`persistent-session-paho-smol`, the same program) or Tokio.
//!
//! **What this library cannot do.**
//! - *Ack after processing.* Paho C acknowledges each message as it arrives, so the broker drops
//!   it from our session before your code has handled it. A crash while the backlog drains loses
//!   every message still waiting in the stream; the default program would get them redelivered.
//!   Ctrl-C disconnects first and then handles what is in the stream, so a normal stop loses
//!   nothing. (Hence no stale-ack guard: Paho acks on arrival, on the connection that delivered.)
//! - *Back-pressure.* A backlog of N messages arrives as fast as the broker sends it and waits in
//!   memory (the unbounded stream), however slow the handler.
//! - *The DUP flag.* paho-mqtt's `Message` does not expose it, so a redelivery cannot be marked.

use std::process::ExitCode;

use anyhow::Context;
use async_std::channel::Receiver;
use clap::Parser;
use common::supervisor::NextStep;
use common::{BrokerTarget, ConnectArgs, ConnectFailure, ConnectionSupervisor, MessagePrinter};
use futures::FutureExt;
use paho_mqtt as mqtt;

/// Consume events with a persistent MQTT v5 session (Paho on async-std, deprecated): what was published
/// while this consumer was stopped arrives when it starts again.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    connect: ConnectArgs,

    /// How long, in seconds, the broker keeps our session (subscription and queued QoS 1
    /// messages) after we disconnect. 0 ends the session at disconnect, so nothing is kept: the
    /// MQTT v5 trap, allowed here to show it. 4294967295 means "never expires".
    #[arg(long, value_name = "SECS", default_value_t = 3600)]
    session_expiry: u32,
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
    // creds.json (or --creds): host, port, user, password, topic; the client id after --instance.
    let target = args.connect.load_target()?;

    // Ctrl-C / SIGTERM: the handler runs on its own thread and only sends a note.
    let (stop_tx, stop_rx) = async_std::channel::bounded::<()>(1);
    ctrlc::set_handler(move || {
        let _ = stop_tx.try_send(());
        // A stop always stops: at most STOP_MAX, even with a handler stuck in a message.
        common::paho_util::stop_within(common::paho_util::STOP_MAX);
    })
    .context("installing the Ctrl-C / SIGTERM handler")?;

    let result = async_std::task::block_on(consume(&args, &target, &stop_rx));
    let expiry = args.session_expiry;
    if result.is_ok() && expiry > 0 {
        tracing::info!(
            "the broker keeps our session for {expiry} s: start again with client id {} within \
             that time to receive what is published meanwhile",
            target.client_id
        );
    }
    result
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
    let expiry = args.session_expiry;
    let connect_options = connect_options(target, expiry)?;
    tracing::info!(
        "connecting to {} as client id {} with Paho, clean_start=false and a session expiry of \
         {expiry} s (the broker keys the session by client id: keep it the same from run to run)",
        target.address(),
        target.client_id,
    );
    if expiry == 0 {
        tracing::warn!(
            "--session-expiry 0: the broker ends our session as soon as we disconnect, so events \
             published while this program is stopped are dropped. This is the MQTT v5 trap: \
             clean_start=false alone keeps nothing."
        );
    }

    let mut supervisor = ConnectionSupervisor::new(target);
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
                let reconnect = supervisor.ever_connected();
                supervisor.connected();
                explain_session(&response, expiry, reconnect);
                // Subscribe after EVERY CONNACK, a resumed session too. `session present: true`
                // normally means our subscription survived, but it cannot say *which* subscriptions
                // the session holds: a run that died after its CONNACK and before its SUBSCRIBE
                // reached the broker leaves a session with none, and skipping the SUBSCRIBE would
                // then receive nothing, silently, until that session expires. Subscribing to the
                // same filter again is harmless in MQTT 5: it replaces the subscription and the
                // queued messages stay [MQTT-3.8.4-3]; Retain Handling 1 (see `subscribe`) keeps it
                // from replaying retained messages.
                //
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

        // 3. Not connected: wait and retry, or give up with a plain message.
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

/// Subscribes with QoS 1 (retained messages only for a new subscription) and waits for the
/// SUBACK: `Ok(true)` when granted, `Ok(false)` when the connection dropped first (the event
/// stream reports the loss next), an error when refused.
///
/// Not just `.await` on the token: see `wait_for_suback` for the hang that avoids.
async fn subscribe(client: &mqtt::AsyncClient, filter: &str) -> anyhow::Result<bool> {
    // Retain Handling 1 ("send retained messages only if the subscription is new"): the SUBSCRIBE
    // after a resumed session's CONNACK replaces a subscription the session may still hold, and
    // must not replay the retained messages.
    let options =
        mqtt::SubscribeOptions::with_retain_handling(mqtt::RetainHandling::SendRetainedOnNew);
    let suback = client.subscribe_with_options(filter, mqtt::QOS_1, options, None);
    common::paho_util::wait_for_suback(client, suback, filter).await
}

/// The CONNECT options: MQTT v5, a persistent session, user name and password, TLS that verifies.
fn connect_options(target: &BrokerTarget, expiry: u32) -> anyhow::Result<mqtt::ConnectOptions> {
    // MQTT v5, user name and password, keep-alive, and TLS that verifies the broker's certificate
    // and host name (Paho leaves the host name unchecked unless told): see common::paho_util.
    let mut builder = common::paho_util::connect_options(target)
        .context("setting up TLS for the broker connection")?;
    // Knob 1: resume the session the broker kept for this client id, if there is one...
    builder.clean_start(false);
    // Knob 2: ...and keep this session for `expiry` seconds after we disconnect. Leaving the
    // property out means 0, and then knob 1 has nothing to resume.
    let mut properties = mqtt::Properties::new();
    properties
        .push_u32(mqtt::PropertyCode::SessionExpiryInterval, expiry)
        .context("setting the session expiry")?;
    builder.properties(properties);
    Ok(builder.finalize())
}

/// Says, in words, what a CONNACK means for the events published while we were away (the same
/// sentences as the default program, from `common::session`). Paho hands us the CONNACK as the
/// connect response.
fn explain_session(response: &mqtt::ServerResponse, requested_expiry: u32, reconnect: bool) {
    let session_present = response
        .connect_response()
        .is_some_and(|connack| connack.session_present);
    // A broker may grant a shorter expiry than we asked for; it then says so in the CONNACK.
    let granted = response
        .properties()
        .get_int(mqtt::PropertyCode::SessionExpiryInterval)
        .map(|secs| secs as u32);
    common::session::explain(session_present, requested_expiry, granted, reconnect);
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
