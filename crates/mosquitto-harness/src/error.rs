//! The one error type of the harness.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while starting a broker or talking to it.
///
/// Tests usually `expect()` these, so every variant carries enough context
/// (paths, the broker's own log) to explain a failure without re-running it,
/// and `Debug` prints the same readable text as `Display` (see below).
#[derive(thiserror::Error)]
pub enum HarnessError {
    /// A program the harness needs is missing. Behaviour tests must never skip
    /// silently because of this, so the message says how to install it.
    #[error(
        "`{program}` was not found on PATH (nor in /usr/sbin): the behaviour tests run a real \
         Mosquitto broker. Install it with `sudo apt-get install -y mosquitto` (Debian/Ubuntu; \
         the package also provides mosquitto_passwd). scripts/test installs it for you."
    )]
    NotInstalled {
        /// The program that was looked for, e.g. `mosquitto`.
        program: &'static str,
    },

    /// A file-system or process operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What the harness was doing, e.g. "writing /tmp/x/mosquitto.conf".
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// `rcgen` could not generate a throwaway certificate.
    #[error("generating test certificates: {0}")]
    Certificate(#[from] rcgen::Error),

    /// `mosquitto_passwd` ran but failed.
    #[error("mosquitto_passwd failed ({status}): {output}")]
    Passwd {
        /// Its exit status.
        status: String,
        /// Its stdout and stderr.
        output: String,
    },

    /// Mosquitto exited before it accepted connections (bad config, port taken, ...).
    #[error("mosquitto exited early ({status}); config {config}; broker log:\n{log}")]
    BrokerExited {
        /// Its exit status.
        status: String,
        /// The config file it was started with, kept until the broker is dropped.
        config: PathBuf,
        /// Everything the broker printed.
        log: String,
    },

    /// Mosquitto kept running but did not accept TCP connections in time.
    #[error("mosquitto did not accept connections on port {port} within {waited_ms} ms; broker log:\n{log}")]
    BrokerNotReady {
        /// The port that was polled.
        port: u16,
        /// How long the harness waited.
        waited_ms: u128,
        /// Everything the broker printed.
        log: String,
    },

    /// The rustls client configuration could not be built from the CA file.
    #[error("TLS setup: {0}")]
    Tls(String),

    /// The MQTT client could not connect: TLS handshake failure, CONNACK refusal, timeout...
    /// Boxed because rumqttc's error is large; match on `*err` in tests.
    #[error("MQTT connect failed: {0}")]
    Connect(#[source] Box<rumqttc::v5::ConnectionError>),

    /// The MQTT connection failed or misbehaved after CONNACK.
    #[error("MQTT: {0}")]
    Mqtt(String),

    /// The program of another broker kind (e.g. `rmqttd`) is missing. Tests must not pass by
    /// skipping, so the message says how to install it.
    #[error("`{program}` was not found on PATH nor in ~/.cargo/bin: {install}")]
    KindNotInstalled {
        /// The program that was looked for, e.g. `rmqttd`.
        program: &'static str,
        /// How to install it.
        install: &'static str,
    },

    /// A broker of another kind (mqtt5 in-process, rmqtt child process) did not start.
    #[error("the {kind} broker did not start: {detail}")]
    KindStart {
        /// Which kind, e.g. `rmqtt`.
        kind: &'static str,
        /// What went wrong, with the broker's log where there is one.
        detail: String,
    },
}

/// `expect()` and `unwrap()` print `Debug`, and that is how tests show these
/// errors: so `Debug` is the readable message (install hint, multi-line broker
/// log), plus rumqttc's own `Debug` for connect errors, which names the exact
/// TLS failure (`UnknownIssuer`, `NotValidForName`, ...).
impl fmt::Debug for HarnessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)?;
        if let HarnessError::Connect(err) = self {
            write!(f, " ({err:?})")?;
        }
        Ok(())
    }
}

impl HarnessError {
    /// Builds an [`HarnessError::Io`] with a description of what was attempted.
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        HarnessError::Io {
            context: context.into(),
            source,
        }
    }
}

/// Adds a description of the attempted operation to `io::Result`s.
pub(crate) trait IoContext<T> {
    /// Wraps the error in [`HarnessError::Io`] with `context()` as its description.
    fn context(self, context: impl FnOnce() -> String) -> Result<T, HarnessError>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T, HarnessError> {
        self.map_err(|source| HarnessError::io(context(), source))
    }
}
