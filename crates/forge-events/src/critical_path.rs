//! The critical path of a run: the dependency chain with the largest sum of run times.

use std::collections::HashMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// When one task ran, and what it depended on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskSpan {
    /// The task's id.
    pub id: String,
    /// The ids of the tasks it depended on.
    pub deps: Vec<String>,
    /// When it started, as an offset from the start of the run.
    #[serde(rename = "start_ms", with = "crate::metrics::millis")]
    pub start: Duration,
    /// When it ended, as an offset from the start of the run.
    #[serde(rename = "end_ms", with = "crate::metrics::millis")]
    pub end: Duration,
}

impl TaskSpan {
    /// How long the task ran (zero if `end` is before `start`).
    #[must_use]
    pub fn duration(&self) -> Duration {
        self.end.saturating_sub(self.start)
    }
}

/// The longest chain of dependent tasks, weighted by how long each actually ran.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[must_use]
pub struct CriticalPath {
    /// The chain's task ids, from the first to run to the last; each depends on the previous.
    pub tasks: Vec<String>,
    /// The sum of their run times: no schedule with these run times can finish sooner.
    #[serde(rename = "total_ms", with = "crate::metrics::millis")]
    pub total: Duration,
}

/// Computes the critical path of `tasks`: the chain `t1 <- t2 <- ... <- tn` (each task
/// depending on the one before) whose summed [`TaskSpan::duration`]s are the largest.
///
/// Dependencies on ids that are not in `tasks` (tasks that never ran) are ignored, as are
/// repeated ids after the first, and tasks that sit on a dependency cycle or depend on one
/// (a validated plan has none). Ties go to the task that comes first in `tasks`.
pub fn critical_path(tasks: &[TaskSpan]) -> CriticalPath {
    let mut index: HashMap<&str, usize> = HashMap::with_capacity(tasks.len());
    for (task_idx, task) in tasks.iter().enumerate() {
        index.entry(task.id.as_str()).or_insert(task_idx);
    }
    let is_first = |task_idx: usize| index.get(tasks[task_idx].id.as_str()) == Some(&task_idx);

    // Known dependencies of each task, and who depends on it, for Kahn's topological order.
    let mut deps: Vec<Vec<usize>> = vec![Vec::new(); tasks.len()];
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); tasks.len()];
    for (task_idx, task) in tasks.iter().enumerate().filter(|(i, _)| is_first(*i)) {
        for dep in &task.deps {
            if let Some(&dep_idx) = index.get(dep.as_str())
                && !deps[task_idx].contains(&dep_idx)
            {
                deps[task_idx].push(dep_idx);
                dependents[dep_idx].push(task_idx);
            }
        }
    }
    let mut n_waiting: Vec<usize> = deps.iter().map(Vec::len).collect();
    let mut ready: Vec<usize> = (0..tasks.len())
        .filter(|&i| is_first(i) && n_waiting[i] == 0)
        .collect();

    // best[i]: the heaviest chain ending at i, as (total, predecessor on that chain).
    let mut best: Vec<Option<(Duration, Option<usize>)>> = vec![None; tasks.len()];
    while let Some(task_idx) = ready.pop() {
        let mut heaviest: Option<(Duration, usize)> = None;
        for &dep_idx in &deps[task_idx] {
            let (total, _) = best[dep_idx].expect("dependencies are finished before dependents");
            let better = match heaviest {
                None => true,
                Some((best_total, best_idx)) => {
                    total > best_total || (total == best_total && dep_idx < best_idx)
                }
            };
            if better {
                heaviest = Some((total, dep_idx));
            }
        }
        let before = heaviest.map_or(Duration::ZERO, |(total, _)| total);
        best[task_idx] = Some((
            before + tasks[task_idx].duration(),
            heaviest.map(|(_, i)| i),
        ));
        for &dependent in &dependents[task_idx] {
            n_waiting[dependent] -= 1;
            if n_waiting[dependent] == 0 {
                ready.push(dependent);
            }
        }
    }

    let mut end: Option<(Duration, usize)> = None;
    for (task_idx, entry) in best.iter().enumerate() {
        if let Some((total, _)) = entry
            && end.is_none_or(|(best_total, _)| *total > best_total)
        {
            end = Some((*total, task_idx));
        }
    }
    let Some((total, last)) = end else {
        return CriticalPath::default();
    };
    let mut chain = Vec::new();
    let mut cursor = Some(last);
    while let Some(task_idx) = cursor {
        chain.push(tasks[task_idx].id.clone());
        cursor = best[task_idx].and_then(|(_, before)| before);
    }
    chain.reverse();
    CriticalPath {
        tasks: chain,
        total,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn span(id: &str, deps: &[&str], start_ms: u64, end_ms: u64) -> TaskSpan {
        TaskSpan {
            id: id.to_owned(),
            deps: deps.iter().map(|d| (*d).to_owned()).collect(),
            start: Duration::from_millis(start_ms),
            end: Duration::from_millis(end_ms),
        }
    }

    fn check(tasks: &[TaskSpan], chain: &[&str], total_ms: u64) {
        let path = critical_path(tasks);
        assert_eq!(path.tasks, chain);
        assert_eq!(path.total, Duration::from_millis(total_ms));
    }

    #[test]
    fn diamond_takes_the_slow_branch() {
        let tasks = [
            span("a", &[], 0, 10),
            span("fast", &["a"], 10, 12),
            span("slow", &["a"], 10, 40),
            span("z", &["fast", "slow"], 40, 45),
        ];
        check(&tasks, &["a", "slow", "z"], 45);
    }

    #[test]
    fn empty_unknown_deps_duplicates_and_cycles() {
        check(&[], &[], 0);
        check(&[span("a", &["never-ran"], 0, 5)], &["a"], 5);
        check(&[span("a", &[], 0, 5), span("a", &[], 0, 50)], &["a"], 5);
        // The cycle b <-> c and its dependent d are left out; a stands alone.
        let tasks = [
            span("a", &[], 0, 1),
            span("b", &["c"], 0, 9),
            span("c", &["b"], 0, 9),
            span("d", &["c"], 0, 9),
        ];
        check(&tasks, &["a"], 1);
    }

    /// The heaviest chain by brute force: every chain ending at every task.
    fn brute_force(tasks: &[TaskSpan], deps: &[Vec<usize>]) -> Duration {
        fn heaviest_to(i: usize, tasks: &[TaskSpan], deps: &[Vec<usize>]) -> Duration {
            let before = deps[i].iter().map(|&d| heaviest_to(d, tasks, deps)).max();
            before.unwrap_or_default() + tasks[i].duration()
        }
        (0..tasks.len())
            .map(|i| heaviest_to(i, tasks, deps))
            .max()
            .unwrap_or_default()
    }

    proptest! {
        #[test]
        fn agrees_with_brute_force(
            n_tasks in 0usize..8,
            edges in proptest::collection::vec((0usize..8, 0usize..8), 0..16),
            durations in proptest::collection::vec(0u64..100, 8),
        ) {
            // Only edges from a lower to a higher index: the graph is acyclic.
            let mut deps = vec![Vec::new(); n_tasks];
            for (a, b) in edges {
                if a < b && b < n_tasks && !deps[b].contains(&a) {
                    deps[b].push(a);
                }
            }
            let tasks: Vec<TaskSpan> = (0..n_tasks)
                .map(|i| TaskSpan {
                    id: format!("t{i}"),
                    deps: deps[i].iter().map(|d| format!("t{d}")).collect(),
                    start: Duration::from_millis(1000),
                    end: Duration::from_millis(1000 + durations[i]),
                })
                .collect();
            let path = critical_path(&tasks);
            prop_assert_eq!(path.total, brute_force(&tasks, &deps));
            // The chain is a real chain and its durations add up to the total.
            let idx = |id: &String| tasks.iter().position(|t| &t.id == id).expect("known id");
            let sum: Duration = path.tasks.iter().map(|id| tasks[idx(id)].duration()).sum();
            prop_assert_eq!(sum, path.total);
            for pair in path.tasks.windows(2) {
                prop_assert!(deps[idx(&pair[1])].contains(&idx(&pair[0])));
            }
            prop_assert_eq!(path.tasks.is_empty(), n_tasks == 0);
        }
    }
}
