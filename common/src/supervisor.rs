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
//! - the connection closed right after a successful CONNACK, several times in a row (Mosquitto
//!   2.0 just closes the socket without a reason code, and rumqttc 0.25.1 cannot parse the short
//!   3-byte DISCONNECT some brokers send, so the reason code often never reaches us).

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
    /// A supervisor with the default backoff (100 ms doubling to 30 s, jittered).
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

    /// When the current run of quick drops began: the moment another client with our id probably
    /// first took over. Used to report detection time.
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
            return NextStep::GiveUp(failure);
        }
        let fatal_always = matches!(
            failure.kind,
            FailureKind::UnknownIssuer
                | FailureKind::WrongHostName
                | FailureKind::CertificateExpired
                | FailureKind::BadCertificate
                | FailureKind::BadCredentials
                | FailureKind::NotAuthorized
                | FailureKind::Rejected
        );
        // Before the first CONNACK a wrong port or host is a setting, not an outage.
        let fatal_at_start = matches!(
            failure.kind,
            FailureKind::NotTls | FailureKind::PlaintextToTlsPort | FailureKind::DnsFailure
        );
        if fatal_always || (fatal_at_start && !self.ever_connected) {
            return NextStep::GiveUp(failure);
        }

        match lived {
            Some(lived) if lived < QUICK_DROP => {
                if self.quick_drops == 0 {
                    self.takeover_suspected_at = Some(Instant::now() - lived);
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
