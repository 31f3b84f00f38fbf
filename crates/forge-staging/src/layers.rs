//! Immutable generation layers: the store under `run_dir/layers`, lookups through the stack
//! (`base@g` for the merger), atomic commits, and folding a stack into one layer.
//!
//! Layer `k` is `layers/k/tree` (the changed files, in the form overlayfs takes as a lower
//! directory: deletions as whiteouts) plus `layers/k/manifest.json` (every operation, so
//! lookups never scan the tree and backends without whiteouts can read it). A layer is
//! written under a temporary name, fsynced, and renamed into place: a directory named by a
//! plain number is complete.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};

use crate::error::{Result, StagingError};
use crate::ignores::Ignores;
use crate::paths;
use crate::sys;
use crate::types::{Entry, EntryKind, LayerChange};

/// One operation of a layer on one path.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Op {
    /// A regular, non-executable file.
    File,
    /// An executable file.
    Exec,
    /// A symlink.
    Symlink,
    /// A directory that merges with what lies below.
    Dir,
    /// A directory that hides what lies below (only in folded layers).
    Opaque,
    /// The path and everything below it are gone.
    Delete,
}

impl Op {
    /// Whether this op hides everything strictly below its path in lower layers.
    fn hides_below(self) -> bool {
        !matches!(self, Op::Dir)
    }

    /// Whether this op leaves a directory at its path.
    pub(crate) fn is_dir(self) -> bool {
        matches!(self, Op::Dir | Op::Opaque)
    }

    fn of_entry(entry: &Entry) -> Op {
        match entry {
            Entry::File {
                executable: true, ..
            } => Op::Exec,
            Entry::File { .. } => Op::File,
            Entry::Symlink { .. } => Op::Symlink,
            Entry::Dir => Op::Dir,
        }
    }
}

#[derive(Serialize, Deserialize)]
pub(crate) struct Manifest {
    pub(crate) generation: u64,
    whiteouts: bool,
    pub(crate) ops: Vec<(String, Op)>,
    /// Who committed the layer (forge-core: the task id), so that a run can be reconciled
    /// from its layers when its journal is damaged. Absent in older layers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) label: Option<String>,
}

/// Reads the manifest of the committed layer `generation` in the layer store `dir`.
pub(crate) fn read_manifest(dir: &Path, generation: u64) -> Result<Manifest> {
    let path = layer_dir_name(dir, generation).join("manifest.json");
    let text = fs::read(&path).map_err(StagingError::io("read", &path))?;
    let manifest: Manifest = serde_json::from_slice(&text).map_err(|e| StagingError::Corrupt {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    if manifest.generation != generation {
        return Err(StagingError::Corrupt {
            path,
            reason: format!("manifest says generation {}", manifest.generation),
        });
    }
    Ok(manifest)
}

/// One committed layer, loaded.
#[derive(Debug)]
pub(crate) struct Layer {
    /// Its tree directory (`layers/k/tree`).
    pub(crate) tree: PathBuf,
    /// Its operations by path.
    pub(crate) ops: BTreeMap<String, Op>,
    /// Whether its tree holds whiteouts for deletions (so it can be an overlay lower).
    pub(crate) whiteouts: bool,
    /// The label it was committed with.
    pub(crate) label: Option<String>,
}

/// Where a path's state at some generation lives on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Located {
    /// Its kind.
    pub(crate) kind: EntryKind,
    /// The file, link or directory holding it (in the repository or a layer tree).
    pub(crate) disk: PathBuf,
}

/// The layers of a run directory.
#[derive(Debug)]
pub(crate) struct Store {
    repo: PathBuf,
    dir: PathBuf,
    whiteouts: bool,
    layers: RwLock<Vec<Arc<Layer>>>,
    /// Generations below this were folded into the repository by a publish.
    oldest: AtomicU64,
    commit_lock: Mutex<()>,
}

fn layer_dir_name(dir: &Path, generation: u64) -> PathBuf {
    dir.join(generation.to_string())
}

impl Store {
    /// Opens (creating if needed) the layer store `dir` over `repo`, loading every committed
    /// layer and removing half-written ones. Whiteouts are written when `whiteouts`.
    pub(crate) fn open(repo: &Path, dir: &Path, whiteouts: bool) -> Result<(Store, Vec<PathBuf>)> {
        fs::create_dir_all(dir).map_err(StagingError::io("mkdir", dir))?;
        let mut removed = Vec::new();
        let mut found = BTreeMap::new();
        for item in fs::read_dir(dir).map_err(StagingError::io("read dir", dir))? {
            let item = item.map_err(StagingError::io("read dir", dir))?;
            let name = item.file_name();
            match name.to_str().and_then(|n| n.parse::<u64>().ok()) {
                Some(generation) if generation > 0 => {
                    found.insert(generation, item.path());
                }
                _ => {
                    sys::remove_any(&item.path())?;
                    removed.push(item.path());
                }
            }
        }
        let mut layers = Vec::new();
        for (idx, (generation, path)) in found.into_iter().enumerate() {
            if generation != idx as u64 + 1 {
                return Err(StagingError::Corrupt {
                    path,
                    reason: format!(
                        "layer {generation} found where layer {} was expected",
                        idx + 1
                    ),
                });
            }
            let manifest_path = path.join("manifest.json");
            let text =
                fs::read(&manifest_path).map_err(StagingError::io("read", &manifest_path))?;
            let manifest: Manifest =
                serde_json::from_slice(&text).map_err(|e| StagingError::Corrupt {
                    path: manifest_path.clone(),
                    reason: e.to_string(),
                })?;
            if manifest.generation != generation {
                return Err(StagingError::Corrupt {
                    path: manifest_path,
                    reason: format!("manifest says generation {}", manifest.generation),
                });
            }
            layers.push(Arc::new(Layer {
                tree: path.join("tree"),
                ops: manifest.ops.into_iter().collect(),
                whiteouts: manifest.whiteouts,
                label: manifest.label,
            }));
        }
        let store = Store {
            repo: repo.to_owned(),
            dir: dir.to_owned(),
            whiteouts,
            layers: RwLock::new(layers),
            oldest: AtomicU64::new(0),
            commit_lock: Mutex::new(()),
        };
        Ok((store, removed))
    }

    /// The repository (generation 0).
    pub(crate) fn repo(&self) -> &Path {
        &self.repo
    }

    /// The newest generation.
    pub(crate) fn head(&self) -> u64 {
        self.layers.read().len() as u64
    }

    /// The oldest readable generation.
    pub(crate) fn oldest(&self) -> u64 {
        self.oldest.load(Ordering::Acquire)
    }

    /// Marks generations below `generation` as folded into the repository.
    pub(crate) fn set_oldest(&self, generation: u64) {
        self.oldest.fetch_max(generation, Ordering::AcqRel);
    }

    /// Layers `1..=generation`, oldest first, after checking that it is readable.
    pub(crate) fn stack(&self, generation: u64) -> Result<Vec<Arc<Layer>>> {
        let layers = self.layers.read();
        let head = layers.len() as u64;
        let oldest = self.oldest();
        if generation > head || generation < oldest {
            return Err(StagingError::NoSuchGeneration {
                generation,
                oldest,
                head,
            });
        }
        Ok(layers[..generation as usize].to_vec())
    }

    /// Where `path` lives at `generation`, `None` if absent there.
    pub(crate) fn lookup(&self, generation: u64, path: &str) -> Result<Option<Located>> {
        paths::validate(path)?;
        let stack = self.stack(generation)?;
        lookup_in(&stack, &self.repo, path)
    }

    /// The entry at `path` in `generation`.
    pub(crate) fn read(&self, generation: u64, path: &str) -> Result<Option<Entry>> {
        match self.lookup(generation, path)? {
            None => Ok(None),
            Some(loc) => sys::read_entry(&loc.disk),
        }
    }

    /// Every path strictly below the directory `dir` (`""` = root) at `generation`, with
    /// where it lives, in no particular order.
    pub(crate) fn subtree(&self, generation: u64, dir: &str) -> Result<Vec<(String, Located)>> {
        let stack = self.stack(generation)?;
        let mut out = Vec::new();
        let mut pending = vec![dir.to_owned()];
        while let Some(d) = pending.pop() {
            for (name, loc) in children_in(&stack, &self.repo, &d)? {
                let child = paths::join(&d, &name);
                if loc.kind == EntryKind::Dir {
                    pending.push(child.clone());
                }
                out.push((child, loc));
            }
        }
        Ok(out)
    }

    /// The first path below the directory `dir` of `generation` that `ignores` ignores
    /// (ignored directories are not entered), if any.
    pub(crate) fn first_ignored_below(
        &self,
        generation: u64,
        dir: &str,
        ignores: &Ignores,
    ) -> Result<Option<String>> {
        let stack = self.stack(generation)?;
        first_ignored_in(&stack, &self.repo, dir, ignores)
    }

    /// Whether the repository's entry at `path` shows through every layer of
    /// `generation` (no layer replaces or deletes it or one of its ancestors).
    pub(crate) fn reaches_repo(&self, generation: u64, path: &str) -> Result<bool> {
        let stack = self.stack(generation)?;
        Ok(stack.iter().all(|layer| {
            !layer.ops.contains_key(path)
                && !paths::ancestors(path)
                    .any(|a| layer.ops.get(a).is_some_and(|op| op.hides_below()))
        }))
    }

    /// Each committed generation with its label, oldest first.
    pub(crate) fn labels(&self) -> Vec<(u64, Option<String>)> {
        let layers = self.layers.read();
        (1..).zip(layers.iter().map(|l| l.label.clone())).collect()
    }

    /// [`Store::commit`] with no ignored paths but `.git`, for tests.
    #[cfg(test)]
    pub(crate) fn commit_plain(&self, changes: &[LayerChange]) -> Result<u64> {
        self.commit(changes, &Ignores::plain(&[], false))
    }

    /// Writes `changes` as layer head+1, atomically, and returns its generation. Deleting
    /// a directory that holds paths `ignores` ignores deletes its other entries and keeps
    /// those (and the directories above them).
    pub(crate) fn commit(&self, changes: &[LayerChange], ignores: &Ignores) -> Result<u64> {
        self.commit_labelled(changes, ignores, None)
    }

    /// As [`commit`](Self::commit), with `label` in the manifest. On failure the temporary
    /// layer is removed (best effort).
    pub(crate) fn commit_labelled(
        &self,
        changes: &[LayerChange],
        ignores: &Ignores,
        label: Option<&str>,
    ) -> Result<u64> {
        let _serial = self.commit_lock.lock();
        let head = self.head();
        let generation = head + 1;
        let stack = self.stack(head)?;
        let ops = plan_ops(&stack, &self.repo, changes, ignores)?;

        let tmp = self
            .dir
            .join(format!(".tmp-{generation}-{}", std::process::id()));
        sys::remove_any(&tmp)?;
        let layer = self.write_layer(&tmp, generation, &ops, label);
        if layer.is_err() {
            // A full disk must not also keep the half-written layer (`open` would remove it,
            // but only at the next resume).
            let _ = sys::remove_any(&tmp);
        }
        self.layers.write().push(Arc::new(layer?));
        Ok(generation)
    }

    /// Writes layer `generation` under `tmp` and renames it into place.
    fn write_layer(
        &self,
        tmp: &Path,
        generation: u64,
        ops: &[(String, Option<Entry>)],
        label: Option<&str>,
    ) -> Result<Layer> {
        let tree = tmp.join("tree");
        fs::create_dir_all(&tree).map_err(StagingError::io("mkdir", &tree))?;
        let mut dirs = vec![tree.clone()];
        let mut files = Vec::new();
        let mut manifest_ops = Vec::with_capacity(ops.len());
        for (path, entry) in ops {
            let disk = tree.join(path);
            if let Some(parent) = paths::parent(path) {
                let parent_disk = tree.join(parent);
                if !parent_disk.is_dir() {
                    fs::create_dir_all(&parent_disk)
                        .map_err(StagingError::io("mkdir", &parent_disk))?;
                    dirs.push(parent_disk);
                }
            }
            match entry {
                Some(Entry::Dir) => {
                    if !disk.is_dir() {
                        fs::create_dir(&disk).map_err(StagingError::io("mkdir", &disk))?;
                    }
                    dirs.push(disk);
                    manifest_ops.push((path.clone(), Op::Dir));
                }
                Some(e) => {
                    sys::write_entry(&disk, e, false)?;
                    if matches!(e, Entry::File { .. }) {
                        files.push(disk);
                    }
                    manifest_ops.push((path.clone(), Op::of_entry(e)));
                }
                None => {
                    if self.whiteouts {
                        sys::make_whiteout(&disk)
                            .map_err(StagingError::io("mknod whiteout", &disk))?;
                    }
                    manifest_ops.push((path.clone(), Op::Delete));
                }
            }
        }
        let manifest = Manifest {
            generation,
            whiteouts: self.whiteouts,
            ops: manifest_ops,
            label: label.map(str::to_owned),
        };
        let manifest_path = tmp.join("manifest.json");
        let text = serde_json::to_vec(&manifest).map_err(|e| StagingError::Corrupt {
            path: manifest_path.clone(),
            reason: e.to_string(),
        })?;
        fs::write(&manifest_path, &text).map_err(StagingError::io("write", &manifest_path))?;
        // Everything in the temporary layer must be durable before the rename publishes it;
        // in which order does not matter, so the fsyncs run at once (the file system can
        // group them into one journal commit instead of one each).
        dirs.sort();
        dirs.dedup();
        files.push(manifest_path);
        files.extend(dirs);
        files.push(tmp.to_path_buf());
        sys::fsync_all(&files)?;
        let final_dir = layer_dir_name(&self.dir, generation);
        fs::rename(tmp, &final_dir).map_err(StagingError::io("rename", &final_dir))?;
        sys::fsync_dir(&self.dir)?;
        Ok(Layer {
            tree: final_dir.join("tree"),
            ops: manifest.ops.into_iter().collect(),
            whiteouts: manifest.whiteouts,
            label: manifest.label,
        })
    }
}

/// Writes `data` to a new file `path` and fsyncs it.
pub(crate) fn write_synced(path: &Path, data: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut f = fs::File::create(path).map_err(StagingError::io("create", path))?;
    f.write_all(data).map_err(StagingError::io("write", path))?;
    f.sync_all().map_err(StagingError::io("fsync", path))
}

/// Looks `path` up through `stack` (oldest first) and then `repo`.
pub(crate) fn lookup_in(stack: &[Arc<Layer>], repo: &Path, path: &str) -> Result<Option<Located>> {
    for layer in stack.iter().rev() {
        if let Some(op) = layer.ops.get(path) {
            return Ok(match op {
                Op::Delete => None,
                Op::File | Op::Exec => Some(Located {
                    kind: EntryKind::File,
                    disk: layer.tree.join(path),
                }),
                Op::Symlink => Some(Located {
                    kind: EntryKind::Symlink,
                    disk: layer.tree.join(path),
                }),
                Op::Dir | Op::Opaque => Some(Located {
                    kind: EntryKind::Dir,
                    disk: layer.tree.join(path),
                }),
            });
        }
        if paths::ancestors(path).any(|a| layer.ops.get(a).is_some_and(|op| op.hides_below())) {
            return Ok(None);
        }
    }
    lookup_base(repo, path)
}

/// Looks `path` up in the repository, never through a symlinked directory.
fn lookup_base(repo: &Path, path: &str) -> Result<Option<Located>> {
    let disk = repo.join(path);
    let meta = match fs::symlink_metadata(&disk) {
        Ok(m) => m,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
            ) =>
        {
            return Ok(None);
        }
        Err(e) => return Err(StagingError::io("stat", &disk)(e)),
    };
    let Some(kind) = sys::kind_of(&meta) else {
        return Ok(None);
    };
    // The kernel followed any symlinks among the ancestors: make sure there were none.
    for anc in paths::ancestors(path) {
        let anc_disk = repo.join(anc);
        let is_dir = fs::symlink_metadata(&anc_disk)
            .map(|m| m.is_dir())
            .unwrap_or(false);
        if !is_dir {
            return Ok(None);
        }
    }
    Ok(Some(Located { kind, disk }))
}

/// The children of directory `dir` (`""` = root) through `stack` and `repo`.
pub(crate) fn children_in(
    stack: &[Arc<Layer>],
    repo: &Path,
    dir: &str,
) -> Result<Vec<(String, Located)>> {
    let mut names = std::collections::BTreeSet::new();
    let mut reaches_base = true;
    for layer in stack.iter().rev() {
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        for (p, _) in layer.ops.range(prefix.clone()..) {
            let Some(rest) = p.strip_prefix(&prefix) else {
                break;
            };
            let name = rest.split('/').next().unwrap_or(rest);
            names.insert(name.to_owned());
        }
        if !dir.is_empty() {
            let hidden = layer.ops.get(dir).is_some_and(|op| op.hides_below())
                || paths::ancestors(dir)
                    .any(|a| layer.ops.get(a).is_some_and(|op| op.hides_below()));
            if hidden {
                reaches_base = false;
                break;
            }
        }
    }
    if reaches_base {
        let disk = repo.join(dir);
        match fs::read_dir(&disk) {
            Ok(rd) => {
                for item in rd {
                    let item = item.map_err(StagingError::io("read dir", &disk))?;
                    if let Some(name) = item.file_name().to_str() {
                        names.insert(name.to_owned());
                    }
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) => {}
            Err(e) => return Err(StagingError::io("read dir", &disk)(e)),
        }
    }
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        if let Some(loc) = lookup_in(stack, repo, &paths::join(dir, &name))? {
            out.push((name, loc));
        }
    }
    Ok(out)
}

/// Validates `changes` against the head `stack` and reduces them to the operations a layer
/// must record, sorted by path.
fn plan_ops(
    stack: &[Arc<Layer>],
    repo: &Path,
    changes: &[LayerChange],
    ignores: &Ignores,
) -> Result<Vec<(String, Option<Entry>)>> {
    let mut by_path: BTreeMap<&str, &Option<Entry>> = BTreeMap::new();
    for change in changes {
        paths::validate(&change.path)?;
        if by_path.insert(&change.path, &change.entry).is_some() {
            return Err(StagingError::InvalidChange {
                path: change.path.clone(),
                reason: "listed twice".into(),
            });
        }
    }
    let mut ops = Vec::new();
    let mut implicit = std::collections::BTreeSet::new();
    let mut keeps_ignored = false;
    for (&path, &entry) in &by_path {
        // A path below a deleted or non-directory ancestor of this same change set.
        let covered = paths::ancestors(path).find(|a| {
            by_path
                .get(a)
                .is_some_and(|e| !matches!(e, Some(Entry::Dir)))
        });
        if let Some(anc) = covered {
            if entry.is_none() {
                continue;
            }
            return Err(StagingError::InvalidChange {
                path: path.to_owned(),
                reason: format!(
                    "its parent {anc} is deleted or not a directory in the same change set"
                ),
            });
        }
        let current = lookup_in(stack, repo, path)?;
        match entry {
            None => match current.map(|l| l.kind) {
                None => {}
                Some(EntryKind::Dir) => {
                    let mut below = Vec::new();
                    if plan_dir_delete(stack, repo, path, ignores, &mut below)? {
                        ops.extend(below.into_iter().map(|p| (p, None)));
                        keeps_ignored = true;
                    } else {
                        ops.push((path.to_owned(), None));
                    }
                }
                Some(_) => ops.push((path.to_owned(), None)),
            },
            Some(e) => {
                // Parents must be directories; absent ones are created implicitly (another
                // task may have removed a directory this change set still writes into).
                for anc in paths::ancestors(path) {
                    let state = match by_path.get(anc) {
                        Some(Some(Entry::Dir)) => break,
                        Some(_) => Some(EntryKind::File),
                        None => lookup_in(stack, repo, anc)?.map(|l| l.kind),
                    };
                    match state {
                        Some(EntryKind::Dir) => break,
                        Some(_) => {
                            return Err(StagingError::InvalidChange {
                                path: path.to_owned(),
                                reason: format!("its ancestor {anc} is not a directory"),
                            });
                        }
                        None => {
                            implicit.insert(anc.to_owned());
                        }
                    }
                }
                if matches!(e, Entry::Dir)
                    && current.as_ref().is_some_and(|l| l.kind == EntryKind::Dir)
                {
                    continue;
                }
                ops.push((path.to_owned(), Some(e.clone())));
            }
        }
    }
    if !implicit.is_empty() || keeps_ignored {
        ops.extend(implicit.into_iter().map(|d| (d, Some(Entry::Dir))));
        ops.sort_by(|a, b| a.0.cmp(&b.0));
    }
    Ok(ops)
}

/// Plans deleting the directory `dir` of the head `stack`: when nothing below it is
/// ignored returns `false` (delete it whole); otherwise appends the deletions of its
/// entries that are not ignored (directories that hold ignored paths recursively, never
/// whole) to `out` and returns `true` (`dir` stays).
fn plan_dir_delete(
    stack: &[Arc<Layer>],
    repo: &Path,
    dir: &str,
    ignores: &Ignores,
    out: &mut Vec<String>,
) -> Result<bool> {
    let mut keeps = false;
    let mut mine = Vec::new();
    for (name, loc) in children_in(stack, repo, dir)? {
        let child = paths::join(dir, &name);
        let is_dir = loc.kind == EntryKind::Dir;
        // An ignored entry stays, and so does a directory holding one.
        if ignores.is_ignored_child(&child, is_dir)
            || (is_dir && plan_dir_delete(stack, repo, &child, ignores, &mut mine)?)
        {
            keeps = true;
        } else {
            mine.push(child);
        }
    }
    if keeps {
        out.append(&mut mine);
    }
    Ok(keeps)
}

/// The first path below the directory `dir` of `stack` that `ignores` ignores, entering
/// only directories that are not ignored.
fn first_ignored_in(
    stack: &[Arc<Layer>],
    repo: &Path,
    dir: &str,
    ignores: &Ignores,
) -> Result<Option<String>> {
    let mut pending = vec![dir.to_owned()];
    while let Some(d) = pending.pop() {
        for (name, loc) in children_in(stack, repo, &d)? {
            let child = paths::join(&d, &name);
            let is_dir = loc.kind == EntryKind::Dir;
            if ignores.is_ignored_child(&child, is_dir) {
                return Ok(Some(child));
            }
            if is_dir {
                pending.push(child);
            }
        }
    }
    Ok(None)
}

/// One entry of a folded stack: the op and the layer tree that holds its data.
#[derive(Clone, Debug)]
pub(crate) struct Folded {
    /// The op.
    pub(crate) op: Op,
    /// The file or link in a layer tree (for data-carrying ops).
    pub(crate) source: PathBuf,
}

/// Folds `stack` (oldest first) into one layer's worth of operations relative to the
/// repository: the net effect of generations 1..=n on every path they touch.
pub(crate) fn fold(stack: &[Arc<Layer>]) -> BTreeMap<String, Folded> {
    let mut acc: BTreeMap<String, Folded> = BTreeMap::new();
    for layer in stack {
        for (path, &op) in &layer.ops {
            let source = layer.tree.join(path);
            let previous = acc.get(path).map(|f| f.op);
            let op = match op {
                Op::Dir => match previous {
                    Some(Op::Dir) | Some(Op::Opaque) => continue,
                    Some(_) => Op::Opaque,
                    None => Op::Dir,
                },
                other => other,
            };
            if op.hides_below() {
                let prefix = format!("{path}/");
                let below: Vec<String> = acc
                    .range(prefix.clone()..)
                    .take_while(|(p, _)| p.starts_with(&prefix))
                    .map(|(p, _)| p.clone())
                    .collect();
                for p in below {
                    acc.remove(&p);
                }
            }
            acc.insert(path.clone(), Folded { op, source });
        }
    }
    acc
}

#[cfg(test)]
mod tests;
