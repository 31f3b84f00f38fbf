//! The [`Event`] type: everything that happens in a run, with a stable JSON form.

use serde::{Deserialize, Serialize};

/// Which output stream a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// Something that happened in a run, with a stable JSON form.
///
/// Events are published on a [`forge_events::Bus`] and written to the journal as JSON lines.
/// The JSON form is an interface: fields are added, never renamed or removed. Durations are
/// whole milliseconds (`*_ms`).
///
/// | kind | example |
/// |---|---|
/// | `run_started` | `{"kind":"run_started","tasks":8,"jobs":4}` |
/// | `task_ready` | `{"kind":"task_ready","task":"api"}` |
/// | `task_started` | `{"kind":"task_started","task":"api","attempt":1}` |
/// | `task_log` | `{"kind":"task_log","task":"api","attempt":1,"stream":"stdout","line":"compiling"}` |
/// | `task_progress` | `{"kind":"task_progress","task":"api","attempt":1,"data":{"percent":40}}` |
/// | `task_output_dropped` | `{"kind":"task_output_dropped","task":"api","attempt":1,"lines":52000}` |
/// | `task_retrying` | `{"kind":"task_retrying","task":"api","attempt":1,"delay_ms":1500,"error":"exited with status 75"}` |
/// | `executor_paused` | `{"kind":"executor_paused","executor":"default","task":"api","retry_after_ms":60000,"error":"rate limited"}` |
/// | `task_succeeded` | `{"kind":"task_succeeded","task":"api","attempts":2,"duration_ms":5300}` |
/// | `task_failed` | `{"kind":"task_failed","task":"api","attempts":3,"error":"exited with status 1","timed_out":false}` |
/// | `task_skipped` | `` {"kind":"task_skipped","task":"docs","reason":"dependency `api` failed"} `` |
/// | `task_cancelled` | `{"kind":"task_cancelled","task":"api"}` |
/// | `run_finished` | `{"kind":"run_finished","succeeded":7,"failed":1,"skipped":2,"cancelled":0,"duration_ms":12000}` |
/// | `lock_waiting` | `{"kind":"lock_waiting","task":"api","reads":["src/models/**"],"writes":["src/api/**"],"holders":["models"]}` |
/// | `lock_acquired` | `{"kind":"lock_acquired","task":"api","waited_ms":120}` |
/// | `deadlock` | `{"kind":"deadlock","victim":"docs","cycle":"api -> docs -> api"}` |
/// | `view_opened` | `{"kind":"view_opened","task":"api","generation":3,"backend":"overlay"}` |
/// | `changes_collected` | `{"kind":"changes_collected","task":"api","paths":4}` |
/// | `merge_conflict` | `{"kind":"merge_conflict","task":"api","paths":["src/lib.rs"]}` |
/// | `generation_committed` | `{"kind":"generation_committed","task":"api","generation":4,"paths":4}` |
/// | `scope_violation` | `{"kind":"scope_violation","task":"api","paths":["README.md"]}` |
/// | `run_resumed` | `{"kind":"run_resumed","generation":4,"rerun":["docs"]}` |
/// | `commit_started` | `{"kind":"commit_started","task":"api","generation":5}` |
/// | `task_merged` | `{"kind":"task_merged","task":"api","generation":5,"paths":4}` |
/// | `stale_reads` | `{"kind":"stale_reads","task":"docs","paths":["src/models/user.rs"],"rerun":false}` |
/// | `run_published` | `{"kind":"run_published","generation":9,"published":true}` |
/// | `working_tree_changed` | `{"kind":"working_tree_changed","paths":["spec.md"]}` |
/// | `publish_conflict` | `{"kind":"publish_conflict","path":"b.txt","reason":"changed by the user and the run; the merge conflicts","kept":"/tmp/run/publish-conflicts/b.txt"}` |
/// | `events_lost` | `{"kind":"events_lost","missed":12}` |
///
/// The scheduler emits the `run_*`, `task_*` and `executor_paused` kinds; the engine emits the
/// lock, view, merge and commit kinds. `commit_started` and `task_merged` are the engine's
/// write-ahead records: they are fsynced to the journal before and after each commit, and
/// resume trusts nothing else to know which tasks were merged. `events_lost` is written to the
/// journal when its writer fell behind the bus. Output (`task_log`, `task_progress`) is shed
/// while the bus is more than half full, so that a flood of output never evicts the other
/// kinds; `task_output_dropped` counts what was shed (before the next line that gets through,
/// and at the end of the attempt).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// The run began.
    RunStarted {
        /// Tasks in the plan.
        tasks: usize,
        /// The global concurrency limit.
        jobs: usize,
    },
    /// All dependencies of a task succeeded; it is in the ready queue.
    TaskReady {
        /// The task id.
        task: String,
    },
    /// An attempt began.
    TaskStarted {
        /// The task id.
        task: String,
        /// 1-based attempt number.
        attempt: u32,
    },
    /// A line of output from an attempt (bounded in length).
    TaskLog {
        /// The task id.
        task: String,
        /// 1-based attempt number.
        attempt: u32,
        /// Which stream.
        stream: LogStream,
        /// The line, without its newline.
        line: String,
    },
    /// A custom progress value reported by the executor.
    TaskProgress {
        /// The task id.
        task: String,
        /// 1-based attempt number.
        attempt: u32,
        /// Whatever the executor reported.
        data: serde_json::Value,
    },
    /// Output of an attempt (`task_log` and `task_progress` reports) that was not published
    /// because the bus was more than half full: a flood of output is shed so that it never
    /// evicts lifecycle events. The executor's own output tail is not affected.
    TaskOutputDropped {
        /// The task id.
        task: String,
        /// 1-based attempt number.
        attempt: u32,
        /// How many reports were dropped since the last one that got through.
        lines: u64,
    },
    /// An attempt failed with a retryable error (or timed out); another follows after a delay.
    TaskRetrying {
        /// The task id.
        task: String,
        /// The attempt that failed.
        attempt: u32,
        /// Backoff before the next attempt.
        delay_ms: u64,
        /// Why the attempt failed.
        error: String,
    },
    /// An attempt was rate limited: every task of its executor waits until the reset; the
    /// attempt does not count against the task's retries.
    ExecutorPaused {
        /// The executor name.
        executor: String,
        /// The task that hit the limit.
        task: String,
        /// How long the executor pauses.
        retry_after_ms: u64,
        /// What the executor said.
        error: String,
    },
    /// The task succeeded.
    TaskSucceeded {
        /// The task id.
        task: String,
        /// Attempts it took.
        attempts: u32,
        /// Wall time of the successful attempt.
        duration_ms: u64,
    },
    /// The task failed for good (fatal error, retries exhausted, or timed out).
    TaskFailed {
        /// The task id.
        task: String,
        /// Attempts made.
        attempts: u32,
        /// Why the last attempt failed.
        error: String,
        /// Whether the last attempt hit the task's timeout.
        timed_out: bool,
    },
    /// The task will not run.
    TaskSkipped {
        /// The task id.
        task: String,
        /// Why, naming the failed dependency where there is one.
        reason: String,
    },
    /// The task was running or waiting to retry when the run was cancelled or stopped.
    TaskCancelled {
        /// The task id.
        task: String,
    },
    /// The run ended.
    RunFinished {
        /// Tasks that succeeded.
        succeeded: usize,
        /// Tasks that failed or timed out.
        failed: usize,
        /// Tasks that never ran.
        skipped: usize,
        /// Tasks cancelled while running.
        cancelled: usize,
        /// Wall time of the run.
        duration_ms: u64,
    },
    /// A task waits for path locks.
    LockWaiting {
        /// The task id.
        task: String,
        /// Read patterns requested.
        reads: Vec<String>,
        /// Write patterns requested.
        writes: Vec<String>,
        /// Tasks holding conflicting locks.
        holders: Vec<String>,
    },
    /// A task got its path locks.
    LockAcquired {
        /// The task id.
        task: String,
        /// Time spent waiting.
        waited_ms: u64,
    },
    /// A lock wait closed a cycle; the victim's attempt is discarded and retried.
    Deadlock {
        /// The task chosen to give up its locks.
        victim: String,
        /// The wait-for cycle, as `a -> b -> a`.
        cycle: String,
    },
    /// A staging view of the repository was opened for an attempt.
    ViewOpened {
        /// The task id.
        task: String,
        /// The generation the view shows.
        generation: u64,
        /// The staging backend (`overlay`, `reflink`, `copy`, `worktree`).
        backend: String,
    },
    /// The changes of an attempt's view were collected.
    ChangesCollected {
        /// The task id.
        task: String,
        /// Number of changed paths.
        paths: usize,
    },
    /// The three-way merge of a task's changes conflicted.
    MergeConflict {
        /// The task id.
        task: String,
        /// Paths with conflicts.
        paths: Vec<String>,
    },
    /// A task's changes were merged and committed as a new generation.
    GenerationCommitted {
        /// The task id.
        task: String,
        /// The new generation.
        generation: u64,
        /// Number of paths it changed.
        paths: usize,
    },
    /// A task wrote outside its declared `writes`.
    ScopeViolation {
        /// The task id.
        task: String,
        /// The paths outside its scope.
        paths: Vec<String>,
    },
    /// An interrupted run was resumed from its journal.
    RunResumed {
        /// The generation the repository was at.
        generation: u64,
        /// Tasks whose outcome was unknown and run again.
        rerun: Vec<String>,
    },
    /// The engine is about to commit a task's merged changes as `generation` (write-ahead).
    CommitStarted {
        /// The task id.
        task: String,
        /// The generation the commit creates.
        generation: u64,
    },
    /// A task's attempt is merged: its changes are committed (or it changed nothing).
    TaskMerged {
        /// The task id.
        task: String,
        /// The head generation after its commit.
        generation: u64,
        /// Number of paths committed (0: it changed nothing).
        paths: usize,
    },
    /// Files a task declared it reads changed between its view's generation and the head.
    StaleReads {
        /// The task id.
        task: String,
        /// The changed paths.
        paths: Vec<String>,
        /// Whether the task runs again because of it (else it was merged with a warning).
        rerun: bool,
    },
    /// The run ended; the head generation was written into the repository if `published`.
    RunPublished {
        /// The head generation.
        generation: u64,
        /// Whether the repository now holds it.
        published: bool,
    },
    /// Files of the working tree changed since the run started (the user edited them
    /// while agents worked): views made before the edit did not see it, and publishing
    /// merges with it. `task` names the task whose collection noticed, when one did.
    WorkingTreeChanged {
        /// The task, if the check ran for one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        task: Option<String>,
        /// The changed paths.
        paths: Vec<String>,
    },
    /// Publishing left a path as the user has it: the user changed it during the run and
    /// the run's change could not be merged (the run then does not count as successful).
    PublishConflict {
        /// The repository path.
        path: String,
        /// Why it could not be merged.
        reason: String,
        /// Where the run's version was kept, if it has one (it may have deleted the path).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        kept: Option<String>,
    },
    /// The journal writer fell behind the event bus and missed this many events.
    EventsLost {
        /// How many.
        missed: u64,
    },
}

impl Event {
    /// The task this event is about, if it is about one.
    pub fn task(&self) -> Option<&str> {
        match self {
            Event::TaskReady { task }
            | Event::TaskStarted { task, .. }
            | Event::TaskLog { task, .. }
            | Event::TaskProgress { task, .. }
            | Event::TaskOutputDropped { task, .. }
            | Event::TaskRetrying { task, .. }
            | Event::ExecutorPaused { task, .. }
            | Event::TaskSucceeded { task, .. }
            | Event::TaskFailed { task, .. }
            | Event::TaskSkipped { task, .. }
            | Event::TaskCancelled { task }
            | Event::LockWaiting { task, .. }
            | Event::LockAcquired { task, .. }
            | Event::ViewOpened { task, .. }
            | Event::ChangesCollected { task, .. }
            | Event::MergeConflict { task, .. }
            | Event::GenerationCommitted { task, .. }
            | Event::ScopeViolation { task, .. }
            | Event::CommitStarted { task, .. }
            | Event::TaskMerged { task, .. }
            | Event::StaleReads { task, .. } => Some(task),
            Event::Deadlock { victim, .. } => Some(victim),
            Event::WorkingTreeChanged { task, .. } => task.as_deref(),
            Event::RunStarted { .. }
            | Event::RunFinished { .. }
            | Event::RunResumed { .. }
            | Event::RunPublished { .. }
            | Event::PublishConflict { .. }
            | Event::EventsLost { .. } => None,
        }
    }

    /// The event as one line of JSON (no newline).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("events serialize: string keys, finite numbers")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every example in the module docs' table parses and serializes back byte for byte.
    #[test]
    fn doc_table_examples_round_trip() {
        let source = include_str!("event.rs");
        let examples: Vec<&str> = source
            .lines()
            .filter_map(|line| line.trim_start().strip_prefix("/// | `"))
            .filter_map(|row| row.split(" | ").nth(1))
            .map(|cell| cell.trim_end_matches(" |").trim_matches('`').trim())
            .collect();
        assert_eq!(examples.len(), 29, "one example per variant");
        for json in examples {
            let event: Event = serde_json::from_str(json).expect(json);
            assert_eq!(event.to_json(), json);
        }
    }
}
