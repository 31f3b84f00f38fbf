//! The plan model: tasks with dependencies, path globs and run settings; loaded from TOML,
//! JSON or a Droidz `tasks.json`, or built in code.
//!
//! A [`Plan`] is unchecked input. [`Plan::validate`] turns it into a
//! [`ValidatedPlan`](crate::ValidatedPlan), which cannot hold a cycle.

mod droidz;
pub(crate) mod duration;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The executor a task uses when it names none.
pub const DEFAULT_EXECUTOR: &str = "default";

/// One unit of work: what to do, what must finish first, and what paths it touches.
///
/// Build one in code with [`Task::new`] and the chained setters, or load a [`Plan`].
///
/// ```
/// use std::time::Duration;
/// use forge_core::Task;
///
/// let task = Task::new("api", "Add the /login endpoint")
///     .deps(["models"])
///     .writes(["src/api/**"])
///     .timeout(Duration::from_secs(600))
///     .retries(2);
/// assert_eq!(task.deps, ["models"]);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "TaskIn")]
#[non_exhaustive]
pub struct Task {
    /// Unique, non-empty name of the task.
    pub id: String,
    /// The payload handed to the executor (a prompt for an agent, or a command).
    #[serde(default)]
    pub prompt: String,
    /// Ids of the tasks that must succeed before this one starts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deps: Vec<String>,
    /// Globs this task reads (shared locks).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reads: Vec<String>,
    /// Globs this task may write (exclusive locks, and its write scope). Empty: no write
    /// locks, the task may write anywhere and the merge catches overlaps.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub writes: Vec<String>,
    /// Higher runs first among ready tasks.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub priority: i32,
    /// Limit on one attempt's wall time (`"10m"`, `"30s"`, `"500ms"`).
    #[serde(
        serialize_with = "duration::serialize_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub timeout: Option<Duration>,
    /// How many times a failed attempt with a retryable error is tried again.
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub retries: u32,
    /// Name of the registered executor that runs this task.
    #[serde(default = "default_executor")]
    pub executor: String,
    /// Units of named resource pools held while the task runs (`{gpu = 1}`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub resources: BTreeMap<String, u32>,
    /// Expected duration; orders the ready queue by the longest remaining path.
    #[serde(
        serialize_with = "duration::serialize_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub duration_hint: Option<Duration>,
    /// Free-form cost estimate (tokens, dollars). forge never reads it: it is kept with the
    /// task (and in the run directory's `plan.json`) for tools around forge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<f64>,
}

/// A task as read from a plan file: durations still raw, so that a bad one is reported with
/// the task and the field it is in.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TaskIn {
    id: String,
    #[serde(default)]
    prompt: String,
    #[serde(default)]
    deps: Vec<String>,
    #[serde(default)]
    reads: Vec<String>,
    #[serde(default)]
    writes: Vec<String>,
    #[serde(default)]
    priority: i32,
    #[serde(default)]
    timeout: Option<duration::Raw>,
    #[serde(default)]
    retries: u32,
    #[serde(default = "default_executor")]
    executor: String,
    #[serde(default)]
    resources: BTreeMap<String, u32>,
    #[serde(default)]
    duration_hint: Option<duration::Raw>,
    #[serde(default)]
    cost: Option<f64>,
}

impl TryFrom<TaskIn> for Task {
    type Error = String;

    fn try_from(task: TaskIn) -> Result<Self, String> {
        let check = |field: &str, raw: &Option<duration::Raw>| {
            raw.as_ref()
                .map(duration::Raw::to_duration)
                .transpose()
                .map_err(|e| format!("task `{}`: {field}: {e}", task.id))
        };
        let timeout = check("timeout", &task.timeout)?;
        let duration_hint = check("duration_hint", &task.duration_hint)?;
        Ok(Self {
            id: task.id,
            prompt: task.prompt,
            deps: task.deps,
            reads: task.reads,
            writes: task.writes,
            priority: task.priority,
            timeout,
            retries: task.retries,
            executor: task.executor,
            resources: task.resources,
            duration_hint,
            cost: task.cost,
        })
    }
}

fn is_zero(value: &i32) -> bool {
    *value == 0
}

fn is_zero_u32(value: &u32) -> bool {
    *value == 0
}

fn default_executor() -> String {
    DEFAULT_EXECUTOR.to_owned()
}

impl Task {
    /// A task with an id and a prompt, no dependencies, and default settings.
    pub fn new(id: impl Into<String>, prompt: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            prompt: prompt.into(),
            deps: Vec::new(),
            reads: Vec::new(),
            writes: Vec::new(),
            priority: 0,
            timeout: None,
            retries: 0,
            executor: default_executor(),
            resources: BTreeMap::new(),
            duration_hint: None,
            cost: None,
        }
    }

    /// Sets the dependencies.
    pub fn deps<I: IntoIterator<Item = S>, S: Into<String>>(mut self, deps: I) -> Self {
        self.deps = deps.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the read globs.
    pub fn reads<I: IntoIterator<Item = S>, S: Into<String>>(mut self, reads: I) -> Self {
        self.reads = reads.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the write globs.
    pub fn writes<I: IntoIterator<Item = S>, S: Into<String>>(mut self, writes: I) -> Self {
        self.writes = writes.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the priority (higher runs first among ready tasks).
    pub fn priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }

    /// Sets the per-attempt timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sets the number of retries after a retryable failure.
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// Sets the executor name.
    pub fn executor(mut self, executor: impl Into<String>) -> Self {
        self.executor = executor.into();
        self
    }

    /// Holds `units` of the resource pool `pool` while running.
    pub fn resource(mut self, pool: impl Into<String>, units: u32) -> Self {
        self.resources.insert(pool.into(), units);
        self
    }

    /// Sets the expected duration.
    pub fn duration_hint(mut self, hint: Duration) -> Self {
        self.duration_hint = Some(hint);
        self
    }

    /// Sets the cost estimate.
    pub fn cost(mut self, cost: f64) -> Self {
        self.cost = Some(cost);
        self
    }
}

/// The file forms a plan is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PlanFormat {
    /// `[[task]]` tables.
    Toml,
    /// `{"tasks": [...]}` with the same fields as TOML.
    Json,
    /// Droidz `tasks.json`: `{"tasks": [{"key", "dependencies", "title", "description"}]}`.
    Droidz,
}

impl fmt::Display for PlanFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PlanFormat::Toml => "toml",
            PlanFormat::Json => "json",
            PlanFormat::Droidz => "droidz json",
        })
    }
}

/// Why a plan could not be read or parsed. (A plan that parses but is wrong, e.g. has a
/// cycle, is a [`PlanError`](crate::PlanError) from [`Plan::validate`].)
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read plan {}: {source}", path.display())]
    Read {
        /// The plan file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The text is not a plan in the detected (or requested) form.
    #[error("invalid {format} plan{}: {message}", path_suffix(path.as_deref()))]
    Parse {
        /// The plan file, when read from one.
        path: Option<PathBuf>,
        /// The form the text was read as.
        format: PlanFormat,
        /// What the parser said (with line and column where it has them).
        message: String,
    },
}

fn path_suffix(path: Option<&Path>) -> String {
    path.map(|p| format!(" {}", p.display()))
        .unwrap_or_default()
}

/// An unchecked list of tasks, in the order they were written.
///
/// ```
/// use forge_core::{Plan, Task};
///
/// let plan = Plan::parse(r#"
///     [[task]]
///     id = "models"
///     prompt = "Add the User model"
///
///     [[task]]
///     id = "api"
///     deps = ["models"]
///     timeout = "10m"
/// "#)?;
/// assert_eq!(plan.tasks[1].deps, ["models"]);
/// assert_eq!(plan, Plan::default().with_task(Task::new("models", "Add the User model"))
///     .with_task(Task::new("api", "").deps(["models"]).timeout(std::time::Duration::from_secs(600))));
/// # Ok::<(), forge_core::LoadError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct Plan {
    /// The tasks, in plan order (which breaks ties in scheduling and phase listings).
    pub tasks: Vec<Task>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanFileIn {
    #[serde(alias = "tasks", default)]
    task: Vec<Task>,
}

#[derive(Serialize)]
struct TomlOut<'a> {
    task: &'a [Task],
}

#[derive(Serialize)]
struct JsonOut<'a> {
    tasks: &'a [Task],
}

impl Plan {
    /// A plan of these tasks.
    pub fn new(tasks: Vec<Task>) -> Self {
        Self { tasks }
    }

    /// Appends a task.
    pub fn with_task(mut self, task: Task) -> Self {
        self.tasks.push(task);
        self
    }

    /// Appends a task.
    pub fn push(&mut self, task: Task) {
        self.tasks.push(task);
    }

    /// Tells which form `text` is in: JSON when it starts with `{`, Droidz when its first
    /// task has a `key` and no `id`, TOML otherwise.
    pub fn detect_format(text: &str) -> PlanFormat {
        if !text.trim_start().starts_with('{') {
            return PlanFormat::Toml;
        }
        if droidz::looks_like_droidz(text) {
            PlanFormat::Droidz
        } else {
            PlanFormat::Json
        }
    }

    /// Parses a plan, detecting its form with [`Plan::detect_format`].
    ///
    /// # Errors
    ///
    /// [`LoadError::Parse`] when the text is not a plan in that form.
    pub fn parse(text: &str) -> Result<Self, LoadError> {
        Self::parse_as(text, Self::detect_format(text))
    }

    /// Parses a plan in the given form.
    ///
    /// # Errors
    ///
    /// [`LoadError::Parse`] when the text is not a plan in that form.
    pub fn parse_as(text: &str, format: PlanFormat) -> Result<Self, LoadError> {
        let parse_error = |message: String| LoadError::Parse {
            path: None,
            format,
            message,
        };
        let tasks = match format {
            PlanFormat::Toml => {
                toml::from_str::<PlanFileIn>(text)
                    .map_err(|e| parse_error(e.to_string().trim_end().to_owned()))?
                    .task
            }
            PlanFormat::Json => {
                serde_json::from_str::<PlanFileIn>(text)
                    .map_err(|e| parse_error(e.to_string()))?
                    .task
            }
            PlanFormat::Droidz => droidz::parse(text).map_err(parse_error)?,
        };
        Ok(Self { tasks })
    }

    /// Reads and parses a plan file, detecting its form from the content.
    ///
    /// # Errors
    ///
    /// [`LoadError::Read`] when the file cannot be read, [`LoadError::Parse`] (naming the
    /// file) when it is not a plan.
    pub fn load(path: &Path) -> Result<Self, LoadError> {
        let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text).map_err(|err| match err {
            LoadError::Parse {
                format, message, ..
            } => LoadError::Parse {
                path: Some(path.to_owned()),
                format,
                message,
            },
            other => other,
        })
    }

    /// The plan as TOML (`[[task]]` tables).
    pub fn to_toml(&self) -> String {
        toml::to_string(&TomlOut { task: &self.tasks })
            .expect("a plan always serializes: all keys are strings and values are finite")
    }

    /// The plan as pretty JSON (`{"tasks": [...]}`).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(&JsonOut { tasks: &self.tasks })
            .expect("a plan always serializes: all map keys are strings")
    }
}

#[cfg(test)]
mod tests;
