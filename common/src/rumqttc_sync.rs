//! Helpers for rumqttc's blocking API (`rumqttc::v5::Client` + `Connection`), used by the
//! `*-rumqttc-blocking` variants.

use std::time::{Duration, Instant};

use rumqttc::v5::{Client, Connection, Event, RecvTimeoutError};
use rumqttc::Outgoing;

/// Sends DISCONNECT and drives the connection until it is on the wire (at most 2 s).
///
/// The blocking twin of [`crate::rumqttc_util::disconnect`]: acks queued before the DISCONNECT
/// are flushed first (rumqttc sends requests in order), so call it after the handler thread has
/// acked its last message. Call it from the thread that iterates the connection.
pub fn disconnect(client: &Client, connection: &mut Connection) {
    if client.try_disconnect().is_err() {
        return;
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            tracing::warn!("DISCONNECT not confirmed within 2 s; closing anyway");
            return;
        }
        match connection.recv_timeout(left) {
            Ok(Ok(Event::Outgoing(Outgoing::Disconnect))) | Ok(Err(_)) => return,
            Err(RecvTimeoutError::Disconnected) => return,
            Ok(Ok(_)) | Err(RecvTimeoutError::Timeout) => {}
        }
    }
}
