//! Human-readable durations in plan files: `"10m"`, `"30s"`, `"500ms"`, `"1h30m"`.
//!
//! A bare number (in TOML or JSON) is read as seconds. Durations are written back in the
//! shortest exact form, so a plan survives a load/save round trip unchanged.
//!
//! Every duration is at most [`MAX_DURATION`] (a year): the arithmetic is checked, so no text
//! or number makes the parser panic, and later sums of durations (critical paths, deadlines)
//! stay far from overflowing.

use std::time::Duration;

use serde::{Deserialize, Serializer};

/// The longest duration a plan may hold: 365 days (`"8760h"`).
pub(crate) const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// Parses `"1h30m"`, `"10m"`, `"30s"`, `"500ms"`, `"250us"` (a sum of number-unit parts).
///
/// # Errors
///
/// Returns a message naming the text when it is empty, has a part without a unit, uses an
/// unknown unit, or adds up to more than [`MAX_DURATION`].
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err("empty duration".to_owned());
    }
    let mut total = Duration::ZERO;
    let mut rest = trimmed;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!("invalid duration `{text}`: expected a number"));
        }
        let number: f64 = rest[..digits]
            .parse()
            .map_err(|_| format!("invalid duration `{text}`: bad number"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = rest[..unit_len].trim();
        rest = &rest[unit_len..];
        let seconds_per_unit = match unit {
            "h" => 3600.0,
            "m" | "min" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "" => {
                return Err(format!(
                    "invalid duration `{text}`: missing unit (use h, m, s, ms or us)"
                ));
            }
            other => {
                return Err(format!(
                    "invalid duration `{text}`: unknown unit `{other}` (use h, m, s, ms or us)"
                ));
            }
        };
        total = Duration::try_from_secs_f64(number * seconds_per_unit)
            .ok()
            .and_then(|part| total.checked_add(part))
            .filter(|sum| *sum <= MAX_DURATION)
            .ok_or_else(|| too_long(text))?;
    }
    Ok(total)
}

/// A number of seconds as written, in exponent form when large (`1e300`, not 301 digits).
fn show_seconds(secs: f64) -> String {
    if secs.abs() >= 1e15 {
        format!("{secs:e}")
    } else {
        secs.to_string()
    }
}

fn too_long(text: &str) -> String {
    format!("invalid duration `{text}`: longer than the limit of 8760h (365 days)")
}

/// Formats a duration in the shortest exact form `parse_duration` reads back.
pub(crate) fn format_duration(duration: Duration) -> String {
    let micros = duration.as_micros();
    if micros == 0 {
        return "0s".to_owned();
    }
    if !micros.is_multiple_of(1000) {
        return format!("{micros}us");
    }
    let millis = micros / 1000;
    if !millis.is_multiple_of(1000) {
        return format!("{millis}ms");
    }
    let secs = millis / 1000;
    let mut out = String::new();
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 {
        out.push_str(&format!("{s}s"));
    }
    out
}

/// A duration as written in a plan file, before it is checked: text or a number of seconds.
/// Checking is left to [`Raw::to_duration`] so that the error can name the task and field.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum Raw {
    /// `"10m"`.
    Text(String),
    /// `30` or `1.5` (seconds).
    Seconds(f64),
}

impl Raw {
    /// The duration, or why it is not one (naming the value as written).
    pub(crate) fn to_duration(&self) -> Result<Duration, String> {
        match self {
            Raw::Text(text) => parse_duration(text),
            Raw::Seconds(secs) if secs.is_nan() || *secs < 0.0 => Err(format!(
                "invalid duration `{secs}`: must be a number of seconds >= 0"
            )),
            Raw::Seconds(secs) => Duration::try_from_secs_f64(*secs)
                .ok()
                .filter(|d| *d <= MAX_DURATION)
                .ok_or_else(|| too_long(&show_seconds(*secs))),
        }
    }
}

/// Serializes `Option<Duration>` fields in the shortest exact text form.
pub(crate) fn serialize_option<S: Serializer>(
    value: &Option<Duration>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(duration) => serializer.serialize_str(&format_duration(*duration)),
        None => serializer.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(text: &str, expected: Duration) {
        assert_eq!(parse_duration(text), Ok(expected), "{text}");
        let back = format_duration(expected);
        assert_eq!(parse_duration(&back), Ok(expected), "{back}");
    }

    #[test]
    fn parses_units_and_sums() {
        check("10m", Duration::from_secs(600));
        check("30s", Duration::from_secs(30));
        check("500ms", Duration::from_millis(500));
        check("1h30m", Duration::from_secs(5400));
        check("1.5s", Duration::from_millis(1500));
        check("250us", Duration::from_micros(250));
        check("0s", Duration::ZERO);
    }

    #[test]
    fn formats_shortest() {
        assert_eq!(format_duration(Duration::from_secs(600)), "10m");
        assert_eq!(format_duration(Duration::from_secs(5401)), "1h30m1s");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
    }

    #[test]
    fn rejects_bad_text() {
        assert_eq!(
            parse_duration("10"),
            Err("invalid duration `10`: missing unit (use h, m, s, ms or us)".to_owned())
        );
        assert_eq!(
            parse_duration("3 weeks"),
            Err(
                "invalid duration `3 weeks`: unknown unit `weeks` (use h, m, s, ms or us)"
                    .to_owned()
            )
        );
        assert_eq!(
            parse_duration("ms"),
            Err("invalid duration `ms`: expected a number".to_owned())
        );
        assert_eq!(parse_duration(""), Err("empty duration".to_owned()));
    }
}
