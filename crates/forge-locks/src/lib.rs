//! Read/write locks on repository paths and glob patterns, with exact overlap and
//! wait-for-graph deadlock detection.
//!
//! (Being built: see issue 7.)
