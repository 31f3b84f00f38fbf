//! Run branches against real git: one commit per merged task in merge order, trees equal to
//! generations, the user's working tree and index untouched, `git fsck` clean, idempotent.

use std::path::Path;
use std::process::Command;

use super::*;
use crate::{
    EngineOptions, EngineOutcome, Executors, Plan, ProcessExecutor, RunOptions, Task, run_engine,
};

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A repository with one commit, user identity set, plus uncommitted work: a tracked edit,
/// an untracked file and an ignored file.
fn repo(dir: &Path, dirty: bool) {
    std::fs::create_dir_all(dir.join("src")).expect("mkdir");
    git(dir, &["init", "-q", "-b", "main"]);
    git(dir, &["config", "user.name", "Ada"]);
    git(dir, &["config", "user.email", "ada@example.com"]);
    std::fs::write(dir.join("a.txt"), "l1\nl2\nl3\n").expect("write");
    std::fs::write(dir.join("src/lib.rs"), "fn main() {}\n").expect("write");
    std::fs::write(dir.join(".gitignore"), ".env\n").expect("write");
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-qm", "init"]);
    if dirty {
        std::fs::write(dir.join("a.txt"), "l1 (user)\nl2\nl3\n").expect("write");
        std::fs::write(dir.join("notes.md"), "mine\n").expect("write");
        std::fs::write(dir.join(".env"), "SECRET=1\n").expect("write");
    }
}

/// Runs `tasks` on `repo` without publishing (sh -c agents) and returns the outcome.
fn run_with(repo: &Path, run_dir: &Path, tasks: Vec<Task>, run: RunOptions) -> EngineOutcome {
    let plan = Plan::new(tasks).validate().expect("valid");
    let executors = Executors::single(ProcessExecutor::from_template("sh -c {prompt}").expect("t"));
    let options = EngineOptions::new(repo, run_dir).publish(false).run(run);
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("rt")
        .block_on(run_engine(&plan, &executors, options))
        .expect("run")
}

/// As [`run_with`], one job at a time, and every task must succeed.
fn run(repo: &Path, run_dir: &Path, tasks: Vec<Task>) {
    let outcome = run_with(repo, run_dir, tasks, RunOptions::default().jobs(1));
    assert!(outcome.is_success(), "{:?}", outcome.run);
}

fn status(repo: &Path) -> (String, String) {
    (
        git(repo, &["status", "--porcelain", "--ignored"]),
        git(repo, &["diff", "--cached"]),
    )
}

#[test]
fn one_commit_per_task_in_merge_order_and_the_user_untouched() {
    let tmp = tempfile::tempdir().expect("tmp");
    let repo_dir = tmp.path().join("repo");
    let run_dir = tmp.path().join("run");
    repo(&repo_dir, true);
    let before = status(&repo_dir);
    let head_before = git(&repo_dir, &["rev-parse", "HEAD"]);
    run(
        &repo_dir,
        &run_dir,
        vec![
            Task::new(
                "first",
                "Append to a\n\nadds l4 at the end\necho l4 >> a.txt",
            ),
            Task::new("noop", "true").deps(["first"]),
            Task::new(
                "second",
                "mkdir -p docs && echo doc > docs/d.md && rm src/lib.rs",
            )
            .deps(["noop"]),
        ],
    );
    let branch = write_branch(&run_dir, &BranchOptions::new(&repo_dir, "t1")).expect("land");
    assert_eq!(branch.refname, "refs/heads/forge/t1");
    assert_eq!(
        status(&repo_dir),
        before,
        "the user's tree and index are untouched"
    );
    assert_eq!(git(&repo_dir, &["rev-parse", "HEAD"]), head_before);
    assert_eq!(
        git(&repo_dir, &["symbolic-ref", "HEAD"]).trim(),
        "refs/heads/main"
    );

    let subjects = git(&repo_dir, &["log", "--format=%s", "main..forge/t1"]);
    assert_eq!(
        subjects.lines().collect::<Vec<_>>(),
        [
            "mkdir -p docs && echo doc > docs/d.md && rm src/lib.rs",
            "Append to a",
            "working tree at the start of run t1",
        ]
    );
    let tasks: Vec<&str> = branch.commits.iter().map(|c| c.task.as_str()).collect();
    assert_eq!(
        tasks,
        ["first", "second"],
        "no commit for a task that changed nothing"
    );
    let first = &branch.commits[0].commit;
    let message = git(&repo_dir, &["log", "-1", "--format=%B", first]);
    assert!(message.contains("adds l4 at the end"), "{message}");
    let trailers = git(
        &repo_dir,
        &["log", "-1", "--format=%(trailers:only,unfold)", first],
    );
    assert_eq!(
        trailers.trim(),
        "Forge-Task: first\nForge-Run: t1\nForge-Attempt: 1\nForge-Executor: default"
    );
    assert_eq!(
        git(&repo_dir, &["log", "-1", "--format=%an <%ae>", first]).trim(),
        "Ada <ada@example.com>"
    );
    // Each commit's tree is its generation: the user's start state plus the task's change.
    assert_eq!(
        git(&repo_dir, &["show", &format!("{first}:a.txt")]),
        "l1 (user)\nl2\nl3\nl4\n"
    );
    assert_eq!(
        git(&repo_dir, &["show", &format!("{first}:notes.md")]),
        "mine\n"
    );
    let files = git(&repo_dir, &["ls-tree", "-r", "--name-only", "forge/t1"]);
    assert_eq!(
        files.lines().collect::<Vec<_>>(),
        [".gitignore", "a.txt", "docs/d.md", "notes.md"],
        "ignored .env never committed; src/lib.rs deleted"
    );
    assert_eq!(
        git(
            &repo_dir,
            &["diff", "--name-status", &format!("{first}~1"), first]
        )
        .trim(),
        "M\ta.txt",
        "a task commit holds exactly that task's change"
    );
    git(&repo_dir, &["fsck", "--strict", "--no-progress"]);
    assert!(
        git(&repo_dir, &["for-each-ref", "refs/forge-tmp"]).is_empty(),
        "the temporary ref is gone"
    );

    // Writing again (as after a resume) gives the same commits and leaves the branch.
    let again = write_branch(&run_dir, &BranchOptions::new(&repo_dir, "t1")).expect("again");
    assert_eq!(again, branch);
    assert_eq!(recorded_branch(&run_dir).expect("read"), Some(branch));
}

#[test]
fn an_existing_branch_is_never_overwritten() {
    let tmp = tempfile::tempdir().expect("tmp");
    let repo_dir = tmp.path().join("repo");
    let run_dir = tmp.path().join("run");
    repo(&repo_dir, false);
    git(&repo_dir, &["branch", "forge/taken"]);
    let taken = git(&repo_dir, &["rev-parse", "forge/taken"]);
    assert!(matches!(
        check_branch_free(&repo_dir, "taken"),
        Err(LandError::BranchExists { .. })
    ));
    check_branch_free(&repo_dir, "free").expect("free");
    assert!(matches!(
        check_branch_free(&repo_dir, "bad..name"),
        Err(LandError::BadName { .. })
    ));
    run(&repo_dir, &run_dir, vec![Task::new("t", "echo x > x.txt")]);
    let err = write_branch(&run_dir, &BranchOptions::new(&repo_dir, "taken")).unwrap_err();
    assert!(
        err.to_string()
            .contains("refs/heads/forge/taken already exists"),
        "{err}"
    );
    assert_eq!(git(&repo_dir, &["rev-parse", "forge/taken"]), taken);
    // A clean working tree: no "working tree at the start" commit.
    let branch = write_branch(
        &run_dir,
        &BranchOptions::new(&repo_dir, "other").author("Bo <bo@example.com>"),
    )
    .expect("land");
    assert_eq!(branch.working_tree, None);
    assert_eq!(
        git(&repo_dir, &["rev-list", "--count", "main..forge/other"]).trim(),
        "1"
    );
    assert_eq!(
        git(
            &repo_dir,
            &["log", "-1", "--format=%cn <%ce>", "forge/other"]
        )
        .trim(),
        "Bo <bo@example.com>"
    );
    assert!(matches!(
        write_branch(
            &run_dir,
            &BranchOptions::new(&repo_dir, "x").author("nobody")
        ),
        Err(LandError::BadAuthor { .. })
    ));
}

#[test]
fn a_repository_without_commits_gets_a_root_commit() {
    let tmp = tempfile::tempdir().expect("tmp");
    let repo_dir = tmp.path().join("repo");
    let run_dir = tmp.path().join("run");
    std::fs::create_dir_all(&repo_dir).expect("mkdir");
    git(&repo_dir, &["init", "-q"]);
    run(
        &repo_dir,
        &run_dir,
        vec![Task::new("t", "echo x > 'a \"quoted\" name.txt'")],
    );
    let branch = write_branch(&run_dir, &BranchOptions::new(&repo_dir, "root")).expect("land");
    assert_eq!(branch.start, None);
    assert_eq!(
        git(&repo_dir, &["rev-list", "--count", "forge/root"]).trim(),
        "1"
    );
    assert_eq!(
        git(&repo_dir, &["ls-tree", "--name-only", "forge/root"]).trim(),
        "\"a \\\"quoted\\\" name.txt\""
    );
}

#[test]
fn a_conflicted_tasks_work_is_kept_on_a_failed_branch() {
    let tmp = tempfile::tempdir().expect("tmp");
    let repo_dir = tmp.path().join("repo");
    let run_dir = tmp.path().join("run");
    repo(&repo_dir, false);
    let outcome = run_with(
        &repo_dir,
        &run_dir,
        vec![
            Task::new("left", "sleep 0.2; echo left > a.txt"),
            Task::new(
                "right",
                "sleep 0.4; echo right > a.txt; echo extra > extra.txt",
            ),
        ],
        RunOptions::default().jobs(2).keep_going(true),
    );
    assert!(
        !outcome.is_success(),
        "the second writer of a.txt conflicts"
    );
    let branch = write_branch(&run_dir, &BranchOptions::new(&repo_dir, "kept")).expect("land");
    assert_eq!(branch.commits.len(), 1);
    assert_eq!(branch.failed.len(), 1, "{branch:?}");
    let failed = &branch.failed[0];
    let loser = failed.task.as_str();
    assert_eq!(
        failed.refname,
        format!("refs/heads/forge-failed/kept/{loser}")
    );
    // On top of the generation its view showed (0: the start), with all of its work.
    assert_eq!(
        git(&repo_dir, &["rev-parse", &format!("{}^", failed.commit)]),
        git(&repo_dir, &["rev-parse", "main"])
    );
    assert_eq!(
        git(&repo_dir, &["show", &format!("{}:a.txt", failed.commit)]),
        format!("{loser}\n")
    );
    let subject = git(&repo_dir, &["log", "-1", "--format=%s", &failed.commit]);
    assert!(subject.starts_with("not merged: "), "{subject}");
    let trailers = git(
        &repo_dir,
        &[
            "log",
            "-1",
            "--format=%(trailers:key=Forge-Failed,valueonly)",
            &failed.commit,
        ],
    );
    assert_eq!(trailers.trim(), "conflict");
    git(&repo_dir, &["fsck", "--strict", "--no-progress"]);
    // Writing again leaves both refs as they are.
    let again = write_branch(&run_dir, &BranchOptions::new(&repo_dir, "kept")).expect("again");
    assert_eq!(again, branch);
}

/// A commit the user makes while the run lasts is not the run branch's parent: the branch
/// starts where `HEAD` was when the run started, so merging it undoes nothing of theirs
/// (found by the session's hostile review: the branch reverted the user's new commit).
#[test]
fn the_branch_starts_where_head_was_when_the_run_started() {
    let tmp = tempfile::tempdir().expect("tmp");
    let repo_dir = tmp.path().join("repo");
    let run_dir = tmp.path().join("run");
    repo(&repo_dir, false);
    let start = git(&repo_dir, &["rev-parse", "HEAD"]);
    let user = format!(
        "git -C {} -c user.name=U -c user.email=u@u commit -q --allow-empty -m user-during-run",
        repo_dir.display()
    );
    run(
        &repo_dir,
        &run_dir,
        vec![Task::new("t", format!("{user} && echo agent > c.txt"))],
    );
    assert_ne!(
        git(&repo_dir, &["rev-parse", "HEAD"]),
        start,
        "the user committed"
    );
    let branch = write_branch(&run_dir, &BranchOptions::new(&repo_dir, "moved")).expect("land");
    assert_eq!(branch.start.as_deref(), Some(start.trim()));
    assert_eq!(
        git(&repo_dir, &["rev-parse", "forge/moved~1"]),
        start,
        "the task's commit sits on the start, not on the user's new commit"
    );
    // Merging the branch adds the run's change and keeps the user's commit.
    git(
        &repo_dir,
        &[
            "-c",
            "user.name=U",
            "-c",
            "user.email=u@u",
            "merge",
            "-q",
            "--no-edit",
            "forge/moved",
        ],
    );
    assert_eq!(
        git(&repo_dir, &["log", "--format=%s", "-1", "HEAD^1"]).trim(),
        "user-during-run"
    );
    assert!(repo_dir.join("c.txt").is_file());
}

#[test]
fn land_squash_records_the_landing_refuses_a_second_and_delete_expects_the_branch() {
    let tmp = tempfile::tempdir().expect("tmp");
    let repo_dir = tmp.path().join("repo");
    let run_dir = tmp.path().join("run");
    repo(&repo_dir, false);
    run(
        &repo_dir,
        &run_dir,
        vec![Task::new("edit", "echo more >> a.txt").title("Add a line")],
    );
    let branch = write_branch(&run_dir, &BranchOptions::new(&repo_dir, "sq")).expect("branch");
    let start = git(&repo_dir, &["rev-parse", "HEAD"]);
    let staging = forge_staging::StagingOptions::default();

    let outcome = land(&run_dir, &repo_dir, LandInto::Squash, &staging).expect("landed");
    let head = git(&repo_dir, &["rev-parse", "HEAD"]);
    assert_eq!(outcome.landed.commit.as_deref(), Some(head.trim()));
    assert_eq!(outcome.landed.branch.as_deref(), Some("refs/heads/main"));
    assert_eq!(git(&repo_dir, &["rev-parse", "HEAD~1"]), start);
    assert_eq!(
        git(&repo_dir, &["rev-parse", "HEAD^{tree}"]),
        git(
            &repo_dir,
            &["rev-parse", &format!("{}^{{tree}}", branch.head)]
        )
    );
    assert_eq!(git(&repo_dir, &["status", "--porcelain"]), "");
    let message = git(&repo_dir, &["log", "-1", "--format=%B"]);
    assert!(message.starts_with("forge run sq: 1 task\n"), "{message}");
    assert!(
        message.contains("- edit: Add a line\n  Forge-Task: edit\n"),
        "{message}"
    );
    assert_eq!(
        landed(&run_dir).expect("read").map(|l| l.into),
        Some(LandInto::Squash)
    );
    let again = land(&run_dir, &repo_dir, LandInto::Ff, &staging);
    assert!(
        matches!(&again, Err(LandError::Refused { reason }) if reason.contains("landed already")),
        "{again:?}"
    );

    // The run branch moved by someone else: deleting it is refused, it stays.
    git(&repo_dir, &["update-ref", &branch.refname, start.trim()]);
    assert!(delete_branch(&run_dir, &repo_dir).is_err());
    assert_eq!(git(&repo_dir, &["rev-parse", &branch.refname]), start);
    git(&repo_dir, &["update-ref", &branch.refname, &branch.head]);
    assert_eq!(
        delete_branch(&run_dir, &repo_dir).expect("deleted"),
        branch.refname
    );
    assert_eq!(git(&repo_dir, &["branch", "--list", "forge/sq"]), "");
}

/// Names and authors that git would refuse at the end of a run are refused before it
/// (hostile review: a ref below or above the name, a 300-character name and an author with
/// a line break passed the check and failed only after all the agents' work).
#[test]
fn names_git_would_refuse_later_are_refused_up_front() {
    let tmp = tempfile::tempdir().expect("tmp");
    let repo_dir = tmp.path().join("repo");
    repo(&repo_dir, false);
    git(&repo_dir, &["update-ref", "refs/heads/forge/d/x", "HEAD"]);
    git(&repo_dir, &["update-ref", "refs/heads/forge/up", "HEAD"]);
    for name in ["d", "up/x", &"n".repeat(300), ""] {
        assert!(
            check_branch_free(&repo_dir, name).is_err(),
            "{name:?} should be refused"
        );
    }
    check_branch_free(&repo_dir, "d2").expect("free");
    assert!(check_author("x\n <a@b>").is_err());
    assert!(check_author("Ada <ada@example.com>").is_ok());
}

/// A nested repository the user never added is not committed as a gitlink (hostile
/// review: `git add -A` of the base snapshot made one, without `.gitmodules`).
#[test]
fn an_untracked_nested_repository_is_not_committed() {
    let tmp = tempfile::tempdir().expect("tmp");
    let repo_dir = tmp.path().join("repo");
    let run_dir = tmp.path().join("run");
    repo(&repo_dir, true);
    let nested = repo_dir.join("vendor/lib");
    std::fs::create_dir_all(&nested).expect("mkdir");
    git(&nested, &["init", "-q"]);
    std::fs::write(nested.join("lib.rs"), "x\n").expect("write");
    git(&nested, &["add", "-A"]);
    git(
        &nested,
        &[
            "-c",
            "user.name=n",
            "-c",
            "user.email=n@n",
            "commit",
            "-qm",
            "n",
        ],
    );
    run(&repo_dir, &run_dir, vec![Task::new("t", "echo y > y.txt")]);
    let branch = write_branch(&run_dir, &BranchOptions::new(&repo_dir, "nested")).expect("land");
    assert!(
        branch.working_tree.is_some(),
        "the user's edits make a start commit"
    );
    let tree = git(&repo_dir, &["ls-tree", "-r", "forge/nested"]);
    assert!(!tree.contains("160000"), "{tree}");
    assert!(!tree.contains("vendor"), "{tree}");
    assert!(nested.join(".git").is_dir());
}
