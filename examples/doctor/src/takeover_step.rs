//! Step 8 (opt-in, `--check-takeover`): a second connection with the same client id. Does the
//! broker send the first one DISCONNECT 0x8E "Session taken over", or just close it?
//!
//! Why it matters: a consumer that must notice a client-id clash (two processes sharing one id
//! kick each other off for ever) can rely on 0x8E only if its broker sends it; Mosquitto 2.0
//! closes silently, so detection must also watch for "closed right after a successful CONNACK".
//! Opt-in because with `--client-id` set to a running consumer's id, that consumer is kicked off.

use std::time::{Duration, Instant};

use common::BrokerTarget;
use serde_json::json;

use crate::client::{self, reason_text, ConnectOutcome, MqttSession, SESSION_EXPIRY_SECS};
use crate::mqtt::RecvError;
use crate::report::StepReport;
use crate::texts::DoctorText;
use crate::tls::Dialer;

const STEP: u8 = 8;
const NAME: &str = "takeover";

/// Connects a second time with the same id and watches the first connection. Returns the
/// session to go on with (the second one if it connected) and whether it found its session.
pub async fn check(
    target: &BrokerTarget,
    mut first: MqttSession,
    dialer: &Dialer,
    timeout: Duration,
) -> (StepReport, Option<MqttSession>, bool) {
    let second = match dialer.dial().await {
        Ok(transport) => {
            client::connect(transport, target, false, SESSION_EXPIRY_SECS, timeout).await
        }
        Err(err) => (ConnectOutcome::NoConnAck(RecvError::Io(err)), None),
    };
    let started = Instant::now();
    let (connack, mut second) = match second {
        (ConnectOutcome::ConnAck(connack), Some(session)) => (connack, session),
        (outcome, _) => {
            let report = StepReport::warn(
                STEP,
                NAME,
                "the second connection with the same client id was not accepted",
                DoctorText::ConnectionDropped {
                    during: "the takeover probe",
                }
                .advice(),
            )
            .with_library_error(format!("{outcome:?}"));
            return (report, Some(first), true);
        }
    };
    let watched = first.watch_for_close(timeout).await;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    second.carry_over(first.first_message.take());
    let present = connack.session_present;
    let report = match watched {
        Ok(code) => StepReport::pass(
            STEP,
            NAME,
            format!(
                "second connection accepted; the first got DISCONNECT {} {ms:.1} ms later",
                reason_text(code)
            ),
        )
        .with_data(
            json!({ "first_connection": "disconnect", "reason_code": code, "elapsed_ms": ms }),
        ),
        Err(RecvError::Timeout) => {
            // Both stay connected: end the first one cleanly, keeping the session for the second.
            let _ = first.disconnect(None).await;
            StepReport::warn(
                STEP,
                NAME,
                format!(
                    "the first connection was still open {} s after the second connected",
                    timeout.as_secs()
                ),
                DoctorText::TakeoverNotDetected.advice(),
            )
            .with_data(json!({ "first_connection": "open" }))
        }
        Err(err) => StepReport::pass(
            STEP,
            NAME,
            format!(
                "second connection accepted; the first was closed {ms:.1} ms later WITHOUT a \
                 DISCONNECT (no reason code): detect a clash as \"closed right after CONNACK\", \
                 as `client-id-collision` does"
            ),
        )
        .with_data(
            json!({ "first_connection": "closed", "error": err.to_string(), "elapsed_ms": ms }),
        ),
    };
    (report, Some(second), present)
}
