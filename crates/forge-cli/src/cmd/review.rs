//! `forge log`, `forge diff` and `forge show`: review a run's branch `forge/NAME` task by
//! task (state, commit, files changed, +/-; a task's patch; its message, trailers and, for
//! a task that did not merge, its error and where its work is kept). Only read-only git
//! commands run, without hooks.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};

use forge_core::land::{Branch, git_command};
use forge_core::{Plan, RunState, TaskState};

use crate::session::Settings;

/// Arguments of `forge log`.
#[derive(Debug, clap::Args)]
pub(crate) struct LogArgs {
    /// The run directory (the one `forge run --run-dir` used).
    run_dir: PathBuf,
}

/// Arguments of `forge diff`.
#[derive(Debug, clap::Args)]
pub(crate) struct DiffArgs {
    /// The run directory.
    run_dir: PathBuf,
    /// The task whose commit to show; without it, the whole run from where it started.
    task: Option<String>,
}

/// Arguments of `forge show`.
#[derive(Debug, clap::Args)]
pub(crate) struct ShowArgs {
    /// The run directory.
    run_dir: PathBuf,
    /// The task.
    task: String,
}

/// A run directory with its journal, plan, repository and branch.
struct Run {
    run_dir: PathBuf,
    repo: PathBuf,
    state: RunState,
    plan: Option<Plan>,
    branch: Branch,
}

impl Run {
    fn open(run_dir: &Path) -> Result<Run, String> {
        let state = forge_core::status(run_dir).map_err(|e| e.to_string())?;
        let settings = Settings::load(run_dir)?;
        let plan = forge_core::RunDir::open(run_dir)
            .and_then(|dir| dir.load_plan())
            .ok();
        let branch = forge_core::land::recorded_branch(run_dir)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| {
                format!(
                    "run {} has no branch yet (it has not finished, or ran with --land none)",
                    run_dir.display()
                )
            })?;
        Ok(Run {
            run_dir: run_dir.to_owned(),
            repo: settings.repo,
            state,
            plan,
            branch,
        })
    }

    fn commit_of(&self, task: &str) -> Option<&str> {
        self.branch
            .commits
            .iter()
            .find(|c| c.task == task)
            .map(|c| c.commit.as_str())
    }

    fn knows(&self, task: &str) -> bool {
        self.state.tasks.contains_key(task)
            || self
                .plan
                .as_ref()
                .is_some_and(|p| p.tasks.iter().any(|t| t.id == task))
    }

    /// The directories under `run_dir/kept/` holding `task`'s work.
    fn kept(&self, task: &str) -> Vec<&Path> {
        let prefix = format!("{task}-");
        self.state
            .kept_work
            .iter()
            .filter(|p| {
                p.file_name().is_some_and(|n| {
                    n.to_string_lossy()
                        .strip_prefix(&prefix)
                        .is_some_and(|rest| rest.chars().all(|c| c.is_ascii_digit()))
                })
            })
            .map(PathBuf::as_path)
            .collect()
    }
}

fn fail(cmd: &str, message: &str) -> ExitCode {
    eprintln!("forge {cmd}: {message}");
    ExitCode::from(2)
}

/// `git args` in `repo`: its stdout, or git's error.
fn git(repo: &Path, args: &[&str]) -> Result<String, String> {
    let out = git_command(repo)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "`git {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `git args` with its output going straight to ours (colour only on a terminal).
fn git_to_stdout(repo: &Path, args: &[&str]) -> Result<(), String> {
    let color = if std::io::stdout().is_terminal() {
        "--color=always"
    } else {
        "--color=never"
    };
    let mut full = vec![args[0], color];
    full.extend_from_slice(&args[1..]);
    let status = git_command(repo)
        .args(&full)
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .status()
        .map_err(|e| format!("cannot run git: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`git {}` failed", full.join(" ")))
    }
}

fn state_name(state: Option<&TaskState>) -> String {
    match state.unwrap_or(&TaskState::Pending) {
        TaskState::Pending => "pending".into(),
        TaskState::Ready => "ready".into(),
        TaskState::Running { .. } => "running".into(),
        TaskState::Retrying { .. } => "retrying".into(),
        TaskState::Merged { .. } => "merged".into(),
        TaskState::Failed { .. } => "failed".into(),
        TaskState::Skipped { .. } => "skipped".into(),
        TaskState::Cancelled => "cancelled".into(),
        TaskState::Interrupted { .. } => "interrupted".into(),
        _ => "unknown".into(),
    }
}

/// Files changed, lines added and removed by `commit` (against its first parent).
fn numstat(repo: &Path, commit: &str) -> Result<(usize, u64, u64), String> {
    let text = git(
        repo,
        &["show", "--numstat", "--format=", "--no-renames", commit],
    )?;
    let (mut files, mut added, mut removed) = (0, 0, 0);
    for line in text.lines().filter(|l| !l.is_empty()) {
        let mut parts = line.split('\t');
        files += 1;
        // Binary files show `-`.
        added += parts.next().and_then(|n| n.parse().ok()).unwrap_or(0);
        removed += parts.next().and_then(|n| n.parse().ok()).unwrap_or(0);
    }
    Ok((files, added, removed))
}

/// `forge log RUN_DIR`.
pub(crate) fn log(args: LogArgs) -> ExitCode {
    let run = match Run::open(&args.run_dir) {
        Ok(run) => run,
        Err(err) => return fail("log", &err),
    };
    let short = run.branch.refname.trim_start_matches("refs/heads/");
    println!(
        "branch {short} ({})",
        &run.branch.head[..12.min(run.branch.head.len())]
    );
    if let Some(wt) = &run.branch.working_tree {
        println!(
            "  {:<12} {}  the working tree at the start of the run",
            "start",
            &wt[..12.min(wt.len())]
        );
    }
    let ids = super::status::task_ids(&run.state, run.plan.as_ref());
    let width = ids.iter().map(String::len).max().unwrap_or(0);
    for id in ids {
        let state = state_name(run.state.tasks.get(&id));
        let line = match run.commit_of(&id) {
            Some(commit) => match numstat(&run.repo, commit) {
                Ok((files, added, removed)) => format!(
                    "{}  {files} file{} +{added} -{removed}",
                    &commit[..12.min(commit.len())],
                    if files == 1 { "" } else { "s" }
                ),
                Err(err) => return fail("log", &err),
            },
            None if state == "merged" => "(changed nothing)".into(),
            None => String::new(),
        };
        println!(
            "{}",
            format!("  {id:<width$}  {state:<11} {line}").trim_end()
        );
    }
    ExitCode::SUCCESS
}

/// `forge diff RUN_DIR [TASK]`.
pub(crate) fn diff(args: DiffArgs) -> ExitCode {
    let run = match Run::open(&args.run_dir) {
        Ok(run) => run,
        Err(err) => return fail("diff", &err),
    };
    let result = match &args.task {
        Some(task) => match run.commit_of(task) {
            Some(commit) => git_to_stdout(&run.repo, &["show", "--format=", commit]),
            None => return fail("diff", &no_commit(&run, task)),
        },
        None => {
            let range = match &run.branch.start {
                Some(start) => format!("{start}..{}", run.branch.head),
                None => run.branch.head.clone(),
            };
            if run.branch.start.is_some() {
                git_to_stdout(&run.repo, &["diff", &range])
            } else {
                git_to_stdout(&run.repo, &["show", "--format=", &range])
            }
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => fail("diff", &err),
    }
}

fn no_commit(run: &Run, task: &str) -> String {
    if run.knows(task) {
        format!(
            "task `{task}` has no commit on the run branch ({}): see `forge show {} {task}`",
            state_name(run.state.tasks.get(task)),
            run.run_dir.display()
        )
    } else {
        format!("no task `{task}` in run {}", run.run_dir.display())
    }
}

/// `forge show RUN_DIR TASK`.
pub(crate) fn show(args: ShowArgs) -> ExitCode {
    let run = match Run::open(&args.run_dir) {
        Ok(run) => run,
        Err(err) => return fail("show", &err),
    };
    let task = args.task.as_str();
    if !run.knows(task) {
        return fail("show", &no_commit(&run, task));
    }
    let state = run.state.tasks.get(task);
    println!("task {task}: {}", state_name(state));
    match state {
        Some(TaskState::Failed { error } | TaskState::Retrying { error, .. }) => {
            println!("error: {error}");
        }
        Some(TaskState::Skipped { reason }) => println!("reason: {reason}"),
        _ => {}
    }
    for (t, paths) in &run.state.conflicts {
        if t == task {
            println!("conflicts: {}", paths.join(", "));
        }
    }
    for kept in run.kept(task) {
        println!("its work is kept in {}", kept.display());
    }
    // A task that did not merge may keep its work as a commit in the forge-failed namespace.
    let name = run.branch.refname.trim_start_matches("refs/heads/forge/");
    let failed = format!("refs/heads/forge-failed/{name}/{task}");
    if git(&run.repo, &["rev-parse", "--verify", "-q", &failed]).is_ok() {
        let short = failed.trim_start_matches("refs/heads/");
        println!("its work is on branch {short} (git show {short})");
    }
    let result = match run.commit_of(task) {
        Some(commit) => git_to_stdout(&run.repo, &["show", "--format=fuller", commit]),
        None => Ok(()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => fail("show", &err),
    }
}
