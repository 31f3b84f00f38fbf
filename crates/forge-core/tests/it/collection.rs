//! The engine merges what git would see and never deletes what it ignores (issue 13
//! items 5 and 6), on the copy backend and the automatic choice (overlay as root).

use std::path::Path;
use std::process::Command;

use forge_core::staging::{Backend, StagingOptions};
use forge_core::{EngineOptions, Executors, Plan, ProcessExecutor, Task, run_engine};

fn git(root: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=forge",
            "-c",
            "user.email=forge@example.com",
        ])
        .args(args)
        .current_dir(root)
        .output()
        .expect("git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn write(root: &Path, path: &str, text: &str) {
    let path = root.join(path);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

/// Runs the one-task plan `script` (declared `writes`) on `repo` with `staging`.
fn run_one(repo: &Path, run_dir: &Path, staging: StagingOptions, script: &str, writes: &str) {
    let mut plan = Plan::default();
    plan.push(Task::new("agent", script).writes([writes]));
    let plan = plan.validate().expect("valid");
    let executors =
        Executors::single(ProcessExecutor::from_template("sh -c {prompt}").expect("template"));
    let mut options = EngineOptions::new(repo, run_dir);
    options.staging = staging;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let outcome = runtime
        .block_on(run_engine(&plan, &executors, options))
        .expect("run");
    assert!(outcome.is_success(), "{:?}", outcome.run);
}

fn stagings() -> [(&'static str, StagingOptions); 2] {
    [
        ("copy", StagingOptions::with_backend(Some(Backend::Copy))),
        ("auto", StagingOptions::default()),
    ]
}

#[test]
fn trust_05_engine_merges_a_tracked_file_under_target() {
    for (name, staging) in stagings() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let repo = tmp.path().join("repo");
        write(&repo, ".gitignore", "target/\n");
        write(&repo, "src/target/m.rs", "old\n");
        git(&repo, &["init", "-q"]);
        git(&repo, &["add", "-A"]);
        git(&repo, &["add", "-f", "src/target/m.rs"]);
        git(&repo, &["commit", "-qm", "base"]);
        run_one(
            &repo,
            &tmp.path().join("run"),
            staging,
            "echo edited > src/target/m.rs",
            "src/target/**",
        );
        assert_eq!(
            std::fs::read_to_string(repo.join("src/target/m.rs")).expect("read"),
            "edited\n",
            "{name}"
        );
    }
}

#[test]
fn trust_06_engine_rm_rf_keeps_a_nested_repository() {
    for (name, staging) in stagings() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let repo = tmp.path().join("repo");
        write(&repo, "vendor/README", "vendored\n");
        git(&repo, &["init", "-q"]);
        git(&repo, &["add", "-A"]);
        git(&repo, &["commit", "-qm", "base"]);
        let lib = repo.join("vendor/lib");
        write(&lib, "x.c", "int x;\n");
        git(&lib, &["init", "-q"]);
        git(&lib, &["add", "-A"]);
        git(&lib, &["commit", "-qm", "unpushed"]);
        run_one(
            &repo,
            &tmp.path().join("run"),
            staging,
            "rm -rf vendor",
            "vendor/**",
        );
        assert!(!repo.join("vendor/README").exists(), "{name}");
        assert!(
            lib.join("x.c").is_file(),
            "{name}: the nested repository was touched"
        );
        assert!(
            lib.join(".git/HEAD").is_file(),
            "{name}: the nested .git was deleted"
        );
    }
}
