//! What `forge run` and `forge resume` share: the settings a run directory keeps so that
//! `resume` runs the same way, the executors built from them, and the driver (runtime,
//! Ctrl-C, SIGTERM and SIGHUP, live display, summary, exit status).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use forge_core::staging::{Backend, OverlayMode};
use forge_core::{
    ConflictPolicy, EngineError, EngineOptions, EngineOutcome, EventBus, Executor, Executors, Plan,
    ProcessExecutor, RunOptions, ScopePolicy,
};
use serde::{Deserialize, Serialize};
use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::display::{self, Mode};
use crate::land::Landing;

const SETTINGS_FILE: &str = "forge-cli.json";

/// Set by the fault-injection tests: the process kills itself right after this journal step.
const FAULT_ENV: &str = "FORGE_FAULT_KILL_AT_STEP";

/// How a run was started, kept in its run directory for `forge resume`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Settings {
    /// The repository.
    pub(crate) repo: PathBuf,
    /// The executor template.
    pub(crate) executor: String,
    /// `--executor-for NAME=CMD`: templates for tasks naming an executor.
    #[serde(default)]
    pub(crate) executors_for: Vec<(String, String)>,
    /// The conflict resolver's template, if any.
    pub(crate) resolver: Option<String>,
    /// `--jobs`.
    pub(crate) jobs: Option<usize>,
    /// Keep going after a failure (the default of `forge run`); `false` with `--fail-fast`.
    pub(crate) keep_going: bool,
    /// `--pool NAME=N`.
    pub(crate) pools: Vec<(String, u32)>,
    /// `--staging`.
    pub(crate) staging: String,
    /// `--conflicts`.
    pub(crate) conflicts: String,
    /// `--scope`.
    pub(crate) scope: String,
    /// `--land`, `--name`, `--author`.
    #[serde(default = "Landing::legacy")]
    pub(crate) landing: Landing,
}

impl Settings {
    pub(crate) fn save(&self, run_dir: &Path) -> Result<(), String> {
        std::fs::create_dir_all(run_dir)
            .map_err(|e| format!("cannot create run directory {}: {e}", run_dir.display()))?;
        let path = run_dir.join(SETTINGS_FILE);
        let json = serde_json::to_string_pretty(self).expect("settings serialize");
        std::fs::write(&path, json).map_err(|e| format!("cannot write {}: {e}", path.display()))
    }

    pub(crate) fn load(run_dir: &Path) -> Result<Settings, String> {
        let path = run_dir.join(SETTINGS_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            format!(
                "cannot read {} (was this run started by `forge run`?): {e}",
                path.display()
            )
        })?;
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// The executors: the `--executor` template for tasks without an `executor` field (or
    /// with `executor = "default"`), an `--executor-for NAME=CMD` template for every other
    /// name the plan uses, and the resolver.
    ///
    /// # Errors
    ///
    /// A bad template; an `--executor-for` name no task uses; a task naming an executor
    /// that no `--executor-for` gives (a typo such as `cluade` must not quietly fall back to
    /// `--executor`), listing the names that are known.
    pub(crate) fn executors(&self, plan: &Plan) -> Result<Executors, String> {
        let executor: Arc<dyn Executor> = Arc::new(
            ProcessExecutor::from_template(&self.executor)
                .map_err(|e| format!("--executor: {e}"))?,
        );
        let mut used: Vec<&str> = plan.tasks.iter().map(|t| t.executor.as_str()).collect();
        used.sort_unstable();
        used.dedup();
        let mut executors = Executors::default();
        executors.insert(forge_core::DEFAULT_EXECUTOR, executor);
        for (name, template) in &self.executors_for {
            if !used.contains(&name.as_str()) {
                return Err(format!(
                    "--executor-for {name}=...: no task of the plan uses executor `{name}` (it uses: {})",
                    used.join(", ")
                ));
            }
            let named = ProcessExecutor::from_template(template)
                .map_err(|e| format!("--executor-for {name}=...: {e}"))?;
            executors.insert(name.clone(), Arc::new(named));
        }
        let mut known: Vec<&str> = std::iter::once(forge_core::DEFAULT_EXECUTOR)
            .chain(self.executors_for.iter().map(|(name, _)| name.as_str()))
            .collect();
        known.sort_unstable();
        known.dedup();
        if let Some(task) = plan
            .tasks
            .iter()
            .find(|t| !known.contains(&t.executor.as_str()))
        {
            return Err(format!(
                "task `{}` uses executor `{}`, which is not known (known: {}); give \
                 --executor-for {}=CMD, or drop the task's `executor` field to use --executor",
                task.id,
                task.executor,
                known.join(", "),
                task.executor
            ));
        }
        if let Some(resolver) = &self.resolver {
            let resolver =
                ProcessExecutor::from_template(resolver).map_err(|e| format!("--resolver: {e}"))?;
            executors.insert(RESOLVER, Arc::new(resolver));
        }
        Ok(executors)
    }

    /// The engine options these settings describe.
    pub(crate) fn engine_options(&self, run_dir: &Path) -> Result<EngineOptions, String> {
        let (backend, overlay_mode) = parse_staging(&self.staging)?;
        let mut conflicts = parse_conflicts(&self.conflicts)?;
        if self.resolver.is_some() {
            conflicts = ConflictPolicy::Resolve {
                executor: RESOLVER.to_owned(),
            };
        }
        let mut run = RunOptions::default().keep_going(self.keep_going);
        if let Some(jobs) = self.jobs {
            run = run.jobs(jobs);
        }
        for (name, units) in &self.pools {
            run = run.pool(name.clone(), *units);
        }
        let mut options = EngineOptions::new(&self.repo, run_dir)
            .backend(backend)
            .conflicts(conflicts)
            .scope(parse_scope(&self.scope)?)
            .publish(self.landing.publishes())
            .run(run);
        options.staging.overlay_mode = overlay_mode;
        // git's default excludes file (used when core.excludesFile is unset) is found
        // through the environment, which the staging library does not read.
        options.staging.git_excludes_file = std::env::var_os("XDG_CONFIG_HOME")
            .filter(|d| !d.is_empty())
            .map(|d| Path::new(&d).join("git/ignore"))
            .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".config/git/ignore")));
        if let Some(step) = std::env::var(FAULT_ENV)
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
        {
            options = options.journal_hook(Arc::new(move |at| {
                if at == step {
                    // A crash, as close to `kill -9` as a process can do to itself: no
                    // destructors, no flushing, agents left to die on their own.
                    std::process::abort();
                }
            }));
        }
        Ok(options)
    }
}

const RESOLVER: &str = "forge-resolver";

/// `--staging`: a backend (`auto` for none) and how overlay mounts; `overlay-userns` forces
/// overlay in a user namespace (what users without root get), also as root.
pub(crate) fn parse_staging(text: &str) -> Result<(Option<Backend>, OverlayMode), String> {
    match text {
        "auto" => Ok((None, OverlayMode::Auto)),
        "overlay-userns" => Ok((Some(Backend::Overlay), OverlayMode::UserNamespace)),
        other => other
            .parse::<Backend>()
            .map(|b| (Some(b), OverlayMode::Auto))
            .map_err(|e| {
                format!(
                    "--staging `{other}`: {e} (auto, overlay, overlay-userns, reflink, copy or worktree)"
                )
            }),
    }
}

pub(crate) fn parse_conflicts(text: &str) -> Result<ConflictPolicy, String> {
    match text.split_once('=') {
        None if text == "fail" => Ok(ConflictPolicy::Fail),
        None if text == "retry" => Ok(ConflictPolicy::Retry { max: 1 }),
        Some(("retry", n)) => n
            .parse()
            .map(|max| ConflictPolicy::Retry { max })
            .map_err(|_| format!("--conflicts `{text}`: `{n}` is not a number")),
        _ => Err(format!(
            "--conflicts `{text}`: expected fail, retry or retry=N (or give --resolver)"
        )),
    }
}

pub(crate) fn parse_scope(text: &str) -> Result<ScopePolicy, String> {
    match text {
        "reject" => Ok(ScopePolicy::Reject),
        "allow" => Ok(ScopePolicy::Allow),
        "warn" => Ok(ScopePolicy::Warn),
        other => Err(format!("--scope `{other}`: expected reject, allow or warn")),
    }
}

/// Runs `start` (a run or a resume) on a fresh runtime with the live display, signal handling
/// (see [`stop_on_signals`]) and the summary; exit status 0 when every task succeeded, 1 when
/// some did not, 2 when the run could not start, 128 + the signal's number when SIGINT (130),
/// SIGTERM (143) or SIGHUP (129) stopped it, and 130 after a second signal.
pub(crate) fn drive<F, Fut>(
    command: &str,
    mode: Mode,
    run_dir: &Path,
    mut options: EngineOptions,
    landing: Option<(&Landing, &Path)>,
    start: F,
) -> ExitCode
where
    F: FnOnce(EngineOptions) -> Fut,
    Fut: Future<Output = Result<EngineOutcome, EngineError>>,
{
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("forge {command}: cannot start the runtime: {err}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(async move {
        let bus = EventBus::new(1 << 16);
        let subscription = bus.subscribe();
        let cancel = options.run.cancel.clone();
        let abort = options.run.abort.clone();
        options.run.bus = Some(bus);
        let caught = Arc::new(AtomicI32::new(0));
        match Signals::new() {
            Ok(signals) => {
                let run_dir = run_dir.to_path_buf();
                let command = command.to_owned();
                let caught = caught.clone();
                tokio::spawn(async move {
                    let cancel = move || cancel.cancel();
                    let abort = move || abort.cancel();
                    stop_on_signals(signals, &command, &run_dir, cancel, abort, &caught).await;
                });
            }
            Err(err) => say(&format!(
                "forge {command}: cannot watch for signals ({err}); Ctrl-C will stop forge \
                 without cleaning up"
            )),
        }
        let display = tokio::spawn(display::show(subscription, mode));
        let outcome = start(options).await;
        // The engine dropped its bus handles; the display drains what is left and ends.
        let _ = display.await;
        let signal = caught.load(Ordering::SeqCst);
        match outcome {
            Ok(outcome) => {
                display::summarize(&outcome, run_dir, mode);
                // An interrupted run gets its branch when `forge resume` finishes it; one
                // whose every task finished before the signal took effect gets it now.
                if (signal == 0 || outcome.is_success())
                    && let Some((landing, repo)) = landing
                    && let Err(err) = landing.write(repo, run_dir, mode)
                {
                    eprintln!("forge {command}: writing the run branch: {err}");
                    return ExitCode::from(1);
                }
                if outcome.is_success() {
                    ExitCode::SUCCESS
                } else if signal != 0 {
                    signal_exit(signal)
                } else {
                    ExitCode::from(1)
                }
            }
            Err(err) => {
                eprintln!("forge {command}: {err}");
                if err.is_disk_full() {
                    eprintln!(
                        "forge {command}: the disk is full; what was merged is kept in the run \
                         directory: free some space, then `forge resume {}` finishes the run",
                        run_dir.display()
                    );
                }
                ExitCode::from(2)
            }
        }
    })
}

/// How long a second interrupt waits for the agents to be killed and their views torn down
/// before forge exits anyway.
const HARD_STOP_BOUND: Duration = Duration::from_secs(10);

/// SIGINT, SIGTERM and SIGHUP: what Ctrl-C, `timeout`, CI runners, systemd and a closed
/// terminal send. All three stop the run the same way.
struct Signals {
    interrupt: Signal,
    terminate: Signal,
    hangup: Signal,
}

impl Signals {
    fn new() -> std::io::Result<Self> {
        Ok(Self {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
            hangup: signal(SignalKind::hangup())?,
        })
    }

    /// The next signal's number and name.
    async fn next(&mut self) -> (i32, &'static str) {
        tokio::select! {
            _ = self.interrupt.recv() => (libc_signal::SIGINT, "interrupted"),
            _ = self.terminate.recv() => (libc_signal::SIGTERM, "terminated (SIGTERM)"),
            _ = self.hangup.recv() => (libc_signal::SIGHUP, "hung up (SIGHUP)"),
        }
    }
}

/// Signal numbers (the same on every Linux architecture forge runs on).
mod libc_signal {
    pub(super) const SIGHUP: i32 = 1;
    pub(super) const SIGINT: i32 = 2;
    pub(super) const SIGTERM: i32 = 15;
}

/// The first signal cancels the run: every agent gets its grace period, finished work is
/// merged and published, views are torn down. A second one aborts it: the agents' process
/// groups are killed and their views torn down at once, and forge exits 130 as soon as that
/// is done (or after [`HARD_STOP_BOUND`]), never leaving a mount, a view or an agent behind
/// when it can help it.
async fn stop_on_signals(
    mut signals: Signals,
    command: &str,
    run_dir: &Path,
    cancel: impl FnOnce(),
    abort: impl FnOnce(),
    caught: &AtomicI32,
) {
    let (number, what) = signals.next().await;
    caught.store(number, Ordering::SeqCst);
    say(&format!(
        "forge {command}: {what}, stopping every task (Ctrl-C again to stop at once; \
         `forge resume {}` finishes the run)",
        run_dir.display()
    ));
    cancel();
    let (_, what) = signals.next().await;
    say(&format!(
        "forge {command}: {what} again, killing the agents and removing their views"
    ));
    abort();
    tokio::time::sleep(HARD_STOP_BOUND).await;
    say(&format!(
        "forge {command}: could not stop within {HARD_STOP_BOUND:?}; exiting (`forge resume {}` \
         finishes the run)",
        run_dir.display()
    ));
    std::process::exit(130);
}

/// Writes a line to stderr, ignoring failure (after SIGHUP the terminal may be gone, and
/// `eprintln!` would panic).
fn say(line: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// The exit status of a run stopped by signal `number`: 128 + the number, as a shell reports
/// a process the signal killed (130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP).
fn signal_exit(number: i32) -> ExitCode {
    ExitCode::from(u8::try_from(128 + number).unwrap_or(130))
}
