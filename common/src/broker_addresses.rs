//! Following a broker cluster behind one DNS name: every address, resolved again on every
//! reconnect, a dead node never in the way.
//!
//! A clustered broker is usually published as ONE host name that resolves to every node
//! (`mqtt.example.com` → 10.0.0.11, 10.0.0.12, 10.0.0.13). When the node a client is on dies,
//! the client must reconnect to another one. rumqttc 0.25.1 almost does it: it resolves the name
//! on every connect and tries the addresses in order — but one `connection_timeout` (5 s) covers
//! all the addresses *and* the TLS handshake *and* the CONNACK, and every attempt starts at the
//! first address again. A node that is gone without a trace (a lost machine: its address drops
//! our SYN instead of refusing it) eats the whole timeout on every attempt, so a client whose
//! resolver lists it first never reaches the live nodes. [`BrokerAddresses`] fixes that from the
//! outside, before each connection attempt:
//!
//! 1. it resolves the name again (DNS may have changed: a node replaced, one taken out);
//! 2. it starts at the address *after* the one used last (the one that just failed or dropped
//!    us), in the resolver's order, so a fleet stays spread the way DNS spreads it;
//! 3. it finds the first address that accepts a TCP connection within [`PROBE_TIMEOUT`]
//!    (a refused one is skipped at once, a silent one after that timeout);
//! 4. it hands rumqttc that ONE address, with TLS checking the certificate against the
//!    configured host name ([`VerifyAsHostName`]), since rumqttc would check the address.
//!
//! A name with one address (or an IP, or a name that does not resolve, whose error rumqttc then
//! reports in its own words) is left to rumqttc exactly as before: same options, SNI included.
//! The probe costs one extra TCP handshake per (re)connect to a multi-address name, which the
//! broker sees as a connection closed before its CONNECT.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rumqttc::v5::MqttOptions;
use rumqttc::{TlsConfiguration, Transport};

use crate::cli::{BrokerTarget, Security};
use crate::host_name_verifier::VerifyAsHostName;
use crate::tls::TlsError;

/// How long one address may take to accept a TCP connection before the next one is tried.
/// A live node's kernel answers a SYN in well under a millisecond on a LAN and in one round trip
/// across the internet, even when the broker process is busy; 3 s leaves room for a loaded
/// machine and a retransmitted SYN (Linux retransmits after 1 s).
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// The cluster's host name, its port, and where the last attempt went.
pub struct BrokerAddresses {
    host: String,
    port: u16,
    /// Everything but the address: what the example configured.
    template: MqttOptions,
    /// TLS for a connection to an IP address, verifying the configured host name; `None` for
    /// plaintext, or when the template's TLS is not rustls (then rumqttc gets the name).
    by_address_tls: Option<Arc<rustls::ClientConfig>>,
    /// The address of the previous attempt: the next one starts after it.
    last: Option<SocketAddr>,
}

impl BrokerAddresses {
    /// For `target`'s host and port; `template` holds every other setting (client id, session,
    /// TLS, keep-alive…), as built by the example.
    pub fn new(target: &BrokerTarget, template: &MqttOptions) -> Result<BrokerAddresses, TlsError> {
        let (host, port) = template.broker_address();
        let rustls = matches!(
            template.transport(),
            Transport::Tls(TlsConfiguration::Rustls(_))
        );
        let by_address_tls = match &target.security {
            Security::Tls(roots) if rustls => VerifyAsHostName::client_config(&host, roots)?,
            _ => None,
        };
        Ok(BrokerAddresses {
            host,
            port,
            template: template.clone(),
            by_address_tls,
            last: None,
        })
    }

    /// The options for the next connection attempt: resolve, rotate, probe (module docs).
    // ANCHOR: next_attempt
    pub async fn next_attempt(&mut self) -> MqttOptions {
        let resolved: Vec<SocketAddr> =
            match tokio::net::lookup_host((self.host.as_str(), self.port)).await {
                Ok(found) => found.collect(),
                Err(_) => Vec::new(), // rumqttc resolves again and reports the error in its words
            };
        let candidates = rotated(&resolved, self.last);
        let plaintext = matches!(self.template.transport(), Transport::Tcp);
        if candidates.len() < 2 || (!plaintext && self.by_address_tls.is_none()) {
            return self.template.clone();
        }
        let chosen = first_accepting(&candidates, PROBE_TIMEOUT)
            .await
            // None accepts: try the first anyway; rumqttc's error says why it failed.
            .unwrap_or(candidates[0]);
        self.last = Some(chosen);
        let position = resolved.iter().position(|a| *a == chosen).unwrap_or(0) + 1;
        tracing::info!(
            "connecting to {}:{} at {} (address {position} of {})",
            self.host,
            self.port,
            chosen.ip(),
            resolved.len()
        );
        let transport = match &self.by_address_tls {
            Some(tls) => Transport::tls_with_config(TlsConfiguration::Rustls(Arc::clone(tls))),
            None => Transport::Tcp,
        };
        options_for_address(&self.template, chosen.ip(), transport)
    }
    // ANCHOR_END: next_attempt
}

/// The resolved addresses (duplicates dropped), starting after `last` when it is among them,
/// else in the resolver's order.
pub fn rotated(resolved: &[SocketAddr], last: Option<SocketAddr>) -> Vec<SocketAddr> {
    let mut unique: Vec<SocketAddr> = Vec::with_capacity(resolved.len());
    for address in resolved {
        if !unique.contains(address) {
            unique.push(*address);
        }
    }
    if let Some(at) = last.and_then(|last| unique.iter().position(|a| *a == last)) {
        unique.rotate_left(at + 1);
    }
    unique
}

/// The first of `candidates` that accepts a TCP connection within `timeout` each (the connection
/// is closed again at once).
pub async fn first_accepting(candidates: &[SocketAddr], timeout: Duration) -> Option<SocketAddr> {
    for address in candidates {
        let connect = tokio::net::TcpStream::connect(*address);
        match tokio::time::timeout(timeout, connect).await {
            Ok(Ok(_stream)) => return Some(*address),
            Ok(Err(err)) => tracing::debug!("{address}: {err}; trying the next address"),
            Err(_) => tracing::info!(
                "{address} did not answer within {} s; trying the next address",
                timeout.as_secs()
            ),
        }
    }
    None
}

/// `template` with its broker address replaced by `ip` (same port) and its transport by
/// `transport`. rumqttc 0.25.1 has no setter for the address, so every other setting is copied.
pub fn options_for_address(
    template: &MqttOptions,
    ip: IpAddr,
    transport: Transport,
) -> MqttOptions {
    let (_, port) = template.broker_address();
    let mut options = MqttOptions::new(template.client_id(), ip.to_string(), port);
    options
        .set_transport(transport)
        .set_keep_alive(template.keep_alive())
        .set_clean_start(template.clean_start())
        .set_request_channel_capacity(template.request_channel_capacity())
        .set_pending_throttle(template.pending_throttle())
        .set_connection_timeout(template.connection_timeout())
        .set_manual_acks(template.manual_acks())
        .set_network_options(template.network_options());
    if let Some(login) = template.credentials() {
        options.set_credentials(login.username, login.password);
    }
    if let Some(will) = template.last_will() {
        options.set_last_will(will);
    }
    if let Some(properties) = template.connect_properties() {
        options.set_connect_properties(properties);
    }
    if let Some(limit) = template.get_outgoing_inflight_upper_limit() {
        options.set_outgoing_inflight_upper_limit(limit);
    }
    options
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn at(last_octet: u8) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::new(10, 0, 0, last_octet), 8883))
    }

    #[test]
    fn the_first_attempt_follows_the_resolver_order() {
        assert_eq!(rotated(&[at(1), at(2), at(3)], None), [at(1), at(2), at(3)]);
    }

    #[test]
    fn each_attempt_starts_after_the_previous_address() {
        let resolved = [at(1), at(2), at(3)];
        assert_eq!(rotated(&resolved, Some(at(1))), [at(2), at(3), at(1)]);
        assert_eq!(rotated(&resolved, Some(at(3))), [at(1), at(2), at(3)]);
    }

    #[test]
    fn a_previous_address_no_longer_in_dns_starts_from_the_top() {
        assert_eq!(rotated(&[at(1), at(2)], Some(at(9))), [at(1), at(2)]);
    }

    #[test]
    fn duplicates_are_tried_once() {
        assert_eq!(rotated(&[at(1), at(1), at(2)], None), [at(1), at(2)]);
    }

    #[tokio::test]
    async fn a_refusing_address_is_skipped_for_one_that_accepts() {
        // 127.0.0.2 is loopback too on Linux; nothing listens on this port there.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let refusing = SocketAddr::from((Ipv4Addr::new(127, 0, 0, 2), port));
        let accepting = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let found = first_accepting(&[refusing, accepting], Duration::from_secs(5)).await;
        assert_eq!(found, Some(accepting));
        assert_eq!(
            first_accepting(&[refusing], Duration::from_secs(5)).await,
            None
        );
    }

    #[test]
    fn only_the_address_changes() {
        let mut template = MqttOptions::new("fleet-1", "cluster.test", 8883);
        template
            .set_credentials("user", "secret")
            .set_keep_alive(Duration::from_secs(30))
            .set_clean_start(false)
            .set_session_expiry_interval(Some(300))
            .set_receive_maximum(Some(32))
            .set_max_packet_size(Some(256 * 1024))
            .set_manual_acks(true)
            .set_connection_timeout(7)
            .set_pending_throttle(Duration::from_millis(3))
            .set_request_channel_capacity(99)
            .set_outgoing_inflight_upper_limit(32);
        let copy = options_for_address(&template, IpAddr::from([10, 0, 0, 12]), Transport::Tcp);
        assert_eq!(copy.broker_address(), ("10.0.0.12".to_string(), 8883));
        // Debug prints every setting but the transport and network options: equal once the
        // address is swapped back.
        let shown = format!("{copy:?}").replace("10.0.0.12", "cluster.test");
        assert_eq!(shown, format!("{template:?}"));
        assert_eq!(copy.get_outgoing_inflight_upper_limit(), Some(32));
    }
}
