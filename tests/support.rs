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

/// Leaves a persistent session (`clean_start=false`, expiry 3600 s) for `client_id` on the
/// broker WITHOUT a subscription: connect, wait for the CONNACK, send DISCONNECT, never SUBSCRIBE.
///
/// This is what a consumer leaves behind when it dies (SIGKILL, crash, Ctrl-C) after its first
/// CONNACK but before its SUBSCRIBE reached the broker. Its next run then sees
/// `session present: true` although the session holds no subscription, so an example that
/// subscribes only when `session_present == false` would receive nothing.
pub fn leave_session_without_subscription(fx: &Fixture, client_id: &str) {
    use mosquitto_harness::rumqttc::v5::{mqttbytes::v5::Packet, Client, Event};
    let mut options = fx
        .broker
        .mqtt_options(client_id)
        .unwrap_or_else(|err| panic!("options: {err}"));
    options
        .set_clean_start(false)
        .set_session_expiry_interval(Some(3600));
    let (client, mut connection) = Client::new(options, 10);
    let deadline = std::time::Instant::now() + WAIT;
    let mut disconnect_sent = false;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        assert!(
            !left.is_zero(),
            "{client_id}: no CONNACK / DISCONNECT in time"
        );
        match connection.recv_timeout(left) {
            // (rumqttc reports a refused CONNACK as an error, below.)
            Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => {
                client
                    .disconnect()
                    .unwrap_or_else(|err| panic!("{client_id}: disconnect: {err}"));
                disconnect_sent = true;
            }
            Ok(Ok(Event::Outgoing(mosquitto_harness::rumqttc::Outgoing::Disconnect))) => break,
            Ok(Ok(_)) => {}
            // The socket closed after our DISCONNECT went out.
            Ok(Err(_)) if disconnect_sent => break,
            Ok(Err(err)) => panic!("{client_id}: connection failed: {err}"),
            Err(_) => break,
        }
    }
    assert!(
        fx.broker
            .wait_for_log(&format!("Client {client_id} disconnected"), WAIT),
        "{client_id}: no clean DISCONNECT\n{}",
        fx.broker.log()
    );
}

/// Publishes one RETAINED QoS 1 message `{"seq": seq}` to [`TOPIC`] and waits for its PUBACK:
/// the broker then hands it to every new subscription of [`FILTER`] (Retain Handling permitting).
pub fn publish_retained(fx: &Fixture, seq: u64) {
    use mosquitto_harness::rumqttc::v5::{mqttbytes::v5::Packet, mqttbytes::QoS, Client, Event};
    let options = fx
        .broker
        .mqtt_options("test-retained-publisher")
        .unwrap_or_else(|err| panic!("options: {err}"));
    let (client, mut connection) = Client::new(options, 10);
    let payload = json!({"seq": seq, "eventType": "location"}).to_string();
    client
        .publish(TOPIC, QoS::AtLeastOnce, true, payload)
        .unwrap_or_else(|err| panic!("publish: {err}"));
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        assert!(!left.is_zero(), "no PUBACK for the retained message");
        match connection.recv_timeout(left) {
            Ok(Ok(Event::Incoming(Packet::PubAck(_)))) => break,
            Ok(Ok(_)) => {}
            Ok(Err(err)) => panic!("retained publish: {err}"),
            Err(_) => panic!("no PUBACK for the retained message"),
        }
    }
    let _ = client.disconnect();
    // Send the DISCONNECT before dropping the connection (its error after that is expected).
    let _ = connection.recv_timeout(WAIT);
}
