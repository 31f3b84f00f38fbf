//! Phase rendering in every format, snapshot style, on the Droidz seed plan.

use crate::phases::PhaseFormat;
use crate::plan::Plan;
use crate::validate::ValidatedPlan;

fn seed() -> ValidatedPlan {
    Plan::parse(include_str!("../../../../examples/plans/droidz-tasks.json"))
        .expect("seed parses")
        .validate()
        .expect("seed is valid")
}

#[track_caller]
fn check(format: PhaseFormat, expected: &str) {
    let plan = seed();
    assert_eq!(plan.phases().render(format), expected);
}

#[test]
fn seed_has_four_phases() {
    let plan = seed();
    assert_eq!(
        plan.phases().to_names(),
        vec![
            vec!["AUTH-001"],
            vec!["AUTH-002", "AUTH-003"],
            vec!["AUTH-004"],
            vec!["AUTH-005"]
        ]
    );
}

#[test]
fn text() {
    check(
        PhaseFormat::Text,
        "\
phase 1: AUTH-001
phase 2: AUTH-002, AUTH-003
phase 3: AUTH-004
phase 4: AUTH-005
5 tasks, 6 dependencies, 4 phases; critical path: AUTH-001 -> AUTH-003 -> AUTH-004 -> AUTH-005
",
    );
}

#[test]
fn json() {
    check(
        PhaseFormat::Json,
        r#"{"phases":[["AUTH-001"],["AUTH-002","AUTH-003"],["AUTH-004"],["AUTH-005"]],"tasks":5,"edges":6,"critical_path":["AUTH-001","AUTH-003","AUTH-004","AUTH-005"]}
"#,
    );
}

#[test]
fn dot() {
    check(
        PhaseFormat::Dot,
        r#"digraph plan {
  rankdir=LR;
  node [shape=box];
  subgraph cluster_phase1 {
    label="phase 1";
    "AUTH-001";
  }
  subgraph cluster_phase2 {
    label="phase 2";
    "AUTH-002";
    "AUTH-003";
  }
  subgraph cluster_phase3 {
    label="phase 3";
    "AUTH-004";
  }
  subgraph cluster_phase4 {
    label="phase 4";
    "AUTH-005";
  }
  "AUTH-001" -> "AUTH-002";
  "AUTH-001" -> "AUTH-003";
  "AUTH-003" -> "AUTH-004";
  "AUTH-002" -> "AUTH-005";
  "AUTH-003" -> "AUTH-005";
  "AUTH-004" -> "AUTH-005";
}
"#,
    );
}

#[test]
fn mermaid() {
    check(
        PhaseFormat::Mermaid,
        r#"flowchart LR
  subgraph phase1["phase 1"]
    t0["AUTH-001"]
  end
  subgraph phase2["phase 2"]
    t1["AUTH-002"]
    t2["AUTH-003"]
  end
  subgraph phase3["phase 3"]
    t3["AUTH-004"]
  end
  subgraph phase4["phase 4"]
    t4["AUTH-005"]
  end
  t0 --> t1
  t0 --> t2
  t2 --> t3
  t1 --> t4
  t2 --> t4
  t3 --> t4
"#,
    );
}

#[test]
fn empty_plan_has_no_phase() {
    let plan = Plan::default().validate().expect("empty is valid");
    assert!(plan.phases().is_empty());
    assert_eq!(
        plan.phases().render(PhaseFormat::Text),
        "0 tasks, 0 dependencies, 0 phases\n"
    );
}

#[test]
fn quotes_are_escaped() {
    let plan = Plan::default()
        .with_task(crate::Task::new("say \"hi\"", ""))
        .validate()
        .expect("valid");
    assert!(
        plan.phases()
            .render(PhaseFormat::Dot)
            .contains(r#""say \"hi\"";"#)
    );
    assert!(
        plan.phases()
            .render(PhaseFormat::Mermaid)
            .contains(r#"t0["say #quot;hi#quot;"]"#)
    );
}
