//! Publish crash-safety: an interrupted publish leaves its record, and the next publish
//! (from a re-opened run directory) finishes the job.

use std::fs;

use crate::{Backend, Entry, LayerChange, Staging, StagingOptions};

fn file(s: &str) -> Option<Entry> {
    Some(Entry::File {
        data: s.as_bytes().to_vec(),
        executable: false,
    })
}

#[test]
fn crash_midway_then_resume_finishes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = tmp.path().join("repo");
    let run = tmp.path().join("run");
    fs::create_dir_all(repo.join("dir/sub")).expect("mkdir");
    fs::write(repo.join("keep"), "keep").expect("write");
    fs::write(repo.join("dir/sub/old"), "old").expect("write");
    for i in 0..5 {
        fs::write(repo.join(format!("f{i}")), format!("base {i}")).expect("write");
    }
    let opts = StagingOptions::with_backend(Some(Backend::Copy));
    let staging = Staging::open(&repo, &run, opts.clone()).expect("open");
    let mut changes: Vec<LayerChange> = (0..5)
        .map(|i| LayerChange {
            path: format!("f{i}"),
            entry: file(&format!("new {i}")),
        })
        .collect();
    changes.push(LayerChange {
        path: "dir".into(),
        entry: None,
    });
    staging.commit(&changes).expect("commit 1");
    staging
        .commit(&[
            LayerChange {
                path: "dir".into(),
                entry: Some(Entry::Dir),
            },
            LayerChange {
                path: "dir/x".into(),
                entry: file("x"),
            },
        ])
        .expect("commit 2");

    let err = staging
        .publish_crashing_after(3)
        .expect_err("simulated crash");
    assert!(err.to_string().contains("simulated crash"), "{err}");
    // Half done: some files new, some old, none half-written.
    let contents: Vec<String> = (0..5)
        .map(|i| fs::read_to_string(repo.join(format!("f{i}"))).expect("read"))
        .collect();
    assert!(
        contents.iter().any(|c| c.starts_with("new"))
            && contents.iter().any(|c| c.starts_with("base"))
    );
    // Generations at or above the target still read correctly from the mixed repository.
    assert_eq!(staging.read(2, "f4").expect("read"), file("new 4"));
    assert_eq!(staging.read(2, "dir/sub/old").expect("read"), None);
    assert!(
        staging.read(0, "f4").is_err(),
        "generation 0 is gone once publishing started"
    );
    drop(staging);

    let staging = Staging::open(&repo, &run, opts).expect("reopen");
    assert_eq!(staging.oldest(), 2);
    let report = staging.publish().expect("resume publish");
    assert!(report.resumed);
    assert_eq!(report.generation, 2);
    for i in 0..5 {
        assert_eq!(
            fs::read_to_string(repo.join(format!("f{i}"))).expect("read"),
            format!("new {i}")
        );
    }
    assert_eq!(fs::read_to_string(repo.join("keep")).expect("read"), "keep");
    assert!(!repo.join("dir/sub").exists());
    assert_eq!(fs::read_to_string(repo.join("dir/x")).expect("read"), "x");
    let leftovers: Vec<_> = fs::read_dir(&repo)
        .expect("read dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains("forge-publish"))
        .collect();
    assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
    // Publishing again is a no-op.
    let again = staging.publish().expect("publish again");
    assert_eq!((again.written, again.removed, again.resumed), (0, 0, false));
}

#[test]
fn publish_refuses_while_views_exist() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = tmp.path().join("repo");
    fs::create_dir_all(&repo).expect("mkdir");
    let staging = Staging::open(
        &repo,
        &tmp.path().join("run"),
        StagingOptions::with_backend(Some(Backend::Copy)),
    )
    .expect("open");
    let view = staging.create_view(0, "v").expect("view");
    let err = staging.publish().expect_err("view alive");
    assert!(
        matches!(err, crate::StagingError::ViewsLive { n_views: 1, .. }),
        "{err}"
    );
    view.discard().expect("discard");
    let _ = staging.publish().expect("publish after discard");
}
