//! A large backlog — more QoS 1 messages than there are packet ids — drains completely.
//!
//! The case `persistent-session` exists for: the consumer was down, and the broker queued a
//! backlog in its session. Until issue #15 a backlog above ~65,535 messages froze the rumqttc
//! consumers for good (0 % CPU, every thread parked, SIGTERM ignored): without a Receive Maximum
//! from the client, Mosquitto sends the whole queue at once; the handler's acks then pile up in
//! rumqttc's request channel until it is full, the handler waits for room, the polling task waits
//! for the handler, and nobody polls the connection again. 100,000 messages is past that point
//! (and past the 16-bit packet-id space), so these tests fail without the fix.
//!
//! Each test: run the binary once to create its persistent session (subscribed), stop it, queue
//! 100,000 messages of ~250 bytes while it is down, start it again with `--count 100000 --stats`
//! and check that it exits by itself having seen every sequence number exactly once.

use std::time::Duration;

use scenario_tests::*;

/// More than the 65,535 packet ids a connection has.
const BACKLOG: u64 = 100_000;

/// Debug builds on a loaded 2-core machine drain at a few thousand messages a second at worst.
const DRAIN_WAIT: Duration = Duration::from_secs(300);

/// A broker that can hold the whole backlog for one session (the harness default is 100,000 and
/// Mosquitto's own 1,000: past it the broker drops messages silently, which is not this test).
fn broker() -> Fixture {
    Fixture::with(BrokerOptions {
        max_queued_messages: 1_000_000,
        ..BrokerOptions::default()
    })
}

/// ~250 bytes of JSON, the size of an Airfinder location event.
fn payload(seq: u64) -> Vec<u8> {
    json!({
        "seq": seq,
        "eventType": "location",
        "nodeAddress": "$301$0-0-0-db0a1b2c3",
        "time": "2026-11-29T07:00:00.000Z",
        "location": {"lat": 38.9586, "lon": -77.3570, "zone": "dock-door-4", "confidence": 0.92},
        "padding": "x".repeat(60),
    })
    .to_string()
    .into_bytes()
}

/// Runs `bin` until it has subscribed, then SIGTERM: the broker keeps its session (and the
/// subscription in it) for the backlog to go into.
fn create_session(bin: &str, args: &[String]) {
    let mut first = spawn(bin, args);
    expect_line(&first, "subscribed to");
    first.terminate();
    let status = expect_exit(&mut first);
    assert!(status.success(), "{bin}: {status}:\n{}", first.transcript());
}

/// Queues [`BACKLOG`] messages for `bin` while it is down, then checks it drains them all.
fn drains_a_backlog_larger_than_the_packet_id_space(bin: &str, extra: &[&str]) {
    let fx = broker();
    let mut args = fx.args(&format!("{bin}-backlog"));
    args.extend(extra.iter().map(|s| s.to_string()));
    create_session(bin, &args);

    publish_blocking(&fx.broker, TOPIC, BACKLOG, payload)
        .unwrap_or_else(|err| panic!("publishing the backlog: {err}"));

    args.extend(["--count".into(), BACKLOG.to_string(), "--stats".into()]);
    let mut sub = spawn(bin, &args);
    let status = sub.wait_exit(DRAIN_WAIT).unwrap_or_else(|| {
        panic!(
            "{bin} did not drain {BACKLOG} messages within {} s (frozen?):\n{}",
            DRAIN_WAIT.as_secs(),
            tail(&sub.transcript())
        )
    });
    let transcript = sub.transcript();
    assert!(status.success(), "{bin}: {status}:\n{}", tail(&transcript));
    let stats = stats_line(&sub.stdout())
        .unwrap_or_else(|| panic!("{bin}: no stats line:\n{}", tail(&transcript)));
    assert!(
        stats.contains(&format!("received={BACKLOG} "))
            && stats.contains(&format!("unique_seq={BACKLOG} ")),
        "{bin}: expected every one of {BACKLOG} sequence numbers exactly once, got `{stats}`"
    );
}

/// The `stats:` line `--stats` prints at exit.
fn stats_line(stdout: &str) -> Option<String> {
    stdout
        .lines()
        .find(|line| line.starts_with("stats:"))
        .map(str::to_owned)
}

/// The last lines of a long transcript: enough to see where it stopped.
fn tail(transcript: &str) -> String {
    let lines: Vec<&str> = transcript.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

#[test]
fn persistent_session() {
    drains_a_backlog_larger_than_the_packet_id_space("persistent-session", &[]);
}

#[test]
fn qos1_at_least_once() {
    // It remembers idempotency keys to skip duplicates; room for every one of the backlog.
    drains_a_backlog_larger_than_the_packet_id_space(
        "qos1-at-least-once",
        &["--remember", "200000"],
    );
}

#[test]
fn shared_subscription_with_a_persistent_session() {
    drains_a_backlog_larger_than_the_packet_id_space(
        "shared-subscription",
        &["--instance", "1", "--session-expiry", "3600"],
    );
}

#[test]
fn persistent_session_rumqttc_native_tls() {
    drains_a_backlog_larger_than_the_packet_id_space("persistent-session-rumqttc-native-tls", &[]);
}

#[test]
fn persistent_session_rumqttc_blocking() {
    drains_a_backlog_larger_than_the_packet_id_space("persistent-session-rumqttc-blocking", &[]);
}

#[test]
fn persistent_session_paho_async_std() {
    drains_a_backlog_larger_than_the_packet_id_space("persistent-session-paho-async-std", &[]);
}

#[test]
fn persistent_session_paho_smol() {
    drains_a_backlog_larger_than_the_packet_id_space("persistent-session-paho-smol", &[]);
}

#[test]
fn persistent_session_paho_tokio() {
    drains_a_backlog_larger_than_the_packet_id_space("persistent-session-paho-tokio", &[]);
}

/// The broker behaviour behind the freeze, measured: Mosquitto 2.0.11 keeps to a client's Receive
/// Maximum only until the client acks. With a Receive Maximum of 16 it sends 16 messages and
/// waits; after ONE PUBACK it sends 16 more (a compliant broker sends one). So with a large
/// backlog, unacked messages pile up on the consumer's side however small its Receive Maximum,
/// and the consumers must not depend on it. If this test fails after a broker upgrade, the
/// broker has fixed its flow control: update the comments that cite it
/// (common/src/rumqttc_util.rs, `REQUEST_CHANNEL_CAPACITY`) and docs.
#[test]
fn mosquitto_sends_receive_maximum_more_for_every_puback() {
    use mosquitto_harness::rumqttc::v5::mqttbytes::v5::{Packet, Publish};
    use mosquitto_harness::rumqttc::v5::{Client, Connection, Event};
    const RECEIVE_MAXIMUM: u16 = 16;

    /// Counts PUBLISHes until `enough` arrived or nothing came for 2 s; returns them.
    fn collect(connection: &mut Connection, held: &mut Vec<Publish>, enough: usize) {
        let deadline = std::time::Instant::now() + WAIT;
        while held.len() < enough && std::time::Instant::now() < deadline {
            match connection.recv_timeout(Duration::from_secs(2)) {
                Ok(Ok(Event::Incoming(Packet::Publish(publish)))) => held.push(publish),
                Ok(Ok(_)) => {}
                Ok(Err(err)) => panic!("connection failed: {err}"),
                Err(_) => break, // quiet for 2 s
            }
        }
    }

    let fx = broker();
    let id = "receive-maximum-probe";
    let mut options = fx.broker.mqtt_options(id).expect("client options");
    options
        .set_clean_start(false)
        .set_session_expiry_interval(Some(3600))
        .set_manual_acks(true)
        .set_receive_maximum(Some(RECEIVE_MAXIMUM));
    // A session with our subscription, then a backlog of 1,000 while we are away.
    leave_session_subscribed(&options, id);
    publish_blocking(&fx.broker, TOPIC, 1000, payload).expect("publishing the backlog");

    let (client, mut connection) = Client::new(options, 100);
    let mut held = Vec::new();
    collect(&mut connection, &mut held, 1000);
    assert_eq!(
        held.len(),
        usize::from(RECEIVE_MAXIMUM),
        "before any ack: as many as our Receive Maximum"
    );
    client.ack(&held[0]).expect("ack");
    collect(&mut connection, &mut held, 1000);
    assert_eq!(
        held.len(),
        2 * usize::from(RECEIVE_MAXIMUM),
        "after one PUBACK Mosquitto 2.0.11 sent Receive Maximum more messages (a compliant \
         broker: one more)"
    );
}

/// Connects with `options`, subscribes to [`FILTER`], and leaves with DISCONNECT: the broker
/// keeps the session with its subscription.
fn leave_session_subscribed(
    options: &mosquitto_harness::rumqttc::v5::MqttOptions,
    client_id: &str,
) {
    use mosquitto_harness::rumqttc::v5::{mqttbytes::v5::Packet, mqttbytes::QoS, Client, Event};
    let (client, mut connection) = Client::new(options.clone(), 10);
    client
        .subscribe(FILTER, QoS::AtLeastOnce)
        .expect("queue SUBSCRIBE");
    loop {
        match connection.recv_timeout(WAIT) {
            Ok(Ok(Event::Incoming(Packet::SubAck(_)))) => break,
            Ok(Ok(_)) => {}
            other => panic!("{client_id}: no SUBACK: {other:?}"),
        }
    }
    client.disconnect().expect("queue DISCONNECT");
    let _ = connection.recv_timeout(WAIT);
}

/// A stop always stops: SIGTERM while the handler is stuck in one message (a hung database call,
/// here `--work-ms 600000`) ends the process after the drain limit (10 s), saying so, instead of
/// waiting for the supervisor's SIGKILL.
fn a_stop_ends_a_consumer_whose_handler_is_stuck(bin: &str, extra: &[&str]) {
    let fx = Fixture::new();
    let mut args = fx.args(&format!("{bin}-stuck"));
    args.extend(extra.iter().map(|s| s.to_string()));
    args.extend(["--work-ms".into(), "600000".into()]);
    let mut sub = spawn(bin, &args);
    expect_line(&sub, "subscribed to");
    fx.publish(5);
    // Give the handler the first message (it then sleeps for 10 minutes).
    std::thread::sleep(Duration::from_secs(1));
    sub.terminate();
    let status = sub
        .wait_exit(WAIT * 2)
        .unwrap_or_else(|| panic!("{bin} ignored SIGTERM:\n{}", sub.transcript()));
    assert!(status.success(), "{bin}: {status}:\n{}", sub.transcript());
    expect_line(&sub, "did not finish within 10 s");
}

#[test]
fn a_stop_ends_qos1_at_least_once_with_a_stuck_handler() {
    a_stop_ends_a_consumer_whose_handler_is_stuck("qos1-at-least-once", &[]);
}

#[test]
fn a_stop_ends_shared_subscription_with_a_stuck_handler() {
    a_stop_ends_a_consumer_whose_handler_is_stuck(
        "shared-subscription",
        &["--instance", "1", "--session-expiry", "3600"],
    );
}

#[test]
fn a_stop_ends_shared_subscription_rumqttc_variants_with_a_stuck_handler() {
    for bin in [
        "shared-subscription-rumqttc-native-tls",
        "shared-subscription-rumqttc-blocking",
    ] {
        a_stop_ends_a_consumer_whose_handler_is_stuck(
            bin,
            &["--instance", "1", "--session-expiry", "3600"],
        );
    }
}

/// Paho runs the handler inside its event loop, so there is no handler task to abandon: after
/// `STOP_MAX` (15 s) the process says what it loses and exits 1 (Paho C had acknowledged the
/// messages, so the ones not handled are gone).
#[test]
fn a_stop_ends_shared_subscription_paho_variants_with_a_stuck_handler() {
    for bin in [
        "shared-subscription-paho-async-std",
        "shared-subscription-paho-smol",
        "shared-subscription-paho-tokio",
    ] {
        let fx = Fixture::new();
        let mut args = fx.args(&format!("{bin}-stuck"));
        args.extend(
            [
                "--instance",
                "1",
                "--session-expiry",
                "3600",
                "--work-ms",
                "600000",
            ]
            .iter()
            .map(|s| s.to_string()),
        );
        let mut sub = spawn(bin, &args);
        expect_line(&sub, "subscribed to");
        fx.publish(5);
        std::thread::sleep(Duration::from_secs(1));
        sub.terminate();
        let status = sub
            .wait_exit(WAIT * 2)
            .unwrap_or_else(|| panic!("{bin} ignored SIGTERM:\n{}", sub.transcript()));
        assert_eq!(
            status.code(),
            Some(1),
            "{bin}: {status}:\n{}",
            sub.transcript()
        );
        expect_line(&sub, "the stop did not finish within 15 s");
    }
}
