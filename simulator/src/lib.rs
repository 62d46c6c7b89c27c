//! `kassa-sim`: virtual devices for technicians and tests, and the one-command demo.
//!
//! # Layout
//! - [`pty`]: pseudo-terminals as virtual serial devices, with stable symlinks.
//! - [`bytelog`]: the bounded log of bytes each device exchanged, both directions.
//! - [`scanner`]: a virtual barcode scanner.
//! - [`printer_emu`]: a sans-IO ESC/POS printer interpreter (status, faults, receipts).
//! - [`printer`]: the interpreter on a pty, as a virtual printer.
//! - [`render`]: receipts drawn as PNG images.
//! - [`console`]: the technician's console commands (scan, faults, unplug, byte log).
//! - [`stack`]: HQ + one agent + virtual devices on one machine.
//! - [`scenario`]: TOML scenarios run against a live agent through its devices (`kassa-sim run`).
//! - [`demo`]: `kassa-sim demo`, its console and control socket.
//! - [`bench`], [`bench_sync`], [`bench_promotions`]: `kassa-sim bench …`.
//! - [`fleet`]: `kassa-sim fleet`, many stores on one HQ (run as a child process).

pub mod bench;
pub mod bench_orders;
pub mod bench_promotions;
pub mod bench_sync;
pub mod bytelog;
pub mod console;
pub mod demo;
pub mod fleet;
pub mod printer;
pub mod printer_emu;
pub mod pty;
pub mod render;
pub mod scanner;
pub mod scenario;
pub mod stack;
