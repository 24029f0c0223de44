//! Whom the client trusts to be the broker.
//!
//! MQTT over TLS protects the password and the location data on the wire *only* if the client
//! checks that the certificate was issued by a CA it trusts **and** names the host it dialled.
//! This module builds that trust once, from the operating system's roots (the default, right for
//! Link Labs' hosted broker) or from a CA file (`--ca-file`, for private brokers and tests), and
//! hands it to each TLS stack in the form it wants. There is deliberately no function here that
//! turns verification off.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

/// The set of certificate authorities the client accepts for the broker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TlsRoots {
    /// The operating system's trust store (`/etc/ssl/certs` on Debian). Link Labs' broker
    /// certificate is issued by a public CA, so this is all production needs.
    System,
    /// Only the CA certificates in this PEM file (one or several). Use it for a private broker,
    /// the demo broker and tests.
    CaFile(PathBuf),
}

/// Why the trust store could not be built. Each message names the file and the fix.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// `--ca-file` names a missing or unreadable file.
    #[error(
        "cannot read the CA file {path}: {source}. Check the --ca-file / MQTT_CA_FILE path; it must \
         be a PEM file containing the broker's CA certificate."
    )]
    CaFileUnreadable {
        /// The path given.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The file has no `-----BEGIN CERTIFICATE-----` block that parses.
    #[error(
        "the CA file {path} contains no PEM certificate (expected one or more \
         \"-----BEGIN CERTIFICATE-----\" blocks). Pass the CA *certificate*, not a key or a DER file \
         (convert DER with `openssl x509 -inform der -in ca.der -out ca.pem`)."
    )]
    NoCertificateInCaFile {
        /// The path given.
        path: PathBuf,
    },
    /// A certificate block exists but rustls/OpenSSL rejected it.
    #[error(
        "the CA file {path} contains a certificate that cannot be used: {detail}. Pass the PEM \
         file of the CA that signed the broker's certificate (`openssl x509 -in {path} -noout \
         -text` shows what it holds), or drop --ca-file to use the system's CAs."
    )]
    BadCertificate {
        /// The path given.
        path: PathBuf,
        /// The parser's words.
        detail: String,
    },
    /// No usable system roots.
    #[error(
        "no trusted CA certificates were found on this system ({detail}). Install them \
         (`sudo apt-get install ca-certificates` on Debian/Ubuntu) or pass --ca-file."
    )]
    NoSystemRoots {
        /// What the loader reported.
        detail: String,
    },
    /// native-tls (OpenSSL) refused to build a connector.
    #[cfg(feature = "native-tls")]
    #[error(
        "cannot set up native TLS: {0}. Check the OpenSSL installation (libssl, \
         ca-certificates), or use the default rustls build instead of the native-tls variant."
    )]
    NativeTls(#[from] native_tls::Error),
}

impl TlsRoots {
    /// `CaFile` when a path was given, else `System`.
    pub fn from_ca_file(ca_file: Option<&Path>) -> TlsRoots {
        match ca_file {
            Some(path) => TlsRoots::CaFile(path.to_owned()),
            None => TlsRoots::System,
        }
    }

    /// The CA certificates of a PEM file, in DER.
    fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
        let pem = fs::read(path).map_err(|source| TlsError::CaFileUnreadable {
            path: path.to_owned(),
            source,
        })?;
        let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem)
            .filter_map(Result::ok)
            .collect();
        if certs.is_empty() {
            return Err(TlsError::NoCertificateInCaFile {
                path: path.to_owned(),
            });
        }
        Ok(certs)
    }

    /// The roots as a rustls store.
    // ANCHOR: root_store
    pub fn rustls_root_store(&self) -> Result<RootCertStore, TlsError> {
        let mut store = RootCertStore::empty();
        match self {
            TlsRoots::CaFile(path) => {
                for cert in Self::read_ca_file(path)? {
                    store.add(cert).map_err(|err| TlsError::BadCertificate {
                        path: path.clone(),
                        detail: err.to_string(),
                    })?;
                }
            }
            TlsRoots::System => {
                let loaded = rustls_native_certs::load_native_certs();
                let (added, _ignored) = store.add_parsable_certificates(loaded.certs);
                if added == 0 {
                    let detail = loaded
                        .errors
                        .first()
                        .map_or_else(|| "the store is empty".to_owned(), ToString::to_string);
                    return Err(TlsError::NoSystemRoots { detail });
                }
            }
        }
        Ok(store)
    }
    // ANCHOR_END: root_store

    /// A rustls client configuration that verifies the broker's chain and host name.
    ///
    /// The crypto provider (aws-lc-rs, rumqttc's default) is named explicitly instead of relying on
    /// the process-wide default: when another crate in the same binary enables rustls's `ring`
    /// feature, the implicit default becomes ambiguous and rustls panics at the first handshake.
    pub fn rustls_client_config(&self) -> Result<Arc<rustls::ClientConfig>, TlsError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|err| TlsError::BadCertificate {
                path: PathBuf::new(),
                detail: err.to_string(),
            })?
            .with_root_certificates(self.rustls_root_store()?)
            .with_no_client_auth();
        Ok(Arc::new(config))
    }

    /// TLS for rumqttc over rustls (the default in every example).
    pub fn rumqttc_rustls(&self) -> Result<rumqttc::TlsConfiguration, TlsError> {
        Ok(rumqttc::TlsConfiguration::Rustls(
            self.rustls_client_config()?,
        ))
    }

    /// TLS for rumqttc over native-tls (OpenSSL on Linux, SChannel on Windows, Secure Transport on
    /// macOS). With `System` it uses the platform's own store; with a CA file only that CA is
    /// trusted (built-in roots are disabled so a CA file means exactly that CA).
    #[cfg(feature = "native-tls")]
    pub fn native_tls_connector(&self) -> Result<native_tls::TlsConnector, TlsError> {
        let mut builder = native_tls::TlsConnector::builder();
        if let TlsRoots::CaFile(path) = self {
            builder.disable_built_in_roots(true);
            for der in Self::read_ca_file(path)? {
                let cert = native_tls::Certificate::from_der(der.as_ref()).map_err(|err| {
                    TlsError::BadCertificate {
                        path: path.clone(),
                        detail: err.to_string(),
                    }
                })?;
                builder.add_root_certificate(cert);
            }
        }
        Ok(builder.build()?)
    }

    /// TLS for rumqttc over native-tls, wrapped for rumqttc.
    #[cfg(feature = "native-tls")]
    pub fn rumqttc_native_tls(&self) -> Result<rumqttc::TlsConfiguration, TlsError> {
        Ok(rumqttc::TlsConfiguration::NativeConnector(
            self.native_tls_connector()?,
        ))
    }

    /// SSL options for paho-mqtt (OpenSSL inside the Paho C library).
    ///
    /// `.verify(true)` is the important line: Paho's default checks the chain but **not** the host
    /// name, so any certificate from a trusted CA — issued for any host — would be accepted.
    /// With `System`, OpenSSL's default verify paths are used (Paho C loads them when no trust
    /// store is set).
    #[cfg(feature = "paho")]
    pub fn paho_ssl_options(&self) -> Result<paho_mqtt::SslOptions, TlsError> {
        // ANCHOR: paho_verify
        let mut builder = paho_mqtt::SslOptionsBuilder::new();
        builder.enable_server_cert_auth(true).verify(true);
        // ANCHOR_END: paho_verify
        if let TlsRoots::CaFile(path) = self {
            // Fail here with our message rather than later with Paho's "TCP/TLS connect failure".
            Self::read_ca_file(path)?;
            builder
                .trust_store(path)
                .map_err(|err| TlsError::BadCertificate {
                    path: path.clone(),
                    detail: err.to_string(),
                })?;
        }
        Ok(builder.finalize())
    }
}

impl std::fmt::Display for TlsRoots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TlsRoots::System => f.write_str("the system's trusted CAs"),
            TlsRoots::CaFile(path) => write!(f, "the CA file {}", path.display()),
        }
    }
}
