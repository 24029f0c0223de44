//! Small rumqttc v5 helpers every example would otherwise repeat.

use std::time::Duration;

use rumqttc::v5::mqttbytes::v5::{SubAck, SubscribeReasonCode};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, EventLoop};
use rumqttc::Outgoing;

/// Capacity of rumqttc's request channel (`AsyncClient::new(options, REQUEST_CHANNEL_CAPACITY)`).
///
/// Why so large: a handler task awaits `client.ack()`, and only the polling task's `poll()` empties
/// this channel — but the polling task stops calling `poll()` while the bounded work queue is
/// full, and rumqttc hands over buffered incoming messages before it sends queued acks. With a
/// small channel (rumqttc's own examples use 10 to 64) a burst or a backlog makes the two wait for
/// each other for ever: measured against Mosquitto 2.0.11, consumers froze after 100–2,500
/// messages of a backlog with a capacity of 64 (it also ignores our Receive Maximum after the first
/// acks). A connection has at most 65,535 unacked QoS 1 messages (packet ids are 16 bits), so with
/// room for that many acks `ack()` never waits long. The channel allocates as it fills, not up
/// front, so the number costs nothing while idle.
pub const REQUEST_CHANNEL_CAPACITY: usize = u16::MAX as usize + 16;

/// The broker answered SUBACK with a failure for our topic filter.
#[derive(Debug, thiserror::Error)]
#[error(
    "the broker refused the subscription to \"{topic}\" ({reason}). The topic must be inside \
     the credentials' subscribeAcl; use the \"topic\" from creds.json as it is (for shared \
     subscriptions: $share/<group>/<that topic>)."
)]
pub struct SubscriptionRefused {
    /// The filter we asked for.
    pub topic: String,
    /// The broker's reason code, as rumqttc names it.
    pub reason: String,
}

/// Checks a SUBACK: an error when the broker refused the filter, a warning when it granted only
/// QoS 0 (then messages can be lost, and there is nothing to ack).
pub fn check_suback(ack: &SubAck, topic: &str) -> Result<(), SubscriptionRefused> {
    for code in &ack.return_codes {
        match code {
            SubscribeReasonCode::Success(QoS::AtMostOnce) => tracing::warn!(
                "the broker granted only QoS 0 for {topic}: messages may be lost without notice"
            ),
            SubscribeReasonCode::Success(_) => {}
            refused => {
                return Err(SubscriptionRefused {
                    topic: topic.to_owned(),
                    reason: format!("{refused:?}"),
                })
            }
        }
    }
    Ok(())
}

/// Sends DISCONNECT and drives the event loop until it is on the wire (at most 2 s).
///
/// Without this the broker sees the TCP connection drop, publishes the will (if any) and —
/// for a persistent session — keeps in-flight messages for redelivery. Acks queued before the
/// DISCONNECT are flushed first: rumqttc sends requests in order.
pub async fn disconnect(client: &AsyncClient, eventloop: &mut EventLoop) {
    if client.try_disconnect().is_err() {
        return;
    }
    let flushed = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Outgoing(Outgoing::Disconnect)) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    if flushed.is_err() {
        tracing::warn!("DISCONNECT not confirmed within 2 s; closing anyway");
    }
}
