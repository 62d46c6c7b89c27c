//! A virtual ESC/POS printer on a pty: a thread reads what the agent sends, feeds the
//! interpreter in [`crate::printer_emu`], answers status queries and collects receipts.
//!
//! Faults can be set at any moment, also in the middle of a receipt: the interpreter
//! holds what arrives while offline and prints it when the fault clears. Unplugging
//! closes the pty (the agent's next write fails and it reopens the path with backoff);
//! replugging makes a new pty behind the same symlink. The printer itself keeps its
//! state across a replug, as a real one does when only the cable was pulled.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::bytelog::{ByteLog, Direction};
use crate::printer_emu::{Interpreter, Model, Output, PaperState, Receipt};
use crate::pty::Pty;

/// How long the reader waits for bytes before it looks at the stop flag again.
const READ_POLL: Duration = Duration::from_millis(50);
/// How long `unplug` waits for the reader to let go of the pty.
const UNPLUG_WAIT: Duration = Duration::from_secs(1);

/// What the printer did, in order; the demo prints these and tests wait on them.
#[derive(Debug, Clone)]
pub enum PrinterEvent {
    Receipt(Receipt),
    DrawerKick,
    Unknown { offset: u64, byte: u8 },
}

/// A fault a technician (or a scenario) can trigger on the printer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrinterFault {
    PaperNearEnd,
    PaperOut,
    CoverOpen,
    Offline,
}

/// The printer's state as its sensors and cable see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrinterState {
    pub plugged: bool,
    pub paper: PaperState,
    pub cover_open: bool,
    /// Forced offline (the technician's switch).
    pub offline: bool,
    /// Printing: not forced offline, cover closed, paper not out.
    pub online: bool,
    /// Bytes held while not online.
    pub buffered_bytes: usize,
    pub bytes_received: u64,
    /// Bytes lost because the input buffer was full.
    pub dropped_bytes: u64,
}

impl std::fmt::Display for PrinterState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let paper = match self.paper {
            PaperState::Ok => "ok",
            PaperState::NearEnd => "near end",
            PaperState::Out => "out",
        };
        write!(
            f,
            "{}, {}, paper {paper}, cover {}, {} B received, {} B held, {} B dropped",
            if self.plugged { "plugged in" } else { "unplugged" },
            if self.online { "online" } else { "offline" },
            if self.cover_open { "open" } else { "closed" },
            self.bytes_received,
            self.buffered_bytes,
            self.dropped_bytes,
        )
    }
}

#[derive(Debug)]
struct Inner {
    link: Option<PathBuf>,
    /// `None` while unplugged. Shared with the reader for the length of one read.
    pty: Mutex<Option<Arc<Pty>>>,
    path: Mutex<PathBuf>,
    interp: Mutex<Interpreter>,
    events: Mutex<Sender<PrinterEvent>>,
    stop: AtomicBool,
    log: ByteLog,
    /// A fault to trigger once this many more bytes have been received.
    armed: Mutex<Option<(u64, PrinterFault)>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Inner {
    fn current_pty(&self) -> Option<Arc<Pty>> {
        lock(&self.pty).clone()
    }

    fn handle(&self, outputs: Vec<Output>) {
        for out in outputs {
            let ev = match out {
                Output::Reply(bytes) => {
                    let Some(pty) = self.current_pty() else {
                        self.log.note(format!("unplugged: reply {} not sent", kassa_hardware::escape(&bytes)));
                        continue;
                    };
                    // Logged first, so that the log is in order when the host reacts at once.
                    self.log.bytes(Direction::ToHost, &bytes);
                    if let Err(e) = pty.write_all(&bytes) {
                        tracing::warn!(error = %e, "virtual printer could not answer");
                        self.log.note(format!("reply not sent: {e}"));
                    }
                    continue;
                }
                Output::Receipt(r) => {
                    self.log.note(format!("receipt printed: {} lines, {:?} cut", r.lines.len(), r.cut));
                    PrinterEvent::Receipt(r)
                }
                Output::DrawerKick { .. } => {
                    self.log.note("cash drawer kicked");
                    PrinterEvent::DrawerKick
                }
                Output::Unknown { offset, byte } => {
                    self.log.note(format!("unknown command byte 0x{byte:02x} at offset {offset}, skipped"));
                    PrinterEvent::Unknown { offset, byte }
                }
            };
            let _ = lock(&self.events).send(ev);
        }
    }

    fn interp(&self) -> MutexGuard<'_, Interpreter> {
        lock(&self.interp)
    }

    fn read_loop(&self) {
        let mut buf = [0u8; 4096];
        while !self.stop.load(Ordering::Relaxed) {
            let Some(pty) = self.current_pty() else {
                std::thread::sleep(READ_POLL);
                continue;
            };
            match pty.read_timeout(&mut buf, READ_POLL) {
                Ok(0) => {}
                Ok(n) => {
                    self.log.bytes(Direction::FromHost, &buf[..n]);
                    // An armed fault strikes exactly at its byte, even inside this read.
                    let split = self.take_armed(n);
                    let (before, after) = buf[..n].split_at(split.map_or(n, |(at, _)| at));
                    let outputs = self.interp().push(before);
                    self.handle(outputs);
                    if let Some((_, fault)) = split {
                        self.log.note(format!("armed fault strikes: {fault:?}"));
                        self.apply(fault);
                        let outputs = self.interp().push(after);
                        self.handle(outputs);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    tracing::warn!(error = %e, "virtual printer read failed");
                    std::thread::sleep(READ_POLL);
                }
            }
        }
    }
}

impl Inner {
    /// Counts `n` received bytes against the armed fault; if it strikes within them,
    /// disarms it and returns the offset in this read where it strikes.
    fn take_armed(&self, n: usize) -> Option<(usize, PrinterFault)> {
        let mut armed = lock(&self.armed);
        let (remaining, fault) = (*armed)?;
        match usize::try_from(remaining) {
            Ok(at) if at <= n => {
                *armed = None;
                Some((at, fault))
            }
            _ => {
                *armed = Some((remaining - n as u64, fault));
                None
            }
        }
    }

    fn apply(&self, fault: PrinterFault) {
        let mut interp = self.interp();
        let out = match fault {
            PrinterFault::PaperNearEnd => interp.set_paper(PaperState::NearEnd),
            PrinterFault::PaperOut => interp.set_paper(PaperState::Out),
            PrinterFault::CoverOpen => interp.set_cover_open(true),
            PrinterFault::Offline => interp.set_offline(true),
        };
        drop(interp);
        self.handle(out);
    }
}

#[derive(Debug)]
pub struct VirtualPrinter {
    inner: Arc<Inner>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl VirtualPrinter {
    /// Creates the printer, plugged in, paper OK; its events arrive on the returned receiver.
    pub fn create(link: Option<&Path>, model: Model) -> io::Result<(VirtualPrinter, Receiver<PrinterEvent>)> {
        let (tx, rx) = mpsc::channel();
        let pty = Pty::open(link)?;
        let inner = Arc::new(Inner {
            link: link.map(Path::to_owned),
            path: Mutex::new(pty.path().to_owned()),
            pty: Mutex::new(Some(Arc::new(pty))),
            interp: Mutex::new(Interpreter::new(model)),
            events: Mutex::new(tx),
            stop: AtomicBool::new(false),
            log: ByteLog::new("printer"),
            armed: Mutex::new(None),
        });
        let i = inner.clone();
        let thread = std::thread::Builder::new().name("virtual-printer".into()).spawn(move || i.read_loop())?;
        Ok((VirtualPrinter { inner, thread: Some(thread) }, rx))
    }

    /// The path the agent opens (the symlink if there is one).
    pub fn path(&self) -> PathBuf {
        lock(&self.inner.path).clone()
    }

    pub fn log(&self) -> &ByteLog {
        &self.inner.log
    }

    pub fn state(&self) -> PrinterState {
        let plugged = lock(&self.inner.pty).is_some();
        let i = self.inner.interp();
        PrinterState {
            plugged,
            paper: i.paper(),
            cover_open: i.cover_open(),
            offline: i.forced_offline(),
            online: i.is_online(),
            buffered_bytes: i.buffered_bytes(),
            bytes_received: i.bytes_received(),
            dropped_bytes: i.dropped_bytes(),
        }
    }

    pub fn set_paper(&self, paper: PaperState) {
        self.inner.log.note(format!("paper {paper:?}"));
        let out = self.inner.interp().set_paper(paper);
        self.inner.handle(out);
    }

    pub fn set_cover_open(&self, open: bool) {
        self.inner.log.note(if open { "cover opened" } else { "cover closed" });
        let out = self.inner.interp().set_cover_open(open);
        self.inner.handle(out);
    }

    pub fn set_offline(&self, offline: bool) {
        self.inner.log.note(if offline { "switched offline" } else { "switched online" });
        let out = self.inner.interp().set_offline(offline);
        self.inner.handle(out);
    }

    pub fn bytes_received(&self) -> u64 {
        self.inner.interp().bytes_received()
    }

    /// Triggers `fault` once `bytes` more bytes have arrived from the host: paper
    /// running out in the middle of a receipt, at a byte of the technician's choosing.
    /// Replaces a fault armed before.
    pub fn fault_after(&self, bytes: u64, fault: PrinterFault) {
        self.inner.log.note(format!("armed: {fault:?} after {bytes} more bytes"));
        if bytes == 0 {
            self.inner.apply(fault);
        } else {
            *lock(&self.inner.armed) = Some((bytes, fault));
        }
    }

    /// The lines printed since the last cut: what is on the paper of a receipt cut
    /// short by a fault.
    pub fn pending_text(&self) -> String {
        let lines = self.inner.interp().pending_lines().to_vec();
        Receipt { lines, cut: crate::printer_emu::CutKind::Uncut }.text()
    }

    /// Pulls the cable: closes the pty (once the reader has let go of it) and removes
    /// the symlink. Returns false if it was already unplugged.
    pub fn unplug(&self) -> bool {
        let Some(mut pty) = lock(&self.inner.pty).take() else {
            return false;
        };
        // The reader holds a clone for at most one read poll; wait for it so that the
        // master is really closed when this returns.
        let deadline = Instant::now() + UNPLUG_WAIT;
        loop {
            match Arc::try_unwrap(pty) {
                Ok(pty) => {
                    drop(pty);
                    break;
                }
                Err(shared) if Instant::now() < deadline => {
                    pty = shared;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(_) => {
                    tracing::warn!("virtual printer reader still holds the pty; it closes after its read");
                    break;
                }
            }
        }
        self.inner.log.note("unplugged");
        true
    }

    /// Plugs the cable back: a new pty behind the same symlink. Returns false if it was
    /// already plugged.
    pub fn replug(&self) -> io::Result<bool> {
        let mut guard = lock(&self.inner.pty);
        if guard.is_some() {
            return Ok(false);
        }
        let pty = Pty::open(self.inner.link.as_deref())?;
        *lock(&self.inner.path) = pty.path().to_owned();
        self.inner.log.note(format!("plugged in at {}", pty.slave_path().display()));
        *guard = Some(Arc::new(pty));
        Ok(true)
    }
}

impl Drop for VirtualPrinter {
    fn drop(&mut self) {
        self.inner.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;

    #[test]
    fn unplugged_printer_fails_writes_and_comes_back_on_the_same_path() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("printer");
        let (printer, events) = VirtualPrinter::create(Some(&link), Model::Epson).unwrap();
        let open = || {
            kassa_hardware::serial::SerialSettings::default().open(link.to_str().unwrap(), Duration::from_millis(500))
        };
        let mut port = open().unwrap();
        port.write_all(b"one\n\x1dV\x00").unwrap();
        let Ok(PrinterEvent::Receipt(r)) = events.recv_timeout(Duration::from_secs(5)) else { panic!("no receipt") };
        assert_eq!(r.text(), "one\n");

        assert!(printer.unplug());
        assert!(!printer.state().plugged);
        assert!(!link.exists());
        assert!(port.write_all(b"lost\n").is_err(), "writes to an unplugged printer fail");

        assert!(printer.replug().unwrap());
        let mut port = open().unwrap();
        port.write_all(b"two\n\x1dV\x00\x10\x04\x04").unwrap();
        let Ok(PrinterEvent::Receipt(r)) = events.recv_timeout(Duration::from_secs(5)) else { panic!("no receipt") };
        assert_eq!(r.text(), "two\n");
        let mut reply = [0u8; 1];
        port.read_exact(&mut reply).unwrap();
        assert_eq!(reply, [0x12], "paper OK");

        let log: Vec<String> = printer.log().since(0).iter().map(|e| e.display("printer")).collect();
        assert!(log.iter().any(|l| l.contains("agent → printer  (10 B) two\\x0a")), "{log:?}");
        assert!(log.iter().any(|l| l.contains("printer → agent  (1 B) \\x12")), "{log:?}");
    }

    #[test]
    fn armed_fault_strikes_mid_receipt_and_the_receipt_completes_after() {
        let (printer, events) = VirtualPrinter::create(None, Model::Epson).unwrap();
        let mut port = kassa_hardware::serial::SerialSettings::default()
            .open(printer.path().to_str().unwrap(), READ_POLL)
            .unwrap();
        printer.fault_after(6, PrinterFault::PaperOut);
        port.write_all(b"head\nbody\ntail\n\x1dV\x00").unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while printer.state().buffered_bytes == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let state = printer.state();
        assert_eq!((state.paper, state.online), (PaperState::Out, false));
        assert_eq!(printer.pending_text(), "head\n", "the receipt stops at the fault");
        assert!(events.recv_timeout(Duration::from_millis(200)).is_err(), "no receipt while out of paper");

        printer.set_paper(PaperState::Ok);
        let Ok(PrinterEvent::Receipt(r)) = events.recv_timeout(Duration::from_secs(5)) else { panic!("no receipt") };
        assert_eq!(r.text(), "head\nbody\ntail\n", "printed whole once the paper is back");
    }

    #[test]
    fn unknown_commands_are_logged_with_their_offset() {
        let (printer, events) = VirtualPrinter::create(None, Model::Epson).unwrap();
        let mut port = kassa_hardware::serial::SerialSettings::default()
            .open(printer.path().to_str().unwrap(), READ_POLL)
            .unwrap();
        port.write_all(b"ab\x07").unwrap();
        let Ok(PrinterEvent::Unknown { offset, byte }) = events.recv_timeout(Duration::from_secs(5)) else {
            panic!("no unknown event")
        };
        assert_eq!((offset, byte), (2, 0x07));
        let log: Vec<String> = printer.log().since(0).iter().map(|e| e.display("printer")).collect();
        assert!(log.iter().any(|l| l.ends_with("unknown command byte 0x07 at offset 2, skipped")), "{log:?}");
    }
}
