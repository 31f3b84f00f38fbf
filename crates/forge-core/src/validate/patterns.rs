//! Checking `reads`/`writes` patterns with [`forge_locks::Pattern::parse`], the same parser
//! the lock table uses, so a pattern that validates is one the engine can lock.

/// Why `pattern` cannot be a lock pattern (the message names the pattern), if it cannot.
pub(super) fn check(pattern: &str) -> Result<(), String> {
    forge_locks::Pattern::parse(pattern)
        .map(drop)
        .map_err(|err| err.to_string())
}
