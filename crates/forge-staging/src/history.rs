//! Reading a committed layer back as what its generation changed, without opening a
//! [`Staging`](crate::Staging): what turns generations into commits (one per merged task)
//! needs only the run directory.

use std::path::{Path, PathBuf};

use crate::base;
use crate::error::{Result, StagingError};
use crate::layers::{self, Op};

/// What generation `g` did to one path, as its layer stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LayerEntry {
    /// A regular file, whose content is the file `disk` inside the layer (read it from
    /// there: it is never copied into memory here).
    File {
        /// The layer's copy of the file.
        disk: PathBuf,
        /// Whether it is executable.
        executable: bool,
    },
    /// A symbolic link.
    Symlink {
        /// Where it points.
        target: PathBuf,
    },
    /// A directory (it may be new, or replace a file; it adds nothing by itself).
    Dir,
    /// The path and everything below it that generation `g - 1` had are gone.
    Deleted,
}

/// The paths generation `generation` (1 or more) changed over the one before, in the
/// layer's order (a parent before its children), read from the run directory `run_dir`.
///
/// Works whether or not the run was published (publishing keeps the layers).
///
/// # Errors
///
/// The layer does not exist (`generation` is 0 or was never committed), or its manifest or
/// one of its symlinks cannot be read.
pub fn read_layer(run_dir: &Path, generation: u64) -> Result<Vec<(String, LayerEntry)>> {
    let dir = run_dir.join("layers");
    let manifest = layers::read_manifest(&dir, generation)?;
    let tree = dir.join(generation.to_string()).join("tree");
    manifest
        .ops
        .into_iter()
        .map(|(path, op)| {
            let disk = tree.join(&path);
            let entry = match op {
                Op::File | Op::Exec => LayerEntry::File {
                    disk,
                    executable: op == Op::Exec,
                },
                Op::Symlink => LayerEntry::Symlink {
                    target: std::fs::read_link(&disk)
                        .map_err(StagingError::io("readlink", &disk))?,
                },
                Op::Dir | Op::Opaque => LayerEntry::Dir,
                Op::Delete => LayerEntry::Deleted,
            };
            Ok((path, entry))
        })
        .collect()
}

/// Every committed layer of the run in `run_dir`, oldest first, with the label it was
/// committed with ([`Staging::commit_for`](crate::Staging::commit_for): for forge-core, the
/// task id): what the layers on disk say was committed, whatever a journal says.
///
/// # Errors
///
/// The layer directory cannot be listed, a manifest cannot be read, or the generations are
/// not 1, 2, ... without a gap.
pub fn layer_labels(run_dir: &Path) -> Result<Vec<(u64, Option<String>)>> {
    let dir = run_dir.join("layers");
    let mut generations = Vec::new();
    let listing = match std::fs::read_dir(&dir) {
        Ok(listing) => listing,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StagingError::io("read dir", &dir)(e)),
    };
    for item in listing {
        let item = item.map_err(StagingError::io("read dir", &dir))?;
        if let Some(g) = item
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u64>().ok())
            && g > 0
        {
            generations.push(g);
        }
    }
    generations.sort_unstable();
    let mut out = Vec::with_capacity(generations.len());
    for (idx, g) in generations.into_iter().enumerate() {
        if g != idx as u64 + 1 {
            return Err(StagingError::Corrupt {
                path: dir.join(g.to_string()),
                reason: format!("layer {g} found where layer {} was expected", idx + 1),
            });
        }
        out.push((g, layers::read_manifest(&dir, g)?.label));
    }
    Ok(out)
}

/// The git tree recording the working tree as the run in `run_dir` saw it when it started
/// (tracked and untracked files that are not ignored), `None` when the run did not start in
/// a git work tree.
///
/// # Errors
///
/// The run directory's snapshot record cannot be read.
pub fn base_tree(run_dir: &Path) -> Result<Option<String>> {
    Ok(base_commit(run_dir)?.map(|(tree, _)| tree))
}

/// The git tree of the working tree as the run in `run_dir` started ([`base_tree`]) and
/// the commit `HEAD` named then (`None` in a repository without commits, or a run
/// directory written before this was recorded); `None` when the run did not start in a git
/// work tree.
///
/// # Errors
///
/// The run directory's snapshot record cannot be read.
pub fn base_commit(run_dir: &Path) -> Result<Option<(String, Option<String>)>> {
    Ok(match base::read_record(run_dir)? {
        Some(base::Record::Git { tree, head, .. }) => Some((tree, head)),
        Some(base::Record::Fingerprint { .. }) | None => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Backend, Entry, LayerChange, Staging, StagingOptions};

    #[test]
    fn layers_read_back_as_committed() {
        let tmp = tempfile::tempdir().expect("tmp");
        let repo = tmp.path().join("repo");
        std::fs::create_dir_all(repo.join("d")).expect("mkdir");
        std::fs::write(repo.join("d/old"), "old\n").expect("write");
        let run_dir = tmp.path().join("run");
        let staging = Staging::open(
            &repo,
            &run_dir,
            StagingOptions::with_backend(Some(Backend::Copy)),
        )
        .expect("open");
        let generation = staging
            .commit(&[
                LayerChange {
                    path: "a.sh".into(),
                    entry: Some(Entry::File {
                        data: b"echo\n".to_vec(),
                        executable: true,
                    }),
                },
                LayerChange {
                    path: "d".into(),
                    entry: None,
                },
                LayerChange {
                    path: "l".into(),
                    entry: Some(Entry::Symlink {
                        target: "a.sh".into(),
                    }),
                },
            ])
            .expect("commit");
        let entries = read_layer(&run_dir, generation).expect("read");
        let names: Vec<&str> = entries.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(names, ["a.sh", "d", "l"]);
        match &entries[0].1 {
            LayerEntry::File { disk, executable } => {
                assert!(*executable);
                assert_eq!(std::fs::read(disk).expect("read"), b"echo\n");
            }
            other => panic!("a.sh: {other:?}"),
        }
        assert_eq!(entries[1].1, LayerEntry::Deleted);
        assert_eq!(
            entries[2].1,
            LayerEntry::Symlink {
                target: "a.sh".into()
            }
        );
        assert!(read_layer(&run_dir, 0).is_err());
        assert!(read_layer(&run_dir, 2).is_err());
    }
}
