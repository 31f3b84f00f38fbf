//! The worktree backend: each view is a git repository of its own that borrows the user's
//! objects, with `HEAD` checked out and the repository's working changes and the
//! generation's layers applied on top, so the view shows exactly the generation. Needs the
//! repository to be the top of a git work tree.
//!
//! A view's `.git` is a directory made by `git init` (no templates, so no hooks) whose
//! `objects/info/alternates` names the user's object directory. Refs (all but
//! `refs/stash`), `HEAD`, `shallow`, `info/exclude`, `info/attributes` and the local
//! settings that decide how files are checked out or who commits (`user.*`, `core.autocrlf`,
//! `filter.*`, ... see [`carried_over`]) are copied in once. Nothing in it points back at
//! the user's repository except the alternates entry, which git only reads: no remote, no
//! hooks, no worktree link, and the `file` transport off (`protocol.file.allow = never`),
//! so even `git push /path/to/the/repository` fails. So an agent's `git branch -D`,
//! `git stash clear`, `git config`, `git tag`, `git commit` or `git gc` change the view's
//! repository only, and deleting the view's `.git` changes nothing forge collects (`.git`
//! is always ignored). (An agent that writes into the user's `.git` by path, not through
//! git, is the sandbox issue's to stop.)
//!
//! Limitation: objects the view needs are read from the user's object directory while the
//! view lives, so the user's repository must keep them (it must not change during a run
//! anyway); filters that need the repository's own storage (git-lfs objects) are not
//! carried over.

use std::ffi::OsStr;
use std::fs;
use std::io::ErrorKind;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::copy;
use crate::error::{Result, StagingError};
use crate::layers::Layer;
use crate::snapshot::{self, Snapshot};
use crate::staging::Inner;
use crate::sys;
use crate::types::Entry;
use crate::view::ViewState;

/// Runs git with `args` in `dir`, returning its standard output.
fn git(dir: &Path, args: &[&str]) -> Result<Vec<u8>> {
    crate::git::run(dir, None, args)
}

/// Checks that `repo` is the top directory of a git work tree with a `HEAD` commit.
pub(crate) fn probe(repo: &Path) -> Result<(), String> {
    let top = git(repo, &["rev-parse", "--show-toplevel"]).map_err(|e| e.to_string())?;
    let top = String::from_utf8_lossy(&top).trim().to_owned();
    let top = fs::canonicalize(&top).map_err(|e| format!("canonicalize {top}: {e}"))?;
    if top != repo {
        return Err(format!(
            "{} is not the top of its git work tree ({})",
            repo.display(),
            top.display()
        ));
    }
    git(repo, &["rev-parse", "--verify", "HEAD"]).map_err(|e| e.to_string())?;
    Ok(())
}

/// Makes a worktree view of the generation `stack` describes in the fresh directory `dir`.
pub(crate) fn create(inner: &Inner, stack: &[Arc<Layer>], dir: &Path) -> Result<ViewState> {
    let tree = dir.join("tree");
    fs::create_dir(&tree).map_err(StagingError::io("mkdir", &tree))?;
    let source = Source::read(&inner.repo)?;
    source.init(&tree)?;
    git(&tree, &["read-tree", "--reset", "-u", "HEAD"])?;
    sync_working_changes(inner, &tree)?;
    create_empty_dirs(inner, &inner.repo, &tree, "")?;
    let mut scratch = Snapshot::default();
    copy::apply_layers(stack, &tree, &mut scratch, &inner.ignores, false)?;
    let snapshot = snapshot::stat_walk(&tree, &inner.ignores)?;
    Ok(ViewState::Worktree { tree, snapshot })
}

/// What a view's repository copies from the user's: read with three git commands, never
/// written.
struct Source {
    /// The user's object directory (the common one, for a linked worktree).
    objects: PathBuf,
    /// Files copied as they are into the view's git directory when they exist, as
    /// (path in the user's git directory, path in the view's).
    files: Vec<(PathBuf, &'static str)>,
    /// `sha1` or `sha256`.
    object_format: String,
    /// The contents of the view's `HEAD`: `ref: refs/heads/NAME` or a detached commit.
    head: String,
    /// The view's `packed-refs`: every ref of the user's but `refs/stash`.
    packed_refs: Vec<u8>,
    /// The user's local settings that [`carried_over`] keeps.
    config: Vec<(String, Option<String>)>,
}

impl Source {
    /// Reads what a view copies from the repository `repo` (three git commands that write
    /// nothing: `GIT_OPTIONAL_LOCKS=0`).
    fn read(repo: &Path) -> Result<Source> {
        let out = git(
            repo,
            &[
                "rev-parse",
                "--path-format=absolute",
                "--git-path",
                "objects",
                "--git-path",
                "shallow",
                "--git-path",
                "info/exclude",
                "--git-path",
                "info/attributes",
                "--show-object-format",
                "HEAD",
                "--symbolic-full-name",
                "HEAD",
            ],
        )?;
        let lines: Vec<&[u8]> = out.split(|&b| b == b'\n').collect();
        let [
            objects,
            shallow,
            exclude,
            attributes,
            format,
            oid,
            head_ref,
            ..,
        ] = lines[..]
        else {
            return Err(unexpected(repo, "rev-parse", &out));
        };
        let path = |p: &[u8]| PathBuf::from(OsStr::from_bytes(p));
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let head = if head_ref == b"HEAD" {
            text(oid)
        } else {
            format!("ref: {}", text(head_ref))
        };
        let refs = git(repo, &["for-each-ref", "--format=%(objectname) %(refname)"])?;
        let mut packed_refs = Vec::with_capacity(refs.len());
        for line in refs.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            if !line.ends_with(b" refs/stash") {
                packed_refs.extend_from_slice(line);
                packed_refs.push(b'\n');
            }
        }
        let listed = git(repo, &["config", "--local", "--list", "-z"])?;
        let config = parse_config_list(&listed)
            .into_iter()
            .filter(|(key, _)| carried_over(key))
            .collect();
        Ok(Source {
            objects: path(objects),
            files: vec![
                (path(shallow), "shallow"),
                (path(exclude), "info/exclude"),
                (path(attributes), "info/attributes"),
            ],
            object_format: text(format),
            head,
            packed_refs,
            config,
        })
    }

    /// Makes `tree` a repository of its own borrowing the user's objects, with the user's
    /// refs and `HEAD` but nothing that leads back (no remote, no hooks); `HEAD` is not
    /// checked out yet.
    fn init(&self, tree: &Path) -> Result<()> {
        let format = format!("--object-format={}", self.object_format);
        // An empty `--template=` copies no templates: no hooks, whatever
        // `init.templateDir` says.
        git(tree, &["init", "--quiet", "--template=", &format])?;
        let git_dir = tree.join(".git");
        let mut alternates = self.objects.as_os_str().as_bytes().to_vec();
        alternates.push(b'\n');
        write(&git_dir.join("objects/info/alternates"), &alternates)?;
        for (from, to) in &self.files {
            match fs::read(from) {
                Ok(data) => write(&git_dir.join(to), &data)?,
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(StagingError::io("read", from)(e)),
            }
        }
        // `packed-refs` without a header: git sorts and peels it itself on reading.
        write(&git_dir.join("packed-refs"), &self.packed_refs)?;
        write(&git_dir.join("HEAD"), format!("{}\n", self.head).as_bytes())?;
        let mut config = fs::read(git_dir.join("config"))
            .map_err(StagingError::io("read", &git_dir.join("config")))?;
        config.extend_from_slice(config_text(&self.config).as_bytes());
        // No remote leads back, and a push or fetch naming the repository's path is
        // refused too: local paths are git's `file` transport.
        config.extend_from_slice(b"[protocol \"file\"]\n\tallow = never\n");
        write(&git_dir.join("config"), &config)
    }
}

/// Writes `data` to `path`, creating its parent directory.
fn write(path: &Path, data: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(StagingError::io("mkdir", parent))?;
    }
    fs::write(path, data).map_err(StagingError::io("write", path))
}

/// The error for git output of a shape this module does not expect.
fn unexpected(repo: &Path, what: &str, out: &[u8]) -> StagingError {
    StagingError::Git {
        args: what.to_owned(),
        dir: repo.to_owned(),
        message: format!(
            "unexpected output {:?}",
            String::from_utf8_lossy(out).trim()
        ),
    }
}

/// Whether the user's local setting `key` (as `git config --list` spells it: section and
/// name lowercase) is copied into a view: only what decides the bytes a checkout writes
/// and who commits. Remotes, branches' upstreams, hooks and includes never are.
fn carried_over(key: &str) -> bool {
    const KEYS: &[&str] = &[
        "core.autocrlf",
        "core.eol",
        "core.safecrlf",
        "core.filemode",
        "core.symlinks",
        "core.ignorecase",
        "core.precomposeunicode",
        "core.checkroundtripencoding",
        "core.attributesfile",
        "core.excludesfile",
    ];
    const SECTIONS: &[&str] = &["user.", "author.", "committer.", "filter."];
    KEYS.contains(&key) || SECTIONS.iter().any(|s| key.starts_with(s))
}

/// Parses `git config --list -z`: `key\nvalue\0`, or `key\0` for a key without a value.
fn parse_config_list(out: &[u8]) -> Vec<(String, Option<String>)> {
    out.split(|&b| b == 0)
        .filter(|item| !item.is_empty())
        .map(|item| {
            let item = String::from_utf8_lossy(item);
            match item.split_once('\n') {
                Some((key, value)) => (key.to_owned(), Some(value.to_owned())),
                None => (item.into_owned(), None),
            }
        })
        .collect()
}

/// The settings `entries` in git's config file syntax, one section header each.
fn config_text(entries: &[(String, Option<String>)]) -> String {
    let mut out = String::new();
    for (key, value) in entries {
        let Some((section, rest)) = key.split_once('.') else {
            continue;
        };
        let name = match rest.rsplit_once('.') {
            Some((sub, name)) => {
                out.push_str(&format!("[{section} \"{}\"]\n", escape(sub, false)));
                name
            }
            None => {
                out.push_str(&format!("[{section}]\n"));
                rest
            }
        };
        match value {
            Some(value) => out.push_str(&format!("\t{name} = \"{}\"\n", escape(value, true))),
            None => out.push_str(&format!("\t{name}\n")),
        }
    }
    out
}

/// Escapes `s` for a double-quoted subsection name or (with `value`) value.
fn escape(s: &str, value: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' if value => out.push_str("\\n"),
            '\t' if value => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out
}

/// Copies into the worktree every path where the repository's working directory differs
/// from `HEAD` (modified, deleted, untracked and git-ignored paths), except paths forge
/// ignores.
fn sync_working_changes(inner: &Inner, tree: &Path) -> Result<()> {
    let out = git(
        &inner.repo,
        &[
            "status",
            "--porcelain=v1",
            "-z",
            "--untracked-files=all",
            "--ignored=traditional",
        ],
    )?;
    let mut fields = out.split(|&b| b == 0).filter(|f| !f.is_empty());
    while let Some(field) = fields.next() {
        if field.len() < 4 {
            continue;
        }
        let status = &field[..2];
        let path = String::from_utf8_lossy(&field[3..]).into_owned();
        if status[0] == b'R' || status[0] == b'C' {
            // The source of a staged rename or copy follows: sync it too.
            if let Some(orig) = fields.next() {
                sync_path(inner, tree, &String::from_utf8_lossy(orig))?;
            }
        }
        sync_path(inner, tree, &path)?;
    }
    Ok(())
}

/// Makes `path` in the worktree match the repository's working directory.
fn sync_path(inner: &Inner, tree: &Path, path: &str) -> Result<()> {
    let path = path.trim_end_matches('/');
    // Ignored files are synced (agents need `.env`); ignored directories (`target/`) and
    // everything in them are not, as git worktrees never copy them.
    let in_ignored_dir = crate::paths::parent(path)
        .is_some_and(|p| inner.ignores.is_ignored(p, true))
        || (inner.repo.join(path).is_dir() && inner.ignores.is_ignored(path, true));
    if path.is_empty() || in_ignored_dir {
        return Ok(());
    }
    let src = inner.repo.join(path);
    let dst = tree.join(path);
    sys::remove_any(&dst)?;
    let meta = match fs::symlink_metadata(&src) {
        Ok(m) => m,
        Err(_) => return Ok(()),
    };
    if let Some(parent) = dst.parent() {
        fs::create_dir_all(parent).map_err(StagingError::io("mkdir", parent))?;
    }
    if meta.is_dir() {
        copy::copy_tree(&src, &dst, &inner.ignores, false)?;
    } else if let Some(entry) = sys::read_entry_with(&src, &meta)? {
        let entry = match entry {
            Entry::File { data, .. } => {
                use std::os::unix::fs::{MetadataExt, PermissionsExt};
                sys::write_entry(
                    &dst,
                    &Entry::File {
                        data,
                        executable: false,
                    },
                    false,
                )?;
                fs::set_permissions(&dst, fs::Permissions::from_mode(meta.mode() & 0o7777))
                    .map_err(StagingError::io("chmod", &dst))?;
                return Ok(());
            }
            other => other,
        };
        sys::write_entry(&dst, &entry, false)?;
    }
    Ok(())
}

/// Creates the directories git does not track (empty ones) that the repository has and
/// the worktree lacks, so that the view shows them too; ignored paths are skipped.
fn create_empty_dirs(inner: &Inner, repo: &Path, tree: &Path, dir: &str) -> Result<()> {
    let disk = repo.join(dir);
    for item in fs::read_dir(&disk).map_err(StagingError::io("read dir", &disk))? {
        let item = item.map_err(StagingError::io("read dir", &disk))?;
        let is_dir = item.file_type().is_ok_and(|t| t.is_dir());
        let Some(name) = item.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        let path = crate::paths::join(dir, &name);
        if !is_dir || inner.ignores.is_ignored_child(&path, true) {
            continue;
        }
        let target = tree.join(&path);
        if !target.exists() {
            fs::create_dir(&target).map_err(StagingError::io("mkdir", &target))?;
        }
        create_empty_dirs(inner, repo, tree, &path)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{carried_over, config_text, git, parse_config_list};

    /// Settings written by `config_text` read back the same through git itself.
    #[test]
    fn config_text_round_trips_through_git() {
        let entries: Vec<(String, Option<String>)> = vec![
            (
                "user.name".into(),
                Some("A \"quoted\" \\ name\twith tab".into()),
            ),
            (
                "filter.my.dotted.sub.clean".into(),
                Some("cat; echo \"x\"".into()),
            ),
            ("filter.q\"x.required".into(), None),
            ("core.autocrlf".into(), Some("input".into())),
            (
                "user.email".into(),
                Some("multi\nline # not a comment ;".into()),
            ),
        ];
        let tmp = tempfile::tempdir().expect("tempdir");
        let file = tmp.path().join("config");
        std::fs::write(&file, config_text(&entries)).expect("write");
        let file = file.to_str().expect("utf-8");
        let out = git(tmp.path(), &["config", "--file", file, "--list", "-z"]).expect("git config");
        assert_eq!(parse_config_list(&out), entries);
    }

    #[test]
    fn only_checkout_and_identity_settings_are_carried_over() {
        for key in [
            "user.name",
            "core.autocrlf",
            "filter.lfs.smudge",
            "committer.email",
        ] {
            assert!(carried_over(key), "{key}");
        }
        for key in [
            "core.hookspath",
            "remote.origin.url",
            "branch.main.remote",
            "include.path",
            "core.worktree",
            "core.bare",
            "extensions.worktreeconfig",
            "receive.denycurrentbranch",
        ] {
            assert!(!carried_over(key), "{key}");
        }
    }
}
