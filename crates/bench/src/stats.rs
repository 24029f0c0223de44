//! Reading a consumer's figures: the examples' `stats:` line, or mosquitto_sub's output.

/// What one consumer process received.
#[derive(Clone, Copy, Debug, Default)]
pub struct Figures {
    /// Messages received, duplicates included.
    pub received: u64,
    /// Distinct `seq` values.
    pub unique: u64,
    /// Receive rate from the first to the last message (msg/s).
    pub rate: f64,
    /// From the first to the last message received, µs (ms resolution for the examples, whose
    /// `stats:` line says `elapsed_ms`).
    pub elapsed_us: u64,
    /// When the last message arrived, Unix µs (mosquitto_sub only: its `%U` stamps; 0 for the
    /// examples, whose `stats:` line is stamped by the benchmark instead).
    pub last_unix_us: u64,
    /// End-to-end latency percentiles, µs (0 when the payload had no `sentAtUs`).
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

/// Parses `stats: received=N unique_seq=U elapsed_ms=E rate=R p50_us=… p99_us=… max_us=…`
/// (see `common/src/output.rs`). Unknown keys are ignored, so the line may grow.
pub fn parse_stats_line(line: &str) -> Option<Figures> {
    let rest = line.trim().strip_prefix("stats:")?;
    let mut figures = Figures::default();
    let mut seen_received = false;
    for pair in rest.split_whitespace() {
        let Some((key, value)) = pair.split_once('=') else {
            continue;
        };
        let int = || value.parse::<u64>().ok();
        match key {
            "received" => {
                figures.received = int()?;
                seen_received = true;
            }
            "unique_seq" => figures.unique = int()?,
            "rate" => figures.rate = value.parse().ok()?,
            "elapsed_ms" => figures.elapsed_us = int()?.saturating_mul(1000),
            "p50_us" => figures.p50_us = int()?,
            "p99_us" => figures.p99_us = int()?,
            "max_us" => figures.max_us = int()?,
            _ => {}
        }
    }
    seen_received.then_some(figures)
}

/// Figures from `mosquitto_sub -F '%U %p'` output: each line is the receive time
/// (`<secs>.<nanos>`, taken by mosquitto_sub itself) and the payload.
pub fn from_mosquitto_sub<'a>(lines: impl Iterator<Item = &'a str>) -> Figures {
    let mut seqs = std::collections::HashSet::new();
    let mut latencies = Vec::new();
    let mut received = 0u64;
    let (mut first, mut last) = (u64::MAX, 0u64);
    for line in lines {
        let Some((stamp, payload)) = line.split_once(' ') else {
            continue;
        };
        let Some(received_us) = parse_unix_stamp_us(stamp) else {
            continue;
        };
        received += 1;
        first = first.min(received_us);
        last = last.max(received_us);
        if let Ok(value) = serde_json::from_str::<serde_json::Value>(payload) {
            if let Some(seq) = value.get("seq").and_then(serde_json::Value::as_u64) {
                seqs.insert(seq);
            }
            if let Some(sent) = value.get("sentAtUs").and_then(serde_json::Value::as_u64) {
                latencies.push(received_us.saturating_sub(sent));
            }
        }
    }
    let rate = if received > 1 && last > first {
        (received - 1) as f64 / ((last - first) as f64 / 1e6)
    } else {
        0.0
    };
    latencies.sort_unstable();
    Figures {
        received,
        unique: seqs.len() as u64,
        rate,
        elapsed_us: last.saturating_sub(first),
        last_unix_us: last,
        p50_us: percentile(&latencies, 0.50),
        p99_us: percentile(&latencies, 0.99),
        max_us: percentile(&latencies, 1.0),
    }
}

/// `1795707034.624558204` → µs, without going through a float (which would lose the µs).
fn parse_unix_stamp_us(stamp: &str) -> Option<u64> {
    let (secs, frac) = stamp.split_once('.')?;
    let secs: u64 = secs.parse().ok()?;
    let micros: String = frac.chars().chain("000000".chars()).take(6).collect();
    Some(secs * 1_000_000 + micros.parse::<u64>().ok()?)
}

/// Nearest-rank percentile of sorted values, as `common::output` computes it.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let idx = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_examples_stats_line() {
        let f = parse_stats_line(
            "stats: received=10 unique_seq=9 elapsed_ms=5 rate=1800 p50_us=120 p99_us=900 max_us=1000",
        )
        .unwrap();
        assert_eq!(
            (f.received, f.unique, f.p50_us, f.p99_us, f.max_us),
            (10, 9, 120, 900, 1000)
        );
        assert_eq!(f.rate, 1800.0);
        assert_eq!(f.elapsed_us, 5000);
        assert!(parse_stats_line("progress: received=1").is_none());
    }

    #[test]
    fn mosquitto_sub_lines() {
        let lines = [
            r#"1000.000100 {"seq":1,"sentAtUs":1000000000}"#,
            r#"1000.500100 {"seq":2,"sentAtUs":1000500000}"#,
            r#"1001.000100000 {"seq":2,"sentAtUs":1000500000}"#,
        ];
        let f = from_mosquitto_sub(lines.into_iter());
        assert_eq!((f.received, f.unique), (3, 2));
        assert_eq!(f.p50_us, 100);
        assert_eq!(f.max_us, 500_100);
        assert!((f.rate - 2.0).abs() < 1e-9);
        assert_eq!(f.elapsed_us, 1_000_000);
    }
}
