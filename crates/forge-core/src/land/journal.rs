//! What the run directory says was merged: the layers decide which generations exist and
//! which task made each, the journal adds the attempt and the time.

use std::collections::BTreeMap;

use forge_events::read_journal;

use super::{LandError, Merge, run_dir_error};
use crate::engine::RunDir;
use crate::event::Event;

/// The merges that committed something, in generation order, and the run's start time.
///
/// The layers on disk decide which generations exist and, through their labels, which task
/// made each (a commit rolled forward by a resume may have no `task_merged` record); the
/// journal adds the attempt and the time (of `task_merged`, else of `commit_started`, which
/// a resume keeps, so the commit ids come out the same).
pub(super) fn read_merges(dir: &RunDir) -> Result<(Vec<Merge>, u64), LandError> {
    let run_dir = dir.path();
    let recovered = read_journal::<Event>(&dir.journal_path())
        .map_err(|e| run_dir_error(run_dir, e.to_string()))?;
    let started_ms = recovered.records.first().map_or(0, |r| r.ts_ms);
    let last_ms = recovered.records.last().map_or(0, |r| r.ts_ms);
    let mut attempts: BTreeMap<String, u32> = BTreeMap::new();
    // By generation: (task, attempt, time), from `task_merged` and from `commit_started`.
    let mut merged: BTreeMap<u64, (String, u32, u64)> = BTreeMap::new();
    let mut started: BTreeMap<u64, (String, u32, u64)> = BTreeMap::new();
    for record in &recovered.records {
        let at = |task: &String| attempts.get(task).copied().unwrap_or(1);
        match &record.event {
            Event::TaskStarted { task, attempt } => {
                attempts.insert(task.clone(), *attempt);
            }
            Event::CommitStarted { task, generation } => {
                let entry = (task.clone(), at(task), record.ts_ms);
                started.entry(*generation).or_insert(entry);
            }
            Event::TaskMerged {
                task,
                generation,
                paths,
            } if *paths > 0 => {
                let entry = (task.clone(), at(task), record.ts_ms);
                merged.entry(*generation).or_insert(entry);
            }
            _ => {}
        }
    }
    let mut merges = Vec::new();
    for (generation, label) in forge_staging::layer_labels(run_dir)? {
        let info = merged.get(&generation).or_else(|| started.get(&generation));
        let task = match (label, info) {
            (Some(label), _) => label,
            (None, Some((task, _, _))) => task.clone(),
            (None, None) => {
                return Err(run_dir_error(
                    run_dir,
                    format!(
                        "neither the layer nor the journal says which task made generation {generation}"
                    ),
                ));
            }
        };
        let (attempt, ts_ms) = match info {
            Some((t, attempt, ts)) if *t == task => (*attempt, *ts),
            // No record: the time the layer was committed, which stays the same however
            // often the run is resumed (the journal's last record does not).
            _ => (
                attempts.get(&task).copied().unwrap_or(1),
                layer_time(run_dir, generation).unwrap_or(last_ms),
            ),
        };
        merges.push(Merge {
            task,
            attempt,
            generation,
            ts_ms,
        });
    }
    Ok((merges, started_ms))
}

/// When layer `generation` of `run_dir` was committed (its manifest's modification time), in
/// milliseconds since the epoch.
fn layer_time(run_dir: &std::path::Path, generation: u64) -> Option<u64> {
    let manifest = run_dir
        .join("layers")
        .join(generation.to_string())
        .join("manifest.json");
    let modified = std::fs::metadata(manifest).ok()?.modified().ok()?;
    let since = modified.duration_since(std::time::UNIX_EPOCH).ok()?;
    u64::try_from(since.as_millis()).ok()
}
