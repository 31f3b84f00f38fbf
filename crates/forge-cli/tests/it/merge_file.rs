//! `forge merge-file` against `git merge-file`: same output, same file written, same exit
//! status, for the same command lines.

use std::path::Path;
use std::process::{Command, Output};

const FORGE: &str = env!("CARGO_BIN_EXE_forge");

/// Runs a `merge-file` command line (with `forge` or `git`) in `dir`, hermetically.
fn run(program: &str, dir: &Path, args: &[&str]) -> Output {
    Command::new(program)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("HOME", dir)
        .arg("merge-file")
        .args(args)
        .output()
        .expect("run merge-file")
}

/// Writes the three files in two directories, runs forge in one and git in the other, and
/// compares stdout, exit status and the rewritten `ours`.
#[track_caller]
fn same_as_git(base: &str, ours: &str, theirs: &str, args: &[&str]) -> i32 {
    let dirs = [
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    ];
    for d in &dirs {
        std::fs::write(d.path().join("base"), base).expect("write");
        std::fs::write(d.path().join("ours"), ours).expect("write");
        std::fs::write(d.path().join("theirs"), theirs).expect("write");
    }
    let mut full: Vec<&str> = args.to_vec();
    full.extend(["ours", "base", "theirs"]);
    let forge = run(FORGE, dirs[0].path(), &full);
    let git = run("git", dirs[1].path(), &full);
    assert_eq!(
        String::from_utf8_lossy(&forge.stdout),
        String::from_utf8_lossy(&git.stdout),
        "stdout of {args:?}"
    );
    assert_eq!(forge.status.code(), git.status.code(), "status of {args:?}");
    let written = |d: &tempfile::TempDir| std::fs::read(d.path().join("ours")).expect("read");
    assert_eq!(
        written(&dirs[0]),
        written(&dirs[1]),
        "file written by {args:?}"
    );
    forge.status.code().expect("exit code")
}

const BASE: &str = "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n";
const OURS: &str = "a\nB1\nc\nd\ne\nf\ng\nH1\ni\nj\n";
const THEIRS: &str = "a\nB2\nc\nd\ne\nf\ng\nH2\ni\nj\n";

#[test]
fn clean_merge_writes_into_current() {
    let code = same_as_git("a\nb\nc\n", "A\nb\nc\n", "a\nb\nC\n", &[]);
    assert_eq!(code, 0);
    same_as_git("a\nb\nc\n", "A\nb\nc\n", "a\nb\nC\n", &["-p"]);
}

#[test]
fn conflicts_set_the_exit_status() {
    assert_eq!(same_as_git(BASE, OURS, THEIRS, &["-p"]), 2);
    assert_eq!(same_as_git(BASE, OURS, THEIRS, &[]), 2);
    same_as_git(BASE, OURS, THEIRS, &["-q"]);
}

#[test]
fn styles_favors_labels_and_marker_size() {
    for args in [
        &["-p", "--diff3"][..],
        &["-p", "--zdiff3"],
        &["-p", "--ours"],
        &["-p", "--theirs"],
        &["-p", "--union"],
        &["-p", "-L", "mine", "-L", "old", "-L", "yours", "--diff3"],
        &["-p", "-Lmine", "-L", ""],
        &["-p", "--marker-size", "3"],
        &["-p", "--marker-size=12", "--diff3"],
        &["-p", "--marker-size=0"],
        &["--stdout", "--quiet", "--zdiff3", "--no-zdiff3"],
        &["-pq", "--diff3"],
    ] {
        same_as_git(BASE, OURS, THEIRS, args);
    }
}

#[test]
fn usage_errors_exit_129() {
    assert_eq!(same_as_git(BASE, OURS, THEIRS, &["--no-such-option"]), 129);
    assert_eq!(
        same_as_git(
            BASE,
            OURS,
            THEIRS,
            &["-L", "1", "-L", "2", "-L", "3", "-L", "4"]
        ),
        129
    );
    let dir = tempfile::tempdir().expect("tmp");
    let forge = run(FORGE, dir.path(), &["only-one-file"]);
    assert_eq!(forge.status.code(), Some(129));
}

#[test]
fn unreadable_and_binary_inputs_exit_255() {
    assert_eq!(same_as_git(BASE, OURS, "bin\0ary", &["-p"]), 255);
    let dir = tempfile::tempdir().expect("tmp");
    let forge = run(FORGE, dir.path(), &["a", "b", "c"]);
    assert_eq!(forge.status.code(), Some(255));
}
