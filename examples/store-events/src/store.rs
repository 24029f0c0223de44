//! The database side: SQLite (rusqlite, bundled) or PostgreSQL (tokio-postgres), the schema
//! migration, and one idempotent batch insert per transaction.
//!
//! `main.rs` calls [`retry_until_stored`] with [`Store::ready`] or [`Store::write_batch`]: whatever
//! fails there is retried until the database is back or `--give-up-after` has passed, and nothing
//! is acked meanwhile. A database that stays down, or a SQLite file that cannot be used, ends the
//! process with exit code [`DATABASE_EXIT`] ([`report`]).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, Context};
use common::Backoff;
use tokio::sync::watch;
use tokio_postgres::{Client, NoTls, Statement};

use crate::event::EventRow;

/// Exit code when the database stays unavailable longer than `--give-up-after`, or the SQLite
/// file cannot be used.
pub const DATABASE_EXIT: u8 = 9;
/// Exit code of the `--crash-…` test aids.
pub const SIMULATED_CRASH_EXIT: i32 = 99;

/// Schema migrations, in order: (version, SQL). Each is applied once, in a transaction, and
/// recorded in `store_events_migrations`. Add new files at the end; never edit an applied one.
const SQLITE_MIGRATIONS: [(i32, &str); 1] = [(
    1,
    include_str!("../migrations/sqlite/0001_create_events.sql"),
)];
const POSTGRES_MIGRATIONS: [(i32, &str); 1] = [(
    1,
    include_str!("../migrations/postgres/0001_create_events.sql"),
)];
const MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS store_events_migrations \
     (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)";

/// A PostgreSQL call that has not answered in this time is treated like a dropped connection.
const POSTGRES_TIMEOUT: Duration = Duration::from_secs(15);

/// ON CONFLICT DO NOTHING: a row whose key is already there is skipped, not an error; the
/// number of rows changed tells new from duplicate.
const SQLITE_INSERT: &str = "INSERT INTO events \
     (event_key, topic, received_at, payload, raw_payload, tag_mac, event_type, event_time) \
     VALUES (?1, ?2, strftime('%Y-%m-%dT%H:%M:%fZ', ?3, 'unixepoch'), ?4, ?5, ?6, ?7, ?8) \
     ON CONFLICT (event_key) DO NOTHING";
/// One statement for the whole batch (one round trip): the columns as arrays, UNNEST to rows.
const POSTGRES_INSERT: &str = "INSERT INTO events \
     (event_key, topic, received_at, payload, raw_payload, tag_mac, event_type, event_time) \
     SELECT * FROM UNNEST($1::text[], $2::text[], $3::timestamptz[], $4::text[]::jsonb[], \
     $5::bytea[], $6::text[], $7::text[], $8::text[]) \
     ON CONFLICT (event_key) DO NOTHING";

/// What one committed batch did.
#[derive(Debug, Default, Clone, Copy)]
pub struct BatchOutcome {
    /// Rows inserted.
    pub inserted: u64,
    /// Rows skipped because their key was already stored: redeliveries.
    pub duplicates: u64,
    /// Rows PostgreSQL refused in typed columns, stored as raw bytes instead.
    pub stored_raw: u64,
}

/// The database was unavailable for longer than `--give-up-after`. Exit code 9.
#[derive(Debug, thiserror::Error)]
#[error(
    "the database ({database}) has been unavailable for {waited_s} s (--give-up-after): \
     {last_error}. Nothing that was not stored was acked: the broker keeps those messages in this \
     client's session and sends them again on the next start. Check that the database is running \
     and reachable, then start store-events again."
)]
pub struct DatabaseDown {
    pub database: String,
    pub waited_s: u64,
    pub last_error: String,
}

/// The SQLite file cannot be opened, set up or migrated (a missing folder, no permission, not a
/// SQLite file). Exit code 9, like [`DatabaseDown`]: waiting does not fix it.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot use the {database} (--database): {reason}. Check that its folder exists and is \
     writable, and that the file is a SQLite database (or pass another --database)."
)]
pub struct DatabaseUnusable {
    pub database: String,
    pub reason: String,
}

/// For `main`: a database failure (down too long, or unusable) is reported with its
/// troubleshooting entry and exit code [`DATABASE_EXIT`]; `None` for any other error.
pub fn report(err: &anyhow::Error) -> Option<ExitCode> {
    if !err
        .chain()
        .any(|cause| cause.is::<DatabaseDown>() || cause.is::<DatabaseUnusable>())
    {
        return None;
    }
    let message = format!("{err:#}");
    eprintln!("error: {message}");
    if let Some(key) = common::catalogue::lookup(&message) {
        eprintln!("{}", common::exit::help_line(key));
    }
    Some(ExitCode::from(DATABASE_EXIT))
}

/// What [`retry_until_stored`] retries.
pub enum Attempt<'a> {
    /// Connect and migrate (at start).
    Ready,
    /// Write this batch in one transaction (the flag: `--crash-before-commit`).
    Write(&'a Arc<[EventRow]>, bool),
}

/// Tries `attempt` until it succeeds; meanwhile nothing is acked. Gives up (`DatabaseDown`)
/// after `give_up` of failures in a row, or returns `Ok(None)` when `stop` is raised first.
pub async fn retry_until_stored(
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

/// Where the events go.
pub enum Store {
    Sqlite(SqliteStore),
    /// Boxed: it holds the connection settings and the prepared statement (~0.5 KB).
    Postgres(Box<PostgresStore>),
}

impl Store {
    /// SQLite at `path`: opened and migrated now (a file that cannot be opened is an error at
    /// once; it does not come back by waiting).
    pub fn sqlite(path: PathBuf) -> Result<Store, DatabaseUnusable> {
        let database = format!("SQLite file {}", path.display());
        SqliteStore::open(path)
            .map(Store::Sqlite)
            .map_err(|err| DatabaseUnusable {
                database,
                reason: format!("{err:#}"),
            })
    }

    /// PostgreSQL: connected lazily by [`Store::ready`], so an outage at start is retried too.
    pub fn postgres(config: tokio_postgres::Config) -> Store {
        Store::Postgres(Box::new(PostgresStore::new(config)))
    }

    /// `SQLite file events.db` or `PostgreSQL 127.0.0.1:5432/db` (never the password).
    pub fn name(&self) -> &str {
        match self {
            Store::Sqlite(store) => &store.name,
            Store::Postgres(store) => &store.name,
        }
    }

    /// Connects (PostgreSQL) and applies the migrations not applied yet.
    pub async fn ready(&mut self) -> anyhow::Result<()> {
        match self {
            Store::Sqlite(_) => Ok(()),
            Store::Postgres(store) => store.connected().await.map(|_| ()),
        }
    }

    /// Inserts `rows` in ONE transaction and commits. `Ok` means committed: only then may the
    /// messages be acked. Safe to call again with the same rows after an error, even when the
    /// error hid a commit that did happen: the rows are then counted as duplicates.
    ///
    /// `crash_before_commit` is the `--crash-before-commit` test aid: the rows are inserted,
    /// and the process exits (code 99) before COMMIT.
    pub async fn write_batch(
        &mut self,
        rows: &Arc<[EventRow]>,
        crash_before_commit: bool,
    ) -> anyhow::Result<BatchOutcome> {
        match self {
            Store::Sqlite(store) => store.write(rows, crash_before_commit).await,
            Store::Postgres(store) => store.write(rows, crash_before_commit).await,
        }
    }
}

/// Exits like a crash between the inserts and the COMMIT (`--crash-before-commit`).
fn crash_before_commit() -> ! {
    eprintln!("--crash-before-commit: exiting before COMMIT, nothing acked (test aid)");
    std::process::exit(SIMULATED_CRASH_EXIT);
}

fn unix_secs(time: SystemTime) -> f64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0.0, |since| since.as_secs_f64())
}

/// SQLite: one connection, used from a blocking thread (rusqlite is synchronous).
pub struct SqliteStore {
    connection: Arc<Mutex<rusqlite::Connection>>,
    name: String,
}

impl SqliteStore {
    fn open(path: PathBuf) -> anyhow::Result<SqliteStore> {
        let name = format!("SQLite file {}", path.display());
        let mut connection = rusqlite::Connection::open(&path).context("opening it")?;
        // WAL: readers (your queries) do not block the writer. synchronous=FULL: COMMIT returns
        // only when the transaction is on disk, so an ack after it survives a power cut too.
        // busy_timeout: wait for another writer (a query tool) instead of failing at once.
        connection
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
                 PRAGMA busy_timeout = 5000;",
            )
            .context("setting it up")?;
        let tx = connection
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .context("migrating its schema")?;
        tx.execute_batch(MIGRATIONS_TABLE)
            .context("migrating its schema")?;
        for (version, sql) in SQLITE_MIGRATIONS {
            let applied: bool = tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM store_events_migrations WHERE version = ?1)",
                [version],
                |row| row.get(0),
            )?;
            if !applied {
                tracing::info!("{name}: applying schema migration {version}");
                tx.execute_batch(sql)
                    .with_context(|| format!("applying migration {version}"))?;
                tx.execute(
                    "INSERT INTO store_events_migrations (version, applied_at) \
                     VALUES (?1, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
                    [version],
                )?;
            }
        }
        tx.commit().context("migrating its schema")?;
        Ok(SqliteStore {
            connection: Arc::new(Mutex::new(connection)),
            name,
        })
    }

    async fn write(&self, rows: &Arc<[EventRow]>, crash: bool) -> anyhow::Result<BatchOutcome> {
        let connection = Arc::clone(&self.connection);
        let rows = Arc::clone(rows);
        tokio::task::spawn_blocking(move || {
            let mut connection = connection.lock().unwrap_or_else(PoisonError::into_inner);
            let tx =
                connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let mut inserted = 0;
            {
                let mut insert = tx.prepare_cached(SQLITE_INSERT)?;
                for row in rows.iter() {
                    inserted += insert.execute(rusqlite::params![
                        row.key,
                        row.topic,
                        unix_secs(row.received_at),
                        row.payload_json,
                        row.raw_payload,
                        row.tag_mac,
                        row.event_type,
                        row.event_time,
                    ])? as u64;
                }
            }
            if crash {
                crash_before_commit();
            }
            tx.commit()?;
            Ok(BatchOutcome {
                inserted,
                duplicates: rows.len() as u64 - inserted,
                stored_raw: 0,
            })
        })
        .await
        .map_err(|join| anyhow!("the SQLite writer thread failed: {join}"))?
    }
}

/// PostgreSQL: one connection, opened (and re-opened after a failure) on demand.
pub struct PostgresStore {
    config: tokio_postgres::Config,
    name: String,
    connection: Option<(Client, Statement)>,
}

impl PostgresStore {
    fn new(config: tokio_postgres::Config) -> PostgresStore {
        let hosts: Vec<String> = config
            .get_hosts()
            .iter()
            .map(|host| match host {
                tokio_postgres::config::Host::Tcp(name) => name.clone(),
                tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
            })
            .collect();
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let name = format!(
            "PostgreSQL {}:{port}/{}",
            hosts.join(","),
            config.get_dbname().unwrap_or("(default database)")
        );
        PostgresStore {
            config,
            name,
            connection: None,
        }
    }

    /// The open connection, after connecting and migrating if there is none.
    async fn connected(&mut self) -> anyhow::Result<&mut (Client, Statement)> {
        if self
            .connection
            .as_ref()
            .is_some_and(|(client, _)| client.is_closed())
        {
            self.connection = None;
        }
        if self.connection.is_none() {
            let opened = tokio::time::timeout(POSTGRES_TIMEOUT, self.open())
                .await
                .map_err(|_| anyhow!("no answer within {} s", POSTGRES_TIMEOUT.as_secs()))??;
            self.connection = Some(opened);
        }
        self.connection
            .as_mut()
            .ok_or_else(|| anyhow!("not connected"))
    }

    async fn open(&self) -> anyhow::Result<(Client, Statement)> {
        // TLS to the database is left out (see the header): NoTls.
        let (mut client, connection) = self.config.connect(NoTls).await?;
        let name = self.name.clone();
        // tokio-postgres: the connection object does the I/O and must be polled by a task.
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::warn!("{name}: connection closed: {err}");
            }
        });
        let tx = client.transaction().await?;
        // Several store-events processes may start at once on an empty database: one migrates,
        // the others wait here (a transaction-scoped advisory lock), then see it done.
        tx.batch_execute("SELECT pg_advisory_xact_lock(7301014)")
            .await?;
        tx.batch_execute(MIGRATIONS_TABLE).await?;
        for (version, sql) in POSTGRES_MIGRATIONS {
            let applied = tx
                .query_opt(
                    "SELECT 1 FROM store_events_migrations WHERE version = $1",
                    &[&version],
                )
                .await?
                .is_some();
            if !applied {
                tracing::info!("{}: applying schema migration {version}", self.name);
                tx.batch_execute(sql).await?;
                tx.execute(
                    "INSERT INTO store_events_migrations (version, applied_at) \
                     VALUES ($1, now()::text)",
                    &[&version],
                )
                .await?;
            }
        }
        tx.commit().await?;
        let insert = client.prepare(POSTGRES_INSERT).await?;
        tracing::info!("{}: connected, schema up to date", self.name);
        Ok((client, insert))
    }

    async fn write(&mut self, rows: &Arc<[EventRow]>, crash: bool) -> anyhow::Result<BatchOutcome> {
        let result = tokio::time::timeout(POSTGRES_TIMEOUT, self.write_once(rows, crash)).await;
        match result {
            Ok(Ok(outcome)) => Ok(outcome),
            Ok(Err(err)) if is_refused_row(&err) => {
                // Not the database's health: a value PostgreSQL refuses (e.g. `\u0000` in
                // JSON). Retrying the batch as it is would fail for ever, a poison message.
                // Store row by row; a row still refused is stored as raw bytes.
                tracing::warn!("{}: {err:#}; storing this batch row by row", self.name);
                self.write_row_by_row(rows).await
            }
            Ok(Err(err)) => {
                self.connection = None; // reconnect on the next attempt
                Err(err)
            }
            Err(_) => {
                self.connection = None;
                Err(anyhow!("no answer within {} s", POSTGRES_TIMEOUT.as_secs()))
            }
        }
    }

    async fn write_once(&mut self, rows: &[EventRow], crash: bool) -> anyhow::Result<BatchOutcome> {
        let (client, insert) = self.connected().await?;
        let column = |get: fn(&EventRow) -> Option<String>| -> Vec<Option<String>> {
            rows.iter().map(get).collect()
        };
        let keys = column(|row| Some(row.key.clone()));
        let topics = column(|row| Some(row.topic.clone()));
        let received: Vec<SystemTime> = rows.iter().map(|row| row.received_at).collect();
        let payloads = column(|row| row.payload_json.clone());
        let raws: Vec<Option<Vec<u8>>> = rows.iter().map(|row| row.raw_payload.clone()).collect();
        let tags = column(|row| row.tag_mac.clone());
        let types = column(|row| row.event_type.clone());
        let times = column(|row| row.event_time.clone());
        let tx = client.transaction().await?;
        let inserted = tx
            .execute(
                &*insert,
                &[
                    &keys, &topics, &received, &payloads, &raws, &tags, &types, &times,
                ],
            )
            .await
            .map_err(anyhow::Error::from)?;
        if crash {
            crash_before_commit();
        }
        tx.commit().await?;
        Ok(BatchOutcome {
            inserted,
            duplicates: rows.len() as u64 - inserted,
            stored_raw: 0,
        })
    }

    async fn write_row_by_row(&mut self, rows: &[EventRow]) -> anyhow::Result<BatchOutcome> {
        let mut total = BatchOutcome::default();
        for row in rows {
            let outcome = match self.write_once(std::slice::from_ref(row), false).await {
                Err(err) if is_refused_row(&err) => {
                    tracing::warn!(
                        "{}: {} refused ({err:#}); storing its payload as raw bytes",
                        self.name,
                        row.key
                    );
                    let raw = row.raw_only(&row.payload_bytes());
                    let mut outcome = self.write_once(std::slice::from_ref(&raw), false).await?;
                    outcome.stored_raw = outcome.inserted;
                    outcome
                }
                other => other?,
            };
            total.inserted += outcome.inserted;
            total.duplicates += outcome.duplicates;
            total.stored_raw += outcome.stored_raw;
        }
        Ok(total)
    }
}

/// A refusal of the data itself (SQLSTATE class 22 "data exception", e.g. `\u0000` in JSONB or
/// TEXT), as opposed to a connection or server problem that waiting can cure.
fn is_refused_row(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<tokio_postgres::Error>()
            .and_then(tokio_postgres::Error::code)
            .is_some_and(|code| code.code().starts_with("22"))
    })
}

#[cfg(test)]
mod tests {
    use super::{DatabaseDown, DatabaseUnusable};
    use common::catalogue::{lookup, Key};

    /// The words store-events prints for its own failures are the words on the troubleshooting
    /// page, so a user who pastes them finds the entry (and the exit code there is ours).
    #[test]
    fn database_failures_are_in_the_troubleshooting_catalogue() {
        let down = DatabaseDown {
            database: "PostgreSQL at 127.0.0.1:5432/events".into(),
            waited_s: 60,
            last_error: "connection refused".into(),
        };
        assert_eq!(lookup(&down.to_string()), Some(Key::DatabaseDown));
        let unusable = DatabaseUnusable {
            database: "SQLite file /nope/events.db".into(),
            reason: "unable to open database file".into(),
        };
        assert_eq!(lookup(&unusable.to_string()), Some(Key::DatabaseUnusable));
        for key in [Key::DatabaseDown, Key::DatabaseUnusable] {
            assert_eq!(key.entry().exit_code, Some(super::DATABASE_EXIT));
        }
    }
}
