//! A virtual barcode scanner: writes frames into a pty as a serial scanner does.
//!
//! What a technician sets on a real scanner is a setting here: the suffix (CR, LF, CRLF
//! or none) and the AIM symbology prefix (`]E0`, `]d2`, ...). What happens to real
//! scanners can be made to happen: garbage on the line (a baud mismatch), a frame
//! arriving in pieces, the cable pulled and put back.
//!
//! Unplugging closes the pty (the agent's reads fail and it starts reopening the path
//! with backoff); replugging creates a new pty and points the same symlink at it, as
//! udev does for a real device that comes back, possibly under another node name. All
//! methods take `&self`, so the console and a scan-list thread can share one scanner.

use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::bytelog::{ByteLog, Direction};
use crate::pty::Pty;

/// Longest code list read from a file: a day of scans at a busy till.
pub const CODE_LIST_CODES_MAX: usize = 10_000;
/// Fastest list scanning, in codes per second: well beyond a person, still readable in
/// the log.
pub const SCAN_RATE_PER_S_MAX: u32 = 100;
/// Most pieces a frame can be split into.
pub const SPLIT_PARTS_MAX: usize = 64;
/// Most garbage bytes injected at once.
pub const GARBAGE_BYTES_MAX: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum ScannerError {
    #[error("the scanner is unplugged")]
    Unplugged,
    #[error("scanner pty: {0}")]
    Io(#[from] io::Error),
    #[error("{0}")]
    Invalid(String),
}

/// What the scanner appends to every code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Suffix {
    #[default]
    Cr,
    Lf,
    CrLf,
    /// Nothing: the host must cut frames by the idle gap (Zebra "Standard RS-232").
    None,
}

impl Suffix {
    pub fn bytes(self) -> &'static [u8] {
        match self {
            Suffix::Cr => b"\r",
            Suffix::Lf => b"\n",
            Suffix::CrLf => b"\r\n",
            Suffix::None => b"",
        }
    }
}

impl FromStr for Suffix {
    type Err = ScannerError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "cr" => Suffix::Cr,
            "lf" => Suffix::Lf,
            "crlf" => Suffix::CrLf,
            "none" => Suffix::None,
            _ => return Err(ScannerError::Invalid(format!("suffix `{s}`: cr, lf, crlf or none"))),
        })
    }
}

/// The AIM symbology identifier (`]cm`) sent before each code.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AimPrefix {
    #[default]
    Off,
    /// Chosen from the code as a scanner reading that symbology would: see [`aim_for`].
    Auto,
    /// Always these three bytes, e.g. `]E0`.
    Fixed([u8; 3]),
}

impl FromStr for AimPrefix {
    type Err = ScannerError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "off" => Ok(AimPrefix::Off),
            "auto" => Ok(AimPrefix::Auto),
            _ => match s.as_bytes() {
                &[b']', c, m] if c.is_ascii_alphabetic() && m.is_ascii_alphanumeric() => {
                    Ok(AimPrefix::Fixed([b']', c, m]))
                }
                _ => Err(ScannerError::Invalid(format!("AIM prefix `{s}`: off, auto or ]cm such as ]E0"))),
            },
        }
    }
}

/// The AIM identifier a scanner would send for `code`: `]E0` EAN-13 (and UPC-A, which
/// scanners expand to 13 digits), `]E4` EAN-8, `]d2` GS1 DataMatrix for element strings
/// starting with AI (01) (marking codes), `]C0` CODE128 otherwise.
pub fn aim_for(code: &[u8]) -> [u8; 3] {
    let digits = code.iter().all(u8::is_ascii_digit);
    match code.len() {
        12 | 13 if digits => *b"]E0",
        8 if digits => *b"]E4",
        n if code.starts_with(b"01") && (n > 16 || code.contains(&0x1D)) => *b"]d2",
        _ => *b"]C0",
    }
}

/// The scanner's framing settings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Framing {
    pub suffix: Suffix,
    pub aim: AimPrefix,
}

impl Framing {
    /// `code` as the scanner sends it: prefix, code, suffix.
    pub fn frame(&self, code: &[u8]) -> Vec<u8> {
        let prefix = match &self.aim {
            AimPrefix::Off => None,
            AimPrefix::Auto => Some(aim_for(code)),
            AimPrefix::Fixed(p) => Some(*p),
        };
        let mut frame = Vec::with_capacity(code.len() + 5);
        frame.extend(prefix.iter().flatten());
        frame.extend_from_slice(code);
        frame.extend_from_slice(self.suffix.bytes());
        frame
    }
}

impl std::fmt::Display for Framing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let suffix = match self.suffix {
            Suffix::Cr => "cr",
            Suffix::Lf => "lf",
            Suffix::CrLf => "crlf",
            Suffix::None => "none",
        };
        let aim = match &self.aim {
            AimPrefix::Off => "off".to_owned(),
            AimPrefix::Auto => "auto".to_owned(),
            AimPrefix::Fixed(p) => String::from_utf8_lossy(p).into_owned(),
        };
        write!(f, "suffix {suffix}, AIM {aim}")
    }
}

#[derive(Debug)]
pub struct VirtualScanner {
    link: Option<PathBuf>,
    /// `None` while unplugged.
    pty: Mutex<Option<Pty>>,
    /// The path the agent opens; changes at replug only without a link.
    path: Mutex<PathBuf>,
    framing: Mutex<Framing>,
    log: ByteLog,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl VirtualScanner {
    /// A scanner plugged in, CR suffix, no AIM prefix.
    pub fn create(link: Option<&Path>) -> io::Result<VirtualScanner> {
        let pty = Pty::open(link)?;
        Ok(VirtualScanner {
            link: link.map(Path::to_owned),
            path: Mutex::new(pty.path().to_owned()),
            pty: Mutex::new(Some(pty)),
            framing: Mutex::new(Framing::default()),
            log: ByteLog::new("scanner"),
        })
    }

    /// The path the agent opens (the symlink if there is one).
    pub fn path(&self) -> PathBuf {
        lock(&self.path).clone()
    }

    pub fn is_plugged(&self) -> bool {
        lock(&self.pty).is_some()
    }

    pub fn framing(&self) -> Framing {
        lock(&self.framing).clone()
    }

    pub fn set_framing(&self, framing: Framing) {
        self.log.note(format!("framing: {framing}"));
        *lock(&self.framing) = framing;
    }

    pub fn log(&self) -> &ByteLog {
        &self.log
    }

    /// Sends one code as one frame, with the current prefix and suffix.
    pub fn scan(&self, code: &[u8]) -> Result<(), ScannerError> {
        let frame = self.framing().frame(code);
        self.send_raw(&frame)
    }

    /// Sends one code's frame in `parts` pieces with `delay` between them, as a slow
    /// link or a long DataMatrix code does. A delay longer than the host's idle gap
    /// makes it cut the frame in two: that is the point of trying.
    pub fn scan_split(&self, code: &[u8], parts: usize, delay: Duration) -> Result<(), ScannerError> {
        if !(1..=SPLIT_PARTS_MAX).contains(&parts) {
            return Err(ScannerError::Invalid(format!("parts must be 1 to {SPLIT_PARTS_MAX}")));
        }
        let frame = self.framing().frame(code);
        let size = frame.len().div_ceil(parts).max(1);
        for (i, piece) in frame.chunks(size).enumerate() {
            if i > 0 {
                std::thread::sleep(delay);
            }
            self.send_raw(piece)?;
        }
        Ok(())
    }

    /// Sends `len` pseudo-random bytes, as a scanner at the wrong baud rate does.
    pub fn garbage(&self, len: usize, seed: u64) -> Result<(), ScannerError> {
        if len > GARBAGE_BYTES_MAX {
            return Err(ScannerError::Invalid(format!("at most {GARBAGE_BYTES_MAX} garbage bytes")));
        }
        self.send_raw(&garbage_bytes(len, seed))
    }

    /// Raw bytes, exactly as given.
    pub fn send_raw(&self, bytes: &[u8]) -> Result<(), ScannerError> {
        let guard = lock(&self.pty);
        let Some(pty) = guard.as_ref() else {
            self.log.note(format!("unplugged: {} B not sent", bytes.len()));
            return Err(ScannerError::Unplugged);
        };
        pty.write_all(bytes)?;
        self.log.bytes(Direction::ToHost, bytes);
        Ok(())
    }

    /// Scans `codes` at `codes_per_s` until done or `stop` is set; returns how many were
    /// sent. Codes scanned while unplugged are lost, as with a real scanner, and counted
    /// as not sent. Blocking: run it on a thread of its own.
    pub fn scan_list(&self, codes: &[Vec<u8>], codes_per_s: u32, stop: &AtomicBool) -> Result<usize, ScannerError> {
        if !(1..=SCAN_RATE_PER_S_MAX).contains(&codes_per_s) {
            return Err(ScannerError::Invalid(format!("rate must be 1 to {SCAN_RATE_PER_S_MAX} codes per second")));
        }
        let interval = Duration::from_millis(1000 / u64::from(codes_per_s));
        let start = Instant::now();
        let mut sent = 0;
        for (i, code) in codes.iter().enumerate() {
            // Paced from the start, not from the last write, so the rate does not drift.
            let due = start + interval * u32::try_from(i).unwrap_or(u32::MAX);
            while Instant::now() < due {
                if stop.load(Ordering::Relaxed) {
                    return Ok(sent);
                }
                std::thread::sleep(due.saturating_duration_since(Instant::now()).min(Duration::from_millis(50)));
            }
            if stop.load(Ordering::Relaxed) {
                break;
            }
            match self.scan(code) {
                Ok(()) => sent += 1,
                Err(ScannerError::Unplugged) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(sent)
    }

    /// Pulls the cable: closes the pty and removes the symlink. Returns false if it was
    /// already unplugged.
    pub fn unplug(&self) -> bool {
        let pty = lock(&self.pty).take();
        if pty.is_some() {
            self.log.note("unplugged");
        }
        pty.is_some()
    }

    /// Plugs the cable back: a new pty behind the same symlink. Returns false if it was
    /// already plugged.
    pub fn replug(&self) -> io::Result<bool> {
        let mut guard = lock(&self.pty);
        if guard.is_some() {
            return Ok(false);
        }
        let pty = Pty::open(self.link.as_deref())?;
        *lock(&self.path) = pty.path().to_owned();
        self.log.note(format!("plugged in at {}", pty.slave_path().display()));
        *guard = Some(pty);
        Ok(true)
    }
}

/// Deterministic pseudo-random bytes (xorshift), so a garbage test can be replayed.
pub fn garbage_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[0]
        })
        .collect()
}

#[derive(Debug, thiserror::Error)]
pub enum CodeListError {
    #[error("line {line}: {reason}")]
    Line { line: usize, reason: String },
    #[error("more than {CODE_LIST_CODES_MAX} codes")]
    TooMany,
}

/// A code list: one code per line, `\x1d` for GS, blank lines and `#` comments skipped.
pub fn parse_code_list(text: &str) -> Result<Vec<Vec<u8>>, CodeListError> {
    let mut codes = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if codes.len() == CODE_LIST_CODES_MAX {
            return Err(CodeListError::TooMany);
        }
        codes.push(unescape(line).map_err(|reason| CodeListError::Line { line: i + 1, reason })?);
    }
    Ok(codes)
}

/// Codes as the goods carry them.
pub mod codes {
    use kassa_protocol::gtin::check_digit;

    /// Appends the GS1 check digit to `digits` (7, 11, 12 or 13 digits).
    pub fn with_check_digit(digits: &str) -> Result<String, String> {
        if !matches!(digits.len(), 7 | 11 | 12 | 13) || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("`{digits}`: 7, 11, 12 or 13 digits"));
        }
        Ok(format!("{digits}{}", check_digit(digits.as_bytes())))
    }

    /// An in-store code of a weighed item, `22 PPPPP WWWWW C`: prefix, 5-digit PLU,
    /// weight in grams, check digit (the demo stores' template).
    pub fn weighted(plu: u32, grams: u32) -> Result<String, String> {
        if plu > 99_999 || !(1..=99_999).contains(&grams) {
            return Err("PLU up to 99999, weight 1 to 99999 g".into());
        }
        with_check_digit(&format!("22{plu:05}{grams:05}"))
    }

    /// A Russian marking code ("Честный знак") as a GS1 DataMatrix element string:
    /// `01 GTIN-14, 21 serial GS 91 key GS 92 crypto tail`. The GS bytes are real bytes.
    pub fn marking(gtin14: &str, serial: &str, key: &str, crypto: &str) -> Vec<u8> {
        let mut code = format!("01{gtin14}21{serial}").into_bytes();
        code.push(0x1D);
        code.extend_from_slice(format!("91{key}").as_bytes());
        code.push(0x1D);
        code.extend_from_slice(format!("92{crypto}").as_bytes());
        code
    }
}

/// Reverses [`kassa_hardware::escape`] for text typed at the console or in a scenario:
/// `\x1d` becomes the GS byte, `\\` a backslash.
pub fn unescape(text: &str) -> Result<Vec<u8>, String> {
    kassa_hardware::unescape(text.as_bytes()).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    #[test]
    fn unescape_reverses_escape() {
        let raw = b"0104650001209603\x1d21ab\\c<>&/";
        assert_eq!(super::unescape(&kassa_hardware::escape(raw)).unwrap(), raw.to_vec());
        assert!(super::unescape("\\x1").is_err());
    }

    #[test]
    fn frames_carry_prefix_and_suffix() {
        let framing = Framing { suffix: Suffix::CrLf, aim: "]E0".parse().unwrap() };
        assert_eq!(framing.frame(b"4650001209603"), b"]E04650001209603\r\n");
        let auto = Framing { suffix: Suffix::None, aim: AimPrefix::Auto };
        assert_eq!(auto.frame(b"46500012"), b"]E446500012");
        let marking = codes::marking("04650001209603", "5aB3d", "EE06", "abc/+=<>");
        assert_eq!(&auto.frame(&marking)[..3], b"]d2");
        assert_eq!(auto.frame(b"ABC-1"), b"]C0ABC-1");
        assert!("E0".parse::<AimPrefix>().is_err());
        assert!("tab".parse::<Suffix>().is_err());
    }

    #[test]
    fn codes_have_valid_check_digits() {
        assert_eq!(codes::weighted(1, 1235).unwrap(), "2200001012356");
        assert_eq!(codes::with_check_digit("465000120960").unwrap(), "4650001209603");
        assert!(codes::weighted(1, 0).is_err());
        let marking = codes::marking("04650001209603", "abc", "EE06", "x<y");
        assert_eq!(marking, b"010465000120960321abc\x1d91EE06\x1d92x<y");
    }

    #[test]
    fn code_lists_skip_comments_and_name_bad_lines() {
        let codes = parse_code_list("# milk\n4650001209603\n\n01046\\x1d21x\n").unwrap();
        assert_eq!(codes, vec![b"4650001209603".to_vec(), b"01046\x1d21x".to_vec()]);
        let err = parse_code_list("1\n\\xZZ\n").unwrap_err();
        assert!(err.to_string().starts_with("line 2:"), "{err}");
    }

    fn read_some(port: &mut serialport::TTYPort, want: usize) -> Vec<u8> {
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut buf = [0u8; 256];
        while got.len() < want && Instant::now() < deadline {
            match port.read(&mut buf) {
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {}
                Err(e) => panic!("{e}"),
            }
        }
        got
    }

    #[test]
    fn unplug_and_replug_keep_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("scanner");
        let scanner = VirtualScanner::create(Some(&link)).unwrap();
        let open = || {
            kassa_hardware::serial::SerialSettings::default().open(link.to_str().unwrap(), Duration::from_millis(100))
        };
        let mut port = open().unwrap();
        scanner.scan_split(b"4650001209603", 3, Duration::from_millis(10)).unwrap();
        assert_eq!(read_some(&mut port, 14), b"4650001209603\r");

        assert!(scanner.unplug());
        assert!(!scanner.unplug());
        assert!(!link.exists(), "the node goes away with the device");
        assert!(matches!(scanner.scan(b"1"), Err(ScannerError::Unplugged)));
        // The host's handle is dead: reads fail or end.
        let mut buf = [0u8; 16];
        assert!(matches!(port.read(&mut buf), Ok(0) | Err(_)));

        assert!(scanner.replug().unwrap());
        assert!(!scanner.replug().unwrap());
        let mut port = open().unwrap();
        scanner.scan(b"2200001012356").unwrap();
        assert_eq!(read_some(&mut port, 14), b"2200001012356\r");

        let notes: Vec<String> = scanner.log().since(0).iter().map(|e| e.display("scanner")).collect();
        assert!(notes.iter().any(|n| n.ends_with("scanner: unplugged")), "{notes:?}");
        assert!(notes.iter().any(|n| n.contains("2 B not sent")), "{notes:?}");
    }

    #[test]
    fn lists_are_paced() {
        let scanner = VirtualScanner::create(None).unwrap();
        let codes = vec![b"1".to_vec(); 5];
        let start = Instant::now();
        let sent = scanner.scan_list(&codes, 50, &AtomicBool::new(false)).unwrap();
        assert_eq!(sent, 5);
        assert!(start.elapsed() >= Duration::from_millis(80), "{:?}", start.elapsed());
        assert!(scanner.scan_list(&codes, 0, &AtomicBool::new(false)).is_err());
        assert!(scanner.scan_list(&codes, 10, &AtomicBool::new(true)).unwrap() == 0);
    }
}
