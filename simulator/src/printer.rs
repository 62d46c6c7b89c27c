//! A virtual ESC/POS printer on a pty: a thread reads what the agent sends, feeds the
//! interpreter in [`crate::printer_emu`], answers status queries and collects receipts.

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::printer_emu::{Interpreter, Model, Output, PaperState, Receipt};
use crate::pty::Pty;

/// What the printer did, in order; the demo prints these and tests wait on them.
#[derive(Debug, Clone)]
pub enum PrinterEvent {
    Receipt(Receipt),
    DrawerKick,
    Unknown { offset: u64, byte: u8 },
}

#[derive(Debug)]
struct Inner {
    pty: Pty,
    interp: Mutex<Interpreter>,
    events: Mutex<Sender<PrinterEvent>>,
    stop: AtomicBool,
}

impl Inner {
    fn handle(&self, outputs: Vec<Output>) {
        for out in outputs {
            let ev = match out {
                Output::Reply(bytes) => {
                    if let Err(e) = self.pty.write_all(&bytes) {
                        tracing::warn!(error = %e, "virtual printer could not answer");
                    }
                    continue;
                }
                Output::Receipt(r) => PrinterEvent::Receipt(r),
                Output::DrawerKick { .. } => PrinterEvent::DrawerKick,
                Output::Unknown { offset, byte } => PrinterEvent::Unknown { offset, byte },
            };
            let _ = self.events.lock().expect("events lock").send(ev);
        }
    }

    fn interp(&self) -> std::sync::MutexGuard<'_, Interpreter> {
        self.interp.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[derive(Debug)]
pub struct VirtualPrinter {
    inner: Arc<Inner>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl VirtualPrinter {
    /// Creates the printer; its events arrive on the returned receiver.
    pub fn create(link: Option<&Path>, model: Model) -> io::Result<(VirtualPrinter, Receiver<PrinterEvent>)> {
        let (tx, rx) = mpsc::channel();
        let inner = Arc::new(Inner {
            pty: Pty::open(link)?,
            interp: Mutex::new(Interpreter::new(model)),
            events: Mutex::new(tx),
            stop: AtomicBool::new(false),
        });
        let i = inner.clone();
        let thread = std::thread::Builder::new().name("virtual-printer".into()).spawn(move || {
            let mut buf = [0u8; 4096];
            while !i.stop.load(Ordering::Relaxed) {
                match i.pty.read_timeout(&mut buf, Duration::from_millis(50)) {
                    Ok(0) => {}
                    Ok(n) => {
                        let outputs = i.interp().push(&buf[..n]);
                        i.handle(outputs);
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "virtual printer read failed");
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            }
        })?;
        Ok((VirtualPrinter { inner, thread: Some(thread) }, rx))
    }

    pub fn path(&self) -> &Path {
        self.inner.pty.path()
    }

    pub fn set_paper(&self, paper: PaperState) {
        let out = self.inner.interp().set_paper(paper);
        self.inner.handle(out);
    }

    pub fn set_cover_open(&self, open: bool) {
        let out = self.inner.interp().set_cover_open(open);
        self.inner.handle(out);
    }

    pub fn set_offline(&self, offline: bool) {
        let out = self.inner.interp().set_offline(offline);
        self.inner.handle(out);
    }

    pub fn bytes_received(&self) -> u64 {
        self.inner.interp().bytes_received()
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
