//! Step 5: MQTT v5 CONNECT — the CONNACK reason code *and* reason string, and the broker's
//! capabilities from the CONNACK properties, with the specification's defaults applied where a
//! property is absent (MQTT 5.0, section 3.2.2.3).
//!
//! Why the defaults matter: a broker that sends no "Shared Subscription Available" property
//! supports shared subscriptions; one that sends no "Maximum QoS" supports QoS 2. Printing only
//! what is on the wire would read as "unknown" to most people.

use std::time::{Duration, Instant};

use common::{BrokerTarget, FailureKind};
use mqtt5_protocol::packet::connack::ConnAckPacket;
use mqtt5_protocol::PropertyId;
use serde_json::{json, Value};

use crate::client::{
    self, property_string, property_u16, property_u32, property_u8, reason_name, ConnectOutcome,
    MqttSession, KEEP_ALIVE_SECS, SESSION_EXPIRY_SECS,
};
use crate::mqtt::{RecvError, Transport};
use crate::report::StepReport;
use crate::texts::{Advice, DoctorText};

const STEP: u8 = 5;
const NAME: &str = "connect";

/// What the broker allows, after the defaults.
#[derive(Debug, Clone)]
pub struct Capabilities {
    /// Maximum QoS (default 2).
    pub maximum_qos: u8,
    /// Wildcard subscriptions available (default true).
    pub wildcard_subscriptions: bool,
    /// Shared subscriptions available (default true).
    pub shared_subscriptions: bool,
    /// Session expiry granted (default: what we asked for).
    pub session_expiry: u32,
    /// Lines for the report, and the JSON form.
    lines: Vec<String>,
    json: Value,
}

impl Capabilities {
    fn from_connack(connack: &ConnAckPacket) -> Capabilities {
        let props = &connack.properties;
        let mut lines = Vec::new();
        let mut json = serde_json::Map::new();
        let mut show = |name: &str, value: Value, text: String, from_broker: bool| {
            let origin = if from_broker {
                ""
            } else {
                " (not sent: spec default)"
            };
            lines.push(format!("{name}: {text}{origin}"));
            json.insert(
                name.replace(' ', "_"),
                json!({ "value": value, "from_broker": from_broker }),
            );
        };
        let flag = |id| property_u8(props, id).map(|v| v != 0);

        let maximum_qos = property_u8(props, PropertyId::MaximumQoS);
        let qos = maximum_qos.unwrap_or(2);
        show(
            "maximum QoS",
            json!(qos),
            qos.to_string(),
            maximum_qos.is_some(),
        );
        let retain = flag(PropertyId::RetainAvailable);
        let retain_available = retain.unwrap_or(true);
        show(
            "retain available",
            json!(retain_available),
            yes_no(retain_available),
            retain.is_some(),
        );
        let wildcard = flag(PropertyId::WildcardSubscriptionAvailable);
        let wildcard_subscriptions = wildcard.unwrap_or(true);
        show(
            "wildcard subscriptions",
            json!(wildcard_subscriptions),
            yes_no(wildcard_subscriptions),
            wildcard.is_some(),
        );
        let shared = flag(PropertyId::SharedSubscriptionAvailable);
        let shared_subscriptions = shared.unwrap_or(true);
        show(
            "shared subscriptions",
            json!(shared_subscriptions),
            yes_no(shared_subscriptions),
            shared.is_some(),
        );
        let ids = flag(PropertyId::SubscriptionIdentifierAvailable);
        let subscription_identifiers = ids.unwrap_or(true);
        show(
            "subscription identifiers",
            json!(subscription_identifiers),
            yes_no(subscription_identifiers),
            ids.is_some(),
        );
        let receive_maximum = property_u16(props, PropertyId::ReceiveMaximum);
        let receive = receive_maximum.unwrap_or(65_535);
        show(
            "receive maximum",
            json!(receive),
            receive.to_string(),
            receive_maximum.is_some(),
        );
        let packet_size = property_u32(props, PropertyId::MaximumPacketSize);
        show(
            "maximum packet size",
            json!(packet_size),
            packet_size.map_or_else(|| "no limit".to_owned(), |s| format!("{s} bytes")),
            packet_size.is_some(),
        );
        let alias = property_u16(props, PropertyId::TopicAliasMaximum);
        let alias_max = alias.unwrap_or(0);
        show(
            "topic alias maximum",
            json!(alias_max),
            alias_max.to_string(),
            alias.is_some(),
        );
        let keep_alive = property_u16(props, PropertyId::ServerKeepAlive);
        let keep = keep_alive.unwrap_or(KEEP_ALIVE_SECS);
        show(
            "server keep alive",
            json!(keep),
            format!("{keep} s"),
            keep_alive.is_some(),
        );
        let expiry = property_u32(props, PropertyId::SessionExpiryInterval);
        let session_expiry = expiry.unwrap_or(SESSION_EXPIRY_SECS);
        show(
            "session expiry",
            json!(session_expiry),
            format!("{session_expiry} s"),
            expiry.is_some(),
        );
        let assigned = property_string(props, PropertyId::AssignedClientIdentifier);
        if let Some(id) = &assigned {
            show("assigned client id", json!(id), id.clone(), true);
        }
        Capabilities {
            maximum_qos: qos,
            wildcard_subscriptions,
            shared_subscriptions,
            session_expiry,
            lines,
            json: Value::Object(json),
        }
    }
}

fn yes_no(value: bool) -> String {
    if value { "yes" } else { "no" }.to_owned()
}

/// The category of common's texts a refused CONNACK falls in.
fn failure_kind(code: u8) -> Option<FailureKind> {
    match code {
        0x86 => Some(FailureKind::BadCredentials),
        0x87 => Some(FailureKind::NotAuthorized),
        0x85 | 0x8A => Some(FailureKind::Rejected),
        0x88 | 0x89 | 0x97 | 0x9F => Some(FailureKind::ServerUnavailable),
        _ => None,
    }
}

/// Connects (clean start, short session expiry); on success the session for the next steps.
pub async fn check(
    target: &BrokerTarget,
    transport: Box<dyn Transport>,
    timeout: Duration,
) -> (StepReport, Option<(MqttSession, Capabilities)>) {
    let started = Instant::now();
    let (outcome, session) =
        client::connect(transport, target, true, SESSION_EXPIRY_SECS, timeout).await;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let connack = match outcome {
        ConnectOutcome::ConnAck(connack) => connack,
        ConnectOutcome::V311(code) => {
            let report = StepReport::fail(
                STEP,
                NAME,
                format!("MQTT 3.1.1 CONNACK, return code {code}"),
                DoctorText::NotMqtt5 { code }.advice(),
                common::exit::FAILURE,
            );
            return (report, None);
        }
        ConnectOutcome::NoConnAck(RecvError::Timeout) => {
            let report = StepReport::fail(
                STEP,
                NAME,
                format!("no CONNACK within {} s", timeout.as_secs()),
                Advice::failure(FailureKind::Timeout, target),
                common::exit::NETWORK,
            );
            return (report, None);
        }
        ConnectOutcome::NoConnAck(err) => {
            let report = StepReport::fail(
                STEP,
                NAME,
                format!("connection closed without CONNACK after {ms:.1} ms"),
                DoctorText::NoConnack.advice(),
                common::exit::AUTH,
            )
            .with_library_error(err.to_string());
            return (report, None);
        }
        ConnectOutcome::Unexpected(what) => {
            let report = StepReport::fail(
                STEP,
                NAME,
                format!("the broker answered CONNECT with {what}"),
                DoctorText::NoConnack.advice(),
                common::exit::FAILURE,
            );
            return (report, None);
        }
    };
    let code = u8::from(connack.reason_code);
    let reason_string = property_string(&connack.properties, PropertyId::ReasonString);
    let said = reason_string.as_deref().map_or_else(
        || "no reason string".to_owned(),
        |s| format!("reason string \"{s}\""),
    );
    let Some(session) = session else {
        let advice = match failure_kind(code) {
            Some(kind) => Advice::failure(kind, target),
            None => DoctorText::ConnackRefused {
                code,
                name: reason_name(code),
            }
            .advice(),
        };
        let exit = failure_kind(code).map_or(common::exit::AUTH, FailureKind::exit_code);
        let report = StepReport::fail(
            STEP,
            NAME,
            format!(
                "CONNACK 0x{code:02X} {} ({said}) in {ms:.1} ms",
                reason_name(code)
            ),
            advice,
            exit,
        )
        .with_data(json!({
            "reason_code": code,
            "reason": reason_name(code),
            "reason_string": reason_string,
            "elapsed_ms": ms,
        }));
        return (report, None);
    };
    let capabilities = Capabilities::from_connack(&connack);
    let mut report = StepReport::pass(
        STEP,
        NAME,
        format!(
            "CONNACK 0x{code:02X} {} in {ms:.1} ms as \"{}\" (MQTT v5, {said}); shared \
             subscriptions {}, maximum QoS {}",
            reason_name(code),
            target.client_id,
            if capabilities.shared_subscriptions {
                "available"
            } else {
                "NOT available"
            },
            capabilities.maximum_qos,
        ),
    )
    .with_data(json!({
        "reason_code": code,
        "reason": reason_name(code),
        "reason_string": reason_string,
        "elapsed_ms": ms,
        "session_present": connack.session_present,
        "capabilities": capabilities.json.clone(),
    }));
    for line in &capabilities.lines {
        report = report.with_detail(line.clone());
    }
    if capabilities.maximum_qos == 0 {
        report.add_warning(DoctorText::MaximumQos0.advice());
    }
    if capabilities.session_expiry < SESSION_EXPIRY_SECS {
        report.add_warning(
            DoctorText::SessionExpiryReduced {
                asked: SESSION_EXPIRY_SECS,
                granted: capabilities.session_expiry,
            }
            .advice(),
        );
    }
    (report, Some((session, capabilities)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mqtt5_protocol::ReasonCode;

    #[test]
    fn absent_properties_get_the_spec_defaults() {
        let caps = Capabilities::from_connack(&ConnAckPacket::new(false, ReasonCode::Success));
        assert_eq!(caps.maximum_qos, 2);
        assert!(caps.shared_subscriptions);
        assert!(caps.wildcard_subscriptions);
        assert_eq!(caps.session_expiry, SESSION_EXPIRY_SECS);
        assert_eq!(
            caps.json["receive_maximum"],
            json!({"value": 65_535, "from_broker": false})
        );
        assert_eq!(
            caps.json["topic_alias_maximum"],
            json!({"value": 0, "from_broker": false})
        );
        assert!(caps.lines.iter().all(|line| line.contains("spec default")));
    }

    #[test]
    fn properties_sent_by_the_broker_win() {
        let connack = ConnAckPacket::new(false, ReasonCode::Success)
            .with_maximum_qos(1)
            .with_shared_subscription_available(false)
            .with_session_expiry_interval(10)
            .with_receive_maximum(20);
        let caps = Capabilities::from_connack(&connack);
        assert_eq!(caps.maximum_qos, 1);
        assert!(!caps.shared_subscriptions);
        assert_eq!(caps.session_expiry, 10);
        assert_eq!(
            caps.json["receive_maximum"],
            json!({"value": 20, "from_broker": true})
        );
        assert!(caps.lines.contains(&"shared subscriptions: no".to_owned()));
    }
}
