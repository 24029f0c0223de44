//! The small MQTT v5 client doctor needs: CONNECT/CONNACK, SUBSCRIBE/SUBACK, PUBLISH/PUBACK,
//! keep-alive pings and DISCONNECT with a chosen session expiry. Nothing more: no reconnects, no
//! queues. Steps 5–10 drive it.

use std::time::{Duration, Instant};

use common::BrokerTarget;
use mqtt5_protocol::packet::connack::ConnAckPacket;
use mqtt5_protocol::packet::connect::ConnectPacket;
use mqtt5_protocol::packet::disconnect::DisconnectPacket;
use mqtt5_protocol::packet::puback::PubAckPacket;
use mqtt5_protocol::packet::suback::SubAckPacket;
use mqtt5_protocol::packet::subscribe::SubscribePacket;
use mqtt5_protocol::{ConnectOptions, Packet, Properties, PropertyId, PropertyValue, QoS};

use crate::mqtt::{Connection, Incoming, RecvError, Transport};

/// Keep-alive doctor asks for. Long enough that a default `--wait` needs no ping; pings are sent
/// anyway when waiting longer.
pub const KEEP_ALIVE_SECS: u16 = 60;

/// Session expiry for doctor's own sessions: long enough to reconnect within it (step 7), short
/// enough that a doctor killed half-way leaves nothing for long. The last DISCONNECT sets 0.
pub const SESSION_EXPIRY_SECS: u32 = 60;

/// The first PUBLISH doctor received.
#[derive(Debug, Clone)]
pub struct FirstMessage {
    /// Its topic.
    pub topic: String,
    /// Payload size in bytes.
    pub size: usize,
    /// QoS it was delivered with.
    pub qos: u8,
    /// Whether the broker sent it as a retained message.
    pub retain: bool,
    /// When it arrived.
    pub at: Instant,
}

/// What the broker answered to CONNECT.
#[derive(Debug)]
pub enum ConnectOutcome {
    /// CONNACK with a success or failure reason code.
    ConnAck(ConnAckPacket),
    /// An MQTT 3.1.1 CONNACK: two bytes, the second the return code.
    V311(u8),
    /// The broker sent something else or nothing.
    NoConnAck(RecvError),
    /// A packet that is not a CONNACK.
    Unexpected(String),
}

/// One live connection after a successful CONNACK.
pub struct MqttSession {
    connection: Connection,
    keep_alive: Duration,
    next_packet_id: u16,
    /// The first message seen on any of this run's connections.
    pub first_message: Option<FirstMessage>,
}

/// Sends CONNECT and reads the answer.
pub async fn connect(
    transport: Box<dyn Transport>,
    target: &BrokerTarget,
    clean_start: bool,
    session_expiry: u32,
    timeout: Duration,
) -> (ConnectOutcome, Option<MqttSession>) {
    let mut connection = Connection::new(transport);
    let options = ConnectOptions::new(target.client_id.clone())
        .with_clean_start(clean_start)
        .with_keep_alive(Duration::from_secs(u64::from(KEEP_ALIVE_SECS)))
        .with_credentials(
            target.credentials.username.clone(),
            target.credentials.password.expose().as_bytes(),
        )
        .with_session_expiry_interval(session_expiry);
    if let Err(err) = connection.send(&ConnectPacket::new(options)).await {
        return (ConnectOutcome::NoConnAck(RecvError::Io(err)), None);
    }
    let incoming = match connection.recv(timeout).await {
        Ok(incoming) => incoming,
        Err(err) => return (ConnectOutcome::NoConnAck(err), None),
    };
    match incoming {
        // A 3.1.1 broker answers a v5 CONNECT with a 3.1.1 CONNACK, return code 1 "unacceptable
        // protocol version" (codes 1–5 exist only in 3.1.1; v5 refusals are 0x80 and up).
        Incoming {
            packet_type: 2,
            body,
            ..
        } if body.len() == 2 && (1..=5).contains(&body[1]) => (ConnectOutcome::V311(body[1]), None),
        Incoming {
            packet: Ok(Packet::ConnAck(connack)),
            ..
        } => {
            if u8::from(connack.reason_code) == 0 {
                let keep_alive = property_u16(&connack.properties, PropertyId::ServerKeepAlive)
                    .unwrap_or(KEEP_ALIVE_SECS);
                let session = MqttSession {
                    connection,
                    keep_alive: Duration::from_secs(u64::from(keep_alive.max(1))),
                    next_packet_id: 1,
                    first_message: None,
                };
                (ConnectOutcome::ConnAck(connack), Some(session))
            } else {
                connection.close().await;
                (ConnectOutcome::ConnAck(connack), None)
            }
        }
        Incoming {
            packet: Ok(Packet::Disconnect(disconnect)),
            ..
        } => (
            ConnectOutcome::Unexpected(format!(
                "DISCONNECT {} instead of CONNACK",
                reason_text(u8::from(disconnect.reason_code))
            )),
            None,
        ),
        Incoming {
            packet,
            packet_type,
            ..
        } => (
            ConnectOutcome::Unexpected(match packet {
                Ok(packet) => format!("{} instead of CONNACK", packet.packet_type_name()),
                Err(err) => format!("an undecodable packet of type {packet_type}: {err}"),
            }),
            None,
        ),
    }
}

impl MqttSession {
    fn packet_id(&mut self) -> u16 {
        let id = self.next_packet_id;
        self.next_packet_id = self.next_packet_id.checked_add(1).unwrap_or(1);
        id
    }

    /// Reads the next packet. A PUBLISH is handled here — recorded as the first message and
    /// acked, so the broker does not resend it — and reported as `None`, as is a PINGRESP.
    async fn next_packet(&mut self, timeout: Duration) -> Result<Option<Packet>, RecvError> {
        let incoming = self.connection.recv(timeout).await?;
        match incoming.packet {
            Ok(Packet::Publish(publish)) => {
                if self.first_message.is_none() {
                    self.first_message = Some(FirstMessage {
                        topic: publish.topic_name.clone(),
                        size: publish.payload.len(),
                        qos: publish.qos as u8,
                        retain: publish.retain,
                        at: Instant::now(),
                    });
                }
                if publish.qos == QoS::AtLeastOnce {
                    if let Some(id) = publish.packet_id {
                        self.connection
                            .send(&PubAckPacket::new(id))
                            .await
                            .map_err(RecvError::Io)?;
                    }
                }
                Ok(None)
            }
            Ok(Packet::PingResp) => Ok(None),
            Ok(packet) => Ok(Some(packet)),
            Err(err) => Err(RecvError::Malformed(err)),
        }
    }

    /// Subscribes to one filter at QoS 1 and returns the SUBACK.
    pub async fn subscribe(
        &mut self,
        filter: &str,
        timeout: Duration,
    ) -> Result<SubAckPacket, RecvError> {
        let id = self.packet_id();
        let subscribe = SubscribePacket::new(id).add_filter(filter, QoS::AtLeastOnce);
        self.connection
            .send(&subscribe)
            .await
            .map_err(RecvError::Io)?;
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_packet(left).await? {
                Some(Packet::SubAck(ack)) if ack.packet_id == id => return Ok(ack),
                Some(Packet::Disconnect(disconnect)) => {
                    return Err(RecvError::Malformed(format!(
                        "the broker sent DISCONNECT {} instead of SUBACK",
                        reason_text(u8::from(disconnect.reason_code))
                    )))
                }
                _ => {}
            }
        }
    }

    /// Waits up to `wait` for a message (pinging as the keep-alive requires); `Ok(None)` if none.
    pub async fn wait_for_message(
        &mut self,
        wait: Duration,
    ) -> Result<Option<FirstMessage>, RecvError> {
        let deadline = Instant::now() + wait;
        let ping_every = self.keep_alive / 2;
        loop {
            if let Some(message) = &self.first_message {
                return Ok(Some(message.clone()));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            match self.next_packet(left.min(ping_every)).await {
                Ok(Some(Packet::Disconnect(disconnect))) => {
                    return Err(RecvError::Malformed(format!(
                        "the broker sent DISCONNECT {}",
                        reason_text(u8::from(disconnect.reason_code))
                    )))
                }
                Ok(_) => {}
                Err(RecvError::Timeout) => {
                    if Instant::now() < deadline {
                        self.connection
                            .send_raw(&[0xC0, 0x00])
                            .await
                            .map_err(RecvError::Io)?;
                    }
                }
                Err(err) => return Err(err),
            }
        }
    }

    /// What the broker does to this connection within `timeout`: a DISCONNECT (its reason
    /// code), a close, or nothing (`Err(Timeout)`).
    pub async fn watch_for_close(&mut self, timeout: Duration) -> Result<u8, RecvError> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if let Some(Packet::Disconnect(disconnect)) = self.next_packet(left).await? {
                return Ok(u8::from(disconnect.reason_code));
            }
        }
    }

    /// Sends DISCONNECT (normal) and closes. `session_expiry: Some(0)` ends the session on the
    /// broker; `None` keeps the expiry given at CONNECT.
    pub async fn disconnect(mut self, session_expiry: Option<u32>) -> std::io::Result<()> {
        let mut packet = DisconnectPacket::normal();
        if let Some(expiry) = session_expiry {
            packet = packet.with_session_expiry_interval(expiry);
        }
        let sent = self.connection.send(&packet).await;
        self.connection.close().await;
        sent
    }

    /// Moves the first message seen on an older connection to this one.
    pub fn carry_over(&mut self, older: Option<FirstMessage>) {
        if self.first_message.is_none() {
            self.first_message = older;
        }
    }
}

/// A byte property, if present.
pub fn property_u8(properties: &Properties, id: PropertyId) -> Option<u8> {
    match properties.get(id) {
        Some(PropertyValue::Byte(value)) => Some(*value),
        _ => None,
    }
}

/// A two-byte property, if present.
pub fn property_u16(properties: &Properties, id: PropertyId) -> Option<u16> {
    match properties.get(id) {
        Some(PropertyValue::TwoByteInteger(value)) => Some(*value),
        _ => None,
    }
}

/// A four-byte property, if present.
pub fn property_u32(properties: &Properties, id: PropertyId) -> Option<u32> {
    match properties.get(id) {
        Some(PropertyValue::FourByteInteger(value)) => Some(*value),
        _ => None,
    }
}

/// A string property, if present.
pub fn property_string(properties: &Properties, id: PropertyId) -> Option<String> {
    match properties.get(id) {
        Some(PropertyValue::Utf8String(value)) => Some(value.clone()),
        _ => None,
    }
}

/// `0x87 Not authorized`: the code and the specification's name for it.
pub fn reason_text(code: u8) -> String {
    format!("0x{code:02X} {}", reason_name(code))
}

/// The MQTT 5 specification's name of a reason code.
pub fn reason_name(code: u8) -> &'static str {
    match code {
        0x00 => "Success",
        0x01 => "Granted QoS 1",
        0x02 => "Granted QoS 2",
        0x04 => "Disconnect with Will Message",
        0x80 => "Unspecified error",
        0x81 => "Malformed Packet",
        0x82 => "Protocol Error",
        0x83 => "Implementation specific error",
        0x84 => "Unsupported Protocol Version",
        0x85 => "Client Identifier not valid",
        0x86 => "Bad User Name or Password",
        0x87 => "Not authorized",
        0x88 => "Server unavailable",
        0x89 => "Server busy",
        0x8A => "Banned",
        0x8B => "Server shutting down",
        0x8C => "Bad authentication method",
        0x8D => "Keep Alive timeout",
        0x8E => "Session taken over",
        0x8F => "Topic Filter invalid",
        0x90 => "Topic Name invalid",
        0x91 => "Packet Identifier in use",
        0x93 => "Receive Maximum exceeded",
        0x95 => "Packet too large",
        0x96 => "Message rate too high",
        0x97 => "Quota exceeded",
        0x98 => "Administrative action",
        0x99 => "Payload format invalid",
        0x9A => "Retain not supported",
        0x9B => "QoS not supported",
        0x9C => "Use another server",
        0x9D => "Server moved",
        0x9E => "Shared Subscriptions not supported",
        0x9F => "Connection rate exceeded",
        0xA0 => "Maximum connect time",
        0xA1 => "Subscription Identifiers not supported",
        0xA2 => "Wildcard Subscriptions not supported",
        _ => "unknown reason code",
    }
}
