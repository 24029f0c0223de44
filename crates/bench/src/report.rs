//! The results of a run, the Markdown report and the targets of issue #6.

use std::fmt::Write as _;
use std::path::PathBuf;

use crate::phases::{ConsumerRun, DrainRun, ReconnectRun, SharedRun, Sizes, TakeoverRun};
use crate::variants::{Kind, Role, Variant};

/// Everything measured for one variant. `None` = not measured (not built, or not its role);
/// `Some(Err)` = the measurement failed, with why.
pub struct Row {
    pub variant: &'static Variant,
    pub program: Option<PathBuf>,
    /// Stripped size in bytes, and whether it really was stripped.
    pub size: Option<(u64, bool)>,
    pub throughput: Option<Result<ConsumerRun, String>>,
    pub latency: Option<Result<ConsumerRun, String>>,
    pub reconnect: Option<Result<ReconnectRun, String>>,
    pub shared: Vec<Result<SharedRun, String>>,
    pub takeover: Vec<Result<TakeoverRun, String>>,
    pub takeover_demo: Option<Result<TakeoverRun, String>>,
    /// The backlog drain (persistent-session variants and mosquitto_sub): the median of the
    /// rounds that worked, or the error when none did.
    pub drain: Option<Result<DrainRun, String>>,
    /// Rounds of the drain that failed (reported beside the figures).
    pub drain_failures: Vec<String>,
}

impl Row {
    pub fn new(variant: &'static Variant, program: Option<PathBuf>) -> Row {
        Row {
            variant,
            program,
            size: None,
            throughput: None,
            latency: None,
            reconnect: None,
            shared: Vec::new(),
            takeover: Vec::new(),
            takeover_demo: None,
            drain: None,
            drain_failures: Vec::new(),
        }
    }

    /// Measured in the backlog drain: the persistent-session variants, and mosquitto_sub
    /// (`-c`) as the control.
    pub fn drains(&self) -> bool {
        self.variant.role == Role::Backlog || self.variant.kind == Kind::MosquittoSub
    }

    pub fn built(&self) -> bool {
        self.program.is_some()
    }

    fn is_rust(&self) -> bool {
        self.variant.kind == Kind::Example
    }
}

/// About the run, for the report header.
pub struct Meta {
    pub quick: bool,
    pub profile: String,
    pub cores: usize,
    pub cpu: String,
    pub mosquitto: String,
    pub date: String,
    pub sizes: Sizes,
    pub duration_s: f64,
    /// `/proc/loadavg` (1-minute) before and after: other work on the machine skews figures.
    pub load_before: String,
    pub load_after: String,
}

const MIB: f64 = 1024.0 * 1024.0;

fn ms(us: u64) -> String {
    format!("{:.2}", us as f64 / 1000.0)
}

fn fail_cell(err: &str) -> String {
    let first = err.lines().next().unwrap_or(err);
    let short: String = first.chars().take(60).collect();
    format!("FAILED: {}", short.replace('|', "/"))
}

/// The fastest consumer's receive rate in this run.
pub fn fastest(rows: &[Row]) -> Option<(f64, &'static str)> {
    rows.iter()
        .filter_map(|r| match &r.throughput {
            Some(Ok(run)) => Some((run.figures.rate, r.variant.name.as_str())),
            _ => None,
        })
        .max_by(|a, b| a.0.total_cmp(&b.0))
}

/// One line of the targets table.
pub struct Target {
    pub name: &'static str,
    pub result: String,
    pub met: Option<bool>,
    pub why: String,
}

/// Compares the run against the targets of issue #6.
pub fn targets(rows: &[Row]) -> Vec<Target> {
    let mut out = Vec::new();
    // The targets are for this project's examples; mosquitto_sub is the yardstick, not judged.
    let consumers: Vec<&Row> = rows
        .iter()
        .filter(|r| r.variant.role == Role::Consumer && r.built() && r.is_rust())
        .collect();

    // 1. Throughput ≥ 0.95 × the fastest client.
    if let Some((best, best_name)) = fastest(rows) {
        let mut below = Vec::new();
        for row in &consumers {
            if let Some(Ok(run)) = &row.throughput {
                let ratio = run.figures.rate / best;
                if ratio < 0.95 {
                    below.push(format!("{} {:.2}×", row.variant.name, ratio));
                }
            }
        }
        out.push(Target {
            name: "each Rust variant ≥ 0.95× the fastest client",
            result: if below.is_empty() {
                format!("all ≥ 0.95× of {best_name} ({best:.0} msg/s)")
            } else {
                format!(
                    "fastest {best_name} ({best:.0} msg/s); below: {}",
                    below.join(", ")
                )
            },
            met: Some(below.is_empty()),
            why: if below.is_empty() {
                String::new()
            } else {
                why_throughput(rows, best)
            },
        });
    }

    // 2. p99 ≤ 2 ms at 1k msg/s.
    let mut worst: Option<(u64, &str)> = None;
    let mut over = Vec::new();
    for row in &consumers {
        if let Some(Ok(run)) = &row.latency {
            let p99 = run.figures.p99_us;
            if worst.is_none_or(|(w, _)| p99 > w) {
                worst = Some((p99, row.variant.name.as_str()));
            }
            if p99 > 2_000 {
                over.push(format!("{} {} ms", row.variant.name, ms(p99)));
            }
        }
    }
    if let Some((p99, name)) = worst {
        out.push(Target {
            name: "p99 ≤ 2 ms end to end at 1,000 msg/s",
            result: if over.is_empty() {
                format!("worst p99 {} ms ({name})", ms(p99))
            } else {
                format!("over: {}", over.join(", "))
            },
            met: Some(over.is_empty()),
            why: if over.is_empty() {
                String::new()
            } else {
                WHY_LATENCY.to_owned()
            },
        });
    }

    // 3. Shared scaling ≥ 0.9·k.
    for row in rows.iter().filter(|r| r.variant.role == Role::Shared) {
        let runs: Vec<&SharedRun> = row.shared.iter().filter_map(|r| r.as_ref().ok()).collect();
        if let Some(single) = runs.iter().find(|r| r.k == 1) {
            let ratios: Vec<String> = runs
                .iter()
                .filter(|r| r.k > 1)
                .map(|r| format!("k={}: {:.2}", r.k, r.rate / (r.k as f64 * single.rate)))
                .collect();
            let met = runs
                .iter()
                .all(|r| r.rate >= 0.9 * r.k as f64 * single.rate);
            out.push(Target {
                name: "shared subscription: total ≥ 0.9·k × single",
                result: format!(
                    "{}: {} (ratio to k × single)",
                    row.variant.name,
                    ratios.join(", ")
                ),
                met: Some(met),
                why: if met {
                    String::new()
                } else {
                    WHY_SHARED.to_owned()
                },
            });
        }
    }

    // 4. Takeover ≤ 50 ms where the broker sends 0x8E.
    let mut demo = Vec::new();
    let mut mosq = Vec::new();
    for row in rows.iter().filter(|r| r.variant.role == Role::Takeover) {
        if let Some(Ok(run)) = &row.takeover_demo {
            demo.push((run.detect_ms, row.variant.name.as_str()));
        }
        let times: Vec<f64> = row
            .takeover
            .iter()
            .filter_map(|r| r.as_ref().ok().map(|r| r.detect_ms))
            .collect();
        if !times.is_empty() {
            mosq.push((median(&times), row.variant.name.as_str()));
        }
    }
    if !demo.is_empty() {
        let slow: Vec<String> = demo
            .iter()
            .filter(|(ms, _)| *ms > 50.0)
            .map(|(ms, name)| format!("{name} {ms:.0} ms"))
            .collect();
        let fast: Vec<String> = demo
            .iter()
            .filter(|(ms, _)| *ms <= 50.0)
            .map(|(ms, name)| format!("{name} {ms:.0} ms"))
            .collect();
        out.push(Target {
            name: "takeover reported ≤ 50 ms where the broker sends 0x8E",
            result: format!(
                "embedded mqtt5 broker: {}",
                if slow.is_empty() {
                    format!("all ≤ 50 ms ({})", fast.join(", "))
                } else {
                    format!(
                        "over: {}{}",
                        slow.join(", "),
                        if fast.is_empty() {
                            String::new()
                        } else {
                            format!("; met: {}", fast.join(", "))
                        }
                    )
                }
            ),
            met: Some(slow.is_empty()),
            why: if slow.is_empty() {
                String::new()
            } else {
                WHY_TAKEOVER.to_owned()
            },
        });
    }
    if !mosq.is_empty() {
        let cells: Vec<String> = mosq
            .iter()
            .map(|(ms, name)| format!("{name} {ms:.0} ms"))
            .collect();
        out.push(Target {
            name: "takeover against Mosquitto (sends no 0x8E; no target)",
            result: format!("median: {}", cells.join(", ")),
            met: None,
            why: WHY_TAKEOVER_MOSQUITTO.to_owned(),
        });
    }

    // 5. Reconnect ≤ 1 s after the broker returns.
    let mut slow = Vec::new();
    let mut measured = 0;
    let mut worst_rc: Option<(f64, &str)> = None;
    for row in rows.iter().filter(|r| r.is_rust()) {
        if let Some(Ok(run)) = &row.reconnect {
            measured += 1;
            if worst_rc.is_none_or(|(w, _)| run.reconnect_ms > w) {
                worst_rc = Some((run.reconnect_ms, row.variant.name.as_str()));
            }
            if run.reconnect_ms > 1_000.0 {
                slow.push(format!("{} {:.0} ms", row.variant.name, run.reconnect_ms));
            }
        }
    }
    if let Some((worst, name)) = worst_rc {
        out.push(Target {
            name: "reconnect ≤ 1 s after the broker returns",
            result: if slow.is_empty() {
                format!("all {measured} ≤ 1 s; worst {worst:.0} ms ({name})")
            } else {
                format!("over: {}", slow.join(", "))
            },
            met: Some(slow.is_empty()),
            why: if slow.is_empty() {
                String::new()
            } else {
                WHY_RECONNECT.to_owned()
            },
        });
    }

    // 6. Peak RSS ≤ 15 MiB per consumer.
    let mut big = Vec::new();
    let mut worst_rss: Option<(u64, &str)> = None;
    for row in &consumers {
        if let Some(Ok(run)) = &row.throughput {
            if worst_rss.is_none_or(|(w, _)| run.max_rss_kib > w) {
                worst_rss = Some((run.max_rss_kib, row.variant.name.as_str()));
            }
            if run.max_rss_kib > 15 * 1024 {
                big.push(format!(
                    "{} {:.1} MiB",
                    row.variant.name,
                    run.max_rss_kib as f64 / 1024.0
                ));
            }
        }
    }
    if let Some((rss, name)) = worst_rss {
        out.push(Target {
            name: "peak RSS ≤ 15 MiB per consumer",
            result: if big.is_empty() {
                format!("worst {:.1} MiB ({name})", rss as f64 / 1024.0)
            } else {
                format!("over: {}", big.join(", "))
            },
            met: Some(big.is_empty()),
            why: if big.is_empty() {
                String::new()
            } else {
                why_rss(rows)
            },
        });
    }
    drain_targets(rows, &mut out);
    out
}

/// Why consumers fall short of the fastest: the CPU each spends per message, from this run.
fn why_throughput(rows: &[Row], best: f64) -> String {
    let runs: Vec<(&Row, &ConsumerRun)> = rows
        .iter()
        .filter(|r| r.variant.role == Role::Consumer)
        .filter_map(|r| match &r.throughput {
            Some(Ok(run)) => Some((r, run)),
            _ => None,
        })
        .collect();
    let cpu: Vec<String> = runs
        .iter()
        .map(|(r, run)| format!("{} {:.0}", r.variant.name, run.cpu_us_per_msg()))
        .collect();
    let mut why = format!(
        "On 2 cores the consumer shares the CPU with the broker and the publisher, so the CPU it \
         spends per message sets its rate (CPU µs/msg: {}). ",
        cpu.join(", ")
    );
    let paho: Vec<f64> = runs
        .iter()
        .filter(|(r, run)| r.variant.stack.starts_with("paho") && run.figures.rate < 0.95 * best)
        .map(|(_, run)| run.figures.rate)
        .collect();
    if !paho.is_empty() {
        let lo = paho.iter().copied().fold(f64::MAX, f64::min);
        let hi = paho.iter().copied().fold(0.0, f64::max);
        why.push_str(&format!(
            "The Paho variants run at {lo:.0}–{hi:.0} msg/s whatever the runtime: the ceiling is \
             Paho C's receive path (its own thread hands every message through a callback to \
             paho-mqtt's stream), not tokio, smol or async-std. "
        ));
    }
    let control_fastest = runs
        .iter()
        .any(|(r, run)| !r.is_rust() && run.figures.rate >= best);
    if control_fastest
        && runs.iter().any(|(r, run)| {
            r.variant.stack.starts_with("rumqttc") && run.figures.rate < 0.95 * best
        })
    {
        why.push_str(
            "The rumqttc variants ack each message only after their handler ran, through a \
             bounded queue between the MQTT task and the handler; mosquitto_sub acks inside \
             libmosquitto on receipt and only writes to a file. ",
        );
    }
    let spread = runs
        .iter()
        .filter(|(_, run)| run.runs > 1 && run.figures.rate > 0.0)
        .map(|(_, run)| (run.rate_range.1 - run.rate_range.0) / run.figures.rate)
        .fold(0.0, f64::max);
    if spread > 0.0 {
        why.push_str(&format!(
            "The rate itself is noisy here: between rounds one variant moved by up to {:.0}% of \
             its median (min–max column), because the consumer can only go as fast as the \
             publisher and broker on the same 2 cores deliver; CPU µs/msg is the steadier \
             comparison.",
            spread * 100.0
        ));
    }
    why.trim_end().to_owned()
}

const WHY_LATENCY: &str = "Measured on a 2-core machine that also runs the broker and the \
    publisher: a consumer waiting for a core shows up in p99/max. The p50 is the cost of the \
    path itself.";
const WHY_SHARED: &str = "Mosquitto hands a shared group's messages round-robin at publish \
    time, so the slowest member sets the end; with more processes than cores the members also \
    compete for CPU with the broker and the publisher.";
const WHY_TAKEOVER: &str = "rumqttc 0.25.1 cannot parse the 3-byte DISCONNECT `e0 01 8e` the \
    mqtt5 broker sends, so the reason code never reaches the example; it recognises the \
    collision by its pattern instead — 3 connections closed within 5 s of their CONNACK — which \
    takes 3 rounds of its jittered backoff (50–100, 100–200, 200–400 ms): about 0.4–0.7 s. A \
    client that could read 0x8E would stop at the first one. Only the base binary has a \
    two-connection demo against this broker, so the Paho variants (which do read DISCONNECT \
    reason codes) were not measured with 0x8E: the harness's Mosquitto 2.0.11 never sends it.";
const WHY_TAKEOVER_MOSQUITTO: &str = "Mosquitto 2.0.11 closes the old connection without any \
    DISCONNECT, so only the pattern (3 quick drops, with backoff in between) can reveal it.";
const WHY_RECONNECT: &str = "By design of `common::Backoff`: while the broker is down the \
    examples wait 100 ms doubling up to 30 s, each delay jittered to between half and all of its \
    step, so a fleet does not reconnect in lock-step. After a 3 s outage the retry that finds the \
    broker back is usually the 6th (delay 1.6–3.2 s), landing anywhere from 0 to about 3.2 s \
    after the broker returns. Capping the delay at about 1 s would meet the target, at the cost \
    of more connection attempts against a broker that is down.";
/// Why consumers exceed 15 MiB, from what this run measured.
fn why_rss(rows: &[Row]) -> String {
    let rss = |name: &str| {
        rows.iter()
            .find(|r| r.variant.name == name)
            .and_then(|r| match &r.throughput {
                Some(Ok(run)) => Some(run.max_rss_kib as f64 / 1024.0),
                _ => None,
            })
    };
    let mut why = String::new();
    for row in rows
        .iter()
        .filter(|r| r.variant.role == Role::Consumer && r.is_rust())
    {
        let Some(Ok(run)) = &row.throughput else {
            continue;
        };
        let mib = run.max_rss_kib as f64 / 1024.0;
        if mib <= 15.0 {
            continue;
        }
        let name = row.variant.name.as_str();
        if name.ends_with("-native-tls") {
            let base = name.trim_end_matches("-rumqttc-native-tls");
            match rss(base) {
                Some(base_mib) => why.push_str(&format!(
                    "{name}: OpenSSL (native-tls) costs {:.1} MiB more than the same program on \
                     rustls ({base}: {base_mib:.1} MiB). ",
                    mib - base_mib
                )),
                None => why.push_str(&format!("{name}: OpenSSL (native-tls). ")),
            }
        } else if row.variant.stack.starts_with("rumqttc") {
            why.push_str(&format!(
                "{name}: rumqttc 0.25's v5 event loop allocates one slot per possible outgoing \
                 in-flight message up front (`outgoing_inflight_upper_limit`, 65,535 by default: \
                 65,536 × 216-byte `Option<Publish>` = 13.5 MiB written at startup, even in a \
                 consumer that never publishes); `common` caps it for consumers — check that \
                 cap. "
            ));
        } else {
            why.push_str(&format!("{name}: Paho C's buffers and threads. "));
        }
    }
    why.trim_end().to_owned()
}

pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    v[v.len() / 2]
}

/// The Markdown report.
pub fn markdown(meta: &Meta, rows: &[Row]) -> String {
    let mut md = String::new();
    let s = &meta.sizes;
    let _ = writeln!(md, "# Benchmarks\n");
    let _ = writeln!(
        md,
        "Generated by {} on {} — {} cores ({}), {}, {} build, {:.0} s, load average {} before \
         and {} after. Do not edit by hand: run the benchmark again.\n",
        if meta.quick {
            "`cargo run -p bench -- --quick` (a smoke test: sizes far too small for conclusions)"
        } else {
            "`cargo run --release -p bench`"
        },
        meta.date,
        meta.cores,
        meta.cpu,
        meta.mosquitto,
        meta.profile,
        meta.duration_s,
        meta.load_before,
        meta.load_after,
    );
    let _ = writeln!(
        md,
        "Every figure comes from **the real example binaries run as processes** (`--stats`: no \
         per-message printing, one `stats:` line at exit) against Mosquitto started by \
         `crates/mosquitto-harness` — TLS, password, MQTT v5, `max_queued_messages 1000000`, \
         `max_inflight_messages 1000`. Payloads are ~250-byte Airfinder-like JSON events at \
         QoS 1, carrying a sequence number (loss and duplicates are counted per `seq`) and the \
         publisher's clock in µs (`sentAtUs`, for end-to-end latency). `mosquitto_sub` (C, \
         libmosquitto; `-F '%U %p'` into a file, its own receive time per message) is the outside \
         control. Consumers run one at a time, so each has the \
         machine to itself apart from the broker and the benchmark's publisher.\n"
    );

    // Consumers.
    let best = fastest(rows);
    let _ = writeln!(md, "## Consumers\n");
    let _ = writeln!(
        md,
        "Throughput: {} messages published as fast as the broker acknowledges them (pipelined \
         rumqttc publisher), the rate measured by the consumer from its first to its last \
         message; {} round(s), each variant once per round, the median round shown (lost and \
         dup count every round). CPU µs/msg: the consumer's user + system CPU time over the \
         messages it received — what a message costs, independent of how busy the machine was. \
         Latency: {} messages at a fixed {:.0} msg/s, from the publisher's clock in the payload \
         to the consumer's handler. Reconnect: the broker is stopped for {} s and started \
         again; the time from it accepting connections to the consumer's subscription arriving \
         again, then {} messages must all arrive. RSS: peak resident set (the highest `VmHWM` \
         in `/proc/<pid>/status`, sampled every 5 ms) over the throughput rounds. Size: the \
         binary after `strip`.\n",
        s.throughput,
        s.throughput_rounds,
        s.latency,
        s.latency_rate,
        s.broker_down.as_secs_f64(),
        s.backlog,
    );
    let _ = writeln!(
        md,
        "| variant | stack | throughput msg/s | rounds min–max | × fastest | CPU µs/msg | lost | dup | p50 ms | p99 ms | max ms | reconnect ms | peak RSS MiB | binary MiB |"
    );
    let _ = writeln!(
        md,
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for row in rows.iter().filter(|r| r.variant.role == Role::Consumer) {
        let v = row.variant;
        if !row.built() {
            let _ = writeln!(
                md,
                "| {} | {} | not built | | | | | | | | | | | |",
                v.name, v.stack
            );
            continue;
        }
        let mut cells: Vec<String> = Vec::new();
        match &row.throughput {
            Some(Ok(run)) => {
                cells.push(format!("{:.0}", run.figures.rate));
                cells.push(format!("{:.0}–{:.0}", run.rate_range.0, run.rate_range.1));
                cells.push(best.map_or(String::new(), |(b, _)| {
                    format!("{:.2}", run.figures.rate / b)
                }));
                cells.push(format!("{:.0}", run.cpu_us_per_msg()));
                cells.push(run.lost().to_string());
                cells.push(run.duplicates().to_string());
            }
            Some(Err(err)) => {
                cells.push(fail_cell(err));
                cells.extend(["", "", "", "", ""].map(String::from));
            }
            None => cells.extend(["", "", "", "", "", ""].map(String::from)),
        }
        match &row.latency {
            Some(Ok(run)) => {
                let f = run.figures;
                cells.extend([ms(f.p50_us), ms(f.p99_us), ms(f.max_us)]);
                if run.lost() > 0 {
                    // Column 4 is "lost".
                    cells[4] = format!("{} (+{} in latency run)", cells[4], run.lost());
                }
            }
            Some(Err(err)) => cells.extend([fail_cell(err), String::new(), String::new()]),
            None => cells.extend(["", "", ""].map(String::from)),
        }
        cells.push(match &row.reconnect {
            Some(Ok(run)) if run.delivered >= run.published => format!("{:.0}", run.reconnect_ms),
            Some(Ok(run)) => format!(
                "{:.0} (LOST {} of {})",
                run.reconnect_ms,
                run.published - run.delivered,
                run.published
            ),
            Some(Err(err)) => fail_cell(err),
            None => String::new(),
        });
        cells.push(match &row.throughput {
            Some(Ok(run)) => format!("{:.1}", run.max_rss_kib as f64 / 1024.0),
            _ => String::new(),
        });
        cells.push(size_cell(row));
        let _ = writeln!(md, "| {} | {} | {} |", v.name, v.stack, cells.join(" | "));
    }
    if let Some(rate) = rows.iter().find_map(|r| match &r.throughput {
        Some(Ok(run)) => run.publish_rate,
        _ => None,
    }) {
        let _ = writeln!(
            md,
            "\nThe publisher itself got its messages acknowledged at about {rate:.0} msg/s (first \
             throughput run); a consumer cannot receive faster than that. So this throughput run \
             is **bound by its publisher**, not by the consumers: the rumqttc variants all \
             measure about the publisher's rate, and their \"× fastest\" mostly shows the \
             round-to-round noise (rounds min–max). CPU µs/msg compares the consumers; the \
             backlog drain below measures how fast each one can really take messages."
        );
    }
    let _ = writeln!(
        md,
        "\nmosquitto_sub's size excludes the shared libraries it loads (libmosquitto, OpenSSL); \
         the paho variants link Paho C statically and OpenSSL dynamically; the rumqttc variants \
         are self-contained apart from libc (native-tls: OpenSSL).\n"
    );

    drain_section(&mut md, s, rows);

    // Shared subscription.
    let shared_rows: Vec<&Row> = rows
        .iter()
        .filter(|r| r.variant.role == Role::Shared)
        .collect();
    if !shared_rows.is_empty() {
        let base = shared_rows[0].variant;
        let args = base.extra_args.join(" ");
        let _ = writeln!(md, "## Shared subscription scaling\n");
        let _ = writeln!(
            md,
            "k processes (`{} {args} --instance i`; variants alike), one group, each handler simulating \
             2 ms of I/O-bound work per message; {} messages in total; total rate from the first \
             publish to the last member done. Mosquitto deals a group's messages round-robin.\n",
            base.binary,
            s.shared
        );
        let _ = writeln!(
            md,
            "| variant | k | total msg/s | ÷ (k × single) | per process | lost | peak RSS MiB |"
        );
        let _ = writeln!(md, "|---|---:|---:|---:|---|---:|---:|");
        for row in shared_rows {
            let name = &row.variant.name;
            if !row.built() {
                let _ = writeln!(md, "| {name} | | not built | | | | |");
                continue;
            }
            let single = row
                .shared
                .iter()
                .find_map(|r| r.as_ref().ok().filter(|r| r.k == 1).map(|r| r.rate));
            for run in &row.shared {
                match run {
                    Ok(run) => {
                        let ratio = single.map_or(String::new(), |s| {
                            format!("{:.2}", run.rate / (run.k as f64 * s))
                        });
                        let per: Vec<String> = run.received.iter().map(u64::to_string).collect();
                        let _ = writeln!(
                            md,
                            "| {name} | {} | {:.0} | {} | {} | {} | {:.1} |",
                            run.k,
                            run.rate,
                            ratio,
                            per.join(" / "),
                            run.lost(),
                            run.max_rss_kib as f64 / 1024.0
                        );
                    }
                    Err(err) => {
                        let _ = writeln!(md, "| {name} | | {} | | | | |", fail_cell(err));
                    }
                }
            }
        }
        let _ = writeln!(md);
    }

    // Takeover.
    let takeover_rows: Vec<&Row> = rows
        .iter()
        .filter(|r| r.variant.role == Role::Takeover)
        .collect();
    if !takeover_rows.is_empty() {
        let base = takeover_rows[0].variant;
        let args = base.extra_args.join(" ");
        let _ = writeln!(md, "## Takeover detection\n");
        let _ = writeln!(
            md,
            "Mosquitto 2.0.11 (closes the old connection without a DISCONNECT): two processes \
             with the same client id (`{} {args}`, the variants as they are: one connection \
             each); time from the broker closing the first \
             connection for the second (its log line) to one of them printing `client id \
             collision detected`; {} run(s) each. Embedded mqtt5 broker (sends DISCONNECT 0x8E \
             *Session taken over*): the scenario's demo launcher (`client-id-collision-demo`: two \
             processes of the binary, one id), as the example reports it itself.\n",
            base.binary, s.takeover_runs
        );
        let _ = writeln!(
            md,
            "| variant | stack | Mosquitto median ms | Mosquitto max ms | exit codes | mqtt5 (0x8E) ms |"
        );
        let _ = writeln!(md, "|---|---|---:|---:|---|---:|");
        for row in takeover_rows {
            let v = row.variant;
            if !row.built() {
                let _ = writeln!(md, "| {} | {} | not built | | | |", v.name, v.stack);
                continue;
            }
            let ok: Vec<&TakeoverRun> = row
                .takeover
                .iter()
                .filter_map(|r| r.as_ref().ok())
                .collect();
            let times: Vec<f64> = ok.iter().map(|r| r.detect_ms).collect();
            let (median_cell, max_cell) = match row.takeover.iter().find_map(|r| r.as_ref().err()) {
                Some(err) => (fail_cell(err), String::new()),
                None if times.is_empty() => (String::new(), String::new()),
                None => (
                    format!("{:.0}", median(&times)),
                    format!("{:.0}", times.iter().copied().fold(0.0, f64::max)),
                ),
            };
            let codes: Vec<String> = ok
                .iter()
                .map(|r| r.exit_code.map_or("-".into(), |c| c.to_string()))
                .collect();
            let demo = match &row.takeover_demo {
                Some(Ok(run)) => format!("{:.0}", run.detect_ms),
                Some(Err(err)) => fail_cell(err),
                None => String::new(),
            };
            let _ = writeln!(
                md,
                "| {} | {} | {median_cell} | {max_cell} | {} | {demo} |",
                v.name,
                v.stack,
                codes.join(", ")
            );
        }
        let _ = writeln!(md);
    }

    // Backlog.
    let backlog_rows: Vec<&Row> = rows
        .iter()
        .filter(|r| r.variant.role == Role::Backlog)
        .collect();
    if !backlog_rows.is_empty() {
        let args = backlog_rows[0].variant.extra_args.join(" ");
        let _ = writeln!(md, "## Broker restart with a persistent session\n");
        let _ = writeln!(
            md,
            "`<variant> {args}`; Mosquitto with persistence, stopped (SIGTERM, it saves its \
             sessions) for {} s and started again; {} messages published the moment it was \
             back, before the consumer had reconnected where marked: a real backlog, held in the \
             consumer's session.\n",
            s.broker_down.as_secs_f64(),
            s.backlog
        );
        let _ = writeln!(md, "| variant | stack | reconnect ms | backlog delivered |");
        let _ = writeln!(md, "|---|---|---:|---:|");
        for row in backlog_rows {
            let v = row.variant;
            let cells = match &row.reconnect {
                None if !row.built() => "not built | ".to_owned(),
                None => " | ".to_owned(),
                Some(Err(err)) => format!("{} | ", fail_cell(err)),
                Some(Ok(run)) => format!(
                    "{:.0} | {} / {}{}",
                    run.reconnect_ms,
                    run.delivered,
                    run.published,
                    if run.all_queued_while_away {
                        " (all queued while away)"
                    } else {
                        ""
                    }
                ),
            };
            let _ = writeln!(md, "| {} | {} | {cells} |", v.name, v.stack);
        }
        let _ = writeln!(md);
    }

    // Targets.
    let _ = writeln!(md, "## Targets (issue #6)\n");
    let _ = writeln!(md, "| target | result | met | why |");
    let _ = writeln!(md, "|---|---|---|---|");
    for t in targets(rows) {
        let met = match t.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "—",
        };
        let _ = writeln!(md, "| {} | {} | {} | {} |", t.name, t.result, met, t.why);
    }
    let _ = writeln!(
        md,
        "\n![throughput and latency per variant](benchmarks.svg)"
    );
    md
}

/// Bytes one queued request (an ack) takes in rumqttc's request channel: flume keeps a
/// `VecDeque<Request>`, so each slot is `size_of::<Request>()` of the rumqttc version the
/// examples are built with (the harness re-exports the same one).
pub fn queued_ack_bytes() -> u64 {
    std::mem::size_of::<mosquitto_harness::rumqttc::v5::Request>() as u64
}

/// mosquitto_sub's drain, the yardstick of the drain targets.
fn drain_control(rows: &[Row]) -> Option<&DrainRun> {
    rows.iter()
        .filter(|r| r.variant.kind == Kind::MosquittoSub)
        .find_map(|r| r.drain.as_ref().and_then(|d| d.as_ref().ok()))
}

fn drain_rows(rows: &[Row]) -> impl Iterator<Item = (&Row, &DrainRun)> {
    rows.iter()
        .filter_map(|r| Some((r, r.drain.as_ref()?.as_ref().ok()?)))
}

/// The backlog-drain table (issue #15).
fn drain_section(md: &mut String, s: &Sizes, rows: &[Row]) {
    let measured: Vec<&Row> = rows.iter().filter(|r| r.drains()).collect();
    if measured.iter().all(|r| r.drain.is_none()) {
        return;
    }
    let control = drain_control(rows);
    let example_args = measured
        .iter()
        .find(|r| r.variant.role == Role::Backlog)
        .map_or(String::new(), |r| r.variant.extra_args.join(" "));
    let _ = writeln!(md, "## Backlog drain (consumer-bound)\n");
    let _ = writeln!(
        md,
        "What `persistent-session` exists for: the consumer was down and a backlog waits in its \
         session. Each consumer is started once until subscribed (`<variant> {example_args}`; \
         `mosquitto_sub -V mqttv5 -q 1 -c -x 3600 -i <id>`, resuming its own session), stopped \
         with SIGTERM; {n} QoS 1 messages (~250 B) are queued in its session by the pipelined \
         publisher; then it is started again with `--count {n} --stats` (`-C {n}`) and drains \
         them as fast as it can — the consumer, not the publisher, sets the pace. {rounds} \
         round(s), each variant once per round, the median round shown (lost and dup count \
         every round). Drain: first to last message, as the consumer itself measured it \
         (mosquitto_sub: its own receive times). Wall: from starting the process to its exit \
         (connect, TLS, resume, drain, DISCONNECT); start→last: from starting the process to its \
         last message, the time a restart takes to catch up — the fair comparison with the Paho \
         variants, whose Paho C core receives and acks the backlog into memory while the \
         example still waits for its SUBACK, so that their first-to-last time only measures \
         emptying that in-memory queue. CPU µs/msg: the draining process's user + \
         system CPU over the messages it received, mean of the rounds. Peak RSS: `VmHWM` of the \
         draining process; idle: the same program's peak in the run that only created the \
         session.\n",
        n = s.drain,
        rounds = s.drain_rounds,
    );
    let _ = writeln!(
        md,
        "| variant | stack | drain msg/s | rounds min–max | × mosquitto_sub | drain ms | start→last ms | start→last msg/s | start→last × mosquitto_sub | wall ms | CPU µs/msg | peak RSS MiB | idle RSS MiB | lost | dup |"
    );
    let _ = writeln!(
        md,
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    let empty = " |".repeat(13);
    for row in measured {
        let v = row.variant;
        let cells = match &row.drain {
            None if !row.built() => format!("not built{empty}"),
            None => empty.clone(),
            Some(Err(err)) => format!("{}{empty}", fail_cell(err)),
            Some(Ok(run)) => {
                let ratio = |value: f64, control: f64| {
                    if control > 0.0 {
                        format!("{:.2}", value / control)
                    } else {
                        String::new()
                    }
                };
                format!(
                    "{:.0} | {:.0}–{:.0} | {} | {:.0} | {:.0} | {:.0} | {} | {:.0} | {:.1} | {:.1} | {:.1} | {} | {}",
                    run.figures.rate,
                    run.rate_range.0,
                    run.rate_range.1,
                    control.map_or(String::new(), |c| ratio(run.figures.rate, c.figures.rate)),
                    run.figures.elapsed_us as f64 / 1e3,
                    run.to_last.as_secs_f64() * 1e3,
                    run.catch_up_rate(),
                    control.map_or(String::new(), |c| ratio(run.catch_up_rate(), c.catch_up_rate())),
                    run.wall.as_secs_f64() * 1e3,
                    run.cpu_us_per_msg(),
                    run.max_rss_kib as f64 / 1024.0,
                    run.idle_rss_kib as f64 / 1024.0,
                    run.lost(),
                    run.duplicates(),
                )
            }
        };
        let failed = match (&row.drain, row.drain_failures.len()) {
            (Some(Ok(_)), n) if n > 0 => format!(" **{n} round(s) FAILED**, see below"),
            _ => String::new(),
        };
        let _ = writeln!(md, "| {} | {} | {cells}{failed} |", v.name, v.stack);
    }
    for row in rows.iter().filter(|r| matches!(r.drain, Some(Ok(_)))) {
        for failure in &row.drain_failures {
            let _ = writeln!(
                md,
                "\n**{}** failed {}",
                row.variant.name,
                failure
                    .lines()
                    .collect::<Vec<_>>()
                    .join(" · ")
                    .replace('|', "/")
            );
        }
    }
    if let Some(rate) = drain_rows(rows)
        .map(|(_, run)| run.publish_rate)
        .reduce(f64::min)
    {
        let _ = writeln!(
            md,
            "\nThe backlog was queued at {rate:.0} msg/s or faster (the broker acknowledging the \
             publisher while nobody was connected); the drain itself involves no publisher."
        );
    }
    let _ = writeln!(md);
}

/// The drain targets of issue #15: every rumqttc variant ≥ 1.0× mosquitto_sub's drain rate;
/// peak RSS ≤ 15 MiB while draining.
fn drain_targets(rows: &[Row], out: &mut Vec<Target>) {
    let Some(control) = drain_control(rows) else {
        return;
    };
    let rumqttc: Vec<(&Row, &DrainRun)> = drain_rows(rows)
        .filter(|(r, _)| r.variant.stack.starts_with("rumqttc"))
        .collect();
    if !rumqttc.is_empty() {
        let cells: Vec<String> = rumqttc
            .iter()
            .map(|(row, run)| {
                format!(
                    "{} {:.2}× (start→last {:.2}×)",
                    row.variant.name,
                    run.figures.rate / control.figures.rate,
                    run.catch_up_rate() / control.catch_up_rate().max(f64::MIN_POSITIVE),
                )
            })
            .collect();
        let met = rumqttc
            .iter()
            .all(|(_, run)| run.figures.rate >= control.figures.rate);
        out.push(Target {
            name: "backlog drain: each rumqttc variant ≥ 1.0× mosquitto_sub -c (first→last rate)",
            result: format!(
                "mosquitto_sub {:.0} msg/s; {}",
                control.figures.rate,
                cells.join(", ")
            ),
            met: Some(met),
            why: why_drain_rate(rows),
        });
    }

    let mut over = Vec::new();
    let mut worst: Option<(u64, &str)> = None;
    for (row, run) in drain_rows(rows).filter(|(r, _)| r.is_rust()) {
        if worst.is_none_or(|(w, _)| run.max_rss_kib > w) {
            worst = Some((run.max_rss_kib, row.variant.name.as_str()));
        }
        if run.max_rss_kib > 15 * 1024 {
            over.push(format!(
                "{} {:.1} MiB",
                row.variant.name,
                run.max_rss_kib as f64 / 1024.0
            ));
        }
    }
    if let Some((rss, name)) = worst {
        out.push(Target {
            name: "backlog drain: peak RSS ≤ 15 MiB while draining",
            result: if over.is_empty() {
                format!("worst {:.1} MiB ({name})", rss as f64 / 1024.0)
            } else {
                format!("over: {}", over.join(", "))
            },
            met: Some(over.is_empty()),
            why: if over.is_empty() {
                String::new()
            } else {
                why_drain_rss(rows, control)
            },
        });
    }
}

/// What sets the drain rates, from the CPU each consumer spent per message in this run.
fn why_drain_rate(rows: &[Row]) -> String {
    let runs: Vec<(&Row, &DrainRun)> = drain_rows(rows).collect();
    // CPU time over the time from process start to the last message = how many cores the
    // consumer kept busy while it caught up (startup included): well below 1 means it was
    // waiting (for the broker, for a core on a loaded machine, or between its own threads).
    let busy = |run: &DrainRun| {
        run.cpu_us_per_msg() * run.backlog as f64 / (run.to_last.as_secs_f64() * 1e6).max(1.0)
    };
    let cells: Vec<String> = runs
        .iter()
        .map(|(r, run)| {
            format!(
                "{} {:.1} µs/msg, {:.2} cores",
                r.variant.name,
                run.cpu_us_per_msg(),
                busy(run),
            )
        })
        .collect();
    let mut why = format!(
        "CPU per message, and how many cores each kept busy from its start to its last message \
         (CPU time ÷ start→last; well below 1 = waiting, not computing): {}. On 2 cores shared \
         with the broker (single-threaded; it takes each message out of the session's queue \
         and encrypts it) and, in this run, with other work (load average in the header), the \
         consumer that needs the least CPU is not always the fastest. ",
        cells.join("; "),
    );
    let find =
        |pred: &dyn Fn(&Row) -> bool| runs.iter().find(|(r, _)| pred(r)).map(|(_, run)| *run);
    let base =
        find(&|r| r.variant.role == Role::Backlog && r.variant.stack.contains("rustls · tokio"));
    let tls = find(&|r| r.variant.name.ends_with("-rumqttc-native-tls"));
    if let (Some(tls), Some(base)) = (tls, base) {
        why.push_str(&format!(
            "native-tls drains at {:.2}× the rustls build of the same program and costs {:+.1} \
             µs/msg: {NATIVE_TLS_READS} ",
            tls.figures.rate / base.figures.rate,
            tls.cpu_us_per_msg() - base.cpu_us_per_msg(),
        ));
    }
    if let Some(blocking) = find(&|r| r.variant.name.ends_with("-rumqttc-blocking")) {
        why.push_str(&format!(
            "rumqttc-blocking keeps {:.2} cores busy: its connection thread runs rumqttc's \
             event loop through `block_on` once per event (with a timer each call, for Ctrl-C), \
             and the handler is another thread, so every message crosses threads on its way to \
             the handler and its ack on the way back — a wake-up each way. ",
            busy(blocking),
        ));
    }
    why.trim_end().to_owned()
}

/// Measured while adding the drain phase: `strace -f -c -p <pid>` on the draining process,
/// 20,000 messages (syscall counts do not depend on the build profile).
const NATIVE_TLS_READS: &str = "OpenSSL reads the stream record by record. Mosquitto writes \
    every PUBLISH as its own TLS record (~300 B); `SSL_read` returns at most one record, and \
    with read-ahead off (native-tls has no way to turn it on) OpenSSL fetches each record with \
    two `recv` calls, the 5-byte header and then the body, each through tokio's readiness \
    machinery: strace counted 40,063 `recvfrom` for 20,000 messages (2.0 per message) against \
    1,405 (0.07) for rustls, which reads up to 16 KiB — about 14 messages — per call. Both \
    builds then write every PUBACK with a syscall of its own (20,005 `sendto`, 18,815 \
    `writev`): rumqttc sends one queued request per event-loop turn. mosquitto_sub also reads \
    through OpenSSL record by record but without an async runtime in between.";

/// Why draining takes more than 15 MiB, from the peak and idle RSS of this run.
fn why_drain_rss(rows: &[Row], control: &DrainRun) -> String {
    let ack = queued_ack_bytes();
    let over: Vec<(&Row, &DrainRun)> = drain_rows(rows)
        .filter(|(r, run)| r.is_rust() && run.max_rss_kib > 15 * 1024)
        .collect();
    let mib = |kib: u64| kib as f64 / 1024.0;
    let mut why = String::new();
    let rumqttc: Vec<String> = over
        .iter()
        .filter(|(r, _)| r.variant.stack.starts_with("rumqttc"))
        .map(|(r, run)| {
            let excess = run.max_rss_kib.saturating_sub(run.idle_rss_kib);
            let all_acks = run.backlog * ack / 1024;
            let room = (15 * 1024u64).saturating_sub(run.idle_rss_kib);
            format!(
                "{} +{:.1} MiB over its idle {:.1} MiB, i.e. {:.0}% of the {:.1} MiB that all {} \
                 acks would take (the 15 MiB budget leaves room for {} queued acks)",
                r.variant.name,
                mib(excess),
                mib(run.idle_rss_kib),
                excess as f64 * 100.0 / all_acks.max(1) as f64,
                mib(all_acks),
                run.backlog,
                room * 1024 / ack.max(1),
            )
        })
        .collect();
    if !rumqttc.is_empty() {
        why.push_str(&format!(
            "rumqttc: Mosquitto 2.0.11 sends Receive Maximum more messages for every PUBACK, so \
             the backlog arrives ahead of our acks, and rumqttc 0.25 writes one queued ack per \
             event-loop turn while it reads up to 10 packets: the acks wait in its request \
             channel, {ack} B each, in a flume `VecDeque` that never shrinks (and, while it \
             doubles, holds its old and new buffer at once). {}. A broker that honoured our \
             Receive Maximum (128) would keep fewer than 128 acks queued. ",
            rumqttc.join("; "),
        ));
    }
    let paho: Vec<String> = over
        .iter()
        .filter(|(r, _)| r.variant.stack.starts_with("paho"))
        .map(|(r, run)| {
            let excess = run.max_rss_kib.saturating_sub(run.idle_rss_kib);
            format!(
                "{} +{:.1} MiB over its idle {:.1} MiB ({:.0} B per backlog message)",
                r.variant.name,
                mib(excess),
                mib(run.idle_rss_kib),
                excess as f64 * 1024.0 / run.backlog.max(1) as f64,
            )
        })
        .collect();
    if !paho.is_empty() {
        why.push_str(&format!(
            "Paho: the C core acks each message on receipt and hands it to paho-mqtt's unbounded \
             stream while the example waits for its SUBACK, so the backlog lands in process \
             memory (a bounded stream would drop messages already acked): {}. ",
            paho.join("; ")
        ));
    }
    why.push_str(&format!(
        "mosquitto_sub peaks at {:.1} MiB: libmosquitto acks each packet as it reads it, nothing \
         accumulates.",
        mib(control.max_rss_kib)
    ));
    why
}

fn size_cell(row: &Row) -> String {
    match row.size {
        Some((bytes, stripped)) => {
            format!(
                "{:.1}{}",
                bytes as f64 / MIB,
                if stripped { "" } else { " (unstripped)" }
            )
        }
        None => String::new(),
    }
}

/// `YYYY-MM-DD` for Unix seconds (UTC).
pub fn date(unix_secs: u64) -> String {
    let (y, m, d) = civil_from_days((unix_secs / 86_400) as i64);
    format!("{y:04}-{m:02}-{d:02}")
}

/// `YYYY-MM-DDTHH:MM:SSZ` for Unix seconds (UTC).
pub fn rfc3339(unix_secs: u64) -> String {
    let secs = unix_secs % 86_400;
    format!(
        "{}T{:02}:{:02}:{:02}Z",
        date(unix_secs),
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates() {
        assert_eq!(super::date(0), "1970-01-01");
        assert_eq!(super::rfc3339(1_709_210_096), "2024-02-29T12:34:56Z");
    }
}
