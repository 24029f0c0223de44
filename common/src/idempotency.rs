//! Idempotency keys for a QoS 1 consumer: which key a message carries, and a bounded window of
//! the keys already handled.
//!
//! QoS 1 delivers at least once, so a consumer must recognise a message it has already handled.
//! The DUP flag cannot tell (a copy may arrive with DUP=0, and DUP=1 does not mean you processed
//! it): the key must come from the message itself. [`key`] takes it from the payload, else hashes
//! topic and payload; [`RecentKeys`] remembers the last N keys.
//!
//! Why a bounded window: a consumer runs for months; a set of every key it ever saw grows without
//! end, while duplicates arrive close together (a redelivery after a reconnect is at most the
//! unacked messages behind, a publisher's retry seconds behind). Why only in memory: it is the
//! example's stand-in for the durable store, and forgets everything on restart. In production the
//! key goes into the database the effect goes into, in the same transaction (see `store-events`).

use std::collections::{HashSet, VecDeque};

use serde_json::Value;
use sha2::{Digest, Sha256};

/// Payload fields tried, in this order, as the key. Illustrative: use the field that identifies
/// an event in your payloads (a per-publisher `seq` is unique only together with its publisher).
pub const KEY_FIELDS: [&str; 3] = ["messageId", "uuid", "seq"];

/// The idempotency key of a message: `<field>=<value>` for the first of [`KEY_FIELDS`] present in
/// its JSON payload, else `sha256=<hex>` of topic and payload (equal bytes on the same topic are
/// the same event).
// ANCHOR: idempotency_key
pub fn key(topic: &[u8], payload: &[u8]) -> String {
    if let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(payload) {
        for name in KEY_FIELDS {
            match fields.get(name) {
                Some(Value::String(text)) if !text.is_empty() => return format!("{name}={text}"),
                Some(Value::Number(number)) => return format!("{name}={number}"),
                _ => {}
            }
        }
    }
    let hash = Sha256::new()
        .chain_update(topic)
        .chain_update([0])
        .chain_update(payload)
        .finalize();
    let hex: String = hash.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("sha256={hex}")
}
// ANCHOR_END: idempotency_key

/// The last `capacity` keys, the oldest forgotten first.
#[derive(Debug)]
pub struct RecentKeys {
    capacity: usize,
    set: HashSet<String>,
    order: VecDeque<String>,
}

impl RecentKeys {
    /// Remembers at most `capacity` keys (at least 1).
    pub fn new(capacity: usize) -> Self {
        RecentKeys {
            capacity: capacity.max(1),
            set: HashSet::new(),
            order: VecDeque::new(),
        }
    }

    /// Whether `key` is among the last `capacity` keys inserted.
    pub fn contains(&self, key: &str) -> bool {
        self.set.contains(key)
    }

    /// Remembers `key`, forgetting the oldest key when full. A key already there stays where it is.
    pub fn insert(&mut self, key: String) {
        if !self.set.insert(key.clone()) {
            return;
        }
        self.order.push_back(key);
        if self.order.len() > self.capacity {
            if let Some(oldest) = self.order.pop_front() {
                self.set.remove(&oldest);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_comes_from_the_payload_or_its_hash() {
        let topic = b"airfinder/org/events/tag-1";
        assert_eq!(key(topic, br#"{"seq":7,"x":1}"#), "seq=7");
        assert_eq!(key(topic, br#"{"seq":7,"uuid":"a-b"}"#), "uuid=a-b");
        assert_eq!(key(topic, br#"{"messageId":"","seq":7}"#), "seq=7");
        let hashed = key(topic, b"not json");
        assert!(
            hashed.starts_with("sha256=") && hashed.len() == 7 + 64,
            "{hashed}"
        );
        assert_eq!(hashed, key(topic, b"not json"));
        assert_ne!(hashed, key(b"other/topic", b"not json"));
    }

    #[test]
    fn recent_keys_forget_the_oldest_beyond_capacity() {
        let mut recent = RecentKeys::new(2);
        recent.insert("a".into());
        recent.insert("b".into());
        recent.insert("a".into());
        assert!(recent.contains("a") && recent.contains("b"));
        recent.insert("c".into());
        assert!(!recent.contains("a") && recent.contains("b") && recent.contains("c"));
    }

    #[test]
    fn a_capacity_of_zero_still_remembers_one() {
        let mut recent = RecentKeys::new(0);
        recent.insert("a".into());
        assert!(recent.contains("a"));
        recent.insert("b".into());
        assert!(!recent.contains("a") && recent.contains("b"));
    }
}
