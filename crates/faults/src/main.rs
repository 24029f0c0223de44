//! # faults — what the examples lose when the network or a process fails
//!
//! ```text
//! cargo run --release -p faults            # the full run (~6 min): writes docs/reliability.md + .svg
//! cargo run -p faults -- --quick           # CI: same faults, small and short, correctness only
//! ```
//!
//! Mosquitto runs on its own "host": a network namespace joined to ours by a veth pair, with its
//! own address and a certificate naming it. The real example binaries connect across the pair,
//! and a publisher inside the broker's namespace sends numbered QoS 1 messages around each fault:
//! a silent link (the broker's end of the pair set down: no FIN, no RST), link flapping, broker
//! SIGTERM and SIGKILL with restarts, consumer SIGKILL, a rolling restart of a shared group, a
//! backlog beyond the broker's queue limit, an oversized message and a topic that is not UTF-8.
//! Each consumer's output says which messages it handled, so losses and duplicates are counted,
//! not guessed.
//!
//! Why a package of its own rather than a mode of `crates/bench`: the benchmark measures speed on
//! loopback and can run anywhere; this needs root for namespaces, runs for minutes of deliberate
//! outages, and its result is a correctness table. Sharing one binary would make each slower to
//! read and to run. It reuses the same parts: mosquitto-harness for the broker, its publisher and
//! the example processes.
//!
//! Without root the namespace faults are skipped, visibly, and the rest run on loopback.
//! `--quick` (scripts/test) asserts only correctness — no loss where the table expects none, no
//! panic — never a time.

mod netns;
mod raw;
mod report;
mod scenarios;
mod traffic;

use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use clap::Parser;
use mosquitto_harness::{BrokerOptions, MosquittoBroker};

use crate::netns::BrokerHost;
use crate::scenarios::{Lab, Plan, Row};

/// Run the examples through network and process faults against Mosquitto; count lost and
/// duplicated QoS 1 messages, detection and recovery times.
#[derive(Parser, Debug)]
#[command(about)]
struct Args {
    /// Few messages, outages shorter than the keep-alive; check correctness only, write nothing.
    #[arg(long)]
    quick: bool,
    /// Do not run `cargo build` for the example binaries first; use whatever is built.
    #[arg(long)]
    no_build: bool,
    /// Run only the faults whose name contains this (e.g. `silent`, `broker`).
    #[arg(long, value_name = "TEXT")]
    only: Option<String>,
    /// Override the silent-link outage, in seconds (e.g. 60 with --quick to see the watchdog).
    #[arg(long, value_name = "SECS")]
    outage: Option<u64>,
}

/// Autosave period of the main broker: the window a SIGKILL can lose.
const AUTOSAVE_SECS: u32 = 5;

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(err) => {
            eprintln!("faults: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &Args) -> anyhow::Result<bool> {
    let mut plan = if args.quick {
        Plan::quick()
    } else {
        Plan::full()
    };
    if let Some(secs) = args.outage {
        plan.outage = Duration::from_secs(secs);
    }
    if !args.no_build {
        build_examples()?;
    }
    // The run's own time, without the build.
    let started = Instant::now();
    let netns_ok = netns::available();
    let mut skipped = Vec::new();
    let host = match &netns_ok {
        Ok(()) => {
            netns::remove_stale();
            netns::clean_up_on_signal();
            Some(BrokerHost::create().context("creating the broker's network namespace")?)
        }
        Err(why) => {
            let text = format!(
                "silent link and link flapping: SKIPPED, {why}; the other faults run on loopback"
            );
            println!("faults: {text}");
            skipped.push(text);
            None
        }
    };
    let mut broker = MosquittoBroker::start(BrokerOptions {
        persistence: true,
        autosave_interval_secs: AUTOSAVE_SECS,
        netns: host.as_ref().map(|h| h.name().to_owned()),
        listen_address: host.as_ref().map(|h| h.broker_addr.into()),
        ..BrokerOptions::default()
    })
    .map_err(|err| anyhow!("starting Mosquitto: {err}"))?;
    let topology = match &host {
        Some(h) => format!(
            "network namespace {} at {} (veth pair; consumers at {} in the root namespace)",
            h.name(),
            h.broker_addr,
            h.host_addr
        ),
        None => "the root namespace on 127.0.0.1 (not root: no namespace)".to_owned(),
    };
    println!("faults: broker in {topology}");
    let lab = Lab {
        host: host.as_ref(),
        plan,
    };

    let mut rows: Vec<Row> = Vec::new();
    let mut errors: Vec<String> = Vec::new();
    let wanted = |name: &str| args.only.as_deref().is_none_or(|only| name.contains(only));
    let mut record = |name: &str, result: anyhow::Result<Vec<Row>>, took: Duration| {
        match result {
            Ok(new) => {
                for r in &new {
                    println!(
                        "  {} / {}: {} published, {} lost, {} duplicates, detection {:?}, recovery {:?} — {}",
                        r.fault, r.scenario, r.tally.published, r.tally.lost, r.tally.duplicates,
                        r.detection, r.recovery, r.note
                    );
                }
                rows.extend(new);
            }
            Err(err) => {
                println!("  {name}: FAILED: {err:#}");
                errors.push(format!("{name}: {err:#}"));
            }
        }
        println!("  ({name}: {:.1} s)", took.as_secs_f64());
    };
    macro_rules! fault {
        ($name:expr, $call:expr) => {
            if wanted($name) {
                println!("faults: {} …", $name);
                let t = Instant::now();
                let result = $call;
                record($name, result, t.elapsed());
            }
        };
    }
    if host.is_some() {
        fault!("silent link", scenarios::silent_link(&lab, &broker));
        fault!("link flapping", scenarios::flapping(&lab, &broker));
    }
    fault!(
        "broker SIGTERM",
        scenarios::broker_sigterm(&lab, &mut broker)
    );
    fault!(
        "broker SIGKILL",
        scenarios::broker_sigkill(&lab, &mut broker)
    );
    fault!(
        "broker SIGKILL (online)",
        scenarios::broker_sigkill_online(&lab, &mut broker)
    );
    fault!(
        "consumer SIGKILL",
        scenarios::consumer_sigkill(&lab, &broker)
    );
    fault!("rolling restart", scenarios::rolling_restart(&lab, &broker));
    fault!("queue limit", scenarios::queue_limit(&lab));
    fault!("bad input", scenarios::bad_input(&lab, &broker));

    let took = started.elapsed();
    println!("\n{}", report::table(&rows));
    for r in rows.iter().filter(|r| !r.loss_expected && r.tally.lost > 0) {
        errors.push(format!(
            "{} / {}: lost {} of {} where no loss is expected ({})",
            r.fault, r.scenario, r.tally.lost, r.tally.published, r.note
        ));
    }
    if !args.quick && args.only.is_none() && args.outage.is_none() {
        let info = report::RunInfo {
            broker_version: broker_version(),
            topology,
            broker_settings: format!(
                "persistence true, autosave_interval {AUTOSAVE_SECS} s, max_queued_messages \
                 100000 (1000 for the queue-limit row), TLS, password auth, `log_type` \
                 error/warning/notice/information"
            ),
            plan: format!(
                "{} messages per fault (2000 for bad input, at least 1500 for the queue limit); \
                 silent link {} s; flapping {} s down / {} s up for {} s",
                plan.messages,
                plan.outage.as_secs(),
                plan.flap_down.as_secs(),
                plan.flap_up.as_secs(),
                plan.flapping.as_secs()
            ),
            skipped,
            when: utc_now(),
            took,
        };
        let md = scenarios::workspace_path("docs/reliability.md");
        let svg = scenarios::workspace_path("docs/reliability.svg");
        report::write_markdown(&md, &rows, &info)?;
        report::write_svg(&svg, &rows)?;
        println!("faults: wrote {} and {}", md.display(), svg.display());
    }
    drop(broker);
    drop(host);
    println!("faults: {:.0} s", took.as_secs_f64());
    if errors.is_empty() {
        println!("faults: OK — no loss where none is expected");
        Ok(true)
    } else {
        for e in &errors {
            println!("faults: FAIL: {e}");
        }
        Ok(false)
    }
}

/// `cargo build` of the consumers this runner starts, in this binary's profile.
fn build_examples() -> anyhow::Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command.args([
        "build",
        "-p",
        "persistent-session",
        "-p",
        "clean-session",
        "-p",
        "shared-subscription",
        "--features",
        "persistent-session/native-tls",
    ]);
    if !cfg!(debug_assertions) {
        command.arg("--release");
    }
    println!("faults: building the consumers: {command:?}");
    let status = command.status().context("running cargo build")?;
    if !status.success() {
        return Err(anyhow!("cargo build failed ({status})"));
    }
    Ok(())
}

fn broker_version() -> String {
    for program in ["mosquitto", "/usr/sbin/mosquitto"] {
        if let Ok(output) = Command::new(program).arg("-h").output() {
            if let Some(line) = String::from_utf8_lossy(&output.stdout).lines().next() {
                return line.trim().to_owned();
            }
        }
    }
    "mosquitto (version unknown)".to_owned()
}

fn utc_now() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}
