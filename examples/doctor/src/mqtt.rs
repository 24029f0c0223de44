//! MQTT v5 packets over any byte stream, with the `mqtt5-protocol` codec.
//!
//! Why not a client library: doctor must see what a library hides — the reason string and
//! properties of a *refused* CONNACK, every capability the broker announces, a DISCONNECT the
//! broker sends before closing (`e0 01 8e`, which rumqttc 0.25 cannot parse), and whether the
//! connection closed cleanly or was reset. So it writes and reads packets itself; the codec does
//! the byte layout.

use std::io;
use std::time::Duration;

use mqtt5_protocol::packet::MqttPacket;
use mqtt5_protocol::{FixedHeader, Packet};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// A byte stream doctor can talk MQTT over: TLS or, with `--insecure-plaintext`, plain TCP.
pub trait Transport: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Transport for T {}

/// Largest packet doctor accepts from the broker; a real event is far smaller.
const MAX_INCOMING_PACKET: usize = 16 * 1024 * 1024;

/// Why no packet could be read.
#[derive(Debug)]
pub enum RecvError {
    /// Nothing complete arrived in time.
    Timeout,
    /// The broker closed the connection (TCP FIN, or TLS close_notify).
    Closed,
    /// The connection failed (reset, TLS alert…).
    Io(io::Error),
    /// Bytes arrived that are not a valid MQTT v5 packet.
    Malformed(String),
}

impl std::fmt::Display for RecvError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecvError::Timeout => f.write_str("no packet in time"),
            RecvError::Closed => f.write_str("the broker closed the connection"),
            RecvError::Io(err) => write!(f, "{err}"),
            RecvError::Malformed(text) => write!(f, "malformed packet: {text}"),
        }
    }
}

/// A packet as read: decoded, plus its raw body for the cases the codec rejects (an MQTT 3.1.1
/// CONNACK is two bytes without properties).
#[derive(Debug)]
pub struct Incoming {
    /// The packet type nibble from the fixed header (1–15).
    pub packet_type: u8,
    /// The body after the fixed header.
    pub body: Vec<u8>,
    /// The decoded packet, or the codec's complaint.
    pub packet: Result<Packet, String>,
}

/// One MQTT connection: the stream and what has been read but not yet parsed.
pub struct Connection {
    stream: Box<dyn Transport>,
    buffer: Vec<u8>,
}

impl Connection {
    /// Wraps an established stream (TCP or TLS).
    pub fn new(stream: Box<dyn Transport>) -> Connection {
        Connection {
            stream,
            buffer: Vec::new(),
        }
    }

    /// Encodes and writes one packet.
    pub async fn send(&mut self, packet: &impl MqttPacket) -> io::Result<()> {
        let mut bytes = Vec::new();
        packet
            .encode(&mut bytes)
            .map_err(|err| io::Error::new(io::ErrorKind::InvalidInput, err.to_string()))?;
        self.stream.write_all(&bytes).await?;
        self.stream.flush().await
    }

    /// Writes bytes as they are (a PINGREQ is two constant bytes).
    pub async fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await
    }

    /// Reads the next complete packet, waiting at most `timeout`.
    pub async fn recv(&mut self, timeout: Duration) -> Result<Incoming, RecvError> {
        match tokio::time::timeout(timeout, self.recv_forever()).await {
            Ok(result) => result,
            Err(_) => Err(RecvError::Timeout),
        }
    }

    async fn recv_forever(&mut self) -> Result<Incoming, RecvError> {
        loop {
            if let Some(incoming) = self.take_packet()? {
                return Ok(incoming);
            }
            let mut chunk = [0u8; 8192];
            match self.stream.read(&mut chunk).await {
                Ok(0) => return Err(RecvError::Closed),
                Ok(n) => self.buffer.extend_from_slice(&chunk[..n]),
                // rustls reports a peer that closed without close_notify as UnexpectedEof.
                Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => {
                    return Err(RecvError::Closed)
                }
                Err(err) => return Err(RecvError::Io(err)),
            }
        }
    }

    /// Splits one complete packet off the buffer, if there is one.
    fn take_packet(&mut self) -> Result<Option<Incoming>, RecvError> {
        let Some((header_len, body_len)) = frame_length(&self.buffer)? else {
            return Ok(None);
        };
        if body_len > MAX_INCOMING_PACKET {
            return Err(RecvError::Malformed(format!(
                "a packet of {body_len} bytes announced; doctor reads at most {MAX_INCOMING_PACKET}"
            )));
        }
        if self.buffer.len() < header_len + body_len {
            return Ok(None);
        }
        let frame: Vec<u8> = self.buffer.drain(..header_len + body_len).collect();
        let packet_type = frame[0] >> 4;
        let body = frame[header_len..].to_vec();
        let packet = decode(&frame).map_err(|err| err.to_string());
        Ok(Some(Incoming {
            packet_type,
            body,
            packet,
        }))
    }

    /// Shuts the stream down (TLS close_notify, then FIN), ignoring errors: used after DISCONNECT.
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), self.stream.shutdown()).await;
    }
}

/// `(fixed header length, body length)` once the fixed header is complete.
fn frame_length(buffer: &[u8]) -> Result<Option<(usize, usize)>, RecvError> {
    let mut length: usize = 0;
    for (i, byte) in buffer.iter().skip(1).take(4).enumerate() {
        length |= usize::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(Some((i + 2, length)));
        }
    }
    if buffer.len() >= 5 {
        return Err(RecvError::Malformed(
            "the remaining length of a packet is longer than 4 bytes".to_owned(),
        ));
    }
    Ok(None)
}

fn decode(frame: &[u8]) -> mqtt5_protocol::Result<Packet> {
    let mut bytes = frame;
    let header = FixedHeader::decode(&mut bytes)?;
    Packet::decode_from_body_with_version(header.packet_type, &header, &mut bytes, 5)
}

#[cfg(test)]
mod tests {
    use super::frame_length;

    #[test]
    fn frame_lengths() {
        assert_eq!(frame_length(&[0x20]).ok().flatten(), None);
        assert_eq!(frame_length(&[0x20, 0x03]).ok().flatten(), Some((2, 3)));
        assert_eq!(
            frame_length(&[0x30, 0x80, 0x01]).ok().flatten(),
            Some((3, 128))
        );
        assert!(frame_length(&[0x30, 0x80, 0x80, 0x80, 0x80, 0x01]).is_err());
    }
}
