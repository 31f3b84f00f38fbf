//! The Droidz seed plan from the repository, loaded from its file.

use std::path::Path;

use forge_core::{PhaseFormat, Plan};

#[test]
fn seed_file_gives_four_phases() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/plans/droidz-tasks.json");
    let plan = Plan::load(&path)
        .expect("seed loads")
        .validate()
        .expect("seed is valid");
    assert_eq!(
        plan.phases().render(PhaseFormat::Json),
        "{\"phases\":[[\"AUTH-001\"],[\"AUTH-002\",\"AUTH-003\"],[\"AUTH-004\"],[\"AUTH-005\"]],\
         \"tasks\":5,\"edges\":6,\"critical_path\":[\"AUTH-001\",\"AUTH-003\",\"AUTH-004\",\"AUTH-005\"]}\n"
    );
}

#[test]
fn validating_a_large_plan_is_fast() {
    // 20k tasks, 40k edges: the 100k/200k figure is measured by the bench.
    let mut plan = Plan::default();
    for i in 0..20_000u32 {
        let deps: Vec<String> = if i < 100 {
            Vec::new()
        } else {
            vec![format!("t{}", i - 100), format!("t{}", i - 1 - (i % 97))]
        };
        plan.push(forge_core::Task::new(format!("t{i}"), "").deps(deps));
    }
    let started = std::time::Instant::now();
    let plan = plan.validate().expect("valid");
    assert_eq!(plan.n_edges(), 39_800);
    assert!(started.elapsed().as_secs() < 5, "{:?}", started.elapsed());
}
