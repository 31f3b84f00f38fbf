//! Running git for staging (the base snapshot, the ignore rules, worktree views): one way,
//! with hooks and fsmonitor off, no optional locks, and none of the caller's variables that
//! would point git at another repository.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::error::{Result, StagingError};

/// The variables that point git at a repository other than the one `-C` names (what
/// `git rev-parse --local-env-vars` lists): removed from every git forge runs, so a
/// caller's `GIT_DIR` can never turn a command meant for a view against the user's
/// repository, and from every agent's environment (forge-core's `ProcessExecutor`).
pub const LOCAL_ENV_VARS: &[&str] = &[
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_CONFIG",
    "GIT_CONFIG_PARAMETERS",
    "GIT_CONFIG_COUNT",
    "GIT_OBJECT_DIRECTORY",
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_IMPLICIT_WORK_TREE",
    "GIT_GRAFT_FILE",
    "GIT_INDEX_FILE",
    "GIT_NO_REPLACE_OBJECTS",
    "GIT_REPLACE_REF_BASE",
    "GIT_PREFIX",
    "GIT_INTERNAL_SUPER_PREFIX",
    "GIT_SHALLOW_FILE",
    "GIT_COMMON_DIR",
];

/// Runs git in `dir` with `args`, against the index `index` when given; returns stdout.
pub(crate) fn run(dir: &Path, index: Option<&Path>, args: &[&str]) -> Result<Vec<u8>> {
    let mut cmd = Command::new("git");
    cmd.arg("-C")
        .arg(dir)
        .args([
            "-c",
            "core.hooksPath=/dev/null",
            "-c",
            "core.fsmonitor=false",
        ])
        .args(args)
        .stdin(Stdio::null())
        .env("GIT_OPTIONAL_LOCKS", "0");
    for var in LOCAL_ENV_VARS {
        cmd.env_remove(var);
    }
    if let Some(index) = index {
        cmd.env("GIT_INDEX_FILE", index);
    }
    let fail = |message: String| StagingError::Git {
        args: args.join(" "),
        dir: dir.to_owned(),
        message,
    };
    let out = cmd.output().map_err(|e| fail(e.to_string()))?;
    if !out.status.success() {
        return Err(fail(String::from_utf8_lossy(&out.stderr).trim().to_owned()));
    }
    Ok(out.stdout)
}
