//! Engine tests of merge conflicts: a conflicted task fails with a report, or is retried on
//! the new head, or has its markers handed to a resolver, as the conflict policy says.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use forge_staging::Backend;

use super::*;

/// Two tasks that both open a view of generation 0 (a barrier makes sure) and both rewrite
/// line 5 of src/shared.txt: whichever merges second conflicts.
fn rival_line_5_editors() -> impl crate::Executor {
    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    FnExecutor::new(move |job| {
        let barrier = barrier.clone();
        async move {
            barrier.wait().await;
            let text = format!("line 5 by {}\n", job.task.id);
            edit(&job.workdir, "src/shared.txt", "line 5\n", &text);
            Ok(ExecOutput::default())
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflict_fails_the_task_with_a_report_and_keeps_the_rest() {
    let f = fixture();
    let executors = Executors::single(rival_line_5_editors());
    let plan = Plan::default()
        .with_task(Task::new("first", "").priority(1))
        .with_task(Task::new("second", ""));
    let outcome = run(
        plan,
        &executors,
        options(&f, Backend::Copy).run(RunOptions::default().jobs(2).keep_going(true)),
    )
    .await
    .expect("run");
    assert_eq!(outcome.run.counts().succeeded, 1);
    assert_eq!(outcome.run.counts().failed, 1);
    assert_eq!(outcome.conflicts.len(), 1);
    let (task, report) = &outcome.conflicts[0];
    assert_eq!(report.paths.len(), 1);
    assert_eq!(report.paths[0].path, "src/shared.txt");
    assert_eq!((report.base_generation, report.head_generation), (0, 1));
    let shared = read(&f.repo, "src/shared.txt");
    let winner = if task == "first" { "second" } else { "first" };
    assert!(
        shared.contains(&format!("line 5 by {winner}\n")),
        "{shared}"
    );
    assert!(
        !shared.contains("<<<<<<<"),
        "no markers reach the repository"
    );
    let state = status(&f.run_dir).expect("status");
    assert_eq!(state.conflicts.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retry_policy_reruns_a_conflicted_task_on_the_new_head() {
    let f = fixture();
    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    let runs = Arc::new(AtomicU32::new(0));
    let (b, r) = (barrier.clone(), runs.clone());
    let executors = Executors::single(FnExecutor::new(move |job| {
        let (barrier, runs) = (b.clone(), r.clone());
        async move {
            // Only the first pass of each task meets at the barrier.
            if runs.fetch_add(1, Ordering::SeqCst) < 2 {
                barrier.wait().await;
            }
            let text = read(&job.workdir, "src/shared.txt");
            let line = text.lines().nth(4).expect("line 5").to_owned();
            let text = text.replacen(
                &format!("{line}\n"),
                &format!("{line} +{}\n", job.task.id),
                1,
            );
            std::fs::write(job.workdir.join("src/shared.txt"), text).expect("write");
            Ok(ExecOutput::default())
        }
    }));
    let plan = Plan::default()
        .with_task(Task::new("x", ""))
        .with_task(Task::new("y", ""));
    let outcome = run(
        plan,
        &executors,
        options(&f, Backend::Copy).conflicts(ConflictPolicy::Retry { max: 1 }),
    )
    .await
    .expect("run");
    assert!(outcome.is_success(), "{:?}", outcome.run);
    assert_eq!(runs.load(Ordering::SeqCst), 3, "one task ran twice");
    let shared = read(&f.repo, "src/shared.txt");
    assert!(
        shared.contains("line 5 +x +y\n") || shared.contains("line 5 +y +x\n"),
        "{shared}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_resolve_policy_hands_markers_to_the_resolver() {
    let f = fixture();
    let worker = rival_line_5_editors();
    let resolver = FnExecutor::new(|job: crate::Job| async move {
        assert!(
            job.task.prompt.contains("src/shared.txt"),
            "{}",
            job.task.prompt
        );
        let text = read(&job.workdir, "src/shared.txt");
        let resolved: String = text
            .lines()
            .filter(|l| {
                !l.starts_with("<<<<<<<") && !l.starts_with("=======") && !l.starts_with(">>>>>>>")
            })
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write(job.workdir.join("src/shared.txt"), resolved).expect("write");
        Ok(ExecOutput::default())
    });
    let executors = Executors::single(worker).with("resolver", resolver);
    let plan = Plan::default()
        .with_task(Task::new("p", ""))
        .with_task(Task::new("q", ""));
    let outcome = run(
        plan,
        &executors,
        options(&f, Backend::Copy).conflicts(ConflictPolicy::Resolve {
            executor: "resolver".to_owned(),
        }),
    )
    .await
    .expect("run");
    assert!(outcome.is_success(), "{:?}", outcome.run);
    let shared = read(&f.repo, "src/shared.txt");
    assert!(
        shared.contains("line 5 by p\n") && shared.contains("line 5 by q\n"),
        "{shared}"
    );
}
