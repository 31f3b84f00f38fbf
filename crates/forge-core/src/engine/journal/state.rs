//! [`RunState`] and [`TaskState`]: what a run's journal says, read back for resume and
//! status.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use forge_events::TaskSpan;

use super::{JournalWriter, RunDir, journal_error};
use crate::engine::EngineError;
use crate::event::Event;
use crate::metrics::{MetricsRecorder, RunMetrics};
use crate::plan::Plan;

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
    /// Whether the run finished (published into the working tree or not: a run that lands
    /// as a branch does not publish).
    pub finished: bool,
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
        state.kept_work = crate::engine::kept::list(dir.path());
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
            Event::RunPublished { published, .. } => {
                self.published = *published;
                self.finished = true;
            }
            Event::EventsLost { missed } => self.events_lost += missed,
            Event::RunResumed { .. } => {
                // Tasks that were running when the process died start over.
                for state in self.tasks.values_mut() {
                    if !matches!(state, TaskState::Merged { .. } | TaskState::Skipped { .. }) {
                        *state = TaskState::Pending;
                    }
                }
                self.published = false;
                self.finished = false;
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
    pub(in crate::engine) fn settle_in_flight_commit(
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
    pub(in crate::engine) fn settle_committed_layers(
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
