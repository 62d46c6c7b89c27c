//! Fixtures of the formats orders for pickup brought, read by today's code: the store's
//! journal at schema 7 (orders kept, their events, a prepaid handover's chain record, a
//! picking list's print job) and HQ's database at schema 8 (orders placed, a store's
//! update applied, the orders feed).
//!
//! The files under `tests/fixtures/formats-orders/` are never edited; they were written
//! once by `write_fixtures_with_orders` below (`KASSA_WRITE_FIXTURES=1`, missing files
//! only), and a later release's upgrade test reads them.

use std::path::{Path, PathBuf};

use kassa_agent::journal::Printable;
use kassa_agent::Journal;
use kassa_protocol::orders::{Handover, Order, OrderEvent, OrderId, OrderState, OrderUpdate, Payment};
use kassa_protocol::wire::{Change, OutboxEntry};
use kassa_protocol::{ActorId, Kopecks, Sku, StoreId};

const CATALOG: &str = include_str!("../../data/catalog.csv");
const STORE: StoreId = StoreId(1);
const T0: i64 = 1_764_000_000_000;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/formats-orders")
}

/// An order of `quantity` milks as HQ prices it (no promotions), for store 1.
fn order(id: u64, quantity: i64, payment: Payment) -> Order {
    kassa_tests::fixture_milk_order(id, STORE, quantity, payment, ("+79001234567", "Анна"), T0)
}

/// Writes the fixtures (only when asked, only if missing).
#[test]
fn write_fixtures_with_orders() {
    if std::env::var("KASSA_WRITE_FIXTURES").is_err() || dir().join("journal.sqlite").exists() {
        return;
    }
    std::fs::create_dir_all(dir()).unwrap();
    let items = kassa_protocol::catalog::parse_csv(CATALOG).unwrap();
    let j = Journal::open(&dir().join("journal.sqlite"), STORE).unwrap();
    j.apply_catalog(1, &items).unwrap();
    let cashier = kassa_agent::journal::User {
        id: "kassir".into(),
        name: "Анна".into(),
        role: kassa_agent::journal::Role::Cashier,
    };
    j.add_user(&cashier, "1111", T0).unwrap();
    j.open_shift(1, "kassir", Kopecks(0), "shift", T0).unwrap();
    assert!(j.keep_order(&order(1, 2, Payment::Prepaid), T0 + 10).unwrap());
    assert!(j.keep_order(&order(2, 1, Payment::AtPickup), T0 + 20).unwrap());
    j.order_step(OrderId(1), kassa_protocol::orders::StoreStep::Picking, "kassir", T0 + 30).unwrap();
    let all = Handover::all(&order(1, 2, Payment::Prepaid));
    j.collect_order(1, "kassir", OrderId(1), &all, &[], "collect-1", T0 + 40).unwrap();
    drop(j);

    let db = kassa_hq::Db::open(&dir().join("hq.sqlite")).unwrap();
    db.publish_catalog(&items).unwrap();
    db.deliver(STORE, &[(Sku("100001".into()), 10)]).unwrap();
    let mut placed = order(0, 2, Payment::Prepaid);
    placed.created_at_ms = T0;
    let audit = kassa_tests::fixture_audit(T0, "order.place");
    db.place_order(placed, Some("shop-1"), &audit, T0).unwrap().unwrap();
    db.place_order(order(0, 1, Payment::AtPickup), None, &audit, T0 + 1).unwrap().unwrap();
    let actor = ActorId { store: STORE, epoch: 1 };
    db.hello(actor, 0, 1, T0 + 2).unwrap();
    let update = |event| OrderUpdate { order: OrderId(1), store: STORE, event, at_ms: T0 + 3, by: String::new() };
    let entries = vec![
        OutboxEntry { seq: 1, change: Change::Order { update: update(OrderEvent::Accepted), counters: vec![] } },
        OutboxEntry { seq: 2, change: Change::Order { update: update(OrderEvent::Ready), counters: vec![] } },
    ];
    db.apply(actor, &entries, 2, 2, T0 + 4).unwrap();
    drop(db);
    kassa_tests::seal_fixtures(&dir(), &["journal.sqlite", "hq.sqlite"]);
}

fn copy() -> tempfile::TempDir {
    kassa_tests::copy_fixtures(&dir(), &["journal.sqlite", "hq.sqlite"])
}

/// The schema version of a fixture as it is on disk.
fn fixture_version(file: &str) -> u32 {
    kassa_tests::fixture_version(&dir().join(file))
}

#[test]
fn the_stores_orders_of_this_format_are_read_back_whole() {
    assert_eq!(fixture_version("journal.sqlite"), 7);
    let tmp = copy();
    let j = Journal::open(&tmp.path().join("journal.sqlite"), STORE).unwrap();
    let report = j.verify().unwrap();
    assert!(report.ok(), "{report:?}");
    let one = j.order(OrderId(1)).unwrap().expect("order 1");
    assert_eq!(
        (one.order.clone(), one.state, one.taken.clone()),
        (order(1, 2, Payment::Prepaid), OrderState::Collected, Some(vec![2]))
    );
    let two = j.order(OrderId(2)).unwrap().expect("order 2");
    assert_eq!((two.state, two.order.payment), (OrderState::Accepted, Payment::AtPickup));
    assert_eq!(j.reserved(&Sku("100001".into())).unwrap(), 1, "order 2 holds one milk");
    assert_eq!(j.orders_by_phone("79001234567", 10).unwrap().len(), 2);
    // The chain's handover record decodes: `verify` above read every record and found
    // the stock counters equal to what sales and the handover took. The outbox's order
    // updates read back.
    let outbox = j.outbox_after(0, 100).unwrap();
    let updates: Vec<_> = outbox
        .iter()
        .filter_map(|e| match &e.change {
            Change::Order { update, .. } => Some((update.order.0, update.event.state())),
            _ => None,
        })
        .collect();
    assert_eq!(
        updates,
        vec![
            (1, OrderState::Accepted),
            (2, OrderState::Accepted),
            (1, OrderState::Picking),
            (1, OrderState::Collected)
        ]
    );
    // The picking list and the handover slip wait in the print queue, as orders.
    let mut printed = Vec::new();
    while let Some(job) = j.next_print_job().unwrap() {
        if let Printable::Order { order, taken } = &job.printable {
            printed.push((order.id.0, taken.clone()));
        }
        j.print_job_done(job.id, T0 + 50).unwrap();
    }
    assert_eq!(printed, vec![(1, None), (1, Some(vec![2]))]);
}

#[test]
fn hqs_orders_of_this_format_are_read_back_whole() {
    assert_eq!(fixture_version("hq.sqlite"), 8);
    let tmp = copy();
    let db = kassa_hq::Db::open(&tmp.path().join("hq.sqlite")).unwrap();
    let one = db.order(OrderId(1)).unwrap().expect("order 1");
    assert_eq!((one.state, one.reported), (OrderState::Ready, Some(OrderState::Ready)));
    assert_eq!(one.order.lines, order(1, 2, Payment::Prepaid).lines);
    let two = db.order(OrderId(2)).unwrap().expect("order 2");
    assert_eq!((two.state, two.reported), (OrderState::New, None));
    assert_eq!(db.available(STORE, &Sku("100001".into())).unwrap(), (10, 3), "on hand, reserved by both");
    let feed: Vec<_> = db.order_feed(0, 100).unwrap().into_iter().map(|e| (e.order, e.state)).collect();
    assert_eq!(feed, vec![(1, "new"), (2, "new"), (1, "accepted"), (1, "ready")]);
    let (offer, cancels) = db.orders_to_offer(STORE).unwrap();
    assert_eq!((offer.iter().map(|o| o.id.0).collect::<Vec<_>>(), cancels.len()), (vec![2], 0));
    // Schema 13's step found each order's phone: a customer with that phone has both
    // orders in their history.
    let card = kassa_protocol::loyalty::CustomerId::parse("00001000000042").unwrap();
    let customer = kassa_protocol::loyalty::Customer::new(card.clone(), "+7 900 123-45-67", None).unwrap();
    let entry = OutboxEntry { seq: 3, change: Change::Loyalty { customer: Some(customer), entries: vec![] } };
    db.apply(ActorId { store: STORE, epoch: 1 }, &[entry], 3, 3, T0 + 5).unwrap();
    let (_, history) = db.customer_history(&card).unwrap().expect("the customer");
    assert_eq!(history.orders.iter().map(|o| o.id.0).collect::<Vec<_>>(), vec![2, 1], "{history:?}");
}
