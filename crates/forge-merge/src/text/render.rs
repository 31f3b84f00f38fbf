//! Writing the merge result with conflict markers (`xdl_fill_merge_buffer`).

use super::regions::{Mode, Region};
use crate::lines::Lines;
use crate::options::{ConflictStyle, Favor, MergeOptions};

/// The three versions' lines.
pub(super) struct Sides<'s, 'a> {
    pub(super) base: &'s Lines<'a>,
    pub(super) ours: &'s Lines<'a>,
    pub(super) theirs: &'s Lines<'a>,
}

/// Appends lines `i..i + count` of `lines`; with `add_nl`, ends them with a newline (CRLF when
/// `needs_cr`) if the last one lacks it.
fn copy(
    out: &mut Vec<u8>,
    lines: &Lines<'_>,
    i: isize,
    count: isize,
    needs_cr: bool,
    add_nl: bool,
) {
    if count < 1 {
        return;
    }
    let span = lines.span(i as usize, count as usize);
    out.extend_from_slice(span);
    if add_nl && span.last() != Some(&b'\n') {
        if needs_cr {
            out.push(b'\r');
        }
        out.push(b'\n');
    }
}

/// A marker line: `size` times `ch`, then a space and the label if there is one.
fn marker(out: &mut Vec<u8>, ch: u8, size: usize, label: Option<&str>, needs_cr: bool) {
    out.extend(std::iter::repeat_n(ch, size));
    if let Some(label) = label {
        out.push(b' ');
        out.extend_from_slice(label.as_bytes());
    }
    if needs_cr {
        out.push(b'\r');
    }
    out.push(b'\n');
}

/// `Some(true)`/`Some(false)` when a line's ending is known, as xdiff's 1/0/-1.
fn eol(lines: &Lines<'_>, i: isize) -> Option<bool> {
    lines.is_eol_crlf(if i > 0 { i as usize - 1 } else { 0 })
}

/// Whether markers and added newlines of this region end in CRLF: when the lines before it on
/// both sides do (or cannot tell), and the base's first line does too (`is_cr_needed`).
fn needs_cr(s: &Sides<'_, '_>, m: &Region) -> bool {
    let mut v = eol(s.ours, m.i1);
    if v != Some(false) {
        v = eol(s.theirs, m.i2);
    }
    if v != Some(false) {
        v = s.base.is_eol_crlf(0);
    }
    v == Some(true)
}

/// Renders the regions into `out`.
pub(super) fn fill(s: &Sides<'_, '_>, regions: &[Region], opts: &MergeOptions, out: &mut Vec<u8>) {
    out.reserve(s.ours.data().len() + 64);
    let size = opts.effective_marker_size();
    let labels = &opts.labels;
    let mut i: isize = 0;
    for m in regions {
        // (take ours, take theirs) for this region.
        let take = match (m.mode, opts.favor) {
            (Mode::Conflict, None) => None,
            (Mode::Conflict, Some(Favor::Ours)) | (Mode::Ours, _) => Some((true, false)),
            (Mode::Conflict, Some(Favor::Theirs)) | (Mode::Theirs, _) => Some((false, true)),
            (Mode::Conflict, Some(Favor::Union)) => Some((true, true)),
            (Mode::Identical, _) => continue,
        };
        match take {
            None => {
                let cr = needs_cr(s, m);
                copy(out, s.ours, i, m.i1 - i, false, false);
                marker(out, b'<', size, labels.ours.as_deref(), cr);
                copy(out, s.ours, m.i1, m.chg1, cr, true);
                if opts.style != ConflictStyle::Merge {
                    marker(out, b'|', size, labels.base.as_deref(), cr);
                    copy(out, s.base, m.i0, m.chg0, cr, true);
                }
                marker(out, b'=', size, None, cr);
                copy(out, s.theirs, m.i2, m.chg2, cr, true);
                marker(out, b'>', size, labels.theirs.as_deref(), cr);
            }
            Some((take_ours, take_theirs)) => {
                copy(out, s.ours, i, m.i1 - i, false, false);
                if take_ours {
                    let cr = needs_cr(s, m);
                    copy(out, s.ours, m.i1, m.chg1, cr, take_theirs);
                }
                if take_theirs {
                    copy(out, s.theirs, m.i2, m.chg2, false, false);
                }
            }
        }
        i = m.i1 + m.chg1;
    }
    copy(out, s.ours, i, s.ours.len() as isize - i, false, false);
}
