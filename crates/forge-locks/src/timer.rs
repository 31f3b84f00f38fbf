//! A runtime-independent sleep for `acquire_timeout`: one lazily started thread keeps the
//! deadlines in a heap and wakes the futures whose deadline has passed.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use parking_lot::{Condvar, Mutex};

struct Timer {
    state: Mutex<TimerState>,
    changed: Condvar,
}

#[derive(Default)]
struct TimerState {
    deadlines: BinaryHeap<Reverse<(Instant, u64)>>,
    wakers: HashMap<u64, Waker>,
    next_id: u64,
}

fn timer() -> &'static Timer {
    static TIMER: OnceLock<Timer> = OnceLock::new();
    TIMER.get_or_init(|| {
        std::thread::Builder::new()
            .name("forge-locks-timer".to_owned())
            .spawn(run)
            .expect("spawning the forge-locks timer thread");
        Timer {
            state: Mutex::new(TimerState::default()),
            changed: Condvar::new(),
        }
    })
}

fn run() {
    let timer = timer();
    let mut due: Vec<Waker> = Vec::new();
    let mut state = timer.state.lock();
    loop {
        let now = Instant::now();
        while let Some(&Reverse((deadline, id))) = state.deadlines.peek() {
            if deadline > now {
                break;
            }
            state.deadlines.pop();
            due.extend(state.wakers.remove(&id));
        }
        if !due.is_empty() {
            // Wake outside the lock: a woken future may register again at once.
            drop(state);
            due.drain(..).for_each(Waker::wake);
            state = timer.state.lock();
            continue;
        }
        match state.deadlines.peek() {
            Some(&Reverse((deadline, _))) => {
                timer.changed.wait_until(&mut state, deadline);
            }
            None => timer.changed.wait(&mut state),
        }
    }
}

/// Completes at `deadline`.
#[derive(Debug)]
pub(crate) struct Sleep {
    deadline: Instant,
    id: Option<u64>,
}

impl Sleep {
    pub(crate) fn until(deadline: Instant) -> Sleep {
        Sleep { deadline, id: None }
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.deadline {
            self.deregister();
            return Poll::Ready(());
        }
        let timer = timer();
        let mut state = timer.state.lock();
        match self.id {
            Some(id) => {
                state.wakers.insert(id, cx.waker().clone());
            }
            None => {
                let id = state.next_id;
                state.next_id += 1;
                state.wakers.insert(id, cx.waker().clone());
                state.deadlines.push(Reverse((self.deadline, id)));
                self.id = Some(id);
                timer.changed.notify_one();
            }
        }
        Poll::Pending
    }
}

impl Sleep {
    fn deregister(&mut self) {
        if let Some(id) = self.id.take() {
            // The heap entry stays until it is due; without a waker it wakes nobody.
            timer().state.lock().wakers.remove(&id);
        }
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        self.deregister();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn sleeps_at_least_until_the_deadline() {
        let start = Instant::now();
        futures::executor::block_on(Sleep::until(start + Duration::from_millis(30)));
        assert!(start.elapsed() >= Duration::from_millis(30));
    }
}
