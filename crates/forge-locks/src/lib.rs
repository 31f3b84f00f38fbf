//! Read/write locks on repository paths and glob patterns, with exact pattern overlap and
//! wait-for-graph deadlock detection.
//!
//! forge runs many agents on one repository; each task declares the paths it reads and
//! writes as patterns (`src/api/**`, `*.toml`, `docs/{a,b}.md`). This crate decides when two
//! declarations can touch the same file ([`overlap`], exact, with a witness path) and keeps
//! tasks that would apart ([`LockTable`]).
//!
//! - [`Pattern`]: a normalized literal path or glob. A literal covers itself and everything
//!   below it; a glob covers exactly what it matches under `globset`'s rules with literal
//!   separators.
//! - [`overlap`]: `Some(witness)` when some path is covered by both patterns, else `None`.
//! - [`LockTable`] / [`Owner`] / [`Guard`]: read and write locks, a whole set acquired all or
//!   nothing, re-entrant per owner, FIFO-fair, async (any runtime) and blocking; waits that
//!   close a cycle fail one victim with a [`Deadlock`] naming the cycle.
//!
//! # Example
//!
//! ```
//! use forge_locks::{LockTable, LockError, Mode, Pattern};
//!
//! let p = |s: &str| Pattern::parse(s).expect("valid pattern");
//! assert_eq!(forge_locks::overlap(&p("src/**"), &p("src/api")).as_deref(), Some("src/api"));
//!
//! let table = LockTable::default();
//! let api = table.owner("api", 0);
//! let docs = table.owner("docs", 0);
//! let held = api.acquire_blocking(&[(p("src/api/**"), Mode::Write), (p("Cargo.toml"), Mode::Read)])?;
//! // Disjoint: granted at once.
//! let _docs = docs.try_acquire(&[(p("docs/*.md"), Mode::Write)])?;
//! // Overlapping write: would block until `held` is dropped.
//! assert!(matches!(
//!     docs.try_acquire(&[(p("src/api/login.rs"), Mode::Write)]),
//!     Err(LockError::WouldBlock { .. })
//! ));
//! drop(held);
//! let _now = docs.try_acquire(&[(p("src/api/login.rs"), Mode::Write)])?;
//! # Ok::<(), LockError>(())
//! ```
//!
//! # Crate features
//!
//! None. The async API needs no particular runtime; [`Owner::acquire_timeout`] uses one
//! small timer thread, started on first use.

#![forbid(unsafe_code)]

mod error;
mod overlap;
mod pattern;
mod snapshot;
mod table;
mod timer;

pub use error::{Deadlock, LockError, WaitStep};
pub use overlap::overlap;
pub use pattern::{Pattern, PatternError};
pub use snapshot::{Held, OwnerInfo, Snapshot, WaitFor, Waiting};
pub use table::{Acquire, AcquireTimeout, Guard, LockTable, Owner};

/// Lock mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Mode {
    /// Shared: many readers may hold overlapping reads.
    Read,
    /// Exclusive: conflicts with any overlapping read or write of another owner.
    Write,
}

impl Mode {
    /// `reads` or `writes`, as used in messages.
    pub fn verb(self) -> &'static str {
        match self {
            Mode::Read => "reads",
            Mode::Write => "writes",
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Read => "read",
            Mode::Write => "write",
        })
    }
}
