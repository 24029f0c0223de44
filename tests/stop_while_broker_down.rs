//! Ctrl-C / SIGTERM must stop an example promptly even while the broker is gone and the example
//! is between reconnect attempts or in its graceful-stop path. (A consumer that ignores SIGTERM
//! during an outage gets SIGKILLed by its supervisor, losing the clean DISCONNECT.)

use scenario_tests::*;

fn stops_promptly_while_the_broker_is_down(bin: &str, extra: &[&str]) {
    let mut fx = Fixture::new();
    let mut args = fx.args(&format!("{bin}-outage"));
    args.extend(extra.iter().map(|s| s.to_string()));
    let mut sub = spawn(bin, &args);
    expect_line(&sub, "subscribed to");
    fx.broker.kill();
    expect_line(&sub, "Reconnecting in");
    sub.terminate();
    let status = expect_exit(&mut sub);
    assert!(status.success(), "{bin}: {status}:\n{}", sub.transcript());
}

#[test]
fn tls_connect() {
    stops_promptly_while_the_broker_is_down("tls-connect", &[]);
}

#[test]
fn shared_subscription() {
    stops_promptly_while_the_broker_is_down("shared-subscription", &["--instance", "1"]);
}

#[test]
fn persistent_session() {
    stops_promptly_while_the_broker_is_down("persistent-session", &[]);
}

#[test]
fn qos1_at_least_once() {
    stops_promptly_while_the_broker_is_down("qos1-at-least-once", &[]);
}
