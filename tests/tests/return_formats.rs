//! Fixtures of the formats returns anywhere brought, read by today's code: the store's
//! journal at schema 9 (a return of another store's sale, named in `return_refs` with
//! its receipt number and outbox entry) and HQ's database at schema 10 (returns by the
//! sale they return, a line returned beyond what was sold).
//!
//! The files under `tests/fixtures/formats-returns/` are never edited; they were written
//! once by `write_fixtures_with_returns` below (`KASSA_WRITE_FIXTURES=1`, missing files
//! only), and a later release's upgrade test reads them.

use std::path::{Path, PathBuf};

use kassa_agent::journal::{Printable, ReturnRequest, WriteError};
use kassa_agent::Journal;
use kassa_protocol::returns::{Return, ReturnError, ReturnKind, ReturnLine, SaleAnswer, SaleRef};
use kassa_protocol::sale::{Sale, Tender, TenderKind};
use kassa_protocol::wire::{Change, OutboxEntry};
use kassa_protocol::{ActorId, Kopecks, SaleId, StoreId};

const CATALOG: &str = include_str!("../../data/catalog.csv");
/// The store that sold, and the store that took a return of it.
const SOLD_AT: StoreId = StoreId(2);
const RETURNED_AT: StoreId = StoreId(1);
const T0: i64 = 1_764_200_000_000;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/formats-returns")
}

/// Store 2's sale of three milks, paid by card.
fn sale() -> Sale {
    kassa_tests::fixture_card_sale(SOLD_AT, 7, T0)
}

/// A return at `store` of `quantity` milks of the sale, refunded to the card.
fn ret(store: StoreId, seq: u64, quantity: i64) -> Return {
    let s = sale();
    let l = &s.lines[0];
    let amount = Kopecks(l.net().0 / l.quantity * quantity);
    Return {
        id: SaleId { store, seq },
        receipt_no: kassa_protocol::sale::receipt_no(store, 1, seq),
        terminal: 1,
        cashier: "kassir".into(),
        created_at_ms: T0 + seq as i64,
        kind: ReturnKind::WithReceipt { sale: s.id },
        lines: vec![ReturnLine {
            sale_line: Some(0),
            sku: l.sku.clone(),
            name: l.name.clone(),
            unit: l.unit,
            quantity,
            vat: l.vat,
            amount,
        }],
        refunds: vec![Tender { kind: TenderKind::Card, amount }],
        total: amount,
        loyalty: None,
    }
}

/// Writes the fixtures (only when asked, only if missing).
#[test]
fn write_fixtures_with_returns() {
    if std::env::var("KASSA_WRITE_FIXTURES").is_err() || dir().join("journal.sqlite").exists() {
        return;
    }
    std::fs::create_dir_all(dir()).unwrap();
    let items = kassa_protocol::catalog::parse_csv(CATALOG).unwrap();
    let j = kassa_tests::fixture_journal(&dir().join("journal.sqlite"), RETURNED_AT, T0);
    let request = ReturnRequest::Anywhere {
        sale: Box::new(sale()),
        returned: vec![(0, Kopecks::ZERO)],
        refunds: vec![],
        loyalty_owed: Kopecks::ZERO,
        lines: vec![(0, 2)],
        claimed: false,
    };
    j.commit_return(1, "kassir", &request, None, "ret-1", T0 + 10).unwrap();
    drop(j);

    let db = kassa_hq::Db::open(&dir().join("hq.sqlite")).unwrap();
    db.publish_catalog(&items).unwrap();
    let (two, one) = (ActorId { store: SOLD_AT, epoch: 1 }, ActorId { store: RETURNED_AT, epoch: 1 });
    db.hello(two, 0, 1, T0).unwrap();
    db.hello(one, 0, 1, T0).unwrap();
    let sold = OutboxEntry { seq: 1, change: Change::Sale { sale: sale(), counters: vec![] } };
    db.apply(two, &[sold], 1, 2, T0 + 1).unwrap();
    let back_at_two = OutboxEntry { seq: 2, change: Change::Return { ret: ret(SOLD_AT, 8, 2), counters: vec![] } };
    db.apply(two, &[back_at_two], 2, 2, T0 + 2).unwrap();
    let back_at_one = OutboxEntry { seq: 1, change: Change::Return { ret: ret(RETURNED_AT, 1, 2), counters: vec![] } };
    db.apply(one, &[back_at_one], 1, 1, T0 + 3).unwrap();
    drop(db);
    kassa_tests::seal_fixtures(&dir(), &["journal.sqlite", "hq.sqlite"]);
}

fn copy() -> tempfile::TempDir {
    kassa_tests::copy_fixtures(&dir(), &["journal.sqlite", "hq.sqlite"])
}

#[test]
fn the_stores_returns_of_other_stores_sales_are_read_back_whole() {
    assert_eq!(kassa_tests::fixture_version(&dir().join("journal.sqlite")), 9);
    let tmp = copy();
    let j = Journal::open(&tmp.path().join("journal.sqlite"), RETURNED_AT).unwrap();
    let report = j.verify().unwrap();
    assert!(report.ok(), "{report:?}");
    let returns: Vec<_> = j
        .outbox_after(0, 100)
        .unwrap()
        .into_iter()
        .filter_map(|e| match e.change {
            Change::Return { ret, .. } => Some((ret.kind, ret.lines[0].quantity, ret.refunds)),
            _ => None,
        })
        .collect();
    let refund = ret(RETURNED_AT, 1, 2).refunds;
    assert_eq!(returns, vec![(ReturnKind::WithReceipt { sale: sale().id }, 2, refund)]);
    // The receipt names the other store's sale by its number.
    let job = j.next_print_job().unwrap().expect("the return's receipt");
    assert!(matches!(job.printable, Printable::Return(_)));
    assert_eq!(job.extras.original_receipt.as_deref(), Some(sale().receipt_no.as_str()));
    // Not yet acknowledged by HQ, the store's own return counts on top of HQ's figures:
    // of three, two are back, so two more are refused.
    let request = ReturnRequest::Anywhere {
        sale: Box::new(sale()),
        returned: vec![(0, Kopecks::ZERO)],
        refunds: vec![],
        loyalty_owed: Kopecks::ZERO,
        lines: vec![(0, 2)],
        claimed: false,
    };
    let more = j.commit_return(1, "kassir", &request, None, "ret-2", T0 + 20);
    assert!(matches!(more, Err(WriteError::Return(ReturnError::OverReturn { line: 0, left: 1 }))), "{more:?}");
}

#[test]
fn hqs_returns_by_sale_of_this_format_are_read_back_whole() {
    assert_eq!(kassa_tests::fixture_version(&dir().join("hq.sqlite")), 10);
    let tmp = copy();
    let db = kassa_hq::Db::open(&tmp.path().join("hq.sqlite")).unwrap();
    let SaleAnswer::Found { sale: found, returned, refunds, .. } =
        db.sale_for_return(&SaleRef::ReceiptNo(sale().receipt_no)).unwrap()
    else {
        panic!("the sale")
    };
    assert_eq!((*found, returned[0].0, refunds.len()), (sale(), 4, 2));
    let over = db.over_returns().unwrap();
    assert_eq!(over.len(), 1);
    assert_eq!((over[0].sold, over[0].returned, over[0].returns.len()), (3, 4, 2));
}
