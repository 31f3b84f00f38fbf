//! Plan validation: every problem at once, and the [`ValidatedPlan`] that cannot hold a cycle.

mod cycles;
mod patterns;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use crate::plan::{Plan, Task};

/// One thing wrong with a plan. Every variant names the task (and pattern) it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Problem {
    /// A task's id is empty (or only whitespace).
    EmptyId {
        /// 1-based position of the task in the plan.
        position: usize,
    },
    /// Two or more tasks share an id.
    DuplicateId {
        /// The shared id.
        id: String,
        /// 1-based positions of every task with that id.
        positions: Vec<usize>,
    },
    /// A task depends on an id that no task has.
    MissingDependency {
        /// The task naming the dependency.
        task: String,
        /// The id that is not in the plan.
        dependency: String,
    },
    /// A `reads` or `writes` pattern is not a valid glob, is absolute, or leaves the
    /// repository.
    InvalidPattern {
        /// The task declaring the pattern.
        task: String,
        /// `"reads"` or `"writes"`.
        field: &'static str,
        /// The pattern as written.
        pattern: String,
        /// Why it is rejected (naming the pattern).
        message: String,
    },
    /// A task names a resource pool with zero units, which would never be taken.
    ZeroResource {
        /// The task.
        task: String,
        /// The pool.
        pool: String,
    },
    /// An elementary dependency cycle. `path[i]` depends on `path[i + 1]`; the last element
    /// repeats the first. It starts at the task that comes first in the plan.
    Cycle {
        /// The tasks on the cycle, first repeated at the end.
        path: Vec<String>,
    },
    /// A strongly connected group of tasks holds more cycles than were listed.
    MoreCycles {
        /// Every task of the group, in plan order.
        tasks: Vec<String>,
        /// How many cycles of the group were listed.
        listed: usize,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::EmptyId { position } => write!(f, "task #{position} has an empty id"),
            Problem::DuplicateId { id, positions } => {
                let list: Vec<String> = positions.iter().map(|p| format!("#{p}")).collect();
                write!(f, "duplicate task id `{id}` (tasks {})", list.join(", "))
            }
            Problem::MissingDependency { task, dependency } => write!(
                f,
                "task `{task}` depends on `{dependency}`, which is not in the plan"
            ),
            Problem::InvalidPattern {
                task,
                field,
                message,
                ..
            } => write!(f, "task `{task}`: {field}: {message}"),
            Problem::ZeroResource { task, pool } => write!(
                f,
                "task `{task}` asks for 0 units of resource `{pool}` (omit it or ask for 1 or more)"
            ),
            Problem::Cycle { path } => write!(f, "dependency cycle: {}", path.join(" -> ")),
            Problem::MoreCycles { tasks, listed } => write!(
                f,
                "more dependency cycles may exist among tasks {} (listing stopped after {listed})",
                tasks.join(", ")
            ),
        }
    }
}

/// Everything wrong with a plan; `Display` prints one problem per line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PlanError {
    problems: Vec<Problem>,
}

impl PlanError {
    /// The problems, in plan order (cycles last).
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }

    /// Takes the problems out.
    pub fn into_problems(self) -> Vec<Problem> {
        self.problems
    }
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

/// A plan whose ids are unique, whose dependencies exist and form no cycle, and whose globs
/// are valid. Tasks are addressed by their index in plan order.
///
/// ```
/// use forge_core::{Plan, Task};
///
/// let plan = Plan::default()
///     .with_task(Task::new("a", ""))
///     .with_task(Task::new("b", "").deps(["a"]))
///     .validate()?;
/// assert_eq!(plan.index_of("b"), Some(1));
/// assert_eq!(plan.dependencies(1), [0]);
/// # Ok::<(), forge_core::PlanError>(())
/// ```
#[derive(Debug, Clone)]
pub struct ValidatedPlan {
    tasks: Vec<Arc<Task>>,
    index: HashMap<String, u32>,
    dep_offsets: Vec<u32>,
    dep_list: Vec<u32>,
    out_offsets: Vec<u32>,
    out_list: Vec<u32>,
    topo_order: Vec<u32>,
}

impl Plan {
    /// Checks the plan and reports every problem at once.
    ///
    /// # Errors
    ///
    /// A [`PlanError`] listing every empty or duplicate id, missing dependency, invalid or
    /// escaping pattern, zero resource request and dependency cycle.
    pub fn validate(self) -> Result<ValidatedPlan, PlanError> {
        ValidatedPlan::new(self)
    }
}

impl TryFrom<Plan> for ValidatedPlan {
    type Error = PlanError;

    fn try_from(plan: Plan) -> Result<Self, PlanError> {
        plan.validate()
    }
}

impl ValidatedPlan {
    fn new(plan: Plan) -> Result<Self, PlanError> {
        let tasks = plan.tasks;
        let n_tasks = tasks.len();
        assert!(
            u32::try_from(n_tasks).is_ok(),
            "a plan holds at most u32::MAX tasks"
        );
        let mut problems = Vec::new();

        // Ids: the first task with an id owns it; later ones are duplicates.
        let mut index: HashMap<String, u32> = HashMap::with_capacity(n_tasks);
        let mut duplicates: Vec<(u32, Vec<usize>)> = Vec::new();
        let mut duplicate_of: HashMap<u32, usize> = HashMap::new();
        for (i, task) in tasks.iter().enumerate() {
            if task.id.trim().is_empty() {
                continue;
            }
            match index.get(task.id.as_str()) {
                Some(&first) => {
                    let slot = *duplicate_of.entry(first).or_insert_with(|| {
                        duplicates.push((first, vec![first as usize + 1]));
                        duplicates.len() - 1
                    });
                    duplicates[slot].1.push(i + 1);
                }
                None => {
                    index.insert(task.id.clone(), i as u32);
                }
            }
        }
        let mut duplicate_at: HashMap<usize, usize> = HashMap::new();
        for (slot, (first, _)) in duplicates.iter().enumerate() {
            duplicate_at.insert(*first as usize, slot);
        }

        // Edges, in CSR form: deps of task i are dep_list[dep_offsets[i]..dep_offsets[i + 1]].
        let mut dep_offsets = Vec::with_capacity(n_tasks + 1);
        let mut dep_list = Vec::with_capacity(tasks.iter().map(|t| t.deps.len()).sum());
        dep_offsets.push(0u32);
        for (i, task) in tasks.iter().enumerate() {
            if task.id.trim().is_empty() {
                problems.push(Problem::EmptyId { position: i + 1 });
            }
            if let Some(&slot) = duplicate_at.get(&i) {
                let (first, positions) = &duplicates[slot];
                problems.push(Problem::DuplicateId {
                    id: tasks[*first as usize].id.clone(),
                    positions: positions.clone(),
                });
            }
            let start = dep_list.len();
            for dep in &task.deps {
                match index.get(dep.as_str()) {
                    Some(&d) => {
                        // A repeated dependency is harmless; keep one edge.
                        if !dep_list[start..].contains(&d) {
                            dep_list.push(d);
                        }
                    }
                    None => problems.push(Problem::MissingDependency {
                        task: task.id.clone(),
                        dependency: dep.clone(),
                    }),
                }
            }
            dep_offsets.push(dep_list.len() as u32);
            for (field, patterns) in [("reads", &task.reads), ("writes", &task.writes)] {
                for pattern in patterns {
                    if let Err(message) = patterns::check(pattern) {
                        problems.push(Problem::InvalidPattern {
                            task: task.id.clone(),
                            field,
                            pattern: pattern.clone(),
                            message,
                        });
                    }
                }
            }
            for (pool, units) in &task.resources {
                if *units == 0 {
                    problems.push(Problem::ZeroResource {
                        task: task.id.clone(),
                        pool: pool.clone(),
                    });
                }
            }
        }

        let (out_offsets, out_list) = reverse_edges(n_tasks, &dep_offsets, &dep_list);
        let topo_order = topo_sort(n_tasks, &dep_offsets, &out_offsets, &out_list);
        if topo_order.len() < n_tasks {
            let names = |i: u32| tasks[i as usize].id.clone();
            problems.extend(cycles::find(n_tasks, &dep_offsets, &dep_list, &names));
        }

        if !problems.is_empty() {
            return Err(PlanError { problems });
        }
        Ok(Self {
            tasks: tasks.into_iter().map(Arc::new).collect(),
            index,
            dep_offsets,
            dep_list,
            out_offsets,
            out_list,
            topo_order,
        })
    }

    /// Number of tasks.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Whether the plan has no task.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// The tasks, in plan order.
    pub fn tasks(&self) -> &[Arc<Task>] {
        &self.tasks
    }

    /// The task at `idx` (plan order).
    ///
    /// # Panics
    ///
    /// When `idx >= self.len()`.
    pub fn task(&self, idx: usize) -> &Arc<Task> {
        &self.tasks[idx]
    }

    /// The index of the task with this id.
    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.index.get(id).map(|&i| i as usize)
    }

    /// The task with this id.
    pub fn get(&self, id: &str) -> Option<&Arc<Task>> {
        self.index_of(id).map(|i| &self.tasks[i])
    }

    /// Indices of the tasks `idx` depends on (each once, in the order written).
    ///
    /// # Panics
    ///
    /// When `idx >= self.len()`.
    pub fn dependencies(&self, idx: usize) -> &[u32] {
        &self.dep_list[self.dep_offsets[idx] as usize..self.dep_offsets[idx + 1] as usize]
    }

    /// Indices of the tasks that depend on `idx`, in plan order.
    ///
    /// # Panics
    ///
    /// When `idx >= self.len()`.
    pub fn dependents(&self, idx: usize) -> &[u32] {
        &self.out_list[self.out_offsets[idx] as usize..self.out_offsets[idx + 1] as usize]
    }

    /// A topological order: every task comes after all its dependencies.
    pub fn topo_order(&self) -> &[u32] {
        &self.topo_order
    }

    /// Number of dependency edges.
    pub fn n_edges(&self) -> usize {
        self.dep_list.len()
    }

    /// The plan back as plain data (for saving it).
    pub fn to_plan(&self) -> Plan {
        Plan::new(self.tasks.iter().map(|t| Task::clone(t)).collect())
    }
}

/// Dependents in CSR form, each list in plan order.
fn reverse_edges(n_tasks: usize, dep_offsets: &[u32], dep_list: &[u32]) -> (Vec<u32>, Vec<u32>) {
    let mut counts = vec![0u32; n_tasks + 1];
    for &d in dep_list {
        counts[d as usize + 1] += 1;
    }
    for i in 0..n_tasks {
        counts[i + 1] += counts[i];
    }
    let out_offsets = counts.clone();
    let mut cursor = counts;
    let mut out_list = vec![0u32; dep_list.len()];
    for task in 0..n_tasks {
        for &d in &dep_list[dep_offsets[task] as usize..dep_offsets[task + 1] as usize] {
            out_list[cursor[d as usize] as usize] = task as u32;
            cursor[d as usize] += 1;
        }
    }
    (out_offsets, out_list)
}

/// Kahn's algorithm; returns fewer than `n_tasks` indices when there is a cycle.
fn topo_sort(
    n_tasks: usize,
    dep_offsets: &[u32],
    out_offsets: &[u32],
    out_list: &[u32],
) -> Vec<u32> {
    let mut remaining: Vec<u32> = (0..n_tasks)
        .map(|i| dep_offsets[i + 1] - dep_offsets[i])
        .collect();
    let mut order: Vec<u32> = (0..n_tasks as u32)
        .filter(|&i| remaining[i as usize] == 0)
        .collect();
    order.reserve(n_tasks - order.len());
    let mut head = 0;
    while head < order.len() {
        let task = order[head] as usize;
        head += 1;
        for &next in &out_list[out_offsets[task] as usize..out_offsets[task + 1] as usize] {
            remaining[next as usize] -= 1;
            if remaining[next as usize] == 0 {
                order.push(next);
            }
        }
    }
    order
}

#[cfg(test)]
mod tests;
