//! Staging views against their peers, in one run on one generated tree shaped like a large
//! repository (about 50,000 files, deterministic seed; `FORGE_BENCH_FILES` overrides the
//! count):
//!
//! - overlay view create + drop vs `git worktree add` (target: <= 15 ms, >= 100x faster);
//! - the worktree backend's view creation vs `git worktree add`;
//! - overlay change collection after 10 edits (target: <= 5 ms);
//! - copy-backend collection (stat walk) vs `git status --porcelain` in the same copy;
//! - copy-backend view creation vs `cp -a`, and creation right after dropping a copy.
//!
//! - `base_snapshot`: what a fresh run pays at `Staging::open` to snapshot the working tree
//!   publishing merges against (index copy, `git add -A`, `git write-tree`), and what
//!   `changed_since_start` costs, vs `git status --porcelain`, after 10 edits by the user.
//!
//! The slow peers run ten samples of one iteration each; expect a few minutes in all
//! (`cargo bench --bench staging -- base_snapshot` runs only the snapshot group's samples).

#![forbid(unsafe_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode};
use forge_benches::{generate_repo as generate, git, n_files};
use forge_core::staging::{Backend, OverlayMode, Staging, StagingOptions, View};

/// Ten edits an agent might make: modify, add, delete.
fn edit(root: &Path, files: &[PathBuf]) {
    for (i, f) in files.iter().take(6).enumerate() {
        fs::write(root.join(f), format!("edited {i}\n")).expect("edit");
    }
    fs::write(root.join("new-a.rs"), "a").expect("add");
    fs::write(
        root.join(files[0].parent().expect("in a dir"))
            .join("new-b.rs"),
        "b",
    )
    .expect("add");
    fs::remove_file(root.join(&files[10])).expect("delete");
    fs::remove_file(root.join(&files[11])).expect("delete");
}

fn some_files(repo: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(repo.join("d0")).expect("read dir") {
        let p = entry.expect("entry").path();
        if p.is_file() {
            out.push(p.strip_prefix(repo).expect("below repo").to_owned());
        }
    }
    out.sort();
    assert!(out.len() >= 12, "d0 should hold at least 12 files");
    out
}

fn staging_benches(c: &mut Criterion) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = tmp.path().join("repo");
    fs::create_dir(&repo).expect("mkdir");
    let t = Instant::now();
    let bytes = generate(&repo, n_files());
    eprintln!(
        "generated {} files, {} MB, in {:.1?}",
        n_files(),
        bytes >> 20,
        t.elapsed()
    );
    let files = some_files(&repo);

    let mut group = c.benchmark_group("staging");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));

    // Plain mounts (root) and mounts in a user namespace (what users without root get);
    // then both again while this process holds 1 GiB, because each namespace mount runs
    // in a child process and must not cost more in a big caller.
    let mut ballast: Vec<u8> = Vec::new();
    for (label, mode, big) in [
        ("overlay", OverlayMode::Mount, false),
        (
            "overlay (user namespace)",
            OverlayMode::UserNamespace,
            false,
        ),
        ("overlay, caller holding 1 GiB", OverlayMode::Mount, true),
        (
            "overlay (user namespace), caller holding 1 GiB",
            OverlayMode::UserNamespace,
            true,
        ),
    ] {
        if big && ballast.is_empty() {
            // Written, so the pages are resident.
            ballast = vec![1u8; 1 << 30];
        }
        let mut opts = StagingOptions::with_backend(Some(Backend::Overlay));
        opts.overlay_mode = mode;
        let run_dir = tmp.path().join(format!("run-overlay-{mode:?}-{big}"));
        let overlay = match Staging::open(&repo, &run_dir, opts) {
            Ok(overlay) => overlay,
            Err(e) => {
                eprintln!("{label} unavailable, its benches skipped: {e}");
                continue;
            }
        };
        let mut n = 0u64;
        group.bench_function(format!("{label} view create+drop"), |b| {
            b.iter(|| {
                n += 1;
                let view = overlay
                    .create_view(0, &format!("v{n}"))
                    .expect("overlay view");
                drop(view);
            });
        });
        overlay.wait_for_teardown();
        if big {
            continue;
        }
        let view = overlay.create_view(0, "edited").expect("overlay view");
        edit(view.path(), &files);
        group.bench_function(format!("{label} collect after 10 edits"), |b| {
            b.iter(|| {
                let changes = view.collect().expect("collect");
                assert_eq!(changes.changes.len(), 10);
            });
        });
    }
    drop(std::hint::black_box(ballast));

    let slow = |group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>| {
        // One iteration per sample, ten samples: each iteration takes seconds.
        group
            .sampling_mode(SamplingMode::Flat)
            .sample_size(10)
            .measurement_time(Duration::from_secs(5))
            .warm_up_time(Duration::from_millis(1));
    };
    slow(&mut group);

    // Copies are kept until the end: ext4 creates run much slower right after a large
    // delete (it rescans freed inodes), which would measure the deletes, not the creates.
    let wt_dir = tmp.path().join("worktrees");
    fs::create_dir(&wt_dir).expect("mkdir");
    let mut n = 0u64;
    group.bench_function("git worktree add", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                n += 1;
                let path = wt_dir.join(format!("w{n}"));
                let t = Instant::now();
                git(
                    &repo,
                    &[
                        "worktree",
                        "add",
                        "-q",
                        "--detach",
                        &path.to_string_lossy(),
                        "HEAD",
                    ],
                );
                total += t.elapsed();
            }
            total
        });
    });
    git(&repo, &["worktree", "prune"]);

    // forge's worktree backend, its peer: a repository of its own per view (`git init`,
    // alternates to the repository's objects, refs copied, `git read-tree -u HEAD`), plus
    // the repository's `git status` for its working changes.
    let worktree = Staging::open(
        &repo,
        &tmp.path().join("run-worktree"),
        StagingOptions::with_backend(Some(Backend::Worktree)),
    )
    .expect("worktree staging");
    let mut kept_worktrees = Vec::new();
    group.bench_function("worktree view create", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                n += 1;
                let t = Instant::now();
                let view = worktree
                    .create_view(0, &format!("w{n}"))
                    .expect("worktree view");
                total += t.elapsed();
                kept_worktrees.push(view);
            }
            total
        });
    });

    let cp_dir = tmp.path().join("cp");
    fs::create_dir(&cp_dir).expect("mkdir");
    group.bench_function("cp -a", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                n += 1;
                let dst = cp_dir.join(format!("copy{n}"));
                let t = Instant::now();
                let status = Command::new("cp")
                    .arg("-a")
                    .arg(&repo)
                    .arg(&dst)
                    .status()
                    .expect("cp runs");
                total += t.elapsed();
                assert!(status.success());
            }
            total
        });
    });

    let copy = Staging::open(
        &repo,
        &tmp.path().join("run-copy"),
        StagingOptions::with_backend(Some(Backend::Copy)),
    )
    .expect("copy staging");
    let mut kept = Vec::new();
    group.bench_function("copy view create", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                n += 1;
                let t = Instant::now();
                let view = copy.create_view(0, &format!("c{n}")).expect("copy view");
                total += t.elapsed();
                kept.push(view);
            }
            total
        });
    });
    // Teardown off the hot path: dropping a copy moves it aside and deletes it on a
    // background thread, so the next create should not pay for the delete.
    let mut previous: Option<View> = kept.pop();
    group.bench_function("copy view drop previous + create", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                n += 1;
                let t = Instant::now();
                drop(previous.take());
                let view = copy.create_view(0, &format!("c{n}")).expect("copy view");
                total += t.elapsed();
                previous = Some(view);
            }
            total
        });
    });
    drop(previous);

    let view: View = copy.create_view(0, "walk").expect("copy view");
    edit(view.path(), &files);
    // Let git refresh its index for the copy once, as it would after the first status.
    let _ = Command::new("git")
        .arg("-C")
        .arg(view.path())
        .args(["status", "--porcelain"])
        .output();
    group
        .sampling_mode(SamplingMode::Auto)
        .sample_size(20)
        .measurement_time(Duration::from_secs(3));
    group.bench_function("copy collect (stat walk) after 10 edits", |b| {
        b.iter(|| {
            let changes = view.collect().expect("collect");
            assert_eq!(changes.changes.len(), 10);
        });
    });
    group.bench_function("git status --porcelain after 10 edits", |b| {
        b.iter(|| {
            let out = Command::new("git")
                .arg("-C")
                .arg(view.path())
                .args(["status", "--porcelain"])
                .output()
                .expect("git");
            assert!(out.status.success());
        });
    });
    group.finish();
    let t = Instant::now();
    drop(kept);
    drop(kept_worktrees);
    eprintln!(
        "dropping the copy views took {:.1?} on the caller's thread",
        t.elapsed()
    );
    copy.wait_for_teardown();
    worktree.wait_for_teardown();
}

/// The base snapshot of a fresh run (issue 13 item 2) against `git status --porcelain`.
fn base_snapshot_benches(c: &mut Criterion) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = tmp.path().join("repo");
    fs::create_dir(&repo).expect("mkdir");
    generate(&repo, n_files());
    // The user's working tree is a little dirty, as it usually is.
    edit(&repo, &some_files(&repo));
    let status = || {
        let out = Command::new("git")
            .arg("-C")
            .arg(&repo)
            .args(["status", "--porcelain"])
            .output()
            .expect("git");
        assert!(out.status.success());
    };
    // Let git refresh the index once, as the user's own tools would have.
    status();
    let mut group = c.benchmark_group("base_snapshot");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_secs(3));
    let opts = StagingOptions::with_backend(Some(Backend::Copy));
    let mut n = 0u64;
    group.bench_function("Staging::open of a fresh run (snapshot)", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                n += 1;
                let run_dir = tmp.path().join(format!("run{n}"));
                let t = Instant::now();
                let staging = Staging::open(&repo, &run_dir, opts.clone()).expect("open");
                total += t.elapsed();
                drop(staging);
                fs::remove_dir_all(&run_dir).expect("remove run dir");
            }
            total
        });
    });
    let staging = Staging::open(&repo, &tmp.path().join("run"), opts.clone()).expect("open");
    group.bench_function("changed_since_start", |b| {
        b.iter(|| assert!(staging.changed_since_start().expect("changed").is_empty()));
    });
    group.bench_function("git status --porcelain", |b| b.iter(status));
    group.finish();
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    base_snapshot_benches(&mut criterion);
    staging_benches(&mut criterion);
    criterion.final_summary();
}
