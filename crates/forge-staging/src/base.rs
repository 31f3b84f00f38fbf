//! The base snapshot of a run: the working tree as the run saw it when it started, so that
//! publishing is a three-way merge (base = this snapshot, ours = the working tree now,
//! theirs = the generation) and never overwrites what the user changed meanwhile.
//!
//! In a git work tree the snapshot is a git tree object: the repository's index is copied
//! to `run_dir/base.index`, `git add -A` runs against that copy (tracked and untracked,
//! not ignored files become blobs, as `git stash create` does; the user's index, `HEAD`
//! and refs are not touched) and `git write-tree` names the tree, kept in `base.json`.
//! Whether a path changed since is then `git diff-files` against the copy plus the
//! untracked files it does not list. In a plain directory the snapshot is a stat
//! fingerprint of every file (size, mtime, ctime, inode, mode); a changed fingerprint means
//! the user touched the path, and with no base content there is nothing to merge.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Result, StagingError};
use crate::ignores::Ignores;
use crate::paths;
use crate::sys;
use crate::types::Entry;

/// What `base.json` holds.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum Record {
    /// A git work tree: its git directory and the base tree's id.
    Git {
        /// `$GIT_DIR`, absolute.
        git_dir: PathBuf,
        /// The tree written from `base.index`.
        tree: String,
        /// The commit `HEAD` named when the snapshot was taken (`None`: no commit yet, or a
        /// run directory older than this field).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        head: Option<String>,
        /// When the snapshot was taken (seconds and nanoseconds since the epoch).
        taken_at: (i64, i64),
    },
    /// A plain directory: fingerprints in `base.fingerprints.json`.
    Fingerprint {
        /// When the snapshot was taken (seconds and nanoseconds since the epoch).
        taken_at: (i64, i64),
    },
}

/// A file's stat fingerprint: size, mtime and ctime (s, ns), inode, mode.
type Fingerprint = (u64, i64, i64, i64, i64, u64, u32);

fn fingerprint(meta: &fs::Metadata) -> Fingerprint {
    (
        meta.size(),
        meta.mtime(),
        meta.mtime_nsec(),
        meta.ctime(),
        meta.ctime_nsec(),
        meta.ino(),
        meta.mode(),
    )
}

fn record_path(run_dir: &Path) -> PathBuf {
    run_dir.join("base.json")
}

fn index_path(run_dir: &Path) -> PathBuf {
    run_dir.join("base.index")
}

fn fingerprints_path(run_dir: &Path) -> PathBuf {
    run_dir.join("base.fingerprints.json")
}

fn now() -> (i64, i64) {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (d.as_secs() as i64, i64::from(d.subsec_nanos()))
}

/// Runs git in `repo` with `args`, against the index `index` when given; returns stdout.
pub(crate) fn git(repo: &Path, index: Option<&Path>, args: &[&str]) -> Result<Vec<u8>> {
    crate::git::run(repo, index, args)
}

/// `$GIT_DIR` when `repo` is the top directory of a git work tree, else `None`.
pub(crate) fn git_dir(repo: &Path) -> Option<PathBuf> {
    let out = git(
        repo,
        None,
        &[
            "rev-parse",
            "--is-inside-work-tree",
            "--show-prefix",
            "--absolute-git-dir",
        ],
    )
    .ok()?;
    let text = String::from_utf8(out).ok()?;
    let mut lines = text.lines();
    let inside = lines.next()? == "true";
    let prefix = lines.next()?;
    let dir = lines.next()?;
    (inside && prefix.is_empty()).then(|| PathBuf::from(dir))
}

/// Takes the snapshot of `repo` into `run_dir` unless one is there already (a resumed run
/// keeps the snapshot of its start).
pub(crate) fn ensure(repo: &Path, run_dir: &Path, ignores: &Ignores) -> Result<()> {
    if record_path(run_dir).exists() {
        return Ok(());
    }
    let taken_at = now();
    let record = match git_dir(repo) {
        Some(git_dir) => {
            let index = index_path(run_dir);
            sys::remove_any(&index)?;
            let user_index = git_dir.join("index");
            if user_index.is_file() {
                fs::copy(&user_index, &index).map_err(StagingError::io("copy", &index))?;
            }
            // What git cannot add (a nested repository without a commit, an unreadable
            // file) stays out of the base, so publishing treats it as the user's.
            if let Err(e) = git(
                repo,
                Some(&index),
                &["add", "-A", "--ignore-errors", "--", "."],
            ) && !index.is_file()
            {
                return Err(e);
            }
            drop_new_gitlinks(repo, &index)?;
            let tree = git(repo, Some(&index), &["write-tree"])?;
            let head = git(
                repo,
                None,
                &["rev-parse", "--verify", "-q", "HEAD^{commit}"],
            )
            .ok()
            .map(|out| String::from_utf8_lossy(&out).trim().to_owned())
            .filter(|id| !id.is_empty());
            Record::Git {
                git_dir,
                tree: String::from_utf8_lossy(&tree).trim().to_owned(),
                head,
                taken_at,
            }
        }
        None => {
            let prints = walk_fingerprints(repo, ignores)?;
            let path = fingerprints_path(run_dir);
            let bytes = serde_json::to_vec(&prints).map_err(|e| StagingError::Corrupt {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            crate::layers::write_synced(&path, &bytes)?;
            Record::Fingerprint { taken_at }
        }
    };
    let path = record_path(run_dir);
    let bytes = serde_json::to_vec(&record).map_err(|e| StagingError::Corrupt {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    let tmp = run_dir.join(".base.json.tmp");
    crate::layers::write_synced(&tmp, &bytes)?;
    fs::rename(&tmp, &path).map_err(StagingError::io("rename", &path))?;
    sys::fsync_dir(run_dir)
}

/// Removes from the base index the gitlinks `git add -A` made of nested repositories the
/// user never added (git adds an untracked repository as a bare commit pointer, without
/// `.gitmodules`): they are not the user's tracked content, and a branch built on the base
/// must not commit them. Submodules the user's own index has stay.
fn drop_new_gitlinks(repo: &Path, index: &Path) -> Result<()> {
    let gitlinks = |index: Option<&Path>| -> Result<HashSet<String>> {
        let listing = git(repo, index, &["ls-files", "-s", "-z"])?;
        Ok(listing
            .split(|&b| b == 0)
            .filter_map(|item| {
                let text = String::from_utf8_lossy(item);
                let (meta, path) = text.split_once('\t')?;
                meta.starts_with("160000 ").then(|| path.to_owned())
            })
            .collect())
    };
    let known = gitlinks(None)?;
    let mut new: Vec<String> = gitlinks(Some(index))?
        .into_iter()
        .filter(|p| !known.contains(p))
        .collect();
    if new.is_empty() {
        return Ok(());
    }
    new.sort();
    let mut args = vec!["update-index", "--force-remove", "--"];
    args.extend(new.iter().map(String::as_str));
    git(repo, Some(index), &args).map(|_| ())
}

/// Fingerprints of every file and symlink below `repo` that collection does not ignore.
fn walk_fingerprints(repo: &Path, ignores: &Ignores) -> Result<BTreeMap<String, Fingerprint>> {
    let mut out = BTreeMap::new();
    let mut it = walkdir::WalkDir::new(repo).min_depth(1).into_iter();
    while let Some(item) = it.next() {
        let item = item.map_err(|e| StagingError::Io {
            op: "walk",
            path: e.path().unwrap_or(repo).to_owned(),
            source: e.into(),
        })?;
        let Some(rel) = item.path().strip_prefix(repo).ok().and_then(|p| p.to_str()) else {
            continue;
        };
        if ignores.is_ignored(rel, item.file_type().is_dir()) {
            if item.file_type().is_dir() {
                it.skip_current_dir();
            }
            continue;
        }
        if item.file_type().is_dir() {
            continue;
        }
        let meta = item.metadata().map_err(|e| StagingError::Io {
            op: "stat",
            path: item.path().to_owned(),
            source: e.into(),
        })?;
        out.insert(rel.to_owned(), fingerprint(&meta));
    }
    Ok(out)
}

/// The snapshot loaded for one publish, with what changed in the working tree since.
pub(crate) enum Baseline {
    /// A git snapshot.
    Git {
        /// Where the repository is.
        repo: PathBuf,
        /// Every base path (files, symlinks, gitlinks) with its mode and blob id.
        tree: HashMap<String, (u32, String)>,
        /// Base paths whose working-tree content differs from the base (after a refresh of
        /// the base index's stat data).
        dirty: HashSet<String>,
        /// When `dirty` was listed: a path changed after it (its ctime says so) is read
        /// again, however clean it was then.
        loaded_at: (i64, i64),
        /// Files not in the base and not ignored: created since the start.
        created: HashSet<String>,
        /// When the snapshot was taken.
        taken_at: (i64, i64),
    },
    /// A fingerprint snapshot.
    Fingerprint {
        /// Where the repository is.
        repo: PathBuf,
        /// Every base file's fingerprint.
        prints: BTreeMap<String, Fingerprint>,
    },
    /// No snapshot (a run directory from before snapshots existed): every path counts as
    /// unchanged by the user.
    None,
}

/// What the working tree holds at a path compared with the base.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Ours {
    /// Exactly what the run started from.
    Unchanged,
    /// Something else; the base entry when it is known (`Some(None)`: absent at the start).
    Changed(Option<Option<Entry>>),
}

/// The snapshot record of `run_dir`, `None` when the run took none.
pub(crate) fn read_record(run_dir: &Path) -> Result<Option<Record>> {
    let path = record_path(run_dir);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StagingError::io("read", path)(e)),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| StagingError::Corrupt {
            path,
            reason: e.to_string(),
        })
}

impl Baseline {
    /// Loads the snapshot of `run_dir` and looks at the working tree of `repo` now.
    pub(crate) fn load(repo: &Path, run_dir: &Path) -> Result<Baseline> {
        let Some(record) = read_record(run_dir)? else {
            return Ok(Baseline::None);
        };
        match record {
            Record::Git {
                tree: tree_id,
                taken_at,
                ..
            } => {
                let index = index_path(run_dir);
                let mut tree = HashMap::new();
                let listing = git(
                    repo,
                    None,
                    &["ls-tree", "-r", "-z", "--full-tree", &tree_id],
                )?;
                for item in listing.split(|&b| b == 0).filter(|s| !s.is_empty()) {
                    let text = String::from_utf8_lossy(item);
                    let Some((meta, p)) = text.split_once('\t') else {
                        continue;
                    };
                    let mut fields = meta.split(' ');
                    let mode = fields
                        .next()
                        .and_then(|m| u32::from_str_radix(m, 8).ok())
                        .unwrap_or(0);
                    let oid = fields.nth(1).unwrap_or_default().to_owned();
                    tree.insert(p.to_owned(), (mode, oid));
                }
                // Refreshing the copy's stat data (never its contents) makes `diff-files`
                // list only paths whose content differs, not ones merely touched. It exits
                // non-zero when some need updating: that is what diff-files reports next.
                let loaded_at = now();
                let _ = git(repo, Some(&index), &["update-index", "-q", "--refresh"]);
                let dirty = nul_list(git(
                    repo,
                    Some(&index),
                    &["diff-files", "--name-only", "-z"],
                )?);
                let created = nul_list(git(
                    repo,
                    Some(&index),
                    &["ls-files", "--others", "--exclude-standard", "-z"],
                )?);
                Ok(Baseline::Git {
                    repo: repo.to_owned(),
                    tree,
                    dirty,
                    loaded_at,
                    created,
                    taken_at,
                })
            }
            Record::Fingerprint { .. } => {
                let fp = fingerprints_path(run_dir);
                let bytes = fs::read(&fp).map_err(StagingError::io("read", &fp))?;
                let prints = serde_json::from_slice(&bytes).map_err(|e| StagingError::Corrupt {
                    path: fp.clone(),
                    reason: e.to_string(),
                })?;
                Ok(Baseline::Fingerprint {
                    repo: repo.to_owned(),
                    prints,
                })
            }
        }
    }

    /// Whether the working tree at file or symlink path `path` is what the run started
    /// from; when not, the base entry if known.
    pub(crate) fn ours(&self, path: &str) -> Result<Ours> {
        match self {
            Baseline::None => Ok(Ours::Unchanged),
            Baseline::Fingerprint { repo, prints } => {
                let now = lstat(&repo.join(path))?;
                let same = match (prints.get(path), &now) {
                    (None, None) => true,
                    (Some(p), Some(m)) => *p == fingerprint(m),
                    _ => false,
                };
                Ok(if same {
                    Ours::Unchanged
                } else {
                    Ours::Changed(None)
                })
            }
            Baseline::Git {
                repo,
                tree,
                dirty,
                created,
                taken_at,
                loaded_at,
                ..
            } => {
                if tree.contains_key(path) {
                    // Clean when listed, and not touched since (a publish takes a while: the
                    // user may edit a file after the list was made and before its turn).
                    let touched_since = lstat(&repo.join(path))?.is_none_or(|m| {
                        (m.ctime(), m.ctime_nsec()) >= (loaded_at.0 - 1, loaded_at.1)
                    });
                    if !dirty.contains(path) && !touched_since {
                        return Ok(Ours::Unchanged);
                    }
                    let base = self.entry(path)?;
                    let disk = sys::read_entry(&repo.join(path))?;
                    return Ok(if disk == base {
                        Ours::Unchanged
                    } else {
                        Ours::Changed(Some(base))
                    });
                }
                if created.contains(path) {
                    return Ok(Ours::Changed(Some(None)));
                }
                // Not in the base: absent then. Absent now, or an ignored file that has not
                // changed since before the start (its ctime, which nobody can set, is
                // older by a margin covering coarse kernel clocks), counts as unchanged.
                Ok(match lstat(&repo.join(path))? {
                    None => Ours::Unchanged,
                    Some(m) if m.is_dir() => Ours::Unchanged,
                    Some(m) if (m.ctime(), m.ctime_nsec()) < (taken_at.0 - 1, taken_at.1) => {
                        Ours::Unchanged
                    }
                    Some(_) => Ours::Changed(None),
                })
            }
        }
    }

    /// The base entry at `path` (in git, read through the path's filters, as the working
    /// tree had it); `None` when absent, or unknown (fingerprints).
    fn entry(&self, path: &str) -> Result<Option<Entry>> {
        let Baseline::Git { repo, tree, .. } = self else {
            return Ok(None);
        };
        let Some((mode, oid)) = tree.get(path) else {
            return Ok(None);
        };
        let data = git(
            repo,
            None,
            &["cat-file", "--filters", &format!("--path={path}"), oid],
        )?;
        Ok(Some(match mode & 0o170000 {
            0o120000 => Entry::Symlink {
                target: PathBuf::from(String::from_utf8_lossy(&data).into_owned()),
            },
            0o160000 => Entry::Dir,
            _ => Entry::File {
                data,
                executable: mode & 0o111 != 0,
            },
        }))
    }

    /// Base files and symlinks strictly below the directory `dir` (what a run that deletes
    /// `dir` may remove); for no snapshot, what is on disk below it except `.git`.
    pub(crate) fn files_below(&self, dir: &str) -> Result<Vec<String>> {
        let mut out: Vec<String> = match self {
            Baseline::Git { tree, .. } => tree
                .iter()
                .filter(|(p, (mode, _))| {
                    mode & 0o170000 != 0o160000 && paths::is_within(p, dir) && *p != dir
                })
                .map(|(p, _)| p.clone())
                .collect(),
            Baseline::Fingerprint { prints, .. } => prints
                .range(format!("{dir}/")..)
                .take_while(|(p, _)| paths::is_within(p, dir))
                .map(|(p, _)| p.clone())
                .collect(),
            Baseline::None => Vec::new(),
        };
        out.sort();
        Ok(out)
    }

    /// Paths whose working-tree content differs from the snapshot (files and symlinks),
    /// sorted: modified, deleted and created ones.
    pub(crate) fn changed(&self, ignores: &Ignores) -> Result<Vec<String>> {
        let mut out = Vec::new();
        match self {
            Baseline::None => {}
            Baseline::Git { dirty, created, .. } => {
                out.extend(dirty.iter().cloned());
                out.extend(created.iter().cloned());
            }
            Baseline::Fingerprint { repo, prints } => {
                for p in prints.keys() {
                    if self.ours(p)? != Ours::Unchanged {
                        out.push(p.clone());
                    }
                }
                for p in walk_fingerprints(repo, ignores)?.into_keys() {
                    if !prints.contains_key(&p) {
                        out.push(p);
                    }
                }
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }
}

fn nul_list(bytes: Vec<u8>) -> HashSet<String> {
    bytes
        .split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
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
