//! Every piece of advice doctor prints, with a stable id, in one place.
//!
//! Why a table: the troubleshooting pages of the book are written from the same words, and a page
//! can link an id (`failure-unknown-issuer`, `doctor-no-message`). Failures that every example
//! can meet (an unknown CA, a wrong password…) use the texts of [`common::failure`] verbatim, so
//! doctor, the examples and the book say the same thing; the texts only doctor needs are in
//! [`DoctorText`] below.

use common::{BrokerTarget, ConnectFailure, FailureKind};
use serde::Serialize;

/// One paragraph of advice: what is wrong and what to do, and an id to link it by.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Advice {
    /// Stable id: `failure-<kind>` for [`FailureKind`] texts, `doctor-<name>` for [`DoctorText`],
    /// `credentials`, `tls-setup` or `plaintext-refused` for errors of `common` that carry their own text.
    pub id: String,
    /// The paragraph.
    pub text: String,
}

impl Advice {
    /// The text every example prints for this failure (see [`ConnectFailure::new`]).
    pub fn failure(kind: FailureKind, target: &BrokerTarget) -> Advice {
        Advice {
            id: format!("failure-{}", kebab(&format!("{kind:?}"))),
            text: ConnectFailure::new(kind, target, "").message,
        }
    }

    /// An error of `common` whose `Display` is already a paragraph with the fix
    /// (credentials, CA file, plaintext refused).
    pub fn from_error(id: &str, err: &dyn std::error::Error) -> Advice {
        Advice {
            id: id.to_owned(),
            text: err.to_string(),
        }
    }
}

/// `UnknownIssuer` → `unknown-issuer`.
fn kebab(name: &str) -> String {
    let mut out = String::new();
    for (i, ch) in name.chars().enumerate() {
        if ch.is_ascii_uppercase() {
            if i > 0 {
                out.push('-');
            }
            out.push(ch.to_ascii_lowercase());
        } else {
            out.push(ch);
        }
    }
    out
}

/// The advice only doctor gives. Each variant carries what its sentence needs.
#[derive(Clone, Debug)]
pub enum DoctorText<'a> {
    /// Neither `--creds`, `MQTT_CREDS` nor `./creds.json`.
    NoCredentials,
    /// The topic is outside `subscribeAcl`, or the file is readable by others (common's warning).
    CredentialsWarning(&'a str),
    /// Some of the host's addresses failed while another worked.
    SomeAddressesFail { failed: &'a str },
    /// No route to the broker's network.
    Unreachable { address: &'a str },
    /// The certificate expires within the warning window.
    ExpiresSoon { days: i64 },
    /// The certificate is not valid yet: the clock is probably behind.
    ClockBehind { not_before: &'a str, now: &'a str },
    /// The port answered a plaintext CONNECT: proof it is a plaintext MQTT port.
    PlaintextMqttPort { address: &'a str },
    /// `--insecure-plaintext` and a plaintext port: nothing is protected.
    PlaintextAllowed,
    /// The broker closed the connection without a CONNACK.
    NoConnack,
    /// The broker answered with an MQTT 3.1.1 CONNACK.
    NotMqtt5 { code: u8 },
    /// A refusal that none of common's categories covers.
    ConnackRefused { code: u8, name: &'a str },
    /// The broker grants at most QoS 0.
    MaximumQos0,
    /// The broker granted QoS 0 for our QoS 1 subscription.
    GrantedQos0 { filter: &'a str },
    /// SUBACK with a failure code for the consumer's topic.
    SubscriptionRefused {
        filter: &'a str,
        code: u8,
        name: &'a str,
    },
    /// The CONNACK says shared subscriptions are unavailable.
    SharedUnavailable,
    /// SUBACK refused `$share/…`.
    SharedRefused { code: u8, name: &'a str },
    /// The CONNACK says wildcard subscriptions are unavailable and the topic has one.
    WildcardUnavailable { topic: &'a str },
    /// Reconnecting within the session expiry did not find the session.
    SessionNotKept { expiry: u32 },
    /// The broker shortened the session expiry.
    SessionExpiryReduced { asked: u32, granted: u32 },
    /// The takeover probe's first connection stayed open.
    TakeoverNotDetected,
    /// Nothing arrived within `--wait`.
    NoMessage { wait_secs: u64, topic: &'a str },
    /// A step could not finish because the connection dropped.
    ConnectionDropped { during: &'a str },
    /// Doctor could not end its own session.
    SessionLingers { client_id: &'a str, expiry: u32 },
}

impl DoctorText<'_> {
    /// The id and the paragraph.
    pub fn advice(&self) -> Advice {
        let (id, text) = match self {
            DoctorText::NoCredentials => (
                "no-credentials",
                "no credentials file: pass --creds creds.json (or set MQTT_CREDS). Get the file \
                 from the Airfinder UI (Configuration → Subscriptions → \"Copy All Fields\") or \
                 with `cargo run -p fetch-creds`."
                    .to_owned(),
            ),
            DoctorText::CredentialsWarning(warning) => ("credentials-warning", format!("{warning}.")),
            DoctorText::SomeAddressesFail { failed } => (
                "some-addresses-fail",
                format!(
                    "the host name resolves to addresses that do not accept connections ({failed}). \
                     A client that tries them first loses time or gives up, depending on its \
                     library. If this machine has no IPv6 route, that is expected; otherwise ask \
                     the broker's operator to fix the DNS records."
                ),
            ),
            DoctorText::Unreachable { address } => (
                "unreachable",
                format!(
                    "this machine has no route to {address} (host or network unreachable). Check \
                     the network, VPN and routing (`ip route`); an IPv6-only address without IPv6 \
                     connectivity looks like this too."
                ),
            ),
            DoctorText::ExpiresSoon { days } => (
                "expires-soon",
                format!(
                    "the broker's certificate expires in {days} day(s). Nothing to do on your side \
                     if the operator renews it in time; if it lapses every client will refuse the \
                     broker. Tell the broker's operator."
                ),
            ),
            DoctorText::ClockBehind { not_before, now } => (
                "clock-behind",
                format!(
                    "the certificate only becomes valid on {not_before}, but this machine's clock \
                     says {now}: the clock is probably behind. Fix it (`timedatectl`, NTP) before \
                     anything else."
                ),
            ),
            DoctorText::PlaintextMqttPort { address } => (
                "plaintext-mqtt-port",
                format!(
                    "{address} answered a plaintext MQTT CONNECT (sent without credentials) with a \
                     CONNACK: it is a plaintext MQTT port, not MQTT over TLS."
                ),
            ),
            DoctorText::PlaintextAllowed => (
                "plaintext-allowed",
                "--insecure-plaintext: no TLS, so the password and every event cross the network \
                 unencrypted and nothing proves the broker is who it claims to be. Use port 8883 \
                 with TLS for anything but a private test network."
                    .to_owned(),
            ),
            DoctorText::NoConnack => (
                "no-connack",
                "the broker closed the connection without answering our CONNECT. Some brokers \
                 (rumqttd) do this instead of sending CONNACK \"not authorized\": check the user \
                 name and password in creds.json; also check that this is an MQTT port."
                    .to_owned(),
            ),
            DoctorText::NotMqtt5 { code } => (
                "not-mqtt5",
                format!(
                    "the broker answered with an MQTT 3.1.1 CONNACK (return code {code}): it does \
                     not speak MQTT v5, which every example here uses. Link Labs' broker speaks v5; \
                     check the host and port in creds.json."
                ),
            ),
            DoctorText::ConnackRefused { code, name } => (
                "connack-refused",
                format!(
                    "the broker refused the connection with reason 0x{code:02X} ({name}). See the \
                     reason string above, if any, and the MQTT 5 specification's CONNACK reason \
                     codes."
                ),
            ),
            DoctorText::MaximumQos0 => (
                "maximum-qos-0",
                "the broker grants at most QoS 0: messages are delivered at most once and can be \
                 lost without notice, and there is nothing to acknowledge. The QoS 1 examples \
                 (ack after processing, redelivery) cannot work against it."
                    .to_owned(),
            ),
            DoctorText::GrantedQos0 { filter } => (
                "granted-qos-0",
                format!(
                    "the broker granted only QoS 0 for \"{filter}\": messages may be lost without \
                     notice. Ask the broker's operator for QoS 1 on this topic."
                ),
            ),
            DoctorText::SubscriptionRefused { filter, code, name } => (
                "subscription-refused",
                format!(
                    "the broker refused the subscription to \"{filter}\" (SUBACK 0x{code:02X} \
                     {name}). The topic must be inside the credentials' subscribeAcl; use the \
                     \"topic\" from creds.json as it is (for shared subscriptions: \
                     $share/<group>/<that topic>)."
                ),
            ),
            DoctorText::SharedUnavailable => (
                "shared-unavailable",
                "the broker says shared subscriptions are not available (CONNACK \"Shared \
                 Subscription Available\" = 0), so $share/<group>/<topic> was not tried: a single \
                 consumer works, but `shared-subscription` (load spread over processes) does not. \
                 Run one consumer, or ask the broker's operator to enable shared subscriptions."
                    .to_owned(),
            ),
            DoctorText::SharedRefused { code, name } => (
                "shared-refused",
                format!(
                    "the broker refused the shared subscription (SUBACK 0x{code:02X} {name}): a \
                     single consumer works, but `shared-subscription` (load spread over \
                     processes) does not. Run one consumer, or ask the broker's operator to allow \
                     $share/<group>/<topic> for this user."
                ),
            ),
            DoctorText::WildcardUnavailable { topic } => (
                "wildcard-unavailable",
                format!(
                    "the broker says wildcard subscriptions are not available, and the topic \
                     \"{topic}\" contains + or #. Subscribe to exact topics instead."
                ),
            ),
            DoctorText::SessionNotKept { expiry } => (
                "session-not-kept",
                format!(
                    "the broker did not keep our session across a reconnect (asked for {expiry} s, \
                     reconnected within it: session present = false). Events published while a \
                     consumer is down are lost, so `persistent-session` cannot get you the backlog \
                     against this broker."
                ),
            ),
            DoctorText::SessionExpiryReduced { asked, granted } => (
                "session-expiry-reduced",
                format!(
                    "the broker keeps sessions for at most {granted} s (we asked for {asked} s): a \
                     consumer that is down longer than that loses its backlog."
                ),
            ),
            DoctorText::TakeoverNotDetected => (
                "takeover-not-detected",
                "the first connection was still open after a second one connected with the same \
                 client id. The broker does not enforce one connection per client id, so two \
                 consumers with one id would both receive; still, give each process its own id."
                    .to_owned(),
            ),
            DoctorText::NoMessage { wait_secs, topic } => (
                "no-message",
                format!(
                    "no message arrived on \"{topic}\" within {wait_secs} s although the \
                     subscription was granted. Either nothing was published (no tag moved; try \
                     again with a longer --wait), or the broker filters the topic silently: \
                     brokers such as Mosquitto grant a SUBSCRIBE outside the user's ACL and then \
                     deliver nothing, so a granted SUBACK does not prove access. Check that \
                     \"topic\" in creds.json is inside subscribeAcl and matches the topics your \
                     organization publishes."
                ),
            ),
            DoctorText::ConnectionDropped { during } => (
                "connection-dropped",
                format!(
                    "the broker closed the connection during {during}. Run doctor again; if it \
                     repeats, another process may be using client id of doctor (--client-id), or \
                     the broker disconnects clients that break its limits."
                ),
            ),
            DoctorText::SessionLingers { client_id, expiry } => (
                "session-lingers",
                format!(
                    "doctor's session \"{client_id}\" may stay on the broker for up to {expiry} s \
                     and then expires by itself; no consumer uses this client id, so nothing \
                     needs doing."
                ),
            ),
        };
        Advice {
            id: format!("doctor-{id}"),
            text,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::kebab;

    #[test]
    fn failure_ids_are_kebab_case() {
        assert_eq!(kebab("UnknownIssuer"), "unknown-issuer");
        assert_eq!(kebab("NotTls"), "not-tls");
    }
}
