//! Criterion bench for events (being built by its issue).

fn main() {}
