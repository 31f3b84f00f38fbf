//! What `forge run` checks, and refuses, before any agent runs: that it is in a git work
//! tree (and runs on its top level), that the run directory is safe to write, and that the
//! plan holds no typo that changed its meaning.

use std::path::Path;

use crate::{Sandbox, forge, text};

const ONE_TASK: &str = "[[task]]\nid = \"t\"\n";

/// `forge run` needs a git work tree: outside one, or in a bare repository, it refuses
/// before any agent runs (before, it ran there and wrote into the git directory); from a
/// subdirectory it runs on the top level, as git does, and says so.
#[test]
fn trust_19_runs_only_in_a_work_tree_and_from_its_top_level() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let plain = tmp.path().join("plain");
    let bare = tmp.path().join("bare.git");
    std::fs::create_dir(&plain).expect("mkdir");
    let status = std::process::Command::new("git")
        .args(["init", "-q", "--bare"])
        .arg(&bare)
        .status()
        .expect("git");
    assert!(status.success());
    std::fs::write(tmp.path().join("plan.toml"), ONE_TASK).expect("write");
    for (dir, expected) in [
        (
            &plain,
            "is not in a git repository: forge runs in a git work tree",
        ),
        (&bare, "is a bare git repository: forge runs in a work tree"),
    ] {
        let run_dir = dir.with_extension("run");
        let out = crate::forge_command(dir)
            .args([
                "run",
                "../plan.toml",
                "--executor",
                "touch ran.txt",
                "--run-dir",
            ])
            .arg(&run_dir)
            .output()
            .expect("forge runs");
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
        assert!(stderr.contains(expected), "{stderr}");
        assert!(
            !dir.join("ran.txt").exists(),
            "an agent ran in {}",
            dir.display()
        );
        assert!(!run_dir.exists(), "run directory written before refusing");
    }

    let sandbox = Sandbox::new();
    sandbox.write("plan.toml", ONE_TASK);
    let src = sandbox.path().join("src");
    std::fs::create_dir(&src).expect("mkdir");
    sandbox.write("src/keep.txt", "keep\n");
    let out = crate::forge_command(&src)
        .args([
            "run",
            "../plan.toml",
            "--land",
            "worktree",
            "--executor",
            "sh -c 'ls > listing.txt'",
            "--run-dir",
            &sandbox.run_dir(),
        ])
        .output()
        .expect("forge runs");
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let top = std::fs::canonicalize(sandbox.path()).expect("canonical");
    assert!(
        stderr.contains(&format!(
            "forge run: running in the repository at {} (you are in {})",
            top.display(),
            src.display()
        )),
        "{stderr}"
    );
    // The agent worked at the top level: it saw `src` and wrote beside it.
    let listing = std::fs::read_to_string(sandbox.path().join("listing.txt")).expect("listing");
    assert!(listing.lines().any(|l| l == "src"), "{listing}");
    assert!(!src.join("listing.txt").exists());
}

/// Every argument is checked before anything is written: a run directory inside the
/// repository, or a non-empty directory that is not a run's, is refused with nothing
/// written into it (a tracked `forge-cli.json` was overwritten before).
#[test]
fn trust_10_run_dir_is_checked_before_anything_is_written() {
    let sandbox = Sandbox::new();
    sandbox.write("plan.toml", ONE_TASK);
    sandbox.write("forge-cli.json", "tracked\n");
    std::fs::create_dir(sandbox.path().join("sub")).expect("mkdir");
    let outside = tempfile::tempdir().expect("tempdir");
    let precious = outside.path().join("precious");
    std::fs::create_dir(&precious).expect("mkdir");
    std::fs::write(precious.join("notes.txt"), "mine\n").expect("write");
    let journaled = outside.path().join("old-run");
    std::fs::create_dir(&journaled).expect("mkdir");
    std::fs::write(journaled.join("journal.jsonl"), "").expect("write");
    std::fs::write(journaled.join("forge-cli.json"), "old settings\n").expect("write");
    let new = outside.path().join("new");
    let cases: [(&str, String); 5] = [
        (".", "is inside the repository".to_owned()),
        ("sub/run", "is inside the repository".to_owned()),
        (
            precious.to_str().expect("utf-8"),
            "is not empty and is not a forge run directory (it holds notes.txt)".to_owned(),
        ),
        (
            journaled.to_str().expect("utf-8"),
            "already holds a run's journal: resume it with `forge resume".to_owned(),
        ),
        // A bad option after a good run directory: still nothing written.
        (
            new.to_str().expect("utf-8"),
            "--scope `sometimes`".to_owned(),
        ),
    ];
    for (run_dir, expected) in cases {
        let out = forge(
            sandbox.path(),
            &[
                "run",
                "plan.toml",
                "--executor",
                "true",
                "--scope",
                if expected.starts_with("--scope") {
                    "sometimes"
                } else {
                    "reject"
                },
                "--run-dir",
                run_dir,
            ],
        );
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{run_dir}: {stdout}\n{stderr}");
        assert!(stderr.contains(&expected), "{run_dir}: {stderr}");
    }
    let read = |p: &Path| std::fs::read_to_string(p).expect("read");
    assert_eq!(read(&sandbox.path().join("forge-cli.json")), "tracked\n");
    assert!(!sandbox.path().join("plan.json").exists());
    assert!(!sandbox.path().join("journal.jsonl").exists());
    assert!(!sandbox.path().join("sub/run").exists());
    assert_eq!(std::fs::read_dir(&precious).expect("ls").count(), 1);
    assert_eq!(read(&journaled.join("forge-cli.json")), "old settings\n");
    assert!(!outside.path().join("new").exists());
}

/// The default run directory is new, private (0700) and made with an exclusive mkdir at a
/// random name under `$TMPDIR`.
#[test]
fn trust_10_default_run_dir_is_private_and_new() {
    use std::os::unix::fs::PermissionsExt;
    let sandbox = Sandbox::new();
    sandbox.write("plan.toml", ONE_TASK);
    let tmpdir = tempfile::tempdir().expect("tempdir");
    let run = || {
        crate::forge_command(sandbox.path())
            .args([
                "run",
                "plan.toml",
                "--land",
                "worktree",
                "--executor",
                "true",
            ])
            .env("TMPDIR", tmpdir.path())
            .output()
            .expect("forge runs")
    };
    for _ in 0..2 {
        let out = run();
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    }
    let dirs: Vec<_> = std::fs::read_dir(tmpdir.path())
        .expect("ls")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(dirs.len(), 2, "{dirs:?}");
    for dir in dirs {
        let name = dir
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        assert!(name.starts_with("forge-run-repo-"), "{name}");
        let mode = std::fs::metadata(&dir).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{name}");
        assert!(dir.join("journal.jsonl").exists(), "{name}");
    }
    // TMPDIR inside the repository is refused.
    let out = crate::forge_command(sandbox.path())
        .args([
            "run",
            "plan.toml",
            "--land",
            "worktree",
            "--executor",
            "true",
        ])
        .env("TMPDIR", sandbox.path().join("tmp"))
        .output()
        .expect("forge runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).1.contains("is inside the repository"),
        "{}",
        text(&out).1
    );
}

/// Typos that changed meaning are errors: a task naming an executor nobody gave (it fell
/// back to --executor), a Droidz near-miss field (the dependency was dropped), an empty
/// plan (ran 0 tasks, exit 0).
#[test]
fn trust_20_typos_are_errors() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "plan.toml",
        "[[task]]\nid = \"a\"\n\n[[task]]\nid = \"b\"\nexecutor = \"cluade\"\n",
    );
    let out = sandbox.run(&["--executor", "touch {task}.ran"], None);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "task `b` uses executor `cluade`, which is not known (known: default); give \
             --executor-for cluade=CMD, or drop the task's `executor` field to use --executor"
        ),
        "{stderr}"
    );
    assert!(!sandbox.path().join("a.ran").exists());

    sandbox.write(
        "droidz.json",
        r#"{"tasks": [{"key": "A-1"}, {"key": "A-2", "dependecies": ["A-1"]}]}"#,
    );
    let out = forge(sandbox.path(), &["plan", "droidz.json"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out)
            .1
            .contains("task `A-2`: unknown field `dependecies`, did you mean `dependencies`?"),
        "{}",
        text(&out).1
    );

    for (name, contents) in [("empty.toml", ""), ("none.json", "{\"tasks\": []}")] {
        sandbox.write(name, contents);
        let out = forge(sandbox.path(), &["plan", name]);
        assert_eq!(out.status.code(), Some(1), "{name}");
        assert_eq!(
            text(&out).1,
            format!("forge plan: {name}: the plan has no tasks\n")
        );
        let out = forge(
            sandbox.path(),
            &[
                "run",
                name,
                "--executor",
                "true",
                "--run-dir",
                &sandbox.run_dir(),
            ],
        );
        assert_eq!(out.status.code(), Some(2), "{name}");
        assert_eq!(
            text(&out).1,
            format!("forge run: {name}: the plan has no tasks\n")
        );
    }
}
