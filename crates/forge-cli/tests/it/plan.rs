//! `forge plan`: phases in every format and the exit status contract (0 valid, 1 invalid
//! with every problem on stderr, 2 unreadable).

use std::path::Path;

use crate::{forge, text};

fn seed() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/plans/droidz-tasks.json")
        .display()
        .to_string()
}

#[test]
fn seed_plan_text_and_json() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = forge(dir.path(), &["plan", &seed()]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        text(&out).0,
        "\
phase 1: AUTH-001
phase 2: AUTH-002, AUTH-003
phase 3: AUTH-004
phase 4: AUTH-005
5 tasks, 6 dependencies, 4 phases; critical path: AUTH-001 -> AUTH-003 -> AUTH-004 -> AUTH-005
"
    );
    let out = forge(dir.path(), &["plan", &seed(), "--format", "json"]);
    assert_eq!(out.status.code(), Some(0));
    let json: serde_json::Value = serde_json::from_str(&text(&out).0).expect("json");
    assert_eq!(
        json["phases"],
        serde_json::json!([
            ["AUTH-001"],
            ["AUTH-002", "AUTH-003"],
            ["AUTH-004"],
            ["AUTH-005"]
        ])
    );
}

#[test]
fn dot_and_mermaid() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = forge(dir.path(), &["plan", &seed(), "--format", "dot"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out).0.starts_with("digraph plan {\n"));
    assert!(text(&out).0.contains("  \"AUTH-004\" -> \"AUTH-005\";\n"));
    let out = forge(dir.path(), &["plan", &seed(), "--format", "mermaid"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out).0.starts_with("flowchart LR\n"));
    assert!(text(&out).0.contains("  t3 --> t4\n"));
}

#[test]
fn invalid_plan_lists_every_problem() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("plan.toml"),
        r#"
[[task]]
id = "a"
deps = ["c"]

[[task]]
id = "b"
deps = ["a", "ghost"]
writes = ["../outside"]

[[task]]
id = "c"
deps = ["b"]
"#,
    )
    .expect("write");
    let out = forge(dir.path(), &["plan", "plan.toml"]);
    assert_eq!(out.status.code(), Some(1));
    let (stdout, stderr) = text(&out);
    assert_eq!(stdout, "");
    assert_eq!(
        stderr,
        "\
plan.toml: task `b` depends on `ghost`, which is not in the plan
plan.toml: task `b`: writes: pattern `../outside` leaves the repository with `..`
plan.toml: dependency cycle: a -> c -> b -> a
forge plan: plan.toml is invalid (3 problems)
"
    );
}

#[test]
fn malformed_plan_is_invalid() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("plan.json"), "{\"tasks\": [{\"id\": 1}]}").expect("write");
    let out = forge(dir.path(), &["plan", "plan.json"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out).1,
        "forge plan: invalid json plan plan.json: invalid type: integer `1`, expected a string at line 1 column 19\n"
    );
}

#[test]
fn unreadable_file_exits_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = forge(dir.path(), &["plan", "missing.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out).1,
        "forge plan: cannot read plan missing.toml: No such file or directory (os error 2)\n"
    );
}
