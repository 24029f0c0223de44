//! `clean-session` run as a process against a real Mosquitto (TLS, password auth, MQTT v5).
//!
//! The same sequence as `persistent_session.rs` — run, stop, publish while down, run again — with
//! the opposite result: none of the backlog, only what is published after the new subscription.

use scenario_tests::*;

const BIN: &str = "clean-session";

/// Runs `bin` until it has subscribed, then stops it with SIGTERM and checks for a clean exit,
/// and that the broker received the DISCONNECT of `client_id` (its log says `disconnected`
/// only for a DISCONNECT packet).
fn subscribe_then_stop(fx: &Fixture, bin: &str, args: &[String], client_id: &str) {
    let mut sub = spawn(bin, args);
    expect_line(&sub, "subscribed to");
    sub.terminate();
    let status = expect_exit(&mut sub);
    assert!(status.success(), "{status}:\n{}", sub.transcript());
    expect_line(&sub, "disconnected cleanly");
    assert!(
        fx.broker
            .wait_for_log(&format!("Client {client_id} disconnected."), WAIT),
        "{}",
        fx.broker.log()
    );
}

/// Starts the clean-session consumer for 5 messages, publishes seq 200..205 once it has
/// subscribed, and asserts that those — and nothing older — are what it received.
fn expect_only_new_messages(fx: &Fixture, args: &[String]) {
    let mut args = args.to_vec();
    args.extend(["--count".to_owned(), "5".to_owned()]);
    let mut sub = spawn(BIN, &args);
    expect_line(&sub, "session present: false — clean start");
    expect_line(&sub, "subscribed to");
    // Any kept backlog would be delivered before these (same topic, same order), and the
    // consumer would stop after 5 old messages instead.
    fx.publish_from(200, 5);
    let status = expect_exit(&mut sub);
    assert!(status.success(), "{status}:\n{}", sub.transcript());
    assert_eq!(
        seqs(&sub),
        vec![200, 201, 202, 203, 204],
        "{}",
        sub.transcript()
    );
}

#[test]
fn backlog_is_dropped_and_only_messages_published_after_reconnecting_arrive() {
    let fx = Fixture::new();
    let args = fx.args("clean-backlog");
    subscribe_then_stop(&fx, BIN, &args, "clean-backlog");
    fx.publish(200);
    expect_only_new_messages(&fx, &args);
}

#[test]
fn a_run_that_stops_after_count_leaves_nothing_to_the_next_run_with_the_same_instance() {
    // What the demo launcher does: the same binary twice with one `--instance`, the first run
    // ending by itself after `--count N`; what is published in between never arrives.
    let fx = Fixture::new();
    let args: Vec<String> = [
        fx.args("clean-count"),
        vec!["--instance".into(), "demo-1".into()],
    ]
    .concat();
    let mut first = spawn(
        BIN,
        &[args.clone(), vec!["--count".into(), "3".into()]].concat(),
    );
    expect_line(&first, "subscribed to");
    fx.publish(3);
    let status = expect_exit(&mut first);
    assert!(status.success(), "{status}:\n{}", first.transcript());
    expect_line(&first, "disconnected cleanly");
    assert_eq!(seqs(&first), vec![0, 1, 2], "{}", first.transcript());
    fx.publish_from(3, 50);
    expect_only_new_messages(&fx, &args);
}

#[test]
fn clean_start_discards_the_backlog_a_persistent_session_kept() {
    // A persistent consumer leaves a session behind, and the broker queues 200 messages in it...
    let fx = Fixture::new();
    let id = "clean-after-persistent";
    let args = fx.args(id);
    subscribe_then_stop(&fx, "persistent-session", &args, id);
    fx.publish(200);

    // ...a clean start with the same client id throws that session away, backlog and all.
    expect_only_new_messages(&fx, &args);

    // Proof that it is gone, not just skipped: the persistent consumer comes back to nothing.
    let mut persistent = spawn(
        "persistent-session",
        &[args.as_slice(), &["--count".to_owned(), "1".to_owned()]].concat(),
    );
    expect_line(&persistent, "session present: false");
    expect_line(&persistent, "subscribed to");
    fx.publish_from(205, 1);
    let status = expect_exit(&mut persistent);
    assert!(status.success(), "{status}:\n{}", persistent.transcript());
    assert_eq!(seqs(&persistent), vec![205], "{}", persistent.transcript());
}
