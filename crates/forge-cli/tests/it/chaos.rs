//! Chaos property test (issue 13, item 22): a random repository, a random plan whose agents
//! draw their work from a hostile set of operations, a simulated user who edits and deletes
//! files while the run runs, sometimes a second run on the same repository and a signal
//! (then `forge resume`); after every case the invariants hold:
//!
//! - (a) no byte of the user's work is lost (unless the run reports a publish conflict for
//!   that path and keeps its own version in the run directory);
//! - (b) the working tree is exactly the merge of the user's edits and the change sets of the
//!   tasks the journal reports as merged: nothing unmerged arrived, nothing merged is missing
//!   (absolute-path writes are tolerated as known escapes until the sandbox issue, issue 16);
//! - (c) the nested repository `vendor/lib/.git` keeps its commit, `.env` keeps mode 0600,
//!   the user's `.git` is untouched;
//! - (d) no mount below the case's directory, no view left in `RUN_DIR/views`, no agent
//!   process left (fork-and-detach ones are counted and killed: issue 16);
//! - (e) `forge` exits 0 or 1, never 101, a signal or a hang (after a signal: `resume` does);
//! - (f) peak memory (`VmHWM`) of every `forge` process stays under 200 MB plus the largest
//!   file merged on both sides (no operation here changes a file on both sides: 200 MB).
//!
//! Every hostile operation is an [`Op`]; [`enabled`] says which ones are drawn, each disabled
//! one with the item of issue 13 whose fix it waits for: enabling one is a one-line change.
//!
//! # Soak
//!
//! `FORGE_SOAK=1 cargo test -p forge-cli --test it chaos -- --nocapture` runs 2000 cases
//! (`FORGE_CHAOS_CASES=N` sets the count in any mode). `FORGE_CHAOS_OPS=rm_vendor,fifo` (or
//! `all`) replaces the enabled set to try operations whose fix is under way, and
//! `FORGE_CHAOS_REPORT=FILE` appends each case's violations to FILE instead of failing;
//! `FORGE_CHAOS_VERBOSE=1` prints every case with its violations and `forge`'s output.
//! A case takes 3 to 10 s on a 2-core machine (the debug binary), so 2000 cases take hours.
//!
//! Soaked on the 2-core VM (loaded by other builds). Before the issue 13 fixes, with the
//! operations that passed then: 310 cases, 1,090 tasks, 647 merged, 149 resumed after
//! SIGINT, 0 violations, except one case whose `resume` passed the old 30 s deadline (serial
//! tasks whose detached processes held their output, about 5 s each): the deadline is 60 s
//! since. After merging items 1-7, 11, 13, 16 (main at 0587821), with today's enabled set:
//! 6 + 25 cases, 0 violations (and 30 more whose only findings were the harness's own
//! second run, since fixed); every disabled operation was run alone as well.

mod check;
mod ops;
mod scenario;
mod setup;
mod world;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// One hostile (or ordinary) thing an agent does, or a condition of the whole case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Op {
    /// Replace the task's own line of `a.txt` and `b.txt`.
    Edit,
    /// Create a file (and a symlink to it) in a new subdirectory.
    Create,
    /// Edit the tracked `src/target/m.rs` (a folder named `target`).
    EditUnderTarget,
    /// Write a new file into the real repository by its absolute path.
    AbsoluteWrite,
    /// Create `.a.txt.forge-publish` and `.b.txt.forge-publish`.
    PublishTempName,
    /// Write through `$INIT_CWD` (npm's copy of the caller's directory, the repository here)
    /// when it is not the agent's own directory.
    InheritedCwd,
    /// Write under `.git/` (a new file, `config`) and create `sub/.git/HEAD`.
    GitDirWrite,
    /// Git commands that change repository state: a branch, a tag, a config key.
    GitCommands,
    /// `rm -rf vendor` (the nested repository `vendor/lib` with its `.git`).
    RmVendor,
    /// Symlinks out of the view (absolute and relative).
    SymlinkOut,
    /// A hard link to a file outside the repository (or a copy when the view cannot link),
    /// then an append to it.
    HardlinkOut,
    /// Create a FIFO.
    Fifo,
    /// A 5 MB file.
    Large,
    /// A 1 GiB sparse file (`truncate -s 1G`).
    Sparse,
    /// `chmod 755 tool.sh`.
    Chmod,
    /// Append to the ignored `.env` (mode 0600).
    EnvAppend,
    /// `setsid sleep 30 &` with its output closed.
    ForkDetach,
    /// `setsid sleep 30 &` still holding the agent's stdout and stderr.
    ForkDetachHoldingOutput,
    /// Exit 75 (retryable) on the first attempt; the task has one retry.
    Exit75Once,
    /// Exit 76 with `forge:retry-after 0` once.
    Exit76Zero,
    /// Exit 76 with `forge:retry-after 1` once.
    Exit76One,
    /// Exit 76 with `forge:retry-after soon` once.
    Exit76Garbage,
    /// Exit 76 with `forge:retry-after 100000000000000000` once.
    Exit76Huge,
    /// Exit 76 with `forge:retry-after 1e300` once.
    Exit76Float,
    /// Exit 76 without a header once.
    Exit76NoHeader,
    /// 500 kB of output in 2-byte lines (`yes | head -c 500000`).
    Flood,
    /// 20 MB of output in 2-byte lines.
    FloodHuge,
    /// Case condition: the user appends to, creates and deletes files during the run.
    UserEdits,
    /// Case condition: a second `forge run` on the same repository at the same time.
    SecondRun,
    /// Case condition: SIGINT to `forge run`, then `forge resume`.
    Sigint,
    /// Case condition: SIGTERM to `forge run`, then `forge resume`.
    Sigterm,
    /// Case condition: `--staging copy` instead of `auto` (overlay as root).
    StagingCopy,
    /// Case condition: `--staging worktree` instead of `auto`.
    StagingWorktree,
}

impl Op {
    /// Every operation.
    pub(crate) const ALL: [Op; 33] = [
        Op::Edit,
        Op::Create,
        Op::EditUnderTarget,
        Op::AbsoluteWrite,
        Op::PublishTempName,
        Op::InheritedCwd,
        Op::GitDirWrite,
        Op::GitCommands,
        Op::RmVendor,
        Op::SymlinkOut,
        Op::HardlinkOut,
        Op::Fifo,
        Op::Large,
        Op::Sparse,
        Op::Chmod,
        Op::EnvAppend,
        Op::ForkDetach,
        Op::ForkDetachHoldingOutput,
        Op::Exit75Once,
        Op::Exit76Zero,
        Op::Exit76One,
        Op::Exit76Garbage,
        Op::Exit76Huge,
        Op::Exit76Float,
        Op::Exit76NoHeader,
        Op::Flood,
        Op::FloodHuge,
        Op::UserEdits,
        Op::SecondRun,
        Op::Sigint,
        Op::Sigterm,
        Op::StagingCopy,
        Op::StagingWorktree,
    ];

    /// Whether this is a condition of the whole case rather than something an agent does.
    pub(crate) fn is_condition(self) -> bool {
        matches!(
            self,
            Op::UserEdits
                | Op::SecondRun
                | Op::Sigint
                | Op::Sigterm
                | Op::StagingCopy
                | Op::StagingWorktree
        )
    }

    /// The name used in `FORGE_CHAOS_OPS` (snake case).
    pub(crate) fn name(self) -> String {
        let debug = format!("{self:?}");
        let mut out = String::new();
        for (i, c) in debug.chars().enumerate() {
            if c.is_ascii_uppercase() {
                if i > 0 {
                    out.push('_');
                }
                out.push(c.to_ascii_lowercase());
            } else {
                out.push(c);
            }
        }
        out
    }
}

/// Whether the test draws `op` by default: true once every invariant holds with it on main.
/// A disabled op names the item of issue 13 whose fix it waits for; enable it when that lands.
fn enabled(op: Op) -> bool {
    match op {
        Op::Edit => true,
        Op::Create => true,
        Op::EditUnderTarget => true, // failed before item 5 (dropped under `target/`)
        Op::AbsoluteWrite => true,   // known escape (issue 16), tolerated by (b)
        Op::PublishTempName => true, // failed before item 1 (temp names addressable)
        Op::InheritedCwd => true,    // failed before item 4 (INIT_CWD pointed at the repository)
        Op::GitDirWrite => true,
        Op::GitCommands => true,
        Op::RmVendor => true, // failed before item 6 (the nested `.git` was deleted)
        Op::SymlinkOut => true,
        Op::HardlinkOut => true,
        Op::Fifo => true,
        Op::Large => true,
        Op::Sparse => false, // item 12: written dense, 3 GB of memory for 1 GiB
        Op::Chmod => true,
        Op::EnvAppend => true,  // failed before item 11 (`.env` became 0644)
        Op::ForkDetach => true, // escaped processes are counted and killed (issue 16)
        // Bounded: the run waits about 5 s for the agent's pipes, then goes on.
        Op::ForkDetachHoldingOutput => true,
        Op::Exit75Once => true,
        Op::Exit76Zero => true,
        Op::Exit76One => true,
        // Item 13 is fixed (no panic, no endless pause), but the pauses stay long: a garbage
        // header or none pauses 60 s, 1e17 or 1e300 seconds are capped at 24 h (never past
        // the task's timeout). Above this test's 60 s deadline (scenario::DEADLINE): to
        // enable them, give their tasks a short `timeout` and check the pause is cut there.
        Op::Exit76Garbage => false,
        Op::Exit76Huge => false,
        Op::Exit76Float => false,
        Op::Exit76NoHeader => false,
        Op::Flood => true,
        // Not in issue 13: every output line is a journal record (20 MB of output make a
        // 120 MB journal) and the debug binary needs about 60 s for it.
        Op::FloodHuge => false,
        Op::UserEdits => true, // failed before item 2 (the user's edits were overwritten)
        Op::SecondRun => true, // failed before item 3 (two runs lost an update)
        Op::Sigint => true,
        Op::Sigterm => true, // failed before item 16 (mounts, views, agents left)
        // Failed before item 6 here too; the hard-link escape out of plain-directory views
        // (issue 16) is not drawn with these stagings (see `scenario::strategy`).
        Op::StagingCopy => true,
        Op::StagingWorktree => true, // failed before item 7 (`git branch` reached the user)
    }
}

/// The operations drawn in this process: [`enabled`], or `FORGE_CHAOS_OPS` (`all` or a comma
/// list of names, to which `edit` and `create` are always added).
fn active_ops() -> Vec<Op> {
    match std::env::var("FORGE_CHAOS_OPS") {
        Ok(list) if list.trim() == "all" => Op::ALL.to_vec(),
        Ok(list) => {
            let names: Vec<&str> = list.split(',').map(str::trim).collect();
            for name in &names {
                assert!(
                    Op::ALL.iter().any(|op| op.name() == *name),
                    "FORGE_CHAOS_OPS: unknown operation `{name}`"
                );
            }
            Op::ALL
                .into_iter()
                .filter(|op| {
                    matches!(op, Op::Edit | Op::Create) || names.contains(&op.name().as_str())
                })
                .collect()
        }
        Err(_) => Op::ALL.into_iter().filter(|op| enabled(*op)).collect(),
    }
}

fn env_number(name: &str) -> Option<u32> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

#[test]
fn trust_22_chaos_invariants_hold() {
    let ops = active_ops();
    let soak = std::env::var_os("FORGE_SOAK").is_some();
    let cases = env_number("FORGE_CHAOS_CASES").unwrap_or(if soak { 2000 } else { 6 });
    let verbose = std::env::var_os("FORGE_CHAOS_VERBOSE").is_some();
    let report = std::env::var_os("FORGE_CHAOS_REPORT").map(std::path::PathBuf::from);
    let config = Config {
        cases,
        // Every case starts real processes: shrink a little, never write regression files
        // into the source tree.
        max_shrink_iters: if soak { 32 } else { 4 },
        failure_persistence: None,
        // The short run in CI draws the same cases every time (`FORGE_CHAOS_SEED=N` for
        // others), so a failure there is reproducible; a soak draws new ones.
        rng_seed: match env_number("FORGE_CHAOS_SEED") {
            Some(seed) => proptest::test_runner::RngSeed::Fixed(u64::from(seed)),
            None if soak => proptest::test_runner::RngSeed::Random,
            None => proptest::test_runner::RngSeed::Fixed(0x5eed_c4a0),
        },
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let totals = std::cell::RefCell::new(scenario::Totals::default());
    let result = runner.run(&scenario::strategy(&ops), |case| {
        let outcome = scenario::run_case(&case);
        totals.borrow_mut().add(&outcome);
        if verbose {
            eprintln!(
                "case {case:#?}\nviolations: {:#?}\n{}",
                outcome.violations, outcome.output
            );
        }
        if outcome.violations.is_empty() {
            return Ok(());
        }
        let text = format!(
            "{} violation(s) in case {case:#?}\n  {}\n--- forge output (tail) ---\n{}",
            outcome.violations.len(),
            outcome.violations.join("\n  "),
            outcome.output
        );
        match &report {
            Some(file) => {
                use std::io::Write;
                let mut f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(file)
                    .expect("report file");
                writeln!(f, "ops={:?}\n{text}\n", case.ops()).expect("write report");
                Ok(())
            }
            None => Err(TestCaseError::fail(text)),
        }
    });
    eprintln!("chaos: {}", totals.borrow());
    if let Err(err) = result {
        panic!("{err}");
    }
}
