//! Run many coding agents (or any jobs) in parallel on one repository without them wrecking
//! each other's work.
//!
//! forge-core is the only forge crate that knows what a task is. It holds:
//!
//! - the plan model ([`Plan`], [`Task`]) read from TOML, JSON or a Droidz `tasks.json`, and its
//!   validation ([`Plan::validate`] -> [`ValidatedPlan`], or a [`PlanError`] listing every
//!   problem at once);
//! - phases for a dry run ([`ValidatedPlan::phases`], as text, JSON, DOT or Mermaid);
//! - the scheduler ([`run_plan`] with [`RunOptions`], giving a [`RunOutcome`]), which runs each
//!   attempt through the [`AttemptRunner`] seam;
//! - the [`Executor`] trait with [`FnExecutor`] and [`ProcessExecutor`];
//! - the [`Event`] type published on a [`forge_events::Bus`], and the run metrics derived
//!   from events ([`MetricsRecorder`] -> [`RunMetrics`]: queue, lock, run and merge times,
//!   counters) that [`run_engine`] and [`status`] report.
//!
//! It re-exports the leaf crates, so `cargo add forge-core` gives a user everything.
//!
//! # Example
//!
//! ```
//! use forge_core::{Event, Executors, ExecOutput, FnExecutor, Plan, RunOptions, run_plan};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! let plan = Plan::parse(r#"
//!     [[task]]
//!     id = "models"
//!     prompt = "Add the User model"
//!
//!     [[task]]
//!     id = "api"
//!     prompt = "Add the /login endpoint"
//!     deps = ["models"]
//! "#)?.validate()?;
//! assert_eq!(plan.phases().to_names(), vec![vec!["models"], vec!["api"]]);
//!
//! let executors = Executors::single(FnExecutor::new(|job: forge_core::Job| async move {
//!     job.progress.log(forge_core::LogStream::Stdout, &format!("working on {}", job.task.id));
//!     Ok(ExecOutput::default())
//! }));
//! let bus = forge_core::EventBus::new(1024);
//! let mut events = bus.subscribe();
//! let outcome = run_plan(&plan, &executors, RunOptions::default().bus(bus)).await?;
//! assert!(outcome.is_success());
//! let first = events.try_recv()?;
//! assert_eq!(first, forge_core::events::Delivery::Event(Event::RunStarted { tasks: 2, jobs: outcome_jobs() }));
//! # fn outcome_jobs() -> usize { std::thread::available_parallelism().map_or(4, |n| n.get()) }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
//!
//! # Crate features
//!
//! None: everything is always built. Unix only (process groups and signals).

#![forbid(unsafe_code)]

mod engine;
mod event;
mod executor;
pub mod land;
mod metrics;
mod phases;
mod plan;
mod scheduler;
mod validate;

pub use forge_events as events;
pub use forge_locks as locks;
pub use forge_merge as merge;
pub use forge_staging as staging;

pub use crate::engine::{
    ConflictPolicy, ConflictReport, EngineError, EngineOptions, EngineOutcome, JournalHook,
    PathConflict, RunDir, RunState, ScopePolicy, StaleReadPolicy, TaskState, resume, run_engine,
    status,
};
pub use crate::event::{Event, LogStream};
pub use crate::executor::process::{EXIT_RATE_LIMITED, EXIT_RETRYABLE};
pub use crate::executor::{
    ErrorClass, ExecError, ExecOutput, Executor, Executors, FnExecutor, Job, LockRequester,
    ProcessExecutor, Progress, ProgressSink, TemplateError,
};
pub use crate::metrics::{METRIC_COUNTERS, MetricsRecorder, RESOLVE_TIME, RunMetrics, TaskTimes};
pub use crate::phases::{PhaseFormat, Phases};
pub use crate::plan::{DEFAULT_EXECUTOR, LoadError, Plan, PlanFormat, Task};
pub use crate::scheduler::{
    AttemptCtx, AttemptRunner, Backoff, Counts, DirectRunner, EventBus, MAX_RATE_LIMIT_PAUSE,
    RunError, RunOptions, RunOutcome, SkipReason, TaskOutcome, run_plan,
};
pub use crate::validate::{PlanError, Problem, ValidatedPlan};
