//! The command-line flags every example shares, and what they resolve to.
//!
//! Each example's own `clap` struct does `#[command(flatten)] connect: ConnectArgs`, so
//! `--creds`, `--ca-file`, `--client-id`, `--instance`, `--count` and `--insecure-plaintext` mean
//! the same everywhere.

use std::path::{Path, PathBuf};

use crate::credentials::{Credentials, CredentialsError, CredentialsFile};
use crate::tls::{TlsError, TlsRoots};

/// Where the credentials are looked for when neither `--creds` nor `MQTT_CREDS` is given.
pub const DEFAULT_CREDS_PATH: &str = "creds.json";

/// Flags shared by every example.
#[derive(clap::Args, Clone, Debug)]
pub struct ConnectArgs {
    /// Link Labs credentials file (the JSON from Airfinder UI → "Copy All Fields").
    /// Default: ./creds.json.
    #[arg(long, env = "MQTT_CREDS", value_name = "PATH")]
    pub creds: Option<PathBuf>,

    /// PEM file with the CA that signed the broker's certificate. Default: the system's CAs.
    #[arg(long, env = "MQTT_CA_FILE", value_name = "PEM")]
    pub ca_file: Option<PathBuf>,

    /// Use this client id instead of the one in the credentials file.
    #[arg(long, value_name = "ID")]
    pub client_id: Option<String>,

    /// Appended to the client id as `<clientId>-<N>`, so several processes can run side by side
    /// (two connections with one id keep kicking each other off the broker).
    #[arg(long, value_name = "N")]
    pub instance: Option<String>,

    /// Exit after processing this many messages (used by tests and benchmarks).
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,

    /// Print no message bodies, only one `stats:` line at exit (for benchmarks).
    #[arg(long)]
    pub stats: bool,

    /// Allow plaintext MQTT (port 1883 / protocol "mqtt"). Sends the password unencrypted: only
    /// for a private broker on a trusted network.
    #[arg(long)]
    pub insecure_plaintext: bool,

    /// Log filter, e.g. `info`, `debug`, `rumqttc=debug,info`.
    #[arg(long, env = "RUST_LOG", default_value = "info", value_name = "FILTER")]
    pub log: String,
}

/// Outgoing packet ids a consumer needs at once (its SUBSCRIBE and UNSUBSCRIBE packets), for
/// `MqttOptions::set_outgoing_inflight_upper_limit`: rumqttc allocates one slot per possible
/// outgoing in-flight message up front, 65,536 by default, 13.5 MiB of RSS per connection
/// (measured by crates/bench). A program that also publishes QoS 1 should raise it for the
/// pipelining it wants.
pub const CONSUMER_OUTGOING_INFLIGHT: u16 = 32;

/// Refusal to send credentials over plaintext MQTT.
#[derive(Debug, thiserror::Error)]
#[error(
    "{origin} asks for plaintext MQTT ({why}). That would send your password and every location \
     event unencrypted. Link Labs' broker speaks MQTT over TLS on port 8883: set \"port\": 8883 \
     (and \"protocol\": \"mqtts\"). Only for a private broker on a trusted network, pass \
     --insecure-plaintext to allow it anyway."
)]
pub struct PlaintextRefused {
    /// The credentials file.
    pub origin: String,
    /// `port 1883` or `protocol "mqtt"`.
    pub why: String,
}

/// How the connection is protected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Security {
    /// MQTT over TLS, verifying the broker against these roots. The only choice by default.
    Tls(TlsRoots),
    /// Plaintext MQTT: only with `--insecure-plaintext`.
    InsecurePlaintext,
}

/// For the "connecting to …" log line: whom we trust, or that nothing is protected.
impl std::fmt::Display for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Security::Tls(roots) => write!(f, "verifying the broker against {roots}"),
            Security::InsecurePlaintext => f.write_str("NONE, plaintext"),
        }
    }
}

/// Everything needed to connect: the credentials, the client id actually used, and the security.
#[derive(Clone, Debug)]
pub struct BrokerTarget {
    /// The validated credentials.
    pub credentials: Credentials,
    /// The client id to connect with (after `--client-id` / `--instance`).
    pub client_id: String,
    /// TLS roots, or plaintext when explicitly allowed.
    pub security: Security,
    /// The credentials file, for messages.
    pub creds_path: PathBuf,
}

/// Why [`ConnectArgs::load_target`] failed. The inner error is kept as the `source`, so
/// [`crate::exit::code_for`] finds it and picks the right exit code.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// The credentials file (given, or the default `./creds.json`) is missing, unreadable or invalid.
    #[error("loading the credentials")]
    Credentials(#[from] CredentialsError),
    /// The credentials ask for plaintext MQTT and `--insecure-plaintext` was not given.
    #[error("checking the connection settings")]
    Plaintext(#[from] PlaintextRefused),
}

impl ConnectArgs {
    /// The broker to connect to: the credentials file (`--creds`, `MQTT_CREDS`, else
    /// `./creds.json`) validated and combined with the flags. The one call an example needs
    /// before it builds its MQTT options.
    ///
    /// A missing file is an error that says where to get one; a program written for real
    /// credentials never quietly connects somewhere else.
    pub fn load_target(&self) -> Result<BrokerTarget, TargetError> {
        let file = match &self.creds {
            Some(path) => CredentialsFile::load(path, "--creds / MQTT_CREDS")?,
            None => CredentialsFile::load(
                Path::new(DEFAULT_CREDS_PATH),
                "the default, as neither --creds nor MQTT_CREDS was given",
            )?,
        };
        Ok(self.target(file)?)
    }

    /// Finds and validates the credentials file.
    ///
    /// `Ok(None)` means nothing was configured and `./creds.json` does not exist: the caller may
    /// start the demo broker. A path given with `--creds`/`MQTT_CREDS` that does not exist is an
    /// error, never the demo — a typo must not silently connect you somewhere else.
    pub fn locate_credentials(&self) -> Result<Option<CredentialsFile>, CredentialsError> {
        match &self.creds {
            Some(path) => CredentialsFile::load(path, "--creds / MQTT_CREDS").map(Some),
            None => {
                let default = Path::new(DEFAULT_CREDS_PATH);
                if default.exists() {
                    CredentialsFile::load(default, "the default ./creds.json").map(Some)
                } else {
                    Ok(None)
                }
            }
        }
    }

    /// The client id to use: `--client-id`, else the one from the file; `-<instance>` appended.
    pub fn client_id_for(&self, credentials: &Credentials) -> String {
        let base = self
            .client_id
            .clone()
            .unwrap_or_else(|| credentials.client_id.clone());
        match &self.instance {
            Some(instance) => format!("{base}-{instance}"),
            None => base,
        }
    }

    /// Combines a loaded credentials file with the flags. Refuses plaintext unless allowed and
    /// logs the file's warnings.
    pub fn target(&self, file: CredentialsFile) -> Result<BrokerTarget, PlaintextRefused> {
        for warning in &file.warnings {
            tracing::warn!("{warning}");
        }
        let credentials = file.credentials;
        let security = if credentials.wants_plaintext() {
            let why = if credentials.port == 1883 {
                "port 1883".to_owned()
            } else {
                format!(
                    "protocol \"{}\"",
                    credentials.protocol.as_deref().unwrap_or_default()
                )
            };
            if !self.insecure_plaintext {
                return Err(PlaintextRefused {
                    origin: file.path.display().to_string(),
                    why,
                });
            }
            tracing::warn!(
                "--insecure-plaintext: connecting WITHOUT TLS ({why}); the password and all data \
                 cross the network unencrypted"
            );
            Security::InsecurePlaintext
        } else {
            if self.insecure_plaintext {
                tracing::warn!(
                    "--insecure-plaintext given, but the credentials use port {} with TLS; \
                     using TLS anyway",
                    credentials.port
                );
            }
            Security::Tls(TlsRoots::from_ca_file(self.ca_file.as_deref()))
        };
        Ok(BrokerTarget {
            client_id: self.client_id_for(&credentials),
            credentials,
            security,
            creds_path: file.path,
        })
    }
}

impl BrokerTarget {
    /// The rustls TLS settings for rumqttc (`None` for plaintext, only with
    /// `--insecure-plaintext`): the broker verified against [`Security::Tls`]'s roots, host name
    /// checked. Pass it to `MqttOptions::set_transport(Transport::tls_with_config(..))`.
    pub fn rumqttc_tls(&self) -> Result<Option<rumqttc::TlsConfiguration>, TlsError> {
        match &self.security {
            Security::Tls(roots) => Ok(Some(roots.rumqttc_rustls()?)),
            Security::InsecurePlaintext => Ok(None),
        }
    }

    /// [`BrokerTarget::rumqttc_tls`] with native-tls (OpenSSL on Linux). Needs the crate feature
    /// `native-tls`.
    #[cfg(feature = "native-tls")]
    pub fn rumqttc_native_tls(&self) -> Result<Option<rumqttc::TlsConfiguration>, TlsError> {
        match &self.security {
            Security::Tls(roots) => Ok(Some(roots.rumqttc_native_tls()?)),
            Security::InsecurePlaintext => Ok(None),
        }
    }

    /// `host:port`, for messages.
    pub fn address(&self) -> String {
        format!("{}:{}", self.credentials.host, self.credentials.port)
    }
}
