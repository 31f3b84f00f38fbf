//! Unit tests of metrics: percentiles, keys, counters, text and JSON.

use std::time::Duration;

use super::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn nearest_rank_percentiles() {
    let sorted: Vec<Duration> = (1..=10).map(ms).collect();
    assert_eq!(nearest_rank(&sorted, 50), ms(5));
    assert_eq!(nearest_rank(&sorted, 90), ms(9));
    assert_eq!(nearest_rank(&sorted[..1], 90), ms(1));
    assert_eq!(nearest_rank(&sorted[..3], 50), ms(2));
    assert_eq!(nearest_rank(&[], 50), Duration::ZERO);
}

#[test]
fn histograms_are_keyed_by_kind_and_executor() {
    let metrics = Metrics::default();
    for n in [30, 10, 20] {
        metrics.record(MetricKind::RunTime, Some("claude"), ms(n));
    }
    metrics.record(MetricKind::RunTime, None, ms(7));
    metrics.record(MetricKind::QueueWait, Some("claude"), ms(1));
    metrics.record(MetricKind::Custom("compile".into()), None, ms(2));
    let summary = metrics.summary();
    let keys: Vec<(String, Option<&str>, u64)> = summary
        .histograms
        .iter()
        .map(|h| (h.kind.to_string(), h.executor.as_deref(), h.count))
        .collect();
    assert_eq!(
        keys,
        [
            ("queue_wait".to_owned(), Some("claude"), 1),
            ("run_time".to_owned(), None, 1),
            ("run_time".to_owned(), Some("claude"), 3),
            ("compile".to_owned(), None, 1),
        ]
    );
    let claude = &summary.histograms[2];
    assert_eq!(
        (
            claude.min,
            claude.median,
            claude.p90,
            claude.max,
            claude.total
        ),
        (ms(10), ms(20), ms(30), ms(30), ms(60))
    );
}

#[test]
fn counters_add_up() {
    let metrics = Metrics::default();
    metrics.incr("retries");
    metrics.incr("retries");
    metrics.add("merged", 5);
    assert_eq!(metrics.counter("retries"), 2);
    assert_eq!(metrics.counter("merged"), 5);
    assert_eq!(metrics.counter("never"), 0);
}

#[test]
fn text_summary() {
    let metrics = Metrics::default();
    metrics.record(MetricKind::LockWait, Some("sh"), Duration::from_micros(250));
    metrics.record(MetricKind::MergeTime, None, Duration::from_millis(1500));
    metrics.incr("tasks_failed");
    metrics.record_span(crate::TaskSpan {
        id: "a".into(),
        deps: vec![],
        start: ms(0),
        end: ms(4),
    });
    metrics.record_span(crate::TaskSpan {
        id: "b".into(),
        deps: vec!["a".into()],
        start: ms(4),
        end: ms(10),
    });
    let expected = "\
metric                     count        min     median        p90        max        total
lock_wait[sh]                  1      250us      250us      250us      250us        250us
merge_time                     1      1.50s      1.50s      1.50s      1.50s        1.50s
tasks_failed                   1
critical path (10.0ms): a -> b
";
    assert_eq!(metrics.summary().to_text(), expected);
}

#[test]
fn json_summary_round_trips() {
    let metrics = Metrics::default();
    metrics.record(
        MetricKind::QueueWait,
        Some("x"),
        Duration::from_micros(1500),
    );
    metrics.incr("started");
    let summary = metrics.summary();
    let json = summary.to_json();
    let value: serde_json::Value = serde_json::from_str(&json).expect("valid json");
    assert_eq!(value["histograms"][0]["kind"], "queue_wait");
    assert_eq!(value["histograms"][0]["median_ms"], 1.5);
    assert_eq!(value["counters"]["started"], 1);
    assert_eq!(value["critical_path"], serde_json::Value::Null);
    let back: Summary = serde_json::from_str(&json).expect("round trip");
    assert_eq!(back, summary);
}
