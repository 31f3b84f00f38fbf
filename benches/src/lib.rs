//! Fixtures shared by forge's criterion benches: deterministic inputs that every bench file
//! and its peer measure in the same run.
