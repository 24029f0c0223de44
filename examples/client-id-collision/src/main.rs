//! # client-id-collision — two processes, one client id: see the fight, detect it, stop
//! Read more: docs/src/client-ids.md
//!
//! **What it shows.** A broker keeps one connection per client id: a second one with the same id
//! closes the *old* one. Two clients that both reconnect kick each other off for ever and miss
//! messages (one `creds.json` on two machines, or two replicas, is enough). This consumer
//! recognises the pattern, stops fighting and exits with code 6 and one plain sentence.
//!
//! **The detection rule** (`TakeoverDetector` below; `common::ConnectionSupervisor` applies the
//! same rule with the same constants in every other example): a DISCONNECT with reason 0x8E
//! *Session taken over* is certain: stop at once. Otherwise: the broker closed the connection
//! within `QUICK_DROP` (5 s) of its CONNACK, `QUICK_DROPS_FOR_COLLISION` (3) times in a row.
//! (Mosquitto 2.0 closes without a reason code; rumqttc 0.25.1 misreads a 3-byte DISCONNECT.)
//!
//! **Run it.**
//! ```text
//! cargo run -p client-id-collision   # no creds.json: a local broker, this program twice, one id
//! # In two terminals, the same id: one of them exits 6, the other keeps going.
//! cargo run -p client-id-collision --bin client-id-collision -- --creds creds.json
//! # The fix: one id per process.
//! cargo run -p client-id-collision --bin client-id-collision -- --creds creds.json --instance 1
//! cargo run -p client-id-collision --bin client-id-collision -- --creds creds.json --instance 2
//! ```
//!
//! **What you will see.** `connection ended 80 ms after its CONNACK`, in turn in both; after the
//! third quick drop one logs `client id collision detected N ms after the first takeover` and
//! exits 6 (systemd or Kubernetes should not restart on 6); the other, usually the older, stays.
//!
//! **Deliberately left out.** What `tls-connect` explains (TLS, acks after handling,
//! back-pressure) is used here the same way, not explained again.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use common::failure::{ConnectFailure, FailureKind};
use common::rumqttc_util::poll_or_silence;
use common::supervisor::{NextStep, QUICK_DROP, QUICK_DROPS_FOR_COLLISION};
use common::{BrokerTarget, ConnectArgs, ConnectionSupervisor, MessagePrinter};
use rumqttc::v5::mqttbytes::v5::{Filter, Packet, Publish, RetainForwardRule};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use rumqttc::Transport;
use tokio::sync::mpsc;

/// MQTT v5 Receive Maximum: how many unacked messages the broker may send us. Also the work
/// queue's size (every queued message is unacked), so a broker that keeps to it never fills it.
const RECEIVE_MAXIMUM: u16 = 128;

/// A PINGREQ this often when idle: shorter notices a dead link sooner, at a PINGREQ per interval.
const KEEP_ALIVE: Duration = Duration::from_secs(30);

/// How long a stop (Ctrl-C, SIGTERM) waits for the handler: well inside Kubernetes' 30 s grace.
const DRAIN_MAX: Duration = Duration::from_secs(10);

/// Consume with one client id; detect another process using it, and stop.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    connect: ConnectArgs,
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
    // creds.json (or --creds / MQTT_CREDS), validated; `--instance N` makes the id `<clientId>-N`.
    let target = args.connect.load_target()?;
    let topic = target.credentials.topic.clone();
    let creds = &target.credentials;
    let mut options = MqttOptions::new(target.client_id.clone(), creds.host.clone(), creds.port);
    options
        .set_credentials(creds.username.clone(), creds.password.expose().to_owned())
        .set_keep_alive(KEEP_ALIVE)
        // The largest packet we accept: rumqttc's 10 KiB default is tight for batched events.
        .set_max_packet_size(Some(256 * 1024))
        // rumqttc reserves memory per outgoing in-flight slot (65,536 by default: 13.5 MiB).
        .set_outgoing_inflight_upper_limit(common::cli::CONSUMER_OUTGOING_INFLIGHT)
        // Ack after handling, not on receipt: a crash in between means redelivery, not a loss.
        .set_manual_acks(true)
        // No session kept across restarts, so no acks owed to an earlier connection: no stale-ack
        // guard needed (`persistent-session` keeps one).
        .set_clean_start(true)
        .set_receive_maximum(Some(RECEIVE_MAXIMUM));
    // TLS (rustls; `tls-connect` builds the same trust in view), unless --insecure-plaintext.
    let tls = target.rumqttc_tls();
    if let Some(tls) = tls.context("setting up TLS for the broker connection")? {
        options.set_transport(Transport::tls_with_config(tls));
    }
    let (client, mut eventloop) =
        AsyncClient::new(options, common::rumqttc_util::REQUEST_CHANNEL_CAPACITY);
    tracing::info!("connecting to {} as {}", target.address(), target.client_id);

    // The handler task, as in `tls-connect`: print, then ack.
    let (work_tx, mut work_rx) = mpsc::channel::<Publish>(usize::from(RECEIVE_MAXIMUM));
    let handler_client = client.clone();
    let count = args.connect.count;
    let mut printer = MessagePrinter::new(args.connect.stats);
    let mut handler = tokio::spawn(async move {
        let mut handled = 0u64;
        while let Some(publish) = work_rx.recv().await {
            handled += 1;
            let topic = String::from_utf8_lossy(&publish.topic);
            printer.show(&format!("message {handled} on {topic}"), &publish.payload);
            handler_client.ack(&publish).await?;
            if count == Some(handled) {
                break;
            }
        }
        printer.finish();
        anyhow::Ok(handled)
    });

    let idle_limit = KEEP_ALIVE * 3 / 2;
    let mut last_heard = tokio::time::Instant::now();
    let mut detector = TakeoverDetector::default();
    // Every other failure: retry with backoff, or stop when retrying cannot help.
    let mut supervisor = ConnectionSupervisor::new(&target);
    let shutdown = common::shutdown::signal();
    tokio::pin!(shutdown);

    // `None`: a stop request (Ctrl-C, SIGTERM); `Some`: the handler ended (--count, or an error).
    let handler_result = loop {
        tokio::select! {
            _ = &mut shutdown => break None,
            result = &mut handler => break Some(result),
            event = poll_or_silence(&mut eventloop, &mut last_heard, idle_limit) => match event {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    detector.connected_at = Some(Instant::now());
                    supervisor.connected();
                    tracing::info!("connected (session present: {})", ack.session_present);
                    // Subscribe after EVERY CONNACK, with Retain Handling "only if new".
                    let filter = Filter {
                        retain_forward_rule: RetainForwardRule::OnNewSubscribe,
                        ..Filter::new(topic.clone(), QoS::AtLeastOnce)
                    };
                    client.try_subscribe_many([filter])?;
                }
                Ok(Event::Incoming(Packet::SubAck(ack))) => {
                    common::rumqttc_util::check_suback(&ack, &topic)?;
                    tracing::info!("subscribed to {topic} with QoS 1");
                }
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    tokio::select! {
                        sent = work_tx.send(publish) => if sent.is_err() {
                            break Some((&mut handler).await);
                        },
                        _ = &mut shutdown => break None,
                    }
                }
                Ok(_) => {}
                Err(err) => {
                    // Another process has our id: stop (exit code 6). Reconnecting would only
                    // continue the fight, and so would restarting.
                    let failure = ConnectFailure::from_rumqttc(&err, &target);
                    if let Some(taken) = detector.failed(failure, &target) {
                        let ms = detector.first_drop.map_or(0, |at| at.elapsed().as_millis());
                        tracing::error!("client id collision detected {ms} ms after the first \
                                         takeover; not reconnecting");
                        return Err(taken.into());
                    }
                    match supervisor.failed(&err) {
                        NextStep::RetryAfter(delay) => {
                            if tokio::time::timeout(delay, &mut shutdown).await.is_ok() {
                                break None;
                            }
                        }
                        NextStep::GiveUp(failure) => return Err(failure.into()),
                    }
                }
            },
        }
    };

    let handled = match handler_result {
        None => {
            drop(work_tx);
            common::shutdown::drain(handler, DRAIN_MAX)
                .await?
                .unwrap_or_default()
        }
        Some(result) => result??,
    };
    let disconnected = common::rumqttc_util::disconnect(&client, &mut eventloop).await;
    tracing::info!("processed {handled} messages; {disconnected}");
    Ok(())
}

// ANCHOR: takeover_rule
/// The collision rule. Fed every connection failure; says when another process has our id.
#[derive(Default)]
struct TakeoverDetector {
    /// Our last CONNACK, while that connection lasts.
    connected_at: Option<Instant>,
    /// Connections in a row that the broker closed within QUICK_DROP of their CONNACK.
    quick_drops: u32,
    /// The first of those drops: when the other process most likely connected.
    first_drop: Option<Instant>,
}

impl TakeoverDetector {
    /// `Some`: another process has our client id; the failure to report (exit code 6).
    fn failed(&mut self, failure: ConnectFailure, target: &BrokerTarget) -> Option<ConnectFailure> {
        let lived = self.connected_at.take().map(|since| since.elapsed());
        if let Some(ms) = lived.map(|lived| lived.as_millis()) {
            // The symptom, made visible: a connection closed moments after it was accepted.
            tracing::warn!("connection ended {ms} ms after its CONNACK");
        }
        // Certain: the broker says so (DISCONNECT 0x8E Session taken over).
        if failure.kind == FailureKind::ClientIdTaken {
            self.first_drop.get_or_insert_with(Instant::now);
            return Some(failure);
        }
        // Only a close by the broker counts (on plaintext it reads as "not a TLS port"): a packet
        // too large or a broker shutting down right after CONNACK is another problem.
        let broker_closed = matches!(
            failure.kind,
            FailureKind::ConnectionLost | FailureKind::PlaintextToTlsPort
        );
        match lived {
            Some(lived) if lived < QUICK_DROP && broker_closed => {
                self.first_drop.get_or_insert_with(Instant::now);
                self.quick_drops += 1;
            }
            // Something else right after CONNACK: no sign of a clash, nor proof against one.
            Some(lived) if lived < QUICK_DROP => {}
            // A connection that lasted, then dropped: an ordinary outage; the count starts over.
            Some(_) => *self = TakeoverDetector::default(),
            // Never connected (broker down, refused): says nothing about our id.
            None => {}
        }
        (self.quick_drops >= QUICK_DROPS_FOR_COLLISION).then(|| {
            let detail = format!(
                "the broker closed the connection right after accepting it, {} times in a row ({})",
                self.quick_drops, failure.detail
            );
            ConnectFailure::new(FailureKind::ClientIdTaken, target, detail)
        })
    }
}
// ANCHOR_END: takeover_rule
