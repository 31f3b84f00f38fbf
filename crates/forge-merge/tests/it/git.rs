//! Running the real `git merge-file` on temporary files, hermetically (no user or system
//! configuration, so `merge.conflictStyle` cannot change its output).

use std::path::Path;
use std::process::Command;

/// What `git merge-file -p` printed and its exit status.
pub(crate) struct GitMerge {
    pub(crate) stdout: Vec<u8>,
    pub(crate) status: i32,
}

/// Runs `git merge-file -p ARGS ours base theirs` in `dir` on the given contents, with the
/// labels `ours`, `base`, `theirs` (the file names).
pub(crate) fn merge_file(
    dir: &Path,
    base: &[u8],
    ours: &[u8],
    theirs: &[u8],
    args: &[&str],
) -> GitMerge {
    std::fs::write(dir.join("base"), base).expect("write base");
    std::fs::write(dir.join("ours"), ours).expect("write ours");
    std::fs::write(dir.join("theirs"), theirs).expect("write theirs");
    let out = Command::new("git")
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("HOME", dir)
        .args(["merge-file", "-p"])
        .args(args)
        .args(["ours", "base", "theirs"])
        .output()
        .expect("git must be installed to run the differential tests");
    GitMerge {
        stdout: out.stdout,
        status: out.status.code().expect("git exited normally"),
    }
}
