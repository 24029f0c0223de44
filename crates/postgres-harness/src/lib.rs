//! A real PostgreSQL server for behaviour tests and the benchmark: `initdb` into a temporary
//! directory, `postgres` on 127.0.0.1 and an ephemeral port, password authentication
//! (SCRAM-SHA-256), and stop / start again on the same data and port (a database outage).
//!
//! The binaries come from Debian's `postgresql` package (`/usr/lib/postgresql/<version>/bin`,
//! the highest version found), or the directory in `POSTGRES_BIN_DIR`, or `initdb` on PATH.
//! `scripts/test` installs the package. PostgreSQL refuses to run as root: when the tests run as
//! root (CI), the server runs as the `postgres` user the package creates, with the temporary
//! directory handed over to it; otherwise it runs as the current user.
//!
//! ```no_run
//! let mut db = postgres_harness::PostgresServer::start().expect("PostgreSQL");
//! let url = db.url(); // postgres://store:…@127.0.0.1:<port>/postgres
//! db.stop(); // fast shutdown: clients are disconnected, the port refuses connections
//! db.start_again().expect("PostgreSQL again");
//! assert_eq!(db.query_i64("SELECT 1").expect("query"), 1);
//! ```

use std::ffi::CString;
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use rand::distr::{Alphanumeric, SampleString};

/// The database user the harness creates (the superuser of its cluster).
pub const USER: &str = "store";
/// The database every cluster has.
pub const DATABASE: &str = "postgres";

/// How long `initdb` plus the first start may take on a loaded 2-core machine.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a fast shutdown may take before the harness escalates.
const STOP_GRACE: Duration = Duration::from_secs(30);
const READY_LINE: &str = "database system is ready to accept connections";

/// What can go wrong. Every message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error(
        "PostgreSQL is not installed: no initdb/postgres in /usr/lib/postgresql/*/bin, \
         $POSTGRES_BIN_DIR or PATH. Install it with `sudo apt-get install -y postgresql` \
         (scripts/test does)."
    )]
    NotInstalled,
    #[error("running as root, but there is no `postgres` user to run PostgreSQL as (it refuses root); install Debian's postgresql package, which creates it")]
    NoPostgresUser,
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} failed: {log}")]
    Failed { what: String, log: String },
    #[error("query failed: {0}")]
    Query(String),
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> PgError {
    let context = context.into();
    move |source| PgError::Io { context, source }
}

/// Everything the server printed (its log goes to stderr).
#[derive(Default)]
struct Log {
    text: Mutex<String>,
    grew: Condvar,
}

impl Log {
    fn push(&self, line: &str) {
        let mut text = self.text.lock().unwrap_or_else(PoisonError::into_inner);
        text.push_str(line);
        text.push('\n');
        self.grew.notify_all();
    }

    fn snapshot(&self) -> String {
        self.text
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Waits until `needle` occurs more than `already` times.
    fn wait_for(&self, needle: &str, already: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut text = self.text.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if text.matches(needle).count() > already {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            text = self
                .grew
                .wait_timeout(text, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

/// A running PostgreSQL cluster of its own. Dropping it stops the server and deletes the data.
pub struct PostgresServer {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    password: String,
    /// `Some((uid, gid))` when running as root: the user the server runs as.
    run_as: Option<(u32, u32)>,
    child: Option<Child>,
    log: Arc<Log>,
}

impl PostgresServer {
    /// `initdb` and start. Fails with [`PgError::NotInstalled`] rather than letting a test skip.
    pub fn start() -> Result<PostgresServer, PgError> {
        let bin = find_bin_dir().ok_or(PgError::NotInstalled)?;
        // SAFETY: geteuid has no preconditions.
        let run_as = if unsafe { libc::geteuid() } == 0 {
            Some(postgres_user()?)
        } else {
            None
        };
        let dir = tempfile::Builder::new()
            .prefix("postgres-harness-")
            .tempdir()
            .map_err(io("creating a temp dir"))?;
        let password = Alphanumeric.sample_string(&mut rand::rng(), 20);
        let pwfile = dir.path().join("password");
        std::fs::write(&pwfile, &password).map_err(io("writing the password file"))?;
        if let Some((uid, gid)) = run_as {
            chown(dir.path(), uid, gid)?;
            chown(&pwfile, uid, gid)?;
        }
        let data = dir.path().join("data");
        let mut initdb = Command::new(bin.join("initdb"));
        initdb
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                USER,
                "--auth=scram-sha-256",
                "--no-locale",
                "-E",
                "UTF8",
            ])
            // No fsync while creating a throwaway cluster (the server itself does fsync).
            .arg("--no-sync")
            .arg(format!("--pwfile={}", pwfile.display()));
        let output = as_user(&mut initdb, run_as)
            .output()
            .map_err(io("running initdb"))?;
        if !output.status.success() {
            return Err(PgError::Failed {
                what: format!("initdb ({})", output.status),
                log: format!(
                    "{}{}",
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                ),
            });
        }
        let mut server = PostgresServer {
            dir,
            bin,
            port: 0,
            password,
            run_as,
            child: None,
            log: Arc::new(Log::default()),
        };
        // A port picked by binding 0 may be taken by someone else before postgres binds it.
        let mut last = None;
        for _ in 0..5 {
            server.port = free_port()?;
            match server.spawn() {
                Ok(()) => return Ok(server),
                Err(err) => last = Some(err),
            }
        }
        Err(last.unwrap_or(PgError::NotInstalled))
    }

    /// `postgres://store:<password>@127.0.0.1:<port>/postgres`.
    pub fn url(&self) -> String {
        format!(
            "postgres://{USER}:{}@127.0.0.1:{}/{DATABASE}",
            self.password, self.port
        )
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Everything the server printed so far.
    pub fn log(&self) -> String {
        self.log.snapshot()
    }

    /// Whether the server process is running.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Fast shutdown (SIGINT): active transactions are rolled back, clients disconnected; then
    /// the port refuses connections until [`PostgresServer::start_again`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(&child, libc::SIGINT);
            if wait_timeout(&mut child, STOP_GRACE).is_none() {
                signal(&child, libc::SIGQUIT);
                if wait_timeout(&mut child, Duration::from_secs(5)).is_none() {
                    let _ = child.kill();
                    let _ = child.wait();
                }
            }
        }
    }

    /// Starts the stopped server again, same data, same port.
    pub fn start_again(&mut self) -> Result<(), PgError> {
        if self.child.is_some() {
            return Ok(());
        }
        self.spawn()
    }

    /// Runs `sql`, a query of one row and one integer column (e.g. `SELECT count(*) FROM events`),
    /// as a scalar subquery cast to `bigint`.
    pub fn query_i64(&self, sql: &str) -> Result<i64, PgError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(io("starting a tokio runtime"))?;
        let url = self.url();
        runtime.block_on(async move {
            let query = |err: tokio_postgres::Error| PgError::Query(format!("{sql}: {err}"));
            let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .map_err(query)?;
            let driver = tokio::spawn(connection);
            let scalar = format!("SELECT ({sql})::bigint");
            let row = client.query_one(&scalar, &[]).await.map_err(query)?;
            let value: i64 = row.try_get(0).map_err(query)?;
            drop(client);
            let _ = driver.await;
            Ok(value)
        })
    }

    /// Runs statements that return nothing (e.g. `DROP TABLE IF EXISTS events`).
    pub fn execute(&self, sql: &str) -> Result<(), PgError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(io("starting a tokio runtime"))?;
        let url = self.url();
        runtime.block_on(async move {
            let failed = |err: tokio_postgres::Error| PgError::Query(format!("{sql}: {err}"));
            let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .map_err(failed)?;
            let driver = tokio::spawn(connection);
            client.batch_execute(sql).await.map_err(failed)?;
            drop(client);
            let _ = driver.await;
            Ok(())
        })
    }

    /// The server's version, e.g. `15.14`.
    pub fn version(&self) -> Result<String, PgError> {
        let number = self.query_i64("SELECT current_setting('server_version_num')::int")?;
        Ok(format!("{}.{}", number / 10_000, number % 10_000))
    }

    fn spawn(&mut self) -> Result<(), PgError> {
        let mut command = Command::new(self.bin.join("postgres"));
        command
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .arg("-p")
            .arg(self.port.to_string())
            .args(["-c", "listen_addresses=127.0.0.1"])
            // No Unix socket: /var/run/postgresql may not exist or belong to someone else.
            .args(["-c", "unix_socket_directories="])
            .args(["-c", "max_connections=30", "-c", "shared_buffers=32MB"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = as_user(&mut command, self.run_as)
            .spawn()
            .map_err(io("starting postgres"))?;
        let before = self.log.snapshot().matches(READY_LINE).count();
        for pipe in [
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let log = Arc::clone(&self.log);
            thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    match line {
                        Ok(line) => log.push(&line),
                        Err(_) => break,
                    }
                }
            });
        }
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if self
                .log
                .wait_for(READY_LINE, before, Duration::from_millis(100))
            {
                self.child = Some(child);
                return Ok(());
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(PgError::Failed {
                    what: format!("postgres exited early ({status})"),
                    log: self.log.snapshot(),
                });
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(PgError::Failed {
                    what: format!("postgres not ready within {} s", READY_TIMEOUT.as_secs()),
                    log: self.log.snapshot(),
                });
            }
        }
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Immediate shutdown: the data is thrown away anyway.
            signal(&child, libc::SIGQUIT);
            if wait_timeout(&mut child, Duration::from_secs(5)).is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// `$POSTGRES_BIN_DIR`, else the highest `/usr/lib/postgresql/<version>/bin`, else PATH.
fn find_bin_dir() -> Option<PathBuf> {
    let usable = |dir: &Path| dir.join("initdb").is_file() && dir.join("postgres").is_file();
    if let Some(dir) = std::env::var_os("POSTGRES_BIN_DIR").map(PathBuf::from) {
        return usable(&dir).then_some(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            usable(&bin).then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .find(|dir| usable(dir))
}

/// The `postgres` user's uid and gid.
fn postgres_user() -> Result<(u32, u32), PgError> {
    let name = CString::new("postgres").map_err(|_| PgError::NoPostgresUser)?;
    // SAFETY: a valid C string; the result is read at once, before any other getpw* call.
    let entry = unsafe { libc::getpwnam(name.as_ptr()) };
    if entry.is_null() {
        return Err(PgError::NoPostgresUser);
    }
    // SAFETY: non-null pointer returned by getpwnam.
    let (uid, gid) = unsafe { ((*entry).pw_uid, (*entry).pw_gid) };
    Ok((uid, gid))
}

/// Runs the command as `run_as` (std drops supplementary groups when it changes the uid).
fn as_user(command: &mut Command, run_as: Option<(u32, u32)>) -> &mut Command {
    if let Some((uid, gid)) = run_as {
        command.uid(uid).gid(gid).env("HOME", "/tmp");
    }
    command
}

fn chown(path: &Path, uid: u32, gid: u32) -> Result<(), PgError> {
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .map_err(io(format!("chown {} to postgres", path.display())))
}

fn free_port() -> Result<u16, PgError> {
    let listener =
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(io("finding a free port"))?;
    listener
        .local_addr()
        .map(|addr| addr.port())
        .map_err(io("finding a free port"))
}

fn signal(child: &Child, signal: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill has no memory-safety preconditions; the child is not reaped yet.
        unsafe {
            libc::kill(pid, signal);
        }
    }
}

fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_answers_stops_and_starts_again() {
        let mut db = PostgresServer::start().unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(db.query_i64("SELECT 41 + 1").unwrap(), 42);
        db.execute("CREATE TABLE t (x int); INSERT INTO t VALUES (1), (2)")
            .unwrap();
        assert_eq!(db.query_i64("SELECT count(*) FROM t").unwrap(), 2);
        assert!(db.version().unwrap().starts_with(char::is_numeric));
        db.stop();
        assert!(db.query_i64("SELECT 1").is_err());
        db.start_again().unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(db.query_i64("SELECT 1").unwrap(), 1);
    }
}
