//! Fixtures of the format one customer at the till brought, read by today's code: a
//! store's journal at schema 12 (a sale and a return made with a customer's card, each
//! kept under the card), read back as the customer's history here.
//!
//! The files under `tests/fixtures/formats-history/` are never edited; they were written
//! once by `write_fixtures_with_history` below (`KASSA_WRITE_FIXTURES=1`, missing files
//! only), and a later release's upgrade test reads them.

use std::path::{Path, PathBuf};

use kassa_agent::journal::{LoyaltyUse, ReturnRequest};
use kassa_protocol::basket::Basket;
use kassa_protocol::history::DocKind;
use kassa_protocol::loyalty::{CustomerId, LoyaltyRules};
use kassa_protocol::sale::{Tender, TenderKind};
use kassa_protocol::{Kopecks, Sku, StoreId};

const STORE: StoreId = StoreId(1);
const T0: i64 = 1_765_100_000_000;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/formats-history")
}

/// The card the fixture's journal issued first (store 1's first card).
fn card() -> CustomerId {
    CustomerId::parse("00001000000001").unwrap()
}

/// Writes the fixtures (only when asked, only if missing).
#[test]
fn write_fixtures_with_history() {
    if std::env::var("KASSA_WRITE_FIXTURES").is_err() || dir().join("journal.sqlite").exists() {
        return;
    }
    std::fs::create_dir_all(dir()).unwrap();
    let j = kassa_tests::fixture_journal(&dir().join("journal.sqlite"), STORE, T0);
    let customer = j.issue_customer("+7 912 000-33-44", Some("Олег")).unwrap();
    assert_eq!(customer.card, card(), "the fixture's card");
    let mut basket = Basket::new(1);
    basket.add(&j.item_by_sku(&Sku("100001".into())).unwrap().unwrap(), 2).unwrap();
    let total = basket.totals().unwrap().total;
    let with = LoyaltyUse { customer: card(), rules: LoyaltyRules::default(), online: false };
    let card_paid = [Tender { kind: TenderKind::Card, amount: total }];
    let (sale, _) = j.commit_payment(1, "kassir", &basket, Some(1), &card_paid, Some(&with), "pay", T0 + 1).unwrap();
    let back = ReturnRequest::WithReceipt { sale_seq: sale.id.seq, lines: vec![(0, 1)] };
    j.commit_return(1, "kassir", &back, None, "ret", T0 + 2).unwrap();
    drop(j);
    kassa_tests::seal_fixtures(&dir(), &["journal.sqlite"]);
}

#[test]
fn a_customers_history_of_this_format_is_read_back() {
    assert_eq!(kassa_tests::fixture_version(&dir().join("journal.sqlite")), 12);
    let tmp = kassa_tests::copy_fixtures(&dir(), &["journal.sqlite"]);
    let j = kassa_agent::Journal::open(&tmp.path().join("journal.sqlite"), STORE).unwrap();
    let history = j.customer_history(&card()).unwrap();
    let seen: Vec<_> = history.purchases.iter().map(|p| (p.doc.seq, p.kind, p.total)).collect();
    assert_eq!(seen, vec![(2, DocKind::Return, Kopecks(10_690)), (1, DocKind::Sale, Kopecks(21_380))], "{history:?}");
    assert!(history.purchases.iter().all(|p| p.doc.store == STORE && p.created_at_ms > T0));
    assert!(history.orders.is_empty());
    let stranger = CustomerId::parse("00001000000002").unwrap();
    assert!(j.customer_history(&stranger).unwrap().purchases.is_empty());
}
