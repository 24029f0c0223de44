//! `cargo run -p client-id-collision` with no credentials: two processes of `client-id-collision` with the SAME client id: one of them detects the collision and stops with exit code 6, against a local demo broker.
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
        package: "client-id-collision",
        manifest_dir: env!("CARGO_MANIFEST_DIR"),
        runs: Runs::SameIdTwice {
            stagger: Duration::from_secs(2),
        },
    })
}
