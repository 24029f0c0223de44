//! Reconnect delays: exponential, capped, jittered.
//!
//! rumqttc reconnects as soon as you poll its event loop again after an error. A fleet of
//! consumers doing that against a broker that just restarted hammers it in lock-step; a single
//! consumer with a wrong setting floods its own log. Doubling the delay spreads the load and the
//! jitter de-synchronises the fleet ("full jitter": a random delay between half and all of the
//! current step).

use std::time::Duration;

use rand::Rng;

/// Exponential backoff state for one connection.
#[derive(Clone, Debug)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    current: Duration,
    attempt: u32,
}

impl Default for Backoff {
    /// 100 ms doubling up to 30 s: quick after a blip, gentle during an outage.
    fn default() -> Self {
        Backoff::new(Duration::from_millis(100), Duration::from_secs(30))
    }
}

impl Backoff {
    /// Starts at `initial`, doubles after every failure, never exceeds `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max,
            current: initial,
            attempt: 0,
        }
    }

    /// The delay before the next attempt, then advances the step.
    // ANCHOR: next_delay
    pub fn next_delay(&mut self) -> Duration {
        let step = self.current;
        self.current = (self.current * 2).min(self.max);
        self.attempt += 1;
        let millis = step.as_millis() as u64;
        let jittered = rand::rng().random_range(millis / 2..=millis.max(1));
        Duration::from_millis(jittered)
    }
    // ANCHOR_END: next_delay

    /// How many delays were handed out since the last reset (the retry number).
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Back to the initial delay: call it once a connection has proven stable.
    pub fn reset(&mut self) {
        self.current = self.initial;
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_caps_and_resets() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_millis(800));
        let delays: Vec<_> = (0..6).map(|_| backoff.next_delay()).collect();
        let bounds = [100, 200, 400, 800, 800, 800];
        for (delay, bound) in delays.iter().zip(bounds) {
            assert!(delay.as_millis() as u64 <= bound, "{delay:?} > {bound}");
            assert!(
                delay.as_millis() as u64 >= bound / 2,
                "{delay:?} < {bound}/2"
            );
        }
        assert_eq!(backoff.attempt(), 6);
        backoff.reset();
        assert!(backoff.next_delay() <= Duration::from_millis(100));
    }
}
