//! Printer real-time status: `DLE EOT n` (`10 04 n`), n = 1 to 4.
//!
//! The printer answers one byte at once, even when offline. Bits 0, 1, 4 and 7 of every
//! reply are fixed (pattern `0xx1xx10`): a byte that breaks the pattern is noise, a
//! stale reply to something else, or a baud-rate mismatch, and is discarded. Silence is
//! "unknown", never "OK" — a well-known library reports paper OK when the printer is
//! switched off, and the cashier finds out from a customer without a receipt.
//!
//! [`parse_status`] reads one reply; [`query_status`] asks all four and combines them
//! into a [`PrinterStatus`]; [`StatusTracker`] turns repeated silence into
//! "disconnected".
//!
//! Query only between print jobs: the printer acts on `10 04 n` anywhere in the stream,
//! even inside image or barcode data, so a query in the middle of a command would both
//! corrupt the command and be answered out of turn.

use std::io::{ErrorKind, Read, Write};
use std::time::{Duration, Instant};

use serde::Serialize;

/// Bits 0, 1, 4 and 7: fixed in every reply.
pub const STATUS_FIXED_MASK: u8 = 0b1001_0011;
/// Their values: bits 1 and 4 set, 0 and 7 clear (`0x12`, also the all-clear reply).
pub const STATUS_FIXED_BITS: u8 = 0b0001_0010;

/// Stale bytes read and dropped before a query, at most: a printer never has more than
/// a few unread replies; a line producing more is noise and the query's own reply
/// validation deals with it.
pub const STALE_BYTES_MAX: usize = 256;

const fn bit(byte: u8, n: u8) -> bool {
    byte & (1 << n) != 0
}

/// `n = 1`: printer status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PrinterBits {
    /// b2: the drawer-kick connector's pin 3 (open or closed depends on the drawer).
    pub drawer_sensor: bool,
    /// b3
    pub offline: bool,
    /// b5
    pub waiting_recovery: bool,
    /// b6
    pub feed_button: bool,
}

/// `n = 2`: why the printer is offline.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct OfflineCause {
    /// b2
    pub cover_open: bool,
    /// b3
    pub paper_fed_by_button: bool,
    /// b5
    pub stopped_by_paper_end: bool,
    /// b6
    pub error: bool,
}

/// `n = 3`: which error.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ErrorCause {
    /// b2: e.g. a mechanism error cleared by opening and closing the cover.
    pub recoverable: bool,
    /// b3: the cutter is jammed.
    pub autocutter: bool,
    /// b5: the printer must be switched off and on (or serviced).
    pub unrecoverable: bool,
    /// b6: e.g. the head is too hot; clears by itself.
    pub auto_recoverable: bool,
}

/// `n = 4`: the paper roll sensors.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Paper {
    #[default]
    Ok,
    /// b2/b3 (`0x0C`): the roll is nearly used up; receipts still print.
    NearEnd,
    /// b5/b6 (`0x60`): no paper. Printers set the near-end bits too (`0x7E`) or not
    /// (`0x72`); out wins either way.
    Out,
}

/// One reply, typed by the request it answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusBits {
    Printer(PrinterBits),
    OfflineCause(OfflineCause),
    ErrorCause(ErrorCause),
    Paper(Paper),
}

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("printer not responding: no reply to the status request")]
    NoReply,
    #[error(
        "printer reply 0x{0:02x} is not a status byte (fixed bits 0xx1xx10 wrong): noise on the line, or the \
         baud rate differs from the printer's"
    )]
    Garbage(u8),
    #[error("DLE EOT {0}: n must be 1 to 4")]
    Request(u8),
    #[error("printer port: {0}")]
    Io(#[from] std::io::Error),
}

impl StatusError {
    /// In words for the cashier, as [`PrinterStatus::describe_ru`] for a known status.
    pub fn describe_ru(&self) -> String {
        match self {
            StatusError::NoReply | StatusError::Io(_) => "Нет связи с принтером".into(),
            StatusError::Garbage(_) => "Принтер отвечает неразборчиво: проверьте скорость порта".into(),
            StatusError::Request(_) => "Состояние принтера неизвестно".into(),
        }
    }

    /// In words for the technician and the logs.
    pub fn describe_en(&self) -> String {
        match self {
            StatusError::NoReply => "Printer not responding".into(),
            StatusError::Io(e) => format!("Printer not responding: {e}"),
            StatusError::Garbage(b) => format!("Printer replies garbage (0x{b:02x}): check the baud rate"),
            StatusError::Request(_) => "Printer state unknown".into(),
        }
    }
}

/// Validates and decodes the reply `byte` to `DLE EOT n`.
pub fn parse_status(n: u8, byte: u8) -> Result<StatusBits, StatusError> {
    if !(1..=4).contains(&n) {
        return Err(StatusError::Request(n));
    }
    if byte & STATUS_FIXED_MASK != STATUS_FIXED_BITS {
        return Err(StatusError::Garbage(byte));
    }
    let (b2, b3, b5, b6) = (bit(byte, 2), bit(byte, 3), bit(byte, 5), bit(byte, 6));
    Ok(match n {
        1 => StatusBits::Printer(PrinterBits { drawer_sensor: b2, offline: b3, waiting_recovery: b5, feed_button: b6 }),
        2 => StatusBits::OfflineCause(OfflineCause {
            cover_open: b2,
            paper_fed_by_button: b3,
            stopped_by_paper_end: b5,
            error: b6,
        }),
        3 => StatusBits::ErrorCause(ErrorCause {
            recoverable: b2,
            autocutter: b3,
            unrecoverable: b5,
            auto_recoverable: b6,
        }),
        // Each sensor drives two bits; some models set only one of them.
        _ => StatusBits::Paper(if b5 || b6 {
            Paper::Out
        } else if b2 || b3 {
            Paper::NearEnd
        } else {
            Paper::Ok
        }),
    })
}

/// The error a printer reports, the most serious one when several are set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PrinterError {
    Unrecoverable,
    Autocutter,
    Recoverable,
    AutoRecoverable,
    /// The error bit of `n = 2` without a cause in `n = 3`.
    Unspecified,
}

/// The four replies together.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct PrinterStatus {
    pub online: bool,
    pub cover_open: bool,
    pub paper: Paper,
    pub error: Option<PrinterError>,
}

impl PrinterStatus {
    /// Combines the replies to `DLE EOT 1`, `2`, `3` and `4`.
    pub fn from_bits(p: PrinterBits, offline: OfflineCause, error: ErrorCause, paper: Paper) -> PrinterStatus {
        let error = if error.unrecoverable {
            Some(PrinterError::Unrecoverable)
        } else if error.autocutter {
            Some(PrinterError::Autocutter)
        } else if error.recoverable {
            Some(PrinterError::Recoverable)
        } else if error.auto_recoverable {
            Some(PrinterError::AutoRecoverable)
        } else if offline.error {
            Some(PrinterError::Unspecified)
        } else {
            None
        };
        // A stop at paper end is paper out, whatever the (possibly lagging) roll sensor says.
        let paper = if offline.stopped_by_paper_end { Paper::Out } else { paper };
        PrinterStatus { online: !p.offline, cover_open: offline.cover_open, paper, error }
    }

    /// Validates and combines the four reply bytes, in request order.
    pub fn from_replies(replies: [u8; 4]) -> Result<PrinterStatus, StatusError> {
        let [StatusBits::Printer(p), StatusBits::OfflineCause(o), StatusBits::ErrorCause(e), StatusBits::Paper(paper)] = [
            parse_status(1, replies[0])?,
            parse_status(2, replies[1])?,
            parse_status(3, replies[2])?,
            parse_status(4, replies[3])?,
        ] else {
            unreachable!("parse_status types its reply by n");
        };
        Ok(PrinterStatus::from_bits(p, o, e, paper))
    }

    /// A receipt can be printed now (paper near end still prints).
    pub fn ready(&self) -> bool {
        self.online && !self.cover_open && self.paper != Paper::Out && self.error.is_none()
    }

    /// In words, for the cashier: `Готов` or the problems, most pressing first.
    pub fn describe_ru(&self) -> String {
        self.describe(Lang::Ru)
    }

    /// In words, for the technician and the logs.
    pub fn describe_en(&self) -> String {
        self.describe(Lang::En)
    }

    fn describe(&self, lang: Lang) -> String {
        let ru = lang == Lang::Ru;
        let mut parts: Vec<&str> = Vec::new();
        if self.paper == Paper::Out {
            parts.push(if ru { "Нет бумаги" } else { "Paper out" });
        }
        if self.cover_open {
            parts.push(if ru { "Крышка открыта" } else { "Cover open" });
        }
        if let Some(e) = self.error {
            parts.push(match (e, ru) {
                (PrinterError::Unrecoverable, true) => "Неустранимая ошибка: выключите и включите принтер",
                (PrinterError::Unrecoverable, false) => "Unrecoverable error: switch the printer off and on",
                (PrinterError::Autocutter, true) => "Ошибка отрезчика: замята бумага",
                (PrinterError::Autocutter, false) => "Autocutter error: paper jammed at the cutter",
                (PrinterError::Recoverable, true) => "Ошибка: откройте и закройте крышку",
                (PrinterError::Recoverable, false) => "Recoverable error: open and close the cover",
                (PrinterError::AutoRecoverable, true) => "Ошибка, пройдёт сама (перегрев головки)",
                (PrinterError::AutoRecoverable, false) => "Error that clears by itself (print head too hot)",
                (PrinterError::Unspecified, true) => "Ошибка принтера",
                (PrinterError::Unspecified, false) => "Printer error",
            });
        }
        // Offline with none of the causes above: say so plainly.
        if !self.online && parts.is_empty() {
            parts.push(if ru { "Принтер не в сети" } else { "Printer offline" });
        }
        if self.paper == Paper::NearEnd {
            parts.push(if ru { "Бумага заканчивается" } else { "Paper near end" });
        }
        if parts.is_empty() {
            parts.push(if ru { "Готов" } else { "Ready" });
        }
        parts.join("; ")
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Lang {
    Ru,
    En,
}

/// Asks `DLE EOT 1` to `4`, one at a time, and combines the replies. Blocking.
///
/// Before each request the pending input is read and dropped (a stale byte belongs to
/// an earlier question). Each reply must come within `timeout_per_query`; bytes that
/// break the fixed-bit pattern are discarded while waiting (resynchronisation), and a
/// wait that saw only such bytes ends in [`StatusError::Garbage`]. Silence ends in
/// [`StatusError::NoReply`].
///
/// The port's own read timeout is how long one read blocks: keep it short (10–50 ms),
/// or both the draining and the deadline become that coarse.
pub fn query_status(port: &mut (impl Read + Write), timeout_per_query: Duration) -> Result<PrinterStatus, StatusError> {
    let mut replies = [0u8; 4];
    for (n, reply) in (1u8..=4).zip(replies.iter_mut()) {
        *reply = query_byte(port, n, timeout_per_query)?;
    }
    PrinterStatus::from_replies(replies)
}

/// One request: drop stale input, send `10 04 n`, wait for a valid reply byte.
pub fn query_byte(port: &mut (impl Read + Write), n: u8, timeout: Duration) -> Result<u8, StatusError> {
    if !(1..=4).contains(&n) {
        return Err(StatusError::Request(n));
    }
    discard_pending(port)?;
    port.write_all(&crate::escpos::status_request(n))?;
    port.flush()?;
    let deadline = Instant::now() + timeout;
    let mut first_garbage = None;
    loop {
        let mut byte = [0u8; 1];
        match port.read(&mut byte) {
            Ok(1) => match parse_status(n, byte[0]) {
                Ok(_) => return Ok(byte[0]),
                Err(_) => {
                    first_garbage.get_or_insert(byte[0]);
                }
            },
            // End of stream, or a platform that reads 0 on timeout: nothing came.
            Ok(_) => std::thread::sleep(Duration::from_millis(1)),
            Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(1)),
            Err(e) if e.kind() == ErrorKind::TimedOut || e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
        if Instant::now() >= deadline {
            return Err(first_garbage.map_or(StatusError::NoReply, StatusError::Garbage));
        }
    }
}

/// Reads and drops what is already waiting, up to [`STALE_BYTES_MAX`] bytes; stops at
/// the first read that finds nothing (which takes one port read timeout).
fn discard_pending(port: &mut impl Read) -> Result<(), StatusError> {
    let mut dropped = 0;
    let mut buf = [0u8; 64];
    while dropped < STALE_BYTES_MAX {
        match port.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                tracing::debug!(stale = %crate::escape(&buf[..n]), "dropped stale printer bytes");
                dropped += n;
            }
            Err(e) if matches!(e.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock) => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// What is known about a printer over time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum PrinterState {
    /// The last query was answered.
    Known(PrinterStatus),
    /// Not asked yet, or the last answers were silence or noise, fewer times in a row
    /// than the disconnect threshold: maybe busy, maybe gone.
    Unknown,
    /// Silent for the threshold of queries in a row, or the port failed.
    Disconnected,
}

impl PrinterState {
    pub fn describe_ru(&self) -> String {
        match self {
            PrinterState::Known(s) => s.describe_ru(),
            PrinterState::Unknown => "Состояние принтера неизвестно".into(),
            PrinterState::Disconnected => "Нет связи с принтером".into(),
        }
    }

    pub fn describe_en(&self) -> String {
        match self {
            PrinterState::Known(s) => s.describe_en(),
            PrinterState::Unknown => "Printer state unknown".into(),
            PrinterState::Disconnected => "Printer not responding".into(),
        }
    }
}

/// Turns query results into a [`PrinterState`]: one timeout is "unknown" (the printer
/// may be busy feeding), `timeouts_to_disconnect` in a row are "disconnected".
#[derive(Clone, Debug)]
pub struct StatusTracker {
    timeouts_to_disconnect: u32,
    consecutive_timeouts: u32,
    garbage_replies: u64,
    state: PrinterState,
}

impl StatusTracker {
    /// Three polls: a second or two of silence at the usual poll interval.
    pub const TIMEOUTS_TO_DISCONNECT_DEFAULT: u32 = 3;

    pub fn new(timeouts_to_disconnect: u32) -> StatusTracker {
        StatusTracker {
            timeouts_to_disconnect: timeouts_to_disconnect.max(1),
            consecutive_timeouts: 0,
            garbage_replies: 0,
            state: PrinterState::Unknown,
        }
    }

    /// Records the result of a [`query_status`] and returns the new state.
    pub fn record(&mut self, result: &Result<PrinterStatus, StatusError>) -> PrinterState {
        self.state = match result {
            Ok(status) => {
                self.consecutive_timeouts = 0;
                PrinterState::Known(*status)
            }
            Err(StatusError::NoReply) => {
                self.consecutive_timeouts = self.consecutive_timeouts.saturating_add(1);
                if self.consecutive_timeouts >= self.timeouts_to_disconnect {
                    PrinterState::Disconnected
                } else {
                    PrinterState::Unknown
                }
            }
            // Something answers, but not sense: alive, state unknown; counted.
            Err(StatusError::Garbage(_)) => {
                self.consecutive_timeouts = 0;
                self.garbage_replies += 1;
                PrinterState::Unknown
            }
            Err(StatusError::Io(_)) => {
                self.consecutive_timeouts = self.timeouts_to_disconnect;
                PrinterState::Disconnected
            }
            Err(StatusError::Request(_)) => PrinterState::Unknown,
        };
        self.state
    }

    pub fn state(&self) -> PrinterState {
        self.state
    }

    pub fn consecutive_timeouts(&self) -> u32 {
        self.consecutive_timeouts
    }

    /// Replies that broke the fixed-bit pattern, since the tracker was made.
    pub fn garbage_replies(&self) -> u64 {
        self.garbage_replies
    }
}

impl Default for StatusTracker {
    fn default() -> Self {
        StatusTracker::new(Self::TIMEOUTS_TO_DISCONNECT_DEFAULT)
    }
}

#[cfg(test)]
mod tests;
