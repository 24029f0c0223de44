//! A deliberately minimal MQTT v5 client over TLS that writes packets byte by byte, for input
//! that no well-behaved client library will send: a topic that is not UTF-8, a message larger
//! than the consumer accepts. It is the hostile publisher, not a mock of anything under test.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use mosquitto_harness::MosquittoBroker;
use rustls::{ClientConnection, StreamOwned};
use rustls_pki_types::ServerName;

/// One TLS connection speaking raw MQTT v5.
pub struct RawClient {
    stream: StreamOwned<ClientConnection, TcpStream>,
}

/// What the broker did with a raw PUBLISH.
#[derive(Debug)]
pub enum Outcome {
    /// PUBACK with this reason code (0 = success, 0x10 = no matching subscribers).
    PubAck(u8),
    /// DISCONNECT with this reason code, then the connection closed.
    Disconnect(u8),
    /// The broker closed the connection without a word.
    Closed,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::PubAck(code) => write!(f, "PUBACK 0x{code:02x}"),
            Outcome::Disconnect(code) => write!(f, "DISCONNECT 0x{code:02x}, connection closed"),
            Outcome::Closed => f.write_str("connection closed without DISCONNECT"),
        }
    }
}

fn varint(mut n: usize, out: &mut Vec<u8>) {
    loop {
        let mut byte = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if n == 0 {
            break;
        }
    }
}

fn string(bytes: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
    out.extend_from_slice(bytes);
}

fn packet(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    varint(body.len(), &mut out);
    out.extend_from_slice(body);
    out
}

impl RawClient {
    /// Connects to the broker's TLS port on this thread's 127.0.0.1 (run it inside the broker's
    /// namespace) and waits for a successful CONNACK.
    pub fn connect(broker: &MosquittoBroker, client_id: &str) -> anyhow::Result<RawClient> {
        let config: Arc<rustls::ClientConfig> =
            mosquitto_harness::tls_client_config(broker.ca_path())
                .map_err(|err| anyhow!("TLS config: {err}"))?;
        let name = ServerName::try_from("localhost").context("server name")?;
        let connection = ClientConnection::new(config, name).context("TLS client")?;
        let tcp = TcpStream::connect((Ipv4Addr::LOCALHOST, broker.tls_port()))
            .context("connecting to the broker")?;
        tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut client = RawClient {
            stream: StreamOwned::new(connection, tcp),
        };
        let mut body = Vec::new();
        string(b"MQTT", &mut body);
        body.push(5); // protocol level: MQTT v5
        body.push(0b1100_0010); // user name, password, clean start
        body.extend_from_slice(&30u16.to_be_bytes()); // keep-alive
        body.push(0); // no properties
        string(client_id.as_bytes(), &mut body);
        string(broker.username().as_bytes(), &mut body);
        string(broker.password().as_bytes(), &mut body);
        client.stream.write_all(&packet(0x10, &body))?;
        let (kind, body) = client.read_packet()?.ok_or_else(|| anyhow!("no CONNACK"))?;
        if kind >> 4 != 2 || body.get(1) != Some(&0) {
            bail!("CONNACK refused: type {kind:#x}, body {body:?}");
        }
        Ok(client)
    }

    /// Publishes `payload` on raw `topic` bytes at QoS 1 and reports what the broker answered.
    pub fn publish(&mut self, topic: &[u8], payload: &[u8]) -> anyhow::Result<Outcome> {
        let mut body = Vec::with_capacity(payload.len() + topic.len() + 8);
        string(topic, &mut body);
        body.extend_from_slice(&1u16.to_be_bytes()); // packet id
        body.push(0); // no properties
        body.extend_from_slice(payload);
        if let Err(err) = self.stream.write_all(&packet(0x32, &body)) {
            // A broker that closed on us mid-write: that is an answer too.
            if matches!(
                err.kind(),
                std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
            ) {
                return Ok(Outcome::Closed);
            }
            return Err(err.into());
        }
        self.stream.flush()?;
        match self.read_packet()? {
            None => Ok(Outcome::Closed),
            Some((kind, body)) if kind >> 4 == 4 => {
                Ok(Outcome::PubAck(body.get(2).copied().unwrap_or(0)))
            }
            Some((kind, body)) if kind >> 4 == 14 => {
                Ok(Outcome::Disconnect(body.first().copied().unwrap_or(0)))
            }
            Some((kind, _)) => bail!("unexpected packet type {kind:#x}"),
        }
    }

    /// One packet, or `None` when the connection closed.
    fn read_packet(&mut self) -> anyhow::Result<Option<(u8, Vec<u8>)>> {
        let mut first = [0u8; 1];
        match self.stream.read(&mut first) {
            Ok(0) => return Ok(None),
            Ok(_) => {}
            Err(err)
                if matches!(
                    err.kind(),
                    std::io::ErrorKind::ConnectionReset
                        | std::io::ErrorKind::UnexpectedEof
                        | std::io::ErrorKind::ConnectionAborted
                ) =>
            {
                return Ok(None)
            }
            Err(err) => return Err(err.into()),
        }
        let mut len = 0usize;
        let mut shift = 0;
        loop {
            let mut byte = [0u8; 1];
            self.stream.read_exact(&mut byte)?;
            len |= usize::from(byte[0] & 0x7f) << shift;
            if byte[0] & 0x80 == 0 {
                break;
            }
            shift += 7;
            if shift > 21 {
                bail!("malformed remaining length");
            }
        }
        let mut body = vec![0u8; len];
        self.stream.read_exact(&mut body)?;
        Ok(Some((first[0], body)))
    }
}
