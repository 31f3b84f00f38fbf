//! Copy-on-write views of a repository, immutable generations, and change sets.
//!
//! (Being built: see issue 3.)
