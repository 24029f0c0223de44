//! # shared-subscription-rumqttc-native-tls — `shared-subscription` with the platform's TLS library
//! Read more: docs/src/shared-subscriptions.md
//!
//! **What it shows.** The same program as `shared-subscription` (read its `main.rs`: groups,
//! client ids, the graceful leave, what happens to messages when a member goes away), with one
//! line changed: rumqttc speaks TLS through native-tls (OpenSSL on Linux, SChannel on Windows,
//! Secure Transport on macOS) instead of rustls; `tls-connect-rumqttc-native-tls` says when to
//! choose it.
//!
//! **Run it.**
//! ```text
//! cargo run -p shared-subscription --features native-tls --bin shared-subscription-rumqttc-native-tls -- --creds creds.json --instance 1
//! cargo run -p shared-subscription --features native-tls --bin shared-subscription-rumqttc-native-tls -- --creds creds.json --instance 2
//! ```
//! Every flag of the default works the same (`--group`, `--instance`, `--session-expiry`,
//! `--work-ms`, `--count`, `--stats`).
//!
//! **How it differs from the default program.** `target.rumqttc_native_tls()` instead of
//! `target.rumqttc_tls()` in `mqtt_options`.
//!
//! **What it cannot do.** Nothing is lost: every practice of the default carries over.
//!
//! **Behind a cluster** (one DNS name, several nodes): `BrokerAddresses` rotates addresses only
//! with rustls (it checks the host name with a rustls verifier); here rumqttc resolves the name
//! itself, and a silent node can hold up the failover (docs/src/reconnects.md).

use std::process::ExitCode;
use std::sync::{atomic::AtomicU64, atomic::Ordering, Arc};
use std::time::{Duration, Instant};

use clap::{error::ErrorKind, CommandFactory, Parser};
use common::broker_addresses::BrokerAddresses;
use common::{rumqttc_util::poll_or_silence, share_drain::Drain, share_drain::Step};
use common::{supervisor::NextStep, BrokerTarget, ConnectArgs, ConnectionSupervisor};
use rumqttc::v5::mqttbytes::{v5::Filter, v5::Packet, v5::Publish, v5::RetainForwardRule, QoS};
use rumqttc::{v5::AsyncClient, v5::Event, v5::MqttOptions, Transport};
use tokio::sync::mpsc;

/// MQTT v5 Receive Maximum: how many unacked messages the broker may send us at a time (a backlog
/// waits on the broker, not here). Also the work queue's size: every queued message is unacked.
const RECEIVE_MAXIMUM: u16 = 32;
/// A PINGREQ every 30 s: a dead link is noticed within 1.5 × this, for one ping pair per 30 s.
const KEEP_ALIVE: Duration = Duration::from_secs(30);
/// A stop drains (leaves the group, finishes what was received) for at most this long:
/// Kubernetes sends SIGKILL 30 s after SIGTERM, and the DISCONNECT must go out before.
const DRAIN_MAX: Duration = Duration::from_secs(10);

#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Shared-subscription group: its members split one stream. Default: `<clientId>-workers`.
    #[arg(long, value_name = "NAME", value_parser = common::share_group::parse_group)]
    group: Option<String>,
    /// Keep the session this long after a disconnect (needs --instance). 0: clean start.
    #[arg(long, value_name = "SECS", default_value_t = 0)]
    session_expiry: u32,
    /// Simulated I/O-bound processing per message, in milliseconds (tests, benchmarks).
    #[arg(long, value_name = "MS", default_value_t = 0)]
    work_ms: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    if args.session_expiry > 0 && args.connect.instance.is_none() {
        let why = "--session-expiry needs a stable --instance: a process id in the client id is \
                   never seen again, and what the broker keeps for it is stranded until it expires";
        let mut usage = Args::command(); // exits with the usage code (2), like any bad flag
        usage.error(ErrorKind::MissingRequiredArgument, why).exit();
    }
    common::logging::init(&args.connect.log);
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => common::exit::report(&err),
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    // One client id per process: `<clientId>-<instance>`, by default `<host name>-<pid>`.
    let mut connect = args.connect.clone();
    let derived_instance = common::share_group::derived_instance;
    connect.instance.get_or_insert_with(derived_instance);
    let target = connect.load_target()?;
    let creds_id = &target.credentials.client_id;
    let base_id = connect.client_id.as_ref().unwrap_or(creds_id);
    let topic = common::credentials::strip_share_prefix(&target.credentials.topic);
    // ANCHOR: share_filter
    let default_group = || common::share_group::default_group(&target.credentials.topic, base_id);
    let group = args.group.clone().unwrap_or_else(default_group);
    let filter = format!("$share/{group}/{topic}");
    // ANCHOR_END: share_filter
    let (expiry, id) = (args.session_expiry, target.client_id.clone());
    tracing::info!("group {group}: subscribing to {filter}");
    let address = target.address();
    tracing::info!("client id {id}; broker {address}; session kept {expiry} s (0: clean start)");

    // `ack()` must never wait for room, or handler and loop wait on each other: see the constant.
    let capacity = common::rumqttc_util::REQUEST_CHANNEL_CAPACITY;
    // How a client follows a broker CLUSTER behind one DNS name: before every (re)connect, resolve
    // again, start at the next address, skip a dead node (common::broker_addresses says why).
    let mut addresses = BrokerAddresses::new(&target, &mqtt_options(&target, expiry)?)?;
    let (client, mut eventloop) = AsyncClient::new(addresses.next_attempt().await, capacity);
    // The stale-ack guard: bumped whenever a connection fails, and every message carries the
    // number of the connection that delivered it (a packet id means nothing on a later one).
    let connection = Arc::new(AtomicU64::new(0));
    let (work_tx, mut work_rx) = mpsc::channel::<(Publish, u64)>(usize::from(RECEIVE_MAXIMUM));
    let (handler_client, handler_connection) = (client.clone(), Arc::clone(&connection));
    let (count, work) = (args.connect.count, Duration::from_millis(args.work_ms));
    let mut printer = common::MessagePrinter::new(args.connect.stats);
    let handler = tokio::spawn(async move {
        let mut handled = 0u64;
        while let Some((publish, delivered_on)) = work_rx.recv().await {
            if !work.is_zero() {
                tokio::time::sleep(work).await; // your real work: a database write, an HTTP call
            }
            handled += 1;
            let topic = String::from_utf8_lossy(&publish.topic);
            let label = format!("[{id}] message {handled} on {topic}");
            printer.show(&label, &publish.payload);
            // Handled: now, and only now, the broker may forget it; but only on the connection
            // that delivered it (after a reconnect the broker resends it, or it died with it).
            if delivered_on == handler_connection.load(Ordering::SeqCst) {
                handler_client.ack(&publish).await?;
            }
            if count == Some(handled) {
                break;
            }
        }
        printer.finish();
        anyhow::Ok(handled)
    });

    let mut last_heard = tokio::time::Instant::now();
    let mut supervisor = ConnectionSupervisor::new(&target);
    let shutdown = common::shutdown::signal();
    tokio::pin!(shutdown);
    let mut drain = Drain::new(); // while leaving the group: has the broker sent us everything?
    loop {
        let leaving = drain.is_leaving();
        let give_up = drain.deadline().unwrap_or_else(Instant::now).into();
        tokio::select! {
            _ = &mut shutdown, if !leaving => {
                if expiry > 0 {
                    break; // our session keeps our share while we restart
                }
                // Clean start: what the broker already dealt us dies with the session, so leave
                // the group first and handle what is on its way (a graceful scale-down).
                client.try_unsubscribe(filter.clone())?;
                tracing::info!("stopping: leaving the group; handling what it already sent us");
                drain.leave(Instant::now() + DRAIN_MAX);
            }
            _ = tokio::time::sleep_until(give_up), if leaving => {
                tracing::warn!("the drain did not end within {DRAIN_MAX:?}: stopping anyway");
                break;
            }
            _ = work_tx.closed() => break, // the handler stopped: --count reached, or an error
            // The back-pressure: while the work queue is full, wait for room instead of polling.
            _ = work_tx.reserve(), if work_tx.capacity() == 0 => {}
            event = poll_or_silence(&mut eventloop, &mut last_heard, KEEP_ALIVE * 3 / 2),
                if work_tx.capacity() > 0 => {
                // Leaving: ask "anything more for me?" (UNSUBSCRIBE) until the UNSUBACKs say no.
                match drain.observe(&event) {
                    Step::Done => break,
                    Step::AskAgain => client.try_unsubscribe(filter.clone())?,
                    Step::Continue => {}
                }
                match event {
                    Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                        supervisor.connected();
                        tracing::info!("connected (session present: {})", ack.session_present);
                        // Subscribe after EVERY CONNACK: a resumed session may hold none (a run
                        // that died before its SUBSCRIBE). Again replaces it; the queue stays.
                        client.try_subscribe_many([subscription(&filter)])?;
                    }
                    Ok(Event::Incoming(Packet::SubAck(ack))) => {
                        common::rumqttc_util::check_suback(&ack, &filter)?;
                        tracing::info!("subscribed to {filter} with QoS 1");
                    }
                    Ok(Event::Incoming(Packet::Publish(publish))) => {
                        let delivery = (publish, connection.load(Ordering::SeqCst));
                        if work_tx.try_send(delivery).is_err() {
                            break; // there was room (we polled only then): the handler is gone
                        }
                    }
                    Ok(_) => {}
                    Err(_) if leaving => break, // a clean-start session dies with its connection
                    Err(err) => {
                        connection.fetch_add(1, Ordering::SeqCst); // its packet ids are void now
                        // Retry with backoff (broker restarting, network blip), waking up for a
                        // stop; give up on what a retry cannot fix (wrong password, id in use).
                        let delay = match supervisor.failed(&err) {
                            NextStep::RetryAfter(delay) => delay,
                            NextStep::GiveUp(failure) => return Err(failure.into()),
                        };
                        if tokio::time::timeout(delay, &mut shutdown).await.is_ok() {
                            break;
                        }
                        eventloop.options = addresses.next_attempt().await;
                    }
                }
            }
        }
    }

    drop(work_tx); // the handler finishes and acks what is queued, within DRAIN_MAX
    let handled = common::shutdown::drain(handler, DRAIN_MAX).await?;
    // Flushes the queued acks, then DISCONNECT: the broker then forgets what we handled.
    let disconnected = common::rumqttc_util::disconnect(&client, &mut eventloop).await;
    tracing::info!("handled {} messages; {disconnected}", handled.unwrap_or(0));
    Ok(())
}

/// Every connection setting, in one place.
fn mqtt_options(target: &BrokerTarget, expiry: u32) -> anyhow::Result<MqttOptions> {
    let creds = &target.credentials;
    let mut options = MqttOptions::new(target.client_id.clone(), creds.host.clone(), creds.port);
    options
        .set_credentials(creds.username.clone(), creds.password.expose().to_owned())
        .set_keep_alive(KEEP_ALIVE)
        .set_max_packet_size(Some(256 * 1024)) // rumqttc's 10 KiB is tight for batched events
        // We publish nothing: a few outgoing slots, not rumqttc's 65,536 (13.5 MiB up front).
        .set_outgoing_inflight_upper_limit(common::cli::CONSUMER_OUTGOING_INFLIGHT)
        // Ack after processing (see the handler): a crash in between means a redelivery.
        .set_manual_acks(true)
        // Flow control: at most RECEIVE_MAXIMUM unacked messages on their way. Mosquitto 2.0.11
        // keeps to it only until our first ack, which is why `ack()` must never wait for room.
        .set_receive_maximum(Some(RECEIVE_MAXIMUM));
    // ANCHOR: share_session
    // Clean start, or resume the session this id left behind, kept `expiry` s after we leave.
    options.set_clean_start(expiry == 0);
    if expiry > 0 {
        options.set_session_expiry_interval(Some(expiry));
    }
    // ANCHOR_END: share_session
    // TLS through native-tls (OpenSSL on Linux), the broker verified against the system's CAs or
    // --ca-file; None: --insecure-plaintext.
    if let Some(tls) = target.rumqttc_native_tls()? {
        options.set_transport(Transport::tls_with_config(tls));
    }
    Ok(options)
}

/// QoS 1, and Retain Handling "only if new": the SUBSCRIBE after a resumed session's CONNACK
/// must not replay retained messages (MQTT 5 sends none to a shared subscription anyway).
fn subscription(filter: &str) -> Filter {
    let mut filter = Filter::new(filter, QoS::AtLeastOnce);
    filter.retain_forward_rule = RetainForwardRule::OnNewSubscribe;
    filter
}
