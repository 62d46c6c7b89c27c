//! Loyalty points: one card, every store, earn and spend anywhere, and never spend a
//! point twice, even offline.
//!
//! The principal type is [`LoyaltyAccount`], one customer's points as a **bounded
//! counter** (escrow), after Antidote's bounded counter (Balegas et al., "Extending
//! eventually consistent cloud databases for enforcing numeric invariants", 2015). The
//! rules that turn baskets into points are in [`rules`]; both are used identically by
//! the stores and HQ, so every channel computes the same points.
//!
//! # The model: spending rights
//! Every actor (a store install, or HQ) keeps per customer running totals of points it
//! has **earned** and **spent**, and of the spending **rights** it has handed to each
//! other actor. All totals only grow. An actor's rights are
//!
//! ```text
//! rights(a) = earned(a) + Σ received by a − spent(a) − Σ given by a
//! balance   = Σ earned − Σ spent            (= Σ rights: transfers cancel out)
//! ```
//!
//! An actor spends, or hands on, only within its own rights; an operation that would
//! exceed them is refused and changes nothing. No actor ever decides on another's
//! rights, so there is nothing to agree on, and no double spend is possible offline:
//! - an actor is the only writer of its earned, spent and given totals, so it always
//!   knows them exactly; what it has received it may learn late, never more than it is.
//!   Its own view of its rights is therefore never more than its true rights, and
//!   spending within that view never overdraws;
//! - every actor's rights stay ≥ 0, so `Σ spent = Σ earned − Σ rights ≤ Σ earned`: two
//!   stores cut off from each other can each spend all they hold, and after they meet
//!   again the customer has still spent no more than was earned.
//!
//! **Architecture invariant:** each actor's totals have a single writer. At a store that
//! is the journal's transaction; at HQ, grants from HQ's actor are serialised by one
//! database transaction (or every HQ node is an actor of its own).
//!
//! ## Where rights live
//! Points earned at a store are that store's rights. Online, a store hands HQ the rights
//! it does not need to keep ([`LoyaltyAccount::hand_over`]) and asks HQ for the rights a
//! redemption needs ([`RightsRequest`], answered by [`answer_rights_request`] from the
//! rights HQ holds). Offline, a store redeems up to what it holds and says so plainly:
//! [`offline_offer`] gives the till "342 of 500 points can be spent while offline".
//! A grant that arrives after the till gave up waiting is not lost: rights only move,
//! and the store keeps them for the next redemption.
//!
//! ## Replication
//! Each running total is one [`LoyaltyEntry`]; merging is `max` per entry, exactly an
//! SQL upsert with `MAX`, like stock counters. Merges commute, so entries may be resent
//! and applied in any order. Stores exchange entries with HQ only: a store's outbox
//! carries its own totals in order, and HQ holds every transfer it wrote, so every view
//! built from whole accounts shows no actor below zero. A view merged from loose entries
//! may show for a while an actor spending rights whose transfer it has not yet seen
//! ([`LoyaltyAccount::overdrawn`]); that is staleness, never an overspend.
//!
//! # Rules
//! [`LoyaltyRules`], published by HQ with the catalog: money per point earned, excluded
//! categories, the largest share of a basket payable in points, the value of a point
//! (at most the money that earns it: cashback ≤ 100 %). Integers only:
//! - **Eligible amount**: what is paid for the lines whose category is not excluded.
//!   Excluded categories neither earn nor may be paid in points.
//! - **Redeem**: at most `⌊⌊eligible × share / 100⌋ / point value⌋` points, and no more
//!   than the balance ([`max_redeemable_points`]). What points pay is spread over the
//!   eligible lines in proportion to their amounts (largest remainder, exact to the
//!   kopeck).
//! - **Earn**: `⌊(eligible − paid in points) / money per point⌋` over the whole basket
//!   (rounded down once, not per line), spread over the lines in proportion to the money
//!   paid for each. The sale records both per line ([`SaleLoyalty`]) so that a return
//!   takes back exactly what its lines earned, whatever the rules are by then. At the
//!   sale the actor first spends the redeemed points, then earns
//!   ([`LoyaltyAccount::apply_sale`]).
//!
//! # Returns
//! Over all the partial returns of a sale, with `R` a line's refunded amount so far
//! ([`plan_return`]): points taken back `⌈earned × R / net⌉` (the customer keeps the
//! rounded-down rest, as when earning); points given back, for what points paid,
//! `⌊Σ ⌊paid_in_points × R / net⌋ / point value⌋`. Each return takes the difference of
//! these cumulative amounts, so no sequence of partial returns takes or gives back more
//! than the sale earned or redeemed, and a full return settles exactly. The part paid in
//! points is refunded as points, never as money.
//!
//! **When the points were already spent** ([`ReturnPoints::settle`]): given-back points
//! first cover taken-back ones; the rest is spent from the returning actor's rights
//! (online, after asking HQ for what it lacks). What the rights cannot cover — points
//! the customer already spent, or, offline, points held by other stores — is paid for by
//! deducting its value, at the sale's point value, from the money refund. The balance
//! never goes below zero and there is no debt to collect at other stores: the customer
//! keeps those points (if still unspent) and has paid for them, so no value is lost on
//! either side. One point may be worth more than the money for one returned item, so
//! what a refund cannot cover is carried to the sale's next return; cashback ≤ 100 %
//! bounds what is left if none follows to `(2 × lines + 1)` points' worth of rounding.
//! We chose this over a debt counter because a debt must be collected from future
//! earnings at any store — a second bounded counter, in reverse — and a customer who
//! never comes back would leave the loss with the store.
//!
//! # The wire (intended)
//! [`wire`](crate::wire) does not carry loyalty yet; adding its variants would break
//! exhaustive matches in `agent` and `hq`. The intended additions: `Change::Sale` and
//! `Change::Return` gain the loyalty entries they changed, beside their stock counters;
//! `Change::Loyalty { entries }` carries hand-overs; `StoreMessage::RightsRequest`,
//! `HqMessage::Rights(RightsAnswer)` and `HqMessage::Loyalty { entries }` (HQ's pushes);
//! `HqSync::check_ownership` calls [`check_written_by`] on every entry from a store.

mod account;
mod customer;
mod messages;
pub mod rules;

pub use account::{
    check_written_by, offline_offer, AccountError, EntryError, EntryKind, LoyaltyAccount, LoyaltyEntry, OfferLimit,
    RedeemOffer, POINTS_TOTAL_MAX,
};
pub use customer::{Customer, CustomerError, CustomerId, Phone, NAME_LEN_MAX_CHARS};
pub use messages::{
    answer_rights_request, RightsAnswer, RightsGrant, RightsRequest, LOYALTY_ENTRIES_PAGE_MAX, RIGHTS_REQUEST_TIMEOUT,
};
pub use rules::{
    eligible_total, max_redeemable_points, plan_return, plan_sale, points_earned, points_to_kopecks, LinePoints,
    LoyaltyRules, PointsError, ReturnLoyalty, ReturnPoints, RulesError, SaleLoyalty,
};

#[cfg(test)]
mod tests;
