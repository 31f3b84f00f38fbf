//! Helpers shared by forge's examples (the examples themselves are in `examples/`).
