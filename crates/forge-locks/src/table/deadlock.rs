//! Deadlock detection: when a request gains a wait-for edge, search the wait-for graph for a
//! cycle back to its owner; fail the victim's request (lowest priority, then youngest owner)
//! with a `Deadlock` naming the whole cycle, and repeat until no cycle is left.

use std::collections::BTreeSet;

use super::fast_hash::FastSet;

use super::state::{State, Wait};
use crate::overlap::overlaps;
use crate::{Deadlock, LockError, Mode, Pattern, WaitStep};

/// One edge of the wait-for graph: `waiter`'s queued request `seq` waits for `holder`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Edge {
    pub(crate) waiter: u64,
    pub(crate) seq: u64,
    pub(crate) holder: u64,
}

/// Where a depth-first search stands in one owner's outgoing edges.
struct Cursor {
    owner: u64,
    pending: usize,
    blocker: usize,
}

impl State {
    /// The next wait-for edge out of `cursor.owner`, advancing the cursor.
    fn next_edge(&self, cursor: &mut Cursor) -> Option<Edge> {
        let owner = self.owners.get(&cursor.owner)?;
        loop {
            let seq = *owner.pending.get(cursor.pending)?;
            if let Some(&holder) = self
                .waits
                .get(&seq)
                .and_then(|w| w.blockers.get(cursor.blocker))
            {
                cursor.blocker += 1;
                return Some(Edge {
                    waiter: cursor.owner,
                    seq,
                    holder,
                });
            }
            cursor.pending += 1;
            cursor.blocker = 0;
        }
    }

    /// A cycle of wait-for edges through `start`, if there is one (depth-first search).
    pub(crate) fn find_cycle(&self, start: u64) -> Option<Vec<Edge>> {
        let mut visited: FastSet<u64> = FastSet::default();
        visited.insert(start);
        let mut path: Vec<Edge> = Vec::new();
        let mut stack: Vec<Cursor> = vec![Cursor {
            owner: start,
            pending: 0,
            blocker: 0,
        }];
        while let Some(cursor) = stack.last_mut() {
            let Some(edge) = self.next_edge(cursor) else {
                stack.pop();
                path.pop();
                continue;
            };
            if edge.holder == start {
                path.push(edge);
                return Some(path);
            }
            if visited.insert(edge.holder) {
                path.push(edge);
                stack.push(Cursor {
                    owner: edge.holder,
                    pending: 0,
                    blocker: 0,
                });
            }
        }
        None
    }

    /// Breaks every cycle through `start`, one victim per cycle.
    pub(crate) fn break_cycles(&mut self, start: u64, work: &mut BTreeSet<u64>) {
        while let Some(cycle) = self.find_cycle(start) {
            let victim = cycle
                .iter()
                .min_by_key(|e| {
                    let priority = self.owners.get(&e.waiter).map_or(i64::MIN, |o| o.priority);
                    (priority, std::cmp::Reverse(e.waiter))
                })
                .copied()
                .expect("a cycle has at least one edge");
            let report = Deadlock {
                cycle: cycle.iter().map(|e| self.step(e)).collect(),
                victim: self.owner_arc(victim.waiter),
            };
            self.fail(victim.seq, LockError::Deadlock(report), work);
        }
    }

    /// Describes one edge: what the waiter wants that conflicts with what the holder holds
    /// (or has queued ahead of it).
    fn step(&self, edge: &Edge) -> WaitStep {
        let wait: &Wait = &self.waits[&edge.seq];
        let conflicts = |a: &(Pattern, Mode), b: &(Pattern, Mode)| {
            (a.1 == Mode::Write || b.1 == Mode::Write) && overlaps(&a.0, &b.0)
        };
        let mut holds: Vec<(Pattern, Mode)> = Vec::new();
        // Which of the waiter's items conflict (a bit mask: requests are small, and a request
        // of more than 64 items just reports them all).
        let mut wanted: u64 = 0;
        let mut consider = |theirs: &(Pattern, Mode), holds: &mut Vec<(Pattern, Mode)>| {
            let mut hit = false;
            for (i, w) in wait.items.iter().enumerate() {
                if conflicts(w, theirs) {
                    wanted |= 1u64
                        .checked_shl(u32::try_from(i).unwrap_or(u32::MAX))
                        .unwrap_or(0);
                    hit = true;
                }
            }
            if hit && !holds.contains(theirs) {
                holds.push(theirs.clone());
            }
        };
        if let Some(o) = self.owners.get(&edge.holder) {
            for &e in &o.held {
                let e = self.entries[e as usize]
                    .as_ref()
                    .expect("held entries exist");
                consider(&(e.pattern.clone(), e.mode), &mut holds);
            }
            if holds.is_empty() {
                // A queue-order edge: the holder's earlier request is what is in the way.
                for seq in o.pending.iter().filter(|&&s| s < edge.seq) {
                    for item in &self.waits[seq].items {
                        consider(item, &mut holds);
                    }
                }
            }
        }
        let wants: Vec<(Pattern, Mode)> = if wanted != 0 && wait.items.len() <= 64 {
            let picked = wait
                .items
                .iter()
                .enumerate()
                .filter(|(i, _)| wanted & (1 << i) != 0);
            picked.map(|(_, item)| item.clone()).collect()
        } else {
            wait.items.clone()
        };
        WaitStep {
            waiter: self.owner_arc(edge.waiter),
            wants,
            holder: self.owner_arc(edge.holder),
            holds,
        }
    }
}
