//! Committed sales: immutable records, replicated to HQ as a grow-only set.

use serde::{Deserialize, Serialize};

use crate::basket::{self, Basket, BasketLine, Totals};
use crate::ids::SaleId;
use crate::money::Kopecks;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TenderKind {
    Cash,
    /// Card payments are recorded, not processed (no payment terminal yet).
    Card,
    /// Loyalty points, at their value in kopecks.
    Points,
}

impl TenderKind {
    pub const ALL: [TenderKind; 3] = [TenderKind::Cash, TenderKind::Card, TenderKind::Points];

    pub fn code(self) -> &'static str {
        match self {
            TenderKind::Cash => "cash",
            TenderKind::Card => "card",
            TenderKind::Points => "points",
        }
    }

    /// The kind a [`TenderKind::code`] names; anything else is no kind (never cash).
    pub fn from_code(code: &str) -> Option<TenderKind> {
        Self::ALL.into_iter().find(|k| k.code() == code)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tender {
    pub kind: TenderKind,
    /// What the customer handed over (cash) or what was charged (card).
    pub amount: Kopecks,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sale {
    pub id: SaleId,
    /// `SSSS-TT-NNNNNN`: store, terminal, gap-free number per terminal.
    pub receipt_no: String,
    pub terminal: u16,
    /// Who sold it (a user id of the store).
    pub cashier: String,
    /// Unix milliseconds of the commit, from the store's clock (informational; order
    /// comes from the sequence).
    pub created_at_ms: i64,
    pub lines: Vec<BasketLine>,
    pub tenders: Vec<Tender>,
    pub total: Kopecks,
    pub change: Kopecks,
    /// The loyalty customer, what points paid and what each line earned: a return takes
    /// back exactly this, whatever the rules are by then.
    pub loyalty: Option<crate::loyalty::SaleLoyalty>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaymentError {
    #[error("the basket is empty")]
    EmptyBasket,
    #[error("{short} short: the customer paid {paid} of {total}")]
    Short { total: Kopecks, paid: Kopecks, short: Kopecks },
    #[error("a card cannot be charged more than is due ({due})")]
    CardOverpaid { due: Kopecks },
    #[error("a tender must be a positive amount")]
    NonPositiveTender,
    #[error("the amount is too large")]
    Overflow,
    /// More cash than the sale needs, by more than a till gives back in change: a typing
    /// mistake (an extra zero), never a payment.
    #[error("the change would be {change}: at most {max} is given in change; check the cash amount")]
    ChangeTooLarge { change: Kopecks, max: Kopecks },
}

/// The most change a till gives: the largest banknote (5,000 ₽). Cash beyond what is
/// due plus this is refused as a typing mistake.
pub const CHANGE_MAX: Kopecks = Kopecks(500_000);

/// Checks the tenders against the basket and works out the change. Change is given
/// only in cash: cards pay at most what is due.
pub fn settle(basket: &Basket, tenders: &[Tender]) -> Result<(Totals, Kopecks), PaymentError> {
    if basket.is_empty() {
        return Err(PaymentError::EmptyBasket);
    }
    let totals = basket.totals().ok_or(PaymentError::Overflow)?;
    let mut card = Kopecks::ZERO;
    let mut cash = Kopecks::ZERO;
    for t in tenders {
        if t.amount.0 <= 0 {
            return Err(PaymentError::NonPositiveTender);
        }
        // Change is given only in cash: cards and points pay at most what is due.
        let sum = match t.kind {
            TenderKind::Card | TenderKind::Points => &mut card,
            TenderKind::Cash => &mut cash,
        };
        *sum = sum.checked_add(t.amount).ok_or(PaymentError::Overflow)?;
    }
    if card > totals.total {
        return Err(PaymentError::CardOverpaid { due: totals.total });
    }
    let paid = card.checked_add(cash).ok_or(PaymentError::Overflow)?;
    if paid < totals.total {
        let short = totals.total.checked_sub(paid).ok_or(PaymentError::Overflow)?;
        return Err(PaymentError::Short { total: totals.total, paid, short });
    }
    let change = paid.checked_sub(totals.total).ok_or(PaymentError::Overflow)?;
    if change > CHANGE_MAX {
        return Err(PaymentError::ChangeTooLarge { change, max: CHANGE_MAX });
    }
    Ok((totals, change))
}

impl Sale {
    /// Checks the record's own arithmetic; HQ refuses (parks) a sale that does not add up.
    pub fn validate(&self) -> Result<(), String> {
        let totals = basket::totals(self.lines.iter()).ok_or("total overflows")?;
        if totals.total != self.total {
            return Err(format!("lines add up to {}, the sale says {}", totals.total, self.total));
        }
        if self.lines.is_empty() {
            return Err("a sale without lines".into());
        }
        if self.lines.iter().any(|l| l.quantity <= 0 || l.discount.0 < 0 || l.discount > l.amount) {
            return Err("a line with a non-positive quantity or a bad discount".into());
        }
        if self
            .lines
            .iter()
            .any(|l| l.promotions.iter().any(|p| p.amount.0 <= 0) || l.promotion_discount() > l.discount)
        {
            return Err("a line whose promotions give more than its discount".into());
        }
        let paid = self
            .tenders
            .iter()
            .try_fold(Kopecks::ZERO, |acc, t| acc.checked_add(t.amount))
            .ok_or("tenders overflow")?;
        if paid.checked_sub(self.total) != Some(self.change) {
            return Err(format!("paid {paid}, total {}, change {} do not add up", self.total, self.change));
        }
        Ok(())
    }
}

/// `SSSS-TT-NNNNNN`, e.g. `0001-02-000123`.
pub fn receipt_no(store: crate::StoreId, terminal: u16, number: u64) -> String {
    format!("{:04}-{:02}-{:06}", store.0, terminal, number)
}

/// A receipt number `SSSS-TT-NNNNNN` read back: (store, terminal, number); `None` for
/// anything else.
pub fn parse_receipt_no(code: &str) -> Option<(crate::StoreId, u16, u64)> {
    let mut parts = code.trim().split('-');
    let (Some(store), Some(terminal), Some(number), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !(all_digits(store) && all_digits(terminal) && all_digits(number)) {
        return None;
    }
    Some((crate::StoreId(store.parse().ok()?), terminal.parse().ok()?, number.parse().ok()?))
}

/// What a code the cashier scans or types says of a sale: the receipt's QR code
/// (`KASSA:<store>:<seq>`, signed or not, see [`crate::receipt_proof`]) or its printed
/// number; or an order's pickup code or number (`Z10452`, `1045`), for the sale its
/// handover made. `None` for anything else.
pub fn sale_ref(code: &str) -> Option<crate::returns::SaleRef> {
    let code = code.trim();
    if code.starts_with("KASSA:") {
        let c = crate::receipt_proof::parse_code(code)?.ok()?;
        return Some(crate::returns::SaleRef::Id(c.sale));
    }
    if let Some(order) = crate::orders::parse_pickup_code(code) {
        return Some(crate::returns::SaleRef::Order(order));
    }
    if (1..=12).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_digit()) {
        return code.parse().ok().filter(|n| *n > 0).map(|n| crate::returns::SaleRef::Order(crate::orders::OrderId(n)));
    }
    parse_receipt_no(code).map(|_| crate::returns::SaleRef::ReceiptNo(code.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{CatalogItem, Unit, VatRate};
    use crate::Sku;

    fn basket(price: i64) -> Basket {
        let mut b = Basket::default();
        let item = CatalogItem {
            sku: Sku::parse("1").unwrap(),
            gtin: None,
            name: "x".into(),
            category: "c".into(),
            price: Kopecks(price),
            vat: VatRate::Vat20,
            unit: Unit::Piece,
            plu: None,
        };
        b.add(&item, 1).unwrap();
        b
    }

    #[test]
    fn cash_gives_change_card_does_not() {
        let b = basket(10690);
        let cash = |k| Tender { kind: TenderKind::Cash, amount: Kopecks(k) };
        let card = |k| Tender { kind: TenderKind::Card, amount: Kopecks(k) };
        assert_eq!(settle(&b, &[cash(20000)]).unwrap().1, Kopecks(9310));
        assert_eq!(settle(&b, &[card(690), cash(10000)]).unwrap().1, Kopecks(0));
        assert!(matches!(settle(&b, &[cash(100)]), Err(PaymentError::Short { short: Kopecks(10590), .. })));
        assert!(matches!(settle(&b, &[card(20000)]), Err(PaymentError::CardOverpaid { .. })));
        assert!(matches!(settle(&Basket::default(), &[cash(1)]), Err(PaymentError::EmptyBasket)));
        assert!(matches!(settle(&b, &[cash(0)]), Err(PaymentError::NonPositiveTender)));
        // Change up to the largest banknote; beyond, a typing mistake.
        assert_eq!(settle(&b, &[cash(10690 + CHANGE_MAX.0)]).unwrap().1, CHANGE_MAX);
        assert!(matches!(settle(&b, &[cash(10690 + CHANGE_MAX.0 + 1)]), Err(PaymentError::ChangeTooLarge { .. })));
        assert!(matches!(settle(&b, &[cash(i64::MAX)]), Err(PaymentError::ChangeTooLarge { .. })));
        assert!(matches!(settle(&b, &[cash(i64::MAX), cash(i64::MAX)]), Err(PaymentError::Overflow)));
    }

    #[test]
    fn receipt_numbers_are_readable() {
        assert_eq!(receipt_no(crate::StoreId(1), 2, 123), "0001-02-000123");
    }
}
