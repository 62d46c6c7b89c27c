//! Fixtures of the formats return rights brought, read by today's code: the store's
//! journal at schema 11 (a return made under a claim HQ held, which the till does not
//! count again on top of HQ's figures) and HQ's database at schema 12 (a live claim).
//!
//! The files under `tests/fixtures/formats-claims/` are never edited; they were written
//! once by `write_fixtures_with_claims` below (`KASSA_WRITE_FIXTURES=1`, missing files
//! only), and a later release's upgrade test reads them.

use std::path::{Path, PathBuf};

use kassa_agent::journal::{ReturnRequest, WriteError};
use kassa_agent::Journal;
use kassa_protocol::returns::{ReturnClaim, ReturnError, SaleAnswer, SaleLookup, SaleRef};
use kassa_protocol::sale::Sale;
use kassa_protocol::wire::{Change, OutboxEntry};
use kassa_protocol::{ActorId, Kopecks, StoreId};

/// The store that sold, and the store that took a return of it under a claim.
const SOLD_AT: StoreId = StoreId(2);
const RETURNED_AT: StoreId = StoreId(1);
const T0: i64 = 1_764_900_000_000;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/formats-claims")
}

fn sale() -> Sale {
    kassa_tests::fixture_card_sale(SOLD_AT, 7, T0)
}

/// What HQ answers store 1 about the sale, asking nothing to be held.
fn lookup() -> SaleLookup {
    SaleLookup { request_id: 1, sale: SaleRef::Id(sale().id), claim: None }
}

/// Writes the fixtures (only when asked, only if missing).
#[test]
fn write_fixtures_with_claims() {
    if std::env::var("KASSA_WRITE_FIXTURES").is_err() || dir().join("journal.sqlite").exists() {
        return;
    }
    std::fs::create_dir_all(dir()).unwrap();
    let items = kassa_protocol::catalog::parse_csv(include_str!("../../data/catalog.csv")).unwrap();
    // HQ holds two of the three for store 1.
    let db = kassa_hq::Db::open(&dir().join("hq.sqlite")).unwrap();
    db.publish_catalog(&items).unwrap();
    let two = ActorId { store: SOLD_AT, epoch: 1 };
    db.hello(two, 0, 1, T0).unwrap();
    let sold = OutboxEntry { seq: 1, change: Change::Sale { sale: sale(), counters: vec![] } };
    db.apply(two, &[sold], 1, 1, T0 + 1).unwrap();
    let claim = ReturnClaim { key: "ret-1".into(), lines: vec![(0, 2)] };
    let asked = SaleLookup { claim: Some(claim), ..lookup() };
    let SaleAnswer::Found { returned, refunds, .. } = db.sale_for_return_by(&asked, RETURNED_AT, T0 + 2).unwrap()
    else {
        panic!("the sale")
    };
    drop(db);
    // Store 1 takes them back under that claim.
    let j = kassa_tests::fixture_journal(&dir().join("journal.sqlite"), RETURNED_AT, T0);
    let request = ReturnRequest::Anywhere {
        sale: Box::new(sale()),
        returned,
        refunds,
        loyalty_owed: Kopecks::ZERO,
        lines: vec![(0, 2)],
        claimed: true,
    };
    j.commit_return(1, "kassir", &request, None, "ret-1", T0 + 3).unwrap();
    drop(j);
    kassa_tests::seal_fixtures(&dir(), &["journal.sqlite", "hq.sqlite"]);
}

fn copy() -> tempfile::TempDir {
    kassa_tests::copy_fixtures(&dir(), &["journal.sqlite", "hq.sqlite"])
}

#[test]
fn hqs_live_claim_of_this_format_counts_for_other_stores() {
    assert_eq!(kassa_tests::fixture_version(&dir().join("hq.sqlite")), 12);
    let tmp = copy();
    let db = kassa_hq::Db::open(&tmp.path().join("hq.sqlite")).unwrap();
    // Store 3 sees store 1's two as taken; one more fits, two do not.
    let SaleAnswer::Found { returned, .. } = db.sale_for_return_by(&lookup(), StoreId(3), T0 + 10).unwrap() else {
        panic!("the sale")
    };
    assert_eq!(returned[0].0, 2);
    let two_more = SaleLookup { claim: Some(ReturnClaim { key: "r".into(), lines: vec![(0, 2)] }), ..lookup() };
    db.sale_for_return_by(&two_more, StoreId(3), T0 + 11).unwrap();
    let SaleAnswer::Found { returned, .. } = db.sale_for_return_by(&lookup(), StoreId(4), T0 + 12).unwrap() else {
        panic!("the sale")
    };
    assert_eq!(returned[0].0, 2, "the claim that did not fit is not held");
}

#[test]
fn the_stores_claimed_return_is_not_counted_twice() {
    assert_eq!(kassa_tests::fixture_version(&dir().join("journal.sqlite")), 11);
    let tmp = copy();
    let j = Journal::open(&tmp.path().join("journal.sqlite"), RETURNED_AT).unwrap();
    assert!(j.verify().unwrap().ok());
    // HQ's figures (its claim of two) and the store's claimed return are the same two:
    // one more fits, two more do not.
    let figures = vec![(2, Kopecks::ZERO)];
    let request = |n: i64| ReturnRequest::Anywhere {
        sale: Box::new(sale()),
        returned: figures.clone(),
        refunds: vec![],
        loyalty_owed: Kopecks::ZERO,
        lines: vec![(0, n)],
        claimed: true,
    };
    let over = j.commit_return(1, "kassir", &request(2), None, "ret-2", T0 + 20);
    assert!(matches!(over, Err(WriteError::Return(ReturnError::OverReturn { line: 0, left: 1 }))), "{over:?}");
    j.commit_return(1, "kassir", &request(1), None, "ret-3", T0 + 21).unwrap();
}
