//! Stat snapshots of copy, reflink and worktree views, and change collection by a parallel
//! stat walk ([`crate::walk`]) against them: only entries whose stat changed are read.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::collect::Collector;
use crate::error::{Result, StagingError};
use crate::ignores::Ignores;
use crate::paths;
use crate::staging::Inner;
use crate::sys;
use crate::types::{ChangeSet, Entry, EntryKind, RejectReason};
use crate::walk::{self, Rules};

/// What a view's entry looked like right after it was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Stat {
    kind: EntryKind,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
    mode: u32,
}

impl Stat {
    pub(crate) fn of(meta: &fs::Metadata) -> Option<Stat> {
        Some(Stat {
            kind: sys::kind_of(meta)?,
            ino: meta.ino(),
            size: meta.size(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
            mode: meta.mode(),
        })
    }

    /// The same from a raw `stat` result.
    fn of_raw(st: &rustix::fs::Stat) -> Option<Stat> {
        let kind = match rustix::fs::FileType::from_raw_mode(st.st_mode) {
            rustix::fs::FileType::RegularFile => EntryKind::File,
            rustix::fs::FileType::Directory => EntryKind::Dir,
            rustix::fs::FileType::Symlink => EntryKind::Symlink,
            _ => return None,
        };
        Some(Stat {
            kind,
            ino: st.st_ino,
            size: st.st_size as u64,
            mtime: (st.st_mtime, st.st_mtime_nsec as i64),
            ctime: (st.st_ctime, st.st_ctime_nsec as i64),
            mode: st.st_mode,
        })
    }

    /// Whether `meta` shows the entry untouched. The ctime cannot be set by a process, so
    /// a write that restores size and mtime is still caught.
    fn unchanged(&self, now: Option<Stat>) -> bool {
        now.is_some_and(|now| {
            now.kind == self.kind
                && (self.kind == EntryKind::Dir
                    || (now.ino == self.ino
                        && now.size == self.size
                        && now.mtime == self.mtime
                        && now.ctime == self.ctime
                        && now.mode == self.mode))
        })
    }
}

/// Stats of every non-ignored path of a view when it was made, each with a slot number
/// for the walk's "seen" marks.
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    entries: rustc_hash::FxHashMap<String, (u32, Stat)>,
    next_slot: u32,
}

impl Snapshot {
    pub(crate) fn insert(&mut self, path: String, stat: Stat) {
        let slot = self.next_slot;
        self.next_slot += 1;
        self.entries.insert(path, (slot, stat));
    }

    pub(crate) fn extend(&mut self, items: Vec<(String, Stat)>) {
        self.entries.reserve(items.len());
        for (p, st) in items {
            self.insert(p, st);
        }
    }

    /// Drops `roots` and everything below them.
    pub(crate) fn remove_subtrees(&mut self, roots: &std::collections::HashSet<&str>) {
        if roots.is_empty() {
            return;
        }
        self.entries.retain(|p, _| {
            !roots.contains(p.as_str()) && !paths::ancestors(p).any(|a| roots.contains(a))
        });
    }
}

/// Records the stat of every non-ignored path below `root` (for views not made by
/// [`crate::copy::copy_tree`]).
pub(crate) fn stat_walk(root: &Path, ignores: &Ignores) -> Result<Snapshot> {
    let found = walk::walk(
        root,
        &[String::new()],
        Rules::Apply(ignores),
        |acc: &mut Vec<(String, Stat)>, item| {
            if !item.utf8 || item.ignored {
                return Ok(false);
            }
            if let Some(st) = Stat::of_raw(&item.stat()?) {
                acc.push((item.path.to_owned(), st));
            }
            Ok(true)
        },
    )?;
    let mut snapshot = Snapshot::default();
    for items in found {
        snapshot.extend(items);
    }
    Ok(snapshot)
}

/// What one walking thread found: paths whose stat changed (or that are new),
/// rejections, and the snapshot slots it saw.
#[derive(Default)]
struct Found {
    changed: Vec<(String, PathBuf, fs::Metadata)>,
    rejected: Vec<(String, RejectReason)>,
    seen: Vec<u32>,
}

/// The changes of a copy or worktree view: a parallel stat walk against the snapshot,
/// then reading and classifying only the entries whose stat changed.
pub(crate) fn collect(
    inner: &Inner,
    generation: u64,
    tree: &Path,
    snapshot: &Snapshot,
) -> Result<ChangeSet> {
    let results = walk::walk(
        tree,
        &[String::new()],
        Rules::Apply(&inner.ignores),
        |found: &mut Found, item| {
            if !item.utf8 {
                found
                    .rejected
                    .push((item.path.to_owned(), RejectReason::NonUtf8Name));
                return Ok(false);
            }
            if item.ignored {
                return Ok(false);
            }
            let now = Stat::of_raw(&item.stat()?);
            let before = snapshot.entries.get(item.path);
            if let Some((slot, _)) = before {
                found.seen.push(*slot);
            }
            if !before.is_some_and(|(_, st)| st.unchanged(now)) {
                let disk = item.disk();
                let meta = fs::symlink_metadata(&disk).map_err(StagingError::io("stat", &disk))?;
                found.changed.push((item.path.to_owned(), disk, meta));
            }
            Ok(true)
        },
    )?;
    let mut c = Collector::new(inner, generation);
    let mut seen = vec![false; snapshot.next_slot as usize];
    let mut changed = Vec::new();
    for found in results {
        for slot in found.seen {
            seen[slot as usize] = true;
        }
        for (path, reason) in found.rejected {
            c.reject(path, reason);
        }
        changed.extend(found.changed);
    }
    for (path, disk, meta) in changed {
        let old = c.old(&path)?;
        if meta.is_dir() {
            if old.as_ref().is_none_or(|l| l.kind != EntryKind::Dir) {
                c.emit(&path, old, Some(Entry::Dir))?;
            }
        } else if let Some(new) = c.read_new(&path, &disk, &meta)? {
            // A rejected entry (`None`) leaves the generation's entry alone.
            c.emit(&path, old, Some(new))?;
        }
    }
    for (path, (slot, _)) in &snapshot.entries {
        if !seen[*slot as usize] && c.old(path)?.is_some() {
            c.emit_deleted_path(path);
        }
    }
    c.finish()
}
