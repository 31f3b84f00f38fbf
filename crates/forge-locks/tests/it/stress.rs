//! Threads take random declared sets and then random incremental locks, which can deadlock.
//! A shadow map of sample paths checks that no two owners ever hold conflicting locks, and a
//! watchdog fails the test if progress stops without a reported deadlock (a lost wake-up).
//! `FORGE_SOAK=1` runs it fifty times longer.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use forge_locks::{Guard, LockError, LockTable, Mode, Pattern};
use parking_lot::Mutex;

use crate::p;

const POOL: &[&str] = &[
    "src",
    "src/a",
    "src/a/x",
    "src/*",
    "src/**",
    "src/b",
    "docs",
    "docs/*.md",
    "**/*.md",
    "Cargo.toml",
    "*",
    "src/{a,b}/x",
];
const SAMPLES: &[&str] = &[
    "src",
    "src/a",
    "src/a/x",
    "src/b",
    "src/b/x",
    "src/c.md",
    "docs",
    "docs/r.md",
    "x.md",
    "Cargo.toml",
];

/// Which owners hold which sample paths, in which mode.
type Shadow = Mutex<HashMap<&'static str, Vec<(u64, Mode)>>>;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).expect("small")
    }

    fn item(&mut self, patterns: &[Pattern]) -> (Pattern, Mode) {
        let mode = if self.next().is_multiple_of(3) {
            Mode::Read
        } else {
            Mode::Write
        };
        (patterns[self.below(patterns.len())].clone(), mode)
    }
}

fn enter(shadow: &Shadow, owner: u64, items: &[(Pattern, Mode)]) {
    let mut map = shadow.lock();
    for (pattern, mode) in items {
        for &path in SAMPLES.iter().filter(|s| pattern.covers(s)) {
            let holders = map.entry(path).or_default();
            for &(other, other_mode) in holders.iter() {
                assert!(
                    other == owner || (*mode == Mode::Read && other_mode == Mode::Read),
                    "owners {owner} and {other} both hold {path} ({mode} vs {other_mode})"
                );
            }
            holders.push((owner, *mode));
        }
    }
}

fn leave(shadow: &Shadow, owner: u64, items: &[(Pattern, Mode)]) {
    let mut map = shadow.lock();
    for (pattern, mode) in items {
        for &path in SAMPLES.iter().filter(|s| pattern.covers(s)) {
            let holders = map.get_mut(path).expect("entered before");
            let pos = holders
                .iter()
                .position(|h| *h == (owner, *mode))
                .expect("entered before");
            holders.swap_remove(pos);
        }
    }
}

fn worker(
    table: &LockTable,
    shadow: &Shadow,
    seed: u64,
    iterations: usize,
    progress: &AtomicU64,
    deadlocks: &AtomicU64,
) {
    let patterns: Vec<Pattern> = POOL.iter().map(|s| p(s)).collect();
    let mut rng = Rng(seed);
    for i in 0..iterations {
        let priority = i64::try_from(rng.next() % 3).expect("small");
        let owner = table.owner(format!("w{seed}-{i}"), priority);
        let mut held: Vec<(Guard, Vec<(Pattern, Mode)>)> = Vec::new();
        let n_declared = 1 + rng.below(2);
        let declared: Vec<(Pattern, Mode)> = (0..n_declared).map(|_| rng.item(&patterns)).collect();
        let mut requests = vec![declared];
        for _ in 0..rng.below(3) {
            requests.push(vec![rng.item(&patterns)]);
        }
        for request in requests {
            match owner.acquire_blocking(&request) {
                Ok(guard) => {
                    enter(shadow, owner.id(), &request);
                    held.push((guard, request));
                    std::thread::yield_now();
                }
                Err(LockError::Deadlock(_)) => {
                    deadlocks.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                Err(e) => panic!("unexpected error: {e}"),
            }
        }
        for (guard, request) in held.into_iter().rev() {
            leave(shadow, owner.id(), &request);
            drop(guard);
        }
        drop(owner);
        progress.fetch_add(1, Ordering::Relaxed);
    }
}

#[test]
fn every_stall_is_a_reported_deadlock() {
    let soak = std::env::var_os("FORGE_SOAK").is_some();
    let iterations = if soak { 10_000 } else { 100 };
    let table = LockTable::default();
    let shadow: Arc<Shadow> = Arc::default();
    let progress = Arc::new(AtomicU64::new(0));
    let deadlocks = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let (table, shadow, progress, deadlocks) = (
                table.clone(),
                shadow.clone(),
                progress.clone(),
                deadlocks.clone(),
            );
            std::thread::spawn(move || {
                worker(
                    &table,
                    &shadow,
                    0x9e37_79b9 + t * 7919,
                    iterations,
                    &progress,
                    &deadlocks,
                );
            })
        })
        .collect();
    // Watchdog: progress must never stop for long.
    let mut last = (0, Instant::now());
    while !threads.iter().all(|t| t.is_finished()) {
        std::thread::sleep(Duration::from_millis(20));
        let now = progress.load(Ordering::Relaxed);
        if now != last.0 {
            last = (now, Instant::now());
        } else if last.1.elapsed() > Duration::from_secs(20) {
            panic!(
                "no progress for 20 s without a reported deadlock: {:#?}",
                table.snapshot()
            );
        }
    }
    for t in threads {
        t.join().expect("worker panicked");
    }
    assert_eq!(progress.load(Ordering::Relaxed), 4 * iterations as u64);
    let snap = table.snapshot();
    assert!(snap.holders.is_empty() && snap.waiters.is_empty() && snap.owners.is_empty());
    eprintln!(
        "stress: {} deadlocks reported and resolved",
        deadlocks.load(Ordering::Relaxed)
    );
}
