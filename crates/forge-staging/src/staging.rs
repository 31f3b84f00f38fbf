//! [`Staging`]: one run's generations over an immutable repository, and the views made of
//! them.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;

use crate::base::Baseline;
use crate::error::{Result, StagingError};
use crate::ignores::Ignores;
use crate::layers::Store;
use crate::paths;
use crate::types::PublishMergeFn;
use crate::types::{Backend, Entry, LayerChange, OverlayMode, PublishReport, StagingOptions};
use crate::userns::Namespace;
use crate::view::View;
use crate::{base, copy, overlay, publish, sys, worktree};

/// The state shared by a [`Staging`] and its views.
#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) repo: PathBuf,
    pub(crate) run_dir: PathBuf,
    pub(crate) store: Store,
    pub(crate) ignores: Ignores,
    pub(crate) backend: Backend,
    pub(crate) reason: String,
    /// The user namespace overlay views are mounted in ([`OverlayMode::UserNamespace`]).
    pub(crate) ns: Option<Arc<Namespace>>,
    pub(crate) opts: StagingOptions,
    pub(crate) live_views: AtomicUsize,
    /// Serializes building folded overlay layers.
    pub(crate) flat_lock: Mutex<()>,
    /// Background removals of torn-down views.
    pub(crate) reaper: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

impl Inner {
    pub(crate) fn views_dir(&self) -> PathBuf {
        self.run_dir.join("views")
    }

    pub(crate) fn trash_dir(&self) -> PathBuf {
        self.run_dir.join("trash")
    }
}

/// One run's staging area: the repository as generation 0, a stack of immutable layers
/// (generations 1..=head) in the run directory, and the views agents work in.
///
/// The repository directory is the base of every generation (overlay views use it as their
/// lowest layer, and `read` of any generation reads through to it). Only
/// [`Staging::publish`] writes to it, merging with what the user changed since
/// [`Staging::open`] (a snapshot taken then; see [`Staging::changed_since_start`]).
///
/// `Staging` is `Send + Sync`: views, reads and commits may come from many threads;
/// commits are serialized.
#[derive(Debug, Clone)]
#[must_use]
pub struct Staging {
    inner: Arc<Inner>,
}

impl Staging {
    /// Opens the run directory `run_dir` over the repository `repo`, creating it if needed.
    ///
    /// Re-opening a run directory (to resume after a crash) finds the committed layers and
    /// removes half-written ones; a publish that was interrupted is finished by the next
    /// [`Staging::publish`]. Leftover views of a crashed process are not touched here: call
    /// [`cleanup`](crate::cleanup) first.
    ///
    /// With `opts.backend == None` the backend is chosen automatically: overlay when
    /// mounting one works (Linux: as root, else in a user namespace, see
    /// [`OverlayMode`]), else reflink when the run directory's file system clones files,
    /// else copy. [`Staging::backend_reason`] says why.
    ///
    /// # Errors
    ///
    /// The repository is not a directory, `run_dir` lies inside it, the backend asked for
    /// cannot work here, or the run directory cannot be created or read.
    pub fn open(
        repo: &Path,
        run_dir: &Path,
        opts: StagingOptions,
    ) -> Result<Staging, StagingError> {
        let repo = fs::canonicalize(repo).map_err(StagingError::io("open repository", repo))?;
        if !repo.is_dir() {
            return Err(StagingError::Io {
                op: "open repository",
                path: repo,
                source: std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a directory"),
            });
        }
        fs::create_dir_all(run_dir).map_err(StagingError::io("mkdir", run_dir))?;
        let run_dir =
            fs::canonicalize(run_dir).map_err(StagingError::io("open run directory", run_dir))?;
        if run_dir.starts_with(&repo) {
            return Err(StagingError::RunDirInsideRepo { run_dir, repo });
        }
        for sub in ["views", "trash"] {
            let d = run_dir.join(sub);
            fs::create_dir_all(&d).map_err(StagingError::io("mkdir", &d))?;
        }
        let Choice {
            backend,
            reason,
            ns,
        } = choose_backend(&repo, &run_dir, &opts)?;
        let whiteouts = sys::can_make_whiteouts(&run_dir);
        let (store, _removed) = Store::open(&repo, &run_dir.join("layers"), whiteouts)?;
        if let Some(published) = publish::published_generation(&run_dir)? {
            store.set_oldest(published);
        }
        let ignores = Ignores::load(&repo, &opts)?;
        // The working tree as this run starts: publishing merges against it. A resumed run
        // keeps the snapshot of its start.
        base::ensure(&repo, &run_dir, &ignores)?;
        let inner = Inner {
            repo,
            run_dir,
            store,
            ignores,
            backend,
            reason,
            ns,
            opts,
            live_views: AtomicUsize::new(0),
            flat_lock: Mutex::new(()),
            reaper: Mutex::new(Vec::new()),
        };
        Ok(Staging {
            inner: Arc::new(inner),
        })
    }

    /// The backend views are made with.
    #[must_use]
    pub fn backend(&self) -> Backend {
        self.inner.backend
    }

    /// Why that backend was chosen (or why the one asked for fell back).
    #[must_use]
    pub fn backend_reason(&self) -> &str {
        &self.inner.reason
    }

    /// How overlay views are mounted: `Some` (never [`OverlayMode::Auto`]) when the
    /// backend is overlay.
    #[must_use]
    pub fn overlay_mode(&self) -> Option<OverlayMode> {
        (self.inner.backend == Backend::Overlay).then(|| overlay::mode(self.inner.ns.as_ref()))
    }

    /// The repository (generation 0), canonicalized.
    #[must_use]
    pub fn repo(&self) -> &Path {
        &self.inner.repo
    }

    /// The run directory, canonicalized.
    #[must_use]
    pub fn run_dir(&self) -> &Path {
        &self.inner.run_dir
    }

    /// The newest generation (0 before any commit).
    #[must_use]
    pub fn head(&self) -> u64 {
        self.inner.store.head()
    }

    /// The oldest generation that can still be read or viewed: 0, or the generation last
    /// published into the repository.
    #[must_use]
    pub fn oldest(&self) -> u64 {
        self.inner.store.oldest()
    }

    /// Whether `path` is skipped by change collection (git's ignore rules as the run
    /// opened, see [`StagingOptions::ignores`]); a path that is a directory in the head
    /// generation is matched as a directory.
    #[must_use]
    pub fn is_ignored(&self, path: &str) -> bool {
        let is_dir = self
            .inner
            .store
            .lookup(self.head(), path)
            .is_ok_and(|l| l.is_some_and(|l| l.kind == crate::EntryKind::Dir));
        self.inner.ignores.is_ignored(path, is_dir)
    }

    /// How many views of this staging are alive in this process.
    #[must_use]
    pub fn live_views(&self) -> usize {
        self.inner.live_views.load(Ordering::Acquire)
    }

    /// Waits until the background removals of dropped views have finished.
    pub fn wait_for_teardown(&self) {
        let handles = std::mem::take(&mut *self.inner.reaper.lock());
        for h in handles {
            let _ = h.join();
        }
    }

    /// Makes a view of `generation` named `name` (a single path component, unique in the
    /// run directory). Views of older generations keep working after newer commits.
    ///
    /// # Errors
    ///
    /// The generation is not readable, the name is bad or taken, or the backend fails
    /// (mount, copy, git).
    pub fn create_view(&self, generation: u64, name: &str) -> Result<View, StagingError> {
        if name.is_empty() || name.contains('/') || name.starts_with('.') || name.contains('\0') {
            return Err(StagingError::InvalidViewName {
                name: name.to_owned(),
                reason: "must be one path component not starting with `.`",
            });
        }
        let stack = self.inner.store.stack(generation)?;
        let dir = self.inner.views_dir().join(name);
        match fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(StagingError::InvalidViewName {
                    name: name.to_owned(),
                    reason: "already in use",
                });
            }
            Err(e) => return Err(StagingError::io("mkdir", &dir)(e)),
        }
        let made = match self.inner.backend {
            Backend::Overlay => overlay::create(&self.inner, &stack, &dir),
            Backend::Copy | Backend::Reflink => copy::create(&self.inner, &stack, &dir),
            Backend::Worktree => worktree::create(&self.inner, &stack, &dir),
        };
        match made {
            Ok(state) => Ok(View::new(
                Arc::clone(&self.inner),
                generation,
                name,
                dir,
                state,
            )),
            Err(e) => {
                let _ = sys::remove_any(&dir);
                Err(e)
            }
        }
    }

    /// The entry at `path` in `generation` (`base@g` for the merger), reading through the
    /// layers to the repository; `None` when absent.
    ///
    /// # Errors
    ///
    /// The path is malformed, the generation is not readable, or reading fails.
    pub fn read(&self, generation: u64, path: &str) -> Result<Option<Entry>, StagingError> {
        self.inner.store.read(generation, path)
    }

    /// Every path of `generation` below the directory `dir` (`""` for the whole tree),
    /// sorted; ignored paths included.
    ///
    /// # Errors
    ///
    /// The generation is not readable or a directory cannot be listed.
    pub fn list(&self, generation: u64, dir: &str) -> Result<Vec<String>, StagingError> {
        if !dir.is_empty() {
            paths::validate(dir)?;
        }
        let mut out: Vec<String> = self
            .inner
            .store
            .subtree(generation, dir)?
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        out.sort();
        Ok(out)
    }

    /// Commits `changes` on top of the head as a new layer and returns its generation.
    ///
    /// The layer is written into a temporary directory, fsynced and renamed into place, so
    /// after a crash it either exists whole or not at all. A deletion removes the path and
    /// everything below it except ignored paths (see [`Staging::is_ignored`]): a directory
    /// that holds some loses its other entries and stays. Deleting an absent path is a no-op.
    ///
    /// # Errors
    ///
    /// A path is malformed or listed twice, a change needs a parent directory that the head
    /// lacks, or writing fails.
    pub fn commit(&self, changes: &[LayerChange]) -> Result<u64, StagingError> {
        self.inner.store.commit(changes, &self.inner.ignores)
    }

    /// As [`commit`](Self::commit), recording `label` (for forge-core, the task id) in the
    /// layer's manifest, where [`layer_labels`](Self::layer_labels) reads it back.
    ///
    /// # Errors
    ///
    /// As [`commit`](Self::commit).
    pub fn commit_for(&self, label: &str, changes: &[LayerChange]) -> Result<u64, StagingError> {
        self.inner
            .store
            .commit_labelled(changes, &self.inner.ignores, Some(label))
    }

    /// Every committed generation with the label it was committed with (`None` for
    /// [`commit`](Self::commit)), oldest first: what the layers on disk say was committed,
    /// whatever a caller's own records say.
    #[must_use]
    pub fn layer_labels(&self) -> Vec<(u64, Option<String>)> {
        self.inner.store.labels()
    }

    /// Writes the head generation into the repository, crash-safely, without
    /// overwriting what the user changed during the run: [`Staging::publish_with`] with no
    /// merge, so every path both the user and the run changed is a conflict in the report.
    ///
    /// # Errors
    ///
    /// As [`Staging::publish_with`].
    pub fn publish(&self) -> Result<PublishReport, StagingError> {
        publish::publish(&self.inner, None, None)
    }

    /// Merges the head generation into the working tree, crash-safely.
    ///
    /// Per path the layers touched: when the working tree still holds what the run started
    /// from (the snapshot [`Staging::open`] took), the generation's version is written;
    /// when the run did not change the path, the user's version stays; else `merge`
    /// decides from `(path, base, ours, theirs)` (ours = the working tree now, theirs = the
    /// generation; `None` = absent). A conflict, or a change with no known base (a plain
    /// directory's snapshot has no contents), leaves the user's version, keeps the run's in
    /// `run_dir/publish-conflicts/PATH` and is listed in [`PublishReport::conflicts`].
    ///
    /// Files are staged where no repository path leads (`$GIT_DIR/forge/publish-tmp`),
    /// verified and renamed into place, keeping the owner and permission bits of the file
    /// they replace. Publishes of runs on the same repository are serialized by a lock
    /// (waiting up to [`StagingOptions::publish_lock_timeout`]); while one is under way a
    /// marker in the git directory makes it visible ([`pending_publish`](crate::pending_publish)).
    /// If the process dies halfway, the next publish (after re-opening the run directory)
    /// finishes the job. Afterwards generations older than the published one can no longer
    /// be read or viewed.
    ///
    /// # Errors
    ///
    /// Views still exist in the run directory (drop them, or [`cleanup`](crate::cleanup)
    /// after a crash), another run held the publish lock too long, git failed, or writing
    /// the repository fails.
    pub fn publish_with(&self, merge: &PublishMergeFn) -> Result<PublishReport, StagingError> {
        publish::publish(&self.inner, Some(merge), None)
    }

    /// Files and symlinks whose content in the working tree differs from the snapshot taken
    /// when the run started (modified, deleted or created since), sorted. Without git the
    /// snapshot is a stat fingerprint, so a file merely touched counts as changed.
    ///
    /// # Errors
    ///
    /// The snapshot cannot be read, or git fails.
    pub fn changed_since_start(&self) -> Result<Vec<String>, StagingError> {
        Baseline::load(&self.inner.repo, &self.inner.run_dir)?.changed(&self.inner.ignores)
    }

    #[cfg(test)]
    pub(crate) fn publish_crashing_after(
        &self,
        n_paths: usize,
    ) -> Result<PublishReport, StagingError> {
        publish::publish(&self.inner, None, Some(n_paths))
    }
}

/// The backend chosen, why, and the user namespace overlay views need.
struct Choice {
    backend: Backend,
    reason: String,
    ns: Option<Arc<Namespace>>,
}

impl Choice {
    fn new(backend: Backend, reason: impl Into<String>) -> Choice {
        Choice {
            backend,
            reason: reason.into(),
            ns: None,
        }
    }
}

/// Picks the backend: the one asked for (falling back from reflink to copy), or auto.
fn choose_backend(repo: &Path, run_dir: &Path, opts: &StagingOptions) -> Result<Choice> {
    match opts.backend {
        Some(Backend::Overlay) => match choose_overlay(run_dir, opts.overlay_mode) {
            Ok((ns, how)) => Ok(Choice {
                backend: Backend::Overlay,
                reason: format!("overlay asked for; {how}"),
                ns,
            }),
            Err(reason) => Err(StagingError::BackendUnavailable {
                backend: Backend::Overlay,
                reason,
            }),
        },
        Some(Backend::Reflink) => Ok(match copy::probe_reflink(repo, run_dir) {
            Ok(()) => Choice::new(Backend::Reflink, "reflink asked for; FICLONE works here"),
            Err(reason) => Choice::new(
                Backend::Copy,
                format!("reflink asked for but unavailable ({reason}); using copy"),
            ),
        }),
        Some(Backend::Copy) => Ok(Choice::new(Backend::Copy, "copy asked for")),
        Some(Backend::Worktree) => match worktree::probe(repo) {
            Ok(()) => Ok(Choice::new(
                Backend::Worktree,
                "worktree asked for; the repository is a git work tree",
            )),
            Err(reason) => Err(StagingError::BackendUnavailable {
                backend: Backend::Worktree,
                reason,
            }),
        },
        None => {
            let overlay_err = match choose_overlay(run_dir, opts.overlay_mode) {
                Ok((ns, how)) => {
                    return Ok(Choice {
                        backend: Backend::Overlay,
                        reason: format!("auto: {how}"),
                        ns,
                    });
                }
                Err(reason) => reason,
            };
            Ok(match copy::probe_reflink(repo, run_dir) {
                Ok(()) => Choice::new(
                    Backend::Reflink,
                    format!("auto: overlay unavailable ({overlay_err}); FICLONE works"),
                ),
                Err(reflink_err) => Choice::new(
                    Backend::Copy,
                    format!(
                        "auto: overlay unavailable ({overlay_err}); reflink unavailable ({reflink_err})"
                    ),
                ),
            })
        }
    }
}

/// Finds how overlay views can be mounted under `mode`: the namespace to mount them in
/// (for [`OverlayMode::UserNamespace`]) and a sentence saying how; or why none works.
fn choose_overlay(
    run_dir: &Path,
    mode: OverlayMode,
) -> Result<(Option<Arc<Namespace>>, String), String> {
    const MOUNT: &str = "overlayfs mounts work here (root)";
    const USERNS: &str = "overlayfs mounts work in a user namespace (unprivileged, userxattr; \
                          renaming a directory of an older generation fails with EXDEV)";
    match mode {
        OverlayMode::Mount => overlay::probe_mount(run_dir).map(|()| (None, MOUNT.into())),
        OverlayMode::UserNamespace => {
            overlay::probe_user_namespace(run_dir).map(|ns| (Some(ns), USERNS.into()))
        }
        OverlayMode::Auto => match overlay::probe_mount(run_dir) {
            Ok(()) => Ok((None, MOUNT.into())),
            Err(mount_err) => match overlay::probe_user_namespace(run_dir) {
                Ok(ns) => Ok((Some(ns), USERNS.into())),
                Err(userns_err) => Err(format!("{mount_err}; in a user namespace: {userns_err}")),
            },
        },
    }
}
