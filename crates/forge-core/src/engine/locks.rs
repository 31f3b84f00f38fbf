//! Path locks for one attempt: the declared set, acquired all-or-nothing before the view
//! opens, and the [`LockRequester`] handed to executors for locks requested while running.

use std::sync::Arc;
use std::time::Instant;

use forge_events::Bus;
use forge_locks::{LockError, Mode, Owner, Pattern};
use futures::future::BoxFuture;
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

use crate::event::Event;
use crate::executor::{ExecError, LockRequester};

/// Parses a task's `reads` and `writes` into lock requests (writes win where a pattern is in
/// both).
///
/// # Errors
///
/// A fatal [`ExecError`] naming the task and the pattern.
pub(super) fn requests(
    task: &str,
    reads: &[String],
    writes: &[String],
) -> Result<Vec<(Pattern, Mode)>, ExecError> {
    let parse =
        |p: &String| Pattern::parse(p).map_err(|e| ExecError::fatal(format!("task {task}: {e}")));
    let mut out = Vec::with_capacity(reads.len() + writes.len());
    for w in writes {
        out.push((parse(w)?, Mode::Write));
    }
    for r in reads {
        let pattern = parse(r)?;
        if !out.iter().any(|(p, _)| *p == pattern) {
            out.push((pattern, Mode::Read));
        }
    }
    Ok(out)
}

/// Acquires `requests` for `owner`, publishing `lock_waiting` when it has to wait,
/// `lock_acquired` when granted and `deadlock` when it is chosen as a victim.
///
/// # Errors
///
/// A retryable [`ExecError`] when this owner is a deadlock victim or the attempt is
/// cancelled while waiting.
pub(super) async fn acquire(
    owner: &Owner,
    requests: &[(Pattern, Mode)],
    bus: &Bus<Event>,
    cancel: &CancellationToken,
) -> Result<forge_locks::Guard, ExecError> {
    let task = owner.name().to_owned();
    let started = Instant::now();
    match owner.try_acquire(requests) {
        Ok(guard) => {
            bus.publish(Event::LockAcquired { task, waited_ms: 0 });
            return Ok(guard);
        }
        Err(LockError::WouldBlock { blockers, .. }) => {
            let (reads, writes) = split(requests);
            bus.publish(Event::LockWaiting {
                task: task.clone(),
                reads,
                writes,
                holders: blockers,
            });
        }
        Err(e) => return Err(lock_error(&task, e, bus)),
    }
    let result = tokio::select! {
        result = owner.acquire(requests) => result,
        () = cancel.cancelled() => {
            return Err(ExecError::retryable(format!("task {task} was cancelled while waiting for locks")));
        }
    };
    match result {
        Ok(guard) => {
            bus.publish(Event::LockAcquired {
                task,
                waited_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            });
            Ok(guard)
        }
        Err(e) => Err(lock_error(&task, e, bus)),
    }
}

fn split(requests: &[(Pattern, Mode)]) -> (Vec<String>, Vec<String>) {
    let pick = |mode: Mode| {
        requests
            .iter()
            .filter(|(_, m)| *m == mode)
            .map(|(p, _)| p.to_string())
            .collect()
    };
    (pick(Mode::Read), pick(Mode::Write))
}

fn lock_error(task: &str, e: LockError, bus: &Bus<Event>) -> ExecError {
    match e {
        LockError::Deadlock(deadlock) => {
            let cycle = deadlock.to_string();
            bus.publish(Event::Deadlock {
                victim: task.to_owned(),
                cycle: cycle.clone(),
            });
            // Retryable: the victim's view is thrown away and the task runs again.
            ExecError::retryable(format!(
                "task {task} was chosen as a deadlock victim: {cycle}"
            ))
        }
        other => ExecError::retryable(format!("task {task}: {other}")),
    }
}

/// The lock handle an executor gets in [`Job::locks`](crate::Job::locks): more locks for the
/// same owner, held until the attempt ends.
pub(super) struct AttemptLocks {
    pub(super) owner: Arc<Owner>,
    pub(super) bus: Bus<Event>,
    pub(super) cancel: CancellationToken,
    pub(super) held: Mutex<Vec<forge_locks::Guard>>,
}

impl LockRequester for AttemptLocks {
    fn request<'a>(
        &'a self,
        reads: &'a [String],
        writes: &'a [String],
    ) -> BoxFuture<'a, Result<(), ExecError>> {
        Box::pin(async move {
            let requests = requests(self.owner.name(), reads, writes)?;
            let guard = acquire(&self.owner, &requests, &self.bus, &self.cancel).await?;
            self.held.lock().push(guard);
            Ok(())
        })
    }
}
