//! Repository-relative paths: validation, ancestors and symlink escape checks.

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
    fn escaping_symlinks() {
        assert!(symlink_escapes("a", Path::new("/etc/passwd")));
        assert!(symlink_escapes("a", Path::new("../x")));
        assert!(symlink_escapes("d/a", Path::new("../../x")));
        assert!(!symlink_escapes("d/a", Path::new("../x")));
        assert!(!symlink_escapes("d/a", Path::new("e/../../x")));
        assert!(!symlink_escapes("a", Path::new("b/c")));
    }
}
