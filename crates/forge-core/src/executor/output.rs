//! Bounded capture of a child's output: lines longer than a limit are cut, and only the last
//! bytes are retained, so an agent printing gigabytes cannot exhaust memory.

use std::collections::VecDeque;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

use crate::event::LogStream;
use crate::executor::ProgressSink;
use crate::scheduler::MAX_RATE_LIMIT_PAUSE;

/// Marker appended to a line cut at the length limit.
pub(crate) const TRUNCATED: &str = " [line truncated]";

/// A line starting with this reports a custom progress value (the rest is JSON).
pub(crate) const PROGRESS_PREFIX: &str = "forge:progress ";
/// A line starting with this sets the rate-limit reset delay in seconds.
pub(crate) const RETRY_AFTER_PREFIX: &str = "forge:retry-after ";

/// What both streams of one child share.
#[derive(Debug)]
pub(crate) struct Captured {
    tail: VecDeque<u8>,
    tail_cap: usize,
    /// The last `forge:retry-after` value seen.
    pub(crate) retry_after: Option<Duration>,
    /// Total bytes read from both streams.
    pub(crate) total_bytes: u64,
}

impl Captured {
    pub(crate) fn new(tail_cap: usize) -> Self {
        Self {
            tail: VecDeque::with_capacity(tail_cap.min(4096)),
            tail_cap,
            retry_after: None,
            total_bytes: 0,
        }
    }

    fn push_line(&mut self, line: &[u8]) {
        for part in [line, b"\n"] {
            if part.len() >= self.tail_cap {
                self.tail.clear();
                self.tail.extend(&part[part.len() - self.tail_cap..]);
                continue;
            }
            let overflow = (self.tail.len() + part.len()).saturating_sub(self.tail_cap);
            self.tail.drain(..overflow);
            self.tail.extend(part);
        }
    }

    /// The retained tail as text (lossy UTF-8).
    pub(crate) fn tail(&self) -> String {
        let (a, b) = self.tail.as_slices();
        let mut bytes = Vec::with_capacity(a.len() + b.len());
        bytes.extend_from_slice(a);
        bytes.extend_from_slice(b);
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// The delay of a `forge:retry-after SECONDS` value: a finite, non-negative number of seconds
/// (fractions allowed), capped at [`MAX_RATE_LIMIT_PAUSE`]; `None` for anything else (empty,
/// negative, NaN, infinite, not a number), which the caller treats as no header.
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    let secs = value.trim().parse::<f64>().ok()?;
    if !secs.is_finite() || secs < 0.0 {
        return None;
    }
    if secs >= MAX_RATE_LIMIT_PAUSE.as_secs_f64() {
        return Some(MAX_RATE_LIMIT_PAUSE);
    }
    Duration::try_from_secs_f64(secs).ok()
}

/// Reads `reader` to its end, line by line, reporting each line (cut at `max_line` bytes) to
/// `progress` and keeping the tail in `captured`.
pub(crate) async fn pump<R: AsyncRead + Unpin>(
    reader: R,
    stream: LogStream,
    max_line: usize,
    progress: &ProgressSink,
    captured: &Mutex<Captured>,
) {
    let mut reader = BufReader::with_capacity(16 * 1024, reader);
    let mut line: Vec<u8> = Vec::new();
    let mut truncated = false;
    loop {
        let (consumed, end_of_line, eof) = match reader.fill_buf().await {
            Ok([]) | Err(_) => (0, !line.is_empty() || truncated, true),
            Ok(available) => {
                let newline = available.iter().position(|&b| b == b'\n');
                let chunk = &available[..newline.unwrap_or(available.len())];
                let room = max_line.saturating_sub(line.len());
                if chunk.len() > room {
                    truncated = true;
                }
                line.extend_from_slice(&chunk[..chunk.len().min(room)]);
                match newline {
                    Some(at) => (at + 1, true, false),
                    None => (available.len(), false, false),
                }
            }
        };
        reader.consume(consumed);
        if end_of_line {
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if truncated {
                line.extend_from_slice(TRUNCATED.as_bytes());
            }
            let text = String::from_utf8_lossy(&line);
            {
                let mut captured = captured.lock();
                captured.total_bytes += consumed as u64;
                captured.push_line(&line);
                if let Some(value) = text.strip_prefix(RETRY_AFTER_PREFIX) {
                    // A malformed value counts as no header (the last good one stays).
                    if let Some(delay) = parse_retry_after(value) {
                        captured.retry_after = Some(delay);
                    }
                }
            }
            match text.strip_prefix(PROGRESS_PREFIX) {
                Some(json) => match serde_json::from_str(json) {
                    Ok(value) => progress.custom(value),
                    Err(_) => progress.log(stream, &text),
                },
                None => progress.log(stream, &text),
            }
            line.clear();
            truncated = false;
        } else {
            captured.lock().total_bytes += consumed as u64;
        }
        if eof {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::executor::Progress;
    use std::sync::Arc;

    fn run(input: &[u8], max_line: usize, tail_cap: usize) -> (Vec<Progress>, String) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = {
            let seen = seen.clone();
            ProgressSink::new(move |p| seen.lock().push(p))
        };
        let captured = Mutex::new(Captured::new(tail_cap));
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        rt.block_on(pump(input, LogStream::Stdout, max_line, &sink, &captured));
        let lines = seen.lock().clone();
        (lines, captured.lock().tail())
    }

    fn log(line: &str) -> Progress {
        Progress::Log {
            stream: LogStream::Stdout,
            line: line.to_owned(),
        }
    }

    #[test]
    fn splits_lines_cuts_long_ones_and_keeps_the_tail() {
        let (lines, tail) = run(b"one\r\ntwo\nabcdefghij\nlast", 5, 12);
        assert_eq!(
            lines,
            vec![
                log("one"),
                log("two"),
                log(&format!("abcde{TRUNCATED}")),
                log("last")
            ]
        );
        assert_eq!(tail, "cated]\nlast\n");
    }

    #[test]
    fn reads_control_lines() {
        let (lines, _) = run(
            b"forge:progress {\"percent\":40}\nforge:progress nope\n",
            100,
            100,
        );
        assert_eq!(
            lines,
            vec![
                Progress::Custom(serde_json::json!({"percent": 40})),
                log("forge:progress nope")
            ]
        );
    }

    #[test]
    fn trust_13_retry_after_is_validated_and_capped() {
        let day = MAX_RATE_LIMIT_PAUSE;
        for (value, expected) in [
            ("30", Some(Duration::from_secs(30))),
            (" 1.5 ", Some(Duration::from_millis(1500))),
            ("0", Some(Duration::ZERO)),
            ("100000000000000000", Some(day)),
            ("1e300", Some(day)),
            ("86401", Some(day)),
            ("-1", None),
            ("NaN", None),
            ("inf", None),
            ("soon", None),
            ("", None),
        ] {
            assert_eq!(parse_retry_after(value), expected, "value {value:?}");
        }
    }

    #[test]
    fn trust_13_a_huge_retry_after_line_does_not_panic_the_reader() {
        let captured = Mutex::new(Captured::new(100));
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let input: &[u8] = b"forge:retry-after 7\nforge:retry-after 1e300\nforge:retry-after x\n";
        rt.block_on(pump(
            input,
            LogStream::Stdout,
            100,
            &ProgressSink::discard(),
            &captured,
        ));
        assert_eq!(captured.lock().retry_after, Some(MAX_RATE_LIMIT_PAUSE));
    }
}
