//! The engine's publish (issue 13 item 2): edits the user makes to the working tree while
//! the agents run are merged with the run's changes, or kept, reported as
//! `EngineOutcome::publish_conflicts` and `publish_conflict` events, and fail the run.

use std::path::Path;

use forge_staging::{Backend, PublishConflictKind};

use super::*;
use crate::executor::{ExecOutput, FnExecutor};

/// A git repository holding `b.txt` with three lines, committed.
fn git_repo(root: &Path) -> PathBuf {
    let repo = root.join("repo");
    std::fs::create_dir_all(&repo).expect("mkdir");
    std::fs::write(repo.join("b.txt"), "one\ntwo\nthree\n").expect("write");
    for args in [
        &["init", "-q"][..],
        &["add", "-A"],
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-qm",
            "i",
        ],
    ] {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(&repo)
            .args(args)
            .output()
            .expect("git");
        assert!(out.status.success(), "{out:?}");
    }
    repo
}

/// Runs one task that rewrites `agent_line` of b.txt in its view while "the user" rewrites
/// `user_line` of the working tree's b.txt; gives the outcome, b.txt afterwards, and the
/// temporary directory holding both (alive while the caller reads kept files).
async fn race(
    agent_line: &'static str,
    user_line: &'static str,
) -> (EngineOutcome, String, tempfile::TempDir) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = git_repo(tmp.path());
    let user_repo = repo.clone();
    let executors = Executors::single(FnExecutor::new(move |job| {
        let user_repo = user_repo.clone();
        async move {
            let edit = |root: &Path, line: &str, to: &str| {
                let path = root.join("b.txt");
                let text = std::fs::read_to_string(&path).expect("read");
                std::fs::write(&path, text.replacen(line, to, 1)).expect("write");
            };
            edit(&job.workdir, agent_line, "AGENT");
            edit(&user_repo, user_line, "USER");
            Ok(ExecOutput::default())
        }
    }));
    let plan = Plan::default()
        .with_task(Task::new("t", "").writes(["b.txt"]))
        .validate()
        .expect("valid");
    let options = EngineOptions::new(&repo, tmp.path().join("run")).backend(Some(Backend::Copy));
    let outcome = run_engine(&plan, &executors, options).await.expect("run");
    let text = std::fs::read_to_string(repo.join("b.txt")).expect("read");
    (outcome, text, tmp)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trust_02_user_edits_of_other_lines_are_merged() {
    let (outcome, text, _tmp) = race("one", "three").await;
    assert!(outcome.is_success(), "{:?}", outcome.publish_conflicts);
    assert_eq!(text, "AGENT\ntwo\nUSER\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trust_02_user_edits_of_the_same_line_are_kept_and_fail_the_run() {
    let (outcome, text, _tmp) = race("two", "two").await;
    assert_eq!(text, "one\nUSER\nthree\n");
    assert!(outcome.run.is_success(), "the task itself succeeded");
    assert!(!outcome.is_success(), "a publish conflict fails the run");
    assert_eq!(outcome.publish_conflicts.len(), 1);
    let conflict = &outcome.publish_conflicts[0];
    assert_eq!(conflict.path, "b.txt");
    assert_eq!(conflict.kind, PublishConflictKind::Content);
    let kept = conflict.kept.as_ref().expect("the run's version is kept");
    assert_eq!(
        std::fs::read_to_string(kept).expect("kept"),
        "one\nAGENT\nthree\n"
    );
}
