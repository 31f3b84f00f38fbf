//! Run many coding agents (or any jobs) in parallel on one repository without them wrecking
//! each other's work.
//!
//! forge-core is the only forge crate that knows what a task is. It re-exports the leaf
//! crates, so `cargo add forge-core` gives a user everything.

pub use forge_events as events;
pub use forge_locks as locks;
pub use forge_merge as merge;
pub use forge_staging as staging;
