//! Three-way text and tree merge that agrees with `git merge-file`.
//!
//! (Being built: see issue 4.)
