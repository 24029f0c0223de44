//! The last N idempotency keys a consumer handled, in memory and bounded.
//!
//! Why bounded: a consumer runs for months, and a set of every key it ever saw grows without end,
//! while duplicates arrive close together (a redelivery after a reconnect is at most the unacked
//! messages behind, a publisher's retry seconds behind): a window of thousands of keys catches
//! them. Why only in memory: it is `qos1-at-least-once`'s stand-in for the durable store, and it
//! forgets everything on restart. In production the key goes into the database the effect goes
//! into, in the same transaction (see `store-events`).

use std::collections::{HashSet, VecDeque};

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
