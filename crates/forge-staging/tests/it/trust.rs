//! Collection never deletes what it ignores (issue 13 item 6) and reports what it cannot
//! merge (item 20).

use std::fs;
use std::path::Path;

use forge_staging::{Backend, ChangeKind, LayerChange, RejectReason, Staging, StagingOptions};

use crate::support::{git, setups};

fn write(root: &Path, path: &str, data: &str) {
    let p = root.join(path);
    fs::create_dir_all(p.parent().expect("has a parent")).expect("mkdir");
    fs::write(p, data).expect("write");
}

/// A repository with `vendor/README` tracked and `vendor/lib` a nested repository (not
/// known to the outer one) with a commit of its own.
fn repo_with_nested(root: &Path) -> std::path::PathBuf {
    let repo = root.join("repo");
    fs::create_dir(&repo).expect("mkdir");
    git(&repo, &["init", "-q"]);
    write(&repo, "a.txt", "a\n");
    write(&repo, "vendor/README", "vendored\n");
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "outer"]);
    let lib = repo.join("vendor/lib");
    fs::create_dir_all(&lib).expect("mkdir");
    git(&lib, &["init", "-q"]);
    write(&lib, "x.c", "int x;\n");
    git(&lib, &["add", "-A"]);
    git(&lib, &["commit", "-q", "-m", "unpushed"]);
    repo
}

#[test]
fn trust_06_rm_rf_keeps_a_nested_repository() {
    for setup in setups() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let repo = repo_with_nested(tmp.path());
        let staging = Staging::open(&repo, &tmp.path().join("run"), setup.options()).expect("open");
        let view = staging.create_view(0, "agent").expect("view");
        fs::remove_dir_all(view.path().join("vendor")).expect("rm -rf vendor");
        let got = view.collect().expect("collect");
        let deleted: Vec<&str> = got
            .changes
            .iter()
            .inspect(|c| assert_eq!(c.kind, ChangeKind::Deleted, "{setup}: {c:?}"))
            .map(|c| c.path.as_str())
            .collect();
        // Exactly the collected entries: `vendor/lib` is a repository of its own (ignored
        // whole, as the outer git sees it), so it and `vendor` stay.
        assert_eq!(deleted, ["vendor/README"], "{setup}");
        staging.commit(&got.to_layer_changes()).expect("commit");
        drop(view);
        staging.wait_for_teardown();
        let _ = staging.publish().expect("publish");
        assert!(!repo.join("vendor/README").exists(), "{setup}");
        assert!(repo.join("vendor/lib/x.c").is_file(), "{setup}");
        assert!(repo.join("vendor/lib/.git/HEAD").is_file(), "{setup}");
        let log = git(&repo.join("vendor/lib"), &["log", "--format=%s"]);
        assert_eq!(log, "unpushed\n", "{setup}");
    }
}

#[test]
fn trust_06_layer_deleting_a_directory_keeps_ignored_content() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = tmp.path().join("repo");
    fs::create_dir(&repo).expect("mkdir");
    git(&repo, &["init", "-q"]);
    write(&repo, ".gitignore", "*.log\n");
    write(&repo, "d/a.txt", "a\n");
    write(&repo, "d/sub/c.txt", "c\n");
    write(&repo, "d/gone/e.txt", "e\n");
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "i"]);
    write(&repo, "d/sub/b.log", "ignored\n");
    let staging = Staging::open(
        &repo,
        &tmp.path().join("run"),
        StagingOptions::with_backend(Some(Backend::Copy)),
    )
    .expect("open");
    // A caller deleting the directory wholesale: the layer removes what is collected only.
    let g = staging
        .commit(&[LayerChange {
            path: "d".into(),
            entry: None,
        }])
        .expect("commit");
    assert_eq!(
        staging.list(g, "d").expect("list"),
        ["d/sub", "d/sub/b.log"]
    );
    let view = staging.create_view(g, "after").expect("view");
    assert_eq!(
        fs::read_to_string(view.path().join("d/sub/b.log")).expect("still visible"),
        "ignored\n"
    );
    drop(view);
    staging.wait_for_teardown();
    let _ = staging.publish().expect("publish");
    assert!(repo.join("d/sub/b.log").is_file());
    assert!(!repo.join("d/a.txt").exists());
    assert!(!repo.join("d/sub/c.txt").exists());
    assert!(!repo.join("d/gone").exists());
}

#[test]
fn trust_06_replacing_a_directory_holding_ignored_content_is_rejected() {
    for setup in setups() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let repo = repo_with_nested(tmp.path());
        let staging = Staging::open(&repo, &tmp.path().join("run"), setup.options()).expect("open");
        let view = staging.create_view(0, "agent").expect("view");
        fs::remove_dir_all(view.path().join("vendor")).expect("rm -rf vendor");
        fs::write(view.path().join("vendor"), "now a file\n").expect("write");
        let got = view.collect().expect("collect");
        assert!(
            got.changes.iter().all(|c| c.path != "vendor"),
            "{setup}: {:?}",
            got.changes
        );
        assert!(
            got.rejected.iter().any(|r| r.path == "vendor"
                && matches!(&r.reason, RejectReason::HidesIgnored(p) if p == "vendor/lib")),
            "{setup}: {:?}",
            got.rejected
        );
    }
}

#[test]
fn trust_20_deleting_a_fifo_is_reported() {
    for setup in setups() {
        if setup.backend != Backend::Overlay {
            // Other backends never copy special files into views: there is none to delete.
            continue;
        }
        let tmp = tempfile::tempdir().expect("tempdir");
        let repo = tmp.path().join("repo");
        fs::create_dir(&repo).expect("mkdir");
        write(&repo, "a.txt", "a\n");
        write(&repo, "d/b.txt", "b\n");
        for fifo in ["pipe", "d/pipe2"] {
            rustix::fs::mknodat(
                rustix::fs::CWD,
                repo.join(fifo),
                rustix::fs::FileType::Fifo,
                rustix::fs::Mode::from_raw_mode(0o644),
                0,
            )
            .expect("mkfifo");
        }
        let staging = Staging::open(&repo, &tmp.path().join("run"), setup.options()).expect("open");
        let view = staging.create_view(0, "agent").expect("view");
        fs::remove_file(view.path().join("pipe")).expect("rm fifo");
        // A directory deleted and made again hides its old contents (opaque): the FIFO
        // inside went too.
        fs::remove_dir_all(view.path().join("d")).expect("rm -rf d");
        fs::create_dir(view.path().join("d")).expect("mkdir d");
        fs::write(view.path().join("d/b.txt"), "b\n").expect("write");
        let got = view.collect().expect("collect");
        assert!(got.changes.is_empty(), "{setup}: {:?}", got.changes);
        let rejected: Vec<(&str, String)> = got
            .rejected
            .iter()
            .map(|r| (r.path.as_str(), r.reason.to_string()))
            .collect();
        assert_eq!(
            rejected,
            [
                (
                    "d/pipe2",
                    "special file (fifo) deleted: not merged".to_owned()
                ),
                ("pipe", "special file (fifo) deleted: not merged".to_owned())
            ],
            "{setup}"
        );
    }
}
