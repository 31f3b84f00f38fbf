//! Differential test: the paths a view's change set names are the paths
//! `git status --porcelain -uall` reports in that view.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;

use forge_staging::{Backend, Entry, Staging, View};

use crate::support::{fixture, git_in, make_repo, setups};

/// Paths from `git status --porcelain -uall -z` in the view.
fn git_paths(view: &View) -> BTreeSet<String> {
    let out = git_in(
        view,
        &["status", "--porcelain", "-uall", "-z", "--no-renames"],
    );
    out.split('\0')
        .filter(|f| f.len() > 3)
        .map(|f| f[3..].to_owned())
        .collect()
}

#[test]
fn changed_paths_equal_git_status() {
    for setup in setups() {
        let backend = setup.backend;
        if backend == Backend::Reflink {
            continue;
        }
        let (_tmp, repo, staging) = fixture(setup);
        let view = staging.create_view(0, "diff").expect("view");
        let v = view.path();
        fs::write(v.join("src/lib.rs"), "pub fn f() -> u32 {\n    2\n}\n").expect("modify");
        fs::remove_file(v.join("docs/a.md")).expect("delete");
        fs::create_dir_all(v.join("new/deeper")).expect("mkdir");
        fs::write(v.join("new/deeper/file.txt"), "n").expect("add");
        fs::create_dir(v.join("empty2")).expect("empty dir");
        fs::remove_dir(v.join("empty/nested")).expect("rmdir");
        fs::set_permissions(v.join("src/main.rs"), fs::Permissions::from_mode(0o755))
            .expect("chmod");
        fs::remove_file(v.join("README.md")).expect("rm");
        fs::create_dir(v.join("README.md")).expect("file to dir");
        fs::write(v.join("README.md/x"), "x").expect("write");
        fs::remove_dir_all(v.join("src/util")).expect("rm -r");
        fs::write(v.join("src/util"), "dir to file").expect("write");
        if backend != Backend::Worktree {
            fs::write(v.join("target/debug/out"), "ignored by both").expect("write");
        }
        fs::remove_file(v.join("link")).expect("rm");
        std::os::unix::fs::symlink("docs", v.join("link")).expect("retarget");
        fs::write(
            v.join("src/main.rs"),
            fs::read(repo.join("src/main.rs")).expect("read"),
        )
        .expect("rewrite same");
        if backend == Backend::Overlay && setup.renames_lower_dirs() {
            fs::rename(v.join("docs/deep"), v.join("deep2")).expect("rename dir");
        }

        let got = view.collect().expect("collect");
        // Git tracks files and symlinks only: keep the paths where either side is one.
        let ours: BTreeSet<String> = got
            .changes
            .iter()
            .filter(|c| {
                let new_is_leaf = c.entry.as_ref().is_some_and(|e| *e != Entry::Dir);
                let old_is_leaf = staging
                    .read(0, &c.path)
                    .expect("read")
                    .is_some_and(|e| e != Entry::Dir);
                new_is_leaf || old_is_leaf
            })
            .map(|c| c.path.clone())
            .collect();
        assert_eq!(ours, git_paths(&view), "backend {setup}");
        assert!(ours.contains("src/main.rs"), "mode change missing");
    }
}

/// The paths of `changes` that git would name: those where either side is a file or a
/// symlink (git tracks no directories).
fn leaf_paths(staging: &Staging, g: u64, changes: &forge_staging::ChangeSet) -> BTreeSet<String> {
    changes
        .changes
        .iter()
        .filter(|c| {
            let new_is_leaf = c.entry.as_ref().is_some_and(|e| *e != Entry::Dir);
            let old_is_leaf = staging
                .read(g, &c.path)
                .expect("read")
                .is_some_and(|e| e != Entry::Dir);
            new_is_leaf || old_is_leaf
        })
        .map(|c| c.path.clone())
        .collect()
}

#[test]
fn random_operations_agree_with_git_status() {
    use proptest::prelude::*;
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = tmp.path().join("repo");
    make_repo(&repo);
    for setup in setups() {
        let backend = setup.backend;
        if backend == Backend::Reflink {
            continue;
        }
        let staging = Staging::open(
            &repo,
            &tmp.path().join(format!("run-{}", setup.slug())),
            setup.options(),
        )
        .expect("open");
        let base = crate::model::model_of(&staging, 0);
        let n = std::sync::atomic::AtomicUsize::new(0);
        let config = crate::support::proptest_config(8, 200);
        proptest!(config, |(ops in prop::collection::vec(crate::model::op_strategy(), 1..30))| {
            let i = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let view = staging.create_view(0, &format!("g{i}")).expect("view");
            let mut model = base.clone();
            for op in &ops {
                crate::model::apply(&mut model, view.path(), op);
            }
            let got = view.collect().expect("collect");
            prop_assert_eq!(leaf_paths(&staging, 0, &got), git_paths(&view), "backend {}", setup);
        });
    }
}
