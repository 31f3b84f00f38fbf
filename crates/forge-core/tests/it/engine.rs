//! End-to-end runs of the engine with `ProcessExecutor` and shell-script agents on generated
//! repositories, for every staging backend that works here: the final tree must equal the
//! result of running the same scripts one after another in a plain copy.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use forge_core::staging::Backend;
use forge_core::{EngineOptions, Executors, Plan, ProcessExecutor, RunOptions, Task, run_engine};

/// Each agent: id, deps, declared writes (empty: anywhere), and its shell script.
const AGENTS: &[(&str, &[&str], &[&str], &str)] = &[
    (
        "models",
        &[],
        &["src/models/**"],
        "mkdir -p src/models && printf 'struct User;\\n' > src/models/user.rs",
    ),
    (
        "api",
        &["models"],
        &["src/api/**"],
        "mkdir -p src/api && cat src/models/user.rs > src/api/login.rs && echo '// login' >> src/api/login.rs",
    ),
    (
        "top",
        &[],
        &[],
        "sed -i 's/^line 3$/line 3 (top)/' src/shared.txt",
    ),
    (
        "bottom",
        &[],
        &[],
        "sed -i 's/^line 38$/line 38 (bottom)/' src/shared.txt",
    ),
    (
        "middle",
        &[],
        &[],
        "sed -i 's/^line 20$/line 20 (middle)/' src/shared.txt && sleep 0.05",
    ),
    (
        "exec",
        &[],
        &["bin/**"],
        "chmod +x bin/tool.sh && echo 'echo v2' >> bin/tool.sh",
    ),
    (
        "link",
        &[],
        &["docs/**"],
        "ln -s ../README.md docs/readme-link && rm docs/old.md",
    ),
    ("cleanup", &["api", "top"], &["tmp"], "rm -r tmp"),
    (
        "readme",
        &["api", "bottom", "middle"],
        &["README.md"],
        "ls src/api >> README.md",
    ),
];

fn generate(root: &Path) {
    let write = |path: &str, text: &str| {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    };
    write("README.md", "# sample\n");
    write(
        "src/shared.txt",
        &(1..=40).map(|i| format!("line {i}\n")).collect::<String>(),
    );
    write("bin/tool.sh", "#!/bin/sh\necho v1\n");
    write("docs/old.md", "old\n");
    for i in 0..30 {
        write(&format!("tmp/scratch-{i}.txt"), "scratch\n");
        write(
            &format!("src/lib/mod{i}.rs"),
            &format!("pub fn f{i}() {{}}\n"),
        );
    }
}

/// Every path under `root` with what it holds (files: content and executable bit; links:
/// target), ignoring `.git`.
fn snapshot(root: &Path) -> BTreeMap<String, String> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read dir") {
            let entry = entry.expect("entry");
            let path = entry.path();
            let rel = path
                .strip_prefix(root)
                .expect("under root")
                .to_string_lossy()
                .into_owned();
            if rel == ".git" {
                continue;
            }
            let meta = std::fs::symlink_metadata(&path).expect("stat");
            let value = if meta.file_type().is_symlink() {
                format!("-> {}", std::fs::read_link(&path).expect("link").display())
            } else if meta.is_dir() {
                stack.push(path);
                "dir".to_owned()
            } else {
                let exec = meta.permissions().mode() & 0o111 != 0;
                format!(
                    "exec={exec} {}",
                    String::from_utf8_lossy(&std::fs::read(&path).expect("read"))
                )
            };
            out.insert(rel, value);
        }
    }
    out
}

fn plan() -> Plan {
    let mut plan = Plan::default();
    for (id, deps, writes, script) in AGENTS {
        plan.push(
            Task::new(*id, *script)
                .deps(deps.iter().copied())
                .writes(writes.iter().copied()),
        );
    }
    plan
}

/// The reference: every script in plan order (a topological order) in one plain copy.
fn sequential(root: &Path) {
    for (id, _, _, script) in AGENTS {
        let status = Command::new("sh")
            .arg("-c")
            .arg(script)
            .current_dir(root)
            .status()
            .expect("sh");
        assert!(status.success(), "{id} fails when run alone");
    }
}

fn backends() -> Vec<Backend> {
    let mut out = vec![Backend::Copy, Backend::Reflink, Backend::Worktree];
    let probe = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(probe.path().join("repo")).expect("mkdir");
    match forge_core::staging::Staging::open(
        &probe.path().join("repo"),
        &probe.path().join("run"),
        forge_core::staging::StagingOptions::with_backend(Some(Backend::Overlay)),
    ) {
        Ok(_) => out.push(Backend::Overlay),
        Err(e) if std::env::var_os("FORGE_ALLOW_SKIP_OVERLAY").is_some() => {
            eprintln!("skipping overlay (FORGE_ALLOW_SKIP_OVERLAY is set): {e}");
        }
        Err(e) => panic!("overlay does not work here ({e}); FORGE_ALLOW_SKIP_OVERLAY=1 skips it"),
    }
    out
}

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

#[test]
fn parallel_runs_equal_the_sequential_result_on_every_backend() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let reference = tmp.path().join("reference");
    generate(&reference);
    sequential(&reference);
    let expected = snapshot(&reference);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    for backend in backends() {
        let repo = tmp.path().join(format!("repo-{backend}"));
        generate(&repo);
        git(&repo, &["init", "-q"]);
        git(&repo, &["add", "-A"]);
        git(&repo, &["commit", "-qm", "base"]);
        let executors =
            Executors::single(ProcessExecutor::from_template("sh -c {prompt}").expect("template"));
        let options = EngineOptions::new(&repo, tmp.path().join(format!("run-{backend}")))
            .backend(Some(backend))
            .run(RunOptions::default().jobs(4));
        let plan = plan().validate().expect("valid");
        let outcome = runtime
            .block_on(run_engine(&plan, &executors, options))
            .unwrap_or_else(|e| panic!("{backend}: {e}"));
        assert!(outcome.is_success(), "{backend}: {:?}", outcome.run);
        assert_eq!(
            snapshot(&repo),
            expected,
            "{backend}: the tree differs from the sequential run"
        );
    }
}
