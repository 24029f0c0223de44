//! A local, throwaway MQTT v5 broker so that every example works on the first try.
//!
//! # Why this exists
//!
//! The examples in this repository show how to consume the Link Labs Airfinder MQTT broker. To do
//! that for real you need a "MQTT User Credentials Object" (`creds.json`) from the Airfinder UI.
//! A newcomer who just cloned the repository does not have one yet, and "it failed to connect" is a
//! poor first impression. So when an example finds no `creds.json`, it starts a [`DemoBroker`]
//! instead and then runs **exactly the same code** it would run against Link Labs:
//!
//! * the same TLS connection with certificate validation (against a CA generated for this run,
//!   written to [`DemoBroker::ca_path`], instead of the public web PKI),
//! * the same username/password login (credentials generated for this run),
//! * the same `creds.json` format (written to [`DemoBroker::creds_path`]),
//! * Airfinder-*like* JSON events arriving on an Airfinder-*like* topic filter.
//!
//! Nothing here is a Link Labs API: topic names and payload fields are illustrative only. Real
//! Airfinder messages have their own schema; read them with a tolerant JSON parser.
//!
//! This broker is the first-run experience, not a test fixture: the behaviour tests of the
//! examples run against Mosquitto.
//!
//! # Typical use
//!
//! The examples never call this crate: their `main.rs` is written for real credentials only, so
//! a customer can copy it without a broker inside. Each scenario package has a small launcher,
//! `demo/main.rs` (its `default-run`), which calls [`launcher::main`]: with no credentials it
//! starts a [`DemoBroker`] and runs the scenario's program as child processes pointed at it.
//!
//! Or drive the demo yourself (what the launcher does):
//!
//! ```no_run
//! # async fn demo() -> Result<(), demo_broker::DemoError> {
//! use demo_broker::{DemoBroker, DemoOptions};
//!
//! let demo = DemoBroker::start(DemoOptions::default()).await?;
//! eprintln!("{}", demo.banner());
//! // Load `demo.creds_path()` and trust `demo.ca_path()` exactly like real credentials,
//! // connect, subscribe to the topic in creds.json... the demo publisher starts by itself
//! // as soon as your subscription is in place (see `PublisherStart`).
//! demo.shutdown().await;
//! # Ok(())
//! # }
//! ```

pub mod launcher;

use std::fs::OpenOptions;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mqtt5::broker::config::{AuthConfig, AuthMethod, StorageBackend, StorageConfig, TlsConfig};
use mqtt5::broker::{
    BrokerConfig, BrokerEventHandler, BrokerShutdownHandle, ClientSubscribeEvent, MqttBroker,
    SubAckReasonCode,
};
use rand::distr::Alphanumeric;
use rand::Rng;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, MqttOptions};
use rumqttc::{TlsConfiguration, Transport};
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Organisation id used in the generated credentials and topics (Airfinder-like, not real).
const DEMO_ORG: &str = "demo-org";
/// Username written to the generated `creds.json`.
const DEMO_USERNAME: &str = "demo-user";
/// Client id the *consumer* (your example) is told to use in the generated `creds.json`.
const DEMO_CONSUMER_CLIENT_ID: &str = "demo-consumer";
/// Client id of the built-in demo publisher. Different from the consumer's, because a second
/// connection with the same client id takes over (disconnects) the first one.
const PUBLISHER_CLIENT_ID: &str = "demo-publisher";
/// Topic filter written to `creds.json` as `topic`: all demo events.
const DEMO_TOPIC_FILTER: &str = "airfinder/demo-org/events/#";
/// Prefix of the concrete topics the publisher uses: one topic per tag.
const DEMO_TOPIC_PREFIX: &str = "airfinder/demo-org/events/";
/// How long the demo publisher waits before reconnecting after a lost connection.
const PUBLISHER_RETRY_DELAY: Duration = Duration::from_millis(500);
/// How long `start` waits for the broker's accept loop, and `shutdown` for the broker to stop.
const BROKER_STARTUP_TIMEOUT: Duration = Duration::from_secs(10);
const BROKER_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// Illustrative tags the publisher cycles over: (MAC address, area, zone).
const DEMO_TAGS: [(&str, &str, &str); 5] = [
    ("C0:01:00:00:00:01", "Receiving", "Zone A"),
    ("C0:01:00:00:00:02", "Dock 2", "Zone B"),
    ("C0:01:00:00:00:03", "Aisle 7", "Zone C"),
    ("C0:01:00:00:00:04", "Dock 2", "Zone A"),
    ("C0:01:00:00:00:05", "Shipping", "Zone D"),
];

/// When the built-in demo publisher starts sending events.
///
/// Why this matters: MQTT does not keep messages for a subscription that does not exist yet.
/// Events published before your example has subscribed are simply dropped by the broker (that is
/// normal MQTT behaviour, and Link Labs' broker behaves the same way), and a newcomer would see
/// a silent first run. So by default the publisher waits for a subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PublisherStart {
    /// Start as soon as any client other than the publisher has a subscription granted whose
    /// filter matches the demo topics (plain, wildcard or `$share/<group>/...`). Your example
    /// needs no demo-specific code: connect and subscribe as with real credentials, and events
    /// start flowing right after the SUBACK.
    #[default]
    WhenSubscribed,
    /// Start only when [`DemoBroker::start_publisher`] is called. Use this when several
    /// subscribers must all be in place first (for example two members of a shared
    /// subscription that should split the stream from its very first message).
    Manual,
}

/// Settings for [`DemoBroker::start`]. `DemoOptions::default()` suits a human watching a terminal.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoOptions {
    /// Demo events per second. The default (5) is slow enough to read; tests use more.
    pub rate_per_sec: f64,
    /// Stop publishing after this many events (`None`: publish until shutdown).
    pub max_messages: Option<u64>,
    /// When the publisher starts; see [`PublisherStart`] for why the default waits.
    pub publisher_start: PublisherStart,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            rate_per_sec: 5.0,
            max_messages: None,
            publisher_start: PublisherStart::WhenSubscribed,
        }
    }
}

/// Why the demo broker could not start. Each variant says which step failed, in plain words,
/// because a newcomer who sees this has not changed anything yet.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The options asked for something impossible (e.g. a rate of 0 events per second).
    #[error("invalid demo broker options: {0}")]
    InvalidOptions(String),
    /// A file of the demo (certificate, key, password file or `creds.json`) could not be written.
    #[error("could not write the demo broker's file {path}: {source}")]
    Files {
        /// The file or folder that failed.
        path: PathBuf,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// Generating the throwaway CA or server certificate failed.
    #[error("could not generate the demo certificates: {0}")]
    Certificates(#[from] rcgen::Error),
    /// Building the demo publisher's TLS client configuration failed.
    #[error("could not set up TLS for the demo publisher: {0}")]
    Tls(#[from] rustls::Error),
    /// The embedded broker refused its configuration, could not bind 127.0.0.1, or stopped early.
    #[error("the demo broker could not start: {0}")]
    Broker(String),
}

/// A running local demo broker plus a demo publisher, with generated credentials.
///
/// It listens on `127.0.0.1` only (never on the network), speaks MQTT v5 over TLS only (there is
/// no plaintext port, as with Link Labs) and requires the generated username and password.
/// Sessions are kept in memory, so persistent-session examples (`clean_start = false` plus a
/// session expiry) behave as they would against a real broker, until this process exits.
///
/// All files live in a fresh temporary folder that is deleted when this value is dropped.
/// Call [`DemoBroker::shutdown`] to stop it cleanly; dropping it stops it on a best-effort basis.
pub struct DemoBroker {
    dir: tempfile::TempDir,
    creds_path: PathBuf,
    ca_path: PathBuf,
    port: u16,
    broker_shutdown: BrokerShutdownHandle,
    broker_task: Option<JoinHandle<Result<(), mqtt5::MqttError>>>,
    publisher_tasks: Vec<JoinHandle<()>>,
    start_publishing: Arc<watch::Sender<bool>>,
}

impl std::fmt::Debug for DemoBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DemoBroker")
            .field("dir", &self.dir.path())
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl DemoBroker {
    /// Generates throwaway credentials and a CA, starts the broker on `127.0.0.1:<random port>`,
    /// writes `creds.json`, and prepares the demo publisher.
    ///
    /// Why it does each step:
    /// * installs rustls's `aws-lc-rs` crypto provider as the process default (if none is
    ///   installed yet), because the broker and the MQTT client pull in two rustls back-ends and
    ///   rustls then refuses to guess;
    /// * generates a CA and a server certificate for `localhost` and `127.0.0.1`, so your client
    ///   validates the server exactly as it validates Link Labs' certificate;
    /// * binds port 0 so two demos (or a demo and a real broker on 8883) never collide.
    ///
    /// Needs a Tokio runtime (a multi-threaded one is best: password checks are CPU work).
    ///
    /// # Errors
    /// See [`DemoError`]: bad options, an unwritable temporary folder, or a broker that could
    /// not bind or start.
    pub async fn start(options: DemoOptions) -> Result<DemoBroker, DemoError> {
        if !(options.rate_per_sec.is_finite() && options.rate_per_sec > 0.0) {
            return Err(DemoError::InvalidOptions(format!(
                "rate_per_sec must be a positive number, got {}",
                options.rate_per_sec
            )));
        }
        install_crypto_provider();

        let dir = tempfile::Builder::new()
            .prefix("linklabs-demo-broker-")
            .tempdir()
            .map_err(|source| DemoError::Files {
                path: std::env::temp_dir(),
                source,
            })?;

        // 1. Throwaway PKI, written as files because the broker takes file paths.
        let pki = DemoPki::generate()?;
        let ca_path = dir.path().join("ca.pem");
        let cert_path = dir.path().join("server.pem");
        let key_path = dir.path().join("server.key");
        write_file(&ca_path, pki.ca_pem.as_bytes(), false)?;
        write_file(&cert_path, pki.server_pem.as_bytes(), false)?;
        write_file(&key_path, pki.server_key_pem.as_bytes(), true)?;

        // 2. A random password, stored only as an Argon2 hash in the broker's password file,
        //    like any real broker does.
        let password = random_password();
        let hash = demo_password_hash(&password)
            .map_err(|e| DemoError::Broker(format!("could not hash the password: {e}")))?;
        let passwd_path = dir.path().join("passwd");
        write_file(
            &passwd_path,
            format!("{DEMO_USERNAME}:{hash}\n").as_bytes(),
            true,
        )?;

        // 3. The broker: TLS only, 127.0.0.1 only, password required, sessions in memory.
        let (start_tx, start_rx) = watch::channel(false);
        let start_publishing = Arc::new(start_tx);
        let mut config = BrokerConfig::default()
            // No plaintext listener. (With one, a taken TLS port would silently disable TLS.)
            .with_bind_addresses(vec![])
            .with_tls(
                TlsConfig::new(cert_path, key_path)
                    .with_bind_address(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))),
            )
            .with_auth(AuthConfig {
                allow_anonymous: false,
                password_file: Some(passwd_path),
                auth_method: AuthMethod::Password,
                ..AuthConfig::default()
            })
            // The default storage is a ./mqtt_storage folder in the current directory; memory
            // keeps sessions (persistence stays on) without leaving files behind.
            .with_storage(
                StorageConfig::new()
                    .with_backend(StorageBackend::Memory)
                    .with_persistence(true),
            )
            .with_sys_topics_enabled(false);
        if options.publisher_start == PublisherStart::WhenSubscribed {
            config = config.with_event_handler(Arc::new(StartWhenSubscribed {
                start_publishing: Arc::clone(&start_publishing),
            }));
        }

        let mut broker = MqttBroker::with_config(config)
            .await
            .map_err(|e| DemoError::Broker(e.to_string()))?;
        let port = broker
            .tls_local_addr()
            .ok_or_else(|| DemoError::Broker("the TLS listener did not bind".into()))?
            .port();

        // 4. creds.json in Link Labs' format, so the example loads it with its normal code.
        let creds_path = dir.path().join("creds.json");
        let creds = CredentialsObject {
            host: "localhost",
            port,
            client_id: DEMO_CONSUMER_CLIENT_ID,
            username: DEMO_USERNAME,
            password: &password,
            topic: DEMO_TOPIC_FILTER,
            organization_id: DEMO_ORG,
            protocol: "mqtts",
            subscribe_acl: "airfinder/demo-org/#",
            publish_acl: None,
            subscription_date: rfc3339_utc(SystemTime::now()),
            user_id: 0,
            is_enabled: 1,
            subscription_type: "organization",
        };
        let json = serde_json::to_string_pretty(&creds).expect("plain struct serialises");
        write_file(&creds_path, json.as_bytes(), true)?;
        let publisher_tls = publisher_tls_config(&pki.ca_der)?;

        // 5. Run the broker. Everything that can fail has been done, so nothing below has to
        //    stop it again except a broker that does not come up.
        let broker_shutdown = broker.shutdown_handle();
        let mut ready = broker.ready_receiver();
        let mut broker_task = tokio::spawn(async move { broker.run().await });

        // Wait until the accept loop runs: only then is a shutdown request guaranteed to be seen.
        let became_ready = tokio::time::timeout(BROKER_STARTUP_TIMEOUT, ready.wait_for(|r| *r))
            .await
            .map(|r| r.is_ok());
        if became_ready != Ok(true) {
            broker_shutdown.shutdown();
            let reason = match tokio::time::timeout(Duration::from_secs(1), &mut broker_task).await
            {
                Ok(Ok(Err(e))) => e.to_string(),
                Ok(Err(e)) => format!("broker task failed: {e}"),
                _ => {
                    broker_task.abort();
                    "it did not become ready in time".to_string()
                }
            };
            return Err(DemoError::Broker(reason));
        }

        // 6. The demo publisher connects now, and publishes once told to start.
        let publisher_tasks = spawn_publisher(port, publisher_tls, password, &options, start_rx);

        Ok(DemoBroker {
            dir,
            creds_path,
            ca_path,
            port,
            broker_shutdown,
            broker_task: Some(broker_task),
            publisher_tasks,
            start_publishing,
        })
    }

    /// Starts the demo publisher now (it is idempotent: calling it again does nothing).
    ///
    /// With [`PublisherStart::WhenSubscribed`] (the default) you never need this. With
    /// [`PublisherStart::Manual`], call it once all your subscriptions are granted, so that no
    /// event is published before anyone can receive it.
    pub fn start_publisher(&self) {
        self.start_publishing.send_replace(true);
    }

    /// Path of the generated `creds.json`: load it exactly as you would load real Link Labs
    /// credentials. It is readable by the current user only (mode 0600), as credentials should be.
    pub fn creds_path(&self) -> &Path {
        &self.creds_path
    }

    /// Path of the generated CA certificate (PEM). Trust **only** this CA when connecting to the
    /// demo broker; against Link Labs you trust the system's root certificates instead.
    pub fn ca_path(&self) -> &Path {
        &self.ca_path
    }

    /// TCP port of the TLS listener on `127.0.0.1` (chosen by the operating system).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The topic filter written to `creds.json` as `topic`; demo events arrive on topics under it.
    pub fn topic_filter(&self) -> &str {
        DEMO_TOPIC_FILTER
    }

    /// A few lines to print before the example runs, so nobody mistakes the demo for Link Labs.
    pub fn banner(&self) -> String {
        format!(
            "==> LOCAL DEMO BROKER on 127.0.0.1:{port} -- this is NOT Link Labs.\n\
             \x20   Credentials and a throwaway CA were generated for this run only:\n\
             \x20     credentials: {creds}\n\
             \x20     CA:          {ca}\n\
             \x20   A demo publisher sends illustrative Airfinder-like events to {filter}.\n\
             \x20   To use your real credentials, put creds.json in the current directory\n\
             \x20   (Airfinder UI -> Configuration -> Subscriptions -> \"Copy All Fields\") or pass --creds PATH.",
            port = self.port,
            creds = self.creds_path.display(),
            ca = self.ca_path.display(),
            filter = DEMO_TOPIC_FILTER,
        )
    }

    /// Stops the demo publisher, then the broker, and waits (a few seconds at most) for the
    /// broker to finish. Connected clients are disconnected by the broker; with rumqttc 0.25 they
    /// see that as a closed connection, not as a DISCONNECT reason code.
    pub async fn shutdown(mut self) {
        self.stop_publisher();
        self.broker_shutdown.shutdown();
        if let Some(mut task) = self.broker_task.take() {
            match tokio::time::timeout(BROKER_SHUTDOWN_TIMEOUT, &mut task).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => tracing::warn!("demo broker stopped with an error: {e}"),
                Ok(Err(e)) => tracing::warn!("demo broker task failed: {e}"),
                Err(_) => {
                    tracing::warn!("demo broker did not stop in time; aborting it");
                    task.abort();
                }
            }
        }
    }

    fn stop_publisher(&mut self) {
        for task in self.publisher_tasks.drain(..) {
            task.abort();
        }
    }
}

impl Drop for DemoBroker {
    /// Best effort: stop the publisher and signal the broker. Prefer [`DemoBroker::shutdown`],
    /// which also waits for the broker to finish.
    fn drop(&mut self) {
        self.stop_publisher();
        if self.broker_task.is_some() {
            self.broker_shutdown.shutdown();
        }
    }
}

/// Installs `aws-lc-rs` as rustls's process-wide crypto provider, unless one is installed already.
///
/// Both the embedded broker (which enables rustls's `ring` back-end) and rumqttc (which enables
/// `aws-lc-rs`) are in this process; with two back-ends compiled in, rustls cannot pick one on its
/// own and panics on first use. Installing one explicitly avoids that.
fn install_crypto_provider() {
    // Err only means another part of the program already installed a provider: that is fine.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// The throwaway PKI of one demo run.
struct DemoPki {
    ca_pem: String,
    ca_der: rustls::pki_types::CertificateDer<'static>,
    server_pem: String,
    server_key_pem: String,
}

impl DemoPki {
    fn generate() -> Result<Self, rcgen::Error> {
        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.distinguished_name.push(
            DnType::CommonName,
            "linklabs-mqtt-rust LOCAL DEMO CA (throwaway, not Link Labs)",
        );
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params.self_signed(&ca_key)?;
        let issuer = Issuer::new(ca_params, ca_key);

        // The names a client may use to reach the demo: creds.json says "localhost".
        let server_key = KeyPair::generate()?;
        let mut server_params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])?;
        server_params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        server_params.use_authority_key_identifier_extension = true;
        let server_cert = server_params.signed_by(&server_key, &issuer)?;

        Ok(Self {
            ca_pem: ca_cert.pem(),
            ca_der: ca_cert.der().clone(),
            server_pem: server_cert.pem(),
            server_key_pem: server_key.serialize_pem(),
        })
    }
}

/// Writes a new file; `private` files get mode 0600 on Unix (keys, password hashes, creds.json).
fn write_file(path: &Path, contents: &[u8], private: bool) -> Result<(), DemoError> {
    let mut open = OpenOptions::new();
    open.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        open.mode(if private { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = private;
    open.open(path)
        .and_then(|mut file| file.write_all(contents))
        .map_err(|source| DemoError::Files {
            path: path.to_path_buf(),
            source,
        })
}

/// Hashes the demo password with Argon2id, in the PHC format the broker's password file expects
/// (`$argon2id$v=19$m=...,t=...,p=...$salt$hash`).
///
/// Why not the broker's own `PasswordAuthProvider::hash_password`: it uses Argon2's default cost
/// (19 MiB, 2 passes), and the broker re-does that work on every CONNECT. In a debug build (what
/// `cargo run` gives a newcomer) that is close to a second per connection. The broker verifies
/// with the cost parameters stored *in the hash*, so a cheaper hash makes every demo connect fast.
/// That trade-off suits a broker that lives for one process, listens on 127.0.0.1 only and has a
/// random 24-character password; a real broker should keep the default (or a higher) cost.
fn demo_password_hash(password: &str) -> Result<String, argon2::password_hash::Error> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    use argon2::{Algorithm, Argon2, Params, Version};

    let mut salt = [0u8; 16];
    rand::rng().fill(&mut salt);
    let salt = SaltString::encode_b64(&salt)?;
    let params = Params::new(2 * 1024, 1, 1, None)?; // 2 MiB, 1 pass, 1 lane
    let hash = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(password.as_bytes(), &salt)?;
    Ok(hash.to_string())
}

fn random_password() -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(24)
        .map(char::from)
        .collect()
}

/// Link Labs' "MQTT User Credentials Object", as copied from the Airfinder UI
/// (Configuration → Subscriptions → "Copy All Fields"). Field order follows the UI.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CredentialsObject<'a> {
    host: &'a str,
    port: u16,
    client_id: &'a str,
    username: &'a str,
    password: &'a str,
    topic: &'a str,
    organization_id: &'a str,
    protocol: &'a str,
    subscribe_acl: &'a str,
    publish_acl: Option<&'a str>,
    subscription_date: String,
    user_id: u32,
    is_enabled: u8,
    subscription_type: &'a str,
}

/// Starts the publisher when a consumer's subscription that can receive demo events is granted.
struct StartWhenSubscribed {
    start_publishing: Arc<watch::Sender<bool>>,
}

impl BrokerEventHandler for StartWhenSubscribed {
    fn on_client_subscribe<'a>(
        &'a self,
        event: ClientSubscribeEvent,
    ) -> Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>> {
        Box::pin(async move {
            if &*event.client_id == PUBLISHER_CLIENT_ID {
                return;
            }
            let sample_topic = demo_topic(DEMO_TAGS[0].0);
            let wants_demo_events = event.subscriptions.iter().any(|s| {
                matches!(
                    s.result,
                    SubAckReasonCode::GrantedQoS0
                        | SubAckReasonCode::GrantedQoS1
                        | SubAckReasonCode::GrantedQoS2
                ) && filter_matches(&s.topic_filter, &sample_topic)
            });
            if wants_demo_events && !*self.start_publishing.borrow() {
                tracing::debug!(
                    "client {} subscribed: demo publisher starts",
                    event.client_id
                );
                self.start_publishing.send_replace(true);
            }
        })
    }
}

/// MQTT topic-filter matching (`+`, `#`, and `$share/<group>/` stripped), enough to decide
/// whether a subscriber would receive the demo events.
fn filter_matches(filter: &str, topic: &str) -> bool {
    let filter = match filter.strip_prefix("$share/") {
        Some(rest) => rest.split_once('/').map_or("", |(_group, f)| f),
        None => filter,
    };
    let mut filter_levels = filter.split('/');
    let mut topic_levels = topic.split('/');
    loop {
        match (filter_levels.next(), topic_levels.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(f), Some(t)) if f == t => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// One concrete topic per tag, e.g. `airfinder/demo-org/events/c00100000005`.
fn demo_topic(tag_mac: &str) -> String {
    let mac: String = tag_mac
        .chars()
        .filter(|c| *c != ':')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    format!("{DEMO_TOPIC_PREFIX}{mac}")
}

/// An illustrative Airfinder-like location event. NOT the Airfinder schema: field names were
/// chosen to look familiar; real messages carry other and more fields.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DemoEvent<'a> {
    seq: u64,
    event_type: &'a str,
    tag_mac: &'a str,
    site_name: &'a str,
    area_name: &'a str,
    zone_name: &'a str,
    x: f64,
    y: f64,
    battery_level: u8,
    timestamp: String,
    source: &'a str,
}

/// Builds the `seq`-th demo event and its topic. Positions drift deterministically so a human
/// can see tags "move" between messages.
fn demo_event(seq: u64) -> (String, Vec<u8>) {
    let (tag_mac, area_name, zone_name) = DEMO_TAGS[(seq % DEMO_TAGS.len() as u64) as usize];
    let step = (seq / DEMO_TAGS.len() as u64) as f64;
    let round = |v: f64| (v * 10.0).round() / 10.0;
    let event = DemoEvent {
        seq,
        event_type: "location",
        tag_mac,
        site_name: "Demo Warehouse",
        area_name,
        zone_name,
        x: round(2.0 + (step * 1.3 + seq as f64) % 40.0),
        y: round(1.5 + (step * 0.7) % 25.0),
        battery_level: 100 - (seq % 40) as u8,
        timestamp: rfc3339_utc(SystemTime::now()),
        source: "demo-broker",
    };
    let payload = serde_json::to_vec(&event).expect("plain struct serialises");
    (demo_topic(tag_mac), payload)
}

/// Connects the demo publisher (QoS 1, TLS trusting the generated CA, same credentials as the
/// consumer) and returns its two tasks: one drives the connection, one publishes.
///
/// rumqttc's rule: the task that polls the event loop must never await the client, otherwise
/// both wait for each other once the request queue is full. Hence two tasks.
fn spawn_publisher(
    port: u16,
    tls: rustls::ClientConfig,
    password: String,
    options: &DemoOptions,
    mut start_rx: watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    let mut mqtt = MqttOptions::new(PUBLISHER_CLIENT_ID, "localhost", port);
    mqtt.set_credentials(DEMO_USERNAME, password)
        .set_keep_alive(Duration::from_secs(30))
        .set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
            Arc::new(tls),
        )));
    let (client, mut event_loop) = AsyncClient::new(mqtt, 64);

    // Task 1: drive the connection; on any error wait a little, then poll again (= reconnect).
    let driver = tokio::spawn(async move {
        loop {
            if let Err(e) = event_loop.poll().await {
                tracing::debug!("demo publisher connection: {e}; retrying");
                tokio::time::sleep(PUBLISHER_RETRY_DELAY).await;
            }
        }
    });

    // Task 2: wait for the start signal, then publish at the configured rate.
    let period = Duration::from_secs_f64(1.0 / options.rate_per_sec);
    let max_messages = options.max_messages;
    let publisher = tokio::spawn(async move {
        if start_rx.wait_for(|started| *started).await.is_err() {
            return;
        }
        let mut ticks = tokio::time::interval(period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        for seq in 1.. {
            if max_messages.is_some_and(|max| seq > max) {
                break;
            }
            ticks.tick().await;
            let (topic, payload) = demo_event(seq);
            // Only fails if the driver task is gone, i.e. we are shutting down.
            if client
                .publish(topic, QoS::AtLeastOnce, false, payload)
                .await
                .is_err()
            {
                break;
            }
        }
    });

    vec![driver, publisher]
}

/// The publisher's TLS settings: trust only the generated CA, with the `aws-lc-rs` provider
/// named explicitly (so nothing depends on which provider is the process default).
fn publisher_tls_config(
    ca_der: &rustls::pki_types::CertificateDer<'static>,
) -> Result<rustls::ClientConfig, DemoError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca_der.clone())?;
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth())
}

/// Formats a time as RFC 3339 in UTC with milliseconds, e.g. `2025-01-31T12:34:56.789Z`.
/// (A few lines here instead of a date-time dependency for one timestamp format.)
fn rfc3339_utc(time: SystemTime) -> String {
    let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since_epoch.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil-from-days (Howard Hinnant's algorithm), valid for all dates after 1970.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60,
        since_epoch.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(rfc3339_utc(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(rfc3339_utc(t), "2023-11-14T22:13:20.123Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339_utc(leap), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn filters_match_like_a_broker() {
        let topic = demo_topic("C0:01:00:00:00:05");
        assert_eq!(topic, "airfinder/demo-org/events/c00100000005");
        for filter in [
            DEMO_TOPIC_FILTER,
            "airfinder/demo-org/#",
            "#",
            "airfinder/+/events/+",
            "$share/g/airfinder/demo-org/events/#",
            &topic,
        ] {
            assert!(filter_matches(filter, &topic), "{filter}");
        }
        for filter in [
            "airfinder/other-org/#",
            "airfinder/demo-org/events",
            "airfinder/+/events",
            "$share/g",
        ] {
            assert!(!filter_matches(filter, &topic), "{filter}");
        }
    }

    #[test]
    fn the_broker_accepts_the_cheap_demo_hash() {
        let hash = demo_password_hash("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=2048,t=1,p=1$"), "{hash}");
        assert!(mqtt5::broker::PasswordAuthProvider::verify_password(
            "correct horse",
            &hash
        ));
        assert!(!mqtt5::broker::PasswordAuthProvider::verify_password(
            "wrong", &hash
        ));
    }

    #[test]
    fn demo_events_are_json_of_a_readable_size() {
        for seq in 1..=50 {
            let (topic, payload) = demo_event(seq);
            assert!(filter_matches(DEMO_TOPIC_FILTER, &topic));
            let v: serde_json::Value = serde_json::from_slice(&payload).unwrap();
            assert_eq!(v["seq"], seq);
            assert!((180..=260).contains(&payload.len()), "{}", payload.len());
        }
    }
}
