//! A byte-level MQTT v5 connection, for measuring what a broker really sends.
//!
//! rumqttc 0.25.1 cannot parse a DISCONNECT that carries a reason code but omits the property
//! length (`e0 01 8e`, valid MQTT 5 and what the mqtt5 broker sends on takeover): it reports a
//! closed connection instead. To tell "DISCONNECT 0x8E" from "closed without a DISCONNECT" the
//! broker table reads the packets itself, over the same TLS as every test.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use rustls::pki_types::ServerName;

use crate::client::{tls_client_config, BrokerEndpoint};
use crate::error::HarnessError;

/// What arrived on a [`RawConnection`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawEvent {
    /// A packet: its first byte (type and flags) and its body after the remaining length.
    Packet {
        /// The fixed header's first byte, e.g. `0xE0` for DISCONNECT.
        header: u8,
        /// Everything after the remaining-length field.
        body: Vec<u8>,
    },
    /// The broker closed the connection (TLS close or EOF) without another packet.
    Closed,
    /// Nothing arrived within the timeout.
    Quiet,
    /// The socket failed (e.g. reset by peer).
    Failed(String),
}

/// One MQTT v5 connection over TLS, driven byte by byte.
pub struct RawConnection {
    stream: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
}

impl std::fmt::Debug for RawConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawConnection").finish_non_exhaustive()
    }
}

impl RawConnection {
    /// Opens TLS to `broker`, sends CONNECT (clean start, keep-alive 60 s, the broker's user and
    /// password) and returns the connection with the CONNACK's reason code.
    pub fn connect(
        broker: &(impl BrokerEndpoint + ?Sized),
        client_id: &str,
    ) -> Result<(RawConnection, u8), HarnessError> {
        let config = tls_client_config(broker.ca_path())?;
        let name = ServerName::try_from(broker.host().to_owned())
            .map_err(|err| HarnessError::Tls(format!("server name: {err}")))?;
        let tls = rustls::ClientConnection::new(config, name)
            .map_err(|err| HarnessError::Tls(err.to_string()))?;
        let tcp = TcpStream::connect((broker.host(), broker.tls_port()))
            .map_err(|err| HarnessError::io("connecting", err))?;
        let mut connection = RawConnection {
            stream: rustls::StreamOwned::new(tls, tcp),
        };
        let packet = connect_packet(client_id, broker.username(), broker.password());
        connection
            .stream
            .write_all(&packet)
            .and_then(|()| connection.stream.flush())
            .map_err(|err| HarnessError::io("sending CONNECT", err))?;
        match connection.next(Duration::from_secs(10)) {
            RawEvent::Packet { header: 0x20, body } if body.len() >= 2 => {
                let code = body[1];
                Ok((connection, code))
            }
            other => Err(HarnessError::Mqtt(format!("no CONNACK: {other:?}"))),
        }
    }

    /// The next packet, or what happened instead, waiting at most `timeout`.
    pub fn next(&mut self, timeout: Duration) -> RawEvent {
        if let Err(err) = self.stream.sock.set_read_timeout(Some(timeout)) {
            return RawEvent::Failed(err.to_string());
        }
        let mut first = [0u8; 1];
        match self.stream.read(&mut first) {
            Ok(0) => return RawEvent::Closed,
            Ok(_) => {}
            Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return RawEvent::Quiet
            }
            Err(err) if err.kind() == ErrorKind::UnexpectedEof => return RawEvent::Closed,
            Err(err) => return RawEvent::Failed(err.to_string()),
        }
        let mut remaining = 0usize;
        let mut shift = 0;
        loop {
            let mut byte = [0u8; 1];
            if let Err(err) = self.stream.read_exact(&mut byte) {
                return RawEvent::Failed(format!("reading the remaining length: {err}"));
            }
            remaining |= usize::from(byte[0] & 0x7f) << shift;
            if byte[0] & 0x80 == 0 || shift > 21 {
                break;
            }
            shift += 7;
        }
        let mut body = vec![0u8; remaining];
        if let Err(err) = self.stream.read_exact(&mut body) {
            return RawEvent::Failed(format!("reading a packet body: {err}"));
        }
        RawEvent::Packet {
            header: first[0],
            body,
        }
    }
}

/// CONNECT, MQTT v5: clean start, user name and password, keep-alive 60 s, no properties.
fn connect_packet(client_id: &str, username: &str, password: &str) -> Vec<u8> {
    let mut variable = Vec::new();
    push_str(&mut variable, "MQTT");
    variable.push(5); // protocol level
    variable.push(0x80 | 0x40 | 0x02); // user name, password, clean start
    variable.extend_from_slice(&60u16.to_be_bytes());
    variable.push(0); // property length
    push_str(&mut variable, client_id);
    push_str(&mut variable, username);
    push_str(&mut variable, password);
    let mut packet = vec![0x10];
    let mut length = variable.len();
    loop {
        let mut byte = (length % 128) as u8;
        length /= 128;
        if length > 0 {
            byte |= 0x80;
        }
        packet.push(byte);
        if length == 0 {
            break;
        }
    }
    packet.extend_from_slice(&variable);
    packet
}

fn push_str(buffer: &mut Vec<u8>, text: &str) {
    let len = u16::try_from(text.len()).unwrap_or(u16::MAX);
    buffer.extend_from_slice(&len.to_be_bytes());
    buffer.extend_from_slice(&text.as_bytes()[..usize::from(len)]);
}
