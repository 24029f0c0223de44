//! # persistent-session-rumqttc-native-tls — `persistent-session` with the platform's TLS library
//!
//! **What it shows.** The same consumer as `persistent-session` (read its `main.rs` first: it
//! explains the MQTT v5 trap and what must hold for a backlog to survive): `clean_start = false`
//! **and** a session expiry (`--session-expiry SECS`, default 3600), so the events published
//! while the consumer was down arrive when it comes back with the same client id, and a line at
//! every CONNACK saying whether the broker still had our session.
//!
//! **Run it.**
//! ```text
//! cargo run -p persistent-session --features native-tls --bin persistent-session-rumqttc-native-tls -- --creds creds.json
//! cargo run -p persistent-session --features native-tls --bin persistent-session-rumqttc-native-tls -- --creds creds.json --session-expiry 0  # the trap
//! ```
//! Run, Ctrl-C, wait while events are published, run again: `session present: true`, then the
//! backlog. (Without creds.json a demo broker starts inside the process, so every demo run starts
//! without a session: it shows the output, not the backlog.)
//!
//! **How it differs from the default program.** One line: `target.rumqttc_options_native_tls()`
//! instead of `target.rumqttc_options()`, so TLS goes through native-tls (OpenSSL on Linux,
//! SChannel on Windows, Secure Transport on macOS); `tls-connect-rumqttc-native-tls` says when
//! to choose it.
//!
//! **What it cannot do.** Nothing is lost: the session, the backlog, acks after processing,
//! back-pressure and the clean DISCONNECT are the default's.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use common::supervisor::NextStep;
use common::{ConnectArgs, ConnectionSupervisor, MessagePrinter};
use rumqttc::v5::mqttbytes::v5::{ConnAck, Filter, Packet, Publish, RetainForwardRule};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event};
use tokio::sync::mpsc;

/// MQTT v5 Receive Maximum: how many QoS 1 messages the broker may send us before we ack one.
/// It keeps a large backlog on the broker instead of in this process — with a broker that keeps
/// to it (see `set_receive_maximum` below). It also sizes the work queue: every queued message
/// is unacked, so a broker that respects it never finds the queue full.
/// Throughput is at most about RECEIVE_MAXIMUM / round-trip time (128 / 50 ms = 2,560 msg/s);
/// memory at most RECEIVE_MAXIMUM × the maximum packet size.
const RECEIVE_MAXIMUM: u16 = 128;

/// How long a stop (Ctrl-C, SIGTERM) waits for the handler to finish what it already received.
/// Kubernetes sends SIGKILL 30 s after SIGTERM; stopping well before leaves time for DISCONNECT.
const DRAIN_MAX: Duration = Duration::from_secs(10);

/// Consume events with a persistent MQTT v5 session: what was published while this consumer was
/// stopped arrives when it starts again.
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
    let expiry = args.session_expiry;

    // The one line that differs from `persistent-session`: native-tls (OpenSSL) instead of rustls.
    let mut options = target
        .rumqttc_options_native_tls()
        .context("setting up TLS for the broker connection")?;
    options
        // Ack after processing, not on receipt: a crash between the two then means redelivery,
        // not a lost event. In a persistent session the broker keeps unacked messages for us.
        .set_manual_acks(true)
        // Knob 1: resume the session the broker kept for this client id, if there is one...
        .set_clean_start(false)
        // ...knob 2: and keep this session for `expiry` seconds after we disconnect. Leaving
        // the property out means 0, and then knob 1 has nothing to resume.
        .set_session_expiry_interval(Some(expiry))
        // Flow control: at most RECEIVE_MAXIMUM unacked messages on their way to us, so that a
        // resumed session's backlog waits on the broker, not in this process. Do not rely on it
        // alone: Mosquitto 2.0.11 keeps to it only until our first ack (then it sends
        // RECEIVE_MAXIMUM more per ack), which is why `ack()` below must never wait for room.
        .set_receive_maximum(Some(RECEIVE_MAXIMUM));
    // The request channel carries our acks to the event loop. If `ack()` ever waited for room
    // in it, the handler would wait for this loop and this loop for the handler, for ever: that
    // froze this consumer on a 95,000-message backlog (see REQUEST_CHANNEL_CAPACITY).
    let (client, mut eventloop) =
        AsyncClient::new(options, common::rumqttc_util::REQUEST_CHANNEL_CAPACITY);
    tracing::info!(
        "connecting to {} as client id {} with clean_start=false and a session expiry of \
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
    if demo.is_some() {
        tracing::info!(
            "the demo broker lives inside this process, so each demo run starts without a \
             session. To see the backlog, use real credentials: run, Ctrl-C, wait, run again."
        );
    }

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
            // DUP: the broker sent this before and got no ack (we crashed or lost the
            // connection first). We may have handled it already.
            let redelivery = if publish.dup { " (redelivery)" } else { "" };
            printer.show(
                &format!("message {handled} on {topic}{redelivery}"),
                &publish.payload,
            );
            // Handled: now, and only now, the broker may drop it from our session.
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
    let shutdown = common::shutdown::signal();
    tokio::pin!(shutdown);

    let stop = loop {
        tokio::select! {
            _ = &mut shutdown => break Stop::Requested,
            // The handler ends on its own only when --count messages were handled (or on error).
            result = &mut handler => break Stop::HandlerFinished(result),
            event = poll_or_silence(&mut eventloop, &mut last_heard, idle_limit) => match event {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    let reconnect = supervisor.ever_connected();
                    supervisor.connected();
                    explain_session(&ack, expiry, reconnect);
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
                    // Waits while the queue is full: that is the back-pressure (only a broker
                    // that ignores our Receive Maximum can fill it). A stop request still
                    // wins: a consumer must never be deaf to SIGTERM.
                    tokio::select! {
                        sent = work_tx.send(publish) => if sent.is_err() {
                            // The handler is gone; its result (an error or --count) comes next.
                            break Stop::HandlerFinished((&mut handler).await);
                        },
                        _ = &mut shutdown => break Stop::Requested,
                    }
                }
                Ok(_) => {}
                Err(err) => match supervisor.failed(&err) {
                    NextStep::RetryAfter(delay) => {
                        // Sleep before reconnecting, but wake up for Ctrl-C.
                        if tokio::time::timeout(delay, &mut shutdown).await.is_ok() {
                            break Stop::Requested;
                        }
                    }
                    NextStep::GiveUp(failure) => return Err(failure.into()),
                },
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
    // A clean DISCONNECT: the acks above reach the broker first, so the session we leave behind
    // holds only what we have not handled.
    let disconnected = common::rumqttc_util::disconnect(&client, &mut eventloop).await;
    tracing::info!("processed {handled} messages; {disconnected}");
    // (The demo broker stops with this process, and our session with it.)
    if expiry > 0 && demo.is_none() {
        tracing::info!(
            "the broker keeps our session for {expiry} s: start again with client id {} within \
             that time to receive what is published meanwhile",
            target.client_id
        );
    }
    if let Some(demo) = demo {
        demo.shutdown().await;
    }
    Ok(())
}

/// Says, in words, what a CONNACK means for the events published while we were away (the
/// sentences are in `common::session`). This is the line to look for in production logs after a
/// restart: `session present: false` where `true` was expected means a backlog was lost.
fn explain_session(ack: &ConnAck, requested_expiry: u32, reconnect: bool) {
    // A broker may grant a shorter expiry than we asked for; it then says so in the CONNACK.
    let granted = ack
        .properties
        .as_ref()
        .and_then(|properties| properties.session_expiry_interval);
    common::session::explain(ack.session_present, requested_expiry, granted, reconnect);
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
    HandlerFinished(Result<anyhow::Result<u64>, tokio::task::JoinError>),
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
