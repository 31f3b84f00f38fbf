//! The async API on a real multi-threaded runtime (tokio here; the crate depends on none):
//! waits wake up, timeouts and dropped futures leave no trace.

use std::time::Duration;

use forge_locks::{LockError, LockTable, Mode};

use crate::p;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_wake_in_order_and_cancelled_ones_vanish() {
    let table = LockTable::default();
    let first = table.owner("first", 0);
    let held = first
        .acquire(&[(p("src"), Mode::Write)])
        .await
        .expect("free");
    let mut tasks = Vec::new();
    for i in 0..8 {
        let table = table.clone();
        tasks.push(tokio::spawn(async move {
            let owner = table.owner(format!("t{i}"), 0);
            let fut = owner.acquire(&[(p(&format!("src/f{}", i % 3)), Mode::Write)]);
            if i % 2 == 0 {
                // Cancelled while waiting: must leave no trace.
                tokio::time::timeout(Duration::from_millis(30), fut)
                    .await
                    .is_ok()
            } else {
                let guard = fut.await.expect("granted once released");
                tokio::time::sleep(Duration::from_millis(1)).await;
                drop(guard);
                true
            }
        }));
    }
    // Hold the lock until all eight wait, then until the four impatient ones have given up
    // (their dropped futures must leave the queue), then release.
    wait_for_waiters(&table, 8).await;
    wait_for_waiters(&table, 4).await;
    drop(held);
    let mut granted = Vec::new();
    for t in tasks {
        granted.push(t.await.expect("task"));
    }
    assert_eq!(
        granted,
        [false, true, false, true, false, true, false, true]
    );
    let snap = table.snapshot();
    assert!(
        snap.holders.is_empty() && snap.waiters.is_empty(),
        "{snap:?}"
    );
}

/// Waits (up to 20 s) until exactly `n` requests are queued.
async fn wait_for_waiters(table: &LockTable, n: usize) {
    for _ in 0..20_000 {
        if table.snapshot().waiters.len() == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("expected {n} waiters, have {:?}", table.snapshot().waiters);
}

#[tokio::test]
async fn acquire_timeout_on_a_current_thread_runtime() {
    let table = LockTable::default();
    let a = table.owner("a", 0);
    let b = table.owner("b", 0);
    let _held = a.acquire(&[(p("x/**"), Mode::Read)]).await.expect("free");
    let err = b
        .acquire_timeout(&[(p("x/y"), Mode::Write)], Duration::from_millis(10))
        .await
        .expect_err("x/y is read-locked");
    assert!(matches!(err, LockError::Timeout { .. }), "{err}");
    let ok = b
        .acquire_timeout(&[(p("x/y"), Mode::Read)], Duration::from_millis(10))
        .await;
    assert!(ok.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_deadlock_between_tasks_is_reported() {
    let table = LockTable::default();
    let (a, b) = (table.owner("a", 1), table.owner("b", 0));
    let ga = a.acquire(&[(p("src/a"), Mode::Write)]).await.expect("free");
    let gb = b.acquire(&[(p("src/b"), Mode::Write)]).await.expect("free");
    let (ra, rb) = tokio::join!(
        async {
            let r = a.acquire(&[(p("src/b"), Mode::Write)]).await;
            r.map(drop)
        },
        async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            let r = b.acquire(&[(p("src/*"), Mode::Write)]).await;
            // The victim releases what it holds, so the other side proceeds.
            drop(gb);
            r.map(drop)
        },
    );
    let err = rb.expect_err("b is the victim (lower priority)");
    let text = err.to_string();
    assert!(text.starts_with("deadlock: "), "{text}");
    assert!(
        text.contains("task b (writes src/*) waits for task a (writes src/a)"),
        "{text}"
    );
    assert!(
        text.contains("task a (writes src/b) waits for task b (writes src/b)"),
        "{text}"
    );
    ra.expect("a proceeds");
    drop(ga);
}
