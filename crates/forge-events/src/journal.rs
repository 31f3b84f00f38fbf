//! The append-only JSONL journal writer and its fsync policies.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Write};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use serde::Serialize;
use serde::de::IgnoredAny;

use crate::record::{JournalError, RecordRef, SCHEMA_VERSION};
use crate::recover::{parse_record, scan, seal};

/// When a [`Journal`] forces its records to stable storage with `fdatasync`.
///
/// Whatever the policy, every append is one `write` of a whole line, so a crash of the process
/// loses nothing that was appended; the policy decides what survives a crash of the machine.
/// [`Journal::append_commit_point`] and [`Journal::sync`] always sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FsyncPolicy {
    /// Sync after every record: slowest, nothing is ever lost.
    EveryEvent,
    /// Sync only at commit points: records between two commit points may be lost by a machine
    /// crash, which resume tolerates by re-running work whose outcome is unknown.
    #[default]
    CommitPoints,
    /// Sync at commit points and after an append when the last sync is at least this old.
    ///
    /// The check runs on append, with no background thread: the last records before a pause
    /// stay unsynced until the next append, [`Journal::sync`] or the journal's drop. Call
    /// `sync` from a timer when a hard bound matters.
    Interval(Duration),
}

/// An append-only JSONL journal of events of type `E`.
///
/// Each [`append`](Journal::append) writes one [`Record`](crate::Record) line and returns its
/// sequence number. `E` may be unsized, as in `Journal<str>` or `Journal<[u8]>`.
///
/// The journal is `Sync`: share it between threads (for instance in an `Arc`);
/// appends are serialized by an internal lock that is never held across an `.await` (every
/// method is synchronous).
pub struct Journal<E: ?Sized> {
    path: PathBuf,
    policy: FsyncPolicy,
    writer: Mutex<Writer>,
    _event: PhantomData<fn(&E)>,
}

struct Writer {
    file: File,
    /// The sequence number of the next record.
    next_seq: u64,
    /// The file's length after the last complete line: where a failed write is cut back to.
    len: u64,
    /// Records written since the last sync.
    dirty: bool,
    last_sync: Instant,
    /// Reused for every line, so that appending does not allocate.
    line: Vec<u8>,
}

impl<E: Serialize + ?Sized> Journal<E> {
    /// Creates a new, empty journal at `path`; its first record gets sequence number 1.
    ///
    /// The file must not exist yet: a journal is the record of one run, and overwriting one
    /// would lose it (use [`open_append`](Journal::open_append) to continue a journal).
    ///
    /// # Errors
    ///
    /// [`JournalError::Io`] when the file exists or cannot be created, or its directory cannot
    /// be synced.
    pub fn create(path: &Path, policy: FsyncPolicy) -> Result<Self, JournalError> {
        let file = OpenOptions::new()
            .append(true)
            .create_new(true)
            .open(path)
            .map_err(|err| JournalError::io("create", path, err))?;
        sync_parent_dir(path)?;
        Ok(Journal::from_parts(path, policy, file, 1, 0))
    }

    /// Opens the journal at `path` to append to it, creating it if it does not exist.
    ///
    /// The existing records are read first: a torn tail (see
    /// [`read_journal`](crate::read_journal)) is cut off and the cut is synced, and numbering
    /// continues after the highest sequence number found. Corrupt lines in the middle are left
    /// as they are.
    ///
    /// # Errors
    ///
    /// [`JournalError::Io`] when the file cannot be opened, read, truncated or synced.
    pub fn open_append(path: &Path, policy: FsyncPolicy) -> Result<Self, JournalError> {
        let mut options = OpenOptions::new();
        options.read(true).append(true);
        let (file, created) = match options.open(path) {
            Ok(file) => (file, false),
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                let file = options
                    .create(true)
                    .open(path)
                    .map_err(|err| JournalError::io("create", path, err))?;
                (file, true)
            }
            Err(err) => return Err(JournalError::io("open", path, err)),
        };
        // Events are not needed to continue the numbering, only the envelopes.
        let recovered = scan(BufReader::new(&file), path, parse_record::<IgnoredAny>)?;
        let mut len = file
            .metadata()
            .map_err(|err| JournalError::io("stat", path, err))?
            .len();
        if let Some(torn) = recovered.torn_tail {
            file.set_len(torn.offset)
                .map_err(|err| JournalError::io("truncate", path, err))?;
            file.sync_data()
                .map_err(|err| JournalError::io("sync", path, err))?;
            len = torn.offset;
        }
        if created {
            sync_parent_dir(path)?;
        }
        let next_seq = recovered
            .records
            .iter()
            .map(|r| r.seq)
            .max()
            .map_or(1, |seq| seq + 1);
        Ok(Journal::from_parts(path, policy, file, next_seq, len))
    }

    fn from_parts(path: &Path, policy: FsyncPolicy, file: File, next_seq: u64, len: u64) -> Self {
        Journal {
            path: path.to_path_buf(),
            policy,
            writer: Mutex::new(Writer {
                file,
                next_seq,
                len,
                dirty: false,
                last_sync: Instant::now(),
                line: Vec::with_capacity(256),
            }),
            _event: PhantomData,
        }
    }

    /// Appends `event` as one record and returns its sequence number; syncs as the policy says.
    ///
    /// # Errors
    ///
    /// [`JournalError::Serialize`] when the event cannot be serialized (nothing is written),
    /// [`JournalError::Io`] when the write or sync fails. A failed write is cut back so that
    /// the journal never keeps half a line followed by more records.
    pub fn append(&self, event: &E) -> Result<u64, JournalError> {
        let mut writer = self.writer.lock();
        let seq = self.write_record(&mut writer, event)?;
        let due = match self.policy {
            FsyncPolicy::EveryEvent => true,
            FsyncPolicy::CommitPoints => false,
            FsyncPolicy::Interval(every) => writer.last_sync.elapsed() >= every,
        };
        if due {
            self.sync_locked(&mut writer)?;
        }
        Ok(seq)
    }

    /// Appends `event` and syncs it, with every record before it, before returning.
    ///
    /// Use it for the records that resume relies on, such as a committed merge. The sync
    /// blocks the calling thread (milliseconds on a real disk): async code should call it from
    /// a blocking-friendly thread such as tokio's `spawn_blocking`.
    ///
    /// # Errors
    ///
    /// As [`append`](Journal::append); when the sync fails the record may or may not survive a
    /// machine crash.
    pub fn append_commit_point(&self, event: &E) -> Result<u64, JournalError> {
        let mut writer = self.writer.lock();
        let seq = self.write_record(&mut writer, event)?;
        self.sync_locked(&mut writer)?;
        Ok(seq)
    }

    fn write_record(&self, writer: &mut Writer, event: &E) -> Result<u64, JournalError> {
        let seq = writer.next_seq;
        let ts_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| {
                u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
            });
        let Writer {
            file, line, len, ..
        } = writer;
        line.clear();
        let record = RecordRef {
            v: SCHEMA_VERSION,
            seq,
            ts_ms,
            event,
        };
        serde_json::to_writer(&mut *line, &record).map_err(|source| JournalError::Serialize {
            seq,
            path: self.path.clone(),
            source,
        })?;
        seal(line);
        // serde_json escapes newlines inside strings, so the record is exactly one line.
        line.push(b'\n');
        if let Err(err) = file.write_all(line) {
            // Cut a partial line off so the next record does not land behind it. If even that
            // fails, the reader reports the damage as a corrupt line and goes on.
            let _ = file.set_len(*len);
            return Err(JournalError::io("write to", &self.path, err));
        }
        *len += line.len() as u64;
        writer.next_seq += 1;
        writer.dirty = true;
        Ok(seq)
    }

    /// Forces every record appended so far to stable storage.
    ///
    /// # Errors
    ///
    /// [`JournalError::Io`] when `fdatasync` fails.
    pub fn sync(&self) -> Result<(), JournalError> {
        let mut writer = self.writer.lock();
        self.sync_locked(&mut writer)
    }

    fn sync_locked(&self, writer: &mut Writer) -> Result<(), JournalError> {
        writer
            .file
            .sync_data()
            .map_err(|err| JournalError::io("sync", &self.path, err))?;
        writer.dirty = false;
        writer.last_sync = Instant::now();
        Ok(())
    }
}

impl<E: ?Sized> Journal<E> {
    /// The sequence number the next record will get.
    #[must_use]
    pub fn next_seq(&self) -> u64 {
        self.writer.lock().next_seq
    }

    /// The journal's path.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The fsync policy.
    #[must_use]
    pub fn policy(&self) -> FsyncPolicy {
        self.policy
    }
}

impl<E: ?Sized> Drop for Journal<E> {
    /// Syncs what is not synced yet, best effort: a clean shutdown leaves a durable journal.
    fn drop(&mut self) {
        let writer = self.writer.get_mut();
        if writer.dirty {
            let _ = writer.file.sync_data();
        }
    }
}

impl<E: ?Sized> fmt::Debug for Journal<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Journal")
            .field("path", &self.path)
            .field("policy", &self.policy)
            .field("next_seq", &self.next_seq())
            .finish()
    }
}

/// Syncs the directory holding `path`, so that a new file's name survives a machine crash.
fn sync_parent_dir(path: &Path) -> Result<(), JournalError> {
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|dir| dir.sync_all())
        .map_err(|err| JournalError::io("sync the directory of", path, err))
}

#[cfg(test)]
mod tests;
