//! Keeping the work of a task that did not merge: when a task's change set conflicts with
//! the head, or is rejected (writes outside its declared scope, entries forge does not
//! merge), it is written to `run_dir/kept/<task>-<attempt>/` so that a person or a resolver
//! can pick it up, instead of being thrown away with the view.
//!
//! Layout of one kept change set:
//!
//! - `files/`: every file, symlink and directory the task added or changed, at its
//!   repository path, with its executable bit;
//! - `changes.json`: `{"task", "attempt", "reason", "base_generation", "changed": [paths],
//!   "deleted": [paths]}`; the deletions exist only here.

use std::io;
use std::path::{Path, PathBuf};

use forge_staging::{ChangeSet, Entry};
use serde::Serialize;

/// The directory under the run directory that holds kept change sets.
pub(super) const KEPT_DIR: &str = "kept";

/// Why a change set was kept.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum Reason {
    /// It conflicted with the head.
    Conflict,
    /// It wrote outside the task's declared writes.
    Scope,
    /// It held entries forge does not merge.
    Rejected,
}

#[derive(Serialize)]
struct Manifest<'a> {
    task: &'a str,
    attempt: u32,
    reason: Reason,
    base_generation: u64,
    changed: Vec<&'a str>,
    deleted: Vec<&'a str>,
}

/// Writes `changes` (made by `task`'s `attempt` in a view of `base`) under
/// `run_dir/kept/`, and returns the directory it wrote.
///
/// # Errors
///
/// Writing fails; the message names the path.
pub(super) fn keep(
    run_dir: &Path,
    task: &str,
    attempt: u32,
    reason: Reason,
    base: u64,
    changes: &ChangeSet,
) -> Result<PathBuf, String> {
    let parent = run_dir.join(KEPT_DIR);
    std::fs::create_dir_all(&parent).map_err(|e| describe("create", &parent, &e))?;
    let dir = unique_dir(&parent, &format!("{}-{attempt}", safe_name(task)))?;
    let files = dir.join("files");
    std::fs::create_dir(&files).map_err(|e| describe("create", &files, &e))?;
    let mut manifest = Manifest {
        task,
        attempt,
        reason,
        base_generation: base,
        changed: Vec::new(),
        deleted: Vec::new(),
    };
    for change in &changes.changes {
        let Some(entry) = &change.entry else {
            manifest.deleted.push(&change.path);
            continue;
        };
        manifest.changed.push(&change.path);
        let path = files.join(&change.path);
        write_entry(&path, entry).map_err(|e| describe("write", &path, &e))?;
    }
    let path = dir.join("changes.json");
    let json = serde_json::to_vec_pretty(&manifest).expect("a manifest of strings serializes");
    std::fs::write(&path, json).map_err(|e| describe("write", &path, &e))?;
    Ok(dir)
}

/// The kept change sets of a run directory, sorted.
pub(super) fn list(run_dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(run_dir.join(KEPT_DIR)) else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("changes.json").is_file())
        .collect();
    dirs.sort();
    dirs
}

fn write_entry(path: &Path, entry: &Entry) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    match entry {
        Entry::Dir => std::fs::create_dir_all(path),
        Entry::File { data, executable } => {
            std::fs::write(path, data)?;
            let mode = if *executable { 0o755 } else { 0o644 };
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        }
        Entry::Symlink { target } => std::os::unix::fs::symlink(target, path),
    }
}

/// A new directory `parent/name`, or `name.2`, `name.3`, ... when taken.
fn unique_dir(parent: &Path, name: &str) -> Result<PathBuf, String> {
    for n in 1u32.. {
        let dir = if n == 1 {
            parent.join(name)
        } else {
            parent.join(format!("{name}.{n}"))
        };
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && n < 10_000 => {}
            Err(e) => return Err(describe("create", &dir, &e)),
        }
    }
    unreachable!("the loop returns by its 10 000th name")
}

/// The task id with anything unusual in a file name replaced by `_`, cut to 64 characters.
fn safe_name(task: &str) -> String {
    task.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect()
}

fn describe(op: &str, path: &Path, e: &io::Error) -> String {
    format!("cannot {op} {}: {e}", path.display())
}
