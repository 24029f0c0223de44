//! THE table of what is measured: every variant, its binary, and the extra arguments it gets.
//!
//! Add a row here when a new example or library/runtime variant lands; nothing else in the
//! benchmark names binaries. A row whose binary is not built is reported as "not built" — except
//! under `--quick` when the row is `expected`, which fails the run (CI must notice a variant
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
#[derive(Clone, Copy, Debug)]
pub struct Variant {
    /// The row label.
    pub name: &'static str,
    /// Binary name (workspace binary, or a program on PATH for [`Kind::MosquittoSub`]).
    pub binary: &'static str,
    /// Library · TLS · runtime, for the reader.
    pub stack: &'static str,
    /// Arguments added after the common ones.
    pub extra_args: &'static [&'static str],
    pub kind: Kind,
    pub role: Role,
    /// Must be built and measured under `--quick` (CI).
    pub expected: bool,
}

const fn example(
    name: &'static str,
    stack: &'static str,
    extra_args: &'static [&'static str],
    role: Role,
) -> Variant {
    Variant {
        name,
        binary: name,
        stack,
        extra_args,
        kind: Kind::Example,
        role,
        expected: true,
    }
}

/// Every row, in report order.
pub const VARIANTS: &[Variant] = &[
    // The library/runtime matrix of the headline consumer (examples/tls-connect, issue #4).
    example(
        "tls-connect",
        "rumqttc 0.25 · rustls · tokio",
        &[],
        Role::Consumer,
    ),
    example(
        "tls-connect-rumqttc-native-tls",
        "rumqttc 0.25 · native-tls (OpenSSL) · tokio",
        &[],
        Role::Consumer,
    ),
    example(
        "tls-connect-rumqttc-blocking",
        "rumqttc 0.25 · rustls · blocking threads",
        &[],
        Role::Consumer,
    ),
    example(
        "tls-connect-paho-async-std",
        "paho-mqtt 0.14 (Paho C) · OpenSSL · async-std",
        &[],
        Role::Consumer,
    ),
    example(
        "tls-connect-paho-smol",
        "paho-mqtt 0.14 (Paho C) · OpenSSL · smol",
        &[],
        Role::Consumer,
    ),
    example(
        "tls-connect-paho-tokio",
        "paho-mqtt 0.14 (Paho C) · OpenSSL · tokio",
        &[],
        Role::Consumer,
    ),
    // The outside control: not ours, C, libmosquitto, acks on receipt.
    Variant {
        name: "mosquitto_sub (C, control)",
        binary: "mosquitto_sub",
        stack: "libmosquitto 2.0 · OpenSSL · C",
        extra_args: &[],
        kind: Kind::MosquittoSub,
        role: Role::Consumer,
        expected: true,
    },
    // One worker per process (the production pattern), 2 ms of simulated I/O per message.
    example(
        "shared-subscription",
        "rumqttc 0.25 · rustls · tokio",
        &["--work-ms", "2", "--group", "bench", "--workers", "1"],
        Role::Shared,
    ),
    example(
        "client-id-collision",
        "rumqttc 0.25 · rustls · tokio",
        &["--single"],
        Role::Takeover,
    ),
    example(
        "persistent-session",
        "rumqttc 0.25 · rustls · tokio",
        &["--session-expiry", "600"],
        Role::Backlog,
    ),
];

/// The line a takeover variant prints when it has recognised the collision.
pub const TAKEOVER_REPORT: &str = "client id collision detected";
