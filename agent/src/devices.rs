//! The device manager: one thread per device, each owning its port.
//!
//! ```text
//! scanner thread ──frames (bounded)──▶ scan task ──▶ Till::scan
//! spooler thread ◀──wake── Till::pay / reprint;  reads print jobs from the journal
//! ```
//! Serial I/O blocks, so it never runs on the async executor.

use kassa_protocol::receipt_proof::ReceiptSigner;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;

use kassa_hardware::escpos;
use kassa_hardware::scanner::{self, ScannerEvent};
use kassa_hardware::status::{query_status, PrinterState, StatusTracker};
use tokio::sync::mpsc;

use crate::config::{PrinterConfig, ScannerConfig};
use crate::journal::{Journal, PrintJob};
use crate::status::{DeviceState, StatusBoard, Words};

/// Frames waiting for the till; a scanner cannot produce more than a few per second,
/// so a full queue means the till is stuck, and further frames are dropped and counted.
pub const SCAN_QUEUE_MAX: usize = 64;
/// Reopen backoff for the printer, as for the scanner.
const PRINTER_BACKOFF_MS_MAX: u64 = 5_000;
/// Bytes per write: serial printers have small buffers; smaller writes let flow control act.
const PRINT_CHUNK_BYTES: usize = 256;

/// A frame from the scanner, with the time its last byte was read (for latency).
#[derive(Debug)]
pub struct ScannedFrame {
    pub bytes: Vec<u8>,
    pub at: std::time::Instant,
}

pub fn spawn_scanner(
    cfg: ScannerConfig,
    status: StatusBoard,
    frames: mpsc::Sender<ScannedFrame>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    status.send_modify(|s| {
        s.scanner.configured = true;
        s.scanner.path = Some(cfg.path.clone());
    });
    std::thread::Builder::new()
        .name("scanner".into())
        .spawn(move || {
            scanner::run_reader(&cfg.path, &cfg.serial, &cfg.framer, &stop, |ev| match ev {
                ScannerEvent::Connected => {
                    tracing::info!(path = %cfg.path, "scanner connected");
                    status.send_modify(|s| {
                        s.scanner.state = DeviceState::Idle;
                        s.scanner.detail = None;
                    });
                }
                ScannerEvent::Frame { bytes, at } => {
                    tracing::debug!(frame = %kassa_hardware::escape(&bytes), "scanner frame");
                    status.send_modify(|s| s.scanner.count += 1);
                    if frames.try_send(ScannedFrame { bytes, at }).is_err() {
                        tracing::warn!("scan queue full, frame dropped");
                        status.send_modify(|s| s.scanner.rejected += 1);
                    }
                }
                ScannerEvent::Oversized { bytes_dropped } => {
                    tracing::warn!(bytes_dropped, "scanner frame too long, dropped");
                    status.send_modify(|s| s.scanner.rejected += 1);
                }
                ScannerEvent::Disconnected { reason } => {
                    tracing::warn!(path = %cfg.path, %reason, "scanner disconnected");
                    status.send_modify(|s| {
                        s.scanner.state = DeviceState::Error;
                        s.scanner.detail = Some(reason);
                    });
                }
            });
        })
        .expect("spawn scanner thread")
}

pub fn spawn_spooler(
    cfg: PrinterConfig,
    utc_offset_minutes: i32,
    signer: Option<Arc<ReceiptSigner>>,
    journal: Arc<Journal>,
    status: StatusBoard,
    wake: Receiver<()>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    status.send_modify(|s| {
        s.printer.configured = true;
        s.printer.path = Some(cfg.path.clone());
    });
    std::thread::Builder::new()
        .name("spooler".into())
        .spawn(move || Spooler { cfg, utc_offset_minutes, signer, journal, status, wake, stop }.run())
        .expect("spawn spooler thread")
}

/// Longest wait for a status reply byte; a printer answers `DLE EOT` within
/// milliseconds even when offline, so this only has to absorb scheduling delays.
const STATUS_REPLY_TIMEOUT: Duration = Duration::from_millis(300);
/// The read timeout of the port: how finely deadlines are observed.
const READ_TICK: Duration = Duration::from_millis(20);
/// Longest a single write may block (flow control can hold a busy printer back).
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// How often an idle spooler asks the printer how it is, for the status bar.
const IDLE_STATUS_POLL: Duration = Duration::from_secs(1);
/// While a job waits for the printer (paper out, cover open), how often to look again.
const NOT_READY_RETRY: Duration = Duration::from_secs(1);
/// How long printing may take beyond the bytes' wire time before `GS r 1` is overdue.
const PRINT_SLACK: Duration = Duration::from_secs(3);
/// While a receipt prints, how often the printer is asked whether it stopped.
const STATUS_CHECK_WHILE_PRINTING: Duration = Duration::from_millis(200);
/// Silences in a row before the printer counts as disconnected (then reopened).
const SILENCES_TO_DISCONNECT: u32 = 3;

struct Spooler {
    cfg: PrinterConfig,
    utc_offset_minutes: i32,
    /// Signs each sale's receipt code (the store's key), when the store is enrolled.
    signer: Option<Arc<ReceiptSigner>>,
    journal: Arc<Journal>,
    status: StatusBoard,
    wake: Receiver<()>,
    stop: Arc<AtomicBool>,
}

enum Printed {
    Done,
    /// Paper ran out, the cover opened or the printer went offline mid-receipt.
    CutShort(String),
}

impl Spooler {
    fn run(self) {
        let profile = escpos::profile(&self.cfg.model).expect("validated in config");
        let mut port: Option<serialport::TTYPort> = None;
        let mut tracker = StatusTracker::new(SILENCES_TO_DISCONNECT);
        let mut backoff_ms = 100;
        while !self.stop.load(Ordering::Relaxed) {
            let Some(p) = port.as_mut() else {
                port = self.open_port(&mut backoff_ms);
                if port.is_some() {
                    tracker = StatusTracker::new(SILENCES_TO_DISCONNECT);
                }
                continue;
            };
            // Status only between jobs, never inside a command.
            let state = tracker.record(&query_status(p, STATUS_REPLY_TIMEOUT));
            if state == PrinterState::Disconnected {
                tracing::warn!(path = %self.cfg.path, "printer silent; reopening the port");
                self.set(DeviceState::Error, Some("printer not responding".into()), Some(disconnected_words()));
                port = None;
                self.sleep(NOT_READY_RETRY);
                continue;
            }
            let ready = self.show_state(&state);
            let Some(job) = self.next_job() else {
                self.sleep(IDLE_STATUS_POLL);
                continue;
            };
            if !ready {
                // The job waits, kept in the journal; a sale never does.
                self.sleep(NOT_READY_RETRY);
                continue;
            }
            if !self.print_job(p, &job, profile) {
                port = None;
            }
        }
    }

    /// Opens the printer's port; on failure, says so and waits (backing off, capped).
    fn open_port(&self, backoff_ms: &mut u64) -> Option<serialport::TTYPort> {
        match self.cfg.serial.open(&self.cfg.path, READ_TICK) {
            Ok(p) => {
                tracing::info!(path = %self.cfg.path, "printer port open");
                *backoff_ms = 100;
                Some(p)
            }
            Err(e) => {
                self.set(DeviceState::Error, Some(e.to_string()), Some(disconnected_words()));
                self.sleep(Duration::from_millis(*backoff_ms));
                *backoff_ms = (*backoff_ms * 2).min(PRINTER_BACKOFF_MS_MAX);
                None
            }
        }
    }

    /// Shows the printer's state (not `Disconnected`) on the status board; whether it
    /// can print.
    fn show_state(&self, state: &PrinterState) -> bool {
        match state {
            PrinterState::Known(st) if st.ready() => {
                self.set(DeviceState::Idle, None, None);
                true
            }
            PrinterState::Known(st) => {
                let words = Words { ru: st.describe_ru(), en: st.describe_en() };
                self.set(DeviceState::Error, Some(words.en.clone()), Some(words));
                false
            }
            PrinterState::Unknown | PrinterState::Disconnected => {
                let words = Words { ru: state.describe_ru(), en: state.describe_en() };
                self.set(DeviceState::Error, Some(words.en.clone()), Some(words));
                false
            }
        }
    }

    /// The oldest job waiting to print, if any (an unreadable queue counts as empty).
    fn next_job(&self) -> Option<PrintJob> {
        match self.journal.next_print_job() {
            Ok(job) => job,
            Err(e) => {
                tracing::error!(error = %e, "cannot read print jobs");
                None
            }
        }
    }

    /// Prints one job and records how it went; `false` when the port must be reopened.
    fn print_job(&self, p: &mut serialport::TTYPort, job: &PrintJob, profile: escpos::PrinterProfile) -> bool {
        self.status.send_modify(|s| s.printer.state = DeviceState::Busy);
        let signed;
        let job = match (&job.printable, &self.signer) {
            (crate::journal::Printable::Sale(sale), Some(signer)) => {
                let mut j = job.clone();
                j.extras.receipt_code = Some(signer.code(sale));
                signed = j;
                &signed
            }
            _ => job,
        };
        let bytes = crate::receipt::render_job(job, profile, self.utc_offset_minutes);
        match print(p, &bytes) {
            Ok(Printed::Done) => {
                tracing::info!(job = job.id, copy = job.copy, bytes = bytes.len(), "printed");
                if let Err(e) = self.journal.print_job_done(job.id, crate::clock::now_ms()) {
                    tracing::error!(error = %e, "cannot mark print job done");
                }
                self.status.send_modify(|s| {
                    s.printer.state = DeviceState::Idle;
                    s.printer.count += 1;
                });
                true
            }
            Ok(Printed::CutShort(why)) => {
                // What is left in the printer's buffer is thrown away, and the whole
                // receipt is printed again, marked as a copy, once the printer is back.
                tracing::warn!(job = job.id, %why, "receipt cut short; it will be reprinted whole as a copy");
                // DLE ENQ 2 acts at once, even offline; the cut waits in the buffer and
                // separates the stub from the copy once paper is back.
                let _ = p.write_all(&[0x10, 0x05, 0x02, 0x1D, 0x56, 0x42, 0x03]).and_then(|()| p.flush());
                if let Err(e) = self.journal.print_job_cut_short(job.id) {
                    tracing::error!(error = %e, "cannot mark print job for reprint");
                }
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "printer write failed; reopening, the receipt will be reprinted as a copy");
                let _ = self.journal.print_job_cut_short(job.id);
                self.set(DeviceState::Error, Some(e.to_string()), Some(disconnected_words()));
                false
            }
        }
    }

    fn set(&self, state: DeviceState, detail: Option<String>, words: Option<Words>) {
        self.status.send_if_modified(|s| {
            let changed = s.printer.state != state || s.printer.detail != detail || s.printer.words != words;
            (s.printer.state, s.printer.detail, s.printer.words) = (state, detail, words);
            changed
        });
    }

    /// Sleeps until woken by a new job, the timeout, or shutdown.
    fn sleep(&self, d: Duration) {
        let until = std::time::Instant::now() + d;
        while !self.stop.load(Ordering::Relaxed) {
            let left = until.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return;
            }
            match self.wake.recv_timeout(left.min(Duration::from_millis(200))) {
                Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
                Err(RecvTimeoutError::Timeout) => {}
            }
        }
    }
}

fn disconnected_words() -> Words {
    Words { ru: "Нет связи с принтером".into(), en: "Printer not responding".into() }
}

/// Sends a job followed by `GS r 1`, which the printer answers only once everything
/// before it has printed: the answer is the proof the receipt came out whole.
fn print(p: &mut serialport::TTYPort, bytes: &[u8]) -> std::io::Result<Printed> {
    use serialport::SerialPort;
    p.set_timeout(WRITE_TIMEOUT)?;
    let written = bytes.chunks(PRINT_CHUNK_BYTES).try_for_each(|c| p.write_all(c)).and_then(|()| {
        p.write_all(&[0x1D, 0x72, 0x01])?;
        p.flush()
    });
    p.set_timeout(READ_TICK)?;
    written?;
    // Wire time at the configured baud (about 1 ms a byte at 9600), plus printing slack.
    let wire = kassa_hardware::serial::byte_wire_time(&serialport_settings(p)) * bytes.len() as u32;
    let deadline = std::time::Instant::now() + wire + PRINT_SLACK;
    let mut byte = [0u8; 1];
    let mut next_check = std::time::Instant::now() + STATUS_CHECK_WHILE_PRINTING;
    while std::time::Instant::now() < deadline {
        match p.read(&mut byte) {
            Ok(1) => return Ok(Printed::Done),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock) => {}
            Err(e) => return Err(e),
        }
        // The whole job is sent, so a real-time query lands between commands. Paper
        // out or an open cover now means the receipt stopped part-way: the printer
        // must not finish it later on a new roll as if nothing happened.
        if std::time::Instant::now() >= next_check {
            next_check += STATUS_CHECK_WHILE_PRINTING;
            if let Ok(st) = query_status(p, STATUS_REPLY_TIMEOUT) {
                if !st.ready() {
                    return Ok(Printed::CutShort(st.describe_en()));
                }
            }
        }
    }
    // No answer: ask why. A printer that is ready but never answers GS r 1 (some
    // clones) has printed; one that is out of paper or open has not finished.
    match query_status(p, STATUS_REPLY_TIMEOUT) {
        Ok(st) if st.ready() => Ok(Printed::Done),
        Ok(st) => Ok(Printed::CutShort(st.describe_en())),
        Err(e) => Ok(Printed::CutShort(e.to_string())),
    }
}

fn serialport_settings(p: &serialport::TTYPort) -> kassa_hardware::serial::SerialSettings {
    use serialport::SerialPort;
    kassa_hardware::serial::SerialSettings { baud: p.baud_rate().unwrap_or(9600), ..Default::default() }
}
