//! The event bus, the run journal, metrics and live state for forge runs.
//!
//! (Being built: see issue 5.)
