//! One journal line: the record envelope around an event, and the errors of the journal.

use std::io;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The record schema version this crate writes and reads (the `"v"` field of every line).
pub const SCHEMA_VERSION: u32 = 1;

/// One line of a journal: an event with its envelope.
///
/// On disk it is one JSON object followed by `\n`, with the fields in this order:
///
/// ```json
/// {"v":1,"seq":7,"ts_ms":1763700000123,"event":{"kind":"merged","task":"api"},"crc":35387679}
/// ```
///
/// - `v`: the record schema version, [`SCHEMA_VERSION`];
/// - `seq`: the sequence number, 1 for the first record of a journal, then +1 per record,
///   continued across [`Journal::open_append`](crate::Journal::open_append);
/// - `ts_ms`: when the record was appended, in milliseconds since the Unix epoch;
/// - `event`: the event's own serde JSON form;
/// - `crc`: the CRC-32 of the line as it reads without this last field (see
///   [`read_journal`](crate::read_journal)); checked when reading, not kept in the record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record<E> {
    /// The record schema version.
    pub v: u32,
    /// The sequence number, from 1.
    pub seq: u64,
    /// The append time, in milliseconds since the Unix epoch.
    pub ts_ms: u64,
    /// The event.
    pub event: E,
}

/// The same envelope, borrowing its event, so that appending never clones an event.
#[derive(Serialize)]
pub(crate) struct RecordRef<'a, E: ?Sized> {
    pub(crate) v: u32,
    pub(crate) seq: u64,
    pub(crate) ts_ms: u64,
    pub(crate) event: &'a E,
}

/// An error of the journal writer or reader; each names the journal's path.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JournalError {
    /// A file system operation on the journal failed.
    #[error("cannot {op} journal {}: {source}", path.display())]
    Io {
        /// What was being done ("create", "write to", "sync", ...).
        op: &'static str,
        /// The journal's path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// An event could not be serialized; nothing was written and no sequence number was used.
    #[error("cannot serialize event {seq} for journal {}: {source}", path.display())]
    Serialize {
        /// The sequence number the event would have had.
        seq: u64,
        /// The journal's path.
        path: PathBuf,
        /// The serializer's error.
        #[source]
        source: serde_json::Error,
    },
}

impl JournalError {
    /// The path of the journal the error is about.
    #[must_use]
    pub fn path(&self) -> &std::path::Path {
        match self {
            JournalError::Io { path, .. } | JournalError::Serialize { path, .. } => path,
        }
    }

    pub(crate) fn io(op: &'static str, path: &std::path::Path, source: io::Error) -> Self {
        JournalError::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    }
}
