//! `Pattern::covers` against globset with literal separators (globs) and the path-prefix
//! rule (literals), on generated patterns and paths.

use std::sync::OnceLock;

use globset::GlobBuilder;
use proptest::prelude::*;

use crate::{all_paths, pattern_text};

fn paths() -> &'static [String] {
    static PATHS: OnceLock<Vec<String>> = OnceLock::new();
    PATHS.get_or_init(|| all_paths(&['a', 'b', '.'], 3))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: crate::cases(300), ..ProptestConfig::default() })]

    #[test]
    fn agrees_with_globset(text in pattern_text()) {
        let Ok(pattern) = forge_locks::Pattern::parse(&text) else {
            return Ok(());
        };
        let normalized = pattern.as_str();
        if pattern.is_literal() {
            for path in paths() {
                let expected = normalized == "."
                    || path == normalized
                    || path.starts_with(&format!("{normalized}/"));
                prop_assert_eq!(pattern.covers(path), expected, "{} vs {}", normalized, path);
            }
        } else {
            let glob = GlobBuilder::new(normalized)
                .literal_separator(true)
                .build()
                .expect("forge accepted it, so globset does")
                .compile_matcher();
            for path in paths() {
                prop_assert_eq!(pattern.covers(path), glob.is_match(path), "{} vs {}", normalized, path);
            }
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
