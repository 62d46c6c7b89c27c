//! Fixtures of the format one customer in every channel brought, read by today's code:
//! HQ's database at schema 13 (a sale with a card indexed by the card, an order with
//! the customer's phone).
//!
//! The files under `tests/fixtures/formats-customers/` are never edited; they were
//! written once by `write_fixtures_with_customers` below (`KASSA_WRITE_FIXTURES=1`,
//! missing files only), and a later release's upgrade test reads them.

use std::path::{Path, PathBuf};

use kassa_protocol::loyalty::{Customer, CustomerId, LinePoints, SaleLoyalty};
use kassa_protocol::orders::{Order, Payment};
use kassa_protocol::wire::{Change, OutboxEntry};
use kassa_protocol::{ActorId, Kopecks, Sku, StoreId};

const STORE: StoreId = StoreId(1);
const T0: i64 = 1_765_000_000_000;
const PHONE: &str = "+7 912 000-11-22";

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/formats-customers")
}

fn card() -> CustomerId {
    CustomerId::parse("00001000000007").unwrap()
}

/// An online order of one milk for pickup at store 1, placed with the customer's phone.
fn order() -> Order {
    kassa_tests::fixture_milk_order(0, STORE, 1, Payment::AtPickup, (PHONE, ""), T0)
}

/// Writes the fixtures (only when asked, only if missing).
#[test]
fn write_fixtures_with_customers() {
    if std::env::var("KASSA_WRITE_FIXTURES").is_err() || dir().join("hq.sqlite").exists() {
        return;
    }
    std::fs::create_dir_all(dir()).unwrap();
    let items = kassa_protocol::catalog::parse_csv(include_str!("../../data/catalog.csv")).unwrap();
    let db = kassa_hq::Db::open(&dir().join("hq.sqlite")).unwrap();
    db.publish_catalog(&items).unwrap();
    let actor = ActorId { store: STORE, epoch: 1 };
    db.hello(actor, 0, 1, T0).unwrap();
    let customer = Customer::new(card(), PHONE, Some("Анна")).unwrap();
    let mut sale = kassa_tests::fixture_card_sale(STORE, 3, T0 + 1);
    sale.loyalty = Some(SaleLoyalty {
        customer: card(),
        point_value_kopecks: 100,
        redeemed_points: 0,
        lines: vec![LinePoints { paid_in_points: Kopecks::ZERO, earned_points: 32 }],
    });
    let entries = vec![
        OutboxEntry { seq: 1, change: Change::Loyalty { customer: Some(customer), entries: vec![] } },
        OutboxEntry { seq: 2, change: Change::Sale { sale, counters: vec![] } },
    ];
    db.apply(actor, &entries, 2, 2, T0 + 2).unwrap();
    db.deliver(STORE, &[(Sku("100001".into()), 5)]).unwrap();
    let audit = kassa_tests::fixture_audit(T0, "order.place");
    db.place_order(order(), Some("shop-1"), &audit, T0 + 3).unwrap().unwrap();
    drop(db);
    kassa_tests::seal_fixtures(&dir(), &["hq.sqlite"]);
}

#[test]
fn a_customers_history_of_this_format_is_read_back() {
    assert_eq!(kassa_tests::fixture_version(&dir().join("hq.sqlite")), 13);
    let tmp = kassa_tests::copy_fixtures(&dir(), &["hq.sqlite"]);
    let db = kassa_hq::Db::open(&tmp.path().join("hq.sqlite")).unwrap();
    let (customer, history) = db.customer_history(&card()).unwrap().expect("the customer");
    let purchases: Vec<_> = history.purchases.iter().map(|p| (p.doc.store.0, p.doc.seq, p.kind.code())).collect();
    assert_eq!(purchases, vec![(1, 3, "sale")], "{history:?}");
    let orders: Vec<_> = history.orders.iter().map(|o| (o.id.0, o.channel, o.state.code())).collect();
    assert_eq!(orders, vec![(1, kassa_protocol::orders::OrderChannel::Online, "new")], "{history:?}");
    assert_eq!(customer.name.as_deref(), Some("Анна"));
}
