//! The printer status parser: single replies, four combined, and the query loop over a
//! port whose "printer" sends the fuzz input.

#![no_main]

use std::io::{self, ErrorKind, Read, Write};
use std::time::Duration;

use kassa_hardware::status::{parse_status, query_status, PrinterStatus, StatusTracker};
use libfuzzer_sys::fuzz_target;

/// Reads return the input one byte at a time; a `0xFE` byte reads as a timeout.
struct ScriptedPort<'a> {
    input: &'a [u8],
}

impl Read for ScriptedPort<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.input {
            [] => Err(ErrorKind::TimedOut.into()),
            [0xFE, rest @ ..] => {
                self.input = rest;
                Err(ErrorKind::TimedOut.into())
            }
            [b, rest @ ..] => {
                let Some(first) = buf.first_mut() else { return Ok(0) };
                *first = *b;
                self.input = rest;
                Ok(1)
            }
        }
    }
}

impl Write for ScriptedPort<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    for pair in data.chunks_exact(2) {
        let _ = parse_status(pair[0], pair[1]);
    }
    if let [a, b, c, d, ..] = *data {
        if let Ok(s) = PrinterStatus::from_replies([a, b, c, d]) {
            let _ = (s.describe_ru(), s.describe_en(), s.ready());
        }
    }
    let mut tracker = StatusTracker::new(3);
    let mut port = ScriptedPort { input: data };
    while !port.input.is_empty() {
        let before = port.input.len();
        let result = query_status(&mut port, Duration::ZERO);
        let _ = tracker.record(&result).describe_en();
        assert!(port.input.len() < before || result.is_err());
        if port.input.len() == before {
            break;
        }
    }
});
