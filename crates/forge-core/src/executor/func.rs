//! [`FnExecutor`]: an executor from an async closure, for in-process agents and tests.

use std::fmt;
use std::future::Future;

use futures::future::BoxFuture;

use super::{ExecError, ExecOutput, Executor, Job};

/// Runs each job by calling an async closure.
///
/// ```
/// use forge_core::{ExecError, ExecOutput, Executor, FnExecutor, Job, Task};
/// use std::sync::Arc;
///
/// let executor = FnExecutor::new(|job: Job| async move {
///     if job.task.prompt.is_empty() {
///         return Err(ExecError::fatal(format!("task `{}` has no prompt", job.task.id)));
///     }
///     Ok(ExecOutput::default())
/// });
/// let job = Job::new(Arc::new(Task::new("a", "say hi")), ".");
/// let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
/// assert!(rt.block_on(executor.execute(job)).is_ok());
/// ```
pub struct FnExecutor<F> {
    f: F,
}

impl<F> fmt::Debug for FnExecutor<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FnExecutor").finish_non_exhaustive()
    }
}

impl<F, Fut> FnExecutor<F>
where
    F: Fn(Job) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<ExecOutput, ExecError>> + Send + 'static,
{
    /// Wraps the closure.
    pub fn new(f: F) -> Self {
        Self { f }
    }
}

impl<F, Fut> Executor for FnExecutor<F>
where
    F: Fn(Job) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<ExecOutput, ExecError>> + Send + 'static,
{
    fn execute(&self, job: Job) -> BoxFuture<'_, Result<ExecOutput, ExecError>> {
        Box::pin((self.f)(job))
    }
}
