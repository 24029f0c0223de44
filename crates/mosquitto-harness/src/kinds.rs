//! Brokers of other kinds than Mosquitto, behind one type ([`TestBroker`]) so that a test can run
//! the same scenario against each of them (issue #13).
//!
//! The customer's broker is Link Labs' hosted service, whose implementation the tests do not
//! know; what they prove on Mosquitto alone is "works on Mosquitto". Brokers differ in ways an
//! example meets (the takeover signal, shared-subscription dispatch, session expiry, flow
//! control), so the scenario tests run on three implementations:
//!
//! - [`BrokerKind::Mosquitto`]: Mosquitto 2 as a child process ([`MosquittoBroker`], unchanged);
//! - [`BrokerKind::Mqtt5`]: the broker of the `mqtt5` crate (0.49), the same one the embedded demo
//!   broker uses, run in this process on its own Tokio runtime;
//! - [`BrokerKind::Rmqtt`]: rmqtt (`rmqttd`, single node) as a child process; installed with
//!   `cargo install --locked rmqttd` (scripts/test does it once, into `~/.cargo/bin`).
//!
//! Every kind gets the same setup: a throwaway CA, a server certificate for `localhost` and
//! `127.0.0.1`, one user with a random password (no anonymous access), TLS only, on a port the
//! OS picked. What a kind does not offer is said on the method that would need it.

use std::fmt;
use std::fs;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rand::distr::{Alphanumeric, SampleString};
use tempfile::TempDir;

use crate::broker::{
    copy_lines_to_log, describe_status, find_program, send_signal, set_mode, write_file, LogBuffer,
};
use crate::certs::ThrowawayCa;
use crate::client::BrokerEndpoint;
use crate::error::{HarnessError, IoContext};
use crate::{BrokerOptions, MosquittoBroker};

/// How often readiness is polled.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// How long a broker of another kind may take to accept connections (rmqtt starts in ~1 s on
/// an idle machine; a loaded CI machine is slower).
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How long `Drop` waits after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// How to get `rmqttd`, said whenever it is missing.
const RMQTT_INSTALL: &str = "rmqtt is the third broker kind of the behaviour tests (issue #13). \
    Install it with `sudo apt-get install -y protobuf-compiler && cargo install --locked rmqttd` \
    (a ~10 min release build, once); scripts/test does this for you.";

/// A broker implementation the harness can start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BrokerKind {
    /// Mosquitto 2 (Debian's package), a child process: the reference broker of every test.
    Mosquitto,
    /// The `mqtt5` crate's broker (0.49), in this process: the embedded demo broker's engine.
    Mqtt5,
    /// rmqtt (`rmqttd`), single node, a child process.
    Rmqtt,
}

impl BrokerKind {
    /// Every kind, in the order tables list them.
    pub const ALL: [BrokerKind; 3] = [BrokerKind::Mosquitto, BrokerKind::Mqtt5, BrokerKind::Rmqtt];

    /// A short lowercase name: `mosquitto`, `mqtt5`, `rmqtt` (used in test names and tables).
    pub fn name(self) -> &'static str {
        match self {
            BrokerKind::Mosquitto => "mosquitto",
            BrokerKind::Mqtt5 => "mqtt5",
            BrokerKind::Rmqtt => "rmqtt",
        }
    }

    /// The kind named `name` (as [`name`](Self::name) spells it).
    pub fn from_name(name: &str) -> Option<BrokerKind> {
        BrokerKind::ALL
            .into_iter()
            .find(|kind| kind.name() == name.trim())
    }
}

impl fmt::Display for BrokerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Settings every kind understands. Build with struct-update syntax from `default()`.
#[derive(Debug, Clone)]
pub struct KindOptions {
    /// The broker's per-client queue limit for QoS 1 messages held for a client (offline, or
    /// beyond its in-flight window). Each broker's own default is small (Mosquitto 1000, mqtt5
    /// 10,000, rmqtt 1000) and the rest is dropped, which would look like a bug in the example
    /// under test; the default here is 100,000. The broker table measures what happens past it.
    pub max_queued_messages: u32,
}

impl Default for KindOptions {
    fn default() -> Self {
        KindOptions {
            max_queued_messages: 100_000,
        }
    }
}

/// A running broker of any [`BrokerKind`], with TLS, password authentication and a throwaway CA.
///
/// It offers what the scenario tests need from any kind: where to connect
/// ([`host`](Self::host), [`tls_port`](Self::tls_port), [`ca_path`](Self::ca_path)), who to be
/// ([`username`](Self::username), [`password`](Self::password)), the Link Labs credentials file
/// ([`write_creds`](Self::write_creds)), rumqttc options ([`mqtt_options`](Self::mqtt_options)),
/// and [`crate::Publisher::connect_to`] for test traffic. Dropping it stops the broker.
pub struct TestBroker {
    inner: Inner,
    version: String,
}

enum Inner {
    Mosquitto(MosquittoBroker),
    Mqtt5(Mqtt5Broker),
    Rmqtt(RmqttBroker),
}

impl fmt::Debug for TestBroker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestBroker")
            .field("kind", &self.kind())
            .field("version", &self.version)
            .field("tls_port", &self.tls_port())
            .finish_non_exhaustive()
    }
}

impl TestBroker {
    /// Starts a broker of `kind` with `options` and waits until it accepts TLS connections.
    ///
    /// Fails (never skips) when the kind's program is missing: [`HarnessError::NotInstalled`]
    /// for Mosquitto, [`HarnessError::KindNotInstalled`] for rmqtt, each saying how to install.
    pub fn start(kind: BrokerKind, options: KindOptions) -> Result<TestBroker, HarnessError> {
        let inner = match kind {
            BrokerKind::Mosquitto => Inner::Mosquitto(MosquittoBroker::start(BrokerOptions {
                max_queued_messages: options.max_queued_messages,
                ..BrokerOptions::default()
            })?),
            BrokerKind::Mqtt5 => Inner::Mqtt5(Mqtt5Broker::start(&options)?),
            BrokerKind::Rmqtt => Inner::Rmqtt(RmqttBroker::start(&options)?),
        };
        let version = match &inner {
            Inner::Mosquitto(_) => mosquitto_version(),
            Inner::Mqtt5(_) => format!("mqtt5 {MQTT5_VERSION}"),
            Inner::Rmqtt(rmqtt) => rmqtt.version.clone(),
        };
        Ok(TestBroker { inner, version })
    }

    /// Which implementation this is.
    pub fn kind(&self) -> BrokerKind {
        match self.inner {
            Inner::Mosquitto(_) => BrokerKind::Mosquitto,
            Inner::Mqtt5(_) => BrokerKind::Mqtt5,
            Inner::Rmqtt(_) => BrokerKind::Rmqtt,
        }
    }

    /// Implementation and version as the broker reports it, e.g. `mosquitto 2.0.11`,
    /// `mqtt5 0.49.0`, `rmqtt 0.24.0`: every row of a measurement names it.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The Mosquitto broker inside, for tests that need its log or restart it.
    pub fn mosquitto(&self) -> Option<&MosquittoBroker> {
        match &self.inner {
            Inner::Mosquitto(broker) => Some(broker),
            _ => None,
        }
    }

    /// The host name clients use; the server certificate is valid for it.
    pub fn host(&self) -> &str {
        "localhost"
    }

    /// The TLS port.
    pub fn tls_port(&self) -> u16 {
        match &self.inner {
            Inner::Mosquitto(broker) => broker.tls_port(),
            Inner::Mqtt5(broker) => broker.port,
            Inner::Rmqtt(broker) => broker.node.tls_port,
        }
    }

    /// PEM file of the CA that signed the server certificate.
    pub fn ca_path(&self) -> &Path {
        match &self.inner {
            Inner::Mosquitto(broker) => broker.ca_path(),
            Inner::Mqtt5(broker) => &broker.files.ca_path,
            Inner::Rmqtt(broker) => &broker.files.ca_path,
        }
    }

    /// The only user the broker accepts.
    pub fn username(&self) -> &str {
        match &self.inner {
            Inner::Mosquitto(broker) => broker.username(),
            Inner::Mqtt5(broker) => &broker.files.username,
            Inner::Rmqtt(broker) => &broker.files.username,
        }
    }

    /// The password of [`username`](Self::username).
    pub fn password(&self) -> &str {
        match &self.inner {
            Inner::Mosquitto(broker) => broker.password(),
            Inner::Mqtt5(broker) => &broker.files.password,
            Inner::Rmqtt(broker) => &broker.files.password,
        }
    }

    /// What the broker logged so far. The mqtt5 broker runs in this process and logs through
    /// `tracing` only: for it this is a note saying so, never its log.
    pub fn log(&self) -> String {
        match &self.inner {
            Inner::Mosquitto(broker) => broker.log(),
            Inner::Mqtt5(_) => {
                "(the mqtt5 broker runs in-process; it logs through tracing only)\n".to_string()
            }
            Inner::Rmqtt(broker) => broker.log.snapshot(),
        }
    }

    /// Stops the broker like a crash (SIGKILL for the child processes; the mqtt5 broker is
    /// shut down, which closes every connection at once). Nothing more is delivered after it.
    pub fn kill(&mut self) {
        match &mut self.inner {
            Inner::Mosquitto(broker) => broker.kill(),
            Inner::Mqtt5(broker) => broker.stop(),
            Inner::Rmqtt(broker) => broker.kill(),
        }
    }
}

impl BrokerEndpoint for TestBroker {
    fn host(&self) -> &str {
        TestBroker::host(self)
    }
    fn tls_port(&self) -> u16 {
        TestBroker::tls_port(self)
    }
    fn ca_path(&self) -> &Path {
        TestBroker::ca_path(self)
    }
    fn username(&self) -> &str {
        TestBroker::username(self)
    }
    fn password(&self) -> &str {
        TestBroker::password(self)
    }
}

/// `mosquitto 2.0.11` from `mosquitto -h` (it prints its version there and exits 3).
fn mosquitto_version() -> String {
    let output = find_program("mosquitto")
        .ok()
        .and_then(|program| Command::new(program).arg("-h").output().ok());
    let text = output
        .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
        .unwrap_or_default();
    text.lines()
        .find_map(|line| line.trim().strip_prefix("mosquitto version "))
        .map_or_else(
            || "mosquitto (version unknown)".to_string(),
            |version| format!("mosquitto {}", version.trim()),
        )
}

/// Files and credentials every kind other than Mosquitto is set up with.
struct KindFiles {
    ca_path: PathBuf,
    username: String,
    password: String,
    // Last: the files outlive the broker that reads them.
    dir: TempDir,
}

impl KindFiles {
    /// A temp dir with `ca.pem`, `server.pem` and `server.key` for `names`, and a random user.
    fn generate(prefix: &str, ca: &ThrowawayCa, names: &[&str]) -> Result<KindFiles, HarnessError> {
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir()
            .context(|| "creating a temporary directory".to_string())?;
        set_mode(dir.path(), 0o755)?;
        let ca_path = dir.path().join("ca.pem");
        write_file(&ca_path, &ca.ca_pem(), 0o644)?;
        let (cert, key) = ca.server_pem(names)?;
        write_file(&dir.path().join("server.pem"), &cert, 0o644)?;
        write_file(&dir.path().join("server.key"), &key, 0o600)?;
        let mut rng = rand::rng();
        Ok(KindFiles {
            ca_path,
            username: format!("harness-{}", Alphanumeric.sample_string(&mut rng, 8)),
            password: Alphanumeric.sample_string(&mut rng, 24),
            dir,
        })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

// ---------------------------------------------------------------------------------------------
// mqtt5

/// The pinned version of the `mqtt5` crate (workspace Cargo.toml: `=0.49.0`).
const MQTT5_VERSION: &str = "0.49.0";

/// The `mqtt5` broker on a private Tokio runtime thread, TLS only on 127.0.0.1.
///
/// Traps handled here (measured, see shared notes): rustls's process-wide provider must be
/// installed first (mqtt5 enables `ring`, rumqttc `aws-lc-rs`); TLS takes file paths; the
/// default storage is a `./mqtt_storage` folder, so sessions are kept in memory instead; a
/// plaintext listener next to TLS would hide a TLS bind failure, so there is none.
/// It cannot be restarted with its sessions (memory storage): [`TestBroker::kill`] ends it.
struct Mqtt5Broker {
    port: u16,
    shutdown: mqtt5::broker::BrokerShutdownHandle,
    thread: Option<JoinHandle<()>>,
    files: KindFiles,
}

impl Mqtt5Broker {
    fn start(options: &KindOptions) -> Result<Mqtt5Broker, HarnessError> {
        let ca = ThrowawayCa::generate()?;
        let files = KindFiles::generate("mqtt5-harness-", &ca, &["localhost", "127.0.0.1"])?;
        let hash = argon2_hash(&files.password)?;
        let passwd = files.path("passwd");
        write_file(&passwd, &format!("{}:{hash}\n", files.username), 0o600)?;

        use mqtt5::broker::config::{
            AuthConfig, AuthMethod, StorageBackend, StorageConfig, TlsConfig,
        };
        let config = mqtt5::broker::BrokerConfig::default()
            .with_bind_addresses(vec![])
            .with_tls(
                TlsConfig::new(files.path("server.pem"), files.path("server.key"))
                    .with_bind_address(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))),
            )
            .with_auth(AuthConfig {
                allow_anonymous: false,
                password_file: Some(passwd),
                auth_method: AuthMethod::Password,
                ..AuthConfig::default()
            })
            .with_storage(
                StorageConfig::new()
                    .with_backend(StorageBackend::Memory)
                    .with_persistence(true)
                    .with_max_queued_messages_per_client(options.max_queued_messages as usize),
            )
            .with_sys_topics_enabled(false);

        type Started = Result<(u16, mqtt5::broker::BrokerShutdownHandle), String>;
        let (started_tx, started_rx) = mpsc::channel::<Started>();
        let thread = thread::Builder::new()
            .name("mqtt5-broker".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(err) => {
                        let _ = started_tx.send(Err(format!("a Tokio runtime: {err}")));
                        return;
                    }
                };
                runtime.block_on(async move {
                    // Ignored: another part of the process may have installed one already.
                    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
                    let mut broker = match mqtt5::broker::MqttBroker::with_config(config).await {
                        Ok(broker) => broker,
                        Err(err) => {
                            let _ = started_tx.send(Err(err.to_string()));
                            return;
                        }
                    };
                    let Some(addr) = broker.tls_local_addr() else {
                        let _ = started_tx.send(Err("the TLS listener did not bind".into()));
                        return;
                    };
                    let _ = started_tx.send(Ok((addr.port(), broker.shutdown_handle())));
                    if let Err(err) = broker.run().await {
                        eprintln!("mosquitto-harness: the mqtt5 broker stopped: {err}");
                    }
                });
            })
            .context(|| "starting the mqtt5 broker thread".to_string())?;
        let (port, shutdown) = match started_rx.recv_timeout(START_TIMEOUT) {
            Ok(Ok(started)) => started,
            Ok(Err(detail)) => {
                return Err(HarnessError::KindStart {
                    kind: "mqtt5",
                    detail,
                })
            }
            Err(_) => {
                return Err(HarnessError::KindStart {
                    kind: "mqtt5",
                    detail: format!("not bound within {} s", START_TIMEOUT.as_secs()),
                })
            }
        };
        let broker = Mqtt5Broker {
            port,
            shutdown,
            thread: Some(thread),
            files,
        };
        wait_until_accepting(SocketAddr::from((Ipv4Addr::LOCALHOST, port)), || None).map_err(
            |detail| HarnessError::KindStart {
                kind: "mqtt5",
                detail,
            },
        )?;
        Ok(broker)
    }

    fn stop(&mut self) {
        self.shutdown.shutdown();
        if let Some(thread) = self.thread.take() {
            // `run()` returns within milliseconds of the shutdown signal (measured).
            let _ = thread.join();
        }
    }
}

impl Drop for Mqtt5Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// An Argon2id hash in the PHC format mqtt5's password file reads (small parameters: a test
/// password, hashed on every connect).
fn argon2_hash(password: &str) -> Result<String, HarnessError> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    use argon2::{Algorithm, Argon2, Params, Version};
    fn fail(err: impl fmt::Display) -> HarnessError {
        HarnessError::KindStart {
            kind: "mqtt5",
            detail: format!("hashing the password: {err}"),
        }
    }
    let salt = SaltString::encode_b64(Alphanumeric.sample_string(&mut rand::rng(), 16).as_bytes())
        .map_err(fail)?;
    let params = Params::new(2 * 1024, 1, 1, None).map_err(fail)?;
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(fail)
}

// ---------------------------------------------------------------------------------------------
// rmqtt

/// Where one rmqtt node listens and how it joins others. [`TestBroker`] uses a single node on
/// 127.0.0.1; a cluster test starts several with [`RmqttBroker::start_node`].
#[derive(Debug, Clone)]
pub struct RmqttNode {
    /// The node id (1, 2, 3…), unique in a cluster.
    pub id: u64,
    /// The address the TLS listener and the gRPC port bind.
    pub ip: Ipv4Addr,
    /// The MQTT-over-TLS port.
    pub tls_port: u16,
    /// The gRPC port nodes talk to each other on (always bound, even for a single node).
    pub grpc_port: u16,
    /// Names (DNS or IP) the server certificate is issued for.
    pub certificate_names: Vec<String>,
    /// Run inside this network namespace (`ip netns exec <name> rmqttd …`; needs root).
    pub netns: Option<String>,
    /// The other nodes of a broadcast-mode cluster as `(id, ip, grpc_port)`, this node included;
    /// empty for a single node.
    pub cluster: Vec<(u64, Ipv4Addr, u16)>,
    /// `rmqtt-shared-subscription`'s strategy: `round_robin` (rmqtt's default), `random`, …
    pub shared_strategy: String,
    /// Per-client queue limit (`max_mqueue_len`).
    pub max_queued_messages: u32,
}

/// One `rmqttd` process with its config, certificates and log.
pub struct RmqttBroker {
    node: RmqttNode,
    child: Option<Child>,
    readers: Vec<JoinHandle<()>>,
    log: Arc<LogBuffer>,
    program: PathBuf,
    version: String,
    config_path: PathBuf,
    files: KindFiles,
}

impl fmt::Debug for RmqttBroker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RmqttBroker")
            .field("node", &self.node)
            .field("pid", &self.child.as_ref().map(Child::id))
            .finish_non_exhaustive()
    }
}

impl RmqttBroker {
    /// `rmqttd` from `PATH` or `~/.cargo/bin` (where `cargo install` puts it).
    pub fn program() -> Result<PathBuf, HarnessError> {
        if let Ok(path) = find_program("rmqttd") {
            return Ok(path);
        }
        let cargo_home = std::env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")));
        cargo_home
            .map(|home| home.join("bin").join("rmqttd"))
            .filter(|path| path.is_file())
            .ok_or(HarnessError::KindNotInstalled {
                program: "rmqttd",
                install: RMQTT_INSTALL,
            })
    }

    /// A single node on 127.0.0.1, ports chosen by the OS.
    fn start(options: &KindOptions) -> Result<RmqttBroker, HarnessError> {
        let ca = ThrowawayCa::generate()?;
        let mut last = None;
        for _ in 0..3 {
            let (tls_port, grpc_port) = two_free_ports()?;
            let node = RmqttNode {
                id: 1,
                ip: Ipv4Addr::LOCALHOST,
                tls_port,
                grpc_port,
                certificate_names: vec!["localhost".into(), "127.0.0.1".into()],
                netns: None,
                cluster: Vec::new(),
                shared_strategy: "round_robin".into(),
                max_queued_messages: options.max_queued_messages,
            };
            match RmqttBroker::start_node(node, &ca, None) {
                // Another process may have taken a port between our probe and rmqttd's bind.
                Err(err) if err.to_string().contains("ddress already in use") => last = Some(err),
                other => return other,
            }
        }
        Err(last.unwrap_or_else(|| HarnessError::KindStart {
            kind: "rmqtt",
            detail: "no free ports".into(),
        }))
    }

    /// Starts one node with certificates from `ca` and, if given, the `(username, password)` of
    /// the other nodes of its cluster (else a new random user), and waits until its TLS port
    /// accepts. Password authentication is rmqtt's `rmqtt-acl` plugin: a `connect` rule for the
    /// one user and password, and `deny all` for every other CONNECT.
    pub fn start_node(
        node: RmqttNode,
        ca: &ThrowawayCa,
        credentials: Option<(&str, &str)>,
    ) -> Result<RmqttBroker, HarnessError> {
        let program = RmqttBroker::program()?;
        let names: Vec<&str> = node.certificate_names.iter().map(String::as_str).collect();
        let mut files = KindFiles::generate("rmqtt-harness-", ca, &names)?;
        if let Some((username, password)) = credentials {
            files.username = username.to_string();
            files.password = password.to_string();
        }
        let plugins = files.path("plugins");
        fs::create_dir(&plugins).context(|| format!("creating {}", plugins.display()))?;
        write_file(
            &plugins.join("rmqtt-acl.toml"),
            &rmqtt_acl(&files.username, &files.password),
            0o600,
        )?;
        write_file(
            &plugins.join("rmqtt-shared-subscription.toml"),
            &format!(
                "strategy = \"{}\"\nsticky_cache_size = 100000\n",
                node.shared_strategy
            ),
            0o644,
        )?;
        write_file(
            &plugins.join("rmqtt-retainer.toml"),
            "storage.type = \"ram\"\nmax_retained_messages = 0\nmax_payload_size = \"1MB\"\n\
             retained_message_ttl = \"0m\"\nbatch_messages_limit = 500\n",
            0o644,
        )?;
        if !node.cluster.is_empty() {
            let peers: Vec<String> = node
                .cluster
                .iter()
                .map(|(id, ip, port)| format!("\"{id}@{ip}:{port}\""))
                .collect();
            write_file(
                &plugins.join("rmqtt-cluster-broadcast.toml"),
                &format!(
                    "message_type = 98\nnode_grpc_addrs = [{}]\nnode_grpc_batch_size = 128\n\
                     node_grpc_client_concurrency_limit = 128\n\
                     node_grpc_client_timeout = \"{}s\"\n\
                     task_exec_queue_workers = 500\ntask_exec_queue_max = 100_000\n",
                    peers.join(", "),
                    RMQTT_CLUSTER_GRPC_TIMEOUT.as_secs()
                ),
                0o644,
            )?;
        }
        let config_path = files.path("rmqtt.toml");
        write_file(&config_path, &rmqtt_config(&node, &files), 0o644)?;
        let version = rmqtt_version(&program);
        let mut broker = RmqttBroker {
            node,
            child: None,
            readers: Vec::new(),
            log: Arc::new(LogBuffer::default()),
            program,
            version,
            config_path,
            files,
        };
        broker.spawn_and_wait()?;
        Ok(broker)
    }

    /// The node's settings.
    pub fn node(&self) -> &RmqttNode {
        &self.node
    }

    /// `rmqtt 0.24.0` (from `rmqttd -V`).
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The CA file clients trust.
    pub fn ca_path(&self) -> &Path {
        &self.files.ca_path
    }

    /// The one user.
    pub fn username(&self) -> &str {
        &self.files.username
    }

    /// Its password.
    pub fn password(&self) -> &str {
        &self.files.password
    }

    /// What rmqttd printed so far.
    pub fn log(&self) -> String {
        self.log.snapshot()
    }

    /// The process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL, like a crash or a lost machine; reaps the process.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let status = child.wait().ok();
            self.join_readers();
            self.log.append_line(&format!(
                "--- mosquitto-harness: rmqttd killed ({})",
                describe_status(status)
            ));
        }
    }

    fn join_readers(&mut self) {
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
    }

    fn spawn_and_wait(&mut self) -> Result<(), HarnessError> {
        let mut command = match &self.node.netns {
            Some(netns) => {
                let mut command = Command::new("ip");
                command.args(["netns", "exec", netns]).arg(&self.program);
                command
            }
            None => Command::new(&self.program),
        };
        command
            .arg("-f")
            .arg(&self.config_path)
            .current_dir(self.files.dir.path())
            // rmqtt also reads RMQTT_* variables; none of the caller's may leak in.
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .context(|| format!("starting {}", self.program.display()))?;
        if let Some(stdout) = child.stdout.take() {
            self.readers
                .push(copy_lines_to_log(stdout, Arc::clone(&self.log)));
        }
        if let Some(stderr) = child.stderr.take() {
            self.readers
                .push(copy_lines_to_log(stderr, Arc::clone(&self.log)));
        }
        self.child = Some(child);
        let addr = SocketAddr::from((self.node.ip, self.node.tls_port));
        let log = Arc::clone(&self.log);
        let child = &mut self.child;
        let ready = wait_until_accepting(addr, || {
            let status = child
                .as_mut()
                .and_then(|child| child.try_wait().ok().flatten())?;
            Some(format!("rmqttd exited ({status})"))
        });
        match ready {
            Ok(()) => Ok(()),
            Err(detail) => {
                self.stop();
                Err(HarnessError::KindStart {
                    kind: "rmqtt",
                    detail: format!(
                        "{detail}; config {}; log:\n{}",
                        self.config_path.display(),
                        log.snapshot()
                    ),
                })
            }
        }
    }

    /// SIGTERM, then SIGKILL after a grace period.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            send_signal(&child, libc::SIGTERM);
            let deadline = Instant::now() + STOP_GRACE;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                thread::sleep(POLL_INTERVAL);
            }
            let _ = child.kill();
            let _ = child.wait();
            self.join_readers();
        }
    }
}

impl Drop for RmqttBroker {
    fn drop(&mut self) {
        self.stop();
    }
}

impl BrokerEndpoint for RmqttBroker {
    fn host(&self) -> &str {
        self.node
            .certificate_names
            .first()
            .map_or("localhost", String::as_str)
    }
    fn tls_port(&self) -> u16 {
        self.node.tls_port
    }
    fn ca_path(&self) -> &Path {
        &self.files.ca_path
    }
    fn username(&self) -> &str {
        &self.files.username
    }
    fn password(&self) -> &str {
        &self.files.password
    }
}

/// The ACL that is rmqtt's password check: the one user with its password may connect; every
/// other CONNECT is refused (CONNACK "not authorized"); connected clients may publish and
/// subscribe to anything.
fn rmqtt_acl(username: &str, password: &str) -> String {
    format!(
        "# Written by mosquitto-harness; deleted with the broker.\n\
         disconnect_if_pub_rejected = true\n\
         rules = [\n\
         \x20   [\"allow\", {{ user = \"{username}\", password = \"{password}\" }}, \"connect\"],\n\
         \x20   [\"deny\", \"all\", \"connect\"],\n\
         \x20   [\"allow\", \"all\"]\n\
         ]\n"
    )
}

/// How long a cluster node waits for another node's gRPC answer (`node_grpc_client_timeout`;
/// rmqtt's default 60 s). See [`RMQTT_CLUSTER_CIRCUIT_BREAKER`].
pub const RMQTT_CLUSTER_GRPC_TIMEOUT: Duration = Duration::from_secs(2);

/// The gRPC circuit breaker of a cluster node (`circuit_breaker.*` in rmqtt.toml), which decides
/// how long the surviving nodes stall after one dies (issue #13, measured with rmqtt 0.24.0).
///
/// In broadcast mode a node handles one connection's PUBLISH packets one after another, and
/// forwards each to EVERY other node (`Message::Forwards`, waiting for all answers) before its
/// PUBACK. After a node dies, each publish therefore waits the whole gRPC timeout for the dead
/// one, and the connection answers nothing else meanwhile (not even PINGREQ). Only an OPEN
/// circuit breaker makes those calls fail at once, and with rmqtt's defaults it never opens:
/// the time window (45 s) still holds the thousands of successful calls made before the kill,
/// so the failure rate stays far below 35 %, and the ~4 failures a connection can make in 45 s
/// at 15 s each never reach `minimum_number_of_calls` (10). Measured: a surviving node stopped
/// acking for 190 s and more ("count based" windows do not help: tower-resilience 0.10 counts
/// them since the last state change, not over the last N calls). With a 5 s window, 2 calls
/// minimum, 50 % and a 2 s timeout the breaker opens ~6 s after the kill; it probes the dead
/// node again every 30 s (one call waits 2 s then), and closes when the node is back.
pub const RMQTT_CLUSTER_CIRCUIT_BREAKER: &str =
    "circuit_breaker.sliding_window_type = \"TimeBased\"\n\
     circuit_breaker.sliding_window_duration = \"5s\"\n\
     circuit_breaker.minimum_number_of_calls = 2\n\
     circuit_breaker.failure_rate_threshold = 0.5\n\
     circuit_breaker.wait_duration_in_open = \"30s\"\n";

/// rmqtt.toml for one node: TLS only, password via `rmqtt-acl`, log to the console, the
/// HTTP API (which would bind port 6060) off; for a cluster node also
/// [`RMQTT_CLUSTER_CIRCUIT_BREAKER`].
fn rmqtt_config(node: &RmqttNode, files: &KindFiles) -> String {
    let mut startups = vec![
        "\"rmqtt-acl\"",
        "\"rmqtt-shared-subscription\"",
        "\"rmqtt-retainer\"",
    ];
    if !node.cluster.is_empty() {
        startups.push("\"rmqtt-cluster-broadcast\"");
    }
    let tls = "listener.tls.external";
    let circuit_breaker = if node.cluster.is_empty() {
        ""
    } else {
        RMQTT_CLUSTER_CIRCUIT_BREAKER
    };
    format!(
        "# Written by mosquitto-harness for one test; deleted with the broker.\n\
         node.id = {id}\n\
         rpc.server_addr = \"{ip}:{grpc}\"\n\
         rpc.reuseaddr = true\n\
         log.to = \"console\"\n\
         log.level = \"info\"\n\
         log.dir = \"{dir}\"\n\
         plugins.dir = \"{dir}/plugins/\"\n\
         plugins.default_startups = [{startups}]\n\
         plugins.disabled_default_startups = [\"rmqtt-http-api\"]\n\
         mqtt.max_sessions = 0\n\
         {tls}.addr = \"{ip}:{port}\"\n\
         {tls}.cert = \"{dir}/server.pem\"\n\
         {tls}.key = \"{dir}/server.key\"\n\
         {tls}.allow_anonymous = false\n\
         {tls}.max_mqueue_len = {queue}\n\
         {tls}.reuseaddr = true\n\
         {circuit_breaker}",
        id = node.id,
        ip = node.ip,
        grpc = node.grpc_port,
        port = node.tls_port,
        dir = files.dir.path().display(),
        startups = startups.join(", "),
        queue = node.max_queued_messages,
    )
}

/// `rmqtt 0.24.0` from `rmqttd -V` (which prints `rmqtt/0.24.0-<build time> rustc/<version>`).
fn rmqtt_version(program: &Path) -> String {
    let text = Command::new(program)
        .arg("-V")
        .stdin(Stdio::null())
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
        .unwrap_or_default();
    let version = text
        .split_whitespace()
        .next()
        .map(|word| {
            word.trim_start_matches("rmqtt")
                .trim_start_matches(['/', '-', 'v', ' '])
        })
        // `0.24.0-20261129090137`: the suffix is the build time, different on every machine.
        .map(|version| version.split('-').next().unwrap_or(version))
        .filter(|version| !version.is_empty());
    match version {
        Some(version) => format!("rmqtt {version}"),
        None => "rmqtt (version unknown)".to_string(),
    }
}

/// Two distinct free ports on 127.0.0.1 (released again for the broker to bind).
fn two_free_ports() -> Result<(u16, u16), HarnessError> {
    let bind = || {
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|listener| Ok((listener.local_addr()?.port(), listener)))
            .context(|| "binding 127.0.0.1:0 to find a free port".to_string())
    };
    let (a, _first) = bind()?;
    let (b, _second) = bind()?;
    Ok((a, b))
}

/// Polls `addr` until it accepts TCP, `exited` says the process is gone, or [`START_TIMEOUT`].
fn wait_until_accepting(
    addr: SocketAddr,
    mut exited: impl FnMut() -> Option<String>,
) -> Result<(), String> {
    let started = Instant::now();
    loop {
        if let Some(why) = exited() {
            return Err(why);
        }
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if started.elapsed() >= START_TIMEOUT {
            return Err(format!(
                "{addr} did not accept connections within {} s",
                START_TIMEOUT.as_secs()
            ));
        }
        thread::sleep(POLL_INTERVAL);
    }
}
