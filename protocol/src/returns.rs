//! Returns: what may be given back, and how much is refunded.
//!
//! A return with a receipt names lines of the original sale. A line can never be
//! returned beyond what was sold minus what was already returned, and the refunds of a
//! line over all its partial returns add up exactly to what was paid for it: the
//! refund for returning `q` more after `r` already returned of `s` sold is
//! `R(r + q) − R(r)` with `R(k) = round(net × k / s)`.

use serde::{Deserialize, Serialize};

use crate::basket::BasketLine;
use crate::catalog::{Unit, VatRate};
use crate::ids::{SaleId, Sku};
use crate::money::Kopecks;
use crate::sale::{Sale, Tender, TenderKind};

/// A return: an immutable record, replicated to HQ like a sale.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Return {
    /// Returns share the sale sequence space: `(store, seq)` is unique across both.
    pub id: SaleId,
    /// `SSSS-TT-NNNNNN`, numbered with the terminal's sales (one gap-free series).
    pub receipt_no: String,
    pub terminal: u16,
    pub cashier: String,
    pub created_at_ms: i64,
    pub kind: ReturnKind,
    pub lines: Vec<ReturnLine>,
    /// Given back, per tender: money, and points (as a `Points` tender at the sale's
    /// point value) for what points paid.
    pub refunds: Vec<Tender>,
    pub total: Kopecks,
    /// What the return did to the customer's points: points taken back (what the
    /// returned lines earned) and given back, and money kept back for points the
    /// customer had already spent.
    pub loyalty: Option<crate::loyalty::ReturnLoyalty>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReturnKind {
    /// Lines of a sale, identified by its receipt.
    WithReceipt { sale: SaleId },
    /// No receipt: approved by a manager and flagged for review.
    WithoutReceipt { approved_by: String },
    /// A whole committed sale reversed by a manager (nothing is ever deleted).
    Cancellation { sale: SaleId, approved_by: String },
}

impl ReturnKind {
    pub fn sale(&self) -> Option<SaleId> {
        match self {
            ReturnKind::WithReceipt { sale } | ReturnKind::Cancellation { sale, .. } => Some(*sale),
            ReturnKind::WithoutReceipt { .. } => None,
        }
    }

    /// Returns a manager must look at afterwards.
    pub fn is_flagged(&self) -> bool {
        matches!(self, ReturnKind::WithoutReceipt { .. })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReturnLine {
    /// The line of the original sale, when there is one.
    pub sale_line: Option<u32>,
    pub sku: Sku,
    pub name: String,
    pub unit: Unit,
    pub quantity: i64,
    pub vat: VatRate,
    pub amount: Kopecks,
}

/// How much of each line of a sale was already returned (quantity, refunded amount).
pub type Returned = Vec<(i64, Kopecks)>;

/// Returns per sale a store holds, at most, in one answer of HQ's.
pub const RETURNS_PER_SALE_MAX: usize = 1_000;

/// A till asks HQ for a sale of any store, to take a return of it (return anywhere):
/// over sync, answered by [`SaleAnswer`] with the same `request_id`. With a `claim`,
/// the till is about to refund those lines: HQ holds them for it (see [`ReturnClaim`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SaleLookup {
    pub request_id: u64,
    pub sale: SaleRef,
    pub claim: Option<ReturnClaim>,
}

/// Return rights, as the loyalty escrow's: before a till refunds lines of a sale
/// online, HQ holds them for its store in one transaction, if what every store's
/// applied returns took back, plus what every store's live claims hold, plus these,
/// stays within what was sold. HQ's answer counts every live claim but this one as
/// returned, so two stores returning the same goods within the sync delay cannot both
/// refund them, and the till, planning with those figures (plus its own returns made
/// without a claim, offline, that HQ has not yet acknowledged), refunds exactly when HQ
/// held the lines. A claim ends when the store's return of it reaches HQ (its
/// quantities are released), or after [`RETURN_CLAIM_TTL_MS`] (a till that never
/// refunded). The same `key` (the return's idempotency key) claims once: a retry
/// replaces its claim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReturnClaim {
    pub key: String,
    /// (sale line, quantity)
    pub lines: Vec<(u32, i64)>,
}

/// How long HQ holds a claim whose return has not arrived: a day, so that a store cut
/// off right after a return does not lose its hold while its record waits; a till that
/// crashed between claim and refund holds those goods from others that long.
pub const RETURN_CLAIM_TTL_MS: i64 = 24 * 60 * 60 * 1000;
/// Longest claim key (a till's idempotency key).
pub const CLAIM_KEY_LEN_MAX: usize = 128;

impl ReturnClaim {
    /// Whether the claim fits `sale` given, per line, what is already taken back or
    /// held (`taken`, applied returns and live claims of every store).
    pub fn fits(&self, sale: &Sale, taken: &[i64]) -> bool {
        !self.lines.is_empty()
            && self.lines.iter().all(|&(line, q)| {
                let sold = sale.lines.get(line as usize).map_or(0, |l| l.quantity);
                q > 0 && taken.get(line as usize).copied().unwrap_or(0).saturating_add(q) <= sold
            })
    }

    /// Checks a claim from outside: a key of sane length, lines named once.
    pub fn validate(&self) -> Result<(), String> {
        if self.key.is_empty() || self.key.len() > CLAIM_KEY_LEN_MAX {
            return Err(format!("a claim key is 1 to {CLAIM_KEY_LEN_MAX} bytes"));
        }
        let mut seen = std::collections::HashSet::new();
        if self.lines.is_empty()
            || self.lines.len() > 1_000
            || !self.lines.iter().all(|(l, q)| *q > 0 && seen.insert(*l))
        {
            return Err("a claim names each line once, with a positive quantity".into());
        }
        Ok(())
    }
}

/// How a receipt names its sale: by id (the receipt's QR code) or by its printed number;
/// or an order for pickup by its number, for the sale its handover made (an order paid
/// at pickup: the online shop's and the endless aisle's).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SaleRef {
    Id(SaleId),
    /// `SSSS-TT-NNNNNN`.
    ReceiptNo(String),
    Order(crate::orders::OrderId),
}

impl SaleRef {
    /// The store that made the sale (`None`: only HQ knows, for an order).
    pub fn store(&self) -> Option<crate::StoreId> {
        match self {
            SaleRef::Id(id) => Some(id.store),
            SaleRef::ReceiptNo(no) => crate::sale::parse_receipt_no(no).map(|(store, _, _)| store),
            SaleRef::Order(_) => None,
        }
    }
}

/// HQ's answer to a [`SaleLookup`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SaleAnswer {
    /// The sale as its store recorded it, what every store's returns HQ has applied took
    /// back of each line, and what those returns refunded (by tender), for the refund to
    /// follow the original tenders. A sale with a loyalty card: `loyalty_owed` is what
    /// its latest return left owed for points it could not take back
    /// (`loyalty::ReturnLoyalty::owed`), for the next return, at any store, to deduct.
    Found { sale: Box<Sale>, returned: Returned, refunds: Vec<Tender>, loyalty_owed: Kopecks },
    /// HQ holds no such sale (not yet synced from its store, or never made).
    NotFound,
}

/// What is left to return of each line of `sale` after `returned`.
pub fn left_to_return(sale: &Sale, returned: &Returned) -> Vec<i64> {
    sale.lines.iter().enumerate().map(|(i, l)| l.quantity - returned.get(i).map_or(0, |r| r.0)).collect()
}

/// Adds `ret`'s lines and refunds to what was already returned of `sale`: the one
/// accumulation the journal (its own returns) and HQ (every store's) both use.
pub fn add_returned(sale: &Sale, returned: &mut Returned, refunds: &mut Vec<Tender>, ret: &Return) {
    returned.resize(sale.lines.len().max(returned.len()), (0, Kopecks::ZERO));
    for l in &ret.lines {
        if let Some(slot) = l.sale_line.and_then(|i| returned.get_mut(i as usize)) {
            *slot = (slot.0 + l.quantity, Kopecks(slot.1 .0 + l.amount.0));
        }
    }
    refunds.extend(ret.refunds.iter().cloned());
}

/// Lines returned beyond what was sold (line, sold, returned): what HQ lists for a
/// manager when stores that could not see each other's returns took back the same goods.
pub fn over_returned(sale: &Sale, returned: &Returned) -> Vec<(u32, i64, i64)> {
    sale.lines
        .iter()
        .zip(returned)
        .enumerate()
        .filter(|(_, (l, r))| r.0 > l.quantity)
        .map(|(i, (l, r))| (i as u32, l.quantity, r.0))
        .collect()
}

/// What a till may refund offline for receipts of other stores (it cannot see their
/// returns then): HQ publishes it; a store keeps the newest version. Offline, a return
/// of another store's signed receipt refunds at most `per_receipt` over all of this
/// store's returns of that receipt, and at most `per_shift` over the shift's such
/// returns; HQ lists whatever this lets through beyond what was sold
/// ([`over_returned`]). Before HQ has said anything, nothing is allowed ([`Self::NONE`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReturnLimits {
    pub per_receipt: Kopecks,
    pub per_shift: Kopecks,
}

impl ReturnLimits {
    /// No offline returns of other stores' receipts.
    pub const NONE: ReturnLimits = ReturnLimits { per_receipt: Kopecks::ZERO, per_shift: Kopecks::ZERO };
    /// HQ's limits until an operator sets others: 3,000 ₽ a receipt, 10,000 ₽ a shift.
    pub const DEFAULT: ReturnLimits = ReturnLimits { per_receipt: Kopecks(300_000), per_shift: Kopecks(1_000_000) };
    /// The most an operator may set (either limit): 1,000,000 ₽.
    pub const MAX: Kopecks = Kopecks(100_000_000);

    /// Checks limits an operator asks for.
    pub fn validate(&self) -> Result<(), String> {
        for (what, k) in [("per receipt", self.per_receipt), ("per shift", self.per_shift)] {
            if k.0 < 0 || k > Self::MAX {
                return Err(format!("the limit {what} must be between 0 and {}", Self::MAX));
            }
        }
        Ok(())
    }

    /// What is left to refund offline for another store's receipt, and in the shift,
    /// after `receipt_so_far` refunded offline here for it and `shift_so_far` in the
    /// shift.
    pub fn left(&self, receipt_so_far: Kopecks, shift_so_far: Kopecks) -> (Kopecks, Kopecks) {
        let left = |limit: Kopecks, used: Kopecks| Kopecks((limit.0 - used.0).max(0));
        (left(self.per_receipt, receipt_so_far), left(self.per_shift, shift_so_far))
    }

    /// Whether a refund of `amount` may be given offline for another store's receipt,
    /// after `receipt_so_far` refunded offline here for it and `shift_so_far` in the
    /// shift.
    pub fn allow(&self, receipt_so_far: Kopecks, shift_so_far: Kopecks, amount: Kopecks) -> Result<(), OfflineLimit> {
        let (receipt_left, shift_left) = self.left(receipt_so_far, shift_so_far);
        if amount > receipt_left {
            return Err(OfflineLimit::Receipt { left: receipt_left, limit: self.per_receipt });
        }
        if amount > shift_left {
            return Err(OfflineLimit::Shift { left: shift_left, limit: self.per_shift });
        }
        Ok(())
    }
}

/// A refund offline beyond HQ's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OfflineLimit {
    #[error("offline, at most {limit} is refunded for another store's receipt; {left} is left for this one")]
    Receipt { left: Kopecks, limit: Kopecks },
    #[error("offline, at most {limit} a shift is refunded for other stores' receipts; {left} is left")]
    Shift { left: Kopecks, limit: Kopecks },
}

/// A store's receipt-signing public key (its certificate key, an uncompressed P-256
/// point), numbered by HQ in the order it first saw it (`seq`, from 1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreKey {
    pub seq: u64,
    pub store: crate::StoreId,
    pub public_key: Vec<u8>,
}

/// Longest public key kept (an uncompressed P-256 point is 65 bytes).
pub const STORE_KEY_BYTES_MAX: usize = 133;
/// Store keys in one [`ReturnTerms`] message (~15 KB); a store further behind gets the
/// next ones after its next digest or nearby-stock view (HQ sends one every 15 s by
/// default): a new store of a 10,000-store chain knows every key within 13 minutes,
/// and a chain's stores all starting at once cost HQ one such message per store per
/// interval, not the square of the chain at once.
pub const STORE_KEYS_PER_MESSAGE_MAX: usize = 200;

/// What HQ publishes for returns of other stores' receipts (protocol 5 on): its limits
/// (a register, versioned) and the stores' keys after the highest the store said it
/// holds (a grow-only set, numbered), up to `keys_upto`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReturnTerms {
    pub limits_version: u64,
    pub limits: ReturnLimits,
    pub keys: Vec<StoreKey>,
    /// The keys are every key HQ numbered in `keys_after + 1 ..= keys_upto`.
    pub keys_after: u64,
    pub keys_upto: u64,
}

impl ReturnTerms {
    /// The highest key number a store holds every key up to, after keeping these keys
    /// when it held every key up to `held`: a message that starts beyond what the store
    /// holds (one before it was lost) adds its keys but leaves a hole, so the store goes
    /// on saying `held` and HQ sends from there again.
    pub fn keys_held_after(&self, held: u64) -> u64 {
        if self.keys_after <= held {
            held.max(self.keys_upto)
        } else {
            held
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReturnError {
    #[error("the sale has no line {0}")]
    NoSuchLine(u32),
    #[error("line {line}: only {left} left to return")]
    OverReturn { line: u32, left: i64 },
    #[error("a returned quantity must be positive")]
    Quantity,
    #[error("nothing to return")]
    Empty,
    #[error("a line appears twice in one return")]
    Duplicate,
}

/// Works out the lines of a return of `request` (sale line, quantity) from `sale`,
/// given what was already returned of it.
pub fn plan(sale: &Sale, returned: &Returned, request: &[(u32, i64)]) -> Result<Vec<ReturnLine>, ReturnError> {
    if request.is_empty() {
        return Err(ReturnError::Empty);
    }
    let mut seen = std::collections::HashSet::new();
    request
        .iter()
        .map(|&(line, quantity)| {
            if !seen.insert(line) {
                return Err(ReturnError::Duplicate);
            }
            let sold: &BasketLine = sale.lines.get(line as usize).ok_or(ReturnError::NoSuchLine(line))?;
            if quantity <= 0 {
                return Err(ReturnError::Quantity);
            }
            let (already, _) = returned.get(line as usize).copied().unwrap_or((0, Kopecks::ZERO));
            let left = sold.quantity - already;
            if quantity > left {
                return Err(ReturnError::OverReturn { line, left });
            }
            let refund = |k: i64| {
                let n = i128::from(sold.net().0) * i128::from(k);
                let s = i128::from(sold.quantity);
                ((n + s / 2) / s) as i64
            };
            Ok(ReturnLine {
                sale_line: Some(line),
                sku: sold.sku.clone(),
                name: sold.name.clone(),
                unit: sold.unit,
                quantity,
                vat: sold.vat,
                amount: Kopecks(refund(already + quantity) - refund(already)),
            })
        })
        .collect()
}

/// Refunds go back the way the money came: to a card up to what the card paid (less
/// earlier card refunds), the rest in cash.
pub fn refund_tenders(sale: &Sale, earlier_refunds: &[Tender], total: Kopecks) -> Vec<Tender> {
    let sum = |ts: &[Tender], kind| ts.iter().filter(|t| t.kind == kind).map(|t| t.amount.0).sum::<i64>();
    let card_left = (sum(&sale.tenders, TenderKind::Card) - sum(earlier_refunds, TenderKind::Card)).max(0);
    let card = card_left.min(total.0);
    let mut out = Vec::new();
    if card > 0 {
        out.push(Tender { kind: TenderKind::Card, amount: Kopecks(card) });
    }
    if total.0 > card {
        out.push(Tender { kind: TenderKind::Cash, amount: Kopecks(total.0 - card) });
    }
    out
}

impl Return {
    /// Checks the record's own arithmetic.
    pub fn validate(&self) -> Result<(), String> {
        if self.lines.is_empty() || self.lines.iter().any(|l| l.quantity <= 0 || l.amount.0 < 0) {
            return Err("a return needs lines with positive quantities".into());
        }
        let lines: i64 = self.lines.iter().map(|l| l.amount.0).sum();
        let refunds: i64 = self.refunds.iter().map(|t| t.amount.0).sum();
        // Money kept back for points already spent is part of the total, not refunded.
        let kept = self.loyalty.as_ref().map_or(0, |l| l.deducted.0);
        if lines != self.total.0 || refunds + kept != self.total.0 {
            return Err(format!("lines {lines}, refunds {refunds} (+{kept} kept) and total {} differ", self.total));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::basket::Basket;
    use crate::catalog::CatalogItem;
    use crate::StoreId;
    use proptest::prelude::*;

    fn sale(lines: &[(i64, i64, Unit)], discount: Option<u8>) -> Sale {
        let mut b = Basket::default();
        for (i, (price, q, unit)) in lines.iter().enumerate() {
            let item = CatalogItem {
                sku: Sku(format!("{i}")),
                gtin: None,
                name: format!("item {i}"),
                category: "c".into(),
                price: Kopecks(*price),
                vat: VatRate::Vat20,
                unit: *unit,
                plu: None,
            };
            b.add(&item, *q).unwrap();
        }
        if let Some(p) = discount {
            b.set_discount(Some(crate::basket::BasketDiscount::Percent(p))).unwrap();
        }
        let total = b.totals().unwrap().total;
        Sale {
            id: SaleId { store: StoreId(1), seq: 1 },
            receipt_no: "0001-01-000001".into(),
            terminal: 1,
            cashier: "c".into(),
            created_at_ms: 0,
            lines: b.lines,
            tenders: vec![Tender { kind: TenderKind::Cash, amount: total }],
            total,
            change: Kopecks::ZERO,
            loyalty: None,
        }
    }

    #[test]
    fn partial_returns_refund_exactly_what_was_paid() {
        let s = sale(&[(1000, 3, Unit::Piece)], Some(10)); // 3 × 10,00 − 10 % = 27,00
        let mut returned = vec![(0, Kopecks::ZERO)];
        let mut refunded = 0;
        for _ in 0..3 {
            let lines = plan(&s, &returned, &[(0, 1)]).unwrap();
            returned[0].0 += 1;
            returned[0].1 .0 += lines[0].amount.0;
            refunded += lines[0].amount.0;
        }
        assert_eq!(refunded, 2700);
        assert_eq!(plan(&s, &returned, &[(0, 1)]), Err(ReturnError::OverReturn { line: 0, left: 0 }));
        assert_eq!(plan(&s, &returned, &[(5, 1)]), Err(ReturnError::NoSuchLine(5)));
    }

    #[test]
    fn refunds_go_to_the_card_first() {
        let mut s = sale(&[(1000, 1, Unit::Piece)], None);
        s.tenders = vec![
            Tender { kind: TenderKind::Card, amount: Kopecks(600) },
            Tender { kind: TenderKind::Cash, amount: Kopecks(500) },
        ];
        let r = refund_tenders(&s, &[], Kopecks(1000));
        assert_eq!(
            r,
            vec![
                Tender { kind: TenderKind::Card, amount: Kopecks(600) },
                Tender { kind: TenderKind::Cash, amount: Kopecks(400) }
            ]
        );
        let r2 = refund_tenders(&s, &r[..1], Kopecks(100));
        assert_eq!(r2, vec![Tender { kind: TenderKind::Cash, amount: Kopecks(100) }]);
    }

    proptest! {
        /// Under any sequence of return requests, no line is returned beyond what was
        /// sold, and a fully returned line refunds exactly its net amount.
        #[test]
        fn returns_never_exceed_sales(
            lines in proptest::collection::vec((1i64..100_000, 1i64..20, any::<bool>()), 1..6),
            discount in proptest::option::of(1u8..=50),
            requests in proptest::collection::vec(proptest::collection::vec((0u32..7, 1i64..25), 1..4), 1..12),
        ) {
            let spec: Vec<(i64, i64, Unit)> = lines
                .iter()
                .map(|&(p, q, w)| if w { (p, q * 137, Unit::Kilogram) } else { (p, q, Unit::Piece) })
                .collect();
            let s = sale(&spec, discount);
            let mut returned: Returned = vec![(0, Kopecks::ZERO); s.lines.len()];
            for req in requests {
                if let Ok(planned) = plan(&s, &returned, &req) {
                    for l in planned {
                        let i = l.sale_line.unwrap() as usize;
                        returned[i].0 += l.quantity;
                        returned[i].1 .0 += l.amount.0;
                    }
                }
                for (i, (q, amount)) in returned.iter().enumerate() {
                    prop_assert!(*q <= s.lines[i].quantity);
                    prop_assert!(amount.0 <= s.lines[i].net().0);
                    if *q == s.lines[i].quantity {
                        prop_assert_eq!(amount.0, s.lines[i].net().0);
                    }
                }
            }
        }

        /// Return anywhere, online: stores take back parts of one line in any order while
        /// HQ applies their returns whenever it does (each store's in order). Each till
        /// plans with HQ's figures — applied returns and every live claim but its own
        /// request's — and refunds exactly when HQ held its claim; over every store's
        /// partial returns a line is never returned beyond what was sold, refunds add up
        /// to at most what was paid for it, and to exactly that once it is all back.
        #[test]
        fn every_stores_online_returns_of_a_line_refund_at_most_what_was_paid(
            price in 1i64..100_000,
            quantity in 1i64..20,
            discount in proptest::option::of(1u8..=50),
            steps in proptest::collection::vec((0usize..3, 0i64..6), 1..40),
        ) {
            let s = sale(&[(price, quantity, Unit::Piece)], discount);
            let net = s.lines[0].net();
            // HQ: the returns it applied; live claims by (store, key); per store, the
            // returns made and not yet applied (key, return).
            let mut applied: Vec<Return> = Vec::new();
            let mut claims: std::collections::BTreeMap<(usize, u64), i64> = Default::default();
            let mut pending: Vec<Vec<(u64, Return)>> = vec![Vec::new(); 3];
            for (key, &(store, q)) in steps.iter().enumerate() {
                let key = key as u64;
                if q == 0 {
                    // HQ applies the store's returns so far: their claims are released.
                    for (k, r) in pending[store].drain(..) {
                        claims.remove(&(store, k));
                        applied.push(r);
                    }
                    continue;
                }
                let (mut returned, mut refunds) = (Vec::new(), Vec::new());
                for r in &applied {
                    add_returned(&s, &mut returned, &mut refunds, r);
                }
                returned.resize(1, (0, Kopecks::ZERO));
                returned[0].0 += claims.values().sum::<i64>();
                let claim = ReturnClaim { key: key.to_string(), lines: vec![(0, q)] };
                let held = claim.fits(&s, &[returned[0].0]);
                let planned = plan(&s, &returned, &claim.lines);
                prop_assert_eq!(held, planned.is_ok(), "HQ holds a claim exactly when the till's plan passes");
                if let Ok(lines) = planned {
                    claims.insert((store, key), q);
                    let total = Kopecks(lines.iter().map(|l| l.amount.0).sum());
                    let r = Return {
                        id: SaleId { store: StoreId(store as u32 + 1), seq: key },
                        receipt_no: String::new(),
                        terminal: 1,
                        cashier: "c".into(),
                        created_at_ms: 0,
                        kind: ReturnKind::WithReceipt { sale: s.id },
                        refunds: refund_tenders(&s, &refunds, total),
                        lines,
                        total,
                        loyalty: None,
                    };
                    pending[store].push((key, r));
                }
            }
            let all: Vec<&Return> = applied.iter().chain(pending.iter().flatten().map(|(_, r)| r)).collect();
            let back: i64 = all.iter().flat_map(|r| &r.lines).map(|l| l.quantity).sum();
            let refunded: i64 = all.iter().map(|r| r.total.0).sum();
            prop_assert!(back <= quantity, "{back} of {quantity} returned");
            prop_assert!(refunded <= net.0, "{refunded} refunded of {net} paid");
            if back == quantity {
                prop_assert_eq!(refunded, net.0);
            }
        }
    }
}
