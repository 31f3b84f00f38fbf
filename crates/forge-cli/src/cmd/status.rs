//! `forge status`: what the journal in a run directory says about a run.

use std::path::PathBuf;
use std::process::ExitCode;

use forge_core::{RunState, TaskState};

/// Arguments of `forge status`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The run directory (the one `forge run --run-dir` used).
    run_dir: PathBuf,
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
    print!("{}", render(&state, plan.as_ref().ok()));
    ExitCode::SUCCESS
}

/// The report, as text.
pub(crate) fn render(state: &RunState, plan: Option<&forge_core::Plan>) -> String {
    let mut out = String::new();
    let count = |f: fn(&TaskState) -> bool| state.tasks.values().filter(|s| f(s)).count();
    out.push_str(&format!(
        "generation {}; {} tasks: {} merged, {} failed, {} skipped, {} running or pending{}\n",
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
        if state.published {
            "; published"
        } else {
            "; not published (an interrupted run: `forge resume` finishes it)"
        },
    ));
    let ids: Vec<String> = match plan {
        Some(plan) => plan.tasks.iter().map(|t| t.id.clone()).collect(),
        None => state.tasks.keys().cloned().collect(),
    };
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
