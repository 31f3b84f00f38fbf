//! `forge land`: land a finished run later, into the working tree (three-way), by
//! fast-forwarding the current branch to the run branch, or as one squashed commit on it.
//! Exit status: 0 landed, 1 landed with conflicts (named, the run's version kept in the run
//! directory), 2 refused or failed (with what to do).

use std::path::PathBuf;
use std::process::ExitCode;

use forge_core::TaskState;
use forge_core::land::LandInto;

use crate::land::Land;
use crate::session::Settings;

/// Arguments of `forge land`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The run directory of a finished run.
    run_dir: PathBuf,
    /// How: `worktree` merges the result three-way into the working tree (your changes
    /// are kept; conflicting paths keep your version); `ff` fast-forwards the current
    /// branch to the run branch; `squash` makes one commit on the current branch listing
    /// the tasks. `ff` and `squash` need `HEAD` still at the commit the run started from
    /// and a clean working tree. No hook runs, nothing is pushed, no branch is switched.
    #[arg(long, value_parser = parse_into)]
    into: LandInto,
    /// Delete the run branch `forge/NAME` once landed.
    #[arg(long)]
    delete_branch: bool,
}

fn parse_into(text: &str) -> Result<LandInto, String> {
    match text {
        "worktree" => Ok(LandInto::Worktree),
        "ff" => Ok(LandInto::Ff),
        "squash" => Ok(LandInto::Squash),
        other => Err(format!("`{other}`: expected worktree, ff or squash")),
    }
}

pub(crate) fn run(args: Args) -> ExitCode {
    let refuse = |message: String| {
        eprintln!("forge land: {message}");
        ExitCode::from(2)
    };
    let run_dir = match std::path::absolute(&args.run_dir) {
        Ok(dir) => dir,
        Err(err) => return refuse(format!("{}: {err}", args.run_dir.display())),
    };
    let settings = match Settings::load(&run_dir) {
        Ok(settings) => settings,
        Err(err) => return refuse(err),
    };
    if settings.landing.land == Land::Worktree {
        return refuse(format!(
            "run {} was landed into the working tree when it ran (--land worktree); nothing to do",
            run_dir.display()
        ));
    }
    let staging = match settings.engine_options(&run_dir) {
        Ok(options) => options.staging,
        Err(err) => return refuse(err),
    };
    match forge_core::status(&run_dir) {
        Ok(state) if state.live => {
            return refuse(format!(
                "run {} is still running: land it when it has finished",
                run_dir.display()
            ));
        }
        Ok(state)
            if state.tasks.values().any(|t| {
                matches!(
                    t,
                    TaskState::Pending
                        | TaskState::Ready
                        | TaskState::Running { .. }
                        | TaskState::Retrying { .. }
                        | TaskState::Interrupted { .. }
                )
            }) =>
        {
            return refuse(format!(
                "run {dir} did not finish: run `forge resume {dir}` first",
                dir = run_dir.display()
            ));
        }
        Ok(_) => {}
        Err(err) => return refuse(err.to_string()),
    }
    let outcome = match forge_core::land::land(&run_dir, &settings.repo, args.into, &staging) {
        Ok(outcome) => outcome,
        Err(err) => return refuse(err.to_string()),
    };
    match (&outcome.landed.branch, &outcome.landed.commit) {
        (Some(branch), Some(commit)) => {
            if let Ok(Some(run_branch)) = forge_core::land::recorded_branch(&run_dir)
                && run_branch.working_tree.is_some()
            {
                println!(
                    "note: the run branch's first commit holds the uncommitted changes your \
                     working tree had when the run started: they are committed now"
                );
            }
            println!(
                "{} is now at {} (--into {})",
                branch.trim_start_matches("refs/heads/"),
                &commit[..commit.len().min(12)],
                args.into.as_str()
            );
        }
        _ => println!("the run's result is merged into the working tree (nothing committed)"),
    }
    for conflict in &outcome.conflicts {
        match &conflict.kept {
            Some(kept) => eprintln!(
                "conflict: {} ({}): your version is kept; the run's is in {}",
                conflict.path,
                conflict.kind,
                kept.display()
            ),
            None => eprintln!(
                "conflict: {} ({}): your version is kept",
                conflict.path, conflict.kind
            ),
        }
    }
    if args.delete_branch {
        match forge_core::land::delete_branch(&run_dir, &settings.repo) {
            Ok(refname) => println!("deleted {}", refname.trim_start_matches("refs/heads/")),
            Err(err) => return refuse(format!("landed, but the branch was not deleted: {err}")),
        }
    }
    if outcome.conflicts.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
