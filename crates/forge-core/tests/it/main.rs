//! Integration tests of forge-core: real processes, random DAGs, and the seed plan.

mod plans;
mod process;
mod props;
