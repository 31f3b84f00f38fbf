//! Commit messages and identities: the subject, the bounded prompt and the trailers of a
//! task's commit; `Name <email>` from the options, the repository or the default.

use std::path::Path;

use super::{BODY_MAX, DEFAULT_IDENT, LandError, Merge, SUBJECT_MAX, check_author, git};
use crate::plan::Task;

/// A task commit's message: subject, prompt, trailers.
pub(super) fn message(task: Option<&&Task>, merge: &Merge, run: &str) -> String {
    let prompt = task.map_or("", |t| t.prompt.trim());
    let title = task.and_then(|t| t.title.as_deref()).map(str::trim);
    let first = title
        .filter(|t| !t.is_empty())
        .or_else(|| prompt.lines().map(str::trim).find(|l| !l.is_empty()));
    let subject = match first {
        Some(line) => truncate(line, SUBJECT_MAX),
        None => truncate(&format!("forge task {}", merge.task), SUBJECT_MAX),
    };
    let mut out = subject.clone();
    out.push_str("\n\n");
    if !prompt.is_empty() && prompt != subject {
        let body = truncate(prompt, BODY_MAX);
        out.push_str(&body);
        if body.len() < prompt.len() {
            out.push_str("\n[prompt truncated]");
        }
        out.push_str("\n\n");
    }
    let executor = task.map_or(crate::plan::DEFAULT_EXECUTOR, |t| t.executor.as_str());
    out.push_str(&format!(
        "Forge-Task: {}\nForge-Run: {run}\nForge-Attempt: {}\nForge-Executor: {executor}\n",
        one_line(&merge.task),
        merge.attempt
    ));
    out
}

/// At most `max` characters of `text`, cut at a character boundary.
pub(super) fn truncate(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

/// `text` with line breaks replaced, for a trailer value.
fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

/// `Name <email>`: the given author (checked), the repository's identity, or the default.
pub(super) fn identity(repo: &Path, author: Option<&str>) -> Result<String, LandError> {
    if let Some(author) = author {
        check_author(author)?;
        return Ok(author.trim().to_owned());
    }
    let name = git::run(repo, &["config", "user.name"]).unwrap_or_default();
    let email = git::run(repo, &["config", "user.email"]).unwrap_or_default();
    let ident = format!("{name} <{email}>");
    if !name.is_empty() && !email.is_empty() && parse_ident(&ident).is_some() {
        Ok(ident)
    } else {
        Ok(DEFAULT_IDENT.to_owned())
    }
}

/// Splits `Name <email>` into its parts, `None` when it is not of that form (or holds
/// characters git would reject: `<`, `>` or a line break inside a part).
pub(super) fn parse_ident(ident: &str) -> Option<(&str, &str)> {
    let ident = ident.trim();
    let (name, rest) = ident.split_once('<')?;
    let email = rest.strip_suffix('>')?;
    let name = name.trim();
    let bad = |s: &str| s.contains(['<', '>']) || s.chars().any(char::is_control);
    if ident.chars().any(char::is_control) {
        return None;
    }
    (!name.is_empty() && !email.is_empty() && !bad(name) && !bad(email)).then_some((name, email))
}

pub(super) fn split_ident(ident: &str) -> (&str, &str) {
    parse_ident(ident).unwrap_or(("forge", "forge@localhost"))
}
