//! Signals stop a run cleanly (issue 13, item 16): after SIGTERM, SIGHUP or one or two
//! SIGINTs no agent process, no mount and no view is left, and `forge resume` finishes the
//! run.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{Sandbox, forge, forge_command, is_root, text};

/// A task that, until `go` exists, records its process group in `pid` and sleeps (ignoring
/// SIGTERM when `stubborn`, so only a SIGKILL ends it); once `go` exists it writes `out.txt`.
fn plan(sandbox: &Sandbox, stubborn: bool) -> (PathBuf, PathBuf) {
    let pid = sandbox.path().parent().expect("tmp").join("agent.pid");
    let go = sandbox.path().parent().expect("tmp").join("go");
    let trap = if stubborn { "trap '' TERM; " } else { "" };
    sandbox.write(
        "plan.toml",
        &format!(
            r#"
[[task]]
id = "slow"
prompt = "test -e {go} && {{ echo done > out.txt; exit 0; }}; echo $$ > {pid}; {trap}sleep 60"

[[task]]
id = "quick"
prompt = "echo quick > quick.txt"
"#,
            go = go.display(),
            pid = pid.display(),
        ),
    );
    sandbox.write("base.txt", "base\n");
    (pid, go)
}

/// The staging whose mounts this process can see: plain overlay mounts as root.
fn staging() -> &'static str {
    if is_root() { "overlay" } else { "copy" }
}

fn start(sandbox: &Sandbox) -> Child {
    forge_command(sandbox.path())
        .args([
            "run",
            "plan.toml",
            "--land",
            "worktree",
            "--run-dir",
            &sandbox.run_dir(),
        ])
        .args(["--executor", "sh -c {prompt}", "--staging", staging()])
        .args(["--jobs", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("forge starts")
}

fn wait_for_pid(path: &Path) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && let Ok(pid) = text.trim().parse()
        {
            return pid;
        }
        assert!(Instant::now() < deadline, "the agent never started");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn send(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -{signal} {pid}");
}

/// Processes still alive (not zombies) in process group `pgid`.
fn group_members(pgid: i32) -> Vec<String> {
    let mut members = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // After the command name in parentheses: state, ppid, pgrp.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map_or(vec![], |(_, rest)| rest.split_whitespace().collect());
        if fields.len() > 2 && fields[2] == pgid.to_string() && !matches!(fields[0], "Z" | "X") {
            members.push(stat);
        }
    }
    members
}

/// Mount points under the run directory.
fn mounts_under(run_dir: &str) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .expect("mountinfo")
        .lines()
        .filter(|line| line.contains(run_dir))
        .map(str::to_owned)
        .collect()
}

/// Views left in the run directory (named after their task).
fn views_left(run_dir: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(Path::new(run_dir).join("views")) else {
        return Vec::new();
    };
    entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| !name.starts_with('.'))
        .collect()
}

/// Sends `signals` (the first once the agent runs, the next ones `gap` later), then checks
/// forge's exit status, that nothing is left, and that `forge resume` finishes the run.
fn check(signals: &[&str], stubborn: bool, expected_code: i32) {
    let sandbox = Sandbox::new();
    let (pid_file, go) = plan(&sandbox, stubborn);
    let child = start(&sandbox);
    let agent = wait_for_pid(&pid_file);
    let mut sent = Instant::now();
    for (i, signal) in signals.iter().enumerate() {
        if i > 0 {
            std::thread::sleep(Duration::from_millis(300));
        }
        sent = Instant::now();
        send(child.id(), signal);
    }
    let output = child.wait_with_output().expect("forge ends");
    let took = sent.elapsed();
    let (stdout, stderr) = text(&output);
    let context = format!("{signals:?}\n{stdout}\n{stderr}");
    assert_eq!(output.status.code(), Some(expected_code), "{context}");
    if stubborn {
        // The agent ignores SIGTERM: only the second signal's SIGKILL ends it, well before
        // the 5 s grace period.
        assert!(took < Duration::from_secs(4), "{took:?}: {context}");
    }
    assert_eq!(group_members(agent), Vec::<String>::new(), "{context}");
    let run_dir = sandbox.run_dir();
    assert_eq!(mounts_under(&run_dir), Vec::<String>::new(), "{context}");
    assert_eq!(views_left(&run_dir), Vec::<String>::new(), "{context}");

    std::fs::write(&go, "").expect("write go");
    let resumed = forge(sandbox.path(), &["resume", &run_dir]);
    let (stdout, stderr) = text(&resumed);
    assert_eq!(resumed.status.code(), Some(0), "resume\n{stdout}\n{stderr}");
    let out = std::fs::read_to_string(sandbox.path().join("out.txt")).expect("out.txt");
    assert_eq!(out, "done\n");
    let quick = std::fs::read_to_string(sandbox.path().join("quick.txt")).expect("quick.txt");
    assert_eq!(quick, "quick\n");
}

#[test]
fn trust_16_sigterm_stops_the_run_cleanly() {
    check(&["TERM"], false, 143);
}

#[test]
fn trust_16_sighup_stops_the_run_cleanly() {
    check(&["HUP"], false, 129);
}

#[test]
fn trust_16_two_sigints_kill_the_agents_and_leave_nothing() {
    check(&["INT", "INT"], true, 130);
}

/// SIGTERM ends a rate-limit pause at once (issue 13, item 13): the agent asks for an hour.
#[test]
fn trust_13_sigterm_ends_a_rate_limit_pause() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "plan.toml",
        r#"
[[task]]
id = "limited"
prompt = "echo 'forge:retry-after 3600'; exit 76"
"#,
    );
    let child = forge_command(sandbox.path())
        .args([
            "run",
            "plan.toml",
            "--land",
            "worktree",
            "--run-dir",
            &sandbox.run_dir(),
        ])
        .args(["--executor", "sh -c {prompt}", "--staging", "copy"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("forge starts");
    let journal = Path::new(&sandbox.run_dir()).join("journal.jsonl");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(&journal).is_ok_and(|j| j.contains("\"executor_paused\"")) {
        assert!(Instant::now() < deadline, "the executor never paused");
        std::thread::sleep(Duration::from_millis(20));
    }
    let sent = Instant::now();
    send(child.id(), "TERM");
    let output = child.wait_with_output().expect("forge ends");
    let (stdout, stderr) = text(&output);
    assert!(
        sent.elapsed() < Duration::from_secs(5),
        "{stdout}\n{stderr}"
    );
    assert_eq!(output.status.code(), Some(143), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("limited: skipped: run cancelled"),
        "{stdout}"
    );
}
