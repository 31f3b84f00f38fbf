//! The run directory (plan, journal, staging data), the journal writer that every durable
//! state change goes through; [`RunState`] (what a journal says about a run) is in `state`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use forge_events::{Bus, Delivery, FsyncPolicy, Journal};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::EngineError;
use crate::event::Event;
use crate::plan::Plan;

mod state;
pub use self::state::{RunState, TaskState};

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
