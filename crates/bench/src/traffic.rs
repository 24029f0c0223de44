//! The benchmark's own MQTT client: a pipelined or paced QoS 1 publisher of Airfinder-like events.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail};
use mosquitto_harness::rumqttc::v5::mqttbytes::v5::{Packet, PubAckReason};
use mosquitto_harness::rumqttc::v5::mqttbytes::QoS;
use mosquitto_harness::rumqttc::v5::{AsyncClient, Event, EventLoop};
use mosquitto_harness::MosquittoBroker;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// Wall-clock microseconds since the Unix epoch: what `"sentAtUs"` carries. Publisher and
/// consumers run on one machine, so they read the same clock.
pub fn unix_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

const TAGS: [(&str, &str, &str); 4] = [
    ("C0:01:00:00:00:05", "Receiving", "Dock 3"),
    ("C0:01:00:00:01:2A", "Assembly", "Line B"),
    ("C0:01:00:00:02:7F", "Storage", "Aisle 14"),
    ("C0:01:00:00:03:11", "Shipping", "Bay 2"),
];

/// An Airfinder-like location event of about 250 bytes, numbered `seq` and stamped with the
/// publisher's clock (`sentAtUs`), as `common::output` expects for `--stats`.
pub fn event(seq: u64) -> Vec<u8> {
    let (mac, area, zone) = TAGS[(seq % TAGS.len() as u64) as usize];
    let x = (seq % 400) as f64 / 10.0;
    let y = (seq % 250) as f64 / 10.0;
    let sent = unix_us();
    format!(
        "{{\"seq\":{seq},\"sentAtUs\":{sent},\"eventType\":\"location\",\"tagMac\":\"{mac}\",\
         \"siteName\":\"Bench Warehouse\",\"areaName\":\"{area}\",\"zoneName\":\"{zone}\",\
         \"x\":{x:.1},\"y\":{y:.1},\"confidence\":0.92,\"batteryLevel\":{b},\"rssi\":-{r},\
         \"time\":\"{t}\",\"source\":\"bench\"}}",
        b = 100 - seq % 40,
        r = 50 + seq % 40,
        t = crate::report::rfc3339(sent / 1_000_000),
    )
    .into_bytes()
}

/// What the connection task has seen.
#[derive(Default)]
struct Progress {
    acked: AtomicU64,
    failure: Mutex<Option<String>>,
    changed: Notify,
}

/// A QoS 1 publisher on the broker's TLS port that counts PUBACKs.
pub struct Publisher {
    client: AsyncClient,
    progress: Arc<Progress>,
    driver: JoinHandle<()>,
    sent: u64,
}

impl Publisher {
    /// Connects with the broker's credentials and waits for the CONNACK.
    pub async fn connect(broker: &MosquittoBroker, client_id: &str) -> anyhow::Result<Publisher> {
        let options = broker.mqtt_options(client_id)?;
        let (client, mut eventloop) = AsyncClient::new(options, 1024);
        tokio::time::timeout(Duration::from_secs(10), wait_connack(&mut eventloop))
            .await
            .map_err(|_| anyhow!("publisher: no CONNACK within 10 s"))??;
        let progress = Arc::new(Progress::default());
        let driver = tokio::spawn(drive(eventloop, Arc::clone(&progress)));
        Ok(Publisher {
            client,
            progress,
            driver,
            sent: 0,
        })
    }

    /// Publishes `event(first)`, `event(first + 1)`, … `n` messages, pipelined (as many in flight
    /// as the broker allows), then waits for every PUBACK. Returns how long that took.
    pub async fn burst(&mut self, topic: &str, first: u64, n: u64) -> anyhow::Result<Duration> {
        let started = Instant::now();
        for seq in first..first + n {
            self.send(topic, event(seq)).await?;
        }
        self.wait_acked(Duration::from_secs(60)).await?;
        Ok(started.elapsed())
    }

    /// Publishes `n` messages at `rate` per second on a fixed schedule (message `i` at
    /// `start + i / rate`, not "sleep after each", so a slow send does not lower the rate), each
    /// stamped when it is handed to the client; then waits for every PUBACK.
    pub async fn paced(
        &mut self,
        topic: &str,
        first: u64,
        n: u64,
        rate: f64,
    ) -> anyhow::Result<()> {
        let start = tokio::time::Instant::now();
        for i in 0..n {
            let due = start + Duration::from_secs_f64(i as f64 / rate);
            tokio::time::sleep_until(due).await;
            self.send(topic, event(first + i)).await?;
        }
        self.wait_acked(Duration::from_secs(60)).await
    }

    async fn send(&mut self, topic: &str, payload: Vec<u8>) -> anyhow::Result<()> {
        if let Some(failure) = self.failure() {
            bail!("publisher: {failure}");
        }
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
            .map_err(|err| anyhow!("publisher: {err}"))?;
        self.sent += 1;
        Ok(())
    }

    /// Waits until every message sent so far is acknowledged (fails after `stall` without
    /// progress).
    pub async fn wait_acked(&self, stall: Duration) -> anyhow::Result<()> {
        loop {
            let notified = self.progress.changed.notified();
            if let Some(failure) = self.failure() {
                bail!("publisher: {failure}");
            }
            let acked = self.progress.acked.load(Ordering::Acquire);
            if acked >= self.sent {
                return Ok(());
            }
            if tokio::time::timeout(stall, notified).await.is_err() {
                bail!(
                    "publisher: {} of {} messages unacknowledged after {} s without progress",
                    self.sent - acked,
                    self.sent,
                    stall.as_secs()
                );
            }
        }
    }

    /// Sends DISCONNECT and gives the connection a moment to close.
    pub async fn disconnect(self) {
        let _ = self.client.disconnect().await;
        let _ = tokio::time::timeout(Duration::from_secs(2), self.driver).await;
    }

    fn failure(&self) -> Option<String> {
        self.progress
            .failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

async fn wait_connack(eventloop: &mut EventLoop) -> anyhow::Result<()> {
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => return Ok(()),
            Ok(_) => {}
            Err(err) => return Err(anyhow!("connecting: {err}")),
        }
    }
}

/// Polls the event loop (and never calls the client: see rumqttc's deadlock rule) until an error
/// or DISCONNECT, counting PUBACKs.
async fn drive(mut eventloop: EventLoop, progress: Arc<Progress>) {
    loop {
        let failure = match eventloop.poll().await {
            Ok(Event::Incoming(Packet::PubAck(ack))) => {
                if matches!(
                    ack.reason,
                    PubAckReason::Success | PubAckReason::NoMatchingSubscribers
                ) {
                    progress.acked.fetch_add(1, Ordering::AcqRel);
                    progress.changed.notify_waiters();
                    continue;
                }
                format!("PUBACK {:?}", ack.reason)
            }
            Ok(Event::Incoming(Packet::Disconnect(d))) => {
                format!("broker sent DISCONNECT {:?}", d.reason_code)
            }
            Ok(Event::Outgoing(mosquitto_harness::rumqttc::Outgoing::Disconnect)) => return,
            Ok(_) => continue,
            Err(err) => err.to_string(),
        };
        *progress.failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(failure);
        progress.changed.notify_waiters();
        return;
    }
}
