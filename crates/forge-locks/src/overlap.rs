//! Exact overlap of two patterns: a breadth-first search of the product of their automata
//! and of a third automaton that accepts exactly the valid normalized paths (UTF-8, no
//! empty, `.` or `..` component), so a witness is always a real path both patterns cover.

use std::sync::OnceLock;

use crate::pattern::{ByteSet, Nfa, Pattern};

/// A path covered by both patterns, or `None` when no path is.
///
/// The answer is exact for the whole supported syntax: it never misses an overlap and never
/// reports one that does not exist. The witness is covered by both patterns: the literal
/// itself when one pattern is a literal the other covers, else a shortest such path (ties
/// broken towards lowercase letters).
///
/// ```
/// use forge_locks::{Pattern, overlap};
/// let a = Pattern::parse("src/**/*.rs")?;
/// let b = Pattern::parse("src/api")?;
/// assert_eq!(overlap(&a, &b).as_deref(), Some("src/api/.rs"));
/// let c = Pattern::parse("docs/*.md")?;
/// assert_eq!(overlap(&a, &c), None);
/// # Ok::<(), forge_locks::PatternError>(())
/// ```
pub fn overlap(a: &Pattern, b: &Pattern) -> Option<String> {
    match quick_overlap(a, b) {
        Quick::Disjoint => None,
        Quick::Covered(p) if p.as_str() == "." => Some("a".to_owned()),
        Quick::Covered(p) => Some(p.as_str().to_owned()),
        Quick::Search => product_search(a.nfa(), b.nfa()),
    }
}

/// Whether the patterns overlap; no witness is built when a shortcut decides.
pub(crate) fn overlaps(a: &Pattern, b: &Pattern) -> bool {
    match quick_overlap(a, b) {
        Quick::Disjoint => false,
        Quick::Covered(_) => true,
        Quick::Search => product_search(a.nfa(), b.nfa()).is_some(),
    }
}

/// What the shortcuts decided.
enum Quick<'a> {
    Disjoint,
    /// This literal path is covered by both.
    Covered(&'a Pattern),
    /// Only the product search can tell.
    Search,
}

/// Answers without a product search when the patterns allow it: literal prefixes that
/// diverge mean disjoint; two literals overlap exactly when one is an ancestor of the other;
/// a glob against a literal is decided by running the glob on the literal's bytes, unless
/// the glob stops there but could go on below it.
fn quick_overlap<'a>(a: &'a Pattern, b: &'a Pattern) -> Quick<'a> {
    let (pa, pb) = (a.prefix(), b.prefix());
    let common = pa.len().min(pb.len());
    if pa[..common] != pb[..common] {
        return Quick::Disjoint;
    }
    match (a.is_literal(), b.is_literal()) {
        (true, true) => Quick::Covered(if pa.len() >= pb.len() { a } else { b }),
        (true, false) => literal_against_glob(a, b),
        (false, true) => literal_against_glob(b, a),
        (false, false) => Quick::Search,
    }
}

fn literal_against_glob<'a>(literal: &'a Pattern, glob: &Pattern) -> Quick<'a> {
    if literal.as_str() == "." {
        return Quick::Search;
    }
    let nfa = glob.nfa();
    let states = nfa.run(vec![0], literal.as_str().as_bytes());
    if states.is_empty() {
        return Quick::Disjoint;
    }
    if nfa.accepts(&states) {
        return Quick::Covered(literal);
    }
    if nfa.run(states, b"/").is_empty() {
        Quick::Disjoint
    } else {
        Quick::Search
    }
}

/// The valid-path automaton: component structure plus UTF-8 well-formedness.
struct PathDfa {
    edges: Vec<Vec<(ByteSet, u8)>>,
}

const START: u8 = 0;
const ACCEPT: u8 = 3;

fn path_dfa() -> &'static PathDfa {
    static DFA: OnceLock<PathDfa> = OnceLock::new();
    DFA.get_or_init(|| {
        // 0: at the start of a component; 1: the component is "."; 2: it is ".."; 3: inside
        // a normal component at a character boundary (accepting); 4..=10: inside a
        // multi-byte UTF-8 character.
        let cont = ByteSet::range(0x80, 0xbf);
        let dot = ByteSet::single(b'.');
        let slash = ByteSet::single(b'/');
        let plain = ByteSet::range(0x01, 0x7f).intersect(dot.union(slash).complement());
        let leads: [(ByteSet, u8); 7] = [
            (ByteSet::range(0xc2, 0xdf), 4),
            (
                ByteSet::range(0xe1, 0xec).union(ByteSet::range(0xee, 0xef)),
                5,
            ),
            (ByteSet::range(0xf1, 0xf3), 6),
            (ByteSet::single(0xe0), 7),
            (ByteSet::single(0xed), 8),
            (ByteSet::single(0xf0), 9),
            (ByteSet::single(0xf4), 10),
        ];
        let boundary = |dot_to: u8, slash_ok: bool| {
            let mut e = vec![(plain, ACCEPT), (dot, dot_to)];
            if slash_ok {
                e.push((slash, START));
            }
            e.extend(leads);
            e
        };
        let edges = vec![
            boundary(1, false),
            boundary(2, false),
            boundary(ACCEPT, false),
            boundary(ACCEPT, true),
            vec![(cont, ACCEPT)],
            vec![(cont, 4)],
            vec![(cont, 5)],
            vec![(ByteSet::range(0xa0, 0xbf), 4)],
            vec![(ByteSet::range(0x80, 0x9f), 4)],
            vec![(ByteSet::range(0x90, 0xbf), 5)],
            vec![(ByteSet::range(0x80, 0x8f), 5)],
        ];
        PathDfa { edges }
    })
}

/// A state of the product: one state of each pattern automaton and of the path automaton.
type Node = (u32, u32, u8);

/// Breadth-first search of the product automaton; returns the shortest accepted path.
fn product_search(a: &Nfa, b: &Nfa) -> Option<String> {
    let dfa = path_dfa();
    let n_v = dfa.edges.len();
    let index =
        |(sa, sb, sv): Node| (sa as usize * b.states.len() + sb as usize) * n_v + usize::from(sv);
    let mut seen = vec![false; a.states.len() * b.states.len() * n_v];
    // The queue doubles as the parent table: (node, parent position, byte).
    let mut queue: Vec<(Node, u32, u8)> = vec![((0, 0, START), u32::MAX, 0)];
    seen[index((0, 0, START))] = true;
    let mut head = 0;
    while head < queue.len() {
        let ((sa, sb, sv), _, _) = queue[head];
        let (state_a, state_b) = (&a.states[sa as usize], &b.states[sb as usize]);
        if state_a.accept && state_b.accept && sv == ACCEPT {
            return Some(witness(&queue, head));
        }
        let parent = u32::try_from(head).expect("product searches stay far below 2^32 states");
        for &(set_a, to_a) in &state_a.edges {
            for &(set_b, to_b) in &state_b.edges {
                let both = set_a.intersect(set_b);
                if both.is_empty() {
                    continue;
                }
                for &(set_v, to_v) in &dfa.edges[usize::from(sv)] {
                    let next = (to_a, to_b, to_v);
                    let slot = &mut seen[index(next)];
                    if *slot {
                        continue;
                    }
                    if let Some(byte) = both.intersect(set_v).pick() {
                        *slot = true;
                        queue.push((next, parent, byte));
                    }
                }
            }
        }
        head += 1;
    }
    None
}

fn witness(queue: &[(Node, u32, u8)], mut at: usize) -> String {
    let mut bytes = Vec::new();
    while queue[at].1 != u32::MAX {
        bytes.push(queue[at].2);
        at = queue[at].1 as usize;
    }
    bytes.reverse();
    String::from_utf8(bytes).expect("the path automaton accepts only UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(a: &str, b: &str, expected: Option<&str>) {
        let pa = Pattern::parse(a).expect("valid");
        let pb = Pattern::parse(b).expect("valid");
        let got = overlap(&pa, &pb);
        assert_eq!(got.as_deref(), expected, "{a} vs {b}");
        assert_eq!(
            overlap(&pb, &pa).is_some(),
            expected.is_some(),
            "{b} vs {a}"
        );
        if let Some(w) = got {
            assert!(pa.covers(&w) && pb.covers(&w), "witness {w} of {a} and {b}");
        }
    }

    #[test]
    fn examples() {
        check("src/api", "src/api/x.rs", Some("src/api/x.rs"));
        check("src/api", "src/apix", None);
        check("src/**", "src/api", Some("src/api"));
        check("src/*.rs", "src/*/x", None);
        check("*.rs", "*.toml", None);
        check("docs/{a,b}.md", "docs/[b-c]*", Some("docs/b.md"));
        check("a/*/c", "a//c", Some("a/c/c"));
        check("*", "*", Some("a"));
        check("[!a]", "[.]", None);
        // Like globset, a negated class also matches `/`.
        check("x[!a]y", "x/y", Some("x/y"));
        check("**/[.]", "**", None);
        check(".", "x", Some("x"));
        check("src/a/**", "src/*/b", Some("src/a/b"));
        check("?", "é", None);
        check("??", "é", Some("é"));
    }
}
