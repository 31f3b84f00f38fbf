//! What `forge status` and `forge resume` say when the run directory is damaged or odd
//! (issue 13): a journal of garbage, damaged records.

use crate::{Sandbox, forge, is_root, text};

#[test]
fn trust_09_status_of_a_garbage_journal_exits_2() {
    let sandbox = Sandbox::new();
    let run_dir = std::path::PathBuf::from(sandbox.run_dir());
    std::fs::create_dir_all(&run_dir).expect("mkdir");
    std::fs::write(run_dir.join("journal.jsonl"), "not\na journal\n").expect("write");
    let out = forge(sandbox.path(), &["status", &sandbox.run_dir()]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(stderr.contains("is not a forge journal"), "{stderr}");

    // A file given for the run directory.
    let file = run_dir.join("journal.jsonl");
    let out = forge(sandbox.path(), &["status", &file.display().to_string()]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("not a forge run directory"), "{stderr}");
}

/// Unmounts a tmpfs when dropped (the test's cleanup, also when it fails).
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &std::path::Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).expect("mkdir");
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .expect("mount runs");
        assert!(status.success(), "mount a tmpfs on {}", dir.display());
        Tmpfs(dir.to_path_buf())
    }

    fn resize(&self, size: &str) {
        let status = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .expect("mount runs");
        assert!(status.success(), "remount {}", self.0.display());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// Publishing into a full disk: forge says that `forge resume` finishes the run, and it
/// does once there is space again.
#[test]
fn trust_18_a_full_disk_at_publish_says_how_to_finish() {
    if !is_root() {
        assert!(
            std::env::var_os("FORGE_ALLOW_SKIP_OVERLAY").is_some(),
            "mounting a small tmpfs needs root (set FORGE_ALLOW_SKIP_OVERLAY to skip)"
        );
        eprintln!("not root: skipping the full-disk publish test");
        return;
    }
    let sandbox = Sandbox::new();
    let tmpfs = Tmpfs::mount(sandbox.path(), "512k");
    let git = std::process::Command::new("git")
        .args(["init", "-q", "--template="])
        .current_dir(sandbox.path())
        .status()
        .expect("git runs");
    assert!(git.success());
    sandbox.write(
        "plan.toml",
        r#"
[[task]]
id = "big"
prompt = "head -c 1048576 /dev/zero | tr '\\0' x > big.txt"
"#,
    );
    let out = sandbox.run(&["--executor", "sh -c {prompt}", "--staging", "copy"], None);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(stderr.contains("No space left on device"), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "`forge resume {}` finishes the run",
            sandbox.run_dir()
        )),
        "{stderr}"
    );

    tmpfs.resize("4m");
    let resumed = forge(sandbox.path(), &["resume", &sandbox.run_dir()]);
    let (stdout, stderr) = text(&resumed);
    assert_eq!(resumed.status.code(), Some(0), "{stdout}\n{stderr}");
    let big = std::fs::metadata(sandbox.path().join("big.txt")).expect("big.txt");
    assert_eq!(big.len(), 1 << 20);
}

/// `forge run` and `forge status` say where a conflicted task's work is kept.
#[test]
fn trust_08_status_says_where_a_conflicted_task_work_is_kept() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "plan.toml",
        r#"
[[task]]
id = "one"
prompt = "echo one > f.txt"

[[task]]
id = "two"
prompt = "sleep 0.6; echo two > f.txt; echo extra > extra.txt"
"#,
    );
    sandbox.write("f.txt", "base\n");
    let out = sandbox.run(
        &[
            "--keep-going",
            "--executor",
            "sh -c {prompt}",
            "--staging",
            "copy",
        ],
        None,
    );
    let (stdout, _) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let kept = std::path::Path::new(&sandbox.run_dir()).join("kept/two-1");
    assert!(
        stdout.contains(&format!("its changes are kept in {}", kept.display())),
        "{stdout}"
    );
    assert_eq!(
        std::fs::read_to_string(kept.join("files/extra.txt")).expect("kept extra.txt"),
        "extra\n"
    );
    assert!(!sandbox.path().join("extra.txt").exists());

    let status = forge(sandbox.path(), &["status", &sandbox.run_dir()]);
    let (report, _) = text(&status);
    assert_eq!(status.status.code(), Some(0));
    assert!(
        report.contains(&format!(
            "kept work of tasks that did not merge (files/ and changes.json in each):\n  {}\n",
            kept.display()
        )),
        "{report}"
    );
}
