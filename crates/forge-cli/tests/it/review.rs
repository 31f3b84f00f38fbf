//! `forge log`, `forge diff` and `forge show` against real git: reviewing a run branch task
//! by task, colour only on a terminal, and what is not a run or has no branch.

use std::path::Path;
use std::process::Command;

use crate::git;
use crate::land_cmd::{finished_run, forge, no_hook_ran};
use crate::{Sandbox, forge_command, text};

#[test]
fn log_lists_each_task_with_state_commit_and_numstat() {
    let sandbox = Sandbox::committed("plan.toml\n");
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
    let sandbox = Sandbox::committed("plan.toml\n");
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
    let sandbox = Sandbox::committed("plan.toml\n");
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
fn diff_is_coloured_on_a_terminal() {
    // `script` (util-linux) gives the command a pseudo-terminal as stdout.
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: no `script` to run forge on a terminal");
        return;
    }
    let sandbox = Sandbox::committed("plan.toml\n");
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
    let sandbox = Sandbox::committed("plan.toml\n");
    let repo = sandbox.path();
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
