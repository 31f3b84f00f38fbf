//! Where a run's result lands (`--land branch|worktree|none`), the run's name and author,
//! and writing the run branch `forge/NAME` once the engine has finished.

use std::path::Path;

use forge_core::land::{self, BranchOptions};
use serde::{Deserialize, Serialize};

use crate::display::Mode;

/// `--land`: where the result of a run goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Land {
    /// A branch `forge/NAME` with one commit per merged task; the working tree is untouched.
    Branch,
    /// The branch, and the result merged three-way into the working tree.
    Worktree,
    /// Nothing: the result stays in the run directory.
    None,
}

impl Land {
    pub(crate) fn parse(text: &str) -> Result<Land, String> {
        match text {
            "branch" => Ok(Land::Branch),
            "worktree" => Ok(Land::Worktree),
            "none" => Ok(Land::None),
            other => Err(format!(
                "--land `{other}`: expected branch, worktree or none"
            )),
        }
    }
}

/// How a run lands, kept in the run directory's settings so `forge resume` lands the same way.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Landing {
    /// `--land`.
    pub(crate) land: Land,
    /// The run's name: the branch is `forge/NAME`.
    pub(crate) name: String,
    /// `--author`.
    pub(crate) author: Option<String>,
}

impl Landing {
    /// Runs started before landing existed wrote the working tree and no branch.
    pub(crate) fn legacy() -> Landing {
        Landing {
            land: Land::Worktree,
            name: String::new(),
            author: None,
        }
    }

    /// Whether the engine writes the result into the working tree.
    pub(crate) fn publishes(&self) -> bool {
        self.land == Land::Worktree
    }

    fn writes_branch(&self) -> bool {
        self.land != Land::None && !self.name.is_empty()
    }

    /// Checks, before anything runs, that the branch can be created.
    pub(crate) fn check(&self, repo: &Path) -> Result<(), String> {
        if let Some(author) = &self.author {
            land::check_author(author).map_err(|e| format!("--author: {e}"))?;
        }
        if self.land != Land::None && self.name.is_empty() {
            return Err("--name: the run name must not be empty".into());
        }
        if !self.writes_branch() {
            return Ok(());
        }
        land::check_branch_free(repo, &self.name).map_err(|e| format!("--name: {e}"))
    }

    /// Writes the branch of the finished run in `run_dir` and says where it is.
    pub(crate) fn write(&self, repo: &Path, run_dir: &Path, mode: Mode) -> Result<(), String> {
        if !self.writes_branch() {
            return Ok(());
        }
        let mut options = BranchOptions::new(repo, &self.name);
        if let Some(author) = &self.author {
            options = options.author(author);
        }
        let branch = land::write_branch(run_dir, &options).map_err(|e| e.to_string())?;
        let short = branch.refname.trim_start_matches("refs/heads/");
        let mut lines = Vec::new();
        if branch.working_tree.is_some() {
            lines.push(format!(
                "the working tree had uncommitted changes at the start: the first commit on \
                 {short} holds them"
            ));
        }
        lines.push(format!(
            "branch {short}: {} commit{} (one per task that changed something)",
            branch.commits.len(),
            if branch.commits.len() == 1 { "" } else { "s" }
        ));
        let since = branch
            .working_tree
            .as_deref()
            .or(branch.start.as_deref())
            .map(|c| &c[..c.len().min(12)]);
        lines.push(match since {
            Some(c) => format!("  review: git log --stat {c}..{short}"),
            None => format!("  review: git log --stat {short}"),
        });
        if self.land == Land::Branch {
            lines.push(format!(
                "  your working tree was not changed; to take the result: git merge {short}"
            ));
        }
        for line in lines {
            if mode == Mode::Json {
                eprintln!("{line}");
            } else {
                println!("{line}");
            }
        }
        Ok(())
    }
}

/// The default run name, with `-2`, `-3`, ... added while a branch of that name exists (two
/// runs of one plan in the same second must not collide; an explicit `--name` that exists
/// is an error instead).
pub(crate) fn free_default_name(repo: &Path, plan: &Path) -> Result<String, String> {
    let base = default_name(plan);
    for n in 1..1000 {
        let name = if n == 1 {
            base.clone()
        } else {
            format!("{base}-{n}")
        };
        match land::check_branch_free(repo, &name) {
            Ok(()) => return Ok(name),
            Err(land::LandError::BranchExists { .. }) => {}
            Err(e) => return Err(format!("run name `{name}`: {e}")),
        }
    }
    Err(format!(
        "no free run name like `{base}`: give one with --name"
    ))
}

/// `<plan file stem>-<YYYYmmdd-HHMMSS>` (UTC): the default run name.
pub(crate) fn default_name(plan: &Path) -> String {
    let stem = plan
        .file_stem()
        .map_or_else(|| "run".into(), |s| s.to_string_lossy().into_owned());
    let stem: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let stem = stem.replace("..", "-");
    let stem = stem.trim_matches(['.', '-']);
    let stem = if stem.is_empty() { "run" } else { stem };
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    // 2026-12-05T21:10:00Z -> 20261205-211000
    let digits: String = now.chars().filter(char::is_ascii_digit).collect();
    let (date, time) = digits.split_at(digits.len().min(8));
    format!("{stem}-{date}-{time}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_names_are_branch_names() {
        let name = default_name(Path::new("/x/my plan.toml"));
        assert!(name.starts_with("my-plan-"), "{name}");
        let (_, stamp) = name.split_at("my-plan-".len());
        assert_eq!(stamp.len(), "20261205-211000".len(), "{name}");
        assert_eq!(stamp.as_bytes()[8], b'-');
        assert!(default_name(Path::new("..toml")).starts_with("run-"));
    }

    #[test]
    fn land_parses() {
        assert_eq!(Land::parse("branch"), Ok(Land::Branch));
        assert_eq!(Land::parse("worktree"), Ok(Land::Worktree));
        assert_eq!(Land::parse("none"), Ok(Land::None));
        assert!(Land::parse("main").is_err());
    }
}
