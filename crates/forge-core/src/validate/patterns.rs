//! Checking `reads`/`writes` patterns: the seam to `forge_locks::Pattern::parse`, which
//! normalizes patterns and rejects absolute, escaping and malformed ones.

/// Why `pattern` cannot be a lock pattern, if it cannot.
pub(super) fn check(pattern: &str) -> Result<(), String> {
    if pattern.is_empty() {
        return Err("pattern `` is empty; use `.` for the whole repository".to_owned());
    }
    if pattern.starts_with('/') {
        return Err(format!(
            "pattern `{pattern}` is absolute; patterns are relative to the repository root"
        ));
    }
    let mut depth = 0i64;
    for component in pattern.split('/') {
        match component {
            "" | "." => {}
            ".." => {
                depth -= 1;
                if depth < 0 {
                    return Err(format!(
                        "pattern `{pattern}` leaves the repository with `..`"
                    ));
                }
            }
            _ => depth += 1,
        }
    }
    let (mut in_class, mut braces) = (false, 0i64);
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '[' if !in_class => in_class = true,
            ']' if in_class => in_class = false,
            '{' if !in_class => braces += 1,
            '}' if !in_class => {
                braces -= 1;
                if braces < 0 {
                    return Err(format!(
                        "pattern `{pattern}` is not a valid glob: unopened alternate group `}}`"
                    ));
                }
            }
            _ => {}
        }
    }
    if in_class {
        return Err(format!(
            "pattern `{pattern}` is not a valid glob: unclosed character class `[`"
        ));
    }
    if braces > 0 {
        return Err(format!(
            "pattern `{pattern}` is not a valid glob: unclosed alternate group `{{`"
        ));
    }
    Ok(())
}
