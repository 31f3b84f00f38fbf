//! Which repository paths change collection skips: git's own ignore rules, read from the
//! repository once when a run opens, plus the caller's extras.
//!
//! In a git work tree the rules are git's: every `.gitignore` git sees, the repository's
//! `info/exclude` and `core.excludesFile` (see [`StagingOptions::git_excludes_file`] for
//! the default file), through the `ignore` crate's gitignore matcher, and a **tracked path
//! is never ignored**, whatever its name. A nested repository that git does not track
//! (`vendor/lib/.git`, not a submodule) is ignored whole, as the outer git sees it: it is a
//! separate repository, and forge neither collects nor deletes anything in it. The rules
//! are taken from the repository at [`Staging::open`](crate::Staging::open) and never
//! re-read: an agent that edits a
//! `.gitignore` in its view changes what gets merged, not what is collected during the run.
//! The repository is taken as a work tree's top level (`.gitignore` files above it are not
//! read). Reading the rules costs one `git ls-files --cached --others --exclude-standard`
//! (about 0.1 s at 50,000 files), a `git config` and a `git rev-parse`.
//! In a plain directory the rules are `target` and `node_modules` at any depth (when
//! [`StagingOptions::default_ignores`]). In both, `.git` at any depth and the caller's
//! [`StagingOptions::ignores`] are ignored.
//!
//! Ignored paths stay in the views (agents need `.env`, `node_modules`, `target`); they are
//! only left out of change sets, and deletions never remove them.

use std::path::Path;

use ignore::Match;
use ignore::gitignore::{Gitignore, GitignoreBuilder};
use rustc_hash::{FxHashMap, FxHashSet};

use crate::error::{Result, StagingError};
use crate::paths;
use crate::types::StagingOptions;

/// The ignore rules of one run, fixed when it opened.
#[derive(Debug)]
pub(crate) struct Ignores {
    /// The caller's extra patterns (gitignore syntax, rooted at the repository).
    extras: Gitignore,
    /// Names ignored at any depth in a plain directory.
    default_names: Vec<&'static str>,
    /// git's rules, when the repository is a git work tree.
    git: Option<GitRules>,
}

/// git's rules and the tracked paths of a work tree.
#[derive(Debug)]
struct GitRules {
    /// The `.gitignore` of each directory that has one (`""` = the root), each matching
    /// paths relative to its directory.
    per_dir: FxHashMap<String, Gitignore>,
    /// `core.excludesFile` then `info/exclude` (the later wins), relative to the root.
    global: Gitignore,
    /// Tracked paths and every directory above one.
    tracked: FxHashSet<String>,
    /// The directories above tracked files.
    tracked_dirs: FxHashSet<String>,
    /// Nested repositories git does not track (`git ls-files --others` lists them as
    /// `dir/`): separate repositories, ignored whole, as the outer git sees them.
    nested_repos: FxHashSet<String>,
    /// Tracked directories that the rules ignore: walked for their tracked files, while
    /// everything untracked below them is ignored.
    ignored_tracked_dirs: FxHashSet<String>,
}

/// A matcher for `lines` (gitignore syntax) matching paths relative to its directory.
fn matcher(source: &Path, lines: &str) -> Result<Gitignore> {
    let mut b = GitignoreBuilder::new(".");
    for line in lines.lines() {
        b.add_line(Some(source.to_owned()), line)
            .map_err(|e| bad_pattern(source, &e))?;
    }
    b.build().map_err(|e| bad_pattern(source, &e))
}

fn bad_pattern(source: &Path, e: &ignore::Error) -> StagingError {
    StagingError::Ignore {
        source_file: source.to_owned(),
        reason: e.to_string(),
    }
}

impl Ignores {
    /// Reads the rules for `repo`: git's (when it is a git work tree, by running `git`) or
    /// the plain-directory defaults, plus `opts.ignores`.
    pub(crate) fn load(repo: &Path, opts: &StagingOptions) -> Result<Ignores> {
        let extra_lines: Vec<String> = opts
            .ignores
            .iter()
            .map(|raw| raw.trim_start_matches("./").to_owned())
            .collect();
        let extras = matcher(
            Path::new("StagingOptions::ignores"),
            &extra_lines.join("\n"),
        )?;
        let git = if is_work_tree(repo) {
            Some(GitRules::load(repo, opts)?)
        } else {
            None
        };
        let default_names = if git.is_none() && opts.default_ignores {
            vec!["target", "node_modules"]
        } else {
            Vec::new()
        };
        let mut ignores = Ignores {
            extras,
            default_names,
            git,
        };
        if let Some(git) = &ignores.git {
            let ignored: FxHashSet<String> = git
                .tracked_dirs
                .iter()
                .filter(|p| ignores.rules_ignore(p, true))
                .cloned()
                .collect();
            if let Some(git) = &mut ignores.git {
                git.ignored_tracked_dirs = ignored;
            }
        }
        Ok(ignores)
    }

    /// Plain-directory rules (`.git`, and `target` and `node_modules` when `defaults`)
    /// plus `extra`, for tests.
    #[cfg(test)]
    pub(crate) fn plain(extra: &[&str], defaults: bool) -> Ignores {
        Ignores {
            extras: matcher(Path::new("test"), &extra.join("\n")).expect("valid patterns"),
            default_names: if defaults {
                vec!["target", "node_modules"]
            } else {
                Vec::new()
            },
            git: None,
        }
    }

    /// Whether `path` (a directory when `is_dir`) is ignored, by its own name or one of
    /// its ancestors'.
    pub(crate) fn is_ignored(&self, path: &str, is_dir: bool) -> bool {
        if path.split('/').any(|c| c == ".git") {
            return true;
        }
        if self.git.as_ref().is_some_and(|g| g.tracked.contains(path)) {
            return false;
        }
        self.rules_ignore(path, is_dir)
    }

    /// Whether the rules (not the tracked set) ignore `path` or one of its ancestors.
    fn rules_ignore(&self, path: &str, is_dir: bool) -> bool {
        if path.split('/').any(|c| c == ".git") {
            return true;
        }
        let mut ancestors: Vec<&str> = paths::ancestors(path).collect();
        ancestors.reverse();
        ancestors
            .into_iter()
            .any(|a| self.own_match(a, true) == Some(true))
            || self.own_match(path, is_dir) == Some(true)
    }

    /// Whether the entry `path` (a directory when `is_dir`), whose parent directory a walk
    /// reached (it is not ignored, or is a tracked directory), is ignored. Cheaper than
    /// [`Ignores::is_ignored`]: only `path`'s own name is matched.
    pub(crate) fn is_ignored_child(&self, path: &str, is_dir: bool) -> bool {
        let name = path.rsplit('/').next().unwrap_or(path);
        if name == ".git" {
            return true;
        }
        if let Some(git) = &self.git {
            if git.tracked.contains(path) {
                return false;
            }
            if !git.ignored_tracked_dirs.is_empty()
                && git
                    .ignored_tracked_dirs
                    .contains(paths::parent(path).unwrap_or(""))
            {
                return true;
            }
        }
        self.own_match(path, is_dir) == Some(true)
    }

    /// How the rules match `path` itself (not its ancestors): `Some(true)` ignored,
    /// `Some(false)` re-included by a negation, `None` no rule matched.
    fn own_match(&self, path: &str, is_dir: bool) -> Option<bool> {
        if self.extras.matched(path, is_dir).is_ignore() {
            return Some(true);
        }
        let Some(git) = &self.git else {
            let name = path.rsplit('/').next().unwrap_or(path);
            return self.default_names.contains(&name).then_some(true);
        };
        if is_dir && git.nested_repos.contains(path) {
            return Some(true);
        }
        // The nearest `.gitignore` decides first, then those above it, then the globals.
        let mut dir = paths::parent(path);
        loop {
            let key = dir.unwrap_or("");
            if let Some(gi) = git.per_dir.get(key) {
                let rel = if key.is_empty() {
                    path
                } else {
                    &path[key.len() + 1..]
                };
                match gi.matched(rel, is_dir) {
                    Match::Ignore(_) => return Some(true),
                    Match::Whitelist(_) => return Some(false),
                    Match::None => {}
                }
            }
            match dir {
                None => break,
                Some(d) => dir = paths::parent(d),
            }
        }
        match git.global.matched(path, is_dir) {
            Match::Ignore(_) => Some(true),
            Match::Whitelist(_) => Some(false),
            Match::None => None,
        }
    }
}

impl GitRules {
    /// Runs `git ls-files` for the tracked paths and the `.gitignore` files git sees, and
    /// reads them and the global exclude files.
    fn load(repo: &Path, opts: &StagingOptions) -> Result<GitRules> {
        let listing = git(
            repo,
            &[
                "ls-files",
                "-z",
                "-t",
                "--cached",
                "--others",
                "--exclude-standard",
            ],
        )?;
        let mut tracked = FxHashSet::default();
        let mut tracked_dirs = FxHashSet::default();
        let mut nested_repos = FxHashSet::default();
        let mut gitignores = Vec::new();
        for field in listing.split(|&b| b == 0) {
            // `T path`: the tag `?` marks untracked files, any other tag tracked ones.
            let (Some(&tag), Some(path)) = (field.first(), field.get(2..)) else {
                continue;
            };
            let Ok(path) = std::str::from_utf8(path) else {
                continue;
            };
            if let Some(dir) = path.strip_suffix('/') {
                if tag == b'?' && !dir.is_empty() {
                    nested_repos.insert(dir.to_owned());
                }
                continue;
            }
            if path.is_empty() {
                continue;
            }
            if path == ".gitignore" || path.ends_with("/.gitignore") {
                gitignores.push(path.to_owned());
            }
            if tag != b'?' {
                for a in paths::ancestors(path) {
                    if !tracked_dirs.insert(a.to_owned()) {
                        break;
                    }
                    tracked.insert(a.to_owned());
                }
                tracked.insert(path.to_owned());
            }
        }
        let mut per_dir = FxHashMap::default();
        gitignores.sort();
        gitignores.dedup();
        for gi in gitignores {
            let disk = repo.join(&gi);
            // A `.gitignore` that is a directory or unreadable is one git skips too.
            let Ok(text) = std::fs::read_to_string(&disk) else {
                continue;
            };
            let dir = paths::parent(&gi).unwrap_or("").to_owned();
            per_dir.insert(dir, matcher(&disk, &text)?);
        }
        let mut global_text = String::new();
        let excludes_file = git(repo, &["config", "--path", "core.excludesFile"])
            .ok()
            .and_then(|out| {
                let s = String::from_utf8(out).ok()?;
                let s = s.trim_end_matches('\n');
                (!s.is_empty()).then(|| repo.join(s))
            })
            .or_else(|| opts.git_excludes_file.clone());
        let info_exclude = git(repo, &["rev-parse", "--git-path", "info/exclude"])?;
        let info_exclude = String::from_utf8_lossy(&info_exclude)
            .trim_end_matches('\n')
            .to_owned();
        for file in excludes_file
            .into_iter()
            .chain(std::iter::once(repo.join(info_exclude)))
        {
            if let Ok(text) = std::fs::read_to_string(&file) {
                global_text.push_str(&text);
                global_text.push('\n');
            }
        }
        let global = matcher(Path::new("the git exclude files"), &global_text)?;
        Ok(GitRules {
            per_dir,
            global,
            tracked,
            tracked_dirs,
            nested_repos,
            ignored_tracked_dirs: FxHashSet::default(),
        })
    }
}

/// Whether `repo` is inside a git work tree (`git` missing counts as no).
fn is_work_tree(repo: &Path) -> bool {
    git(repo, &["rev-parse", "--is-inside-work-tree"]).is_ok_and(|out| out.starts_with(b"true"))
}

/// Runs `git args` in `dir` and returns its standard output.
fn git(dir: &Path, args: &[&str]) -> Result<Vec<u8>> {
    crate::git::run(dir, None, args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_directory_rules() {
        let ig = Ignores::plain(&["build/", "docs/gen"], true);
        assert!(ig.is_ignored(".git", true));
        assert!(ig.is_ignored("sub/.git/config", false));
        assert!(ig.is_ignored("target/debug/x", false));
        assert!(ig.is_ignored("pkg/node_modules/a", false));
        assert!(ig.is_ignored("x/build", true));
        assert!(
            !ig.is_ignored("x/build", false),
            "`build/` names directories only"
        );
        assert!(ig.is_ignored("docs/gen/a.html", false));
        assert!(!ig.is_ignored("docs/general.md", false));
        assert!(!ig.is_ignored("src/target.rs", false));
        assert!(ig.is_ignored_child("docs/gen", true));
        assert!(!ig.is_ignored_child("gen", true));
        let no_defaults = Ignores::plain(&[], false);
        assert!(!no_defaults.is_ignored("target/x", false));
        assert!(no_defaults.is_ignored("a/.git", true));
    }
}
