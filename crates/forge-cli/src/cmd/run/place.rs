//! Where `forge run` works: the repository (the top level of the git work tree around the
//! current directory) and the run directory (checked before anything is written there, or
//! created exclusively under the temporary directory).

use std::ffi::OsStr;
use std::path::{Component, Path, PathBuf};
use std::process::Command;

/// The files `forge run` itself puts into a run directory before the engine starts; a
/// directory holding nothing else is the leftover of a run that never started.
const STARTUP_FILES: &[&str] = &["forge-cli.json", "plan.json", ".plan.json.tmp"];

/// The journal, whose presence makes a directory a run's (see `forge resume`).
const JOURNAL_FILE: &str = "journal.jsonl";

/// The repository `forge run` works on.
#[derive(Debug)]
pub(crate) struct Repository {
    /// The top level of the work tree.
    pub(crate) top: PathBuf,
    /// The directory forge was started in, when it is not the top level.
    pub(crate) started_in: Option<PathBuf>,
}

/// The git work tree around `cwd`, as `git rev-parse` finds it.
///
/// # Errors
///
/// A message when `cwd` is not in a git repository, is in a bare repository or inside a git
/// directory, or git cannot be run.
pub(crate) fn find_repository(cwd: &Path) -> Result<Repository, String> {
    let out = Command::new("git")
        .args([
            "rev-parse",
            "--is-bare-repository",
            "--is-inside-work-tree",
            "--show-toplevel",
        ])
        .current_dir(cwd)
        .output()
        .map_err(|e| {
            format!(
                "cannot run git to find the repository around {}: {e}",
                cwd.display()
            )
        })?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut lines = stdout.lines();
    let (bare, inside) = (lines.next(), lines.next());
    if bare == Some("true") {
        return Err(format!(
            "{} is a bare git repository: forge runs in a work tree (a checkout), not in a bare repository",
            cwd.display()
        ));
    }
    if bare.is_none() {
        let git_says = String::from_utf8_lossy(&out.stderr);
        let git_says = git_says.lines().next().unwrap_or_default().trim();
        if !git_says.contains("not a git repository") && !git_says.is_empty() {
            // For example git's "dubious ownership" refusal: say what git said.
            return Err(format!(
                "cannot use the git repository around {}: {git_says}",
                cwd.display()
            ));
        }
        return Err(format!(
            "{} is not in a git repository: forge runs in a git work tree (`git init` makes one)",
            cwd.display()
        ));
    }
    let top = match (inside, lines.next()) {
        (Some("true"), Some(top)) if out.status.success() && !top.is_empty() => PathBuf::from(top),
        _ => {
            return Err(format!(
                "{} is inside a git directory, not in a work tree: run forge from the checkout",
                cwd.display()
            ));
        }
    };
    // git prints the top level with symlinks resolved; compare like with like.
    let here = std::fs::canonicalize(cwd).unwrap_or_else(|_| cwd.to_owned());
    let started_in = (here != top).then(|| cwd.to_owned());
    Ok(Repository { top, started_in })
}

/// Checks a run directory given with `--run-dir` without writing anything: it must lie
/// outside the repository and be missing, empty, or the leftover of a run that never started.
///
/// # Errors
///
/// A message naming the directory and what is wrong with it.
pub(crate) fn check_run_dir(run_dir: &Path, repo: &Path) -> Result<(), String> {
    check_outside(run_dir, repo)?;
    let entries = match std::fs::read_dir(run_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("run directory {}: {e}", run_dir.display())),
    };
    let mut others = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("run directory {}: {e}", run_dir.display()))?;
        let name = entry.file_name();
        if name == OsStr::new(JOURNAL_FILE) {
            return Err(format!(
                "run directory {} already holds a run's journal: resume it with `forge resume {}`, or pick a new directory",
                run_dir.display(),
                run_dir.display()
            ));
        }
        if !STARTUP_FILES.iter().any(|f| name == OsStr::new(f)) {
            others.push(name.to_string_lossy().into_owned());
        }
    }
    if others.is_empty() {
        return Ok(());
    }
    others.sort();
    let shown = others
        .iter()
        .take(3)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    Err(format!(
        "run directory {} is not empty and is not a forge run directory (it holds {shown}{}); \
         give a new or empty directory",
        run_dir.display(),
        if others.len() > 3 { ", ..." } else { "" }
    ))
}

/// Creates the run directory given with `--run-dir` (and its parents), mode 0700.
///
/// # Errors
///
/// A message naming the directory.
pub(crate) fn create_run_dir(run_dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(run_dir)
        .map_err(|e| format!("cannot create run directory {}: {e}", run_dir.display()))
}

/// Creates a new run directory under the system's temporary directory:
/// `forge-run-REPO-RANDOM`, made with one exclusive `mkdir` (mode 0700), so a directory or
/// symlink planted at a guessable name is never followed or reused (a taken name is
/// retried with another random suffix).
///
/// # Errors
///
/// A message when the temporary directory is inside the repository or the directory
/// cannot be created.
pub(crate) fn create_default_run_dir(repo: &Path) -> Result<PathBuf, String> {
    use std::os::unix::fs::PermissionsExt as _;
    let base = std::env::temp_dir();
    check_outside(&base, repo)
        .map_err(|e| format!("{e} (the temporary directory; set TMPDIR or give --run-dir)"))?;
    let name = repo
        .file_name()
        .map_or_else(|| "repo".into(), |n| n.to_string_lossy().into_owned());
    let prefix = format!("forge-run-{name}-");
    tempfile::Builder::new()
        .prefix(&prefix)
        .rand_bytes(8)
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir_in(&base)
        .map(tempfile::TempDir::keep)
        .map_err(|e| {
            format!(
                "cannot create a run directory in {}: {e} (set TMPDIR or give --run-dir)",
                base.display()
            )
        })
}

/// Refuses a directory that is the repository or lies inside it (symlinks resolved as far
/// as the path exists).
fn check_outside(dir: &Path, repo: &Path) -> Result<(), String> {
    let dir_real = resolve(dir);
    let repo_real = std::fs::canonicalize(repo).unwrap_or_else(|_| repo.to_owned());
    if dir_real.starts_with(&repo_real) {
        return Err(format!(
            "run directory {} is inside the repository {}; put it outside",
            dir.display(),
            repo.display()
        ));
    }
    Ok(())
}

/// `path` made absolute, walked from the root: every existing prefix is resolved
/// (symlinks followed, so `..` after it means its real parent), and the part that does not
/// exist yet (which cannot hold symlinks) is applied lexically.
fn resolve(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    let mut resolved = PathBuf::new();
    for component in absolute.components() {
        match component {
            Component::Prefix(_) | Component::RootDir => resolved.push(component),
            Component::CurDir => {}
            Component::ParentDir => {
                resolved.pop();
            }
            Component::Normal(name) => {
                resolved.push(name);
                if let Ok(real) = std::fs::canonicalize(&resolved) {
                    resolved = real;
                }
            }
        }
    }
    resolved
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_follows_existing_symlinks_and_applies_dots_lexically() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let real = std::fs::canonicalize(tmp.path()).expect("canonical");
        std::fs::create_dir(real.join("repo")).expect("mkdir");
        std::os::unix::fs::symlink(real.join("repo"), real.join("link")).expect("symlink");
        assert_eq!(
            resolve(&real.join("link/new/run")),
            real.join("repo/new/run")
        );
        assert_eq!(
            resolve(&real.join("link/new/../run")),
            real.join("repo/run")
        );
        assert_eq!(
            resolve(&real.join("other/a/../../repo/x")),
            real.join("repo/x")
        );
    }
}
