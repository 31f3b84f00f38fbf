//! Folding one attempt's change set into the head: the three-way merge per path
//! (base = the view's generation, ours = head, theirs = the view) and the commit of the
//! result as a new generation, written ahead to the journal.

use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;

use forge_merge::{MergeOptions, PathMerge, TreeConflict};
use forge_staging::{ChangeSet, Entry, LayerChange, Staging};
use serde::Serialize;

use super::EngineError;
use super::journal::JournalWriter;
use crate::event::Event;

/// The conflicts that stopped a task's changes from merging, one per path.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[non_exhaustive]
pub struct ConflictReport {
    /// The task.
    pub task: String,
    /// The generation its view showed (the merge base).
    pub base_generation: u64,
    /// The head it was merged into.
    pub head_generation: u64,
    /// Every conflicted path.
    pub paths: Vec<PathConflict>,
    /// Where the task's whole change set was kept (`run_dir/kept/<task>-<attempt>`), when
    /// the conflict ended the task.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kept: Option<PathBuf>,
}

impl std::fmt::Display for ConflictReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "task {} conflicts with generation {} (its view showed {}) at {} path{}:",
            self.task,
            self.head_generation,
            self.base_generation,
            self.paths.len(),
            if self.paths.len() == 1 { "" } else { "s" }
        )?;
        for path in &self.paths {
            write!(f, " {} ({});", path.path, path.what)?;
        }
        if let Some(kept) = &self.kept {
            write!(f, " its changes are kept in {}", kept.display())?;
        }
        Ok(())
    }
}

/// One conflicted path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct PathConflict {
    /// The repository path.
    pub path: String,
    /// What each side did, in words (`both sides changed lines 3-4`, `deleted by the head,
    /// modified by the task`, ...).
    pub what: String,
    /// The file as it would be with conflict markers, for text conflicts.
    #[serde(skip)]
    pub with_markers: Option<Vec<u8>>,
}

/// The result of merging an attempt into the head.
pub(super) enum Merged {
    /// Committed as this generation (or nothing to commit: the head stays).
    Committed { generation: u64, paths: usize },
    /// Conflicts: nothing was committed.
    Conflict(ConflictReport),
}

/// An attempt's changes merged against the head, not yet committed.
pub(super) struct MergeResult {
    /// The head merged into.
    pub(super) head: u64,
    /// What to commit on top of the head (clean paths only).
    pub(super) layer: Vec<LayerChange>,
    /// Conflicted paths.
    pub(super) conflicts: Vec<PathConflict>,
    /// For each conflicted path, the best entry to show a resolver (text with markers).
    pub(super) best_effort: Vec<LayerChange>,
}

/// Merges `changes` (made in a view of generation `base`) with the head, per path.
pub(super) fn merge_changes(
    staging: &Staging,
    base: u64,
    changes: &ChangeSet,
) -> Result<MergeResult, EngineError> {
    let head = staging.head();
    if head == base {
        // Nothing was committed since the view opened: the view's changes are the result.
        return Ok(MergeResult {
            head,
            layer: changes.to_layer_changes(),
            conflicts: Vec::new(),
            best_effort: Vec::new(),
        });
    }
    let mut result = MergeResult {
        head,
        layer: Vec::with_capacity(changes.changes.len()),
        conflicts: Vec::new(),
        best_effort: Vec::new(),
    };
    let options = MergeOptions::default();
    for change in &changes.changes {
        let path = change.path.as_str();
        let base_entry = staging.read(base, path)?.map(to_merge);
        let ours = staging.read(head, path)?.map(to_merge);
        let theirs = change.entry.clone().map(to_merge);
        let merged = forge_merge::merge_entry(
            path,
            base_entry.as_ref(),
            ours.as_ref(),
            theirs.as_ref(),
            &options,
        );
        let entry = merged.result(ours.as_ref(), theirs.as_ref());
        if let PathMerge::Conflict(conflict) = &merged {
            result.conflicts.push(describe(path, conflict));
            result.best_effort.push(LayerChange {
                path: change.path.clone(),
                entry: entry.map(from_merge),
            });
        } else if entry != ours {
            result.layer.push(LayerChange {
                path: change.path.clone(),
                entry: entry.map(from_merge),
            });
        }
    }
    keep_nonempty_dirs(staging, head, &mut result.layer)?;
    Ok(result)
}

/// Drops the deletion of a directory that still has children in the result: staging deletes
/// a directory with everything below it, which would also delete what the head added there
/// since the view's generation.
fn keep_nonempty_dirs(
    staging: &Staging,
    head: u64,
    layer: &mut Vec<LayerChange>,
) -> Result<(), EngineError> {
    let deleted: std::collections::BTreeSet<String> = layer
        .iter()
        .filter(|c| c.entry.is_none())
        .map(|c| c.path.clone())
        .collect();
    let mut keep = Vec::new();
    for path in &deleted {
        if !matches!(staging.read(head, path)?, Some(Entry::Dir)) {
            continue;
        }
        let survivors = staging.list(head, path)?.into_iter().any(|child| {
            !deleted.contains(&child) && !deleted.contains(&format!("{path}/{child}"))
        });
        let added_below = layer
            .iter()
            .any(|c| c.entry.is_some() && c.path.starts_with(&format!("{path}/")));
        if survivors || added_below {
            keep.push(path.clone());
        }
    }
    layer.retain(|c| !(c.entry.is_none() && keep.contains(&c.path)));
    Ok(())
}

/// Merges `changes` (made in a view of generation `base`) into the head and commits them.
///
/// The caller serializes calls (one commit at a time); this runs blocking file I/O.
pub(super) fn merge_and_commit(
    staging: &Staging,
    journal: &JournalWriter,
    task: &str,
    base: u64,
    changes: &ChangeSet,
) -> Result<Merged, EngineError> {
    let merged = merge_changes(staging, base, changes)?;
    if !merged.conflicts.is_empty() {
        return Ok(Merged::Conflict(ConflictReport {
            task: task.to_owned(),
            base_generation: base,
            head_generation: merged.head,
            paths: merged.conflicts,
            kept: None,
        }));
    }
    commit_layer(staging, journal, task, merged.head, &merged.layer)
}

/// Commits `layer` on top of `head` with write-ahead journal records.
fn commit_layer(
    staging: &Staging,
    journal: &JournalWriter,
    task: &str,
    head: u64,
    layer: &[LayerChange],
) -> Result<Merged, EngineError> {
    if layer.is_empty() {
        journal.append_commit_point(&Event::TaskMerged {
            task: task.to_owned(),
            generation: head,
            paths: 0,
        })?;
        return Ok(Merged::Committed {
            generation: head,
            paths: 0,
        });
    }
    // Write-ahead: if the process dies from here on, resume looks for generation head+1 in
    // staging to know whether this commit happened.
    journal.append_commit_point(&Event::CommitStarted {
        task: task.to_owned(),
        generation: head + 1,
    })?;
    // The layer carries the task's id: where journal records are damaged, resume trusts it.
    let generation = staging.commit_for(task, layer)?;
    // No fsync needed here: if this record is lost, resume finds `commit_started` (fsynced
    // above) and layer `generation` in staging, and rolls the commit forward. Saves one fsync
    // (2.5-5 ms on this kind of disk) per commit, and commits are serialized.
    journal.append(&Event::TaskMerged {
        task: task.to_owned(),
        generation,
        paths: layer.len(),
    })?;
    Ok(Merged::Committed {
        generation,
        paths: layer.len(),
    })
}

fn describe(path: &str, conflict: &TreeConflict) -> PathConflict {
    let side = |s: forge_merge::Side| match s {
        forge_merge::Side::Ours => "the head",
        forge_merge::Side::Theirs => "the task",
    };
    let regions_text = |n: usize| format!("{n} conflict region{}", if n == 1 { "" } else { "s" });
    let (what, with_markers) = match conflict {
        TreeConflict::Content {
            merged_with_markers,
            regions,
            ..
        } => (
            format!("both changed the text: {}", regions_text(regions.len())),
            Some(merged_with_markers.clone()),
        ),
        TreeConflict::AddAdd {
            merged_with_markers,
            regions,
            ..
        } => (
            format!(
                "both added it with different text: {}",
                regions_text(regions.len())
            ),
            Some(merged_with_markers.clone()),
        ),
        TreeConflict::ModifyDelete { deleted_by, .. } => {
            let other = match deleted_by {
                forge_merge::Side::Ours => forge_merge::Side::Theirs,
                forge_merge::Side::Theirs => forge_merge::Side::Ours,
            };
            (
                format!(
                    "deleted by {}, modified by {}",
                    side(*deleted_by),
                    side(other)
                ),
                None,
            )
        }
        TreeConflict::TypeChange { ours, theirs, .. } => (
            format!(
                "type changed: the head has a {:?}, the task a {:?}",
                ours.kind(),
                theirs.kind()
            ),
            None,
        ),
        TreeConflict::Mode {
            ours_exec,
            theirs_exec,
            ..
        } => (
            format!("executable bit: head {ours_exec}, task {theirs_exec}"),
            None,
        ),
        TreeConflict::SymlinkTarget { ours, theirs, .. } => (
            format!(
                "symlink target: head {}, task {}",
                String::from_utf8_lossy(ours),
                String::from_utf8_lossy(theirs)
            ),
            None,
        ),
        TreeConflict::Binary { .. } => ("both changed a binary file".to_owned(), None),
    };
    PathConflict {
        path: path.to_owned(),
        what,
        with_markers,
    }
}

/// staging's entry as the merger's (the same shape; the leaves share no types).
pub(super) fn to_merge(entry: Entry) -> forge_merge::Entry {
    match entry {
        Entry::File { data, executable } => forge_merge::Entry::File { data, executable },
        Entry::Symlink { target } => forge_merge::Entry::Symlink {
            target: target.as_os_str().as_bytes().to_vec(),
        },
        Entry::Dir => forge_merge::Entry::Dir,
    }
}

/// The merger's entry as staging's.
pub(super) fn from_merge(entry: forge_merge::Entry) -> Entry {
    match entry {
        forge_merge::Entry::File { data, executable } => Entry::File { data, executable },
        forge_merge::Entry::Symlink { target } => Entry::Symlink {
            target: PathBuf::from(<std::ffi::OsString as OsStringExt>::from_vec(target)),
        },
        forge_merge::Entry::Dir => Entry::Dir,
    }
}
