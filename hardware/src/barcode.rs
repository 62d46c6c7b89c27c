//! What a scanned frame means.
//!
//! [`parse_with`] turns one frame into a typed [`Scan`] under the store's [`ScanRules`];
//! [`ParsedScan::parse`] adds the frame itself (escaped) for logs and technicians.
//!
//! # Order of decisions
//! 1. Size, garbage and keyboard-layout checks on the whole frame. Bytes that are not
//!    printable ASCII (other than the GS separator) are rejected, never repaired: a
//!    Cyrillic letter means a keyboard-wedge scanner typing in the Russian layout, any
//!    other byte means noise or a baud/parity mismatch.
//! 2. The AIM symbology identifier (`]cm`), when the scanner sends one, is stripped and
//!    used: `]C1`, `]d2`, `]Q3`, `]e0` mean a GS1 element string.
//! 3. Without a GS1 identifier a frame is still read as GS1 when it starts with a GS
//!    (FNC1 sent as a byte), or with `01` + 14 digits **and** either contains a GS or is
//!    longer than 16 characters. A plain GTIN-14 has 14 characters and exactly 16 digits
//!    are not a GTIN length, so neither is misread; a bare `01`+GTIN-14 without anything
//!    after it needs the scanner's AIM identifiers to be recognised.
//! 4. Receipt codes (`KASSA:<store>:<seq>` from our receipts' QR, or a typed receipt
//!    number `SSSS-TT-NNNNNN`) and loyalty cards (by [`ScanRules::loyalty_prefix`]).
//! 5. Digits: GTIN-8/12/13/14 with the check digit verified. In-store codes (the
//!    restricted-circulation prefix 2) are never taken as GTINs: they match the weighted
//!    template or are rejected.
//!
//! GS1 element strings that carry AI (21) together with (91)/(92) or (93) are Russian
//! marking codes ("Честный знак"), kept byte-exact in [`Scan::Marking`]'s `code`.
//!
//! Rejections say why: a [`RejectReason`] with a stable code (the cashier's page turns it
//! into advice in the cashier's language) and an English message a technician can act on.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::LazyLock;

use kassa_protocol::gtin::{check_digit, Gtin, GtinError};
use serde::{Deserialize, Serialize};

/// Longest frame worth parsing: a signed receipt's QR code (up to ~1,200 characters
/// for 30 lines) is the longest real one; marking codes are ~130 bytes. The scanner
/// framer caps frames at the same size.
pub const CODE_BYTES_MAX: usize = 2_048;

/// The GS byte (ASCII group separator): FNC1 inside a GS1 element string.
pub const GS: u8 = 0x1D;

/// A scan, parsed. Serialises as one JSON object with a `kind` tag.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Scan {
    /// A retail GTIN (EAN-13, EAN-8, UPC-A, GTIN-14), check digit verified: 14 digits.
    Gtin { gtin: String },
    /// A GS1 element string (GS1-128, GS1 DataMatrix, QR or DataBar) that is not a
    /// marking code: batch, dates, net weight and so on.
    Gs1 {
        /// AI (01), check digit verified, when present.
        #[serde(skip_serializing_if = "Option::is_none")]
        gtin: Option<String>,
        /// AI → value, values exactly as scanned.
        ai: BTreeMap<String, String>,
        /// Net weight from AI (310n), in grams (rounded half up when n > 3).
        #[serde(skip_serializing_if = "Option::is_none")]
        weight_grams: Option<i64>,
    },
    /// An in-store code of a weighed item (the weighted template): look the PLU up.
    Weighted { plu: u32, weight_grams: i64 },
    /// A Russian marking code ("Честный знак"): (01) GTIN, (21) serial and a crypto
    /// tail in (91)/(92) or (93).
    Marking {
        gtin: String,
        serial: String,
        /// The element string byte-exact as the scanner sent it, without the AIM
        /// identifier or a leading FNC1: GS separators in place, `< > & /` untouched.
        /// This is what goes to the marking system; never trim or escape it.
        code: String,
        ai: BTreeMap<String, String>,
    },
    /// A loyalty card.
    Loyalty { card: String },
    /// A receipt, for a return or a reprint.
    Receipt(ReceiptRef),
    /// An order's pickup code (`Z`, its number and a check digit; see
    /// `kassa_protocol::orders::pickup_code`): the till opens the order.
    Order { order: u64 },
    /// Not a code we accept, and why — shown to the cashier and counted. Serialises as
    /// `reason_code` ([`RejectReason::code`]) and `error` (its English message).
    Rejected(RejectReason),
}

/// Which receipt a receipt code names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum ReceiptRef {
    /// From the QR code on our receipts, `KASSA:<store>:<seq>`: the sale's id.
    Sale { store: u32, seq: u64 },
    /// A receipt number typed or scanned from the printed text, `SSSS-TT-NNNNNN`.
    Number { receipt_no: String },
}

/// A scan with the frame it came from. Serialises flat: `raw`, `aim` (when sent), and
/// the fields of the [`Scan`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ParsedScan {
    /// The whole frame, escaped with [`crate::escape`] (GS shows as `\x1d`).
    pub raw: String,
    /// The AIM symbology identifier (`]E0`, `]d2`…) when the scanner sent one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aim: Option<String>,
    #[serde(flatten)]
    pub scan: Scan,
}

impl ParsedScan {
    pub fn parse(frame: &[u8], rules: &ScanRules) -> ParsedScan {
        let (aim, scan) = classify(frame, rules);
        ParsedScan { raw: crate::escape(frame), aim: aim.map(str::to_owned), scan }
    }
}

/// The store's choices about codes that are not world-wide standards.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScanRules {
    /// Layout of in-store weighed-item codes, e.g. `22PPPPPWWWWWC`.
    pub weighted_template: WeightedTemplate,
    /// Loyalty cards. All digits (default `299`): an EAN-13 starting with it, check
    /// digit verified — any scanner reads EAN-13 off a plastic card, and 2xx is the
    /// in-store range, so it never clashes with a real product. Letters first (e.g.
    /// `LC`): the prefix followed by 4 to 32 letters or digits (CODE128 cards).
    pub loyalty_prefix: String,
    /// Receipt QR codes: `<prefix><store>:<seq>`, as `agent::receipt` prints them.
    pub receipt_prefix: String,
}

impl Default for ScanRules {
    fn default() -> Self {
        ScanRules {
            weighted_template: WeightedTemplate::default(),
            loyalty_prefix: "299".into(),
            receipt_prefix: "KASSA:".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RulesError {
    #[error("loyalty_prefix {0:?}: 1 to 12 digits, or a letter followed by letters and digits (at most 8)")]
    LoyaltyPrefix(String),
    #[error("receipt_prefix {0:?}: 1 to 16 printable ASCII characters, not starting with a digit")]
    ReceiptPrefix(String),
}

impl ScanRules {
    /// Checks the prefixes (the template is checked when it is parsed). Call it where
    /// the configuration is loaded: a bad prefix would silently never match.
    pub fn validate(&self) -> Result<(), RulesError> {
        let l = &self.loyalty_prefix;
        let digits = !l.is_empty() && l.len() <= 12 && l.bytes().all(|b| b.is_ascii_digit());
        let letters = l.len() <= 8
            && l.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
            && l.bytes().all(|b| b.is_ascii_alphanumeric());
        if !digits && !letters {
            return Err(RulesError::LoyaltyPrefix(l.clone()));
        }
        let r = &self.receipt_prefix;
        let printable = r.bytes().all(|b| (0x21..0x7F).contains(&b));
        if r.is_empty() || r.len() > 16 || !printable || r.as_bytes()[0].is_ascii_digit() {
            return Err(RulesError::ReceiptPrefix(r.clone()));
        }
        Ok(())
    }
}

/// The layout of in-store weighed-item codes: literal prefix digits, then `P` (PLU
/// digits) and `W` (weight in grams) in either order, then `C` (the EAN check digit);
/// 8, 12 or 13 characters, spaces ignored. Alternatives are separated by `|`:
/// `22PPPPPWWWWWC|23PPPPPWWWWWC`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct WeightedTemplate {
    text: String,
    layouts: Vec<Layout>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Layout {
    prefix: String,
    plu: std::ops::Range<usize>,
    weight: std::ops::Range<usize>,
    len: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("weighted template {template:?}: {reason}")]
pub struct TemplateError {
    template: String,
    reason: &'static str,
}

/// PLU and weight fields longer than this would not fit a 13-digit code with a prefix.
const TEMPLATE_FIELD_DIGITS_MAX: usize = 6;
/// Alternatives in one template: a store uses one or two scale prefixes.
const TEMPLATE_LAYOUTS_MAX: usize = 8;

impl WeightedTemplate {
    pub const DEFAULT: &'static str = "22PPPPPWWWWWC";

    pub fn parse(text: &str) -> Result<WeightedTemplate, TemplateError> {
        let err = |reason| TemplateError { template: text.to_owned(), reason };
        let layouts = text.split('|').map(|alt| Layout::parse(alt).map_err(err)).collect::<Result<Vec<_>, _>>()?;
        if layouts.len() > TEMPLATE_LAYOUTS_MAX {
            return Err(err("too many alternatives"));
        }
        Ok(WeightedTemplate { text: text.to_owned(), layouts })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// PLU and weight of `digits` (check digit already verified), if a layout matches.
    fn matches(&self, digits: &str) -> Option<(u32, i64)> {
        let l = self.layouts.iter().find(|l| l.len == digits.len() && digits.starts_with(&l.prefix))?;
        let plu = digits[l.plu.clone()].parse().ok()?;
        let weight_grams = digits[l.weight.clone()].parse().ok()?;
        Some((plu, weight_grams))
    }
}

impl Layout {
    fn parse(alt: &str) -> Result<Layout, &'static str> {
        let t: Vec<u8> = alt.bytes().filter(|b| *b != b' ').collect();
        if !matches!(t.len(), 8 | 12 | 13) {
            return Err("a layout has 8, 12 or 13 characters (EAN-8, UPC-A, EAN-13)");
        }
        let prefix_len = t.iter().take_while(|b| b.is_ascii_digit()).count();
        if prefix_len == 0 {
            return Err("a layout starts with its prefix digits");
        }
        if t.last() != Some(&b'C') {
            return Err("a layout ends with C, the check digit");
        }
        let run = |from: usize, c: u8| from + t[from..].iter().take_while(|b| **b == c).count();
        let first = t[prefix_len];
        let second = match first {
            b'P' => b'W',
            b'W' => b'P',
            _ => return Err("after the prefix come the P (PLU) and W (weight) digits"),
        };
        let mid = run(prefix_len, first);
        let end = run(mid, second);
        if end != t.len() - 1 || mid == prefix_len || end == mid {
            return Err("one run of P and one run of W between the prefix and C, nothing else");
        }
        let (plu, weight) = if first == b'P' { (prefix_len..mid, mid..end) } else { (mid..end, prefix_len..mid) };
        if plu.len() > TEMPLATE_FIELD_DIGITS_MAX || weight.len() > TEMPLATE_FIELD_DIGITS_MAX {
            return Err("PLU and weight have at most 6 digits each");
        }
        let prefix = String::from_utf8(t[..prefix_len].to_vec()).expect("ASCII digits");
        Ok(Layout { prefix, plu, weight, len: t.len() })
    }
}

impl Default for WeightedTemplate {
    fn default() -> Self {
        WeightedTemplate::parse(Self::DEFAULT).expect("the default template is valid")
    }
}

impl fmt::Debug for WeightedTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("WeightedTemplate").field(&self.text).finish()
    }
}

impl TryFrom<String> for WeightedTemplate {
    type Error = TemplateError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        WeightedTemplate::parse(&s)
    }
}

impl From<WeightedTemplate> for String {
    fn from(t: WeightedTemplate) -> String {
        t.text
    }
}

impl std::str::FromStr for WeightedTemplate {
    type Err = TemplateError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        WeightedTemplate::parse(s)
    }
}

/// Parses one frame (without terminator) under the default [`ScanRules`].
pub fn parse(frame: &[u8]) -> Scan {
    static DEFAULT_RULES: LazyLock<ScanRules> = LazyLock::new(ScanRules::default);
    parse_with(frame, &DEFAULT_RULES)
}

/// Parses one frame (without terminator) under the store's rules.
pub fn parse_with(frame: &[u8], rules: &ScanRules) -> Scan {
    classify(frame, rules).1
}

/// Why a frame was rejected: a stable [`code`](RejectReason::code) for the cashier's page,
/// which says what to do in the cashier's language, and an English message with the
/// details a technician can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RejectReason {
    #[error("empty scan")]
    Empty,
    #[error("code too long ({0} bytes, at most {CODE_BYTES_MAX}): noise on the line or a wrong terminator")]
    TooLong(usize),
    #[error(
        "typed in the Russian keyboard layout ('{cyrillic}' is the key '{latin}'): the scanner works as a \
         keyboard; switch it to USB serial (CDC) mode or the keyboard to the English layout, then scan again"
    )]
    RussianLayout { cyrillic: char, latin: char },
    #[error(
        "not text (byte 0x{0:02x}): noise, or the scanner's baud rate, parity or data bits differ from the settings"
    )]
    Garbage(u8),
    #[error("character '{0}' is not in any barcode we read: noise, or the scanner's baud rate differs")]
    NonAscii(char),
    #[error(
        "control byte 0x{0:02x} inside the code: the scanner's prefix or suffix differs from the settings, or noise"
    )]
    Control(u8),
    #[error("EAN add-on digits ({0}) on their own: not used; scan the main barcode")]
    AddOn(&'static str),
    #[error("GS1 code: {0}")]
    Gs1(#[from] Gs1Error),
    #[error("wrong check digit (the last digit is {found}, expected {expected}): a misread, scan again")]
    CheckDigit { expected: u8, found: u8 },
    #[error("{0} digits is not a product barcode (GTINs have 8, 12, 13 or 14)")]
    DigitCount(usize),
    #[error("in-store code of an unknown layout (weighted template {0})")]
    InStoreUnknown(String),
    #[error("weighed-item code with zero weight")]
    ZeroWeight,
    #[error("receipt code {0:?} is malformed: expected {1}<store>:<number>")]
    ReceiptCode(String, String),
    #[error("loyalty card code {0:?} is malformed: expected the prefix and 4 to 32 letters or digits")]
    LoyaltyCode(String),
    #[error("order pickup code {0:?} fails its check digit: scan it again or type the order number")]
    OrderCode(String),
    #[error("GS separators in a code that is not GS1 (it should start with AI 01)")]
    StrayGs,
    #[error("not a product, loyalty card or receipt code")]
    Unknown,
}

/// `code` and `ALL_CODES` from one list: the match has no catch-all, so a variant added
/// without a code does not compile, and every code is listed.
macro_rules! reject_codes {
    ($($pat:pat => $code:literal,)+) => {
        impl RejectReason {
            /// Every code [`RejectReason::code`] returns.
            pub const ALL_CODES: &'static [&'static str] = &[$($code),+];

            /// The stable code of this reason, for the page (never changes its meaning).
            pub fn code(&self) -> &'static str {
                match self {
                    $($pat => $code,)+
                }
            }
        }
    };
}

reject_codes! {
    RejectReason::Empty => "scan_empty",
    RejectReason::TooLong(_) => "scan_too_long",
    RejectReason::RussianLayout { .. } => "scan_russian_layout",
    RejectReason::Garbage(_) => "scan_garbage",
    RejectReason::NonAscii(_) => "scan_not_ascii",
    RejectReason::Control(_) => "scan_control_byte",
    RejectReason::AddOn(_) => "scan_add_on",
    // A GS1 element string whose separators a keyboard-mode scanner dropped.
    RejectReason::Gs1(Gs1Error::TooLong { .. }) => "scan_gs1_separators",
    RejectReason::Gs1(Gs1Error::CheckDigit { .. }) => "scan_gs1_check_digit",
    RejectReason::Gs1(
        Gs1Error::Empty
        | Gs1Error::NotAi { .. }
        | Gs1Error::UnknownAi(_)
        | Gs1Error::Duplicate(_)
        | Gs1Error::FixedLength { .. }
        | Gs1Error::EmptyValue { .. }
        | Gs1Error::NotDigits { .. }
        | Gs1Error::Charset { .. }
        | Gs1Error::Date { .. }
        | Gs1Error::Decimals { .. },
    ) => "scan_gs1_malformed",
    RejectReason::CheckDigit { .. } => "scan_check_digit",
    RejectReason::DigitCount(_) => "scan_digit_count",
    RejectReason::InStoreUnknown(_) => "scan_weighed_template",
    RejectReason::ZeroWeight => "scan_zero_weight",
    RejectReason::ReceiptCode(..) => "scan_receipt_code",
    RejectReason::LoyaltyCode(_) => "scan_loyalty_code",
    RejectReason::OrderCode(_) => "scan_order_code",
    RejectReason::StrayGs => "scan_stray_gs",
    RejectReason::Unknown => "scan_unknown_format",
}

/// `{"reason_code": …, "error": …}`: inside a [`Scan`], the rejection's fields beside
/// `kind`.
impl Serialize for RejectReason {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("RejectReason", 2)?;
        s.serialize_field("reason_code", self.code())?;
        s.serialize_field("error", &self.to_string())?;
        s.end()
    }
}

/// A product number that is not a GTIN, as the scan of its digits would be rejected.
impl From<GtinError> for RejectReason {
    fn from(e: GtinError) -> Self {
        match e {
            GtinError::CheckDigit { expected, found } => RejectReason::CheckDigit { expected, found },
            GtinError::Length(n) => RejectReason::DigitCount(n),
            GtinError::NotDigits => RejectReason::Unknown,
        }
    }
}

/// Why a GS1 element string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Gs1Error {
    #[error("empty element string")]
    Empty,
    #[error("expected an AI (digits) at character {at}")]
    NotAi { at: usize },
    #[error("unknown AI starting {0}")]
    UnknownAi(String),
    #[error("AI ({0}) appears twice")]
    Duplicate(String),
    #[error("({ai}) needs {expected} characters, got {got}")]
    FixedLength { ai: String, expected: usize, got: usize },
    #[error("({ai}) is empty")]
    EmptyValue { ai: String },
    #[error(
        "({ai}) is {got} characters, at most {max}: GS separators are missing — a scanner in keyboard (HID) \
         mode drops them; use USB serial (CDC) mode"
    )]
    TooLong { ai: String, max: usize, got: usize },
    #[error("({ai}) must be digits")]
    NotDigits { ai: String },
    #[error("({ai}) has character '{ch}', not allowed in GS1 data")]
    Charset { ai: String, ch: char },
    #[error("({ai}) {value}: wrong check digit {found}, expected {expected}")]
    CheckDigit { ai: String, value: String, expected: u8, found: u8 },
    #[error("({ai}) {value} is not a date YYMMDD")]
    Date { ai: String, value: String },
    #[error("({ai}): the decimal point position (last AI digit) must be 0 to 5")]
    Decimals { ai: String },
}

/// The whole decision, see the module documentation for its order.
fn classify<'f>(frame: &'f [u8], rules: &ScanRules) -> (Option<&'f str>, Scan) {
    let (aim, result) = match split_aim(frame) {
        Ok((aim, body)) => (aim, classify_body(aim, body, rules)),
        Err(e) => (None, Err(e)),
    };
    (aim, result.unwrap_or_else(Scan::Rejected))
}

/// Whole-frame checks, then the AIM identifier.
fn split_aim(frame: &[u8]) -> Result<(Option<&str>, &[u8]), RejectReason> {
    if frame.len() > CODE_BYTES_MAX {
        return Err(RejectReason::TooLong(frame.len()));
    }
    let frame = trim(frame);
    if frame.is_empty() {
        return Err(RejectReason::Empty);
    }
    if let Some(i) = frame.iter().position(|b| !b.is_ascii()) {
        return Err(match std::str::from_utf8(frame) {
            Ok(text) => match text.chars().find_map(|c| latin_key(c).map(|l| (c, l))) {
                Some((cyrillic, latin)) => RejectReason::RussianLayout { cyrillic, latin },
                None => RejectReason::NonAscii(text.chars().find(|c| !c.is_ascii()).expect("a non-ASCII byte")),
            },
            Err(_) => RejectReason::Garbage(frame[i]),
        });
    }
    if let Some(&b) = frame.iter().find(|b| b.is_ascii_control() && **b != GS) {
        return Err(RejectReason::Control(b));
    }
    match frame {
        [b']', c, m, rest @ ..] if c.is_ascii_alphabetic() && m.is_ascii_alphanumeric() => {
            let aim = std::str::from_utf8(&frame[..3]).expect("ASCII");
            Ok((Some(aim), trim(rest)))
        }
        _ => Ok((None, frame)),
    }
}

/// Line-ending and space residue at the ends; none of it can be part of a code (GS1
/// data has no spaces).
fn trim(mut b: &[u8]) -> &[u8] {
    while let [b' ' | b'\r' | b'\n' | b'\t', rest @ ..] = b {
        b = rest;
    }
    while let [rest @ .., b' ' | b'\r' | b'\n' | b'\t'] = b {
        b = rest;
    }
    b
}

fn classify_body(aim: Option<&str>, body: &[u8], rules: &ScanRules) -> Result<Scan, RejectReason> {
    // ASCII checked by `split_aim`.
    let text = std::str::from_utf8(body).expect("ASCII");
    if text.is_empty() {
        return Err(RejectReason::Empty);
    }
    match aim {
        // GS1-128 (FNC1 first, signalled by the identifier), GS1 DataMatrix, GS1 QR,
        // GS1 DataBar: the body is an element string.
        Some("]C1" | "]d2" | "]Q3" | "]e0") => return gs1(text),
        Some("]E1") => return Err(RejectReason::AddOn("2 digits")),
        Some("]E2") => return Err(RejectReason::AddOn("5 digits")),
        _ => {}
    }
    // A scanner that sends FNC1 in first position as a GS byte: GS1 by definition.
    if let Some(rest) = text.strip_prefix('\u{1d}') {
        return gs1(rest);
    }
    if looks_like_gs1(text) {
        return gs1(text);
    }
    if text.contains('\u{1d}') {
        return Err(RejectReason::StrayGs);
    }
    // The card code Kassa prints on receipts (`KASSA:CARD:` and the card's number): a
    // card issued at a till has no check digit of its own to scan as an EAN.
    if let Some(card) = text.strip_prefix(CARD_CODE_PREFIX) {
        let ok = (6..=20).contains(&card.len()) && card.bytes().all(|b| b.is_ascii_digit());
        return if ok {
            Ok(Scan::Loyalty { card: card.to_owned() })
        } else {
            Err(RejectReason::LoyaltyCode(text.into()))
        };
    }
    if let Some(rest) = text.strip_prefix(rules.receipt_prefix.as_str()) {
        return receipt_code(rest)
            .ok_or_else(|| RejectReason::ReceiptCode(text.to_owned(), rules.receipt_prefix.clone()));
    }
    if let Some(receipt_no) = receipt_number(text) {
        return Ok(Scan::Receipt(ReceiptRef::Number { receipt_no }));
    }
    if let Some(digits) = text.strip_prefix('Z') {
        if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            return match kassa_protocol::orders::parse_pickup_code(text) {
                Some(id) => Ok(Scan::Order { order: id.0 }),
                None => Err(RejectReason::OrderCode(text.to_owned())),
            };
        }
    }
    let letter_prefix = rules.loyalty_prefix.bytes().next().is_some_and(|b| b.is_ascii_alphabetic());
    if letter_prefix {
        if let Some(rest) = text.strip_prefix(rules.loyalty_prefix.as_str()) {
            let ok = (4..=32).contains(&rest.len()) && rest.bytes().all(|b| b.is_ascii_alphanumeric());
            return if ok {
                Ok(Scan::Loyalty { card: text.to_owned() })
            } else {
                Err(RejectReason::LoyaltyCode(text.into()))
            };
        }
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return digits(text, rules);
    }
    Err(RejectReason::Unknown)
}

/// What a loyalty card's code on a Kassa receipt starts with; the card's number follows.
pub const CARD_CODE_PREFIX: &str = "KASSA:CARD:";

/// The code printed for loyalty card `number` (a QR the till's scanner reads back).
pub fn card_code(number: &str) -> String {
    format!("{CARD_CODE_PREFIX}{number}")
}

/// `01` + 14 digits, and a GS or more after them (see the module documentation).
fn looks_like_gs1(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() >= 16
        && b.starts_with(b"01")
        && b[2..16].iter().all(u8::is_ascii_digit)
        && (b.len() > 16 || b.contains(&GS))
}

/// `<store>:<seq>` after the receipt prefix, and the signed proof after them when the
/// receipt carries one (`kassa_protocol::receipt_proof`; the till reads it from the raw
/// frame).
fn receipt_code(rest: &str) -> Option<Scan> {
    let (store, seq) = rest.split_once(':')?;
    let seq = match seq.split_once(':') {
        Some((seq, proof)) if !proof.is_empty() && proof.len() <= 2_000 => seq,
        Some(_) => return None,
        None => seq,
    };
    let number = |s: &str| !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit());
    if !number(store) || !number(seq) {
        return None;
    }
    let store: u32 = store.parse().ok().filter(|s| *s != 0)?;
    let seq: u64 = seq.parse().ok()?;
    Some(Scan::Receipt(ReceiptRef::Sale { store, seq }))
}

/// `SSSS-TT-NNNNNN` (`kassa_protocol::sale::receipt_no`; the fields are zero-padded to
/// at least those widths and may grow).
fn receipt_number(text: &str) -> Option<String> {
    let mut parts = text.split('-');
    let widths = [4..=10, 2..=5, 6..=20];
    for w in widths {
        let p = parts.next()?;
        if !w.contains(&p.len()) || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
    }
    parts.next().is_none().then(|| text.to_owned())
}

fn digits(text: &str, rules: &ScanRules) -> Result<Scan, RejectReason> {
    let gtin = Gtin::parse(text).map_err(RejectReason::from)?;
    let prefix = &rules.loyalty_prefix;
    if text.len() == 13 && prefix.bytes().all(|b| b.is_ascii_digit()) && text.starts_with(prefix.as_str()) {
        return Ok(Scan::Loyalty { card: text.to_owned() });
    }
    if is_in_store(gtin.as_gtin14()) {
        let template = &rules.weighted_template;
        // A UPC-A arrives expanded to 13 digits (`0` + 12) from scanners sending `]E0`.
        let upc_a = text.strip_prefix('0').filter(|t| t.len() == 12);
        let (plu, weight_grams) = template
            .matches(text)
            .or_else(|| upc_a.and_then(|t| template.matches(t)))
            .ok_or_else(|| RejectReason::InStoreUnknown(template.as_str().to_owned()))?;
        if weight_grams == 0 {
            return Err(RejectReason::ZeroWeight);
        }
        return Ok(Scan::Weighted { plu, weight_grams });
    }
    Ok(Scan::Gtin { gtin: gtin.as_gtin14().to_owned() })
}

/// Restricted-circulation numbers, whose meaning is the retailer's: EAN-13 20–29
/// (`0` + that as GTIN-14), UPC-A number system 2 (`002…`), and EAN-8 starting 2.
fn is_in_store(gtin14: &str) -> bool {
    gtin14.starts_with("02") || gtin14.starts_with("002") || gtin14.starts_with("0000002")
}

/// How long a GS1 AI's value is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ValueLen {
    Fixed(usize),
    /// Up to this many characters, ended by GS unless last.
    Variable(usize),
}

/// What a GS1 AI is: a practical subset of the GS1 General Specifications table, with
/// the fixed lengths of the predefined-length table (00–04, 11–20, 31–36, 41).
#[derive(Clone, Copy, Debug)]
struct AiSpec {
    ai_digits: usize,
    len: ValueLen,
    numeric: bool,
}

fn ai_spec(ai2: &str, ai4: &str) -> Option<AiSpec> {
    let spec = |ai_digits, len, numeric| Some(AiSpec { ai_digits, len, numeric });
    let fixed = ValueLen::Fixed;
    let var = ValueLen::Variable;
    match ai2 {
        "00" => spec(2, fixed(18), true),
        "01" | "02" | "03" => spec(2, fixed(14), true),
        "04" => spec(2, fixed(16), true),
        "10" | "21" | "22" => spec(2, var(20), false),
        "11" | "12" | "13" | "14" | "15" | "16" | "17" | "18" | "19" => spec(2, fixed(6), true),
        "20" => spec(2, fixed(2), true),
        "23" | "24" | "25" => spec(3, var(30), false),
        "30" | "37" => spec(2, var(8), true),
        "31" | "32" | "33" | "34" | "35" | "36" => spec(4, fixed(6), true),
        "39" => spec(4, var(18), true),
        "40" | "42" => spec(3, var(30), false),
        "41" => spec(3, fixed(13), true),
        "43" | "70" | "72" | "80" | "81" | "82" => match ai4 {
            "8005" => spec(4, var(6), true),
            _ => spec(4, var(90), false),
        },
        "71" => spec(3, var(20), false),
        "90" => spec(2, var(30), false),
        "91" | "92" | "93" | "94" | "95" | "96" | "97" | "98" | "99" => spec(2, var(90), false),
        _ => None,
    }
}

/// GS1 "character set 82": the printable ASCII that GS1 data may hold. No space, and
/// none of `#$@[\]^`{|}~`.
fn is_cset82(b: u8) -> bool {
    matches!(b, b'!' | b'"' | b'%'..=b'?' | b'A'..=b'Z' | b'_' | b'a'..=b'z')
}

/// Parses an element string (FNC1 in first position already removed) into AI → value.
pub fn parse_element_string(text: &str) -> Result<BTreeMap<String, String>, Gs1Error> {
    let b = text.as_bytes();
    let mut map = BTreeMap::new();
    let mut i = 0;
    loop {
        // A GS after a fixed-length element, or doubled, is superfluous but harmless.
        while b.get(i) == Some(&GS) {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let digits_at = |n: usize| b.get(i..i + n).filter(|d| d.iter().all(u8::is_ascii_digit));
        let ai2 = digits_at(2).ok_or(Gs1Error::NotAi { at: i })?;
        let ai2 = std::str::from_utf8(ai2).expect("digits");
        let ai4 = digits_at(4).map(|d| std::str::from_utf8(d).expect("digits")).unwrap_or("");
        let spec = ai_spec(ai2, ai4).ok_or_else(|| Gs1Error::UnknownAi(ai2.to_owned()))?;
        let ai = digits_at(spec.ai_digits).ok_or(Gs1Error::NotAi { at: i })?;
        let ai = std::str::from_utf8(ai).expect("digits").to_owned();
        i += spec.ai_digits;
        let rest = &b[i..];
        let value_end = rest.iter().position(|c| *c == GS).unwrap_or(rest.len());
        let value = match spec.len {
            ValueLen::Fixed(n) => {
                if value_end < n {
                    return Err(Gs1Error::FixedLength { ai, expected: n, got: value_end });
                }
                &rest[..n]
            }
            ValueLen::Variable(max) => {
                if value_end > max {
                    return Err(Gs1Error::TooLong { ai, max, got: value_end });
                }
                &rest[..value_end]
            }
        };
        i += value.len();
        let value = std::str::from_utf8(value).expect("ASCII");
        validate_value(&ai, value, spec)?;
        if map.contains_key(&ai) {
            return Err(Gs1Error::Duplicate(ai));
        }
        map.insert(ai, value.to_owned());
    }
    if map.is_empty() {
        return Err(Gs1Error::Empty);
    }
    Ok(map)
}

fn validate_value(ai: &str, value: &str, spec: AiSpec) -> Result<(), Gs1Error> {
    let v = value.as_bytes();
    if v.is_empty() {
        return Err(Gs1Error::EmptyValue { ai: ai.to_owned() });
    }
    if spec.numeric {
        if !v.iter().all(u8::is_ascii_digit) {
            return Err(Gs1Error::NotDigits { ai: ai.to_owned() });
        }
    } else if let Some(&c) = v.iter().find(|c| !is_cset82(**c)) {
        return Err(Gs1Error::Charset { ai: ai.to_owned(), ch: char::from(c) });
    }
    match &ai[..2] {
        "00" | "01" | "02" | "03" => {
            let (data, check) = v.split_at(v.len() - 1);
            let (expected, found) = (check_digit(data), check[0] - b'0');
            if expected != found {
                return Err(Gs1Error::CheckDigit { ai: ai.into(), value: value.into(), expected, found });
            }
        }
        "11" | "12" | "13" | "15" | "16" | "17" => {
            let two = |k: usize| (v[k] - b'0') * 10 + (v[k + 1] - b'0');
            // Day 00 is allowed: "the last day of the month".
            if !(1..=12).contains(&two(2)) || two(4) > 31 {
                return Err(Gs1Error::Date { ai: ai.into(), value: value.into() });
            }
        }
        "31" | "32" | "33" | "34" | "35" | "36" if ai.as_bytes()[3] > b'5' => {
            return Err(Gs1Error::Decimals { ai: ai.into() });
        }
        _ => {}
    }
    Ok(())
}

/// Net weight in grams from (310n): `n` decimals of kilograms, rounded half up.
fn weight_grams(ai: &BTreeMap<String, String>) -> Option<i64> {
    let (key, value) = ai.iter().find(|(k, _)| k.len() == 4 && k.starts_with("310"))?;
    let decimals = u32::from(key.as_bytes()[3] - b'0');
    let value: i64 = value.parse().ok()?;
    let scale = 10_i64.pow(decimals);
    Some((value * 1000 + scale / 2) / scale)
}

fn gs1(text: &str) -> Result<Scan, RejectReason> {
    let ai = parse_element_string(text)?;
    // (01) is taken as it is, even in the 02… range: the Russian national catalogue
    // issues GTINs `029…` for marked goods of producers outside GS1, and they are real.
    let gtin = ai.get("01").cloned();
    let marking = ai.contains_key("21") && ["91", "92", "93"].iter().any(|k| ai.contains_key(*k));
    if let (true, Some(gtin)) = (marking, gtin.clone()) {
        let serial = ai["21"].clone();
        return Ok(Scan::Marking { gtin, serial, code: text.to_owned(), ai });
    }
    let weight_grams = weight_grams(&ai);
    Ok(Scan::Gs1 { gtin, ai, weight_grams })
}

/// The Latin key under a character of the Russian ЙЦУКЕН layout: what a keyboard-wedge
/// scanner meant when the keyboard was switched to Russian.
fn latin_key(c: char) -> Option<char> {
    const LOWER: [(char, char); 33] = [
        ('й', 'q'),
        ('ц', 'w'),
        ('у', 'e'),
        ('к', 'r'),
        ('е', 't'),
        ('н', 'y'),
        ('г', 'u'),
        ('ш', 'i'),
        ('щ', 'o'),
        ('з', 'p'),
        ('х', '['),
        ('ъ', ']'),
        ('ф', 'a'),
        ('ы', 's'),
        ('в', 'd'),
        ('а', 'f'),
        ('п', 'g'),
        ('р', 'h'),
        ('о', 'j'),
        ('л', 'k'),
        ('д', 'l'),
        ('ж', ';'),
        ('э', '\''),
        ('я', 'z'),
        ('ч', 'x'),
        ('с', 'c'),
        ('м', 'v'),
        ('и', 'b'),
        ('т', 'n'),
        ('ь', 'm'),
        ('б', ','),
        ('ю', '.'),
        ('ё', '`'),
    ];
    if c == '№' {
        return Some('#');
    }
    let lower = c.to_lowercase().next()?;
    let (_, latin) = LOWER.iter().find(|(cyr, _)| *cyr == lower)?;
    if lower == c {
        return Some(*latin);
    }
    // Shifted: letters become capitals, punctuation keys their shifted symbol.
    Some(match latin {
        '[' => '{',
        ']' => '}',
        ';' => ':',
        '\'' => '"',
        ',' => '<',
        '.' => '>',
        '`' => '~',
        l => l.to_ascii_uppercase(),
    })
}

#[cfg(test)]
mod tests;
