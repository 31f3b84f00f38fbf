//! Deterministic scheduler tests on tokio's paused clock: retries and backoff, timeouts,
//! rate-limit pauses, fail-fast, keep-going, cancellation, ordering, pools and events.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

use super::*;
use crate::executor::{ExecError, ExecOutput, FnExecutor, Job};
use crate::plan::{Plan, Task};

/// What the test executors saw: (task, attempt, start offset in ms).
type Log = Arc<Mutex<Vec<(String, u32, u64)>>>;

fn plan(tasks: Vec<Task>) -> ValidatedPlan {
    Plan::new(tasks).validate().expect("valid test plan")
}

fn opts() -> RunOptions {
    RunOptions::default()
        .jobs(4)
        .seed(1)
        .backoff(Backoff::fixed_exponential(
            Duration::from_millis(100),
            Duration::from_secs(10),
            2.0,
        ))
}

/// An executor whose behaviour per attempt is `f(task id, attempt)`: `Ok(ms)` sleeps then
/// succeeds, `Err(e)` fails at once. Sleeps end early (with an error) on cancellation.
fn scripted(
    log: &Log,
    f: impl Fn(&str, u32) -> Result<u64, ExecError> + Send + Sync + 'static,
) -> Executors {
    let log = log.clone();
    let origin = Instant::now();
    let f = Arc::new(f);
    Executors::single(FnExecutor::new(move |job: Job| {
        let log = log.clone();
        let f = f.clone();
        async move {
            let at = origin.elapsed().as_millis() as u64;
            log.lock().push((job.task.id.clone(), job.attempt, at));
            let ms = f(&job.task.id, job.attempt)?;
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(ms)) => Ok(ExecOutput::default()),
                () = job.cancel.cancelled() => Err(ExecError::fatal("cancelled")),
            }
        }
    }))
}

fn summary(outcome: &RunOutcome) -> Vec<String> {
    outcome
        .iter()
        .map(|(task, outcome)| format!("{}: {outcome}", task.id))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn retries_with_exponential_backoff() {
    let log = Log::default();
    let executors = scripted(&log, |_, attempt| {
        if attempt < 3 {
            Err(ExecError::retryable("flaky"))
        } else {
            Ok(50)
        }
    });
    let bus = EventBus::new(64);
    let mut events = bus.subscribe();
    let plan = plan(vec![Task::new("a", "").retries(2)]);
    let outcome = run_plan(&plan, &executors, opts().bus(bus))
        .await
        .expect("runs");
    assert_eq!(
        *log.lock(),
        [
            ("a".into(), 1, 0),
            ("a".into(), 2, 100),
            ("a".into(), 3, 300)
        ]
    );
    assert_eq!(summary(&outcome), ["a: succeeded in 50.0ms (3 attempts)"]);
    let mut retrying = Vec::new();
    while let Ok(forge_events::Delivery::Event(event)) = events.try_recv() {
        if let Event::TaskRetrying {
            attempt, delay_ms, ..
        } = event
        {
            retrying.push((attempt, delay_ms));
        }
    }
    assert_eq!(retrying, [(1, 100), (2, 200)]);
}

#[tokio::test(start_paused = true)]
async fn retries_run_out() {
    let log = Log::default();
    let executors = scripted(&log, |_, _| Err(ExecError::retryable("still broken")));
    let plan = plan(vec![
        Task::new("a", "").retries(1),
        Task::new("b", "").deps(["a"]),
    ]);
    let outcome = run_plan(&plan, &executors, opts()).await.expect("runs");
    assert_eq!(
        summary(&outcome),
        [
            "a: failed after 2 attempts: still broken",
            "b: skipped: dependency `a` failed"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn fatal_errors_are_not_retried() {
    let log = Log::default();
    let executors = scripted(&log, |_, _| Err(ExecError::fatal("bad prompt")));
    let plan = plan(vec![Task::new("a", "").retries(5)]);
    let outcome = run_plan(&plan, &executors, opts()).await.expect("runs");
    assert_eq!(summary(&outcome), ["a: failed after 1 attempt: bad prompt"]);
    assert_eq!(log.lock().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn timeout_cancels_the_attempt_and_retries() {
    let log = Log::default();
    let executors = scripted(&log, |_, _| Ok(60_000));
    let plan = plan(vec![
        Task::new("slow", "")
            .timeout(Duration::from_secs(1))
            .retries(1),
    ]);
    let started = Instant::now();
    let outcome = run_plan(&plan, &executors, opts()).await.expect("runs");
    assert_eq!(summary(&outcome), ["slow: timed out after 1s (2 attempts)"]);
    // 1 s, 100 ms backoff, 1 s.
    assert_eq!(started.elapsed(), Duration::from_millis(2100));
    assert_eq!(
        *log.lock(),
        [("slow".into(), 1, 0), ("slow".into(), 2, 1100)]
    );
}

#[tokio::test(start_paused = true)]
async fn attempt_ignoring_its_token_is_dropped_after_grace() {
    let executors = Executors::single(FnExecutor::new(|_job: Job| async {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        Ok(ExecOutput::default())
    }));
    let plan = plan(vec![
        Task::new("stubborn", "").timeout(Duration::from_secs(1)),
    ]);
    let started = Instant::now();
    let outcome = run_plan(&plan, &executors, opts().stop_grace(Duration::from_secs(2)))
        .await
        .expect("runs");
    assert_eq!(started.elapsed(), Duration::from_secs(3));
    assert_eq!(
        summary(&outcome),
        ["stubborn: timed out after 1s (1 attempt)"]
    );
}

#[tokio::test(start_paused = true)]
async fn rate_limit_pauses_the_executor_without_burning_attempts() {
    let log = Log::default();
    let hits = Arc::new(Mutex::new(0));
    let executors = {
        let hits = hits.clone();
        scripted(&log, move |task, _| {
            let mut hits = hits.lock();
            if task == "a" && *hits == 0 {
                *hits += 1;
                return Err(ExecError::rate_limited(Duration::from_secs(5), "429"));
            }
            Ok(10)
        })
    };
    let plan = plan(vec![Task::new("a", ""), Task::new("b", "")]);
    let outcome = run_plan(&plan, &executors, opts().jobs(1))
        .await
        .expect("runs");
    assert_eq!(
        *log.lock(),
        [
            ("a".into(), 1, 0),
            ("a".into(), 1, 5000),
            ("b".into(), 1, 5010)
        ]
    );
    assert_eq!(
        summary(&outcome),
        [
            "a: succeeded in 10.0ms (1 attempt)",
            "b: succeeded in 10.0ms (1 attempt)"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn fail_fast_cancels_running_and_skips_the_rest() {
    let log = Log::default();
    let executors = scripted(&log, |task, _| match task {
        "bad" => Err(ExecError::fatal("boom")),
        _ => Ok(1000),
    });
    let plan = plan(vec![
        Task::new("long", ""),
        Task::new("bad", ""),
        Task::new("after-bad", "").deps(["bad"]),
        Task::new("later", ""),
    ]);
    let started = Instant::now();
    let outcome = run_plan(&plan, &executors, opts().jobs(2))
        .await
        .expect("runs");
    assert_eq!(
        started.elapsed(),
        Duration::ZERO,
        "nothing waits for `long`"
    );
    assert_eq!(
        summary(&outcome),
        [
            "long: cancelled",
            "bad: failed after 1 attempt: boom",
            "after-bad: skipped: dependency `bad` failed",
            "later: skipped: run stopped after `bad` failed",
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn keep_going_skips_exactly_the_descendants() {
    let log = Log::default();
    let executors = scripted(&log, |task, _| match task {
        "b" => Err(ExecError::fatal("boom")),
        _ => Ok(10),
    });
    let plan = plan(vec![
        Task::new("a", ""),
        Task::new("b", "").deps(["a"]),
        Task::new("c", "").deps(["b"]),
        Task::new("d", "").deps(["c", "a"]),
        Task::new("e", "").deps(["a"]),
    ]);
    let outcome = run_plan(&plan, &executors, opts().keep_going(true))
        .await
        .expect("runs");
    assert_eq!(
        summary(&outcome),
        [
            "a: succeeded in 10.0ms (1 attempt)",
            "b: failed after 1 attempt: boom",
            "c: skipped: dependency `b` failed",
            "d: skipped: dependency `b` failed",
            "e: succeeded in 10.0ms (1 attempt)",
        ]
    );
    let counts = outcome.counts();
    assert_eq!((counts.succeeded, counts.failed, counts.skipped), (2, 1, 2));
}

#[tokio::test(start_paused = true)]
async fn cancellation_stops_everything() {
    let log = Log::default();
    let executors = scripted(&log, |_, _| Ok(10_000));
    let plan = plan(vec![
        Task::new("a", ""),
        Task::new("b", ""),
        Task::new("c", "").deps(["a"]),
    ]);
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        trigger.cancel();
    });
    let started = Instant::now();
    let outcome = run_plan(&plan, &executors, opts().cancel(cancel))
        .await
        .expect("runs");
    assert_eq!(started.elapsed(), Duration::from_secs(1));
    assert_eq!(
        summary(&outcome),
        ["a: cancelled", "b: cancelled", "c: skipped: run cancelled"]
    );
}

#[tokio::test(start_paused = true)]
async fn ready_queue_order_priority_then_longest_path() {
    let log = Log::default();
    let executors = scripted(&log, |_, _| Ok(1));
    let plan = plan(vec![
        Task::new("leaf", ""),
        Task::new("head", ""),
        Task::new("mid", "").deps(["head"]),
        Task::new("tail", "").deps(["mid"]),
        Task::new("urgent", "").priority(5),
    ]);
    let _ = run_plan(&plan, &executors, opts().jobs(1))
        .await
        .expect("runs");
    let order: Vec<String> = log.lock().iter().map(|(t, _, _)| t.clone()).collect();
    // `leaf` and `tail` tie (one task left each): plan order decides.
    assert_eq!(order, ["urgent", "head", "mid", "leaf", "tail"]);
}

#[tokio::test(start_paused = true)]
async fn duration_hints_weight_the_path() {
    let log = Log::default();
    let executors = scripted(&log, |_, _| Ok(1));
    let plan = plan(vec![
        Task::new("short-chain", "").duration_hint(Duration::from_secs(1)),
        Task::new("short-chain-2", "")
            .deps(["short-chain"])
            .duration_hint(Duration::from_secs(1)),
        Task::new("one-long", "").duration_hint(Duration::from_secs(60)),
    ]);
    let _ = run_plan(&plan, &executors, opts().jobs(1))
        .await
        .expect("runs");
    let order: Vec<String> = log.lock().iter().map(|(t, _, _)| t.clone()).collect();
    assert_eq!(order, ["one-long", "short-chain", "short-chain-2"]);
}

#[tokio::test(start_paused = true)]
async fn pools_limit_concurrency_without_blocking_others() {
    let log = Log::default();
    let executors = scripted(&log, |_, _| Ok(100));
    let plan = plan(vec![
        Task::new("g1", "").resource("gpu", 1),
        Task::new("g2", "").resource("gpu", 1),
        Task::new("cpu", ""),
    ]);
    let outcome = run_plan(&plan, &executors, opts().pool("gpu", 1))
        .await
        .expect("runs");
    assert!(outcome.is_success());
    assert_eq!(
        *log.lock(),
        [
            ("g1".into(), 1, 0),
            ("cpu".into(), 1, 0),
            ("g2".into(), 1, 100)
        ]
    );
}

#[tokio::test]
async fn bad_options_are_reported_before_anything_runs() {
    let log = Log::default();
    let executors = scripted(&log, |_, _| Ok(0));
    let check = |tasks: Vec<Task>, options: RunOptions, expected: &'static str| {
        let plan = plan(tasks);
        let executors = executors.clone();
        async move {
            let err = run_plan(&plan, &executors, options).await.expect_err("bad");
            assert_eq!(err.to_string(), expected);
        }
    };
    check(
        vec![Task::new("a", "").executor("claude")],
        opts(),
        "task `a` uses executor `claude`, which is not registered (registered: default)",
    )
    .await;
    check(
        vec![Task::new("a", "").resource("gpu", 1)],
        opts(),
        "task `a` asks for resource `gpu`, which is not a pool of this run",
    )
    .await;
    check(
        vec![Task::new("a", "").resource("gpu", 2)],
        opts().pool("gpu", 1),
        "task `a` asks for 2 units of resource `gpu`, which has only 1",
    )
    .await;
    check(
        vec![Task::new("a", "")],
        opts().jobs(0),
        "jobs must be at least 1",
    )
    .await;
    assert!(log.lock().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_panicking_executor_fails_its_task() {
    let executors = Executors::single(FnExecutor::new(|job: Job| async move {
        if job.task.id == "p" {
            panic!("agent exploded");
        }
        Ok(ExecOutput::default())
    }));
    let plan = plan(vec![Task::new("p", ""), Task::new("q", "")]);
    let outcome = run_plan(&plan, &executors, opts().keep_going(true))
        .await
        .expect("runs");
    assert_eq!(
        summary(&outcome)[0],
        "p: failed after 1 attempt: task `p`: executor panicked: agent exploded"
    );
    assert!(outcome.outcomes()[1].is_success());
}

#[tokio::test(start_paused = true)]
async fn events_tell_the_story() {
    let log = Log::default();
    let executors = scripted(&log, |_, _| Ok(5));
    let bus = EventBus::new(64);
    let mut events = bus.subscribe();
    let plan = plan(vec![Task::new("a", ""), Task::new("b", "").deps(["a"])]);
    let _ = run_plan(&plan, &executors, opts().jobs(2).bus(bus))
        .await
        .expect("runs");
    let mut lines = Vec::new();
    while let Ok(forge_events::Delivery::Event(event)) = events.try_recv() {
        lines.push(event.to_json());
    }
    assert_eq!(
        lines,
        [
            r#"{"kind":"run_started","tasks":2,"jobs":2}"#,
            r#"{"kind":"task_ready","task":"a"}"#,
            r#"{"kind":"task_started","task":"a","attempt":1}"#,
            r#"{"kind":"task_succeeded","task":"a","attempts":1,"duration_ms":5}"#,
            r#"{"kind":"task_ready","task":"b"}"#,
            r#"{"kind":"task_started","task":"b","attempt":1}"#,
            r#"{"kind":"task_succeeded","task":"b","attempts":1,"duration_ms":5}"#,
            r#"{"kind":"run_finished","succeeded":2,"failed":0,"skipped":0,"cancelled":0,"duration_ms":10}"#,
        ]
    );
}

/// Three agents flood their output while the only subscriber reads nothing until the run
/// ends: output is shed once the bus is half full, so every lifecycle event is still there
/// (no `Lagged`), and the shed lines are counted exactly.
#[tokio::test(start_paused = true)]
async fn an_output_flood_never_evicts_lifecycle_events() {
    const LINES: u64 = 10_000;
    let executors = Executors::single(FnExecutor::new(|job: Job| async move {
        for i in 0..LINES {
            job.progress
                .log(crate::event::LogStream::Stdout, &format!("line {i}"));
        }
        Ok(ExecOutput::default())
    }));
    let bus = EventBus::new(256);
    let mut events = bus.subscribe();
    let plan = plan(vec![
        Task::new("a", ""),
        Task::new("b", ""),
        Task::new("c", "").deps(["a", "b"]),
    ]);
    let outcome = run_plan(&plan, &executors, opts().jobs(2).bus(bus))
        .await
        .expect("runs");
    assert!(outcome.is_success());
    let mut shown = std::collections::BTreeMap::<String, u64>::new();
    let mut dropped = std::collections::BTreeMap::<String, u64>::new();
    let mut lifecycle = Vec::new();
    loop {
        match events.try_recv() {
            Ok(forge_events::Delivery::Event(event)) => match event {
                Event::TaskLog { task, .. } => *shown.entry(task).or_default() += 1,
                Event::TaskOutputDropped { task, lines, .. } => {
                    *dropped.entry(task).or_default() += lines;
                }
                other => lifecycle.push(other.to_json()),
            },
            Ok(forge_events::Delivery::Lagged(n)) => panic!("the subscriber lagged by {n}"),
            Err(_) => break,
        }
    }
    for task in ["a", "b", "c"] {
        let shown = shown.get(task).copied().unwrap_or(0);
        let dropped = dropped.get(task).copied().unwrap_or(0);
        assert_eq!(shown + dropped, LINES, "task {task}: {lifecycle:?}");
        assert!(dropped > 0 && shown < 256, "task {task}: {shown} shown");
    }
    let kinds: Vec<&str> = lifecycle
        .iter()
        .map(|j| j.split('"').nth(3).expect("a kind"))
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "task_succeeded").count(),
        3,
        "{lifecycle:?}"
    );
    assert_eq!(kinds.first(), Some(&"run_started"));
    assert_eq!(kinds.last(), Some(&"run_finished"));
}

/// A rate-limited attempt asking for an absurd pause: the pause is cut to the task's timeout
/// (no panic adding `Duration::MAX` to the clock, no run that never ends).
#[tokio::test(start_paused = true)]
async fn trust_13_a_huge_rate_limit_pause_is_cut_to_the_task_timeout() {
    let log = Log::default();
    let executors = scripted(&log, |_, _| {
        Err(ExecError::rate_limited(Duration::MAX, "429"))
    });
    let plan = plan(vec![Task::new("a", "").timeout(Duration::from_secs(10))]);
    let started = Instant::now();
    let outcome = run_plan(
        &plan,
        &executors,
        opts().rate_limit_budget(3, Duration::MAX),
    )
    .await
    .expect("runs");
    assert_eq!(started.elapsed(), Duration::from_secs(30));
    assert_eq!(
        summary(&outcome),
        [
            "a: failed after 1 attempt: 429; rate limited 4 times (paused 30s in total); gave up \
          after the limit of 3 pauses"
        ]
    );
}

/// Without a task timeout, one pause is at most [`MAX_RATE_LIMIT_PAUSE`], and the pauses
/// together stay within the run's budget; the failure says how long the task was paused.
#[tokio::test(start_paused = true)]
async fn trust_13_rate_limit_pauses_are_bounded_in_total() {
    let log = Log::default();
    let executors = scripted(&log, |_, _| {
        Err(ExecError::rate_limited(Duration::from_secs(60), "429"))
    });
    let plan = plan(vec![Task::new("a", "")]);
    let started = Instant::now();
    let outcome = run_plan(
        &plan,
        &executors,
        opts().rate_limit_budget(20, Duration::from_secs(150)),
    )
    .await
    .expect("runs");
    assert_eq!(started.elapsed(), Duration::from_secs(120));
    assert_eq!(log.lock().len(), 3);
    assert_eq!(
        summary(&outcome),
        [
            "a: failed after 1 attempt: 429; rate limited 3 times (paused 120s in total); a pause \
          of 60s more would pass the limit of 150s"
        ]
    );

    let executors = scripted(&log, |_, _| {
        Err(ExecError::rate_limited(
            Duration::from_secs(u64::MAX / 4),
            "429",
        ))
    });
    let started = Instant::now();
    let outcome = run_plan(&plan, &executors, opts()).await.expect("runs");
    assert_eq!(started.elapsed(), MAX_RATE_LIMIT_PAUSE);
    assert!(
        summary(&outcome)[0].contains("paused 86400s in total"),
        "{:?}",
        summary(&outcome)
    );
}

/// Cancelling the run ends a rate-limit pause at once.
#[tokio::test(start_paused = true)]
async fn trust_13_cancellation_ends_a_rate_limit_pause() {
    let log = Log::default();
    let executors = scripted(&log, |_, _| {
        Err(ExecError::rate_limited(Duration::from_secs(3600), "429"))
    });
    let plan = plan(vec![Task::new("a", ""), Task::new("b", "").deps(["a"])]);
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        trigger.cancel();
    });
    let started = Instant::now();
    let outcome = run_plan(&plan, &executors, opts().cancel(cancel))
        .await
        .expect("runs");
    assert_eq!(started.elapsed(), Duration::from_secs(1));
    assert_eq!(
        summary(&outcome),
        ["a: skipped: run cancelled", "b: skipped: run cancelled"]
    );
}

/// A second interrupt: `abort` drops attempts that ignore their token at once instead of
/// after the stop grace period, and the run still gives every task an outcome.
#[tokio::test(start_paused = true)]
async fn trust_16_abort_drops_running_attempts_at_once() {
    let dropped = Arc::new(Mutex::new(0));
    struct Count(Arc<Mutex<u32>>);
    impl Drop for Count {
        fn drop(&mut self) {
            *self.0.lock() += 1;
        }
    }
    let executors = {
        let dropped = dropped.clone();
        Executors::single(FnExecutor::new(move |_job: Job| {
            let count = Count(dropped.clone());
            async move {
                let _count = count;
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok(ExecOutput::default())
            }
        }))
    };
    let plan = plan(vec![Task::new("a", ""), Task::new("b", "")]);
    let (cancel, abort) = (CancellationToken::new(), CancellationToken::new());
    let mut options = opts()
        .cancel(cancel.clone())
        .stop_grace(Duration::from_secs(60));
    options.abort = abort.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        cancel.cancel();
        tokio::time::sleep(Duration::from_secs(1)).await;
        abort.cancel();
    });
    let started = Instant::now();
    let outcome = run_plan(&plan, &executors, options).await.expect("runs");
    assert_eq!(started.elapsed(), Duration::from_secs(2));
    assert_eq!(*dropped.lock(), 2, "both attempts were dropped");
    assert_eq!(summary(&outcome), ["a: cancelled", "b: cancelled"]);
}
