//! [`EngineRunner`]: the scheduler's [`AttemptRunner`] that runs each attempt under locks in
//! its own staging view and merges what it changed into the head.

use std::sync::Arc;

use forge_events::Bus;
use forge_locks::{LockTable, Pattern};
use forge_staging::{ChangeSet, Entry, LayerChange, Staging, View};
use futures::future::BoxFuture;
use parking_lot::Mutex;

use super::commit::{self, ConflictReport, Merged};
use super::journal::JournalWriter;
use super::kept::{self, Reason};
use super::locks::{self, AttemptLocks};
use super::{ConflictPolicy, EngineOptions, ScopePolicy, StaleReadPolicy};
use crate::event::Event;
use crate::executor::{ExecError, ExecOutput, Executors, Job};
use crate::plan::Task;
use crate::scheduler::{AttemptCtx, AttemptRunner};

/// The tasks merged so far in this run. Its own lock, held for a lookup or an insert only:
/// async code reads it without waiting for a commit in progress (which may itself wait for
/// the journal's drain task to run).
type MergedTasks = Arc<Mutex<std::collections::BTreeSet<String>>>;

/// The paths each commit of this run wrote, by generation (for the stale-read check), and
/// the tasks merged so far.
#[derive(Default)]
struct CommitLog {
    by_generation: Vec<(u64, Vec<String>)>,
    merged: MergedTasks,
}

impl CommitLog {
    /// Merges `changes` (made in a view of `base`) into the head and commits them, recording
    /// which paths the new generation wrote. Callers hold the log's lock, which serializes
    /// commits.
    fn commit(
        &mut self,
        staging: &Staging,
        journal: &JournalWriter,
        task: &str,
        base: u64,
        changes: &ChangeSet,
    ) -> Result<Merged, super::EngineError> {
        let merged = commit::merge_and_commit(staging, journal, task, base, changes)?;
        if matches!(merged, Merged::Committed { .. }) {
            self.merged.lock().insert(task.to_owned());
        }
        if let Merged::Committed { generation, paths } = &merged
            && *paths > 0
        {
            self.by_generation
                .push((*generation, changes_paths(changes)));
        }
        Ok(merged)
    }

    /// Paths committed after generation `base`.
    fn since(&self, base: u64) -> impl Iterator<Item = &str> {
        self.by_generation
            .iter()
            .filter(move |(g, _)| *g > base)
            .flat_map(|(_, paths)| paths.iter().map(String::as_str))
    }
}

pub(super) struct EngineRunner {
    staging: Staging,
    executors: Executors,
    bus: Bus<Event>,
    journal: Arc<JournalWriter>,
    locks: LockTable,
    /// Serializes merges and commits; held only inside blocking sections, never across an
    /// `.await`.
    commits: Arc<Mutex<CommitLog>>,
    /// The same set as `commits`' merged tasks, readable without the commit lock.
    merged: MergedTasks,
    conflicts: Mutex<Vec<(String, ConflictReport)>>,
    conflict_policy: ConflictPolicy,
    scope: ScopePolicy,
    stale_reads: StaleReadPolicy,
    /// The run directory, where the work of tasks that did not merge is kept.
    run_dir: std::path::PathBuf,
}

/// What one pass (view, execute, collect, merge) ended with.
enum Pass {
    Done(ExecOutput),
    Conflict(ConflictReport, ChangeSet, u64),
    Stale,
}

impl EngineRunner {
    pub(super) fn new(
        staging: Staging,
        executors: Executors,
        bus: Bus<Event>,
        journal: Arc<JournalWriter>,
        options: &EngineOptions,
    ) -> Self {
        let merged = MergedTasks::default();
        Self {
            staging,
            executors,
            bus,
            journal,
            locks: LockTable::default(),
            commits: Arc::new(Mutex::new(CommitLog {
                by_generation: Vec::new(),
                merged: merged.clone(),
            })),
            merged,
            conflicts: Mutex::default(),
            conflict_policy: options.conflicts.clone(),
            scope: options.scope,
            stale_reads: options.stale_reads,
            run_dir: options.run_dir.clone(),
        }
    }

    pub(super) fn take_conflicts(&self) -> Vec<(String, ConflictReport)> {
        std::mem::take(&mut self.conflicts.lock())
    }

    async fn attempt(&self, ctx: AttemptCtx) -> Result<ExecOutput, ExecError> {
        let task = ctx.task.clone();
        // A commit runs to its end on the blocking pool even when the scheduler gave up on
        // the attempt (a timeout during the commit): a retry must not apply the task twice.
        if self.merged.lock().contains(&task.id) {
            return Ok(ExecOutput::default());
        }
        let requests = locks::requests(&task.id, &task.reads, &task.writes)?;
        let owner = Arc::new(self.locks.owner(task.id.clone(), i64::from(task.priority)));
        let _declared = locks::acquire(&owner, &requests, &self.bus, &ctx.cancel).await?;
        let writes = parse_all(&task.id, &task.writes)?;
        let reads = parse_all(&task.id, &task.reads)?;

        let (mut conflict_reruns, mut stale_reruns) = (0, 0);
        loop {
            let allow_stale = match self.stale_reads {
                StaleReadPolicy::Warn => true,
                StaleReadPolicy::Rerun { max } => stale_reruns >= max,
            };
            let pass = self
                .pass(&ctx, &owner, &writes, &reads, allow_stale)
                .await?;
            match pass {
                Pass::Done(output) => return Ok(output),
                Pass::Stale => stale_reruns += 1,
                Pass::Conflict(report, changes, base) => {
                    self.bus.publish(Event::MergeConflict {
                        task: task.id.clone(),
                        paths: report.paths.iter().map(|p| p.path.clone()).collect(),
                    });
                    match &self.conflict_policy {
                        ConflictPolicy::Retry { max } if conflict_reruns < *max => {
                            conflict_reruns += 1;
                        }
                        ConflictPolicy::Resolve { executor } => {
                            return self.resolve(&ctx, executor, report, changes, base).await;
                        }
                        _ => {
                            let kept = self.keep(&ctx, Reason::Conflict, base, changes).await;
                            return Err(self.fail_conflict(report, kept));
                        }
                    }
                }
            }
        }
    }

    /// One pass: a view of the head, the executor in it, its changes merged and committed.
    async fn pass(
        &self,
        ctx: &AttemptCtx,
        owner: &Arc<forge_locks::Owner>,
        writes: &[Pattern],
        reads: &[Pattern],
        allow_stale: bool,
    ) -> Result<Pass, ExecError> {
        let task = &ctx.task;
        let view = self.open_view(task, ctx.attempt).await?;
        let base = view.generation();
        let attempt_locks = Arc::new(AttemptLocks {
            owner: owner.clone(),
            bus: self.bus.clone(),
            cancel: ctx.cancel.clone(),
            held: Mutex::default(),
        });
        // The locks the agent takes while running are held until its change is committed,
        // like the declared ones: released when the executor returns, they let a waiting
        // task open its view on the generation before this commit and conflict with it.
        let job = ctx
            .job(view.path().to_path_buf())
            .with_locks(attempt_locks.clone())
            .with_namespace(view.namespace().cloned());
        let output = ctx.executor.execute(job).await?;

        let (view, changes) = blocking(&task.id, move || {
            let changes = view.collect();
            (view, changes)
        })
        .await?;
        let changes = changes.map_err(|e| ExecError::fatal(format!("task {}: {e}", task.id)))?;
        self.bus.publish(Event::ChangesCollected {
            task: task.id.clone(),
            paths: changes.changes.len(),
        });
        if !changes.rejected.is_empty() {
            let list: Vec<String> = changes
                .rejected
                .iter()
                .map(|r| format!("{} ({:?})", r.path, r.reason))
                .collect();
            let error = ExecError::fatal(format!(
                "task {} left entries forge does not merge: {}",
                task.id,
                list.join(", ")
            ));
            drop(view);
            let kept = self.keep(ctx, Reason::Rejected, base, changes).await;
            return Err(with_kept(error, kept));
        }
        if let Err(error) = self.check_scope(task, writes, &changes) {
            drop(view);
            let kept = self.keep(ctx, Reason::Scope, base, changes).await;
            return Err(with_kept(error, kept));
        }

        let staging = self.staging.clone();
        let journal = self.journal.clone();
        let commits = self.commits.clone();
        let task_id = task.id.clone();
        let reads = reads.to_vec();
        let (merged, stale, changes) = blocking(&task.id, move || {
            let mut log = commits.lock();
            let stale: Vec<String> = log
                .since(base)
                .filter(|p| reads.iter().any(|r| r.covers(p)))
                .map(str::to_owned)
                .collect();
            if !stale.is_empty() && !allow_stale {
                return Ok((None, stale, changes));
            }
            let merged = log.commit(&staging, &journal, &task_id, base, &changes)?;
            Ok::<_, super::EngineError>((Some(merged), stale, changes))
        })
        .await?
        .map_err(|e| ExecError::fatal(format!("task {}: merging failed: {e}", task.id)))?;
        drop(attempt_locks);
        drop(view);
        if !stale.is_empty() {
            // Merged anyway, or about to run again: either way, say which reads went stale.
            self.bus.publish(Event::StaleReads {
                task: task.id.clone(),
                paths: stale.clone(),
                rerun: merged.is_none(),
            });
        }
        Ok(match merged {
            None => Pass::Stale,
            Some(Merged::Committed { generation, paths }) => {
                self.announce_commit(&task.id, generation, paths);
                Pass::Done(output)
            }
            Some(Merged::Conflict(report)) => Pass::Conflict(report, changes, base),
        })
    }

    fn announce_commit(&self, task: &str, generation: u64, paths: usize) {
        if paths > 0 {
            self.bus.publish(Event::GenerationCommitted {
                task: task.to_owned(),
                generation,
                paths,
            });
        }
    }

    async fn open_view(&self, task: &Task, attempt: u32) -> Result<View, ExecError> {
        let staging = self.staging.clone();
        let name = view_name(&task.id, ViewRole::Attempt, attempt);
        let generation = staging.head();
        let view = blocking(&task.id, move || staging.create_view(generation, &name))
            .await?
            .map_err(|e| ExecError::retryable(format!("task {}: {e}", task.id)))?;
        self.bus.publish(Event::ViewOpened {
            task: task.id.clone(),
            generation: view.generation(),
            backend: self.staging.backend().to_string(),
        });
        Ok(view)
    }

    fn check_scope(
        &self,
        task: &Task,
        writes: &[Pattern],
        changes: &ChangeSet,
    ) -> Result<(), ExecError> {
        if writes.is_empty() || self.scope == ScopePolicy::Allow {
            return Ok(());
        }
        let outside: Vec<String> = changes
            .changes
            .iter()
            .filter(|c| !writes.iter().any(|w| w.covers(&c.path)))
            // A new directory that only holds files in scope is fine.
            .filter(|c| {
                !matches!(c.entry, Some(Entry::Dir))
                    || !changes
                        .changes
                        .iter()
                        .any(|d| d.path.starts_with(&format!("{}/", c.path)))
            })
            .map(|c| c.path.clone())
            .collect();
        if outside.is_empty() {
            return Ok(());
        }
        self.bus.publish(Event::ScopeViolation {
            task: task.id.clone(),
            paths: outside.clone(),
        });
        match self.scope {
            ScopePolicy::Reject => Err(ExecError::fatal(format!(
                "task {} wrote outside its declared writes ({}): {}",
                task.id,
                task.writes.join(", "),
                outside.join(", ")
            ))),
            _ => Ok(()),
        }
    }

    /// The error of a task whose conflict ends it; the report is kept for the outcome,
    /// with where the task's change set was kept.
    fn fail_conflict(
        &self,
        mut report: ConflictReport,
        kept: Result<std::path::PathBuf, String>,
    ) -> ExecError {
        let error = match kept {
            Ok(dir) => {
                report.kept = Some(dir);
                ExecError::fatal(report.to_string())
            }
            Err(why) => ExecError::fatal(format!("{report} its changes could not be kept: {why}")),
        };
        self.conflicts.lock().push((report.task.clone(), report));
        error
    }

    /// Writes the change set of an attempt that will not merge to the run directory (see
    /// [`kept`]), off the async threads.
    async fn keep(
        &self,
        ctx: &AttemptCtx,
        reason: Reason,
        base: u64,
        changes: ChangeSet,
    ) -> Result<std::path::PathBuf, String> {
        let run_dir = self.run_dir.clone();
        let task = ctx.task.id.clone();
        let attempt = ctx.attempt;
        blocking(&ctx.task.id, move || {
            kept::keep(&run_dir, &task, attempt, reason, base, &changes)
        })
        .await
        .map_err(|e| e.to_string())?
    }

    /// Hands the conflicted files, with markers, to the resolver executor in a fresh view
    /// of the head, and merges what it leaves.
    async fn resolve(
        &self,
        ctx: &AttemptCtx,
        resolver: &str,
        report: ConflictReport,
        original: ChangeSet,
        base: u64,
    ) -> Result<ExecOutput, ExecError> {
        let task = &ctx.task;
        let Some(executor) = self.executors.get(resolver).cloned() else {
            let kept = self.keep(ctx, Reason::Conflict, base, original).await;
            return Err(self.fail_conflict(report, kept));
        };
        let staging = self.staging.clone();
        let name = view_name(&task.id, ViewRole::Resolve, ctx.attempt);
        let changes = original.clone();
        let (view, files) = blocking(&task.id, move || {
            // The attempt's changes merged into the head, conflicted files with markers.
            let merged =
                commit::merge_changes(&staging, base, &changes).map_err(|e| e.to_string())?;
            let view = staging
                .create_view(merged.head, &name)
                .map_err(|e| e.to_string())?;
            let files: Vec<String> = merged.best_effort.iter().map(|c| c.path.clone()).collect();
            write_entries(view.path(), &merged.layer)
                .and_then(|()| write_entries(view.path(), &merged.best_effort))
                .map_err(|e| format!("writing into view {}: {e}", view.path().display()))?;
            Ok::<_, String>((view, files))
        })
        .await?
        .map_err(|e| {
            ExecError::fatal(format!(
                "task {}: preparing the conflict resolution: {e}",
                task.id
            ))
        })?;

        let mut resolve_task = (**task).clone();
        resolve_task.id = format!("{}-resolve", task.id);
        resolve_task.prompt = format!(
            "Resolve the merge conflicts (<<<<<<< / ======= / >>>>>>> markers) in: {}",
            files.join(", ")
        );
        let job = Job::new(Arc::new(resolve_task), view.path().to_path_buf())
            .with_cancel(ctx.cancel.clone())
            .with_progress(ctx.progress.clone())
            .with_attempt(ctx.attempt)
            .with_namespace(view.namespace().cloned());
        let output = executor.execute(job).await?;

        let staging = self.staging.clone();
        let journal = self.journal.clone();
        let commits = self.commits.clone();
        let task_id = task.id.clone();
        let merged = blocking(&task.id, move || {
            let changes = view.collect().map_err(|e| e.to_string())?;
            let unresolved: Vec<String> = changes
                .changes
                .iter()
                .filter(|c| matches!(&c.entry, Some(Entry::File { data, .. }) if has_markers(data)))
                .map(|c| c.path.clone())
                .collect();
            if !unresolved.is_empty() {
                return Ok(Err(unresolved));
            }
            let merged = commits
                .lock()
                .commit(&staging, &journal, &task_id, view.generation(), &changes)
                .map_err(|e| e.to_string())?;
            Ok::<_, String>(Ok(merged))
        })
        .await?
        .map_err(|e| ExecError::fatal(format!("task {}: merging the resolution: {e}", task.id)))?;
        let report = match merged {
            Ok(Merged::Committed { generation, paths }) => {
                self.announce_commit(&task.id, generation, paths);
                return Ok(output);
            }
            Ok(Merged::Conflict(report)) => report,
            Err(unresolved) => ConflictReport {
                paths: report
                    .paths
                    .into_iter()
                    .filter(|p| unresolved.contains(&p.path))
                    .collect(),
                ..report
            },
        };
        let kept = self.keep(ctx, Reason::Conflict, base, original).await;
        Err(self.fail_conflict(report, kept))
    }
}

impl AttemptRunner for EngineRunner {
    fn run_attempt(&self, ctx: AttemptCtx) -> BoxFuture<'_, Result<ExecOutput, ExecError>> {
        Box::pin(self.attempt(ctx))
    }
}

/// `error`, saying where the attempt's changes were kept (or why they could not be).
fn with_kept(error: ExecError, kept: Result<std::path::PathBuf, String>) -> ExecError {
    let note = match kept {
        Ok(dir) => format!("its changes are kept in {}", dir.display()),
        Err(why) => format!("its changes could not be kept: {why}"),
    };
    ExecError::new(error.class(), format!("{}; {note}", error.message()))
        .with_output_tail(error.output_tail())
}

fn parse_all(task: &str, patterns: &[String]) -> Result<Vec<Pattern>, ExecError> {
    patterns
        .iter()
        .map(|p| Pattern::parse(p).map_err(|e| ExecError::fatal(format!("task {task}: {e}"))))
        .collect()
}

fn changes_paths(changes: &ChangeSet) -> Vec<String> {
    changes.changes.iter().map(|c| c.path.clone()).collect()
}

/// A file-system-safe view name, unique per task id, role and attempt: the id with anything
/// unusual replaced and cut to 48 characters (for people reading the run directory), a hash
/// of the whole id (so `a b` and `a_b`, or two ids sharing their first 48 characters, get
/// different views), the role (`resolve` for a conflict resolution's view) and the attempt.
fn view_name(task: &str, role: ViewRole, attempt: u32) -> String {
    use std::hash::Hasher as _;
    let safe: String = task
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(48)
        .collect();
    // FxHasher is deterministic (no random seed), so a name is the same in every process.
    let mut hasher = rustc_hash::FxHasher::default();
    hasher.write(task.as_bytes());
    let hash = hasher.finish();
    match role {
        ViewRole::Attempt => format!("{safe}-{hash:016x}-{attempt}"),
        ViewRole::Resolve => format!("{safe}-{hash:016x}-resolve-{attempt}"),
    }
}

/// What a view is for.
#[derive(Debug, Clone, Copy)]
enum ViewRole {
    /// A task's attempt.
    Attempt,
    /// The conflict resolution after a task's attempt.
    Resolve,
}

fn has_markers(data: &[u8]) -> bool {
    data.split(|b| *b == b'\n').any(|line| {
        line.starts_with(b"<<<<<<< ") || line == b"<<<<<<<" || line.starts_with(b">>>>>>> ")
    })
}

/// Writes entries into a view directory (`None`: delete the path).
fn write_entries(root: &std::path::Path, entries: &[LayerChange]) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for change in entries {
        let path = root.join(&change.path);
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_dir() && !matches!(change.entry, Some(Entry::Dir)) => {
                std::fs::remove_dir_all(&path)?;
            }
            Ok(meta) if !meta.is_dir() => std::fs::remove_file(&path)?,
            _ => {}
        }
        match &change.entry {
            None => {}
            Some(Entry::Dir) => std::fs::create_dir_all(&path)?,
            Some(Entry::File { data, executable }) => {
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                std::fs::write(&path, data)?;
                let mode = if *executable { 0o755 } else { 0o644 };
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))?;
            }
            Some(Entry::Symlink { target }) => std::os::unix::fs::symlink(target, &path)?,
        }
    }
    Ok(())
}

/// Runs blocking staging work on tokio's blocking pool.
async fn blocking<T: Send + 'static>(
    task: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ExecError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ExecError::fatal(format!("task {task}: staging work panicked: {e}")))
}
