//! # shared-subscription-paho-smol — `shared-subscription` on paho-mqtt (Paho C) and smol
//! Read more: docs/src/shared-subscriptions.md
//!
//! **What it shows.** The production shape of `shared-subscription` (read its `main.rs` first: it
//! explains groups, client ids and what happens to messages when a member goes away): ONE worker
//! per process, subscribed to `$share/<group>/<topic>`, so the broker hands each message to one
//! member of the group. Start it several times with different `--instance` values and the
//! stream is split between the processes. Here the client is paho-mqtt 0.14 on smol.
//!
//! **Run it.** Paho C is compiled from source: this needs cmake, a C compiler, pkg-config and the
//! OpenSSL headers (Debian/Ubuntu: `apt-get install cmake build-essential pkg-config libssl-dev`).
//! ```text
//! cargo run -p shared-subscription --features paho --bin shared-subscription-paho-smol -- --creds creds.json --instance 1
//! cargo run -p shared-subscription --features paho --bin shared-subscription-paho-smol -- --creds creds.json --instance 2
//! cargo run -p shared-subscription --features paho --bin shared-subscription-paho-smol -- --creds creds.json --instance 1 --session-expiry 300
//! ```
//! Flags: `--group NAME` (default `<clientId>-workers`), `--instance N` (default
//! `<host name>-<pid>`), `--session-expiry SECS` (default 0: clean start; more needs a stable
//! `--instance`), `--work-ms N` (simulated processing), `--count N`, `--stats`. Each message is
//! printed as `[<client id>] message 7 on <topic>`.
//!
//! **How it differs from the default program.**
//! - smol instead of Tokio (`smol::future::or` with Ctrl-C first, `smol::Timer`, the `ctrlc`
//!   crate).
//! - paho-mqtt, as `tls-connect-paho-smol` explains: OpenSSL with `.verify(true)`, an unbounded
//!   event stream, our own reconnects through the supervisor.
//! - The same graceful stop, asked the same way: a clean-start member leaves the group
//!   (UNSUBSCRIBE), handles what keeps arriving until the broker says there is nothing more (an
//!   UNSUBACK with no message before it, twice; at most 10 s), disconnects, and then handles what
//!   is still in the stream. A member with a persistent session disconnects at once and handles
//!   the stream.
//!
//! **What this library cannot do.**
//! - *Ack after processing.* Paho C acknowledges each message as it arrives (so no ack of ours
//!   can reach the wrong connection either: no stale-ack guard is needed). A member that is
//!   killed (or crashes) loses every message waiting in its stream — the broker counts them as
//!   delivered, so neither the other members nor a restart with a persistent session get them.
//!   With the default program, unacked messages come back. Stopping with Ctrl-C / SIGTERM loses
//!   nothing.
//! - *Back-pressure.* A slow worker does not slow its share: the broker keeps dealing it
//!   messages, which wait in memory; the group's load is split by the broker, not by how busy
//!   each member is.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::error::ErrorKind;
use clap::{CommandFactory, Parser};
use common::supervisor::NextStep;
use common::{
    BrokerTarget, ConnectArgs, ConnectFailure, ConnectionSupervisor, MessagePrinter, Security,
};
use paho_mqtt as mqtt;
use smol::channel::Receiver;
use smol::future;
use smol::Timer;

/// A stopping clean-start member drains until the broker says it has nothing more for it, but no
/// longer than this (Kubernetes allows 30 s between SIGTERM and SIGKILL).
const DRAIN_MAX: Duration = Duration::from_secs(10);

/// A PINGREQ every 30 s: a dead link is noticed within 1.5 × this, for one ping pair per 30 s.
const KEEP_ALIVE: Duration = Duration::from_secs(30);

/// How long one connection attempt may take before the supervisor's backoff takes over.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// One member of a shared subscription ($share/<group>/<topic>), with Paho on smol.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    connect: ConnectArgs,

    /// Shared-subscription group. Every process in one group splits one stream; each group gets
    /// every message. Default: `<clientId>-workers`.
    #[arg(long, value_name = "NAME", value_parser = common::share_group::parse_group)]
    group: Option<String>,

    /// Keep this member's session this long after a disconnect, so a restart with the same
    /// --instance loses nothing. 0: clean start, nothing kept (right for pid-based ids).
    #[arg(long, value_name = "SECS", default_value_t = 0)]
    session_expiry: u32,

    /// Simulated I/O-bound processing per message, in milliseconds (tests, benchmarks).
    #[arg(long, value_name = "MS", default_value_t = 0)]
    work_ms: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.session_expiry > 0 && args.connect.instance.is_none() {
        // Exits with the usage code (2), like any other bad flag.
        Args::command()
            .error(
                ErrorKind::MissingRequiredArgument,
                "--session-expiry needs a stable --instance: without one the client id contains \
                 the process id, the next process never resumes this session, and the messages \
                 the broker keeps routing to it are stranded until it expires",
            )
            .exit();
    }
    common::logging::init(&args.connect.log);
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => common::exit::report(&err),
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    // One client id per process: `<clientId>-<instance>`.
    let mut connect = args.connect.clone();
    if connect.instance.is_none() {
        let derived = common::share_group::derived_instance();
        tracing::info!(
            "no --instance given: using {derived} (host name and process id). Fine for \
             clean-start members; a persistent session needs a stable --instance"
        );
        connect.instance = Some(derived);
    }
    let target = connect.load_target()?;

    let base_id = connect
        .client_id
        .clone()
        .unwrap_or_else(|| target.credentials.client_id.clone());
    let topic = common::credentials::strip_share_prefix(&target.credentials.topic).to_owned();
    let group = args
        .group
        .clone()
        .unwrap_or_else(|| common::share_group::default_group(&target.credentials.topic, &base_id));
    let filter = format!("$share/{group}/{topic}");
    tracing::info!("group {group}: subscribing to {filter}");
    tracing::info!(
        "client id {}; {}",
        target.client_id,
        match args.session_expiry {
            0 => "clean start (no session kept)".to_owned(),
            secs => format!("persistent session kept {secs} s after a disconnect"),
        }
    );
    let worker = Worker {
        filter,
        expiry: args.session_expiry,
        count: args.connect.count,
        work: Duration::from_millis(args.work_ms),
        stats: args.connect.stats,
    };

    // Ctrl-C / SIGTERM: the handler runs on its own thread and only sends a note.
    let (stop_tx, stop_rx) = smol::channel::bounded::<()>(1);
    ctrlc::set_handler(move || {
        let _ = stop_tx.try_send(());
        // A stop always stops: at most STOP_MAX, even with a handler stuck in a message.
        common::paho_util::stop_within(common::paho_util::STOP_MAX);
    })
    .context("installing the Ctrl-C / SIGTERM handler")?;
    let result = smol::block_on(consume(&target, worker, &stop_rx));
    result
}

/// Everything `consume` needs besides the target.
struct Worker {
    filter: String,
    expiry: u32,
    count: Option<u64>,
    work: Duration,
    stats: bool,
}

/// Connects, subscribes to the group and handles messages until Ctrl-C, `--count`, or a failure
/// the supervisor gives up on.
async fn consume(
    target: &BrokerTarget,
    worker: Worker,
    stop_signal: &Receiver<()>,
) -> anyhow::Result<()> {
    let Worker {
        filter,
        expiry,
        count,
        work,
        stats,
    } = worker;
    let id = target.client_id.clone();
    let create = mqtt::CreateOptionsBuilder::new()
        .server_uri(common::paho_util::server_uri(target))
        .client_id(&id)
        .mqtt_version(mqtt::MQTT_VERSION_5)
        .persistence(mqtt::PersistenceType::None)
        .finalize();
    let mut client = mqtt::AsyncClient::new(create).context("creating the Paho client")?;
    // Open the stream before connecting (a resumed session's messages follow the CONNACK at
    // once), and unbounded: a bounded stream drops messages Paho has already acked.
    let events = client.get_event_stream(None);
    let connect_options = connect_options(target, expiry)?;
    tracing::info!("connecting to {} with Paho", target.address());

    let mut supervisor = ConnectionSupervisor::new(target);
    let mut printer = MessagePrinter::new(stats);
    let mut handled = 0u64;
    let stop = loop {
        // 1. Connect (or reconnect). A failure goes to the supervisor (step 3) with its reason.
        let stopped = async {
            let _ = stop_signal.recv().await;
            None
        };
        let connecting = async { Some(client.connect(connect_options.clone()).await) };
        let Some(attempt) = future::or(stopped, connecting).await else {
            break Stop::Requested;
        };
        let failure = match attempt {
            Err(err) => ConnectFailure::from_paho(&err, target),
            Ok(response) => {
                supervisor.connected();
                let session_present = response
                    .connect_response()
                    .is_some_and(|connack| connack.session_present);
                tracing::info!("connected (session present: {session_present})");
                if session_present {
                    tracing::info!(
                        "the broker kept our session: messages queued while we were away arrive \
                         first (subscribing again anyway, in case the previous run died before \
                         its SUBSCRIBE)"
                    );
                }
                // Subscribe after EVERY CONNACK. With a clean start the session is always new; a
                // resumed persistent session normally still has the subscription, but `session
                // present` cannot say *which* subscriptions it holds (a run that died between its
                // CONNACK and its SUBSCRIBE leaves one with none, which would then get nothing
                // until it expires). Subscribing to the same filter again replaces the
                // subscription; the queued messages stay. Retain Handling 1: see `subscribe`.
                //
                // `false`: the connection dropped first; the event stream says so next.
                if subscribe(&client, &filter).await? {
                    tracing::info!("subscribed to {filter} with QoS 1");
                }

                // 2. Handle events until the connection drops, --count is reached, or Ctrl-C.
                let lost = loop {
                    let stopped = async {
                        let _ = stop_signal.recv().await;
                        None
                    };
                    let Some(event) =
                        future::or(stopped, async { Some(events.recv().await) }).await
                    else {
                        break Err(Stop::Requested);
                    };
                    match event {
                        Ok(mqtt::Event::Message(message)) => {
                            handled += 1;
                            handle(&mut printer, &id, handled, &message, work).await;
                            if count == Some(handled) {
                                break Err(Stop::CountReached);
                            }
                        }
                        // Mosquitto drops a connection without a DISCONNECT packet.
                        Ok(mqtt::Event::ConnectionLost) => {
                            break Ok(ConnectFailure::paho_connection_lost(target));
                        }
                        // Other brokers send DISCONNECT with a reason code.
                        Ok(mqtt::Event::Disconnected { reason_code, .. }) => {
                            break Ok(ConnectFailure::from_paho_disconnect(reason_code, target));
                        }
                        Ok(mqtt::Event::Connected | mqtt::Event::Shutdown) => {}
                        Err(_) => anyhow::bail!("Paho's event stream closed unexpectedly"),
                    }
                };
                match lost {
                    Ok(failure) => failure,
                    Err(stop) => break stop,
                }
            }
        };

        // 3. Not connected: wait and retry, or give up with a plain message.
        match supervisor.decide(failure) {
            NextStep::RetryAfter(delay) => {
                // Sleep before reconnecting, but wake up for Ctrl-C.
                let stopped = async { stop_signal.recv().await.is_ok() };
                let slept = async {
                    Timer::after(delay).await;
                    false
                };
                if future::or(stopped, slept).await {
                    break Stop::Requested;
                }
            }
            NextStep::GiveUp(failure) => return Err(failure.into()),
        }
    };

    // 4. Stop. A clean-start worker first leaves the group: what the broker already dealt it
    //    would die with its session, so it handles what is on its way (a graceful scale-down).
    if matches!(stop, Stop::Requested) && expiry == 0 && client.is_connected() {
        tracing::info!("stopping: leaving the group; handling what the broker already sent us");
        // Ask the broker (UNSUBSCRIBE, then again) until two answers in a row come with nothing
        // before them: then it has nothing more for us (see `messages_before_unsuback`). At most
        // DRAIN_MAX.
        let limit = Instant::now() + DRAIN_MAX;
        let mut quiet_answers = 0;
        while quiet_answers < 2 {
            let Some(arrived) =
                common::paho_util::messages_before_unsuback(&client, &events, &filter, limit).await
            else {
                break;
            };
            quiet_answers = if arrived.is_empty() {
                quiet_answers + 1
            } else {
                0
            };
            for message in arrived {
                handled += 1;
                handle(&mut printer, &id, handled, &message, work).await;
            }
        }
    }
    // DISCONNECT, so that no more messages arrive...
    // Says whether the DISCONNECT really went out: the last log line must not claim it otherwise.
    let disconnected = common::paho_util::disconnect(&client).await;
    // ...then deal with what is still in the stream: Paho C has already acknowledged it, so
    // nobody will ever redeliver it. On Ctrl-C we handle it; after --count we can only say so.
    let waiting = common::paho_util::take_waiting_messages(&events);
    match stop {
        Stop::Requested => {
            for message in waiting {
                handled += 1;
                handle(&mut printer, &id, handled, &message, work).await;
            }
        }
        Stop::CountReached => common::paho_util::report_dropped(waiting.len()),
    }

    printer.finish();
    tracing::info!("handled {handled} messages; {disconnected}");
    Ok(())
}

/// Subscribes with QoS 1 (retained messages only for a new subscription) and waits for the
/// SUBACK: `Ok(true)` when granted, `Ok(false)` when the connection dropped first (the event
/// stream reports the loss next), an error when refused.
///
/// Not just `.await` on the token: see `wait_for_suback` for the hang that avoids.
async fn subscribe(client: &mqtt::AsyncClient, filter: &str) -> anyhow::Result<bool> {
    // Retain Handling 1 ("send retained messages only if the subscription is new"): the SUBSCRIBE
    // after a resumed session's CONNACK replaces a subscription the session may still hold, and
    // must not replay the retained messages (MQTT 5 sends none to a new shared subscription
    // anyway; asking explicitly costs nothing).
    let options =
        mqtt::SubscribeOptions::with_retain_handling(mqtt::RetainHandling::SendRetainedOnNew);
    let suback = client.subscribe_with_options(filter, mqtt::QOS_1, options, None);
    common::paho_util::wait_for_suback(client, suback, filter).await
}

/// Every connection setting, in one place: MQTT v5, user name and password, keep-alive, TLS
/// that verifies, and the session.
fn connect_options(target: &BrokerTarget, expiry: u32) -> anyhow::Result<mqtt::ConnectOptions> {
    let mut builder = mqtt::ConnectOptionsBuilder::new_v5();
    builder
        .user_name(&target.credentials.username)
        .password(target.credentials.password.expose())
        // A PINGREQ every 30 s: a dead link is noticed within 1.5 × this.
        .keep_alive_interval(KEEP_ALIVE)
        .connect_timeout(CONNECT_TIMEOUT);
    // TLS: the broker verified against the system's CAs or --ca-file, host name checked (Paho
    // leaves that off unless told: see TlsRoots::paho_ssl_options). Plaintext only when allowed.
    if let Security::Tls(roots) = &target.security {
        let ssl = roots
            .paho_ssl_options()
            .context("setting up TLS for the broker connection")?;
        builder.ssl_options(ssl);
    }
    // Clean start, or resume the session this id left behind, kept `expiry` s after we leave.
    builder.clean_start(expiry == 0);
    if expiry > 0 {
        let mut properties = mqtt::Properties::new();
        properties
            .push_u32(mqtt::PropertyCode::SessionExpiryInterval, expiry)
            .context("setting the session expiry")?;
        builder.properties(properties);
    }
    Ok(builder.finalize())
}

/// Why the main loop ended.
enum Stop {
    /// Ctrl-C or SIGTERM.
    Requested,
    /// `--count` messages were handled.
    CountReached,
}

/// "Handles" one message: the simulated work, then print it (or count it with --stats).
async fn handle(
    printer: &mut MessagePrinter,
    id: &str,
    handled: u64,
    message: &mqtt::Message,
    work: Duration,
) {
    if !work.is_zero() {
        // Stand-in for your real work: a database write, an HTTP call...
        Timer::after(work).await;
    }
    let label = format!("[{id}] message {handled} on {}", message.topic());
    printer.show(&label, message.payload());
}
