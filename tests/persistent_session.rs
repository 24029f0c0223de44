//! `persistent-session` run as a process against a real Mosquitto (TLS, password auth, MQTT v5).
//!
//! The point of the example is what happens *between* two runs, so each test runs it, stops it
//! with SIGTERM (a clean DISCONNECT), publishes while it is down, and starts it again with the same
//! client id.

use std::collections::BTreeSet;

use scenario_tests::*;

const BIN: &str = "persistent-session";

/// Runs the consumer until it has subscribed, then stops it the way a supervisor would (SIGTERM)
/// and checks that it said goodbye with a DISCONNECT rather than dropping the connection.
fn subscribe_then_stop(fx: &Fixture, args: &[String], client_id: &str) -> ExampleProcess {
    let mut sub = spawn(BIN, args);
    expect_line(&sub, "subscribed to");
    sub.terminate();
    let status = expect_exit(&mut sub);
    assert!(status.success(), "{status}:\n{}", sub.transcript());
    expect_line(&sub, "disconnected cleanly");
    // Mosquitto logs a client's DISCONNECT as "disconnected", a dropped socket otherwise.
    assert!(
        fx.broker
            .wait_for_log(&format!("Client {client_id} disconnected"), WAIT),
        "{}",
        fx.broker.log()
    );
    sub
}

/// Waits until the consumer printed the message with this `seq`.
fn expect_seq(process: &ExampleProcess, seq: u64) {
    let needle = format!("\"seq\": {seq}");
    process
        .wait_for_line(|line| line.trim().trim_end_matches(',') == needle, WAIT * 2)
        .unwrap_or_else(|| panic!("seq {seq} never arrived:\n{}", process.transcript()));
}

fn with(mut args: Vec<String>, extra: &[&str]) -> Vec<String> {
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

#[test]
fn backlog_published_while_the_consumer_was_down_arrives_when_it_returns() {
    let fx = Fixture::new();
    let id = "persistent-backlog";
    let args = fx.args(id);
    let first = subscribe_then_stop(&fx, &args, id);
    assert!(
        first.stderr().contains("session present: false"),
        "{}",
        first.transcript()
    );

    // 200 QoS 1 messages while nobody is connected: the broker queues them in our session.
    fx.publish(200);

    let mut sub = spawn(BIN, &args);
    expect_line(&sub, "session present: true");
    // A marker published now is queued behind the backlog (one topic, one publisher: MQTT keeps
    // the order), so once it arrives the whole backlog has arrived.
    fx.publish_from(200, 1);
    expect_seq(&sub, 200);
    sub.terminate();
    let status = expect_exit(&mut sub);
    assert!(status.success(), "{status}:\n{}", sub.transcript());

    let got = seqs(&sub);
    let unique: BTreeSet<u64> = got.iter().copied().collect();
    let missing: Vec<u64> = (0..=200).filter(|seq| !unique.contains(seq)).collect();
    assert!(
        missing.is_empty(),
        "missing {} of the backlog: {missing:?}\n{}",
        missing.len(),
        sub.transcript()
    );
    // The example subscribes again after this CONNACK too (the session cannot tell it whether
    // the subscription survived). That must neither interrupt nor reorder the backlog: each
    // message's first arrival is in publish order.
    let mut seen = BTreeSet::new();
    let first_arrivals: Vec<u64> = got
        .iter()
        .copied()
        .filter(|seq| seen.insert(*seq))
        .collect();
    assert_eq!(
        first_arrivals,
        (0..=200).collect::<Vec<u64>>(),
        "the backlog, in order:\n{}",
        sub.transcript()
    );
    let duplicates = got.len() - unique.len();
    if duplicates > 0 {
        // QoS 1 is at-least-once: duplicates are allowed, but worth knowing about.
        eprintln!(
            "note: {duplicates} duplicate deliveries among {} messages",
            got.len()
        );
    }
}

#[test]
fn a_run_that_stops_after_count_leaves_its_session_to_the_next_run_with_the_same_instance() {
    // What the demo launcher does: the same binary twice with one `--instance`, the first run
    // ending by itself after `--count N`. That end must be a clean DISCONNECT after the acks, so
    // the session stays (with nothing already handled in it) and the second run gets the backlog.
    let fx = Fixture::new();
    let base = "persistent-count";
    let id = format!("{base}-demo-1");
    let args = with(fx.args(base), &["--instance", "demo-1"]);
    let mut first = spawn(BIN, &with(args.clone(), &["--count", "3"]));
    expect_line(&first, "subscribed to");
    fx.publish(3);
    let status = expect_exit(&mut first);
    assert!(status.success(), "{status}:\n{}", first.transcript());
    expect_line(&first, "disconnected cleanly");
    assert!(
        fx.broker
            .wait_for_log(&format!("Client {id} disconnected"), WAIT),
        "{}",
        fx.broker.log()
    );
    assert_eq!(seqs(&first), vec![0, 1, 2], "{}", first.transcript());

    // Published while nobody is connected: the broker queues them in the session.
    fx.publish_from(3, 50);

    let mut second = spawn(BIN, &with(args, &["--count", "50"]));
    expect_line(&second, "session present: true");
    let status = expect_exit(&mut second);
    assert!(status.success(), "{status}:\n{}", second.transcript());
    // Exactly the backlog: nothing lost, and nothing the first run acked comes again.
    assert_eq!(
        seqs(&second),
        (3..53).collect::<Vec<u64>>(),
        "{}",
        second.transcript()
    );
}

#[test]
fn a_session_left_without_its_subscription_is_subscribed_again() {
    // A previous run died after its CONNACK but before its SUBSCRIBE reached the broker: the
    // broker holds a persistent session for our id, with no subscription in it.
    let fx = Fixture::new();
    let id = "persistent-no-subscription";
    leave_session_without_subscription(&fx, id);

    let mut sub = spawn(BIN, &with(fx.args(id), &["--count", "5"]));
    // `true`, yet the session has nothing to deliver: only a SUBSCRIBE now gets the events.
    expect_line(&sub, "session present: true");
    expect_line(&sub, "subscribed to");
    fx.publish(5);
    let status = expect_exit(&mut sub);
    assert!(status.success(), "{status}:\n{}", sub.transcript());
    assert_eq!(seqs(&sub), vec![0, 1, 2, 3, 4], "{}", sub.transcript());
}

#[test]
fn session_expiry_0_keeps_no_backlog_but_new_messages_still_arrive() {
    let fx = Fixture::new();
    let id = "persistent-expiry-0";
    let args = with(fx.args(id), &["--session-expiry", "0"]);
    let first = subscribe_then_stop(&fx, &args, id);
    assert!(
        first
            .stderr()
            .contains("clean_start=false alone keeps nothing"),
        "the trap is not explained:\n{}",
        first.transcript()
    );

    fx.publish(200);

    let mut sub = spawn(BIN, &with(args, &["--count", "5"]));
    expect_line(&sub, "session present: false");
    expect_line(&sub, "subscribed to");
    // Had any of the backlog been kept, it would come before these (same topic, same order) and
    // the consumer would stop after 5 backlog messages instead.
    fx.publish_from(200, 5);
    let status = expect_exit(&mut sub);
    assert!(status.success(), "{status}:\n{}", sub.transcript());
    assert_eq!(
        seqs(&sub),
        vec![200, 201, 202, 203, 204],
        "{}",
        sub.transcript()
    );
    assert!(
        sub.stderr()
            .contains("with a session expiry of 0 a session ends"),
        "{}",
        sub.transcript()
    );
}

#[test]
fn after_a_broker_restart_the_consumer_reconnects_and_resumes_its_session() {
    let mut fx = Fixture::with(BrokerOptions {
        persistence: true,
        ..BrokerOptions::default()
    });
    let mut sub = spawn(BIN, &fx.args("persistent-broker-restart"));
    expect_line(&sub, "subscribed to");
    fx.publish(5);
    assert_eq!(
        sub.wait_for_count(|l| l.starts_with("message "), 5, WAIT),
        5,
        "{}",
        sub.transcript()
    );

    // Mosquitto saves its sessions on SIGTERM and loads them on start. Acks still on their way
    // when it stops are lost, so those messages come again (marked as redeliveries).
    fx.broker.stop();
    expect_line(&sub, "Reconnecting in");
    fx.broker
        .start_again()
        .unwrap_or_else(|err| panic!("restarting the broker: {err}"));
    expect_line(&sub, "session present: true");
    // Nothing can be published while the broker is down; publish after the restart. Any
    // redeliveries come first, so once seq 9 arrives everything has.
    fx.publish_from(5, 5);
    expect_seq(&sub, 9);
    sub.terminate();
    let status = expect_exit(&mut sub);
    assert!(status.success(), "{status}:\n{}", sub.transcript());

    let got = seqs(&sub);
    let unique: BTreeSet<u64> = got.iter().copied().collect();
    assert_eq!(
        unique,
        (0..10).collect::<BTreeSet<u64>>(),
        "{}",
        sub.transcript()
    );
    // At-least-once: a duplicate is allowed only as a redelivery the broker flagged (DUP).
    let duplicates = got.len() - unique.len();
    let flagged = sub.count_lines(|l| l.starts_with("message ") && l.ends_with("(redelivery)"));
    assert!(
        duplicates <= flagged,
        "{duplicates} duplicates but {flagged} flagged redeliveries:\n{}",
        sub.transcript()
    );
    if duplicates > 0 {
        eprintln!("note: {duplicates} messages redelivered after the broker restart");
    }
    // One SUBSCRIBE per CONNACK: the session survived the restart, but the example subscribes
    // again anyway (session present cannot say which subscriptions the session holds).
    assert_eq!(
        sub.count_lines(|l| l.contains("subscribed to")),
        2,
        "{}",
        sub.transcript()
    );
}
