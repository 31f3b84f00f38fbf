//! The `forge` command: a thin layer over forge-core. No engine logic lives here.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;
mod display;
mod land;
mod session;

/// Run many coding agents in parallel on one repository, safely.
#[derive(Debug, Parser)]
#[command(name = "forge", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate a plan and print its phases.
    Plan(cmd::plan::Args),
    /// Run a plan in the current directory's repository.
    Run(Box<cmd::run::Args>),
    /// Show what the journal in a run directory says.
    Status(cmd::status::Args),
    /// Finish a run that was interrupted.
    Resume(cmd::resume::Args),
    /// Three-way file merge with `git merge-file`'s arguments and exit status.
    MergeFile(cmd::merge_file::Args),
    /// One line per task of a run: its state, its commit on the run branch, files changed
    /// and lines added and removed.
    Log(cmd::review::LogArgs),
    /// The patch of one task's commit on the run branch, or of the whole run.
    Diff(cmd::review::DiffArgs),
    /// A task's commit message, trailers and patch; for a task that did not merge, its
    /// error and where its work is kept.
    Show(cmd::review::ShowArgs),
    /// Land a finished run later: into the working tree, or onto the current branch
    /// (fast-forward or one squashed commit).
    Land(cmd::land::Args),
    /// Tell whether two path patterns can cover the same path.
    Overlap(cmd::overlap::Args),
}

fn main() -> ExitCode {
    // `merge-file` mirrors git's exit codes (255 on a usage error), so it parses its own argv.
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if argv.get(1).is_some_and(|a| a == "merge-file") {
        return cmd::merge_file::main(&argv[2..]);
    }
    let cli = Cli::parse();
    match cli.command {
        Command::Plan(args) => cmd::plan::run(args),
        Command::Run(args) => cmd::run::run(*args),
        Command::Status(args) => cmd::status::run(args),
        Command::Resume(args) => cmd::resume::run(args),
        Command::MergeFile(_) => unreachable!("merge-file is dispatched before clap parses"),
        Command::Overlap(args) => cmd::overlap::run(args),
        Command::Log(args) => cmd::review::log(args),
        Command::Diff(args) => cmd::review::diff(args),
        Command::Show(args) => cmd::review::show(args),
        Command::Land(args) => cmd::land::run(args),
    }
}
