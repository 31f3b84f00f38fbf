//! `forge merge-file`: the arguments and exit status of `git merge-file`.
//!
//! The options are parsed by hand, git-style (options and files in any order, `--` ends the
//! options, bundled short flags, `-Lname`, `--opt=value`, unambiguous long-option prefixes,
//! `--no-` negations), so that scripts written for `git merge-file` work unchanged. Exit status:
//! the number of conflicts (at most 127), 255 when a file cannot be read or is binary, 129 on a
//! usage error (as git).

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::process::ExitCode;

use forge_core::merge::{ConflictStyle, Favor, Labels, MergeOptions, is_binary, merge};

/// Arguments of `forge merge-file` (parsed by hand in [`main`], git-style).
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    rest: Vec<String>,
}

const USAGE: &str = "usage: forge merge-file [<options>] [-L <name1> [-L <orig> [-L <name2>]]] \
<file1> <orig-file> <file2>

    -p, --stdout          send results to standard output
    --diff3               use a diff3 based merge
    --zdiff3              use a zealous diff3 based merge
    --ours                for conflicts, use our version
    --theirs              for conflicts, use their version
    --union               for conflicts, use a union version
    --diff-algorithm <algorithm>
                          choose a diff algorithm (only myers)
    --marker-size <n>     for conflicts, use this marker size
    -q, --quiet           do not warn about conflicts
    -L <name>             set labels for file1/orig-file/file2
";

/// What the command line asked for.
#[derive(Debug, Default)]
struct Request {
    to_stdout: bool,
    quiet: bool,
    opts: MergeOptions,
    labels: Vec<OsString>,
    files: Vec<OsString>,
}

/// The long options: name, whether it takes a value.
const LONG: &[(&str, bool)] = &[
    ("stdout", false),
    ("object-id", false),
    ("diff3", false),
    ("zdiff3", false),
    ("ours", false),
    ("theirs", false),
    ("union", false),
    ("diff-algorithm", true),
    ("marker-size", true),
    ("quiet", false),
];

/// Runs `forge merge-file` with the arguments after the subcommand word.
pub(crate) fn main(argv: &[OsString]) -> ExitCode {
    let req = match parse(argv) {
        Ok(req) => req,
        Err(msg) => {
            if !msg.is_empty() {
                eprintln!("error: {msg}");
            }
            eprint!("{USAGE}");
            return ExitCode::from(129);
        }
    };
    match run(&req) {
        Ok(conflicts) => ExitCode::from(conflicts.min(127) as u8),
        Err(msg) => {
            if !req.quiet {
                eprintln!("error: {msg}");
            }
            ExitCode::from(255)
        }
    }
}

fn parse(argv: &[OsString]) -> Result<Request, String> {
    let mut req = Request::default();
    let mut args = argv.iter();
    while let Some(arg) = args.next() {
        let Some(s) = arg.to_str() else {
            req.files.push(arg.clone());
            continue;
        };
        if s == "--" {
            req.files.extend(args.by_ref().cloned());
            break;
        }
        if let Some(long) = s.strip_prefix("--") {
            parse_long(&mut req, long, &mut args)?;
        } else if s.len() > 1 && s.starts_with('-') {
            parse_short(&mut req, &s[1..], &mut args)?;
        } else {
            req.files.push(arg.clone());
        }
    }
    if req.files.len() != 3 {
        return Err(String::new());
    }
    Ok(req)
}

fn parse_long<'a>(
    req: &mut Request,
    long: &str,
    args: &mut impl Iterator<Item = &'a OsString>,
) -> Result<(), String> {
    let (name, inline) = match long.split_once('=') {
        Some((n, v)) => (n, Some(v)),
        None => (long, None),
    };
    let (negated, name) = match name.strip_prefix("no-") {
        Some(rest) => (true, rest),
        None => (false, name),
    };
    let exact = LONG.iter().find(|(n, _)| *n == name);
    let candidates: Vec<_> = LONG.iter().filter(|(n, _)| n.starts_with(name)).collect();
    let &(full, takes_value) = match (exact, candidates.as_slice()) {
        (Some(opt), _) => opt,
        (None, [one]) => one,
        (None, []) => return Err(format!("unknown option `{long}'")),
        (None, _) => return Err(format!("ambiguous option: {name}")),
    };
    if negated && full == "diff-algorithm" {
        return Err(format!("unknown option `{long}'"));
    }
    let value = if takes_value && !negated {
        match inline {
            Some(v) => Some(v.to_owned()),
            None => Some(
                args.next()
                    .ok_or_else(|| format!("option `{full}' requires a value"))?
                    .to_string_lossy()
                    .into_owned(),
            ),
        }
    } else {
        if inline.is_some() {
            return Err(format!("option `{full}' takes no value"));
        }
        None
    };
    match (full, negated) {
        ("stdout", n) => req.to_stdout = !n,
        ("quiet", n) => req.quiet = !n,
        ("object-id", false) => return Err("--object-id is not supported by forge".into()),
        ("object-id", true) => {}
        ("diff3", false) => req.opts.style = ConflictStyle::Diff3,
        ("zdiff3", false) => req.opts.style = ConflictStyle::Zdiff3,
        ("diff3" | "zdiff3", true) => req.opts.style = ConflictStyle::Merge,
        ("ours", false) => req.opts.favor = Some(Favor::Ours),
        ("theirs", false) => req.opts.favor = Some(Favor::Theirs),
        ("union", false) => req.opts.favor = Some(Favor::Union),
        ("ours" | "theirs" | "union", true) => req.opts.favor = None,
        ("marker-size", true) => req.opts.marker_size = 0,
        ("marker-size", false) => {
            req.opts.marker_size = parse_marker_size(value.as_deref().unwrap_or_default())?;
        }
        ("diff-algorithm", _) => match value.as_deref() {
            Some("myers" | "default") => {}
            _ => {
                return Err("option diff-algorithm accepts only \"myers\" in forge".to_owned());
            }
        },
        _ => return Err(format!("unknown option `{long}'")),
    }
    Ok(())
}

/// git's `OPT_INTEGER`: an `int`, where 0 or less means the default.
fn parse_marker_size(v: &str) -> Result<usize, String> {
    let n: i32 = v
        .parse()
        .map_err(|_| format!("option `marker-size' expects an integer value, not `{v}'"))?;
    Ok(usize::try_from(n).unwrap_or(0))
}

fn parse_short<'a>(
    req: &mut Request,
    flags: &str,
    args: &mut impl Iterator<Item = &'a OsString>,
) -> Result<(), String> {
    for (k, c) in flags.char_indices() {
        match c {
            'p' => req.to_stdout = true,
            'q' => req.quiet = true,
            'L' => {
                let rest = &flags[k + 1..];
                let label = if rest.is_empty() {
                    args.next()
                        .cloned()
                        .ok_or_else(|| "switch `L' requires a value".to_owned())?
                } else {
                    OsString::from(rest)
                };
                if req.labels.len() >= 3 {
                    return Err("too many labels on the command line".into());
                }
                req.labels.push(label);
                return Ok(());
            }
            _ => return Err(format!("unknown switch `{c}'")),
        }
    }
    Ok(())
}

/// Reads one input, refusing binary content as git does.
fn read_input(path: &OsStr) -> Result<Vec<u8>, String> {
    let shown = path.to_string_lossy();
    let data = std::fs::read(path).map_err(|e| format!("could not read {shown}: {e}"))?;
    if is_binary(&data) {
        return Err(format!("cannot merge binary files: {shown}"));
    }
    Ok(data)
}

/// Merges and writes the result; returns the number of conflicts.
fn run(req: &Request) -> Result<usize, String> {
    let current = read_input(&req.files[0])?;
    let base = read_input(&req.files[1])?;
    let other = read_input(&req.files[2])?;
    let label = |k: usize| {
        Some(
            req.labels
                .get(k)
                .unwrap_or(&req.files[k])
                .to_string_lossy()
                .into_owned(),
        )
    };
    let opts = MergeOptions {
        labels: Labels {
            ours: label(0),
            base: label(1),
            theirs: label(2),
        },
        ..req.opts.clone()
    };
    let merged = merge(&base, &current, &other, &opts);
    let out = merged.render();
    let target = req.files[0].to_string_lossy();
    if req.to_stdout {
        let mut stdout = std::io::stdout().lock();
        stdout
            .write_all(&out)
            .and_then(|()| stdout.flush())
            .map_err(|e| format!("could not write to standard output: {e}"))?;
    } else {
        std::fs::write(&req.files[0], &out)
            .map_err(|e| format!("could not write {target}: {e}"))?;
    }
    Ok(merged.conflict_count())
}
