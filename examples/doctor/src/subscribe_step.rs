//! Step 6: SUBSCRIBE to the credentials' topic at QoS 1, then to `$share/<group>/<topic>`: the
//! granted QoS or the SUBACK reason code of each.
//!
//! What doctor can and cannot see here: a refusal (SUBACK 0x87 "not authorized") is definite. A
//! grant is not proof of access: Mosquitto grants a SUBSCRIBE outside the user's ACL and then
//! delivers nothing (measured, see docs), so only step 9 — a message that arrives — settles it.
//!
//! Doctor uses its own share group (`doctor<pid>`), never the consumers' group: joining theirs
//! would take a share of their messages away from them.

use std::time::{Duration, Instant};

use common::credentials::strip_share_prefix;
use common::BrokerTarget;
use mqtt5_protocol::packet::suback::SubAckPacket;
use serde_json::json;

use crate::client::{reason_name, MqttSession};
use crate::connect_step::Capabilities;
use crate::mqtt::RecvError;
use crate::report::StepReport;
use crate::texts::DoctorText;

const STEP: u8 = 6;
const NAME: &str = "subscribe";

/// What was granted, for the steps after this one.
#[derive(Debug, Clone, Default)]
pub struct Subscriptions {
    /// The filters the broker granted, in the order they were asked for.
    pub granted: Vec<String>,
    /// Whether the consumer's own topic (without any `$share` prefix) was granted.
    pub topic_granted: bool,
}

/// The first reason code of a SUBACK (doctor asks for one filter per SUBSCRIBE).
fn first_code(ack: &SubAckPacket) -> u8 {
    ack.reason_codes.first().map_or(0x80, |code| *code as u8)
}

/// Subscribes; hands the session back unless the broker dropped it.
pub async fn check(
    target: &BrokerTarget,
    mut session: MqttSession,
    capabilities: &Capabilities,
    timeout: Duration,
) -> (StepReport, Option<MqttSession>, Subscriptions) {
    let topic = strip_share_prefix(&target.credentials.topic).to_owned();
    let consumer_uses_share = topic != target.credentials.topic;
    let mut subscriptions = Subscriptions::default();
    let dropped = |err: RecvError, during: &str| {
        StepReport::fail(
            STEP,
            NAME,
            format!("the connection ended during {during}"),
            DoctorText::ConnectionDropped { during }.advice(),
            common::exit::NETWORK,
        )
        .with_library_error(err.to_string())
    };

    if !capabilities.wildcard_subscriptions && (topic.contains('+') || topic.contains('#')) {
        let report = StepReport::fail(
            STEP,
            NAME,
            format!("\"{topic}\" has a wildcard; the broker allows none"),
            DoctorText::WildcardUnavailable { topic: &topic }.advice(),
            common::exit::AUTH,
        );
        return (report, Some(session), subscriptions);
    }

    let started = Instant::now();
    let ack = match session.subscribe(&topic, timeout).await {
        Ok(ack) => ack,
        Err(err) => return (dropped(err, "the SUBSCRIBE"), None, subscriptions),
    };
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let code = first_code(&ack);
    if code >= 0x80 {
        let report = StepReport::fail(
            STEP,
            NAME,
            format!("\"{topic}\" refused: SUBACK 0x{code:02X} {} in {ms:.1} ms", reason_name(code)),
            DoctorText::SubscriptionRefused {
                filter: &topic,
                code,
                name: reason_name(code),
            }
            .advice(),
            common::exit::AUTH,
        )
        .with_data(json!({ "topic": { "filter": topic, "reason_code": code, "reason": reason_name(code) } }));
        return (report, Some(session), subscriptions);
    }
    subscriptions.topic_granted = true;
    subscriptions.granted.push(topic.clone());
    let mut summary = format!("\"{topic}\" granted QoS {code} in {ms:.1} ms");
    let mut warnings = Vec::new();
    if code == 0 {
        warnings.push(DoctorText::GrantedQos0 { filter: &topic }.advice());
    }

    let group = format!("doctor{}", std::process::id());
    let shared_filter = format!("$share/{group}/{topic}");
    let mut shared_json = json!(null);
    let mut shared_failed = false;
    if capabilities.shared_subscriptions {
        let started = Instant::now();
        match session.subscribe(&shared_filter, timeout).await {
            Ok(ack) => {
                let ms = started.elapsed().as_secs_f64() * 1000.0;
                let code = first_code(&ack);
                shared_json = json!({ "filter": shared_filter, "reason_code": code, "reason": reason_name(code) });
                if code >= 0x80 {
                    summary.push_str(&format!(
                        "; \"{shared_filter}\" refused: SUBACK 0x{code:02X} {}",
                        reason_name(code)
                    ));
                    shared_failed = true;
                    warnings.push(
                        DoctorText::SharedRefused {
                            code,
                            name: reason_name(code),
                        }
                        .advice(),
                    );
                } else {
                    subscriptions.granted.push(shared_filter.clone());
                    summary.push_str(&format!(
                        "; \"{shared_filter}\" granted QoS {code} in {ms:.1} ms"
                    ));
                }
            }
            Err(err) => {
                let mut report = dropped(err, "the shared SUBSCRIBE");
                report.summary = format!("{summary}; then {}", report.summary);
                return (report, None, subscriptions);
            }
        }
    } else {
        summary.push_str("; $share not tried: the broker announced no shared subscriptions");
        shared_failed = true;
        warnings.push(DoctorText::SharedUnavailable.advice());
    }

    let data = json!({
        "topic": { "filter": topic, "reason_code": code, "reason": reason_name(code) },
        "shared": shared_json,
        "shared_available": capabilities.shared_subscriptions,
    });
    let mut report = if shared_failed && consumer_uses_share {
        // The credentials themselves ask for a shared subscription: without it nothing works.
        let mut warnings = warnings.into_iter();
        let first = warnings
            .next()
            .unwrap_or_else(|| DoctorText::SharedUnavailable.advice());
        let mut report = StepReport::fail(STEP, NAME, summary, first, common::exit::AUTH);
        for advice in warnings {
            report = report.with_advice(advice);
        }
        report
    } else {
        let mut report = StepReport::pass(STEP, NAME, summary);
        for advice in warnings {
            report.add_warning(advice);
        }
        report
    };
    report = report.with_data(data).with_detail(
        "a granted SUBACK does not prove the ACL allows the topic (Mosquitto grants, then \
         delivers nothing): step 9 checks that messages arrive",
    );
    (report, Some(session), subscriptions)
}
