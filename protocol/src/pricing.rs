//! Line amounts and VAT, in integers.
//!
//! Rounding rules (the receipt and the Z report both follow them):
//! - a weighted line costs `price_per_kg × grams / 1000`, rounded half up to the kopeck;
//! - VAT is included in the price and computed **per line**:
//!   `vat = amount × rate / (100 + rate)`, rounded half away from zero. A receipt's VAT
//!   per rate is the sum of its lines' VAT, so totals always add up line by line.

use crate::catalog::{Unit, VatRate};
use crate::money::Kopecks;

/// `n / d` rounded half away from zero, for `d > 0`.
fn div_round(n: i128, d: i128) -> i128 {
    debug_assert!(d > 0);
    if n >= 0 {
        (n + d / 2) / d
    } else {
        -((-n + d / 2) / d)
    }
}

/// The amount of a line: `quantity` is pieces, or grams when `unit` is kilogram.
/// `None` when the result does not fit in an `i64` (hostile input, not a real basket).
pub fn line_amount(price: Kopecks, unit: Unit, quantity: i64) -> Option<Kopecks> {
    let raw = i128::from(price.0) * i128::from(quantity);
    let amount = match unit {
        Unit::Piece => raw,
        Unit::Kilogram => div_round(raw, 1000),
    };
    i64::try_from(amount).ok().map(Kopecks)
}

/// Splits `total` over `weights` in proportion to them, by largest remainder: every
/// share is `total × weight / Σ weights` rounded down or up, and the shares add up to
/// `total` exactly. Ties go to the earlier weight, so the result is deterministic.
///
/// `None` when `total` or a weight is negative, when there is something to split but
/// nothing to split it over (all weights zero), or when the sums overflow.
pub fn spread(total: i64, weights: &[i64]) -> Option<Vec<i64>> {
    if total < 0 || weights.iter().any(|&w| w < 0) {
        return None;
    }
    let sum: i128 = weights.iter().map(|&w| i128::from(w)).sum();
    if sum == 0 {
        return (total == 0).then(|| vec![0; weights.len()]);
    }
    let mut shares = Vec::with_capacity(weights.len());
    let mut remainders: Vec<(usize, i128)> = Vec::with_capacity(weights.len());
    let mut given: i128 = 0;
    for (i, &w) in weights.iter().enumerate() {
        let exact = i128::from(total) * i128::from(w);
        let share = exact / sum;
        given += share;
        shares.push(i64::try_from(share).ok()?);
        remainders.push((i, exact % sum));
    }
    // Largest remainders first; ties to the earlier weight.
    remainders.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let left = usize::try_from(i128::from(total) - given).ok()?;
    for (i, _) in remainders.into_iter().take(left) {
        shares[i] += 1;
    }
    Some(shares)
}

/// The VAT included in `amount` at `rate`.
pub fn vat_included(amount: Kopecks, rate: VatRate) -> Kopecks {
    match rate.percent() {
        None | Some(0) => Kopecks::ZERO,
        Some(p) => {
            let p = i128::from(p);
            let vat = div_round(i128::from(amount.0) * p, 100 + p);
            Kopecks(i64::try_from(vat).expect("VAT is smaller than the amount"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighted_lines_round_half_up() {
        // 189,00 per kg × 1,235 kg = 233,415 → 233,42
        assert_eq!(line_amount(Kopecks(18900), Unit::Kilogram, 1235), Some(Kopecks(23342)));
        assert_eq!(line_amount(Kopecks(100), Unit::Kilogram, 5), Some(Kopecks(1))); // 0,5 → 1
        assert_eq!(line_amount(Kopecks(100), Unit::Kilogram, 4), Some(Kopecks(0)));
        assert_eq!(line_amount(Kopecks(10690), Unit::Piece, 3), Some(Kopecks(32070)));
        assert_eq!(line_amount(Kopecks(i64::MAX), Unit::Piece, 2), None);
    }

    #[test]
    fn spread_adds_up_exactly_and_breaks_ties_to_the_first() {
        assert_eq!(spread(10, &[1, 1, 1]), Some(vec![4, 3, 3]));
        assert_eq!(spread(1000, &[9000, 999]), Some(vec![900, 100]));
        assert_eq!(spread(0, &[0, 0]), Some(vec![0, 0]));
        assert_eq!(spread(1, &[0, 0]), None);
        assert_eq!(spread(1, &[-1, 2]), None);
        assert_eq!(spread(7, &[]), None);
        assert_eq!(spread(i64::MAX, &[i64::MAX, i64::MAX]), Some(vec![i64::MAX / 2 + 1, i64::MAX / 2]));
    }

    #[test]
    fn vat_is_included_and_rounded() {
        // 106,90 at 10 %: 1069/11 = 9,718… → 9,72
        assert_eq!(vat_included(Kopecks(10690), VatRate::Vat10), Kopecks(972));
        // 120,00 at 20 % → 20,00 exactly
        assert_eq!(vat_included(Kopecks(12000), VatRate::Vat20), Kopecks(2000));
        assert_eq!(vat_included(Kopecks(-12000), VatRate::Vat20), Kopecks(-2000));
        assert_eq!(vat_included(Kopecks(12000), VatRate::Vat0), Kopecks(0));
        assert_eq!(vat_included(Kopecks(12000), VatRate::None), Kopecks(0));
    }
}
