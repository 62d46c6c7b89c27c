//! Fixtures of the formats the session after stock operations brought, read by today's
//! code: the store's journal at schema 6 (the promotions each customer has had, HQ's price
//! schedule), the basket file at schema 4 (parked baskets) and HQ's database at schema 7
//! (the price schedule, each store's catalog version).
//!
//! The files under `tests/fixtures/formats-schedule/` are never edited; they were written
//! once by `write_fixtures_with_schedule` below (`KASSA_WRITE_FIXTURES=1`, missing files
//! only), and a later release's upgrade test reads them.

use std::path::{Path, PathBuf};

use kassa_agent::journal::BasketStore;
use kassa_agent::Journal;
use kassa_protocol::loyalty::CustomerId;
use kassa_protocol::price_schedule::{parse_local, ScheduledPrice};
use kassa_protocol::{ActorId, Kopecks, Sku, StoreId};

const CATALOG: &str = include_str!("../../data/catalog.csv");
const STORE: StoreId = StoreId(1);

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/formats-schedule")
}

fn schedule() -> Vec<ScheduledPrice> {
    vec![
        ScheduledPrice {
            sku: Sku("100001".into()),
            at: parse_local("2026-12-10T09:00").unwrap(),
            price: Kopecks(9_990),
        },
        ScheduledPrice {
            sku: Sku("100002".into()),
            at: parse_local("2027-01-01T00:00").unwrap(),
            price: Kopecks(5_490),
        },
    ]
}

/// Writes the fixtures (only when asked, only if missing).
#[test]
fn write_fixtures_with_schedule() {
    if std::env::var("KASSA_WRITE_FIXTURES").is_err() || dir().join("journal.sqlite").exists() {
        return;
    }
    std::fs::create_dir_all(dir()).unwrap();
    let items = kassa_protocol::catalog::parse_csv(CATALOG).unwrap();
    let j = Journal::open(&dir().join("journal.sqlite"), STORE).unwrap();
    j.apply_catalog(1, &items).unwrap();
    let customer = j.issue_customer("79001234567", Some("Анна")).unwrap();
    j.merge_promotions_used(&customer.card, &[7, 12]).unwrap();
    assert!(j.set_price_schedule(3, &schedule()).unwrap());
    let milk = j.item_by_sku(&Sku("100001".into())).unwrap().unwrap();
    drop(j);

    let baskets = BasketStore::open(&dir().join("basket.sqlite")).unwrap();
    let mut parked = kassa_protocol::basket::Basket::new(4);
    parked.add(&milk, 2).unwrap();
    assert_eq!(baskets.park(1, &parked, Some(customer.card.as_str()), 1_764_000_000_000).unwrap(), Some(1));
    drop(baskets);

    let db = kassa_hq::Db::open(&dir().join("hq.sqlite")).unwrap();
    db.publish_catalog(&items).unwrap();
    db.hello(ActorId { store: STORE, epoch: 1 }, 0, 1, 20).unwrap();
    db.catalog_sent(STORE, 2).unwrap();
    let audit = kassa_hq::db::NewAudit {
        at_ms: 21,
        actor_kind: "system",
        actor: "fixtures".into(),
        action: "catalog.schedule",
        summary: serde_json::json!({ "changes": 2 }),
    };
    assert_eq!(db.publish_price_schedule(&schedule(), &audit).unwrap(), 1);
    drop(db);
    kassa_tests::seal_fixtures(&dir(), &["journal.sqlite", "basket.sqlite", "hq.sqlite"]);
}

fn copy() -> tempfile::TempDir {
    kassa_tests::copy_fixtures(&dir(), &["journal.sqlite", "basket.sqlite", "hq.sqlite"])
}

/// The schema version of a fixture as it is on disk.
fn fixture_version(file: &str) -> u32 {
    kassa_tests::fixture_version(&dir().join(file))
}

#[test]
fn the_stores_files_of_this_format_are_read_back_whole() {
    assert_eq!((fixture_version("journal.sqlite"), fixture_version("basket.sqlite")), (6, 4));
    let tmp = copy();
    let j = Journal::open(&tmp.path().join("journal.sqlite"), STORE).unwrap();
    assert!(j.verify().unwrap().ok());
    let card = j.find_customer("79001234567").unwrap().expect("the customer").card;
    assert_eq!(j.promotions_used(&card).unwrap().into_iter().collect::<Vec<_>>(), vec![7, 12]);
    assert_eq!(j.price_schedule_version().unwrap(), 3);
    let milk = j.item_by_sku(&Sku("100001".into())).unwrap().unwrap();
    let before = parse_local("2026-12-10T08:59").unwrap();
    let after = parse_local("2026-12-10T09:00").unwrap();
    assert_eq!(j.priced_at(milk.clone(), before).unwrap().price, milk.price);
    assert_eq!(j.priced_at(milk, after).unwrap().price, Kopecks(9_990));
    let baskets = BasketStore::open(&tmp.path().join("basket.sqlite")).unwrap();
    let parked = baskets.parked(1).unwrap();
    assert_eq!(parked.len(), 1);
    assert_eq!((parked[0].slot, parked[0].basket.id, parked[0].basket.lines[0].quantity), (1, 4, 2));
    assert_eq!(parked[0].customer.as_deref(), Some(card.as_str()));
    assert!(CustomerId::parse(card.as_str()).is_ok());
}

#[test]
fn hqs_file_of_this_format_is_read_back_whole() {
    assert_eq!(fixture_version("hq.sqlite"), 7);
    let tmp = copy();
    let db = kassa_hq::Db::open(&tmp.path().join("hq.sqlite")).unwrap();
    let (version, changes) = db.price_schedule().unwrap();
    assert_eq!((version, changes), (1, schedule()));
    let store = db.stores().unwrap().into_iter().find(|s| s.store == STORE.0).expect("store 1");
    assert_eq!((store.catalog_confirmed, store.catalog_sent), (1, 2));
}
