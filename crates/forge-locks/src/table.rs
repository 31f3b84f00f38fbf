//! `LockTable`, `Owner`, `Guard` and the acquire futures.

mod deadlock;
mod fast_hash;
mod state;
mod trie;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use parking_lot::{Mutex, MutexGuard};

use crate::timer::Sleep;
use crate::{LockError, Mode, Pattern, Snapshot};
use state::{Keys, Requested, State};

/// A table of read/write locks on path patterns.
///
/// Cheap to clone (the clones share one table); `Send + Sync`. Every lock belongs to an
/// [`Owner`] (one per task attempt). Two locks of different owners conflict when some path
/// is covered by both patterns and at least one is a write. Conflict checks look only at
/// patterns filed under the same literal prefix, its ancestors and its subtree.
#[derive(Clone, Default)]
pub struct LockTable {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
}

impl Shared {
    /// Runs `f` under the lock, then wakes the requests it resolved (outside the lock).
    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let mut state = self.state.lock();
        let result = f(&mut state);
        let wakers = std::mem::take(&mut state.wakers);
        drop(state);
        wakers.into_iter().for_each(Waker::wake);
        result
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock()
    }
}

impl fmt::Debug for LockTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.shared.lock();
        f.debug_struct("LockTable")
            .field("owners", &state.owners.len())
            .field("waiting", &state.waits.len())
            .finish()
    }
}

impl LockTable {
    /// A new owner of locks: one per task attempt. `priority` decides deadlock victims (the
    /// lowest priority loses; among equals, the youngest owner).
    pub fn owner(&self, name: impl Into<String>, priority: i64) -> Owner {
        let name: Arc<str> = Arc::from(name.into());
        let id = self.shared.with(|s| s.add_owner(name.clone(), priority));
        Owner {
            shared: self.shared.clone(),
            id,
            name,
        }
    }

    /// Who holds what, who waits for what, and the wait-for edges, right now.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot::of(&self.shared.lock())
    }
}

/// One holder of locks (a task attempt). Dropping it releases everything it holds and
/// cancels its waits.
pub struct Owner {
    shared: Arc<Shared>,
    id: u64,
    name: Arc<str>,
}

impl fmt::Debug for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Owner")
            .field("id", &self.id)
            .field("name", &self.name)
            .finish()
    }
}

impl Owner {
    /// The owner's name, as given to [`LockTable::owner`].
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The owner's identifier in [`Snapshot`]s.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Acquires the whole set, all or nothing, waiting as long as it takes.
    ///
    /// Cancel-safe: dropping the future before it completes leaves nothing behind (a request
    /// granted but not yet collected is released). Does not depend on any async runtime.
    ///
    /// # Errors
    ///
    /// [`LockError::Deadlock`] when this wait closes a cycle of waits (or joins one later)
    /// and this owner is the victim.
    pub fn acquire(&self, requests: &[(Pattern, Mode)]) -> Acquire<'_> {
        Acquire {
            owner: self,
            requests: requests.to_vec(),
            seq: None,
            done: false,
        }
    }

    /// [`Owner::acquire`] for plain threads: blocks the current thread.
    ///
    /// # Errors
    ///
    /// As [`Owner::acquire`].
    pub fn acquire_blocking(&self, requests: &[(Pattern, Mode)]) -> Result<Guard, LockError> {
        futures::executor::block_on(self.acquire(requests))
    }

    /// Acquires the whole set if that is possible right now, without waiting.
    ///
    /// # Errors
    ///
    /// [`LockError::WouldBlock`] naming the owners it would wait for.
    pub fn try_acquire(&self, requests: &[(Pattern, Mode)]) -> Result<Guard, LockError> {
        match self.shared.with(|s| s.request(self.id, requests, false)) {
            Requested::Granted(keys) => Ok(self.guard(keys)),
            Requested::Failed(e) => Err(e),
            Requested::Queued(_) => unreachable!("a request that may not wait is never queued"),
        }
    }

    /// [`Owner::acquire`] that gives up after `timeout`, leaving nothing behind.
    ///
    /// # Errors
    ///
    /// [`LockError::Timeout`], or as [`Owner::acquire`].
    pub fn acquire_timeout(
        &self,
        requests: &[(Pattern, Mode)],
        timeout: Duration,
    ) -> AcquireTimeout<'_> {
        AcquireTimeout {
            acquire: self.acquire(requests),
            sleep: Sleep::until(Instant::now() + timeout),
            timeout,
        }
    }

    fn guard(&self, entries: Keys) -> Guard {
        Guard {
            shared: self.shared.clone(),
            entries,
        }
    }
}

impl Drop for Owner {
    fn drop(&mut self) {
        self.shared.with(|s| s.remove_owner(self.id));
    }
}

/// Locks granted by one acquire; dropping the guard releases them.
#[must_use = "the locks are released when the guard is dropped"]
pub struct Guard {
    shared: Arc<Shared>,
    entries: Keys,
}

impl Guard {
    /// Releases the locks now (the same as dropping the guard).
    pub fn release(self) {}

    /// How many locks this guard holds (one per requested pattern).
    pub fn len(&self) -> usize {
        self.entries.as_slice().len()
    }

    /// Whether the guard holds nothing (an empty request).
    pub fn is_empty(&self) -> bool {
        self.entries.as_slice().is_empty()
    }
}

impl fmt::Debug for Guard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guard")
            .field("locks", &self.entries.as_slice().len())
            .finish()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if !self.entries.as_slice().is_empty() {
            self.shared.with(|s| s.release(self.entries.as_slice()));
        }
    }
}

/// The future of [`Owner::acquire`].
#[must_use = "futures do nothing unless polled"]
pub struct Acquire<'a> {
    owner: &'a Owner,
    requests: Vec<(Pattern, Mode)>,
    /// Our place in the queue once queued.
    seq: Option<u64>,
    done: bool,
}

impl fmt::Debug for Acquire<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Acquire")
            .field("owner", &self.owner.name)
            .field("requests", &self.requests)
            .field("queued", &self.seq.is_some())
            .finish()
    }
}

impl Future for Acquire<'_> {
    type Output = Result<Guard, LockError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        assert!(!this.done, "Acquire polled after completion");
        let owner = this.owner;
        let result = owner.shared.with(|s| match this.seq {
            None => match s.request(owner.id, &this.requests, true) {
                Requested::Granted(keys) => Some(Ok(keys)),
                Requested::Failed(e) => Some(Err(e)),
                Requested::Queued(seq) => {
                    this.seq = Some(seq);
                    if let Some(w) = s.waits.get_mut(&seq) {
                        w.waker = Some(cx.waker().clone());
                    }
                    None
                }
            },
            Some(seq) => match s.outcomes.remove(&seq) {
                Some(outcome) => Some(outcome),
                None => {
                    if let Some(w) = s.waits.get_mut(&seq) {
                        match &mut w.waker {
                            Some(waker) if waker.will_wake(cx.waker()) => {}
                            slot => *slot = Some(cx.waker().clone()),
                        }
                    }
                    None
                }
            },
        });
        match result {
            None => Poll::Pending,
            Some(outcome) => {
                this.done = true;
                Poll::Ready(outcome.map(|keys| owner.guard(keys)))
            }
        }
    }
}

impl Acquire<'_> {
    /// Withdraws the request if it is still queued (or releases it if granted meanwhile).
    fn cancel(&mut self) {
        if let (Some(seq), false) = (self.seq, self.done) {
            self.done = true;
            self.owner.shared.with(|s| s.cancel(seq));
        }
    }
}

impl Drop for Acquire<'_> {
    fn drop(&mut self) {
        self.cancel();
    }
}

/// The future of [`Owner::acquire_timeout`].
#[must_use = "futures do nothing unless polled"]
#[derive(Debug)]
pub struct AcquireTimeout<'a> {
    acquire: Acquire<'a>,
    sleep: Sleep,
    timeout: Duration,
}

impl Future for AcquireTimeout<'_> {
    type Output = Result<Guard, LockError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        if let Poll::Ready(outcome) = Pin::new(&mut this.acquire).poll(cx) {
            return Poll::Ready(outcome);
        }
        if Pin::new(&mut this.sleep).poll(cx).is_pending() {
            return Poll::Pending;
        }
        let requests = this.acquire.requests.clone();
        this.acquire.cancel();
        Poll::Ready(Err(LockError::Timeout {
            owner: this.acquire.owner.name.to_string(),
            requests,
            timeout: this.timeout,
        }))
    }
}

#[cfg(test)]
mod tests;

impl Snapshot {
    fn of(state: &State) -> Snapshot {
        let name = |id: u64| state.owner_name(id);
        let mut owners: Vec<crate::OwnerInfo> = state
            .owners
            .iter()
            .map(|(&id, o)| crate::OwnerInfo {
                id,
                name: o.name.to_string(),
                priority: o.priority,
            })
            .collect();
        owners.sort_by_key(|o| o.id);
        let holders = state
            .entries
            .iter()
            .flatten()
            .map(|e| crate::Held {
                owner: e.owner,
                owner_name: name(e.owner),
                pattern: e.pattern.clone(),
                mode: e.mode,
            })
            .collect();
        let mut waiters = Vec::new();
        let mut edges = Vec::new();
        let mut queue: Vec<(&u64, &state::Wait)> = state.waits.iter().collect();
        queue.sort_by_key(|(seq, _)| **seq);
        for (_, w) in queue {
            let mut waits_for = w.blockers.clone();
            waits_for.sort_unstable();
            edges.extend(waits_for.iter().map(|&holder| crate::WaitFor {
                waiter: w.owner,
                holder,
            }));
            waiters.push(crate::Waiting {
                owner: w.owner,
                owner_name: name(w.owner),
                requests: w.items.clone(),
                waits_for,
            });
        }
        Snapshot {
            owners,
            holders,
            waiters,
            edges,
        }
    }
}
