//! TLS verification against the host name you configured, whatever address you dialled.
//!
//! [`crate::broker_addresses`] connects to a broker cluster one IP address at a time, and rumqttc
//! then hands rustls that *address* as the server name: the usual check ("the certificate names
//! the host I dialled") would look for the IP in the certificate, which a cluster's certificate
//! for `mqtt.example.com` does not contain. [`VerifyAsHostName`] runs the normal WebPKI check —
//! chain to a trusted CA, validity dates, key usage — but against the name from `creds.json`. So
//! the guarantee is the one you had with the name: the peer holds a certificate for that name
//! from a CA you trust. Nothing is switched off.
//!
//! One difference remains: rustls sends no SNI (Server Name Indication) for an IP address. A
//! broker that picks its certificate by SNI would present its default one, and the check above
//! fails with a name mismatch rather than connecting anywhere wrong. That is why
//! `broker_addresses` uses this only when the name resolves to several addresses.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::DigitallySignedStruct;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use crate::tls::{TlsError, TlsRoots};

/// Verifies the broker's certificate for a fixed host name instead of the dialled address.
#[derive(Debug)]
pub struct VerifyAsHostName {
    host_name: ServerName<'static>,
    webpki: Arc<WebPkiServerVerifier>,
}

impl VerifyAsHostName {
    /// A verifier for `host_name` (a DNS name, as in `creds.json`) trusting `roots`.
    /// `None` when `host_name` is not a valid DNS name (an IP literal needs none of this).
    pub fn new(
        host_name: &str,
        roots: &TlsRoots,
        provider: &Arc<CryptoProvider>,
    ) -> Result<Option<VerifyAsHostName>, TlsError> {
        let Ok(name) = ServerName::try_from(host_name.to_owned()) else {
            return Ok(None);
        };
        if !matches!(name, ServerName::DnsName(_)) {
            return Ok(None);
        }
        let webpki = WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots.rustls_root_store()?),
            Arc::clone(provider),
        )
        .build()
        .map_err(|err| TlsError::BadCertificate {
            path: Default::default(),
            detail: err.to_string(),
        })?;
        Ok(Some(VerifyAsHostName {
            host_name: name,
            webpki,
        }))
    }

    /// A rustls client configuration using this verifier (aws-lc-rs, like
    /// [`TlsRoots::rustls_client_config`]).
    pub fn client_config(
        host_name: &str,
        roots: &TlsRoots,
    ) -> Result<Option<Arc<rustls::ClientConfig>>, TlsError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let Some(verifier) = VerifyAsHostName::new(host_name, roots, &provider)? else {
            return Ok(None);
        };
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|err| TlsError::BadCertificate {
                path: Default::default(),
                detail: err.to_string(),
            })?
            .dangerous() // a custom verifier: it checks everything, for the configured name
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        Ok(Some(Arc::new(config)))
    }
}

impl ServerCertVerifier for VerifyAsHostName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _dialled: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // The whole WebPKI check, for the configured name instead of the dialled address.
        self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            &self.host_name,
            ocsp_response,
            now,
        )
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::PrivateKeyDer;

    /// A CA (its PEM file, for `TlsRoots::CaFile`) and a server configuration whose certificate
    /// names `names` only.
    fn broker(names: &[&str]) -> (tempfile::TempDir, TlsRoots, Arc<rustls::ServerConfig>) {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let key = KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let cert = CertificateParams::new(names)
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let ca_path = dir.path().join("ca.pem");
        std::fs::write(&ca_path, ca.pem()).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).unwrap(),
            )
            .unwrap();
        (dir, TlsRoots::CaFile(ca_path), Arc::new(server))
    }

    /// A TLS handshake in memory, the client dialling `dialled`.
    fn handshake(
        client: Arc<rustls::ClientConfig>,
        server: Arc<rustls::ServerConfig>,
        dialled: &str,
    ) -> Result<(), rustls::Error> {
        let name = ServerName::try_from(dialled.to_owned()).unwrap();
        let mut client = rustls::ClientConnection::new(client, name)?;
        let mut server = rustls::ServerConnection::new(server)?;
        for _ in 0..10 {
            let mut wire = Vec::new();
            client.write_tls(&mut wire).unwrap();
            server.read_tls(&mut &wire[..]).unwrap();
            server.process_new_packets()?;
            let mut wire = Vec::new();
            server.write_tls(&mut wire).unwrap();
            client.read_tls(&mut &wire[..]).unwrap();
            client.process_new_packets()?;
            if !client.is_handshaking() {
                return Ok(());
            }
        }
        panic!("the handshake did not finish");
    }

    #[test]
    fn a_node_dialled_by_address_is_checked_for_the_configured_name() {
        let (_dir, roots, server) = broker(&["cluster.test"]);
        let config = VerifyAsHostName::client_config("cluster.test", &roots)
            .unwrap()
            .expect("a DNS name");
        handshake(config, server, "10.0.0.12").expect("the certificate names cluster.test");
    }

    #[test]
    fn a_certificate_for_another_name_is_refused() {
        let (_dir, roots, server) = broker(&["elsewhere.test", "10.0.0.12"]);
        let config = VerifyAsHostName::client_config("cluster.test", &roots)
            .unwrap()
            .expect("a DNS name");
        // Even though the certificate names the dialled address: the configured name counts.
        let err = handshake(config, server, "10.0.0.12").unwrap_err();
        assert!(
            err.to_string().contains("not valid for name"),
            "unexpected error: {err}"
        );
    }

    #[test]
    fn a_certificate_from_another_ca_is_refused() {
        let (_dir, _their_roots, server) = broker(&["cluster.test"]);
        let (_other_dir, our_roots, _) = broker(&["cluster.test"]);
        let config = VerifyAsHostName::client_config("cluster.test", &our_roots)
            .unwrap()
            .expect("a DNS name");
        let err = handshake(config, server, "10.0.0.12").unwrap_err();
        // Both test CAs have the same (empty) name, so webpki finds "ours" and the signature fails.
        assert!(
            err.to_string().contains("invalid peer certificate"),
            "unexpected error: {err}"
        );
    }

    #[test]
    fn an_ip_literal_needs_no_such_verifier() {
        let (_dir, roots, _) = broker(&["cluster.test"]);
        assert!(VerifyAsHostName::client_config("10.0.0.12", &roots)
            .unwrap()
            .is_none());
    }
}
