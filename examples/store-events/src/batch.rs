//! The database half of the writer task: its flags, a batch taken from the work queue, one
//! transaction per batch (retried while the database is down), and the counts behind the
//! `summary:` line. `main.rs` keeps the MQTT half: what is acked, when, and on which connection.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{ConnectArgs, MessagePrinter};
use tokio::sync::{mpsc, watch};

use crate::event::EventRow;
use crate::store::{retry_until_stored, Attempt, BatchOutcome, Store, SIMULATED_CRASH_EXIT};

/// Where the events go, how they are batched, and how long a database outage is waited out.
#[derive(clap::Args)]
pub struct DatabaseArgs {
    /// SQLite database file (created with its schema on first run).
    #[arg(
        long,
        value_name = "PATH",
        default_value = "events.db",
        conflicts_with = "database_url"
    )]
    pub database: PathBuf,

    /// PostgreSQL instead of SQLite, e.g. postgres://user:password@host:5432/dbname.
    #[arg(long, env = "DATABASE_URL", value_name = "URL", value_parser = parse_database_url)]
    pub database_url: Option<tokio_postgres::Config>,

    /// Most messages per transaction.
    #[arg(long, value_name = "N", default_value_t = 100,
          value_parser = clap::value_parser!(u16).range(1..=10_000))]
    pub batch_size: u16,

    /// Commit a batch that is not full after this many milliseconds from its first message.
    #[arg(long, value_name = "MS", default_value_t = 50)]
    pub batch_ms: u64,

    /// Exit (code 9) when the database has been unavailable this many seconds in a row.
    #[arg(long, value_name = "SECS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub give_up_after: u64,

    /// TEST AID: exit 99 after inserting, before COMMIT of, the batch holding the Nth message.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub crash_before_commit: Option<u64>,

    /// TEST AID: exit 99 after the COMMIT of the batch holding the Nth message, before its acks.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub crash_after_commit: Option<u64>,
}

fn parse_database_url(url: &str) -> Result<tokio_postgres::Config, String> {
    url.parse()
        .map_err(|err| format!("{err}; expected postgres://user:password@host:5432/dbname"))
}

/// What happened to the messages, for the `summary:` line.
#[derive(Debug, Default)]
pub struct Totals {
    pub received: u64,
    pub stored: u64,
    pub duplicates: u64,
    pub transactions: u64,
    pub not_json: u64,
}

/// `summary: R received, S stored, D duplicates skipped by the database, T transactions, P …`
impl std::fmt::Display for Totals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "summary: {} received, {} stored, {} duplicates skipped by the database, {} \
             transactions, {} stored as raw bytes (not JSON)",
            self.received, self.stored, self.duplicates, self.transactions, self.not_json
        )
    }
}

/// One batch at a time into the database.
pub struct BatchWriter {
    store: Store,
    args: DatabaseArgs,
    /// `--count`: stop after this many messages.
    count: Option<u64>,
    /// Raised on Ctrl-C/SIGTERM: a retry while the database is down stops waiting.
    stop: watch::Receiver<bool>,
    /// `--stats`: the benchmark's `stats:` line, counted at the ack.
    printer: Option<MessagePrinter>,
    totals: Totals,
    /// When the write of the current batch began.
    started: Instant,
}

impl BatchWriter {
    /// Opens the database and waits until it is usable (connected, schema migrated): retried
    /// like a write, for at most `--give-up-after` seconds.
    /// `--count` and `--stats` come from `connect`.
    pub async fn open(
        args: DatabaseArgs,
        connect: &ConnectArgs,
        stop: watch::Receiver<bool>,
    ) -> anyhow::Result<BatchWriter> {
        let mut store = match args.database_url.clone() {
            Some(config) => Store::postgres(config),
            None => Store::sqlite(args.database.clone())?,
        };
        let give_up = Duration::from_secs(args.give_up_after);
        retry_until_stored(&mut store, give_up, None, Attempt::Ready).await?;
        tracing::info!("storing events in the {}", store.name());
        Ok(BatchWriter {
            store,
            args,
            count: connect.count,
            stop,
            printer: connect.stats.then(|| MessagePrinter::new(true)),
            totals: Totals::default(),
            started: Instant::now(),
        })
    }

    /// `--batch-size`: the most messages per transaction.
    pub fn batch_size(&self) -> u16 {
        self.args.batch_size
    }

    /// The next batch, in queue order: the next message, and what follows it within `--batch-ms`,
    /// up to `--batch-size` messages (and no further than `--count`). `None`: nothing more to
    /// write (the queue is closed and empty, or `--count` is reached).
    pub async fn next_batch<T>(&mut self, work_rx: &mut mpsc::Receiver<T>) -> Option<Vec<T>> {
        let batch_size = usize::from(self.args.batch_size);
        let wanted = match self.count {
            Some(count) if self.totals.received >= count => return None,
            Some(count) => batch_size.min((count - self.totals.received) as usize),
            None => batch_size,
        };
        let mut batch = vec![work_rx.recv().await?];
        let deadline = tokio::time::Instant::now() + Duration::from_millis(self.args.batch_ms);
        while batch.len() < wanted {
            match tokio::time::timeout_at(deadline, work_rx.recv()).await {
                Ok(Some(message)) => batch.push(message),
                Ok(None) | Err(_) => break, // closed, or the batch window is over
            }
        }
        Some(batch)
    }

    /// Writes `rows` in ONE transaction and returns once it is COMMITTED. While the database is
    /// down it retries (nothing is acked meanwhile), for at most `--give-up-after` seconds
    /// (then the `DatabaseDown` error, exit 9). `Ok(None)`: a stop came first; nothing stored.
    pub async fn commit(&mut self, rows: &Arc<[EventRow]>) -> anyhow::Result<Option<BatchOutcome>> {
        self.started = Instant::now();
        let first = self.totals.received + 1;
        let last = self.totals.received + rows.len() as u64;
        let holds = |n: Option<u64>| n.is_some_and(|n| (first..=last).contains(&n));
        let attempt = Attempt::Write(rows, holds(self.args.crash_before_commit));
        let give_up = Duration::from_secs(self.args.give_up_after);
        let stop = Some(&mut self.stop);
        let Some(outcome) = retry_until_stored(&mut self.store, give_up, stop, attempt).await?
        else {
            return Ok(None);
        };
        self.totals.received = last;
        self.totals.transactions += 1;
        self.totals.stored += outcome.inserted;
        self.totals.duplicates += outcome.duplicates;
        self.totals.not_json += rows.iter().filter(|row| row.payload_json.is_none()).count() as u64;
        self.totals.not_json += outcome.stored_raw;
        if holds(self.args.crash_after_commit) {
            eprintln!("--crash-after-commit: exiting after COMMIT, before the acks (test aid)");
            std::process::exit(SIMULATED_CRASH_EXIT);
        }
        Ok(Some(outcome))
    }

    /// After a batch's acks: the `committed batch …` line (debug with `--stats`), and each
    /// payload for the `stats:` line.
    pub fn acked<'a>(
        &mut self,
        outcome: &BatchOutcome,
        payloads: impl ExactSizeIterator<Item = &'a [u8]>,
        acked: usize,
    ) {
        let line = format!(
            "committed batch {}: {} rows, {} new, {} duplicates ({} ms); acked {acked}",
            self.totals.transactions,
            payloads.len(),
            outcome.inserted,
            outcome.duplicates,
            self.started.elapsed().as_millis()
        );
        match self.printer.as_mut() {
            Some(printer) => {
                tracing::debug!("{line}");
                payloads.for_each(|payload| printer.show("", payload));
            }
            None => tracing::info!("{line}"),
        }
    }

    /// The totals, once the queue is done.
    pub fn finish(mut self) -> Totals {
        if let Some(printer) = self.printer.as_mut() {
            printer.finish();
        }
        self.totals
    }
}
