//! Device drivers over byte streams.
//!
//! # Layout
//! - [`serial`]: serial settings and opening a port (real or pseudo-terminal).
//! - [`scanner`]: framing of scanner bytes into frames and the blocking reader loop
//!   that survives unplugging.
//! - [`barcode`]: what a frame means — a GTIN, a GS1 element string, a weighed item, a
//!   marking code, a loyalty card, a receipt, or a rejection with its reason.
//! - [`escpos`]: an ESC/POS encoder with per-model printer profiles.
//! - [`status`]: the printer's real-time status (`DLE EOT n`): replies validated by
//!   their fixed bits, combined into words, silence tracked into "disconnected".
//!
//! **Architecture invariant:** `hardware` knows nothing of sales, baskets or HQ. It turns
//! bytes into typed events and typed requests into bytes. It runs no async runtime: the
//! agent puts each device on a thread of its own.

pub mod barcode;
pub mod escpos;
pub mod scanner;
pub mod serial;
pub mod status;

/// Bytes as printable ASCII with `\xNN` escapes, for logs and diagnostics (the GS
/// separator shows as `\x1d`).
pub fn escape(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len());
    for &b in bytes {
        match b {
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7E => s.push(b as char),
            _ => s.push_str(&format!("\\x{b:02x}")),
        }
    }
    s
}
