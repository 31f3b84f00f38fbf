//! What `forge status` and `forge resume` say when the run directory is damaged or odd
//! (issue 13): a journal of garbage, damaged records.

use crate::{Sandbox, forge, text};

#[test]
fn trust_09_status_of_a_garbage_journal_exits_2() {
    let sandbox = Sandbox::new();
    let run_dir = std::path::PathBuf::from(sandbox.run_dir());
    std::fs::create_dir_all(&run_dir).expect("mkdir");
    std::fs::write(run_dir.join("journal.jsonl"), "not\na journal\n").expect("write");
    let out = forge(sandbox.path(), &["status", &sandbox.run_dir()]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(stderr.contains("is not a forge journal"), "{stderr}");

    // A file given for the run directory.
    let file = run_dir.join("journal.jsonl");
    let out = forge(sandbox.path(), &["status", &file.display().to_string()]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("not a forge run directory"), "{stderr}");
}
