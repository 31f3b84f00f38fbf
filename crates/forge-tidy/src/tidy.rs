//! The tidy checks: each test walks the workspace's files, collects every offence and fails
//! once, naming them all.

use std::fs;
use std::path::{Path, PathBuf};

/// The longest a `.rs` file may be.
const MAX_LINES: usize = 600;

/// Files over [`MAX_LINES`] that wait to be split by concern (issue 14 item 8; the metrics
/// tests grew past the limit before this test existed). Remove a file from this list when
/// it is split: the test fails while a listed file is within the limit.
const TOO_LONG_FOR_NOW: &[&str] = &[
    "crates/forge-cli/src/display.rs",
    "crates/forge-core/src/metrics/tests.rs",
    "crates/forge-core/src/scheduler/coordinator.rs",
];

/// The workspace's root directory.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the workspace root exists")
}

/// `path` relative to the workspace root, with `/` separators.
fn rel(path: &Path) -> String {
    path.strip_prefix(root())
        .expect("below the workspace root")
        .to_string_lossy()
        .replace('\\', "/")
}

/// Every file below `dir` whose name ends with `ext`, sorted, skipping `target` and hidden
/// directories.
fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let entry = entry.expect("a directory entry");
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            let kind = entry.file_type().expect("a file type");
            if kind.is_dir() {
                if name != "target" && !name.starts_with('.') {
                    stack.push(path);
                }
            } else if kind.is_file() && name.ends_with(ext) {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The workspace's members: the directories its `members` globs name (`*` as the last
/// component only, which is all this workspace uses).
fn members() -> Vec<PathBuf> {
    let root = root();
    let manifest: toml::Table = read(&root.join("Cargo.toml"))
        .parse()
        .expect("the root Cargo.toml parses");
    let globs = manifest["workspace"]["members"]
        .as_array()
        .expect("workspace.members is a list");
    let mut out = Vec::new();
    for glob in globs {
        let glob = glob.as_str().expect("a member is a string");
        match glob.strip_suffix("/*") {
            Some(parent) => {
                for entry in fs::read_dir(root.join(parent)).expect("read a members directory") {
                    let path = entry.expect("a directory entry").path();
                    if path.join("Cargo.toml").is_file() {
                        out.push(path);
                    }
                }
            }
            None => out.push(root.join(glob)),
        }
    }
    out.sort();
    assert!(out.len() >= 8, "too few members found: {out:?}");
    out
}

/// Fails with every offence, one a line, if there are any.
#[track_caller]
fn report(what: &str, offences: &[String]) {
    assert!(
        offences.is_empty(),
        "{what}:\n  {}\n",
        offences.join("\n  ")
    );
}

#[test]
fn every_file_opens_with_a_doc_comment() {
    let offences: Vec<String> = files(&root(), ".rs")
        .iter()
        .filter(|path| !read(path).starts_with("//!"))
        .map(|path| rel(path))
        .collect();
    report("files that do not open with a `//!` line", &offences);
}

#[test]
fn no_file_is_over_600_lines() {
    let mut offences = Vec::new();
    for path in files(&root(), ".rs") {
        let name = rel(&path);
        let n_lines = read(&path).lines().count();
        let listed = TOO_LONG_FOR_NOW.contains(&name.as_str());
        if n_lines > MAX_LINES && !listed {
            offences.push(format!("{name}: {n_lines} lines; split it by concern"));
        } else if n_lines <= MAX_LINES && listed {
            offences.push(format!(
                "{name}: {n_lines} lines, within the limit: remove it from TOO_LONG_FOR_NOW"
            ));
        }
    }
    for name in TOO_LONG_FOR_NOW {
        if !root().join(name).is_file() {
            offences.push(format!("{name} is gone: remove it from TOO_LONG_FOR_NOW"));
        }
    }
    report(&format!("files over {MAX_LINES} lines"), &offences);
}

#[test]
fn every_ignored_test_says_why() {
    // Built at run time, so this file does not match itself.
    let bare = ["#[", "ignore]"].concat();
    let mut offences = Vec::new();
    for path in files(&root(), ".rs") {
        for (i, line) in read(&path).lines().enumerate() {
            if line.trim() == bare {
                offences.push(format!(
                    "{}:{}: say why: #[ignore = \"...\"]",
                    rel(&path),
                    i + 1
                ));
            }
        }
    }
    report("ignored tests without a reason", &offences);
}

/// Whether `text` uses the crate `name` (underscored): `name::`, `use name` or
/// `extern crate name`, not as the tail of a longer identifier.
fn uses_crate(text: &str, name: &str) -> bool {
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    text.match_indices(name).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = &text[at + name.len()..];
        if before.is_some_and(is_ident) || after.starts_with(is_ident) {
            return false;
        }
        after.starts_with("::")
            || text[..at].ends_with("use ")
            || text[..at].ends_with("extern crate ")
    })
}

/// The dependency tables of a manifest, as (table name, dependency names): the top-level
/// ones and those under `[target.'cfg(...)']`.
fn dependency_tables(manifest: &toml::Table) -> Vec<(String, Vec<String>)> {
    let mut tables = vec![manifest];
    if let Some(targets) = manifest.get("target").and_then(toml::Value::as_table) {
        tables.extend(targets.values().filter_map(toml::Value::as_table));
    }
    let mut out = Vec::new();
    for table in tables {
        for kind in ["dependencies", "dev-dependencies", "build-dependencies"] {
            if let Some(deps) = table.get(kind).and_then(toml::Value::as_table) {
                out.push((kind.to_owned(), deps.keys().cloned().collect()));
            }
        }
    }
    out
}

#[test]
fn every_dependency_is_used() {
    let mut offences = Vec::new();
    for member in members() {
        let manifest: toml::Table = read(&member.join("Cargo.toml"))
            .parse()
            .expect("a member's Cargo.toml parses");
        let sources: Vec<(bool, String)> = files(&member, ".rs")
            .iter()
            .map(|path| {
                let in_tests = path
                    .strip_prefix(&member)
                    .is_ok_and(|p| p.starts_with("tests"));
                (in_tests, read(path))
            })
            .collect();
        for (kind, names) in dependency_tables(&manifest) {
            for name in names {
                let code_name = name.replace('-', "_");
                let used = sources.iter().any(|(in_tests, text)| {
                    (kind == "dev-dependencies" || !in_tests) && uses_crate(text, &code_name)
                });
                if !used {
                    let hint = if kind == "dependencies"
                        && sources.iter().any(|(_, text)| uses_crate(text, &code_name))
                    {
                        " (only tests use it: make it a dev-dependency)"
                    } else {
                        ""
                    };
                    offences.push(format!("{}: [{kind}] {name}{hint}", rel(&member)));
                }
            }
        }
    }
    report("declared dependencies that no code uses", &offences);
}

/// The crate roots of a member: library, binaries, tests, benches and examples.
fn crate_roots(member: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for file in ["src/lib.rs", "src/main.rs"] {
        let path = member.join(file);
        if path.is_file() {
            out.push(path);
        }
    }
    for dir in ["src/bin", "tests", "benches", "examples"] {
        let Ok(entries) = fs::read_dir(member.join(dir)) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            } else if path.join("main.rs").is_file() {
                out.push(path.join("main.rs"));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn every_crate_root_fences_unsafe() {
    let mut offences = Vec::new();
    for member in members() {
        for path in crate_roots(&member) {
            let text = read(&path);
            if !text.contains("#![forbid(unsafe_code)]") && !text.contains("#![deny(unsafe_code)]")
            {
                offences.push(format!(
                    "{}: add #![forbid(unsafe_code)] (or deny, with the one module that needs unsafe allowing it)",
                    rel(&path)
                ));
            }
        }
    }
    report("crate roots that do not fence unsafe code", &offences);
}

#[test]
fn one_integration_test_binary_per_member() {
    let mut offences = Vec::new();
    for member in members() {
        let Ok(entries) = fs::read_dir(member.join("tests")) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            let is_binary = path.extension().is_some_and(|e| e == "rs")
                || (path.join("main.rs").is_file() && !path.ends_with("it"));
            if is_binary {
                offences.push(format!(
                    "{}: make it a module of tests/it/main.rs",
                    rel(&path)
                ));
            }
        }
    }
    report("integration test binaries besides tests/it", &offences);
}

#[test]
fn every_member_inherits_the_workspace_lints() {
    let mut offences = Vec::new();
    for member in members() {
        let manifest: toml::Table = read(&member.join("Cargo.toml"))
            .parse()
            .expect("a member's Cargo.toml parses");
        let inherits = manifest
            .get("lints")
            .and_then(|l| l.get("workspace"))
            .and_then(toml::Value::as_bool)
            == Some(true);
        if !inherits {
            offences.push(format!("{}: add [lints] workspace = true", rel(&member)));
        }
    }
    report("members with lints of their own", &offences);
}

#[test]
fn uses_crate_needs_a_whole_name() {
    assert!(uses_crate("let x = rand::random();", "rand"));
    assert!(uses_crate("use rand;", "rand"));
    assert!(uses_crate("#[tokio::test]", "tokio"));
    assert!(!uses_crate("let x = grand::random();", "rand"));
    assert!(!uses_crate("let x = rand_chacha::X;", "rand"));
    assert!(!uses_crate("random words", "rand"));
}
