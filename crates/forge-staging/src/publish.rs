//! Publishing: writing a generation into the repository on disk, crash-safely.
//!
//! A record (`run_dir/publish.json`) names the target generation before the first byte of
//! the repository changes; each path is then replaced by temp file, fsync and rename.
//! Every step is idempotent, so after a crash the next publish simply runs again over the
//! same record. Reading generations older than the target stops being possible as soon as
//! the record exists (the repository is no longer their base), while the target and newer
//! generations read correctly even from a half-published repository: their layers hide
//! every path a publish touches.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Result, StagingError};
use crate::layers::{self, Op, write_synced};
use crate::paths;
use crate::staging::Inner;
use crate::sys;
use crate::types::PublishReport;

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
struct Record {
    /// The generation the repository held before this publish.
    from: u64,
    /// The generation being written.
    generation: u64,
    /// Whether it is fully written.
    done: bool,
}

fn record_path(run_dir: &Path) -> PathBuf {
    run_dir.join("publish.json")
}

fn read_record(run_dir: &Path) -> Result<Option<Record>> {
    let path = record_path(run_dir);
    match fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StagingError::Corrupt {
                path,
                reason: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StagingError::io("read", path)(e)),
    }
}

fn write_record(run_dir: &Path, record: Record) -> Result<()> {
    let path = record_path(run_dir);
    let tmp = run_dir.join(".publish.json.tmp");
    let bytes = serde_json::to_vec(&record).map_err(|e| StagingError::Corrupt {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    sys::remove_any(&tmp)?;
    write_synced(&tmp, &bytes)?;
    fs::rename(&tmp, &path).map_err(StagingError::io("rename", &path))?;
    sys::fsync_dir(run_dir)
}

/// The oldest generation readable after the publishes recorded in `run_dir`, if any.
pub(crate) fn published_generation(run_dir: &Path) -> Result<Option<u64>> {
    Ok(read_record(run_dir)?.map(|r| r.generation))
}

/// Publishes the head (or finishes an interrupted publish first). `crash_after` stops
/// after that many paths without completing, to test recovery.
pub(crate) fn publish(inner: &Inner, crash_after: Option<usize>) -> Result<PublishReport> {
    let views = inner.views_dir();
    let n_views = fs::read_dir(&views)
        .map_err(StagingError::io("read dir", &views))?
        .count();
    if n_views > 0 {
        return Err(StagingError::ViewsLive {
            run_dir: inner.run_dir.clone(),
            n_views,
        });
    }
    let previous = read_record(&inner.run_dir)?;
    let (record, resumed) = match previous {
        Some(r) if !r.done => (r, true),
        Some(r) => (
            Record {
                from: r.generation,
                generation: inner.store.head(),
                done: false,
            },
            false,
        ),
        None => (
            Record {
                from: 0,
                generation: inner.store.head(),
                done: false,
            },
            false,
        ),
    };
    if previous.is_some_and(|p| p.done && p.generation == record.generation) {
        return Ok(PublishReport {
            generation: record.generation,
            written: 0,
            removed: 0,
            resumed: false,
        });
    }
    write_record(&inner.run_dir, record)?;
    inner.store.set_oldest(record.generation);
    let stack = inner.store.stack(record.generation)?;
    let folded = layers::fold(&stack[record.from as usize..]);
    let repo = inner.store.repo();
    let mut written = 0;
    let mut removed = 0;
    let mut touched_dirs = BTreeSet::new();
    // Files and symlinks are staged as temporary siblings and renamed over their paths in
    // batches: one set of concurrent fsyncs per batch instead of one fsync after another.
    // A batch is renamed (in path order) before any other kind of operation runs, so the
    // repository changes in the same order as without batching.
    let mut pending: Vec<(PathBuf, PathBuf)> = Vec::new();
    for (n_done, (path, f)) in folded.iter().enumerate() {
        if crash_after.is_some_and(|n| n_done >= n) {
            // The paths done so far are in place, as a crash right after them leaves them.
            rename_batch(&mut pending)?;
            return Err(StagingError::Io {
                op: "publish (simulated crash)",
                path: repo.join(path),
                source: std::io::Error::other("simulated crash"),
            });
        }
        let disk = repo.join(path);
        touched_dirs.insert(paths::parent(path).map_or_else(|| repo.to_owned(), |p| repo.join(p)));
        if !matches!(f.op, Op::File | Op::Exec | Op::Symlink) {
            rename_batch(&mut pending)?;
        }
        match f.op {
            Op::Delete => {
                sys::remove_any(&disk)?;
                removed += 1;
            }
            Op::Dir | Op::Opaque => {
                let is_dir = fs::symlink_metadata(&disk).is_ok_and(|m| m.is_dir());
                if f.op == Op::Opaque || !is_dir {
                    sys::remove_any(&disk)?;
                    fs::create_dir(&disk).map_err(StagingError::io("mkdir", &disk))?;
                }
                written += 1;
            }
            Op::File | Op::Exec | Op::Symlink => {
                let name = disk
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let tmp = disk.with_file_name(format!(".{name}.forge-publish"));
                sys::remove_any(&tmp)?;
                if !sys::copy_entry(&f.source, &tmp, false)? {
                    return Err(StagingError::Corrupt {
                        path: f.source.clone(),
                        reason: "layer entry listed in the manifest is not a file or symlink"
                            .into(),
                    });
                }
                pending.push((tmp, disk));
                written += 1;
            }
        }
    }
    rename_batch(&mut pending)?;
    for dir in &touched_dirs {
        if dir.is_dir() {
            sys::fsync_dir(dir)?;
        }
    }
    write_record(
        &inner.run_dir,
        Record {
            done: true,
            ..record
        },
    )?;
    Ok(PublishReport {
        generation: record.generation,
        written,
        removed,
        resumed,
    })
}

/// Makes the staged temporary files of `pending` durable (concurrently), then renames each
/// over its path, in order.
fn rename_batch(pending: &mut Vec<(PathBuf, PathBuf)>) -> Result<()> {
    if pending.is_empty() {
        return Ok(());
    }
    // Symlinks need no fsync of their own: their directory's fsync at the end covers them.
    let files: Vec<PathBuf> = pending
        .iter()
        .filter(|(tmp, _)| fs::symlink_metadata(tmp).is_ok_and(|m| m.is_file()))
        .map(|(tmp, _)| tmp.clone())
        .collect();
    sys::fsync_all(&files)?;
    for (tmp, disk) in pending.drain(..) {
        if fs::symlink_metadata(&disk).is_ok_and(|m| m.is_dir()) {
            sys::remove_any(&disk)?;
        }
        fs::rename(&tmp, &disk).map_err(StagingError::io("rename", &disk))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
