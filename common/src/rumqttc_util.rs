//! Small rumqttc v5 helpers every example would otherwise repeat.

use std::time::Duration;

use rumqttc::v5::mqttbytes::v5::{SubAck, SubscribeReasonCode};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, EventLoop};
use rumqttc::Outgoing;

/// Capacity of rumqttc's request channel (`AsyncClient::new(options, REQUEST_CHANNEL_CAPACITY)`):
/// in practice no limit, so that `client.ack()` never waits for room.
///
/// Why: a handler task awaits `client.ack()`, and only the polling task's `poll()` empties this
/// channel — but the polling task waits while the bounded work queue is full, so an `ack()` that
/// waits for room is a freeze: handler and poller wait for each other for ever, the connection
/// is never polled again (no PINGREQ: the broker drops us after 1.5 × keep-alive and we never
/// notice), and a stop request finds both stuck. Acks do pile up here: rumqttc 0.25 writes one
/// queued request per turn of its event loop but reads up to 10 packets in a turn, so while the
/// broker keeps sending, acks fall behind reads. A broker that honours our Receive Maximum stops
/// sending at that many unacked messages, and the pile stays below it. Mosquitto 2.0.11 does not:
/// measured (tests/backlog.rs, `mosquitto_sends_receive_maximum_more_for_every_puback`), each
/// PUBACK lets it send Receive Maximum more messages, so during a large backlog most of it is
/// sent ahead of our acks. With the earlier capacity of 65,551 (sized on the false belief that
/// 16-bit packet ids cap what we can owe) every rumqttc consumer froze on a backlog above
/// ~70,000 messages. The channel allocates as it fills (216 bytes a queued ack), not up front.
/// (Not `usize::MAX`: flume adds 1 to the capacity internally, which overflows.)
pub const REQUEST_CHANNEL_CAPACITY: usize = u32::MAX as usize;

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

/// How long the DISCONNECT (and the acks queued before it) may take to reach the wire.
pub const DISCONNECT_FLUSH: Duration = Duration::from_secs(5);

/// How the goodbye went. Only [`Disconnected::Cleanly`] means the broker received our DISCONNECT
/// (and every ack queued before it); the others mean it saw the connection drop, so it keeps
/// what we had not acked for redelivery and publishes our will, if we had one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disconnected {
    /// DISCONNECT written and flushed to the socket.
    Cleanly,
    /// The connection failed before the DISCONNECT went out.
    Failed(String),
    /// Not on the wire within [`DISCONNECT_FLUSH`].
    TimedOut,
    /// rumqttc would not take the request (its event loop is gone).
    NotQueued,
}

/// For the last log line: `processed N messages; disconnected cleanly`, or what happened instead.
impl std::fmt::Display for Disconnected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Disconnected::Cleanly => f.write_str("disconnected cleanly"),
            Disconnected::Failed(err) => write!(
                f,
                "the connection failed before our DISCONNECT went out ({err}); the broker keeps \
                 what we did not ack and sends it again"
            ),
            Disconnected::TimedOut => write!(
                f,
                "DISCONNECT not sent within {} s; closed without it (the broker keeps what we did \
                 not ack and sends it again)",
                DISCONNECT_FLUSH.as_secs()
            ),
            Disconnected::NotQueued => f.write_str(
                "could not send DISCONNECT (the connection was already closed); the broker keeps \
                 what we did not ack and sends it again",
            ),
        }
    }
}

/// Sends DISCONNECT and drives the event loop until it is on the wire (at most
/// [`DISCONNECT_FLUSH`]), and says whether it got there.
///
/// Without this the broker sees the TCP connection drop, publishes the will (if any) and —
/// for a persistent session — keeps in-flight messages for redelivery. Acks queued before the
/// DISCONNECT are flushed first: rumqttc sends requests in order, and reports
/// `Outgoing::Disconnect` only after writing and flushing it.
pub async fn disconnect(client: &AsyncClient, eventloop: &mut EventLoop) -> Disconnected {
    if client.try_disconnect().is_err() {
        return Disconnected::NotQueued;
    }
    let flushed = tokio::time::timeout(DISCONNECT_FLUSH, async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Outgoing(Outgoing::Disconnect)) => return Disconnected::Cleanly,
                Err(err) => return Disconnected::Failed(err.to_string()),
                Ok(_) => {}
            }
        }
    })
    .await;
    flushed.unwrap_or(Disconnected::TimedOut)
}

/// One `eventloop.poll()`, watched by an idle watchdog (issue #12).
///
/// rumqttc sends a PINGREQ every keep-alive, so a live broker sends us something — a PINGRESP at
/// least — within every keep-alive. Nothing for `idle_limit` (use 1.5 × keep-alive) means the
/// link died without a FIN or RST (a pulled cable, a NAT or firewall that forgot us, a frozen
/// host), which TCP does not notice for minutes and rumqttc only after about 2 × keep-alive. Then
/// `clean()` drops the dead connection (unacked messages are kept for the next one) and the
/// error ([`crate::supervisor::LinkSilent`]) takes the supervisor's retry path like any other
/// failure: the next `poll()` reconnects. `last_heard` belongs to the caller so the deadline
/// survives the `select!` that drops this future whenever another branch wins.
pub async fn poll_or_silence(
    eventloop: &mut EventLoop,
    last_heard: &mut tokio::time::Instant,
    idle_limit: Duration,
) -> Result<Event, rumqttc::v5::ConnectionError> {
    tokio::select! {
        // Biased: data already waiting wins over a deadline that passed while we were busy.
        biased;
        event = eventloop.poll() => {
            // Anything but our own outgoing packets (a packet, or a failure) rewinds the watchdog.
            if !matches!(event, Ok(Event::Outgoing(_))) {
                *last_heard = tokio::time::Instant::now();
            }
            event
        }
        () = tokio::time::sleep_until(*last_heard + idle_limit) => {
            eventloop.clean();
            *last_heard = tokio::time::Instant::now();
            Err(crate::supervisor::LinkSilent { silent_for: idle_limit }.into_error())
        }
    }
}
