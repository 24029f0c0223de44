//! Ctrl-C / SIGTERM must stop an example promptly even while the broker is gone and the example
//! is SLEEPING between reconnect attempts. (A consumer that ignores SIGTERM during an outage gets
//! SIGKILLed by its supervisor.)
//!
//! How the test knows the stop happened during the sleep: it waits until the example announces a
//! long sleep ("Reconnecting in N ms" with N ≥ [`LONG_SLEEP_MS`], reached after ~6 doubling
//! retries), sends SIGTERM at once, and requires the exit well before that sleep would have
//! ended (N − [`MARGIN`]), with no further reconnect attempt logged after the signal. A binary
//! that only looks at the signal between attempts sleeps the whole N ms (or never exits) and
//! fails. It also must not claim "disconnected cleanly": there was no connection to send a
//! DISCONNECT on (issue #16: that line only when the DISCONNECT really went out).

use std::time::{Duration, Instant};

use scenario_tests::*;

/// The sleep to wait for: the backoff (100 ms doubling, jittered to half..full) passes it after
/// about 6 retries, ~6–12 s into the outage.
const LONG_SLEEP_MS: u64 = 5_000;

/// How much of the announced sleep the test leaves unused, for the time between the example
/// printing the line and the test reading it on a loaded machine: the bound is N − 2 s ≥ 3 s.
const MARGIN: Duration = Duration::from_secs(2);

/// The delay of a "Reconnecting in N ms" line.
fn announced_sleep(line: &str) -> Option<u64> {
    line.split("Reconnecting in ")
        .nth(1)?
        .split(" ms")
        .next()?
        .parse()
        .ok()
}

fn stops_while_sleeping_between_reconnects(bin: &str, extra: &[&str]) {
    let mut fx = Fixture::new();
    let mut args = fx.args(&format!("{bin}-outage"));
    args.extend(extra.iter().map(|s| s.to_string()));
    let mut sub = spawn(bin, &args);
    expect_line(&sub, "subscribed to");
    fx.broker.kill();
    let line = sub
        .wait_for_line(
            |line| announced_sleep(line).is_some_and(|ms| ms >= LONG_SLEEP_MS),
            Duration::from_secs(60),
        )
        .unwrap_or_else(|| panic!("{bin}: no long backoff sleep:\n{}", sub.transcript()));
    let sleep = Duration::from_millis(announced_sleep(&line).expect("parsed above"));
    let attempts_before = sub.count_lines(|l| l.contains("Reconnecting in"));
    let signalled = Instant::now();
    sub.terminate();
    let bound = sleep - MARGIN;
    let status = sub.wait_exit(bound).unwrap_or_else(|| {
        panic!(
            "{bin}: still running {} ms after SIGTERM, during a {} ms backoff sleep: it did not \
             wake up for the signal:\n{}",
            bound.as_millis(),
            sleep.as_millis(),
            sub.transcript()
        )
    });
    let took = signalled.elapsed();
    assert!(status.success(), "{bin}: {status}:\n{}", sub.transcript());
    assert_eq!(
        sub.count_lines(|l| l.contains("Reconnecting in")),
        attempts_before,
        "{bin}: tried to reconnect after SIGTERM:\n{}",
        sub.transcript()
    );
    assert!(
        !sub.transcript().contains("disconnected cleanly"),
        "{bin}: claims a clean DISCONNECT while the broker was down:\n{}",
        sub.transcript()
    );
    eprintln!(
        "{bin}: stopped {} ms after SIGTERM, during a {} ms backoff sleep",
        took.as_millis(),
        sleep.as_millis()
    );
}

#[test]
fn tls_connect() {
    stops_while_sleeping_between_reconnects("tls-connect", &[]);
}

#[test]
fn tls_connect_variants() {
    for bin in [
        "tls-connect-rumqttc-blocking",
        "tls-connect-rumqttc-native-tls",
        "tls-connect-paho-tokio",
        "tls-connect-paho-async-std",
        "tls-connect-paho-smol",
    ] {
        stops_while_sleeping_between_reconnects(bin, &[]);
    }
}

#[test]
fn shared_subscription() {
    stops_while_sleeping_between_reconnects("shared-subscription", &["--instance", "1"]);
}

#[test]
fn shared_subscription_variants() {
    for bin in [
        "shared-subscription-rumqttc-blocking",
        "shared-subscription-rumqttc-native-tls",
        "shared-subscription-paho-tokio",
        "shared-subscription-paho-async-std",
        "shared-subscription-paho-smol",
    ] {
        stops_while_sleeping_between_reconnects(bin, &["--instance", "1"]);
    }
}

#[test]
fn persistent_session() {
    stops_while_sleeping_between_reconnects("persistent-session", &[]);
}

#[test]
fn persistent_session_variants() {
    for bin in [
        "persistent-session-rumqttc-blocking",
        "persistent-session-rumqttc-native-tls",
        "persistent-session-paho-tokio",
        "persistent-session-paho-async-std",
        "persistent-session-paho-smol",
    ] {
        stops_while_sleeping_between_reconnects(bin, &[]);
    }
}

#[test]
fn qos1_at_least_once() {
    stops_while_sleeping_between_reconnects("qos1-at-least-once", &[]);
}

#[test]
fn clean_session() {
    stops_while_sleeping_between_reconnects("clean-session", &[]);
}
