//! A real Mosquitto broker, run as a child process for one test.

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rand::distr::{Alphanumeric, SampleString};
use tempfile::TempDir;

use crate::certs::TestPki;
use crate::error::{HarnessError, IoContext};

/// How many times [`MosquittoBroker::start`] picks new ports when Mosquitto
/// reports that one of them was taken in the meantime.
const START_ATTEMPTS: usize = 5;

/// How often readiness and exit are polled.
const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// How long [`MosquittoBroker::stop`] waits for Mosquitto to save its database
/// and exit after SIGTERM before it uses SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// How long `Drop` waits after SIGTERM before SIGKILL: tests must not stall on teardown.
const DROP_GRACE: Duration = Duration::from_secs(2);

/// Replaced by the generated user name in [`BrokerOptions::acl_file`].
const ACL_USER_PLACEHOLDER: &str = "{username}";

/// What kind of broker a test needs.
///
/// Tests build it with struct-update syntax so that new fields do not break them:
///
/// ```
/// # use mosquitto_harness::BrokerOptions;
/// let options = BrokerOptions { persistence: true, ..BrokerOptions::default() };
/// ```
#[derive(Debug, Clone)]
pub struct BrokerOptions {
    /// Keep sessions and queued messages in a database file, so that they
    /// survive [`MosquittoBroker::stop`] + [`MosquittoBroker::start_again`].
    /// Off by default: most tests want a clean broker.
    pub persistence: bool,
    /// Mosquitto's per-client queue limit for QoS 1/2 messages. Mosquitto's own
    /// default (1000) silently drops the rest, which would look like a bug in the
    /// example under test, so the default here is 100,000.
    pub max_queued_messages: u32,
    /// Seconds between automatic database saves when `persistence` is on. Small,
    /// so that a test that SIGKILLs the broker loses at most this much.
    pub autosave_interval_secs: u32,
    /// Extra global `mosquitto.conf` lines, written before the listeners
    /// (e.g. `"max_inflight_messages 1"`).
    pub extra_config: Vec<String>,
    /// How long to wait for the broker to accept connections after spawning it.
    pub start_timeout: Duration,
    /// Run Mosquitto in this network namespace (`ip netns exec NAME mosquitto …`; needs root
    /// and a namespace made with `ip netns add`), so a fault runner can cut the broker's link
    /// (crates/faults). `None`: the caller's namespace.
    pub netns: Option<String>,
    /// The address clients use to reach the broker, for a broker in its own namespace. When set,
    /// the listeners bind every address of the broker's namespace (its loopback too), the server
    /// certificate names this address, and readiness is probed on it. `None`: 127.0.0.1 only.
    pub listen_address: Option<IpAddr>,
    /// More host names or IP addresses for the server certificate's SANs.
    pub extra_sans: Vec<String>,
    /// Contents of a Mosquitto `acl_file` (e.g. `"user harness-x\ntopic read a/#"`), or `None`
    /// for no ACL (every authenticated user may read and write everything). Use
    /// [`MosquittoBroker::acl_user_placeholder`] where the generated user name belongs.
    pub acl_file: Option<String>,
    /// Serve an EXPIRED certificate (valid 2020-01-01 to 2021-01-01, otherwise correct: right CA,
    /// right host names) on [`MosquittoBroker::tls_port`].
    pub expired_server_certificate: bool,
    /// `Some(patterns)`: also load Mosquitto's dynamic-security plugin, which lets the harness
    /// user SUBSCRIBE only to these filter patterns and answers any other SUBSCRIBE with SUBACK
    /// 0x87 *Not authorized* (the plain `acl_file` never refuses a SUBSCRIBE: it grants it and
    /// delivers nothing). Mosquitto matches the whole filter, so `$share/g/a/#` is refused under
    /// the pattern `a/#`. Publishing and receiving stay allowed everywhere.
    pub subscribe_only: Option<Vec<String>>,
}

impl Default for BrokerOptions {
    fn default() -> Self {
        BrokerOptions {
            persistence: false,
            max_queued_messages: 100_000,
            autosave_interval_secs: 1,
            extra_config: Vec::new(),
            start_timeout: Duration::from_secs(5),
            netns: None,
            listen_address: None,
            extra_sans: Vec::new(),
            acl_file: None,
            expired_server_certificate: false,
            subscribe_only: None,
        }
    }
}

/// The three listeners of one broker, all on 127.0.0.1.
#[derive(Debug, Clone, Copy)]
struct Ports {
    tls: u16,
    wrong_name_tls: u16,
    plaintext: u16,
}

/// Everything the broker has printed, shared with the threads that read its pipes.
#[derive(Debug, Default)]
pub(crate) struct LogBuffer {
    text: Mutex<String>,
    grew: Condvar,
}

impl LogBuffer {
    pub(crate) fn append_line(&self, line: &str) {
        let mut text = self
            .text
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        text.push_str(line);
        if !line.ends_with('\n') {
            text.push('\n');
        }
        self.grew.notify_all();
    }

    pub(crate) fn snapshot(&self) -> String {
        self.text
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    pub(crate) fn wait_for(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut text = self
            .text
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        loop {
            if text.contains(needle) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            text = match self.grew.wait_timeout(text, deadline - now) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }
}

/// A running Mosquitto process and the threads copying its output into the log.
struct RunningBroker {
    child: Child,
    readers: Vec<JoinHandle<()>>,
}

impl RunningBroker {
    /// Waits for the child to exit for up to `timeout`; `None` if it is still running.
    fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if Instant::now() < deadline => thread::sleep(POLL_INTERVAL),
                // An error from waitpid means there is nothing left to wait for.
                Ok(None) | Err(_) => return None,
            }
        }
    }

    /// SIGTERM, wait up to `grace`, then SIGKILL; always reaps the child and
    /// collects the rest of its output.
    fn shut_down(mut self, grace: Duration) -> Option<ExitStatus> {
        if let Ok(None) = self.child.try_wait() {
            send_signal(&self.child, libc::SIGTERM);
        }
        let status = match self.wait_timeout(grace) {
            Some(status) => Some(status),
            None => {
                // Ignored: the child may have exited between the two calls.
                let _ = self.child.kill();
                self.child.wait().ok()
            }
        };
        self.join_readers();
        status
    }

    fn join_readers(&mut self) {
        for reader in self.readers.drain(..) {
            // A reader panicking only loses log text; nothing to propagate.
            let _ = reader.join();
        }
    }
}

/// A real Mosquitto 2 broker with TLS, password authentication and MQTT v5,
/// started as a child process in its own temporary directory.
///
/// Behaviour tests run the example binaries against it, so what they prove
/// holds against a broker that behaves like a production one rather than a
/// mock. Each instance has its own throwaway certificate authority, user,
/// password and ports, so tests can run brokers in parallel.
///
/// It listens on 127.0.0.1 three times:
/// - [`tls_port`](Self::tls_port): TLS with a certificate for `localhost` and
///   `127.0.0.1`, signed by [`ca_path`](Self::ca_path);
/// - [`wrong_name_tls_port`](Self::wrong_name_tls_port): TLS with a certificate
///   from the same CA but for another host name only, so host-name checks fail;
/// - [`plaintext_port`](Self::plaintext_port): plain MQTT, which the examples
///   must refuse to use.
///
/// Dropping it stops the broker (SIGTERM, then SIGKILL) and deletes its files.
pub struct MosquittoBroker {
    running: Option<RunningBroker>,
    log: Arc<LogBuffer>,
    ports: Ports,
    username: String,
    password: String,
    mosquitto: PathBuf,
    options: BrokerOptions,
    ca_path: PathBuf,
    wrong_ca_path: PathBuf,
    config_path: PathBuf,
    // Last, so the files outlive the process even if `Drop` changes.
    dir: TempDir,
}

impl std::fmt::Debug for MosquittoBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MosquittoBroker")
            .field("pid", &self.pid())
            .field("ports", &self.ports)
            .field("username", &self.username)
            .field("dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}

impl MosquittoBroker {
    /// Generates certificates, a password file and a config in a fresh
    /// temporary directory, starts `mosquitto` and waits until it accepts
    /// connections.
    ///
    /// Needs no async runtime. Fails with [`HarnessError::NotInstalled`] when
    /// `mosquitto` or `mosquitto_passwd` is missing: tests must not pass by
    /// skipping. Ports are chosen by the OS; if another process takes one before
    /// Mosquitto binds it, new ports are tried a few times.
    pub fn start(options: BrokerOptions) -> Result<MosquittoBroker, HarnessError> {
        let mosquitto = find_program("mosquitto")?;
        let mosquitto_passwd = find_program("mosquitto_passwd")?;

        // Mosquitto started as root drops to the `mosquitto` user: everything
        // it reads must be world-readable, and the directory traversable.
        let dir = tempfile::Builder::new()
            .prefix("mosquitto-harness-")
            .tempdir()
            .context(|| "creating a temporary directory".to_string())?;
        set_mode(dir.path(), 0o755)?;

        let mut sans = options.extra_sans.clone();
        if let Some(address) = options.listen_address {
            sans.push(address.to_string());
        }
        let pki = TestPki::generate(&sans)?;
        let ca_path = dir.path().join("ca.pem");
        let wrong_ca_path = dir.path().join("unrelated-ca.pem");
        write_file(&ca_path, &pki.ca_cert, 0o644)?;
        write_file(&wrong_ca_path, &pki.unrelated_ca_cert, 0o644)?;
        let server = if options.expired_server_certificate {
            &pki.expired_server
        } else {
            &pki.server
        };
        write_file(&dir.path().join("server.pem"), &server.cert, 0o644)?;
        write_file(&dir.path().join("server.key"), &server.key, 0o644)?;
        write_file(
            &dir.path().join("wrong-host.pem"),
            &pki.wrong_host_server.cert,
            0o644,
        )?;
        write_file(
            &dir.path().join("wrong-host.key"),
            &pki.wrong_host_server.key,
            0o644,
        )?;

        let mut rng = rand::rng();
        let username = format!("harness-{}", Alphanumeric.sample_string(&mut rng, 8));
        let password = Alphanumeric.sample_string(&mut rng, 24);
        let password_file = dir.path().join("passwd");
        create_password_file(&mosquitto_passwd, &password_file, &username, &password)?;
        if let Some(acl) = &options.acl_file {
            let acl = acl.replace(ACL_USER_PLACEHOLDER, &username);
            write_file(&dir.path().join("acl"), &acl, 0o644)?;
        }
        if let Some(patterns) = &options.subscribe_only {
            create_dynsec_file(dir.path(), &username, &password, patterns)?;
        }

        let persistence_dir = dir.path().join("persistence");
        fs::create_dir(&persistence_dir)
            .context(|| format!("creating {}", persistence_dir.display()))?;
        // Written by the `mosquitto` user when the test runs as root.
        set_mode(&persistence_dir, 0o777)?;

        let mut broker = MosquittoBroker {
            running: None,
            log: Arc::new(LogBuffer::default()),
            ports: Ports {
                tls: 0,
                wrong_name_tls: 0,
                plaintext: 0,
            },
            username,
            password,
            mosquitto,
            options,
            ca_path,
            wrong_ca_path,
            config_path: dir.path().join("mosquitto.conf"),
            dir,
        };

        let mut attempt = 1;
        loop {
            broker.ports = free_ports()?;
            write_file(&broker.config_path, &broker.config_text(), 0o644)?;
            match broker.spawn_and_wait() {
                Ok(()) => return Ok(broker),
                Err(err) if attempt < START_ATTEMPTS && is_port_clash(&err) => {
                    broker.log.append_line(&format!(
                        "--- mosquitto-harness: a port was taken, retrying with new ports ({err})"
                    ));
                    attempt += 1;
                }
                Err(err) => return Err(err),
            }
        }
    }

    /// The TLS port whose certificate is valid for `localhost` under
    /// [`ca_path`](Self::ca_path): the one the credentials point at.
    pub fn tls_port(&self) -> u16 {
        self.ports.tls
    }

    /// A TLS port whose certificate is signed by the right CA but names another
    /// host, so a client connecting to `localhost` must reject it.
    pub fn wrong_name_tls_port(&self) -> u16 {
        self.ports.wrong_name_tls
    }

    /// A plain-TCP MQTT port, for proving the examples never talk without TLS.
    pub fn plaintext_port(&self) -> u16 {
        self.ports.plaintext
    }

    /// The host name clients should use: the server certificate is valid for it.
    pub fn host(&self) -> &'static str {
        "localhost"
    }

    /// The address the broker is probed on and clients should use: 127.0.0.1, or
    /// [`BrokerOptions::listen_address`].
    pub fn address(&self) -> IpAddr {
        self.options
            .listen_address
            .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
    }

    /// The options the broker was started with.
    pub fn options(&self) -> &BrokerOptions {
        &self.options
    }

    /// PEM file of the CA that signed the broker's certificates.
    pub fn ca_path(&self) -> &Path {
        &self.ca_path
    }

    /// PEM file of a CA unrelated to this broker: trusting only it must fail
    /// the TLS handshake (`UnknownIssuer`).
    pub fn wrong_ca_path(&self) -> &Path {
        &self.wrong_ca_path
    }

    /// The text to write in [`BrokerOptions::acl_file`] where the generated user name belongs
    /// (the name is only known once the broker starts): `"user {username}"`.
    pub fn acl_user_placeholder() -> &'static str {
        ACL_USER_PLACEHOLDER
    }

    /// The only user the broker accepts.
    pub fn username(&self) -> &str {
        &self.username
    }

    /// The password of [`username`](Self::username).
    pub fn password(&self) -> &str {
        &self.password
    }

    /// The broker's temporary directory (config, certificates, persistence),
    /// deleted when the broker is dropped.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The `mosquitto.conf` the broker runs with.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// Everything the broker has logged so far, across restarts, e.g. to assert
    /// on `already connected, closing old connection`.
    pub fn log(&self) -> String {
        self.log.snapshot()
    }

    /// Waits until the broker log contains `needle`; `false` on timeout.
    /// Log lines arrive asynchronously, so assert with this rather than [`log`](Self::log).
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        self.log.wait_for(needle, timeout)
    }

    /// The process id while the broker runs, `None` after [`stop`](Self::stop).
    pub fn pid(&self) -> Option<u32> {
        self.running.as_ref().map(|running| running.child.id())
    }

    /// Stops the broker with SIGTERM and waits for it to exit (SIGKILL after
    /// 10 s). With persistence on, Mosquitto saves its database on SIGTERM, so
    /// [`start_again`](Self::start_again) finds the sessions. Does nothing if
    /// the broker is not running.
    pub fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            let status = running.shut_down(STOP_GRACE);
            self.log.append_line(&format!(
                "--- mosquitto-harness: broker stopped ({})",
                describe_status(status)
            ));
        }
    }

    /// Kills the broker with SIGKILL, like a crash: nothing is saved beyond the
    /// last autosave.
    pub fn kill(&mut self) {
        if let Some(mut running) = self.running.take() {
            // Ignored: the child may have exited already.
            let _ = running.child.kill();
            let status = running.child.wait().ok();
            running.join_readers();
            self.log.append_line(&format!(
                "--- mosquitto-harness: broker killed ({})",
                describe_status(status)
            ));
        }
    }

    /// Starts the broker again with the same ports, files, credentials and
    /// persistence directory (stopping it first if it runs), and waits until it
    /// accepts connections. With persistence on, sessions and their queued
    /// messages survive.
    pub fn start_again(&mut self) -> Result<(), HarnessError> {
        self.stop();
        self.log
            .append_line("--- mosquitto-harness: starting the broker again");
        self.spawn_and_wait()
    }

    fn config_text(&self) -> String {
        let dir = self.dir.path();
        let path = |name: &str| dir.join(name).display().to_string();
        let options = &self.options;
        let mut conf = String::new();
        let mut line = |text: String| {
            conf.push_str(&text);
            conf.push('\n');
        };
        line("# Written by mosquitto-harness for one test; deleted with the broker.".into());
        line("per_listener_settings false".into());
        line("allow_anonymous false".into());
        line(format!("password_file {}", path("passwd")));
        line("log_dest stderr".into());
        for log_type in ["error", "warning", "notice", "information", "subscribe"] {
            line(format!("log_type {log_type}"));
        }
        line("connection_messages true".into());
        line(format!("persistence {}", options.persistence));
        // Mosquitto appends the file name to this, so it needs the trailing slash.
        line(format!("persistence_location {}/", path("persistence")));
        line(format!(
            "autosave_interval {}",
            options.autosave_interval_secs
        ));
        line(format!(
            "max_queued_messages {}",
            options.max_queued_messages
        ));
        if options.acl_file.is_some() {
            line(format!("acl_file {}", path("acl")));
        }
        if options.subscribe_only.is_some() {
            line(format!("plugin {}", dynsec_plugin().display()));
            line(format!("plugin_opt_config_file {}", path("dynsec.json")));
        }
        for extra in &options.extra_config {
            line(extra.clone());
        }
        // In its own namespace the broker listens on all of that namespace's addresses.
        let bind = if options.listen_address.is_some() {
            String::new()
        } else {
            " 127.0.0.1".to_string()
        };
        let tls_listener = |line: &mut dyn FnMut(String), port: u16, name: &str| {
            line(String::new());
            line(format!("listener {port}{bind}"));
            line(format!("cafile {}", path("ca.pem")));
            line(format!("certfile {}", path(&format!("{name}.pem"))));
            line(format!("keyfile {}", path(&format!("{name}.key"))));
        };
        tls_listener(&mut line, self.ports.tls, "server");
        tls_listener(&mut line, self.ports.wrong_name_tls, "wrong-host");
        // Last on purpose: once it accepts, the listeners before it are bound too.
        line(String::new());
        line(format!("listener {}{bind}", self.ports.plaintext));
        conf
    }

    /// Spawns Mosquitto with the current config and waits until its last
    /// listener accepts TCP connections.
    fn spawn_and_wait(&mut self) -> Result<(), HarnessError> {
        let mut command = match &self.options.netns {
            Some(netns) => {
                let mut command = Command::new("ip");
                command.args(["netns", "exec", netns]).arg(&self.mosquitto);
                command
            }
            None => Command::new(&self.mosquitto),
        };
        let mut child = command
            .arg("-c")
            .arg(&self.config_path)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context(|| format!("starting {}", self.mosquitto.display()))?;
        let mut readers = Vec::with_capacity(2);
        if let Some(stdout) = child.stdout.take() {
            readers.push(copy_lines_to_log(stdout, Arc::clone(&self.log)));
        }
        if let Some(stderr) = child.stderr.take() {
            readers.push(copy_lines_to_log(stderr, Arc::clone(&self.log)));
        }
        let mut running = RunningBroker { child, readers };

        let started = Instant::now();
        let probe = SocketAddr::from((self.address(), self.ports.plaintext));
        loop {
            if let Ok(Some(status)) = running.child.try_wait() {
                running.join_readers();
                return Err(HarnessError::BrokerExited {
                    status: status.to_string(),
                    config: self.config_path.clone(),
                    log: self.log.snapshot(),
                });
            }
            if TcpStream::connect_timeout(&probe, Duration::from_millis(100)).is_ok() {
                // Another process could own the port; make sure ours is alive.
                if let Ok(None) = running.child.try_wait() {
                    self.running = Some(running);
                    return Ok(());
                }
                continue;
            }
            if started.elapsed() >= self.options.start_timeout {
                running.shut_down(DROP_GRACE);
                return Err(HarnessError::BrokerNotReady {
                    port: self.ports.plaintext,
                    waited_ms: started.elapsed().as_millis(),
                    log: self.log.snapshot(),
                });
            }
            thread::sleep(POLL_INTERVAL);
        }
    }
}

impl Drop for MosquittoBroker {
    /// Stops the broker (SIGTERM, SIGKILL after 2 s) and reaps it, so a test
    /// that fails or panics never leaks a broker.
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            running.shut_down(DROP_GRACE);
        }
    }
}

/// Finds `program` on `PATH`, falling back to the sbin directories that a
/// non-root user's `PATH` often lacks (Debian installs `mosquitto` in /usr/sbin).
pub(crate) fn find_program(program: &'static str) -> Result<PathBuf, HarnessError> {
    let path_dirs = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default();
    let fallback = ["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from);
    path_dirs
        .into_iter()
        .chain(fallback)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
        .ok_or(HarnessError::NotInstalled { program })
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path)
        .map(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Picks three distinct free ports by binding them all at once, then releases
/// them for Mosquitto. Another process may grab one in between; `start` retries.
fn free_ports() -> Result<Ports, HarnessError> {
    let bind = || {
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|listener| Ok((listener.local_addr()?.port(), listener)))
            .context(|| "binding 127.0.0.1:0 to find a free port".to_string())
    };
    let (tls, _a) = bind()?;
    let (wrong_name_tls, _b) = bind()?;
    let (plaintext, _c) = bind()?;
    Ok(Ports {
        tls,
        wrong_name_tls,
        plaintext,
    })
}

fn is_port_clash(err: &HarnessError) -> bool {
    matches!(err, HarnessError::BrokerExited { log, .. } if log.contains("Address already in use"))
}

fn create_password_file(
    mosquitto_passwd: &Path,
    file: &Path,
    username: &str,
    password: &str,
) -> Result<(), HarnessError> {
    let output = Command::new(mosquitto_passwd)
        .args(["-b", "-c"])
        .arg(file)
        .args([username, password])
        .stdin(Stdio::null())
        .output()
        .context(|| format!("running {}", mosquitto_passwd.display()))?;
    if !output.status.success() {
        return Err(HarnessError::Passwd {
            status: output.status.to_string(),
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        });
    }
    set_mode(file, 0o644)
}

/// Mosquitto's dynamic-security plugin, where the Debian/Ubuntu `mosquitto` package puts it.
fn dynsec_plugin() -> PathBuf {
    let candidates = [
        "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so",
        "/usr/lib/aarch64-linux-gnu/mosquitto_dynamic_security.so",
        "/usr/lib/mosquitto_dynamic_security.so",
        "/usr/local/lib/mosquitto_dynamic_security.so",
    ];
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|path| path.is_file())
        .unwrap_or_else(|| PathBuf::from(candidates[0]))
}

/// Writes `dynsec.json` for [`BrokerOptions::subscribe_only`]: `mosquitto_ctrl dynsec init` makes
/// the user (with its password hashed as the plugin wants), then its one role is rewritten to
/// allow publishing and receiving everything but subscribing only to `patterns`.
fn create_dynsec_file(
    dir: &Path,
    username: &str,
    password: &str,
    patterns: &[String],
) -> Result<(), HarnessError> {
    let file = dir.join("dynsec.json");
    let mosquitto_ctrl = find_program("mosquitto_ctrl")?;
    if !dynsec_plugin().is_file() {
        return Err(HarnessError::NotInstalled {
            program: "mosquitto_dynamic_security.so (Debian package mosquitto)",
        });
    }
    let output = Command::new(&mosquitto_ctrl)
        .args(["dynsec", "init"])
        .arg(&file)
        .args([username, password])
        .stdin(Stdio::null())
        .output()
        .context(|| format!("running {}", mosquitto_ctrl.display()))?;
    if !output.status.success() {
        return Err(HarnessError::Passwd {
            status: output.status.to_string(),
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        });
    }
    let text = fs::read_to_string(&file).context(|| format!("reading {}", file.display()))?;
    let mut config: serde_json::Value = serde_json::from_str(&text)
        .map_err(|err| HarnessError::Mqtt(format!("mosquitto_ctrl wrote bad JSON: {err}")))?;
    let acl = |acltype: &str, topic: &str| serde_json::json!({"acltype": acltype, "topic": topic, "priority": 0, "allow": true});
    let mut acls = vec![
        acl("publishClientSend", "#"),
        acl("publishClientReceive", "#"),
        acl("unsubscribePattern", "#"),
    ];
    acls.extend(patterns.iter().map(|p| acl("subscribePattern", p)));
    for role in config["roles"].as_array_mut().into_iter().flatten() {
        role["acls"] = serde_json::Value::Array(acls.clone());
    }
    write_file(&file, &config.to_string(), 0o644)
}

pub(crate) fn write_file(path: &Path, contents: &str, mode: u32) -> Result<(), HarnessError> {
    fs::write(path, contents).context(|| format!("writing {}", path.display()))?;
    set_mode(path, mode)
}

pub(crate) fn set_mode(path: &Path, mode: u32) -> Result<(), HarnessError> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .context(|| format!("setting mode {mode:o} on {}", path.display()))
}

/// Copies a child's output into the log line by line until the pipe closes.
pub(crate) fn copy_lines_to_log(
    pipe: impl Read + Send + 'static,
    log: Arc<LogBuffer>,
) -> JoinHandle<()> {
    thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => log.append_line(&String::from_utf8_lossy(&line)),
            }
        }
    })
}

/// Sends `signal` to a child that has not been reaped yet (so its pid cannot
/// have been reused).
pub(crate) fn send_signal(child: &Child, signal: libc::c_int) {
    let Ok(pid) = libc::pid_t::try_from(child.id()) else {
        return;
    };
    // SAFETY: kill(2) has no memory-safety preconditions; the pid belongs to
    // our unreaped child, so it cannot name an unrelated process.
    unsafe {
        libc::kill(pid, signal);
    }
}

pub(crate) fn describe_status(status: Option<ExitStatus>) -> String {
    status.map_or_else(
        || "exit status unknown".to_string(),
        |status| status.to_string(),
    )
}
