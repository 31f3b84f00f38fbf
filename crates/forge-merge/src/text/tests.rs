//! `check(base, ours, theirs, expected)` tables, one per rule of `git merge-file` that the text
//! merge reproduces. Every expected text was produced by `git merge-file -p` (git 2.47) with
//! `-L ours -L base -L theirs`.

use super::*;
use crate::{Favor, Labels};

fn labelled(style: ConflictStyle, favor: Option<Favor>) -> MergeOptions {
    MergeOptions {
        style,
        favor,
        labels: Labels {
            ours: Some("ours".into()),
            base: Some("base".into()),
            theirs: Some("theirs".into()),
        },
        ..MergeOptions::default()
    }
}

/// Merges with `opts` and compares the rendered result.
#[track_caller]
fn check_with(opts: &MergeOptions, base: &str, ours: &str, theirs: &str, expected: &str) {
    let m = merge(base.as_bytes(), ours.as_bytes(), theirs.as_bytes(), opts);
    let got = String::from_utf8(m.render()).expect("test texts are UTF-8");
    assert_eq!(
        got, expected,
        "\nbase {base:?}\nours {ours:?}\ntheirs {theirs:?}"
    );
    let opener = "<".repeat(opts.effective_marker_size());
    let markers = expected.lines().filter(|l| l.starts_with(&opener)).count();
    assert_eq!(m.conflict_count(), markers, "conflict count");
    assert_eq!(m.is_clean(), markers == 0);
}

/// The default style with labels `ours`, `base`, `theirs`.
#[track_caller]
fn check(base: &str, ours: &str, theirs: &str, expected: &str) {
    check_with(
        &labelled(ConflictStyle::Merge, None),
        base,
        ours,
        theirs,
        expected,
    );
}

#[track_caller]
fn check_diff3(base: &str, ours: &str, theirs: &str, expected: &str) {
    check_with(
        &labelled(ConflictStyle::Diff3, None),
        base,
        ours,
        theirs,
        expected,
    );
}

#[track_caller]
fn check_zdiff3(base: &str, ours: &str, theirs: &str, expected: &str) {
    check_with(
        &labelled(ConflictStyle::Zdiff3, None),
        base,
        ours,
        theirs,
        expected,
    );
}

#[test]
fn one_side_unchanged_gives_the_other_byte_for_byte() {
    check("a\nb\n", "a\nb\n", "a\nB", "a\nB");
    check("a\nb\n", "x\r\ny", "a\nb\n", "x\r\ny");
    check("", "", "new\n", "new\n");
    check("a\n", "", "a\n", "");
}

#[test]
fn identical_changes_are_clean() {
    check("a\nb\nc\n", "a\nB\nc\n", "a\nB\nc\n", "a\nB\nc\n");
    check("a\nb\nc\n", "a\nc\n", "a\nc\n", "a\nc\n");
}

#[test]
fn separated_changes_merge() {
    check(
        "1\n2\n3\n4\n5\n",
        "1\nX\n3\n4\n5\n",
        "1\n2\n3\nY\n5\n",
        "1\nX\n3\nY\n5\n",
    );
    check(
        "1\n2\n3\n",
        "0\n1\n2\n3\n",
        "1\n2\n3\n4\n",
        "0\n1\n2\n3\n4\n",
    );
}

#[test]
fn touching_changes_conflict() {
    check(
        "1\n2\n3\n4\n",
        "1\nX\n3\n4\n",
        "1\n2\nY\n4\n",
        "1\n<<<<<<< ours\nX\n3\n=======\n2\nY\n>>>>>>> theirs\n4\n",
    );
}

#[test]
fn insertions_at_the_same_point_or_edge_conflict() {
    check(
        "a\nb\n",
        "a\nX\nb\n",
        "a\nY\nb\n",
        "a\n<<<<<<< ours\nX\n=======\nY\n>>>>>>> theirs\nb\n",
    );
    check(
        "a\nb\nc\n",
        "a\nX\nb\nc\n",
        "a\nB\nc\n",
        "a\n<<<<<<< ours\nX\nb\n=======\nB\n>>>>>>> theirs\nc\n",
    );
}

#[test]
fn conflicts_are_refined_to_the_lines_that_differ() {
    check(
        "a\nb\nc\nd\ne\n",
        "a\n1\n2\n3\ne\n",
        "a\n1\nX\n3\ne\n",
        "a\n1\n<<<<<<< ours\n2\n=======\nX\n>>>>>>> theirs\n3\ne\n",
    );
}

#[test]
fn refinement_finding_identical_sides_is_clean() {
    // Ours deletes the first of two equal lines, theirs the second: the hunks touch, so they
    // form a conflict over both lines, where each side reads the same ("c"). The refinement diff
    // is empty and the region is dropped. (Identical versions would not get this far: equal
    // hunks are taken as one change before any conflict is formed.)
    check("a\nc\nc\n", "b\na\na\nc\n", "a\nc\n", "b\na\na\nc\n");
    let (b, o, t) = (&b"a\nc\nc\n"[..], &b"b\na\na\nc\n"[..], &b"a\nc\n"[..]);
    let m = merge(b, o, t, &MergeOptions::default());
    let Outcome::Regions(regions) = &m.outcome else {
        panic!("both sides changed the base");
    };
    assert!(
        regions.iter().any(|r| r.mode == Mode::Identical),
        "{regions:?}"
    );
}

#[test]
fn close_conflicts_are_joined() {
    // Two conflicts three lines apart become one.
    check(
        "a\nb\nc\nd\ne\nf\ng\n",
        "A1\nb\nc\nd\nE1\nf\ng\n",
        "A2\nb\nc\nd\nE2\nf\ng\n",
        "<<<<<<< ours\nA1\nb\nc\nd\nE1\n=======\nA2\nb\nc\nd\nE2\n>>>>>>> theirs\nf\ng\n",
    );
    // Four lines apart with letters: kept apart.
    check(
        "a\nb\nc\nd\ne\nf\n",
        "A1\nb\nc\nd\ne\nF1\n",
        "A2\nb\nc\nd\ne\nF2\n",
        "<<<<<<< ours\nA1\n=======\nA2\n>>>>>>> theirs\nb\nc\nd\ne\n<<<<<<< ours\nF1\n=======\nF2\n>>>>>>> theirs\n",
    );
    // Four lines apart without letters or digits: joined.
    check(
        "a\n{\n}\n(\n)\nf\n",
        "A1\n{\n}\n(\n)\nF1\n",
        "A2\n{\n}\n(\n)\nF2\n",
        "<<<<<<< ours\nA1\n{\n}\n(\n)\nF1\n=======\nA2\n{\n}\n(\n)\nF2\n>>>>>>> theirs\n",
    );
}

#[test]
fn diff3_shows_the_base_and_does_not_refine() {
    check_diff3(
        "a\nb\nc\nd\ne\n",
        "a\n1\n2\n3\ne\n",
        "a\n1\nX\n3\ne\n",
        "a\n<<<<<<< ours\n1\n2\n3\n||||||| base\nb\nc\nd\n=======\n1\nX\n3\n>>>>>>> theirs\ne\n",
    );
}

#[test]
fn zdiff3_moves_common_ends_out_and_shows_the_whole_base() {
    check_zdiff3(
        "a\nb\nc\nd\ne\n",
        "a\n1\n2\n3\ne\n",
        "a\n1\nX\n3\ne\n",
        "a\n1\n<<<<<<< ours\n2\n||||||| base\nb\nc\nd\n=======\nX\n>>>>>>> theirs\n3\ne\n",
    );
}

#[test]
fn marker_size_and_labels() {
    let mut opts = labelled(ConflictStyle::Diff3, None);
    opts.marker_size = 3;
    opts.labels.base = Some(String::new());
    opts.labels.theirs = None;
    check_with(
        &opts,
        "a\nb\nc\n",
        "a\nX\nc\n",
        "a\nY\nc\n",
        "a\n<<< ours\nX\n||| \nb\n===\nY\n>>>\nc\n",
    );
}

#[test]
fn missing_final_newline_gets_one_before_a_marker() {
    check(
        "a\nb",
        "a\nX",
        "a\nY",
        "a\n<<<<<<< ours\nX\n=======\nY\n>>>>>>> theirs\n",
    );
    // A clean merge keeps the missing newline.
    check("a\nb\nc", "A\nb\nc", "a\nb\nC", "A\nb\nC");
}

#[test]
fn markers_end_in_crlf_when_the_lines_do() {
    check(
        "a\r\nb\r\nc\r\n",
        "a\r\nX\r\nc\r\n",
        "a\r\nY\r\nc\r\n",
        "a\r\n<<<<<<< ours\r\nX\r\n=======\r\nY\r\n>>>>>>> theirs\r\nc\r\n",
    );
    // Mixed endings: LF wins.
    check(
        "a\nb\r\nc\r\n",
        "a\nX\r\nc\r\n",
        "a\nY\r\nc\r\n",
        "a\n<<<<<<< ours\nX\r\n=======\nY\r\n>>>>>>> theirs\nc\r\n",
    );
    // A CRLF file whose conflicting last line lacks its newline gets CRLF.
    check(
        "a\r\nb",
        "a\r\nX",
        "a\r\nY",
        "a\r\n<<<<<<< ours\r\nX\r\n=======\r\nY\r\n>>>>>>> theirs\r\n",
    );
}

#[test]
fn favors_resolve_after_refinement() {
    let (base, ours, theirs) = ("a\nb\nc\nd\ne\n", "a\n1\n2\n3\ne\n", "a\n1\nX\n3\ne\n");
    let ours_opts = labelled(ConflictStyle::Merge, Some(Favor::Ours));
    check_with(&ours_opts, base, ours, theirs, "a\n1\n2\n3\ne\n");
    let theirs_opts = labelled(ConflictStyle::Merge, Some(Favor::Theirs));
    check_with(&theirs_opts, base, ours, theirs, "a\n1\nX\n3\ne\n");
    let union = labelled(ConflictStyle::Merge, Some(Favor::Union));
    check_with(&union, base, ours, theirs, "a\n1\n2\nX\n3\ne\n");
    // Union adds a newline between a side that lacks one and the other side.
    check_with(&union, "a\nb", "a\nX", "a\nY", "a\nX\nY");
    let m = merge(base.as_bytes(), ours.as_bytes(), theirs.as_bytes(), &union);
    assert_eq!(m.favored_conflicts().len(), 1);
    assert!(m.is_clean());
}

#[test]
fn conflicts_are_data_with_line_ranges() {
    let m = merge(
        b"a\nb\nc\nd\ne\n",
        b"a\n1\n2\n3\ne\n",
        b"a\n1\nX\n3\ne\n",
        &MergeOptions::default(),
    );
    assert_eq!(
        m.conflicts(),
        &[Conflict {
            base: 1..4,
            ours: 2..3,
            theirs: 2..3,
        }]
    );
    let m = merge(
        b"a\nb\nc\nd\ne\n",
        b"a\n1\n2\n3\ne\n",
        b"a\n1\nX\n3\ne\n",
        &labelled(ConflictStyle::Diff3, None),
    );
    assert_eq!(
        m.conflicts(),
        &[Conflict {
            base: 1..4,
            ours: 1..4,
            theirs: 1..4,
        }]
    );
}

#[test]
fn binary_is_one_conflict_keeping_ours() {
    let m = merge(b"a\0b", b"ours\n", b"theirs\n", &MergeOptions::default());
    assert!(m.is_binary());
    assert_eq!(m.conflict_count(), 1);
    assert_eq!(m.render(), b"ours\n");
    // A NUL past the first 8000 bytes does not make a file binary.
    let mut late = vec![b'x'; BINARY_SNIFF_LEN];
    late.push(0);
    assert!(!is_binary(&late));
    assert!(is_binary(b"\0"));
}
