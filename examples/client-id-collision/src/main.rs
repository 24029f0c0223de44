//! # client-id-collision — two connections, one client id: see the fight, detect it, stop
//! Read more: docs/src/client-ids.md
//!
//! **What it shows.** An MQTT broker keeps exactly one connection per client id. When a second
//! connection arrives with an id that is already connected, the broker closes the *old* one. If
//! both clients reconnect automatically (every good client does), each reconnect kicks the other
//! off: they disconnect each other for ever, a few times a second, and both miss messages. This
//! program starts two connections with the same client id, lets you watch that ping-pong, and then
//! shows the cure: recognise the pattern after a few rounds, stop fighting, and exit with code 6
//! and one plain sentence ("client id X is used by another process … give each process its own
//! id, for example --instance 1, --instance 2").
//!
//! **Why.** The Link Labs credentials object contains one `clientId`. Copy the same `creds.json`
//! to two machines, scale a deployment to two replicas, or start a second copy "just to test",
//! and you have this bug. Nothing fails loudly: both processes look connected most of the time.
//!
//! **How the collision is recognised** (`common::ConnectionSupervisor` does it; read
//! `common/src/supervisor.rs`):
//! - an MQTT v5 DISCONNECT with reason 0x8E *Session taken over* means it for certain: stop at
//!   once. Brokers such as EMQX, HiveMQ and the embedded demo broker send it;
//! - but Mosquitto 2.0 just closes the old socket without any reason code, and rumqttc 0.25.1
//!   cannot parse the short 3-byte DISCONNECT `e0 01 8e` that some brokers send (it reports a
//!   closed connection instead). So the reliable signal is the pattern itself: **the broker closed
//!   the connection within 5 s of accepting it, 3 times in a row** → another client has our id.
//!
//! The first process to see three such drops gives up; the other one keeps its connection. A
//! connection that had been up for a while before the newcomer arrived does not count its first
//! drop, so it is usually the *newcomer* that gives up and the established process survives.
//!
//! **Run it.**
//! ```text
//! cargo run -p client-id-collision                       # demo broker, two connections A and B
//! cargo run -p client-id-collision -- --creds creds.json # your broker, two connections A and B
//! # Two processes, as in production: the same command in two terminals. (It needs a broker
//! # both can reach, so real credentials: each demo run starts a broker of its own.)
//! cargo run -p client-id-collision -- --creds creds.json --single
//! # The fix: one id per process
//! cargo run -p client-id-collision -- --creds creds.json --single --instance 1
//! cargo run -p client-id-collision -- --creds creds.json --single --instance 2
//! ```
//!
//! **What you will see.** Connection A connects and subscribes; then B connects with the same
//! client id and the broker closes A ("connection ended 80 ms after its CONNACK"). A
//! reconnects and B is closed, and so on, with growing pauses. After the third quick drop one of
//! them logs `client id collision detected N ms after the first takeover` and the program exits
//! with code 6 and the plain message. With `--single` in two terminals, one of the two does that
//! and the other keeps running. With `--instance` both keep running and both receive every event.
//!
//! **Deliberately left out.** Everything `tls-connect` explains (TLS, acks after processing,
//! back-pressure) is used here the same way but not explained again. Splitting work between
//! processes is `shared-subscription`; keeping a session across restarts is `persistent-session`
//! (which needs a *stable* id per instance — exactly what `--instance` gives).
//!
//! **Exit codes.** 6 = the client id is used by another process: restarting will not help, so a
//! supervisor (systemd, Kubernetes) should not restart on 6 without a configuration change.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use common::supervisor::NextStep;
use common::{BrokerTarget, ConnectArgs, ConnectionSupervisor, FailureKind, MessagePrinter};
use rumqttc::v5::mqttbytes::v5::{Packet, Publish};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tracing::Instrument;

/// MQTT v5 Receive Maximum: how many messages the broker may send before we ack one. Also the
/// work queue's size: every queued message is unacked, so a broker that keeps to it never finds
/// the queue full.
const RECEIVE_MAXIMUM: u16 = 128;

/// How long a stop (Ctrl-C, SIGTERM) waits for the handler to finish what it already received.
/// Kubernetes sends SIGKILL 30 s after SIGTERM; stopping well before leaves time for DISCONNECT.
const DRAIN_MAX: std::time::Duration = std::time::Duration::from_secs(10);

/// Start two connections with one client id and watch the broker make them take turns.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    connect: ConnectArgs,

    /// Open one connection instead of two. Run the same command in two terminals (same
    /// creds.json) to see two *processes* collide, as they would in production.
    #[arg(long)]
    single: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    common::logging::init(&args.connect.log);
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => common::exit::report(&err),
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let (target, demo) = demo_broker::target_or_demo(&args.connect).await?;
    let settings = Settings {
        target,
        count: args.connect.count,
        stats: args.connect.stats,
    };

    // `true` tells every connection to disconnect cleanly and return.
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    if args.single {
        connections.spawn(connection(None, settings, stop_rx, None));
    } else {
        tracing::info!(
            "starting two connections, A and B, both with client id {}: the broker will keep \
             only one of them",
            settings.target.client_id
        );
        // B connects only once A is subscribed, so you first see A working, then B taking over.
        let (a_subscribed, b_may_start) = oneshot::channel();
        let span = tracing::info_span!("connection", name = "A");
        connections.spawn(
            connection(
                Some("A"),
                settings.clone(),
                stop_rx.clone(),
                Some(a_subscribed),
            )
            .instrument(span),
        );
        let span = tracing::info_span!("connection", name = "B");
        connections.spawn(
            async move {
                match b_may_start.await {
                    Ok(()) => connection(Some("B"), settings, stop_rx, None).await,
                    // A ended before it was subscribed: its result tells why.
                    Err(_) => Ok(()),
                }
            }
            .instrument(span),
        );
    }

    // Wait for the connections. The first to end (Ctrl-C, --count, or giving up) stops the others,
    // and its error, if any, is the program's result.
    let shutdown = common::shutdown::signal();
    tokio::pin!(shutdown);
    let mut outcome = Ok(());
    loop {
        tokio::select! {
            _ = &mut shutdown, if !*stop_tx.borrow() => {
                tracing::info!("stop requested");
                stop_tx.send_replace(true);
            }
            joined = connections.join_next() => match joined {
                None => break,
                Some(result) => {
                    stop_tx.send_replace(true);
                    let result = result.context("a connection task failed").and_then(|r| r);
                    // The first error is the cause; anything after it follows from stopping.
                    if let Err(err) = result {
                        if outcome.is_ok() {
                            outcome = Err(err);
                        }
                    }
                }
            },
        }
    }
    if let Some(demo) = demo {
        demo.shutdown().await;
    }
    outcome
}

/// What every connection needs to know.
#[derive(Clone)]
struct Settings {
    target: BrokerTarget,
    count: Option<u64>,
    stats: bool,
}

/// One MQTT connection, structured exactly like `tls-connect`: this task polls the event loop,
/// a handler task prints and acks. Returns when `stop` turns true, after `--count` messages, or
/// with the supervisor's verdict (for example: our client id is taken).
async fn connection(
    name: Option<&'static str>,
    settings: Settings,
    mut stop: watch::Receiver<bool>,
    mut on_subscribed: Option<oneshot::Sender<()>>,
) -> anyhow::Result<()> {
    let target = &settings.target;
    let topic = target.credentials.topic.clone();
    let mut options = target
        .rumqttc_options()
        .context("setting up TLS for the broker connection")?;
    // As in tls-connect: ack after processing; no session kept across restarts; at most
    // RECEIVE_MAXIMUM unacked messages on their way to us.
    options
        .set_manual_acks(true)
        .set_clean_start(true)
        .set_receive_maximum(Some(RECEIVE_MAXIMUM));
    let (client, mut eventloop) =
        AsyncClient::new(options, common::rumqttc_util::REQUEST_CHANNEL_CAPACITY);
    tracing::info!(
        "connecting to {} as client id {}",
        target.address(),
        target.client_id
    );

    let (work_tx, mut work_rx) = mpsc::channel::<Publish>(usize::from(RECEIVE_MAXIMUM));
    let handler_client = client.clone();
    let count = settings.count;
    let mut printer = MessagePrinter::new(settings.stats);
    let suffix = name.map_or(String::new(), |name| format!(" (connection {name})"));
    let mut handler = tokio::spawn(async move {
        let mut handled = 0u64;
        while let Some(publish) = work_rx.recv().await {
            handled += 1;
            let topic = String::from_utf8_lossy(&publish.topic);
            printer.show(
                &format!("message {handled} on {topic}{suffix}"),
                &publish.payload,
            );
            handler_client.ack(&publish).await?;
            if count == Some(handled) {
                break;
            }
        }
        printer.finish();
        anyhow::Ok(handled)
    });

    // The idle watchdog (see `poll_or_silence`): 1.5 × keep-alive without a packet from the
    // broker means a dead link. The keep-alive (30 s, set in common::cli) is the trade-off:
    // shorter notices a dead link sooner, and costs a PINGREQ/PINGRESP pair per keep-alive.
    let idle_limit = eventloop.options.keep_alive() * 3 / 2;
    let mut last_heard = tokio::time::Instant::now();
    let mut supervisor = ConnectionSupervisor::new(target);
    // Only for the log line that makes the symptom visible: how long each connection lived.
    let mut connected_at: Option<Instant> = None;

    let stop_reason = loop {
        tokio::select! {
            _ = stopped(&mut stop) => break Stop::Requested,
            result = &mut handler => break Stop::HandlerFinished(result),
            event = poll_or_silence(&mut eventloop, &mut last_heard, idle_limit) => match event {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    supervisor.connected();
                    connected_at = Some(Instant::now());
                    tracing::info!("connected (session present: {})", ack.session_present);
                    if !ack.session_present {
                        client.try_subscribe(topic.clone(), QoS::AtLeastOnce)?;
                    }
                }
                Ok(Event::Incoming(Packet::SubAck(ack))) => {
                    common::rumqttc_util::check_suback(&ack, &topic)?;
                    tracing::info!("subscribed to {topic} with QoS 1");
                    if let Some(subscribed) = on_subscribed.take() {
                        let _ = subscribed.send(());
                    }
                }
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    // A stop request still wins while we wait: never deaf to SIGTERM.
                    tokio::select! {
                        sent = work_tx.send(publish) => if sent.is_err() {
                            break Stop::HandlerFinished((&mut handler).await);
                        },
                        _ = stopped(&mut stop) => break Stop::Requested,
                    }
                }
                Ok(_) => {}
                Err(err) => {
                    // The symptom: a connection closed by the broker moments after it was
                    // accepted. One such drop is an accident; the same drop again and again is
                    // another client with our id.
                    if let Some(since) = connected_at.take() {
                        tracing::warn!(
                            "connection ended {} ms after its CONNACK",
                            since.elapsed().as_millis()
                        );
                    }
                    match supervisor.failed(&err) {
                        NextStep::RetryAfter(delay) => {
                            if tokio::time::timeout(delay, stopped(&mut stop)).await.is_ok() {
                                break Stop::Requested;
                            }
                        }
                        NextStep::GiveUp(failure) => {
                            if failure.kind == FailureKind::ClientIdTaken {
                                report_detection(&supervisor);
                            }
                            return Err(failure.into());
                        }
                    }
                }
            },
        }
    };

    let handled = match stop_reason {
        Stop::Requested => {
            drop(work_tx);
            // At most DRAIN_MAX: a stop always stops, even with a stuck handler.
            common::shutdown::drain(handler, DRAIN_MAX)
                .await?
                .unwrap_or_default()
        }
        Stop::HandlerFinished(result) => result??,
    };
    let disconnected = common::rumqttc_util::disconnect(&client, &mut eventloop).await;
    tracing::info!("processed {handled} messages; {disconnected}");
    Ok(())
}

/// Resolves once the program asks its connections to stop.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    // An error means the sender is gone, which also means: stop.
    let _ = stop.wait_for(|stopped| *stopped).await;
}

/// Logs how long the collision took to recognise: from the first drop (the moment the other
/// connection's CONNACK pushed us out) to the decision to stop.
fn report_detection(supervisor: &ConnectionSupervisor) {
    match supervisor.takeover_suspected_at() {
        Some(first_drop) => tracing::error!(
            "client id collision detected {} ms after the first takeover; not reconnecting",
            first_drop.elapsed().as_millis()
        ),
        None => tracing::error!("client id collision detected; not reconnecting"),
    }
}

/// Why a connection's loop ended.
enum Stop {
    /// Ctrl-C / SIGTERM, or another connection of this program ended.
    Requested,
    /// The handler task returned (after `--count` messages, or with an error).
    HandlerFinished(Result<anyhow::Result<u64>, tokio::task::JoinError>),
}

/// One `eventloop.poll()`, watched by the idle watchdog (issue #12).
///
/// rumqttc sends a PINGREQ every keep-alive, so a live broker sends us something — a PINGRESP at
/// least — within every keep-alive. Nothing for `idle_limit` (1.5 × keep-alive) means the link
/// died without a FIN or RST (a pulled cable, a NAT or firewall that forgot us, a frozen host),
/// which TCP does not notice for minutes and rumqttc only after about 2 × keep-alive. Then
/// `clean()` drops the dead connection (unacked messages are kept for the next one) and the
/// error takes the supervisor's retry path like any other failure: the next `poll()` reconnects.
async fn poll_or_silence(
    eventloop: &mut rumqttc::v5::EventLoop,
    last_heard: &mut tokio::time::Instant,
    idle_limit: std::time::Duration,
) -> Result<rumqttc::v5::Event, rumqttc::v5::ConnectionError> {
    tokio::select! {
        // Biased: data already waiting wins over a deadline that passed while we were busy.
        biased;
        event = eventloop.poll() => {
            // Anything but our own outgoing packets (a packet, or a failure) rewinds the watchdog.
            if !matches!(event, Ok(rumqttc::v5::Event::Outgoing(_))) {
                *last_heard = tokio::time::Instant::now();
            }
            event
        }
        () = tokio::time::sleep_until(*last_heard + idle_limit) => {
            eventloop.clean();
            *last_heard = tokio::time::Instant::now();
            Err(common::supervisor::LinkSilent { silent_for: idle_limit }.into_error())
        }
    }
}
