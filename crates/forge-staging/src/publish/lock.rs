//! The repository-level publish lock, the "publishing" marker that makes an interrupted
//! publish visible to every later run, and [`pending_publish`].
//!
//! Both live in `$GIT_DIR/forge/` (`publish.lock`, `publishing`), which no collected path
//! can reach. The lock is an `flock(2)` on `publish.lock`, so a crashed holder releases it;
//! the file names the holder's run directory for the message of a waiting run. A plain
//! directory (no git) is locked by an `flock` on the directory itself and has no marker.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::fs::FlockOperation;

use crate::error::{Result, StagingError};
use crate::sys;

/// How often a waiting publisher tries the lock again.
const POLL: Duration = Duration::from_millis(50);

/// Holds the repository's publish lock until dropped.
#[derive(Debug)]
pub(crate) struct RepoLock {
    _file: File,
}

fn forge_dir(git_dir: &Path) -> PathBuf {
    git_dir.join("forge")
}

fn marker_path(git_dir: &Path) -> PathBuf {
    forge_dir(git_dir).join("publishing")
}

fn lock_path(git_dir: &Path) -> PathBuf {
    forge_dir(git_dir).join("publish.lock")
}

/// The directory publish stages its temporary files in: inside the git directory, where
/// no repository path leads.
pub(crate) fn temp_dir(git_dir: &Path) -> PathBuf {
    forge_dir(git_dir).join("publish-tmp")
}

fn try_lock(file: &File) -> Result<bool> {
    match rustix::fs::flock(file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(false),
        Err(e) => Err(StagingError::io("flock", "publish lock")(e.into())),
    }
}

fn open_lock(repo: &Path, git_dir: Option<&Path>) -> Result<(File, PathBuf)> {
    match git_dir {
        Some(git_dir) => {
            let dir = forge_dir(git_dir);
            fs::create_dir_all(&dir).map_err(StagingError::io("mkdir", &dir))?;
            let path = lock_path(git_dir);
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(StagingError::io("open", &path))?;
            Ok((file, path))
        }
        None => {
            let file = File::open(repo).map_err(StagingError::io("open", repo))?;
            Ok((file, repo.to_owned()))
        }
    }
}

/// Takes the publish lock of `repo` for the run in `run_dir`, waiting up to `timeout` for
/// another holder.
///
/// # Errors
///
/// The lock cannot be opened, or another run held it for all of `timeout` (the error names
/// its run directory when known).
pub(crate) fn acquire(
    repo: &Path,
    git_dir: Option<&Path>,
    run_dir: &Path,
    timeout: Duration,
) -> Result<RepoLock> {
    let (mut file, path) = open_lock(repo, git_dir)?;
    let start = Instant::now();
    while !try_lock(&file)? {
        if start.elapsed() >= timeout {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            return Err(StagingError::PublishLocked {
                repo: repo.to_owned(),
                holder: if holder.trim().is_empty() {
                    "another forge run".to_owned()
                } else {
                    format!("the run in {}", holder.trim())
                },
                waited: timeout,
            });
        }
        std::thread::sleep(POLL);
    }
    if git_dir.is_some() {
        let write = |file: &mut File| -> std::io::Result<()> {
            file.set_len(0)?;
            file.rewind()?;
            file.write_all(run_dir.to_string_lossy().as_bytes())
        };
        write(&mut file).map_err(StagingError::io("write", &path))?;
    }
    Ok(RepoLock { _file: file })
}

/// Fails when the marker names another run whose publish was interrupted: publishing over
/// it would hide that the working tree is already a mix (call with the lock held).
pub(crate) fn check_no_other_pending(
    repo: &Path,
    git_dir: Option<&Path>,
    run_dir: &Path,
) -> Result<()> {
    let Some(git_dir) = git_dir else {
        return Ok(());
    };
    let marker = marker_path(git_dir);
    let other = match fs::read_to_string(&marker) {
        Ok(text) => PathBuf::from(text.trim()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(StagingError::io("read", &marker)(e)),
    };
    if other == run_dir || super::is_done(&other) {
        return Ok(());
    }
    Err(StagingError::PublishInterrupted {
        repo: repo.to_owned(),
        run_dir: other,
    })
}

/// Records that the run in `run_dir` is about to write into the working tree.
pub(crate) fn mark(git_dir: Option<&Path>, run_dir: &Path) -> Result<()> {
    let Some(git_dir) = git_dir else {
        return Ok(());
    };
    let path = marker_path(git_dir);
    let tmp = forge_dir(git_dir).join(".publishing.tmp");
    crate::layers::write_synced(&tmp, run_dir.to_string_lossy().as_bytes())?;
    fs::rename(&tmp, &path).map_err(StagingError::io("rename", &path))?;
    sys::fsync_dir(&forge_dir(git_dir))
}

/// Removes the marker: the working tree holds a whole generation again.
pub(crate) fn unmark(git_dir: Option<&Path>) -> Result<()> {
    let Some(git_dir) = git_dir else {
        return Ok(());
    };
    sys::remove_any(&marker_path(git_dir))?;
    sys::fsync_dir(&forge_dir(git_dir))
}

/// The run directory of an interrupted publish into the git work tree `repo`, if there is
/// one: its working tree holds a mix of two generations until `forge resume` on that run
/// directory finishes the publish. A publish in progress (its process holds the lock) is
/// not interrupted; a plain directory (not a git work tree) keeps no marker and always
/// gives `None`.
///
/// # Errors
///
/// The marker or the lock exists but cannot be read.
pub fn pending_publish(repo: &Path) -> Result<Option<PathBuf>, StagingError> {
    let Some(git_dir) = crate::base::git_dir(repo) else {
        return Ok(None);
    };
    let marker = marker_path(&git_dir);
    let run_dir = match fs::read_to_string(&marker) {
        Ok(text) => PathBuf::from(text.trim()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StagingError::io("read", &marker)(e)),
    };
    let (file, _) = open_lock(repo, Some(&git_dir))?;
    if !try_lock(&file)? {
        return Ok(None);
    }
    // The record may say done when the process died between finishing and unmarking.
    if super::is_done(&run_dir) {
        return Ok(None);
    }
    Ok(Some(run_dir))
}
