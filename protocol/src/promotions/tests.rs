// Amounts are written as roubles_kopecks (150_00 = 150,00 ₽) on purpose.
#![allow(clippy::inconsistent_digit_grouping)]

use std::collections::BTreeSet;

use proptest::prelude::*;

use super::*;
use crate::catalog::VatRate;

/// The test catalog: SKU → (category, unit, price).
const ITEMS: &[(&str, &str, Unit, i64)] = &[
    ("milk", "dairy", Unit::Piece, 106_90),
    ("kefir", "dairy", Unit::Piece, 89_90),
    ("cheese", "dairy", Unit::Piece, 450_00),
    ("bread", "bakery", Unit::Piece, 50_00),
    ("bun", "bakery", Unit::Piece, 25_00),
    ("cola", "drinks", Unit::Piece, 99_99),
    ("water", "drinks", Unit::Piece, 40_00),
    ("apples", "fruit", Unit::Kilogram, 189_00),
    ("bananas", "fruit", Unit::Kilogram, 149_90),
];

struct TestCatalog;

impl Catalog for TestCatalog {
    fn has_sku(&self, sku: &Sku) -> bool {
        ITEMS.iter().any(|i| i.0 == sku.0)
    }
    fn has_category(&self, category: &str) -> bool {
        ITEMS.iter().any(|i| i.1 == category)
    }
}

fn sku(s: &str) -> Sku {
    Sku(s.to_owned())
}

fn items(skus: &[&str]) -> Target {
    Target::Items(skus.iter().map(|s| sku(s)).collect())
}

fn category(c: &str) -> Target {
    Target::Categories(BTreeSet::from([c.to_owned()]))
}

/// Day 20_000 is 2024-10-04, a Friday.
const TODAY: i32 = 20_000;

fn promo(id: u32, kind: Kind) -> Promotion {
    Promotion {
        id,
        version: 1,
        name: format!("Акция {id}"),
        kind,
        priority: 0,
        exclusive_group: None,
        window: Window::days(TODAY - 10, TODAY + 10),
        stores: None,
        channels: BTreeSet::from([Channel::Store, Channel::Online]),
        audience: Audience::Everyone,
        coupon: None,
    }
}

/// Owned lines to price: (SKU, quantity in pieces or grams).
struct Basket {
    skus: Vec<Sku>,
    rows: Vec<(usize, i64)>,
}

impl Basket {
    fn of(lines: &[(&str, i64)]) -> Basket {
        let skus = lines.iter().map(|(s, _)| sku(s)).collect();
        let rows = lines.iter().map(|(s, q)| (ITEMS.iter().position(|i| i.0 == *s).expect("known"), *q)).collect();
        Basket { skus, rows }
    }

    fn lines(&self) -> Vec<PriceLine<'_>> {
        self.rows
            .iter()
            .zip(&self.skus)
            .map(|(&(item, quantity), sku)| {
                let (_, category, unit, price) = ITEMS[item];
                PriceLine {
                    sku,
                    category,
                    unit,
                    quantity,
                    price: Kopecks(price),
                    amount: pricing::line_amount(Kopecks(price), unit, quantity).unwrap(),
                }
            })
            .collect()
    }
}

fn cx<'a>(customer: Option<&'a CustomerId>, coupons: &'a [String], used: &'a BTreeSet<u32>) -> Context<'a> {
    Context {
        store: StoreId(1),
        channel: Channel::Store,
        at: LocalTime { day: TODAY, minute: 12 * 60 },
        customer,
        coupons,
        used_coupons: used,
    }
}

fn price(promotions: Vec<Promotion>, basket: &[(&str, i64)]) -> Vec<i64> {
    let set = PromotionSet::new(promotions, &TestCatalog).unwrap();
    let b = Basket::of(basket);
    let priced = set.price(&b.lines(), &cx(None, &[], &BTreeSet::new()));
    priced.lines.iter().map(|l| l.discount.0).collect()
}

/// Worked examples, one or more per kind: (what, promotions, basket, discount per line).
#[test]
fn worked_examples() {
    type Case = (&'static str, Vec<Promotion>, Vec<(&'static str, i64)>, Vec<i64>);
    let cases: Vec<Case> = vec![
        (
            "10 % off dairy, rounded half up per line",
            vec![promo(1, Kind::PercentOff { target: category("dairy"), percent: 10 })],
            vec![("milk", 3), ("bread", 1)],
            vec![32_07, 0],
        ),
        // 10 ₽ off is 10,00 off, VAT included: never 9,09.
        (
            "10 ₽ off a VAT-inclusive price is exactly 10 ₽",
            vec![promo(1, Kind::AmountOff { target: items(&["bread"]), amount: Kopecks(10_00) })],
            vec![("bread", 2)],
            vec![20_00],
        ),
        (
            "amount off never below zero",
            vec![promo(1, Kind::AmountOff { target: items(&["bun"]), amount: Kopecks(30_00) })],
            vec![("bun", 1)],
            vec![25_00],
        ),
        (
            "amount off per kilogram of a weighed line",
            vec![promo(1, Kind::AmountOff { target: items(&["apples"]), amount: Kopecks(20_00) })],
            vec![("apples", 1_235)],
            vec![24_70],
        ),
        (
            "promotional price",
            vec![promo(1, Kind::FixedPrice { target: items(&["cola"]), price: Kopecks(79_99) })],
            vec![("cola", 3)],
            vec![60_00],
        ),
        (
            "a promotional price above the shelf price does nothing",
            vec![promo(1, Kind::FixedPrice { target: items(&["water"]), price: Kopecks(45_00) })],
            vec![("water", 2)],
            vec![0],
        ),
        (
            "promotional price per kilogram",
            vec![promo(1, Kind::FixedPrice { target: items(&["bananas"]), price: Kopecks(99_90) })],
            vec![("bananas", 1_500)],
            vec![75_00],
        ),
        (
            "3 for 2: the cheapest of each three (dearest first) is free",
            vec![promo(1, Kind::NForM { target: category("dairy"), n: 3, m: 2 })],
            vec![("milk", 2), ("kefir", 2), ("cheese", 1)],
            vec![106_90, 0, 0],
        ),
        (
            "3 for 2 with 7 pieces: two free, the seventh paid",
            vec![promo(1, Kind::NForM { target: items(&["bun"]), n: 3, m: 2 })],
            vec![("bun", 7)],
            vec![50_00],
        ),
        (
            "2 for 150 ₽, spread by price",
            vec![promo(1, Kind::NForPrice { target: items(&["milk", "kefir"]), n: 2, price: Kopecks(150_00) })],
            vec![("milk", 1), ("kefir", 1)],
            vec![25_42, 21_38],
        ),
        (
            "2 for a price above the shelf price does nothing",
            vec![promo(1, Kind::NForPrice { target: items(&["water"]), n: 2, price: Kopecks(90_00) })],
            vec![("water", 2)],
            vec![0],
        ),
        (
            "buy 2 bread get a bun free",
            vec![promo(
                1,
                Kind::BuyGet { buy: items(&["bread"]), buy_qty: 2, get: items(&["bun"]), get_qty: 1, percent: 100 },
            )],
            vec![("bread", 2), ("bun", 3)],
            vec![0, 25_00],
        ),
        (
            "buy 1 get 1 at half price: the cheaper one is discounted",
            vec![promo(
                1,
                Kind::BuyGet { buy: category("drinks"), buy_qty: 1, get: category("drinks"), get_qty: 1, percent: 50 },
            )],
            vec![("water", 1), ("cola", 1)],
            vec![20_00, 0],
        ),
        (
            "a set at a fixed price",
            vec![promo(
                1,
                Kind::Bundle { components: vec![items(&["bread"]), items(&["milk", "kefir"])], price: Kopecks(120_00) },
            )],
            vec![("milk", 1), ("bread", 1)],
            vec![25_14, 11_76],
        ),
        (
            "from 500 ₽: 10 % off the basket",
            vec![promo(1, Kind::BasketPercent { threshold: Kopecks(500_00), percent: 10 })],
            vec![("cheese", 1), ("bread", 1)],
            vec![45_00, 5_00],
        ),
        (
            "below the threshold: nothing",
            vec![promo(1, Kind::BasketAmount { threshold: Kopecks(2_000_00), amount: Kopecks(200_00) })],
            vec![("cheese", 1)],
            vec![0],
        ),
        (
            "the threshold counts what is left after item promotions",
            vec![
                promo(1, Kind::PercentOff { target: items(&["cheese"]), percent: 20 }),
                promo(2, Kind::BasketAmount { threshold: Kopecks(450_00), amount: Kopecks(100_00) }),
            ],
            vec![("cheese", 1), ("bread", 1)],
            vec![90_00, 0],
        ),
        (
            "a unit gets one item promotion: the higher priority's",
            vec![
                Promotion { priority: 1, ..promo(1, Kind::PercentOff { target: items(&["milk"]), percent: 10 }) },
                Promotion {
                    priority: 5,
                    ..promo(2, Kind::FixedPrice { target: items(&["milk"]), price: Kopecks(99_90) })
                },
            ],
            vec![("milk", 2)],
            vec![14_00],
        ),
        (
            "an exclusive group gives the best of its members",
            vec![
                Promotion {
                    exclusive_group: Some("milk".into()),
                    ..promo(1, Kind::PercentOff { target: items(&["milk"]), percent: 10 })
                },
                Promotion {
                    exclusive_group: Some("milk".into()),
                    ..promo(2, Kind::NForM { target: items(&["milk"]), n: 3, m: 2 })
                },
            ],
            vec![("milk", 3)],
            vec![106_90],
        ),
    ];
    for (what, promotions, basket, want) in cases {
        assert_eq!(price(promotions, &basket), want, "{what}");
    }
}

#[test]
fn the_sale_records_which_promotion_gave_what() {
    let set = PromotionSet::new(
        vec![
            Promotion { version: 3, ..promo(7, Kind::PercentOff { target: items(&["cheese"]), percent: 10 }) },
            promo(8, Kind::BasketAmount { threshold: Kopecks(100_00), amount: Kopecks(50_00) }),
        ],
        &TestCatalog,
    )
    .unwrap();
    let b = Basket::of(&[("cheese", 1), ("bread", 1)]);
    let priced = set.price(&b.lines(), &cx(None, &[], &BTreeSet::new()));
    assert_eq!(
        priced.lines[0].applied,
        vec![
            Applied { promotion: 7, version: 3, amount: Kopecks(45_00) },
            Applied { promotion: 8, version: 1, amount: Kopecks(44_51) }
        ]
    );
    assert_eq!(priced.lines[1].applied, vec![Applied { promotion: 8, version: 1, amount: Kopecks(5_49) }]);
    assert_eq!(priced.total_discount, Kopecks(95_00));
}

#[test]
fn who_where_and_when() {
    let card = CustomerId::parse("2990000000017").unwrap();
    let other = CustomerId::parse("2990000000024").unwrap();
    let off = |p: Promotion| {
        let set = PromotionSet::new(vec![p], &TestCatalog).unwrap();
        let b = Basket::of(&[("milk", 1)]);
        move |cx: Context<'_>| set.price(&b.lines(), &cx).total_discount.0 > 0
    };
    let base = promo(1, Kind::PercentOff { target: items(&["milk"]), percent: 10 });
    let none = BTreeSet::new();
    let coupons = ["summer-10".to_owned()];
    // Loyalty members only.
    let members = off(Promotion { audience: Audience::LoyaltyMembers, ..base.clone() });
    assert!(!members(cx(None, &[], &none)));
    assert!(members(cx(Some(&card), &[], &none)));
    // A personal offer.
    let personal = off(Promotion { audience: Audience::Customer(card.clone()), ..base.clone() });
    assert!(personal(cx(Some(&card), &[], &none)));
    assert!(!personal(cx(Some(&other), &[], &none)));
    // A shared coupon, compared without case; a single-use one needs a customer who has not used it.
    let shared =
        off(Promotion { coupon: Some(Coupon { code: "SUMMER-10".into(), single_use: false }), ..base.clone() });
    assert!(!shared(cx(None, &[], &none)));
    assert!(shared(cx(None, &coupons, &none)));
    let once = off(Promotion { coupon: Some(Coupon { code: "SUMMER-10".into(), single_use: true }), ..base.clone() });
    assert!(!once(cx(None, &coupons, &none)));
    assert!(once(cx(Some(&card), &coupons, &none)));
    assert!(!once(cx(Some(&card), &coupons, &BTreeSet::from([1]))));
    // Stores and channels.
    let store2 = off(Promotion { stores: Some(BTreeSet::from([StoreId(2)])), ..base.clone() });
    assert!(!store2(cx(None, &[], &none)));
    let online = off(Promotion { channels: BTreeSet::from([Channel::Online]), ..base.clone() });
    assert!(!online(cx(None, &[], &none)));
    assert!(online(Context { channel: Channel::Online, ..cx(None, &[], &none) }));
    // Days, weekdays and hours in the store's local time.
    let happy_hour = Window { from_minute: 18 * 60, to_minute: 20 * 60, ..Window::days(TODAY, TODAY) };
    let evening = off(Promotion { window: happy_hour.clone(), ..base.clone() });
    assert!(!evening(cx(None, &[], &none)), "noon");
    assert!(evening(Context { at: LocalTime { day: TODAY, minute: 19 * 60 }, ..cx(None, &[], &none) }));
    assert!(!evening(Context { at: LocalTime { day: TODAY + 1, minute: 19 * 60 }, ..cx(None, &[], &none) }));
    let weekends =
        off(Promotion { window: Window { weekdays: 0b110_0000, ..Window::days(TODAY - 7, TODAY + 7) }, ..base });
    assert!(!weekends(cx(None, &[], &none)), "a Friday");
    assert!(weekends(Context { at: LocalTime { day: TODAY + 1, minute: 600 }, ..cx(None, &[], &none) }));
    // Local time from a Unix instant: 2024-10-04 21:30 UTC is 00:30 on the 5th in Moscow.
    let at = LocalTime::from_unix_ms(i64::from(TODAY) * 86_400_000 + (21 * 60 + 30) * 60_000, 180);
    assert_eq!(at, LocalTime { day: TODAY + 1, minute: 30 });
    assert_eq!(LocalTime { day: TODAY, minute: 0 }.weekday(), 4, "Friday");
}

#[test]
fn bad_definitions_are_refused_naming_the_promotion_and_the_field() {
    let refused = |promotions: Vec<Promotion>| PromotionSet::new(promotions, &TestCatalog).unwrap_err();
    let e = refused(vec![promo(1, Kind::NForM { target: items(&["milk"]), n: 3, m: 3 })]);
    assert_eq!((e.id, e.field), (1, "m"));
    let e = refused(vec![Promotion {
        window: Window::days(TODAY, TODAY - 1),
        ..promo(2, Kind::PercentOff { target: items(&["milk"]), percent: 5 })
    }]);
    assert_eq!((e.id, e.field), (2, "window"));
    assert!(e.to_string().contains("promotion 2: window: it ends before it starts"), "{e}");
    let e = refused(vec![promo(3, Kind::PercentOff { target: items(&["caviar"]), percent: 5 })]);
    assert_eq!((e.id, e.field), (3, "items"));
    assert!(e.reason.contains("caviar"));
    let e = refused(vec![promo(4, Kind::PercentOff { target: category("jewellery"), percent: 5 })]);
    assert_eq!((e.id, e.field), (4, "categories"));
    let e = refused(vec![
        promo(5, Kind::PercentOff { target: items(&["milk"]), percent: 5 }),
        promo(5, Kind::PercentOff { target: items(&["kefir"]), percent: 5 }),
    ]);
    assert_eq!((e.id, e.field), (5, "id"));
    let e = refused(vec![promo(6, Kind::PercentOff { target: items(&["milk"]), percent: 101 })]);
    assert_eq!((e.id, e.field), (6, "percent"));
    let e = refused(vec![promo(7, Kind::BasketAmount { threshold: Kopecks(100_00), amount: Kopecks(200_00) })]);
    assert_eq!((e.id, e.field), (7, "amount"));
    let e = refused(vec![Promotion {
        name: " ".into(),
        ..promo(8, Kind::PercentOff { target: items(&["milk"]), percent: 5 })
    }]);
    assert_eq!((e.id, e.field), (8, "name"));
    let e = refused(vec![promo(9, Kind::Bundle { components: vec![items(&["milk"])], price: Kopecks(1) })]);
    assert_eq!((e.id, e.field), (9, "components"));
}

/// A random set of promotions over the test catalog.
fn arb_promotion(id: u32) -> impl Strategy<Value = Promotion> {
    let target = prop_oneof![
        prop::sample::subsequence(ITEMS.iter().map(|i| i.0).collect::<Vec<_>>(), 1..4).prop_map(|s| items(&s)),
        prop::sample::select(vec!["dairy", "bakery", "drinks", "fruit"]).prop_map(category),
    ];
    let kind = prop_oneof![
        (target.clone(), 1u8..=100).prop_map(|(target, percent)| Kind::PercentOff { target, percent }),
        (target.clone(), 1i64..500_00).prop_map(|(target, a)| Kind::AmountOff { target, amount: Kopecks(a) }),
        (target.clone(), 1i64..500_00).prop_map(|(target, a)| Kind::FixedPrice { target, price: Kopecks(a) }),
        (target.clone(), 2u32..5)
            .prop_flat_map(move |(t, n)| (Just(t), Just(n), 1..n))
            .prop_map(|(target, n, m)| Kind::NForM { target, n, m }),
        (target.clone(), 2u32..5, 1i64..500_00).prop_map(|(target, n, p)| Kind::NForPrice {
            target,
            n,
            price: Kopecks(p)
        }),
        (target.clone(), target.clone(), 1u32..3, 1u32..3, 1u8..=100)
            .prop_map(|(buy, get, buy_qty, get_qty, percent)| { Kind::BuyGet { buy, buy_qty, get, get_qty, percent } }),
        (prop::collection::vec(target, 2..4), 1i64..500_00)
            .prop_map(|(components, p)| Kind::Bundle { components, price: Kopecks(p) }),
        (1i64..1_000_00, 1u8..=50).prop_map(|(t, percent)| Kind::BasketPercent { threshold: Kopecks(t), percent }),
        (100_00i64..1_000_00, 1i64..100_00)
            .prop_map(|(t, a)| Kind::BasketAmount { threshold: Kopecks(t), amount: Kopecks(a) }),
    ];
    (kind, 0u16..4, prop::option::of(prop::sample::select(vec!["a", "b"]))).prop_map(move |(kind, priority, group)| {
        Promotion { priority, exclusive_group: group.map(str::to_owned), ..promo(id, kind) }
    })
}

fn arb_case() -> impl Strategy<Value = (Vec<Promotion>, Vec<(usize, i64)>, Vec<usize>)> {
    let promotions = (0usize..12).prop_flat_map(|n| (0..n as u32).map(arb_promotion).collect::<Vec<_>>());
    let lines = prop::collection::vec(
        (0..ITEMS.len()).prop_flat_map(|i| (Just(i), if ITEMS[i].2 == Unit::Piece { 1i64..8 } else { 50i64..3_000 })),
        1..10,
    );
    (promotions, lines).prop_flat_map(|(p, lines)| {
        let n = lines.len();
        (Just(p), Just(lines), Just((0..n).collect::<Vec<_>>()).prop_shuffle())
    })
}

proptest! {
    /// No line below zero; lines add up to the total to the kopeck; each line's parts add
    /// up to its discount; the same basket scanned in another order gets the same
    /// discounts line for line; pricing twice gives the same answer.
    #[test]
    fn invariants((promotions, rows, order) in arb_case()) {
        let set = PromotionSet::new(promotions, &TestCatalog).unwrap();
        let basket = Basket { skus: rows.iter().map(|&(i, _)| sku(ITEMS[i].0)).collect(), rows: rows.clone() };
        let lines = basket.lines();
        let none = BTreeSet::new();
        let priced = set.price(&lines, &cx(None, &[], &none));
        prop_assert_eq!(priced.lines.len(), lines.len());
        let mut sum = 0;
        for (l, d) in lines.iter().zip(&priced.lines) {
            prop_assert!(d.discount.0 >= 0 && d.discount <= l.amount, "{:?} on {:?}", d, l);
            prop_assert_eq!(d.applied.iter().map(|a| a.amount.0).sum::<i64>(), d.discount.0);
            prop_assert!(d.applied.iter().all(|a| a.amount.0 > 0));
            sum += d.discount.0;
        }
        prop_assert_eq!(sum, priced.total_discount.0);
        prop_assert_eq!(&set.price(&lines, &cx(None, &[], &none)), &priced);
        // Scanned in another order.
        let shuffled = Basket {
            skus: order.iter().map(|&i| basket.skus[i].clone()).collect(),
            rows: order.iter().map(|&i| rows[i]).collect(),
        };
        let again = set.price(&shuffled.lines(), &cx(None, &[], &none));
        prop_assert_eq!(again.total_discount, priced.total_discount);
        let mut a: Vec<_> = order.iter().zip(&again.lines).map(|(&i, d)| (rows[i], d.discount)).collect();
        let mut b: Vec<_> = rows.iter().zip(&priced.lines).map(|(&r, d)| (r, d.discount)).collect();
        a.sort();
        b.sort();
        prop_assert_eq!(a, b);
    }
}

#[test]
fn vat_is_computed_on_what_the_customer_pays() {
    // 10 ₽ off a 50 ₽ loaf at 20 % VAT: VAT on 40 ₽ is 6,67.
    let discounts =
        price(vec![promo(1, Kind::AmountOff { target: items(&["bread"]), amount: Kopecks(10_00) })], &[("bread", 1)]);
    let paid = Kopecks(50_00 - discounts[0]);
    assert_eq!(pricing::vat_included(paid, VatRate::Vat20), Kopecks(6_67));
}

#[test]
fn a_large_set_only_looks_at_what_the_basket_holds() {
    // 10,000 promotions on other SKUs and categories are not even tried.
    let mut promotions: Vec<Promotion> =
        (0..10_000).map(|id| promo(id, Kind::PercentOff { target: items(&["water"]), percent: 5 })).collect();
    promotions.push(promo(10_000, Kind::PercentOff { target: items(&["milk"]), percent: 10 }));
    let set = PromotionSet::new(promotions, &TestCatalog).unwrap();
    assert_eq!(set.len(), 10_001);
    let b = Basket::of(&[("milk", 1)]);
    let priced = set.price(&b.lines(), &cx(None, &[], &BTreeSet::new()));
    assert_eq!(priced.lines[0].applied, vec![Applied { promotion: 10_000, version: 1, amount: Kopecks(10_69) }]);
}

// ---- the till's basket under promotions ----

fn item(s: &str) -> crate::catalog::CatalogItem {
    let (sku_, category, unit, price) = *ITEMS.iter().find(|i| i.0 == s).expect("known");
    crate::catalog::CatalogItem {
        sku: sku(sku_),
        gtin: None,
        name: sku_.to_owned(),
        category: category.to_owned(),
        price: Kopecks(price),
        vat: VatRate::Vat10,
        unit,
        plu: None,
    }
}

fn till_basket(lines: &[(&str, i64)]) -> crate::basket::Basket {
    let mut b = crate::basket::Basket::new(1);
    for (s, q) in lines {
        b.add(&item(s), *q).unwrap();
    }
    b
}

#[test]
fn a_basket_records_each_promotion_by_name_and_the_manual_discount_comes_after() {
    let set =
        PromotionSet::new(vec![promo(7, Kind::NForM { target: category("dairy"), n: 3, m: 2 })], &TestCatalog).unwrap();
    let none = BTreeSet::new();
    let mut b = till_basket(&[("milk", 2), ("kefir", 1), ("bread", 1)]);
    b.apply_promotions(&set, &cx(None, &[], &none));
    // 3 for 2 on dairy: the cheapest of the three (kefir, 89,90) is free.
    assert_eq!(b.lines[1].promotions.len(), 1);
    assert_eq!(b.lines[1].promotions[0].name, "Акция 7");
    assert_eq!((b.lines[1].promotions[0].promotion, b.lines[1].promotions[0].amount), (7, Kopecks(89_90)));
    assert_eq!(b.promotions_saved(), Kopecks(89_90));
    assert_eq!(b.totals().unwrap().total, Kopecks(2 * 106_90 + 50_00));
    // A manager's 10 % on top applies to what is left to pay: 263,80 → 26,38.
    b.set_discount(Some(crate::basket::BasketDiscount::Percent(10))).unwrap();
    b.apply_promotions(&set, &cx(None, &[], &none));
    let t = b.totals().unwrap();
    assert_eq!(t.discount, Kopecks(89_90 + 26_38));
    assert_eq!(t.total, Kopecks(2 * 106_90 + 50_00 - 26_38));
    assert_eq!(b.lines[1].net(), Kopecks::ZERO, "a free unit stays free: the manual share goes elsewhere");
    assert_eq!(b.promotions_saved(), Kopecks(89_90), "the manager's part is not a promotion's");
    // A line whose price a manager overrode takes no promotion.
    b.override_price(0, Kopecks(100_00)).unwrap();
    b.apply_promotions(&set, &cx(None, &[], &none));
    assert!(b.lines[0].promotions.is_empty());
    assert!(b.lines.iter().all(|l| l.promotions.is_empty()), "two dairy units left: no group of three");
    // Removing the kefir: the promotion goes, and a fixed discount that no longer fits is dropped.
    let mut b = till_basket(&[("milk", 2), ("kefir", 1)]);
    b.apply_promotions(&set, &cx(None, &[], &none));
    b.set_discount(Some(crate::basket::BasketDiscount::Amount(Kopecks(200_00)))).unwrap();
    b.remove(1).unwrap();
    b.apply_promotions(&set, &cx(None, &[], &none));
    assert_eq!(b.promotions_saved(), Kopecks::ZERO);
    assert_eq!(b.totals().unwrap().total, Kopecks(13_80), "213,80 − 200,00");
}

#[test]
fn a_coupon_is_kept_in_capitals_once_and_bounded() {
    let mut p = promo(3, Kind::PercentOff { target: items(&["cheese"]), percent: 20 });
    p.coupon = Some(Coupon { code: "SYR20".into(), single_use: false });
    let set = PromotionSet::new(vec![p], &TestCatalog).unwrap();
    let none = BTreeSet::new();
    let mut b = till_basket(&[("cheese", 1)]);
    b.apply_promotions(&set, &cx(None, &b.coupons.clone(), &none));
    assert_eq!(b.promotions_saved(), Kopecks::ZERO, "no coupon, no discount");
    b.add_coupon(" syr20 ").unwrap();
    b.add_coupon("SYR20").unwrap();
    assert_eq!(b.coupons, vec!["SYR20".to_owned()]);
    let coupons = b.coupons.clone();
    b.apply_promotions(&set, &cx(None, &coupons, &none));
    assert_eq!(b.promotions_saved(), Kopecks(90_00));
    assert_eq!(b.add_coupon(""), Err(crate::basket::BasketError::Coupon));
    assert_eq!(b.add_coupon("a b"), Err(crate::basket::BasketError::Coupon));
    assert_eq!(b.add_coupon("СЫР20"), Err(crate::basket::BasketError::Coupon), "Latin letters only");
    for i in 0..crate::basket::COUPONS_MAX - 1 {
        b.add_coupon(&format!("C{i}")).unwrap();
    }
    assert_eq!(b.add_coupon("ONE-TOO-MANY"), Err(crate::basket::BasketError::Coupon));
}

proptest! {
    /// A basket priced by the till: whatever promotions and manual discount, lines never
    /// go below zero, each line's promotions are part of its discount, the totals add
    /// up, and a committed sale of it validates.
    #[test]
    fn a_priced_basket_adds_up((promotions, rows, _order) in arb_case(), manual in 0u8..=50) {
        let set = PromotionSet::new(promotions, &TestCatalog).unwrap();
        let mut b = crate::basket::Basket::new(1);
        for &(i, q) in &rows {
            b.add(&item(ITEMS[i].0), q).unwrap();
        }
        if manual > 0 {
            b.set_discount(Some(crate::basket::BasketDiscount::Percent(manual))).unwrap();
        }
        let none = BTreeSet::new();
        b.apply_promotions(&set, &cx(None, &[], &none));
        let t = b.totals().unwrap();
        prop_assert_eq!(t.total.0, b.lines.iter().map(|l| l.net().0).sum::<i64>());
        for l in &b.lines {
            prop_assert!(l.net().0 >= 0 && l.promotion_discount() <= l.discount);
        }
        let sale = crate::sale::Sale {
            id: crate::SaleId { store: StoreId(1), seq: 1 },
            receipt_no: "0001-01-000001".into(),
            terminal: 1,
            cashier: "u".into(),
            created_at_ms: 0,
            lines: b.lines.clone(),
            tenders: vec![crate::sale::Tender { kind: crate::sale::TenderKind::Card, amount: t.total }],
            total: t.total,
            change: Kopecks::ZERO,
            loyalty: None,
        };
        if t.total.0 > 0 {
            prop_assert_eq!(sale.validate(), Ok(()));
        }
    }
}

/// A sale of a priced basket (paid by card, exactly).
fn sale_of(b: &crate::basket::Basket) -> crate::sale::Sale {
    let total = b.totals().unwrap().total;
    crate::sale::Sale {
        id: crate::SaleId { store: StoreId(1), seq: 1 },
        receipt_no: "0001-01-000001".into(),
        terminal: 1,
        cashier: "u".into(),
        created_at_ms: 0,
        lines: b.lines.clone(),
        tenders: vec![crate::sale::Tender { kind: crate::sale::TenderKind::Card, amount: total }],
        total,
        change: Kopecks::ZERO,
        loyalty: None,
    }
}

/// Returning part of a "3 for 2" refunds what was paid for the units returned: a line's
/// paid amount shared among its units, the group not worked out again. Three of one
/// item on one line: each unit refunds a third of what the three cost. Across lines:
/// the free unit refunds nothing, a paid one what it cost. Either way all the returns
/// together refund exactly what was paid, never more.
#[test]
fn returning_part_of_three_for_two_refunds_what_was_paid_never_more() {
    use crate::returns::plan;
    let set =
        PromotionSet::new(vec![promo(7, Kind::NForM { target: category("dairy"), n: 3, m: 2 })], &TestCatalog).unwrap();
    let none = BTreeSet::new();
    // One line of three milks: paid 213,80 for 320,70.
    let mut b = till_basket(&[("milk", 3)]);
    b.apply_promotions(&set, &cx(None, &[], &none));
    let sale = sale_of(&b);
    assert_eq!(sale.total, Kopecks(2 * 106_90));
    let one = plan(&sale, &vec![], &[(0, 1)]).unwrap();
    assert_eq!(one[0].amount, Kopecks(71_27), "a third of 213,80, rounded");
    let rest = plan(&sale, &vec![(1, one[0].amount)], &[(0, 2)]).unwrap();
    assert_eq!(one[0].amount.0 + rest[0].amount.0, sale.total.0, "all three refund exactly what was paid");
    // Three dairy lines: the cheapest (kefir) was free.
    let mut b = till_basket(&[("cheese", 1), ("milk", 1), ("kefir", 1)]);
    b.apply_promotions(&set, &cx(None, &[], &none));
    let sale = sale_of(&b);
    let kefir = plan(&sale, &vec![], &[(2, 1)]).unwrap();
    assert_eq!(kefir[0].amount, Kopecks::ZERO, "the free unit refunds nothing");
    let all = plan(&sale, &vec![], &[(0, 1), (1, 1), (2, 1)]).unwrap();
    assert_eq!(all.iter().map(|l| l.amount.0).sum::<i64>(), sale.total.0);
}
