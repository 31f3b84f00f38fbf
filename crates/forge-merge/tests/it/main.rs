//! Integration tests of forge-merge.
