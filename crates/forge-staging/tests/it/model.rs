//! Property test: random operation sequences in a view give the change set of a model file
//! system, on every backend; committing that change set reproduces the model; the base is
//! unchanged afterwards.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use forge_staging::{Backend, ChangeKind, Entry, LayerChange, Staging, StagingOptions};
use proptest::prelude::*;

use crate::support::{Setup, make_repo, proptest_config, setups, tree_digest};

/// The model: every path (directories included) and its entry.
pub(crate) type Model = BTreeMap<String, Entry>;

#[derive(Clone, Debug)]
pub(crate) enum Op {
    Write(String, Vec<u8>),
    Append(String, Vec<u8>),
    Truncate(String),
    Delete(String),
    Rename(String, String),
    Mkdir(String),
    Rmdir(String),
    Chmod(String, bool),
    Symlink(String, String),
    FileToDir(String),
}

fn path_strategy() -> impl Strategy<Value = String> {
    // Mostly names the fixture has, so that operations often apply.
    let names = prop::sample::select(vec![
        "a",
        "src",
        "util",
        "x.rs",
        "README.md",
        "lib.rs",
        "new",
        "bin",
    ]);
    prop_oneof![
        2 => prop::collection::vec(names.clone(), 1..=1),
        3 => prop::collection::vec(names.clone(), 2..=2),
        2 => prop::collection::vec(names, 3..=3),
    ]
    .prop_map(|parts| parts.join("/"))
}

pub(crate) fn op_strategy() -> impl Strategy<Value = Op> {
    let data = prop::collection::vec(any::<u8>(), 0..16);
    prop_oneof![
        3 => (path_strategy(), data.clone()).prop_map(|(p, d)| Op::Write(p, d)),
        2 => (path_strategy(), data).prop_map(|(p, d)| Op::Append(p, d)),
        1 => path_strategy().prop_map(Op::Truncate),
        2 => path_strategy().prop_map(Op::Delete),
        2 => (path_strategy(), path_strategy()).prop_map(|(a, b)| Op::Rename(a, b)),
        2 => path_strategy().prop_map(Op::Mkdir),
        1 => path_strategy().prop_map(Op::Rmdir),
        1 => (path_strategy(), any::<bool>()).prop_map(|(p, x)| Op::Chmod(p, x)),
        1 => (path_strategy(), prop::sample::select(vec!["a", "lib.rs", "../x", "nowhere"]))
            .prop_map(|(p, t)| Op::Symlink(p, t.to_owned())),
        1 => path_strategy().prop_map(Op::FileToDir),
    ]
}

fn parent_is_dir(model: &Model, path: &str) -> bool {
    match path.rfind('/') {
        None => true,
        Some(i) => model.get(&path[..i]) == Some(&Entry::Dir),
    }
}

fn remove_subtree(model: &mut Model, path: &str) {
    let prefix = format!("{path}/");
    model.retain(|p, _| p != path && !p.starts_with(&prefix));
}

/// Applies `op` to the model and to the view at `root`, when its preconditions hold in
/// the model (the same checks a careful agent would make); otherwise does nothing.
pub(crate) fn apply(model: &mut Model, root: &Path, op: &Op) {
    let disk = |p: &str| root.join(p);
    match op {
        Op::Write(p, d) => {
            if !parent_is_dir(model, p)
                || model
                    .get(p)
                    .is_some_and(|e| !matches!(e, Entry::File { .. }))
            {
                return;
            }
            let executable = matches!(
                model.get(p),
                Some(Entry::File {
                    executable: true,
                    ..
                })
            );
            // Truncate and rewrite in place, as `echo > f` does.
            fs::write(disk(p), d).expect("write");
            model.insert(
                p.clone(),
                Entry::File {
                    data: d.clone(),
                    executable,
                },
            );
        }
        Op::Append(p, d) => {
            let Some(Entry::File { data, .. }) = model.get_mut(p) else {
                return;
            };
            let mut f = fs::OpenOptions::new()
                .append(true)
                .open(disk(p))
                .expect("open for append");
            f.write_all(d).expect("append");
            data.extend_from_slice(d);
        }
        Op::Truncate(p) => {
            let Some(Entry::File { data, .. }) = model.get_mut(p) else {
                return;
            };
            fs::OpenOptions::new()
                .write(true)
                .truncate(true)
                .open(disk(p))
                .expect("truncate");
            data.clear();
        }
        Op::Delete(p) => match model.get(p) {
            None => {}
            Some(Entry::Dir) => {
                fs::remove_dir_all(disk(p)).expect("rm -r");
                remove_subtree(model, p);
            }
            Some(_) => {
                fs::remove_file(disk(p)).expect("rm");
                model.remove(p);
            }
        },
        Op::Rename(from, to) => {
            if !model.contains_key(from)
                || model.contains_key(to)
                || !parent_is_dir(model, to)
                || to == from
                || to.starts_with(&format!("{from}/"))
            {
                return;
            }
            rename_like_mv(&disk(from), &disk(to));
            let prefix = format!("{from}/");
            let moved: Vec<(String, Entry)> = model
                .iter()
                .filter(|(p, _)| *p == from || p.starts_with(&prefix))
                .map(|(p, e)| (format!("{to}{}", &p[from.len()..]), e.clone()))
                .collect();
            remove_subtree(model, from);
            model.extend(moved);
        }
        Op::Mkdir(p) => {
            if model.contains_key(p) || !parent_is_dir(model, p) {
                return;
            }
            fs::create_dir(disk(p)).expect("mkdir");
            model.insert(p.clone(), Entry::Dir);
        }
        Op::Rmdir(p) => {
            let prefix = format!("{p}/");
            if model.get(p) != Some(&Entry::Dir) || model.keys().any(|k| k.starts_with(&prefix)) {
                return;
            }
            fs::remove_dir(disk(p)).expect("rmdir");
            model.remove(p);
        }
        Op::Chmod(p, x) => {
            let Some(Entry::File { executable, .. }) = model.get_mut(p) else {
                return;
            };
            fs::set_permissions(
                disk(p),
                fs::Permissions::from_mode(if *x { 0o755 } else { 0o644 }),
            )
            .expect("chmod");
            *executable = *x;
        }
        Op::Symlink(p, target) => {
            // `../x` escapes from the top level: collection rejects it, so only place it deeper.
            if model.contains_key(p)
                || !parent_is_dir(model, p)
                || (target.starts_with("..") && !p.contains('/'))
            {
                return;
            }
            std::os::unix::fs::symlink(target, disk(p)).expect("symlink");
            model.insert(
                p.clone(),
                Entry::Symlink {
                    target: target.into(),
                },
            );
        }
        Op::FileToDir(p) => {
            if !matches!(model.get(p), Some(Entry::File { .. })) {
                return;
            }
            fs::remove_file(disk(p)).expect("rm");
            fs::create_dir(disk(p)).expect("mkdir");
            fs::write(disk(p).join("inner"), b"inner").expect("write");
            model.insert(p.clone(), Entry::Dir);
            model.insert(
                format!("{p}/inner"),
                Entry::File {
                    data: b"inner".to_vec(),
                    executable: false,
                },
            );
        }
    }
}

/// The change set the model predicts between `old` and `new`.
fn expected(old: &Model, new: &Model) -> Vec<(String, ChangeKind, Option<Entry>)> {
    let mut paths: Vec<&String> = old.keys().chain(new.keys()).collect();
    paths.sort();
    paths.dedup();
    let mut out = Vec::new();
    for p in paths {
        let kind = match (old.get(p), new.get(p)) {
            (None, None) => None,
            (None, Some(_)) => Some(ChangeKind::Added),
            (Some(_), None) => Some(ChangeKind::Deleted),
            (Some(a), Some(b)) if a.kind() != b.kind() => Some(ChangeKind::TypeChanged),
            (
                Some(Entry::File {
                    data: da,
                    executable: xa,
                }),
                Some(Entry::File {
                    data: db,
                    executable: xb,
                }),
            ) => {
                if da != db {
                    Some(ChangeKind::Modified)
                } else if xa != xb {
                    Some(ChangeKind::ModeChanged)
                } else {
                    None
                }
            }
            (Some(a), Some(b)) => (a != b).then_some(ChangeKind::Modified),
        };
        if let Some(kind) = kind {
            out.push((p.clone(), kind, new.get(p).cloned()));
        }
    }
    out
}

/// Reads generation `g` of `staging` into a model, without ignored paths.
pub(crate) fn model_of(staging: &Staging, g: u64) -> Model {
    staging
        .list(g, "")
        .expect("list")
        .into_iter()
        .filter(|p| !staging.is_ignored(p))
        .map(|p| {
            let e = staging
                .read(g, &p)
                .expect("read")
                .expect("listed path exists");
            (p, e)
        })
        .collect()
}

fn run_case(setup: Setup, repo: &Path, ops: &[Op]) -> Result<(), TestCaseError> {
    let tmp = tempfile::tempdir().expect("tempdir");
    let staging = Staging::open(repo, &tmp.path().join("run"), setup.options()).expect("open");
    // Generation 1 changes the repository a little, so views stack on a layer.
    let g1 = staging
        .commit(&[
            LayerChange {
                path: "docs".into(),
                entry: None,
            },
            LayerChange {
                path: "a".into(),
                entry: Some(Entry::Dir),
            },
            LayerChange {
                path: "a/x.rs".into(),
                entry: Some(Entry::File {
                    data: b"gen1".to_vec(),
                    executable: true,
                }),
            },
            LayerChange {
                path: "README.md".into(),
                entry: Some(Entry::File {
                    data: b"gen1\n".to_vec(),
                    executable: false,
                }),
            },
        ])
        .expect("commit generation 1");
    let base = model_of(&staging, g1);
    let mut model = base.clone();
    let view = staging.create_view(g1, "prop").expect("view");
    for op in ops {
        apply(&mut model, view.path(), op);
    }
    let got = view.collect().expect("collect");
    let got_triples: Vec<(String, ChangeKind, Option<Entry>)> = got
        .changes
        .iter()
        .map(|c| (c.path.clone(), c.kind, c.entry.clone()))
        .collect();
    prop_assert_eq!(&got.rejected, &Vec::new(), "backend {}", setup);
    prop_assert_eq!(got_triples, expected(&base, &model), "backend {}", setup);
    let g2 = staging
        .commit(&got.to_layer_changes())
        .expect("commit the collected changes");
    prop_assert_eq!(
        model_of(&staging, g2),
        model,
        "backend {}: committed generation differs",
        setup
    );
    view.discard().expect("discard");
    staging.wait_for_teardown();
    Ok(())
}

/// `rename(2)`, falling back like `mv` to copying and deleting when the file system
/// refuses with `EXDEV` (an overlay in a user namespace cannot rename a lower directory).
fn rename_like_mv(from: &Path, to: &Path) {
    match fs::rename(from, to) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::XDEV.raw_os_error()) => {
            copy_tree(from, to);
            fs::remove_dir_all(from).expect("rm -r after copying");
        }
        Err(e) => panic!("rename(2) {} -> {}: {e}", from.display(), to.display()),
    }
}

fn copy_tree(from: &Path, to: &Path) {
    let meta = fs::symlink_metadata(from).expect("stat");
    if meta.is_dir() {
        fs::create_dir(to).expect("mkdir");
        for item in fs::read_dir(from).expect("read dir") {
            let item = item.expect("read dir");
            copy_tree(&item.path(), &to.join(item.file_name()));
        }
    } else if meta.file_type().is_symlink() {
        std::os::unix::fs::symlink(fs::read_link(from).expect("readlink"), to).expect("symlink");
    } else {
        fs::copy(from, to).expect("copy");
    }
}

#[test]
fn random_operations_match_the_model_on_every_backend() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = tmp.path().join("repo");
    make_repo(&repo);
    let before = tree_digest(&repo);
    for backend in setups() {
        let config = proptest_config(24, 500);
        proptest!(config, |(ops in prop::collection::vec(op_strategy(), 1..40))| {
            run_case(backend, &repo, &ops)?;
        });
        assert_eq!(
            tree_digest(&repo),
            before,
            "backend {backend} changed the base"
        );
    }
}

/// Reads the non-ignored tree at `root` (the repository after a publish) into a model.
fn model_of_disk(staging: &Staging, root: &Path) -> Model {
    let mut out = Model::new();
    for entry in walkdir::WalkDir::new(root).min_depth(1) {
        let entry = entry.expect("walk");
        let rel = entry
            .path()
            .strip_prefix(root)
            .expect("below root")
            .to_string_lossy()
            .into_owned();
        if staging.is_ignored(&rel) {
            continue;
        }
        let meta = fs::symlink_metadata(entry.path()).expect("stat");
        let e = if meta.is_dir() {
            Entry::Dir
        } else if meta.file_type().is_symlink() {
            Entry::Symlink {
                target: fs::read_link(entry.path()).expect("readlink"),
            }
        } else {
            Entry::File {
                data: fs::read(entry.path()).expect("read"),
                executable: meta.permissions().mode() & 0o111 != 0,
            }
        };
        out.insert(rel, e);
    }
    out
}

#[test]
fn publishing_writes_the_model_into_the_repository() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let fixture = tmp.path().join("fixture");
    make_repo(&fixture);
    let n = std::sync::atomic::AtomicUsize::new(0);
    let config = proptest_config(12, 200);
    proptest!(config, |(ops in prop::collection::vec(op_strategy(), 1..40))| {
        let i = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let case = tmp.path().join(format!("case{i}"));
        fs::create_dir(&case).expect("mkdir");
        let repo = case.join("repo");
        let status = std::process::Command::new("cp").arg("-a").arg(&fixture).arg(&repo).status().expect("cp");
        prop_assert!(status.success());
        let staging = Staging::open(&repo, &case.join("run"), StagingOptions::with_backend(Some(Backend::Copy)))
            .expect("open");
        let base = model_of(&staging, 0);
        let mut model = base.clone();
        let view = staging.create_view(0, "p").expect("view");
        for op in &ops {
            apply(&mut model, view.path(), op);
        }
        let changes = view.collect().expect("collect");
        staging.commit(&changes.to_layer_changes()).expect("commit");
        view.discard().expect("discard");
        let report = staging.publish().expect("publish");
        prop_assert_eq!(report.generation, 1);
        prop_assert_eq!(model_of_disk(&staging, &repo), model);
        fs::remove_dir_all(&case).expect("remove case");
    });
}
