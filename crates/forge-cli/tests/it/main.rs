//! Integration tests of the `forge` binary.

#![forbid(unsafe_code)]

mod chaos;
mod land;
mod land_cmd;
mod merge_file;
mod metrics;
mod plan;
mod publish;
mod resume;
mod review;
mod run;
mod signals;
mod trust;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `forge`, to be started in `dir`.
fn forge_command(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_forge"));
    command.current_dir(dir).env_remove("COLUMNS");
    command
}

/// Runs `forge` with `args` in `dir`. A `forge run` without `--land` gets `--land worktree`:
/// these tests check the result in the working tree (`land.rs` tests the default, a branch).
pub(crate) fn forge(dir: &Path, args: &[&str]) -> Output {
    forge_command(dir)
        .args(worktree_landing(args))
        .output()
        .expect("forge runs")
}

/// `args`, with `--land worktree` added to a `run` that names no `--land`.
pub(crate) fn worktree_landing<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut args = args.to_vec();
    if args.first() == Some(&"run") && !args.contains(&"--land") {
        args.extend(["--land", "worktree"]);
    }
    args
}

/// stdout and stderr as text.
pub(crate) fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Whether the tests run as root.
pub(crate) fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout == b"0\n")
}

/// Runs git with `args` in `dir`; panics with git's message when it fails; gives stdout.
pub(crate) fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `git init -q` in `dir` (`forge run` needs a git work tree).
pub(crate) fn git_init(dir: &Path) {
    let status = Command::new("git")
        .args(["init", "-q"])
        .current_dir(dir)
        .status()
        .expect("git runs");
    assert!(status.success(), "git init in {}", dir.display());
}

/// A git repository directory and, beside it (outside the repository), a run directory.
pub(crate) struct Sandbox {
    tmp: tempfile::TempDir,
    repo: PathBuf,
}

impl Sandbox {
    pub(crate) fn new() -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let repo = tmp.path().join("repo");
        std::fs::create_dir(&repo).expect("mkdir");
        git_init(&repo);
        Self { tmp, repo }
    }

    /// A sandbox whose repository has one commit (author Ada) of `a.txt` ("one") and a
    /// `.gitignore` of `ignored` (the plan file and whatever else a test leaves out).
    pub(crate) fn committed(ignored: &str) -> Self {
        let sandbox = Self::new();
        let repo = sandbox.path();
        git(repo, &["config", "user.name", "Ada"]);
        git(repo, &["config", "user.email", "ada@example.com"]);
        sandbox.write("a.txt", "one\n");
        sandbox.write(".gitignore", ignored);
        git(repo, &["add", "a.txt", ".gitignore"]);
        git(repo, &["commit", "-qm", "init"]);
        sandbox
    }

    /// The repository.
    pub(crate) fn path(&self) -> &Path {
        &self.repo
    }

    /// The run directory, as an argument.
    pub(crate) fn run_dir(&self) -> String {
        self.tmp.path().join("run").display().to_string()
    }

    /// Writes `contents` to `name` in the repository.
    pub(crate) fn write(&self, name: &str, contents: &str) {
        std::fs::write(self.repo.join(name), contents).expect("write");
    }

    /// Runs `forge run plan.toml --run-dir RUN_DIR ARGS` in the repository; with `kill_at`,
    /// the process aborts right after that journal step (`FORGE_FAULT_KILL_AT_STEP`).
    pub(crate) fn run(&self, args: &[&str], kill_at: Option<u64>) -> Output {
        let mut command = forge_command(&self.repo);
        command
            .args(["run", "plan.toml", "--run-dir", &self.run_dir()])
            .args(args);
        if !args.contains(&"--land") {
            command.args(["--land", "worktree"]);
        }
        if let Some(step) = kill_at {
            command.env("FORGE_FAULT_KILL_AT_STEP", step.to_string());
        }
        command.output().expect("forge runs")
    }
}
