//! Metrics of real engine runs: a lock wait, a conflict re-run and a retried attempt show
//! up in the outcome with the right counters, exactly as `status` reads them from the
//! journal.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use forge_events::MetricKind;
use forge_staging::Backend;

use crate::executor::{ExecError, ExecOutput, Executors, FnExecutor, Job};
use crate::plan::{Plan, Task};
use crate::scheduler::{Backoff, RunOptions};
use crate::{ConflictPolicy, EngineOptions, run_engine, status};

fn write(root: &Path, path: &str, text: &str) {
    let path = root.join(path);
    std::fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

fn append(root: &Path, path: &str, line: &str) {
    let text = std::fs::read_to_string(root.join(path)).expect("read");
    std::fs::write(root.join(path), format!("{text}{line}\n")).expect("write");
}

/// What each task of the run does: `x` and `y` both edit line 5 of src/shared.txt from
/// generation 0 (a barrier makes sure), so one conflicts and runs again; `hold` and `wait`
/// both declare `src/a.txt`, so one waits for the other's lock while it sleeps; `flaky`
/// fails its first attempt with a retryable error.
async fn agent(job: Job, barrier: Arc<tokio::sync::Barrier>, passes: Arc<AtomicU32>) {
    let root = job.workdir.as_path();
    match job.task.id.as_str() {
        id @ ("x" | "y") => {
            // Only the first pass of each meets at the barrier.
            if passes.fetch_add(1, Ordering::SeqCst) < 2 {
                barrier.wait().await;
            }
            let text = std::fs::read_to_string(root.join("src/shared.txt")).expect("read");
            let line = text.lines().nth(4).expect("line 5").to_owned();
            let text = text.replacen(&format!("{line}\n"), &format!("{line} +{id}\n"), 1);
            std::fs::write(root.join("src/shared.txt"), text).expect("write");
        }
        id @ ("hold" | "wait") => {
            tokio::time::sleep(Duration::from_millis(150)).await;
            append(root, "src/a.txt", id);
        }
        id => write(root, &format!("{id}.txt"), id),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_reports_lock_waits_conflicts_and_retries_as_status_does() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (repo, run_dir) = (tmp.path().join("repo"), tmp.path().join("run"));
    let lines: String = (1..=20).map(|i| format!("line {i}\n")).collect();
    write(&repo, "src/shared.txt", &lines);
    write(&repo, "src/a.txt", "a\n");

    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    let passes = Arc::new(AtomicU32::new(0));
    let flaky_attempts = Arc::new(AtomicU32::new(0));
    let executors = Executors::single(FnExecutor::new(move |job: Job| {
        let (barrier, passes) = (barrier.clone(), passes.clone());
        let flaky_attempts = flaky_attempts.clone();
        async move {
            if job.task.id == "flaky" && flaky_attempts.fetch_add(1, Ordering::SeqCst) == 0 {
                return Err(ExecError::retryable("flaky: not this time"));
            }
            agent(job, barrier, passes).await;
            Ok(ExecOutput::default())
        }
    }));
    let plan = Plan::default()
        .with_task(Task::new("x", ""))
        .with_task(Task::new("y", ""))
        .with_task(Task::new("hold", "").writes(["src/a.txt"]))
        .with_task(Task::new("wait", "").writes(["src/a.txt"]))
        .with_task(Task::new("flaky", "").retries(1))
        .validate()
        .expect("valid plan");
    let backoff =
        Backoff::fixed_exponential(Duration::from_millis(5), Duration::from_millis(20), 2.0);
    let options = EngineOptions::new(&repo, &run_dir)
        .backend(Some(Backend::Copy))
        .conflicts(ConflictPolicy::Retry { max: 1 })
        .run(RunOptions::default().jobs(5).seed(7).backoff(backoff));
    let outcome = run_engine(&plan, &executors, options).await.expect("run");
    assert!(outcome.is_success(), "{:?}", outcome.run);
    let metrics = &outcome.metrics;

    let counters: Vec<(&str, u64)> = [
        "attempts",
        "retries",
        "conflicts",
        "deadlocks",
        "lock_waits",
        "commits",
        "succeeded",
        "failed",
    ]
    .into_iter()
    .map(|name| (name, metrics.counter(name)))
    .collect();
    assert_eq!(
        counters,
        [
            ("attempts", 6),
            ("retries", 1),
            ("conflicts", 1),
            ("deadlocks", 0),
            ("lock_waits", 1),
            ("commits", 5),
            ("succeeded", 5),
            ("failed", 0),
        ]
    );

    let lock = metrics
        .histogram(&MetricKind::LockWait)
        .expect("lock waits");
    // One declared lock request per attempt; the second writer of src/a.txt waited for the
    // first one's 150 ms run.
    assert_eq!(lock.count, 6);
    assert!(lock.max >= Duration::from_millis(100), "{lock:?}");
    let waiter = ["hold", "wait"]
        .into_iter()
        .max_by_key(|id| metrics.tasks[*id].lock_wait)
        .expect("two writers");
    assert!(metrics.tasks[waiter].lock_wait >= Duration::from_millis(100));

    let count = |kind| metrics.histogram(&kind).map_or(0, |h| h.count);
    // Passes: five first passes, the conflicted task's re-run, flaky's second attempt.
    assert_eq!(count(MetricKind::RunTime), 7);
    // Merges: every pass whose changes were collected (flaky's failed attempt had none).
    assert_eq!(count(MetricKind::MergeTime), 6);
    assert_eq!(count(MetricKind::QueueWait), 6);
    let run = metrics.histogram(&MetricKind::RunTime).expect("run times");
    assert!(run.max >= Duration::from_millis(150), "{run:?}");
    assert_eq!(metrics.executors(), ["default"]);
    assert_eq!(metrics.tasks["flaky"].attempts, 2);
    let path = metrics
        .summary
        .critical_path
        .as_ref()
        .expect("merged tasks");
    assert_eq!(path.tasks.len(), 1, "no dependencies");

    let state = status(&run_dir).expect("status");
    assert_eq!(&state.metrics, metrics, "one derivation from one journal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resolved_conflict_reports_the_resolvers_time() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (repo, run_dir) = (tmp.path().join("repo"), tmp.path().join("run"));
    let lines: String = (1..=20).map(|i| format!("line {i}\n")).collect();
    write(&repo, "src/shared.txt", &lines);

    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    let worker = FnExecutor::new(move |job: Job| {
        let barrier = barrier.clone();
        async move {
            barrier.wait().await;
            let path = job.workdir.join("src/shared.txt");
            let text = std::fs::read_to_string(&path).expect("read");
            let text = text.replacen("line 5\n", &format!("line 5 by {}\n", job.task.id), 1);
            std::fs::write(&path, text).expect("write");
            Ok(ExecOutput::default())
        }
    });
    let resolver = FnExecutor::new(|job: Job| async move {
        tokio::time::sleep(Duration::from_millis(120)).await;
        let path = job.workdir.join("src/shared.txt");
        let text = std::fs::read_to_string(&path).expect("read");
        let resolved: String = text
            .lines()
            .filter(|l| {
                !["<<<<<<<", "=======", ">>>>>>>"]
                    .iter()
                    .any(|m| l.starts_with(m))
            })
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write(&path, resolved).expect("write");
        Ok(ExecOutput::default())
    });
    let executors = Executors::single(worker).with("resolver", resolver);
    let plan = Plan::default()
        .with_task(Task::new("p", ""))
        .with_task(Task::new("q", ""))
        .validate()
        .expect("valid plan");
    let options = EngineOptions::new(&repo, &run_dir)
        .backend(Some(Backend::Copy))
        .conflicts(ConflictPolicy::Resolve {
            executor: "resolver".to_owned(),
        })
        .run(RunOptions::default().jobs(2));
    let outcome = run_engine(&plan, &executors, options).await.expect("run");
    assert!(outcome.is_success(), "{:?}", outcome.run);
    let metrics = &outcome.metrics;
    assert_eq!(metrics.counter("conflicts"), 1);
    assert_eq!(metrics.counter("commits"), 2);
    let resolve = MetricKind::Custom(crate::RESOLVE_TIME.to_owned());
    let h = metrics.histogram(&resolve).expect("one resolution");
    assert_eq!(h.count, 1);
    assert!(h.max >= Duration::from_millis(100), "{h:?}");
    assert!(
        metrics
            .executor_histogram(&resolve, Some("default"))
            .is_none(),
        "the resolver's time is not the task executor's"
    );
    let resolved = ["p", "q"]
        .into_iter()
        .find(|id| metrics.tasks[*id].resolve_time > Duration::ZERO)
        .expect("one task was resolved");
    // Its one pass ran and merged (with a conflict); the resolver ran after.
    assert_eq!(metrics.tasks[resolved].attempts, 1);
    assert_eq!(
        metrics.tasks[resolved].resolve_time, h.total,
        "one resolution, one task"
    );
}

/// An agent that prints fast leaves a backlog for a slow journal when the run ends; the
/// writer must finish it, lifecycle events included, or the metrics (and `status`) would
/// miss how the run ended. (A writer that skips output lines in its own subscription loses
/// them here: its final non-blocking receives run out of tokio's cooperative budget.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_of_output_at_the_end_of_a_run_is_journaled_in_full() {
    const LINES: usize = 3_000;
    let tmp = tempfile::tempdir().expect("tempdir");
    let (repo, run_dir) = (tmp.path().join("repo"), tmp.path().join("run"));
    write(&repo, "README.md", "# sample\n");
    // It prints and changes nothing, so the run ends right after its last line.
    let executors = Executors::single(FnExecutor::new(|job: Job| async move {
        for i in 0..LINES {
            job.progress
                .log(crate::LogStream::Stdout, &format!("line {i}"));
        }
        Ok(ExecOutput::default())
    }));
    let plan = Plan::default()
        .with_task(Task::new("chatty", ""))
        .validate()
        .expect("valid plan");
    // Room for every event, so nothing is lost to lag: only the end of the run is tested.
    let bus = crate::EventBus::new(1 << 14);
    // A slow journal (as a slow disk would be) keeps the writer well behind the agent.
    let slow: crate::JournalHook = Arc::new(|_step| std::thread::sleep(Duration::from_micros(100)));
    let options = EngineOptions::new(&repo, &run_dir)
        .backend(Some(Backend::Copy))
        .journal_hook(slow)
        .run(RunOptions::default().jobs(1).bus(bus));
    let outcome = run_engine(&plan, &executors, options).await.expect("run");
    assert!(outcome.is_success(), "{:?}", outcome.run);
    let journal = std::fs::read_to_string(run_dir.join("journal.jsonl")).expect("journal");
    let logs = journal.matches(r#""kind":"task_log""#).count();
    assert_eq!(logs, LINES, "every output line");
    for kind in ["changes_collected", "task_succeeded", "run_finished"] {
        assert!(journal.contains(&format!(r#""kind":"{kind}""#)), "{kind}");
    }
    let metrics = &outcome.metrics;
    assert_eq!(metrics.counter("succeeded"), 1);
    assert_eq!(metrics.counter("events_lost"), 0);
    assert_eq!(
        metrics.histogram(&MetricKind::RunTime).map(|h| h.count),
        Some(1)
    );
}
