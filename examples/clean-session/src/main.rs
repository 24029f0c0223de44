//! # clean-session — only what happens from now on: no backlog
//! Read more: docs/src/sessions.md
//!
//! **What it shows.** An MQTT v5 *clean start*: the consumer connects with `clean_start = true`
//! and no session expiry. The broker throws away any session it kept for this client id —
//! including messages queued for it while it was away — and the session it creates ends when the
//! connection does. So each start (and each reconnect) begins with an empty slate: the events
//! published while the consumer was down are never delivered, only the ones published after it
//! subscribed. At every CONNACK the program says so.
//!
//! **When this is the right choice.** Live views: a dashboard, a map of where tags are *now*, a
//! "tag entered zone" light on a screen. There a stale event is worse than a missing one: after a
//! ten-minute outage, replaying ten minutes of location updates in a burst makes every marker jump
//! through old positions, and the next live event corrects the view anyway. A clean start also
//! costs the broker nothing while you are away: no queue builds up for a consumer that may never
//! come back, and a forgotten test client cannot fill the broker's per-client queue.
//!
//! **The trade-off.** Every gap is permanent. A deploy, a crash, a network blip or a broker
//! restart loses whatever was published during it, and a message that arrived but was not yet
//! acked when the connection dropped is not sent again (the new session knows nothing of it).
//! Starting with a clean session also *discards* a session left by an earlier persistent consumer
//! with the same client id, backlog included. If every event counts (history, billing, alerts that
//! must not be missed), use `persistent-session` instead; a persistent session with a short expiry
//! (say 60 s) is the middle ground that rides out a restart but not a long outage. A live view that
//! needs a starting picture should load the current state another way (the platform's HTTP API)
//! and then apply live events on top.
//!
//! Set both v5 knobs on purpose: `clean_start = true` drops the old session at connect, and leaving
//! out the session expiry (= 0) makes the broker drop ours at disconnect. `clean_start = true` with
//! a long expiry would have the broker queue events for a session that the next start throws away.
//!
//! **Run it.**
//! ```text
//! cargo run -p clean-session                           # no creds.json: local demo broker
//! cargo run -p clean-session -- --creds creds.json
//! ```
//! To see it with real credentials: run it, press Ctrl-C, wait a minute while your tags report,
//! and run it again: the second run starts with `session present: false` and shows none of that
//! minute's events, only the ones that follow. To compare with `persistent-session`: run that one,
//! press Ctrl-C, wait a minute, then run this one with the same client id. It prints only events
//! published from then on; the minute's backlog the broker was keeping for the persistent session
//! is discarded (run `persistent-session` again afterwards and it finds no session either). With
//! the in-process demo broker every run starts fresh anyway, so it shows the output, not the gap.
//!
//! **What you will see.** `session present: false — clean start: …`, the subscription, then each
//! event published from now on as `message N on <topic>` and its JSON.
//!
//! **Deliberately left out** (see the other examples): keeping the backlog
//! (`persistent-session`), dropping duplicates (`qos1-at-least-once`), spreading load over
//! processes (`shared-subscription`).

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use common::supervisor::NextStep;
use common::{ConnectArgs, ConnectionSupervisor, MessagePrinter};
use rumqttc::v5::mqttbytes::v5::{Packet, Publish};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event};
use tokio::sync::mpsc;

/// How long a stop (Ctrl-C, SIGTERM) waits for the handler to finish what it already received.
/// Kubernetes sends SIGKILL 30 s after SIGTERM; stopping well before leaves time for DISCONNECT.
const DRAIN_MAX: std::time::Duration = std::time::Duration::from_secs(10);

/// MQTT v5 Receive Maximum: how many messages the broker may send before we ack one. Also the
/// work queue's size: every queued message is unacked, so a broker that keeps to it never finds
/// the queue full.
const RECEIVE_MAXIMUM: u16 = 128;

/// Consume only the events published from now on: a clean MQTT v5 session, no backlog.
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

    let mut options = target
        .rumqttc_options()
        .context("setting up TLS for the broker connection")?;
    // ANCHOR: clean_start_knobs
    options
        // Ack after processing, not on receipt: within a connection the broker still resends an
        // unacked message, so a slow handler does not lose what it was given.
        .set_manual_acks(true)
        // Knob 1: discard whatever session the broker kept for this client id...
        .set_clean_start(true)
        // ...knob 2: and keep none after we disconnect (absent = 0 s). Nothing queues for us.
        .set_session_expiry_interval(None)
        // Flow control: at most RECEIVE_MAXIMUM unacked messages on their way to us, so a burst
        // waits on the broker, not in this process.
        .set_receive_maximum(Some(RECEIVE_MAXIMUM));
    // ANCHOR_END: clean_start_knobs
    // `ack()` must never wait for room in rumqttc's request channel: see REQUEST_CHANNEL_CAPACITY.
    let (client, mut eventloop) =
        AsyncClient::new(options, common::rumqttc_util::REQUEST_CHANNEL_CAPACITY);
    tracing::info!(
        "connecting to {} as client id {} with clean_start=true and no session expiry: events \
         published while this program is not connected are never delivered to it",
        target.address(),
        target.client_id,
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
                    if reconnect {
                        tracing::info!(
                            "session present: {} — reconnected with a clean start: the events \
                             published while we were disconnected are not delivered (by design \
                             here); live events resume after the subscription",
                            ack.session_present
                        );
                    } else {
                        tracing::info!(
                            "session present: {} — clean start: the broker dropped any session and \
                             backlog it kept for this client id; only events published from now on \
                             arrive",
                            ack.session_present
                        );
                    }
                    // A clean session never has subscriptions: subscribe after every CONNACK.
                    client.try_subscribe(topic.clone(), QoS::AtLeastOnce)?;
                }
                Ok(Event::Incoming(Packet::SubAck(ack))) => {
                    common::rumqttc_util::check_suback(&ack, &topic)?;
                    tracing::info!("subscribed to {topic} with QoS 1; waiting for new events");
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
    let disconnected = common::rumqttc_util::disconnect(&client, &mut eventloop).await;
    tracing::info!(
        "processed {handled} messages; {disconnected} (the broker keeps nothing for us)"
    );
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
