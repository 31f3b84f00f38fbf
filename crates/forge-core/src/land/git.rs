//! The git plumbing a run branch is written with: `git` run with no hooks and none of the
//! caller's `GIT_*` variables, and a `git fast-import` stream that takes every task's
//! commit in one process.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};

use forge_staging::LayerEntry;

use super::LandError;

/// The object id git uses for "no object" (`update-ref`'s "must not exist yet").
pub(super) const ZERO_OID: &str = "0000000000000000000000000000000000000000";

/// A `git` command in `repo`: hooks off, no optional locks, none of the caller's `GIT_*`
/// variables that redirect it.
pub(super) fn command(repo: &Path) -> Command {
    let mut cmd = Command::new("git");
    cmd.arg("-C")
        .arg(repo)
        .args(["-c", "core.hooksPath=/dev/null"])
        .env("GIT_OPTIONAL_LOCKS", "0")
        .stdin(Stdio::null());
    for var in forge_staging::GIT_LOCAL_ENV_VARS {
        cmd.env_remove(var);
    }
    cmd
}

/// Runs `git args` in `repo` and returns its trimmed stdout.
pub(super) fn run(repo: &Path, args: &[&str]) -> Result<String, LandError> {
    run_with(repo, args, &[])
}

/// Runs `git args` in `repo` with extra environment variables; returns its trimmed stdout.
pub(super) fn run_with(
    repo: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> Result<String, LandError> {
    let mut cmd = command(repo);
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().map_err(|source| LandError::Spawn {
        command: format!("git {}", args.join(" ")),
        source,
    })?;
    if !out.status.success() {
        return Err(LandError::Git {
            command: format!("git {}", args.join(" ")),
            repo: repo.to_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// `git rev-parse --verify -q REV^{commit}`: `None` when it names no commit.
pub(super) fn resolve_commit(repo: &Path, rev: &str) -> Result<Option<String>, LandError> {
    let spec = format!("{rev}^{{commit}}");
    let out = command(repo)
        .args(["rev-parse", "--verify", "-q", &spec])
        .output()
        .map_err(|source| LandError::Spawn {
            command: "git rev-parse".into(),
            source,
        })?;
    Ok(out
        .status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned()))
}

/// One commit for the fast-import stream.
pub(super) struct CommitSpec<'a> {
    /// The mark naming it (1-based).
    pub(super) mark: usize,
    /// The ref it is written to (`None`: the stream's temporary ref).
    pub(super) refname: Option<&'a str>,
    /// `Name <email>`.
    pub(super) ident: &'a str,
    /// Seconds since the epoch, for author and committer.
    pub(super) time: u64,
    /// The whole message.
    pub(super) message: &'a str,
    /// The parent: a commit id, or the mark of an earlier commit; `None` for a root commit.
    pub(super) parent: Option<Parent<'a>>,
    /// What the commit changes, in the layer's order.
    pub(super) changes: &'a [(String, LayerEntry)],
}

/// A commit's parent in the stream.
pub(super) enum Parent<'a> {
    /// An existing commit.
    Id(&'a str),
    /// An earlier commit of the same stream.
    Mark(usize),
}

/// A running `git fast-import` writing commits to a temporary ref.
pub(super) struct FastImport {
    child: Child,
    stdin: BufWriter<ChildStdin>,
    marks: PathBuf,
    repo: PathBuf,
    tmp_ref: String,
}

impl FastImport {
    /// Starts `git fast-import` in `repo`, writing to `tmp_ref`, its marks to `marks`.
    pub(super) fn start(repo: &Path, tmp_ref: &str, marks: &Path) -> Result<Self, LandError> {
        let mut child = command(repo)
            .args(["fast-import", "--quiet", "--date-format=raw", "--force"])
            .arg(format!("--export-marks={}", marks.display()))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| LandError::Spawn {
                command: "git fast-import".into(),
                source,
            })?;
        let stdin = child.stdin.take().ok_or_else(|| LandError::Spawn {
            command: "git fast-import".into(),
            source: std::io::Error::other("no stdin"),
        })?;
        Ok(FastImport {
            child,
            stdin: BufWriter::with_capacity(1 << 20, stdin),
            marks: marks.to_owned(),
            repo: repo.to_owned(),
            tmp_ref: tmp_ref.to_owned(),
        })
    }

    /// Adds one commit; file contents are streamed from the layer, never held in memory.
    pub(super) fn commit(&mut self, spec: &CommitSpec<'_>) -> Result<(), LandError> {
        self.write_commit(spec)
            .map_err(|source| self.broken(source))
    }

    fn write_commit(&mut self, spec: &CommitSpec<'_>) -> std::io::Result<()> {
        let out = &mut self.stdin;
        writeln!(out, "commit {}", spec.refname.unwrap_or(&self.tmp_ref))?;
        writeln!(out, "mark :{}", spec.mark)?;
        writeln!(out, "author {} {} +0000", spec.ident, spec.time)?;
        writeln!(out, "committer {} {} +0000", spec.ident, spec.time)?;
        writeln!(out, "data {}", spec.message.len())?;
        out.write_all(spec.message.as_bytes())?;
        writeln!(out)?;
        match &spec.parent {
            Some(Parent::Id(id)) => writeln!(out, "from {id}")?,
            Some(Parent::Mark(mark)) => writeln!(out, "from :{mark}")?,
            None => {}
        }
        // Deletions first: a layer that deletes `d` and adds `d/x` (or turns a file into a
        // directory) lists both, and `D d` after `M d/x` would drop the new file.
        for (path, entry) in spec.changes {
            if *entry == LayerEntry::Deleted {
                writeln!(out, "D {}", quote(path))?;
            }
        }
        for (path, entry) in spec.changes {
            match entry {
                LayerEntry::File { disk, executable } => {
                    let mode = if *executable { "100755" } else { "100644" };
                    let mut file = std::fs::File::open(disk)?;
                    let len = file.metadata()?.len();
                    writeln!(out, "M {mode} inline {}", quote(path))?;
                    writeln!(out, "data {len}")?;
                    let copied = std::io::copy(&mut std::io::Read::take(&mut file, len), out)?;
                    if copied != len {
                        return Err(std::io::Error::other(format!(
                            "{} shrank while it was read",
                            disk.display()
                        )));
                    }
                    writeln!(out)?;
                }
                LayerEntry::Symlink { target } => {
                    use std::os::unix::ffi::OsStrExt;
                    let bytes = target.as_os_str().as_bytes();
                    writeln!(out, "M 120000 inline {}", quote(path))?;
                    writeln!(out, "data {}", bytes.len())?;
                    out.write_all(bytes)?;
                    writeln!(out)?;
                }
                LayerEntry::Dir | LayerEntry::Deleted => {}
                other => {
                    return Err(std::io::Error::other(format!(
                        "{path}: a layer entry git cannot hold: {other:?}"
                    )));
                }
            }
        }
        writeln!(out)
    }

    /// Ends the stream and returns the commit id of every mark.
    pub(super) fn finish(mut self) -> Result<Vec<(usize, String)>, LandError> {
        let flushed = self.stdin.flush();
        drop(self.stdin);
        let out = self
            .child
            .wait_with_output()
            .map_err(|source| LandError::Spawn {
                command: "git fast-import".into(),
                source,
            })?;
        if let Err(source) = flushed {
            return Err(LandError::Git {
                command: "git fast-import".into(),
                repo: self.repo,
                stderr: format!("{source}; {}", String::from_utf8_lossy(&out.stderr).trim()),
            });
        }
        if !out.status.success() {
            return Err(LandError::Git {
                command: "git fast-import".into(),
                repo: self.repo,
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            });
        }
        let text = std::fs::read_to_string(&self.marks).map_err(|source| LandError::Io {
            path: self.marks.clone(),
            source,
        })?;
        let mut marks = Vec::new();
        for line in text.lines() {
            if let Some((mark, id)) = line.strip_prefix(':').and_then(|l| l.split_once(' '))
                && let Ok(mark) = mark.parse()
            {
                marks.push((mark, id.to_owned()));
            }
        }
        marks.sort();
        Ok(marks)
    }

    /// The error for a stream that failed: git's own complaint when it has one.
    fn broken(&mut self, source: std::io::Error) -> LandError {
        let _ = self.child.kill();
        let mut stderr = String::new();
        if let Some(mut err) = self.child.stderr.take() {
            use std::io::Read;
            let _ = err.read_to_string(&mut stderr);
        }
        let _ = self.child.wait();
        LandError::Git {
            command: "git fast-import".into(),
            repo: self.repo.clone(),
            stderr: format!("{source}; {}", stderr.trim()),
        }
    }
}

/// A path as fast-import reads it: C-style quoted when it holds a quote, a backslash, a
/// control character or starts with a quote; as is otherwise.
fn quote(path: &str) -> String {
    let needs = path.starts_with('"') || path.bytes().any(|b| b == b'\\' || b < 0x20 || b == 0x7f);
    if !needs {
        return path.to_owned();
    }
    let mut out = String::with_capacity(path.len() + 2);
    out.push('"');
    for c in path.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\{:03o}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::quote;

    #[test]
    fn paths_are_quoted_only_when_needed() {
        assert_eq!(quote("src/a b.rs"), "src/a b.rs");
        assert_eq!(quote("\"x"), "\"\\\"x\"");
        assert_eq!(quote("a\nb"), "\"a\\nb\"");
        assert_eq!(quote("a\\b"), "\"a\\\\b\"");
        assert_eq!(quote("a\u{1}"), "\"a\\001\"");
    }
}
