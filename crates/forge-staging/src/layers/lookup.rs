//! Lookups through a stack of layers and then the repository: where a path's state at some
//! generation lives on disk, and the children of a directory.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{Layer, Op};
use crate::error::{Result, StagingError};
use crate::paths;
use crate::sys;
use crate::types::EntryKind;

/// Where a path's state at some generation lives on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Located {
    /// Its kind.
    pub(crate) kind: EntryKind,
    /// The file, link or directory holding it (in the repository or a layer tree).
    pub(crate) disk: PathBuf,
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
