//! The library and runtime matrix (issue #4): every variant binary, run as a process against a
//! real Mosquitto, for every scenario it implements.
//!
//! [`MATRIX`] is the only copy of "which scenario exists on which library and runtime, and what
//! it cannot do there". The tests below iterate it, and `readme_matrix_is_current` renders it as
//! the table in README.md (between `<!-- matrix:start -->` and `<!-- matrix:end -->`), so the
//! README and the tests cannot disagree. After changing the table, run
//! `UPDATE_README=1 cargo test -p scenario-tests --test matrix readme` to rewrite that block.
//!
//! The variants of one scenario run side by side against one broker (each with its own client
//! id), so a check costs about as much as one run of one binary. The paho and native-tls variants
//! must be built with their package features (scripts/test builds with `--all-features`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use scenario_tests::*;

/// A library and runtime combination. Its binaries are named `<scenario>-<name>`, except the
/// default, which is the scenario's own `main.rs`.
struct Variant {
    /// The suffix of the binary name (`default`: none).
    name: &'static str,
    /// The MQTT client library.
    library: &'static str,
    /// The async runtime, or threads.
    runtime: &'static str,
    /// The TLS implementation.
    tls: &'static str,
    /// The package feature that builds it (`paho`: cmake, a C compiler, OpenSSL headers;
    /// `native-tls`: OpenSSL headers), or `None`: a Rust toolchain is enough.
    feature: Option<&'static str>,
}

/// The columns of the matrix, in order.
const VARIANTS: [Variant; 6] = [
    Variant {
        name: "default",
        library: "rumqttc 0.25 v5 `AsyncClient`",
        runtime: "Tokio",
        tls: "rustls (aws-lc-rs); system roots or `--ca-file`",
        feature: None,
    },
    Variant {
        name: "rumqttc-native-tls",
        library: "rumqttc 0.25 v5 `AsyncClient`",
        runtime: "Tokio",
        tls: "native-tls (OpenSSL on Linux)",
        feature: Some("native-tls"),
    },
    Variant {
        name: "rumqttc-blocking",
        library: "rumqttc 0.25 v5 `Client` (blocking)",
        runtime: "threads",
        tls: "rustls (aws-lc-rs)",
        feature: None,
    },
    Variant {
        name: "paho-async-std",
        library: "paho-mqtt 0.14 (Paho C 1.3)",
        runtime: "async-std (deprecated: RUSTSEC-2025-0052; use smol)",
        tls: "OpenSSL, `verify(true)`",
        feature: Some("paho"),
    },
    Variant {
        name: "paho-smol",
        library: "paho-mqtt 0.14 (Paho C 1.3)",
        runtime: "smol",
        tls: "OpenSSL, `verify(true)`",
        feature: Some("paho"),
    },
    Variant {
        name: "paho-tokio",
        library: "paho-mqtt 0.14 (Paho C 1.3)",
        runtime: "Tokio",
        tls: "OpenSSL, `verify(true)`",
        feature: Some("paho"),
    },
];

/// What a scenario looks like on one variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    /// Built and tested; the practice works as in the default.
    Supported,
    /// Built and tested, but the library cannot do part of the practice: the footnotes say what.
    Limited(&'static [&'static str]),
    /// No binary: the library cannot do what the scenario is about.
    NotPossible(&'static str),
    /// No binary: nothing in this scenario depends on the library or runtime, so the variant
    /// would repeat the default with the lines its `tls-connect` variant already shows.
    NotProvided,
}

use Status::{Limited, NotPossible, NotProvided, Supported};

/// Paho C sends PUBACK itself.
const PAHO_ACKS: &str = "Paho C acknowledges each message as it arrives, before your code sees \
     it: no ack after processing and no back-pressure. A crash loses the messages still waiting in \
     the stream; a normal stop disconnects first and then handles them.";
/// Paho's one TLS error.
const PAHO_TLS_ERRORS: &str = "Paho reports an unknown CA, a certificate for another host, a \
     port without TLS and a closed port all as \"TCP/TLS connect failure\": the error lists the \
     likely causes and how to see OpenSSL's own words (`--log paho_mqtt_c=debug,info`).";

/// paho-mqtt's `Message` has no DUP flag.
const PAHO_NO_DUP: &str = "paho-mqtt's `Message` does not expose the DUP flag, so a redelivered \
     message cannot be marked `(redelivery)`.";

/// What acking on receipt means for a group.
const PAHO_SHARE: &str = "In a group this means: a member that is killed loses what waits in \
     its stream for good (the broker counted it as delivered, so neither the other members nor a \
     restart get it), and a slow member does not slow its share.";

/// A row of the matrix: one scenario, one status per entry of [`VARIANTS`].
struct Row {
    scenario: &'static str,
    cells: [Status; 6],
}

/// THE matrix. README.md's table is rendered from this; the tests run every binary it lists.
const MATRIX: &[Row] = &[
    Row {
        scenario: "tls-connect",
        cells: [
            Supported,
            Supported,
            Supported,
            Limited(&[PAHO_ACKS, PAHO_TLS_ERRORS]),
            Limited(&[PAHO_ACKS, PAHO_TLS_ERRORS]),
            Limited(&[PAHO_ACKS, PAHO_TLS_ERRORS]),
        ],
    },
    Row {
        scenario: "persistent-session",
        cells: [
            Supported,
            Supported,
            Supported,
            Limited(&[PAHO_ACKS, PAHO_NO_DUP]),
            Limited(&[PAHO_ACKS, PAHO_NO_DUP]),
            Limited(&[PAHO_ACKS, PAHO_NO_DUP]),
        ],
    },
    Row {
        scenario: "clean-session",
        cells: [
            Supported,
            NotProvided,
            NotProvided,
            NotProvided,
            NotProvided,
            NotProvided,
        ],
    },
    Row {
        scenario: "qos1-at-least-once",
        cells: [
            Supported,
            NotProvided,
            NotProvided,
            NotPossible(PAHO_QOS1),
            NotPossible(PAHO_QOS1),
            NotPossible(PAHO_QOS1),
        ],
    },
    Row {
        scenario: "shared-subscription",
        cells: [
            Supported,
            Supported,
            Supported,
            Limited(&[PAHO_ACKS, PAHO_SHARE]),
            Limited(&[PAHO_ACKS, PAHO_SHARE]),
            Limited(&[PAHO_ACKS, PAHO_SHARE]),
        ],
    },
    Row {
        scenario: "client-id-collision",
        cells: [
            Supported,
            Supported,
            Supported,
            Limited(&[PAHO_ACKS]),
            Limited(&[PAHO_ACKS]),
            Limited(&[PAHO_ACKS]),
        ],
    },
];

/// Why there is no paho `qos1-at-least-once`.
const PAHO_QOS1: &str = "Not possible with Paho: the C library sends PUBACK before your code \
     sees the message, so a crash while handling it loses the message instead of getting it \
     redelivered, and redelivery is what this scenario is about.";

/// The binary of `scenario` on `variant`.
fn binary(scenario: &str, variant: &Variant) -> String {
    if variant.name == "default" {
        scenario.to_owned()
    } else {
        format!("{scenario}-{}", variant.name)
    }
}

/// The variants of `scenario` that have a binary: `(binary name, variant)`.
fn runnable(scenario: &str) -> Vec<(String, &'static Variant)> {
    let row = MATRIX
        .iter()
        .find(|row| row.scenario == scenario)
        .unwrap_or_else(|| panic!("{scenario} is not in MATRIX"));
    VARIANTS
        .iter()
        .zip(row.cells.iter())
        .filter(|(_, status)| matches!(status, Supported | Limited(_)))
        .map(|(variant, _)| (binary(scenario, variant), variant))
        .collect()
}

/// A client id unique to this test and variant (Mosquitto allows one connection per id).
fn client_id(test: &str, variant: &Variant) -> String {
    format!("matrix-{test}-{}", variant.name)
}

/// `--creds <file> --ca-file <CA>` for a creds object.
fn creds_args(fx: &Fixture, creds: &Value, ca: &Path) -> Vec<String> {
    vec![
        "--creds".into(),
        path_str(&fx.write(creds)),
        "--ca-file".into(),
        path_str(ca),
    ]
}

/// Spawns one process per runnable variant of `scenario`, with the arguments `args` builds.
fn spawn_all(
    scenario: &str,
    mut args: impl FnMut(&Variant) -> Vec<String>,
) -> Vec<(String, ExampleProcess)> {
    runnable(scenario)
        .into_iter()
        .map(|(bin, variant)| {
            let process = spawn(&bin, &args(variant));
            (bin, process)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// tls-connect

#[test]
fn tls_connect_every_variant_receives_count_messages_and_exits_cleanly() {
    let fx = Fixture::new();
    let mut subs = spawn_all("tls-connect", |variant| {
        let mut args = fx.args(&client_id("count", variant));
        args.extend(["--count".into(), "5".into()]);
        args
    });
    for (_, sub) in &subs {
        expect_line(sub, "subscribed to");
    }
    fx.publish(5);

    for (bin, sub) in &mut subs {
        let status = expect_exit(sub);
        let transcript = sub.transcript();
        assert!(status.success(), "{bin}: {status}\n{transcript}");
        assert_eq!(seqs(sub), vec![0, 1, 2, 3, 4], "{bin}:\n{transcript}");
        assert!(
            sub.stderr()
                .contains("processed 5 messages; disconnected cleanly"),
            "{bin}:\n{transcript}"
        );
        assert!(
            !transcript.contains(fx.broker.password()),
            "{bin} printed the password"
        );
    }
}

#[test]
fn tls_connect_every_variant_takes_a_burst_of_500_without_losing_or_stalling() {
    let fx = Fixture::new();
    let mut subs = spawn_all("tls-connect", |variant| {
        let mut args = fx.args(&client_id("burst", variant));
        args.extend(["--count".into(), "500".into(), "--stats".into()]);
        args
    });
    for (_, sub) in &subs {
        expect_line(sub, "subscribed to");
    }
    fx.publish(500);
    for (bin, sub) in &mut subs {
        let status = expect_exit(sub);
        let transcript = sub.transcript();
        assert!(status.success(), "{bin}: {status}\n{transcript}");
        assert!(
            sub.stdout().contains("stats: received=500 unique_seq=500"),
            "{bin}:\n{transcript}"
        );
    }
}

#[test]
fn tls_connect_every_variant_stops_on_sigterm_with_a_clean_disconnect() {
    let fx = Fixture::new();
    let mut subs = spawn_all("tls-connect", |variant| {
        fx.args(&client_id("term", variant))
    });
    for (_, sub) in &subs {
        expect_line(sub, "subscribed to");
    }
    fx.publish(2);
    for (bin, sub) in &subs {
        assert_eq!(
            sub.wait_for_count(|l| l.starts_with("message "), 2, WAIT),
            2,
            "{bin}:\n{}",
            sub.transcript()
        );
    }
    for (_, sub) in &subs {
        sub.terminate();
    }
    for (bin, sub) in &mut subs {
        let status = expect_exit(sub);
        assert!(status.success(), "{bin}: {status}\n{}", sub.transcript());
        assert_eq!(seqs(sub), vec![0, 1], "{bin}:\n{}", sub.transcript());
        expect_line(sub, "disconnected cleanly");
    }
    // A DISCONNECT packet, not a dropped socket: Mosquitto logs "Client <id> disconnected".
    for (_, variant) in runnable("tls-connect") {
        let id = client_id("term", variant);
        assert!(
            fx.broker
                .wait_for_log(&format!("Client {id} disconnected"), WAIT),
            "{id}: no clean DISCONNECT\n{}",
            fx.broker.log()
        );
    }
}

#[test]
fn tls_connect_every_variant_refuses_a_broker_signed_by_another_ca() {
    let fx = Fixture::new();
    let mut subs = spawn_all("tls-connect", |variant| {
        creds_args(
            &fx,
            &fx.creds(&client_id("wrong-ca", variant)),
            fx.broker.wrong_ca_path(),
        )
    });
    for (bin, sub) in &mut subs {
        let mut needles = vec!["not signed by a CA you trust", "--ca-file"];
        if bin.contains("-paho-") {
            needles.push("Paho does not say which check failed");
        }
        expect_failure(sub, 4, &needles);
    }
}

#[test]
fn tls_connect_every_variant_refuses_a_certificate_for_another_host() {
    let fx = Fixture::new();
    let mut subs = spawn_all("tls-connect", |variant| {
        let mut creds = fx.creds(&client_id("wrong-name", variant));
        creds["port"] = json!(fx.broker.wrong_name_tls_port());
        creds_args(&fx, &creds, fx.broker.ca_path())
    });
    for (bin, sub) in &mut subs {
        let mut needles = vec!["not issued for \"localhost\""];
        if bin.contains("-paho-") {
            needles.push("Paho does not say which check failed");
        }
        expect_failure(sub, 4, &needles);
    }
}

#[test]
fn tls_connect_every_variant_refuses_a_wrong_password_without_retrying() {
    let fx = Fixture::new();
    let mut subs = spawn_all("tls-connect", |variant| {
        let mut creds = fx.creds(&client_id("wrong-password", variant));
        creds["password"] = json!("not-the-password");
        creds_args(&fx, &creds, fx.broker.ca_path())
    });
    for (bin, sub) in &mut subs {
        // Mosquitto answers a wrong password with CONNACK 0x87 "not authorized".
        expect_failure(sub, 5, &["refused the connection as not authorized"]);
        assert!(
            !sub.transcript().contains("not-the-password"),
            "{bin} printed the password"
        );
        assert!(
            !sub.stderr().contains("Reconnecting"),
            "{bin} retried a wrong password:\n{}",
            sub.transcript()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// persistent-session

/// Runs every variant once (`extra` flags), waits until it is subscribed, stops it with SIGTERM
/// and checks it left with a clean DISCONNECT: the broker now keeps (or not) its session.
fn run_once_and_stop(fx: &Fixture, test: &str, extra: &[&str]) {
    let mut subs = spawn_all("persistent-session", |variant| {
        let mut args = fx.args(&client_id(test, variant));
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    });
    for (_, sub) in &subs {
        expect_line(sub, "subscribed to");
    }
    for (_, sub) in &subs {
        sub.terminate();
    }
    for (bin, sub) in &mut subs {
        let status = expect_exit(sub);
        assert!(status.success(), "{bin}: {status}\n{}", sub.transcript());
        expect_line(sub, "disconnected cleanly");
    }
    for (_, variant) in runnable("persistent-session") {
        let id = client_id(test, variant);
        assert!(
            fx.broker
                .wait_for_log(&format!("Client {id} disconnected"), WAIT),
            "{id}: no clean DISCONNECT\n{}",
            fx.broker.log()
        );
    }
}

#[test]
fn persistent_session_every_variant_gets_the_backlog_published_while_it_was_down() {
    let fx = Fixture::new();
    run_once_and_stop(&fx, "backlog", &[]);
    // Every variant's session is subscribed to the filter: each queues all 50.
    fx.publish(50);

    let mut subs = spawn_all("persistent-session", |variant| {
        let mut args = fx.args(&client_id("backlog", variant));
        args.extend(["--count".into(), "50".into()]);
        args
    });
    for (bin, sub) in &mut subs {
        expect_line(sub, "session present: true");
        let status = expect_exit(sub);
        let transcript = sub.transcript();
        assert!(status.success(), "{bin}: {status}\n{transcript}");
        assert_eq!(
            seqs(sub),
            (0..50).collect::<Vec<u64>>(),
            "{bin}: the backlog, in order\n{transcript}"
        );
    }
    // Each subscribes again after that CONNACK (session present cannot say which subscriptions
    // the session holds); that must not interrupt or reorder the backlog (checked above). The
    // SUBACK may come after the 50th message, when the process is already on its way out, so
    // the proof is the broker's log (`log_type subscribe`): a second SUBSCRIBE from each id.
    for (_, variant) in runnable("persistent-session") {
        let id = client_id("backlog", variant);
        let needle = format!(" {id} 1 {FILTER}");
        let deadline = std::time::Instant::now() + WAIT;
        while fx.broker.log().matches(&needle).count() < 2 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        assert_eq!(
            fx.broker.log().matches(&needle).count(),
            2,
            "{id}: expected a SUBSCRIBE in each of its two runs\n{}",
            fx.broker.log()
        );
    }
}

#[test]
fn persistent_session_every_variant_subscribes_a_session_left_without_its_subscription() {
    // Per variant, a previous run that died after its CONNACK but before its SUBSCRIBE reached
    // the broker: a persistent session for the id, with no subscription in it.
    let fx = Fixture::new();
    for (_, variant) in runnable("persistent-session") {
        leave_session_without_subscription(&fx, &client_id("no-sub", variant));
    }

    let mut subs = spawn_all("persistent-session", |variant| {
        let mut args = fx.args(&client_id("no-sub", variant));
        args.extend(["--count".into(), "5".into()]);
        args
    });
    for (_, sub) in &subs {
        // `true`, yet the session has nothing to deliver: only a SUBSCRIBE now gets the events.
        expect_line(sub, "session present: true");
        expect_line(sub, "subscribed to");
    }
    fx.publish(5);
    for (bin, sub) in &mut subs {
        let status = expect_exit(sub);
        let transcript = sub.transcript();
        assert!(status.success(), "{bin}: {status}\n{transcript}");
        assert_eq!(
            seqs(sub),
            vec![0, 1, 2, 3, 4],
            "{bin}: the events published after it started\n{transcript}"
        );
    }
}

#[test]
fn persistent_session_every_variant_does_not_replay_a_retained_message_when_it_subscribes_again() {
    // A retained message (seq 0): the first run's new subscription receives it, and the run
    // stops after handling (and acking) it, so nothing is left to redeliver.
    let fx = Fixture::new();
    publish_retained(&fx, 0);
    let args = |variant: &Variant| {
        let mut args = fx.args(&client_id("retained", variant));
        args.extend(["--count".into(), "1".into()]);
        args
    };
    for (bin, sub) in &mut spawn_all("persistent-session", args) {
        let status = expect_exit(sub);
        let transcript = sub.transcript();
        assert!(status.success(), "{bin}: {status}\n{transcript}");
        assert_eq!(
            seqs(sub),
            vec![0],
            "{bin}: the retained message\n{transcript}"
        );
    }

    // The second run resumes its session and subscribes again to the same filter. Retain
    // Handling "only if new" means the broker does not send seq 0 again: the first message is
    // the one published after the SUBSCRIBE.
    let mut subs = spawn_all("persistent-session", args);
    for (_, sub) in &subs {
        expect_line(sub, "session present: true");
        expect_line(sub, "subscribed to");
    }
    fx.publish_from(1, 1);
    for (bin, sub) in &mut subs {
        let status = expect_exit(sub);
        let transcript = sub.transcript();
        assert!(status.success(), "{bin}: {status}\n{transcript}");
        assert_eq!(
            seqs(sub),
            vec![1],
            "{bin}: the retained message was replayed\n{transcript}"
        );
    }
}

#[test]
fn persistent_session_every_variant_with_expiry_0_keeps_no_backlog() {
    let fx = Fixture::new();
    run_once_and_stop(&fx, "expiry-0", &["--session-expiry", "0"]);
    fx.publish(20); // nobody keeps these

    let mut subs = spawn_all("persistent-session", |variant| {
        let mut args = fx.args(&client_id("expiry-0", variant));
        args.extend(["--session-expiry", "0", "--count", "3"].map(String::from));
        args
    });
    for (_, sub) in &subs {
        expect_line(sub, "session present: false");
        expect_line(sub, "subscribed to");
    }
    fx.publish_from(20, 3);
    for (bin, sub) in &mut subs {
        let status = expect_exit(sub);
        let transcript = sub.transcript();
        assert!(status.success(), "{bin}: {status}\n{transcript}");
        assert_eq!(
            seqs(sub),
            vec![20, 21, 22],
            "{bin}: no backlog\n{transcript}"
        );
        assert!(
            transcript.contains("This is the MQTT v5 trap"),
            "{bin}: the warning\n{transcript}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// shared-subscription

#[test]
fn shared_subscription_every_variant_splits_the_stream_between_two_members_without_loss() {
    let fx = Fixture::new();
    // Per variant two members (instances 1 and 2) in a group of the variant's own, so every
    // group gets the whole stream and splits it between its two members.
    let mut groups: Vec<(String, Vec<ExampleProcess>)> = runnable("shared-subscription")
        .into_iter()
        .map(|(bin, variant)| {
            let members = (1..=2)
                .map(|instance| {
                    let mut args = fx.args(&client_id("share", variant));
                    args.extend([
                        "--group".into(),
                        format!("matrix-{}", variant.name),
                        "--instance".into(),
                        instance.to_string(),
                    ]);
                    spawn(&bin, &args)
                })
                .collect();
            (bin, members)
        })
        .collect();
    for (_, members) in &groups {
        for member in members {
            expect_line(member, "subscribed to $share/matrix-");
        }
    }
    fx.publish(100);

    for (bin, members) in &mut groups {
        // Wait until the group has handled all 100, then stop both members.
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let seen: BTreeSet<u64> = members.iter().flat_map(seqs).collect();
            if seen.len() == 100 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{bin}: the group handled only {} of 100\n{}\n{}",
                seen.len(),
                members[0].transcript(),
                members[1].transcript()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        for member in members.iter() {
            member.terminate();
        }
        let mut all: Vec<u64> = Vec::new();
        let mut split = Vec::new();
        for member in members.iter_mut() {
            let status = expect_exit(member);
            assert!(status.success(), "{bin}: {status}\n{}", member.transcript());
            expect_line(member, "disconnected cleanly");
            split.push(seqs(member).len());
            all.extend(seqs(member));
        }
        all.sort_unstable();
        println!("{bin}: 100 messages split {split:?}");
        assert_eq!(
            all,
            (0..100).collect::<Vec<u64>>(),
            "{bin}: lost or duplicated"
        );
        // Mosquitto deals round-robin as messages are published: exactly half each.
        assert_eq!(split, vec![50, 50], "{bin}: not dealt round-robin");
        assert!(
            members[0].stdout().contains(&format!(
                "[matrix-share-{}-1] message 1 on ",
                bin_variant(bin)
            )),
            "{bin}: each message is labelled with the member's client id\n{}",
            members[0].transcript()
        );
    }
}

#[test]
fn shared_subscription_every_variant_refuses_a_persistent_session_without_a_stable_instance() {
    let fx = Fixture::new();
    let mut subs = spawn_all("shared-subscription", |variant| {
        let mut args = fx.args(&client_id("unstable", variant));
        args.extend(["--session-expiry".into(), "300".into()]);
        args
    });
    for (_, sub) in &mut subs {
        expect_failure(sub, 2, &["--session-expiry needs a stable --instance"]);
    }
}

/// The variant name of a binary (`default` for the scenario's own).
fn bin_variant(bin: &str) -> &'static str {
    VARIANTS
        .iter()
        .find(|v| bin.ends_with(&format!("-{}", v.name)))
        .map_or("default", |v| v.name)
}

// ---------------------------------------------------------------------------------------------
// client-id-collision

/// The plain message of exit code 6.
const ID_IN_USE: &str = "is used by another process";

#[test]
fn client_id_collision_every_variant_detects_a_shared_id_and_exits_6() {
    let fx = Fixture::new();
    // Per variant, two processes with one client id (one connection per process).
    let args_for = |variant: &Variant| fx.args(&client_id("collide", variant));
    let pairs: Vec<(String, String, ExampleProcess, ExampleProcess)> =
        runnable("client-id-collision")
            .into_iter()
            .map(|(bin, variant)| {
                // The second starts at once: the fight then begins at its first CONNACK.
                let first = spawn(&bin, &args_for(variant));
                let second = spawn(&bin, &args_for(variant));
                (bin, client_id("collide", variant), first, second)
            })
            .collect();

    let mut survivors: Vec<(String, String, ExampleProcess)> = Vec::new();
    for (bin, id, mut first, mut second) in pairs {
        let deadline = std::time::Instant::now() + WAIT;
        let (first_status, second_status) = loop {
            let statuses = (first.try_exit_status(), second.try_exit_status());
            if statuses.0.is_some() || statuses.1.is_some() || std::time::Instant::now() >= deadline
            {
                break statuses;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        let (mut loser, survivor) = match (first_status, second_status) {
            (Some(_), Some(_)) => panic!(
                "{bin}: both processes exited (the header says the other keeps running):\n{}\n{}",
                first.transcript(),
                second.transcript()
            ),
            (Some(_), None) => (first, second),
            (None, Some(_)) => (second, first),
            (None, None) => panic!(
                "{bin}: still fighting:\n{}\n{}",
                first.transcript(),
                second.transcript()
            ),
        };
        expect_failure(&mut loser, 6, &[ID_IN_USE, &id, "--instance"]);
        let stderr = loser.stderr();
        let detection = stderr
            .lines()
            .find(|line| line.contains("client id collision detected"))
            .unwrap_or_else(|| panic!("{bin}: no detection line:\n{}", loser.transcript()));
        println!(
            "{bin}: {}",
            detection.split_once("ERROR").map_or("", |(_, d)| d.trim())
        );
        survivors.push((bin, id, survivor));
    }

    // The survivors are connected and working, and keep running (the header: "the other keeps
    // running"; issue #16: this used to accept both exiting 6).
    let is_message = |line: &str| line.starts_with("message ") || line.contains("] message ");
    let before: Vec<usize> = survivors
        .iter()
        .map(|(_, _, p)| p.count_lines(is_message))
        .collect();
    let deadline = std::time::Instant::now() + WAIT;
    let mut seq = 1000;
    loop {
        let mut pending = Vec::new();
        for ((bin, _, process), seen) in survivors.iter_mut().zip(&before) {
            assert!(
                process.try_exit_status().is_none(),
                "{bin}: the survivor exited too:\n{}",
                process.transcript()
            );
            if process.count_lines(is_message) <= *seen {
                pending.push(bin.clone());
            }
        }
        if pending.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still running but receiving nothing: {pending:?}"
        );
        fx.publish_from(seq, 1);
        seq += 1;
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    for (bin, id, mut survivor) in survivors {
        survivor.terminate();
        let status = expect_exit(&mut survivor);
        assert!(
            status.success(),
            "{bin}: {status}\n{}",
            survivor.transcript()
        );
        expect_line(&survivor, "disconnected cleanly");
        // The broker received that DISCONNECT (a dropped socket is logged differently).
        assert!(
            fx.broker
                .wait_for_log(&format!("Client {id} disconnected."), WAIT),
            "{bin}: no DISCONNECT reached the broker:\n{}",
            fx.broker.log()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The matrix itself

/// The workspace root (this file lives in `tests/`).
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Renders [`MATRIX`] as the Markdown block README.md carries between the markers.
fn render_matrix() -> String {
    let mut notes: Vec<&str> = Vec::new();
    let mut note_number = |text: &'static str| -> usize {
        match notes.iter().position(|n| *n == text) {
            Some(i) => i + 1,
            None => {
                notes.push(text);
                notes.len()
            }
        }
    };
    let mut out = String::new();
    out.push_str("| variant | library | runtime | TLS | build needs |\n|---|---|---|---|---|\n");
    for variant in &VARIANTS {
        let needs = match variant.feature {
            Some("paho") => "`--features paho`: cmake, a C compiler, pkg-config, libssl-dev",
            Some("native-tls") => "`--features native-tls`: pkg-config, libssl-dev (Linux)",
            Some(other) => panic!("describe the build needs of feature {other}"),
            None => "a Rust toolchain",
        };
        out.push_str(&format!(
            "| `{}` | {} | {} | {} | {needs} |\n",
            variant.name, variant.library, variant.runtime, variant.tls
        ));
    }
    out.push('\n');
    out.push_str("| scenario |");
    for variant in &VARIANTS {
        out.push_str(&format!(" `{}` |", variant.name));
    }
    out.push_str("\n|---|");
    out.push_str(&"---|".repeat(VARIANTS.len()));
    out.push('\n');
    for row in MATRIX {
        out.push_str(&format!("| `{}` |", row.scenario));
        for (variant, status) in VARIANTS.iter().zip(row.cells.iter()) {
            let cell = match status {
                Supported => format!("✓ `{}`", binary(row.scenario, variant)),
                Limited(why) => {
                    let marks: Vec<String> = why
                        .iter()
                        .map(|text| format!("[{}]", note_number(text)))
                        .collect();
                    format!("✓ `{}` {}", binary(row.scenario, variant), marks.join(""))
                }
                NotPossible(why) => format!("not possible: see [{}]", note_number(why)),
                NotProvided => "—".to_owned(),
            };
            out.push_str(&format!(" {cell} |"));
        }
        out.push('\n');
    }
    out.push('\n');
    out.push_str(
        "✓: the binary exists and the tests run it against Mosquitto: `tests/matrix.rs` every \
         binary in a row that has variants, `tests/<scenario>.rs` each default in depth. —: no \
         variant; nothing in that scenario depends on the library or runtime (the `tls-connect` \
         variant shows the lines that change), use the default.\n",
    );
    for (i, note) in notes.iter().enumerate() {
        out.push_str(&format!("\n[{}] {note}\n", i + 1));
    }
    out
}

const START: &str = "<!-- matrix:start (generated from tests/matrix.rs: UPDATE_README=1 cargo test -p scenario-tests --test matrix readme) -->";
const END: &str = "<!-- matrix:end -->";

#[test]
fn readme_matrix_is_current() {
    let path = workspace_root().join("README.md");
    let readme = std::fs::read_to_string(&path).expect("README.md");
    let rendered = format!("{START}\n{}{END}", render_matrix());
    let start = readme.find(START);
    let end = readme.find(END);
    let current = match (start, end) {
        (Some(s), Some(e)) if s < e => Some(&readme[s..e + END.len()]),
        _ => None,
    };
    if current == Some(rendered.as_str()) {
        return;
    }
    if std::env::var_os("UPDATE_README").is_some() {
        let (Some(s), Some(e)) = (start, end) else {
            panic!("README.md has no {START} ... {END} block to update");
        };
        let updated = format!("{}{rendered}{}", &readme[..s], &readme[e + END.len()..]);
        std::fs::write(&path, updated).expect("write README.md");
        return;
    }
    panic!(
        "README.md's matrix block differs from tests/matrix.rs. Run\n  UPDATE_README=1 cargo test \
         -p scenario-tests --test matrix readme\nExpected block:\n{rendered}"
    );
}

/// The `[[bin]]` entries of a package: `(name, the feature in its required-features)`.
fn declared_binaries(package: &str) -> Vec<(String, Option<String>)> {
    let manifest = workspace_root()
        .join("examples")
        .join(package)
        .join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest)
        .unwrap_or_else(|err| panic!("{}: {err}", manifest.display()));
    text.split("[[bin]]")
        .skip(1)
        .map(|block| {
            let block = block.split("\n[").next().unwrap_or(block);
            let name = block
                .lines()
                .find_map(|line| line.trim().strip_prefix("name = "))
                .map(|value| value.trim_matches('"').to_owned())
                .unwrap_or_else(|| panic!("{}: [[bin]] without a name", manifest.display()));
            let feature = block
                .lines()
                .find_map(|line| line.trim().strip_prefix("required-features = [\""))
                .map(|rest| rest.trim_end_matches("\"]").to_owned());
            (name, feature)
        })
        .collect()
}

#[test]
fn every_binary_is_in_the_matrix_and_every_matrix_binary_is_declared() {
    for row in MATRIX {
        // The demo launcher (`<scenario>-demo`, demo/main.rs) is not a variant: it runs them.
        let launcher = format!("{}-demo", row.scenario);
        let mut declared = declared_binaries(row.scenario);
        declared.retain(|(name, _)| *name != launcher);
        let declared_names: BTreeSet<&str> = declared.iter().map(|(n, _)| n.as_str()).collect();
        let listed: BTreeSet<String> = runnable(row.scenario)
            .into_iter()
            .map(|(bin, _)| bin)
            .collect();
        let listed_names: BTreeSet<&str> = listed.iter().map(String::as_str).collect();
        assert_eq!(
            declared_names, listed_names,
            "examples/{}/Cargo.toml [[bin]] vs MATRIX",
            row.scenario
        );
        for (name, feature) in &declared {
            let variant = VARIANTS
                .iter()
                .find(|v| binary(row.scenario, v) == *name)
                .expect("listed above");
            assert_eq!(
                feature.as_deref(),
                variant.feature,
                "{name}: its required-features must be the variant's feature"
            );
        }
    }
}
