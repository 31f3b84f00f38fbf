//! The coordinator: the one loop that owns all scheduling state. Tasks are indices on the
//! hot path; each attempt is a tokio task in a `JoinSet`, so nothing outlives the run.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::FutureExt as _;
use rand::SeedableRng as _;
use rand::rngs::SmallRng;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::outcome::{RunOutcome, SkipReason, TaskOutcome};
use super::rank::Ranks;
use super::{
    AttemptCtx, AttemptRunner, Backoff, DirectRunner, EventBus, MAX_RATE_LIMIT_PAUSE, RunError,
    RunOptions,
};
use crate::event::Event;
use crate::executor::{
    ErrorClass, ExecError, ExecOutput, Executor, Executors, Progress, ProgressSink,
};
use crate::validate::ValidatedPlan;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Some dependency has not succeeded yet.
    Waiting,
    /// In the ready queue, or parked on a pool or a paused executor.
    Ready,
    Running,
    /// Waiting for a retry timer.
    Backoff,
    /// Has its outcome.
    Done,
}

/// Ready-queue order: priority, then longest remaining path, then plan order.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct ReadyKey {
    priority: i32,
    rank: u64,
    idx: Reverse<u32>,
}

/// What one attempt's tokio task hands back.
struct AttemptEnd {
    idx: u32,
    /// The error was made here, without the task's name (the coordinator adds it): the
    /// executor panicked, or did not stop after its timeout.
    unnamed_error: bool,
    /// `None` when the attempt's future was dropped before it finished (aborted after the
    /// stop grace period).
    result: Option<Result<ExecOutput, ExecError>>,
    timed_out: bool,
    elapsed: Duration,
}

/// What every attempt's tokio task shares: one reference count per attempt, not one per part.
struct Shared {
    runner: Arc<dyn AttemptRunner>,
    done: mpsc::UnboundedSender<AttemptEnd>,
}

/// Sends the attempt's end to the coordinator when dropped, so an aborted attempt reports too.
struct Report<'a> {
    done: &'a mpsc::UnboundedSender<AttemptEnd>,
    idx: u32,
    end: Option<AttemptEnd>,
}

impl Drop for Report<'_> {
    fn drop(&mut self) {
        let end = self.end.take().unwrap_or(AttemptEnd {
            idx: self.idx,
            unnamed_error: false,
            result: None,
            timed_out: false,
            elapsed: Duration::ZERO,
        });
        // The coordinator outlives every attempt (it waits for all of them), so this only
        // fails if the coordinator itself was dropped mid-run; then nobody needs the report.
        let _ = self.done.send(end);
    }
}

#[derive(Debug, Clone, Copy)]
enum Stop {
    FailFast { failed: u32 },
    Cancelled,
}

pub(super) struct Coordinator<'p> {
    plan: &'p ValidatedPlan,
    jobs: usize,
    keep_going: bool,
    backoff: Backoff,
    stop_grace: Duration,
    max_rate_limit_waits: u32,
    max_rate_limit_total: Duration,
    seed: Option<u64>,
    run_cancel: CancellationToken,
    /// Cancelled to drop every running attempt at once.
    run_abort: CancellationToken,
    /// Child of `run_cancel`; cancelled to stop every attempt (fail-fast or cancel).
    attempts_token: CancellationToken,
    bus: Option<EventBus>,
    workdir: Arc<Path>,

    executors: Vec<Arc<dyn Executor>>,
    executor_names: Vec<String>,
    task_executor: Vec<u16>,
    /// Executors paused by a rate limit, until when; and the tasks parked on them.
    paused_until: Vec<Option<Instant>>,
    paused_waiting: Vec<Vec<u32>>,

    task_resources: Vec<Box<[(u16, u32)]>>,
    pool_free: Vec<u32>,
    pool_waiting: Vec<Vec<u32>>,

    remaining_deps: Vec<u32>,
    state: Vec<State>,
    attempts: Vec<u32>,
    rate_waits: Vec<u32>,
    /// Time each task has spent paused by rate limits so far.
    rate_paused: Vec<Duration>,
    outcomes: Vec<Option<TaskOutcome>>,
    ready: BinaryHeap<ReadyKey>,
    ranks: Ranks,
    /// Retry timers (key < n: task) and executor resumptions (key >= n: executor key - n).
    timers: BinaryHeap<Reverse<(Instant, u32)>>,
    running: usize,
    /// Handles of running attempts by task, to abort them after the stop grace period.
    handles: Vec<Option<JoinHandle<()>>>,
    /// The runner and the channel attempts report on when they end (see [`Report`]).
    shared: Arc<Shared>,
    done_rx: mpsc::UnboundedReceiver<AttemptEnd>,
    stop: Option<Stop>,
    stop_deadline: Option<Instant>,
    rng: Option<SmallRng>,
}

impl<'p> Coordinator<'p> {
    pub(super) fn new(
        plan: &'p ValidatedPlan,
        executors: &Executors,
        options: RunOptions,
    ) -> Result<Self, RunError> {
        if options.jobs == 0 {
            return Err(RunError::ZeroJobs);
        }
        let n_tasks = plan.len();
        let mut executor_index: HashMap<&str, u16> = HashMap::new();
        let mut executor_list: Vec<Arc<dyn Executor>> = Vec::new();
        let mut executor_names = Vec::new();
        let mut task_executor = Vec::with_capacity(n_tasks);
        let pool_index: HashMap<&str, u16> = options
            .pools
            .keys()
            .enumerate()
            .map(|(i, name)| (name.as_str(), i as u16))
            .collect();
        let pool_capacity: Vec<u32> = options.pools.values().copied().collect();
        let mut task_resources = Vec::with_capacity(n_tasks);
        for task in plan.tasks() {
            let e = match executor_index.get(task.executor.as_str()) {
                Some(&e) => e,
                None => {
                    let Some(executor) = executors.get(&task.executor) else {
                        return Err(RunError::UnknownExecutor {
                            task: task.id.clone(),
                            executor: task.executor.clone(),
                            registered: executors.names().collect::<Vec<_>>().join(", "),
                        });
                    };
                    let e = executor_list.len() as u16;
                    executor_list.push(executor.clone());
                    executor_names.push(task.executor.clone());
                    executor_index.insert(task.executor.as_str(), e);
                    e
                }
            };
            task_executor.push(e);
            let mut resources = Vec::with_capacity(task.resources.len());
            for (pool, &units) in &task.resources {
                let Some(&p) = pool_index.get(pool.as_str()) else {
                    return Err(RunError::UnknownPool {
                        task: task.id.clone(),
                        pool: pool.clone(),
                    });
                };
                if units > pool_capacity[p as usize] {
                    return Err(RunError::PoolTooSmall {
                        task: task.id.clone(),
                        pool: pool.clone(),
                        units,
                        capacity: pool_capacity[p as usize],
                    });
                }
                resources.push((p, units));
            }
            task_resources.push(resources.into_boxed_slice());
        }
        let n_executors = executor_list.len();
        let n_pools = pool_capacity.len();
        let attempts_token = options.cancel.child_token();
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        Ok(Self {
            plan,
            jobs: options.jobs,
            keep_going: options.keep_going,
            backoff: options.backoff,
            stop_grace: options.stop_grace,
            max_rate_limit_waits: options.max_rate_limit_waits,
            max_rate_limit_total: options.max_rate_limit_total,
            seed: options.seed,
            run_cancel: options.cancel,
            run_abort: options.abort,
            attempts_token,
            bus: options.bus,
            workdir: Arc::from(options.workdir.as_path()),
            executors: executor_list,
            executor_names,
            task_executor,
            paused_until: vec![None; n_executors],
            paused_waiting: vec![Vec::new(); n_executors],
            task_resources,
            pool_free: pool_capacity,
            pool_waiting: vec![Vec::new(); n_pools],
            remaining_deps: (0..n_tasks)
                .map(|i| plan.dependencies(i).len() as u32)
                .collect(),
            state: vec![State::Waiting; n_tasks],
            attempts: vec![0; n_tasks],
            rate_waits: vec![0; n_tasks],
            rate_paused: vec![Duration::ZERO; n_tasks],
            outcomes: vec![None; n_tasks],
            ready: BinaryHeap::new(),
            ranks: Ranks::new(plan),
            timers: BinaryHeap::new(),
            running: 0,
            handles: (0..n_tasks).map(|_| None).collect(),
            shared: Arc::new(Shared {
                runner: options.runner.unwrap_or_else(|| Arc::new(DirectRunner)),
                done: done_tx,
            }),
            done_rx,
            stop: None,
            stop_deadline: None,
            rng: None,
        })
    }

    fn emit(&self, event: impl FnOnce() -> Event) {
        if let Some(bus) = &self.bus {
            bus.publish(event());
        }
    }

    fn id(&self, idx: usize) -> String {
        self.plan.task(idx).id.clone()
    }

    pub(super) async fn run(mut self) -> RunOutcome {
        let started = Instant::now();
        let n_tasks = self.plan.len();
        self.emit(|| Event::RunStarted {
            tasks: n_tasks,
            jobs: self.jobs,
        });
        for idx in 0..n_tasks {
            if self.remaining_deps[idx] == 0 {
                self.make_ready(idx);
            }
        }
        let run_cancel = self.run_cancel.clone();
        let cancelled = run_cancel.cancelled();
        tokio::pin!(cancelled);
        let mut cancel_seen = false;
        let run_abort = self.run_abort.clone();
        let aborted = run_abort.cancelled();
        tokio::pin!(aborted);
        let mut abort_seen = false;
        let mut ended = Vec::with_capacity(64);
        loop {
            if self.stop.is_none() {
                self.dispatch();
            }
            let idle = self.ready.is_empty() && self.timers.is_empty();
            if self.running == 0 && (self.stop.is_some() || idle) {
                break;
            }
            let wake = match self.stop {
                Some(_) => self.stop_deadline,
                None => self.timers.peek().map(|Reverse((at, _))| *at),
            };
            tokio::select! {
                biased;
                () = &mut cancelled, if !cancel_seen => {
                    cancel_seen = true;
                    self.begin_stop(Stop::Cancelled);
                }
                () = &mut aborted, if !abort_seen => {
                    abort_seen = true;
                    self.begin_stop(Stop::Cancelled);
                    // Dropped attempts still report (see `Report`).
                    self.stop_deadline = None;
                    for handle in self.handles.iter().flatten() {
                        handle.abort();
                    }
                }
                _ = self.done_rx.recv_many(&mut ended, 256), if self.running > 0 => {
                    for end in ended.drain(..) {
                        self.on_end(end);
                    }
                }
                // An async block, so no timer is created in iterations without a deadline.
                () = async { if let Some(at) = wake { tokio::time::sleep_until(at).await } }, if wake.is_some() => {
                    if self.stop.is_some() {
                        // Attempts that ignored their token past the grace period are dropped
                        // (a process executor's group is killed on drop); they still report.
                        self.stop_deadline = None;
                        for handle in self.handles.iter().flatten() {
                            handle.abort();
                        }
                    } else {
                        self.fire_timers();
                    }
                }
            }
        }
        self.finish(started.elapsed())
    }

    fn make_ready(&mut self, idx: usize) {
        self.state[idx] = State::Ready;
        self.emit(|| Event::TaskReady { task: self.id(idx) });
        self.push_ready(idx);
    }

    fn push_ready(&mut self, idx: usize) {
        self.ready.push(ReadyKey {
            priority: self.plan.task(idx).priority,
            rank: self.ranks.rank[idx],
            idx: Reverse(idx as u32),
        });
    }

    fn dispatch(&mut self) {
        while self.running < self.jobs {
            let Some(key) = self.ready.pop() else { break };
            let idx = key.idx.0 as usize;
            let e = self.task_executor[idx] as usize;
            if self.paused_until[e].is_some() {
                self.paused_waiting[e].push(idx as u32);
                continue;
            }
            if !self.task_resources[idx].is_empty() && !self.take_resources(idx) {
                continue;
            }
            self.start(idx);
        }
    }

    /// Takes the task's resources, or parks it on the first pool that lacks units.
    fn take_resources(&mut self, idx: usize) -> bool {
        let resources = &self.task_resources[idx];
        if let Some(&(p, _)) = resources
            .iter()
            .find(|&&(p, units)| self.pool_free[p as usize] < units)
        {
            self.pool_waiting[p as usize].push(idx as u32);
            return false;
        }
        for &(p, units) in resources.iter() {
            self.pool_free[p as usize] -= units;
        }
        true
    }

    fn release_resources(&mut self, idx: usize) {
        for i in 0..self.task_resources[idx].len() {
            let (p, units) = self.task_resources[idx][i];
            self.pool_free[p as usize] += units;
            for parked in std::mem::take(&mut self.pool_waiting[p as usize]) {
                self.push_ready(parked as usize);
            }
        }
    }

    fn start(&mut self, idx: usize) {
        self.state[idx] = State::Running;
        self.running += 1;
        let attempt = self.attempts[idx] + 1;
        let task = self.plan.task(idx).clone();
        self.emit(|| Event::TaskStarted {
            task: task.id.clone(),
            attempt,
        });
        let timeout = task.timeout;
        // A timeout cancels only this attempt, so it needs its own token; otherwise the run's
        // token serves (one clone, no new tree node).
        let (cancel, timeout_cancel) = match timeout {
            Some(_) => {
                let own = self.attempts_token.child_token();
                (own.clone(), Some(own))
            }
            None => (self.attempts_token.clone(), None),
        };
        let gate = self.bus.as_ref().map(|bus| {
            Arc::new(OutputGate {
                bus: bus.clone(),
                task: task.id.clone(),
                attempt,
                dropped: AtomicU64::new(0),
            })
        });
        let progress = gate.clone().map_or_else(ProgressSink::discard, |gate| {
            ProgressSink::new(move |progress| gate.publish(progress))
        });
        let ctx = AttemptCtx {
            task,
            task_idx: idx,
            attempt,
            cancel,
            progress,
            executor: self.executors[self.task_executor[idx] as usize].clone(),
            workdir: self.workdir.clone(),
        };
        let shared = self.shared.clone();
        let grace = self.stop_grace;
        let task_idx = idx as u32;
        let handle = tokio::spawn(async move {
            let mut report = Report {
                done: &shared.done,
                idx: task_idx,
                end: None,
            };
            let started = Instant::now();
            let attempt = AssertUnwindSafe(shared.runner.run_attempt(ctx)).catch_unwind();
            let (result, timed_out) = match (timeout, timeout_cancel) {
                (Some(limit), Some(cancel)) => {
                    let mut attempt = std::pin::pin!(attempt);
                    match tokio::time::timeout(limit, &mut attempt).await {
                        Ok(result) => (result, false),
                        Err(_) => {
                            cancel.cancel();
                            match tokio::time::timeout(grace, attempt).await {
                                Ok(result) => (result, true),
                                Err(_) => {
                                    let error = ExecError::fatal(format!(
                                        "attempt did not stop within {grace:?} of its timeout \
                                         of {limit:?}"
                                    ));
                                    (Err(Box::new(error) as Box<dyn std::any::Any + Send>), true)
                                }
                            }
                        }
                    }
                }
                _ => (attempt.await, false),
            };
            let (result, unnamed_error) = match result {
                Ok(result) => (result, false),
                Err(payload) => (Err(unnamed_error(payload.as_ref())), true),
            };
            // Shed output is reported before the attempt's end.
            if let Some(gate) = &gate {
                gate.flush();
            }
            report.end = Some(AttemptEnd {
                idx: task_idx,
                unnamed_error,
                result: Some(result),
                timed_out,
                elapsed: started.elapsed(),
            });
        });
        self.handles[idx] = Some(handle);
    }

    fn on_end(&mut self, end: AttemptEnd) {
        self.running -= 1;
        let idx = end.idx as usize;
        // Dropping the handle of a finished task only detaches it.
        self.handles[idx] = None;
        self.release_resources(idx);
        let Some(mut result) = end.result else {
            // Aborted after the stop grace: swept as cancelled at the end.
            return;
        };
        if end.unnamed_error {
            // Made in the attempt's task without the task's name (keeps the hot path lean).
            if let Err(error) = &mut result {
                *error = ExecError::new(
                    error.class(),
                    format!("task `{}`: {}", self.plan.task(idx).id, error.message()),
                )
                .with_output_tail(error.output_tail());
            }
        }
        if self.stop.is_some() {
            self.attempts[idx] += 1;
            let outcome = match result {
                Ok(output) => self.succeed(idx, output, end.elapsed),
                Err(_) => TaskOutcome::Cancelled {
                    attempts: self.attempts[idx],
                },
            };
            self.settle(idx, outcome);
            return;
        }
        let error = match result {
            Ok(output) => {
                self.attempts[idx] += 1;
                let outcome = self.succeed(idx, output, end.elapsed);
                self.settle(idx, outcome);
                if self.ranks.observe(self.plan, idx, end.elapsed) {
                    let parked: Vec<u32> = self.ready.drain().map(|k| k.idx.0).collect();
                    for parked in parked {
                        self.push_ready(parked as usize);
                    }
                }
                for &dependent in self.plan.dependents(idx) {
                    let d = dependent as usize;
                    self.remaining_deps[d] -= 1;
                    if self.remaining_deps[d] == 0 && self.state[d] == State::Waiting {
                        self.make_ready(d);
                    }
                }
                return;
            }
            Err(error) => error,
        };
        let class = if end.timed_out {
            ErrorClass::Retryable
        } else {
            error.class()
        };
        let error = match class {
            ErrorClass::RateLimited { retry_after } => {
                match self.rate_limit_pause(idx, retry_after) {
                    Ok(pause) => {
                        self.pause(idx, pause, &error);
                        return;
                    }
                    Err(message) => {
                        ExecError::new(ErrorClass::Fatal, format!("{error}; {message}"))
                            .with_output_tail(error.output_tail())
                    }
                }
            }
            _ => error,
        };
        match class {
            ErrorClass::Retryable if self.attempts[idx] < self.plan.task(idx).retries => {
                self.attempts[idx] += 1;
                let seed = self.seed;
                let rng = self.rng.get_or_insert_with(|| match seed {
                    Some(seed) => SmallRng::seed_from_u64(seed),
                    None => SmallRng::from_os_rng(),
                });
                let delay = self.backoff.delay(self.attempts[idx], rng);
                self.state[idx] = State::Backoff;
                self.timers
                    .push(Reverse((Instant::now() + delay, idx as u32)));
                self.emit(|| Event::TaskRetrying {
                    task: self.id(idx),
                    attempt: self.attempts[idx],
                    delay_ms: millis(delay),
                    error: error.to_string(),
                });
            }
            _ => {
                self.attempts[idx] += 1;
                self.fail(idx, error, end.timed_out);
            }
        }
    }

    /// The pause a rate-limited attempt of task `idx` gets: the delay asked for, cut to
    /// [`MAX_RATE_LIMIT_PAUSE`] and to the task's timeout; or why the task's rate-limit
    /// budget is spent (that message starts the task's failure).
    fn rate_limit_pause(&self, idx: usize, retry_after: Duration) -> Result<Duration, String> {
        let mut pause = retry_after.min(MAX_RATE_LIMIT_PAUSE);
        if let Some(timeout) = self.plan.task(idx).timeout {
            pause = pause.min(timeout);
        }
        let waits = self.rate_waits[idx];
        let paused = self.rate_paused[idx];
        let spent = |why: String| {
            format!(
                "rate limited {} (paused {:?} in total); {why}",
                times(waits + 1),
                round_ms(paused)
            )
        };
        if waits >= self.max_rate_limit_waits {
            return Err(spent(format!(
                "gave up after the limit of {} pauses",
                self.max_rate_limit_waits
            )));
        }
        if paused + pause > self.max_rate_limit_total {
            return Err(spent(format!(
                "a pause of {:?} more would pass the limit of {:?}",
                round_ms(pause),
                round_ms(self.max_rate_limit_total)
            )));
        }
        Ok(pause)
    }

    /// Pauses task `idx`'s executor for `pause` and parks the task on it.
    fn pause(&mut self, idx: usize, pause: Duration, error: &ExecError) {
        self.rate_waits[idx] += 1;
        self.rate_paused[idx] += pause;
        let e = self.task_executor[idx] as usize;
        let until = Instant::now() + pause;
        if self.paused_until[e].is_none_or(|at| at < until) {
            self.paused_until[e] = Some(until);
            self.timers
                .push(Reverse((until, (self.plan.len() + e) as u32)));
        }
        self.emit(|| Event::ExecutorPaused {
            executor: self.executor_names[e].clone(),
            task: self.id(idx),
            retry_after_ms: millis(pause),
            error: error.to_string(),
        });
        self.state[idx] = State::Ready;
        self.paused_waiting[e].push(idx as u32);
    }

    fn succeed(&self, idx: usize, output: ExecOutput, duration: Duration) -> TaskOutcome {
        self.emit(|| Event::TaskSucceeded {
            task: self.id(idx),
            attempts: self.attempts[idx],
            duration_ms: millis(duration),
        });
        TaskOutcome::Succeeded {
            attempts: self.attempts[idx],
            duration,
            output,
        }
    }

    fn settle(&mut self, idx: usize, outcome: TaskOutcome) {
        if let TaskOutcome::Cancelled { .. } = outcome {
            self.emit(|| Event::TaskCancelled { task: self.id(idx) });
        }
        self.state[idx] = State::Done;
        self.outcomes[idx] = Some(outcome);
    }

    /// A final failure: record it, skip every descendant, and stop the run unless keep-going.
    fn fail(&mut self, idx: usize, error: ExecError, timed_out: bool) {
        let attempts = self.attempts[idx];
        self.emit(|| Event::TaskFailed {
            task: self.id(idx),
            attempts,
            error: error.to_string(),
            timed_out,
        });
        let outcome = match (timed_out, self.plan.task(idx).timeout) {
            (true, Some(timeout)) => TaskOutcome::TimedOut { attempts, timeout },
            _ => TaskOutcome::Failed { error, attempts },
        };
        self.settle(idx, outcome);
        let mut stack: Vec<u32> = self.plan.dependents(idx).to_vec();
        while let Some(d) = stack.pop() {
            let d = d as usize;
            if self.state[d] != State::Waiting {
                continue;
            }
            let reason = SkipReason::DependencyFailed {
                dependency: self.id(idx),
            };
            self.skip(d, reason);
            stack.extend_from_slice(self.plan.dependents(d));
        }
        if !self.keep_going {
            self.begin_stop(Stop::FailFast { failed: idx as u32 });
        }
    }

    fn skip(&mut self, idx: usize, reason: SkipReason) {
        self.emit(|| Event::TaskSkipped {
            task: self.id(idx),
            reason: reason.to_string(),
        });
        self.state[idx] = State::Done;
        self.outcomes[idx] = Some(TaskOutcome::Skipped { reason });
    }

    fn begin_stop(&mut self, stop: Stop) {
        if self.stop.is_some() {
            return;
        }
        self.stop = Some(stop);
        self.attempts_token.cancel();
        self.stop_deadline = Some(Instant::now() + self.stop_grace);
    }

    fn fire_timers(&mut self) {
        let now = Instant::now();
        let n_tasks = self.plan.len() as u32;
        while let Some(&Reverse((at, key))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            if key < n_tasks {
                self.state[key as usize] = State::Ready;
                self.push_ready(key as usize);
                continue;
            }
            let e = (key - n_tasks) as usize;
            if self.paused_until[e].is_some_and(|until| until <= now) {
                self.paused_until[e] = None;
                for parked in std::mem::take(&mut self.paused_waiting[e]) {
                    self.push_ready(parked as usize);
                }
            }
        }
    }

    /// Gives every task without an outcome one, publishes `run_finished`, and builds the
    /// outcome.
    fn finish(mut self, duration: Duration) -> RunOutcome {
        for idx in 0..self.plan.len() {
            if self.outcomes[idx].is_some() {
                continue;
            }
            match self.state[idx] {
                State::Running | State::Backoff => {
                    let attempts =
                        self.attempts[idx] + u32::from(self.state[idx] == State::Running);
                    self.settle(idx, TaskOutcome::Cancelled { attempts });
                }
                _ => {
                    let reason = match self.stop {
                        Some(Stop::FailFast { failed }) => SkipReason::RunStopped {
                            failed: self.id(failed as usize),
                        },
                        Some(Stop::Cancelled) | None => SkipReason::RunCancelled,
                    };
                    self.skip(idx, reason);
                }
            }
        }
        let outcome = RunOutcome {
            tasks: self.plan.tasks().to_vec(),
            outcomes: self
                .outcomes
                .into_iter()
                .map(|o| o.expect("every task got an outcome above"))
                .collect(),
            duration,
        };
        if let Some(bus) = &self.bus {
            let counts = outcome.counts();
            bus.publish(Event::RunFinished {
                succeeded: counts.succeeded,
                failed: counts.failed,
                skipped: counts.skipped,
                cancelled: counts.cancelled,
                duration_ms: millis(duration),
            });
        }
        outcome
    }
}

/// Publishes one attempt's output reports, shedding them while the bus is more than half
/// full: a flood of output then never evicts lifecycle events, which the journal and every
/// display rely on. What was shed is counted and published as one `task_output_dropped`
/// before the next report that gets through, and when the attempt ends.
struct OutputGate {
    bus: EventBus,
    task: String,
    attempt: u32,
    dropped: AtomicU64,
}

impl OutputGate {
    fn publish(&self, progress: Progress) {
        if self.bus.backlog() * 2 >= self.bus.capacity() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.flush();
        let task = self.task.clone();
        let attempt = self.attempt;
        self.bus.publish(match progress {
            Progress::Log { stream, line } => Event::TaskLog {
                task,
                attempt,
                stream,
                line,
            },
            Progress::Custom(data) => Event::TaskProgress {
                task,
                attempt,
                data,
            },
        });
    }

    /// Publishes the count of reports shed since the last one that got through, if any.
    fn flush(&self) {
        let lines = self.dropped.swap(0, Ordering::Relaxed);
        if lines > 0 {
            self.bus.publish(Event::TaskOutputDropped {
                task: self.task.clone(),
                attempt: self.attempt,
                lines,
            });
        }
    }
}

/// The error for a panic payload; an [`ExecError`] payload is the error of an attempt that
/// did not stop after its timeout.
fn unnamed_error(payload: &(dyn std::any::Any + Send)) -> ExecError {
    if let Some(error) = payload.downcast_ref::<ExecError>() {
        return error.clone();
    }
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_owned());
    ExecError::fatal(format!("executor panicked: {message}"))
}

/// "1 time", "3 times".
fn times(n: u32) -> String {
    if n == 1 {
        "1 time".to_owned()
    } else {
        format!("{n} times")
    }
}

/// The duration cut to whole milliseconds, for messages.
fn round_ms(duration: Duration) -> Duration {
    Duration::from_millis(millis(duration))
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
