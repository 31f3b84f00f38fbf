//! Tests of the xdiff reimplementation: hand-checked hunks and a property that every script
//! turns file 1 into file 2 and only ever pairs equal lines.

use proptest::prelude::*;

use super::{Change, bogosqrt, diff};

fn ids(s: &str) -> Vec<u32> {
    s.bytes().map(|b| u32::from(b - b'a')).collect()
}

/// Diffs two strings of one-letter lines, returns hunks as `(i1, chg1, i2, chg2)`.
fn check(a: &str, b: &str, expected: &[(usize, usize, usize, usize)]) {
    let got: Vec<_> = diff(&ids(a), &ids(b), 26, false)
        .into_iter()
        .map(|c| (c.i1, c.chg1, c.i2, c.chg2))
        .collect();
    assert_eq!(got, expected, "diff {a:?} -> {b:?}");
}

#[test]
fn hunks() {
    check("", "", &[]);
    check("abc", "abc", &[]);
    check("abc", "", &[(0, 3, 0, 0)]);
    check("", "ab", &[(0, 0, 0, 2)]);
    check("abc", "axc", &[(1, 1, 1, 1)]);
    check("abc", "abxc", &[(2, 0, 2, 1)]);
    check("abcd", "ad", &[(1, 2, 1, 0)]);
}

#[test]
fn groups_slide_down_like_xdiff() {
    // Inserting a repeated line: xdiff reports it as low as it can go.
    check("abbc", "abbbc", &[(3, 0, 3, 1)]);
    check("aa", "aaa", &[(2, 0, 2, 1)]);
    // Deleting one of two equal blocks.
    check("abab", "ab", &[(2, 2, 2, 0)]);
}

#[test]
fn bogosqrt_matches_xdiff() {
    assert_eq!(bogosqrt(0), 1);
    assert_eq!(bogosqrt(1), 2);
    assert_eq!(bogosqrt(4), 4);
    assert_eq!(bogosqrt(16), 8);
    assert_eq!(bogosqrt(1000), 32);
}

/// Applies a script to `a`, taking inserted lines from `b`; also checks that the unchanged
/// lines it pairs are equal.
fn apply(a: &[u32], b: &[u32], script: &[Change]) -> Vec<u32> {
    let mut out = Vec::new();
    let (mut i1, mut i2) = (0, 0);
    for c in script {
        assert!(c.i1 >= i1 && c.i2 >= i2, "hunks out of order");
        assert_eq!(c.i1 - i1, c.i2 - i2, "unchanged runs differ in length");
        assert_eq!(a[i1..c.i1], b[i2..c.i2], "unchanged lines differ");
        out.extend_from_slice(&a[i1..c.i1]);
        out.extend_from_slice(&b[c.i2..c.i2 + c.chg2]);
        assert!(c.chg1 + c.chg2 > 0, "empty hunk");
        i1 = c.i1 + c.chg1;
        i2 = c.i2 + c.chg2;
    }
    assert_eq!(a[i1..], b[i2..], "unchanged tails differ");
    out.extend_from_slice(&a[i1..]);
    out
}

proptest! {
    #[test]
    fn script_turns_a_into_b(
        a in prop::collection::vec(0u32..6, 0..80),
        b in prop::collection::vec(0u32..6, 0..80),
        minimal in any::<bool>(),
    ) {
        let script = diff(&a, &b, 6, minimal);
        prop_assert_eq!(apply(&a, &b, &script), b);
    }

    #[test]
    fn large_inputs_with_heuristics_stay_correct(
        a in prop::collection::vec(0u32..40, 600..1500),
        edits in prop::collection::vec((0usize..1500, 0u32..60), 0..400),
    ) {
        // Many scattered edits push the search past its cost bounds.
        let mut b = a.clone();
        for (pos, v) in edits {
            let p = pos % (b.len() + 1);
            if v < 40 { b.insert(p, v) } else if p < b.len() { b.remove(p); }
        }
        let script = diff(&a, &b, 40, false);
        prop_assert_eq!(apply(&a, &b, &script), b);
    }
}
