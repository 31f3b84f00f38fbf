//! Ignore rules are git's own (issue 13 item 5): tracked files are always collected,
//! untracked ones exactly when git does not ignore them; ignored files stay in views.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::path::Path;

use forge_staging::{Backend, ChangeKind, Entry, Staging};

use crate::support::{git, setups};

fn write(root: &Path, path: &str, data: &str) {
    let p = root.join(path);
    fs::create_dir_all(p.parent().expect("has a parent")).expect("mkdir");
    fs::write(p, data).expect("write");
}

fn commit_all(repo: &Path) {
    git(repo, &["add", "-A"]);
    git(repo, &["commit", "-q", "-m", "fixture"]);
}

#[test]
fn trust_05_tracked_file_under_ignored_name_is_collected() {
    for setup in setups() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let repo = tmp.path().join("repo");
        fs::create_dir(&repo).expect("mkdir");
        git(&repo, &["init", "-q"]);
        write(&repo, ".gitignore", "target/\nnode_modules/\n.env\n");
        write(&repo, "src/target/m.rs", "fn m() {}\n");
        write(&repo, "web/node_modules/pkg/index.js", "tracked\n");
        write(&repo, "README", "hi\n");
        commit_all(&repo);
        git(
            &repo,
            &[
                "add",
                "-f",
                "src/target/m.rs",
                "web/node_modules/pkg/index.js",
            ],
        );
        git(&repo, &["commit", "-q", "-m", "track under ignored names"]);
        write(&repo, ".env", "SECRET=1\n");
        write(&repo, "target/debug/out", "build\n");
        let staging = Staging::open(&repo, &tmp.path().join("run"), setup.options()).expect("open");
        assert!(!staging.is_ignored("src/target/m.rs"), "{setup}");
        assert!(staging.is_ignored("src/target/other.rs"), "{setup}");
        assert!(staging.is_ignored(".env"), "{setup}");

        let view = staging.create_view(0, "agent").expect("view");
        let v = view.path();
        // Ignored files stay visible to agents (worktree views leave out ignored
        // directories, which git worktrees never copy).
        assert_eq!(
            fs::read_to_string(v.join(".env")).expect(".env"),
            "SECRET=1\n",
            "{setup}"
        );
        if setup.backend != Backend::Worktree {
            assert!(v.join("target/debug/out").exists(), "{setup}");
        }
        fs::write(v.join("src/target/m.rs"), "fn m() { edited() }\n").expect("edit");
        fs::write(v.join("web/node_modules/pkg/index.js"), "edited\n").expect("edit");
        fs::write(
            v.join("src/target/junk.o"),
            "untracked below an ignored dir",
        )
        .expect("junk");
        fs::write(v.join(".env"), "SECRET=2\n").expect("edit .env");
        let got = view.collect().expect("collect");
        let paths: Vec<&str> = got.changes.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(
            paths,
            ["src/target/m.rs", "web/node_modules/pkg/index.js"],
            "{setup}"
        );
        assert!(got.changes.iter().all(|c| c.kind == ChangeKind::Modified));
        let g = staging.commit(&got.to_layer_changes()).expect("commit");
        assert_eq!(
            staging.read(g, "src/target/m.rs").expect("read"),
            Some(Entry::File {
                data: b"fn m() { edited() }\n".to_vec(),
                executable: false
            }),
            "{setup}"
        );
        drop(view);
    }
}

#[test]
fn trust_05_plain_directory_defaults() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = tmp.path().join("repo");
    write(&repo, "src/target/m.rs", "fn m() {}\n");
    write(&repo, "x/.git/config", "nested\n");
    write(&repo, "a.txt", "a\n");
    let staging = Staging::open(
        &repo,
        &tmp.path().join("run"),
        forge_staging::StagingOptions::with_backend(Some(Backend::Copy)),
    )
    .expect("open");
    // Not a git work tree: `.git`, `target` and `node_modules` by name.
    assert!(staging.is_ignored("src/target/m.rs"));
    assert!(staging.is_ignored("x/.git/config"));
    assert!(!staging.is_ignored("a.txt"));
}

/// Every untracked file of `repo` and whether git ignores it, from
/// `git status --porcelain --ignored -uall`.
fn git_untracked(repo: &Path) -> Vec<(String, bool)> {
    let out = git(
        repo,
        &["status", "--porcelain=v1", "-z", "--ignored", "-uall"],
    );
    out.split('\0')
        .filter(|f| f.len() > 3)
        .filter_map(|f| match &f[..3] {
            "?? " => Some((f[3..].to_owned(), false)),
            "!! " => Some((f[3..].to_owned(), true)),
            _ => None,
        })
        .collect()
}

#[test]
fn trust_05_ignored_paths_equal_git_status_ignored() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = tmp.path().join("repo");
    fs::create_dir(&repo).expect("mkdir");
    git(&repo, &["init", "-q"]);
    let global = tmp.path().join("global-ignore");
    fs::write(&global, "*.bak\n!a/b/keep.bak\n").expect("global");
    git(
        &repo,
        &[
            "config",
            "core.excludesFile",
            global.to_str().expect("utf-8"),
        ],
    );
    write(
        &repo,
        ".gitignore",
        "*.log\nbuild/\n!keep.log\n/rooted.txt\ndocs/**/gen/\ncache\n*.o\n",
    );
    write(&repo, "a/.gitignore", "!important.log\n*.tmp\nsub/\n");
    write(&repo, "a/b/.gitignore", "!*.tmp\nx?.dat\n!*.o\n");
    write(&repo, "README", "tracked\n");
    write(&repo, "logs/tracked.log", "tracked despite *.log\n");
    commit_all(&repo);
    git(&repo, &["add", "-f", "logs/tracked.log"]);
    git(&repo, &["commit", "-q", "-m", "force"]);
    write(&repo, ".git/info/exclude", "secret*\n");
    for path in [
        "x.log",
        "keep.log",
        "a/y.log",
        "a/important.log",
        "a/z.tmp",
        "a/b/w.tmp",
        "a/b/x1.dat",
        "a/b/xx1.dat",
        "a/b/n.o",
        "m.o",
        "build/out.o",
        "build/.gitignore",
        "a/build/o",
        "b2/build",
        "rooted.txt",
        "a/rooted.txt",
        "docs/p/gen/f.html",
        "docs/gen/g.html",
        "docs/general.md",
        "cache",
        "a/cache/c",
        "secret.txt",
        "a/secret2",
        "f.bak",
        "a/b/keep.bak",
        "a/sub/s.txt",
        "a/b/sub/t.txt",
        "src/ok.rs",
        "logs/new.log",
    ] {
        write(&repo, path, "untracked\n");
    }
    // Rules inside an ignored directory never apply (git does not read them).
    write(&repo, "build/.gitignore", "!out.o\n");
    let expected = git_untracked(&repo);
    assert!(expected.len() >= 25, "git listed {expected:?}");
    assert!(expected.iter().any(|(_, ignored)| *ignored));
    assert!(expected.iter().any(|(_, ignored)| !*ignored));

    for setup in setups() {
        let staging = Staging::open(
            &repo,
            &tmp.path().join(format!("run-{}", setup.slug())),
            setup.options(),
        )
        .expect("open");
        for (path, ignored) in &expected {
            assert_eq!(
                staging.is_ignored(path),
                *ignored,
                "{setup}: forge and git disagree on whether {path} is ignored"
            );
        }
        // Collection: every untracked file touched in a view; forge collects exactly the
        // ones git does not ignore.
        let view = staging.create_view(0, "diff").expect("view");
        for (path, _) in &expected {
            let disk = view.path().join(path);
            fs::create_dir_all(disk.parent().expect("has a parent")).expect("mkdir");
            let mut f = fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(&disk)
                .expect("open for append");
            f.write_all(b"more\n").expect("append");
        }
        let got = view.collect().expect("collect");
        let collected: BTreeSet<&str> = got
            .changes
            .iter()
            .filter(|c| !matches!(c.entry, Some(Entry::Dir)))
            .map(|c| c.path.as_str())
            .collect();
        let not_ignored: BTreeSet<&str> = expected
            .iter()
            .filter(|(_, ignored)| !ignored)
            .map(|(p, _)| p.as_str())
            .collect();
        assert_eq!(collected, not_ignored, "{setup}");
        drop(view);
        staging.wait_for_teardown();
    }
}

#[test]
fn trust_05_rules_are_taken_when_the_run_opens() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = tmp.path().join("repo");
    fs::create_dir(&repo).expect("mkdir");
    git(&repo, &["init", "-q"]);
    write(&repo, ".gitignore", "*.log\n");
    write(&repo, "a.txt", "a\n");
    commit_all(&repo);
    let staging = Staging::open(
        &repo,
        &tmp.path().join("run"),
        forge_staging::StagingOptions::with_backend(Some(Backend::Copy)),
    )
    .expect("open");
    let view = staging.create_view(0, "agent").expect("view");
    let v = view.path();
    // An agent rewriting .gitignore neither hides its own files nor reveals ignored ones.
    fs::write(v.join(".gitignore"), "*.txt\n!*.log\n").expect("edit");
    fs::write(v.join("a.txt"), "changed\n").expect("edit");
    fs::write(v.join("x.log"), "log\n").expect("log");
    let got = view.collect().expect("collect");
    let paths: Vec<&str> = got.changes.iter().map(|c| c.path.as_str()).collect();
    assert_eq!(paths, [".gitignore", "a.txt"]);
}
