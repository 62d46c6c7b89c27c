//! The device manager: one thread per device, each owning its port.
//!
//! ```text
//! scanner thread ──frames (bounded)──▶ scan task ──▶ Till::scan
//! spooler thread ◀──wake── Till::pay / reprint;  reads print jobs from the journal
//! ```
//! Serial I/O blocks, so it never runs on the async executor.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;

use kassa_hardware::escpos;
use kassa_hardware::scanner::{self, ScannerEvent};
use tokio::sync::mpsc;

use crate::config::{PrinterConfig, ScannerConfig};
use crate::journal::Journal;
use crate::status::{DeviceState, StatusBoard};

/// Frames waiting for the till; a scanner cannot produce more than a few per second,
/// so a full queue means the till is stuck, and further frames are dropped and counted.
pub const SCAN_QUEUE_MAX: usize = 64;
/// How long the spooler sleeps when idle before it looks at the journal again (jobs
/// queued by another process, or a missed wake-up).
const SPOOLER_IDLE_POLL: Duration = Duration::from_millis(500);
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
    journal: Arc<Journal>,
    status: StatusBoard,
    wake: Receiver<()>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    let profile = escpos::profile(&cfg.model).expect("validated in config");
    status.send_modify(|s| {
        s.printer.configured = true;
        s.printer.path = Some(cfg.path.clone());
    });
    std::thread::Builder::new()
        .name("spooler".into())
        .spawn(move || {
            let mut port: Option<serialport::TTYPort> = None;
            let mut backoff_ms = 100;
            while !stop.load(Ordering::Relaxed) {
                let p = match port.as_mut() {
                    Some(p) => p,
                    None => match cfg.serial.open(&cfg.path, Duration::from_millis(500)) {
                        Ok(p) => {
                            tracing::info!(path = %cfg.path, "printer connected");
                            status.send_modify(|s| {
                                s.printer.state = DeviceState::Idle;
                                s.printer.detail = None;
                            });
                            backoff_ms = 100;
                            port.insert(p)
                        }
                        Err(e) => {
                            status.send_modify(|s| {
                                s.printer.state = DeviceState::Error;
                                s.printer.detail = Some(e.to_string());
                            });
                            let _ = wake.recv_timeout(Duration::from_millis(backoff_ms));
                            backoff_ms = (backoff_ms * 2).min(PRINTER_BACKOFF_MS_MAX);
                            continue;
                        }
                    },
                };
                let job = match journal.next_print_job() {
                    Ok(job) => job,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot read print jobs");
                        None
                    }
                };
                let Some(job) = job else {
                    match wake.recv_timeout(SPOOLER_IDLE_POLL) {
                        Ok(()) | Err(RecvTimeoutError::Timeout) => continue,
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                };
                status.send_modify(|s| s.printer.state = DeviceState::Busy);
                let bytes = crate::receipt::render_printable(&job.printable, profile, job.copy, utc_offset_minutes);
                let written = bytes.chunks(PRINT_CHUNK_BYTES).try_for_each(|c| p.write_all(c)).and_then(|()| p.flush());
                match written {
                    Ok(()) => {
                        tracing::info!(job = job.id, copy = job.copy, "printed");
                        if let Err(e) = journal.print_job_done(job.id, crate::till::now_ms()) {
                            tracing::error!(error = %e, "cannot mark print job done");
                        }
                        status.send_modify(|s| {
                            s.printer.state = DeviceState::Idle;
                            s.printer.count += 1;
                        });
                    }
                    Err(e) => {
                        // The job stays pending and is printed whole when the printer is back.
                        tracing::warn!(error = %e, "printer write failed; will reopen");
                        status.send_modify(|s| {
                            s.printer.state = DeviceState::Error;
                            s.printer.detail = Some(e.to_string());
                        });
                        port = None;
                    }
                }
            }
        })
        .expect("spawn spooler thread")
}
