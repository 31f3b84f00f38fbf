//! Differential property test: random edit scripts on generated text and on this repository's
//! files, merged by forge and by `git merge-file`; the exit status (conflict count) and the
//! output bytes must be equal in every style, clean or not.
//!
//! Cases: 160 by default (git is spawned three or four times per case); `FORGE_SOAK=1` runs
//! 3000.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use proptest::prelude::*;

use forge_merge::{ConflictStyle, Favor, Labels, MergeOptions, merge};

use crate::git;

/// One edit to a list of lines; positions are taken modulo the length.
#[derive(Clone, Debug)]
enum Op {
    Insert {
        at: usize,
        n: usize,
        seed: u32,
    },
    Delete {
        at: usize,
        n: usize,
    },
    Replace {
        at: usize,
        seed: u32,
    },
    Duplicate {
        from: usize,
        n: usize,
        to: usize,
    },
    Move {
        from: usize,
        n: usize,
        to: usize,
    },
    /// Toggles a CR at the end of one line.
    CrLf {
        at: usize,
    },
}

/// Where the base text comes from.
#[derive(Clone, Debug)]
enum Source {
    /// `n` lines drawn from a vocabulary of `vocab` lines (small vocabularies repeat lines a lot,
    /// which exercises xdiff's handling of lines with many matches).
    Generated { n: usize, vocab: u32, seed: u32 },
    /// A file of this repository (index into a sorted list).
    Repo(usize),
}

#[derive(Clone, Debug)]
struct Case {
    source: Source,
    ours: Vec<Op>,
    theirs: Vec<Op>,
    crlf: bool,
    final_newline: [bool; 3],
    favor: Option<Favor>,
}

fn op() -> impl Strategy<Value = Op> {
    let pos = 0usize..4096;
    prop_oneof![
        (pos.clone(), 1usize..4, any::<u32>()).prop_map(|(at, n, seed)| Op::Insert { at, n, seed }),
        (pos.clone(), 1usize..5).prop_map(|(at, n)| Op::Delete { at, n }),
        (pos.clone(), any::<u32>()).prop_map(|(at, seed)| Op::Replace { at, seed }),
        (pos.clone(), 1usize..5, pos.clone()).prop_map(|(from, n, to)| Op::Duplicate {
            from,
            n,
            to
        }),
        (pos.clone(), 1usize..5, pos.clone()).prop_map(|(from, n, to)| Op::Move { from, n, to }),
        pos.prop_map(|at| Op::CrLf { at }),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    let source = prop_oneof![
        (
            0usize..120,
            prop_oneof![Just(3u32), Just(10), Just(60), Just(1000)],
            any::<u32>()
        )
            .prop_map(|(n, vocab, seed)| Source::Generated { n, vocab, seed }),
        (0usize..10_000).prop_map(Source::Repo),
    ];
    let favor = prop_oneof![
        3 => Just(None),
        1 => Just(Some(Favor::Ours)),
        1 => Just(Some(Favor::Theirs)),
        1 => Just(Some(Favor::Union)),
    ];
    (
        source,
        prop::collection::vec(op(), 0..8),
        prop::collection::vec(op(), 0..8),
        prop::bool::weighted(0.15),
        [
            prop::bool::weighted(0.85),
            prop::bool::weighted(0.85),
            prop::bool::weighted(0.85),
        ],
        favor,
    )
        .prop_map(|(source, ours, theirs, crlf, final_newline, favor)| Case {
            source,
            ours,
            theirs,
            crlf,
            final_newline,
            favor,
        })
}

/// Text files of this repository, sorted, read once.
fn repo_files() -> &'static [Vec<u8>] {
    static FILES: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    FILES.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut paths = Vec::new();
        collect(&root.join("crates"), &mut paths);
        paths.sort();
        let files: Vec<Vec<u8>> = paths
            .iter()
            .filter_map(|p| std::fs::read(p).ok())
            .filter(|d| !d.contains(&0) && d.len() < 200_000)
            .collect();
        assert!(
            !files.is_empty(),
            "no repository files found under {}",
            root.display()
        );
        files
    })
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect(&p, out);
        } else if p
            .extension()
            .is_some_and(|x| x == "rs" || x == "toml" || x == "md")
        {
            out.push(p);
        }
    }
}

/// A tiny deterministic generator for line contents.
fn mix(seed: u32, i: usize) -> u32 {
    let mut x = seed ^ (i as u32).wrapping_mul(0x9e37_79b9);
    x ^= x >> 16;
    x = x.wrapping_mul(0x85eb_ca6b);
    x ^= x >> 13;
    x
}

fn base_lines(source: &Source) -> Vec<Vec<u8>> {
    match *source {
        Source::Generated { n, vocab, seed } => (0..n)
            .map(|i| match mix(seed, i) % vocab {
                0 => b"}".to_vec(),
                1 => Vec::new(),
                k => format!("line {k}").into_bytes(),
            })
            .collect(),
        Source::Repo(k) => {
            let files = repo_files();
            let data = &files[k % files.len()];
            data.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect()
        }
    }
}

fn apply(lines: &[Vec<u8>], ops: &[Op]) -> Vec<Vec<u8>> {
    let mut v = lines.to_vec();
    for op in ops {
        let len = v.len();
        match *op {
            Op::Insert { at, n, seed } => {
                let at = at % (len + 1);
                let new: Vec<Vec<u8>> = (0..n)
                    .map(|i| format!("new {}", mix(seed, i) % 7).into_bytes())
                    .collect();
                v.splice(at..at, new);
            }
            Op::Delete { at, n } if len > 0 => {
                let at = at % len;
                v.drain(at..(at + n).min(len));
            }
            Op::Replace { at, seed } if len > 0 => {
                v[at % len] = format!("changed {}", seed % 5).into_bytes();
            }
            Op::Duplicate { from, n, to } if len > 0 => {
                let from = from % len;
                let block: Vec<Vec<u8>> = v[from..(from + n).min(len)].to_vec();
                let to = to % (len + 1);
                v.splice(to..to, block);
            }
            Op::Move { from, n, to } if len > 0 => {
                let from = from % len;
                let block: Vec<Vec<u8>> = v.drain(from..(from + n).min(len)).collect();
                let to = to % (v.len() + 1);
                v.splice(to..to, block);
            }
            Op::CrLf { at } if len > 0 => {
                let line = &mut v[at % len];
                if line.last() == Some(&b'\r') {
                    line.pop();
                } else {
                    line.push(b'\r');
                }
            }
            _ => {}
        }
    }
    v
}

fn render(lines: &[Vec<u8>], crlf: bool, final_newline: bool) -> Vec<u8> {
    let eol: &[u8] = if crlf { b"\r\n" } else { b"\n" };
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        out.extend_from_slice(l);
        if i + 1 < lines.len() || final_newline {
            out.extend_from_slice(eol);
        }
    }
    out
}

fn opts(style: ConflictStyle, favor: Option<Favor>) -> MergeOptions {
    MergeOptions {
        style,
        favor,
        labels: Labels {
            ours: Some("ours".into()),
            base: Some("base".into()),
            theirs: Some("theirs".into()),
        },
        ..MergeOptions::default()
    }
}

fn git_args(style: ConflictStyle, favor: Option<Favor>) -> Vec<&'static str> {
    let mut args = Vec::new();
    match style {
        ConflictStyle::Merge => {}
        ConflictStyle::Diff3 => args.push("--diff3"),
        ConflictStyle::Zdiff3 => args.push("--zdiff3"),
    }
    match favor {
        None => {}
        Some(Favor::Ours) => args.push("--ours"),
        Some(Favor::Theirs) => args.push("--theirs"),
        Some(Favor::Union) => args.push("--union"),
    }
    args
}

/// Merges one case in one style with forge and git and compares verdict and bytes.
fn compare(
    dir: &Path,
    base: &[u8],
    ours: &[u8],
    theirs: &[u8],
    style: ConflictStyle,
    favor: Option<Favor>,
) -> Result<(), TestCaseError> {
    let m = merge(base, ours, theirs, &opts(style, favor));
    let g = git::merge_file(dir, base, ours, theirs, &git_args(style, favor));
    let got = m.render();
    prop_assert_eq!(
        m.conflict_count().min(127) as i32,
        g.status,
        "verdict differs in {:?}/{:?}",
        style,
        favor
    );
    prop_assert!(
        got == g.stdout,
        "output differs in {:?}/{:?} ({} conflicts)\nforge:\n{}\ngit:\n{}",
        style,
        favor,
        g.status,
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(&g.stdout)
    );
    Ok(())
}

fn cases() -> u32 {
    if std::env::var_os("FORGE_SOAK").is_some() {
        3000
    } else {
        160
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn agrees_with_git_merge_file(c in case()) {
        let dir = tempfile::tempdir().expect("temp dir");
        let base_l = base_lines(&c.source);
        let ours_l = apply(&base_l, &c.ours);
        let theirs_l = apply(&base_l, &c.theirs);
        let base = render(&base_l, c.crlf, c.final_newline[0]);
        let ours = render(&ours_l, c.crlf, c.final_newline[1]);
        let theirs = render(&theirs_l, c.crlf, c.final_newline[2]);
        for style in [ConflictStyle::Merge, ConflictStyle::Diff3, ConflictStyle::Zdiff3] {
            compare(dir.path(), &base, &ours, &theirs, style, None)?;
        }
        if c.favor.is_some() {
            compare(dir.path(), &base, &ours, &theirs, ConflictStyle::Merge, c.favor)?;
        }
    }
}

/// Larger files with many scattered edits, where xdiff's cost heuristics kick in.
#[test]
fn agrees_with_git_on_large_heavily_edited_files() {
    let dir = tempfile::tempdir().expect("temp dir");
    let rounds = if std::env::var_os("FORGE_SOAK").is_some() {
        60
    } else {
        6
    };
    for round in 0..rounds {
        let base_l = base_lines(&Source::Generated {
            n: 3000,
            vocab: 40 + round * 7,
            seed: round,
        });
        let edits = |salt: u32| -> Vec<Op> {
            (0..300)
                .map(|i| {
                    let r = mix(salt ^ round, i) as usize;
                    match r % 3 {
                        0 => Op::Insert {
                            at: r / 3,
                            n: 1 + r % 3,
                            seed: r as u32,
                        },
                        1 => Op::Delete {
                            at: r / 3,
                            n: 1 + r % 4,
                        },
                        _ => Op::Replace {
                            at: r / 3,
                            seed: r as u32,
                        },
                    }
                })
                .collect()
        };
        let ours = render(&apply(&base_l, &edits(1)), false, true);
        let theirs = render(&apply(&base_l, &edits(2)), false, true);
        let base = render(&base_l, false, true);
        for style in [ConflictStyle::Merge, ConflictStyle::Diff3] {
            compare(dir.path(), &base, &ours, &theirs, style, None).expect("agrees with git");
        }
    }
}

/// A byte-level splice: at `at` (modulo length) remove `del` bytes and insert `ins`.
type Splice = (usize, usize, Vec<u8>);

fn bytes_from(alphabet: &'static [u8], max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop::sample::select(alphabet), 0..max)
}

fn splice(data: &[u8], edits: &[Splice]) -> Vec<u8> {
    let mut v = data.to_vec();
    for (at, del, ins) in edits {
        let at = at % (v.len() + 1);
        let end = (at + del).min(v.len());
        v.splice(at..end, ins.iter().copied());
    }
    v
}

/// Lines made of few distinct bytes, with lone CRs, blank lines and missing final newlines:
/// the corners of line splitting, CRLF marker detection and the no-alnum rule.
const ALPHABET: &[u8] = b"ab1}\n\n\n\r ";

proptest! {
    #![proptest_config(ProptestConfig { cases: cases() / 2, ..ProptestConfig::default() })]

    #[test]
    fn agrees_with_git_on_arbitrary_bytes(
        base in bytes_from(ALPHABET, 80),
        ours_edits in prop::collection::vec((0usize..100, 0usize..6, bytes_from(ALPHABET, 8)), 0..4),
        theirs_edits in prop::collection::vec((0usize..100, 0usize..6, bytes_from(ALPHABET, 8)), 0..4),
    ) {
        let dir = tempfile::tempdir().expect("temp dir");
        let ours = splice(&base, &ours_edits);
        let theirs = splice(&base, &theirs_edits);
        for style in [ConflictStyle::Merge, ConflictStyle::Diff3, ConflictStyle::Zdiff3] {
            compare(dir.path(), &base, &ours, &theirs, style, None)?;
        }
        compare(dir.path(), &base, &ours, &theirs, ConflictStyle::Merge, Some(Favor::Union))?;
    }
}
