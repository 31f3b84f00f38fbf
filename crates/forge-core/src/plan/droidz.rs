//! Import of the Droidz `tasks.json` form:
//! `{"tasks":[{"key":"A-1","dependencies":["A-0"],"title":..,"description":..}]}`.
//!
//! `key` becomes the id, `dependencies` the deps, and title and description (joined by a
//! blank line) the prompt. Other Droidz fields (status, estimates) are ignored.

use serde::Deserialize;

use crate::plan::Task;

#[derive(Deserialize)]
struct DroidzFile {
    tasks: Vec<DroidzTask>,
}

#[derive(Deserialize)]
struct DroidzTask {
    key: String,
    #[serde(default)]
    dependencies: Vec<String>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    description: Option<String>,
}

/// Whether the JSON text's first task has a `key` and no `id`.
pub(super) fn looks_like_droidz(text: &str) -> bool {
    #[derive(Deserialize)]
    struct Probe {
        #[serde(default)]
        tasks: Vec<serde_json::Map<String, serde_json::Value>>,
    }
    serde_json::from_str::<Probe>(text).is_ok_and(|probe| {
        probe
            .tasks
            .first()
            .is_some_and(|task| task.contains_key("key") && !task.contains_key("id"))
    })
}

/// Parses the Droidz form into tasks.
pub(super) fn parse(text: &str) -> Result<Vec<Task>, String> {
    let file: DroidzFile = serde_json::from_str(text).map_err(|e| e.to_string())?;
    Ok(file
        .tasks
        .into_iter()
        .map(|t| {
            let prompt = match (t.title, t.description) {
                (Some(title), Some(description)) if !description.is_empty() => {
                    format!("{title}\n\n{description}")
                }
                (Some(title), _) => title,
                (None, Some(description)) => description,
                (None, None) => String::new(),
            };
            Task::new(t.key, prompt).deps(t.dependencies)
        })
        .collect())
}
