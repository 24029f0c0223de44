//! Showing received messages: each one for a human, or one summary line for a benchmark.
//!
//! Printing every event is what a newcomer wants to see; it is also the slowest thing an example
//! does. With `--stats` the examples print nothing per message and one `stats:` line at the end,
//! which the benchmark (`crates/bench`) parses: count, unique `seq` values, rate, and — when the
//! payload carries the publisher's clock as `"sentAtUs"` — end-to-end latency.

use std::collections::HashSet;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Prints messages, or collects statistics about them.
#[derive(Debug)]
pub struct MessagePrinter {
    stats_only: bool,
    received: u64,
    first_at: Option<Instant>,
    last_at: Option<Instant>,
    seqs: HashSet<u64>,
    latencies_us: Vec<u64>,
}

impl MessagePrinter {
    /// `stats_only` comes from `--stats`.
    pub fn new(stats_only: bool) -> Self {
        MessagePrinter {
            stats_only,
            received: 0,
            first_at: None,
            last_at: None,
            seqs: HashSet::new(),
            latencies_us: Vec::new(),
        }
    }

    /// Shows (or counts) one message. `label` is what the example wants to say about it, for
    /// example `message 7 on airfinder/…`.
    pub fn show(&mut self, label: &str, payload: &[u8]) {
        let now = Instant::now();
        self.first_at.get_or_insert(now);
        self.last_at = Some(now);
        self.received += 1;
        if !self.stats_only {
            println!("{label}");
            println!("{}", crate::payload::pretty(payload));
            return;
        }
        if let Ok(value) = serde_json::from_slice::<serde_json::Value>(payload) {
            if let Some(seq) = value.get("seq").and_then(serde_json::Value::as_u64) {
                self.seqs.insert(seq);
            }
            if let Some(sent) = value.get("sentAtUs").and_then(serde_json::Value::as_u64) {
                let now_us = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_micros() as u64);
                self.latencies_us.push(now_us.saturating_sub(sent));
            }
        }
    }

    /// With `--stats`, prints the summary line:
    /// `stats: received=N unique_seq=U elapsed_ms=E rate=R p50_us=… p99_us=… max_us=…`.
    pub fn finish(&mut self) {
        if !self.stats_only {
            return;
        }
        let elapsed = match (self.first_at, self.last_at) {
            (Some(first), Some(last)) => last.duration_since(first),
            _ => Default::default(),
        };
        let rate = if elapsed.as_secs_f64() > 0.0 {
            (self.received.saturating_sub(1)) as f64 / elapsed.as_secs_f64()
        } else {
            0.0
        };
        self.latencies_us.sort_unstable();
        let pct = |p: f64| -> u64 {
            if self.latencies_us.is_empty() {
                return 0;
            }
            let idx = ((self.latencies_us.len() - 1) as f64 * p).round() as usize;
            self.latencies_us[idx]
        };
        println!(
            "stats: received={} unique_seq={} elapsed_ms={} rate={:.0} p50_us={} p99_us={} max_us={}",
            self.received,
            self.seqs.len(),
            elapsed.as_millis(),
            rate,
            pct(0.50),
            pct(0.99),
            pct(1.0),
        );
    }
}
