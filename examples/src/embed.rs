//! [`run_embedded`]: forge used as a library by another program, with in-process agents.
//!
//! The agents are Rust closures ([`FnExecutor`]). They read and write files under
//! `job.workdir` directly, and start tools with [`Job::configure_command`], which puts the tool
//! in the agent's view whatever the staging backend: without root, overlay views live in a
//! user namespace that a child process must join, and `configure_command` does that.

use std::path::{Path, PathBuf};
use std::process::Command;

use forge_core::{
    EngineOptions, EngineOutcome, ExecError, ExecOutput, Executors, FnExecutor, Job, LogStream,
    Plan, Task, run_engine,
};

use crate::{DemoError, create_repo};

/// What [`run_embedded`] did.
#[derive(Debug)]
pub struct EmbedReport {
    /// Every task's outcome and the final generation.
    pub outcome: EngineOutcome,
    /// The sample repository, with the agents' work published into it (deleted when the
    /// report is dropped).
    pub repo: PathBuf,
    _dir: tempfile::TempDir,
}

/// Runs three in-process agents on a sample repository: `inventory` writes INVENTORY.md
/// from the sources it finds, `license` writes LICENSE, and `review`, after both, records
/// what `git status` sees in its view (their work, merged) in REVIEW.md.
///
/// # Errors
///
/// The sample repository cannot be made (git is missing), or the engine cannot start.
pub async fn run_embedded() -> Result<EmbedReport, DemoError> {
    let dir = tempfile::tempdir()?;
    let repo = dir.path().join("repo");
    create_repo(&repo)?;
    let plan = Plan::default()
        .with_task(Task::new("inventory", "list the sources").writes(["INVENTORY.md"]))
        .with_task(Task::new("license", "add a license").writes(["LICENSE"]))
        .with_task(
            Task::new("review", "record what changed")
                .deps(["inventory", "license"])
                .writes(["REVIEW.md"]),
        )
        .validate()?;
    let executors = Executors::single(FnExecutor::new(agent));
    let options = EngineOptions::new(&repo, dir.path().join("run"));
    let outcome = run_engine(&plan, &executors, options).await?;
    Ok(EmbedReport {
        outcome,
        repo,
        _dir: dir,
    })
}

/// The one executor of [`run_embedded`]: what it does depends on the task.
async fn agent(job: Job) -> Result<ExecOutput, ExecError> {
    let task = job.task.id.clone();
    let fail = |what: &str, e: &dyn std::fmt::Display| {
        ExecError::fatal(format!("task `{task}`: {what}: {e}"))
    };
    match job.task.id.as_str() {
        "inventory" => {
            let mut sources = Vec::new();
            list_files(&job.workdir.join("src"), "src", &mut sources)
                .map_err(|e| fail("listing src", &e))?;
            sources.sort();
            let mut text = String::from("# Inventory\n\n");
            for source in &sources {
                let lines = std::fs::read_to_string(job.workdir.join(source))
                    .map_err(|e| fail("reading a source", &e))?
                    .lines()
                    .count();
                text.push_str(&format!("- {source}: {lines} lines\n"));
            }
            std::fs::write(job.workdir.join("INVENTORY.md"), text)
                .map_err(|e| fail("writing", &e))?;
            job.progress
                .log(LogStream::Stdout, &format!("{} sources", sources.len()));
        }
        "license" => std::fs::write(job.workdir.join("LICENSE"), "MIT License\n")
            .map_err(|e| fail("writing", &e))?,
        "review" => {
            let mut git = Command::new("git");
            git.args(["status", "--porcelain", "--untracked-files=all"]);
            // In the view, also when it lives in a user namespace.
            job.configure_command(&mut git);
            let out = tokio::task::spawn_blocking(move || git.output())
                .await
                .map_err(|e| fail("git", &e))?
                .map_err(|e| fail("starting git", &e))?;
            if !out.status.success() {
                return Err(fail(
                    "git status",
                    &String::from_utf8_lossy(&out.stderr).trim(),
                ));
            }
            let status = String::from_utf8_lossy(&out.stdout);
            std::fs::write(
                job.workdir.join("REVIEW.md"),
                format!("# Review\n\ngit status in the review's view:\n\n{status}"),
            )
            .map_err(|e| fail("writing", &e))?;
        }
        other => return Err(ExecError::fatal(format!("no agent for task `{other}`"))),
    }
    Ok(ExecOutput::default())
}

/// Every file below `dir`, as `prefix/...` paths.
fn list_files(dir: &Path, prefix: &str, out: &mut Vec<String>) -> std::io::Result<()> {
    for item in std::fs::read_dir(dir)? {
        let item = item?;
        let name = format!("{prefix}/{}", item.file_name().to_string_lossy());
        if item.file_type()?.is_dir() {
            list_files(&item.path(), &name, out)?;
        } else {
            out.push(name);
        }
    }
    Ok(())
}
