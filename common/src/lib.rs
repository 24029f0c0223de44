//! Plumbing shared by every example in this workspace — and nothing that teaches MQTT.
//!
//! The examples are read, and copied, one `main.rs` at a time (docs/src/copying.md says which of
//! these files a copy takes). So every setting and call that carries a lesson — clean start,
//! session expiry, manual acks, Receive Maximum, keep-alive, maximum packet size, subscribing
//! after every CONNACK, acking after processing, what to do after a connection error — is written
//! out in the example that teaches it. What lives here is what the design gives this crate and
//! every example needs without anything to learn from reading it twice:
//!
//! - credentials and TLS setup: [`credentials`] (the Link Labs `creds.json`, validated field by
//!   field), [`tls`] (whom to trust: system roots or `--ca-file`, for rustls, native-tls and
//!   Paho), [`cli`] (the shared flags, [`ConnectArgs::load_target`], [`BrokerTarget`]);
//! - plain-words errors and exit codes: [`failure`] (a library error as a paragraph with its fix,
//!   and whether a retry can help), [`exit`] (the paragraph on stderr, an exit code that means
//!   something), [`catalogue`] (feature `catalogue`: every failure a binary reports, the source
//!   of the book's troubleshooting page);
//! - small plumbing: [`supervisor`] and [`backoff`] (apply the retry rule, spot a client-id
//!   collision), [`rumqttc_util`] / [`rumqttc_sync`] (SUBACK checks, the idle watchdog, a
//!   DISCONNECT that is really sent), `paho_util` (feature `paho`), [`output`], [`session`],
//!   [`recent_keys`] (the idempotency keys a consumer remembers), [`share_group`],
//!   [`share_drain`] (when a member leaving its shared-subscription group has
//!   been sent everything), [`shutdown`], [`logging`], [`payload`];
//! - following a broker cluster behind one DNS name: [`broker_addresses`] (every address,
//!   resolved again on every reconnect, a dead node skipped) with [`host_name_verifier`] (TLS
//!   checked for the configured name when an IP address is dialled).

pub mod backoff;
pub mod broker_addresses;
#[cfg(feature = "catalogue")]
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
/// The last N idempotency keys, in memory: `qos1-at-least-once`'s stand-in for a database.
pub mod recent_keys;
pub mod rumqttc_sync;
pub mod rumqttc_util;
pub mod session;
pub mod share_drain;
pub mod share_group;
pub mod shutdown;
pub mod supervisor;
pub mod tls;

pub use backoff::Backoff;
pub use cli::{BrokerTarget, ConnectArgs, Security, TargetError};
pub use credentials::{
    Credentials, CredentialsError, CredentialsFile, CredentialsOrigin, Password,
};
pub use failure::{ConnectFailure, FailureKind};
pub use output::MessagePrinter;
pub use supervisor::{ConnectionSupervisor, NextStep};
pub use tls::{TlsError, TlsRoots};
