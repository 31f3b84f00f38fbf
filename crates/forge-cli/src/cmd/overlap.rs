//! `forge overlap PATTERN PATTERN`: tells whether two path patterns can cover the same path,
//! and which path when they can.

use std::process::ExitCode;

use forge_core::locks::{Pattern, overlap};

/// Arguments of `forge overlap`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The first pattern (a path, which covers everything below it, or a glob).
    first: String,
    /// The second pattern.
    second: String,
}

/// Prints `overlap: WITNESS` (exit 0) or `disjoint` (exit 1); a bad pattern is exit 2 with
/// an error naming it.
pub(crate) fn run(args: Args) -> ExitCode {
    let parse = |text: &str| {
        Pattern::parse(text).map_err(|e| {
            eprintln!("forge overlap: {e}");
        })
    };
    let (Ok(first), Ok(second)) = (parse(&args.first), parse(&args.second)) else {
        return ExitCode::from(2);
    };
    match overlap(&first, &second) {
        Some(witness) => {
            println!("overlap: {witness}");
            ExitCode::SUCCESS
        }
        None => {
            println!("disjoint");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(first: &str, second: &str) -> ExitCode {
        run(Args {
            first: first.to_owned(),
            second: second.to_owned(),
        })
    }

    #[test]
    fn exit_status_follows_the_answer() {
        assert_eq!(status("src/**", "src/api"), ExitCode::SUCCESS);
        assert_eq!(status("src/*.rs", "docs/*.md"), ExitCode::from(1));
        assert_eq!(status("/etc", "src"), ExitCode::from(2));
        assert_eq!(status("src", "a/[b"), ExitCode::from(2));
    }
}
