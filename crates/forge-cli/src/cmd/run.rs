//! `forge run`: run a plan with one command template as the executor, with live progress
//! (a redrawn status block on a terminal, plain lines otherwise, or JSON lines with `--json`)
//! and a final summary.
//!
//! Exit status: 0 when every task succeeded, 1 when some did not, 2 on bad input.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use forge_core::events::Delivery;
use forge_core::{
    Event, EventBus, Executor, Executors, Plan, ProcessExecutor, RunOptions, RunOutcome,
    TaskOutcome, run_plan,
};

/// Arguments of `forge run`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Tasks run in the current directory: until the engine (staging views, path locks, three-way \
merge) is wired in, every task works directly in the repository.

The --executor template is split into words like a shell does (quotes respected, nothing \
expanded), then {prompt}, {task}, {workdir} and {attempt} are replaced inside each word; a \
value is never re-split or seen by a shell. Every task uses this one command, whatever its \
`executor` field says. The command runs in its own process group; on timeout or Ctrl-C the \
group gets SIGTERM, then SIGKILL 5 s later. Exit code 75 means retryable, 76 rate limited \
(print `forge:retry-after SECONDS`), 126/127 fatal; any other failure is retried if the \
task has retries.

Exit status: 0 when every task succeeded, 1 when some failed, were skipped or cancelled, 2 \
on bad input (unreadable or invalid plan, bad template).")]
pub(crate) struct Args {
    /// The plan file (TOML, JSON or Droidz tasks.json).
    plan: PathBuf,
    /// Command run for each task, e.g. 'droid exec --auto low {prompt}'.
    #[arg(long)]
    executor: String,
    /// Most tasks running at once (default: number of CPUs).
    #[arg(long, short)]
    jobs: Option<usize>,
    /// After a failure, keep running the tasks that do not depend on it.
    #[arg(long)]
    keep_going: bool,
    /// A resource pool tasks can ask for with `resources = {NAME = units}` (repeatable).
    #[arg(long = "pool", value_name = "NAME=N", value_parser = parse_pool)]
    pools: Vec<(String, u32)>,
    /// Print every event as a JSON line on stdout instead of the progress display.
    #[arg(long)]
    json: bool,
}

fn parse_pool(text: &str) -> Result<(String, u32), String> {
    let (name, units) = text
        .split_once('=')
        .ok_or_else(|| format!("pool `{text}` is not NAME=N"))?;
    let units = units
        .parse()
        .map_err(|_| format!("pool `{text}`: `{units}` is not a number"))?;
    Ok((name.to_owned(), units))
}

pub(crate) fn run(args: Args) -> ExitCode {
    let bad_input = |message: String| {
        eprintln!("forge run: {message}");
        ExitCode::from(2)
    };
    let plan = match Plan::load(&args.plan) {
        Ok(plan) => plan,
        Err(err) => return bad_input(err.to_string()),
    };
    let plan = match plan.validate() {
        Ok(plan) => plan,
        Err(err) => {
            return bad_input(format!(
                "{} is invalid:\n  {}",
                args.plan.display(),
                err.to_string().replace('\n', "\n  ")
            ));
        }
    };
    let executor: Arc<dyn Executor> = match ProcessExecutor::from_template(&args.executor) {
        Ok(executor) => Arc::new(executor),
        Err(err) => return bad_input(err.to_string()),
    };
    let mut executors = Executors::default();
    executors.insert(forge_core::DEFAULT_EXECUTOR, executor.clone());
    for task in plan.tasks() {
        executors.insert(task.executor.clone(), executor.clone());
    }
    let workdir = match std::env::current_dir() {
        Ok(dir) => dir,
        Err(err) => return bad_input(format!("cannot read the current directory: {err}")),
    };
    let mut options = RunOptions::default()
        .workdir(workdir)
        .keep_going(args.keep_going);
    if let Some(jobs) = args.jobs {
        options = options.jobs(jobs);
    }
    for (name, units) in args.pools {
        options = options.pool(name, units);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => return bad_input(format!("cannot start the runtime: {err}")),
    };
    let mode = if args.json {
        Mode::Json
    } else if std::io::stdout().is_terminal() {
        Mode::Terminal
    } else {
        Mode::Plain
    };
    runtime.block_on(async move {
        let bus = EventBus::new(1 << 16);
        let subscription = bus.subscribe();
        let cancel = options.cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("forge run: interrupted, stopping every task (Ctrl-C again to quit now)");
                cancel.cancel();
                if tokio::signal::ctrl_c().await.is_ok() {
                    std::process::exit(130);
                }
            }
        });
        let display = tokio::spawn(show(subscription, mode));
        let outcome = run_plan(&plan, &executors, options.bus(bus)).await;
        // Every bus handle is gone now, so the display drains and ends.
        let _ = display.await;
        match outcome {
            Ok(outcome) => {
                summarize(&outcome, mode);
                if outcome.is_success() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(1)
                }
            }
            Err(err) => bad_input(err.to_string()),
        }
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Json,
    Terminal,
    Plain,
}

/// Renders events until the bus closes.
async fn show(mut subscription: forge_core::events::Subscription<Event>, mode: Mode) {
    let mut view = View::new(mode);
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            delivery = subscription.recv() => match delivery {
                Some(Delivery::Event(event)) => view.on_event(&event),
                Some(Delivery::Lagged(n)) => view.permanent(format!("({n} events dropped: display fell behind)")),
                None => break,
            },
            _ = tick.tick() => view.redraw(),
        }
    }
    view.clear();
}

/// The live display: permanent lines for what finished, and on a terminal a status block
/// (counts and each running task's last output line) redrawn in place.
struct View {
    mode: Mode,
    total: usize,
    running: BTreeMap<String, String>,
    succeeded: usize,
    failed: usize,
    skipped: usize,
    cancelled: usize,
    drawn: usize,
    dirty: bool,
    width: usize,
}

impl View {
    fn new(mode: Mode) -> Self {
        let width = std::env::var("COLUMNS")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(100usize)
            .max(20);
        Self {
            mode,
            total: 0,
            running: BTreeMap::new(),
            succeeded: 0,
            failed: 0,
            skipped: 0,
            cancelled: 0,
            drawn: 0,
            dirty: false,
            width,
        }
    }

    fn on_event(&mut self, event: &Event) {
        if self.mode == Mode::Json {
            // A closed stdout (`| head`) must not kill the run.
            let _ = writeln!(std::io::stdout().lock(), "{}", event.to_json());
            return;
        }
        match event {
            Event::RunStarted { tasks, jobs } => {
                self.total = *tasks;
                self.permanent(format!("running {tasks} tasks, at most {jobs} at once"));
            }
            Event::TaskStarted { task, attempt } => {
                self.running.insert(task.clone(), String::new());
                if self.mode == Mode::Plain {
                    self.permanent(format!("start   {task} (attempt {attempt})"));
                }
                self.dirty = true;
            }
            Event::TaskLog { task, line, .. } => {
                if self.mode == Mode::Plain {
                    self.permanent(format!("[{task}] {line}"));
                } else if let Some(last) = self.running.get_mut(task) {
                    last.clone_from(line);
                    self.dirty = true;
                }
            }
            Event::TaskRetrying {
                task,
                attempt,
                delay_ms,
                error,
            } => {
                self.running.remove(task);
                self.permanent(format!(
                    "retry   {task}: attempt {attempt} failed ({error}); next in {delay_ms} ms"
                ));
            }
            Event::ExecutorPaused {
                executor,
                retry_after_ms,
                error,
                ..
            } => {
                self.permanent(format!(
                    "pause   executor `{executor}` rate limited for {retry_after_ms} ms ({error})"
                ));
            }
            Event::TaskSucceeded {
                task, duration_ms, ..
            } => {
                self.running.remove(task);
                self.succeeded += 1;
                self.permanent(format!(
                    "ok      {task} ({:.1}s)",
                    *duration_ms as f64 / 1000.0
                ));
            }
            Event::TaskFailed { task, error, .. } => {
                self.running.remove(task);
                self.failed += 1;
                self.permanent(format!("FAILED  {task}: {error}"));
            }
            Event::TaskSkipped { task, reason } => {
                self.skipped += 1;
                self.permanent(format!("skip    {task}: {reason}"));
            }
            Event::TaskCancelled { task } => {
                self.running.remove(task);
                self.cancelled += 1;
                self.permanent(format!("cancel  {task}"));
            }
            _ => {}
        }
    }

    /// Prints a line above the status block.
    fn permanent(&mut self, line: String) {
        let mut out = std::io::stdout().lock();
        self.erase(&mut out);
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
        self.dirty = true;
    }

    fn erase(&mut self, out: &mut impl Write) {
        if self.drawn > 0 {
            let _ = write!(out, "\x1b[{}F\x1b[J", self.drawn);
            self.drawn = 0;
        }
    }

    fn redraw(&mut self) {
        if self.mode != Mode::Terminal || !self.dirty {
            return;
        }
        self.dirty = false;
        let mut out = std::io::stdout().lock();
        self.erase(&mut out);
        let done = self.succeeded + self.failed + self.skipped + self.cancelled;
        let _ = writeln!(
            out,
            "[{done}/{}] running {} | ok {} | failed {} | skipped {} | cancelled {}",
            self.total,
            self.running.len(),
            self.succeeded,
            self.failed,
            self.skipped,
            self.cancelled
        );
        self.drawn = 1;
        let id_width = self
            .running
            .keys()
            .map(String::len)
            .max()
            .unwrap_or(0)
            .min(30);
        for (task, last) in &self.running {
            let line = format!("  {task:id_width$}  {last}");
            let line: String = line.chars().take(self.width - 1).collect();
            let _ = writeln!(out, "{line}");
            self.drawn += 1;
        }
        let _ = out.flush();
    }

    fn clear(&mut self) {
        let mut out = std::io::stdout().lock();
        self.erase(&mut out);
        let _ = out.flush();
    }
}

fn summarize(outcome: &RunOutcome, mode: Mode) {
    let counts = outcome.counts();
    let mut text = format!(
        "{} tasks in {:.1}s: {} succeeded, {} failed, {} skipped, {} cancelled\n",
        outcome.outcomes().len(),
        outcome.duration().as_secs_f64(),
        counts.succeeded,
        counts.failed,
        counts.skipped,
        counts.cancelled
    );
    for (task, task_outcome) in outcome.iter() {
        if task_outcome.is_success() {
            continue;
        }
        text.push_str(&format!("  {}: {task_outcome}\n", task.id));
        if let TaskOutcome::Failed { error, .. } = task_outcome {
            let tail: Vec<&str> = error.output_tail().lines().rev().take(5).collect();
            for line in tail.into_iter().rev() {
                text.push_str(&format!("      | {line}\n"));
            }
        }
    }
    let _ = if mode == Mode::Json {
        std::io::stderr().lock().write_all(text.as_bytes())
    } else {
        std::io::stdout().lock().write_all(text.as_bytes())
    };
}
