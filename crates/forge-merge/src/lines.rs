//! Splitting text into lines the way xdiff does.

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

    /// The whole text.
    pub(crate) fn data(&self) -> &'a [u8] {
        self.data
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
}
