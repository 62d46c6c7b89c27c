//! Upgrades without loss: the data directory the previous release (0.1.0, commit
//! `04edbc3`) left behind, committed under `tests/fixtures/release-0.1.0/`, read by the
//! current code.
//!
//! The fixture is never modified: every test copies it into a temporary directory
//! first. `expected.json` is what the previous release answered while it wrote the
//! data (see the fixture's README), so the checks below compare the current code with
//! the old code's own answers, not with figures typed into the test.

use std::path::{Path, PathBuf};
use std::time::Duration;

use kassa_agent::journal::{BasketStore, Journal, JournalError};
use kassa_protocol::{Sku, StoreId};
use kassa_sim::printer::PrinterEvent;
use kassa_sim::stack::{self, StackOptions};
use kassa_tests::{eventually, init_logging};
use serde_json::{json, Value};

/// The previous release's fixture, as committed.
fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/release-0.1.0")
}

fn expected() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture().join("expected.json")).unwrap()).unwrap()
}

/// Copies the fixture's data directory to `to` (a fresh temporary directory).
fn copy_data(to: &Path) {
    fn copy_dir(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let target = to.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                copy_dir(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), &target).unwrap();
            }
        }
    }
    copy_dir(&fixture().join("data"), to);
}

fn doc<'a>(expected: &'a Value, name: &str) -> &'a Value {
    expected["docs"].as_array().unwrap().iter().find(|d| d["name"] == name).unwrap_or_else(|| panic!("no {name}"))
}

fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    PathBuf::from(format!("{}{suffix}", path.display()))
}

fn user_version(path: &Path) -> u32 {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap()
}

fn count(path: &Path, sql: &str) -> i64 {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

/// An amount of the cashier's API (`{field}_kopecks`).
fn kopecks(v: &Value, field: &str) -> i64 {
    v.get(format!("{field}_kopecks")).and_then(Value::as_i64).unwrap_or_else(|| panic!("no amount `{field}` in {v}"))
}

/// `31370` → `313,70`, as receipts print amounts.
fn rubles(kopecks: i64) -> String {
    format!("{},{:02}", kopecks / 100, kopecks % 100)
}

async fn get(client: &reqwest::Client, url: String, token: Option<&str>) -> Value {
    let mut req = client.get(&url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let v: Value = resp.json().await.unwrap();
    assert!(status.is_success(), "GET {url}: {status} {v}");
    v
}

async fn post(client: &reqwest::Client, url: String, token: &str, body: Value) -> (u16, Value) {
    let resp = client.post(&url).bearer_auth(token).json(&body).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

/// The next receipt the virtual printer cuts, as text.
fn next_receipt(events: &std::sync::mpsc::Receiver<PrinterEvent>) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match events.recv_timeout(left).expect("no receipt printed within 10 s") {
            PrinterEvent::Receipt(r) => return r.text(),
            PrinterEvent::DrawerKick => {}
            PrinterEvent::Unknown { offset, byte } => panic!("printer got unknown byte {byte:#x} at {offset}"),
        }
    }
}

/// HQ's sales of store 1, all pages.
async fn hq_sales(client: &reqwest::Client, hq: &str, hq_token: &str) -> Vec<Value> {
    let sales = get(client, format!("{hq}/api/stores/1/sales?limit=500"), Some(hq_token)).await;
    sales["sales"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_previous_releases_data_directory_upgrades() {
    init_logging();
    let expected = expected();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    copy_data(&data);
    let stack = stack::start(StackOptions::ephemeral(&data)).await.unwrap();
    assert!(stack.catalog_ready);
    let journal = stack.agent.journal.clone();
    let client = reqwest::Client::new();
    let agent = format!("http://{}", stack.agent.http_addr);
    let hq = format!("http://{}", stack.hq.http_addr);
    let hq_token = stack.hq_token.clone();

    // Every file was migrated, each after a copy was kept beside it.
    let journal_file = data.join("store-1/journal.sqlite");
    let hq_file = data.join("hq/hq.sqlite");
    let basket_file = data.join("store-1/basket.sqlite");
    for (file, version) in [
        (&journal_file, kassa_agent::journal::SCHEMA_VERSION),
        (&hq_file, kassa_hq::db::SCHEMA_VERSION),
        (&basket_file, BasketStore::SCHEMA_VERSION),
    ] {
        assert!(sidecar(file, ".v1.bak").exists(), "no copy of {} kept", file.display());
        assert_eq!(user_version(file), version, "{}", file.display());
    }

    // The chain verifies, old records and all; every document is found by its receipt
    // number with the total the previous release gave it.
    let verify = journal.verify().unwrap();
    assert!(verify.ok(), "{verify:?}");
    let counts = &expected["counts"];
    assert_eq!(journal.docs_count().unwrap(), (counts["sales"].as_u64().unwrap(), counts["returns"].as_u64().unwrap()));
    let docs = expected["docs"].as_array().unwrap();
    // The demo cashier's PIN, hashed by the previous release, still logs in.
    let (status, login) =
        post(&client, format!("{agent}/api/login"), "", json!({ "user": "kassir", "pin": "1111" })).await;
    assert_eq!(status, 200, "{login}");
    let token = login["token"].as_str().unwrap().to_owned();
    let query = rusqlite::Connection::open(&journal_file).unwrap();
    for d in docs {
        let receipt = d["receipt_no"].as_str().unwrap();
        let seq = journal.find_doc(receipt).unwrap().unwrap_or_else(|| panic!("{receipt} not found"));
        assert_eq!(seq, d["seq"].as_u64().unwrap(), "{receipt}");
        if d["kind"] == "sale" {
            let sale = journal.sale(seq).unwrap().unwrap();
            assert_eq!(sale.receipt_no, receipt);
            assert_eq!(sale.total.0, d["total_kopecks"].as_i64().unwrap(), "{receipt}");
            let lines: Vec<_> = sale.lines.iter().map(|l| (l.sku.as_str(), l.quantity, l.amount.0)).collect();
            let want: Vec<_> = d["lines"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| {
                    (l["sku"].as_str().unwrap(), l["quantity"].as_i64().unwrap(), l["amount_kopecks"].as_i64().unwrap())
                })
                .collect();
            assert_eq!(lines, want, "{receipt}");
        }
        // The query tables agree (returns included), and so does the cashier's API.
        let (kind, total): (String, i64) = query
            .query_row("SELECT kind, total_kopecks FROM docs WHERE seq = ?1", [seq], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap();
        assert_eq!((kind.as_str(), total.abs()), (d["kind"].as_str().unwrap(), d["total_kopecks"].as_i64().unwrap()));
        if d["kind"] == "sale" {
            let answer = get(&client, format!("{agent}/api/sales/{seq}"), Some(&token)).await;
            let sale = answer.get("sale").unwrap_or(&answer);
            assert_eq!(sale["receipt_no"], d["receipt_no"]);
            assert_eq!(kopecks(sale, "total"), d["total_kopecks"].as_i64().unwrap());
        }
    }
    drop(query);
    // The marked unit kept its code byte for byte.
    let mixed = doc(&expected, "mixed_sale");
    let sale = journal.sale(mixed["seq"].as_u64().unwrap()).unwrap().unwrap();
    assert_eq!(sale.lines[0].marking.as_deref(), mixed["lines"][0]["marking"].as_str());
    // What the old returns and the cancellation took back still counts.
    let cash_sale = doc(&expected, "cash_sale");
    let cash_seq = cash_sale["seq"].as_u64().unwrap();
    assert_eq!(journal.returnable(cash_seq).unwrap().unwrap().1, vec![1, 1]);
    let cancelled = doc(&expected, "cancelled_sale");
    assert_eq!(journal.returnable(cancelled["seq"].as_u64().unwrap()).unwrap().unwrap().1, vec![0]);

    // Stock at the store and at HQ, as the previous release left it.
    for (sku, want) in expected["stock"].as_object().unwrap() {
        assert_eq!(journal.stock(&Sku(sku.clone())).unwrap(), want["store"].as_i64().unwrap(), "store stock of {sku}");
        let at_hq = get(&client, format!("{hq}/api/stock/{sku}"), Some(&stack.hq_token)).await;
        assert_eq!(
            at_hq["stores"],
            json!([{ "store": 1, "quantity": want["hq"], "reserved": 0 }]),
            "HQ stock of {sku}"
        );
    }

    // The loyalty customer and their balance, at the store and at HQ.
    let customer = &expected["customer"];
    let card = customer["card"].as_str().unwrap();
    let id = kassa_protocol::loyalty::CustomerId::parse(card).unwrap();
    assert_eq!(journal.loyalty_account(&id).unwrap().balance(), customer["balance"].as_i64().unwrap());
    let at_hq = get(&client, format!("{hq}/api/loyalty/{card}"), Some(&stack.hq_token)).await;
    assert_eq!(at_hq["balance"], customer["hq_balance"]);
    assert_eq!((&at_hq["earned"], &at_hq["spent"]), (&customer["hq_earned"], &customer["hq_spent"]));
    // Their history at HQ: the old sales made with the card, found by schema 13's step.
    let history = get(&client, format!("{hq}/api/customers/{card}/history"), Some(&stack.hq_token)).await;
    let receipts: Vec<&str> =
        history["purchases"].as_array().unwrap().iter().map(|p| p["receipt_no"].as_str().unwrap()).collect();
    assert_eq!(receipts, ["0001-01-000009", "0001-01-000008"], "{history}");
    // And at the store, from its own journal (journal schema 12's step found them).
    let own = journal.customer_history(&id).unwrap();
    let own: Vec<&str> = own.purchases.iter().map(|p| p.receipt_no.as_str()).collect();
    assert_eq!(own, receipts, "the store's own records of the customer");

    // The basket left open by the old release is not restored (its encoding had no
    // basket id; see `journal::open_basket`), but the copy of its file keeps it.
    let basket = get(&client, format!("{agent}/api/basket"), Some(&token)).await;
    assert_eq!(basket["basket"]["lines"], json!([]), "{basket}");
    let kept = count(&sidecar(&basket_file, ".v1.bak"), "SELECT COUNT(*) FROM open_baskets");
    assert_eq!(kept, 1);

    // HQ, on its migrated database, still serves the old sales.
    let sales = hq_sales(&client, &hq, &hq_token).await;
    assert_eq!(sales.len(), docs.len(), "{sales:?}");
    for d in docs {
        let s = sales.iter().find(|s| s["receipt_no"] == d["receipt_no"]).expect("HQ has the document");
        let sign = if d["kind"] == "return" { -1 } else { 1 };
        assert_eq!(s["total_kopecks"].as_i64().unwrap(), sign * d["total_kopecks"].as_i64().unwrap());
        assert_eq!(s["kind"], d["kind"]);
    }

    // A reprint of an old sale: the receipt comes out of the printer with its number
    // and total.
    while stack.printer_events.try_recv().is_ok() {}
    let (status, v) = post(&client, format!("{agent}/api/sales/{cash_seq}/reprint"), &token, json!({})).await;
    assert_eq!(status, 200, "{v}");
    let text = next_receipt(&stack.printer_events);
    assert!(text.contains(cash_sale["receipt_no"].as_str().unwrap()), "{text}");
    assert!(text.contains(&format!("={}", rubles(cash_sale["total_kopecks"].as_i64().unwrap()))), "{text}");
    assert!(text.contains("Молоко"), "{text}");

    // The milk left on the old cash sale comes back through the cashier's API; one more
    // would be more than was sold.
    let milk = cash_sale["lines"][0].clone();
    let ret_body = |key: &str| json!({ "code": cash_sale["receipt_no"], "lines": [{ "line": 0, "quantity": 1 }], "idempotency_key": key });
    let (status, ret) = post(&client, format!("{agent}/api/returns"), &token, ret_body("upgrade-return-1")).await;
    assert_eq!(status, 200, "{ret}");
    let ret = ret["return"].clone();
    assert_eq!(kopecks(&ret, "total"), milk["amount_kopecks"].as_i64().unwrap() / 2);
    let return_no = ret["receipt_no"].as_str().unwrap().to_owned();
    let last_old = docs.iter().map(|d| d["seq"].as_u64().unwrap()).max().unwrap();
    assert_eq!(journal.find_doc(&return_no).unwrap(), Some(last_old + 1), "numbering goes on from the old series");
    let (status, over) = post(&client, format!("{agent}/api/returns"), &token, ret_body("upgrade-return-2")).await;
    assert_eq!((status, over["error"].as_str()), (422, Some("over_return")), "{over}");
    let return_text = next_receipt(&stack.printer_events);
    assert!(return_text.contains(&return_no), "{return_text}");

    // A new sale (butter) in the shift the old release left open.
    let (status, ev) = post(
        &client,
        format!("{agent}/api/basket/items"),
        &token,
        json!({ "sku": "100041", "quantity": 1, "idempotency_key": "upgrade-add-1" }),
    )
    .await;
    assert_eq!(status, 200, "{ev}");
    let total = kopecks(&ev["totals"], "total");
    let pay = json!({
        "idempotency_key": "upgrade-pay-1",
        "tenders": [{ "kind": "cash", "amount_kopecks": total }],
        "basket_id": ev["basket"]["id"],
    });
    let (status, paid) = post(&client, format!("{agent}/api/pay"), &token, pay).await;
    assert_eq!(status, 200, "{paid}");
    let sale_no = paid["sale"]["receipt_no"].as_str().unwrap().to_owned();
    assert_eq!(journal.find_doc(&sale_no).unwrap(), Some(last_old + 2));
    let sale_text = next_receipt(&stack.printer_events);
    assert!(sale_text.contains(&sale_no), "{sale_text}");

    // Both reach HQ, exactly once, after the old documents.
    let sales = eventually(Duration::from_secs(20), "HQ to have the new sale and the return", || {
        let (client, hq, j, hq_token) = (client.clone(), hq.clone(), journal.clone(), hq_token.clone());
        async move {
            let sales = hq_sales(&client, &hq, &hq_token).await;
            let drained = j.acked_seq().ok()? == j.outbox_head().ok()?;
            (drained && sales.len() == docs.len() + 2).then_some(sales)
        }
    })
    .await;
    for (no, kind, total) in [(&sale_no, "sale", total), (&return_no, "return", -kopecks(&ret, "total"))] {
        let found: Vec<_> = sales.iter().filter(|s| s["receipt_no"] == no.as_str()).collect();
        assert_eq!(found.len(), 1, "{no} at HQ: {sales:?}");
        assert_eq!((found[0]["kind"].as_str(), found[0]["total_kopecks"].as_i64()), (Some(kind), Some(total)));
    }
    let stores = get(&client, format!("{hq}/api/stores"), Some(&stack.hq_token)).await;
    assert_eq!(stores["stores"][0]["acked_seq"].as_u64(), Some(journal.outbox_head().unwrap()), "{stores}");
    assert_eq!(stores["stores"][0]["backlog"], 0, "{stores}");

    // Stock moved by exactly the new documents, at the store and at HQ.
    for (sku, delta) in [("100001", 1), ("100041", -1)] {
        let want = expected["stock"][sku]["store"].as_i64().unwrap() + delta;
        assert_eq!(journal.stock(&Sku(sku.into())).unwrap(), want, "store stock of {sku}");
        let (client, url) = (client.clone(), format!("{hq}/api/stock/{sku}"));
        eventually(Duration::from_secs(20), "HQ's stock to follow", || {
            let (client, url, hq_token) = (client.clone(), url.clone(), hq_token.clone());
            async move {
                let v = get(&client, url, Some(&hq_token)).await;
                (v["stores"] == json!([{ "store": 1, "quantity": want, "reserved": 0 }])).then_some(())
            }
        })
        .await;
    }
    assert!(journal.verify().unwrap().ok());
    drop(journal);
    stack.stop().await;
}

/// Sets a copied fixture file's schema version to one this binary does not know, and
/// returns its bytes (checkpointed: no `-wal` beside it).
fn make_too_new(path: &Path, version: u32) -> Vec<u8> {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.pragma_update(None, "user_version", version).unwrap();
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).unwrap();
    drop(conn);
    assert!(!sidecar(path, "-wal").exists(), "{} has a WAL left", path.display());
    std::fs::read(path).unwrap()
}

/// The file's bytes are unchanged, nothing is left in a WAL and no copy was made.
fn assert_untouched(path: &Path, before: &[u8]) {
    assert!(std::fs::read(path).unwrap() == before, "{} was written to", path.display());
    let wal = sidecar(path, "-wal");
    assert!(!wal.exists() || std::fs::metadata(&wal).unwrap().len() == 0, "{} has writes", wal.display());
    let dir = path.parent().unwrap();
    let baks: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".bak"))
        .collect();
    assert!(baks.is_empty(), "a refused file is not migrated: {baks:?}");
}

fn assert_names_versions(message: &str, found: u32, known: u32) {
    assert!(message.contains(&format!("version {found}")), "{message}");
    assert!(message.contains(&format!("({known})")), "{message}");
    assert!(message.contains("not touched"), "{message}");
}

#[test]
fn files_newer_than_the_binary_are_refused_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    copy_data(tmp.path());

    // The store's journal.
    let path = tmp.path().join("store-1/journal.sqlite");
    let known = kassa_agent::journal::SCHEMA_VERSION;
    let before = make_too_new(&path, known + 1);
    match Journal::open(&path, StoreId(1)) {
        Err(e @ JournalError::TooNew { found, known: k, .. }) => {
            assert_eq!((found, k), (known + 1, known));
            assert_names_versions(&e.to_string(), known + 1, known);
            assert!(e.to_string().contains("kassa-agent"), "{e}");
        }
        other => panic!("a journal newer than the binary must be refused: {other:?}"),
    }
    assert_untouched(&path, &before);

    // HQ's database, opened as kassa-hq opens it.
    let path = tmp.path().join("hq/hq.sqlite");
    let known = kassa_hq::db::SCHEMA_VERSION;
    let before = make_too_new(&path, known + 1);
    match kassa_hq::Db::open(&path) {
        Err(e @ kassa_hq::db::DbError::TooNew { found, known: k }) => {
            assert_eq!((found, k), (known + 1, known));
            assert_names_versions(&e.to_string(), known + 1, known);
            assert!(e.to_string().contains("kassa-hq"), "{e}");
        }
        other => panic!("an HQ database newer than the binary must be refused: {other:?}"),
    }
    assert_untouched(&path, &before);

    // The open basket's file.
    let path = tmp.path().join("store-1/basket.sqlite");
    let known = BasketStore::SCHEMA_VERSION;
    let before = make_too_new(&path, known + 1);
    match BasketStore::open(&path) {
        Err(e @ JournalError::TooNew { found, known: k, .. }) => {
            assert_eq!((found, k), (known + 1, known));
            assert_names_versions(&e.to_string(), known + 1, known);
        }
        other => panic!("a basket file newer than the binary must be refused: {other:?}"),
    }
    assert_untouched(&path, &before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_store_newer_than_the_binary_does_not_start() {
    init_logging();
    let tmp = tempfile::tempdir().unwrap();
    copy_data(tmp.path());
    let path = tmp.path().join("store-1/journal.sqlite");
    let before = make_too_new(&path, kassa_agent::journal::SCHEMA_VERSION + 1);
    let err = stack::start(StackOptions::ephemeral(tmp.path())).await.expect_err("the agent must refuse to start");
    let message = err.to_string();
    assert!(message.contains("newer than this program knows"), "{message}");
    assert!(std::fs::read(&path).unwrap() == before, "the journal was written to");
}

#[test]
fn a_migration_keeps_a_copy_of_the_file_as_it_was() {
    let expected = expected();
    let counts = &expected["counts"];
    let tmp = tempfile::tempdir().unwrap();
    copy_data(tmp.path());

    let path = tmp.path().join("store-1/journal.sqlite");
    let records_before = count(&path, "SELECT COUNT(*) FROM records");
    assert_eq!(records_before, counts["records"].as_i64().unwrap());
    let journal = Journal::open(&path, StoreId(1)).unwrap();
    assert!(journal.verify().unwrap().ok());
    drop(journal);
    let backup = sidecar(&path, ".v1.bak");
    // VACUUM INTO rewrites pages, so the copy is compared by what it holds.
    assert_eq!(user_version(&backup), 0);
    assert_eq!(count(&backup, "SELECT COUNT(*) FROM records"), records_before);
    assert_eq!(count(&backup, "SELECT COUNT(*) FROM docs"), count(&path, "SELECT COUNT(*) FROM docs"));
    assert_eq!(user_version(&path), kassa_agent::journal::SCHEMA_VERSION);
    // Opened again: nothing to migrate, the copy stays as it is.
    let copy = std::fs::read(&backup).unwrap();
    drop(Journal::open(&path, StoreId(1)).unwrap());
    assert!(std::fs::read(&backup).unwrap() == copy);

    let path = tmp.path().join("hq/hq.sqlite");
    let db = kassa_hq::Db::open(&path).unwrap();
    assert_eq!(db.sales(StoreId(1), 0, 500).unwrap().len() as i64, counts["hq_sales"].as_i64().unwrap());
    drop(db);
    let backup = sidecar(&path, ".v1.bak");
    assert_eq!(user_version(&backup), 0);
    assert_eq!(count(&backup, "SELECT COUNT(*) FROM sales"), counts["hq_sales"].as_i64().unwrap());
    assert_eq!(
        count(&backup, "SELECT COUNT(*) FROM stock_counters"),
        count(&path, "SELECT COUNT(*) FROM stock_counters")
    );
    assert_eq!(user_version(&path), kassa_hq::db::SCHEMA_VERSION);

    let path = tmp.path().join("store-1/basket.sqlite");
    let store = BasketStore::open(&path).unwrap();
    assert_eq!(store.load(1).unwrap(), None, "the old release's basket is not restored");
    drop(store);
    assert_eq!(count(&sidecar(&path, ".v1.bak"), "SELECT COUNT(*) FROM open_baskets"), 1);
}
