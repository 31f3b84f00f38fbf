//! The workspace's conventions, checked by a test instead of by prose (rust-analyzer's
//! `xtask/src/tidy.rs` is the model): `cargo test --workspace` runs them.
//!
//! - every `.rs` file opens with a `//!` line saying what it holds;
//! - no `.rs` file is over 600 lines, but for a named list of files waiting to be split,
//!   which fails once one of them is under the limit, so it cannot go stale;
//! - every ignored test says why (`#[ignore = "reason"]`);
//! - every declared dependency of every member is used: a normal one outside `tests/`, a
//!   dev-dependency anywhere in the member (found as `name::`, `use name` or
//!   `extern crate name`);
//! - every crate root (library, binary, test, bench, example) forbids `unsafe` or, where a
//!   module needs it, denies it so that module must allow it by name;
//! - one integration test binary per member (`tests/it/main.rs`, no other `tests/*.rs`);
//! - every member inherits the workspace's lints.
//!
//! This crate has no code of its own: it is a member only so that these tests run with the
//! others, on every machine, without a tool to install. It is not published.

#![forbid(unsafe_code)]

#[cfg(test)]
mod tidy;
