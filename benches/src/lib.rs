//! Fixtures shared by forge's criterion benches: deterministic inputs that every bench file
//! and its peer measure in the same run.

#![forbid(unsafe_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Words the generated files are made of, so that they compress like source text.
const WORDS: &[&str] = &[
    "fn", "let", "mut", "struct", "impl", "pub", "use", "self", "match", "return", "if", "else",
    "for", "in", "while", "loop", "const", "static", "enum", "trait", "where", "async", "await",
    "Some", "None", "Ok", "Err", "String", "Vec", "Option", "Result", "value", "index", "buffer",
    "config", "request", "response", "handler",
];

/// How many files a generated repository has: `FORGE_BENCH_FILES`, else 50,000.
pub fn n_files() -> usize {
    std::env::var("FORGE_BENCH_FILES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000)
}

/// A file size drawn from a log-normal spread (median about 1.5 KB, a long tail to 1 MB),
/// like the files of a real repository.
fn file_size(rng: &mut StdRng) -> usize {
    // Box-Muller for a standard normal sample.
    let u1: f64 = rng.random_range(f64::EPSILON..1.0);
    let u2: f64 = rng.random();
    let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
    ((1500.0 * (1.4 * z).exp()) as usize).clamp(0, 1 << 20)
}

fn text(rng: &mut StdRng, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 16);
    while out.len() < len {
        out.extend_from_slice(WORDS[rng.random_range(0..WORDS.len())].as_bytes());
        out.push(if rng.random_range(0..10) == 0 {
            b'\n'
        } else {
            b' '
        });
    }
    out.truncate(len);
    out
}

/// Writes a tree of `n` files shaped like a large repository into `repo` (deterministic:
/// the same seed every time; about 20 files a directory, nested up to six deep) and commits
/// it with git; returns its total size in bytes.
///
/// # Panics
///
/// When the tree cannot be written or git fails (a bench cannot go on then).
pub fn generate_repo(repo: &Path, n: usize) -> u64 {
    let mut rng = StdRng::seed_from_u64(0x5eed_f0a6e);
    let mut dirs = vec![PathBuf::new()];
    let mut total = 0u64;
    for i in 0..n {
        if i % 20 == 0 {
            let parent = dirs[rng.random_range(0..dirs.len())].clone();
            let dir = if parent.components().count() >= 6 {
                PathBuf::from(format!("d{i}"))
            } else {
                parent.join(format!("d{i}"))
            };
            fs::create_dir_all(repo.join(&dir)).expect("mkdir");
            dirs.push(dir);
        }
        let dir = &dirs[dirs.len() - 1 - rng.random_range(0..dirs.len().min(4))];
        let size = file_size(&mut rng);
        total += size as u64;
        fs::write(
            repo.join(dir).join(format!("f{i}.rs")),
            text(&mut rng, size),
        )
        .expect("write");
    }
    git(repo, &["init", "-q"]);
    git(repo, &["add", "-A"]);
    git(repo, &["commit", "-q", "-m", "generated"]);
    git(repo, &["repack", "-a", "-d", "-q", "--window=0"]);
    git(repo, &["prune"]);
    total
}

/// The tokio runtime the benches measure async code on: 2 worker threads (the machine's 2
/// cores), every driver enabled.
///
/// # Panics
///
/// When the runtime cannot be built.
#[must_use]
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Runs git in `dir` with a fixed identity and no automatic gc.
///
/// # Panics
///
/// When git fails.
pub fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=bench",
            "-c",
            "user.email=bench@example.invalid",
            "-c",
            "gc.auto=0",
        ])
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("git runs");
    assert!(status.success(), "git {args:?} failed in {}", dir.display());
}
