//! What a merge can be asked to do: conflict style, favor, marker size and labels.

/// How conflicts are shown, as `git merge-file`'s `--diff3` and `--zdiff3`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ConflictStyle {
    /// Ours and theirs only; each conflict is refined so only lines that differ stay in it, and
    /// conflicts close together are joined (git's default).
    #[default]
    Merge,
    /// Ours, the base and theirs; conflicts are not refined (`--diff3`).
    Diff3,
    /// As [`Diff3`](Self::Diff3), but lines common to both sides at the start and end of a
    /// conflict are moved out of it (`--zdiff3`).
    Zdiff3,
}

/// How conflicts are resolved without markers, as `--ours`, `--theirs` and `--union`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Favor {
    /// Take our side of every conflict.
    Ours,
    /// Take their side of every conflict.
    Theirs,
    /// Take our side, then their side, of every conflict.
    Union,
}

/// Labels written after the conflict markers (`-L`). `None` writes the bare marker; `Some("")`
/// writes the marker and one space, as git does.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Labels {
    /// After `<<<<<<<`.
    pub ours: Option<String>,
    /// After `|||||||` (diff3 and zdiff3 styles).
    pub base: Option<String>,
    /// After `>>>>>>>`.
    pub theirs: Option<String>,
}

/// Options of [`merge`](crate::merge) and the tree merge.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MergeOptions {
    /// How conflicts are shown.
    pub style: ConflictStyle,
    /// Resolve conflicts to one side (or both) instead of writing markers.
    pub favor: Option<Favor>,
    /// Length of the conflict markers; 0 means the default, 7.
    pub marker_size: usize,
    /// Labels after the markers.
    pub labels: Labels,
}

/// Default length of conflict markers.
pub const DEFAULT_MARKER_SIZE: usize = 7;

impl Default for MergeOptions {
    fn default() -> Self {
        Self {
            style: ConflictStyle::Merge,
            favor: None,
            marker_size: DEFAULT_MARKER_SIZE,
            labels: Labels::default(),
        }
    }
}

impl MergeOptions {
    /// The marker length actually used (the default when `marker_size` is 0).
    #[must_use]
    pub fn effective_marker_size(&self) -> usize {
        if self.marker_size == 0 {
            DEFAULT_MARKER_SIZE
        } else {
            self.marker_size
        }
    }
}
