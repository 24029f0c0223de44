//! # tls-connect — the smallest correct Link Labs consumer
//! Read more: docs/src/tls.md
//!
//! **What it shows.** A production Link Labs consumer: MQTT v5 over TLS on port 8883 with the
//! trust built right here (rustls: the system's CAs or `--ca-file`; chain *and* host name checked),
//! user name and password from `creds.json`, a QoS 1 subscription after every CONNACK, each event
//! printed as JSON and acked after it was handled, reconnects with backoff, a clean DISCONNECT.
//!
//! **Run it.**
//! ```text
//! cargo run -p tls-connect                      # no creds.json: a local demo broker and this program
//! cargo run -p tls-connect --bin tls-connect -- --creds creds.json
//! cargo run -p tls-connect --bin tls-connect -- --creds creds.json --ca-file ca.pem   # private CA
//! ```
//!
//! **What you will see.** Whom the broker is verified against, `subscribed to <topic>`, then each
//! event as `message 1 on <topic>` and its JSON. Ctrl-C (or SIGTERM) finishes the event at hand,
//! acks it and disconnects. A wrong CA, host name, password or port stops the program with one
//! paragraph saying what to fix and a non-zero exit code.
//!
//! **Deliberately left out** (see the other examples): persistent sessions (`persistent-session`),
//! spreading load over processes (`shared-subscription`), duplicates (`qos1-at-least-once`),
//! client-id clashes (`client-id-collision`), client certificates (Link Labs uses the password).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use common::rumqttc_util::poll_or_silence;
use common::supervisor::NextStep;
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

/// Connect to the Link Labs broker over TLS and print each event.
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
    // creds.json (or --creds / MQTT_CREDS), validated; missing: an error saying where to get one.
    let target = args.connect.load_target()?;
    let topic = target.credentials.topic.clone();
    let creds = &target.credentials;
    let mut options = MqttOptions::new(target.client_id.clone(), creds.host.clone(), creds.port);
    // ANCHOR: options
    options
        .set_credentials(creds.username.clone(), creds.password.expose().to_owned())
        .set_keep_alive(KEEP_ALIVE)
        // The largest packet we accept: rumqttc's 10 KiB default is tight for batched events.
        .set_max_packet_size(Some(256 * 1024))
        // rumqttc reserves memory per outgoing in-flight slot (65,536 by default: 13.5 MiB).
        .set_outgoing_inflight_upper_limit(common::cli::CONSUMER_OUTGOING_INFLIGHT)
        // Ack after handling, not on receipt: a crash in between means redelivery, not a loss.
        .set_manual_acks(true)
        // This example does not keep a session across restarts (see `persistent-session`), so
        // there are no acks owed to an earlier connection and no stale-ack guard is needed.
        .set_clean_start(true)
        // Flow control: a burst waits on the broker, not in this process.
        .set_receive_maximum(Some(RECEIVE_MAXIMUM));
    // ANCHOR_END: options
    // TLS, unless the user opted into plaintext with --insecure-plaintext (`None`).
    if let Some(tls) = broker_tls(&target).context("setting up TLS for the broker connection")? {
        options.set_transport(Transport::tls_with_config(tls));
    }
    // The request channel is sized so `ack()` never waits: see REQUEST_CHANNEL_CAPACITY's docs.
    let (client, mut eventloop) =
        AsyncClient::new(options, common::rumqttc_util::REQUEST_CHANNEL_CAPACITY);
    tracing::info!(
        "connecting to {} as client id {} (TLS: {})",
        target.address(),
        target.client_id,
        target.security
    );

    // The bounded work queue between the polling task (here) and the handler task.
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
            // ANCHOR: ack_after_handling
            // Handled: now, and only now, tell the broker it may forget the message.
            handler_client.ack(&publish).await?;
            // ANCHOR_END: ack_after_handling
            if count == Some(handled) {
                break;
            }
        }
        printer.finish();
        anyhow::Ok(handled)
    });

    // The idle watchdog: nothing from the broker for 1.5 × keep-alive means a dead link.
    let idle_limit = KEEP_ALIVE * 3 / 2;
    let mut last_heard = tokio::time::Instant::now();
    // After a connection error: retry with backoff, or stop when retrying cannot help (a wrong
    // CA, host name or password). See docs/src/reconnects.md.
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
                    supervisor.connected();
                    tracing::info!("connected (session present: {})", ack.session_present);
                    // Subscribe after EVERY CONNACK (not only when no session is present), with
                    // Retain Handling "only if new": a repeat does not resend retained messages.
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
                    // Waits while the queue is full: that is the back-pressure. A stop request
                    // still wins while we wait: a consumer must never be deaf to SIGTERM.
                    tokio::select! {
                        sent = work_tx.send(publish) => if sent.is_err() {
                            break Some((&mut handler).await);
                        },
                        _ = &mut shutdown => break None,
                    }
                }
                Ok(_) => {}
                Err(err) => match supervisor.failed(&err) {
                    NextStep::RetryAfter(delay) => {
                        // Sleep before the next poll() reconnects, but wake up for Ctrl-C.
                        if tokio::time::timeout(delay, &mut shutdown).await.is_ok() {
                            break None;
                        }
                    }
                    NextStep::GiveUp(failure) => return Err(failure.into()),
                },
            },
        }
    };

    let handled = match handler_result {
        None => {
            drop(work_tx);
            // At most DRAIN_MAX: a stop always stops, even with a stuck handler.
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

// ANCHOR: tls_setup
/// Whom we trust to be the broker (`None`: plaintext, only with `--insecure-plaintext`). rustls's
/// default verifier checks that the certificate chains to these roots **and** names the host we
/// dial (`host` in creds.json): host-name verification is on, and nothing here turns it off.
fn broker_tls(target: &BrokerTarget) -> anyhow::Result<Option<rumqttc::TlsConfiguration>> {
    use common::{Security, TlsError, TlsRoots};
    use rustls_pki_types::{pem::PemObject, CertificateDer};
    use std::sync::Arc;

    let Security::Tls(roots) = &target.security else {
        return Ok(None);
    };
    let mut root_store = rustls::RootCertStore::empty();
    match roots {
        // A private broker (or the demo): exactly the CAs in this PEM file, no system CAs.
        TlsRoots::CaFile(path) => {
            let pem = std::fs::read(path).map_err(|source| TlsError::CaFileUnreadable {
                path: path.clone(),
                source,
            })?;
            for cert in CertificateDer::pem_slice_iter(&pem).filter_map(Result::ok) {
                let bad = |err: rustls::Error| TlsError::BadCertificate {
                    path: path.clone(),
                    detail: err.to_string(),
                };
                root_store.add(cert).map_err(bad)?;
            }
            if root_store.is_empty() {
                return Err(TlsError::NoCertificateInCaFile { path: path.clone() }.into());
            }
        }
        // Link Labs' broker has a certificate from a public CA: the OS's store is all it needs.
        TlsRoots::System => {
            let loaded = rustls_native_certs::load_native_certs();
            let (added, _unparsable) = root_store.add_parsable_certificates(loaded.certs);
            if added == 0 {
                let detail = loaded
                    .errors
                    .first()
                    .map_or_else(|| "the store is empty".to_owned(), ToString::to_string);
                return Err(TlsError::NoSystemRoots { detail }.into());
            }
        }
    }
    // The crypto provider named, not left to the process-wide default: when another crate in the
    // binary also enables rustls's `ring`, that default is ambiguous and rustls panics.
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("choosing the TLS protocol versions")?
        .with_root_certificates(root_store)
        // Link Labs authenticates clients by password, not by a client certificate.
        .with_no_client_auth();
    Ok(Some(rumqttc::TlsConfiguration::Rustls(Arc::new(config))))
}
// ANCHOR_END: tls_setup
