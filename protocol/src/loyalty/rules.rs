//! The rules HQ publishes, and the points of a sale and of a return under them.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::customer::CustomerId;
use crate::basket::BasketLine;
use crate::catalog::NAME_LEN_MAX_CHARS;
use crate::ids::Sku;
use crate::money::Kopecks;
use crate::pricing::spread;
use crate::returns::{ReturnLine, Returned};

/// Kopecks paid per point earned, at most 10 000 RUB: beyond that nobody ever earns a
/// point, which is a typo rather than a programme.
pub const EARN_KOPECKS_PER_POINT_MAX: i64 = 1_000_000;
/// Excluded categories: far more than a catalog has, few enough to scan per line.
pub const EXCLUDED_CATEGORIES_MAX: usize = 256;
/// The whole basket.
pub const SHARE_PERCENT_MAX: u8 = 100;

// The sane bounds HQ publishes within ([`LoyaltyRules::publishable`]). They are policy,
// not arithmetic: rules outside them compute correctly, but are surely a typo.

/// Cashback, in percent: the value of the points a purchase earns as a share of the
/// money paid for it (`point_value_kopecks / earn_kopecks_per_point`), at most 30 %.
/// Retail programmes give 0.5 to 10 %, promotions up to about 30 %; 100 % gives a
/// customer back everything they pay.
pub const CASHBACK_PERCENT_MAX: i64 = 30;
/// What one point pays, in kopecks: at least 1 kopeck (0.01 RUB)...
pub const POINT_VALUE_KOPECKS_MIN: i64 = 1;
/// ...and at most 1 000 kopecks (10 RUB). Programmes price a point at 0.1 to 1 RUB;
/// ten times that is a generous ceiling, beyond it a typo (kopecks taken for roubles).
pub const POINT_VALUE_KOPECKS_MAX: i64 = 1_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RulesError {
    #[error("earning needs 1 to {EARN_KOPECKS_PER_POINT_MAX} kopecks per point")]
    EarnRate,
    #[error("a point is worth at least 1 kopeck and at most the kopecks that earn it (cashback up to 100 %)")]
    PointValue,
    #[error("the share of a basket payable in points is 0 to {SHARE_PERCENT_MAX} %")]
    Share,
    #[error("at most {EXCLUDED_CATEGORIES_MAX} excluded categories")]
    TooManyCategories,
    #[error("an excluded category is 1 to {NAME_LEN_MAX_CHARS} printable characters, listed once")]
    Category,
    #[error(
        "a point is worth {POINT_VALUE_KOPECKS_MIN} to {POINT_VALUE_KOPECKS_MAX} kopecks (0.01 to 10 RUB), \
         not {point_value_kopecks}"
    )]
    PointValueRange { point_value_kopecks: i64 },
    #[error(
        "cashback is at most {CASHBACK_PERCENT_MAX} %: a point worth {point_value_kopecks} kopecks needs at least \
         {earn_kopecks_per_point_min} kopecks paid per point, not {earn_kopecks_per_point}"
    )]
    Cashback { point_value_kopecks: i64, earn_kopecks_per_point: i64, earn_kopecks_per_point_min: i64 },
}

/// The loyalty rules HQ publishes with the catalog. Valid by construction: built by
/// [`LoyaltyRules::new`] or deserialised (which validates too), so the functions below
/// never divide by zero or mint points from a typo.
///
/// Two levels of checks. [`LoyaltyRules::new`] (and deserialisation) holds the
/// invariants the arithmetic needs: 1 to [`EARN_KOPECKS_PER_POINT_MAX`] kopecks per
/// point, a point worth 1 kopeck to the kopecks that earn it (cashback at most 100 %),
/// a share cap of 0 to [`SHARE_PERCENT_MAX`] %, at most [`EXCLUDED_CATEGORIES_MAX`]
/// categories. HQ publishes only rules that are also within the sane retail bounds,
/// [`LoyaltyRules::publishable`]: cashback at most [`CASHBACK_PERCENT_MAX`] %, a point
/// worth [`POINT_VALUE_KOPECKS_MIN`] to [`POINT_VALUE_KOPECKS_MAX`] kopecks. Stores and
/// HQ load stored or received rules with the invariants alone, so rules an older HQ
/// published keep working until new ones replace them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RulesRecord", into = "RulesRecord")]
pub struct LoyaltyRules {
    earn_kopecks_per_point: i64,
    excluded_categories: BTreeSet<String>,
    max_share_percent: u8,
    point_value_kopecks: i64,
}

/// The serialised form: the fields HQ's API accepts, checked on the way in
/// (`LoyaltyRules::try_from` for the invariants, [`LoyaltyRules::publishable`] for all).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RulesRecord {
    pub earn_kopecks_per_point: i64,
    pub excluded_categories: Vec<String>,
    pub max_share_percent: u8,
    pub point_value_kopecks: i64,
}

impl TryFrom<RulesRecord> for LoyaltyRules {
    type Error = RulesError;

    fn try_from(r: RulesRecord) -> Result<Self, Self::Error> {
        LoyaltyRules::new(r.earn_kopecks_per_point, r.excluded_categories, r.max_share_percent, r.point_value_kopecks)
    }
}

impl From<LoyaltyRules> for RulesRecord {
    fn from(r: LoyaltyRules) -> Self {
        RulesRecord {
            earn_kopecks_per_point: r.earn_kopecks_per_point,
            excluded_categories: r.excluded_categories.into_iter().collect(),
            max_share_percent: r.max_share_percent,
            point_value_kopecks: r.point_value_kopecks,
        }
    }
}

impl Default for LoyaltyRules {
    /// The demo programme: 1 point per 10 RUB paid, a point is worth 1 RUB (10 %
    /// cashback), points pay up to half of a basket, and low-margin electronics earn
    /// nothing — a common rule, and one the demo catalog shows.
    fn default() -> Self {
        LoyaltyRules::new(1000, vec!["Электроника".into()], 50, 100).expect("the demo rules are valid")
    }
}

impl LoyaltyRules {
    /// `earn_kopecks_per_point`: money paid (not in points) per point earned.
    /// `excluded_categories`: catalog categories that neither earn nor may be paid in
    /// points, matched exactly. `max_share_percent`: the largest share of a basket's
    /// eligible amount payable in points. `point_value_kopecks`: what a point pays.
    ///
    /// A point may not be worth more than the money that earns it: with cashback above
    /// 100 % points would pay for more points, and the value is surely a typo.
    pub fn new(
        earn_kopecks_per_point: i64,
        excluded_categories: Vec<String>,
        max_share_percent: u8,
        point_value_kopecks: i64,
    ) -> Result<LoyaltyRules, RulesError> {
        if !(1..=EARN_KOPECKS_PER_POINT_MAX).contains(&earn_kopecks_per_point) {
            return Err(RulesError::EarnRate);
        }
        if !(1..=earn_kopecks_per_point).contains(&point_value_kopecks) {
            return Err(RulesError::PointValue);
        }
        if max_share_percent > SHARE_PERCENT_MAX {
            return Err(RulesError::Share);
        }
        if excluded_categories.len() > EXCLUDED_CATEGORIES_MAX {
            return Err(RulesError::TooManyCategories);
        }
        let mut set = BTreeSet::new();
        for c in excluded_categories {
            let ok = !c.is_empty()
                && c.trim() == c
                && c.chars().count() <= NAME_LEN_MAX_CHARS
                && !c.chars().any(char::is_control);
            if !ok || !set.insert(c) {
                return Err(RulesError::Category);
            }
        }
        Ok(LoyaltyRules { earn_kopecks_per_point, excluded_categories: set, max_share_percent, point_value_kopecks })
    }

    /// Rules HQ may publish: the invariants of [`LoyaltyRules::new`] and the sane retail
    /// bounds, cashback at most [`CASHBACK_PERCENT_MAX`] % and a point worth
    /// [`POINT_VALUE_KOPECKS_MIN`] to [`POINT_VALUE_KOPECKS_MAX`] kopecks.
    ///
    /// A point's value is checked against these bounds before the invariants, so that a
    /// refusal names the bound that applies (30 %, not the invariant's 100 %).
    pub fn publishable(record: RulesRecord) -> Result<LoyaltyRules, RulesError> {
        let earn = record.earn_kopecks_per_point;
        if (1..=EARN_KOPECKS_PER_POINT_MAX).contains(&earn) {
            check_bounds(earn, record.point_value_kopecks)?;
        }
        let rules = LoyaltyRules::try_from(record)?;
        rules.check_bounds()?;
        Ok(rules)
    }

    /// Whether these rules are within the sane bounds HQ publishes within.
    pub fn check_bounds(&self) -> Result<(), RulesError> {
        check_bounds(self.earn_kopecks_per_point, self.point_value_kopecks)
    }

    pub fn earn_kopecks_per_point(&self) -> i64 {
        self.earn_kopecks_per_point
    }

    pub fn point_value_kopecks(&self) -> i64 {
        self.point_value_kopecks
    }

    pub fn max_share_percent(&self) -> u8 {
        self.max_share_percent
    }

    pub fn excluded_categories(&self) -> impl Iterator<Item = &str> {
        self.excluded_categories.iter().map(String::as_str)
    }

    /// A line whose category is unknown (`None`) has none of the excluded ones.
    pub fn is_excluded(&self, category: Option<&str>) -> bool {
        category.is_some_and(|c| self.excluded_categories.contains(c))
    }

    /// Each line's eligible amount: what the customer pays for it, or 0 when its category
    /// is excluded. A (corrupt) negative line amount counts as 0.
    fn eligible_amounts<'c>(&self, lines: &[BasketLine], category_of: impl Fn(&Sku) -> Option<&'c str>) -> Vec<i64> {
        lines.iter().map(|l| if self.is_excluded(category_of(&l.sku)) { 0 } else { l.net().0.max(0) }).collect()
    }
}

/// The sane bounds on a point's value and on cashback, for `earn_kopecks_per_point` in
/// 1 to [`EARN_KOPECKS_PER_POINT_MAX`].
fn check_bounds(earn_kopecks_per_point: i64, point_value_kopecks: i64) -> Result<(), RulesError> {
    let (earn, value) = (earn_kopecks_per_point, point_value_kopecks);
    if !(POINT_VALUE_KOPECKS_MIN..=POINT_VALUE_KOPECKS_MAX).contains(&value) {
        return Err(RulesError::PointValueRange { point_value_kopecks: value });
    }
    // value / earn <= CASHBACK / 100, in integers (value is at most 1 000, earn 10^6).
    if value * 100 > earn * CASHBACK_PERCENT_MAX {
        return Err(RulesError::Cashback {
            point_value_kopecks: value,
            earn_kopecks_per_point: earn,
            earn_kopecks_per_point_min: (value * 100 + CASHBACK_PERCENT_MAX - 1) / CASHBACK_PERCENT_MAX,
        });
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PointsError {
    #[error("points and amounts must not be negative")]
    Negative,
    #[error("at most {max_points} points can pay for this basket")]
    OverShare { max_points: i64 },
    #[error("{paid} paid in points is more than the {eligible} that points may pay for")]
    OverEligible { paid: Kopecks, eligible: Kopecks },
    #[error("the amounts are too large")]
    Overflow,
    #[error("the loyalty record does not match the sale's lines")]
    Mismatch,
}

/// The value of `points`; `None` if negative or too large to be money.
pub fn points_to_kopecks(rules: &LoyaltyRules, points: i64) -> Option<Kopecks> {
    if points < 0 {
        return None;
    }
    points.checked_mul(rules.point_value_kopecks).map(Kopecks)
}

/// The part of a basket loyalty applies to: the lines whose category is not excluded.
pub fn eligible_total<'c>(
    rules: &LoyaltyRules,
    lines: &[BasketLine],
    category_of: impl Fn(&Sku) -> Option<&'c str>,
) -> Kopecks {
    Kopecks(saturate(rules.eligible_amounts(lines, category_of).iter().map(|&a| i128::from(a)).sum()))
}

/// The most points that may pay for a basket whose eligible amount is `eligible_total`:
/// points worth at most `max_share_percent` of it (rounded down to the kopeck, then to
/// whole points), and no more than the balance. Never negative.
pub fn max_redeemable_points(rules: &LoyaltyRules, eligible_total: Kopecks, balance_points: i64) -> i64 {
    let cap_kopecks = i128::from(eligible_total.0.max(0)) * i128::from(rules.max_share_percent) / 100;
    let cap_points = saturate(cap_kopecks / i128::from(rules.point_value_kopecks));
    cap_points.min(balance_points.max(0))
}

/// Points earned on a basket of which `paid_in_points` was paid in points: one point per
/// whole `earn_kopecks_per_point` of the eligible amount paid in money, rounded down
/// over the whole basket (not per line, so ten 9-rouble items earn as much as one
/// 90-rouble item). What points pay is spread over the eligible lines in proportion to
/// their amounts, so it never counts as money paid.
pub fn points_earned<'c>(
    rules: &LoyaltyRules,
    lines: &[BasketLine],
    category_of: impl Fn(&Sku) -> Option<&'c str>,
    paid_in_points: Kopecks,
) -> Result<i64, PointsError> {
    let eligible = rules.eligible_amounts(lines, category_of);
    let split = split(rules, &eligible, paid_in_points.0)?;
    Ok(split.iter().map(|l| l.earned_points).sum())
}

/// The loyalty part of a sale to `customer` in which `redeemed_points` pay for part of
/// the basket: the basket's points, line by line, as the sale record keeps them so that a
/// return can take back exactly what its lines earned, whatever the rules are by then.
///
/// Refuses more points than the share cap allows; whether the balance and the actor's
/// rights cover them is the account's business ([`super::LoyaltyAccount::apply_sale`]).
pub fn plan_sale<'c>(
    rules: &LoyaltyRules,
    customer: CustomerId,
    lines: &[BasketLine],
    category_of: impl Fn(&Sku) -> Option<&'c str>,
    redeemed_points: i64,
) -> Result<SaleLoyalty, PointsError> {
    if redeemed_points < 0 {
        return Err(PointsError::Negative);
    }
    let eligible = rules.eligible_amounts(lines, category_of);
    let eligible_total = Kopecks(saturate(eligible.iter().map(|&a| i128::from(a)).sum()));
    let max_points = max_redeemable_points(rules, eligible_total, i64::MAX);
    if redeemed_points > max_points {
        return Err(PointsError::OverShare { max_points });
    }
    let paid = points_to_kopecks(rules, redeemed_points).ok_or(PointsError::Overflow)?;
    Ok(SaleLoyalty {
        customer,
        point_value_kopecks: rules.point_value_kopecks,
        redeemed_points,
        lines: split(rules, &eligible, paid.0)?,
    })
}

/// Spreads `paid` (kopecks paid in points) over the eligible amounts, then the points
/// earned on what is left over the same lines; both by largest remainder, so the lines
/// add up exactly to the totals.
fn split(rules: &LoyaltyRules, eligible: &[i64], paid: i64) -> Result<Vec<LinePoints>, PointsError> {
    if paid < 0 {
        return Err(PointsError::Negative);
    }
    let eligible_total: i128 = eligible.iter().map(|&a| i128::from(a)).sum();
    if i128::from(paid) > eligible_total {
        return Err(PointsError::OverEligible { paid: Kopecks(paid), eligible: Kopecks(saturate(eligible_total)) });
    }
    let paid_shares = spread(paid, eligible).ok_or(PointsError::Overflow)?;
    let money: Vec<i64> = eligible.iter().zip(&paid_shares).map(|(a, p)| a - p).collect();
    let money_total: i128 = money.iter().map(|&m| i128::from(m)).sum();
    let earned =
        i64::try_from(money_total / i128::from(rules.earn_kopecks_per_point)).map_err(|_| PointsError::Overflow)?;
    let earned_shares = spread(earned, &money).ok_or(PointsError::Overflow)?;
    Ok(paid_shares
        .into_iter()
        .zip(earned_shares)
        .map(|(p, e)| LinePoints { paid_in_points: Kopecks(p), earned_points: e })
        .collect())
}

/// Sums of hostile records must not overflow: they are taken in `i128` and clamped.
pub(super) fn saturate(x: i128) -> i64 {
    i64::try_from(x).unwrap_or(if x < 0 { i64::MIN } else { i64::MAX })
}

/// The loyalty part of a sale record: who the customer was, what points paid, and what
/// each line earned.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SaleLoyalty {
    pub customer: CustomerId,
    /// The value of a point at the sale; a return gives redeemed points back at it.
    pub point_value_kopecks: i64,
    /// Points that paid for part of the basket (worth `redeemed × point value`).
    pub redeemed_points: i64,
    /// One per line of the sale, in the same order.
    pub lines: Vec<LinePoints>,
}

/// What points paid for one line, and what the line earned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinePoints {
    /// This line's share of the amount paid in points.
    pub paid_in_points: Kopecks,
    pub earned_points: i64,
}

impl SaleLoyalty {
    pub fn earned_points(&self) -> i64 {
        saturate(self.lines.iter().map(|l| i128::from(l.earned_points)).sum())
    }

    /// The amount paid in points: a tender of the sale, like cash or card.
    pub fn paid_in_points(&self) -> Kopecks {
        Kopecks(saturate(self.lines.iter().map(|l| i128::from(l.paid_in_points.0)).sum()))
    }

    /// Checks the record against the sale's lines. HQ cannot recompute the points
    /// without the rules and catalog of the moment, but it can refuse a record that does
    /// not add up or that mints more than 100 % cashback, which no valid rules allow.
    pub fn validate(&self, sale_lines: &[BasketLine]) -> Result<(), PointsError> {
        let n = sale_lines.len();
        if self.lines.len() != n || self.point_value_kopecks < 1 || self.redeemed_points < 0 {
            return Err(PointsError::Mismatch);
        }
        let mut paid: i128 = 0;
        let mut money: i128 = 0;
        let mut earned: i128 = 0;
        for (l, s) in self.lines.iter().zip(sale_lines) {
            let net = s.net().0;
            if l.paid_in_points.0 < 0 || l.earned_points < 0 || l.paid_in_points.0 > net {
                return Err(PointsError::Mismatch);
            }
            paid += i128::from(l.paid_in_points.0);
            money += i128::from(net - l.paid_in_points.0);
            earned += i128::from(l.earned_points);
        }
        let redeemed_value = i128::from(self.redeemed_points) * i128::from(self.point_value_kopecks);
        if paid != redeemed_value || earned * i128::from(self.point_value_kopecks) > money {
            return Err(PointsError::Mismatch);
        }
        Ok(())
    }
}

/// The points of a return with a receipt, before the account is consulted.
///
/// For each returned line, over all the partial returns of a sale, with `R` the line's
/// refunded amount so far (cumulative) and `net` what was paid for it:
/// - points taken back so far: `⌈earned × R / net⌉`, so what the customer keeps,
///   `⌊earned × (net − R) / net⌋`, is rounded down exactly like earning, and a fully
///   returned line takes back exactly what it earned;
/// - kopecks of the refund that were paid in points: `⌊paid_in_points × R / net⌋`,
///   summed over the sale's lines; the points given back so far are that sum divided by
///   the sale's point value, rounded down. A partial return may thus leave less than a
///   point's worth for the next return; the last return settles it exactly.
///
/// Each return gets the difference between the cumulative values after and before it,
/// so no sequence of partial returns takes or gives back more than the sale earned or
/// redeemed, and refunds in money never exceed what was paid in money.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReturnPoints {
    pub customer: CustomerId,
    pub point_value_kopecks: i64,
    /// Points the returned lines earned, to take back.
    pub take_back: i64,
    /// Points that paid for the returned lines, to give back.
    pub give_back: i64,
    /// The part of the returned amount that was paid in points: not refunded in money.
    pub paid_in_points: Kopecks,
}

/// Works out [`ReturnPoints`] for returning `lines` (from [`crate::returns::plan`]) of a
/// sale with `loyalty`, given what was already returned of it. Lines without a sale
/// line (returns without a receipt) carry no points.
pub fn plan_return(
    loyalty: &SaleLoyalty,
    sale_lines: &[BasketLine],
    returned_before: &Returned,
    lines: &[ReturnLine],
) -> Result<ReturnPoints, PointsError> {
    loyalty.validate(sale_lines)?;
    let before: Vec<i64> = (0..sale_lines.len())
        .map(|i| returned_before.get(i).map_or(0, |r| r.1 .0).clamp(0, sale_lines[i].net().0))
        .collect();
    let mut after = before.clone();
    for l in lines {
        let Some(i) = l.sale_line else { continue };
        let i = usize::try_from(i).map_err(|_| PointsError::Mismatch)?;
        let a = after.get_mut(i).ok_or(PointsError::Mismatch)?;
        *a = a.saturating_add(l.amount.0.max(0)).min(sale_lines[i].net().0);
    }
    let mut take_back = 0i64;
    let (mut pk_before, mut pk_after) = (0i128, 0i128);
    for (i, s) in sale_lines.iter().enumerate() {
        let net = i128::from(s.net().0);
        if net <= 0 {
            continue; // a free line earned nothing and was paid for by nothing
        }
        let lp = &loyalty.lines[i];
        let (r0, r1) = (i128::from(before[i]), i128::from(after[i]));
        let taken = |r: i128| div_ceil(i128::from(lp.earned_points) * r, net);
        take_back += i64::try_from(taken(r1) - taken(r0)).map_err(|_| PointsError::Overflow)?;
        pk_before += i128::from(lp.paid_in_points.0) * r0 / net;
        pk_after += i128::from(lp.paid_in_points.0) * r1 / net;
    }
    let pv = i128::from(loyalty.point_value_kopecks);
    Ok(ReturnPoints {
        customer: loyalty.customer.clone(),
        point_value_kopecks: loyalty.point_value_kopecks,
        take_back,
        give_back: i64::try_from(pk_after / pv - pk_before / pv).map_err(|_| PointsError::Overflow)?,
        paid_in_points: Kopecks(i64::try_from(pk_after - pk_before).map_err(|_| PointsError::Overflow)?),
    })
}

fn div_ceil(n: i128, d: i128) -> i128 {
    debug_assert!(n >= 0 && d > 0);
    (n + d - 1) / d
}

impl ReturnPoints {
    /// Rights the returning actor needs to take the points back without touching the
    /// refund: online, ask HQ for what it lacks before settling.
    pub fn rights_needed(&self) -> i64 {
        (self.take_back - self.give_back).max(0)
    }

    /// Settles the return with the rights the returning actor holds (`rights_here`).
    /// Given-back points first cover the taken-back ones; what is left over is earned,
    /// what is missing is spent from the actor's rights. Take-backs beyond those rights
    /// (the customer already spent the points, or, offline, they are held elsewhere) are
    /// paid for by deducting their value at the sale's point value from the money
    /// refund.
    ///
    /// A deduction never exceeds the money refund. One point may be worth more than the
    /// money for one returned item (cheap items, high cashback), so what a refund cannot
    /// cover is carried as `owed` and deducted from the sale's next return: pass the
    /// `owed` of the sale's previous return as `owed_before` (zero for the first). What
    /// is still owed when the customer returns nothing more is forgiven; the sale's
    /// cashback cap (≤ 100 %) bounds it by rounding, `(2 × lines + 1)` points' worth.
    pub fn settle(&self, return_total: Kopecks, rights_here: i64, owed_before: Kopecks) -> ReturnLoyalty {
        let net = self.give_back - self.take_back;
        let (earn, missing) = if net >= 0 { (net, 0) } else { (0, -net) };
        let spend = missing.min(rights_here.max(0));
        let shortfall = missing - spend;
        let money = (return_total.0 - self.paid_in_points.0).max(0);
        let owed = i128::from(owed_before.0.max(0)) + i128::from(shortfall) * i128::from(self.point_value_kopecks);
        let deducted = saturate(owed.min(i128::from(money)));
        ReturnLoyalty {
            customer: self.customer.clone(),
            take_back: self.take_back,
            give_back: self.give_back,
            earn,
            spend,
            shortfall,
            deducted: Kopecks(deducted),
            owed: Kopecks(saturate(owed - i128::from(deducted))),
            money_refund: Kopecks(money - deducted),
        }
    }
}

/// The loyalty part of a return record: what the return did to the customer's points
/// and to the money refunded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReturnLoyalty {
    pub customer: CustomerId,
    pub take_back: i64,
    pub give_back: i64,
    /// Points the returning actor earns: give-backs beyond take-backs.
    pub earn: i64,
    /// Points the returning actor spends from its rights: take-backs beyond give-backs.
    pub spend: i64,
    /// Take-backs the actor's rights did not cover, paid for by `deducted`.
    pub shortfall: i64,
    /// Money kept back from the refund for `shortfall` and for what earlier returns of
    /// the sale still owed.
    pub deducted: Kopecks,
    /// Value of take-backs not yet paid for, carried to the sale's next return.
    pub owed: Kopecks,
    /// What is refunded in money: the return's total less what points paid for, less
    /// `deducted`. Pass this to [`crate::returns::refund_tenders`].
    pub money_refund: Kopecks,
}

#[cfg(test)]
mod bounds_tests {
    use super::*;

    fn record(earn: i64, share: u8, value: i64) -> RulesRecord {
        RulesRecord {
            earn_kopecks_per_point: earn,
            excluded_categories: vec![],
            max_share_percent: share,
            point_value_kopecks: value,
        }
    }

    #[test]
    fn publishable_rules_are_within_the_sane_bounds() {
        // 1 point per 10 RUB worth 1 RUB: 10 %. Exactly 30 %: 1 point per 3.34 RUB
        // worth 1 RUB is 29.94 %, per 3.33 RUB is 30.03 %.
        assert!(LoyaltyRules::publishable(record(1000, 50, 100)).is_ok());
        assert!(LoyaltyRules::publishable(record(334, 100, 100)).is_ok());
        assert!(LoyaltyRules::publishable(record(10, 0, 3)).is_ok());
        assert!(LoyaltyRules::default().check_bounds().is_ok());
        assert_eq!(
            LoyaltyRules::publishable(record(333, 50, 100)),
            Err(RulesError::Cashback {
                point_value_kopecks: 100,
                earn_kopecks_per_point: 333,
                earn_kopecks_per_point_min: 334
            })
        );
        // 100 % cashback: a valid rule set arithmetically, but not published.
        let full = LoyaltyRules::new(100, vec![], 50, 100).unwrap();
        assert!(matches!(full.check_bounds(), Err(RulesError::Cashback { .. })));
        assert!(matches!(LoyaltyRules::publishable(record(100, 50, 100)), Err(RulesError::Cashback { .. })));
        // A point worth more than 10 RUB, however much earns it.
        let dear = POINT_VALUE_KOPECKS_MAX + 1;
        assert_eq!(
            LoyaltyRules::publishable(record(EARN_KOPECKS_PER_POINT_MAX, 50, dear)),
            Err(RulesError::PointValueRange { point_value_kopecks: dear })
        );
        assert!(LoyaltyRules::publishable(record(EARN_KOPECKS_PER_POINT_MAX, 50, POINT_VALUE_KOPECKS_MAX)).is_ok());
        // The other invariants, with their own errors.
        assert_eq!(LoyaltyRules::publishable(record(0, 50, 1)), Err(RulesError::EarnRate));
        assert_eq!(LoyaltyRules::publishable(record(EARN_KOPECKS_PER_POINT_MAX + 1, 50, 1)), Err(RulesError::EarnRate));
        assert_eq!(LoyaltyRules::publishable(record(1000, 101, 100)), Err(RulesError::Share));
        // A point's value is held to the publishing bounds first: the refusal names them.
        for value in [0, -5, 2000, i64::MAX] {
            let refused = LoyaltyRules::publishable(record(1000, 50, value));
            assert_eq!(refused, Err(RulesError::PointValueRange { point_value_kopecks: value }));
        }
        assert!(matches!(LoyaltyRules::publishable(record(50, 50, 100)), Err(RulesError::Cashback { .. })));
        assert_eq!(LoyaltyRules::new(50, vec![], 50, 100), Err(RulesError::PointValue), "the invariant alone");
        // Messages say what the bound is.
        let msg = LoyaltyRules::publishable(record(100, 50, 100)).unwrap_err().to_string();
        assert!(msg.contains("30 %") && msg.contains("334"), "{msg}");
        let msg = RulesError::PointValueRange { point_value_kopecks: 5000 }.to_string();
        assert!(msg.contains("1000 kopecks") && msg.contains("5000"), "{msg}");
    }

    #[test]
    fn rules_outside_the_bounds_still_load() {
        // Published by an older HQ: stores and HQ keep computing with them.
        let bytes = postcard::to_allocvec(&record(100, 100, 100)).unwrap();
        let rules: LoyaltyRules = postcard::from_bytes(&bytes).unwrap();
        assert!(rules.check_bounds().is_err());
    }
}
