//! `Snapshot`: who holds what and who waits for whom, for events and `forge status`.

use crate::{Mode, Pattern};

/// The lock table at one instant.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Every live owner.
    pub owners: Vec<OwnerInfo>,
    /// Every held lock.
    pub holders: Vec<Held>,
    /// Every queued request, in queue (FIFO) order.
    pub waiters: Vec<Waiting>,
    /// The wait-for edges: each queued request to each owner it waits for.
    pub edges: Vec<WaitFor>,
}

/// An owner of locks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerInfo {
    /// Its identifier ([`Owner::id`](crate::Owner::id)).
    pub id: u64,
    /// Its name.
    pub name: String,
    /// Its priority (the lowest loses a deadlock).
    pub priority: i64,
}

/// One held lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    /// The owner's identifier.
    pub owner: u64,
    /// The owner's name.
    pub owner_name: String,
    /// The locked pattern.
    pub pattern: Pattern,
    /// Read or write.
    pub mode: Mode,
}

/// One queued request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    /// The owner's identifier.
    pub owner: u64,
    /// The owner's name.
    pub owner_name: String,
    /// The whole set it asked for.
    pub requests: Vec<(Pattern, Mode)>,
    /// The owners it waits for.
    pub waits_for: Vec<u64>,
}

/// A wait-for edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitFor {
    /// The waiting owner.
    pub waiter: u64,
    /// The owner it waits for.
    pub holder: u64,
}

impl Snapshot {
    /// The holders of locks that conflict with `(pattern, mode)`, for explaining a wait.
    pub fn conflicting(&self, pattern: &Pattern, mode: Mode) -> Vec<&Held> {
        self.holders
            .iter()
            .filter(|h| {
                (mode == Mode::Write || h.mode == Mode::Write)
                    && crate::overlap::overlaps(pattern, &h.pattern)
            })
            .collect()
    }
}
