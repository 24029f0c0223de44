//! Exit codes that mean something, and the one-paragraph error report.
//!
//! A supervisor (systemd, Kubernetes, a shell script) can act on the code: restarting on
//! [`NETWORK`] makes sense, restarting on [`AUTH`] or [`CLIENT_ID_IN_USE`] only makes things worse.

use std::process::ExitCode;

use crate::cli::PlaintextRefused;
use crate::credentials::CredentialsError;
use crate::failure::ConnectFailure;
use crate::rumqttc_util::SubscriptionRefused;
use crate::tls::TlsError;

/// Unexpected failure (a bug, an I/O error we did not foresee).
pub const FAILURE: u8 = 1;
/// Bad command line (clap uses 2 as well).
pub const USAGE: u8 = 2;
/// The credentials file is missing, unreadable or invalid.
pub const CREDENTIALS: u8 = 3;
/// TLS trust failed: unknown CA, wrong host name, expired certificate, not a TLS port, bad CA file.
pub const TLS: u8 = 4;
/// The broker refused the user name, password, client or subscription.
pub const AUTH: u8 = 5;
/// Another process uses our client id.
pub const CLIENT_ID_IN_USE: u8 = 6;
/// Plaintext MQTT was asked for and refused.
pub const PLAINTEXT_REFUSED: u8 = 7;
/// The broker's host name does not resolve before the first connection (a wrong "host"), or a
/// one-shot tool (fetch-creds, doctor) could not reach its server. A refused or silent broker is
/// retried with backoff by the consumers, never an exit.
pub const NETWORK: u8 = 8;

/// Prints `error: <paragraph>` to stderr and picks the exit code from the error's type.
///
/// Use it as the last line of every `main`:
/// `match run().await { Ok(()) => ExitCode::SUCCESS, Err(err) => common::exit::report(&err) }`.
pub fn report(err: &anyhow::Error) -> ExitCode {
    // `{:#}` prints anyhow's context chain on one line: "loading creds: <paragraph>".
    eprintln!("error: {err:#}");
    #[cfg(feature = "catalogue")]
    if let Some(key) = crate::catalogue::key_for_error(err) {
        eprintln!("{}", help_line(key));
    }
    ExitCode::from(code_for(err))
}

/// `help: …`: where this failure is explained at length, by its troubleshooting entry.
#[cfg(feature = "catalogue")]
pub fn help_line(key: crate::catalogue::Key) -> String {
    let id = key.entry().id;
    format!("help: troubleshooting entry `{id}` in the book: docs/src/troubleshooting.md#{id}")
}

/// The exit code for an error, by the first typed cause found in its chain.
pub fn code_for(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if cause.is::<CredentialsError>() {
            return CREDENTIALS;
        }
        if cause.is::<TlsError>() {
            return TLS;
        }
        if cause.is::<PlaintextRefused>() {
            return PLAINTEXT_REFUSED;
        }
        if cause.is::<SubscriptionRefused>() {
            return AUTH;
        }
        if let Some(failure) = cause.downcast_ref::<ConnectFailure>() {
            return failure.kind.exit_code();
        }
    }
    FAILURE
}
