//! The lock table's state behind its one mutex: held entries, the FIFO queue of waiting
//! requests, the wait-for edges, and the rules that grant, queue and fail requests.
//!
//! The grant rule: a request is granted, all at once, when none of its items (apart from
//! those the owner already holds, which are re-entrant) conflicts with a lock held by another
//! owner or with an earlier queued request of another owner. An earlier queued request that
//! itself conflicts with something the asking owner holds is passed over: it has to wait for
//! that owner anyway, and waiting behind it would be a certain deadlock (this is what makes a
//! lone reader's read -> write upgrade succeed while a writer is queued).

use std::collections::{BTreeSet, HashMap};

use super::fast_hash::{FastMap, FastSet};
use std::task::Waker;

use super::trie::{NodeId, Trie};
use crate::overlap::overlaps;
use crate::{LockError, Mode, Pattern};

/// Identifies a held entry: its slab index and a serial that tells reuse apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EntryKey {
    pub(crate) idx: u32,
    pub(crate) serial: u64,
}

/// The keys of one grant: inline for the common single-lock request, so that an
/// uncontended acquire does not allocate for them.
#[derive(Debug)]
pub(crate) enum Keys {
    One(EntryKey),
    Many(Vec<EntryKey>),
}

impl Keys {
    pub(crate) fn as_slice(&self) -> &[EntryKey] {
        match self {
            Keys::One(key) => std::slice::from_ref(key),
            Keys::Many(keys) => keys,
        }
    }
}

#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) owner: u64,
    pub(crate) pattern: Pattern,
    pub(crate) mode: Mode,
    pub(crate) node: NodeId,
    pub(crate) serial: u64,
}

#[derive(Debug)]
pub(crate) struct OwnerState {
    pub(crate) name: std::sync::Arc<str>,
    pub(crate) priority: i64,
    /// Entries this owner holds.
    pub(crate) held: Vec<u32>,
    /// Its queued requests.
    pub(crate) pending: Vec<u64>,
    /// Queued requests (of others) that wait for this owner.
    pub(crate) dependents: Vec<u64>,
}

#[derive(Debug)]
pub(crate) struct Wait {
    pub(crate) owner: u64,
    pub(crate) items: Vec<(Pattern, Mode)>,
    pub(crate) nodes: Vec<NodeId>,
    /// Owners this request waits for (the wait-for edges).
    pub(crate) blockers: Vec<u64>,
    pub(crate) waker: Option<Waker>,
}

/// What happened to a request.
pub(crate) enum Requested {
    Granted(Keys),
    Queued(u64),
    Failed(LockError),
}

#[derive(Debug, Default)]
pub(crate) struct State {
    next_owner: u64,
    next_seq: u64,
    next_serial: u64,
    pub(crate) owners: FastMap<u64, OwnerState>,
    pub(crate) entries: Vec<Option<Entry>>,
    free_entries: Vec<u32>,
    /// The queue, keyed by arrival order.
    pub(crate) waits: FastMap<u64, Wait>,
    /// Results of queued requests that their future has not collected yet.
    pub(crate) outcomes: HashMap<u64, Result<Keys, LockError>>,
    pub(crate) trie: Trie,
    /// Wakers of requests resolved under the lock, woken by the caller after unlocking.
    pub(crate) wakers: Vec<Waker>,
}

/// A set of ids: a plain vector while small, with a hash index once it grows (a request
/// can wait for a thousand owners).
#[derive(Default)]
struct IdSet {
    list: Vec<u64>,
    index: Option<FastSet<u64>>,
}

impl IdSet {
    fn contains(&self, x: u64) -> bool {
        match &self.index {
            Some(index) => index.contains(&x),
            None => self.list.contains(&x),
        }
    }

    fn insert(&mut self, x: u64) {
        if self.contains(x) {
            return;
        }
        self.list.push(x);
        match &mut self.index {
            Some(index) => {
                index.insert(x);
            }
            None if self.list.len() > 16 => {
                self.index = Some(self.list.iter().copied().collect());
            }
            None => {}
        }
    }
}

fn modes_conflict(a: Mode, b: Mode) -> bool {
    a == Mode::Write || b == Mode::Write
}

/// Pushes `x` unless present (the sets here are tiny, so a vector beats a hash set).
fn insert(set: &mut Vec<u64>, x: u64) -> bool {
    if set.contains(&x) {
        false
    } else {
        set.push(x);
        true
    }
}

fn remove(set: &mut Vec<u64>, x: u64) {
    if let Some(pos) = set.iter().position(|&y| y == x) {
        set.swap_remove(pos);
    }
}

impl State {
    pub(crate) fn add_owner(&mut self, name: std::sync::Arc<str>, priority: i64) -> u64 {
        let id = self.next_owner;
        self.next_owner += 1;
        self.owners.insert(
            id,
            OwnerState {
                name,
                priority,
                held: Vec::new(),
                pending: Vec::new(),
                dependents: Vec::new(),
            },
        );
        id
    }

    /// The owner's name, shared (no copy).
    pub(crate) fn owner_arc(&self, owner: u64) -> std::sync::Arc<str> {
        self.owners.get(&owner).map_or_else(
            || std::sync::Arc::from(format!("#{owner}")),
            |o| o.name.clone(),
        )
    }

    pub(crate) fn owner_name(&self, owner: u64) -> String {
        self.owners
            .get(&owner)
            .map_or_else(|| format!("#{owner}"), |o| o.name.to_string())
    }

    pub(crate) fn entry(&self, key: EntryKey) -> Option<&Entry> {
        self.entries[key.idx as usize]
            .as_ref()
            .filter(|e| e.serial == key.serial)
    }

    /// Which items the owner already holds (same or stronger mode, containing pattern).
    /// Empty (meaning "none") when the owner holds nothing, which saves an allocation.
    fn reentrant(&self, owner: u64, items: &[(Pattern, Mode)]) -> Vec<bool> {
        let held = match self.owners.get(&owner) {
            Some(o) if !o.held.is_empty() => &o.held,
            _ => return Vec::new(),
        };
        items
            .iter()
            .map(|(p, m)| {
                held.iter().any(|&e| {
                    let e = self.entries[e as usize]
                        .as_ref()
                        .expect("held entries exist");
                    (e.mode == Mode::Write || *m == Mode::Read) && e.pattern.contains(p)
                })
            })
            .collect()
    }

    /// Whether the queued request `seq` conflicts with a lock `owner` holds.
    fn waits_for_holdings_of(&self, seq: u64, owner: u64) -> bool {
        let (Some(wait), Some(o)) = (self.waits.get(&seq), self.owners.get(&owner)) else {
            return false;
        };
        o.held.iter().any(|&e| {
            let e = self.entries[e as usize]
                .as_ref()
                .expect("held entries exist");
            wait.items
                .iter()
                .any(|(p, m)| modes_conflict(*m, e.mode) && overlaps(p, &e.pattern))
        })
    }

    /// The owners a request (queued at `seq`, or new when `seq` is `u64::MAX`) waits for:
    /// other owners' conflicting holdings and earlier conflicting queued requests that do not
    /// themselves wait for this owner's holdings.
    fn blockers(
        &self,
        owner: u64,
        seq: u64,
        items: &[(Pattern, Mode)],
        reentrant: &[bool],
    ) -> Vec<u64> {
        let mut blockers = IdSet::default();
        let mut passed = IdSet::default();
        for (i, (pattern, mode)) in items.iter().enumerate() {
            if reentrant.get(i).copied().unwrap_or(false) {
                continue;
            }
            self.trie.visit(pattern.prefix(), |node| {
                for &e in &node.held {
                    let e = self.entries[e as usize]
                        .as_ref()
                        .expect("filed entries exist");
                    if e.owner != owner
                        && modes_conflict(*mode, e.mode)
                        && !blockers.contains(e.owner)
                        && overlaps(pattern, &e.pattern)
                    {
                        blockers.insert(e.owner);
                    }
                }
                for &(s, item) in &node.queued {
                    if s >= seq || passed.contains(s) {
                        continue;
                    }
                    let w = &self.waits[&s];
                    let (wp, wm) = &w.items[item as usize];
                    if w.owner != owner
                        && modes_conflict(*mode, *wm)
                        && !blockers.contains(w.owner)
                        && overlaps(pattern, wp)
                    {
                        if self.waits_for_holdings_of(s, owner) {
                            passed.insert(s);
                        } else {
                            blockers.insert(w.owner);
                        }
                    }
                }
            });
        }
        blockers.list
    }

    /// Files new entries for `items` and returns their keys.
    fn grant(&mut self, owner: u64, items: &[(Pattern, Mode)], work: &mut BTreeSet<u64>) -> Keys {
        let mut keys = Vec::new();
        let mut first = None;
        for (pattern, mode) in items {
            let serial = self.next_serial;
            self.next_serial += 1;
            let idx = match self.free_entries.pop() {
                Some(idx) => idx,
                None => {
                    self.entries.push(None);
                    u32::try_from(self.entries.len() - 1).expect("fewer than 2^32 held locks")
                }
            };
            let node = self.trie.add_held(pattern.prefix(), idx);
            self.entries[idx as usize] = Some(Entry {
                owner,
                pattern: pattern.clone(),
                mode: *mode,
                node,
                serial,
            });
            if let Some(o) = self.owners.get_mut(&owner) {
                o.held.push(idx);
            }
            let key = EntryKey { idx, serial };
            if first.is_none() {
                first = Some(key);
            } else {
                keys.push(key);
            }
        }
        // Queued requests that conflict with the new locks now wait for this owner.
        let anything_queued = !self.waits.is_empty();
        for (pattern, mode) in items.iter().filter(|_| anything_queued) {
            let mut newly: Vec<u64> = Vec::new();
            self.trie.visit(pattern.prefix(), |node| {
                for &(s, item) in &node.queued {
                    let w = &self.waits[&s];
                    let (wp, wm) = &w.items[item as usize];
                    if w.owner != owner
                        && modes_conflict(*mode, *wm)
                        && !w.blockers.contains(&owner)
                        && !newly.contains(&s)
                        && overlaps(pattern, wp)
                    {
                        newly.push(s);
                    }
                }
            });
            for s in newly {
                self.add_edge(s, owner, work);
            }
        }
        // The owner's other queued requests may now pass waiters that wait for it.
        if let Some(o) = self.owners.get(&owner) {
            work.extend(o.pending.iter().copied());
        }
        match (first, keys.is_empty()) {
            (Some(key), true) => Keys::One(key),
            (first, _) => {
                keys.splice(0..0, first);
                Keys::Many(keys)
            }
        }
    }

    fn add_edge(&mut self, seq: u64, blocker: u64, work: &mut BTreeSet<u64>) {
        let Some(w) = self.waits.get_mut(&seq) else {
            return;
        };
        if insert(&mut w.blockers, blocker) {
            if let Some(o) = self.owners.get_mut(&blocker) {
                insert(&mut o.dependents, seq);
            }
            let waiter = w.owner;
            self.break_cycles(waiter, work);
        }
    }

    /// A new request: granted at once, queued, or (for `try_acquire`) refused.
    pub(crate) fn request(
        &mut self,
        owner: u64,
        items: &[(Pattern, Mode)],
        may_wait: bool,
    ) -> Requested {
        let reentrant = self.reentrant(owner, items);
        let blockers = self.blockers(owner, u64::MAX, items, &reentrant);
        let mut work = BTreeSet::new();
        if blockers.is_empty() {
            let keys = self.grant(owner, items, &mut work);
            self.settle(work);
            return Requested::Granted(keys);
        }
        if !may_wait {
            let blockers = blockers.iter().map(|&b| self.owner_name(b)).collect();
            return Requested::Failed(LockError::WouldBlock {
                owner: self.owner_name(owner),
                requests: items.to_vec(),
                blockers,
            });
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let nodes = items
            .iter()
            .enumerate()
            .map(|(i, (p, _))| {
                let item = u32::try_from(i).expect("fewer than 2^32 items in one request");
                self.trie.add_queued(p.prefix(), seq, item)
            })
            .collect();
        for &b in &blockers {
            if let Some(o) = self.owners.get_mut(&b) {
                o.dependents.push(seq);
            }
        }
        if let Some(o) = self.owners.get_mut(&owner) {
            o.pending.push(seq);
        }
        self.waits.insert(
            seq,
            Wait {
                owner,
                items: items.to_vec(),
                nodes,
                blockers,
                waker: None,
            },
        );
        self.break_cycles(owner, &mut work);
        self.settle(work);
        match self.outcomes.remove(&seq) {
            Some(Ok(keys)) => Requested::Granted(keys),
            Some(Err(e)) => Requested::Failed(e),
            None => Requested::Queued(seq),
        }
    }

    /// Takes a queued request out of the queue and the index, and schedules a re-check of
    /// everything that waited for its owner.
    pub(crate) fn unqueue(&mut self, seq: u64, work: &mut BTreeSet<u64>) -> Option<Wait> {
        let wait = self.waits.remove(&seq)?;
        for (i, &node) in wait.nodes.iter().enumerate() {
            let item = u32::try_from(i).expect("fewer than 2^32 items in one request");
            self.trie.remove_queued(node, seq, item);
        }
        for &b in &wait.blockers {
            if let Some(o) = self.owners.get_mut(&b) {
                remove(&mut o.dependents, seq);
            }
        }
        if let Some(o) = self.owners.get_mut(&wait.owner) {
            remove(&mut o.pending, seq);
            work.extend(o.dependents.iter().copied());
        }
        Some(wait)
    }

    /// Releases held entries and re-checks the requests that waited for their owner.
    pub(crate) fn release(&mut self, keys: &[EntryKey]) {
        let mut work = BTreeSet::new();
        for &key in keys {
            let Some(entry) = self.entry(key) else {
                continue;
            };
            let (owner, node) = (entry.owner, entry.node);
            self.entries[key.idx as usize] = None;
            self.free_entries.push(key.idx);
            self.trie.remove_held(node, key.idx);
            if let Some(o) = self.owners.get_mut(&owner) {
                if let Some(pos) = o.held.iter().position(|&e| e == key.idx) {
                    o.held.swap_remove(pos);
                }
                work.extend(o.dependents.iter().copied());
                work.extend(o.pending.iter().copied());
            }
        }
        self.settle(work);
    }

    /// Cancels a queued request (its future was dropped), or releases what it was granted
    /// if the future never collected it.
    pub(crate) fn cancel(&mut self, seq: u64) {
        if let Some(outcome) = self.outcomes.remove(&seq) {
            if let Ok(keys) = outcome {
                self.release(keys.as_slice());
            }
            return;
        }
        let mut work = BTreeSet::new();
        self.unqueue(seq, &mut work);
        self.settle(work);
    }

    /// Removes an owner: releases everything it holds and drops its queued requests.
    pub(crate) fn remove_owner(&mut self, owner: u64) {
        let Some(o) = self.owners.get(&owner) else {
            return;
        };
        let pending = o.pending.clone();
        let keys: Vec<EntryKey> = o
            .held
            .iter()
            .map(|&idx| {
                let serial = self.entries[idx as usize]
                    .as_ref()
                    .expect("held entries exist")
                    .serial;
                EntryKey { idx, serial }
            })
            .collect();
        let mut work = BTreeSet::new();
        for seq in pending {
            self.unqueue(seq, &mut work);
            self.outcomes.remove(&seq);
        }
        self.release(&keys);
        self.settle(work);
        self.owners.remove(&owner);
    }

    /// Re-checks queued requests in arrival order until nothing changes.
    pub(crate) fn settle(&mut self, mut work: BTreeSet<u64>) {
        while let Some(seq) = work.pop_first() {
            let Some(w) = self.waits.get(&seq) else {
                continue;
            };
            let owner = w.owner;
            let items = w.items.clone();
            let reentrant = self.reentrant(owner, &items);
            let blockers = self.blockers(owner, seq, &items, &reentrant);
            if blockers.is_empty() {
                let mut wait = self.unqueue(seq, &mut work).expect("checked above");
                let keys = self.grant(owner, &items, &mut work);
                self.outcomes.insert(seq, Ok(keys));
                self.wakers.extend(wait.waker.take());
                continue;
            }
            let w = self.waits.get_mut(&seq).expect("checked above");
            let old = std::mem::replace(&mut w.blockers, blockers.clone());
            let mut added = false;
            for &b in &old {
                if !blockers.contains(&b)
                    && let Some(o) = self.owners.get_mut(&b)
                {
                    remove(&mut o.dependents, seq);
                }
            }
            for &b in &blockers {
                if !old.contains(&b) {
                    added = true;
                    if let Some(o) = self.owners.get_mut(&b) {
                        insert(&mut o.dependents, seq);
                    }
                }
            }
            if added {
                self.break_cycles(owner, &mut work);
            }
        }
    }

    /// Fails a queued request with `error`.
    pub(crate) fn fail(&mut self, seq: u64, error: LockError, work: &mut BTreeSet<u64>) {
        if let Some(mut wait) = self.unqueue(seq, work) {
            self.outcomes.insert(seq, Err(error));
            self.wakers.extend(wait.waker.take());
        }
    }
}
