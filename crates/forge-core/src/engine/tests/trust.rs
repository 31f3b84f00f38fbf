//! Engine tests of issue 13 ("Trust"): damaged journal records, kept work of tasks that did
//! not merge, and status after records were lost.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use forge_staging::Backend;

use super::*;

/// Damaged `commit_started` / `task_merged` records (here: a task name changed, which is
/// still valid JSON) are detected by their checksum; resume trusts the layer on disk, which
/// names its task, and never applies that task twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trust_09_damaged_commit_records_never_apply_a_task_twice() {
    let f = fixture();
    let make = |fail_c: bool| {
        Executors::single(FnExecutor::new(move |job| async move {
            if job.task.id == "c" && fail_c {
                return Err(ExecError::fatal("c crashes the first time"));
            }
            let path = job.workdir.join("src/a.txt");
            let text = std::fs::read_to_string(&path).expect("read a.txt");
            std::fs::write(&path, format!("{text}{} was here\n", job.task.id)).expect("append");
            Ok(ExecOutput::default())
        }))
    };
    let plan = Plan::default()
        .with_task(Task::new("appender", ""))
        .with_task(Task::new("c", "").deps(["appender"]));
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

    let journal = f.run_dir.join("journal.jsonl");
    let text = std::fs::read_to_string(&journal).expect("journal");
    let mut damaged = 0;
    let text: String = text
        .lines()
        .map(|line| {
            if line.contains("\"kind\":\"commit_started\"")
                || line.contains("\"kind\":\"task_merged\"")
            {
                damaged += 1;
                format!(
                    "{}\n",
                    line.replace("\"task\":\"appender\"", "\"task\":\"appendex\"")
                )
            } else {
                format!("{line}\n")
            }
        })
        .collect();
    assert_eq!(damaged, 2, "{text}");
    std::fs::write(&journal, text).expect("damage the journal");
    let state = status(&f.run_dir).expect("status");
    assert_eq!(state.corrupt_lines.len(), 2, "damaged records are reported");
    assert!(!state.tasks.contains_key("appendex"), "and never read");

    let second = resume(&make(false), options(&f, Backend::Copy))
        .await
        .expect("resume");
    assert!(second.is_success(), "{:?}", second.run);
    assert_eq!(second.kept, ["appender"]);
    assert_eq!(
        read(&f.repo, "src/a.txt"),
        "a\nappender was here\nc was here\n"
    );
}

/// A journal of garbage is not read as an interrupted run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trust_09_a_journal_of_garbage_is_not_a_run() {
    let f = fixture();
    std::fs::create_dir_all(&f.run_dir).expect("mkdir");
    std::fs::write(f.run_dir.join("journal.jsonl"), "hello\nworld\n{\"v\":1}\n").expect("write");
    let err = status(&f.run_dir).expect_err("not a journal");
    assert!(
        err.to_string()
            .contains("is not a forge journal: none of its 3 lines is a forge record"),
        "{err}"
    );
    std::fs::write(f.run_dir.join("journal.jsonl"), "").expect("write");
    status(&f.run_dir).expect("an empty journal is a run that wrote nothing yet");
}

/// Reads a kept change set: its `changes.json` and the files under `files/`.
fn kept_set(dir: &Path) -> (serde_json::Value, BTreeMap<String, String>) {
    let manifest = std::fs::read(dir.join("changes.json")).expect("changes.json");
    let manifest: serde_json::Value = serde_json::from_slice(&manifest).expect("json");
    let mut files = BTreeMap::new();
    let root = dir.join("files");
    let mut stack = vec![root.clone()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path.strip_prefix(&root).expect("under files");
                files.insert(
                    rel.display().to_string(),
                    std::fs::read_to_string(&path).expect("read"),
                );
            }
        }
    }
    (manifest, files)
}

/// A conflicted task's whole change set (the conflicting file, a new file that did not
/// conflict, a deletion) is kept in the run directory, and the outcome says where.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trust_08_a_conflicted_task_keeps_its_work() {
    let f = fixture();
    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    let executors = Executors::single(FnExecutor::new(move |job| {
        let barrier = barrier.clone();
        async move {
            barrier.wait().await;
            let text = format!("line 5 by {}\n", job.task.id);
            edit(&job.workdir, "src/shared.txt", "line 5\n", &text);
            write(&job.workdir, &format!("notes/{}.md", job.task.id), "mine\n");
            std::fs::remove_file(job.workdir.join("src/b.txt")).expect("rm");
            Ok(ExecOutput::default())
        }
    }));
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
    assert_eq!(outcome.conflicts.len(), 1);
    let (loser, report) = &outcome.conflicts[0];
    let kept = report
        .kept
        .clone()
        .expect("the conflict names the kept work");
    assert_eq!(kept, f.run_dir.join("kept").join(format!("{loser}-1")));
    let Some(crate::TaskOutcome::Failed { error, .. }) = outcome.run.get(loser) else {
        panic!("{loser} failed");
    };
    assert!(
        error
            .message()
            .contains(&format!("its changes are kept in {}", kept.display())),
        "{error}"
    );
    let (manifest, files) = kept_set(&kept);
    assert_eq!(manifest["task"], loser.as_str());
    assert_eq!(manifest["reason"], "conflict");
    assert_eq!(manifest["deleted"], serde_json::json!(["src/b.txt"]));
    assert_eq!(files[&format!("notes/{loser}.md")], "mine\n");
    assert!(files["src/shared.txt"].contains(&format!("line 5 by {loser}\n")));
    assert!(!f.repo.join(format!("notes/{loser}.md")).exists());
    let state = status(&f.run_dir).expect("status");
    assert_eq!(state.kept_work, [kept]);
}

/// A task rejected for writing outside its declared scope keeps its work too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trust_08_a_scope_rejected_task_keeps_its_work() {
    let f = fixture();
    let executors = scripted(vec![(
        "api",
        act(|d| {
            write(d, "src/a.txt", "in scope\n");
            write(d, "README.md", "outside\n");
        }),
    )]);
    let plan = Plan::default().with_task(Task::new("api", "").writes(["src/a.txt"]));
    let outcome = run(
        plan,
        &executors,
        options(&f, Backend::Copy).scope(ScopePolicy::Reject),
    )
    .await
    .expect("run");
    let Some(crate::TaskOutcome::Failed { error, .. }) = outcome.run.get("api") else {
        panic!("api failed");
    };
    let kept = f.run_dir.join("kept/api-1");
    assert!(
        error
            .message()
            .ends_with(&format!("its changes are kept in {}", kept.display())),
        "{error}"
    );
    let (manifest, files) = kept_set(&kept);
    assert_eq!(manifest["reason"], "scope");
    assert_eq!(files["src/a.txt"], "in scope\n");
    assert_eq!(files["README.md"], "outside\n");
    assert_eq!(read(&f.repo, "README.md"), "# sample\n");
}

/// A task whose end was never recorded (a full disk, a crash) shows as interrupted once no
/// process runs the run, not as running; while a process holds the run, it is running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trust_18_a_task_whose_end_was_not_recorded_is_not_shown_running() {
    let f = fixture();
    let executors = scripted(vec![("a", act(|d| write(d, "x.txt", "x\n")))]);
    let plan = Plan::default().with_task(Task::new("a", ""));
    let outcome = run(plan, &executors, options(&f, Backend::Copy).publish(false))
        .await
        .expect("run");
    assert!(outcome.is_success());
    // The records after `task_started` could not be written.
    let journal = f.run_dir.join("journal.jsonl");
    let text = std::fs::read_to_string(&journal).expect("journal");
    let cut = text
        .find("\"kind\":\"task_started\"")
        .expect("task_started");
    let end = cut + text[cut..].find('\n').expect("newline") + 1;
    std::fs::write(&journal, &text[..end]).expect("cut the journal");

    let state = status(&f.run_dir).expect("status");
    assert!(!state.live);
    assert_eq!(state.tasks["a"], TaskState::Interrupted { attempt: 1 });

    let dir = RunDir::open(&f.run_dir).expect("open");
    let _lock = dir.lock().expect("lock");
    let state = status(&f.run_dir).expect("status");
    assert!(state.live);
    assert_eq!(state.tasks["a"], TaskState::Running { attempt: 1 });
    let err = dir.lock().expect_err("one process at a time");
    assert!(
        err.to_string().contains("in use by another forge process"),
        "{err}"
    );
}
