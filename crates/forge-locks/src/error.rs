//! `LockError` and the `Deadlock` report.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::{Mode, Pattern};

/// Why an acquire did not succeed. Every message names the owner and the patterns.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    /// `try_acquire` found a conflicting holder or an earlier conflicting waiter.
    #[error("task {owner} would block on {} (held or queued by {})", describe(requests), blockers.join(", "))]
    WouldBlock {
        /// The owner that asked.
        owner: String,
        /// What it asked for.
        requests: Vec<(Pattern, Mode)>,
        /// Names of the owners it would wait for.
        blockers: Vec<String>,
    },
    /// The wait closed a cycle in the wait-for graph and this owner was chosen as the victim.
    #[error("{0}")]
    Deadlock(Deadlock),
    /// `acquire_timeout` gave up.
    #[error(
        "task {owner} timed out after {timeout:?} waiting for {}",
        describe(requests)
    )]
    Timeout {
        /// The owner that asked.
        owner: String,
        /// What it asked for.
        requests: Vec<(Pattern, Mode)>,
        /// How long it waited.
        timeout: Duration,
    },
}

/// A cycle in the wait-for graph, as reported to its victim.
///
/// Displays as `deadlock: task a (writes src/**) waits for task b (writes src/x), task b
/// (writes src/y) waits for task a (reads src/y); victim: task b`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deadlock {
    /// The cycle, one step per waiting owner; the holder of the last step is the waiter of
    /// the first.
    pub cycle: Vec<WaitStep>,
    /// The owner whose acquire failed (lowest priority, then youngest, in the cycle).
    pub victim: Arc<str>,
}

/// One edge of a deadlock cycle: `waiter` wants `wants`, which conflicts with `holds` of
/// `holder` (held, or queued ahead of it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitStep {
    /// The waiting owner's name.
    pub waiter: Arc<str>,
    /// The requests of the waiter that conflict with the holder.
    pub wants: Vec<(Pattern, Mode)>,
    /// The owner it waits for.
    pub holder: Arc<str>,
    /// The holder's locks (or queued requests) that conflict.
    pub holds: Vec<(Pattern, Mode)>,
}

impl fmt::Display for Deadlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deadlock: ")?;
        for (i, step) in self.cycle.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(
                f,
                "task {} ({}) waits for task {} ({})",
                step.waiter,
                describe(&step.wants),
                step.holder,
                describe(&step.holds)
            )?;
        }
        write!(f, "; victim: task {}", self.victim)
    }
}

impl std::error::Error for Deadlock {}

/// `writes src/**, reads docs` style list.
pub(crate) fn describe(requests: &[(Pattern, Mode)]) -> String {
    let parts: Vec<String> = requests
        .iter()
        .map(|(p, m)| format!("{} {}", m.verb(), p))
        .collect();
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlock_reads_well() {
        let p = |s: &str| Pattern::parse(s).expect("valid");
        let d = Deadlock {
            cycle: vec![
                WaitStep {
                    waiter: "a".into(),
                    wants: vec![(p("src/**"), Mode::Write)],
                    holder: "b".into(),
                    holds: vec![(p("src/x"), Mode::Write)],
                },
                WaitStep {
                    waiter: "b".into(),
                    wants: vec![(p("src/y"), Mode::Write)],
                    holder: "a".into(),
                    holds: vec![(p("src/y"), Mode::Read)],
                },
            ],
            victim: "b".into(),
        };
        assert_eq!(
            d.to_string(),
            "deadlock: task a (writes src/**) waits for task b (writes src/x), \
             task b (writes src/y) waits for task a (reads src/y); victim: task b"
        );
    }
}
