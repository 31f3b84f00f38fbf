//! What `forge run` and `forge resume` share: the settings a run directory keeps so that
//! `resume` runs the same way, the executors built from them, and the driver (runtime, Ctrl-C,
//! live display, summary, exit status).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use forge_core::staging::{Backend, OverlayMode};
use forge_core::{
    ConflictPolicy, EngineError, EngineOptions, EngineOutcome, EventBus, Executor, Executors, Plan,
    ProcessExecutor, RunOptions, ScopePolicy,
};
use serde::{Deserialize, Serialize};

use crate::display::{self, Mode};

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
    /// `--keep-going`.
    pub(crate) keep_going: bool,
    /// `--pool NAME=N`.
    pub(crate) pools: Vec<(String, u32)>,
    /// `--staging`.
    pub(crate) staging: String,
    /// `--conflicts`.
    pub(crate) conflicts: String,
    /// `--scope`.
    pub(crate) scope: String,
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

    /// The executors: `--executor-for` templates by name, the `--executor` template for
    /// every other executor name the plan uses, and the resolver.
    pub(crate) fn executors(&self, plan: &Plan) -> Result<Executors, String> {
        let executor: Arc<dyn Executor> = Arc::new(
            ProcessExecutor::from_template(&self.executor)
                .map_err(|e| format!("--executor: {e}"))?,
        );
        let mut executors = Executors::default();
        executors.insert(forge_core::DEFAULT_EXECUTOR, executor.clone());
        for task in &plan.tasks {
            executors.insert(task.executor.clone(), executor.clone());
        }
        for (name, template) in &self.executors_for {
            if !plan.tasks.iter().any(|t| &t.executor == name) {
                let mut used: Vec<&str> = plan.tasks.iter().map(|t| t.executor.as_str()).collect();
                used.sort_unstable();
                used.dedup();
                return Err(format!(
                    "--executor-for {name}=...: no task of the plan uses executor `{name}` (it uses: {})",
                    used.join(", ")
                ));
            }
            let named = ProcessExecutor::from_template(template)
                .map_err(|e| format!("--executor-for {name}=...: {e}"))?;
            executors.insert(name.clone(), Arc::new(named));
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

/// Runs `start` (a run or a resume) on a fresh runtime with the live display, Ctrl-C handling
/// and the summary; exit status 0 when every task succeeded, 1 when some did not, 2 when the
/// run could not start.
pub(crate) fn drive<F, Fut>(
    command: &str,
    mode: Mode,
    run_dir: &Path,
    mut options: EngineOptions,
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
        options.run.bus = Some(bus);
        let interrupt = format!(
            "forge {command}: interrupted, stopping every task (Ctrl-C again to quit now; \
             `forge resume {}` finishes the run)",
            run_dir.display()
        );
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("{interrupt}");
                cancel.cancel();
                if tokio::signal::ctrl_c().await.is_ok() {
                    std::process::exit(130);
                }
            }
        });
        let display = tokio::spawn(display::show(subscription, mode));
        let outcome = start(options).await;
        // The engine dropped its bus handles; the display drains what is left and ends.
        let _ = display.await;
        match outcome {
            Ok(outcome) => {
                display::summarize(&outcome, run_dir, mode);
                if outcome.is_success() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(1)
                }
            }
            Err(err) => {
                eprintln!("forge {command}: {err}");
                ExitCode::from(2)
            }
        }
    })
}
