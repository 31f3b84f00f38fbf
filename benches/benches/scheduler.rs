//! Criterion bench for scheduler (being built by its issue).

fn main() {}
