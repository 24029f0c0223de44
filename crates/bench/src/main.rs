//! # bench — measured reasons to pick a library and runtime
//!
//! Starts the harness Mosquitto (TLS, password, MQTT v5, queues raised so the broker drops
//! nothing — and checks its log that it did not) and measures **the real example binaries** as
//! processes, every variant in `src/variants.rs`, plus `mosquitto_sub` (C) as an outside control:
//!
//! 1. throughput (50,000 QoS 1 messages, pipelined publisher), loss and duplicates;
//! 2. end-to-end latency at a fixed 1,000 msg/s (p50 / p99 / max);
//! 3. shared-subscription scaling, k = 1, 2, 4 processes with 2 ms of work per message;
//! 4. takeover detection (two processes, one client id);
//! 5. reconnect after the broker was down for 3 s, and a persistent session's backlog;
//! 6. peak RSS of each consumer and stripped binary size;
//! 7. backlog drain (issue #15): 100,000 messages queued in a stopped consumer's persistent
//!    session, then drained — bound by the consumer, where the throughput run (1.) is bound by
//!    its publisher.
//!
//! **Run it.**
//! ```text
//! cargo run --release -p bench            # builds the variants first, ~5 min; writes docs/
//! cargo run -p bench -- --quick           # CI smoke test: correctness only, < 1 min
//! cargo run --release -p bench -- --phase drain --out /tmp/drain   # one phase only
//! ```
//! Before measuring it runs `cargo build --workspace --bins --all-features` in its own profile
//! (it prints the command; `--all-features` brings in the Paho variants, as `scripts/test`
//! builds them), so the binaries measured are the ones of this checkout. `--no-build` skips
//! that. Needs what `scripts/test` installs: mosquitto, mosquitto-clients, cmake, pkg-config,
//! libssl-dev.
//!
//! **Output.** A Markdown table printed and written to `docs/benchmarks.md`, and
//! `docs/benchmarks.svg` (with `--quick`: `target/bench-quick/`). The last line is
//! `bench: N passed, M failed`, one check per correctness property (no loss, every expected
//! variant measured, the broker dropped nothing). Timings are reported, never asserted.

mod chart;
mod phases;
mod proc;
mod report;
mod stats;
mod store_events;
mod traffic;
mod variants;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use clap::Parser;

use crate::phases::{ConsumerRun, Ctx, Sizes, Traffic};
use crate::report::{Meta, Row};
use crate::variants::Role;

/// Measure the example binaries against a real Mosquitto and write docs/benchmarks.{md,svg}.
#[derive(Parser, Debug)]
#[command(about)]
struct Args {
    /// CI smoke test: a few thousand messages, a 0.25 s outage; checks correctness only (no loss,
    /// every expected variant built and measured), never a time. Fails otherwise.
    #[arg(long)]
    quick: bool,

    /// Do not run `cargo build` first; measure whatever is built in this profile.
    #[arg(long)]
    no_build: bool,

    /// Directory for benchmarks.md and benchmarks.svg.
    /// Default: docs/ (full run), target/bench-quick/ (--quick).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,

    /// Measure only the variants whose name contains this text (repeatable), e.g.
    /// `--only paho`. For investigating one variant; the report then has only those rows.
    #[arg(long, value_name = "TEXT")]
    only: Vec<String>,

    /// Run only this phase (repeatable); default: all. The report then leaves the others'
    /// cells empty: for investigating, not for docs/.
    #[arg(long, value_enum)]
    phase: Vec<Phase>,

    /// Run only the store-events phase (issue #14) and write only
    /// <out>/benchmarks-store-events.md (docs/benchmarks.md is left as it is).
    #[arg(long)]
    store_events_only: bool,

    /// Messages in the backlog drain (default 100,000; --quick 5,000), e.g. to see how a
    /// consumer's peak memory grows with the backlog.
    #[arg(long, value_name = "N")]
    drain_messages: Option<u64>,

    /// Rounds of the backlog drain (default 3; --quick 1).
    #[arg(long, value_name = "N")]
    drain_rounds: Option<usize>,
}

/// The measurements, in the order they run.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Throughput (publisher-bound) and latency of every consumer.
    Consumers,
    /// Backlog drain of every persistent-session variant and mosquitto_sub -c (consumer-bound).
    Drain,
    /// Shared-subscription scaling.
    Shared,
    /// Takeover detection.
    Takeover,
    /// Reconnect after a broker restart.
    Reconnect,
}

impl Args {
    fn runs(&self, phase: Phase) -> bool {
        self.phase.is_empty() || self.phase.contains(&phase)
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(checks) => {
            let failed = checks.iter().filter(|c| !c.ok).count();
            for check in checks.iter().filter(|c| !c.ok) {
                eprintln!("FAILED: {}: {}", check.name, check.detail);
            }
            println!("bench: {} passed, {} failed", checks.len() - failed, failed);
            if failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(err) => {
            eprintln!("bench: error: {err:#}");
            println!("bench: 0 passed, 1 failed");
            ExitCode::FAILURE
        }
    }
}

/// One correctness property.
struct Check {
    name: String,
    ok: bool,
    detail: String,
}

fn check(checks: &mut Vec<Check>, name: impl Into<String>, result: Result<(), String>) {
    let name = name.into();
    match &result {
        Ok(()) => eprintln!("  ok: {name}"),
        Err(detail) => eprintln!("  FAILED: {name}: {detail}"),
    }
    checks.push(Check {
        name,
        ok: result.is_ok(),
        detail: result.err().unwrap_or_default(),
    });
}

fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .nth(2)
        .map_or_else(|| manifest.to_path_buf(), Path::to_path_buf)
}

fn run(args: &Args) -> anyhow::Result<Vec<Check>> {
    let root = workspace_root();
    let exe = std::env::current_exe().context("locating the bench executable")?;
    let bin_dir = exe
        .parent()
        .context("the bench executable has no directory")?
        .to_path_buf();
    let profile = bin_dir
        .file_name()
        .map_or_else(|| "?".to_owned(), |n| n.to_string_lossy().into_owned());
    let mut sizes = if args.quick {
        Sizes::QUICK
    } else {
        Sizes::FULL
    };
    if let Some(n) = args.drain_messages {
        sizes.drain = n;
    }
    if let Some(rounds) = args.drain_rounds {
        sizes.drain_rounds = rounds.max(1);
    }
    if !args.quick && profile != "release" {
        eprintln!(
            "bench: WARNING: this is a {profile} build; the figures are only meaningful with \
             `cargo run --release -p bench`"
        );
    }
    if !args.no_build {
        build(&root, &profile)?;
    }
    let out_dir = args.out.clone().unwrap_or_else(|| {
        if args.quick {
            root.join("target").join("bench-quick")
        } else {
            root.join("docs")
        }
    });

    // Timed from here: the build above is not part of the measurement.
    let started = Instant::now();
    let load_before = load_average();
    let mut ctx = Ctx::new(sizes, bin_dir)?;
    let mut checks = Vec::new();
    // Leaked once: the rows and report borrow the variants for the whole run.
    let variants: &'static [variants::Variant] = Box::leak(variants::all().into_boxed_slice());
    let mut rows: Vec<Row> = variants
        .iter()
        .filter(|v| args.only.is_empty() || args.only.iter().any(|o| v.name.contains(o.as_str())))
        .map(|v| Row::new(v, ctx.locate(v)))
        .collect();

    eprintln!("bench: variants");
    for row in &mut rows {
        match &row.program {
            Some(path) => {
                row.size = phases::stripped_size(path, ctx.dir.path());
                eprintln!("  {:<34} {}", row.variant.name, path.display());
            }
            None => eprintln!("  {:<34} not built", row.variant.name),
        }
        if args.quick && row.variant.expected {
            check(
                &mut checks,
                format!("{} is built", row.variant.name),
                if row.built() {
                    Ok(())
                } else {
                    Err(format!(
                        "{} not found in {} (expected variant)",
                        row.variant.binary,
                        ctx.bin_dir.display()
                    ))
                },
            );
        }
    }

    if args.store_events_only {
        let store = store_events::run(&mut ctx, variants, args.quick, &mut checks);
        write_store_events(&out_dir, &store, &profile, &load_before)?;
        println!("\n{}", store_events::markdown(&store, ""));
        return Ok(checks);
    }

    if args.runs(Phase::Consumers) {
        let phase = Instant::now();
        consumers(&mut ctx, &mut rows, &mut checks)?;
        eprintln!(
            "bench: consumers took {:.0} s",
            phase.elapsed().as_secs_f64()
        );
    }
    if args.runs(Phase::Drain) {
        let phase = Instant::now();
        drain(&mut ctx, &mut rows, &mut checks);
        eprintln!(
            "bench: backlog drain took {:.0} s",
            phase.elapsed().as_secs_f64()
        );
    }
    if args.runs(Phase::Shared) {
        let phase = Instant::now();
        for row in rows.iter_mut().filter(|r| r.variant.role == Role::Shared) {
            shared(&mut ctx, row, &mut checks);
        }
        eprintln!(
            "bench: shared subscription took {:.0} s",
            phase.elapsed().as_secs_f64()
        );
    }
    if args.runs(Phase::Takeover) {
        let phase = Instant::now();
        for row in rows.iter_mut().filter(|r| r.variant.role == Role::Takeover) {
            takeover(&mut ctx, row, &mut checks);
        }
        eprintln!(
            "bench: takeover took {:.0} s",
            phase.elapsed().as_secs_f64()
        );
    }
    if args.runs(Phase::Reconnect) {
        reconnect(&mut ctx, &mut rows, &mut checks);
    }
    // store-events (issue #14): its own section, also written alone (see write_store_events).
    let store = (args.only.is_empty() && args.phase.is_empty())
        .then(|| store_events::run(&mut ctx, variants, args.quick, &mut checks));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let meta = Meta {
        quick: args.quick,
        profile,
        cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu: cpu_model(),
        mosquitto: mosquitto_version(),
        date: report::date(now),
        sizes: ctx.sizes,
        duration_s: started.elapsed().as_secs_f64(),
        load_before,
        load_after: load_average(),
    };
    let mut md = report::markdown(&meta, &rows);
    if let Some(store) = &store {
        md.push('\n');
        md.push_str(&store_events::markdown(store, ""));
        write_store_events(&out_dir, store, &meta.profile, &meta.load_before)?;
    }
    println!("\n{md}");
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let md_path = out_dir.join("benchmarks.md");
    std::fs::write(&md_path, &md).with_context(|| format!("writing {}", md_path.display()))?;
    let svg_path = out_dir.join("benchmarks.svg");
    match chart::write_svg(&svg_path, &rows) {
        Ok(()) => eprintln!(
            "bench: wrote {} and {}",
            md_path.display(),
            svg_path.display()
        ),
        Err(err) => check(&mut checks, "chart", Err(format!("{err:#}"))),
    }
    Ok(checks)
}

/// Throughput and latency of every consumer (one at a time), on one broker.
fn consumers(ctx: &mut Ctx, rows: &mut [Row], checks: &mut Vec<Check>) -> anyhow::Result<()> {
    let broker = phases::start_broker(false)?;
    let sizes = ctx.sizes;
    let mut published = 0;
    let mut received = 0;
    // Throughput is repeated in rounds (every variant once per round, so a change in the
    // machine's load hits all of them alike) and each variant's median round is reported.
    let mut rounds: Vec<Vec<ConsumerRun>> = vec![Vec::new(); rows.len()];
    let plan = (0..sizes.throughput_rounds)
        .map(|round| ("throughput", Traffic::Burst(sizes.throughput), round))
        .chain(std::iter::once((
            "latency",
            Traffic::Paced(sizes.latency, sizes.latency_rate),
            0,
        )));
    for (what, traffic, round) in plan {
        eprintln!("bench: {what} ({traffic:?}), round {}", round + 1);
        for (index, row) in rows.iter_mut().enumerate() {
            if row.variant.role != Role::Consumer {
                continue;
            }
            let Some(program) = row.program.clone() else {
                continue;
            };
            if matches!(row.throughput, Some(Err(_))) && what == "throughput" {
                continue; // failed in an earlier round: reported once
            }
            let result = phases::consumer_run(ctx, &broker, row.variant, &program, traffic);
            let verdict = match &result {
                Ok(run) => {
                    published += run.published;
                    received += run.figures.unique;
                    eprintln!(
                        "    {:<34} {:>8.0} msg/s  CPU {:>4.0} µs/msg  p50 {:>6} µs  p99 {:>6} µs  \
                         max {:>7} µs  lost {} dup {}  RSS {:.1} MiB",
                        row.variant.name,
                        run.figures.rate,
                        run.cpu_us_per_msg(),
                        run.figures.p50_us,
                        run.figures.p99_us,
                        run.figures.max_us,
                        run.lost(),
                        run.duplicates(),
                        run.max_rss_kib as f64 / 1024.0
                    );
                    if run.lost() == 0 {
                        Ok(())
                    } else {
                        Err(format!("{} of {} lost", run.lost(), run.published))
                    }
                }
                Err(err) => Err(format!("{err:#}")),
            };
            check(
                checks,
                format!("{what} {}: measured, nothing lost", row.variant.name),
                verdict,
            );
            match (what, result) {
                ("throughput", Ok(run)) => {
                    rounds[index].push(run);
                    row.throughput = Some(Ok(ConsumerRun::median_of(&rounds[index])));
                }
                ("throughput", Err(err)) => row.throughput = Some(Err(format!("{err:#}"))),
                (_, result) => row.latency = Some(result.map_err(|e| format!("{e:#}"))),
            }
        }
    }
    let dropped = phases::check_broker_dropped_nothing(&broker).map_err(|e| e.to_string());
    check(
        checks,
        format!("the broker dropped nothing ({received} of {published} delivered, log clean)"),
        dropped.and_then(|()| {
            if received >= published {
                Ok(())
            } else {
                Err(format!("{} messages missing", published - received))
            }
        }),
    );
    Ok(())
}

/// The backlog drain (issue #15): every persistent-session variant and `mosquitto_sub -c`, in
/// interleaved rounds (so a change in the machine's load hits all alike), each run on a fresh
/// broker; each variant's median round is reported.
fn drain(ctx: &mut Ctx, rows: &mut [Row], checks: &mut Vec<Check>) {
    let sizes = ctx.sizes;
    let mut rounds: Vec<Vec<phases::DrainRun>> = vec![Vec::new(); rows.len()];
    for round in 0..sizes.drain_rounds {
        eprintln!(
            "bench: backlog drain ({} messages queued while the consumer is down), round {}",
            sizes.drain,
            round + 1
        );
        for (index, row) in rows.iter_mut().enumerate() {
            if !row.drains() {
                continue;
            }
            let Some(program) = row.program.clone() else {
                continue;
            };
            if matches!(row.drain, Some(Err(_))) {
                continue; // failed in every round so far: reported once
            }
            let result = phases::drain_run(ctx, row.variant, &program);
            let verdict = match &result {
                Ok(run) => {
                    eprintln!(
                        "    {:<38} {:>8.0} msg/s  drain {:>6.0} ms  wall {:>6.0} ms  CPU {:>4.1} \
                         µs/msg  lost {} dup {}  RSS {:.1} MiB (idle {:.1})  queued at {:.0} msg/s",
                        row.variant.name,
                        run.figures.rate,
                        run.figures.elapsed_us as f64 / 1e3,
                        run.wall.as_secs_f64() * 1e3,
                        run.cpu_us_per_msg(),
                        run.lost(),
                        run.duplicates(),
                        run.max_rss_kib as f64 / 1024.0,
                        run.idle_rss_kib as f64 / 1024.0,
                        run.publish_rate,
                    );
                    if run.lost() == 0 {
                        Ok(())
                    } else {
                        Err(format!("{} of {} lost", run.lost(), run.published))
                    }
                }
                Err(err) => Err(format!("{err:#}")),
            };
            check(
                checks,
                format!(
                    "backlog drain {}: {} queued, all delivered, the broker dropped none",
                    row.variant.name, sizes.drain
                ),
                verdict,
            );
            // A failed round is reported (check above, and beside the figures), but does not
            // throw away the rounds that worked.
            match result {
                Ok(run) => {
                    rounds[index].push(run);
                    row.drain = Some(Ok(phases::DrainRun::median_of(&rounds[index])));
                }
                Err(err) => {
                    row.drain_failures
                        .push(format!("round {}: {err:#}", round + 1));
                    if rounds[index].is_empty() {
                        row.drain = Some(Err(format!("{err:#}")));
                    }
                }
            }
        }
    }
}

/// Reconnect after the broker was down, every consumer and persistent-session variant.
fn reconnect(ctx: &mut Ctx, rows: &mut [Row], checks: &mut Vec<Check>) {
    let phase = Instant::now();
    eprintln!(
        "bench: reconnect (broker down {} s)",
        ctx.sizes.broker_down.as_secs_f64()
    );
    for row in rows
        .iter_mut()
        .filter(|r| matches!(r.variant.role, Role::Consumer | Role::Backlog))
    {
        let Some(program) = row.program.clone() else {
            continue;
        };
        let persistent = row.variant.role == Role::Backlog;
        let result = phases::reconnect_run(ctx, row.variant, &program, persistent);
        let name = format!(
            "{} {} after a broker restart",
            row.variant.name,
            if persistent {
                "gets its backlog"
            } else {
                "resubscribes and receives"
            }
        );
        check(
            checks,
            name,
            match &result {
                Ok(run) if run.delivered >= run.published => {
                    eprintln!("    reconnected after {:.0} ms", run.reconnect_ms);
                    Ok(())
                }
                Ok(run) => Err(format!(
                    "{} of {} lost",
                    run.published - run.delivered,
                    run.published
                )),
                Err(err) => Err(format!("{err:#}")),
            },
        );
        row.reconnect = Some(result.map_err(|e| format!("{e:#}")));
    }
    eprintln!(
        "bench: reconnect took {:.0} s",
        phase.elapsed().as_secs_f64()
    );
}

fn shared(ctx: &mut Ctx, row: &mut Row, checks: &mut Vec<Check>) {
    let Some(program) = row.program.clone() else {
        return;
    };
    eprintln!("bench: shared subscription ({} messages)", ctx.sizes.shared);
    let broker = match phases::start_broker(false) {
        Ok(broker) => broker,
        Err(err) => {
            check(
                checks,
                format!("{} broker", row.variant.name),
                Err(format!("{err:#}")),
            );
            return;
        }
    };
    for k in [1, 2, 4] {
        let result = phases::shared_run(ctx, &broker, row.variant, &program, k);
        let verdict = match &result {
            Ok(run) => {
                eprintln!(
                    "    k={k}: {:.0} msg/s, split {:?}, lost {}",
                    run.rate,
                    run.received,
                    run.lost()
                );
                if run.lost() == 0 {
                    Ok(())
                } else {
                    Err(format!("{} of {} lost", run.lost(), run.published))
                }
            }
            Err(err) => Err(format!("{err:#}")),
        };
        check(
            checks,
            format!("{} k={k}: nothing lost", row.variant.name),
            verdict,
        );
        row.shared.push(result.map_err(|e| format!("{e:#}")));
    }
}

fn takeover(ctx: &mut Ctx, row: &mut Row, checks: &mut Vec<Check>) {
    let Some(program) = row.program.clone() else {
        return;
    };
    eprintln!("bench: takeover detection");
    for _ in 0..ctx.sizes.takeover_runs {
        let result = phases::takeover_run(ctx, row.variant, &program);
        let verdict = match &result {
            Ok(run) => {
                eprintln!(
                    "    Mosquitto: detected {:.0} ms after the takeover (self-reported {:?} ms, exit {:?})",
                    run.detect_ms, run.self_reported_ms, run.exit_code
                );
                if run.exit_code == Some(6) {
                    Ok(())
                } else {
                    Err(format!("exit code {:?}, expected 6", run.exit_code))
                }
            }
            Err(err) => Err(format!("{err:#}")),
        };
        check(
            checks,
            format!("{} detects a second process with its id", row.variant.name),
            verdict,
        );
        row.takeover.push(result.map_err(|e| format!("{e:#}")));
    }
    if !row.variant.demo_takeover {
        return;
    }
    let result = phases::takeover_demo(row.variant, &program);
    let verdict = match &result {
        Ok(run) => {
            eprintln!(
                "    embedded mqtt5 broker: detected {:.0} ms after the takeover (exit {:?})",
                run.detect_ms, run.exit_code
            );
            Ok(())
        }
        Err(err) => Err(format!("{err:#}")),
    };
    check(
        checks,
        format!("{} demo mode detects the collision", row.variant.name),
        verdict,
    );
    row.takeover_demo = Some(result.map_err(|e| format!("{e:#}")));
}

/// `cargo build --workspace --bins --all-features` in this profile (as `scripts/test` builds),
/// so that the binaries measured are those of this checkout, the Paho variants included.
fn build(root: &Path, profile: &str) -> anyhow::Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(&cargo);
    command
        .current_dir(root)
        .args(["build", "--workspace", "--bins", "--all-features"]);
    match profile {
        "release" => {
            command.arg("--release");
        }
        "debug" => {}
        other => {
            command.args(["--profile", other]);
        }
    }
    let shown: Vec<String> = std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    eprintln!("bench: building the variants: {}", shown.join(" "));
    let took = Instant::now();
    let status = command.status().context("running cargo build")?;
    if !status.success() {
        bail!("`{}` failed ({status})", shown.join(" "));
    }
    eprintln!("bench: build done in {:.0} s", took.elapsed().as_secs_f64());
    Ok(())
}

/// Writes `<out>/benchmarks-store-events.md`: the store-events section alone, with the machine.
fn write_store_events(
    out_dir: &Path,
    store: &store_events::StoreReport,
    profile: &str,
    load_before: &str,
) -> anyhow::Result<()> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let header = format!(
        "<!-- generated by `cargo run --release -p bench` (or `-- --store-events-only`); do not \
         edit -->\nMeasured {} ({profile} build) on {} cores ({}), {}; 1-minute load {} before, \
         {} after.",
        report::date(now),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model(),
        mosquitto_version(),
        load_before,
        load_average()
    );
    let md = store_events::markdown(store, &header);
    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let path = out_dir.join("benchmarks-store-events.md");
    std::fs::write(&path, &md).with_context(|| format!("writing {}", path.display()))?;
    eprintln!("bench: wrote {}", path.display());
    Ok(())
}

/// The 1-minute load average.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned())
}

fn mosquitto_version() -> String {
    let program = phases::find_on_path("mosquitto")
        .or_else(|| Some(PathBuf::from("/usr/sbin/mosquitto")))
        .unwrap_or_default();
    Command::new(program)
        .arg("-h")
        .output()
        .ok()
        .and_then(|o| {
            let text = String::from_utf8_lossy(&o.stdout).into_owned();
            text.lines()
                .find(|l| l.contains("version"))
                .map(|l| l.trim().replace("mosquitto version", "Mosquitto"))
        })
        .unwrap_or_else(|| "Mosquitto".to_owned())
}
