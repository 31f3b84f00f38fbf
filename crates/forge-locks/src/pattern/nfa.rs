//! Byte automata for patterns: the Thompson construction of globset's regex for a glob
//! (or of `lit` | `lit/**` for a literal), with epsilon moves removed, so that overlap is a
//! plain product search.

use super::syntax::{Token, emits_nothing};

/// A set of bytes, as a 256-bit mask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub(crate) struct ByteSet([u64; 4]);

impl ByteSet {
    pub(crate) const EMPTY: ByteSet = ByteSet([0; 4]);
    pub(crate) const ALL: ByteSet = ByteSet([u64::MAX; 4]);

    pub(crate) fn single(b: u8) -> ByteSet {
        ByteSet::range(b, b)
    }

    pub(crate) const fn range(lo: u8, hi: u8) -> ByteSet {
        let mut words = [0u64; 4];
        let mut b = lo as usize;
        while b <= hi as usize {
            words[b >> 6] |= 1 << (b & 63);
            b += 1;
        }
        ByteSet(words)
    }

    pub(crate) fn insert(&mut self, b: u8) {
        self.0[usize::from(b >> 6)] |= 1 << (b & 63);
    }

    pub(crate) fn contains(&self, b: u8) -> bool {
        self.0[usize::from(b >> 6)] & (1 << (b & 63)) != 0
    }

    pub(crate) fn union(self, other: ByteSet) -> ByteSet {
        ByteSet(std::array::from_fn(|i| self.0[i] | other.0[i]))
    }

    pub(crate) fn intersect(self, other: ByteSet) -> ByteSet {
        ByteSet(std::array::from_fn(|i| self.0[i] & other.0[i]))
    }

    pub(crate) fn complement(self) -> ByteSet {
        ByteSet(std::array::from_fn(|i| !self.0[i]))
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0 == [0; 4]
    }

    /// A representative byte, chosen to make witnesses readable: a lowercase letter, then a
    /// digit, then an uppercase letter, then other printable ASCII, then anything.
    pub(crate) fn pick(&self) -> Option<u8> {
        const PREFERRED: [ByteSet; 4] = [
            ByteSet::range(b'a', b'z'),
            ByteSet::range(b'0', b'9'),
            ByteSet::range(b'A', b'Z'),
            ByteSet::range(0x21, 0x7e),
        ];
        PREFERRED
            .iter()
            .find_map(|pref| self.intersect(*pref).first())
            .or_else(|| self.first())
    }

    fn first(&self) -> Option<u8> {
        self.0
            .iter()
            .enumerate()
            .find(|(_, w)| **w != 0)
            .map(|(i, w)| u8::try_from(i * 64 + w.trailing_zeros() as usize).expect("a byte index"))
    }
}

/// An epsilon-free automaton; state 0 is the start.
#[derive(Debug, Clone)]
pub(crate) struct Nfa {
    pub(crate) states: Vec<State>,
}

/// One state: its byte-labelled moves and whether it accepts.
#[derive(Debug, Clone, Default)]
pub(crate) struct State {
    pub(crate) edges: Vec<(ByteSet, u32)>,
    pub(crate) accept: bool,
}

impl Nfa {
    /// The automaton of a glob's tokens, with globset's regex semantics.
    pub(crate) fn from_glob(tokens: &[Token]) -> Nfa {
        let mut b = Builder::default();
        let start = b.state();
        let end = if tokens == [Token::RecursivePrefix] {
            b.any_star(start)
        } else {
            b.tokens(start, tokens)
        };
        b.finish(start, end)
    }

    /// The automaton of a literal: the path itself and everything below it. An empty
    /// literal (the repository root) covers every path.
    pub(crate) fn from_literal(literal: &str) -> Nfa {
        let mut b = Builder::default();
        let start = b.state();
        let end = if literal.is_empty() {
            b.any_star(start)
        } else {
            let path_end = b.bytes(start, literal.as_bytes());
            let slash = b.byte(path_end, b'/');
            let below = b.any_star(slash);
            let end = b.state();
            b.eps(path_end, end);
            b.eps(below, end);
            end
        };
        b.finish(start, end)
    }

    /// The states reached from `from` after reading `input` (empty when the automaton
    /// rejects every continuation).
    pub(crate) fn run(&self, from: Vec<u32>, input: &[u8]) -> Vec<u32> {
        let mut current = from;
        let mut next: Vec<u32> = Vec::new();
        for &byte in input {
            next.clear();
            for &s in &current {
                for &(set, to) in &self.states[s as usize].edges {
                    if set.contains(byte) && !next.contains(&to) {
                        next.push(to);
                    }
                }
            }
            if next.is_empty() {
                return next;
            }
            std::mem::swap(&mut current, &mut next);
        }
        current
    }

    /// Whether any of `states` accepts.
    pub(crate) fn accepts(&self, states: &[u32]) -> bool {
        states.iter().any(|&s| self.states[s as usize].accept)
    }

    /// Whether the automaton accepts `input`.
    #[cfg(test)]
    pub(crate) fn matches(&self, input: &[u8]) -> bool {
        self.accepts(&self.run(vec![0], input))
    }
}

/// Thompson construction with explicit epsilon moves, removed by `finish`.
#[derive(Default)]
struct Builder {
    eps: Vec<Vec<u32>>,
    moves: Vec<Vec<(ByteSet, u32)>>,
}

impl Builder {
    fn state(&mut self) -> u32 {
        self.eps.push(Vec::new());
        self.moves.push(Vec::new());
        u32::try_from(self.eps.len() - 1).expect("pattern automata stay far below 2^32 states")
    }

    fn eps(&mut self, from: u32, to: u32) {
        self.eps[from as usize].push(to);
    }

    fn set(&mut self, from: u32, set: ByteSet) -> u32 {
        let to = self.state();
        self.moves[from as usize].push((set, to));
        to
    }

    fn byte(&mut self, from: u32, b: u8) -> u32 {
        self.set(from, ByteSet::single(b))
    }

    fn bytes(&mut self, from: u32, bytes: &[u8]) -> u32 {
        bytes.iter().fold(from, |at, &b| self.byte(at, b))
    }

    /// `set*` from `from`; returns the state after the loop.
    fn star(&mut self, from: u32, set: ByteSet) -> u32 {
        let hub = self.state();
        self.eps(from, hub);
        self.moves[hub as usize].push((set, hub));
        hub
    }

    fn any_star(&mut self, from: u32) -> u32 {
        self.star(from, ByteSet::ALL)
    }

    fn tokens(&mut self, from: u32, tokens: &[Token]) -> u32 {
        let not_slash = ByteSet::single(b'/').complement();
        let mut at = from;
        for token in tokens {
            at = match token {
                Token::Literal(c) => {
                    let mut buf = [0u8; 4];
                    self.bytes(at, c.encode_utf8(&mut buf).as_bytes())
                }
                Token::Any => self.set(at, not_slash),
                Token::ZeroOrMore => self.star(at, not_slash),
                Token::RecursivePrefix => {
                    // (?:/?|.*/)
                    let end = self.state();
                    self.eps(at, end);
                    let slash = self.byte(at, b'/');
                    self.eps(slash, end);
                    let any = self.any_star(at);
                    let slash2 = self.byte(any, b'/');
                    self.eps(slash2, end);
                    end
                }
                Token::RecursiveSuffix => {
                    let slash = self.byte(at, b'/');
                    self.any_star(slash)
                }
                Token::RecursiveZeroOrMore => {
                    // (?:/|/.*/)
                    let slash = self.byte(at, b'/');
                    let any = self.any_star(slash);
                    let slash2 = self.byte(any, b'/');
                    let end = self.state();
                    self.eps(slash, end);
                    self.eps(slash2, end);
                    end
                }
                Token::Class { negated, ranges } => {
                    let set = class_bytes(ranges);
                    self.set(at, if *negated { set.complement() } else { set })
                }
                Token::Alternates(alts) => {
                    let kept: Vec<&Vec<Token>> =
                        alts.iter().filter(|alt| !emits_nothing(alt)).collect();
                    if kept.is_empty() {
                        at
                    } else {
                        let end = self.state();
                        for alt in kept {
                            let branch = self.state();
                            self.eps(at, branch);
                            let branch_end = self.tokens(branch, alt);
                            self.eps(branch_end, end);
                        }
                        end
                    }
                }
            };
        }
        at
    }

    /// Removes epsilon moves: each kept state gets the moves of its epsilon closure.
    fn finish(self, start: u32, end: u32) -> Nfa {
        let n = self.eps.len();
        let closure = |s: u32| -> Vec<u32> {
            let mut seen = vec![s];
            let mut stack = vec![s];
            while let Some(x) = stack.pop() {
                for &y in &self.eps[x as usize] {
                    if !seen.contains(&y) {
                        seen.push(y);
                        stack.push(y);
                    }
                }
            }
            seen
        };
        // Keep the start and every target of a byte move, renumbered in discovery order.
        let mut index: Vec<Option<u32>> = vec![None; n];
        let mut order: Vec<u32> = vec![start];
        index[start as usize] = Some(0);
        let mut states: Vec<State> = Vec::new();
        let mut i = 0;
        while i < order.len() {
            let s = order[i];
            let mut state = State::default();
            for c in closure(s) {
                state.accept |= c == end;
                for &(set, to) in &self.moves[c as usize] {
                    let to_idx = *index[to as usize].get_or_insert_with(|| {
                        order.push(to);
                        u32::try_from(order.len() - 1).expect("state count fits u32")
                    });
                    match state.edges.iter_mut().find(|(_, t)| *t == to_idx) {
                        Some((existing, _)) => *existing = existing.union(set),
                        None => state.edges.push((set, to_idx)),
                    }
                }
            }
            states.push(state);
            i += 1;
        }
        Nfa { states }
    }
}

/// The bytes a class matches in globset's byte regex: a non-ASCII character contributes its
/// UTF-8 bytes one by one, and a range spans from the last byte of its start to the first
/// byte of its end (that is how `[\xc3\xa9-\xc3\xbc]` reads).
fn class_bytes(ranges: &[(char, char)]) -> ByteSet {
    let mut set = ByteSet::EMPTY;
    for &(lo, hi) in ranges {
        let mut lo_buf = [0u8; 4];
        let mut hi_buf = [0u8; 4];
        let lo_bytes = lo.encode_utf8(&mut lo_buf).as_bytes();
        if lo == hi {
            lo_bytes.iter().for_each(|&b| set.insert(b));
            continue;
        }
        let hi_bytes = hi.encode_utf8(&mut hi_buf).as_bytes();
        let (lo_last, lo_rest) = lo_bytes.split_last().expect("a char has at least one byte");
        let (hi_first, hi_rest) = hi_bytes
            .split_first()
            .expect("a char has at least one byte");
        lo_rest.iter().for_each(|&b| set.insert(b));
        hi_rest.iter().for_each(|&b| set.insert(b));
        if lo_last <= hi_first {
            set = set.union(ByteSet::range(*lo_last, *hi_first));
        }
    }
    set
}

#[cfg(test)]
mod tests {
    use super::super::syntax::tokenize;
    use super::*;

    fn glob(g: &str) -> Nfa {
        Nfa::from_glob(&tokenize(g).expect("valid glob"))
    }

    #[test]
    fn globs_match_like_globset() {
        let cases: &[(&str, &str, bool)] = &[
            ("*.rs", "a.rs", true),
            ("*.rs", "a/b.rs", false),
            ("src/**", "src/a/b", true),
            ("src/**", "src", false),
            ("**/a", "a", true),
            ("**/a", "x/y/a", true),
            ("a/**/b", "a/b", true),
            ("a/**/b", "a/x/y/b", true),
            ("{a,b}/c", "b/c", true),
            ("[!a]", "b", true),
            ("[!a]", "a", false),
            ("?", "/", false),
            ("**", "x/y", true),
        ];
        for &(g, path, expected) in cases {
            assert_eq!(glob(g).matches(path.as_bytes()), expected, "{g} vs {path}");
        }
    }

    #[test]
    fn literal_covers_subtree() {
        let nfa = Nfa::from_literal("src/api");
        assert!(nfa.matches(b"src/api"));
        assert!(nfa.matches(b"src/api/x.rs"));
        assert!(!nfa.matches(b"src/apix"));
        assert!(!nfa.matches(b"src"));
    }
}
