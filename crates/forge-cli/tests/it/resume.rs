//! `forge resume` and `forge status` after `forge run` is killed at a random journal step
//! (`FORGE_FAULT_KILL_AT_STEP` makes the process abort right after that step): the final
//! tree must equal an uninterrupted run's, every time.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;

use crate::{Sandbox, forge, is_root, text};

const PLAN: &str = r#"
[[task]]
id = "models"
prompt = "mkdir -p src/models && echo 'pub struct User;' > src/models/user.rs"
writes = ["src/models"]

[[task]]
id = "api"
prompt = "mkdir -p src/api && cat src/models/user.rs > src/api/login.rs"
deps = ["models"]
writes = ["src/api/**"]

[[task]]
id = "top"
prompt = "sed -i 's/^line 2$/line 2 (top)/' shared.txt"

[[task]]
id = "bottom"
prompt = "sed -i 's/^line 9$/line 9 (bottom)/' shared.txt"

[[task]]
id = "readme"
prompt = "echo 'see src/api' >> README.md && rm old.txt"
deps = ["api", "top"]
"#;

fn generate(repo: &Path) {
    std::fs::write(repo.join("plan.toml"), PLAN).expect("write");
    std::fs::write(repo.join("README.md"), "# sample\n").expect("write");
    std::fs::write(repo.join("old.txt"), "old\n").expect("write");
    let lines: String = (1..=10).map(|i| format!("line {i}\n")).collect();
    std::fs::write(repo.join("shared.txt"), lines).expect("write");
}

/// Every file and directory below `root` with its content, and of the git directory only
/// `HEAD` and the index (the run branch's commits and refs carry times and the run's name;
/// forge's own `.git/forge` names the run directory).
fn tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read dir") {
            let path = entry.expect("entry").path();
            let rel = path
                .strip_prefix(root)
                .expect("under root")
                .display()
                .to_string();
            if rel.starts_with(".git/") && rel != ".git/HEAD" && rel != ".git/index" {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
                out.insert(rel, b"dir".to_vec());
            } else {
                out.insert(rel, std::fs::read(&path).expect("read"));
            }
        }
    }
    out
}

fn forge_run(sandbox: &Sandbox, staging: &str, kill_at: Option<u64>) -> Output {
    sandbox.run(
        &[
            "--jobs",
            "3",
            "--executor",
            "sh -c {prompt}",
            "--staging",
            staging,
            "--name",
            "resume-test",
        ],
        kill_at,
    )
}

/// The run branch's final tree and its commits' `Forge-Task` trailers, sorted (merge order
/// varies with three jobs; the set of commits and the result must not).
fn branch(sandbox: &Sandbox) -> (String, Vec<String>) {
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(sandbox.path())
            .args(args)
            .output()
            .expect("git runs");
        assert!(out.status.success(), "git {args:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let tree = git(&["rev-parse", "forge/resume-test^{tree}"]);
    let log = git(&[
        "log",
        "--format=%(trailers:key=Forge-Task,valueonly)",
        "forge/resume-test",
    ]);
    let mut tasks: Vec<String> = log
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    tasks.sort();
    (tree.trim().to_owned(), tasks)
}

fn journal_lines(sandbox: &Sandbox) -> u64 {
    let journal = Path::new(&sandbox.run_dir()).join("journal.jsonl");
    std::fs::read_to_string(journal).map_or(0, |t| t.lines().count() as u64)
}

/// Backends to alternate between: copy everywhere, overlay (plain mounts as root) and
/// overlay in a user namespace.
fn stagings() -> Vec<&'static str> {
    if is_root() {
        vec!["copy", "overlay", "overlay-userns"]
    } else if std::env::var_os("FORGE_ALLOW_SKIP_OVERLAY").is_none() {
        vec!["copy", "overlay-userns"]
    } else {
        eprintln!("not root and FORGE_ALLOW_SKIP_OVERLAY is set: killing copy runs only");
        vec!["copy"]
    }
}

#[test]
fn resume_after_a_kill_at_any_journal_step_gives_the_uninterrupted_tree() {
    let reference = Sandbox::new();
    generate(reference.path());
    let out = forge_run(&reference, "copy", None);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let expected = tree(reference.path());
    let expected_branch = branch(&reference);
    let steps = journal_lines(&reference);
    assert!(steps > 10, "a run journals every step ({steps})");

    let kill_points: u64 = if std::env::var_os("FORGE_SOAK").is_some() {
        1000
    } else {
        200
    };
    let stagings = stagings();
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let (mut killed, mut finished_anyway) = (0, 0);
    for i in 0..kill_points {
        // Every step once, then random steps (xorshift), on alternating backends.
        let step = if i < steps {
            i + 1
        } else {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            1 + seed % steps
        };
        let staging = stagings[(i as usize) % stagings.len()];
        let sandbox = Sandbox::new();
        generate(sandbox.path());
        let out = forge_run(&sandbox, staging, Some(step));
        let context = format!("kill at step {step} of {steps} ({staging})");
        if out.status.code() == Some(0) {
            // The run took fewer steps than the reference (events are journaled as they
            // drain, so step counts vary a little) and finished before the kill point.
            finished_anyway += 1;
        } else {
            assert_eq!(out.status.code(), None, "{context}: killed by a signal");
            killed += 1;
            let status = forge(sandbox.path(), &["status", &sandbox.run_dir()]);
            assert_eq!(
                status.status.code(),
                Some(0),
                "{context}: {}",
                text(&status).1
            );
            let resumed = forge(sandbox.path(), &["resume", &sandbox.run_dir()]);
            let (stdout, stderr) = text(&resumed);
            assert_eq!(
                resumed.status.code(),
                Some(0),
                "{context}: resume\n{stdout}\n{stderr}"
            );
        }
        assert_eq!(
            tree(sandbox.path()),
            expected,
            "{context}: the tree differs from an uninterrupted run"
        );
        assert_eq!(
            branch(&sandbox),
            expected_branch,
            "{context}: the run branch differs from an uninterrupted run's"
        );
    }
    eprintln!(
        "{kill_points} kill points over {steps} journal steps: {killed} killed and resumed, \
         {finished_anyway} finished before their kill point"
    );
    assert!(
        killed >= kill_points * 9 / 10,
        "most kill points hit ({killed})"
    );
}

#[test]
fn status_reports_tasks_generations_and_conflicts() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "plan.toml",
        r#"
[[task]]
id = "one"
prompt = "echo one > f.txt"

[[task]]
id = "two"
prompt = "sleep 0.6; echo two > f.txt"

[[task]]
id = "after"
prompt = "echo after > g.txt"
deps = ["one"]
"#,
    );
    sandbox.write("f.txt", "base\n");
    let out = sandbox.run(
        &[
            "--keep-going",
            "--executor",
            "sh -c {prompt}",
            "--staging",
            "copy",
        ],
        None,
    );
    let (stdout, _) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("CONFLICT "), "{stdout}");
    assert!(stdout.contains("f.txt: both changed the text"), "{stdout}");

    let status = forge(sandbox.path(), &["status", &sandbox.run_dir()]);
    let (report, _) = text(&status);
    assert_eq!(status.status.code(), Some(0));
    // `one` merges first (generation 1), `after` on top of it (2); `two` conflicts.
    assert!(
        report.starts_with("generation 2; 3 tasks: 2 merged, 1 failed, 0 skipped"),
        "{report}"
    );
    assert!(
        report.contains("  two: failed: task two conflicts"),
        "{report}"
    );
    assert!(report.contains("conflicts:\n"), "{report}");
    assert!(report.contains("; published\n"), "{report}");
}
