//! Link Labs credential files that point the examples at a test broker.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::broker::MosquittoBroker;
use crate::client::BrokerEndpoint;
use crate::kinds::TestBroker;

/// The organization id written into test credentials: obviously not a real one.
pub const TEST_ORGANIZATION_ID: &str = "00000000-0000-0000-0000-000000000001";

impl MosquittoBroker {
    /// A Link Labs "MQTT User Credentials Object" for this broker, shaped exactly
    /// like the one customers download, so the examples' real credential
    /// loading is what the tests exercise.
    ///
    /// Tests that need broken credentials mutate the returned value (a wrong
    /// `port`, `password`, ...) and write it with [`write_creds_value`].
    pub fn creds_json(&self, client_id: &str, topic: &str) -> Value {
        creds_json_for(self, client_id, topic)
    }

    /// Writes [`creds_json`](Self::creds_json) as `creds.json` in `dir`
    /// (mode 0600, as a customer should keep it) and returns its path.
    ///
    /// # Panics
    ///
    /// If the file cannot be written: this is a test helper.
    pub fn write_creds(&self, dir: &Path, client_id: &str, topic: &str) -> PathBuf {
        write_creds_value(dir, &self.creds_json(client_id, topic))
    }
}

impl TestBroker {
    /// The Link Labs credentials object for this broker (see [`MosquittoBroker::creds_json`]).
    pub fn creds_json(&self, client_id: &str, topic: &str) -> Value {
        creds_json_for(self, client_id, topic)
    }

    /// Writes [`creds_json`](Self::creds_json) as `creds.json` in `dir` and returns its path.
    ///
    /// # Panics
    ///
    /// If the file cannot be written: this is a test helper.
    pub fn write_creds(&self, dir: &Path, client_id: &str, topic: &str) -> PathBuf {
        write_creds_value(dir, &self.creds_json(client_id, topic))
    }

    /// rumqttc v5 options for this broker (see [`MosquittoBroker::mqtt_options`]).
    pub fn mqtt_options(
        &self,
        client_id: &str,
    ) -> Result<rumqttc::v5::MqttOptions, crate::HarnessError> {
        crate::client::mqtt_options_for(self, client_id)
    }
}

/// A Link Labs "MQTT User Credentials Object" for any broker: host, TLS port, user and password
/// from `broker`, the given client id and topic, the rest as the Airfinder UI writes it.
pub fn creds_json_for(
    broker: &(impl BrokerEndpoint + ?Sized),
    client_id: &str,
    topic: &str,
) -> Value {
    json!({
        "host": broker.host(),
        "port": broker.tls_port(),
        "clientId": client_id,
        "username": broker.username(),
        "password": broker.password(),
        "topic": topic,
        "organizationId": TEST_ORGANIZATION_ID,
        "protocol": "mqtts",
        "subscribeAcl": topic,
        "publishAcl": null,
        "subscriptionDate": "2026-01-01T00:00:00Z",
        "userId": 1,
        "isEnabled": 1,
        "subscriptionType": "organization",
    })
}

/// Writes any JSON value as `creds.json` in `dir` (mode 0600) and returns its
/// path, for tests that hand the examples deliberately wrong credentials.
///
/// # Panics
///
/// If the file cannot be written: this is a test helper.
pub fn write_creds_value(dir: &Path, creds: &Value) -> PathBuf {
    let path = dir.join("creds.json");
    let text = match serde_json::to_string_pretty(creds) {
        Ok(text) => text,
        Err(err) => panic!("serializing test credentials: {err}"),
    };
    let written = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .and_then(|mut file| file.write_all(format!("{text}\n").as_bytes()))
        // `mode` only applies to new files; an existing one keeps its mode otherwise.
        .and_then(|()| fs::set_permissions(&path, fs::Permissions::from_mode(0o600)));
    if let Err(err) = written {
        panic!("writing {}: {err}", path.display());
    }
    path
}
