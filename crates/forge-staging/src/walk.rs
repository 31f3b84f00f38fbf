//! The crate's one directory walker: the `ignore` crate's parallel walker, applying the
//! run's [`Ignores`] (never the `.gitignore` files of the tree being walked, which an agent
//! may have edited), where a failure or a panic on any thread is an error for the caller,
//! never an empty or partial result.

use std::borrow::Cow;
use std::fs::FileType;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use ignore::{DirEntry, WalkBuilder, WalkState};
use parking_lot::Mutex;

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
    pub(crate) path: Cow<'a, str>,
    /// Whether the whole repository path is valid UTF-8.
    pub(crate) utf8: bool,
    /// Its path relative to the walked root.
    pub(crate) rel: &'a Path,
    /// Where it is on disk.
    pub(crate) disk: &'a Path,
    /// Its type (symlinks are not followed).
    pub(crate) file_type: FileType,
    /// Whether the rules ignore it.
    pub(crate) ignored: bool,
    /// The walker's entry (for its metadata).
    pub(crate) entry: &'a DirEntry,
}

/// Walks the trees `starts` (repository paths of directories below `root`; `[""]` for the
/// whole tree) on a few threads, calling `visit` once per entry below them (not for the
/// start directories themselves), parents before their children. `visit` accumulates
/// into its thread's `A` and returns whether to enter a directory; under
/// [`Rules::Apply`] ignored directories are never entered. Returns every thread's `A`.
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
    let Some((first, rest)) = starts.split_first() else {
        return Ok(Vec::new());
    };
    let mut builder = WalkBuilder::new(root.join(first));
    for start in rest {
        builder.add(root.join(start));
    }
    builder
        .standard_filters(false)
        .follow_links(false)
        .same_file_system(false)
        .min_depth(Some(1))
        .threads(threads());
    let results: Mutex<Vec<A>> = Mutex::new(Vec::new());
    let error: Mutex<Option<StagingError>> = Mutex::new(None);
    let walked = catch_unwind(AssertUnwindSafe(|| {
        builder.build_parallel().run(|| {
            let mut sink = Sink {
                acc: Some(A::default()),
                out: &results,
            };
            let visit = &visit;
            let error = &error;
            Box::new(move |entry| {
                let fail = |e: StagingError| {
                    error.lock().get_or_insert(e);
                    WalkState::Quit
                };
                let entry = match entry {
                    Ok(entry) => entry,
                    Err(e) => {
                        return fail(StagingError::Walk {
                            path: root.to_owned(),
                            reason: e.to_string(),
                        });
                    }
                };
                let Some(acc) = sink.acc.as_mut() else {
                    return WalkState::Quit;
                };
                match visit_one(root, rules, &entry, acc, visit) {
                    Ok(true) => WalkState::Continue,
                    Ok(false) => WalkState::Skip,
                    Err(e) => fail(e),
                }
            })
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
    if let Some(e) = error.into_inner() {
        return Err(e);
    }
    Ok(results.into_inner())
}

/// Classifies one entry and hands it to `visit`; returns whether to enter it.
fn visit_one<A, F>(
    root: &Path,
    rules: Rules<'_>,
    entry: &DirEntry,
    acc: &mut A,
    visit: &F,
) -> Result<bool>
where
    F: Fn(&mut A, &Item<'_>) -> Result<bool>,
{
    #[cfg(test)]
    tests::maybe_panic(entry.path());
    let disk = entry.path();
    let rel = disk.strip_prefix(root).map_err(|_| StagingError::Walk {
        path: root.to_owned(),
        reason: format!("the walker returned {} outside the root", disk.display()),
    })?;
    let file_type = entry.file_type().ok_or_else(|| StagingError::Walk {
        path: disk.to_owned(),
        reason: "no file type".to_owned(),
    })?;
    let (path, utf8) = match rel.to_str() {
        Some(s) => (Cow::Borrowed(s), true),
        None => (rel.to_string_lossy(), false),
    };
    let is_dir = file_type.is_dir();
    let ignored = match rules {
        Rules::Apply(ignores) => ignores.is_ignored_child(&path, is_dir),
        Rules::AllIgnored => true,
    };
    let item = Item {
        path,
        utf8,
        rel,
        disk,
        file_type,
        ignored,
        entry,
    };
    let descend = visit(acc, &item)?;
    Ok(descend && is_dir && !(ignored && matches!(rules, Rules::Apply(_))))
}

/// A thread's accumulator, handed over when the thread's visitor is dropped.
struct Sink<'a, A> {
    acc: Option<A>,
    out: &'a Mutex<Vec<A>>,
}

impl<A> Drop for Sink<'_, A> {
    fn drop(&mut self) {
        if let Some(acc) = self.acc.take() {
            self.out.lock().push(acc);
        }
    }
}

/// How many threads walk: the machine's parallelism, at most four.
fn threads() -> usize {
    std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, 4)
}

#[cfg(test)]
pub(crate) mod tests {
    use std::fs;
    use std::path::Path;

    use crate::{Backend, Staging, StagingError, StagingOptions};

    /// A file name that makes the walker panic when it meets it (fault injection).
    const PANIC_NAME: &str = "forge-test-walker-panics-here";

    pub(super) fn maybe_panic(path: &Path) {
        if path.file_name().is_some_and(|n| n == PANIC_NAME) {
            panic!("injected walker panic at {}", path.display());
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
        assert!(matches!(err, StagingError::Walk { .. }), "{err}");
    }
}
