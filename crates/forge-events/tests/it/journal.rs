//! Journal properties: round trip, recovery after truncation at any byte, corrupt lines.

use std::path::Path;

use forge_events::{FsyncPolicy, Journal, TornTail, read_journal};
use proptest::prelude::*;

use crate::TestEvent;

fn event_strategy() -> impl Strategy<Value = TestEvent> {
    // Any string, including newlines, quotes and non-ASCII: a record must stay one line.
    let text = proptest::collection::vec(any::<char>(), 0..10).prop_map(String::from_iter);
    prop_oneof![
        (text.clone(), any::<u32>())
            .prop_map(|(task, attempt)| TestEvent::Started { task, attempt }),
        (
            text.clone(),
            proptest::collection::vec(text.clone(), 0..3),
            any::<u64>()
        )
            .prop_map(|(task, paths, waited_us)| TestEvent::LockWaited {
                task,
                paths,
                waited_us
            }),
        (text.clone(), any::<u64>())
            .prop_map(|(task, generation)| TestEvent::Merged { task, generation }),
        (text.clone(), text).prop_map(|(task, line)| TestEvent::Log { task, line }),
    ]
}

fn policy_strategy() -> impl Strategy<Value = FsyncPolicy> {
    prop_oneof![
        Just(FsyncPolicy::EveryEvent),
        Just(FsyncPolicy::CommitPoints),
        (0u64..3).prop_map(|ms| FsyncPolicy::Interval(std::time::Duration::from_millis(ms))),
    ]
}

/// Writes `events` to a new journal at `path`, every `commit_every`-th one as a commit point.
fn write(path: &Path, policy: FsyncPolicy, commit_every: usize, events: &[TestEvent]) {
    let journal = Journal::create(path, policy).expect("create journal");
    for (i, event) in events.iter().enumerate() {
        let seq = if i % commit_every == commit_every - 1 {
            journal
                .append_commit_point(event)
                .expect("append commit point")
        } else {
            journal.append(event).expect("append")
        };
        assert_eq!(seq, i as u64 + 1);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: crate::cases(24), ..ProptestConfig::default() })]

    #[test]
    fn round_trip(
        events in proptest::collection::vec(event_strategy(), 0..12),
        policy in policy_strategy(),
    ) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("journal.jsonl");
        write(&path, policy, 3, &events);
        let recovered = read_journal::<TestEvent>(&path).expect("read");
        prop_assert_eq!(recovered.torn_tail, None);
        prop_assert!(recovered.corrupt.is_empty());
        let got: Vec<TestEvent> = recovered.records.iter().map(|r| r.event.clone()).collect();
        prop_assert_eq!(got, events.clone());
        let seqs: Vec<u64> = recovered.records.iter().map(|r| r.seq).collect();
        prop_assert_eq!(seqs, (1..=events.len() as u64).collect::<Vec<_>>());
        // The text has exactly one line per event.
        let text = std::fs::read_to_string(&path).expect("utf-8 journal");
        prop_assert_eq!(text.lines().count(), events.len());
    }

    /// Cut the journal at every byte offset: exactly the records whose whole line (newline
    /// included) is before the cut come back, the rest is one torn tail, and reopening
    /// continues the numbering right after them.
    #[test]
    fn truncation_at_every_offset_recovers_exactly_the_complete_records(
        events in proptest::collection::vec(event_strategy(), 1..5),
    ) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("journal.jsonl");
        write(&path, FsyncPolicy::CommitPoints, usize::MAX, &events);
        let full = std::fs::read(&path).expect("read bytes");
        let line_ends: Vec<usize> =
            full.iter().enumerate().filter(|(_, b)| **b == b'\n').map(|(i, _)| i + 1).collect();
        prop_assert_eq!(line_ends.len(), events.len());
        // Every offset of the last record, and a sample of the earlier ones.
        let last_start = line_ends.len().checked_sub(2).map_or(0, |i| line_ends[i]);
        let cuts = (0..full.len()).filter(|cut| *cut >= last_start || cut % 7 == 0);
        for cut in cuts {
            // A new file per cut: rewriting one file would make ext4 flush it on every close.
            let cut_path = dir.path().join(format!("cut{cut}.jsonl"));
            std::fs::write(&cut_path, &full[..cut]).expect("write cut");
            let recovered = read_journal::<TestEvent>(&cut_path).expect("read cut");
            let n_complete = line_ends.iter().filter(|end| **end <= cut).count();
            let got: Vec<TestEvent> = recovered.records.iter().map(|r| r.event.clone()).collect();
            prop_assert_eq!(&got[..], &events[..n_complete], "cut at {}", cut);
            prop_assert!(recovered.corrupt.is_empty(), "cut at {}", cut);
            let complete_len = if n_complete == 0 { 0 } else { line_ends[n_complete - 1] };
            let expected_tail = (cut > complete_len).then(|| TornTail {
                offset: complete_len as u64,
                len: (cut - complete_len) as u64,
            });
            prop_assert_eq!(recovered.torn_tail, expected_tail, "cut at {}", cut);
            // Reopening syncs the cut, which costs milliseconds: check it where the file ends
            // just before the last record, and where only its newline is missing.
            if cut == last_start || cut + 1 == full.len() {
                let journal =
                    Journal::<TestEvent>::open_append(&cut_path, FsyncPolicy::CommitPoints)
                        .expect("reopen");
                prop_assert_eq!(journal.next_seq(), n_complete as u64 + 1);
                let len = std::fs::metadata(&cut_path).expect("stat").len();
                prop_assert_eq!(len, complete_len as u64);
            }
        }
    }
}

#[test]
fn a_corrupt_middle_line_is_reported_with_its_number_and_reading_goes_on() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("journal.jsonl");
    let events: Vec<TestEvent> = (0..5)
        .map(|generation| TestEvent::Merged {
            task: format!("t{generation}"),
            generation,
        })
        .collect();
    write(&path, FsyncPolicy::CommitPoints, usize::MAX, &events);
    let text = std::fs::read_to_string(&path).expect("read");
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    // Line 2: a flipped byte; line 4: the bytes a lost disk block leaves.
    lines[1] = lines[1].replacen("\"seq\"", "\"s\u{1}q\"", 1);
    lines[3] = "\0".repeat(lines[3].len());
    std::fs::write(&path, lines.join("\n") + "\n").expect("corrupt");

    let recovered = read_journal::<TestEvent>(&path).expect("read");
    let seqs: Vec<u64> = recovered.records.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, [1, 3, 5]);
    let bad: Vec<usize> = recovered.corrupt.iter().map(|c| c.line).collect();
    assert_eq!(bad, [2, 4]);
    assert!(recovered.corrupt.iter().all(|c| !c.error.is_empty()));
    assert_eq!(recovered.torn_tail, None);

    // Appending after corruption keeps the corrupt lines and continues after the highest seq.
    let journal = Journal::open_append(&path, FsyncPolicy::EveryEvent).expect("reopen");
    assert_eq!(journal.append(&events[0]).expect("append"), 6);
}

#[test]
fn the_journal_is_shared_by_threads_and_numbers_are_unique() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("journal.jsonl");
    let journal = Journal::create(
        &path,
        FsyncPolicy::Interval(std::time::Duration::from_millis(1)),
    )
    .expect("create");
    let n_threads = 4;
    let per_thread = 500;
    std::thread::scope(|scope| {
        for thread in 0..n_threads {
            let journal = &journal;
            scope.spawn(move || {
                let mut last = 0;
                for generation in 0..per_thread {
                    let event = TestEvent::Merged {
                        task: format!("thread{thread}"),
                        generation,
                    };
                    let seq = journal.append(&event).expect("append");
                    assert!(seq > last, "numbers grow per thread");
                    last = seq;
                }
            });
        }
    });
    let recovered = read_journal::<TestEvent>(&path).expect("read");
    let seqs: Vec<u64> = recovered.records.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, (1..=n_threads * per_thread).collect::<Vec<_>>());
    // Each thread's records are in its own order.
    for thread in 0..n_threads {
        let task = format!("thread{thread}");
        let gens: Vec<u64> = recovered
            .records
            .iter()
            .filter_map(|r| match &r.event {
                TestEvent::Merged {
                    task: t,
                    generation,
                } if *t == task => Some(*generation),
                _ => None,
            })
            .collect();
        assert_eq!(gens, (0..per_thread).collect::<Vec<_>>());
    }
}

/// The environment variable that turns the test below into the writer it kills.
const CHILD_JOURNAL: &str = "FORGE_EVENTS_TEST_CHILD_JOURNAL";

/// A real crash: a child process appends as fast as it can and prints the sequence number of
/// every append that returned; it is killed with SIGKILL mid-stream. Every acknowledged record
/// must be recovered, in order, with at most a torn tail after them.
#[test]
fn a_killed_writer_loses_no_acknowledged_record() {
    use std::io::{BufRead, BufReader, Write};
    use std::process::{Command, Stdio};

    if let Some(path) = std::env::var_os(CHILD_JOURNAL) {
        // The child: append until killed.
        let journal = Journal::create(Path::new(&path), FsyncPolicy::CommitPoints)
            .expect("create journal in child");
        let mut stdout = std::io::stdout().lock();
        for generation in 0.. {
            let event = TestEvent::Merged {
                task: "x".repeat(generation as usize % 300),
                generation,
            };
            let seq = journal.append(&event).expect("append in child");
            writeln!(stdout, "ack {seq}").expect("report to parent");
            stdout.flush().expect("flush to parent");
        }
        return;
    }

    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("journal.jsonl");
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "journal::a_killed_writer_loses_no_acknowledged_record",
            "--nocapture",
        ])
        .env(CHILD_JOURNAL, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the writer");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut acknowledged = 0u64;
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("read from the writer");
        if let Some(seq) = line.strip_prefix("ack ") {
            acknowledged = seq.parse().expect("a sequence number");
            if acknowledged == 3_000 {
                child.kill().expect("SIGKILL the writer");
                break;
            }
        }
    }
    child.wait().expect("reap the writer");
    assert_eq!(acknowledged, 3_000, "the writer died before it was killed");

    let recovered = read_journal::<TestEvent>(&path).expect("read");
    assert!(recovered.corrupt.is_empty(), "{:?}", recovered.corrupt);
    let seqs: Vec<u64> = recovered.records.iter().map(|r| r.seq).collect();
    assert!(
        seqs.len() as u64 >= acknowledged,
        "lost acknowledged records"
    );
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    for (record, generation) in recovered.records.iter().zip(0u64..) {
        let expected = TestEvent::Merged {
            task: "x".repeat(generation as usize % 300),
            generation,
        };
        assert_eq!(record.event, expected);
    }
    let journal =
        Journal::<TestEvent>::open_append(&path, FsyncPolicy::CommitPoints).expect("reopen");
    assert_eq!(journal.next_seq(), seqs.len() as u64 + 1);
}
