//! The DAG scheduler: one coordinator that starts each task the moment its dependencies have
//! succeeded, within a global concurrency limit and named resource pools, with retries,
//! timeouts, rate-limit pauses, fail-fast or keep-going, and cancellation.
//!
//! Every attempt goes through one seam, [`AttemptRunner`]. The default, [`DirectRunner`],
//! runs the task's executor in the run's working directory; the engine supplies another that
//! takes locks and a staging view around the executor.

mod backoff;
mod coordinator;
mod outcome;
mod rank;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;

pub use self::backoff::Backoff;
pub use self::outcome::{Counts, RunOutcome, SkipReason, TaskOutcome};
use crate::event::Event;
use crate::executor::{ExecError, ExecOutput, Executor, Executors, Job, ProgressSink};
use crate::plan::Task;
use crate::validate::ValidatedPlan;

/// The longest one rate-limit pause may last, whatever the executor asked for (24 h): a
/// `forge:retry-after` value or an [`ExecError::rate_limited`] delay beyond it is cut to it.
/// A pause is also never longer than the task's own timeout.
pub const MAX_RATE_LIMIT_PAUSE: Duration = Duration::from_secs(24 * 60 * 60);

/// Where the scheduler publishes its [`Event`]s.
pub type EventBus = forge_events::Bus<Event>;

/// Runs one attempt of a task: the seam between the scheduler and what an attempt is.
///
/// The scheduler calls it once per attempt, inside a task spawned on the tokio runtime, and
/// enforces the task's timeout around it (by cancelling `ctx.cancel`, then dropping the future
/// if it does not return within the grace period).
pub trait AttemptRunner: Send + Sync + 'static {
    /// Runs the attempt to completion.
    ///
    /// # Errors
    ///
    /// An [`ExecError`] whose class decides whether the task is retried.
    fn run_attempt(&self, ctx: AttemptCtx) -> BoxFuture<'_, Result<ExecOutput, ExecError>>;
}

/// What an [`AttemptRunner`] gets for one attempt.
#[derive(Clone)]
#[non_exhaustive]
pub struct AttemptCtx {
    /// The task.
    pub task: Arc<Task>,
    /// Its index in the plan.
    pub task_idx: usize,
    /// 1-based attempt number (rate-limited attempts do not count).
    pub attempt: u32,
    /// Cancelled on timeout and when the run is cancelled or stopped.
    pub cancel: CancellationToken,
    /// Publishes `task_log` / `task_progress` events for this attempt.
    pub progress: ProgressSink,
    /// The executor the task names.
    pub executor: Arc<dyn Executor>,
    /// The run's working directory (the repository).
    pub workdir: Arc<Path>,
}

impl std::fmt::Debug for AttemptCtx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AttemptCtx")
            .field("task", &self.task.id)
            .field("attempt", &self.attempt)
            .field("workdir", &self.workdir)
            .finish_non_exhaustive()
    }
}

impl AttemptCtx {
    /// The [`Job`] for this attempt, working in `workdir` (no lock handle).
    pub fn job(&self, workdir: PathBuf) -> Job {
        Job::new(self.task.clone(), workdir)
            .with_cancel(self.cancel.clone())
            .with_progress(self.progress.clone())
            .with_attempt(self.attempt)
    }
}

/// The default [`AttemptRunner`]: runs the task's executor in the run's working directory,
/// without locks or staging.
#[derive(Debug, Clone, Copy, Default)]
pub struct DirectRunner;

impl AttemptRunner for DirectRunner {
    fn run_attempt(&self, ctx: AttemptCtx) -> BoxFuture<'_, Result<ExecOutput, ExecError>> {
        // Moves the context's parts into the job instead of cloning them: this is the hot path
        // of every attempt.
        let AttemptCtx {
            task,
            attempt,
            cancel,
            progress,
            executor,
            workdir,
            ..
        } = ctx;
        let job = Job {
            task,
            workdir: workdir.to_path_buf(),
            cancel,
            progress,
            attempt,
            locks: None,
            namespace: None,
        };
        Box::pin(async move { executor.execute(job).await })
    }
}

/// How to run a plan.
///
/// ```
/// use forge_core::{Backoff, RunOptions};
/// use std::time::Duration;
///
/// let options = RunOptions::default()
///     .jobs(4)
///     .pool("gpu", 1)
///     .keep_going(true)
///     .backoff(Backoff::fixed_exponential(Duration::from_millis(100), Duration::from_secs(5), 2.0));
/// assert_eq!(options.jobs, 4);
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct RunOptions {
    /// Most attempts running at once (default: the number of CPUs).
    pub jobs: usize,
    /// Named resource pools and their capacity (`gpu = 1`, `ports = 4`).
    pub pools: BTreeMap<String, u32>,
    /// What a task that fails for good (retries used up, fatal error, timeout, conflict)
    /// does to the rest of the run. Either way its dependents are skipped, each with a
    /// [`SkipReason`](crate::SkipReason) naming the failed dependency.
    ///
    /// - `false` (fail-fast, the library's default): the run stops at once; running
    ///   attempts are cancelled and pending retries and waiting tasks end as cancelled.
    /// - `true` (keep-going, what `forge run` does unless `--fail-fast`): everything that
    ///   does not depend on the failed task runs to its end, retries included.
    pub keep_going: bool,
    /// Delays between retries.
    pub backoff: Backoff,
    /// Working directory handed to executors (default `.`).
    pub workdir: PathBuf,
    /// Cancel this to stop the run: running attempts are cancelled, nothing new starts, and
    /// `run` returns once every attempt has ended.
    pub cancel: CancellationToken,
    /// Cancel this to stop the run at once: like [`cancel`](Self::cancel), but running
    /// attempts are dropped without waiting for them to stop (a process executor SIGKILLs
    /// its group, an engine attempt tears its view down). For a second Ctrl-C.
    pub abort: CancellationToken,
    /// Where events go (none by default).
    pub bus: Option<EventBus>,
    /// Runs each attempt (default: [`DirectRunner`]).
    pub runner: Option<Arc<dyn AttemptRunner>>,
    /// Seed for the backoff jitter (default: from the OS).
    pub seed: Option<u64>,
    /// After a timeout or cancellation, how long an attempt may take to stop before it is
    /// dropped (default 10 s, longer than [`ProcessExecutor`](crate::ProcessExecutor)'s 5 s
    /// grace).
    pub stop_grace: Duration,
    /// Rate-limit pauses one task may take before it fails (default 20).
    pub max_rate_limit_waits: u32,
    /// Total time one task may spend paused by rate limits before it fails (default 24 h):
    /// a pause that would take it past this fails the task at once, and the failure says
    /// how many pauses it took and how long they lasted.
    pub max_rate_limit_total: Duration,
}

impl std::fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("jobs", &self.jobs)
            .field("pools", &self.pools)
            .field("keep_going", &self.keep_going)
            .field("backoff", &self.backoff)
            .field("workdir", &self.workdir)
            .field("events", &self.bus.is_some())
            .field("custom_runner", &self.runner.is_some())
            .field("max_rate_limit_waits", &self.max_rate_limit_waits)
            .field("max_rate_limit_total", &self.max_rate_limit_total)
            .finish_non_exhaustive()
    }
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            jobs: std::thread::available_parallelism().map_or(4, |n| n.get()),
            pools: BTreeMap::new(),
            keep_going: false,
            backoff: Backoff::default(),
            workdir: PathBuf::from("."),
            cancel: CancellationToken::new(),
            abort: CancellationToken::new(),
            bus: None,
            runner: None,
            seed: None,
            stop_grace: Duration::from_secs(10),
            max_rate_limit_waits: 20,
            max_rate_limit_total: MAX_RATE_LIMIT_PAUSE,
        }
    }
}

impl RunOptions {
    /// Sets the concurrency limit.
    pub fn jobs(mut self, jobs: usize) -> Self {
        self.jobs = jobs;
        self
    }

    /// Adds a resource pool.
    pub fn pool(mut self, name: impl Into<String>, capacity: u32) -> Self {
        self.pools.insert(name.into(), capacity);
        self
    }

    /// Sets keep-going (`true`) or fail-fast (`false`), as the `keep_going` field says.
    pub fn keep_going(mut self, keep_going: bool) -> Self {
        self.keep_going = keep_going;
        self
    }

    /// Sets the backoff.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Sets the working directory.
    pub fn workdir(mut self, workdir: impl Into<PathBuf>) -> Self {
        self.workdir = workdir.into();
        self
    }

    /// Sets the cancellation token.
    pub fn cancel(mut self, cancel: CancellationToken) -> Self {
        self.cancel = cancel;
        self
    }

    /// Publishes events on `bus`.
    pub fn bus(mut self, bus: EventBus) -> Self {
        self.bus = Some(bus);
        self
    }

    /// Runs attempts through `runner`.
    pub fn runner(mut self, runner: Arc<dyn AttemptRunner>) -> Self {
        self.runner = Some(runner);
        self
    }

    /// Seeds the backoff jitter.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Sets the grace period for stopping attempts.
    pub fn stop_grace(mut self, grace: Duration) -> Self {
        self.stop_grace = grace;
        self
    }

    /// Bounds the rate-limit pauses of one task: at most `waits` pauses lasting at most
    /// `total` together.
    pub fn rate_limit_budget(mut self, waits: u32, total: Duration) -> Self {
        self.max_rate_limit_waits = waits;
        self.max_rate_limit_total = total;
        self
    }
}

/// Why a run could not start (nothing ran).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// `jobs` is 0.
    #[error("jobs must be at least 1")]
    ZeroJobs,
    /// A task names an executor that is not registered.
    #[error(
        "task `{task}` uses executor `{executor}`, which is not registered (registered: {registered})"
    )]
    UnknownExecutor {
        /// The task.
        task: String,
        /// The name it uses.
        executor: String,
        /// The registered names, comma-separated.
        registered: String,
    },
    /// A task asks for a resource pool the run does not have.
    #[error("task `{task}` asks for resource `{pool}`, which is not a pool of this run")]
    UnknownPool {
        /// The task.
        task: String,
        /// The pool.
        pool: String,
    },
    /// A task asks for more units than a pool holds, so it could never start.
    #[error("task `{task}` asks for {units} units of resource `{pool}`, which has only {capacity}")]
    PoolTooSmall {
        /// The task.
        task: String,
        /// The pool.
        pool: String,
        /// Units asked for.
        units: u32,
        /// Units the pool holds.
        capacity: u32,
    },
}

/// Runs a validated plan to the end and reports every task's outcome.
///
/// Must be called within a tokio runtime (attempts are spawned on it). Returns once no
/// attempt is running any more, also after cancellation.
///
/// # Errors
///
/// A [`RunError`] when the plan and the options do not fit (unknown executor or resource
/// pool, a request larger than its pool, `jobs == 0`); nothing has run then.
///
/// ```
/// use forge_core::{Executors, ExecOutput, FnExecutor, Plan, RunOptions, Task, run_plan};
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let plan = Plan::default()
///     .with_task(Task::new("a", "first"))
///     .with_task(Task::new("b", "second").deps(["a"]))
///     .validate()?;
/// let executors = Executors::single(FnExecutor::new(|_job| async { Ok(ExecOutput::default()) }));
/// let outcome = run_plan(&plan, &executors, RunOptions::default().jobs(2)).await?;
/// assert!(outcome.is_success());
/// assert_eq!(outcome.counts().succeeded, 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
pub async fn run_plan(
    plan: &ValidatedPlan,
    executors: &Executors,
    options: RunOptions,
) -> Result<RunOutcome, RunError> {
    let coordinator = coordinator::Coordinator::new(plan, executors, options)?;
    Ok(coordinator.run().await)
}

#[cfg(test)]
mod tests;
