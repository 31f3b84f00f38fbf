//! Events for forge runs: a bus with lag notices, a crash-safe JSONL journal, metrics, and
//! live state for late subscribers.
//!
//! Everything forge does must be visible as it happens (a terminal view, a dashboard, a log
//! shipper) and durable (a crashed run is resumed and audited from its journal). This crate is
//! the machinery for both, generic over the event type `E`. Of tasks it knows only what the
//! critical path needs: a [`TaskSpan`] is an id, dependency ids and two times.
//!
//! - [`Bus`]: many publishers, many subscribers. Each [`Subscription`] is a
//!   [`Stream`](futures::Stream) of [`Delivery`] items, optionally filtered. A publisher never
//!   waits: a subscriber that falls behind gets [`Delivery::Lagged`] saying how many events
//!   it missed.
//! - [`Journal`]: an append-only JSONL file with an [`FsyncPolicy`], and [`read_journal`],
//!   which recovers every complete [`Record`] after a crash and reports a torn last line and
//!   corrupt lines, damaged records included (every record carries a checksum).
//! - [`Metrics`]: counters and duration histograms per [`MetricKind`] and executor, the
//!   [`critical_path`] of the run, and a [`Summary`] as text or JSON.
//! - [`Live`]: a state that every published event updates ([`Apply`]); a late subscriber gets
//!   the state now, then every later event, with no gap and no duplicate.
//!
//! # Example
//!
//! ```
//! use forge_events::{Apply, Delivery, FsyncPolicy, Journal, Live, read_journal};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
//! #[serde(tag = "kind", rename_all = "snake_case")]
//! enum Event {
//!     Started { task: String },
//!     Finished { task: String },
//! }
//!
//! /// What a dashboard shows: the tasks running now.
//! #[derive(Debug, Clone, Default)]
//! struct Running(Vec<String>);
//!
//! impl Apply<Event> for Running {
//!     fn apply(&mut self, event: &Event) {
//!         match event {
//!             Event::Started { task } => self.0.push(task.clone()),
//!             Event::Finished { task } => self.0.retain(|t| t != task),
//!         }
//!     }
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let journal = Journal::create(&dir.path().join("journal.jsonl"), FsyncPolicy::CommitPoints)?;
//! let live = Live::new(Running::default(), 1024);
//!
//! let started = Event::Started { task: "api".into() };
//! journal.append(&started)?;
//! live.publish(started);
//!
//! // A late subscriber: the state now, then every later event.
//! let (now, mut later) = live.subscribe();
//! assert_eq!(now.0, ["api"]);
//!
//! let finished = Event::Finished { task: "api".into() };
//! journal.append_commit_point(&finished)?;
//! live.publish(finished.clone());
//! assert_eq!(later.try_recv(), Ok(Delivery::Event(finished)));
//!
//! let recovered = read_journal::<Event>(journal.path())?;
//! assert_eq!(recovered.records.len(), 2);
//! assert_eq!(recovered.records[1].seq, 2);
//! # Ok(())
//! # }
//! ```
//!
//! # Journal records
//!
//! A journal is a UTF-8 file of JSON lines, one [`Record`] per line, each ended by `\n`:
//!
//! ```json
//! {"v":1,"seq":1,"ts_ms":1763700000123,"event":{"kind":"started","task":"api"},"crc":4086009539}
//! {"v":1,"seq":2,"ts_ms":1763700004711,"event":{"kind":"finished","task":"api"},"crc":1712051360}
//! ```
//!
//! | field | type | meaning |
//! |---|---|---|
//! | `v` | integer | record schema version, [`SCHEMA_VERSION`] (1); a reader reports other versions as corrupt lines |
//! | `seq` | integer | sequence number: 1 for the first record, then +1 per record, continued by [`Journal::open_append`] |
//! | `ts_ms` | integer | when the record was appended, in milliseconds since the Unix epoch |
//! | `event` | any JSON | the event, in its own serde form |
//! | `crc` | integer | last field: CRC-32 (IEEE) of the line as it reads without `,"crc":N`; a record whose checksum does not match is a corrupt line, never read (records without it, from older writers, are read unless the journal holds checksummed ones) |
//!
//! Readers must ignore fields they do not know: later versions of this crate may add some
//! without changing `v`. Every append is a single `write` of a whole line; a crash can leave
//! only the last line unfinished, which [`read_journal`] reports as a [`TornTail`] and
//! [`Journal::open_append`] cuts off.
//!
//! # Event types
//!
//! This crate is generic over the event type. forge's own events (task started, lock waited,
//! merged, committed, ...) are the `forge_core::Event` enum, whose documentation holds the
//! table of every event's JSON form with an example of each. Any `Clone + Send + Sync` type can
//! go on a [`Bus`], and any serde type in a [`Journal`].
//!
//! # Crate features
//!
//! None. The crate needs tokio's `sync` feature, and `rt` for `tokio::task::coop::unconstrained`
//! (which [`Subscription::try_recv`] uses; no tokio runtime is started), and works with any
//! async runtime (or none: [`Subscription::try_recv`] never blocks).

#![forbid(unsafe_code)]

mod bus;
mod critical_path;
mod journal;
mod live;
mod metrics;
mod record;
mod recover;

pub use bus::{Bus, DEFAULT_CAPACITY, Delivery, Subscription, TryRecvError};
pub use critical_path::{CriticalPath, TaskSpan, critical_path};
pub use journal::{FsyncPolicy, Journal};
pub use live::{Apply, Live};
pub use metrics::{HistogramSummary, MetricKind, Metrics, Summary};
pub use record::{JournalError, Record, SCHEMA_VERSION};
pub use recover::{CorruptLine, Recovered, TornTail, read_journal};
