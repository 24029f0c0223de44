//! `store-events` run as a process against a real Mosquitto (TLS, password, MQTT v5) and a real
//! database: a SQLite file, or a PostgreSQL server the test starts itself (crates/postgres-harness).
//!
//! What the example promises, checked in the database (row counts) and in its output:
//! - every message published becomes exactly one row (10,000 → 10,000), SQLite and PostgreSQL;
//! - a crash after the COMMIT and before the acks: the redelivery is skipped by the database;
//!   a crash before the COMMIT: the row arrives after the restart; counts exact;
//! - three processes in one `$share` group on one PostgreSQL, restarted one after the other while
//!   messages flow: one row per distinct message;
//! - PostgreSQL stopped ~10 s mid-stream: nothing acked while it is down, 0 lost, 0 duplicates;
//! - a payload that is not JSON (or JSON PostgreSQL refuses) is stored raw and acked.
//!
//! Waits are on events (a log line, a row count) with generous timeouts, never on a fixed time.

use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use mosquitto_harness::{publish_blocking, BrokerOptions, ExampleProcess, MosquittoBroker};
use postgres_harness::PostgresServer;
use serde_json::json;

const BIN: &str = "store-events";
const FILTER: &str = "airfinder/test-org/events/#";
const TOPIC: &str = "airfinder/test-org/events/tag-1";
/// `--crash-…` test aids exit with this code.
const SIMULATED_CRASH_EXIT: i32 = 99;
/// Generous: debug builds, several tests at once, a loaded 2-core machine.
const WAIT: Duration = Duration::from_secs(120);

/// A Mosquitto broker and a temp dir for creds files and SQLite databases.
struct Fixture {
    broker: MosquittoBroker,
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture::with(BrokerOptions::default())
    }

    fn with(options: BrokerOptions) -> Fixture {
        let broker = MosquittoBroker::start(options)
            .unwrap_or_else(|err| panic!("starting Mosquitto: {err}"));
        Fixture {
            broker,
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// `--creds … --ca-file …` for `client_id`, plus `extra`.
    fn args(&self, client_id: &str, extra: &[&str]) -> Vec<String> {
        let dir = self.dir.path().join(format!("creds-{client_id}"));
        std::fs::create_dir_all(&dir).expect("creds dir");
        let creds = self.broker.write_creds(&dir, client_id, FILTER);
        let mut args = vec![
            "--creds".to_owned(),
            path_str(&creds),
            "--ca-file".to_owned(),
            path_str(self.broker.ca_path()),
        ];
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        args
    }

    fn sqlite_path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Publishes messages `first..first+n` (`{"seq": i, …}`, distinct payloads) and waits for
    /// every PUBACK.
    fn publish(&self, first: u64, n: u64) {
        publish_blocking(&self.broker, TOPIC, n, |i| event(first + i))
            .unwrap_or_else(|err| panic!("publishing: {err}"));
    }
}

fn event(seq: u64) -> Vec<u8> {
    json!({"seq": seq, "eventType": "location", "tagMac": "C0:01:00:00:00:01"})
        .to_string()
        .into_bytes()
}

fn path_str(path: &Path) -> String {
    path.to_str().expect("utf-8 path").to_owned()
}

fn spawn(args: &[String]) -> ExampleProcess {
    ExampleProcess::spawn(BIN, args, &[])
}

fn expect_line(process: &ExampleProcess, needle: &str) -> String {
    process
        .wait_for_line(|line| line.contains(needle), WAIT)
        .unwrap_or_else(|| panic!("no line containing {needle:?}:\n{}", process.transcript()))
}

fn expect_exit(process: &mut ExampleProcess) -> ExitStatus {
    process
        .wait_exit(WAIT)
        .unwrap_or_else(|| panic!("did not exit in time:\n{}", process.transcript()))
}

/// SIGTERM, a clean exit, and the numbers of its `summary:` line.
fn stop(process: &mut ExampleProcess) -> Summary {
    process.terminate();
    let status = expect_exit(process);
    assert!(status.success(), "{status}:\n{}", process.transcript());
    summary(process)
}

/// `summary: R received, S stored, D duplicates skipped by the database, T transactions, P …`
#[derive(Debug, PartialEq)]
struct Summary {
    received: u64,
    stored: u64,
    duplicates: u64,
    raw: u64,
}

fn summary(process: &ExampleProcess) -> Summary {
    let line = expect_line(process, "summary: ");
    let numbers: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|word| word.parse().ok())
        .collect();
    assert_eq!(numbers.len(), 5, "unexpected summary line: {line}");
    Summary {
        received: numbers[0],
        stored: numbers[1],
        duplicates: numbers[2],
        raw: numbers[4],
    }
}

fn sqlite_count(path: &Path, sql: &str) -> i64 {
    let connection = rusqlite::Connection::open(path).expect("open the SQLite file");
    connection
        .query_row(sql, [], |row| row.get(0))
        .unwrap_or_else(|err| panic!("{sql}: {err}"))
}

/// Polls `count` until it returns `want` (or fails after WAIT with what it last saw).
fn wait_for_rows(what: &str, want: i64, count: impl Fn() -> i64, transcripts: impl Fn() -> String) {
    let deadline = Instant::now() + WAIT;
    loop {
        let rows = count();
        if rows >= want {
            assert_eq!(
                rows,
                want,
                "{what}: more rows than messages\n{}",
                transcripts()
            );
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: {rows} of {want} rows after {} s\n{}",
            WAIT.as_secs(),
            transcripts()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn start_postgres() -> PostgresServer {
    PostgresServer::start().unwrap_or_else(|err| panic!("starting PostgreSQL: {err}"))
}

fn pg_count(db: &PostgresServer, sql: &str) -> i64 {
    db.query_i64(sql).unwrap_or_else(|err| panic!("{err}"))
}

const ROWS: &str = "SELECT count(*) FROM events";
const DISTINCT_SEQ: &str = "SELECT count(DISTINCT payload ->> 'seq') FROM events";

#[test]
fn ten_thousand_messages_make_ten_thousand_rows_in_sqlite() {
    const N: u64 = 10_000;
    let fx = Fixture::new();
    let db = fx.sqlite_path("events.db");
    let count = N.to_string();
    let mut sub = spawn(&fx.args(
        "store-sqlite-10k",
        &["--database", &path_str(&db), "--count", &count],
    ));
    expect_line(&sub, "subscribed to");
    fx.publish(0, N);
    let status = expect_exit(&mut sub);
    assert!(status.success(), "{status}:\n{}", sub.transcript());
    let summary = summary(&sub);
    assert_eq!(
        summary,
        Summary {
            received: N,
            stored: N,
            duplicates: 0,
            raw: 0
        },
        "{}",
        sub.transcript()
    );
    assert_eq!(sqlite_count(&db, ROWS), N as i64);
    assert_eq!(
        sqlite_count(
            &db,
            "SELECT count(DISTINCT json_extract(payload, '$.seq')) FROM events"
        ),
        N as i64
    );
    assert_eq!(
        sqlite_count(&db, "SELECT count(*) FROM events WHERE tag_mac = 'C0:01:00:00:00:01' AND event_type = 'location'"),
        N as i64,
        "the queryable columns are filled"
    );
}

#[test]
fn ten_thousand_messages_make_ten_thousand_rows_in_postgres() {
    const N: u64 = 10_000;
    let fx = Fixture::new();
    let pg = start_postgres();
    let count = N.to_string();
    let mut sub = spawn(&fx.args(
        "store-pg-10k",
        &["--database-url", &pg.url(), "--count", &count],
    ));
    expect_line(&sub, "subscribed to");
    fx.publish(0, N);
    let status = expect_exit(&mut sub);
    assert!(status.success(), "{status}:\n{}", sub.transcript());
    assert_eq!(
        summary(&sub),
        Summary {
            received: N,
            stored: N,
            duplicates: 0,
            raw: 0
        },
        "{}",
        sub.transcript()
    );
    assert_eq!(pg_count(&pg, ROWS), N as i64);
    assert_eq!(pg_count(&pg, DISTINCT_SEQ), N as i64);
}

#[test]
fn a_crash_after_the_commit_means_a_redelivery_the_database_skips() {
    let fx = Fixture::new();
    let db = fx.sqlite_path("events.db");
    let base = fx.args(
        "store-crash-after",
        &["--database", &path_str(&db), "--batch-size", "1"],
    );
    let mut with_crash = base.clone();
    with_crash.extend(["--crash-after-commit".to_owned(), "5".to_owned()]);
    let mut first = spawn(&with_crash);
    expect_line(&first, "subscribed to");
    fx.publish(0, 10);
    let status = expect_exit(&mut first);
    assert_eq!(
        status.code(),
        Some(SIMULATED_CRASH_EXIT),
        "{}",
        first.transcript()
    );
    // The 5th message is in the database but was never acked.
    assert_eq!(sqlite_count(&db, ROWS), 5, "{}", first.transcript());

    let mut second = spawn(&base);
    expect_line(&second, "session present: true");
    wait_for_rows(
        "after the restart",
        10,
        || sqlite_count(&db, ROWS),
        || second.transcript(),
    );
    let summary = stop(&mut second);
    let transcript = format!("{}\n{}", first.transcript(), second.transcript());
    // The second run stored exactly the 5 the first did not, and the redelivered 5th (and any
    // message whose ack had not left before the crash) was skipped by the database.
    assert_eq!(summary.stored, 5, "{transcript}");
    assert!(summary.duplicates >= 1, "{transcript}");
    assert_eq!(
        summary.received,
        summary.stored + summary.duplicates,
        "{transcript}"
    );
    assert_eq!(
        sqlite_count(
            &db,
            "SELECT count(DISTINCT json_extract(payload, '$.seq')) FROM events"
        ),
        10
    );
}

#[test]
fn a_crash_before_the_commit_loses_nothing_the_row_arrives_after_the_restart() {
    let fx = Fixture::new();
    let pg = start_postgres();
    let base = fx.args(
        "store-crash-before",
        &["--database-url", &pg.url(), "--batch-size", "1"],
    );
    let mut with_crash = base.clone();
    with_crash.extend(["--crash-before-commit".to_owned(), "5".to_owned()]);
    let mut first = spawn(&with_crash);
    expect_line(&first, "subscribed to");
    fx.publish(0, 10);
    let status = expect_exit(&mut first);
    assert_eq!(
        status.code(),
        Some(SIMULATED_CRASH_EXIT),
        "{}",
        first.transcript()
    );
    // The 5th row was inserted, never committed: only 4 rows.
    assert_eq!(pg_count(&pg, ROWS), 4, "{}", first.transcript());

    let mut second = spawn(&base);
    expect_line(&second, "session present: true");
    wait_for_rows(
        "after the restart",
        10,
        || pg_count(&pg, ROWS),
        || second.transcript(),
    );
    let summary = stop(&mut second);
    let transcript = format!("{}\n{}", first.transcript(), second.transcript());
    assert_eq!(summary.stored, 6, "{transcript}");
    assert_eq!(
        summary.received,
        summary.stored + summary.duplicates,
        "{transcript}"
    );
    assert_eq!(pg_count(&pg, DISTINCT_SEQ), 10);
}

#[test]
fn three_members_of_a_shared_group_through_a_rolling_restart_store_each_message_once() {
    const PER_BURST: u64 = 250;
    let fx = Fixture::new();
    let pg = start_postgres();
    let url = pg.url();
    let member_args = |instance: &str| {
        fx.args(
            "store-group",
            &[
                "--database-url",
                &url,
                "--group",
                "store",
                "--instance",
                instance,
                "--batch-size",
                "20",
            ],
        )
    };
    let mut members: Vec<ExampleProcess> = ["1", "2", "3"]
        .iter()
        .map(|instance| spawn(&member_args(instance)))
        .collect();
    for member in &members {
        expect_line(member, "subscribed to $share/store/");
    }
    let transcripts = |members: &[ExampleProcess], old: &[String]| {
        let mut text = old.join("\n");
        for member in members {
            text.push_str(&member.transcript());
        }
        text
    };

    // Publishing in bursts from another thread while the members restart one after another,
    // and one more burst once all three have restarted (so each new process gets a share).
    let mut old_transcripts = Vec::new();
    let mut summaries = Vec::new();
    let restarted = std::sync::atomic::AtomicBool::new(false);
    let bursts = std::thread::scope(|scope| {
        let publisher = scope.spawn(|| {
            let mut burst = 0;
            loop {
                let last = restarted.load(std::sync::atomic::Ordering::SeqCst);
                fx.publish(burst * PER_BURST, PER_BURST);
                burst += 1;
                if last {
                    return burst;
                }
            }
        });
        for (index, instance) in ["1", "2", "3"].iter().enumerate() {
            // Each member handles some traffic, then is replaced (SIGTERM, start again).
            members[index].wait_for_count(|l| l.contains("committed batch"), 2, WAIT);
            summaries.push(stop(&mut members[index]));
            old_transcripts.push(members[index].transcript());
            members[index] = spawn(&member_args(instance));
            expect_line(&members[index], "session present: true");
        }
        restarted.store(true, std::sync::atomic::Ordering::SeqCst);
        publisher.join().expect("publisher thread")
    });
    let total = (bursts * PER_BURST) as i64;
    wait_for_rows(
        "the group",
        total,
        || pg_count(&pg, ROWS),
        || transcripts(&members, &old_transcripts),
    );
    for member in &mut members {
        summaries.push(stop(member));
    }
    let text = transcripts(&members, &old_transcripts);
    assert_eq!(pg_count(&pg, DISTINCT_SEQ), total, "{text}");
    let stored: u64 = summaries.iter().map(|s| s.stored).sum();
    assert_eq!(
        stored as i64, total,
        "each message stored by exactly one member\n{text}"
    );
    // Every member (and each restarted one) did its share.
    assert!(
        summaries.iter().all(|s| s.stored > 0),
        "{summaries:?}\n{text}"
    );
}

#[test]
fn postgres_down_ten_seconds_mid_stream_loses_nothing_and_acks_nothing_meanwhile() {
    let fx = Fixture::new();
    let mut pg = start_postgres();
    let mut sub = spawn(&fx.args(
        "store-pg-outage",
        &["--database-url", &pg.url(), "--give-up-after", "300"],
    ));
    expect_line(&sub, "subscribed to");
    fx.publish(0, 500);
    wait_for_rows(
        "before the outage",
        500,
        || pg_count(&pg, ROWS),
        || sub.transcript(),
    );

    pg.stop();
    fx.publish(500, 500);
    expect_line(&sub, "is unavailable");
    // ~10 s down, counted from the first failed write.
    std::thread::sleep(Duration::from_secs(10));
    let committed_before_the_return = sub.count_lines(|l| l.contains("committed batch"));
    pg.start_again()
        .unwrap_or_else(|err| panic!("starting PostgreSQL again: {err}"));
    expect_line(&sub, "is back after");
    wait_for_rows(
        "after the outage",
        1000,
        || pg_count(&pg, ROWS),
        || sub.transcript(),
    );
    let summary = stop(&mut sub);
    let transcript = sub.transcript();

    assert_eq!(pg_count(&pg, DISTINCT_SEQ), 1000, "{transcript}");
    assert_eq!(summary.stored, 1000, "{transcript}");
    // Nothing committed — so nothing acked — between the first failure and the return.
    let lines: Vec<String> = sub.lines().into_iter().map(|(_, line)| line).collect();
    let down_at = lines
        .iter()
        .position(|l| l.contains("is unavailable"))
        .expect("seen above");
    let back_at = lines
        .iter()
        .position(|l| l.contains("is back after"))
        .expect("seen above");
    assert!(
        !lines[down_at..back_at]
            .iter()
            .any(|l| l.contains("committed batch")),
        "a batch was committed/acked while the database was down:\n{transcript}"
    );
    assert!(committed_before_the_return > 0, "{transcript}");
}

#[test]
fn killed_while_the_database_is_down_loses_nothing_because_nothing_was_acked() {
    // What "nothing acked while the database is down" buys: the process can die meanwhile and
    // the broker still has every message that was not stored.
    let fx = Fixture::new();
    let mut pg = start_postgres();
    let args = fx.args("store-pg-killed", &["--database-url", &pg.url()]);
    let mut first = spawn(&args);
    expect_line(&first, "subscribed to");
    fx.publish(0, 100);
    wait_for_rows(
        "before the outage",
        100,
        || pg_count(&pg, ROWS),
        || first.transcript(),
    );
    pg.stop();
    fx.publish(100, 300);
    // It has received (some of) them and cannot store them.
    expect_line(&first, "is unavailable");
    first.kill();
    pg.start_again()
        .unwrap_or_else(|err| panic!("starting PostgreSQL again: {err}"));
    let mut second = spawn(&args);
    wait_for_rows(
        "after the restart",
        400,
        || pg_count(&pg, ROWS),
        || format!("{}\n{}", first.transcript(), second.transcript()),
    );
    stop(&mut second);
    assert_eq!(pg_count(&pg, DISTINCT_SEQ), 400);
}

/// Holds SQLite's write lock on `path` until dropped: for store-events the database is down (its
/// writes wait `busy_timeout`, then fail and are retried), with no server to stop.
fn lock_sqlite(path: &Path) -> rusqlite::Connection {
    let connection = rusqlite::Connection::open(path).expect("open the SQLite file");
    connection
        .execute_batch("BEGIN IMMEDIATE")
        .expect("take the write lock");
    connection
}

/// The stale-ack guard: a batch received on one connection and committed after the broker
/// restarted is not acked on the new connection (its packet ids may name other messages there);
/// the resumed session sends it again, the database skips it, and that copy is acked.
#[test]
fn a_batch_committed_after_a_reconnect_is_not_acked_on_the_new_connection() {
    const N: u64 = 5;
    let mut fx = Fixture::with(BrokerOptions {
        persistence: true,
        ..BrokerOptions::default()
    });
    let db = fx.sqlite_path("events.db");
    let args = fx.args("store-stale-ack", &["--database", &path_str(&db)]);
    let mut sub = spawn(&args);
    expect_line(&sub, "subscribed to");
    // The database is down: the writer holds the batch, unacked, and retries.
    let lock = lock_sqlite(&db);
    fx.publish(0, N);
    expect_line(&sub, "is unavailable");
    // The broker restarts (its persistence keeps our session): a new connection.
    fx.broker.stop();
    fx.broker
        .start_again()
        .unwrap_or_else(|err| panic!("restarting the broker: {err}"));
    expect_line(&sub, "session present: true");
    drop(lock);
    wait_for_rows(
        "after the reconnect",
        N as i64,
        || sqlite_count(&db, ROWS),
        || sub.transcript(),
    );
    // Every copy from the first connection was committed and not acked; every redelivered copy
    // was skipped by the database (and acked: the next run below gets nothing).
    let summary = stop(&mut sub);
    assert_eq!(
        (summary.received, summary.stored, summary.duplicates),
        (2 * N, N, N),
        "{}",
        sub.transcript()
    );
    let not_acked: u64 = sub
        .stderr()
        .lines()
        .filter_map(|line| {
            line.split("not acking ")
                .nth(1)?
                .split(' ')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum();
    assert_eq!(not_acked, N, "{}", sub.transcript());
    // Nothing is owed any more: a new run gets no redelivery.
    let mut again = spawn(&args);
    expect_line(&again, "subscribed to");
    let summary = stop(&mut again);
    assert_eq!(summary.received, 0, "{}", again.transcript());
}

/// SIGTERM while the database is down and the work queue is full (the polling task waiting for
/// room in it): the process stops, acks nothing it did not store, and sends DISCONNECT; the next
/// run stores everything.
///
/// The queue fills because Mosquitto 2.0.11 sends Receive Maximum more messages for every PUBACK
/// (tests/backlog.rs measures it): the database is locked while a stream is being stored, so
/// the broker has sent far more than the queue holds.
#[test]
fn sigterm_while_the_database_is_down_and_the_queue_full_stops_and_loses_nothing() {
    const N: u64 = 5_000;
    let fx = Fixture::new();
    let db = fx.sqlite_path("events.db");
    // Batches of 1: a commit per message, so the stream is still flowing when the lock comes.
    let args = fx.args(
        "store-term-down",
        &["--database", &path_str(&db), "--batch-size", "1"],
    );
    let mut first = spawn(&args);
    expect_line(&first, "subscribed to");
    let lock = std::thread::scope(|scope| {
        scope.spawn(|| fx.publish(0, N));
        // Some stored and acked, most still to come: now the database goes down.
        let deadline = Instant::now() + WAIT;
        while sqlite_count(&db, ROWS) < 20 {
            assert!(Instant::now() < deadline, "{}", first.transcript());
            std::thread::sleep(Duration::from_millis(20));
        }
        lock_sqlite(&db)
    });
    expect_line(&first, "is unavailable");
    let stored_before = sqlite_count(&db, ROWS);
    assert!(
        (stored_before as u64) < N / 2,
        "the stream was nearly stored before the lock:\n{}",
        first.transcript()
    );
    first.terminate();
    let status = first
        .wait_exit(Duration::from_secs(30))
        .unwrap_or_else(|| panic!("ignored SIGTERM:\n{}", first.transcript()));
    assert!(status.success(), "{status}:\n{}", first.transcript());
    assert!(
        first.stderr().contains("disconnected cleanly"),
        "{}",
        first.transcript()
    );
    drop(lock);
    let mut second = spawn(&args);
    wait_for_rows(
        "after the restart",
        N as i64,
        || sqlite_count(&db, ROWS),
        || format!("{}\n{}", first.transcript(), second.transcript()),
    );
    stop(&mut second);
    let distinct = "SELECT count(DISTINCT json_extract(payload, '$.seq')) FROM events";
    assert_eq!(sqlite_count(&db, distinct), N as i64);
}

#[test]
fn poison_payloads_are_stored_raw_and_acked_never_a_crash_loop() {
    let fx = Fixture::new();
    let pg = start_postgres();
    let mut sub = spawn(&fx.args(
        "store-poison",
        &[
            "--database-url",
            &pg.url(),
            "--count",
            "4",
            "--batch-size",
            "4",
            "--batch-ms",
            "2000",
        ],
    ));
    expect_line(&sub, "subscribed to");
    // Valid, not JSON at all, JSON that PostgreSQL refuses (\u0000 in jsonb), valid.
    let payloads: [Vec<u8>; 4] = [
        event(1),
        b"\xff\xfe not json".to_vec(),
        br#"{"seq": 3, "note": "\u0000"}"#.to_vec(),
        event(4),
    ];
    publish_blocking(&fx.broker, TOPIC, 4, |i| payloads[i as usize].clone())
        .unwrap_or_else(|err| panic!("publishing: {err}"));
    let status = expect_exit(&mut sub);
    assert!(status.success(), "{status}:\n{}", sub.transcript());
    let summary = summary(&sub);
    assert_eq!(summary.stored, 4, "{}", sub.transcript());
    assert_eq!(summary.raw, 2, "{}", sub.transcript());
    assert_eq!(pg_count(&pg, ROWS), 4);
    assert_eq!(
        pg_count(
            &pg,
            "SELECT count(*) FROM events WHERE raw_payload IS NOT NULL"
        ),
        2
    );

    // Acked: a restart with the same session gets nothing again.
    let mut again = spawn(&fx.args("store-poison", &["--database-url", &pg.url()]));
    expect_line(&again, "subscribed to");
    let summary = stop(&mut again);
    assert_eq!(summary.received, 0, "{}", again.transcript());
}

#[test]
fn a_database_down_longer_than_the_limit_is_exit_9_naming_it() {
    let fx = Fixture::new();
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let url = format!("postgres://store:secret@127.0.0.1:{port}/events");
    let mut sub = spawn(&fx.args(
        "store-no-db",
        &["--database-url", &url, "--give-up-after", "2"],
    ));
    let status = expect_exit(&mut sub);
    assert_eq!(status.code(), Some(9), "{}", sub.transcript());
    let stderr = sub.stderr();
    assert!(
        stderr.contains(&format!("PostgreSQL 127.0.0.1:{port}/events"))
            && !stderr.contains("secret"),
        "{}",
        sub.transcript()
    );
    assert!(!stderr.contains("panicked"), "{}", sub.transcript());
}

#[test]
fn an_unusable_sqlite_file_is_exit_9_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("no-such-folder").join("events.db");
    let mut command = mosquitto_harness::example_command(BIN);
    command.current_dir(dir.path()).arg("--database").arg(&path);
    let mut sub = ExampleProcess::spawn_command(command).expect("spawn");
    let status = expect_exit(&mut sub);
    assert_eq!(status.code(), Some(9), "{}", sub.transcript());
    assert!(
        sub.stderr()
            .contains(&format!("cannot use the SQLite file {}", path.display())),
        "{}",
        sub.transcript()
    );
}
