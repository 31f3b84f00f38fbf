//! Integration tests of forge-merge: differential tests against `git merge-file` and the public
//! API as a user sees it.

#![forbid(unsafe_code)]

mod differential;
mod git;
mod public_api;
