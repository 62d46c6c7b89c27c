//! Customers and their cards.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::StoreId;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CustomerError {
    #[error("a card number is {} to {} digits", CustomerId::LEN_MIN_DIGITS, CustomerId::LEN_MAX_DIGITS)]
    CardNumber,
    #[error("a phone number is {} to {} digits, optionally after a +", Phone::LEN_MIN_DIGITS, Phone::LEN_MAX_DIGITS)]
    Phone,
    #[error("a name is at most {NAME_LEN_MAX_CHARS} printable characters")]
    Name,
    #[error("store {store} has issued all the card numbers it can")]
    NumbersExhausted { store: StoreId },
}

/// A loyalty card number: what the card's barcode carries after the store's configured
/// prefix, or what a cashier types. Kept as digits rather than a number so that a
/// leading zero printed on a card survives.
///
/// Deserialising validates too, so a card number from the wire is as good as one parsed
/// at the till.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CustomerId(String);

impl CustomerId {
    /// Shortest card number: with fewer digits one typo too easily lands on another card.
    pub const LEN_MIN_DIGITS: usize = 6;
    /// Longest card number: GS1 and the usual card printers stay within 20 digits.
    pub const LEN_MAX_DIGITS: usize = 20;

    /// Largest store number and per-store sequence [`CustomerId::issued`] can encode:
    /// fixed widths keep every issued number unique and [`Self::ISSUED_DIGITS`] long.
    pub const ISSUED_STORE_MAX: u32 = 99_999;
    pub const ISSUED_SEQ_MAX: u64 = 999_999_999;
    pub const ISSUED_DIGITS: usize = 14;

    pub fn parse(s: &str) -> Result<CustomerId, CustomerError> {
        let ok =
            (Self::LEN_MIN_DIGITS..=Self::LEN_MAX_DIGITS).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit());
        if ok {
            Ok(CustomerId(s.to_owned()))
        } else {
            Err(CustomerError::CardNumber)
        }
    }

    /// The number of a card issued at the till: the store's number then the store's own
    /// sequence, in fixed widths (5 + 9 digits), so stores issue cards offline without
    /// ever colliding, exactly as sale ids do.
    pub fn issued(store: StoreId, seq: u64) -> Result<CustomerId, CustomerError> {
        if store.0 > Self::ISSUED_STORE_MAX || seq > Self::ISSUED_SEQ_MAX {
            return Err(CustomerError::NumbersExhausted { store });
        }
        Ok(CustomerId(format!("{:05}{:09}", store.0, seq)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for CustomerId {
    type Error = CustomerError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        CustomerId::parse(&s)
    }
}

impl From<CustomerId> for String {
    fn from(c: CustomerId) -> String {
        c.0
    }
}

impl fmt::Display for CustomerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A phone number in international form, kept as its digits without the `+`
/// (`79123456789`), so that however a cashier types it, one customer has one key.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Phone(String);

impl Phone {
    /// Shortest international number in use (country code included).
    pub const LEN_MIN_DIGITS: usize = 8;
    /// E.164's maximum.
    pub const LEN_MAX_DIGITS: usize = 15;

    /// Accepts `+7 (912) 345-67-89`, `8 912 345 67 89` and `9123456789`: spaces, dashes,
    /// dots and parentheses are dropped. Kassa's stores are Russian, so a number written
    /// the domestic way means `+7`: eleven digits starting with the trunk prefix `8`, or
    /// ten digits starting with `9` (a mobile number without its prefix). Anything else
    /// must be written with its country code.
    pub fn parse(s: &str) -> Result<Phone, CustomerError> {
        let s = s.trim();
        let (plus, rest) = match s.strip_prefix('+') {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let mut digits = String::with_capacity(Self::LEN_MAX_DIGITS);
        for c in rest.chars() {
            match c {
                '0'..='9' if digits.len() < Self::LEN_MAX_DIGITS + 1 => digits.push(c),
                '0'..='9' => return Err(CustomerError::Phone),
                ' ' | '-' | '.' | '(' | ')' => {}
                _ => return Err(CustomerError::Phone),
            }
        }
        if !plus {
            if digits.len() == 11 && digits.starts_with('8') {
                digits.replace_range(..1, "7");
            } else if digits.len() == 10 && digits.starts_with('9') {
                digits.insert(0, '7');
            }
        }
        let ok = (Self::LEN_MIN_DIGITS..=Self::LEN_MAX_DIGITS).contains(&digits.len()) && !digits.starts_with('0');
        if ok {
            Ok(Phone(digits))
        } else {
            Err(CustomerError::Phone)
        }
    }

    /// The digits without the `+`: the form to store and look up by.
    pub fn digits(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Phone {
    type Error = CustomerError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        Phone::parse(&s)
    }
}

impl From<Phone> for String {
    fn from(p: Phone) -> String {
        p.0
    }
}

impl fmt::Display for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "+{}", self.0)
    }
}

/// Longest customer name: enough for a full Russian name with patronymic, short enough
/// for a receipt line.
pub const NAME_LEN_MAX_CHARS: usize = 64;

/// A loyalty customer, as issued at a till or by HQ.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Customer {
    pub card: CustomerId,
    pub phone: Phone,
    /// Optional: a customer may decline to give a name.
    pub name: Option<String>,
}

impl Customer {
    /// A customer from what the cashier typed. A blank name is no name.
    pub fn new(card: CustomerId, phone: &str, name: Option<&str>) -> Result<Customer, CustomerError> {
        let phone = Phone::parse(phone)?;
        let name = name.map(str::trim).filter(|n| !n.is_empty()).map(str::to_owned);
        let customer = Customer { card, phone, name };
        customer.validate()?;
        Ok(customer)
    }

    /// Checks what the types alone do not: the name. Card and phone are valid by type.
    pub fn validate(&self) -> Result<(), CustomerError> {
        match &self.name {
            Some(n)
                if n.trim().is_empty() || n.chars().count() > NAME_LEN_MAX_CHARS || n.chars().any(char::is_control) =>
            {
                Err(CustomerError::Name)
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn card_numbers_are_bounded_digits() {
        assert_eq!(CustomerId::parse("001234").unwrap().as_str(), "001234");
        assert!(CustomerId::parse("12345").is_err());
        assert!(CustomerId::parse(&"1".repeat(21)).is_err());
        assert!(CustomerId::parse("12345a").is_err());
        assert!(CustomerId::parse(" 123456").is_err());
        let bytes = postcard::to_allocvec(&"12a456".to_string()).unwrap();
        assert!(postcard::from_bytes::<CustomerId>(&bytes).is_err(), "deserialising validates");
    }

    #[test]
    fn issued_numbers_are_fixed_width_and_unique() {
        let a = CustomerId::issued(StoreId(12), 345).unwrap();
        assert_eq!(a.as_str(), "00012000000345");
        assert_eq!(a.as_str().len(), CustomerId::ISSUED_DIGITS);
        // Concatenated without fixed widths, store 1 # 2000… and store 12 # 000… would collide.
        assert_ne!(CustomerId::issued(StoreId(1), 200_000_000).unwrap(), CustomerId::issued(StoreId(12), 0).unwrap());
        assert!(CustomerId::parse(a.as_str()).is_ok());
        assert!(CustomerId::issued(StoreId(100_000), 1).is_err());
        assert!(CustomerId::issued(StoreId(1), 1_000_000_000).is_err());
    }

    #[test]
    fn phones_normalise_to_international_digits() {
        for typed in ["+7 (912) 345-67-89", "8 912 345 67 89", "9123456789", "79123456789", "+79123456789"] {
            assert_eq!(Phone::parse(typed).unwrap().digits(), "79123456789", "{typed}");
        }
        assert_eq!(Phone::parse("+44 20 7946 0958").unwrap().to_string(), "+442079460958");
        for bad in ["", "+", "12345", "+7 912 abc", "0123456789", &"1".repeat(16), "+7 912 345 67 89 ext 1"] {
            assert!(Phone::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_are_optional_bounded_and_printable() {
        let card = CustomerId::parse("123456").unwrap();
        let c = Customer::new(card.clone(), "89123456789", Some("  Анна  ")).unwrap();
        assert_eq!(c.name.as_deref(), Some("Анна"));
        assert_eq!(Customer::new(card.clone(), "89123456789", Some("   ")).unwrap().name, None);
        assert_eq!(Customer::new(card.clone(), "89123456789", Some("a\u{7}b")), Err(CustomerError::Name));
        assert_eq!(Customer::new(card.clone(), "89123456789", Some(&"я".repeat(65))), Err(CustomerError::Name));
        assert_eq!(Customer::new(card, "12", None), Err(CustomerError::Phone));
    }
}
