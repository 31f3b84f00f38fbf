//! The chaos test's setup: the random repository (tracked files, a folder named `target`, an
//! untracked nested repository `vendor/lib` with a commit, an ignored `.env` with mode 0600),
//! plan files, and the simulated user who edits the working tree during the run.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use super::check::{self, Model, UserMark, Want};
use super::scenario::Case;
use super::world;

/// The files the simulated user appends to (tasks edit the first two, never the docs).
const USER_FILES: [&str; 6] = [
    "a.txt",
    "b.txt",
    "docs/d0.txt",
    "docs/d1.txt",
    "docs/d2.txt",
    "docs/d3.txt",
];

/// Something the simulated user does to the working tree.
#[derive(Debug, Clone, Copy)]
pub(crate) enum UserAct {
    /// Appends a line to `USER_FILES[i % 6]` (creating it when it was deleted).
    Append(u8),
    /// Deletes `docs/d{i % 4}.txt`.
    Delete(u8),
    /// Creates `user-{i}.txt`.
    Create(u8),
}

fn lines(prefix: &str) -> String {
    (1..=20).map(|i| format!("{prefix} line {i}\n")).collect()
}

/// Creates the repository (see the module doc of `chaos`) and returns its model.
pub(crate) fn build_repo(case: &Case, repo: &Path) -> Model {
    let mut model = Model::new();
    let mut add = |rel: &str, bytes: Vec<u8>, mode: Option<u32>| {
        world::put(repo, rel, &bytes);
        model.insert(rel.to_owned(), Want::File { bytes, mode });
    };
    add("a.txt", lines("a").into(), None);
    add("b.txt", lines("b").into(), None);
    add("tool.sh", b"#!/bin/sh\necho tool\n".to_vec(), Some(0o644));
    add("src/lib.rs", b"pub fn lib() {}\n".to_vec(), None);
    add("src/target/m.rs", lines("m").into(), None);
    for i in 0..4 {
        add(&format!("docs/d{i}.txt"), format!("doc {i}\n").into(), None);
    }
    for (i, text) in case.extras.iter().enumerate() {
        add(&format!("extra/e{i}.txt"), format!("{text}\n").into(), None);
    }
    add(".gitignore", b".env\n".to_vec(), None);
    world::chmod(repo, "tool.sh", 0o644);
    world::git(repo, &["init", "-q", "-b", "main"]);
    world::git(repo, &["add", "-A"]);
    world::git(repo, &["commit", "-qm", "initial"]);
    // The nested repository, untracked by the outer one, with a commit of its own.
    let nested = repo.join("vendor/lib");
    add("vendor/lib/lib.txt", b"lib\n".to_vec(), None);
    add("vendor/lib/README", b"nested\n".to_vec(), None);
    world::git(&nested, &["init", "-q", "-b", "main"]);
    world::git(&nested, &["add", "-A"]);
    world::git(&nested, &["commit", "-qm", "nested"]);
    world::put(repo, ".env", b"SECRET=1\n");
    world::chmod(repo, ".env", 0o600);
    model.insert(
        ".env".into(),
        Want::Prefix {
            prefix: b"SECRET=1\n".to_vec(),
            lines: Vec::new(),
            mode: 0o600,
        },
    );
    model
}

/// One task as the plan file states it.
pub(crate) struct PlanTask {
    pub(crate) id: String,
    pub(crate) script: String,
    pub(crate) deps: Vec<String>,
    pub(crate) writes: Vec<String>,
    pub(crate) retries: u32,
}

/// The plan file's text for `tasks`.
pub(crate) fn plan_toml(tasks: &[PlanTask]) -> String {
    let quote = |s: &str| serde_json::to_string(s).expect("a string serializes");
    let list = |v: &[String]| v.iter().map(|s| quote(s)).collect::<Vec<_>>().join(", ");
    let mut out = String::new();
    for PlanTask {
        id,
        script,
        deps,
        writes,
        retries,
    } in tasks
    {
        out.push_str(&format!(
            "[[task]]\nid = {}\nprompt = {}\n",
            quote(id),
            quote(script)
        ));
        if !deps.is_empty() {
            out.push_str(&format!("deps = [{}]\n", list(deps)));
        }
        if !writes.is_empty() {
            out.push_str(&format!("writes = [{}]\n", list(writes)));
        }
        if *retries > 0 {
            out.push_str(&format!("retries = {retries}\n"));
        }
        out.push('\n');
    }
    out
}

/// Performs the user's rounds on `repo`; returns the marks of what it did, in order.
pub(crate) fn perform_user(rounds: &[(u16, Vec<UserAct>)], repo: &Path) -> Vec<(UserAct, String)> {
    let start = std::time::Instant::now();
    let mut done = Vec::new();
    for (round, (at, acts)) in rounds.iter().enumerate() {
        let at = Duration::from_millis(u64::from(*at));
        std::thread::sleep(at.saturating_sub(start.elapsed()));
        for (i, act) in acts.iter().enumerate() {
            let line = format!("user {round}.{i}");
            match *act {
                UserAct::Append(f) => {
                    let path = USER_FILES[usize::from(f) % USER_FILES.len()];
                    let mut file = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(repo.join(path))
                        .expect("user appends");
                    file.write_all(format!("{line}\n").as_bytes())
                        .expect("user appends");
                }
                UserAct::Delete(d) => {
                    let _ = std::fs::remove_file(repo.join(format!("docs/d{}.txt", d % 4)));
                }
                UserAct::Create(n) => {
                    world::put(
                        repo,
                        &format!("user-{n}.txt"),
                        format!("{line}\n").as_bytes(),
                    );
                }
            }
            done.push((*act, line));
        }
    }
    done
}

/// The user's actions applied to `model`, and the marks (a) checks.
pub(crate) fn apply_user(done: &[(UserAct, String)], model: &mut Model) -> Vec<UserMark> {
    for (act, line) in done {
        match *act {
            UserAct::Append(f) => {
                let path = USER_FILES[usize::from(f) % USER_FILES.len()];
                let mut bytes = check::bytes_of(model, path);
                bytes.extend_from_slice(format!("{line}\n").as_bytes());
                let mode = match model.get(path) {
                    Some(Want::File { mode, .. }) => *mode,
                    _ => None,
                };
                model.insert(path.into(), Want::File { bytes, mode });
            }
            UserAct::Delete(d) => {
                model.remove(&format!("docs/d{}.txt", d % 4));
            }
            UserAct::Create(n) => {
                let bytes = format!("{line}\n").into_bytes();
                model.insert(format!("user-{n}.txt"), Want::File { bytes, mode: None });
            }
        }
    }
    // Only what survives the user's own later actions is the user's work.
    let mut marks = Vec::new();
    for (act, line) in done {
        let (path, mark) = match *act {
            UserAct::Append(f) => {
                let path = USER_FILES[usize::from(f) % USER_FILES.len()].to_owned();
                let mark = UserMark::Appended {
                    path: path.clone(),
                    line: line.clone(),
                };
                (path, mark)
            }
            UserAct::Create(n) => {
                let path = format!("user-{n}.txt");
                (path.clone(), UserMark::Created { path })
            }
            UserAct::Delete(_) => continue,
        };
        let survives =
            String::from_utf8_lossy(&check::bytes_of(model, &path)).contains(&format!("{line}\n"));
        if survives {
            marks.push(mark);
        }
    }
    marks
}

/// The user's `.git` as far as an agent could change it: HEAD, refs, config and file names;
/// less what forge itself writes there by design: the run branches `refs/heads/forge/*` and `refs/heads/forge-failed/*`
/// and its bookkeeping directory `.git/forge` (publish lock and marker).
pub(crate) fn git_state(repo: &Path) -> String {
    let config = std::fs::read_to_string(repo.join(".git/config")).unwrap_or_default();
    let mut names = world::names_in(&repo.join(".git"));
    names.retain(|n| n != "forge");
    names.sort();
    let refs: String = world::git(repo, &["for-each-ref"])
        .lines()
        .filter(|l| !l.contains("\trefs/heads/forge/") && !l.contains("\trefs/heads/forge-failed/"))
        .map(|l| format!("{l}\n"))
        .collect();
    format!(
        "{}\n{refs}\n{config}\n{names:?}",
        world::git(repo, &["rev-parse", "HEAD"]),
    )
}
