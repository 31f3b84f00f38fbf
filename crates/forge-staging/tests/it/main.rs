//! Integration tests of forge-staging: every backend against a model file system, against
//! `git status`, generations, rejection of unsafe entries, compaction and cleanup.

#![forbid(unsafe_code)]

mod support;

mod cleanup;
mod git_status;
mod ignores;
mod model;
mod trust;
mod userns;
mod views;
mod worktree;
