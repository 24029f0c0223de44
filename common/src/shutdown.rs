//! Stop on Ctrl-C (SIGINT) or SIGTERM.
//!
//! Kubernetes, systemd and Docker stop a service with SIGTERM; a developer presses Ctrl-C. Either
//! way an MQTT consumer should stop taking messages, finish the one in hand, ack it and send
//! DISCONNECT — otherwise the broker sees a dropped connection, keeps the session's in-flight
//! message unacked and redelivers it to someone later (a duplicate you caused yourself).

/// Resolves when the process is asked to stop. Await it in a `tokio::select!` beside the event loop.
pub async fn signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            // Cannot install a SIGTERM handler (very unusual): Ctrl-C still works.
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// After a stop request: waits for the handler task to finish the messages it already has (and
/// ack them), but no longer than `limit`.
///
/// A stop must always stop: a handler stuck on a slow database or a wedged connection must not
/// keep the process alive until its supervisor's SIGKILL (Kubernetes: 30 s after SIGTERM), which
/// would also cost the clean DISCONNECT. `Ok(None)` means the limit passed: the handler is
/// aborted, and what it had not acked stays with the broker for redelivery (persistent session)
/// or is gone with the session (clean start). The caller drops the work queue's sender first, so
/// that the handler sees the end of the queue.
pub async fn drain<T>(
    handler: tokio::task::JoinHandle<anyhow::Result<T>>,
    limit: std::time::Duration,
) -> anyhow::Result<Option<T>> {
    tracing::info!(
        "stop requested: finishing the messages already received (at most {} s)",
        limit.as_secs()
    );
    let abort = handler.abort_handle();
    match tokio::time::timeout(limit, handler).await {
        Ok(joined) => Ok(Some(joined??)),
        Err(_) => {
            abort.abort();
            tracing::warn!(
                "the handler did not finish within {} s; stopping without it: what it had not \
                 acked is sent again by the broker (persistent session) or lost with the session \
                 (clean start)",
                limit.as_secs()
            );
            Ok(None)
        }
    }
}
