//! The chaos test's invariants: what a run's journal says happened, the expected working tree
//! (the user's edits plus the change sets of the tasks the run reports as merged) and the
//! comparison of that model with the working tree on disk.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::world::{BIG, Finished, Found, ends_are_zero};

/// Invariant (f): peak memory of a `forge` process, plus the largest file merged on both
/// sides (none of the operations changes a file on both sides).
const MEMORY_KIB: u64 = 200 << 10;

/// What the model expects at a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Want {
    /// A regular file with these bytes and, when it matters, these permission bits.
    File { bytes: Vec<u8>, mode: Option<u32> },
    /// A symbolic link to this target.
    Link(String),
    /// A file of this length that reads as zeros and is stored sparse.
    Sparse(u64),
    /// A file that starts with `prefix`, followed by any of `lines` (each with a newline),
    /// with these permission bits: an ignored file whose agent edits may or may not be merged
    /// (`.env`).
    Prefix {
        prefix: Vec<u8>,
        lines: Vec<String>,
        mode: u32,
    },
}

/// A working tree as the model sees it.
pub(crate) type Model = BTreeMap<String, Want>;

/// The bytes of the file `path` in `model` (empty when absent or not a file).
pub(crate) fn bytes_of(model: &Model, path: &str) -> Vec<u8> {
    match model.get(path) {
        Some(Want::File { bytes, .. }) => bytes.clone(),
        _ => Vec::new(),
    }
}

/// Replaces line `k` (1-based) of the file `path` in `model` with `text`.
pub(crate) fn replace_line(model: &mut Model, path: &str, k: usize, text: &str) {
    if let Some(Want::File { bytes, .. }) = model.get_mut(path) {
        let old = String::from_utf8_lossy(bytes).into_owned();
        let new: String = old
            .split_inclusive('\n')
            .enumerate()
            .map(|(i, line)| {
                if i + 1 == k {
                    format!("{text}\n")
                } else {
                    line.to_owned()
                }
            })
            .collect();
        *bytes = new.into_bytes();
    }
}

/// What a run's journal (`RUN_DIR/journal.jsonl`, both `run` and `resume`) says.
#[derive(Debug, Default)]
pub(crate) struct Journal {
    /// Tasks with a `task_merged` record.
    pub(crate) merged: BTreeSet<String>,
    /// Whether the last `run_published` record says the head was written to the repository.
    pub(crate) published: bool,
    /// Paths named by a publish-time conflict report: any event whose kind mentions
    /// `conflict` other than a task's `merge_conflict` (the fix of item 2 adds one).
    pub(crate) publish_conflicts: BTreeSet<String>,
    /// Errors that report a panic (a worker's panic is caught and fails its task).
    pub(crate) panics: Vec<String>,
    /// Lines that did not parse as a JSON record.
    pub(crate) garbage: usize,
}

impl Journal {
    /// Reads the journal in `run_dir` (empty when there is none).
    pub(crate) fn read(run_dir: &Path) -> Self {
        let text = std::fs::read_to_string(run_dir.join("journal.jsonl")).unwrap_or_default();
        let mut journal = Self::default();
        for line in text.lines() {
            let Ok(record) = serde_json::from_str::<serde_json::Value>(line) else {
                journal.garbage += 1;
                continue;
            };
            let event = record.get("event").unwrap_or(&record);
            let kind = event["kind"].as_str().unwrap_or_default();
            let task = event["task"].as_str().unwrap_or_default().to_owned();
            if let Some(error) = event["error"].as_str()
                && error.contains("panicked")
            {
                journal.panics.push(format!("{task}: {error}"));
            }
            match kind {
                "task_merged" => {
                    journal.merged.insert(task);
                }
                "run_published" => journal.published = event["published"] == true,
                "merge_conflict" => {}
                kind if kind.contains("conflict") => {
                    let paths = event["paths"].as_array().into_iter().flatten();
                    let path = event.get("path").into_iter();
                    for p in paths.chain(path).filter_map(|p| p.as_str()) {
                        journal.publish_conflicts.insert(p.to_owned());
                    }
                }
                _ => {}
            }
        }
        journal
    }
}

/// A line the simulated user appended to a file, or a file it created.
#[derive(Debug, Clone)]
pub(crate) enum UserMark {
    /// `line` (without its newline) was appended to `path`.
    Appended { path: String, line: String },
    /// `path` was created.
    Created { path: String },
}

/// Everything the comparison needs about one case.
pub(crate) struct Expectation<'a> {
    /// The working tree the model expects.
    pub(crate) expected: &'a Model,
    /// The working tree with the user's edits only (what a reported conflict leaves).
    pub(crate) user_only: &'a Model,
    /// The user's appended lines and created files.
    pub(crate) marks: &'a [UserMark],
    /// Paths a run reported as a publish conflict.
    pub(crate) conflicts: &'a BTreeSet<String>,
    /// Known escapes (absolute-path writes, issue 16) tolerated at these paths with these bytes.
    pub(crate) escapes: &'a BTreeMap<String, Vec<u8>>,
    /// The run directories (a conflicted path's run version must be kept in one of them).
    pub(crate) run_dirs: &'a [&'a Path],
    /// The repository.
    pub(crate) repo: &'a Path,
}

/// Checks invariants (a) and (b) on the working tree `found`: every violation is pushed to
/// `out`; returns how many known escapes were tolerated.
pub(crate) fn compare(
    x: &Expectation<'_>,
    found: &BTreeMap<String, Found>,
    out: &mut Vec<String>,
) -> usize {
    let mut lost_user_work = BTreeSet::new();
    // (a) no byte of the user's work lost.
    for mark in x.marks {
        let (path, ok) = match mark {
            UserMark::Appended { path, line } => {
                let needle = format!("{line}\n");
                let ok = match found.get(path) {
                    Some(Found::File { bytes: Some(b), .. }) => {
                        String::from_utf8_lossy(b).contains(&needle)
                    }
                    _ => false,
                };
                (path, ok)
            }
            UserMark::Created { path } => (path, found.contains_key(path)),
        };
        if ok || lost_user_work.contains(path) {
            continue;
        }
        if x.conflicts.contains(path) {
            if !kept_in_run_dir(x.run_dirs, path) {
                out.push(format!(
                    "(a) {path}: reported as a publish conflict but the run's version is not kept in its run directory"
                ));
            }
            continue;
        }
        lost_user_work.insert(path.clone());
        out.push(format!(
            "(a) user's work lost in {path}: {mark:?} is gone (now: {})",
            describe(found.get(path))
        ));
    }
    // (b) the working tree is the merge of the user's edits and the merged change sets.
    let mut tolerated = 0;
    let paths: BTreeSet<&String> = x.expected.keys().chain(found.keys()).collect();
    for path in paths {
        if lost_user_work.contains(path) {
            continue;
        }
        let want = if x.conflicts.contains(path) {
            x.user_only.get(path)
        } else {
            x.expected.get(path)
        };
        let have = found.get(path);
        match (want, have) {
            (Some(want), Some(have)) => {
                if !matches(want, have, &x.repo.join(path)) {
                    out.push(format!(
                        "(b) {path} differs from the merge of the user's edits and the merged tasks: {}",
                        difference(want, have)
                    ));
                }
            }
            (Some(want), None) => out.push(format!(
                "(b) {path} is missing: want {}",
                describe_want(want)
            )),
            (None, Some(have)) => {
                let escaped = matches!(have, Found::File { bytes: Some(b), .. } if x.escapes.get(path) == Some(b));
                if escaped {
                    // Known escape until the sandbox issue (issue 16): an absolute-path
                    // write reaches the repository without a merge and without a report.
                    tolerated += 1;
                } else {
                    out.push(format!(
                        "(b) {path} arrived unmerged: neither the initial tree, the user's edits nor a merged task explains {}",
                        describe(Some(have))
                    ));
                }
            }
            (None, None) => {}
        }
    }
    tolerated
}

/// Whether some run directory keeps a file whose path ends with `path`.
fn kept_in_run_dir(run_dirs: &[&Path], path: &str) -> bool {
    let mut stack: Vec<_> = run_dirs.iter().map(|d| d.to_path_buf()).collect();
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let p = entry.path();
            if p.is_dir() && !p.is_symlink() {
                stack.push(p);
            } else if p.to_string_lossy().ends_with(&format!("/{path}")) {
                return true;
            }
        }
    }
    false
}

fn matches(want: &Want, have: &Found, disk: &Path) -> bool {
    match (want, have) {
        (
            Want::File { bytes, mode },
            Found::File {
                bytes: Some(b),
                mode: m,
                ..
            },
        ) => bytes == b && mode.is_none_or(|mode| mode == *m),
        (Want::Link(target), Found::Link(t)) => target == t,
        (Want::Sparse(len), Found::File { len: l, blocks, .. }) => {
            // Sparse: well under 1% of the length is allocated.
            *len == *l && blocks * 512 <= len / 100 && (*l <= BIG || ends_are_zero(disk))
        }
        (
            Want::Prefix {
                prefix,
                lines,
                mode,
            },
            Found::File {
                bytes: Some(b),
                mode: m,
                ..
            },
        ) => {
            mode == m
                && b.starts_with(prefix)
                && String::from_utf8_lossy(&b[prefix.len()..])
                    .lines()
                    .all(|line| lines.iter().any(|l| l == line))
        }
        _ => false,
    }
}

/// How `have` differs from `want`: the lines missing and the lines not expected when both are
/// text, else both described.
fn difference(want: &Want, have: &Found) -> String {
    let (
        Want::File { bytes: w, mode: wm },
        Found::File {
            bytes: Some(h),
            mode: hm,
            ..
        },
    ) = (want, have)
    else {
        return format!(
            "want {}, have {}",
            describe_want(want),
            describe(Some(have))
        );
    };
    let (w, h) = (String::from_utf8_lossy(w), String::from_utf8_lossy(h));
    let missing: Vec<&str> = w.lines().filter(|l| !h.lines().any(|x| x == *l)).collect();
    let extra: Vec<&str> = h.lines().filter(|l| !w.lines().any(|x| x == *l)).collect();
    let mut text = format!("lines missing {missing:?}, lines not expected {extra:?}");
    if let Some(wm) = wm
        && wm != hm
    {
        text.push_str(&format!(", mode {hm:o} instead of {wm:o}"));
    }
    if missing.is_empty() && extra.is_empty() && w != h {
        text.push_str(&format!(", order differs: have {}", preview(h.as_bytes())));
    }
    text
}

fn describe_want(want: &Want) -> String {
    match want {
        Want::File { bytes, mode } => format!(
            "file {} mode {}",
            preview(bytes),
            mode.map_or_else(|| "any".into(), |m| format!("{m:o}"))
        ),
        Want::Link(target) => format!("symlink -> {target}"),
        Want::Sparse(len) => format!("sparse zeros of {len} bytes"),
        Want::Prefix {
            prefix,
            lines,
            mode,
        } => {
            format!("file {} + any of {lines:?}, mode {mode:o}", preview(prefix))
        }
    }
}

/// A short description of what is on disk.
pub(crate) fn describe(found: Option<&Found>) -> String {
    match found {
        None => "nothing".into(),
        Some(Found::File {
            bytes,
            len,
            mode,
            nlink,
            blocks,
        }) => format!(
            "file {} ({len} bytes, mode {mode:o}, {nlink} links, {blocks} blocks)",
            bytes.as_deref().map_or_else(|| "(big)".into(), preview)
        ),
        Some(Found::Link(target)) => format!("symlink -> {target}"),
        Some(Found::Special) => "a special file (FIFO, socket or device)".into(),
    }
}

fn preview(bytes: &[u8]) -> String {
    const MAX: usize = 160;
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(MAX)]).into_owned();
    if bytes.len() > MAX {
        format!("{text:?}... ({} bytes)", bytes.len())
    } else {
        format!("{text:?}")
    }
}

/// Invariants (e) and (f) for one `forge` process: exit 0 or 1 (any status but a panic after
/// a signal), no hang, bounded memory.
pub(crate) fn judge_exit(name: &str, finished: &Finished, interrupted: bool, v: &mut Vec<String>) {
    let code = finished.status.and_then(|s| s.code());
    let elapsed = finished.elapsed;
    match finished.status {
        None if finished.over_memory => v.push(format!(
            "(f) {name} killed at the hard memory cap after {elapsed:?}"
        )),
        None => v.push(format!("(e) {name} hung: killed after {elapsed:?}")),
        Some(_) if code == Some(101) => v.push(format!("(e) {name} panicked (exit 101)")),
        Some(status) if !interrupted && !matches!(code, Some(0 | 1)) => {
            v.push(format!("(e) {name} ended with {status}, not exit 0 or 1"));
        }
        Some(_) => {}
    }
    if finished.peak_kib > MEMORY_KIB {
        v.push(format!(
            "(f) {name} peaked at {} MB (bound {} MB)",
            finished.peak_kib >> 10,
            MEMORY_KIB >> 10
        ));
    }
}
