//! The bounded counter (escrow) of one customer's points.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::customer::CustomerId;
use super::rules::{max_redeemable_points, saturate, LoyaltyRules, ReturnLoyalty, SaleLoyalty};
use crate::ids::ActorId;
use crate::money::Kopecks;

/// Largest running total: 10^15 points is 10^16 RUB at a point per 10 RUB, far beyond
/// any customer; a total above it is corrupt or hostile and is refused, so no sum of
/// totals comes near overflow.
pub const POINTS_TOTAL_MAX: i64 = 1_000_000_000_000_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    #[error("an operation needs a positive number of points")]
    NonPositive,
    #[error("{actor} holds the rights to {rights} points, not {wanted}")]
    Insufficient { actor: ActorId, rights: i64, wanted: i64 },
    #[error("a transfer needs two different actors")]
    SelfTransfer,
    #[error("a running total would exceed {POINTS_TOTAL_MAX} points")]
    TooLarge,
    #[error("a record of customer {record} cannot apply to the account of {account}")]
    OtherCustomer { account: CustomerId, record: CustomerId },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    #[error("an entry of customer {entry} cannot merge into the account of {account}")]
    OtherCustomer { account: CustomerId, entry: CustomerId },
    #[error("a running total must be 0 to {POINTS_TOTAL_MAX} points, found {0}")]
    Total(i64),
    #[error("a transfer needs two different actors")]
    SelfTransfer,
    #[error("{actor} may not write an entry that {writer} owns")]
    Foreign { actor: ActorId, writer: ActorId },
}

/// Which running total an entry is. Each has exactly one writer ([`EntryKind::writer`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum EntryKind {
    /// Points `actor` credited (sales, given-back points on returns).
    Earned { actor: ActorId },
    /// Points `actor` debited (redemptions, taken-back points on returns).
    Spent { actor: ActorId },
    /// Rights `from` handed to `to`.
    Transfer { from: ActorId, to: ActorId },
}

impl EntryKind {
    /// The key of the total as stored in a table: `(kind, actor, to)`, where `actor` is
    /// the writer and `to` the receiving actor of a transfer (the zero actor otherwise).
    pub fn to_columns(self) -> (&'static str, ActorId, ActorId) {
        let none = ActorId { store: crate::StoreId(0), epoch: 0 };
        match self {
            EntryKind::Earned { actor } => ("earned", actor, none),
            EntryKind::Spent { actor } => ("spent", actor, none),
            EntryKind::Transfer { from, to } => ("transfer", from, to),
        }
    }

    /// The reverse of [`EntryKind::to_columns`]; `None` for an unknown kind.
    pub fn from_columns(kind: &str, actor: ActorId, to: ActorId) -> Option<EntryKind> {
        match kind {
            "earned" => Some(EntryKind::Earned { actor }),
            "spent" => Some(EntryKind::Spent { actor }),
            "transfer" => Some(EntryKind::Transfer { from: actor, to }),
            _ => None,
        }
    }

    /// The only actor that may raise this total.
    pub fn writer(self) -> ActorId {
        match self {
            EntryKind::Earned { actor } | EntryKind::Spent { actor } => actor,
            EntryKind::Transfer { from, .. } => from,
        }
    }
}

/// One running total of one customer's account: the unit of replication. Merging is
/// `max` per (customer, kind), exactly an SQL upsert with `MAX` like stock counters:
/// `INSERT … ON CONFLICT (customer, kind, actor, to_actor) DO UPDATE SET total =
/// MAX(total, excluded.total)`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LoyaltyEntry {
    pub customer: CustomerId,
    pub kind: EntryKind,
    pub total: i64,
}

impl LoyaltyEntry {
    pub fn writer(&self) -> ActorId {
        self.kind.writer()
    }

    /// What holds regardless of the account: a total in range, no transfer to oneself.
    pub fn check(&self) -> Result<(), EntryError> {
        if !(0..=POINTS_TOTAL_MAX).contains(&self.total) {
            return Err(EntryError::Total(self.total));
        }
        if let EntryKind::Transfer { from, to } = self.kind {
            if from == to {
                return Err(EntryError::SelfTransfer);
            }
        }
        Ok(())
    }
}

/// Checks that `actor` wrote every one of `entries`: HQ refuses a store's batch that
/// carries another actor's totals, as it does for stock counters.
pub fn check_written_by(actor: ActorId, entries: &[LoyaltyEntry]) -> Result<(), EntryError> {
    for e in entries {
        e.check()?;
        if e.writer() != actor {
            return Err(EntryError::Foreign { actor, writer: e.writer() });
        }
    }
    Ok(())
}

/// One customer's points as a bounded counter: per actor running totals of points
/// earned and spent, and a matrix of running totals of spending rights handed from one
/// actor to another. All grow only; see the module documentation for the rules.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "AccountRecord", into = "AccountRecord")]
pub struct LoyaltyAccount {
    customer: CustomerId,
    /// Keyed by kind, so iteration (and so `entries`) is deterministic.
    totals: BTreeMap<EntryKind, i64>,
}

/// The serialised form: the entries, checked on the way in.
#[derive(Clone, Serialize, Deserialize)]
struct AccountRecord {
    customer: CustomerId,
    totals: Vec<(EntryKind, i64)>,
}

impl TryFrom<AccountRecord> for LoyaltyAccount {
    type Error = EntryError;

    fn try_from(r: AccountRecord) -> Result<Self, Self::Error> {
        let mut a = LoyaltyAccount::new(r.customer);
        for (kind, total) in r.totals {
            a.merge_entry(&LoyaltyEntry { customer: a.customer.clone(), kind, total })?;
        }
        Ok(a)
    }
}

impl From<LoyaltyAccount> for AccountRecord {
    fn from(a: LoyaltyAccount) -> Self {
        AccountRecord { customer: a.customer, totals: a.totals.into_iter().collect() }
    }
}

impl LoyaltyAccount {
    pub fn new(customer: CustomerId) -> Self {
        LoyaltyAccount { customer, totals: BTreeMap::new() }
    }

    pub fn customer(&self) -> &CustomerId {
        &self.customer
    }

    /// One running total; 0 if never written.
    pub fn total(&self, kind: EntryKind) -> i64 {
        self.totals.get(&kind).copied().unwrap_or(0)
    }

    /// The points `actor` may spend or hand on: `earned + received − spent − given`.
    /// Negative only in a view that holds an actor's spending but not yet the transfer
    /// that allowed it; see the module documentation.
    pub fn rights(&self, actor: ActorId) -> i64 {
        let mut r: i128 = 0;
        for (kind, &total) in &self.totals {
            let t = i128::from(total);
            match *kind {
                EntryKind::Earned { actor: a } if a == actor => r += t,
                EntryKind::Spent { actor: a } if a == actor => r -= t,
                EntryKind::Transfer { from, .. } if from == actor => r -= t,
                EntryKind::Transfer { to, .. } if to == actor => r += t,
                _ => {}
            }
        }
        saturate(r)
    }

    /// Every actor that appears in the account with the rights it holds, in actor
    /// order: HQ's "rights held per store".
    pub fn holders(&self) -> Vec<(ActorId, i64)> {
        let mut actors: Vec<ActorId> = self
            .totals
            .keys()
            .flat_map(|k| match *k {
                EntryKind::Earned { actor } | EntryKind::Spent { actor } => [actor, actor],
                EntryKind::Transfer { from, to } => [from, to],
            })
            .collect();
        actors.sort();
        actors.dedup();
        actors.into_iter().map(|a| (a, self.rights(a))).collect()
    }

    /// Actors whose rights are negative in this view. Empty in any view built from
    /// whole accounts (see the module documentation); HQ reports anything else.
    pub fn overdrawn(&self) -> Vec<(ActorId, i64)> {
        self.holders().into_iter().filter(|&(_, r)| r < 0).collect()
    }

    pub fn earned_total(&self) -> i64 {
        self.sum(|k| matches!(k, EntryKind::Earned { .. }))
    }

    pub fn spent_total(&self) -> i64 {
        self.sum(|k| matches!(k, EntryKind::Spent { .. }))
    }

    /// `Σ earned − Σ spent`, which is also the sum of every actor's rights (transfers
    /// cancel out).
    pub fn balance(&self) -> i64 {
        saturate(i128::from(self.earned_total()) - i128::from(self.spent_total()))
    }

    fn sum(&self, pick: impl Fn(&EntryKind) -> bool) -> i64 {
        saturate(self.totals.iter().filter(|(k, _)| pick(k)).map(|(_, &t)| i128::from(t)).sum())
    }

    /// `actor` credits `points` (a sale's earnings, points given back on a return).
    /// Returns the new entry for the outbox.
    pub fn earn(&mut self, actor: ActorId, points: i64) -> Result<LoyaltyEntry, AccountError> {
        self.raise(EntryKind::Earned { actor }, points)
    }

    /// `actor` debits `points` from the rights it holds, or changes nothing.
    pub fn spend(&mut self, actor: ActorId, points: i64) -> Result<LoyaltyEntry, AccountError> {
        self.check_rights(actor, points)?;
        self.raise(EntryKind::Spent { actor }, points)
    }

    /// `from` hands `points` of the rights it holds to `to`, or changes nothing.
    pub fn transfer(&mut self, from: ActorId, to: ActorId, points: i64) -> Result<LoyaltyEntry, AccountError> {
        if from == to {
            return Err(AccountError::SelfTransfer);
        }
        self.check_rights(from, points)?;
        self.raise(EntryKind::Transfer { from, to }, points)
    }

    /// `actor` hands every right it holds beyond `keep_points` to `to` (a store handing
    /// spare rights to HQ). `None` when there is nothing to hand over.
    pub fn hand_over(&mut self, actor: ActorId, to: ActorId, keep_points: i64) -> Option<LoyaltyEntry> {
        let spare = self.rights(actor).saturating_sub(keep_points.max(0));
        (spare > 0 && actor != to).then(|| self.transfer(actor, to, spare).expect("within the actor's rights"))
    }

    /// Records a sale at `actor`: spends the redeemed points, then earns the sale's
    /// points, all or nothing. Returns the new entries for the outbox (none for a sale
    /// that neither redeems nor earns).
    pub fn apply_sale(&mut self, actor: ActorId, sale: &SaleLoyalty) -> Result<Vec<LoyaltyEntry>, AccountError> {
        self.check_customer(&sale.customer)?;
        self.apply(actor, sale.redeemed_points, sale.earned_points())
    }

    /// Records a settled return at `actor`: spends `spend`, earns `earn` (at most one of
    /// them is non-zero), all or nothing.
    pub fn apply_return(&mut self, actor: ActorId, ret: &ReturnLoyalty) -> Result<Vec<LoyaltyEntry>, AccountError> {
        self.check_customer(&ret.customer)?;
        self.apply(actor, ret.spend, ret.earn)
    }

    fn check_customer(&self, record: &CustomerId) -> Result<(), AccountError> {
        if record != &self.customer {
            return Err(AccountError::OtherCustomer { account: self.customer.clone(), record: record.clone() });
        }
        Ok(())
    }

    fn apply(&mut self, actor: ActorId, spend: i64, earn: i64) -> Result<Vec<LoyaltyEntry>, AccountError> {
        if spend < 0 || earn < 0 {
            return Err(AccountError::NonPositive);
        }
        if spend > 0 {
            self.check_rights(actor, spend)?;
        }
        if earn > 0 && self.total(EntryKind::Earned { actor }).checked_add(earn).is_none_or(|t| t > POINTS_TOTAL_MAX) {
            return Err(AccountError::TooLarge);
        }
        let mut out = Vec::new();
        if spend > 0 {
            out.push(self.spend(actor, spend)?);
        }
        if earn > 0 {
            out.push(self.earn(actor, earn)?);
        }
        Ok(out)
    }

    fn check_rights(&self, actor: ActorId, points: i64) -> Result<(), AccountError> {
        if points <= 0 {
            return Err(AccountError::NonPositive);
        }
        let rights = self.rights(actor);
        if points > rights {
            return Err(AccountError::Insufficient { actor, rights, wanted: points });
        }
        Ok(())
    }

    fn raise(&mut self, kind: EntryKind, points: i64) -> Result<LoyaltyEntry, AccountError> {
        if points <= 0 {
            return Err(AccountError::NonPositive);
        }
        let total =
            self.total(kind).checked_add(points).filter(|&t| t <= POINTS_TOTAL_MAX).ok_or(AccountError::TooLarge)?;
        self.totals.insert(kind, total);
        Ok(LoyaltyEntry { customer: self.customer.clone(), kind, total })
    }

    /// Every running total as an entry, in a deterministic order.
    pub fn entries(&self) -> Vec<LoyaltyEntry> {
        self.totals
            .iter()
            .map(|(&kind, &total)| LoyaltyEntry { customer: self.customer.clone(), kind, total })
            .collect()
    }

    /// The entries `actor` writes: what a store sends in its outbox.
    pub fn entries_written_by(&self, actor: ActorId) -> Vec<LoyaltyEntry> {
        self.entries().into_iter().filter(|e| e.writer() == actor).collect()
    }

    /// Merges one running total: keeps the larger. Returns whether anything changed.
    pub fn merge_entry(&mut self, e: &LoyaltyEntry) -> Result<bool, EntryError> {
        if e.customer != self.customer {
            return Err(EntryError::OtherCustomer { account: self.customer.clone(), entry: e.customer.clone() });
        }
        e.check()?;
        if e.total <= self.total(e.kind) {
            return Ok(false);
        }
        // A zero total is never stored: absent means 0, so equal accounts compare equal.
        self.totals.insert(e.kind, e.total);
        Ok(true)
    }

    /// Merges another replica of the same customer's account: `max` per entry.
    pub fn merge(&mut self, other: &LoyaltyAccount) -> Result<(), EntryError> {
        if other.customer != self.customer {
            return Err(EntryError::OtherCustomer { account: self.customer.clone(), entry: other.customer.clone() });
        }
        for (&kind, &total) in &other.totals {
            if total > self.total(kind) {
                self.totals.insert(kind, total);
            }
        }
        Ok(())
    }
}

/// What the till tells the cashier about paying with points, and what it may ask HQ
/// for while online.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedeemOffer {
    /// The customer's balance as this replica knows it.
    pub balance: i64,
    /// The most points the rules allow for this basket: the share cap, and the balance.
    pub allowed: i64,
    /// Rights this actor holds: what it can spend without asking anyone.
    pub rights_here: i64,
    /// What can be spent now: `allowed`, limited by `rights_here`.
    pub spendable_now: i64,
    /// The largest share of the basket payable in points, for the message.
    pub max_share_percent: u8,
    /// Value of one point.
    pub point_value: Kopecks,
}

impl RedeemOffer {
    /// Points the rules allow that this actor does not hold: what to ask HQ for while
    /// online; offline, the reason `spendable_now` is less than `allowed`.
    pub fn missing(&self) -> i64 {
        self.allowed - self.spendable_now
    }
}

/// The offer for a basket whose eligible amount is `eligible_total`, at `actor`, from
/// this replica of the account. Offline this is final: the till says
/// "342 of 500 points can be spent while offline" (`spendable_now` of `balance`).
/// Online the till first asks HQ for [`RedeemOffer::missing`] and offers again.
pub fn offline_offer(
    rules: &LoyaltyRules,
    account: &LoyaltyAccount,
    actor: ActorId,
    eligible_total: Kopecks,
) -> RedeemOffer {
    let balance = account.balance().max(0);
    let allowed = max_redeemable_points(rules, eligible_total, balance);
    let rights_here = account.rights(actor).max(0);
    RedeemOffer {
        balance,
        allowed,
        rights_here,
        spendable_now: allowed.min(rights_here),
        max_share_percent: rules.max_share_percent(),
        point_value: Kopecks(rules.point_value_kopecks()),
    }
}

/// What limits an offer below the customer's balance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OfferLimit {
    /// Nothing: the whole balance can be spent.
    None,
    /// The rules: points pay at most a share of the basket.
    ShareCap,
    /// The rights held here, HQ out of reach.
    Offline,
    /// The rights held here: HQ answered, the rest is held by stores it cannot reach.
    HeldElsewhere,
}

impl OfferLimit {
    /// The stable code the page turns into words.
    pub fn code(self) -> &'static str {
        match self {
            OfferLimit::None => "none",
            OfferLimit::ShareCap => "share_cap",
            OfferLimit::Offline => "offline",
            OfferLimit::HeldElsewhere => "held_elsewhere",
        }
    }
}

impl RedeemOffer {
    /// What limits the offer. `offline`: HQ could not be asked (or did not answer in
    /// time), so the limit is the rights held here.
    pub fn limit(&self, offline: bool) -> OfferLimit {
        if self.spendable_now < self.allowed {
            if offline {
                OfferLimit::Offline
            } else {
                OfferLimit::HeldElsewhere
            }
        } else if self.allowed < self.balance {
            OfferLimit::ShareCap
        } else {
            OfferLimit::None
        }
    }

    /// The sentence for the cashier (in English: logs, refusals' messages), naming what
    /// limits the offer ([`RedeemOffer::limit`]).
    pub fn message(&self, offline: bool) -> String {
        let (n, b) = (self.spendable_now, self.balance);
        match self.limit(offline) {
            OfferLimit::Offline => format!("{n} of {b} points can be spent while offline"),
            OfferLimit::HeldElsewhere => {
                format!("{n} of {b} points can be spent now: the rest is held by stores HQ cannot reach")
            }
            OfferLimit::ShareCap => {
                format!(
                    "{n} of {b} points can be spent: points pay at most {} % of this basket",
                    self.max_share_percent
                )
            }
            OfferLimit::None => format!("{n} of {b} points can be spent"),
        }
    }
}
