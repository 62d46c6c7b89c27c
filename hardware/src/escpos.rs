//! An ESC/POS encoder. Byte values follow `shared/reference/hardware.md`; every command
//! is emitted whole (no half commands that make the printer eat following bytes).

use encoding_rs::Encoding;

/// What differs between printer models: which code table holds Cyrillic, how text is
/// encoded for it, whether the model starts in Chinese double-byte mode until `FS .`.
#[derive(Clone, Copy, Debug)]
pub struct PrinterProfile {
    pub name: &'static str,
    /// `ESC t n` table id for the encoding below (Epson numbering: PC866 = 17).
    pub code_table: u8,
    pub encoding: &'static Encoding,
    /// Send `FS .` (cancel Chinese mode) after every `ESC @`.
    pub cancel_chinese_mode: bool,
    /// Characters per line in font A (80 mm paper: 48; 58 mm: 32).
    pub columns: usize,
}

/// Epson TM-T20-like: PC866 as table 17.
pub const EPSON: PrinterProfile = PrinterProfile {
    name: "epson",
    code_table: 17,
    encoding: encoding_rs::IBM866,
    cancel_chinese_mode: false,
    columns: 48,
};

/// A common clone: WPC1251 as table 46, starts in Chinese mode until `FS .`.
pub const CLONE: PrinterProfile = PrinterProfile {
    name: "clone",
    code_table: 46,
    encoding: encoding_rs::WINDOWS_1251,
    cancel_chinese_mode: true,
    columns: 48,
};

pub const PROFILES: &[PrinterProfile] = &[EPSON, CLONE];

pub fn profile(name: &str) -> Option<PrinterProfile> {
    PROFILES.iter().copied().find(|p| p.name == name)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Align {
    Left = 0,
    Centre = 1,
    Right = 2,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cut {
    /// Feed `n` dots, then a full cut: `GS V 65 n`.
    FeedFull(u8),
    /// Feed `n` dots, then a partial cut: `GS V 66 n` (not 65: that is a full cut).
    FeedPartial(u8),
}

/// Builds one print job.
#[derive(Debug)]
pub struct Encoder {
    profile: PrinterProfile,
    buf: Vec<u8>,
}

impl Encoder {
    /// Starts a job: `ESC @`, `FS .` if the model needs it, then the code table.
    pub fn new(profile: PrinterProfile) -> Self {
        let mut e = Encoder { profile, buf: Vec::with_capacity(1024) };
        e.init();
        e
    }

    pub fn profile(&self) -> &PrinterProfile {
        &self.profile
    }

    pub fn init(&mut self) -> &mut Self {
        self.buf.extend_from_slice(&[0x1B, 0x40]);
        if self.profile.cancel_chinese_mode {
            self.buf.extend_from_slice(&[0x1C, 0x2E]);
        }
        self.buf.extend_from_slice(&[0x1B, 0x74, self.profile.code_table]);
        self
    }

    /// Text in the profile's encoding. Control bytes are dropped — a product name must
    /// never smuggle a command to the printer — and characters the code table lacks
    /// print as `?`.
    pub fn text(&mut self, s: &str) -> &mut Self {
        let mut encoder = self.profile.encoding.new_encoder();
        let clean: String = s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
        let mut src = clean.as_str();
        let mut out = vec![0u8; src.len() * 2 + 8];
        loop {
            let (result, read, written) = encoder.encode_from_utf8_without_replacement(src, &mut out, true);
            self.buf.extend_from_slice(&out[..written]);
            src = &src[read..];
            match result {
                encoding_rs::EncoderResult::InputEmpty => break,
                encoding_rs::EncoderResult::Unmappable(c) => self.buf.extend_from_slice(fallback(c).as_bytes()),
                encoding_rs::EncoderResult::OutputFull => {}
            }
        }
        self
    }

    pub fn line(&mut self, s: &str) -> &mut Self {
        self.text(s).newline()
    }

    pub fn newline(&mut self) -> &mut Self {
        self.buf.push(b'\n');
        self
    }

    /// `left` and `right` on one line, padded to the paper width.
    pub fn columns(&mut self, left: &str, right: &str) -> &mut Self {
        let width = self.profile.columns;
        let (l, r) = (left.chars().count(), right.chars().count());
        if l + r < width {
            let pad = " ".repeat(width - l - r);
            self.line(&format!("{left}{pad}{right}"))
        } else {
            self.line(left);
            let pad = " ".repeat(width.saturating_sub(r));
            self.line(&format!("{pad}{right}"))
        }
    }

    pub fn bold(&mut self, on: bool) -> &mut Self {
        self.buf.extend_from_slice(&[0x1B, 0x45, u8::from(on)]);
        self
    }

    pub fn align(&mut self, a: Align) -> &mut Self {
        self.buf.extend_from_slice(&[0x1B, 0x61, a as u8]);
        self
    }

    /// Character size, 1 to 8 times in each direction: `GS ! n`.
    pub fn size(&mut self, width: u8, height: u8) -> &mut Self {
        let w = width.clamp(1, 8) - 1;
        let h = height.clamp(1, 8) - 1;
        self.buf.extend_from_slice(&[0x1D, 0x21, (w << 4) | h]);
        self
    }

    /// A CODE128 barcode of code set B with its text below; the data must be printable
    /// ASCII of at most 253 bytes (`n` counts the `{B` too).
    pub fn code128(&mut self, data: &str) -> &mut Self {
        let bytes: Vec<u8> = data.bytes().filter(|b| (0x20..0x7F).contains(b)).take(253).collect();
        self.buf.extend_from_slice(&[0x1D, 0x68, 80]); // height in dots
        self.buf.extend_from_slice(&[0x1D, 0x77, 2]); // module width
        self.buf.extend_from_slice(&[0x1D, 0x48, 2]); // text below
        self.buf.extend_from_slice(&[0x1D, 0x6B, 73, (bytes.len() + 2) as u8, b'{', b'B']);
        self.buf.extend_from_slice(&bytes);
        self.newline()
    }

    /// A QR code (model 2, error level M); data up to 7,000 bytes, longer is cut.
    pub fn qr(&mut self, data: &[u8], module_size: u8) -> &mut Self {
        let data = &data[..data.len().min(7000)];
        self.buf.extend_from_slice(&[0x1D, 0x28, 0x6B, 0x04, 0x00, 0x31, 0x41, 0x32, 0x00]);
        self.buf.extend_from_slice(&[0x1D, 0x28, 0x6B, 0x03, 0x00, 0x31, 0x43, module_size.clamp(1, 16)]);
        self.buf.extend_from_slice(&[0x1D, 0x28, 0x6B, 0x03, 0x00, 0x31, 0x45, 0x31]);
        let len = data.len() + 3;
        self.buf.extend_from_slice(&[0x1D, 0x28, 0x6B, (len & 0xFF) as u8, (len >> 8) as u8, 0x31, 0x50, 0x30]);
        self.buf.extend_from_slice(data);
        self.buf.extend_from_slice(&[0x1D, 0x28, 0x6B, 0x03, 0x00, 0x31, 0x51, 0x30]);
        self
    }

    /// A cut, at the start of a line as the command requires.
    pub fn cut(&mut self, cut: Cut) -> &mut Self {
        if self.buf.last().is_some_and(|b| *b != b'\n') {
            self.newline();
        }
        match cut {
            Cut::FeedFull(n) => self.buf.extend_from_slice(&[0x1D, 0x56, 0x41, n]),
            Cut::FeedPartial(n) => self.buf.extend_from_slice(&[0x1D, 0x56, 0x42, n]),
        }
        self
    }

    /// Opens the cash drawer on pin 2 with 100 ms on, 100 ms off: `ESC p 0 50 50`.
    /// Always with both timing bytes — without them the printer eats the next two.
    pub fn drawer_kick(&mut self) -> &mut Self {
        self.buf.extend_from_slice(&[0x1B, 0x70, 0x00, 0x32, 0x32]);
        self
    }

    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}

/// An ASCII stand-in for typographic characters that receipt code tables lack (product
/// names are full of «guillemets»); anything else prints as `?`. ASCII only: it is
/// pushed as bytes, and ASCII is the same in every code table.
fn fallback(c: char) -> &'static str {
    match c {
        '«' | '»' | '„' | '“' | '”' => "\"",
        '‘' | '’' => "'",
        '×' => "x",
        '–' | '—' | '−' => "-",
        '…' => "...",
        '₽' => "RUB",
        '\u{a0}' => " ",
        _ => "?",
    }
}

/// `DLE EOT n`: real-time status request; send only between jobs.
pub fn status_request(n: u8) -> [u8; 3] {
    [0x10, 0x04, n]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_selects_the_profiles_code_table() {
        assert_eq!(Encoder::new(EPSON).finish(), vec![0x1B, 0x40, 0x1B, 0x74, 17]);
        assert_eq!(Encoder::new(CLONE).finish(), vec![0x1B, 0x40, 0x1C, 0x2E, 0x1B, 0x74, 46]);
    }

    #[test]
    fn cyrillic_is_encoded_per_profile_and_controls_are_dropped() {
        let mut e = Encoder::new(EPSON);
        e.text("Ёж\x1b@");
        assert_eq!(&e.finish()[5..], &[0xF0, 0xA6, b' ', b'@']);
        let mut e = Encoder::new(CLONE);
        e.text("Ёж€");
        assert_eq!(&e.finish()[7..], &[0xA8, 0xE6, 0x88]);
        let mut e = Encoder::new(EPSON);
        e.text("a€b «x» 2×3"); // no euro sign, guillemets or times sign in PC866
        assert_eq!(&e.finish()[5..], b"a?b \"x\" 2x3");
    }

    #[test]
    fn commands_are_byte_exact() {
        let mut e = Encoder::new(EPSON);
        e.bold(true).align(Align::Centre).size(2, 2).drawer_kick().cut(Cut::FeedPartial(3));
        assert_eq!(
            &e.finish()[5..],
            &[0x1B, 0x45, 1, 0x1B, 0x61, 1, 0x1D, 0x21, 0x11, 0x1B, 0x70, 0x00, 0x32, 0x32, b'\n', 0x1D, 0x56, 0x42, 3]
        );
        let mut e = Encoder::new(EPSON);
        e.qr(b"0001-01-000001", 6);
        let b = e.finish();
        assert_eq!(&b[5..14], &[0x1D, 0x28, 0x6B, 0x04, 0x00, 0x31, 0x41, 0x32, 0x00]);
        assert_eq!(&b[30..38], &[0x1D, 0x28, 0x6B, 17, 0, 0x31, 0x50, 0x30]);
        assert_eq!(&b[b.len() - 8..], &[0x1D, 0x28, 0x6B, 0x03, 0x00, 0x31, 0x51, 0x30]);
    }
}
