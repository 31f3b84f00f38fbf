//! The run directory (plan, journal, staging data), the journal writer that every durable
//! state change goes through, and [`RunState`]: what a journal says about a run.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use forge_events::{Bus, Delivery, FsyncPolicy, Journal, TaskSpan};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::EngineError;
use crate::event::Event;
use crate::metrics::{MetricsRecorder, RunMetrics};
use crate::plan::Plan;

/// Called after every journal append with the step number (1-based).
///
/// Fault-injection tests abort the process from it at a chosen step; a progress display can
/// count steps with it.
pub type JournalHook = Arc<dyn Fn(u64) + Send + Sync>;

const PLAN_FILE: &str = "plan.json";
const JOURNAL_FILE: &str = "journal.jsonl";
/// Locked (`flock`, exclusive) by the process running or resuming the run, for as long as it
/// writes the journal: the kernel drops the lock when the process ends, however it ends.
const LOCK_FILE: &str = "run.lock";

/// A run directory: `plan.json` (the plan as run), `journal.jsonl` (every event, one JSON
/// record a line) and the staging data (layers, views) beside them.
#[derive(Debug, Clone)]
pub struct RunDir {
    path: PathBuf,
}

impl RunDir {
    /// Creates the run directory (or reuses an empty one) and stores the plan in it.
    ///
    /// # Errors
    ///
    /// The directory already holds a journal (use resume), or it cannot be written.
    pub fn create(path: &Path, plan: &Plan) -> Result<RunDir, EngineError> {
        let dir = RunDir {
            path: path.to_path_buf(),
        };
        std::fs::create_dir_all(path).map_err(|e| dir.io_error("create", path, &e))?;
        if dir.journal_path().exists() {
            return Err(dir.error(
                "already holds a run's journal: resume it with `forge resume`, or pick a new directory"
                    .to_owned(),
            ));
        }
        let plan_path = dir.plan_path();
        let tmp = path.join(".plan.json.tmp");
        std::fs::write(&tmp, plan.to_json()).map_err(|e| dir.io_error("write", &tmp, &e))?;
        std::fs::rename(&tmp, &plan_path).map_err(|e| dir.io_error("write", &plan_path, &e))?;
        Ok(dir)
    }

    /// Opens an existing run directory.
    ///
    /// # Errors
    ///
    /// It does not exist or holds no journal.
    pub fn open(path: &Path) -> Result<RunDir, EngineError> {
        let dir = RunDir {
            path: path.to_path_buf(),
        };
        if !dir.journal_path().is_file() {
            return Err(dir.error("holds no journal: not a forge run directory".to_owned()));
        }
        Ok(dir)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The stored plan's path.
    pub fn plan_path(&self) -> PathBuf {
        self.path.join(PLAN_FILE)
    }

    /// The journal's path.
    pub fn journal_path(&self) -> PathBuf {
        self.path.join(JOURNAL_FILE)
    }

    /// Loads the stored plan.
    ///
    /// # Errors
    ///
    /// It is missing or unreadable.
    pub fn load_plan(&self) -> Result<Plan, EngineError> {
        let path = self.plan_path();
        Plan::load(&path).map_err(|e| self.error(format!("cannot load {}: {e}", path.display())))
    }

    /// Takes the run directory's lock for this process, so that no second process runs or
    /// resumes it at the same time and `status` knows the run is live.
    pub(super) fn lock(&self) -> Result<std::fs::File, EngineError> {
        use rustix::fs::{FlockOperation, flock};
        let path = self.path.join(LOCK_FILE);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| self.io_error("create", &path, &e))?;
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(file),
            Err(rustix::io::Errno::WOULDBLOCK) => Err(self.error(
                "is in use by another forge process (a run or a resume of it is still going)"
                    .to_owned(),
            )),
            Err(e) => Err(self.io_error("lock", &path, &e.into())),
        }
    }

    /// Whether a process holds the run directory's lock: the run is going on right now.
    pub fn is_live(&self) -> bool {
        use rustix::fs::{FlockOperation, flock};
        let Ok(file) = std::fs::File::open(self.path.join(LOCK_FILE)) else {
            return false;
        };
        matches!(
            flock(&file, FlockOperation::NonBlockingLockShared),
            Err(rustix::io::Errno::WOULDBLOCK)
        )
    }

    pub(super) fn io_error(&self, op: &str, path: &Path, e: &std::io::Error) -> EngineError {
        EngineError::RunDir {
            path: self.path.clone(),
            message: format!("cannot {op} {}: {e}", path.display()),
        }
    }
}

/// Appends events to the run's journal, counting steps for the hook.
///
/// Two kinds of records reach the journal: bus events, written by the drain task as they
/// come, and the records the engine writes itself ([`JournalWriter::append`] and
/// [`JournalWriter::append_commit_point`]: commit points, `task_merged`, run markers). While
/// the drain runs, the engine's own records go through it too, after it has written every
/// bus event already published: the journal then keeps the order in which things happened
/// even when the drain lags behind a flood of output (a `task_merged` never lands before
/// that task's `task_started`).
pub(super) struct JournalWriter {
    journal: Journal<Event>,
    /// The run directory's lock, held while this writer lives or until
    /// [`JournalWriter::release`].
    lock: parking_lot::Mutex<Option<std::fs::File>>,
    steps: AtomicU64,
    hook: Option<JournalHook>,
    /// While the drain runs: where the engine's own records go.
    ordered: parking_lot::Mutex<Option<mpsc::UnboundedSender<Ordered>>>,
}

/// A record of the engine's own, handed to the drain, and where to answer.
struct Ordered {
    event: Event,
    fsync: bool,
    done: std::sync::mpsc::SyncSender<Result<(), EngineError>>,
}

impl JournalWriter {
    /// Lets go of the run directory's lock: the run is over for this process, even if a
    /// detached piece of work (a commit finishing on the blocking pool after its attempt was
    /// given up) still holds a reference to this writer.
    pub(super) fn release(&self) {
        drop(self.lock.lock().take());
    }

    /// A new journal in `dir`, whose lock (see [`RunDir::lock`]) the caller took.
    pub(super) fn create(
        dir: &RunDir,
        lock: std::fs::File,
        policy: FsyncPolicy,
        hook: Option<JournalHook>,
    ) -> Result<Self, EngineError> {
        let journal = Journal::create(&dir.journal_path(), policy).map_err(journal_error)?;
        Ok(Self::new(journal, lock, hook))
    }

    /// The journal of `dir`, to append to; the caller took the directory's lock.
    pub(super) fn open(
        dir: &RunDir,
        lock: std::fs::File,
        policy: FsyncPolicy,
        hook: Option<JournalHook>,
    ) -> Result<Self, EngineError> {
        let journal = Journal::open_append(&dir.journal_path(), policy).map_err(journal_error)?;
        Ok(Self::new(journal, lock, hook))
    }

    fn new(journal: Journal<Event>, lock: std::fs::File, hook: Option<JournalHook>) -> Self {
        Self {
            journal,
            lock: parking_lot::Mutex::new(Some(lock)),
            steps: AtomicU64::new(0),
            hook,
            ordered: parking_lot::Mutex::new(None),
        }
    }

    /// Appends an event under the journal's fsync policy, after every bus event published
    /// before it. Blocks until written: call it from a blocking context.
    pub(super) fn append(&self, event: &Event) -> Result<(), EngineError> {
        self.write_in_order(event, false)
    }

    /// Appends an event, after every bus event published before it, and fsyncs before
    /// returning. Blocks until written: call it from a blocking context.
    pub(super) fn append_commit_point(&self, event: &Event) -> Result<(), EngineError> {
        self.write_in_order(event, true)
    }

    fn write_in_order(&self, event: &Event, fsync: bool) -> Result<(), EngineError> {
        let sender = self.ordered.lock().clone();
        if let Some(sender) = sender {
            let (done, answer) = std::sync::mpsc::sync_channel(1);
            let request = Ordered {
                event: event.clone(),
                fsync,
                done,
            };
            if sender.send(request).is_ok()
                && let Ok(result) = answer.recv()
            {
                return result;
            }
            // The drain stopped before taking the record: nothing was written.
        }
        self.write_now(event, fsync)
    }

    fn write_now(&self, event: &Event, fsync: bool) -> Result<(), EngineError> {
        if fsync {
            self.journal.append_commit_point(event)
        } else {
            self.journal.append(event)
        }
        .map_err(journal_error)?;
        self.step();
        Ok(())
    }

    fn step(&self) {
        let step = self.steps.fetch_add(1, Ordering::SeqCst) + 1;
        if let Some(hook) = &self.hook {
            hook(step);
        }
    }

    /// Starts writing every bus event that the engine does not journal itself, and the
    /// engine's own records in order with them.
    pub(super) fn drain(self: Arc<Self>, bus: &Bus<Event>) -> Drain {
        let mut subscription = bus.subscribe_filtered(|e: &Event| !is_engine_record(e));
        let (sender, mut requests) = mpsc::unbounded_channel::<Ordered>();
        *self.ordered.lock() = Some(sender);
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        let write = |journal: &JournalWriter, delivery: Delivery<Event>| {
            let event = match delivery {
                Delivery::Event(event) => event,
                Delivery::Lagged(missed) => Event::EventsLost { missed },
            };
            // A journal that cannot be written loses progress lines, not merged work: the
            // engine's own records report their errors to the commit that wrote them.
            let _ = journal.write_now(&event, false);
        };
        let catch_up =
            move |journal: &JournalWriter, subscription: &mut forge_events::Subscription<Event>| {
                while let Ok(delivery) = subscription.try_recv() {
                    write(journal, delivery);
                }
            };
        let answer = move |journal: &JournalWriter,
                           subscription: &mut forge_events::Subscription<Event>,
                           request: Ordered| {
            catch_up(journal, subscription);
            let _ = request
                .done
                .send(journal.write_now(&request.event, request.fsync));
        };
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    biased;
                    Some(request) = requests.recv() => answer(&self, &mut subscription, request),
                    delivery = subscription.recv() => match delivery {
                        Some(delivery) => write(&self, delivery),
                        None => break,
                    },
                    () = stopped.cancelled() => break,
                }
            }
            // From now on the engine writes its records itself; answer those already sent.
            *self.ordered.lock() = None;
            while let Ok(request) = requests.try_recv() {
                answer(&self, &mut subscription, request);
            }
            catch_up(&self, &mut subscription);
        });
        Drain { stop, task }
    }
}

/// Records only the engine writes (through [`JournalWriter::append`] and
/// [`JournalWriter::append_commit_point`]), never published on the bus. The drain skips bus
/// events of these kinds, so nothing published on a caller's bus can fake a commit that
/// resume would trust.
fn is_engine_record(event: &Event) -> bool {
    matches!(
        event,
        Event::CommitStarted { .. }
            | Event::TaskMerged { .. }
            | Event::RunResumed { .. }
            | Event::RunPublished { .. }
    )
}

fn journal_error(e: forge_events::JournalError) -> EngineError {
    EngineError::Journal(e)
}

/// The task writing bus events to the journal.
pub(super) struct Drain {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Drain {
    /// Writes what is still queued, then stops.
    pub(super) async fn finish(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// Where a task stands according to the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TaskState {
    /// No event about it yet.
    Pending,
    /// Ready to start, waiting for a slot.
    Ready,
    /// An attempt is running.
    Running {
        /// The attempt number.
        attempt: u32,
    },
    /// Waiting to be retried.
    Retrying {
        /// The attempt that failed.
        attempt: u32,
        /// Why.
        error: String,
    },
    /// Its changes were committed (or it changed nothing) and the attempt ended.
    Merged {
        /// The head generation after its commit.
        generation: u64,
    },
    /// It failed.
    Failed {
        /// Why.
        error: String,
    },
    /// It was skipped.
    Skipped {
        /// Why.
        reason: String,
    },
    /// It was cancelled.
    Cancelled,
    /// An attempt was running when the run stopped (a crash, a kill, a full disk that kept
    /// its end from being recorded): how it ended is unknown. Only for a run that no
    /// process is running any more; a resume runs it again.
    Interrupted {
        /// The attempt that was running.
        attempt: u32,
    },
}

/// What a run's journal says: tasks, generations, conflicts, lock waits, timing.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct RunState {
    /// Every task named in the journal, with where it stands.
    pub tasks: BTreeMap<String, TaskState>,
    /// The last committed generation the journal records.
    pub generation: u64,
    /// Conflicts, by task: the conflicted paths.
    pub conflicts: Vec<(String, Vec<String>)>,
    /// Lock waits: task and how long it waited, in milliseconds.
    pub lock_waits: Vec<(String, u64)>,
    /// Deadlocks: victim and cycle.
    pub deadlocks: Vec<(String, String)>,
    /// Paths written outside a task's declared scope, by task.
    pub scope_violations: Vec<(String, Vec<String>)>,
    /// Start and end of each merged task, in milliseconds since the journal's first record.
    pub spans: BTreeMap<String, (u64, u64)>,
    /// Whether the run finished and published.
    pub published: bool,
    /// Whether a process is running (or resuming) the run right now.
    pub live: bool,
    /// Whether the journal's last line was torn (the process died while writing it).
    pub torn_tail: bool,
    /// Corrupt lines in the middle of the journal (1-based line numbers).
    pub corrupt_lines: Vec<usize>,
    /// Events lost by the journal writer falling behind the bus.
    pub events_lost: u64,
    /// Tasks found merged by their layer on disk although their journal records were
    /// damaged (filled in by resume).
    pub recovered_from_layers: Vec<String>,
    /// Change sets of tasks that did not merge (conflicts, writes outside their scope),
    /// kept in the run directory: one directory each, see `changes.json` inside.
    pub kept_work: Vec<PathBuf>,
    /// Queue wait, lock wait, run and merge times, counters and critical path, derived from
    /// the journal's events and timestamps (see [`MetricsRecorder`]); per executor when the
    /// run directory's plan is readable.
    pub metrics: RunMetrics,
    merged: BTreeSet<String>,
    in_flight: Option<(String, u64)>,
    started_ms: BTreeMap<String, u64>,
}

impl RunState {
    /// Reads the journal of a run directory (and its plan, for the metrics per executor).
    ///
    /// # Errors
    ///
    /// The journal cannot be read.
    pub fn load(dir: &RunDir) -> Result<RunState, EngineError> {
        let recovered =
            forge_events::read_journal::<Event>(&dir.journal_path()).map_err(journal_error)?;
        if recovered.records.is_empty()
            && (recovered.torn_tail.is_some() || !recovered.corrupt.is_empty())
        {
            let lines = recovered.corrupt.len() + usize::from(recovered.torn_tail.is_some());
            return Err(dir.error(format!(
                "{} is not a forge journal: none of its {lines} line{} is a forge record",
                dir.journal_path().display(),
                if lines == 1 { "" } else { "s" }
            )));
        }
        let mut state = RunState {
            torn_tail: recovered.torn_tail.is_some(),
            corrupt_lines: recovered.corrupt.iter().map(|c| c.line).collect(),
            ..RunState::default()
        };
        let mut recorder = dir.load_plan().map_or_else(
            |_| MetricsRecorder::default(),
            |plan| MetricsRecorder::new(&plan),
        );
        let t0 = recovered.records.first().map_or(0, |r| r.ts_ms);
        for record in &recovered.records {
            state.apply(&record.event, record.ts_ms.saturating_sub(t0));
            recorder.observe(&record.event, record.ts_ms);
        }
        state.metrics = recorder.snapshot();
        state.kept_work = super::kept::list(dir.path());
        state.live = dir.is_live();
        if !state.live {
            // Nobody runs these any more: their end was never recorded.
            for task in state.tasks.values_mut() {
                if let TaskState::Running { attempt } = *task {
                    *task = TaskState::Interrupted { attempt };
                }
            }
        }
        Ok(state)
    }

    fn apply(&mut self, event: &Event, at_ms: u64) {
        let set = |tasks: &mut BTreeMap<String, TaskState>, task: &str, state: TaskState| {
            tasks.insert(task.to_owned(), state);
        };
        match event {
            Event::TaskReady { task } => set(&mut self.tasks, task, TaskState::Ready),
            Event::TaskStarted { task, attempt } => {
                self.started_ms.entry(task.clone()).or_insert(at_ms);
                set(
                    &mut self.tasks,
                    task,
                    TaskState::Running { attempt: *attempt },
                );
            }
            Event::TaskRetrying {
                task,
                attempt,
                error,
                ..
            } => set(
                &mut self.tasks,
                task,
                TaskState::Retrying {
                    attempt: *attempt,
                    error: error.clone(),
                },
            ),
            Event::CommitStarted { task, generation } => {
                self.in_flight = Some((task.clone(), *generation));
            }
            Event::TaskMerged {
                task, generation, ..
            } => {
                self.in_flight = None;
                self.generation = self.generation.max(*generation);
                self.merged.insert(task.clone());
                let start = self.started_ms.get(task).copied().unwrap_or(at_ms);
                self.spans.insert(task.clone(), (start, at_ms));
                set(
                    &mut self.tasks,
                    task,
                    TaskState::Merged {
                        generation: *generation,
                    },
                );
            }
            Event::TaskFailed { task, error, .. } => set(
                &mut self.tasks,
                task,
                TaskState::Failed {
                    error: error.clone(),
                },
            ),
            Event::TaskSkipped { task, reason } => set(
                &mut self.tasks,
                task,
                TaskState::Skipped {
                    reason: reason.clone(),
                },
            ),
            Event::TaskCancelled { task } => set(&mut self.tasks, task, TaskState::Cancelled),
            Event::MergeConflict { task, paths } => {
                self.conflicts.push((task.clone(), paths.clone()));
            }
            Event::LockAcquired { task, waited_ms } if *waited_ms > 0 => {
                self.lock_waits.push((task.clone(), *waited_ms));
            }
            Event::Deadlock { victim, cycle } => {
                self.deadlocks.push((victim.clone(), cycle.clone()));
            }
            Event::ScopeViolation { task, paths } => {
                self.scope_violations.push((task.clone(), paths.clone()));
            }
            Event::RunPublished { published, .. } => self.published = *published,
            Event::EventsLost { missed } => self.events_lost += missed,
            Event::RunResumed { .. } => {
                // Tasks that were running when the process died start over.
                for state in self.tasks.values_mut() {
                    if !matches!(state, TaskState::Merged { .. } | TaskState::Skipped { .. }) {
                        *state = TaskState::Pending;
                    }
                }
                self.published = false;
            }
            _ => {}
        }
    }

    /// Whether the journal shows `task` merged.
    pub fn is_merged(&self, task: &str) -> bool {
        self.merged.contains(task)
    }

    /// The commit that was in flight when the journal ends, if any: task and generation.
    pub fn in_flight_commit(&self) -> Option<(&str, u64)> {
        self.in_flight.as_ref().map(|(t, g)| (t.as_str(), *g))
    }

    /// Settles a commit that was in flight when the process died: staging's layers are the
    /// commit point, so if generation `g` exists the task is merged (the record is written
    /// now), else the commit is rolled back (staging already dropped the half-written layer).
    pub(super) fn settle_in_flight_commit(
        &mut self,
        staging_head: u64,
        journal: &JournalWriter,
    ) -> Result<(), EngineError> {
        if let Some((task, generation)) = self.in_flight.take()
            && staging_head >= generation
        {
            let event = Event::TaskMerged {
                task: task.clone(),
                generation,
                paths: 0,
            };
            journal.append_commit_point(&event)?;
            self.apply(&event, 0);
        }
        self.generation = staging_head;
        Ok(())
    }

    /// Trusts the layers on disk over the journal: every committed layer names the task that
    /// committed it, so a task whose `commit_started` / `task_merged` records were damaged
    /// (and are therefore not read) is still known to be merged, and is never applied twice.
    /// Its `task_merged` record is written again now.
    pub(super) fn settle_committed_layers(
        &mut self,
        labels: &[(u64, Option<String>)],
        plan: &Plan,
        journal: &JournalWriter,
    ) -> Result<(), EngineError> {
        for (generation, label) in labels {
            let Some(task) = label else { continue };
            if self.is_merged(task) || !plan.tasks.iter().any(|t| &t.id == task) {
                continue;
            }
            let event = Event::TaskMerged {
                task: task.clone(),
                generation: *generation,
                paths: 0,
            };
            journal.append_commit_point(&event)?;
            self.apply(&event, 0);
            self.recovered_from_layers.push(task.clone());
        }
        Ok(())
    }

    /// The run's critical path through the merged tasks, by their journal timestamps.
    pub fn critical_path(&self, plan: &Plan) -> forge_events::CriticalPath {
        let spans: Vec<TaskSpan> = plan
            .tasks
            .iter()
            .filter_map(|t| {
                let (start, end) = *self.spans.get(&t.id)?;
                Some(TaskSpan {
                    id: t.id.clone(),
                    deps: t.deps.clone(),
                    start: Duration::from_millis(start),
                    end: Duration::from_millis(end),
                })
            })
            .collect();
        forge_events::critical_path(&spans)
    }
}
