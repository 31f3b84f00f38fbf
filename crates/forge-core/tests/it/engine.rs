//! End-to-end runs of the engine with `ProcessExecutor` and shell-script agents on generated
//! repositories, for every staging backend that works here: the final tree must equal the
//! result of running the same scripts one after another in a plain copy.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use forge_core::staging::{Backend, OverlayMode, StagingOptions};
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

/// Every staging setup that works here, by name: copy, reflink (may fall back to copy),
/// worktree, overlay (plain mounts as root) and overlay in a user namespace.
fn setups() -> Vec<(String, StagingOptions)> {
    let mut out: Vec<(String, StagingOptions)> =
        [Backend::Copy, Backend::Reflink, Backend::Worktree]
            .into_iter()
            .map(|b| (b.to_string(), StagingOptions::with_backend(Some(b))))
            .collect();
    let is_root = rustix::process::geteuid().is_root();
    for (name, mode) in [
        ("overlay", OverlayMode::Mount),
        ("overlay-userns", OverlayMode::UserNamespace),
    ] {
        if mode == OverlayMode::Mount && !is_root {
            eprintln!("skipping plain overlay mounts: they need root");
            continue;
        }
        let mut opts = StagingOptions::with_backend(Some(Backend::Overlay));
        opts.overlay_mode = mode;
        let probe = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(probe.path().join("repo")).expect("mkdir");
        match forge_core::staging::Staging::open(
            &probe.path().join("repo"),
            &probe.path().join("run"),
            opts.clone(),
        ) {
            Ok(_) => out.push((name.to_owned(), opts)),
            Err(e) if std::env::var_os("FORGE_ALLOW_SKIP_OVERLAY").is_some() => {
                eprintln!("skipping {name} (FORGE_ALLOW_SKIP_OVERLAY is set): {e}");
            }
            Err(e) => {
                panic!("{name} does not work here ({e}); FORGE_ALLOW_SKIP_OVERLAY=1 skips it")
            }
        }
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
    for (backend, staging) in setups() {
        let repo = tmp.path().join(format!("repo-{backend}"));
        generate(&repo);
        git(&repo, &["init", "-q"]);
        git(&repo, &["add", "-A"]);
        git(&repo, &["commit", "-qm", "base"]);
        let executors =
            Executors::single(ProcessExecutor::from_template("sh -c {prompt}").expect("template"));
        let mut options = EngineOptions::new(&repo, tmp.path().join(format!("run-{backend}")))
            .run(RunOptions::default().jobs(4));
        options.staging = staging;
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

/// Without root, views live in a user namespace: the process executor must start agents
/// inside it, at the view's real path, where tools that look at their working directory
/// (git here) work as usual.
#[test]
fn agents_start_inside_the_user_namespace_of_their_view() {
    let Some((_, staging)) = setups()
        .into_iter()
        .find(|(name, _)| name == "overlay-userns")
    else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = tmp.path().join("repo");
    generate(&repo);
    git(&repo, &["init", "-q"]);
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-qm", "base"]);
    let run_dir = tmp.path().join("run");
    let mut options = EngineOptions::new(&repo, &run_dir);
    options.staging = staging;
    let script = "pwd > where.txt && printf '%s' \"$FORGE_WORKDIR\" > workdir.txt \
                  && git status --porcelain --untracked-files=all > status.txt";
    let mut plan = Plan::default();
    plan.push(Task::new("probe", script));
    let executors =
        Executors::single(ProcessExecutor::from_template("sh -c {prompt}").expect("template"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let outcome = runtime
        .block_on(run_engine(
            &plan.validate().expect("valid"),
            &executors,
            options,
        ))
        .expect("run");
    assert!(outcome.is_success(), "{:?}", outcome.run);
    let read = |name: &str| std::fs::read_to_string(repo.join(name)).expect("published");
    let run_dir = std::fs::canonicalize(&run_dir).expect("run dir");
    let where_ = read("where.txt");
    assert!(
        where_.starts_with(&format!("{}/views/", run_dir.display())) && where_.ends_with("/mnt\n"),
        "the agent ran in {where_:?}, not at the view's real path"
    );
    assert_eq!(read("workdir.txt"), where_.trim_end());
    let status = read("status.txt");
    assert!(
        status.contains("?? where.txt"),
        "git status in the view: {status:?}"
    );
}

/// Task ids that sanitize to the same text (`a b` and `a_b`, or two ids sharing their first
/// 64 characters) shared a view name, and the second failed "already in use". Views are
/// unique per task and attempt; ids are only for display.
#[test]
fn trust_15_ids_that_sanitize_alike_get_their_own_views() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = tmp.path().join("repo");
    std::fs::create_dir(&repo).expect("mkdir");
    std::fs::write(repo.join("README.md"), "# sample\n").expect("write");
    git(&repo, &["init", "-q"]);
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-qm", "base"]);
    let long = "x".repeat(64);
    let ids = [
        "a b".to_owned(),
        "a_b".to_owned(),
        format!("{long}-one"),
        format!("{long}-two"),
    ];
    let mut plan = Plan::default();
    for (i, id) in ids.iter().enumerate() {
        // Every task holds its view open until all have started (at most 5 s).
        let tmp = tmp.path().display();
        let script = format!(
            "touch {tmp}/started-{i}; n=0; \
             while [ $(ls {tmp} | grep -c started-) -lt 4 ] && [ $n -lt 250 ]; \
             do sleep 0.02; n=$((n+1)); done; echo {i} > out-{i}.txt"
        );
        plan.push(Task::new(id.clone(), script));
    }
    let executors =
        Executors::single(ProcessExecutor::from_template("sh -c {prompt}").expect("template"));
    let mut options =
        EngineOptions::new(&repo, tmp.path().join("run")).run(RunOptions::default().jobs(4));
    options.staging = StagingOptions::with_backend(Some(Backend::Copy));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let outcome = runtime
        .block_on(run_engine(
            &plan.validate().expect("valid"),
            &executors,
            options,
        ))
        .expect("runs");
    assert!(outcome.is_success(), "{:?}", outcome.run);
    for i in 0..ids.len() {
        assert_eq!(
            std::fs::read_to_string(repo.join(format!("out-{i}.txt"))).expect("merged"),
            format!("{i}\n")
        );
    }
}
