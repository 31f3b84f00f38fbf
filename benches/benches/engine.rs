//! The engine end to end against the way today's tools do it, in one run: 16 scripted agents,
//! each editing 5 files of its own in a generated repository (50,000 files; the
//! `FORGE_BENCH_FILES` variable overrides), each working `FORGE_BENCH_AGENT_SECS` seconds
//! (default 0.5) of its own:
//!
//! - `forge/overlay`, `forge/copy`: `run_engine` with a `ProcessExecutor` (`sh -c`), 16 jobs,
//!   views, merges, journal and publishing into the repository included;
//! - `baseline/worktree+merge`: a `git worktree add` per agent, the agents in parallel in their
//!   worktrees, a commit in each, then `git merge` of each branch in turn.
//!
//! All agents run at once, so the agents' own share of the wall time is one agent's work;
//! the rest is overhead, printed after the criterion figures (median wall minus work, per
//! run and per task). Setting up and cleaning up between iterations is not timed.
//! `FORGE_BENCH_BASELINE_RUNS=N` times the baseline N times by hand instead of ten criterion
//! samples (each baseline run takes minutes at 50,000 files); `FORGE_BENCH_ONLY_BASELINE=1`
//! skips the forge runs.

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode};
use forge_benches::{generate_repo, git, n_files};
use forge_core::staging::{Backend, OverlayMode};
use forge_core::{EngineOptions, Executors, Plan, ProcessExecutor, RunOptions, Task, run_engine};

const AGENTS: usize = 16;
const FILES_PER_AGENT: usize = 5;

fn agent_secs() -> f64 {
    std::env::var("FORGE_BENCH_AGENT_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.5)
}

/// The files each agent edits: 5 of its own, spread over the tree.
fn assignments(repo: &Path) -> Vec<Vec<String>> {
    let output = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["ls-files"])
        .output()
        .expect("git ls-files");
    let files: Vec<String> = String::from_utf8(output.stdout)
        .expect("utf-8 paths")
        .lines()
        .map(str::to_owned)
        .collect();
    let stride = files.len() / (AGENTS * FILES_PER_AGENT);
    (0..AGENTS)
        .map(|a| {
            (0..FILES_PER_AGENT)
                .map(|f| files[(a * FILES_PER_AGENT + f) * stride].clone())
                .collect()
        })
        .collect()
}

fn script(agent: usize, files: &[String]) -> String {
    let mut script = format!("sleep {}", agent_secs());
    for file in files {
        script.push_str(&format!(
            " && echo '// edited by agent {agent}' >> '{file}'"
        ));
    }
    script
}

fn plan(assignments: &[Vec<String>]) -> Plan {
    let mut plan = Plan::default();
    for (agent, files) in assignments.iter().enumerate() {
        plan.push(Task::new(format!("agent-{agent}"), script(agent, files)).writes(files.clone()));
    }
    plan
}

/// Puts the edited files back as they were, so every iteration starts from the same tree.
fn restore(repo: &Path, originals: &[(PathBuf, Vec<u8>)]) {
    for (path, data) in originals {
        std::fs::write(repo.join(path), data).expect("restore");
    }
}

fn forge_run(
    repo: &Path,
    scratch: &Path,
    backend: Backend,
    overlay_mode: OverlayMode,
    plan: &Plan,
    runtime: &tokio::runtime::Runtime,
) -> Duration {
    let run_dir = scratch.join("run");
    let plan = plan.clone().validate().expect("valid plan");
    let executors =
        Executors::single(ProcessExecutor::from_template("sh -c {prompt}").expect("template"));
    let mut options = EngineOptions::new(repo, &run_dir)
        .backend(Some(backend))
        .run(RunOptions::default().jobs(AGENTS));
    options.staging.overlay_mode = overlay_mode;
    let started = Instant::now();
    let outcome = runtime
        .block_on(run_engine(&plan, &executors, options))
        .expect("engine runs");
    let elapsed = started.elapsed();
    assert!(outcome.is_success(), "{:?}", outcome.run);
    assert_eq!(outcome.generation, AGENTS as u64);
    std::fs::remove_dir_all(&run_dir).expect("remove run dir");
    elapsed
}

fn baseline_run(repo: &Path, scratch: &Path, assignments: &[Vec<String>]) -> Duration {
    let started = Instant::now();
    let trees: Vec<PathBuf> = (0..AGENTS)
        .map(|a| scratch.join(format!("wt-{a}")))
        .collect();
    for (agent, tree) in trees.iter().enumerate() {
        git(
            repo,
            &[
                "worktree",
                "add",
                "-q",
                "-b",
                &format!("agent-{agent}"),
                &tree.display().to_string(),
            ],
        );
    }
    std::thread::scope(|scope| {
        for (agent, tree) in trees.iter().enumerate() {
            let script = script(agent, &assignments[agent]);
            scope.spawn(move || {
                let status = Command::new("sh")
                    .args(["-c", &script])
                    .current_dir(tree)
                    .status()
                    .expect("agent runs");
                assert!(status.success());
                git(tree, &["commit", "-q", "-am", &format!("agent {agent}")]);
            });
        }
    });
    for agent in 0..AGENTS {
        git(
            repo,
            &["merge", "-q", "--no-edit", &format!("agent-{agent}")],
        );
    }
    let elapsed = started.elapsed();
    // Clean up (not timed): back to the generated commit, worktrees and branches gone.
    git(repo, &["reset", "-q", "--hard", "HEAD~16"]);
    for (agent, tree) in trees.iter().enumerate() {
        git(
            repo,
            &["worktree", "remove", "--force", &tree.display().to_string()],
        );
        git(repo, &["branch", "-q", "-D", &format!("agent-{agent}")]);
    }
    elapsed
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args().sample_size(10);
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = tmp.path().join("repo");
    let n = n_files();
    eprintln!("generating a {n}-file repository...");
    generate_repo(&repo, n);
    // `git merge` makes merge commits: the reset in the baseline's clean-up needs the edits
    // to be linear, so merges must fast-forward or create commits on top; HEAD~16 assumes one
    // commit per merge, which `--no-ff` guarantees.
    git(&repo, &["config", "merge.ff", "false"]);
    let assignments = assignments(&repo);
    let originals: Vec<(PathBuf, Vec<u8>)> = assignments
        .iter()
        .flatten()
        .map(|f| (PathBuf::from(f), std::fs::read(repo.join(f)).expect("read")))
        .collect();
    let plan = plan(&assignments);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut walls: Vec<(&str, Vec<Duration>)> = Vec::new();

    let mut group = criterion.benchmark_group(format!("engine/{AGENTS}-agents-{n}-files"));
    group.sampling_mode(SamplingMode::Flat);
    let backends: &[(&str, Backend, OverlayMode)] =
        if std::env::var_os("FORGE_BENCH_ONLY_BASELINE").is_some() {
            &[]
        } else {
            &[
                ("forge/overlay", Backend::Overlay, OverlayMode::Mount),
                (
                    "forge/overlay-userns",
                    Backend::Overlay,
                    OverlayMode::UserNamespace,
                ),
                ("forge/copy", Backend::Copy, OverlayMode::Auto),
            ]
        };
    for &(name, backend, overlay_mode) in backends {
        let mut samples = Vec::new();
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let scratch = tempfile::tempdir_in(tmp.path()).expect("scratch");
                    let wall = forge_run(
                        &repo,
                        scratch.path(),
                        backend,
                        overlay_mode,
                        &plan,
                        &runtime,
                    );
                    restore(&repo, &originals);
                    samples.push(wall);
                    total += wall;
                }
                total
            });
        });
        walls.push((name, samples));
    }
    let mut samples = Vec::new();
    if let Some(runs) = std::env::var("FORGE_BENCH_BASELINE_RUNS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        // Ten criterion samples of the baseline take most of an hour at 50,000 files; this
        // times it `runs` times by hand instead (the overhead summary below uses them).
        for _ in 0..runs {
            let scratch = tempfile::tempdir_in(tmp.path()).expect("scratch");
            let wall = baseline_run(&repo, scratch.path(), &assignments);
            eprintln!("baseline/worktree+merge: one run {wall:.3?}");
            samples.push(wall);
        }
    } else {
        group.bench_function("baseline/worktree+merge", |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let scratch = tempfile::tempdir_in(tmp.path()).expect("scratch");
                    let wall = baseline_run(&repo, scratch.path(), &assignments);
                    samples.push(wall);
                    total += wall;
                }
                total
            });
        });
    }
    walls.push(("baseline/worktree+merge", samples));
    group.finish();

    let work = Duration::from_secs_f64(agent_secs());
    eprintln!("\noverhead = median wall time - one agent's work ({work:?}):");
    let mut baseline_overhead = None;
    // Variants a filter left out have no samples.
    for (name, samples) in walls.iter().rev().filter(|(_, s)| !s.is_empty()) {
        let wall = median(samples.clone());
        let overhead = wall.saturating_sub(work);
        if name.starts_with("baseline") {
            baseline_overhead = Some(overhead);
        }
        let ratio = baseline_overhead
            .filter(|_| !name.starts_with("baseline"))
            .map(|b| {
                format!(
                    ", 1/{:.0} of the baseline's",
                    b.as_secs_f64() / overhead.as_secs_f64().max(1e-9)
                )
            })
            .unwrap_or_default();
        eprintln!(
            "  {name:<24} wall {wall:>10.3?}  overhead {overhead:>10.3?}  per task {:>9.3?}{ratio}",
            overhead / AGENTS as u32
        );
    }
    criterion.final_summary();
}
