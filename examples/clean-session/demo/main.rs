//! `cargo run -p clean-session` with no credentials: `clean-session` run twice with the demo publishing in between: the events published while it was down do NOT arrive, against a local demo broker.
//!
//! Only for a first run. Not part of what you copy: the program is `src/main.rs`, written for
//! real credentials. This launcher starts the embedded demo broker (a throwaway CA and password,
//! NOT Link Labs) and runs that program as child processes with `--creds` and `--ca-file`
//! pointing at the demo's files. With credentials (`--creds`, `MQTT_CREDS` or `./creds.json`) it
//! just runs the program with your arguments. `--variant NAME` runs another binary of this
//! package (e.g. `--variant rumqttc-blocking`). See crates/demo-broker/src/launcher.rs.

use std::time::Duration;

use demo_broker::launcher::{Plan, Runs};

fn main() -> std::process::ExitCode {
    demo_broker::launcher::main(Plan {
        package: "clean-session",
        manifest_dir: env!("CARGO_MANIFEST_DIR"),
        runs: Runs::RestartOnce {
            first_count: 5,
            down_for: Duration::from_secs(5),
        },
    })
}
