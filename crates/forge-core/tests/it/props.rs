//! Property tests on random DAGs against a simple model: every task runs exactly once and
//! only after all its dependencies succeeded; the concurrency and pool limits hold; after a
//! failure exactly the descendants are skipped; cancellation leaves nothing running.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use forge_core::{
    ExecError, ExecOutput, Executors, FnExecutor, Job, Plan, RunOptions, SkipReason, Task,
    TaskOutcome, ValidatedPlan, run_plan,
};
use parking_lot::Mutex;
use proptest::prelude::*;
use tokio_util::sync::CancellationToken;

/// A random DAG: task i may depend only on tasks before it.
#[derive(Debug, Clone)]
struct Dag {
    deps: Vec<Vec<usize>>,
    failing: BTreeSet<usize>,
    gpu: BTreeSet<usize>,
    sleeps_ms: Vec<u64>,
}

fn dag() -> impl Strategy<Value = Dag> {
    (1usize..40).prop_flat_map(|n| {
        let deps = (0..n)
            .map(|i| proptest::collection::btree_set(0..i.max(1), 0..=i.min(3)))
            .collect::<Vec<_>>();
        (
            deps,
            proptest::collection::btree_set(0..n, 0..=n / 4),
            proptest::collection::btree_set(0..n, 0..=n / 3),
            proptest::collection::vec(0u64..20, n),
        )
            .prop_map(move |(deps, failing, gpu, sleeps_ms)| Dag {
                deps: deps
                    .into_iter()
                    .enumerate()
                    .map(|(i, d)| d.into_iter().filter(|&x| x < i).collect())
                    .collect(),
                failing,
                gpu,
                sleeps_ms,
            })
    })
}

fn build(dag: &Dag) -> ValidatedPlan {
    let mut plan = Plan::default();
    for (i, deps) in dag.deps.iter().enumerate() {
        let mut task = Task::new(format!("t{i}"), "").deps(deps.iter().map(|d| format!("t{d}")));
        if dag.gpu.contains(&i) {
            task = task.resource("gpu", 1);
        }
        plan.push(task);
    }
    plan.validate().expect("a forward-edge DAG is valid")
}

#[derive(Default)]
struct Observed {
    /// Order of completion events: (task, succeeded).
    finished: Vec<(usize, bool)>,
    /// Starts per task.
    starts: HashMap<usize, usize>,
    violations: Vec<String>,
}

fn executor(
    dag: &Dag,
    observed: &Arc<Mutex<Observed>>,
    running: &Arc<AtomicUsize>,
    gpu_running: &Arc<AtomicUsize>,
    limits: (usize, usize),
) -> Executors {
    let dag = Arc::new(dag.clone());
    let observed = observed.clone();
    let running = running.clone();
    let gpu_running = gpu_running.clone();
    Executors::single(FnExecutor::new(move |job: Job| {
        let dag = dag.clone();
        let observed = observed.clone();
        let running = running.clone();
        let gpu_running = gpu_running.clone();
        async move {
            let i: usize = job.task.id[1..].parse().expect("t<i>");
            let is_gpu = dag.gpu.contains(&i);
            {
                let mut o = observed.lock();
                *o.starts.entry(i).or_default() += 1;
                for &d in &dag.deps[i] {
                    if !o.finished.contains(&(d, true)) {
                        o.violations
                            .push(format!("t{i} started before t{d} succeeded"));
                    }
                }
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                if now > limits.0 {
                    o.violations
                        .push(format!("{now} running > jobs {}", limits.0));
                }
                if is_gpu {
                    let g = gpu_running.fetch_add(1, Ordering::SeqCst) + 1;
                    if g > limits.1 {
                        o.violations.push(format!("{g} on gpu > {}", limits.1));
                    }
                }
            }
            let cancelled = tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(dag.sleeps_ms[i])) => false,
                () = job.cancel.cancelled() => true,
            };
            let ok = !cancelled && !dag.failing.contains(&i);
            {
                let mut o = observed.lock();
                running.fetch_sub(1, Ordering::SeqCst);
                if is_gpu {
                    gpu_running.fetch_sub(1, Ordering::SeqCst);
                }
                o.finished.push((i, ok));
            }
            if ok {
                Ok(ExecOutput::default())
            } else {
                Err(ExecError::fatal(format!("t{i} fails")))
            }
        }
    }))
}

/// Tasks reachable from a failing task through dependents (not counting failing tasks that
/// never ran), computed from the model.
fn expected_skipped(dag: &Dag) -> BTreeSet<usize> {
    let n = dag.deps.len();
    // A task runs iff all its deps succeeded; it succeeds iff it runs and is not failing.
    let mut succeeded = vec![false; n];
    let mut skipped = BTreeSet::new();
    for i in 0..n {
        let runs = dag.deps[i].iter().all(|&d| succeeded[d]);
        if !runs {
            skipped.insert(i);
        }
        succeeded[i] = runs && !dag.failing.contains(&i);
    }
    skipped
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn keep_going_runs_each_task_once_in_order(dag in dag(), jobs in 1usize..6, gpu_cap in 1u32..3) {
        let plan = build(&dag);
        let observed = Arc::new(Mutex::new(Observed::default()));
        let running = Arc::new(AtomicUsize::new(0));
        let gpu_running = Arc::new(AtomicUsize::new(0));
        let executors = executor(&dag, &observed, &running, &gpu_running, (jobs, gpu_cap as usize));
        let options = RunOptions::default().jobs(jobs).pool("gpu", gpu_cap).keep_going(true);
        let outcome = runtime().block_on(run_plan(&plan, &executors, options)).expect("runs");
        let o = observed.lock();
        prop_assert!(o.violations.is_empty(), "{:?}", o.violations);
        let skipped = expected_skipped(&dag);
        for (i, out) in outcome.outcomes().iter().enumerate() {
            let starts = o.starts.get(&i).copied().unwrap_or(0);
            if skipped.contains(&i) {
                prop_assert_eq!(starts, 0);
                let is_dependency_skip = matches!(out, TaskOutcome::Skipped { reason: SkipReason::DependencyFailed { .. } });
                prop_assert!(is_dependency_skip, "t{} {:?}", i, out);
            } else {
                prop_assert_eq!(starts, 1, "t{} ran {} times", i, starts);
                prop_assert_eq!(out.is_success(), !dag.failing.contains(&i), "t{} {:?}", i, out);
            }
        }
        prop_assert_eq!(running.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn cancellation_leaves_nothing_running(dag in dag(), jobs in 1usize..6, cancel_ms in 0u64..30) {
        let plan = build(&dag);
        let observed = Arc::new(Mutex::new(Observed::default()));
        let running = Arc::new(AtomicUsize::new(0));
        let gpu_running = Arc::new(AtomicUsize::new(0));
        let executors = executor(&dag, &observed, &running, &gpu_running, (jobs, 1));
        let cancel = CancellationToken::new();
        let options = RunOptions::default().jobs(jobs).pool("gpu", 1).keep_going(true).cancel(cancel.clone());
        let outcome = runtime().block_on(async {
            let trigger = tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(cancel_ms)).await;
                cancel.cancel();
            });
            let outcome = run_plan(&plan, &executors, options).await;
            trigger.abort();
            outcome
        }).expect("runs");
        prop_assert_eq!(running.load(Ordering::SeqCst), 0, "an attempt outlived run_plan");
        let o = observed.lock();
        prop_assert!(o.violations.is_empty(), "{:?}", o.violations);
        let starts: usize = o.starts.values().sum();
        prop_assert_eq!(starts, o.finished.len());
        for out in outcome.outcomes() {
            if let TaskOutcome::Cancelled { attempts } = out {
                prop_assert_eq!(*attempts, 1);
            }
        }
    }
}
