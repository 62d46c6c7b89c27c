//! The scanner framer over any byte stream, split anywhere, with any timing.
//!
//! Input: four bytes of configuration (terminator, frame cap, idle gap, prefix), then
//! the stream; a `0xFE` byte ends a read and lets time pass (by the read's length in
//! ms), so frames split across reads and idle gaps are both explored.

#![no_main]

use std::time::{Duration, Instant};

use kassa_hardware::scanner::{FrameEvent, Framer, FramerConfig, Terminator};
use libfuzzer_sys::fuzz_target;

/// Prefixes as a configuration spells them: none, STX, an AIM-like identifier, two
/// bytes, and one that does not unescape (taken literally).
const PREFIXES: [&str; 5] = ["", "\\x02", "]E0", "\\x02\\x1d", "\\xZZ"];

fuzz_target!(|data: &[u8]| {
    let [t, cap, gap, prefix, stream @ ..] = data else { return };
    let terminator = match t % 5 {
        0 => Terminator::Cr,
        1 => Terminator::Lf,
        2 => Terminator::CrLf,
        3 => Terminator::Etx,
        _ => Terminator::None,
    };
    let frame_bytes_max = usize::from(*cap) + 1;
    let cfg = FramerConfig {
        prefix: PREFIXES[usize::from(*prefix) % PREFIXES.len()].into(),
        terminator,
        idle_gap_ms: u64::from(gap % 32),
        frame_bytes_max,
    };
    let mut framer = Framer::new(cfg);
    let mut now = Instant::now();
    let mut out = Vec::new();
    for read in stream.split(|b| *b == 0xFE) {
        framer.push(now, read, &mut out);
        now += Duration::from_millis(u64::try_from(read.len() % 40).unwrap_or(0));
        out.extend(framer.poll_idle(now));
    }
    out.extend(framer.poll_idle(now + Duration::from_secs(1)));
    for ev in out {
        if let FrameEvent::Frame(frame) = ev {
            assert!(!frame.is_empty() && frame.len() <= frame_bytes_max);
        }
    }
    assert_eq!(framer.idle_deadline(), None, "nothing pending after the idle gap");
});
