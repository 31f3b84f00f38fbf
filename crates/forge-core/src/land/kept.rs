//! The kept work of tasks that did not merge (`run_dir/kept/<task>-<n>/`), read back to be
//! committed on `forge-failed/NAME/TASK`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::message::{message, truncate};
use super::{BODY_MAX, LandError, Merge, SUBJECT_MAX, run_dir_error};
use crate::engine::RunDir;
use crate::plan::Task;

/// The kept work of a task that did not merge, read back from `run_dir/kept/<task>-<n>/`.
pub(super) struct Kept {
    pub(super) task: String,
    attempt: u32,
    reason: String,
    pub(super) base_generation: u64,
    error: Option<String>,
    dir: PathBuf,
    pub(super) ts_ms: u64,
    pub(super) changes: Vec<(String, forge_staging::LayerEntry)>,
}

/// `changes.json` of a kept change set.
#[derive(serde::Deserialize)]
struct KeptManifest {
    task: String,
    attempt: u32,
    reason: String,
    base_generation: u64,
    changed: Vec<String>,
    deleted: Vec<String>,
}

impl Kept {
    /// The commit message: the task's subject marked as not merged, why, and the trailers.
    pub(super) fn message(&self, task: Option<&&Task>, run: &str) -> String {
        let merge = Merge {
            task: self.task.clone(),
            attempt: self.attempt,
            generation: self.base_generation,
            ts_ms: self.ts_ms,
        };
        let merged = message(task, &merge, run);
        let (subject, rest) = merged.split_once("\n\n").unwrap_or((&merged, ""));
        let why = self.error.as_deref().unwrap_or("see `forge status`");
        format!(
            "{}\n\nNot merged ({}): {}\nThe work as the agent left it, on top of generation {}; \
             also in {}.\n\n{rest}Forge-Failed: {}\n",
            truncate(&format!("not merged: {subject}"), SUBJECT_MAX),
            self.reason,
            truncate(why, BODY_MAX),
            self.base_generation,
            self.dir.display(),
            self.reason
        )
    }
}

/// The kept work of every task that did not merge (the last attempt of each), whose view
/// showed a generation the branch holds (`..= head`).
pub(super) fn read_kept(dir: &RunDir, head: u64) -> Result<Vec<Kept>, LandError> {
    let run_dir = dir.path();
    let state =
        crate::engine::RunState::load(dir).map_err(|e| run_dir_error(run_dir, e.to_string()))?;
    let mut by_task: BTreeMap<String, Kept> = BTreeMap::new();
    for kept_dir in &state.kept_work {
        let path = kept_dir.join("changes.json");
        let bytes = std::fs::read(&path).map_err(|source| LandError::Io {
            path: path.clone(),
            source,
        })?;
        let manifest: KeptManifest = serde_json::from_slice(&bytes)
            .map_err(|e| run_dir_error(run_dir, format!("{}: {e}", path.display())))?;
        // When the work was kept: stable, so writing the branch again gives the same commit.
        let ts_ms = std::fs::metadata(&path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_millis() as u64);
        if manifest.base_generation > head
            || state.is_merged(&manifest.task)
            || by_task
                .get(&manifest.task)
                .is_some_and(|k| k.attempt > manifest.attempt)
        {
            continue;
        }
        let mut changes = Vec::new();
        for deleted in &manifest.deleted {
            changes.push((deleted.clone(), forge_staging::LayerEntry::Deleted));
        }
        for changed in &manifest.changed {
            let disk = kept_dir.join("files").join(changed);
            let meta = std::fs::symlink_metadata(&disk).map_err(|source| LandError::Io {
                path: disk.clone(),
                source,
            })?;
            let entry = if meta.is_dir() {
                forge_staging::LayerEntry::Dir
            } else if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&disk).map_err(|source| LandError::Io {
                    path: disk.clone(),
                    source,
                })?;
                forge_staging::LayerEntry::Symlink { target }
            } else {
                use std::os::unix::fs::PermissionsExt;
                forge_staging::LayerEntry::File {
                    executable: meta.permissions().mode() & 0o111 != 0,
                    disk,
                }
            };
            changes.push((changed.clone(), entry));
        }
        let error = match state.tasks.get(&manifest.task) {
            Some(crate::engine::TaskState::Failed { error }) => Some(error.clone()),
            _ => None,
        };
        by_task.insert(
            manifest.task.clone(),
            Kept {
                task: manifest.task,
                attempt: manifest.attempt,
                reason: manifest.reason,
                base_generation: manifest.base_generation,
                error,
                dir: kept_dir.clone(),
                ts_ms,
                changes,
            },
        );
    }
    Ok(by_task.into_values().collect())
}

/// A task id as one ref name component: anything but letters, digits, `-`, `_` and a
/// non-leading `.` becomes `-`.
pub(super) fn ref_component(task: &str) -> String {
    let mut out: String = task
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    while out.starts_with('.') || out.starts_with('-') {
        out.remove(0);
    }
    while out.ends_with('.') || out.ends_with(".lock") {
        out.pop();
    }
    let out = out.replace("..", "-");
    if out.is_empty() { "task".into() } else { out }
}
