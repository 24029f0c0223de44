//! The verdict of each step, and the two ways of printing them (text for people, `--json` for
//! scripts).
//!
//! Why one [`StepReport`] type for every step: the text and the JSON must carry the same verdicts
//! (a test checks it), and a customer pasting the output into a support ticket should see the same
//! fields whichever step failed.

use std::fmt::Write as _;

use serde::Serialize;
use serde_json::Value;

use crate::texts::Advice;

/// How a step went.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// It works.
    Pass,
    /// It works, but something will bite later (an expiring certificate, no session kept…).
    Warn,
    /// It does not work; later steps that depend on it are skipped.
    Fail,
    /// Not run: an earlier step failed, or it was not asked for.
    Skipped,
}

impl Verdict {
    /// The mark in the text report.
    pub fn mark(self) -> &'static str {
        match self {
            Verdict::Pass => "✓",
            Verdict::Warn => "⚠",
            Verdict::Fail => "✗",
            Verdict::Skipped => "–",
        }
    }
}

/// One step's outcome: one line of the report, plus details and, for ✗/⚠, the advice.
#[derive(Clone, Debug, Serialize)]
pub struct StepReport {
    /// 1–10, the step's number in the issue and in the output.
    pub step: u8,
    /// Short name, stable for scripts: `credentials`, `dns`, `tcp`, `tls`, `connect`,
    /// `subscribe`, `session`, `takeover`, `first_message`, `cleanup`.
    pub name: &'static str,
    /// The verdict.
    pub verdict: Verdict,
    /// The measured figure(s), one line.
    pub summary: String,
    /// For ✗ and ⚠: what is wrong and what to do, in plain words, each with a stable id.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub advice: Vec<Advice>,
    /// Extra lines worth showing (the certificate chain, the broker's capabilities…).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<String>,
    /// The same measurements, structured, for `--json` readers.
    #[serde(skip_serializing_if = "Value::is_null")]
    pub data: Value,
    /// The library's or operating system's own words, for a bug report.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub library_error: Option<String>,
    /// The exit code this step's failure maps to (only for ✗).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<u8>,
}

impl StepReport {
    /// A step with the given verdict and summary and nothing else yet.
    pub fn new(step: u8, name: &'static str, verdict: Verdict, summary: impl Into<String>) -> Self {
        StepReport {
            step,
            name,
            verdict,
            summary: summary.into(),
            advice: Vec::new(),
            details: Vec::new(),
            data: Value::Null,
            library_error: None,
            exit_code: None,
        }
    }

    /// ✓ with a summary.
    pub fn pass(step: u8, name: &'static str, summary: impl Into<String>) -> Self {
        StepReport::new(step, name, Verdict::Pass, summary)
    }

    /// ⚠ with a summary and advice.
    pub fn warn(step: u8, name: &'static str, summary: impl Into<String>, advice: Advice) -> Self {
        StepReport::new(step, name, Verdict::Warn, summary).with_advice(advice)
    }

    /// ✗ with a summary, advice and the exit code the program ends with if this is the first ✗.
    pub fn fail(
        step: u8,
        name: &'static str,
        summary: impl Into<String>,
        advice: Advice,
        exit_code: u8,
    ) -> Self {
        let mut report = StepReport::new(step, name, Verdict::Fail, summary).with_advice(advice);
        report.exit_code = Some(exit_code);
        report
    }

    /// – with the reason it did not run.
    pub fn skipped(step: u8, name: &'static str, why: impl Into<String>) -> Self {
        StepReport::new(step, name, Verdict::Skipped, why)
    }

    /// Adds one paragraph of advice (cause and fix).
    pub fn with_advice(mut self, advice: Advice) -> Self {
        self.advice.push(advice);
        self
    }

    /// Adds a detail line.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.details.push(detail.into());
        self
    }

    /// Sets the structured data.
    pub fn with_data(mut self, data: Value) -> Self {
        self.data = data;
        self
    }

    /// Sets the library's own error text.
    pub fn with_library_error(mut self, text: impl Into<String>) -> Self {
        self.library_error = Some(text.into());
        self
    }

    /// Downgrades ✓ to ⚠ with advice (used when a later check in the same step finds a problem).
    pub fn add_warning(&mut self, advice: Advice) {
        if self.verdict == Verdict::Pass {
            self.verdict = Verdict::Warn;
        }
        self.advice.push(advice);
    }
}

/// The whole run: what was checked, every step, and the exit code.
#[derive(Debug, Serialize)]
pub struct Report {
    /// `host:port` as in the credentials, or `null` when they could not be read.
    pub broker: Option<String>,
    /// The client id doctor connected with (never the consumer's own unless asked).
    pub client_id: Option<String>,
    /// Every step in order, including skipped ones.
    pub steps: Vec<StepReport>,
    /// 0, or the exit code of the first ✗.
    pub exit_code: u8,
}

impl Report {
    /// The exit code: that of the first failed step, else 0.
    pub fn compute_exit_code(steps: &[StepReport]) -> u8 {
        steps
            .iter()
            .find(|step| step.verdict == Verdict::Fail)
            .map_or(0, |step| step.exit_code.unwrap_or(common::exit::FAILURE))
    }

    /// The first line of the text report.
    pub fn header_text(broker: &str, client_id: &str) -> String {
        format!("doctor: checking {broker} as client id \"{client_id}\"\n")
    }

    /// One step of the text report: its line, then details and advice indented below it.
    pub fn step_text(step: &StepReport) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} {:>2}. {:<14} {}",
            step.verdict.mark(),
            step.step,
            step.name,
            step.summary
        );
        for detail in &step.details {
            let _ = writeln!(out, "        {detail}");
        }
        for advice in &step.advice {
            let _ = writeln!(out, "      → {}", advice.text);
            let _ = writeln!(out, "        see {}", advice.see);
        }
        if let Some(error) = &step.library_error {
            if step.verdict == Verdict::Fail {
                let _ = writeln!(out, "        (library: {error})");
            }
        }
        out
    }

    /// The last line of the text report: the overall verdict.
    pub fn footer_text(&self) -> String {
        let failed = self.steps.iter().find(|s| s.verdict == Verdict::Fail);
        let warned = self
            .steps
            .iter()
            .filter(|s| s.verdict == Verdict::Warn)
            .count();
        match failed {
            Some(step) => format!(
                "doctor: ✗ step {} ({}) failed; exit code {}\n",
                step.step, step.name, self.exit_code
            ),
            None if warned > 0 => format!(
                "doctor: everything a consumer needs works, with {warned} warning(s) above\n"
            ),
            None => "doctor: everything a consumer needs works\n".to_owned(),
        }
    }
}
