//! Criterion bench of forge-locks, with `parking_lot::RwLock` (and a `Mutex<HashMap>` path
//! table) measured in the same run as the floor.
//!
//! - `locks/uncontended/*`: one acquire + release with nothing else in the table:
//!   `parking_lot_rwlock` (a write lock on one `RwLock<()>`, the floor), `mutex_hashmap` (insert
//!   and remove a path in a `Mutex<HashMap<String, u64>>`, the simplest path table), and
//!   forge's `try_acquire` + drop of a literal path and of a `**` glob.
//! - `locks/held_10k/*`: the same forge acquires while another owner holds 10,000 locks on
//!   disjoint prefixes (`d0/f` .. `d9999/f`, half of them globs).
//! - `locks/deadlock/chain/N`: N owners each hold one lock and wait for the next one's; the
//!   measured request closes the cycle, is found to be the victim, and returns the `Deadlock`
//!   error (cycle search over N owners plus the report naming all N steps). The table is the
//!   same before and after, so every iteration measures the same check.
//! - `locks/deadlock/queue/1000`: 1,000 waiters queued behind one holder; the measured
//!   request queues behind them (the wait-for search runs and finds no cycle) and is
//!   withdrawn.
//!
//! Method and figures: benches/README.md, section "locks".

#![forbid(unsafe_code)]
#![allow(
    missing_docs,
    reason = "criterion_main! generates an undocumented main"
)]

use std::collections::HashMap;
use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::task::{Context, Poll};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, criterion_group, criterion_main};
use forge_core::locks::{Acquire, Guard, LockError, LockTable, Mode, Owner, Pattern};
use parking_lot::{Mutex, RwLock};

fn p(s: &str) -> Pattern {
    Pattern::parse(s).expect("valid bench pattern")
}

fn poll_once<F: Future + Unpin>(fut: &mut F) -> Poll<F::Output> {
    let mut cx = Context::from_waker(std::task::Waker::noop());
    Pin::new(fut).poll(&mut cx)
}

/// Starts `owners[i]`'s acquire of `requests[i]` for every owner; each must queue.
fn queue<'a>(owners: &'a [Owner], requests: &'a [[(Pattern, Mode); 1]]) -> Vec<Acquire<'a>> {
    owners
        .iter()
        .zip(requests)
        .map(|(o, r)| {
            let mut fut = o.acquire(r);
            assert!(poll_once(&mut fut).is_pending());
            fut
        })
        .collect()
}

fn bench_uncontended(c: &mut Criterion) {
    let mut group = c.benchmark_group("locks/uncontended");
    let rwlock = RwLock::new(());
    group.bench_function("parking_lot_rwlock", |b| {
        b.iter(|| drop(black_box(rwlock.write())));
    });
    let table: Mutex<HashMap<String, u64>> = Mutex::new(HashMap::new());
    group.bench_function("mutex_hashmap", |b| {
        b.iter(|| {
            let path = black_box("src/api/login.rs");
            table.lock().insert(path.to_owned(), 1);
            table.lock().remove(path);
        });
    });
    let locks = LockTable::default();
    bench_forge_acquires(&mut group, &locks.owner("bench", 0));
    group.finish();
}

/// Benches `owner`'s `try_acquire` + drop of a one-pattern write request, for a literal path
/// (`forge_literal`) and for a glob (`forge_glob`); neither may conflict with the table.
fn bench_forge_acquires(group: &mut BenchmarkGroup<'_, WallTime>, owner: &Owner) {
    for (name, pattern) in [
        ("forge_literal", "src/api/login.rs"),
        ("forge_glob", "src/api/**"),
    ] {
        let request = [(p(pattern), Mode::Write)];
        group.bench_function(name, |b| {
            b.iter(|| drop(black_box(owner.try_acquire(&request).expect("no conflict"))));
        });
    }
}

fn bench_held(c: &mut Criterion) {
    let mut group = c.benchmark_group("locks/held_10k");
    let locks = LockTable::default();
    let holder = locks.owner("holder", 0);
    let held: Vec<Guard> = (0..10_000)
        .map(|i| {
            let pattern = if i % 2 == 0 {
                format!("d{i}/f")
            } else {
                format!("d{i}/**/*.rs")
            };
            holder
                .try_acquire(&[(p(&pattern), Mode::Write)])
                .expect("disjoint")
        })
        .collect();
    bench_forge_acquires(&mut group, &locks.owner("bench", 0));
    group.finish();
    drop(held);
}

/// N owners in a chain: owner i holds `n{i}` and waits for `n{i+1}`; the last one's request
/// for `n0` closes the cycle. The closing owner has the lowest priority, so it is the victim.
fn bench_deadlock(c: &mut Criterion) {
    let mut group = c.benchmark_group("locks/deadlock");
    for n in [64usize, 1000] {
        let locks = LockTable::default();
        let owners: Vec<Owner> = (0..n)
            .map(|i| locks.owner(format!("agent{i}"), if i == n - 1 { 0 } else { 1 }))
            .collect();
        let guards: Vec<Guard> = owners
            .iter()
            .enumerate()
            .map(|(i, o)| {
                o.try_acquire(&[(p(&format!("n{i}")), Mode::Write)])
                    .expect("free")
            })
            .collect();
        let requests: Vec<[(Pattern, Mode); 1]> = (0..n)
            .map(|i| [(p(&format!("n{}", (i + 1) % n)), Mode::Write)])
            .collect();
        let mut waits = queue(&owners[..n - 1], &requests);
        let closer = &owners[n - 1];
        let closing = &requests[n - 1];
        group.bench_function(BenchmarkId::new("chain", n), |b| {
            b.iter(|| {
                let mut fut = closer.acquire(closing);
                match poll_once(&mut fut) {
                    Poll::Ready(Err(LockError::Deadlock(d))) => black_box(d),
                    _ => panic!("the closing request is the victim"),
                };
            });
        });
        for w in &mut waits {
            assert!(poll_once(w).is_pending(), "nobody else was hurt");
        }
        drop(waits);
        drop(guards);
    }
    // 1,000 waiters queued behind one holder; one more queues (no cycle) and withdraws.
    let locks = LockTable::default();
    let holder = locks.owner("holder", 0);
    let guard = holder
        .try_acquire(&[(p("src"), Mode::Write)])
        .expect("free");
    let owners: Vec<Owner> = (0..1000).map(|i| locks.owner(format!("w{i}"), 0)).collect();
    let requests: Vec<[(Pattern, Mode); 1]> = (0..1000)
        .map(|i| [(p(&format!("src/f{i}")), Mode::Write)])
        .collect();
    let waits = queue(&owners, &requests);
    let late = locks.owner("late", 0);
    let request = [(p("src/**"), Mode::Read)];
    group.bench_function(BenchmarkId::new("queue", 1000), |b| {
        b.iter(|| {
            let mut fut = late.acquire(&request);
            assert!(poll_once(&mut fut).is_pending());
            drop(fut);
        });
    });
    drop(waits);
    drop(guard);
    group.finish();
}

criterion_group!(benches, bench_uncontended, bench_held, bench_deadlock);
criterion_main!(benches);
