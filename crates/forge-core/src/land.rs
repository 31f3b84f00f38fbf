//! Landing a run as git history: one commit per merged task on a run branch
//! `refs/heads/forge/NAME`, in merge order, so generation g is the g-th task commit.
//!
//! [`write_branch`] reads only the run directory (the journal says which task made which
//! generation, the layers hold what each changed) and the repository's object store; the
//! user's checked-out branch, index, stash and working tree are never touched, no hook
//! runs, nothing is pushed or fetched.
//!
//! - The branch starts at `HEAD` (a root commit in a repository without one). When the
//!   working tree differed from `HEAD` at the start of the run (tracked edits, untracked
//!   files that are not ignored), the first commit is "working tree at the start of run
//!   NAME", so every task commit holds exactly that task's change. Ignored files are never
//!   committed.
//! - Messages: the task's first prompt line (at most 72 characters), a blank line, the
//!   prompt (bounded), then the trailers `Forge-Task`, `Forge-Run`, `Forge-Attempt` and
//!   `Forge-Executor`. Author and committer: [`BranchOptions::author`], else the
//!   repository's `user.name` and `user.email`, else `forge <forge@localhost>`; the date is
//!   the journal's time of the merge, so writing the branch again (after `forge resume`)
//!   yields the same commit ids.
//! - Objects are written by one `git fast-import` process fed from the layers (file
//!   contents are streamed, never held in memory) onto a temporary ref; the branch is then
//!   created with `git update-ref` expecting it absent, so it appears whole or not at all and
//!   an existing branch is never overwritten (the same commit already there counts as done).

mod git;
mod into;
mod journal;
mod kept;
mod message;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use self::journal::read_merges;
use self::kept::{read_kept, ref_component};
use self::message::{identity, message, parse_ident, split_ident};
use crate::engine::RunDir;
use crate::plan::Task;

pub use into::{LandInto, LandOutcome, Landed, delete_branch, into_worktree, land, landed};

/// The longest subject line a commit gets.
const SUBJECT_MAX: usize = 72;
/// The most of a prompt a commit message body holds.
const BODY_MAX: usize = 4096;
/// The identity used when neither the options nor the repository name one.
pub const DEFAULT_IDENT: &str = "forge <forge@localhost>";

/// How to write a run branch.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BranchOptions {
    /// The repository whose object store and refs receive the branch.
    pub repo: PathBuf,
    /// The run's name: the branch is `refs/heads/forge/NAME`.
    pub name: String,
    /// `Name <email>` for author and committer; `None`: the repository's `user.name` and
    /// `user.email`, else [`DEFAULT_IDENT`].
    pub author: Option<String>,
}

impl BranchOptions {
    /// Options for the branch `forge/NAME` in `repo`, with the default author.
    pub fn new(repo: impl Into<PathBuf>, name: impl Into<String>) -> Self {
        BranchOptions {
            repo: repo.into(),
            name: name.into(),
            author: None,
        }
    }

    /// Sets author and committer (`Name <email>`).
    #[must_use]
    pub fn author(mut self, author: impl Into<String>) -> Self {
        self.author = Some(author.into());
        self
    }

    /// The full ref name, `refs/heads/forge/NAME`.
    #[must_use]
    pub fn refname(&self) -> String {
        format!("refs/heads/forge/{}", self.name)
    }
}

/// One task's commit on the branch.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct TaskCommit {
    /// The task id.
    pub task: String,
    /// The generation its merge created.
    pub generation: u64,
    /// The commit id.
    pub commit: String,
}

/// What [`write_branch`] wrote.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[must_use]
#[non_exhaustive]
pub struct Branch {
    /// `refs/heads/forge/NAME`.
    pub refname: String,
    /// The commit the branch points at.
    pub head: String,
    /// The commit the branch starts from (`HEAD` at the start of the run), `None` in a
    /// repository without commits.
    pub start: Option<String>,
    /// The "working tree at the start of run NAME" commit, when the working tree differed
    /// from `HEAD`.
    pub working_tree: Option<String>,
    /// One commit per task that changed something, in merge order.
    pub commits: Vec<TaskCommit>,
    /// The kept work of tasks that did not merge (conflicted, or rejected for their
    /// scope or entries forge does not merge), each one commit on
    /// `refs/heads/forge-failed/NAME/TASK` on top of the generation its view showed.
    #[serde(default)]
    pub failed: Vec<FailedCommit>,
}

/// A failed task's kept work as a commit.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct FailedCommit {
    /// The task id.
    pub task: String,
    /// `refs/heads/forge-failed/NAME/TASK`.
    pub refname: String,
    /// The commit id.
    pub commit: String,
}

/// Why a run branch could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LandError {
    /// The branch exists and holds something else: it is never overwritten.
    #[error("branch {refname} already exists (at {existing}); choose another name")]
    BranchExists {
        /// The ref.
        refname: String,
        /// Where it points.
        existing: String,
    },
    /// The run name does not make a valid branch name.
    #[error("`{name}` does not make a valid branch name (forge/{name})")]
    BadName {
        /// The name.
        name: String,
    },
    /// The author is not `Name <email>`.
    #[error("author `{author}` is not `Name <email>`")]
    BadAuthor {
        /// What was given.
        author: String,
    },
    /// The run directory has no snapshot of the working tree as a git tree (it was not
    /// started in a git work tree).
    #[error("run directory {run_dir} has no git snapshot of the working tree it started from")]
    NoBase {
        /// The run directory.
        run_dir: PathBuf,
    },
    /// The journal and the layers disagree, or the journal cannot be read.
    #[error("run directory {run_dir}: {reason}")]
    RunDir {
        /// The run directory.
        run_dir: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A layer could not be read.
    #[error(transparent)]
    Staging(#[from] forge_staging::StagingError),
    /// git failed.
    #[error("`{command}` in {repo} failed: {stderr}")]
    Git {
        /// The command.
        command: String,
        /// The repository.
        repo: PathBuf,
        /// What git said.
        stderr: String,
    },
    /// git could not be started.
    #[error("cannot run `{command}`")]
    Spawn {
        /// The command.
        command: String,
        /// Why.
        source: std::io::Error,
    },
    /// `forge land` will not do it (landed already, `HEAD` moved, a dirty working tree).
    #[error("{reason}")]
    Refused {
        /// Why, and what to do.
        reason: String,
    },
    /// A file of the run directory could not be read or written.
    #[error("{path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// A `git` command in `repo` as forge runs git: no hooks (`core.hooksPath=/dev/null`), no
/// optional locks, none of the caller's `GIT_*` variables that would redirect it.
#[must_use]
pub fn git_command(repo: &Path) -> std::process::Command {
    git::command(repo)
}

/// Checks, before a run starts, that `refs/heads/forge/NAME` is a valid branch name that
/// does not exist yet in `repo`.
///
/// # Errors
///
/// [`LandError::BadName`] or [`LandError::BranchExists`]; [`LandError::Git`] when git fails.
pub fn check_branch_free(repo: &Path, name: &str) -> Result<(), LandError> {
    let options = BranchOptions::new(repo, name);
    let refname = options.refname();
    check_name(repo, name, &refname)?;
    match git::resolve_commit(repo, &refname)? {
        Some(existing) => Err(LandError::BranchExists { refname, existing }),
        None => Ok(()),
    }
}

/// Checks that `author` is `Name <email>` as git takes it.
///
/// # Errors
///
/// [`LandError::BadAuthor`].
pub fn check_author(author: &str) -> Result<(), LandError> {
    match parse_ident(author) {
        Some(_) => Ok(()),
        None => Err(LandError::BadAuthor {
            author: author.to_owned(),
        }),
    }
}

/// The longest run name: ref names become file names (`refs/heads/forge/NAME`, and
/// `forge-failed/NAME/TASK` below it) that must fit the file system's 255 bytes.
const NAME_MAX: usize = 100;

fn check_name(repo: &Path, name: &str, refname: &str) -> Result<(), LandError> {
    let bad = || LandError::BadName {
        name: name.to_owned(),
    };
    if name.is_empty() || name.starts_with('-') || name.len() > NAME_MAX {
        return Err(bad());
    }
    git::run(repo, &["check-ref-format", refname]).map_err(|_| bad())?;
    // A ref below the name (`forge/NAME/x`) or above it (`forge/N` for NAME `N/x`) would
    // make git refuse to create the branch at the end of the run: refuse now.
    let below = git::run(
        repo,
        &[
            "for-each-ref",
            "--count=1",
            "--format=%(refname)",
            &format!("{refname}/"),
        ],
    )?;
    if !below.is_empty() {
        return Err(LandError::BranchExists {
            refname: below,
            existing: "a ref below the run's branch name".into(),
        });
    }
    let mut prefix = String::from("refs/heads/forge");
    for part in name
        .split('/')
        .take(name.split('/').count().saturating_sub(1))
    {
        prefix = format!("{prefix}/{part}");
        if let Some(existing) = git::resolve_commit(repo, &prefix)? {
            return Err(LandError::BranchExists {
                refname: prefix,
                existing,
            });
        }
    }
    Ok(())
}

/// One merge the journal recorded: which task made which generation.
#[derive(Debug)]
struct Merge {
    task: String,
    attempt: u32,
    generation: u64,
    ts_ms: u64,
}

/// Writes the run in `run_dir` as the branch `refs/heads/forge/NAME` of `options.repo`.
///
/// Safe to call again after a resume: the same run writes the same commits, and a branch
/// already pointing at them is left as it is.
///
/// # Errors
///
/// [`LandError::BranchExists`] when the branch holds something else; [`LandError::NoBase`]
/// when the run did not start in a git work tree; others when the run directory or git
/// fails. Nothing is left half-written: the branch appears whole or not at all.
pub fn write_branch(run_dir: &Path, options: &BranchOptions) -> Result<Branch, LandError> {
    let repo = options.repo.as_path();
    let refname = options.refname();
    check_name(repo, &options.name, &refname)?;
    let dir = RunDir::open(run_dir).map_err(|e| run_dir_error(run_dir, e.to_string()))?;
    let plan = dir
        .load_plan()
        .map_err(|e| run_dir_error(run_dir, e.to_string()))?;
    let (merges, started_ms) = read_merges(&dir)?;
    let (base_tree, base_head) =
        forge_staging::base_commit(run_dir)?.ok_or_else(|| LandError::NoBase {
            run_dir: run_dir.to_owned(),
        })?;
    let ident = identity(repo, options.author.as_deref())?;

    // The branch starts where `HEAD` was when the run started: a commit the user made, or a
    // branch they switched to, during the run must not become the run's parent (its
    // changes would be undone by the run's commits). Older run directories did not record
    // it: then `HEAD` now.
    let start = match base_head {
        Some(head) => Some(head),
        None => git::resolve_commit(repo, "HEAD")?,
    };
    let start_tree = match &start {
        Some(c) => Some(git::run(repo, &["rev-parse", &format!("{c}^{{tree}}")])?),
        None => None,
    };
    let empty_tree = git::run(repo, &["hash-object", "-t", "tree", "/dev/null"])?;
    let secs = |ms: u64| ms / 1000;
    let working_tree =
        if start_tree.as_deref().unwrap_or(&empty_tree) != base_tree && !base_tree.is_empty() {
            let message = format!(
                "working tree at the start of run {}\n\nForge-Run: {}\n",
                options.name, options.name
            );
            let time = format!("{} +0000", secs(started_ms));
            let (name, email) = split_ident(&ident);
            let env = [
                ("GIT_AUTHOR_NAME", name),
                ("GIT_AUTHOR_EMAIL", email),
                ("GIT_AUTHOR_DATE", time.as_str()),
                ("GIT_COMMITTER_NAME", name),
                ("GIT_COMMITTER_EMAIL", email),
                ("GIT_COMMITTER_DATE", time.as_str()),
            ];
            let mut args = vec!["commit-tree", base_tree.as_str(), "-m", message.as_str()];
            if let Some(start) = &start {
                args.extend(["-p", start.as_str()]);
            }
            Some(git::run_with(repo, &args, &env)?)
        } else {
            None
        };

    let tasks: BTreeMap<&str, &Task> = plan.tasks.iter().map(|t| (t.id.as_str(), t)).collect();
    let tip = working_tree.clone().or_else(|| start.clone());
    let kept = read_kept(&dir, merges.len() as u64)?;
    let mut commits = Vec::new();
    let mut failed = Vec::new();
    if !merges.is_empty() || !kept.is_empty() {
        let tmp_ref = format!("refs/forge-tmp/{}", options.name);
        let marks = run_dir.join("land.marks");
        let mut import = git::FastImport::start(repo, &tmp_ref, &marks)?;
        // Generation g is mark g: the merges are generations 1, 2, ... in order.
        let parent_of = |generation: u64| match generation {
            0 => tip.as_deref().map(git::Parent::Id),
            g => Some(git::Parent::Mark(g as usize)),
        };
        for (idx, merge) in merges.iter().enumerate() {
            let changes = forge_staging::read_layer(run_dir, merge.generation)?;
            let message = message(tasks.get(merge.task.as_str()), merge, &options.name);
            import.commit(&git::CommitSpec {
                mark: idx + 1,
                refname: None,
                ident: &ident,
                time: secs(merge.ts_ms),
                message: &message,
                parent: parent_of(idx as u64),
                changes: &changes,
            })?;
        }
        let mut failed_refs = Vec::new();
        for (k, work) in kept.iter().enumerate() {
            let mark = merges.len() + k + 1;
            let tmp = format!("refs/forge-tmp/{}-failed-{k}", options.name);
            let message = work.message(tasks.get(work.task.as_str()), &options.name);
            import.commit(&git::CommitSpec {
                mark,
                refname: Some(&tmp),
                ident: &ident,
                time: secs(work.ts_ms),
                message: &message,
                parent: parent_of(work.base_generation),
                changes: &work.changes,
            })?;
            let refname = format!(
                "refs/heads/forge-failed/{}/{}",
                options.name,
                ref_component(&work.task)
            );
            failed_refs.push((work.task.clone(), refname, tmp, mark));
        }
        let marks_ids = import.finish()?;
        let _ = std::fs::remove_file(&marks);
        let id_of = |mark: usize| {
            marks_ids
                .iter()
                .find(|(m, _)| *m == mark)
                .map(|(_, id)| id.clone())
                .ok_or_else(|| LandError::Git {
                    command: "git fast-import".into(),
                    repo: repo.to_owned(),
                    stderr: format!("no commit for mark :{mark}"),
                })
        };
        for (idx, merge) in merges.iter().enumerate() {
            commits.push(TaskCommit {
                task: merge.task.clone(),
                generation: merge.generation,
                commit: id_of(idx + 1)?,
            });
        }
        let _ = git::run(repo, &["update-ref", "-d", &tmp_ref]);
        for (task, refname, tmp, mark) in failed_refs {
            let commit = id_of(mark)?;
            let _ = git::run(repo, &["update-ref", "-d", &tmp]);
            failed.push(FailedCommit {
                task,
                refname,
                commit,
            });
        }
    }
    let head = commits.last().map(|c| c.commit.clone()).or(tip);
    let Some(head) = head else {
        return Err(run_dir_error(
            run_dir,
            "nothing to put on a branch: the repository has no commit and the run changed nothing"
                .into(),
        ));
    };
    create_ref(repo, &refname, &head, &options.name)?;
    // The failed tasks' refs only once the run branch is there: a refused run branch
    // leaves no stray refs behind.
    for work in &mut failed {
        match create_ref(repo, &work.refname, &work.commit, &options.name) {
            // Written by an earlier landing of this run (before a resume): keep it.
            Err(LandError::BranchExists { existing, .. }) => work.commit = existing,
            other => other?,
        }
    }
    let branch = Branch {
        refname,
        head,
        start,
        working_tree,
        commits,
        failed,
    };
    save(run_dir, &branch)?;
    Ok(branch)
}

/// The branch [`write_branch`] recorded in `run_dir`, if any.
///
/// # Errors
///
/// The record exists but cannot be read.
pub fn recorded_branch(run_dir: &Path) -> Result<Option<Branch>, LandError> {
    let path = run_dir.join(RECORD);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| run_dir_error(run_dir, format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(LandError::Io { path, source }),
    }
}

const RECORD: &str = "branch.json";

fn save(run_dir: &Path, branch: &Branch) -> Result<(), LandError> {
    let path = run_dir.join(RECORD);
    let tmp = run_dir.join(".branch.json.tmp");
    let bytes = serde_json::to_vec_pretty(branch).expect("a branch record serializes");
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|source| LandError::Io { path, source })
}

/// Creates `refname` at `head`, expecting it absent; a branch already at `head` is fine.
fn create_ref(repo: &Path, refname: &str, head: &str, name: &str) -> Result<(), LandError> {
    let reason = format!("forge: run {name}");
    match git::run(
        repo,
        &["update-ref", "-m", &reason, refname, head, git::ZERO_OID],
    ) {
        Ok(_) => Ok(()),
        Err(err) => match git::resolve_commit(repo, refname)? {
            Some(existing) if existing == head => Ok(()),
            Some(existing) => Err(LandError::BranchExists {
                refname: refname.to_owned(),
                existing,
            }),
            None => Err(err),
        },
    }
}

fn run_dir_error(run_dir: &Path, reason: String) -> LandError {
    LandError::RunDir {
        run_dir: run_dir.to_owned(),
        reason,
    }
}

#[cfg(test)]
mod tests;
