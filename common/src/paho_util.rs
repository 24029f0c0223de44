//! Small paho-mqtt helpers the paho variants would otherwise repeat (feature `paho`).
//!
//! Paho's Rust errors keep the MQTT reason codes but lose most of the C library's words: a TLS
//! failure of any kind (unknown CA, certificate for another host, a port that does not speak TLS)
//! arrives as the single `TCP/TLS connect failure`. [`ConnectFailure::from_paho`] turns what
//! there is into the same plain-words failures the rumqttc examples print, and says so honestly
//! where Paho does not tell which of several causes it was.

use crate::cli::{BrokerTarget, Security};
use crate::failure::{ConnectFailure, FailureKind};
use crate::rumqttc_util::SubscriptionRefused;

impl ConnectFailure {
    /// Classifies an error from a Paho connect (or reconnect) attempt.
    pub fn from_paho(err: &paho_mqtt::Error, target: &BrokerTarget) -> Self {
        use paho_mqtt::ConnectReturnCode as Code;
        use paho_mqtt::Error;

        let detail = format!("paho-mqtt: {err}");
        // Paho C reports a host name that does not resolve as "General failure" (its trace says
        // "getaddrinfo failed"), which would be retried for ever; ask the resolver ourselves, so
        // that a typo in `host` stops at start with exit code 8 as with rumqttc (issue #16).
        if !matches!(err, Error::ReasonCode(..) | Error::ConnectReturn(_)) && !resolves(target) {
            return ConnectFailure::new(FailureKind::DnsFailure, target, detail);
        }
        let kind = match err {
            Error::ReasonCode(code, _) => kind_for_reason(*code),
            Error::ConnectReturn(code) => match code {
                Code::BadUserNameOrPassword => FailureKind::BadCredentials,
                Code::NotAuthorized => FailureKind::NotAuthorized,
                Code::IdentifierRejected => FailureKind::Rejected,
                Code::ServerUnavailable => FailureKind::ServerUnavailable,
                _ => FailureKind::Other,
            },
            Error::TcpConnectTimeout | Error::Timeout => FailureKind::Timeout,
            Error::TcpTlsConnectFailure => return tcp_tls_connect_failure(target, detail),
            _ => return ConnectFailure::from_text(&detail, target),
        };
        ConnectFailure::new(kind, target, detail)
    }

    /// Classifies a DISCONNECT the broker sent us (Paho's `Event::Disconnected`).
    pub fn from_paho_disconnect(reason: paho_mqtt::ReasonCode, target: &BrokerTarget) -> Self {
        let kind = match kind_for_reason(reason) {
            FailureKind::Other => FailureKind::ConnectionLost,
            kind => kind,
        };
        let detail = format!("paho-mqtt: the broker sent DISCONNECT with reason {reason}");
        ConnectFailure::new(kind, target, detail)
    }

    /// The broker dropped an established connection without a DISCONNECT packet (Paho's
    /// `Event::ConnectionLost`). This is what a take-over by Mosquitto 2.0 looks like, so it is a
    /// [`FailureKind::ConnectionLost`] and counts towards client-id-collision detection.
    pub fn paho_connection_lost(target: &BrokerTarget) -> Self {
        ConnectFailure::new(
            FailureKind::ConnectionLost,
            target,
            "paho-mqtt: connection lost (closed without a DISCONNECT packet)",
        )
    }
}

/// Whether the broker's host name resolves (a blocking lookup: only called after a failure).
fn resolves(target: &BrokerTarget) -> bool {
    use std::net::ToSocketAddrs;
    target
        .address()
        .to_socket_addrs()
        .is_ok_and(|mut addrs| addrs.next().is_some())
}

/// Paho's `TCP/TLS connect failure`: one error for an unknown CA, a certificate for another host
/// name, a port that does not speak TLS and a port where nothing listens (measured against
/// Mosquitto 2.0 with Paho C 1.3.16: all four give exactly this). So the message lists the causes
/// instead of naming one, and points to Paho C's trace, which has OpenSSL's own words.
///
/// The kind is [`FailureKind::NotTls`] for the policy it carries: before the first successful
/// connection it is a setting to fix (stop, exit code 4), after it the broker is probably
/// restarting (retry with backoff). Plaintext connections can only mean "nothing listens".
fn tcp_tls_connect_failure(target: &BrokerTarget, detail: String) -> ConnectFailure {
    let address = target.address();
    let host = &target.credentials.host;
    match &target.security {
        Security::Tls(roots) => ConnectFailure {
            kind: FailureKind::NotTls,
            message: format!(
                "the TLS connection to {address} failed, and Paho does not say which check failed \
                 (it reports every TCP and TLS failure as \"TCP/TLS connect failure\"). Likely \
                 causes: the broker's certificate is not signed by a CA you trust (checked against \
                 {roots}; for a private broker pass --ca-file with the CA that signed it), the \
                 certificate is not issued for \"{host}\" (use the exact host name from \
                 creds.json), the port does not speak TLS (Link Labs' broker uses 8883), or nothing \
                 accepts connections at {address}. Run again with --log paho_mqtt_c=debug,info to \
                 see OpenSSL's own words (for example \"SSL alert ... unknown CA\")."
            ),
            detail,
        },
        Security::InsecurePlaintext => {
            ConnectFailure::new(FailureKind::ConnectionRefused, target, detail)
        }
    }
}

/// The failure category of an MQTT v5 reason code in a CONNACK or DISCONNECT.
fn kind_for_reason(code: paho_mqtt::ReasonCode) -> FailureKind {
    use paho_mqtt::ReasonCode as R;
    match code {
        R::BadUserNameOrPassword => FailureKind::BadCredentials,
        R::NotAuthorized => FailureKind::NotAuthorized,
        R::Banned | R::ClientIdentifierNotValid => FailureKind::Rejected,
        R::ServerUnavailable
        | R::ServerBusy
        | R::ServerShuttingDown
        | R::QuotaExceeded
        | R::ConnectionRateExceeded => FailureKind::ServerUnavailable,
        R::SessionTakenOver => FailureKind::ClientIdTaken,
        _ => FailureKind::Other,
    }
}

/// Checks Paho's answer to a QoS 1 SUBSCRIBE: `Ok(true)` when subscribed, an error when the broker
/// refused, a warning when only QoS 0 was granted (then messages can be lost without notice).
///
/// `Ok(false)` when the connection dropped while we waited (`still_connected` is
/// `client.is_connected()` after the call; Paho then says "Operation incomplete" or
/// "Client disconnected"). That is not a refusal: the event stream reports the loss next, and the
/// caller's loop reconnects and subscribes again. This happens for real when another process
/// takes our client id over between our CONNACK and our SUBACK.
///
/// Paho reports a refusal either as an `Err` carrying the reason code (turned into
/// [`SubscriptionRefused`] here) or as a granted "QoS" of 0x80 and above.
pub fn check_subscribe(
    result: Result<paho_mqtt::ServerResponse, paho_mqtt::Error>,
    topic: &str,
    still_connected: bool,
) -> Result<bool, anyhow::Error> {
    let refused = |reason: String| SubscriptionRefused {
        topic: topic.to_owned(),
        reason,
    };
    match result {
        Ok(response) => match response.subscribe_response() {
            Some(0) => {
                tracing::warn!(
                    "the broker granted only QoS 0 for {topic}: messages may be lost without notice"
                );
                Ok(true)
            }
            Some(1 | 2) | None => Ok(true),
            Some(code) => Err(refused(format!(
                "{}",
                paho_mqtt::ReasonCode::from(code as std::os::raw::c_uint)
            ))
            .into()),
        },
        Err(paho_mqtt::Error::ReasonCode(code, _)) => Err(refused(format!("{code}")).into()),
        Err(err) if !still_connected => {
            tracing::debug!("the connection dropped while subscribing ({err})");
            Ok(false)
        }
        Err(err) => Err(anyhow::Error::new(err).context(format!("subscribing to {topic}"))),
    }
}

/// `ssl://host:port` for TLS (Paho's scheme for MQTT over TLS), `tcp://host:port` for plaintext.
pub fn server_uri(target: &BrokerTarget) -> String {
    let scheme = match target.security {
        Security::Tls(_) => "ssl",
        Security::InsecurePlaintext => "tcp",
    };
    format!("{scheme}://{}", target.address())
}

/// The CONNECT options every Paho variant starts from: MQTT v5, the credentials' user name and
/// password, a 30 s keep-alive, a 10 s connect timeout, and TLS that verifies the broker
/// (including its host name: see [`TlsRoots::paho_ssl_options`](crate::TlsRoots)).
///
/// The session — `clean_start` and the Session Expiry Interval — is left to the example,
/// because choosing it is what the examples teach. An error means the CA file could not be used.
pub fn connect_options(
    target: &BrokerTarget,
) -> Result<paho_mqtt::ConnectOptionsBuilder, crate::TlsError> {
    let mut builder = paho_mqtt::ConnectOptionsBuilder::new_v5();
    builder
        .user_name(&target.credentials.username)
        .password(target.credentials.password.expose())
        .keep_alive_interval(std::time::Duration::from_secs(30))
        .connect_timeout(std::time::Duration::from_secs(10));
    if let Security::Tls(roots) = &target.security {
        builder.ssl_options(roots.paho_ssl_options()?);
    }
    Ok(builder)
}

/// Sends DISCONNECT when connected and says how it went, for the last log line
/// (`processed N messages; disconnected cleanly`, or what happened instead).
///
/// Paho completes the DISCONNECT token once the packet is written; when the connection is
/// already gone (broker down, taken over) there is nothing to send it on, and the broker keeps
/// what a persistent session had not received. Saying "disconnected cleanly" then would be a lie
/// the tests would believe (issue #16), so only [`Disconnected::Cleanly`] prints it.
pub async fn disconnect(client: &paho_mqtt::AsyncClient) -> crate::rumqttc_util::Disconnected {
    use crate::rumqttc_util::Disconnected;
    if !client.is_connected() {
        return Disconnected::NotQueued;
    }
    match client.disconnect(None).await {
        Ok(_) => Disconnected::Cleanly,
        Err(err) => Disconnected::Failed(err.to_string()),
    }
}

/// Takes the messages still waiting in Paho's event stream, typically right after DISCONNECT.
///
/// Why it matters: Paho C acknowledged each of them as it arrived, so the broker will never
/// deliver them again, to us or to anyone else. Handle them (a Ctrl-C stop), or when you cannot
/// (`--count` reached), say how many are dropped with [`report_dropped`].
pub fn take_waiting_messages(
    events: &paho_mqtt::AsyncReceiver<paho_mqtt::Event>,
) -> Vec<paho_mqtt::Message> {
    let mut waiting = Vec::new();
    while let Ok(event) = events.try_recv() {
        if let paho_mqtt::Event::Message(message) = event {
            waiting.push(message);
        }
    }
    waiting
}

/// Warns that `count` messages Paho already acknowledged are dropped unhandled (nothing when 0).
pub fn report_dropped(count: usize) {
    if count > 0 {
        tracing::warn!(
            "{count} more messages were already acknowledged by Paho and are dropped \
             (--count reached); with Paho, acknowledged means gone"
        );
    }
}

/// One question of a leaving shared-subscription member's drain: sends an UNSUBSCRIBE of
/// `filter` (the first one leaves the group; the next ones only ask, "no subscription existed")
/// and waits for its UNSUBACK until `limit`. Returns the messages that are in the stream once the
/// answer is in, `None` when there was no answer (connection gone, limit reached).
///
/// Why it tells the end of a drain: Paho C acks each message as it reads it, and handles a
/// connection's packets in order, so every message the broker wrote before the UNSUBACK is in the
/// stream when the answer completes the token. An answer with nothing before it means the broker
/// had nothing more queued for us; ask until that happens twice in a row (the broker may write
/// what an ack released one loop turn later), and no idle timer is needed (issue #16: the former
/// 0.5 s idle gap lost messages on a loaded machine).
pub async fn messages_before_unsuback(
    client: &paho_mqtt::AsyncClient,
    events: &paho_mqtt::AsyncReceiver<paho_mqtt::Event>,
    filter: &str,
    limit: std::time::Instant,
) -> Option<Vec<paho_mqtt::Message>> {
    use futures::future::{select, Either};
    let left = limit.saturating_duration_since(std::time::Instant::now());
    if left.is_zero() || !client.is_connected() {
        return None;
    }
    let answer = client.unsubscribe(filter);
    match select(answer, futures_timer::Delay::new(left)).await {
        Either::Left((Ok(_), _)) => Some(take_waiting_messages(events)),
        Either::Left((Err(err), _)) => {
            tracing::warn!("UNSUBSCRIBE failed: {err}");
            None
        }
        Either::Right(_) => None,
    }
}

/// Waits for the SUBACK of a SUBSCRIBE (the token from `client.subscribe(..)` or
/// `subscribe_with_options(..)`): `Ok(true)` when granted, `Ok(false)` when the connection
/// dropped first (the event stream reports the loss next), an error when refused.
///
/// Why not just `suback.await`: when the broker drops the connection right after CONNACK
/// (another process took our client id over), Paho may never complete the SUBSCRIBE it had
/// queued, and the await would hang for ever. So we look at the connection every 100 ms while we
/// wait. The timer is `futures-timer`, so this works the same on Tokio, smol and async-std.
pub async fn wait_for_suback(
    client: &paho_mqtt::AsyncClient,
    mut suback: paho_mqtt::Token,
    filter: &str,
) -> anyhow::Result<bool> {
    use futures::future::{select, Either};
    loop {
        let tick = futures_timer::Delay::new(std::time::Duration::from_millis(100));
        match select(&mut suback, tick).await {
            Either::Left((granted, _)) => {
                return check_subscribe(granted, filter, client.is_connected())
            }
            Either::Right(_) if !client.is_connected() => return Ok(false),
            Either::Right(_) => {}
        }
    }
}

/// How long a Paho consumer may take to stop after Ctrl-C / SIGTERM before [`stop_within`] ends
/// the process: the 10 s drain of the rumqttc examples plus time for the DISCONNECT.
pub const STOP_MAX: std::time::Duration = std::time::Duration::from_secs(15);

/// Call when a stop is requested: if the process is still running `limit` later, it says so and
/// exits with code 1.
///
/// Why a timer and not a drain limit as in the rumqttc examples: with Paho the handler runs in
/// the event loop itself (there is no separate task to abandon), and a handler stuck in one
/// message (a hung database call) would keep the process alive until its supervisor's SIGKILL
/// (Kubernetes: 30 s after SIGTERM), losing the DISCONNECT as well. Paho C acknowledged every
/// message before the handler saw it, so what was not handled by then is lost either way; the
/// exit code says the stop was not clean.
pub fn stop_within(limit: std::time::Duration) {
    std::thread::spawn(move || {
        std::thread::sleep(limit);
        tracing::error!(
            "the stop did not finish within {} s (a handler stuck in a message?): exiting now. \
             The messages Paho had already acknowledged and we had not handled are lost",
            limit.as_secs()
        );
        std::process::exit(i32::from(crate::exit::FAILURE));
    });
}
