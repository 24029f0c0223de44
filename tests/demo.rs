//! The first-run demo: `cargo run -p <scenario>` with no credentials runs the scenario's demo
//! launcher (`<scenario>-demo`, the package's `default-run`), which starts the embedded demo broker
//! and runs the real program as child processes (issue #9: `main.rs` carries no demo).
//!
//! What a newcomer must see on the first run, per scenario, and that the launcher steps aside
//! when there are credentials. The launchers run from an empty working directory (no
//! `./creds.json`) with `CARGO` removed from their environment, so they use the binaries the test
//! build made instead of building them.

use std::collections::BTreeSet;

use mosquitto_harness::ExampleProcess;
use scenario_tests::*;

/// A launcher started in an empty directory with `args`.
fn demo(scenario: &str, args: &[&str]) -> (tempfile::TempDir, ExampleProcess) {
    let cwd = tempfile::tempdir().expect("tempdir");
    let mut command = mosquitto_harness::example_command(&format!("{scenario}-demo"));
    command
        .current_dir(cwd.path())
        .env_remove("CARGO")
        .args(args);
    let process = ExampleProcess::spawn_command(command).expect("spawn");
    (cwd, process)
}

fn is_message_line(line: &str) -> bool {
    let rest = match line.strip_prefix('[') {
        Some(rest) => rest.split_once("] ").map_or("", |(_, rest)| rest),
        None => line,
    };
    rest.starts_with("message ") && rest.contains(" on ")
}

/// Waits for the launcher's exit and checks it succeeded, showed the banner and did not panic.
fn expect_success(process: &mut ExampleProcess) -> String {
    let status = expect_exit(process);
    let transcript = process.transcript();
    assert!(status.success(), "{status}:\n{transcript}");
    assert!(transcript.contains("DEMO BROKER"), "{transcript}");
    assert!(!transcript.contains("panicked"), "{transcript}");
    transcript
}

#[test]
fn tls_connect_demo_delivers_events() {
    let (_cwd, mut process) = demo("tls-connect", &["--count", "3"]);
    let transcript = expect_success(&mut process);
    assert_eq!(process.count_lines(is_message_line), 3, "{transcript}");
    assert!(process.stdout().contains("\"eventType\""), "{transcript}");
}

#[test]
fn every_tls_connect_variant_runs_in_the_demo() {
    // Variants are picked with --variant; the Paho ones only when built (feature `paho`).
    for variant in [
        "rumqttc-blocking",
        "rumqttc-native-tls",
        "paho-tokio",
        "paho-smol",
        "paho-async-std",
    ] {
        let bin = format!("tls-connect-{variant}");
        if !mosquitto_harness::example_bin(&bin).exists() {
            eprintln!("skipped: {bin} is not built (its feature is off)");
            continue;
        }
        let (_cwd, mut process) = demo("tls-connect", &["--variant", variant, "--count", "3"]);
        let transcript = expect_success(&mut process);
        assert_eq!(
            process.count_lines(is_message_line),
            3,
            "{bin}:\n{transcript}"
        );
    }
}

#[test]
fn with_credentials_the_launcher_runs_the_program_as_given() {
    let (_cwd, mut process) = demo("tls-connect", &["--creds", "/nonexistent/creds.json"]);
    expect_failure(&mut process, 3, &["/nonexistent/creds.json does not exist"]);
    assert!(!process.transcript().contains("DEMO"));
}

#[test]
fn the_program_itself_has_no_demo_and_says_where_credentials_come_from() {
    let cwd = tempfile::tempdir().expect("tempdir");
    let mut command = mosquitto_harness::example_command("tls-connect");
    command.current_dir(cwd.path());
    let mut process = ExampleProcess::spawn_command(command).expect("spawn");
    expect_failure(
        &mut process,
        3,
        &["creds.json does not exist", "Copy All Fields"],
    );
    assert!(!process.transcript().contains("DEMO"));
}

#[test]
fn shared_subscription_demo_is_three_processes_splitting_the_stream() {
    let (_cwd, mut process) = demo("shared-subscription", &["--count", "9"]);
    let transcript = expect_success(&mut process);
    // --count is split: 3 per member, 9 in all, every member handled its part.
    assert_eq!(process.count_lines(is_message_line), 9, "{transcript}");
    let handlers: BTreeSet<String> = process
        .stdout()
        .lines()
        .filter(|l| is_message_line(l))
        .filter_map(|l| l.split(']').next().map(str::to_owned))
        .collect();
    assert_eq!(
        handlers,
        BTreeSet::from([
            "[demo-consumer-1".to_owned(),
            "[demo-consumer-2".to_owned(),
            "[demo-consumer-3".to_owned()
        ]),
        "not three members with their own client ids:\n{transcript}"
    );
    let tally = process
        .stderr()
        .lines()
        .rev()
        .find(|l| l.contains("tally: 9 handled:"))
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("no final tally:\n{transcript}"));
    for member in 1..=3 {
        assert!(tally.contains(&format!("member {member}=3")), "{tally}");
    }
    // Three processes: three different pids logged their own lines.
    eprintln!("demo: {tally}");
}

/// The demo's `seq` numbers printed by run 1 and run 2 of a restart demo.
fn runs(process: &ExampleProcess) -> (Vec<u64>, Vec<u64>) {
    let all = seqs(process);
    // Run 1 stops after 5 messages; whatever follows is run 2.
    let (first, second) = all.split_at(all.len().min(5));
    (first.to_vec(), second.to_vec())
}

#[test]
fn persistent_session_demo_gets_the_backlog_after_a_restart() {
    let (_cwd, mut process) = demo("persistent-session", &["--count", "30"]);
    let transcript = expect_success(&mut process);
    let (first, second) = runs(&process);
    assert_eq!(first.len(), 5, "{transcript}");
    assert_eq!(second.len(), 30, "{transcript}");
    // Nothing published while it was down is missing: run 2 continues where run 1 stopped.
    assert_eq!(
        second[0],
        first[4] + 1,
        "the backlog did not arrive:\n{transcript}"
    );
    assert!(transcript.contains("session present: true"), "{transcript}");
}

#[test]
fn clean_session_demo_drops_the_backlog() {
    let (_cwd, mut process) = demo("clean-session", &["--count", "3"]);
    let transcript = expect_success(&mut process);
    let (first, second) = runs(&process);
    assert_eq!(first.len(), 5, "{transcript}");
    assert_eq!(second.len(), 3, "{transcript}");
    // The demo published ~25 events in the 5 s it was down (5 a second): none of them arrived.
    assert!(
        second[0] > first[4] + 5,
        "events published while down arrived anyway:\n{transcript}"
    );
}

#[test]
fn qos1_demo_processes_and_summarises() {
    let (_cwd, mut process) = demo("qos1-at-least-once", &["--count", "3"]);
    expect_success(&mut process);
    expect_line(&process, "summary: 3 processed, 0 duplicates skipped");
}

#[test]
fn client_id_collision_demo_is_two_processes_and_one_stops_with_6() {
    // The embedded demo broker sends DISCONNECT 0x8E (rumqttc 0.25.1 reports it as a closed
    // connection): either way one of the two processes must detect the collision and stop.
    let (_cwd, mut process) = demo("client-id-collision", &[]);
    expect_failure(
        &mut process,
        6,
        &[IN_USE_WORDS, "demo-consumer", "--instance"],
    );
    let transcript = process.transcript();
    assert!(transcript.contains("DEMO BROKER"), "{transcript}");
    assert!(transcript.contains("keeps the client id"), "{transcript}");
}

/// What client-id-collision says when it stops (tests/client_id_collision.rs checks the rest).
const IN_USE_WORDS: &str = "is used by another";

#[test]
fn store_events_demo_fills_events_db() {
    let (cwd, mut process) = demo("store-events", &["--count", "3"]);
    let transcript = expect_success(&mut process);
    assert!(
        cwd.path().join("events.db").exists(),
        "no events.db:\n{transcript}"
    );
}
