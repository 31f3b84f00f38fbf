//! Finding dependency cycles to report: strongly connected components (petgraph), the shortest
//! cycle through each component's first task, then further elementary cycles (Johnson) up to a
//! bound, so a plan with a huge tangle still validates quickly.

use std::collections::VecDeque;

use petgraph::algo::kosaraju_scc;
use petgraph::graph::{DiGraph, NodeIndex};

use super::Problem;

/// At most this many cycles are listed per strongly connected component.
const MAX_CYCLES_PER_COMPONENT: usize = 10;
/// Search steps allowed per component when enumerating further cycles.
const STEP_BUDGET_PER_COMPONENT: usize = 200_000;

/// Every cycle problem of the graph whose edges go from a task to its dependencies.
pub(super) fn find(
    n_tasks: usize,
    dep_offsets: &[u32],
    dep_list: &[u32],
    name: &dyn Fn(u32) -> String,
) -> Vec<Problem> {
    let deps =
        |v: u32| &dep_list[dep_offsets[v as usize] as usize..dep_offsets[v as usize + 1] as usize];
    let mut components = strongly_connected(n_tasks, &deps);
    for component in &mut components {
        component.sort_unstable();
    }
    components.sort_unstable_by_key(|c| c[0]);

    let mut component_of = vec![u32::MAX; n_tasks];
    let mut problems = Vec::new();
    for (c, component) in components.iter().enumerate() {
        let is_cycle = component.len() > 1 || deps(component[0]).contains(&component[0]);
        if !is_cycle {
            continue;
        }
        for &v in component {
            component_of[v as usize] = c as u32;
        }
        let in_component = |w: u32| component_of[w as usize] == c as u32;
        let first = shortest_cycle_through(component[0], &deps, &in_component);
        let mut cycles = vec![first];
        let n_edges: usize = component
            .iter()
            .map(|&v| deps(v).iter().filter(|&&w| in_component(w)).count())
            .sum();
        // A component with as many edges as tasks is a single ring: one cycle, done.
        let mut complete = n_edges == component.len();
        if !complete {
            complete = enumerate(component, &deps, &in_component, &mut cycles);
        }
        for cycle in &cycles {
            let mut path: Vec<String> = cycle.iter().map(|&v| name(v)).collect();
            path.push(name(cycle[0]));
            problems.push(Problem::Cycle { path });
        }
        if !complete {
            problems.push(Problem::MoreCycles {
                tasks: component.iter().map(|&v| name(v)).collect(),
                listed: cycles.len(),
            });
        }
    }
    problems
}

/// The strongly connected components of the task graph, by petgraph's Kosaraju: its
/// depth-first searches keep their own stack, where its `tarjan_scc` recurses once per task
/// and overflows a thread's stack on a long chain of dependencies.
fn strongly_connected<'a>(n_tasks: usize, deps: &dyn Fn(u32) -> &'a [u32]) -> Vec<Vec<u32>> {
    let n_edges = (0..n_tasks as u32).map(|v| deps(v).len()).sum();
    let mut graph = DiGraph::<(), (), u32>::with_capacity(n_tasks, n_edges);
    for _ in 0..n_tasks {
        graph.add_node(());
    }
    for v in 0..n_tasks as u32 {
        for &w in deps(v) {
            graph.add_edge(NodeIndex::new(v as usize), NodeIndex::new(w as usize), ());
        }
    }
    kosaraju_scc(&graph)
        .into_iter()
        .map(|component| component.into_iter().map(|v| v.index() as u32).collect())
        .collect()
}

/// Breadth-first search from `start` back to itself, inside the component.
fn shortest_cycle_through<'a>(
    start: u32,
    deps: &dyn Fn(u32) -> &'a [u32],
    in_component: &dyn Fn(u32) -> bool,
) -> Vec<u32> {
    let mut parent: std::collections::HashMap<u32, u32> = std::collections::HashMap::new();
    let mut queue = VecDeque::from([start]);
    while let Some(v) = queue.pop_front() {
        for &w in deps(v) {
            if w == start {
                let mut path = vec![v];
                let mut at = v;
                while at != start {
                    at = parent[&at];
                    path.push(at);
                }
                path.reverse();
                return path;
            }
            if in_component(w) && !parent.contains_key(&w) {
                parent.insert(w, v);
                queue.push_back(w);
            }
        }
    }
    unreachable!("every task of a cyclic component lies on a cycle through its first task")
}

/// Johnson's elementary-cycle enumeration inside one component, without recursion, adding
/// cycles not yet listed. Returns whether the enumeration finished (all cycles are listed).
fn enumerate<'a>(
    component: &[u32],
    deps: &dyn Fn(u32) -> &'a [u32],
    in_component: &dyn Fn(u32) -> bool,
    cycles: &mut Vec<Vec<u32>>,
) -> bool {
    use std::collections::HashMap;
    let mut steps = 0usize;
    let mut blocked: HashMap<u32, bool> = HashMap::new();
    let mut blocked_by: HashMap<u32, Vec<u32>> = HashMap::new();
    for &start in component {
        blocked.clear();
        blocked_by.clear();
        // Only tasks at or after `start` take part; cycles through earlier ones were found.
        let usable = |w: u32| w >= start && in_component(w);
        let mut path = vec![start];
        let mut frames: Vec<(u32, usize, bool)> = vec![(start, 0, false)];
        blocked.insert(start, true);
        while let Some(frame) = frames.last_mut() {
            steps += 1;
            if steps > STEP_BUDGET_PER_COMPONENT {
                return false;
            }
            let v = frame.0;
            if let Some(&w) = deps(v).get(frame.1) {
                frame.1 += 1;
                if !usable(w) {
                    continue;
                }
                if w == start {
                    frame.2 = true;
                    if !cycles.contains(&path) {
                        if cycles.len() == MAX_CYCLES_PER_COMPONENT {
                            return false;
                        }
                        cycles.push(path.clone());
                    }
                } else if !blocked.get(&w).copied().unwrap_or(false) {
                    blocked.insert(w, true);
                    path.push(w);
                    frames.push((w, 0, false));
                }
                continue;
            }
            let (v, _, found) = frames.pop().expect("the loop holds a frame");
            if found {
                let mut to_unblock = vec![v];
                while let Some(u) = to_unblock.pop() {
                    if blocked.insert(u, false).unwrap_or(false) {
                        to_unblock.extend(blocked_by.remove(&u).unwrap_or_default());
                    }
                }
            } else {
                for &w in deps(v) {
                    if usable(w) {
                        let list = blocked_by.entry(w).or_default();
                        if !list.contains(&v) {
                            list.push(v);
                        }
                    }
                }
            }
            path.pop();
            if let Some(parent) = frames.last_mut() {
                parent.2 |= found;
            }
        }
    }
    true
}
