//! Validation tests: exact messages for every kind of problem.

use crate::plan::{Plan, Task};

#[track_caller]
fn check(tasks: Vec<Task>, expected: &str) {
    let err = Plan::new(tasks)
        .validate()
        .expect_err("plan must be invalid");
    assert_eq!(err.to_string(), expected);
}

fn t(id: &str, deps: &[&str]) -> Task {
    Task::new(id, "").deps(deps.iter().copied())
}

#[test]
fn reports_every_problem_at_once() {
    check(
        vec![
            t("a", &["b"]),
            t("b", &["c", "ghost"]),
            t("c", &["a"]),
            t("", &[]),
            t("a", &[]),
            Task::new("w", "")
                .writes(["../etc/**", "/abs", "src/[ab"])
                .reads(["ok/**"]),
            Task::new("g", "").resource("gpu", 0),
        ],
        "\
duplicate task id `a` (tasks #1, #5)
task `b` depends on `ghost`, which is not in the plan
task #4 has an empty id
task `w`: writes: pattern `../etc/**` leaves the repository with `..`
task `w`: writes: pattern `/abs` is absolute; patterns are relative to the repository root
task `w`: writes: pattern `src/[ab` is not a valid glob: unclosed character class; missing ']'
task `g` asks for 0 units of resource `gpu` (omit it or ask for 1 or more)
dependency cycle: a -> b -> c -> a",
    );
}

#[test]
fn self_dependency_is_a_cycle() {
    check(vec![t("a", &["a"])], "dependency cycle: a -> a");
}

#[test]
fn each_elementary_cycle_once() {
    // Two cycles through `a` (a->b->a and a->c->a) in one component, one elsewhere.
    check(
        vec![
            t("a", &["b", "c"]),
            t("b", &["a"]),
            t("c", &["a"]),
            t("x", &["y"]),
            t("y", &["x"]),
            t("ok", &["a"]),
        ],
        "\
dependency cycle: a -> b -> a
dependency cycle: a -> c -> a
dependency cycle: x -> y -> x",
    );
}

#[test]
fn cycle_starts_at_first_task_in_plan_order() {
    check(
        vec![t("z", &[]), t("c", &["b"]), t("a", &["c"]), t("b", &["a"])],
        "dependency cycle: c -> b -> a -> c",
    );
}

#[test]
fn huge_tangle_is_bounded() {
    // A complete digraph on 12 tasks has millions of elementary cycles.
    let ids: Vec<String> = (0..12).map(|i| format!("t{i}")).collect();
    let tasks = ids
        .iter()
        .map(|id| Task::new(id.as_str(), "").deps(ids.iter().filter(|d| *d != id).cloned()))
        .collect();
    let err = Plan::new(tasks).validate().expect_err("cyclic");
    let problems = err.problems();
    assert_eq!(problems.len(), 11, "{err}");
    assert_eq!(
        problems[10].to_string(),
        format!(
            "more dependency cycles may exist among tasks {} (listing stopped after 10)",
            ids.join(", ")
        )
    );
}

#[test]
fn long_ring_reports_one_cycle_quickly() {
    let n = 50_000;
    let tasks = (0..n)
        .map(|i| Task::new(format!("t{i}"), "").deps([format!("t{}", (i + 1) % n)]))
        .collect();
    let err = Plan::new(tasks).validate().expect_err("cyclic");
    assert_eq!(err.problems().len(), 1);
    let text = err.to_string();
    assert!(
        text.starts_with("dependency cycle: t0 -> t1 -> t2"),
        "{}",
        &text[..60]
    );
    assert!(text.ends_with("t49999 -> t0"));
}

#[test]
fn valid_plan_exposes_graph() {
    let plan = Plan::new(vec![t("a", &[]), t("b", &["a", "a"]), t("c", &["a", "b"])])
        .validate()
        .expect("valid");
    assert_eq!(plan.len(), 3);
    assert_eq!(plan.dependencies(1), [0]);
    assert_eq!(plan.dependencies(2), [0, 1]);
    assert_eq!(plan.dependents(0), [1, 2]);
    assert_eq!(plan.topo_order(), [0, 1, 2]);
    assert_eq!(plan.n_edges(), 3);
    assert_eq!(plan.get("c").map(|t| t.deps.len()), Some(2));
    assert_eq!(plan.to_plan().tasks[2].id, "c");
}

#[test]
fn normalizable_patterns_are_fine() {
    Plan::new(vec![Task::new("a", "").writes([
        "./src/../src/api/**",
        "docs/{a,b}.md",
        ".",
    ])])
    .validate()
    .expect("valid patterns");
}
