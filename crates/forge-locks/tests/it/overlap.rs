//! `overlap` against brute-force enumeration of every path up to depth 3 over a small
//! alphabet; every witness is covered by both patterns.

use std::sync::OnceLock;

use forge_locks::{Pattern, overlap};
use proptest::prelude::*;

use crate::{all_paths, p, pattern};

fn paths() -> &'static [String] {
    static PATHS: OnceLock<Vec<String>> = OnceLock::new();
    PATHS.get_or_init(|| all_paths(&['a', 'b', 'c', '.'], 3))
}

fn check_pair(a: &Pattern, b: &Pattern) -> Result<(), TestCaseError> {
    let found = overlap(a, b);
    let brute = paths().iter().find(|path| a.covers(path) && b.covers(path));
    if let Some(witness) = &found {
        prop_assert!(a.covers(witness), "witness {witness:?} not covered by {a}");
        prop_assert!(b.covers(witness), "witness {witness:?} not covered by {b}");
        prop_assert!(
            !witness
                .split('/')
                .any(|c| c.is_empty() || c == "." || c == "..")
        );
    }
    if let Some(path) = brute {
        prop_assert!(
            found.is_some(),
            "{a} and {b} both cover {path:?}, overlap said disjoint"
        );
    }
    // Symmetry of the answer (the witness may differ).
    prop_assert_eq!(overlap(b, a).is_some(), found.is_some());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: crate::cases(400), ..ProptestConfig::default() })]

    #[test]
    fn matches_brute_force(a in pattern(), b in pattern()) {
        check_pair(&a, &b)?;
    }

    #[test]
    fn glob_against_literal_path(a in pattern(), i in 0usize..2000) {
        let path = &paths()[i % paths().len()];
        let lit = p(path);
        check_pair(&a, &lit)?;
        if a.covers(path) {
            prop_assert!(overlap(&a, &lit).is_some());
        }
    }
}

#[test]
fn known_pairs() {
    let cases: &[(&str, &str, Option<&str>)] = &[
        ("src/api/**", "src/api", Some("src/api/a")),
        ("src/*/mod.rs", "src/a/*.rs", Some("src/a/mod.rs")),
        (
            "**/*.toml",
            "crates/*/Cargo.toml",
            Some("crates/a/Cargo.toml"),
        ),
        ("docs/{a,b}.md", "docs/c.md", None),
        ("{a,b}/**", "c/**", None),
        ("a?c/**", "abc/d", Some("abc/d")),
        ("[!.]*", ".hidden", None),
        (
            "src/**/test_*.rs",
            "src/**/*_test.rs",
            Some("src/test_test.rs"),
        ),
    ];
    for &(a, b, expected) in cases {
        assert_eq!(overlap(&p(a), &p(b)).as_deref(), expected, "{a} vs {b}");
    }
}
