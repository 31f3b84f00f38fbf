//! `forge status`: what the journal in a run directory says about a run, with the metrics
//! derived from it, as text or JSON.

use std::path::PathBuf;
use std::process::ExitCode;

use forge_core::{RunState, TaskState};

/// Arguments of `forge status`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The run directory (the one `forge run --run-dir` used).
    run_dir: PathBuf,
    /// Print the report as one JSON object (tasks, conflicts, journal health, metrics).
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: Args) -> ExitCode {
    let state = match forge_core::status(&args.run_dir) {
        Ok(state) => state,
        Err(err) => {
            eprintln!("forge status: {err}");
            return ExitCode::from(2);
        }
    };
    let plan = forge_core::RunDir::open(&args.run_dir).and_then(|dir| dir.load_plan());
    let branch = match forge_core::land::recorded_branch(&args.run_dir) {
        Ok(branch) => branch,
        Err(err) => {
            eprintln!("forge status: {err}");
            None
        }
    };
    if args.json {
        println!("{}", to_json(&state, plan.as_ref().ok(), branch.as_ref()));
    } else {
        print!("{}", render(&state, plan.as_ref().ok()));
        if let Some(branch) = &branch {
            let short = branch.refname.trim_start_matches("refs/heads/");
            println!(
                "branch {short}: {} commit{} (one per task that changed something); review: git log --stat {short}",
                branch.commits.len(),
                if branch.commits.len() == 1 { "" } else { "s" }
            );
        }
        if let Ok(Some(landed)) = forge_core::land::landed(&args.run_dir) {
            println!("landed with `forge land --into {}`", landed.into.as_str());
        }
    }
    // Issue 13 item 17: a publish that started and never finished leaves the tree mixed.
    if let Ok(Some(generation)) = forge_core::staging::interrupted_publish(&args.run_dir) {
        let dir = args.run_dir.display();
        eprintln!(
            "publish of generation {generation} was interrupted: the working tree holds a mix of two generations; run `forge resume {dir}` to finish it"
        );
    }
    ExitCode::SUCCESS
}

/// The report as JSON: `generation`, `published`, `tasks` (each with its `state` and what
/// goes with it), `conflicts`, `branch` (the run branch written, with its commits; null
/// before it is), `journal` (its health) and `metrics` (see
/// [`forge_core::RunMetrics`]; durations in milliseconds).
pub(crate) fn to_json(
    state: &RunState,
    plan: Option<&forge_core::Plan>,
    branch: Option<&forge_core::land::Branch>,
) -> String {
    use serde_json::{Value, json};

    let tasks: serde_json::Map<String, Value> = task_ids(state, plan)
        .into_iter()
        .map(|id| {
            let value = match state.tasks.get(&id).unwrap_or(&TaskState::Pending) {
                TaskState::Pending => json!({"state": "pending"}),
                TaskState::Ready => json!({"state": "ready"}),
                TaskState::Running { attempt } => json!({"state": "running", "attempt": attempt}),
                TaskState::Retrying { attempt, error } => {
                    json!({"state": "retrying", "attempt": attempt, "error": error})
                }
                TaskState::Merged { generation } => {
                    json!({"state": "merged", "generation": generation})
                }
                TaskState::Failed { error } => json!({"state": "failed", "error": error}),
                TaskState::Skipped { reason } => json!({"state": "skipped", "reason": reason}),
                TaskState::Cancelled => json!({"state": "cancelled"}),
                TaskState::Interrupted { attempt } => {
                    json!({"state": "interrupted", "attempt": attempt})
                }
                other => json!({"state": format!("{other:?}")}),
            };
            (id, value)
        })
        .collect();
    let conflicts: Vec<Value> = state
        .conflicts
        .iter()
        .map(|(task, paths)| json!({"task": task, "paths": paths}))
        .collect();
    let report = json!({
        "generation": state.generation,
        "published": state.published,
        "live": state.live,
        "tasks": tasks,
        "conflicts": conflicts,
        "kept_work": state.kept_work,
        "branch": branch,
        "journal": {
            "torn_tail": state.torn_tail,
            "corrupt_lines": state.corrupt_lines,
            "events_lost": state.events_lost,
        },
        "metrics": state.metrics,
    });
    serde_json::to_string_pretty(&report).expect("a status report is plain JSON")
}

/// The plan's task ids in order, or the journal's when the plan is unreadable.
pub(crate) fn task_ids(state: &RunState, plan: Option<&forge_core::Plan>) -> Vec<String> {
    match plan {
        Some(plan) => plan.tasks.iter().map(|t| t.id.clone()).collect(),
        None => state.tasks.keys().cloned().collect(),
    }
}

/// The report, as text.
pub(crate) fn render(state: &RunState, plan: Option<&forge_core::Plan>) -> String {
    let mut out = String::new();
    let count = |f: fn(&TaskState) -> bool| state.tasks.values().filter(|s| f(s)).count();
    out.push_str(&format!(
        "generation {}; {} tasks: {} merged, {} failed, {} skipped, {} running or pending{}{}\n",
        state.generation,
        plan.map_or(state.tasks.len(), |p| p.tasks.len()),
        count(|s| matches!(s, TaskState::Merged { .. })),
        count(|s| matches!(s, TaskState::Failed { .. })),
        count(|s| matches!(s, TaskState::Skipped { .. })),
        count(|s| {
            matches!(
                s,
                TaskState::Pending
                    | TaskState::Ready
                    | TaskState::Running { .. }
                    | TaskState::Retrying { .. }
            )
        }),
        match count(|s| matches!(s, TaskState::Interrupted { .. })) {
            0 => String::new(),
            n => format!(", {n} unknown (interrupted)"),
        },
        if state.published {
            "; published"
        } else if state.finished {
            "; finished (the working tree was not written: the run lands as a branch)"
        } else if state.live {
            "; still running"
        } else {
            "; not published (an interrupted run: `forge resume` finishes it)"
        },
    ));
    let ids = task_ids(state, plan);
    out.push_str("tasks:\n");
    for id in &ids {
        let line = match state.tasks.get(id).unwrap_or(&TaskState::Pending) {
            TaskState::Pending => "pending".to_owned(),
            TaskState::Ready => "ready".to_owned(),
            TaskState::Running { attempt } => format!("running (attempt {attempt})"),
            TaskState::Retrying { attempt, error } => {
                format!("retrying after attempt {attempt}: {error}")
            }
            TaskState::Merged { generation } => format!("merged (generation {generation})"),
            TaskState::Failed { error } => format!("failed: {error}"),
            TaskState::Skipped { reason } => format!("skipped: {reason}"),
            TaskState::Cancelled => "cancelled".to_owned(),
            TaskState::Interrupted { attempt } => format!(
                "unknown: attempt {attempt} was running when the run stopped, and its end was \
                 never recorded (journal incomplete); `forge resume` runs it again"
            ),
            other => format!("{other:?}"),
        };
        out.push_str(&format!("  {id}: {line}\n"));
    }
    if !state.conflicts.is_empty() {
        out.push_str("conflicts:\n");
        for (task, paths) in &state.conflicts {
            out.push_str(&format!("  {task}: {}\n", paths.join(", ")));
        }
    }
    if !state.kept_work.is_empty() {
        out.push_str("kept work of tasks that did not merge (files/ and changes.json in each):\n");
        for dir in &state.kept_work {
            out.push_str(&format!("  {}\n", dir.display()));
        }
    }
    if !state.scope_violations.is_empty() {
        out.push_str("writes outside declared scope:\n");
        for (task, paths) in &state.scope_violations {
            out.push_str(&format!("  {task}: {}\n", paths.join(", ")));
        }
    }
    if !state.lock_waits.is_empty() {
        out.push_str("lock waits:\n");
        for (task, ms) in &state.lock_waits {
            out.push_str(&format!("  {task}: {ms} ms\n"));
        }
    }
    if !state.deadlocks.is_empty() {
        out.push_str("deadlocks:\n");
        for (victim, cycle) in &state.deadlocks {
            out.push_str(&format!("  victim {victim}: {cycle}\n"));
        }
    }
    if let Some(plan) = plan {
        let path = state.critical_path(plan);
        if !path.tasks.is_empty() {
            out.push_str(&format!(
                "critical path: {} ({:.1}s)\n",
                path.tasks.join(" -> "),
                path.total.as_secs_f64()
            ));
        }
    }
    out.push_str(&crate::display::metrics_table(&state.metrics));
    if !state.corrupt_lines.is_empty() {
        let lines: Vec<String> = state.corrupt_lines.iter().map(|l| l.to_string()).collect();
        out.push_str(&format!(
            "journal damaged: {} record{} not read (line{} {}); what they said is unknown, and \
             `forge resume` takes what was merged from the layers on disk\n",
            lines.len(),
            if lines.len() == 1 { "" } else { "s" },
            if lines.len() == 1 { "" } else { "s" },
            lines.join(", ")
        ));
    }
    if state.torn_tail || !state.corrupt_lines.is_empty() || state.events_lost > 0 {
        out.push_str(&format!(
            "journal: torn last line {}, corrupt lines {:?}, events lost {}\n",
            if state.torn_tail {
                "yes (dropped)"
            } else {
                "no"
            },
            state.corrupt_lines,
            state.events_lost
        ));
    }
    out
}
