//! The public API as the engine uses it: text merge, rendering, tree merge.

use std::collections::BTreeMap;

use forge_merge::{
    ConflictStyle, Entry, Favor, Labels, MergeOptions, PathMerge, TreeConflict, merge, merge_trees,
};

#[test]
fn text_merge_round_trip() {
    let opts = MergeOptions {
        style: ConflictStyle::Zdiff3,
        labels: Labels {
            ours: Some("HEAD".into()),
            base: Some("g1".into()),
            theirs: Some("task".into()),
        },
        ..MergeOptions::default()
    };
    let m = merge(b"x\ny\nz\n", b"x\nY1\nz\n", b"x\nY2\nz\n", &opts);
    assert_eq!(m.conflict_count(), 1);
    assert_eq!(
        String::from_utf8(m.render()).expect("utf-8"),
        "x\n<<<<<<< HEAD\nY1\n||||||| g1\ny\n=======\nY2\n>>>>>>> task\nz\n"
    );
    let favored = MergeOptions {
        favor: Some(Favor::Theirs),
        ..opts
    };
    let m = merge(b"x\ny\nz\n", b"x\nY1\nz\n", b"x\nY2\nz\n", &favored);
    assert!(m.is_clean());
    assert_eq!(m.render(), b"x\nY2\nz\n");
}

#[test]
fn tree_merge_gives_writable_results() {
    let file = |s: &str| Entry::File {
        data: s.into(),
        executable: false,
    };
    let base = BTreeMap::from([("a".to_owned(), file("1\n")), ("b".to_owned(), file("2\n"))]);
    let ours = BTreeMap::from([("a".to_owned(), file("1\n")), ("b".to_owned(), file("3\n"))]);
    let theirs = BTreeMap::from([("b".to_owned(), file("4\n"))]);
    let m = merge_trees(&base, &ours, &theirs, &MergeOptions::default());
    assert_eq!(m.paths["a"], PathMerge::Deleted);
    assert_eq!(m.paths["a"].result(ours.get("a"), theirs.get("a")), None);
    let PathMerge::Conflict(c @ TreeConflict::Content { .. }) = &m.paths["b"] else {
        panic!("expected a content conflict: {:?}", m.paths["b"]);
    };
    let Entry::File { data, .. } = c.best_effort() else {
        panic!("a content conflict writes a file");
    };
    assert!(data.starts_with(b"<<<<<<< ours:b\n3\n=======\n4\n>>>>>>> theirs:b\n"));
}
