//! The live display of a run: permanent lines for what finished and, on a terminal, a status
//! block (counts and each running task's last output line) redrawn in place; plain lines when
//! stdout is not a terminal; or every event as a JSON line. Shared by `run` and `resume`.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::time::Duration;

use forge_core::events::Delivery;
use forge_core::events::MetricKind;
use forge_core::{EngineOutcome, Event, METRIC_COUNTERS, RunMetrics, TaskOutcome};

impl Mode {
    /// JSON lines when asked, else a redrawn display on a terminal, else plain lines.
    pub(crate) fn pick(json: bool) -> Mode {
        if json {
            Mode::Json
        } else if std::io::stdout().is_terminal() {
            Mode::Terminal
        } else {
            Mode::Plain
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Json,
    Terminal,
    Plain,
}

/// Renders events until the bus closes.
pub(crate) async fn show(mut subscription: forge_core::events::Subscription<Event>, mode: Mode) {
    let mut view = View::new(mode);
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            delivery = subscription.recv() => match delivery {
                Some(Delivery::Event(event)) => view.on_event(&event),
                Some(Delivery::Lagged(n)) => view.permanent(format!("({n} events dropped: display fell behind)")),
                None => break,
            },
            _ = tick.tick() => view.redraw(),
        }
    }
    view.clear();
}

/// The live display: permanent lines for what finished, and on a terminal a status block
/// (counts and each running task's last output line) redrawn in place.
struct View {
    mode: Mode,
    total: usize,
    running: BTreeMap<String, String>,
    succeeded: usize,
    failed: usize,
    skipped: usize,
    cancelled: usize,
    drawn: usize,
    dirty: bool,
    width: usize,
}

impl View {
    fn new(mode: Mode) -> Self {
        let width = std::env::var("COLUMNS")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(100usize)
            .max(20);
        Self {
            mode,
            total: 0,
            running: BTreeMap::new(),
            succeeded: 0,
            failed: 0,
            skipped: 0,
            cancelled: 0,
            drawn: 0,
            dirty: false,
            width,
        }
    }

    fn on_event(&mut self, event: &Event) {
        if self.mode == Mode::Json {
            // A closed stdout (`| head`) must not kill the run.
            let _ = writeln!(std::io::stdout().lock(), "{}", event.to_json());
            return;
        }
        match event {
            Event::RunStarted { tasks, jobs } => {
                self.total = *tasks;
                self.permanent(format!("running {tasks} tasks, at most {jobs} at once"));
            }
            Event::TaskStarted { task, attempt } => {
                self.running.insert(task.clone(), String::new());
                if self.mode == Mode::Plain {
                    self.permanent(format!("start   {task} (attempt {attempt})"));
                }
                self.dirty = true;
            }
            Event::TaskLog { task, line, .. } => {
                if self.mode == Mode::Plain {
                    self.permanent(format!("[{task}] {line}"));
                } else if let Some(last) = self.running.get_mut(task) {
                    last.clone_from(line);
                    self.dirty = true;
                }
            }
            Event::TaskOutputDropped { task, lines, .. } if self.mode == Mode::Plain => {
                self.permanent(format!(
                    "[{task}] ({lines} lines of output not shown: they came faster than they could be recorded)"
                ));
            }
            Event::TaskRetrying {
                task,
                attempt,
                delay_ms,
                error,
            } => {
                self.running.remove(task);
                self.permanent(format!(
                    "retry   {task}: attempt {attempt} failed ({error}); next in {delay_ms} ms"
                ));
            }
            Event::ExecutorPaused {
                executor,
                retry_after_ms,
                error,
                ..
            } => {
                self.permanent(format!(
                    "pause   executor `{executor}` rate limited for {retry_after_ms} ms ({error})"
                ));
            }
            Event::TaskSucceeded {
                task, duration_ms, ..
            } => {
                self.running.remove(task);
                self.succeeded += 1;
                self.permanent(format!(
                    "ok      {task} ({:.1}s)",
                    *duration_ms as f64 / 1000.0
                ));
            }
            Event::TaskFailed { task, error, .. } => {
                self.running.remove(task);
                self.failed += 1;
                self.permanent(format!("FAILED  {task}: {error}"));
            }
            Event::TaskSkipped { task, reason } => {
                self.skipped += 1;
                self.permanent(format!("skip    {task}: {reason}"));
            }
            Event::TaskCancelled { task } => {
                self.running.remove(task);
                self.cancelled += 1;
                self.permanent(format!("cancel  {task}"));
            }
            Event::RunResumed { generation, rerun } => {
                self.permanent(format!(
                    "resuming at generation {generation}; running again: {}",
                    if rerun.is_empty() {
                        "nothing".to_owned()
                    } else {
                        rerun.join(", ")
                    }
                ));
            }
            Event::LockWaiting { task, holders, .. } => {
                if let Some(last) = self.running.get_mut(task) {
                    *last = format!("waiting for locks held by {}", holders.join(", "));
                    self.dirty = true;
                }
                if self.mode == Mode::Plain {
                    self.permanent(format!(
                        "wait    {task}: locks held by {}",
                        holders.join(", ")
                    ));
                }
            }
            Event::Deadlock { victim, cycle } => {
                self.permanent(format!("deadlock: {victim} gives way ({cycle})"));
            }
            Event::MergeConflict { task, paths } => {
                self.permanent(format!("CONFLICT {task}: {}", paths.join(", ")));
            }
            Event::GenerationCommitted {
                task,
                generation,
                paths,
            } => {
                self.permanent(format!(
                    "merge   {task}: {paths} path{} -> generation {generation}",
                    if *paths == 1 { "" } else { "s" }
                ));
            }
            Event::ScopeViolation { task, paths } => {
                self.permanent(format!(
                    "scope   {task} wrote outside its declared writes: {}",
                    paths.join(", ")
                ));
            }
            Event::StaleReads { task, paths, rerun } => {
                self.permanent(format!(
                    "stale   {task} read files that changed meanwhile ({}){}",
                    paths.join(", "),
                    if *rerun { "; running it again" } else { "" }
                ));
            }
            Event::WorkingTreeChanged { task, paths } => {
                let who = task.as_deref().map_or_else(
                    || "the run".to_owned(),
                    |t| format!("{t}'s view may have seen them"),
                );
                self.permanent(format!(
                    "user    you changed {} file{} during the run ({who}): {}",
                    paths.len(),
                    if paths.len() == 1 { "" } else { "s" },
                    preview(paths)
                ));
            }
            _ => {}
        }
    }

    /// Prints a line above the status block.
    fn permanent(&mut self, line: String) {
        let mut out = std::io::stdout().lock();
        self.erase(&mut out);
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
        self.dirty = true;
    }

    fn erase(&mut self, out: &mut impl Write) {
        if self.drawn > 0 {
            let _ = write!(out, "\x1b[{}F\x1b[J", self.drawn);
            self.drawn = 0;
        }
    }

    fn redraw(&mut self) {
        if self.mode != Mode::Terminal || !self.dirty {
            return;
        }
        self.dirty = false;
        let mut out = std::io::stdout().lock();
        self.erase(&mut out);
        let done = self.succeeded + self.failed + self.skipped + self.cancelled;
        let _ = writeln!(
            out,
            "[{done}/{}] running {} | ok {} | failed {} | skipped {} | cancelled {}",
            self.total,
            self.running.len(),
            self.succeeded,
            self.failed,
            self.skipped,
            self.cancelled
        );
        self.drawn = 1;
        let id_width = self
            .running
            .keys()
            .map(String::len)
            .max()
            .unwrap_or(0)
            .min(30);
        for (task, last) in &self.running {
            let line = format!("  {task:id_width$}  {last}");
            let line: String = line.chars().take(self.width - 1).collect();
            let _ = writeln!(out, "{line}");
            self.drawn += 1;
        }
        let _ = out.flush();
    }

    fn clear(&mut self) {
        let mut out = std::io::stdout().lock();
        self.erase(&mut out);
        let _ = out.flush();
    }
}

/// Prints the summary of an engine run: counts, what did not succeed (with the last output
/// lines), conflicts with what each side did, and where the run directory is.
pub(crate) fn summarize(outcome: &EngineOutcome, run_dir: &std::path::Path, mode: Mode) {
    let run = &outcome.run;
    let counts = run.counts();
    let mut text = format!(
        "{} tasks in {:.1}s: {} succeeded, {} failed, {} skipped, {} cancelled\n",
        run.outcomes().len(),
        run.duration().as_secs_f64(),
        counts.succeeded,
        counts.failed,
        counts.skipped,
        counts.cancelled
    );
    if !outcome.kept.is_empty() {
        text.push_str(&format!(
            "kept from before the interruption: {}\n",
            outcome.kept.join(", ")
        ));
    }
    for (task, task_outcome) in run.iter() {
        if task_outcome.is_success() {
            continue;
        }
        text.push_str(&format!("  {}: {task_outcome}\n", task.id));
        if let TaskOutcome::Failed { error, .. } = task_outcome {
            let tail: Vec<&str> = error.output_tail().lines().rev().take(5).collect();
            for line in tail.into_iter().rev() {
                text.push_str(&format!("      | {line}\n"));
            }
        }
    }
    for (task, report) in &outcome.conflicts {
        text.push_str(&format!(
            "conflict: {task} (started from generation {}, head was {}):\n",
            report.base_generation, report.head_generation
        ));
        for path in &report.paths {
            text.push_str(&format!("  {}: {}\n", path.path, path.what));
        }
        if let Some(kept) = &report.kept {
            text.push_str(&format!("  its changes are kept in {}\n", kept.display()));
        }
    }
    for conflict in &outcome.publish_conflicts {
        let kept = conflict.kept.as_ref().map_or_else(String::new, |p| {
            format!("; the run's version is in {}", p.display())
        });
        text.push_str(&format!(
            "not published: {} ({}; your version was kept{kept})\n",
            conflict.path, conflict.kind
        ));
    }
    text.push_str(&metrics_digest(&outcome.metrics));
    let (backend, why) = &outcome.backend;
    text.push_str(&format!(
        "generation {}{}; staging: {backend} ({why})\nrun directory: {} (`forge status` reads it)\n",
        outcome.generation,
        if outcome.published { ", written to the repository" } else { ", not published" },
        run_dir.display()
    ));
    let _ = if mode == Mode::Json {
        std::io::stderr().lock().write_all(text.as_bytes())
    } else {
        std::io::stdout().lock().write_all(text.as_bytes())
    };
}

/// The kinds of duration a run measures, with the names people read.
const KINDS: [(MetricKind, &str); 4] = [
    (MetricKind::QueueWait, "queue wait"),
    (MetricKind::LockWait, "lock wait"),
    (MetricKind::RunTime, "run time"),
    (MetricKind::MergeTime, "merge time"),
];

/// The counters worth a glance: all of [`METRIC_COUNTERS`] but the task counts (printed
/// elsewhere), `events_lost` (its own warning) and `output_dropped`.
fn counter_names() -> impl Iterator<Item = &'static str> {
    METRIC_COUNTERS.into_iter().filter(|name| {
        !matches!(
            *name,
            "succeeded" | "failed" | "skipped" | "cancelled" | "events_lost" | "output_dropped"
        )
    })
}

/// Two lines for the end of `forge run`: the median, p90 and max of each kind of duration,
/// and the counters that are not zero.
pub(crate) fn metrics_digest(metrics: &RunMetrics) -> String {
    let times: Vec<String> = KINDS
        .iter()
        .filter_map(|(kind, name)| {
            let h = metrics.histogram(kind)?;
            let short = name.split(' ').next().unwrap_or(name);
            Some(format!(
                "{short} {}/{}/{}",
                human(h.median),
                human(h.p90),
                human(h.max)
            ))
        })
        .collect();
    let mut out = String::new();
    if !times.is_empty() {
        out.push_str(&format!("times p50/p90/max: {}\n", times.join(", ")));
    }
    let counts: Vec<String> = counter_names()
        .filter(|name| metrics.counter(name) > 0)
        .map(|name| format!("{name} {}", metrics.counter(name)))
        .collect();
    if !counts.is_empty() {
        out.push_str(&format!("counters: {}\n", counts.join(", ")));
    }
    out.push_str(&incomplete(metrics, "metrics incomplete"));
    out
}

/// A warning when the journal missed events, so the metrics miss them too.
fn incomplete(metrics: &RunMetrics, lead: &str) -> String {
    match metrics.counter("events_lost") {
        0 => String::new(),
        lost => format!("{lead}: the journal writer fell behind and missed {lost} events\n"),
    }
}

/// The metrics section of `forge status`: a table of each kind of duration (all executors,
/// then each executor when there are several) and the counters.
pub(crate) fn metrics_table(metrics: &RunMetrics) -> String {
    let mut out = format!(
        "metrics: {:>23} {:>9} {:>9} {:>9} {:>9}\n",
        "count", "p50", "p90", "max", "total"
    );
    let executors = metrics.executors();
    let mut rows: Vec<(&MetricKind, String, Option<&str>)> = KINDS
        .iter()
        .map(|(kind, name)| (kind, (*name).to_owned(), None))
        .collect();
    // Kinds of their own (a resolver's time), for all executors.
    let custom: Vec<(&MetricKind, String)> = metrics
        .summary
        .histograms
        .iter()
        .filter(|h| matches!(h.kind, MetricKind::Custom(_)) && h.executor.is_none())
        .map(|h| (&h.kind, h.kind.to_string().replace('_', " ")))
        .collect();
    rows.extend(custom.into_iter().map(|(kind, name)| (kind, name, None)));
    if executors.len() > 1 {
        for (kind, name) in &KINDS {
            for executor in &executors {
                rows.push((kind, format!("{name} [{executor}]"), Some(executor)));
            }
        }
    }
    let mut any = false;
    for (kind, label, executor) in rows {
        let Some(h) = metrics.executor_histogram(kind, executor) else {
            continue;
        };
        any = true;
        out.push_str(&format!(
            "  {label:<24} {:>5} {:>9} {:>9} {:>9} {:>9}\n",
            h.count,
            human(h.median),
            human(h.p90),
            human(h.max),
            human(h.total)
        ));
    }
    if !any {
        out.push_str("  (no attempt has started)\n");
    }
    out.push_str(&format!("  counters: {}\n", counters(metrics)));
    out.push_str(&incomplete(metrics, "  incomplete"));
    out
}

fn counters(metrics: &RunMetrics) -> String {
    counter_names()
        .map(|name| format!("{name} {}", metrics.counter(name)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A duration for people, at the journal's millisecond resolution: `0ms`, `812ms`, `3.4s`,
/// `2m05s`.
pub(crate) fn human(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else if d < Duration::from_secs(60) {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        format!("{}m{:02}s", d.as_secs() / 60, d.as_secs() % 60)
    }
}

/// The first few of `paths`, and how many more.
fn preview(paths: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut text = paths
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if paths.len() > SHOWN {
        text.push_str(&format!(" and {} more", paths.len() - SHOWN));
    }
    text
}

#[cfg(test)]
mod tests {
    use forge_core::{MetricsRecorder, Plan, Task};

    use super::*;

    /// Two tasks on two executors: `a` waits 40 ms for a lock and runs 1.5 s, `b` waits 5 ms
    /// in the queue, runs 200 ms and conflicts once before it merges.
    fn two_executors() -> RunMetrics {
        let plan = Plan::default()
            .with_task(Task::new("a", "").executor("claude"))
            .with_task(Task::new("b", "").executor("droid"));
        let mut recorder = MetricsRecorder::new(&plan);
        let t = |id: &str| id.to_owned();
        let events = [
            (0, Event::TaskReady { task: t("a") }),
            (0, Event::TaskReady { task: t("b") }),
            (
                0,
                Event::TaskStarted {
                    task: t("a"),
                    attempt: 1,
                },
            ),
            (
                5,
                Event::TaskStarted {
                    task: t("b"),
                    attempt: 1,
                },
            ),
            (
                5,
                Event::LockAcquired {
                    task: t("b"),
                    waited_ms: 0,
                },
            ),
            (
                5,
                Event::ViewOpened {
                    task: t("b"),
                    generation: 0,
                    backend: "copy".into(),
                },
            ),
            (
                205,
                Event::ChangesCollected {
                    task: t("b"),
                    paths: 1,
                },
            ),
            (
                207,
                Event::MergeConflict {
                    task: t("b"),
                    paths: vec!["f".into()],
                },
            ),
            (
                207,
                Event::ViewOpened {
                    task: t("b"),
                    generation: 1,
                    backend: "copy".into(),
                },
            ),
            (
                407,
                Event::ChangesCollected {
                    task: t("b"),
                    paths: 1,
                },
            ),
            (
                410,
                Event::TaskMerged {
                    task: t("b"),
                    generation: 2,
                    paths: 1,
                },
            ),
            (
                40,
                Event::LockAcquired {
                    task: t("a"),
                    waited_ms: 40,
                },
            ),
            (
                40,
                Event::ViewOpened {
                    task: t("a"),
                    generation: 0,
                    backend: "copy".into(),
                },
            ),
            (
                1_540,
                Event::ChangesCollected {
                    task: t("a"),
                    paths: 1,
                },
            ),
            (
                1_544,
                Event::TaskMerged {
                    task: t("a"),
                    generation: 1,
                    paths: 1,
                },
            ),
        ];
        for (at, event) in &events {
            recorder.observe(event, *at);
        }
        recorder.snapshot()
    }

    #[test]
    fn metrics_table_for_status() {
        let expected = "\
metrics:                   count       p50       p90       max     total
  queue wait                   2       0ms       5ms       5ms       5ms
  lock wait                    2       0ms      40ms      40ms      40ms
  run time                     3     200ms      1.5s      1.5s      1.9s
  merge time                   3       3ms       4ms       4ms       9ms
  queue wait [claude]          1       0ms       0ms       0ms       0ms
  queue wait [droid]           1       5ms       5ms       5ms       5ms
  lock wait [claude]           1      40ms      40ms      40ms      40ms
  lock wait [droid]            1       0ms       0ms       0ms       0ms
  run time [claude]            1      1.5s      1.5s      1.5s      1.5s
  run time [droid]             2     200ms     200ms     200ms     400ms
  merge time [claude]          1       4ms       4ms       4ms       4ms
  merge time [droid]           2       2ms       3ms       3ms       5ms
  counters: attempts 2, retries 0, rate_limited 0, lock_waits 0, deadlocks 0, conflicts 1, stale_reruns 0, scope_violations 0, commits 0
";
        assert_eq!(metrics_table(&two_executors()), expected);
    }

    #[test]
    fn metrics_digest_for_run() {
        let expected = "\
times p50/p90/max: queue 0ms/5ms/5ms, lock 0ms/40ms/40ms, run 200ms/1.5s/1.5s, merge 3ms/4ms/4ms
counters: attempts 2, conflicts 1
";
        assert_eq!(metrics_digest(&two_executors()), expected);
    }

    #[test]
    fn durations_for_people() {
        let cases = [
            (0, "0ms"),
            (812, "812ms"),
            (3_400, "3.4s"),
            (125_000, "2m05s"),
        ];
        for (ms, expected) in cases {
            assert_eq!(human(Duration::from_millis(ms)), expected);
        }
    }
}
