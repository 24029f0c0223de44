//! One MQTT message as one database row: its idempotency key and the fields worth querying.

use std::time::SystemTime;

use serde_json::Value;
use sha2::{Digest, Sha256};

/// Payload fields tried, in this order, as the event's own id. Illustrative: use the field that
/// identifies an event in your payloads. Not `seq`: a per-publisher counter is unique only
/// together with its publisher, and the demo's restarts at 1 on every run.
pub const KEY_FIELDS: [&str; 3] = ["messageId", "uuid", "eventId"];

/// Payload fields copied into columns for queries, first present wins (illustrative names, as
/// the demo broker publishes them; NOT the Airfinder schema).
const TAG_FIELDS: [&str; 2] = ["tagMac", "nodeAddress"];
const TYPE_FIELDS: [&str; 1] = ["eventType"];
const TIME_FIELDS: [&str; 2] = ["timestamp", "time"];

/// What goes into the `events` table (see `migrations/`).
#[derive(Debug, Clone)]
pub struct EventRow {
    /// The idempotency key, unique in the table.
    pub key: String,
    pub topic: String,
    /// When this consumer received the message.
    pub received_at: SystemTime,
    /// The payload text when it is JSON.
    pub payload_json: Option<String>,
    /// The payload bytes when it is not JSON (kept, so nothing is silently dropped).
    pub raw_payload: Option<Vec<u8>>,
    pub tag_mac: Option<String>,
    pub event_type: Option<String>,
    pub event_time: Option<String>,
}

impl EventRow {
    /// Builds the row for a message. Never fails: a payload that is not JSON becomes a row with
    /// `raw_payload` set and a hashed key (a poison message is stored and acked, never retried).
    pub fn from_message(topic: &[u8], payload: &[u8], received_at: SystemTime) -> EventRow {
        let topic_text = String::from_utf8_lossy(topic).into_owned();
        let Ok(value) = serde_json::from_slice::<Value>(payload) else {
            return EventRow {
                key: hashed_key(topic, payload),
                topic: topic_text,
                received_at,
                payload_json: None,
                raw_payload: Some(payload.to_vec()),
                tag_mac: None,
                event_type: None,
                event_time: None,
            };
        };
        let field = |names: &[&str]| -> Option<String> {
            names.iter().find_map(|name| match value.get(name)? {
                Value::String(text) if !text.is_empty() => Some(text.clone()),
                Value::Number(number) => Some(number.to_string()),
                _ => None,
            })
        };
        EventRow {
            key: KEY_FIELDS
                .iter()
                .find_map(|name| field(&[name]).map(|id| format!("{name}={id}")))
                .unwrap_or_else(|| hashed_key(topic, payload)),
            // from_slice succeeded, so the bytes are UTF-8.
            payload_json: Some(String::from_utf8_lossy(payload).into_owned()),
            raw_payload: None,
            tag_mac: field(&TAG_FIELDS),
            event_type: field(&TYPE_FIELDS),
            event_time: field(&TIME_FIELDS),
            topic: topic_text,
            received_at,
        }
    }

    /// The same message stored as raw bytes only: for a payload the database refuses in a
    /// typed column (PostgreSQL rejects `\u0000` in JSONB and TEXT, SQLite accepts anything).
    pub fn raw_only(&self, payload: &[u8]) -> EventRow {
        EventRow {
            key: hashed_key(self.topic.as_bytes(), payload),
            topic: self.topic.clone(),
            received_at: self.received_at,
            payload_json: None,
            raw_payload: Some(payload.to_vec()),
            tag_mac: None,
            event_type: None,
            event_time: None,
        }
    }

    /// The bytes the row was made from.
    pub fn payload_bytes(&self) -> Vec<u8> {
        match (&self.payload_json, &self.raw_payload) {
            (Some(json), _) => json.clone().into_bytes(),
            (None, Some(raw)) => raw.clone(),
            (None, None) => Vec::new(),
        }
    }
}

/// `sha256=<hex>` of topic and payload: equal bytes on the same topic are the same event. A
/// redelivery is byte-identical, so it gets the same key; two real events that happen to be
/// byte-identical on one topic (no id, no timestamp) would be stored once: give events an id.
fn hashed_key(topic: &[u8], payload: &[u8]) -> String {
    let mut hash = Sha256::new();
    hash.update(topic);
    hash.update([0]);
    hash.update(payload);
    let hex: String = hash
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    format!("sha256={hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_the_events_id_or_a_hash() {
        let now = SystemTime::now();
        let topic = b"airfinder/org/events/tag-1";
        let row = EventRow::from_message(topic, br#"{"messageId":"m-7","seq":7}"#, now);
        assert_eq!(row.key, "messageId=m-7");
        let a = EventRow::from_message(topic, br#"{"seq":7}"#, now);
        assert!(a.key.starts_with("sha256=") && a.key.len() == 7 + 64);
        assert_eq!(
            a.key,
            EventRow::from_message(topic, br#"{"seq":7}"#, now).key
        );
        assert_ne!(
            a.key,
            EventRow::from_message(b"other", br#"{"seq":7}"#, now).key
        );
    }

    #[test]
    fn fields_are_copied_and_poison_is_kept_raw() {
        let now = SystemTime::now();
        let row = EventRow::from_message(
            b"t",
            br#"{"tagMac":"C0:01","eventType":"location","timestamp":"2026-01-01T00:00:00Z"}"#,
            now,
        );
        assert_eq!(row.tag_mac.as_deref(), Some("C0:01"));
        assert_eq!(row.event_type.as_deref(), Some("location"));
        assert_eq!(row.event_time.as_deref(), Some("2026-01-01T00:00:00Z"));
        let poison = EventRow::from_message(b"t", b"\xffnot json", now);
        assert!(poison.payload_json.is_none());
        assert_eq!(poison.raw_payload.as_deref(), Some(&b"\xffnot json"[..]));
    }
}
