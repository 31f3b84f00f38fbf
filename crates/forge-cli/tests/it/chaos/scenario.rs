//! The chaos test's cases: the random repository, the plan and its agents' scripts (what each
//! [`Op`] does, and what it changes when its task is merged), the simulated user, and one
//! case run end to end with every invariant checked.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use proptest::prelude::*;
use proptest::sample::select;

use super::Op;
use super::check::{self, Expectation, Journal, Model, UserMark, Want};
use super::world::{self, Finished, Guard, Sig};

/// How long one `forge` process may take before it counts as a hang.
const DEADLINE: Duration = Duration::from_secs(30);
/// Invariant (f): peak memory of a `forge` process, plus the largest file merged on both
/// sides (none of the operations changes a file on both sides).
const MEMORY_KIB: u64 = 200 << 10;
/// The files the simulated user appends to (tasks edit the first two, never the docs).
const USER_FILES: [&str; 6] = [
    "a.txt",
    "b.txt",
    "docs/d0.txt",
    "docs/d1.txt",
    "docs/d2.txt",
    "docs/d3.txt",
];
const LARGE: usize = 5_000_000;
const SPARSE: u64 = 1 << 30;

/// Which `writes` a task declares.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Scope {
    /// None: the task may change anything.
    Undeclared,
    /// Exactly the paths its operations change.
    Exact,
    /// All but one of them (the task is rejected when it changes that one).
    Narrow,
}

/// One task of the plan.
#[derive(Debug, Clone)]
pub(crate) struct TaskCase {
    ops: Vec<Op>,
    /// Bit j set: depends on task j (only j below this task's index count: a DAG).
    deps_mask: u8,
    scope: Scope,
    /// Pauses before and after its operations (an agent that thinks, edits, thinks).
    sleep_ms: (u16, u16),
}

/// Something the simulated user does to the working tree.
#[derive(Debug, Clone, Copy)]
pub(crate) enum UserAct {
    /// Appends a line to `USER_FILES[i % 6]` (creating it when it was deleted).
    Append(u8),
    /// Deletes `docs/d{i % 4}.txt`.
    Delete(u8),
    /// Creates `user-{i}.txt`.
    Create(u8),
}

/// One random case.
#[derive(Debug, Clone)]
pub(crate) struct Case {
    extras: Vec<String>,
    tasks: Vec<TaskCase>,
    jobs: u8,
    keep_going: bool,
    /// Rounds of user actions, each after a delay (ms) from the start.
    user: Option<Vec<(u16, Vec<UserAct>)>>,
    /// A second run starts this many ms after the first.
    second_run: Option<u16>,
    /// A signal to the first run after this many ms.
    signal: Option<(Sig, u16)>,
}

impl Case {
    /// Every operation and condition in the case.
    pub(crate) fn ops(&self) -> BTreeSet<Op> {
        let mut ops: BTreeSet<Op> = self.tasks.iter().flat_map(|t| t.ops.clone()).collect();
        if self.user.is_some() {
            ops.insert(Op::UserEdits);
        }
        if self.second_run.is_some() {
            ops.insert(Op::SecondRun);
        }
        match self.signal {
            Some((Sig::Int, _)) => ops.insert(Op::Sigint),
            Some((Sig::Term, _)) => ops.insert(Op::Sigterm),
            None => false,
        };
        ops
    }
}

/// Cases drawing agent operations and conditions from `ops`.
pub(crate) fn strategy(ops: &[Op]) -> BoxedStrategy<Case> {
    let agent_ops: Vec<Op> = ops
        .iter()
        .copied()
        .filter(|op| !op.is_condition())
        .collect();
    let on = |op| ops.contains(&op);
    let (user_on, second_on, int_on, term_on) = (
        on(Op::UserEdits),
        on(Op::SecondRun),
        on(Op::Sigint),
        on(Op::Sigterm),
    );
    let task = (
        prop::collection::vec(select(agent_ops), 1..=3),
        any::<u8>(),
        0..8u8,
        (0..500u16, 0..700u16),
    )
        .prop_map(|(mut ops, deps_mask, scope, sleep_ms)| TaskCase {
            // An operation at most once per task: scripts are not idempotent (`ln -s`).
            ops: {
                let mut seen = BTreeSet::new();
                ops.retain(|op| seen.insert(*op));
                ops
            },
            deps_mask,
            scope: match scope {
                0..3 => Scope::Undeclared,
                3..7 => Scope::Exact,
                _ => Scope::Narrow,
            },
            sleep_ms,
        });
    let act = prop_oneof![
        3 => any::<u8>().prop_map(UserAct::Append),
        1 => any::<u8>().prop_map(UserAct::Delete),
        1 => any::<u8>().prop_map(UserAct::Create),
    ];
    let user = prop::collection::vec((50..900u16, prop::collection::vec(act, 1..4)), 1..=2);
    (
        prop::collection::vec("[a-z ]{0,30}", 0..4),
        prop::collection::vec(task, 2..=5),
        1..=4u8,
        // Mostly --keep-going, so that one failing task leaves the others to be merged.
        prop::bool::weighted(0.75),
        prop::option::of(user),
        prop::option::of(0..400u16),
        prop::option::of((any::<bool>(), 100..1500u16)),
    )
        .prop_map(
            move |(extras, tasks, jobs, keep_going, user, second_run, signal)| Case {
                extras,
                tasks,
                jobs,
                keep_going,
                user: user.filter(|_| user_on).map(|mut rounds| {
                    rounds.sort_by_key(|r| r.0);
                    rounds
                }),
                second_run: second_run.filter(|_| second_on),
                signal: signal.and_then(|(term, ms)| match (int_on, term_on) {
                    (true, true) => Some((if term { Sig::Term } else { Sig::Int }, ms)),
                    (true, false) => Some((Sig::Int, ms)),
                    (false, true) => Some((Sig::Term, ms)),
                    (false, false) => None,
                }),
            },
        )
        .boxed()
}

/// Where a task's script runs and what it may name.
struct Ctx<'a> {
    id: String,
    /// The task's own line in `a.txt`, `b.txt` and `src/target/m.rs`.
    line: usize,
    repo: &'a Path,
    state: &'a Path,
    outside: &'a Path,
}

impl Op {
    /// The shell lines that perform the operation in the agent's view.
    fn script(self, c: &Ctx<'_>) -> String {
        let (id, k) = (&c.id, c.line);
        let (repo, state, outside) = (c.repo.display(), c.state.display(), c.outside.display());
        let once = |header: &str| {
            let marker = format!("{state}/{id}.{}", self.name());
            format!(
                "if [ ! -e '{marker}' ]; then : > '{marker}'; {header}exit 7{}; fi",
                if self == Op::Exit75Once { 5 } else { 6 }
            )
        };
        match self {
            Op::Edit => format!("sed -i '{k}s/.*/{id} edit/' a.txt b.txt"),
            Op::Create => format!(
                "mkdir -p src/gen/{id} && printf '{id} new\\n' > src/gen/{id}/new.txt && ln -s new.txt src/gen/{id}/alias"
            ),
            Op::EditUnderTarget => format!("sed -i '{k}s/.*/{id} edit/' src/target/m.rs"),
            Op::AbsoluteWrite => format!("printf '{id} escaped\\n' > '{repo}/escape-{id}.txt'"),
            Op::PublishTempName => format!(
                "printf '{id} evil\\n' > .a.txt.forge-publish && printf '{id} evil\\n' > .b.txt.forge-publish"
            ),
            Op::InheritedCwd => format!(
                "if [ -n \"${{INIT_CWD:-}}\" ] && [ \"$INIT_CWD\" != \"$PWD\" ]; then printf '{id} leaked\\n' > \"$INIT_CWD/leak-{id}.txt\" || true; fi"
            ),
            Op::GitDirWrite => format!(
                "mkdir -p .git sub/.git && printf x > .git/forge-chaos-{id} && printf '[core]\\n\\thooksPath = /nonexistent\\n' >> .git/config && printf 'ref: refs/heads/main\\n' > sub/.git/HEAD"
            ),
            Op::RmVendor => "rm -rf vendor".into(),
            Op::SymlinkOut => {
                format!("ln -s /etc/passwd link-{id} && ln -s ../outside/secret.txt rel-{id}")
            }
            Op::HardlinkOut => format!(
                "{{ ln '{outside}/secret.txt' hard-{id} 2>/dev/null || cp '{outside}/secret.txt' hard-{id}; }} && echo {id} >> hard-{id}"
            ),
            Op::Fifo => format!("mkfifo fifo-{id}"),
            Op::Large => format!("yes '{id} large' | head -c {LARGE} > large-{id}.bin"),
            Op::Sparse => format!("truncate -s {SPARSE} sparse-{id}.bin"),
            Op::Chmod => "chmod 755 tool.sh".into(),
            Op::EnvAppend => format!("echo 'AGENT={id}' >> .env"),
            Op::ForkDetach => format!(
                "setsid sleep 60 </dev/null >/dev/null 2>&1 & echo $! >> '{state}/detached.pids'"
            ),
            Op::ForkDetachHoldingOutput => {
                format!("setsid sleep 60 & echo $! >> '{state}/detached.pids'")
            }
            Op::Exit75Once => once(""),
            Op::Exit76Zero => once("echo 'forge:retry-after 0'; "),
            Op::Exit76One => once("echo 'forge:retry-after 1'; "),
            Op::Exit76Garbage => once("echo 'forge:retry-after soon'; "),
            Op::Exit76Huge => once("echo 'forge:retry-after 100000000000000000'; "),
            Op::Exit76Float => once("echo 'forge:retry-after 1e300'; "),
            Op::Exit76NoHeader => once(""),
            Op::Flood => "yes | head -c 500000".into(),
            Op::FloodHuge => "yes | head -c 20000000".into(),
            Op::UserEdits | Op::SecondRun | Op::Sigint | Op::Sigterm => String::new(),
        }
    }

    /// Whether the operation ends the attempt (it goes after every other one).
    fn exits(self) -> bool {
        self.name().starts_with("exit")
    }

    /// What the operation changes in the working tree once its task is merged.
    fn effect(self, c: &Ctx<'_>, model: &mut Model) {
        let id = &c.id;
        let file = |bytes: Vec<u8>| Want::File { bytes, mode: None };
        match self {
            Op::Edit => {
                check::replace_line(model, "a.txt", c.line, &format!("{id} edit"));
                check::replace_line(model, "b.txt", c.line, &format!("{id} edit"));
            }
            Op::Create => {
                model.insert(
                    format!("src/gen/{id}/new.txt"),
                    file(format!("{id} new\n").into()),
                );
                model.insert(format!("src/gen/{id}/alias"), Want::Link("new.txt".into()));
            }
            Op::EditUnderTarget => {
                check::replace_line(model, "src/target/m.rs", c.line, &format!("{id} edit"));
            }
            Op::PublishTempName => {
                for name in [".a.txt.forge-publish", ".b.txt.forge-publish"] {
                    model.insert(name.into(), file(format!("{id} evil\n").into()));
                }
            }
            Op::RmVendor => model.retain(|path, _| !path.starts_with("vendor/")),
            Op::SymlinkOut => {
                model.insert(format!("link-{id}"), Want::Link("/etc/passwd".into()));
                model.insert(
                    format!("rel-{id}"),
                    Want::Link("../outside/secret.txt".into()),
                );
            }
            Op::HardlinkOut => {
                model.insert(format!("hard-{id}"), file(format!("secret\n{id}\n").into()));
            }
            Op::Large => {
                model.insert(format!("large-{id}.bin"), file(large_bytes(id)));
            }
            Op::Sparse => {
                model.insert(format!("sparse-{id}.bin"), Want::Sparse(SPARSE));
            }
            Op::Chmod => {
                if let Some(Want::File { mode, .. }) = model.get_mut("tool.sh") {
                    *mode = Some(0o755);
                }
            }
            Op::EnvAppend => {
                if let Some(Want::Prefix { lines, .. }) = model.get_mut(".env") {
                    lines.push(format!("AGENT={id}"));
                }
            }
            _ => {}
        }
    }

    /// The paths the operation changes (its task's exact `writes`).
    fn writes(self, id: &str) -> Vec<String> {
        let list: &[&str] = match self {
            Op::Edit => &["a.txt", "b.txt"],
            Op::EditUnderTarget => &["src/target/m.rs"],
            Op::PublishTempName => &[".a.txt.forge-publish", ".b.txt.forge-publish"],
            Op::GitDirWrite => &["sub"],
            Op::RmVendor => &["vendor"],
            Op::Chmod => &["tool.sh"],
            Op::EnvAppend => &[".env"],
            _ => &[],
        };
        let own = match self {
            Op::Create => vec![format!("src/gen/{id}")],
            Op::SymlinkOut => vec![format!("link-{id}"), format!("rel-{id}")],
            Op::HardlinkOut => vec![format!("hard-{id}")],
            Op::Fifo => vec![format!("fifo-{id}")],
            Op::Large => vec![format!("large-{id}.bin")],
            Op::Sparse => vec![format!("sparse-{id}.bin")],
            _ => Vec::new(),
        };
        list.iter().map(|s| (*s).to_owned()).chain(own).collect()
    }
}

fn large_bytes(id: &str) -> Vec<u8> {
    let line = format!("{id} large\n");
    let mut bytes = line.repeat(LARGE / line.len() + 1).into_bytes();
    bytes.truncate(LARGE);
    bytes
}

fn lines(prefix: &str) -> String {
    (1..=20).map(|i| format!("{prefix} line {i}\n")).collect()
}

/// Creates the repository (see the module doc of `chaos`) and returns its model.
fn build_repo(case: &Case, repo: &Path) -> Model {
    let mut model = Model::new();
    let mut add = |rel: &str, bytes: Vec<u8>, mode: Option<u32>| {
        world::put(repo, rel, &bytes);
        model.insert(rel.to_owned(), Want::File { bytes, mode });
    };
    add("a.txt", lines("a").into(), None);
    add("b.txt", lines("b").into(), None);
    add("tool.sh", b"#!/bin/sh\necho tool\n".to_vec(), Some(0o644));
    add("src/lib.rs", b"pub fn lib() {}\n".to_vec(), None);
    add("src/target/m.rs", lines("m").into(), None);
    for i in 0..4 {
        add(&format!("docs/d{i}.txt"), format!("doc {i}\n").into(), None);
    }
    for (i, text) in case.extras.iter().enumerate() {
        add(&format!("extra/e{i}.txt"), format!("{text}\n").into(), None);
    }
    add(".gitignore", b".env\n".to_vec(), None);
    world::chmod(repo, "tool.sh", 0o644);
    world::git(repo, &["init", "-q", "-b", "main"]);
    world::git(repo, &["add", "-A"]);
    world::git(repo, &["commit", "-qm", "initial"]);
    // The nested repository, untracked by the outer one, with a commit of its own.
    let nested = repo.join("vendor/lib");
    add("vendor/lib/lib.txt", b"lib\n".to_vec(), None);
    add("vendor/lib/README", b"nested\n".to_vec(), None);
    world::git(&nested, &["init", "-q", "-b", "main"]);
    world::git(&nested, &["add", "-A"]);
    world::git(&nested, &["commit", "-qm", "nested"]);
    world::put(repo, ".env", b"SECRET=1\n");
    world::chmod(repo, ".env", 0o600);
    model.insert(
        ".env".into(),
        Want::Prefix {
            prefix: b"SECRET=1\n".to_vec(),
            lines: Vec::new(),
            mode: 0o600,
        },
    );
    model
}

/// One task as the plan file states it.
struct PlanTask {
    id: String,
    script: String,
    deps: Vec<String>,
    writes: Vec<String>,
    retries: u32,
}

/// The plan file's text for `tasks`.
fn plan_toml(tasks: &[PlanTask]) -> String {
    let quote = |s: &str| serde_json::to_string(s).expect("a string serializes");
    let list = |v: &[String]| v.iter().map(|s| quote(s)).collect::<Vec<_>>().join(", ");
    let mut out = String::new();
    for PlanTask {
        id,
        script,
        deps,
        writes,
        retries,
    } in tasks
    {
        out.push_str(&format!(
            "[[task]]\nid = {}\nprompt = {}\n",
            quote(id),
            quote(script)
        ));
        if !deps.is_empty() {
            out.push_str(&format!("deps = [{}]\n", list(deps)));
        }
        if !writes.is_empty() {
            out.push_str(&format!("writes = [{}]\n", list(writes)));
        }
        if *retries > 0 {
            out.push_str(&format!("retries = {retries}\n"));
        }
        out.push('\n');
    }
    out
}

/// Performs the user's rounds on `repo`; returns the marks of what it did, in order.
fn perform_user(rounds: &[(u16, Vec<UserAct>)], repo: &Path) -> Vec<(UserAct, String)> {
    let start = std::time::Instant::now();
    let mut done = Vec::new();
    for (round, (at, acts)) in rounds.iter().enumerate() {
        let at = Duration::from_millis(u64::from(*at));
        std::thread::sleep(at.saturating_sub(start.elapsed()));
        for (i, act) in acts.iter().enumerate() {
            let line = format!("user {round}.{i}");
            match *act {
                UserAct::Append(f) => {
                    let path = USER_FILES[usize::from(f) % USER_FILES.len()];
                    let mut file = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(repo.join(path))
                        .expect("user appends");
                    file.write_all(format!("{line}\n").as_bytes())
                        .expect("user appends");
                }
                UserAct::Delete(d) => {
                    let _ = std::fs::remove_file(repo.join(format!("docs/d{}.txt", d % 4)));
                }
                UserAct::Create(n) => {
                    world::put(
                        repo,
                        &format!("user-{n}.txt"),
                        format!("{line}\n").as_bytes(),
                    );
                }
            }
            done.push((*act, line));
        }
    }
    done
}

/// The user's actions applied to `model`, and the marks (a) checks.
fn apply_user(done: &[(UserAct, String)], model: &mut Model) -> Vec<UserMark> {
    for (act, line) in done {
        match *act {
            UserAct::Append(f) => {
                let path = USER_FILES[usize::from(f) % USER_FILES.len()];
                let mut bytes = check::bytes_of(model, path);
                bytes.extend_from_slice(format!("{line}\n").as_bytes());
                let mode = match model.get(path) {
                    Some(Want::File { mode, .. }) => *mode,
                    _ => None,
                };
                model.insert(path.into(), Want::File { bytes, mode });
            }
            UserAct::Delete(d) => {
                model.remove(&format!("docs/d{}.txt", d % 4));
            }
            UserAct::Create(n) => {
                let bytes = format!("{line}\n").into_bytes();
                model.insert(format!("user-{n}.txt"), Want::File { bytes, mode: None });
            }
        }
    }
    // Only what survives the user's own later actions is the user's work.
    let mut marks = Vec::new();
    for (act, line) in done {
        let (path, mark) = match *act {
            UserAct::Append(f) => {
                let path = USER_FILES[usize::from(f) % USER_FILES.len()].to_owned();
                let mark = UserMark::Appended {
                    path: path.clone(),
                    line: line.clone(),
                };
                (path, mark)
            }
            UserAct::Create(n) => {
                let path = format!("user-{n}.txt");
                (path.clone(), UserMark::Created { path })
            }
            UserAct::Delete(_) => continue,
        };
        let survives =
            String::from_utf8_lossy(&check::bytes_of(model, &path)).contains(&format!("{line}\n"));
        if survives {
            marks.push(mark);
        }
    }
    marks
}

/// What one case found.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    /// Every violated invariant, labelled (a) to (f).
    pub(crate) violations: Vec<String>,
    /// The tails of the `forge` processes' output.
    pub(crate) output: String,
    tasks: usize,
    merged: usize,
    escapes: usize,
    detached: usize,
    resumed: bool,
    peak_kib: u64,
}

/// Counts over all cases, printed at the end (`--nocapture` shows them).
#[derive(Debug, Default)]
pub(crate) struct Totals {
    cases: usize,
    failed: usize,
    tasks: usize,
    merged: usize,
    escapes: usize,
    detached: usize,
    resumed: usize,
    peak_kib: u64,
}

impl Totals {
    pub(crate) fn add(&mut self, o: &Outcome) {
        self.cases += 1;
        self.failed += usize::from(!o.violations.is_empty());
        self.tasks += o.tasks;
        self.merged += o.merged;
        self.escapes += o.escapes;
        self.detached += o.detached;
        self.resumed += usize::from(o.resumed);
        self.peak_kib = self.peak_kib.max(o.peak_kib);
    }
}

impl fmt::Display for Totals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} cases ({} with violations), {} tasks, {} merged, {} resumed after a signal; \
             tolerated until issue 16: {} absolute-path escapes, {} detached processes killed; \
             peak forge memory {} MB",
            self.cases,
            self.failed,
            self.tasks,
            self.merged,
            self.resumed,
            self.escapes,
            self.detached,
            self.peak_kib >> 10
        )
    }
}

/// The user's `.git` as far as an agent could change it: HEAD, refs, config and file names.
fn git_state(repo: &Path) -> String {
    let config = std::fs::read_to_string(repo.join(".git/config")).unwrap_or_default();
    let mut names = world::names_in(&repo.join(".git"));
    names.sort();
    format!(
        "{}\n{}\n{config}\n{names:?}",
        world::git(repo, &["rev-parse", "HEAD"]),
        world::git(repo, &["for-each-ref"]),
    )
}

/// Runs `case` end to end and checks every invariant.
pub(crate) fn run_case(case: &Case) -> Outcome {
    let guard = Guard::new();
    let root = guard.root();
    let [repo, state, outside, run1, run2] =
        ["repo", "state", "outside", "run1", "run2"].map(|d| root.join(d));
    for dir in [&repo, &state, &outside] {
        std::fs::create_dir_all(dir).expect("mkdir");
    }
    world::put(&outside, "secret.txt", b"secret\n");
    let initial = build_repo(case, &repo);
    let nested_head = world::git(&repo.join("vendor/lib"), &["rev-parse", "HEAD"]);
    let git_before = git_state(&repo);

    let ctx = |i: usize| Ctx {
        id: format!("t{i}"),
        line: 3 * i + 2,
        repo: &repo,
        state: &state,
        outside: &outside,
    };
    let mut plan = Vec::new();
    for (i, task) in case.tasks.iter().enumerate() {
        let c = ctx(i);
        // The exit operations go last, after the second pause.
        let script_of = |exits: bool| -> Vec<String> {
            let ops = task.ops.iter().filter(|op| op.exits() == exits);
            ops.map(|op| op.script(&c)).collect()
        };
        let script = format!(
            "set -e\nsleep 0.{:03}\n{}\nsleep 0.{:03}\n{}\n",
            task.sleep_ms.0,
            script_of(false).join("\n"),
            task.sleep_ms.1,
            script_of(true).join("\n")
        );
        let deps = (0..i)
            .filter(|j| task.deps_mask & (1 << j) != 0)
            .map(|j| format!("t{j}"))
            .collect();
        let mut writes: Vec<String> = task.ops.iter().flat_map(|op| op.writes(&c.id)).collect();
        writes.sort();
        writes.dedup();
        let writes = match task.scope {
            Scope::Undeclared => Vec::new(),
            Scope::Exact => writes,
            Scope::Narrow if writes.len() > 1 => writes[1..].to_vec(),
            Scope::Narrow => vec!["src/none".into()],
        };
        let retries = u32::from(task.ops.contains(&Op::Exit75Once));
        plan.push(PlanTask {
            id: c.id,
            script,
            deps,
            writes,
            retries,
        });
    }
    let plan1 = root.join("p1.toml");
    std::fs::write(&plan1, plan_toml(&plan)).expect("write plan");
    let plan2 = root.join("p2.toml");
    let second = "sleep 0.2; sed -i '18s/.*/s0 edit/' a.txt && mkdir -p second && printf 's0\\n' > second/new.txt";
    std::fs::write(
        &plan2,
        plan_toml(&[PlanTask {
            id: "s0".into(),
            script: second.into(),
            deps: Vec::new(),
            writes: Vec::new(),
            retries: 0,
        }]),
    )
    .expect("write plan");

    let run_args = |plan: &Path, run_dir: &Path| -> Vec<String> {
        let mut args: Vec<String> = [
            "run",
            &plan.display().to_string(),
            "--executor",
            "sh -c {prompt}",
            "--run-dir",
            &run_dir.display().to_string(),
            "-j",
            &case.jobs.to_string(),
        ]
        .map(str::to_owned)
        .to_vec();
        if case.keep_going {
            args.push("--keep-going".into());
        }
        args
    };
    let args1 = run_args(&plan1, &run1);
    let args2 = run_args(&plan2, &run2);
    let signal = case
        .signal
        .map(|(sig, ms)| (sig, Duration::from_millis(u64::from(ms))));

    let (first, after_signal, resumed, second_run, user_done) = std::thread::scope(|s| {
        let user = case
            .user
            .as_ref()
            .map(|rounds| s.spawn(|| perform_user(rounds, &repo)));
        let second_run = case.second_run.map(|ms| {
            let (repo, args2) = (&repo, &args2);
            s.spawn(move || {
                std::thread::sleep(Duration::from_millis(u64::from(ms)));
                world::supervise(repo, args2, None, DEADLINE)
            })
        });
        let first = world::supervise(&repo, &args1, signal, DEADLINE);
        // (d) holds after an interrupted run too, before `resume` cleans anything up.
        let after_signal = first.signalled.then(|| leftovers(root, &[&run1], &state));
        let resumed = first.signalled.then(|| {
            let args = ["resume".to_owned(), run1.display().to_string()];
            world::supervise(&repo, &args, None, DEADLINE)
        });
        let second_run = second_run.map(|h| h.join().expect("second run thread"));
        let user_done = user
            .map(|h| h.join().expect("user thread"))
            .unwrap_or_default();
        (first, after_signal, resumed, second_run, user_done)
    });

    let mut out = Outcome {
        tasks: case.tasks.len(),
        resumed: resumed.is_some(),
        ..Outcome::default()
    };
    let v = &mut out.violations;

    // The model: the user's edits, then the change sets of the merged tasks.
    let mut user_only = initial.clone();
    let marks = apply_user(&user_done, &mut user_only);
    let mut expected = user_only.clone();
    let journal1 = Journal::read(&run1);
    if journal1.published {
        for (i, task) in case.tasks.iter().enumerate() {
            let c = ctx(i);
            if journal1.merged.contains(&c.id) {
                for op in &task.ops {
                    op.effect(&c, &mut expected);
                }
            }
        }
    }
    out.merged = journal1.merged.len();
    let journal2 = second_run.as_ref().map(|_| Journal::read(&run2));
    if let Some(j) = &journal2
        && j.published
        && j.merged.contains("s0")
    {
        check::replace_line(&mut expected, "a.txt", 18, "s0 edit");
        expected.insert(
            "second/new.txt".into(),
            Want::File {
                bytes: b"s0\n".to_vec(),
                mode: None,
            },
        );
    }
    let mut conflicts = journal1.publish_conflicts.clone();
    conflicts.extend(journal2.iter().flat_map(|j| j.publish_conflicts.clone()));
    let escapes: BTreeMap<String, Vec<u8>> = case
        .tasks
        .iter()
        .enumerate()
        .filter(|(_, t)| t.ops.contains(&Op::AbsoluteWrite))
        .map(|(i, _)| {
            (
                format!("escape-t{i}.txt"),
                format!("t{i} escaped\n").into_bytes(),
            )
        })
        .collect();
    let mut run_dirs = vec![run1.as_path()];
    if second_run.is_some() {
        run_dirs.push(run2.as_path());
    }

    // (a), (b)
    let found = world::snapshot(&repo);
    out.escapes = check::compare(
        &Expectation {
            expected: &expected,
            user_only: &user_only,
            marks: &marks,
            conflicts: &conflicts,
            escapes: &escapes,
            run_dirs: &run_dirs,
            repo: &repo,
        },
        &found,
        v,
    );
    if std::fs::read(outside.join("secret.txt")).ok().as_deref() != Some(b"secret\n".as_slice()) {
        v.push("(b) an agent changed outside/secret.txt, a file outside the repository".into());
    }

    // (c)
    let nested = repo.join("vendor/lib");
    if !nested.join(".git").is_dir() {
        v.push("(c) vendor/lib/.git is gone".into());
    } else if git_head(&nested).as_deref() != Some(nested_head.as_str()) {
        v.push(format!(
            "(c) vendor/lib's HEAD is {:?}, was {nested_head}",
            git_head(&nested)
        ));
    }
    match std::fs::symlink_metadata(repo.join(".env")) {
        Ok(meta) => {
            use std::os::unix::fs::PermissionsExt;
            let mode = meta.permissions().mode() & 0o7777;
            if mode != 0o600 {
                v.push(format!("(c) .env has mode {mode:o}, was 600"));
            }
        }
        Err(err) => v.push(format!("(c) .env is gone: {err}")),
    }
    let git_after = git_state(&repo);
    if git_after != git_before {
        v.push(format!(
            "(c) the user's .git changed:\nbefore: {git_before}\nafter: {git_after}"
        ));
    }

    // (d)
    if let Some(left) = after_signal {
        v.extend(
            left.into_iter()
                .map(|l| format!("{l} (after the signal, before resume)")),
        );
    }
    v.extend(leftovers(root, &run_dirs, &state));
    let detached = world::recorded_pids(&state.join("detached.pids"));
    let live_detached: Vec<u32> = detached
        .iter()
        .copied()
        .filter(|p| world::alive(*p))
        .collect();
    // Tolerated until the sandbox issue (issue 16): a forked and detached agent process
    // outlives its task. Counted, then killed.
    out.detached = live_detached.len();
    guard.clean(&live_detached);

    // (e), (f)
    for journal in std::iter::once(&journal1).chain(journal2.as_ref()) {
        v.extend(
            journal
                .panics
                .iter()
                .map(|p| format!("(e) a worker panicked: {p}")),
        );
    }
    let mut runs: Vec<(&str, &Finished)> = vec![("run", &first)];
    if let Some(r) = &resumed {
        runs.push(("resume", r));
    }
    if let Some(r) = &second_run {
        runs.push(("second run", r));
    }
    for (name, finished) in &runs {
        let code = finished.status.and_then(|s| s.code());
        let interrupted = *name == "run" && first.signalled;
        match finished.status {
            None if finished.over_memory => v.push(format!(
                "(f) {name} killed at the hard memory cap after {:?}",
                finished.elapsed
            )),
            None => v.push(format!(
                "(e) {name} hung: killed after {:?}",
                finished.elapsed
            )),
            Some(_) if code == Some(101) => v.push(format!("(e) {name} panicked (exit 101)")),
            Some(status) if !interrupted && !matches!(code, Some(0 | 1)) => {
                v.push(format!("(e) {name} ended with {status}, not exit 0 or 1"));
            }
            Some(_) => {}
        }
        if finished.peak_kib > MEMORY_KIB {
            v.push(format!(
                "(f) {name} peaked at {} MB (bound {} MB)",
                finished.peak_kib >> 10,
                MEMORY_KIB >> 10
            ));
        }
        out.peak_kib = out.peak_kib.max(finished.peak_kib);
        out.output.push_str(&format!(
            "=== {name} ({:?}, {:?}) ===\n{}\n",
            finished.status, finished.elapsed, finished.output
        ));
    }
    drop(guard);
    out
}

/// Invariant (d): mounts below `root`, views left in the run directories, and processes
/// working below `root` other than the recorded fork-and-detach ones (tolerated: issue 16).
fn leftovers(root: &Path, run_dirs: &[&Path], state: &Path) -> Vec<String> {
    let mut v = Vec::new();
    let mounts = world::mounts_under(root);
    if !mounts.is_empty() {
        v.push(format!("(d) mounts left: {mounts:?}"));
    }
    for dir in run_dirs {
        let views = world::names_in(&dir.join("views"));
        if !views.is_empty() {
            v.push(format!(
                "(d) views left in {}: {views:?}",
                dir.join("views").display()
            ));
        }
    }
    let detached = world::recorded_pids(&state.join("detached.pids"));
    let strays: Vec<u32> = world::processes_under(root)
        .into_iter()
        .filter(|p| !detached.contains(p))
        .collect();
    if !strays.is_empty() {
        v.push(format!(
            "(d) agent processes left: {}",
            describe_pids(&strays)
        ));
    }
    v
}

fn git_head(repo: &Path) -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(repo)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn describe_pids(pids: &[u32]) -> String {
    pids.iter()
        .map(|pid| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            format!("{pid} ({})", cmd.trim())
        })
        .collect::<Vec<_>>()
        .join(", ")
}
