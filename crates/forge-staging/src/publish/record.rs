//! The publish record (`run_dir/publish.json`): the generation a publish writes, written
//! before the working tree changes, and whether it finished.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Result, StagingError};
use crate::layers::write_synced;
use crate::sys;

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub(super) struct Record {
    /// The generation the repository held before this publish.
    pub(super) from: u64,
    /// The generation being written.
    pub(super) generation: u64,
    /// Whether it is fully written.
    pub(super) done: bool,
    /// The temporary directory of this publish, removed when it is done.
    #[serde(default)]
    pub(super) tmp_dir: Option<PathBuf>,
}

fn record_path(run_dir: &Path) -> PathBuf {
    run_dir.join("publish.json")
}

pub(super) fn read_record(run_dir: &Path) -> Result<Option<Record>> {
    let path = record_path(run_dir);
    match fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StagingError::Corrupt {
                path,
                reason: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StagingError::io("read", path)(e)),
    }
}

pub(super) fn write_record(run_dir: &Path, record: &Record) -> Result<()> {
    let path = record_path(run_dir);
    let tmp = run_dir.join(".publish.json.tmp");
    let bytes = serde_json::to_vec(record).map_err(|e| StagingError::Corrupt {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    sys::remove_any(&tmp)?;
    write_synced(&tmp, &bytes)?;
    fs::rename(&tmp, &path).map_err(StagingError::io("rename", &path))?;
    sys::fsync_dir(run_dir)
}

/// Whether the publish record of `run_dir` says it finished.
pub(super) fn is_done(run_dir: &Path) -> bool {
    read_record(run_dir).is_ok_and(|r| r.is_some_and(|r| r.done))
}

/// The generation an interrupted publish of the run in `run_dir` was writing, if its record
/// says it started and never finished: the working tree then holds a mix of two
/// generations until the publish runs again (`forge resume`).
///
/// # Errors
///
/// The record exists but cannot be read.
pub fn interrupted_publish(run_dir: &Path) -> Result<Option<u64>, StagingError> {
    Ok(read_record(run_dir)?
        .filter(|r| !r.done)
        .map(|r| r.generation))
}

/// The oldest generation readable after the publishes recorded in `run_dir`, if any.
pub(crate) fn published_generation(run_dir: &Path) -> Result<Option<u64>> {
    Ok(read_record(run_dir)?.map(|r| r.generation))
}
