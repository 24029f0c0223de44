//! Connection failures in plain words, and whether a retry can help.
//!
//! A TLS stack says `invalid peer certificate: UnknownIssuer`; a customer needs "the broker's
//! certificate is not signed by a CA you trust: pass --ca-file". And a consumer must know which
//! failures to retry (the broker restarting, a network blip) and which to stop on at once (a wrong
//! password will not get right by retrying — it only gets your IP banned). [`ConnectFailure`]
//! carries both answers; [`crate::supervisor`] acts on them.

use std::error::Error as StdError;
use std::fmt;
use std::io;

use crate::cli::{BrokerTarget, Security};
use crate::exit;

/// What went wrong, in the categories a user can act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// The broker's certificate chain does not lead to a trusted CA.
    UnknownIssuer,
    /// The certificate is valid but issued for another host name.
    WrongHostName,
    /// The certificate has expired (or is not valid yet: check the clock).
    CertificateExpired,
    /// Any other certificate problem.
    BadCertificate,
    /// The port answered, but not with TLS (often: a plaintext port such as 1883).
    NotTls,
    /// We spoke plaintext to a port that wants TLS.
    PlaintextToTlsPort,
    /// CONNACK "bad user name or password".
    BadCredentials,
    /// CONNACK "not authorized" (wrong password on many brokers, disabled user, ACL on client id).
    NotAuthorized,
    /// CONNACK "banned" or "client identifier not valid".
    Rejected,
    /// The host name does not resolve.
    DnsFailure,
    /// Nothing listens on that port (TCP RST).
    ConnectionRefused,
    /// No answer in time.
    Timeout,
    /// The broker closed an established connection.
    ConnectionLost,
    /// The broker is overloaded or shutting down; it says so.
    ServerUnavailable,
    /// Another process connected with our client id and the broker dropped us for it.
    ClientIdTaken,
    /// Anything else.
    Other,
}

impl FailureKind {
    /// Whether retrying with the same settings can succeed: the rule
    /// [`crate::supervisor::ConnectionSupervisor`] acts on, so a supervisor of your own can too.
    ///
    /// Certificates, passwords and client ids do not fix themselves: stop at once (retrying a
    /// wrong password only gets an IP banned). A host name that does not resolve, or a port that
    /// does not speak TLS, is a wrong setting before the first connection succeeded, and an
    /// outage (DNS or a load balancer failing over) after it. Everything else — refused, timed
    /// out, lost, busy — is a broker or network that comes back: retry with backoff, for ever.
    // ANCHOR: retry_or_stop
    pub fn is_retryable(self, ever_connected: bool) -> bool {
        match self {
            FailureKind::UnknownIssuer
            | FailureKind::WrongHostName
            | FailureKind::CertificateExpired
            | FailureKind::BadCertificate
            | FailureKind::BadCredentials
            | FailureKind::NotAuthorized
            | FailureKind::Rejected
            | FailureKind::ClientIdTaken => false,
            FailureKind::NotTls | FailureKind::PlaintextToTlsPort | FailureKind::DnsFailure => {
                ever_connected
            }
            FailureKind::ConnectionRefused
            | FailureKind::Timeout
            | FailureKind::ConnectionLost
            | FailureKind::ServerUnavailable
            | FailureKind::Other => true,
        }
    }
    // ANCHOR_END: retry_or_stop

    /// The exit code a binary returns when it stops on this failure.
    pub fn exit_code(self) -> u8 {
        match self {
            FailureKind::UnknownIssuer
            | FailureKind::WrongHostName
            | FailureKind::CertificateExpired
            | FailureKind::BadCertificate
            | FailureKind::NotTls
            | FailureKind::PlaintextToTlsPort => exit::TLS,
            FailureKind::BadCredentials | FailureKind::NotAuthorized | FailureKind::Rejected => {
                exit::AUTH
            }
            FailureKind::ClientIdTaken => exit::CLIENT_ID_IN_USE,
            _ => exit::NETWORK,
        }
    }
}

/// A failure to connect (or stay connected), with the explanation a person can act on.
#[derive(Clone, Debug)]
pub struct ConnectFailure {
    /// The category.
    pub kind: FailureKind,
    /// One paragraph: what happened, why it probably happened, what to do.
    pub message: String,
    /// The library's own words, for a bug report.
    pub detail: String,
}

impl fmt::Display for ConnectFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} [{}]", self.message, self.detail)
    }
}

impl StdError for ConnectFailure {}

impl ConnectFailure {
    /// Builds the message for `kind` against `target`. `detail` is the library's error text.
    pub fn new(kind: FailureKind, target: &BrokerTarget, detail: impl Into<String>) -> Self {
        let address = target.address();
        let host = &target.credentials.host;
        let trust = match &target.security {
            Security::Tls(roots) => roots.to_string(),
            Security::InsecurePlaintext => "nothing (plaintext)".to_owned(),
        };
        let creds = target.creds_path.display();
        let client_id = &target.client_id;
        let message = match kind {
            FailureKind::UnknownIssuer => format!(
                "the broker's certificate at {address} is not signed by a CA you trust (checked \
                 against {trust}). If this is Link Labs' broker, drop --ca-file so the system's CAs \
                 are used (and install ca-certificates); for a private broker pass --ca-file with \
                 the CA that signed its certificate."
            ),
            FailureKind::WrongHostName => format!(
                "the broker's certificate is not issued for \"{host}\", the host you connected to. \
                 Use the exact host name from creds.json (not an IP address or an alias), or fix \
                 the \"host\" field in {creds}."
            ),
            FailureKind::CertificateExpired => format!(
                "the broker's certificate at {address} has expired or is not valid yet. Check this \
                 machine's clock (`timedatectl`); if the clock is right, the broker's operator must \
                 renew the certificate."
            ),
            FailureKind::BadCertificate => format!(
                "the broker's certificate at {address} was rejected. Check --ca-file and the \
                 \"host\" field in {creds}."
            ),
            FailureKind::NotTls => format!(
                "{address} did not answer with TLS. Is this a plaintext MQTT port (1883)? Link Labs' \
                 broker speaks MQTT over TLS on port 8883: fix \"port\" in {creds}."
            ),
            FailureKind::PlaintextToTlsPort => format!(
                "{address} closed the connection before answering our plaintext CONNECT: the port \
                 probably expects TLS. Remove --insecure-plaintext and use port 8883."
            ),
            FailureKind::BadCredentials => format!(
                "the broker at {address} rejected the user name or password (CONNACK \"bad user \
                 name or password\"). Download creds.json again from the Airfinder UI; the \
                 password may have been regenerated."
            ),
            FailureKind::NotAuthorized => format!(
                "the broker at {address} refused the connection as not authorized. The password \
                 is wrong, the credentials were disabled in the Airfinder platform, or client id \
                 \"{client_id}\" is not allowed for this user. Download creds.json again from the \
                 Airfinder UI (Configuration → Subscriptions) and check that the subscription is \
                 enabled."
            ),
            FailureKind::Rejected => format!(
                "the broker at {address} rejected client id \"{client_id}\" or this client (banned \
                 or invalid identifier). Use the \"clientId\" from creds.json as it is, with only \
                 --instance to tell processes apart (it appends -<instance>); drop --client-id if \
                 you gave one. If the id is right, ask Link Labs whether this client is banned."
            ),
            FailureKind::DnsFailure => format!(
                "the host name \"{host}\" does not resolve. Check the \"host\" field in {creds} and \
                 this machine's DNS."
            ),
            FailureKind::ConnectionRefused => format!(
                "nothing accepts connections at {address} (connection refused). The broker may be \
                 down or the port wrong; Link Labs' broker uses 8883."
            ),
            FailureKind::Timeout => format!(
                "no answer from {address} in time. A firewall may block outgoing port {}; check \
                 that this machine can reach it.",
                target.credentials.port
            ),
            FailureKind::ConnectionLost => {
                format!(
                    "the connection to {address} was lost (the broker or the network closed it). \
                     It is retried with backoff; if it keeps happening right after connecting, \
                     another process may use client id \"{client_id}\" (give each process its \
                     own --instance), else run `cargo run -p doctor -- --creds {creds}`."
                )
            }
            FailureKind::ServerUnavailable => {
                format!(
                    "the broker at {address} is unavailable or busy; it asked us to come back \
                     later. It is retried with backoff; nothing to change on this side unless it \
                     lasts, then ask Link Labs about the broker's state."
                )
            }
            FailureKind::ClientIdTaken => format!(
                "client id \"{client_id}\" is used by another process: the broker keeps only one \
                 connection per client id, so the two of you keep disconnecting each other. Give \
                 each process its own id (for example --instance 1, --instance 2) and stop the other \
                 process or change its id."
            ),
            FailureKind::Other => format!(
                "the connection to {address} failed for a reason not recognised (the library's \
                 words are in brackets). It is retried with backoff; run `cargo run -p doctor -- \
                 --creds {creds}` to see which step fails."
            ),
        };
        ConnectFailure {
            kind,
            message,
            detail: detail.into(),
        }
    }

    /// Classifies a rumqttc v5 error.
    ///
    /// rumqttc wraps TLS errors in `io::Error`s; we walk the `source()` chain looking for the
    /// typed rustls error first and fall back to the text (native-tls gives only text).
    pub fn from_rumqttc(err: &rumqttc::v5::ConnectionError, target: &BrokerTarget) -> Self {
        use rumqttc::v5::mqttbytes::v5::ConnectReturnCode as Code;
        use rumqttc::v5::mqttbytes::v5::DisconnectReasonCode as Reason;
        use rumqttc::v5::{ConnectionError, StateError};

        let detail = error_chain(err);
        let kind = match err {
            // The example's idle watchdog gave up on a silent link: a lost connection.
            _ if crate::supervisor::LinkSilent::is(err) => FailureKind::ConnectionLost,
            ConnectionError::ConnectionRefused(code) => match code {
                Code::BadUserNamePassword => FailureKind::BadCredentials,
                Code::NotAuthorized => FailureKind::NotAuthorized,
                Code::Banned | Code::ClientIdentifierNotValid | Code::BadClientId => {
                    FailureKind::Rejected
                }
                Code::ServerUnavailable
                | Code::ServiceUnavailable
                | Code::ServerBusy
                | Code::ConnectionRateExceeded
                | Code::QuotaExceeded => FailureKind::ServerUnavailable,
                _ => FailureKind::Other,
            },
            ConnectionError::MqttState(StateError::ServerDisconnect { reason_code, .. }) => {
                match reason_code {
                    Reason::SessionTakenOver => FailureKind::ClientIdTaken,
                    Reason::NotAuthorized => FailureKind::NotAuthorized,
                    Reason::ServerBusy | Reason::ServerShuttingDown => {
                        FailureKind::ServerUnavailable
                    }
                    _ => FailureKind::ConnectionLost,
                }
            }
            // "Connection closed by peer abruptly": the broker ended the connection cleanly (TCP
            // FIN, or TLS close_notify then FIN). Mosquitto does this to the old connection when a
            // client with the same id connects.
            ConnectionError::MqttState(StateError::ConnectionAborted) => {
                FailureKind::ConnectionLost
            }
            ConnectionError::Timeout(_) => FailureKind::Timeout,
            // A TLS-layer error that is not about certificates (typically "tls handshake eof"):
            // the port closed on our ClientHello, which is what a plaintext port does.
            ConnectionError::Tls(_) => match classify_chain(err, target) {
                FailureKind::ConnectionLost | FailureKind::Other => FailureKind::NotTls,
                kind => kind,
            },
            _ => classify_chain(err, target),
        };
        ConnectFailure::new(kind, target, detail)
    }

    /// Classifies an error known only by its text (native-tls/OpenSSL, Paho).
    pub fn from_text(text: &str, target: &BrokerTarget) -> Self {
        ConnectFailure::new(classify_text(text, target), target, text)
    }
}

/// `outer: inner: innermost`, skipping repeats (rumqttc's Display often already includes the source).
pub fn error_chain(err: &(dyn StdError + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(inner) = source {
        let inner_text = inner.to_string();
        if !text.contains(&inner_text) {
            text.push_str(": ");
            text.push_str(&inner_text);
        }
        source = inner.source();
    }
    text
}

fn classify_chain(err: &(dyn StdError + 'static), target: &BrokerTarget) -> FailureKind {
    let mut current: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = current {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return classify_rustls(tls);
        }
        if let Some(io_err) = e.downcast_ref::<io::Error>() {
            if let Some(tls) = io_err
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            {
                return classify_rustls(tls);
            }
        }
        current = e.source();
    }
    classify_text(&error_chain(err), target)
}

fn classify_rustls(err: &rustls::Error) -> FailureKind {
    use rustls::CertificateError as Cert;
    match err {
        rustls::Error::InvalidCertificate(cert) => match cert {
            Cert::UnknownIssuer => FailureKind::UnknownIssuer,
            Cert::NotValidForName | Cert::NotValidForNameContext { .. } => {
                FailureKind::WrongHostName
            }
            Cert::Expired
            | Cert::ExpiredContext { .. }
            | Cert::NotValidYet
            | Cert::NotValidYetContext { .. } => FailureKind::CertificateExpired,
            _ => FailureKind::BadCertificate,
        },
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
            FailureKind::NotTls
        }
        _ => FailureKind::BadCertificate,
    }
}

/// Heuristics over error text, for libraries that give nothing typed.
fn classify_text(text: &str, target: &BrokerTarget) -> FailureKind {
    let lower = text.to_ascii_lowercase();
    let has = |needle: &str| lower.contains(needle);
    let plaintext = target.security == Security::InsecurePlaintext;
    if has("unknownissuer")
        || has("unable to get local issuer")
        || has("self-signed certificate")
        || has("self signed certificate")
        || has("unable to verify the first certificate")
    {
        FailureKind::UnknownIssuer
    } else if has("notvalidforname") || has("hostname mismatch") || has("host name mismatch") {
        FailureKind::WrongHostName
    } else if has("certificate has expired") || has("certificate is not yet valid") {
        FailureKind::CertificateExpired
    } else if has("certificate verify failed") {
        FailureKind::BadCertificate
    } else if has("wrong version number") || has("corrupt message") || has("packet length too long")
    {
        FailureKind::NotTls
    } else if has("failed to lookup address")
        || has("name or service not known")
        || has("no address associated")
        || has("temporary failure in name resolution")
        || has("nodename nor servname")
    {
        FailureKind::DnsFailure
    } else if has("connection refused") {
        FailureKind::ConnectionRefused
    } else if has("not authorized") || has("notauthorized") {
        FailureKind::NotAuthorized
    } else if has("bad user name or password") || has("badusernamepassword") {
        FailureKind::BadCredentials
    } else if has("timed out") || has("timeout") {
        FailureKind::Timeout
    } else if plaintext && (has("reset by peer") || has("eof") || has("aborted")) {
        FailureKind::PlaintextToTlsPort
    } else if has("reset by peer")
        || has("broken pipe")
        || has("eof")
        || has("aborted")
        || has("close_notify")
    {
        FailureKind::ConnectionLost
    } else {
        FailureKind::Other
    }
}
