//! Where a run lands: by default a branch `forge/NAME` with one commit per merged task, the
//! user's branch, index and working tree (uncommitted edits included) untouched.

use crate::{Sandbox, forge_command, git, text};

const PLAN: &str = r#"
[[task]]
id = "first"
prompt = "echo first >> a.txt"

[[task]]
id = "second"
prompt = "mkdir -p docs && echo second > docs/b.md"
deps = ["first"]
"#;

#[test]
fn by_default_a_run_lands_as_a_branch_and_the_working_tree_is_untouched() {
    let sandbox = Sandbox::committed("plan.toml\n.env\n");
    let repo = sandbox.path();
    sandbox.write("plan.toml", PLAN);
    // Uncommitted work of the user's: a tracked edit, a staged file, an ignored file.
    sandbox.write("a.txt", "one (edited)\n");
    sandbox.write("staged.txt", "staged\n");
    git(repo, &["add", "staged.txt"]);
    sandbox.write(".env", "SECRET=1\n");
    let status_before = git(repo, &["status", "--porcelain", "--ignored"]);
    let index_before = git(repo, &["ls-files", "-s"]);

    let run = |name: &str| {
        forge_command(repo)
            .args([
                "run",
                "plan.toml",
                "--executor",
                "sh -c {prompt}",
                "--run-dir",
                &format!("{}-{name}", sandbox.run_dir()),
                "--name",
                name,
            ])
            .output()
            .expect("forge runs")
    };
    let out = run("land-test");
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("branch forge/land-test: 2 commits"),
        "{stdout}"
    );
    assert!(
        stdout.contains("the first commit on forge/land-test holds them"),
        "{stdout}"
    );
    assert!(stdout.contains("git merge forge/land-test"), "{stdout}");
    let status = crate::forge(
        repo,
        &["status", &format!("{}-land-test", sandbox.run_dir())],
    );
    let (status_out, _) = text(&status);
    assert!(
        status_out.contains("branch forge/land-test: 2 commits"),
        "forge status names the branch: {status_out}"
    );
    assert!(
        status_out.contains("finished (the working tree was not written"),
        "a finished branch run is not called interrupted: {status_out}"
    );

    assert_eq!(
        git(repo, &["status", "--porcelain", "--ignored"]),
        status_before
    );
    assert_eq!(git(repo, &["ls-files", "-s"]), index_before);
    assert_eq!(
        std::fs::read_to_string(repo.join("a.txt")).expect("read"),
        "one (edited)\n"
    );
    assert!(
        !repo.join("docs").exists(),
        "the working tree is not written"
    );
    assert_eq!(
        git(repo, &["symbolic-ref", "HEAD"]).trim(),
        "refs/heads/master"
    );

    let log = git(
        repo,
        &[
            "log",
            "--format=%s|%(trailers:key=Forge-Task,valueonly)",
            "HEAD..forge/land-test",
        ],
    );
    let log: Vec<&str> = log.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(
        log,
        [
            "mkdir -p docs && echo second > docs/b.md|second",
            "echo first >> a.txt|first",
            "working tree at the start of run land-test|",
        ]
    );
    assert_eq!(
        git(repo, &["show", "forge/land-test:a.txt"]),
        "one (edited)\nfirst\n",
        "the run started from the working tree as the user had it"
    );
    assert_eq!(
        git(repo, &["show", "forge/land-test:staged.txt"]),
        "staged\n"
    );
    assert!(
        !git(repo, &["ls-tree", "-r", "--name-only", "forge/land-test"]).contains(".env"),
        "ignored files are never committed"
    );
    git(repo, &["fsck", "--strict", "--no-progress"]);

    // The same name again is refused before anything runs, and the branch is unchanged.
    let tip = git(repo, &["rev-parse", "forge/land-test"]);
    let again = run("land-test");
    let (stdout, stderr) = text(&again);
    assert_eq!(again.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("refs/heads/forge/land-test already exists"),
        "{stderr}"
    );
    assert_eq!(git(repo, &["rev-parse", "forge/land-test"]), tip);
}

#[test]
fn land_none_writes_no_branch_and_a_bad_author_is_refused_up_front() {
    let sandbox = Sandbox::new();
    let repo = sandbox.path();
    sandbox.write("plan.toml", PLAN);
    sandbox.write("a.txt", "one\n");
    let out = forge_command(repo)
        .args([
            "run",
            "plan.toml",
            "--executor",
            "sh -c {prompt}",
            "--run-dir",
            &sandbox.run_dir(),
            "--land",
            "none",
        ])
        .output()
        .expect("forge runs");
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(git(repo, &["for-each-ref", "refs/heads/forge"]).is_empty());
    assert_eq!(
        std::fs::read_to_string(repo.join("a.txt")).expect("read"),
        "one\n"
    );

    let bad = forge_command(repo)
        .args([
            "run",
            "plan.toml",
            "--executor",
            "true",
            "--author",
            "no email",
        ])
        .output()
        .expect("forge runs");
    let (_, stderr) = text(&bad);
    assert_eq!(bad.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--author"), "{stderr}");
}
