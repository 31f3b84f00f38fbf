//! What a run produced: [`RunOutcome`] with one [`TaskOutcome`] per task.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::executor::{ExecError, ExecOutput};
use crate::plan::Task;

/// How one task ended.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum TaskOutcome {
    /// An attempt succeeded.
    Succeeded {
        /// Attempts it took (rate-limited ones not counted).
        attempts: u32,
        /// Wall time of the successful attempt.
        duration: Duration,
        /// What the executor returned.
        output: ExecOutput,
    },
    /// The last attempt failed with a fatal error, or retries ran out.
    Failed {
        /// The last attempt's error.
        error: ExecError,
        /// Attempts made.
        attempts: u32,
    },
    /// The last attempt hit the task's timeout (and retries, if any, ran out).
    TimedOut {
        /// Attempts made.
        attempts: u32,
        /// The per-attempt limit.
        timeout: Duration,
    },
    /// The task never ran.
    Skipped {
        /// Why.
        reason: SkipReason,
    },
    /// The task was running or waiting to retry when the run was cancelled or stopped.
    Cancelled {
        /// Attempts started.
        attempts: u32,
    },
}

impl TaskOutcome {
    /// Whether the task succeeded.
    pub fn is_success(&self) -> bool {
        matches!(self, TaskOutcome::Succeeded { .. })
    }

    /// Whether the task failed or timed out (so its dependents were skipped).
    pub fn is_failure(&self) -> bool {
        matches!(
            self,
            TaskOutcome::Failed { .. } | TaskOutcome::TimedOut { .. }
        )
    }
}

impl fmt::Display for TaskOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tries = |n: u32| {
            if n == 1 {
                "1 attempt".to_owned()
            } else {
                format!("{n} attempts")
            }
        };
        match self {
            TaskOutcome::Succeeded {
                attempts, duration, ..
            } => write!(f, "succeeded in {duration:.1?} ({})", tries(*attempts)),
            TaskOutcome::Failed { error, attempts } => {
                write!(f, "failed after {}: {error}", tries(*attempts))
            }
            TaskOutcome::TimedOut { attempts, timeout } => {
                write!(f, "timed out after {timeout:?} ({})", tries(*attempts))
            }
            TaskOutcome::Skipped { reason } => write!(f, "skipped: {reason}"),
            TaskOutcome::Cancelled { .. } => f.write_str("cancelled"),
        }
    }
}

/// Why a task never ran.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SkipReason {
    /// A dependency (direct or transitive) failed; names the task that failed.
    DependencyFailed {
        /// The failed task.
        dependency: String,
    },
    /// Fail-fast: the run stopped after this task failed.
    RunStopped {
        /// The failed task.
        failed: String,
    },
    /// The run was cancelled before the task started.
    RunCancelled,
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::DependencyFailed { dependency } => {
                write!(f, "dependency `{dependency}` failed")
            }
            SkipReason::RunStopped { failed } => write!(f, "run stopped after `{failed}` failed"),
            SkipReason::RunCancelled => f.write_str("run cancelled"),
        }
    }
}

/// Tasks per kind of outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Counts {
    /// Succeeded.
    pub succeeded: usize,
    /// Failed, timeouts included.
    pub failed: usize,
    /// Of the failed, those that timed out.
    pub timed_out: usize,
    /// Never ran.
    pub skipped: usize,
    /// Cancelled while running or waiting to retry.
    pub cancelled: usize,
}

/// The result of a run: one outcome per task, in plan order.
#[derive(Debug, Clone)]
#[must_use = "a run outcome tells which tasks failed"]
pub struct RunOutcome {
    pub(crate) tasks: Vec<Arc<Task>>,
    pub(crate) outcomes: Vec<TaskOutcome>,
    pub(crate) duration: Duration,
}

impl RunOutcome {
    /// Each task with its outcome, in plan order.
    pub fn iter(&self) -> impl Iterator<Item = (&Task, &TaskOutcome)> {
        self.tasks.iter().map(|t| &**t).zip(&self.outcomes)
    }

    /// The outcome of the task with this id.
    pub fn get(&self, id: &str) -> Option<&TaskOutcome> {
        self.tasks
            .iter()
            .position(|t| t.id == id)
            .map(|i| &self.outcomes[i])
    }

    /// Outcomes in plan order (index = task index).
    pub fn outcomes(&self) -> &[TaskOutcome] {
        &self.outcomes
    }

    /// How many tasks ended which way.
    pub fn counts(&self) -> Counts {
        let mut counts = Counts::default();
        for outcome in &self.outcomes {
            match outcome {
                TaskOutcome::Succeeded { .. } => counts.succeeded += 1,
                TaskOutcome::Failed { .. } => counts.failed += 1,
                TaskOutcome::TimedOut { .. } => {
                    counts.failed += 1;
                    counts.timed_out += 1;
                }
                TaskOutcome::Skipped { .. } => counts.skipped += 1,
                TaskOutcome::Cancelled { .. } => counts.cancelled += 1,
            }
        }
        counts
    }

    /// Whether every task succeeded.
    pub fn is_success(&self) -> bool {
        self.outcomes.iter().all(TaskOutcome::is_success)
    }

    /// Wall time of the run.
    pub fn duration(&self) -> Duration {
        self.duration
    }
}
