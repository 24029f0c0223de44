//! docs/src/copying.md says exactly which files make a consumer outside this repository; this
//! test follows it literally (issue #9).
//!
//! For every scenario the page lists it makes a fresh crate in a temporary directory, outside
//! the workspace: the scenario's `main.rs` as `src/main.rs`, the `common` files the page names
//! under `common/src/`, the two `Cargo.toml` files exactly as the page prints them, and this
//! repository's `Cargo.lock` (the page's optional step for the versions we test). Then
//! `cargo build --offline` (using only what the workspace already fetched), a check that the
//! build carries no demo broker, and — for `tls-connect` — a run against a real Mosquitto that
//! must deliver messages. A page that forgets a file, a dependency or a feature fails here.
//!
//! The copies share one target directory (`target/copy-test`) so the dependencies are compiled
//! once, not once per scenario; each crate is still built on its own from its own sources.

use std::path::{Path, PathBuf};
use std::process::Command;

use mosquitto_harness::ExampleProcess;
use scenario_tests::*;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the workspace")
        .to_path_buf()
}

/// The fenced block right after `<!-- copy-test: NAME -->` on the page.
fn block(page: &str, name: &str) -> String {
    let marker = format!("<!-- copy-test: {name} -->");
    let start = page
        .find(&marker)
        .unwrap_or_else(|| panic!("docs/src/copying.md has no {marker}"));
    let rest = &page[start + marker.len()..];
    let open = rest.find("```").expect("a fenced block after the marker");
    let body_start = open + rest[open..].find('\n').expect("fence line") + 1;
    let close = rest[body_start..].find("\n```").expect("closing fence") + body_start;
    rest[body_start..close + 1].to_owned()
}

fn cargo() -> Command {
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    // Not the workspace's settings: the copy is its own project.
    command.env_remove("CARGO_TARGET_DIR");
    command.env_remove("RUSTFLAGS");
    command
}

/// Makes the crate for `scenario` under `dir` as the page says.
fn make_copy(page: &str, scenario: &str, dir: &Path) {
    let root = workspace_root();
    std::fs::create_dir_all(dir.join("src")).expect("mkdir src");
    std::fs::create_dir_all(dir.join("common/src")).expect("mkdir common/src");
    std::fs::write(dir.join("Cargo.toml"), block(page, "consumer-cargo-toml")).expect("write");
    std::fs::write(
        dir.join("common/Cargo.toml"),
        block(page, "common-cargo-toml"),
    )
    .expect("write");
    std::fs::copy(
        root.join("examples").join(scenario).join("src/main.rs"),
        dir.join("src/main.rs"),
    )
    .expect("copy main.rs");
    for file in block(page, "common-files").split_whitespace() {
        std::fs::copy(
            root.join("common/src").join(file),
            dir.join("common/src").join(file),
        )
        .unwrap_or_else(|err| panic!("copying common/src/{file} named by the page: {err}"));
    }
    std::fs::copy(root.join("Cargo.lock"), dir.join("Cargo.lock")).expect("copy Cargo.lock");
}

#[test]
fn a_consumer_copied_as_docs_copying_md_says_builds_offline_and_runs() {
    let page = std::fs::read_to_string(workspace_root().join("docs/src/copying.md"))
        .expect("docs/src/copying.md");
    let scenarios: Vec<String> = block(&page, "scenarios")
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    assert!(
        scenarios.len() >= 6,
        "the page should cover the six scenarios: {scenarios:?}"
    );
    let target = workspace_root().join("target/copy-test");
    let scratch = tempfile::tempdir().expect("tempdir");
    for scenario in &scenarios {
        let dir = scratch.path().join(scenario);
        make_copy(&page, scenario, &dir);
        let output = cargo()
            .args(["build", "--offline", "--quiet"])
            .env("CARGO_TARGET_DIR", &target)
            .current_dir(&dir)
            .output()
            .expect("cargo build runs");
        assert!(
            output.status.success(),
            "the copy of {scenario} made as docs/src/copying.md says does not build:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let tree = cargo()
            .args(["tree", "--offline", "--prefix", "none", "-e", "normal"])
            .current_dir(&dir)
            .output()
            .expect("cargo tree runs");
        let tree = String::from_utf8_lossy(&tree.stdout);
        for absent in ["demo-broker", "mqtt5 "] {
            assert!(
                !tree.contains(absent),
                "the copy of {scenario} carries {absent}:\n{tree}"
            );
        }
        if scenario == "tls-connect" {
            runs_against_mosquitto(&target.join("debug/my-consumer"));
        }
        eprintln!("{scenario}: copied, built offline, no demo broker");
    }
}

/// The copied binary, with real (test) credentials, receives what is published.
fn runs_against_mosquitto(binary: &Path) {
    let fx = Fixture::new();
    let mut args = fx.args("copied-consumer");
    args.extend(["--count".to_owned(), "3".to_owned()]);
    let mut command = Command::new(binary);
    command
        .args(&args)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1");
    let mut consumer = ExampleProcess::spawn_command(command).expect("spawn the copy");
    expect_line(&consumer, "subscribed to");
    fx.publish(3);
    let status = expect_exit(&mut consumer);
    assert!(status.success(), "{status}:\n{}", consumer.transcript());
    assert_eq!(seqs(&consumer), vec![0, 1, 2], "{}", consumer.transcript());
}
