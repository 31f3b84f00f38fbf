//! Thin wrappers over the OS calls staging needs: whiteouts, overlay xattrs, mounts, clones,
//! fsync; all through rustix's safe API (the crate's only `unsafe` is in `userns`).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use rustix::fs::{FileType, Mode, XattrFlags};

use crate::error::{Result, StagingError};
use crate::types::{Entry, EntryKind};

/// Whether the process runs with effective uid 0.
pub(crate) fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Creates an overlayfs whiteout (character device 0/0) at `path`.
pub(crate) fn make_whiteout(path: &Path) -> io::Result<()> {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        FileType::CharacterDevice,
        Mode::empty(),
        rustix::fs::makedev(0, 0),
    )
    .map_err(io::Error::from)
}

/// Whether whiteouts can be created in `dir` (as root; unprivileged since Linux 5.8).
pub(crate) fn can_make_whiteouts(dir: &Path) -> bool {
    let probe = dir.join(format!(".probe-whiteout-{}", std::process::id()));
    let _ = fs::remove_file(&probe);
    let made = make_whiteout(&probe).is_ok();
    let _ = fs::remove_file(&probe);
    made
}

/// Whether metadata describes an overlayfs whiteout.
pub(crate) fn is_whiteout(meta: &fs::Metadata) -> bool {
    meta.file_type().is_char_device() && meta.rdev() == 0
}

/// Sets the xattr `name` of `path` (not following symlinks) to `value`.
pub(crate) fn set_xattr(path: &Path, name: &str, value: &[u8]) -> io::Result<()> {
    rustix::fs::lsetxattr(path, name, value, XattrFlags::empty()).map_err(io::Error::from)
}

/// Reads the xattr `name` of `path` without following symlinks; `None` when absent.
pub(crate) fn get_xattr(path: &Path, name: &str) -> io::Result<Option<Vec<u8>>> {
    let mut buf = vec![0u8; 4096];
    match rustix::fs::lgetxattr(path, name, &mut buf[..]) {
        Ok(n) => {
            buf.truncate(n);
            Ok(Some(buf))
        }
        Err(rustix::io::Errno::NODATA) | Err(rustix::io::Errno::NOTSUP) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Mounts an overlay at `target` with the option string `data`.
pub(crate) fn mount_overlay(target: &Path, data: &str) -> Result<()> {
    let data = std::ffi::CString::new(data).map_err(|_| StagingError::Mount {
        op: "mount",
        path: target.to_owned(),
        source: io::Error::new(io::ErrorKind::InvalidInput, "mount options contain NUL"),
    })?;
    rustix::mount::mount(
        "forge-staging",
        target,
        "overlay",
        rustix::mount::MountFlags::empty(),
        data.as_c_str(),
    )
    .map_err(|e| StagingError::Mount {
        op: "mount",
        path: target.to_owned(),
        source: e.into(),
    })
}

/// Unmounts `target`; a busy mount (a process still inside) is detached lazily instead.
pub(crate) fn unmount(target: &Path) -> Result<()> {
    use rustix::mount::UnmountFlags;
    match rustix::mount::unmount(target, UnmountFlags::empty()) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::BUSY) => rustix::mount::unmount(target, UnmountFlags::DETACH)
            .map_err(|e| StagingError::Mount {
                op: "unmount",
                path: target.to_owned(),
                source: e.into(),
            }),
        Err(e) => Err(StagingError::Mount {
            op: "unmount",
            path: target.to_owned(),
            source: e.into(),
        }),
    }
}

/// Clones `src` into the new file `dst` with `FICLONE`.
pub(crate) fn ficlone(src: &File, dst: &File) -> io::Result<()> {
    rustix::fs::ioctl_ficlone(dst, src).map_err(io::Error::from)
}

/// fsyncs a directory so that renames and creations inside it are durable.
pub(crate) fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(StagingError::io("fsync", dir))
}

/// fsyncs every file and directory in `paths`, several at once: concurrent fsyncs let the
/// file system group them into fewer journal commits than one after another.
pub(crate) fn fsync_all(paths: &[std::path::PathBuf]) -> Result<()> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    const THREADS: usize = 8;
    let fsync = |path: &Path| {
        File::open(path)
            .and_then(|f| f.sync_all())
            .map_err(StagingError::io("fsync", path))
    };
    if paths.len() <= 1 {
        return paths.iter().try_for_each(|p| fsync(p));
    }
    let next = AtomicUsize::new(0);
    let work = || -> Result<()> {
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(path) = paths.get(i) else {
                return Ok(());
            };
            fsync(path)?;
        }
    };
    std::thread::scope(|scope| {
        let helpers: Vec<_> = (1..THREADS.min(paths.len()))
            .map(|_| scope.spawn(work))
            .collect();
        let mine = work();
        helpers
            .into_iter()
            .map(|h| h.join().expect("fsync threads do not panic"))
            .chain([mine])
            .collect::<Result<Vec<()>>>()
            .map(|_| ())
    })
}

/// Whether `mode` has any execute bit.
pub(crate) fn is_executable(mode: u32) -> bool {
    mode & 0o111 != 0
}

/// The entry kind of `meta`, `None` for special files.
pub(crate) fn kind_of(meta: &fs::Metadata) -> Option<EntryKind> {
    let ft = meta.file_type();
    if ft.is_file() {
        Some(EntryKind::File)
    } else if ft.is_dir() {
        Some(EntryKind::Dir)
    } else if ft.is_symlink() {
        Some(EntryKind::Symlink)
    } else {
        None
    }
}

/// A name for a special file type, for rejection reasons.
pub(crate) fn special_name(meta: &fs::Metadata) -> &'static str {
    let ft = meta.file_type();
    if ft.is_fifo() {
        "fifo"
    } else if ft.is_socket() {
        "socket"
    } else if ft.is_char_device() {
        "character device"
    } else if ft.is_block_device() {
        "block device"
    } else {
        "special"
    }
}

/// Opens the regular file at `path` for reading, refusing to follow a symlink that may have
/// replaced it since it was looked at.
pub(crate) fn open_nofollow(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
        .map_err(StagingError::io("open", path))
}

/// Reads the entry at `path` (never following a final symlink); `None` if absent or special.
pub(crate) fn read_entry(path: &Path) -> Result<Option<Entry>> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StagingError::io("stat", path)(e)),
    };
    read_entry_with(path, &meta)
}

/// Reads the entry at `path` whose metadata is `meta`.
pub(crate) fn read_entry_with(path: &Path, meta: &fs::Metadata) -> Result<Option<Entry>> {
    Ok(Some(match kind_of(meta) {
        None => return Ok(None),
        Some(EntryKind::Dir) => Entry::Dir,
        Some(EntryKind::Symlink) => Entry::Symlink {
            target: fs::read_link(path).map_err(StagingError::io("readlink", path))?,
        },
        Some(EntryKind::File) => {
            // O_NOFOLLOW: the path was a regular file at lstat time; never follow a link
            // that replaced it since.
            let mut file = open_nofollow(path)?;
            let mut data = Vec::with_capacity(meta.len() as usize);
            file.read_to_end(&mut data)
                .map_err(StagingError::io("read", path))?;
            Entry::File {
                data,
                executable: is_executable(meta.mode()),
            }
        }
    }))
}

/// Writes `entry` at `path`, which must not exist; files are fsynced when `sync`.
pub(crate) fn write_entry(path: &Path, entry: &Entry, sync: bool) -> Result<()> {
    match entry {
        Entry::Dir => fs::create_dir(path).map_err(StagingError::io("mkdir", path)),
        Entry::Symlink { target } => {
            std::os::unix::fs::symlink(target, path).map_err(StagingError::io("symlink", path))
        }
        Entry::File { data, executable } => {
            let mode = if *executable { 0o755 } else { 0o644 };
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode)
                .open(path)
                .map_err(StagingError::io("create", path))?;
            file.write_all(data)
                .map_err(StagingError::io("write", path))?;
            // The umask may have cleared bits: set the mode exactly.
            file.set_permissions(fs::Permissions::from_mode(mode))
                .map_err(StagingError::io("chmod", path))?;
            if sync {
                file.sync_all().map_err(StagingError::io("fsync", path))?;
            }
            Ok(())
        }
    }
}

/// Removes whatever is at `path` (a directory recursively); absent is fine.
pub(crate) fn remove_any(path: &Path) -> Result<()> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(StagingError::io("stat", path)(e)),
    };
    if !meta.is_dir() {
        return fs::remove_file(path).map_err(StagingError::io("remove", path));
    }
    match fs::remove_dir_all(path) {
        // overlayfs leaves `work/work` with mode 000: without root, make our own
        // directories listable and try again.
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            open_up_dirs(path);
            fs::remove_dir_all(path)
        }
        other => other,
    }
    .map_err(StagingError::io("remove", path))
}

/// Gives the owner full access to every directory below `root` that it can reach.
fn open_up_dirs(root: &Path) {
    let mut pending = vec![root.to_owned()];
    while let Some(dir) = pending.pop() {
        let _ = fs::set_permissions(&dir, fs::Permissions::from_mode(0o700));
        let Ok(items) = fs::read_dir(&dir) else {
            continue;
        };
        for item in items.flatten() {
            if item.file_type().is_ok_and(|t| t.is_dir()) {
                pending.push(item.path());
            }
        }
    }
}

/// Copies the file or symlink at `src` to the new path `dst`, streaming file data (never
/// loading it whole); the mode becomes 0755 or 0644 by the source's execute bit. Files are
/// fsynced when `sync`. Returns `false` if `src` is neither a file nor a symlink.
pub(crate) fn copy_entry(src: &Path, dst: &Path, sync: bool) -> Result<bool> {
    let meta = fs::symlink_metadata(src).map_err(StagingError::io("stat", src))?;
    match kind_of(&meta) {
        Some(EntryKind::Symlink) => {
            let target = fs::read_link(src).map_err(StagingError::io("readlink", src))?;
            std::os::unix::fs::symlink(target, dst).map_err(StagingError::io("symlink", dst))?;
            Ok(true)
        }
        Some(EntryKind::File) => {
            let mode = if is_executable(meta.mode()) {
                0o755
            } else {
                0o644
            };
            let mut from = open_nofollow(src)?;
            let mut to = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode)
                .open(dst)
                .map_err(StagingError::io("create", dst))?;
            io::copy(&mut from, &mut to).map_err(StagingError::io("copy", dst))?;
            to.set_permissions(fs::Permissions::from_mode(mode))
                .map_err(StagingError::io("chmod", dst))?;
            if sync {
                to.sync_all().map_err(StagingError::io("fsync", dst))?;
            }
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// Whether the regular file at `path` holds exactly `data`, read in chunks.
pub(crate) fn file_equals(path: &Path, data: &[u8]) -> Result<bool> {
    let mut file = open_nofollow(path)?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut offset = 0;
    loop {
        let n = file
            .read(&mut buf)
            .map_err(StagingError::io("read", path))?;
        if n == 0 {
            return Ok(offset == data.len());
        }
        if offset + n > data.len() || buf[..n] != data[offset..offset + n] {
            return Ok(false);
        }
        offset += n;
    }
}
