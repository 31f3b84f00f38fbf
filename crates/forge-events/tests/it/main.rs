//! Integration tests of forge-events, through the public API only.

#![forbid(unsafe_code)]

mod bus;
mod journal;
mod live;

use serde::{Deserialize, Serialize};

/// Whether the long soak runs were asked for (`FORGE_SOAK=1`).
fn soak() -> bool {
    std::env::var_os("FORGE_SOAK").is_some()
}

/// Property-test cases: `default`, or 50 times more with `FORGE_SOAK=1`.
pub(crate) fn cases(default: u32) -> u32 {
    if soak() { default * 50 } else { default }
}

/// Events per publisher in the threaded tests: `default`, or 20 times more when soaking.
pub(crate) fn per_publisher(default: usize) -> usize {
    if soak() { default * 20 } else { default }
}

/// An event type shaped like forge's own: tagged, with strings and numbers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum TestEvent {
    Started {
        task: String,
        attempt: u32,
    },
    LockWaited {
        task: String,
        paths: Vec<String>,
        waited_us: u64,
    },
    Merged {
        task: String,
        generation: u64,
    },
    Log {
        task: String,
        line: String,
    },
}

impl TestEvent {
    pub(crate) fn task(&self) -> &str {
        match self {
            TestEvent::Started { task, .. }
            | TestEvent::LockWaited { task, .. }
            | TestEvent::Merged { task, .. }
            | TestEvent::Log { task, .. } => task,
        }
    }
}
