//! Repository-relative paths: validation, ancestors, ignore rules and symlink escape checks.

use std::path::{Component, Path};

use crate::error::{Result, StagingError};

/// Checks that `path` is a normalized repository path: relative, `/`-separated, no empty,
/// `.` or `..` component, no NUL.
pub(crate) fn validate(path: &str) -> Result<()> {
    let bad = |reason| {
        Err(StagingError::InvalidPath {
            path: path.to_owned(),
            reason,
        })
    };
    if path.is_empty() {
        return bad("empty path");
    }
    if path.starts_with('/') {
        return bad("absolute path");
    }
    if path.contains('\0') {
        return bad("contains a NUL byte");
    }
    for comp in path.split('/') {
        match comp {
            "" => return bad("empty component"),
            "." | ".." => return bad("`.` or `..` component"),
            _ => {}
        }
    }
    Ok(())
}

/// The parent of a repository path, `None` at the top level.
pub(crate) fn parent(path: &str) -> Option<&str> {
    path.rfind('/').map(|i| &path[..i])
}

/// Proper ancestors of `path`, nearest first: `a/b/c` gives `a/b`, `a`.
pub(crate) fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    let mut cur = path;
    std::iter::from_fn(move || {
        let p = parent(cur)?;
        cur = p;
        Some(p)
    })
}

/// Joins a directory path and a name (`""` is the root).
pub(crate) fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_owned()
    } else {
        format!("{dir}/{name}")
    }
}

/// Whether `path` is `prefix` or below it.
pub(crate) fn is_within(path: &str, prefix: &str) -> bool {
    path == prefix
        || (path.len() > prefix.len()
            && path.starts_with(prefix)
            && path.as_bytes()[prefix.len()] == b'/')
}

/// Which repository paths change collection skips.
#[derive(Clone, Debug)]
pub(crate) struct Ignores {
    names: Vec<String>,
    prefixes: Vec<String>,
}

impl Ignores {
    /// Builds the rules: `.git` always, `target` and `node_modules` when `defaults`, then
    /// `extra` (names without `/` match at any depth; others are root prefixes).
    pub(crate) fn new(extra: &[String], defaults: bool) -> Ignores {
        let mut names = vec![".git".to_owned()];
        if defaults {
            names.push("target".to_owned());
            names.push("node_modules".to_owned());
        }
        let mut prefixes = Vec::new();
        for raw in extra {
            let trimmed = raw.trim_start_matches("./").trim_matches('/');
            if trimmed.is_empty() {
                continue;
            }
            if trimmed.contains('/') {
                prefixes.push(trimmed.to_owned());
            } else {
                names.push(trimmed.to_owned());
            }
        }
        Ignores { names, prefixes }
    }

    /// Whether `path` (or one of its ancestors) is ignored.
    pub(crate) fn is_ignored(&self, path: &str) -> bool {
        path.split('/').any(|c| self.names.iter().any(|n| n == c))
            || self.prefixes.iter().any(|p| is_within(path, p))
    }

    /// Whether the single entry `name` inside the non-ignored directory `dir` is ignored:
    /// cheaper than [`Ignores::is_ignored`] during a walk.
    pub(crate) fn is_ignored_child(&self, dir: &str, name: &str) -> bool {
        if self.names.iter().any(|n| n == name) {
            return true;
        }
        !self.prefixes.is_empty() && self.prefixes.iter().any(|p| p == &join(dir, name))
    }
}

/// Whether a symlink at repository path `link` with `target` points outside the tree:
/// absolute, or climbing above the root with `..`.
pub(crate) fn symlink_escapes(link: &str, target: &Path) -> bool {
    let mut depth: i64 = parent(link).map_or(0, |p| p.split('/').count() as i64);
    for comp in target.components() {
        match comp {
            Component::RootDir | Component::Prefix(_) => return true,
            Component::CurDir => {}
            Component::ParentDir => {
                depth -= 1;
                if depth < 0 {
                    return true;
                }
            }
            Component::Normal(_) => depth += 1,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_rejects_bad_paths() {
        for bad in ["", "/a", "a//b", "a/./b", "../a", "a/..", "a/"] {
            assert!(validate(bad).is_err(), "{bad:?} should be rejected");
        }
        for good in ["a", "a/b", ".hidden/x", "a..b"] {
            validate(good).expect(good);
        }
    }

    #[test]
    fn ancestors_nearest_first() {
        assert_eq!(ancestors("a/b/c").collect::<Vec<_>>(), ["a/b", "a"]);
        assert_eq!(ancestors("a").count(), 0);
    }

    #[test]
    fn ignores_names_and_prefixes() {
        let ig = Ignores::new(&["build/".into(), "docs/gen".into()], true);
        assert!(ig.is_ignored(".git"));
        assert!(ig.is_ignored("sub/.git/config"));
        assert!(ig.is_ignored("target/debug/x"));
        assert!(ig.is_ignored("pkg/node_modules/a"));
        assert!(ig.is_ignored("x/build"));
        assert!(ig.is_ignored("docs/gen/a.html"));
        assert!(!ig.is_ignored("docs/general.md"));
        assert!(!ig.is_ignored("src/target.rs"));
        let no_defaults = Ignores::new(&[], false);
        assert!(!no_defaults.is_ignored("target/x"));
        assert!(ig.is_ignored_child("docs", "gen"));
        assert!(!ig.is_ignored_child("", "gen"));
    }

    #[test]
    fn escaping_symlinks() {
        assert!(symlink_escapes("a", Path::new("/etc/passwd")));
        assert!(symlink_escapes("a", Path::new("../x")));
        assert!(symlink_escapes("d/a", Path::new("../../x")));
        assert!(!symlink_escapes("d/a", Path::new("../x")));
        assert!(!symlink_escapes("d/a", Path::new("e/../../x")));
        assert!(!symlink_escapes("a", Path::new("b/c")));
    }
}
