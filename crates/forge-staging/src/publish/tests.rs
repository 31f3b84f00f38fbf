//! Publish: crash-safety (an interrupted publish leaves its record, and the next publish
//! from a re-opened run directory finishes the job), the three-way merge with the user's
//! edits, the repository lock, modes and owners, and directory deletion (issue 13).

use std::fs;
use std::path::{Path, PathBuf};

use crate::{
    Backend, Entry, LayerChange, PublishConflict, PublishConflictKind, PublishMerge, Staging,
    StagingError, StagingOptions,
};

fn file(s: &str) -> Option<Entry> {
    Some(Entry::File {
        data: s.as_bytes().to_vec(),
        executable: false,
    })
}

#[test]
fn crash_midway_then_resume_finishes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = tmp.path().join("repo");
    let run = tmp.path().join("run");
    fs::create_dir_all(repo.join("dir/sub")).expect("mkdir");
    fs::write(repo.join("keep"), "keep").expect("write");
    fs::write(repo.join("dir/sub/old"), "old").expect("write");
    for i in 0..5 {
        fs::write(repo.join(format!("f{i}")), format!("base {i}")).expect("write");
    }
    let opts = StagingOptions::with_backend(Some(Backend::Copy));
    let staging = Staging::open(&repo, &run, opts.clone()).expect("open");
    let mut changes: Vec<LayerChange> = (0..5)
        .map(|i| LayerChange {
            path: format!("f{i}"),
            entry: file(&format!("new {i}")),
        })
        .collect();
    changes.push(LayerChange {
        path: "dir".into(),
        entry: None,
    });
    staging.commit(&changes).expect("commit 1");
    staging
        .commit(&[
            LayerChange {
                path: "dir".into(),
                entry: Some(Entry::Dir),
            },
            LayerChange {
                path: "dir/x".into(),
                entry: file("x"),
            },
        ])
        .expect("commit 2");

    let err = staging
        .publish_crashing_after(3)
        .expect_err("simulated crash");
    assert!(err.to_string().contains("simulated crash"), "{err}");
    // Half done: some files new, some old, none half-written.
    let contents: Vec<String> = (0..5)
        .map(|i| fs::read_to_string(repo.join(format!("f{i}"))).expect("read"))
        .collect();
    assert!(
        contents.iter().any(|c| c.starts_with("new"))
            && contents.iter().any(|c| c.starts_with("base"))
    );
    // Generations at or above the target still read correctly from the mixed repository.
    assert_eq!(staging.read(2, "f4").expect("read"), file("new 4"));
    assert_eq!(staging.read(2, "dir/sub/old").expect("read"), None);
    assert!(
        staging.read(0, "f4").is_err(),
        "generation 0 is gone once publishing started"
    );
    drop(staging);

    let staging = Staging::open(&repo, &run, opts).expect("reopen");
    assert_eq!(staging.oldest(), 2);
    let report = staging.publish().expect("resume publish");
    assert!(report.resumed);
    assert_eq!(report.generation, 2);
    for i in 0..5 {
        assert_eq!(
            fs::read_to_string(repo.join(format!("f{i}"))).expect("read"),
            format!("new {i}")
        );
    }
    assert_eq!(fs::read_to_string(repo.join("keep")).expect("read"), "keep");
    assert!(!repo.join("dir/sub").exists());
    assert_eq!(fs::read_to_string(repo.join("dir/x")).expect("read"), "x");
    let leftovers: Vec<_> = fs::read_dir(&repo)
        .expect("read dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains("forge-publish"))
        .collect();
    assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
    // Publishing again is a no-op.
    let again = staging.publish().expect("publish again");
    assert_eq!((again.written, again.removed, again.resumed), (0, 0, false));
}

#[test]
fn publish_refuses_while_views_exist() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = tmp.path().join("repo");
    fs::create_dir_all(&repo).expect("mkdir");
    let staging = Staging::open(
        &repo,
        &tmp.path().join("run"),
        StagingOptions::with_backend(Some(Backend::Copy)),
    )
    .expect("open");
    let view = staging.create_view(0, "v").expect("view");
    let err = staging.publish().expect_err("view alive");
    assert!(
        matches!(err, crate::StagingError::ViewsLive { n_views: 1, .. }),
        "{err}"
    );
    view.discard().expect("discard");
    let _ = staging.publish().expect("publish after discard");
}

/// Runs git in `dir` (tests only).
fn git(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@t"])
        .args(args)
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}: {out:?}");
}

/// `mk` of the issue: a git repository with `a.txt` (three lines) and `b.txt`, committed.
fn git_repo(root: &Path) -> PathBuf {
    let repo = root.join("repo");
    fs::create_dir_all(&repo).expect("mkdir");
    git(&repo, &["init", "-q"]);
    fs::write(repo.join("a.txt"), "l1\nl2\nl3\n").expect("write");
    fs::write(repo.join("b.txt"), "hi\n").expect("write");
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-qm", "i"]);
    repo
}

fn open(repo: &Path, run: &Path) -> Staging {
    Staging::open(repo, run, StagingOptions::with_backend(Some(Backend::Copy))).expect("open")
}

fn change(path: &str, text: &str) -> LayerChange {
    LayerChange {
        path: path.into(),
        entry: file(text),
    }
}

/// A line-by-line merge for files with the same number of lines (enough to tell merged
/// from overwritten here; forge-core passes forge-merge's real one).
fn line_merge(
    _path: &str,
    base: Option<&Entry>,
    ours: Option<&Entry>,
    theirs: Option<&Entry>,
) -> PublishMerge {
    let text = |e: Option<&Entry>| match e {
        Some(Entry::File { data, .. }) => Some(String::from_utf8_lossy(data).into_owned()),
        _ => None,
    };
    let (Some(b), Some(o), Some(t)) = (text(base), text(ours), text(theirs)) else {
        return PublishMerge::Conflict;
    };
    let (b, o, t): (Vec<&str>, Vec<&str>, Vec<&str>) = (
        b.lines().collect(),
        o.lines().collect(),
        t.lines().collect(),
    );
    if b.len() != o.len() || b.len() != t.len() {
        return PublishMerge::Conflict;
    }
    let mut out = String::new();
    for i in 0..b.len() {
        let line = if o[i] == b[i] {
            t[i]
        } else if t[i] == b[i] || t[i] == o[i] {
            o[i]
        } else {
            return PublishMerge::Conflict;
        };
        out.push_str(line);
        out.push('\n');
    }
    PublishMerge::Merged(file(&out))
}

fn read(repo: &Path, path: &str) -> String {
    fs::read_to_string(repo.join(path)).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

/// Issue 13 item 1: a file named like publish's old temporary sibling of `b.txt` is just a
/// file; it never ends up in `b.txt`, in a git work tree or a plain directory.
#[test]
fn trust_01_publish_temp_names_are_not_addressable() {
    for with_git in [true, false] {
        let tmp = tempfile::tempdir().expect("tempdir");
        let repo = if with_git {
            git_repo(tmp.path())
        } else {
            let repo = tmp.path().join("repo");
            fs::create_dir_all(&repo).expect("mkdir");
            fs::write(repo.join("b.txt"), "hi\n").expect("write");
            repo
        };
        let staging = open(&repo, &tmp.path().join("run"));
        staging
            .commit(&[change(".b.txt.forge-publish", "from h\n")])
            .expect("commit h");
        staging
            .commit(&[change("b.txt", "from l\n")])
            .expect("commit l");
        let report = staging.publish().expect("publish");
        assert!(report.is_clean(), "{report:?}");
        assert_eq!(read(&repo, "b.txt"), "from l\n", "git: {with_git}");
        assert_eq!(read(&repo, ".b.txt.forge-publish"), "from h\n");
        let names: Vec<String> = fs::read_dir(&repo)
            .expect("read dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            !names.iter().any(|n| n.starts_with(".forge-publish-")),
            "temporary directory left: {names:?}"
        );
    }
}

/// Issue 13 item 2: the user's edit of a path the run did not touch, and of a path the
/// run changed in another line, both survive the publish.
#[test]
fn trust_02_user_edits_during_the_run_are_merged_not_overwritten() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = git_repo(tmp.path());
    fs::write(repo.join("c.txt"), "untracked\n").expect("write");
    let staging = open(&repo, &tmp.path().join("run"));
    staging
        .commit(&[
            change("a.txt", "l1\nAGENT\nl3\n"),
            change("b.txt", "agent\n"),
        ])
        .expect("commit");
    // The user, meanwhile: a.txt's first line, and c.txt (untracked at the start).
    fs::write(repo.join("a.txt"), "USER\nl2\nl3\n").expect("write");
    fs::write(repo.join("c.txt"), "untracked, edited\n").expect("write");
    // Touched, not changed: not an edit.
    fs::File::options()
        .write(true)
        .open(repo.join("b.txt"))
        .and_then(|f| {
            f.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(5))
        })
        .expect("touch");
    assert_eq!(
        staging.changed_since_start().expect("changed"),
        vec!["a.txt".to_owned(), "c.txt".to_owned()]
    );
    let report = staging.publish_with(&line_merge).expect("publish");
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.merged, 1);
    assert_eq!(read(&repo, "a.txt"), "USER\nAGENT\nl3\n");
    assert_eq!(read(&repo, "b.txt"), "agent\n");
    assert_eq!(read(&repo, "c.txt"), "untracked, edited\n");
}

/// Issue 13 item 2: the user and the run changed the same line: the user's file stays,
/// the run's version is kept in the run directory and reported; the same without a merge
/// callback, and for a file the run deleted.
#[test]
fn trust_02_conflicting_user_edits_are_kept_and_reported() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = git_repo(tmp.path());
    let run = tmp.path().join("run");
    let staging = open(&repo, &run);
    staging
        .commit(&[
            change("a.txt", "l1\nAGENT\nl3\n"),
            LayerChange {
                path: "b.txt".into(),
                entry: None,
            },
        ])
        .expect("commit");
    fs::write(repo.join("a.txt"), "l1\nUSER\nl3\n").expect("write");
    fs::write(repo.join("b.txt"), "hi\nuser line\n").expect("write");
    let report = staging.publish_with(&line_merge).expect("publish");
    assert_eq!(read(&repo, "a.txt"), "l1\nUSER\nl3\n");
    assert_eq!(read(&repo, "b.txt"), "hi\nuser line\n");
    let run = fs::canonicalize(&run).expect("canonical");
    assert_eq!(
        report.conflicts,
        vec![
            PublishConflict {
                path: "a.txt".into(),
                kind: PublishConflictKind::Content,
                kept: Some(run.join("publish-conflicts/a.txt")),
            },
            PublishConflict {
                path: "b.txt".into(),
                kind: PublishConflictKind::DeletedByRun,
                kept: None,
            },
        ]
    );
    assert_eq!(
        fs::read_to_string(run.join("publish-conflicts/a.txt")).expect("kept"),
        "l1\nAGENT\nl3\n"
    );
}

/// Issue 13 item 2, plain directories: without git the snapshot is a stat fingerprint, so
/// a file the user touched is a conflict (no base to merge with), never overwritten.
#[test]
fn trust_02_plain_directory_edits_are_conflicts_not_overwrites() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = tmp.path().join("repo");
    fs::create_dir_all(&repo).expect("mkdir");
    fs::write(repo.join("a.txt"), "a\n").expect("write");
    fs::write(repo.join("b.txt"), "b\n").expect("write");
    let staging = open(&repo, &tmp.path().join("run"));
    staging
        .commit(&[change("a.txt", "agent a\n"), change("b.txt", "agent b\n")])
        .expect("commit");
    fs::write(repo.join("b.txt"), "b\nuser\n").expect("write");
    assert_eq!(
        staging.changed_since_start().expect("changed"),
        vec!["b.txt"]
    );
    let report = staging.publish_with(&line_merge).expect("publish");
    assert_eq!(read(&repo, "a.txt"), "agent a\n");
    assert_eq!(read(&repo, "b.txt"), "b\nuser\n");
    assert_eq!(report.conflicts.len(), 1);
    assert_eq!(report.conflicts[0].kind, PublishConflictKind::NoBase);
}

/// Issue 13 item 3: two runs started together on one repository edit different lines of
/// `a.txt`; the second publish merges with the first's result, and waits for its lock.
#[test]
fn trust_03_two_runs_on_one_repository_both_land() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = git_repo(tmp.path());
    let first = open(&repo, &tmp.path().join("run-a"));
    let second = open(&repo, &tmp.path().join("run-b"));
    first
        .commit(&[change("a.txt", "A\nl2\nl3\n")])
        .expect("commit a");
    second
        .commit(&[change("a.txt", "l1\nl2\nB\n")])
        .expect("commit b");
    let _ = first.publish_with(&line_merge).expect("publish a");
    let report = second.publish_with(&line_merge).expect("publish b");
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(read(&repo, "a.txt"), "A\nl2\nB\n");
}

/// Issue 13 item 3: while another run holds the repository's publish lock, a publish waits
/// and then fails naming the holder's run directory.
#[test]
fn trust_03_a_held_publish_lock_is_waited_for_and_named() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = git_repo(tmp.path());
    let opts = StagingOptions {
        publish_lock_timeout: std::time::Duration::from_millis(200),
        ..StagingOptions::with_backend(Some(Backend::Copy))
    };
    let staging = Staging::open(&repo, &tmp.path().join("run"), opts).expect("open");
    staging.commit(&[change("b.txt", "x\n")]).expect("commit");
    let git_dir = crate::base::git_dir(staging.repo()).expect("git dir");
    let held = super::lock::acquire(
        staging.repo(),
        Some(&git_dir),
        Path::new("/runs/other"),
        std::time::Duration::ZERO,
    )
    .expect("take the lock");
    let err = staging.publish().expect_err("lock held");
    assert!(
        matches!(&err, StagingError::PublishLocked { holder, .. } if holder.contains("/runs/other")),
        "{err}"
    );
    assert_eq!(read(&repo, "b.txt"), "hi\n");
    drop(held);
    let _ = staging.publish().expect("publish once released");
    assert_eq!(read(&repo, "b.txt"), "x\n");
}

/// Issue 13 item 11: a published file keeps the owner, group and permission bits of the
/// file it replaces (a 0600 file of uid 1000 stays so); the execute bit follows the run.
#[test]
fn trust_11_published_files_keep_owner_and_mode() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = git_repo(tmp.path());
    fs::write(repo.join(".env"), "KEY=1\n").expect("write");
    fs::set_permissions(repo.join(".env"), fs::Permissions::from_mode(0o600)).expect("chmod");
    fs::write(repo.join("run.sh"), "echo\n").expect("write");
    fs::set_permissions(repo.join("run.sh"), fs::Permissions::from_mode(0o640)).expect("chmod");
    let chowned = crate::sys::is_root();
    if chowned {
        for f in [".env", "run.sh"] {
            std::os::unix::fs::lchown(repo.join(f), Some(1000), Some(1000)).expect("chown");
        }
    }
    let staging = open(&repo, &tmp.path().join("run"));
    staging
        .commit(&[
            change(".env", "KEY=1\nMORE=2\n"),
            LayerChange {
                path: "run.sh".into(),
                entry: Some(Entry::File {
                    data: b"echo hi\n".to_vec(),
                    executable: true,
                }),
            },
        ])
        .expect("commit");
    let _ = staging.publish().expect("publish");
    let env = fs::symlink_metadata(repo.join(".env")).expect("stat");
    let script = fs::symlink_metadata(repo.join("run.sh")).expect("stat");
    assert_eq!(read(&repo, ".env"), "KEY=1\nMORE=2\n");
    assert_eq!(env.mode() & 0o7777, 0o600);
    assert_eq!(script.mode() & 0o7777, 0o750, "x added where r is");
    if chowned {
        assert_eq!((env.uid(), env.gid()), (1000, 1000));
        assert_eq!((script.uid(), script.gid()), (1000, 1000));
    }
}

/// Issue 13 item 17: an interrupted publish leaves a marker every later run sees, until
/// the publish is finished.
#[test]
fn trust_17_an_interrupted_publish_is_visible_until_finished() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = git_repo(tmp.path());
    let run = tmp.path().join("run");
    let staging = open(&repo, &run);
    staging
        .commit(&[change("a.txt", "x\n"), change("b.txt", "y\n")])
        .expect("commit");
    assert_eq!(crate::pending_publish(&repo).expect("check"), None);
    let _ = staging.publish_crashing_after(1).expect_err("crash");
    let run = fs::canonicalize(&run).expect("canonical");
    assert_eq!(
        crate::pending_publish(&repo).expect("check"),
        Some(run.clone())
    );
    assert_eq!(crate::interrupted_publish(&run).expect("record"), Some(1));
    // Another run may not publish over the mix: it names the run to resume.
    let other = open(&repo, &tmp.path().join("run-2"));
    other.commit(&[change("c.txt", "c\n")]).expect("commit");
    let err = other.publish().expect_err("interrupted publish pending");
    assert!(
        matches!(&err, StagingError::PublishInterrupted { run_dir, .. } if *run_dir == run),
        "{err}"
    );
    drop(staging);
    let staging = open(&repo, &run);
    let report = staging.publish().expect("finish");
    assert!(report.resumed && report.is_clean(), "{report:?}");
    assert_eq!(crate::pending_publish(&repo).expect("check"), None);
    assert_eq!(crate::interrupted_publish(&run).expect("record"), None);
    assert_eq!(read(&repo, "b.txt"), "y\n");
    let _ = other.publish().expect("publish once the first is finished");
    assert_eq!(read(&repo, "c.txt"), "c\n");
}

/// Issue 13 item 6 (publish side): deleting a directory removes what the run saw in it,
/// never a nested repository's `.git` or an ignored file; the directory stays while they
/// are in it.
#[test]
fn trust_06_deleting_a_directory_keeps_nested_git_and_ignored_files() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = git_repo(tmp.path());
    fs::write(repo.join(".gitignore"), "*.log\n").expect("write");
    fs::create_dir_all(repo.join("vendor/lib")).expect("mkdir");
    fs::write(repo.join("vendor/keep.rs"), "k\n").expect("write");
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-qm", "vendor"]);
    let nested = repo.join("vendor/lib");
    git(&nested, &["init", "-q"]);
    // A nested repository without a commit yet (git cannot add it) must not stop a run.
    fs::create_dir_all(repo.join("vendor/fresh")).expect("mkdir");
    git(&repo.join("vendor/fresh"), &["init", "-q"]);
    fs::write(nested.join("lib.rs"), "lib\n").expect("write");
    git(&nested, &["add", "-A"]);
    git(&nested, &["commit", "-qm", "unpushed"]);
    fs::write(repo.join("vendor/debug.log"), "ignored\n").expect("write");
    let staging = open(&repo, &tmp.path().join("run"));
    staging
        .commit(&[LayerChange {
            path: "vendor".into(),
            entry: None,
        }])
        .expect("commit");
    let report = staging.publish().expect("publish");
    assert!(report.is_clean(), "{report:?}");
    assert!(!repo.join("vendor/keep.rs").exists());
    assert!(nested.join(".git/HEAD").is_file(), "nested .git removed");
    assert!(
        repo.join("vendor/debug.log").is_file(),
        "ignored file removed"
    );
    assert!(
        repo.join("vendor/fresh/.git/HEAD").is_file(),
        "fresh .git removed"
    );
}

/// Issue 13 item 2: the user replaced a directory by a file during the run; the run's
/// files below it are conflicts kept in the run directory, and the user's file stays.
#[test]
fn trust_02_a_user_file_in_the_way_of_the_runs_directory_is_kept() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = git_repo(tmp.path());
    fs::create_dir_all(repo.join("d")).expect("mkdir");
    fs::write(repo.join("d/x"), "x\n").expect("write");
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-qm", "d"]);
    let run = tmp.path().join("run");
    let staging = open(&repo, &run);
    staging
        .commit(&[change("d/x", "run\n"), change("d/y", "new\n")])
        .expect("commit");
    fs::remove_dir_all(repo.join("d")).expect("rm");
    fs::write(repo.join("d"), "now a file\n").expect("write");
    let report = staging.publish().expect("publish");
    assert_eq!(read(&repo, "d"), "now a file\n");
    let paths: Vec<(&str, PublishConflictKind)> = report
        .conflicts
        .iter()
        .map(|c| (c.path.as_str(), c.kind))
        .collect();
    assert_eq!(
        paths,
        [
            ("d/x", PublishConflictKind::Blocked),
            ("d/y", PublishConflictKind::Blocked)
        ]
    );
    let run = fs::canonicalize(&run).expect("canonical");
    assert_eq!(
        fs::read_to_string(run.join("publish-conflicts/d/y")).expect("kept"),
        "new\n"
    );
}

/// The user edits a file while the publish itself runs (hostile review: with thousands of
/// paths the publish takes seconds, and a path that was clean when the publish listed the
/// user's changes was written without a second look, losing the edit). After the listing:
/// the edit is merged; between the decision and the rename: the user's file stays and the
/// run's version is kept and reported.
#[test]
fn trust_02_user_edits_during_the_publish_are_never_overwritten() {
    use crate::publish::race::{self, Point};
    for point in [Point::BaselineLoaded, Point::BeforeRenames] {
        let tmp = tempfile::tempdir().expect("tempdir");
        let repo = git_repo(tmp.path());
        let staging = open(&repo, &tmp.path().join("run"));
        staging
            .commit(&[change("a.txt", "l1\nAGENT\nl3\n")])
            .expect("commit");
        let user = repo.clone();
        let mut done = false;
        race::set(move |at| {
            if at == point && !done {
                done = true;
                // A rewrite in place (same inode), as most editors and `>` do.
                fs::write(user.join("a.txt"), "l1\nl2\nUSER\n").expect("write");
            }
        });
        let report = staging.publish_with(&line_merge);
        race::clear();
        let report = report.expect("publish");
        let text = read(&repo, "a.txt");
        assert!(
            text.contains("USER\n"),
            "{point:?}: the user's line is lost: {text:?}"
        );
        match point {
            Point::BaselineLoaded => {
                assert!(report.is_clean(), "{report:?}");
                assert_eq!(text, "l1\nAGENT\nUSER\n", "merged");
            }
            Point::BeforeRenames => {
                assert_eq!(report.conflicts.len(), 1, "{report:?}");
                let kept = report.conflicts[0].kept.as_ref().expect("kept");
                assert_eq!(fs::read_to_string(kept).expect("kept"), "l1\nAGENT\nl3\n");
            }
        }
    }
}
