//! The copy and reflink backends: a parallel copy (or clone) of the generation that
//! preserves modes, times and symlinks, taking the stat snapshot that change collection
//! ([`crate::snapshot`]) compares against.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use parking_lot::Mutex;

use crate::error::{Result, StagingError};
use crate::layers::{self, Layer, Op};
use crate::paths::{self, Ignores};
use crate::snapshot::{Snapshot, Stat};
use crate::staging::Inner;
use crate::sys;
use crate::types::Backend;
use crate::view::ViewState;

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
    let mut s = sys::open_nofollow(src)?;
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
