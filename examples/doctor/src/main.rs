//! # doctor — what is wrong with my connection to the broker?
//! Read more: docs/src/brokers.md
//!
//! **What it shows.** Every step between your `creds.json` and the first event, checked in order,
//! one line each with ✓ (works), ⚠ (works, but will bite) or ✗ (broken), the figure it measured,
//! and for every ⚠ and ✗ the cause and the fix in plain words:
//!
//! 1. credentials file (fields, permissions, `isEnabled`, topic inside `subscribeAcl`, plaintext);
//! 2. DNS: every IPv4 and IPv6 address, timed;
//! 3. TCP to each address, timed: refused, timed out and unreachable told apart;
//! 4. TLS: version, cipher, the chain (subject, issuer, validity, SANs), trust, host name, days to
//!    expiry, your clock against the validity, "this port does not speak TLS", SNI;
//! 5. MQTT v5 CONNECT: the CONNACK reason code and reason string, and the broker's capabilities
//!    (maximum QoS, retain, wildcards, shared subscriptions, receive maximum, packet size, topic
//!    aliases, keep-alive, session expiry) with the specification's defaults filled in;
//! 6. SUBSCRIBE to your topic and to `$share/<group>/<topic>` at QoS 1: granted QoS or reason;
//! 7. session: reconnect within a short expiry — does the broker keep sessions?
//! 8. client-id takeover (only with `--check-takeover`): DISCONNECT 0x8E, or a silent close?
//! 9. the first message within `--wait` seconds (default 30): its topic and size;
//! 10. cleanup: the last DISCONNECT ends doctor's session (session expiry 0).
//!
//! **Run it** — the first thing to run when something does not connect:
//! ```text
//! cargo run -p doctor -- --creds creds.json
//! cargo run -p doctor -- --creds creds.json --json          # machine-readable, same verdicts
//! cargo run -p doctor -- --creds creds.json --wait 120 --check-takeover
//! ```
//!
//! **What you will see.** The step lines, then `doctor: everything a consumer needs works` and
//! exit code 0, or the first ✗'s exit code: 3 credentials, 4 TLS, 5 login or subscription
//! refused, 7 plaintext refused, 8 network (README, "Exit codes"). ⚠ lines do not change the exit
//! code: "no message within --wait" is a ⚠, because a quiet topic is not an error — but read it,
//! since a broker that filters a topic by ACL looks exactly like that. Each ✗/⚠ says the cause
//! and the fix, then `see docs/src/troubleshooting.md#<id>`: its entry in the book (`--json`
//! carries the same `id` and `see`).
//!
//! Without `--creds`, `MQTT_CREDS` or `./creds.json` it stops at step 1: unlike the examples it
//! never starts the local demo broker, since there would be nothing of yours to diagnose.
//!
//! **It leaves nothing behind.** It connects as `<clientId>-doctor` (unless `--client-id`), so it
//! cannot kick a running consumer off, uses its own share group, acks what it receives, and ends
//! its session with session expiry 0.
//!
//! **Why its own MQTT code, not rumqttc.** Diagnosis needs what client libraries hide: rumqttc
//! reports a refused CONNACK without its reason string and properties, applies no defaults to
//! the capabilities, and cannot parse a short DISCONNECT (`e0 01 8e`). So doctor writes and reads
//! packets with the `mqtt5-protocol` codec (already in the tree through the demo broker) over its
//! own tokio-rustls stream, whose certificate verifier is rustls's WebPKI verifier plus a record
//! of the chain (so a failed handshake still shows the certificates). Certificates are read with
//! `x509-parser`. This is diagnosis code: to *consume* events, copy `tls-connect`.
//!
//! **Left out.** Proxies and WebSockets; client certificates (Link Labs uses none); probing with
//! a publish (consumers usually may not publish, and it would put doctor's data on your topic);
//! telling "no traffic" from "silently filtered by the ACL" (no MQTT packet says which).

mod cleanup_step;
mod client;
mod connect_step;
mod credentials_step;
mod dns;
mod message_step;
mod mqtt;
mod report;
mod session_step;
mod subscribe_step;
mod takeover_step;
mod tcp;
mod texts;
mod tls;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use common::ConnectArgs;

use report::{Report, StepReport};

/// Diagnose a connection to the Link Labs broker step by step, with a fix for each failure.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    connect: ConnectArgs,

    /// Print the report as one JSON object on stdout (same verdicts as the text).
    #[arg(long)]
    json: bool,

    /// How long step 9 waits for the first message, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    wait: u64,

    /// Also probe what the broker does to a connection whose client id is taken over (step 8).
    /// With --client-id set to a running consumer's id, that consumer is disconnected.
    #[arg(long)]
    check_takeover: bool,

    /// Limit for each network operation (DNS, TCP, TLS, CONNACK, SUBACK), in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    timeout: u64,
}

/// Names of the steps, for the "skipped" lines.
const STEP_NAMES: [&str; 10] = [
    "credentials",
    "dns",
    "tcp",
    "tls",
    "connect",
    "subscribe",
    "session",
    "takeover",
    "first_message",
    "cleanup",
];

fn main() -> ExitCode {
    let args = Args::parse();
    common::logging::init(&args.connect.log);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the Tokio runtime: {err}");
            return ExitCode::from(common::exit::FAILURE);
        }
    };
    let mut steps = Steps {
        list: Vec::new(),
        print: !args.json,
    };
    let report = runtime.block_on(run(&args, &mut steps));
    // A DNS lookup that timed out still runs on a blocking thread (getaddrinfo cannot be
    // cancelled); do not let it hold the report back.
    runtime.shutdown_timeout(Duration::from_millis(500));
    if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(json) => println!("{json}"),
            Err(err) => {
                eprintln!("error: could not write the JSON report: {err}");
                return ExitCode::from(common::exit::FAILURE);
            }
        }
    } else {
        print!("{}", report.footer_text());
    }
    ExitCode::from(report.exit_code)
}

/// The steps so far. In text mode each is printed the moment it is known, so a person watching
/// a 30 s wait for the first message sees where doctor is.
struct Steps {
    list: Vec<StepReport>,
    print: bool,
}

impl Steps {
    fn push(&mut self, step: StepReport) {
        if self.print {
            print!("{}", Report::step_text(&step));
            let _ = std::io::Write::flush(&mut std::io::stdout());
        }
        self.list.push(step);
    }

    fn say(&self, line: &str) {
        if self.print {
            print!("{line}");
        }
    }

    /// Marks every step not run yet as skipped and builds the report.
    fn finish(&mut self, why: &str, broker: Option<String>, client_id: Option<String>) -> Report {
        for number in self.list.len() + 1..=STEP_NAMES.len() {
            let name = STEP_NAMES[number - 1];
            let step = u8::try_from(number).unwrap_or(u8::MAX);
            self.push(StepReport::skipped(step, name, why.to_owned()));
        }
        let steps = std::mem::take(&mut self.list);
        let exit_code = Report::compute_exit_code(&steps);
        Report {
            broker,
            client_id,
            steps,
            exit_code,
        }
    }
}

/// Runs the steps in order. A ✗ that later steps depend on skips them; cleanup always runs.
async fn run(args: &Args, steps: &mut Steps) -> Report {
    let timeout = Duration::from_secs(args.timeout.max(1));

    // 1. Credentials.
    let (report, target) = credentials_step::check(&args.connect);
    steps.push(report);
    let Some(target) = target else {
        return steps.finish("skipped: no usable credentials (step 1)", None, None);
    };
    let broker = Some(target.address());
    let client_id = Some(target.client_id.clone());
    steps.say(&Report::header_text(&target.address(), &target.client_id));

    // 2. DNS.
    let (report, addresses) = dns::check(&target, timeout).await;
    steps.push(report);
    if addresses.is_empty() {
        return steps.finish(
            "skipped: the host does not resolve (step 2)",
            broker,
            client_id,
        );
    }

    // 3. TCP.
    let (report, connected) = tcp::check(&target, &addresses, timeout).await;
    steps.push(report);
    let Some((address, tcp_stream)) = connected else {
        return steps.finish(
            "skipped: no address accepts TCP (step 3)",
            broker,
            client_id,
        );
    };

    // 4. TLS.
    let (report, secured) = tls::check(&target, address, tcp_stream, timeout).await;
    steps.push(report);
    let Some((transport, dialer)) = secured else {
        return steps.finish("skipped: no TLS connection (step 4)", broker, client_id);
    };

    // 5. CONNECT.
    let (report, connected) = connect_step::check(&target, transport, timeout).await;
    steps.push(report);
    let Some((session, capabilities)) = connected else {
        return steps.finish(
            "skipped: the broker refused the login (step 5)",
            broker,
            client_id,
        );
    };
    let cleanup_dialer = Some(dialer.clone());

    // 6. SUBSCRIBE.
    let subscribed_at = Instant::now();
    let (report, session, subscriptions) =
        subscribe_step::check(&target, session, &capabilities, timeout).await;
    steps.push(report);

    // 7. Session kept across a reconnect?
    let mut session = session;
    let mut resubscribe = false;
    match session.take() {
        Some(live) => {
            let (report, next, present) =
                session_step::check(&target, live, &dialer, capabilities.session_expiry, timeout)
                    .await;
            steps.push(report);
            session = next;
            resubscribe |= !present;
        }
        None => steps.push(StepReport::skipped(
            7,
            "session",
            "skipped: the connection ended (step 6)",
        )),
    }

    // 8. Takeover probe, only when asked.
    match (args.check_takeover, session.take()) {
        (true, Some(live)) => {
            let (report, next, present) =
                takeover_step::check(&target, live, &dialer, timeout).await;
            steps.push(report);
            session = next;
            resubscribe |= !present;
        }
        (true, None) => {
            steps.push(StepReport::skipped(
                8,
                "takeover",
                "skipped: no connection to probe with",
            ));
        }
        (false, live) => {
            session = live;
            steps.push(StepReport::skipped(
                8,
                "takeover",
                "not asked: pass --check-takeover to see what the broker does to a connection \
                 whose client id is taken over",
            ));
        }
    }

    // A broker that did not keep the session dropped the subscriptions with it.
    if resubscribe {
        if let Some(live) = session.as_mut() {
            for filter in &subscriptions.granted {
                if let Err(err) = live.subscribe(filter, timeout).await {
                    tracing::debug!("re-subscribing to {filter} failed: {err}");
                }
            }
        }
    }

    // 9. First message.
    match session.take() {
        Some(live) if subscriptions.topic_granted => {
            let wait = Duration::from_secs(args.wait);
            let (report, next) = message_step::check(&target, live, wait, subscribed_at).await;
            steps.push(report);
            session = next;
        }
        live => {
            session = live;
            steps.push(StepReport::skipped(
                9,
                "first_message",
                "skipped: no granted subscription or no connection",
            ));
        }
    }

    // 10. Cleanup, whatever happened above.
    steps.push(cleanup_step::check(&target, session, cleanup_dialer.as_ref(), timeout).await);
    steps.finish("", broker, client_id)
}
