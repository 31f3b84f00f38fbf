//! Reading a journal back after a crash: every complete record, the torn tail, corrupt lines.

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

/// Parses one line (without its newline) as a record of the current schema version.
pub(crate) fn parse_record<E: DeserializeOwned>(line: &[u8]) -> Result<Record<E>, String> {
    if line.iter().all(u8::is_ascii_whitespace) {
        return Err("empty line".to_owned());
    }
    let record: Record<E> = serde_json::from_slice(line).map_err(|err| err.to_string())?;
    if record.v != SCHEMA_VERSION {
        return Err(format!(
            "unsupported record version {} (this reader knows version {SCHEMA_VERSION})",
            record.v
        ));
    }
    Ok(record)
}

/// Splits `reader` into lines and classifies each with `parse`.
pub(crate) fn scan<E, R: BufRead>(
    mut reader: R,
    path: &Path,
    parse: impl Fn(&[u8]) -> Result<Record<E>, String>,
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
            Ok(record) => recovered.records.push(record),
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
}
