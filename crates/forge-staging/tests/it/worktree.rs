//! The worktree backend's views are repositories of their own (issue 13 item 7): an
//! agent's git commands there never reach the user's refs, stash, config or hooks.

use std::fs;
use std::path::Path;

use forge_staging::{Backend, LayerChange, Staging, StagingOptions, View};

use crate::support::{git, git_in, make_repo};

/// Everything of the user's repository an agent's git commands could change.
fn git_state(repo: &Path) -> Vec<String> {
    let hooks = fs::read_dir(repo.join(".git/hooks"))
        .map(|rd| {
            let mut names: Vec<String> = rd
                .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names.join(" ")
        })
        .unwrap_or_default();
    vec![
        git(repo, &["for-each-ref", "--format=%(objectname) %(refname)"]),
        git(repo, &["stash", "list", "--format=%H %gs"]),
        git(repo, &["config", "--list", "--local"]),
        git(repo, &["symbolic-ref", "HEAD"]),
        git(repo, &["worktree", "list", "--porcelain"]),
        git(repo, &["status", "--porcelain", "-uall"]),
        hooks,
    ]
}

fn worktree_staging(repo: &Path, run: &Path) -> Staging {
    Staging::open(
        repo,
        run,
        StagingOptions::with_backend(Some(Backend::Worktree)),
    )
    .expect("open")
}

fn lines(s: &str) -> Vec<&str> {
    s.lines().collect()
}

#[test]
fn trust_07_git_commands_in_a_worktree_view_leave_the_user_repository_alone() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = tmp.path().join("repo");
    make_repo(&repo);
    git(&repo, &["branch", "other"]);
    git(&repo, &["tag", "v1"]);
    fs::write(repo.join("README.md"), "stashed\n").expect("write");
    git(&repo, &["stash", "push", "-q", "-m", "keep me"]);
    git(&repo, &["config", "user.name", "The User"]);
    git(
        &repo,
        &["config", "remote.origin.url", repo.to_str().expect("utf-8")],
    );
    let before = git_state(&repo);
    let head = git(&repo, &["rev-parse", "HEAD"]);

    let staging = worktree_staging(&repo, &tmp.path().join("run"));
    staging
        .commit(&[LayerChange {
            path: "docs/a.md".into(),
            entry: Some(forge_staging::Entry::File {
                data: b"generation 1\n".to_vec(),
                executable: false,
            }),
        }])
        .expect("commit");
    let view = staging.create_view(1, "agent").expect("view");

    // The view's repository starts as a copy: same HEAD, branches and tags, no stash,
    // the identity but not the remote, no hooks.
    assert_eq!(git_in(&view, &["rev-parse", "HEAD"]), head);
    assert_eq!(
        git_in(&view, &["symbolic-ref", "HEAD"]),
        "refs/heads/master\n"
    );
    assert_eq!(
        lines(&git_in(&view, &["branch", "--format=%(refname)"])),
        ["refs/heads/master", "refs/heads/other"]
    );
    assert_eq!(git_in(&view, &["tag"]), "v1\n");
    assert_eq!(git_in(&view, &["stash", "list"]), "");
    assert_eq!(
        git_in(&view, &["config", "--local", "user.name"]),
        "The User\n"
    );
    assert_eq!(git_in(&view, &["remote"]), "");
    assert!(!view.path().join(".git/hooks").exists());
    assert_eq!(
        git_in(&view, &["status", "--porcelain", "-uall"]),
        " M docs/a.md\n"
    );

    // What a careless or hostile agent does with git.
    git_in(&view, &["branch", "-D", "other"]);
    git_in(&view, &["stash", "clear"]);
    git_in(&view, &["config", "core.hooksPath", "x"]);
    git_in(&view, &["config", "user.name", "The Agent"]);
    git_in(&view, &["tag", "t"]);
    git_in(&view, &["tag", "-d", "v1"]);
    git_in(&view, &["commit", "-q", "-am", "agent commit"]);
    fs::write(view.path().join("README.md"), "agent stash\n").expect("write");
    git_in(&view, &["stash", "push", "-q"]);
    git_in(&view, &["update-ref", "refs/heads/master", "HEAD~1"]);
    git_in(&view, &["reflog", "expire", "--expire=now", "--all"]);
    git_in(&view, &["gc", "-q", "--prune=now"]);
    // Pushing to the repository by its path is refused (git's `file` transport is off).
    let push = std::process::Command::new("git")
        .current_dir(view.path())
        .args([
            "push",
            repo.to_str().expect("utf-8"),
            "HEAD:refs/heads/pushed",
        ])
        .output()
        .expect("git runs");
    assert!(
        !push.status.success(),
        "a push to the repository's path worked"
    );

    assert_eq!(git_state(&repo), before, "the user's repository changed");
    assert_eq!(git(&repo, &["rev-parse", "HEAD"]), head);
    // The agent's history is its own and still readable there.
    assert_eq!(
        git_in(&view, &["log", "-1", "--format=%s", "stash@{0}^"]),
        "agent commit\n"
    );
    drop(view);
    staging.wait_for_teardown();
    assert_eq!(git_state(&repo), before);
}

#[test]
fn trust_07_a_worktree_views_git_dir_is_not_collected_and_may_be_deleted() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = tmp.path().join("repo");
    make_repo(&repo);
    let before = git_state(&repo);
    let staging = worktree_staging(&repo, &tmp.path().join("run"));
    let view = staging.create_view(0, "agent").expect("view");
    assert_eq!(git_in(&view, &["status", "--porcelain", "-uall"]), "");
    git_in(
        &view,
        &["commit", "-q", "--allow-empty", "-m", "agent commit"],
    );
    assert!(view.collect().expect("collect").changes.is_empty());
    fs::remove_dir_all(view.path().join(".git")).expect("rm .git");
    fs::write(view.path().join("new.txt"), "new\n").expect("write");
    let changes = view.collect().expect("collect");
    let paths: Vec<&str> = changes.changes.iter().map(|c| c.path.as_str()).collect();
    assert_eq!(paths, ["new.txt"]);
    view.discard().expect("discard");
    staging.wait_for_teardown();
    assert_eq!(git_state(&repo), before);
    assert_eq!(
        fs::read_dir(tmp.path().join("run/views"))
            .expect("views")
            .count(),
        0
    );
}

/// A detached `HEAD` and a SHA-256 repository are copied as they are.
#[test]
fn worktree_view_of_a_detached_sha256_repository() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = tmp.path().join("repo");
    fs::create_dir(&repo).expect("mkdir");
    git(&repo, &["init", "-q", "--object-format=sha256"]);
    fs::write(repo.join("a.txt"), "one\n").expect("write");
    git(&repo, &["add", "a.txt"]);
    git(&repo, &["commit", "-q", "-m", "one"]);
    fs::write(repo.join("a.txt"), "two\n").expect("write");
    git(&repo, &["commit", "-q", "-am", "two"]);
    git(&repo, &["checkout", "-q", "--detach", "HEAD~1"]);
    let head = git(&repo, &["rev-parse", "HEAD"]);
    let staging = worktree_staging(&repo, &tmp.path().join("run"));
    let view: View = staging.create_view(0, "agent").expect("view");
    assert_eq!(git_in(&view, &["rev-parse", "HEAD"]), head);
    assert_eq!(
        git_in(&view, &["rev-parse", "--show-object-format"]),
        "sha256\n"
    );
    assert_eq!(
        fs::read_to_string(view.path().join("a.txt")).expect("read"),
        "one\n"
    );
    assert_eq!(git_in(&view, &["status", "--porcelain"]), "");
    assert_eq!(
        git_in(&view, &["log", "-1", "--format=%s", "master"]),
        "two\n"
    );
}
