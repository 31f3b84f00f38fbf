//! Unit tests of normalization and coverage.

use super::*;

fn check(input: &str, expected: &str) {
    let p = Pattern::parse(input).expect("valid pattern");
    assert_eq!(p.as_str(), expected, "normalizing {input}");
}

#[test]
fn normalizes() {
    check("./src", "src");
    check("src/", "src");
    check("a/../b", "b");
    check("a//b/./c/", "a/b/c");
    check(".", ".");
    check("a/..", ".");
    check("src/{a/../b,c}", "src/{a/../b,c}");
    check("src/[/]x", "src/[/]x");
}

#[test]
fn rejects_with_the_pattern_named() {
    let err = |p: &str| Pattern::parse(p).expect_err("invalid").to_string();
    assert!(err("/etc").contains("`/etc`"));
    assert!(err("../x").contains("`../x`"));
    assert!(err("a/../../x").contains("leaves the repository"));
    assert!(err("a/*/../b").contains("after a glob"));
    assert!(err("a/[b").contains("`a/[b`"));
    assert!(err("a/{b").contains("`a/{b`"));
    assert!(err("").contains("empty"));
}

#[test]
fn literal_and_prefix() {
    let p = Pattern::parse("src/api").expect("valid");
    assert!(p.is_literal());
    assert_eq!(p.prefix(), ["src".into(), "api".into()]);
    let g = Pattern::parse("src/api/**/*.rs").expect("valid");
    assert!(!g.is_literal());
    assert_eq!(g.prefix(), ["src".into(), "api".into()]);
    assert!(Pattern::parse("**").expect("valid").prefix().is_empty());
}

#[test]
fn coverage_rule() {
    let lit = Pattern::parse("src/api").expect("valid");
    assert!(lit.covers("src/api"));
    assert!(lit.covers("src/api/x.rs"));
    assert!(!lit.covers("src/apix"));
    assert!(!lit.covers("src"));
    let root = Pattern::parse(".").expect("valid");
    assert!(root.covers("anything/at/all"));
    let glob = Pattern::parse("src/*.rs").expect("valid");
    assert!(glob.covers("src/a.rs"));
    assert!(!glob.covers("src/a/b.rs"));
    let tree = Pattern::parse("src/api/**").expect("valid");
    assert!(tree.covers("src/api/a/b"));
    assert!(!tree.covers("src/api"));
}

#[test]
fn containment_for_reentrancy() {
    let p = |s: &str| Pattern::parse(s).expect("valid");
    assert!(p("src").contains(&p("src/a")));
    assert!(p("src").contains(&p("src/a/**")));
    assert!(p("src").contains(&p("src/*.rs")));
    assert!(!p("src").contains(&p("s*/x")));
    assert!(!p("src/*.rs").contains(&p("src/a.rs")));
    assert!(p(".").contains(&p("**")));
    assert!(!p("src/a").contains(&p("src")));
}

mod differential {
    //! The compiled automaton against globset itself, on generated globs and byte strings
    //! (including strings that are not normalized paths, to pin the regex semantics).

    use proptest::prelude::*;

    use super::*;

    fn atom() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "a", "b", ".", "/", "*", "**", "?", "[ab]", "[!a]", "[a-b]", "[]a]", "{a,b}", "{a,}",
            "{a/b,c}", "{*,b/**}", "\\*", "é", "[!é]",
        ])
    }

    fn text() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop::sample::select(vec!["a", "b", ".", "/", "é", "*"]),
            0..7,
        )
        .prop_map(|parts| parts.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

        #[test]
        fn automaton_agrees_with_globset(
            atoms in prop::collection::vec(atom(), 1..6),
            inputs in prop::collection::vec(text(), 1..20),
        ) {
            let pattern = atoms.concat();
            let Ok(glob) = globset::GlobBuilder::new(&pattern)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
            else {
                return Ok(());
            };
            let matcher = glob.compile_matcher();
            let tokens = syntax::tokenize(&pattern).expect("globset accepted it");
            let nfa = Nfa::from_glob(&tokens);
            for input in &inputs {
                prop_assert_eq!(
                    nfa.matches(input.as_bytes()),
                    matcher.is_match(input),
                    "{} on {:?}", pattern, input
                );
            }
        }

        /// `covers` (globset for a glob, the prefix rule for a literal) accepts what the
        /// automaton that overlap checks run on accepts, after normalization.
        #[test]
        fn covers_agrees_with_the_automaton(
            atoms in prop::collection::vec(atom(), 1..6),
            inputs in prop::collection::vec(text(), 1..20),
        ) {
            let Ok(pattern) = Pattern::parse(&atoms.concat()) else {
                return Ok(());
            };
            for input in &inputs {
                prop_assert_eq!(
                    pattern.covers(input),
                    pattern.nfa().matches(input.as_bytes()),
                    "{} on {:?}", pattern, input
                );
            }
        }
    }
}
