//! Command templates: shell-like word splitting (quotes respected, no expansion), then
//! placeholder substitution inside each word, so a prompt with spaces or quotes stays one
//! argument and is never re-split or interpreted by a shell.

/// Why a command template cannot be split into words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TemplateError {
    /// The template has no words.
    #[error("empty command template")]
    Empty,
    /// A quote is not closed.
    #[error("unclosed {quote} quote in command template `{template}`")]
    UnclosedQuote {
        /// `single` or `double`.
        quote: &'static str,
        /// The template.
        template: String,
    },
    /// The template ends with a lone backslash.
    #[error("trailing backslash in command template `{template}`")]
    TrailingBackslash {
        /// The template.
        template: String,
    },
}

/// Splits like a POSIX shell does words: blanks separate, `'...'` is literal, `"..."` keeps
/// blanks and honours `\"`, `\\`, `\$` and `` \` ``, a backslash outside quotes escapes the
/// next character. Nothing is expanded.
pub(crate) fn split_words(template: &str) -> Result<Vec<String>, TemplateError> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = template.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => {
                            return Err(TemplateError::UnclosedQuote {
                                quote: "single",
                                template: template.to_owned(),
                            });
                        }
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => {
                                return Err(TemplateError::UnclosedQuote {
                                    quote: "double",
                                    template: template.to_owned(),
                                });
                            }
                        },
                        Some(c) => word.push(c),
                        None => {
                            return Err(TemplateError::UnclosedQuote {
                                quote: "double",
                                template: template.to_owned(),
                            });
                        }
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(c) => word.push(c),
                    None => {
                        return Err(TemplateError::TrailingBackslash {
                            template: template.to_owned(),
                        });
                    }
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    if words.is_empty() {
        return Err(TemplateError::Empty);
    }
    Ok(words)
}

/// Values for the placeholders of one attempt.
pub(crate) struct Placeholders<'a> {
    pub(crate) prompt: &'a str,
    pub(crate) task: &'a str,
    pub(crate) workdir: &'a str,
    pub(crate) attempt: u32,
}

/// Replaces `{prompt}`, `{task}`, `{workdir}` and `{attempt}` inside one word; other braces
/// stay as written.
pub(crate) fn substitute(word: &str, values: &Placeholders<'_>) -> String {
    let mut out = String::with_capacity(word.len());
    let mut rest = word;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open..];
        let replaced = [
            ("{prompt}", values.prompt),
            ("{task}", values.task),
            ("{workdir}", values.workdir),
        ]
        .into_iter()
        .find(|(name, _)| after.starts_with(name));
        if let Some((name, value)) = replaced {
            out.push_str(value);
            rest = &after[name.len()..];
        } else if let Some(after_name) = after.strip_prefix("{attempt}") {
            out.push_str(&values.attempt.to_string());
            rest = after_name;
        } else {
            out.push('{');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(template: &str, expected: &[&str]) {
        let expected: Vec<String> = expected.iter().map(|s| (*s).to_owned()).collect();
        assert_eq!(split_words(template), Ok(expected), "{template}");
    }

    #[test]
    fn splits_like_a_shell() {
        check("droid exec {prompt}", &["droid", "exec", "{prompt}"]);
        check("  a   b\tc ", &["a", "b", "c"]);
        check(
            r#"sh -c 'echo "$1"' -- "{prompt}""#,
            &["sh", "-c", r#"echo "$1""#, "--", "{prompt}"],
        );
        check(r#"a"b c"d"#, &["ab cd"]);
        check(r#"x\ y "q\"uote" '\n'"#, &["x y", "q\"uote", "\\n"]);
        check("''", &[""]);
    }

    #[test]
    fn reports_bad_templates() {
        assert_eq!(split_words("   "), Err(TemplateError::Empty));
        assert_eq!(
            split_words("sh -c 'oops").map_err(|e| e.to_string()),
            Err("unclosed single quote in command template `sh -c 'oops`".to_owned())
        );
        assert_eq!(
            split_words("a \\").map_err(|e| e.to_string()),
            Err("trailing backslash in command template `a \\`".to_owned())
        );
    }

    #[test]
    fn substitutes_inside_words_without_resplitting() {
        let values = Placeholders {
            prompt: "fix the 'bug'; rm -rf /",
            task: "api",
            workdir: "/tmp/w",
            attempt: 2,
        };
        assert_eq!(substitute("{prompt}", &values), "fix the 'bug'; rm -rf /");
        assert_eq!(
            substitute("--task={task}#{attempt}", &values),
            "--task=api#2"
        );
        assert_eq!(
            substitute("{workdir}/out {x} {", &values),
            "/tmp/w/out {x} {"
        );
    }
}
