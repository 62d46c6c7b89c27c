//! Fixtures of the formats orders paid now at a till brought (the endless aisle's
//! prepayment), read by today's code: the store's journal at schema 8 (a prepayment's
//! chain record, its rows for the shift's reports, its receipt's print job, an order
//! whose customer did not pay, both words in the outbox) and HQ's database at schema 9
//! (an order awaiting its till's payment, one paid).
//!
//! The files under `tests/fixtures/formats-prepayments/` are never edited; they were
//! written once by `write_fixtures_with_prepayments` below (`KASSA_WRITE_FIXTURES=1`,
//! missing files only), and a later release's upgrade test reads them.

use std::path::{Path, PathBuf};

use kassa_agent::journal::{Printable, WriteError};
use kassa_agent::Journal;
use kassa_protocol::orders::{Order, OrderChannel, OrderId, OrderPayment, OrderState, Payment, TillPayment};
use kassa_protocol::sale::{Tender, TenderKind};
use kassa_protocol::wire::{Change, OutboxEntry};
use kassa_protocol::{ActorId, Kopecks, Sku, StoreId};

const CATALOG: &str = include_str!("../../data/catalog.csv");
/// The store whose till ordered and paid; the pickup store.
const STORE: StoreId = StoreId(1);
const PICKUP: StoreId = StoreId(2);
const T0: i64 = 1_764_100_000_000;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/formats-prepayments")
}

/// An order of `quantity` milks as HQ prices it, placed by store 1's till for pickup at
/// store 2, to be paid at the till.
fn order(id: u64, quantity: i64) -> Order {
    let items = kassa_protocol::catalog::parse_csv(CATALOG).unwrap();
    let milk = items.iter().find(|i| i.sku.0 == "100001").unwrap();
    let mut basket = kassa_protocol::basket::Basket::new(0);
    basket.add(milk, quantity).unwrap();
    Order {
        id: OrderId(id),
        store: PICKUP,
        channel: OrderChannel::Store(STORE),
        customer: None,
        phone: None,
        note: "Пётр".into(),
        lines: basket.lines,
        payment: Payment::Prepaid,
        created_at_ms: T0,
        expires_at_ms: T0 + 3 * 86_400_000,
    }
}

/// Cash for order 1 with 10 ₽ change.
fn cash(o: &Order) -> Vec<Tender> {
    vec![Tender { kind: TenderKind::Cash, amount: Kopecks(o.total().0 + 1_000) }]
}

/// Writes the fixtures (only when asked, only if missing).
#[test]
fn write_fixtures_with_prepayments() {
    if std::env::var("KASSA_WRITE_FIXTURES").is_err() || dir().join("journal.sqlite").exists() {
        return;
    }
    std::fs::create_dir_all(dir()).unwrap();
    let items = kassa_protocol::catalog::parse_csv(CATALOG).unwrap();
    let j = kassa_tests::fixture_journal(&dir().join("journal.sqlite"), STORE, T0);
    let one = order(1, 2);
    j.prepay_order(1, "kassir", &one, &cash(&one), "prepay-1", T0 + 10).unwrap();
    j.abandon_order(OrderId(2), T0 + 20).unwrap();
    drop(j);

    let db = kassa_hq::Db::open(&dir().join("hq.sqlite")).unwrap();
    db.publish_catalog(&items).unwrap();
    db.deliver(PICKUP, &[(Sku("100001".into()), 10)]).unwrap();
    let audit = kassa_hq::db::NewAudit {
        at_ms: T0,
        actor_kind: "store",
        actor: "1".into(),
        action: "order.place",
        summary: serde_json::Value::Null,
    };
    db.place_order(order(0, 2), Some("till-1"), &audit, T0).unwrap().unwrap();
    db.place_order(order(0, 1), Some("till-2"), &audit, T0 + 1).unwrap().unwrap();
    let actor = ActorId { store: STORE, epoch: 1 };
    db.hello(actor, 0, 1, T0 + 2).unwrap();
    let payment = OrderPayment {
        order: OrderId(1),
        store: STORE,
        outcome: TillPayment::Paid { amount: order(1, 2).total() },
        at_ms: T0 + 3,
    };
    db.apply(actor, &[OutboxEntry { seq: 1, change: Change::OrderPayment { payment } }], 1, 1, T0 + 4).unwrap();
    drop(db);
    kassa_tests::seal_fixtures(&dir(), &["journal.sqlite", "hq.sqlite"]);
}

fn copy() -> tempfile::TempDir {
    kassa_tests::copy_fixtures(&dir(), &["journal.sqlite", "hq.sqlite"])
}

fn fixture_version(file: &str) -> u32 {
    kassa_tests::fixture_version(&dir().join(file))
}

#[test]
fn the_stores_prepayments_of_this_format_are_read_back_whole() {
    assert_eq!(fixture_version("journal.sqlite"), 8);
    let tmp = copy();
    let j = Journal::open(&tmp.path().join("journal.sqlite"), STORE).unwrap();
    let report = j.verify().unwrap();
    assert!(report.ok(), "{report:?}");
    let one = order(1, 2);
    // The shift's figures count the prepayment as the money it is: one receipt, cash
    // net of the change in the drawer.
    let x = j.x_report(1).unwrap().expect("the shift is open");
    assert_eq!((x.sales_count, x.sales_total, x.expected_cash), (1, one.total(), one.total()));
    assert_eq!(x.vat.iter().map(|v| v.sales.0).sum::<i64>(), one.total().0);
    let words: Vec<_> = j
        .outbox_after(0, 100)
        .unwrap()
        .into_iter()
        .filter_map(|e| match e.change {
            Change::OrderPayment { payment } => Some((payment.order.0, payment.outcome)),
            _ => None,
        })
        .collect();
    assert_eq!(words, vec![(1, TillPayment::Paid { amount: one.total() }), (2, TillPayment::Abandoned)]);
    // The receipt waits in the print queue, read from the chain record.
    let job = j.next_print_job().unwrap().expect("the prepayment's receipt");
    let Printable::Prepayment(p) = &job.printable else { panic!("{:?}", job.printable) };
    assert_eq!((&p.order, p.change, p.tenders.clone()), (&one, Kopecks(1_000), cash(&one)));
    // Paid once, refused once: neither can be said again.
    let again = j.prepay_order(1, "kassir", &one, &cash(&one), "prepay-9", T0 + 60);
    assert!(matches!(again, Err(WriteError::OrderPaid(OrderId(1)))), "{again:?}");
    assert!(matches!(j.abandon_order(OrderId(1), T0 + 61), Err(WriteError::OrderPaid(_))));
    let two = order(2, 1);
    let after = j.prepay_order(1, "kassir", &two, &cash(&two), "prepay-10", T0 + 62);
    assert!(matches!(after, Err(WriteError::OrderAbandoned(OrderId(2)))), "{after:?}");
}

#[test]
fn hqs_till_orders_of_this_format_are_read_back_whole() {
    assert_eq!(fixture_version("hq.sqlite"), 9);
    let tmp = copy();
    let db = kassa_hq::Db::open(&tmp.path().join("hq.sqlite")).unwrap();
    let one = db.order(OrderId(1)).unwrap().expect("order 1");
    let paid = one.till_payment.expect("placed to be paid at a till");
    assert_eq!((paid.store, paid.code(), paid.paid.map(|p| p.0)), (STORE, "paid", Some(order(1, 2).total())));
    let two = db.order(OrderId(2)).unwrap().expect("order 2");
    assert_eq!((two.state, two.till_payment.map(|t| t.code())), (OrderState::New, Some("awaiting")));
    let (offer, _) = db.orders_to_offer(PICKUP).unwrap();
    assert_eq!(offer.iter().map(|o| o.id.0).collect::<Vec<_>>(), vec![1], "the unpaid one waits");
    let wait = kassa_protocol::orders::TILL_PAYMENT_WAIT_MS;
    assert_eq!(db.cancel_unpaid_orders(T0 + 1 + wait).unwrap(), vec![OrderId(2)]);
}
