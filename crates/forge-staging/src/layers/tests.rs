//! Unit tests of the layer store: commits, lookups through the stack, folding.

use super::*;

fn file(s: &str) -> Option<Entry> {
    Some(Entry::File {
        data: s.as_bytes().to_vec(),
        executable: false,
    })
}

fn change(path: &str, entry: Option<Entry>) -> LayerChange {
    LayerChange {
        path: path.into(),
        entry,
    }
}

fn setup() -> (tempfile::TempDir, Store) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = tmp.path().join("repo");
    fs::create_dir_all(repo.join("d/e")).expect("mkdir");
    fs::write(repo.join("a"), "base a").expect("write");
    fs::write(repo.join("d/x"), "base x").expect("write");
    fs::write(repo.join("d/e/y"), "base y").expect("write");
    let (store, _) =
        Store::open(&repo, &tmp.path().join("run/layers"), sys::is_root()).expect("open");
    (tmp, store)
}

#[test]
fn commit_and_read_through_generations() {
    let (_tmp, store) = setup();
    assert_eq!(store.head(), 0);
    let g1 = store
        .commit_plain(&[change("a", file("one")), change("d", None)])
        .expect("commit 1");
    assert_eq!(g1, 1);
    let g2 = store
        .commit_plain(&[
            change("d", Some(Entry::Dir)),
            change("d/z", file("z")),
            change("a", None),
        ])
        .expect("commit 2");
    assert_eq!(g2, 2);

    assert_eq!(store.read(0, "a").expect("read"), file("base a"));
    assert_eq!(store.read(1, "a").expect("read"), file("one"));
    assert_eq!(store.read(2, "a").expect("read"), None);
    assert_eq!(store.read(0, "d/e/y").expect("read"), file("base y"));
    assert_eq!(store.read(1, "d/e/y").expect("read"), None);
    assert_eq!(store.read(1, "d").expect("read"), None);
    assert_eq!(store.read(2, "d").expect("read"), Some(Entry::Dir));
    // The re-created directory must not resurrect the base's contents.
    assert_eq!(store.read(2, "d/x").expect("read"), None);
    assert_eq!(store.read(2, "d/z").expect("read"), file("z"));
    let mut sub: Vec<String> = store
        .subtree(2, "")
        .expect("subtree")
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    sub.sort();
    assert_eq!(sub, ["d", "d/z"]);
    assert!(matches!(
        store.read(3, "a"),
        Err(StagingError::NoSuchGeneration { generation: 3, .. })
    ));
}

#[test]
fn reopen_finds_layers_and_drops_half_written() {
    let (tmp, store) = setup();
    store
        .commit_plain(&[change("new", file("n"))])
        .expect("commit");
    let layers_dir = tmp.path().join("run/layers");
    fs::create_dir_all(layers_dir.join(".tmp-2-99/tree")).expect("mkdir");
    drop(store);
    let (store, removed) =
        Store::open(&tmp.path().join("repo"), &layers_dir, sys::is_root()).expect("reopen");
    assert_eq!(store.head(), 1);
    assert_eq!(removed, [layers_dir.join(".tmp-2-99")]);
    assert_eq!(store.read(1, "new").expect("read"), file("n"));
}

#[test]
fn invalid_changes_are_rejected_with_the_path() {
    let (_tmp, store) = setup();
    let err = store
        .commit_plain(&[change("a/b", file("x"))])
        .expect_err("parent is a file");
    assert!(err.to_string().contains("a/b"), "{err}");
    let err = store
        .commit_plain(&[change("d", None), change("d/new", file("x"))])
        .expect_err("parent deleted");
    assert!(err.to_string().contains("d/new"), "{err}");
    let err = store
        .commit_plain(&[change("../x", file("x"))])
        .expect_err("escape");
    assert!(err.to_string().contains("../x"), "{err}");
    assert_eq!(store.head(), 0);
}

#[test]
fn fold_nets_out_the_stack() {
    let (_tmp, store) = setup();
    store
        .commit_plain(&[change("d", None), change("a", file("1"))])
        .expect("c1");
    store
        .commit_plain(&[change("d", Some(Entry::Dir)), change("d/q", file("q"))])
        .expect("c2");
    store.commit_plain(&[change("a", None)]).expect("c3");
    let folded = fold(&store.stack(3).expect("stack"));
    let ops: Vec<(&str, Op)> = folded.iter().map(|(p, f)| (p.as_str(), f.op)).collect();
    assert_eq!(
        ops,
        [("a", Op::Delete), ("d", Op::Opaque), ("d/q", Op::File)]
    );
}

#[test]
fn absent_parents_are_created_implicitly() {
    let (_tmp, store) = setup();
    // Another task removed `d`; this change set still writes below it.
    store.commit_plain(&[change("d", None)]).expect("c1");
    let g = store
        .commit_plain(&[change("d/e/new", file("n"))])
        .expect("c2");
    assert_eq!(store.read(g, "d").expect("read"), Some(Entry::Dir));
    assert_eq!(store.read(g, "d/e").expect("read"), Some(Entry::Dir));
    assert_eq!(store.read(g, "d/e/new").expect("read"), file("n"));
    assert_eq!(
        store.read(g, "d/e/y").expect("read"),
        None,
        "deleted contents stay deleted"
    );
    let stack = store.stack(g).expect("stack");
    let ops: Vec<(&str, Op)> = stack[1].ops.iter().map(|(p, o)| (p.as_str(), *o)).collect();
    assert_eq!(
        ops,
        [("d", Op::Dir), ("d/e", Op::Dir), ("d/e/new", Op::File)]
    );
}

#[test]
fn trust_09_labels_are_kept_in_the_manifest() {
    let (tmp, store) = setup();
    store
        .commit_labelled(
            &[change("a", file("one"))],
            &crate::ignores::Ignores::plain(&[], false),
            Some("task one"),
        )
        .expect("commit 1");
    store
        .commit_plain(&[change("a", file("two"))])
        .expect("commit 2");
    let expected = vec![(1, Some("task one".to_owned())), (2, None)];
    assert_eq!(store.labels(), expected);
    let (reopened, _) = Store::open(
        &tmp.path().join("repo"),
        &tmp.path().join("run/layers"),
        sys::is_root(),
    )
    .expect("reopen");
    assert_eq!(reopened.labels(), expected);
}

/// Unmounts a tmpfs when dropped.
struct TmpfsMount(PathBuf);

impl Drop for TmpfsMount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// A disk that fills up halfway through a commit: the temporary layer is removed.
#[test]
fn trust_18_a_failed_commit_leaves_no_temporary_layer() {
    if !sys::is_root() {
        assert!(
            std::env::var_os("FORGE_ALLOW_SKIP_OVERLAY").is_some(),
            "mounting a small tmpfs needs root (set FORGE_ALLOW_SKIP_OVERLAY to skip)"
        );
        eprintln!("not root: skipping the full-disk commit test");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = tmp.path().join("repo");
    fs::create_dir_all(&repo).expect("mkdir");
    let layers = tmp.path().join("layers");
    fs::create_dir_all(&layers).expect("mkdir");
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
        .arg(&layers)
        .status()
        .expect("mount runs");
    assert!(mounted.success(), "mount a tmpfs on {}", layers.display());
    let _mount = TmpfsMount(layers.clone());
    let (store, _) = Store::open(&repo, &layers, true).expect("open");
    let big = "x".repeat(200 * 1024);
    let changes = [change("a", file(&big)), change("b", file(&big))];
    let err = store.commit_plain(&changes).expect_err("the disk is full");
    assert!(err.to_string().contains("No space left"), "{err}");
    let left: Vec<String> = fs::read_dir(&layers)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, Vec::<String>::new());
    assert_eq!(store.head(), 0);
    store
        .commit_plain(&[change("a", file("small"))])
        .expect("the space is back");
}
