//! Criterion bench for engine (being built by its issue).

fn main() {}
