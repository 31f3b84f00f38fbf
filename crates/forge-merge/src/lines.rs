//! Splitting text into lines the way xdiff does, and interning lines into ids.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A text split into lines: a line is its bytes up to and including `\n`; the last line may
/// lack it; `\r` is part of the line.
pub(crate) struct Lines<'a> {
    data: &'a [u8],
    /// Start offset of every line, then `data.len()`.
    starts: Vec<usize>,
}

impl<'a> Lines<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        let mut starts = Vec::with_capacity(data.len() / 32 + 2);
        starts.push(0);
        starts.extend(memchr::memchr_iter(b'\n', data).map(|k| k + 1));
        if data.last().is_some_and(|&b| b != b'\n') {
            starts.push(data.len());
        }
        Self { data, starts }
    }

    /// Number of lines.
    pub(crate) fn len(&self) -> usize {
        self.starts.len() - 1
    }

    /// Line `i`.
    pub(crate) fn line(&self, i: usize) -> &'a [u8] {
        &self.data[self.starts[i]..self.starts[i + 1]]
    }

    /// Lines `i..i + count` as one slice.
    pub(crate) fn span(&self, i: usize, count: usize) -> &'a [u8] {
        &self.data[self.starts[i]..self.starts[i + count]]
    }

    /// Whether line `i` ends in CRLF (for the last line without a newline, the line before it
    /// decides); `None` when it cannot tell (`is_eol_crlf`).
    pub(crate) fn is_eol_crlf(&self, i: usize) -> Option<bool> {
        let ends_crlf = |l: &[u8]| l.len() > 1 && l[l.len() - 2] == b'\r';
        let n = self.len();
        if i + 1 < n {
            return Some(ends_crlf(self.line(i)));
        }
        if n == 0 {
            return None;
        }
        let last = self.line(i);
        if last.last() == Some(&b'\n') {
            return Some(ends_crlf(last));
        }
        if i == 0 {
            return None;
        }
        Some(ends_crlf(self.line(i - 1)))
    }
}

/// A small, fast hasher for line contents (FxHash's mixing, eight bytes at a time).
#[derive(Default, Clone, Copy)]
pub(crate) struct LineHasher {
    hash: u64,
}

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl LineHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for LineHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(c.try_into().expect("chunk of 8 bytes")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut buf = [0u8; 8];
            buf[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(buf));
        }
    }

    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        // The multiply leaves the low bits (the table's bucket index) weak: mix them in from
        // the high half (murmur3's finalizer).
        let mut h = self.hash;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h
    }
}

/// Gives every distinct line an id; equal ids mean byte-identical lines.
#[derive(Default)]
pub(crate) struct Interner<'a> {
    ids: HashMap<&'a [u8], u32, BuildHasherDefault<LineHasher>>,
}

impl<'a> Interner<'a> {
    /// The ids of all lines of `lines`.
    pub(crate) fn intern(&mut self, lines: &Lines<'a>) -> Vec<u32> {
        self.ids.reserve(lines.len());
        (0..lines.len()).map(|i| self.id(lines.line(i))).collect()
    }

    fn id(&mut self, line: &'a [u8]) -> u32 {
        let next = self.ids.len() as u32;
        *self.ids.entry(line).or_insert(next)
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
        let n_base_ids = self.ids.len();
        let mut last_pos = vec![u32::MAX; n_base_ids];
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
            if let Some(&pos) = last_pos.get(id as usize) {
                next_base = pos as usize + 1;
            }
            out.push(id);
        }
        out
    }

    /// How many distinct lines were seen.
    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }
}

/// Renumbers a subset of ids densely from 0, so that a diff over a few lines does not need
/// tables as large as the whole files' id space.
pub(crate) fn renumber(a: &[u32], b: &[u32]) -> (Vec<u32>, Vec<u32>, usize) {
    let mut map: HashMap<u32, u32, BuildHasherDefault<LineHasher>> = HashMap::default();
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
    fn splits_like_xdiff() {
        let l = Lines::new(b"a\nb\r\nc");
        assert_eq!(l.len(), 3);
        assert_eq!(l.line(1), b"b\r\n");
        assert_eq!(l.line(2), b"c");
        assert_eq!(l.span(0, 2), b"a\nb\r\n");
        assert_eq!(Lines::new(b"").len(), 0);
        assert_eq!(Lines::new(b"\n\n").len(), 2);
    }

    #[test]
    fn eol_detection() {
        let l = Lines::new(b"a\r\nb");
        assert_eq!(l.is_eol_crlf(0), Some(true));
        assert_eq!(l.is_eol_crlf(1), Some(true));
        assert_eq!(Lines::new(b"b").is_eol_crlf(0), None);
        assert_eq!(Lines::new(b"").is_eol_crlf(0), None);
        assert_eq!(Lines::new(b"a\n").is_eol_crlf(0), Some(false));
    }

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
}
