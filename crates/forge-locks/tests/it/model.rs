//! The lock table against a sequential model, driven by random operations: acquires (which
//! may wait), try-acquires, guard drops and cancelled waits. After every operation the model
//! decides which requests are granted, queued or refused, and which wait-for edges exist;
//! the table must agree exactly, never let two conflicting locks be held by different owners,
//! and leave no cycle in the wait-for graph. A deadlock victim must lie on a cycle of the
//! model's graph in which it has the lowest (priority, age) rank.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use forge_locks::{Acquire, Guard, LockError, LockTable, Mode, Owner, Pattern, Snapshot};
use proptest::prelude::*;

use crate::{conflict, p};

const PATTERNS: &[&str] = &[
    "a", "a/b", "a/*", "a/**", "b", "*", "**/b", "b/{a,c}", ".", "a/b/c", "[ab]/x",
];
const N_OWNERS: usize = 4;

type Item = (Pattern, Mode);

#[derive(Debug, Clone)]
enum Op {
    Acquire {
        owner: usize,
        items: Vec<(usize, bool)>,
    },
    TryAcquire {
        owner: usize,
        items: Vec<(usize, bool)>,
    },
    DropGuard(usize),
    Cancel(usize),
}

fn items() -> impl Strategy<Value = Vec<(usize, bool)>> {
    prop::collection::vec((0..PATTERNS.len(), any::<bool>()), 1..=2)
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..N_OWNERS, items()).prop_map(|(owner, items)| Op::Acquire { owner, items }),
        1 => (0..N_OWNERS, items()).prop_map(|(owner, items)| Op::TryAcquire { owner, items }),
        3 => any::<usize>().prop_map(Op::DropGuard),
        1 => any::<usize>().prop_map(Op::Cancel),
    ]
}

fn to_items(raw: &[(usize, bool)]) -> Vec<Item> {
    raw.iter()
        .map(|&(i, write)| (p(PATTERNS[i]), if write { Mode::Write } else { Mode::Read }))
        .collect()
}

/// The sequential model.
#[derive(Default)]
struct Model {
    /// owner slot -> (id, priority)
    owners: Vec<(u64, i64)>,
    /// token -> (owner slot, items)
    held: BTreeMap<usize, (usize, Vec<Item>)>,
    /// token (arrival order) -> (owner slot, items)
    queue: BTreeMap<usize, (usize, Vec<Item>)>,
}

/// `outer` contains `inner` by the table's re-entrancy rule.
fn contains(outer: &Pattern, inner: &Pattern) -> bool {
    let (o, i) = (outer.as_str(), inner.as_str());
    o == i || (outer.is_literal() && (o == "." || i.starts_with(&format!("{o}/"))))
}

impl Model {
    fn holdings(&self, owner: usize) -> impl Iterator<Item = &Item> {
        self.held
            .values()
            .filter(move |(o, _)| *o == owner)
            .flat_map(|(_, items)| items)
    }

    fn reentrant(&self, owner: usize, item: &Item) -> bool {
        self.holdings(owner)
            .any(|h| (h.1 == Mode::Write || item.1 == Mode::Read) && contains(&h.0, &item.0))
    }

    /// The owners a request (at queue position `token`) waits for.
    fn blockers(&self, owner: usize, token: usize, items: &[Item]) -> BTreeSet<usize> {
        let mut blockers = BTreeSet::new();
        for item in items.iter().filter(|i| !self.reentrant(owner, i)) {
            for (o, held) in self.held.values() {
                if *o != owner && held.iter().any(|h| conflict(item, h)) {
                    blockers.insert(*o);
                }
            }
            for (&t, (o, queued)) in &self.queue {
                if t >= token || *o == owner || !queued.iter().any(|q| conflict(item, q)) {
                    continue;
                }
                let waits_for_us = queued
                    .iter()
                    .any(|q| self.holdings(owner).any(|h| conflict(q, h)));
                if !waits_for_us {
                    blockers.insert(*o);
                }
            }
        }
        blockers
    }

    /// Grants queued requests in arrival order until nothing changes; returns the tokens.
    fn settle(&mut self) -> BTreeSet<usize> {
        let mut granted = BTreeSet::new();
        loop {
            let next = self
                .queue
                .iter()
                .find_map(|(&t, (o, items))| self.blockers(*o, t, items).is_empty().then_some(t));
            let Some(t) = next else { return granted };
            let request = self.queue.remove(&t).expect("found above");
            self.held.insert(t, request);
            granted.insert(t);
        }
    }

    fn edges(&self) -> BTreeSet<(u64, u64)> {
        let mut edges = BTreeSet::new();
        for (&t, (o, items)) in &self.queue {
            for b in self.blockers(*o, t, items) {
                edges.insert((self.owners[*o].0, self.owners[b].0));
            }
        }
        edges
    }

    /// Rank of an owner for victim choice: lower loses.
    fn rank(&self, owner: usize) -> (i64, std::cmp::Reverse<u64>) {
        (
            self.owners[owner].1,
            std::cmp::Reverse(self.owners[owner].0),
        )
    }

    /// Whether `victim` lies on a cycle made only of owners ranked at or above it.
    fn on_cycle_as_weakest(&self, victim: usize) -> bool {
        let mut seen = BTreeSet::new();
        let mut stack = vec![victim];
        while let Some(at) = stack.pop() {
            for (&t, (o, items)) in &self.queue {
                if *o != at {
                    continue;
                }
                for b in self.blockers(at, t, items) {
                    if b == victim {
                        return true;
                    }
                    if self.rank(b) >= self.rank(victim) && seen.insert(b) {
                        stack.push(b);
                    }
                }
            }
        }
        false
    }
}

fn check_snapshot(snap: &Snapshot, model: &Model) -> Result<(), TestCaseError> {
    for (i, a) in snap.holders.iter().enumerate() {
        for b in &snap.holders[i + 1..] {
            prop_assert!(
                a.owner == b.owner
                    || !conflict(&(a.pattern.clone(), a.mode), &(b.pattern.clone(), b.mode)),
                "conflicting holders: {a:?} and {b:?}"
            );
        }
    }
    let held_count: usize = model.held.values().map(|(_, items)| items.len()).sum();
    prop_assert_eq!(snap.holders.len(), held_count);
    prop_assert_eq!(snap.waiters.len(), model.queue.len());
    let edges: BTreeSet<(u64, u64)> = snap.edges.iter().map(|e| (e.waiter, e.holder)).collect();
    prop_assert_eq!(edges, model.edges());
    Ok(())
}

fn poll_now<F: Future + Unpin>(fut: &mut F) -> Poll<F::Output> {
    let mut cx = Context::from_waker(futures::task::noop_waker_ref());
    Pin::new(fut).poll(&mut cx)
}

fn run(priorities: &[i64], ops: &[Op]) -> Result<(), TestCaseError> {
    let table = LockTable::default();
    let owners: Vec<Owner> = priorities
        .iter()
        .enumerate()
        .map(|(i, &pr)| table.owner(format!("o{i}"), pr))
        .collect();
    let mut model = Model {
        owners: owners
            .iter()
            .zip(priorities)
            .map(|(o, &pr)| (o.id(), pr))
            .collect(),
        ..Model::default()
    };
    let mut guards: BTreeMap<usize, Guard> = BTreeMap::new();
    let mut waiting: BTreeMap<usize, (usize, Acquire<'_>)> = BTreeMap::new();
    for (token, op) in ops.iter().enumerate() {
        // Apply to the table.
        let mut refused = None;
        match op {
            Op::Acquire { owner, items } => {
                if waiting.values().any(|(o, _)| o == owner) {
                    continue;
                }
                waiting.insert(token, (*owner, owners[*owner].acquire(&to_items(items))));
            }
            Op::TryAcquire { owner, items } => {
                if waiting.values().any(|(o, _)| o == owner) {
                    continue;
                }
                match owners[*owner].try_acquire(&to_items(items)) {
                    Ok(g) => {
                        guards.insert(token, g);
                        refused = Some(false);
                    }
                    Err(LockError::WouldBlock { .. }) => refused = Some(true),
                    Err(e) => return Err(TestCaseError::fail(format!("try_acquire: {e}"))),
                }
            }
            Op::DropGuard(k) => {
                if let Some(&t) = guards.keys().nth(k % guards.len().max(1)) {
                    guards.remove(&t);
                    model.held.remove(&t);
                }
            }
            Op::Cancel(k) => {
                if let Some(&t) = waiting.keys().nth(k % waiting.len().max(1)) {
                    waiting.remove(&t);
                    model.queue.remove(&t);
                }
            }
        }
        // Poll the waiting requests until none completes (a first poll may resolve others).
        let mut granted = BTreeSet::new();
        let mut victims = Vec::new();
        for pass in 0.. {
            let mut completed = Vec::new();
            for (&t, (_, fut)) in waiting.iter_mut() {
                match poll_now(fut) {
                    Poll::Pending => {}
                    Poll::Ready(Ok(g)) => {
                        guards.insert(t, g);
                        granted.insert(t);
                        completed.push(t);
                    }
                    Poll::Ready(Err(LockError::Deadlock(d))) => {
                        victims.push((t, d));
                        completed.push(t);
                    }
                    Poll::Ready(Err(e)) => {
                        return Err(TestCaseError::fail(format!("acquire: {e}")));
                    }
                }
            }
            // The first pass may start a new request that resolves earlier ones: poll again.
            if completed.is_empty() && pass > 0 {
                break;
            }
            for t in completed {
                waiting.remove(&t);
            }
        }
        // Apply to the model.
        match op {
            Op::Acquire { owner, items } => {
                model.queue.insert(token, (*owner, to_items(items)));
            }
            Op::TryAcquire { owner, items } => {
                let items = to_items(items);
                let free = model.blockers(*owner, usize::MAX, &items).is_empty();
                prop_assert_eq!(refused, Some(!free), "try_acquire of {:?}", op);
                if free {
                    model.held.insert(token, (*owner, items));
                }
            }
            Op::DropGuard(_) | Op::Cancel(_) => {}
        }
        let mut model_granted = model.settle();
        // Every victim must be the weakest on some cycle of the graph as it stood before any
        // of this step's victims was removed (the table may pick them in any order).
        for (t, deadlock) in &victims {
            let (owner, _) = model.queue.get(t).cloned().ok_or_else(|| {
                TestCaseError::fail(format!("victim {t} is not waiting in the model"))
            })?;
            prop_assert!(
                model.on_cycle_as_weakest(owner),
                "victim o{} is not the weakest on a cycle: {}",
                owner,
                deadlock
            );
            prop_assert_eq!(deadlock.victim.to_string(), format!("o{owner}"));
            let n = deadlock.cycle.len();
            for i in 0..n {
                prop_assert_eq!(
                    &deadlock.cycle[i].holder,
                    &deadlock.cycle[(i + 1) % n].waiter
                );
            }
        }
        for (t, _) in &victims {
            model.queue.remove(t);
        }
        model_granted.extend(model.settle());
        prop_assert_eq!(&granted, &model_granted, "granted after {:?}", op);
        let pending: BTreeSet<usize> = waiting.keys().copied().collect();
        let model_pending: BTreeSet<usize> = model.queue.keys().copied().collect();
        prop_assert_eq!(pending, model_pending, "waiting after {:?}", op);
        for (o, _) in model.owners.iter().enumerate() {
            prop_assert!(
                !model.on_cycle_as_weakest(o),
                "a cycle through o{} was left",
                o
            );
        }
        check_snapshot(&table.snapshot(), &model)?;
    }
    // Dropping everything leaves an empty table.
    drop(waiting);
    drop(guards);
    let snap = table.snapshot();
    prop_assert!(snap.holders.is_empty() && snap.waiters.is_empty() && snap.edges.is_empty());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: crate::cases(200), ..ProptestConfig::default() })]

    #[test]
    fn table_matches_model(
        priorities in prop::collection::vec(0i64..2, N_OWNERS),
        ops in prop::collection::vec(op(), 1..40),
    ) {
        run(&priorities, &ops)?;
    }
}

/// A deadlock found by a new request resolves an earlier request's wait (found by proptest).
#[test]
fn new_request_breaks_a_cycle_through_earlier_waiters() {
    use Op::*;
    let ops = vec![
        Acquire {
            owner: 0,
            items: vec![(0, false)],
        },
        Acquire {
            owner: 0,
            items: vec![(0, false)],
        },
        Acquire {
            owner: 1,
            items: vec![(0, false)],
        },
        Acquire {
            owner: 3,
            items: vec![(7, true), (0, true)],
        },
        DropGuard(0),
        Acquire {
            owner: 2,
            items: vec![(0, false)],
        },
        DropGuard(0),
        Cancel(1),
        TryAcquire {
            owner: 1,
            items: vec![(4, false)],
        },
        DropGuard(0),
        Acquire {
            owner: 2,
            items: vec![(0, true)],
        },
        Acquire {
            owner: 1,
            items: vec![(8, false)],
        },
    ];
    run(&[0, 0, 0, 0], &ops).expect("the table agrees with the model");
}
