//! Throwaway certificate authorities and server certificates.
//!
//! Every broker gets fresh keys, so no test depends on files checked into the
//! repository and nothing here could ever be trusted outside a test.

use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};

/// A certificate and its private key, both PEM-encoded.
pub(crate) struct PemPair {
    pub(crate) cert: String,
    pub(crate) key: String,
}

/// All the PEM material one broker needs.
pub(crate) struct TestPki {
    /// The CA that clients trust (written as `ca.pem`).
    pub(crate) ca_cert: String,
    /// Server certificate for `localhost` and `127.0.0.1`, signed by the CA.
    pub(crate) server: PemPair,
    /// Server certificate for [`WRONG_HOST`] only, signed by the same CA, so that
    /// the only thing wrong with it is the name.
    pub(crate) wrong_host_server: PemPair,
    /// An unrelated CA: trusting it instead of the real one must fail the handshake.
    pub(crate) unrelated_ca_cert: String,
    /// Server certificate for `localhost` and `127.0.0.1`, signed by the CA, that expired on
    /// 2021-01-01 (valid from 2020-01-01): everything right but the dates.
    pub(crate) expired_server: PemPair,
}

/// The only name in the wrong-host certificate. `.invalid` can never resolve.
pub(crate) const WRONG_HOST: &str = "wrong-host.invalid";

impl TestPki {
    /// Generates two CAs and two server certificates; `extra_sans` (host names or IP
    /// addresses) are added to the good server certificate.
    pub(crate) fn generate(extra_sans: &[String]) -> Result<TestPki, rcgen::Error> {
        let ca = new_ca("linklabs-mqtt-rust test CA")?;
        let mut names = vec!["localhost", "127.0.0.1"];
        names.extend(extra_sans.iter().map(String::as_str));
        let server = new_server_cert(&ca, &names)?;
        let wrong_host_server = new_server_cert(&ca, &[WRONG_HOST])?;
        let unrelated_ca = new_ca("unrelated test CA (must not be trusted)")?;
        let expired_server = new_server_cert_valid(
            &ca,
            &["localhost", "127.0.0.1"],
            Some(((2020, 1, 1), (2021, 1, 1))),
        )?;
        Ok(TestPki {
            ca_cert: ca.pem(),
            server,
            wrong_host_server,
            unrelated_ca_cert: unrelated_ca.pem(),
            expired_server,
        })
    }
}

fn new_ca(common_name: &str) -> Result<CertifiedIssuer<'static, KeyPair>, rcgen::Error> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name = distinguished_name(common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    CertifiedIssuer::self_signed(params, KeyPair::generate()?)
}

fn new_server_cert(
    ca: &CertifiedIssuer<'static, KeyPair>,
    names: &[&str],
) -> Result<PemPair, rcgen::Error> {
    new_server_cert_valid(ca, names, None)
}

/// A date as (year, month, day), UTC midnight.
type Ymd = (i32, u8, u8);

/// Like [`new_server_cert`], with explicit validity dates (`None`: rcgen's default, 1975–4096).
fn new_server_cert_valid(
    ca: &CertifiedIssuer<'static, KeyPair>,
    names: &[&str],
    validity: Option<(Ymd, Ymd)>,
) -> Result<PemPair, rcgen::Error> {
    let common_name = names.first().copied().unwrap_or("server");
    let names: Vec<String> = names.iter().map(|name| name.to_string()).collect();
    let mut params = CertificateParams::new(names)?;
    params.distinguished_name = distinguished_name(common_name);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    if let Some((not_before, not_after)) = validity {
        params.not_before = date_time_ymd(not_before.0, not_before.1, not_before.2);
        params.not_after = date_time_ymd(not_after.0, not_after.1, not_after.2);
    }
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, ca)?;
    Ok(PemPair {
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

fn distinguished_name(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    name.push(DnType::OrganizationName, "mosquitto-harness");
    name
}

/// A throwaway certificate authority that can sign server certificates for any names.
///
/// [`MosquittoBroker`](crate::MosquittoBroker) makes its own fixed set of certificates; brokers of
/// other kinds, and a cluster whose nodes must all be trusted through one CA file, use this.
pub struct ThrowawayCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl std::fmt::Debug for ThrowawayCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThrowawayCa").finish_non_exhaustive()
    }
}

impl ThrowawayCa {
    /// A fresh CA with a new key.
    pub fn generate() -> Result<ThrowawayCa, rcgen::Error> {
        Ok(ThrowawayCa {
            issuer: new_ca("linklabs-mqtt-rust test CA")?,
        })
    }

    /// The CA certificate, PEM: what clients trust (`--ca-file`).
    pub fn ca_pem(&self) -> String {
        self.issuer.pem()
    }

    /// A server certificate and its key (both PEM) for `names` (DNS names or IP addresses).
    pub fn server_pem(&self, names: &[&str]) -> Result<(String, String), rcgen::Error> {
        let pair = new_server_cert(&self.issuer, names)?;
        Ok((pair.cert, pair.key))
    }
}
