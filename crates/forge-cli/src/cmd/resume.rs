//! `forge resume`: finish a run that was interrupted (a crash, `kill -9`, Ctrl-C): the commit
//! in flight is rolled forward or back, every merged task is kept, the others run again with
//! the settings the run was started with, and the head is written to the repository.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::display::Mode;
use crate::session::{self, Settings};

/// Arguments of `forge resume`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The run directory of the interrupted run.
    run_dir: PathBuf,
    /// Print every event as a JSON line on stdout instead of the progress display.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: Args) -> ExitCode {
    let bad_input = |message: String| {
        eprintln!("forge resume: {message}");
        ExitCode::from(2)
    };
    let run_dir = match std::path::absolute(&args.run_dir) {
        Ok(dir) => dir,
        Err(err) => return bad_input(format!("{}: {err}", args.run_dir.display())),
    };
    let settings = match Settings::load(&run_dir) {
        Ok(settings) => settings,
        Err(err) => return bad_input(err),
    };
    let plan = match forge_core::RunDir::open(&run_dir).and_then(|dir| dir.load_plan()) {
        Ok(plan) => plan,
        Err(err) => return bad_input(err.to_string()),
    };
    let (executors, options) = match (settings.executors(&plan), settings.engine_options(&run_dir))
    {
        (Ok(executors), Ok(options)) => (executors, options),
        (Err(err), _) | (_, Err(err)) => return bad_input(err),
    };
    session::drive(
        "resume",
        Mode::pick(args.json),
        &run_dir,
        options,
        Some((&settings.landing, settings.repo.as_path())),
        |options| async move { forge_core::resume(&executors, options).await },
    )
}
