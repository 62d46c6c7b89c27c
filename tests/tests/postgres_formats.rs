//! A fixture of HQ's rows as PostgreSQL holds them (issue #17: HQ schema 13, the first
//! release with PostgreSQL), read back by today's code — so that a later release's
//! migration has a database of this one to prove itself against, as the SQLite fixtures
//! beside it do.
//!
//! `tests/fixtures/formats-postgres/hq.sql` is a `pg_dump` (plain SQL, no owners) of a
//! database `write_postgres_fixture` below filled through HQ's own code: the demo
//! catalog, a delivery, a store's sale and return applied, its receipt key, return limits,
//! loyalty rules, a promotion and an order for pickup. It was written once
//! (`KASSA_WRITE_FIXTURES=1`, only if missing) and is never edited. Each run loads it
//! into a throwaway cluster (`kassa_tests::pg`; under `CI=true` a missing PostgreSQL
//! fails the test) and opens it as a node would.

use std::path::{Path, PathBuf};

use kassa_hq::db::{Db, PoolLimits};
use kassa_protocol::basket::BasketLine;
use kassa_protocol::catalog::VatRate;
use kassa_protocol::orders::{OrderId, OrderState, Payment};
use kassa_protocol::returns::ReturnLimits;
use kassa_protocol::sale::Sale;
use kassa_protocol::stock::CounterEntry;
use kassa_protocol::testing;
use kassa_protocol::wire::{Change, OutboxEntry};
use kassa_protocol::{ActorId, Kopecks, Sku, StoreId};

const CATALOG: &str = include_str!("../../data/catalog.csv");
const STORE: StoreId = StoreId(1);
const ACTOR: ActorId = ActorId { store: STORE, epoch: 1 };
const T0: i64 = 1_764_800_000_000;
const MILK: &str = "100001";
/// The store's receipt key as recorded (an uncompressed P-256 point's size).
const KEY: [u8; 65] = [4; 65];

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/formats-postgres/hq.sql")
}

/// Store 1's sale `seq` of three milks, its running total of milks sold then `sold`.
fn sale(seq: u64, sold: i64) -> OutboxEntry {
    let line =
        BasketLine { name: "Молоко".into(), vat: VatRate::Vat10, ..testing::pieces(MILK, Kopecks(8_990), 3) };
    let sale = Sale { cashier: "kassir".into(), created_at_ms: T0 + 10, ..testing::sale(STORE, seq, vec![line]) };
    let counter = CounterEntry { location: STORE, sku: Sku(MILK.into()), actor: ACTOR, p: 0, n: sold };
    OutboxEntry { seq, change: Change::Sale { sale, counters: vec![counter] } }
}

/// Store 1's sale of three milks and its return of one.
fn entries() -> Vec<OutboxEntry> {
    let first = sale(1, 3);
    let Change::Sale { sale, counters } = &first.change else { unreachable!() };
    let id = kassa_protocol::SaleId { store: STORE, seq: 2 };
    let ret = kassa_protocol::returns::Return { created_at_ms: T0 + 20, ..testing::cash_return(sale, id, 1) };
    let back = CounterEntry { p: 1, ..counters[0].clone() };
    let second = OutboxEntry { seq: 2, change: Change::Return { ret, counters: vec![back] } };
    vec![first, second]
}

/// Writes the fixture with this release's code (only when asked, only if missing).
#[test]
fn write_postgres_fixture() {
    if std::env::var("KASSA_WRITE_FIXTURES").is_err() || fixture().exists() {
        return;
    }
    let pg = kassa_tests::pg::PgCluster::start("write_postgres_fixture").expect("PostgreSQL to write the fixture");
    let db = Db::open_postgres(&pg.database("hq"), PoolLimits::default()).unwrap();
    db.publish_catalog(&kassa_protocol::catalog::parse_csv(CATALOG).unwrap()).unwrap();
    db.deliver(STORE, &[(Sku(MILK.into()), 10)]).unwrap();
    db.hello(ACTOR, 2, 1, T0).unwrap();
    let applied = db.apply(ACTOR, &entries(), 2, 2, T0 + 30).unwrap();
    assert_eq!(applied.parked, 0);
    db.record_store_key(STORE, &KEY, T0 + 1).unwrap().expect("a new key");
    db.set_return_limits(limits(), None).unwrap();
    db.publish_rules(&kassa_protocol::loyalty::LoyaltyRules::new(5_000, Vec::new(), 30, 100).unwrap()).unwrap();
    kassa_tests::publish_fixture_promotions(
        &db,
        r#"[{ "id": 1, "name": "3 по цене 2: молоко", "kind": { "type": "n_for_m", "skus": ["100001"], "n": 3, "m": 2 },
              "from": "2026-01-01", "to": "2027-12-31", "stores": "all", "channels": ["store", "online"],
              "audience": "everyone" }]"#,
    );
    let order = kassa_tests::fixture_milk_order(0, STORE, 2, Payment::AtPickup, ("+79001234567", "Анна"), T0);
    db.place_order(order, Some("shop-1"), &kassa_tests::fixture_audit(T0 + 40, "order.place"), T0 + 40)
        .unwrap()
        .unwrap();
    drop(db);
    std::fs::create_dir_all(fixture().parent().unwrap()).unwrap();
    std::fs::write(fixture(), pg.dump("hq")).unwrap();
}

fn limits() -> ReturnLimits {
    ReturnLimits { per_receipt: Kopecks(300_000), per_shift: Kopecks(1_500_000) }
}

#[test]
fn a_postgres_database_of_this_format_is_read_back_whole() {
    let Some(pg) = kassa_tests::pg::PgCluster::start("a_postgres_database_of_this_format") else { return };
    let url = pg.database("restored");
    pg.restore("restored", &std::fs::read_to_string(fixture()).expect("the fixture"));
    assert_eq!(pg.psql_on("restored", "SELECT version FROM schema_version"), "13");
    let db = Db::open_postgres(&url, PoolLimits::default()).unwrap();

    let items = kassa_protocol::catalog::parse_csv(CATALOG).unwrap();
    assert_eq!(db.catalog().unwrap(), items);
    let sales = db.sales(STORE, 0, 10).unwrap();
    assert_eq!(sales.iter().map(|s| (s.seq, s.kind.as_str())).collect::<Vec<_>>(), [(1, "sale"), (2, "return")]);
    assert_eq!((sales[0].total_kopecks, sales[0].lines[0].quantity), (3 * 8_990, 3));
    let stock = db.stock(&Sku(MILK.into())).unwrap();
    assert_eq!(stock.iter().find(|s| s.store == STORE.0).map(|s| s.quantity), Some(10 - 3 + 1));
    assert_eq!(db.hello(ACTOR, 2, 1, T0 + 50).unwrap(), 2, "the store's progress");
    let terms = db.return_terms(0).unwrap();
    assert_eq!((terms.limits, terms.keys.len()), (limits(), 1));
    assert_eq!((terms.keys[0].store, terms.keys[0].public_key.as_slice()), (STORE, KEY.as_slice()));
    let (_, rules) = db.rules().unwrap();
    assert_eq!(rules, kassa_protocol::loyalty::LoyaltyRules::new(5_000, Vec::new(), 30, 100).unwrap());
    let (version, definitions) = db.promotions().unwrap();
    assert_eq!((version, definitions.len(), definitions[0].name.as_str()), (1, 1, "3 по цене 2: молоко"));
    let order = db.order(OrderId(1)).unwrap().expect("the order");
    assert_eq!((order.state, order.order.lines.len()), (OrderState::New, 1));
    assert_eq!(db.orders_to_offer(STORE).unwrap().0.len(), 1);
    // And the database takes today's writes: the store sells again.
    let more = [sale(3, 6)];
    assert_eq!(db.apply(ACTOR, &more, 3, 3, T0 + 60).unwrap().parked, 0);
    assert_eq!(db.sales(STORE, 0, 10).unwrap().len(), 3);
}
