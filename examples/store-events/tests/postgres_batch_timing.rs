//! A diagnostic, not a behaviour test (ignored by default): where the time of one PostgreSQL
//! batch goes. Runs the RELEASE binary against the harness Mosquitto and PostgreSQL, 20,000
//! messages in batches of 100, and prints the median / p90 time of `write_batch` (INSERT +
//! COMMIT, from the `committed batch …(N ms)` lines), with PostgreSQL's default durability and
//! again with `synchronous_commit=off` (the COMMIT does not wait for the WAL flush): the
//! difference is the flush. docs/store-events.md quotes one run.
//!
//! ```text
//! cargo build --release -p store-events
//! cargo test -p store-events --test postgres_batch_timing -- --ignored --nocapture
//! ```

use std::path::PathBuf;
use std::time::Duration;

use mosquitto_harness::{publish_blocking, BrokerOptions, ExampleProcess, MosquittoBroker};
use postgres_harness::PostgresServer;

const N: u64 = 20_000;

#[test]
#[ignore = "diagnostic: needs the release binary; prints timings, asserts nothing about them"]
fn where_the_time_of_a_postgres_batch_goes() {
    let binary =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/release/store-events");
    assert!(
        binary.is_file(),
        "build it first: cargo build --release -p store-events"
    );
    for (label, options) in [
        ("synchronous_commit on (default)", ""),
        (
            "synchronous_commit off",
            "?options=-c%20synchronous_commit%3Doff",
        ),
    ] {
        let broker = MosquittoBroker::start(BrokerOptions::default()).expect("Mosquitto");
        let db = PostgresServer::start().expect("PostgreSQL");
        let dir = tempfile::tempdir().expect("tempdir");
        let creds = broker.write_creds(dir.path(), "timing", "airfinder/test-org/events/#");
        let mut command = std::process::Command::new(&binary);
        command.env("NO_COLOR", "1").env("RUST_LOG", "info");
        command
            .arg("--creds")
            .arg(&creds)
            .arg("--ca-file")
            .arg(broker.ca_path());
        command.args(["--database-url", &format!("{}{options}", db.url())]);
        command.args(["--count", &N.to_string(), "--batch-size", "100"]);
        let mut process = ExampleProcess::spawn_command(command).expect("spawn");
        process
            .wait_for_line(|l| l.contains("subscribed to"), Duration::from_secs(60))
            .expect("subscribed");
        publish_blocking(&broker, "airfinder/test-org/events/tag-1", N, |i| {
            format!(r#"{{"seq":{i},"eventType":"location","tagMac":"C0:01:00:00:00:01","timestamp":"2026-11-29T00:00:00Z","x":1.5,"y":2.5}}"#)
                .into_bytes()
        })
        .expect("publish");
        let status = process.wait_exit(Duration::from_secs(300)).expect("exit");
        assert!(status.success(), "{}", process.transcript());
        let mut ms: Vec<u64> = process
            .stderr()
            .lines()
            .filter(|l| l.contains("committed batch"))
            .filter_map(|l| {
                l.rsplit_once(" duplicates (")?
                    .1
                    .split(" ms)")
                    .next()?
                    .parse()
                    .ok()
            })
            .collect();
        ms.sort_unstable();
        let total: u64 = ms.iter().sum();
        eprintln!(
            "{label}: {} batches, INSERT+COMMIT median {} ms, p90 {} ms, {} ms in all",
            ms.len(),
            ms[ms.len() / 2],
            ms[ms.len() * 9 / 10],
            total
        );
    }
}
