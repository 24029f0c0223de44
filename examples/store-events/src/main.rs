//! # store-events — MQTT events into a database, effectively once
//! Read more: docs/src/store-events.md
//!
//! **What it shows.** QoS 1 events written to SQLite (`--database events.db`, the default) or
//! PostgreSQL (`--database-url postgres://…`), effectively once:
//! 1. *Idempotent rows*: each row's unique key is the event's own id (`messageId`/`uuid`/`eventId`,
//!    else a hash of topic and payload; `event.rs`), inserted `ON CONFLICT (event_key) DO NOTHING`:
//!    the database skips a redelivery, across restarts and across the members of a `$share` group.
//! 2. *Ack after COMMIT*: up to `--batch-size` rows or `--batch-ms` ms per transaction; its PUBACKs
//!    go out after the COMMIT, in receive order, on the connection that delivered them. A crash
//!    before the COMMIT loses nothing (unacked: sent again); after it, duplicates nothing.
//! 3. *Back-pressure*: while the database is down the batch is retried and nothing is acked; the
//!    bounded queue fills, we stop reading, the broker holds the rest. Down longer than
//!    `--give-up-after` s (or unusable): exit 9, naming it (`store.rs`).
//! 4. *Poison messages*: a payload that is not JSON is stored raw (`raw_payload`) and acked.
//!
//! **Run it.**
//! ```text
//! cargo run -p store-events                                   # demo broker → ./events.db
//! sqlite3 events.db 'SELECT tag_mac, event_type, event_time FROM events LIMIT 5'
//! cargo run -p store-events -- --creds creds.json --database-url postgres://user:pw@host/db
//! cargo run -p store-events -- --creds creds.json --group store --instance 1   # 2, 3, ...
//! ```
//! `--crash-before-commit N` / `--crash-after-commit N` are TEST AIDS: exit 99 at that point of the
//! batch holding the Nth message, as a crash would.
//!
//! **What you will see.** `committed batch 3: 100 rows, 98 new, 2 duplicates …; acked 100`, a
//! warning per failed attempt while the database is down, and at the end `summary: R received,
//! S stored, D duplicates skipped by the database, T transactions, P stored as raw bytes …`.
//!
//! **Left out.** TLS to PostgreSQL (add tokio-postgres-rustls for a remote database), a
//! connection pool (one writer per process is what keeps the acks in order), dead-letter
//! handling beyond `raw_payload`, and schema changes beyond adding a migration file.

mod batch;
mod event;
mod store;

use std::process::ExitCode;
use std::sync::{atomic::AtomicU64, atomic::Ordering, Arc};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use clap::Parser;
use common::rumqttc_util::{poll_or_silence, REQUEST_CHANNEL_CAPACITY};
use common::{broker_addresses::BrokerAddresses, ConnectArgs, ConnectionSupervisor, NextStep};
use rumqttc::v5::mqttbytes::v5::{Filter, Packet, Publish, RetainForwardRule};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use rumqttc::Transport;
use tokio::sync::{mpsc, watch};

use crate::batch::{BatchWriter, DatabaseArgs, Totals};
use crate::event::EventRow;

/// A PINGREQ when idle this long; 1.5 × this without a packet means a dead link.
const KEEP_ALIVE: Duration = Duration::from_secs(30);

/// Store QoS 1 events in SQLite or PostgreSQL, effectively once.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    connect: ConnectArgs,
    #[command(flatten)]
    database: DatabaseArgs,
    /// How long the broker keeps our session (and the unacked messages) after we are gone.
    #[arg(long, value_name = "SECS", default_value_t = 3600,
          value_parser = clap::value_parser!(u32).range(1..))]
    session_expiry: u32,
    /// Join this shared-subscription group ($share/NAME/<topic>). Needs a stable --instance (1, 2,
    /// … or a StatefulSet ordinal): each member keeps its persistent session under its own id.
    #[arg(long, value_name = "NAME", value_parser = common::share_group::parse_group,
          requires = "instance")]
    group: Option<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    common::logging::init(&args.connect.log);
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        // The database down too long, or unusable: exit 9, naming it.
        Err(err) => store::report(&err).unwrap_or_else(|| common::exit::report(&err)),
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    // The database first: a consumer that cannot store must not take messages off the broker.
    let (stop_tx, stop_rx) = watch::channel(false);
    let writer = BatchWriter::open(args.database, &args.connect, stop_rx).await?;

    let target = args.connect.load_target()?;
    let creds = &target.credentials;
    let topic = common::credentials::strip_share_prefix(&creds.topic).to_owned();
    let filter = match &args.group {
        Some(group) => format!("$share/{group}/{topic}"),
        None => topic,
    };
    // Room for two batches (one committing while the next fills): the Receive Maximum we announce,
    // and the size of the work queue, so a broker that keeps to it never finds the queue full.
    let receive_maximum = (u32::from(writer.batch_size()) * 2).clamp(32, 65_535) as u16;
    let mut options = MqttOptions::new(target.client_id.clone(), creds.host.clone(), creds.port);
    options
        .set_credentials(creds.username.clone(), creds.password.expose().to_owned())
        .set_keep_alive(KEEP_ALIVE)
        // rumqttc's default of 10 KiB is tight for batched location payloads.
        .set_max_packet_size(Some(256 * 1024))
        // We send few packets of our own (SUBSCRIBE); rumqttc allocates a slot per id up front.
        .set_outgoing_inflight_upper_limit(common::cli::CONSUMER_OUTGOING_INFLIGHT)
        // Ack after the COMMIT, not on receipt.
        .set_manual_acks(true)
        // Persistent session: what we did not ack is sent again after a crash or restart.
        .set_clean_start(false)
        .set_session_expiry_interval(Some(args.session_expiry))
        // Mosquitto 2.0.11 keeps to it only until our first ack: `ack()` must never wait.
        .set_receive_maximum(Some(receive_maximum))
        // TLS, verified against the system's CAs or --ca-file; TCP only with --insecure-plaintext.
        .set_transport(match target.rumqttc_tls().context("setting up TLS")? {
            Some(tls) => Transport::tls_with_config(tls),
            None => Transport::tcp(),
        });
    // A cluster behind one DNS name: every address tried, resolved again before each reconnect.
    let mut addresses = BrokerAddresses::new(&target, &options)?;
    let (client, mut eventloop) =
        AsyncClient::new(addresses.next_attempt().await, REQUEST_CHANNEL_CAPACITY);
    tracing::info!("connecting to {} as {}", target.address(), target.client_id);
    // The number of the current connection, bumped when one fails (see the stale-ack guard).
    let current_connection = Arc::new(AtomicU64::new(0));
    let (work_tx, work_rx) = mpsc::channel::<Delivery>(usize::from(receive_maximum));
    let writer = write_and_ack(work_rx, client.clone(), current_connection.clone(), writer);
    let writer = tokio::spawn(writer);
    // QoS 1, and Retain Handling "only if new": the SUBSCRIBE after a resumed session's CONNACK
    // replaces the subscription the session holds, and must not replay the retained messages.
    let subscription = Filter {
        retain_forward_rule: RetainForwardRule::OnNewSubscribe,
        ..Filter::new(&filter, QoS::AtLeastOnce)
    };
    // Silence for 1.5 × keep-alive is a dead link: an error like any other below.
    let (idle_limit, mut last_heard) = (KEEP_ALIVE * 3 / 2, tokio::time::Instant::now());
    let mut supervisor = ConnectionSupervisor::new(&target);
    let mut shutdown = std::pin::pin!(common::shutdown::signal());
    let stop_requested = loop {
        tokio::select! {
            _ = &mut shutdown => break true,
            // The writer ends by itself after --count messages, or on an error.
            _ = work_tx.closed() => break false,
            event = poll_or_silence(&mut eventloop, &mut last_heard, idle_limit) => match event {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    supervisor.connected();
                    tracing::info!("connected (session present: {})", ack.session_present);
                    // Subscribe after EVERY CONNACK: `session present: true` cannot say whether the
                    // session still holds our subscription (a run killed between CONNACK and
                    // SUBSCRIBE leaves one without). Subscribing again keeps the queued messages.
                    client.try_subscribe_many([subscription.clone()])?;
                }
                Ok(Event::Incoming(Packet::SubAck(ack))) => {
                    common::rumqttc_util::check_suback(&ack, &filter)?;
                    tracing::info!("subscribed to {filter} with QoS 1");
                }
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    let connection = current_connection.load(Ordering::SeqCst);
                    let delivery = Delivery { publish, received_at: SystemTime::now(), connection };
                    // Waits while the queue is full (the database is slow or down): we stop
                    // reading, and the broker holds the rest. A stop request still wins.
                    tokio::select! {
                        sent = work_tx.send(delivery) => if sent.is_err() {
                            break false; // the writer is gone: its result follows
                        },
                        _ = &mut shutdown => break true,
                    }
                }
                Ok(_) => {}
                Err(err) => {
                    current_connection.fetch_add(1, Ordering::SeqCst); // first: its acks are stale
                    // Retry with backoff what a retry can fix; stop on what it cannot.
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

    if stop_requested {
        tracing::info!("stop requested: storing and acking the messages already received");
        // Interrupts a retry while the database is down: those messages stay unacked.
        stop_tx.send_replace(true);
    }
    drop(work_tx);
    let totals = writer.await??;
    // Flushes the queued acks, then DISCONNECT; the session stays for --session-expiry seconds.
    let disconnected = common::rumqttc_util::disconnect(&client, &mut eventloop).await;
    tracing::info!("{disconnected}");
    println!("{totals}");
    Ok(())
}

/// A message as the writer gets it, with the number of the connection that delivered it.
struct Delivery {
    publish: Publish,
    received_at: SystemTime,
    connection: u64,
}

/// The writer task: one batch at a time, in queue order (= receive order), so that the acks
/// leave in receive order too.
async fn write_and_ack(
    mut work_rx: mpsc::Receiver<Delivery>,
    client: AsyncClient,
    current_connection: Arc<AtomicU64>,
    mut writer: BatchWriter,
) -> anyhow::Result<Totals> {
    while let Some(batch) = writer.next_batch(&mut work_rx).await {
        let rows: Arc<[EventRow]> = batch
            .iter()
            .map(|d| EventRow::from_message(&d.publish.topic, &d.publish.payload, d.received_at))
            .collect();
        // One transaction, retried while the database is down: nothing is acked meanwhile, the
        // queue fills, we stop reading, and the broker holds the rest.
        let Some(outcome) = writer.commit(&rows).await? else {
            break; // stop requested while the database was down: left unacked
        };
        // COMMITTED: only now may the broker forget these messages. In receive order, and only
        // on the connection that delivered them (the stale-ack guard): rumqttc drops the acks
        // still queued when a connection fails; one queued later goes out on the NEXT connection,
        // where its packet id may name another message, which the broker would then take as
        // handled. A message from an earlier connection is sent again; the database skips it.
        let current = current_connection.load(Ordering::SeqCst);
        let mut acked = 0;
        for delivery in batch.iter().filter(|d| d.connection == current) {
            client.ack(&delivery.publish).await?;
            acked += 1;
        }
        if acked < batch.len() {
            let stale = batch.len() - acked;
            tracing::info!("not acking {stale} messages: they arrived on an earlier connection");
        }
        let payloads = batch.iter().map(|d| &d.publish.payload[..]);
        writer.acked(&outcome, payloads, acked);
    }
    Ok(writer.finish())
}
