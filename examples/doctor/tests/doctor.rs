//! `doctor` run as a process against a real Mosquitto (TLS, password auth, MQTT v5): every
//! failure a customer can meet is set up for real and must be diagnosed at the right step, with
//! its fix and the project's exit code.

use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use mosquitto_harness::{BrokerOptions, ExampleProcess, MosquittoBroker};
use serde_json::{json, Value};

/// Generous: debug builds on a loaded 2-core CI machine.
const WAIT: Duration = Duration::from_secs(60);
const FILTER: &str = "airfinder/test-org/events/#";
const TOPIC: &str = "airfinder/test-org/events/tag-1";

struct Fixture {
    broker: MosquittoBroker,
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture::with(BrokerOptions::default())
    }

    fn with(options: BrokerOptions) -> Fixture {
        let broker = MosquittoBroker::start(options).unwrap_or_else(|err| panic!("{err}"));
        let dir = tempfile::tempdir().expect("tempdir");
        Fixture { broker, dir }
    }

    fn creds(&self, client_id: &str) -> Value {
        self.broker.creds_json(client_id, FILTER)
    }

    fn write(&self, creds: &Value) -> PathBuf {
        let sub = tempfile::tempdir_in(self.dir.path())
            .expect("tempdir")
            .keep();
        mosquitto_harness::write_creds_value(&sub, creds)
    }

    /// `--creds <file> --ca-file <good CA>` for a creds object.
    fn args(&self, creds: &Value) -> Vec<String> {
        vec![
            "--creds".into(),
            path_str(&self.write(creds)),
            "--ca-file".into(),
            path_str(self.broker.ca_path()),
        ]
    }
}

fn path_str(path: &Path) -> String {
    path.to_str().expect("utf-8 path").to_owned()
}

fn spawn(args: &[String]) -> ExampleProcess {
    ExampleProcess::spawn("doctor", args, &[])
}

fn finish(process: &mut ExampleProcess) -> ExitStatus {
    let status = process
        .wait_exit(WAIT)
        .unwrap_or_else(|| panic!("doctor did not exit in time:\n{}", process.transcript()));
    let transcript = process.transcript();
    assert!(
        !transcript.contains("panicked"),
        "a panic instead of a report:\n{transcript}"
    );
    status
}

/// Runs doctor to the end; returns its exit code and stdout.
fn run(args: &[String]) -> (i32, String, String) {
    let mut process = spawn(args);
    let status = finish(&mut process);
    (
        status.code().unwrap_or(-1),
        process.stdout(),
        process.transcript(),
    )
}

/// The line of step `n` plus its indented details and advice.
fn step(stdout: &str, n: u8) -> String {
    let tag = format!(" {n:>2}. ");
    let mut lines = stdout
        .lines()
        .skip_while(|line| !line.contains(&tag) || line.starts_with(' '));
    let mut text = match lines.next() {
        Some(first) => first.to_owned(),
        None => panic!("no line for step {n}:\n{stdout}"),
    };
    for line in lines.take_while(|line| line.starts_with(' ')) {
        text.push('\n');
        text.push_str(line);
    }
    text
}

/// Asserts step `n` has `mark` and mentions every needle.
fn expect_step(stdout: &str, n: u8, mark: &str, needles: &[&str]) {
    let text = step(stdout, n);
    assert!(text.starts_with(mark), "step {n} is not {mark}:\n{stdout}");
    for needle in needles {
        assert!(
            text.contains(needle),
            "step {n} lacks {needle:?}:\n{stdout}"
        );
    }
}

/// Publishes one QoS 1 message to [`TOPIC`] every 300 ms until dropped, so doctor's wait for a
/// first message sees traffic without any timing assumption.
struct Traffic {
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Traffic {
    fn start(broker: &MosquittoBroker) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        // The harness's publisher needs the broker only for its address and login.
        let options = broker
            .mqtt_options("doctor-test-publisher")
            .unwrap_or_else(|err| panic!("{err}"));
        let thread = thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let mut publisher = mosquitto_harness::Publisher::connect_with(options)
                    .await
                    .unwrap_or_else(|err| panic!("publisher: {err}"));
                let mut seq = 0u64;
                while !flag.load(Ordering::Relaxed) {
                    let payload = json!({"seq": seq, "eventType": "location"}).to_string();
                    if let Err(err) = publisher.publish(TOPIC, payload.into_bytes()).await {
                        panic!("publishing: {err}");
                    }
                    seq += 1;
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                let _ = publisher.disconnect().await;
            });
        });
        Traffic {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[test]
fn good_credentials_pass_every_step_and_a_message_arrives() {
    let fx = Fixture::new();
    let mut args = fx.args(&fx.creds("doctor-good"));
    args.extend(["--wait".into(), "40".into()]);
    let mut process = spawn(&args);
    // Traffic starts once doctor is subscribed; the message waits in its session if need be.
    assert!(
        process
            .wait_for_line(|line| line.contains(" 6. "), WAIT)
            .is_some(),
        "{}",
        process.transcript()
    );
    let traffic = Traffic::start(&fx.broker);
    let status = finish(&mut process);
    drop(traffic);
    let stdout = process.stdout();
    assert_eq!(status.code(), Some(0), "{}", process.transcript());
    expect_step(&stdout, 1, "✓", &["topic inside subscribeAcl"]);
    expect_step(&stdout, 2, "✓", &["localhost → 127.0.0.1"]);
    // localhost may also resolve to ::1, where the harness does not listen: then ⚠, never ✗.
    let tcp = step(&stdout, 3);
    assert!(
        tcp.starts_with('✓') || (tcp.starts_with('⚠') && tcp.contains("::1")),
        "{stdout}"
    );
    expect_step(
        &stdout,
        4,
        "✓",
        &[
            "TLS 1.3",
            "host name \"localhost\" matches",
            "SNI localhost",
            "DNS:localhost",
        ],
    );
    expect_step(
        &stdout,
        5,
        "✓",
        &[
            "CONNACK 0x00 Success",
            "shared subscriptions available",
            "maximum QoS: ",
            "receive maximum: ",
            "session expiry: ",
        ],
    );
    expect_step(&stdout, 6, "✓", &["granted QoS 1", "$share/doctor"]);
    expect_step(&stdout, 7, "✓", &["session present after a reconnect"]);
    expect_step(&stdout, 8, "–", &["--check-takeover"]);
    expect_step(&stdout, 9, "✓", &[TOPIC, "bytes"]);
    expect_step(&stdout, 10, "✓", &["session expiry 0"]);
    assert!(
        stdout.contains("everything a consumer needs works"),
        "{stdout}"
    );
    // The password never reaches the output.
    assert!(!process.transcript().contains(fx.broker.password()));

    // It left nothing behind: its own id, never the consumer's, and no session kept.
    assert!(
        fx.broker
            .wait_for_log("Client doctor-good-doctor disconnected", WAIT),
        "{}",
        fx.broker.log()
    );
    assert!(
        !fx.broker.log().contains(" as doctor-good "),
        "doctor used the consumer's client id:\n{}",
        fx.broker.log()
    );
    assert!(
        !session_present(&fx.broker, "doctor-good-doctor"),
        "doctor left a session behind"
    );
}

/// Whether the broker still has a session for `client_id` (connect with clean_start=false).
fn session_present(broker: &MosquittoBroker, client_id: &str) -> bool {
    use mosquitto_harness::rumqttc::v5::{mqttbytes::v5::Packet, Client, Event};
    let mut options = broker
        .mqtt_options(client_id)
        .unwrap_or_else(|err| panic!("{err}"));
    options
        .set_clean_start(false)
        .set_session_expiry_interval(Some(0));
    let (client, mut connection) = Client::new(options, 10);
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        assert!(!left.is_zero(), "no CONNACK for {client_id}");
        match connection.recv_timeout(left) {
            Ok(Ok(Event::Incoming(Packet::ConnAck(ack)))) => {
                let _ = client.disconnect();
                return ack.session_present;
            }
            Ok(Ok(_)) => {}
            other => panic!("{client_id}: {other:?}"),
        }
    }
}
