//! Stat snapshots of copy, reflink and worktree views, and change collection by a parallel
//! stat walk against them: only entries whose stat changed are read.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use parking_lot::{Condvar, Mutex};

use crate::collect::{Collector, lossy};
use crate::error::{Result, StagingError};
use crate::paths::{self, Ignores};
use crate::staging::Inner;
use crate::sys;
use crate::types::{ChangeSet, Entry, EntryKind, RejectReason};

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
    let mut snapshot = Snapshot::default();
    let mut pending = vec![String::new()];
    while let Some(dir) = pending.pop() {
        let disk_dir = root.join(&dir);
        for item in fs::read_dir(&disk_dir).map_err(StagingError::io("read dir", &disk_dir))? {
            let item = item.map_err(StagingError::io("read dir", &disk_dir))?;
            let Some(name) = item.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if ignores.is_ignored_child(&dir, &name) {
                continue;
            }
            let path = paths::join(&dir, &name);
            let meta = item
                .metadata()
                .map_err(StagingError::io("stat", item.path()))?;
            if let Some(st) = Stat::of(&meta) {
                if st.kind == EntryKind::Dir {
                    pending.push(path.clone());
                }
                snapshot.insert(path, st);
            }
        }
    }
    Ok(snapshot)
}

/// What one walker found: paths whose stat changed (or that are new), rejections, and
/// the snapshot slots it saw.
#[derive(Default)]
struct Found {
    changed: Vec<(String, PathBuf, fs::Metadata)>,
    rejected: Vec<(String, RejectReason)>,
    seen: Vec<u32>,
    error: Option<StagingError>,
}

/// The shared queue of directories still to read.
struct Queue {
    dirs: Vec<String>,
    busy: usize,
    failed: bool,
}

/// The changes of a copy or worktree view: a stat walk on a few threads against the
/// snapshot, then reading and classifying only the entries whose stat changed.
pub(crate) fn collect(
    inner: &Inner,
    generation: u64,
    tree: &Path,
    snapshot: &Snapshot,
) -> Result<ChangeSet> {
    let n_threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, 4);
    let queue = Mutex::new(Queue {
        dirs: vec![String::new()],
        busy: 0,
        failed: false,
    });
    let wake = Condvar::new();
    let results: Vec<Found> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..n_threads)
            .map(|_| scope.spawn(|| walker(tree, snapshot, &inner.ignores, &queue, &wake)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let mut c = Collector::new(inner, generation);
    let mut seen = vec![false; snapshot.next_slot as usize];
    let mut changed = Vec::new();
    for found in results {
        if let Some(e) = found.error {
            return Err(e);
        }
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
    Ok(c.finish())
}

/// One walking thread: takes directories from the queue until all are read.
fn walker(
    tree: &Path,
    snapshot: &Snapshot,
    ignores: &Ignores,
    queue: &Mutex<Queue>,
    wake: &Condvar,
) -> Found {
    let mut found = Found::default();
    loop {
        let dir = {
            let mut q = queue.lock();
            loop {
                if q.failed {
                    return found;
                }
                if let Some(d) = q.dirs.pop() {
                    q.busy += 1;
                    break d;
                }
                if q.busy == 0 {
                    wake.notify_all();
                    return found;
                }
                wake.wait(&mut q);
            }
        };
        let mut subdirs = Vec::new();
        let outcome = read_one_dir(tree, &dir, snapshot, ignores, &mut found, &mut subdirs);
        let mut q = queue.lock();
        q.busy -= 1;
        if let Err(e) = outcome {
            found.error = Some(e);
            q.failed = true;
        }
        q.dirs.append(&mut subdirs);
        wake.notify_all();
    }
}

fn read_one_dir(
    tree: &Path,
    dir: &str,
    snapshot: &Snapshot,
    ignores: &Ignores,
    found: &mut Found,
    subdirs: &mut Vec<String>,
) -> Result<()> {
    use rustix::fs::{AtFlags, Mode, OFlags};
    let disk_dir = tree.join(dir);
    let io_err = |op| StagingError::io(op, &disk_dir);
    let fd = rustix::fs::open(
        &disk_dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::empty(),
    )
    .map_err(|e| io_err("open dir")(e.into()))?;
    let mut entries = rustix::fs::Dir::read_from(&fd).map_err(|e| io_err("read dir")(e.into()))?;
    // One buffer for every child's path: no allocation per unchanged entry.
    let mut path = String::with_capacity(dir.len() + 64);
    path.push_str(dir);
    if !dir.is_empty() {
        path.push('/');
    }
    let prefix_len = path.len();
    while let Some(entry) = entries.read() {
        let entry = entry.map_err(|e| io_err("read dir")(e.into()))?;
        let name_c = entry.file_name();
        let bytes = name_c.to_bytes();
        if bytes == b"." || bytes == b".." {
            continue;
        }
        let Ok(name) = std::str::from_utf8(bytes) else {
            let name = <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(bytes);
            found
                .rejected
                .push((lossy(dir, name), RejectReason::NonUtf8Name));
            continue;
        };
        if ignores.is_ignored_child(dir, name) {
            continue;
        }
        path.truncate(prefix_len);
        path.push_str(name);
        // fstatat relative to the directory: no path walk from the root.
        let now = rustix::fs::statat(&fd, name_c, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| StagingError::io("stat", tree.join(&path))(e.into()))?;
        let now = Stat::of_raw(&now);
        let before = snapshot.entries.get(path.as_str());
        if let Some((slot, _)) = before {
            found.seen.push(*slot);
        }
        let unchanged = before.is_some_and(|(_, st)| st.unchanged(now));
        if now.is_some_and(|st| st.kind == EntryKind::Dir) {
            subdirs.push(path.clone());
        }
        if !unchanged {
            let disk = tree.join(&path);
            let meta = fs::symlink_metadata(&disk).map_err(StagingError::io("stat", &disk))?;
            found.changed.push((path.clone(), disk, meta));
        }
    }
    Ok(())
}
