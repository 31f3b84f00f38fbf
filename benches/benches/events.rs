//! Criterion bench of forge-events against raw `tokio::sync::broadcast` and a raw JSONL writer.
//!
//! - `events/publish/{forge,broadcast}/{ring,drained}/N`: one publish, with N subscribers.
//!   `ring`: the N subscribers exist but do not read during the measurement, so a publish
//!   writes into the bounded ring and the subscribers lag (the cost a publisher pays, with
//!   nothing else competing for the CPU). `drained`: the N subscribers read everything on a
//!   2-worker tokio runtime while the bench thread publishes (the cost in a live run, where
//!   the 2 cores are shared by the publisher, the subscribers and their wake-ups).
//! - `events/journal/{forge,raw}/POLICY`: one append of a typical event (a line of about 110
//!   bytes). `raw` formats the same line with `write!` and does one `write(2)` per line on a
//!   plain `File`, synced as the policy says: what the journal costs over the bare minimum.
//!
//! The event is a tuple (kind, task, attempt, generation, waited_us): this crate has no serde
//! dependency of its own, and a tuple is a serde type that needs none. The task is an owned
//! `String`, as in forge's events, so every clone (one per publish, one per delivery)
//! allocates, as it would in a run.
//!
//! Method and figures: benches/README.md, section "events".

#![allow(
    missing_docs,
    reason = "criterion_main! generates an undocumented main"
)]

use std::fs::File;
use std::hint::black_box;
use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use forge_core::events::{Bus, FsyncPolicy, Journal};
use tokio::sync::broadcast;

/// A typical forge event: (kind, task, attempt, generation, waited_us).
type BenchEvent = (&'static str, String, u32, u64, u64);

fn event(n: u64) -> BenchEvent {
    (
        "lock_waited",
        "api/login-endpoint-with-session-cookies".to_owned(),
        1,
        n,
        n % 977,
    )
}

const RING: usize = 4096;
const SUBSCRIBER_COUNTS: [usize; 3] = [0, 1, 8];

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Times `iters` forge publishes with `n_subs` subscribers, draining them on `rt` if asked.
fn forge_publish(
    rt: &tokio::runtime::Runtime,
    n_subs: usize,
    drained: bool,
    iters: u64,
) -> Duration {
    let bus = Bus::new(RING);
    let subs: Vec<_> = (0..n_subs).map(|_| bus.subscribe()).collect();
    // `ring`: the subscribers stay alive, unread, until the measurement is over.
    let mut idle = Vec::new();
    let drainers: Vec<_> = if drained {
        subs.into_iter()
            .map(|mut sub| {
                rt.spawn(async move {
                    let mut n = 0u64;
                    while sub.recv().await.is_some() {
                        n += 1;
                    }
                    n
                })
            })
            .collect()
    } else {
        idle = subs;
        Vec::new()
    };
    let template = event(7);
    let start = Instant::now();
    for _ in 0..iters {
        black_box(bus.publish(template.clone()));
    }
    let elapsed = start.elapsed();
    drop(idle);
    drop(bus);
    for drainer in drainers {
        black_box(rt.block_on(drainer).expect("drainer"));
    }
    elapsed
}

/// Times `iters` raw broadcast sends with `n_subs` receivers, the same way as `forge_publish`.
fn raw_publish(rt: &tokio::runtime::Runtime, n_subs: usize, drained: bool, iters: u64) -> Duration {
    let (tx, first) = broadcast::channel::<BenchEvent>(RING);
    drop(first);
    let rxs: Vec<_> = (0..n_subs).map(|_| tx.subscribe()).collect();
    let mut idle = Vec::new();
    let drainers: Vec<_> = if drained {
        rxs.into_iter()
            .map(|mut rx| {
                rt.spawn(async move {
                    let mut n = 0u64;
                    loop {
                        match rx.recv().await {
                            Ok(_) => n += 1,
                            Err(broadcast::error::RecvError::Lagged(_)) => {}
                            Err(broadcast::error::RecvError::Closed) => break n,
                        }
                    }
                })
            })
            .collect()
    } else {
        idle = rxs;
        Vec::new()
    };
    let template = event(7);
    let start = Instant::now();
    for _ in 0..iters {
        black_box(tx.send(template.clone()).unwrap_or(0));
    }
    let elapsed = start.elapsed();
    drop(idle);
    drop(tx);
    for drainer in drainers {
        black_box(rt.block_on(drainer).expect("drainer"));
    }
    elapsed
}

fn publish(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("events/publish");
    group.throughput(Throughput::Elements(1));
    for (method, drained) in [("ring", false), ("drained", true)] {
        for n_subs in SUBSCRIBER_COUNTS {
            if drained && n_subs == 0 {
                continue;
            }
            group.bench_function(BenchmarkId::new(format!("forge/{method}"), n_subs), |b| {
                b.iter_custom(|iters| forge_publish(&rt, n_subs, drained, iters));
            });
            group.bench_function(
                BenchmarkId::new(format!("broadcast/{method}"), n_subs),
                |b| {
                    b.iter_custom(|iters| raw_publish(&rt, n_subs, drained, iters));
                },
            );
        }
    }
    group.finish();
}

/// The bare minimum a journal does: one JSON line per event, one `write(2)`, synced as told.
struct RawJournal {
    file: File,
    line: Vec<u8>,
    seq: u64,
    policy: FsyncPolicy,
    last_sync: Instant,
}

impl RawJournal {
    fn append(&mut self, event: &BenchEvent) {
        self.seq += 1;
        self.line.clear();
        let (kind, task, attempt, generation, waited_us) = event;
        // The strings are known to need no JSON escaping.
        writeln!(
            self.line,
            "{{\"v\":1,\"seq\":{},\"ts_ms\":{},\"event\":[\"{kind}\",\"{task}\",{attempt},{generation},{waited_us}]}}",
            self.seq, 1_763_700_000_000u64
        )
        .expect("write to a Vec");
        self.file.write_all(&self.line).expect("write");
        let due = match self.policy {
            FsyncPolicy::EveryEvent => true,
            FsyncPolicy::Interval(every) => self.last_sync.elapsed() >= every,
            _ => false,
        };
        if due {
            self.file.sync_data().expect("sync");
            self.last_sync = Instant::now();
        }
    }
}

fn journal(c: &mut Criterion) {
    // On the target directory's disk (ext4 here), not a tmpfs where fsync costs nothing.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let policies = [
        ("every_event", FsyncPolicy::EveryEvent),
        ("commit_points", FsyncPolicy::CommitPoints),
        (
            "interval_10ms",
            FsyncPolicy::Interval(Duration::from_millis(10)),
        ),
    ];
    let mut group = c.benchmark_group("events/journal");
    group.throughput(Throughput::Elements(1));
    let mut n_files = 0u64;
    let mut fresh = |dir: &Path| {
        n_files += 1;
        dir.join(format!("j{n_files}.jsonl"))
    };
    for (name, policy) in policies {
        if matches!(policy, FsyncPolicy::EveryEvent) {
            group.sample_size(10);
        } else {
            group.sample_size(50);
        }
        group.bench_function(BenchmarkId::new("forge", name), |b| {
            b.iter_custom(|iters| {
                let path = fresh(dir.path());
                let journal = Journal::create(&path, policy).expect("create journal");
                let template = event(3);
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(journal.append(&template).expect("append"));
                }
                let elapsed = start.elapsed();
                drop(journal);
                std::fs::remove_file(&path).expect("remove journal");
                elapsed
            });
        });
        group.bench_function(BenchmarkId::new("raw", name), |b| {
            b.iter_custom(|iters| {
                let path = fresh(dir.path());
                let file = File::options()
                    .append(true)
                    .create_new(true)
                    .open(&path)
                    .expect("create raw journal");
                let mut raw = RawJournal {
                    file,
                    line: Vec::new(),
                    seq: 0,
                    policy,
                    last_sync: Instant::now(),
                };
                let template = event(3);
                let start = Instant::now();
                for _ in 0..iters {
                    raw.append(&template);
                }
                let elapsed = start.elapsed();
                drop(raw);
                std::fs::remove_file(&path).expect("remove raw journal");
                elapsed
            });
        });
    }
    // CommitPoints as a run uses it: one fsynced commit point after every 100 events.
    group.sample_size(20);
    group.bench_function(BenchmarkId::new("forge", "commit_points_every_100"), |b| {
        b.iter_custom(|iters| {
            let path = fresh(dir.path());
            let journal = Journal::create(&path, FsyncPolicy::CommitPoints).expect("create");
            let template = event(3);
            let start = Instant::now();
            for i in 1..=iters {
                if i % 100 == 0 {
                    black_box(
                        journal
                            .append_commit_point(&template)
                            .expect("commit point"),
                    );
                } else {
                    black_box(journal.append(&template).expect("append"));
                }
            }
            let elapsed = start.elapsed();
            drop(journal);
            std::fs::remove_file(&path).expect("remove journal");
            elapsed
        });
    });
    group.bench_function(BenchmarkId::new("raw", "commit_points_every_100"), |b| {
        b.iter_custom(|iters| {
            let path = fresh(dir.path());
            let file = File::options()
                .append(true)
                .create_new(true)
                .open(&path)
                .expect("create raw journal");
            let mut raw = RawJournal {
                file,
                line: Vec::new(),
                seq: 0,
                policy: FsyncPolicy::CommitPoints,
                last_sync: Instant::now(),
            };
            let template = event(3);
            let start = Instant::now();
            for i in 1..=iters {
                raw.append(&template);
                if i % 100 == 0 {
                    raw.file.sync_data().expect("sync");
                }
            }
            let elapsed = start.elapsed();
            drop(raw);
            std::fs::remove_file(&path).expect("remove raw journal");
            elapsed
        });
    });
    group.finish();
}

criterion_group!(benches, publish, journal);
criterion_main!(benches);
