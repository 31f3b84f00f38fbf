//! The event bus: many publishers, many subscribers, lag notices instead of back-pressure.
//!
//! Built on [`tokio::sync::broadcast`]: one bounded ring shared by every subscriber. A publisher
//! writes into the ring and never waits; a subscriber that falls more than `capacity` events
//! behind loses the oldest ones and is told so with [`Delivery::Lagged`].

use std::fmt;
use std::future::Future as _;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::Stream;
use futures::stream::FusedStream;
use tokio::sync::broadcast;
use tokio_util::sync::ReusableBoxFuture;

/// How many events a [`Bus`] made with [`Default`] keeps for a subscriber that falls behind.
pub const DEFAULT_CAPACITY: usize = 4096;

/// How many events a filtered subscription skips in one poll before it yields to the runtime,
/// so that a filter that rejects a busy stream cannot starve the other tasks of its thread.
const FILTER_BUDGET: usize = 256;

/// A many-to-many event bus whose publishers never wait for subscribers.
///
/// `Bus` is a cheap handle: clone it to give every publisher its own. Each subscriber gets
/// every event published after it subscribed, in publishing order (so the order of each
/// publisher is preserved), unless it falls more than [`capacity`](Bus::capacity) events
/// behind: then it skips the oldest events and receives one [`Delivery::Lagged`] saying how
/// many it missed. A slow subscriber therefore never slows a publisher.
///
/// When every `Bus` handle is dropped, subscriptions drain what is left and then end.
pub struct Bus<E> {
    sender: broadcast::Sender<E>,
    /// The ring size, as tokio rounds it (up to a power of two).
    capacity: usize,
}

impl<E: Clone + Send + Sync + 'static> Bus<E> {
    /// A bus that keeps up to `capacity` events for each subscriber that falls behind.
    ///
    /// The capacity is rounded up to a power of two (as tokio does), and 0 is treated as 1.
    /// The ring is allocated at once (one slot per event kept), so choose thousands, not
    /// billions.
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        // tokio's own limit is usize::MAX / 2; no real bus comes near it.
        let capacity = capacity.clamp(1, usize::MAX / 2);
        let (sender, _) = broadcast::channel(capacity);
        Bus {
            sender,
            capacity: capacity.next_power_of_two(),
        }
    }

    /// Publishes `event` to every current subscriber and returns how many there were.
    ///
    /// Never blocks on a subscriber and never awaits: a subscriber that is more than
    /// [`capacity`](Bus::capacity) events behind loses its oldest event instead. With no
    /// subscriber the event is dropped and 0 is returned.
    pub fn publish(&self, event: E) -> usize {
        self.sender.send(event).unwrap_or(0)
    }

    /// A subscription to every event published from now on.
    pub fn subscribe(&self) -> Subscription<E> {
        Subscription::new(self.sender.subscribe(), None)
    }

    /// A subscription to the events published from now on for which `filter` returns `true`.
    ///
    /// The filter runs on the subscriber's side, so it costs publishers nothing. A
    /// [`Delivery::Lagged`] notice counts every missed event, including those the filter would
    /// have rejected.
    pub fn subscribe_filtered(
        &self,
        filter: impl Fn(&E) -> bool + Send + Sync + 'static,
    ) -> Subscription<E> {
        Subscription::new(self.sender.subscribe(), Some(Arc::new(filter)))
    }

    /// How many subscriptions are alive.
    #[must_use]
    pub fn subscriber_count(&self) -> usize {
        self.sender.receiver_count()
    }

    /// How many published events the slowest subscriber has not received yet (at most
    /// [`capacity`](Bus::capacity): beyond it, a publish evicts the oldest). Publishers of
    /// low-value events (log lines) can shed them while the backlog is high, so that a flood
    /// never evicts the events that matter.
    #[must_use]
    pub fn backlog(&self) -> usize {
        self.sender.len()
    }

    /// The ring size: how far a subscriber may fall behind before it lags.
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

impl<E: Clone + Send + Sync + 'static> Default for Bus<E> {
    /// A bus with [`DEFAULT_CAPACITY`].
    fn default() -> Self {
        Bus::new(DEFAULT_CAPACITY)
    }
}

impl<E> Clone for Bus<E> {
    fn clone(&self) -> Self {
        Bus {
            sender: self.sender.clone(),
            capacity: self.capacity,
        }
    }
}

impl<E> fmt::Debug for Bus<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bus")
            .field("subscribers", &self.sender.receiver_count())
            .finish_non_exhaustive()
    }
}

/// What a [`Subscription`] yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery<E> {
    /// The next event.
    Event(E),
    /// The subscriber fell behind and missed this many events; delivery resumes with the
    /// oldest event still kept.
    Lagged(u64),
}

/// Why [`Subscription::try_recv`] returned no delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TryRecvError {
    /// Nothing is waiting now; a later call may succeed.
    #[error("no event is waiting on the bus")]
    Empty,
    /// Every publisher is gone and every kept event was delivered.
    #[error("the bus is closed")]
    Closed,
}

type Filter<E> = Arc<dyn Fn(&E) -> bool + Send + Sync>;
type RecvResult<E> = Result<E, broadcast::error::RecvError>;

/// One subscriber's view of a [`Bus`]: a [`Stream`] of [`Delivery`] items.
///
/// Use it as a stream, or call [`recv`](Subscription::recv) and
/// [`try_recv`](Subscription::try_recv). The stream ends when every [`Bus`] handle is dropped
/// and the remaining events are delivered.
#[must_use = "a subscription does nothing unless polled"]
pub struct Subscription<E> {
    /// The next receive, owning the receiver so that a wait survives between polls; `None`
    /// once the bus is closed and drained. The box is allocated once and reused for every
    /// receive, and a receive that finds its event in the ring takes no lock but the slot's.
    next: Option<ReusableBoxFuture<'static, (RecvResult<E>, broadcast::Receiver<E>)>>,
    filter: Option<Filter<E>>,
}

/// Receives one event with a receiver it owns, and hands the receiver back.
async fn recv_owned<E: Clone>(
    mut receiver: broadcast::Receiver<E>,
) -> (RecvResult<E>, broadcast::Receiver<E>) {
    let result = receiver.recv().await;
    (result, receiver)
}

impl<E: Clone + Send + 'static> Subscription<E> {
    fn new(receiver: broadcast::Receiver<E>, filter: Option<Filter<E>>) -> Self {
        Subscription {
            next: Some(ReusableBoxFuture::new(recv_owned(receiver))),
            filter,
        }
    }

    /// Waits for the next delivery; `None` once the bus is closed and drained.
    ///
    /// Cancel-safe: the pending receive lives in the subscription, not in the returned future,
    /// so dropping that future (a lost `tokio::select!` branch) loses no event.
    pub async fn recv(&mut self) -> Option<Delivery<E>> {
        futures::future::poll_fn(|cx| self.poll_delivery(cx, FILTER_BUDGET)).await
    }

    /// The next delivery if one is waiting, without blocking or awaiting.
    ///
    /// # Errors
    ///
    /// [`TryRecvError::Empty`] when nothing is waiting and [`TryRecvError::Closed`] when the
    /// bus is closed and drained.
    pub fn try_recv(&mut self) -> Result<Delivery<E>, TryRecvError> {
        let mut cx = Context::from_waker(futures::task::noop_waker_ref());
        // No budget: this call is synchronous, so skipping filtered events starves nobody.
        // Nor tokio's: inside a task, its cooperative budget would make the receive report
        // `Pending` after ~128 events though more are waiting.
        let poll = {
            let receive = futures::future::poll_fn(|cx| self.poll_delivery(cx, usize::MAX));
            let mut receive = std::pin::pin!(tokio::task::coop::unconstrained(receive));
            receive.as_mut().poll(&mut cx)
        };
        match poll {
            Poll::Ready(Some(delivery)) => Ok(delivery),
            Poll::Ready(None) => Err(TryRecvError::Closed),
            Poll::Pending => Err(TryRecvError::Empty),
        }
    }

    fn poll_delivery(&mut self, cx: &mut Context<'_>, budget: usize) -> Poll<Option<Delivery<E>>> {
        for _ in 0..budget {
            let Some(next) = &mut self.next else {
                return Poll::Ready(None);
            };
            let (result, receiver) = std::task::ready!(next.poll(cx));
            let delivery = match result {
                Ok(event) if self.filter.as_ref().is_none_or(|filter| filter(&event)) => {
                    Delivery::Event(event)
                }
                Ok(_) => {
                    next.set(recv_owned(receiver));
                    continue;
                }
                Err(broadcast::error::RecvError::Lagged(n)) => Delivery::Lagged(n),
                Err(broadcast::error::RecvError::Closed) => {
                    self.next = None;
                    return Poll::Ready(None);
                }
            };
            // Arm the next receive now; it runs at the next poll.
            next.set(recv_owned(receiver));
            return Poll::Ready(Some(delivery));
        }
        // The filter rejected a long run of events: let other tasks run, then continue.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl<E: Clone + Send + 'static> Stream for Subscription<E> {
    type Item = Delivery<E>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_delivery(cx, FILTER_BUDGET)
    }
}

impl<E: Clone + Send + 'static> FusedStream for Subscription<E> {
    fn is_terminated(&self) -> bool {
        self.next.is_none()
    }
}

impl<E> fmt::Debug for Subscription<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("closed", &self.next.is_none())
            .field("filtered", &self.filter.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests;
