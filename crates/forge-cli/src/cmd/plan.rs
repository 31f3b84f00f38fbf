//! `forge plan`.

use std::process::ExitCode;

/// Arguments of `forge plan`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Arguments, to be defined by the issue that builds this command.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    rest: Vec<String>,
}

pub(crate) fn run(args: Args) -> ExitCode {
    eprintln!("forge plan: not built yet ({:?})", args.rest);
    ExitCode::from(2)
}
