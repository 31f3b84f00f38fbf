//! Integration tests of forge-core: real processes, random DAGs, and the seed plan.

#![forbid(unsafe_code)]

mod collection;
mod engine;
mod fuzz;
mod plans;
mod process;
mod props;
