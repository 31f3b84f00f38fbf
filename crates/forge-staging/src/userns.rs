//! Overlay views without root: a user and mount namespace that owns the views' mounts,
//! and the fork hooks that run a mount, an unmount or an agent process inside it.
//!
//! Since Linux 5.11 an unprivileged user may mount overlayfs inside a user namespace it
//! created (with `userxattr`, so overlayfs keeps its bookkeeping in `user.overlay.*`). The
//! mounts exist only in that namespace's mount table, so:
//! - a *holder* process (`/bin/sh` blocked reading a pipe) keeps the namespaces alive and
//!   gives this process a way in: `/proc/<holder>/root/<path>` resolves `<path>` in the
//!   holder's mount namespace, which is how [`View::path`](crate::View::path) reaches a
//!   view from outside;
//! - mounts and unmounts run in a short-lived child that joins the namespaces (`setns`
//!   needs a single-threaded caller, which this process is not); it shares this process's
//!   memory (`CLONE_VM | CLONE_VFORK`), so its cost does not grow with the caller's size;
//! - an agent process joins the namespaces the same way just before `exec`
//!   ([`ViewNamespace::configure`]), so it sees the view at its real path.
//!
//! When the holder dies (and every file descriptor of the namespaces is closed) the
//! kernel removes the namespace with all its mounts: a crashed run leaves directories,
//! never mounts.
//!
//! This is the only module of the crate with `unsafe` code: `pre_exec` hooks and the
//! `clone` child. Both run where only async-signal-safe work is allowed (after `fork`, or
//! on memory shared with a suspended thread), so they make raw system calls on data built
//! beforehand and never allocate.

use std::ffi::{CStr, CString};
use std::fmt;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use parking_lot::Mutex;
use rustix::fs::{Mode, OFlags};
use rustix::mount::{MountFlags, MountPropagationFlags, UnmountFlags};
use rustix::thread::{LinkNameSpaceType, UnshareFlags};

/// The holder's program. POSIX puts a shell there; git needs one too.
const HOLDER: &str = "/bin/sh";

/// A user and mount namespace owned by this process, kept alive by a holder process.
pub(crate) struct Namespace {
    holder: Mutex<Child>,
    pid: u32,
    user: OwnedFd,
    mnt: OwnedFd,
}

impl fmt::Debug for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Namespace")
            .field("holder_pid", &self.pid)
            .finish_non_exhaustive()
    }
}

impl Namespace {
    /// Creates a user namespace mapping this process's uid and gid to themselves, with a
    /// mount namespace of its own, and a holder process inside.
    pub(crate) fn create() -> io::Result<Namespace> {
        let uid = rustix::process::geteuid().as_raw();
        let gid = rustix::process::getegid().as_raw();
        let uid_map = format!("{uid} {uid} 1\n").into_bytes();
        let gid_map = format!("{gid} {gid} 1\n").into_bytes();
        let mut cmd = Command::new(HOLDER);
        cmd.args(["-c", "read _"])
            // Nothing from the caller's environment (ENV, BASH_ENV...) reaches the holder.
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .current_dir("/")
            .process_group(0);
        // SAFETY: the hook only makes system calls on buffers allocated before the fork
        // (`uid_map`, `gid_map` and static C strings); it allocates nothing and takes no
        // lock, so it is safe in the child of a multi-threaded process.
        unsafe {
            cmd.pre_exec(move || enter_new_namespaces(&uid_map, &gid_map));
        }
        let mut holder = cmd.spawn().map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot create a user and mount namespace (holder {HOLDER}): {e}"),
            )
        })?;
        let pid = holder.id();
        let open = |kind: &str| -> io::Result<OwnedFd> {
            let path = format!("/proc/{pid}/ns/{kind}");
            rustix::fs::open(&path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
                .map_err(|e| io::Error::new(io::Error::from(e).kind(), format!("open {path}: {e}")))
        };
        let fds = open("user").and_then(|user| Ok((user, open("mnt")?)));
        let (user, mnt) = match fds {
            Ok(fds) => fds,
            Err(e) => {
                let _ = holder.kill();
                let _ = holder.wait();
                return Err(e);
            }
        };
        Ok(Namespace {
            holder: Mutex::new(holder),
            pid,
            user,
            mnt,
        })
    }

    /// The holder's process id.
    pub(crate) fn holder_pid(&self) -> u32 {
        self.pid
    }

    /// Whether the holder still runs (views are unreachable from outside once it exits).
    pub(crate) fn is_alive(&self) -> bool {
        matches!(self.holder.lock().try_wait(), Ok(None))
    }

    /// Where this process reaches the absolute `path` of the namespace: below
    /// `/proc/<holder>/root`, which resolves paths in the holder's mount namespace.
    pub(crate) fn outside_path(&self, path: &Path) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root", self.pid))
            .join(path.strip_prefix("/").unwrap_or(path))
    }

    /// Mounts an overlay at `target` with the option string `data`, inside the namespace.
    pub(crate) fn mount_overlay(&self, target: &Path, data: &str) -> io::Result<()> {
        let target = c_path(target)?;
        let data = CString::new(data)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "mount options hold NUL"))?;
        self.run_inside(&Action::Mount {
            target: &target,
            data: &data,
        })
    }

    /// Unmounts `target` inside the namespace, detaching it lazily if a process is still
    /// inside.
    pub(crate) fn unmount(&self, target: &Path) -> io::Result<()> {
        let target = c_path(target)?;
        self.run_inside(&Action::Unmount { target: &target })
    }

    /// Runs `action` in a child that joined the namespaces, and waits for it.
    ///
    /// The child is made with `clone(CLONE_VM | CLONE_VFORK)`, as `posix_spawn` does: it
    /// shares this process's memory (no page tables copied, so the cost does not grow with
    /// the caller's size) and this thread sleeps until it exits. It has its own file
    /// descriptor table and file system context, which `setns` requires, runs with every
    /// signal blocked (no handler may run on the shared memory), and reports the errno of a
    /// failed step as its exit status.
    fn run_inside(&self, action: &Action<'_>) -> io::Result<()> {
        let job = InsideJob {
            user: self.user.as_fd(),
            mnt: self.mnt.as_fd(),
            action,
        };
        let mut stack = vec![0u8; CHILD_STACK];
        // The stack grows down from the end, 16-byte aligned.
        let top = (stack.as_mut_ptr() as usize + stack.len()) & !15;
        // SAFETY: `sigfillset` initializes the set; `pthread_sigmask` only changes this
        // thread's mask, restored below, so that the child starts with every signal blocked.
        let old_mask = unsafe {
            let mut all: libc::sigset_t = std::mem::zeroed();
            let mut old: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut all);
            libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
            old
        };
        // SAFETY: `inside` runs on `stack`, which outlives the child: with CLONE_VFORK this
        // thread is suspended until the child exits, so `stack` and `job` stay borrowed and
        // unchanged meanwhile. The child touches nothing but `job` (read only) and its own
        // stack, makes only system calls, and never returns into this thread's frames.
        let pid = unsafe {
            libc::clone(
                inside,
                top as *mut libc::c_void,
                libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
                (&raw const job).cast_mut().cast(),
            )
        };
        let spawn_error = (pid == -1).then(io::Error::last_os_error);
        // SAFETY: restores the mask saved above.
        unsafe {
            libc::pthread_sigmask(libc::SIG_SETMASK, &old_mask, std::ptr::null_mut());
        }
        drop(stack);
        if let Some(e) = spawn_error {
            return Err(e);
        }
        let pid = rustix::process::Pid::from_raw(pid).expect("clone returned a positive pid");
        let status = loop {
            match rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty()) {
                Ok(Some((_, status))) => break status,
                Ok(None) => continue,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        };
        match status.exit_status() {
            Some(0) => Ok(()),
            Some(errno) => Err(io::Error::from_raw_os_error(errno)),
            None => Err(io::Error::other(format!(
                "namespace helper process ended abnormally ({status:?})"
            ))),
        }
    }
}

/// Stack of the child of [`Namespace::run_inside`]: a few system call wrappers deep.
const CHILD_STACK: usize = 64 * 1024;

/// What a child of [`Namespace::run_inside`] does once inside.
enum Action<'a> {
    Mount { target: &'a CStr, data: &'a CStr },
    Unmount { target: &'a CStr },
}

/// The child's whole input, read through the shared memory.
struct InsideJob<'a> {
    user: BorrowedFd<'a>,
    mnt: BorrowedFd<'a>,
    action: &'a Action<'a>,
}

/// The child of [`Namespace::run_inside`]: joins, acts, and returns its exit status (0, or
/// the errno of the step that failed).
extern "C" fn inside(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the `InsideJob` that `run_inside` keeps alive and unchanged until
    // this child exits (its borrowed fds with it).
    let job = unsafe { &*(arg.cast::<InsideJob<'_>>()) };
    let result = join(job.user, job.mnt).and_then(|()| match job.action {
        Action::Mount { target, data } => rustix::mount::mount(
            c"forge-staging",
            *target,
            c"overlay",
            MountFlags::empty(),
            *data,
        ),
        Action::Unmount { target } => {
            match rustix::mount::unmount(*target, UnmountFlags::empty()) {
                Err(rustix::io::Errno::BUSY) => {
                    rustix::mount::unmount(*target, UnmountFlags::DETACH)
                }
                other => other,
            }
        }
    });
    match result {
        Ok(()) => 0,
        Err(errno) => errno.raw_os_error(),
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let holder = self.holder.get_mut();
        let _ = holder.kill();
        let _ = holder.wait();
    }
}

/// The first steps of the holder, in the child: new user and mount namespaces, the
/// one-line id maps, and mount events from the outside propagated in but never out.
fn enter_new_namespaces(uid_map: &[u8], gid_map: &[u8]) -> io::Result<()> {
    // SAFETY: the forked child runs a single thread, so no other thread can observe the
    // unshared state.
    unsafe { rustix::thread::unshare_unsafe(UnshareFlags::NEWUSER | UnshareFlags::NEWNS) }?;
    // Unprivileged gid maps need setgroups denied first; kernels before 3.19 lack the file.
    match write_proc(c"/proc/self/setgroups", b"deny") {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        other => other?,
    }
    write_proc(c"/proc/self/uid_map", uid_map)?;
    write_proc(c"/proc/self/gid_map", gid_map)?;
    rustix::mount::mount_change(
        c"/",
        MountPropagationFlags::DOWNSTREAM | MountPropagationFlags::REC,
    )?;
    Ok(())
}

/// Writes `data` to a /proc file in one `write`, without allocating.
fn write_proc(path: &std::ffi::CStr, data: &[u8]) -> io::Result<()> {
    let fd = rustix::fs::open(path, OFlags::WRONLY | OFlags::CLOEXEC, Mode::empty())?;
    let n = rustix::io::write(&fd, data)?;
    whole_write(n, data.len())
}

/// `Ok` when `written` is all of `len`; else an error of kind `WriteZero` that holds no
/// message, so building it does not allocate (this runs in a forked child).
fn whole_write(written: usize, len: usize) -> io::Result<()> {
    if written == len {
        Ok(())
    } else {
        Err(io::Error::from(io::ErrorKind::WriteZero))
    }
}

/// Joins the user namespace, then the mount namespace (whose owner it is).
fn join(user: BorrowedFd<'_>, mnt: BorrowedFd<'_>) -> Result<(), rustix::io::Errno> {
    rustix::thread::move_into_link_name_space(user, Some(LinkNameSpaceType::User))?;
    rustix::thread::move_into_link_name_space(mnt, Some(LinkNameSpaceType::Mount))
}

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path holds NUL"))
}

/// What a child process needs to work in an overlay view that lives in a private user and
/// mount namespace (unprivileged overlay, [`OverlayMode::UserNamespace`]).
///
/// Such a view exists only inside that namespace. This process reaches it through
/// [`View::path`](crate::View::path) (a `/proc/<pid>/root/...` path), which is fine for
/// reading and writing files, but a program started there would see a confusing working
/// directory. [`ViewNamespace::configure`] makes a [`Command`] join the namespace and
/// start in [`ViewNamespace::path`], the view's real path, just before `exec`.
///
/// Inside, the process keeps its user and group ids (they map to themselves) but has no
/// extra privileges: set-user-id programs do not gain other users' ids there.
///
/// [`OverlayMode::UserNamespace`]: crate::OverlayMode::UserNamespace
///
/// # Example
///
/// ```no_run
/// # fn run(view: &forge_staging::View) -> std::io::Result<()> {
/// let mut cmd = std::process::Command::new("make");
/// match view.namespace() {
///     Some(ns) => ns.configure(&mut cmd),
///     None => {
///         cmd.current_dir(view.path());
///     }
/// }
/// let status = cmd.status()?;
/// # let _ = status; Ok(()) }
/// ```
#[derive(Clone)]
pub struct ViewNamespace {
    ns: Arc<Namespace>,
    path: PathBuf,
    c_path: Arc<CString>,
}

impl fmt::Debug for ViewNamespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ViewNamespace")
            .field("holder_pid", &self.ns.pid)
            .field("path", &self.path)
            .finish()
    }
}

impl ViewNamespace {
    pub(crate) fn new(ns: Arc<Namespace>, path: &Path) -> io::Result<ViewNamespace> {
        Ok(ViewNamespace {
            ns,
            c_path: Arc::new(c_path(path)?),
            path: path.to_owned(),
        })
    }

    /// The view's directory as processes inside the namespace see it.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The process id of the process that keeps the namespace alive.
    #[must_use]
    pub fn holder_pid(&self) -> u32 {
        self.ns.holder_pid()
    }

    /// Makes `cmd`, when spawned, join the namespace and change to [`ViewNamespace::path`]
    /// right before `exec` (after any `current_dir` it was given). A failure to join is
    /// reported by `spawn`.
    pub fn configure(&self, cmd: &mut Command) {
        let ns = Arc::clone(&self.ns);
        let dir = Arc::clone(&self.c_path);
        // SAFETY: `setns` and `chdir` are system calls on file descriptors and a C string
        // that exist before the fork; nothing allocates or locks in the child.
        unsafe {
            cmd.pre_exec(move || {
                join(ns.user.as_fd(), ns.mnt.as_fd())?;
                rustix::process::chdir(dir.as_c_str())?;
                Ok(())
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::whole_write;

    /// The short-write error of `write_proc` runs after `fork`: it must be a bare kind
    /// (`io::Error::new` with a message boxes it, which allocates).
    #[test]
    fn api_07_a_short_proc_write_error_does_not_allocate() {
        assert!(whole_write(4, 4).is_ok());
        let e = whole_write(3, 4).expect_err("short");
        assert_eq!(e.kind(), std::io::ErrorKind::WriteZero);
        assert!(
            e.get_ref().is_none(),
            "a boxed payload was allocated: {e:?}"
        );
    }
}
