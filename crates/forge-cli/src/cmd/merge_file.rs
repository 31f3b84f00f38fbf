//! `forge merge-file`: the arguments and exit status of `git merge-file`.

use std::ffi::OsString;
use std::process::ExitCode;

/// Arguments of `forge merge-file` (parsed by hand in [`main`], git-style).
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    rest: Vec<String>,
}

pub(crate) fn main(argv: &[OsString]) -> ExitCode {
    eprintln!("forge merge-file: not built yet ({argv:?})");
    ExitCode::from(255)
}
