//! `forge land` against real git: landing a finished run by fast-forward, squash or into the
//! working tree, and the refusals (HEAD moved, dirty tree, detached HEAD, landed twice);
//! the fixture the review tests (`review.rs`) share.

use std::path::Path;
use std::process::Output;

use crate::{Sandbox, forge_command, git, text};

const PLAN: &str = r#"
[[task]]
id = "first"
title = "Append to a"
prompt = "echo first >> a.txt"

[[task]]
id = "second"
prompt = "mkdir -p docs && printf 'x\ny\n' > docs/b.md"
deps = ["first"]

[[task]]
id = "broken"
prompt = "echo oops > c.txt; exit 3"
"#;

/// In a [`Sandbox::committed`] repository: a hook that would leave a mark if it ran,
/// and a finished run `forge/NAME` of [`PLAN`] landed as a branch.
pub(crate) fn finished_run(sandbox: &Sandbox, name: &str) -> String {
    let repo = sandbox.path();
    for hook in [
        "post-checkout",
        "post-merge",
        "pre-commit",
        "reference-transaction",
    ] {
        let path = repo.join(".git/hooks").join(hook);
        std::fs::write(
            &path,
            "#!/bin/sh\ntouch \"$(git rev-parse --git-dir)/HOOK-RAN\"\n",
        )
        .expect("write hook");
        make_executable(&path);
    }
    sandbox.write("plan.toml", PLAN);
    let run_dir = format!("{}-{name}", sandbox.run_dir());
    let out = forge_command(repo)
        .args(["run", "plan.toml", "--executor", "sh -c {prompt}"])
        .args(["--run-dir", &run_dir, "--name", name])
        .output()
        .expect("forge runs");
    let (stdout, stderr) = text(&out);
    assert!(
        stdout.contains(&format!("branch forge/{name}: 2 commits")),
        "{stdout}\n{stderr}"
    );
    run_dir
}

fn make_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

pub(crate) fn forge(repo: &Path, args: &[&str]) -> Output {
    forge_command(repo).args(args).output().expect("forge runs")
}

pub(crate) fn no_hook_ran(repo: &Path) {
    assert!(!repo.join(".git/HOOK-RAN").exists(), "a hook ran");
}

#[test]
fn land_ff_fast_forwards_the_current_branch_without_hooks_and_only_once() {
    let sandbox = Sandbox::committed("plan.toml\n");
    let repo = sandbox.path();
    let run_dir = finished_run(&sandbox, "ff");
    let out = forge(repo, &["land", &run_dir, "--into", "ff", "--delete-branch"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let head = git(repo, &["rev-parse", "HEAD"]);
    assert!(stdout.contains(&head[..12]), "{stdout}");
    assert_eq!(
        git(repo, &["symbolic-ref", "HEAD"]).trim(),
        "refs/heads/master"
    );
    assert_eq!(
        git(repo, &["status", "--porcelain"]),
        "",
        "index and files follow"
    );
    assert_eq!(
        std::fs::read_to_string(repo.join("docs/b.md")).expect("read"),
        "x\ny\n"
    );
    assert_eq!(git(repo, &["rev-list", "--count", "HEAD"]).trim(), "3");
    assert_eq!(git(repo, &["branch", "--list", "forge/ff"]), "", "deleted");
    no_hook_ran(repo);
    let status = text(&forge(repo, &["status", &run_dir])).0;
    assert!(
        status.contains("landed with `forge land --into ff`"),
        "{status}"
    );
    let out = forge(repo, &["land", &run_dir, "--into", "ff"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).1.contains("landed already"), "{:?}", text(&out));
}

#[test]
fn land_squash_makes_one_commit_listing_the_tasks() {
    let sandbox = Sandbox::committed("plan.toml\n");
    let repo = sandbox.path();
    let run_dir = finished_run(&sandbox, "squash");
    let start = git(repo, &["rev-parse", "HEAD"]);
    let out = forge(repo, &["land", &run_dir, "--into", "squash"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert_eq!(git(repo, &["rev-parse", "HEAD~1"]), start);
    assert_eq!(
        git(repo, &["rev-parse", "HEAD^{tree}"]),
        git(repo, &["rev-parse", "forge/squash^{tree}"])
    );
    let message = git(repo, &["log", "-1", "--format=%B"]);
    assert!(message.contains("- first: Append to a"), "{message}");
    assert!(message.contains("  Forge-Task: second"), "{message}");
    assert_eq!(git(repo, &["status", "--porcelain"]), "");
    assert_eq!(
        git(repo, &["log", "-1", "--format=%an <%ae>"]).trim(),
        "Ada <ada@example.com>"
    );
    no_hook_ran(repo);
}

#[test]
fn land_ff_and_squash_refuse_a_moved_head_a_dirty_tree_and_a_detached_head() {
    let sandbox = Sandbox::committed("plan.toml\n");
    let repo = sandbox.path();
    let run_dir = finished_run(&sandbox, "refuse");
    let refused = |into: &str, what: &str| {
        let before = git(repo, &["rev-parse", "HEAD"]);
        let out = forge(repo, &["land", &run_dir, "--into", into]);
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{into}: {stderr}");
        assert!(stderr.contains(what), "{into}: {stderr}");
        assert_eq!(git(repo, &["rev-parse", "HEAD"]), before);
        assert!(!Path::new(&run_dir).join("landed.json").exists());
    };
    sandbox.write("a.txt", "one (edited)\n");
    refused("ff", "uncommitted changes");
    refused("squash", "uncommitted changes");
    assert_eq!(
        std::fs::read_to_string(repo.join("a.txt")).expect("read"),
        "one (edited)\n"
    );
    git(repo, &["checkout", "-q", "--", "a.txt"]);
    sandbox.write("untracked.txt", "mine\n");
    refused("ff", "uncommitted changes");
    std::fs::remove_file(repo.join("untracked.txt")).expect("rm");
    git(repo, &["checkout", "-q", "--detach"]);
    refused("ff", "HEAD is detached");
    git(repo, &["checkout", "-q", "master"]);
    git(
        repo,
        &[
            "commit",
            "-q",
            "--allow-empty",
            "--no-verify",
            "-m",
            "moved",
        ],
    );
    refused("ff", "no longer the commit the run started from");
    refused("squash", "no longer the commit the run started from");
}

#[test]
fn land_worktree_merges_three_way_and_keeps_the_users_edits() {
    let sandbox = Sandbox::committed("plan.toml\n");
    let repo = sandbox.path();
    let run_dir = finished_run(&sandbox, "wt");
    // The user's edit of a path the run did not touch, and a new file of theirs.
    sandbox.write(".gitignore", "plan.toml\n*.log\n");
    sandbox.write("notes.txt", "mine\n");
    let out = forge(repo, &["land", &run_dir, "--into", "worktree"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert_eq!(
        std::fs::read_to_string(repo.join("a.txt")).expect("read"),
        "one\nfirst\n"
    );
    assert_eq!(
        std::fs::read_to_string(repo.join("docs/b.md")).expect("read"),
        "x\ny\n"
    );
    assert_eq!(
        std::fs::read_to_string(repo.join(".gitignore")).expect("read"),
        "plan.toml\n*.log\n"
    );
    assert_eq!(
        std::fs::read_to_string(repo.join("notes.txt")).expect("read"),
        "mine\n"
    );
    assert!(
        !repo.join("c.txt").exists(),
        "a failed task's work is not landed"
    );
    assert_eq!(
        git(repo, &["rev-list", "--count", "HEAD"]).trim(),
        "1",
        "nothing committed"
    );
    let out = forge(repo, &["land", &run_dir, "--into", "worktree"]);
    assert_eq!(out.status.code(), Some(2), "landing twice is refused");
}

#[test]
fn land_worktree_reports_a_conflict_and_keeps_the_runs_version() {
    let sandbox = Sandbox::committed("plan.toml\n");
    let repo = sandbox.path();
    let run_dir = finished_run(&sandbox, "conflict");
    // The user rewrote the line the run appended to.
    sandbox.write("a.txt", "uno\n");
    let out = forge(repo, &["land", &run_dir, "--into", "worktree"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stderr.contains("conflict: a.txt"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(repo.join("a.txt")).expect("read"),
        "uno\n"
    );
    let kept = Path::new(&run_dir).join("publish-conflicts/a.txt");
    assert_eq!(std::fs::read_to_string(kept).expect("kept"), "one\nfirst\n");
    assert_eq!(
        std::fs::read_to_string(repo.join("docs/b.md")).expect("read"),
        "x\ny\n"
    );
}

#[test]
fn land_refuses_a_run_that_landed_in_the_working_tree_when_it_ran() {
    let sandbox = Sandbox::new();
    let repo = sandbox.path();
    git(repo, &["commit", "-q", "--allow-empty", "-m", "init"]);
    sandbox.write(
        "plan.toml",
        "[[task]]\nid = \"a\"\nprompt = \"echo a > a\"\n",
    );
    let out = sandbox.run(
        &["--executor", "sh -c {prompt}", "--land", "worktree"],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    for into in ["worktree", "ff", "squash"] {
        let out = forge(repo, &["land", &sandbox.run_dir(), "--into", into]);
        assert_eq!(out.status.code(), Some(2), "{into}");
        assert!(text(&out).1.contains("--land worktree"), "{:?}", text(&out));
    }
}

#[test]
fn land_ff_of_a_run_started_on_a_dirty_tree_says_the_start_changes_are_committed() {
    let sandbox = Sandbox::committed("plan.toml\n");
    let repo = sandbox.path();
    sandbox.write("notes.txt", "mine\n");
    sandbox.write(
        "plan.toml",
        "[[task]]\nid = \"a\"\nprompt = \"echo two >> a.txt\"\n",
    );
    let out = sandbox.run(&["--executor", "sh -c {prompt}", "--land", "branch"], None);
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    // Still dirty: refused. Once the user commits nothing and removes the file: landed.
    let out = forge(repo, &["land", &sandbox.run_dir(), "--into", "ff"]);
    assert_eq!(out.status.code(), Some(2));
    std::fs::remove_file(repo.join("notes.txt")).expect("rm");
    let out = forge(repo, &["land", &sandbox.run_dir(), "--into", "ff"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("they are committed now"), "{stdout}");
    assert_eq!(
        std::fs::read_to_string(repo.join("notes.txt")).expect("read"),
        "mine\n"
    );
    assert_eq!(
        std::fs::read_to_string(repo.join("a.txt")).expect("read"),
        "one\ntwo\n"
    );
    assert_eq!(git(repo, &["rev-list", "--count", "HEAD"]).trim(), "3");
}
