//! Tests of the metrics derivation: a property test against a model of timed attempts, the
//! edge cases of real journals (out of order, crashed, resumed), and real engine runs.

mod engine;

use std::collections::BTreeSet;
use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::plan::Task;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn task(id: &str) -> String {
    id.to_owned()
}

/// How the lock request of an attempt goes.
#[derive(Debug, Clone, Copy)]
enum Lock {
    /// Granted at once.
    Free,
    /// Granted after waiting this long.
    Wait(u64),
    /// Given up as a deadlock victim after this long (the attempt fails).
    Victim(u64),
    /// Still waiting when the attempt times out after this long.
    TimedOut(u64),
}

/// One attempt of a task in the model.
#[derive(Debug, Clone)]
struct Attempt {
    /// Queue wait before it starts.
    queue: u64,
    lock: Lock,
    /// (run, merge) of each pass; every pass but the last conflicts.
    passes: Vec<(u64, u64)>,
    /// Backoff after it fails (when it is not the last attempt).
    delay: u64,
    /// When it is the last attempt: its last pass conflicts too and a resolver takes this
    /// long to get it committed.
    resolve: Option<u64>,
}

/// One task of the model: when it becomes ready, its executor and attempts; every attempt
/// but the last fails (its last pass's executor fails, or it is a deadlock victim), the last
/// one is merged.
#[derive(Debug, Clone)]
struct Script {
    ready_at: u64,
    executor: usize,
    attempts: Vec<Attempt>,
}

fn attempt() -> impl Strategy<Value = Attempt> {
    let lock = prop_oneof![
        Just(Lock::Free),
        (0..40u64).prop_map(Lock::Wait),
        (0..40u64).prop_map(Lock::Victim),
        (0..40u64).prop_map(Lock::TimedOut),
    ];
    (
        0..30u64,
        lock,
        prop::collection::vec((0..60u64, 0..20u64), 1..4),
        0..30u64,
        prop::option::of(0..50u64),
    )
        .prop_map(|(queue, lock, passes, delay, resolve)| Attempt {
            queue,
            lock,
            passes,
            delay,
            resolve,
        })
}

fn script() -> impl Strategy<Value = Script> {
    (0..100u64, 0..2usize, prop::collection::vec(attempt(), 1..4)).prop_map(
        |(ready_at, executor, mut attempts)| {
            // The last attempt succeeds, so it cannot lose its lock wait.
            if let Some(last) = attempts.last_mut()
                && let Lock::Victim(w) | Lock::TimedOut(w) = last.lock
            {
                last.lock = Lock::Wait(w);
            }
            Script {
                ready_at,
                executor,
                attempts,
            }
        },
    )
}

/// What the model expects: samples per kind and executor, counters, per-task totals.
#[derive(Default)]
struct Expected {
    samples: BTreeMap<(MetricKind, Option<String>), Vec<Duration>>,
    counters: BTreeMap<&'static str, u64>,
    tasks: BTreeMap<String, TaskTimes>,
}

impl Expected {
    fn sample(&mut self, kind: MetricKind, id: &str, executor: &str, d: u64) {
        let times = self.tasks.entry(id.to_owned()).or_default();
        match kind {
            MetricKind::QueueWait => times.queue_wait += ms(d),
            MetricKind::LockWait => times.lock_wait += ms(d),
            MetricKind::RunTime => times.run_time += ms(d),
            MetricKind::MergeTime => times.merge_time += ms(d),
            MetricKind::Custom(_) => times.resolve_time += ms(d),
        }
        let executor = match kind {
            MetricKind::Custom(_) => None,
            _ => Some(executor.to_owned()),
        };
        for key in [None, executor].into_iter().collect::<BTreeSet<_>>() {
            self.samples
                .entry((kind.clone(), key))
                .or_default()
                .push(ms(d));
        }
    }

    fn count(&mut self, counter: &'static str) {
        *self.counters.entry(counter).or_default() += 1;
    }
}

/// The events of one task with their times (and a sequence number that keeps their order
/// when times tie), plus what the model expects of them.
fn play(id: &str, script: &Script, expected: &mut Expected) -> Vec<(u64, usize, Event)> {
    let executor = format!("e{}", script.executor);
    let mut events = Vec::new();
    let mut push = |at: u64, event: Event| {
        let seq = events.len();
        events.push((at, seq, event));
    };
    let mut now = script.ready_at;
    push(now, Event::TaskReady { task: task(id) });
    let n_attempts = script.attempts.len();
    for (i, a) in script.attempts.iter().enumerate() {
        let last = i + 1 == n_attempts;
        let attempt = u32::try_from(i + 1).expect("few attempts");
        now += a.queue;
        push(
            now,
            Event::TaskStarted {
                task: task(id),
                attempt,
            },
        );
        expected.count("attempts");
        expected.tasks.entry(id.to_owned()).or_default().attempts += 1;
        expected.sample(MetricKind::QueueWait, id, &executor, a.queue);
        let wait = |now: u64, push: &mut dyn FnMut(u64, Event)| {
            push(
                now,
                Event::LockWaiting {
                    task: task(id),
                    reads: vec![],
                    writes: vec!["src/**".into()],
                    holders: vec!["other".into()],
                },
            );
        };
        match a.lock {
            Lock::Free => {
                push(
                    now,
                    Event::LockAcquired {
                        task: task(id),
                        waited_ms: 0,
                    },
                );
                expected.sample(MetricKind::LockWait, id, &executor, 0);
            }
            Lock::Wait(w) => {
                wait(now, &mut push);
                // The engine's own measure may differ from the journal's times by a little;
                // the recorder trusts the engine's.
                now += w + 1;
                push(
                    now,
                    Event::LockAcquired {
                        task: task(id),
                        waited_ms: w,
                    },
                );
                expected.count("lock_waits");
                expected.sample(MetricKind::LockWait, id, &executor, w);
            }
            Lock::Victim(w) => {
                wait(now, &mut push);
                now += w;
                push(
                    now,
                    Event::Deadlock {
                        victim: task(id),
                        cycle: format!("{id} -> other -> {id}"),
                    },
                );
                expected.count("lock_waits");
                expected.count("deadlocks");
                expected.sample(MetricKind::LockWait, id, &executor, w);
                push(now, retrying(id, attempt, a.delay));
                expected.count("retries");
                now += a.delay;
                continue;
            }
            Lock::TimedOut(w) => {
                wait(now, &mut push);
                now += w;
                expected.count("lock_waits");
                expected.sample(MetricKind::LockWait, id, &executor, w);
                push(now, retrying(id, attempt, a.delay));
                expected.count("retries");
                now += a.delay;
                continue;
            }
        }
        let n_passes = a.passes.len();
        for (p, &(run, merge)) in a.passes.iter().enumerate() {
            let last_pass = p + 1 == n_passes;
            push(
                now,
                Event::ViewOpened {
                    task: task(id),
                    generation: 0,
                    backend: "copy".into(),
                },
            );
            now += run;
            expected.sample(MetricKind::RunTime, id, &executor, run);
            if last_pass && !last {
                // The executor fails: no changes collected, no merge.
                push(now, retrying(id, attempt, a.delay));
                expected.count("retries");
                now += a.delay;
                break;
            }
            push(
                now,
                Event::ChangesCollected {
                    task: task(id),
                    paths: 1,
                },
            );
            now += merge;
            expected.sample(MetricKind::MergeTime, id, &executor, merge);
            if let (true, Some(resolve)) = (last_pass, a.resolve) {
                push(
                    now,
                    Event::MergeConflict {
                        task: task(id),
                        paths: vec!["src/shared.txt".into()],
                    },
                );
                expected.count("conflicts");
                now += resolve;
                expected.sample(
                    MetricKind::Custom(RESOLVE_TIME.into()),
                    id,
                    &executor,
                    resolve,
                );
            }
            if last_pass {
                push(
                    now,
                    Event::TaskMerged {
                        task: task(id),
                        generation: 1,
                        paths: 1,
                    },
                );
                push(
                    now,
                    Event::GenerationCommitted {
                        task: task(id),
                        generation: 1,
                        paths: 1,
                    },
                );
                expected.count("commits");
                now += 1;
                push(
                    now,
                    Event::TaskSucceeded {
                        task: task(id),
                        attempts: attempt,
                        duration_ms: 0,
                    },
                );
                expected.count("succeeded");
            } else {
                push(
                    now,
                    Event::MergeConflict {
                        task: task(id),
                        paths: vec!["src/shared.txt".into()],
                    },
                );
                expected.count("conflicts");
            }
        }
    }
    events
}

fn retrying(id: &str, attempt: u32, delay: u64) -> Event {
    Event::TaskRetrying {
        task: task(id),
        attempt,
        delay_ms: delay,
        error: "failed".into(),
    }
}

/// The nearest-rank percentile, written out independently of forge-events.
fn percentile(sorted: &[Duration], percent: usize) -> Duration {
    let rank = (percent * sorted.len()).div_ceil(100).max(1);
    sorted[rank - 1]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Random runs of interleaved tasks, each with retries, deadlocks, lock waits and
    /// conflicted passes at known times: every histogram, counter and per-task total is what
    /// the model says.
    #[test]
    fn derived_metrics_match_the_model(scripts in prop::collection::vec(script(), 1..6)) {
        let mut expected = Expected::default();
        let mut plan = Plan::default();
        let mut events = Vec::new();
        for (task_idx, script) in scripts.iter().enumerate() {
            let id = format!("t{task_idx}");
            plan = plan.with_task(Task::new(&id, "").executor(format!("e{}", script.executor)));
            events.extend(
                play(&id, script, &mut expected)
                    .into_iter()
                    .map(|(at, seq, event)| (at, task_idx, seq, event)),
            );
        }
        // Interleave the tasks by time; each task's own order is kept.
        events.sort_by_key(|(at, task_idx, seq, _)| (*at, *task_idx, *seq));
        let mut recorder = MetricsRecorder::new(&plan);
        for (at, _, _, event) in &events {
            recorder.observe(event, 1_700_000_000_000 + at);
        }
        let metrics = recorder.snapshot();

        let got: Vec<_> = metrics
            .summary
            .histograms
            .iter()
            .map(|h| ((h.kind.clone(), h.executor.clone()), (h.count, h.min, h.median, h.p90, h.max, h.total)))
            .collect();
        let want: Vec<_> = expected
            .samples
            .iter_mut()
            .map(|(key, samples)| {
                samples.sort_unstable();
                let stats = (
                    samples.len() as u64,
                    samples[0],
                    percentile(samples, 50),
                    percentile(samples, 90),
                    samples[samples.len() - 1],
                    samples.iter().sum(),
                );
                (key.clone(), stats)
            })
            .collect();
        prop_assert_eq!(got, want);
        for name in METRIC_COUNTERS {
            prop_assert_eq!(
                metrics.counter(name),
                expected.counters.get(name).copied().unwrap_or(0),
                "counter {}", name
            );
        }
        prop_assert_eq!(&metrics.tasks, &expected.tasks);
        let path = metrics.summary.critical_path.as_ref().expect("every task merged");
        prop_assert_eq!(path.tasks.len(), 1, "no dependencies: one task is the path");
    }
}

/// Feeds `(at_ms, event)` pairs to a recorder that knows no plan.
fn derive(events: &[(u64, Event)]) -> RunMetrics {
    let mut recorder = MetricsRecorder::default();
    for (at, event) in events {
        recorder.observe(event, *at);
    }
    recorder.snapshot()
}

fn samples(metrics: &RunMetrics, kind: &MetricKind) -> (u64, Duration) {
    metrics
        .histogram(kind)
        .map_or((0, Duration::ZERO), |h| (h.count, h.total))
}

#[test]
fn a_commit_recorded_before_its_changes_collected_is_closed_by_generation_committed() {
    // Journals written before the engine ordered its own records behind the bus events
    // (2026-11-22) can hold task_merged before changes_collected; they still read right.
    let metrics = derive(&[
        (0, Event::TaskReady { task: task("a") }),
        (
            0,
            Event::TaskStarted {
                task: task("a"),
                attempt: 1,
            },
        ),
        (
            1,
            Event::ViewOpened {
                task: task("a"),
                generation: 0,
                backend: "copy".into(),
            },
        ),
        (
            20,
            Event::TaskMerged {
                task: task("a"),
                generation: 1,
                paths: 1,
            },
        ),
        (
            21,
            Event::ChangesCollected {
                task: task("a"),
                paths: 1,
            },
        ),
        (
            22,
            Event::GenerationCommitted {
                task: task("a"),
                generation: 1,
                paths: 1,
            },
        ),
        (
            30,
            Event::TaskSucceeded {
                task: task("a"),
                attempts: 1,
                duration_ms: 30,
            },
        ),
    ]);
    assert_eq!(samples(&metrics, &MetricKind::RunTime), (1, ms(20)));
    assert_eq!(samples(&metrics, &MetricKind::MergeTime), (1, ms(1)));
    assert_eq!(metrics.counter("commits"), 1);
    assert_eq!(metrics.counter("succeeded"), 1);
}

#[test]
fn a_crashed_run_counts_only_what_ended_and_a_resume_drops_what_was_open() {
    let started = |at: u64, attempt: u32| {
        (
            at,
            Event::TaskStarted {
                task: task("a"),
                attempt,
            },
        )
    };
    let view = |at: u64| {
        (
            at,
            Event::ViewOpened {
                task: task("a"),
                generation: 0,
                backend: "copy".into(),
            },
        )
    };
    let waiting = |at: u64| {
        (
            at,
            Event::LockWaiting {
                task: task("b"),
                reads: vec![],
                writes: vec!["x".into()],
                holders: vec!["a".into()],
            },
        )
    };
    let mut events = vec![
        (0, Event::TaskReady { task: task("a") }),
        (0, Event::TaskReady { task: task("b") }),
        started(5, 1),
        view(6),
        waiting(6),
    ];
    // The process died here: the running attempt and the lock wait never ended.
    let crashed = derive(&events);
    assert_eq!(samples(&crashed, &MetricKind::QueueWait), (1, ms(5)));
    assert_eq!(samples(&crashed, &MetricKind::RunTime), (0, Duration::ZERO));
    assert_eq!(
        samples(&crashed, &MetricKind::LockWait),
        (0, Duration::ZERO)
    );
    assert_eq!(crashed.counter("lock_waits"), 1);
    assert!(crashed.summary.critical_path.is_none());

    // An hour later it is resumed: the hour is nobody's wait or run time.
    events.extend([
        (
            3_600_000,
            Event::RunResumed {
                generation: 0,
                rerun: vec!["a".into(), "b".into()],
            },
        ),
        (3_600_000, Event::TaskReady { task: task("a") }),
        started(3_600_002, 1),
        view(3_600_003),
        (
            3_600_013,
            Event::TaskFailed {
                task: task("a"),
                attempts: 1,
                error: "boom".into(),
                timed_out: false,
            },
        ),
        (
            3_600_013,
            Event::TaskSkipped {
                task: task("b"),
                reason: "dependency `a` failed".into(),
            },
        ),
    ]);
    let resumed = derive(&events);
    assert_eq!(samples(&resumed, &MetricKind::QueueWait), (2, ms(7)));
    assert_eq!(samples(&resumed, &MetricKind::RunTime), (1, ms(10)));
    assert_eq!(
        samples(&resumed, &MetricKind::LockWait),
        (0, Duration::ZERO)
    );
    assert_eq!(resumed.tasks["a"].attempts, 2);
    assert_eq!(
        (
            resumed.counter("failed"),
            resumed.counter("skipped"),
            resumed.counter("attempts")
        ),
        (1, 1, 2)
    );
}

#[test]
fn backoffs_and_rate_limit_pauses_are_not_queue_wait() {
    let metrics = derive(&[
        (0, Event::TaskReady { task: task("a") }),
        (
            2,
            Event::TaskStarted {
                task: task("a"),
                attempt: 1,
            },
        ),
        (
            10,
            Event::ExecutorPaused {
                executor: "default".into(),
                task: task("a"),
                retry_after_ms: 1_000,
                error: "rate limited".into(),
            },
        ),
        // Started again 5 ms after the pause ended.
        (
            1_015,
            Event::TaskStarted {
                task: task("a"),
                attempt: 1,
            },
        ),
        (
            1_020,
            Event::TaskRetrying {
                task: task("a"),
                attempt: 1,
                delay_ms: 100,
                error: "exit 75".into(),
            },
        ),
        // A late start (a busy slot) after the backoff: 3 ms of queue wait.
        (
            1_123,
            Event::TaskStarted {
                task: task("a"),
                attempt: 2,
            },
        ),
    ]);
    let queue = metrics.histogram(&MetricKind::QueueWait).expect("samples");
    assert_eq!((queue.count, queue.total, queue.max), (3, ms(10), ms(5)));
    assert_eq!(
        (
            metrics.counter("rate_limited"),
            metrics.counter("retries"),
            metrics.counter("attempts")
        ),
        (1, 1, 3)
    );
}

#[test]
fn samples_are_split_by_executor_when_the_plan_is_known() {
    let plan = Plan::default()
        .with_task(Task::new("a", "").executor("claude"))
        .with_task(Task::new("b", "").deps(["a"]));
    let mut recorder = MetricsRecorder::new(&plan);
    for (at, id) in [(0, "a"), (10, "b")] {
        recorder.observe(&Event::TaskReady { task: task(id) }, at);
        recorder.observe(
            &Event::TaskStarted {
                task: task(id),
                attempt: 1,
            },
            at + 1,
        );
        recorder.observe(
            &Event::TaskMerged {
                task: task(id),
                generation: 0,
                paths: 0,
            },
            at + 9,
        );
    }
    let metrics = recorder.snapshot();
    assert_eq!(metrics.executors(), ["claude", "default"]);
    let queue = |executor| {
        metrics
            .executor_histogram(&MetricKind::QueueWait, executor)
            .map(|h| h.count)
    };
    assert_eq!(
        (queue(None), queue(Some("claude")), queue(Some("default"))),
        (Some(2), Some(1), Some(1))
    );
    let path = metrics.summary.critical_path.clone().expect("spans");
    assert_eq!(path.tasks, ["a", "b"]);
    assert_eq!(path.total, ms(16));
}

#[test]
fn every_counter_is_in_the_json_also_at_zero_and_it_round_trips() {
    let metrics = derive(&[
        (0, Event::TaskReady { task: task("a") }),
        (
            0,
            Event::TaskStarted {
                task: task("a"),
                attempt: 1,
            },
        ),
    ]);
    let json = metrics.to_json();
    let value: serde_json::Value = serde_json::from_str(&json).expect("json");
    for name in METRIC_COUNTERS {
        let expected = u64::from(name == "attempts");
        assert_eq!(value["summary"]["counters"][name], expected, "{name}");
    }
    assert_eq!(value["tasks"]["a"]["queue_wait_ms"], 0);
    let back: RunMetrics = serde_json::from_str(&json).expect("round trip");
    assert_eq!(back, metrics);
    assert_eq!(RunMetrics::default().counter("attempts"), 0);
}
