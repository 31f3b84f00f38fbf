//! Criterion bench for staging (being built by its issue).

fn main() {}
