//! Step 9: the first message — wait up to `--wait` seconds for one event on the topic and show
//! its topic and size, or say that nothing arrived and what that can mean.
//!
//! This is the only step that can tell a silently filtering ACL from a working one: the SUBACK
//! looks the same either way on brokers such as Mosquitto.

use std::time::{Duration, Instant};

use common::credentials::strip_share_prefix;
use common::BrokerTarget;
use serde_json::json;

use crate::client::MqttSession;
use crate::report::StepReport;
use crate::texts::DoctorText;

const STEP: u8 = 9;
const NAME: &str = "first_message";

/// Waits for a message; hands the session back unless the connection ended.
pub async fn check(
    target: &BrokerTarget,
    mut session: MqttSession,
    wait: Duration,
    subscribed_at: Instant,
) -> (StepReport, Option<MqttSession>) {
    let topic = strip_share_prefix(&target.credentials.topic);
    match session.wait_for_message(wait).await {
        Ok(Some(message)) => {
            let after = message.at.saturating_duration_since(subscribed_at);
            let report = StepReport::pass(
                STEP,
                NAME,
                format!(
                    "\"{}\", {} bytes, QoS {}{}, {:.1} s after subscribing",
                    message.topic,
                    message.size,
                    message.qos,
                    if message.retain { ", retained" } else { "" },
                    after.as_secs_f64()
                ),
            )
            .with_data(json!({
                "topic": message.topic,
                "bytes": message.size,
                "qos": message.qos,
                "retain": message.retain,
                "after_subscribe_s": after.as_secs_f64(),
            }));
            (report, Some(session))
        }
        Ok(None) => {
            let report = StepReport::warn(
                STEP,
                NAME,
                format!("nothing arrived on \"{topic}\" within {} s", wait.as_secs()),
                DoctorText::NoMessage {
                    wait_secs: wait.as_secs(),
                    topic,
                }
                .advice(),
            )
            .with_data(json!({ "topic": null, "waited_s": wait.as_secs() }));
            (report, Some(session))
        }
        Err(err) => {
            let report = StepReport::fail(
                STEP,
                NAME,
                "the connection ended while waiting for a message",
                DoctorText::ConnectionDropped {
                    during: "the wait for a message",
                }
                .advice(),
                common::exit::NETWORK,
            )
            .with_library_error(err.to_string());
            (report, None)
        }
    }
}
