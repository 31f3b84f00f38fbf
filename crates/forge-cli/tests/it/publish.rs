//! Publishing through `forge run` (issue 13): temp names agents cannot reach, the user's
//! edits during a run merged or kept and reported (exit 1), and an interrupted publish
//! that blocks new runs until `forge resume` finishes it.

use std::path::Path;

use crate::{Sandbox, forge, git, text};

/// The issue's `mk`: a git repository with `a.txt` (three lines) and `b.txt`, committed,
/// plus the plan (ignored, so it is nobody's edit).
fn mk(plan: &str) -> Sandbox {
    let sandbox = Sandbox::new();
    git(sandbox.path(), &["init", "-q"]);
    sandbox.write("a.txt", "l1\nl2\nl3\n");
    sandbox.write("b.txt", "hi\n");
    sandbox.write("c.txt", "c\n");
    sandbox.write(".gitignore", "plan.toml\n");
    git(sandbox.path(), &["add", "-A"]);
    git(
        sandbox.path(),
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-qm",
            "i",
        ],
    );
    sandbox.write("plan.toml", plan);
    sandbox
}

fn read(sandbox: &Sandbox, path: &str) -> String {
    std::fs::read_to_string(sandbox.path().join(path)).expect("read")
}

const EXECUTOR: &[&str] = &["--executor", "sh -c {prompt}"];

#[test]
fn trust_01_an_agents_file_named_like_a_temp_file_never_lands_in_another_path() {
    let sandbox = mk(r#"
[[task]]
id = "h"
prompt = "echo from-h > .b.txt.forge-publish"
writes = [".b.txt.forge-publish"]

[[task]]
id = "l"
prompt = "echo from-l > b.txt"
writes = ["b.txt"]
"#);
    let out = sandbox.run(EXECUTOR, None);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert_eq!(read(&sandbox, "b.txt"), "from-l\n");
    assert_eq!(read(&sandbox, ".b.txt.forge-publish"), "from-h\n");
}

#[test]
fn trust_02_user_edits_during_a_run_are_merged_or_kept_and_reported() {
    // The task plays the agent in its view and, by absolute path, the user in the working
    // tree: the user appends to a.txt while the agent rewrites its first line (merged),
    // both change b.txt's only line (conflict), the agent deletes c.txt the user edited.
    let sandbox = mk("");
    let repo = sandbox.path().display().to_string();
    sandbox.write(
        "plan.toml",
        &format!(
            r#"
[[task]]
id = "t"
prompt = "sed -i s/l1/AGENT/ a.txt && echo agent > b.txt && rm c.txt && echo l4 >> {repo}/a.txt && echo user > {repo}/b.txt && echo user >> {repo}/c.txt"
writes = ["a.txt", "b.txt", "c.txt"]
"#
        ),
    );
    let out = sandbox.run(EXECUTOR, None);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert_eq!(read(&sandbox, "a.txt"), "AGENT\nl2\nl3\nl4\n");
    assert_eq!(read(&sandbox, "b.txt"), "user\n");
    assert_eq!(read(&sandbox, "c.txt"), "c\nuser\n");
    assert!(stdout.contains("not published: b.txt ("), "{stdout}");
    assert!(stdout.contains("not published: c.txt ("), "{stdout}");
    assert!(
        stdout.contains("user    you changed") && stdout.contains("during the run"),
        "the live display says the user changed files: {stdout}"
    );
    let kept = Path::new(&sandbox.run_dir()).join("publish-conflicts/b.txt");
    assert_eq!(std::fs::read_to_string(kept).expect("kept"), "agent\n");
    let journal = std::fs::read_to_string(Path::new(&sandbox.run_dir()).join("journal.jsonl"))
        .expect("journal");
    assert!(
        journal.contains(r#""kind":"publish_conflict","path":"b.txt""#),
        "{journal}"
    );
    assert!(
        journal.contains(r#""kind":"working_tree_changed""#),
        "{journal}"
    );
}

#[test]
fn trust_17_an_interrupted_publish_blocks_new_runs_until_resumed() {
    let sandbox = mk(r#"
[[task]]
id = "t"
prompt = "echo agent > b.txt"
writes = ["b.txt"]
"#);
    let out = sandbox.run(EXECUTOR, None);
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    // What a crash halfway through publishing leaves: the record not done, the marker.
    let run_dir = std::fs::canonicalize(sandbox.run_dir()).expect("run dir");
    std::fs::write(
        run_dir.join("publish.json"),
        r#"{"from":0,"generation":1,"done":false}"#,
    )
    .expect("record");
    let marker = sandbox.path().join(".git/forge/publishing");
    std::fs::write(&marker, run_dir.display().to_string()).expect("marker");

    let status = forge(sandbox.path(), &["status", &sandbox.run_dir()]);
    let (_, stderr) = text(&status);
    assert!(stderr.contains("was interrupted"), "{stderr}");
    assert!(stderr.contains("forge resume"), "{stderr}");

    let other = sandbox.path().parent().expect("parent").join("run-2");
    let again = forge(
        sandbox.path(),
        &[
            "run",
            "plan.toml",
            "--run-dir",
            &other.display().to_string(),
            EXECUTOR[0],
            EXECUTOR[1],
        ],
    );
    let (_, stderr) = text(&again);
    assert_eq!(again.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("run `forge resume {}` first", run_dir.display())),
        "{stderr}"
    );
    assert!(!other.exists(), "nothing written before refusing");

    let resumed = forge(sandbox.path(), &["resume", &sandbox.run_dir()]);
    assert_eq!(resumed.status.code(), Some(0), "{:?}", text(&resumed));
    assert!(!marker.exists());
    assert_eq!(read(&sandbox, "b.txt"), "agent\n");
}

#[test]
fn trust_03_two_runs_on_one_repository_both_land() {
    let sandbox = mk("");
    sandbox.write(".gitignore", "plan*.toml\n");
    for (name, from, to) in [("a", "l1", "A"), ("b", "l3", "B")] {
        sandbox.write(
            &format!("plan-{name}.toml"),
            &format!(
                "[[task]]\nid = \"{name}\"\nprompt = \"sleep 1; sed -i s/{from}/{to}/ a.txt\"\nwrites = [\"a.txt\"]\n"
            ),
        );
    }
    let runs: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|name| {
            let repo = sandbox.path().to_owned();
            let run_dir = format!("{}-{name}", sandbox.run_dir());
            std::thread::spawn(move || {
                forge(
                    &repo,
                    &[
                        "run",
                        &format!("plan-{name}.toml"),
                        "--run-dir",
                        &run_dir,
                        EXECUTOR[0],
                        EXECUTOR[1],
                    ],
                )
            })
        })
        .collect();
    for run in runs {
        let out = run.join().expect("forge thread");
        assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    }
    assert_eq!(read(&sandbox, "a.txt"), "A\nl2\nB\n");
}
