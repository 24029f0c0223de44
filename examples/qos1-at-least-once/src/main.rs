//! # qos1-at-least-once — duplicates are normal: ack after processing, make processing idempotent
//! Read more: docs/src/qos1.md
//!
//! **What it shows.** What QoS 1 (at least once) asks of a consumer:
//! 1. *Ack after processing*, one message at a time, in receive order (as MQTT 5 requires).
//! 2. *A persistent session* (`clean_start = false`, session expiry > 0): what a crash or a lost
//!    connection left unacked is sent again, with the DUP flag.
//! 3. *Duplicates skipped by a key in the message*, never by the DUP flag, and acked like the rest.
//! 4. *The stale-ack guard*: no ack for a message that came on an earlier connection.
//!
//! **Run it.**
//! ```text
//! cargo run -p qos1-at-least-once                        # no creds.json: the demo broker
//! cargo run -p qos1-at-least-once -- --creds creds.json --work-ms 500 --crash-after 5
//! cargo run -p qos1-at-least-once -- --creds creds.json   # again: the 5th message comes back
//! ```
//! `--work-ms N`: each new message takes N ms. `--crash-after N` (a TEST AID): exit 99 after
//! processing the Nth new message, before its ack.
//!
//! **What you will see.** `processed <key> (dup flag: …) on <topic>` and the JSON, or `duplicate
//! skipped: <key> (dup flag: …)`; at Ctrl-C the last acks, DISCONNECT and a `summary:` line.
//!
//! **Left out.** A durable key store: these keys live in memory, so a message processed but not
//! acked before a crash is processed again after it; in production the key goes into your database
//! with the effect, in one transaction (`store-events`). Parallel processing (it needs a reorder
//! buffer for the acks). QoS 2 (once per MQTT hop; it does not make your write happen once).

use std::process::ExitCode;
use std::sync::{atomic::AtomicU64, atomic::Ordering, Arc};
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use common::rumqttc_util::{poll_or_silence, REQUEST_CHANNEL_CAPACITY};
use common::{broker_addresses::BrokerAddresses, recent_keys::RecentKeys};
use common::{ConnectArgs, ConnectionSupervisor, MessagePrinter, NextStep};
use rumqttc::v5::mqttbytes::v5::{Filter, Packet, Publish, RetainForwardRule};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use rumqttc::Transport;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

/// The most unacked messages in flight to us (the Receive Maximum we announce) and in the queue.
const RECEIVE_MAXIMUM: u16 = 32;
/// A PINGREQ when idle this long; 1.5 × this without a packet means a dead link.
const KEEP_ALIVE: Duration = Duration::from_secs(30);

/// Consume QoS 1 events at least once: ack after processing, in receive order; skip duplicates.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Seconds the broker keeps our session, and what we did not ack, after we are gone (> 0).
    #[arg(long, value_name = "SECS", default_value_t = 3600,
          value_parser = clap::value_parser!(u32).range(1..))]
    session_expiry: u32,
    /// How many recent idempotency keys to remember (in memory: for this process's life only).
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    remember: usize,
    /// Simulated processing time per new message, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    work_ms: u64,
    /// TEST AID: after processing the Nth new message, exit at once (code 99) WITHOUT acking it.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    crash_after: Option<u64>,
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
    let target = args.connect.load_target()?;
    let (creds, topic) = (&target.credentials, target.credentials.topic.clone());
    // ANCHOR: qos1_options
    let mut options = MqttOptions::new(target.client_id.clone(), creds.host.clone(), creds.port);
    options
        .set_credentials(creds.username.clone(), creds.password.expose().to_owned())
        .set_keep_alive(KEEP_ALIVE)
        // rumqttc's default of 10 KiB is tight for batched location payloads.
        .set_max_packet_size(Some(256 * 1024))
        // We send few packets of our own (SUBSCRIBE); rumqttc allocates a slot per id up front.
        .set_outgoing_inflight_upper_limit(common::cli::CONSUMER_OUTGOING_INFLIGHT)
        // Ack after processing, not on receipt: a crash between the two means redelivery.
        .set_manual_acks(true)
        // Resume the session (and its unacked messages) after a restart, and keep it that long.
        .set_clean_start(false)
        .set_session_expiry_interval(Some(args.session_expiry))
        // At most RECEIVE_MAXIMUM unacked at once; Mosquitto 2.0.11 only until our first ack.
        .set_receive_maximum(Some(RECEIVE_MAXIMUM))
        // TLS, verified against the system's CAs or --ca-file; TCP only with --insecure-plaintext.
        .set_transport(match target.rumqttc_tls().context("setting up TLS")? {
            Some(tls) => Transport::tls_with_config(tls),
            None => Transport::tcp(),
        });
    // ANCHOR_END: qos1_options
    let mut addresses = BrokerAddresses::new(&target, &options)?; // a cluster: every address
    let (client, mut eventloop) =
        AsyncClient::new(addresses.next_attempt().await, REQUEST_CHANNEL_CAPACITY);
    tracing::info!("connecting to {} as {}", target.address(), target.client_id);
    let current_connection = Arc::new(AtomicU64::new(0)); // bumped when one fails: see the guard
    let (work_tx, work_rx) = mpsc::channel::<(Publish, u64)>(usize::from(RECEIVE_MAXIMUM));
    let handler = handle(work_rx, client.clone(), current_connection.clone(), args);
    let handler = tokio::spawn(handler);
    // QoS 1; Retain Handling "only if new": re-subscribing must not replay retained messages.
    let filter = Filter {
        retain_forward_rule: RetainForwardRule::OnNewSubscribe,
        ..Filter::new(&topic, QoS::AtLeastOnce)
    };
    let (idle_limit, mut last_heard) = (KEEP_ALIVE * 3 / 2, tokio::time::Instant::now());
    let mut supervisor = ConnectionSupervisor::new(&target);
    let mut shutdown = std::pin::pin!(common::shutdown::signal());
    let stop_requested = loop {
        tokio::select! {
            _ = &mut shutdown => break true,
            _ = work_tx.closed() => break false, // the handler ended (--count, or an error)
            event = poll_or_silence(&mut eventloop, &mut last_heard, idle_limit) => match event {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    supervisor.connected();
                    tracing::info!("connected (session present: {})", ack.session_present);
                    // Subscribe after EVERY CONNACK: `session present` does not say the session
                    // holds our subscription (a run killed before its SUBSCRIBE leaves none).
                    client.try_subscribe_many([filter.clone()])?;
                }
                Ok(Event::Incoming(Packet::SubAck(ack))) => {
                    common::rumqttc_util::check_suback(&ack, &topic)?;
                    tracing::info!("subscribed to {topic} with QoS 1");
                }
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    let connection = current_connection.load(Ordering::SeqCst);
                    // Waits while the queue is full: the back-pressure. A stop request still wins.
                    tokio::select! {
                        sent = work_tx.send((publish, connection)) => if sent.is_err() {
                            break false; // the handler is gone: its result follows
                        },
                        _ = &mut shutdown => break true,
                    }
                }
                Ok(_) => {}
                Err(err) => {
                    current_connection.fetch_add(1, Ordering::SeqCst); // first: its acks are stale
                    // Retry with backoff what a retry can fix; stop, saying why, on what it cannot.
                    match supervisor.failed(&err) {
                        NextStep::RetryAfter(delay) => {
                            if tokio::time::timeout(delay, &mut shutdown).await.is_ok() {
                                break true; // Ctrl-C while waiting to reconnect
                            }
                            eventloop.options = addresses.next_attempt().await;
                        }
                        NextStep::GiveUp(failure) => return Err(failure.into()),
                    }
                }
            },
        }
    };
    drop(work_tx);
    if stop_requested {
        // Finish and ack what was received, for at most 10 s (Kubernetes kills 30 s after SIGTERM).
        common::shutdown::drain(handler, Duration::from_secs(10)).await?;
    } else {
        handler.await??;
    }
    // Flushes the queued acks, then DISCONNECT. The session stays for --session-expiry seconds.
    let disconnected = common::rumqttc_util::disconnect(&client, &mut eventloop).await;
    tracing::info!("{disconnected}");
    Ok(())
}

/// The handler task: one message at a time, in queue (= receive) order, so the acks are too.
async fn handle(
    mut work_rx: mpsc::Receiver<(Publish, u64)>,
    client: AsyncClient,
    current_connection: Arc<AtomicU64>,
    args: Args,
) -> anyhow::Result<()> {
    let mut recent = RecentKeys::new(args.remember);
    let mut printer = MessagePrinter::new(args.connect.stats);
    let (mut processed, mut skipped, mut dup_flagged) = (0u64, 0u64, 0u64);
    while let Some((publish, connection)) = work_rx.recv().await {
        let key = idempotency_key(&publish.topic, &publish.payload);
        dup_flagged += u64::from(publish.dup);
        if recent.contains(&key) {
            println!("duplicate skipped: {key} (dup flag: {})", publish.dup);
            skipped += 1;
        } else {
            // Your business logic goes here: the effect that must happen once per event.
            if args.work_ms > 0 {
                tokio::time::sleep(Duration::from_millis(args.work_ms)).await;
            }
            let topic = String::from_utf8_lossy(&publish.topic);
            let label = format!("processed {key} (dup flag: {}) on {topic}", publish.dup);
            printer.show(&label, &publish.payload);
            // Remembered only once processed: a message that failed halfway is not a duplicate.
            recent.insert(key.clone());
            processed += 1;
            if args.crash_after == Some(processed) {
                let crash = "exiting WITHOUT acking this message, like a crash (test aid)";
                eprintln!("--crash-after {processed}: {crash}");
                std::process::exit(99); // outside the exit codes of `common::exit`
            }
        }
        // ANCHOR: stale_ack_guard
        // Processed (or known to be): now the broker may forget it, but only on the connection
        // that delivered it. rumqttc drops the acks still queued when a connection fails; one
        // queued later goes out on the NEXT connection, where this packet id may name another
        // message, which the broker would then take as handled. So no ack for a message from an
        // earlier connection: the resumed session resends it; that copy is skipped and acked.
        if connection == current_connection.load(Ordering::SeqCst) {
            client.ack(&publish).await?;
        } else {
            tracing::info!("not acking {key}: it arrived on an earlier connection");
        }
        // ANCHOR_END: stale_ack_guard
        if args.connect.count == Some(processed + skipped) {
            break;
        }
    }
    printer.finish();
    let duplicates =
        format!("{skipped} duplicates skipped, {dup_flagged} arrived with the DUP flag");
    println!("summary: {processed} processed, {duplicates}");
    Ok(())
}

/// The idempotency key: the first of `messageId`, `uuid`, `seq` in the JSON payload (use the field
/// that names an event in yours), else a SHA-256 of topic and payload (same bytes, same event).
// ANCHOR: idempotency_key
fn idempotency_key(topic: &[u8], payload: &[u8]) -> String {
    let json = serde_json::from_slice::<Value>(payload).unwrap_or_default();
    for name in ["messageId", "uuid", "seq"] {
        match &json[name] {
            Value::String(text) if !text.is_empty() => return format!("{name}={text}"),
            Value::Number(number) => return format!("{name}={number}"),
            _ => {}
        }
    }
    let hash = Sha256::digest([topic, &[0], payload].concat());
    let hex: String = hash.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("sha256={hex}")
}
// ANCHOR_END: idempotency_key
