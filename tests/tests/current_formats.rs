//! Fixtures of the formats this release writes (journal schema 3 with format columns,
//! basket ids and request digests; the basket file's schema 2; HQ's schema 3 with
//! promotions), read by today's code — so that the next release's upgrade has them to
//! prove itself against, as `upgrade.rs` does with release 0.1.0's.
//!
//! The files under `tests/fixtures/formats-2026-12/` are never edited; they were written
//! once by `write_fixtures` below (`KASSA_WRITE_FIXTURES=1`, missing files only).

use std::path::{Path, PathBuf};

use kassa_agent::journal::{BasketStore, ReturnRequest, Role, User};
use kassa_agent::Journal;
use kassa_protocol::sale::{Tender, TenderKind};
use kassa_protocol::{Kopecks, Sku, StoreId};

const CATALOG: &str = include_str!("../../data/catalog.csv");

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/formats-2026-12")
}

fn cash(k: i64) -> Vec<Tender> {
    vec![Tender { kind: TenderKind::Cash, amount: Kopecks(k) }]
}

/// Writes the fixtures with this release's code (only when asked, only if missing).
#[test]
fn write_fixtures() {
    if std::env::var("KASSA_WRITE_FIXTURES").is_err() || dir().join("journal.sqlite").exists() {
        return;
    }
    std::fs::create_dir_all(dir()).unwrap();
    let items = kassa_protocol::catalog::parse_csv(CATALOG).unwrap();
    {
        let j = Journal::open(&dir().join("journal.sqlite"), StoreId(1)).unwrap();
        j.apply_catalog(1, &items).unwrap();
        j.add_user(&User { id: "kassir".into(), name: "Кассир".into(), role: Role::Cashier }, "1111", 0).unwrap();
        j.open_shift(1, "kassir", Kopecks(100_000), "open", 1).unwrap();
        let item = |sku: &str| j.item_by_sku(&Sku(sku.into())).unwrap().unwrap();
        let mut b = kassa_protocol::basket::Basket::new(1);
        b.add(&item("100001"), 2).unwrap();
        b.add(&item("100477"), 1_235).unwrap();
        let total = b.totals().unwrap().total.0;
        let (sale, _) = j.commit_sale(1, "kassir", &b, &cash(total + 1_000), None, "pay-1", 2).unwrap();
        let req = ReturnRequest::WithReceipt { sale_seq: sale.id.seq, lines: vec![(0, 1)] };
        j.commit_return(1, "kassir", &req, None, "ret-1", 3).unwrap();
        let mut v = kassa_protocol::basket::Basket::new(2);
        v.add(&item("100002"), 1).unwrap();
        j.void_basket(1, "kassir", &v, 4).unwrap();
        j.cash_move(1, "kassir", Kopecks(-500_000), "инкассация", Some("boss"), "out-1", 5).unwrap();
        j.close_shift(1, "boss", Kopecks(0), "close", 6).unwrap();
        let conn = rusqlite::Connection::open(dir().join("journal.sqlite")).unwrap();
        conn.pragma_update(None, "wal_checkpoint", "TRUNCATE").unwrap();
    }
    {
        let baskets = BasketStore::open(&dir().join("basket.sqlite")).unwrap();
        let mut open = kassa_protocol::basket::Basket::new(3);
        open.add(&items[0], 2).unwrap();
        baskets.save(1, &open, None).unwrap();
    }
    {
        let db = kassa_hq::Db::open(&dir().join("hq.sqlite")).unwrap();
        db.publish_catalog(&items).unwrap();
        kassa_tests::publish_fixture_promotions(
            &db,
            r#"[{ "id": 1, "name": "3 по цене 2: молоко", "kind": { "type": "n_for_m", "skus": ["100001"], "n": 3, "m": 2 },
                  "from": "2026-01-01", "to": "2026-12-31", "stores": "all", "channels": ["store", "online"],
                  "audience": "everyone" }]"#,
        );
    }
    for f in ["journal.sqlite", "basket.sqlite", "hq.sqlite"] {
        let conn = rusqlite::Connection::open(dir().join(f)).unwrap();
        conn.pragma_update(None, "wal_checkpoint", "TRUNCATE").unwrap();
        conn.pragma_update(None, "journal_mode", "DELETE").unwrap();
    }
}

/// A copy of the fixtures in a temporary directory: the committed files are never opened
/// for writing.
fn copy() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    for f in ["journal.sqlite", "basket.sqlite", "hq.sqlite"] {
        std::fs::copy(dir().join(f), tmp.path().join(f)).unwrap_or_else(|e| panic!("fixture {f}: {e}"));
    }
    tmp
}

#[test]
fn this_releases_files_are_read_by_this_release() {
    let tmp = copy();
    let j = Journal::open(&tmp.path().join("journal.sqlite"), StoreId(1)).unwrap();
    assert!(j.verify().unwrap().ok());
    assert_eq!(j.docs_count().unwrap(), (1, 1));
    let sale = j.sale(j.find_doc("0001-01-000001").unwrap().unwrap()).unwrap().unwrap();
    assert_eq!(sale.lines.len(), 2);
    assert_eq!(j.returnable(sale.id.seq).unwrap().unwrap().1, vec![1, 1_235]);
    assert_eq!(j.basket_ended(1).unwrap(), 2, "the void's basket");
    // A retried key with its request answers the stored sale.
    let conn = rusqlite::Connection::open(tmp.path().join("journal.sqlite")).unwrap();
    let versions: (u32, i64) = (
        conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap(),
        conn.query_row("SELECT COUNT(*) FROM records WHERE format = 1", [], |r| r.get(0)).unwrap(),
    );
    assert_eq!(versions.0, kassa_agent::journal::SCHEMA_VERSION, "migrated on opening");
    assert!(versions.1 >= 7, "every record written then in format 1: {versions:?}");
    drop(conn);
    assert!(j.x_report(1).unwrap().is_none(), "the shift was closed");

    let baskets = BasketStore::open(&tmp.path().join("basket.sqlite")).unwrap();
    let (basket, _) = baskets.load(1).unwrap().expect("the open basket, saved by schema 2, is restored");
    assert_eq!((basket.id, basket.lines.len()), (3, 1));

    let db = kassa_hq::Db::open(&tmp.path().join("hq.sqlite")).unwrap();
    let (version, defs) = db.promotions().unwrap();
    assert_eq!((version, defs.len()), (1, 1));
    assert_eq!(db.promotion_set().unwrap().1.len(), 1);
}

// ---- journal schema 4 and basket file schema 3: sales with their promotions ----

fn dir_v4() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/formats-promotions")
}

/// A basket priced under a "3 for 2" on milk, with a coupon presented.
fn priced_basket(
    item: impl Fn(&str) -> kassa_protocol::catalog::CatalogItem,
    id: u64,
) -> kassa_protocol::basket::Basket {
    let defs: Vec<kassa_protocol::promotions::definition::Definition> = serde_json::from_str(
        r#"[{ "id": 7, "version": 2, "name": "3 по цене 2: молоко", "kind": { "type": "n_for_m", "skus": ["100001"], "n": 3, "m": 2 },
              "from": "2026-01-01", "to": "2099-12-31", "stores": "all", "channels": ["store"], "audience": "everyone" }]"#,
    )
    .unwrap();
    let active = kassa_agent::promotions::build(1, &defs).unwrap();
    let mut b = kassa_protocol::basket::Basket::new(id);
    b.add(&item("100001"), 3).unwrap();
    b.add(&item("100477"), 1_235).unwrap();
    // The fixture's coupon was typed when the till took Cyrillic codes; it takes Latin
    // ones since, and a stored basket keeps what it had.
    b.coupons.push("ЛЕТО".to_owned());
    let none = std::collections::BTreeSet::new();
    let coupons = b.coupons.clone();
    let cx = kassa_protocol::promotions::Context {
        store: StoreId(1),
        channel: kassa_protocol::promotions::Channel::Store,
        at: kassa_protocol::promotions::LocalTime::from_unix_ms(1_796_000_000_000, 180),
        customer: None,
        coupons: &coupons,
        used_coupons: &none,
    };
    b.apply_promotions(&active.set, &cx);
    assert_eq!(b.promotions_saved(), item("100001").price, "one milk free");
    b
}

/// Writes the schema-4 fixtures (only when asked, only if missing).
#[test]
fn write_fixtures_with_promotions() {
    if std::env::var("KASSA_WRITE_FIXTURES").is_err() || dir_v4().join("journal.sqlite").exists() {
        return;
    }
    std::fs::create_dir_all(dir_v4()).unwrap();
    let items = kassa_protocol::catalog::parse_csv(CATALOG).unwrap();
    {
        let j = Journal::open(&dir_v4().join("journal.sqlite"), StoreId(1)).unwrap();
        j.apply_catalog(1, &items).unwrap();
        j.add_user(&User { id: "kassir".into(), name: "Кассир".into(), role: Role::Cashier }, "1111", 0).unwrap();
        j.open_shift(1, "kassir", Kopecks(100_000), "open", 1).unwrap();
        let item = |sku: &str| j.item_by_sku(&Sku(sku.into())).unwrap().unwrap();
        let b = priced_basket(item, 1);
        let total = b.totals().unwrap().total.0;
        let (sale, _) = j.commit_sale(1, "kassir", &b, &cash(total + 1_000), None, "pay-1", 2).unwrap();
        let req = ReturnRequest::WithReceipt { sale_seq: sale.id.seq, lines: vec![(0, 1)] };
        j.commit_return(1, "kassir", &req, None, "ret-1", 3).unwrap();
    }
    {
        let j = Journal::open(&dir_v4().join("journal.sqlite"), StoreId(1)).unwrap();
        let item = |sku: &str| j.item_by_sku(&Sku(sku.into())).unwrap().unwrap();
        let baskets = BasketStore::open(&dir_v4().join("basket.sqlite")).unwrap();
        baskets.save(1, &priced_basket(item, 2), None).unwrap();
    }
    for f in ["journal.sqlite", "basket.sqlite"] {
        let conn = rusqlite::Connection::open(dir_v4().join(f)).unwrap();
        conn.pragma_update(None, "wal_checkpoint", "TRUNCATE").unwrap();
        conn.pragma_update(None, "journal_mode", "DELETE").unwrap();
    }
}

#[test]
fn sales_and_baskets_with_promotions_are_read_back_whole() {
    let tmp = tempfile::tempdir().unwrap();
    for f in ["journal.sqlite", "basket.sqlite"] {
        std::fs::copy(dir_v4().join(f), tmp.path().join(f)).unwrap_or_else(|e| panic!("fixture {f}: {e}"));
    }
    let j = Journal::open(&tmp.path().join("journal.sqlite"), StoreId(1)).unwrap();
    assert!(j.verify().unwrap().ok());
    let sale = j.sale(j.find_doc("0001-01-000001").unwrap().unwrap()).unwrap().unwrap();
    let milk = &sale.lines[0];
    assert_eq!((milk.category.as_str(), milk.promotions.len()), ("Молочные продукты", 1));
    let p = &milk.promotions[0];
    assert_eq!((p.promotion, p.version, p.name.as_str(), p.amount), (7, 2, "3 по цене 2: молоко", milk.price));
    // The return refunded a third of what the three milks cost.
    assert_eq!(j.returnable(sale.id.seq).unwrap().unwrap().1, vec![2, 1_235]);
    let conn = rusqlite::Connection::open(tmp.path().join("journal.sqlite")).unwrap();
    let formats: Vec<Option<u32>> = conn
        .prepare("SELECT DISTINCT format FROM records ORDER BY format")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(formats, vec![Some(2)], "records of schema 4 are format 2");
    drop(conn);
    let baskets = BasketStore::open(&tmp.path().join("basket.sqlite")).unwrap();
    let (basket, _) = baskets.load(1).unwrap().expect("the open basket");
    assert_eq!((basket.id, basket.coupons.clone()), (2, vec!["ЛЕТО".to_owned()]));
    assert_eq!(basket.lines[0].promotions[0].promotion, 7);
    assert_eq!(basket.promotions_saved(), milk.price);
}
