//! Runs the demo's code path with short delays and checks what it promises: every agent
//! succeeds, the flaky one on its second attempt, `api` starts only after both `models` and
//! `schema` are done, independent agents overlap, and the files are written.

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
            time_scale: 0.1,
            jobs: 3,
        },
        &mut out,
    )
    .await
    .expect("demo runs");
    let out = String::from_utf8(out).expect("utf-8");
    assert!(report.outcome.is_success(), "{out}");
    assert!(
        matches!(
            report.outcome.get("client"),
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
        "src/models.rs",
        "src/api.rs",
        "docs/api.md",
        "tests/login.rs",
        "migrations/001_users.sql",
    ] {
        assert!(report.repo.join(file).is_file(), "{file} missing\n{out}");
    }
    assert!(
        out.contains("retry   client: task `client`: `sh` exited with status 75"),
        "{out}"
    );
    assert!(out.contains("8 agents in "), "{out}");
    assert!(out.contains("?? src/api.rs"), "{out}");
}
