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

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnescapeError {
    #[error("escape at byte {at}: \\x needs two hex digits")]
    Incomplete { at: usize },
    #[error("escape at byte {at}: \\x{hex} is not hexadecimal")]
    NotHex { at: usize, hex: String },
}

/// Reverses [`escape`]: `\xNN` becomes the byte, `\\` a backslash; a backslash before
/// anything else is kept as it is, so hand-typed codes need escaping only for GS.
pub fn unescape(text: &[u8]) -> Result<Vec<u8>, UnescapeError> {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        match (text[i], text.get(i + 1)) {
            (b'\\', Some(b'\\')) => {
                out.push(b'\\');
                i += 2;
            }
            (b'\\', Some(b'x')) => {
                let hex = text.get(i + 2..i + 4).ok_or(UnescapeError::Incomplete { at: i })?;
                let digits = std::str::from_utf8(hex).ok().filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()));
                let byte = digits
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| UnescapeError::NotHex { at: i, hex: String::from_utf8_lossy(hex).into_owned() })?;
                out.push(byte);
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    #[test]
    fn unescape_reverses_escape() {
        let raw = b"0104650001209603\x1d21ab\\c<>&/\xff";
        assert_eq!(super::escape(raw), "0104650001209603\\x1d21ab\\\\c<>&/\\xff");
        assert_eq!(super::unescape(super::escape(raw).as_bytes()).unwrap(), raw.to_vec());
        assert_eq!(super::unescape(b"a\\nb").unwrap(), b"a\\nb".to_vec());
        assert_eq!(super::unescape(b"\\x1"), Err(super::UnescapeError::Incomplete { at: 0 }));
        assert!(matches!(super::unescape(b"1\\x+1"), Err(super::UnescapeError::NotHex { at: 1, .. })));
    }

    proptest! {
        #[test]
        fn escape_round_trips(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            prop_assert_eq!(super::unescape(super::escape(&bytes).as_bytes()).unwrap(), bytes);
        }
    }
}
