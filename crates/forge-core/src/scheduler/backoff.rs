//! Exponential backoff with jitter between retries.

use std::time::Duration;

use rand::Rng;

/// Delay before retry n: `initial * multiplier^(n-1)`, capped at `max`, then reduced by a
/// random fraction of at most `jitter` (0 = no jitter, 0.5 = between 50 % and 100 %), so
/// tasks that failed together do not retry in lockstep.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Backoff {
    /// Delay before the first retry (default 1 s).
    pub initial: Duration,
    /// Upper bound before jitter (default 60 s).
    pub max: Duration,
    /// Growth per retry (default 2).
    pub multiplier: f64,
    /// Largest fraction taken off at random, in 0..=1 (default 0.5).
    pub jitter: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
            multiplier: 2.0,
            jitter: 0.5,
        }
    }
}

impl Backoff {
    /// A backoff with these bounds and no jitter (deterministic).
    pub fn fixed_exponential(initial: Duration, max: Duration, multiplier: f64) -> Self {
        Self {
            initial,
            max,
            multiplier,
            jitter: 0.0,
        }
    }

    /// Sets the jitter fraction (clamped to 0..=1).
    pub fn with_jitter(mut self, jitter: f64) -> Self {
        self.jitter = jitter.clamp(0.0, 1.0);
        self
    }

    /// The delay before retry number `retry` (1-based), before jitter.
    pub fn base_delay(&self, retry: u32) -> Duration {
        let factor = self
            .multiplier
            .max(1.0)
            .powi(retry.saturating_sub(1).min(1000) as i32);
        let secs = self.initial.as_secs_f64() * factor;
        if !secs.is_finite() || secs >= self.max.as_secs_f64() {
            self.max
        } else {
            Duration::from_secs_f64(secs)
        }
    }

    /// The delay before retry number `retry`, with jitter drawn from `rng`.
    pub(crate) fn delay(&self, retry: u32, rng: &mut impl Rng) -> Duration {
        let base = self.base_delay(retry);
        let jitter = self.jitter.clamp(0.0, 1.0);
        if jitter == 0.0 {
            return base;
        }
        base.mul_f64(1.0 - jitter * rng.random::<f64>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn grows_and_caps() {
        let backoff =
            Backoff::fixed_exponential(Duration::from_millis(100), Duration::from_secs(1), 2.0);
        let delays: Vec<u128> = (1..=6).map(|n| backoff.base_delay(n).as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(backoff.base_delay(u32::MAX), Duration::from_secs(1));
    }

    #[test]
    fn jitter_stays_in_range() {
        let backoff = Backoff::default();
        let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
        for retry in 1..20 {
            let base = backoff.base_delay(retry);
            let delay = backoff.delay(retry, &mut rng);
            assert!(delay <= base && delay >= base / 2, "{delay:?} vs {base:?}");
        }
    }
}
