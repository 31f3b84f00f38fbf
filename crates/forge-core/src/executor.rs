//! The [`Executor`] trait that every agent backend implements, the [`Job`] it receives, and
//! the registry of executors by name.
//!
//! Built-ins: [`FnExecutor`] (an async closure) and [`ProcessExecutor`] (a command line).

mod argv;
mod func;
mod output;
pub(crate) mod process;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use forge_staging::ViewNamespace;
use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;

pub use self::argv::TemplateError;
pub use self::func::FnExecutor;
pub use self::process::ProcessExecutor;
use crate::event::LogStream;
use crate::plan::Task;

/// Runs one attempt of a task. Object safe: executors are stored as `Arc<dyn Executor>`.
///
/// An executor must return soon after `job.cancel` is cancelled (the scheduler cancels it on a
/// timeout and when the run is cancelled), and must leave nothing running when its future
/// completes or is dropped.
///
/// ```
/// use forge_core::{ExecError, ExecOutput, Executor, Job};
/// use futures::future::BoxFuture;
///
/// struct Echo;
///
/// impl Executor for Echo {
///     fn execute(&self, job: Job) -> BoxFuture<'_, Result<ExecOutput, ExecError>> {
///         Box::pin(async move {
///             job.progress.log(forge_core::LogStream::Stdout, &job.task.prompt);
///             Ok(ExecOutput::default())
///         })
///     }
/// }
/// ```
pub trait Executor: Send + Sync + 'static {
    /// Runs the job to completion (or until its token is cancelled).
    ///
    /// # Errors
    ///
    /// An [`ExecError`] whose [`ErrorClass`] tells the scheduler whether to retry.
    fn execute(&self, job: Job) -> BoxFuture<'_, Result<ExecOutput, ExecError>>;
}

/// Everything an executor gets for one attempt.
#[derive(Clone)]
#[non_exhaustive]
pub struct Job {
    /// The task to run.
    pub task: Arc<Task>,
    /// The directory to work in: the repository itself, or (with the engine) the attempt's
    /// staging view of it.
    pub workdir: PathBuf,
    /// Cancelled on timeout and when the run is cancelled; the executor stops soon after.
    pub cancel: CancellationToken,
    /// Where log lines and custom progress values go (they become events).
    pub progress: ProgressSink,
    /// 1-based attempt number (rate-limited attempts do not count).
    pub attempt: u32,
    /// A handle to request more path locks while running, filled by the engine when it runs
    /// the task under locks; `None` when the scheduler runs tasks without locks.
    pub locks: Option<Arc<dyn LockRequester>>,
    /// The namespace a child process must join to work in `workdir`: set by the engine
    /// for overlay views mounted in a user namespace (overlay without root). `workdir` is
    /// then a `/proc/<pid>/root/...` path, right for reading and writing files from this
    /// process but not as a child's working directory. [`ProcessExecutor`] handles it; an
    /// executor that starts processes itself should use [`Job::configure_command`].
    pub namespace: Option<ViewNamespace>,
}

impl fmt::Debug for Job {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Job")
            .field("task", &self.task.id)
            .field("workdir", &self.workdir)
            .field("attempt", &self.attempt)
            .field("cancelled", &self.cancel.is_cancelled())
            .field("locks", &self.locks.is_some())
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

impl Job {
    /// A first attempt of `task` in `workdir`, with a fresh token, progress discarded and no
    /// lock handle (for calling an executor directly).
    pub fn new(task: Arc<Task>, workdir: impl Into<PathBuf>) -> Self {
        Self {
            task,
            workdir: workdir.into(),
            cancel: CancellationToken::new(),
            progress: ProgressSink::default(),
            attempt: 1,
            locks: None,
            namespace: None,
        }
    }

    /// Sets the cancellation token.
    pub fn with_cancel(mut self, cancel: CancellationToken) -> Self {
        self.cancel = cancel;
        self
    }

    /// Sets the progress sink.
    pub fn with_progress(mut self, progress: ProgressSink) -> Self {
        self.progress = progress;
        self
    }

    /// Sets the attempt number.
    pub fn with_attempt(mut self, attempt: u32) -> Self {
        self.attempt = attempt;
        self
    }

    /// Sets the lock handle.
    pub fn with_locks(mut self, locks: Arc<dyn LockRequester>) -> Self {
        self.locks = Some(locks);
        self
    }

    /// Sets the namespace child processes must join to work in `workdir`.
    pub fn with_namespace(mut self, namespace: Option<ViewNamespace>) -> Self {
        self.namespace = namespace;
        self
    }

    /// The working directory as a child process sees it: the view's real path inside its
    /// namespace when there is one, else `workdir`.
    #[must_use]
    pub fn process_workdir(&self) -> &Path {
        self.namespace
            .as_ref()
            .map_or(self.workdir.as_path(), ViewNamespace::path)
    }

    /// Makes `cmd` start in the job's working directory: it joins the view's namespace
    /// and changes to [`Job::process_workdir`] right before `exec` when there is one,
    /// else it just gets `workdir` as its current directory.
    ///
    /// ```
    /// # let job = forge_core::Job::new(std::sync::Arc::new(forge_core::Task::new("t", "")), "/tmp");
    /// let mut cmd = std::process::Command::new("pwd");
    /// job.configure_command(&mut cmd);
    /// ```
    pub fn configure_command(&self, cmd: &mut std::process::Command) {
        match &self.namespace {
            Some(ns) => ns.configure(cmd),
            None => {
                cmd.current_dir(&self.workdir);
            }
        }
    }
}

/// Requests more path locks while a task runs (filled in by the engine).
///
/// Requests are incremental and can deadlock; the engine detects that and answers the victim
/// with a retryable [`ExecError`], which the executor should return as is.
pub trait LockRequester: Send + Sync {
    /// Waits until the task also holds these read and write patterns.
    ///
    /// # Errors
    ///
    /// A retryable error when the task was chosen as a deadlock victim; a fatal one when a
    /// pattern is invalid or outside the task's declared scope.
    fn request<'a>(
        &'a self,
        reads: &'a [String],
        writes: &'a [String],
    ) -> BoxFuture<'a, Result<(), ExecError>>;
}

/// What an executor reports for one piece of progress.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Progress {
    /// One line of output (without its newline).
    Log {
        /// Which stream.
        stream: LogStream,
        /// The line.
        line: String,
    },
    /// A custom value (becomes a `task_progress` event).
    Custom(serde_json::Value),
}

type ProgressFn = dyn Fn(Progress) + Send + Sync;

/// Where an executor reports log lines and custom progress. Cheap to clone.
#[derive(Clone, Default)]
pub struct ProgressSink {
    inner: Option<Arc<ProgressFn>>,
}

impl fmt::Debug for ProgressSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProgressSink")
            .field("enabled", &self.inner.is_some())
            .finish()
    }
}

impl ProgressSink {
    /// A sink that calls `f` for every report.
    pub fn new(f: impl Fn(Progress) + Send + Sync + 'static) -> Self {
        Self {
            inner: Some(Arc::new(f)),
        }
    }

    /// A sink that drops everything (the default).
    pub fn discard() -> Self {
        Self::default()
    }

    /// Whether reports go anywhere (lets an executor skip formatting work).
    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// Reports a line of output.
    pub fn log(&self, stream: LogStream, line: &str) {
        if let Some(f) = &self.inner {
            f(Progress::Log {
                stream,
                line: line.to_owned(),
            });
        }
    }

    /// Reports a custom value.
    pub fn custom(&self, value: serde_json::Value) {
        if let Some(f) = &self.inner {
            f(Progress::Custom(value));
        }
    }
}

/// What a successful attempt produced.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct ExecOutput {
    /// The exit code, for a process.
    pub exit_code: Option<i32>,
    /// The last bytes of output (bounded by the executor).
    pub output_tail: String,
    /// A custom result value.
    pub data: Option<serde_json::Value>,
}

impl ExecOutput {
    /// An output carrying a custom value.
    pub fn with_data(data: serde_json::Value) -> Self {
        Self {
            data: Some(data),
            ..Self::default()
        }
    }
}

/// How the scheduler treats a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorClass {
    /// Try again after a backoff, if the task has retries left.
    Retryable,
    /// The backend is rate limited: every task of this executor waits `retry_after`, and the
    /// attempt does not count against the task's retries.
    RateLimited {
        /// How long to wait before trying again.
        retry_after: Duration,
    },
    /// Do not try again.
    Fatal,
}

/// Why an attempt failed, with the [`ErrorClass`] that decides what happens next.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ExecError {
    class: ErrorClass,
    message: String,
    output_tail: String,
}

impl ExecError {
    /// An error with this class and message.
    pub fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        Self {
            class,
            message: message.into(),
            output_tail: String::new(),
        }
    }

    /// A retryable error.
    pub fn retryable(message: impl Into<String>) -> Self {
        Self::new(ErrorClass::Retryable, message)
    }

    /// A fatal error.
    pub fn fatal(message: impl Into<String>) -> Self {
        Self::new(ErrorClass::Fatal, message)
    }

    /// A rate-limit error: retry after `retry_after`.
    pub fn rate_limited(retry_after: Duration, message: impl Into<String>) -> Self {
        Self::new(ErrorClass::RateLimited { retry_after }, message)
    }

    /// A rate-limit error whose limit resets at a wall-clock time (e.g. from an HTTP header).
    pub fn rate_limited_until(reset_at: SystemTime, message: impl Into<String>) -> Self {
        let retry_after = reset_at
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO);
        Self::rate_limited(retry_after, message)
    }

    /// Attaches the last output of the attempt.
    pub fn with_output_tail(mut self, tail: impl Into<String>) -> Self {
        self.output_tail = tail.into();
        self
    }

    /// The class.
    pub fn class(&self) -> ErrorClass {
        self.class
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The last output of the attempt (may be empty).
    pub fn output_tail(&self) -> &str {
        &self.output_tail
    }
}

/// Executors by name; a task's `executor` field picks one.
///
/// ```
/// use forge_core::{Executors, ExecOutput, FnExecutor};
///
/// let executors = Executors::default()
///     .with("default", FnExecutor::new(|_job| async { Ok(ExecOutput::default()) }));
/// assert!(executors.get("default").is_some());
/// ```
#[derive(Clone, Default)]
pub struct Executors {
    by_name: BTreeMap<String, Arc<dyn Executor>>,
}

impl fmt::Debug for Executors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.by_name.keys()).finish()
    }
}

impl Executors {
    /// Registers one executor under the name `"default"`.
    pub fn single(executor: impl Executor) -> Self {
        Self::default().with(crate::plan::DEFAULT_EXECUTOR, executor)
    }

    /// Registers `executor` under `name` (replacing any previous one).
    pub fn with(mut self, name: impl Into<String>, executor: impl Executor) -> Self {
        self.insert(name, Arc::new(executor));
        self
    }

    /// Registers a shared executor under `name` (replacing any previous one).
    pub fn insert(&mut self, name: impl Into<String>, executor: Arc<dyn Executor>) {
        self.by_name.insert(name.into(), executor);
    }

    /// The executor registered under `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Executor>> {
        self.by_name.get(name)
    }

    /// The registered names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }
}
