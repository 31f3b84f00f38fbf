//! The copy and reflink backends: a parallel copy (or clone) of the generation that
//! preserves modes, times and symlinks, taking the stat snapshot that change collection
//! ([`crate::snapshot`]) compares against.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Result, StagingError};
use crate::ignores::Ignores;
use crate::layers::{self, Layer, Op};
use crate::snapshot::{Snapshot, Stat};
use crate::staging::Inner;
use crate::sys;
use crate::types::Backend;
use crate::view::ViewState;
use crate::walk::{self, Item, Rules};
use rustix::fs::FileType;

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

/// What one copying thread did: snapshot entries of the paths it copied that are not
/// ignored, the directories it made (for their modes and times, set last), and the
/// ignored directories it met (copied by a second walk).
#[derive(Default)]
struct Copied {
    stats: Vec<(String, Stat)>,
    dirs: Vec<(PathBuf, fs::Metadata)>,
    ignored_dirs: Vec<String>,
}

/// Copies the tree `src` to the new directory `dst` with the parallel walker
/// ([`crate::walk`]): each directory is made before its entries, files are copied (or
/// cloned) where they are met, symlinks are copied as links, special files skipped;
/// directory modes and times are set last. Ignored paths are copied too (agents need
/// them) but left out of the snapshot.
pub(crate) fn copy_tree(
    src: &Path,
    dst: &Path,
    ignores: &Ignores,
    clone: bool,
) -> Result<Snapshot> {
    let root_meta = fs::metadata(src).map_err(StagingError::io("stat", src))?;
    fs::create_dir(dst).map_err(StagingError::io("mkdir", dst))?;
    let copy_one = |acc: &mut Copied, item: &Item<'_>| -> Result<bool> {
        let key = (item.utf8 && !item.ignored).then_some(item.path);
        let rel = item.rel();
        let src_path = src.join(&rel);
        let d = dst.join(&rel);
        match item.file_type {
            FileType::Directory => {
                let meta =
                    fs::symlink_metadata(&src_path).map_err(StagingError::io("stat", &src_path))?;
                fs::create_dir(&d).map_err(StagingError::io("mkdir", &d))?;
                if let (Some(k), Some(st)) = (key, Stat::of(&meta)) {
                    acc.stats.push((k.to_owned(), st));
                }
                if item.ignored && item.utf8 {
                    acc.ignored_dirs.push(item.path.to_owned());
                }
                acc.dirs.push((rel, meta));
            }
            FileType::Symlink => {
                let target =
                    fs::read_link(&src_path).map_err(StagingError::io("readlink", &src_path))?;
                std::os::unix::fs::symlink(&target, &d).map_err(StagingError::io("symlink", &d))?;
                if let Some(k) = key {
                    let meta = fs::symlink_metadata(&d).map_err(StagingError::io("stat", &d))?;
                    if let Some(st) = Stat::of(&meta) {
                        acc.stats.push((k.to_owned(), st));
                    }
                }
            }
            FileType::RegularFile => {
                let meta = copy_file(&src_path, &d, clone)?;
                if let (Some(k), Some(st)) = (key, Stat::of(&meta)) {
                    acc.stats.push((k.to_owned(), st));
                }
            }
            // Special files are never copied.
            _ => {}
        }
        Ok(true)
    };
    let mut copied = walk::walk(src, &[String::new()], Rules::Apply(ignores), copy_one)?;
    // The insides of ignored directories: copied, never in the snapshot.
    let ignored_dirs: Vec<String> = copied
        .iter_mut()
        .flat_map(|c| std::mem::take(&mut c.ignored_dirs))
        .collect();
    copied.extend(walk::walk(src, &ignored_dirs, Rules::AllIgnored, copy_one)?);
    let mut snapshot = Snapshot::default();
    let mut dirs = vec![(PathBuf::new(), root_meta)];
    for c in copied {
        snapshot.extend(c.stats);
        dirs.extend(c.dirs);
    }
    // Directory times last, deepest first: creating their entries changed them.
    dirs.sort_by_key(|(rel, _)| std::cmp::Reverse(rel.components().count()));
    for (rel, meta) in &dirs {
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
        if f.op != Op::Delete && !ignores.is_ignored(path, f.op.is_dir()) {
            let meta = fs::symlink_metadata(&disk).map_err(StagingError::io("stat", &disk))?;
            if let Some(st) = Stat::of(&meta) {
                snapshot.insert(path.clone(), st);
            }
        }
    }
    Ok(())
}
