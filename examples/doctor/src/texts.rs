//! Every piece of advice doctor prints, with the troubleshooting entry it belongs to.
//!
//! Why through the catalogue: the book's troubleshooting page (`docs/src/troubleshooting.md`) is
//! generated from `common::catalogue`, so an advice's id is an entry's id and a link to that page
//! (`docs/src/troubleshooting.md#doctor-no-message`). Failures that every example can meet (an
//! unknown CA, a wrong password…) use the texts of [`common::failure`] verbatim and link the same
//! entry the examples do; the texts only doctor needs are in [`DoctorText`] below, and
//! [`DoctorText::catalogue_key`] maps each to its entry with an exhaustive `match`, so a new
//! variant that is not catalogued does not compile. The unit tests below check that every text is
//! found by the catalogue's [`lookup`](common::catalogue::lookup) by its own words.

use common::catalogue::{self, Key};
use common::cli::PlaintextRefused;
use common::credentials::{CredentialsError, CredentialsWarning};
use common::{BrokerTarget, ConnectFailure, FailureKind, TlsError};
use serde::Serialize;

/// The book's troubleshooting page, relative to the repository root.
pub const TROUBLESHOOTING_PAGE: &str = "docs/src/troubleshooting.md";

/// One paragraph of advice: what is wrong and what to do, and the entry to read more in.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Advice {
    /// The troubleshooting entry's id, also its anchor on the page (`not-authorized`,
    /// `doctor-no-message`).
    pub id: String,
    /// The paragraph.
    pub text: String,
    /// The entry's link: `docs/src/troubleshooting.md#<id>`.
    pub see: String,
}

impl Advice {
    /// The advice for a catalogued failure, with its text.
    pub fn new(key: Key, text: String) -> Advice {
        let id = key.entry().id;
        Advice {
            id: id.to_owned(),
            text,
            see: format!("{TROUBLESHOOTING_PAGE}#{id}"),
        }
    }

    /// The text every example prints for this failure (see [`ConnectFailure::new`]), and the
    /// entry the examples link for it.
    pub fn failure(kind: FailureKind, target: &BrokerTarget) -> Advice {
        let failure = ConnectFailure::new(kind, target, "");
        Advice::new(
            catalogue::key_for_connect_failure(&failure),
            failure.message,
        )
    }

    /// A credentials error of `common`: its `Display` is already a paragraph with the fix.
    pub fn credentials(err: &CredentialsError) -> Advice {
        Advice::new(catalogue::key_for_credentials(err), err.to_string())
    }

    /// A TLS set-up error of `common` (CA file, system roots).
    pub fn tls_setup(err: &TlsError) -> Advice {
        Advice::new(catalogue::key_for_tls(err), err.to_string())
    }

    /// Plaintext MQTT asked for without `--insecure-plaintext`.
    pub fn plaintext_refused(err: &PlaintextRefused) -> Advice {
        Advice::new(Key::PlaintextRefused, err.to_string())
    }
}

/// The advice only doctor gives. Each variant carries what its sentence needs.
#[derive(Clone, Debug)]
pub enum DoctorText<'a> {
    /// Neither `--creds`, `MQTT_CREDS` nor `./creds.json`.
    NoCredentials,
    /// The topic is outside `subscribeAcl`, or the file is readable by others: common's warning,
    /// whose entries every example links too.
    CredentialsWarning(&'a CredentialsWarning),
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
    /// The CA certificates loaded, but rustls cannot build a verifier from them.
    TrustStoreUnusable { trust: &'a str, error: &'a str },
    /// rustls refused its own default protocol versions.
    TlsDefaultsRefused { error: &'a str },
}

impl DoctorText<'_> {
    /// The troubleshooting entry this text belongs to. Exhaustive on purpose: a new variant
    /// must get its entry in `common/src/catalogue.rs` (section `Doctor`) before it compiles.
    pub fn catalogue_key(&self) -> Key {
        match self {
            DoctorText::NoCredentials => Key::DoctorNoCredentials,
            DoctorText::CredentialsWarning(warning) => catalogue::key_for_warning(warning),
            DoctorText::SomeAddressesFail { .. } => Key::DoctorSomeAddressesFail,
            DoctorText::Unreachable { .. } => Key::DoctorUnreachable,
            DoctorText::ExpiresSoon { .. } => Key::DoctorExpiresSoon,
            DoctorText::ClockBehind { .. } => Key::DoctorClockBehind,
            DoctorText::PlaintextMqttPort { .. } => Key::DoctorPlaintextMqttPort,
            DoctorText::PlaintextAllowed => Key::DoctorPlaintextAllowed,
            DoctorText::NoConnack => Key::DoctorNoConnack,
            DoctorText::NotMqtt5 { .. } => Key::DoctorNotMqtt5,
            DoctorText::ConnackRefused { .. } => Key::DoctorConnackRefused,
            DoctorText::MaximumQos0 => Key::DoctorMaximumQos0,
            DoctorText::GrantedQos0 { .. } => Key::DoctorGrantedQos0,
            DoctorText::SubscriptionRefused { .. } => Key::DoctorSubscriptionRefused,
            DoctorText::SharedUnavailable => Key::DoctorSharedUnavailable,
            DoctorText::SharedRefused { .. } => Key::DoctorSharedRefused,
            DoctorText::WildcardUnavailable { .. } => Key::DoctorWildcardUnavailable,
            DoctorText::SessionNotKept { .. } => Key::DoctorSessionNotKept,
            DoctorText::SessionExpiryReduced { .. } => Key::DoctorSessionExpiryReduced,
            DoctorText::TakeoverNotDetected => Key::DoctorTakeoverNotDetected,
            DoctorText::NoMessage { .. } => Key::DoctorNoMessage,
            DoctorText::ConnectionDropped { .. } => Key::DoctorConnectionDropped,
            DoctorText::SessionLingers { .. } => Key::DoctorSessionLingers,
            DoctorText::TrustStoreUnusable { .. } => Key::DoctorTrustStoreUnusable,
            DoctorText::TlsDefaultsRefused { .. } => Key::DoctorTlsDefaultsRefused,
        }
    }

    /// The paragraph: what is wrong and what to do.
    pub fn text(&self) -> String {
        match self {
            DoctorText::NoCredentials => "no credentials file: pass --creds creds.json (or set MQTT_CREDS). Get the file \
                 from the Airfinder UI (Configuration → Subscriptions → \"Copy All Fields\") or \
                 with `cargo run -p fetch-creds`."
                    .to_owned(),
            DoctorText::CredentialsWarning(warning) => format!("{warning}."),
            DoctorText::SomeAddressesFail { failed } => format!(
                    "the host name resolves to addresses that do not accept connections ({failed}). \
                     A client that tries them first loses time or gives up, depending on its \
                     library. If this machine has no IPv6 route, that is expected; otherwise ask \
                     the broker's operator to fix the DNS records."
                ),
            DoctorText::Unreachable { address } => format!(
                    "this machine has no route to {address} (host or network unreachable). Check \
                     the network, VPN and routing (`ip route`); an IPv6-only address without IPv6 \
                     connectivity looks like this too."
                ),
            DoctorText::ExpiresSoon { days } => format!(
                    "the broker's certificate expires in {days} day(s). Nothing to do on your side \
                     if the operator renews it in time; if it lapses every client will refuse the \
                     broker. Tell the broker's operator."
                ),
            DoctorText::ClockBehind { not_before, now } => format!(
                    "the certificate only becomes valid on {not_before}, but this machine's clock \
                     says {now}: the clock is probably behind. Fix it (`timedatectl`, NTP) before \
                     anything else."
                ),
            DoctorText::PlaintextMqttPort { address } => format!(
                    "{address} answered a plaintext MQTT CONNECT (sent without credentials) with a \
                     CONNACK: it is a plaintext MQTT port, not MQTT over TLS."
                ),
            DoctorText::PlaintextAllowed => "--insecure-plaintext: no TLS, so the password and every event cross the network \
                 unencrypted and nothing proves the broker is who it claims to be. Use port 8883 \
                 with TLS for anything but a private test network."
                    .to_owned(),
            DoctorText::NoConnack => "the broker closed the connection without answering our CONNECT. Some brokers \
                 (rumqttd) do this instead of sending CONNACK \"not authorized\": check the user \
                 name and password in creds.json; also check that this is an MQTT port."
                    .to_owned(),
            DoctorText::NotMqtt5 { code } => format!(
                    "the broker answered with an MQTT 3.1.1 CONNACK (return code {code}): it does \
                     not speak MQTT v5, which every example here uses. Link Labs' broker speaks v5; \
                     check the host and port in creds.json."
                ),
            DoctorText::ConnackRefused { code, name } => format!(
                    "the broker refused the connection with reason 0x{code:02X} ({name}). See the \
                     reason string above, if any, and the MQTT 5 specification's CONNACK reason \
                     codes."
                ),
            DoctorText::MaximumQos0 => "the broker grants at most QoS 0: messages are delivered at most once and can be \
                 lost without notice, and there is nothing to acknowledge. The QoS 1 examples \
                 (ack after processing, redelivery) cannot work against it."
                    .to_owned(),
            DoctorText::GrantedQos0 { filter } => format!(
                    "the broker granted only QoS 0 for \"{filter}\": messages may be lost without \
                     notice. Ask the broker's operator for QoS 1 on this topic."
                ),
            DoctorText::SubscriptionRefused { filter, code, name } => format!(
                    "the broker refused the subscription to \"{filter}\" (SUBACK 0x{code:02X} \
                     {name}). The topic must be inside the credentials' subscribeAcl; use the \
                     \"topic\" from creds.json as it is (for shared subscriptions: \
                     $share/<group>/<that topic>)."
                ),
            DoctorText::SharedUnavailable => "the broker says shared subscriptions are not available (CONNACK \"Shared \
                 Subscription Available\" = 0), so $share/<group>/<topic> was not tried: a single \
                 consumer works, but `shared-subscription` (load spread over processes) does not. \
                 Run one consumer, or ask the broker's operator to enable shared subscriptions."
                    .to_owned(),
            DoctorText::SharedRefused { code, name } => format!(
                    "the broker refused the shared subscription (SUBACK 0x{code:02X} {name}): a \
                     single consumer works, but `shared-subscription` (load spread over \
                     processes) does not. Run one consumer, or ask the broker's operator to allow \
                     $share/<group>/<topic> for this user."
                ),
            DoctorText::WildcardUnavailable { topic } => format!(
                    "the broker says wildcard subscriptions are not available, and the topic \
                     \"{topic}\" contains + or #. Subscribe to exact topics instead."
                ),
            DoctorText::SessionNotKept { expiry } => format!(
                    "the broker did not keep our session across a reconnect (asked for {expiry} s, \
                     reconnected within it: session present = false). Events published while a \
                     consumer is down are lost, so `persistent-session` cannot get you the backlog \
                     against this broker."
                ),
            DoctorText::SessionExpiryReduced { asked, granted } => format!(
                    "the broker keeps sessions for at most {granted} s (we asked for {asked} s): a \
                     consumer that is down longer than that loses its backlog."
                ),
            DoctorText::TakeoverNotDetected => "the first connection was still open after a second one connected with the same \
                 client id. The broker does not enforce one connection per client id, so two \
                 consumers with one id would both receive; still, give each process its own id."
                    .to_owned(),
            DoctorText::NoMessage { wait_secs, topic } => format!(
                    "no message arrived on \"{topic}\" within {wait_secs} s although the \
                     subscription was granted. Either nothing was published (no tag moved; try \
                     again with a longer --wait), or the broker filters the topic silently: \
                     brokers such as Mosquitto grant a SUBSCRIBE outside the user's ACL and then \
                     deliver nothing, so a granted SUBACK does not prove access. Check that \
                     \"topic\" in creds.json is inside subscribeAcl and matches the topics your \
                     organization publishes."
                ),
            DoctorText::ConnectionDropped { during } => format!(
                    "the broker closed the connection during {during}. Run doctor again; if it \
                     repeats, another process may be using client id of doctor (--client-id), or \
                     the broker disconnects clients that break its limits."
                ),
            DoctorText::SessionLingers { client_id, expiry } => format!(
                    "doctor's session \"{client_id}\" may stay on the broker for up to {expiry} s \
                     and then expires by itself; no consumer uses this client id, so nothing \
                     needs doing."
                ),
            DoctorText::TrustStoreUnusable { trust, error } => {
                format!("{trust} cannot be used as a trust store: {error}.")
            }
            DoctorText::TlsDefaultsRefused { error } => {
                format!("rustls refused its own defaults: {error}.")
            }
        }
    }

    /// The paragraph with its troubleshooting entry.
    pub fn advice(&self) -> Advice {
        Advice::new(self.catalogue_key(), self.text())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::{Path, PathBuf};

    use common::catalogue::{lookup, Key, Section};
    use common::cli::PlaintextRefused;
    use common::credentials::{Credentials, CredentialsOrigin, CredentialsWarning};
    use common::{BrokerTarget, FailureKind, Security, TlsRoots};

    use super::{Advice, DoctorText, TROUBLESHOOTING_PAGE};

    fn target() -> BrokerTarget {
        let json = r#"{"host": "broker.example", "port": 8883, "clientId": "c1", "username": "u",
                       "password": "p", "topic": "t/#"}"#;
        let credentials = Credentials::from_json_str(json, CredentialsOrigin::Other("test".into()))
            .expect("valid test credentials");
        BrokerTarget {
            client_id: "c1-doctor".into(),
            credentials,
            security: Security::Tls(TlsRoots::from_ca_file(None)),
            creds_path: "creds.json".into(),
        }
    }

    /// One value of every variant, with values of the kinds doctor fills in. A variant missing
    /// here leaves its entry unreached (`every_doctor_entry_is_reached_by_a_text`).
    fn every_text<'a>(warnings: &'a [CredentialsWarning]) -> Vec<DoctorText<'a>> {
        let mut texts = vec![
            DoctorText::NoCredentials,
            DoctorText::SomeAddressesFail {
                failed: "[2001:db8::1]:8883 timed out",
            },
            DoctorText::Unreachable {
                address: "broker.example:8883",
            },
            DoctorText::ExpiresSoon { days: 4 },
            DoctorText::ClockBehind {
                not_before: "2027-01-01 00:00:00 UTC",
                now: "2026-11-29 08:30:00 UTC",
            },
            DoctorText::PlaintextMqttPort {
                address: "127.0.0.1:1883",
            },
            DoctorText::PlaintextAllowed,
            DoctorText::NoConnack,
            DoctorText::NotMqtt5 { code: 5 },
            DoctorText::ConnackRefused {
                code: 0x95,
                name: "Packet too large",
            },
            DoctorText::MaximumQos0,
            DoctorText::GrantedQos0 { filter: "t/#" },
            DoctorText::SubscriptionRefused {
                filter: "t/#",
                code: 0x87,
                name: "Not authorized",
            },
            DoctorText::SharedUnavailable,
            DoctorText::SharedRefused {
                code: 0x9E,
                name: "Shared subscriptions not supported",
            },
            DoctorText::WildcardUnavailable { topic: "t/#" },
            DoctorText::SessionNotKept { expiry: 60 },
            DoctorText::SessionExpiryReduced {
                asked: 60,
                granted: 10,
            },
            DoctorText::TakeoverNotDetected,
            DoctorText::NoMessage {
                wait_secs: 30,
                topic: "t/#",
            },
            DoctorText::ConnectionDropped {
                during: "the SUBSCRIBE",
            },
            DoctorText::SessionLingers {
                client_id: "c1-doctor",
                expiry: 60,
            },
            DoctorText::TrustStoreUnusable {
                trust: "the CA file ca.pem",
                error: "no root trust anchors",
            },
            DoctorText::TlsDefaultsRefused {
                error: "no protocol versions",
            },
        ];
        texts.extend(warnings.iter().map(DoctorText::CredentialsWarning));
        texts
    }

    fn warnings() -> Vec<CredentialsWarning> {
        vec![
            CredentialsWarning::ReadableByOthers {
                path: "creds.json".into(),
                mode: 0o100_644,
            },
            CredentialsWarning::TopicOutsideAcl {
                topic: "a/b".into(),
                acl: "c/#".into(),
            },
        ]
    }

    /// How the text report prints an advice (`Report::step_text`).
    fn printed(advice: &Advice) -> String {
        format!("      → {}", advice.text)
    }

    #[test]
    fn every_doctor_text_is_found_by_its_words_and_maps_to_its_own_entry() {
        let warnings = warnings();
        for text in every_text(&warnings) {
            let key = text.catalogue_key();
            let advice = text.advice();
            assert_eq!(
                lookup(&printed(&advice)),
                Some(key),
                "{text:?}: the catalogue entry {:?} (`{}`) does not match what doctor prints:\n  \
                 {}\nUpdate its `prints` in common/src/catalogue.rs, then UPDATE_BOOK=1 cargo \
                 test -p scenario-tests --test book.",
                key,
                key.entry().id,
                advice.text,
            );
            assert_eq!(advice.id, key.entry().id, "{text:?}");
            assert_eq!(
                advice.see,
                format!("{TROUBLESHOOTING_PAGE}#{}", advice.id),
                "{text:?}"
            );
            let entry = key.entry();
            if matches!(text, DoctorText::CredentialsWarning(_)) {
                // common's warning: the entry every example links too.
                assert_eq!(entry.section, Section::Credentials, "{text:?}");
            } else {
                assert_eq!(entry.section, Section::Doctor, "{text:?}");
                assert_eq!(entry.printed_by.split(' ').next(), Some("doctor"));
            }
        }
    }

    #[test]
    fn every_doctor_entry_is_reached_by_a_text() {
        let warnings = warnings();
        let reached: BTreeSet<Key> = every_text(&warnings)
            .iter()
            .map(DoctorText::catalogue_key)
            .collect();
        for key in Key::ALL {
            if key.entry().section == Section::Doctor {
                assert!(
                    reached.contains(key),
                    "no DoctorText maps to {key:?}: add a value of the new variant to `every_text`"
                );
            }
        }
    }

    /// Every advice doctor can attach to a step: its own texts, the examples' connection
    /// failures, and common's credentials, TLS set-up and plaintext errors.
    fn every_advice() -> Vec<Advice> {
        let warnings = warnings();
        let mut all: Vec<Advice> = every_text(&warnings)
            .iter()
            .map(DoctorText::advice)
            .collect();
        let target = target();
        let kinds = [
            FailureKind::UnknownIssuer,
            FailureKind::WrongHostName,
            FailureKind::CertificateExpired,
            FailureKind::BadCertificate,
            FailureKind::NotTls,
            FailureKind::PlaintextToTlsPort,
            FailureKind::BadCredentials,
            FailureKind::NotAuthorized,
            FailureKind::Rejected,
            FailureKind::DnsFailure,
            FailureKind::ConnectionRefused,
            FailureKind::Timeout,
            FailureKind::ConnectionLost,
            FailureKind::ServerUnavailable,
            FailureKind::ClientIdTaken,
            FailureKind::Other,
        ];
        all.extend(kinds.iter().map(|kind| Advice::failure(*kind, &target)));
        let missing =
            common::CredentialsFile::load(Path::new("/nonexistent/creds.json"), "--creds")
                .expect_err("no such file");
        all.push(Advice::credentials(&missing));
        let no_ca = TlsRoots::from_ca_file(Some(Path::new("/nonexistent/ca.pem")))
            .rustls_root_store()
            .expect_err("no such CA file");
        all.push(Advice::tls_setup(&no_ca));
        all.push(Advice::plaintext_refused(&PlaintextRefused {
            origin: "creds.json".into(),
            why: "port 1883".into(),
        }));
        all
    }

    #[test]
    fn every_id_doctor_can_emit_is_an_entry_on_the_generated_page() {
        let page_path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(TROUBLESHOOTING_PAGE);
        let page = std::fs::read_to_string(&page_path)
            .unwrap_or_else(|err| panic!("{}: {err}", page_path.display()));
        let mut ids: BTreeSet<String> = every_advice().into_iter().map(|a| a.id).collect();
        // Any credentials or TLS set-up error reaches doctor's step 1 or 4 (common's exhaustive
        // `key_for_credentials` / `key_for_tls`), so all of those entries must be there too.
        ids.extend(
            Key::ALL
                .iter()
                .map(|key| key.entry())
                .filter(|e| matches!(e.section, Section::Credentials | Section::TlsSetup))
                .map(|e| e.id.to_owned()),
        );
        for id in ids {
            assert!(
                page.contains(&format!("\n### {id}\n")),
                "doctor can emit advice `{id}`, but {} has no `### {id}` heading (anchor \
                 #{id}): regenerate it with UPDATE_BOOK=1 cargo test -p scenario-tests --test book",
                page_path.display()
            );
        }
    }
}
