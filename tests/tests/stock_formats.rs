//! Fixtures of the formats stock operations brought, read by today's code: the store's
//! journal at schema 5 (records and outbox entries in format 3, inbound documents in data
//! format 3, stock counts) and HQ's database at schema 5 (movements, inbound documents,
//! sales kept in data format 2 with each line's promotions, parked records with their
//! format).
//!
//! The files under `tests/fixtures/formats-stock/` are never edited; they were written
//! once by `write_fixtures_with_stock` below (`KASSA_WRITE_FIXTURES=1`, missing files
//! only), and a later release's upgrade test reads them.

use std::path::{Path, PathBuf};

use kassa_agent::journal::{MovementRequest, Role, User};
use kassa_agent::Journal;
use kassa_protocol::basket::LinePromotion;
use kassa_protocol::movements::{Inbound, InboundLine, InboundSource, MovementKind, WriteOffReason};
use kassa_protocol::wire::{Change, OutboxEntry};
use kassa_protocol::{ActorId, Kopecks, Sku, StoreId};

const CATALOG: &str = include_str!("../../data/catalog.csv");
const STORE: StoreId = StoreId(1);

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/formats-stock")
}

fn sku(s: &str) -> Sku {
    Sku(s.into())
}

/// A sale whose first line a "3 for 2" promotion discounted, as HQ receives it.
fn sale_with_promotion(seq: u64) -> OutboxEntry {
    let mut milk = kassa_protocol::testing::pieces("100001", Kopecks(8_990), 3);
    milk.discount = Kopecks(8_990);
    milk.promotions =
        vec![LinePromotion {
            promotion: 7, version: 2, name: "3 по цене 2: молоко".into(), amount: Kopecks(8_990)
        }];
    let sale = kassa_protocol::testing::sale(STORE, 1, vec![milk]);
    OutboxEntry { seq, change: Change::Sale { sale, counters: Vec::new() } }
}

/// Writes the schema-5 fixtures (only when asked, only if missing).
#[test]
fn write_fixtures_with_stock() {
    if std::env::var("KASSA_WRITE_FIXTURES").is_err() || dir().join("journal.sqlite").exists() {
        return;
    }
    std::fs::create_dir_all(dir()).unwrap();
    let items = kassa_protocol::catalog::parse_csv(CATALOG).unwrap();
    let j = Journal::open(&dir().join("journal.sqlite"), STORE).unwrap();
    j.apply_catalog(1, &items).unwrap();
    j.add_user(&User { id: "kassir".into(), name: "Кассир".into(), role: Role::Cashier }, "1111", 0).unwrap();
    let delivery = Inbound {
        source: InboundSource::Delivery(5),
        store: STORE,
        lines: vec![
            InboundLine { sku: sku("100001"), name: "Молоко".into(), quantity: 10 },
            InboundLine { sku: sku("100002"), name: "Кефир".into(), quantity: 4 },
        ],
        created_at_ms: 9,
    };
    assert!(j.keep_inbound(&delivery, 9).unwrap());
    let receive = MovementRequest::Receive {
        source: Some("delivery:5".into()),
        lines: vec![(sku("100001"), 10), (sku("100002"), 3)],
    };
    j.record_movement(1, "kassir", &receive, None, "", "rcv-1", 10).unwrap();
    let write_off = MovementRequest::WriteOff { reason: WriteOffReason::Damaged, lines: vec![(sku("100001"), 1)] };
    j.record_movement(1, "kassir", &write_off, None, "упаковка", "wo-1", 11).unwrap();
    j.start_count("kassir", kassa_agent::journal::CountScope::Everything, "cnt-1", 12).unwrap();
    j.count_scan(1, "kassir", &sku("100001"), 8, "scan-1", 13).unwrap();
    j.post_count(1, 1, "boss", "post-1", 14).unwrap();
    let transfer = MovementRequest::TransferOut { to: StoreId(2), lines: vec![(sku("100001"), 2)] };
    j.record_movement(1, "kassir", &transfer, None, "", "tr-1", 15).unwrap();
    let mut entries = j.outbox_after(0, 100).unwrap();
    drop(j);

    let db = kassa_hq::Db::open(&dir().join("hq.sqlite")).unwrap();
    db.publish_catalog(&items).unwrap();
    entries.push(sale_with_promotion(entries.len() as u64 + 1));
    let head = entries.len() as u64;
    let actor = ActorId { store: STORE, epoch: 1 };
    db.hello(actor, head, 1, 20).unwrap();
    db.apply(actor, &entries, head, head, 21).unwrap();
    drop(db);
    kassa_tests::seal_fixtures(&dir(), &["journal.sqlite", "hq.sqlite"]);
}

fn copy() -> tempfile::TempDir {
    kassa_tests::copy_fixtures(&dir(), &["journal.sqlite", "hq.sqlite"])
}

#[test]
fn a_stores_movements_of_schema_5_are_read_back_whole() {
    let tmp = copy();
    let j = Journal::open(&tmp.path().join("journal.sqlite"), STORE).unwrap();
    let report = j.verify().unwrap();
    assert!(report.ok(), "{report:?}");
    let mut movements = j.movements(0, i64::MAX).unwrap();
    movements.reverse();
    let kinds: Vec<_> = movements.iter().map(|m| m.kind.clone()).collect();
    assert_eq!(
        kinds,
        vec![
            MovementKind::Receipt { delivery: Some(5) },
            MovementKind::WriteOff { reason: WriteOffReason::Damaged },
            MovementKind::Count { count: 1 },
            MovementKind::TransferOut { to: StoreId(2) },
        ]
    );
    let kefir = movements[0].lines.iter().find(|l| l.sku == sku("100002")).unwrap();
    assert_eq!((kefir.quantity, kefir.expected, kefir.difference()), (3, Some(4), -1));
    assert_eq!(movements[1].note, "упаковка");
    // 10 received, 1 written off: book 9 when counted, 8 found.
    assert_eq!(
        movements[2].lines.iter().map(|l| (l.sku.0.as_str(), l.quantity)).collect::<Vec<_>>(),
        vec![("100001", -1), ("100002", -3)]
    );
    assert!(j.open_inbound().unwrap().is_empty(), "the delivery was received");
    assert_eq!(j.count_report(1).unwrap().unwrap().posted, Some(3));
    assert_eq!(j.stock(&sku("100001")).unwrap(), 6);
    let outbox = j.outbox_after(0, 100).unwrap();
    assert_eq!(outbox.iter().filter(|e| matches!(e.change, Change::Movement { .. })).count(), 4);
    let conn = rusqlite::Connection::open(tmp.path().join("journal.sqlite")).unwrap();
    let formats: Vec<Option<u32>> = conn
        .prepare("SELECT DISTINCT format FROM records ORDER BY format")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(formats, vec![Some(3)], "records of schema 5 are format 3");
    let version: u32 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
    assert_eq!(version, kassa_agent::journal::SCHEMA_VERSION, "migrated on open");
    assert_eq!(fixture_version("journal.sqlite"), 5, "the fixture is of schema 5");
}

/// The schema version of a fixture as it is on disk.
fn fixture_version(file: &str) -> u32 {
    kassa_tests::fixture_version(&dir().join(file))
}

#[test]
fn hqs_movements_transfers_and_promotions_of_schema_5_are_read_back_whole() {
    let tmp = copy();
    let db = kassa_hq::Db::open(&tmp.path().join("hq.sqlite")).unwrap();
    assert_eq!(db.movements(STORE, i64::MIN, i64::MAX).unwrap().len(), 4);
    let in_transit = db.inbound_rows(Some(StoreId(2)), true).unwrap();
    assert_eq!(in_transit.len(), 1);
    assert_eq!((in_transit[0].source.as_str(), in_transit[0].from_store), ("transfer:1-4", Some(1)));
    let totals = db.movement_totals(STORE, i64::MIN, i64::MAX).unwrap();
    let receipt: i64 = totals.iter().filter(|t| t.reason == "receipt").map(|t| t.quantity).sum();
    assert_eq!(receipt, 13);
    let sales = db.sales(STORE, 0, 10).unwrap();
    assert_eq!(sales.len(), 1);
    drop(db);
    let conn = rusqlite::Connection::open(tmp.path().join("hq.sqlite")).unwrap();
    let promotion: (i64, i64, String, i64) = conn
        .query_row("SELECT promotion, version, name, amount_kopecks FROM sale_line_promotions", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .unwrap();
    assert_eq!(promotion, (7, 2, "3 по цене 2: молоко".to_owned(), 8_990));
    let format: i64 = conn.query_row("SELECT format FROM sales", [], |r| r.get(0)).unwrap();
    assert_eq!(format, 2, "sales at HQ are data format 2 from schema 5");
    let record: Vec<u8> = conn.query_row("SELECT record FROM sales", [], |r| r.get(0)).unwrap();
    let sale: kassa_protocol::format::v2::Sale = kassa_protocol::format::v1::decode(&record, "sale").unwrap();
    assert_eq!(sale.lines[0].promotions[0].promotion, 7);
    let version: u32 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
    assert_eq!(version, kassa_hq::db::SCHEMA_VERSION, "migrated on open");
    assert_eq!(fixture_version("hq.sqlite"), 5, "the fixture is of schema 5");
}
