//! A real broker and process helpers for the behaviour tests of the Link Labs
//! MQTT examples.
//!
//! The examples talk to the Link Labs Airfinder broker over MQTT v5 and TLS
//! only. To prove they behave as documented (refuse a wrong CA, reconnect,
//! keep a persistent session across a broker restart, ...) the tests need a
//! broker that behaves like a production one, not a mock. This crate provides:
//!
//! - [`MosquittoBroker`]: Mosquitto 2 as a child process with a throwaway CA,
//!   password authentication and three listeners (good TLS, TLS with a
//!   certificate for the wrong host name, plaintext);
//! - [`MosquittoBroker::write_creds`]: the Link Labs credentials file the
//!   examples load, pointing at that broker;
//! - [`Publisher`] and [`publish_blocking`]: QoS 1 test traffic that is known
//!   to be accepted by the broker before the test goes on;
//! - [`ExampleProcess`]: an example binary as a child process whose output the
//!   test can wait for and assert on.
//!
//! A test typically reads:
//!
//! ```no_run
//! use std::time::Duration;
//! use mosquitto_harness::{publish_blocking, BrokerOptions, ExampleProcess, MosquittoBroker};
//!
//! let broker = MosquittoBroker::start(BrokerOptions::default()).expect("start mosquitto");
//! let dir = tempfile::tempdir().unwrap();
//! let creds = broker.write_creds(dir.path(), "sub-1", "lle/events/#");
//! let creds = creds.to_str().unwrap();
//! let ca = broker.ca_path().to_str().unwrap();
//! // The binary name and its variables are illustrative.
//! let sub = ExampleProcess::spawn(
//!     "subscribe",
//!     &["--count", "10"],
//!     &[("MQTT_CREDS", creds), ("MQTT_CA_FILE", ca)],
//! );
//! assert!(sub.wait_for_line(|l| l.contains("subscribed"), Duration::from_secs(10)).is_some(),
//!         "{}", sub.transcript());
//! publish_blocking(&broker, "lle/events/1", 10, |i| format!("msg {i}").into_bytes()).unwrap();
//! ```
//!
//! Mosquitto must be installed (`sudo apt-get install -y mosquitto`); without it
//! [`MosquittoBroker::start`] fails with [`HarnessError::NotInstalled`] rather
//! than letting tests pass by skipping.

mod broker;
mod certs;
mod client;
mod creds;
mod error;
mod kinds;
mod process;
mod raw;

pub use broker::{BrokerOptions, MosquittoBroker};
pub use certs::ThrowawayCa;
pub use client::{
    mqtt_options_for, publish_blocking, publish_blocking_to, tls_client_config, BrokerEndpoint,
    Publisher,
};
pub use creds::{creds_json_for, write_creds_value, TEST_ORGANIZATION_ID};
pub use error::HarnessError;
pub use kinds::{
    BrokerKind, KindOptions, RmqttBroker, RmqttNode, TestBroker, RMQTT_CLUSTER_CIRCUIT_BREAKER,
    RMQTT_CLUSTER_GRPC_TIMEOUT,
};
pub use process::{example_bin, example_command, ExampleProcess, Stream};
pub use raw::{RawConnection, RawEvent};

/// The rumqttc version the harness is built with, re-exported so tests build
/// their own clients from [`MosquittoBroker::mqtt_options`] without version skew.
pub use rumqttc;
