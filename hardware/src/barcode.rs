//! What a scanned frame means.

use kassa_protocol::gtin::{check_digit, Gtin};
use serde::Serialize;

/// A scan, parsed. Serialises as one JSON object with a `kind` tag.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Scan {
    /// A retail GTIN (EAN-13, EAN-8, UPC-A, GTIN-14), check digit verified.
    Gtin { gtin: String },
    /// An in-store code of a weighed item: look up the PLU in the catalog.
    Weighted { plu: u32, weight_grams: i64 },
    /// Not a code we accept, and why — shown to the cashier and counted.
    Rejected { error: String },
}

/// Longest frame worth parsing; real codes (even marking codes) are far shorter.
pub const CODE_BYTES_MAX: usize = 512;

/// Parses one frame (without terminator). Strips an AIM symbology identifier (`]cm`).
pub fn parse(frame: &[u8]) -> Scan {
    let reject = |e: &str| Scan::Rejected { error: e.to_owned() };
    if frame.len() > CODE_BYTES_MAX {
        return reject("code too long");
    }
    let body = match frame {
        [b']', _, _, rest @ ..] => rest,
        _ => frame,
    };
    let Ok(text) = std::str::from_utf8(body) else {
        return reject("not text: the scanner may be set to another baud rate");
    };
    let text = text.trim_matches(|c: char| c == ' ' || c == '\r' || c == '\n');
    if text.is_empty() {
        return reject("empty scan");
    }
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return reject("not a product barcode");
    }
    // In-store weighted codes: `22 PPPPP WWWWW C` — never looked up as a real GTIN.
    if text.len() == 13 && text.starts_with("22") {
        let b = text.as_bytes();
        if check_digit(&b[..12]) != b[12] - b'0' {
            return reject("weighted-item code with a wrong check digit");
        }
        let plu = text[2..7].parse().expect("digits");
        let weight_grams = text[7..12].parse().expect("digits");
        if weight_grams == 0 {
            return reject("weighted-item code with zero weight");
        }
        return Scan::Weighted { plu, weight_grams };
    }
    if text.len() == 13 && text.as_bytes()[0] == b'2' {
        return reject("in-store code of an unknown layout");
    }
    match Gtin::parse(text) {
        Ok(g) => Scan::Gtin { gtin: g.as_gtin14().to_owned() },
        Err(e) => Scan::Rejected { error: format!("bad barcode: {e}") },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_retail_and_weighted_codes() {
        assert_eq!(parse(b"4650001209603"), Scan::Gtin { gtin: "04650001209603".into() });
        assert_eq!(parse(b"]E04650001209603"), Scan::Gtin { gtin: "04650001209603".into() });
        assert_eq!(parse(b"2200001012356"), Scan::Weighted { plu: 1, weight_grams: 1235 });
        assert!(matches!(parse(b"2200001012357"), Scan::Rejected { .. }));
        assert!(matches!(parse(b"4650001209604"), Scan::Rejected { error } if error.contains("check digit")));
        assert!(matches!(parse(b"\xff\xfe"), Scan::Rejected { .. }));
        assert!(matches!(parse(b"hello"), Scan::Rejected { .. }));
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = parse(&bytes);
        }
    }
}
