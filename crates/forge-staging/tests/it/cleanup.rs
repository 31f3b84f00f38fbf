//! `cleanup` after a simulated crash: views that were never dropped are unmounted and
//! removed, committed layers survive.

use std::fs;

use forge_staging::{Backend, LayerChange, Staging, StagingOptions, cleanup};

use crate::support::{make_repo, overlay_ok};

/// Runs `cleanup` on drop, so a failing test leaves no mount behind.
struct CleanupGuard(std::path::PathBuf);

impl Drop for CleanupGuard {
    fn drop(&mut self) {
        let _ = cleanup(&self.0);
    }
}

fn mounted_below(dir: &std::path::Path) -> usize {
    let dir = fs::canonicalize(dir).expect("canonicalize");
    fs::read_to_string("/proc/self/mountinfo")
        .expect("mountinfo")
        .lines()
        .filter(|l| {
            l.split(' ')
                .nth(4)
                .is_some_and(|m| std::path::Path::new(m).starts_with(&dir))
        })
        .count()
}

#[test]
fn cleanup_removes_leftover_views_and_mounts() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = tmp.path().join("repo");
    make_repo(&repo);
    let run = tmp.path().join("run");
    // Unmounts the leaked views even if an assertion below fails.
    let _guard = CleanupGuard(run.clone());
    let mut backends = vec![Backend::Copy, Backend::Worktree];
    if overlay_ok() {
        backends.push(Backend::Overlay);
    }
    for (i, backend) in backends.iter().enumerate() {
        let staging =
            Staging::open(&repo, &run, StagingOptions::with_backend(Some(*backend))).expect("open");
        staging
            .commit(&[LayerChange {
                path: format!("f{i}"),
                entry: None,
            }])
            .expect("commit");
        let view = staging
            .create_view(staging.head(), &format!("crashed-{backend}"))
            .expect("view");
        fs::write(view.path().join("scratch"), "x").expect("write");
        // Simulate a crash: the view is never torn down.
        std::mem::forget(view);
    }
    fs::create_dir_all(run.join("layers/.tmp-99-1")).expect("half-written layer");
    if overlay_ok() {
        assert_eq!(mounted_below(&run), 1);
    }
    let report = cleanup(&run).expect("cleanup");
    assert_eq!(report.unmounted.len(), usize::from(overlay_ok()));
    assert_eq!(report.removed_views.len(), backends.len());
    assert!(report.removed_temp.iter().any(|p| p.ends_with(".tmp-99-1")));
    assert_eq!(mounted_below(&run), 0);
    assert_eq!(fs::read_dir(run.join("views")).expect("views").count(), 0);
    let worktrees = crate::support::git(&repo, &["worktree", "list", "--porcelain"]);
    assert_eq!(
        worktrees.matches("worktree ").count(),
        1,
        "stale worktrees: {worktrees}"
    );
    let staging = Staging::open(
        &repo,
        &run,
        StagingOptions::with_backend(Some(Backend::Copy)),
    )
    .expect("reopen");
    assert_eq!(staging.head(), backends.len() as u64);
    let _ = staging.publish().expect("publish after cleanup");
    assert!(
        cleanup(&tmp.path().join("missing"))
            .expect("missing run dir")
            .removed_views
            .is_empty()
    );
}
