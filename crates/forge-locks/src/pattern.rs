//! `Pattern`: a normalized repository path or glob, compiled once, and the coverage rule.

mod nfa;
mod syntax;

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

pub(crate) use nfa::{ByteSet, Nfa};

/// Why a pattern was rejected. Every message names the pattern.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PatternError {
    /// The pattern is empty.
    #[error("pattern `` is empty; use `.` for the whole repository")]
    Empty,
    /// The pattern starts at the filesystem root.
    #[error("pattern `{pattern}` is absolute; patterns are relative to the repository root")]
    Absolute {
        /// The pattern as given.
        pattern: String,
    },
    /// A `..` component leaves the repository.
    #[error("pattern `{pattern}` leaves the repository with `..`")]
    EscapesRoot {
        /// The pattern as given.
        pattern: String,
    },
    /// A `..` component follows a glob component, so it has no single meaning.
    #[error("pattern `{pattern}` has `..` after a glob component")]
    DotDotAfterGlob {
        /// The pattern as given.
        pattern: String,
    },
    /// The glob syntax is invalid.
    #[error("pattern `{pattern}` is not a valid glob: {reason}")]
    InvalidGlob {
        /// The pattern as given.
        pattern: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// A normalized path pattern: a literal path or a glob, relative to the repository root.
///
/// What a pattern covers (the rule that decides both lock conflicts and a task's write scope):
/// a literal path covers itself and everything below it; a glob covers exactly the paths it
/// matches under `globset`'s rules with literal separators (`*`, `?` never cross `/`; `**`
/// spans whole components). Cloning is cheap: the compiled form is shared.
///
/// Supported glob syntax, exactly as globset reads it: `*`, `?`, `**` (recursive only as a
/// whole component: `**/x`, `x/**`, `x/**/y`; elsewhere it is `*`), classes `[ab]`, `[a-z]`,
/// `[!a]` / `[^a]`, alternatives `{a,b}` (which may nest and hold `/`), and `\` escapes.
/// Where globset differs from intuition, forge follows globset, so that a pattern means the
/// same thing in both: a negated class such as `[!a]` also matches `/` (classes are byte
/// sets), `?` and classes match one byte (not one character), and an empty alternative is
/// dropped. Normalization only touches `.`, `..` and empty components that stand alone
/// between top-level separators (not inside `{...}` or `[...]`).
#[derive(Clone)]
pub struct Pattern {
    inner: Arc<Inner>,
}

struct Inner {
    /// The normalized text (`.` for the repository root).
    text: String,
    /// Literal path components (all of them for a literal, the leading literal directory
    /// components for a glob). This is where the lock index files the pattern.
    prefix: Vec<Box<str>>,
    literal: bool,
    nfa: Nfa,
    matcher: Option<globset::GlobMatcher>,
}

impl Pattern {
    /// Parses and normalizes a pattern: `./a` is `a`, `a/` is `a`, `a/../b` is `b`, `.` is the
    /// whole repository.
    ///
    /// # Errors
    ///
    /// A [`PatternError`] naming the pattern when it is empty, absolute, leaves the
    /// repository through `..`, has `..` after a glob component, or is not a valid glob.
    pub fn parse(pattern: &str) -> Result<Pattern, PatternError> {
        let segments = normalize(pattern)?;
        let literal = segments.iter().all(|s| !has_meta(s));
        let text = if segments.is_empty() {
            ".".to_owned()
        } else {
            segments.join("/")
        };
        let prefix: Vec<Box<str>> = segments
            .iter()
            .take_while(|s| !has_meta(s))
            .map(|s| Box::<str>::from(*s))
            .collect();
        let invalid = |reason: String| PatternError::InvalidGlob {
            pattern: pattern.to_owned(),
            reason,
        };
        let (nfa, matcher) = if literal {
            (Nfa::from_literal(&segments.join("/")), None)
        } else {
            let glob = globset::GlobBuilder::new(&text)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|e| invalid(glob_reason(&e)))?;
            let tokens = syntax::tokenize(&text)
                .ok_or_else(|| invalid("the glob could not be tokenized".to_owned()))?;
            (Nfa::from_glob(&tokens), Some(glob.compile_matcher()))
        };
        Ok(Pattern {
            inner: Arc::new(Inner {
                text,
                prefix,
                literal,
                nfa,
                matcher,
            }),
        })
    }

    /// The normalized text of the pattern (`.` for the repository root).
    pub fn as_str(&self) -> &str {
        &self.inner.text
    }

    /// Whether the pattern is a literal path (no glob metacharacter), which covers itself
    /// and everything below it.
    pub fn is_literal(&self) -> bool {
        self.inner.literal
    }

    /// Whether the pattern covers `path` (a normalized relative path such as `src/a.rs`).
    pub fn covers(&self, path: &str) -> bool {
        match &self.inner.matcher {
            Some(matcher) => matcher.is_match(path),
            None => {
                let lit = &self.inner.text;
                lit == "."
                    || (path.starts_with(lit.as_str())
                        && (path.len() == lit.len() || path.as_bytes()[lit.len()] == b'/'))
            }
        }
    }

    /// The literal directory components every covered path starts with.
    pub(crate) fn prefix(&self) -> &[Box<str>] {
        &self.inner.prefix
    }

    pub(crate) fn nfa(&self) -> &Nfa {
        &self.inner.nfa
    }

    /// Whether two handles share one compiled pattern (a cheap equality shortcut).
    pub(crate) fn same(&self, other: &Pattern) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// Whether every path `other` covers is covered by `self` (a sound, incomplete test used
    /// for re-entrancy: equal patterns, or `self` a literal above `other`'s literal prefix).
    pub(crate) fn contains(&self, other: &Pattern) -> bool {
        if self.same(other) || self.as_str() == other.as_str() {
            return true;
        }
        if !self.is_literal() {
            return false;
        }
        // Every path `other` covers starts with its literal prefix (for a glob, the prefix
        // is followed by a separator), so a literal at or above that prefix covers them all.
        let mine = self.prefix();
        let theirs = other.prefix();
        theirs.len() >= mine.len() && theirs[..mine.len()] == *mine
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.inner.text)
    }
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pattern({:?})", self.inner.text)
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Pattern) -> bool {
        self.same(other) || self.inner.text == other.inner.text
    }
}

impl Eq for Pattern {}

impl Hash for Pattern {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.inner.text.hash(state);
    }
}

impl std::str::FromStr for Pattern {
    type Err = PatternError;

    fn from_str(s: &str) -> Result<Pattern, PatternError> {
        Pattern::parse(s)
    }
}

fn glob_reason(e: &globset::Error) -> String {
    // globset's message repeats the glob; keep only what is wrong with it.
    e.kind().to_string()
}

/// Whether a segment holds a glob metacharacter (or an escape, which we treat as glob).
fn has_meta(segment: &str) -> bool {
    segment
        .bytes()
        .any(|b| matches!(b, b'*' | b'?' | b'[' | b'{' | b'}' | b'\\'))
}

/// Splits at the `/` that are separators at the top level (not inside a class, an
/// alternation or after an escape). `None` when a class or escape is left open.
fn split_top_level(pattern: &str) -> Option<Vec<&str>> {
    let bytes = pattern.as_bytes();
    let mut segments = Vec::new();
    let mut start = 0;
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 1,
            b'[' => {
                // globset: optional `!`/`^`, then a first `]` is literal, up to the next `]`.
                let mut j = i + 1;
                if matches!(bytes.get(j), Some(b'!' | b'^')) {
                    j += 1;
                }
                if bytes.get(j) == Some(&b']') {
                    j += 1;
                }
                while j < bytes.len() && bytes[j] != b']' {
                    j += 1;
                }
                if j >= bytes.len() {
                    return None;
                }
                i = j;
            }
            b'{' => depth += 1,
            b'}' => depth = depth.saturating_sub(1),
            b'/' if depth == 0 => {
                segments.push(&pattern[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    if i > bytes.len() {
        return None;
    }
    segments.push(&pattern[start..]);
    Some(segments)
}

/// Normalizes a pattern into its top-level segments.
fn normalize(pattern: &str) -> Result<Vec<&str>, PatternError> {
    if pattern.is_empty() {
        return Err(PatternError::Empty);
    }
    if pattern.starts_with('/') {
        return Err(PatternError::Absolute {
            pattern: pattern.to_owned(),
        });
    }
    let Some(raw) = split_top_level(pattern) else {
        // Leave the exact complaint to globset.
        let reason = globset::GlobBuilder::new(pattern)
            .literal_separator(true)
            .backslash_escape(true)
            .build()
            .err()
            .map_or_else(
                || "unclosed class or escape".to_owned(),
                |e| glob_reason(&e),
            );
        return Err(PatternError::InvalidGlob {
            pattern: pattern.to_owned(),
            reason,
        });
    };
    let mut segments: Vec<&str> = Vec::new();
    for segment in raw {
        match segment {
            "" | "." => {}
            ".." => match segments.pop() {
                None => {
                    return Err(PatternError::EscapesRoot {
                        pattern: pattern.to_owned(),
                    });
                }
                Some(prev) if has_meta(prev) => {
                    return Err(PatternError::DotDotAfterGlob {
                        pattern: pattern.to_owned(),
                    });
                }
                Some(_) => {}
            },
            s => segments.push(s),
        }
    }
    Ok(segments)
}

#[cfg(test)]
mod tests;
