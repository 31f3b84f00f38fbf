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

/// Durations too large for `Duration` were a panic (exit 101); now an error naming the task
/// and the field, exit 1 from `forge plan` and 2 from `forge run`.
#[test]
fn trust_14_huge_durations_are_clear_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, plan, needle) in [
        (
            "t.toml",
            "[[task]]\nid = \"a\"\ntimeout = 1e300\n",
            "task `a`: timeout: invalid duration `1e300`",
        ),
        (
            "j.json",
            "{\"tasks\": [{\"id\": \"b\", \"timeout\": 1e300}]}",
            "task `b`: timeout: invalid duration `1e300`",
        ),
        (
            "s.toml",
            "[[task]]\nid = \"c\"\ntimeout = \"18446744073709551616s\"\n",
            "task `c`: timeout: invalid duration `18446744073709551616s`",
        ),
        (
            "h.toml",
            "[[task]]\nid = \"d\"\nduration_hint = 1e300\n",
            "task `d`: duration_hint: invalid duration `1e300`",
        ),
    ] {
        std::fs::write(dir.path().join(name), plan).expect("write");
        let out = forge(dir.path(), &["plan", name]);
        assert_eq!(out.status.code(), Some(1), "{name}: {}", text(&out).1);
        assert!(text(&out).1.contains(needle), "{name}: {}", text(&out).1);
        let out = forge(dir.path(), &["run", name, "--executor", "true"]);
        assert_eq!(out.status.code(), Some(2), "{name}: {}", text(&out).1);
        assert!(text(&out).1.contains(needle), "{name}: {}", text(&out).1);
    }
}
