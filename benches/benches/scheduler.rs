//! Criterion bench of forge's scheduler against bare tokio, dagx 0.3 and dagrs 0.9, in the
//! same run: fan-out 1->10k, chain 10k, random layered 100k (width 100, 2-4 parents), lattice
//! 316x316 with no-op tasks; smaller versions of the same shapes with mixed 1-10 ms sleeps;
//! and validating a 100k-node / 200k-edge plan. A counting allocator reports peak bytes per
//! node. Figures go to `benches/README.md` (section "scheduler").
//!
//! Every implementation is driven from a spawned task on a 2-worker runtime and gets a graph
//! built outside the timed routine (criterion's `iter_batched`), so the timings compare running
//! a graph, not building it. `FORGE_BENCH_MEMORY=1` prints the memory figures and exits.

#![deny(unsafe_code)]
#![allow(
    missing_docs,
    reason = "criterion_group! generates undocumented functions"
)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use criterion::{BatchSize, BenchmarkId, Criterion, criterion_group};
use forge_core::{
    ExecOutput, Executors, FnExecutor, Job, Plan, RunOptions, Task, ValidatedPlan, run_plan,
};
use rand::rngs::StdRng;
use rand::seq::index::sample;
use rand::{Rng, SeedableRng};

/// Counts live and peak heap bytes, for the bytes-per-node figures.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

#[allow(
    unsafe_code,
    reason = "a global allocator that counts bytes is unsafe to implement"
)]
// SAFETY: defers every allocation to `System` unchanged; only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// A DAG in topological order: `deps[i]` are earlier nodes; `work_us[i]` is node i's sleep.
struct Dag {
    deps: Vec<Vec<u32>>,
    work_us: Vec<u64>,
}

impl Dag {
    fn len(&self) -> usize {
        self.deps.len()
    }

    fn dependents(&self) -> Vec<Vec<u32>> {
        let mut out = vec![Vec::new(); self.len()];
        for (i, deps) in self.deps.iter().enumerate() {
            for &d in deps {
                out[d as usize].push(i as u32);
            }
        }
        out
    }

    /// Sum of sleeps along the heaviest path: the best makespan any scheduler can reach.
    fn critical_path(&self) -> Duration {
        let mut finish = vec![0u64; self.len()];
        for i in 0..self.len() {
            let start = self.deps[i]
                .iter()
                .map(|&d| finish[d as usize])
                .max()
                .unwrap_or(0);
            finish[i] = start + self.work_us[i];
        }
        Duration::from_micros(finish.into_iter().max().unwrap_or(0))
    }

    fn with_mixed_sleeps(mut self, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        self.work_us = (0..self.len())
            .map(|_| rng.random_range(1_000..=10_000))
            .collect();
        self
    }
}

fn fan_out(n: usize) -> Dag {
    let deps = (0..=n)
        .map(|i| if i == 0 { vec![] } else { vec![0] })
        .collect();
    Dag {
        deps,
        work_us: vec![0; n + 1],
    }
}

fn chain(n: usize) -> Dag {
    let deps = (0..n)
        .map(|i| if i == 0 { vec![] } else { vec![i as u32 - 1] })
        .collect();
    Dag {
        deps,
        work_us: vec![0; n],
    }
}

/// `n` nodes in layers of `width`; each node after the first layer has `min..=max` distinct
/// parents in the previous layer.
fn layered(n: usize, width: usize, parents: (usize, usize), seed: u64) -> Dag {
    let mut rng = StdRng::seed_from_u64(seed);
    let deps = (0..n)
        .map(|i| {
            let layer = i / width;
            if layer == 0 {
                return vec![];
            }
            let k = rng.random_range(parents.0..=parents.1);
            let base = (layer - 1) * width;
            let mut d: Vec<u32> = sample(&mut rng, width, k)
                .into_iter()
                .map(|j| (base + j) as u32)
                .collect();
            d.sort_unstable();
            d
        })
        .collect();
    Dag {
        deps,
        work_us: vec![0; n],
    }
}

fn lattice(side: usize) -> Dag {
    let deps = (0..side * side)
        .map(|i| {
            let (r, c) = (i / side, i % side);
            let mut d = Vec::new();
            if r > 0 {
                d.push((i - side) as u32);
            }
            if c > 0 {
                d.push((i - 1) as u32);
            }
            d
        })
        .collect();
    Dag {
        deps,
        work_us: vec![0; side * side],
    }
}

async fn work(us: u64) {
    if us > 0 {
        tokio::time::sleep(Duration::from_micros(us)).await;
    }
}

/// The floor: spawn and join one no-op tokio task per node, ignoring edges except that a
/// chain is joined one task at a time.
async fn tokio_spawn_join(dag: Arc<Dag>, is_chain: bool) {
    if is_chain {
        for _ in 0..dag.len() {
            tokio::spawn(async {}).await.expect("join");
        }
        return;
    }
    let handles: Vec<_> = (0..dag.len()).map(|_| tokio::spawn(async {})).collect();
    for handle in handles {
        handle.await.expect("join");
    }
}

/// A hand-written tokio DAG: one task per node, each waiting on its parents' watch channels.
async fn tokio_watch_dag(dag: Arc<Dag>) {
    let (senders, receivers): (Vec<_>, Vec<_>) = (0..dag.len())
        .map(|_| tokio::sync::watch::channel(false))
        .unzip();
    let mut handles = Vec::with_capacity(dag.len());
    for (i, done) in senders.into_iter().enumerate() {
        let parents: Vec<_> = dag.deps[i]
            .iter()
            .map(|&d| receivers[d as usize].clone())
            .collect();
        let us = dag.work_us[i];
        handles.push(tokio::spawn(async move {
            for mut parent in parents {
                parent.wait_for(|done| *done).await.expect("parent alive");
            }
            work(us).await;
            let _ = done.send(true);
        }));
    }
    for handle in handles {
        handle.await.expect("join");
    }
}

fn forge_plan(dag: &Dag) -> ValidatedPlan {
    let ids: Vec<String> = (0..dag.len()).map(|i| format!("n{i}")).collect();
    let mut plan = Plan::default();
    for (i, deps) in dag.deps.iter().enumerate() {
        let mut task =
            Task::new(ids[i].clone(), "").deps(deps.iter().map(|&d| ids[d as usize].clone()));
        if dag.work_us[i] > 0 {
            task = task.duration_hint(Duration::from_micros(dag.work_us[i]));
        }
        plan.push(task);
    }
    plan.validate().expect("bench DAGs are valid")
}

fn forge_executors() -> Executors {
    Executors::single(FnExecutor::new(|job: Job| async move {
        if let Some(hint) = job.task.duration_hint {
            tokio::time::sleep(hint).await;
        }
        Ok(ExecOutput::default())
    }))
}

async fn forge_run(plan: Arc<ValidatedPlan>, executors: Executors) {
    let outcome = run_plan(&plan, &executors, RunOptions::default().jobs(usize::MAX))
        .await
        .expect("runs");
    assert!(outcome.is_success());
}

fn dagx_build(dag: &Dag) -> dagx::DagRunner {
    use dagx::{TaskHandle, task_fn};
    let runner = dagx::DagRunner::new();
    let mut handles: Vec<TaskHandle<u32>> = Vec::with_capacity(dag.len());
    for (i, deps) in dag.deps.iter().enumerate() {
        let us = dag.work_us[i];
        let h = |d: usize| &handles[deps[d] as usize];
        let handle: TaskHandle<u32> = match deps.len() {
            0 => runner
                .add_task(task_fn(move |_: ()| async move {
                    work(us).await;
                    0u32
                }))
                .into(),
            1 => runner
                .add_task(task_fn(move |_: u32| async move {
                    work(us).await;
                    0u32
                }))
                .depends_on(h(0)),
            2 => runner
                .add_task(task_fn(move |_: (u32, u32)| async move {
                    work(us).await;
                    0u32
                }))
                .depends_on((h(0), h(1))),
            3 => runner
                .add_task(task_fn(move |_: (u32, u32, u32)| async move {
                    work(us).await;
                    0u32
                }))
                .depends_on((h(0), h(1), h(2))),
            4 => runner
                .add_task(task_fn(move |_: (u32, u32, u32, u32)| async move {
                    work(us).await;
                    0u32
                }))
                .depends_on((h(0), h(1), h(2), h(3))),
            n => unreachable!("bench DAGs have at most 4 parents, not {n}"),
        };
        handles.push(handle);
    }
    runner
}

async fn dagx_run(runner: dagx::DagRunner) -> dagx::DagRunner {
    runner
        .run(|fut| {
            tokio::spawn(fut);
        })
        .await
        .expect("dagx runs");
    runner
}

struct DagrsWork(u64);

#[dagrs::async_trait::async_trait]
impl dagrs::Action for DagrsWork {
    async fn run(
        &self,
        input: &mut dagrs::InChannels,
        output: &mut dagrs::OutChannels,
        _env: Arc<dagrs::EnvVar>,
    ) -> dagrs::Output {
        // Await every parent's value: that is what makes a dagrs node wait for its inputs.
        let _ = input.map(|_| ()).await;
        work(self.0).await;
        output.broadcast(dagrs::Content::new(())).await;
        dagrs::Output::empty()
    }
}

fn dagrs_build(dag: &Dag) -> dagrs::Graph {
    let mut table = dagrs::NodeTable::new();
    let mut graph = dagrs::Graph::new();
    let mut ids = Vec::with_capacity(dag.len());
    for i in 0..dag.len() {
        let node =
            dagrs::DefaultNode::with_action(format!("n{i}"), DagrsWork(dag.work_us[i]), &mut table);
        ids.push(dagrs::Node::id(&node));
        graph.add_node(node).expect("add node");
    }
    for (from, to) in dag.dependents().into_iter().enumerate() {
        if !to.is_empty() {
            graph
                .add_edge(ids[from], to.into_iter().map(|t| ids[t as usize]))
                .expect("add edge");
        }
    }
    graph.set_env(dagrs::EnvVar::new(table));
    graph
}

async fn dagrs_run(mut graph: dagrs::Graph) -> dagrs::Graph {
    graph.async_start().await.expect("dagrs runs");
    graph
}

/// The shapes at the sizes the issue names (no-op) and smaller ones with sleeps.
fn shapes(sleeping: bool) -> Vec<(&'static str, Dag, bool)> {
    if sleeping {
        vec![
            ("fanout_1k", fan_out(1_000).with_mixed_sleeps(1), false),
            ("chain_50", chain(50).with_mixed_sleeps(2), true),
            (
                "layered_2k",
                layered(2_000, 100, (2, 4), 7).with_mixed_sleeps(3),
                false,
            ),
            ("lattice_20x20", lattice(20).with_mixed_sleeps(4), false),
        ]
    } else {
        vec![
            ("fanout_10k", fan_out(10_000), false),
            ("chain_10k", chain(10_000), true),
            ("layered_100k", layered(100_000, 100, (2, 4), 7), false),
            ("lattice_316x316", lattice(316), false),
        ]
    }
}

fn bench_shapes(c: &mut Criterion, sleeping: bool) {
    let rt = forge_benches::runtime();
    let mut group = c.benchmark_group(if sleeping {
        "scheduler_sleep"
    } else {
        "scheduler_noop"
    });
    group.sample_size(10);
    for (name, dag, is_chain) in shapes(sleeping) {
        let dag = Arc::new(dag);
        if sleeping {
            println!("{name}: critical path {:?}", dag.critical_path());
        }
        if !sleeping {
            group.bench_function(BenchmarkId::new("tokio_spawn_join", name), |b| {
                b.to_async(&rt).iter(|| {
                    let dag = dag.clone();
                    async move {
                        tokio::spawn(tokio_spawn_join(dag, is_chain))
                            .await
                            .expect("join")
                    }
                });
            });
        }
        group.bench_function(BenchmarkId::new("tokio_watch_dag", name), |b| {
            b.to_async(&rt).iter(|| {
                let dag = dag.clone();
                async move { tokio::spawn(tokio_watch_dag(dag)).await.expect("join") }
            });
        });
        let plan = Arc::new(forge_plan(&dag));
        let executors = forge_executors();
        group.bench_function(BenchmarkId::new("forge", name), |b| {
            b.to_async(&rt).iter(|| {
                let (plan, executors) = (plan.clone(), executors.clone());
                async move {
                    tokio::spawn(forge_run(plan, executors))
                        .await
                        .expect("join")
                }
            });
        });
        group.bench_function(BenchmarkId::new("dagx", name), |b| {
            b.to_async(&rt).iter_batched(
                || dagx_build(&dag),
                |runner| async move { tokio::spawn(dagx_run(runner)).await.expect("join") },
                BatchSize::PerIteration,
            );
        });
        // dagrs needs seconds per run at 100k nodes; it runs the large shapes only when
        // FORGE_BENCH_DAGRS_LARGE=1 (the README gives its one-shot time instead).
        let dagrs_ok = sleeping
            || dag.len() <= 10_001
            || std::env::var_os("FORGE_BENCH_DAGRS_LARGE").is_some();
        if dagrs_ok {
            group.bench_function(BenchmarkId::new("dagrs", name), |b| {
                b.to_async(&rt).iter_batched(
                    || dagrs_build(&dag),
                    |graph| async move { tokio::spawn(dagrs_run(graph)).await.expect("join") },
                    BatchSize::PerIteration,
                );
            });
        }
    }
    group.finish();
}

fn bench_noop(c: &mut Criterion) {
    bench_shapes(c, false);
}

fn bench_sleep(c: &mut Criterion) {
    bench_shapes(c, true);
}

fn bench_validate(c: &mut Criterion) {
    let dag = layered(100_000, 100, (2, 2), 11);
    let ids: Vec<String> = (0..dag.len()).map(|i| format!("n{i}")).collect();
    let mut plan = Plan::default();
    for (i, deps) in dag.deps.iter().enumerate() {
        plan.push(
            Task::new(ids[i].clone(), "").deps(deps.iter().map(|&d| ids[d as usize].clone())),
        );
    }
    let edges: usize = dag.deps.iter().map(Vec::len).sum();
    let mut group = c.benchmark_group("scheduler_validate");
    group.sample_size(10);
    group.bench_function(
        format!(
            "validate_{}k_nodes_{}k_edges",
            dag.len() / 1000,
            edges / 1000
        ),
        |b| {
            b.iter_batched(
                || plan.clone(),
                |plan| plan.validate().expect("valid"),
                BatchSize::PerIteration,
            );
        },
    );
    group.finish();
}

/// Peak heap bytes per node while building and running each implementation once.
fn memory_report() {
    let rt = forge_benches::runtime();
    for (name, dag, _) in shapes(false) {
        let dag = Arc::new(dag);
        let n = dag.len();
        let measure = |label: &str, f: &dyn Fn()| {
            let base = LIVE.load(Ordering::Relaxed);
            PEAK.store(base, Ordering::Relaxed);
            let started = std::time::Instant::now();
            f();
            let elapsed = started.elapsed();
            let peak = PEAK.load(Ordering::Relaxed) - base;
            println!(
                "{name:>16} {label:<16} peak {:>8.0} bytes/node   one run {:>9.2?} ({:.2} us/node)",
                peak as f64 / n as f64,
                elapsed,
                elapsed.as_secs_f64() * 1e6 / n as f64
            );
        };
        let spawned = |f: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>| {
            rt.block_on(async move { tokio::spawn(f).await.expect("join") });
        };
        measure("tokio_watch_dag", &|| {
            spawned(Box::pin(tokio_watch_dag(dag.clone())))
        });
        measure("forge (+plan)", &|| {
            let plan = Arc::new(forge_plan(&dag));
            spawned(Box::pin(forge_run(plan, forge_executors())));
        });
        let plan = Arc::new(forge_plan(&dag));
        measure("forge (run only)", &|| {
            spawned(Box::pin(forge_run(plan.clone(), forge_executors())));
        });
        measure("dagx", &|| {
            let runner = dagx_build(&dag);
            spawned(Box::pin(async move { drop(dagx_run(runner).await) }));
        });
        measure("dagrs", &|| {
            let graph = dagrs_build(&dag);
            spawned(Box::pin(async move { drop(dagrs_run(graph).await) }));
        });
    }
}

criterion_group!(benches, bench_noop, bench_sleep, bench_validate);

fn main() {
    if std::env::var_os("FORGE_BENCH_MEMORY").is_some() {
        memory_report();
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
