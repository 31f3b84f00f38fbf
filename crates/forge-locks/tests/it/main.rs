//! Integration tests of forge-locks: overlap against brute force, coverage of literals,
//! the lock table against a sequential model, a multi-threaded stress test with a watchdog,
//! and async cancellation on a real runtime.

#![forbid(unsafe_code)]

mod asynchronous;
mod covers;
mod model;
mod overlap;
mod stress;

use forge_locks::{Mode, Pattern};
use proptest::prelude::*;

/// Parses a pattern that the generators guarantee is valid.
pub(crate) fn p(s: &str) -> Pattern {
    Pattern::parse(s).expect("valid pattern")
}

/// One glob atom over a small alphabet.
fn atom() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "a", "b", "a", "b", ".", "*", "?", "[ab]", "[!a]", "[a-b]", "{a,b}", "{a,}", "{a/b,c}",
        "\\*",
    ])
}

/// One component: `**`, or one to three atoms.
fn component() -> impl Strategy<Value = String> {
    prop_oneof![
        1 => Just("**".to_owned()),
        1 => Just("..".to_owned()),
        8 => prop::collection::vec(atom(), 1..=3).prop_map(|atoms| atoms.concat()),
    ]
}

/// A pattern string of up to four components (possibly invalid; callers filter).
pub(crate) fn pattern_text() -> impl Strategy<Value = String> {
    prop::collection::vec(component(), 1..=4).prop_map(|c| c.join("/"))
}

/// A valid pattern.
pub(crate) fn pattern() -> impl Strategy<Value = Pattern> {
    pattern_text().prop_filter_map("pattern must parse", |t| Pattern::parse(&t).ok())
}

/// Every path of up to `depth` components, each of one or two characters of `chars`
/// (never `.` or `..`).
pub(crate) fn all_paths(chars: &[char], depth: usize) -> Vec<String> {
    let mut names: Vec<String> = chars.iter().map(|c| c.to_string()).collect();
    for a in chars {
        for b in chars {
            names.push(format!("{a}{b}"));
        }
    }
    names.retain(|n| n != "." && n != "..");
    let mut paths: Vec<String> = Vec::new();
    let mut level: Vec<String> = names.clone();
    for _ in 0..depth {
        paths.extend(level.iter().cloned());
        level = level
            .iter()
            .flat_map(|prefix| names.iter().map(move |n| format!("{prefix}/{n}")))
            .collect();
    }
    paths
}

/// Whether two locks conflict (different owners assumed).
pub(crate) fn conflict(a: &(Pattern, Mode), b: &(Pattern, Mode)) -> bool {
    (a.1 == Mode::Write || b.1 == Mode::Write) && forge_locks::overlap(&a.0, &b.0).is_some()
}

/// Proptest case count: `n`, or 25 times more under `FORGE_SOAK=1`.
pub(crate) fn cases(n: u32) -> u32 {
    if std::env::var_os("FORGE_SOAK").is_some() {
        n * 25
    } else {
        n
    }
}
