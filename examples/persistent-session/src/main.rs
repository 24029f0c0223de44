//! # persistent-session — get the events published while your consumer was down
//! Read more: docs/src/sessions.md
//!
//! **What it shows.** An MQTT v5 *persistent session*: `clean_start = false` **and** a session
//! expiry above zero (`--session-expiry SECS`, default 3600). The broker keeps our subscription
//! and the QoS 1 messages for it after we disconnect, and delivers that backlog when the same
//! client id connects again. Without the expiry (= 0) the session ends with the connection and
//! the backlog is silently dropped: the MQTT v5 trap (`--session-expiry 0` shows it). Also: acks
//! after processing, only on the connection that delivered the message (the stale-ack guard);
//! a SUBSCRIBE after every CONNACK; a clean DISCONNECT (Ctrl-C, SIGTERM, `--count`) that leaves
//! the session on the broker.
//!
//! **Run it.**
//! ```text
//! cargo run -p persistent-session     # no creds.json: a demo broker, this program run twice
//! cargo run -p persistent-session --bin persistent-session -- --creds creds.json --instance 1
//! ```
//! Run, Ctrl-C, wait while your tags report, run again with the same client id (same
//! `--instance`): `session present: true`, then what was published meanwhile, in a burst.
//!
//! **What you will see.** At every CONNACK `session present: …` and what it means for the events
//! published while we were away; each event as `message N on <topic>` and its JSON, marked
//! `(redelivery)` when sent again after a crash or a lost connection (retried with backoff).
//!
//! **What must hold** (docs page): a stable client id, QoS 1 both ways, room in the broker's queue.
//!
//! **Deliberately left out:** dropping duplicates (`qos1-at-least-once`), spreading load over
//! processes (`shared-subscription`), not wanting the backlog at all (`clean-session`).

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use common::cli::CONSUMER_OUTGOING_INFLIGHT;
use common::rumqttc_util::{poll_or_silence, REQUEST_CHANNEL_CAPACITY};
use common::{broker_addresses::BrokerAddresses, supervisor::NextStep};
use common::{ConnectArgs, ConnectionSupervisor, MessagePrinter};
use rumqttc::v5::mqttbytes::v5::{Filter, Packet, Publish, RetainForwardRule};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use rumqttc::Transport;
use tokio::sync::mpsc;

/// MQTT v5 Receive Maximum: how many QoS 1 messages the broker may send before we ack one, so a
/// backlog waits on the broker, not in this process. Also the work queue's size (all unacked).
const RECEIVE_MAXIMUM: u16 = 128;
/// A PINGREQ after this much silence; a dead link is noticed after 1.5 × this (see below).
const KEEP_ALIVE: Duration = Duration::from_secs(30);
/// The largest packet we accept: rumqttc's default of 10 KiB is tight for batched locations.
const MAX_PACKET_SIZE: u32 = 256 * 1024;
/// How long a stop waits for the handler; well before Kubernetes' SIGKILL (30 s after SIGTERM).
const DRAIN_MAX: Duration = Duration::from_secs(10);

/// Consume events with a persistent MQTT v5 session: what was published while it was stopped
/// arrives when it starts again.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    connect: ConnectArgs,

    /// How long, in seconds, the broker keeps our session (subscription, queued messages) after we
    /// disconnect. 0 keeps nothing: the MQTT v5 trap, allowed to show it. 4294967295: never ends.
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
    // creds.json (or --creds): host, port, user, password, topic; the client id after --instance.
    let target = args.connect.load_target()?;
    let topic = target.credentials.topic.clone();
    let expiry = args.session_expiry;
    let creds = &target.credentials;
    let mut options = MqttOptions::new(target.client_id.clone(), creds.host.clone(), creds.port);
    options
        .set_credentials(creds.username.clone(), creds.password.expose().to_owned())
        .set_keep_alive(KEEP_ALIVE)
        .set_max_packet_size(Some(MAX_PACKET_SIZE))
        // We publish nothing: room for a SUBSCRIBE, not 65,536 slots allocated up front (13 MiB).
        .set_outgoing_inflight_upper_limit(CONSUMER_OUTGOING_INFLIGHT);
    // ANCHOR: session_knobs
    options
        // Ack after processing, not on receipt: a crash between the two then means redelivery,
        // not a lost event. In a persistent session the broker keeps unacked messages for us.
        .set_manual_acks(true)
        // Knob 1: resume the session the broker kept for this client id, if there is one...
        .set_clean_start(false)
        // ...knob 2: and keep this session for `expiry` seconds after we disconnect. Leaving
        // the property out means 0, and then knob 1 has nothing to resume.
        .set_session_expiry_interval(Some(expiry))
        // Flow control: at most RECEIVE_MAXIMUM unacked messages on their way to us. Mosquitto
        // 2.0.11 keeps to it only until our first ack, so `ack()` must never wait for room.
        .set_receive_maximum(Some(RECEIVE_MAXIMUM));
    // ANCHOR_END: session_knobs
    // TLS: the broker verified (system CAs or --ca-file, host name checked); None: plaintext.
    if let Some(tls) = target.rumqttc_tls().context("setting up TLS")? {
        options.set_transport(Transport::tls_with_config(tls));
    }
    // Every address of the broker's name, resolved again per (re)connect (a cluster), and room
    // for every ack in the request channel, or a backlog freezes us (REQUEST_CHANNEL_CAPACITY).
    let mut addresses = BrokerAddresses::new(&target, &options)?;
    let (client, mut eventloop) =
        AsyncClient::new(addresses.next_attempt().await, REQUEST_CHANNEL_CAPACITY);
    let (address, id) = (target.address(), &target.client_id);
    tracing::info!(
        "connecting to {address} as client id {id} with clean_start=false and a session expiry \
         of {expiry} s (the broker keys the session by client id: keep it the same every run)"
    );
    if expiry == 0 {
        tracing::warn!(
            "--session-expiry 0: the broker ends our session when we disconnect, and drops what is \
             published meanwhile. This is the MQTT v5 trap: clean_start=false alone keeps nothing."
        );
    }

    // The number of the current connection, bumped when one fails (see the stale-ack guard).
    let connection = Arc::new(AtomicU64::new(0));
    let (work_tx, mut work_rx) = mpsc::channel::<(u64, Publish)>(usize::from(RECEIVE_MAXIMUM));
    let (handler_client, current) = (client.clone(), Arc::clone(&connection));
    let count = args.connect.count;
    let mut printer = MessagePrinter::new(args.connect.stats);
    let mut handler = tokio::spawn(async move {
        let mut handled = 0u64;
        while let Some((delivered_on, publish)) = work_rx.recv().await {
            handled += 1;
            let topic = String::from_utf8_lossy(&publish.topic);
            let redelivery = if publish.dup { " (redelivery)" } else { "" }; // sent before, unacked
            let label = format!("message {handled} on {topic}{redelivery}");
            printer.show(&label, &publish.payload);
            // ANCHOR: stale_ack_guard
            // Handled: now the broker may drop it from our session — but only on the connection
            // that delivered it. On a later one its packet id may name another message, which we
            // would then ack unhandled; the resumed session resends this one instead (DUP).
            if delivered_on == current.load(SeqCst) {
                handler_client.ack(&publish).await?;
            }
            // ANCHOR_END: stale_ack_guard
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
            result = &mut handler => break Stop::HandlerFinished(result), // --count, or an error
            event = poll_or_silence(&mut eventloop, &mut last_heard, idle_limit) => match event {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    let reconnect = supervisor.ever_connected();
                    supervisor.connected();
                    // In words, what it means for the backlog (a broker may grant less expiry).
                    let granted = ack.properties.and_then(|p| p.session_expiry_interval);
                    common::session::explain(ack.session_present, expiry, granted, reconnect);
                    // Subscribe after EVERY CONNACK, `session present: true` too: the flag cannot
                    // say which subscriptions the session holds (a run killed between CONNACK and
                    // SUBSCRIBE leaves none: trusting it then receives nothing, silently). Again is
                    // harmless: it replaces the subscription, the queue stays [MQTT-3.8.4-3].
                    client.try_subscribe_many([subscription(&topic)])?;
                }
                Ok(Event::Incoming(Packet::SubAck(ack))) => {
                    common::rumqttc_util::check_suback(&ack, &topic)?;
                    tracing::info!("subscribed to {topic} with QoS 1");
                }
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    // Waits while the queue is full: the back-pressure. A stop still wins.
                    let delivery = (connection.load(SeqCst), publish);
                    tokio::select! {
                        sent = work_tx.send(delivery) => if sent.is_err() {
                            // The handler is gone; its result (an error or --count) comes next.
                            break Stop::HandlerFinished((&mut handler).await);
                        },
                        _ = &mut shutdown => break Stop::Requested,
                    }
                }
                Ok(_) => {}
                Err(err) => {
                    // This connection's packet ids mean nothing any more: no acks for them.
                    connection.fetch_add(1, SeqCst);
                    // Retry with backoff (a lost link, a broker restart), or stop with the reason
                    // in plain words (bad password, client id taken by another process).
                    match supervisor.failed(&err) {
                        // Sleep before reconnecting, but wake up for Ctrl-C.
                        NextStep::RetryAfter(delay) => {
                            if tokio::time::timeout(delay, &mut shutdown).await.is_ok() {
                                break Stop::Requested;
                            }
                            eventloop.options = addresses.next_attempt().await;
                        }
                        NextStep::GiveUp(failure) => return Err(failure.into()),
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
    // A clean DISCONNECT after the acks: the session left behind holds only what we did not handle.
    let disconnected = common::rumqttc_util::disconnect(&client, &mut eventloop).await;
    tracing::info!("processed {handled} messages; {disconnected}; {id}'s session kept {expiry} s");
    Ok(())
}

/// Our subscription: QoS 1, and Retain Handling 1 ("send retained messages only if the
/// subscription is new"), so subscribing again in a resumed session replays no retained message.
// ANCHOR: subscription
fn subscription(filter: &str) -> Filter {
    Filter {
        retain_forward_rule: RetainForwardRule::OnNewSubscribe,
        ..Filter::new(filter, QoS::AtLeastOnce)
    }
}
// ANCHOR_END: subscription

/// Why the main loop ended: Ctrl-C / SIGTERM, or the handler returned (`--count`, or an error).
enum Stop {
    Requested,
    HandlerFinished(Result<anyhow::Result<u64>, tokio::task::JoinError>),
}
