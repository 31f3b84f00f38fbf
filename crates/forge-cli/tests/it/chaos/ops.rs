//! What each agent [`Op`] does: the shell lines that perform it in the agent's view, the
//! paths it changes (its task's exact `writes`) and what it changes in the working tree once
//! its task is merged (the model the invariants compare with).

use std::path::Path;

use super::Op;
use super::check::{self, Model, Want};
use super::scenario::Dirs;

/// The size of [`Op::Large`]'s file.
const LARGE: usize = 5_000_000;
/// The length of [`Op::Sparse`]'s file.
const SPARSE: u64 = 1 << 30;

/// Where a task's script runs and what it may name.
pub(crate) struct Ctx<'a> {
    /// The task id.
    pub(crate) id: String,
    /// The task's own line in `a.txt`, `b.txt` and `src/target/m.rs`.
    pub(crate) line: usize,
    repo: &'a Path,
    state: &'a Path,
    outside: &'a Path,
}

impl<'a> Ctx<'a> {
    /// The context of task `i` (id `t{i}`, line `3i + 2`) in the case's directories.
    pub(crate) fn new(i: usize, dirs: &'a Dirs) -> Self {
        Self {
            id: format!("t{i}"),
            line: 3 * i + 2,
            repo: &dirs.repo,
            state: &dirs.state,
            outside: &dirs.outside,
        }
    }
}

impl Op {
    /// The shell lines that perform the operation in the agent's view.
    pub(crate) fn script(self, c: &Ctx<'_>) -> String {
        let (id, k) = (&c.id, c.line);
        let (repo, state, outside) = (c.repo.display(), c.state.display(), c.outside.display());
        let once = |header: &str| {
            let marker = format!("{state}/{id}.{}", self.name());
            format!(
                "if [ ! -e '{marker}' ]; then : > '{marker}'; {header}exit 7{}; fi",
                if self == Op::Exit75Once { 5 } else { 6 }
            )
        };
        match self {
            Op::Edit => format!("sed -i '{k}s/.*/{id} edit/' a.txt b.txt"),
            Op::Create => format!(
                "mkdir -p src/gen/{id} && printf '{id} new\\n' > src/gen/{id}/new.txt && ln -s new.txt src/gen/{id}/alias"
            ),
            Op::EditUnderTarget => format!("sed -i '{k}s/.*/{id} edit/' src/target/m.rs"),
            Op::AbsoluteWrite => format!("printf '{id} escaped\\n' > '{repo}/escape-{id}.txt'"),
            Op::PublishTempName => format!(
                "printf '{id} evil\\n' > .a.txt.forge-publish && printf '{id} evil\\n' > .b.txt.forge-publish"
            ),
            Op::InheritedCwd => format!(
                "if [ -n \"${{INIT_CWD:-}}\" ] && [ \"$INIT_CWD\" != \"$PWD\" ]; then printf '{id} leaked\\n' > \"$INIT_CWD/leak-{id}.txt\" || true; fi"
            ),
            Op::GitDirWrite => format!(
                "mkdir -p .git sub/.git && printf x > .git/forge-chaos-{id} && printf '[core]\\n\\thooksPath = /nonexistent\\n' >> .git/config && printf 'ref: refs/heads/main\\n' > sub/.git/HEAD"
            ),
            // Whatever git the view has (none, the overlay's copy, a worktree's) may change;
            // the user's `.git` must not. (No stash: it would undo the task's own edits.)
            Op::GitCommands => format!(
                "{{ git branch chaos-{id} && git tag chaos-{id} && git config chaos.{id} 1; }} >/dev/null 2>&1 || true"
            ),
            Op::RmVendor => "rm -rf vendor".into(),
            Op::SymlinkOut => {
                format!("ln -s /etc/passwd link-{id} && ln -s ../outside/secret.txt rel-{id}")
            }
            Op::HardlinkOut => format!(
                "{{ ln '{outside}/secret.txt' hard-{id} 2>/dev/null || cp '{outside}/secret.txt' hard-{id}; }} && echo {id} >> hard-{id}"
            ),
            Op::Fifo => format!("mkfifo fifo-{id}"),
            Op::Large => format!("yes '{id} large' | head -c {LARGE} > large-{id}.bin"),
            Op::Sparse => format!("truncate -s {SPARSE} sparse-{id}.bin"),
            Op::Chmod => "chmod 755 tool.sh".into(),
            Op::EnvAppend => format!("echo 'AGENT={id}' >> .env"),
            Op::ForkDetach => format!(
                "setsid sleep 60 </dev/null >/dev/null 2>&1 & echo $! >> '{state}/detached.pids'"
            ),
            Op::ForkDetachHoldingOutput => {
                format!("setsid sleep 60 & echo $! >> '{state}/detached.pids'")
            }
            Op::Exit75Once => once(""),
            Op::Exit76Zero => once("echo 'forge:retry-after 0'; "),
            Op::Exit76One => once("echo 'forge:retry-after 1'; "),
            Op::Exit76Garbage => once("echo 'forge:retry-after soon'; "),
            Op::Exit76Huge => once("echo 'forge:retry-after 100000000000000000'; "),
            Op::Exit76Float => once("echo 'forge:retry-after 1e300'; "),
            Op::Exit76NoHeader => once(""),
            Op::Flood => "yes | head -c 500000".into(),
            Op::FloodHuge => "yes | head -c 20000000".into(),
            Op::UserEdits
            | Op::SecondRun
            | Op::Sigint
            | Op::Sigterm
            | Op::StagingCopy
            | Op::StagingWorktree => String::new(),
        }
    }

    /// Whether the operation ends the attempt (it goes after every other one).
    pub(crate) fn exits(self) -> bool {
        self.name().starts_with("exit")
    }

    /// What the operation changes in the working tree once its task is merged.
    pub(crate) fn effect(self, c: &Ctx<'_>, model: &mut Model) {
        let id = &c.id;
        let file = |bytes: Vec<u8>| Want::File { bytes, mode: None };
        match self {
            Op::Edit => {
                check::replace_line(model, "a.txt", c.line, &format!("{id} edit"));
                check::replace_line(model, "b.txt", c.line, &format!("{id} edit"));
            }
            Op::Create => {
                model.insert(
                    format!("src/gen/{id}/new.txt"),
                    file(format!("{id} new\n").into()),
                );
                model.insert(format!("src/gen/{id}/alias"), Want::Link("new.txt".into()));
            }
            Op::EditUnderTarget => {
                check::replace_line(model, "src/target/m.rs", c.line, &format!("{id} edit"));
            }
            Op::PublishTempName => {
                for name in [".a.txt.forge-publish", ".b.txt.forge-publish"] {
                    model.insert(name.into(), file(format!("{id} evil\n").into()));
                }
            }
            // `vendor/lib` is a nested repository: its files are its own, not the outer
            // repository's, so collection skips them and deleting them in a view changes
            // nothing (item 6: a deletion removes exactly the collected entries).
            Op::RmVendor => {}
            Op::SymlinkOut => {
                model.insert(format!("link-{id}"), Want::Link("/etc/passwd".into()));
                model.insert(
                    format!("rel-{id}"),
                    Want::Link("../outside/secret.txt".into()),
                );
            }
            Op::HardlinkOut => {
                model.insert(format!("hard-{id}"), file(format!("secret\n{id}\n").into()));
            }
            Op::Large => {
                model.insert(format!("large-{id}.bin"), file(large_bytes(id)));
            }
            Op::Sparse => {
                model.insert(format!("sparse-{id}.bin"), Want::Sparse(SPARSE));
            }
            Op::Chmod => {
                if let Some(Want::File { mode, .. }) = model.get_mut("tool.sh") {
                    *mode = Some(0o755);
                }
            }
            Op::EnvAppend => {
                if let Some(Want::Prefix { lines, .. }) = model.get_mut(".env") {
                    lines.push(format!("AGENT={id}"));
                }
            }
            _ => {}
        }
    }

    /// The paths the operation changes (its task's exact `writes`).
    pub(crate) fn writes(self, id: &str) -> Vec<String> {
        let list: &[&str] = match self {
            Op::Edit => &["a.txt", "b.txt"],
            Op::EditUnderTarget => &["src/target/m.rs"],
            Op::PublishTempName => &[".a.txt.forge-publish", ".b.txt.forge-publish"],
            Op::GitDirWrite => &["sub"],
            Op::RmVendor => &["vendor"],
            Op::Chmod => &["tool.sh"],
            Op::EnvAppend => &[".env"],
            _ => &[],
        };
        let own = match self {
            Op::Create => vec![format!("src/gen/{id}")],
            Op::SymlinkOut => vec![format!("link-{id}"), format!("rel-{id}")],
            Op::HardlinkOut => vec![format!("hard-{id}")],
            Op::Fifo => vec![format!("fifo-{id}")],
            Op::Large => vec![format!("large-{id}.bin")],
            Op::Sparse => vec![format!("sparse-{id}.bin")],
            _ => Vec::new(),
        };
        list.iter().map(|s| (*s).to_owned()).chain(own).collect()
    }
}

fn large_bytes(id: &str) -> Vec<u8> {
    let line = format!("{id} large\n");
    let mut bytes = line.repeat(LARGE / line.len() + 1).into_bytes();
    bytes.truncate(LARGE);
    bytes
}
