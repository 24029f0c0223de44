//! The demo broker for programs that do not run on Tokio: plain threads, smol, async-std.
//!
//! [`crate::target_or_demo`] is `async` and needs a Tokio runtime, because the embedded broker
//! (mqtt5) is built on Tokio. The variants of the examples that show other runtimes
//! (`*-rumqttc-blocking`, `*-paho-smol`, `*-paho-async-std`) should not have to start Tokio
//! themselves just for the first-run demo, so [`target_or_demo_blocking`] does it for them: when
//! there are no credentials it starts a small private Tokio runtime that runs only the demo broker
//! and its publisher on its own worker threads, and the example's own code never sees it.

use crate::{target_or_demo, DemoBroker, TargetError};

/// A demo broker running on its own private Tokio runtime (two worker threads).
///
/// Keep it alive while you are connected; call [`BackgroundDemo::shutdown`] at the end (dropping
/// it also stops the broker, without waiting for it).
pub struct BackgroundDemo {
    demo: Option<DemoBroker>,
    runtime: tokio::runtime::Runtime,
}

impl std::fmt::Debug for BackgroundDemo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackgroundDemo")
            .field("demo", &self.demo)
            .finish_non_exhaustive()
    }
}

impl BackgroundDemo {
    /// Stops the demo publisher and broker and waits (a few seconds at most) for them.
    ///
    /// Call it from ordinary (non-Tokio) code, after your client has disconnected: it blocks the
    /// calling thread while the broker stops.
    pub fn shutdown(mut self) {
        if let Some(demo) = self.demo.take() {
            self.runtime.block_on(demo.shutdown());
        }
    }
}

/// [`crate::target_or_demo`] for code that is not running inside Tokio.
///
/// With credentials (`--creds`, `MQTT_CREDS` or `./creds.json`) it returns the target and `None`
/// and starts nothing. Without, it starts the demo broker on a private Tokio runtime, prints the
/// banner and returns the demo's target plus the [`BackgroundDemo`] to keep alive.
///
/// Call it before entering your own runtime (`smol::block_on`, `async_std::task::block_on`), or
/// from a plain thread: it blocks while the broker starts (well under a second).
///
/// # Errors
/// See [`TargetError`]; a runtime that cannot be created is reported as a demo start failure.
pub fn target_or_demo_blocking(
    args: &common::cli::ConnectArgs,
) -> Result<(common::cli::BrokerTarget, Option<BackgroundDemo>), TargetError> {
    if let Some(file) = args.locate_credentials()? {
        return Ok((args.target(file)?, None));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("demo-broker")
        .enable_all()
        .build()
        .map_err(|err| {
            crate::DemoError::Broker(format!("cannot start a Tokio runtime for it: {err}"))
        })?;
    let (target, demo) = runtime.block_on(target_or_demo(args))?;
    Ok((target, Some(BackgroundDemo { demo, runtime })))
}
