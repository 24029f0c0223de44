//! # persistent-session-rumqttc-blocking — `persistent-session` with threads instead of async
//!
//! **What it shows.** The same consumer as `persistent-session` (read its `main.rs` first: it
//! explains the MQTT v5 trap and what must hold for a backlog to survive): `clean_start = false`
//! **and** a session expiry (`--session-expiry SECS`, default 3600), so the events published
//! while the consumer was down arrive when it comes back with the same client id, and a line at
//! every CONNACK saying whether the broker still had our session.
//!
//! **Run it.**
//! ```text
//! cargo run -p persistent-session --bin persistent-session-rumqttc-blocking -- --creds creds.json --instance 1
//! cargo run -p persistent-session --bin persistent-session-rumqttc-blocking -- --creds creds.json --session-expiry 0  # the trap
//! ```
//! Run, Ctrl-C (or `--count N`), wait while events are published, run again with the same
//! `--instance`: `session present: true`, then the backlog.
//!
//! **How it differs from the default program.** rumqttc's blocking `Client` and two threads
//! (the connection thread and a handler thread behind a bounded `sync_channel`), as
//! `tls-connect-rumqttc-blocking` explains: the connection thread never blocks on a client call,
//! and Ctrl-C / SIGTERM arrive through the `ctrlc` crate. As in the default, the request queue
//! has room for every ack the connection can owe: a backlog is one long burst, and with a small
//! queue the handler's blocking `ack` and the connection thread's hand-over to the full work
//! queue wait for each other for ever.
//!
//! **What it cannot do.** Nothing is lost compared with the default: the session, the backlog,
//! acks after processing with the stale-ack guard, back-pressure, the `(redelivery)` mark and the
//! clean DISCONNECT.

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use common::cli::CONSUMER_OUTGOING_INFLIGHT;
use common::rumqttc_sync::Handoff;
use common::rumqttc_util::REQUEST_CHANNEL_CAPACITY;
use common::supervisor::NextStep;
use common::{ConnectArgs, ConnectionSupervisor, MessagePrinter};
use rumqttc::v5::mqttbytes::v5::{ConnAck, Filter, Packet, Publish, RetainForwardRule};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{Client, Event, MqttOptions, RecvTimeoutError};
use rumqttc::Transport;

/// How long the connection thread waits for network events before checking for Ctrl-C.
const WAKE_UP: Duration = Duration::from_millis(200);

/// MQTT v5 Receive Maximum: how many messages the broker may send before we ack one. Also the
/// work queue's size: every queued message is unacked, so a broker that keeps to it never finds
/// the queue full.
const RECEIVE_MAXIMUM: u16 = 128;
/// A PINGREQ after this much silence; a dead link is noticed after 1.5 × this (see below). The
/// trade-off: shorter notices a dead link sooner, and costs a PINGREQ/PINGRESP pair more often.
const KEEP_ALIVE: Duration = Duration::from_secs(30);
/// The largest packet we accept: rumqttc's default of 10 KiB is tight for batched locations.
const MAX_PACKET_SIZE: u32 = 256 * 1024;

/// How long a stop (Ctrl-C, SIGTERM) waits for the handler to finish what it already received.
/// Kubernetes sends SIGKILL 30 s after SIGTERM; stopping well before leaves time for DISCONNECT.
const DRAIN_MAX: Duration = Duration::from_secs(10);

/// Consume events with a persistent MQTT v5 session: what was published while this consumer was
/// stopped arrives when it starts again (threads, no async).
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    connect: ConnectArgs,

    /// How long, in seconds, the broker keeps our session (subscription and queued QoS 1
    /// messages) after we disconnect. 0 ends the session at disconnect, so nothing is kept: the
    /// MQTT v5 trap, allowed here to show it. 4294967295 means "never expires".
    #[arg(long, value_name = "SECS", default_value_t = 3600)]
    session_expiry: u32,
}

fn main() -> ExitCode {
    let args = Args::parse();
    common::logging::init(&args.connect.log);
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => common::exit::report(&err),
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    // creds.json (or --creds): host, port, user, password, topic; the client id after --instance.
    let target = args.connect.load_target()?;
    let topic = target.credentials.topic.clone();
    let expiry = args.session_expiry;

    let creds = &target.credentials;
    let mut options = MqttOptions::new(target.client_id.clone(), creds.host.clone(), creds.port);
    options
        .set_credentials(creds.username.clone(), creds.password.expose().to_owned())
        .set_keep_alive(KEEP_ALIVE)
        .set_max_packet_size(Some(MAX_PACKET_SIZE))
        // We publish nothing: room for a SUBSCRIBE, not 65,536 slots allocated up front (13 MiB).
        .set_outgoing_inflight_upper_limit(CONSUMER_OUTGOING_INFLIGHT);
    options
        // Ack after processing, not on receipt: a crash between the two then means redelivery,
        // not a lost event. In a persistent session the broker keeps unacked messages for us.
        .set_manual_acks(true)
        // Knob 1: resume the session the broker kept for this client id, if there is one...
        .set_clean_start(false)
        // ...knob 2: and keep this session for `expiry` seconds after we disconnect. Leaving
        // the property out means 0, and then knob 1 has nothing to resume.
        .set_session_expiry_interval(Some(expiry))
        // Flow control: at most RECEIVE_MAXIMUM unacked messages on their way to us.
        .set_receive_maximum(Some(RECEIVE_MAXIMUM));
    // TLS: the broker verified (system CAs or --ca-file, host name checked); None: plaintext.
    if let Some(tls) = target.rumqttc_tls().context("setting up TLS")? {
        options.set_transport(Transport::tls_with_config(tls));
    }
    // `ack()` must never wait for room in rumqttc's request channel: the handler would then
    // wait for this thread and this thread for the handler, for ever. See
    // REQUEST_CHANNEL_CAPACITY.
    let (client, mut connection) = Client::new(options, REQUEST_CHANNEL_CAPACITY);
    tracing::info!(
        "connecting to {} as client id {} with clean_start=false and a session expiry of \
         {expiry} s (the broker keys the session by client id: keep it the same from run to run)",
        target.address(),
        target.client_id,
    );
    if expiry == 0 {
        tracing::warn!(
            "--session-expiry 0: the broker ends our session as soon as we disconnect, so events \
             published while this program is stopped are dropped. This is the MQTT v5 trap: \
             clean_start=false alone keeps nothing."
        );
    }
    // Ctrl-C / SIGTERM: the handler runs on its own thread and only sends a note.
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    ctrlc::set_handler(move || {
        let _ = stop_tx.send(());
    })
    .context("installing the Ctrl-C / SIGTERM handler")?;

    // The number of the current connection, bumped when one fails (see the stale-ack guard).
    let connection_number = Arc::new(AtomicU64::new(0));
    // The bounded work queue between the connection thread (this one) and the handler thread.
    let (work_tx, work_rx) = mpsc::sync_channel::<(u64, Publish)>(usize::from(RECEIVE_MAXIMUM));
    let (handler_client, current) = (client.clone(), Arc::clone(&connection_number));
    let count = args.connect.count;
    let mut printer = MessagePrinter::new(args.connect.stats);
    let handler = thread::spawn(move || -> anyhow::Result<u64> {
        let mut handled = 0u64;
        // Ends when the connection thread drops `work_tx`.
        for (delivered_on, publish) in work_rx {
            handled += 1;
            let topic = String::from_utf8_lossy(&publish.topic);
            // DUP: the broker sent this before and got no ack (we crashed or lost the
            // connection first). We may have handled it already.
            let redelivery = if publish.dup { " (redelivery)" } else { "" };
            printer.show(
                &format!("message {handled} on {topic}{redelivery}"),
                &publish.payload,
            );
            // Handled: now the broker may drop it from our session — but only on the connection
            // that delivered it. On a later one its packet id may name another message, which we
            // would then ack unhandled; the resumed session resends this one instead (DUP).
            if delivered_on == current.load(SeqCst) {
                handler_client.ack(&publish)?;
            }
            if count == Some(handled) {
                break;
            }
        }
        printer.finish();
        Ok(handled)
    });

    // The idle watchdog: 1.5 × keep-alive without a packet from the broker means a dead link
    // (see the `RecvTimeoutError::Timeout` arm below).
    let idle_limit = KEEP_ALIVE * 3 / 2;
    let mut last_heard = std::time::Instant::now();
    let mut supervisor = ConnectionSupervisor::new(&target);
    let mut connected = false;
    loop {
        if stop_rx.try_recv().is_ok() {
            tracing::info!("stop requested: finishing the messages already received");
            break;
        }
        // The handler ends on its own only when --count messages were handled (or on error).
        if handler.is_finished() {
            break;
        }
        // While (re)connecting, wait without a time limit: a `recv_timeout` that expires abandons
        // the attempt half-way, possibly after the broker has seen our CONNECT (and with a
        // persistent session it then keeps a session without our subscription). rumqttc's
        // connection timeout bounds the wait. Once connected, wake up every WAKE_UP for Ctrl-C.
        let event = if connected {
            match connection.recv_timeout(WAKE_UP) {
                Ok(event) => event,
                // The idle watchdog: rumqttc sends a PINGREQ every keep-alive, so a live broker
                // sends us something within every keep-alive. Nothing for 1.5 × keep-alive means
                // the link died without a FIN or RST (a pulled cable, a NAT that forgot us), which
                // rumqttc alone notices only after about 2 × keep-alive. `clean()` drops the dead
                // connection (unacked messages are kept for the next one); the error takes the
                // retry path below, and the next `recv()` reconnects.
                Err(RecvTimeoutError::Timeout) if last_heard.elapsed() >= idle_limit => {
                    connection.eventloop.clean();
                    Err(common::supervisor::LinkSilent {
                        silent_for: idle_limit,
                    }
                    .into_error())
                }
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => {
                    anyhow::bail!("rumqttc's request queue closed")
                }
            }
        } else {
            match connection.recv() {
                Ok(event) => event,
                Err(_) => anyhow::bail!("rumqttc's request queue closed"),
            }
        };
        // Anything but our own outgoing packets (a packet, or a failure) rewinds the watchdog.
        if !matches!(event, Ok(Event::Outgoing(_))) {
            last_heard = std::time::Instant::now();
        }
        // rumqttc reports a failed or lost connection as an error and reconnects at the next call.
        connected = event.is_ok();
        match event {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                let reconnect = supervisor.ever_connected();
                supervisor.connected();
                explain_session(&ack, expiry, reconnect);
                // Subscribe after EVERY CONNACK, a resumed session too. `session present: true`
                // normally means our subscription survived, but it cannot say *which* subscriptions
                // the session holds: a run that died after its CONNACK and before its SUBSCRIBE
                // reached the broker leaves a session with none, and skipping the SUBSCRIBE would
                // then receive nothing, silently, until that session expires. Subscribing to the
                // same filter again is harmless in MQTT 5: it replaces the subscription and the
                // queued messages stay [MQTT-3.8.4-3]; Retain Handling 1 (see `subscription`) keeps
                // it from replaying retained messages.
                client.try_subscribe_many([subscription(&topic)])?;
            }
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                common::rumqttc_util::check_suback(&ack, &topic)?;
                tracing::info!("subscribed to {topic} with QoS 1");
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                // Blocks while the queue is full: that is the back-pressure. A large backlog
                // therefore arrives no faster than the handler can take it.
                let delivery = (connection_number.load(SeqCst), publish);
                match common::rumqttc_sync::hand_over(&work_tx, delivery, &stop_rx) {
                    Handoff::Queued => {}
                    // The handler is gone; its result (an error or --count) comes next.
                    Handoff::HandlerGone => break,
                    Handoff::StopRequested => {
                        tracing::info!("stop requested: finishing the messages already received");
                        break;
                    }
                }
            }
            Ok(_) => {}
            Err(err) => {
                // This connection's packet ids mean nothing any more: no acks for them.
                connection_number.fetch_add(1, SeqCst);
                // Retry with backoff (a lost link, a broker restart), or stop with the reason in
                // plain words (bad password, client id taken by another process).
                match supervisor.failed(&err) {
                    // Sleep before reconnecting, but wake up for Ctrl-C.
                    NextStep::RetryAfter(delay) => {
                        if stop_rx.recv_timeout(delay).is_ok() {
                            break;
                        }
                    }
                    NextStep::GiveUp(failure) => return Err(failure.into()),
                }
            }
        }
    }

    // Let the handler finish what is queued (and ack it), then send DISCONNECT after the acks.
    drop(work_tx);
    // At most DRAIN_MAX: a stop always stops, even with a stuck handler.
    let handled = common::rumqttc_sync::drain(handler, DRAIN_MAX)?.unwrap_or_default();
    // A clean DISCONNECT (when there is a connection to end): the acks above reach the broker
    // first, so the session we leave behind holds only what we have not handled.
    let disconnected = if connected {
        common::rumqttc_sync::disconnect(&client, &mut connection).to_string()
    } else {
        "not connected, so no DISCONNECT to send".to_owned()
    };
    tracing::info!("processed {handled} messages; {disconnected}");
    if expiry > 0 {
        tracing::info!(
            "the broker keeps our session for {expiry} s: start again with client id {} within \
             that time to receive what is published meanwhile",
            target.client_id
        );
    }
    Ok(())
}

/// Says, in words, what a CONNACK means for the events published while we were away (the
/// sentences are in `common::session`). This is the line to look for in production logs after a
/// restart: `session present: false` where `true` was expected means a backlog was lost.
fn explain_session(ack: &ConnAck, requested_expiry: u32, reconnect: bool) {
    // A broker may grant a shorter expiry than we asked for; it then says so in the CONNACK.
    let granted = ack
        .properties
        .as_ref()
        .and_then(|properties| properties.session_expiry_interval);
    common::session::explain(ack.session_present, requested_expiry, granted, reconnect);
}

/// Our subscription: QoS 1, and MQTT 5 Retain Handling 1 ("send retained messages only if the
/// subscription is new"), so the SUBSCRIBE after a resumed session's CONNACK, which replaces a
/// subscription the session still holds, does not replay the retained messages.
fn subscription(filter: &str) -> Filter {
    Filter {
        retain_forward_rule: RetainForwardRule::OnNewSubscribe,
        ..Filter::new(filter, QoS::AtLeastOnce)
    }
}
