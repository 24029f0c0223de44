//! What to do after the MQTT connection fails: wait and retry, or stop and say why.
//!
//! rumqttc's event loop reconnects on the next `poll()` after an error, immediately and forever.
//! That is right for a broker restart and wrong for everything else: a wrong password retried in
//! a tight loop floods the log and may get the client banned, and two processes sharing one client
//! id kick each other off for ever. [`ConnectionSupervisor`] sits between `poll()` errors and the
//! next `poll()` and decides.
//!
//! Client-id collisions are detected two ways, because brokers differ:
//! - an MQTT v5 DISCONNECT with reason 0x8E *Session taken over* (mqtt5's broker, EMQX, HiveMQ):
//!   definitive, we stop at once;
//! - the broker closed the connection right after a successful CONNACK, several times in a row
//!   (Mosquitto 2.0 just closes the socket without a reason code, and rumqttc 0.25.1 cannot parse
//!   the short 3-byte DISCONNECT some brokers send, so the reason code often never reaches us).
//!   Only failures where the *broker* closed the connection count ([`FailureKind::ConnectionLost`],
//!   or [`FailureKind::PlaintextToTlsPort`], which is how a close reads on plaintext): a message
//!   too large for us, or a broker shutting down, right after every CONNACK is another problem
//!   and must not be reported as a client-id clash.
//!
//! `examples/client-id-collision/src/main.rs` writes this rule out (`TakeoverDetector`), with
//! [`QUICK_DROP`] and [`QUICK_DROPS_FOR_COLLISION`], because it is that example's lesson: a
//! change to the rule here belongs there too.

use std::time::{Duration, Instant};

use crate::backoff::Backoff;
use crate::cli::BrokerTarget;
use crate::failure::{ConnectFailure, FailureKind};

/// A connection that lived less than this after its CONNACK counts as "dropped right away".
pub const QUICK_DROP: Duration = Duration::from_secs(5);

/// This many quick drops in a row mean another client is using our id.
pub const QUICK_DROPS_FOR_COLLISION: u32 = 3;

/// A connection that lived this long proves the settings are good: the backoff starts over.
pub const STABLE_AFTER: Duration = Duration::from_secs(10);

/// The decision after a failure.
#[derive(Debug)]
pub enum NextStep {
    /// Sleep this long, then poll again (which reconnects).
    RetryAfter(Duration),
    /// Stop: retrying cannot help. Return the failure from `main`.
    GiveUp(ConnectFailure),
}

/// What an example's idle watchdog reports: nothing arrived from the broker for `silent_for`
/// (1.5 × keep-alive), although a live broker answers our PINGREQ every keep-alive.
///
/// The link died without a FIN or RST (a pulled cable, a NAT or firewall that forgot us, a frozen
/// host): TCP would take minutes to notice, rumqttc about 2 × keep-alive (it gives up only when
/// the *next* PINGREQ falls due with the previous one unanswered). The examples check this
/// themselves (see `poll_or_silence` in each), drop the connection with `EventLoop::clean()`,
/// and hand [`LinkSilent::into_error`] to [`ConnectionSupervisor::failed`] like any other
/// failure: it reads as a lost connection and is retried with backoff.
#[derive(Debug, Clone, Copy)]
pub struct LinkSilent {
    /// How long nothing arrived.
    pub silent_for: Duration,
}

impl std::fmt::Display for LinkSilent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "idle watchdog: nothing from the broker for {:.0} s (1.5 × keep-alive); the link is dead",
            self.silent_for.as_secs_f64()
        )
    }
}

impl std::error::Error for LinkSilent {}

impl LinkSilent {
    /// As the error rumqttc's `poll()` would have returned, for [`ConnectionSupervisor::failed`].
    pub fn into_error(self) -> rumqttc::v5::ConnectionError {
        rumqttc::v5::ConnectionError::Io(std::io::Error::new(std::io::ErrorKind::TimedOut, self))
    }

    /// Whether `err` is one of these.
    pub fn is(err: &rumqttc::v5::ConnectionError) -> bool {
        matches!(err, rumqttc::v5::ConnectionError::Io(io)
            if io.get_ref().is_some_and(|inner| inner.is::<LinkSilent>()))
    }
}

/// Reconnect policy and collision detector for one connection.
#[derive(Debug)]
pub struct ConnectionSupervisor {
    target: BrokerTarget,
    backoff: Backoff,
    connected_at: Option<Instant>,
    ever_connected: bool,
    quick_drops: u32,
    takeover_suspected_at: Option<Instant>,
}

impl ConnectionSupervisor {
    /// A supervisor with the default backoff (100 ms doubling to 10 s, jittered).
    pub fn new(target: &BrokerTarget) -> Self {
        ConnectionSupervisor::with_backoff(target, Backoff::default())
    }

    /// A supervisor with a custom backoff.
    pub fn with_backoff(target: &BrokerTarget, backoff: Backoff) -> Self {
        ConnectionSupervisor {
            target: target.clone(),
            backoff,
            connected_at: None,
            ever_connected: false,
            quick_drops: 0,
            takeover_suspected_at: None,
        }
    }

    /// Call on every successful CONNACK.
    pub fn connected(&mut self) {
        self.connected_at = Some(Instant::now());
        self.ever_connected = true;
    }

    /// Whether we have had at least one CONNACK.
    pub fn ever_connected(&self) -> bool {
        self.ever_connected
    }

    /// When the current run of quick drops began: the moment we saw the first drop, which is when
    /// another client with our id probably first took over (its CONNACK closes our connection).
    /// Also set when a DISCONNECT 0x8E ends the connection. Used to report detection time.
    pub fn takeover_suspected_at(&self) -> Option<Instant> {
        self.takeover_suspected_at
    }

    /// Call on every error from `poll()`; act on the answer.
    pub fn failed(&mut self, err: &rumqttc::v5::ConnectionError) -> NextStep {
        let failure = ConnectFailure::from_rumqttc(err, &self.target);
        self.decide(failure)
    }

    /// The policy, for any library: give it a classified failure.
    pub fn decide(&mut self, failure: ConnectFailure) -> NextStep {
        let lived = self.connected_at.take().map(|since| since.elapsed());
        if let Some(lived) = lived {
            if lived >= STABLE_AFTER {
                self.backoff.reset();
                self.quick_drops = 0;
                self.takeover_suspected_at = None;
            }
        }

        if failure.kind == FailureKind::ClientIdTaken {
            // DISCONNECT 0x8E: the takeover is this very drop.
            self.takeover_suspected_at.get_or_insert_with(Instant::now);
            return NextStep::GiveUp(failure);
        }
        // Certificates, passwords, ids: stop. A wrong host or port before the first CONNACK:
        // stop. Anything else: retry with backoff (FailureKind::is_retryable has the table).
        if !failure.kind.is_retryable(self.ever_connected) {
            return NextStep::GiveUp(failure);
        }

        // Did the broker end the connection (as it does on a takeover), or did something else?
        let broker_closed = matches!(
            failure.kind,
            FailureKind::ConnectionLost | FailureKind::PlaintextToTlsPort
        );
        match lived {
            // Anything else right after CONNACK (a packet too large, "server shutting down") is
            // neither a sign of a clash nor proof against one: it does not change the count.
            Some(lived) if lived < QUICK_DROP && !broker_closed => {}
            // ANCHOR: takeover_rule
            Some(lived) if lived < QUICK_DROP => {
                if self.quick_drops == 0 {
                    // The drop, not our CONNACK: that is when the other client connected.
                    self.takeover_suspected_at = Some(Instant::now());
                }
                self.quick_drops += 1;
                if self.quick_drops >= QUICK_DROPS_FOR_COLLISION {
                    let detail = format!(
                        "the broker closed the connection right after accepting it, {} times in a \
                         row ({})",
                        self.quick_drops, failure.detail
                    );
                    return NextStep::GiveUp(ConnectFailure::new(
                        FailureKind::ClientIdTaken,
                        &self.target,
                        detail,
                    ));
                }
            }
            // ANCHOR_END: takeover_rule
            Some(_) => {
                // A connection that lasted a while and then dropped: an ordinary outage.
                self.quick_drops = 0;
                self.takeover_suspected_at = None;
            }
            None => {}
        }

        let delay = self.backoff.next_delay();
        tracing::warn!(
            "{} Reconnecting in {} ms (attempt {}). [{}]",
            failure.message,
            delay.as_millis(),
            self.backoff.attempt(),
            failure.detail
        );
        NextStep::RetryAfter(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Security;
    use crate::credentials::{Credentials, CredentialsOrigin};

    fn target() -> BrokerTarget {
        let json = r#"{"host": "localhost", "port": 8883, "clientId": "c1", "username": "u",
                       "password": "p", "topic": "t/#"}"#;
        let credentials = Credentials::from_json_str(json, CredentialsOrigin::Other("test".into()))
            .expect("valid test credentials");
        BrokerTarget {
            client_id: "c1".into(),
            credentials,
            security: Security::Tls(crate::TlsRoots::from_ca_file(None)),
            creds_path: "creds.json".into(),
        }
    }

    /// A CONNACK, then at once a failure of `kind`.
    fn quick_drop(supervisor: &mut ConnectionSupervisor, kind: FailureKind) -> NextStep {
        supervisor.connected();
        let failure = ConnectFailure::new(kind, &supervisor.target.clone(), "test");
        supervisor.decide(failure)
    }

    #[test]
    fn three_quick_closes_by_the_broker_mean_our_id_is_taken() {
        let mut supervisor = ConnectionSupervisor::new(&target());
        supervisor.connected();
        // Our connection lives a moment before the other client takes it over.
        std::thread::sleep(Duration::from_millis(5));
        let after_connack = Instant::now();
        let failure = ConnectFailure::new(FailureKind::ConnectionLost, &target(), "test");
        assert!(matches!(
            supervisor.decide(failure),
            NextStep::RetryAfter(_)
        ));
        // Dated at the drop (when the other client came), not at our own CONNACK.
        let suspected = supervisor
            .takeover_suspected_at()
            .expect("set at the first drop");
        assert!(suspected >= after_connack);
        assert!(matches!(
            quick_drop(&mut supervisor, FailureKind::ConnectionLost),
            NextStep::RetryAfter(_)
        ));
        match quick_drop(&mut supervisor, FailureKind::ConnectionLost) {
            NextStep::GiveUp(failure) => {
                assert_eq!(failure.kind, FailureKind::ClientIdTaken);
                assert!(failure
                    .message
                    .contains("\"c1\" is used by another process"));
            }
            other => panic!("expected to give up, got {other:?}"),
        }
        assert_eq!(supervisor.takeover_suspected_at(), Some(suspected));
    }

    #[test]
    fn quick_failures_the_broker_did_not_cause_are_not_a_clash() {
        let mut supervisor = ConnectionSupervisor::new(&target());
        for _ in 0..10 {
            for kind in [FailureKind::ServerUnavailable, FailureKind::Other] {
                assert!(matches!(
                    quick_drop(&mut supervisor, kind),
                    NextStep::RetryAfter(_)
                ));
            }
        }
        assert_eq!(supervisor.takeover_suspected_at(), None);
        // ... and they do not interrupt a run of broker closes either.
        quick_drop(&mut supervisor, FailureKind::ConnectionLost);
        quick_drop(&mut supervisor, FailureKind::Other);
        quick_drop(&mut supervisor, FailureKind::ConnectionLost);
        assert!(matches!(
            quick_drop(&mut supervisor, FailureKind::ConnectionLost),
            NextStep::GiveUp(ConnectFailure {
                kind: FailureKind::ClientIdTaken,
                ..
            })
        ));
    }

    #[test]
    fn disconnect_0x8e_gives_up_at_once_and_dates_the_takeover() {
        use rumqttc::v5::mqttbytes::v5::DisconnectReasonCode;
        use rumqttc::v5::{ConnectionError, StateError};

        // What rumqttc reports when it can parse the broker's DISCONNECT 0x8E.
        let err = ConnectionError::MqttState(StateError::ServerDisconnect {
            reason_code: DisconnectReasonCode::SessionTakenOver,
            reason_string: None,
        });
        let mut supervisor = ConnectionSupervisor::new(&target());
        supervisor.connected();
        match supervisor.failed(&err) {
            NextStep::GiveUp(failure) => assert_eq!(failure.kind, FailureKind::ClientIdTaken),
            other => panic!("expected to give up at the first 0x8E, got {other:?}"),
        }
        assert!(supervisor.takeover_suspected_at().is_some());
    }

    #[test]
    fn a_silent_link_reads_as_a_lost_connection_and_is_retried() {
        let err = LinkSilent {
            silent_for: Duration::from_secs(45),
        }
        .into_error();
        assert!(LinkSilent::is(&err));
        let failure = ConnectFailure::from_rumqttc(&err, &target());
        assert_eq!(failure.kind, FailureKind::ConnectionLost);
        assert!(
            failure.detail.contains("idle watchdog"),
            "{}",
            failure.detail
        );
        let mut supervisor = ConnectionSupervisor::new(&target());
        for _ in 0..5 {
            match supervisor.failed(&err) {
                NextStep::RetryAfter(delay) => {
                    assert!(delay <= crate::backoff::MAX_DELAY, "{delay:?}")
                }
                other => panic!("a dead link must be retried, got {other:?}"),
            }
        }
    }

    #[test]
    fn mosquittos_takeover_close_reads_as_a_lost_connection() {
        // Mosquitto 2.0 closes the old connection cleanly; rumqttc says "closed by peer abruptly".
        let err =
            rumqttc::v5::ConnectionError::MqttState(rumqttc::v5::StateError::ConnectionAborted);
        let failure = ConnectFailure::from_rumqttc(&err, &target());
        assert_eq!(failure.kind, FailureKind::ConnectionLost);
    }
}
