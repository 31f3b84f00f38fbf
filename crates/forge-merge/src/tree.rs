//! The per-path tree merge: trivial resolutions, text merges of files, and typed conflicts.

use std::collections::{BTreeMap, BTreeSet};

use crate::options::{Labels, MergeOptions};
use crate::text::{Conflict, is_binary, merge};

/// What a path holds in one version of a tree.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Entry {
    /// A regular file.
    File {
        /// Its content.
        data: Vec<u8>,
        /// Whether its executable bit is set.
        executable: bool,
    },
    /// A symbolic link.
    Symlink {
        /// Where it points, as stored (not resolved).
        target: Vec<u8>,
    },
    /// A directory (its content is listed under other paths).
    Dir,
}

/// The kind of an [`Entry`], for reporting type changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A symbolic link.
    Symlink,
    /// A directory.
    Dir,
}

impl Entry {
    /// The kind of this entry.
    #[must_use]
    pub fn kind(&self) -> EntryKind {
        match self {
            Self::File { .. } => EntryKind::File,
            Self::Symlink { .. } => EntryKind::Symlink,
            Self::Dir => EntryKind::Dir,
        }
    }
}

/// One side of the merge.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    /// The version merged into (for forge, the current head).
    Ours,
    /// The version merged in (for forge, the agent's staged view).
    Theirs,
}

/// A conflict at one path, saying what each side did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TreeConflict {
    /// Both sides changed a file's text in overlapping places.
    Content {
        /// The merged text with conflict markers.
        merged_with_markers: Vec<u8>,
        /// The conflict regions, in line ranges.
        regions: Vec<Conflict>,
        /// The merged executable bit.
        executable: bool,
    },
    /// Both sides added a file at a path that the base lacks, with texts that conflict when
    /// merged against an empty base.
    AddAdd {
        /// The merged text with conflict markers.
        merged_with_markers: Vec<u8>,
        /// The conflict regions, in line ranges.
        regions: Vec<Conflict>,
        /// Our executable bit (kept when the sides disagree).
        executable: bool,
    },
    /// One side deleted the path, the other changed it.
    ModifyDelete {
        /// Who deleted it.
        deleted_by: Side,
        /// What the other side has there.
        modified: Entry,
    },
    /// The sides disagree on what kind of entry the path is (`None`: absent).
    TypeChange {
        /// The base's kind.
        base: Option<EntryKind>,
        /// Our entry.
        ours: Entry,
        /// Their entry.
        theirs: Entry,
    },
    /// Both sides added the file and the texts merge, but the executable bits differ.
    Mode {
        /// The merged text.
        data: Vec<u8>,
        /// Our executable bit.
        ours_exec: bool,
        /// Their executable bit.
        theirs_exec: bool,
    },
    /// Both sides point a symbolic link at different targets.
    SymlinkTarget {
        /// The base's target, if the base had a link there.
        base: Option<Vec<u8>>,
        /// Our target.
        ours: Vec<u8>,
        /// Their target.
        theirs: Vec<u8>,
    },
    /// Both sides changed a binary file (a NUL in its first 8000 bytes) differently.
    Binary {
        /// Our version.
        ours: Entry,
        /// Their version.
        theirs: Entry,
    },
}

impl TreeConflict {
    /// The best entry to write at the path while the conflict waits for a person: text with
    /// conflict markers, the modified side of a modify/delete, else ours.
    #[must_use]
    pub fn best_effort(&self) -> Entry {
        match self {
            Self::Content {
                merged_with_markers,
                executable,
                ..
            }
            | Self::AddAdd {
                merged_with_markers,
                executable,
                ..
            } => Entry::File {
                data: merged_with_markers.clone(),
                executable: *executable,
            },
            Self::ModifyDelete { modified, .. } => modified.clone(),
            Self::TypeChange { ours, .. } | Self::Binary { ours, .. } => ours.clone(),
            Self::Mode {
                data, ours_exec, ..
            } => Entry::File {
                data: data.clone(),
                executable: *ours_exec,
            },
            Self::SymlinkTarget { ours, .. } => Entry::Symlink {
                target: ours.clone(),
            },
        }
    }
}

/// How one path was resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathMerge {
    /// Nothing changed (all three agree, or the path is in none of them).
    Unchanged,
    /// The result is our entry (only ours changed, or both made the same change).
    TakeOurs,
    /// The result is their entry (only theirs changed).
    TakeTheirs,
    /// The path is absent from the result (deleted on one side and untouched on the other, or
    /// deleted on both).
    Deleted,
    /// Both sides changed the file and the changes merged cleanly into this entry.
    Merged(Entry),
    /// The sides conflict.
    Conflict(TreeConflict),
}

impl PathMerge {
    /// Whether this path is in conflict.
    #[must_use]
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::Conflict(_))
    }

    /// The entry to write at the path (`None`: the path is absent), given the two sides that
    /// were merged; for a conflict, [`TreeConflict::best_effort`].
    #[must_use]
    pub fn result(&self, ours: Option<&Entry>, theirs: Option<&Entry>) -> Option<Entry> {
        match self {
            Self::Unchanged | Self::TakeOurs => ours.cloned(),
            Self::TakeTheirs => theirs.cloned(),
            Self::Deleted => None,
            Self::Merged(entry) => Some(entry.clone()),
            Self::Conflict(c) => Some(c.best_effort()),
        }
    }
}

/// Merges one path's base, our and their entries (`None`: absent).
///
/// When a label in `opts` is unset, conflict markers in this path's text are labelled
/// `ours:PATH`, `base:PATH` and `theirs:PATH`.
///
/// # Example
///
/// ```
/// use forge_merge::{Entry, MergeOptions, PathMerge, merge_entry};
///
/// let file = |s: &str| Entry::File { data: s.into(), executable: false };
/// let base = file("a\nb\nc\n");
/// let (ours, theirs) = (file("A\nb\nc\n"), file("a\nb\nC\n"));
/// let merged = merge_entry("f.txt", Some(&base), Some(&ours), Some(&theirs), &MergeOptions::default());
/// assert_eq!(merged, PathMerge::Merged(file("A\nb\nC\n")));
/// ```
#[must_use]
pub fn merge_entry(
    path: &str,
    base: Option<&Entry>,
    ours: Option<&Entry>,
    theirs: Option<&Entry>,
    opts: &MergeOptions,
) -> PathMerge {
    if ours == theirs {
        return match (ours, ours == base) {
            (_, true) => PathMerge::Unchanged,
            (None, false) => PathMerge::Deleted,
            (Some(_), false) => PathMerge::TakeOurs,
        };
    }
    if ours == base {
        return if theirs.is_none() {
            PathMerge::Deleted
        } else {
            PathMerge::TakeTheirs
        };
    }
    if theirs == base {
        return if ours.is_none() {
            PathMerge::Deleted
        } else {
            PathMerge::TakeOurs
        };
    }
    // All three differ.
    let (ours, theirs) = match (ours, theirs) {
        (None, Some(t)) => {
            return PathMerge::Conflict(TreeConflict::ModifyDelete {
                deleted_by: Side::Ours,
                modified: t.clone(),
            });
        }
        (Some(o), None) => {
            return PathMerge::Conflict(TreeConflict::ModifyDelete {
                deleted_by: Side::Theirs,
                modified: o.clone(),
            });
        }
        (Some(o), Some(t)) => (o, t),
        (None, None) => return PathMerge::Deleted,
    };
    match (ours, theirs) {
        (
            Entry::File {
                data: od,
                executable: ox,
            },
            Entry::File {
                data: td,
                executable: tx,
            },
        ) => {
            let base_file = match base {
                Some(Entry::File { data, executable }) => Some((data.as_slice(), *executable)),
                _ => None,
            };
            merge_files(path, base_file, (od, *ox), (td, *tx), ours, theirs, opts)
        }
        (Entry::Symlink { target: ot }, Entry::Symlink { target: tt }) => {
            let base_target = match base {
                Some(Entry::Symlink { target }) => Some(target.clone()),
                _ => None,
            };
            PathMerge::Conflict(TreeConflict::SymlinkTarget {
                base: base_target,
                ours: ot.clone(),
                theirs: tt.clone(),
            })
        }
        _ => PathMerge::Conflict(TreeConflict::TypeChange {
            base: base.map(Entry::kind),
            ours: ours.clone(),
            theirs: theirs.clone(),
        }),
    }
}

/// Merges two files that both differ from the base (absent base: an add/add against empty text).
fn merge_files(
    path: &str,
    base: Option<(&[u8], bool)>,
    (od, ox): (&[u8], bool),
    (td, tx): (&[u8], bool),
    ours: &Entry,
    theirs: &Entry,
    opts: &MergeOptions,
) -> PathMerge {
    let base_data = base.map_or(&b""[..], |(d, _)| d);
    let (data, regions) = if is_binary(base_data) || is_binary(od) || is_binary(td) {
        // Binary content is never merged line by line: only a trivial resolution works.
        if od == td || td == base_data {
            (od.to_vec(), Vec::new())
        } else if od == base_data {
            (td.to_vec(), Vec::new())
        } else {
            return PathMerge::Conflict(TreeConflict::Binary {
                ours: ours.clone(),
                theirs: theirs.clone(),
            });
        }
    } else {
        let m = merge(base_data, od, td, &with_path_labels(opts, path));
        (m.render(), m.conflicts().to_vec())
    };
    match base {
        Some((_, bx)) => {
            let executable = if ox == bx { tx } else { ox };
            if regions.is_empty() {
                PathMerge::Merged(Entry::File { data, executable })
            } else {
                PathMerge::Conflict(TreeConflict::Content {
                    merged_with_markers: data,
                    regions,
                    executable,
                })
            }
        }
        None if !regions.is_empty() => PathMerge::Conflict(TreeConflict::AddAdd {
            merged_with_markers: data,
            regions,
            executable: ox,
        }),
        None if ox != tx => PathMerge::Conflict(TreeConflict::Mode {
            data,
            ours_exec: ox,
            theirs_exec: tx,
        }),
        None => PathMerge::Merged(Entry::File {
            data,
            executable: ox,
        }),
    }
}

/// `opts` with unset labels replaced by `SIDE:PATH`.
fn with_path_labels(opts: &MergeOptions, path: &str) -> MergeOptions {
    let or = |l: &Option<String>, side: &str| {
        Some(l.clone().unwrap_or_else(|| format!("{side}:{path}")))
    };
    MergeOptions {
        labels: Labels {
            ours: or(&opts.labels.ours, "ours"),
            base: or(&opts.labels.base, "base"),
            theirs: or(&opts.labels.theirs, "theirs"),
        },
        ..opts.clone()
    }
}

/// The outcome of [`merge_trees`]: every path of the three trees with its resolution.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[must_use = "a tree merge outcome lists the conflicts"]
pub struct TreeMerge {
    /// Every path of any of the three trees, in order, with how it was resolved.
    pub paths: BTreeMap<String, PathMerge>,
}

impl TreeMerge {
    /// Whether no path is in conflict.
    #[must_use]
    pub fn is_clean(&self) -> bool {
        self.conflicts().next().is_none()
    }

    /// The paths in conflict.
    pub fn conflicts(&self) -> impl Iterator<Item = (&str, &TreeConflict)> {
        self.paths.iter().filter_map(|(p, m)| match m {
            PathMerge::Conflict(c) => Some((p.as_str(), c)),
            _ => None,
        })
    }

    /// The number of paths in conflict.
    #[must_use]
    pub fn conflict_count(&self) -> usize {
        self.conflicts().count()
    }
}

/// Merges three trees given as maps from path to entry, path by path with [`merge_entry`].
///
/// # Example
///
/// ```
/// use std::collections::BTreeMap;
/// use forge_merge::{Entry, MergeOptions, PathMerge, merge_trees};
///
/// let file = |s: &str| Entry::File { data: s.into(), executable: false };
/// let base = BTreeMap::from([("a".to_string(), file("1\n"))]);
/// let ours = BTreeMap::from([("a".to_string(), file("2\n"))]);
/// let theirs = BTreeMap::from([("a".to_string(), file("1\n")), ("b".to_string(), file("x\n"))]);
/// let m = merge_trees(&base, &ours, &theirs, &MergeOptions::default());
/// assert!(m.is_clean());
/// assert_eq!(m.paths["a"], PathMerge::TakeOurs);
/// assert_eq!(m.paths["b"], PathMerge::TakeTheirs);
/// ```
pub fn merge_trees(
    base: &BTreeMap<String, Entry>,
    ours: &BTreeMap<String, Entry>,
    theirs: &BTreeMap<String, Entry>,
    opts: &MergeOptions,
) -> TreeMerge {
    let all: BTreeSet<&String> = base
        .keys()
        .chain(ours.keys())
        .chain(theirs.keys())
        .collect();
    let mut paths: BTreeMap<String, PathMerge> = all
        .into_iter()
        .map(|p| {
            let m = merge_entry(p, base.get(p), ours.get(p), theirs.get(p), opts);
            (p.clone(), m)
        })
        .collect();
    flag_file_directory_clashes(&mut paths, base, ours, theirs);
    TreeMerge { paths }
}

/// The kind of entry a resolution leaves at its path (`None`: absent), without cloning the
/// entry unless the path is in conflict (conflicts are rare; their kind is that of
/// [`TreeConflict::best_effort`]).
fn result_kind(m: &PathMerge, ours: Option<&Entry>, theirs: Option<&Entry>) -> Option<EntryKind> {
    match m {
        PathMerge::Unchanged | PathMerge::TakeOurs => ours.map(Entry::kind),
        PathMerge::TakeTheirs => theirs.map(Entry::kind),
        PathMerge::Deleted => None,
        PathMerge::Merged(e) => Some(e.kind()),
        PathMerge::Conflict(c) => Some(c.best_effort().kind()),
    }
}

/// Paths resolved one by one can still clash: one side leaves a file at `a` while the other
/// adds `a/b`. Such an `a` becomes a type-change conflict (the side with `a/b` has a directory
/// there).
fn flag_file_directory_clashes(
    paths: &mut BTreeMap<String, PathMerge>,
    base: &BTreeMap<String, Entry>,
    ours: &BTreeMap<String, Entry>,
    theirs: &BTreeMap<String, Entry>,
) {
    let kinds: BTreeMap<&str, Option<EntryKind>> = paths
        .iter()
        .map(|(p, m)| (p.as_str(), result_kind(m, ours.get(p), theirs.get(p))))
        .collect();
    let mut clashes: BTreeSet<String> = BTreeSet::new();
    for (path, kind) in &kinds {
        if kind.is_none() {
            continue;
        }
        let mut end = 0;
        while let Some(k) = path[end..].find('/') {
            let parent = &path[..end + k];
            if matches!(
                kinds.get(parent),
                Some(Some(EntryKind::File | EntryKind::Symlink))
            ) {
                clashes.insert(parent.to_owned());
            }
            end += k + 1;
        }
    }
    for p in clashes {
        let Some(m) = paths.get_mut(&p) else { continue };
        if m.is_conflict() {
            continue;
        }
        // A side without an entry there has the directory the clashing paths sit in.
        let side = |tree: &BTreeMap<String, Entry>| tree.get(&p).cloned().unwrap_or(Entry::Dir);
        *m = PathMerge::Conflict(TreeConflict::TypeChange {
            base: base.get(&p).map(Entry::kind),
            ours: side(ours),
            theirs: side(theirs),
        });
    }
}

#[cfg(test)]
mod tests;
