//! # clean-session — only what happens from now on: no backlog
//! Read more: docs/src/sessions.md
//!
//! **What it shows.** An MQTT v5 *clean start*: `clean_start = true` and no session expiry. The
//! broker throws away any session it kept for this client id — messages queued for it included
//! — and the session it creates ends with the connection. So each start (and each reconnect)
//! begins empty: events published while the consumer was down are never delivered, only those
//! published after it subscribed. At every CONNACK the program says so.
//!
//! **When it is the right choice.** Live views (a dashboard, a map of where tags are *now*), where
//! a burst of ten-minute-old positions is worse than none, and nothing should queue on the broker
//! for a consumer that may never come back. **The trade-off:** every gap is permanent (a deploy, a
//! crash, a network blip), and a clean start also *discards* the backlog a persistent consumer
//! with the same client id left behind. If every event counts, use `persistent-session`.
//!
//! **Run it.**
//! ```text
//! cargo run -p clean-session     # no creds.json: a demo broker, this program run twice
//! cargo run -p clean-session --bin clean-session -- --creds creds.json --instance 1
//! ```
//! Run it, press Ctrl-C, wait a minute while your tags report, and run it again: the second run
//! starts with `session present: false` and shows none of that minute's events, only the ones
//! that follow.
//!
//! **What you will see.** `session present: false — clean start: …`, the subscription, then each
//! event published from now on as `message N on <topic>` and its JSON. A lost connection is
//! retried with backoff; what was published meanwhile is not delivered (by design).
//!
//! **Deliberately left out:** keeping the backlog (`persistent-session`), dropping duplicates
//! (`qos1-at-least-once`), spreading load over processes (`shared-subscription`).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use common::broker_addresses::BrokerAddresses;
use common::cli::CONSUMER_OUTGOING_INFLIGHT;
use common::rumqttc_util::{poll_or_silence, REQUEST_CHANNEL_CAPACITY};
use common::supervisor::NextStep;
use common::{ConnectArgs, ConnectionSupervisor, MessagePrinter};
use rumqttc::v5::mqttbytes::v5::{Filter, Packet, Publish, RetainForwardRule};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use rumqttc::Transport;
use tokio::sync::mpsc;

/// MQTT v5 Receive Maximum: how many messages the broker may send before we ack one, so a burst
/// waits on the broker, not in this process. Also the work queue's size (all unacked).
const RECEIVE_MAXIMUM: u16 = 128;
/// A PINGREQ after this much silence; a dead link is noticed after 1.5 × this (see below).
const KEEP_ALIVE: Duration = Duration::from_secs(30);
/// The largest packet we accept: rumqttc's default of 10 KiB is tight for batched locations.
const MAX_PACKET_SIZE: u32 = 256 * 1024;
/// How long a stop waits for the handler; well before Kubernetes' SIGKILL (30 s after SIGTERM).
const DRAIN_MAX: Duration = Duration::from_secs(10);

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
    // creds.json (or --creds): host, port, user, password, topic; the client id after --instance.
    let target = args.connect.load_target()?;
    let topic = target.credentials.topic.clone();

    let creds = &target.credentials;
    let mut options = MqttOptions::new(target.client_id.clone(), creds.host.clone(), creds.port);
    options
        .set_credentials(creds.username.clone(), creds.password.expose().to_owned())
        .set_keep_alive(KEEP_ALIVE)
        .set_max_packet_size(Some(MAX_PACKET_SIZE))
        // We publish nothing: room for a SUBSCRIBE, not 65,536 slots allocated up front (13 MiB).
        .set_outgoing_inflight_upper_limit(CONSUMER_OUTGOING_INFLIGHT);
    // ANCHOR: clean_start_knobs
    options
        // Ack after processing, not on receipt: Receive Maximum then bounds what is unprocessed,
        // not just unread. (A crash loses it either way: a clean session is never resumed.)
        .set_manual_acks(true)
        // Knob 1: discard whatever session the broker kept for this client id...
        .set_clean_start(true)
        // ...knob 2: and keep none after we disconnect (absent = 0 s). Nothing queues for us.
        .set_session_expiry_interval(None)
        // Flow control: at most RECEIVE_MAXIMUM unacked messages on their way to us, so a burst
        // waits on the broker, not in this process.
        .set_receive_maximum(Some(RECEIVE_MAXIMUM));
    // ANCHOR_END: clean_start_knobs
    // TLS: the broker verified (system CAs or --ca-file, host name checked); None: plaintext.
    if let Some(tls) = target.rumqttc_tls().context("setting up TLS")? {
        options.set_transport(Transport::tls_with_config(tls));
    }
    // A cluster behind one DNS name: every address tried, resolved again before each reconnect.
    let mut addresses = BrokerAddresses::new(&target, &options)?;
    let options = addresses.next_attempt().await;
    // Room for every ack in the request channel, or a burst freezes us: REQUEST_CHANNEL_CAPACITY.
    let (client, mut eventloop) = AsyncClient::new(options, REQUEST_CHANNEL_CAPACITY);
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
            // Handled: now, and only now, tell the broker it may forget the message. No stale-ack
            // guard: a clean session is never resumed, so the broker resends nothing, and an ack
            // that lands on a later connection cannot make it skip a redelivery.
            handler_client.ack(&publish).await?;
            if count == Some(handled) {
                break;
            }
        }
        printer.finish();
        anyhow::Ok(handled)
    });

    // The idle watchdog: 1.5 × keep-alive without a packet from the broker means a dead link.
    let idle_limit = KEEP_ALIVE * 3 / 2;
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
                    // A clean session never has subscriptions: subscribe after every CONNACK (the
                    // same pattern as persistent-session, where it matters as much).
                    client.try_subscribe_many([subscription(&topic)])?;
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
                // Retry with backoff (a lost link, a broker restart), or stop with the reason in
                // plain words (bad password, client id taken by another process).
                Err(err) => match supervisor.failed(&err) {
                    // Sleep before reconnecting, but wake up for Ctrl-C.
                    NextStep::RetryAfter(delay) => {
                        if tokio::time::timeout(delay, &mut shutdown).await.is_ok() {
                            break Stop::Requested;
                        }
                        eventloop.options = addresses.next_attempt().await;
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
    Ok(())
}

/// Our subscription: QoS 1, and Retain Handling 1 ("send retained messages only if the
/// subscription is new"): every subscription of a clean session is new, but the pattern is the
/// one a persistent session needs, so a switch to it is one knob.
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
