//! Copy-on-write views of a repository, immutable generations, and change sets: the
//! staging half of forge.
//!
//! A [`Staging`] treats a repository directory as generation 0 and never writes to it
//! while a run lasts. Each [`Staging::commit`] adds an immutable layer (changed files plus
//! deletions) in the run directory, so generation `g` = repository + layers `1..=g`, and any
//! live generation can be read ([`Staging::read`], the merger's `base@g`) or viewed
//! ([`Staging::create_view`]). A [`View`] is a private directory showing one generation;
//! [`View::collect`] returns what the agent changed there as a [`ChangeSet`].
//! [`Staging::publish`] finally writes the head into the repository, crash-safely, and
//! [`cleanup`] removes what a crashed run left behind.
//!
//! Backends ([`Backend`]), chosen automatically or by name:
//! - `overlay`: an overlayfs mount over the layer stack (Linux). Creating a view costs a
//!   mkdir and a mount, whatever the repository's size; collecting reads only the upper
//!   directory. As root the mount is a plain one and directory renames work
//!   (`redirect_dir=on`; collected as deletions of the old paths plus additions of the
//!   new). Without root ([`OverlayMode::UserNamespace`], Linux 5.11+) views are mounted in
//!   a user and mount namespace this process creates: processes join it through
//!   [`View::namespace`] / [`ViewNamespace::configure`], this process reaches the view
//!   through `/proc`, and renaming a directory of an older generation fails with `EXDEV`
//!   (`mv` copies instead).
//! - `reflink`: per-file clones (`FICLONE`) where the file system has them; falls back to
//!   `copy` with the reason in [`Staging::backend_reason`].
//! - `copy`: a parallel copy preserving modes, times and symlinks; collection is a stat walk
//!   against a snapshot taken while copying. Every walk is one parallel walker (a
//!   directory per task on rayon's pool); a failure or a panic on any of its threads is
//!   an error, never a partial change set.
//! - `worktree`: a git repository of its own per view, borrowing the repository's objects
//!   through `objects/info/alternates` (refs, `HEAD` and the checkout settings copied in;
//!   no remote, no hooks), `HEAD` checked out, then the repository's working changes and
//!   the generation's layers applied; needs a git repository. An agent's git commands
//!   (`git branch -D`, `git stash clear`, `git config`, `git commit`) change the view's
//!   repository only, never the user's.
//!
//! # Rules and limits
//!
//! - The repository is generation 0; the run directory must lie outside it (checked at
//!   [`Staging::open`]). Views see the live working tree below their layers (overlay), so
//!   an edit the user makes during a run can show through to a view;
//!   [`Staging::changed_since_start`] lists such edits so that callers can report them.
//! - Run directory layout: `layers/K/{tree,manifest.json}` (committed layers; `tree` is in
//!   overlayfs lower form, deletions as whiteouts where the kernel lets this user make
//!   them), `flat/G` and `flat-user/G` (a stack folded for overlay, with `trusted.` or
//!   `user.` opaque markers, when it grows past `max_overlay_layers` or one page of mount
//!   options), `views/NAME` (live views), `trash/` (views being deleted on a background
//!   thread), `publish.json` (the publish record), `base.json` plus `base.index` (git) or
//!   `base.fingerprints.json` (plain directory): the working tree as the run started, which
//!   publishing merges against; `publish-conflicts/PATH`: the run's version of paths the
//!   user changed meanwhile that could not be merged.
//! - Publishing is a three-way merge (base = the working tree at [`Staging::open`], ours =
//!   the working tree now, theirs = the head): what the user changed during the run is
//!   merged ([`Staging::publish_with`]) or kept and reported, never overwritten. Runs on one
//!   repository publish one at a time (a lock in `$GIT_DIR/forge/`); an interrupted publish
//!   is visible to later runs ([`pending_publish`]) until it is finished.
//! - Change sets name files, symlinks and directories. Ignored paths are skipped: in a
//!   git work tree git's own rules (every `.gitignore`, `info/exclude`,
//!   `core.excludesFile`; [`StagingOptions::git_excludes_file`] when that is unset), read
//!   once at [`Staging::open`] so that an agent editing a `.gitignore` cannot hide or
//!   reveal anything mid-run, and a tracked path is never ignored; in a plain directory
//!   `target` and `node_modules` at any depth ([`StagingOptions::default_ignores`]); in
//!   both `.git` at any depth and [`StagingOptions::ignores`]. Ignored files stay visible
//!   in views (agents need `.env`, `node_modules`, `target`); they are never collected.
//!   Only the execute bit of a file's mode is tracked, as git does.
//! - Special files (FIFOs, sockets, devices) in the repository are invisible to
//!   generations; in a view they are [`Rejected`], never copied, and deleting one of the
//!   repository's (overlay views show them) is [`Rejected`] too
//!   ([`RejectReason::SpecialDeleted`]), so the deletion never passes silently.
//! - Nothing ignored is ever deleted: a deleted directory that holds ignored paths (a
//!   nested repository's `.git`, `node_modules/`) loses only its collected entries, in
//!   change sets, layers ([`Staging::commit`]) and so in the repository at publish; a
//!   file replacing it is [`Rejected`] ([`RejectReason::HidesIgnored`]).
//! - `worktree` views lack ignored directories (`target/`) and their contents, which a
//!   checkout never writes; ignored files elsewhere (`.env`) are copied in. A view's
//!   repository reads objects from the repository's object directory while it lives;
//!   git-lfs content is not carried over.
//! - A view in a user namespace is unreachable once its holder process (a `/bin/sh`
//!   waiting on a pipe, see [`ViewNamespace::holder_pid`]) is killed: collecting it then
//!   fails with an error naming the holder. When this process dies, the namespace and
//!   its mounts go with it; [`cleanup`] removes the directories.
//!
//! # Example
//!
//! ```
//! use forge_staging::{Backend, Entry, Staging, StagingOptions};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let tmp = tempfile::tempdir()?;
//! let repo = tmp.path().join("repo");
//! std::fs::create_dir(&repo)?;
//! std::fs::write(repo.join("README"), "hello\n")?;
//!
//! let staging = Staging::open(&repo, &tmp.path().join("run"), StagingOptions::with_backend(Some(Backend::Copy)))?;
//! let view = staging.create_view(staging.head(), "agent-1")?;
//! std::fs::write(view.path().join("README"), "hello, world\n")?;
//! let changes = view.collect()?;
//! assert_eq!(changes.changes.len(), 1);
//! assert_eq!(changes.changes[0].path, "README");
//!
//! let generation = staging.commit(&changes.to_layer_changes())?;
//! drop(view);
//! assert_eq!(
//!     staging.read(generation, "README")?,
//!     Some(Entry::File { data: b"hello, world\n".to_vec(), executable: false })
//! );
//! // The repository is untouched until publish.
//! assert_eq!(std::fs::read_to_string(repo.join("README"))?, "hello\n");
//! staging.wait_for_teardown();
//! staging.publish()?;
//! assert_eq!(std::fs::read_to_string(repo.join("README"))?, "hello, world\n");
//! # Ok(())
//! # }
//! ```
//!
//! # Crate features
//!
//! None. The overlay backend needs Linux at run time (root, or 5.11+ with unprivileged
//! user namespaces allowed); the others work anywhere Unix-like.

#![deny(unsafe_code)]

mod base;
mod cleanup;
mod collect;
mod copy;
mod error;
mod git;
mod history;
mod ignores;
mod layers;
mod overlay;
mod paths;
mod publish;
mod snapshot;
mod staging;
mod sys;
mod types;
#[allow(
    unsafe_code,
    reason = "the crate's only unsafe: fork hooks and a `clone` child for user namespaces"
)]
mod userns;
mod view;
mod walk;
mod worktree;

pub use cleanup::cleanup;
pub use error::StagingError;
pub use git::LOCAL_ENV_VARS as GIT_LOCAL_ENV_VARS;
pub use history::{LayerEntry, base_commit, base_tree, layer_labels, read_layer};
pub use publish::{interrupted_publish, pending_publish};
pub use staging::Staging;
pub use types::{
    Backend, Change, ChangeKind, ChangeSet, CleanupReport, Entry, EntryKind, LayerChange,
    OverlayMode, ParseBackendError, PublishConflict, PublishConflictKind, PublishMerge,
    PublishMergeFn, PublishReport, RejectReason, Rejected, StagingOptions,
};
pub use userns::ViewNamespace;
pub use view::View;
