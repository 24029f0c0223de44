//! Proves the harness itself against the real Mosquitto: if these fail, every
//! behaviour test built on the harness would be meaningless.

use std::process::Command;
use std::time::{Duration, Instant};

use mosquitto_harness::rumqttc::v5::mqttbytes::v5::{ConnectReturnCode, Packet};
use mosquitto_harness::rumqttc::v5::mqttbytes::QoS;
use mosquitto_harness::rumqttc::v5::{AsyncClient, ConnectionError, Event, EventLoop, MqttOptions};
use mosquitto_harness::rumqttc::{TlsConfiguration, Transport};
use mosquitto_harness::{
    publish_blocking, tls_client_config, write_creds_value, BrokerOptions, ExampleProcess,
    HarnessError, MosquittoBroker, Publisher, Stream,
};

const TIMEOUT: Duration = Duration::from_secs(10);

fn start_broker() -> MosquittoBroker {
    MosquittoBroker::start(BrokerOptions::default()).expect("start mosquitto")
}

/// Connects with `options` and returns the CONNACK, or the error rumqttc reports.
async fn connack(options: MqttOptions) -> Result<(AsyncClient, EventLoop, bool), ConnectionError> {
    let (client, mut eventloop) = AsyncClient::new(options, 100);
    loop {
        match tokio::time::timeout(TIMEOUT, eventloop.poll())
            .await
            .expect("no CONNACK or error within 10 s")?
        {
            Event::Incoming(Packet::ConnAck(ack)) => {
                return Ok((client, eventloop, ack.session_present))
            }
            _ => continue,
        }
    }
}

fn expect_connect_error(result: Result<Publisher, HarnessError>) -> ConnectionError {
    match result {
        Ok(_) => panic!("the connection was expected to fail"),
        Err(HarnessError::Connect(err)) => *err,
        Err(other) => panic!("expected a connect error, got: {other}"),
    }
}

#[tokio::test]
async fn accepts_tls_v5_with_the_generated_credentials_and_ca() {
    let broker = start_broker();
    let mut publisher = Publisher::connect(&broker, "harness-smoke")
        .await
        .expect("connect over TLS with the generated CA and password");
    publisher
        .publish_many("harness/smoke", 500, |i| i.to_be_bytes().to_vec())
        .await
        .expect("500 PUBACKs");
    publisher.disconnect().await.expect("clean disconnect");
    assert!(
        broker.wait_for_log("harness-smoke", TIMEOUT),
        "the broker log names the client:\n{}",
        broker.log()
    );
}

#[tokio::test]
async fn creds_json_describes_this_broker() {
    let broker = start_broker();
    let creds = broker.creds_json("client-1", "lle/org/+/events");
    assert_eq!(creds["host"], "localhost");
    assert_eq!(creds["port"], u64::from(broker.tls_port()));
    assert_eq!(creds["clientId"], "client-1");
    assert_eq!(creds["username"], broker.username());
    assert_eq!(creds["password"], broker.password());
    assert_eq!(creds["topic"], "lle/org/+/events");
    assert_eq!(creds["subscribeAcl"], "lle/org/+/events");
    assert_eq!(creds["protocol"], "mqtts");
    assert!(creds["publishAcl"].is_null());

    let dir = tempfile::tempdir().unwrap();
    let path = broker.write_creds(dir.path(), "client-1", "t");
    let mode = std::fs::metadata(&path).unwrap().permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600
    );
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(written, broker.creds_json("client-1", "t"));

    let mut wrong = written;
    wrong["port"] = broker.plaintext_port().into();
    let path = write_creds_value(dir.path(), &wrong);
    assert!(std::fs::read_to_string(path)
        .unwrap()
        .contains(&broker.plaintext_port().to_string()));
}

#[tokio::test]
async fn wrong_password_gets_connack_not_authorized() {
    let broker = start_broker();
    let mut options = broker.mqtt_options("harness-wrong-password").unwrap();
    options.set_credentials(broker.username(), "not-the-password");
    let err = expect_connect_error(Publisher::connect_with(options).await);
    assert!(
        matches!(
            err,
            ConnectionError::ConnectionRefused(ConnectReturnCode::NotAuthorized)
        ),
        "got {err:?}"
    );
}

#[tokio::test]
async fn unrelated_ca_fails_the_tls_handshake() {
    let broker = start_broker();
    let mut options = broker.mqtt_options("harness-wrong-ca").unwrap();
    let tls = tls_client_config(broker.wrong_ca_path()).unwrap();
    options.set_transport(Transport::Tls(TlsConfiguration::Rustls(tls)));
    let err = expect_connect_error(Publisher::connect_with(options).await);
    assert!(matches!(err, ConnectionError::Tls(_)), "got {err:?}");
    assert!(format!("{err:?}").contains("UnknownIssuer"), "got {err:?}");
}

#[tokio::test]
async fn wrong_name_listener_fails_host_name_verification() {
    let broker = start_broker();
    let mut options = broker.mqtt_options("harness-wrong-name").unwrap();
    options.set_transport(Transport::Tls(TlsConfiguration::Rustls(
        tls_client_config(broker.ca_path()).unwrap(),
    )));
    let mut wrong_port = MqttOptions::new(
        "harness-wrong-name",
        "localhost",
        broker.wrong_name_tls_port(),
    );
    wrong_port
        .set_transport(options.transport())
        .set_credentials(broker.username(), broker.password());
    let err = expect_connect_error(Publisher::connect_with(wrong_port).await);
    assert!(matches!(err, ConnectionError::Tls(_)), "got {err:?}");
    assert!(
        format!("{err:?}").contains("NotValidForName"),
        "got {err:?}"
    );
}

#[tokio::test]
async fn plaintext_listener_speaks_mqtt_with_the_same_password() {
    let broker = start_broker();
    let mut options = MqttOptions::new("harness-plain", "127.0.0.1", broker.plaintext_port());
    options.set_credentials(broker.username(), broker.password());
    let (_client, _eventloop, _) = connack(options)
        .await
        .expect("plain MQTT works on the plaintext port");

    let mut anonymous = MqttOptions::new("harness-anon", "127.0.0.1", broker.plaintext_port());
    anonymous.set_transport(Transport::Tcp);
    let err = connack(anonymous).await.err().expect("anonymous refused");
    assert!(
        matches!(
            err,
            ConnectionError::ConnectionRefused(ConnectReturnCode::NotAuthorized)
        ),
        "got {err:?}"
    );
}

#[tokio::test]
async fn persistent_session_keeps_queued_messages_across_a_restart() {
    let mut broker = MosquittoBroker::start(BrokerOptions {
        persistence: true,
        ..BrokerOptions::default()
    })
    .expect("start mosquitto");
    let topic = "harness/persistent";
    let subscriber_options = |broker: &MosquittoBroker| {
        let mut options = broker.mqtt_options("harness-persistent-sub").unwrap();
        options
            .set_clean_start(false)
            .set_session_expiry_interval(Some(3600));
        options
    };

    // Create the session and its subscription, then leave.
    let (client, mut eventloop, _) = connack(subscriber_options(&broker)).await.unwrap();
    client.subscribe(topic, QoS::AtLeastOnce).await.unwrap();
    loop {
        if let Event::Incoming(Packet::SubAck(_)) = eventloop.poll().await.unwrap() {
            break;
        }
    }
    client.disconnect().await.unwrap();
    while eventloop.poll().await.is_ok() {}

    let mut publisher = Publisher::connect(&broker, "harness-persistent-pub")
        .await
        .unwrap();
    publisher
        .publish_many(topic, 50, |i| format!("queued {i}").into_bytes())
        .await
        .unwrap();
    publisher.disconnect().await.unwrap();

    let old_pid = broker.pid();
    broker.stop();
    assert_eq!(broker.pid(), None);
    broker.start_again().expect("restart on the same ports");
    assert_ne!(broker.pid(), old_pid);

    let (_client, mut eventloop, session_present) =
        connack(subscriber_options(&broker)).await.unwrap();
    assert!(session_present, "the session survived the restart");
    let mut received = Vec::new();
    while received.len() < 50 {
        match tokio::time::timeout(TIMEOUT, eventloop.poll()).await {
            Ok(Ok(Event::Incoming(Packet::Publish(publish)))) => {
                received.push(String::from_utf8_lossy(&publish.payload).into_owned())
            }
            Ok(Ok(_)) => {}
            Ok(Err(err)) => panic!("after {} messages: {err}", received.len()),
            Err(_) => panic!(
                "only {} of 50 queued messages arrived; broker log:\n{}",
                received.len(),
                broker.log()
            ),
        }
    }
    let expected: Vec<String> = (0..50).map(|i| format!("queued {i}")).collect();
    assert_eq!(received, expected);
}

#[test]
fn two_brokers_run_side_by_side_and_publish_blocking_works() {
    let a = start_broker();
    let b = start_broker();
    assert_ne!(a.tls_port(), b.tls_port());
    assert_ne!(a.username(), b.username());
    assert_ne!(a.pid(), b.pid());
    publish_blocking(&a, "harness/a", 100, |_| b"a".to_vec()).expect("publish to broker a");
    publish_blocking(&b, "harness/b", 100, |_| b"b".to_vec()).expect("publish to broker b");
}

#[test]
fn same_client_id_twice_is_visible_in_the_broker_log() {
    let broker = start_broker();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let _first = Publisher::connect(&broker, "harness-twice").await.unwrap();
        let _second = Publisher::connect(&broker, "harness-twice").await.unwrap();
    });
    assert!(
        broker.wait_for_log("already connected, closing old connection", TIMEOUT),
        "{}",
        broker.log()
    );
}

#[test]
fn dropping_the_broker_stops_the_process() {
    let broker = start_broker();
    let pid = broker.pid().expect("running");
    let proc_dir = format!("/proc/{pid}");
    assert!(std::path::Path::new(&proc_dir).exists());
    drop(broker);
    // Reaped by Drop, so the pid is gone (barring immediate reuse).
    assert!(!std::path::Path::new(&proc_dir).exists());
}

#[tokio::test]
async fn publishes_fifty_thousand_messages_quickly() {
    let broker = start_broker();
    let mut publisher = Publisher::connect(&broker, "harness-bulk").await.unwrap();
    let started = Instant::now();
    publisher
        .publish_many("harness/bulk", 50_000, |i| {
            format!("{i:0>200}").into_bytes()
        })
        .await
        .unwrap();
    let elapsed = started.elapsed();
    eprintln!("50,000 QoS 1 PUBACKs in {elapsed:?}");
    assert!(elapsed < Duration::from_secs(30), "took {elapsed:?}");
    publisher.disconnect().await.unwrap();
}

#[test]
fn example_process_collects_both_streams_and_the_exit_status() {
    let mut command = Command::new("sh");
    command.args([
        "-c",
        "echo first; echo oops >&2; echo NO_COLOR=$NO_COLOR MQTT_CREDS=${MQTT_CREDS-unset}; \
         sleep 0.2; echo late; exit 3",
    ]);
    command.env("NO_COLOR", "1").env_remove("MQTT_CREDS");
    let mut process = ExampleProcess::spawn_command(command).unwrap();
    let line = process.wait_for_line(|l| l.starts_with("NO_COLOR="), TIMEOUT);
    assert_eq!(line.as_deref(), Some("NO_COLOR=1 MQTT_CREDS=unset"));
    // Lines already seen still match.
    assert!(process.wait_for_line(|l| l == "first", TIMEOUT).is_some());
    assert_eq!(process.wait_for_count(|l| l == "late", 1, TIMEOUT), 1);
    let status = process.wait_exit(TIMEOUT).expect("exits");
    assert_eq!(status.code(), Some(3));
    assert!(process
        .lines()
        .contains(&(Stream::Stderr, "oops".to_string())));
    assert_eq!(process.count_lines(|l| l == "first" || l == "late"), 2);
    assert!(process.transcript().contains("[stderr] oops"));
    // The child closed its output without a match: no need to wait the full timeout.
    let started = Instant::now();
    assert!(process.wait_for_line(|l| l == "never", TIMEOUT).is_none());
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[test]
fn example_process_terminate_and_drop_end_the_child() {
    let mut command = Command::new("sh");
    command.args(["-c", "echo ready; exec sleep 30"]);
    let mut process = ExampleProcess::spawn_command(command).unwrap();
    assert!(process.wait_for_line(|l| l == "ready", TIMEOUT).is_some());
    process.terminate();
    let status = process.wait_exit(TIMEOUT).expect("SIGTERM ends sleep");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(15)
    );

    let mut command = Command::new("sleep");
    command.arg("30");
    let process = ExampleProcess::spawn_command(command).unwrap();
    let proc_dir = format!("/proc/{}", process.pid());
    drop(process);
    assert!(!std::path::Path::new(&proc_dir).exists());
}

#[test]
fn not_installed_error_says_how_to_install() {
    let message = HarnessError::NotInstalled {
        program: "mosquitto",
    }
    .to_string();
    assert!(
        message.contains("sudo apt-get install -y mosquitto"),
        "{message}"
    );
    assert!(message.contains("scripts/test"), "{message}");
}

#[test]
fn a_broker_that_exits_early_reports_its_log() {
    let err = MosquittoBroker::start(BrokerOptions {
        extra_config: vec!["no_such_option true".to_string()],
        ..BrokerOptions::default()
    })
    .expect_err("mosquitto rejects an unknown option");
    let message = format!("{err:?}");
    assert!(
        matches!(err, HarnessError::BrokerExited { .. }),
        "{message}"
    );
    assert!(message.contains("no_such_option"), "{message}");
}
