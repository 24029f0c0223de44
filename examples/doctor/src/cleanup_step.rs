//! Step 10: leave nothing behind. The last DISCONNECT carries session expiry 0, so the broker
//! forgets doctor's session (and its subscriptions and queue) at once; if the connection was
//! already gone, doctor connects once more with clean start and expiry 0 to end the session.

use std::time::Duration;

use common::BrokerTarget;
use serde_json::json;

use crate::client::{self, ConnectOutcome, MqttSession, SESSION_EXPIRY_SECS};
use crate::report::StepReport;
use crate::texts::DoctorText;
use crate::tls::Dialer;

const STEP: u8 = 10;
const NAME: &str = "cleanup";

/// Ends doctor's session. `session` is the live connection, if any; `dialer` is set when a
/// session may exist on the broker (a CONNACK succeeded at some point).
pub async fn check(
    target: &BrokerTarget,
    session: Option<MqttSession>,
    dialer: Option<&Dialer>,
    timeout: Duration,
) -> StepReport {
    let id = &target.client_id;
    if let Some(session) = session {
        return match session.disconnect(Some(0)).await {
            Ok(()) => StepReport::pass(
                STEP,
                NAME,
                format!("DISCONNECT with session expiry 0 sent: no session of \"{id}\" stays on the broker"),
            )
            .with_data(json!({ "session_ended": true })),
            Err(err) => lingering(id, err.to_string()),
        };
    }
    let Some(dialer) = dialer else {
        return StepReport::pass(STEP, NAME, "nothing was created on the broker")
            .with_data(json!({ "session_ended": true }));
    };
    let transport = match dialer.dial().await {
        Ok(transport) => transport,
        Err(err) => return lingering(id, err.to_string()),
    };
    match client::connect(transport, target, true, 0, timeout).await {
        (ConnectOutcome::ConnAck(_), Some(session)) => match session.disconnect(Some(0)).await {
            Ok(()) => StepReport::pass(
                STEP,
                NAME,
                format!(
                    "reconnected with clean start and session expiry 0 to end the session of \
                     \"{id}\""
                ),
            )
            .with_data(json!({ "session_ended": true })),
            Err(err) => lingering(id, err.to_string()),
        },
        (outcome, _) => lingering(id, format!("{outcome:?}")),
    }
}

fn lingering(id: &str, detail: String) -> StepReport {
    StepReport::warn(
        STEP,
        NAME,
        format!("could not end the session of \"{id}\""),
        DoctorText::SessionLingers {
            client_id: id,
            expiry: SESSION_EXPIRY_SECS,
        }
        .advice(),
    )
    .with_library_error(detail)
    .with_data(json!({ "session_ended": false }))
}
