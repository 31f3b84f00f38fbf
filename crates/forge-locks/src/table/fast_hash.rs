//! The lock table's maps, hashed with rustc's FxHash: their keys are short (path components,
//! owner ids) and come from the caller's own plan, so hash flooding is not a concern here and
//! SipHash's cost is.

/// A `HashMap` with FxHash.
pub(crate) type FastMap<K, V> = rustc_hash::FxHashMap<K, V>;
/// A `HashSet` with FxHash.
pub(crate) type FastSet<T> = rustc_hash::FxHashSet<T>;
