//! Runs the demo's code path with short delays and checks what it promises: every agent but
//! one of the two rival version bumps succeeds (that one is a reported conflict), the flaky one
//! on its second attempt, `api` starts only after both `models` and `schema` are done,
//! independent agents overlap, two edits of README.md merge, and the files reach the
//! repository.

#![forbid(unsafe_code)]

use std::time::Duration;

use forge_core::{Event, TaskOutcome};
use forge_examples::{DemoOptions, run_demo};

fn at(events: &[(Duration, Event)], pred: impl Fn(&Event) -> bool) -> Duration {
    events
        .iter()
        .find(|(_, e)| pred(e))
        .map(|(at, _)| *at)
        .expect("event present")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_runs_to_success() {
    let mut out = Vec::new();
    let report = run_demo(
        &DemoOptions {
            time_scale: 0.2,
            jobs: 5,
        },
        &mut out,
    )
    .await
    .expect("demo runs");
    let out = String::from_utf8(out).expect("utf-8");
    let run = &report.outcome.run;
    // Exactly one of the two version bumps conflicts; everything else succeeds.
    assert_eq!(run.counts().failed, 1, "{out}");
    assert_eq!(report.outcome.conflicts.len(), 1, "{out}");
    let (loser, conflict) = &report.outcome.conflicts[0];
    assert!(loser == "bump" || loser == "rival", "{out}");
    assert_eq!(conflict.paths[0].path, "Cargo.toml", "{out}");
    let readme = std::fs::read_to_string(report.repo.join("README.md")).expect("README");
    assert!(
        readme.contains("A small shop backend") && readme.contains("## Usage"),
        "both README edits merged: {readme}"
    );
    assert!(
        matches!(
            run.get("client"),
            Some(TaskOutcome::Succeeded { attempts: 2, .. })
        ),
        "{out}"
    );
    let done = |id: &'static str| {
        at(
            &report.events,
            move |e| matches!(e, Event::TaskSucceeded { task, .. } if task == id),
        )
    };
    let started = |id: &'static str| {
        at(
            &report.events,
            move |e| matches!(e, Event::TaskStarted { task, .. } if task == id),
        )
    };
    assert!(
        started("api") >= done("models") && started("api") >= done("schema"),
        "{out}"
    );
    assert!(
        started("schema") < done("models"),
        "models and schema overlap: {out}"
    );
    for file in [
        "src/lib.rs",
        "src/models.rs",
        "src/api.rs",
        "src/client.rs",
        "migrations/001_users.sql",
    ] {
        assert!(report.repo.join(file).is_file(), "{file} missing\n{out}");
    }
    assert!(
        out.contains("retry   client: task `client`: `sh` exited with status 75"),
        "{out}"
    );
    assert!(out.contains("9 agents in "), "{out}");
    assert!(out.contains("CONFLICT "), "{out}");
    assert!(out.contains("?? src/api.rs"), "{out}");
}

/// The embedding example: in-process agents edit their views, and the reviewer's `git status`
/// runs in its view (joining its namespace when overlay runs without root) and sees the
/// other two agents' merged work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_agents_edit_views_and_run_tools_in_them() {
    let report = forge_examples::run_embedded().await.expect("runs");
    assert!(report.outcome.is_success(), "{:?}", report.outcome.run);
    let read = |p: &str| std::fs::read_to_string(report.repo.join(p)).expect(p);
    assert_eq!(
        read("INVENTORY.md"),
        "# Inventory\n\n- src/main.rs: 1 lines\n"
    );
    assert_eq!(read("LICENSE"), "MIT License\n");
    let review = read("REVIEW.md");
    assert!(
        review.contains("?? INVENTORY.md\n") && review.contains("?? LICENSE\n"),
        "{review}"
    );
}
