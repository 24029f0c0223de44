//! Step 7: the persistent session — disconnect, reconnect with `clean_start = false` within the
//! session expiry, and read "session present" in the CONNACK.
//!
//! Why: `persistent-session` (the backlog after a restart) only works when the broker keeps
//! sessions; some brokers or plans do not, or shorten the expiry. This is the one way to know.

use std::time::{Duration, Instant};

use common::BrokerTarget;
use serde_json::json;

use crate::client::{self, reason_text, ConnectOutcome, MqttSession, SESSION_EXPIRY_SECS};
use crate::report::StepReport;
use crate::texts::DoctorText;
use crate::tls::Dialer;

const STEP: u8 = 7;
const NAME: &str = "session";

/// Disconnects (keeping the session) and reconnects. Returns the new session and whether the
/// broker kept the old one (and with it the subscriptions).
pub async fn check(
    target: &BrokerTarget,
    session: MqttSession,
    dialer: &Dialer,
    granted_expiry: u32,
    timeout: Duration,
) -> (StepReport, Option<MqttSession>, bool) {
    let mut session = session;
    let carried = session.first_message.take();
    // A normal DISCONNECT without a new expiry: the session stays for `granted_expiry` seconds.
    let _ = session.disconnect(None).await;
    let started = Instant::now();
    let failed = |what: String, detail: String| {
        StepReport::fail(
            STEP,
            NAME,
            what,
            DoctorText::ConnectionDropped {
                during: "the reconnect",
            }
            .advice(),
            common::exit::NETWORK,
        )
        .with_library_error(detail)
    };
    let transport = match dialer.dial().await {
        Ok(transport) => transport,
        Err(err) => {
            return (
                failed("could not reconnect".to_owned(), err.to_string()),
                None,
                false,
            )
        }
    };
    let (outcome, new_session) =
        client::connect(transport, target, false, SESSION_EXPIRY_SECS, timeout).await;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let (connack, mut new_session) = match (outcome, new_session) {
        (ConnectOutcome::ConnAck(connack), Some(new_session)) => (connack, new_session),
        (ConnectOutcome::ConnAck(connack), None) => {
            let code = u8::from(connack.reason_code);
            return (
                failed(
                    format!("the reconnect was refused: CONNACK {}", reason_text(code)),
                    String::new(),
                ),
                None,
                false,
            );
        }
        (other, _) => {
            return (
                failed(
                    "the reconnect got no CONNACK".to_owned(),
                    format!("{other:?}"),
                ),
                None,
                false,
            )
        }
    };
    new_session.carry_over(carried);
    let present = connack.session_present;
    let data = json!({
        "session_present": present,
        "asked_expiry_s": SESSION_EXPIRY_SECS,
        "granted_expiry_s": granted_expiry,
        "reconnect_ms": ms,
    });
    let report = if present {
        StepReport::pass(
            STEP,
            NAME,
            format!(
                "session present after a reconnect in {ms:.1} ms (expiry {granted_expiry} s \
                 granted): the broker keeps sessions, `persistent-session` gets the backlog"
            ),
        )
    } else {
        StepReport::warn(
            STEP,
            NAME,
            format!("session NOT present after a reconnect in {ms:.1} ms (expiry {granted_expiry} s granted)"),
            DoctorText::SessionNotKept {
                expiry: SESSION_EXPIRY_SECS,
            }
            .advice(),
        )
    };
    (report.with_data(data), Some(new_session), present)
}
