//! Three-way text and tree merge that agrees with `git merge-file`.
//!
//! forge folds every agent's changes back into the repository with a three-way merge: the
//! generation the agent started from is the base, the current head is "ours", the agent's view
//! is "theirs". This crate is that merge, as pure computation (no file system access):
//!
//! - [`merge`] merges texts line by line and gives the same answer as `git merge-file` (git
//!   2.47): the same diff (xdiff's Myers variant with its heuristics, reimplemented), the same
//!   clean results byte for byte, the same conflict regions and markers in the `merge`, `diff3`
//!   and `zdiff3` styles, favors, labels, marker size, CRLF markers and missing final newlines.
//!   Conflicts are data ([`Conflict`] line ranges); [`TextMerge::render`] writes markers.
//! - [`merge_entry`] and [`merge_trees`] merge per path: trivial when two versions agree,
//!   add/add as a text merge against an empty base, and typed conflicts ([`TreeConflict`]) for
//!   modify/delete, type changes, executable bits, symlink targets and binary files.
//!
//! # Example
//!
//! ```
//! use forge_merge::{ConflictStyle, Labels, MergeOptions, merge};
//!
//! let base = b"one\ntwo\nthree\n";
//! let ours = b"one\n2\nthree\n";
//! let theirs = b"one\nTWO\nthree\n";
//! let opts = MergeOptions {
//!     style: ConflictStyle::Diff3,
//!     labels: Labels {
//!         ours: Some("ours".into()),
//!         base: Some("base".into()),
//!         theirs: Some("theirs".into()),
//!     },
//!     ..MergeOptions::default()
//! };
//! let m = merge(base, ours, theirs, &opts);
//! assert_eq!(m.conflict_count(), 1);
//! assert_eq!(m.conflicts()[0].base, 1..2);
//! assert_eq!(
//!     String::from_utf8(m.render()).unwrap(),
//!     "one\n<<<<<<< ours\n2\n||||||| base\ntwo\n=======\nTWO\n>>>>>>> theirs\nthree\n"
//! );
//! ```
//!
//! # Crate features
//!
//! None: the crate has no optional parts; its dependencies are `memchr` (to split lines)
//! and `rustc-hash` (to hash them).

#![forbid(unsafe_code)]

mod intern;
mod lines;
mod options;
mod text;
mod tree;
mod xdiff;

pub use options::{ConflictStyle, DEFAULT_MARKER_SIZE, Favor, Labels, MergeOptions};
pub use text::{BINARY_SNIFF_LEN, Conflict, TextMerge, is_binary, merge};
pub use tree::{
    Entry, EntryKind, PathMerge, Side, TreeConflict, TreeMerge, merge_entry, merge_trees,
};
