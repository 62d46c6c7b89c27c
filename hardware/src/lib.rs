//! Device drivers over byte streams.
//!
//! # Layout
//! - [`serial`]: serial settings and opening a port (real or pseudo-terminal).
//! - [`scanner`]: framing of scanner bytes into frames and the blocking reader loop
//!   that survives unplugging.
//! - [`barcode`]: what a frame means — a GTIN, an in-store weighted code, or a rejection
//!   with its reason.
//! - [`escpos`]: an ESC/POS encoder with per-model printer profiles.
//!
//! **Architecture invariant:** `hardware` knows nothing of sales, baskets or HQ. It turns
//! bytes into typed events and typed requests into bytes. It runs no async runtime: the
//! agent puts each device on a thread of its own.

pub mod barcode;
pub mod escpos;
pub mod scanner;
pub mod serial;
