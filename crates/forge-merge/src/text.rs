//! The three-way text merge: [`merge`] and its outcome, [`TextMerge`].

use std::fmt;
use std::ops::Range;

use crate::intern::Interner;
use crate::lines::Lines;
use crate::options::{ConflictStyle, MergeOptions};
use crate::xdiff;

mod regions;
mod render;

use regions::{Inputs, Mode, Region};

/// How many leading bytes are searched for a NUL to call a version binary (as git).
pub const BINARY_SNIFF_LEN: usize = 8000;

/// git refuses to diff files above this size; forge treats them as binary.
const MAX_XDIFF_SIZE: usize = 1 << 30;

/// Whether git would call this content binary: a NUL byte among its first 8000 bytes.
#[must_use]
pub fn is_binary(data: &[u8]) -> bool {
    data.len() > MAX_XDIFF_SIZE || data[..data.len().min(BINARY_SNIFF_LEN)].contains(&0)
}

/// One conflict region, in 0-based line ranges of each version.
///
/// In the default style a conflict may be a refined part of a larger overlap; `base` is then the
/// base span of that whole overlap (the lines both sides replaced).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Conflict {
    /// Lines of the base the conflict replaces.
    pub base: Range<usize>,
    /// Our lines in conflict.
    pub ours: Range<usize>,
    /// Their lines in conflict.
    pub theirs: Range<usize>,
}

/// What the merge found, before anything is rendered.
enum Outcome {
    /// One version is binary: the result is ours, in conflict.
    Binary,
    /// Theirs did not change the base (in diff terms): the result is ours, byte for byte.
    Ours,
    /// Ours did not change the base: the result is theirs, byte for byte.
    Theirs,
    /// Both changed: the result is assembled from these regions.
    Regions(Vec<Region>),
}

/// The outcome of a three-way text merge: clean or with conflicts, kept as data until
/// [`render`](Self::render) writes the result.
#[must_use = "a merge outcome says whether there were conflicts"]
pub struct TextMerge<'a> {
    base: Lines<'a>,
    ours: Lines<'a>,
    theirs: Lines<'a>,
    opts: MergeOptions,
    outcome: Outcome,
    conflicts: Vec<Conflict>,
    favored: Vec<Conflict>,
}

impl fmt::Debug for TextMerge<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TextMerge")
            .field("binary", &self.is_binary())
            .field("conflicts", &self.conflicts)
            .field("favored", &self.favored)
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}

impl TextMerge<'_> {
    /// Whether the result has no conflict (favored conflicts count as resolved, as in git).
    #[must_use]
    pub fn is_clean(&self) -> bool {
        self.conflicts.is_empty()
    }

    /// The conflicts left in the result (none when a [`Favor`](crate::Favor) resolved them).
    #[must_use]
    pub fn conflicts(&self) -> &[Conflict] {
        &self.conflicts
    }

    /// The number of conflict regions: `git merge-file`'s exit status before capping at 127.
    #[must_use]
    pub fn conflict_count(&self) -> usize {
        self.conflicts.len()
    }

    /// The conflicts that the chosen [`Favor`](crate::Favor) resolved (empty without one).
    #[must_use]
    pub fn favored_conflicts(&self) -> &[Conflict] {
        &self.favored
    }

    /// Whether a version was binary (then nothing was merged and the result is ours).
    #[must_use]
    pub fn is_binary(&self) -> bool {
        matches!(self.outcome, Outcome::Binary)
    }

    /// The merged text with conflict markers in the chosen style: exactly what
    /// `git merge-file -p` prints for text input.
    #[must_use]
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.render_into(&mut out);
        out
    }

    /// Appends the merged text (see [`render`](Self::render)) to `out`.
    pub fn render_into(&self, out: &mut Vec<u8>) {
        match &self.outcome {
            Outcome::Binary | Outcome::Ours => out.extend_from_slice(self.ours.data()),
            Outcome::Theirs => out.extend_from_slice(self.theirs.data()),
            Outcome::Regions(regions) => render::fill(
                &render::Sides {
                    base: &self.base,
                    ours: &self.ours,
                    theirs: &self.theirs,
                },
                regions,
                &self.opts,
                out,
            ),
        }
    }
}

/// Merges `ours` and `theirs`, both changed from `base`, line by line as `git merge-file` does.
///
/// # Example
///
/// ```
/// use forge_merge::{MergeOptions, merge};
///
/// let m = merge(b"a\nb\nc\n", b"A\nb\nc\n", b"a\nb\nC\n", &MergeOptions::default());
/// assert!(m.is_clean());
/// assert_eq!(m.render(), b"A\nb\nC\n");
/// ```
pub fn merge<'a>(
    base: &'a [u8],
    ours: &'a [u8],
    theirs: &'a [u8],
    opts: &MergeOptions,
) -> TextMerge<'a> {
    let mut tm = TextMerge {
        base: Lines::new(base),
        ours: Lines::new(ours),
        theirs: Lines::new(theirs),
        opts: opts.clone(),
        outcome: Outcome::Ours,
        conflicts: Vec::new(),
        favored: Vec::new(),
    };
    if is_binary(base) || is_binary(ours) || is_binary(theirs) {
        tm.outcome = Outcome::Binary;
        tm.conflicts.push(Conflict {
            base: 0..tm.base.len(),
            ours: 0..tm.ours.len(),
            theirs: 0..tm.theirs.len(),
        });
        return tm;
    }

    let mut interner = Interner::default();
    let base_ids = interner.intern(&tm.base);
    let ours_ids = interner.intern_version(&tm.ours, &tm.base, &base_ids);
    let theirs_ids = interner.intern_version(&tm.theirs, &tm.base, &base_ids);
    let n_ids = interner.len();
    drop(interner);

    let s1 = xdiff::diff(&base_ids, &ours_ids, n_ids, false);
    let s2 = xdiff::diff(&base_ids, &theirs_ids, n_ids, false);
    if s1.is_empty() {
        tm.outcome = Outcome::Theirs;
        return tm;
    }
    if s2.is_empty() {
        tm.outcome = Outcome::Ours;
        return tm;
    }

    let inp = Inputs {
        ours: &tm.ours,
        ours_ids: &ours_ids,
        theirs_ids: &theirs_ids,
        n_base: base_ids.len(),
    };
    let mut regions = regions::combine(&inp, &s1, &s2);
    match opts.style {
        // xdiff's `XDL_MERGE_ZEALOUS_ALNUM` level: refine conflicts, join close ones.
        ConflictStyle::Merge => {
            regions = regions::refine(&inp, regions);
            regions = regions::simplify(&inp, regions);
        }
        // `XDL_MERGE_EAGER`: conflicts are kept whole; zdiff3 only moves common ends out.
        ConflictStyle::Diff3 => {}
        ConflictStyle::Zdiff3 => regions::trim_zdiff3(&inp, &mut regions),
    }

    let found: Vec<Conflict> = regions
        .iter()
        .filter(|m| m.mode == Mode::Conflict)
        .map(|m| Conflict {
            base: span(m.i0, m.chg0),
            ours: span(m.i1, m.chg1),
            theirs: span(m.i2, m.chg2),
        })
        .collect();
    if opts.favor.is_some() {
        tm.favored = found;
    } else {
        tm.conflicts = found;
    }
    tm.outcome = Outcome::Regions(regions);
    tm
}

/// A line range from xdiff's signed start and count.
fn span(start: isize, count: isize) -> Range<usize> {
    let start = start.max(0) as usize;
    start..start + count.max(0) as usize
}

#[cfg(test)]
mod tests;
