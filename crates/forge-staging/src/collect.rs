//! Building a [`ChangeSet`]: classifying one path's old and new state, expanding deleted
//! directories, rejecting what must not be staged.

use std::collections::HashSet;
use std::fs;
use std::path::Path;

use crate::error::Result;
use crate::layers::Located;
use crate::paths;
use crate::staging::Inner;
use crate::sys;
use crate::types::{Change, ChangeKind, ChangeSet, Entry, EntryKind, RejectReason, Rejected};

/// Accumulates the changes of one view against its generation.
pub(crate) struct Collector<'a> {
    pub(crate) inner: &'a Inner,
    pub(crate) generation: u64,
    changes: Vec<Change>,
    rejected: Vec<Rejected>,
    seen: HashSet<String>,
}

impl<'a> Collector<'a> {
    pub(crate) fn new(inner: &'a Inner, generation: u64) -> Self {
        Collector {
            inner,
            generation,
            changes: Vec::new(),
            rejected: Vec::new(),
            seen: HashSet::new(),
        }
    }

    /// Where `path` lives in the view's generation.
    pub(crate) fn old(&self, path: &str) -> Result<Option<Located>> {
        self.inner.store.lookup(self.generation, path)
    }

    /// Records that `path` was left out for `reason`.
    pub(crate) fn reject(&mut self, path: String, reason: RejectReason) {
        self.rejected.push(Rejected { path, reason });
    }

    /// Reads the view's entry at `disk` (metadata `meta`) for `path`: `None` after recording
    /// a rejection (special file, escaping symlink).
    pub(crate) fn read_new(
        &mut self,
        path: &str,
        disk: &Path,
        meta: &fs::Metadata,
    ) -> Result<Option<Entry>> {
        if sys::kind_of(meta).is_none() {
            self.reject(
                path.to_owned(),
                RejectReason::Special(sys::special_name(meta)),
            );
            return Ok(None);
        }
        let entry = sys::read_entry_with(disk, meta)?;
        if let Some(Entry::Symlink { target }) = &entry
            && paths::symlink_escapes(path, target)
        {
            self.reject(
                path.to_owned(),
                RejectReason::EscapingSymlink(target.clone()),
            );
            return Ok(None);
        }
        Ok(entry)
    }

    /// Compares the generation's `old` state of `path` with the view's `new` one and
    /// records the difference; a directory that went away takes its whole subtree with it.
    pub(crate) fn emit(
        &mut self,
        path: &str,
        old: Option<Located>,
        new: Option<Entry>,
    ) -> Result<()> {
        let old_kind = old.as_ref().map(|l| l.kind);
        let kind = match (&old, &new) {
            (None, None) => None,
            (None, Some(_)) => Some(ChangeKind::Added),
            (Some(_), None) => Some(ChangeKind::Deleted),
            (Some(loc), Some(new_entry)) => classify(loc, new_entry)?,
        };
        if old_kind == Some(EntryKind::Dir)
            && new.as_ref().is_none_or(|e| e.kind() != EntryKind::Dir)
        {
            self.emit_deleted_subtree(path)?;
        }
        if let Some(kind) = kind {
            self.push(Change {
                path: path.to_owned(),
                kind,
                entry: new,
            });
        }
        Ok(())
    }

    /// Records the deletion of everything strictly below `path` in the generation.
    pub(crate) fn emit_deleted_subtree(&mut self, path: &str) -> Result<()> {
        for (p, loc) in self.inner.store.subtree(self.generation, path)? {
            if !self
                .inner
                .ignores
                .is_ignored(&p, loc.kind == EntryKind::Dir)
            {
                self.push(Change {
                    path: p,
                    kind: ChangeKind::Deleted,
                    entry: None,
                });
            }
        }
        Ok(())
    }

    /// Records the deletion of `path` alone.
    pub(crate) fn emit_deleted_path(&mut self, path: &str) {
        self.push(Change {
            path: path.to_owned(),
            kind: ChangeKind::Deleted,
            entry: None,
        });
    }

    fn push(&mut self, change: Change) {
        if self.seen.insert(change.path.clone()) {
            self.changes.push(change);
        }
    }

    /// Rejects the deletion of `path` when it was a special file of the repository (FIFO,
    /// socket, device): generations do not see those, so the deletion cannot be merged,
    /// and it must not pass silently. Returns whether it did.
    pub(crate) fn reject_if_special_deleted(&mut self, path: &str) -> Result<bool> {
        if self.old(path)?.is_some() {
            return Ok(false);
        }
        if !self.inner.store.reaches_repo(self.generation, path)? {
            return Ok(false);
        }
        let disk = self.inner.repo.join(path);
        match fs::symlink_metadata(&disk) {
            Ok(meta) if sys::kind_of(&meta).is_none() => {
                self.reject(
                    path.to_owned(),
                    RejectReason::SpecialDeleted(sys::special_name(&meta)),
                );
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// The change set, sorted by path. Directories that hold ignored paths are neither
    /// deleted (their collected entries are) nor replaced (rejected).
    pub(crate) fn finish(mut self) -> Result<ChangeSet> {
        let mut keep = Vec::new();
        for (i, c) in self.changes.iter().enumerate() {
            let removes_dir = match c.kind {
                ChangeKind::Deleted => true,
                ChangeKind::TypeChanged => c.entry.as_ref().is_some_and(|e| *e != Entry::Dir),
                _ => false,
            };
            if !removes_dir || self.old(&c.path)?.is_none_or(|l| l.kind != EntryKind::Dir) {
                continue;
            }
            let ignored = self.inner.store.first_ignored_below(
                self.generation,
                &c.path,
                &self.inner.ignores,
            )?;
            if let Some(ignored) = ignored {
                keep.push((i, ignored));
            }
        }
        for (i, ignored) in keep.into_iter().rev() {
            let c = self.changes.remove(i);
            if c.kind == ChangeKind::TypeChanged {
                self.reject(c.path, RejectReason::HidesIgnored(ignored));
            }
        }
        self.changes.sort_by(|a, b| a.path.cmp(&b.path));
        self.rejected.sort_by(|a, b| a.path.cmp(&b.path));
        self.rejected.dedup();
        Ok(ChangeSet {
            changes: self.changes,
            rejected: self.rejected,
        })
    }
}

/// How `new` differs from the generation's entry at `old`, `None` if it does not.
fn classify(old: &Located, new: &Entry) -> Result<Option<ChangeKind>> {
    if old.kind != new.kind() {
        return Ok(Some(ChangeKind::TypeChanged));
    }
    Ok(match new {
        Entry::Dir => None,
        Entry::Symlink { target } => {
            let old_target =
                fs::read_link(&old.disk).map_err(crate::StagingError::io("readlink", &old.disk))?;
            (&old_target != target).then_some(ChangeKind::Modified)
        }
        Entry::File { data, executable } => {
            let meta = fs::symlink_metadata(&old.disk)
                .map_err(crate::StagingError::io("stat", &old.disk))?;
            use std::os::unix::fs::MetadataExt;
            let old_exec = sys::is_executable(meta.mode());
            let same_data = meta.len() == data.len() as u64 && sys::file_equals(&old.disk, data)?;
            if !same_data {
                Some(ChangeKind::Modified)
            } else if old_exec != *executable {
                Some(ChangeKind::ModeChanged)
            } else {
                None
            }
        }
    })
}

/// A lossy, `/`-joined path for rejections of non-UTF-8 names.
pub(crate) fn lossy(dir: &str, name: &std::ffi::OsStr) -> String {
    paths::join(dir, &name.to_string_lossy())
}
