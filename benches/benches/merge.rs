//! Three-way text merge throughput: forge-merge against `git merge-file -p` (spawned, so its
//! figure includes process start and file reads), a diff3 built on `similar`'s Myers diff, and
//! `diffy::merge`, on the same inputs in the same run.
//!
//! Inputs: code-like text of about 1 KB, 100 KB and 10 MB; ours and theirs each edit lines
//! scattered through the file, far enough apart that the merge is clean. Throughput is counted
//! in bytes of the base file.

#![forbid(unsafe_code)]
#![allow(
    missing_docs,
    reason = "criterion_group! and criterion_main! generate undocumented functions"
)]

use std::hint::black_box;
use std::path::Path;
use std::process::Command;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use forge_core::merge::{MergeOptions, merge};

/// Base, ours and theirs of about `size` bytes with scattered, non-overlapping edits.
fn inputs(size: usize) -> (String, String, String) {
    let mut base = Vec::new();
    let mut len = 0;
    let mut i = 0usize;
    while len < size {
        let line = format!(
            "    let value_{i} = compute(item_{}, {}); // step {i}",
            i % 977,
            i * 7 % 1000
        );
        len += line.len() + 1;
        base.push(line);
        i += 1;
    }
    let stride = (base.len() / 2).clamp(2, 100);
    let mut ours = base.clone();
    let mut theirs = base.clone();
    for k in (0..base.len()).step_by(stride) {
        ours[k] = format!("{} // ours", ours[k]);
        if let Some(line) = theirs.get_mut(k + stride / 2) {
            *line = format!("    // theirs\n{line}");
        }
    }
    let join = |v: Vec<String>| v.join("\n") + "\n";
    (join(base), join(ours), join(theirs))
}

/// A plain diff3 over `similar`'s line diff: changes of one side are taken, overlapping
/// changes become a conflict with ours kept. Enough to time the peer's diff and a merge walk.
fn similar_merge(base: &str, ours: &str, theirs: &str) -> Vec<u8> {
    use similar::{Algorithm, DiffOp, capture_diff_slices};

    fn split(s: &str) -> Vec<&str> {
        s.split_inclusive('\n').collect()
    }
    let (b, o, t) = (split(base), split(ours), split(theirs));
    // Hunks as (base range, side range).
    let hunks = |side: &[&str]| -> Vec<(usize, usize, usize, usize)> {
        capture_diff_slices(Algorithm::Myers, &b, side)
            .into_iter()
            .filter(|op| !matches!(op, DiffOp::Equal { .. }))
            .map(|op| {
                let (old, new) = (op.old_range(), op.new_range());
                (old.start, old.end, new.start, new.end)
            })
            .collect()
    };
    let (ho, ht) = (hunks(&o), hunks(&t));
    let mut out = Vec::with_capacity(ours.len());
    let (mut pos, mut i, mut j) = (0, 0, 0);
    while i < ho.len() || j < ht.len() {
        let take_ours = j >= ht.len() || (i < ho.len() && ho[i].1 < ht[j].0);
        let take_theirs = i >= ho.len() || (j < ht.len() && ht[j].1 < ho[i].0);
        let (hunk, lines) = if take_ours {
            i += 1;
            (ho[i - 1], &o)
        } else if take_theirs {
            j += 1;
            (ht[j - 1], &t)
        } else {
            // Overlap: a conflict; keep ours for the timing's sake.
            i += 1;
            j += 1;
            (ho[i - 1], &o)
        };
        for line in &b[pos.min(hunk.0)..hunk.0] {
            out.extend_from_slice(line.as_bytes());
        }
        for line in &lines[hunk.2..hunk.3] {
            out.extend_from_slice(line.as_bytes());
        }
        pos = pos.max(hunk.1);
    }
    for line in &b[pos..] {
        out.extend_from_slice(line.as_bytes());
    }
    out
}

fn git_merge_file(dir: &Path) -> Vec<u8> {
    Command::new("git")
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .args(["merge-file", "-p", "ours", "base", "theirs"])
        .output()
        .expect("git merge-file runs")
        .stdout
}

fn bench_merge(c: &mut Criterion) {
    let mut group = c.benchmark_group("merge");
    group.sample_size(10);
    for (name, size) in [("1KB", 1_000), ("100KB", 100_000), ("10MB", 10_000_000)] {
        let (base, ours, theirs) = inputs(size);
        let dir = tempfile::tempdir().expect("temp dir");
        for (file, text) in [("base", &base), ("ours", &ours), ("theirs", &theirs)] {
            std::fs::write(dir.path().join(file), text).expect("write input");
        }
        // Everyone must agree on the clean result before anything is timed.
        let expected = merge(
            base.as_bytes(),
            ours.as_bytes(),
            theirs.as_bytes(),
            &MergeOptions::default(),
        );
        assert!(expected.is_clean(), "bench inputs must merge cleanly");
        let expected = expected.render();
        assert_eq!(git_merge_file(dir.path()), expected, "git agrees at {name}");
        assert_eq!(
            similar_merge(&base, &ours, &theirs),
            expected,
            "similar agrees at {name}"
        );
        assert_eq!(
            diffy::merge(&base, &ours, &theirs)
                .expect("clean")
                .into_bytes(),
            expected,
            "diffy agrees at {name}"
        );

        group.throughput(Throughput::Bytes(base.len() as u64));
        let opts = MergeOptions::default();
        group.bench_with_input(BenchmarkId::new("forge", name), &(), |b, ()| {
            b.iter(|| {
                let m = merge(
                    black_box(base.as_bytes()),
                    ours.as_bytes(),
                    theirs.as_bytes(),
                    &opts,
                );
                black_box(m.render())
            });
        });
        group.bench_with_input(BenchmarkId::new("git-merge-file", name), &(), |b, ()| {
            b.iter(|| black_box(git_merge_file(dir.path())));
        });
        group.bench_with_input(BenchmarkId::new("similar-diff3", name), &(), |b, ()| {
            b.iter(|| black_box(similar_merge(black_box(&base), &ours, &theirs)));
        });
        group.bench_with_input(BenchmarkId::new("diffy", name), &(), |b, ()| {
            b.iter(|| black_box(diffy::merge(black_box(&base), &ours, &theirs)));
        });
    }
    group.finish();
}

criterion_group!(benches, bench_merge);
criterion_main!(benches);
