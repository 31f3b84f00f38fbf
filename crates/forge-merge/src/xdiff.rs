//! The line diff `git merge-file` runs: xdiff's Myers variant, reimplemented.
//!
//! To give the same hunks as git, this follows xdiff's choices step by step: lines that occur
//! nowhere in the other file are set aside before the search (and so are lines with very many
//! matches that sit among them), the common prefix and suffix are trimmed, the middle snake search
//! gives up on optimality past a cost bound, and the resulting groups of changed lines are slid
//! up and down the same way (`xdl_change_compact`, without the indent heuristic, which
//! `merge-file` does not enable). Lines are compared by their interned ids, so equal ids mean
//! byte-identical lines.

mod compact;
mod split;

/// One hunk of a diff from file 1 to file 2, in line indices.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Change {
    /// First changed line in file 1.
    pub(crate) i1: usize,
    /// First changed line in file 2.
    pub(crate) i2: usize,
    /// Number of lines of file 1 replaced.
    pub(crate) chg1: usize,
    /// Number of lines of file 2 inserted instead.
    pub(crate) chg2: usize,
}

/// xdiff stops reporting how often a line occurs past this many matches.
const MAX_EQ_LIMIT: usize = 1024;
/// How far `clean_mmatch` looks around a line with many matches.
const SIMSCAN_WINDOW: usize = 100;
/// Ratio of discardable lines in a run above which a multi-match line is discarded too.
const KPDIS_RUN: usize = 4;

/// xdiff's integer square root approximation.
pub(crate) fn bogosqrt(mut n: usize) -> usize {
    let mut i = 1;
    while n > 0 {
        i <<= 1;
        n >>= 2;
    }
    i
}

/// Per-file state of one diff: which lines changed, and the lines that take part in the search.
pub(crate) struct DiffFile {
    /// `changed[i + 1]` tells whether line `i` is changed; one sentinel slot on each end.
    pub(crate) changed: Vec<bool>,
    /// Original index of each line that takes part in the search.
    pub(crate) rindex: Vec<usize>,
    /// Id of each line that takes part in the search.
    pub(crate) ha: Vec<u32>,
}

impl DiffFile {
    fn new(n: usize) -> Self {
        Self {
            changed: vec![false; n + 2],
            rindex: Vec::new(),
            ha: Vec::new(),
        }
    }
}

/// Diffs two files given as line ids below `n_ids`, as xdiff does; `minimal` is
/// `XDF_NEED_MINIMAL`. Returns the hunks in ascending order.
pub(crate) fn diff(a: &[u32], b: &[u32], n_ids: usize, minimal: bool) -> Vec<Change> {
    let (mut fa, mut fb) = prepare(a, b, n_ids, minimal);
    split::compare(&mut fa, &mut fb, minimal);
    compact::change_compact(a, &mut fa.changed, &fb.changed);
    compact::change_compact(b, &mut fb.changed, &fa.changed);
    build_script(&fa.changed, &fb.changed, a.len(), b.len())
}

/// Trims the common ends and sets aside lines that cannot match (`xdl_optimize_ctxs`).
fn prepare(a: &[u32], b: &[u32], n_ids: usize, minimal: bool) -> (DiffFile, DiffFile) {
    let mut fa = DiffFile::new(a.len());
    let mut fb = DiffFile::new(b.len());

    // xdl_trim_ends.
    let lim = a.len().min(b.len());
    let mut start = 0;
    while start < lim && a[start] == b[start] {
        start += 1;
    }
    let lim = lim - start;
    let mut tail = 0;
    while tail < lim && a[a.len() - 1 - tail] == b[b.len() - 1 - tail] {
        tail += 1;
    }
    let end_a = a.len() - tail; // exclusive
    let end_b = b.len() - tail;

    // How often each id occurs in each whole file.
    let mut count_a = vec![0u32; n_ids];
    let mut count_b = vec![0u32; n_ids];
    for &id in a {
        count_a[id as usize] += 1;
    }
    for &id in b {
        count_b[id as usize] += 1;
    }

    select(a, start, end_a, &count_b, minimal, &mut fa);
    select(b, start, end_b, &count_a, minimal, &mut fb);
    (fa, fb)
}

/// Classifies lines `start..end` of one file by how often they occur in the other one, and keeps
/// for the search those xdiff keeps (`xdl_cleanup_records`).
fn select(
    ids: &[u32],
    start: usize,
    end: usize,
    count_other: &[u32],
    minimal: bool,
    file: &mut DiffFile,
) {
    if start >= end {
        return;
    }
    let mlim = bogosqrt(ids.len()).min(MAX_EQ_LIMIT);
    // 0: no match in the other file, 1: some, 2: many.
    let dis: Vec<u8> = ids[start..end]
        .iter()
        .map(|&id| {
            let nm = count_other[id as usize] as usize;
            if nm == 0 {
                0
            } else if nm >= mlim && !minimal {
                2
            } else {
                1
            }
        })
        .collect();
    file.rindex.reserve(end - start);
    file.ha.reserve(end - start);
    for (k, &d) in dis.iter().enumerate() {
        let keep = d == 1 || (d == 2 && !clean_mmatch(&dis, k));
        let i = start + k;
        if keep {
            file.rindex.push(i);
            file.ha.push(ids[i]);
        } else {
            file.changed[i + 1] = true;
        }
    }
}

/// Whether a line with many matches sits in a run of lines without matches, and so should be
/// discarded too (`xdl_clean_mmatch`). `dis` covers the trimmed range; `i` indexes it.
fn clean_mmatch(dis: &[u8], i: usize) -> bool {
    let s = i.saturating_sub(SIMSCAN_WINDOW);
    let e = (dis.len() - 1).min(i + SIMSCAN_WINDOW);
    let (rdis0, rpdis0) = run_from(dis, (s..i).rev());
    if rdis0 == 0 {
        return false;
    }
    let (rdis1, rpdis1) = run_from(dis, i + 1..=e);
    if rdis1 == 0 {
        return false;
    }
    let rdis = rdis0 + rdis1;
    let rpdis = rpdis0 + rpdis1;
    rpdis * KPDIS_RUN < rpdis + rdis
}

/// Walks `dis` at `ks` up to the first line with some matches: the number of lines without a
/// match, and one more than the number of lines with many.
fn run_from(dis: &[u8], ks: impl Iterator<Item = usize>) -> (usize, usize) {
    let (mut rdis, mut rpdis) = (0, 1);
    for k in ks {
        match dis[k] {
            0 => rdis += 1,
            2 => rpdis += 1,
            _ => break,
        }
    }
    (rdis, rpdis)
}

/// Collects groups of changed lines into hunks (`xdl_build_script`).
fn build_script(changed_a: &[bool], changed_b: &[bool], na: usize, nb: usize) -> Vec<Change> {
    // `changed[i + 1]` is line i; `changed[0]` is the sentinel before line 0.
    let mut script = Vec::new();
    let mut i1 = na as isize;
    let mut i2 = nb as isize;
    let at = |v: &[bool], i: isize| i >= 0 && v[i as usize];
    while i1 >= 0 || i2 >= 0 {
        if at(changed_a, i1) || at(changed_b, i2) {
            let l1 = i1;
            let l2 = i2;
            while at(changed_a, i1) {
                i1 -= 1;
            }
            while at(changed_b, i2) {
                i2 -= 1;
            }
            script.push(Change {
                i1: i1 as usize,
                i2: i2 as usize,
                chg1: (l1 - i1) as usize,
                chg2: (l2 - i2) as usize,
            });
        }
        i1 -= 1;
        i2 -= 1;
    }
    script.reverse();
    script
}

#[cfg(test)]
mod tests;
