//! GTIN-8/12/13/14: the numbers under retail barcodes.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A validated GTIN, stored as its 14-digit form (left-padded with zeros), which is
/// how GS1 AI (01) carries it and how every length compares equal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Gtin([u8; 14]);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GtinError {
    #[error("a GTIN has 8, 12, 13 or 14 digits, this has {0}")]
    Length(usize),
    #[error("a GTIN has only digits")]
    NotDigits,
    #[error("check digit is {found}, expected {expected}")]
    CheckDigit { expected: u8, found: u8 },
}

/// The GS1 check digit of `data` (all digits but the check digit): weights 3,1,3,…
/// from the rightmost data digit; check = (10 − sum mod 10) mod 10.
pub fn check_digit(data: &[u8]) -> u8 {
    let sum: u32 =
        data.iter().rev().enumerate().map(|(i, d)| u32::from(d - b'0') * if i % 2 == 0 { 3 } else { 1 }).sum();
    ((10 - sum % 10) % 10) as u8
}

impl Gtin {
    pub fn parse(s: &str) -> Result<Gtin, GtinError> {
        let b = s.as_bytes();
        if !matches!(b.len(), 8 | 12 | 13 | 14) {
            return Err(GtinError::Length(b.len()));
        }
        if !b.iter().all(u8::is_ascii_digit) {
            return Err(GtinError::NotDigits);
        }
        let (data, check) = b.split_at(b.len() - 1);
        let expected = check_digit(data);
        let found = check[0] - b'0';
        if expected != found {
            return Err(GtinError::CheckDigit { expected, found });
        }
        let mut digits = [b'0'; 14];
        digits[14 - b.len()..].copy_from_slice(b);
        Ok(Gtin(digits))
    }

    /// All 14 digits.
    pub fn as_gtin14(&self) -> &str {
        std::str::from_utf8(&self.0).expect("digits are ASCII")
    }

    /// The shortest usual form: 13 digits (EAN-13) when the leading digit is 0, as the
    /// catalog and receipts show it; 8 digits for GTIN-8.
    pub fn short(&self) -> &str {
        let s = self.as_gtin14();
        if let Some(gtin8) = s.strip_prefix("000000") {
            gtin8
        } else if let Some(rest) = s.strip_prefix('0') {
            rest
        } else {
            s
        }
    }
}

impl fmt::Display for Gtin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.short())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_check_digits() {
        let g = Gtin::parse("4650001209603").unwrap();
        assert_eq!(g.as_gtin14(), "04650001209603");
        assert_eq!(g.short(), "4650001209603");
        assert_eq!(Gtin::parse("04650001209603").unwrap(), g);
        assert_eq!(Gtin::parse("4650001209604"), Err(GtinError::CheckDigit { expected: 3, found: 4 }));
        assert_eq!(Gtin::parse("96385074").unwrap().short(), "96385074");
        assert_eq!(Gtin::parse("036000291452").unwrap().as_gtin14(), "00036000291452");
        assert_eq!(Gtin::parse("12345"), Err(GtinError::Length(5)));
        assert_eq!(Gtin::parse("465000120960a"), Err(GtinError::NotDigits));
    }
}
