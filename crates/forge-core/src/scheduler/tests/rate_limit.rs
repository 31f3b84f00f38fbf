//! Scheduler tests of rate limits: a rate-limited attempt pauses its executor without
//! burning an attempt, and the pauses are bounded (per pause, in total) and cancellable.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

use super::*;

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
