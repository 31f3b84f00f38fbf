//! The glob grammar, tokenized exactly as `globset` 0.4 tokenizes it (Unix separators,
//! backslash escapes, literal separators, no empty alternates).
//!
//! The tokens are turned into an automaton by `nfa.rs`; keeping the tokenizer faithful to
//! globset is what makes `covers` and `overlap` agree with it (see the differential tests).

/// One token of a glob, as globset defines them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Token {
    /// A literal character.
    Literal(char),
    /// `?`: one byte that is not `/`.
    Any,
    /// `*`: any run of bytes without `/`.
    ZeroOrMore,
    /// `**/` at the start: `(?:/?|.*/)`.
    RecursivePrefix,
    /// `/**` at the end: `/.*`.
    RecursiveSuffix,
    /// `/**/` in the middle: `(?:/|/.*/)`.
    RecursiveZeroOrMore,
    /// `[...]` or `[!...]`.
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
    /// `{a,b}`.
    Alternates(Vec<Vec<Token>>),
}

/// Tokenizes a glob that globset has already accepted.
///
/// The caller validates with globset first, so the error paths here only guard against
/// a disagreement between the two parsers; they return `None` instead of panicking.
pub(crate) fn tokenize(glob: &str) -> Option<Vec<Token>> {
    let mut parser = Parser {
        alternates_stack: Vec::new(),
        branches: vec![Vec::new()],
        chars: glob.chars().peekable(),
        prev: None,
        cur: None,
    };
    parser.parse()?;
    if parser.branches.len() != 1 {
        return None;
    }
    parser.branches.pop()
}

struct Parser<'a> {
    alternates_stack: Vec<usize>,
    branches: Vec<Vec<Token>>,
    chars: std::iter::Peekable<std::str::Chars<'a>>,
    prev: Option<char>,
    cur: Option<char>,
}

impl Parser<'_> {
    fn parse(&mut self) -> Option<()> {
        while let Some(c) = self.bump() {
            match c {
                '?' => self.push(Token::Any)?,
                '*' => self.parse_star()?,
                '[' => self.parse_class()?,
                '{' => {
                    self.alternates_stack.push(self.branches.len());
                    self.branches.push(Vec::new());
                }
                '}' => {
                    let start = self.alternates_stack.pop()?;
                    let alts: Vec<Vec<Token>> = self.branches.drain(start..).collect();
                    self.push(Token::Alternates(alts))?;
                }
                ',' if !self.alternates_stack.is_empty() => self.branches.push(Vec::new()),
                '\\' => {
                    let escaped = self.bump()?;
                    self.push(Token::Literal(escaped))?;
                }
                c => self.push(Token::Literal(c))?,
            }
        }
        Some(())
    }

    fn push(&mut self, token: Token) -> Option<()> {
        self.branches.last_mut()?.push(token);
        Some(())
    }

    fn bump(&mut self) -> Option<char> {
        self.prev = self.cur;
        self.cur = self.chars.next();
        self.cur
    }

    fn peek(&mut self) -> Option<char> {
        self.chars.peek().copied()
    }

    fn push_two_stars(&mut self) -> Option<()> {
        self.push(Token::ZeroOrMore)?;
        self.push(Token::ZeroOrMore)
    }

    /// `**` is recursive only next to separators (or at the edges of an alternative);
    /// anywhere else it is two `*`.
    fn parse_star(&mut self) -> Option<()> {
        let prev = self.prev;
        if self.peek() != Some('*') {
            return self.push(Token::ZeroOrMore);
        }
        self.bump();
        let have_tokens = !self.branches.last()?.is_empty();
        if !have_tokens {
            if self.peek().is_some_and(|c| c != '/') {
                return self.push_two_stars();
            }
            self.push(Token::RecursivePrefix)?;
            self.bump();
            return Some(());
        }
        if prev != Some('/')
            && (self.branches.len() <= 1 || (prev != Some(',') && prev != Some('{')))
        {
            return self.push_two_stars();
        }
        let is_suffix = match self.peek() {
            None => {
                self.bump();
                true
            }
            Some(',' | '}') if self.branches.len() >= 2 => true,
            Some('/') => {
                self.bump();
                false
            }
            Some(_) => return self.push_two_stars(),
        };
        let last = self.branches.last_mut()?.pop()?;
        let token = match last {
            Token::RecursivePrefix => Token::RecursivePrefix,
            Token::RecursiveSuffix => Token::RecursiveSuffix,
            _ if is_suffix => Token::RecursiveSuffix,
            _ => Token::RecursiveZeroOrMore,
        };
        self.push(token)
    }

    fn parse_class(&mut self) -> Option<()> {
        let mut ranges: Vec<(char, char)> = Vec::new();
        let negated = matches!(self.peek(), Some('!' | '^'));
        if negated {
            self.bump();
        }
        let mut first = true;
        let mut in_range = false;
        loop {
            let c = self.bump()?;
            match c {
                ']' if !first => break,
                ']' => ranges.push((']', ']')),
                '-' if first => ranges.push(('-', '-')),
                '-' if in_range => {
                    let last = ranges.last_mut()?;
                    last.1 = '-';
                    if last.1 < last.0 {
                        return None;
                    }
                    in_range = false;
                }
                '-' => in_range = true,
                c => {
                    if in_range {
                        let last = ranges.last_mut()?;
                        last.1 = c;
                        if last.1 < last.0 {
                            return None;
                        }
                    } else {
                        ranges.push((c, c));
                    }
                    in_range = false;
                }
            }
            first = false;
        }
        if in_range {
            ranges.push(('-', '-'));
        }
        self.push(Token::Class { negated, ranges })
    }
}

/// Whether `tokens` produce an empty regex in globset (an alternation whose every branch
/// is empty emits nothing), which decides whether an alternative is dropped.
pub(crate) fn emits_nothing(tokens: &[Token]) -> bool {
    tokens.iter().all(|t| match t {
        Token::Alternates(alts) => alts.iter().all(|alt| emits_nothing(alt)),
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recursive_forms() {
        use Token::*;
        assert_eq!(tokenize("**"), Some(vec![RecursivePrefix]));
        assert_eq!(tokenize("**/a"), Some(vec![RecursivePrefix, Literal('a')]));
        assert_eq!(tokenize("a/**"), Some(vec![Literal('a'), RecursiveSuffix]));
        assert_eq!(
            tokenize("a/**/b"),
            Some(vec![Literal('a'), RecursiveZeroOrMore, Literal('b')])
        );
        assert_eq!(
            tokenize("a**"),
            Some(vec![Literal('a'), ZeroOrMore, ZeroOrMore])
        );
    }

    #[test]
    fn classes_and_alternates() {
        use Token::*;
        assert_eq!(
            tokenize("[!a-c]"),
            Some(vec![Class {
                negated: true,
                ranges: vec![('a', 'c')]
            }])
        );
        assert_eq!(
            tokenize("[]-]"),
            Some(vec![Class {
                negated: false,
                ranges: vec![(']', ']'), ('-', '-')]
            }])
        );
        assert_eq!(
            tokenize("{a,b}"),
            Some(vec![Alternates(vec![
                vec![Literal('a')],
                vec![Literal('b')]
            ])])
        );
        assert_eq!(tokenize("{a,b"), None);
    }
}
