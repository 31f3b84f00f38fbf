//! [`View`]: a directory that looks like the repository at one generation, private to one
//! agent, and its teardown.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::error::{Result, StagingError};
use crate::snapshot::{self, Snapshot};
use crate::staging::Inner;
use crate::types::ChangeSet;
use crate::userns::ViewNamespace;
use crate::{overlay, sys};

/// How a view was made, and what its collection needs.
#[derive(Debug)]
pub(crate) enum ViewState {
    /// An overlay mounted at `mnt` with upper directory `upper`; this process reaches the
    /// mount at `outside` (`mnt` itself, or through `/proc` when it lives in `namespace`).
    Overlay {
        upper: PathBuf,
        mnt: PathBuf,
        outside: PathBuf,
        namespace: Option<ViewNamespace>,
    },
    /// A copy (or clone) at `tree`, with the stat snapshot taken when it was made.
    Copy { tree: PathBuf, snapshot: Snapshot },
    /// A repository of its own at `tree` borrowing the user's objects, with its stat
    /// snapshot.
    Worktree { tree: PathBuf, snapshot: Snapshot },
}

impl ViewState {
    fn path(&self) -> &Path {
        match self {
            ViewState::Overlay { outside, .. } => outside,
            ViewState::Copy { tree, .. } | ViewState::Worktree { tree, .. } => tree,
        }
    }
}

/// A private working directory showing the repository at one generation.
///
/// Nothing done inside reaches the repository or any generation: [`View::collect`] hands
/// the changes back as data. Dropping the view unmounts and removes it (slow removals run
/// on a background thread); [`View::discard`] does the same and reports errors.
#[derive(Debug)]
#[must_use = "dropping a view removes it"]
pub struct View {
    inner: Arc<Inner>,
    generation: u64,
    name: String,
    dir: PathBuf,
    state: Option<ViewState>,
}

impl View {
    pub(crate) fn new(
        inner: Arc<Inner>,
        generation: u64,
        name: &str,
        dir: PathBuf,
        state: ViewState,
    ) -> View {
        inner.live_views.fetch_add(1, Ordering::AcqRel);
        View {
            inner,
            generation,
            name: name.to_owned(),
            dir,
            state: Some(state),
        }
    }

    /// The directory the agent works in, as this process reaches it.
    ///
    /// For an overlay view in a user namespace ([`OverlayMode::UserNamespace`]) this is a
    /// `/proc/<pid>/root/...` path: right for reading and writing files from this process,
    /// but a child process should join the namespace instead, see [`View::namespace`].
    ///
    /// [`OverlayMode::UserNamespace`]: crate::OverlayMode::UserNamespace
    #[must_use]
    pub fn path(&self) -> &Path {
        self.state
            .as_ref()
            .map_or(self.dir.as_path(), ViewState::path)
    }

    /// The namespace a child process must join to work in this view: `Some` only for
    /// overlay views mounted in a user namespace. [`ViewNamespace::configure`] sets up a
    /// [`std::process::Command`] to join it and start in the view.
    #[must_use]
    pub fn namespace(&self) -> Option<&ViewNamespace> {
        match &self.state {
            Some(ViewState::Overlay { namespace, .. }) => namespace.as_ref(),
            _ => None,
        }
    }

    /// The generation the view started from.
    #[must_use]
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The view's name (unique in its run directory).
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What changed in the view relative to its generation, sorted by path.
    ///
    /// Overlay views read only the upper directory (whiteouts are deletions; opaque and
    /// renamed directories are compared whole); other backends walk the view and compare
    /// against the stat snapshot taken at creation, reading only files whose stat changed.
    /// Ignored paths are skipped. Symlinks are never followed; special files, symlinks
    /// leaving the view and non-UTF-8 names are listed in `rejected`.
    ///
    /// # Errors
    ///
    /// Reading the view or the generation fails.
    pub fn collect(&self) -> Result<ChangeSet, StagingError> {
        match self.state.as_ref() {
            Some(ViewState::Overlay { upper, outside, .. }) => {
                overlay::collect(&self.inner, self.generation, upper, outside)
            }
            Some(ViewState::Copy { tree, snapshot })
            | Some(ViewState::Worktree { tree, snapshot }) => {
                snapshot::collect(&self.inner, self.generation, tree, snapshot)
            }
            None => Ok(ChangeSet::default()),
        }
    }

    /// Unmounts and removes the view, reporting what went wrong.
    ///
    /// # Errors
    ///
    /// Unmounting or moving the view aside failed; the view may be left for
    /// [`cleanup`](crate::cleanup).
    pub fn discard(mut self) -> Result<(), StagingError> {
        self.teardown()
    }

    fn teardown(&mut self) -> Result<()> {
        let Some(state) = self.state.take() else {
            return Ok(());
        };
        self.inner.live_views.fetch_sub(1, Ordering::AcqRel);
        if let ViewState::Overlay { mnt, .. } = &state {
            overlay::unmount(&self.inner, mnt)?;
        }
        let trash = self
            .inner
            .trash_dir()
            .join(format!("{}-{}", self.name, unique_suffix()));
        std::fs::rename(&self.dir, &trash).map_err(StagingError::io("rename", &self.dir))?;
        // Deleting a large copy takes seconds on ext4: keep it off the caller's path.
        let handle = std::thread::Builder::new()
            .name("forge-staging-trash".into())
            .spawn(move || {
                let _ = sys::remove_any(&trash);
            })
            .map_err(StagingError::io("spawn trash thread", &self.dir))?;
        self.inner.reaper.lock().push(handle);
        Ok(())
    }
}

impl Drop for View {
    fn drop(&mut self) {
        let _ = self.teardown();
    }
}

/// A suffix that makes trash names unique within the process.
fn unique_suffix() -> String {
    use std::sync::atomic::AtomicU64;
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}
