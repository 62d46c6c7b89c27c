use proptest::prelude::*;

use super::*;
use crate::testing::pieces;

fn order(lines: Vec<BasketLine>) -> Order {
    Order {
        id: OrderId(17),
        store: StoreId(2),
        channel: OrderChannel::Online,
        customer: None,
        phone: Some(crate::loyalty::Phone::parse("+79001234567").unwrap()),
        note: String::new(),
        lines,
        payment: Payment::AtPickup,
        created_at_ms: 1_000,
        expires_at_ms: 1_000 + 86_400_000,
    }
}

#[test]
fn pickup_codes_read_back_and_catch_a_typo() {
    for n in [1u64, 9, 10, 457, 1_000_000, 98_765_432_101] {
        let code = pickup_code(OrderId(n));
        assert_eq!(parse_pickup_code(&code), Some(OrderId(n)), "{code}");
        // Every single-digit typo in the number is caught by the check digit.
        let digits: Vec<u8> = code.bytes().skip(1).collect();
        for i in 0..digits.len() - 1 {
            let mut typo = digits.clone();
            typo[i] = b'0' + (typo[i] - b'0' + 1) % 10;
            let typo = format!("Z{}", String::from_utf8(typo).unwrap());
            assert_ne!(parse_pickup_code(&typo), Some(OrderId(n)), "{typo} read as {code}");
        }
    }
    assert_eq!(pickup_code(OrderId(7992739871)), "Z79927398713", "the textbook Luhn example");
    for bad in ["", "Z", "Z1", "Q123", "Z12a", "Z0000", "ZZ10"] {
        assert_eq!(parse_pickup_code(bad), None, "{bad}");
    }
}

#[test]
fn states_merge_to_the_highest_and_a_handover_stands() {
    use OrderState::*;
    for a in OrderState::ALL {
        for b in OrderState::ALL {
            assert_eq!(a.join(b), b.join(a));
            assert_eq!(a.join(a), a);
            for c in OrderState::ALL {
                assert_eq!(a.join(b).join(c), a.join(b.join(c)));
            }
        }
        assert_eq!(a.join(Collected), Collected, "nothing undoes a handover");
    }
    assert_eq!(Expired.join(Cancelled), Expired);
    assert_eq!(Ready.join(Expired), Expired);
    assert!(!Ready.is_final() && Expired.is_final() && Cancelled.is_final() && Collected.is_final());
    for s in OrderState::ALL {
        assert_eq!(OrderState::from_code(s.code()), Some(s));
    }
    assert_eq!(OrderState::from_code("Ready"), None, "one spelling");
}

/// HQ only ever adds a cancellation; whatever final state the store reached, HQ's join
/// of it with the cancellation is that state, so both end the same.
#[test]
fn the_store_final_word_wins() {
    for store_final in OrderState::ALL.into_iter().filter(|s| s.is_final()) {
        assert_eq!(OrderState::Cancelled.join(store_final), store_final);
    }
}

#[test]
fn store_steps_go_forward_and_not_after_the_end() {
    let o = order(vec![pieces("1", Kopecks(10_000), 2)]);
    assert_eq!(store_step(&o, OrderState::Accepted, StoreStep::Picking, 2_000), Ok(OrderState::Picking));
    assert_eq!(store_step(&o, OrderState::Accepted, StoreStep::Ready, 2_000), Ok(OrderState::Ready));
    assert!(matches!(store_step(&o, OrderState::Ready, StoreStep::Picking, 2_000), Err(StepError::Backwards { .. })));
    assert!(matches!(store_step(&o, OrderState::Collected, StoreStep::Cancel, 2_000), Err(StepError::Final { .. })));
    assert!(matches!(
        store_step(&o, OrderState::Picking, StoreStep::Ready, o.expires_at_ms),
        Err(StepError::Expired { .. })
    ));
    assert_eq!(store_step(&o, OrderState::Ready, StoreStep::Cancel, o.expires_at_ms), Ok(OrderState::Cancelled));
    assert!(expires(&o, OrderState::Ready, o.expires_at_ms));
    assert!(!expires(&o, OrderState::Ready, o.expires_at_ms - 1));
    assert!(!expires(&o, OrderState::Collected, o.expires_at_ms + 1));
}

#[test]
fn a_handover_takes_at_most_what_was_ordered_once() {
    let o = order(vec![pieces("1", Kopecks(10_000), 2), pieces("2", Kopecks(5_000), 1)]);
    assert_eq!(Handover::all(&o).validate(&o, OrderState::Ready), Ok(()));
    assert_eq!(Handover { taken: vec![1, 0] }.validate(&o, OrderState::Accepted), Ok(()));
    assert!(matches!(
        Handover { taken: vec![3, 0] }.validate(&o, OrderState::Ready),
        Err(HandoverError::Quantity { .. })
    ));
    assert!(matches!(Handover { taken: vec![1] }.validate(&o, OrderState::Ready), Err(HandoverError::Lines { .. })));
    assert_eq!(Handover { taken: vec![0, 0] }.validate(&o, OrderState::Ready), Err(HandoverError::Nothing));
    for s in [OrderState::Collected, OrderState::Cancelled, OrderState::Expired] {
        assert!(matches!(Handover::all(&o).validate(&o, s), Err(HandoverError::Final { .. })), "{s:?}");
    }
}

#[test]
fn a_partly_taken_line_pays_its_share_rounded_for_the_customer() {
    // "3 for 2" on 3 × 99.99: 99.99 off; the customer takes 2 of the 3.
    let mut l = pieces("1", Kopecks(9_999), 3);
    l.discount = Kopecks(9_999);
    l.promotions =
        vec![crate::basket::LinePromotion {
            promotion: 4, version: 1, name: "3 за 2".into(), amount: Kopecks(9_999)
        }];
    let o = order(vec![l.clone(), pieces("2", Kopecks(1_000), 1)]);
    let taken = taken_lines(&o, &Handover { taken: vec![2, 0] });
    assert_eq!(taken.len(), 1, "the refused line is left out");
    assert_eq!(taken[0].amount, Kopecks(19_998));
    assert_eq!(taken[0].discount, Kopecks(6_666), "99.99 × 2/3, rounded up");
    assert_eq!(taken[0].promotions[0].amount, Kopecks(6_666));
    assert_eq!(taken[0].net(), Kopecks(13_332));
    let whole = taken_lines(&o, &Handover::all(&o));
    assert_eq!(whole, o.lines, "a fully taken order is exactly its locked lines");
}

/// A prepaid order's purchase is the online shop's sale of what was handed over, paid
/// by card at what the order said; an order paid at pickup has its store's sale instead.
#[test]
fn a_prepaid_order_handed_over_is_the_shops_sale_of_what_was_taken() {
    let mut l = pieces("1", Kopecks(9_999), 3);
    l.discount = Kopecks(9_999);
    let prepaid = Order { payment: Payment::Prepaid, ..order(vec![l, pieces("2", Kopecks(1_000), 1)]) };
    let sale = shop_sale(&prepaid, &[2, 1]).expect("a handed-over prepaid order");
    assert_eq!((sale.id, sale.receipt_no.as_str()), (SaleId { store: StoreId::HQ, seq: 17 }, "0000-00-000017"));
    assert_eq!(sale.lines.iter().map(|l| l.quantity).collect::<Vec<_>>(), [2, 1]);
    assert_eq!(sale.total, Kopecks(13_332 + 1_000), "the taken share of the discount stays off");
    assert_eq!(sale.tenders, vec![crate::sale::Tender { kind: crate::sale::TenderKind::Card, amount: sale.total }]);
    assert_eq!(sale.validate(), Ok(()));
    assert_eq!(shop_sale(&prepaid, &[0, 1]).unwrap().lines.len(), 1, "a refused line is not in it");
    assert_eq!(shop_sale(&prepaid, &[0, 0]), None, "nothing handed over: nothing to return");
    assert_eq!(shop_sale(&prepaid, &[1]), None, "a handover of other lines");
    let at_pickup = Order { payment: Payment::AtPickup, ..prepaid };
    assert_eq!(shop_sale(&at_pickup, &[2, 1]), None, "paid at the store: its sale is the purchase");
}

#[test]
fn orders_validate_their_fields() {
    let good = order(vec![pieces("1", Kopecks(10_000), 2)]);
    assert_eq!(good.validate(), Ok(()));
    assert_eq!(good.total(), Kopecks(20_000));
    assert_eq!(order(vec![]).validate(), Err(OrderError::Lines));
    let mut o = good.clone();
    o.expires_at_ms = o.created_at_ms;
    assert_eq!(o.validate(), Err(OrderError::Expiry));
    o.expires_at_ms = o.created_at_ms + PICKUP_DAYS_MAX * 86_400_000;
    assert_eq!(o.validate(), Err(OrderError::Expiry));
    let mut o = good.clone();
    o.lines[0].discount = Kopecks(30_000);
    assert_eq!(o.validate(), Err(OrderError::Discount { line: 0 }));
}

#[test]
fn shortfalls_sum_an_sku_over_its_lines() {
    let a = Sku("A".into());
    let b = Sku("B".into());
    let wanted = [(&a, 2), (&b, 1), (&a, 2)];
    let short = shortfalls(wanted, |s| if *s == a { 3 } else { 5 });
    assert_eq!(short, vec![Shortfall { sku: a.clone(), wanted: 4, available: 3 }]);
    assert_eq!(short[0].to_string(), "A: 4 wanted, 3 available");
    assert!(shortfalls([(&a, 3)], |_| 3).is_empty());
}

fn state() -> impl Strategy<Value = OrderState> {
    prop::sample::select(OrderState::ALL.to_vec())
}

proptest! {
    /// Replicas that see the same states in any order, any number of times, agree; and
    /// once one has seen a handover, everyone ends collected.
    #[test]
    fn any_interleaving_converges(events in prop::collection::vec(state(), 1..12), seed in any::<u64>()) {
        let mut shuffled = events.clone();
        let mut rng = crate::seeded::SeededRng::new(seed);
        for i in (1..shuffled.len()).rev() {
            shuffled.swap(i, rng.below(i as u64 + 1) as usize);
        }
        shuffled.extend(events.iter().take(3)); // duplicates
        let a = events.iter().fold(OrderState::New, |s, e| s.join(*e));
        let b = shuffled.iter().fold(OrderState::New, |s, e| s.join(*e));
        prop_assert_eq!(a, b);
        if events.contains(&OrderState::Collected) {
            prop_assert_eq!(a, OrderState::Collected);
        }
    }

    /// What is paid for the taken part of a line is never more than the line's price for
    /// that many pieces after its discount per piece, and the whole line is exact.
    #[test]
    fn taken_part_never_costs_more_than_its_share(
        price in 1i64..100_000,
        quantity in 1i64..50,
        discount_share in 0u32..=100,
        take in 0i64..50,
    ) {
        let take = take.min(quantity);
        prop_assume!(take > 0);
        let mut l = pieces("1", Kopecks(price), quantity);
        l.discount = Kopecks(l.amount.0 * i64::from(discount_share) / 100);
        let o = order(vec![l.clone()]);
        let part = &taken_lines(&o, &Handover { taken: vec![take] })[0];
        prop_assert!(part.net().0 >= 0);
        // net × quantity ≤ line net × take (per piece no dearer than ordered)
        prop_assert!(i128::from(part.net().0) * i128::from(quantity) <= i128::from(l.net().0) * i128::from(take));
    }
}
