//! An open basket at the till: lines being scanned, not yet a sale.

use serde::{Deserialize, Serialize};

use crate::catalog::{CatalogItem, Unit, VatRate};
use crate::ids::Sku;
use crate::money::Kopecks;
use crate::pricing;
use crate::promotions::{Context, PriceLine, PromotionSet};

/// Lines per basket: far beyond a real shop's trolley, small enough to bound memory
/// and the receipt.
pub const BASKET_LINES_MAX: usize = 500;
/// Pieces per line, or grams per weighted line (100 kg).
pub const LINE_QUANTITY_MAX: i64 = 100_000;
/// Coupon codes one basket may carry.
pub const COUPONS_MAX: usize = 8;
/// Longest coupon code, in characters.
pub const COUPON_LEN_MAX_CHARS: usize = 32;

/// What one promotion gave one line: the sale keeps which promotion, in which version,
/// under which name (the receipt prints it, a reprint years later too) and how much.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinePromotion {
    pub promotion: u32,
    pub version: u32,
    pub name: String,
    pub amount: Kopecks,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BasketLine {
    pub sku: Sku,
    pub name: String,
    /// The catalog's category (promotions may target it; empty in records older than
    /// sale format 2).
    pub category: String,
    pub unit: Unit,
    /// Pieces, or grams for weighted goods.
    pub quantity: i64,
    /// The catalog price (per piece or per kg).
    pub list_price: Kopecks,
    /// The price charged: the list price, or a manager's override.
    pub price: Kopecks,
    pub vat: VatRate,
    /// `price × quantity` (rounded for weighed goods), before any discount.
    pub amount: Kopecks,
    /// Everything off this line: what its promotions gave, plus its share of the
    /// manager's basket discount.
    pub discount: Kopecks,
    /// The promotions that gave part of `discount`, in the order they applied.
    pub promotions: Vec<LinePromotion>,
    /// The marking code ("Честный знак") of a marked unit, byte-exact as scanned; such
    /// a line is always one piece, and a code can be in a basket only once.
    pub marking: Option<String>,
}

impl BasketLine {
    /// What the customer pays for the line.
    pub fn net(&self) -> Kopecks {
        Kopecks(self.amount.0 - self.discount.0)
    }

    /// What promotions took off this line (the rest of `discount` is the manager's).
    pub fn promotion_discount(&self) -> Kopecks {
        Kopecks(self.promotions.iter().map(|p| p.amount.0).sum())
    }

    /// A new line of `quantity` of `item` at its catalog price, without discounts.
    fn of(item: &CatalogItem, unit: Unit, quantity: i64, marking: Option<String>) -> Result<BasketLine, BasketError> {
        Ok(BasketLine {
            sku: item.sku.clone(),
            name: item.name.clone(),
            category: item.category.clone(),
            unit,
            quantity,
            list_price: item.price,
            price: item.price,
            vat: item.vat,
            amount: pricing::line_amount(item.price, unit, quantity).ok_or(BasketError::Overflow)?,
            discount: Kopecks::ZERO,
            promotions: Vec::new(),
            marking,
        })
    }
}

/// A discount on the whole basket, spread over its lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BasketDiscount {
    Percent(u8),
    Amount(Kopecks),
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Basket {
    pub lines: Vec<BasketLine>,
    pub discount: Option<BasketDiscount>,
    /// Coupon codes the customer presented (promotions with a coupon need one).
    pub coupons: Vec<String>,
    /// Which basket of its terminal this is: the till numbers them 1, 2, 3… and the
    /// journal records the id of the basket each sale paid (and each void ended), so a
    /// basket saved before a crash is known to be paid, or not, after the restart.
    pub id: u64,
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
    #[error("a price must be positive and at most the list price")]
    Price,
    #[error("a discount must be 1 to {DISCOUNT_PERCENT_MAX} % or a positive amount below the total")]
    Discount,
    #[error("this marked item is already in the basket")]
    DuplicateMarking,
    #[error("a marked item is sold one by one: scan each unit")]
    MarkedQuantity,
    #[error(
        "a coupon code is 1 to {COUPON_LEN_MAX_CHARS} Latin letters, digits or -, at most {COUPONS_MAX} per basket"
    )]
    Coupon,
}

/// The largest basket discount in percent a manager may give at the till.
pub const DISCOUNT_PERCENT_MAX: u8 = 50;

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
    pub discount: Kopecks,
    pub vat: Vec<VatTotal>,
}

impl Basket {
    /// A new, empty basket with the given id.
    pub fn new(id: u64) -> Basket {
        Basket { id, ..Basket::default() }
    }

    /// Adds `quantity` of `item`. Pieces of an item already in the basket add to its
    /// line; each weighing of a weighted item is its own line, as on the scale's label.
    pub fn add(&mut self, item: &CatalogItem, quantity: i64) -> Result<usize, BasketError> {
        if !(1..=LINE_QUANTITY_MAX).contains(&quantity) {
            return Err(BasketError::Quantity);
        }
        if item.unit == Unit::Piece {
            if let Some(i) =
                self.lines.iter().position(|l| l.sku == item.sku && l.price == item.price && l.marking.is_none())
            {
                let q = self.lines[i].quantity.checked_add(quantity).ok_or(BasketError::Quantity)?;
                self.set_quantity(i, q)?;
                return Ok(i);
            }
        }
        if self.lines.len() >= BASKET_LINES_MAX {
            return Err(BasketError::Full);
        }
        self.lines.push(BasketLine::of(item, item.unit, quantity, None)?);
        self.commit_or_undo(|b| {
            b.lines.pop();
        })?;
        Ok(self.lines.len() - 1)
    }

    /// Adds one marked unit with its marking code. The same code twice is refused: it is
    /// the same physical item scanned again.
    pub fn add_marked(&mut self, item: &CatalogItem, code: &str) -> Result<usize, BasketError> {
        if self.lines.iter().any(|l| l.marking.as_deref() == Some(code)) {
            return Err(BasketError::DuplicateMarking);
        }
        if self.lines.len() >= BASKET_LINES_MAX {
            return Err(BasketError::Full);
        }
        self.lines.push(BasketLine::of(item, Unit::Piece, 1, Some(code.to_owned()))?);
        self.commit_or_undo(|b| {
            b.lines.pop();
        })?;
        Ok(self.lines.len() - 1)
    }

    pub fn set_quantity(&mut self, line: usize, quantity: i64) -> Result<(), BasketError> {
        if !(1..=LINE_QUANTITY_MAX).contains(&quantity) {
            return Err(BasketError::Quantity);
        }
        if self.lines.get(line).is_some_and(|l| l.marking.is_some() && quantity != 1) {
            return Err(BasketError::MarkedQuantity);
        }
        self.reprice_line(line, |l| l.quantity = quantity)
    }

    /// A manager's price override: a lower price for one line.
    pub fn override_price(&mut self, line: usize, price: Kopecks) -> Result<(), BasketError> {
        let l = self.lines.get(line).ok_or(BasketError::NoSuchLine(line))?;
        if price.0 <= 0 || price > l.list_price {
            return Err(BasketError::Price);
        }
        self.reprice_line(line, |l| l.price = price)
    }

    /// Sets (or with `None` clears) the basket discount.
    pub fn set_discount(&mut self, discount: Option<BasketDiscount>) -> Result<(), BasketError> {
        match discount {
            Some(BasketDiscount::Percent(p)) if p == 0 || p > DISCOUNT_PERCENT_MAX => {
                return Err(BasketError::Discount)
            }
            Some(BasketDiscount::Amount(a)) if a.0 <= 0 => return Err(BasketError::Discount),
            _ => {}
        }
        let old = self.discount;
        self.discount = discount;
        self.commit_or_undo(|b| b.discount = old)
    }

    pub fn remove(&mut self, line: usize) -> Result<BasketLine, BasketError> {
        if line >= self.lines.len() {
            return Err(BasketError::NoSuchLine(line));
        }
        let removed = self.lines.remove(line);
        if self.spread_discount().is_err() {
            // A fixed discount larger than what is left no longer applies.
            self.discount = None;
            self.spread_discount().expect("no discount cannot fail");
        }
        Ok(removed)
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// The total and the VAT per rate, in the order rates first appear. `None` only
    /// when the sum overflows, which the mutators prevent.
    pub fn totals(&self) -> Option<Totals> {
        totals(self.lines.iter())
    }

    fn reprice_line(&mut self, line: usize, change: impl FnOnce(&mut BasketLine)) -> Result<(), BasketError> {
        let l = self.lines.get_mut(line).ok_or(BasketError::NoSuchLine(line))?;
        let old = l.clone();
        change(l);
        // Its promotions are worked out again by the next `apply_promotions`.
        l.promotions.clear();
        match pricing::line_amount(l.price, l.unit, l.quantity) {
            Some(amount) => l.amount = amount,
            None => {
                *l = old;
                return Err(BasketError::Overflow);
            }
        }
        self.commit_or_undo(move |b| b.lines[line] = old)
    }

    /// Re-spreads the discount after a change; if the basket no longer adds up (an
    /// overflow, or a discount larger than the total), undoes the change.
    fn commit_or_undo(&mut self, undo: impl FnOnce(&mut Basket)) -> Result<(), BasketError> {
        match self.spread_discount() {
            Ok(()) => Ok(()),
            Err(e) => {
                undo(self);
                self.spread_discount().expect("the previous basket was valid");
                Err(e)
            }
        }
    }

    /// Spreads the basket discount over what is left to pay for each line after its
    /// promotions, in proportion, by largest remainder, so the shares add up to the
    /// discount exactly and every line's VAT is computed on what is actually paid for it.
    fn spread_discount(&mut self) -> Result<(), BasketError> {
        let left: Vec<i64> = self.lines.iter().map(|l| (l.amount.0 - l.promotion_discount().0).max(0)).collect();
        let gross =
            left.iter().try_fold(Kopecks::ZERO, |acc, &l| acc.checked_add(Kopecks(l))).ok_or(BasketError::Overflow)?;
        let total_discount = match self.discount {
            None => 0,
            Some(BasketDiscount::Percent(p)) => {
                i64::try_from((i128::from(gross.0) * i128::from(p) + 50) / 100).map_err(|_| BasketError::Overflow)?
            }
            Some(BasketDiscount::Amount(a)) => {
                if a >= gross && !self.lines.is_empty() {
                    return Err(BasketError::Discount);
                }
                a.0.min(gross.0)
            }
        };
        for l in &mut self.lines {
            l.discount = l.promotion_discount();
        }
        if total_discount == 0 || gross.0 == 0 {
            return Ok(());
        }
        let shares = pricing::spread(total_discount, &left).ok_or(BasketError::Overflow)?;
        for (l, share) in self.lines.iter_mut().zip(shares) {
            l.discount = Kopecks(l.discount.0 + share);
        }
        Ok(())
    }

    /// Prices the basket under `set` in `cx`: each line gets what promotions give it,
    /// then the manager's basket discount is spread over what is left. Lines whose price
    /// a manager overrode take no promotions (the override is the line's price). A fixed
    /// basket discount that no longer fits under what is left is dropped, as when a line
    /// is removed.
    ///
    /// The till calls this after every change of the basket; HQ prices the online
    /// shop's baskets with the same function.
    pub fn apply_promotions(&mut self, set: &PromotionSet, cx: &Context<'_>) {
        let priceable: Vec<usize> =
            (0..self.lines.len()).filter(|&i| self.lines[i].price == self.lines[i].list_price).collect();
        let priced = {
            let lines: Vec<PriceLine<'_>> = priceable
                .iter()
                .map(|&i| {
                    let l = &self.lines[i];
                    PriceLine {
                        sku: &l.sku,
                        category: &l.category,
                        unit: l.unit,
                        quantity: l.quantity,
                        price: l.price,
                        amount: l.amount,
                    }
                })
                .collect();
            if set.is_empty() || lines.is_empty() {
                crate::promotions::Priced::default()
            } else {
                set.price(&lines, cx)
            }
        };
        for l in &mut self.lines {
            l.promotions.clear();
        }
        for (k, line) in priced.lines.into_iter().enumerate() {
            self.lines[priceable[k]].promotions = line
                .applied
                .into_iter()
                .map(|a| LinePromotion {
                    promotion: a.promotion,
                    version: a.version,
                    name: set.get(a.promotion).map(|p| p.name.clone()).unwrap_or_default(),
                    amount: a.amount,
                })
                .collect();
        }
        if self.spread_discount().is_err() {
            self.discount = None;
            self.spread_discount().expect("promotions alone never take a line below zero");
        }
    }

    /// Adds a coupon code the customer presented (kept in capitals; once).
    pub fn add_coupon(&mut self, code: &str) -> Result<(), BasketError> {
        let code = code.trim().to_ascii_uppercase();
        if !is_coupon_code(&code) {
            return Err(BasketError::Coupon);
        }
        if !self.coupons.contains(&code) {
            if self.coupons.len() >= COUPONS_MAX {
                return Err(BasketError::Coupon);
            }
            self.coupons.push(code);
        }
        Ok(())
    }

    /// What promotions took off the whole basket (the manager's discount not counted).
    pub fn promotions_saved(&self) -> Kopecks {
        Kopecks(self.lines.iter().map(|l| l.promotion_discount().0).sum())
    }
}

/// A coupon code as promotions define it and tills take it: 1 to
/// [`COUPON_LEN_MAX_CHARS`] Latin letters, digits or `-` (what any keyboard and any
/// printed coupon has).
pub fn is_coupon_code(code: &str) -> bool {
    (1..=COUPON_LEN_MAX_CHARS).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Sums lines into a total and VAT per rate (VAT per line on its net amount, summed).
pub fn totals<'a>(lines: impl Iterator<Item = &'a BasketLine>) -> Option<Totals> {
    let mut total = Kopecks::ZERO;
    let mut discount = Kopecks::ZERO;
    let mut vat: Vec<VatTotal> = Vec::new();
    for l in lines {
        let net = l.net();
        total = total.checked_add(net)?;
        discount = discount.checked_add(l.discount)?;
        let line_vat = pricing::vat_included(net, l.vat);
        match vat.iter_mut().find(|v| v.rate == l.vat) {
            Some(v) => {
                v.amount = v.amount.checked_add(net)?;
                v.vat = v.vat.checked_add(line_vat)?;
            }
            None => vat.push(VatTotal { rate: l.vat, amount: net, vat: line_vat }),
        }
    }
    Some(Totals { total, discount, vat })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gtin::Gtin;
    use proptest::prelude::*;

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

    #[test]
    fn overrides_and_discounts_add_up() {
        let mut b = Basket::default();
        b.add(&item("1", 10000, Unit::Piece), 1).unwrap();
        b.add(&item("2", 333, Unit::Piece), 3).unwrap();
        assert_eq!(b.override_price(0, Kopecks(20000)), Err(BasketError::Price));
        b.override_price(0, Kopecks(9000)).unwrap();
        b.set_discount(Some(BasketDiscount::Percent(10))).unwrap();
        let t = b.totals().unwrap();
        // gross 9000 + 999 = 9999; 10 % = 999,9 → 1000
        assert_eq!(t.discount, Kopecks(1000));
        assert_eq!(t.total, Kopecks(8999));
        assert_eq!(b.lines.iter().map(|l| l.discount.0).sum::<i64>(), 1000);
        assert_eq!(b.set_discount(Some(BasketDiscount::Amount(Kopecks(9999)))), Err(BasketError::Discount));
        assert_eq!(b.totals().unwrap().discount, Kopecks(1000), "a refused discount changes nothing");
        assert_eq!(b.set_discount(Some(BasketDiscount::Percent(90))), Err(BasketError::Discount));
    }

    fn arb_item() -> impl Strategy<Value = (CatalogItem, i64)> {
        (1i64..1_000_000, any::<bool>(), 0usize..4, 1i64..5000).prop_map(|(price, weighed, vat, q)| {
            let unit = if weighed { Unit::Kilogram } else { Unit::Piece };
            let vat = [VatRate::Vat20, VatRate::Vat10, VatRate::Vat0, VatRate::None][vat];
            let mut it = item(&format!("{price}{weighed}"), price, unit);
            it.vat = vat;
            (it, if weighed { q } else { q % 20 + 1 })
        })
    }

    proptest! {
        /// For any basket: lines' net amounts add up to the total; VAT per rate adds up
        /// line by line and never exceeds the amount; the discount is spread exactly.
        #[test]
        fn totals_and_vat_always_add_up(
            items in proptest::collection::vec(arb_item(), 1..30),
            discount in proptest::option::of(prop_oneof![
                (1u8..=DISCOUNT_PERCENT_MAX).prop_map(BasketDiscount::Percent),
                (1i64..100_000).prop_map(|k| BasketDiscount::Amount(Kopecks(k))),
            ]),
            removals in proptest::collection::vec(0usize..30, 0..5),
        ) {
            let mut b = Basket::default();
            for (it, q) in &items {
                b.add(it, *q).unwrap();
            }
            let _ = b.set_discount(discount);
            for r in removals {
                let _ = b.remove(r);
            }
            let t = b.totals().unwrap();
            prop_assert_eq!(t.total.0, b.lines.iter().map(|l| l.net().0).sum::<i64>());
            prop_assert_eq!(t.total.0, t.vat.iter().map(|v| v.amount.0).sum::<i64>());
            prop_assert_eq!(t.discount.0, b.lines.iter().map(|l| l.discount.0).sum::<i64>());
            for l in &b.lines {
                prop_assert!(l.discount.0 >= 0 && l.discount <= l.amount);
            }
            for v in &t.vat {
                prop_assert!(v.vat.0 >= 0 && v.vat <= v.amount);
                let lines_vat: i64 = b.lines.iter().filter(|l| l.vat == v.rate).map(|l| crate::pricing::vat_included(l.net(), l.vat).0).sum();
                prop_assert_eq!(v.vat.0, lines_vat);
            }
            if let (Some(BasketDiscount::Percent(p)), false) = (b.discount, b.lines.is_empty()) {
                let gross: i64 = b.lines.iter().map(|l| l.amount.0).sum();
                prop_assert_eq!(t.discount.0, (gross * i64::from(p) + 50) / 100);
            }
        }
    }
}
