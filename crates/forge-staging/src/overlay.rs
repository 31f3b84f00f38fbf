//! The overlay backend: views as overlayfs mounts over the layer stack, change collection
//! from the upper directory, and folding long stacks into one lower layer.
//!
//! Mounts are plain mounts as root ([`OverlayMode::Mount`]) or live in a user namespace
//! ([`OverlayMode::UserNamespace`], see [`crate::userns`]); the [`Flavor`] says which
//! xattrs overlayfs uses for its markers in each case.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::collect::{Collector, lossy};
use crate::error::{Result, StagingError};
use crate::layers::{self, Layer, Op};
use crate::paths;
use crate::staging::Inner;
use crate::sys;
use crate::types::{ChangeSet, Entry, EntryKind, OverlayMode, RejectReason};
use crate::userns::{Namespace, ViewNamespace};
use crate::view::ViewState;

/// Room left in the one-page mount option string for `lowerdir`.
const OPTION_BUDGET: usize = 4000;

/// Where overlayfs keeps its markers, and the mount options that go with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flavor {
    /// `trusted.overlay.*`: plain mounts as root.
    Trusted,
    /// `user.overlay.*` (`userxattr`): mounts inside a user namespace.
    User,
}

impl Flavor {
    /// The flavor of mounts made with `ns` (or as root without one).
    pub(crate) fn of(ns: Option<&Arc<Namespace>>) -> Flavor {
        if ns.is_some() {
            Flavor::User
        } else {
            Flavor::Trusted
        }
    }

    /// The xattr marking a directory opaque (its lower contents hidden).
    pub(crate) fn opaque_xattr(self) -> &'static str {
        match self {
            Flavor::Trusted => "trusted.overlay.opaque",
            Flavor::User => "user.overlay.opaque",
        }
    }

    /// The xattr recording where a renamed directory came from.
    fn redirect_xattr(self) -> &'static str {
        match self {
            Flavor::Trusted => "trusted.overlay.redirect",
            Flavor::User => "user.overlay.redirect",
        }
    }

    /// Mount options besides the directories. As root, `redirect_dir=on` lets agents
    /// rename base directories (recorded as redirect xattrs, which [`collect`] reads);
    /// `userxattr` forbids redirects, so such renames fail with `EXDEV` there.
    /// `metacopy=off` keeps every changed file's data in the upper directory.
    fn options(self) -> &'static str {
        match self {
            Flavor::Trusted => "redirect_dir=on,metacopy=off,index=off",
            Flavor::User => "userxattr,metacopy=off,index=off",
        }
    }

    /// The run directory's subdirectory for folded layers (their opaque markers differ).
    pub(crate) fn flat_dir(self) -> &'static str {
        match self {
            Flavor::Trusted => "flat",
            Flavor::User => "flat-user",
        }
    }

    fn mode(self) -> OverlayMode {
        match self {
            Flavor::Trusted => OverlayMode::Mount,
            Flavor::User => OverlayMode::UserNamespace,
        }
    }
}

/// Checks that plain overlay mounts work in `run_dir`, returning why not.
pub(crate) fn probe_mount(run_dir: &Path) -> Result<(), String> {
    if !cfg!(target_os = "linux") {
        return Err("overlayfs needs Linux".into());
    }
    if !sys::is_root() {
        return Err("plain overlayfs mounts need root".into());
    }
    with_probe_dir(run_dir, "mount", |dir| {
        let [lower, upper, work, mnt] = probe_dirs(dir)?;
        sys::mount_overlay(&mnt, &options(Flavor::Trusted, &[lower], &upper, &work))
            .map_err(|e| e.to_string())?;
        sys::unmount(&mnt).map_err(|e| e.to_string())
    })
}

/// Creates a user namespace and checks that overlays mounted in it work in `run_dir`:
/// deleting a lower directory through the mount (which fails with `EIO` without
/// `userxattr`) and creating whiteouts for layers. Returns the namespace, or why not.
pub(crate) fn probe_user_namespace(run_dir: &Path) -> Result<Arc<Namespace>, String> {
    if !cfg!(target_os = "linux") {
        return Err("overlayfs needs Linux".into());
    }
    let ns = Arc::new(Namespace::create().map_err(|e| e.to_string())?);
    with_probe_dir(run_dir, "userns", |dir| {
        let [lower, upper, work, mnt] = probe_dirs(dir)?;
        let sub = lower.join("d");
        fs::create_dir(&sub).map_err(|e| format!("mkdir {}: {e}", sub.display()))?;
        fs::write(sub.join("f"), b"probe").map_err(|e| format!("write probe file: {e}"))?;
        sys::make_whiteout(&dir.join("whiteout"))
            .map_err(|e| format!("cannot create overlay whiteouts for layers: {e}"))?;
        ns.mount_overlay(&mnt, &options(Flavor::User, &[lower], &upper, &work))
            .map_err(|e| format!("mounting overlayfs in a user namespace failed: {e}"))?;
        let deleted = fs::remove_dir_all(ns.outside_path(&mnt).join("d"))
            .map_err(|e| format!("deleting a lower directory through the mount failed: {e}"));
        ns.unmount(&mnt)
            .map_err(|e| format!("unmounting the probe failed: {e}"))?;
        deleted
    })?;
    Ok(ns)
}

/// Runs `probe` in a fresh directory of `run_dir`, removing it afterwards.
fn with_probe_dir(
    run_dir: &Path,
    what: &str,
    probe: impl FnOnce(&Path) -> Result<(), String>,
) -> Result<(), String> {
    let dir = run_dir.join(format!(".probe-{what}-{}", std::process::id()));
    let _ = sys::remove_any(&dir);
    let result = probe(&dir);
    let _ = sys::remove_any(&dir);
    result
}

fn probe_dirs(dir: &Path) -> Result<[PathBuf; 4], String> {
    let dirs = ["lower", "upper", "work", "mnt"].map(|n| dir.join(n));
    for d in &dirs {
        fs::create_dir_all(d).map_err(|e| format!("mkdir {}: {e}", d.display()))?;
    }
    Ok(dirs)
}

/// The option string of a mount over `lowers` (topmost first).
fn options(flavor: Flavor, lowers: &[PathBuf], upper: &Path, work: &Path) -> String {
    format!(
        "lowerdir={},upperdir={},workdir={},{}",
        lowers
            .iter()
            .map(|p| escape(p))
            .collect::<Vec<_>>()
            .join(":"),
        escape(upper),
        escape(work),
        flavor.options()
    )
}

/// What [`Staging::overlay_mode`](crate::Staging::overlay_mode) reports.
pub(crate) fn mode(ns: Option<&Arc<Namespace>>) -> OverlayMode {
    Flavor::of(ns).mode()
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
    if let Some(layer) = stack.iter().find(|l| !l.whiteouts) {
        return Err(StagingError::BackendUnavailable {
            backend: crate::Backend::Overlay,
            reason: format!(
                "layer {} of this run directory was written without whiteouts",
                layer.tree.display()
            ),
        });
    }
    let flavor = Flavor::of(inner.ns.as_ref());
    let lowers = lower_dirs(inner, stack, flavor)?;
    let [upper, work, mnt] = ["upper", "work", "mnt"].map(|n| dir.join(n));
    for d in [&upper, &work, &mnt] {
        fs::create_dir(d).map_err(StagingError::io("mkdir", d))?;
    }
    let data = options(flavor, &lowers, &upper, &work);
    let Some(ns) = &inner.ns else {
        sys::mount_overlay(&mnt, &data)?;
        return Ok(ViewState::Overlay {
            upper,
            outside: mnt.clone(),
            mnt,
            namespace: None,
        });
    };
    let mount_err = |source| StagingError::Mount {
        op: "mount (in the user namespace)",
        path: mnt.clone(),
        source,
    };
    let namespace = ViewNamespace::new(Arc::clone(ns), &mnt).map_err(mount_err)?;
    ns.mount_overlay(&mnt, &data).map_err(mount_err)?;
    Ok(ViewState::Overlay {
        upper,
        outside: ns.outside_path(&mnt),
        mnt,
        namespace: Some(namespace),
    })
}

/// Unmounts a view's overlay at `mnt`.
pub(crate) fn unmount(inner: &Inner, mnt: &Path) -> Result<()> {
    match &inner.ns {
        None => sys::unmount(mnt),
        Some(ns) => ns.unmount(mnt).map_err(|source| StagingError::Mount {
            op: "unmount (in the user namespace)",
            path: mnt.to_owned(),
            source,
        }),
    }
}

/// The lower directories for a view of `stack`'s generation, topmost first, folding the
/// bottom of the stack into one layer when it would not fit into one mount.
fn lower_dirs(inner: &Inner, stack: &[Arc<Layer>], flavor: Flavor) -> Result<Vec<PathBuf>> {
    let generation = stack.len();
    let max_layers = inner.opts.max_overlay_layers.clamp(2, 499);
    let repo_len = escape(&inner.repo).len() + 1;
    let mut budget =
        OPTION_BUDGET.saturating_sub(repo_len + 2 * (inner.run_dir.as_os_str().len() + 40));
    // How many of the top layers fit as themselves, keeping room for one folded layer.
    let fold_len = inner
        .run_dir
        .join(flavor.flat_dir())
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
        let flat = flat_layer(inner, stack, bottom, flavor)?;
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
fn flat_layer(
    inner: &Inner,
    stack: &[Arc<Layer>],
    at_least: usize,
    flavor: Flavor,
) -> Result<(PathBuf, usize)> {
    let flat_dir = inner.run_dir.join(flavor.flat_dir());
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
                    sys::set_xattr(&disk, flavor.opaque_xattr(), b"y")
                        .map_err(StagingError::io("set opaque xattr", &disk))?;
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
    if let Some(ns) = &inner.ns
        && !ns.is_alive()
    {
        return Err(StagingError::Mount {
            op: "collect",
            path: mnt.to_owned(),
            source: std::io::Error::other(format!(
                "the process holding the user namespace (pid {}) has exited: the view is unreachable from this process",
                ns.holder_pid()
            )),
        });
    }
    let flavor = Flavor::of(inner.ns.as_ref());
    let mut c = Collector::new(inner, generation);
    walk_upper(&mut c, flavor, upper, mnt, "")?;
    c.finish()
}

fn walk_upper(
    c: &mut Collector<'_>,
    flavor: Flavor,
    upper: &Path,
    mnt: &Path,
    dir: &str,
) -> Result<()> {
    let disk_dir = upper.join(dir);
    let items = fs::read_dir(&disk_dir).map_err(StagingError::io("read dir", &disk_dir))?;
    for item in items {
        let item = item.map_err(StagingError::io("read dir", &disk_dir))?;
        let name = item.file_name();
        let Some(name_str) = name.to_str() else {
            c.reject(lossy(dir, &name), RejectReason::NonUtf8Name);
            continue;
        };
        let path = paths::join(dir, name_str);
        let disk = item.path();
        let meta = fs::symlink_metadata(&disk).map_err(StagingError::io("stat", &disk))?;
        if c.inner.ignores.is_ignored_child(&path, meta.is_dir()) {
            continue;
        }
        if sys::is_whiteout(&meta) {
            if c.reject_if_special_deleted(&path)? {
                continue;
            }
            let old = c.old(&path)?;
            c.emit(&path, old, None)?;
        } else if meta.is_dir() {
            let opaque = sys::get_xattr(&disk, flavor.opaque_xattr())
                .map_err(StagingError::io("read xattr", &disk))?
                .is_some_and(|v| v == b"y");
            let redirect = sys::get_xattr(&disk, flavor.redirect_xattr())
                .map_err(StagingError::io("read xattr", &disk))?;
            let old = c.old(&path)?;
            let was_dir = old.as_ref().is_some_and(|l| l.kind == EntryKind::Dir);
            if opaque || redirect.is_some() || !was_dir {
                // The directory's contents no longer merge with the generation's at this
                // path: compare the whole merged subtree.
                c.emit(&path, old, Some(Entry::Dir))?;
                compare_subtree(c, mnt, &path, was_dir)?;
            } else {
                walk_upper(c, flavor, upper, mnt, &path)?;
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
            let path = paths::join(&d, name_str);
            let disk = item.path();
            let meta = fs::symlink_metadata(&disk).map_err(StagingError::io("stat", &disk))?;
            if c.inner.ignores.is_ignored_child(&path, meta.is_dir()) {
                continue;
            }
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
    reject_deleted_specials(c, mnt, dir)?;
    // Whatever the generation had below `dir` and the view lacks was deleted.
    // Descendants of a vanished directory are in `old` too: each gets its own deletion.
    for (path, loc) in old {
        if !c
            .inner
            .ignores
            .is_ignored(&path, loc.kind == EntryKind::Dir)
        {
            c.emit_deleted_path(&path);
        }
    }
    Ok(())
}

/// Rejects the repository's special files below `dir` (in directories the generation
/// still has) that the mounted view no longer shows: deleted, which cannot be merged.
fn reject_deleted_specials(c: &mut Collector<'_>, mnt: &Path, dir: &str) -> Result<()> {
    let mut pending = vec![dir.to_owned()];
    while let Some(d) = pending.pop() {
        let disk_dir = c.inner.repo.join(&d);
        let Ok(items) = fs::read_dir(&disk_dir) else {
            continue;
        };
        for item in items {
            let item = item.map_err(StagingError::io("read dir", &disk_dir))?;
            let Some(name) = item.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            let path = paths::join(&d, &name);
            let ft = item
                .file_type()
                .map_err(StagingError::io("stat", item.path()))?;
            if ft.is_dir() {
                let in_generation = c.old(&path)?.is_some_and(|l| l.kind == EntryKind::Dir);
                if in_generation && !c.inner.ignores.is_ignored_child(&path, true) {
                    pending.push(path);
                }
            } else if !ft.is_file() && !ft.is_symlink() {
                let still_there =
                    fs::symlink_metadata(mnt.join(&path)).is_ok_and(|m| sys::kind_of(&m).is_none());
                if !still_there {
                    c.reject_if_special_deleted(&path)?;
                }
            }
        }
    }
    Ok(())
}
