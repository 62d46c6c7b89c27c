use std::collections::VecDeque;
use std::io;

use super::*;
use proptest::prelude::*;

/// A printer on the other end of a port: each status request written queues the next
/// scripted reply (possibly several bytes, possibly none) for reading.
#[derive(Debug, Default)]
struct MockPort {
    pending: VecDeque<u8>,
    replies: VecDeque<Vec<u8>>,
    written: Vec<u8>,
    fail_reads: bool,
}

impl MockPort {
    fn answering(replies: &[&[u8]]) -> MockPort {
        MockPort { replies: replies.iter().map(|r| r.to_vec()).collect(), ..MockPort::default() }
    }
}

impl Read for MockPort {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.fail_reads {
            return Err(io::Error::new(ErrorKind::BrokenPipe, "unplugged"));
        }
        if self.pending.is_empty() {
            return Err(ErrorKind::TimedOut.into());
        }
        let n = buf.len().min(self.pending.len());
        for b in buf.iter_mut().take(n) {
            *b = self.pending.pop_front().expect("counted");
        }
        Ok(n)
    }
}

impl Write for MockPort {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.written.extend_from_slice(buf);
        if buf.starts_with(&[0x10, 0x04]) {
            self.pending.extend(self.replies.pop_front().unwrap_or_default());
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

const QUICK: Duration = Duration::from_millis(5);

fn status(replies: [u8; 4]) -> PrinterStatus {
    PrinterStatus::from_replies(replies).unwrap()
}

#[test]
fn fixed_bits_validate_every_reply() {
    for n in 1..=4 {
        for byte in 0..=255u8 {
            let valid = byte & 0b1001_0011 == 0b0001_0010;
            assert_eq!(parse_status(n, byte).is_ok(), valid, "n={n} byte={byte:#04x}");
        }
    }
    for garbage in [0x00, 0xFF, 0x13, 0x92, 0x10, 0x02] {
        assert!(matches!(parse_status(1, garbage), Err(StatusError::Garbage(b)) if b == garbage));
    }
    assert!(matches!(parse_status(0, 0x12), Err(StatusError::Request(0))));
    assert!(matches!(parse_status(5, 0x12), Err(StatusError::Request(5))));
}

#[test]
fn bits_are_typed_per_request() {
    assert_eq!(
        parse_status(1, 0x1A).unwrap(),
        StatusBits::Printer(PrinterBits { offline: true, ..PrinterBits::default() })
    );
    assert_eq!(
        parse_status(1, 0x76).unwrap(),
        StatusBits::Printer(PrinterBits {
            drawer_sensor: true,
            offline: false,
            waiting_recovery: true,
            feed_button: true
        })
    );
    assert_eq!(
        parse_status(2, 0x16).unwrap(),
        StatusBits::OfflineCause(OfflineCause { cover_open: true, ..OfflineCause::default() })
    );
    assert_eq!(
        parse_status(2, 0x5A).unwrap(),
        StatusBits::OfflineCause(OfflineCause { paper_fed_by_button: true, error: true, ..OfflineCause::default() })
    );
    assert_eq!(
        parse_status(3, 0x7E).unwrap(),
        StatusBits::ErrorCause(ErrorCause {
            recoverable: true,
            autocutter: true,
            unrecoverable: true,
            auto_recoverable: true
        })
    );
    for (byte, paper) in [(0x12, Paper::Ok), (0x1E, Paper::NearEnd), (0x72, Paper::Out), (0x7E, Paper::Out)] {
        assert_eq!(parse_status(4, byte).unwrap(), StatusBits::Paper(paper), "{byte:#04x}");
    }
}

/// The replies of `simulator/src/printer_emu.rs`, which follow the reference.
#[test]
fn simulator_replies_combine_into_words() {
    let ok = status([0x12, 0x12, 0x12, 0x12]);
    assert_eq!(ok, PrinterStatus { online: true, cover_open: false, paper: Paper::Ok, error: None });
    assert!(ok.ready());
    assert_eq!((ok.describe_ru().as_str(), ok.describe_en().as_str()), ("Готов", "Ready"));

    let near_end = status([0x12, 0x12, 0x12, 0x1E]);
    assert_eq!(near_end.paper, Paper::NearEnd);
    assert!(near_end.ready());
    assert_eq!(near_end.describe_ru(), "Бумага заканчивается");

    let out = status([0x1A, 0x32, 0x12, 0x7E]);
    assert_eq!(out, PrinterStatus { online: false, cover_open: false, paper: Paper::Out, error: None });
    assert!(!out.ready());
    assert_eq!((out.describe_ru().as_str(), out.describe_en().as_str()), ("Нет бумаги", "Paper out"));

    let cover = status([0x1A, 0x16, 0x12, 0x12]);
    assert!(cover.cover_open && !cover.online && !cover.ready());
    assert_eq!((cover.describe_ru().as_str(), cover.describe_en().as_str()), ("Крышка открыта", "Cover open"));

    let offline = status([0x1A, 0x12, 0x12, 0x12]);
    assert_eq!(
        (offline.describe_ru().as_str(), offline.describe_en().as_str()),
        ("Принтер не в сети", "Printer offline")
    );

    // A stop at paper end is paper out even if the roll sensor has not caught up.
    assert_eq!(status([0x1A, 0x32, 0x12, 0x12]).paper, Paper::Out);
}

#[test]
fn errors_are_reported_most_serious_first() {
    let cutter = status([0x1A, 0x52, 0x1A, 0x12]);
    assert_eq!(cutter.error, Some(PrinterError::Autocutter));
    assert_eq!(cutter.describe_en(), "Autocutter error: paper jammed at the cutter");
    assert_eq!(status([0x1A, 0x52, 0x3A, 0x12]).error, Some(PrinterError::Unrecoverable));
    assert_eq!(status([0x1A, 0x52, 0x12, 0x12]).error, Some(PrinterError::Unspecified));
    let both = status([0x1A, 0x36, 0x12, 0x7E]);
    assert_eq!(both.describe_ru(), "Нет бумаги; Крышка открыта");
    assert!(matches!(PrinterStatus::from_replies([0x12, 0x12, 0xFF, 0x12]), Err(StatusError::Garbage(0xFF))));
}

#[test]
fn query_drops_stale_bytes_and_asks_one_at_a_time() {
    let mut port = MockPort::answering(&[&[0x1A], &[0x32], &[0x12], &[0x7E]]);
    // Replies to someone else's earlier questions.
    port.pending.extend([0x12, 0x12, 0x7E]);
    let s = query_status(&mut port, QUICK).unwrap();
    assert_eq!(s.paper, Paper::Out);
    assert_eq!(port.written, [0x10, 0x04, 1, 0x10, 0x04, 2, 0x10, 0x04, 3, 0x10, 0x04, 4]);
}

#[test]
fn silence_is_no_reply_never_ok() {
    let mut port = MockPort::answering(&[]);
    assert!(matches!(query_status(&mut port, QUICK), Err(StatusError::NoReply)));
    // It stops at the first silent request.
    assert_eq!(port.written, [0x10, 0x04, 1]);
    let mut port = MockPort::answering(&[&[0x12], &[0x12], &[]]);
    assert!(matches!(query_status(&mut port, QUICK), Err(StatusError::NoReply)));
}

#[test]
fn garbage_is_discarded_and_the_reply_found_after_it() {
    let mut port = MockPort::answering(&[&[0xFF, 0x00, 0x12], &[0x12], &[0x12], &[0x12]]);
    assert!(query_status(&mut port, QUICK).unwrap().ready());
    let mut port = MockPort::answering(&[&[0xFF, 0x80]]);
    assert!(matches!(query_status(&mut port, QUICK), Err(StatusError::Garbage(0xFF))));
    let mut port = MockPort { fail_reads: true, ..MockPort::default() };
    assert!(matches!(query_status(&mut port, QUICK), Err(StatusError::Io(_))));
}

#[test]
fn tracker_turns_repeated_silence_into_disconnected() {
    let mut t = StatusTracker::new(3);
    assert_eq!(t.state(), PrinterState::Unknown);
    assert_eq!(t.record(&Err(StatusError::NoReply)), PrinterState::Unknown);
    assert_eq!(t.record(&Err(StatusError::NoReply)), PrinterState::Unknown);
    assert_eq!(t.record(&Err(StatusError::NoReply)), PrinterState::Disconnected);
    assert_eq!(t.consecutive_timeouts(), 3);
    assert_eq!(t.state().describe_ru(), "Нет связи с принтером");
    assert_eq!(t.state().describe_en(), "Printer not responding");
    assert_eq!(StatusError::NoReply.describe_ru(), "Нет связи с принтером");
    assert_eq!(StatusError::NoReply.describe_en(), "Printer not responding");
    assert!(StatusError::Garbage(0xFF).describe_en().contains("baud rate"));
    let ok = status([0x12; 4]);
    assert_eq!(t.record(&Ok(ok)), PrinterState::Known(ok));
    assert_eq!(t.consecutive_timeouts(), 0);
    assert_eq!(t.record(&Err(StatusError::NoReply)), PrinterState::Unknown);
    assert_eq!(t.record(&Err(StatusError::Garbage(0xFF))), PrinterState::Unknown);
    assert_eq!((t.consecutive_timeouts(), t.garbage_replies()), (0, 1));
    let io = io::Error::new(ErrorKind::BrokenPipe, "unplugged");
    assert_eq!(t.record(&Err(StatusError::Io(io))), PrinterState::Disconnected);
    let json = serde_json::to_value(PrinterState::Known(ok)).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"state": "known", "online": true, "cover_open": false, "paper": "ok", "error": null})
    );
}

proptest! {
    #[test]
    fn status_parsing_never_panics(n in any::<u8>(), byte in any::<u8>(), replies in any::<[u8; 4]>()) {
        let _ = parse_status(n, byte);
        let _ = PrinterStatus::from_replies(replies).map(|s| (s.describe_ru(), s.describe_en()));
    }

    #[test]
    fn query_never_panics_and_accepts_only_valid_replies(
        stale in prop::collection::vec(any::<u8>(), 0..8),
        replies in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..3), 0..5),
    ) {
        let script: Vec<&[u8]> = replies.iter().map(Vec::as_slice).collect();
        let mut port = MockPort::answering(&script);
        port.pending.extend(stale);
        if query_status(&mut port, Duration::ZERO).is_ok() {
            for reply in &replies[..4] {
                let valid = reply.iter().any(|b| b & STATUS_FIXED_MASK == STATUS_FIXED_BITS);
                prop_assert!(valid);
            }
        }
    }
}
