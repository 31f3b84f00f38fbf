//! Sliding groups of changed lines the way xdiff does (`xdl_change_compact`, no indent
//! heuristic): merge groups that can touch, then align with the other file's changes where
//! possible, else leave the group as low as it goes.

/// A run of changed lines `start..end` (empty when `start == end`).
#[derive(Clone, Copy)]
struct Group {
    start: usize,
    end: usize,
}

/// The file whose groups slide: its line ids and changed flags (`changed[i + 1]` is line `i`).
struct File<'a> {
    ids: &'a [u32],
    changed: &'a mut [bool],
}

impl File<'_> {
    #[inline]
    fn is_changed(&self, i: usize) -> bool {
        self.changed[i + 1]
    }

    fn set(&mut self, i: usize, v: bool) {
        self.changed[i + 1] = v;
    }

    fn next(&self, g: &mut Group) -> bool {
        next_group(self.changed, self.ids.len(), g)
    }

    /// Shifts the group down by one line if the line after it equals its first line.
    fn slide_down(&mut self, g: &mut Group) -> bool {
        if g.end < self.ids.len() && self.ids[g.start] == self.ids[g.end] {
            self.set(g.start, false);
            self.set(g.end, true);
            g.start += 1;
            g.end += 1;
            while self.is_changed(g.end) {
                g.end += 1;
            }
            true
        } else {
            false
        }
    }

    /// Shifts the group up by one line if the line before it equals its last line.
    fn slide_up(&mut self, g: &mut Group) -> bool {
        if g.start > 0 && self.ids[g.start - 1] == self.ids[g.end - 1] {
            g.start -= 1;
            g.end -= 1;
            self.set(g.start, true);
            self.set(g.end, false);
            // `changed[g.start]` is the line before `g.start`.
            while self.changed[g.start] {
                g.start -= 1;
            }
            true
        } else {
            false
        }
    }
}

/// The first group of a file (possibly empty).
fn first_group(changed: &[bool]) -> Group {
    let mut end = 0;
    while changed[end + 1] {
        end += 1;
    }
    Group { start: 0, end }
}

/// Moves to the next group; `false` at the end of the file.
fn next_group(changed: &[bool], nrec: usize, g: &mut Group) -> bool {
    if g.end == nrec {
        return false;
    }
    g.start = g.end + 1;
    g.end = g.start;
    while changed[g.end + 1] {
        g.end += 1;
    }
    true
}

/// Moves to the previous group; `false` at the start of the file.
fn previous_group(changed: &[bool], g: &mut Group) -> bool {
    if g.start == 0 {
        return false;
    }
    g.end = g.start - 1;
    g.start = g.end;
    while changed[g.start] {
        g.start -= 1;
    }
    true
}

/// Slides the changed groups of one file (`ids`, `changed`) against the other file's changes.
pub(super) fn change_compact(ids: &[u32], changed: &mut [bool], other: &[bool]) {
    let other_nrec = other.len() - 2;
    let mut g = first_group(changed);
    let mut go = first_group(other);
    let mut xdf = File { ids, changed };

    loop {
        if g.end != g.start {
            let mut earliest_end;
            // Whether some position of the group lines up with a change of the other file
            // (xdiff keeps that position, `end_matching_other`, but only tests it against -1).
            let mut matches_other;
            loop {
                let groupsize = g.end - g.start;
                matches_other = false;
                while xdf.slide_up(&mut g) {
                    let synced = previous_group(other, &mut go);
                    debug_assert!(synced, "group sync broken sliding up");
                }
                earliest_end = g.end;
                if go.end > go.start {
                    matches_other = true;
                }
                while xdf.slide_down(&mut g) {
                    let synced = next_group(other, other_nrec, &mut go);
                    debug_assert!(synced, "group sync broken sliding down");
                    if go.end > go.start {
                        matches_other = true;
                    }
                }
                if groupsize == g.end - g.start {
                    break;
                }
            }
            if g.end != earliest_end && matches_other {
                while go.end == go.start {
                    // Both cannot fail: the group was aligned there while sliding down.
                    if !xdf.slide_up(&mut g) || !previous_group(other, &mut go) {
                        debug_assert!(false, "group sync broken sliding to match");
                        break;
                    }
                }
            }
        }
        if !xdf.next(&mut g) {
            break;
        }
        let synced = next_group(other, other_nrec, &mut go);
        debug_assert!(synced, "group sync broken moving to next group");
    }
}
