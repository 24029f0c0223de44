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

/// Step 3 connected. Where `localhost` also resolves to ::1 (many Debian images), the harness,
/// which listens on 127.0.0.1 only, makes that address refuse: then ⚠, never ✗.
fn expect_tcp_ok(stdout: &str) {
    let tcp = step(stdout, 3);
    assert!(
        tcp.starts_with('✓') || (tcp.starts_with('⚠') && tcp.contains("::1")),
        "{stdout}"
    );
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
    expect_step(&stdout, 2, "✓", &["localhost → ", "127.0.0.1"]);
    expect_tcp_ok(&stdout);
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

/// Every step after `failed` is skipped, and the report ends with the failed step.
fn expect_stopped_at(stdout: &str, failed: u8) {
    for n in failed + 1..=10 {
        expect_step(stdout, n, "–", &["skipped"]);
    }
    assert!(
        stdout.contains(&format!("doctor: ✗ step {failed} ")),
        "{stdout}"
    );
}

#[test]
fn unknown_ca_is_diagnosed_at_tls_with_the_chain_and_the_ca_hint() {
    let fx = Fixture::new();
    let args = vec![
        "--creds".into(),
        path_str(&fx.write(&fx.creds("doctor-wrong-ca"))),
        "--ca-file".into(),
        path_str(fx.broker.wrong_ca_path()),
    ];
    let (code, stdout, transcript) = run(&args);
    assert_eq!(code, 4, "{transcript}");
    expect_tcp_ok(&stdout);
    expect_step(
        &stdout,
        4,
        "✗",
        &[
            "certificate not signed by a CA in the CA file",
            "is not signed by a CA you trust",
            "--ca-file",
            "the chain ends at issuer \"CN=linklabs-mqtt-rust test CA",
            "UnknownIssuer",
        ],
    );
    expect_stopped_at(&stdout, 4);
}

#[test]
fn certificate_for_another_host_is_diagnosed_at_tls_with_its_names() {
    let fx = Fixture::new();
    let mut creds = fx.creds("doctor-wrong-name");
    creds["port"] = json!(fx.broker.wrong_name_tls_port());
    let (code, stdout, transcript) = run(&fx.args(&creds));
    assert_eq!(code, 4, "{transcript}");
    expect_step(
        &stdout,
        4,
        "✗",
        &[
            "certificate not issued for \"localhost\"",
            "is not issued for \"localhost\"",
            "the certificate names DNS:wrong-host.invalid",
        ],
    );
    expect_stopped_at(&stdout, 4);
}

#[test]
fn expired_certificate_is_diagnosed_at_tls_with_dates_and_clock() {
    let fx = Fixture::with(BrokerOptions {
        expired_server_certificate: true,
        ..BrokerOptions::default()
    });
    let (code, stdout, transcript) = run(&fx.args(&fx.creds("doctor-expired")));
    assert_eq!(code, 4, "{transcript}");
    expect_step(
        &stdout,
        4,
        "✗",
        &[
            "certificate expired or not valid yet",
            "has expired or is not valid yet",
            "timedatectl",
            "expired on 2021-01-01T00:00:00Z",
            "this machine's clock says",
        ],
    );
    expect_stopped_at(&stdout, 4);
}

#[test]
fn plaintext_port_given_as_tls_is_diagnosed_as_not_tls_with_proof() {
    let fx = Fixture::new();
    let mut creds = fx.creds("doctor-plain-port");
    creds["port"] = json!(fx.broker.plaintext_port());
    let (code, stdout, transcript) = run(&fx.args(&creds));
    assert_eq!(code, 4, "{transcript}");
    expect_step(
        &stdout,
        4,
        "✗",
        &[
            "the port does not speak TLS",
            "did not answer with TLS",
            "answered a plaintext MQTT CONNECT",
        ],
    );
    expect_stopped_at(&stdout, 4);
    // The probe that proves it carried no password.
    assert!(!transcript.contains(fx.broker.password()));
}

#[test]
fn closed_port_is_diagnosed_at_tcp_as_refused() {
    let fx = Fixture::new();
    let closed_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let mut creds = fx.creds("doctor-closed");
    creds["port"] = json!(closed_port);
    let (code, stdout, transcript) = run(&fx.args(&creds));
    assert_eq!(code, 8, "{transcript}");
    expect_step(&stdout, 2, "✓", &[]);
    expect_step(
        &stdout,
        3,
        "✗",
        &[
            "refused",
            "nothing accepts connections",
            "(connection refused)",
        ],
    );
    expect_stopped_at(&stdout, 3);
}

#[test]
fn unresolvable_host_is_diagnosed_at_dns() {
    let fx = Fixture::new();
    let mut creds = fx.creds("doctor-dns");
    // `.invalid` never resolves (RFC 2606).
    creds["host"] = json!("doctor-test.invalid");
    let (code, stdout, transcript) = run(&fx.args(&creds));
    assert_eq!(code, 8, "{transcript}");
    expect_step(&stdout, 1, "✓", &[]);
    expect_step(
        &stdout,
        2,
        "✗",
        &[
            "\"doctor-test.invalid\" does not resolve",
            "Check the \"host\" field",
        ],
    );
    expect_stopped_at(&stdout, 2);
}

#[test]
fn wrong_password_is_diagnosed_at_connect_with_the_reason_code() {
    let fx = Fixture::new();
    let mut creds = fx.creds("doctor-wrong-password");
    creds["password"] = json!("not-the-password");
    let (code, stdout, transcript) = run(&fx.args(&creds));
    assert_eq!(code, 5, "{transcript}");
    expect_step(&stdout, 4, "✓", &[]);
    // Mosquitto answers a wrong password with CONNACK 0x87.
    expect_step(
        &stdout,
        5,
        "✗",
        &[
            "CONNACK 0x87 Not authorized",
            "refused the connection as not authorized",
        ],
    );
    expect_stopped_at(&stdout, 5);
    assert!(!transcript.contains("not-the-password"));
}

#[test]
fn no_credentials_file_is_diagnosed_at_the_credentials_step() {
    // No --creds, no MQTT_CREDS, and a working directory without creds.json.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut command = mosquitto_harness::example_command("doctor");
    command.current_dir(dir.path()).env_remove("MQTT_CREDS");
    let mut process = ExampleProcess::spawn_command(command).expect("start doctor");
    let status = finish(&mut process);
    let stdout = process.stdout();
    assert_eq!(status.code(), Some(3), "{}", process.transcript());
    expect_step(
        &stdout,
        1,
        "✗",
        &[
            "no credentials file: pass --creds creds.json",
            "see docs/src/troubleshooting.md#doctor-no-credentials",
        ],
    );
    expect_stopped_at(&stdout, 1);
}

#[test]
fn disabled_credentials_are_diagnosed_at_the_credentials_step() {
    let fx = Fixture::new();
    let mut creds = fx.creds("doctor-disabled");
    creds["isEnabled"] = json!(false);
    let (code, stdout, transcript) = run(&fx.args(&creds));
    assert_eq!(code, 3, "{transcript}");
    expect_step(
        &stdout,
        1,
        "✗",
        &[
            "these credentials are disabled in the Airfinder platform",
            "Configuration → Subscriptions",
        ],
    );
    expect_stopped_at(&stdout, 1);
    // Nothing reached the broker.
    assert!(
        !fx.broker.log().contains("doctor-disabled"),
        "{}",
        fx.broker.log()
    );
}

#[test]
fn topic_denied_by_the_acl_is_granted_then_silent_and_doctor_says_so() {
    // The user may publish to the events but read only elsewhere: Mosquitto still grants the
    // SUBSCRIBE (QoS 1) and then delivers nothing. Doctor cannot see the ACL; it sees the silence.
    let acl = format!(
        "user {}\ntopic write {FILTER}\ntopic read elsewhere/#\n",
        MosquittoBroker::acl_user_placeholder()
    );
    let fx = Fixture::with(BrokerOptions {
        acl_file: Some(acl),
        ..BrokerOptions::default()
    });
    let mut args = fx.args(&fx.creds("doctor-acl"));
    args.extend(["--wait".into(), "3".into()]);
    let mut process = spawn(&args);
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
    // A ⚠ does not change the exit code: a quiet topic is not an error.
    assert_eq!(status.code(), Some(0), "{}", process.transcript());
    expect_step(
        &stdout,
        6,
        "✓",
        &["granted QoS 1", "does not prove the ACL allows the topic"],
    );
    expect_step(
        &stdout,
        9,
        "⚠",
        &[
            "nothing arrived on \"airfinder/test-org/events/#\" within 3 s",
            "grant a SUBSCRIBE outside the user's ACL and then deliver nothing",
            "subscribeAcl",
        ],
    );
    expect_step(&stdout, 10, "✓", &[]);
}

#[test]
fn no_message_within_wait_is_a_warning_not_a_failure() {
    let fx = Fixture::new();
    let mut args = fx.args(&fx.creds("doctor-quiet"));
    args.extend(["--wait".into(), "2".into()]);
    let (code, stdout, transcript) = run(&args);
    assert_eq!(code, 0, "{transcript}");
    expect_step(&stdout, 7, "✓", &[]);
    expect_step(
        &stdout,
        9,
        "⚠",
        &[
            "nothing arrived",
            "within 2 s",
            "longer --wait",
            "see docs/src/troubleshooting.md#doctor-no-message",
        ],
    );
    expect_step(&stdout, 10, "✓", &["session expiry 0"]);
    assert!(stdout.contains("warning(s) above"), "{stdout}");
}

#[test]
fn takeover_probe_reports_mosquittos_silent_close() {
    let fx = Fixture::new();
    let mut args = fx.args(&fx.creds("doctor-takeover"));
    args.extend(["--wait".into(), "1".into(), "--check-takeover".into()]);
    let (code, stdout, transcript) = run(&args);
    assert_eq!(code, 0, "{transcript}");
    // Mosquitto 2.0 closes the old connection without DISCONNECT 0x8E (docs: brokers.md).
    expect_step(
        &stdout,
        8,
        "✓",
        &["WITHOUT a DISCONNECT", "closed right after CONNACK"],
    );
    assert!(
        fx.broker
            .log()
            .contains("already connected, closing old connection"),
        "{}",
        fx.broker.log()
    );
    expect_step(&stdout, 10, "✓", &[]);
}

#[test]
fn json_report_parses_and_carries_the_same_verdicts_as_the_text() {
    let fx = Fixture::new();
    let mut creds = fx.creds("doctor-json");
    creds["password"] = json!("not-the-password");
    let args = fx.args(&creds);
    let (text_code, text, _) = run(&args);
    let mut json_args = args.clone();
    json_args.push("--json".into());
    let (json_code, json_out, transcript) = run(&json_args);
    assert_eq!(text_code, 5);
    assert_eq!(json_code, 5, "{transcript}");
    let report: Value = serde_json::from_str(&json_out)
        .unwrap_or_else(|err| panic!("not JSON ({err}):\n{json_out}"));
    assert_eq!(report["exit_code"], json!(5));
    let steps = report["steps"].as_array().expect("steps array");
    assert_eq!(steps.len(), 10, "{json_out}");
    for (index, step_json) in steps.iter().enumerate() {
        let n = u8::try_from(index + 1).expect("small");
        assert_eq!(step_json["step"], json!(n));
        let mark = match step_json["verdict"].as_str() {
            Some("pass") => "✓",
            Some("warn") => "⚠",
            Some("fail") => "✗",
            Some("skipped") => "–",
            other => panic!("verdict {other:?} in {json_out}"),
        };
        assert!(
            step(&text, n).starts_with(mark),
            "step {n}: JSON says {mark}\ntext:\n{text}\njson:\n{json_out}"
        );
        // Every advice links its troubleshooting entry, in both reports.
        for advice in step_json["advice"].as_array().into_iter().flatten() {
            let see = format!(
                "docs/src/troubleshooting.md#{}",
                advice["id"].as_str().expect("advice id")
            );
            assert_eq!(advice["see"], json!(see), "{json_out}");
            assert!(step(&text, n).contains(&format!("see {see}")), "{text}");
        }
    }
    let connect = &steps[4];
    assert_eq!(connect["verdict"], json!("fail"));
    assert_eq!(connect["exit_code"], json!(5));
    assert_eq!(connect["data"]["reason_code"], json!(0x87));
    // The advice's id is its troubleshooting entry, and the link goes with it.
    assert_eq!(connect["advice"][0]["id"], json!("not-authorized"));
    assert_eq!(
        connect["advice"][0]["see"],
        json!("docs/src/troubleshooting.md#not-authorized")
    );
    expect_step(
        &text,
        5,
        "✗",
        &["see docs/src/troubleshooting.md#not-authorized"],
    );
    assert!(!json_out.contains("not-the-password"));
}

#[test]
fn plaintext_is_refused_at_the_credentials_step_unless_allowed() {
    let fx = Fixture::new();
    let mut creds = fx.creds("doctor-plaintext");
    creds["port"] = json!(fx.broker.plaintext_port());
    creds["protocol"] = json!("mqtt");
    let args = fx.args(&creds);
    let (code, stdout, transcript) = run(&args);
    assert_eq!(code, 7, "{transcript}");
    expect_step(&stdout, 1, "✗", &["plaintext", "--insecure-plaintext"]);
    expect_stopped_at(&stdout, 1);

    // Allowed: everything works, and the TLS step says what is lost.
    let mut args = args;
    args.extend(["--insecure-plaintext".into(), "--wait".into(), "1".into()]);
    let (code, stdout, transcript) = run(&args);
    assert_eq!(code, 0, "{transcript}");
    expect_step(&stdout, 4, "⚠", &["no TLS", "unencrypted"]);
    expect_step(&stdout, 5, "✓", &["CONNACK 0x00"]);
}

#[test]
fn a_missing_ca_file_is_diagnosed_at_tls() {
    let fx = Fixture::new();
    let args = vec![
        "--creds".into(),
        path_str(&fx.write(&fx.creds("doctor-no-ca"))),
        "--ca-file".into(),
        path_str(&fx.dir.path().join("no-such-ca.pem")),
    ];
    let (code, stdout, transcript) = run(&args);
    assert_eq!(code, 4, "{transcript}");
    expect_step(&stdout, 4, "✗", &["cannot read the CA file", "--ca-file"]);
}

#[test]
fn a_world_readable_credentials_file_is_a_warning() {
    use std::os::unix::fs::PermissionsExt;
    let fx = Fixture::new();
    let path = fx.write(&fx.creds("doctor-mode"));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let args = vec![
        "--creds".into(),
        path_str(&path),
        "--ca-file".into(),
        path_str(fx.broker.ca_path()),
        "--wait".into(),
        "1".into(),
    ];
    let (code, stdout, transcript) = run(&args);
    assert_eq!(code, 0, "{transcript}");
    expect_step(&stdout, 1, "⚠", &["readable by other users", "chmod 600"]);
}

#[test]
fn a_topic_outside_subscribe_acl_is_a_warning_at_the_credentials_step() {
    let fx = Fixture::new();
    let mut creds = fx.creds("doctor-acl-field");
    creds["subscribeAcl"] = json!("airfinder/other-org/#");
    let mut args = fx.args(&creds);
    args.extend(["--wait".into(), "1".into()]);
    let (code, stdout, transcript) = run(&args);
    assert_eq!(code, 0, "{transcript}");
    expect_step(
        &stdout,
        1,
        "⚠",
        &[
            "topic NOT inside subscribeAcl",
            "is not covered by subscribeAcl",
        ],
    );
}
