//! `check(base, ours, theirs, expected)` tables for the per-path rules of the tree merge.

use super::*;

fn file(s: &str) -> Entry {
    Entry::File {
        data: s.as_bytes().to_vec(),
        executable: false,
    }
}

fn exe(s: &str) -> Entry {
    Entry::File {
        data: s.as_bytes().to_vec(),
        executable: true,
    }
}

fn link(s: &str) -> Entry {
    Entry::Symlink {
        target: s.as_bytes().to_vec(),
    }
}

#[track_caller]
fn check(base: Option<Entry>, ours: Option<Entry>, theirs: Option<Entry>, expected: PathMerge) {
    let got = merge_entry(
        "p",
        base.as_ref(),
        ours.as_ref(),
        theirs.as_ref(),
        &MergeOptions::default(),
    );
    assert_eq!(got, expected);
}

#[test]
fn two_agreeing_versions_resolve_trivially() {
    check(None, None, None, PathMerge::Unchanged);
    check(
        Some(file("a")),
        Some(file("a")),
        Some(file("a")),
        PathMerge::Unchanged,
    );
    check(
        Some(file("a")),
        Some(file("b")),
        Some(file("a")),
        PathMerge::TakeOurs,
    );
    check(
        Some(file("a")),
        Some(file("a")),
        Some(file("b")),
        PathMerge::TakeTheirs,
    );
    check(
        Some(file("a")),
        Some(file("b")),
        Some(file("b")),
        PathMerge::TakeOurs,
    );
    check(None, None, Some(file("new")), PathMerge::TakeTheirs);
    check(None, Some(link("t")), Some(link("t")), PathMerge::TakeOurs);
    check(None, Some(Entry::Dir), None, PathMerge::TakeOurs);
}

#[test]
fn deletions_resolve_when_the_other_side_is_untouched() {
    check(Some(file("a")), None, Some(file("a")), PathMerge::Deleted);
    check(Some(file("a")), Some(file("a")), None, PathMerge::Deleted);
    check(Some(file("a")), None, None, PathMerge::Deleted);
}

#[test]
fn modify_delete_is_a_typed_conflict_keeping_the_modified_side() {
    let c = TreeConflict::ModifyDelete {
        deleted_by: Side::Theirs,
        modified: file("b"),
    };
    assert_eq!(c.best_effort(), file("b"));
    check(
        Some(file("a")),
        Some(file("b")),
        None,
        PathMerge::Conflict(c),
    );
    check(
        Some(file("a")),
        None,
        Some(exe("a")),
        PathMerge::Conflict(TreeConflict::ModifyDelete {
            deleted_by: Side::Ours,
            modified: exe("a"),
        }),
    );
}

#[test]
fn file_changes_merge_as_text_and_executable_bits_merge_three_way() {
    check(
        Some(file("a\nb\nc\n")),
        Some(exe("A\nb\nc\n")),
        Some(file("a\nb\nC\n")),
        PathMerge::Merged(exe("A\nb\nC\n")),
    );
    check(
        Some(exe("a\nb\nc\n")),
        Some(exe("A\nb\nc\n")),
        Some(file("a\nb\nC\n")),
        PathMerge::Merged(file("A\nb\nC\n")),
    );
}

#[test]
fn content_conflicts_carry_markers_labelled_with_the_path() {
    let got = merge_entry(
        "src/x.rs",
        Some(&file("a\nb\nc\n")),
        Some(&file("a\nX\nc\n")),
        Some(&file("a\nY\nc\n")),
        &MergeOptions::default(),
    );
    let expected = "a\n<<<<<<< ours:src/x.rs\nX\n=======\nY\n>>>>>>> theirs:src/x.rs\nc\n";
    let PathMerge::Conflict(TreeConflict::Content {
        merged_with_markers,
        regions,
        executable,
    }) = &got
    else {
        panic!("expected a content conflict, got {got:?}");
    };
    assert_eq!(String::from_utf8_lossy(merged_with_markers), expected);
    assert_eq!(regions.len(), 1);
    assert!(!executable);
    assert_eq!(
        got.result(None, None),
        Some(Entry::File {
            data: expected.into(),
            executable: false
        })
    );
}

#[test]
fn add_add_merges_against_an_empty_base() {
    // Same start, different tails: the common head merges, the tails conflict.
    let got = merge_entry(
        "p",
        None,
        Some(&file("same\nours\n")),
        Some(&file("same\ntheirs\n")),
        &MergeOptions::default(),
    );
    assert!(
        matches!(got, PathMerge::Conflict(TreeConflict::AddAdd { .. })),
        "{got:?}"
    );
    // Same content, different executable bits: a mode conflict.
    check(
        None,
        Some(exe("x\n")),
        Some(file("x\n")),
        PathMerge::Conflict(TreeConflict::Mode {
            data: b"x\n".to_vec(),
            ours_exec: true,
            theirs_exec: false,
        }),
    );
}

#[test]
fn type_changes_and_symlinks_are_typed_conflicts() {
    check(
        Some(file("a")),
        Some(link("t")),
        Some(file("b")),
        PathMerge::Conflict(TreeConflict::TypeChange {
            base: Some(EntryKind::File),
            ours: link("t"),
            theirs: file("b"),
        }),
    );
    check(
        None,
        Some(Entry::Dir),
        Some(file("b")),
        PathMerge::Conflict(TreeConflict::TypeChange {
            base: None,
            ours: Entry::Dir,
            theirs: file("b"),
        }),
    );
    check(
        Some(link("a")),
        Some(link("b")),
        Some(link("c")),
        PathMerge::Conflict(TreeConflict::SymlinkTarget {
            base: Some(b"a".to_vec()),
            ours: b"b".to_vec(),
            theirs: b"c".to_vec(),
        }),
    );
}

#[test]
fn binary_files_resolve_only_trivially() {
    check(
        Some(file("a\0")),
        Some(exe("a\0")),
        Some(file("b\0")),
        PathMerge::Merged(exe("b\0")),
    );
    check(
        Some(file("a\0")),
        Some(file("b\0")),
        Some(file("c\0")),
        PathMerge::Conflict(TreeConflict::Binary {
            ours: file("b\0"),
            theirs: file("c\0"),
        }),
    );
}

#[test]
fn tree_merge_lists_every_path() {
    let map = |v: &[(&str, Entry)]| -> BTreeMap<String, Entry> {
        v.iter()
            .map(|(p, e)| ((*p).to_owned(), e.clone()))
            .collect()
    };
    let base = map(&[
        ("keep", file("k")),
        ("del", file("d")),
        ("both", file("1\n2\n3\n")),
    ]);
    let ours = map(&[
        ("keep", file("k")),
        ("both", file("1\nX\n3\n")),
        ("mine", file("m")),
    ]);
    let theirs = map(&[
        ("keep", file("k")),
        ("del", file("d")),
        ("both", file("1\nY\n3\n")),
    ]);
    let m = merge_trees(&base, &ours, &theirs, &MergeOptions::default());
    let kinds: Vec<(&str, bool)> = m
        .paths
        .iter()
        .map(|(p, r)| (p.as_str(), r.is_conflict()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("both", true),
            ("del", false),
            ("keep", false),
            ("mine", false)
        ]
    );
    assert_eq!(m.paths["del"], PathMerge::Deleted);
    assert_eq!(m.paths["mine"], PathMerge::TakeOurs);
    assert_eq!(m.paths["keep"], PathMerge::Unchanged);
    assert_eq!(m.conflict_count(), 1);
    assert!(!m.is_clean());
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    fn entry() -> impl Strategy<Value = Option<Entry>> {
        let text = prop::sample::select(vec!["", "a\n", "b\n", "a\nb\n", "a\nc\n", "x\0"]);
        prop_oneof![
            Just(None),
            (text, any::<bool>()).prop_map(|(t, executable)| Some(Entry::File {
                data: t.into(),
                executable
            })),
            prop::sample::select(vec!["t1", "t2"]).prop_map(|t| Some(link(t))),
            Just(Some(Entry::Dir)),
        ]
    }

    fn run(b: &Option<Entry>, o: &Option<Entry>, t: &Option<Entry>) -> PathMerge {
        merge_entry(
            "p",
            b.as_ref(),
            o.as_ref(),
            t.as_ref(),
            &MergeOptions::default(),
        )
    }

    /// The same resolution seen from the other side.
    fn mirrored(m: PathMerge) -> PathMerge {
        match m {
            PathMerge::TakeOurs => PathMerge::TakeTheirs,
            PathMerge::TakeTheirs => PathMerge::TakeOurs,
            PathMerge::Conflict(TreeConflict::ModifyDelete {
                deleted_by,
                modified,
            }) => PathMerge::Conflict(TreeConflict::ModifyDelete {
                deleted_by: match deleted_by {
                    Side::Ours => Side::Theirs,
                    Side::Theirs => Side::Ours,
                },
                modified,
            }),
            other => other,
        }
    }

    proptest! {
        /// When two of the three versions agree, the result is the odd one out (or the shared
        /// change), and never a conflict.
        #[test]
        fn two_agreeing_versions_never_conflict(b in entry(), o in entry(), t in entry()) {
            let m = run(&b, &o, &t);
            let result = m.result(o.as_ref(), t.as_ref());
            if o == t {
                prop_assert!(!m.is_conflict());
                prop_assert_eq!(result, o);
            } else if o == b {
                prop_assert!(!m.is_conflict());
                prop_assert_eq!(result, t);
            } else if t == b {
                prop_assert!(!m.is_conflict());
                prop_assert_eq!(result, o);
            } else if o.is_none() || t.is_none() {
                let is_modify_delete = matches!(m, PathMerge::Conflict(TreeConflict::ModifyDelete { .. }));
                prop_assert!(is_modify_delete, "{:?}", m);
                prop_assert_eq!(result, o.or(t));
            }
        }

        /// Swapping the sides swaps the resolution (conflict texts aside, whose markers
        /// depend on which side is ours).
        #[test]
        fn swapping_sides_mirrors_the_resolution(b in entry(), o in entry(), t in entry()) {
            let m = run(&b, &o, &t);
            let swapped = run(&b, &t, &o);
            prop_assert_eq!(m.is_conflict(), swapped.is_conflict());
            match (&m, &swapped) {
                (PathMerge::Conflict(TreeConflict::Content { .. } | TreeConflict::AddAdd { .. } | TreeConflict::Mode { .. } | TreeConflict::TypeChange { .. } | TreeConflict::SymlinkTarget { .. } | TreeConflict::Binary { .. }), _) => {}
                (PathMerge::TakeOurs, PathMerge::TakeOurs) if o == t => {}
                _ => prop_assert_eq!(mirrored(m), swapped),
            }
        }
    }
}

#[test]
fn file_directory_clashes_across_paths_are_type_changes() {
    let map = |v: &[(&str, Entry)]| -> BTreeMap<String, Entry> {
        v.iter()
            .map(|(p, e)| ((*p).to_owned(), e.clone()))
            .collect()
    };
    let base = map(&[]);
    let ours = map(&[("a", file("x\n"))]);
    let theirs = map(&[("a/b", file("y\n"))]);
    let m = merge_trees(&base, &ours, &theirs, &MergeOptions::default());
    assert_eq!(
        m.paths["a"],
        PathMerge::Conflict(TreeConflict::TypeChange {
            base: None,
            ours: file("x\n"),
            theirs: Entry::Dir,
        })
    );
    assert_eq!(m.paths["a/b"], PathMerge::TakeTheirs);
    assert_eq!(m.conflict_count(), 1);
    // A file replaced by a directory on one side only is no clash.
    let base = map(&[("a", file("x\n"))]);
    let theirs = map(&[("a/b", file("y\n"))]);
    let m = merge_trees(&base, &base, &theirs, &MergeOptions::default());
    assert!(m.is_clean(), "{m:?}");
    assert_eq!(m.paths["a"], PathMerge::Deleted);
}
