//! Small rumqttc v5 helpers every example would otherwise repeat.

use std::time::Duration;

use rumqttc::v5::mqttbytes::v5::{SubAck, SubscribeReasonCode};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, EventLoop};
use rumqttc::Outgoing;

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
