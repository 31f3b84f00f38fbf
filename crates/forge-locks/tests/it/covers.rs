//! `Pattern::covers` against the path-prefix rule (literals), on generated patterns and paths.
//!
//! A glob's `covers` is globset's own matcher, so comparing it with globset here could not
//! fail; `src/pattern/tests.rs` checks it against the automaton that overlap checks run on,
//! and that automaton against globset.

use std::sync::OnceLock;

use proptest::prelude::*;

use crate::{all_paths, pattern_text};

fn paths() -> &'static [String] {
    static PATHS: OnceLock<Vec<String>> = OnceLock::new();
    PATHS.get_or_init(|| all_paths(&['a', 'b', '.'], 3))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: crate::cases(300), ..ProptestConfig::default() })]

    #[test]
    fn literals_cover_themselves_and_their_subtree(text in pattern_text()) {
        let Ok(pattern) = forge_locks::Pattern::parse(&text) else {
            return Ok(());
        };
        if !pattern.is_literal() {
            return Ok(());
        }
        let normalized = pattern.as_str();
        for path in paths() {
            let expected = normalized == "."
                || path == normalized
                || path.starts_with(&format!("{normalized}/"));
            prop_assert_eq!(pattern.covers(path), expected, "{} vs {}", normalized, path);
        }
    }
}

#[test]
fn normalization_keeps_meaning() {
    for (raw, path) in [
        ("./src/*.rs", "src/a.rs"),
        ("src/api/", "src/api/x"),
        ("a/../b/**", "b/c"),
    ] {
        assert!(
            forge_locks::Pattern::parse(raw)
                .expect("valid")
                .covers(path),
            "{raw} covers {path}"
        );
    }
}
