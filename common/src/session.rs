//! What a CONNACK means for the messages published while we were away, in words.
//!
//! Why this lives here: every `persistent-session` variant logs the same sentences, and only the
//! place where its library keeps `session present` and the granted Session Expiry Interval
//! differs. The examples read those two values from their CONNACK (that part is the lesson) and
//! hand them to [`explain`].

/// Logs what the CONNACK says about our backlog. This is the line to look for in production logs
/// after a restart: `session present: false` where `true` was expected means a backlog was lost.
///
/// - `session_present`: the CONNACK's Session Present flag.
/// - `requested_expiry`: the Session Expiry Interval we sent in CONNECT, in seconds.
/// - `granted_expiry`: the one the broker put in its CONNACK, if any. A broker may grant less
///   than we asked for; without the property, it granted what we asked.
/// - `reconnect`: whether this is a reconnect within one run (rather than the program's start).
pub fn explain(
    session_present: bool,
    requested_expiry: u32,
    granted_expiry: Option<u32>,
    reconnect: bool,
) {
    let granted = granted_expiry.unwrap_or(requested_expiry);
    if granted != requested_expiry {
        tracing::warn!(
            "the broker keeps our session for only {granted} s (we asked for \
             {requested_expiry} s): a longer outage loses the backlog"
        );
    }
    if session_present {
        tracing::info!(
            "session present: true — the broker kept our session; the events published while we \
             were away follow (subscribing again anyway, in case the previous run died before its \
             SUBSCRIBE)"
        );
    } else if granted == 0 {
        tracing::warn!(
            "session present: false — nothing was kept: with a session expiry of 0 a session ends \
             at disconnect, so the events published while we were away are gone"
        );
    } else if reconnect {
        tracing::warn!(
            "session present: false after a reconnect — the broker no longer had our session (it \
             restarted without saving sessions, or the session expired): the events published \
             while we were disconnected are lost. Subscribing again."
        );
    } else {
        tracing::info!(
            "session present: false — a new session for this client id (first run, or the old \
             session expired or was lost). From now on the broker queues our events for up to \
             {granted} s while we are away."
        );
    }
}
