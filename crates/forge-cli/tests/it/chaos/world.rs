//! The chaos test's world: the random repository on disk, `forge` processes supervised with a
//! deadline, a peak-memory probe and scheduled signals, and what is left behind afterwards
//! (mounts, view directories, processes), with a guard that cleans all of it up.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// One entry of a working tree, as the invariants compare it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Found {
    /// A regular file: its bytes (`None` beyond [`BIG`]), length, permission bits, links and
    /// 512-byte blocks.
    File {
        bytes: Option<Vec<u8>>,
        len: u64,
        mode: u32,
        nlink: u64,
        blocks: u64,
    },
    /// A symbolic link and its target.
    Link(String),
    /// A FIFO, socket or device.
    Special,
}

/// Files longer than this are compared by length, blocks and a few sampled bytes.
pub(crate) const BIG: u64 = 64 << 20;

/// Every non-directory entry below `root` by relative path, leaving out the repository's own
/// `.git` and the nested repository's `vendor/lib/.git` (checked on their own).
pub(crate) fn snapshot(root: &Path) -> BTreeMap<String, Found> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let rel = path
                .strip_prefix(root)
                .expect("under root")
                .to_string_lossy()
                .into_owned();
            if rel == ".git" || rel == "vendor/lib/.git" {
                continue;
            }
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            let kind = meta.file_type();
            let found = if kind.is_dir() {
                stack.push(path);
                continue;
            } else if kind.is_symlink() {
                let target = std::fs::read_link(&path).unwrap_or_default();
                Found::Link(target.to_string_lossy().into_owned())
            } else if kind.is_file() {
                let bytes = (meta.len() <= BIG).then(|| std::fs::read(&path).unwrap_or_default());
                Found::File {
                    bytes,
                    len: meta.len(),
                    mode: meta.permissions().mode() & 0o7777,
                    nlink: meta.nlink(),
                    blocks: meta.blocks(),
                }
            } else {
                Found::Special
            };
            out.insert(rel, found);
        }
    }
    out
}

/// Whether the first and last 4 KiB of a big file are zeros (a sparse file's sample).
pub(crate) fn ends_are_zero(path: &Path) -> bool {
    use std::io::{Seek, SeekFrom};
    let Ok(mut file) = std::fs::File::open(path) else {
        return false;
    };
    let mut buf = vec![0u8; 4096];
    let head = file.read_exact(&mut buf).is_ok() && buf.iter().all(|b| *b == 0);
    let tail = file.seek(SeekFrom::End(-4096)).is_ok()
        && file.read_exact(&mut buf).is_ok()
        && buf.iter().all(|b| *b == 0);
    head && tail
}

/// Runs `git ARGS` in `dir` hermetically (no global or system configuration); its stdout.
pub(crate) fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=chaos",
            "-c",
            "user.email=chaos@example.com",
        ])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Writes `bytes` to `root/rel`, creating parent directories.
pub(crate) fn put(root: &Path, rel: &str, bytes: &[u8]) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(&path, bytes).expect("write");
}

/// Sets the permission bits of `root/rel`.
pub(crate) fn chmod(root: &Path, rel: &str, mode: u32) {
    std::fs::set_permissions(root.join(rel), std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// A signal the test sends to `forge run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sig {
    /// Ctrl-C.
    Int,
    /// What `timeout`, CI runners and systemd send.
    Term,
}

/// How a supervised `forge` process ended.
#[derive(Debug)]
pub(crate) struct Finished {
    /// Its exit status; `None` when it overran its deadline or the hard memory cap and was
    /// killed.
    pub(crate) status: Option<ExitStatus>,
    /// Whether it was killed for passing the hard memory cap.
    pub(crate) over_memory: bool,
    /// Peak resident memory (`VmHWM`) in KiB, polled while it ran.
    pub(crate) peak_kib: u64,
    /// Whether the scheduled signal was sent while it still ran.
    pub(crate) signalled: bool,
    /// The tail of its stdout and stderr.
    pub(crate) output: String,
    /// Wall time.
    pub(crate) elapsed: Duration,
}

/// Memory beyond which a process is killed at once to protect the machine (counted as a
/// memory violation).
const HARD_KIB: u64 = 3 << 20;

/// Starts `forge ARGS` in `dir` and supervises it to the end: it is killed after `deadline`,
/// or when its memory passes a hard cap, and gets `signal` after its delay.
pub(crate) fn supervise(
    dir: &Path,
    args: &[String],
    signal: Option<(Sig, Duration)>,
    deadline: Duration,
) -> Finished {
    let start = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_forge"))
        .args(args)
        .current_dir(dir)
        .env_remove("COLUMNS")
        // What a shell in `dir` passes on (and npm's INIT_CWD): item 4 audits them.
        .env("PWD", dir)
        .env("OLDPWD", dir.parent().unwrap_or(dir))
        .env("INIT_CWD", dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("forge starts");
    let stdout = drain(child.stdout.take().expect("stdout"));
    let stderr = drain(child.stderr.take().expect("stderr"));
    let pid = child.id();
    let mut peak_kib = 0;
    let mut signalled = false;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break Some(status);
        }
        peak_kib = peak_kib.max(vm_hwm_kib(pid));
        if let Some((sig, after)) = signal
            && !signalled
            && start.elapsed() >= after
        {
            send(pid, sig);
            signalled = true;
        }
        if start.elapsed() > deadline || peak_kib > HARD_KIB {
            kill_hard(&mut child);
            break None;
        }

        std::thread::sleep(Duration::from_millis(15));
    };
    let mut output = stdout.join().expect("stdout reader");
    output.push_str("\n--- stderr ---\n");
    output.push_str(&stderr.join().expect("stderr reader"));
    Finished {
        status,
        over_memory: peak_kib > HARD_KIB,
        peak_kib,
        signalled,
        output,
        elapsed: start.elapsed(),
    }
}

fn kill_hard(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Reads a pipe to its end on a thread, keeping the last 4 KiB as text.
fn drain(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        const KEEP: usize = 4 << 10;
        let mut tail = Vec::new();
        let mut buf = vec![0u8; 64 << 10];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            tail.extend_from_slice(&buf[..n]);
            if tail.len() > 4 * KEEP {
                tail.drain(..tail.len() - KEEP);
            }
        }
        if tail.len() > KEEP {
            tail.drain(..tail.len() - KEEP);
        }
        String::from_utf8_lossy(&tail).into_owned()
    })
}

/// `VmHWM` of `pid` in KiB (0 once it is gone).
fn vm_hwm_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Sends `sig` to `pid` with kill(1) (the test has no libc binding of its own).
pub(crate) fn send(pid: u32, sig: Sig) {
    let name = match sig {
        Sig::Int => "-INT",
        Sig::Term => "-TERM",
    };
    let _ = Command::new("kill")
        .args([name, &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

/// Mount points at or below `root` (from `/proc/self/mountinfo`).
pub(crate) fn mounts_under(root: &Path) -> Vec<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|point| PathBuf::from(point.replace("\\040", " ")))
        .filter(|point| point.starts_with(root))
        .collect()
}

/// Live (not zombie) processes whose working directory is at or below `root`.
pub(crate) fn processes_under(root: &Path) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd.starts_with(root))
                && alive(*pid)
        })
        .collect()
}

/// Whether `pid` exists and is not a zombie.
pub(crate) fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
    })
}

/// Pids recorded one per line in `file` (by agents that forked and detached).
pub(crate) fn recorded_pids(file: &Path) -> Vec<u32> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.trim().parse().ok())
        .collect()
}

/// Names in `dir` (none when it does not exist).
pub(crate) fn names_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// A case's temporary directory; on drop, every process working below it is killed and every
/// mount below it is detached before the directory is removed, so that a failing case never
/// leaves anything behind for the next one.
pub(crate) struct Guard {
    pub(crate) tmp: tempfile::TempDir,
}

impl Guard {
    pub(crate) fn new() -> Self {
        Self {
            tmp: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// The case's root directory.
    pub(crate) fn root(&self) -> &Path {
        self.tmp.path()
    }

    /// Kills the processes working below the root and detaches its mounts.
    pub(crate) fn clean(&self, extra_pids: &[u32]) {
        for pid in extra_pids
            .iter()
            .copied()
            .chain(processes_under(self.root()))
        {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
        let mut points = mounts_under(self.root());
        // Deepest first, so that nested mounts go before their parents.
        points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        for point in points {
            let _ = Command::new("umount")
                .arg("-l")
                .arg(&point)
                .stderr(Stdio::null())
                .status();
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.clean(&recorded_pids(&self.root().join("state/detached.pids")));
    }
}

/// Invariant (d): mounts below `root`, views left in the run directories, and processes
/// working below `root` other than the recorded fork-and-detach ones (tolerated: issue 16).
/// `root` is the case's directory, or one run directory while another run may still work.
pub(crate) fn leftovers(root: &Path, run_dirs: &[&Path], state: &Path) -> Vec<String> {
    let mut v = Vec::new();
    let mounts = mounts_under(root);
    if !mounts.is_empty() {
        v.push(format!("(d) mounts left: {mounts:?}"));
    }
    for dir in run_dirs {
        let views = names_in(&dir.join("views"));
        if !views.is_empty() {
            v.push(format!(
                "(d) views left in {}: {views:?}",
                dir.join("views").display()
            ));
        }
    }
    let detached = recorded_pids(&state.join("detached.pids"));
    let strays: Vec<u32> = processes_under(root)
        .into_iter()
        .filter(|p| !detached.contains(p))
        .collect();
    if !strays.is_empty() {
        v.push(format!(
            "(d) agent processes left: {}",
            describe_pids(&strays)
        ));
    }
    v
}

fn describe_pids(pids: &[u32]) -> String {
    pids.iter()
        .map(|pid| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            format!("{pid} ({})", cmd.trim())
        })
        .collect::<Vec<_>>()
        .join(", ")
}
