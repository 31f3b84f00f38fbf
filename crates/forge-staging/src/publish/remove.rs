//! Deleting a directory during a publish the way the run saw it: only what the run's
//! snapshot holds below it, each path only if the user left it alone.

use std::fs;
use std::path::PathBuf;

use super::{Publisher, lstat};
use crate::base::{Baseline, Ours};
use crate::error::{Result, StagingError};
use crate::layers::Op;
use crate::paths;
use crate::types::{PublishConflict, PublishConflictKind};

impl Publisher<'_> {
    /// Deletes the directory `dir` the way the run saw it (issue 13, item 6): only the
    /// files and symlinks the run's snapshot holds below it (what collection saw), each
    /// only if the user left it alone (else a conflict keeps it), never `.git` or ignored
    /// content; then every directory below it that ended up empty, and `dir` itself if it
    /// did. With `keep_regenerated`, paths the generation writes again are left for it.
    /// Returns whether `dir` is gone.
    pub(super) fn remove_collected_dir(
        &mut self,
        dir: &str,
        keep_regenerated: bool,
    ) -> Result<bool> {
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
