//! Reading a journal back after a crash: every complete record, the torn tail, corrupt lines,
//! and the checksum that tells a damaged record from a good one.
//!
//! Every record is written with a last field `"crc"`: the CRC-32 (IEEE, as computed by
//! `crc32fast`, the checksum of zip and gzip) of the line as it would read without that
//! field. A record whose checksum does not match is reported as corrupt, never read. The
//! event's JSON form is unchanged, so readers that ignore unknown fields keep working.
//! Records without the field (journals written before it existed) are read as they are,
//! unless the journal holds checksummed records: then a record without one is corrupt too.
//!
//! Why CRC-32 and not a std hash: `std::hash` makes no promise that its output stays the
//! same across Rust releases, and a journal must be readable by a later build of forge.
//! CRC-32 is fixed, detects every burst error up to 32 bits, and `crc32fast` computes it
//! at several GB/s, so sealing a line costs nothing next to writing it.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use serde::de::DeserializeOwned;

use crate::record::{JournalError, Record, SCHEMA_VERSION};

/// What [`read_journal`] recovered from a journal.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct Recovered<E> {
    /// Every complete, readable record, in file order.
    pub records: Vec<Record<E>>,
    /// The unfinished last line that was dropped, if any.
    pub torn_tail: Option<TornTail>,
    /// Lines before the last one that could not be read; reading went on after each.
    pub corrupt: Vec<CorruptLine>,
}

/// The last line of a journal when it was cut short: it has no final newline, or it does not
/// parse. This is what a crash in the middle of an append leaves; it is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TornTail {
    /// The byte offset where the torn line starts (the length of the journal without it).
    pub offset: u64,
    /// Its length in bytes, including its newline if it has one.
    pub len: u64,
}

/// A line before the last one that is not a readable record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorruptLine {
    /// The 1-based line number.
    pub line: usize,
    /// Why it could not be read.
    pub error: String,
}

/// Reads the journal at `path`, recovering every complete record.
///
/// A record is complete when its line ends with a newline and parses as a [`Record`] of
/// version [`SCHEMA_VERSION`]. The last line of the file, when it is not complete, is reported
/// as [`Recovered::torn_tail`] and dropped: that is what an interrupted append leaves. Any
/// other line that is not complete is reported in [`Recovered::corrupt`] with its line number,
/// and reading continues with the next line.
///
/// # Errors
///
/// [`JournalError::Io`] when the file cannot be opened or read.
pub fn read_journal<E: DeserializeOwned>(path: &Path) -> Result<Recovered<E>, JournalError> {
    let file = File::open(path).map_err(|err| JournalError::io("open", path, err))?;
    scan(BufReader::new(file), path, parse_record::<E>)
}

/// The field that ends every checksummed record.
const CRC_FIELD: &[u8] = b",\"crc\":";

/// Appends the `"crc"` field to a serialized record (one JSON object, no newline).
pub(crate) fn seal(line: &mut Vec<u8>) {
    use std::io::Write as _;
    debug_assert_eq!(line.last(), Some(&b'}'), "a record is a JSON object");
    let crc = crc32fast::hash(line);
    line.pop();
    line.extend_from_slice(CRC_FIELD);
    write!(line, "{crc}}}").expect("writing to a Vec cannot fail");
}

/// Checks a line's `"crc"` field: `Ok(true)` when it matches, `Ok(false)` when the line has
/// none, an error when it does not match.
fn check_seal(line: &[u8]) -> Result<bool, String> {
    let Some(body) = line.strip_suffix(b"}") else {
        return Ok(false);
    };
    let Some(at) = body.windows(CRC_FIELD.len()).rposition(|w| w == CRC_FIELD) else {
        return Ok(false);
    };
    let digits = &body[at + CRC_FIELD.len()..];
    // Only digits up to the closing brace: anything else is a field of the event (a JSON
    // string cannot hold an unescaped quote, so the field cannot sit inside one).
    if digits.is_empty() || digits.len() > 10 || !digits.iter().all(u8::is_ascii_digit) {
        return Ok(false);
    }
    let stored: u64 = std::str::from_utf8(digits)
        .ok()
        .and_then(|d| d.parse().ok())
        .ok_or_else(|| "unreadable checksum".to_owned())?;
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&line[..at]);
    hasher.update(b"}");
    let actual = hasher.finalize();
    if stored != u64::from(actual) {
        return Err(format!(
            "checksum mismatch (stored {stored}, computed {actual}): the record is damaged"
        ));
    }
    Ok(true)
}

/// One parsed line: the record and whether it carried a checksum (which matched).
pub(crate) type Parsed<E> = (Record<E>, bool);

/// Parses one line (without its newline) as a record of the current schema version, after
/// checking its checksum if it has one.
pub(crate) fn parse_record<E: DeserializeOwned>(line: &[u8]) -> Result<Parsed<E>, String> {
    if line.iter().all(u8::is_ascii_whitespace) {
        return Err("empty line".to_owned());
    }
    let sealed = check_seal(line)?;
    let record: Record<E> = serde_json::from_slice(line).map_err(|err| err.to_string())?;
    if record.v != SCHEMA_VERSION {
        return Err(format!(
            "unsupported record version {} (this reader knows version {SCHEMA_VERSION})",
            record.v
        ));
    }
    Ok((record, sealed))
}

/// Splits `reader` into lines and classifies each with `parse`.
pub(crate) fn scan<E, R: BufRead>(
    mut reader: R,
    path: &Path,
    parse: impl Fn(&[u8]) -> Result<Parsed<E>, String>,
) -> Result<Recovered<E>, JournalError> {
    let mut recovered = Recovered {
        records: Vec::new(),
        torn_tail: None,
        corrupt: Vec::new(),
    };
    let mut line = Vec::new();
    let mut offset = 0u64;
    let mut line_no = 0usize;
    // The last line seen that failed to parse, held back until we know whether it is the last.
    let mut pending_bad: Option<(CorruptLine, TornTail)> = None;
    // Records read without a checksum: line number and index in `records`.
    let mut unsealed: Vec<(usize, usize)> = Vec::new();
    let mut any_sealed = false;
    loop {
        line.clear();
        let n_read = reader
            .read_until(b'\n', &mut line)
            .map_err(|err| JournalError::io("read", path, err))?;
        if n_read == 0 {
            break;
        }
        line_no += 1;
        let here = TornTail {
            offset,
            len: n_read as u64,
        };
        offset += n_read as u64;
        if let Some((bad, _)) = pending_bad.take() {
            recovered.corrupt.push(bad);
        }
        let Some(content) = line.strip_suffix(b"\n") else {
            // No newline: the file ends here, in the middle of an append.
            recovered.torn_tail = Some(here);
            break;
        };
        match parse(content) {
            Ok((record, sealed)) => {
                if sealed {
                    any_sealed = true;
                } else {
                    unsealed.push((line_no, recovered.records.len()));
                }
                recovered.records.push(record);
            }
            Err(error) => {
                pending_bad = Some((
                    CorruptLine {
                        line: line_no,
                        error,
                    },
                    here,
                ))
            }
        }
    }
    if let Some((_, torn)) = pending_bad {
        recovered.torn_tail = Some(torn);
    }
    if any_sealed && !unsealed.is_empty() {
        // A journal this writer wrote seals every record: one without a seal was damaged
        // (its checksum field lost), whatever the rest of it says.
        for &(line, idx) in unsealed.iter().rev() {
            recovered.records.remove(idx);
            recovered.corrupt.push(CorruptLine {
                line,
                error: "no checksum in a journal whose records carry one".to_owned(),
            });
        }
        recovered.corrupt.sort_by_key(|c| c.line);
    }
    Ok(recovered)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn check(text: &str, seqs: &[u64], torn: Option<(u64, u64)>, corrupt: &[usize]) {
        let recovered =
            scan(text.as_bytes(), Path::new("j.jsonl"), parse_record::<u32>).expect("in memory");
        let got_seqs: Vec<u64> = recovered.records.iter().map(|r| r.seq).collect();
        assert_eq!(got_seqs, seqs, "records of {text:?}");
        assert_eq!(
            recovered.torn_tail.map(|t| (t.offset, t.len)),
            torn,
            "torn tail of {text:?}"
        );
        let lines: Vec<usize> = recovered.corrupt.iter().map(|c| c.line).collect();
        assert_eq!(lines, corrupt, "corrupt lines of {text:?}");
    }

    const A: &str = "{\"v\":1,\"seq\":1,\"ts_ms\":5,\"event\":10}\n";
    const B: &str = "{\"v\":1,\"seq\":2,\"ts_ms\":6,\"event\":20}\n";

    #[test]
    fn complete_lines_are_records() {
        check("", &[], None, &[]);
        check(A, &[1], None, &[]);
        check(&format!("{A}{B}"), &[1, 2], None, &[]);
    }

    #[test]
    fn missing_final_newline_is_a_torn_tail() {
        let text = format!("{A}{}", B.trim_end());
        check(&text, &[1], Some((A.len() as u64, B.len() as u64 - 1)), &[]);
    }

    #[test]
    fn unparsable_last_line_is_a_torn_tail() {
        check(
            &format!("{A}{{\"v\":1,\"se\n"),
            &[1],
            Some((A.len() as u64, 11)),
            &[],
        );
        check(&format!("{A}\n"), &[1], Some((A.len() as u64, 1)), &[]);
    }

    #[test]
    fn bad_middle_lines_are_corrupt_and_reading_goes_on() {
        check(&format!("garbage\n{A}\n{B}"), &[1, 2], None, &[1, 3]);
        let wrong_type = "{\"v\":1,\"seq\":9,\"ts_ms\":6,\"event\":\"x\"}\n";
        check(&format!("{wrong_type}{A}"), &[1], None, &[1]);
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let later = "{\"v\":1,\"seq\":1,\"ts_ms\":5,\"run\":\"r1\",\"event\":10}\n";
        check(later, &[1], None, &[]);
    }

    #[test]
    fn newer_schema_versions_are_reported() {
        let v2 = "{\"v\":2,\"seq\":2,\"ts_ms\":6,\"event\":20}\n";
        let recovered = scan(
            format!("{v2}{A}").as_bytes(),
            Path::new("j"),
            parse_record::<u32>,
        )
        .expect("mem");
        assert_eq!(recovered.corrupt.len(), 1);
        assert!(
            recovered.corrupt[0]
                .error
                .contains("unsupported record version 2")
        );
    }

    fn sealed(line: &str) -> String {
        let mut bytes = line.trim_end().as_bytes().to_vec();
        seal(&mut bytes);
        bytes.push(b'\n');
        String::from_utf8(bytes).expect("utf-8")
    }

    #[test]
    fn trust_09_sealed_records_are_checked() {
        let (a, b) = (sealed(A), sealed(B));
        assert!(a.ends_with(&format!(
            ",\"crc\":{}}}\n",
            crc32fast::hash(A.trim_end().as_bytes())
        )));
        check(&format!("{a}{b}"), &[1, 2], None, &[]);
        // One flipped digit in the event: still valid JSON, but the checksum catches it.
        let damaged = a.replace("\"event\":10", "\"event\":70");
        check(&format!("{damaged}{b}"), &[2], None, &[1]);
        let recovered = scan(
            format!("{damaged}{b}").as_bytes(),
            Path::new("j"),
            parse_record::<u32>,
        )
        .expect("mem");
        assert!(
            recovered.corrupt[0].error.contains("checksum mismatch"),
            "{:?}",
            recovered.corrupt
        );
        // A damaged checksum field, or a record without one among sealed ones.
        let bad_crc = a.replace(",\"crc\":", ",\"crc\":9");
        check(&format!("{bad_crc}{b}"), &[2], None, &[1]);
        check(&format!("{a}{B}{b}"), &[1, 2], None, &[2]);
    }

    #[test]
    fn trust_09_a_crc_field_of_the_event_is_not_the_seal() {
        let inner = "{\"v\":1,\"seq\":1,\"ts_ms\":5,\"event\":{\"crc\":5}}\n";
        let recovered = scan(
            inner.as_bytes(),
            Path::new("j"),
            parse_record::<serde_json::Value>,
        )
        .expect("mem");
        assert_eq!(recovered.records.len(), 1);
        let recovered = scan(
            sealed(inner).as_bytes(),
            Path::new("j"),
            parse_record::<serde_json::Value>,
        )
        .expect("mem");
        assert_eq!(recovered.records.len(), 1);
        assert!(recovered.corrupt.is_empty());
    }
}
