//! Loyalty: the bounded counter against the `crdts` crate, the escrow property under
//! partitions, and the earn, redeem and return rules.

use crdts::{CmRDT, CvRDT, Dot, PNCounter, VClock};
use proptest::prelude::*;

use super::*;
use crate::basket::{Basket, BasketDiscount, BasketLine};
use crate::catalog::{CatalogItem, Unit, VatRate};
use crate::ids::{ActorId, Sku, StoreId};
use crate::money::Kopecks;
use crate::returns::{self, Returned};
use crate::sale::{Sale, Tender, TenderKind};

const HQ: ActorId = ActorId { store: StoreId::HQ, epoch: 0 };

fn actor(i: usize) -> ActorId {
    if i == 0 {
        HQ
    } else {
        ActorId { store: StoreId(i as u32), epoch: 1 }
    }
}

fn card() -> CustomerId {
    CustomerId::parse("00001000000001").unwrap()
}

fn rules(earn: i64, excluded: &[&str], share: u8, value: i64) -> LoyaltyRules {
    LoyaltyRules::new(earn, excluded.iter().map(|c| c.to_string()).collect(), share, value).unwrap()
}

// ---------------------------------------------------------------------------------
// The bounded counter
// ---------------------------------------------------------------------------------

#[test]
fn operations_beyond_rights_are_refused_and_change_nothing() {
    let (s1, s2) = (actor(1), actor(2));
    let mut a = LoyaltyAccount::new(card());
    a.earn(s1, 100).unwrap();
    let before = a.clone();
    assert_eq!(a.spend(s1, 101), Err(AccountError::Insufficient { actor: s1, rights: 100, wanted: 101 }));
    assert_eq!(a.spend(s2, 1), Err(AccountError::Insufficient { actor: s2, rights: 0, wanted: 1 }));
    assert_eq!(a.transfer(s1, s2, 101), Err(AccountError::Insufficient { actor: s1, rights: 100, wanted: 101 }));
    assert_eq!(a.transfer(s1, s1, 1), Err(AccountError::SelfTransfer));
    assert_eq!(a.earn(s1, 0), Err(AccountError::NonPositive));
    assert_eq!(a.spend(s1, -5), Err(AccountError::NonPositive));
    assert_eq!(a.earn(s1, POINTS_TOTAL_MAX), Err(AccountError::TooLarge));
    assert_eq!(a, before);

    let e = a.transfer(s1, HQ, 60).unwrap();
    assert_eq!(e, LoyaltyEntry { customer: card(), kind: EntryKind::Transfer { from: s1, to: HQ }, total: 60 });
    a.transfer(HQ, s2, 50).unwrap();
    a.spend(s2, 50).unwrap();
    assert_eq!((a.rights(s1), a.rights(HQ), a.rights(s2)), (40, 10, 0));
    assert_eq!(a.balance(), 50);
    assert_eq!(a.holders(), vec![(HQ, 10), (s1, 40), (s2, 0)]);
    assert!(a.overdrawn().is_empty());
}

#[test]
fn sales_and_returns_apply_all_or_nothing() {
    let s1 = actor(1);
    let mut a = LoyaltyAccount::new(card());
    a.earn(s1, 30).unwrap();
    let sale = |redeemed, earned| SaleLoyalty {
        customer: card(),
        point_value_kopecks: 100,
        redeemed_points: redeemed,
        lines: vec![LinePoints { paid_in_points: Kopecks(redeemed * 100), earned_points: earned }],
    };
    let before = a.clone();
    assert!(matches!(a.apply_sale(s1, &sale(31, 5)), Err(AccountError::Insufficient { .. })));
    assert_eq!(a, before, "a refused redemption earns nothing either");
    let entries = a.apply_sale(s1, &sale(30, 5)).unwrap();
    assert_eq!(
        entries.iter().map(|e| (e.kind, e.total)).collect::<Vec<_>>(),
        vec![(EntryKind::Spent { actor: s1 }, 30), (EntryKind::Earned { actor: s1 }, 35)]
    );
    assert_eq!(a.apply_sale(s1, &sale(0, 0)).unwrap(), vec![]);
    let stranger = SaleLoyalty { customer: CustomerId::parse("999999").unwrap(), ..sale(0, 5) };
    assert!(matches!(a.apply_sale(s1, &stranger), Err(AccountError::OtherCustomer { .. })));
    assert_eq!(a.balance(), 5);
}

#[test]
fn spare_rights_go_to_hq_and_hq_grants_what_it_holds() {
    let (s1, s2) = (actor(1), actor(2));
    let mut hq_view = LoyaltyAccount::new(card());
    let mut store1 = LoyaltyAccount::new(card());
    store1.earn(s1, 500).unwrap();
    assert_eq!(store1.hand_over(s1, HQ, 158).map(|e| e.total), Some(342));
    assert_eq!(store1.hand_over(s1, HQ, 158), None, "nothing spare left");
    for e in store1.entries_written_by(s1) {
        hq_view.merge_entry(&e).unwrap();
    }
    assert_eq!(hq_view.rights(HQ), 342);

    let req = RightsRequest { request_id: 7, customer: card(), points: 400 };
    let RightsAnswer::Grant(grant) = answer_rights_request(&mut hq_view, HQ, s2, &req) else {
        panic!("known customer")
    };
    assert_eq!((grant.request_id, grant.granted), (7, 342));
    assert_eq!(grant.entries[0].kind, EntryKind::Transfer { from: HQ, to: s2 });
    let mut store2 = LoyaltyAccount::new(card());
    for e in &grant.entries {
        store2.merge_entry(e).unwrap();
    }
    assert_eq!((store2.rights(s2), store2.balance()), (342, 500));
    // Asked again (say the answer was lost): HQ has nothing left to give, and says so.
    let RightsAnswer::Grant(again) = answer_rights_request(&mut hq_view, HQ, s2, &req) else { panic!() };
    assert_eq!(again.granted, 0);
    let other = RightsRequest { customer: CustomerId::parse("999999").unwrap(), ..req };
    assert!(matches!(answer_rights_request(&mut hq_view, HQ, s2, &other), RightsAnswer::UnknownCustomer { .. }));
}

#[test]
fn hq_accepts_only_a_stores_own_entries() {
    let (s1, s2) = (actor(1), actor(2));
    let mut a = LoyaltyAccount::new(card());
    a.earn(s1, 10).unwrap();
    a.transfer(s1, HQ, 5).unwrap();
    a.earn(s2, 10).unwrap();
    assert_eq!(check_written_by(s1, &a.entries_written_by(s1)), Ok(()));
    assert_eq!(check_written_by(s1, &a.entries()), Err(EntryError::Foreign { actor: s1, writer: s2 }));
    let forged = LoyaltyEntry { customer: card(), kind: EntryKind::Transfer { from: HQ, to: s1 }, total: 1000 };
    assert_eq!(check_written_by(s1, &[forged]), Err(EntryError::Foreign { actor: s1, writer: HQ }));
    let negative = LoyaltyEntry { customer: card(), kind: EntryKind::Earned { actor: s1 }, total: -1 };
    assert_eq!(check_written_by(s1, std::slice::from_ref(&negative)), Err(EntryError::Total(-1)));
    assert_eq!(a.merge_entry(&negative), Err(EntryError::Total(-1)));
    let to_self = LoyaltyEntry { customer: card(), kind: EntryKind::Transfer { from: s1, to: s1 }, total: 1 };
    assert_eq!(a.merge_entry(&to_self), Err(EntryError::SelfTransfer));
    let other = LoyaltyEntry { customer: CustomerId::parse("999999").unwrap(), ..negative };
    assert!(matches!(a.merge_entry(&other), Err(EntryError::OtherCustomer { .. })));
}

#[test]
fn accounts_serialise_as_checked_entries() {
    let mut a = LoyaltyAccount::new(card());
    a.earn(actor(1), 10).unwrap();
    a.transfer(actor(1), HQ, 4).unwrap();
    let bytes = postcard::to_allocvec(&a).unwrap();
    assert_eq!(postcard::from_bytes::<LoyaltyAccount>(&bytes).unwrap(), a);
    // The same record with a self-transfer is refused on the way in.
    #[derive(serde::Serialize)]
    struct Forged {
        customer: CustomerId,
        totals: Vec<(EntryKind, i64)>,
    }
    let forged = Forged { customer: card(), totals: vec![(EntryKind::Transfer { from: HQ, to: HQ }, 5)] };
    assert!(postcard::from_bytes::<LoyaltyAccount>(&postcard::to_allocvec(&forged).unwrap()).is_err());
}

/// The proof, as a unit: two stores offline, the same customer spends the whole
/// balance at both; the total spent never exceeds the balance, and the second cashier
/// gets a clear partial offer.
#[test]
fn two_offline_stores_cannot_spend_the_balance_twice() {
    let (s1, s2) = (actor(1), actor(2));
    let r = rules(1000, &[], 100, 100);
    let mut hq = LoyaltyAccount::new(card());
    hq.earn(s1, 342).unwrap(); // earned at store 1, kept there
    hq.earn(HQ, 158).unwrap(); // earned online, held by HQ
    hq.transfer(HQ, s2, 158).unwrap(); // granted to store 2 for an earlier basket
    let (mut at1, mut at2) = (hq.clone(), hq.clone());
    // Both go offline; the customer wants to pay 500 points at each.
    let big_basket = Kopecks(100_000);
    let o1 = offline_offer(&r, &at1, s1, big_basket);
    let o2 = offline_offer(&r, &at2, s2, big_basket);
    assert_eq!((o1.balance, o1.allowed, o1.spendable_now, o1.missing()), (500, 500, 342, 158));
    assert_eq!(o1.message(true), "342 of 500 points can be spent while offline");
    assert_eq!(o2.message(true), "158 of 500 points can be spent while offline");
    assert!(at1.spend(s1, 500).is_err() && at2.spend(s2, 500).is_err(), "the whole balance is refused");
    at1.spend(s1, o1.spendable_now).unwrap();
    at2.spend(s2, o2.spendable_now).unwrap();
    hq.merge(&at1).unwrap();
    hq.merge(&at2).unwrap();
    assert_eq!((hq.spent_total(), hq.earned_total(), hq.balance()), (500, 500, 0));
    assert!(hq.overdrawn().is_empty());
    // The share cap speaks for itself.
    let half = rules(1000, &[], 50, 100);
    let fresh = {
        let mut a = LoyaltyAccount::new(card());
        a.earn(s1, 500).unwrap();
        a
    };
    let o = offline_offer(&half, &fresh, s1, Kopecks(20_000));
    assert_eq!((o.allowed, o.spendable_now), (100, 100));
    assert_eq!(o.message(true), "100 of 500 points can be spent: points pay at most 50 % of this basket");
    assert_eq!(offline_offer(&half, &fresh, s1, big_basket).message(false), "500 of 500 points can be spent");
}

/// Raw accounts, from entries that need not come from valid operations: the merge laws
/// hold for any totals.
fn arb_account() -> impl Strategy<Value = LoyaltyAccount> {
    proptest::collection::vec((0u8..3, 0usize..4, 0usize..4, 0i64..1000), 0..20).prop_map(|raw| {
        let mut a = LoyaltyAccount::new(card());
        for (kind, x, y, total) in raw {
            let kind = match kind {
                0 => EntryKind::Earned { actor: actor(x) },
                1 => EntryKind::Spent { actor: actor(x) },
                _ if x == y => continue,
                _ => EntryKind::Transfer { from: actor(x), to: actor(y) },
            };
            a.merge_entry(&LoyaltyEntry { customer: card(), kind, total }).unwrap();
        }
        a
    })
}

fn merged(a: &LoyaltyAccount, b: &LoyaltyAccount) -> LoyaltyAccount {
    let mut m = a.clone();
    m.merge(b).unwrap();
    m
}

proptest! {
    #[test]
    fn merges_are_commutative_associative_and_idempotent(
        a in arb_account(), b in arb_account(), c in arb_account(),
    ) {
        prop_assert_eq!(merged(&a, &b), merged(&b, &a));
        prop_assert_eq!(merged(&merged(&a, &b), &c), merged(&a, &merged(&b, &c)));
        prop_assert_eq!(merged(&a, &a), a.clone());
        prop_assert_eq!(merged(&merged(&a, &b), &b), merged(&a, &b));
        // Entry by entry is the same merge: what the SQL upsert does.
        let mut by_entry = a.clone();
        for e in b.entries() {
            by_entry.merge_entry(&e).unwrap();
        }
        prop_assert_eq!(&by_entry, &merged(&a, &b));
        let mut rebuilt = LoyaltyAccount::new(card());
        for e in a.entries() {
            prop_assert!(rebuilt.merge_entry(&e).unwrap());
        }
        prop_assert_eq!(&rebuilt, &a);
        let bytes = postcard::to_allocvec(&a).unwrap();
        prop_assert_eq!(postcard::from_bytes::<LoyaltyAccount>(&bytes).unwrap(), a);
    }
}

/// One step of a fleet: actor `i`'s replica acts as `i`; gossip merges one replica into
/// another, whole (`Whole`) or a random subset of its entries (`Loose`).
#[derive(Clone, Debug)]
enum Step {
    Earn(usize, i64),
    Spend(usize, i64),
    Transfer(usize, usize, i64),
    /// Spend everything the replica believes its actor holds.
    SpendAll(usize),
    Whole(usize, usize),
    Loose(usize, usize, u64),
}

const FLEET: usize = 4;

fn arb_step() -> impl Strategy<Value = Step> {
    let r = 0..FLEET;
    prop_oneof![
        2 => (r.clone(), 1i64..200).prop_map(|(i, p)| Step::Earn(i, p)),
        2 => (r.clone(), 1i64..200).prop_map(|(i, p)| Step::Spend(i, p)),
        2 => (r.clone(), r.clone(), 1i64..200).prop_map(|(i, j, p)| Step::Transfer(i, j, p)),
        1 => r.clone().prop_map(Step::SpendAll),
        3 => (r.clone(), r.clone()).prop_map(|(i, j)| Step::Whole(i, j)),
        2 => (r.clone(), r, any::<u64>()).prop_map(|(i, j, mask)| Step::Loose(i, j, mask)),
    ]
}

/// A replica with its reference model: the same totals as a `crdts` version vector
/// (max per entry) and the balance as a `crdts` PN-counter, fed the same operations.
#[derive(Clone)]
struct Replica {
    account: LoyaltyAccount,
    totals: VClock<EntryKind>,
    balance: PNCounter<ActorId>,
}

impl Replica {
    fn record(&mut self, e: &LoyaltyEntry) {
        self.totals.apply(Dot::new(e.kind, e.total as u64));
    }

    fn merge_whole(&mut self, other: &Replica) {
        self.account.merge(&other.account).unwrap();
        self.totals.merge(other.totals.clone());
        self.balance.merge(other.balance.clone());
    }
}

/// Runs `steps` on a fleet; after every step checks, for every replica and for the
/// join of all of them, what must always hold. Returns the replicas.
fn run_fleet(steps: &[Step], whole_only: bool) -> Result<Vec<Replica>, TestCaseError> {
    let fresh = Replica { account: LoyaltyAccount::new(card()), totals: VClock::new(), balance: PNCounter::new() };
    let mut fleet = vec![fresh; FLEET];
    for step in steps {
        match *step {
            Step::Earn(i, p) => {
                let e = fleet[i].account.earn(actor(i), p).unwrap();
                fleet[i].record(&e);
                let op = fleet[i].balance.inc_many(actor(i), p as u64);
                fleet[i].balance.apply(op);
            }
            Step::Spend(i, p) => {
                let rights = fleet[i].account.rights(actor(i));
                match fleet[i].account.spend(actor(i), p) {
                    Ok(e) => {
                        prop_assert!(p <= rights);
                        fleet[i].record(&e);
                        let op = fleet[i].balance.dec_many(actor(i), p as u64);
                        fleet[i].balance.apply(op);
                    }
                    Err(_) => prop_assert!(p > rights),
                }
            }
            Step::SpendAll(i) => {
                let rights = fleet[i].account.rights(actor(i));
                if rights > 0 {
                    let e = fleet[i].account.spend(actor(i), rights).unwrap();
                    fleet[i].record(&e);
                    let op = fleet[i].balance.dec_many(actor(i), rights as u64);
                    fleet[i].balance.apply(op);
                }
            }
            Step::Transfer(i, j, p) => {
                if let Ok(e) = fleet[i].account.transfer(actor(i), actor(j), p) {
                    fleet[i].record(&e);
                }
            }
            Step::Whole(i, j) => {
                let src = fleet[i].clone();
                fleet[j].merge_whole(&src);
            }
            Step::Loose(i, j, mask) if !whole_only => {
                // Some of `i`'s entries, in reverse order: no causal delivery at all.
                let entries = fleet[i].account.entries();
                for (k, e) in entries.iter().enumerate().rev() {
                    if mask >> (k % 64) & 1 == 1 {
                        fleet[j].account.merge_entry(e).unwrap();
                        fleet[j].record(e);
                    }
                }
            }
            Step::Loose(..) => {}
        }
        let mut join = fleet[0].account.clone();
        for r in &fleet[1..] {
            join.merge(&r.account).unwrap();
        }
        // The truth: no actor beyond its rights, no balance below zero, never more spent
        // than earned.
        prop_assert!(join.overdrawn().is_empty(), "overdrawn: {:?}", join.overdrawn());
        prop_assert!(join.balance() >= 0);
        prop_assert!(join.spent_total() <= join.earned_total());
        for (i, r) in fleet.iter().enumerate() {
            // Each actor's own view of its rights never exceeds its true rights.
            prop_assert!(r.account.rights(actor(i)) <= join.rights(actor(i)));
            prop_assert!(r.account.rights(actor(i)) >= 0);
            if whole_only {
                // Views built from whole accounts are consistent everywhere.
                prop_assert!(r.account.overdrawn().is_empty(), "replica {}: {:?}", i, r.account.overdrawn());
                prop_assert!(r.account.balance() >= 0);
                prop_assert!(r.account.spent_total() <= r.account.earned_total());
            }
        }
    }
    Ok(fleet)
}

/// Everyone merges everyone: all replicas must then be equal and agree with the
/// reference model.
fn heal(fleet: &mut [Replica]) -> Result<(), TestCaseError> {
    for _round in 0..2 {
        for i in 0..fleet.len() {
            for j in 0..fleet.len() {
                let src = fleet[i].clone();
                fleet[j].merge_whole(&src);
            }
        }
    }
    let a = &fleet[0].account;
    for r in fleet.iter() {
        prop_assert_eq!(&r.account, a);
        for e in r.account.entries() {
            prop_assert_eq!(e.total as u64, r.totals.get(&e.kind));
        }
        prop_assert_eq!(r.totals.iter().count(), r.account.entries().len());
    }
    prop_assert_eq!(a.balance(), a.earned_total() - a.spent_total());
    prop_assert_eq!(a.balance(), a.holders().iter().map(|h| h.1).sum::<i64>());
    prop_assert!(a.overdrawn().is_empty() && a.balance() >= 0);
    let reference: i64 = fleet[0].balance.read().try_into().unwrap();
    prop_assert_eq!(a.balance(), reference);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Any interleaving of operations and whole-account gossip: no actor ever exceeds
    /// its rights as seen by any replica, no balance anywhere goes below zero, and once
    /// everyone has merged everything the replicas are equal and agree with `crdts`.
    #[test]
    fn whole_account_gossip_keeps_every_view_within_rights(
        steps in proptest::collection::vec(arb_step(), 0..80),
    ) {
        let mut fleet = run_fleet(&steps, true)?;
        heal(&mut fleet)?;
    }

    /// The same with entries delivered loose, in any order: a view may be stale, but no
    /// actor ever spends beyond its true rights, and the replicas converge.
    #[test]
    fn loose_entries_in_any_order_never_overspend(
        steps in proptest::collection::vec(arb_step(), 0..80),
    ) {
        let mut fleet = run_fleet(&steps, false)?;
        heal(&mut fleet)?;
    }

    /// The escrow property: the fleet splits in two, each side spends everything it is
    /// allowed to locally (and keeps trading rights within itself); after the partition
    /// heals the customer has spent no more than was earned.
    #[test]
    fn partitioned_stores_spending_all_they_may_never_spend_more_than_was_earned(
        before in proptest::collection::vec(arb_step(), 0..40),
        during in proptest::collection::vec(arb_step(), 0..60),
    ) {
        let side = |i: usize| i < FLEET / 2;
        // During the partition, gossip only within a side.
        let during: Vec<Step> = during
            .into_iter()
            .filter(|s| match *s {
                Step::Whole(i, j) | Step::Loose(i, j, _) => side(i) == side(j),
                _ => true,
            })
            .chain((0..FLEET).map(Step::SpendAll))
            .collect();
        let all: Vec<Step> = before.into_iter().chain(during).collect();
        let mut fleet = run_fleet(&all, false)?;
        for (i, r) in fleet.iter().enumerate() {
            prop_assert_eq!(r.account.rights(actor(i)), 0, "each spent all it held");
        }
        heal(&mut fleet)?;
        let a = &fleet[0].account;
        prop_assert!(a.spent_total() <= a.earned_total());
    }
}

// ---------------------------------------------------------------------------------
// The rules
// ---------------------------------------------------------------------------------

#[test]
fn rules_are_validated_wherever_they_come_from() {
    assert_eq!(LoyaltyRules::new(0, vec![], 50, 1), Err(RulesError::EarnRate));
    assert_eq!(LoyaltyRules::new(1000, vec![], 50, 0), Err(RulesError::PointValue));
    assert_eq!(LoyaltyRules::new(1000, vec![], 50, 1001), Err(RulesError::PointValue));
    assert_eq!(LoyaltyRules::new(1000, vec![], 101, 100), Err(RulesError::Share));
    assert_eq!(LoyaltyRules::new(1000, vec!["a".into(), "a".into()], 50, 100), Err(RulesError::Category));
    assert_eq!(LoyaltyRules::new(1000, vec![" a".into()], 50, 100), Err(RulesError::Category));
    assert_eq!(LoyaltyRules::new(1000, vec![String::new()], 50, 100), Err(RulesError::Category));
    let many = (0..=rules::EXCLUDED_CATEGORIES_MAX).map(|i| i.to_string()).collect();
    assert_eq!(LoyaltyRules::new(1000, many, 50, 100), Err(RulesError::TooManyCategories));
    let d = LoyaltyRules::default();
    assert_eq!((d.earn_kopecks_per_point(), d.point_value_kopecks(), d.max_share_percent()), (1000, 100, 50));
    assert!(d.is_excluded(Some("Электроника")) && !d.is_excluded(Some("Бакалея")) && !d.is_excluded(None));
    let bytes = postcard::to_allocvec(&d).unwrap();
    assert_eq!(postcard::from_bytes::<LoyaltyRules>(&bytes).unwrap(), d);
    // An invalid record does not deserialise.
    #[derive(serde::Serialize)]
    struct Raw {
        earn_kopecks_per_point: i64,
        excluded_categories: Vec<String>,
        max_share_percent: u8,
        point_value_kopecks: i64,
    }
    let raw =
        Raw { earn_kopecks_per_point: 0, excluded_categories: vec![], max_share_percent: 50, point_value_kopecks: 1 };
    assert!(postcard::from_bytes::<LoyaltyRules>(&postcard::to_allocvec(&raw).unwrap()).is_err());
}

fn line(sku: &str, net: i64) -> BasketLine {
    crate::testing::line(sku, Kopecks(net))
}

/// SKUs are named after their category here: `t1` is in category `t`; as with a
/// catalog, the category outlives the SKU it is looked up by.
fn category_of(sku: &Sku) -> Option<&'static str> {
    ["a", "b", "c", "m", "t"].into_iter().find(|c| sku.as_str().starts_with(c))
}

#[test]
fn a_worked_example() {
    // 1 point per 10 RUB, a point is 1 RUB, points pay up to half; tobacco excluded.
    let r = rules(1000, &["t"], 50, 100);
    let lines = [line("m1", 10_690), line("b1", 4_999), line("t1", 20_000)];
    let eligible = eligible_total(&r, &lines, category_of);
    assert_eq!(eligible, Kopecks(15_689));
    // Half of 156,89 is 78,44 → 78 points.
    assert_eq!(max_redeemable_points(&r, eligible, 1_000), 78);
    assert_eq!(max_redeemable_points(&r, eligible, 30), 30);
    assert_eq!(points_to_kopecks(&r, 78), Some(Kopecks(7_800)));
    assert_eq!(points_to_kopecks(&r, -1), None);
    // No points: 156,89 RUB earns 15 points (not 10 + 4 = 14 line by line).
    assert_eq!(points_earned(&r, &lines, category_of, Kopecks::ZERO), Ok(15));
    // 78 points pay 78,00 over milk and bread; 78,89 paid in money earns 7.
    let s = plan_sale(&r, card(), &lines, category_of, 78).unwrap();
    assert_eq!(s.paid_in_points(), Kopecks(7_800));
    assert_eq!(s.lines[2], LinePoints { paid_in_points: Kopecks::ZERO, earned_points: 0 });
    assert_eq!(s.lines[0].paid_in_points.0 + s.lines[1].paid_in_points.0, 7_800);
    assert_eq!(s.earned_points(), 7);
    assert_eq!(plan_sale(&r, card(), &lines, category_of, 79), Err(PointsError::OverShare { max_points: 78 }));
    assert_eq!(
        points_earned(&r, &lines, category_of, Kopecks(15_690)),
        Err(PointsError::OverEligible { paid: Kopecks(15_690), eligible: Kopecks(15_689) })
    );
    assert_eq!(s.validate(&lines), Ok(()));
    let mut minted = s.clone();
    minted.lines[0].earned_points += 1_000;
    assert_eq!(minted.validate(&lines), Err(PointsError::Mismatch), "more than 100 % cashback");
}

fn arb_rules() -> impl Strategy<Value = LoyaltyRules> {
    (1i64..5_000, 0u8..=100, proptest::collection::btree_set(0usize..3, 0..3), any::<u64>()).prop_map(
        |(earn, share, excluded, v)| {
            // A quarter of the programmes at 100 % cashback, where rounding bites hardest.
            let value = if v % 4 == 0 { earn } else { 1 + (v / 4 % earn as u64) as i64 };
            let excluded = excluded.into_iter().map(|c| ["a", "b", "c"][c].to_string()).collect();
            LoyaltyRules::new(earn, excluded, share, value).unwrap()
        },
    )
}

fn arb_lines() -> impl Strategy<Value = Vec<BasketLine>> {
    proptest::collection::vec((0usize..3, 0i64..500_000), 0..12).prop_map(|ls| {
        ls.iter().enumerate().map(|(i, &(c, net))| line(&format!("{}{i}", ["a", "b", "c"][c]), net)).collect()
    })
}

proptest! {
    /// Earning: never negative; excluded lines earn nothing and are paid for by no
    /// points; what points pay never earns; rounding is down, once, over the basket.
    #[test]
    fn earning_excludes_categories_and_what_points_paid(
        r in arb_rules(),
        lines in arb_lines(),
        redeem in 0u64..u64::MAX,
        bump in 1i64..100_000,
    ) {
        let eligible = eligible_total(&r, &lines, category_of);
        let max = max_redeemable_points(&r, eligible, i64::MAX);
        let redeemed = if max == 0 { 0 } else { (redeem % (max as u64 + 1)) as i64 };
        let s = plan_sale(&r, card(), &lines, category_of, redeemed).unwrap();
        prop_assert_eq!(s.validate(&lines), Ok(()));
        prop_assert_eq!(s.paid_in_points().0, redeemed * r.point_value_kopecks());
        let paid = s.paid_in_points().0;
        prop_assert_eq!(s.earned_points(), (eligible.0 - paid) / r.earn_kopecks_per_point());
        prop_assert_eq!(points_earned(&r, &lines, category_of, s.paid_in_points()), Ok(s.earned_points()));
        for (lp, l) in s.lines.iter().zip(&lines) {
            prop_assert!(lp.earned_points >= 0 && lp.paid_in_points.0 >= 0);
            prop_assert!(lp.paid_in_points <= l.net());
            if r.is_excluded(category_of(&l.sku)) {
                prop_assert_eq!(*lp, LinePoints { paid_in_points: Kopecks::ZERO, earned_points: 0 });
            }
        }
        // Paying more in points never earns more.
        if paid + bump <= eligible.0 {
            let more = points_earned(&r, &lines, category_of, Kopecks(paid + bump)).unwrap();
            prop_assert!(more <= s.earned_points());
        }
        // Dearer excluded lines change nothing.
        let dearer: Vec<BasketLine> = lines
            .iter()
            .map(|l| if r.is_excluded(category_of(&l.sku)) { line(l.sku.as_str(), l.net().0 + bump) } else { l.clone() })
            .collect();
        prop_assert_eq!(points_earned(&r, &dearer, category_of, s.paid_in_points()), Ok(s.earned_points()));
        prop_assert_eq!(
            plan_sale(&r, card(), &lines, category_of, max + 1),
            Err(PointsError::OverShare { max_points: max })
        );
    }

    /// Redemption: never negative, never beyond the balance or the share cap, and the
    /// largest amount that is neither.
    #[test]
    fn max_redeemable_respects_share_cap_and_balance(
        r in arb_rules(),
        eligible in -1_000i64..100_000_000,
        balance in -1_000i64..1_000_000,
    ) {
        let n = max_redeemable_points(&r, Kopecks(eligible), balance);
        let cap = |points: i64| i128::from(points) * i128::from(r.point_value_kopecks()) * 100
            <= i128::from(eligible.max(0)) * i128::from(r.max_share_percent());
        prop_assert!(n >= 0);
        prop_assert!(n <= balance.max(0));
        prop_assert!(cap(n));
        prop_assert!(n == balance.max(0) || !cap(n + 1), "not the largest");
    }
}

/// A sale of `items` (category, price, quantity) with `redeemed` points.
fn sale_with_points(
    r: &LoyaltyRules,
    items: &[(usize, i64, i64)],
    discount: Option<u8>,
    redeemed: u64,
) -> (Sale, SaleLoyalty) {
    let mut b = Basket::default();
    for (i, &(c, price, q)) in items.iter().enumerate() {
        let item = CatalogItem {
            sku: Sku(format!("{}{i}", ["a", "b", "c"][c])),
            gtin: None,
            name: format!("item {i}"),
            category: ["a", "b", "c"][c].into(),
            price: Kopecks(price),
            vat: VatRate::Vat20,
            unit: Unit::Piece,
            plu: None,
        };
        b.add(&item, q).unwrap();
    }
    if let Some(p) = discount {
        b.set_discount(Some(BasketDiscount::Percent(p))).unwrap();
    }
    let eligible = eligible_total(r, &b.lines, category_of);
    let max = max_redeemable_points(r, eligible, i64::MAX) as u64;
    let loyalty = plan_sale(r, card(), &b.lines, category_of, (redeemed % (max + 1)) as i64).unwrap();
    let total = b.totals().unwrap().total;
    let money = Kopecks(total.0 - loyalty.paid_in_points().0);
    let sale = Sale {
        tenders: vec![Tender { kind: TenderKind::Cash, amount: money }],
        total,
        ..crate::testing::sale(StoreId(1), 1, b.lines)
    };
    (sale, loyalty)
}

#[test]
fn a_return_after_the_points_were_spent_is_paid_for_from_the_refund() {
    let r = rules(1000, &[], 50, 100);
    // 3 × 100,00 RUB, no points redeemed: 30 points earned.
    let (sale, loyalty) = sale_with_points(&r, &[(0, 10_000, 3)], None, 0);
    assert_eq!(loyalty.earned_points(), 30);
    let s1 = actor(1);
    let mut a = LoyaltyAccount::new(card());
    a.apply_sale(s1, &loyalty).unwrap();
    a.spend(s1, 25).unwrap(); // spent elsewhere in the meantime: 5 left here
    let lines = returns::plan(&sale, &vec![], &[(0, 1)]).unwrap();
    let p = plan_return(&loyalty, &sale.lines, &vec![], &lines).unwrap();
    assert_eq!((p.take_back, p.give_back, p.paid_in_points, p.rights_needed()), (10, 0, Kopecks::ZERO, 10));
    let settled = p.settle(lines[0].amount, a.rights(s1), Kopecks::ZERO);
    assert_eq!(
        (settled.spend, settled.shortfall, settled.deducted, settled.money_refund),
        (5, 5, Kopecks(500), Kopecks(9_500))
    );
    a.apply_return(s1, &settled).unwrap();
    assert_eq!(a.balance(), 0, "never below zero");
}

#[test]
fn what_one_refund_cannot_cover_is_owed_by_the_next_return_of_the_sale() {
    // 100 % cashback: 10 × 5,00 RUB earns 5 points worth 50,00, all spent elsewhere.
    let r = rules(1000, &[], 50, 1000);
    let (sale, loyalty) = sale_with_points(&r, &[(0, 500, 10)], None, 0);
    assert_eq!(loyalty.earned_points(), 5);
    let mut returned: Returned = vec![(0, Kopecks::ZERO)];
    let mut owed = Kopecks::ZERO;
    let mut refunds = Vec::new();
    for _ in 0..2 {
        let lines = returns::plan(&sale, &returned, &[(0, 1)]).unwrap();
        let p = plan_return(&loyalty, &sale.lines, &returned, &lines).unwrap();
        let s = p.settle(lines[0].amount, 0, owed);
        refunds.push((p.take_back, s.deducted, s.money_refund, s.owed));
        owed = s.owed;
        returned[0].0 += 1;
        returned[0].1 .0 += lines[0].amount.0;
    }
    // The first item takes back a whole point (10,00) but refunds only 5,00: 5,00 stays
    // owed and the second item's refund pays it. Two items, one point, no money back.
    assert_eq!(
        refunds,
        vec![(1, Kopecks(500), Kopecks::ZERO, Kopecks(500)), (0, Kopecks(500), Kopecks::ZERO, Kopecks::ZERO)]
    );
}

#[test]
fn a_return_gives_back_the_points_that_paid_for_it() {
    let r = rules(1000, &[], 50, 100);
    // 2 × 100,00 with 100 points (100,00): 100,00 paid in money earns 10 points.
    let (sale, loyalty) = sale_with_points(&r, &[(0, 10_000, 2)], None, 100);
    assert_eq!((loyalty.redeemed_points, loyalty.earned_points()), (100, 10));
    let lines = returns::plan(&sale, &vec![], &[(0, 1)]).unwrap();
    let p = plan_return(&loyalty, &sale.lines, &vec![], &lines).unwrap();
    // Half the line: 50 points back, 5 taken back; 50,00 of the 100,00 refunded in money.
    assert_eq!((p.give_back, p.take_back, p.paid_in_points), (50, 5, Kopecks(5_000)));
    let settled = p.settle(lines[0].amount, 0, Kopecks::ZERO);
    assert_eq!((settled.earn, settled.spend, settled.shortfall, settled.money_refund), (45, 0, 0, Kopecks(5_000)));
}

proptest! {
    /// Over any sequence of partial returns: nothing negative, take-backs never exceed
    /// what the sale earned, give-backs never exceed what it redeemed, money refunds
    /// never exceed what was paid in money, a full return settles exactly; whatever the
    /// rights, a deduction never exceeds the refund, and what stays owed is rounding.
    #[test]
    fn partial_returns_never_take_back_more_than_was_earned(
        r in arb_rules(),
        items in proptest::collection::vec((0usize..3, 1i64..100_000, 1i64..12), 1..6),
        discount in proptest::option::of(1u8..=50),
        redeemed in any::<u64>(),
        requests in proptest::collection::vec(
            (proptest::collection::vec((0u32..6, 1i64..13), 1..4), prop_oneof![Just(0i64), 0i64..500]),
            1..14,
        ),
    ) {
        let (sale, loyalty) = sale_with_points(&r, &items, discount, redeemed);
        let pv = loyalty.point_value_kopecks;
        let owed_max = pv * (2 * sale.lines.len() as i64 + 1);
        let mut returned: Returned = vec![(0, Kopecks::ZERO); sale.lines.len()];
        let (mut taken, mut given, mut in_points, mut money) = (0i64, 0i64, 0i64, 0i64);
        let (mut owed, mut short_value, mut deducted) = (Kopecks::ZERO, 0i64, 0i64);
        for (req, rights) in requests {
            let Ok(lines) = returns::plan(&sale, &returned, &req) else { continue };
            let p = plan_return(&loyalty, &sale.lines, &returned, &lines).unwrap();
            let total: i64 = lines.iter().map(|l| l.amount.0).sum();
            prop_assert!(p.take_back >= 0 && p.give_back >= 0 && p.paid_in_points.0 >= 0);
            prop_assert!(p.paid_in_points.0 <= total);
            let s = p.settle(Kopecks(total), rights, owed);
            prop_assert!(s.earn >= 0 && s.spend >= 0 && s.shortfall >= 0 && s.spend <= rights.max(0));
            prop_assert_eq!(s.earn - s.spend - s.shortfall, p.give_back - p.take_back);
            prop_assert!(s.deducted.0 >= 0 && s.money_refund.0 >= 0 && s.owed.0 >= 0);
            prop_assert_eq!(s.deducted.0 + s.money_refund.0, total - p.paid_in_points.0);
            // Every point not taken back is paid for, now or by what stays owed.
            short_value += s.shortfall * pv;
            deducted += s.deducted.0;
            prop_assert_eq!(short_value, deducted + s.owed.0);
            prop_assert!(s.owed.0 <= owed_max, "owes {} after a return of {} lines", s.owed, lines.len());
            owed = s.owed;
            for l in &lines {
                let i = l.sale_line.unwrap() as usize;
                returned[i].0 += l.quantity;
                returned[i].1 .0 += l.amount.0;
            }
            taken += p.take_back;
            given += p.give_back;
            in_points += p.paid_in_points.0;
            money += total - p.paid_in_points.0;
            prop_assert!(taken <= loyalty.earned_points());
            prop_assert!(given <= loyalty.redeemed_points);
            prop_assert!(in_points <= loyalty.paid_in_points().0);
            prop_assert!(money <= sale.total.0 - loyalty.paid_in_points().0);
        }
        // Return whatever is left: everything settles exactly.
        let rest: Vec<(u32, i64)> = (0..sale.lines.len())
            .filter(|&i| returned[i].0 < sale.lines[i].quantity)
            .map(|i| (i as u32, sale.lines[i].quantity - returned[i].0))
            .collect();
        if !rest.is_empty() {
            let lines = returns::plan(&sale, &returned, &rest).unwrap();
            let p = plan_return(&loyalty, &sale.lines, &returned, &lines).unwrap();
            taken += p.take_back;
            given += p.give_back;
            in_points += p.paid_in_points.0;
            money += lines.iter().map(|l| l.amount.0).sum::<i64>() - p.paid_in_points.0;
        }
        prop_assert_eq!(taken, loyalty.earned_points());
        prop_assert_eq!(given, loyalty.redeemed_points);
        prop_assert_eq!(in_points, loyalty.paid_in_points().0);
        prop_assert_eq!(money, sale.total.0 - loyalty.paid_in_points().0);
    }
}
