//! Metrics in `forge run`'s summary and in `forge status` (text and JSON), also for a run
//! killed halfway.

use std::process::Output;

use crate::{Sandbox, forge, text};

/// `w1` and `w2` declare the same file, so one waits for the other's lock; `one` and `two`
/// change the same line from generation 0, so `two` (slower) conflicts and runs again on the
/// new head.
const PLAN: &str = r#"
[[task]]
id = "w1"
prompt = "sleep 0.3; echo w1 >> w.txt"
writes = ["w.txt"]

[[task]]
id = "w2"
prompt = "sleep 0.3; echo w2 >> w.txt"
writes = ["w.txt"]

[[task]]
id = "one"
prompt = "echo one > f.txt"

[[task]]
id = "two"
prompt = "sleep 0.6; echo two > f.txt"
"#;

fn run(sandbox: &Sandbox, kill_at: Option<u64>) -> Output {
    sandbox.write("plan.toml", PLAN);
    sandbox.write("f.txt", "base\n");
    sandbox.run(
        &[
            "--jobs",
            "4",
            "--conflicts",
            "retry",
            "--executor",
            "sh -c {prompt}",
            "--staging",
            "copy",
        ],
        kill_at,
    )
}

/// Runs the plan and kills `forge` at journal step 12, past the first attempts' starts and
/// before the end of the run.
fn run_killed_halfway(sandbox: &Sandbox) {
    let out = run(sandbox, Some(12));
    assert_eq!(
        out.status.code(),
        None,
        "killed by a signal: {:?}",
        text(&out)
    );
}

fn status_json(sandbox: &Sandbox) -> serde_json::Value {
    let out = forge(sandbox.path(), &["status", "--json", &sandbox.run_dir()]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    serde_json::from_str(&stdout).expect("status --json prints JSON")
}

#[test]
fn run_and_status_report_lock_waits_conflicts_and_times() {
    let sandbox = Sandbox::new();
    let out = run(&sandbox, None);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("\ntimes p50/p90/max: queue "), "{stdout}");
    // The conflicted task re-ran inside its one attempt: four attempts, four commits.
    assert!(
        stdout.contains("\ncounters: attempts 4, lock_waits 1, conflicts 1, commits 4\n"),
        "{stdout}"
    );

    let status = forge(sandbox.path(), &["status", &sandbox.run_dir()]);
    let (report, _) = text(&status);
    assert_eq!(status.status.code(), Some(0));
    let section = report
        .split_once("\nmetrics: ")
        .map(|(_, rest)| rest)
        .unwrap_or_else(|| panic!("no metrics section:\n{report}"));
    let rows: Vec<(&str, &str)> = section
        .lines()
        .skip(1)
        .take(4)
        .map(|line| {
            let (name, numbers) = line.trim().split_at(24);
            (
                name.trim_end(),
                numbers.split_whitespace().next().unwrap_or(""),
            )
        })
        .collect();
    // One queue wait and one declared lock request per attempt; one run per pass (the
    // conflicted task has two); one merge per pass.
    assert_eq!(
        rows,
        [
            ("queue wait", "4"),
            ("lock wait", "4"),
            ("run time", "5"),
            ("merge time", "5")
        ],
        "{report}"
    );
    assert!(
        section.contains("  counters: attempts 4, retries 0, rate_limited 0, lock_waits 1, deadlocks 0, conflicts 1,"),
        "{report}"
    );

    let json = status_json(&sandbox);
    let metrics = &json["metrics"];
    assert_eq!(metrics["summary"]["counters"]["conflicts"], 1);
    assert_eq!(metrics["summary"]["counters"]["succeeded"], 4);
    let lock_wait = metrics["summary"]["histograms"]
        .as_array()
        .expect("histograms")
        .iter()
        .find(|h| h["kind"] == "lock_wait" && h["executor"].is_null())
        .expect("lock wait histogram");
    let waited = lock_wait["max_ms"].as_f64().expect("max_ms");
    assert!(
        waited >= 250.0,
        "the second writer waited for the first: {lock_wait}"
    );
    let per_task = |id: &str| metrics["tasks"][id]["lock_wait_ms"].as_u64().expect("ms");
    assert_eq!(per_task("w1").max(per_task("w2")) as f64, waited);
    assert_eq!(json["tasks"]["two"]["state"], "merged");
    assert_eq!(json["published"], true);
}

#[test]
fn status_reports_metrics_of_a_killed_run() {
    let sandbox = Sandbox::new();
    run_killed_halfway(&sandbox);
    let json = status_json(&sandbox);
    assert_eq!(json["published"], false);
    let attempts = json["metrics"]["summary"]["counters"]["attempts"]
        .as_u64()
        .expect("attempts");
    assert!(attempts >= 1, "{json}");
    let status = forge(sandbox.path(), &["status", &sandbox.run_dir()]);
    let (report, _) = text(&status);
    assert!(report.contains("\nmetrics: "), "{report}");
    assert!(report.contains("\n  queue wait "), "{report}");
}

#[test]
fn metrics_after_a_resume_cover_both_processes_but_not_the_gap() {
    let sandbox = Sandbox::new();
    run_killed_halfway(&sandbox);
    // Nobody waits, runs or merges while no process is running.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let resumed = forge(sandbox.path(), &["resume", &sandbox.run_dir()]);
    let (stdout, stderr) = text(&resumed);
    assert_eq!(resumed.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("\ntimes p50/p90/max: queue "), "{stdout}");

    let json = status_json(&sandbox);
    assert_eq!(json["published"], true);
    let summary = &json["metrics"]["summary"];
    let attempts = summary["counters"]["attempts"].as_u64().expect("attempts");
    let histograms = summary["histograms"].as_array().expect("histograms");
    for h in histograms {
        let max = h["max_ms"].as_f64().expect("max_ms");
        assert!(
            max < 1_400.0,
            "the gap between the processes was counted: {h}"
        );
    }
    let queue = histograms
        .iter()
        .find(|h| h["kind"] == "queue_wait" && h["executor"].is_null())
        .expect("queue waits");
    assert_eq!(
        queue["count"].as_u64(),
        Some(attempts),
        "one queue wait per attempt"
    );
    assert!(
        attempts >= 4,
        "every task started at least once: {attempts}"
    );
}
