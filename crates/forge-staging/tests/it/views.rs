//! Views of every backend: collecting edits, generations, rejection of unsafe entries,
//! directory renames, compaction of long overlay stacks.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use forge_staging::{
    Backend, ChangeKind, Entry, LayerChange, RejectReason, Staging, StagingOptions,
};

use crate::support::{Setup, fixture, make_repo, overlay_ok, setups, tree_digest};

fn file(s: &str) -> Option<Entry> {
    Some(Entry::File {
        data: s.as_bytes().to_vec(),
        executable: false,
    })
}

fn summary(staging_changes: &forge_staging::ChangeSet) -> Vec<(String, ChangeKind)> {
    staging_changes
        .changes
        .iter()
        .map(|c| (c.path.clone(), c.kind))
        .collect()
}

#[test]
fn backend_names_round_trip() {
    for b in Backend::ALL {
        assert_eq!(b.to_string().parse::<Backend>().expect("parses"), b);
    }
    assert!("auto".parse::<Backend>().is_err());
}

#[test]
fn edits_are_collected_and_base_untouched_on_every_backend() {
    for setup in setups() {
        let backend = setup.backend;
        let (tmp, repo, staging) = fixture(setup);
        let before = tree_digest(&repo);
        let view = staging.create_view(0, "v1").expect("create view");
        let v = view.path();
        assert_eq!(
            fs::read_to_string(v.join("src/lib.rs")).expect("read"),
            "pub fn f() -> u32 {\n    1\n}\n"
        );
        fs::write(v.join("src/lib.rs"), "changed\n").expect("write");
        fs::remove_file(v.join("docs/a.md")).expect("rm");
        fs::remove_dir_all(v.join("src/util")).expect("rm -r");
        fs::write(v.join("new.txt"), "new\n").expect("write");
        fs::set_permissions(v.join("README.md"), fs::Permissions::from_mode(0o755)).expect("chmod");
        // Worktree views leave out the paths forge ignores.
        if backend != Backend::Worktree {
            fs::write(v.join("target/debug/out"), "ignored\n").expect("write ignored");
        }
        fs::remove_file(v.join("link")).expect("rm link");
        std::os::unix::fs::symlink("src/main.rs", v.join("link")).expect("symlink");
        let got = view.collect().expect("collect");
        let want = vec![
            ("README.md".to_owned(), ChangeKind::ModeChanged),
            ("docs/a.md".to_owned(), ChangeKind::Deleted),
            ("link".to_owned(), ChangeKind::Modified),
            ("new.txt".to_owned(), ChangeKind::Added),
            ("src/lib.rs".to_owned(), ChangeKind::Modified),
            ("src/util".to_owned(), ChangeKind::Deleted),
            ("src/util/mod.rs".to_owned(), ChangeKind::Deleted),
            ("src/util/x.rs".to_owned(), ChangeKind::Deleted),
        ];
        assert_eq!(summary(&got), want, "backend {backend}");
        assert!(
            got.rejected.is_empty(),
            "backend {backend}: {:?}",
            got.rejected
        );

        let g1 = staging.commit(&got.to_layer_changes()).expect("commit");
        assert_eq!(
            staging.read(g1, "src/lib.rs").expect("read"),
            file("changed\n")
        );
        assert_eq!(staging.read(g1, "src/util/x.rs").expect("read"), None);
        assert_eq!(
            staging.read(0, "src/util/x.rs").expect("read"),
            file("pub const X: u8 = 1;\n")
        );
        // The old view keeps showing generation 0 plus its own edits.
        assert_eq!(
            fs::read_to_string(v.join("new.txt")).expect("read"),
            "new\n"
        );
        let v2 = staging.create_view(g1, "v2").expect("view of g1");
        assert_eq!(
            fs::read_to_string(v2.path().join("src/lib.rs")).expect("read"),
            "changed\n"
        );
        assert!(!v2.path().join("src/util").exists(), "backend {backend}");
        assert!(
            v2.collect().expect("collect").is_empty(),
            "backend {backend}: fresh view has changes"
        );
        drop(view);
        v2.discard().expect("discard");
        staging.wait_for_teardown();
        assert_eq!(
            tree_digest(&repo),
            before,
            "backend {backend} changed the base"
        );
        assert_eq!(
            fs::read_dir(tmp.path().join("run/views"))
                .expect("views")
                .count(),
            0
        );
    }
}

#[test]
fn type_changes_between_file_dir_and_symlink() {
    for setup in setups() {
        let backend = setup.backend;
        let (_tmp, _repo, staging) = fixture(setup);
        let view = staging.create_view(0, "v").expect("view");
        let v = view.path();
        fs::remove_file(v.join("README.md")).expect("rm");
        fs::create_dir(v.join("README.md")).expect("mkdir");
        fs::write(v.join("README.md/inner"), "i").expect("write");
        fs::remove_dir_all(v.join("docs")).expect("rm -r");
        fs::write(v.join("docs"), "now a file").expect("write");
        fs::remove_file(v.join("src/main.rs")).expect("rm");
        std::os::unix::fs::symlink("lib.rs", v.join("src/main.rs")).expect("symlink");
        let got = view.collect().expect("collect");
        let want = vec![
            ("README.md".to_owned(), ChangeKind::TypeChanged),
            ("README.md/inner".to_owned(), ChangeKind::Added),
            ("docs".to_owned(), ChangeKind::TypeChanged),
            ("docs/a.md".to_owned(), ChangeKind::Deleted),
            ("docs/deep".to_owned(), ChangeKind::Deleted),
            ("docs/deep/b.md".to_owned(), ChangeKind::Deleted),
            ("src/main.rs".to_owned(), ChangeKind::TypeChanged),
        ];
        assert_eq!(summary(&got), want, "backend {backend}");
        let g = staging.commit(&got.to_layer_changes()).expect("commit");
        assert_eq!(
            staging.read(g, "README.md").expect("read"),
            Some(Entry::Dir)
        );
        assert_eq!(staging.read(g, "docs").expect("read"), file("now a file"));
        assert_eq!(staging.read(g, "docs/a.md").expect("read"), None);
        let v2 = staging.create_view(g, "v2").expect("view");
        assert_eq!(
            fs::read_to_string(v2.path().join("README.md/inner")).expect("read"),
            "i"
        );
        assert!(
            v2.collect().expect("collect").is_empty(),
            "backend {backend}"
        );
    }
}

#[test]
fn fifos_sockets_and_escaping_symlinks_are_rejected() {
    for setup in setups() {
        let backend = setup.backend;
        let (_tmp, _repo, staging) = fixture(setup);
        let view = staging.create_view(0, "v").expect("view");
        let v = view.path();
        let status = std::process::Command::new("mkfifo")
            .arg(v.join("fifo"))
            .status()
            .expect("mkfifo runs");
        assert!(status.success());
        let _sock = std::os::unix::net::UnixListener::bind(v.join("sock")).expect("bind socket");
        std::os::unix::fs::symlink("/etc/passwd", v.join("abs")).expect("symlink");
        std::os::unix::fs::symlink("../../outside", v.join("src/up")).expect("symlink");
        std::os::unix::fs::symlink("../README.md", v.join("src/ok")).expect("symlink");
        let bad_name = std::ffi::OsStr::from_encoded_bytes_unchecked_safe(b"bad\xffname");
        fs::write(v.join(bad_name), "x").expect("write non-UTF-8 name");
        let got = view.collect().expect("collect");
        let rejected: Vec<(String, RejectReason)> = got
            .rejected
            .iter()
            .map(|r| (r.path.clone(), r.reason.clone()))
            .collect();
        assert_eq!(
            rejected,
            vec![
                (
                    "abs".to_owned(),
                    RejectReason::EscapingSymlink("/etc/passwd".into())
                ),
                ("bad\u{fffd}name".to_owned(), RejectReason::NonUtf8Name),
                ("fifo".to_owned(), RejectReason::Special("fifo")),
                ("sock".to_owned(), RejectReason::Special("socket")),
                (
                    "src/up".to_owned(),
                    RejectReason::EscapingSymlink("../../outside".into())
                ),
            ],
            "backend {backend}"
        );
        assert_eq!(
            summary(&got),
            vec![("src/ok".to_owned(), ChangeKind::Added)],
            "backend {backend}"
        );
        assert!(
            got.rejected[0]
                .reason
                .to_string()
                .contains("leaves the view")
        );
    }
}

/// `OsStr::from_bytes`, under a name that reads well above.
trait FromBytes {
    fn from_encoded_bytes_unchecked_safe(b: &[u8]) -> &std::ffi::OsStr;
}

impl FromBytes for std::ffi::OsStr {
    fn from_encoded_bytes_unchecked_safe(b: &[u8]) -> &std::ffi::OsStr {
        std::os::unix::ffi::OsStrExt::from_bytes(b)
    }
}

#[test]
fn overlay_directory_rename_is_collected_as_delete_plus_add() {
    if !overlay_ok() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = tmp.path().join("repo");
    make_repo(&repo);
    let staging = Staging::open(
        &repo,
        &tmp.path().join("run"),
        StagingOptions::with_backend(Some(Backend::Overlay)),
    )
    .expect("open");
    // A layer below, so the renamed directory spans the repository and a layer.
    let g1 = staging
        .commit(&[LayerChange {
            path: "src/util/y.rs".into(),
            entry: file("y"),
        }])
        .expect("commit");
    let view = staging.create_view(g1, "v").expect("view");
    let v = view.path();
    fs::rename(v.join("src/util"), v.join("helpers")).expect("rename(2) of a lower directory");
    fs::write(v.join("helpers/z.rs"), "z").expect("write");
    fs::rename(v.join("docs"), v.join("src/docs")).expect("rename into another dir");
    let got = view.collect().expect("collect");
    let want: Vec<(String, ChangeKind)> = [
        ("docs", ChangeKind::Deleted),
        ("docs/a.md", ChangeKind::Deleted),
        ("docs/deep", ChangeKind::Deleted),
        ("docs/deep/b.md", ChangeKind::Deleted),
        ("helpers", ChangeKind::Added),
        ("helpers/mod.rs", ChangeKind::Added),
        ("helpers/x.rs", ChangeKind::Added),
        ("helpers/y.rs", ChangeKind::Added),
        ("helpers/z.rs", ChangeKind::Added),
        ("src/docs", ChangeKind::Added),
        ("src/docs/a.md", ChangeKind::Added),
        ("src/docs/deep", ChangeKind::Added),
        ("src/docs/deep/b.md", ChangeKind::Added),
        ("src/util", ChangeKind::Deleted),
        ("src/util/mod.rs", ChangeKind::Deleted),
        ("src/util/x.rs", ChangeKind::Deleted),
        ("src/util/y.rs", ChangeKind::Deleted),
    ]
    .into_iter()
    .map(|(p, k)| (p.to_owned(), k))
    .collect();
    assert_eq!(summary(&got), want);
    let g2 = staging.commit(&got.to_layer_changes()).expect("commit");
    assert_eq!(staging.read(g2, "helpers/y.rs").expect("read"), file("y"));
    assert_eq!(
        staging.read(g2, "src/docs/deep/b.md").expect("read"),
        file("b\n")
    );
    assert_eq!(staging.read(g2, "docs").expect("read"), None);
}

#[test]
fn long_overlay_stacks_are_compacted_without_disturbing_live_views() {
    for setup in setups() {
        if setup.backend == Backend::Overlay {
            compact_long_stack(setup);
        }
    }
}

fn compact_long_stack(setup: Setup) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = tmp.path().join("repo");
    make_repo(&repo);
    let mut opts = setup.options();
    opts.max_overlay_layers = 4;
    let flat = if setup.renames_lower_dirs() {
        "run/flat"
    } else {
        "run/flat-user"
    };
    let staging = Staging::open(&repo, &tmp.path().join("run"), opts).expect("open");
    let early = staging.create_view(0, "early").expect("view");
    let mut views = Vec::new();
    for i in 1..=12u64 {
        let mut changes = vec![LayerChange {
            path: format!("gen{i}"),
            entry: file(&i.to_string()),
        }];
        if i == 3 {
            changes.push(LayerChange {
                path: "docs".into(),
                entry: None,
            });
        }
        if i == 7 {
            changes.push(LayerChange {
                path: "docs".into(),
                entry: Some(Entry::Dir),
            });
            changes.push(LayerChange {
                path: "docs/new.md".into(),
                entry: file("new"),
            });
        }
        if i == 9 {
            changes.push(LayerChange {
                path: "gen2".into(),
                entry: None,
            });
        }
        let g = staging.commit(&changes).expect("commit");
        let view = staging
            .create_view(g, &format!("g{g}"))
            .expect("view past the layer limit");
        for path in staging.list(g, "").expect("list") {
            if staging.is_ignored(&path) {
                continue;
            }
            let on_disk = fs::symlink_metadata(view.path().join(&path)).is_ok();
            assert!(on_disk, "generation {g}: {path} missing from the view");
        }
        assert_eq!(
            view.path().join("docs/a.md").exists(),
            g < 3,
            "generation {g}: deleted file resurfaced"
        );
        assert_eq!(
            view.path().join("gen2").exists(),
            (2..9).contains(&g),
            "generation {g}"
        );
        assert!(
            view.collect().expect("collect").is_empty(),
            "generation {g}: fresh view has changes"
        );
        views.push(view);
    }
    assert!(
        tmp.path().join(flat).read_dir().expect("flat dir").count() > 0,
        "{setup}: no folded layer was built"
    );
    assert_eq!(
        fs::read_to_string(early.path().join("docs/a.md")).expect("early view intact"),
        "a\n"
    );
    assert!(!early.path().join("gen1").exists());
}

#[test]
fn view_names_and_generations_are_checked() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = tmp.path().join("repo");
    make_repo(&repo);
    let staging = Staging::open(
        &repo,
        &tmp.path().join("run"),
        StagingOptions::with_backend(Some(Backend::Copy)),
    )
    .expect("open");
    let _v = staging.create_view(0, "same").expect("view");
    let err = staging.create_view(0, "same").expect_err("duplicate name");
    assert!(err.to_string().contains("same"), "{err}");
    assert!(staging.create_view(0, "a/b").is_err());
    let err = staging
        .create_view(5, "future")
        .expect_err("no such generation");
    assert!(err.to_string().contains("generation 5"), "{err}");
    let err = Staging::open(&repo, &repo.join("run"), StagingOptions::default())
        .expect_err("run dir inside repo");
    assert!(err.to_string().contains("inside the repository"), "{err}");
}

#[test]
fn auto_reports_its_choice_and_reflink_falls_back_with_a_reason() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = tmp.path().join("repo");
    make_repo(&repo);
    let auto = Staging::open(
        &repo,
        &tmp.path().join("run-auto"),
        StagingOptions::default(),
    )
    .expect("open");
    assert!(
        auto.backend_reason().starts_with("auto:"),
        "{}",
        auto.backend_reason()
    );
    if overlay_ok() {
        assert_eq!(auto.backend(), Backend::Overlay);
    }
    let reflink = Staging::open(
        &repo,
        &tmp.path().join("run-reflink"),
        StagingOptions::with_backend(Some(Backend::Reflink)),
    )
    .expect("open");
    // Set where the temporary directory clones files (btrfs, XFS): reflink must then be
    // used, not fall back.
    if std::env::var("FORGE_EXPECT_REFLINK").as_deref() == Ok("1") {
        assert_eq!(
            reflink.backend(),
            Backend::Reflink,
            "{}",
            reflink.backend_reason()
        );
    }
    if reflink.backend() == Backend::Copy {
        assert!(
            reflink
                .backend_reason()
                .contains("reflink asked for but unavailable"),
            "{}",
            reflink.backend_reason()
        );
    }
}

#[test]
fn reopening_a_run_dir_resumes_at_its_head() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = tmp.path().join("repo");
    make_repo(&repo);
    let run = tmp.path().join("run");
    let opts = StagingOptions::with_backend(Some(Backend::Copy));
    let staging = Staging::open(&repo, &run, opts.clone()).expect("open");
    staging
        .commit(&[LayerChange {
            path: "a".into(),
            entry: file("1"),
        }])
        .expect("commit");
    staging
        .commit(&[LayerChange {
            path: "a".into(),
            entry: file("2"),
        }])
        .expect("commit");
    drop(staging);
    // A crash while writing layer 3.
    fs::create_dir_all(run.join("layers/.tmp-3-1234/tree")).expect("mkdir");
    fs::write(run.join("layers/.tmp-3-1234/tree/a"), "half").expect("write");
    let staging = Staging::open(&repo, &run, opts).expect("reopen");
    assert_eq!(staging.head(), 2);
    assert_eq!(staging.read(1, "a").expect("read"), file("1"));
    assert_eq!(staging.read(2, "a").expect("read"), file("2"));
    assert!(!run.join("layers/.tmp-3-1234").exists());
    assert_eq!(staging.commit(&[]).expect("commit"), 3);
}

#[test]
fn staging_is_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Staging>();
    assert_send_sync::<forge_staging::View>();
    assert_send_sync::<forge_staging::ChangeSet>();
    assert_send_sync::<forge_staging::StagingError>();

    // Every setup whose views are cheap (mounts); copy when there is none.
    let mut cheap: Vec<Setup> = setups()
        .into_iter()
        .filter(|s| s.backend == Backend::Overlay)
        .collect();
    if cheap.is_empty() {
        cheap.push(setups()[0]);
    }
    for setup in cheap {
        two_threads_commit_through_views(setup);
    }
}

fn two_threads_commit_through_views(setup: Setup) {
    let (_tmp, _repo, staging) = fixture(setup);
    // Agents on two threads, each in its own view of the head when it started, committing
    // their changes; the commits serialize and every change lands in its own generation.
    std::thread::scope(|scope| {
        for t in 0..2 {
            let staging = &staging;
            scope.spawn(move || {
                for i in 0..5 {
                    let g = staging.head();
                    let view = staging.create_view(g, &format!("t{t}-{i}")).expect("view");
                    fs::write(
                        view.path().join(format!("t{t}-{i}.txt")),
                        format!("{t} {i}"),
                    )
                    .expect("write");
                    let changes = view.collect().expect("collect");
                    assert_eq!(changes.changes.len(), 1);
                    staging.commit(&changes.to_layer_changes()).expect("commit");
                }
            });
        }
    });
    assert_eq!(staging.head(), 10);
    for t in 0..2 {
        for i in 0..5 {
            let path = format!("t{t}-{i}.txt");
            assert_eq!(
                staging.read(10, &path).expect("read"),
                file(&format!("{t} {i}"))
            );
        }
    }
}
