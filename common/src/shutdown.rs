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
