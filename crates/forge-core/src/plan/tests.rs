//! Tests of plan loading: the three forms, detection, round trips and parse errors.

use std::time::Duration;

use super::*;

const SEED: &str = include_str!("../../../../examples/plans/droidz-tasks.json");

#[test]
fn toml_plan_with_every_field() {
    let plan = Plan::parse(
        r#"
        [[task]]
        id = "api"
        prompt = "Add the /login endpoint"
        deps = ["models"]
        reads = ["src/models/**"]
        writes = ["src/api/**"]
        priority = 3
        timeout = "10m"
        retries = 2
        executor = "claude"
        resources = { gpu = 1 }
        duration_hint = "90s"
        cost = 0.25
        "#,
    )
    .expect("valid toml");
    let expected = Task::new("api", "Add the /login endpoint")
        .deps(["models"])
        .reads(["src/models/**"])
        .writes(["src/api/**"])
        .priority(3)
        .timeout(Duration::from_secs(600))
        .retries(2)
        .executor("claude")
        .resource("gpu", 1)
        .duration_hint(Duration::from_secs(90))
        .cost(0.25);
    assert_eq!(plan.tasks, vec![expected]);
}

#[test]
fn json_plan_same_shape() {
    let text = r#"{"tasks": [{"id": "a", "prompt": "x", "timeout": "500ms"}, {"id": "b", "deps": ["a"], "timeout": 30}]}"#;
    assert_eq!(Plan::detect_format(text), PlanFormat::Json);
    let plan = Plan::parse(text).expect("valid json");
    assert_eq!(plan.tasks[0].timeout, Some(Duration::from_millis(500)));
    assert_eq!(plan.tasks[1].timeout, Some(Duration::from_secs(30)));
    assert_eq!(plan.tasks[1].executor, "default");
}

#[test]
fn droidz_import() {
    assert_eq!(Plan::detect_format(SEED), PlanFormat::Droidz);
    let plan = Plan::parse(SEED).expect("seed parses");
    let ids: Vec<&str> = plan.tasks.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(
        ids,
        ["AUTH-001", "AUTH-002", "AUTH-003", "AUTH-004", "AUTH-005"]
    );
    assert_eq!(plan.tasks[4].deps, ["AUTH-002", "AUTH-003", "AUTH-004"]);
    assert_eq!(
        plan.tasks[0].prompt,
        "Add the User model\n\nCreate the User model with email and password hash fields."
    );
}

#[test]
fn round_trips_through_toml_and_json() {
    let plan = Plan::default()
        .with_task(Task::new("a", "say \"hi\"").timeout(Duration::from_millis(1500)))
        .with_task(
            Task::new("b", "")
                .deps(["a"])
                .writes(["src/**"])
                .resource("gpu", 2),
        );
    assert_eq!(Plan::parse(&plan.to_toml()).expect("toml back"), plan);
    assert_eq!(Plan::parse(&plan.to_json()).expect("json back"), plan);
}

#[track_caller]
fn check_error(text: &str, expected: &str) {
    let err = Plan::parse(text).expect_err("must not parse");
    assert_eq!(err.to_string(), expected);
}

#[test]
fn parse_errors_name_the_problem() {
    check_error(
        r#"{"tasks": [{"id": "a", "dep": ["b"]}]}"#,
        "invalid json plan: unknown field `dep`, expected one of `id`, `title`, `prompt`, `deps`, `reads`, `writes`, `priority`, `timeout`, `retries`, `executor`, `resources`, `duration_hint`, `cost` at line 1 column 28",
    );
    check_error(
        "[[task]]\nid = \"a\"\ntimeout = \"soon\"\n",
        "invalid toml plan: TOML parse error at line 1, column 1\n  |\n1 | [[task]]\n  | ^^^^^^^^\ntask `a`: timeout: invalid duration `soon`: expected a number",
    );
    check_error(
        r#"{"tasks": [{"key": "A-1", "dependencies": "A-0"}]}"#,
        "invalid droidz json plan: invalid type: string \"A-0\", expected a sequence at line 1 column 47",
    );
}

/// The last line of a parse error (TOML puts the source excerpt before it).
#[track_caller]
fn error_message(text: &str) -> String {
    let err = Plan::parse(text).expect_err("must not parse").to_string();
    err.lines().last().unwrap_or_default().to_owned()
}

#[test]
fn trust_14_huge_durations_are_errors_naming_task_and_field() {
    let limit = "longer than the limit of 8760h (365 days)";
    for (text, expected) in [
        (
            "[[task]]\nid = \"a\"\ntimeout = 1e300\n",
            format!("task `a`: timeout: invalid duration `1e300`: {limit}"),
        ),
        (
            r#"{"tasks": [{"id": "j", "timeout": 1e300}]}"#,
            format!(
                "invalid json plan: task `j`: timeout: invalid duration `1e300`: {limit} at line 1 column 41"
            ),
        ),
        (
            "[[task]]\nid = \"b\"\ntimeout = \"18446744073709551616s\"\n",
            format!("task `b`: timeout: invalid duration `18446744073709551616s`: {limit}"),
        ),
        (
            "[[task]]\nid = \"c\"\ntimeout = \"5000h5000h\"\n",
            format!("task `c`: timeout: invalid duration `5000h5000h`: {limit}"),
        ),
        (
            "[[task]]\nid = \"d\"\nduration_hint = 1e300\n",
            format!("task `d`: duration_hint: invalid duration `1e300`: {limit}"),
        ),
        (
            "[[task]]\nid = \"e\"\ntimeout = -1\n",
            "task `e`: timeout: invalid duration `-1`: must be a number of seconds >= 0".to_owned(),
        ),
    ] {
        assert_eq!(error_message(text), expected, "{text}");
    }
    // Exponents are not units: `1.8e19s1.8e19s` is a number, an unknown unit `e`, ...
    assert_eq!(
        error_message("[[task]]\nid = \"f\"\ntimeout = \"1.8e19s1.8e19s\"\n"),
        "task `f`: timeout: invalid duration `1.8e19s1.8e19s`: unknown unit `e` (use h, m, s, ms or us)"
    );
    // The limit itself is fine.
    let plan = Plan::parse("[[task]]\nid = \"g\"\ntimeout = \"8760h\"\n").expect("a year");
    assert_eq!(
        plan.tasks[0].timeout,
        Some(Duration::from_secs(365 * 24 * 3600))
    );
}

#[test]
fn load_names_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("nope.toml");
    let err = Plan::load(&missing).expect_err("missing");
    assert!(
        err.to_string()
            .starts_with(&format!("cannot read plan {}: ", missing.display())),
        "{err}"
    );
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"tasks\": 3}").expect("write");
    let err = Plan::load(&bad).expect_err("bad");
    assert_eq!(
        err.to_string(),
        format!(
            "invalid json plan {}: invalid type: integer `3`, expected a sequence at line 1 column 11",
            bad.display()
        )
    );
}

#[test]
fn trust_20_droidz_near_miss_field_is_an_error() {
    check_error(
        r#"{"tasks": [{"key": "A-1"}, {"key": "A-2", "dependecies": ["A-1"], "status": "todo"}]}"#,
        "invalid droidz json plan: task `A-2`: unknown field `dependecies`, did you mean `dependencies`?",
    );
    // Fields far from the known ones are Droidz's own and stay ignored.
    let plan = Plan::parse(
        r#"{"tasks": [{"key": "A-1", "status": "todo", "estimate": 3, "labels": ["x"]}]}"#,
    )
    .expect("extra fields are fine");
    assert_eq!(plan.tasks[0].id, "A-1");
}
