//! The plain data the crate hands out and takes in: entries, backends, options, change sets.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// The state of one repository path: what a generation or a view holds there.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Entry {
    /// A regular file.
    File {
        /// Its bytes.
        data: Vec<u8>,
        /// Whether any execute bit is set (the only mode bit forge tracks, as git does).
        executable: bool,
    },
    /// A symbolic link, never followed.
    Symlink {
        /// The link's target as stored.
        target: PathBuf,
    },
    /// A directory (its contents are separate paths).
    Dir,
}

impl Entry {
    /// The entry's kind, without its contents.
    #[must_use]
    pub fn kind(&self) -> EntryKind {
        match self {
            Entry::File { .. } => EntryKind::File,
            Entry::Symlink { .. } => EntryKind::Symlink,
            Entry::Dir => EntryKind::Dir,
        }
    }
}

/// The kind of an [`Entry`], without its contents.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A symbolic link.
    Symlink,
    /// A directory.
    Dir,
}

/// How views are made.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum Backend {
    /// overlayfs (Linux; as root, or unprivileged in a user namespace, see
    /// [`OverlayMode`]): O(1) views, change collection from the upper directory.
    Overlay,
    /// Per-file clones (`FICLONE`) on btrfs, XFS and other reflink-capable file systems.
    Reflink,
    /// A parallel copy of the generation: portable, the fallback.
    Copy,
    /// A git repository of its own per view, borrowing the repository's objects, with
    /// `HEAD` checked out and the working changes and the generation's layers applied:
    /// needs a git repository.
    Worktree,
}

impl Backend {
    /// Every backend, in the order `auto` prefers them.
    pub const ALL: [Backend; 4] = [
        Backend::Overlay,
        Backend::Reflink,
        Backend::Copy,
        Backend::Worktree,
    ];

    /// The lowercase name used by `Display` and `FromStr`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Backend::Overlay => "overlay",
            Backend::Reflink => "reflink",
            Backend::Copy => "copy",
            Backend::Worktree => "worktree",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The error of parsing a [`Backend`] name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown staging backend {0:?} (expected overlay, reflink, copy or worktree)")]
pub struct ParseBackendError(String);

impl FromStr for Backend {
    type Err = ParseBackendError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Backend::ALL
            .into_iter()
            .find(|b| b.name() == s)
            .ok_or_else(|| ParseBackendError(s.to_owned()))
    }
}

/// How the overlay backend mounts its views.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash, Default)]
pub enum OverlayMode {
    /// [`OverlayMode::Mount`] when it works (root), else [`OverlayMode::UserNamespace`].
    #[default]
    Auto,
    /// Plain mounts in this process's mount namespace: needs root (`CAP_SYS_ADMIN`).
    /// Directory renames work (`redirect_dir=on`).
    Mount,
    /// Mounts inside a user and mount namespace this process creates (Linux 5.11 or
    /// newer, no privileges needed), with `userxattr`. Views are reached from this
    /// process through `/proc`, and processes must join the namespace to work in them:
    /// see [`ViewNamespace`](crate::ViewNamespace). Renaming a directory that came from
    /// a lower generation fails with `EXDEV` (overlayfs allows no redirects there);
    /// `mv` and most tools then copy and delete instead.
    UserNamespace,
}

/// How [`Staging::open`](crate::Staging::open) sets a run up.
#[derive(Clone, Debug)]
pub struct StagingOptions {
    /// The backend to use; `None` chooses automatically (overlay, then reflink, then copy).
    pub backend: Option<Backend>,
    /// Extra ignored paths, in gitignore syntax rooted at the repository (`build/`, `*.log`,
    /// `docs/gen`), on top of git's rules (or the plain-directory defaults). `.git` at any
    /// depth is always ignored; a path git tracks never is.
    pub ignores: Vec<String>,
    /// Whether `target` and `node_modules` are ignored at any depth when the repository is
    /// not a git work tree (the default). In a git work tree git's rules decide instead.
    pub default_ignores: bool,
    /// The exclude file git reads when `core.excludesFile` is not set: git's default is
    /// `$XDG_CONFIG_HOME/git/ignore`, else `$HOME/.config/git/ignore`. The library reads no
    /// environment variable, so the caller (the CLI) fills this in; `None` reads none.
    /// `core.excludesFile` itself is read with `git config` at [`Staging::open`](crate::Staging::open).
    pub git_excludes_file: Option<PathBuf>,
    /// The most lower directories an overlay mount may stack before layers are compacted.
    /// overlayfs accepts 500; the option string (one page) usually binds first.
    pub max_overlay_layers: usize,
    /// How overlay views are mounted (when the backend is overlay).
    pub overlay_mode: OverlayMode,
    /// How long a publish waits for another run publishing into the same repository.
    pub publish_lock_timeout: Duration,
}

impl Default for StagingOptions {
    fn default() -> Self {
        StagingOptions {
            backend: None,
            ignores: Vec::new(),
            default_ignores: true,
            git_excludes_file: None,
            max_overlay_layers: 128,
            overlay_mode: OverlayMode::Auto,
            publish_lock_timeout: Duration::from_secs(600),
        }
    }
}

impl StagingOptions {
    /// Options with a fixed backend (or `None` for auto) and the default ignores.
    #[must_use]
    pub fn with_backend(backend: Option<Backend>) -> Self {
        StagingOptions {
            backend,
            ..StagingOptions::default()
        }
    }
}

/// One path's new state, for [`Staging::commit`](crate::Staging::commit).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct LayerChange {
    /// Repository-relative, `/`-separated path.
    pub path: String,
    /// The new state; `None` deletes the path (and everything below it that is not
    /// ignored).
    pub entry: Option<Entry>,
}

/// How a path changed between a view's generation and the view.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum ChangeKind {
    /// The path did not exist.
    Added,
    /// Same kind; the file's bytes (maybe also its mode) or the link's target changed.
    Modified,
    /// The path no longer exists.
    Deleted,
    /// A file whose bytes are unchanged but whose executable bit flipped.
    ModeChanged,
    /// The kind changed (file, symlink, directory).
    TypeChanged,
}

/// One changed path of a view.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Change {
    /// Repository-relative, `/`-separated path.
    pub path: String,
    /// What happened to it.
    pub kind: ChangeKind,
    /// The new state; `None` when deleted.
    pub entry: Option<Entry>,
}

impl Change {
    /// The change as a [`LayerChange`] for [`Staging::commit`](crate::Staging::commit).
    #[must_use]
    pub fn to_layer_change(&self) -> LayerChange {
        LayerChange {
            path: self.path.clone(),
            entry: self.entry.clone(),
        }
    }
}

/// A path of a view that was not taken into the change set.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Rejected {
    /// The path (lossily converted when it is not UTF-8).
    pub path: String,
    /// Why it was rejected.
    pub reason: RejectReason,
}

/// Why a path was left out of a change set.
#[derive(Clone, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum RejectReason {
    /// A FIFO, socket, or character or block device: never copied.
    Special(&'static str),
    /// A symlink whose target leaves the view (absolute, or `..` above the root).
    EscapingSymlink(PathBuf),
    /// A name that is not valid UTF-8.
    NonUtf8Name,
    /// A directory that holds ignored paths (the named one, e.g. a nested repository's
    /// `.git`) was replaced by a file or symlink: merging it would remove them.
    HidesIgnored(String),
    /// A FIFO, socket or device of the repository was deleted: special files are not
    /// staged, so neither is their deletion.
    SpecialDeleted(&'static str),
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RejectReason::Special(what) => write!(f, "{what} files are not staged"),
            RejectReason::EscapingSymlink(t) => {
                write!(f, "symlink target {} leaves the view", t.display())
            }
            RejectReason::NonUtf8Name => f.write_str("name is not valid UTF-8"),
            RejectReason::HidesIgnored(p) => write!(
                f,
                "directory replaced by a file or symlink would remove the ignored {p}: not merged"
            ),
            RejectReason::SpecialDeleted(what) => {
                write!(f, "special file ({what}) deleted: not merged")
            }
        }
    }
}

/// What a view changed relative to its generation, sorted by path.
///
/// Directories are paths of their own: a new directory is `Added` with [`Entry::Dir`], a
/// removed one is `Deleted` along with every path below it, and a file or symlink replaced
/// by a directory (or back) is `TypeChanged`. Ignored paths are never deleted: a removed
/// directory that held some (a nested repository's `.git`, a build directory) is not
/// `Deleted` itself, only its collected entries are, and replacing it by a file is
/// [`Rejected`].
#[derive(Clone, PartialEq, Eq, Debug, Default)]
#[must_use]
pub struct ChangeSet {
    /// The changes, sorted by path.
    pub changes: Vec<Change>,
    /// Paths left out, sorted by path.
    pub rejected: Vec<Rejected>,
}

impl ChangeSet {
    /// Whether nothing changed and nothing was rejected.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.rejected.is_empty()
    }

    /// The changes as [`LayerChange`]s, ready for [`Staging::commit`](crate::Staging::commit).
    #[must_use]
    pub fn to_layer_changes(&self) -> Vec<LayerChange> {
        self.changes.iter().map(Change::to_layer_change).collect()
    }
}

/// What [`Staging::publish`](crate::Staging::publish) did.
#[derive(Clone, PartialEq, Eq, Debug)]
#[must_use]
#[non_exhaustive]
pub struct PublishReport {
    /// The generation now on disk in the repository (except at [`PublishReport::conflicts`]).
    pub generation: u64,
    /// Paths written (files, symlinks, directories).
    pub written: usize,
    /// Paths removed.
    pub removed: usize,
    /// Whether an interrupted publish was finished first.
    pub resumed: bool,
    /// Paths both the user (during the run) and the run changed, merged cleanly.
    pub merged: usize,
    /// Paths left as the user has them because the run's change could not be merged.
    pub conflicts: Vec<PublishConflict>,
}

impl PublishReport {
    /// Whether every path of the generation reached the working tree.
    #[must_use]
    pub fn is_clean(&self) -> bool {
        self.conflicts.is_empty()
    }
}

/// A path publishing left as the user has it: the user changed it during the run and the
/// run's version could not be merged with that change.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct PublishConflict {
    /// Repository-relative path.
    pub path: String,
    /// Why it could not be merged.
    pub kind: PublishConflictKind,
    /// Where the run's version was kept (`run_dir/publish-conflicts/PATH`); `None` when the
    /// run deleted the path or wanted a directory there.
    pub kept: Option<PathBuf>,
}

/// Why a path could not be published.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
#[non_exhaustive]
pub enum PublishConflictKind {
    /// Both changed the content and the merge conflicted (or the file is binary, or the
    /// kinds differ).
    Content,
    /// The user changed the path; the run deleted it (or a directory holding it).
    DeletedByRun,
    /// The user deleted the path; the run changed it.
    DeletedByUser,
    /// The user changed the path and its content at the start is unknown (a plain directory
    /// has only stat fingerprints; a file both created), so there is nothing to merge with.
    NoBase,
    /// Something of the user's is in the way: a file where the run needs a directory (at
    /// the path or a parent), or a directory holding what the run never saw (ignored or
    /// new files, a nested `.git`) where the run wants a file.
    Blocked,
}

impl fmt::Display for PublishConflictKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PublishConflictKind::Content => "changed by the user and the run; the merge conflicts",
            PublishConflictKind::DeletedByRun => "changed by the user, deleted by the run",
            PublishConflictKind::DeletedByUser => "deleted by the user, changed by the run",
            PublishConflictKind::NoBase => {
                "changed by the user during the run, with no base to merge against"
            }
            PublishConflictKind::Blocked => {
                "something of the user's is in the way (a file where the run needs a directory, \
                 or a directory holding files the run never saw)"
            }
        })
    }
}

/// The merge [`Staging::publish_with`](crate::Staging::publish_with) calls for a path both
/// the user and the run changed: `(path, base, ours, theirs)`, `None` = absent.
pub type PublishMergeFn =
    dyn Fn(&str, Option<&Entry>, Option<&Entry>, Option<&Entry>) -> PublishMerge + Sync;

/// The caller's decision for a path the user and the run both changed, for
/// [`Staging::publish_with`](crate::Staging::publish_with).
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum PublishMerge {
    /// Write this (`None`: remove the path).
    Merged(Option<Entry>),
    /// Leave the user's version and report the path.
    Conflict,
}

/// What [`cleanup`](crate::cleanup) removed.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
#[must_use]
pub struct CleanupReport {
    /// Mount points unmounted.
    pub unmounted: Vec<PathBuf>,
    /// View directories removed.
    pub removed_views: Vec<PathBuf>,
    /// Half-written layers and temporary directories removed.
    pub removed_temp: Vec<PathBuf>,
}
