//! The overlay backend: views as overlayfs mounts over the layer stack, change collection
//! from the upper directory, and folding long stacks into one lower layer.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::collect::{Collector, lossy};
use crate::error::{Result, StagingError};
use crate::layers::{self, Layer, Op};
use crate::paths;
use crate::staging::Inner;
use crate::sys;
use crate::types::{ChangeSet, Entry, EntryKind, RejectReason};
use crate::view::ViewState;

/// Room left in the one-page mount option string for `lowerdir`.
const OPTION_BUDGET: usize = 4000;

/// Mount options besides the directories: `redirect_dir=on` lets agents rename base
/// directories (recorded as redirect xattrs, which [`collect`] reads); `metacopy=off` keeps
/// every changed file's data in the upper directory.
const EXTRA_OPTIONS: &str = "redirect_dir=on,metacopy=off,index=off";

/// Checks that an overlay can be mounted in `run_dir`, returning why not.
pub(crate) fn probe(run_dir: &Path) -> Result<(), String> {
    if !cfg!(target_os = "linux") {
        return Err("overlayfs needs Linux".into());
    }
    if !sys::is_root() {
        return Err("mounting overlayfs needs root".into());
    }
    let dir = run_dir.join(format!(".probe-{}", std::process::id()));
    let result = (|| -> Result<(), String> {
        let [lower, upper, work, mnt] = ["lower", "upper", "work", "mnt"].map(|n| dir.join(n));
        for d in [&lower, &upper, &work, &mnt] {
            fs::create_dir_all(d).map_err(|e| format!("mkdir {}: {e}", d.display()))?;
        }
        let data = format!(
            "lowerdir={},upperdir={},workdir={},{EXTRA_OPTIONS}",
            escape(&lower),
            escape(&upper),
            escape(&work)
        );
        sys::mount_overlay(&mnt, &data).map_err(|e| e.to_string())?;
        sys::unmount(&mnt).map_err(|e| e.to_string())
    })();
    let _ = sys::remove_any(&dir);
    result
}

/// Escapes the characters overlayfs treats specially in a directory option.
fn escape(path: &Path) -> String {
    let s = path.to_string_lossy();
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, ':' | ',' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Mounts a view of the generation `stack` describes in the fresh directory `dir`.
pub(crate) fn create(inner: &Inner, stack: &[Arc<Layer>], dir: &Path) -> Result<ViewState> {
    if !inner.store.has_whiteouts() {
        return Err(StagingError::BackendUnavailable {
            backend: crate::Backend::Overlay,
            reason: "the layers of this run directory were written without whiteouts (not as root)"
                .into(),
        });
    }
    let lowers = lower_dirs(inner, stack)?;
    let [upper, work, mnt] = ["upper", "work", "mnt"].map(|n| dir.join(n));
    for d in [&upper, &work, &mnt] {
        fs::create_dir(d).map_err(StagingError::io("mkdir", d))?;
    }
    let data = format!(
        "lowerdir={},upperdir={},workdir={},{EXTRA_OPTIONS}",
        lowers
            .iter()
            .map(|p| escape(p))
            .collect::<Vec<_>>()
            .join(":"),
        escape(&upper),
        escape(&work)
    );
    sys::mount_overlay(&mnt, &data)?;
    Ok(ViewState::Overlay { upper, mnt })
}

/// The lower directories for a view of `stack`'s generation, topmost first, folding the
/// bottom of the stack into one layer when it would not fit into one mount.
fn lower_dirs(inner: &Inner, stack: &[Arc<Layer>]) -> Result<Vec<PathBuf>> {
    let generation = stack.len();
    let max_layers = inner.opts.max_overlay_layers.clamp(2, 499);
    let repo_len = escape(&inner.repo).len() + 1;
    let mut budget =
        OPTION_BUDGET.saturating_sub(repo_len + 2 * (inner.run_dir.as_os_str().len() + 40));
    // How many of the top layers fit as themselves, keeping room for one folded layer.
    let fold_len = inner
        .run_dir
        .join("flat")
        .join(generation.to_string())
        .as_os_str()
        .len()
        + 1;
    budget = budget.saturating_sub(fold_len);
    let mut fit = 0;
    for layer in stack.iter().rev() {
        let len = escape(&layer.tree).len() + 1;
        if fit + 2 > max_layers || len > budget {
            break;
        }
        budget -= len;
        fit += 1;
    }
    let mut lowers: Vec<PathBuf> = stack
        .iter()
        .rev()
        .take(fit)
        .map(|l| l.tree.clone())
        .collect();
    if fit < generation {
        // Generations 1..=bottom must come from one folded layer.
        let bottom = generation - fit;
        let flat = flat_layer(inner, stack, bottom)?;
        // The folded layer may be newer than `bottom`; drop the individual layers it covers.
        let covered = flat.1;
        lowers.truncate(generation - covered);
        lowers.push(flat.0);
    }
    lowers.push(inner.repo.clone());
    Ok(lowers)
}

/// A folded layer for generations `1..=g` with `at_least <= g <= stack.len()`, reusing one
/// already built; returns its directory and `g`.
fn flat_layer(inner: &Inner, stack: &[Arc<Layer>], at_least: usize) -> Result<(PathBuf, usize)> {
    let flat_dir = inner.run_dir.join("flat");
    let _serial = inner.flat_lock.lock();
    fs::create_dir_all(&flat_dir).map_err(StagingError::io("mkdir", &flat_dir))?;
    let mut best = None;
    for item in fs::read_dir(&flat_dir).map_err(StagingError::io("read dir", &flat_dir))? {
        let item = item.map_err(StagingError::io("read dir", &flat_dir))?;
        let parsed = item
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<usize>().ok());
        if let Some(g) = parsed
            && g >= at_least
            && g <= stack.len()
            && best.is_none_or(|b| g > b)
        {
            best = Some(g);
        }
    }
    if let Some(g) = best {
        return Ok((flat_dir.join(g.to_string()), g));
    }
    let g = stack.len();
    let tmp = flat_dir.join(format!(".tmp-{g}-{}", std::process::id()));
    sys::remove_any(&tmp)?;
    fs::create_dir(&tmp).map_err(StagingError::io("mkdir", &tmp))?;
    for (path, folded) in layers::fold(&stack[..g]) {
        let disk = tmp.join(&path);
        if let Some(parent) = paths::parent(&path) {
            let parent_disk = tmp.join(parent);
            fs::create_dir_all(&parent_disk).map_err(StagingError::io("mkdir", &parent_disk))?;
        }
        match folded.op {
            Op::Delete => {
                sys::make_whiteout(&disk).map_err(StagingError::io("mknod whiteout", &disk))?
            }
            Op::Dir | Op::Opaque => {
                if !disk.is_dir() {
                    fs::create_dir(&disk).map_err(StagingError::io("mkdir", &disk))?;
                }
                if folded.op == Op::Opaque {
                    sys::set_opaque(&disk).map_err(StagingError::io("set opaque xattr", &disk))?;
                }
            }
            Op::File | Op::Exec | Op::Symlink => {
                if !sys::copy_entry(&folded.source, &disk, false)? {
                    return Err(StagingError::Corrupt {
                        path: folded.source.clone(),
                        reason: "layer entry listed in the manifest is not a file or symlink"
                            .into(),
                    });
                }
            }
        }
    }
    let final_dir = flat_dir.join(g.to_string());
    fs::rename(&tmp, &final_dir).map_err(StagingError::io("rename", &final_dir))?;
    Ok((final_dir, g))
}

/// The changes of an overlay view: a walk of its upper directory only.
pub(crate) fn collect(
    inner: &Inner,
    generation: u64,
    upper: &Path,
    mnt: &Path,
) -> Result<ChangeSet> {
    let mut c = Collector::new(inner, generation);
    walk_upper(&mut c, upper, mnt, "")?;
    Ok(c.finish())
}

fn walk_upper(c: &mut Collector<'_>, upper: &Path, mnt: &Path, dir: &str) -> Result<()> {
    let disk_dir = upper.join(dir);
    let items = fs::read_dir(&disk_dir).map_err(StagingError::io("read dir", &disk_dir))?;
    for item in items {
        let item = item.map_err(StagingError::io("read dir", &disk_dir))?;
        let name = item.file_name();
        let Some(name_str) = name.to_str() else {
            c.reject(lossy(dir, &name), RejectReason::NonUtf8Name);
            continue;
        };
        if c.inner.ignores.is_ignored_child(dir, name_str) {
            continue;
        }
        let path = paths::join(dir, name_str);
        let disk = item.path();
        let meta = fs::symlink_metadata(&disk).map_err(StagingError::io("stat", &disk))?;
        if sys::is_whiteout(&meta) {
            let old = c.old(&path)?;
            c.emit(&path, old, None)?;
        } else if meta.is_dir() {
            let opaque = sys::get_xattr(&disk, sys::XATTR_OPAQUE)
                .map_err(StagingError::io("read xattr", &disk))?
                .is_some_and(|v| v == b"y");
            let redirect = sys::get_xattr(&disk, sys::XATTR_REDIRECT)
                .map_err(StagingError::io("read xattr", &disk))?;
            let old = c.old(&path)?;
            let was_dir = old.as_ref().is_some_and(|l| l.kind == EntryKind::Dir);
            if opaque || redirect.is_some() || !was_dir {
                // The directory's contents no longer merge with the generation's at this
                // path: compare the whole merged subtree.
                c.emit(&path, old, Some(Entry::Dir))?;
                compare_subtree(c, mnt, &path, was_dir)?;
            } else {
                walk_upper(c, upper, mnt, &path)?;
            }
        } else {
            let Some(new) = c.read_new(&path, &disk, &meta)? else {
                continue;
            };
            let old = c.old(&path)?;
            c.emit(&path, old, Some(new))?;
        }
    }
    Ok(())
}

/// Compares everything below `dir` in the mounted view with the generation.
fn compare_subtree(c: &mut Collector<'_>, mnt: &Path, dir: &str, was_dir: bool) -> Result<()> {
    let mut old: std::collections::HashMap<String, crate::layers::Located> = if was_dir {
        c.inner
            .store
            .subtree(c.generation, dir)?
            .into_iter()
            .collect()
    } else {
        Default::default()
    };
    let mut pending = vec![dir.to_owned()];
    while let Some(d) = pending.pop() {
        let disk_dir = mnt.join(&d);
        for item in fs::read_dir(&disk_dir).map_err(StagingError::io("read dir", &disk_dir))? {
            let item = item.map_err(StagingError::io("read dir", &disk_dir))?;
            let name = item.file_name();
            let Some(name_str) = name.to_str() else {
                c.reject(lossy(&d, &name), RejectReason::NonUtf8Name);
                continue;
            };
            if c.inner.ignores.is_ignored_child(&d, name_str) {
                continue;
            }
            let path = paths::join(&d, name_str);
            let disk = item.path();
            let meta = fs::symlink_metadata(&disk).map_err(StagingError::io("stat", &disk))?;
            let old_loc = old.remove(&path);
            if meta.is_dir() {
                let was_child_dir = old_loc.as_ref().is_some_and(|l| l.kind == EntryKind::Dir);
                if !was_child_dir {
                    c.emit(&path, old_loc, Some(Entry::Dir))?;
                }
                pending.push(path);
                continue;
            }
            let new = c.read_new(&path, &disk, &meta)?;
            if new.is_none() && old_loc.is_some() {
                // Rejected in the view: leave the generation's entry alone.
                continue;
            }
            c.emit(&path, old_loc, new)?;
        }
    }
    // Whatever the generation had below `dir` and the view lacks was deleted.
    // Descendants of a vanished directory are in `old` too: each gets its own deletion.
    for path in old.into_keys() {
        if !c.inner.ignores.is_ignored(&path) {
            c.emit_deleted_path(&path);
        }
    }
    Ok(())
}
