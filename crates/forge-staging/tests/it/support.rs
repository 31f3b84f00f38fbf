//! Fixtures: a small repository, the list of backends that work here, tree hashing.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use forge_staging::{Backend, OverlayMode, Staging, StagingOptions, View};

/// Whether overlay tests with plain mounts run: they need root, and overlay must work
/// then unless `FORGE_ALLOW_SKIP_OVERLAY=1`, in which case a test says why and skips.
pub(crate) fn overlay_ok() -> bool {
    if !rustix::process::geteuid().is_root() {
        static SAID: OnceLock<()> = OnceLock::new();
        SAID.get_or_init(|| {
            eprintln!("skipping plain overlay mounts: they need root (overlay in a user namespace is still tested)");
        });
        return false;
    }
    mode_works(OverlayMode::Mount)
}

/// Whether overlay tests in a user namespace run. They must work unless
/// `FORGE_ALLOW_SKIP_OVERLAY=1`, in which case a test says why and skips.
pub(crate) fn userns_ok() -> bool {
    mode_works(OverlayMode::UserNamespace)
}

fn mode_works(mode: OverlayMode) -> bool {
    static RESULTS: [OnceLock<Result<(), String>>; 2] = [OnceLock::new(), OnceLock::new()];
    let result = RESULTS[usize::from(mode == OverlayMode::UserNamespace)].get_or_init(|| {
        let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
        let repo = tmp.path().join("repo");
        fs::create_dir(&repo).map_err(|e| e.to_string())?;
        Staging::open(
            &repo,
            &tmp.path().join("run"),
            Setup::overlay(mode).options(),
        )
        .map(|_| ())
        .map_err(|e| e.to_string())
    });
    match result {
        Ok(()) => true,
        Err(reason) if std::env::var("FORGE_ALLOW_SKIP_OVERLAY").as_deref() == Ok("1") => {
            eprintln!("skipping overlay ({mode:?}): {reason} (FORGE_ALLOW_SKIP_OVERLAY=1)");
            false
        }
        Err(reason) => panic!(
            "overlayfs ({mode:?}) does not work here: {reason}; run on Linux 5.11 or newer (as root for plain mounts), or set FORGE_ALLOW_SKIP_OVERLAY=1 to skip"
        ),
    }
}

/// One way of making views that tests cover: a backend and, for overlay, how it mounts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Setup {
    pub(crate) backend: Backend,
    pub(crate) overlay: OverlayMode,
}

impl Setup {
    pub(crate) fn overlay(mode: OverlayMode) -> Setup {
        Setup {
            backend: Backend::Overlay,
            overlay: mode,
        }
    }

    pub(crate) fn options(self) -> StagingOptions {
        let mut opts = StagingOptions::with_backend(Some(self.backend));
        opts.overlay_mode = self.overlay;
        opts
    }

    /// A name usable as a file name.
    pub(crate) fn slug(self) -> String {
        match (self.backend, self.overlay) {
            (Backend::Overlay, OverlayMode::UserNamespace) => "overlay-userns".into(),
            (backend, _) => backend.to_string(),
        }
    }

    /// Whether renaming a directory of an older generation fails with `EXDEV` here.
    pub(crate) fn renames_lower_dirs(self) -> bool {
        !(self.backend == Backend::Overlay && self.overlay == OverlayMode::UserNamespace)
    }
}

impl std::fmt::Display for Setup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.backend, self.overlay) {
            (Backend::Overlay, OverlayMode::UserNamespace) => {
                f.write_str("overlay (user namespace)")
            }
            (backend, _) => write!(f, "{backend}"),
        }
    }
}

/// The fixture repository in a temporary directory and a staging of it made with `setup`
/// (run directory `run` beside the repository).
pub(crate) fn fixture(setup: Setup) -> (tempfile::TempDir, PathBuf, Staging) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = tmp.path().join("repo");
    make_repo(&repo);
    let staging = Staging::open(&repo, &tmp.path().join("run"), setup.options()).expect("open");
    (tmp, repo, staging)
}

/// What to test: copy, reflink (may fall back to copy), worktree, overlay with plain
/// mounts (root) and overlay in a user namespace.
pub(crate) fn setups() -> Vec<Setup> {
    let mut out: Vec<Setup> = [Backend::Copy, Backend::Reflink, Backend::Worktree]
        .into_iter()
        .map(|backend| Setup {
            backend,
            overlay: OverlayMode::Auto,
        })
        .collect();
    if overlay_ok() {
        out.push(Setup::overlay(OverlayMode::Mount));
    }
    if userns_ok() {
        out.push(Setup::overlay(OverlayMode::UserNamespace));
    }
    out
}

/// A proptest configuration of `cases` cases, or `soak_cases` with `FORGE_SOAK=1`, without
/// failure files.
pub(crate) fn proptest_config(cases: u32, soak_cases: u32) -> proptest::test_runner::Config {
    proptest::test_runner::Config {
        cases: if std::env::var("FORGE_SOAK").as_deref() == Ok("1") {
            soak_cases
        } else {
            cases
        },
        failure_persistence: None,
        ..proptest::test_runner::Config::default()
    }
}

/// Runs git in `dir` and returns its standard output.
pub(crate) fn git(dir: &Path, args: &[&str]) -> String {
    let mut cmd = Command::new("git");
    cmd.arg("-C").arg(dir);
    run_git(cmd, args)
}

/// Runs git in a view (joining its namespace if it has one) and returns its output.
pub(crate) fn git_in(view: &View, args: &[&str]) -> String {
    let mut cmd = Command::new("git");
    match view.namespace() {
        Some(ns) => ns.configure(&mut cmd),
        None => {
            cmd.current_dir(view.path());
        }
    }
    run_git(cmd, args)
}

fn run_git(mut cmd: Command, args: &[&str]) -> String {
    let out = cmd
        .args([
            "-c",
            "user.name=forge",
            "-c",
            "user.email=forge@example.invalid",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("git output is UTF-8")
}

/// Writes the fixture repository into `repo` and commits it with git.
pub(crate) fn make_repo(repo: &Path) {
    let files: &[(&str, &str)] = &[
        (".gitignore", "target/\n"),
        ("README.md", "# fixture\n\nhello\n"),
        ("src/main.rs", "fn main() {\n    println!(\"hi\");\n}\n"),
        ("src/lib.rs", "pub fn f() -> u32 {\n    1\n}\n"),
        ("src/util/mod.rs", "pub mod x;\n"),
        ("src/util/x.rs", "pub const X: u8 = 1;\n"),
        ("docs/a.md", "a\n"),
        ("docs/deep/b.md", "b\n"),
        ("bin/run.sh", "#!/bin/sh\necho run\n"),
        ("target/debug/out", "build output\n"),
    ];
    for (path, data) in files {
        let p = repo.join(path);
        fs::create_dir_all(p.parent().expect("has a parent")).expect("mkdir");
        fs::write(&p, data).expect("write");
    }
    fs::set_permissions(repo.join("bin/run.sh"), fs::Permissions::from_mode(0o755)).expect("chmod");
    std::os::unix::fs::symlink("README.md", repo.join("link")).expect("symlink");
    // Git does not track empty directories; every view must still show them.
    fs::create_dir_all(repo.join("empty/nested")).expect("mkdir");
    git(repo, &["init", "-q"]);
    git(repo, &["add", "-A"]);
    git(repo, &["commit", "-q", "-m", "fixture"]);
}

/// A digest of every path below `root` except `.git`: kind, mode and contents.
pub(crate) fn tree_digest(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for entry in walkdir::WalkDir::new(root).min_depth(1).sort_by_file_name() {
        let entry = entry.expect("walk");
        let rel = entry
            .path()
            .strip_prefix(root)
            .expect("below root")
            .to_string_lossy()
            .into_owned();
        if rel == ".git" || rel.starts_with(".git/") {
            continue;
        }
        let meta = fs::symlink_metadata(entry.path()).expect("stat");
        let desc = if meta.is_dir() {
            format!("dir {:o}", meta.permissions().mode())
        } else if meta.file_type().is_symlink() {
            format!(
                "link {}",
                fs::read_link(entry.path()).expect("readlink").display()
            )
        } else {
            let data = fs::read(entry.path()).expect("read");
            format!("file {:o} {:016x}", meta.permissions().mode(), fnv(&data))
        };
        out.insert(rel, desc);
    }
    out
}

fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
