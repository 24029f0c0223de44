//! An MQTT v5 test publisher that talks to the broker over TLS.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rand::distr::{Alphanumeric, SampleString};
use rumqttc::v5::mqttbytes::v5::{Packet, PubAckReason};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, EventLoop, MqttOptions};
use rumqttc::{Outgoing, TlsConfiguration, Transport};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::broker::MosquittoBroker;
use crate::error::HarnessError;

/// Upper limit on unacknowledged QoS 1 publishes; the broker's CONNACK
/// Receive Maximum lowers it further.
const MAX_INFLIGHT: u16 = 1000;

/// Capacity of rumqttc's request channel between the client handle and the event loop.
const REQUEST_CHANNEL_CAPACITY: usize = 1024;

/// How long to wait for the CONNACK.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// `publish_many` fails if no PUBACK arrives for this long.
const ACK_STALL_TIMEOUT: Duration = Duration::from_secs(30);

/// A rustls client configuration that trusts only the CA certificates in the
/// PEM file `ca_pem`, as the examples do with a customer's CA file.
///
/// Uses the aws-lc-rs provider explicitly, so it works no matter which
/// process-wide rustls provider (if any) is installed.
pub fn tls_client_config(ca_pem: &Path) -> Result<Arc<rustls::ClientConfig>, HarnessError> {
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(ca_pem)
        .map_err(|err| HarnessError::Tls(format!("reading {}: {err}", ca_pem.display())))?;
    for cert in certs {
        let cert =
            cert.map_err(|err| HarnessError::Tls(format!("parsing {}: {err}", ca_pem.display())))?;
        roots
            .add(cert)
            .map_err(|err| HarnessError::Tls(format!("adding {}: {err}", ca_pem.display())))?;
    }
    if roots.is_empty() {
        return Err(HarnessError::Tls(format!(
            "{} contains no certificate",
            ca_pem.display()
        )));
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| HarnessError::Tls(err.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

impl MosquittoBroker {
    /// rumqttc v5 options for this broker: `localhost` on the TLS port,
    /// trusting [`ca_path`](Self::ca_path), with the broker's user and password.
    ///
    /// Tests that need their own subscriber (or a wrong port, CA or password)
    /// start from these and change what they need.
    pub fn mqtt_options(&self, client_id: &str) -> Result<MqttOptions, HarnessError> {
        mqtt_options_for(self, client_id)
    }
}

/// Where and as whom to connect to a test broker of any kind ([`MosquittoBroker`],
/// [`TestBroker`](crate::TestBroker), one rmqtt node of a cluster), so that one client helper
/// serves them all.
pub trait BrokerEndpoint {
    /// The host name; the server certificate is valid for it.
    fn host(&self) -> &str;
    /// The TLS port.
    fn tls_port(&self) -> u16;
    /// PEM file of the CA that signed the server certificate.
    fn ca_path(&self) -> &Path;
    /// The user the broker accepts.
    fn username(&self) -> &str;
    /// Its password.
    fn password(&self) -> &str;
}

impl BrokerEndpoint for MosquittoBroker {
    fn host(&self) -> &str {
        MosquittoBroker::host(self)
    }
    fn tls_port(&self) -> u16 {
        MosquittoBroker::tls_port(self)
    }
    fn ca_path(&self) -> &Path {
        MosquittoBroker::ca_path(self)
    }
    fn username(&self) -> &str {
        MosquittoBroker::username(self)
    }
    fn password(&self) -> &str {
        MosquittoBroker::password(self)
    }
}

/// rumqttc v5 options for any [`BrokerEndpoint`]: its host on the TLS port, trusting its CA, with
/// its user and password ([`MosquittoBroker::mqtt_options`] for every kind).
pub fn mqtt_options_for(
    broker: &(impl BrokerEndpoint + ?Sized),
    client_id: &str,
) -> Result<MqttOptions, HarnessError> {
    let tls = tls_client_config(broker.ca_path())?;
    let mut options = MqttOptions::new(client_id, broker.host(), broker.tls_port());
    options
        .set_transport(Transport::Tls(TlsConfiguration::Rustls(tls)))
        .set_credentials(broker.username(), broker.password())
        .set_keep_alive(Duration::from_secs(30))
        .set_outgoing_inflight_upper_limit(MAX_INFLIGHT);
    Ok(options)
}

/// What the event-loop task has seen, shared with the [`Publisher`].
#[derive(Debug, Default, Clone)]
struct Progress {
    /// PUBACKs received on this connection.
    acked: u64,
    /// The first PUBACK with a failure reason code, if any.
    rejected: Option<String>,
    /// Why the connection ended, if it ended other than by `disconnect`.
    failed: Option<String>,
}

/// An MQTT v5 client that publishes QoS 1 test traffic and knows when the
/// broker has accepted all of it.
///
/// Tests use it to feed the examples under test: [`publish_many`](Self::publish_many)
/// returns only after every PUBACK, so a test can then stop the broker or
/// count what a subscriber received without races. Publishes are pipelined
/// (up to the broker's Receive Maximum in flight), so tens of thousands of
/// messages take seconds, not minutes.
pub struct Publisher {
    client: AsyncClient,
    progress: watch::Receiver<Progress>,
    driver: JoinHandle<()>,
}

impl Publisher {
    /// Connects to `broker` over TLS with its credentials and waits for the CONNACK.
    pub async fn connect(
        broker: &MosquittoBroker,
        client_id: &str,
    ) -> Result<Publisher, HarnessError> {
        Publisher::connect_with(broker.mqtt_options(client_id)?).await
    }

    /// Like [`connect`](Self::connect), to a broker of any kind.
    pub async fn connect_to(
        broker: &(impl BrokerEndpoint + ?Sized),
        client_id: &str,
    ) -> Result<Publisher, HarnessError> {
        Publisher::connect_with(mqtt_options_for(broker, client_id)?).await
    }

    /// Connects with arbitrary options (e.g. a wrong password or port) and
    /// waits for the CONNACK. A refusal or TLS failure is returned as
    /// [`HarnessError::Connect`] with rumqttc's error inside, to match on.
    pub async fn connect_with(options: MqttOptions) -> Result<Publisher, HarnessError> {
        let (client, mut eventloop) = AsyncClient::new(options, REQUEST_CHANNEL_CAPACITY);
        tokio::time::timeout(CONNECT_TIMEOUT, wait_for_connack(&mut eventloop))
            .await
            .map_err(|_| {
                HarnessError::Mqtt(format!("no CONNACK within {} s", CONNECT_TIMEOUT.as_secs()))
            })??;
        let (progress_tx, progress) = watch::channel(Progress::default());
        let driver = tokio::spawn(drive(eventloop, progress_tx));
        Ok(Publisher {
            client,
            progress,
            driver,
        })
    }

    /// The underlying rumqttc client, for anything the helpers do not cover.
    pub fn client(&self) -> &AsyncClient {
        &self.client
    }

    /// Publishes `n` QoS 1 messages to `topic`, message `i` (from 0) carrying
    /// `payload(i)`, and returns once the broker has acknowledged all of them.
    ///
    /// Fails if the connection drops, if a PUBACK carries a failure reason code
    /// (e.g. not authorized), or if acknowledgements stall for 30 s.
    pub async fn publish_many(
        &mut self,
        topic: &str,
        n: u64,
        payload: impl Fn(u64) -> Vec<u8>,
    ) -> Result<(), HarnessError> {
        let target = self.progress.borrow().acked + n;
        for i in 0..n {
            if let Err(err) = self
                .client
                .publish(topic, QoS::AtLeastOnce, false, payload(i))
                .await
            {
                return Err(self.failure().unwrap_or_else(|| {
                    HarnessError::Mqtt(format!("publishing message {i}: {err}"))
                }));
            }
            if let Some(failure) = self.failure() {
                return Err(failure);
            }
        }
        loop {
            if let Some(failure) = self.failure() {
                return Err(failure);
            }
            let acked = self.progress.borrow_and_update().acked;
            if acked >= target {
                return Ok(());
            }
            match tokio::time::timeout(ACK_STALL_TIMEOUT, self.progress.changed()).await {
                Ok(Ok(())) => {}
                // The event-loop task ended; `failure()` says why on the next turn.
                Ok(Err(_)) if self.failure().is_some() => {}
                Ok(Err(_)) => {
                    return Err(HarnessError::Mqtt(
                        "the MQTT event loop stopped before all PUBACKs arrived".into(),
                    ))
                }
                Err(_) => {
                    return Err(HarnessError::Mqtt(format!(
                        "{} of {n} messages unacknowledged after {} s without progress",
                        target - acked,
                        ACK_STALL_TIMEOUT.as_secs()
                    )))
                }
            }
        }
    }

    /// Publishes one QoS 1 message and waits for its PUBACK.
    pub async fn publish(
        &mut self,
        topic: &str,
        payload: impl Into<Vec<u8>>,
    ) -> Result<(), HarnessError> {
        let payload = payload.into();
        self.publish_many(topic, 1, |_| payload.clone()).await
    }

    /// Sends DISCONNECT (normal disconnection) and waits for the connection to close.
    pub async fn disconnect(mut self) -> Result<(), HarnessError> {
        if let Some(failure) = self.failure() {
            return Err(failure);
        }
        self.client
            .disconnect()
            .await
            .map_err(|err| HarnessError::Mqtt(format!("sending DISCONNECT: {err}")))?;
        match tokio::time::timeout(Duration::from_secs(5), &mut self.driver).await {
            Ok(_) => match self.failure() {
                Some(failure) => Err(failure),
                None => Ok(()),
            },
            Err(_) => Err(HarnessError::Mqtt(
                "the connection did not close within 5 s of DISCONNECT".into(),
            )),
        }
    }

    fn failure(&self) -> Option<HarnessError> {
        let progress = self.progress.borrow();
        if let Some(reason) = &progress.rejected {
            return Some(HarnessError::Mqtt(format!(
                "the broker rejected a publish: {reason}"
            )));
        }
        progress
            .failed
            .as_ref()
            .map(|reason| HarnessError::Mqtt(format!("connection lost: {reason}")))
    }
}

impl Drop for Publisher {
    /// Stops the event-loop task; the connection closes without DISCONNECT.
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// Polls until the CONNACK; a refusal surfaces as rumqttc's own error.
async fn wait_for_connack(eventloop: &mut EventLoop) -> Result<(), HarnessError> {
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => return Ok(()),
            Ok(_) => {}
            Err(err) => return Err(HarnessError::Connect(Box::new(err))),
        }
    }
}

/// Runs the event loop until DISCONNECT or the first error, counting PUBACKs.
///
/// It never calls the client itself: rumqttc's request channel is bounded, and
/// a task that both polls and waits for room in the channel can deadlock.
async fn drive(mut eventloop: EventLoop, progress: watch::Sender<Progress>) {
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::PubAck(ack))) => progress.send_modify(|progress| {
                progress.acked += 1;
                let failed = !matches!(
                    ack.reason,
                    PubAckReason::Success | PubAckReason::NoMatchingSubscribers
                );
                if failed && progress.rejected.is_none() {
                    progress.rejected =
                        Some(format!("PUBACK {:?} (packet {})", ack.reason, ack.pkid));
                }
            }),
            Ok(Event::Incoming(Packet::Disconnect(disconnect))) => {
                progress.send_modify(|progress| {
                    progress.failed = Some(format!(
                        "the broker sent DISCONNECT {:?}",
                        disconnect.reason_code
                    ));
                });
                return;
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) => return,
            Ok(_) => {}
            Err(err) => {
                progress.send_modify(|progress| progress.failed = Some(err.to_string()));
                return;
            }
        }
    }
}

/// Publishes `n` QoS 1 messages from a sync test: connects a [`Publisher`]
/// with a random client id, waits for all PUBACKs and disconnects.
///
/// # Panics
///
/// When called from inside a tokio runtime (it starts its own); async tests
/// use [`Publisher`] directly.
pub fn publish_blocking(
    broker: &MosquittoBroker,
    topic: &str,
    n: u64,
    payload: impl Fn(u64) -> Vec<u8>,
) -> Result<(), HarnessError> {
    publish_blocking_to(broker, topic, n, payload)
}

/// [`publish_blocking`] to a broker of any kind.
///
/// # Panics
///
/// When called from inside a tokio runtime.
pub fn publish_blocking_to(
    broker: &(impl BrokerEndpoint + ?Sized),
    topic: &str,
    n: u64,
    payload: impl Fn(u64) -> Vec<u8>,
) -> Result<(), HarnessError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| HarnessError::io("starting a tokio runtime", err))?;
    let client_id = format!(
        "harness-pub-{}",
        Alphanumeric.sample_string(&mut rand::rng(), 8)
    );
    runtime.block_on(async {
        let mut publisher = Publisher::connect_to(broker, &client_id).await?;
        publisher.publish_many(topic, n, payload).await?;
        publisher.disconnect().await
    })
}
