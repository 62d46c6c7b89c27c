//! ESC/POS receipt-printer interpreter: the heart of a virtual receipt printer.
//!
//! [`Interpreter`] is sans-IO. Feed it the bytes a POS host writes to the printer, in
//! chunks of any size ([`Interpreter::push`]), and it returns what a real printer would
//! produce: status replies to write back to the host, finished receipts rendered as
//! text, cash-drawer kicks, and reports of byte sequences it does not understand.
//! A command split across pushes is buffered until complete, so the outputs never
//! depend on how the stream was chunked.
//!
//! # Pipeline
//!
//! Bytes go through two stages, like the receive buffer and print engine of a real printer:
//!
//! 1. **Framing**, at reception: the stream is cut into commands. Real-time commands
//!    (`DLE EOT n` status, `DLE ENQ n` recovery) are answered at once, even while offline.
//!    Unknown bytes are reported at once ([`Output::Unknown`]) and skipped one byte at a
//!    time, so the rest of an unknown sequence is re-read as text or commands.
//! 2. **Printing**: while online every framed command runs immediately. While offline
//!    (see [`Interpreter::is_online`]) commands are held in the input buffer and run in
//!    order when the printer comes back online. The setters that can bring it back
//!    (`set_paper`, `set_cover_open`, `set_offline`) return the outputs of that catch-up.
//!
//! # Commands
//!
//! | Bytes | Command |
//! |---|---|
//! | `LF`, `HT`, `CR` | print line; four spaces; ignored |
//! | `ESC @` | initialise: styles, table 0, UTF-8 off, Chinese mode per [`Model`] |
//! | `ESC E n`, `ESC - n`, `ESC a n`, `GS ! n` | bold, underline (no effect), align, size |
//! | `ESC t n` | code table |
//! | `ESC d n`, `ESC J n` | print and feed lines; feed dots (no effect) |
//! | `GS V m [n]` | cut: ends the [`Receipt`] |
//! | `ESC p m t1 t2` | drawer kick |
//! | `GS h`, `GS w`, `GS H` | barcode height, module width, HRI position (kept for rendering) |
//! | `GS f` | HRI font (no effect) |
//! | `GS k m ...` | barcode, both forms |
//! | `GS ( k pL pH cn fn ...` | QR module size, error level, store and print; other functions skipped |
//! | `GS v 0 m xL xH yL yH ...` | raster image (bits kept; the scale `m` is ignored) |
//! | `FS .`, `FS &`, `FS ( C ...` | Chinese mode off/on, UTF-8 on/off |
//! | `GS r 1` | paper status, in stream order |
//! | `DLE EOT n`, `DLE ENQ n` | real-time status, recovery |
//!
//! Anything else (including common commands such as `ESC !` or `GS r 2`) is unknown.
//!
//! # Behaviour choices and simplifications
//!
//! - Real-time commands are recognised only at command boundaries, not inside another
//!   command's parameters or data (real printers intercept them anywhere).
//! - `DLE ENQ 2` empties the offline buffer: what a host sends to cancel the rest of a
//!   receipt cut short by paper out before it reprints it whole. `DLE ENQ 1` is accepted
//!   without effect (real printers act on it only during a recoverable error, such as an
//!   autocutter jam, which this model has none of). Paper-out and cover-open recover
//!   through the setters.
//! - The offline input buffer holds parsed commands but is accounted in stream bytes, up
//!   to [`INPUT_BUFFER_BYTES_MAX`]. Once a command does not fit, it and everything after it
//!   is dropped and counted ([`Interpreter::dropped_bytes`]) until the buffer drains, like a
//!   full FIFO. Text is kept byte by byte up to the limit; any other command is kept or
//!   dropped as a whole, so a truncated command never desynchronises the stream. Memory
//!   is the parsed commands: at most a small constant factor over the byte count for
//!   streams of tiny commands, and consecutive text is stored as one run.
//! - A line records the style (bold, alignment, size) in effect when its first text byte
//!   arrived; a line with no text uses the style at its LF. Epson applies `ESC a` only at
//!   the start of a line, so this matches real alignment; size and bold changes inside a
//!   line are not recorded.
//! - Text is decoded through the code table when the line is printed, or earlier if the
//!   table or encoding changes mid-line. Tables: 0 = ASCII (bytes >= 0x80 become '?'),
//!   17 = PC866, 46 = Windows-1251; any other table decodes like table 0. `FS ( C` UTF-8
//!   mode overrides the table (and Chinese mode) until `ESC @`.
//! - Chinese double-byte mode ([`Model::Clone`]) turns each byte >= 0x80 plus the byte
//!   after it into one U+FFFD: the point is to make a missing `FS .` visible, not to
//!   render GB18030.
//! - `ESC @` also discards the unprinted text of the current line, as real printers clear
//!   their print buffer.
//! - A line reaching [`LINE_BYTES_MAX`] bytes is printed and continued on a new line (a
//!   memory bound, not column wrapping). A receipt in progress reaching
//!   [`RECEIPT_BYTES_MAX`] of memory is emitted with [`CutKind::Uncut`] (a paper-length
//!   bound). Together with the input-buffer cap this bounds the interpreter's memory.
//! - `ESC d n` prints the pending text (if any) as a line, then `n` empty lines. The dot
//!   feeds (`ESC J`, and the feed of `GS V 65/66 n`) add no lines.
//! - Barcodes, QR codes and images become their own line (pending text is printed first)
//!   using the current style. `GS ( k` print with no stored QR data prints nothing.
//! - Images over [`IMAGE_BYTES_MAX`] data bytes, out-of-range parameters (alignment 7, cut
//!   mode 5, ...) and NUL-terminated barcodes without a NUL within 255 bytes are unknown:
//!   the leading byte is reported and skipped.
//! - `GS r 1` replies with the same byte as `DLE EOT 4` (real printers use other bit
//!   positions for `GS r`). Paper out reports near-end as well (`0x7E`), since the
//!   near-end sensor is also uncovered when the roll is gone.
//! - Character size beyond 8 is clamped to 8. [`Receipt::text`] ignores character size.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::mem;

/// Capacity of the input buffer that holds data while the printer is offline, in stream bytes.
pub const INPUT_BUFFER_BYTES_MAX: usize = 64 * 1024;
/// Largest raster image (`GS v 0`) accepted, in data bytes.
pub const IMAGE_BYTES_MAX: usize = 1024 * 1024;
/// Characters per line of 80 mm paper in font A; [`Receipt::text`] aligns within this width.
pub const COLUMNS: usize = 48;
/// Bytes of text after which a line is printed and continued on the next line.
pub const LINE_BYTES_MAX: usize = 4096;
/// Approximate memory of a receipt in progress after which it is emitted uncut.
pub const RECEIPT_BYTES_MAX: usize = 1024 * 1024;

/// Longest data of the NUL-terminated barcode form (`GS k m` with m = 0..6).
const BARCODE_DATA_MAX: usize = 255;
/// Bits 1 and 4 are set and bits 0 and 7 clear in every status byte.
const STATUS_FIXED: u8 = 0x12;
/// Capacity the framer keeps between pushes; more is only needed transiently.
const RX_CAPACITY_KEPT: usize = 1024;

const DLE: u8 = 0x10;
const ESC: u8 = 0x1B;
const FS: u8 = 0x1C;
const GS: u8 = 0x1D;

/// Printer firmware profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Model {
    /// Genuine Epson: never in Chinese double-byte mode.
    Epson,
    /// Typical clone: in Chinese double-byte mode after power-on and every `ESC @`,
    /// until `FS .`.
    Clone,
}

/// Paper roll sensor state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PaperState {
    /// Paper present.
    #[default]
    Ok,
    /// Roll nearly empty; the printer keeps printing.
    NearEnd,
    /// No paper; the printer goes offline.
    Out,
}

/// Line justification (`ESC a`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Align {
    /// `ESC a 0`.
    #[default]
    Left,
    /// `ESC a 1`.
    Centre,
    /// `ESC a 2`.
    Right,
}

/// How a receipt was separated from the roll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CutKind {
    /// `GS V 0`/`48`/`65`.
    Full,
    /// `GS V 1`/`49`/`66`.
    Partial,
    /// Not cut: taken with [`Interpreter::take_partial`], or forced out at [`RECEIPT_BYTES_MAX`].
    Uncut,
}

/// Where a barcode's human-readable interpretation is printed (`GS H n`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Hri {
    /// Not printed (the power-on default).
    #[default]
    None,
    /// Above the bars.
    Above,
    /// Below the bars.
    Below,
    /// Above and below.
    Both,
}

/// QR error-correction level (`GS ( k` function 69).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QrEcLevel {
    /// About 7 % recoverable (the power-on default).
    #[default]
    L,
    /// About 15 %.
    M,
    /// About 25 %.
    Q,
    /// About 30 %.
    H,
}

/// What a [`Line`] holds. Barcodes, QR codes and images carry what a renderer needs
/// to draw them as the printer would (see [`crate::render`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineKind {
    /// Characters, in [`Line::text`].
    Text,
    /// A 1D barcode (`GS k`).
    Barcode {
        /// Symbology name, e.g. `CODE128`, `EAN-13`.
        symbology: String,
        /// Human-readable content (CODE128 code-set escapes removed).
        data: String,
        /// Width of the narrowest bar in dots (`GS w`).
        module_dots: u8,
        /// Bar height in dots (`GS h`).
        height_dots: u8,
        /// Where the human-readable text goes (`GS H`).
        hri: Hri,
    },
    /// A QR code (`GS ( k` print).
    Qr {
        /// The stored symbol data, as sent.
        data: Vec<u8>,
        /// Side of one module in dots (`GS ( k` function 67).
        module_dots: u8,
        /// Error-correction level (`GS ( k` function 69).
        ec_level: QrEcLevel,
    },
    /// A raster image (`GS v 0`).
    Image {
        /// Width in dots (8 per data byte of a row).
        width_dots: u32,
        /// Height in dots (rows).
        height_dots: u32,
        /// The raster as sent: rows top to bottom, `width_dots / 8` bytes per row, the
        /// most significant bit leftmost, 1 = black.
        bits: Vec<u8>,
    },
}

/// One printed line. For non-text kinds `text` is empty; see [`Line::rendered`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// Decoded characters (empty for non-text kinds).
    pub text: String,
    /// Justification.
    pub align: Align,
    /// Emphasis (`ESC E`).
    pub bold: bool,
    /// Character width multiplier, 1..=8.
    pub width: u8,
    /// Character height multiplier, 1..=8.
    pub height: u8,
    /// Text, or the barcode, QR code or image printed on this line.
    pub kind: LineKind,
}

impl Line {
    /// The line as plain text: its text, or a bracketed placeholder for barcodes, QR codes
    /// and images.
    pub fn rendered(&self) -> Cow<'_, str> {
        match &self.kind {
            LineKind::Text => Cow::Borrowed(&self.text),
            LineKind::Barcode { symbology, data, .. } => format!("[BARCODE {symbology}: {data}]").into(),
            LineKind::Qr { data, .. } => format!("[QR: {}]", String::from_utf8_lossy(data)).into(),
            LineKind::Image { width_dots, height_dots, .. } => format!("[IMAGE {width_dots}x{height_dots}]").into(),
        }
    }

    /// Approximate heap and inline memory, for the receipt-size bound.
    fn footprint(&self) -> usize {
        let payload = match &self.kind {
            LineKind::Text => 0,
            LineKind::Barcode { symbology, data, .. } => symbology.len() + data.len(),
            LineKind::Qr { data, .. } => data.len(),
            LineKind::Image { bits, .. } => bits.len(),
        };
        mem::size_of::<Line>() + self.text.len() + payload
    }
}

/// The lines printed between two cuts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// Printed lines, top to bottom.
    pub lines: Vec<Line>,
    /// How the receipt ended.
    pub cut: CutKind,
}

impl Receipt {
    /// Plain-text rendering, one `\n`-terminated line per [`Line`]. Centre and right
    /// alignment pad with spaces to [`COLUMNS`] characters (chars, not bytes).
    pub fn text(&self) -> String {
        let mut text = String::new();
        for line in &self.lines {
            let body = line.rendered();
            let slack = COLUMNS.saturating_sub(body.chars().count());
            let pad = match line.align {
                Align::Left => 0,
                Align::Centre => slack / 2,
                Align::Right => slack,
            };
            text.push_str(&" ".repeat(pad));
            text.push_str(&body);
            text.push('\n');
        }
        text
    }
}

/// What the printer did in response to input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Bytes the printer answers to the host (status replies), to be written back.
    Reply(Vec<u8>),
    /// A finished receipt (emitted at a cut command).
    Receipt(Receipt),
    /// The cash drawer was kicked (`ESC p`).
    DrawerKick {
        /// 0 = connector pin 2, 1 = pin 5.
        pin: u8,
        /// Pulse on time in ms.
        on_ms: u16,
        /// Pulse off time in ms.
        off_ms: u16,
    },
    /// A byte the interpreter does not understand at a command boundary, with its offset
    /// in the whole stream since creation. It is skipped and parsing resumes at the next byte.
    Unknown {
        /// Stream offset of `byte`, counted from the first byte pushed.
        offset: u64,
        /// The skipped byte (the first byte of the unknown sequence).
        byte: u8,
    },
}

/// The virtual printer. See the module documentation.
#[derive(Debug)]
pub struct Interpreter {
    framer: Framer,
    input: InputBuffer,
    sensors: Sensors,
    printer: Printer,
    bytes_received: u64,
}

impl Interpreter {
    /// A printer just powered on: online, paper OK, cover closed.
    pub fn new(model: Model) -> Self {
        Interpreter {
            framer: Framer::new(model),
            input: InputBuffer::default(),
            sensors: Sensors::default(),
            printer: Printer::new(model),
            bytes_received: 0,
        }
    }

    /// Feeds bytes written by the host; returns what the printer did in response.
    #[must_use = "outputs contain receipts and replies for the host"]
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Output> {
        self.bytes_received += bytes.len() as u64;
        self.framer.feed(bytes);
        let mut out = Vec::new();
        while let Some(event) = self.framer.next_event() {
            match event {
                Event::Unknown { offset, byte } => out.push(Output::Unknown { offset, byte }),
                Event::Command(Cmd::RealTimeStatus(n), _) => {
                    out.push(Output::Reply(vec![self.sensors.status(n)]));
                }
                // `DLE ENQ 2` throws away what waits in the buffer, so a host can cancel
                // the rest of a receipt cut short by paper out and reprint it whole.
                Event::Command(Cmd::Recover(2), _) => drop(self.input.take()),
                Event::Command(Cmd::Recover(_), _) => {}
                Event::Command(cmd, _) if self.sensors.online() => {
                    self.printer.execute(cmd, &self.sensors, &mut out);
                }
                Event::Command(cmd, cost) => self.input.push(cmd, cost),
            }
        }
        out
    }

    /// Lines printed since the last cut: what a receipt cut short would show.
    /// Text not yet ended by LF is still in the print buffer and not included.
    pub fn pending_lines(&self) -> &[Line] {
        &self.printer.lines
    }

    /// Takes the lines printed since the last cut as an [`CutKind::Uncut`] receipt, if any.
    pub fn take_partial(&mut self) -> Option<Receipt> {
        if self.printer.lines.is_empty() {
            return None;
        }
        Some(self.printer.take_receipt(CutKind::Uncut))
    }

    /// Sets the paper sensor. If this brings the printer online, buffered data is printed
    /// and its outputs returned.
    #[must_use = "outputs contain receipts and replies for the host"]
    pub fn set_paper(&mut self, paper: PaperState) -> Vec<Output> {
        self.sensors.paper = paper;
        self.resume()
    }

    /// Opens or closes the cover. Closing it may bring the printer online; see [`Self::set_paper`].
    #[must_use = "outputs contain receipts and replies for the host"]
    pub fn set_cover_open(&mut self, open: bool) -> Vec<Output> {
        self.sensors.cover_open = open;
        self.resume()
    }

    /// Forces the printer offline (or releases it); see [`Self::set_paper`].
    #[must_use = "outputs contain receipts and replies for the host"]
    pub fn set_offline(&mut self, offline: bool) -> Vec<Output> {
        self.sensors.offline = offline;
        self.resume()
    }

    /// The paper sensor.
    pub fn paper(&self) -> PaperState {
        self.sensors.paper
    }

    /// Whether the cover is open.
    pub fn cover_open(&self) -> bool {
        self.sensors.cover_open
    }

    /// Whether the printer was forced offline with [`Self::set_offline`].
    pub fn forced_offline(&self) -> bool {
        self.sensors.offline
    }

    /// Online unless forced offline, the cover is open or the paper is out.
    pub fn is_online(&self) -> bool {
        self.sensors.online()
    }

    /// Bytes pushed since creation.
    pub fn bytes_received(&self) -> u64 {
        self.bytes_received
    }

    /// Bytes held in the input buffer while offline (at most [`INPUT_BUFFER_BYTES_MAX`]).
    pub fn buffered_bytes(&self) -> usize {
        self.input.bytes
    }

    /// Bytes lost because the input buffer was full.
    pub fn dropped_bytes(&self) -> u64 {
        self.input.dropped
    }

    fn resume(&mut self) -> Vec<Output> {
        let mut out = Vec::new();
        if self.sensors.online() {
            for cmd in self.input.take() {
                self.printer.execute(cmd, &self.sensors, &mut out);
            }
            // If overflow dropped an `ESC @`/`FS .`/`FS ( C`, the framer applied it and the
            // printer did not; the framer's mode is what the following bytes are framed in.
            self.printer.mode = self.framer.mode;
        }
        out
    }
}

/// A framed command. Parameters are validated; payloads are owned.
#[derive(Debug)]
enum Cmd {
    /// Printable bytes; in double-byte mode, whole pairs only.
    Text(Vec<u8>),
    Tab,
    LineFeed,
    Init,
    Bold(bool),
    Align(Align),
    Size {
        width: u8,
        height: u8,
    },
    CodeTable(u8),
    FeedLines(u8),
    Cut(CutKind),
    DrawerKick {
        pin: u8,
        on_ms: u16,
        off_ms: u16,
    },
    Barcode {
        symbology: &'static str,
        data: Vec<u8>,
    },
    BarcodeHeight(u8),
    BarcodeModule(u8),
    BarcodeHri(Hri),
    QrStore(Vec<u8>),
    QrModule(u8),
    QrEcLevel(QrEcLevel),
    QrPrint,
    Image {
        width_dots: u32,
        height_dots: u32,
        bits: Vec<u8>,
    },
    ChineseMode(bool),
    Utf8Mode(bool),
    /// `GS r 1`: answered in stream order, so only once everything before it has printed.
    PaperStatus,
    /// `DLE EOT n`: answered on reception.
    RealTimeStatus(u8),
    /// `DLE ENQ n`: 1 resumes from the line of the error, 2 clears the buffers.
    Recover(u8),
    /// Valid, but with no effect on the simulation (underline, barcode height, CR, ...).
    Accepted,
}

/// Character-decoding mode. It changes how bytes are framed (double-byte pairs), so the
/// framer and the printer each track it from the same commands.
#[derive(Debug, Clone, Copy)]
struct CharMode {
    chinese: bool,
    utf8: bool,
}

impl CharMode {
    fn power_on(model: Model) -> Self {
        CharMode { chinese: model == Model::Clone, utf8: false }
    }

    fn apply(&mut self, cmd: &Cmd, model: Model) {
        match *cmd {
            Cmd::Init => *self = Self::power_on(model),
            Cmd::ChineseMode(on) => self.chinese = on && model == Model::Clone,
            Cmd::Utf8Mode(on) => self.utf8 = on,
            _ => {}
        }
    }

    fn double_byte(self) -> bool {
        self.chinese && !self.utf8
    }
}

#[derive(Debug)]
enum Event {
    /// A command and the number of stream bytes it occupied.
    Command(Cmd, usize),
    Unknown {
        offset: u64,
        byte: u8,
    },
}

/// What [`parse`] found at the start of the unframed bytes.
enum Frame {
    Incomplete,
    Unknown,
    /// A whole command of this many bytes.
    Command(usize, Cmd),
    /// A header of this many bytes; its payload follows and is streamed, not buffered.
    Payload(usize, Payload),
}

#[derive(Debug)]
struct Payload {
    remaining: usize,
    /// Stream bytes of the whole command, header included.
    cost: usize,
    sink: Sink,
}

#[derive(Debug)]
enum Sink {
    /// Skip the payload, then emit this command.
    Discard(Cmd),
    /// Collect the payload as QR data.
    QrData(Vec<u8>),
    /// Collect the payload as raster bits.
    ImageData { width_dots: u32, height_dots: u32, bits: Vec<u8> },
}

impl Payload {
    fn frame(header: usize, len: usize, sink: Sink) -> Frame {
        Frame::Payload(header, Payload { remaining: len, cost: header + len, sink })
    }

    fn into_cmd(self) -> Cmd {
        match self.sink {
            Sink::Discard(cmd) => cmd,
            Sink::QrData(data) => Cmd::QrStore(data),
            Sink::ImageData { width_dots, height_dots, bits } => Cmd::Image { width_dots, height_dots, bits },
        }
    }
}

/// Cuts the byte stream into commands. Holds at most one incomplete command (a few
/// hundred bytes); long payloads are streamed through [`Payload`].
#[derive(Debug)]
struct Framer {
    model: Model,
    mode: CharMode,
    rx: Vec<u8>,
    /// Start of the unframed bytes in `rx`.
    pos: usize,
    /// Stream offset of `rx[pos]`.
    offset: u64,
    payload: Option<Payload>,
}

impl Framer {
    fn new(model: Model) -> Self {
        Framer { model, mode: CharMode::power_on(model), rx: Vec::new(), pos: 0, offset: 0, payload: None }
    }

    fn feed(&mut self, bytes: &[u8]) {
        self.rx.drain(..self.pos);
        self.pos = 0;
        self.rx.shrink_to(RX_CAPACITY_KEPT);
        self.rx.extend_from_slice(bytes);
    }

    fn advance(&mut self, len: usize) {
        self.pos += len;
        self.offset += len as u64;
    }

    fn next_event(&mut self) -> Option<Event> {
        loop {
            let buf = &self.rx[self.pos..];
            if let Some(payload) = &mut self.payload {
                let take = payload.remaining.min(buf.len());
                match &mut payload.sink {
                    Sink::QrData(data) | Sink::ImageData { bits: data, .. } => data.extend_from_slice(&buf[..take]),
                    Sink::Discard(_) => {}
                }
                payload.remaining -= take;
                let done = payload.remaining == 0;
                self.advance(take);
                if !done {
                    return None;
                }
                let payload = self.payload.take()?;
                let cost = payload.cost;
                return Some(Event::Command(payload.into_cmd(), cost));
            }
            match parse(buf, self.mode.double_byte()) {
                Frame::Incomplete => return None,
                Frame::Unknown => {
                    let event = Event::Unknown { offset: self.offset, byte: buf[0] };
                    self.advance(1);
                    return Some(event);
                }
                Frame::Command(len, cmd) => {
                    self.advance(len);
                    self.mode.apply(&cmd, self.model);
                    return Some(Event::Command(cmd, len));
                }
                Frame::Payload(header, payload) => {
                    self.advance(header);
                    self.payload = Some(payload);
                }
            }
        }
    }
}

fn parse(buf: &[u8], double_byte: bool) -> Frame {
    let Some(&first) = buf.first() else {
        return Frame::Incomplete;
    };
    match first {
        b'\n' => Frame::Command(1, Cmd::LineFeed),
        b'\r' => Frame::Command(1, Cmd::Accepted),
        b'\t' => Frame::Command(1, Cmd::Tab),
        DLE => parse_dle(buf),
        ESC => parse_esc(buf),
        FS => parse_fs(buf),
        GS => parse_gs(buf),
        0x00..=0x1F => Frame::Unknown,
        _ => parse_text(buf, double_byte),
    }
}

/// A command of exactly `len` bytes, built (and validated) by `build` once all are here.
fn fixed(buf: &[u8], len: usize, build: impl FnOnce(&[u8]) -> Option<Cmd>) -> Frame {
    match buf.get(..len) {
        None => Frame::Incomplete,
        Some(bytes) => build(bytes).map_or(Frame::Unknown, |cmd| Frame::Command(len, cmd)),
    }
}

/// The `pL pH` parameter-length pair of the `GS (` / `FS (` families.
fn param_len(buf: &[u8]) -> Option<usize> {
    match buf.get(3..5) {
        Some(&[lo, hi]) => Some(usize::from(u16::from_le_bytes([lo, hi]))),
        _ => None,
    }
}

fn parse_text(buf: &[u8], double_byte: bool) -> Frame {
    let mut len = 0;
    while let Some(&byte) = buf.get(len) {
        let width = if double_byte && byte >= 0x80 { 2 } else { 1 };
        if byte < 0x20 || len + width > buf.len() {
            break;
        }
        len += width;
    }
    match len {
        0 => Frame::Incomplete, // the second byte of a double-byte pair is yet to come
        _ => Frame::Command(len, Cmd::Text(buf[..len].to_vec())),
    }
}

fn parse_dle(buf: &[u8]) -> Frame {
    match buf.get(1) {
        None => Frame::Incomplete,
        Some(0x04) => fixed(buf, 3, |b| matches!(b[2], 1..=4).then_some(Cmd::RealTimeStatus(b[2]))),
        Some(0x05) => fixed(buf, 3, |b| matches!(b[2], 1 | 2).then_some(Cmd::Recover(b[2]))),
        Some(_) => Frame::Unknown,
    }
}

fn parse_esc(buf: &[u8]) -> Frame {
    match buf.get(1) {
        None => Frame::Incomplete,
        Some(b'@') => Frame::Command(2, Cmd::Init),
        Some(b'E') => fixed(buf, 3, |b| Some(Cmd::Bold(b[2] & 1 == 1))),
        Some(b'-' | b'J') => fixed(buf, 3, |_| Some(Cmd::Accepted)),
        Some(b'a') => fixed(buf, 3, |b| {
            let align = match b[2] {
                0 | b'0' => Align::Left,
                1 | b'1' => Align::Centre,
                2 | b'2' => Align::Right,
                _ => return None,
            };
            Some(Cmd::Align(align))
        }),
        Some(b't') => fixed(buf, 3, |b| Some(Cmd::CodeTable(b[2]))),
        Some(b'd') => fixed(buf, 3, |b| Some(Cmd::FeedLines(b[2]))),
        Some(b'p') => fixed(buf, 5, |b| {
            let pin = match b[2] {
                0 | b'0' => 0,
                1 | b'1' => 1,
                _ => return None,
            };
            Some(Cmd::DrawerKick { pin, on_ms: u16::from(b[3]) * 2, off_ms: u16::from(b[4]) * 2 })
        }),
        Some(_) => Frame::Unknown,
    }
}

fn parse_fs(buf: &[u8]) -> Frame {
    match (buf.get(1), buf.get(2)) {
        (None, _) => Frame::Incomplete,
        (Some(b'.'), _) => Frame::Command(2, Cmd::ChineseMode(false)),
        (Some(b'&'), _) => Frame::Command(2, Cmd::ChineseMode(true)),
        (Some(b'('), None) => Frame::Incomplete,
        (Some(b'('), Some(b'C')) => {
            let Some(len) = param_len(buf) else {
                return Frame::Incomplete;
            };
            if len != 2 {
                return Payload::frame(5, len, Sink::Discard(Cmd::Accepted));
            }
            // fn 0x30 selects the character encoding: m = 1 one-byte tables, m = 2 UTF-8.
            fixed(buf, 7, |b| match (b[5], b[6]) {
                (0x30, 1 | b'1') => Some(Cmd::Utf8Mode(false)),
                (0x30, 2 | b'2') => Some(Cmd::Utf8Mode(true)),
                _ => Some(Cmd::Accepted),
            })
        }
        (Some(_), _) => Frame::Unknown,
    }
}

fn parse_gs(buf: &[u8]) -> Frame {
    let Some(&command) = buf.get(1) else {
        return Frame::Incomplete;
    };
    match (command, buf.get(2)) {
        (b'!', _) => {
            fixed(buf, 3, |b| Some(Cmd::Size { width: (b[2] >> 4).min(7) + 1, height: (b[2] & 0x0F).min(7) + 1 }))
        }
        // Out-of-range values are ignored, as printers do, rather than reported.
        (b'h', _) => fixed(buf, 3, |b| Some(if b[2] == 0 { Cmd::Accepted } else { Cmd::BarcodeHeight(b[2]) })),
        (b'w', _) => {
            fixed(buf, 3, |b| Some(if (1..=6).contains(&b[2]) { Cmd::BarcodeModule(b[2]) } else { Cmd::Accepted }))
        }
        (b'H', _) => fixed(buf, 3, |b| {
            Some(match b[2] {
                0 | b'0' => Cmd::BarcodeHri(Hri::None),
                1 | b'1' => Cmd::BarcodeHri(Hri::Above),
                2 | b'2' => Cmd::BarcodeHri(Hri::Below),
                3 | b'3' => Cmd::BarcodeHri(Hri::Both),
                _ => Cmd::Accepted,
            })
        }),
        (b'f', _) => fixed(buf, 3, |_| Some(Cmd::Accepted)),
        (b'r', _) => fixed(buf, 3, |b| matches!(b[2], 1 | b'1').then_some(Cmd::PaperStatus)),
        (b'V' | b'k' | b'(' | b'v', None) => Frame::Incomplete,
        (b'V', Some(0 | b'0')) => Frame::Command(3, Cmd::Cut(CutKind::Full)),
        (b'V', Some(1 | b'1')) => Frame::Command(3, Cmd::Cut(CutKind::Partial)),
        // Feed n dots, then cut: the feed adds no printed lines.
        (b'V', Some(b'A')) => fixed(buf, 4, |_| Some(Cmd::Cut(CutKind::Full))),
        (b'V', Some(b'B')) => fixed(buf, 4, |_| Some(Cmd::Cut(CutKind::Partial))),
        (b'k', Some(&m)) => parse_barcode(buf, m),
        (b'(', Some(b'k')) => parse_symbol(buf),
        (b'v', Some(b'0')) => parse_raster(buf),
        _ => Frame::Unknown,
    }
}

fn symbology(m: u8) -> Option<&'static str> {
    Some(match m {
        0 | 65 => "UPC-A",
        1 | 66 => "UPC-E",
        2 | 67 => "EAN-13",
        3 | 68 => "EAN-8",
        4 | 69 => "CODE39",
        5 | 70 => "ITF",
        6 | 71 => "CODABAR",
        72 => "CODE93",
        73 => "CODE128",
        74 => "GS1-128",
        _ => return None,
    })
}

/// `GS k m ...`: NUL-terminated data for m < 65, length-prefixed data otherwise.
fn parse_barcode(buf: &[u8], m: u8) -> Frame {
    let Some(symbology) = symbology(m) else {
        return Frame::Unknown;
    };
    if m >= 65 {
        let Some(&len) = buf.get(3) else {
            return Frame::Incomplete;
        };
        return fixed(buf, 4 + usize::from(len), |b| Some(Cmd::Barcode { symbology, data: b[4..].to_vec() }));
    }
    let data = &buf[3..];
    match data.iter().take(BARCODE_DATA_MAX + 1).position(|&b| b == 0) {
        Some(len) => Frame::Command(3 + len + 1, Cmd::Barcode { symbology, data: data[..len].to_vec() }),
        None if data.len() > BARCODE_DATA_MAX => Frame::Unknown,
        None => Frame::Incomplete,
    }
}

/// `GS ( k pL pH cn fn ...`: 2D symbols. Only QR store (cn 0x31, fn 0x50) and print
/// (fn 0x51) matter; everything else is skipped by its length.
fn parse_symbol(buf: &[u8]) -> Frame {
    let Some(len) = param_len(buf) else {
        return Frame::Incomplete;
    };
    if len < 2 {
        return Payload::frame(5, len, Sink::Discard(Cmd::Accepted));
    }
    let Some(&[cn, function]) = buf.get(5..7) else {
        return Frame::Incomplete;
    };
    match (cn, function) {
        // Store: `31 50 30` then the data, so pL + 256 pH = data length + 3.
        (0x31, 0x50) if len >= 3 => match buf.len() {
            ..=7 => Frame::Incomplete,
            _ => Payload::frame(8, len - 3, Sink::QrData(Vec::new())),
        },
        (0x31, 0x51) => Payload::frame(7, len - 2, Sink::Discard(Cmd::QrPrint)),
        // Module size (1..=16 dots) and error level (48..=51 = L..H): one parameter byte.
        (0x31, 0x43) if len == 3 => {
            fixed(buf, 8, |b| Some(if (1..=16).contains(&b[7]) { Cmd::QrModule(b[7]) } else { Cmd::Accepted }))
        }
        (0x31, 0x45) if len == 3 => fixed(buf, 8, |b| {
            Some(match b[7] {
                48 => Cmd::QrEcLevel(QrEcLevel::L),
                49 => Cmd::QrEcLevel(QrEcLevel::M),
                50 => Cmd::QrEcLevel(QrEcLevel::Q),
                51 => Cmd::QrEcLevel(QrEcLevel::H),
                _ => Cmd::Accepted,
            })
        }),
        _ => Payload::frame(7, len - 2, Sink::Discard(Cmd::Accepted)),
    }
}

/// `GS v 0 m xL xH yL yH data`: x bytes per row, y rows.
fn parse_raster(buf: &[u8]) -> Frame {
    let Some(&[_, _, _, m, xl, xh, yl, yh]) = buf.get(..8) else {
        return Frame::Incomplete;
    };
    let (x, y) = (u16::from_le_bytes([xl, xh]), u16::from_le_bytes([yl, yh]));
    let len = usize::from(x) * usize::from(y);
    if !matches!(m, 0..=3 | b'0'..=b'3') || len > IMAGE_BYTES_MAX {
        return Frame::Unknown;
    }
    let sink = Sink::ImageData { width_dots: u32::from(x) * 8, height_dots: u32::from(y), bits: Vec::new() };
    Payload::frame(8, len, sink)
}

/// Commands received while offline, accounted in stream bytes.
#[derive(Debug, Default)]
struct InputBuffer {
    cmds: VecDeque<Cmd>,
    bytes: usize,
    /// A byte was dropped: everything after it is dropped too until the buffer drains.
    full: bool,
    dropped: u64,
}

impl InputBuffer {
    fn push(&mut self, mut cmd: Cmd, cost: usize) {
        let room = if self.full { 0 } else { INPUT_BUFFER_BYTES_MAX - self.bytes };
        let kept = if cost <= room {
            cost
        } else {
            self.full = true;
            match &mut cmd {
                Cmd::Text(text) => {
                    text.truncate(room);
                    room
                }
                _ => 0,
            }
        };
        self.dropped += (cost - kept) as u64;
        if kept == 0 {
            return;
        }
        self.bytes += kept;
        match (self.cmds.back_mut(), cmd) {
            (Some(Cmd::Text(queued)), Cmd::Text(text)) => queued.extend_from_slice(&text),
            (_, cmd) => self.cmds.push_back(cmd),
        }
    }

    fn take(&mut self) -> VecDeque<Cmd> {
        self.bytes = 0;
        self.full = false;
        mem::take(&mut self.cmds)
    }
}

#[derive(Debug, Default)]
struct Sensors {
    paper: PaperState,
    cover_open: bool,
    offline: bool,
}

impl Sensors {
    fn online(&self) -> bool {
        !self.offline && !self.cover_open && self.paper != PaperState::Out
    }

    /// The `DLE EOT n` reply, n in 1..=4.
    fn status(&self, n: u8) -> u8 {
        let bit = |on: bool, mask: u8| if on { mask } else { 0 };
        match n {
            1 => STATUS_FIXED | bit(!self.online(), 0x08),
            2 => STATUS_FIXED | bit(self.cover_open, 0x04) | bit(self.paper == PaperState::Out, 0x20),
            4 => self.paper_status(),
            _ => STATUS_FIXED, // 3: no error causes are simulated
        }
    }

    /// Paper sensors: near-end is bits 2+3, paper end bits 5+6.
    fn paper_status(&self) -> u8 {
        STATUS_FIXED
            | match self.paper {
                PaperState::Ok => 0,
                PaperState::NearEnd => 0x0C,
                PaperState::Out => 0x6C,
            }
    }
}

#[derive(Debug, Clone, Copy)]
struct Style {
    align: Align,
    bold: bool,
    width: u8,
    height: u8,
}

impl Default for Style {
    fn default() -> Self {
        Style { align: Align::Left, bold: false, width: 1, height: 1 }
    }
}

impl Style {
    fn line(self, text: String, kind: LineKind) -> Line {
        Line { text, align: self.align, bold: self.bold, width: self.width, height: self.height, kind }
    }
}

/// The print engine: executes framed commands in order.
#[derive(Debug)]
struct Printer {
    model: Model,
    mode: CharMode,
    code_table: u8,
    style: Style,
    /// Style when the current line's first text byte arrived; `None` while the line is empty.
    line_style: Option<Style>,
    /// Decoded text of the current line.
    line_text: String,
    /// Text bytes of the current line not decoded yet.
    line_raw: Vec<u8>,
    /// Lines printed since the last cut.
    lines: Vec<Line>,
    lines_footprint: usize,
    qr_data: Vec<u8>,
    symbols: SymbolSettings,
}

/// Barcode and QR settings, which only matter to how the symbols are drawn.
#[derive(Debug, Clone, Copy)]
struct SymbolSettings {
    barcode_height_dots: u8,
    barcode_module_dots: u8,
    hri: Hri,
    qr_module_dots: u8,
    qr_ec_level: QrEcLevel,
}

impl Default for SymbolSettings {
    /// Epson's power-on values.
    fn default() -> Self {
        SymbolSettings {
            barcode_height_dots: 162,
            barcode_module_dots: 3,
            hri: Hri::None,
            qr_module_dots: 3,
            qr_ec_level: QrEcLevel::L,
        }
    }
}

impl Printer {
    fn new(model: Model) -> Self {
        Printer {
            model,
            mode: CharMode::power_on(model),
            code_table: 0,
            style: Style::default(),
            line_style: None,
            line_text: String::new(),
            line_raw: Vec::new(),
            lines: Vec::new(),
            lines_footprint: 0,
            qr_data: Vec::new(),
            symbols: SymbolSettings::default(),
        }
    }

    fn execute(&mut self, cmd: Cmd, sensors: &Sensors, out: &mut Vec<Output>) {
        if matches!(cmd, Cmd::CodeTable(_) | Cmd::Utf8Mode(_)) {
            self.decode_raw(); // bytes already received keep the encoding they were sent in
        }
        self.mode.apply(&cmd, self.model);
        match cmd {
            Cmd::Text(bytes) => self.print_text(&bytes, out),
            Cmd::Tab => self.print_text(b"    ", out),
            Cmd::LineFeed => self.end_line(out),
            Cmd::Init => {
                self.line_style = None;
                self.line_text.clear();
                self.line_raw.clear();
                self.style = Style::default();
                self.code_table = 0;
                self.symbols = SymbolSettings::default();
            }
            Cmd::Bold(on) => self.style.bold = on,
            Cmd::Align(align) => self.style.align = align,
            Cmd::Size { width, height } => {
                self.style.width = width;
                self.style.height = height;
            }
            Cmd::CodeTable(table) => self.code_table = table,
            Cmd::FeedLines(n) => {
                self.finish_line(out);
                for _ in 0..n {
                    self.end_line(out);
                }
            }
            Cmd::Cut(cut) => {
                self.finish_line(out);
                let receipt = self.take_receipt(cut);
                out.push(Output::Receipt(receipt));
            }
            Cmd::DrawerKick { pin, on_ms, off_ms } => {
                out.push(Output::DrawerKick { pin, on_ms, off_ms });
            }
            Cmd::Barcode { symbology, data } => {
                let data = barcode_text(symbology, &data);
                let symbology = symbology.to_owned();
                let s = self.symbols;
                let (module_dots, height_dots, hri) = (s.barcode_module_dots, s.barcode_height_dots, s.hri);
                self.print_block(LineKind::Barcode { symbology, data, module_dots, height_dots, hri }, out);
            }
            Cmd::BarcodeHeight(dots) => self.symbols.barcode_height_dots = dots,
            Cmd::BarcodeModule(dots) => self.symbols.barcode_module_dots = dots,
            Cmd::BarcodeHri(hri) => self.symbols.hri = hri,
            Cmd::QrStore(data) => self.qr_data = data,
            Cmd::QrModule(dots) => self.symbols.qr_module_dots = dots,
            Cmd::QrEcLevel(level) => self.symbols.qr_ec_level = level,
            Cmd::QrPrint if self.qr_data.is_empty() => {}
            Cmd::QrPrint => {
                let data = self.qr_data.clone();
                let (module_dots, ec_level) = (self.symbols.qr_module_dots, self.symbols.qr_ec_level);
                self.print_block(LineKind::Qr { data, module_dots, ec_level }, out);
            }
            Cmd::Image { width_dots, height_dots, bits } => {
                self.print_block(LineKind::Image { width_dots, height_dots, bits }, out)
            }
            Cmd::PaperStatus => out.push(Output::Reply(vec![sensors.paper_status()])),
            Cmd::ChineseMode(_) | Cmd::Utf8Mode(_) | Cmd::RealTimeStatus(_) | Cmd::Recover(_) | Cmd::Accepted => {}
        }
    }

    fn print_text(&mut self, bytes: &[u8], out: &mut Vec<Output>) {
        let mut rest = bytes;
        while let Some((&byte, tail)) = rest.split_first() {
            self.line_style.get_or_insert(self.style);
            if self.mode.double_byte() && byte >= 0x80 {
                self.decode_raw();
                self.line_text.push(char::REPLACEMENT_CHARACTER);
                rest = tail.get(1..).unwrap_or_default();
            } else {
                self.line_raw.push(byte);
                rest = tail;
            }
            if self.line_text.len() + self.line_raw.len() >= LINE_BYTES_MAX {
                self.end_line(out);
            }
        }
    }

    fn decode_raw(&mut self) {
        if self.line_raw.is_empty() {
            return;
        }
        let text = decode(&self.line_raw, self.code_table, self.mode.utf8);
        self.line_text.push_str(&text);
        self.line_raw.clear();
    }

    /// Prints the current line (possibly empty) and starts a new one.
    fn end_line(&mut self, out: &mut Vec<Output>) {
        self.decode_raw();
        let style = self.line_style.take().unwrap_or(self.style);
        let line = style.line(mem::take(&mut self.line_text), LineKind::Text);
        self.push_line(line, out);
    }

    /// Prints the current line if it has any text.
    fn finish_line(&mut self, out: &mut Vec<Output>) {
        if self.line_style.is_some() {
            self.end_line(out);
        }
    }

    fn print_block(&mut self, kind: LineKind, out: &mut Vec<Output>) {
        self.finish_line(out);
        let line = self.style.line(String::new(), kind);
        self.push_line(line, out);
    }

    fn push_line(&mut self, line: Line, out: &mut Vec<Output>) {
        self.lines_footprint += line.footprint();
        self.lines.push(line);
        if self.lines_footprint >= RECEIPT_BYTES_MAX {
            let receipt = self.take_receipt(CutKind::Uncut);
            out.push(Output::Receipt(receipt));
        }
    }

    fn take_receipt(&mut self, cut: CutKind) -> Receipt {
        self.lines_footprint = 0;
        Receipt { lines: mem::take(&mut self.lines), cut }
    }
}

fn decode(bytes: &[u8], code_table: u8, utf8: bool) -> Cow<'_, str> {
    if utf8 {
        return String::from_utf8_lossy(bytes);
    }
    match code_table {
        17 => encoding_rs::IBM866.decode_without_bom_handling(bytes).0,
        46 => encoding_rs::WINDOWS_1251.decode_without_bom_handling(bytes).0,
        _ => bytes.iter().copied().map(ascii_or_question).collect::<String>().into(),
    }
}

fn ascii_or_question(byte: u8) -> char {
    if byte.is_ascii() {
        char::from(byte)
    } else {
        '?'
    }
}

/// Human-readable barcode data. CODE128 data carries `{X` escapes: `{A`/`{B`/`{C` select
/// a code set (in set C each byte is a two-digit number), `{{` is a literal brace, and
/// the function characters (`{1`..`{4`, `{S`) have no readable form.
fn barcode_text(symbology: &str, data: &[u8]) -> String {
    if symbology != "CODE128" {
        return data.iter().copied().map(ascii_or_question).collect();
    }
    let mut text = String::new();
    let mut code_c = false;
    let mut bytes = data.iter().copied();
    while let Some(byte) = bytes.next() {
        if byte == b'{' {
            match bytes.next() {
                Some(b'C') => code_c = true,
                Some(b'A' | b'B') => code_c = false,
                Some(b'{') => text.push('{'),
                _ => {}
            }
        } else if code_c {
            let _ = write!(text, "{byte:02}");
        } else {
            text.push(ascii_or_question(byte));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const INIT: [u8; 2] = [ESC, b'@'];
    const MOLOKO_CP866: [u8; 6] = [0x8C, 0xAE, 0xAB, 0xAE, 0xAA, 0xAE];
    const MOLOKO_CP1251: [u8; 6] = [0xCC, 0xEE, 0xEB, 0xEE, 0xEA, 0xEE];
    const CUT_FEED_PARTIAL: [u8; 4] = [GS, b'V', 0x42, 0x03];

    fn receipts(out: &[Output]) -> Vec<&Receipt> {
        out.iter()
            .filter_map(|o| match o {
                Output::Receipt(r) => Some(r),
                _ => None,
            })
            .collect()
    }

    fn replies(out: &[Output]) -> Vec<u8> {
        out.iter()
            .filter_map(|o| match o {
                Output::Reply(r) => Some(r.clone()),
                _ => None,
            })
            .flatten()
            .collect()
    }

    fn cyrillic_receipt(model: Model, prefix: &[u8], table: u8, text: &[u8]) -> Vec<Output> {
        let mut bytes = INIT.to_vec();
        bytes.extend_from_slice(prefix);
        bytes.extend_from_slice(&[ESC, b't', table]);
        bytes.extend_from_slice(text);
        bytes.push(b'\n');
        bytes.extend_from_slice(&CUT_FEED_PARTIAL);
        Interpreter::new(model).push(&bytes)
    }

    #[test]
    fn cp866_text_is_decoded() {
        let out = cyrillic_receipt(Model::Epson, &[], 17, &MOLOKO_CP866);
        assert_eq!(out.len(), 1, "{out:?}");
        let receipt = receipts(&out)[0];
        assert!(receipt.text().contains("Молоко"));
        assert_eq!(receipt.cut, CutKind::Partial);
    }

    #[test]
    fn windows_1251_text_is_decoded() {
        let out = cyrillic_receipt(Model::Epson, &[], 46, &MOLOKO_CP1251);
        assert_eq!(out.len(), 1, "{out:?}");
        let receipt = receipts(&out)[0];
        assert!(receipt.text().contains("Молоко"));
        assert_eq!(receipt.cut, CutKind::Partial);
    }

    #[test]
    fn table_zero_replaces_high_bytes() {
        let out = cyrillic_receipt(Model::Epson, &[], 0, &MOLOKO_CP866);
        assert_eq!(receipts(&out)[0].lines[0].text, "??????");
    }

    #[test]
    fn clone_needs_fs_dot_for_cyrillic() {
        let out = cyrillic_receipt(Model::Clone, &[], 17, &MOLOKO_CP866);
        assert_eq!(receipts(&out)[0].lines[0].text, "\u{FFFD}".repeat(3));

        let out = cyrillic_receipt(Model::Clone, &[FS, b'.'], 17, &MOLOKO_CP866);
        assert_eq!(receipts(&out)[0].lines[0].text, "Молоко");

        // FS & re-enters Chinese mode on the clone; Epson ignores it.
        let out = cyrillic_receipt(Model::Clone, &[FS, b'.', FS, b'&'], 17, &MOLOKO_CP866);
        assert!(receipts(&out)[0].lines[0].text.contains('\u{FFFD}'));
        let out = cyrillic_receipt(Model::Epson, &[FS, b'&'], 17, &MOLOKO_CP866);
        assert_eq!(receipts(&out)[0].lines[0].text, "Молоко");
    }

    #[test]
    fn utf8_mode_decodes_utf8_until_init() {
        let mut bytes = INIT.to_vec();
        bytes.extend_from_slice(&[FS, b'(', b'C', 0x02, 0x00, 0x30, 0x02]);
        bytes.extend_from_slice("Молоко\n".as_bytes());
        bytes.extend_from_slice(&INIT);
        bytes.extend_from_slice("Мо\n".as_bytes());
        bytes.extend_from_slice(&[GS, b'V', 0x00]);
        let out = Interpreter::new(Model::Clone).push(&bytes);
        let lines = &receipts(&out)[0].lines;
        assert_eq!(lines[0].text, "Молоко");
        assert_eq!(lines[1].text, "\u{FFFD}\u{FFFD}"); // back in the clone's Chinese mode
    }

    /// A realistic receipt exercising every multi-byte command family.
    fn sample_receipt() -> Vec<u8> {
        let mut s = Vec::new();
        s.extend_from_slice(&[ESC, b'@', FS, b'.', ESC, b't', 17]);
        s.extend_from_slice(&[ESC, b'a', 1, ESC, b'E', 1, GS, b'!', 0x11]);
        s.extend_from_slice(b"SHOP\n");
        s.extend_from_slice(&[ESC, b'a', b'0', ESC, b'E', 0, GS, b'!', 0x00, ESC, b'-', 1]);
        s.extend_from_slice(&MOLOKO_CP866);
        s.extend_from_slice(b"\t1 x 89.90\r\n");
        s.extend_from_slice(&[ESC, b'd', 1, ESC, b'J', 24]);
        // CODE128: {B "AB", then {C 12 34.
        s.extend_from_slice(&[GS, b'h', 80, GS, b'w', 2, GS, b'H', 2, GS, b'f', 0]);
        s.extend_from_slice(&[GS, b'k', 73, 8, b'{', b'B', b'A', b'B', b'{', b'C', 12, 34]);
        // QR: model, size, error level, store, print.
        let url = b"https://example.test/r/42";
        s.extend_from_slice(&[GS, b'(', b'k', 4, 0, 0x31, 0x41, 0x32, 0x00]);
        s.extend_from_slice(&[GS, b'(', b'k', 3, 0, 0x31, 0x43, 6]);
        s.extend_from_slice(&[GS, b'(', b'k', 3, 0, 0x31, 0x45, 0x31]);
        let [len_lo, len_hi] = u16::try_from(url.len() + 3).unwrap().to_le_bytes();
        s.extend_from_slice(&[GS, b'(', b'k', len_lo, len_hi, 0x31, 0x50, 0x30]);
        s.extend_from_slice(url);
        s.extend_from_slice(&[GS, b'(', b'k', 3, 0, 0x31, 0x51, 0x30]);
        // Raster image: 2 bytes per row, 3 rows.
        s.extend_from_slice(&[GS, b'v', b'0', 0, 2, 0, 3, 0, 0xFF, 0, 0x0F, 0xF0, 0xAA, 0x55]);
        s.extend_from_slice(&[DLE, 0x04, 1]);
        s.extend_from_slice(&[ESC, b'p', 0, 25, 250]);
        s.extend_from_slice(&[ESC, b'd', 2]);
        s.extend_from_slice(&CUT_FEED_PARTIAL);
        s
    }

    #[test]
    fn sample_receipt_renders() {
        let out = Interpreter::new(Model::Clone).push(&sample_receipt());
        let expected_text = [
            format!("{}SHOP", " ".repeat(22)),
            "Молоко    1 x 89.90".to_owned(),
            String::new(),
            "[BARCODE CODE128: AB1234]".to_owned(),
            "[QR: https://example.test/r/42]".to_owned(),
            "[IMAGE 16x3]".to_owned(),
            String::new(),
            String::new(),
        ]
        .map(|line| line + "\n")
        .concat();
        let receipt = Receipt { lines: receipts(&out)[0].lines.clone(), cut: CutKind::Partial };
        assert_eq!(receipt.text(), expected_text);
        let title = &receipt.lines[0];
        assert_eq!((title.bold, title.width, title.height), (true, 2, 2));
        assert_eq!(title.align, Align::Centre);
        assert_eq!(out[..2], [Output::Reply(vec![0x12]), Output::DrawerKick { pin: 0, on_ms: 50, off_ms: 500 }]);
        assert_eq!(out.len(), 3);
    }

    #[test]
    fn symbols_carry_their_drawing_settings() {
        let out = Interpreter::new(Model::Epson).push(&sample_receipt());
        let lines = &receipts(&out)[0].lines;
        let LineKind::Barcode { module_dots, height_dots, hri, .. } = &lines[3].kind else { panic!("{:?}", lines[3]) };
        assert_eq!((*module_dots, *height_dots, *hri), (2, 80, Hri::Below));
        let LineKind::Qr { module_dots, ec_level, .. } = &lines[4].kind else { panic!("{:?}", lines[4]) };
        assert_eq!((*module_dots, *ec_level), (6, QrEcLevel::M));
        let LineKind::Image { bits, .. } = &lines[5].kind else { panic!("{:?}", lines[5]) };
        assert_eq!(bits, &[0xFF, 0, 0x0F, 0xF0, 0xAA, 0x55]);

        // `ESC @` restores the power-on settings.
        let mut bytes = sample_receipt();
        bytes.extend_from_slice(&[ESC, b'@', GS, b'k', 2]);
        bytes.extend_from_slice(b"4006381333931\0");
        bytes.extend_from_slice(&[GS, b'V', b'0']);
        let out = Interpreter::new(Model::Epson).push(&bytes);
        let LineKind::Barcode { module_dots, height_dots, hri, .. } = &receipts(&out)[1].lines[0].kind else {
            panic!("{out:?}")
        };
        assert_eq!((*module_dots, *height_dots, *hri), (3, 162, Hri::None));
    }

    #[test]
    fn outputs_do_not_depend_on_chunking() {
        let bytes = sample_receipt();
        let whole = Interpreter::new(Model::Clone).push(&bytes);
        for split in 0..=bytes.len() {
            let mut printer = Interpreter::new(Model::Clone);
            let mut out = printer.push(&bytes[..split]);
            out.extend(printer.push(&bytes[split..]));
            assert_eq!(out, whole, "split at {split}");
        }
        let mut printer = Interpreter::new(Model::Clone);
        let byte_by_byte: Vec<Output> = bytes.iter().flat_map(|&b| printer.push(&[b])).collect();
        assert_eq!(byte_by_byte, whole);
    }

    fn status_replies(printer: &mut Interpreter) -> Vec<u8> {
        let out = printer.push(&[DLE, 4, 1, DLE, 4, 2, DLE, 4, 3, DLE, 4, 4]);
        replies(&out)
    }

    #[test]
    fn real_time_status_bytes() {
        type Setup = fn(&mut Interpreter) -> Vec<Output>;
        let cases: [(&str, Setup, [u8; 4]); 5] = [
            ("ok", |_| Vec::new(), [0x12, 0x12, 0x12, 0x12]),
            ("near end", |p| p.set_paper(PaperState::NearEnd), [0x12, 0x12, 0x12, 0x1E]),
            ("paper out", |p| p.set_paper(PaperState::Out), [0x1A, 0x32, 0x12, 0x7E]),
            ("cover open", |p| p.set_cover_open(true), [0x1A, 0x16, 0x12, 0x12]),
            ("offline", |p| p.set_offline(true), [0x1A, 0x12, 0x12, 0x12]),
        ];
        for (name, setup, expected) in cases {
            let mut printer = Interpreter::new(Model::Epson);
            assert!(setup(&mut printer).is_empty());
            assert_eq!(status_replies(&mut printer), expected, "{name}");
        }
    }

    #[test]
    fn invalid_status_request_is_unknown() {
        let out = Interpreter::new(Model::Epson).push(&[DLE, 4, 9]);
        assert_eq!(out[0], Output::Unknown { offset: 0, byte: DLE });
    }

    #[test]
    fn paper_out_holds_printing_until_paper_is_back() {
        let mut printer = Interpreter::new(Model::Epson);
        let out = printer.push(b"Before\n");
        assert!(out.is_empty());
        assert!(printer.set_paper(PaperState::Out).is_empty());
        assert!(!printer.is_online());

        let mut rest = b"After\n".to_vec();
        rest.extend_from_slice(&[DLE, 5, 1, DLE, 4, 4, GS, b'V', 0x01]);
        let out = printer.push(&rest);
        assert_eq!(out, [Output::Reply(vec![0x7E])]);
        assert_eq!(printer.pending_lines().len(), 1, "cut-short receipt so far");
        assert_eq!(printer.buffered_bytes(), 6 + 3);

        let out = printer.set_paper(PaperState::Ok);
        assert_eq!(receipts(&out)[0].text(), "Before\nAfter\n");
        assert_eq!(receipts(&out)[0].cut, CutKind::Partial);
        assert_eq!(printer.buffered_bytes(), 0);
        assert!(printer.pending_lines().is_empty());
    }

    #[test]
    fn take_partial_returns_printed_lines() {
        let mut printer = Interpreter::new(Model::Epson);
        let _ = printer.push(b"one\ntwo");
        let partial = printer.take_partial().unwrap();
        assert_eq!((partial.text().as_str(), partial.cut), ("one\n", CutKind::Uncut));
        assert_eq!(printer.take_partial(), None);
    }

    #[test]
    fn paper_status_request_waits_while_offline() {
        let mut printer = Interpreter::new(Model::Epson);
        assert!(printer.set_offline(true).is_empty());
        assert!(printer.push(&[GS, b'r', 1]).is_empty());
        assert!(printer.set_cover_open(true).is_empty());
        assert!(printer.set_offline(false).is_empty(), "cover still open");
        let out = printer.set_cover_open(false);
        assert_eq!(out, [Output::Reply(vec![0x12])]);
        assert_eq!(printer.push(&[GS, b'r', b'1']), [Output::Reply(vec![0x12])]);
    }

    #[test]
    fn input_buffer_overflow_drops_and_counts() {
        let mut printer = Interpreter::new(Model::Epson);
        assert!(printer.set_offline(true).is_empty());
        let _ = printer.push(&vec![b'A'; 100_000]);
        let _ = printer.push(b"\n");
        assert_eq!(printer.buffered_bytes(), INPUT_BUFFER_BYTES_MAX);
        assert_eq!(printer.dropped_bytes(), 100_001 - INPUT_BUFFER_BYTES_MAX as u64);
        assert_eq!(printer.bytes_received(), 100_001);
        assert_eq!(printer.push(&[DLE, 4, 1]), [Output::Reply(vec![0x1A])]);

        assert!(printer.set_offline(false).is_empty());
        let lines = printer.pending_lines();
        assert_eq!(lines.len(), INPUT_BUFFER_BYTES_MAX / LINE_BYTES_MAX);
        assert!(lines.iter().all(|l| l.text.len() == LINE_BYTES_MAX));
    }

    #[test]
    fn unknown_sequence_reports_stream_offset() {
        let mut printer = Interpreter::new(Model::Epson);
        assert!(printer.push(b"AB").is_empty());
        let out = printer.push(&[b'C', ESC, 0xFF, b'\n', 0x07]);
        assert_eq!(out, [Output::Unknown { offset: 3, byte: ESC }, Output::Unknown { offset: 6, byte: 0x07 }]);
        // The byte after the skipped ESC is read again as text.
        assert_eq!(printer.pending_lines()[0].text, "ABC?");
    }

    #[test]
    fn oversized_image_is_unknown() {
        let out = Interpreter::new(Model::Epson).push(&[GS, b'v', b'0', 0, 0xFF, 0xFF, 0xFF, 0xFF]);
        assert_eq!(out[0], Output::Unknown { offset: 0, byte: GS });
    }

    #[test]
    fn nul_terminated_barcode() {
        let mut bytes = vec![GS, b'k', 2];
        bytes.extend_from_slice(b"4006381333931\0");
        bytes.extend_from_slice(&[GS, b'V', b'0']);
        let out = Interpreter::new(Model::Epson).push(&bytes);
        assert_eq!(receipts(&out)[0].text(), "[BARCODE EAN-13: 4006381333931]\n");
    }

    #[test]
    fn text_aligns_in_48_columns() {
        let mut bytes = vec![ESC, b'a', 1];
        bytes.extend_from_slice(b"TOTAL\n");
        bytes.extend_from_slice(&[ESC, b'a', 2]);
        bytes.extend_from_slice("Итого\n".as_bytes());
        bytes.extend_from_slice(&[FS, b'(', b'C', 2, 0, 0x30, 2]);
        bytes.extend_from_slice("Итого\n".as_bytes());
        bytes.extend_from_slice(&[GS, b'V', 0]);
        let out = Interpreter::new(Model::Epson).push(&bytes);
        let text = receipts(&out)[0].text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], format!("{}TOTAL", " ".repeat(21)));
        assert_eq!(lines[1], format!("{}??????????", " ".repeat(38)));
        assert_eq!(lines[2], format!("{}Итого", " ".repeat(43)));
    }

    #[test]
    fn style_is_taken_from_first_byte_of_line() {
        let mut bytes = vec![ESC, b'E', 1];
        bytes.extend_from_slice(b"bold");
        bytes.extend_from_slice(&[ESC, b'E', 0, ESC, b'a', 1]);
        bytes.extend_from_slice(b" still bold\n\n");
        let mut printer = Interpreter::new(Model::Epson);
        let _ = printer.push(&bytes);
        let lines = printer.pending_lines();
        assert_eq!((lines[0].bold, lines[0].align), (true, Align::Left));
        assert_eq!((lines[1].bold, lines[1].align), (false, Align::Centre));
    }

    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    /// Random bytes mixed with real commands, some cut short, so that the parser sees
    /// both well-formed commands and every kind of malformed one.
    fn garbage(rng: &mut XorShift) -> Vec<u8> {
        const COMMANDS: &[&[u8]] = &[
            &[ESC, b'@'],
            &[FS, b'.'],
            &[FS, b'&'],
            &[FS, b'(', b'C', 2, 0, 0x30, 2],
            &[ESC, b't', 17],
            &[ESC, b'a', 1],
            &[ESC, b'd', 2],
            &[GS, b'!', 0x11],
            &[GS, b'V', 0],
            &[GS, b'V', b'B', 3],
            &[ESC, b'p', 0, 25, 250],
            &[DLE, 4, 1],
            &[DLE, 5, 2],
            &[GS, b'r', 1],
            &[GS, b'(', b'k', 5, 0, 0x31, 0x50, 0x30, b'h', b'i'],
            &[GS, b'(', b'k', 3, 0, 0x31, 0x51, 0x30],
            &[GS, b'k', 73, 4, b'{', b'C', 12, 34],
            &[GS, b'k', 2, b'1', b'2', 0],
            &[GS, b'v', b'0', 0, 1, 0, 2, 0, 0xAA, 0x55],
            b"text\n",
            &[0x8C, 0xAE, b'\n'],
        ];
        let mut bytes = Vec::new();
        for _ in 0..rng.below(40) {
            match rng.below(4) {
                0 => bytes.push(rng.next() as u8),
                1 => bytes.push([DLE, ESC, FS, GS, b'\n', 0, 1, 0xFF][rng.below(8)]),
                2 => {
                    let command = COMMANDS[rng.below(COMMANDS.len())];
                    bytes.extend_from_slice(&command[..=rng.below(command.len())]);
                }
                _ => bytes.extend_from_slice(COMMANDS[rng.below(COMMANDS.len())]),
            }
        }
        bytes
    }

    #[test]
    fn garbage_never_panics_and_stays_bounded() {
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        for model in [Model::Epson, Model::Clone] {
            let mut printer = Interpreter::new(model);
            let mut received = 0u64;
            let mut seen = [false; 4];
            for round in 0..4000 {
                // A random image or 2D-symbol header can swallow up to 1 MiB as payload;
                // restart now and then so that most bytes are parsed as commands.
                if round % 25 == 0 {
                    assert_eq!(printer.bytes_received(), received);
                    printer = Interpreter::new(model);
                    received = 0;
                }
                let mut outputs = Vec::new();
                if round % 37 == 0 {
                    let paper = [PaperState::Ok, PaperState::NearEnd, PaperState::Out];
                    outputs.extend(printer.set_paper(paper[rng.below(3)]));
                    outputs.extend(printer.set_offline(rng.below(4) == 0));
                }
                let bytes = garbage(&mut rng);
                received += bytes.len() as u64;
                outputs.extend(printer.push(&bytes));
                for output in outputs {
                    let kind = match output {
                        Output::Reply(_) => 0,
                        Output::Receipt(_) => 1,
                        Output::DrawerKick { .. } => 2,
                        Output::Unknown { .. } => 3,
                    };
                    seen[kind] = true;
                }

                assert!(printer.buffered_bytes() <= INPUT_BUFFER_BYTES_MAX);
                assert!(printer.input.cmds.len() <= INPUT_BUFFER_BYTES_MAX);
                assert!(printer.framer.rx.len() - printer.framer.pos <= 4 + 255);
                let p = &printer.printer;
                assert!(p.lines_footprint < RECEIPT_BYTES_MAX);
                assert!(p.line_text.len() + p.line_raw.len() < LINE_BYTES_MAX);
                assert!(p.qr_data.len() <= usize::from(u16::MAX));
            }
            assert_eq!(seen, [true; 4], "every kind of output was exercised");
        }
    }

    #[test]
    fn offline_garbage_respects_the_cap() {
        let mut rng = XorShift(0x2545_F491_4F6C_DD1D);
        let mut printer = Interpreter::new(Model::Clone);
        assert!(printer.set_cover_open(true).is_empty());
        while printer.dropped_bytes() == 0 {
            let _ = printer.push(&garbage(&mut rng));
            assert!(printer.buffered_bytes() <= INPUT_BUFFER_BYTES_MAX);
        }
        let _ = printer.push(&garbage(&mut rng));
        assert!(printer.buffered_bytes() <= INPUT_BUFFER_BYTES_MAX);
        assert!(printer.input.cmds.len() <= INPUT_BUFFER_BYTES_MAX);
        let _ = printer.set_cover_open(false);
        assert_eq!(printer.buffered_bytes(), 0);
    }

    /// Many chunks of a huge stream stay within the bounds even when never cut.
    #[test]
    fn endless_uncut_text_is_emitted_in_bounded_receipts() {
        let mut printer = Interpreter::new(Model::Epson);
        let chunk = [b'x'; 100].repeat(1000);
        let mut receipts_seen = 0;
        for _ in 0..30 {
            let out = printer.push(&chunk);
            receipts_seen += receipts(&out).len();
            assert!(receipts(&out).iter().all(|r| r.cut == CutKind::Uncut));
        }
        assert!(receipts_seen > 0);
        assert!(printer.printer.lines_footprint < RECEIPT_BYTES_MAX);
    }
}
