//! The worktree backend: `git worktree add --detach` at `HEAD`, then the repository's
//! uncommitted state and the generation's layers applied on top, so the view shows exactly
//! the generation. Needs the repository to be the top of a git work tree.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use crate::copy;
use crate::error::{Result, StagingError};
use crate::layers::Layer;
use crate::snapshot::{self, Snapshot};
use crate::staging::Inner;
use crate::sys;
use crate::types::Entry;
use crate::view::ViewState;

/// Runs git with `args` in `dir`, returning its standard output.
fn git(dir: &Path, args: &[&str]) -> Result<Vec<u8>> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_OPTIONAL_LOCKS", "0")
        .output()
        .map_err(|e| StagingError::Git {
            args: args.join(" "),
            dir: dir.to_owned(),
            message: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(StagingError::Git {
            args: args.join(" "),
            dir: dir.to_owned(),
            message: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(out.stdout)
}

/// Checks that `repo` is the top directory of a git work tree with a `HEAD` commit.
pub(crate) fn probe(repo: &Path) -> Result<(), String> {
    let top = git(repo, &["rev-parse", "--show-toplevel"]).map_err(|e| e.to_string())?;
    let top = String::from_utf8_lossy(&top).trim().to_owned();
    let top = fs::canonicalize(&top).map_err(|e| format!("canonicalize {top}: {e}"))?;
    if top != repo {
        return Err(format!(
            "{} is not the top of its git work tree ({})",
            repo.display(),
            top.display()
        ));
    }
    git(repo, &["rev-parse", "--verify", "HEAD"]).map_err(|e| e.to_string())?;
    Ok(())
}

/// Makes a worktree view of the generation `stack` describes in the fresh directory `dir`.
pub(crate) fn create(inner: &Inner, stack: &[Arc<Layer>], dir: &Path) -> Result<ViewState> {
    let tree = dir.join("tree");
    let tree_str = tree.to_string_lossy().into_owned();
    {
        let _serial = inner.git_lock.lock();
        git(
            &inner.repo,
            &[
                "worktree", "add", "--quiet", "--detach", "--force", &tree_str, "HEAD",
            ],
        )?;
    }
    sync_working_changes(inner, &tree)?;
    create_empty_dirs(inner, &inner.repo, &tree, "")?;
    let mut scratch = Snapshot::default();
    copy::apply_layers(stack, &tree, &mut scratch, &inner.ignores, false)?;
    let snapshot = snapshot::stat_walk(&tree, &inner.ignores)?;
    Ok(ViewState::Worktree { tree, snapshot })
}

/// Copies into the worktree every path where the repository's working directory differs
/// from `HEAD` (modified, deleted, untracked and git-ignored paths), except paths forge
/// ignores.
fn sync_working_changes(inner: &Inner, tree: &Path) -> Result<()> {
    let out = git(
        &inner.repo,
        &[
            "status",
            "--porcelain=v1",
            "-z",
            "--untracked-files=all",
            "--ignored=traditional",
        ],
    )?;
    let mut fields = out.split(|&b| b == 0).filter(|f| !f.is_empty());
    while let Some(field) = fields.next() {
        if field.len() < 4 {
            continue;
        }
        let status = &field[..2];
        let path = String::from_utf8_lossy(&field[3..]).into_owned();
        if status[0] == b'R' || status[0] == b'C' {
            // The source of a staged rename or copy follows: sync it too.
            if let Some(orig) = fields.next() {
                sync_path(inner, tree, &String::from_utf8_lossy(orig))?;
            }
        }
        sync_path(inner, tree, &path)?;
    }
    Ok(())
}

/// Makes `path` in the worktree match the repository's working directory.
fn sync_path(inner: &Inner, tree: &Path, path: &str) -> Result<()> {
    let path = path.trim_end_matches('/');
    // Ignored files are synced (agents need `.env`); ignored directories (`target/`) and
    // everything in them are not, as git worktrees never copy them.
    let in_ignored_dir = crate::paths::parent(path)
        .is_some_and(|p| inner.ignores.is_ignored(p, true))
        || (inner.repo.join(path).is_dir() && inner.ignores.is_ignored(path, true));
    if path.is_empty() || in_ignored_dir {
        return Ok(());
    }
    let src = inner.repo.join(path);
    let dst = tree.join(path);
    sys::remove_any(&dst)?;
    let meta = match fs::symlink_metadata(&src) {
        Ok(m) => m,
        Err(_) => return Ok(()),
    };
    if let Some(parent) = dst.parent() {
        fs::create_dir_all(parent).map_err(StagingError::io("mkdir", parent))?;
    }
    if meta.is_dir() {
        copy::copy_tree(&src, &dst, &inner.ignores, false)?;
    } else if let Some(entry) = sys::read_entry_with(&src, &meta)? {
        let entry = match entry {
            Entry::File { data, .. } => {
                use std::os::unix::fs::{MetadataExt, PermissionsExt};
                sys::write_entry(
                    &dst,
                    &Entry::File {
                        data,
                        executable: false,
                    },
                    false,
                )?;
                fs::set_permissions(&dst, fs::Permissions::from_mode(meta.mode() & 0o7777))
                    .map_err(StagingError::io("chmod", &dst))?;
                return Ok(());
            }
            other => other,
        };
        sys::write_entry(&dst, &entry, false)?;
    }
    Ok(())
}

/// Creates the directories git does not track (empty ones) that the repository has and
/// the worktree lacks, so that the view shows them too; ignored paths are skipped.
fn create_empty_dirs(inner: &Inner, repo: &Path, tree: &Path, dir: &str) -> Result<()> {
    let disk = repo.join(dir);
    for item in fs::read_dir(&disk).map_err(StagingError::io("read dir", &disk))? {
        let item = item.map_err(StagingError::io("read dir", &disk))?;
        let is_dir = item.file_type().is_ok_and(|t| t.is_dir());
        let Some(name) = item.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        let path = crate::paths::join(dir, &name);
        if !is_dir || inner.ignores.is_ignored_child(&path, true) {
            continue;
        }
        let target = tree.join(&path);
        if !target.exists() {
            fs::create_dir(&target).map_err(StagingError::io("mkdir", &target))?;
        }
        create_empty_dirs(inner, repo, tree, &path)?;
    }
    Ok(())
}

/// Forgets worktrees whose directories are gone (after a view was removed).
pub(crate) fn prune(repo: &Path) {
    let _ = git(repo, &["worktree", "prune"]);
}
