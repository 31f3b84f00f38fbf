//! Exact overlap of two patterns: a breadth-first search of the product of their automata
//! and of a third automaton that accepts exactly the valid normalized paths (UTF-8, no
//! empty, `.` or `..` component), so a witness is always a real path both patterns cover.

use std::collections::HashMap;
use std::collections::VecDeque;
use std::sync::OnceLock;

use crate::pattern::{ByteSet, Nfa, Pattern};

/// A path covered by both patterns, or `None` when no path is.
///
/// The answer is exact for the whole supported syntax: it never misses an overlap and never
/// reports one that does not exist. The witness is the shortest such path (ties broken
/// towards lowercase letters), and it is covered by both patterns.
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
    if let Some(quick) = quick_overlap(a, b) {
        return quick;
    }
    product_search(a.nfa(), b.nfa())
}

/// Whether the patterns overlap, without building a witness when a shortcut decides.
pub(crate) fn overlaps(a: &Pattern, b: &Pattern) -> bool {
    match quick_overlap(a, b) {
        Some(answer) => answer.is_some(),
        None => product_search(a.nfa(), b.nfa()).is_some(),
    }
}

/// Answers from the literal prefixes alone when they decide: prefixes that diverge mean
/// disjoint; two literals overlap exactly when one is an ancestor of the other.
fn quick_overlap(a: &Pattern, b: &Pattern) -> Option<Option<String>> {
    let (pa, pb) = (a.prefix(), b.prefix());
    let common = pa.len().min(pb.len());
    if pa[..common] != pb[..common] {
        return Some(None);
    }
    if a.is_literal() && b.is_literal() {
        let deeper = if pa.len() >= pb.len() { a } else { b };
        if deeper.as_str() == "." {
            // Both are the root: any path will do.
            return Some(Some("a".to_owned()));
        }
        return Some(Some(deeper.as_str().to_owned()));
    }
    None
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
    let start: Node = (0, 0, START);
    // Parent links: node -> (parent node, byte).
    let mut parent: HashMap<Node, (Node, u8)> = HashMap::new();
    let mut queue: VecDeque<Node> = VecDeque::from([start]);
    parent.insert(start, (start, 0));
    while let Some(node @ (sa, sb, sv)) = queue.pop_front() {
        let (state_a, state_b) = (&a.states[sa as usize], &b.states[sb as usize]);
        if state_a.accept && state_b.accept && sv == ACCEPT {
            return Some(witness(&parent, start, node));
        }
        for &(set_a, to_a) in &state_a.edges {
            for &(set_b, to_b) in &state_b.edges {
                let both = set_a.intersect(set_b);
                if both.is_empty() {
                    continue;
                }
                for &(set_v, to_v) in &dfa.edges[usize::from(sv)] {
                    let all = both.intersect(set_v);
                    let Some(byte) = all.pick() else { continue };
                    let next = (to_a, to_b, to_v);
                    if let std::collections::hash_map::Entry::Vacant(slot) = parent.entry(next) {
                        slot.insert((node, byte));
                        queue.push_back(next);
                    }
                }
            }
        }
    }
    None
}

fn witness(parent: &HashMap<Node, (Node, u8)>, start: Node, end: Node) -> String {
    let mut bytes = Vec::new();
    let mut at = end;
    while at != start {
        let (prev, byte) = parent[&at];
        bytes.push(byte);
        at = prev;
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
