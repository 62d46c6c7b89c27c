//! A virtual barcode scanner: writes frames into a pty as a serial scanner does.

use std::io;
use std::path::Path;

use crate::pty::Pty;

#[derive(Debug)]
pub struct VirtualScanner {
    pty: Pty,
    /// Appended to every frame (CR by default, like most serial scanners).
    pub suffix: Vec<u8>,
}

impl VirtualScanner {
    pub fn create(link: Option<&Path>) -> io::Result<VirtualScanner> {
        Ok(VirtualScanner { pty: Pty::open(link)?, suffix: b"\r".to_vec() })
    }

    pub fn path(&self) -> &Path {
        self.pty.path()
    }

    /// Sends one code as one frame.
    pub fn scan(&self, code: &[u8]) -> io::Result<()> {
        let mut frame = Vec::with_capacity(code.len() + self.suffix.len());
        frame.extend_from_slice(code);
        frame.extend_from_slice(&self.suffix);
        self.pty.write_all(&frame)
    }

    /// Raw bytes, for garbage and split frames.
    pub fn send_raw(&self, bytes: &[u8]) -> io::Result<()> {
        self.pty.write_all(bytes)
    }
}

/// Reverses [`kassa_hardware::escape`]: `\x1d` becomes the GS byte, `\\` a backslash.
pub fn unescape(text: &str) -> Result<Vec<u8>, String> {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match (b[i], b.get(i + 1)) {
            (b'\\', Some(b'\\')) => {
                out.push(b'\\');
                i += 2;
            }
            (b'\\', Some(b'x')) => {
                let hex = text.get(i + 2..i + 4).ok_or("incomplete \\x escape")?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| format!("bad escape \\x{hex}"))?);
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn unescape_reverses_escape() {
        let raw = b"0104650001209603\x1d21ab\\c<>&/";
        assert_eq!(super::unescape(&kassa_hardware::escape(raw)).unwrap(), raw.to_vec());
        assert!(super::unescape("\\x1").is_err());
    }
}
