//! [`ProcessExecutor`]: runs a command line per attempt, in its own process group, with
//! bounded output capture and a SIGTERM-then-SIGKILL shutdown of the whole group.

use std::fmt;
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use parking_lot::Mutex;
use rustix::process::{Pid, Signal, kill_process_group};

use super::argv::{self, Placeholders, TemplateError};
use super::output::{self, Captured};
use super::{ErrorClass, ExecError, ExecOutput, Executor, Job};
use crate::event::LogStream;

/// Exit code that marks an attempt as retryable (`EX_TEMPFAIL` from sysexits.h).
pub const EXIT_RETRYABLE: i32 = 75;
/// Exit code that marks an attempt as rate limited; the delay is the last
/// `forge:retry-after SECONDS` line printed, else [`ProcessExecutor::rate_limit_delay`].
pub const EXIT_RATE_LIMITED: i32 = 76;

/// Inherited variables a child never gets, because they can point at the repository (or at
/// the directory forge was started in) rather than at the task's view, besides git's
/// repository variables ([`forge_staging::GIT_LOCAL_ENV_VARS`]). `PWD` is not listed: it is
/// set to the view.
pub(crate) const REPOSITORY_ENV: &[&str] = &[
    "OLDPWD",
    // git's repository variables come from forge_staging::GIT_LOCAL_ENV_VARS.
    // npm, yarn and pnpm scripts: where the package manager was started.
    "INIT_CWD",
    "PROJECT_CWD",
    "npm_config_local_prefix",
    "npm_package_json",
    "PNPM_SCRIPT_SRC_DIR",
    // `cargo run` / `cargo test`: the manifest of whatever started forge.
    "CARGO_MANIFEST_DIR",
];

/// Runs each attempt as a child process built from an argv template.
///
/// Placeholders `{prompt}`, `{task}`, `{workdir}` and `{attempt}` are replaced inside each
/// argv word; a value is never re-split or seen by a shell. The child runs in `job.workdir`
/// (joining the view's namespace first when [`Job::namespace`] is set, so `{workdir}` and
/// `FORGE_WORKDIR` are [`Job::process_workdir`]), with stdin closed, in a new process
/// group, with `FORGE_TASK`, `FORGE_ATTEMPT` and `FORGE_WORKDIR` set.
///
/// **Environment.** The child inherits forge's environment, corrected so that nothing in it
/// points at the repository instead of the view: `PWD` is the child's working directory
/// (the view), and `OLDPWD`, git's repository variables (the ones `git rev-parse
/// --local-env-vars` lists: `GIT_DIR`, `GIT_WORK_TREE`, `GIT_INDEX_FILE`,
/// `GIT_OBJECT_DIRECTORY`, `GIT_COMMON_DIR`, ...) and the package managers' record of where
/// they were started (`INIT_CWD`, `PROJECT_CWD`, `npm_config_local_prefix`,
/// `npm_package_json`, `PNPM_SCRIPT_SRC_DIR`) and `CARGO_MANIFEST_DIR` are removed.
/// `GIT_CEILING_DIRECTORIES` is kept: it can only stop git's search for
/// a repository, never lead it to one. Variables set with [`env`](Self::env) are applied
/// last and win.
///
/// **Shutdown.** On cancellation or timeout the whole group (grandchildren included) gets
/// SIGTERM, then SIGKILL after [`grace`](Self::grace) (default 5 s). When the child exits by
/// itself, whatever it left running in its group is shut down the same way, so nothing
/// outlives the attempt. If the attempt's future is dropped, the group gets SIGKILL at once.
///
/// **Output.** stdout and stderr are read line by line into `task_log` events; a line longer
/// than [`max_line_len`](Self::max_line_len) (default 8 KiB) is cut, and only the last
/// [`tail_bytes`](Self::tail_bytes) (default 64 KiB) are kept for the outcome. A line
/// `forge:progress {json}` becomes a `task_progress` event.
///
/// **Exit status.**
///
/// | status | outcome |
/// |---|---|
/// | 0 | success |
/// | 75 (`EX_TEMPFAIL`) | retryable |
/// | 76 | rate limited: pause this executor for the last valid `forge:retry-after SECONDS` printed (cut to 24 h and the task's timeout; a malformed value counts as none), else 60 s; the run's rate-limit budget bounds the pauses |
/// | 126, 127 (cannot execute, not found), or the command cannot be started | fatal |
/// | codes listed with [`fatal_exit_codes`](Self::fatal_exit_codes) | fatal |
/// | any other non-zero code, or killed by a signal it did not get from us | retryable (so a task's `retries` apply) |
///
/// ```
/// use forge_core::ProcessExecutor;
///
/// let executor = ProcessExecutor::from_template("droid exec --auto low '{prompt}'")?;
/// assert_eq!(executor.argv(), ["droid", "exec", "--auto", "low", "{prompt}"]);
/// # Ok::<(), forge_core::TemplateError>(())
/// ```
#[derive(Clone)]
pub struct ProcessExecutor {
    argv: Vec<String>,
    grace: Duration,
    max_line_len: usize,
    tail_bytes: usize,
    rate_limit_delay: Duration,
    fatal_exit_codes: Vec<i32>,
    env: Vec<(String, String)>,
}

impl fmt::Debug for ProcessExecutor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcessExecutor")
            .field("argv", &self.argv)
            .field("grace", &self.grace)
            .finish_non_exhaustive()
    }
}

impl ProcessExecutor {
    /// An executor for this argv template (first word: the program).
    ///
    /// # Errors
    ///
    /// [`TemplateError::Empty`] when `argv` is empty.
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(argv: I) -> Result<Self, TemplateError> {
        let argv: Vec<String> = argv.into_iter().map(Into::into).collect();
        if argv.is_empty() {
            return Err(TemplateError::Empty);
        }
        Ok(Self {
            argv,
            grace: Duration::from_secs(5),
            max_line_len: 8 * 1024,
            tail_bytes: 64 * 1024,
            rate_limit_delay: Duration::from_secs(60),
            fatal_exit_codes: Vec::new(),
            env: Vec::new(),
        })
    }

    /// An executor from a command line, split into words like a shell does (quotes
    /// respected, nothing expanded), e.g. `claude -p '{prompt}'`.
    ///
    /// # Errors
    ///
    /// A [`TemplateError`] for an empty template, an unclosed quote or a trailing backslash.
    pub fn from_template(template: &str) -> Result<Self, TemplateError> {
        Self::new(argv::split_words(template)?)
    }

    /// The argv template.
    pub fn argv(&self) -> &[String] {
        &self.argv
    }

    /// Time between SIGTERM and SIGKILL (default 5 s).
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Longest line reported, in bytes (default 8 KiB); longer lines are cut.
    pub fn max_line_len(mut self, bytes: usize) -> Self {
        self.max_line_len = bytes.max(1);
        self
    }

    /// Bytes of output retained for the outcome (default 64 KiB).
    pub fn tail_bytes(mut self, bytes: usize) -> Self {
        self.tail_bytes = bytes.max(1);
        self
    }

    /// Pause after exit code 76 when the child printed no `forge:retry-after` (default 60 s).
    pub fn rate_limit_delay(mut self, delay: Duration) -> Self {
        self.rate_limit_delay = delay;
        self
    }

    /// Exit codes that are fatal (never retried) besides 126 and 127.
    pub fn fatal_exit_codes(mut self, codes: impl IntoIterator<Item = i32>) -> Self {
        self.fatal_exit_codes = codes.into_iter().collect();
        self
    }

    /// Sets an environment variable for the child.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// The argv of one attempt, placeholders substituted.
    pub fn render_argv(&self, job: &Job) -> Vec<String> {
        let workdir = job.process_workdir().to_string_lossy();
        let values = Placeholders {
            prompt: &job.task.prompt,
            task: &job.task.id,
            workdir: &workdir,
            attempt: job.attempt,
        };
        self.argv
            .iter()
            .map(|word| argv::substitute(word, &values))
            .collect()
    }

    async fn run(&self, job: Job) -> Result<ExecOutput, ExecError> {
        let argv = self.render_argv(&job);
        let mut command = tokio::process::Command::new(&argv[0]);
        job.configure_command(command.as_std_mut());
        command
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env("FORGE_TASK", &job.task.id)
            .env("FORGE_ATTEMPT", job.attempt.to_string())
            .env("FORGE_WORKDIR", job.process_workdir())
            .env("PWD", job.process_workdir())
            .process_group(0);
        for key in REPOSITORY_ENV
            .iter()
            .chain(forge_staging::GIT_LOCAL_ENV_VARS)
        {
            command.env_remove(key);
        }
        for (key, value) in &self.env {
            command.env(key, value);
        }
        let task_id = &job.task.id;
        let mut child = command.spawn().map_err(|err| {
            ExecError::fatal(format!(
                "task `{task_id}`: cannot start `{}` in {}: {err}",
                argv[0],
                job.process_workdir().display()
            ))
        })?;
        let group = GroupGuard::new(child.id());
        let captured = Arc::new(Mutex::new(Captured::new(self.tail_bytes)));
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let readers = async {
            tokio::join!(
                output::pump(
                    stdout,
                    LogStream::Stdout,
                    self.max_line_len,
                    &job.progress,
                    &captured
                ),
                output::pump(
                    stderr,
                    LogStream::Stderr,
                    self.max_line_len,
                    &job.progress,
                    &captured
                ),
            );
        };
        tokio::pin!(readers);
        let mut readers_done = false;

        // Wait for the child (reading its output meanwhile) or for cancellation.
        let status = loop {
            tokio::select! {
                status = child.wait() => break Some(status),
                () = &mut readers, if !readers_done => readers_done = true,
                () = job.cancel.cancelled() => break None,
            }
        };
        let status = match status {
            Some(status) => status,
            None => {
                group
                    .terminate(self.grace, &mut child, &mut readers, &mut readers_done)
                    .await;
                let tail = captured.lock().tail();
                return Err(
                    ExecError::fatal(format!("task `{task_id}`: cancelled")).with_output_tail(tail)
                );
            }
        };
        // The child is gone; shut down anything it left in its group, then drain the pipes.
        group
            .terminate(self.grace, &mut child, &mut readers, &mut readers_done)
            .await;
        let status = status.map_err(|err| {
            ExecError::fatal(format!(
                "task `{task_id}`: cannot wait for `{}`: {err}",
                argv[0]
            ))
        })?;
        let (tail, retry_after) = {
            let captured = captured.lock();
            (captured.tail(), captured.retry_after)
        };
        self.outcome(task_id, &argv[0], status, tail, retry_after)
    }

    fn outcome(
        &self,
        task_id: &str,
        program: &str,
        status: ExitStatus,
        tail: String,
        retry_after: Option<Duration>,
    ) -> Result<ExecOutput, ExecError> {
        if let Some(code) = status.code() {
            if code == 0 {
                return Ok(ExecOutput {
                    exit_code: Some(0),
                    output_tail: tail,
                    data: None,
                });
            }
            let message = format!("task `{task_id}`: `{program}` exited with status {code}");
            let class = match code {
                EXIT_RATE_LIMITED => ErrorClass::RateLimited {
                    retry_after: retry_after.unwrap_or(self.rate_limit_delay),
                },
                126 | 127 => ErrorClass::Fatal,
                code if self.fatal_exit_codes.contains(&code) => ErrorClass::Fatal,
                _ => ErrorClass::Retryable,
            };
            return Err(ExecError::new(class, message).with_output_tail(tail));
        }
        let signal = status.signal().unwrap_or(0);
        Err(ExecError::retryable(format!(
            "task `{task_id}`: `{program}` was killed by signal {signal}{}",
            signal_name(signal)
                .map(|n| format!(" ({n})"))
                .unwrap_or_default()
        ))
        .with_output_tail(tail))
    }
}

impl Executor for ProcessExecutor {
    fn execute(&self, job: Job) -> BoxFuture<'_, Result<ExecOutput, ExecError>> {
        Box::pin(self.run(job))
    }
}

fn signal_name(signal: i32) -> Option<&'static str> {
    Some(match signal {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        _ => return None,
    })
}

/// The child's process group; SIGKILLs it when dropped before [`GroupGuard::terminate`]
/// finished, so a dropped attempt leaves nothing running.
struct GroupGuard {
    pgid: Option<Pid>,
}

impl GroupGuard {
    fn new(child_pid: Option<u32>) -> Self {
        let pgid = child_pid.and_then(|pid| Pid::from_raw(i32::try_from(pid).ok()?));
        Self { pgid }
    }

    fn signal(&self, signal: Signal) -> bool {
        // ESRCH means the group is empty: nothing left to stop.
        self.pgid
            .is_some_and(|pgid| kill_process_group(pgid, signal).is_ok())
    }

    /// SIGTERM to the group, wait for the leader and the output pipes up to `grace`, then
    /// SIGKILL and wait again (the pipes close once every process holding them is gone).
    async fn terminate(
        &self,
        grace: Duration,
        child: &mut tokio::process::Child,
        readers: &mut std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
        readers_done: &mut bool,
    ) {
        // When the group is already empty this does nothing and the pipes close at once;
        // the wait is bounded anyway in case a process escaped the group holding them.
        self.signal(Signal::TERM);
        let wait_all = async {
            let _ = child.wait().await;
            if !*readers_done {
                readers.as_mut().await;
                *readers_done = true;
            }
        };
        let finished = tokio::time::timeout(grace, wait_all).await.is_ok();
        if !finished {
            self.signal(Signal::KILL);
            let _ = child.wait().await;
            if !*readers_done {
                // A process that left the group (setsid) may still hold the pipes: give up on
                // them after a moment rather than hang.
                let _ = tokio::time::timeout(Duration::from_secs(1), readers.as_mut()).await;
                *readers_done = true;
            }
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        // Whatever state the attempt ended in, nothing of the group may outlive it.
        self.signal(Signal::KILL);
    }
}
