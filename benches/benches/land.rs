//! Landing a run as git history (issue 15) against its peer, `git add -A && git commit` of
//! the same change, in the same run.
//!
//! The repository: `FORGE_BENCH_LAND_FILES` generated files (default 20,000, the issue's
//! size), committed. One task rewrites every file (a line appended to each); the run does
//! not publish. Then, per iteration:
//!
//! - `forge/write_branch`: `forge_core::land::write_branch` of that run (one `git
//!   fast-import` fed from the layer, then `update-ref`), onto a new branch name each time;
//! - `git/add+commit`: in a clone whose working tree holds the same change, `git add -A &&
//!   git commit`, then (not timed) `git reset --mixed HEAD~1` so the next one hashes again.

#![forbid(unsafe_code)]

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode};
use forge_benches::{generate_repo, git};
use forge_core::land::{BranchOptions, write_branch};
use forge_core::staging::Backend;
use forge_core::{EngineOptions, ExecOutput, Executors, FnExecutor, Plan, Task, run_engine};

/// Appends one line to every file below `root`, skipping `.git`.
fn rewrite_all(root: &Path) -> std::io::Result<usize> {
    let mut n = 0;
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            let path = entry.path();
            if entry.file_name() == ".git" {
                continue;
            }
            if entry.file_type()?.is_dir() {
                pending.push(path);
            } else {
                let mut text = fs::read(&path)?;
                text.extend_from_slice(b"\n// rewritten by the task\n");
                fs::write(&path, text)?;
                n += 1;
            }
        }
    }
    Ok(n)
}

fn git_out(dir: &Path, args: &[&str]) {
    let status = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=bench",
            "-c",
            "user.email=b@b",
            "-c",
            "gc.auto=0",
        ])
        .args(args)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("git runs");
    assert!(status.success(), "git {args:?}");
}

fn land_benches(c: &mut Criterion) {
    let n: usize = std::env::var("FORGE_BENCH_LAND_FILES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = tmp.path().join("repo");
    fs::create_dir(&repo).expect("mkdir");
    generate_repo(&repo, n);

    // The run: one task rewrites every file; nothing is published.
    let run_dir = tmp.path().join("run");
    let executors = Executors::single(FnExecutor::new(|job: forge_core::Job| async move {
        rewrite_all(&job.workdir).map_err(|e| forge_core::ExecError::fatal(e.to_string()))?;
        Ok(ExecOutput::default())
    }));
    let plan = Plan::default()
        .with_task(Task::new("rewrite", "rewrite every file"))
        .validate()
        .expect("valid plan");
    let options = EngineOptions::new(&repo, &run_dir)
        .backend(Some(Backend::Copy))
        .publish(false);
    let outcome = forge_benches::runtime()
        .block_on(run_engine(&plan, &executors, options))
        .expect("run");
    assert!(outcome.is_success());

    // The peer: a clone holding the same change in its working tree.
    let peer = tmp.path().join("peer");
    git(
        tmp.path(),
        &["clone", "-q", &repo.display().to_string(), "peer"],
    );
    assert_eq!(rewrite_all(&peer).expect("rewrite"), n);

    let mut group = c.benchmark_group(format!("land {n} rewritten files"));
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_secs(5));
    let mut k = 0u64;
    group.bench_function("forge/write_branch", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                k += 1;
                let name = format!("bench-{k}");
                let t = Instant::now();
                let branch =
                    write_branch(&run_dir, &BranchOptions::new(&repo, &name)).expect("land");
                total += t.elapsed();
                assert_eq!(branch.commits.len(), 1);
                git_out(&repo, &["update-ref", "-d", &branch.refname]);
                fs::remove_file(run_dir.join("branch.json")).expect("remove record");
            }
            total
        });
    });
    group.bench_function("git/add+commit", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let t = Instant::now();
                git_out(&peer, &["add", "-A"]);
                git_out(&peer, &["commit", "-q", "-m", "rewrite every file"]);
                total += t.elapsed();
                git_out(&peer, &["reset", "-q", "--mixed", "HEAD~1"]);
            }
            total
        });
    });
    group.finish();
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    land_benches(&mut criterion);
    criterion.final_summary();
}
