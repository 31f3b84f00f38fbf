//! Criterion bench of forge-events against raw `tokio::sync::broadcast` and a raw JSONL writer.
//!
//! - `events/publish/{forge,broadcast}/{ring,drained}/N`: one publish, with N subscribers.
//!   `ring`: the N subscribers exist but do not read during the measurement, so a publish
//!   writes into the bounded ring and the subscribers lag (the cost a publisher pays, with
//!   nothing else competing for the CPU; with N = 0 the event is dropped unwritten).
//!   `drained`: the N subscribers read everything on a 2-worker tokio runtime while the bench
//!   thread publishes (the cost in a live run, where the 2 cores are shared by the publisher,
//!   the subscribers and their wake-ups).
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

#![forbid(unsafe_code)]
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

/// Times `iters` sends of the same event through `sender`, with `subs` subscribed: drained on
/// `rt` by `drain` (which returns how many events it received) if `drained`, else left unread
/// until the measurement is over. Dropping `sender` afterwards ends the drainers.
fn time_publishes<T, S, F>(
    rt: &tokio::runtime::Runtime,
    sender: T,
    subs: Vec<S>,
    drained: bool,
    drain: impl Fn(S) -> F,
    send: impl Fn(&T, BenchEvent) -> usize,
    iters: u64,
) -> Duration
where
    F: Future<Output = u64> + Send + 'static,
{
    // `ring`: the subscribers stay alive, unread, until the measurement is over.
    let mut idle = Vec::new();
    let drainers: Vec<_> = if drained {
        subs.into_iter().map(|sub| rt.spawn(drain(sub))).collect()
    } else {
        idle = subs;
        Vec::new()
    };
    let template = event(7);
    let start = Instant::now();
    for _ in 0..iters {
        black_box(send(&sender, template.clone()));
    }
    let elapsed = start.elapsed();
    drop(idle);
    drop(sender);
    for drainer in drainers {
        black_box(rt.block_on(drainer).expect("drainer"));
    }
    elapsed
}

/// Times `iters` forge publishes with `n_subs` subscribers, draining them on `rt` if asked.
fn forge_publish(
    rt: &tokio::runtime::Runtime,
    n_subs: usize,
    drained: bool,
    iters: u64,
) -> Duration {
    let bus = Bus::<BenchEvent>::new(RING);
    let subs = (0..n_subs).map(|_| bus.subscribe()).collect();
    time_publishes(
        rt,
        bus,
        subs,
        drained,
        |mut sub| async move {
            let mut n = 0u64;
            while sub.recv().await.is_some() {
                n += 1;
            }
            n
        },
        Bus::publish,
        iters,
    )
}

/// Times `iters` raw broadcast sends with `n_subs` receivers, the same way as `forge_publish`.
fn raw_publish(rt: &tokio::runtime::Runtime, n_subs: usize, drained: bool, iters: u64) -> Duration {
    let (tx, first) = broadcast::channel::<BenchEvent>(RING);
    drop(first);
    let rxs = (0..n_subs).map(|_| tx.subscribe()).collect();
    time_publishes(
        rt,
        tx,
        rxs,
        drained,
        |mut rx| async move {
            let mut n = 0u64;
            loop {
                match rx.recv().await {
                    Ok(_) => n += 1,
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => break n,
                }
            }
        },
        |tx, event| tx.send(event).unwrap_or(0),
        iters,
    )
}

fn publish(c: &mut Criterion) {
    let rt = forge_benches::runtime();
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
    /// A new raw journal at `path`, which must not exist yet (as `Journal::create`).
    fn create(path: &Path, policy: FsyncPolicy) -> Self {
        let file = File::options()
            .append(true)
            .create_new(true)
            .open(path)
            .expect("create raw journal");
        RawJournal {
            file,
            line: Vec::new(),
            seq: 0,
            policy,
            last_sync: Instant::now(),
        }
    }

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

/// Times `iters` calls of `append(journal, i, event)`, for i from 1, on a journal that `open`
/// creates at `path`; the journal is dropped (forge's syncs what is unsynced) and removed after
/// the measurement.
fn time_appends<J>(
    path: &Path,
    open: impl FnOnce(&Path) -> J,
    iters: u64,
    mut append: impl FnMut(&mut J, u64, &BenchEvent),
) -> Duration {
    let mut journal = open(path);
    let template = event(3);
    let start = Instant::now();
    for i in 1..=iters {
        append(&mut journal, i, &template);
    }
    let elapsed = start.elapsed();
    drop(journal);
    std::fs::remove_file(path).expect("remove journal");
    elapsed
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
    let forge = |policy| move |path: &Path| Journal::create(path, policy).expect("create journal");
    let raw = |policy| move |path: &Path| RawJournal::create(path, policy);
    for (name, policy) in policies {
        if matches!(policy, FsyncPolicy::EveryEvent) {
            group.sample_size(10);
        } else {
            group.sample_size(50);
        }
        group.bench_function(BenchmarkId::new("forge", name), |b| {
            b.iter_custom(|iters| {
                time_appends(&fresh(dir.path()), forge(policy), iters, |j, _, e| {
                    black_box(j.append(e).expect("append"));
                })
            });
        });
        group.bench_function(BenchmarkId::new("raw", name), |b| {
            b.iter_custom(|iters| {
                time_appends(&fresh(dir.path()), raw(policy), iters, |j, _, e| {
                    j.append(e);
                })
            });
        });
    }
    // CommitPoints as a run uses it: one fsynced commit point after every 100 events.
    group.sample_size(20);
    let policy = FsyncPolicy::CommitPoints;
    group.bench_function(BenchmarkId::new("forge", "commit_points_every_100"), |b| {
        b.iter_custom(|iters| {
            time_appends(&fresh(dir.path()), forge(policy), iters, |j, i, e| {
                if i % 100 == 0 {
                    black_box(j.append_commit_point(e).expect("commit point"));
                } else {
                    black_box(j.append(e).expect("append"));
                }
            })
        });
    });
    group.bench_function(BenchmarkId::new("raw", "commit_points_every_100"), |b| {
        b.iter_custom(|iters| {
            time_appends(&fresh(dir.path()), raw(policy), iters, |j, i, e| {
                j.append(e);
                if i % 100 == 0 {
                    j.file.sync_data().expect("sync");
                }
            })
        });
    });
    group.finish();
}

criterion_group!(benches, publish, journal);
criterion_main!(benches);
