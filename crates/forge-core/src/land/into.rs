//! Landing a finished run later (`forge land`): fast-forward or squash the current branch to
//! the run branch, or merge the run three-way into the working tree; and the record that a
//! run was landed (`run_dir/landed.json`), so it is never landed twice.
//!
//! Fast-forward and squash move only the checked-out branch and only when `HEAD` is still
//! the commit the run started from and `git status --porcelain` is empty: the index and
//! working tree are updated with `git read-tree -m -u OLD NEW` (which refuses to overwrite
//! anything), the branch with `git update-ref REF NEW OLD`. No hook runs, no branch is
//! switched, nothing is pushed or fetched.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use forge_staging::{PublishConflict, Staging, StagingOptions};

use super::{Branch, LandError, git, identity, recorded_branch, split_ident};

/// How a run is landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LandInto {
    /// Three-way merge of the run's result into the working tree (nothing is committed).
    Worktree,
    /// Fast-forward the current branch to the run branch.
    Ff,
    /// One commit on the current branch with the run branch's tree.
    Squash,
}

impl LandInto {
    /// The name `--into` takes.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            LandInto::Worktree => "worktree",
            LandInto::Ff => "ff",
            LandInto::Squash => "squash",
        }
    }
}

/// The record that a run was landed: `run_dir/landed.json`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct Landed {
    /// How.
    pub into: LandInto,
    /// When, in seconds since the Unix epoch.
    pub at: u64,
    /// The branch that moved (`refs/heads/...`), for ff and squash.
    pub branch: Option<String>,
    /// The commit the branch moved to, for ff and squash.
    pub commit: Option<String>,
    /// Paths a worktree landing left as the user has them (the run's version is kept in
    /// `run_dir/publish-conflicts/`).
    pub conflicts: Vec<String>,
}

/// What [`land`] did.
#[derive(Debug)]
#[non_exhaustive]
pub struct LandOutcome {
    /// The record written to the run directory.
    pub landed: Landed,
    /// Conflicts of a worktree landing, with where the run's version is kept.
    pub conflicts: Vec<PublishConflict>,
}

const LANDED: &str = "landed.json";

/// Reads `run_dir/landed.json`: how the run was landed, `None` when it was not.
///
/// # Errors
///
/// The record exists but cannot be read.
pub fn landed(run_dir: &Path) -> Result<Option<Landed>, LandError> {
    let path = run_dir.join(LANDED);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| super::run_dir_error(run_dir, format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(LandError::Io { path, source }),
    }
}

/// Lands the finished run in `run_dir` into `repo` as `into` says, and records it.
/// `staging` are the options the run's staging was opened with (its ignores), for
/// [`LandInto::Worktree`].
///
/// # Errors
///
/// [`LandError::Refused`] when the run was landed already, has no branch, `HEAD` moved
/// since the run started, is detached, or the working tree is not clean (ff and squash);
/// others when git or the run directory fails.
pub fn land(
    run_dir: &Path,
    repo: &Path,
    into: LandInto,
    staging: &StagingOptions,
) -> Result<LandOutcome, LandError> {
    if let Some(done) = landed(run_dir)? {
        return Err(refused(format!(
            "run {} was landed already (--into {}); nothing to do",
            run_dir.display(),
            done.into.as_str()
        )));
    }
    let mut record = Landed {
        into,
        at: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        branch: None,
        commit: None,
        conflicts: Vec::new(),
    };
    let mut conflicts = Vec::new();
    match into {
        LandInto::Worktree => {
            conflicts = into_worktree(run_dir, repo, staging)?;
            record.conflicts = conflicts.iter().map(|c| c.path.clone()).collect();
        }
        LandInto::Ff | LandInto::Squash => {
            let branch = recorded_branch(run_dir)?.ok_or_else(|| no_branch(run_dir))?;
            let (head_ref, old) = check_clean_start(repo, &branch)?;
            let new = if into == LandInto::Ff {
                branch.head.clone()
            } else {
                squash_commit(repo, &branch, &old)?
            };
            git::run(repo, &["read-tree", "-m", "-u", &old, &new])?;
            let reason = format!("forge land --into {}", into.as_str());
            if let Err(err) = git::run(repo, &["update-ref", "-m", &reason, &head_ref, &new, &old])
            {
                // Someone moved the branch meanwhile: put the index and files back.
                let _ = git::run(repo, &["read-tree", "-m", "-u", &new, &old]);
                return Err(err);
            }
            record.branch = Some(head_ref);
            record.commit = Some(new);
        }
    }
    save(run_dir, &record)?;
    Ok(LandOutcome {
        landed: record,
        conflicts,
    })
}

/// Deletes the run branch recorded in `run_dir`, expecting it where the run left it.
///
/// # Errors
///
/// The run has no branch, or the branch moved (it is then left as it is).
pub fn delete_branch(run_dir: &Path, repo: &Path) -> Result<String, LandError> {
    let branch = recorded_branch(run_dir)?.ok_or_else(|| no_branch(run_dir))?;
    git::run(repo, &["update-ref", "-d", &branch.refname, &branch.head])?;
    Ok(branch.refname)
}

/// Merges the run's head generation three-way into the working tree, as `forge run --land
/// worktree` does at the end of a run; the conflicts leave the user's version. `staging`
/// as the run had them.
///
/// # Errors
///
/// The run directory cannot be opened as staging, or publishing fails.
pub fn into_worktree(
    run_dir: &Path,
    repo: &Path,
    staging: &StagingOptions,
) -> Result<Vec<PublishConflict>, LandError> {
    let staging = Staging::open(repo, run_dir, staging.clone())?;
    let report = staging.publish_with(&crate::engine::merge_for_publish)?;
    Ok(report.conflicts)
}

/// `HEAD`'s branch and commit, when `HEAD` is the run's start and the tree is clean.
fn check_clean_start(repo: &Path, branch: &Branch) -> Result<(String, String), LandError> {
    let short = branch.refname.trim_start_matches("refs/heads/");
    let head_ref = git::run(repo, &["symbolic-ref", "-q", "HEAD"]).map_err(|_| {
        refused(format!(
            "HEAD is detached: check out the branch to land {short} into, or use --into worktree"
        ))
    })?;
    let Some(start) = &branch.start else {
        return Err(refused(format!(
            "the run started in a repository without commits: use `git merge {short}` or --into worktree"
        )));
    };
    let head = git::resolve_commit(repo, "HEAD")?.unwrap_or_default();
    if &head != start {
        return Err(refused(format!(
            "HEAD ({}) is no longer the commit the run started from ({}): use `git merge {short}` or --into worktree",
            abbrev(&head),
            abbrev(start)
        )));
    }
    // `git status` below runs without optional locks, so it does not write refreshed stat
    // data back; `read-tree -m -u` needs it, or it takes a freshly touched file as changed.
    let _ = git::run(repo, &["update-index", "-q", "--refresh"]);
    let status = git::run(
        repo,
        &[
            "status",
            "--porcelain",
            "--untracked-files=all",
            "--ignore-submodules=none",
        ],
    )?;
    if !status.is_empty() {
        return Err(refused(
            "the working tree has uncommitted changes: commit or stash them first, or use --into worktree"
                .to_owned(),
        ));
    }
    Ok((head_ref, head))
}

/// One commit, child of `parent`, with the run branch's tree; its message lists the tasks.
fn squash_commit(repo: &Path, branch: &Branch, parent: &str) -> Result<String, LandError> {
    let short = branch.refname.trim_start_matches("refs/heads/");
    let mut message = format!(
        "forge run {}: {} task{}\n\n",
        short.trim_start_matches("forge/"),
        branch.commits.len(),
        if branch.commits.len() == 1 { "" } else { "s" }
    );
    if let Some(wt) = &branch.working_tree {
        message.push_str(&format!(
            "- the working tree at the start of the run ({})\n",
            abbrev(wt)
        ));
    }
    for commit in &branch.commits {
        let text = git::run(
            repo,
            &[
                "show",
                "-s",
                "--format=%s%n%(trailers:only,unfold)",
                &commit.commit,
            ],
        )?;
        let mut lines = text.lines();
        let subject = lines.next().unwrap_or_default();
        message.push_str(&format!("- {}: {subject}\n", commit.task));
        for trailer in lines.filter(|l| !l.trim().is_empty()) {
            message.push_str(&format!("  {trailer}\n"));
        }
    }
    message.push_str(&format!(
        "\nSquashed from {short} ({})\n",
        abbrev(&branch.head)
    ));
    let ident = identity(repo, None)?;
    let (name, email) = split_ident(&ident);
    let tree = format!("{}^{{tree}}", branch.head);
    git::run_with(
        repo,
        &["commit-tree", &tree, "-p", parent, "-m", &message],
        &[
            ("GIT_AUTHOR_NAME", name),
            ("GIT_AUTHOR_EMAIL", email),
            ("GIT_COMMITTER_NAME", name),
            ("GIT_COMMITTER_EMAIL", email),
        ],
    )
}

fn save(run_dir: &Path, record: &Landed) -> Result<(), LandError> {
    let path: PathBuf = run_dir.join(LANDED);
    let tmp = run_dir.join(".landed.json.tmp");
    let bytes = serde_json::to_vec_pretty(record).expect("a landing record serializes");
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|source| LandError::Io { path, source })
}

fn refused(reason: String) -> LandError {
    LandError::Refused { reason }
}

fn no_branch(run_dir: &Path) -> LandError {
    refused(format!(
        "run {} has no branch yet (it did not finish, or ran with --land none): run `forge resume` first",
        run_dir.display()
    ))
}

fn abbrev(id: &str) -> &str {
    &id[..id.len().min(12)]
}
