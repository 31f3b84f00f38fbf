//! The engine: runs a plan end to end with path locks, a staging view per attempt, a
//! three-way merge of every attempt's changes into the head, a journal, and resume.
//!
//! One attempt, as [`EngineRunner`](runner) runs it:
//!
//! ```text
//! lock declared reads/writes -> view of head generation g -> execute in the view
//!   -> collect changes -> check scope -> merge (base@g, head, view) -> commit g+1 -> release
//! ```
//!
//! The scheduler ([`run_plan`](crate::run_plan)) stays in charge of order, concurrency,
//! retries and timeouts; the engine plugs in as its [`AttemptRunner`](crate::AttemptRunner).
//! Commits are serialized and written ahead to the journal, so after a crash
//! [`resume`] knows which tasks were merged and re-runs the rest.

mod commit;
mod journal;
mod kept;
mod locks;
mod runner;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use forge_events::FsyncPolicy;
use forge_staging::{Backend, Entry, PublishConflict, PublishMerge, Staging, StagingOptions};

pub use self::commit::{ConflictReport, PathConflict};
use self::journal::JournalWriter;
pub use self::journal::{JournalHook, RunDir, RunState, TaskState};
use self::runner::EngineRunner;
use crate::event::Event;
use crate::executor::Executors;
use crate::metrics::RunMetrics;
use crate::plan::{Plan, Task};
use crate::scheduler::{RunError, RunOptions, RunOutcome, run_plan};
use crate::validate::{PlanError, ValidatedPlan};

/// What to do when an attempt's changes conflict with the head.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ConflictPolicy {
    /// Fail the task with the structured [`ConflictReport`] (the default). Nothing of the
    /// attempt is committed.
    #[default]
    Fail,
    /// Throw the attempt away and run the task again on the new head, up to `max` times,
    /// then fail as [`ConflictPolicy::Fail`] does.
    Retry {
        /// How many re-runs a task may take because of conflicts.
        max: u32,
    },
    /// Write the conflicted files with markers into a fresh view of the head and hand it to
    /// the executor registered under this name (its prompt lists the files); its result is
    /// collected and committed like any attempt's, provided no markers are left.
    Resolve {
        /// The resolver's executor name.
        executor: String,
    },
}

/// What to do with changes outside a task's declared `writes` (tasks that declare no
/// `writes` may write anywhere).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ScopePolicy {
    /// Fail the task, naming the paths (the default).
    #[default]
    Reject,
    /// Commit them.
    Allow,
    /// Commit them and publish a `scope_violation` event.
    Warn,
}

/// What to do when files matching a task's `reads` changed between the generation its view
/// showed and the head it merges into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum StaleReadPolicy {
    /// Merge anyway and publish a `stale_reads` event (the default).
    #[default]
    Warn,
    /// Throw the attempt away and run it again on the new head (at most `max` times, then
    /// merge with a warning).
    Rerun {
        /// How many re-runs a task may take because of stale reads.
        max: u32,
    },
}

/// How to run a plan with the engine.
///
/// ```
/// use forge_core::{ConflictPolicy, EngineOptions, RunOptions};
///
/// let options = EngineOptions::new("/path/to/repo", "/path/to/run-dir")
///     .conflicts(ConflictPolicy::Retry { max: 2 })
///     .run(RunOptions::default().jobs(8));
/// assert_eq!(options.run.jobs, 8);
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct EngineOptions {
    /// The repository (generation 0; not written until the run publishes).
    pub repo: PathBuf,
    /// The run directory: journal, plan, layers and views. Must lie outside `repo`.
    pub run_dir: PathBuf,
    /// Staging backend and ignore rules.
    pub staging: StagingOptions,
    /// Conflict policy.
    pub conflicts: ConflictPolicy,
    /// Scope policy.
    pub scope: ScopePolicy,
    /// Stale-read policy.
    pub stale_reads: StaleReadPolicy,
    /// Journal fsync policy (commit points are always fsynced).
    pub fsync: FsyncPolicy,
    /// Write the head into the repository when the run ends (default `true`).
    pub publish: bool,
    /// Scheduler options (jobs, pools, keep-going, backoff, cancellation, event bus). Their
    /// `workdir` and `runner` are set by the engine.
    pub run: RunOptions,
    /// Called after every journal append with the step number (1-based); for fault-injection
    /// tests and progress accounting.
    pub journal_hook: Option<JournalHook>,
}

impl std::fmt::Debug for EngineOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineOptions")
            .field("repo", &self.repo)
            .field("run_dir", &self.run_dir)
            .field("staging", &self.staging)
            .field("conflicts", &self.conflicts)
            .field("scope", &self.scope)
            .field("stale_reads", &self.stale_reads)
            .field("publish", &self.publish)
            .field("run", &self.run)
            .finish_non_exhaustive()
    }
}

impl EngineOptions {
    /// Options for running in `repo` with the run directory `run_dir`, all else default.
    pub fn new(repo: impl Into<PathBuf>, run_dir: impl Into<PathBuf>) -> Self {
        Self {
            repo: repo.into(),
            run_dir: run_dir.into(),
            staging: StagingOptions::default(),
            conflicts: ConflictPolicy::default(),
            scope: ScopePolicy::default(),
            stale_reads: StaleReadPolicy::default(),
            fsync: FsyncPolicy::CommitPoints,
            publish: true,
            run: RunOptions::default(),
            journal_hook: None,
        }
    }

    /// Chooses the staging backend (`None`: automatic).
    pub fn backend(mut self, backend: Option<Backend>) -> Self {
        self.staging.backend = backend;
        self
    }

    /// Sets the conflict policy.
    pub fn conflicts(mut self, policy: ConflictPolicy) -> Self {
        self.conflicts = policy;
        self
    }

    /// Sets the scope policy.
    pub fn scope(mut self, policy: ScopePolicy) -> Self {
        self.scope = policy;
        self
    }

    /// Sets the stale-read policy.
    pub fn stale_reads(mut self, policy: StaleReadPolicy) -> Self {
        self.stale_reads = policy;
        self
    }

    /// Sets the scheduler options.
    pub fn run(mut self, run: RunOptions) -> Self {
        self.run = run;
        self
    }

    /// Whether to publish the head into the repository at the end.
    pub fn publish(mut self, publish: bool) -> Self {
        self.publish = publish;
        self
    }

    /// Calls `hook` after every journal append.
    pub fn journal_hook(mut self, hook: JournalHook) -> Self {
        self.journal_hook = Some(hook);
        self
    }
}

/// Why the engine could not run or finish a run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The plan and the options do not fit (nothing ran).
    #[error(transparent)]
    Run(#[from] RunError),
    /// The plan stored in a run directory is not valid any more.
    #[error("plan in {path}: {source}")]
    Plan {
        /// The plan file.
        path: PathBuf,
        /// What is wrong with it.
        source: PlanError,
    },
    /// Staging failed (opening views, committing, publishing).
    #[error(transparent)]
    Staging(#[from] forge_staging::StagingError),
    /// The run directory cannot be read or written.
    #[error("run directory {path}: {message}")]
    RunDir {
        /// The path concerned.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The run's journal cannot be read or written.
    #[error(transparent)]
    Journal(#[from] forge_events::JournalError),
}

impl EngineError {
    /// Whether the error comes from a full disk (or an exhausted quota): the run directory
    /// keeps what was merged, so freeing space and resuming finishes the run.
    pub fn is_disk_full(&self) -> bool {
        let mut error: Option<&(dyn std::error::Error + 'static)> = Some(self);
        while let Some(e) = error {
            if let Some(io) = e.downcast_ref::<std::io::Error>()
                && (io.kind() == std::io::ErrorKind::StorageFull
                    || io.kind() == std::io::ErrorKind::QuotaExceeded)
            {
                return true;
            }
            error = e.source();
        }
        false
    }
}

/// What an engine run did.
#[derive(Debug)]
#[must_use]
#[non_exhaustive]
pub struct EngineOutcome {
    /// Every task's outcome (tasks merged before a resume are not in it; see `kept`).
    pub run: RunOutcome,
    /// Tasks found merged in the journal by [`resume`], kept without running them again.
    pub kept: Vec<String>,
    /// The head generation at the end.
    pub generation: u64,
    /// Which staging backend ran the views, and why it was chosen.
    pub backend: (Backend, String),
    /// Conflicts that failed tasks (by task id).
    pub conflicts: Vec<(String, ConflictReport)>,
    /// Whether the head was written into the repository.
    pub published: bool,
    /// Paths publishing left as the user has them: the user changed them during the run
    /// and the run's change could not be merged with that (each also a `publish_conflict`
    /// event). The run's version of each is kept in the run directory.
    pub publish_conflicts: Vec<PublishConflict>,
    /// Queue wait, lock wait, run and merge times, counters and critical path of the whole
    /// run (before a resume too), derived from the journal exactly as [`status`] derives
    /// them; empty if the journal could not be read back.
    pub metrics: RunMetrics,
}

impl EngineOutcome {
    /// Whether every task that ran succeeded and everything the run changed reached the
    /// working tree (no publish conflict).
    pub fn is_success(&self) -> bool {
        self.run.is_success() && self.publish_conflicts.is_empty()
    }
}

/// Runs `plan` on the repository with the engine: every attempt in its own view, its changes
/// merged into the head, the journal and plan written to `options.run_dir`.
///
/// Must be called within a tokio runtime. Staging work (views, merges, commits) runs on
/// tokio's blocking pool.
///
/// # Errors
///
/// [`EngineError`] when the run cannot start (unknown executor, bad run directory, staging
/// backend unavailable) or the head cannot be published. Task failures and conflicts are
/// not errors: they are in the outcome.
///
/// ```no_run
/// use forge_core::{EngineOptions, Executors, Plan, ProcessExecutor, Task, run_engine};
///
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let plan = Plan::default()
///     .with_task(Task::new("docs", "echo hello >> README.md").writes(["README.md"]))
///     .validate()?;
/// let executors = Executors::single(ProcessExecutor::from_template("sh -c {prompt}")?);
/// let outcome = run_engine(&plan, &executors, EngineOptions::new("repo", "/tmp/forge-run")).await?;
/// assert!(outcome.is_success());
/// # Ok(()) }
/// ```
pub async fn run_engine(
    plan: &ValidatedPlan,
    executors: &Executors,
    options: EngineOptions,
) -> Result<EngineOutcome, EngineError> {
    let run_dir = RunDir::create(&options.run_dir, &plan.to_plan())?;
    let lock = run_dir.lock()?;
    let journal =
        JournalWriter::create(&run_dir, lock, options.fsync, options.journal_hook.clone())?;
    execute(plan, executors, options, run_dir, journal, Vec::new()).await
}

/// Finishes a run that was interrupted: rolls the in-flight commit forward or back, keeps
/// every task the journal shows merged, runs the others again (their outcome is unknown, so
/// they are never assumed to have succeeded), and publishes.
///
/// `options.run_dir` names the run directory; `options.repo` must be the same repository.
/// The plan is the one stored in the run directory.
///
/// # Errors
///
/// As [`run_engine`], and when the run directory holds no readable plan.
pub async fn resume(
    executors: &Executors,
    options: EngineOptions,
) -> Result<EngineOutcome, EngineError> {
    let run_dir = RunDir::open(&options.run_dir)?;
    // Before anything is cleaned up: a run still going on keeps its views.
    let lock = run_dir.lock()?;
    let plan_path = run_dir.plan_path();
    let plan = run_dir.load_plan()?;
    let mut state = RunState::load(&run_dir)?;
    let _cleaned = forge_staging::cleanup(run_dir.path())?;
    let staging = Staging::open(&options.repo, run_dir.path(), options.staging.clone())?;
    let journal = JournalWriter::open(&run_dir, lock, options.fsync, options.journal_hook.clone())?;
    state.settle_in_flight_commit(staging.head(), &journal)?;
    state.settle_committed_layers(&staging.layer_labels(), &plan, &journal)?;
    drop(staging);

    let kept: Vec<String> = plan
        .tasks
        .iter()
        .filter(|t| state.is_merged(&t.id))
        .map(|t| t.id.clone())
        .collect();
    let rest = remaining_plan(&plan, &kept);
    let rerun: Vec<String> = rest.tasks.iter().map(|t| t.id.clone()).collect();
    let rest = rest.validate().map_err(|source| EngineError::Plan {
        path: plan_path,
        source,
    })?;
    journal.append_commit_point(&Event::RunResumed {
        generation: state.generation,
        rerun,
    })?;
    execute(&rest, executors, options, run_dir, journal, kept).await
}

/// The plan without the `kept` tasks; dependencies on them count as satisfied.
fn remaining_plan(plan: &Plan, kept: &[String]) -> Plan {
    let is_kept = |id: &str| kept.iter().any(|k| k == id);
    let tasks: Vec<Task> = plan
        .tasks
        .iter()
        .filter(|t| !is_kept(&t.id))
        .map(|t| {
            let mut t = t.clone();
            t.deps.retain(|d| !is_kept(d));
            t
        })
        .collect();
    Plan::new(tasks)
}

async fn execute(
    plan: &ValidatedPlan,
    executors: &Executors,
    options: EngineOptions,
    run_dir: RunDir,
    journal: JournalWriter,
    kept: Vec<String>,
) -> Result<EngineOutcome, EngineError> {
    let staging = {
        let (repo, dir, opts) = (
            options.repo.clone(),
            run_dir.path().to_path_buf(),
            options.staging.clone(),
        );
        tokio::task::spawn_blocking(move || Staging::open(&repo, &dir, opts))
            .await
            .map_err(|e| run_dir.error(format!("opening staging panicked: {e}")))??
    };
    let backend = (staging.backend(), staging.backend_reason().to_owned());
    let journal = Arc::new(journal);
    let _release = ReleaseOnDrop(journal.clone());
    let bus = options.run.bus.clone().unwrap_or_default();
    let drain = journal.clone().drain(&bus);

    let runner = Arc::new(EngineRunner::new(
        staging.clone(),
        executors.clone(),
        bus.clone(),
        journal.clone(),
        &options,
    ));
    let mut run_options = options.run.clone();
    run_options.workdir = options.repo.clone();
    run_options.bus = Some(bus.clone());
    run_options.runner = Some(runner.clone());
    let outcome = run_plan(plan, executors, run_options).await;
    // Let the drain write the last events before the journal is used directly again.
    drain.finish().await;
    let outcome = outcome?;

    let generation = staging.head();
    let mut published = false;
    let mut publish_conflicts = Vec::new();
    if options.publish {
        let staging = staging.clone();
        let (changed, report) = tokio::task::spawn_blocking(move || {
            staging.wait_for_teardown();
            let changed = staging.changed_since_start();
            (changed, staging.publish_with(&merge_for_publish))
        })
        .await
        .map_err(|e| run_dir.error(format!("publishing panicked: {e}")))?;
        // Reported, not fatal: the publish below merges with these edits either way.
        if let Ok(paths) = changed
            && !paths.is_empty()
        {
            let event = Event::WorkingTreeChanged { task: None, paths };
            journal.append(&event)?;
            bus.publish(event);
        }
        let report = report?;
        for conflict in &report.conflicts {
            let event = Event::PublishConflict {
                path: conflict.path.clone(),
                reason: conflict.kind.to_string(),
                kept: conflict
                    .kept
                    .as_ref()
                    .map(|p| p.to_string_lossy().into_owned()),
            };
            journal.append(&event)?;
            bus.publish(event);
        }
        publish_conflicts = report.conflicts;
        published = true;
    }
    journal.append_commit_point(&Event::RunPublished {
        generation,
        published,
    })?;
    // Read back rather than fed live: the journal's timestamps are the ones `status` sees.
    let metrics = RunState::load(&run_dir).map_or_else(|_| RunMetrics::default(), |s| s.metrics);
    Ok(EngineOutcome {
        run: outcome,
        kept,
        generation,
        backend,
        conflicts: runner.take_conflicts(),
        published,
        publish_conflicts,
        metrics,
    })
}

/// Publishing's merge of a path the user changed during the run (ours) and the run
/// changed too (theirs): forge-merge's per-path three-way merge; a conflict leaves the
/// user's version.
pub(crate) fn merge_for_publish(
    path: &str,
    base: Option<&Entry>,
    ours: Option<&Entry>,
    theirs: Option<&Entry>,
) -> PublishMerge {
    let [base, ours, theirs] = [base, ours, theirs].map(|e| e.cloned().map(commit::to_merge));
    let merged = forge_merge::merge_entry(
        path,
        base.as_ref(),
        ours.as_ref(),
        theirs.as_ref(),
        &forge_merge::MergeOptions::default(),
    );
    if merged.is_conflict() {
        return PublishMerge::Conflict;
    }
    PublishMerge::Merged(
        merged
            .result(ours.as_ref(), theirs.as_ref())
            .map(commit::from_merge),
    )
}

/// Releases the run directory's lock when the run ends, however it ends.
struct ReleaseOnDrop(Arc<JournalWriter>);

impl Drop for ReleaseOnDrop {
    fn drop(&mut self) {
        self.0.release();
    }
}

impl RunDir {
    fn error(&self, message: String) -> EngineError {
        EngineError::RunDir {
            path: self.path().to_path_buf(),
            message,
        }
    }
}

/// Reads what the journal in `run_dir` says about a run (for `forge status`).
///
/// # Errors
///
/// The run directory or its journal cannot be read.
pub fn status(run_dir: &Path) -> Result<RunState, EngineError> {
    RunState::load(&RunDir::open(run_dir)?)
}

#[cfg(test)]
mod publish_tests;
#[cfg(test)]
mod tests;
