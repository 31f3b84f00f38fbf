//! Run metrics: counters, duration histograms per kind and executor, and their summary.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::time::Duration;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::critical_path::{CriticalPath, TaskSpan, critical_path};

/// What a duration measures.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricKind {
    /// From ready to started: time spent waiting for a slot in the scheduler.
    QueueWait,
    /// Time spent waiting for path locks.
    LockWait,
    /// The executor's run time.
    RunTime,
    /// Time spent merging and committing a task's changes.
    MergeTime,
    /// Anything else, by name.
    Custom(String),
}

impl fmt::Display for MetricKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetricKind::QueueWait => f.write_str("queue_wait"),
            MetricKind::LockWait => f.write_str("lock_wait"),
            MetricKind::RunTime => f.write_str("run_time"),
            MetricKind::MergeTime => f.write_str("merge_time"),
            MetricKind::Custom(name) => f.write_str(name),
        }
    }
}

/// Counters and duration histograms of a run; cheap to share (`&self` everywhere).
///
/// Histograms keep every sample (8 bytes each), so their percentiles are exact; a run records
/// a few samples per task.
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    counters: BTreeMap<String, u64>,
    histograms: BTreeMap<(MetricKind, Option<String>), Vec<Duration>>,
    spans: Vec<TaskSpan>,
}

impl Metrics {
    /// Records one duration of `kind`, for `executor` when it is specific to one.
    pub fn record(&self, kind: MetricKind, executor: Option<&str>, duration: Duration) {
        let mut inner = self.inner.lock();
        inner
            .histograms
            .entry((kind, executor.map(str::to_owned)))
            .or_default()
            .push(duration);
    }

    /// Adds 1 to `counter`.
    pub fn incr(&self, counter: &str) {
        self.add(counter, 1);
    }

    /// Adds `n` to `counter`.
    pub fn add(&self, counter: &str, n: u64) {
        let mut inner = self.inner.lock();
        match inner.counters.get_mut(counter) {
            Some(value) => *value = value.saturating_add(n),
            None => {
                inner.counters.insert(counter.to_owned(), n);
            }
        }
    }

    /// The current value of `counter` (0 if it was never incremented).
    #[must_use]
    pub fn counter(&self, counter: &str) -> u64 {
        self.inner
            .lock()
            .counters
            .get(counter)
            .copied()
            .unwrap_or(0)
    }

    /// Records when a task ran, for the critical path in [`summary`](Metrics::summary).
    pub fn record_span(&self, span: TaskSpan) {
        self.inner.lock().spans.push(span);
    }

    /// Summarizes everything recorded so far.
    pub fn summary(&self) -> Summary {
        let inner = self.inner.lock();
        let histograms = inner
            .histograms
            .iter()
            .map(|((kind, executor), samples)| {
                HistogramSummary::of(kind.clone(), executor.clone(), samples)
            })
            .collect();
        let critical_path = if inner.spans.is_empty() {
            None
        } else {
            Some(critical_path(&inner.spans))
        };
        Summary {
            counters: inner.counters.clone(),
            histograms,
            critical_path,
        }
    }
}

/// A snapshot of [`Metrics`], printable as text or JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[must_use]
pub struct Summary {
    /// Every counter, by name.
    pub counters: BTreeMap<String, u64>,
    /// One entry per (kind, executor) pair, ordered by kind then executor.
    pub histograms: Vec<HistogramSummary>,
    /// The critical path of the recorded task spans, if any were recorded.
    pub critical_path: Option<CriticalPath>,
}

/// The distribution of one histogram. Durations are in milliseconds in JSON.
///
/// Percentiles use the nearest-rank method: the p-th percentile is the smallest sample that
/// is at least p% of the samples, so it is always one of the samples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistogramSummary {
    /// What was measured.
    pub kind: MetricKind,
    /// The executor, or `None` for samples not tied to one.
    pub executor: Option<String>,
    /// How many samples.
    pub count: u64,
    /// The smallest sample.
    #[serde(rename = "min_ms", with = "millis")]
    pub min: Duration,
    /// The median (50th percentile).
    #[serde(rename = "median_ms", with = "millis")]
    pub median: Duration,
    /// The 90th percentile.
    #[serde(rename = "p90_ms", with = "millis")]
    pub p90: Duration,
    /// The largest sample.
    #[serde(rename = "max_ms", with = "millis")]
    pub max: Duration,
    /// The sum of the samples.
    #[serde(rename = "total_ms", with = "millis")]
    pub total: Duration,
}

impl HistogramSummary {
    fn of(kind: MetricKind, executor: Option<String>, samples: &[Duration]) -> Self {
        let mut sorted = samples.to_vec();
        sorted.sort_unstable();
        HistogramSummary {
            kind,
            executor,
            count: sorted.len() as u64,
            min: sorted.first().copied().unwrap_or_default(),
            median: nearest_rank(&sorted, 50),
            p90: nearest_rank(&sorted, 90),
            max: sorted.last().copied().unwrap_or_default(),
            total: sorted.iter().sum(),
        }
    }
}

/// The nearest-rank `percent`-th percentile of `sorted` (zero when empty).
fn nearest_rank(sorted: &[Duration], percent: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (percent * sorted.len()).div_ceil(100).max(1);
    sorted[rank - 1]
}

impl Summary {
    /// The summary as aligned plain text, one histogram per line.
    #[must_use]
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        if !self.histograms.is_empty() {
            let _ = writeln!(
                out,
                "{:<24} {:>7} {:>10} {:>10} {:>10} {:>10} {:>12}",
                "metric", "count", "min", "median", "p90", "max", "total"
            );
        }
        for h in &self.histograms {
            let name = match &h.executor {
                Some(executor) => format!("{}[{executor}]", h.kind),
                None => h.kind.to_string(),
            };
            let _ = writeln!(
                out,
                "{name:<24} {:>7} {:>10} {:>10} {:>10} {:>10} {:>12}",
                h.count,
                human(h.min),
                human(h.median),
                human(h.p90),
                human(h.max),
                human(h.total)
            );
        }
        for (name, value) in &self.counters {
            let _ = writeln!(out, "{name:<24} {value:>7}");
        }
        if let Some(path) = &self.critical_path {
            let _ = writeln!(
                out,
                "critical path ({}): {}",
                human(path.total),
                if path.tasks.is_empty() {
                    "-".to_owned()
                } else {
                    path.tasks.join(" -> ")
                }
            );
        }
        out
    }

    /// The summary as pretty JSON (durations in milliseconds).
    #[must_use]
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a summary holds only strings, maps and numbers")
    }
}

/// A duration rounded for people: `812us`, `3.4ms`, `1.25s`, `2m05s`.
fn human(d: Duration) -> String {
    let micros = d.as_micros();
    if micros < 1_000 {
        format!("{micros}us")
    } else if micros < 1_000_000 {
        format!("{:.1}ms", d.as_secs_f64() * 1e3)
    } else if d.as_secs() < 60 {
        format!("{:.2}s", d.as_secs_f64())
    } else {
        format!("{}m{:02}s", d.as_secs() / 60, d.as_secs() % 60)
    }
}

/// Serializes a [`Duration`] as fractional milliseconds.
pub(crate) mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64() * 1e3)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let ms = f64::deserialize(d)?;
        Duration::try_from_secs_f64(ms / 1e3).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests;
