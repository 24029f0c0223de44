//! Child processes whose output lines are time-stamped and whose peak memory is measured.
//!
//! `mosquitto_harness::ExampleProcess` panics when a binary is missing and keeps no timing. The
//! benchmark needs the peak resident set size of every consumer (sampled from `/proc`), the exact
//! moment each line arrived (takeover detection), and to survive a variant that is not built.

use std::ffi::OsStr;
use std::io::{self, BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

/// One line a child printed, and when the benchmark read it.
#[derive(Clone, Debug)]
pub struct Line {
    /// When the reader thread got the line.
    pub at: Instant,
    /// `true` for stderr.
    pub stderr: bool,
    /// The text without its line break.
    pub text: String,
}

/// How a child ended.
#[derive(Clone, Copy, Debug)]
pub struct Exit {
    /// The exit code, `None` when killed by a signal.
    pub code: Option<i32>,
    /// The signal that killed it, if any.
    pub signal: Option<i32>,
    /// Peak resident set size in KiB: the highest `VmHWM` seen in `/proc/<pid>/status`.
    ///
    /// Not `wait4`'s `ru_maxrss`: Linux folds the RSS of the process image replaced by `exec`
    /// into it, and a child spawned from this (large) benchmark process would inherit the
    /// benchmark's own footprint. `VmHWM` belongs to the program's own address space.
    pub max_rss_kib: u64,
    /// CPU time used, user + system (`wait4`'s rusage; the moment before `exec` is negligible).
    pub cpu: Duration,
}

impl Exit {
    /// `code 0`, `code 6`, `signal 15`.
    pub fn describe(&self) -> String {
        match (self.code, self.signal) {
            (Some(code), _) => format!("exit code {code}"),
            (None, Some(signal)) => format!("killed by signal {signal}"),
            (None, None) => "unknown exit".to_owned(),
        }
    }
}

#[derive(Default)]
struct Output {
    lines: Vec<Line>,
    open_streams: usize,
}

#[derive(Default)]
struct Shared {
    output: Mutex<Output>,
    changed: Condvar,
    /// Highest `VmHWM` sampled so far (KiB).
    peak_rss_kib: AtomicU64,
    /// Set once the child is reaped: its pid may then be reused, so sampling stops.
    reaped: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Output> {
        self.output.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running child process. Dropping it kills and reaps the child.
pub struct Proc {
    name: String,
    pid: libc::pid_t,
    exit: Option<Exit>,
    shared: Arc<Shared>,
}

impl Proc {
    /// Starts `program` with `args`, stdin closed, stdout and stderr captured line by line.
    pub fn spawn(
        name: &str,
        program: &OsStr,
        args: &[String],
        envs: &[(&str, &str)],
        stdout_file: Option<std::fs::File>,
    ) -> io::Result<Proc> {
        let mut command = Command::new(program);
        command.args(args);
        // A developer's own MQTT_* settings must not leak into a measurement.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("MQTT_") {
                command.env_remove(&key);
            }
        }
        command.env("NO_COLOR", "1");
        for (key, value) in envs {
            command.env(key, value);
        }
        Proc::start_with(name, command, stdout_file)
    }

    /// Starts a prepared command (stdin closed, stdout and stderr captured).
    pub fn start(name: &str, command: Command) -> io::Result<Proc> {
        Proc::start_with(name, command, None)
    }

    /// Like [`start`](Self::start), but stdout goes to `stdout_file` instead of being read
    /// line by line: for a program printing every message, so that the benchmark's reader does
    /// not compete with it for CPU during the measurement.
    pub fn start_with(
        name: &str,
        mut command: Command,
        stdout_file: Option<std::fs::File>,
    ) -> io::Result<Proc> {
        let stdout = match stdout_file {
            Some(file) => Stdio::from(file),
            None => Stdio::piped(),
        };
        let mut child = command
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(Stdio::piped())
            .spawn()?;
        let pid = libc::pid_t::try_from(child.id())
            .map_err(|_| io::Error::other("child pid does not fit pid_t"))?;
        let shared = Arc::new(Shared::default());
        if let Some(out) = child.stdout.take() {
            read_lines(out, false, Arc::clone(&shared));
        }
        if let Some(err) = child.stderr.take() {
            read_lines(err, true, Arc::clone(&shared));
        }
        sample_rss(pid, Arc::clone(&shared));
        // Dropping `Child` neither kills nor reaps: from here on the pid is all we need.
        drop(child);
        Ok(Proc {
            name: name.to_owned(),
            pid,
            exit: None,
            shared,
        })
    }

    /// The name given at spawn (the variant), for messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Waits for a line satisfying `matches` (counting lines already printed).
    /// `None` on timeout or once the child closed its output without one.
    pub fn wait_line(&self, matches: impl Fn(&str) -> bool, timeout: Duration) -> Option<Line> {
        let deadline = Instant::now() + timeout;
        let mut output = self.shared.lock();
        let mut seen = 0;
        loop {
            if let Some(line) = output.lines[seen..].iter().find(|l| matches(&l.text)) {
                return Some(line.clone());
            }
            seen = output.lines.len();
            let now = Instant::now();
            if now >= deadline || output.open_streams == 0 {
                return None;
            }
            output = match self.shared.changed.wait_timeout(output, deadline - now) {
                Ok((guard, _)) => guard,
                Err(p) => p.into_inner().0,
            };
        }
    }

    /// The first line printed so far that satisfies `matches`.
    pub fn find_line(&self, matches: impl Fn(&str) -> bool) -> Option<Line> {
        self.shared
            .lock()
            .lines
            .iter()
            .find(|l| matches(&l.text))
            .cloned()
    }

    /// The last `n` lines, prefixed by stream: what a failure message shows.
    pub fn tail(&self, n: usize) -> String {
        let output = self.shared.lock();
        let start = output.lines.len().saturating_sub(n);
        let mut text = format!("--- last lines of {} ---\n", self.name);
        for line in &output.lines[start..] {
            let stream = if line.stderr { "stderr" } else { "stdout" };
            text.push_str(&format!("[{stream}] {}\n", line.text));
        }
        text
    }

    /// Reaps the child if it has exited, without waiting.
    pub fn try_exit(&mut self) -> Option<Exit> {
        if self.exit.is_none() {
            self.reap(libc::WNOHANG);
        }
        self.exit
    }

    fn reap(&mut self, options: libc::c_int) {
        if let Some(mut exit) = wait4(self.pid, options) {
            self.shared.reaped.store(true, Ordering::SeqCst);
            exit.max_rss_kib = self.shared.peak_rss_kib.load(Ordering::SeqCst);
            self.exit = Some(exit);
            self.drain_output();
        }
    }

    /// Waits up to `timeout` for the child to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<Exit> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(exit) = self.try_exit() {
                return Some(exit);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(2));
        }
    }

    /// SIGTERM (the examples then finish, print their `stats:` line and disconnect), wait up to
    /// `grace`, then SIGKILL. Always returns how it ended.
    pub fn stop(&mut self, grace: Duration) -> Option<Exit> {
        if self.try_exit().is_none() {
            self.signal(libc::SIGTERM);
            if self.wait_exit(grace).is_none() {
                self.signal(libc::SIGKILL);
                self.reap(0);
            }
        }
        self.exit
    }

    fn signal(&self, signal: libc::c_int) {
        // Only while unreaped: afterwards the pid may name another process.
        if self.exit.is_none() {
            // SAFETY: kill(2) has no memory-safety preconditions; the pid is our unreaped child.
            unsafe {
                libc::kill(self.pid, signal);
            }
        }
    }

    /// After exit, waits (bounded, a grandchild could hold the pipes) for the last output.
    fn drain_output(&self) {
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut output = self.shared.lock();
        while output.open_streams > 0 {
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            output = match self.shared.changed.wait_timeout(output, deadline - now) {
                Ok((guard, _)) => guard,
                Err(p) => p.into_inner().0,
            };
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.exit.is_none() {
            self.signal(libc::SIGKILL);
            self.reap(0);
        }
    }
}

/// `wait4(pid, options)`; `None` while the child still runs (with `WNOHANG`) or on error.
fn wait4(pid: libc::pid_t, options: libc::c_int) -> Option<Exit> {
    let mut status: libc::c_int = 0;
    // SAFETY: an all-zero rusage is a valid value of this plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for writes for the duration of the call.
    let reaped = unsafe { libc::wait4(pid, &mut status, options, &mut usage) };
    if reaped != pid {
        return None;
    }
    let (code, signal) = if libc::WIFEXITED(status) {
        (Some(libc::WEXITSTATUS(status)), None)
    } else if libc::WIFSIGNALED(status) {
        (None, Some(libc::WTERMSIG(status)))
    } else {
        (None, None)
    };
    let time = |t: libc::timeval| {
        Duration::from_secs(u64::try_from(t.tv_sec).unwrap_or(0))
            + Duration::from_micros(u64::try_from(t.tv_usec).unwrap_or(0))
    };
    Some(Exit {
        code,
        signal,
        max_rss_kib: 0,
        cpu: time(usage.ru_utime) + time(usage.ru_stime),
    })
}

fn read_lines(pipe: impl Read + Send + 'static, stderr: bool, shared: Arc<Shared>) {
    shared.lock().open_streams += 1;
    thread::spawn(move || {
        let mut reader = BufReader::with_capacity(1 << 16, pipe);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let at = Instant::now();
                    let text = String::from_utf8_lossy(&buf)
                        .trim_end_matches(['\n', '\r'])
                        .to_owned();
                    shared.lock().lines.push(Line { at, stderr, text });
                    shared.changed.notify_all();
                }
            }
        }
        shared.lock().open_streams -= 1;
        shared.changed.notify_all();
    });
}

/// Samples the child's `VmHWM` every 5 ms until it is reaped. The high-water mark only grows,
/// so the last sample before exit is the peak up to a few milliseconds.
fn sample_rss(pid: libc::pid_t, shared: Arc<Shared>) {
    let path = format!("/proc/{pid}/status");
    thread::spawn(move || {
        while !shared.reaped.load(Ordering::SeqCst) {
            let Ok(status) = std::fs::read_to_string(&path) else {
                return;
            };
            let hwm = status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok());
            if let Some(kib) = hwm {
                shared.peak_rss_kib.fetch_max(kib, Ordering::SeqCst);
            }
            thread::sleep(Duration::from_millis(5));
        }
    });
}
