//! Plumbing shared by every example in this workspace — and nothing more.
//!
//! The examples are meant to be read (and copied) one `main.rs` at a time, so anything that
//! teaches MQTT stays in the example: connecting, subscribing, acking, the event loop. What lives
//! here is what every example needs but nobody needs to read twice:
//!
//! - [`credentials`]: the Link Labs credentials object (`creds.json`), validated field by field;
//! - [`tls`]: whom to trust as the broker ([`TlsRoots`]), for rustls, native-tls and Paho;
//! - [`broker_addresses`]: following a broker cluster behind one DNS name (every address, resolved
//!   again on every reconnect), with [`host_name_verifier`] checking TLS for the configured name;
//! - [`cli`]: the flags every example shares ([`ConnectArgs`]) and the resolved [`BrokerTarget`];
//! - [`failure`]: connection errors translated into plain words, fatal or worth a retry;
//! - [`catalogue`]: every failure a binary reports, with its fix: the source of the book's
//!   troubleshooting page;
//! - [`supervisor`]: reconnect backoff and client-id-collision detection for rumqttc loops;
//! - [`rumqttc_util`]: SUBACK checks and a DISCONNECT that is really sent;
//! - [`rumqttc_sync`]: the same DISCONNECT for rumqttc's blocking `Client`;
//! - `paho_util` (feature `paho`): Paho errors in plain words, SUBACK checks, the server URI
//!   and the CONNECT options every Paho variant starts from;
//! - [`exit`]: one paragraph on stderr and an exit code that means something;
//! - [`output`]: print each message, or one `stats:` line for benchmarks (`--stats`);
//! - [`session`]: what a CONNACK means for the backlog, in words;
//! - [`share_group`]: group and instance names for a shared subscription;
//! - [`shutdown`], [`logging`], [`payload`]: small helpers.

pub mod backoff;
pub mod broker_addresses;
pub mod catalogue;
pub mod cli;
pub mod credentials;
pub mod exit;
pub mod failure;
pub mod host_name_verifier;
pub mod logging;
pub mod output;
#[cfg(feature = "paho")]
pub mod paho_util;
pub mod payload;
pub mod rumqttc_sync;
pub mod rumqttc_util;
pub mod session;
pub mod share_group;
pub mod shutdown;
pub mod supervisor;
pub mod tls;

pub use backoff::Backoff;
pub use cli::{BrokerTarget, ConnectArgs, Security};
pub use credentials::{
    Credentials, CredentialsError, CredentialsFile, CredentialsOrigin, Password,
};
pub use failure::{ConnectFailure, FailureKind};
pub use output::MessagePrinter;
pub use supervisor::{ConnectionSupervisor, NextStep};
pub use tls::{TlsError, TlsRoots};
