//! Publishing: merging a generation into the working tree on disk, crash-safely.
//!
//! Publishing is a three-way merge per path the layers touched since the last publish:
//! base = the working tree as the run started ([`crate::base`]), ours = the working tree
//! now, theirs = the generation. A path the user did not touch gets the generation's
//! version; one the run did not change keeps the user's; one both changed goes to the
//! caller's merge (clean: written) or is a conflict: the user's version stays, the run's is
//! kept in `run_dir/publish-conflicts/PATH`, and the report names it.
//!
//! The repository's publish lock ([`lock`]) serializes publishes of concurrent runs; a
//! marker in the git directory and a record (`run_dir/publish.json`) name the target
//! generation before the first byte of the working tree changes; each path is then replaced
//! by a temporary file (staged where no repository path leads, see [`write`]), fsync and
//! rename. Every step is idempotent, so after a crash the next publish simply runs again
//! over the same record. Reading generations older than the target stops being possible as
//! soon as the record exists, while the target and newer generations read correctly even
//! from a half-published repository: their layers hide every path a publish touches.

mod lock;
mod write;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use lock::pending_publish;

use crate::base::{self, Baseline, Ours};
use crate::error::{Result, StagingError};
use crate::layers::{self, Folded, Op, write_synced};
use crate::paths;
use crate::staging::Inner;
use crate::sys;
use crate::types::{
    Entry, PublishConflict, PublishConflictKind, PublishMerge, PublishMergeFn, PublishReport,
};

/// How many staged files are fsynced together before their renames.
const BATCH: usize = 128;

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
struct Record {
    /// The generation the repository held before this publish.
    from: u64,
    /// The generation being written.
    generation: u64,
    /// Whether it is fully written.
    done: bool,
    /// The temporary directory of this publish, removed when it is done.
    #[serde(default)]
    tmp_dir: Option<PathBuf>,
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

fn write_record(run_dir: &Path, record: &Record) -> Result<()> {
    let path = record_path(run_dir);
    let tmp = run_dir.join(".publish.json.tmp");
    let bytes = serde_json::to_vec(record).map_err(|e| StagingError::Corrupt {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    sys::remove_any(&tmp)?;
    write_synced(&tmp, &bytes)?;
    fs::rename(&tmp, &path).map_err(StagingError::io("rename", &path))?;
    sys::fsync_dir(run_dir)
}

/// Whether the publish record of `run_dir` says it finished.
fn is_done(run_dir: &Path) -> bool {
    read_record(run_dir).is_ok_and(|r| r.is_some_and(|r| r.done))
}

/// The generation an interrupted publish of the run in `run_dir` was writing, if its record
/// says it started and never finished: the working tree then holds a mix of two
/// generations until the publish runs again (`forge resume`).
///
/// # Errors
///
/// The record exists but cannot be read.
pub fn interrupted_publish(run_dir: &Path) -> Result<Option<u64>, StagingError> {
    Ok(read_record(run_dir)?
        .filter(|r| !r.done)
        .map(|r| r.generation))
}

/// The oldest generation readable after the publishes recorded in `run_dir`, if any.
pub(crate) fn published_generation(run_dir: &Path) -> Result<Option<u64>> {
    Ok(read_record(run_dir)?.map(|r| r.generation))
}

/// Decides a path both the user and the run changed: `(path, base, ours, theirs)`.
pub(crate) type Merger<'a> = &'a PublishMergeFn;

/// Publishes the head (or finishes an interrupted publish first), merging with what the
/// user changed since the run started. `crash_after` stops after that many paths without
/// completing, to test recovery.
pub(crate) fn publish(
    inner: &Inner,
    merge: Option<Merger<'_>>,
    crash_after: Option<usize>,
) -> Result<PublishReport> {
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
    let repo = inner.store.repo();
    let git_dir = base::git_dir(repo);
    let _lock = lock::acquire(
        repo,
        git_dir.as_deref(),
        &inner.run_dir,
        inner.opts.publish_lock_timeout,
    )?;
    lock::check_no_other_pending(repo, git_dir.as_deref(), &inner.run_dir)?;
    let previous = read_record(&inner.run_dir)?;
    let (mut record, resumed) = match &previous {
        Some(r) if !r.done => (r.clone(), true),
        Some(r) => (
            Record {
                from: r.generation,
                generation: inner.store.head(),
                done: false,
                tmp_dir: None,
            },
            false,
        ),
        None => (
            Record {
                from: 0,
                generation: inner.store.head(),
                done: false,
                tmp_dir: None,
            },
            false,
        ),
    };
    if previous
        .as_ref()
        .is_some_and(|p| p.done && p.generation == record.generation)
    {
        return Ok(PublishReport {
            generation: record.generation,
            written: 0,
            removed: 0,
            resumed: false,
            merged: 0,
            conflicts: Vec::new(),
        });
    }
    // Looked at under the lock: another run's publish may just have changed the tree.
    let baseline = Baseline::load(repo, &inner.run_dir)?;
    if let Some(old) = record.tmp_dir.take() {
        sys::remove_any(&old)?;
    }
    let tmp_dir = match &git_dir {
        Some(g) if same_device(g, repo) => lock::temp_dir(g),
        _ => write::unguessable_dir(repo)?,
    };
    record.tmp_dir = Some(tmp_dir.clone());
    lock::mark(git_dir.as_deref(), &inner.run_dir)?;
    write_record(&inner.run_dir, &record)?;
    let temp = write::TempArea::fresh(tmp_dir)?;
    inner.store.set_oldest(record.generation);
    let stack = inner.store.stack(record.generation)?;
    let folded = layers::fold(&stack[record.from as usize..]);
    let earlier = layers::fold(&stack[..record.from as usize]);
    let mut run = Publisher {
        inner,
        repo,
        baseline,
        earlier,
        folded: &folded,
        merge,
        temp,
        pending: Vec::new(),
        touched_dirs: BTreeSet::new(),
        blocked: Vec::new(),
        report: PublishReport {
            generation: record.generation,
            written: 0,
            removed: 0,
            resumed,
            merged: 0,
            conflicts: Vec::new(),
        },
    };
    for (n_done, (path, f)) in folded.iter().enumerate() {
        if crash_after.is_some_and(|n| n_done >= n) {
            // The paths done so far are in place, as a crash right after them leaves them.
            run.flush()?;
            return Err(StagingError::Io {
                op: "publish (simulated crash)",
                path: repo.join(path),
                source: std::io::Error::other("simulated crash"),
            });
        }
        run.path(path, f)?;
    }
    run.flush()?;
    for dir in &run.touched_dirs {
        if dir.is_dir() {
            sys::fsync_dir(dir)?;
        }
    }
    sys::remove_any(&run.temp.dir)?;
    write_record(
        &inner.run_dir,
        &Record {
            done: true,
            tmp_dir: None,
            ..record
        },
    )?;
    lock::unmark(git_dir.as_deref())?;
    Ok(run.report)
}

fn same_device(a: &Path, b: &Path) -> bool {
    match (fs::metadata(a), fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev(),
        _ => false,
    }
}

fn lstat(path: &Path) -> Result<Option<fs::Metadata>> {
    match fs::symlink_metadata(path) {
        Ok(m) => Ok(Some(m)),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(StagingError::io("stat", path)(e)),
    }
}

/// One publish in progress.
struct Publisher<'a> {
    inner: &'a Inner,
    repo: &'a Path,
    baseline: Baseline,
    /// What earlier publishes of this run wrote (their base for the paths they touched).
    earlier: BTreeMap<String, Folded>,
    folded: &'a BTreeMap<String, Folded>,
    merge: Option<Merger<'a>>,
    temp: write::TempArea,
    /// Staged files and symlinks waiting for their batch's fsync and rename.
    pending: Vec<write::Staged>,
    touched_dirs: BTreeSet<PathBuf>,
    /// Paths kept as the user has them that the generation wants to be directories: what
    /// the generation holds below them is a conflict too.
    blocked: Vec<String>,
    report: PublishReport,
}

impl Publisher<'_> {
    /// Publishes one folded path.
    fn path(&mut self, path: &str, f: &Folded) -> Result<()> {
        let disk = self.repo.join(path);
        self.touched_dirs.insert(
            paths::parent(path).map_or_else(|| self.repo.to_owned(), |p| self.repo.join(p)),
        );
        if self.blocked.iter().any(|b| paths::is_within(path, b)) {
            return self.conflict(path, f, PublishConflictKind::Blocked);
        }
        let meta = lstat(&disk)?;
        let is_dir = meta.as_ref().is_some_and(|m| m.is_dir());
        match f.op {
            Op::File | Op::Exec | Op::Symlink => {
                let parent_in_the_way = match paths::parent(path) {
                    Some(p) => lstat(&self.repo.join(p))?.is_some_and(|m| !m.is_dir()),
                    None => false,
                };
                if parent_in_the_way {
                    return self.conflict(path, f, PublishConflictKind::Blocked);
                }
                if is_dir {
                    self.flush()?;
                    if !self.remove_collected_dir(path, false)? {
                        return self.conflict(path, f, PublishConflictKind::Blocked);
                    }
                    return self.write(path, write::Content::Layer(&f.source), None);
                }
                match self.ours(path)? {
                    Ours::Unchanged => {
                        self.write(path, write::Content::Layer(&f.source), meta.as_ref())
                    }
                    Ours::Changed(base) => {
                        self.flush()?;
                        self.resolve(path, f, base, meta.as_ref())
                    }
                }
            }
            Op::Delete => {
                self.flush()?;
                match meta {
                    None => Ok(()),
                    Some(_) if is_dir => self.remove_collected_dir(path, false).map(|_| ()),
                    Some(m) => match self.ours(path)? {
                        Ours::Unchanged => {
                            fs::remove_file(&disk).map_err(StagingError::io("remove", &disk))?;
                            self.report.removed += 1;
                            Ok(())
                        }
                        Ours::Changed(base) => self.resolve(path, f, base, Some(&m)),
                    },
                }
            }
            Op::Dir | Op::Opaque => {
                self.flush()?;
                match meta {
                    Some(_) if is_dir && f.op == Op::Opaque => {
                        self.remove_collected_dir(path, true)?;
                    }
                    Some(_) if is_dir => {}
                    None => {}
                    Some(_) => match self.ours(path)? {
                        Ours::Unchanged => {
                            fs::remove_file(&disk).map_err(StagingError::io("remove", &disk))?;
                        }
                        Ours::Changed(_) => {
                            self.blocked.push(path.to_owned());
                            return self.conflict(path, f, PublishConflictKind::Blocked);
                        }
                    },
                }
                if !disk.is_dir() {
                    fs::create_dir_all(&disk).map_err(StagingError::io("mkdir", &disk))?;
                }
                self.report.written += 1;
                Ok(())
            }
        }
    }

    /// Whether the working tree at `path` is what this publish started from: the snapshot
    /// of the run's start, or what an earlier publish of the run wrote there.
    fn ours(&self, path: &str) -> Result<Ours> {
        let Some(f) = self.earlier.get(path) else {
            return self.baseline.ours(path);
        };
        let base = theirs_entry(f)?;
        let disk = sys::read_entry(&self.repo.join(path))?;
        Ok(if disk == base {
            Ours::Unchanged
        } else {
            Ours::Changed(Some(base))
        })
    }

    /// A path both sides may have changed: merge when a base is known, else a conflict.
    fn resolve(
        &mut self,
        path: &str,
        f: &Folded,
        base: Option<Option<Entry>>,
        meta: Option<&fs::Metadata>,
    ) -> Result<()> {
        let disk = self.repo.join(path);
        let ours = sys::read_entry(&disk)?;
        let theirs = theirs_entry(f)?;
        if ours == theirs {
            // Already so: the same change on both sides, or a resumed publish.
            return Ok(());
        }
        let Some(base) = base else {
            return self.conflict(path, f, PublishConflictKind::NoBase);
        };
        if theirs == base {
            return Ok(());
        }
        let decision = if ours == base {
            PublishMerge::Merged(theirs.clone())
        } else {
            match self.merge {
                Some(merge) => merge(path, base.as_ref(), ours.as_ref(), theirs.as_ref()),
                None => PublishMerge::Conflict,
            }
        };
        match decision {
            PublishMerge::Merged(Some(Entry::Dir)) | PublishMerge::Conflict => {
                let kind = match (&ours, &theirs) {
                    (None, _) => PublishConflictKind::DeletedByUser,
                    (_, None) => PublishConflictKind::DeletedByRun,
                    _ => PublishConflictKind::Content,
                };
                self.conflict(path, f, kind)
            }
            PublishMerge::Merged(Some(entry)) => {
                if Some(&entry) != ours.as_ref() {
                    self.write(path, write::Content::Entry(&entry), meta)?;
                    self.flush()?;
                    self.report.written -= 1;
                }
                self.report.merged += 1;
                Ok(())
            }
            PublishMerge::Merged(None) => {
                sys::remove_any(&disk)?;
                self.report.removed += 1;
                Ok(())
            }
        }
    }

    /// Stages `content` for `path` into the current batch.
    fn write(
        &mut self,
        path: &str,
        content: write::Content<'_>,
        existing: Option<&fs::Metadata>,
    ) -> Result<()> {
        let disk = self.repo.join(path);
        if let Some(parent) = disk.parent()
            && !parent.is_dir()
        {
            fs::create_dir_all(parent).map_err(StagingError::io("mkdir", parent))?;
        }
        let staged = self.temp.stage(content, &disk, existing)?;
        self.pending.push(staged);
        self.report.written += 1;
        if self.pending.len() >= BATCH {
            self.flush()?;
        }
        Ok(())
    }

    /// Makes the staged files durable (concurrently), then verifies and renames each over
    /// its path, in order.
    fn flush(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        // Symlinks need no fsync of their own: their directory's fsync at the end covers them.
        let files: Vec<PathBuf> = self
            .pending
            .iter()
            .filter_map(|s| s.file_path().map(Path::to_owned))
            .collect();
        sys::fsync_all(&files)?;
        for staged in self.pending.drain(..) {
            staged.verify_and_rename()?;
        }
        Ok(())
    }

    /// Records a conflict at `path`: the working tree keeps the user's version, the run's
    /// (when it has one) is copied to `run_dir/publish-conflicts/PATH`.
    fn conflict(&mut self, path: &str, f: &Folded, kind: PublishConflictKind) -> Result<()> {
        let kept = if matches!(f.op, Op::File | Op::Exec | Op::Symlink) {
            let dst = self.inner.run_dir.join("publish-conflicts").join(path);
            sys::remove_any(&dst)?;
            if let Some(parent) = dst.parent() {
                fs::create_dir_all(parent).map_err(StagingError::io("mkdir", parent))?;
            }
            sys::copy_entry(&f.source, &dst, true)?;
            Some(dst)
        } else {
            None
        };
        self.report.conflicts.push(PublishConflict {
            path: path.to_owned(),
            kind,
            kept,
        });
        Ok(())
    }

    /// Deletes the directory `dir` the way the run saw it (issue 13, item 6): only the
    /// files and symlinks the run's snapshot holds below it (what collection saw), each
    /// only if the user left it alone (else a conflict keeps it), never `.git` or ignored
    /// content; then every directory below it that ended up empty, and `dir` itself if it
    /// did. With `keep_regenerated`, paths the generation writes again are left for it.
    /// Returns whether `dir` is gone.
    fn remove_collected_dir(&mut self, dir: &str, keep_regenerated: bool) -> Result<bool> {
        let mut files = self.baseline.files_below(dir)?;
        files.extend(
            self.earlier
                .iter()
                .filter(|(p, f)| {
                    paths::is_within(p, dir) && matches!(f.op, Op::File | Op::Exec | Op::Symlink)
                })
                .map(|(p, _)| p.clone()),
        );
        if matches!(self.baseline, Baseline::None) {
            files.extend(self.disk_files_below(dir));
        }
        files.sort();
        files.dedup();
        for p in files {
            if p == dir || (keep_regenerated && self.folded.contains_key(&p)) {
                continue;
            }
            let disk = self.repo.join(&p);
            match lstat(&disk)? {
                None => continue,
                Some(m) if m.is_dir() => continue,
                Some(_) => {}
            }
            match self.ours(&p)? {
                Ours::Unchanged => {
                    fs::remove_file(&disk).map_err(StagingError::io("remove", &disk))?;
                    self.report.removed += 1;
                }
                Ours::Changed(_) => self.report.conflicts.push(PublishConflict {
                    path: p,
                    kind: PublishConflictKind::DeletedByRun,
                    kept: None,
                }),
            }
        }
        let root = self.repo.join(dir);
        let mut dirs: Vec<PathBuf> = walkdir::WalkDir::new(&root)
            .min_depth(1)
            .into_iter()
            .filter_entry(|e| e.file_name() != ".git")
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_dir())
            .map(|e| e.into_path())
            .collect();
        dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        for d in dirs {
            // Fails harmlessly on a directory that still holds something.
            let _ = fs::remove_dir(&d);
        }
        match fs::remove_dir(&root) {
            Ok(()) => {
                self.report.removed += 1;
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
            Err(_) => Ok(false),
        }
    }

    /// Without a snapshot: the files below `dir` on disk that collection does not ignore.
    fn disk_files_below(&self, dir: &str) -> Vec<String> {
        let ignores = &self.inner.ignores;
        walkdir::WalkDir::new(self.repo.join(dir))
            .min_depth(1)
            .into_iter()
            .filter_entry(|e| {
                e.path()
                    .strip_prefix(self.repo)
                    .ok()
                    .and_then(|p| p.to_str())
                    .is_some_and(|p| !ignores.is_ignored(p, e.file_type().is_dir()))
            })
            .filter_map(|e| e.ok())
            .filter(|e| !e.file_type().is_dir())
            .filter_map(|e| {
                e.path()
                    .strip_prefix(self.repo)
                    .ok()
                    .and_then(|p| p.to_str())
                    .map(str::to_owned)
            })
            .collect()
    }
}

/// What a folded layer entry holds (`None`: deleted).
fn theirs_entry(f: &Folded) -> Result<Option<Entry>> {
    match f.op {
        Op::Delete => Ok(None),
        Op::Dir | Op::Opaque => Ok(Some(Entry::Dir)),
        Op::File | Op::Exec | Op::Symlink => sys::read_entry(&f.source),
    }
}

#[cfg(test)]
mod tests;
