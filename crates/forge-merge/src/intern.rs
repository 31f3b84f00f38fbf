//! Interning lines into dense ids: equal ids mean byte-identical lines.
//!
//! The table is open addressing over 8-byte slots (a 32-bit hash tag and the id), with the line
//! itself kept once per id; a probe compares tags before touching line bytes, so a lookup in a
//! table of a few hundred thousand lines costs about one cache miss.

use std::collections::HashMap;
use std::hash::Hasher;

use crate::lines::Lines;

/// The hash of one line.
#[inline]
fn hash_line(line: &[u8]) -> u64 {
    let mut h = rustc_hash::FxHasher::default();
    h.write_usize(line.len());
    h.write(line);
    h.finish()
}

/// Gives every distinct line an id, from 0 up.
#[derive(Default)]
pub(crate) struct Interner<'a> {
    /// 0: empty; else the hash's high 32 bits, then `id + 1` in the low 32 bits.
    slots: Vec<u64>,
    /// The line of each id.
    lines: Vec<&'a [u8]>,
}

impl<'a> Interner<'a> {
    /// Makes room for `more` new lines without growing while they are added.
    fn reserve(&mut self, more: usize) {
        let want = ((self.lines.len() + more) * 2).next_power_of_two().max(16);
        if want > self.slots.len() {
            self.rebuild(want);
        }
    }

    fn rebuild(&mut self, size: usize) {
        self.slots = vec![0; size];
        let mask = size - 1;
        for (id, line) in self.lines.iter().enumerate() {
            let h = hash_line(line);
            let mut i = h as usize & mask;
            while self.slots[i] != 0 {
                i = (i + 1) & mask;
            }
            self.slots[i] = (h & 0xffff_ffff_0000_0000) | (id as u64 + 1);
        }
    }

    /// The id of `line`, new or existing.
    fn id(&mut self, line: &'a [u8]) -> u32 {
        if (self.lines.len() + 1) * 2 > self.slots.len() {
            self.reserve(self.lines.len().max(16));
        }
        let h = hash_line(line);
        let tag = h & 0xffff_ffff_0000_0000;
        let mask = self.slots.len() - 1;
        let mut i = h as usize & mask;
        loop {
            let slot = self.slots[i];
            if slot == 0 {
                let id = self.lines.len() as u32;
                self.lines.push(line);
                self.slots[i] = tag | (u64::from(id) + 1);
                return id;
            }
            if slot & 0xffff_ffff_0000_0000 == tag {
                let id = (slot as u32) - 1;
                if self.lines[id as usize] == line {
                    return id;
                }
            }
            i = (i + 1) & mask;
        }
    }

    /// The ids of all lines of `lines`.
    pub(crate) fn intern(&mut self, lines: &Lines<'a>) -> Vec<u32> {
        self.reserve(lines.len());
        (0..lines.len()).map(|i| self.id(lines.line(i))).collect()
    }

    /// The ids of the lines of `lines`, a version of `base` (already interned as `base_ids`).
    ///
    /// Most lines of a changed version sit where they were in the base, a little shifted, so
    /// each line is first compared with the base line after the last one matched; only on a
    /// miss is it looked up by hash. The ids are the same either way.
    pub(crate) fn intern_version(
        &mut self,
        lines: &Lines<'a>,
        base: &Lines<'a>,
        base_ids: &[u32],
    ) -> Vec<u32> {
        // Where each base id last occurs in the base, to resynchronise after a hash hit.
        let mut last_pos = vec![u32::MAX; self.lines.len()];
        for (k, &id) in base_ids.iter().enumerate() {
            last_pos[id as usize] = k as u32;
        }
        let mut next_base = 0usize;
        let mut out = Vec::with_capacity(lines.len());
        for i in 0..lines.len() {
            let line = lines.line(i);
            if next_base < base_ids.len() && base.line(next_base) == line {
                out.push(base_ids[next_base]);
                next_base += 1;
                continue;
            }
            let id = self.id(line);
            // Only a base line tells where we are: not a new id (past the table) nor an id
            // first seen in an earlier version (`u32::MAX`).
            if let Some(&pos) = last_pos.get(id as usize)
                && pos != u32::MAX
            {
                next_base = pos as usize + 1;
            }
            out.push(id);
        }
        out
    }

    /// How many distinct lines were seen.
    pub(crate) fn len(&self) -> usize {
        self.lines.len()
    }
}

/// Renumbers a subset of ids densely from 0, so that a diff over a few lines does not need
/// tables as large as the whole files' id space.
pub(crate) fn renumber(a: &[u32], b: &[u32]) -> (Vec<u32>, Vec<u32>, usize) {
    let mut map: HashMap<u32, u32, rustc_hash::FxBuildHasher> = HashMap::default();
    let mut f = |&id: &u32| {
        let next = map.len() as u32;
        *map.entry(id).or_insert(next)
    };
    let ra: Vec<u32> = a.iter().map(&mut f).collect();
    let rb: Vec<u32> = b.iter().map(&mut f).collect();
    (ra, rb, map.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interning_is_by_bytes() {
        let a = Lines::new(b"x\ny\nx\n");
        let b = Lines::new(b"y\nx\nx");
        let mut i = Interner::default();
        let ia = i.intern(&a);
        let ib = i.intern(&b);
        assert_eq!(ia, vec![0, 1, 0]);
        assert_eq!(ib, vec![1, 0, 2]);
        assert_eq!(i.len(), 3);
        let (ra, rb, n) = renumber(&ib[..2], &ia[1..]);
        let c = Lines::new(b"y\nq\nx\n");
        assert_eq!(i.intern_version(&c, &a, &ia), vec![1, 3, 0]);
        assert_eq!((ra, rb, n), (vec![0, 1], vec![0, 1], 2));
    }

    #[test]
    fn many_lines_grow_the_table_and_keep_ids() {
        let text: String = (0..5000).map(|i| format!("{}\n", i % 1234)).collect();
        let lines = Lines::new(text.as_bytes());
        let mut i = Interner::default();
        // Grow from an empty table one line at a time.
        let ids: Vec<u32> = (0..lines.len()).map(|k| i.id(lines.line(k))).collect();
        assert_eq!(i.len(), 1234);
        for (k, &id) in ids.iter().enumerate() {
            assert_eq!(id as usize, k % 1234);
        }
        assert_eq!(i.intern(&lines), ids);
    }
}
