//! Criterion bench for locks (being built by its issue).

fn main() {}
