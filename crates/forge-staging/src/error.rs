//! The crate's error type: every variant names the path, view or generation it is about.

use std::io;
use std::path::PathBuf;

use crate::Backend;

/// What went wrong in a staging operation.
///
/// Every message is lowercase and names the path, view or generation concerned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StagingError {
    /// A file-system call failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// The operation that failed, e.g. `"read"`, `"rename"`.
        op: &'static str,
        /// The path it was applied to.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// A repository-relative path is malformed (absolute, `..`, empty component, NUL).
    #[error("invalid repository path {path:?}: {reason}")]
    InvalidPath {
        /// The path as given.
        path: String,
        /// Why it is rejected.
        reason: &'static str,
    },
    /// The generation does not exist (yet), or was folded into the repository by a publish.
    #[error(
        "generation {generation} is not readable (oldest readable is {oldest}, head is {head})"
    )]
    NoSuchGeneration {
        /// The generation asked for.
        generation: u64,
        /// The oldest generation still readable.
        oldest: u64,
        /// The newest generation.
        head: u64,
    },
    /// The requested backend cannot work here.
    #[error("staging backend {backend} is not available: {reason}")]
    BackendUnavailable {
        /// The backend asked for.
        backend: Backend,
        /// Why it cannot be used.
        reason: String,
    },
    /// A view name is empty, contains `/`, or is already in use in this run directory.
    #[error("invalid view name {name:?}: {reason}")]
    InvalidViewName {
        /// The name as given.
        name: String,
        /// Why it is rejected.
        reason: &'static str,
    },
    /// A [`LayerChange`](crate::LayerChange) cannot be applied to the head generation.
    #[error("invalid change to {path}: {reason}")]
    InvalidChange {
        /// The repository path of the change.
        path: String,
        /// Why it cannot be applied.
        reason: String,
    },
    /// Publishing was asked for while views (possibly leftovers of a crash) still exist.
    #[error(
        "cannot publish {run_dir} while {n_views} view(s) exist; drop them or run cleanup first"
    )]
    ViewsLive {
        /// The run directory.
        run_dir: PathBuf,
        /// How many views were found.
        n_views: usize,
    },
    /// Mounting or unmounting an overlay failed.
    #[error("{op} overlay at {path}: {source}")]
    Mount {
        /// `"mount"` or `"unmount"`.
        op: &'static str,
        /// The mount point.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// A `git` command failed (worktree backend, or reading git's ignore rules).
    #[error("git {args} in {dir} failed: {message}")]
    Git {
        /// The arguments given to git.
        args: String,
        /// The directory it ran in.
        dir: PathBuf,
        /// Its standard error, or why it could not start.
        message: String,
    },
    /// The run directory lies inside the repository, so views would see themselves.
    #[error("run directory {run_dir} is inside the repository {repo}; put it outside")]
    RunDirInsideRepo {
        /// The run directory.
        run_dir: PathBuf,
        /// The repository.
        repo: PathBuf,
    },
    /// Another run held the repository's publish lock for the whole wait.
    #[error(
        "cannot publish into {repo}: {holder} is publishing (waited {}s); try again when it is done",
        waited.as_secs()
    )]
    PublishLocked {
        /// The repository.
        repo: PathBuf,
        /// Who holds the lock (`the run in RUN_DIR`).
        holder: String,
        /// How long this publish waited.
        waited: std::time::Duration,
    },
    /// Another run's publish into the repository was interrupted and must be finished
    /// first: the working tree holds a mix of two of its generations.
    #[error(
        "cannot publish into {repo}: the publish of the run in {run_dir} was interrupted; run `forge resume {run_dir}` first"
    )]
    PublishInterrupted {
        /// The repository.
        repo: PathBuf,
        /// The run directory of the interrupted publish.
        run_dir: PathBuf,
    },
    /// A file in the run directory does not have the expected form.
    #[error("corrupt run directory entry {path}: {reason}")]
    Corrupt {
        /// The offending file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// An ignore file (or [`StagingOptions::ignores`](crate::StagingOptions::ignores))
    /// holds a pattern that does not parse.
    #[error("bad ignore pattern in {source_file}: {reason}")]
    Ignore {
        /// The file the pattern came from.
        source_file: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A directory walk failed or one of its threads panicked: the walk's result is not
    /// used (a partial walk would read as deleted files).
    #[error("walking {path} failed: {reason}")]
    Walk {
        /// The directory walked.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

impl StagingError {
    /// Builds an [`StagingError::Io`] for `op` on `path`.
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| StagingError::Io { op, path, source }
    }
}

/// Result alias used inside the crate.
pub(crate) type Result<T, E = StagingError> = std::result::Result<T, E>;
