//! `forge plan`: validate a plan and print its phases.
//!
//! Exit status: 0 valid, 1 invalid (every problem on stderr, one per line), 2 when the file
//! cannot be read.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use forge_core::{LoadError, PhaseFormat, Plan};

/// Arguments of `forge plan`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Exit status: 0 when the plan is valid, 1 when it is not (every problem is listed on stderr, \
one per line; a plan without tasks is not valid), 2 when the file cannot be read.

A plan is TOML ([[task]] tables), JSON ({\"tasks\": [...]}) or a Droidz tasks.json \
({\"tasks\": [{\"key\", \"dependencies\", ...}]}); the form is detected from the content.")]
pub(crate) struct Args {
    /// The plan file.
    file: PathBuf,
    /// How to print the phases.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Format {
    /// One line per phase and a summary.
    Text,
    /// `{"phases": [["a"], ["b", "c"]], "tasks": .., "edges": .., "critical_path": [..]}`.
    Json,
    /// Graphviz.
    Dot,
    /// Mermaid flowchart.
    Mermaid,
}

pub(crate) fn run(args: Args) -> ExitCode {
    let file = args.file.display();
    let plan = match Plan::load(&args.file) {
        Ok(plan) => plan,
        Err(err @ LoadError::Read { .. }) => {
            eprintln!("forge plan: {err}");
            return ExitCode::from(2);
        }
        Err(err) => {
            eprintln!("forge plan: {err}");
            return ExitCode::from(1);
        }
    };
    if plan.tasks.is_empty() {
        eprintln!("forge plan: {file}: the plan has no tasks");
        return ExitCode::from(1);
    }
    let plan = match plan.validate() {
        Ok(plan) => plan,
        Err(err) => {
            for problem in err.problems() {
                eprintln!("{file}: {problem}");
            }
            let n = err.problems().len();
            eprintln!(
                "forge plan: {file} is invalid ({n} problem{})",
                if n == 1 { "" } else { "s" }
            );
            return ExitCode::from(1);
        }
    };
    let format = match args.format {
        Format::Text => PhaseFormat::Text,
        Format::Json => PhaseFormat::Json,
        Format::Dot => PhaseFormat::Dot,
        Format::Mermaid => PhaseFormat::Mermaid,
    };
    // A closed stdout (`| head`) is not an error of the plan.
    let _ = std::io::stdout()
        .lock()
        .write_all(plan.phases().render(format).as_bytes());
    ExitCode::SUCCESS
}
