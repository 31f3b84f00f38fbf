//! The crate's one directory walker: a directory per task on rayon's pool, applying the
//! run's [`Ignores`] (never the `.gitignore` files of the tree being walked, which an agent
//! may have edited), where a failure or a panic on any thread is an error for the caller,
//! never an empty or partial result.
//!
//! Entries are read with `getdents` and stated with `fstatat` relative to their
//! directory's descriptor, so a walk of 50,000 unchanged files costs no path lookups from
//! the root (the `ignore` crate's parallel walker, tried first, queues every file as a work
//! item and stats by path: about 1.8 times slower on the copy collection bench).

use std::borrow::Cow;
use std::ffi::{CStr, OsStr};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;
use rustix::fs::{AtFlags, FileType, Mode, OFlags};

use crate::error::{Result, StagingError};
use crate::ignores::Ignores;

/// Which entries a walk marks as ignored.
#[derive(Clone, Copy)]
pub(crate) enum Rules<'a> {
    /// The run's rules; ignored directories are reported but never entered.
    Apply(&'a Ignores),
    /// Every entry is ignored (walking the inside of an ignored directory).
    AllIgnored,
}

/// One entry the walk found.
pub(crate) struct Item<'a> {
    /// Its repository path (lossily converted when not UTF-8, see `utf8`).
    pub(crate) path: &'a str,
    /// Whether the whole repository path is valid UTF-8.
    pub(crate) utf8: bool,
    /// Its type from the directory listing (symlinks are not followed).
    pub(crate) file_type: FileType,
    /// Whether the rules ignore it.
    pub(crate) ignored: bool,
    root: &'a Path,
    parent_rel: &'a Path,
    name: &'a OsStr,
    name_c: &'a CStr,
    dir_fd: &'a OwnedFd,
}

impl Item<'_> {
    /// Its path relative to the walked root.
    pub(crate) fn rel(&self) -> PathBuf {
        self.parent_rel.join(self.name)
    }

    /// Where it is on disk.
    pub(crate) fn disk(&self) -> PathBuf {
        self.root.join(self.rel())
    }

    /// Its `lstat`, relative to its directory (no path lookup from the root).
    pub(crate) fn stat(&self) -> Result<rustix::fs::Stat> {
        rustix::fs::statat(self.dir_fd, self.name_c, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| StagingError::io("stat", self.disk())(e.into()))
    }
}

/// A directory still to read.
struct Pending {
    rel: PathBuf,
    path: String,
    utf8: bool,
}

/// What every task of one walk shares.
struct Shared<'a, A, F> {
    root: &'a Path,
    rules: Rules<'a>,
    visit: &'a F,
    results: Mutex<Vec<A>>,
    error: Mutex<Option<StagingError>>,
    failed: AtomicBool,
}

/// Walks the trees `starts` (repository paths of directories below `root`; `[""]` for the
/// whole tree) in parallel, calling `visit` once per entry below them (not for the start
/// directories themselves), each directory's entries before anything below them.
/// `visit` accumulates into an `A` (one per directory read) and returns whether to enter
/// a directory; under [`Rules::Apply`] ignored directories are never entered. Returns
/// every `A`.
///
/// # Errors
///
/// The first error of `visit` or of reading a directory, or a panic on any thread: the
/// accumulated results are dropped.
pub(crate) fn walk<A, F>(
    root: &Path,
    starts: &[String],
    rules: Rules<'_>,
    visit: F,
) -> Result<Vec<A>>
where
    A: Default + Send,
    F: Fn(&mut A, &Item<'_>) -> Result<bool> + Sync,
{
    let shared = Shared {
        root,
        rules,
        visit: &visit,
        results: Mutex::new(Vec::new()),
        error: Mutex::new(None),
        failed: AtomicBool::new(false),
    };
    let walked = catch_unwind(AssertUnwindSafe(|| {
        rayon::scope(|scope| {
            for start in starts {
                let dir = Pending {
                    rel: PathBuf::from(start),
                    path: start.clone(),
                    utf8: true,
                };
                let shared = &shared;
                scope.spawn(move |scope| read_dir(scope, shared, dir));
            }
        });
    }));
    if let Err(panic) = walked {
        let reason = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_owned());
        return Err(StagingError::Walk {
            path: root.to_owned(),
            reason: format!("a walker thread panicked: {reason}"),
        });
    }
    if let Some(e) = shared.error.into_inner() {
        return Err(e);
    }
    Ok(shared.results.into_inner())
}

/// Reads one directory, then queues its subdirectories.
fn read_dir<'s, A, F>(scope: &rayon::Scope<'s>, shared: &'s Shared<'s, A, F>, dir: Pending)
where
    A: Default + Send,
    F: Fn(&mut A, &Item<'_>) -> Result<bool> + Sync,
{
    if shared.failed.load(Ordering::Relaxed) {
        return;
    }
    let mut acc = A::default();
    let mut subdirs = Vec::new();
    if let Err(e) = read_one(shared, &dir, &mut acc, &mut subdirs) {
        shared.failed.store(true, Ordering::Relaxed);
        shared.error.lock().get_or_insert(e);
        return;
    }
    shared.results.lock().push(acc);
    for sub in subdirs {
        scope.spawn(move |scope| read_dir(scope, shared, sub));
    }
}

fn read_one<A, F>(
    shared: &Shared<'_, A, F>,
    dir: &Pending,
    acc: &mut A,
    subdirs: &mut Vec<Pending>,
) -> Result<()>
where
    F: Fn(&mut A, &Item<'_>) -> Result<bool>,
{
    let disk_dir = shared.root.join(&dir.rel);
    let io_err = |op| StagingError::io(op, &disk_dir);
    let fd = rustix::fs::open(
        &disk_dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::empty(),
    )
    .map_err(|e| io_err("open dir")(e.into()))?;
    let mut entries = rustix::fs::Dir::read_from(&fd).map_err(|e| io_err("read dir")(e.into()))?;
    // One buffer for every child's path: no allocation per entry.
    let mut path = String::with_capacity(dir.path.len() + 64);
    path.push_str(&dir.path);
    if !dir.path.is_empty() {
        path.push('/');
    }
    let prefix_len = path.len();
    while let Some(entry) = entries.read() {
        let entry = entry.map_err(|e| io_err("read dir")(e.into()))?;
        let name_c = entry.file_name();
        let bytes = name_c.to_bytes();
        if bytes == b"." || bytes == b".." {
            continue;
        }
        let name = OsStr::from_bytes(bytes);
        #[cfg(test)]
        tests::maybe_panic(name);
        let (name_str, utf8) = match std::str::from_utf8(bytes) {
            Ok(s) => (Cow::Borrowed(s), dir.utf8),
            Err(_) => (name.to_string_lossy(), false),
        };
        path.truncate(prefix_len);
        path.push_str(&name_str);
        let mut file_type = entry.file_type();
        if file_type == FileType::Unknown {
            let st = rustix::fs::statat(&fd, name_c, AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|e| StagingError::io("stat", disk_dir.join(name))(e.into()))?;
            file_type = FileType::from_raw_mode(st.st_mode);
        }
        let is_dir = file_type == FileType::Directory;
        let ignored = match shared.rules {
            Rules::Apply(ignores) => ignores.is_ignored_child(&path, is_dir),
            Rules::AllIgnored => true,
        };
        let item = Item {
            path: &path,
            utf8,
            file_type,
            ignored,
            root: shared.root,
            parent_rel: &dir.rel,
            name,
            name_c,
            dir_fd: &fd,
        };
        let descend = (shared.visit)(acc, &item)?;
        if descend && is_dir && !(ignored && matches!(shared.rules, Rules::Apply(_))) {
            subdirs.push(Pending {
                rel: item.rel(),
                path: path.clone(),
                utf8,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use std::fs;
    use std::path::Path;

    use crate::{Backend, Staging, StagingError, StagingOptions};

    /// A file name that makes the walker panic when it meets it (fault injection).
    const PANIC_NAME: &str = "forge-test-walker-panics-here";

    pub(super) fn maybe_panic(name: &std::ffi::OsStr) {
        if name == PANIC_NAME {
            panic!("injected walker panic at {}", Path::new(name).display());
        }
    }

    fn copy_staging(tmp: &Path) -> Staging {
        let repo = tmp.join("repo");
        for d in ["a/b", "c/d/e", "f"] {
            fs::create_dir_all(repo.join(d)).expect("mkdir");
            fs::write(repo.join(d).join("file"), d).expect("write");
        }
        Staging::open(
            &repo,
            &tmp.join("run"),
            StagingOptions::with_backend(Some(Backend::Copy)),
        )
        .expect("open")
    }

    #[test]
    fn issue14_05_walker_panic_is_an_error_not_an_empty_change_set() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let staging = copy_staging(tmp.path());
        let view = staging.create_view(0, "v").expect("view");
        fs::remove_dir_all(view.path().join("a")).expect("delete a");
        fs::write(view.path().join("c/d").join(PANIC_NAME), "boom").expect("write");
        let err = view
            .collect()
            .expect_err("a panicking walker must fail the collection");
        assert!(
            matches!(&err, StagingError::Walk { reason, .. } if reason.contains("panicked")),
            "{err}"
        );
    }

    #[test]
    fn issue14_05_walker_read_failure_is_an_error() {
        use rustix::fs::{Mode, OFlags};
        let tmp = tempfile::tempdir().expect("tempdir");
        let staging = copy_staging(tmp.path());
        let view = staging.create_view(0, "v").expect("view");
        // A directory chain longer than PATH_MAX: reading its bottom by path fails
        // (ENAMETOOLONG), even as root.
        let name = "n".repeat(250);
        let mut fd = rustix::fs::open(
            view.path().join("f"),
            OFlags::DIRECTORY | OFlags::RDONLY,
            Mode::empty(),
        )
        .expect("open");
        for _ in 0..20 {
            rustix::fs::mkdirat(&fd, name.as_str(), Mode::from_raw_mode(0o755)).expect("mkdirat");
            fd = rustix::fs::openat(
                &fd,
                name.as_str(),
                OFlags::DIRECTORY | OFlags::RDONLY,
                Mode::empty(),
            )
            .expect("openat");
        }
        let err = view
            .collect()
            .expect_err("an unreadable directory must fail the collection");
        assert!(
            matches!(err, StagingError::Io { .. } | StagingError::Walk { .. }),
            "{err}"
        );
    }
}
