//! ProcessExecutor against real processes: timeouts kill the whole group (grandchildren
//! included), endless output stays bounded, and exit statuses map to error classes.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use forge_core::{
    ErrorClass, EventBus, Executor, Executors, Job, LogStream, Plan, ProcessExecutor, Progress,
    ProgressSink, RunOptions, Task, TaskOutcome, run_plan,
};
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

/// Whether `pid` names a live (not zombie) process.
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit(')')
                .next()
                .and_then(|rest| rest.split_whitespace().next());
            state != Some("Z") && state != Some("X")
        }
        Err(_) => false,
    }
}

/// Whether `pid` is gone within a moment (signal delivery and exit are asynchronous).
fn gone(pid: i32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(3);
    while alive(pid) {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

fn read_pid(path: &Path) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && let Ok(pid) = text.trim().parse()
        {
            return pid;
        }
        assert!(Instant::now() < deadline, "no pid in {}", path.display());
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn sh(script: &str) -> ProcessExecutor {
    ProcessExecutor::new(["sh", "-c", script]).expect("argv")
}

async fn execute(
    executor: &ProcessExecutor,
    dir: &Path,
    cancel_after: Option<Duration>,
) -> Result<forge_core::ExecOutput, forge_core::ExecError> {
    let cancel = CancellationToken::new();
    if let Some(after) = cancel_after {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            cancel.cancel();
        });
    }
    let job = Job::new(Arc::new(Task::new("t", "")), dir).with_cancel(cancel);
    executor.execute(job).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_kills_child_and_grandchildren() {
    let dir = tempfile::tempdir().expect("tempdir");
    let script = "sleep 1000 & echo $! > grandchild.pid; echo started; sleep 1000";
    let executors = Executors::single(sh(script).grace(Duration::from_millis(500)));
    let plan = Plan::default()
        .with_task(Task::new("hang", "").timeout(Duration::from_millis(300)))
        .validate()
        .expect("valid");
    let started = Instant::now();
    let outcome = run_plan(&plan, &executors, RunOptions::default().workdir(dir.path()))
        .await
        .expect("runs");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(
        matches!(
            outcome.get("hang"),
            Some(TaskOutcome::TimedOut { attempts: 1, .. })
        ),
        "{:?}",
        outcome.get("hang")
    );
    let grandchild = read_pid(&dir.path().join("grandchild.pid"));
    assert!(
        gone(grandchild),
        "grandchild {grandchild} survived the timeout"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ignored_means_sigkill_after_grace() {
    let dir = tempfile::tempdir().expect("tempdir");
    let script = "trap '' TERM; sh -c 'trap \"\" TERM; sleep 1000' & echo $! > grandchild.pid; \
                  while :; do sleep 1; done";
    let executor = sh(script).grace(Duration::from_millis(400));
    let started = Instant::now();
    let result = execute(&executor, dir.path(), Some(Duration::from_millis(300))).await;
    let elapsed = started.elapsed();
    assert!(result.is_err());
    assert!(
        elapsed >= Duration::from_millis(650),
        "{elapsed:?}: SIGKILL came before the grace"
    );
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    let grandchild = read_pid(&dir.path().join("grandchild.pid"));
    assert!(gone(grandchild), "grandchild {grandchild} survived SIGKILL");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_leftovers_are_stopped_when_the_child_exits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let executor =
        sh("sleep 1000 & echo $! > grandchild.pid; exit 0").grace(Duration::from_millis(500));
    let started = Instant::now();
    let result = execute(&executor, dir.path(), None).await;
    assert!(result.is_ok(), "{result:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
    let grandchild = read_pid(&dir.path().join("grandchild.pid"));
    assert!(
        gone(grandchild),
        "grandchild {grandchild} outlived its attempt"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_output_is_bounded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lines = Arc::new(Mutex::new((0u64, 0usize)));
    let sink = {
        let lines = lines.clone();
        ProgressSink::new(move |p| {
            if let Progress::Log { line, .. } = p {
                let mut lines = lines.lock();
                lines.0 += 1;
                lines.1 = lines.1.max(line.len());
            }
        })
    };
    // Many lines, then one endless line without a newline.
    let executor = sh("yes 'a line of output' | head -n 200000; yes | tr -d '\\n'")
        .max_line_len(1000)
        .tail_bytes(4096)
        .grace(Duration::from_millis(200));
    let cancel = CancellationToken::new();
    let job = Job::new(Arc::new(Task::new("flood", "")), dir.path())
        .with_cancel(cancel.clone())
        .with_progress(sink);
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        cancel.cancel();
    });
    let err = executor.execute(job).await.expect_err("cancelled");
    assert!(
        err.output_tail().len() <= 4096,
        "{}",
        err.output_tail().len()
    );
    let (count, longest) = *lines.lock();
    assert!(count >= 200_000, "{count} lines");
    assert!(longest <= 1000 + " [line truncated]".len(), "{longest}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_status_maps_to_error_class() {
    let dir = tempfile::tempdir().expect("tempdir");
    let check = |script: &'static str| {
        let dir = dir.path().to_owned();
        async move { execute(&sh(script), &dir, None).await.expect_err(script) }
    };
    let err = check("echo oops >&2; exit 3").await;
    assert_eq!(err.message(), "task `t`: `sh` exited with status 3");
    assert_eq!(err.class(), ErrorClass::Retryable);
    assert_eq!(err.output_tail(), "oops\n");

    let err = check("exit 75").await;
    assert_eq!(err.class(), ErrorClass::Retryable);

    let err = check("echo 'forge:retry-after 2.5'; exit 76").await;
    assert_eq!(
        err.class(),
        ErrorClass::RateLimited {
            retry_after: Duration::from_millis(2500)
        }
    );

    let err = check("exec no-such-command-for-forge").await;
    assert_eq!(err.class(), ErrorClass::Fatal);
    assert_eq!(err.message(), "task `t`: `sh` exited with status 127");

    let err = check("kill -SEGV $$").await;
    assert_eq!(
        err.message(),
        "task `t`: `sh` was killed by signal 11 (SIGSEGV)"
    );

    let missing = ProcessExecutor::new(["/no/such/program"]).expect("argv");
    let err = execute(&missing, dir.path(), None)
        .await
        .expect_err("cannot start");
    assert_eq!(err.class(), ErrorClass::Fatal);
    assert!(
        err.message()
            .starts_with("task `t`: cannot start `/no/such/program` in "),
        "{}",
        err.message()
    );
}

/// Odd `forge:retry-after` values: a huge one is cut to a day (no hang), one that overflows
/// a `Duration` does not panic, a malformed one counts as no header; and a run whose agent
/// keeps asking for a huge pause ends with a failure that says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trust_13_odd_retry_after_headers_are_capped_or_ignored() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (script, expected) in [
        (
            "echo 'forge:retry-after 100000000000000000'; exit 76",
            forge_core::MAX_RATE_LIMIT_PAUSE,
        ),
        (
            "echo 'forge:retry-after 1e300'; exit 76",
            forge_core::MAX_RATE_LIMIT_PAUSE,
        ),
        (
            "echo 'forge:retry-after -5'; exit 76",
            Duration::from_secs(60),
        ),
        (
            "echo 'forge:retry-after soon'; exit 76",
            Duration::from_secs(60),
        ),
    ] {
        let err = execute(&sh(script), dir.path(), None)
            .await
            .expect_err(script);
        assert_eq!(
            err.class(),
            ErrorClass::RateLimited {
                retry_after: expected
            },
            "{script}"
        );
    }

    let plan = Plan::new(vec![Task::new("t", "")])
        .validate()
        .expect("valid plan");
    let executors = Executors::single(sh("echo 'forge:retry-after 100000000000000000'; exit 76"));
    let started = Instant::now();
    let options = RunOptions::default()
        .workdir(dir.path())
        .rate_limit_budget(20, Duration::from_secs(3600));
    let outcome = run_plan(&plan, &executors, options).await.expect("runs");
    assert!(started.elapsed() < Duration::from_secs(10));
    let TaskOutcome::Failed { error, .. } = outcome.get("t").expect("task t") else {
        panic!("{:?}", outcome.get("t"));
    };
    assert!(
        error.message().contains(
            "rate limited 1 time (paused 0ns in total); a pause of 86400s more would pass the \
             limit of 3600s"
        ),
        "{}",
        error.message()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn placeholders_are_never_resplit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let prompt = "fix the \"bug\"; it's $HOME `date` && rm -rf /";
    let executor = ProcessExecutor::from_template(
        r#"sh -c 'printf "%s|%s|%s|%s" "$1" "$2" "$3" "$FORGE_TASK" > out.txt' sh {prompt} task={task} {workdir}"#,
    )
    .expect("template");
    let job = Job::new(Arc::new(Task::new("api", prompt)), dir.path());
    executor.execute(job).await.expect("runs");
    let out = std::fs::read_to_string(dir.path().join("out.txt")).expect("out.txt");
    assert_eq!(
        out,
        format!("{prompt}|task=api|{}|api", dir.path().display())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_becomes_events() {
    let dir = tempfile::tempdir().expect("tempdir");
    let executors = Executors::single(sh(
        "echo hello; echo 'forge:progress {\"step\":1}'; echo warn >&2",
    ));
    let plan = Plan::default()
        .with_task(Task::new("a", ""))
        .validate()
        .expect("valid");
    let bus = EventBus::new(256);
    let mut events = bus.subscribe();
    let outcome = run_plan(
        &plan,
        &executors,
        RunOptions::default().workdir(dir.path()).bus(bus),
    )
    .await
    .expect("runs");
    assert!(outcome.is_success());
    let mut seen = Vec::new();
    while let Ok(forge_core::events::Delivery::Event(event)) = events.try_recv() {
        match event {
            forge_core::Event::TaskLog { stream, line, .. } => {
                seen.push(format!(
                    "{}:{line}",
                    if stream == LogStream::Stdout {
                        "out"
                    } else {
                        "err"
                    }
                ));
            }
            forge_core::Event::TaskProgress { data, .. } => seen.push(format!("progress:{data}")),
            _ => {}
        }
    }
    seen.sort();
    assert_eq!(seen, ["err:warn", "out:hello", "progress:{\"step\":1}"]);
}

/// The child's `PWD` is its working directory (the view), whatever forge's own `PWD` says:
/// `perl` and `node` trust `PWD`, so an inherited one made them write into the repository.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trust_04_pwd_is_the_view() {
    let dir = tempfile::tempdir().expect("tempdir");
    let perl =
        ProcessExecutor::new(["perl", "-e", r#"open(F, ">$ENV{PWD}/leak") or die"#]).expect("argv");
    execute(&perl, dir.path(), None).await.expect("perl runs");
    assert!(dir.path().join("leak").exists(), "perl wrote elsewhere");
    let env = sh("env > env.txt");
    execute(&env, dir.path(), None).await.expect("sh runs");
    let env = std::fs::read_to_string(dir.path().join("env.txt")).expect("env.txt");
    assert!(
        env.lines()
            .any(|l| l == format!("PWD={}", dir.path().display())),
        "{env}"
    );
    assert!(!env.lines().any(|l| l.starts_with("OLDPWD=")), "{env}");
}
