//! `forge run`: tasks run through the command template in the current directory, output as
//! plain lines (stdout is not a terminal here) or JSON lines, and the exit status contract.

use std::path::Path;

use crate::{Sandbox, forge, is_root, text};

const PLAN: &str = r#"
[[task]]
id = "models"
prompt = "add the 'User' model"

[[task]]
id = "api"
prompt = "add /login"
deps = ["models"]

[[task]]
id = "docs"
prompt = "document it"
deps = ["api"]
"#;

#[test]
fn runs_every_task_in_the_current_directory() {
    let sandbox = Sandbox::new();
    sandbox.write("plan.toml", PLAN);
    let out = sandbox.run(
        &[
            "--jobs",
            "2",
            "--executor",
            "sh -c 'echo \"$1\" >> log.txt; echo did {task}' sh {prompt}",
        ],
        None,
    );
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert_eq!(
        std::fs::read_to_string(sandbox.path().join("log.txt")).expect("log"),
        "add the 'User' model\nadd /login\ndocument it\n"
    );
    assert!(stdout.contains("[api] did api\n"), "{stdout}");
    assert!(stdout.contains("3 tasks in "), "{stdout}");
    assert!(
        stdout.contains(": 3 succeeded, 0 failed, 0 skipped, 0 cancelled\n"),
        "{stdout}"
    );
}

#[test]
fn failure_exits_1_and_skips_dependents() {
    let sandbox = Sandbox::new();
    sandbox.write("plan.toml", PLAN);
    let out = sandbox.run(
        &[
            "--executor",
            "sh -c 'echo broken {task}; test {task} != api'",
        ],
        None,
    );
    let (stdout, _) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(
            "  api: failed after 1 attempt: task `api`: `sh` exited with status 1\n      | broken api\n  docs: skipped: dependency `api` failed\n"
        ),
        "{stdout}"
    );
}

#[test]
fn json_streams_events() {
    let sandbox = Sandbox::new();
    sandbox.write("plan.toml", PLAN);
    let out = sandbox.run(&["--json", "-j", "1", "--executor", "true"], None);
    assert_eq!(out.status.code(), Some(0));
    let kinds: Vec<String> = text(&out)
        .0
        .lines()
        .map(|line| {
            let event: serde_json::Value =
                serde_json::from_str(line).expect("one JSON event per line");
            event["kind"].as_str().expect("kind").to_owned()
        })
        .collect();
    assert_eq!(kinds.first().map(String::as_str), Some("run_started"));
    assert_eq!(kinds.last().map(String::as_str), Some("run_finished"));
    assert_eq!(kinds.iter().filter(|k| *k == "task_succeeded").count(), 3);
}

#[test]
fn bad_input_exits_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    crate::git_init(dir.path());
    std::fs::write(dir.path().join("plan.toml"), PLAN).expect("write");
    std::fs::write(
        dir.path().join("cyclic.toml"),
        "[[task]]\nid = \"a\"\ndeps = [\"a\"]\n",
    )
    .expect("write");
    let cases: [(&[&str], &str); 3] = [
        (
            &["run", "missing.toml", "--executor", "true"],
            "forge run: cannot read plan missing.toml: No such file or directory (os error 2)\n",
        ),
        (
            &["run", "cyclic.toml", "--executor", "true"],
            "forge run: cyclic.toml is invalid:\n  dependency cycle: a -> a\n",
        ),
        (
            &["run", "plan.toml", "--executor", "sh -c 'oops"],
            "forge run: --executor: unclosed single quote in command template `sh -c 'oops`\n",
        ),
    ];
    for (args, expected) in cases {
        let out = forge(dir.path(), args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert_eq!(text(&out).1, expected, "{args:?}");
    }
}

/// Without root, `forge run` gets overlay views in a user namespace and starts each agent
/// inside it, at the view's real path, with the user's own uid. As root, this runs a copy
/// of the `forge` binary as user `nobody` (uid 65534).
#[test]
fn a_user_without_root_gets_overlay_views_with_agents_inside() {
    const NOBODY: u32 = 65534;
    let is_root = is_root();
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let repo = dir.join("repo");
    std::fs::create_dir_all(repo.join("src")).expect("mkdir");
    crate::git_init(&repo);
    std::fs::write(repo.join("README.md"), "hello\n").expect("write");
    std::fs::write(repo.join("src/old.txt"), "old\n").expect("write");
    std::fs::write(
        dir.join("plan.toml"),
        r#"
[[task]]
id = "a"
prompt = "test \"$(id -u)\" != 0 && echo a > a.txt && pwd > where-a.txt && rm -r src"

[[task]]
id = "b"
prompt = "sed -i 's/hello/hello, world/' README.md"

[[task]]
id = "c"
prompt = "cat a.txt README.md > both.txt"
deps = ["a", "b"]
"#,
    )
    .expect("write plan");
    // The build directory may be closed to other users: run a copy of the binary.
    let exe = dir.join("forge");
    std::fs::copy(env!("CARGO_BIN_EXE_forge"), &exe).expect("copy forge");
    let mut cmd = std::process::Command::new(&exe);
    cmd.args([
        "run",
        "../plan.toml",
        "--land",
        "worktree",
        "--staging",
        "auto",
        "--executor",
        "sh -c {prompt}",
        "--run-dir",
    ])
    .arg(dir.join("run"))
    .current_dir(&repo)
    .env("HOME", dir)
    .env_remove("COLUMNS");
    if is_root {
        use std::os::unix::fs::PermissionsExt;
        use std::os::unix::process::CommandExt;
        chown_tree(dir, NOBODY);
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        cmd.uid(NOBODY).gid(NOBODY);
    }
    // Right after the copy, a child another test thread forked may still hold its write
    // descriptor until it execs: `exec` then fails with ETXTBSY for a moment.
    const ETXTBSY: i32 = 26;
    let mut tries = 0;
    let out = loop {
        match cmd.output() {
            Err(e) if e.raw_os_error() == Some(ETXTBSY) && tries < 100 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => break other.expect("forge runs"),
        }
    };
    let (stdout, stderr) = text(&out);
    if stdout.contains("staging: copy")
        && std::env::var("FORGE_ALLOW_SKIP_OVERLAY").as_deref() == Ok("1")
    {
        eprintln!(
            "skipping: overlay in a user namespace does not work here (FORGE_ALLOW_SKIP_OVERLAY=1)\n{stdout}"
        );
        return;
    }
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("staging: overlay (auto: overlayfs mounts work in a user namespace"),
        "{stdout}"
    );
    let read = |p: &str| std::fs::read_to_string(repo.join(p)).expect(p);
    assert_eq!(read("both.txt"), "a\nhello, world\n");
    assert!(!repo.join("src").exists());
    let run_dir = std::fs::canonicalize(dir.join("run")).expect("run dir");
    let where_a = read("where-a.txt");
    assert!(
        where_a.starts_with(&format!("{}/views/", run_dir.display())),
        "agent `a` ran in {where_a:?}"
    );
}

fn chown_tree(path: &Path, uid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(uid)).expect("chown");
    if std::fs::symlink_metadata(path).expect("stat").is_dir() {
        for item in std::fs::read_dir(path).expect("read dir") {
            chown_tree(&item.expect("read dir").path(), uid);
        }
    }
}

#[test]
fn tasks_naming_an_executor_use_its_command() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "plan.toml",
        r#"
[[task]]
id = "plain"
prompt = "p"

[[task]]
id = "special"
prompt = "s"
executor = "alt"
deps = ["plain"]
"#,
    );
    let run = |executor_for: &str| {
        sandbox.run(
            &[
                "--executor",
                "sh -c 'echo default {task} >> log.txt'",
                "--executor-for",
                executor_for,
            ],
            None,
        )
    };
    let out = run("alt=sh -c 'echo alt {task} >> log.txt'");
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert_eq!(
        std::fs::read_to_string(sandbox.path().join("log.txt")).expect("log"),
        "default plain\nalt special\n"
    );
    // A name no task uses is a typo: refused before anything runs.
    let out = run("atl=true");
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("no task of the plan uses executor `atl` (it uses: alt, default)"),
        "{stderr}"
    );
}

/// Agents printing as fast as they can: output beyond what the journal keeps up with is
/// shed and counted, and no task event is lost (the journal and `forge status` have all).
#[test]
fn a_flood_of_output_loses_no_task_event() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "plan.toml",
        r#"
[[task]]
id = "a"
prompt = "seq 1 300000"

[[task]]
id = "b"
prompt = "seq 1 300000 >&2"

[[task]]
id = "c"
prompt = "echo done > done.txt"
deps = ["a", "b"]
"#,
    );
    let run_dir = sandbox.run_dir();
    let out = sandbox.run(
        &[
            "--json",
            "--staging",
            "copy",
            "--executor",
            "sh -c {prompt}",
        ],
        None,
    );
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(sandbox.path().join("done.txt").exists());
    let kinds: Vec<String> = stdout
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("a JSON event per line");
            v["kind"].as_str().expect("a kind").to_owned()
        })
        .collect();
    let count = |k: &str| kinds.iter().filter(|x| *x == k).count();
    assert_eq!(count("task_succeeded"), 3);
    assert_eq!(count("run_finished"), 1);
    assert_eq!(count("events_lost"), 0);
    let status = forge(sandbox.path(), &["status", &run_dir, "--json"]);
    let (status_out, status_err) = text(&status);
    assert_eq!(status.status.code(), Some(0), "{status_err}");
    let status: serde_json::Value = serde_json::from_str(&status_out).expect("status JSON");
    assert_eq!(status["journal"]["events_lost"], 0, "{status_out}");
    let merged = status["tasks"]
        .as_object()
        .expect("tasks by id")
        .values()
        .filter(|t| t["state"] == "merged")
        .count();
    assert_eq!(merged, 3, "{status_out}");
}

/// Agents' environment describes their view: `PWD` is the view (perl and node trust it, so
/// an inherited `PWD` made them write into the repository behind the merge's back), and
/// variables that point at the repository (`OLDPWD`, `GIT_DIR`, npm's `INIT_CWD`, ...) are
/// gone.
#[test]
fn trust_04_agents_environment_describes_their_view() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "plan.toml",
        "[[task]]\nid = \"perl\"\nwrites = [\"perl.txt\"]\n\n\
         [[task]]\nid = \"sh\"\nexecutor = \"sh\"\nwrites = [\"sh.txt\"]\n",
    );
    let repo = sandbox.path().display().to_string();
    let out = crate::forge_command(sandbox.path())
        .args(["run", "plan.toml", "--land", "worktree", "--run-dir", &sandbox.run_dir()])
        .args([
            "--executor",
            r#"perl -e 'open(F, ">$ENV{PWD}/perl.txt") or die; print F map { "$_=$ENV{$_}\n" } sort keys %ENV'"#,
            "--executor-for",
            "sh=sh -c 'env > \"$PWD/sh.txt\"'",
        ])
        .env("PWD", &repo)
        .env("OLDPWD", &repo)
        .env("GIT_DIR", format!("{repo}/.git"))
        .env("GIT_WORK_TREE", &repo)
        .env("GIT_INDEX_FILE", format!("{repo}/.git/index"))
        .env("INIT_CWD", &repo)
        .output()
        .expect("forge runs");
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    for file in ["perl.txt", "sh.txt"] {
        let env = std::fs::read_to_string(sandbox.path().join(file)).expect("written in the view");
        let pwd = env
            .lines()
            .find_map(|l| l.strip_prefix("PWD="))
            .expect("PWD set");
        assert!(
            pwd.starts_with(&sandbox.run_dir()),
            "{file}: PWD={pwd} is not a view in the run directory"
        );
        for name in [
            "OLDPWD",
            "GIT_DIR",
            "GIT_WORK_TREE",
            "GIT_INDEX_FILE",
            "INIT_CWD",
        ] {
            assert!(
                !env.lines().any(|l| l.starts_with(&format!("{name}="))),
                "{file}: {name} inherited:\n{env}"
            );
        }
    }
}

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

/// `forge run` keeps going by default: a task failing for good skips its dependents (with
/// the reason) and leaves independent work alone, a pending retry included (fail-fast
/// cancelled it). `--fail-fast` opts in to stopping at once; `--keep-going` is accepted.
#[test]
fn trust_21_a_failure_does_not_cancel_independent_work() {
    let sandbox = Sandbox::new();
    // The marker of `flaky`'s first attempt lives outside the repository: a failed
    // attempt's view is thrown away.
    let markers = tempfile::tempdir().expect("tempdir");
    let plan = |name: &str| {
        format!(
            r#"
[[task]]
id = "flaky"
prompt = "test -e {dir}/{name} || {{ touch {dir}/{name}; exit 75; }}; echo ok > flaky.txt"
retries = 1

[[task]]
id = "bad"
prompt = "sleep 0.2; exit 1"

[[task]]
id = "after-bad"
prompt = "echo never > after.txt"
deps = ["bad"]
"#,
            dir = markers.path().display()
        )
    };
    // `flaky` fails retryably at once and waits about a second for its retry; `bad` fails
    // for good meanwhile.
    let run = |name: &str, extra: &[&str]| {
        sandbox.write("plan.toml", &plan(name));
        let run_dir = format!("{}-{name}", sandbox.run_dir());
        let out = crate::forge_command(sandbox.path())
            .args([
                "run",
                "plan.toml",
                "--land",
                "worktree",
                "--executor",
                "sh -c {prompt}",
                "--run-dir",
                &run_dir,
            ])
            .args(extra)
            .output()
            .expect("forge runs");
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{name}: {stdout}\n{stderr}");
        stdout
    };
    for (name, extra) in [("default", &[][..]), ("keep-going", &["--keep-going"][..])] {
        std::fs::remove_file(sandbox.path().join("flaky.txt")).ok();
        let stdout = run(name, extra);
        assert!(
            stdout.contains("  after-bad: skipped: dependency `bad` failed\n"),
            "{stdout}"
        );
        assert!(
            stdout.contains(": 1 succeeded, 1 failed, 1 skipped, 0 cancelled\n"),
            "{name}: {stdout}"
        );
        assert_eq!(
            std::fs::read_to_string(sandbox.path().join("flaky.txt")).expect("flaky finished"),
            "ok\n"
        );
    }
    std::fs::remove_file(sandbox.path().join("flaky.txt")).expect("rm");
    let stdout = run("fail-fast", &["--fail-fast"]);
    assert!(stdout.contains("  flaky: cancelled"), "{stdout}");
    assert!(!sandbox.path().join("flaky.txt").exists());
    let out = forge(
        sandbox.path(),
        &[
            "run",
            "plan.toml",
            "--executor",
            "true",
            "--fail-fast",
            "--keep-going",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out).1);
}
