//! Tests of the engine: end-to-end runs with scripted in-process agents on generated
//! repositories, for the copy backend everywhere and overlay where it works.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use forge_staging::Backend;

use super::*;
use crate::executor::{ExecError, ExecOutput, FnExecutor};
use crate::plan::Task;

type Action = Arc<dyn Fn(&Path) + Send + Sync>;

/// An executor that runs the action registered for each task id, in the job's directory.
fn scripted(actions: Vec<(&str, Action)>) -> Executors {
    let actions: Arc<BTreeMap<String, Action>> = Arc::new(
        actions
            .into_iter()
            .map(|(id, a)| (id.to_owned(), a))
            .collect(),
    );
    Executors::single(FnExecutor::new(move |job| {
        let action = actions.get(&job.task.id).cloned();
        async move {
            if let Some(action) = action {
                action(&job.workdir);
            }
            Ok(ExecOutput::default())
        }
    }))
}

fn act(f: impl Fn(&Path) + Send + Sync + 'static) -> Action {
    Arc::new(f)
}

fn write(root: &Path, path: &str, text: &str) {
    let path = root.join(path);
    std::fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

fn read(root: &Path, path: &str) -> String {
    std::fs::read_to_string(root.join(path)).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

/// Replaces `from` by `to` in a file of the view.
fn edit(root: &Path, path: &str, from: &str, to: &str) {
    let text = read(root, path);
    assert!(text.contains(from), "{path} lacks {from:?}");
    std::fs::write(root.join(path), text.replacen(from, to, 1)).expect("write");
}

struct Fixture {
    _tmp: tempfile::TempDir,
    repo: std::path::PathBuf,
    run_dir: std::path::PathBuf,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = tmp.path().join("repo");
    write(&repo, "README.md", "# sample\n");
    let lines: String = (1..=20).map(|i| format!("line {i}\n")).collect();
    write(&repo, "src/shared.txt", &lines);
    write(&repo, "src/a.txt", "a\n");
    write(&repo, "src/b.txt", "b\n");
    let run_dir = tmp.path().join("run");
    Fixture {
        _tmp: tmp,
        repo,
        run_dir,
    }
}

/// The stagings to test here, by name: copy always; overlay with plain mounts (root) and in
/// a user namespace, where they work, else a failure unless FORGE_ALLOW_SKIP_OVERLAY is set.
/// In-process agents reach user-namespace views through `/proc`.
fn stagings() -> Vec<(&'static str, forge_staging::StagingOptions)> {
    use forge_staging::{OverlayMode, StagingOptions};
    let mut out = vec![("copy", StagingOptions::with_backend(Some(Backend::Copy)))];
    let modes = [
        ("overlay", OverlayMode::Mount),
        ("overlay-userns", OverlayMode::UserNamespace),
    ];
    for (name, mode) in modes {
        if mode == OverlayMode::Mount && !rustix::process::geteuid().is_root() {
            continue;
        }
        let mut opts = StagingOptions::with_backend(Some(Backend::Overlay));
        opts.overlay_mode = mode;
        let probe = fixture();
        match forge_staging::Staging::open(&probe.repo, &probe.run_dir, opts.clone()) {
            Ok(_) => out.push((name, opts)),
            Err(e) if std::env::var_os("FORGE_ALLOW_SKIP_OVERLAY").is_some() => {
                eprintln!("skipping {name} (FORGE_ALLOW_SKIP_OVERLAY is set): {e}");
            }
            Err(e) => panic!(
                "{name} does not work here ({e}); set FORGE_ALLOW_SKIP_OVERLAY=1 to skip its tests"
            ),
        }
    }
    out
}

fn options(f: &Fixture, backend: Backend) -> EngineOptions {
    EngineOptions::new(&f.repo, &f.run_dir)
        .backend(Some(backend))
        .run(RunOptions::default().jobs(4).seed(7))
}

async fn run(
    plan: Plan,
    executors: &Executors,
    options: EngineOptions,
) -> Result<EngineOutcome, EngineError> {
    let plan = plan.validate().expect("valid plan");
    run_engine(&plan, executors, options).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disjoint_and_same_file_edits_merge_into_the_repository() {
    for (backend, staging) in stagings() {
        let f = fixture();
        let executors = scripted(vec![
            ("a", act(|d| edit(d, "src/a.txt", "a", "A"))),
            ("b", act(|d| write(d, "src/new/b2.txt", "new\n"))),
            (
                "top",
                act(|d| edit(d, "src/shared.txt", "line 2\n", "LINE TWO\n")),
            ),
            (
                "bottom",
                act(|d| edit(d, "src/shared.txt", "line 19\n", "LINE 19\n")),
            ),
            (
                "del",
                act(|d| std::fs::remove_file(d.join("README.md")).expect("rm")),
            ),
        ]);
        let plan = Plan::default()
            .with_task(Task::new("a", "").writes(["src/a.txt"]))
            .with_task(Task::new("b", "").writes(["src/new/**"]))
            .with_task(Task::new("top", ""))
            .with_task(Task::new("bottom", ""))
            .with_task(Task::new("del", "").deps(["a", "b"]));
        let mut opts = options(&f, Backend::Copy);
        opts.staging = staging.clone();
        let outcome = run(plan, &executors, opts).await.expect("run");
        assert!(outcome.is_success(), "{backend}: {:?}", outcome.run);
        assert!(outcome.published);
        assert_eq!(Some(outcome.backend.0), staging.backend);
        assert_eq!(read(&f.repo, "src/a.txt"), "A\n");
        assert_eq!(read(&f.repo, "src/new/b2.txt"), "new\n");
        let shared = read(&f.repo, "src/shared.txt");
        assert!(
            shared.contains("LINE TWO\n") && shared.contains("LINE 19\n"),
            "{shared}"
        );
        assert!(!f.repo.join("README.md").exists());
        assert_eq!(
            outcome.generation, 5,
            "{backend}: one generation per changing task"
        );
    }
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_outside_the_declared_scope_are_rejected_or_warned() {
    for (policy, succeeds) in [(ScopePolicy::Reject, false), (ScopePolicy::Warn, true)] {
        let f = fixture();
        let executors = scripted(vec![(
            "api",
            act(|d| {
                write(d, "src/a.txt", "in scope\n");
                write(d, "README.md", "outside\n");
            }),
        )]);
        let plan = Plan::default().with_task(Task::new("api", "").writes(["src/a.txt"]));
        let outcome = run(plan, &executors, options(&f, Backend::Copy).scope(policy))
            .await
            .expect("run");
        assert_eq!(outcome.is_success(), succeeds, "{policy:?}");
        let expected = if succeeds { "outside\n" } else { "# sample\n" };
        assert_eq!(read(&f.repo, "README.md"), expected, "{policy:?}");
        if let Some(crate::TaskOutcome::Failed { error, .. }) = outcome.run.get("api") {
            assert!(error.to_string().contains("README.md"), "{error}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declared_writes_serialize_tasks_that_overlap() {
    let f = fixture();
    let running = Arc::new(AtomicU32::new(0));
    let r = running.clone();
    let executors = Executors::single(FnExecutor::new(move |job| {
        let running = r.clone();
        async move {
            assert_eq!(
                running.fetch_add(1, Ordering::SeqCst),
                0,
                "two writers of src/** at once"
            );
            tokio::time::sleep(std::time::Duration::from_millis(30)).await;
            let text = read(&job.workdir, "src/a.txt");
            std::fs::write(
                job.workdir.join("src/a.txt"),
                format!("{text}{}\n", job.task.id),
            )
            .expect("write");
            running.fetch_sub(1, Ordering::SeqCst);
            Ok(ExecOutput::default())
        }
    }));
    let plan = Plan::default()
        .with_task(Task::new("one", "").writes(["src/**"]))
        .with_task(Task::new("two", "").writes(["src/a.txt"]))
        .with_task(Task::new("three", "").writes(["src"]));
    let outcome = run(plan, &executors, options(&f, Backend::Copy))
        .await
        .expect("run");
    assert!(outcome.is_success(), "{:?}", outcome.run);
    let text = read(&f.repo, "src/a.txt");
    assert_eq!(
        text.lines().count(),
        4,
        "every writer saw the one before: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_keeps_merged_tasks_and_reruns_the_rest() {
    let f = fixture();
    let ran = Arc::new(parking_lot::Mutex::new(Vec::<String>::new()));
    let make = |fail_c: bool| {
        let ran = ran.clone();
        Executors::single(FnExecutor::new(move |job| {
            let ran = ran.clone();
            async move {
                ran.lock().push(job.task.id.clone());
                if job.task.id == "c" && fail_c {
                    return Err(ExecError::fatal("c crashes the first time"));
                }
                write(&job.workdir, &format!("out/{}.txt", job.task.id), "done\n");
                Ok(ExecOutput::default())
            }
        }))
    };
    let plan = Plan::default()
        .with_task(Task::new("a", ""))
        .with_task(Task::new("b", "").deps(["a"]))
        .with_task(Task::new("c", "").deps(["a"]));
    let first = run(
        plan,
        &make(true),
        options(&f, Backend::Copy)
            .publish(false)
            .run(RunOptions::default().jobs(1).keep_going(true)),
    )
    .await
    .expect("run");
    assert!(!first.is_success());
    assert!(!f.repo.join("out").exists(), "nothing published yet");
    ran.lock().clear();

    let second = resume(&make(false), options(&f, Backend::Copy))
        .await
        .expect("resume");
    assert!(second.is_success(), "{:?}", second.run);
    let mut kept = second.kept.clone();
    kept.sort();
    assert_eq!(kept, ["a", "b"]);
    assert_eq!(*ran.lock(), ["c"], "only the unmerged task runs again");
    for t in ["a", "b", "c"] {
        assert_eq!(read(&f.repo, &format!("out/{t}.txt")), "done\n");
    }
    let state = status(&f.run_dir).expect("status");
    assert!(state.published);
    assert!(["a", "b", "c"].iter().all(|t| state.is_merged(t)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_directory_with_a_journal_is_not_reused() {
    let f = fixture();
    let executors = scripted(vec![]);
    let plan = || Plan::default().with_task(Task::new("a", ""));
    let first = run(plan(), &executors, options(&f, Backend::Copy))
        .await
        .expect("run");
    assert!(first.is_success());
    let err = run(plan(), &executors, options(&f, Backend::Copy))
        .await
        .expect_err("journal exists");
    assert!(err.to_string().contains("resume"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadlock_victim_is_retried_and_both_tasks_finish() {
    let f = fixture();
    // `left` holds src/a.txt and then asks for src/b.txt; `right` the other way round. Both
    // meet at a barrier first, so the requests cross and the wait-for graph has a cycle.
    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    let b = barrier.clone();
    let executors = Executors::single(FnExecutor::new(move |job| {
        let barrier = b.clone();
        async move {
            let (mine, other) = if job.task.id == "left" {
                ("src/a.txt", "src/b.txt")
            } else {
                ("src/b.txt", "src/a.txt")
            };
            if job.attempt == 1 {
                barrier.wait().await;
            }
            let locks = job
                .locks
                .clone()
                .expect("the engine hands out a lock handle");
            locks.request(&[], &[other.to_owned()]).await?;
            for path in [mine, other] {
                let text = read(&job.workdir, path);
                std::fs::write(job.workdir.join(path), format!("{text}{}\n", job.task.id))
                    .expect("write");
            }
            Ok(ExecOutput::default())
        }
    }));
    let bus = crate::EventBus::new(1024);
    let mut events = bus.subscribe();
    let plan = Plan::default()
        .with_task(
            Task::new("left", "")
                .writes(["src/a.txt", "src/b.txt"])
                .retries(2),
        )
        .with_task(
            Task::new("right", "")
                .writes(["src/a.txt", "src/b.txt"])
                .retries(2),
        );
    // Declared writes would serialize them, so declare only each one's own file up front.
    let mut plan = plan;
    plan.tasks[0].writes = vec!["src/a.txt".to_owned()];
    plan.tasks[1].writes = vec!["src/b.txt".to_owned()];
    plan.tasks[0].reads = vec![];
    let outcome = run(
        plan,
        &executors,
        options(&f, Backend::Copy).scope(ScopePolicy::Allow).run(
            RunOptions::default()
                .jobs(2)
                .bus(bus)
                .backoff(crate::Backoff::fixed_exponential(
                    std::time::Duration::from_millis(10),
                    std::time::Duration::from_millis(50),
                    2.0,
                )),
        ),
    )
    .await
    .expect("run");
    assert!(outcome.is_success(), "{:?}", outcome.run);
    let mut deadlocks = 0;
    while let Ok(delivery) = events.try_recv() {
        if let forge_events::Delivery::Event(Event::Deadlock { cycle, .. }) = delivery {
            assert!(cycle.contains("left") && cycle.contains("right"), "{cycle}");
            deadlocks += 1;
        }
    }
    assert_eq!(deadlocks, 1, "one victim");
    // The victim's first view was thrown away: each file got exactly one line per task.
    for path in ["src/a.txt", "src/b.txt"] {
        let text = read(&f.repo, path);
        assert_eq!(text.lines().count(), 3, "{path}: {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_reads_rerun_the_reader_on_the_new_head() {
    for policy in [StaleReadPolicy::Warn, StaleReadPolicy::Rerun { max: 1 }] {
        let f = fixture();
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let b = barrier.clone();
        let executors = Executors::single(FnExecutor::new(move |job| {
            let barrier = b.clone();
            async move {
                if job.task.id == "writer" {
                    barrier.wait().await;
                    write(&job.workdir, "src/a.txt", "new a\n");
                } else {
                    // The reader copies src/a.txt; on its first pass it waits until the
                    // writer has merged, so what it read is stale by then.
                    let seen = read(&job.workdir, "src/a.txt");
                    if job.attempt == 1 && seen == "a\n" {
                        barrier.wait().await;
                        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                    }
                    write(&job.workdir, "copy.txt", &seen);
                }
                Ok(ExecOutput::default())
            }
        }));
        let plan = Plan::default()
            // No declared writes: the writer takes no locks, so nothing keeps it from
            // changing what the reader holds read locks on (declared writers would wait).
            .with_task(Task::new("writer", ""))
            .with_task(
                Task::new("reader", "")
                    .reads(["src/*.txt"])
                    .writes(["copy.txt"]),
            );
        let outcome = run(
            plan,
            &executors,
            options(&f, Backend::Copy).stale_reads(policy),
        )
        .await
        .expect("run");
        assert!(outcome.is_success(), "{policy:?}: {:?}", outcome.run);
        let expected = match policy {
            StaleReadPolicy::Warn => "a\n",
            _ => "new a\n",
        };
        assert_eq!(read(&f.repo, "copy.txt"), expected, "{policy:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_directory_keeps_what_the_head_added_to_it() {
    let f = fixture();
    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    let b = barrier.clone();
    let executors = Executors::single(FnExecutor::new(move |job| {
        let barrier = b.clone();
        async move {
            barrier.wait().await;
            if job.task.id == "adder" {
                write(&job.workdir, "src/new.txt", "new\n");
            } else {
                // Merges second, on top of the adder's generation.
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                std::fs::remove_dir_all(job.workdir.join("src")).expect("rm -r src");
            }
            Ok(ExecOutput::default())
        }
    }));
    let plan = Plan::default()
        .with_task(Task::new("adder", ""))
        .with_task(Task::new("remover", ""));
    let outcome = run(plan, &executors, options(&f, Backend::Copy))
        .await
        .expect("run");
    assert!(outcome.is_success(), "{:?}", outcome.run);
    assert_eq!(read(&f.repo, "src/new.txt"), "new\n");
    for gone in ["src/a.txt", "src/b.txt", "src/shared.txt"] {
        assert!(
            !f.repo.join(gone).exists(),
            "{gone} was deleted by the remover"
        );
    }
}

mod trust;
