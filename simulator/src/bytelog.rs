//! A bounded log of what a virtual device exchanged with the host, both directions, plus
//! notes (unplugged, paper out, an unknown command at offset N). The console's `log on`
//! prints it as it grows; a technician reads it to see exactly which bytes went where.
//!
//! The log is a ring: the oldest entries go once either bound is reached, so a device
//! left running for days uses a fixed amount of memory. Entries are numbered, so a
//! reader can ask for "everything after the last one I saw" and learn how many it missed.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Instant;

/// Payload bytes (and note characters) kept per device: a few dozen receipts.
pub const BYTE_LOG_BYTES_MAX: usize = 64 * 1024;
/// Entries kept per device, whatever their size: bounds the per-entry overhead when a
/// host writes one byte at a time.
pub const BYTE_LOG_ENTRIES_MAX: usize = 4096;
/// Longest note kept; notes are one-line remarks, a longer one is cut.
pub const NOTE_BYTES_MAX: usize = 1024;

/// Which way bytes went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Written by the device (scanner frames, printer status replies).
    ToHost,
    /// Written by the host (receipts, status queries).
    FromHost,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Bytes { direction: Direction, bytes: Vec<u8> },
    Note(String),
}

/// One numbered log entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Position in the device's whole history, from 0.
    pub seq: u64,
    /// Milliseconds since the device was created.
    pub at_ms: u64,
    pub record: Record,
}

impl Entry {
    fn size(&self) -> usize {
        match &self.record {
            Record::Bytes { bytes, .. } => bytes.len(),
            Record::Note(text) => text.len(),
        }
    }

    /// One line for a person: time, direction arrow, bytes escaped as in
    /// [`kassa_hardware::escape`] (`\x1d` for GS, `\r` as `\x0d`).
    pub fn display(&self, device: &str) -> String {
        self.display_lines(device, usize::MAX).concat()
    }

    /// As [`Self::display`], with the bytes in pieces of `bytes_per_line`, each piece
    /// after the first on a line of its own, indented under the first.
    pub fn display_lines(&self, device: &str, bytes_per_line: usize) -> Vec<String> {
        let mut line = format!("{:>4}.{:03}s ", self.at_ms / 1000, self.at_ms % 1000);
        let indent = line.chars().count() + 2;
        let (direction, bytes) = match &self.record {
            Record::Note(text) => {
                let _ = write!(line, "{device}: {text}");
                return vec![line];
            }
            Record::Bytes { direction, bytes } => (direction, bytes),
        };
        match direction {
            Direction::ToHost => write!(line, "{device} → agent  ({} B) ", bytes.len()),
            Direction::FromHost => write!(line, "agent → {device}  ({} B) ", bytes.len()),
        }
        .expect("writing to a String");
        let mut lines = Vec::new();
        for (i, piece) in bytes.chunks(bytes_per_line.max(1)).enumerate() {
            if i > 0 {
                lines.push(std::mem::replace(&mut line, "\n".to_owned() + &" ".repeat(indent)));
            }
            line.push_str(&kassa_hardware::escape(piece));
        }
        lines.push(line);
        lines
    }
}

#[derive(Debug, Default)]
struct Ring {
    entries: VecDeque<Entry>,
    size: usize,
    next_seq: u64,
}

/// The log of one device. Cheap to append to from any thread.
#[derive(Debug)]
pub struct ByteLog {
    device: &'static str,
    started: Instant,
    ring: Mutex<Ring>,
}

impl ByteLog {
    pub fn new(device: &'static str) -> ByteLog {
        ByteLog { device, started: Instant::now(), ring: Mutex::new(Ring::default()) }
    }

    /// The device's name in log lines (`scanner`, `printer`).
    pub fn device(&self) -> &'static str {
        self.device
    }

    pub fn bytes(&self, direction: Direction, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        // A single write larger than the whole log keeps its start, and says so.
        if bytes.len() > BYTE_LOG_BYTES_MAX / 2 {
            let kept = BYTE_LOG_BYTES_MAX / 2;
            self.push(Record::Bytes { direction, bytes: bytes[..kept].to_vec() });
            self.note(format!("({} more bytes not logged)", bytes.len() - kept));
            return;
        }
        self.push(Record::Bytes { direction, bytes: bytes.to_vec() });
    }

    pub fn note(&self, text: impl Into<String>) {
        let mut text: String = text.into();
        if text.len() > NOTE_BYTES_MAX {
            let mut end = NOTE_BYTES_MAX;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
        }
        self.push(Record::Note(text));
    }

    fn push(&self, record: Record) {
        let at_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let mut ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        let entry = Entry { seq: ring.next_seq, at_ms, record };
        ring.next_seq += 1;
        ring.size += entry.size();
        ring.entries.push_back(entry);
        while ring.size > BYTE_LOG_BYTES_MAX || ring.entries.len() > BYTE_LOG_ENTRIES_MAX {
            let Some(old) = ring.entries.pop_front() else { break };
            ring.size -= old.size();
        }
    }

    /// Entries numbered `seq` and later that are still kept, oldest first.
    pub fn since(&self, seq: u64) -> Vec<Entry> {
        let ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        ring.entries.iter().filter(|e| e.seq >= seq).cloned().collect()
    }

    /// The number the next entry will get.
    pub fn next_seq(&self) -> u64 {
        self.ring.lock().unwrap_or_else(|p| p.into_inner()).next_seq
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_within_bounds_and_numbers_entries() {
        let log = ByteLog::new("scanner");
        for _ in 0..100 {
            log.bytes(Direction::ToHost, &[b'x'; 1000]);
        }
        let kept = log.since(0);
        assert_eq!(kept.len(), BYTE_LOG_BYTES_MAX / 1000);
        assert_eq!(kept.last().unwrap().seq, 99);
        assert_eq!(log.next_seq(), 100);
        assert_eq!(log.since(99).len(), 1);

        for _ in 0..BYTE_LOG_ENTRIES_MAX + 10 {
            log.bytes(Direction::FromHost, b"a");
        }
        assert_eq!(log.since(0).len(), BYTE_LOG_ENTRIES_MAX);
    }

    #[test]
    fn huge_writes_are_cut_with_a_note() {
        let log = ByteLog::new("printer");
        log.bytes(Direction::FromHost, &vec![0u8; BYTE_LOG_BYTES_MAX * 2]);
        let kept = log.since(0);
        assert_eq!(kept.len(), 2);
        assert!(matches!(&kept[1].record, Record::Note(n) if n.contains("more bytes")));
    }

    #[test]
    fn lines_show_direction_and_escapes() {
        let log = ByteLog::new("scanner");
        log.bytes(Direction::ToHost, b"01\x1d21\r");
        let line = log.since(0)[0].display("scanner");
        assert!(line.ends_with("scanner → agent  (6 B) 01\\x1d21\\x0d"), "{line}");
    }

    #[test]
    fn long_writes_wrap_under_the_first_line() {
        let log = ByteLog::new("printer");
        log.bytes(Direction::FromHost, b"abcdefgh");
        let lines = log.since(0)[0].display_lines("printer", 3);
        assert_eq!(lines.len(), 3);
        assert!(lines[0].ends_with("agent → printer  (8 B) abc"), "{lines:?}");
        assert_eq!(lines[1].trim_start(), "def");
        assert_eq!(lines[2].trim_start(), "gh");
        assert_eq!(lines[1].len() - lines[1].trim_start().len(), 13, "indented under the device");
    }
}
