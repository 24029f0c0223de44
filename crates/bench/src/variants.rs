//! THE table of what is measured: every variant, its binary, and the extra arguments it gets.
//!
//! Add a scenario, a matrix column or an expected binary here; nothing else in the benchmark
//! names binaries. A row whose binary is not built is reported as "not built" — except under
//! `--quick` when the row is in `EXPECTED`, which fails the run (CI must notice a variant
//! silently dropping out of the build).

/// What a row is measured for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A consumer: throughput, latency, footprint, reconnect after a broker restart.
    Consumer,
    /// `shared-subscription`: k = 1, 2, 4 processes in one group.
    Shared,
    /// `client-id-collision`: two processes with one client id.
    Takeover,
    /// `persistent-session`: the backlog published while it was away arrives after a broker
    /// restart.
    Backlog,
}

/// How the program is started and how its figures are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A binary of this workspace taking `common::ConnectArgs` (`--creds`, `--ca-file`,
    /// `--client-id`, `--count`, `--stats`), which prints one `stats:` line at exit.
    Example,
    /// Mosquitto's own C client, the outside control: `-C N -F '%U %p'`, figures computed by the
    /// benchmark from its output.
    MosquittoSub,
}

/// One row.
#[derive(Clone, Debug)]
pub struct Variant {
    /// The row label (the binary name for examples).
    pub name: String,
    /// Binary name (workspace binary, or a program on PATH for [`Kind::MosquittoSub`]).
    pub binary: String,
    /// Library · TLS · runtime, for the reader.
    pub stack: &'static str,
    /// Arguments added after the common ones.
    pub extra_args: Vec<&'static str>,
    /// Also measure the takeover against the embedded demo broker, which sends DISCONNECT 0x8E
    /// (only the base `client-id-collision` has a demo mode with two connections).
    pub demo_takeover: bool,
    pub kind: Kind,
    pub role: Role,
    /// Must be built and measured under `--quick` (CI).
    pub expected: bool,
}

/// One scenario package measured across the matrix.
struct Scenario {
    /// Package name = its base binary; variants are `<package><suffix>`.
    package: &'static str,
    role: Role,
    /// Arguments every binary of the scenario gets.
    args: &'static [&'static str],
    /// Arguments only the base binary gets (it shows more than one mode; the variants are the
    /// production shape only).
    base_args: &'static [&'static str],
}

/// The scenario packages measured.
const SCENARIOS: &[Scenario] = &[
    // The headline consumer: throughput, latency, footprint, reconnect.
    Scenario {
        package: "tls-connect",
        role: Role::Consumer,
        args: &[],
        base_args: &[],
    },
    // One worker per process (the production pattern), 2 ms of simulated I/O per message.
    Scenario {
        package: "shared-subscription",
        role: Role::Shared,
        args: &["--work-ms", "2", "--group", "bench"],
        base_args: &[],
    },
    // One connection per process; two processes share an id.
    Scenario {
        package: "client-id-collision",
        role: Role::Takeover,
        args: &[],
        base_args: &[],
    },
    Scenario {
        package: "persistent-session",
        role: Role::Backlog,
        args: &["--session-expiry", "600"],
        base_args: &[],
    },
];

/// The library/runtime matrix (issue #4): binary suffix, and what it is built on. A scenario's
/// variant `<scenario><suffix>` is measured when it is built.
const MATRIX: &[(&str, &str)] = &[
    ("", "rumqttc 0.25 · rustls · tokio"),
    (
        "-rumqttc-native-tls",
        "rumqttc 0.25 · native-tls (OpenSSL) · tokio",
    ),
    (
        "-rumqttc-blocking",
        "rumqttc 0.25 · rustls · blocking threads",
    ),
    (
        "-paho-async-std",
        "paho-mqtt 0.14 (Paho C) · OpenSSL · async-std",
    ),
    ("-paho-smol", "paho-mqtt 0.14 (Paho C) · OpenSSL · smol"),
    ("-paho-tokio", "paho-mqtt 0.14 (Paho C) · OpenSSL · tokio"),
];

/// The binaries committed in this repository: under `--quick` (CI) each must be built and
/// measured, so a variant silently dropping out of the build fails the run. Others in the matrix
/// are reported as "not built".
const EXPECTED: &[&str] = &[
    "tls-connect",
    "tls-connect-rumqttc-native-tls",
    "tls-connect-rumqttc-blocking",
    "tls-connect-paho-async-std",
    "tls-connect-paho-smol",
    "tls-connect-paho-tokio",
    "mosquitto_sub",
    "shared-subscription",
    "shared-subscription-rumqttc-native-tls",
    "shared-subscription-rumqttc-blocking",
    "shared-subscription-paho-async-std",
    "shared-subscription-paho-smol",
    "shared-subscription-paho-tokio",
    "client-id-collision",
    "client-id-collision-rumqttc-native-tls",
    "client-id-collision-rumqttc-blocking",
    "client-id-collision-paho-async-std",
    "client-id-collision-paho-smol",
    "client-id-collision-paho-tokio",
    "persistent-session",
    "persistent-session-rumqttc-native-tls",
    "persistent-session-rumqttc-blocking",
    "persistent-session-paho-async-std",
    "persistent-session-paho-smol",
    "persistent-session-paho-tokio",
];

/// Every row, in report order: each scenario across the matrix, the control after the
/// consumers.
pub fn all() -> Vec<Variant> {
    let mut rows = Vec::new();
    for scenario in SCENARIOS {
        for (suffix, stack) in MATRIX {
            let binary = format!("{}{suffix}", scenario.package);
            let base = suffix.is_empty();
            let mut extra_args = scenario.args.to_vec();
            if base {
                extra_args.extend_from_slice(scenario.base_args);
            }
            rows.push(Variant {
                name: binary.clone(),
                expected: EXPECTED.contains(&binary.as_str()),
                binary,
                stack,
                extra_args,
                demo_takeover: base && scenario.role == Role::Takeover,
                kind: Kind::Example,
                role: scenario.role,
            });
        }
        if scenario.role == Role::Consumer {
            // The outside control: not ours, C, libmosquitto, acks on receipt.
            rows.push(Variant {
                name: "mosquitto_sub (C, control)".into(),
                binary: "mosquitto_sub".into(),
                stack: "libmosquitto 2.0 · OpenSSL · C",
                extra_args: Vec::new(),
                demo_takeover: false,
                kind: Kind::MosquittoSub,
                role: Role::Consumer,
                expected: EXPECTED.contains(&"mosquitto_sub"),
            });
        }
    }
    rows
}

/// The line a takeover variant prints when it has recognised the collision.
pub const TAKEOVER_REPORT: &str = "client id collision detected";

#[cfg(test)]
mod tests {
    #[test]
    fn every_expected_binary_is_a_row() {
        let rows = super::all();
        for expected in super::EXPECTED {
            assert!(
                rows.iter().any(|r| r.binary == *expected),
                "{expected} is expected but not in the matrix"
            );
        }
    }
}
