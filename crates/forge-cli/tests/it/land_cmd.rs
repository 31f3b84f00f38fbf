//! `forge log`, `forge diff`, `forge show` and `forge land` against real git: reviewing a
//! run branch task by task, landing it by fast-forward, squash or into the working tree,
//! and the refusals (HEAD moved, dirty tree, detached HEAD, landed twice).

use std::path::Path;
use std::process::{Command, Output};

use crate::{Sandbox, forge_command, text};

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

/// A committed repository (a.txt, .gitignore), a hook that would leave a mark if it ran,
/// and a finished run `forge/NAME` of [`PLAN`] landed as a branch.
fn finished_run(sandbox: &Sandbox, name: &str) -> String {
    let repo = sandbox.path();
    git(repo, &["config", "user.name", "Ada"]);
    git(repo, &["config", "user.email", "ada@example.com"]);
    sandbox.write("a.txt", "one\n");
    sandbox.write(".gitignore", "plan.toml\n");
    git(repo, &["add", "a.txt", ".gitignore"]);
    git(repo, &["commit", "-qm", "init"]);
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

fn forge(repo: &Path, args: &[&str]) -> Output {
    forge_command(repo).args(args).output().expect("forge runs")
}

fn no_hook_ran(repo: &Path) {
    assert!(!repo.join(".git/HOOK-RAN").exists(), "a hook ran");
}

#[test]
fn log_lists_each_task_with_state_commit_and_numstat() {
    let sandbox = Sandbox::new();
    let repo = sandbox.path();
    let run_dir = finished_run(&sandbox, "log");
    let out = forge(repo, &["log", &run_dir]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let first = git(repo, &["rev-parse", "forge/log~1"]);
    let second = git(repo, &["rev-parse", "forge/log"]);
    let line = |id: &str| {
        stdout
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{id} ")))
            .unwrap_or_else(|| panic!("no line for {id}: {stdout}"))
            .to_owned()
    };
    let l = line("first");
    assert!(l.contains("merged") && l.contains(&first[..12]), "{l}");
    assert!(l.contains("1 file +1 -0"), "{l}");
    let l = line("second");
    assert!(
        l.contains(&second[..12]) && l.contains("1 file +2 -0"),
        "{l}"
    );
    let l = line("broken");
    assert!(l.contains("failed"), "{l}");
    no_hook_ran(repo);
}

#[test]
fn log_diff_show_refuse_what_is_not_a_run_or_has_no_branch() {
    let sandbox = Sandbox::new();
    let repo = sandbox.path();
    for cmd in ["log", "diff", "show"] {
        let mut args = vec![cmd, "/nonexistent-run-dir"];
        if cmd == "show" {
            args.push("t");
        }
        let out = forge(repo, &args);
        assert_eq!(out.status.code(), Some(2), "{cmd}");
        assert!(text(&out).1.contains(&format!("forge {cmd}: ")), "{cmd}");
    }
    // A finished run with --land none has no branch.
    git(repo, &["commit", "-q", "--allow-empty", "-m", "init"]);
    sandbox.write(
        "plan.toml",
        "[[task]]\nid = \"a\"\nprompt = \"echo a > a\"\n",
    );
    let out = forge_command(repo)
        .args([
            "run",
            "plan.toml",
            "--executor",
            "sh -c {prompt}",
            "--land",
            "none",
        ])
        .args(["--run-dir", &sandbox.run_dir()])
        .output()
        .expect("forge runs");
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    let out = forge(repo, &["log", &sandbox.run_dir()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).1.contains("has no branch yet"),
        "{:?}",
        text(&out)
    );
}

#[test]
fn diff_prints_a_tasks_patch_or_the_whole_run_without_colour_off_a_tty() {
    let sandbox = Sandbox::new();
    let repo = sandbox.path();
    let run_dir = finished_run(&sandbox, "diff");
    let out = forge(repo, &["diff", &run_dir, "second"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stdout.contains("+++ b/docs/b.md") && stdout.contains("+y"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("a.txt"),
        "only the task's change: {stdout}"
    );
    assert!(!stdout.contains('\x1b'), "no colour off a terminal");
    let out = forge(repo, &["diff", &run_dir]);
    let (stdout, _) = text(&out);
    assert!(
        stdout.contains("+first") && stdout.contains("+++ b/docs/b.md"),
        "{stdout}"
    );
    let out = forge(repo, &["diff", &run_dir, "broken"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).1.contains("task `broken` has no commit"),
        "{:?}",
        text(&out)
    );
    let out = forge(repo, &["diff", &run_dir, "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).1.contains("no task `nope`"));
}

#[test]
fn show_prints_message_trailers_and_patch_and_a_failed_tasks_error() {
    let sandbox = Sandbox::new();
    let repo = sandbox.path();
    let run_dir = finished_run(&sandbox, "show");
    let out = forge(repo, &["show", &run_dir, "first"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stdout.contains("task first: merged"), "{stdout}");
    assert!(stdout.contains("Append to a"), "{stdout}");
    assert!(stdout.contains("Forge-Task: first"), "{stdout}");
    assert!(stdout.contains("+first"), "{stdout}");
    let out = forge(repo, &["show", &run_dir, "broken"]);
    let (stdout, _) = text(&out);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout.contains("task broken: failed"), "{stdout}");
    assert!(stdout.contains("error: "), "{stdout}");
}

#[test]
fn land_ff_fast_forwards_the_current_branch_without_hooks_and_only_once() {
    let sandbox = Sandbox::new();
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
    let sandbox = Sandbox::new();
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
    let sandbox = Sandbox::new();
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
    let sandbox = Sandbox::new();
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
    let sandbox = Sandbox::new();
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
fn diff_is_coloured_on_a_terminal() {
    // `script` (util-linux) gives the command a pseudo-terminal as stdout.
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: no `script` to run forge on a terminal");
        return;
    }
    let sandbox = Sandbox::new();
    let repo = sandbox.path();
    let run_dir = finished_run(&sandbox, "tty");
    let forge = env!("CARGO_BIN_EXE_forge");
    let out = Command::new("script")
        .args([
            "-qec",
            &format!("{forge} diff {run_dir} first"),
            "/dev/null",
        ])
        .current_dir(repo)
        .env("GIT_PAGER", "cat")
        .output()
        .expect("script runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{:?} {stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("\x1b["), "colour on a terminal: {stdout:?}");
    assert!(
        stdout.contains("\x1b[32mfirst"),
        "the added line, green: {stdout:?}"
    );
}

#[test]
fn show_names_a_conflicted_tasks_paths_and_where_its_work_is_kept() {
    let sandbox = Sandbox::new();
    let repo = sandbox.path();
    git(repo, &["config", "user.name", "Ada"]);
    git(repo, &["config", "user.email", "ada@example.com"]);
    sandbox.write("a.txt", "one\n");
    sandbox.write(".gitignore", "plan.toml\n");
    git(repo, &["add", "a.txt", ".gitignore"]);
    git(repo, &["commit", "-qm", "init"]);
    // Both start from generation 0 and rewrite the same line: the second to merge conflicts.
    sandbox.write(
        "plan.toml",
        "[[task]]\nid = \"x\"\nprompt = \"sleep 0.5; echo X > a.txt\"\n\n\
         [[task]]\nid = \"y\"\nprompt = \"sleep 0.5; echo Y > a.txt\"\n",
    );
    let out = sandbox.run(
        &[
            "--executor",
            "sh -c {prompt}",
            "--land",
            "branch",
            "--jobs",
            "2",
        ],
        None,
    );
    let (stdout, stderr) = text(&out);
    assert!(stdout.contains("1 commit"), "{stdout}\n{stderr}");
    let log = text(&forge(repo, &["log", &sandbox.run_dir()])).0;
    let loser = if log.contains("  y  failed") {
        "y"
    } else {
        "x"
    };
    assert!(log.contains(&format!("  {loser}  failed")), "{log}");
    let out = forge(repo, &["show", &sandbox.run_dir(), loser]);
    let (stdout, _) = text(&out);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout.contains("conflicts: a.txt"), "{stdout}");
    let kept = Path::new(&sandbox.run_dir()).join(format!("kept/{loser}-1"));
    assert!(
        stdout.contains(&format!("its work is kept in {}", kept.display())),
        "{stdout}"
    );
}

#[test]
fn land_ff_of_a_run_started_on_a_dirty_tree_says_the_start_changes_are_committed() {
    let sandbox = Sandbox::new();
    let repo = sandbox.path();
    git(repo, &["config", "user.name", "Ada"]);
    git(repo, &["config", "user.email", "ada@example.com"]);
    sandbox.write("a.txt", "one\n");
    sandbox.write(".gitignore", "plan.toml\n");
    git(repo, &["add", "a.txt", ".gitignore"]);
    git(repo, &["commit", "-qm", "init"]);
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
