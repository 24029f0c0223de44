//! Helpers shared by the integration tests: a broker, a creds file, a running example.

use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

pub use mosquitto_harness::{
    publish_blocking, BrokerOptions, ExampleProcess, MosquittoBroker, Publisher,
};
pub use serde_json::{json, Value};

/// Generous: debug builds on a loaded 2-core CI machine.
pub const WAIT: Duration = Duration::from_secs(20);

/// The topic filter the tests subscribe to, and a concrete topic under it.
pub const FILTER: &str = "airfinder/test-org/events/#";
/// A concrete topic matched by [`FILTER`].
pub const TOPIC: &str = "airfinder/test-org/events/tag-1";

/// A started broker plus a temp dir for creds files.
pub struct Fixture {
    /// The real Mosquitto.
    pub broker: MosquittoBroker,
    /// Where creds files go.
    pub dir: tempfile::TempDir,
}

impl Fixture {
    /// Mosquitto with default options.
    pub fn new() -> Fixture {
        Fixture::with(BrokerOptions::default())
    }

    /// Mosquitto with the given options.
    pub fn with(options: BrokerOptions) -> Fixture {
        let broker = MosquittoBroker::start(options).unwrap_or_else(|err| panic!("{err}"));
        let dir = tempfile::tempdir().expect("tempdir");
        Fixture { broker, dir }
    }

    /// The creds object for `client_id`, to tweak before [`Fixture::write`].
    pub fn creds(&self, client_id: &str) -> Value {
        self.broker.creds_json(client_id, FILTER)
    }

    /// Writes a creds object to a fresh file and returns its path.
    pub fn write(&self, creds: &Value) -> PathBuf {
        let sub = tempfile::tempdir_in(self.dir.path())
            .expect("tempdir")
            .keep();
        mosquitto_harness::write_creds_value(&sub, creds)
    }

    /// `--creds <file> --ca-file <good CA>` for `client_id`.
    pub fn args(&self, client_id: &str) -> Vec<String> {
        let path = self.write(&self.creds(client_id));
        vec![
            "--creds".into(),
            path_str(&path),
            "--ca-file".into(),
            path_str(self.broker.ca_path()),
        ]
    }

    /// Publishes `n` QoS 1 JSON messages `{"seq": i}` to [`TOPIC`] and waits for every PUBACK.
    pub fn publish(&self, n: u64) {
        self.publish_from(0, n);
    }

    /// Like [`Fixture::publish`], numbering from `first`.
    pub fn publish_from(&self, first: u64, n: u64) {
        publish_blocking(&self.broker, TOPIC, n, |i| {
            json!({"seq": first + i, "eventType": "location"})
                .to_string()
                .into_bytes()
        })
        .unwrap_or_else(|err| panic!("publishing: {err}"));
    }
}

impl Default for Fixture {
    fn default() -> Self {
        Fixture::new()
    }
}

/// A path as a `String` argument.
pub fn path_str(path: &Path) -> String {
    path.to_str().expect("utf-8 path").to_owned()
}

/// Starts an example binary with arguments.
pub fn spawn(bin: &str, args: &[String]) -> ExampleProcess {
    ExampleProcess::spawn(bin, args, &[])
}

/// Waits for a line containing `needle`, failing with the transcript.
pub fn expect_line(process: &ExampleProcess, needle: &str) -> String {
    process
        .wait_for_line(|line| line.contains(needle), WAIT)
        .unwrap_or_else(|| panic!("no line containing {needle:?}:\n{}", process.transcript()))
}

/// Waits for the exit, failing with the transcript on timeout.
pub fn expect_exit(process: &mut ExampleProcess) -> ExitStatus {
    process
        .wait_exit(WAIT)
        .unwrap_or_else(|| panic!("did not exit in time:\n{}", process.transcript()))
}

/// Asserts the exit code and that stderr contains every needle.
pub fn expect_failure(process: &mut ExampleProcess, code: i32, needles: &[&str]) {
    let status = expect_exit(process);
    let transcript = process.transcript();
    assert_eq!(
        status.code(),
        Some(code),
        "exit status {status}:\n{transcript}"
    );
    for needle in needles {
        assert!(
            process.stderr().contains(needle),
            "stderr lacks {needle:?}:\n{transcript}"
        );
    }
    assert!(
        !transcript.contains("panicked") && !transcript.contains("RUST_BACKTRACE"),
        "a panic instead of an error message:\n{transcript}"
    );
}

/// The `seq` numbers of every JSON message an example printed (pretty-printed `"seq": N`).
pub fn seqs(process: &ExampleProcess) -> Vec<u64> {
    process
        .stdout()
        .lines()
        .filter_map(|line| line.trim().strip_prefix("\"seq\": "))
        .filter_map(|rest| rest.trim_end_matches(',').parse().ok())
        .collect()
}
