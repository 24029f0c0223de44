//! The six measurements, each against its own fresh Mosquitto.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use mosquitto_harness::{BrokerOptions, MosquittoBroker};

use crate::proc::{Exit, Proc};
use crate::stats::{self, Figures};
use crate::traffic::Publisher;
use crate::variants::{Kind, Variant, TAKEOVER_REPORT};

/// The filter every consumer subscribes to, and the topic the benchmark publishes on.
pub const FILTER: &str = "airfinder/bench-org/events/#";
pub const TOPIC: &str = "airfinder/bench-org/events/c00100000005";

/// How much traffic each measurement uses.
#[derive(Clone, Copy, Debug)]
pub struct Sizes {
    /// Messages of the throughput run.
    pub throughput: u64,
    /// How many times the throughput run is repeated (the median is reported).
    pub throughput_rounds: usize,
    /// Messages of the latency run, published at `latency_rate`.
    pub latency: u64,
    pub latency_rate: f64,
    /// Messages of each shared-subscription run (a multiple of 4).
    pub shared: u64,
    /// Takeover repetitions per variant.
    pub takeover_runs: usize,
    /// How long the broker stays down in the reconnect measurement.
    pub broker_down: Duration,
    /// Messages published after the broker returns.
    pub backlog: u64,
    /// How long a consumer may take to finish after the last PUBACK.
    pub drain_timeout: Duration,
    /// Messages queued in a stopped consumer's persistent session, then drained (issue #15).
    pub drain: u64,
    /// How many times the backlog drain is repeated (the median is reported).
    pub drain_rounds: usize,
}

impl Sizes {
    /// The real run (issue #6): 50k throughput, 1k msg/s latency, 3 s outage; a backlog of
    /// 100,000 (issue #15: more than the 65,535 packet ids of a connection).
    pub const FULL: Sizes = Sizes {
        throughput: 50_000,
        throughput_rounds: 3,
        latency: 5_000,
        latency_rate: 1_000.0,
        shared: 3_000,
        takeover_runs: 3,
        broker_down: Duration::from_secs(3),
        backlog: 1_000,
        drain_timeout: Duration::from_secs(30),
        drain: 100_000,
        drain_rounds: 3,
    };

    /// CI smoke test: enough traffic to prove correctness, never a time.
    pub const QUICK: Sizes = Sizes {
        throughput: 2_000,
        throughput_rounds: 1,
        latency: 200,
        latency_rate: 1_000.0,
        shared: 100,
        takeover_runs: 1,
        broker_down: Duration::from_millis(250),
        backlog: 100,
        drain_timeout: Duration::from_secs(15),
        drain: 5_000,
        drain_rounds: 1,
    };
}

/// Shared state of one benchmark run.
pub struct Ctx {
    pub sizes: Sizes,
    /// Where the workspace binaries are (the profile directory of this executable).
    pub bin_dir: PathBuf,
    pub rt: tokio::runtime::Runtime,
    /// Credentials files.
    pub dir: tempfile::TempDir,
    next_id: u64,
}

impl Ctx {
    pub fn new(sizes: Sizes, bin_dir: PathBuf) -> anyhow::Result<Ctx> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .context("starting the tokio runtime")?;
        Ok(Ctx {
            sizes,
            bin_dir,
            rt,
            dir: tempfile::tempdir().context("creating a temp dir")?,
            next_id: 0,
        })
    }

    /// A client id unique in this run: `bench-<what>-<n>`.
    fn client_id(&mut self, what: &str) -> String {
        self.next_id += 1;
        format!("bench-{what}-{}", self.next_id)
    }

    /// Where `variant`'s program is, or `None` when it is not built / not installed.
    pub fn locate(&self, variant: &Variant) -> Option<PathBuf> {
        match variant.kind {
            Kind::Example => {
                let path = self.bin_dir.join(&variant.binary);
                path.is_file().then_some(path)
            }
            Kind::MosquittoSub => find_on_path(&variant.binary),
        }
    }
}

/// A program on PATH.
pub fn find_on_path(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// Mosquitto as the issue asks: TLS, password, MQTT v5 (the harness), queues large enough that
/// the broker itself drops nothing, 1000 messages in flight per client instead of 20 (so the
/// publisher is not throttled by round trips), and subscriptions logged (the benchmark waits for
/// them instead of sleeping).
pub fn start_broker(persistence: bool) -> anyhow::Result<MosquittoBroker> {
    MosquittoBroker::start(BrokerOptions {
        persistence,
        max_queued_messages: 1_000_000,
        extra_config: vec![
            "max_inflight_messages 1000".into(),
            "max_queued_bytes 0".into(),
            "log_type subscribe".into(),
        ],
        ..BrokerOptions::default()
    })
    .map_err(|err| anyhow!("starting Mosquitto: {err}"))
}

/// The broker logs this when its per-client queue overflows.
pub const BROKER_DROP_LINE: &str = "Outgoing messages are being dropped";

/// Fails if the broker dropped anything.
pub fn check_broker_dropped_nothing(broker: &MosquittoBroker) -> anyhow::Result<()> {
    let log = broker.log();
    if let Some(line) = log.lines().find(|l| l.contains(BROKER_DROP_LINE)) {
        bail!("the broker dropped messages: {line}");
    }
    Ok(())
}

fn path_str(path: &Path) -> String {
    path.display().to_string()
}

/// Starts `variant` as a consumer with client id `client_id`.
fn spawn_consumer(
    ctx: &Ctx,
    broker: &MosquittoBroker,
    variant: &Variant,
    program: &Path,
    client_id: &str,
    count: Option<u64>,
    more_args: &[String],
) -> anyhow::Result<Proc> {
    let mut args: Vec<String> = Vec::new();
    match variant.kind {
        Kind::Example => {
            let dir = tempfile::tempdir_in(ctx.dir.path())?.keep();
            let creds = broker.write_creds(&dir, client_id, FILTER);
            args.extend([
                "--creds".into(),
                path_str(&creds),
                "--ca-file".into(),
                path_str(broker.ca_path()),
                "--stats".into(),
                "--log".into(),
                "info".into(),
            ]);
            if let Some(count) = count {
                args.extend(["--count".into(), count.to_string()]);
            }
        }
        Kind::MosquittoSub => {
            args.extend(
                [
                    "-h",
                    broker.host(),
                    "-p",
                    &broker.tls_port().to_string(),
                    "--cafile",
                    &path_str(broker.ca_path()),
                    "-u",
                    broker.username(),
                    "-P",
                    broker.password(),
                    "-V",
                    "mqttv5",
                    "-q",
                    "1",
                    "-t",
                    FILTER,
                    "-i",
                    client_id,
                    "-F",
                    "%U %p",
                ]
                .map(String::from),
            );
            if let Some(count) = count {
                args.extend(["-C".into(), count.to_string()]);
            }
        }
    }
    args.extend(variant.extra_args.iter().map(|a| a.to_string()));
    args.extend(more_args.iter().cloned());
    // mosquitto_sub prints every message: to a file, read after it exits (see `output_lines`).
    let stdout_file = match variant.kind {
        Kind::MosquittoSub => Some(
            std::fs::File::create(ctx.dir.path().join(format!("{client_id}.out")))
                .context("creating mosquitto_sub's output file")?,
        ),
        Kind::Example => None,
    };
    Proc::spawn(
        &variant.name,
        OsStr::new(program),
        &args,
        &[("RUST_LOG", "info")],
        stdout_file,
    )
    .with_context(|| format!("starting {}", program.display()))
}

/// Waits until the broker has logged `occurrence` subscriptions by `client_id` (Mosquitto logs
/// `<client id> <qos> <filter>` with `log_type subscribe`). Returns when it saw it.
fn wait_subscribed(
    broker: &MosquittoBroker,
    client_id: &str,
    occurrence: usize,
    procs: &mut [&mut Proc],
    timeout: Duration,
) -> anyhow::Result<Instant> {
    let needle = format!(": {client_id} ");
    wait_log_count(broker, &needle, occurrence, procs, timeout)
        .with_context(|| format!("waiting for {client_id} to subscribe"))
}

/// Polls the broker log (every 2 ms) until `needle` occurs `count` times; fails early if one of
/// `procs` exits.
fn wait_log_count(
    broker: &MosquittoBroker,
    needle: &str,
    count: usize,
    procs: &mut [&mut Proc],
    timeout: Duration,
) -> anyhow::Result<Instant> {
    let deadline = Instant::now() + timeout;
    loop {
        if broker.log().matches(needle).count() >= count {
            return Ok(Instant::now());
        }
        for proc in procs.iter_mut() {
            if let Some(exit) = proc.try_exit() {
                bail!(
                    "{} ended early ({})\n{}",
                    proc.name(),
                    exit.describe(),
                    proc.tail(15)
                );
            }
        }
        if Instant::now() >= deadline {
            let tails: Vec<String> = procs.iter().map(|p| p.tail(15)).collect();
            bail!(
                "\"{}\" not seen {count} time(s) in the broker log within {} s\n{}",
                needle.trim(),
                timeout.as_secs(),
                tails.join("")
            );
        }
        thread::sleep(Duration::from_millis(2));
    }
}

/// Waits for the consumer to finish (it exits by itself after `--count`); after `timeout`,
/// SIGTERM so it prints what it got. Then reads its figures.
fn finish_consumer(
    ctx_dir: &Path,
    client_id: &str,
    variant: &Variant,
    proc: &mut Proc,
    timeout: Duration,
) -> anyhow::Result<(Figures, Exit)> {
    let exit = match proc.wait_exit(timeout) {
        Some(exit) => exit,
        None => {
            let exit = proc
                .stop(Duration::from_secs(5))
                .ok_or_else(|| anyhow!("{} could not be stopped", variant.name))?;
            if exit.signal == Some(libc::SIGKILL) {
                bail!(
                    "hung: not done {} s after the last PUBACK, and still running 5 s after \
                     SIGTERM (killed)\n{}",
                    timeout.as_secs(),
                    proc.tail(20)
                );
            }
            exit
        }
    };
    let figures = match variant.kind {
        Kind::Example => {
            let line = proc.find_line(|l| l.starts_with("stats:")).ok_or_else(|| {
                anyhow!(
                    "{} printed no stats: line ({})\n{}",
                    variant.name,
                    exit.describe(),
                    proc.tail(20)
                )
            })?;
            stats::parse_stats_line(&line.text)
                .ok_or_else(|| anyhow!("unreadable stats line: {}", line.text))?
        }
        Kind::MosquittoSub => {
            let path = ctx_dir.join(format!("{client_id}.out"));
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            stats::from_mosquitto_sub(text.lines())
        }
    };
    Ok((figures, exit))
}

/// One consumer measured on one kind of traffic.
#[derive(Clone, Copy, Debug)]
pub struct ConsumerRun {
    /// How many runs this stands for (see [`ConsumerRun::median_of`]).
    pub runs: usize,
    /// The lowest and highest rate among those runs.
    pub rate_range: (f64, f64),
    pub figures: Figures,
    /// Messages published (distinct `seq`).
    pub published: u64,
    pub max_rss_kib: u64,
    /// CPU time the consumer used (user + system) for the whole run, startup included.
    pub cpu: Duration,
    /// For a burst: how fast the broker took the messages from the publisher (msg/s).
    pub publish_rate: Option<f64>,
}

impl ConsumerRun {
    pub fn lost(&self) -> u64 {
        self.published.saturating_sub(self.figures.unique)
    }

    pub fn duplicates(&self) -> u64 {
        self.figures.received.saturating_sub(self.figures.unique)
    }

    /// Several runs of one variant as one: rate and latency of the run with the median rate;
    /// messages, losses, duplicates and CPU added up; the highest peak RSS.
    pub fn median_of(runs: &[ConsumerRun]) -> ConsumerRun {
        let mut sorted = runs.to_vec();
        sorted.sort_by(|a, b| a.figures.rate.total_cmp(&b.figures.rate));
        let mut median = sorted[sorted.len() / 2];
        median.runs = runs.len();
        median.rate_range = (
            sorted[0].figures.rate,
            sorted[sorted.len() - 1].figures.rate,
        );
        median.published = runs.iter().map(|r| r.published).sum();
        median.figures.received = runs.iter().map(|r| r.figures.received).sum();
        median.figures.unique = runs.iter().map(|r| r.figures.unique).sum();
        median.cpu = runs.iter().map(|r| r.cpu).sum();
        median.max_rss_kib = runs.iter().map(|r| r.max_rss_kib).max().unwrap_or(0);
        median
    }

    /// CPU microseconds per message received: what a message costs, whatever else the machine
    /// is doing (the startup, a few ms, is spread over all messages).
    pub fn cpu_us_per_msg(&self) -> f64 {
        self.cpu.as_secs_f64() * 1e6 / self.figures.received.max(1) as f64
    }
}

/// How the publisher sends.
#[derive(Clone, Copy, Debug)]
pub enum Traffic {
    /// As fast as the broker acknowledges (pipelined).
    Burst(u64),
    /// `n` messages at a fixed rate per second.
    Paced(u64, f64),
}

/// Throughput or latency of one consumer: start it, wait until it subscribed, publish, wait
/// for its `stats:` line.
pub fn consumer_run(
    ctx: &mut Ctx,
    broker: &MosquittoBroker,
    variant: &Variant,
    program: &Path,
    traffic: Traffic,
) -> anyhow::Result<ConsumerRun> {
    let n = match traffic {
        Traffic::Burst(n) | Traffic::Paced(n, _) => n,
    };
    let client_id = ctx.client_id("sub");
    let mut proc = spawn_consumer(ctx, broker, variant, program, &client_id, Some(n), &[])?;
    wait_subscribed(
        broker,
        &client_id,
        1,
        &mut [&mut proc],
        Duration::from_secs(30),
    )?;
    let publisher_id = ctx.client_id("pub");
    let publish_rate = ctx.rt.block_on(async {
        let mut publisher = Publisher::connect(broker, &publisher_id).await?;
        let rate = match traffic {
            Traffic::Burst(n) => {
                let took = publisher.burst(TOPIC, 0, n).await?;
                Some(n as f64 / took.as_secs_f64())
            }
            Traffic::Paced(n, rate) => {
                publisher.paced(TOPIC, 0, n, rate).await?;
                None
            }
        };
        publisher.disconnect().await;
        anyhow::Ok(rate)
    })?;
    let (figures, exit) = finish_consumer(
        ctx.dir.path(),
        &client_id,
        variant,
        &mut proc,
        ctx.sizes.drain_timeout,
    )?;
    Ok(ConsumerRun {
        runs: 1,
        rate_range: (figures.rate, figures.rate),
        figures,
        published: n,
        max_rss_kib: exit.max_rss_kib,
        cpu: exit.cpu,
        publish_rate,
    })
}

/// One shared-subscription run with `k` processes.
#[derive(Clone, Debug)]
pub struct SharedRun {
    pub k: usize,
    /// Total messages handled per second by the group, first publish to last message handled.
    pub rate: f64,
    pub published: u64,
    /// Per process: messages received.
    pub received: Vec<u64>,
    /// Sum of distinct `seq` per process.
    pub unique: u64,
    /// Highest peak RSS among the members.
    pub max_rss_kib: u64,
}

impl SharedRun {
    pub fn lost(&self) -> u64 {
        self.published.saturating_sub(self.unique)
    }
}

/// k `shared-subscription` processes in one group share `n` messages. Mosquitto hands a shared
/// group's messages round-robin, so each member is started with `--count n/k`; the run ends when
/// the last member printed its `stats:` line. Runs one after the other may share a broker: the
/// members of the previous run (clean start) have left the group.
pub fn shared_run(
    ctx: &mut Ctx,
    broker: &MosquittoBroker,
    variant: &Variant,
    program: &Path,
    k: usize,
) -> anyhow::Result<SharedRun> {
    let n = ctx.sizes.shared;
    let base = ctx.client_id("shared");
    let mut procs = Vec::new();
    for i in 1..=k {
        let more = ["--instance".to_owned(), i.to_string()];
        procs.push(spawn_consumer(
            ctx,
            broker,
            variant,
            program,
            &base,
            Some(n / k as u64),
            &more,
        )?);
    }
    for i in 1..=k {
        let mut refs: Vec<&mut Proc> = procs.iter_mut().collect();
        wait_subscribed(
            broker,
            &format!("{base}-{i}"),
            1,
            &mut refs,
            Duration::from_secs(30),
        )?;
    }
    let publisher_id = ctx.client_id("pub");
    let started = Instant::now();
    ctx.rt.block_on(async {
        let mut publisher = Publisher::connect(broker, &publisher_id).await?;
        publisher.burst(TOPIC, 0, n).await?;
        publisher.disconnect().await;
        anyhow::Ok(())
    })?;
    // Each member works 2 ms per message: allow 4x the ideal time plus the drain timeout.
    let ideal = Duration::from_millis(2 * n / k as u64);
    let deadline = Instant::now() + ideal * 4 + ctx.sizes.drain_timeout;
    let mut received = Vec::new();
    let mut unique = 0;
    let mut last_stats = started;
    let mut max_rss_kib = 0;
    for (i, proc) in procs.iter_mut().enumerate() {
        let left = deadline.saturating_duration_since(Instant::now());
        let id = format!("{base}-{}", i + 1);
        let (figures, exit) = finish_consumer(ctx.dir.path(), &id, variant, proc, left)?;
        if let Some(line) = proc.find_line(|l| l.starts_with("stats:")) {
            last_stats = last_stats.max(line.at);
        }
        received.push(figures.received);
        unique += figures.unique;
        max_rss_kib = max_rss_kib.max(exit.max_rss_kib);
    }
    check_broker_dropped_nothing(broker)?;
    let total: u64 = received.iter().sum();
    let secs = last_stats.duration_since(started).as_secs_f64();
    Ok(SharedRun {
        k,
        rate: if secs > 0.0 { total as f64 / secs } else { 0.0 },
        published: n,
        received,
        unique,
        max_rss_kib,
    })
}

/// One takeover measurement against Mosquitto.
#[derive(Clone, Copy, Debug)]
pub struct TakeoverRun {
    /// From the broker closing the first connection for the second one (its log line) to the
    /// example's `client id collision detected` line.
    pub detect_ms: f64,
    /// What the example itself says (`… detected N ms after the first takeover`).
    pub self_reported_ms: Option<u64>,
    /// Exit code of the process that gave up (6 expected).
    pub exit_code: Option<i32>,
}

/// Two processes of `variant` with one client id, as when a creds.json is copied to a second
/// machine: the second connects, the broker closes the first, and they fight until one
/// recognises the pattern.
pub fn takeover_run(
    ctx: &mut Ctx,
    variant: &Variant,
    program: &Path,
) -> anyhow::Result<TakeoverRun> {
    let broker = start_broker(false)?;
    let client_id = ctx.client_id("takeover");
    let mut first = spawn_consumer(ctx, &broker, variant, program, &client_id, None, &[])?;
    wait_subscribed(
        &broker,
        &client_id,
        1,
        &mut [&mut first],
        Duration::from_secs(30),
    )?;
    let mut second = spawn_consumer(ctx, &broker, variant, program, &client_id, None, &[])?;
    let taken = wait_log_count(
        &broker,
        "already connected, closing old connection",
        1,
        &mut [&mut first, &mut second],
        Duration::from_secs(30),
    )?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let report = loop {
        if let Some(line) = first
            .find_line(|l| l.contains(TAKEOVER_REPORT))
            .or_else(|| second.find_line(|l| l.contains(TAKEOVER_REPORT)))
        {
            break line;
        }
        if Instant::now() >= deadline {
            bail!(
                "no \"{TAKEOVER_REPORT}\" within 30 s\n{}{}",
                first.tail(15),
                second.tail(15)
            );
        }
        thread::sleep(Duration::from_millis(1));
    };
    // The one that reported exits with code 6 (after a clean DISCONNECT); the survivor is
    // stopped.
    let deadline = Instant::now() + Duration::from_secs(10);
    let exit_code = loop {
        if let Some(code) = [first.try_exit(), second.try_exit()]
            .iter()
            .flatten()
            .find_map(|e| e.code)
        {
            break Some(code);
        }
        if Instant::now() >= deadline {
            break None;
        }
        thread::sleep(Duration::from_millis(5));
    };
    first.stop(Duration::from_secs(5));
    second.stop(Duration::from_secs(5));
    Ok(TakeoverRun {
        detect_ms: report.at.saturating_duration_since(taken).as_secs_f64() * 1e3,
        self_reported_ms: self_reported(&report.text),
        exit_code,
    })
}

/// `… detected 812 ms after the first takeover …` → 812.
fn self_reported(text: &str) -> Option<u64> {
    let before = text.split(" ms after the first takeover").next()?;
    before.rsplit(' ').next()?.parse().ok()
}

/// The takeover against the embedded mqtt5 demo broker, which DOES send DISCONNECT 0x8E: the
/// example's default mode (no credentials) opens two connections with one id and reports how
/// long detection took.
pub fn takeover_demo(variant: &Variant, program: &Path) -> anyhow::Result<TakeoverRun> {
    // An empty working directory: no ./creds.json, so the scenario's demo launcher starts the
    // embedded broker and two processes of `program` with one client id. No `CARGO`: the
    // launcher must use the binaries built for this run, not build its own.
    let cwd = tempfile::tempdir()?;
    let launcher = program.with_file_name(format!(
        "client-id-collision-demo{}",
        std::env::consts::EXE_SUFFIX
    ));
    let bin = program
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut command = std::process::Command::new(&launcher);
    command
        .current_dir(cwd.path())
        .env_remove("CARGO")
        .args(["--variant", &bin, "--log", "info"])
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1");
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("MQTT_") {
            command.env_remove(&key);
        }
    }
    let mut proc = Proc::start(&variant.name, command)
        .with_context(|| format!("starting {}", program.display()))?;
    let line = proc.wait_line(|l| l.contains(TAKEOVER_REPORT), Duration::from_secs(60));
    let exit = proc.wait_exit(Duration::from_secs(10));
    let Some(line) = line else {
        let tail = proc.tail(20);
        proc.stop(Duration::from_secs(5));
        bail!("no \"{TAKEOVER_REPORT}\" from the demo run within 60 s\n{tail}");
    };
    let ms = self_reported(&line.text);
    Ok(TakeoverRun {
        detect_ms: ms.map_or(f64::NAN, |ms| ms as f64),
        self_reported_ms: ms,
        exit_code: exit.and_then(|e| e.code),
    })
}

/// One broker restart.
#[derive(Clone, Copy, Debug)]
pub struct ReconnectRun {
    /// From the broker accepting connections again to the consumer being able to receive:
    /// subscribed again (clean session) or reconnected to its kept session (persistent).
    pub reconnect_ms: f64,
    /// Messages published after the broker returned, and how many distinct ones arrived.
    pub published: u64,
    pub delivered: u64,
    /// Whether all of them were published before the consumer was back (a true backlog).
    pub all_queued_while_away: bool,
}

/// Broker stopped (SIGTERM; with persistence it saves sessions) for `broker_down`, started
/// again on the same port. A clean-session consumer must reconnect and subscribe again before
/// anything is published; a persistent-session consumer gets the backlog published while it
/// was still away.
pub fn reconnect_run(
    ctx: &mut Ctx,
    variant: &Variant,
    program: &Path,
    persistent: bool,
) -> anyhow::Result<ReconnectRun> {
    let mut broker = start_broker(persistent)?;
    let client_id = ctx.client_id("restart");
    let n = ctx.sizes.backlog;
    let mut proc = spawn_consumer(ctx, &broker, variant, program, &client_id, Some(n), &[])?;
    wait_subscribed(
        &broker,
        &client_id,
        1,
        &mut [&mut proc],
        Duration::from_secs(30),
    )?;
    broker.stop();
    thread::sleep(ctx.sizes.broker_down);
    broker
        .start_again()
        .map_err(|err| anyhow!("restarting Mosquitto: {err}"))?;
    let back = Instant::now();
    let publisher_id = ctx.client_id("pub");
    let (ready, published_at) = if persistent {
        // Publish at once: the consumer is still in its backoff, so this is a backlog.
        let published_at = ctx.rt.block_on(async {
            let mut publisher = Publisher::connect(&broker, &publisher_id).await?;
            publisher.burst(TOPIC, 0, n).await?;
            publisher.disconnect().await;
            anyhow::Ok(Instant::now())
        })?;
        let needle = format!(" as {client_id} (");
        let ready = wait_log_count(
            &broker,
            &needle,
            2,
            &mut [&mut proc],
            Duration::from_secs(60),
        )
        .context("waiting for the consumer to reconnect")?;
        (ready, published_at)
    } else {
        let ready = wait_subscribed(
            &broker,
            &client_id,
            2,
            &mut [&mut proc],
            Duration::from_secs(60),
        )?;
        let published_at = ctx.rt.block_on(async {
            let mut publisher = Publisher::connect(&broker, &publisher_id).await?;
            publisher.burst(TOPIC, 0, n).await?;
            publisher.disconnect().await;
            anyhow::Ok(Instant::now())
        })?;
        (ready, published_at)
    };
    let (figures, _exit) = finish_consumer(
        ctx.dir.path(),
        &client_id,
        variant,
        &mut proc,
        ctx.sizes.drain_timeout,
    )?;
    Ok(ReconnectRun {
        reconnect_ms: ready.saturating_duration_since(back).as_secs_f64() * 1e3,
        published: n,
        delivered: figures.unique,
        all_queued_while_away: persistent && published_at <= ready,
    })
}

/// One backlog drain (issue #15): a consumer's persistent session filled while it was down,
/// then emptied by it, as fast as it can take the messages — bound by the consumer, not by a
/// publisher.
#[derive(Clone, Copy, Debug)]
pub struct DrainRun {
    /// How many runs this stands for (see [`DrainRun::median_of`]).
    pub runs: usize,
    /// The lowest and highest drain rate among those runs.
    pub rate_range: (f64, f64),
    /// The backlog of one run.
    pub backlog: u64,
    /// Messages queued, over all runs (distinct `seq` per run).
    pub published: u64,
    /// What the consumer reported: the drain rate and time from its first to its last message.
    pub figures: Figures,
    /// From starting the consumer to its exit: connect, TLS, resume, drain, DISCONNECT.
    pub wall: Duration,
    /// From starting the consumer to its last message: how long a restart takes to catch up.
    /// The fair comparison across libraries: Paho C receives (and acks) the backlog into
    /// memory while the example still waits for its SUBACK, so its first-to-last time only
    /// measures emptying that in-memory queue.
    pub to_last: Duration,
    /// CPU time (user + system) of the draining process, startup included.
    pub cpu: Duration,
    /// Peak RSS (`VmHWM`) of the draining process, KiB.
    pub max_rss_kib: u64,
    /// Peak RSS of the same program in the run that only created the session (connect,
    /// subscribe, stop): its footprint without a backlog, KiB.
    pub idle_rss_kib: u64,
    /// How fast the broker took the backlog from the publisher (msg/s).
    pub publish_rate: f64,
}

impl DrainRun {
    pub fn lost(&self) -> u64 {
        self.published.saturating_sub(self.figures.unique)
    }

    pub fn duplicates(&self) -> u64 {
        self.figures.received.saturating_sub(self.figures.unique)
    }

    /// CPU microseconds per message received.
    pub fn cpu_us_per_msg(&self) -> f64 {
        self.cpu.as_secs_f64() * 1e6 / self.figures.received.max(1) as f64
    }

    /// The backlog over the time from process start to the last message (msg/s).
    pub fn catch_up_rate(&self) -> f64 {
        let secs = self.to_last.as_secs_f64();
        if secs > 0.0 {
            self.backlog as f64 / secs
        } else {
            0.0
        }
    }

    /// Several runs of one variant as one, as [`ConsumerRun::median_of`]: rate, drain time and
    /// wall time of the run with the median rate; messages, losses, duplicates and CPU added up
    /// (so CPU µs/msg is the mean over the runs); the highest peak RSS and idle RSS.
    pub fn median_of(runs: &[DrainRun]) -> DrainRun {
        let mut sorted = runs.to_vec();
        sorted.sort_by(|a, b| a.figures.rate.total_cmp(&b.figures.rate));
        let mut median = sorted[sorted.len() / 2];
        median.runs = runs.len();
        median.rate_range = (
            sorted[0].figures.rate,
            sorted[sorted.len() - 1].figures.rate,
        );
        median.published = runs.iter().map(|r| r.published).sum();
        median.figures.received = runs.iter().map(|r| r.figures.received).sum();
        median.figures.unique = runs.iter().map(|r| r.figures.unique).sum();
        median.cpu = runs.iter().map(|r| r.cpu).sum();
        median.max_rss_kib = runs.iter().map(|r| r.max_rss_kib).max().unwrap_or(0);
        median.idle_rss_kib = runs.iter().map(|r| r.idle_rss_kib).max().unwrap_or(0);
        median
    }
}

/// The backlog drain of one consumer with a persistent session:
///
/// 1. start it and wait until the broker logged its subscription, then SIGTERM it: the broker
///    keeps its session (examples: `--session-expiry` > 0; mosquitto_sub: `-c -x 3600`);
/// 2. wait until the broker saw it leave, then queue `n` messages in that session with the
///    pipelined publisher (the broker acknowledges each once it is queued);
/// 3. start it again, same client id, with `--count n` (`-C n`), and wait for it to exit.
///
/// The consumer's `stats:` line gives the drain from its first to its last message; the wall
/// time runs from its start to its exit.
///
/// Each run has a broker of its own: a persistent session left behind keeps its subscription,
/// so on a shared broker every later backlog would be queued in every earlier consumer's
/// session too (measured: after ten runs of 100,000 the first session hit
/// `max_queued_messages` and the broker dropped messages), slowing the broker down run by run.
pub fn drain_run(ctx: &mut Ctx, variant: &Variant, program: &Path) -> anyhow::Result<DrainRun> {
    let broker = &start_broker(false)?;
    let n = ctx.sizes.drain;
    let client_id = ctx.client_id("drain");
    // mosquitto_sub resumes its own session: clean start off, session kept for an hour.
    let session_args: Vec<String> = match variant.kind {
        Kind::MosquittoSub => ["-c", "-x", "3600"].map(String::from).to_vec(),
        Kind::Example => Vec::new(),
    };

    let mut first = spawn_consumer(
        ctx,
        broker,
        variant,
        program,
        &client_id,
        None,
        &session_args,
    )?;
    wait_subscribed(
        broker,
        &client_id,
        1,
        &mut [&mut first],
        Duration::from_secs(30),
    )?;
    let idle = first
        .stop(Duration::from_secs(10))
        .ok_or_else(|| anyhow!("{} could not be stopped", variant.name))?;
    if idle.signal == Some(libc::SIGKILL) {
        bail!(
            "still running 10 s after SIGTERM (killed) while creating its session\n{}",
            first.tail(15)
        );
    }
    wait_left(broker, &client_id, Duration::from_secs(10))?;

    let publisher_id = ctx.client_id("pub");
    let publish_rate = ctx.rt.block_on(async {
        let mut publisher = Publisher::connect(broker, &publisher_id).await?;
        let took = publisher.burst(TOPIC, 0, n).await?;
        publisher.disconnect().await;
        anyhow::Ok(n as f64 / took.as_secs_f64())
    })?;
    check_dropped_nothing_for(broker, &client_id)?;

    let started = Instant::now();
    let started_unix_us = crate::traffic::unix_us();
    let mut proc = spawn_consumer(
        ctx,
        broker,
        variant,
        program,
        &client_id,
        Some(n),
        &session_args,
    )?;
    // Generous: the slowest variant drains ~10k msg/s in release, a debug build far less.
    let timeout = ctx.sizes.drain_timeout + Duration::from_millis(n);
    let exited_at = proc.wait_exit(timeout).map(|_| Instant::now());
    let (figures, exit) = finish_consumer(
        ctx.dir.path(),
        &client_id,
        variant,
        &mut proc,
        Duration::ZERO,
    )
    .with_context(|| {
        format!(
            "draining {n} messages (not done {} s after start)",
            timeout.as_secs()
        )
    })?;
    let Some(exited_at) = exited_at else {
        bail!(
            "not done {} s after start; stopped with {} of {n} received\n{}",
            timeout.as_secs(),
            figures.unique,
            proc.tail(15)
        );
    };
    if exit.code != Some(0) {
        bail!("{} after the drain\n{}", exit.describe(), proc.tail(15));
    }
    check_dropped_nothing_for(broker, &client_id)?;
    // Start to last message: the consumer's `stats:` line comes right after its last message;
    // mosquitto_sub stamps each message with the wall clock.
    let to_last = match variant.kind {
        Kind::Example => proc
            .find_line(|l| l.starts_with("stats:"))
            .map(|line| line.at.saturating_duration_since(started)),
        Kind::MosquittoSub => figures
            .last_unix_us
            .checked_sub(started_unix_us)
            .map(Duration::from_micros),
    }
    .ok_or_else(|| anyhow!("could not tell when the last message arrived"))?;
    Ok(DrainRun {
        runs: 1,
        rate_range: (figures.rate, figures.rate),
        backlog: n,
        published: n,
        figures,
        wall: exited_at.duration_since(started),
        to_last,
        cpu: exit.cpu,
        max_rss_kib: exit.max_rss_kib,
        idle_rss_kib: idle.max_rss_kib,
        publish_rate,
    })
}

/// Fails if the broker dropped messages for `client_id` (one run's verdict: a drop in another
/// run on the same broker is that run's), with every broker log line naming the client.
fn check_dropped_nothing_for(broker: &MosquittoBroker, client_id: &str) -> anyhow::Result<()> {
    let log = broker.log();
    let drop_line = format!("{BROKER_DROP_LINE} for client {client_id}.");
    let dropped = log.lines().any(|l| l.contains(drop_line.as_str()));
    if dropped {
        let lines: Vec<&str> = log
            .lines()
            .filter(|l| {
                l.contains(&format!(" {client_id} "))
                    || l.contains(&format!(" {client_id}."))
                    || l.contains(&format!(" {client_id},"))
            })
            .collect();
        bail!(
            "the broker dropped messages for {client_id}:\n{}",
            lines.join("\n")
        );
    }
    Ok(())
}

/// Waits until the broker logged that `client_id` left (cleanly or not), so that the backlog
/// published next is queued in its session rather than sent to a dying connection.
fn wait_left(broker: &MosquittoBroker, client_id: &str, timeout: Duration) -> anyhow::Result<()> {
    let needles = [
        format!("Client {client_id} disconnected"),
        format!("Client {client_id} closed its connection"),
        format!("on client {client_id}, disconnecting"),
    ];
    let deadline = Instant::now() + timeout;
    loop {
        let log = broker.log();
        if needles.iter().any(|needle| log.contains(needle.as_str())) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!(
                "the broker did not log {client_id} leaving within {} s",
                timeout.as_secs()
            );
        }
        thread::sleep(Duration::from_millis(2));
    }
}

/// Size of the program after `strip` (what you would ship), in bytes; the file size itself
/// when `strip` is unavailable.
pub fn stripped_size(program: &Path, scratch: &Path) -> Option<(u64, bool)> {
    let out = scratch.join(format!(
        "stripped-{}",
        program.file_name()?.to_string_lossy()
    ));
    let stripped = std::process::Command::new("strip")
        .arg("-o")
        .arg(&out)
        .arg(program)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if stripped {
        let size = std::fs::metadata(&out).ok()?.len();
        let _ = std::fs::remove_file(&out);
        Some((size, true))
    } else {
        Some((std::fs::metadata(program).ok()?.len(), false))
    }
}
