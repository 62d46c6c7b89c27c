//! An open basket at the till: lines being scanned, not yet a sale.

use serde::{Deserialize, Serialize};

use crate::catalog::{CatalogItem, Unit, VatRate};
use crate::ids::Sku;
use crate::money::Kopecks;
use crate::pricing;

/// Lines per basket: far beyond a real shop's trolley, small enough to bound memory
/// and the receipt.
pub const BASKET_LINES_MAX: usize = 500;
/// Pieces per line, or grams per weighted line (100 kg).
pub const LINE_QUANTITY_MAX: i64 = 100_000;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BasketLine {
    pub sku: Sku,
    pub name: String,
    pub unit: Unit,
    /// Pieces, or grams for weighted goods.
    pub quantity: i64,
    pub price: Kopecks,
    pub vat: VatRate,
    pub amount: Kopecks,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Basket {
    pub lines: Vec<BasketLine>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BasketError {
    #[error("quantity must be between 1 and {LINE_QUANTITY_MAX}")]
    Quantity,
    #[error("the basket is full ({BASKET_LINES_MAX} lines)")]
    Full,
    #[error("there is no line {0}")]
    NoSuchLine(usize),
    #[error("the amount is too large")]
    Overflow,
}

/// VAT of one rate on a receipt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VatTotal {
    pub rate: VatRate,
    pub amount: Kopecks,
    pub vat: Kopecks,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub total: Kopecks,
    pub vat: Vec<VatTotal>,
}

impl Basket {
    /// Adds `quantity` of `item`. Pieces of an item already in the basket add to its
    /// line; each weighing of a weighted item is its own line, as on the scale's label.
    pub fn add(&mut self, item: &CatalogItem, quantity: i64) -> Result<usize, BasketError> {
        if !(1..=LINE_QUANTITY_MAX).contains(&quantity) {
            return Err(BasketError::Quantity);
        }
        if item.unit == Unit::Piece {
            if let Some(i) = self.lines.iter().position(|l| l.sku == item.sku && l.price == item.price) {
                self.set_quantity(i, self.lines[i].quantity + quantity)?;
                return Ok(i);
            }
        }
        if self.lines.len() >= BASKET_LINES_MAX {
            return Err(BasketError::Full);
        }
        let amount = pricing::line_amount(item.price, item.unit, quantity).ok_or(BasketError::Overflow)?;
        self.lines.push(BasketLine {
            sku: item.sku.clone(),
            name: item.name.clone(),
            unit: item.unit,
            quantity,
            price: item.price,
            vat: item.vat,
            amount,
        });
        self.totals().ok_or(BasketError::Overflow).inspect_err(|_| {
            self.lines.pop();
        })?;
        Ok(self.lines.len() - 1)
    }

    pub fn set_quantity(&mut self, line: usize, quantity: i64) -> Result<(), BasketError> {
        if !(1..=LINE_QUANTITY_MAX).contains(&quantity) {
            return Err(BasketError::Quantity);
        }
        let l = self.lines.get_mut(line).ok_or(BasketError::NoSuchLine(line))?;
        let amount = pricing::line_amount(l.price, l.unit, quantity).ok_or(BasketError::Overflow)?;
        let old = (l.quantity, l.amount);
        (l.quantity, l.amount) = (quantity, amount);
        if self.totals().is_none() {
            let l = &mut self.lines[line];
            (l.quantity, l.amount) = old;
            return Err(BasketError::Overflow);
        }
        Ok(())
    }

    pub fn remove(&mut self, line: usize) -> Result<BasketLine, BasketError> {
        if line >= self.lines.len() {
            return Err(BasketError::NoSuchLine(line));
        }
        Ok(self.lines.remove(line))
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// The total and the VAT per rate, in the order rates first appear. `None` only
    /// when the sum overflows, which [`Basket::add`] prevents.
    pub fn totals(&self) -> Option<Totals> {
        totals(self.lines.iter().map(|l| (l.amount, l.vat)))
    }
}

/// Sums `(amount, rate)` lines into a total and VAT per rate (per-line VAT, summed).
pub fn totals(lines: impl Iterator<Item = (Kopecks, VatRate)>) -> Option<Totals> {
    let mut total = Kopecks::ZERO;
    let mut vat: Vec<VatTotal> = Vec::new();
    for (amount, rate) in lines {
        total = total.checked_add(amount)?;
        let line_vat = pricing::vat_included(amount, rate);
        match vat.iter_mut().find(|v| v.rate == rate) {
            Some(v) => {
                v.amount = v.amount.checked_add(amount)?;
                v.vat = v.vat.checked_add(line_vat)?;
            }
            None => vat.push(VatTotal { rate, amount, vat: line_vat }),
        }
    }
    Some(Totals { total, vat })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gtin::Gtin;

    fn item(sku: &str, price: i64, unit: Unit) -> CatalogItem {
        CatalogItem {
            sku: Sku::parse(sku).unwrap(),
            gtin: Gtin::parse("4650001209603").ok(),
            name: format!("item {sku}"),
            category: "c".into(),
            price: Kopecks(price),
            vat: VatRate::Vat10,
            unit,
            plu: None,
        }
    }

    #[test]
    fn pieces_merge_weighings_do_not() {
        let mut b = Basket::default();
        let milk = item("1", 10690, Unit::Piece);
        let apples = item("2", 18900, Unit::Kilogram);
        b.add(&milk, 1).unwrap();
        b.add(&milk, 2).unwrap();
        b.add(&apples, 1235).unwrap();
        b.add(&apples, 500).unwrap();
        assert_eq!(b.lines.len(), 3);
        assert_eq!(b.lines[0].quantity, 3);
        let t = b.totals().unwrap();
        assert_eq!(t.total, Kopecks(32070 + 23342 + 9450));
        assert_eq!(t.vat.len(), 1);
        assert_eq!(b.add(&milk, 0), Err(BasketError::Quantity));
        assert_eq!(b.remove(7), Err(BasketError::NoSuchLine(7)));
    }
}
