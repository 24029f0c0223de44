//! Step 2: every address the host name resolves to, IPv4 and IPv6, and how long it took.
//!
//! Why all of them: a client library tries them in turn, so one dead address (an AAAA record for
//! a broker that does not listen on IPv6) costs every connect a timeout, and only a list shows it.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{BrokerTarget, FailureKind};
use serde_json::json;

use crate::report::StepReport;
use crate::texts::Advice;

const STEP: u8 = 2;
const NAME: &str = "dns";

/// Resolves the broker's host name; an empty list means step 3 cannot run.
pub async fn check(target: &BrokerTarget, timeout: Duration) -> (StepReport, Vec<SocketAddr>) {
    let host = &target.credentials.host;
    let port = target.credentials.port;
    let started = Instant::now();
    let lookup =
        tokio::time::timeout(timeout, tokio::net::lookup_host((host.as_str(), port))).await;
    let elapsed = started.elapsed();
    let failure = |detail: String| {
        let report = StepReport::fail(
            STEP,
            NAME,
            format!("\"{host}\" does not resolve ({} ms)", elapsed.as_millis()),
            Advice::failure(FailureKind::DnsFailure, target),
            FailureKind::DnsFailure.exit_code(),
        )
        .with_library_error(detail);
        (report, Vec::new())
    };
    let resolved = match lookup {
        Err(_) => return failure(format!("no answer within {} s", timeout.as_secs())),
        Ok(Err(err)) => return failure(err.to_string()),
        Ok(Ok(addresses)) => addresses,
    };
    let mut addresses: Vec<SocketAddr> = Vec::new();
    for address in resolved {
        if !addresses.contains(&address) {
            addresses.push(address);
        }
    }
    if addresses.is_empty() {
        return failure("the resolver returned no address".to_owned());
    }
    let v4 = addresses.iter().filter(|a| a.is_ipv4()).count();
    let v6 = addresses.len() - v4;
    let list: Vec<String> = addresses.iter().map(|a| a.ip().to_string()).collect();
    let report = StepReport::pass(
        STEP,
        NAME,
        format!(
            "{host} → {} ({v4} IPv4, {v6} IPv6) in {:.1} ms",
            list.join(", "),
            elapsed.as_secs_f64() * 1000.0
        ),
    )
    .with_data(json!({
        "host": host,
        "addresses": list,
        "ipv4": v4,
        "ipv6": v6,
        "elapsed_ms": elapsed.as_secs_f64() * 1000.0,
    }));
    (report, addresses)
}
