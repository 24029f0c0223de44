//! # shared-subscription — spread the event stream over several worker processes
//! Read more: docs/src/shared-subscriptions.md
//!
//! **What it shows.** An MQTT v5 *shared subscription*: every worker subscribes to
//! `$share/<group>/<topic>` instead of `<topic>`, and the broker hands each message to ONE member
//! of the group. Run three processes and each handles about a third of the stream; stop one and
//! the others take its share. Each worker is its own MQTT connection with its own client id,
//! `<clientId>-<instance>`, and otherwise it is `tls-connect`: TLS, QoS 1, ack after processing,
//! backoff, clean DISCONNECT.
//!
//! **Why.** One consumer eventually cannot keep up, and one consumer is one point of failure.
//! Shared subscriptions fix both without any coordination between your processes: the broker
//! load-balances. What you must get right is naming — the group, the client ids — and what
//! happens to messages when a member goes away, which depends on its session (below).
//!
//! **Run it.**
//! ```text
//! cargo run -p shared-subscription                     # no creds.json: demo broker + 3 workers
//! cargo run -p shared-subscription -- --creds creds.json --instance 1   # terminal 1
//! cargo run -p shared-subscription -- --creds creds.json --instance 2   # terminal 2, 3, ...
//! cargo run -p shared-subscription -- --creds creds.json --instance 1 --session-expiry 300
//! ```
//! Flags: `--group NAME`, `--instance N`, `--session-expiry SECS` (default 0), `--workers N`
//! (default 3 in the demo, 1 otherwise), `--work-ms N` (simulated slow processing), `--count N`
//! (stop after N messages in this process), `--stats`; `--help` lists them all.
//!
//! **What you will see.** The group, the filter and each worker's client id, then every message
//! as `[<client id>] message 7 on <topic>` and its JSON, so you see which worker handled it. With
//! several workers in the process a `tally:` line every 10 s and at exit counts each worker's
//! share. With real credentials, run it in several terminals and watch the stream split. Ctrl-C
//! (or SIGTERM) stops each worker without losing what the broker already gave it (below).
//!
//! **How Mosquitto shares** (2.0.11, the tests' broker; measured by `tests/shared_subscription.rs`;
//! EMQX and HiveMQ have their own dispatch rules — check yours): it deals each message to the next
//! member in turn *when it is published*, not to whichever member is free. 600 messages over
//! three members: 200 / 200 / 200. A member that is slower than the rest still gets its third
//! and builds its own backlog. So what a member has been dealt but not yet handled is at stake
//! when it goes away, and its session decides what happens to it:
//! - *Clean start, the default* (`--session-expiry 0`). Once the broker sees the connection
//!   closed (at once for a killed process; up to 1.5 × the 30 s keep-alive for a silent network
//!   drop) it deals everything to the others: 300 of 300 messages published after a SIGKILL were
//!   handled by the two survivors. But a crash loses the dead member's backlog (measured: of a
//!   300-message burst, ~100 per member, the killed one had handled 12; the other 88 were lost).
//!   A *graceful* stop loses nothing: on SIGTERM each worker first leaves the group
//!   (UNSUBSCRIBE), handles what the broker already dealt it until the broker says there is
//!   nothing more (an UNSUBACK that no message overtook, twice: see `Drain`), then disconnects
//!   (tests/shared_subscription.rs, also with the CPU saturated and with the broker frozen for 2 s
//!   mid-drain: `a_pause_of_the_broker_during_the_drain_loses_nothing`). Any client id works,
//!   so this suits a Deployment or `docker run --scale`.
//! - *Persistent sessions* (`--session-expiry SECS`, which requires `--instance`). Mosquitto
//!   keeps dealing an OFFLINE persistent member its share and queues it in its session; the
//!   member gets it when it comes back with the same client id. A rolling restart of three
//!   members while publishing lost nothing (0 of 475, 0 duplicates), and each member received
//!   after its restart the third dealt to it while it was down. A crash loses nothing either:
//!   what was not acked is sent again after the restart.
//!   This needs a STABLE id per instance (e.g. a StatefulSet ordinal: `--instance "$HOSTNAME"`),
//!   a session expiry longer than your slowest restart, and a backlog within the broker's queue
//!   limit (Mosquitto's `max_queued_messages` defaults to 1000). A member that never comes back
//!   with its id (scaled down, renamed, a pid-based id) strands its share: those messages wait in
//!   its session until it expires, then are dropped. Hence the default: without `--instance` the
//!   id contains the process id, and persistent sessions are refused.
//!
//! **Naming.** *Group*: `--group`, default `<clientId>-workers`, from the credentials, so every
//! process started with the same creds.json joins the same group with no extra setting. Each
//! group receives the whole stream: a second application on the same credentials needs its own
//! `--group`, or the two silently split one stream. *Client id*: one per connection,
//! `<clientId>-<instance>` (two connections with one id keep kicking each other off); without
//! `--instance` the instance is `<host name>-<pid>`, printed at start.
//!
//! **Production pattern: one worker per process**, and more processes for more throughput
//! (across machines, each restarted on its own). `--workers N` runs N connections in one
//! process, as `<clientId>-<instance>-1..N`; the demo uses it so that one command shows the split.
//!
//! **Deliberately left out.** Per-tag ordering: members work in parallel, so two events of one tag
//! can be handled out of order — use the event's timestamp, or one plain subscriber, when order
//! matters. Duplicates (QoS 1 redelivers after a crash; see `qos1-at-least-once`). Ending a
//! persistent session on purpose when a member leaves for good (DISCONNECT with session expiry 0).
//!
//! **The structure** is `tls-connect`'s, once per worker: a polling task that never awaits a
//! client method, a bounded queue to a handler task that acks after processing, subscribe after
//! every CONNACK (a resumed session too: see the comment there). One Ctrl-C / SIGTERM stops every
//! worker.

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context;
use clap::error::ErrorKind;
use clap::{CommandFactory, Parser};
use common::supervisor::NextStep;
use common::{BrokerTarget, ConnectArgs, ConnectionSupervisor, MessagePrinter};
use rumqttc::v5::mqttbytes::v5::{Filter, Packet, Publish, RetainForwardRule};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event};
use rumqttc::Outgoing;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::Instrument;

/// Messages received but not yet handled, per worker. Also the Receive Maximum we ask the
/// broker for: how many unacked messages it may send a worker at a time.
const WORK_QUEUE: usize = 32;

/// A stopping clean-start worker drains until the broker says it has nothing more for it (see
/// [`Drain`]), but no longer than this (Kubernetes allows 30 s between SIGTERM and SIGKILL).
const DRAIN_MAX: Duration = Duration::from_secs(10);

/// How often a process with several workers prints the per-worker tally.
const TALLY_EVERY: Duration = Duration::from_secs(10);

/// Share the Link Labs event stream between worker processes ($share/<group>/<topic>).
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    connect: ConnectArgs,

    /// Shared-subscription group. Every process in one group splits one stream; each group gets
    /// every message. Default: `<clientId>-workers`.
    #[arg(long, value_name = "NAME", value_parser = common::share_group::parse_group)]
    group: Option<String>,

    /// MQTT connections in this process. Default: 3 with the demo broker, 1 with credentials.
    /// In production run one per process and start more processes.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=64))]
    workers: Option<u16>,

    /// Keep each worker's session this long after a disconnect, so a restart with the same
    /// --instance loses nothing. 0: clean start, nothing kept (right for pid-based ids).
    #[arg(long, value_name = "SECS", default_value_t = 0)]
    session_expiry: u32,

    /// Simulated I/O-bound processing per message, in milliseconds (tests, benchmarks).
    #[arg(long, value_name = "MS", default_value_t = 0)]
    work_ms: u64,
}

/// What the workers of one process share.
struct Shared {
    /// One printer for all workers: a message's label and body never interleave with another
    /// worker's, and `--stats` prints one line for the whole process.
    printer: Mutex<MessagePrinter>,
    /// Messages handled per worker (index = worker), for the tally.
    handled: Vec<AtomicU64>,
    /// Messages claimed by all workers together, for `--count`.
    claimed: AtomicU64,
    count: Option<u64>,
    work: Duration,
    /// `true` stops every worker: Ctrl-C/SIGTERM, `--count` reached, or another worker failed.
    stop: watch::Sender<bool>,
    ids: Vec<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
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
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => common::exit::report(&err),
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    // One client id per process: `<clientId>-<instance>`.
    let mut connect = args.connect.clone();
    let instance = match &connect.instance {
        Some(instance) => instance.clone(),
        None => {
            let derived = common::share_group::derived_instance();
            tracing::info!(
                "no --instance given: using {derived} (host name and process id). Fine for \
                 clean-start workers; a persistent session needs a stable --instance"
            );
            derived
        }
    };
    connect.instance = Some(instance);
    let (target, demo) = demo_broker::target_or_demo(&connect).await?;

    let base_id = connect
        .client_id
        .clone()
        .unwrap_or_else(|| target.credentials.client_id.clone());
    let topic = common::credentials::strip_share_prefix(&target.credentials.topic).to_owned();
    // ANCHOR: share_filter
    let group = args
        .group
        .clone()
        .unwrap_or_else(|| common::share_group::default_group(&target.credentials.topic, &base_id));
    let filter = format!("$share/{group}/{topic}");
    // ANCHOR_END: share_filter

    let workers = args.workers.unwrap_or(if demo.is_some() { 3 } else { 1 });
    let ids: Vec<String> = (1..=workers)
        .map(|k| match workers {
            1 => target.client_id.clone(),
            _ => format!("{}-{k}", target.client_id),
        })
        .collect();
    tracing::info!("group {group}: subscribing to {filter}");
    tracing::info!(
        "{workers} worker(s) in this process, client ids: {}; {}",
        ids.join(", "),
        match args.session_expiry {
            0 => "clean start (no session kept)".to_owned(),
            secs => format!("persistent sessions kept {secs} s after a disconnect"),
        }
    );

    let (stop, _) = watch::channel(false);
    let shared = Arc::new(Shared {
        printer: Mutex::new(MessagePrinter::new(args.connect.stats)),
        handled: ids.iter().map(|_| AtomicU64::new(0)).collect(),
        claimed: AtomicU64::new(0),
        count: args.connect.count,
        work: Duration::from_millis(args.work_ms),
        stop,
        ids: ids.clone(),
    });
    let mut tasks = JoinSet::new();
    for (index, id) in ids.iter().enumerate() {
        let mut worker_target = target.clone();
        worker_target.client_id = id.clone();
        let worker = run_worker(
            index,
            worker_target,
            filter.clone(),
            args.session_expiry,
            Arc::clone(&shared),
        );
        // Every log line of this worker (the supervisor's too) carries its client id.
        tasks.spawn(worker.instrument(tracing::info_span!("worker", id = %id)));
    }

    let shutdown = common::shutdown::signal();
    tokio::pin!(shutdown);
    let mut signalled = false;
    let mut tally = tokio::time::interval(TALLY_EVERY);
    tally.tick().await; // the first tick is immediate
    let mut first_error = None;
    loop {
        tokio::select! {
            _ = &mut shutdown, if !signalled => {
                signalled = true;
                tracing::info!("stop requested");
                shared.stop.send_replace(true);
            }
            _ = tally.tick(), if workers > 1 => tracing::info!("{}", shared.tally()),
            joined = tasks.join_next() => match joined {
                None => break, // every worker has stopped
                Some(Ok(Ok(()))) => {}
                Some(Ok(Err(err))) => {
                    // One worker cannot go on (wrong password, id in use...): stop them all,
                    // so the process exits and its supervisor sees the failure.
                    shared.stop.send_replace(true);
                    first_error.get_or_insert(err);
                }
                Some(Err(panicked)) => {
                    shared.stop.send_replace(true);
                    first_error.get_or_insert(anyhow::Error::new(panicked).context("a worker"));
                }
            },
        }
    }

    shared.printer().finish();
    tracing::info!("{}", shared.tally());
    if let Some(demo) = demo {
        demo.shutdown().await;
    }
    first_error.map_or(Ok(()), Err)
}

/// One worker: one MQTT connection with its own client id, polling task and handler task.
async fn run_worker(
    index: usize,
    target: BrokerTarget,
    filter: String,
    session_expiry: u32,
    shared: Arc<Shared>,
) -> anyhow::Result<()> {
    let mut options = target
        .rumqttc_options()
        .context("setting up TLS for the broker connection")?;
    options
        // Ack after processing, not on receipt: a crash between the two means redelivery (with
        // a persistent session) instead of a message marked done that never was.
        .set_manual_acks(true)
        // MQTT v5 flow control: asks the broker for at most WORK_QUEUE unacked messages at a
        // time, so a backlog stays on the broker rather than in this process. Nothing below
        // depends on it: Mosquitto 2.0.11 overshoots it (after one PUBACK it sent 32 more).
        .set_receive_maximum(Some(WORK_QUEUE as u16));
    // ANCHOR: share_session
    if session_expiry == 0 {
        options.set_clean_start(true);
    } else {
        // Resume the session this id left behind; the broker keeps it `session_expiry` seconds.
        options
            .set_clean_start(false)
            .set_session_expiry_interval(Some(session_expiry));
    }
    // ANCHOR_END: share_session
    // This is how a client follows a broker CLUSTER behind one DNS name: before every
    // (re)connect, resolve the name again and start at the next address, skipping one that
    // does not answer, so a dead node never blocks the failover (see common::broker_addresses).
    let mut addresses = common::broker_addresses::BrokerAddresses::new(&target, &options)
        .context("setting up TLS for the broker connection")?;
    // `ack()` must never wait for room in rumqttc's request channel: the handler would then wait
    // for the polling task and the polling task for the handler, for ever (REQUEST_CHANNEL_CAPACITY).
    let (client, mut eventloop) = AsyncClient::new(
        addresses.next_attempt().await,
        common::rumqttc_util::REQUEST_CHANNEL_CAPACITY,
    );
    tracing::info!("connecting to {}", target.address());

    // The bounded work queue between the polling task (here) and the handler task.
    let (work_tx, mut work_rx) = mpsc::channel::<Publish>(WORK_QUEUE);
    let handler_client = client.clone();
    let handler_shared = Arc::clone(&shared);
    let mut handler = tokio::spawn(
        async move {
            let shared = handler_shared;
            let id = &shared.ids[index];
            let mut handled = 0u64;
            while let Some(publish) = work_rx.recv().await {
                // `--count` is for the whole process: claim a number before doing the work.
                let number = shared.claimed.fetch_add(1, Ordering::SeqCst) + 1;
                if shared.count.is_some_and(|count| number > count) {
                    break; // not handled, so not acked
                }
                if !shared.work.is_zero() {
                    // Stand-in for your real work: a database write, an HTTP call...
                    tokio::time::sleep(shared.work).await;
                }
                handled += 1;
                shared.handled[index].fetch_add(1, Ordering::Relaxed);
                let topic = String::from_utf8_lossy(&publish.topic);
                shared.printer().show(
                    &format!("[{id}] message {handled} on {topic}"),
                    &publish.payload,
                );
                // Handled: now, and only now, tell the broker it may forget the message.
                handler_client.ack(&publish).await?;
                if shared.count == Some(number) {
                    shared.stop.send_replace(true);
                    break;
                }
            }
            anyhow::Ok(handled)
        }
        .in_current_span(),
    );

    // The idle watchdog (see `poll_or_silence`): 1.5 × keep-alive without a packet from the
    // broker means a dead link. The keep-alive (30 s, set in common::cli) is the trade-off:
    // shorter notices a dead link sooner, and costs a PINGREQ/PINGRESP pair per keep-alive.
    let idle_limit = eventloop.options.keep_alive() * 3 / 2;
    let mut last_heard = tokio::time::Instant::now();
    let mut supervisor = ConnectionSupervisor::new(&target);
    let mut stop_rx = shared.stop.subscribe();
    let stop_requested = async move {
        // An error means the sender is gone: stop as well.
        let _ = stop_rx.wait_for(|stop| *stop).await;
    };
    tokio::pin!(stop_requested);

    // While a clean-start worker stops: the drain's progress (None: not stopping).
    let mut drain: Option<Drain> = None;
    // Every PUBLISH received and every PUBACK written, to know when all are acked.
    let (mut received, mut acked) = (0u64, 0u64);

    let stop = loop {
        let drain_deadline = drain.as_ref().map_or_else(Instant::now, |d| d.limit);
        tokio::select! {
            _ = &mut stop_requested, if drain.is_none() => {
                if session_expiry > 0 {
                    // Our session keeps our share while we restart: nothing to drain.
                    break Stop::Requested;
                }
                // Clean start: whatever the broker already dealt us dies with the session, so
                // leave the group first and handle what is on its way (a graceful scale-down).
                client.try_unsubscribe(filter.clone())?;
                tracing::info!(
                    "stopping: leaving the group; handling what the broker already sent us"
                );
                let mut leaving = Drain::new(Instant::now() + DRAIN_MAX);
                // The UNSUBSCRIBE is the first question; it counts only if nothing was unacked.
                leaving.asked(received, acked);
                drain = Some(leaving);
            }
            _ = tokio::time::sleep_until(drain_deadline), if drain.is_some() => {
                tracing::warn!(
                    "the drain did not end within {} s; stopping anyway",
                    DRAIN_MAX.as_secs()
                );
                break Stop::Requested;
            }
            // The handler ends on its own only when --count was reached (or on error).
            result = &mut handler => break Stop::HandlerFinished(result),
            event = poll_or_silence(&mut eventloop, &mut last_heard, idle_limit) => match event {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    supervisor.connected();
                    tracing::info!("connected (session present: {})", ack.session_present);
                    if ack.session_present {
                        tracing::info!(
                            "the broker kept our session: messages queued while we were away \
                             arrive first (subscribing again anyway, in case the previous run died \
                             before its SUBSCRIBE)"
                        );
                    }
                    // Subscribe after EVERY CONNACK. With a clean start the session is always new;
                    // a resumed persistent session normally still has the subscription, but
                    // `session present` cannot say *which* subscriptions it holds (a run that died
                    // between its CONNACK and its SUBSCRIBE leaves one with none, which would then
                    // get nothing until it expires). Subscribing to the same filter again replaces
                    // the subscription; the queued messages stay. Retain Handling 1: see
                    // `subscription`.
                    client.try_subscribe_many([subscription(&filter)])?;
                }
                Ok(Event::Incoming(Packet::SubAck(ack))) => {
                    common::rumqttc_util::check_suback(&ack, &filter)?;
                    tracing::info!("subscribed to {filter} with QoS 1");
                }
                Ok(Event::Incoming(Packet::UnsubAck(_))) => {
                    if let Some(leaving) = drain.as_mut() {
                        if leaving.answered(received) {
                            break Stop::Requested; // the broker has nothing more for us
                        }
                        if received == acked {
                            leaving.asked(received, acked);
                            client.try_unsubscribe(filter.clone())?;
                        }
                    }
                }
                Ok(Event::Outgoing(Outgoing::PubAck(_))) => {
                    acked += 1;
                    // Everything handled and acked, and no question on the way: ask (again).
                    if let Some(leaving) = drain.as_mut() {
                        if received == acked && !leaving.waiting {
                            leaving.asked(received, acked);
                            client.try_unsubscribe(filter.clone())?;
                        }
                    }
                }
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    received += 1;
                    // Waits while the queue is full: that is the back-pressure.
                    // A stop request still wins while we wait: never deaf to SIGTERM.
                    // (While draining, the stop request has already fired and must not be polled
                    // again; the drain's own limit applies instead.)
                    tokio::select! {
                        sent = work_tx.send(publish) => if sent.is_err() {
                            break Stop::HandlerFinished((&mut handler).await);
                        },
                        _ = &mut stop_requested, if drain.is_none() => break Stop::Requested,
                        _ = tokio::time::sleep_until(drain_deadline), if drain.is_some() => {
                            break Stop::Requested;
                        }
                    }
                }
                Ok(_) => {}
                // Stopping anyway: a clean-start session is gone with the connection.
                Err(_) if drain.is_some() => break Stop::Requested,
                Err(err) => match supervisor.failed(&err) {
                    NextStep::RetryAfter(delay) => {
                        // Sleep before reconnecting, but wake up for a stop.
                        if tokio::time::timeout(delay, &mut stop_requested).await.is_ok() {
                            break Stop::Requested;
                        }
                        eventloop.options = addresses.next_attempt().await;
                    }
                    NextStep::GiveUp(failure) => {
                        handler.abort();
                        return Err(failure.into());
                    }
                },
            },
        }
    };

    let handled = match stop {
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
    tracing::info!("handled {handled} messages; {disconnected}");
    Ok(())
}

/// How a leaving clean-start worker knows the broker has sent it everything it dealt it: it asks,
/// and waits for an answer that no message overtook.
///
/// After our UNSUBSCRIBE (Mosquitto handles a connection's packets in order) the broker deals us
/// nothing new, but messages already dealt to us may still be queued on its side, beyond our
/// Receive Maximum: each PUBACK we send releases more. So the question is an UNSUBSCRIBE of the
/// same filter (harmless: "no subscription existed"), sent only when every message received so
/// far is acked, and the answer is its UNSUBACK: the broker writes a connection's packets in
/// order, so a message released by our PUBACKs arrives before the UNSUBACK of a question sent
/// after them. An answer with no message before it means "nothing more". Two such answers in a
/// row are required, because Mosquitto may write the messages a PUBACK released on its next
/// loop turn, after answering a question read in the same batch; a second question, sent after
/// the first answer, cannot overtake them. No idle timer: a loaded machine only makes it slower
/// (the earlier 0.5 s idle gap lost messages when a gap was longer; issue #16).
struct Drain {
    /// Give up here (a stuck handler, a wedged connection).
    limit: Instant,
    /// A question is on its way.
    waiting: bool,
    /// The question was asked with every received message acked...
    clean: bool,
    /// ...and this many received: a different count at the answer means a message came first.
    received_at_question: u64,
    /// Consecutive clean answers with no message before them.
    quiet_answers: u32,
}

impl Drain {
    fn new(limit: Instant) -> Self {
        Drain {
            limit,
            waiting: false,
            clean: false,
            received_at_question: 0,
            quiet_answers: 0,
        }
    }

    /// A question (UNSUBSCRIBE) is sent now.
    fn asked(&mut self, received: u64, acked: u64) {
        self.waiting = true;
        self.clean = received == acked;
        self.received_at_question = received;
    }

    /// Its answer (UNSUBACK) arrived: `true` when the drain is complete.
    fn answered(&mut self, received: u64) -> bool {
        self.waiting = false;
        if self.clean && received == self.received_at_question {
            self.quiet_answers += 1;
        } else {
            self.quiet_answers = 0;
        }
        self.quiet_answers >= 2
    }
}

/// Why a worker's main loop ended.
enum Stop {
    /// Ctrl-C, SIGTERM, `--count` reached by the process, or another worker failed.
    Requested,
    /// The handler task returned (`--count` reached by this worker, or an error).
    HandlerFinished(Result<anyhow::Result<u64>, tokio::task::JoinError>),
}

impl Shared {
    fn printer(&self) -> std::sync::MutexGuard<'_, MessagePrinter> {
        // A poisoned lock only means another worker panicked mid-print: keep printing.
        self.printer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `tally: 12 handled: <id-1>=4 <id-2>=4 <id-3>=4`
    fn tally(&self) -> String {
        let counts: Vec<u64> = self
            .handled
            .iter()
            .map(|n| n.load(Ordering::Relaxed))
            .collect();
        let each: Vec<String> = self
            .ids
            .iter()
            .zip(&counts)
            .map(|(id, n)| format!("{id}={n}"))
            .collect();
        format!(
            "tally: {} handled: {}",
            counts.iter().sum::<u64>(),
            each.join(" ")
        )
    }
}

/// Our subscription: QoS 1, and MQTT 5 Retain Handling 1 ("send retained messages only if the
/// subscription is new"), so the SUBSCRIBE after a resumed session's CONNACK, which replaces a
/// subscription the session still holds, does not replay the retained messages. (MQTT 5 sends
/// no retained messages to a new shared subscription anyway; asking explicitly costs nothing.)
fn subscription(filter: &str) -> Filter {
    Filter {
        retain_forward_rule: RetainForwardRule::OnNewSubscribe,
        ..Filter::new(filter, QoS::AtLeastOnce)
    }
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
