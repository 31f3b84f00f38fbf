//! Integration tests of the `forge` binary.

mod metrics;
mod plan;
mod resume;
mod run;

use std::path::Path;
use std::process::{Command, Output};

/// Runs `forge` with `args` in `dir`.
pub(crate) fn forge(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_forge"))
        .args(args)
        .current_dir(dir)
        .env_remove("COLUMNS")
        .output()
        .expect("forge runs")
}

/// stdout and stderr as text.
pub(crate) fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}
