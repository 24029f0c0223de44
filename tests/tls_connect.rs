//! `tls-connect` run as a process against a real Mosquitto (TLS, password auth, MQTT v5).
//!
//! Each bad setting a customer can make gets its own plain-words message and exit code; the good
//! path receives exactly what was published.

use scenario_tests::*;

const BIN: &str = "tls-connect";

#[test]
fn right_ca_receives_every_message_and_exits_zero_after_count() {
    let fx = Fixture::new();
    let mut args = fx.args("tls-connect-ok");
    args.extend(["--count".into(), "5".into()]);
    let mut sub = spawn(BIN, &args);
    expect_line(&sub, "subscribed to");
    fx.publish(5);

    let status = expect_exit(&mut sub);
    assert!(status.success(), "{status}:\n{}", sub.transcript());
    assert_eq!(seqs(&sub), vec![0, 1, 2, 3, 4], "{}", sub.transcript());
    assert!(sub
        .stderr()
        .contains("processed 5 messages; disconnected cleanly"));
    // The password must never reach the output.
    assert!(!sub.transcript().contains(fx.broker.password()));
}

#[test]
fn a_burst_far_larger_than_the_queues_is_drained_without_stalling() {
    // Regression: with rumqttc's request channel at 64, the handler (awaiting room for an ack)
    // and the poller (awaiting room in the work queue) froze each other after a few hundred to
    // a few thousand messages of a burst.
    let fx = Fixture::new();
    let mut args = fx.args("tls-connect-burst");
    args.extend(["--count".into(), "3000".into(), "--stats".into()]);
    let mut sub = spawn(BIN, &args);
    expect_line(&sub, "subscribed to");
    fx.publish(3000);
    let status = expect_exit(&mut sub);
    assert!(status.success(), "{status}:\n{}", sub.transcript());
    expect_line(&sub, "stats: received=3000 unique_seq=3000");
}

#[test]
fn sigterm_finishes_and_disconnects_cleanly() {
    let fx = Fixture::new();
    let mut sub = spawn(BIN, &fx.args("tls-connect-term"));
    expect_line(&sub, "subscribed to");
    fx.publish(2);
    assert_eq!(
        sub.wait_for_count(|l| l.starts_with("message "), 2, WAIT),
        2,
        "{}",
        sub.transcript()
    );
    sub.terminate();
    let status = expect_exit(&mut sub);
    assert!(status.success(), "{status}:\n{}", sub.transcript());
    expect_line(&sub, "disconnected cleanly");
    // Mosquitto logs a client-initiated DISCONNECT as "disconnected", a dropped socket as
    // "closed its connection" / "exceeded timeout".
    assert!(
        fx.broker
            .wait_for_log("Client tls-connect-term disconnected", WAIT),
        "{}",
        fx.broker.log()
    );
}

#[test]
fn wrong_ca_is_refused_with_the_ca_hint() {
    let fx = Fixture::new();
    let creds = fx.write(&fx.creds("tls-connect-wrong-ca"));
    let args = vec![
        "--creds".into(),
        path_str(&creds),
        "--ca-file".into(),
        path_str(fx.broker.wrong_ca_path()),
    ];
    let mut sub = spawn(BIN, &args);
    expect_failure(
        &mut sub,
        4,
        &["is not signed by a CA you trust", "--ca-file"],
    );
}

#[test]
fn certificate_for_another_host_is_refused_with_the_host_name_hint() {
    let fx = Fixture::new();
    let mut creds = fx.creds("tls-connect-wrong-name");
    creds["port"] = json!(fx.broker.wrong_name_tls_port());
    let path = fx.write(&creds);
    let args = vec![
        "--creds".into(),
        path_str(&path),
        "--ca-file".into(),
        path_str(fx.broker.ca_path()),
    ];
    let mut sub = spawn(BIN, &args);
    expect_failure(&mut sub, 4, &["is not issued for \"localhost\""]);
}

#[test]
fn wrong_password_is_refused_with_the_auth_hint() {
    let fx = Fixture::new();
    let mut creds = fx.creds("tls-connect-wrong-password");
    creds["password"] = json!("not-the-password");
    let path = fx.write(&creds);
    let args = vec![
        "--creds".into(),
        path_str(&path),
        "--ca-file".into(),
        path_str(fx.broker.ca_path()),
    ];
    let mut sub = spawn(BIN, &args);
    // Mosquitto answers a wrong password with CONNACK 0x87 "not authorized".
    expect_failure(&mut sub, 5, &["refused the connection as not authorized"]);
    assert!(!sub.transcript().contains("not-the-password"));
}

#[test]
fn disabled_credentials_are_refused_before_connecting() {
    let fx = Fixture::new();
    let mut creds = fx.creds("tls-connect-disabled");
    creds["isEnabled"] = json!(0);
    let path = fx.write(&creds);
    let mut sub = spawn(BIN, &["--creds".into(), path_str(&path)]);
    expect_failure(
        &mut sub,
        3,
        &["these credentials are disabled in the Airfinder platform"],
    );
}

#[test]
fn port_1883_is_refused_without_connecting() {
    let fx = Fixture::new();
    let mut creds = fx.creds("tls-connect-1883");
    creds["port"] = json!(1883);
    let path = fx.write(&creds);
    let mut sub = spawn(BIN, &["--creds".into(), path_str(&path)]);
    expect_failure(&mut sub, 7, &["port 1883", "--insecure-plaintext"]);
}

#[test]
fn plaintext_port_is_refused_unless_explicitly_allowed() {
    let fx = Fixture::new();
    let mut creds = fx.creds("tls-connect-plain");
    creds["port"] = json!(fx.broker.plaintext_port());
    creds["protocol"] = json!("mqtt");
    let path = fx.write(&creds);

    let mut refused = spawn(BIN, &["--creds".into(), path_str(&path)]);
    expect_failure(&mut refused, 7, &["asks for plaintext MQTT", "unencrypted"]);

    // With the explicit opt-in it connects, warns, and works.
    let args = vec![
        "--creds".into(),
        path_str(&path),
        "--insecure-plaintext".into(),
        "--count".into(),
        "2".into(),
    ];
    let mut allowed = spawn(BIN, &args);
    expect_line(&allowed, "WITHOUT TLS");
    expect_line(&allowed, "subscribed to");
    fx.publish(2);
    let status = expect_exit(&mut allowed);
    assert!(status.success(), "{}", allowed.transcript());
    assert_eq!(seqs(&allowed), vec![0, 1]);
}

#[test]
fn tls_to_a_plaintext_port_says_it_is_not_a_tls_port() {
    let fx = Fixture::new();
    let mut creds = fx.creds("tls-connect-not-tls");
    creds["port"] = json!(fx.broker.plaintext_port());
    let path = fx.write(&creds);
    let args = vec![
        "--creds".into(),
        path_str(&path),
        "--ca-file".into(),
        path_str(fx.broker.ca_path()),
    ];
    let mut sub = spawn(BIN, &args);
    expect_failure(&mut sub, 4, &["did not answer with TLS"]);
}

#[test]
fn a_missing_creds_file_is_an_error_not_the_demo() {
    let mut sub = spawn(BIN, &["--creds".into(), "/nonexistent/creds.json".into()]);
    expect_failure(&mut sub, 3, &["/nonexistent/creds.json does not exist"]);
    assert!(!sub.transcript().contains("DEMO"));
}
