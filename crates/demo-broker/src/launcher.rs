//! The first-run demo of a scenario: the demo broker plus the scenario's real binary, run as the
//! processes that scenario needs.
//!
//! # Why a launcher, and not a demo mode inside each example
//!
//! An example's `main.rs` is what a customer copies into a production service, so it is written
//! for real credentials only and carries nothing of the demo (not even this crate: a copied
//! consumer does not link a broker). A newcomer without `creds.json` still gets a working first
//! run from `cargo run -p <scenario>`: that command runs this launcher (the package's
//! `default-run`), which starts the embedded [`DemoBroker`] and runs the scenario's binary as
//! ordinary child processes with `--creds <demo creds.json> --ca-file <demo CA>` — exactly the
//! flags a customer would pass. What the scenario teaches is then shown with real processes: a
//! shared group is three processes splitting the stream, a persistent session is a process that
//! stops and comes back to its backlog, a client-id collision is two processes with one id.
//!
//! With credentials (`--creds`, `MQTT_CREDS` or `./creds.json`) the launcher steps aside: it runs
//! the scenario's binary with the arguments as given, as if it had been started directly.
//!
//! `--variant NAME` picks another binary of the package (`rumqttc-blocking`, `paho-tokio`, …);
//! the launcher builds it first when it runs under `cargo run`, with the features it needs.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, watch};

use crate::{DemoBroker, DemoOptions};

/// How a scenario is shown with the demo broker.
#[derive(Debug, Clone, Copy)]
pub enum Runs {
    /// One process: the smallest correct consumer.
    Single,
    /// `members` processes side by side, each with its own `--instance 1..=members` (so its own
    /// client id), e.g. the members of one shared-subscription group. `--count N` is split
    /// between them (each stops after its part) and a tally of who handled what is printed.
    SideBySide { members: u8 },
    /// One process, stopped after `first_count` messages, down for `down_for` while the demo
    /// keeps publishing, then started again with the same `--instance`: does the backlog arrive?
    RestartOnce {
        first_count: u64,
        down_for: Duration,
    },
    /// Two processes with the SAME client id, the second started `stagger` after the first.
    /// When one of them stops (a collision detected), the other is left running for a few
    /// seconds to show it keeps the id, then stopped.
    SameIdTwice { stagger: Duration },
}

/// One scenario's demo: which package and binary, and how it runs.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// The Cargo package, e.g. `shared-subscription`.
    pub package: &'static str,
    /// Its `Cargo.toml` directory (`env!("CARGO_MANIFEST_DIR")`), to build the binary with.
    pub manifest_dir: &'static str,
    /// The processes to run.
    pub runs: Runs,
}

/// What the launcher prints its own lines with, so they stand out from the processes' output.
const SAYS: &str = "==> demo:";

/// How long the launcher waits for its processes after asking them to stop (SIGTERM). Longer
/// than the examples' own drain limits (10 s, Paho 15 s), shorter than Kubernetes' 30 s.
const STOP_WAIT: Duration = Duration::from_secs(25);

/// How often a [`Runs::SideBySide`] demo prints the tally.
const TALLY_EVERY: Duration = Duration::from_secs(10);

/// Runs the plan: the demo when there are no credentials, else the scenario's binary as given.
/// Call it from the launcher's `main`; it returns the exit code to use.
pub fn main(plan: Plan) -> ExitCode {
    let mut args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let variant = take_flag_value(&mut args, "--variant");
    let bin = match variant {
        None => plan.package.to_owned(),
        Some(name) => {
            let name = name.to_string_lossy().into_owned();
            if name.starts_with(plan.package) {
                name
            } else {
                format!("{}-{name}", plan.package)
            }
        }
    };
    let program = match locate_binary(&plan, &bin) {
        Ok(program) => program,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(1);
        }
    };
    if has_credentials(&args) || asks_for_help(&args) {
        return exec(&program, &args);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: could not start the demo's async runtime: {err}.");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(run_demo(plan.runs, program, args))
}

/// Credentials configured: `--creds`, `MQTT_CREDS` or `./creds.json`. Then this is not a demo.
fn has_credentials(args: &[OsString]) -> bool {
    args.iter()
        .any(|arg| arg == "--creds" || arg.to_string_lossy().starts_with("--creds="))
        || std::env::var_os("MQTT_CREDS").is_some()
        || Path::new(common::cli::DEFAULT_CREDS_PATH).exists()
}

/// `--help` and `--version` are the binary's, demo or not.
fn asks_for_help(args: &[OsString]) -> bool {
    args.iter()
        .any(|arg| arg == "--help" || arg == "-h" || arg == "--version" || arg == "-V")
}

/// Removes `--flag VALUE` (or `--flag=VALUE`) from `args` and returns the value.
fn take_flag_value(args: &mut Vec<OsString>, flag: &str) -> Option<OsString> {
    let prefix = format!("{flag}=");
    let index = args
        .iter()
        .position(|arg| arg == flag || arg.to_string_lossy().starts_with(&prefix))?;
    let arg = args.remove(index);
    if arg == flag {
        (index < args.len()).then(|| args.remove(index))
    } else {
        Some(OsString::from(&arg.to_string_lossy()[prefix.len()..]))
    }
}

/// The scenario's binary next to this launcher. Under `cargo run` (which sets `CARGO`) it is
/// built first — `cargo run -p <scenario>` builds only the launcher — with the features its name
/// says it needs, in the launcher's profile. Run directly (the tests), it must exist already.
fn locate_binary(plan: &Plan, bin: &str) -> Result<PathBuf, String> {
    let exe = std::env::current_exe()
        .map_err(|err| format!("cannot find the launcher's own path: {err}"))?;
    let dir = exe
        .parent()
        .ok_or_else(|| format!("{} has no parent directory", exe.display()))?;
    let program = dir.join(format!("{bin}{}", std::env::consts::EXE_SUFFIX));
    if let Some(cargo) = std::env::var_os("CARGO") {
        let mut build = std::process::Command::new(cargo);
        build
            .args(["build", "--quiet", "--manifest-path"])
            .arg(Path::new(plan.manifest_dir).join("Cargo.toml"))
            .args(["--bin", bin]);
        if dir.file_name().is_some_and(|name| name == "release") {
            build.arg("--release");
        }
        if bin.contains("-paho-") {
            build.args(["--features", "paho"]);
        } else if bin.ends_with("-native-tls") {
            build.args(["--features", "native-tls"]);
        }
        match build.status() {
            Ok(status) if status.success() => {}
            Ok(status) => {
                return Err(format!(
                    "building `{bin}` failed ({status}); the compiler's messages are above. \
                     Variants: rumqttc-blocking, rumqttc-native-tls, paho-tokio, paho-smol, \
                     paho-async-std (the paho ones need cmake, a C compiler and libssl-dev)."
                ))
            }
            Err(err) => return Err(format!("could not run cargo to build `{bin}`: {err}")),
        }
    }
    if program.exists() {
        Ok(program)
    } else {
        Err(format!(
            "{} does not exist. Build it first (`cargo build -p {} --bin {bin}`); a launcher \
             started by cargo's run command builds it itself.",
            program.display(),
            plan.package,
        ))
    }
}

/// Runs the binary in place of this process (credentials given: the launcher steps aside).
fn exec(program: &Path, args: &[OsString]) -> ExitCode {
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        let err = std::process::Command::new(program).args(args).exec();
        eprintln!("error: could not run {}: {err}", program.display());
        ExitCode::from(1)
    }
    #[cfg(not(unix))]
    match std::process::Command::new(program).args(args).status() {
        Ok(status) => ExitCode::from(status.code().unwrap_or(1).clamp(0, 255) as u8),
        Err(err) => {
            eprintln!("error: could not run {}: {err}", program.display());
            ExitCode::from(1)
        }
    }
}

/// One child process of the demo, with a name for the launcher's lines.
struct Member {
    name: String,
    child: Child,
}

/// A line of a child's stdout, or the end of it.
enum Output {
    Line { member: usize, line: String },
    Closed,
}

async fn run_demo(runs: Runs, program: PathBuf, mut args: Vec<OsString>) -> ExitCode {
    let count: Option<u64> = take_flag_value(&mut args, "--count")
        .and_then(|value| value.to_string_lossy().parse().ok());
    let demo = match DemoBroker::start(DemoOptions::default()).await {
        Ok(demo) => demo,
        Err(err) => {
            eprintln!("error: the local demo broker did not start: {err}. Act on those words, or use real credentials (--creds creds.json).");
            eprintln!(
                "{}",
                common::exit::help_line(common::catalogue::Key::DemoBrokerFailed)
            );
            return ExitCode::from(1);
        }
    };
    eprintln!("{}", demo.banner());
    let mut base: Vec<OsString> = vec![
        "--creds".into(),
        demo.creds_path().into(),
        "--ca-file".into(),
        demo.ca_path().into(),
    ];
    base.extend(args);
    // A stop request (Ctrl-C, SIGTERM) as a flag every phase of the demo can wait on.
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        common::shutdown::signal().await;
        let _ = stop_tx.send(true);
    });
    let launcher = Launcher {
        program,
        base,
        lines: mpsc::unbounded_channel(),
        tally: Vec::new(),
        stop: stop_rx,
    };
    let code = launcher.run(runs, count).await;
    demo.shutdown().await;
    code
}

/// The running demo: the binary, its arguments, and what its processes print.
struct Launcher {
    program: PathBuf,
    base: Vec<OsString>,
    lines: (
        mpsc::UnboundedSender<Output>,
        mpsc::UnboundedReceiver<Output>,
    ),
    /// Message lines printed per member, in the order they were started.
    tally: Vec<(String, u64)>,
    /// Becomes `true` on Ctrl-C / SIGTERM.
    stop: watch::Receiver<bool>,
}

/// Resolves once a stop was requested; can be awaited again and again.
async fn stop_requested(mut stop: watch::Receiver<bool>) {
    if stop.wait_for(|stopped| *stopped).await.is_err() {
        std::future::pending::<()>().await;
    }
}

impl Launcher {
    async fn run(mut self, runs: Runs, count: Option<u64>) -> ExitCode {
        match runs {
            Runs::Single => {
                let members = self.spawn_all(&[("consumer", None, count)]);
                self.wait(members, None).await
            }
            Runs::SideBySide { members } => {
                let each = count.map(|n| n.div_ceil(u64::from(members)));
                let names: Vec<(String, Option<String>, Option<u64>)> = (1..=members)
                    .map(|i| (format!("member {i}"), Some(i.to_string()), each))
                    .collect();
                let specs: Vec<_> = names
                    .iter()
                    .map(|(name, instance, n)| (name.as_str(), instance.as_deref(), *n))
                    .collect();
                eprintln!(
                    "{SAYS} {members} processes of {}, each with its own --instance (so its own \
                     client id), joining one group",
                    self.program_name()
                );
                let running = self.spawn_all(&specs);
                let code = self.wait(running, Some(TALLY_EVERY)).await;
                eprintln!("{SAYS} {}", self.tally_line());
                code
            }
            Runs::RestartOnce {
                first_count,
                down_for,
            } => {
                eprintln!(
                    "{SAYS} run 1: {} until it has handled {first_count} messages, then it stops",
                    self.program_name()
                );
                let first = self.spawn_all(&[("run 1", Some("demo"), Some(first_count))]);
                let code = self.wait(first, None).await;
                if code != ExitCode::SUCCESS {
                    return code;
                }
                eprintln!(
                    "{SAYS} the consumer is down; the demo keeps publishing for {} s",
                    down_for.as_secs()
                );
                if tokio::time::timeout(down_for, stop_requested(self.stop.clone()))
                    .await
                    .is_ok()
                {
                    return ExitCode::SUCCESS;
                }
                eprintln!("{SAYS} run 2: the same binary, the same --instance (client id)");
                let second = self.spawn_all(&[("run 2", Some("demo"), count)]);
                self.wait(second, None).await
            }
            Runs::SameIdTwice { stagger } => {
                eprintln!(
                    "{SAYS} process A, then process B {} s later, both with the SAME client id",
                    stagger.as_secs()
                );
                let mut running = self.spawn_all(&[("A", None, count)]);
                tokio::time::sleep(stagger).await;
                running.extend(self.spawn_all(&[("B", None, count)]));
                self.wait_for_first_exit(running).await
            }
        }
    }

    fn program_name(&self) -> String {
        self.program
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    fn tally_line(&self) -> String {
        let total: u64 = self.tally.iter().map(|(_, n)| n).sum();
        let parts: Vec<String> = self
            .tally
            .iter()
            .map(|(name, n)| format!("{name}={n}"))
            .collect();
        format!("tally: {total} handled: {}", parts.join(" "))
    }

    /// Starts one process per spec: (name, --instance, --count). Its stdout is forwarded line by
    /// line (and message lines counted); its stderr goes straight to ours.
    fn spawn_all(&mut self, specs: &[(&str, Option<&str>, Option<u64>)]) -> Vec<Member> {
        let mut members = Vec::new();
        for (name, instance, count) in specs {
            let mut command = Command::new(&self.program);
            command.args(&self.base);
            if let Some(instance) = instance {
                command.args(["--instance", instance]);
            }
            if let Some(count) = count {
                command.args(["--count", &count.to_string()]);
            }
            command
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .kill_on_drop(true);
            match command.spawn() {
                Ok(mut child) => {
                    if let Some(stdout) = child.stdout.take() {
                        let sender = self.lines.0.clone();
                        let member = self.tally.len();
                        tokio::spawn(async move {
                            let mut lines = BufReader::new(stdout).lines();
                            while let Ok(Some(line)) = lines.next_line().await {
                                if sender.send(Output::Line { member, line }).is_err() {
                                    return;
                                }
                            }
                            let _ = sender.send(Output::Closed);
                        });
                    }
                    self.tally.push(((*name).to_owned(), 0));
                    members.push(Member {
                        name: (*name).to_owned(),
                        child,
                    });
                }
                Err(err) => eprintln!("{SAYS} could not start {name}: {err}"),
            }
        }
        members
    }

    /// Forwards output until every member has exited; a stop request is passed on as SIGTERM.
    /// The exit code is the first failing member's, else success.
    async fn wait(&mut self, mut members: Vec<Member>, tally_every: Option<Duration>) -> ExitCode {
        let mut codes = Vec::new();
        let mut tally = tokio::time::interval(tally_every.unwrap_or(Duration::from_secs(3600)));
        tally.tick().await;
        let mut stopping = false;
        let kill_at = tokio::time::sleep(Duration::MAX / 4);
        tokio::pin!(kill_at);
        while !members.is_empty() {
            tokio::select! {
                Some(output) = self.lines.1.recv() => self.show(output),
                _ = tally.tick(), if tally_every.is_some() => eprintln!("{SAYS} {}", self.tally_line()),
                () = stop_requested(self.stop.clone()), if !stopping => {
                    stopping = true;
                    terminate(&members);
                    kill_at.as_mut().reset(tokio::time::Instant::now() + STOP_WAIT);
                }
                () = &mut kill_at, if stopping => {
                    eprintln!("{SAYS} still running {} s after SIGTERM: killing", STOP_WAIT.as_secs());
                    for member in &mut members {
                        let _ = member.child.start_kill();
                    }
                    kill_at.as_mut().reset(tokio::time::Instant::now() + STOP_WAIT);
                }
                (index, status) = first_exit(&mut members) => {
                    let member = members.remove(index);
                    let code = status.ok().and_then(|s| s.code()).unwrap_or(1);
                    if code != 0 {
                        eprintln!("{SAYS} {} exited with code {code}", member.name);
                    }
                    codes.push(code);
                }
            }
        }
        self.flush_output().await;
        exit_code(codes.into_iter().find(|&code| code != 0).unwrap_or(0))
    }

    /// [`Runs::SameIdTwice`]: when the first process stops, the other keeps running a little
    /// (it holds the id now), then both are done. The exit code is the stopped process's.
    async fn wait_for_first_exit(&mut self, mut members: Vec<Member>) -> ExitCode {
        let first_code = loop {
            tokio::select! {
                Some(output) = self.lines.1.recv() => self.show(output),
                () = stop_requested(self.stop.clone()) => {
                    terminate(&members);
                    return self.wait(members, None).await;
                }
                (index, status) = first_exit(&mut members) => {
                    let member = members.remove(index);
                    let code = status.ok().and_then(|s| s.code()).unwrap_or(1);
                    eprintln!("{SAYS} {} exited with code {code}", member.name);
                    break code;
                }
            }
        };
        if let Some(survivor) = members.first() {
            eprintln!(
                "{SAYS} {} keeps the client id and keeps receiving; stopping it in 5 s",
                survivor.name
            );
        }
        let linger = tokio::time::sleep(Duration::from_secs(5));
        tokio::pin!(linger);
        loop {
            tokio::select! {
                Some(output) = self.lines.1.recv() => self.show(output),
                () = &mut linger => break,
                () = stop_requested(self.stop.clone()) => break,
            }
        }
        terminate(&members);
        self.wait(members, None).await;
        exit_code(first_code)
    }

    fn show(&mut self, output: Output) {
        if let Output::Line { member, line } = output {
            if is_message_line(&line) {
                if let Some((_, count)) = self.tally.get_mut(member) {
                    *count += 1;
                }
            }
            println!("{line}");
        }
    }

    /// Prints what the exited processes wrote last (their pipes may still hold lines).
    async fn flush_output(&mut self) {
        while let Ok(Some(output)) =
            tokio::time::timeout(Duration::from_millis(200), self.lines.1.recv()).await
        {
            self.show(output);
        }
    }
}

/// `message 7 on <topic>` or `[<client id>] message 7 on <topic>`: one handled message.
fn is_message_line(line: &str) -> bool {
    let rest = match line.strip_prefix('[') {
        Some(rest) => rest.split_once("] ").map_or("", |(_, rest)| rest),
        None => line,
    };
    rest.starts_with("message ") && rest.contains(" on ")
}

/// Waits until one member exits: its index and status.
async fn first_exit(members: &mut [Member]) -> (usize, std::io::Result<std::process::ExitStatus>) {
    if members.is_empty() {
        return std::future::pending().await;
    }
    let waits = members
        .iter_mut()
        .map(|member| Box::pin(member.child.wait()));
    let (status, index, _) = futures::future::select_all(waits).await;
    (index, status)
}

/// Asks every member to stop as SIGTERM would in production (Ctrl-C in a terminal reaches them
/// directly as well: they are in the terminal's process group).
fn terminate(members: &[Member]) {
    for member in members {
        if let Some(pid) = member.child.id() {
            #[cfg(unix)]
            // SAFETY: kill(2) with a pid we started and have not reaped; no memory is involved.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGTERM);
            }
            #[cfg(not(unix))]
            let _ = pid;
        }
    }
}

fn exit_code(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_lines_with_and_without_a_client_id_are_counted() {
        assert!(is_message_line("message 1 on airfinder/x"));
        assert!(is_message_line(
            "[demo-consumer-2] message 14 on airfinder/x"
        ));
        assert!(!is_message_line("  \"eventType\": \"message\""));
        assert!(!is_message_line("[x] connected"));
    }

    #[test]
    fn a_flag_value_is_taken_in_both_spellings() {
        let mut args: Vec<OsString> = ["--a", "--variant", "paho-tokio", "--b"]
            .map(OsString::from)
            .to_vec();
        assert_eq!(
            take_flag_value(&mut args, "--variant"),
            Some("paho-tokio".into())
        );
        assert_eq!(args, ["--a", "--b"].map(OsString::from).to_vec());
        let mut args: Vec<OsString> = vec!["--count=9".into()];
        assert_eq!(take_flag_value(&mut args, "--count"), Some("9".into()));
        assert!(args.is_empty());
    }
}
