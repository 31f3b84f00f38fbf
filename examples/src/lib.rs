//! Helpers shared by forge's examples (the examples themselves are in `examples/`).
//!
//! [`run_demo`] is the whole demo (`cargo run --release -p forge-examples --example demo`):
//! it creates a sample git repository in a temporary directory, writes a plan of nine
//! scripted "agents" (shell scripts with delays) and runs it through forge's engine with live
//! progress: each agent works in its own copy-on-write view of the repository; some run in
//! parallel on disjoint files, two edit the same file in different places and merge cleanly,
//! two change the same line and the second is reported as a conflict, one fails once and
//! succeeds on retry, one depends on two others. It prints a summary and what reached the
//! repository. It lives here, not in the example, so a test runs the very same code with
//! shorter delays.
//!
//! [`run_embedded`] (`cargo run -p forge-examples --example embed`) shows forge used as a
//! library with in-process agents that edit their views directly and start tools in them.

#![forbid(unsafe_code)]

mod embed;

pub use embed::{EmbedReport, run_embedded};

use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use forge_core::events::Delivery;
use forge_core::{
    Backoff, EngineOptions, EngineOutcome, Event, EventBus, Executors, Plan, ProcessExecutor,
    RunOptions, Task, run_engine,
};
use tokio::time::Instant;

/// Settings of the demo.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Multiplies every scripted delay (1.0: the demo takes about 6 s; tests use less).
    pub time_scale: f64,
    /// Most agents running at once.
    pub jobs: usize,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            time_scale: 1.0,
            jobs: 5,
        }
    }
}

/// What the demo did.
#[derive(Debug)]
pub struct DemoReport {
    /// The outcome of every task, the conflicts and the final generation.
    pub outcome: EngineOutcome,
    /// Every event of the run with its time since the start.
    pub events: Vec<(Duration, Event)>,
    /// The sample repository (deleted when the report is dropped).
    pub repo: PathBuf,
    /// The run branch `forge/demo`: one commit per agent that changed something.
    pub branch: forge_core::land::Branch,
    _dir: tempfile::TempDir,
}

/// Why the demo could not run.
pub type DemoError = Box<dyn std::error::Error + Send + Sync>;

/// One scripted agent: what it says, how long it works, and the shell command that does its
/// change (run in the agent's view of the repository).
struct Agent {
    id: &'static str,
    deps: &'static [&'static str],
    says: [&'static str; 2],
    secs: f64,
    change: &'static str,
    /// Declared `writes` (none: the agent may write anywhere and the merge catches overlaps).
    writes: &'static [&'static str],
}

const AGENTS: [Agent; 9] = [
    Agent {
        id: "scaffold",
        deps: &[],
        says: ["reading the README", "creating the crate layout"],
        secs: 0.8,
        change: "printf 'pub mod models;\\npub mod api;\\n' > src/lib.rs",
        writes: &["src/lib.rs"],
    },
    Agent {
        id: "models",
        deps: &["scaffold"],
        says: ["designing the User model", "writing src/models.rs"],
        secs: 1.5,
        change: "printf 'pub struct User {\\n    pub email: String,\\n}\\n' > src/models.rs",
        writes: &["src/models.rs"],
    },
    Agent {
        id: "schema",
        deps: &["scaffold"],
        says: ["sketching the users table", "writing the migration"],
        secs: 1.2,
        change: "mkdir -p migrations && echo 'CREATE TABLE users (email TEXT PRIMARY KEY);' > migrations/001_users.sql",
        writes: &["migrations/**"],
    },
    Agent {
        id: "client",
        deps: &["scaffold"],
        says: ["fetching the OpenAPI spec", "generating the HTTP client"],
        secs: 0.8,
        change: "echo 'pub fn login() {}' > src/client.rs",
        writes: &["src/client.rs"],
    },
    Agent {
        id: "api",
        deps: &["models", "schema"],
        says: ["wiring the /login route", "writing src/api.rs"],
        secs: 1.5,
        change: "echo 'pub fn login(_user: &crate::models::User) {}' > src/api.rs",
        writes: &["src/api.rs"],
    },
    Agent {
        id: "intro",
        deps: &[],
        says: ["reading the README", "rewriting its first paragraph"],
        secs: 1.0,
        change: "sed -i 's/^A sample repository.*/A small shop backend, built by agents./' README.md",
        writes: &[],
    },
    Agent {
        id: "usage",
        deps: &[],
        says: ["reading the README", "adding a Usage section at the end"],
        secs: 1.2,
        change: "printf '\\n## Usage\\n\\n    cargo run\\n' >> README.md",
        writes: &[],
    },
    Agent {
        id: "bump",
        deps: &[],
        says: ["checking the changelog", "bumping the version to 0.2.0"],
        secs: 0.6,
        change: "sed -i 's/^version = .*/version = \"0.2.0\"/' Cargo.toml",
        writes: &[],
    },
    Agent {
        id: "rival",
        deps: &[],
        says: [
            "deciding this is a major release",
            "bumping the version to 1.0.0",
        ],
        secs: 0.9,
        change: "sed -i 's/^version = .*/version = \"1.0.0\"/' Cargo.toml",
        writes: &[],
    },
];

/// The agent that fails on its first attempt (exit 75, retryable) and succeeds on the next.
const FLAKY: &str = "client";

/// Creates the sample repository, runs the plan with live progress written to `out`, and
/// writes a summary.
///
/// # Errors
///
/// When the temporary directory, git, or the plan cannot be set up, or `out` fails.
pub async fn run_demo(options: &DemoOptions, out: &mut dyn Write) -> Result<DemoReport, DemoError> {
    let dir = tempfile::Builder::new().prefix("forge-demo-").tempdir()?;
    let repo = dir.path().join("repo");
    create_repo(&repo)?;
    writeln!(out, "forge demo: a sample repository at {}", repo.display())?;

    let plan = demo_plan(options.time_scale, &dir.path().join("client-failed-once"));
    let plan = plan.validate()?;
    writeln!(out, "plan: {} agents", plan.len())?;
    for (n, phase) in plan.phases().to_names().iter().enumerate() {
        writeln!(out, "  phase {}: {}", n + 1, phase.join(", "))?;
    }
    writeln!(
        out,
        "(phases are for reading: each agent starts as soon as its own dependencies are done)\n"
    )?;

    let executors = Executors::single(ProcessExecutor::new(["sh", "-c", "{prompt}"])?);
    let bus = EventBus::new(4096);
    let mut subscription = bus.subscribe();
    let run_options = RunOptions::default()
        .jobs(options.jobs)
        .keep_going(true)
        .backoff(
            Backoff::fixed_exponential(
                Duration::from_secs_f64(0.3 * options.time_scale),
                Duration::from_secs(5),
                2.0,
            )
            .with_jitter(0.2),
        )
        .bus(bus);
    let run_dir = dir.path().join("run");
    let engine_options = EngineOptions::new(&repo, &run_dir).run(run_options);

    let started = Instant::now();
    let mut events = Vec::new();
    let (outcome, printed) = tokio::join!(run_engine(&plan, &executors, engine_options), async {
        // The bus closes when the run returns, which ends this loop.
        while let Some(delivery) = subscription.recv().await {
            let at = started.elapsed();
            match delivery {
                Delivery::Event(event) => {
                    if let Some(line) = progress_line(at, &event) {
                        writeln!(out, "{line}")?;
                        out.flush()?;
                    }
                    events.push((at, event));
                }
                Delivery::Lagged(n) => writeln!(out, "({n} events dropped)")?,
            }
        }
        Ok::<(), std::io::Error>(())
    });
    printed?;
    let outcome = outcome?;
    write!(out, "{}", summary(&outcome, &repo))?;
    // The run as git history: one commit per merged agent on `forge/demo`.
    let branch = forge_core::land::write_branch(
        &run_dir,
        &forge_core::land::BranchOptions::new(&repo, "demo")
            .author("forge demo <demo@forge.invalid>"),
    )?;
    write!(out, "{}", show_branch(&repo, &branch))?;
    Ok(DemoReport {
        outcome,
        events,
        repo,
        branch,
        _dir: dir,
    })
}

/// The plan: each agent is a shell script given as the task's prompt.
fn demo_plan(time_scale: f64, flaky_marker: &Path) -> Plan {
    let mut plan = Plan::default();
    for agent in &AGENTS {
        let pause = format!("sleep {:.3}", agent.secs * time_scale / 2.0);
        let mut script = String::new();
        if agent.id == FLAKY {
            let marker = flaky_marker.display();
            let _ = write!(
                script,
                "if [ ! -e '{marker}' ]; then : > '{marker}'; {pause}; \
                 echo 'upstream returned 503, giving up for now' >&2; exit 75; fi; "
            );
        }
        let _ = write!(
            script,
            "echo '{}'; {pause}; echo '{}'; {pause}; {}",
            agent.says[0], agent.says[1], agent.change,
        );
        let mut task = Task::new(agent.id, script)
            .deps(agent.deps.iter().copied())
            .writes(agent.writes.iter().copied())
            .duration_hint(Duration::from_secs_f64(agent.secs));
        if agent.id == FLAKY {
            task = task.retries(2);
        }
        if ["bump", "rival", "intro", "usage"].contains(&agent.id) {
            // These pairs start at once, from generation 0: `intro` and `usage` edit README.md
            // in different places and both merge; `bump` and `rival` change the same line,
            // so whichever merges second conflicts.
            task = task.priority(10);
        }
        plan.push(task);
    }
    plan
}

pub(crate) fn create_repo(repo: &Path) -> Result<(), DemoError> {
    std::fs::create_dir_all(repo.join("src"))?;
    std::fs::write(
        repo.join("README.md"),
        "# shop\n\nA sample repository for the forge demo.\n\n## Status\n\nEarly days.\n",
    )?;
    std::fs::write(
        repo.join("Cargo.toml"),
        "[package]\nname = \"shop\"\nversion = \"0.1.0\"\nedition = \"2024\"\n",
    )?;
    std::fs::write(repo.join("src/main.rs"), "fn main() {}\n")?;
    for args in [
        &["init", "-q"][..],
        &["add", "-A"],
        &[
            "-c",
            "user.name=forge demo",
            "-c",
            "user.email=demo@forge.invalid",
            "commit",
            "-q",
            "-m",
            "initial commit",
        ],
    ] {
        let status = Command::new("git")
            .args(args)
            .current_dir(repo)
            .status()
            .map_err(|err| format!("the demo needs git to create its sample repository: {err}"))?;
        if !status.success() {
            return Err(format!(
                "git {} failed in {}: {status}",
                args.join(" "),
                repo.display()
            )
            .into());
        }
    }
    Ok(())
}

fn progress_line(at: Duration, event: &Event) -> Option<String> {
    let stamp = format!("[{:>5.2}s]", at.as_secs_f64());
    Some(match event {
        Event::TaskStarted { task, attempt } if *attempt > 1 => {
            format!("{stamp} start   {task} (attempt {attempt})")
        }
        Event::TaskStarted { task, .. } => format!("{stamp} start   {task}"),
        Event::TaskLog { task, line, .. } => format!("{stamp}   {task:>8} | {line}"),
        Event::TaskRetrying {
            task,
            delay_ms,
            error,
            ..
        } => format!("{stamp} retry   {task}: {error}; again in {delay_ms} ms"),
        Event::TaskSucceeded {
            task, duration_ms, ..
        } => format!(
            "{stamp} done    {task} ({:.1}s)",
            *duration_ms as f64 / 1000.0
        ),
        Event::TaskFailed { task, error, .. } => format!("{stamp} FAILED  {task}: {error}"),
        Event::TaskSkipped { task, reason } => format!("{stamp} skip    {task}: {reason}"),
        Event::ViewOpened {
            task,
            generation,
            backend,
        } => format!(
            "{stamp}   {task:>8} | (works in its own {backend} view of generation {generation})"
        ),
        Event::LockWaiting { task, holders, .. } => {
            format!(
                "{stamp} wait    {task}: its files are locked by {}",
                holders.join(", ")
            )
        }
        Event::GenerationCommitted {
            task,
            generation,
            paths,
        } => format!(
            "{stamp} merge   {task}: {paths} path{} -> generation {generation}",
            if *paths == 1 { "" } else { "s" }
        ),
        Event::MergeConflict { task, paths } => {
            format!(
                "{stamp} CONFLICT {task}: {} (reported, not merged)",
                paths.join(", ")
            )
        }
        _ => return None,
    })
}

/// `git log --oneline` of the run branch and the stat of its last commit.
fn show_branch(repo: &Path, branch: &forge_core::land::Branch) -> String {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(repo)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    };
    let mut text = format!(
        "\nthe run as git history, one commit per agent (git log --oneline HEAD..forge/demo):\n"
    );
    for line in git(&["log", "--oneline", "HEAD..forge/demo"]).lines() {
        let _ = writeln!(text, "  {line}");
    }
    if let Some(last) = branch.commits.last() {
        let _ = writeln!(text, "\nthe last one (git show --stat forge/demo):");
        for line in git(&["show", "--stat", "--format=%s%n%n%(trailers)", &last.commit]).lines() {
            let _ = writeln!(text, "  {line}");
        }
    }
    text
}

fn summary(outcome: &EngineOutcome, repo: &Path) -> String {
    let run = &outcome.run;
    let counts = run.counts();
    let mut text = format!(
        "\n{} agents in {:.1}s: {} succeeded, {} failed, {} skipped\n",
        run.outcomes().len(),
        run.duration().as_secs_f64(),
        counts.succeeded,
        counts.failed,
        counts.skipped
    );
    for (task, task_outcome) in run.iter() {
        let _ = writeln!(text, "  {:<9} {task_outcome}", task.id);
    }
    for (task, report) in &outcome.conflicts {
        let _ = writeln!(
            text,
            "\nconflict: {task} started from generation {} but the head had moved to {}:",
            report.base_generation, report.head_generation
        );
        for path in &report.paths {
            let _ = writeln!(text, "  {}: {}", path.path, path.what);
            if let Some(markers) = &path.with_markers {
                for line in String::from_utf8_lossy(markers).lines() {
                    let _ = writeln!(text, "    | {line}");
                }
            }
        }
    }
    let (backend, why) = &outcome.backend;
    let _ = writeln!(
        text,
        "\nstaging: {backend} ({why}); {} generations merged, then written to the repository",
        outcome.generation
    );
    if let Ok(status) = Command::new("git")
        .args(["status", "--short", "--untracked-files=all"])
        .current_dir(repo)
        .output()
    {
        let _ = writeln!(text, "\nwhat reached the repository (git status --short):");
        for line in String::from_utf8_lossy(&status.stdout).lines() {
            let _ = writeln!(text, "  {line}");
        }
    }
    if let Ok(readme) = std::fs::read_to_string(repo.join("README.md")) {
        let _ = writeln!(text, "\nREADME.md, edited by `intro` and `usage` at once:");
        for line in readme.lines() {
            let _ = writeln!(text, "  | {line}");
        }
    }
    text
}
