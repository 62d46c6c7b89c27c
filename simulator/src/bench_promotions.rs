//! `kassa-sim bench promotions`: reprices a 50-line basket against a large published set
//! of promotions — the work a till does after every scan, and HQ for every online
//! price request — and the same basket against an empty set, measured in the same run
//! (what pricing costs with nothing to apply).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use kassa_protocol::catalog::Unit;
use kassa_protocol::promotions::{
    Audience, Catalog, Channel, Context, Kind, LocalTime, PriceLine, Promotion, PromotionSet, Target, Window,
};
use kassa_protocol::seeded::SeededRng as Rng;
use kassa_protocol::{pricing, Kopecks, Sku, StoreId};

use crate::bench::{machine, percentile};

/// The synthetic catalog: SKUs in categories, like a supermarket's.
const SKUS: usize = 20_000;
const CATEGORIES: usize = 200;
const BASKET_LINES: usize = 50;
/// Reprices measured (after as many for warm-up).
const REPRICES: usize = 5_000;

struct Synthetic;

impl Catalog for Synthetic {
    fn has_sku(&self, _: &Sku) -> bool {
        true
    }
    fn has_category(&self, _: &str) -> bool {
        true
    }
}

fn sku(i: usize) -> Sku {
    Sku(format!("{}", 100_000 + i))
}

fn category(i: usize) -> String {
    format!("cat-{:03}", i % CATEGORIES)
}

/// A realistic mix: mostly item discounts and promotional prices on a few SKUs, many
/// per category (about fifty per category); some multi-buys and sets; a handful of
/// basket thresholds competing in one exclusive group; other exclusive groups; a few for
/// loyalty members; windows around `today`. SKUs and categories are drawn from the
/// catalog's by `sku_of` and `category_of`. `bench scan` loads the same mix over the
/// demo catalog.
pub fn mix(
    n: usize,
    rng: &mut Rng,
    sku_of: impl Fn(&mut Rng) -> Sku,
    category_of: impl Fn(&mut Rng) -> String,
    today: i32,
) -> Vec<Promotion> {
    (0..n)
        .map(|i| {
            let few_items = |rng: &mut Rng| Target::Items((0..1 + rng.below(5)).map(|_| sku_of(rng)).collect());
            let cat = |rng: &mut Rng| Target::Categories(BTreeSet::from([category_of(rng)]));
            let kind = match rng.below(100) {
                0..=29 => Kind::PercentOff { target: few_items(rng), percent: 5 + rng.below(30) as u8 },
                30..=44 => {
                    Kind::FixedPrice { target: few_items(rng), price: Kopecks(1_000 + rng.below(50_000) as i64) }
                }
                45..=54 => Kind::AmountOff { target: few_items(rng), amount: Kopecks(500 + rng.below(5_000) as i64) },
                55..=69 => Kind::PercentOff { target: cat(rng), percent: 3 + rng.below(15) as u8 },
                70..=77 => Kind::NForM { target: cat(rng), n: 3, m: 2 },
                78..=84 => {
                    Kind::NForPrice { target: few_items(rng), n: 2, price: Kopecks(5_000 + rng.below(20_000) as i64) }
                }
                85..=90 => Kind::BuyGet { buy: cat(rng), buy_qty: 2, get: cat(rng), get_qty: 1, percent: 50 },
                91..=95 => Kind::Bundle {
                    components: vec![cat(rng), cat(rng)],
                    price: Kopecks(10_000 + rng.below(30_000) as i64),
                },
                // A chain runs a handful of basket offers at a time, not hundreds.
                _ if i % 500 == 0 => {
                    Kind::BasketPercent { threshold: Kopecks(200_000 + rng.below(300_000) as i64), percent: 5 }
                }
                _ if i % 500 == 1 => Kind::BasketAmount { threshold: Kopecks(300_000), amount: Kopecks(20_000) },
                _ => Kind::PercentOff { target: few_items(rng), percent: 10 },
            };
            let basket = matches!(kind, Kind::BasketPercent { .. } | Kind::BasketAmount { .. });
            Promotion {
                id: i as u32,
                version: 1,
                name: format!("Акция {i}"),
                kind,
                priority: rng.below(5) as u16,
                exclusive_group: if basket {
                    Some("basket".to_owned())
                } else {
                    (rng.below(3) == 0).then(|| format!("g{}", rng.below(50)))
                },
                window: Window::days(today - 30, today + 30),
                stores: None,
                channels: BTreeSet::from([Channel::Store, Channel::Online]),
                audience: if rng.below(10) == 0 { Audience::LoyaltyMembers } else { Audience::Everyone },
                coupon: None,
            }
        })
        .collect()
}

/// Times `REPRICES` reprices of the basket under `set`; returns the sorted latencies and
/// the discount found.
fn measure(set: &PromotionSet, lines: &[PriceLine<'_>], cx: &Context<'_>) -> (Vec<Duration>, Kopecks) {
    let mut discount = Kopecks::ZERO;
    for _ in 0..REPRICES {
        discount = std::hint::black_box(set.price(std::hint::black_box(lines), cx)).total_discount;
    }
    let mut times = Vec::with_capacity(REPRICES);
    for _ in 0..REPRICES {
        let t = Instant::now();
        let priced = set.price(std::hint::black_box(lines), cx);
        times.push(t.elapsed());
        std::hint::black_box(&priced);
    }
    times.sort();
    (times, discount)
}

pub fn promotions_bench(active: usize) -> anyhow::Result<()> {
    if cfg!(debug_assertions) {
        eprintln!("warning: a debug build; benchmark figures mean something only with --release");
    }
    let mut rng = Rng::new(0x9a55_a000);
    let started = Instant::now();
    let promotions = mix(
        active,
        &mut rng,
        |rng| sku(rng.below(SKUS as u64) as usize),
        |rng| category(rng.below(CATEGORIES as u64) as usize),
        20_000,
    );
    let set = PromotionSet::new(promotions, &Synthetic)?;
    let indexed = started.elapsed();
    let empty = PromotionSet::new(Vec::new(), &Synthetic)?;
    // A 50-line basket: pieces of various SKUs (some repeated categories), a few weighed.
    let skus: Vec<Sku> = (0..BASKET_LINES).map(|_| sku(rng.below(SKUS as u64) as usize)).collect();
    let categories: Vec<String> = (0..BASKET_LINES).map(|i| category(i * 7 % 40)).collect();
    let lines: Vec<PriceLine<'_>> = (0..BASKET_LINES)
        .map(|i| {
            let unit = if i % 10 == 9 { Unit::Kilogram } else { Unit::Piece };
            let quantity = if unit == Unit::Kilogram { 500 + rng.below(1_500) as i64 } else { 1 + rng.below(4) as i64 };
            let price = Kopecks(3_000 + rng.below(60_000) as i64);
            PriceLine {
                sku: &skus[i],
                category: &categories[i],
                unit,
                quantity,
                price,
                amount: pricing::line_amount(price, unit, quantity).expect("small"),
            }
        })
        .collect();
    let customer = kassa_protocol::loyalty::CustomerId::issued(StoreId(1), 1)?;
    let used = BTreeSet::new();
    let cx = Context {
        store: StoreId(1),
        channel: Channel::Store,
        at: LocalTime { day: 20_000, minute: 12 * 60 },
        customer: Some(&customer),
        coupons: &[],
        used_coupons: &used,
    };
    let (with, discount) = measure(&set, &lines, &cx);
    let (without, _) = measure(&empty, &lines, &cx);
    let gross: i64 = lines.iter().map(|l| l.amount.0).sum();
    println!("machine: {}", machine());
    println!(
        "{active} promotions indexed in {indexed:.1?}; a {BASKET_LINES}-line basket of {} (discount {discount})",
        Kopecks(gross)
    );
    println!("{:<22} {:>10} {:>10} {:>10} {:>10}", "reprice", "p50", "p90", "p99", "max");
    for (name, t) in [(format!("{active} promotions"), &with), ("no promotions".to_owned(), &without)] {
        println!(
            "{:<22} {:>8}us {:>8}us {:>8}us {:>8}us",
            name,
            percentile(t, 50).as_micros(),
            percentile(t, 90).as_micros(),
            percentile(t, 99).as_micros(),
            t.last().map_or(0, Duration::as_micros)
        );
    }
    anyhow::ensure!(discount.0 > 0, "the benchmark's basket found no promotion: the mix is wrong");
    println!("promotions: p99 {} us per reprice, {active} active", percentile(&with, 99).as_micros());
    Ok(())
}
