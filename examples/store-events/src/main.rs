//! # store-events — MQTT events into a database, effectively once
//! Read more: docs/src/store-events.md
//!
//! **What it shows.** The consumer customers build after "print the event": QoS 1 events written
//! to SQLite (`--database events.db`, the default) or PostgreSQL (`--database-url postgres://…`).
//! 1. *Idempotent rows*: each row has a unique idempotency key (the payload's `messageId`/`uuid`/
//!    `eventId`, else `sha256` of topic + payload, see `event.rs`) and is inserted with
//!    `ON CONFLICT (event_key) DO NOTHING`: a redelivered message is skipped *by the database*,
//!    across restarts and across the members of a `$share` group, and counted as a duplicate.
//! 2. *Ack after commit*: messages are written in transactions of up to `--batch-size` rows or
//!    `--batch-ms` ms; the batch's PUBACKs go out after its COMMIT, in receive order. A crash
//!    before the COMMIT loses nothing (unacked: redelivered); after it, duplicates nothing.
//!    QoS 1 (at least once) + an idempotent write = effectively once.
//! 3. *Back-pressure*: while the database is slow or down, the batch is retried and nothing is
//!    acked; the bounded queue fills, we stop reading, and the broker holds the rest (our
//!    Receive Maximum). Down longer than `--give-up-after` s (or unusable): exit 9, naming it.
//! 4. *Poison messages*: a payload that is not JSON is stored raw (`raw_payload`) and acked.
//!
//! **Schema** (`migrations/`, applied on first run): `events(event_key PRIMARY KEY, topic,
//! received_at, payload JSON, raw_payload, tag_mac, event_type, event_time)`.
//! **Libraries**: rusqlite with `bundled` (SQLite compiled in: the demo needs nothing installed)
//! and tokio-postgres (async, one round trip per batch); lighter to build than sqlx.
//!
//! **Run it.**
//! ```text
//! cargo run -p store-events                                   # demo broker → ./events.db
//! sqlite3 events.db 'SELECT tag_mac, event_type, event_time FROM events LIMIT 5'
//! cargo run -p store-events -- --creds creds.json --database-url postgres://user:pw@host/db
//! cargo run -p store-events -- --creds creds.json --group store --instance 1   # 2, 3, ...
//! ```
//! Flags: `--batch-size N` (100), `--batch-ms MS` (50), `--give-up-after SECS` (60),
//! `--session-expiry SECS` (3600), `--group NAME` (shared subscription, needs `--instance`),
//! `--count N`. `--crash-before-commit N` / `--crash-after-commit N` are TEST AIDS: exit 99 at
//! that point of the batch holding the Nth message, as a crash would.
//!
//! **What you will see.** `committed batch 3: 100 rows, 98 new, 2 duplicates …; acked 100`, a
//! warning per failed attempt while the database is down, and at the end `summary: R received,
//! S stored, D duplicates skipped by the database, T transactions, P stored as raw bytes …`.
//!
//! **Left out.** TLS to PostgreSQL (add tokio-postgres-rustls for a remote database), a
//! connection pool (one writer per process is what keeps the acks in order), dead-letter
//! handling beyond `raw_payload`, and schema changes beyond adding a migration file.

mod event;
mod store;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use clap::error::ErrorKind;
use clap::{CommandFactory, Parser};
use common::rumqttc_util::REQUEST_CHANNEL_CAPACITY;
use common::supervisor::NextStep;
use common::{Backoff, ConnectArgs, ConnectionSupervisor, MessagePrinter};
use rumqttc::v5::mqttbytes::v5::{Filter, Packet, Publish, RetainForwardRule};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event};
use tokio::sync::{mpsc, watch};

use crate::event::EventRow;
use crate::store::{BatchOutcome, DatabaseDown, DatabaseUnusable, Store};

/// Exit code when the database stays unavailable longer than `--give-up-after`, or the SQLite
/// file cannot be used.
pub const DATABASE_EXIT: u8 = 9;
/// Exit code of the `--crash-…` test aids.
pub const SIMULATED_CRASH_EXIT: i32 = 99;

/// Store QoS 1 events in SQLite or PostgreSQL, effectively once.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    connect: ConnectArgs,

    /// SQLite database file (created with its schema on first run).
    #[arg(
        long,
        value_name = "PATH",
        default_value = "events.db",
        conflicts_with = "database_url"
    )]
    database: PathBuf,

    /// PostgreSQL instead of SQLite, e.g. postgres://user:password@host:5432/dbname.
    #[arg(long, env = "DATABASE_URL", value_name = "URL", value_parser = parse_database_url)]
    database_url: Option<tokio_postgres::Config>,

    /// Most messages per transaction.
    #[arg(long, value_name = "N", default_value_t = 100,
          value_parser = clap::value_parser!(u16).range(1..=10_000))]
    batch_size: u16,

    /// Commit a batch that is not full after this many milliseconds from its first message.
    #[arg(long, value_name = "MS", default_value_t = 50)]
    batch_ms: u64,

    /// Exit (code 9) when the database has been unavailable this many seconds in a row.
    #[arg(long, value_name = "SECS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..))]
    give_up_after: u64,

    /// How long the broker keeps our session (and the unacked messages) after we are gone.
    #[arg(long, value_name = "SECS", default_value_t = 3600,
          value_parser = clap::value_parser!(u32).range(1..))]
    session_expiry: u32,

    /// Join this shared-subscription group ($share/NAME/<topic>); needs a stable --instance.
    #[arg(long, value_name = "NAME", value_parser = common::share_group::parse_group)]
    group: Option<String>,

    /// TEST AID: exit 99 after inserting, before COMMIT of, the batch holding the Nth message.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    crash_before_commit: Option<u64>,

    /// TEST AID: exit 99 after the COMMIT of the batch holding the Nth message, before its acks.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    crash_after_commit: Option<u64>,
}

fn parse_database_url(url: &str) -> Result<tokio_postgres::Config, String> {
    url.parse()
        .map_err(|err| format!("{err}; expected postgres://user:password@host:5432/dbname"))
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    if args.group.is_some() && args.connect.instance.is_none() {
        Args::command()
            .error(
                ErrorKind::MissingRequiredArgument,
                "--group needs a stable --instance (1, 2, … or a StatefulSet ordinal): each member \
                 keeps a persistent session under its own client id, and a restart must resume it",
            )
            .exit();
    }
    common::logging::init(&args.connect.log);
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err)
            if err
                .chain()
                .any(|cause| cause.is::<DatabaseDown>() || cause.is::<DatabaseUnusable>()) =>
        {
            let message = format!("{err:#}");
            eprintln!("error: {message}");
            if let Some(key) = common::catalogue::lookup(&message) {
                eprintln!("{}", common::exit::help_line(key));
            }
            ExitCode::from(DATABASE_EXIT)
        }
        Err(err) => common::exit::report(&err),
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let give_up = Duration::from_secs(args.give_up_after);
    // The database first: a consumer that cannot store must not take messages off the broker.
    let mut store = match args.database_url.clone() {
        Some(config) => Store::postgres(config),
        None => Store::sqlite(args.database.clone())?,
    };
    retry_until_stored(&mut store, give_up, None, Attempt::Ready).await?;
    tracing::info!("storing events in the {}", store.name());

    let (target, demo) = demo_broker::target_or_demo(&args.connect).await?;
    let topic = common::credentials::strip_share_prefix(&target.credentials.topic).to_owned();
    let filter = match &args.group {
        Some(group) => format!("$share/{group}/{topic}"),
        None => topic,
    };

    // Receive Maximum: how many unacked messages the broker may send us. Room for two batches
    // (one committing while the next fills). The work queue holds as many, so the broker never
    // has more in flight to us than we can queue, and an ack never waits behind a full queue.
    let receive_maximum = (u32::from(args.batch_size) * 2).clamp(32, 65_535) as u16;
    let mut options = target
        .rumqttc_options()
        .context("setting up TLS for the broker connection")?;
    options
        // Ack after the COMMIT, not on receipt.
        .set_manual_acks(true)
        // Persistent session: what we did not ack is sent again after a crash or restart.
        .set_clean_start(false)
        .set_session_expiry_interval(Some(args.session_expiry))
        .set_receive_maximum(Some(receive_maximum));
    let (client, mut eventloop) = AsyncClient::new(options, REQUEST_CHANNEL_CAPACITY);
    tracing::info!(
        "connecting to {} as {}; batches of up to {} rows or {} ms",
        target.address(),
        target.client_id,
        args.batch_size,
        args.batch_ms
    );

    // Bumped when a connection fails: an ack is only valid on the connection that delivered.
    let connection = Arc::new(AtomicU64::new(0));
    let (stop_tx, stop_rx) = watch::channel(false);
    let (work_tx, work_rx) = mpsc::channel::<Delivery>(usize::from(receive_maximum));
    let writer = Writer {
        client: client.clone(),
        connection: Arc::clone(&connection),
        store,
        batch_size: usize::from(args.batch_size),
        batch_window: Duration::from_millis(args.batch_ms),
        give_up,
        count: args.connect.count,
        crash_before_commit: args.crash_before_commit,
        crash_after_commit: args.crash_after_commit,
        printer: args.connect.stats.then(|| MessagePrinter::new(true)),
        stop: stop_rx,
        tally: Tally::default(),
    };
    let mut writer = tokio::spawn(writer.run(work_rx));

    let mut supervisor = ConnectionSupervisor::new(&target);
    let shutdown = common::shutdown::signal();
    tokio::pin!(shutdown);
    let stop = loop {
        tokio::select! {
            _ = &mut shutdown => break Stop::Requested,
            result = &mut writer => break Stop::WriterFinished(result),
            event = eventloop.poll() => match event {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    supervisor.connected();
                    tracing::info!("connected (session present: {})", ack.session_present);
                    // Subscribe after EVERY CONNACK: `session present` cannot tell whether the
                    // session still holds our subscription (a run killed before its SUBSCRIBE
                    // leaves one without). Retain Handling 1: no retained replay on a re-subscribe.
                    client.try_subscribe_many([subscription(&filter)])?;
                }
                Ok(Event::Incoming(Packet::SubAck(ack))) => {
                    common::rumqttc_util::check_suback(&ack, &filter)?;
                    tracing::info!("subscribed to {filter} with QoS 1");
                }
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    let delivery = Delivery {
                        publish,
                        received_at: SystemTime::now(),
                        connection: connection.load(Ordering::SeqCst),
                    };
                    // Waits while the queue is full (the database is slow or down): we stop
                    // reading, and the broker holds the rest. The writer never waits for us.
                    if work_tx.send(delivery).await.is_err() {
                        break Stop::WriterFinished((&mut writer).await);
                    }
                }
                Ok(_) => {}
                Err(err) => {
                    connection.fetch_add(1, Ordering::SeqCst);
                    match supervisor.failed(&err) {
                        NextStep::RetryAfter(delay) => {
                            if tokio::time::timeout(delay, &mut shutdown).await.is_ok() {
                                break Stop::Requested;
                            }
                        }
                        NextStep::GiveUp(failure) => return Err(failure.into()),
                    }
                }
            },
        }
    };

    let tally = match stop {
        Stop::Requested => {
            tracing::info!("stop requested: storing and acking the messages already received");
            stop_tx.send_replace(true);
            drop(work_tx);
            writer.await??
        }
        Stop::WriterFinished(result) => result??,
    };
    // Flushes the queued acks, then DISCONNECT; the session stays for --session-expiry seconds.
    common::rumqttc_util::disconnect(&client, &mut eventloop).await;
    println!(
        "summary: {} received, {} stored, {} duplicates skipped by the database, {} transactions, \
         {} stored as raw bytes (not JSON)",
        tally.received, tally.stored, tally.duplicates, tally.transactions, tally.not_json
    );
    if let Some(demo) = demo {
        demo.shutdown().await;
    }
    Ok(())
}

/// QoS 1, Retain Handling 1 ("send retained messages only if the subscription is new").
fn subscription(filter: &str) -> Filter {
    Filter {
        retain_forward_rule: RetainForwardRule::OnNewSubscribe,
        ..Filter::new(filter, QoS::AtLeastOnce)
    }
}

enum Stop {
    Requested,
    WriterFinished(Result<anyhow::Result<Tally>, tokio::task::JoinError>),
}

/// A message as the writer gets it.
struct Delivery {
    publish: Publish,
    received_at: SystemTime,
    /// The number of the connection that delivered it.
    connection: u64,
}

#[derive(Debug, Default)]
struct Tally {
    received: u64,
    stored: u64,
    duplicates: u64,
    transactions: u64,
    not_json: u64,
}

/// What [`retry_until_stored`] retries.
enum Attempt<'a> {
    /// Connect and migrate (at start).
    Ready,
    /// Write this batch in one transaction (the flag: `--crash-before-commit`).
    Write(&'a Arc<[EventRow]>, bool),
}

/// Tries `attempt` until it succeeds; meanwhile nothing is acked. Gives up (`DatabaseDown`)
/// after `give_up` of failures in a row, or returns `Ok(None)` when `stop` is raised first.
async fn retry_until_stored(
    store: &mut Store,
    give_up: Duration,
    mut stop: Option<&mut watch::Receiver<bool>>,
    attempt: Attempt<'_>,
) -> anyhow::Result<Option<BatchOutcome>> {
    let mut backoff = Backoff::default();
    let mut failing_since: Option<Instant> = None;
    loop {
        let result = match &attempt {
            Attempt::Ready => store.ready().await.map(|()| BatchOutcome::default()),
            Attempt::Write(rows, crash) => store.write_batch(rows, *crash).await,
        };
        let error = match result {
            Ok(value) => {
                if let Some(since) = failing_since {
                    let down = since.elapsed().as_secs_f64();
                    tracing::info!("the {} is back after {down:.1} s; resuming", store.name());
                }
                return Ok(Some(value));
            }
            Err(err) => err,
        };
        let since = *failing_since.get_or_insert_with(Instant::now);
        if since.elapsed() >= give_up {
            return Err(DatabaseDown {
                database: store.name().to_owned(),
                waited_s: since.elapsed().as_secs(),
                last_error: format!("{error:#}"),
            }
            .into());
        }
        let delay = backoff.next_delay().min(Duration::from_secs(5));
        tracing::warn!(
            "the {} is unavailable ({error:#}); nothing acked, retrying in {} ms",
            store.name(),
            delay.as_millis()
        );
        match stop.as_deref_mut() {
            Some(stop) => {
                if tokio::time::timeout(delay, stop.wait_for(|stop| *stop))
                    .await
                    .is_ok()
                {
                    return Ok(None);
                }
            }
            None => tokio::time::sleep(delay).await,
        }
    }
}

/// The writer task: batches messages, writes each batch in one transaction, then acks it.
struct Writer {
    client: AsyncClient,
    connection: Arc<AtomicU64>,
    store: Store,
    batch_size: usize,
    batch_window: Duration,
    give_up: Duration,
    count: Option<u64>,
    crash_before_commit: Option<u64>,
    crash_after_commit: Option<u64>,
    /// `--stats`: the benchmark's `stats:` line, counted at the ack.
    printer: Option<MessagePrinter>,
    stop: watch::Receiver<bool>,
    tally: Tally,
}

impl Writer {
    /// One batch at a time, in queue order (= receive order): that keeps the acks in order.
    async fn run(mut self, mut work_rx: mpsc::Receiver<Delivery>) -> anyhow::Result<Tally> {
        loop {
            let wanted = match self.count {
                Some(count) if self.tally.received >= count => break,
                Some(count) => self.batch_size.min((count - self.tally.received) as usize),
                None => self.batch_size,
            };
            let Some(first) = work_rx.recv().await else {
                break; // the queue is closed and empty: stopping
            };
            let mut batch = vec![first];
            let deadline = tokio::time::Instant::now() + self.batch_window;
            while batch.len() < wanted {
                match tokio::time::timeout_at(deadline, work_rx.recv()).await {
                    Ok(Some(delivery)) => batch.push(delivery),
                    Ok(None) | Err(_) => break, // closed, or the batch window is over
                }
            }
            if !self.store_and_ack(batch).await? {
                break; // stop requested while the database was down: left unacked
            }
        }
        if let Some(printer) = self.printer.as_mut() {
            printer.finish();
        }
        Ok(self.tally)
    }

    /// `Ok(false)`: stopped before the batch could be stored (nothing acked).
    async fn store_and_ack(&mut self, batch: Vec<Delivery>) -> anyhow::Result<bool> {
        let first = self.tally.received + 1;
        let last = self.tally.received + batch.len() as u64;
        let holds = |n: Option<u64>| n.is_some_and(|n| (first..=last).contains(&n));
        let crash_before_commit = holds(self.crash_before_commit);
        let rows: Arc<[EventRow]> = batch
            .iter()
            .map(|d| EventRow::from_message(&d.publish.topic, &d.publish.payload, d.received_at))
            .collect();
        let started = Instant::now();
        let written = retry_until_stored(
            &mut self.store,
            self.give_up,
            Some(&mut self.stop),
            Attempt::Write(&rows, crash_before_commit),
        )
        .await?;
        let Some(outcome) = written else {
            return Ok(false);
        };
        // COMMITTED. Only now may the broker forget these messages.
        self.tally.received = last;
        self.count_batch(&outcome, &rows);
        if holds(self.crash_after_commit) {
            eprintln!("--crash-after-commit: exiting after COMMIT, before the acks (test aid)");
            std::process::exit(SIMULATED_CRASH_EXIT);
        }
        let current = self.connection.load(Ordering::SeqCst);
        let mut acked = 0;
        for delivery in &batch {
            // Only on the connection that delivered it: on a later one its packet id may name
            // another message. The resumed session resends it; the database skips it then.
            if delivery.connection == current {
                self.client.ack(&delivery.publish).await?;
                acked += 1;
            }
            if let Some(printer) = self.printer.as_mut() {
                printer.show("", &delivery.publish.payload);
            }
        }
        let line = format!(
            "committed batch {}: {} rows, {} new, {} duplicates ({} ms); acked {acked}",
            self.tally.transactions,
            batch.len(),
            outcome.inserted,
            outcome.duplicates,
            started.elapsed().as_millis()
        );
        if self.printer.is_some() {
            tracing::debug!("{line}");
        } else {
            tracing::info!("{line}");
        }
        if acked < batch.len() {
            tracing::info!(
                "not acking {} messages: they arrived on an earlier connection; the broker resends \
                 them and the database skips them as duplicates",
                batch.len() - acked
            );
        }
        Ok(true)
    }

    fn count_batch(&mut self, outcome: &BatchOutcome, rows: &[EventRow]) {
        self.tally.transactions += 1;
        self.tally.stored += outcome.inserted;
        self.tally.duplicates += outcome.duplicates;
        self.tally.not_json += rows.iter().filter(|row| row.payload_json.is_none()).count() as u64;
        self.tally.not_json += outcome.stored_raw;
    }
}
