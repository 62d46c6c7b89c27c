//! Fixtures of the formats signed receipts brought, read by today's code: a receipt
//! code as this release prints it (proof format 1, signed) with its store's public
//! key; the store's journal at schema 10 (the stores' keys and HQ's limits it keeps, a
//! return of another store's receipt taken offline and what it refunded so); HQ's
//! database at schema 11 (the stores' keys it recorded, the limits it publishes); and a
//! receipt code of a sale with a loyalty card (proof format 2, with the sale's points)
//! under `tests/fixtures/formats-receipt-points/`.
//!
//! The files under `tests/fixtures/formats-receipts/` are never edited; they were
//! written once by `write_fixtures_with_signed_receipts` below (`KASSA_WRITE_FIXTURES=1`,
//! missing files only), and a later release's upgrade test reads them.

use std::path::{Path, PathBuf};

use kassa_agent::journal::{ReturnRequest, WriteError};
use kassa_agent::Journal;
use kassa_protocol::receipt_proof::{self, ReceiptProof, ReceiptSigner};
use kassa_protocol::returns::{OfflineLimit, ReturnLimits, ReturnTerms, StoreKey};
use kassa_protocol::sale::Sale;
use kassa_protocol::{Kopecks, StoreId};

/// The store that sold, and the store that took a return of its receipt offline.
const SOLD_AT: StoreId = StoreId(2);
const RETURNED_AT: StoreId = StoreId(1);
const T0: i64 = 1_764_800_000_000;
const LIMITS: ReturnLimits = ReturnLimits { per_receipt: Kopecks(20_000), per_shift: Kopecks(50_000) };

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/formats-receipts")
}

/// Store 2's sale of three milks, paid by card.
fn sale() -> Sale {
    kassa_tests::fixture_card_sale(SOLD_AT, 7, T0)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.trim().len()).step_by(2).map(|i| u8::from_str_radix(&text.trim()[i..i + 2], 16).unwrap()).collect()
}

/// Writes the fixtures (only when asked, only if missing).
#[test]
fn write_fixtures_with_signed_receipts() {
    if std::env::var("KASSA_WRITE_FIXTURES").is_err() || dir().join("journal.sqlite").exists() {
        return;
    }
    std::fs::create_dir_all(dir()).unwrap();
    let signer = ReceiptSigner::generate();
    let code = signer.code(&sale());
    std::fs::write(dir().join("receipt-code.txt"), &code).unwrap();
    std::fs::write(dir().join("store-2-key.hex"), hex(&signer.public_key())).unwrap();

    let j = kassa_tests::fixture_journal(&dir().join("journal.sqlite"), RETURNED_AT, T0);
    let key = StoreKey { seq: 2, store: SOLD_AT, public_key: signer.public_key() };
    let terms = ReturnTerms { limits_version: 2, limits: LIMITS, keys: vec![key], keys_after: 0, keys_upto: 2 };
    j.apply_return_terms(&terms).unwrap();
    let parsed = receipt_proof::parse_code(&code).unwrap().unwrap();
    let proof = receipt_proof::verify(&parsed, &[signer.public_key()]).unwrap();
    let request = ReturnRequest::Offline { proof: Box::new(proof), lines: vec![(0, 1)] };
    j.commit_return(1, "kassir", &request, None, "ret-1", T0 + 10).unwrap();
    drop(j);

    let db = kassa_hq::Db::open(&dir().join("hq.sqlite")).unwrap();
    db.record_store_key(RETURNED_AT, &ReceiptSigner::generate().public_key(), T0).unwrap();
    db.record_store_key(SOLD_AT, &signer.public_key(), T0 + 1).unwrap();
    db.set_return_limits(LIMITS, None).unwrap();
    drop(db);
    kassa_tests::seal_fixtures(&dir(), &["journal.sqlite", "hq.sqlite"]);
}

fn copy() -> tempfile::TempDir {
    kassa_tests::copy_fixtures(&dir(), &["journal.sqlite", "hq.sqlite"])
}

fn store_2_key() -> Vec<u8> {
    unhex(&std::fs::read_to_string(dir().join("store-2-key.hex")).unwrap())
}

#[test]
fn a_receipt_code_of_this_release_verifies_and_says_what_was_paid() {
    let code = std::fs::read_to_string(dir().join("receipt-code.txt")).unwrap();
    let parsed = receipt_proof::parse_code(&code).unwrap().unwrap();
    let proof: ReceiptProof = receipt_proof::verify(&parsed, &[store_2_key()]).unwrap();
    assert_eq!((proof.sale, proof.receipt_no(), proof.total()), (sale().id, sale().receipt_no, sale().total));
    assert_eq!(proof.to_sale(|_| None).tenders, sale().tenders);
}

#[test]
fn the_stores_keys_limits_and_offline_refunds_are_read_back() {
    assert_eq!(kassa_tests::fixture_version(&dir().join("journal.sqlite")), 10);
    let tmp = copy();
    let j = Journal::open(&tmp.path().join("journal.sqlite"), RETURNED_AT).unwrap();
    assert!(j.verify().unwrap().ok());
    assert_eq!(j.store_keys(SOLD_AT).unwrap(), vec![store_2_key()]);
    assert_eq!((j.return_limits().unwrap(), j.return_terms_held().unwrap()), (LIMITS, (2, 2)));
    // One milk went back offline; what it refunded counts against the receipt's limit:
    // two more would pass what the receipt may refund offline.
    let code = std::fs::read_to_string(dir().join("receipt-code.txt")).unwrap();
    let proof = receipt_proof::verify(&receipt_proof::parse_code(&code).unwrap().unwrap(), &[store_2_key()]).unwrap();
    let request = ReturnRequest::Offline { proof: Box::new(proof), lines: vec![(0, 2)] };
    let more = j.commit_return(1, "kassir", &request, None, "ret-2", T0 + 20);
    assert!(matches!(more, Err(WriteError::OfflineLimit(OfflineLimit::Receipt { .. }))), "{more:?}");
}

#[test]
fn hqs_store_keys_and_limits_of_this_format_are_read_back() {
    assert_eq!(kassa_tests::fixture_version(&dir().join("hq.sqlite")), 11);
    let tmp = copy();
    let db = kassa_hq::Db::open(&tmp.path().join("hq.sqlite")).unwrap();
    let terms = db.return_terms(0).unwrap();
    assert_eq!((terms.limits, terms.keys.len(), terms.keys_upto), (LIMITS, 2, 2));
    assert_eq!((terms.keys[1].store, &terms.keys[1].public_key), (SOLD_AT, &store_2_key()));
    assert_eq!(db.store_keys_head().unwrap(), 2);
}

/// A receipt of a sale with a loyalty card, as this release prints it (proof format 2:
/// with the sale's points), and its store's key: `tests/fixtures/formats-receipt-points/`,
/// written once by `write_fixture_of_a_card_sales_receipt` (missing files only).
fn points_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/formats-receipt-points")
}

/// Store 2's sale of three milks with a card: 1,00 ₽ of it paid in points, 26 earned.
fn card_sale() -> Sale {
    let mut s = sale();
    let paid = s.total;
    s.tenders = vec![
        kassa_protocol::sale::Tender { kind: kassa_protocol::sale::TenderKind::Points, amount: Kopecks(100) },
        kassa_protocol::sale::Tender { kind: kassa_protocol::sale::TenderKind::Card, amount: Kopecks(paid.0 - 100) },
    ];
    s.loyalty = Some(kassa_protocol::loyalty::SaleLoyalty {
        customer: kassa_protocol::loyalty::CustomerId::parse("00002000000003").unwrap(),
        point_value_kopecks: 100,
        redeemed_points: 1,
        lines: vec![kassa_protocol::loyalty::LinePoints { paid_in_points: Kopecks(100), earned_points: 26 }],
    });
    s
}

#[test]
fn write_fixture_of_a_card_sales_receipt() {
    if std::env::var("KASSA_WRITE_FIXTURES").is_err() || points_dir().join("receipt-code.txt").exists() {
        return;
    }
    std::fs::create_dir_all(points_dir()).unwrap();
    let signer = ReceiptSigner::generate();
    std::fs::write(points_dir().join("store-2-key.hex"), hex(&signer.public_key())).unwrap();
    std::fs::write(points_dir().join("receipt-code.txt"), signer.code(&card_sale())).unwrap();
}

#[test]
fn a_card_sales_receipt_of_this_release_verifies_with_its_points() {
    let code = std::fs::read_to_string(points_dir().join("receipt-code.txt")).unwrap();
    let key = unhex(&std::fs::read_to_string(points_dir().join("store-2-key.hex")).unwrap());
    let parsed = receipt_proof::parse_code(&code).unwrap().unwrap();
    let proof = receipt_proof::verify(&parsed, &[key]).unwrap();
    assert_eq!(proof.to_bytes()[0], receipt_proof::PROOF_FORMAT_POINTS);
    let sold = proof.to_sale(|_| None);
    assert_eq!((sold.loyalty, sold.tenders, sold.total), (card_sale().loyalty, card_sale().tenders, card_sale().total));
}
