//! The copy and reflink backends: a parallel copy (or clone) of the generation that
//! preserves modes, times and symlinks, a stat snapshot taken while copying, and change
//! collection by a stat walk against that snapshot.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use parking_lot::Mutex;

use crate::collect::{Collector, lossy};
use crate::error::{Result, StagingError};
use crate::layers::{self, Layer, Op};
use crate::paths::{self, Ignores};
use crate::staging::Inner;
use crate::sys;
use crate::types::{Backend, ChangeSet, Entry, EntryKind, RejectReason};
use crate::view::ViewState;

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

    /// Whether `meta` shows the entry untouched. The ctime cannot be set by a process, so
    /// a write that restores size and mtime is still caught.
    fn unchanged(&self, meta: &fs::Metadata) -> bool {
        Stat::of(meta).is_some_and(|now| {
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

/// Stats of every non-ignored path of a view when it was made.
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    entries: HashMap<String, Stat>,
}

impl Snapshot {
    pub(crate) fn insert(&mut self, path: String, stat: Stat) {
        self.entries.insert(path, stat);
    }

    fn extend(&mut self, items: Vec<(String, Stat)>) {
        self.entries.extend(items);
    }

    /// Drops `paths` and everything below them.
    fn remove_subtrees(&mut self, roots: &HashSet<&str>) {
        if roots.is_empty() {
            return;
        }
        self.entries.retain(|p, _| {
            !roots.contains(p.as_str()) && !paths::ancestors(p).any(|a| roots.contains(a))
        });
    }
}

/// Checks that `FICLONE` works between the repository and the run directory.
pub(crate) fn probe_reflink(repo: &Path, run_dir: &Path) -> Result<(), String> {
    let dev = |p: &Path| {
        fs::metadata(p)
            .map(|m| m.dev())
            .map_err(|e| format!("stat {}: {e}", p.display()))
    };
    if dev(repo)? != dev(run_dir)? {
        return Err("the repository and the run directory are on different file systems".into());
    }
    let a = run_dir.join(format!(".reflink-probe-a-{}", std::process::id()));
    let b = run_dir.join(format!(".reflink-probe-b-{}", std::process::id()));
    let result = (|| -> io::Result<()> {
        fs::write(&a, vec![7u8; 65536])?;
        let src = File::open(&a)?;
        let dst = File::create(&b)?;
        sys::ficlone(&src, &dst)
    })();
    let _ = fs::remove_file(&a);
    let _ = fs::remove_file(&b);
    result.map_err(|e| format!("FICLONE failed in {}: {e}", run_dir.display()))
}

/// Makes a copy view of the generation `stack` describes in the fresh directory `dir`.
pub(crate) fn create(inner: &Inner, stack: &[Arc<Layer>], dir: &Path) -> Result<ViewState> {
    let tree = dir.join("tree");
    let clone = inner.backend == Backend::Reflink;
    let mut snapshot = copy_tree(&inner.repo, &tree, &inner.ignores, clone)?;
    apply_layers(stack, &tree, &mut snapshot, &inner.ignores, clone)?;
    Ok(ViewState::Copy { tree, snapshot })
}

/// One file to copy: its relative path and its snapshot key (`None` when ignored or not
/// UTF-8).
struct FileJob {
    rel: PathBuf,
    key: Option<String>,
}

/// Copies the tree `src` to the new directory `dst`: directories and symlinks first on
/// this thread, files on a few threads, then directory modes and times. Symlinks are
/// copied as links, special files are skipped.
pub(crate) fn copy_tree(
    src: &Path,
    dst: &Path,
    ignores: &Ignores,
    clone: bool,
) -> Result<Snapshot> {
    let mut snapshot = Snapshot::default();
    let mut files = Vec::new();
    let mut dirs: Vec<(PathBuf, fs::Metadata)> = Vec::new();
    let root_meta = fs::metadata(src).map_err(StagingError::io("stat", src))?;
    fs::create_dir(dst).map_err(StagingError::io("mkdir", dst))?;
    dirs.push((PathBuf::new(), root_meta));
    // (relative dir, its key when tracked)
    let mut pending: Vec<(PathBuf, Option<String>)> = vec![(PathBuf::new(), Some(String::new()))];
    while let Some((rel_dir, key_dir)) = pending.pop() {
        let src_dir = src.join(&rel_dir);
        for item in fs::read_dir(&src_dir).map_err(StagingError::io("read dir", &src_dir))? {
            let item = item.map_err(StagingError::io("read dir", &src_dir))?;
            let name = item.file_name();
            let rel = rel_dir.join(&name);
            let key = match (&key_dir, name.to_str()) {
                (Some(d), Some(n)) if !ignores.is_ignored_child(d, n) => Some(paths::join(d, n)),
                _ => None,
            };
            let ft = item
                .file_type()
                .map_err(StagingError::io("stat", item.path()))?;
            if ft.is_dir() {
                let meta = item
                    .metadata()
                    .map_err(StagingError::io("stat", item.path()))?;
                let d = dst.join(&rel);
                fs::create_dir(&d).map_err(StagingError::io("mkdir", &d))?;
                if let Some(k) = &key {
                    snapshot.insert(k.clone(), Stat::of(&meta).expect("a directory has a kind"));
                }
                dirs.push((rel.clone(), meta));
                pending.push((rel, key));
            } else if ft.is_symlink() {
                let s = src.join(&rel);
                let target = fs::read_link(&s).map_err(StagingError::io("readlink", &s))?;
                let d = dst.join(&rel);
                std::os::unix::fs::symlink(&target, &d).map_err(StagingError::io("symlink", &d))?;
                if let Some(k) = key {
                    let meta = fs::symlink_metadata(&d).map_err(StagingError::io("stat", &d))?;
                    snapshot.insert(k, Stat::of(&meta).expect("a symlink has a kind"));
                }
            } else if ft.is_file() {
                files.push(FileJob { rel, key });
            }
        }
    }
    let results = copy_files(src, dst, &files, clone)?;
    snapshot.extend(results);
    // Directory times last: creating their entries changed them.
    for (rel, meta) in dirs.iter().rev() {
        let d = dst.join(rel);
        let f = File::open(&d).map_err(StagingError::io("open", &d))?;
        f.set_permissions(fs::Permissions::from_mode(meta.mode() & 0o7777))
            .map_err(StagingError::io("chmod", &d))?;
        let times = fs::FileTimes::new()
            .set_accessed(meta.accessed().map_err(StagingError::io("stat", &d))?)
            .set_modified(meta.modified().map_err(StagingError::io("stat", &d))?);
        f.set_times(times)
            .map_err(StagingError::io("set times", &d))?;
    }
    Ok(snapshot)
}

/// Copies `files` on up to four threads; returns the snapshot entries of tracked ones.
fn copy_files(
    src: &Path,
    dst: &Path,
    files: &[FileJob],
    clone: bool,
) -> Result<Vec<(String, Stat)>> {
    let n_threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, 4);
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let first_error: Mutex<Option<StagingError>> = Mutex::new(None);
    let results: Mutex<Vec<(String, Stat)>> = Mutex::new(Vec::with_capacity(files.len()));
    std::thread::scope(|scope| {
        for _ in 0..n_threads {
            scope.spawn(|| {
                let mut local = Vec::new();
                const CHUNK: usize = 64;
                loop {
                    if failed.load(Ordering::Relaxed) {
                        break;
                    }
                    let start = next.fetch_add(CHUNK, Ordering::Relaxed);
                    if start >= files.len() {
                        break;
                    }
                    for job in &files[start..(start + CHUNK).min(files.len())] {
                        match copy_file(&src.join(&job.rel), &dst.join(&job.rel), clone) {
                            Ok(meta) => {
                                if let (Some(k), Some(st)) = (&job.key, Stat::of(&meta)) {
                                    local.push((k.clone(), st));
                                }
                            }
                            Err(e) => {
                                failed.store(true, Ordering::Relaxed);
                                first_error.lock().get_or_insert(e);
                                break;
                            }
                        }
                    }
                }
                results.lock().append(&mut local);
            });
        }
    });
    if let Some(e) = first_error.into_inner() {
        return Err(e);
    }
    Ok(results.into_inner())
}

/// Copies (or clones) one regular file with its mode and times; returns the copy's stat.
fn copy_file(src: &Path, dst: &Path, clone: bool) -> Result<fs::Metadata> {
    let mut s = OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(src)
        .map_err(StagingError::io("open", src))?;
    let smeta = s.metadata().map_err(StagingError::io("stat", src))?;
    let mode = smeta.mode() & 0o7777;
    let mut d = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(dst)
        .map_err(StagingError::io("create", dst))?;
    if smeta.len() > 0 {
        if clone {
            sys::ficlone(&s, &d).map_err(StagingError::io("clone", dst))?;
        } else {
            io::copy(&mut s, &mut d).map_err(StagingError::io("copy", dst))?;
        }
    }
    if mode & 0o022 != 0 || mode & 0o7000 != 0 {
        // The umask may have cleared these bits.
        d.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(StagingError::io("chmod", dst))?;
    }
    let times = fs::FileTimes::new()
        .set_accessed(smeta.accessed().map_err(StagingError::io("stat", src))?)
        .set_modified(smeta.modified().map_err(StagingError::io("stat", src))?);
    d.set_times(times)
        .map_err(StagingError::io("set times", dst))?;
    d.metadata().map_err(StagingError::io("stat", dst))
}

/// Applies generations 1..=n (`stack`) to a copy of the repository at `tree`, keeping the
/// snapshot in step.
pub(crate) fn apply_layers(
    stack: &[Arc<Layer>],
    tree: &Path,
    snapshot: &mut Snapshot,
    ignores: &Ignores,
    clone: bool,
) -> Result<()> {
    let folded = layers::fold(stack);
    if folded.is_empty() {
        return Ok(());
    }
    let resets: HashSet<&str> = folded
        .iter()
        .filter(|(_, f)| f.op != Op::Dir)
        .map(|(p, _)| p.as_str())
        .collect();
    snapshot.remove_subtrees(&resets);
    for (path, f) in &folded {
        let disk = tree.join(path);
        match f.op {
            Op::Delete => sys::remove_any(&disk)?,
            Op::Dir | Op::Opaque => {
                let is_dir = fs::symlink_metadata(&disk).is_ok_and(|m| m.is_dir());
                if f.op == Op::Opaque || !is_dir {
                    sys::remove_any(&disk)?;
                    fs::create_dir(&disk).map_err(StagingError::io("mkdir", &disk))?;
                }
            }
            Op::File | Op::Exec => {
                sys::remove_any(&disk)?;
                copy_file(&f.source, &disk, clone)?;
            }
            Op::Symlink => {
                sys::remove_any(&disk)?;
                let target =
                    fs::read_link(&f.source).map_err(StagingError::io("readlink", &f.source))?;
                std::os::unix::fs::symlink(&target, &disk)
                    .map_err(StagingError::io("symlink", &disk))?;
            }
        }
        if f.op != Op::Delete && !ignores.is_ignored(path) {
            let meta = fs::symlink_metadata(&disk).map_err(StagingError::io("stat", &disk))?;
            if let Some(st) = Stat::of(&meta) {
                snapshot.insert(path.clone(), st);
            }
        }
    }
    Ok(())
}

/// Records the stat of every non-ignored path below `root` (for views not made by
/// [`copy_tree`]).
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
            let meta =
                fs::symlink_metadata(item.path()).map_err(StagingError::io("stat", item.path()))?;
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

/// The changes of a copy or worktree view: a stat walk against the snapshot, reading only
/// entries whose stat changed.
pub(crate) fn collect(
    inner: &Inner,
    generation: u64,
    tree: &Path,
    snapshot: &Snapshot,
) -> Result<ChangeSet> {
    let mut c = Collector::new(inner, generation);
    let mut seen: HashSet<&str> = HashSet::with_capacity(snapshot.entries.len());
    let mut pending = vec![String::new()];
    while let Some(dir) = pending.pop() {
        let disk_dir = tree.join(&dir);
        for item in fs::read_dir(&disk_dir).map_err(StagingError::io("read dir", &disk_dir))? {
            let item = item.map_err(StagingError::io("read dir", &disk_dir))?;
            let name = item.file_name();
            let Some(name_str) = name.to_str() else {
                c.reject(lossy(&dir, &name), RejectReason::NonUtf8Name);
                continue;
            };
            if inner.ignores.is_ignored_child(&dir, name_str) {
                continue;
            }
            let path = paths::join(&dir, name_str);
            let disk = item.path();
            let meta = fs::symlink_metadata(&disk).map_err(StagingError::io("stat", &disk))?;
            let before = snapshot.entries.get_key_value(path.as_str());
            if let Some((key, _)) = before {
                seen.insert(key.as_str());
            }
            let unchanged = before.is_some_and(|(_, st)| st.unchanged(&meta));
            if meta.is_dir() {
                if !unchanged {
                    let old = c.old(&path)?;
                    if old.as_ref().is_none_or(|l| l.kind != EntryKind::Dir) {
                        c.emit(&path, old, Some(Entry::Dir))?;
                    }
                }
                pending.push(path);
            } else if !unchanged {
                let old = c.old(&path)?;
                // A rejected entry leaves the generation's entry alone.
                if let Some(new) = c.read_new(&path, &disk, &meta)? {
                    c.emit(&path, old, Some(new))?;
                }
            }
        }
    }
    for path in snapshot.entries.keys() {
        if !seen.contains(path.as_str()) && c.old(path)?.is_some() {
            c.emit_deleted_path(path);
        }
    }
    Ok(c.finish())
}
