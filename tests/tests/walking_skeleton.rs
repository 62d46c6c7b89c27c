//! The walking skeleton end to end: HQ and a store agent over QUIC with mutual TLS on
//! loopback, a virtual scanner and printer on real ptys opened through `serialport`,
//! the journal in a real SQLite file.
//!
//! A scan reaches the cashier page's event stream; paying cash commits the sale,
//! prints the receipt, opens the drawer, lowers stock at the store, and HQ has the sale
//! and the new stock level within seconds. A second start reuses the data.

use std::time::Duration;

use kassa_sim::printer::PrinterEvent;
use kassa_sim::stack::{self, StackOptions, DEMO_STOCK_PIECES};
use kassa_tests::{eventually, init_logging};
use serde_json::{json, Value};

const MILK_GTIN: &str = "4650001209603";
const MILK_SKU: &str = "100001";
const MILK_PRICE: i64 = 10690;

/// `GET url` of HQ's API with its token.
async fn get(client: &reqwest::Client, url: String, token: &str) -> Value {
    client.get(url).bearer_auth(token).send().await.unwrap().json().await.unwrap()
}

/// Reads the page's server-sent event stream until an event matches `pred`.
async fn next_event(resp: &mut reqwest::Response, buf: &mut String, pred: impl Fn(&Value) -> bool) -> Value {
    let read = async {
        loop {
            while let Some(end) = buf.find("\n\n") {
                let block: String = buf.drain(..end + 2).collect();
                for line in block.lines() {
                    if let Some(data) = line.strip_prefix("data:") {
                        let ev: Value = serde_json::from_str(data.trim()).unwrap();
                        if pred(&ev) {
                            return ev;
                        }
                    }
                }
            }
            let chunk = resp.chunk().await.unwrap().expect("event stream ended");
            buf.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read).await.expect("no matching event within 10 s")
}

fn receipt(events: &std::sync::mpsc::Receiver<PrinterEvent>) -> (String, bool) {
    let mut drawer = false;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match events.recv_timeout(left).expect("no receipt printed within 10 s") {
            PrinterEvent::Receipt(r) => {
                // The drawer kick follows the cut; give it a moment.
                if let Ok(PrinterEvent::DrawerKick) = events.recv_timeout(Duration::from_secs(2)) {
                    drawer = true;
                }
                return (r.text(), drawer);
            }
            PrinterEvent::DrawerKick => drawer = true,
            PrinterEvent::Unknown { offset, byte } => panic!("printer got unknown byte {byte:#x} at {offset}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_pay_print_and_sync_to_hq() {
    init_logging();
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let stack = stack::start(StackOptions::ephemeral(dir.path())).await.unwrap();
    assert!(stack.catalog_ready, "the store must receive its catalog from HQ");
    let agent = format!("http://{}", stack.agent.http_addr);
    let hq = format!("http://{}", stack.hq.http_addr);

    // The store's catalog came over the sync channel: the journal holds HQ's items.
    assert_eq!(stack.agent.journal.catalog_len().unwrap(), 486);
    // Writes need a logged-in cashier.
    let anonymous = client
        .post(format!("{agent}/api/pay"))
        .json(&json!({ "idempotency_key": "x", "tenders": [] }))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let token = stack::cashier_token(&client, &agent).await.unwrap();

    // Nothing is read without a session either: not the event stream, stock or metrics.
    for path in ["/api/events?token=nope", "/api/stock/100001", "/metrics", "/api/users", "/api/status"] {
        let refused = client.get(format!("{agent}{path}")).send().await.unwrap();
        assert_eq!(refused.status(), 401, "{path}");
    }

    // The page's event stream (the browser's EventSource passes the session as a query
    // parameter): first the (empty) basket.
    let mut events = client.get(format!("{agent}/api/events?token={token}")).send().await.unwrap();
    assert_eq!(events.status(), 200);
    let mut buf = String::new();
    let first = next_event(&mut events, &mut buf, |e| e["type"] == "basket").await;
    assert_eq!(first["basket"]["lines"], json!([]));

    // A scan on the virtual scanner shows up on the page without a reload.
    stack.scanner.scan(MILK_GTIN.as_bytes()).unwrap();
    let ev = next_event(&mut events, &mut buf, |e| e["type"] == "basket" && e["basket"]["lines"] != json!([])).await;
    assert_eq!(ev["basket"]["lines"][0]["sku"], MILK_SKU);
    assert_eq!((&ev["basket"]["lines"][0]["unit"], &ev["basket"]["lines"][0]["vat"]), (&json!("pcs"), &json!("10")));
    assert_eq!(ev["totals"]["total_kopecks"], MILK_PRICE);

    // A bad scan is refused with a reason, and the basket is unchanged.
    stack.scanner.scan(b"4650001209604").unwrap();
    let ev = next_event(&mut events, &mut buf, |e| e["type"] == "scan_rejected").await;
    assert!(ev["reason"].as_str().unwrap().contains("check digit"), "{ev}");
    assert_eq!(ev["reason_code"], "scan_check_digit", "{ev}");

    // Too little cash is refused, nothing is written.
    let short = client
        .post(format!("{agent}/api/pay"))
        .bearer_auth(&token)
        .json(&json!({ "idempotency_key": "short-1", "tenders": [{ "kind": "cash", "amount_kopecks": 100 }] }))
        .send()
        .await
        .unwrap();
    assert_eq!(short.status(), 422);
    assert_eq!(short.json::<Value>().await.unwrap()["error"], "payment_short");
    assert_eq!(stack.agent.journal.docs_count().unwrap(), (0, 0));

    // Pay cash: 200 roubles for 106,90.
    let pay = json!({ "idempotency_key": "pay-1", "tenders": [{ "kind": "cash", "amount_kopecks": 20000 }] });
    let paid: Value = client
        .post(format!("{agent}/api/pay"))
        .bearer_auth(&token)
        .json(&pay)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(paid["replayed"], false, "{paid}");
    assert_eq!(paid["sale"]["total_kopecks"], MILK_PRICE);
    assert_eq!(paid["sale"]["change_kopecks"], 20000 - MILK_PRICE);
    assert_eq!(paid["sale"]["tenders"], json!([{ "kind": "cash", "amount_kopecks": 20000 }]));
    assert_eq!(paid["sale"]["receipt_no"], "0001-01-000001");
    // A retried "pay" returns the same sale, never a second one.
    let again: Value = client
        .post(format!("{agent}/api/pay"))
        .bearer_auth(&token)
        .json(&pay)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["replayed"], true);
    assert_eq!(again["sale"]["id"], paid["sale"]["id"]);

    // The sale is in the SQLite file, read by a separate connection.
    let db = rusqlite::Connection::open(dir.path().join("store-1/journal.sqlite")).unwrap();
    let (n, total): (i64, i64) = db
        .query_row("SELECT COUNT(*), SUM(total_kopecks) FROM docs WHERE kind = 'sale'", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!((n, total), (1, MILK_PRICE));

    // The receipt came out of the virtual printer, Cyrillic intact, and the drawer opened.
    let (text, drawer) = receipt(&stack.printer_events);
    assert!(text.contains("Молоко 3,2% 1 л \"Ладога\""), "{text}");
    assert!(text.contains("ИТОГО") && text.contains("=106,90"), "{text}");
    assert!(text.contains("Сдача") && text.contains("=93,10"), "{text}");
    assert!(text.contains("0001-01-000001"), "{text}");
    // Its QR code names the sale and proves it: signed with store 1's key, which HQ
    // recorded from the store's certificate when it connected (and publishes to every
    // store for returns taken offline).
    let code = text.split("[QR: ").nth(1).and_then(|r| r.split(']').next()).expect("the receipt's QR code");
    assert!(code.starts_with("KASSA:1:1:"), "{code}");
    let parsed = kassa_protocol::receipt_proof::parse_code(code).unwrap().unwrap();
    let keys: Vec<Vec<u8>> =
        stack.hq.shared.db.return_terms(0).unwrap().keys.into_iter().map(|k| k.public_key).collect();
    let proof = kassa_protocol::receipt_proof::verify(&parsed, &keys).expect("the receipt verifies with HQ's keys");
    assert_eq!((proof.receipt_no(), proof.total().0), ("0001-01-000001".to_owned(), MILK_PRICE));
    assert!(drawer, "a cash sale opens the drawer");

    // Stock went down at the store...
    let store_stock: Value = client
        .get(format!("{agent}/api/stock/{MILK_SKU}"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(store_stock["quantity"], DEMO_STOCK_PIECES - 1);
    // ...and HQ has the sale and the new stock level within seconds.
    eventually(Duration::from_secs(10), "HQ to have the sale and stock", || {
        let (client, hq, token) = (client.clone(), hq.clone(), stack.hq_token.clone());
        async move {
            let stock = get(&client, format!("{hq}/api/stock/{MILK_SKU}"), &token).await;
            (stock["stores"] == json!([{ "store": 1, "quantity": DEMO_STOCK_PIECES - 1, "reserved": 0 }])).then_some(())
        }
    })
    .await;
    let sales = get(&client, format!("{hq}/api/stores/1/sales"), &stack.hq_token).await;
    assert_eq!(sales["sales"].as_array().unwrap().len(), 1, "{sales}");
    assert_eq!(sales["sales"][0]["receipt_no"], "0001-01-000001");
    assert_eq!(sales["sales"][0]["total_kopecks"], MILK_PRICE);
    let stores = get(&client, format!("{hq}/api/stores"), &stack.hq_token).await;
    assert_eq!(stores["stores"][0]["acked_seq"], 1);
    assert_eq!(stores["stores"][0]["backlog"], 0);
    // Operators' metrics on both sides.
    let metrics =
        client.get(format!("{agent}/metrics")).bearer_auth(&token).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("\nkassa_sales 1\n") && metrics.contains("\nkassa_hq_online 1\n"), "{metrics}");
    let metrics = client.get(format!("{hq}/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("kassa_hq_store_backlog_entries{store=\"1\"} 0"), "{metrics}");

    drop(events);
    stack.stop().await;

    // A second start reuses the data: same sale, same stock, no second seeding.
    let stack = stack::start(StackOptions::ephemeral(dir.path())).await.unwrap();
    assert_eq!(stack.agent.journal.docs_count().unwrap(), (1, 0));
    assert!(stack.agent.journal.verify().unwrap().ok());
    assert_eq!(stack.agent.journal.stock(&kassa_protocol::Sku(MILK_SKU.into())).unwrap(), DEMO_STOCK_PIECES - 1);
    let hq = format!("http://{}", stack.hq.http_addr);
    let stock = get(&client, format!("{hq}/api/stock/{MILK_SKU}"), &stack.hq_token).await;
    assert_eq!(stock["stores"], json!([{ "store": 1, "quantity": DEMO_STOCK_PIECES - 1, "reserved": 0 }]));
    stack.stop().await;
}
