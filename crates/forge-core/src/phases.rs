//! Phases for a dry run: tasks grouped by dependency depth, rendered as text, JSON, DOT or
//! Mermaid. Phases are for people; the scheduler never waits on a phase barrier.

use std::fmt::Write as _;

use serde::Serialize;

use crate::validate::ValidatedPlan;

/// The output forms of [`Phases::render`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PhaseFormat {
    /// One line per phase, then a summary line.
    Text,
    /// `{"phases": [["a"], ["b", "c"]], "tasks": .., "edges": .., "critical_path": [..]}`.
    Json,
    /// Graphviz, one cluster per phase, edges from a dependency to its dependent.
    Dot,
    /// A Mermaid flowchart, one subgraph per phase.
    Mermaid,
}

/// Tasks grouped by dependency depth: phase 1 holds the tasks without dependencies, phase
/// n + 1 the tasks whose deepest dependency is in phase n. Within a phase, plan order.
///
/// ```
/// use forge_core::{Plan, Task, PhaseFormat};
///
/// let plan = Plan::default()
///     .with_task(Task::new("a", ""))
///     .with_task(Task::new("b", "").deps(["a"]))
///     .with_task(Task::new("c", "").deps(["a"]))
///     .validate()?;
/// let phases = plan.phases();
/// assert_eq!(phases.to_names(), vec![vec!["a"], vec!["b", "c"]]);
/// assert_eq!(phases.render(PhaseFormat::Text), "\
/// phase 1: a
/// phase 2: b, c
/// 3 tasks, 2 dependencies, 2 phases; critical path: a -> b
/// ");
/// # Ok::<(), forge_core::PlanError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Phases<'a> {
    plan: &'a ValidatedPlan,
    phases: Vec<Vec<u32>>,
    critical_path: Vec<u32>,
}

impl ValidatedPlan {
    /// Groups the tasks by dependency depth.
    pub fn phases(&self) -> Phases<'_> {
        let depth = self.depths();
        let n_phases = depth.iter().map(|&d| d as usize + 1).max().unwrap_or(0);
        let mut phases = vec![Vec::new(); n_phases];
        for (idx, &d) in depth.iter().enumerate() {
            phases[d as usize].push(idx as u32);
        }
        let mut critical_path = Vec::new();
        if let Some(last) = phases.last() {
            let mut at = last[0];
            critical_path.push(at);
            while depth[at as usize] > 0 {
                at = *self
                    .dependencies(at as usize)
                    .iter()
                    .find(|&&d| depth[d as usize] + 1 == depth[at as usize])
                    .expect("a task at depth d > 0 has a dependency at depth d - 1");
                critical_path.push(at);
            }
            critical_path.reverse();
        }
        Phases {
            plan: self,
            phases,
            critical_path,
        }
    }

    /// Dependency depth of every task (0 for tasks without dependencies).
    pub(crate) fn depths(&self) -> Vec<u32> {
        let mut depth = vec![0u32; self.len()];
        for &idx in self.topo_order() {
            let d = self
                .dependencies(idx as usize)
                .iter()
                .map(|&dep| depth[dep as usize] + 1)
                .max()
                .unwrap_or(0);
            depth[idx as usize] = d;
        }
        depth
    }
}

#[derive(Serialize)]
struct JsonPhases<'a> {
    phases: Vec<Vec<&'a str>>,
    tasks: usize,
    edges: usize,
    critical_path: Vec<&'a str>,
}

impl<'a> Phases<'a> {
    /// Number of phases.
    pub fn len(&self) -> usize {
        self.phases.len()
    }

    /// Whether there is no phase (the plan is empty).
    pub fn is_empty(&self) -> bool {
        self.phases.is_empty()
    }

    /// Task indices of each phase.
    pub fn indices(&self) -> &[Vec<u32>] {
        &self.phases
    }

    /// Task ids of each phase.
    pub fn to_names(&self) -> Vec<Vec<&'a str>> {
        self.phases
            .iter()
            .map(|phase| phase.iter().map(|&i| self.name(i)).collect())
            .collect()
    }

    /// One longest chain of dependencies (by task count), first task first.
    pub fn critical_path(&self) -> Vec<&'a str> {
        self.critical_path.iter().map(|&i| self.name(i)).collect()
    }

    fn name(&self, idx: u32) -> &'a str {
        &self.plan.task(idx as usize).id
    }

    /// The phases in the given form (always ending with a newline).
    pub fn render(&self, format: PhaseFormat) -> String {
        match format {
            PhaseFormat::Text => self.to_text(),
            PhaseFormat::Json => self.to_json(),
            PhaseFormat::Dot => self.to_dot(),
            PhaseFormat::Mermaid => self.to_mermaid(),
        }
    }

    fn to_text(&self) -> String {
        let mut out = String::new();
        for (n, phase) in self.to_names().iter().enumerate() {
            writeln!(out, "phase {}: {}", n + 1, phase.join(", ")).expect("write to String");
        }
        let plural =
            |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        write!(
            out,
            "{}, {}, {}",
            plural(self.plan.len(), "task", "tasks"),
            plural(self.plan.n_edges(), "dependency", "dependencies"),
            plural(self.len(), "phase", "phases"),
        )
        .expect("write to String");
        if !self.critical_path.is_empty() {
            write!(
                out,
                "; critical path: {}",
                self.critical_path().join(" -> ")
            )
            .expect("write to String");
        }
        out.push('\n');
        out
    }

    fn to_json(&self) -> String {
        let json = JsonPhases {
            phases: self.to_names(),
            tasks: self.plan.len(),
            edges: self.plan.n_edges(),
            critical_path: self.critical_path(),
        };
        let mut out = serde_json::to_string(&json).expect("phases serialize: strings only");
        out.push('\n');
        out
    }

    fn to_dot(&self) -> String {
        let quote = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
        let mut out = String::from("digraph plan {\n  rankdir=LR;\n  node [shape=box];\n");
        for (n, phase) in self.phases.iter().enumerate() {
            writeln!(out, "  subgraph cluster_phase{} {{", n + 1).expect("write to String");
            writeln!(out, "    label=\"phase {}\";", n + 1).expect("write to String");
            for &idx in phase {
                writeln!(out, "    {};", quote(self.name(idx))).expect("write to String");
            }
            out.push_str("  }\n");
        }
        for idx in 0..self.plan.len() {
            for &dep in self.plan.dependencies(idx) {
                writeln!(
                    out,
                    "  {} -> {};",
                    quote(self.name(dep)),
                    quote(self.name(idx as u32))
                )
                .expect("write to String");
            }
        }
        out.push_str("}\n");
        out
    }

    fn to_mermaid(&self) -> String {
        let label = |s: &str| s.replace('"', "#quot;");
        let mut out = String::from("flowchart LR\n");
        for (n, phase) in self.phases.iter().enumerate() {
            writeln!(out, "  subgraph phase{}[\"phase {}\"]", n + 1, n + 1)
                .expect("write to String");
            for &idx in phase {
                writeln!(out, "    t{idx}[\"{}\"]", label(self.name(idx)))
                    .expect("write to String");
            }
            out.push_str("  end\n");
        }
        for idx in 0..self.plan.len() {
            for &dep in self.plan.dependencies(idx) {
                writeln!(out, "  t{dep} --> t{idx}").expect("write to String");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;
