//! Run metrics derived from [`Event`]s: how long each task waited in the ready queue and for
//! path locks, ran, and merged, per executor, with counters and the critical path. One
//! derivation serves a live run and a journal read back, also the journal of a crashed run.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::Duration;

use forge_events::{MetricKind, Metrics, Summary, TaskSpan};
use serde::{Deserialize, Serialize};

use crate::event::Event;
use crate::plan::Plan;

/// The counters a [`MetricsRecorder`] keeps; every one is present in its summary, also at 0.
///
/// | counter | counts |
/// |---|---|
/// | `attempts` | `task_started` events (an attempt that starts again after a rate-limit pause counts again) |
/// | `retries` | `task_retrying`: attempts that failed and are tried again after a backoff |
/// | `rate_limited` | `executor_paused`: attempts that hit a rate limit |
/// | `lock_waits` | `lock_waiting`: lock requests that could not be granted at once |
/// | `deadlocks` | `deadlock`: lock waits given up by a deadlock victim |
/// | `conflicts` | `merge_conflict`: passes whose merge into the head conflicted |
/// | `stale_reruns` | `stale_reads` with `rerun`: passes thrown away because their reads went stale |
/// | `scope_violations` | `scope_violation`: passes that wrote outside their declared writes |
/// | `commits` | `generation_committed`: new generations |
/// | `succeeded`, `failed`, `skipped`, `cancelled` | tasks that ended so |
/// | `events_lost` | events the journal writer missed (the metrics miss them too) |
/// | `output_dropped` | output reports shed while the event bus was congested (`task_output_dropped`) |
pub const METRIC_COUNTERS: [&str; 15] = [
    "attempts",
    "retries",
    "rate_limited",
    "lock_waits",
    "deadlocks",
    "conflicts",
    "stale_reruns",
    "scope_violations",
    "commits",
    "succeeded",
    "failed",
    "skipped",
    "cancelled",
    "events_lost",
    "output_dropped",
];

/// The [`MetricKind::Custom`] name of the time a resolver took (see [`MetricsRecorder`]).
pub const RESOLVE_TIME: &str = "resolve_time";

/// Derives [`Metrics`] from a run's events and the times they happened.
///
/// Feed it every event of a run in order with [`observe`](MetricsRecorder::observe): the
/// records of a journal with their `ts_ms`, or bus events with the time they arrived. Times
/// are milliseconds on any clock that does not go backwards; only differences count.
///
/// In a journal, the events published on the bus are stamped when the journal writer drains
/// them (normally within a millisecond of being published; later behind a burst of output
/// lines, which go through the same writer until output is shed at half the bus). The
/// engine's own records (`commit_started`, `task_merged`) go through that writer too, after
/// everything published before them, so the journal keeps the order things happened in; the
/// definitions below close each interval at the first event that can end it, so a late
/// stamp shortens or lengthens a duration by the writer's delay, never more. On the bus
/// there is no
/// `task_merged` (it is journaled only), so there a merge ends at `generation_committed` or
/// when the attempt ends.
///
/// # What is measured
///
/// Each duration is one sample of a histogram, recorded twice: once for all executors and
/// once for the task's executor (when the recorder knows the plan). A duration that would be
/// negative (events written out of order) counts as zero.
///
/// - **queue wait** ([`MetricKind::QueueWait`]), one sample per attempt start: from the moment
///   the task could run until `task_started`. It could run at `task_ready` (its dependencies
///   succeeded); after a failed attempt, when its backoff ended (`task_retrying` plus
///   `delay_ms`); after a rate limit, when its executor's pause ended (`executor_paused`
///   plus `retry_after_ms`). So backoffs and pauses are not queue wait; waiting for a free
///   job slot or resource pool is.
/// - **lock wait** ([`MetricKind::LockWait`]), one sample per lock request (the declared locks
///   before the view opens, and each request an executor makes while running): the engine's
///   own `waited_ms` from `lock_acquired` (0 when granted at once); a wait that ends without
///   a grant (a `deadlock` victim, or the attempt ending) lasts from `lock_waiting` to then.
/// - **run time** ([`MetricKind::RunTime`]), one sample per pass (an attempt has one pass,
///   plus one per conflict or stale-read re-run): from `view_opened` until
///   `changes_collected`, that is, the executor in its view plus collecting what it changed;
///   if the executor fails, until the attempt ends.
/// - **merge time** ([`MetricKind::MergeTime`]), one sample per pass whose changes were
///   collected: from `changes_collected` until the pass's merge ended, by `task_merged` or
///   `generation_committed` (committed), `merge_conflict`, `stale_reads` with `rerun`, or the
///   attempt ending (a scope rejection, or no record of the commit). It includes the scope
///   check, waiting for the commit lock (commits are serialized), the three-way merge and the
///   commit with its journal fsync.
/// - **resolve time** (`MetricKind::Custom("resolve_time")`, [`RESOLVE_TIME`]), for all
///   executors only: under [`ConflictPolicy::Resolve`](crate::ConflictPolicy::Resolve), from
///   `merge_conflict` until the resolved changes are committed (`task_merged` or
///   `generation_committed`) with no view opened in between (that would be a re-run). A
///   resolution that fails is not counted.
///
/// An attempt ends with `task_succeeded`, `task_failed`, `task_cancelled`, `task_retrying`
/// or `executor_paused`. Intervals still open when the events stop (a crashed run, a live
/// run still going) are not counted; `run_resumed` drops them, since the process that would
/// have closed them died. Each task's span for the critical path runs from its first
/// `task_started` (since the last `run_resumed`) to its `task_merged`. The counters are
/// listed in [`METRIC_COUNTERS`].
///
/// ```
/// use forge_core::{Event, MetricsRecorder};
/// use forge_core::events::MetricKind;
///
/// let mut recorder = MetricsRecorder::default();
/// let task = || "api".to_owned();
/// recorder.observe(&Event::TaskReady { task: task() }, 1_000);
/// recorder.observe(&Event::TaskStarted { task: task(), attempt: 1 }, 1_004);
/// recorder.observe(&Event::LockAcquired { task: task(), waited_ms: 0 }, 1_004);
/// recorder.observe(&Event::ViewOpened { task: task(), generation: 0, backend: "copy".into() }, 1_010);
/// recorder.observe(&Event::ChangesCollected { task: task(), paths: 1 }, 1_510);
/// recorder.observe(&Event::TaskMerged { task: task(), generation: 1, paths: 1 }, 1_530);
/// let metrics = recorder.snapshot();
/// let run = metrics.histogram(&MetricKind::RunTime).expect("one sample");
/// assert_eq!(run.max.as_millis(), 500);
/// assert_eq!(metrics.tasks["api"].merge_time.as_millis(), 20);
/// assert_eq!(metrics.counter("attempts"), 1);
/// ```
#[derive(Debug)]
pub struct MetricsRecorder {
    metrics: Metrics,
    executor_of: HashMap<String, String>,
    deps_of: HashMap<String, Vec<String>>,
    open: HashMap<String, Open>,
    tasks: BTreeMap<String, TaskTimes>,
    merged: HashSet<String>,
    first_ms: Option<u64>,
}

/// What is under way for one task: the start of each interval not closed yet.
#[derive(Debug, Default)]
struct Open {
    eligible_ms: Option<u64>,
    lock_waits: VecDeque<u64>,
    run_from: Option<u64>,
    merge_from: Option<u64>,
    resolve_from: Option<u64>,
    first_started_ms: Option<u64>,
}

impl Default for MetricsRecorder {
    /// A recorder that knows no plan: samples are not split by executor and the critical
    /// path ignores dependencies.
    fn default() -> Self {
        let metrics = Metrics::default();
        for counter in METRIC_COUNTERS {
            metrics.add(counter, 0);
        }
        Self {
            metrics,
            executor_of: HashMap::new(),
            deps_of: HashMap::new(),
            open: HashMap::new(),
            tasks: BTreeMap::new(),
            merged: HashSet::new(),
            first_ms: None,
        }
    }
}

impl MetricsRecorder {
    /// A recorder for a run of `plan`: it knows each task's executor and dependencies.
    pub fn new(plan: &Plan) -> Self {
        let mut recorder = Self::default();
        for task in &plan.tasks {
            recorder
                .executor_of
                .insert(task.id.clone(), task.executor.clone());
            recorder.deps_of.insert(task.id.clone(), task.deps.clone());
        }
        recorder
    }

    /// The metrics recorded so far.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// A snapshot of everything recorded so far.
    pub fn snapshot(&self) -> RunMetrics {
        RunMetrics {
            summary: self.metrics.summary(),
            tasks: self.tasks.clone(),
        }
    }

    /// Takes one event into account; `at_ms` is when it happened (see the type's docs).
    pub fn observe(&mut self, event: &Event, at_ms: u64) {
        let t0 = *self.first_ms.get_or_insert(at_ms);
        match event {
            Event::TaskReady { task } => self.open(task).eligible_ms = Some(at_ms),
            Event::TaskStarted { task, .. } => {
                self.metrics.incr("attempts");
                self.times(task).attempts += 1;
                let open = self.open(task);
                open.first_started_ms.get_or_insert(at_ms);
                if let Some(from) = open.eligible_ms.take() {
                    self.sample(MetricKind::QueueWait, task, from, at_ms);
                }
            }
            Event::LockWaiting { task, .. } => {
                self.metrics.incr("lock_waits");
                self.open(task).lock_waits.push_back(at_ms);
            }
            Event::LockAcquired { task, waited_ms } => {
                self.open(task).lock_waits.pop_front();
                self.record(
                    MetricKind::LockWait,
                    task,
                    Duration::from_millis(*waited_ms),
                );
            }
            Event::Deadlock { victim, .. } => {
                self.metrics.incr("deadlocks");
                if let Some(from) = self.open(victim).lock_waits.pop_front() {
                    self.sample(MetricKind::LockWait, victim, from, at_ms);
                }
            }
            Event::ViewOpened { task, .. } => {
                self.close_merge(task, at_ms);
                let open = self.open(task);
                open.resolve_from = None;
                open.run_from = Some(at_ms);
            }
            Event::ChangesCollected { task, .. } => {
                if let Some(from) = self.open(task).run_from.take() {
                    self.sample(MetricKind::RunTime, task, from, at_ms);
                }
                self.open(task).merge_from = Some(at_ms);
            }
            Event::MergeConflict { task, .. } => {
                self.metrics.incr("conflicts");
                self.close_merge(task, at_ms);
                self.open(task).resolve_from = Some(at_ms);
            }
            Event::StaleReads {
                task, rerun: true, ..
            } => {
                self.metrics.incr("stale_reruns");
                self.close_merge(task, at_ms);
            }
            Event::GenerationCommitted { task, .. } => {
                self.metrics.incr("commits");
                self.close_merge(task, at_ms);
                self.close_resolve(task, at_ms);
            }
            Event::TaskMerged { task, .. } => {
                self.close_merge(task, at_ms);
                self.close_resolve(task, at_ms);
                self.record_span(task, t0, at_ms);
            }
            Event::ScopeViolation { .. } => self.metrics.incr("scope_violations"),
            Event::TaskRetrying { task, delay_ms, .. } => {
                self.metrics.incr("retries");
                self.end_attempt(task, at_ms);
                self.open(task).eligible_ms = Some(at_ms.saturating_add(*delay_ms));
            }
            Event::ExecutorPaused {
                task,
                retry_after_ms,
                ..
            } => {
                self.metrics.incr("rate_limited");
                self.end_attempt(task, at_ms);
                self.open(task).eligible_ms = Some(at_ms.saturating_add(*retry_after_ms));
            }
            Event::TaskSucceeded { task, .. } => self.end_task(task, "succeeded", at_ms),
            Event::TaskFailed { task, .. } => self.end_task(task, "failed", at_ms),
            Event::TaskCancelled { task } => self.end_task(task, "cancelled", at_ms),
            Event::TaskSkipped { .. } => self.metrics.incr("skipped"),
            Event::EventsLost { missed } => self.metrics.add("events_lost", *missed),
            Event::TaskOutputDropped { lines, .. } => self.metrics.add("output_dropped", *lines),
            // The process that would have closed the open intervals died.
            Event::RunResumed { .. } => self.open.clear(),
            _ => {}
        }
    }

    fn open(&mut self, task: &str) -> &mut Open {
        self.open.entry(task.to_owned()).or_default()
    }

    fn times(&mut self, task: &str) -> &mut TaskTimes {
        self.tasks.entry(task.to_owned()).or_default()
    }

    fn end_task(&mut self, task: &str, counter: &str, at_ms: u64) {
        self.metrics.incr(counter);
        self.end_attempt(task, at_ms);
    }

    /// Closes every interval of the task's attempt at `at_ms`.
    fn end_attempt(&mut self, task: &str, at_ms: u64) {
        let Some(open) = self.open.get_mut(task) else {
            return;
        };
        let waits: Vec<u64> = open.lock_waits.drain(..).collect();
        let run_from = open.run_from.take();
        open.resolve_from = None;
        for from in waits {
            self.sample(MetricKind::LockWait, task, from, at_ms);
        }
        if let Some(from) = run_from {
            self.sample(MetricKind::RunTime, task, from, at_ms);
        }
        self.close_merge(task, at_ms);
    }

    fn close_merge(&mut self, task: &str, at_ms: u64) {
        if let Some(from) = self.open.get_mut(task).and_then(|o| o.merge_from.take()) {
            self.sample(MetricKind::MergeTime, task, from, at_ms);
        }
    }

    fn close_resolve(&mut self, task: &str, at_ms: u64) {
        if let Some(from) = self.open.get_mut(task).and_then(|o| o.resolve_from.take()) {
            let resolve = MetricKind::Custom(RESOLVE_TIME.to_owned());
            self.sample(resolve, task, from, at_ms);
        }
    }

    fn record_span(&mut self, task: &str, t0: u64, at_ms: u64) {
        if !self.merged.insert(task.to_owned()) {
            return;
        }
        let start = self.open(task).first_started_ms.unwrap_or(at_ms);
        self.metrics.record_span(TaskSpan {
            id: task.to_owned(),
            deps: self.deps_of.get(task).cloned().unwrap_or_default(),
            start: Duration::from_millis(start.saturating_sub(t0)),
            end: Duration::from_millis(at_ms.saturating_sub(t0)),
        });
    }

    fn sample(&mut self, kind: MetricKind, task: &str, from_ms: u64, to_ms: u64) {
        self.record(
            kind,
            task,
            Duration::from_millis(to_ms.saturating_sub(from_ms)),
        );
    }

    fn record(&mut self, kind: MetricKind, task: &str, duration: Duration) {
        let times = self.times(task);
        match &kind {
            MetricKind::QueueWait => times.queue_wait += duration,
            MetricKind::LockWait => times.lock_wait += duration,
            MetricKind::RunTime => times.run_time += duration,
            MetricKind::MergeTime => times.merge_time += duration,
            MetricKind::Custom(_) => times.resolve_time += duration,
        }
        // A resolver is another executor than the task's: the resolve time is not split.
        let executor = match kind {
            MetricKind::Custom(_) => None,
            _ => self.executor_of.get(task),
        };
        if let Some(executor) = executor {
            self.metrics
                .record(kind.clone(), Some(executor.as_str()), duration);
        }
        self.metrics.record(kind, None, duration);
    }
}

/// What a run's events say about its timing: the [`Summary`] of the derived [`Metrics`] and
/// each task's totals. Made by [`MetricsRecorder::snapshot`]; see [`MetricsRecorder`] for
/// what each duration measures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RunMetrics {
    /// Counters, histograms (one per kind for all executors, with `executor: null`, and one
    /// per kind and executor) and the critical path of the merged tasks.
    pub summary: Summary,
    /// Each task's totals over all its attempts, by task id.
    pub tasks: BTreeMap<String, TaskTimes>,
}

impl Default for RunMetrics {
    fn default() -> Self {
        MetricsRecorder::default().snapshot()
    }
}

impl RunMetrics {
    /// The histogram of `kind` over all executors, if it has samples.
    pub fn histogram(&self, kind: &MetricKind) -> Option<&forge_events::HistogramSummary> {
        self.executor_histogram(kind, None)
    }

    /// The histogram of `kind` for one executor (`None`: all executors), if it has samples.
    pub fn executor_histogram(
        &self,
        kind: &MetricKind,
        executor: Option<&str>,
    ) -> Option<&forge_events::HistogramSummary> {
        self.summary
            .histograms
            .iter()
            .find(|h| h.kind == *kind && h.executor.as_deref() == executor)
    }

    /// The executors that have samples, in order.
    pub fn executors(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .summary
            .histograms
            .iter()
            .filter_map(|h| h.executor.as_deref())
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    /// The value of a counter (0 if unknown).
    pub fn counter(&self, name: &str) -> u64 {
        self.summary.counters.get(name).copied().unwrap_or(0)
    }

    /// The metrics as pretty JSON (durations in milliseconds).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("metrics hold only strings, maps and numbers")
    }
}

/// One task's totals over all its attempts (journal timestamps have millisecond resolution,
/// so do these; JSON gives whole milliseconds as `*_ms`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TaskTimes {
    /// Attempts started.
    pub attempts: u32,
    /// Time spent ready but not started.
    #[serde(rename = "queue_wait_ms", with = "whole_millis")]
    pub queue_wait: Duration,
    /// Time spent waiting for path locks.
    #[serde(rename = "lock_wait_ms", with = "whole_millis")]
    pub lock_wait: Duration,
    /// Time the executor ran in its views (with collecting the changes).
    #[serde(rename = "run_time_ms", with = "whole_millis")]
    pub run_time: Duration,
    /// Time spent merging and committing.
    #[serde(rename = "merge_time_ms", with = "whole_millis")]
    pub merge_time: Duration,
    /// Time a resolver spent on the task's conflicts until they were committed.
    #[serde(rename = "resolve_time_ms", with = "whole_millis")]
    pub resolve_time: Duration,
}

/// Serializes a [`Duration`] as whole milliseconds.
mod whole_millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

#[cfg(test)]
mod tests;
