//! Unit tests of the lock table's rules: conflicts, re-entrancy, upgrades, fairness,
//! deadlock detection and cancel safety.

use std::task::Poll;

use super::*;

fn p(s: &str) -> Pattern {
    Pattern::parse(s).expect("valid pattern")
}

fn w(s: &str) -> (Pattern, Mode) {
    (p(s), Mode::Write)
}

fn r(s: &str) -> (Pattern, Mode) {
    (p(s), Mode::Read)
}

fn poll<F: Future + Unpin>(fut: &mut F) -> Poll<F::Output> {
    let mut cx = Context::from_waker(futures::task::noop_waker_ref());
    Pin::new(fut).poll(&mut cx)
}

fn granted(poll: Poll<Result<Guard, LockError>>) -> Guard {
    match poll {
        Poll::Ready(Ok(g)) => g,
        Poll::Ready(Err(e)) => panic!("expected a grant, got {e}"),
        Poll::Pending => panic!("expected a grant, still waiting"),
    }
}

#[test]
fn conflicts_follow_overlap_and_modes() {
    let table = LockTable::default();
    let a = table.owner("a", 0);
    let b = table.owner("b", 0);
    let _ga = a
        .try_acquire(&[w("src/api/**"), r("Cargo.toml")])
        .expect("free");
    assert!(b.try_acquire(&[r("src/api/x.rs")]).is_err());
    assert!(b.try_acquire(&[w("src/api")]).is_err());
    assert!(b.try_acquire(&[w("src/*.rs")]).is_ok());
    assert!(b.try_acquire(&[r("Cargo.toml")]).is_ok());
    assert!(b.try_acquire(&[w("Cargo.toml")]).is_err());
    assert!(b.try_acquire(&[w("**/*.toml")]).is_err());
    assert!(b.try_acquire(&[w("docs/**")]).is_ok());
    let err = b.try_acquire(&[w("src")]).expect_err("conflicts");
    assert_eq!(
        err.to_string(),
        "task b would block on writes src (held or queued by a)"
    );
}

#[test]
fn all_or_nothing() {
    let table = LockTable::default();
    let a = table.owner("a", 0);
    let b = table.owner("b", 0);
    let _ga = a.try_acquire(&[w("x")]).expect("free");
    assert!(b.try_acquire(&[w("y"), w("x/1")]).is_err());
    // Nothing of the failed set is held.
    let _gy = a
        .try_acquire(&[w("y")])
        .expect("nothing of b's set is held");
    assert_eq!(table.snapshot().holders.len(), 2);
}

#[test]
fn reentrant_even_behind_a_queued_writer() {
    let table = LockTable::default();
    let a = table.owner("a", 0);
    let b = table.owner("b", 0);
    let _ga = a.try_acquire(&[r("src")]).expect("free");
    let mut fb = b.acquire(&[w("src/x")]);
    assert!(poll(&mut fb).is_pending());
    // `a` asks for what it holds (and for part of it): granted at once.
    let _again = a.try_acquire(&[r("src")]).expect("re-entrant");
    let _part = a
        .try_acquire(&[r("src/y")])
        .expect("covered by the held read");
}

#[test]
fn lone_reader_upgrades_past_a_queued_writer() {
    let table = LockTable::default();
    let a = table.owner("a", 0);
    let b = table.owner("b", 0);
    let read = a.try_acquire(&[r("src/x")]).expect("free");
    let mut fb = b.acquire(&[w("src/x")]);
    assert!(poll(&mut fb).is_pending());
    // The queued writer waits for `a` anyway, so `a`'s upgrade passes it.
    let write = a.try_acquire(&[w("src/x")]).expect("upgrade");
    drop(read);
    assert!(poll(&mut fb).is_pending());
    drop(write);
    let _gb = granted(poll(&mut fb));
}

#[test]
fn two_readers_upgrading_is_a_reported_deadlock() {
    let table = LockTable::default();
    let a = table.owner("a", 1);
    let b = table.owner("b", 0);
    let _ra = a.try_acquire(&[r("f")]).expect("free");
    let _rb = b.try_acquire(&[r("f")]).expect("shared");
    let mut ua = a.acquire(&[w("f")]);
    assert!(poll(&mut ua).is_pending());
    let mut ub = b.acquire(&[w("f")]);
    match poll(&mut ub) {
        Poll::Ready(Err(LockError::Deadlock(d))) => {
            assert_eq!(&*d.victim, "b");
            assert_eq!(
                d.to_string(),
                "deadlock: task b (writes f) waits for task a (reads f), \
                 task a (writes f) waits for task b (reads f); victim: task b"
            );
        }
        other => panic!(
            "expected a deadlock, got {:?}",
            other.map(|r| r.map(|_| ()))
        ),
    }
    drop(ub);
    drop(_rb);
    let _wa = granted(poll(&mut ua));
}

#[test]
fn victim_is_lowest_priority_then_youngest() {
    let table = LockTable::default();
    let old = table.owner("old", 0);
    let young = table.owner("young", 0);
    let _g1 = old.try_acquire(&[w("a")]).expect("free");
    let _g2 = young.try_acquire(&[w("b")]).expect("free");
    let mut f_young = young.acquire(&[w("a")]);
    assert!(poll(&mut f_young).is_pending());
    let mut f_old = old.acquire(&[w("b")]);
    // `old` closes the cycle, but `young` is the victim: its pending acquire fails.
    assert!(poll(&mut f_old).is_pending());
    assert!(matches!(
        poll(&mut f_young),
        Poll::Ready(Err(LockError::Deadlock(_)))
    ));
    drop(_g2);
    let _gb = granted(poll(&mut f_old));
}

#[test]
fn writer_is_not_starved_by_later_readers() {
    let table = LockTable::default();
    let reader = table.owner("reader", 0);
    let writer = table.owner("writer", 0);
    let late = table.owner("late", 0);
    let first = reader.try_acquire(&[r("data")]).expect("free");
    let mut fw = writer.acquire(&[w("data")]);
    assert!(poll(&mut fw).is_pending());
    // A later reader queues behind the writer instead of joining the first reader.
    assert!(late.try_acquire(&[r("data")]).is_err());
    let mut fl = late.acquire(&[r("data/x")]);
    assert!(poll(&mut fl).is_pending());
    drop(first);
    let gw = granted(poll(&mut fw));
    assert!(poll(&mut fl).is_pending());
    drop(gw);
    let _gl = granted(poll(&mut fl));
}

#[test]
fn dropped_waiting_future_leaves_no_trace() {
    let table = LockTable::default();
    let a = table.owner("a", 0);
    let b = table.owner("b", 0);
    let c = table.owner("c", 0);
    let ga = a.try_acquire(&[w("x")]).expect("free");
    {
        let mut fb = b.acquire(&[w("x"), w("y")]);
        assert!(poll(&mut fb).is_pending());
        let snap = table.snapshot();
        assert_eq!(snap.waiters.len(), 1);
        assert_eq!(
            snap.edges,
            vec![crate::WaitFor {
                waiter: b.id(),
                holder: a.id()
            }]
        );
    }
    let snap = table.snapshot();
    assert!(snap.waiters.is_empty() && snap.edges.is_empty());
    assert_eq!(snap.holders.len(), 1);
    // `c` would have queued behind `b` for `y`; now it is free.
    let _gc = c.try_acquire(&[w("y")]).expect("no trace of b");
    drop(ga);
    let state = table.shared.lock();
    assert!(state.outcomes.is_empty());
}

#[test]
fn granted_but_uncollected_is_released_on_drop() {
    let table = LockTable::default();
    let a = table.owner("a", 0);
    let b = table.owner("b", 0);
    let ga = a.try_acquire(&[w("x")]).expect("free");
    let mut fb = b.acquire(&[w("x")]);
    assert!(poll(&mut fb).is_pending());
    drop(ga);
    // Granted inside the table, never polled again, then dropped.
    drop(fb);
    assert!(table.snapshot().holders.is_empty());
    assert!(a.try_acquire(&[w("x")]).is_ok());
}

#[test]
fn dropping_the_owner_releases_and_cancels() {
    let table = LockTable::default();
    let a = table.owner("a", 0);
    let b = table.owner("b", 0);
    let ga = a.try_acquire(&[w("x")]).expect("free");
    drop(a);
    // The guard outlives its owner: dropping it later is harmless.
    let gb = b.try_acquire(&[w("x")]).expect("released with the owner");
    drop(ga);
    assert_eq!(table.snapshot().holders.len(), 1);
    drop(gb);
    assert!(table.snapshot().holders.is_empty());
    assert_eq!(table.shared.lock().trie.live_nodes(), 1);
}

#[test]
fn timeout_gives_up_and_leaves_no_trace() {
    let table = LockTable::default();
    let a = table.owner("a", 0);
    let b = table.owner("b", 0);
    let _ga = a.try_acquire(&[w("x")]).expect("free");
    let err =
        futures::executor::block_on(b.acquire_timeout(&[w("x/y")], Duration::from_millis(20)))
            .expect_err("times out");
    assert!(
        err.to_string()
            .starts_with("task b timed out after 20ms waiting for writes x/y"),
        "{err}"
    );
    assert!(table.snapshot().waiters.is_empty());
}

#[test]
fn blocking_acquire_wakes_when_released() {
    let table = LockTable::default();
    let a = table.owner("a", 0);
    let ga = a.try_acquire(&[w("x")]).expect("free");
    let t2 = table.clone();
    let waiter = std::thread::spawn(move || {
        let b = t2.owner("b", 0);
        let g = b
            .acquire_blocking(&[w("x")])
            .expect("granted after release");
        g.len()
    });
    std::thread::sleep(Duration::from_millis(20));
    drop(ga);
    assert_eq!(waiter.join().expect("no panic"), 1);
}

#[test]
fn types_can_cross_threads() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<LockTable>();
    send_sync::<Owner>();
    send_sync::<Guard>();
    send_sync::<Pattern>();
    send_sync::<Snapshot>();
    send::<Acquire<'static>>();
    send::<AcquireTimeout<'static>>();
}

#[test]
fn snapshot_explains_a_wait() {
    let table = LockTable::default();
    let a = table.owner("a", 3);
    let b = table.owner("b", 0);
    let _ga = a.try_acquire(&[w("src/api/**"), r("docs")]).expect("free");
    let mut fb = b.acquire(&[w("src/api/x.rs"), r("docs/y")]);
    assert!(poll(&mut fb).is_pending());
    let snap = table.snapshot();
    assert_eq!(snap.owners.len(), 2);
    assert_eq!(snap.owners[0].priority, 3);
    assert_eq!(snap.holders.len(), 2);
    assert_eq!(snap.waiters[0].owner_name, "b");
    assert_eq!(snap.waiters[0].waits_for, vec![a.id()]);
    let why = snap.conflicting(&p("src/api/x.rs"), Mode::Write);
    assert_eq!(why.len(), 1);
    assert_eq!(why[0].pattern.as_str(), "src/api/**");
    assert!(snap.conflicting(&p("docs/y"), Mode::Read).is_empty());
}
