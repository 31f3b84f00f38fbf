//! Live state: a state folded from the event stream, and subscriptions that start with it.

use std::fmt;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::bus::{Bus, Subscription};

/// A state that events update, such as "which tasks run now, which are done".
pub trait Apply<E> {
    /// Updates the state with one event.
    fn apply(&mut self, event: &E);
}

/// A state kept current with every event published through it, for late subscribers.
///
/// A subscriber that attaches mid-run (a UI) calls [`subscribe`](Live::subscribe) and gets the
/// state now plus a subscription to every later event: the snapshot followed by the
/// subscription's events is exactly the full stream, with no gap and no duplicate (unless the
/// subscriber then falls behind and receives [`Delivery::Lagged`](crate::Delivery::Lagged);
/// it should then subscribe again).
///
/// `Live` is a cheap handle: clones share the state and the bus. Publish through it, not
/// directly on the [`bus`](Live::bus), or the state will miss those events.
pub struct Live<S, E> {
    state: Arc<Mutex<S>>,
    bus: Bus<E>,
}

impl<S, E> Live<S, E>
where
    S: Apply<E> + Clone,
    E: Clone + Send + Sync + 'static,
{
    /// Starts from `state`, publishing on a new bus of `capacity` (see [`Bus::new`]).
    #[must_use]
    pub fn new(state: S, capacity: usize) -> Self {
        Live::with_bus(state, Bus::new(capacity))
    }

    /// Starts from `state`, publishing on `bus`.
    #[must_use]
    pub fn with_bus(state: S, bus: Bus<E>) -> Self {
        Live {
            state: Arc::new(Mutex::new(state)),
            bus,
        }
    }

    /// Applies `event` to the state and publishes it, as one step: no subscriber can see the
    /// state with the event but the stream without it, or the other way round.
    ///
    /// Never blocks on a subscriber (see [`Bus::publish`]); it waits only for other
    /// publishers and snapshots, each of which holds the state's lock for one `apply` or one
    /// clone.
    pub fn publish(&self, event: E) {
        let mut state = self.state.lock();
        state.apply(&event);
        self.bus.publish(event);
    }

    /// The state now and a subscription to every event after it.
    pub fn subscribe(&self) -> (S, Subscription<E>) {
        // Subscribing while holding the lock is what makes the cut exact: every event is
        // either applied to this snapshot or published after the subscription exists.
        let state = self.state.lock();
        let subscription = self.bus.subscribe();
        (state.clone(), subscription)
    }

    /// The state now and a subscription to the later events that `filter` accepts.
    pub fn subscribe_filtered(
        &self,
        filter: impl Fn(&E) -> bool + Send + Sync + 'static,
    ) -> (S, Subscription<E>) {
        let state = self.state.lock();
        let subscription = self.bus.subscribe_filtered(filter);
        (state.clone(), subscription)
    }

    /// A copy of the state now.
    #[must_use]
    pub fn snapshot(&self) -> S {
        self.state.lock().clone()
    }

    /// Runs `f` on the state without copying it; keep `f` short, publishers wait for it.
    pub fn with_state<R>(&self, f: impl FnOnce(&S) -> R) -> R {
        f(&self.state.lock())
    }

    /// The bus the events go out on, for subscribers that do not need the state.
    #[must_use]
    pub fn bus(&self) -> &Bus<E> {
        &self.bus
    }
}

impl<S, E> Clone for Live<S, E> {
    fn clone(&self) -> Self {
        Live {
            state: Arc::clone(&self.state),
            bus: self.bus.clone(),
        }
    }
}

impl<S: fmt::Debug, E> fmt::Debug for Live<S, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Live")
            .field("state", &*self.state.lock())
            .field("bus", &self.bus)
            .finish()
    }
}
