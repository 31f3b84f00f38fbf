//! Overlay in a user namespace: views that exist only inside it, processes that join it,
//! directory renames, the holder's lifetime, and a real unprivileged user.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use forge_staging::{
    Backend, ChangeKind, Entry, LayerChange, OverlayMode, Staging, StagingOptions, View, cleanup,
};

use crate::support::{Setup, fixture, userns_ok};

fn open(repo: &Path, run: &Path) -> Staging {
    let staging = Staging::open(
        repo,
        run,
        Setup::overlay(OverlayMode::UserNamespace).options(),
    )
    .expect("open");
    assert_eq!(staging.backend(), Backend::Overlay);
    assert_eq!(staging.overlay_mode(), Some(OverlayMode::UserNamespace));
    staging
}

/// Runs `script` with `sh -c` inside the view's namespace; returns its standard output.
fn sh_in(view: &View, script: &str) -> String {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", script]);
    view.namespace()
        .expect("a view in a user namespace")
        .configure(&mut cmd);
    let out = cmd.output().expect("sh starts in the namespace");
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

fn summary(view: &View) -> Vec<(String, ChangeKind)> {
    let got = view.collect().expect("collect");
    assert!(got.rejected.is_empty(), "{:?}", got.rejected);
    got.changes.into_iter().map(|c| (c.path, c.kind)).collect()
}

fn kinds(list: &[(&str, ChangeKind)]) -> Vec<(String, ChangeKind)> {
    list.iter().map(|(p, k)| ((*p).to_owned(), *k)).collect()
}

#[test]
fn views_exist_inside_the_namespace_and_processes_join_it() {
    if !userns_ok() {
        return;
    }
    let (_tmp, _repo, staging) = fixture(Setup::overlay(OverlayMode::UserNamespace));
    assert!(
        staging.backend_reason().contains("user namespace"),
        "{}",
        staging.backend_reason()
    );
    let view = staging.create_view(0, "v").expect("view");
    let ns = view.namespace().expect("namespace");
    assert!(
        view.path().starts_with("/proc"),
        "{}",
        view.path().display()
    );
    // Outside the namespace the mount point is an empty directory.
    assert_eq!(fs::read_dir(ns.path()).expect("mount point").count(), 0);
    // This process reads and writes through /proc.
    assert_eq!(
        fs::read_to_string(view.path().join("docs/a.md")).expect("read"),
        "a\n"
    );
    fs::write(view.path().join("from-outside.txt"), "o").expect("write");
    // A process that joins sees the view at its real path, with this process's write.
    let out = sh_in(
        &view,
        "pwd; cat from-outside.txt; echo; echo made > new.txt; rm -r docs; mkdir docs; \
         echo x > docs/only.md; chmod +x src/main.rs; ln -s README.md link2",
    );
    assert_eq!(out, format!("{}\no\n", ns.path().display()));
    assert_eq!(
        summary(&view),
        kinds(&[
            ("docs/a.md", ChangeKind::Deleted),
            ("docs/deep", ChangeKind::Deleted),
            ("docs/deep/b.md", ChangeKind::Deleted),
            ("docs/only.md", ChangeKind::Added),
            ("from-outside.txt", ChangeKind::Added),
            ("link2", ChangeKind::Added),
            ("new.txt", ChangeKind::Added),
            ("src/main.rs", ChangeKind::ModeChanged),
        ])
    );
}

#[test]
fn renaming_a_lower_directory_fails_with_exdev_and_mv_copies_instead() {
    if !userns_ok() {
        return;
    }
    let (_tmp, _repo, staging) = fixture(Setup::overlay(OverlayMode::UserNamespace));
    let view = staging.create_view(0, "v").expect("view");
    let err = fs::rename(view.path().join("src/util"), view.path().join("helpers"))
        .expect_err("overlayfs in a user namespace has no redirects");
    assert_eq!(
        err.raw_os_error(),
        Some(rustix::io::Errno::XDEV.raw_os_error())
    );
    // A directory made in the view renames fine.
    fs::create_dir(view.path().join("fresh")).expect("mkdir");
    fs::rename(view.path().join("fresh"), view.path().join("fresh2")).expect("rename");
    sh_in(&view, "mv src/util helpers");
    assert_eq!(
        summary(&view),
        kinds(&[
            ("fresh2", ChangeKind::Added),
            ("helpers", ChangeKind::Added),
            ("helpers/mod.rs", ChangeKind::Added),
            ("helpers/x.rs", ChangeKind::Added),
            ("src/util", ChangeKind::Deleted),
            ("src/util/mod.rs", ChangeKind::Deleted),
            ("src/util/x.rs", ChangeKind::Deleted),
        ])
    );
}

#[test]
fn the_namespace_ends_with_the_staging_and_a_dead_holder_is_reported() {
    if !userns_ok() {
        return;
    }
    let (tmp, repo, staging) = fixture(Setup::overlay(OverlayMode::UserNamespace));
    let view = staging.create_view(0, "v").expect("view");
    let pid = view.namespace().expect("namespace").holder_pid();
    let proc_dir = Path::new("/proc").join(pid.to_string());
    assert!(proc_dir.exists());
    drop(view);
    drop(staging);
    assert!(!proc_dir.exists(), "holder {pid} outlived its staging");

    let staging = open(&repo, &tmp.path().join("run2"));
    let view = staging.create_view(0, "v").expect("view");
    let pid = view.namespace().expect("namespace").holder_pid();
    let pid = rustix::process::Pid::from_raw(pid as i32).expect("a pid");
    rustix::process::kill_process(pid, rustix::process::Signal::KILL).expect("kill holder");
    // The holder is our child: wait until it is gone.
    let err = loop {
        match view.collect() {
            Err(e) => break e,
            Ok(_) => std::thread::sleep(std::time::Duration::from_millis(5)),
        }
    };
    assert!(
        err.to_string()
            .contains(&format!("(pid {}) has exited", pid.as_raw_nonzero())),
        "{err}"
    );
}

/// As root, runs [`unprivileged_round_trip_inner`] again as `nobody` from a copy of this
/// test binary; as any other user, runs it directly.
#[test]
fn an_unprivileged_user_gets_overlay_views_and_agents_join_them() {
    if !userns_ok() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    if !rustix::process::geteuid().is_root() {
        unprivileged_round_trip(tmp.path());
        return;
    }
    const NOBODY: u32 = 65534;
    let dir = tmp.path();
    // The build directory may be closed to other users: run a copy of this binary.
    let exe = dir.join("forge-staging-it");
    fs::copy(std::env::current_exe().expect("test binary"), &exe).expect("copy test binary");
    fs::set_permissions(&exe, fs::Permissions::from_mode(0o755)).expect("chmod");
    let work = dir.join("work");
    fs::create_dir(&work).expect("mkdir");
    let nobody = Some(rustix::process::Uid::from_raw(NOBODY));
    let nogroup = Some(rustix::process::Gid::from_raw(NOBODY));
    rustix::fs::chown(&work, nobody, nogroup).expect("chown");
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).expect("chmod");
    let mut cmd = {
        use std::os::unix::process::CommandExt;
        let mut cmd = Command::new(&exe);
        cmd.args([
            "--exact",
            "userns::unprivileged_round_trip_inner",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("FORGE_UNPRIVILEGED_DIR", &work)
        .env("HOME", &work)
        .current_dir(&work)
        .uid(NOBODY)
        .gid(NOBODY);
        cmd
    };
    let out = output_of_fresh_copy(&mut cmd);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // A kernel that keeps user namespaces from unprivileged users makes auto fall back.
    if !out.status.success()
        && (stdout.contains("auto: overlay unavailable")
            || stderr.contains("auto: overlay unavailable"))
        && std::env::var("FORGE_ALLOW_SKIP_OVERLAY").as_deref() == Ok("1")
    {
        eprintln!(
            "skipping: overlay without root does not work here (FORGE_ALLOW_SKIP_OVERLAY=1)\n{stderr}"
        );
        return;
    }
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "as nobody: {}\n{stdout}\n{stderr}",
        out.status
    );
}

/// Runs `cmd`, whose program was just written: while another test thread's child still
/// holds the copy's write descriptor between its fork and exec, `exec` fails with ETXTBSY,
/// so that is retried.
fn output_of_fresh_copy(cmd: &mut Command) -> std::process::Output {
    for _ in 0..100 {
        match cmd.output() {
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::TXTBSY.raw_os_error()) => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other.expect("run the test binary as nobody"),
        }
    }
    panic!("the copied test binary stayed busy (ETXTBSY)");
}

#[test]
#[ignore = "run as an unprivileged user by an_unprivileged_user_gets_overlay_views_and_agents_join_them"]
fn unprivileged_round_trip_inner() {
    let dir = std::env::var_os("FORGE_UNPRIVILEGED_DIR").expect("FORGE_UNPRIVILEGED_DIR");
    unprivileged_round_trip(Path::new(&dir));
}

/// The whole cycle as a user without privileges: auto picks overlay in a user namespace,
/// layers get whiteouts, an agent process edits the view, the changes are committed,
/// published and the run directory cleaned.
fn unprivileged_round_trip(dir: &Path) {
    assert!(!rustix::process::geteuid().is_root());
    let repo = dir.join("repo");
    for (path, data) in [
        ("README.md", "hello\n"),
        ("src/a.rs", "a\n"),
        ("src/b.rs", "b\n"),
        ("old/x", "x\n"),
    ] {
        let p = repo.join(path);
        fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        fs::write(p, data).expect("write");
    }
    let run = dir.join("run");
    let staging = Staging::open(&repo, &run, StagingOptions::default()).expect("open");
    assert_eq!(
        (staging.backend(), staging.overlay_mode()),
        (Backend::Overlay, Some(OverlayMode::UserNamespace)),
        "{}",
        staging.backend_reason()
    );
    let g1 = staging
        .commit(&[LayerChange {
            path: "src/b.rs".into(),
            entry: None,
        }])
        .expect("commit a deletion (a whiteout, made without privileges)");
    let view = staging.create_view(g1, "agent").expect("view");
    assert!(
        !view.path().join("src/b.rs").exists(),
        "deleted in generation 1"
    );
    sh_in(
        &view,
        "test \"$(id -u)\" != 0 && rm -r old && echo changed > README.md && echo c > src/c.rs",
    );
    assert_eq!(
        summary(&view),
        kinds(&[
            ("README.md", ChangeKind::Modified),
            ("old", ChangeKind::Deleted),
            ("old/x", ChangeKind::Deleted),
            ("src/c.rs", ChangeKind::Added),
        ])
    );
    let changes = view.collect().expect("collect");
    let g2 = staging.commit(&changes.to_layer_changes()).expect("commit");
    assert_eq!(
        staging.read(g2, "src/c.rs").expect("read"),
        Some(Entry::File {
            data: b"c\n".to_vec(),
            executable: false
        })
    );
    // A leaked view (a crashed agent run) is cleaned up without root.
    std::mem::forget(staging.create_view(g2, "leaked").expect("view"));
    view.discard().expect("discard");
    staging.wait_for_teardown();
    let report = cleanup(&run).expect("cleanup as an unprivileged user");
    assert_eq!(report.removed_views.len(), 1);
    assert_eq!(staging.publish().expect("publish").generation, g2);
    assert_eq!(
        fs::read_to_string(repo.join("README.md")).expect("read"),
        "changed\n"
    );
    assert!(!repo.join("old").exists() && !repo.join("src/b.rs").exists());
    assert!(repo.join("src/c.rs").exists());
}
