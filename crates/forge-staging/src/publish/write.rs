//! Writing one path of a publish: a temporary file where no repository path leads, with
//! the owner and mode of the file it replaces, verified and renamed into place.
//!
//! Temporary files go to `$GIT_DIR/forge/publish-tmp/` (never collected), or, without a
//! git directory on the work tree's file system, to a directory at the repository's top
//! with an unguessable name made with an exclusive `mkdir` for this publish and removed
//! after it. Before the rename, the temporary path must still be the inode written, with
//! the size and hash of the generation's content; after it, the destination must be that
//! inode: what lands in the working tree is exactly what the generation holds.

use std::fs::{self, File, OpenOptions};
use std::hash::Hasher;
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::{Result, StagingError};
use crate::sys;
use crate::types::Entry;

/// What a staged path will hold.
pub(crate) enum Content<'a> {
    /// The file or symlink at this layer path.
    Layer(&'a Path),
    /// This entry (a merge result); never a directory.
    Entry(&'a Entry),
}

/// A temporary file or symlink ready to be renamed over its path.
pub(crate) struct Staged {
    pub(crate) tmp: PathBuf,
    pub(crate) disk: PathBuf,
    /// The open temporary file (`None` for a symlink), its size and content hash.
    file: Option<(File, u64, u64)>,
    /// A symlink's target.
    link: Option<PathBuf>,
    /// What was at `disk` when the path was decided (`None`: nothing): if that changed
    /// before the rename, the user edited the path meanwhile and it is not replaced.
    expected: Option<Stamp>,
}

/// Device, inode, size, mtime and ctime of a file: what changes when anyone writes it.
type Stamp = (u64, u64, u64, i64, i64, i64, i64);

fn stamp(meta: &fs::Metadata) -> Stamp {
    (
        meta.dev(),
        meta.ino(),
        meta.size(),
        meta.mtime(),
        meta.mtime_nsec(),
        meta.ctime(),
        meta.ctime_nsec(),
    )
}

/// Where temporary files go, and how many were made.
pub(crate) struct TempArea {
    pub(crate) dir: PathBuf,
    n_made: u64,
}

impl TempArea {
    /// A temp area in `dir`, emptied and created (mode 0700).
    pub(crate) fn fresh(dir: PathBuf) -> Result<TempArea> {
        sys::remove_any(&dir)?;
        if let Some(parent) = dir.parent() {
            fs::create_dir_all(parent).map_err(StagingError::io("mkdir", parent))?;
        }
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(StagingError::io("mkdir", &dir))?;
        Ok(TempArea { dir, n_made: 0 })
    }

    fn next(&mut self) -> PathBuf {
        self.n_made += 1;
        self.dir.join(format!("t{}", self.n_made))
    }

    /// Stages `content` for `disk`; a file takes the owner, group and permission bits of
    /// the regular file it replaces (`existing`), with the execute bits `executable` asks.
    pub(crate) fn stage(
        &mut self,
        content: Content<'_>,
        disk: &Path,
        existing: Option<&fs::Metadata>,
    ) -> Result<Staged> {
        let tmp = self.next();
        let (data_src, executable): (Box<dyn Read + '_>, bool) = match content {
            Content::Layer(src) => {
                let meta = fs::symlink_metadata(src).map_err(StagingError::io("stat", src))?;
                if meta.file_type().is_symlink() {
                    let target = fs::read_link(src).map_err(StagingError::io("readlink", src))?;
                    return symlink(tmp, disk, target, existing);
                }
                if !meta.is_file() {
                    return Err(StagingError::Corrupt {
                        path: src.to_owned(),
                        reason: "layer entry listed in the manifest is not a file or symlink"
                            .into(),
                    });
                }
                (
                    Box::new(sys::open_nofollow(src)?),
                    sys::is_executable(meta.mode()),
                )
            }
            Content::Entry(Entry::Symlink { target }) => {
                return symlink(tmp, disk, target.clone(), existing);
            }
            Content::Entry(Entry::File { data, executable }) => {
                (Box::new(io::Cursor::new(data.as_slice())), *executable)
            }
            Content::Entry(Entry::Dir) => {
                return Err(StagingError::InvalidChange {
                    path: disk.to_string_lossy().into_owned(),
                    reason: "a directory cannot be staged as a file".into(),
                });
            }
        };
        let existing = existing.filter(|m| m.is_file());
        let mode = match existing {
            Some(m) => with_exec(m.mode() & 0o7777, executable),
            None if executable => 0o755,
            None => 0o644,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(StagingError::io("create", &tmp))?;
        let (size, hash) =
            copy_hashing(data_src, &mut file).map_err(StagingError::io("write", &tmp))?;
        if let Some(m) = existing {
            let me = (
                rustix::process::geteuid().as_raw(),
                rustix::process::getegid().as_raw(),
            );
            if (m.uid(), m.gid()) != me {
                match rustix::fs::fchown(
                    &file,
                    Some(rustix::fs::Uid::from_raw(m.uid())),
                    Some(rustix::fs::Gid::from_raw(m.gid())),
                ) {
                    // Without the privilege to give a file away, the file becomes ours, as
                    // any editor's save would make it.
                    Ok(()) | Err(rustix::io::Errno::PERM) => {}
                    Err(e) => return Err(StagingError::io("chown", &tmp)(e.into())),
                }
            }
        }
        // After the chown, which clears set-id bits.
        file.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(StagingError::io("chmod", &tmp))?;
        Ok(Staged {
            tmp,
            disk: disk.to_owned(),
            file: Some((file, size, hash)),
            link: None,
            expected: existing.map(stamp),
        })
    }
}

/// `mode` with its execute bits set (one per read bit) or cleared.
fn with_exec(mode: u32, executable: bool) -> u32 {
    match (executable, mode & 0o111 != 0) {
        (true, true) => mode,
        (true, false) => mode | ((mode & 0o444) >> 2),
        (false, _) => mode & !0o111,
    }
}

fn symlink(
    tmp: PathBuf,
    disk: &Path,
    target: PathBuf,
    existing: Option<&fs::Metadata>,
) -> Result<Staged> {
    std::os::unix::fs::symlink(&target, &tmp).map_err(StagingError::io("symlink", &tmp))?;
    Ok(Staged {
        tmp,
        disk: disk.to_owned(),
        file: None,
        link: Some(target),
        expected: existing.map(stamp),
    })
}

fn copy_hashing(mut from: impl Read, to: &mut File) -> io::Result<(u64, u64)> {
    let mut hasher = rustc_hash::FxHasher::default();
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = from.read(&mut buf)?;
        if n == 0 {
            return Ok((size, hasher.finish()));
        }
        hasher.write(&buf[..n]);
        to.write_all(&buf[..n])?;
        size += n as u64;
    }
}

fn hash_of(file: &File) -> io::Result<(u64, u64)> {
    let mut hasher = rustc_hash::FxHasher::default();
    let mut buf = vec![0u8; 256 * 1024];
    let mut offset = 0u64;
    loop {
        let n = file.read_at(&mut buf, offset)?;
        if n == 0 {
            return Ok((offset, hasher.finish()));
        }
        hasher.write(&buf[..n]);
        offset += n as u64;
    }
}

fn tampered(path: &Path, what: &str) -> StagingError {
    StagingError::Corrupt {
        path: path.to_owned(),
        reason: format!("publish refused: {what}"),
    }
}

impl Staged {
    /// Checks that the temporary path still holds exactly what was written, renames it
    /// over its path, and checks that the path now is that file.
    /// Returns `false`, renaming nothing, when what is at the path is no longer what was
    /// there when the path was decided (the user changed it during the publish).
    pub(crate) fn verify_and_rename(&self) -> Result<bool> {
        let tmp_meta =
            fs::symlink_metadata(&self.tmp).map_err(StagingError::io("stat", &self.tmp))?;
        let identity = match (&self.file, &self.link) {
            (Some((file, size, hash)), _) => {
                let own = file
                    .metadata()
                    .map_err(StagingError::io("stat", &self.tmp))?;
                if (own.dev(), own.ino()) != (tmp_meta.dev(), tmp_meta.ino()) {
                    return Err(tampered(&self.tmp, "the temporary file was replaced"));
                }
                if hash_of(file).map_err(StagingError::io("read", &self.tmp))? != (*size, *hash) {
                    return Err(tampered(&self.tmp, "the temporary file's content changed"));
                }
                (own.dev(), own.ino())
            }
            (None, Some(target)) => {
                let now =
                    fs::read_link(&self.tmp).map_err(StagingError::io("readlink", &self.tmp))?;
                if &now != target {
                    return Err(tampered(&self.tmp, "the temporary symlink changed"));
                }
                (tmp_meta.dev(), tmp_meta.ino())
            }
            (None, None) => return Err(tampered(&self.tmp, "nothing was staged")),
        };
        let now = lstat_opt(&self.disk)?;
        if now.as_ref().filter(|m| !m.is_dir()).map(stamp) != self.expected
            && !(self.expected.is_none() && now.as_ref().is_some_and(|m| m.is_dir()))
        {
            return Ok(false);
        }
        if now.is_some_and(|m| m.is_dir()) {
            fs::remove_dir(&self.disk).map_err(StagingError::io("remove", &self.disk))?;
        }
        fs::rename(&self.tmp, &self.disk).map_err(StagingError::io("rename", &self.disk))?;
        let placed =
            fs::symlink_metadata(&self.disk).map_err(StagingError::io("stat", &self.disk))?;
        if (placed.dev(), placed.ino()) != identity {
            return Err(tampered(
                &self.disk,
                "the published file is not the one written",
            ));
        }
        Ok(true)
    }

    /// The temporary path, if it is a regular file (to fsync).
    pub(crate) fn file_path(&self) -> Option<&Path> {
        self.file.as_ref().map(|_| self.tmp.as_path())
    }
}

/// A fresh directory at the top of `repo` with an unguessable name (128 random bits),
/// created exclusively with mode 0700: the fallback temp area without a git directory.
pub(crate) fn unguessable_dir(repo: &Path) -> Result<PathBuf> {
    let mut bytes = [0u8; 16];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(StagingError::io("read", "/dev/urandom"))?;
    let name: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(repo.join(format!(".forge-publish-{name}")))
}

fn lstat_opt(path: &Path) -> Result<Option<fs::Metadata>> {
    match fs::symlink_metadata(path) {
        Ok(meta) => Ok(Some(meta)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StagingError::io("stat", path)(e)),
    }
}
