//! Import of the Droidz `tasks.json` form:
//! `{"tasks":[{"key":"A-1","dependencies":["A-0"],"title":..,"description":..}]}`.
//!
//! `key` becomes the id, `dependencies` the deps, and title and description (joined by a
//! blank line) the prompt. Other Droidz fields (status, estimates) are ignored, except one
//! that is a near miss of a known field (`dependecies`, `Key`): a typo that would silently
//! drop a dependency is an error that says which field was meant.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::IgnoredAny;

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
    /// Every other field, checked for near misses of the known ones.
    #[serde(flatten)]
    other: BTreeMap<String, IgnoredAny>,
}

/// The fields forge reads from a Droidz task.
const KNOWN_FIELDS: [&str; 4] = ["key", "dependencies", "title", "description"];

/// The known field `name` is probably a misspelling of: within edit distance 2 (1 for
/// fields of up to four letters, so short unrelated names pass), case ignored.
fn near_miss(name: &str) -> Option<&'static str> {
    let lower = name.to_lowercase();
    KNOWN_FIELDS.into_iter().find(|known| {
        let limit = if known.len() <= 4 { 1 } else { 2 };
        strsim::damerau_levenshtein(&lower, known) <= limit
    })
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
    for task in &file.tasks {
        if let Some((field, meant)) = task
            .other
            .keys()
            .find_map(|field| near_miss(field).map(|meant| (field, meant)))
        {
            return Err(format!(
                "task `{}`: unknown field `{field}`, did you mean `{meant}`?",
                task.key
            ));
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_misses_of_known_fields_only() {
        assert_eq!(near_miss("dependecies"), Some("dependencies"));
        assert_eq!(near_miss("Dependencies"), Some("dependencies"));
        assert_eq!(near_miss("depedencies"), Some("dependencies"));
        assert_eq!(near_miss("descripton"), Some("description"));
        assert_eq!(near_miss("titel"), Some("title"));
        assert_eq!(near_miss("keys"), Some("key"));
        for other in [
            "status", "priority", "id", "files", "labels", "type", "tags", "estimate",
        ] {
            assert_eq!(near_miss(other), None, "{other}");
        }
    }
}
