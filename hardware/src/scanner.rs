//! Scanner framing and the reader loop.
//!
//! A frame ends at the configured terminator, **or** after an idle gap between bytes,
//! and never exceeds a maximum length. Partial frames arrive across several reads.

use std::io::{ErrorKind, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::serial::SerialSettings;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Terminator {
    Cr,
    Lf,
    CrLf,
    Etx,
    /// No suffix (Zebra "Standard RS-232"): frames end by the idle gap alone.
    None,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FramerConfig {
    /// Bytes the scanner is set to send before each code (e.g. `\x02`, STX), escaped as
    /// in [`crate::escape`]; stripped from a frame that starts with them. Empty: none.
    pub prefix: String,
    pub terminator: Terminator,
    /// A frame ends when no byte came for this long.
    pub idle_gap_ms: u64,
    /// Longest frame; the rest of an overlong frame is dropped and counted.
    pub frame_bytes_max: usize,
}

impl Default for FramerConfig {
    fn default() -> Self {
        // 50 ms is ~48 byte times at 9600 baud: no scanner pauses that long inside a
        // frame, and a cashier never scans twice that fast.
        FramerConfig {
            prefix: String::new(),
            terminator: Terminator::Cr,
            idle_gap_ms: 50,
            frame_bytes_max: crate::barcode::CODE_BYTES_MAX,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrameEvent {
    Frame(Vec<u8>),
    /// A frame grew past the maximum; its bytes up to the next terminator are dropped.
    Oversized {
        bytes_dropped: usize,
    },
}

/// Sans-IO framer: feed it bytes with the time they came.
#[derive(Debug)]
pub struct Framer {
    cfg: FramerConfig,
    prefix: Vec<u8>,
    buf: Vec<u8>,
    last_byte_at: Option<Instant>,
    /// Bytes dropped from the current overlong frame.
    dropping: usize,
}

impl Framer {
    pub fn new(cfg: FramerConfig) -> Self {
        // A prefix that does not unescape is taken literally; `AgentConfig` validates it.
        let prefix = crate::unescape(cfg.prefix.as_bytes()).unwrap_or_else(|_| cfg.prefix.clone().into_bytes());
        Framer { cfg, prefix, buf: Vec::new(), last_byte_at: None, dropping: 0 }
    }

    fn idle_gap(&self) -> Duration {
        Duration::from_millis(self.cfg.idle_gap_ms)
    }

    /// Feeds bytes read at `now`; frames completed are appended to `out`.
    pub fn push(&mut self, now: Instant, bytes: &[u8], out: &mut Vec<FrameEvent>) {
        if let Some(ev) = self.poll_idle(now) {
            out.push(ev);
        }
        for &b in bytes {
            let ends = match self.cfg.terminator {
                Terminator::Cr => b == b'\r',
                Terminator::Lf | Terminator::CrLf => b == b'\n',
                Terminator::Etx => b == 0x03,
                Terminator::None => false,
            };
            if ends {
                out.extend(self.finish());
            } else if self.buf.len() >= self.cfg.frame_bytes_max {
                self.dropping += 1;
            } else {
                self.buf.push(b);
            }
        }
        self.last_byte_at = Some(now);
    }

    /// When the pending partial frame ends by the idle gap, if there is one.
    pub fn idle_deadline(&self) -> Option<Instant> {
        let pending = !self.buf.is_empty() || self.dropping > 0;
        self.last_byte_at.filter(|_| pending).map(|t| t + self.idle_gap())
    }

    /// Ends the pending frame if the idle gap has passed.
    pub fn poll_idle(&mut self, now: Instant) -> Option<FrameEvent> {
        match self.idle_deadline() {
            Some(deadline) if now >= deadline => self.finish(),
            _ => None,
        }
    }

    fn finish(&mut self) -> Option<FrameEvent> {
        if self.dropping > 0 {
            let bytes_dropped = self.dropping + self.buf.len();
            self.buf.clear();
            self.dropping = 0;
            return Some(FrameEvent::Oversized { bytes_dropped });
        }
        let mut frame = std::mem::take(&mut self.buf);
        // A CR before LF (CRLF suffix), or a stray CR/LF left over from a scanner set
        // to a different suffix than configured, is not part of the code.
        while frame.last().is_some_and(|b| *b == b'\r' || *b == b'\n') {
            frame.pop();
        }
        let start = frame.iter().position(|b| *b != b'\r' && *b != b'\n').unwrap_or(frame.len());
        frame.drain(..start);
        if !self.prefix.is_empty() && frame.starts_with(&self.prefix) {
            frame.drain(..self.prefix.len());
        }
        (!frame.is_empty()).then_some(FrameEvent::Frame(frame))
    }
}

/// What a scanner reader reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScannerEvent {
    Connected,
    /// A frame, with the instant its last byte was read.
    Frame {
        bytes: Vec<u8>,
        at: Instant,
    },
    Oversized {
        bytes_dropped: usize,
    },
    /// The port closed or failed; the reader reopens it with backoff.
    Disconnected {
        reason: String,
    },
}

/// Reopen backoff: from 100 ms doubling to 5 s, so a replugged scanner is back within
/// seconds without the loop spinning on a missing node.
pub const REOPEN_BACKOFF_MS_MIN: u64 = 100;
pub const REOPEN_BACKOFF_MS_MAX: u64 = 5_000;
/// How often a blocked read wakes to check the stop flag and the idle gap.
const READ_TIMEOUT: Duration = Duration::from_millis(10);

/// Reads scanner frames from `path` until `stop` is set. Blocking: run it on a thread.
///
/// Unplugging makes reads fail or return 0 bytes for ever; both count as a disconnect,
/// and the port is reopened with capped backoff.
pub fn run_reader(
    path: &str,
    settings: &SerialSettings,
    framer: &FramerConfig,
    stop: &AtomicBool,
    mut on_event: impl FnMut(ScannerEvent),
) {
    let mut backoff_ms = REOPEN_BACKOFF_MS_MIN;
    let mut last_error = String::new();
    while !stop.load(Ordering::Relaxed) {
        let mut port = match settings.open(path, READ_TIMEOUT) {
            Ok(p) => p,
            Err(e) => {
                let reason = e.to_string();
                if reason != last_error {
                    on_event(ScannerEvent::Disconnected { reason: reason.clone() });
                    last_error = reason;
                }
                sleep_unless_stopped(Duration::from_millis(backoff_ms), stop);
                backoff_ms = (backoff_ms * 2).min(REOPEN_BACKOFF_MS_MAX);
                continue;
            }
        };
        last_error.clear();
        on_event(ScannerEvent::Connected);
        let reason = read_frames(&mut port, framer, stop, &mut on_event);
        if let Some(reason) = reason {
            on_event(ScannerEvent::Disconnected { reason: reason.clone() });
            last_error = reason;
            backoff_ms = REOPEN_BACKOFF_MS_MIN;
            sleep_unless_stopped(Duration::from_millis(backoff_ms), stop);
        }
    }
}

/// Reads until stopped (`None`) or the port fails (`Some(reason)`).
fn read_frames(
    port: &mut impl Read,
    cfg: &FramerConfig,
    stop: &AtomicBool,
    on_event: &mut impl FnMut(ScannerEvent),
) -> Option<String> {
    let mut framer = Framer::new(cfg.clone());
    let mut buf = [0u8; 256];
    let mut out = Vec::new();
    // A pty whose other side closed reads 0 bytes at once, for ever; a real port reads
    // 0 on timeout on some platforms. Many zero reads in a row without any timeout in
    // between mean the device is gone.
    let mut zero_reads = 0u32;
    while !stop.load(Ordering::Relaxed) {
        match port.read(&mut buf) {
            Ok(0) => {
                zero_reads += 1;
                if zero_reads > 100 {
                    return Some("end of stream (unplugged?)".into());
                }
                std::thread::sleep(READ_TIMEOUT);
            }
            Ok(n) => {
                zero_reads = 0;
                framer.push(Instant::now(), &buf[..n], &mut out);
            }
            Err(e) if e.kind() == ErrorKind::TimedOut || e.kind() == ErrorKind::WouldBlock => {
                zero_reads = 0;
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Some(e.to_string()),
        }
        let now = Instant::now();
        out.extend(framer.poll_idle(now));
        for ev in out.drain(..) {
            on_event(match ev {
                FrameEvent::Frame(bytes) => ScannerEvent::Frame { bytes, at: now },
                FrameEvent::Oversized { bytes_dropped } => ScannerEvent::Oversized { bytes_dropped },
            });
        }
    }
    None
}

fn sleep_unless_stopped(d: Duration, stop: &AtomicBool) {
    let until = Instant::now() + d;
    while !stop.load(Ordering::Relaxed) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20).min(until.saturating_duration_since(Instant::now())));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn frames(cfg: FramerConfig, chunks: &[&[u8]]) -> Vec<FrameEvent> {
        let mut f = Framer::new(cfg);
        let t = Instant::now();
        let mut out = Vec::new();
        for c in chunks {
            f.push(t, c, &mut out);
        }
        out
    }

    #[test]
    fn frames_end_at_terminator_across_reads() {
        let out = frames(FramerConfig::default(), &[b"46500", b"01209603\r4600", b"000857831\r"]);
        assert_eq!(
            out,
            vec![FrameEvent::Frame(b"4650001209603".to_vec()), FrameEvent::Frame(b"4600000857831".to_vec())]
        );
        let crlf = FramerConfig { terminator: Terminator::CrLf, ..Default::default() };
        assert_eq!(frames(crlf, &[b"123\r\n"]), vec![FrameEvent::Frame(b"123".to_vec())]);
    }

    #[test]
    fn a_configured_prefix_is_stripped() {
        let cfg = FramerConfig { prefix: "\\x02".into(), ..Default::default() };
        let out = frames(cfg, &[b"\x024650001209603\r4600000857831\r"]);
        assert_eq!(
            out,
            vec![FrameEvent::Frame(b"4650001209603".to_vec()), FrameEvent::Frame(b"4600000857831".to_vec())]
        );
    }

    #[test]
    fn frames_end_after_idle_gap() {
        let cfg = FramerConfig { terminator: Terminator::None, ..Default::default() };
        let mut f = Framer::new(cfg);
        let t = Instant::now();
        let mut out = Vec::new();
        f.push(t, b"0104650001209603\x1d21abc", &mut out);
        assert!(out.is_empty());
        assert_eq!(f.poll_idle(t + Duration::from_millis(49)), None);
        assert_eq!(
            f.poll_idle(t + Duration::from_millis(50)),
            Some(FrameEvent::Frame(b"0104650001209603\x1d21abc".to_vec()))
        );
        assert_eq!(f.idle_deadline(), None);
    }

    #[test]
    fn overlong_frames_are_dropped_and_counted() {
        let cfg = FramerConfig { frame_bytes_max: 4, ..Default::default() };
        let out = frames(cfg, &[b"123456\r12\r"]);
        assert_eq!(out, vec![FrameEvent::Oversized { bytes_dropped: 6 }, FrameEvent::Frame(b"12".to_vec())]);
    }

    proptest! {
        #[test]
        fn framer_never_panics_and_respects_the_cap(
            chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..16),
            max in 1usize..40,
            terminator in prop::sample::select(vec![
                Terminator::Cr, Terminator::Lf, Terminator::CrLf, Terminator::Etx, Terminator::None,
            ]),
        ) {
            let cfg = FramerConfig { frame_bytes_max: max, terminator, idle_gap_ms: 5, prefix: String::new() };
            let mut f = Framer::new(cfg);
            let t = Instant::now();
            let mut out = Vec::new();
            for (i, c) in chunks.iter().enumerate() {
                f.push(t + Duration::from_millis(i as u64 * 3), c, &mut out);
            }
            for ev in out {
                if let FrameEvent::Frame(b) = ev {
                    prop_assert!(!b.is_empty() && b.len() <= max);
                }
            }
        }
    }
}
