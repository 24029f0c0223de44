//! Running the example binaries as child processes and reading what they print.

use std::ffi::OsStr;
use std::fmt;
use std::io::{self, BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use crate::broker::send_signal;

/// Prefix of the environment variables the examples read (`MQTT_CREDS`,
/// `MQTT_CA_FILE`, ...). Inherited ones are removed so that a developer's
/// own settings cannot leak into a test.
const INHERITED_ENV_PREFIX: &str = "MQTT_";

/// How long to wait, after a child exits, for its last output to be read. The wait ends when both
/// pipes close (an event); the bound only matters if a grandchild keeps them open, so it is
/// generous: a loaded machine can take seconds to schedule the reader threads (issue #16).
const OUTPUT_DRAIN_TIMEOUT: Duration = Duration::from_secs(20);

/// The path of a binary of this workspace, built in the same profile as the
/// running test (`target/<profile>/<name>`).
///
/// Cargo only builds the binaries of the package under test for its
/// integration tests, so the example binaries must be built beforehand.
///
/// # Panics
///
/// If the binary does not exist, with the command that builds it.
pub fn example_bin(name: &str) -> PathBuf {
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(err) => panic!("cannot locate the running test executable: {err}"),
    };
    // Test executables live in target/<profile>/deps; binaries one level up.
    let mut dir = exe.parent().map(PathBuf::from).unwrap_or_default();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if !path.is_file() {
        panic!(
            "binary {name} not built (looked for {}): run `cargo build --workspace --bins` \
             (scripts/test does)",
            path.display()
        );
    }
    path
}

/// A [`Command`] for the workspace binary `name`, with the environment tests
/// need: inherited `MQTT_*` variables removed, `NO_COLOR=1` so output can be
/// matched as plain text, `RUST_LOG=info` so progress is visible, and stdin
/// closed so nothing waits for a terminal. Add arguments and variables, then
/// hand it to [`ExampleProcess::spawn_command`].
///
/// # Panics
///
/// Like [`example_bin`], if the binary is not built.
pub fn example_command(name: &str) -> Command {
    let mut command = Command::new(example_bin(name));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with(INHERITED_ENV_PREFIX) {
            command.env_remove(&key);
        }
    }
    command
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null());
    command
}

/// Which output stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// The child's standard output.
    Stdout,
    /// The child's standard error.
    Stderr,
}

impl fmt::Display for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        })
    }
}

/// Everything the child printed so far, in arrival order.
#[derive(Debug, Default)]
struct Transcript {
    lines: Vec<(Stream, String)>,
    /// Output streams still being read; 0 once the child closed both.
    open_streams: usize,
}

#[derive(Debug, Default)]
struct Shared {
    transcript: Mutex<Transcript>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Transcript> {
        self.transcript
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Waits until `done` holds or `deadline` passes. `done` is called after
    /// every change of the transcript.
    fn wait_until(&self, deadline: Instant, mut done: impl FnMut(&Transcript) -> bool) {
        let mut transcript = self.lock();
        loop {
            let now = Instant::now();
            if done(&transcript) || now >= deadline {
                return;
            }
            transcript = match self.changed.wait_timeout(transcript, deadline - now) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }
}

/// An example binary running as a child process, with its stdout and stderr
/// collected line by line.
///
/// Behaviour tests assert on what an example prints and how it exits, as a
/// customer would see it. Dropping it kills and reaps the child, so a failing
/// test never leaves a process behind.
pub struct ExampleProcess {
    name: String,
    child: Child,
    status: Option<ExitStatus>,
    shared: Arc<Shared>,
}

impl fmt::Debug for ExampleProcess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExampleProcess")
            .field("name", &self.name)
            .field("pid", &self.child.id())
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

impl ExampleProcess {
    /// Starts the workspace binary `bin_name` with `args` and extra environment
    /// variables `envs` (see [`example_command`] for the defaults they override).
    ///
    /// # Panics
    ///
    /// If the binary is not built or cannot be started: this is a test helper.
    pub fn spawn<S: AsRef<OsStr>>(
        bin_name: &str,
        args: &[S],
        envs: &[(&str, &str)],
    ) -> ExampleProcess {
        let mut command = example_command(bin_name);
        command.args(args);
        for (key, value) in envs {
            command.env(key, value);
        }
        match ExampleProcess::spawn_command(command) {
            Ok(process) => process,
            Err(err) => panic!("starting {bin_name}: {err}"),
        }
    }

    /// Starts any prepared command (usually from [`example_command`]) with its
    /// stdout and stderr captured.
    pub fn spawn_command(mut command: Command) -> io::Result<ExampleProcess> {
        let name = PathBuf::from(command.get_program())
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let shared = Arc::new(Shared::default());
        if let Some(stdout) = child.stdout.take() {
            read_lines(stdout, Stream::Stdout, Arc::clone(&shared));
        }
        if let Some(stderr) = child.stderr.take() {
            read_lines(stderr, Stream::Stderr, Arc::clone(&shared));
        }
        Ok(ExampleProcess {
            name,
            child,
            status: None,
            shared,
        })
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for a line on either stream for which `matches` holds, counting
    /// lines already printed, and returns it. `None` on timeout, or as soon as
    /// the child has closed its output without printing such a line.
    pub fn wait_for_line(
        &self,
        matches: impl Fn(&str) -> bool,
        timeout: Duration,
    ) -> Option<String> {
        let mut seen = 0;
        let mut found = None;
        self.shared
            .wait_until(Instant::now() + timeout, |transcript| {
                found = transcript.lines[seen..]
                    .iter()
                    .find(|(_, line)| matches(line))
                    .map(|(_, line)| line.clone());
                seen = transcript.lines.len();
                found.is_some() || transcript.open_streams == 0
            });
        found
    }

    /// Waits until at least `count` lines satisfy `matches` (e.g. "received"
    /// lines of a subscriber); returns how many there were at the end.
    pub fn wait_for_count(
        &self,
        matches: impl Fn(&str) -> bool,
        count: usize,
        timeout: Duration,
    ) -> usize {
        let mut seen = 0;
        let mut matched = 0;
        self.shared
            .wait_until(Instant::now() + timeout, |transcript| {
                matched += transcript.lines[seen..]
                    .iter()
                    .filter(|(_, line)| matches(line))
                    .count();
                seen = transcript.lines.len();
                matched >= count || transcript.open_streams == 0
            });
        matched
    }

    /// How many lines printed so far satisfy `matches`.
    pub fn count_lines(&self, matches: impl Fn(&str) -> bool) -> usize {
        self.shared
            .lock()
            .lines
            .iter()
            .filter(|(_, line)| matches(line))
            .count()
    }

    /// All lines so far with the stream they came from, in arrival order.
    pub fn lines(&self) -> Vec<(Stream, String)> {
        self.shared.lock().lines.clone()
    }

    /// Standard output so far.
    pub fn stdout(&self) -> String {
        self.stream_text(Stream::Stdout)
    }

    /// Standard error so far.
    pub fn stderr(&self) -> String {
        self.stream_text(Stream::Stderr)
    }

    /// Both streams so far, each line prefixed with `[stdout]` or `[stderr]`:
    /// what a failing assertion should print.
    pub fn transcript(&self) -> String {
        let transcript = self.shared.lock();
        let mut text = format!("--- {} (pid {}) ---\n", self.name, self.child.id());
        for (stream, line) in &transcript.lines {
            text.push_str(&format!("[{stream}] {line}\n"));
        }
        text
    }

    /// Sends SIGTERM, as a process supervisor would; see [`wait_exit`](Self::wait_exit).
    pub fn terminate(&self) {
        self.signal(libc::SIGTERM);
    }

    /// Sends SIGINT, as Ctrl-C in a terminal would.
    pub fn interrupt(&self) {
        self.signal(libc::SIGINT);
    }

    /// Kills the child with SIGKILL and reaps it.
    pub fn kill(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            // Ignored: the child may have exited on its own meanwhile.
            let _ = self.child.kill();
            self.status = self.child.wait().ok();
            self.wait_for_output_closed();
        }
        self.status
    }

    /// The exit status if the child has exited, without waiting.
    pub fn try_exit_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
            if self.status.is_some() {
                self.wait_for_output_closed();
            }
        }
        self.status
    }

    /// Waits up to `timeout` for the child to exit; `None` if it still runs.
    /// Once it returns a status, everything the child printed is in the transcript.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_exit_status() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    fn signal(&self, signal: libc::c_int) {
        // Only while unreaped: afterwards the pid may belong to another process.
        if self.status.is_none() {
            send_signal(&self.child, signal);
        }
    }

    fn stream_text(&self, wanted: Stream) -> String {
        let transcript = self.shared.lock();
        let mut text = String::new();
        for (stream, line) in &transcript.lines {
            if *stream == wanted {
                text.push_str(line);
                text.push('\n');
            }
        }
        text
    }

    /// After exit the pipes may still hold output; wait (bounded, in case a
    /// grandchild keeps them open) until both are read to the end.
    fn wait_for_output_closed(&self) {
        self.shared
            .wait_until(Instant::now() + OUTPUT_DRAIN_TIMEOUT, |transcript| {
                transcript.open_streams == 0
            });
    }
}

impl Drop for ExampleProcess {
    /// Kills and reaps the child so that no test leaks a process.
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Reads `pipe` line by line into the transcript on its own thread.
fn read_lines(pipe: impl Read + Send + 'static, stream: Stream, shared: Arc<Shared>) {
    shared.lock().open_streams += 1;
    thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf);
                    let line = line.trim_end_matches(['\n', '\r']).to_string();
                    shared.lock().lines.push((stream, line));
                    shared.changed.notify_all();
                }
            }
        }
        shared.lock().open_streams -= 1;
        shared.changed.notify_all();
    });
}
