//! A receipt that proves itself: its QR code carries what another store's till needs to
//! take a return of it offline — the sale's lines as paid, its tenders — signed by the
//! selling store's key.
//!
//! # The code
//! `KASSA:<store>:<seq>:<base45 of proof ‖ signature>.` — the sale's id in the clear (so
//! an online till, or an older one, looks it up as before), then the proof in RFC 9285
//! Base45 (QR's alphanumeric alphabet: a QR holds it about a third smaller than Base64
//! would), then a `.` that ends the code (Base45's alphabet has a space, and codes are
//! trimmed; `.` is a Base45 character too, so a code cut just after one reads as
//! complete — its signature then fails: a cut code never verifies). A sale of more than [`PROOF_LINES_MAX`] lines gets the plain
//! `KASSA:<store>:<seq>` code: online it is returned as before; offline elsewhere, not.
//!
//! # The proof
//! One format byte, then the postcard encoding of the proof in that format (frozen: a
//! receipt printed today must verify in years): [`v1::Proof`] ([`PROOF_FORMAT`]) for a
//! sale without a loyalty card; [`v2::Proof`] ([`PROOF_FORMAT_POINTS`]) for one with a
//! card, which adds the sale's points — what each line earned and what points paid — so
//! that another store takes them back offline as the selling store would. A format-1
//! proof says only that a card was used ([`ProofLoyalty::CardUsed`]). The signature is ECDSA P-256 with
//! SHA-256, fixed 64-byte form, over [`SIGNING_CONTEXT`] followed by the proof bytes. The
//! key is the selling store's certificate key, issued by HQ's CA at enrolment; HQ records
//! each store's public key when the store connects and publishes all of them to every
//! store ([`crate::returns::ReturnTerms`]). The context string keeps a receipt signature
//! from ever being mistaken for a TLS handshake signature made with the same key (TLS
//! 1.3 signs its own context and padding).
//!
//! Verification is here, sans-IO: [`verify`] is given the public keys this store holds
//! for the code's store and says what the receipt vouches for, or why not.

use crate::basket::BasketLine;
use crate::catalog::{Unit, VatRate};
use crate::sale::{Sale, Tender, TenderKind};
use crate::{Kopecks, SaleId, Sku, StoreId};

/// The proof's format byte (the first byte of the proof) for a sale without a card.
pub const PROOF_FORMAT: u8 = 1;
/// The format byte of a proof with the sale's points (a sale with a loyalty card).
pub const PROOF_FORMAT_POINTS: u8 = 2;
/// Signed before the proof bytes.
pub const SIGNING_CONTEXT: &[u8] = b"kassa receipt proof\0";
/// An ECDSA P-256 signature in its fixed form (r ‖ s).
pub const SIGNATURE_BYTES: usize = 64;
/// Receipts of more lines carry no proof: their QR would not fit a 58 mm roll at a size a
/// scanner reads reliably (30 lines ≈ 1,100 characters, a version 25 code).
pub const PROOF_LINES_MAX: usize = 30;
/// Longest code read; anything longer is refused before it is decoded.
pub const CODE_CHARS_MAX: usize = 2_000;

/// What a signed receipt vouches for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceiptProof {
    pub sale: SaleId,
    pub terminal: u16,
    /// The receipt's number at its terminal (the `NNNNNN` of `SSSS-TT-NNNNNN`).
    pub receipt_number: u64,
    pub at_ms: i64,
    pub lines: Vec<ProofLine>,
    /// As the sale recorded them (cash as handed over), and the change given.
    pub tenders: Vec<Tender>,
    pub change: Kopecks,
    /// The sale's loyalty card, if it had one.
    pub loyalty: Option<ProofLoyalty>,
}

/// What a proof says of the sale's loyalty card.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProofLoyalty {
    /// A card was used; its points are not in the proof (format 1): offline, another
    /// store cannot take them back.
    CardUsed,
    /// The sale's points as it recorded them (format 2).
    Points(crate::loyalty::SaleLoyalty),
}

/// One line as paid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProofLine {
    pub sku: Sku,
    pub unit: Unit,
    pub vat: VatRate,
    /// Pieces, or grams.
    pub quantity: i64,
    /// What the customer paid for the line, after every discount.
    pub net: Kopecks,
    /// A marked unit ("Честный знак"): its code is not in the proof.
    pub marked: bool,
}

/// Why a code is not a receipt this till can take back offline.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error(
        "the code carries no proof (a receipt printed before signed receipts, or of more than {PROOF_LINES_MAX} lines)"
    )]
    Unsigned,
    #[error("the receipt code is damaged or not a receipt's: {0}")]
    Malformed(String),
    #[error("this till does not know store {0}'s key yet; it learns it from HQ")]
    UnknownStore(StoreId),
    #[error("the receipt's signature does not match: the receipt is forged or altered")]
    Forged,
}

/// The frozen boundary form of a proof, format 1.
pub mod v1 {
    use serde::{Deserialize, Serialize};

    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Proof {
        pub store: u32,
        pub seq: u64,
        pub terminal: u16,
        pub receipt_number: u64,
        pub at_ms: i64,
        pub lines: Vec<Line>,
        /// (kind: 0 cash, 1 card, 2 points; kopecks)
        pub tenders: Vec<(u8, i64)>,
        pub change_kopecks: i64,
        pub loyalty: bool,
    }

    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Line {
        pub sku: String,
        /// 0 piece, 1 kilogram.
        pub unit: u8,
        /// 0 VAT 20 %, 1 10 %, 2 0 %, 3 without VAT.
        pub vat: u8,
        pub quantity: i64,
        pub net_kopecks: i64,
        pub marked: bool,
    }
}

/// The frozen boundary form of a proof, format 2: format 1's with the sale's points in
/// place of "a card was used".
pub mod v2 {
    use serde::{Deserialize, Serialize};

    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Proof {
        pub store: u32,
        pub seq: u64,
        pub terminal: u16,
        pub receipt_number: u64,
        pub at_ms: i64,
        pub lines: Vec<super::v1::Line>,
        /// (kind: 0 cash, 1 card, 2 points; kopecks)
        pub tenders: Vec<(u8, i64)>,
        pub change_kopecks: i64,
        pub points: Points,
    }

    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Points {
        pub card: String,
        pub point_value_kopecks: i64,
        pub redeemed_points: i64,
        /// Per line: (kopecks paid in points, points earned).
        pub lines: Vec<(i64, i64)>,
    }
}

const UNITS: [Unit; 2] = [Unit::Piece, Unit::Kilogram];
const VATS: [VatRate; 4] = [VatRate::Vat20, VatRate::Vat10, VatRate::Vat0, VatRate::None];

fn index_of<T: PartialEq>(all: &[T], x: &T) -> u8 {
    all.iter().position(|a| a == x).unwrap_or(0) as u8
}

fn from_index<T: Copy>(all: &[T], i: u8, what: &str) -> Result<T, ProofError> {
    all.get(usize::from(i)).copied().ok_or_else(|| ProofError::Malformed(format!("unknown {what} {i}")))
}

impl ReceiptProof {
    /// The proof of `sale`; `None` for a sale of more than [`PROOF_LINES_MAX`] lines.
    pub fn of(sale: &Sale) -> Option<ReceiptProof> {
        if sale.lines.len() > PROOF_LINES_MAX {
            return None;
        }
        let (_, terminal, receipt_number) = crate::sale::parse_receipt_no(&sale.receipt_no)?;
        Some(ReceiptProof {
            sale: sale.id,
            terminal,
            receipt_number,
            at_ms: sale.created_at_ms,
            lines: sale
                .lines
                .iter()
                .map(|l| ProofLine {
                    sku: l.sku.clone(),
                    unit: l.unit,
                    vat: l.vat,
                    quantity: l.quantity,
                    net: l.net(),
                    marked: l.marking.is_some(),
                })
                .collect(),
            tenders: sale.tenders.clone(),
            change: sale.change,
            loyalty: sale.loyalty.clone().map(ProofLoyalty::Points),
        })
    }

    /// The bytes signed (after [`SIGNING_CONTEXT`]) and carried in the code: format 2
    /// with the sale's points, format 1 otherwise.
    pub fn to_bytes(&self) -> Vec<u8> {
        let kinds = TenderKind::ALL;
        let lines: Vec<v1::Line> = self
            .lines
            .iter()
            .map(|l| v1::Line {
                sku: l.sku.0.clone(),
                unit: index_of(&UNITS, &l.unit),
                vat: index_of(&VATS, &l.vat),
                quantity: l.quantity,
                net_kopecks: l.net.0,
                marked: l.marked,
            })
            .collect();
        let tenders = self.tenders.iter().map(|t| (index_of(&kinds, &t.kind), t.amount.0)).collect();
        let (store, seq) = (self.sale.store.0, self.sale.seq);
        let (terminal, receipt_number, at_ms, change_kopecks) =
            (self.terminal, self.receipt_number, self.at_ms, self.change.0);
        let (format, body) = match &self.loyalty {
            Some(ProofLoyalty::Points(sl)) => {
                let points = v2::Points {
                    card: sl.customer.as_str().to_owned(),
                    point_value_kopecks: sl.point_value_kopecks,
                    redeemed_points: sl.redeemed_points,
                    lines: sl.lines.iter().map(|l| (l.paid_in_points.0, l.earned_points)).collect(),
                };
                let record =
                    v2::Proof { store, seq, terminal, receipt_number, at_ms, lines, tenders, change_kopecks, points };
                (PROOF_FORMAT_POINTS, postcard::to_stdvec(&record))
            }
            other => {
                let loyalty = other.is_some();
                let record =
                    v1::Proof { store, seq, terminal, receipt_number, at_ms, lines, tenders, change_kopecks, loyalty };
                (PROOF_FORMAT, postcard::to_stdvec(&record))
            }
        };
        let mut out = vec![format];
        out.extend(body.expect("a proof always encodes"));
        out
    }

    /// Reads proof bytes back; refuses an unknown format, trailing bytes or values out
    /// of range.
    pub fn from_bytes(bytes: &[u8]) -> Result<ReceiptProof, ProofError> {
        let malformed = |e: &dyn std::fmt::Display| ProofError::Malformed(e.to_string());
        let (&format, body) = bytes.split_first().ok_or_else(|| malformed(&"empty"))?;
        let (p, loyalty) = match format {
            PROOF_FORMAT => {
                let p: v1::Proof = whole(body)?;
                let loyalty = p.loyalty.then_some(ProofLoyalty::CardUsed);
                (p, loyalty)
            }
            PROOF_FORMAT_POINTS => {
                let p: v2::Proof = whole(body)?;
                let points = sale_points(&p.points, p.lines.len())?;
                let v2::Proof { store, seq, terminal, receipt_number, at_ms, lines, tenders, change_kopecks, .. } = p;
                let p = v1::Proof {
                    store,
                    seq,
                    terminal,
                    receipt_number,
                    at_ms,
                    lines,
                    tenders,
                    change_kopecks,
                    loyalty: true,
                };
                (p, Some(ProofLoyalty::Points(points)))
            }
            _ => return Err(ProofError::Malformed(format!("proof format {format} is not one this till reads"))),
        };
        if p.lines.is_empty() || p.lines.len() > PROOF_LINES_MAX {
            return Err(malformed(&format!("{} lines", p.lines.len())));
        }
        let lines = p
            .lines
            .into_iter()
            .map(|l| {
                let sku = Sku::parse(&l.sku).ok_or_else(|| malformed(&format!("SKU {:?}", l.sku)))?;
                if l.quantity <= 0 || l.net_kopecks < 0 {
                    return Err(malformed(&"a line of no quantity or a negative amount"));
                }
                Ok(ProofLine {
                    sku,
                    unit: from_index(&UNITS, l.unit, "unit")?,
                    vat: from_index(&VATS, l.vat, "VAT rate")?,
                    quantity: l.quantity,
                    net: Kopecks(l.net_kopecks),
                    marked: l.marked,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let tenders = p
            .tenders
            .into_iter()
            .map(|(k, a)| {
                let kind = from_index(&TenderKind::ALL, k, "tender")?;
                if a <= 0 {
                    return Err(malformed(&"a tender of no amount"));
                }
                Ok(Tender { kind, amount: Kopecks(a) })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ReceiptProof {
            sale: SaleId { store: StoreId(p.store), seq: p.seq },
            terminal: p.terminal,
            receipt_number: p.receipt_number,
            at_ms: p.at_ms,
            lines,
            tenders,
            change: Kopecks(p.change_kopecks.max(0)),
            loyalty,
        })
    }

    /// What the customer paid.
    pub fn total(&self) -> Kopecks {
        Kopecks(self.lines.iter().map(|l| l.net.0).sum())
    }

    /// The receipt's printed number.
    pub fn receipt_no(&self) -> String {
        crate::sale::receipt_no(self.sale.store, self.terminal, self.receipt_number)
    }

    /// The sale as a return needs it: each line at what was paid for it, named by
    /// `name` (this store's catalog; the SKU when it does not know the item).
    pub fn to_sale(&self, name: impl Fn(&Sku) -> Option<(String, String)>) -> Sale {
        let lines = self
            .lines
            .iter()
            .map(|l| {
                let (name, category) = name(&l.sku).unwrap_or_else(|| (l.sku.0.clone(), String::new()));
                // The price per unit the customer paid, for the return receipt; the
                // refund itself is worked out from `amount` (= net) and the quantity.
                let price = match l.unit {
                    Unit::Piece => Kopecks(l.net.0 / l.quantity.max(1)),
                    Unit::Kilogram => Kopecks(l.net.0.saturating_mul(1000) / l.quantity.max(1)),
                };
                BasketLine {
                    sku: l.sku.clone(),
                    name,
                    category,
                    unit: l.unit,
                    quantity: l.quantity,
                    list_price: price,
                    price,
                    vat: l.vat,
                    amount: l.net,
                    discount: Kopecks::ZERO,
                    promotions: Vec::new(),
                    marking: None,
                }
            })
            .collect();
        Sale {
            id: self.sale,
            receipt_no: self.receipt_no(),
            terminal: self.terminal,
            cashier: String::new(),
            created_at_ms: self.at_ms,
            lines,
            tenders: self.tenders.clone(),
            total: self.total(),
            change: self.change,
            loyalty: match &self.loyalty {
                Some(ProofLoyalty::Points(sl)) => Some(sl.clone()),
                _ => None,
            },
        }
    }
}

/// A proof's postcard body, with nothing after it.
fn whole<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ProofError> {
    let (p, rest) = postcard::take_from_bytes(body).map_err(|e| ProofError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(ProofError::Malformed("bytes after the proof".into()));
    }
    Ok(p)
}

/// A format-2 proof's points as the sale's: one entry per line, nothing negative.
fn sale_points(p: &v2::Points, lines: usize) -> Result<crate::loyalty::SaleLoyalty, ProofError> {
    let malformed = |what: String| ProofError::Malformed(what);
    let customer = crate::loyalty::CustomerId::parse(&p.card).map_err(|e| malformed(format!("card: {e}")))?;
    if p.lines.len() != lines {
        return Err(malformed(format!("points for {} lines of {lines}", p.lines.len())));
    }
    if p.point_value_kopecks <= 0 || p.redeemed_points < 0 || p.lines.iter().any(|&(k, e)| k < 0 || e < 0) {
        return Err(malformed("points out of range".into()));
    }
    Ok(crate::loyalty::SaleLoyalty {
        customer,
        point_value_kopecks: p.point_value_kopecks,
        redeemed_points: p.redeemed_points,
        lines: p
            .lines
            .iter()
            .map(|&(k, e)| crate::loyalty::LinePoints { paid_in_points: Kopecks(k), earned_points: e })
            .collect(),
    })
}

/// A proof's serde form is its format bytes (frozen), never its fields.
impl serde::Serialize for ReceiptProof {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.to_bytes())
    }
}

impl<'de> serde::Deserialize<'de> for ReceiptProof {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let bytes = <Vec<u8> as serde::Deserialize>::deserialize(d)?;
        ReceiptProof::from_bytes(&bytes).map_err(serde::de::Error::custom)
    }
}

/// The code for a receipt: signed when `signature` is given (of `proof_bytes`, by
/// [`signing_message`]), the plain `KASSA:<store>:<seq>` otherwise.
pub fn code(sale: SaleId, signed: Option<(&[u8], &[u8; SIGNATURE_BYTES])>) -> String {
    match signed {
        None => format!("KASSA:{}:{}", sale.store.0, sale.seq),
        Some((proof, signature)) => {
            let mut body = proof.to_vec();
            body.extend_from_slice(signature);
            format!("KASSA:{}:{}:{}.", sale.store.0, sale.seq, base45::encode(&body))
        }
    }
}

/// A store's receipt signing key: its certificate key (PKCS#8, P-256). Signing draws
/// ECDSA's nonce from the operating system (ring's `SystemRandom`): the one thing in this
/// crate that is not a pure function, and it changes only the signature's bytes.
pub struct ReceiptSigner {
    key: ring::signature::EcdsaKeyPair,
    rng: ring::rand::SystemRandom,
}

impl std::fmt::Debug for ReceiptSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReceiptSigner").field("public_key", &self.public_key()).finish()
    }
}

impl ReceiptSigner {
    /// The signer of a PKCS#8 P-256 key (what enrolment writes as `store.key`).
    pub fn from_pkcs8(der: &[u8]) -> Result<ReceiptSigner, String> {
        let rng = ring::rand::SystemRandom::new();
        let key =
            ring::signature::EcdsaKeyPair::from_pkcs8(&ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING, der, &rng)
                .map_err(|e| format!("not a P-256 key: {e}"))?;
        Ok(ReceiptSigner { key, rng })
    }

    /// A new key (tests and simulations).
    pub fn generate() -> ReceiptSigner {
        let rng = ring::rand::SystemRandom::new();
        let der =
            ring::signature::EcdsaKeyPair::generate_pkcs8(&ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                .expect("the system RNG works");
        ReceiptSigner::from_pkcs8(der.as_ref()).expect("a key just made")
    }

    /// The public key others verify with (an uncompressed P-256 point, 65 bytes).
    pub fn public_key(&self) -> Vec<u8> {
        use ring::signature::KeyPair;
        self.key.public_key().as_ref().to_vec()
    }

    /// The code `sale`'s receipt carries: signed, or plain for a sale too long to carry.
    pub fn code(&self, sale: &Sale) -> String {
        let Some(proof) = ReceiptProof::of(sale) else { return code(sale.id, None) };
        let bytes = proof.to_bytes();
        match self.key.sign(&self.rng, &signing_message(&bytes)) {
            Ok(sig) => match <[u8; SIGNATURE_BYTES]>::try_from(sig.as_ref()) {
                Ok(sig) => code(sale.id, Some((&bytes, &sig))),
                Err(_) => code(sale.id, None),
            },
            Err(_) => code(sale.id, None),
        }
    }
}

/// What the store signs for `proof_bytes`.
pub fn signing_message(proof_bytes: &[u8]) -> Vec<u8> {
    [SIGNING_CONTEXT, proof_bytes].concat()
}

/// A receipt code split: the sale's id in the clear, and the proof with its signature
/// when the code carries one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceiptCode {
    pub sale: SaleId,
    pub signed: Option<(Vec<u8>, [u8; SIGNATURE_BYTES])>,
}

/// Reads a receipt's code; `None` when it is not one (`KASSA:` and a sale id).
pub fn parse_code(code: &str) -> Option<Result<ReceiptCode, ProofError>> {
    let rest = code.trim().strip_prefix("KASSA:")?;
    let mut parts = rest.splitn(3, ':');
    let store: u32 = parts.next()?.parse().ok()?;
    let seq: u64 = parts.next()?.parse().ok()?;
    let sale = SaleId { store: StoreId(store), seq };
    let Some(body) = parts.next() else { return Some(Ok(ReceiptCode { sale, signed: None })) };
    Some(parse_signed(sale, body))
}

fn parse_signed(sale: SaleId, body: &str) -> Result<ReceiptCode, ProofError> {
    if body.len() > CODE_CHARS_MAX {
        return Err(ProofError::Malformed(format!("longer than {CODE_CHARS_MAX} characters")));
    }
    let body = body.strip_suffix('.').ok_or_else(|| ProofError::Malformed("the code is cut short".into()))?;
    let bytes = base45::decode(body).map_err(ProofError::Malformed)?;
    if bytes.len() <= SIGNATURE_BYTES {
        return Err(ProofError::Malformed("too short for a signature".into()));
    }
    let (proof, signature) = bytes.split_at(bytes.len() - SIGNATURE_BYTES);
    let signature: [u8; SIGNATURE_BYTES] = signature.try_into().expect("split at its length");
    Ok(ReceiptCode { sale, signed: Some((proof.to_vec(), signature)) })
}

/// Checks a receipt's code against the public keys (uncompressed P-256 points) this
/// till holds for its store — a store re-enrolled has had more than one — and says what
/// it vouches for.
pub fn verify<K: AsRef<[u8]>>(code: &ReceiptCode, keys: &[K]) -> Result<ReceiptProof, ProofError> {
    let Some((proof_bytes, signature)) = &code.signed else { return Err(ProofError::Unsigned) };
    if keys.is_empty() {
        return Err(ProofError::UnknownStore(code.sale.store));
    }
    let message = signing_message(proof_bytes);
    let genuine = keys.iter().any(|k| {
        ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, k.as_ref())
            .verify(&message, signature)
            .is_ok()
    });
    if !genuine {
        return Err(ProofError::Forged);
    }
    let proof = ReceiptProof::from_bytes(proof_bytes)?;
    // The id in the clear must be the one signed: a genuine proof under another
    // receipt's number is an altered code.
    if proof.sale != code.sale {
        return Err(ProofError::Forged);
    }
    Ok(proof)
}

/// RFC 9285 Base45: two bytes in three characters of QR's alphanumeric alphabet.
pub mod base45 {
    const ALPHABET: &[u8; 45] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:";

    pub fn encode(bytes: &[u8]) -> String {
        let mut out = String::with_capacity(bytes.len().div_ceil(2) * 3);
        for pair in bytes.chunks(2) {
            let (mut n, digits) = match pair {
                [a, b] => (usize::from(*a) * 256 + usize::from(*b), 3),
                [a] => (usize::from(*a), 2),
                _ => unreachable!("chunks of two"),
            };
            for _ in 0..digits {
                out.push(char::from(ALPHABET[n % 45]));
                n /= 45;
            }
        }
        out
    }

    pub fn decode(text: &str) -> Result<Vec<u8>, String> {
        let digits: Vec<usize> = text
            .bytes()
            .map(|c| ALPHABET.iter().position(|&a| a == c).ok_or_else(|| format!("{:?} is not Base45", char::from(c))))
            .collect::<Result<_, _>>()?;
        let mut out = Vec::with_capacity(digits.len() / 3 * 2 + 1);
        for group in digits.chunks(3) {
            match group {
                [c, d, e] => {
                    let n = c + d * 45 + e * 45 * 45;
                    if n > 0xFFFF {
                        return Err("a Base45 group out of range".into());
                    }
                    out.extend_from_slice(&[(n >> 8) as u8, (n & 0xFF) as u8]);
                }
                [c, d] => {
                    let n = c + d * 45;
                    if n > 0xFF {
                        return Err("a Base45 group out of range".into());
                    }
                    out.push(n as u8);
                }
                _ => return Err("Base45 text of a length no encoding gives".into()),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
