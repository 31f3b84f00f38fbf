//! Ready-queue ranks: the longest remaining path from a task to a sink, weighted by duration
//! hints, by durations observed earlier in the run, or else by task count (depth).

use std::time::Duration;

use crate::validate::ValidatedPlan;

/// Ranks and the estimates behind them.
#[derive(Debug)]
pub(super) struct Ranks {
    /// Longest remaining path from each task to a sink, in microseconds (or task counts when
    /// nothing is known about durations).
    pub(super) rank: Vec<u64>,
    /// Hints in microseconds; 0 = no hint.
    hint_us: Vec<u64>,
    n_hinted: usize,
    mean_hint_us: u64,
    observed_sum_us: u128,
    observed_n: u64,
    /// Recompute when this many durations have been observed (doubling, so the total work
    /// stays O(n log n)).
    next_recompute: u64,
}

impl Ranks {
    pub(super) fn new(plan: &ValidatedPlan) -> Self {
        let hint_us: Vec<u64> = plan
            .tasks()
            .iter()
            .map(|t| t.duration_hint.map_or(0, |d| micros(d).max(1)))
            .collect();
        let n_hinted = hint_us.iter().filter(|&&h| h > 0).count();
        let mean_hint_us = if n_hinted == 0 {
            1
        } else {
            (hint_us.iter().map(|&h| u128::from(h)).sum::<u128>() / n_hinted as u128) as u64
        };
        let mut ranks = Self {
            rank: Vec::new(),
            hint_us,
            n_hinted,
            mean_hint_us,
            observed_sum_us: 0,
            observed_n: 0,
            next_recompute: 4,
        };
        ranks.compute(plan);
        ranks
    }

    fn default_weight(&self) -> u64 {
        if self.observed_n > 0 {
            ((self.observed_sum_us / u128::from(self.observed_n)) as u64).max(1)
        } else {
            self.mean_hint_us
        }
    }

    fn compute(&mut self, plan: &ValidatedPlan) {
        let default = self.default_weight();
        let mut rank = vec![0u64; plan.len()];
        for &idx in plan.topo_order().iter().rev() {
            let idx = idx as usize;
            let weight = match self.hint_us[idx] {
                0 => default,
                hint => hint,
            };
            let longest_after = plan
                .dependents(idx)
                .iter()
                .map(|&d| rank[d as usize])
                .max()
                .unwrap_or(0);
            rank[idx] = weight.saturating_add(longest_after);
        }
        self.rank = rank;
    }

    /// Records the duration of an attempt of a task without a hint. Returns whether the
    /// ranks were recomputed (then the ready queue must be re-keyed).
    pub(super) fn observe(&mut self, plan: &ValidatedPlan, idx: usize, duration: Duration) -> bool {
        // Only a mix of hinted and unhinted tasks is reordered by what is observed: without
        // hints every unhinted task weighs the same whatever the mean.
        if self.hint_us[idx] != 0 || self.n_hinted == 0 || self.n_hinted == self.hint_us.len() {
            return false;
        }
        self.observed_sum_us += u128::from(micros(duration));
        self.observed_n += 1;
        if self.observed_n < self.next_recompute {
            return false;
        }
        self.next_recompute *= 2;
        self.compute(plan);
        true
    }
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}
