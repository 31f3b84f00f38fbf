//! Unit tests of the journal writer: numbering, policies, reopening, errors.

use std::time::Duration;

use super::*;
use crate::read_journal;

fn policies() -> [FsyncPolicy; 3] {
    [
        FsyncPolicy::EveryEvent,
        FsyncPolicy::CommitPoints,
        FsyncPolicy::Interval(Duration::from_millis(5)),
    ]
}

#[test]
fn records_are_numbered_from_one_under_every_policy() {
    for policy in policies() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("j.jsonl");
        let journal = Journal::create(&path, policy).expect("create");
        assert_eq!(journal.append(&"a").expect("append"), 1);
        assert_eq!(journal.append_commit_point(&"b").expect("commit"), 2);
        assert_eq!(journal.append(&"c").expect("append"), 3);
        journal.sync().expect("sync");
        assert_eq!(journal.next_seq(), 4);
        assert_eq!(journal.policy(), policy);
        let recovered = read_journal::<String>(&path).expect("read");
        let events: Vec<(u64, &str)> = recovered
            .records
            .iter()
            .map(|r| (r.seq, r.event.as_str()))
            .collect();
        assert_eq!(events, [(1, "a"), (2, "b"), (3, "c")]);
        assert!(
            recovered
                .records
                .iter()
                .all(|r| r.v == 1 && r.ts_ms > 1_600_000_000_000)
        );
    }
}

#[test]
fn the_line_format_is_the_documented_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("j.jsonl");
    let journal = Journal::create(&path, FsyncPolicy::CommitPoints).expect("create");
    journal
        .append(&serde_json::json!({"kind": "merged", "task": "api\nx"}))
        .expect("append");
    let text = std::fs::read_to_string(&path).expect("read");
    let ts = text
        .split("\"ts_ms\":")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .expect("ts");
    let unsealed = format!(
        "{{\"v\":1,\"seq\":1,\"ts_ms\":{ts},\"event\":{{\"kind\":\"merged\",\"task\":\"api\\nx\"}}}}"
    );
    let crc = crc32fast::hash(unsealed.as_bytes());
    assert_eq!(
        text,
        format!(
            "{{\"v\":1,\"seq\":1,\"ts_ms\":{ts},\"event\":{{\"kind\":\"merged\",\"task\":\"api\\nx\"}},\"crc\":{crc}}}\n"
        )
    );
}

#[test]
fn create_refuses_an_existing_journal_and_names_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("j.jsonl");
    std::fs::write(&path, "").expect("write");
    let err = Journal::<u32>::create(&path, FsyncPolicy::CommitPoints).expect_err("exists");
    let message = err.to_string();
    assert!(message.starts_with("cannot create journal "), "{message}");
    assert!(message.contains("j.jsonl"), "{message}");
    assert_eq!(err.path(), path);
}

#[test]
fn open_append_continues_numbering_and_cuts_a_torn_tail() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("j.jsonl");
    {
        let journal = Journal::create(&path, FsyncPolicy::CommitPoints).expect("create");
        for n in 0..3u32 {
            journal.append(&n).expect("append");
        }
    }
    let mut text = std::fs::read_to_string(&path).expect("read");
    text.push_str("{\"v\":1,\"seq\":4,\"ts");
    std::fs::write(&path, &text).expect("tear");
    let journal = Journal::open_append(&path, FsyncPolicy::EveryEvent).expect("reopen");
    assert_eq!(journal.next_seq(), 4);
    assert_eq!(journal.append(&99u32).expect("append"), 4);
    let recovered = read_journal::<u32>(&path).expect("read");
    assert_eq!(recovered.torn_tail, None);
    assert!(recovered.corrupt.is_empty());
    let events: Vec<(u64, u32)> = recovered.records.iter().map(|r| (r.seq, r.event)).collect();
    assert_eq!(events, [(1, 0), (2, 1), (3, 2), (4, 99)]);
}

#[test]
fn open_append_creates_a_missing_journal() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("new.jsonl");
    let journal = Journal::open_append(&path, FsyncPolicy::CommitPoints).expect("open");
    assert_eq!(journal.append(&1u8).expect("append"), 1);
}

#[test]
fn an_unserializable_event_writes_nothing_and_uses_no_number() {
    use std::collections::HashMap;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("j.jsonl");
    let journal = Journal::create(&path, FsyncPolicy::CommitPoints).expect("create");
    // JSON object keys must be strings.
    let bad: HashMap<Vec<u8>, u8> = HashMap::from([(vec![1], 1)]);
    let err = journal.append(&bad).expect_err("not serializable");
    assert!(
        matches!(err, JournalError::Serialize { seq: 1, .. }),
        "{err}"
    );
    assert_eq!(journal.append(&HashMap::new()).expect("append"), 1);
    assert_eq!(
        read_journal::<HashMap<String, u8>>(&path)
            .expect("read")
            .records
            .len(),
        1
    );
}

#[test]
fn reading_a_missing_journal_names_it() {
    let err = read_journal::<u32>(Path::new("/nonexistent/forge/j.jsonl")).expect_err("missing");
    assert!(
        err.to_string()
            .starts_with("cannot open journal /nonexistent/forge/j.jsonl: ")
    );
}

#[test]
fn each_policy_syncs_when_it_says() {
    let dir = tempfile::tempdir().expect("temp dir");
    let is_dirty = |journal: &Journal<u32>| journal.writer.lock().dirty;
    let open = |name: &str, policy| {
        Journal::<u32>::create(&dir.path().join(name), policy).expect("create")
    };

    let every = open("every", FsyncPolicy::EveryEvent);
    every.append(&1).expect("append");
    assert!(!is_dirty(&every), "every event is synced");

    let commit = open("commit", FsyncPolicy::CommitPoints);
    commit.append(&1).expect("append");
    assert!(is_dirty(&commit), "plain appends wait for a commit point");
    commit.append_commit_point(&2).expect("commit point");
    assert!(!is_dirty(&commit), "a commit point syncs");
    commit.append(&3).expect("append");
    commit.sync().expect("sync");
    assert!(!is_dirty(&commit), "sync syncs");

    let soon = open("soon", FsyncPolicy::Interval(Duration::ZERO));
    soon.append(&1).expect("append");
    assert!(!is_dirty(&soon), "a zero interval is always due");

    let later = open("later", FsyncPolicy::Interval(Duration::from_secs(3600)));
    later.append(&1).expect("append");
    assert!(is_dirty(&later), "an hour has not passed");
    later.append_commit_point(&2).expect("commit point");
    assert!(!is_dirty(&later), "commit points sync under every policy");
}
