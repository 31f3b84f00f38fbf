//! One module per subcommand; each owns its arguments and its exit status.

pub(crate) mod land;
pub(crate) mod merge_file;
pub(crate) mod overlap;
pub(crate) mod plan;
pub(crate) mod resume;
pub(crate) mod review;
pub(crate) mod run;
pub(crate) mod status;
