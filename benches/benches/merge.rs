//! Criterion bench for merge (being built by its issue).

fn main() {}
