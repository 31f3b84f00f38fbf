//! `forge run`: run a plan on the current directory's repository with the engine (a staging
//! view per task, path locks, three-way merge into the head, journal), one command template
//! as the executor, live progress and a final summary.
//!
//! Exit status: 0 when every task succeeded, 1 when some did not, 2 on bad input.

use std::path::PathBuf;
use std::process::ExitCode;

use forge_core::{EngineOptions, Executors, Plan, ValidatedPlan, run_engine};

use crate::display::Mode;
use crate::land::{self, Land, Landing};
use crate::session::{self, Settings};

mod place;

/// Arguments of `forge run`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
forge run works on the git work tree around the current directory: from a subdirectory it \
runs on the top level (as git does, and says so); outside a work tree, or in a bare \
repository, it refuses. Every task works in its own copy-on-write view of the repository \
(--staging); when it succeeds, its changes are merged three-way into the current head \
(base: the generation its view showed) and committed as a new generation. Tasks that \
declare `writes` hold write locks on them and may change nothing else (--scope). The \
repository itself is written once, at the end. The journal, plan and views live in the run \
directory (--run-dir; `forge status` and `forge resume` read it): it must be outside the \
repository and new or empty, and every argument is checked before anything is written to \
it; by default it is a new private (0700) directory under $TMPDIR. Overlay views need \
Linux: as root they are plain mounts; without root they live in a user namespace that the \
command is started inside (it sees the view at {workdir}, its own uid, no extra \
privileges).

The --executor template is split into words like a shell does (quotes respected, nothing \
expanded), then {prompt}, {task}, {workdir} and {attempt} are replaced inside each word; a \
value is never re-split or seen by a shell. A task without an `executor` field (or with \
`executor = \"default\"`) uses --executor; a task whose `executor` field is any other NAME \
uses --executor-for NAME=CMD, and a NAME without one is refused before the run starts (a \
typo never falls back to --executor). The command runs in its own process group, in the \
task's view, with FORGE_TASK, FORGE_ATTEMPT and FORGE_WORKDIR set and an environment that \
describes the view: PWD is the view, and OLDPWD, git's repository variables (GIT_DIR, \
GIT_WORK_TREE, GIT_INDEX_FILE, ...) and npm's INIT_CWD are removed. On timeout or Ctrl-C \
the group gets SIGTERM, then SIGKILL 5 s later. Exit code 75 means retryable, 76 rate \
limited (print `forge:retry-after SECONDS`), 126/127 fatal; any other failure is retried if \
the task has retries.

A task that fails for good skips its dependents (each with the reason); everything \
independent of it still runs to its end, retries included. --fail-fast stops the whole run \
at the first such failure instead (running agents and pending retries are cancelled); \
--keep-going, the default, is accepted for older scripts.

Your working tree: the run's result is merged into it at the end, three-way with what you \
changed while the run lasted; a path where both conflict keeps your version, the run's is \
kept in RUN_DIR/publish-conflicts/PATH and named in the summary (exit status 1). Runs on one \
repository publish one after the other. An interrupted publish is finished by `forge resume`.

Exit status: 0 when every task succeeded, 1 when some failed, conflicted, were skipped or \
cancelled, 2 on bad input (unreadable, empty or invalid plan, bad template or option, no \
git work tree, unusable run directory).")]
pub(crate) struct Args {
    /// The plan file (TOML, JSON or Droidz tasks.json).
    plan: PathBuf,
    /// Command run for each task, e.g. 'droid exec --auto low {prompt}'.
    #[arg(long)]
    executor: String,
    /// Command for the tasks whose `executor` field is NAME, e.g.
    /// 'claude=claude -p {prompt}' (repeatable; NAME must be used by the plan).
    #[arg(long = "executor-for", value_name = "NAME=CMD", value_parser = parse_named_executor)]
    executors_for: Vec<(String, String)>,
    /// Most tasks running at once (default: number of CPUs).
    #[arg(long, short)]
    jobs: Option<usize>,
    /// At the first task that fails for good, stop the run: cancel running agents and
    /// pending retries. Default: keep going (the failed task's dependents are skipped,
    /// everything independent of it finishes).
    #[arg(long, conflicts_with = "keep_going")]
    fail_fast: bool,
    /// Keep going after a failure: the default, accepted so that older scripts still work.
    #[arg(long)]
    keep_going: bool,
    /// Where the result goes: `branch` (a branch forge/NAME with one commit per merged
    /// task; the working tree is not touched), `worktree` (the branch, and the result merged
    /// three-way into the working tree) or `none` (only the run directory).
    #[arg(long, default_value = "branch", value_parser = Land::parse)]
    land: Land,
    /// The run's name: the branch is forge/NAME (default: the plan file's stem and the
    /// time, e.g. plan-20261205-211000). An existing branch is never overwritten.
    #[arg(long)]
    name: Option<String>,
    /// Author and committer of the branch's commits, 'Name <email>' (default: the
    /// repository's user.name and user.email, else 'forge <forge@localhost>').
    #[arg(long)]
    author: Option<String>,
    /// A resource pool tasks can ask for with `resources = {NAME = units}` (repeatable).
    #[arg(long = "pool", value_name = "NAME=N", value_parser = parse_pool)]
    pools: Vec<(String, u32)>,
    /// Print every event as a JSON line on stdout instead of the progress display.
    #[arg(long)]
    json: bool,
    /// How each task's view of the repository is made: auto, overlay, overlay-userns
    /// (overlay in a user namespace, also as root), reflink, copy or worktree.
    #[arg(long, default_value = "auto")]
    staging: String,
    /// The run directory (journal, plan, views): outside the repository, new or empty;
    /// default: a new private directory under the system's temporary directory.
    #[arg(long)]
    run_dir: Option<PathBuf>,
    /// On a merge conflict: `fail` the task with a report, or `retry` it on the new head
    /// (`retry=N`: up to N times).
    #[arg(long, default_value = "fail")]
    conflicts: String,
    /// Command that resolves conflicts: it runs in a view holding the conflicted files with
    /// markers, its prompt names them; its result is merged. Overrides --conflicts.
    #[arg(long)]
    resolver: Option<String>,
    /// Changes outside a task's declared `writes`: reject (fail the task), allow, or warn.
    #[arg(long, default_value = "reject")]
    scope: String,
}

fn parse_named_executor(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, cmd)) if !name.trim().is_empty() && !cmd.trim().is_empty() => {
            Ok((name.trim().to_owned(), cmd.to_owned()))
        }
        _ => Err(format!("`{text}` is not NAME=CMD")),
    }
}

fn parse_pool(text: &str) -> Result<(String, u32), String> {
    let (name, units) = text
        .split_once('=')
        .ok_or_else(|| format!("pool `{text}` is not NAME=N"))?;
    let units = units
        .parse()
        .map_err(|_| format!("pool `{text}`: `{units}` is not a number"))?;
    Ok((name.to_owned(), units))
}

pub(crate) fn run(args: Args) -> ExitCode {
    match prepare(args) {
        Ok((plan, executors, options, run_dir, mode, settings)) => {
            if mode != Mode::Json {
                println!("run directory: {}", run_dir.display());
            }
            let landing = Some((&settings.landing, settings.repo.as_path()));
            session::drive(
                "run",
                mode,
                &run_dir,
                options,
                landing,
                |options| async move { run_engine(&plan, &executors, options).await },
            )
        }
        Err(err) => bad_input(&err),
    }
}

fn bad_input(message: &str) -> ExitCode {
    eprintln!("forge run: {message}");
    ExitCode::from(2)
}

type Prepared = (
    ValidatedPlan,
    Executors,
    EngineOptions,
    PathBuf,
    Mode,
    Settings,
);

/// Checks every argument, then (only then) creates the run directory and writes the
/// settings into it.
fn prepare(args: Args) -> Result<Prepared, String> {
    let plan = Plan::load(&args.plan).map_err(|e| e.to_string())?;
    if plan.tasks.is_empty() {
        return Err(format!("{}: the plan has no tasks", args.plan.display()));
    }
    let plan = plan.validate().map_err(|err| {
        format!(
            "{} is invalid:\n  {}",
            args.plan.display(),
            err.to_string().replace('\n', "\n  ")
        )
    })?;
    let cwd =
        std::env::current_dir().map_err(|e| format!("cannot read the current directory: {e}"))?;
    let repo = place::find_repository(&cwd)?;
    // Issue 13 item 17: never start over a working tree an interrupted publish left mixed.
    if let Some(pending) =
        forge_core::staging::pending_publish(&repo.top).map_err(|e| e.to_string())?
    {
        let pending = pending.display();
        return Err(format!(
            "an interrupted publish of the run in {pending} left this working tree half-written; run `forge resume {pending}` first"
        ));
    }
    let settings = Settings {
        repo: repo.top.clone(),
        executor: args.executor,
        executors_for: args.executors_for,
        resolver: args.resolver,
        jobs: args.jobs,
        keep_going: !args.fail_fast,
        pools: args.pools,
        staging: args.staging,
        conflicts: args.conflicts,
        scope: args.scope,
        landing: Landing {
            land: args.land,
            name: match args.name {
                Some(name) => name,
                None => land::free_default_name(&repo.top, &args.plan)?,
            },
            author: args.author,
        },
    };
    settings.landing.check(&repo.top)?;
    let executors = settings.executors(&plan.to_plan())?;
    let explicit_run_dir = match &args.run_dir {
        Some(dir) => {
            let dir = std::path::absolute(dir)
                .map_err(|e| format!("--run-dir {}: {e}", dir.display()))?;
            place::check_run_dir(&dir, &repo.top)?;
            Some(dir)
        }
        None => None,
    };
    // The options are checked here; the run directory they name is filled in once it exists.
    let mut options = settings.engine_options(explicit_run_dir.as_deref().unwrap_or(&repo.top))?;

    // Everything is checked: from here on, write.
    let run_dir = match explicit_run_dir {
        Some(dir) => {
            place::create_run_dir(&dir)?;
            dir
        }
        None => place::create_default_run_dir(&repo.top)?,
    };
    options.run_dir = run_dir.clone();
    if let Some(started_in) = &repo.started_in {
        eprintln!(
            "forge run: running in the repository at {} (you are in {})",
            repo.top.display(),
            started_in.display()
        );
    }
    settings.save(&run_dir)?;
    Ok((
        plan,
        executors,
        options,
        run_dir,
        Mode::pick(args.json),
        settings,
    ))
}
