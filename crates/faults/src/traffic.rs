//! Both ends of the traffic: a QoS 1 publisher of sequence-numbered messages on the broker's
//! side of the link, and the example binaries as consumers on ours.
//!
//! Every message is `{"seq":N}`. The examples print each message as `message K on <topic>`
//! followed by its JSON, pretty-printed (`  "seq": N`), so the set of sequence numbers a consumer
//! received, and how often each, can be read from its standard output without changing the
//! example: lost = published − received, duplicates = received − distinct.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use mosquitto_harness::{example_command, write_creds_value, ExampleProcess, MosquittoBroker};

use crate::netns;

/// The payload of message `seq`.
pub fn payload(seq: u64) -> Vec<u8> {
    format!("{{\"seq\":{seq}}}").into_bytes()
}

/// Where the broker is and how to reach it from either side of the link.
pub struct Site<'a> {
    /// The broker.
    pub broker: &'a MosquittoBroker,
    /// Its namespace, when it has one (the publisher joins it).
    pub netns: Option<&'a str>,
}

static PUBLISHER_IDS: AtomicU64 = AtomicU64::new(0);

impl Site<'_> {
    /// Publishes `seqs` as fast as the broker acknowledges them; returns once every PUBACK is in.
    pub fn publish(&self, topic: &str, seqs: Range<u64>) -> anyhow::Result<()> {
        self.publish_paced(topic, seqs, Duration::ZERO)
    }

    /// Publishes `seqs` spread evenly over `over` (in 10 steps a second), each step waiting for
    /// its PUBACKs. The publisher sits in the broker's namespace, so it keeps publishing while
    /// the consumers' link is down.
    pub fn publish_paced(
        &self,
        topic: &str,
        seqs: Range<u64>,
        over: Duration,
    ) -> anyhow::Result<()> {
        let broker = self.broker;
        let id = format!(
            "faults-publisher-{}",
            PUBLISHER_IDS.fetch_add(1, Ordering::Relaxed)
        );
        netns::run_in(self.netns, move || -> anyhow::Result<()> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("building a runtime for the publisher")?;
            runtime.block_on(async move {
                let mut publisher = mosquitto_harness::Publisher::connect(broker, &id)
                    .await
                    .map_err(|err| anyhow!("publisher: {err}"))?;
                let total = seqs.end - seqs.start;
                let steps = ((over.as_millis() / 100) as u64).clamp(1, total.max(1));
                let started = tokio::time::Instant::now();
                for step in 0..steps {
                    let from = seqs.start + total * step / steps;
                    let to = seqs.start + total * (step + 1) / steps;
                    tokio::time::sleep_until(started + over.mul_f64(step as f64 / steps as f64))
                        .await;
                    publisher
                        .publish_many(topic, to - from, |i| payload(from + i))
                        .await
                        .map_err(|err| anyhow!("publisher: {err}"))?;
                }
                let _ = publisher.disconnect().await;
                Ok(())
            })
        })?
    }
}

/// An example binary used as a consumer, over one or more runs (a kill and a restart make two).
pub struct Consumer {
    /// What the table calls it, e.g. `persistent-session` or `member 2`.
    pub label: String,
    bin: String,
    args: Vec<String>,
    creds: PathBuf,
    ca: PathBuf,
    runs: Vec<ExampleProcess>,
    _dir: tempfile::TempDir,
}

impl Consumer {
    /// Writes credentials for `client_id` on `topic` pointing at the broker's address and
    /// prepares (does not start) `bin` with `args`.
    pub fn new(
        site: &Site<'_>,
        label: &str,
        bin: &str,
        client_id: &str,
        topic: &str,
        args: &[&str],
    ) -> anyhow::Result<Consumer> {
        let dir = tempfile::tempdir().context("a temporary directory for credentials")?;
        let mut creds = site.broker.creds_json(client_id, topic);
        creds["host"] = serde_json::Value::from(site.broker.address().to_string());
        let creds_path = write_creds_value(dir.path(), &creds);
        Ok(Consumer {
            label: label.to_owned(),
            bin: bin.to_owned(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            creds: creds_path,
            ca: site.broker.ca_path().to_owned(),
            runs: Vec::new(),
            _dir: dir,
        })
    }

    /// Starts a new run of the binary.
    pub fn start(&mut self) -> anyhow::Result<()> {
        let mut command = example_command(&self.bin);
        command
            .args(&self.args)
            .env("MQTT_CREDS", &self.creds)
            .env("MQTT_CA_FILE", &self.ca);
        let process = ExampleProcess::spawn_command(command)
            .with_context(|| format!("starting {}", self.bin))?;
        self.runs.push(process);
        Ok(())
    }

    /// Starts and waits until the current run is subscribed (its first CONNACK + SUBACK).
    pub fn start_subscribed(&mut self, timeout: Duration) -> anyhow::Result<()> {
        self.start()?;
        self.wait_connected(0, timeout)
            .ok_or_else(|| anyhow!("{} did not connect: {}", self.label, self.tail()))?;
        // The SUBACK follows the CONNACK; give it a moment rather than depend on a line that
        // each variant words differently.
        std::thread::sleep(Duration::from_millis(500));
        Ok(())
    }

    fn current(&self) -> &ExampleProcess {
        self.runs.last().expect("started before use")
    }

    /// SIGKILL, like a crash or an OOM kill.
    pub fn kill(&mut self) {
        if let Some(run) = self.runs.last_mut() {
            run.kill();
        }
    }

    /// SIGTERM (the example sends DISCONNECT) and wait for the exit.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        let run = self.runs.last_mut()?;
        run.terminate();
        run.wait_exit(Duration::from_secs(20))
    }

    /// Lines of the current run matching `needle` so far.
    pub fn count(&self, needle: &str) -> usize {
        self.current().count_lines(|line| line.contains(needle))
    }

    /// Waits until the current run has more than `baseline` lines matching `needle`; returns
    /// when the last one was seen (to within the 50 ms poll).
    pub fn wait_more(&self, needle: &str, baseline: usize, timeout: Duration) -> Option<Instant> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.count(needle) > baseline {
                return Some(Instant::now());
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for a CONNACK beyond the first `baseline` of the current run. Every rumqttc and
    /// Paho example logs `session present: …` at each CONNACK.
    pub fn wait_connected(&self, baseline: usize, timeout: Duration) -> Option<Instant> {
        self.wait_more(CONNACK_LINE, baseline, timeout)
    }

    /// CONNACKs of the current run so far.
    pub fn connacks(&self) -> usize {
        self.count(CONNACK_LINE)
    }

    /// Connection failures the current run reported (the supervisor's retry line).
    pub fn failures(&self) -> usize {
        self.count(FAILURE_LINE)
    }

    /// How many times each sequence number arrived, over all runs.
    pub fn received(&self) -> BTreeMap<u64, u32> {
        let mut seqs = BTreeMap::new();
        for run in &self.runs {
            for seq in run.stdout().lines().filter_map(parse_seq) {
                *seqs.entry(seq).or_insert(0) += 1;
            }
        }
        seqs
    }

    /// The last lines of the current run, for error messages.
    pub fn tail(&self) -> String {
        let text = self.runs.last().map(|r| r.transcript()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// Every line of every run with `needle` (stdout and stderr).
    pub fn lines_with(&self, needle: &str) -> Vec<String> {
        self.runs
            .iter()
            .flat_map(|run| run.lines())
            .map(|(_, line)| line)
            .filter(|line| line.contains(needle))
            .collect()
    }

    /// Peak resident memory of the current run (VmHWM), in MiB, while it runs.
    pub fn peak_rss_mib(&self) -> Option<f64> {
        let pid = self.runs.last()?.pid();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib / 1024.0)
    }

    /// Whether any run printed a panic.
    pub fn panicked(&self) -> bool {
        !self.lines_with("panicked at").is_empty()
    }
}

/// The examples log this at every CONNACK.
pub const CONNACK_LINE: &str = "session present";
/// `common::supervisor` logs this after every connection failure it retries.
pub const FAILURE_LINE: &str = "Reconnecting in";

/// `  "seq": 17,` → 17.
fn parse_seq(line: &str) -> Option<u64> {
    let rest = line.trim_start().strip_prefix("\"seq\":")?;
    rest.trim().trim_end_matches(',').parse().ok()
}

/// Waits until every consumer has received all of `expected` distinct sequence numbers, or none
/// got anything new for `settle` (what is missing then is lost), or `timeout` passed.
pub fn wait_delivered(
    consumers: &[&Consumer],
    expected: &Range<u64>,
    settle: Duration,
    timeout: Duration,
) {
    let started = Instant::now();
    let mut last_total = usize::MAX;
    let mut last_change = Instant::now();
    loop {
        let counts: Vec<usize> = consumers
            .iter()
            .map(|c| c.received().range(expected.clone()).count())
            .collect();
        let want = (expected.end - expected.start) as usize;
        if counts.iter().all(|n| *n >= want) {
            return;
        }
        let total: usize = counts.iter().sum();
        if total != last_total {
            last_total = total;
            last_change = Instant::now();
        }
        if last_change.elapsed() >= settle || started.elapsed() >= timeout {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Lost and duplicated messages of `expected`, over the union of `consumers` (one consumer, or
/// the members of one shared group).
#[derive(Clone, Copy, Debug, Default)]
pub struct Tally {
    /// Messages published.
    pub published: u64,
    /// Of those, never received by anyone.
    pub lost: u64,
    /// Deliveries beyond the first of each message.
    pub duplicates: u64,
}

/// Counts what `consumers` together received of `expected`.
pub fn tally(consumers: &[&Consumer], expected: &Range<u64>) -> Tally {
    let mut all: BTreeMap<u64, u32> = BTreeMap::new();
    for consumer in consumers {
        for (seq, n) in consumer.received() {
            *all.entry(seq).or_insert(0) += n;
        }
    }
    let in_range = || all.range(expected.clone());
    let distinct = in_range().count() as u64;
    let deliveries: u64 = in_range().map(|(_, n)| u64::from(*n)).sum();
    Tally {
        published: expected.end - expected.start,
        lost: (expected.end - expected.start) - distinct,
        duplicates: deliveries - distinct,
    }
}

/// The first gap in what a consumer received: `(last before the gap, first after it)`. This
/// is how a consumer can notice messages the broker dropped: its sequence numbers jump.
pub fn first_gap(consumer: &Consumer) -> Option<(u64, u64)> {
    let seqs: Vec<u64> = consumer.received().into_keys().collect();
    seqs.windows(2)
        .find(|pair| pair[1] > pair[0] + 1)
        .map(|pair| (pair[0], pair[1]))
}
