//! From the two diffs against the base to the list of merge regions (`xdl_do_merge`): clean
//! changes of one side, identical changes, conflicts; then the refinements of each style.

use crate::intern::renumber;
use crate::lines::Lines;
use crate::xdiff::{self, Change};

/// What a region of the result is made of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Both sides changed the same base lines differently.
    Conflict,
    /// Only ours changed here (or both identically): take ours.
    Ours,
    /// Only theirs changed here: take theirs.
    Theirs,
    /// A conflict whose sides turned out identical when refined: nothing to do.
    Identical,
}

/// One region of the merge, in line indices of the base (`i0`), ours (`i1`) and theirs (`i2`).
/// Signed, as in xdiff, because intermediate positions are computed by offsets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Region {
    pub(crate) mode: Mode,
    pub(crate) i0: isize,
    pub(crate) chg0: isize,
    pub(crate) i1: isize,
    pub(crate) chg1: isize,
    pub(crate) i2: isize,
    pub(crate) chg2: isize,
}

/// The three versions, split and interned.
pub(crate) struct Inputs<'s, 'a> {
    pub(crate) ours: &'s Lines<'a>,
    pub(crate) ours_ids: &'s [u32],
    pub(crate) theirs_ids: &'s [u32],
    pub(crate) n_base: usize,
}

/// Appends a region, or extends the last one when they touch on either side
/// (`xdl_append_merge`).
fn append(regions: &mut Vec<Region>, r: Region) {
    if let Some(m) = regions.last_mut()
        && (r.i1 <= m.i1 + m.chg1 || r.i2 <= m.i2 + m.chg2)
    {
        if r.mode != m.mode {
            m.mode = Mode::Conflict;
        }
        m.chg0 = r.i0 + r.chg0 - m.i0;
        m.chg1 = r.i1 + r.chg1 - m.i1;
        m.chg2 = r.i2 + r.chg2 - m.i2;
        return;
    }
    regions.push(r);
}

/// The region of a change only ours made (`x` from the base-to-ours script); the base lines it
/// replaces sit unchanged in theirs at `theirs_at`.
fn ours_only(x: &Change, theirs_at: isize) -> Region {
    Region {
        mode: Mode::Ours,
        i0: x.i1 as isize,
        chg0: x.chg1 as isize,
        i1: x.i2 as isize,
        chg1: x.chg2 as isize,
        i2: theirs_at,
        chg2: x.chg1 as isize,
    }
}

/// The region of a change only theirs made (`x` from the base-to-theirs script); the base lines
/// it replaces sit unchanged in ours at `ours_at`.
fn theirs_only(x: &Change, ours_at: isize) -> Region {
    Region {
        mode: Mode::Theirs,
        i0: x.i1 as isize,
        chg0: x.chg1 as isize,
        i1: ours_at,
        chg1: x.chg1 as isize,
        i2: x.i2 as isize,
        chg2: x.chg2 as isize,
    }
}

/// Walks both scripts in base order and builds the regions.
pub(crate) fn combine(inp: &Inputs<'_, '_>, s1: &[Change], s2: &[Change]) -> Vec<Region> {
    let n_ours = inp.ours_ids.len() as isize;
    let n_theirs = inp.theirs_ids.len() as isize;
    let n_base = inp.n_base as isize;
    let c = |x: &Change| {
        (
            x.i1 as isize,
            x.chg1 as isize,
            x.i2 as isize,
            x.chg2 as isize,
        )
    };
    let mut regions = Vec::with_capacity(s1.len() + s2.len());
    let (mut k1, mut k2) = (0, 0);
    while k1 < s1.len() && k2 < s2.len() {
        let (a_i1, a_chg1, a_i2, a_chg2) = c(&s1[k1]);
        let (b_i1, b_chg1, b_i2, b_chg2) = c(&s2[k2]);
        if a_i1 + a_chg1 < b_i1 {
            append(&mut regions, ours_only(&s1[k1], b_i2 - b_i1 + a_i1));
            k1 += 1;
            continue;
        }
        if b_i1 + b_chg1 < a_i1 {
            append(&mut regions, theirs_only(&s2[k2], a_i2 - a_i1 + b_i1));
            k2 += 1;
            continue;
        }
        let identical = a_i1 == b_i1
            && a_chg1 == b_chg1
            && a_chg2 == b_chg2
            && inp.ours_ids[a_i2 as usize..(a_i2 + a_chg2) as usize]
                == inp.theirs_ids[b_i2 as usize..(b_i2 + b_chg2) as usize];
        if !identical {
            let off = a_i1 - b_i1;
            let ffo = off + a_chg1 - b_chg1;
            let (mut i0, mut i1, mut i2) = (a_i1, a_i2, b_i2);
            if off > 0 {
                i0 -= off;
                i1 -= off;
            } else {
                i2 += off;
            }
            let mut chg0 = a_i1 + a_chg1 - i0;
            let mut chg1 = a_i2 + a_chg2 - i1;
            let mut chg2 = b_i2 + b_chg2 - i2;
            if ffo < 0 {
                chg0 -= ffo;
                chg1 -= ffo;
            } else {
                chg2 += ffo;
            }
            append(
                &mut regions,
                Region {
                    mode: Mode::Conflict,
                    i0,
                    chg0,
                    i1,
                    chg1,
                    i2,
                    chg2,
                },
            );
        }
        let end1 = a_i1 + a_chg1;
        let end2 = b_i1 + b_chg1;
        if end1 >= end2 {
            k2 += 1;
        }
        if end2 >= end1 {
            k1 += 1;
        }
    }
    for x in &s1[k1..] {
        append(
            &mut regions,
            ours_only(x, x.i1 as isize + n_theirs - n_base),
        );
    }
    for x in &s2[k2..] {
        append(
            &mut regions,
            theirs_only(x, x.i1 as isize + n_ours - n_base),
        );
    }
    regions
}

/// Diffs ours against theirs inside every conflict so that only the lines that differ stay in
/// conflict (`xdl_refine_conflicts`).
pub(crate) fn refine(inp: &Inputs<'_, '_>, regions: Vec<Region>) -> Vec<Region> {
    let mut out = Vec::with_capacity(regions.len());
    for m in regions {
        if m.mode != Mode::Conflict || m.chg1 == 0 || m.chg2 == 0 {
            out.push(m);
            continue;
        }
        let a = &inp.ours_ids[m.i1 as usize..(m.i1 + m.chg1) as usize];
        let b = &inp.theirs_ids[m.i2 as usize..(m.i2 + m.chg2) as usize];
        let (ra, rb, n_ids) = renumber(a, b);
        let script = xdiff::diff(&ra, &rb, n_ids, false);
        if script.is_empty() {
            out.push(Region {
                mode: Mode::Identical,
                ..m
            });
            continue;
        }
        for x in script {
            out.push(Region {
                mode: Mode::Conflict,
                i1: x.i1 as isize + m.i1,
                chg1: x.chg1 as isize,
                i2: x.i2 as isize + m.i2,
                chg2: x.chg2 as isize,
                ..m
            });
        }
    }
    out
}

/// Joins conflicts separated by three lines or fewer, or only by lines without letters or
/// digits (`xdl_simplify_non_conflicts` at the `ZEALOUS_ALNUM` level).
pub(crate) fn simplify(inp: &Inputs<'_, '_>, regions: Vec<Region>) -> Vec<Region> {
    let mut out: Vec<Region> = Vec::with_capacity(regions.len());
    for next in regions {
        if let Some(m) = out.last_mut()
            && m.mode == Mode::Conflict
            && next.mode == Mode::Conflict
        {
            let begin = m.i1 + m.chg1;
            let end = next.i1;
            let keep_apart = end - begin > 3 && lines_contain_alnum(inp.ours, begin, end);
            if !keep_apart {
                m.chg1 = next.i1 + next.chg1 - m.i1;
                m.chg2 = next.i2 + next.chg2 - m.i2;
                // Not rendered in this style; kept as the base span for the data.
                let end0 = (m.i0 + m.chg0).max(next.i0 + next.chg0);
                m.chg0 = end0 - m.i0;
                continue;
            }
        }
        out.push(next);
    }
    out
}

/// Whether any of lines `begin..end` holds an ASCII letter or digit.
fn lines_contain_alnum(lines: &Lines<'_>, begin: isize, end: isize) -> bool {
    (begin..end).any(|i| lines.line(i as usize).iter().any(u8::is_ascii_alphanumeric))
}

/// Moves lines common to both sides at the start and end of each conflict out of it
/// (`xdl_refine_zdiff3_conflicts`).
pub(crate) fn trim_zdiff3(inp: &Inputs<'_, '_>, regions: &mut [Region]) {
    let (o, t) = (inp.ours_ids, inp.theirs_ids);
    for m in regions.iter_mut().filter(|m| m.mode == Mode::Conflict) {
        while m.chg1 > 0 && m.chg2 > 0 && o[m.i1 as usize] == t[m.i2 as usize] {
            m.chg1 -= 1;
            m.chg2 -= 1;
            m.i1 += 1;
            m.i2 += 1;
        }
        while m.chg1 > 0
            && m.chg2 > 0
            && o[(m.i1 + m.chg1 - 1) as usize] == t[(m.i2 + m.chg2 - 1) as usize]
        {
            m.chg1 -= 1;
            m.chg2 -= 1;
        }
    }
}
