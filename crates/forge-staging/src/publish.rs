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
//! marker in the git directory and a record ([`record`]) name the target
//! generation before the first byte of the working tree changes; each path is then replaced
//! by a temporary file (staged where no repository path leads, see [`write`]), fsync and
//! rename. Every step is idempotent, so after a crash the next publish simply runs again
//! over the same record. Reading generations older than the target stops being possible as
//! soon as the record exists, while the target and newer generations read correctly even
//! from a half-published repository: their layers hide every path a publish touches.

mod lock;
mod record;
mod remove;
mod write;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

pub use lock::pending_publish;
pub use record::interrupted_publish;
pub(crate) use record::published_generation;
use record::{Record, is_done, read_record, write_record};

use crate::base::{self, Baseline, Ours};
use crate::error::{Result, StagingError};
use crate::layers::{self, Folded, Op};
use crate::paths;
use crate::staging::Inner;
use crate::sys;
use crate::types::{
    Entry, PublishConflict, PublishConflictKind, PublishMerge, PublishMergeFn, PublishReport,
};

/// How many staged files are fsynced together before their renames.
const BATCH: usize = 128;

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
    #[cfg(test)]
    race::at(race::Point::BaselineLoaded);
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
        #[cfg(test)]
        race::at(race::Point::BeforeRenames);
        for staged in std::mem::take(&mut self.pending) {
            if !staged.verify_and_rename()? {
                self.changed_meanwhile(&staged)?;
            }
        }
        Ok(())
    }

    /// The user changed the path of `staged` after it was decided: their version stays,
    /// the run's is kept in `run_dir/publish-conflicts/PATH` and reported.
    fn changed_meanwhile(&mut self, staged: &write::Staged) -> Result<()> {
        let path = staged
            .disk
            .strip_prefix(self.repo)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|_| staged.disk.display().to_string());
        let dst = self.inner.run_dir.join("publish-conflicts").join(&path);
        sys::remove_any(&dst)?;
        if let Some(parent) = dst.parent() {
            fs::create_dir_all(parent).map_err(StagingError::io("mkdir", parent))?;
        }
        // The temp area may be on another file system than the run directory: copy.
        sys::copy_entry(&staged.tmp, &dst, true)?;
        sys::remove_any(&staged.tmp)?;
        self.report.written -= 1;
        self.report.conflicts.push(PublishConflict {
            path,
            kind: PublishConflictKind::Content,
            kept: Some(dst),
        });
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
}

/// What a folded layer entry holds (`None`: deleted).
fn theirs_entry(f: &Folded) -> Result<Option<Entry>> {
    match f.op {
        Op::Delete => Ok(None),
        Op::Dir | Op::Opaque => Ok(Some(Entry::Dir)),
        Op::File | Op::Exec | Op::Symlink => sys::read_entry(&f.source),
    }
}

/// Test hooks: the user's edits made at chosen points of a publish.
#[cfg(test)]
pub(crate) mod race {
    use std::cell::RefCell;

    /// Where a publish calls the hook.
    #[derive(Clone, Copy, PartialEq, Eq, Debug)]
    pub(crate) enum Point {
        /// The baseline (what the user changed so far) was just listed.
        BaselineLoaded,
        /// A batch of paths was decided and staged; their renames come next.
        BeforeRenames,
    }

    type Hook = Box<dyn FnMut(Point)>;

    thread_local! {
        static HOOK: RefCell<Option<Hook>> = RefCell::new(None);
    }

    /// Calls `hook` at every point of the publishes on this thread until `clear`.
    pub(crate) fn set(hook: impl FnMut(Point) + 'static) {
        HOOK.with(|h| *h.borrow_mut() = Some(Box::new(hook)));
    }

    pub(crate) fn clear() {
        HOOK.with(|h| *h.borrow_mut() = None);
    }

    pub(super) fn at(point: Point) {
        HOOK.with(|h| {
            if let Some(hook) = h.borrow_mut().as_mut() {
                hook(point);
            }
        });
    }
}

#[cfg(test)]
mod tests;
