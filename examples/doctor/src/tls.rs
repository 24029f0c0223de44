//! Step 4: the TLS handshake — time, protocol version and cipher, the server's chain (subject,
//! issuer, validity, SANs), whether it chains to the trust in use, host-name match, days until
//! expiry, the local clock against the validity, "this port does not speak TLS", SNI.
//!
//! How the chain is seen even when the handshake fails: rustls is given a verifier that hands
//! every decision to rustls's own WebPKI verifier (built from the same roots every example uses,
//! [`common::TlsRoots`]) and only *records* the certificates and the verdict on the way. Nothing is
//! accepted that the examples would refuse.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{BrokerTarget, FailureKind, Security};
use mqtt5_protocol::packet::connect::ConnectPacket;
use mqtt5_protocol::ConnectOptions;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::mqtt::{Connection, Transport};
use crate::report::StepReport;
use crate::texts::{Advice, DoctorText};

const STEP: u8 = 4;
const NAME: &str = "tls";

/// Below this many days of validity left, the step warns.
pub const EXPIRY_WARNING_DAYS: i64 = 14;

/// What the verifier saw during the last handshake.
#[derive(Debug, Clone)]
struct Observed {
    chain: Vec<Vec<u8>>,
    verdict: Result<(), rustls::Error>,
}

/// rustls's WebPKI verifier, plus a record of what it was shown and what it decided.
#[derive(Debug)]
struct RecordingVerifier {
    inner: Arc<WebPkiServerVerifier>,
    observed: Mutex<Option<Observed>>,
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verdict = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        );
        let mut chain = vec![end_entity.as_ref().to_vec()];
        chain.extend(intermediates.iter().map(|cert| cert.as_ref().to_vec()));
        if let Ok(mut observed) = self.observed.lock() {
            *observed = Some(Observed {
                chain,
                verdict: verdict.as_ref().map(|_| ()).map_err(Clone::clone),
            });
        }
        verdict
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// How later steps open more connections to the same broker (the session and takeover probes):
/// the address that worked in step 3 and, with TLS, the same configuration and server name.
#[derive(Clone)]
pub struct Dialer {
    address: SocketAddr,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    timeout: Duration,
}

impl Dialer {
    /// A new connection, TCP then TLS, each within the timeout.
    pub async fn dial(&self) -> io::Result<Box<dyn Transport>> {
        let tcp = tokio::time::timeout(self.timeout, TcpStream::connect(self.address))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TCP connect timed out"))??;
        tcp.set_nodelay(true)?;
        match &self.tls {
            None => Ok(Box::new(tcp)),
            Some((connector, name)) => {
                let tls = tokio::time::timeout(self.timeout, connector.connect(name.clone(), tcp))
                    .await
                    .map_err(|_| {
                        io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out")
                    })??;
                Ok(Box::new(tls))
            }
        }
    }
}

/// Runs the handshake on the stream from step 3. On success returns the TLS stream (step 5
/// sends its CONNECT over it) and a [`Dialer`] for more connections.
pub async fn check(
    target: &BrokerTarget,
    address: SocketAddr,
    tcp: TcpStream,
    timeout: Duration,
) -> (StepReport, Option<(Box<dyn Transport>, Dialer)>) {
    let _ = tcp.set_nodelay(true);
    let roots = match &target.security {
        Security::InsecurePlaintext => {
            let report = StepReport::warn(
                STEP,
                NAME,
                "no TLS: plaintext MQTT allowed by --insecure-plaintext",
                DoctorText::PlaintextAllowed.advice(),
            );
            let dialer = Dialer {
                address,
                tls: None,
                timeout,
            };
            return (report, Some((Box::new(tcp), dialer)));
        }
        Security::Tls(roots) => roots,
    };
    let fail_setup = |advice: Advice, summary: String| {
        let report = StepReport::fail(STEP, NAME, summary, advice, common::exit::TLS);
        (report, None)
    };
    let store = match roots.rustls_root_store() {
        Ok(store) => Arc::new(store),
        Err(err) => return fail_setup(Advice::tls_setup(&err), format!("cannot load {roots}")),
    };
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let inner =
        match WebPkiServerVerifier::builder_with_provider(store, Arc::clone(&provider)).build() {
            Ok(inner) => inner,
            Err(err) => {
                let advice = DoctorText::TrustStoreUnusable {
                    trust: &roots.to_string(),
                    error: &err.to_string(),
                }
                .advice();
                return fail_setup(advice, format!("cannot use {roots}"));
            }
        };
    let verifier = Arc::new(RecordingVerifier {
        inner,
        observed: Mutex::new(None),
    });
    let config = match rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
    {
        Ok(builder) => builder
            // "dangerous" only in name: every decision is WebPKI's; see `RecordingVerifier`.
            .dangerous()
            .with_custom_certificate_verifier(Arc::clone(&verifier) as Arc<dyn ServerCertVerifier>)
            .with_no_client_auth(),
        Err(err) => {
            let advice = DoctorText::TlsDefaultsRefused {
                error: &err.to_string(),
            }
            .advice();
            return fail_setup(advice, "cannot set up TLS".to_owned());
        }
    };
    let host = &target.credentials.host;
    let server_name = match ServerName::try_from(host.clone()) {
        Ok(name) => name,
        Err(err) => {
            return fail_setup(
                Advice::failure(FailureKind::WrongHostName, target),
                format!("\"{host}\" is not a valid host name for TLS ({err})"),
            )
        }
    };
    let sni = match &server_name {
        ServerName::DnsName(name) => format!("SNI {}", name.as_ref()),
        _ => "no SNI (the host is an IP address)".to_owned(),
    };
    let connector = TlsConnector::from(Arc::new(config));
    let started = Instant::now();
    let handshake =
        tokio::time::timeout(timeout, connector.connect(server_name.clone(), tcp)).await;
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    let observed = verifier.observed.lock().ok().and_then(|o| o.clone());
    let now = unix_now();
    let chain: Vec<CertInfo> = observed
        .as_ref()
        .map(|o| o.chain.iter().map(|der| CertInfo::parse(der)).collect())
        .unwrap_or_default();
    let chain_data: Vec<Value> = chain.iter().map(CertInfo::to_json).collect();
    let chain_lines: Vec<String> = chain
        .iter()
        .enumerate()
        .map(|(i, cert)| cert.line(i))
        .collect();

    let error = match handshake {
        Err(_) => {
            let report = StepReport::fail(
                STEP,
                NAME,
                format!("no TLS handshake within {} s", timeout.as_secs()),
                Advice::failure(FailureKind::Timeout, target),
                common::exit::NETWORK,
            );
            return (report, None);
        }
        Ok(Err(err)) => err,
        Ok(Ok(stream)) => {
            let (_, connection) = stream.get_ref();
            let version = connection
                .protocol_version()
                .map_or_else(|| "?".to_owned(), |v| version_name(v).to_owned());
            let cipher = connection
                .negotiated_cipher_suite()
                .map_or_else(|| "?".to_owned(), |s| format!("{:?}", s.suite()));
            let days_left = chain
                .iter()
                .filter_map(|c| c.not_after)
                .min()
                .map(|t| (t - now) / 86_400);
            let mut report = StepReport::pass(
                STEP,
                NAME,
                format!(
                    "{version} {cipher} in {elapsed_ms:.1} ms; chain of {} verified against {roots}; \
                     host name \"{host}\" matches; {}; {sni}",
                    chain.len(),
                    days_left.map_or_else(|| "validity unknown".to_owned(), |d| format!("expires in {d} days")),
                ),
            )
            .with_data(json!({
                "protocol_version": version,
                "cipher_suite": cipher,
                "handshake_ms": elapsed_ms,
                "trust": roots.to_string(),
                "verified": true,
                "host_name_matches": true,
                "days_until_expiry": days_left,
                "local_clock": format_unix(now),
                "sni": matches!(server_name, ServerName::DnsName(_)).then(|| host.clone()),
                "chain": chain_data,
            }));
            for line in chain_lines {
                report = report.with_detail(line);
            }
            // A handshake that verified means the clock is inside the validity; say so, since a
            // wrong clock is what makes certificates look expired elsewhere.
            if let Some(before) = chain.first().and_then(|leaf| leaf.not_before) {
                report = report.with_detail(format!(
                    "this machine's clock says {}: inside the certificate's validity ({} days \
                     after its start)",
                    format_unix(now),
                    (now - before).max(0) / 86_400
                ));
            }
            if let Some(days) = days_left {
                if days < EXPIRY_WARNING_DAYS {
                    report.add_warning(DoctorText::ExpiresSoon { days }.advice());
                }
            }
            let dialer = Dialer {
                address,
                tls: Some((connector, server_name)),
                timeout,
            };
            return (report, Some((Box::new(stream), dialer)));
        }
    };

    // The handshake failed: say why, with the chain if the server got as far as sending one.
    let rustls_error = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .cloned()
        .or_else(|| observed.as_ref().and_then(|o| o.verdict.clone().err()));
    let kind = match &rustls_error {
        Some(err) => classify(err),
        // No certificate seen and no TLS error: the peer closed or reset on our ClientHello.
        None if observed.is_none() => FailureKind::NotTls,
        None => FailureKind::BadCertificate,
    };
    let library_error = rustls_error
        .as_ref()
        .map_or_else(|| error.to_string(), ToString::to_string);
    let what = match kind {
        FailureKind::UnknownIssuer => format!("certificate not signed by a CA in {roots}"),
        FailureKind::WrongHostName => format!("certificate not issued for \"{host}\""),
        FailureKind::CertificateExpired => "certificate expired or not valid yet".to_owned(),
        FailureKind::NotTls => "the port does not speak TLS".to_owned(),
        _ => "handshake failed".to_owned(),
    };
    let mut report = StepReport::fail(
        STEP,
        NAME,
        format!("{what} (after {elapsed_ms:.1} ms; {sni})"),
        Advice::failure(kind, target),
        kind.exit_code(),
    )
    .with_library_error(library_error)
    .with_data(json!({
        "handshake_ms": elapsed_ms,
        "trust": roots.to_string(),
        "verified": false,
        "failure": format!("{kind:?}"),
        "local_clock": format_unix(now),
        "sni": matches!(server_name, ServerName::DnsName(_)).then(|| host.clone()),
        "chain": chain_data,
    }));
    for line in chain_lines {
        report = report.with_detail(line);
    }
    match kind {
        FailureKind::UnknownIssuer => {
            if let Some(top) = chain.last() {
                report = report.with_detail(format!(
                    "the chain ends at issuer \"{}\", which is not among {roots}",
                    top.issuer
                ));
            }
        }
        FailureKind::WrongHostName => {
            if let Some(leaf) = chain.first() {
                report = report.with_detail(format!(
                    "the certificate names {}; you connected to \"{host}\"",
                    if leaf.sans.is_empty() {
                        "no host names".to_owned()
                    } else {
                        leaf.sans.join(", ")
                    }
                ));
            }
        }
        FailureKind::CertificateExpired => {
            if let Some(leaf) = chain.first() {
                let now_text = format_unix(now);
                match (leaf.not_before, leaf.not_after) {
                    (Some(before), _) if now < before => {
                        report = report.with_advice(
                            DoctorText::ClockBehind {
                                not_before: &format_unix(before),
                                now: &now_text,
                            }
                            .advice(),
                        );
                    }
                    (_, Some(after)) if now > after => {
                        report = report.with_detail(format!(
                            "expired on {} ({} days ago); this machine's clock says {now_text}",
                            format_unix(after),
                            (now - after) / 86_400
                        ));
                    }
                    _ => {}
                }
            }
        }
        FailureKind::NotTls if answers_plaintext_mqtt(address, timeout).await => {
            report = report.with_advice(
                DoctorText::PlaintextMqttPort {
                    address: &address.to_string(),
                }
                .advice(),
            );
        }
        _ => {}
    }
    (report, None)
}

/// The same categories as `common::failure` gives a rustls error, so the advice matches.
fn classify(err: &rustls::Error) -> FailureKind {
    match err {
        rustls::Error::InvalidCertificate(cert) => match cert {
            CertificateError::UnknownIssuer => FailureKind::UnknownIssuer,
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                FailureKind::WrongHostName
            }
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. } => FailureKind::CertificateExpired,
            _ => FailureKind::BadCertificate,
        },
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
            FailureKind::NotTls
        }
        _ => FailureKind::BadCertificate,
    }
}

/// Whether `address` answers a plaintext MQTT v5 CONNECT with a CONNACK: proof that a port which
/// refused TLS is a plaintext MQTT port. The CONNECT carries no user name or password, so no
/// secret crosses the network unencrypted.
async fn answers_plaintext_mqtt(address: SocketAddr, timeout: Duration) -> bool {
    let Ok(Ok(tcp)) = tokio::time::timeout(timeout, TcpStream::connect(address)).await else {
        return false;
    };
    let mut connection = Connection::new(Box::new(tcp));
    let connect = ConnectPacket::new(ConnectOptions::new("doctor-plaintext-probe"));
    if connection.send(&connect).await.is_err() {
        return false;
    }
    let answered = matches!(
        connection.recv(timeout).await,
        Ok(incoming) if incoming.packet_type == 2
    );
    connection.close().await;
    answered
}

fn version_name(version: rustls::ProtocolVersion) -> &'static str {
    match version {
        rustls::ProtocolVersion::TLSv1_3 => "TLS 1.3",
        rustls::ProtocolVersion::TLSv1_2 => "TLS 1.2",
        _ => "an old TLS version",
    }
}

/// What doctor shows of one certificate.
#[derive(Debug, Clone)]
struct CertInfo {
    subject: String,
    issuer: String,
    not_before: Option<i64>,
    not_after: Option<i64>,
    sans: Vec<String>,
    parse_error: Option<String>,
}

impl CertInfo {
    fn parse(der: &[u8]) -> CertInfo {
        match x509_parser::parse_x509_certificate(der) {
            Ok((_, cert)) => {
                let sans = match cert.subject_alternative_name() {
                    Ok(Some(ext)) => ext
                        .value
                        .general_names
                        .iter()
                        .map(|name| match name {
                            x509_parser::extensions::GeneralName::DNSName(dns) => {
                                format!("DNS:{dns}")
                            }
                            x509_parser::extensions::GeneralName::IPAddress(bytes) => {
                                format!("IP:{}", ip_text(bytes))
                            }
                            other => format!("{other:?}"),
                        })
                        .collect(),
                    _ => Vec::new(),
                };
                CertInfo {
                    subject: cert.subject().to_string(),
                    issuer: cert.issuer().to_string(),
                    not_before: Some(cert.validity().not_before.timestamp()),
                    not_after: Some(cert.validity().not_after.timestamp()),
                    sans,
                    parse_error: None,
                }
            }
            Err(err) => CertInfo {
                subject: String::new(),
                issuer: String::new(),
                not_before: None,
                not_after: None,
                sans: Vec::new(),
                parse_error: Some(err.to_string()),
            },
        }
    }

    fn line(&self, index: usize) -> String {
        if let Some(err) = &self.parse_error {
            return format!("[{index}] certificate could not be parsed: {err}");
        }
        let validity = match (self.not_before, self.not_after) {
            (Some(before), Some(after)) => {
                format!("{} → {}", format_unix(before), format_unix(after))
            }
            _ => "?".to_owned(),
        };
        let sans = if self.sans.is_empty() {
            String::new()
        } else {
            format!("; SANs {}", self.sans.join(", "))
        };
        format!(
            "[{index}] subject \"{}\"; issuer \"{}\"; valid {validity}{sans}",
            self.subject, self.issuer
        )
    }

    fn to_json(&self) -> Value {
        json!({
            "subject": self.subject,
            "issuer": self.issuer,
            "not_before": self.not_before.map(format_unix),
            "not_after": self.not_after.map(format_unix),
            "sans": self.sans,
            "parse_error": self.parse_error,
        })
    }
}

fn ip_text(bytes: &[u8]) -> String {
    match bytes.len() {
        4 => std::net::Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]).to_string(),
        16 => {
            let mut octets = [0u8; 16];
            octets.copy_from_slice(bytes);
            std::net::Ipv6Addr::from(octets).to_string()
        }
        _ => format!("{bytes:02x?}"),
    }
}

/// Seconds since the Unix epoch by this machine's clock (the clock under suspicion).
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// `2026-11-29T07:36:57Z`, without a date library: days to civil date (H. Hinnant's algorithm).
pub fn format_unix(seconds: i64) -> String {
    let days = seconds.div_euclid(86_400);
    let time = seconds.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        time / 3600,
        time % 3600 / 60,
        time % 60
    )
}

#[cfg(test)]
mod tests {
    use super::format_unix;

    #[test]
    fn dates_format_as_rfc3339() {
        assert_eq!(format_unix(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_unix(1_609_459_200), "2021-01-01T00:00:00Z");
        assert_eq!(format_unix(1_709_210_096), "2024-02-29T12:34:56Z");
    }
}
