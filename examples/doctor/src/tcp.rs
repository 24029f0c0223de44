//! Step 3: a TCP connection to every resolved address, timed, with refused, timed out and
//! unreachable told apart.
//!
//! Why the distinction matters: *refused* means the host is up and nothing listens on the port
//! (wrong port, broker down); *timed out* means packets vanish (a firewall drops them);
//! *unreachable* means this machine has no route there. Each has a different fix.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{BrokerTarget, FailureKind};
use serde_json::json;
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use crate::report::StepReport;
use crate::texts::{Advice, DoctorText};

const STEP: u8 = 3;
const NAME: &str = "tcp";

/// How one address answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Connected,
    Refused,
    TimedOut,
    Unreachable,
    Other,
}

impl Outcome {
    fn word(self) -> &'static str {
        match self {
            Outcome::Connected => "connected",
            Outcome::Refused => "refused",
            Outcome::TimedOut => "timed out",
            Outcome::Unreachable => "unreachable",
            Outcome::Other => "failed",
        }
    }

    fn of(err: &io::Error) -> Outcome {
        match err.kind() {
            io::ErrorKind::ConnectionRefused => Outcome::Refused,
            io::ErrorKind::TimedOut => Outcome::TimedOut,
            io::ErrorKind::HostUnreachable | io::ErrorKind::NetworkUnreachable => {
                Outcome::Unreachable
            }
            _ => Outcome::Other,
        }
    }
}

/// Connects to every address at once; returns the first one (in resolver order) that accepted,
/// with its open stream, for the TLS step.
pub async fn check(
    target: &BrokerTarget,
    addresses: &[SocketAddr],
    timeout: Duration,
) -> (StepReport, Option<(SocketAddr, TcpStream)>) {
    let mut attempts = JoinSet::new();
    for (index, address) in addresses.iter().copied().enumerate() {
        attempts.spawn(async move {
            let started = Instant::now();
            let result = match tokio::time::timeout(timeout, TcpStream::connect(address)).await {
                Ok(result) => result,
                Err(_) => Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no answer within {} s", timeout.as_secs()),
                )),
            };
            (index, address, result, started.elapsed())
        });
    }
    let mut results = Vec::new();
    while let Some(joined) = attempts.join_next().await {
        if let Ok(result) = joined {
            results.push(result);
        }
    }
    results.sort_by_key(|(index, ..)| *index);

    let mut lines = Vec::new();
    let mut data = Vec::new();
    let mut failed = Vec::new();
    let mut outcomes = Vec::new();
    let mut errors = Vec::new();
    let mut chosen: Option<(SocketAddr, TcpStream)> = None;
    for (_, address, result, elapsed) in results {
        let ms = elapsed.as_secs_f64() * 1000.0;
        let outcome = match result {
            Ok(stream) => {
                if chosen.is_none() {
                    chosen = Some((address, stream));
                }
                Outcome::Connected
            }
            Err(err) => {
                errors.push(format!("{address}: {err}"));
                Outcome::of(&err)
            }
        };
        if outcome != Outcome::Connected {
            failed.push(format!("{address} {}", outcome.word()));
        }
        outcomes.push(outcome);
        lines.push(format!("{address} {} in {ms:.1} ms", outcome.word()));
        data.push(
            json!({"address": address.to_string(), "outcome": outcome.word(), "elapsed_ms": ms}),
        );
    }
    let summary = lines.join("; ");
    let data = json!({ "attempts": data });
    match chosen {
        Some(chosen) if failed.is_empty() => (
            StepReport::pass(STEP, NAME, summary).with_data(data),
            Some(chosen),
        ),
        Some(chosen) => {
            let failed = failed.join(", ");
            let report = StepReport::warn(
                STEP,
                NAME,
                summary,
                DoctorText::SomeAddressesFail { failed: &failed }.advice(),
            )
            .with_data(data)
            .with_library_error(errors.join("; "));
            (report, Some(chosen))
        }
        None => {
            let advice = if outcomes.contains(&Outcome::Refused) {
                Advice::failure(FailureKind::ConnectionRefused, target)
            } else if outcomes.contains(&Outcome::TimedOut) {
                Advice::failure(FailureKind::Timeout, target)
            } else if outcomes.contains(&Outcome::Unreachable) {
                DoctorText::Unreachable {
                    address: &target.address(),
                }
                .advice()
            } else {
                Advice::failure(FailureKind::Other, target)
            };
            let report = StepReport::fail(STEP, NAME, summary, advice, common::exit::NETWORK)
                .with_data(data)
                .with_library_error(errors.join("; "));
            (report, None)
        }
    }
}
