//! Helpers for rumqttc's blocking API (`rumqttc::v5::Client` + `Connection`), used by the
//! `*-rumqttc-blocking` variants.

use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rumqttc::v5::{Client, Connection, Event, RecvTimeoutError};
use rumqttc::Outgoing;

use crate::rumqttc_util::{Disconnected, DISCONNECT_FLUSH};

/// Sends DISCONNECT and drives the connection until it is on the wire (at most
/// [`DISCONNECT_FLUSH`]), and says whether it got there.
///
/// The blocking twin of [`crate::rumqttc_util::disconnect`]: acks queued before the DISCONNECT
/// are flushed first (rumqttc sends requests in order), so call it after the handler thread has
/// acked its last message. Call it from the thread that iterates the connection.
pub fn disconnect(client: &Client, connection: &mut Connection) -> Disconnected {
    if client.try_disconnect().is_err() {
        return Disconnected::NotQueued;
    }
    let deadline = Instant::now() + DISCONNECT_FLUSH;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Disconnected::TimedOut;
        }
        match connection.recv_timeout(left) {
            Ok(Ok(Event::Outgoing(Outgoing::Disconnect))) => return Disconnected::Cleanly,
            Ok(Err(err)) => return Disconnected::Failed(err.to_string()),
            Err(RecvTimeoutError::Disconnected) => return Disconnected::NotQueued,
            Ok(Ok(_)) | Err(RecvTimeoutError::Timeout) => {}
        }
    }
}

/// What became of a message handed to the work queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handoff {
    /// On the queue: the handler will take it.
    Queued,
    /// The handler thread has ended (`--count` reached, or an error): stop and join it.
    HandlerGone,
    /// Ctrl-C / SIGTERM arrived while the queue was full: stop.
    StopRequested,
}

/// Puts `item` on the bounded work queue, waiting while it is full (the back-pressure), but
/// never deaf to a stop request: a consumer that ignores SIGTERM while its handler is slow gets
/// SIGKILLed by its supervisor and loses its clean DISCONNECT. (`std`'s `SyncSender` has no
/// `send` that also watches another channel, hence the short polling.)
pub fn hand_over<T>(work_tx: &SyncSender<T>, item: T, stop_rx: &Receiver<()>) -> Handoff {
    let mut item = item;
    loop {
        match work_tx.try_send(item) {
            Ok(()) => return Handoff::Queued,
            Err(TrySendError::Disconnected(_)) => return Handoff::HandlerGone,
            Err(TrySendError::Full(back)) => {
                item = back;
                if stop_rx.recv_timeout(Duration::from_millis(20)).is_ok() {
                    return Handoff::StopRequested;
                }
            }
        }
    }
}

/// After a stop request: waits for the handler thread to finish the messages it already has
/// (and ack them), but no longer than `limit`; the blocking twin of [`crate::shutdown::drain`].
/// `Ok(None)`: the limit passed, and the thread is left behind (it ends with the process); what
/// it had not acked is sent again by the broker (persistent session) or lost with the session.
pub fn drain<T>(
    handler: JoinHandle<anyhow::Result<T>>,
    limit: Duration,
) -> anyhow::Result<Option<T>> {
    let deadline = Instant::now() + limit;
    while !handler.is_finished() {
        if Instant::now() >= deadline {
            tracing::warn!(
                "the handler did not finish within {} s; stopping without it: what it had not \
                 acked is sent again by the broker (persistent session) or lost with the session \
                 (clean start)",
                limit.as_secs()
            );
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    match handler.join() {
        Ok(result) => result.map(Some),
        Err(_) => anyhow::bail!("the handler thread panicked"),
    }
}
