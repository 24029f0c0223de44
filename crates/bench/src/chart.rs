//! `docs/benchmarks.svg`: throughput and latency per consumer variant, side by side; below them
//! the backlog drain of the persistent-session variants and mosquitto_sub.

use std::path::Path;

use anyhow::anyhow;
use plotters::prelude::*;

use crate::report::Row;
use crate::variants::Role;

struct Bar {
    name: String,
    /// Throughput rounds behind `rate` (its median).
    runs: usize,
    rate: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// One variant's backlog drain.
struct DrainBar {
    name: String,
    runs: usize,
    /// First to last message (msg/s).
    rate: f64,
    /// Process start to last message (msg/s).
    catch_up_rate: f64,
}

/// Draws two horizontal bar charts: receive rate (msg/s), and end-to-end latency at the fixed
/// rate (p99 bar with the p50 bar over it); below them, when measured, the backlog drain.
pub fn write_svg(path: &Path, rows: &[Row]) -> anyhow::Result<()> {
    let bars: Vec<Bar> = rows
        .iter()
        .filter(|r| r.variant.role == Role::Consumer)
        .filter_map(|r| {
            let tp = r.throughput.as_ref()?.as_ref().ok()?;
            let lat = r.latency.as_ref().and_then(|l| l.as_ref().ok());
            Some(Bar {
                name: r.variant.name.to_owned(),
                runs: tp.runs,
                rate: tp.figures.rate,
                p50_ms: lat.map_or(0.0, |l| l.figures.p50_us as f64 / 1000.0),
                p99_ms: lat.map_or(0.0, |l| l.figures.p99_us as f64 / 1000.0),
            })
        })
        .collect();
    let drains: Vec<DrainBar> = rows
        .iter()
        .filter_map(|r| {
            let run = r.drain.as_ref()?.as_ref().ok()?;
            Some(DrainBar {
                name: r.variant.name.to_owned(),
                runs: run.runs,
                rate: run.figures.rate,
                catch_up_rate: run.catch_up_rate(),
            })
        })
        .collect();
    if bars.is_empty() && drains.is_empty() {
        return Err(anyhow!("nothing measured to chart"));
    }
    draw(path, &bars, &drains).map_err(|err| anyhow!("drawing {}: {err}", path.display()))
}

type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;

/// Height of a panel of `n` bars (0 when empty).
fn panel_height(n: usize) -> u32 {
    if n == 0 {
        0
    } else {
        90 + 46 * n as u32
    }
}

fn draw(path: &Path, bars: &[Bar], drains: &[DrainBar]) -> Result<(), Box<dyn std::error::Error>> {
    let top = panel_height(bars.len());
    let height = top + panel_height(drains.len());
    let root = SVGBackend::new(path, (1200, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let (upper, lower) = root.split_vertically(top);
    if !bars.is_empty() {
        draw_consumers(&upper, bars)?;
    }
    if !drains.is_empty() {
        draw_drain(&lower, drains)?;
    }
    root.present()?;
    Ok(())
}

/// The backlog drain: first-to-last rate (wide bar) with the start-to-last rate over it.
fn draw_drain(area: &Area, bars: &[DrainBar]) -> Result<(), Box<dyn std::error::Error>> {
    let n = bars.len();
    let slot = |i: usize| n - 1 - i;
    let names: Vec<String> = bars.iter().rev().map(|b| b.name.clone()).collect();
    let label = |v: &SegmentValue<usize>| match v {
        SegmentValue::CenterOf(i) => names.get(*i).cloned().unwrap_or_default(),
        _ => String::new(),
    };
    let rows = || (0..(n - 1).max(1)).into_segmented();
    let max_rate = bars
        .iter()
        .map(|b| b.rate.max(b.catch_up_rate))
        .fold(1.0, f64::max)
        * 1.25;
    let runs = bars.iter().map(|b| b.runs).max().unwrap_or(1);
    let caption = format!(
        "Backlog drain, QoS 1, ~250 B, queued while the consumer was down (msg/s{})",
        if runs > 1 {
            format!(", median of {runs}")
        } else {
            String::new()
        }
    );
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(250)
        .build_cartesian_2d(0.0..max_rate, rows())?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .light_line_style(WHITE)
        .y_labels(n)
        .y_label_formatter(&label)
        .x_label_formatter(&|v| format!("{:.0}k", v / 1000.0))
        .draw()?;
    let wide = RGBColor(150, 180, 220);
    let narrow = RGBColor(52, 101, 164);
    chart
        .draw_series(bars.iter().enumerate().map(|(i, b)| {
            let mut bar = Rectangle::new(
                [
                    (0.0, SegmentValue::Exact(slot(i))),
                    (b.rate, SegmentValue::Exact(slot(i) + 1)),
                ],
                wide.filled(),
            );
            bar.set_margin(6, 6, 0, 0);
            bar
        }))?
        .label("first → last message")
        .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], wide.filled()));
    chart
        .draw_series(bars.iter().enumerate().map(|(i, b)| {
            let mut bar = Rectangle::new(
                [
                    (0.0, SegmentValue::Exact(slot(i))),
                    (b.catch_up_rate, SegmentValue::Exact(slot(i) + 1)),
                ],
                narrow.filled(),
            );
            bar.set_margin(14, 14, 0, 0);
            bar
        }))?
        .label("process start → last message")
        .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], narrow.filled()));
    chart.draw_series(bars.iter().enumerate().map(|(i, b)| {
        Text::new(
            format!("{:.0} / {:.0}", b.rate, b.catch_up_rate),
            (b.rate.max(b.catch_up_rate), SegmentValue::CenterOf(slot(i))),
            ("sans-serif", 13),
        )
    }))?;
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()?;
    Ok(())
}

fn draw_consumers(root: &Area, bars: &[Bar]) -> Result<(), Box<dyn std::error::Error>> {
    let n = bars.len();
    let (left, right) = root.split_horizontally(620);
    // Row i is drawn at slot n-1-i so that the first variant of the table is on top.
    let slot = |i: usize| n - 1 - i;
    let names: Vec<String> = bars.iter().rev().map(|b| b.name.clone()).collect();
    let label = |v: &SegmentValue<usize>| match v {
        SegmentValue::CenterOf(i) => names.get(*i).cloned().unwrap_or_default(),
        _ => String::new(),
    };
    // A segmented range 0..m has m + 1 segments; a single row still needs 0..1.
    let rows = || (0..(n - 1).max(1)).into_segmented();

    let max_rate = bars.iter().map(|b| b.rate).fold(1.0, f64::max) * 1.12;
    let runs = bars.iter().map(|b| b.runs).max().unwrap_or(1);
    let caption = if runs > 1 {
        format!("Throughput, QoS 1, ~250 B (msg/s, median of {runs})")
    } else {
        "Throughput, QoS 1, ~250 B (msg/s)".to_owned()
    };
    let mut chart = ChartBuilder::on(&left)
        .caption(caption, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(250)
        .build_cartesian_2d(0.0..max_rate, rows())?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .light_line_style(WHITE)
        .y_labels(n)
        .y_label_formatter(&label)
        .x_label_formatter(&|v| format!("{:.0}k", v / 1000.0))
        .draw()?;
    chart.draw_series(bars.iter().enumerate().map(|(i, b)| {
        let mut bar = Rectangle::new(
            [
                (0.0, SegmentValue::Exact(slot(i))),
                (b.rate, SegmentValue::Exact(slot(i) + 1)),
            ],
            RGBColor(52, 101, 164).filled(),
        );
        bar.set_margin(8, 8, 0, 0);
        bar
    }))?;
    chart.draw_series(bars.iter().enumerate().map(|(i, b)| {
        Text::new(
            format!("{:.0}", b.rate),
            (b.rate, SegmentValue::CenterOf(slot(i))),
            ("sans-serif", 13),
        )
    }))?;

    let max_ms = bars.iter().map(|b| b.p99_ms).fold(0.5, f64::max) * 1.45;
    let mut chart = ChartBuilder::on(&right)
        .caption(
            "End-to-end latency at 1,000 msg/s, p50 / p99 (ms)",
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(10)
        .build_cartesian_2d(0.0..max_ms, rows())?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .light_line_style(WHITE)
        .y_labels(n)
        .y_label_formatter(&|_| String::new())
        .draw()?;
    chart
        .draw_series(bars.iter().enumerate().map(|(i, b)| {
            let mut bar = Rectangle::new(
                [
                    (0.0, SegmentValue::Exact(slot(i))),
                    (b.p99_ms, SegmentValue::Exact(slot(i) + 1)),
                ],
                RGBColor(245, 170, 90).filled(),
            );
            bar.set_margin(8, 8, 0, 0);
            bar
        }))?
        .label("p99")
        .legend(|(x, y)| {
            Rectangle::new(
                [(x, y - 5), (x + 14, y + 5)],
                RGBColor(245, 170, 90).filled(),
            )
        });
    chart
        .draw_series(bars.iter().enumerate().map(|(i, b)| {
            let mut bar = Rectangle::new(
                [
                    (0.0, SegmentValue::Exact(slot(i))),
                    (b.p50_ms, SegmentValue::Exact(slot(i) + 1)),
                ],
                RGBColor(196, 80, 40).filled(),
            );
            bar.set_margin(8, 8, 0, 0);
            bar
        }))?
        .label("p50")
        .legend(|(x, y)| {
            Rectangle::new(
                [(x, y - 5), (x + 14, y + 5)],
                RGBColor(196, 80, 40).filled(),
            )
        });
    chart.draw_series(bars.iter().enumerate().map(|(i, b)| {
        Text::new(
            format!("{:.2} / {:.2}", b.p50_ms, b.p99_ms),
            (b.p99_ms, SegmentValue::CenterOf(slot(i))),
            ("sans-serif", 13),
        )
    }))?;
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn draws_every_variant() {
        let bars: Vec<super::Bar> = ["first", "second", "third"]
            .iter()
            .enumerate()
            .map(|(i, name)| super::Bar {
                name: (*name).to_owned(),
                runs: 3,
                rate: 10_000.0 * (i + 1) as f64,
                p50_ms: 0.3,
                p99_ms: 1.0 + i as f64,
            })
            .collect();
        let drains = vec![super::DrainBar {
            name: "drainer".to_owned(),
            runs: 3,
            rate: 90_000.0,
            catch_up_rate: 61_000.0,
        }];
        let path = std::env::temp_dir().join("bench-chart-test.svg");
        super::draw(&path, &bars, &drains).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        for name in [
            "first",
            "second",
            "third",
            "30000",
            "p99",
            "drainer",
            "90000 / 61000",
        ] {
            assert!(svg.contains(name), "{name} missing");
        }
        // One variant alone (e.g. `--only`) still draws; so does either panel alone.
        super::draw(&path, &bars[..1], &[]).unwrap();
        assert!(std::fs::read_to_string(&path).unwrap().contains("first"));
        super::draw(&path, &[], &drains).unwrap();
        assert!(std::fs::read_to_string(&path).unwrap().contains("drainer"));
    }
}
