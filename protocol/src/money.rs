//! Money in kopecks.

use std::fmt;

use serde::{Deserialize, Serialize};

/// An amount of money in kopecks (1/100 of a rouble).
///
/// Arithmetic is checked: an overflow is a programmer error or hostile input, and is
/// reported as `None` rather than wrapping silently.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Kopecks(pub i64);

impl Kopecks {
    pub const ZERO: Kopecks = Kopecks(0);

    pub fn checked_add(self, other: Kopecks) -> Option<Kopecks> {
        self.0.checked_add(other.0).map(Kopecks)
    }

    pub fn checked_sub(self, other: Kopecks) -> Option<Kopecks> {
        self.0.checked_sub(other.0).map(Kopecks)
    }

    pub fn is_negative(self) -> bool {
        self.0 < 0
    }
}

impl fmt::Display for Kopecks {
    /// Roubles with two decimals and a comma, as printed on Russian receipts: `1234,50`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        write!(f, "{sign}{},{:02}", abs / 100, abs % 100)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_roubles_and_kopecks() {
        assert_eq!(Kopecks(10690).to_string(), "106,90");
        assert_eq!(Kopecks(5).to_string(), "0,05");
        assert_eq!(Kopecks(-150).to_string(), "-1,50");
        assert_eq!(Kopecks(i64::MIN).to_string(), "-92233720368547758,08");
    }

    #[test]
    fn arithmetic_is_checked() {
        assert_eq!(Kopecks(i64::MAX).checked_add(Kopecks(1)), None);
        assert_eq!(Kopecks(3).checked_sub(Kopecks(5)), Some(Kopecks(-2)));
    }
}
