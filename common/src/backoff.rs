//! Capped exponential backoff: the one rule every retry loop of the
//! workspace waits by (rsync attempts, store and Redis outages).

use std::time::Duration;

/// `first`, doubling, at most `cap`. Either asked for the wait before a
/// given retry ([`Backoff::delay`]) or stepped ([`Backoff::next_delay`],
/// [`Backoff::reset`]) by a loop that keeps it.
#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    cap: Duration,
    retries: u32,
}

impl Backoff {
    pub fn new(first: Duration, cap: Duration) -> Self {
        Backoff {
            first,
            cap,
            retries: 0,
        }
    }

    /// The wait before retry `n` (0 = the first retry): `first × 2ⁿ`, at
    /// most the cap.
    pub fn delay(&self, n: u32) -> Duration {
        let mut d = self.first;
        for _ in 0..n {
            if d >= self.cap || d.is_zero() {
                break;
            }
            d = d.saturating_mul(2);
        }
        d.min(self.cap)
    }

    /// The wait before the next attempt; doubles up to the cap.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.delay(self.retries);
        self.retries = self.retries.saturating_add(1);
        d
    }

    /// Back to `first` (the thing came back).
    pub fn reset(&mut self) {
        self.retries = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(500));
        let seq: Vec<u128> = (0..5).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(seq, vec![100, 200, 400, 500, 500]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(100));
    }

    #[test]
    fn a_retry_number_gives_its_wait_at_once() {
        let b = Backoff::new(Duration::from_millis(500), Duration::from_secs(60));
        assert_eq!(b.delay(0), Duration::from_millis(500));
        assert_eq!(b.delay(3), Duration::from_millis(4000));
        assert_eq!(b.delay(u32::MAX), Duration::from_secs(60));
        assert_eq!(
            Backoff::new(Duration::ZERO, Duration::from_secs(1)).delay(9),
            Duration::ZERO
        );
    }
}
