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

/// Every elementary cycle of the graph (`deps[v]` = the tasks `v` depends on), each rotated
/// to start at its smallest task: the brute-force model the cycle report is checked against.
fn model_cycles(deps: &[Vec<usize>]) -> std::collections::BTreeSet<Vec<usize>> {
    fn walk(
        deps: &[Vec<usize>],
        start: usize,
        path: &mut Vec<usize>,
        out: &mut std::collections::BTreeSet<Vec<usize>>,
    ) {
        let v = *path.last().expect("the path starts at `start`");
        for &w in &deps[v] {
            if w == start {
                out.insert(path.clone());
            } else if w > start && !path.contains(&w) {
                path.push(w);
                walk(deps, start, path, out);
                path.pop();
            }
        }
    }
    let mut out = std::collections::BTreeSet::new();
    for start in 0..deps.len() {
        walk(deps, start, &mut vec![start], &mut out);
    }
    out
}

fn rotated_to_min(cycle: &[usize]) -> Vec<usize> {
    let at = (0..cycle.len())
        .min_by_key(|&i| cycle[i])
        .expect("a cycle has a task");
    cycle[at..].iter().chain(&cycle[..at]).copied().collect()
}

use proptest::prelude::*;

proptest! {
    #![proptest_config(proptest::test_runner::Config {
        cases: 300,
        failure_persistence: None,
        ..proptest::test_runner::Config::default()
    })]

    /// On random small graphs: a plan is valid exactly when the model finds no cycle; each
    /// reported cycle is an elementary cycle of the graph, reported once; when the listing is
    /// not cut short, it is every elementary cycle.
    #[test]
    fn cycles_agree_with_brute_force(
        deps in (1usize..8).prop_flat_map(|n| {
            proptest::collection::vec(proptest::collection::btree_set(0..n, 0..=3), n)
        })
    ) {
        let deps: Vec<Vec<usize>> = deps.into_iter().map(|d| d.into_iter().collect()).collect();
        let tasks = deps
            .iter()
            .enumerate()
            .map(|(i, d)| Task::new(format!("t{i}"), "").deps(d.iter().map(|d| format!("t{d}"))))
            .collect();
        let want = model_cycles(&deps);
        let result = Plan::new(tasks).validate();
        prop_assert_eq!(result.is_ok(), want.is_empty());
        let Err(err) = result else { return Ok(()) };
        let mut got = std::collections::BTreeSet::new();
        let mut cut_short = false;
        for problem in err.problems() {
            match problem {
                crate::validate::Problem::Cycle { path } => {
                    let ids: Vec<usize> = path
                        .iter()
                        .map(|id| id[1..].parse().expect("ids are t<N>"))
                        .collect();
                    prop_assert_eq!(ids.first(), ids.last());
                    let cycle = &ids[..ids.len() - 1];
                    for pair in ids.windows(2) {
                        prop_assert!(deps[pair[0]].contains(&pair[1]), "{} is no edge", path.join(" -> "));
                    }
                    prop_assert!(got.insert(rotated_to_min(cycle)), "{} listed twice", path.join(" -> "));
                }
                crate::validate::Problem::MoreCycles { .. } => cut_short = true,
                other => prop_assert!(false, "unexpected problem {other}"),
            }
        }
        prop_assert!(got.is_subset(&want));
        if !cut_short {
            prop_assert_eq!(&got, &want);
        }
    }
}
