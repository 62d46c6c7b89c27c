//! Return anywhere, end to end over QUIC with TLS, SQLite files and the till's HTTP API:
//! store 1 sells; store 2 finds the sale by its receipt number (HQ answers with what is
//! left) and takes part of it back, refunded to the card that paid; store 1 then sees
//! store 2's return (online, HQ's figures) and cannot take back more than is left. Two
//! stores that could not see each other's returns (store 1 cut off) take back the same
//! goods: HQ lists the line returned beyond what was sold, with both returns. Offline,
//! another store's receipt is refused plainly; a receipt no store made is not found.

use std::sync::atomic::Ordering;
use std::time::Duration;

use kassa_protocol::catalog::Unit;
use kassa_protocol::returns::{SaleAnswer, SaleRef};
use kassa_tests::{eventually, init_logging, AgentApi};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(30);

/// Sells `quantity` of `sku` at the store behind `api`, paid by card; the sale's view.
async fn sell_by_card(api: &AgentApi, sku: &str, quantity: i64, key: &str) -> Value {
    let add = json!({ "sku": sku, "quantity": quantity, "idempotency_key": format!("{key}-add") });
    let (status, body) = api.post("/api/basket/items", add).await;
    assert_eq!(status, 200, "{body}");
    let (_, basket) = api.get("/api/basket").await;
    let total = basket["totals"]["total_kopecks"].as_i64().unwrap();
    let pay = json!({ "tenders": [{ "kind": "card", "amount_kopecks": total }], "basket_id": basket["basket"]["id"],
                      "idempotency_key": key });
    let (status, paid) = api.post("/api/pay", pay).await;
    assert_eq!(status, 200, "{paid}");
    paid["sale"].clone()
}

async fn hq_has(hq: &kassa_hq::RunningHq, receipt: &str) {
    let by = SaleRef::ReceiptNo(receipt.to_owned());
    eventually(WAIT, &format!("HQ to hold sale {receipt}"), || async {
        matches!(hq.shared.db.sale_for_return(&by).unwrap(), SaleAnswer::Found { .. }).then_some(())
    })
    .await;
}

fn returned_at_hq(hq: &kassa_hq::RunningHq, receipt: &str) -> i64 {
    match hq.shared.db.sale_for_return(&SaleRef::ReceiptNo(receipt.to_owned())).unwrap() {
        SaleAnswer::Found { returned, .. } => returned.iter().map(|r| r.0).sum(),
        SaleAnswer::NotFound => panic!("HQ lost sale {receipt}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sale_is_returned_at_another_store_within_what_is_left() {
    init_logging();
    let dir = tempfile::tempdir().unwrap();
    let cancel = CancellationToken::new();
    let hq = kassa_tests::start_hq(dir.path(), Duration::from_millis(300), cancel.clone()).await;
    let item = hq.shared.db.catalog().unwrap().into_iter().find(|i| i.unit == Unit::Piece).unwrap();
    let one = kassa_tests::start_relayed_store(&hq, dir.path(), 1, cancel.clone()).await;
    let two = kassa_tests::start_relayed_store(&hq, dir.path(), 2, cancel.clone()).await;
    let api1 = AgentApi::login(&one.agent, "kassir", "1111").await;
    let api2 = AgentApi::login(&two.agent, "kassir", "1111").await;
    eventually(WAIT, "both stores online", || async {
        (one.agent.status.borrow().hq.online && two.agent.status.borrow().hq.online).then_some(())
    })
    .await;

    let sale = sell_by_card(&api1, &item.sku.0, 3, "sale-1").await;
    let receipt = sale["receipt_no"].as_str().unwrap().to_owned();
    hq_has(&hq, &receipt).await;

    // Store 2 finds store 1's receipt: HQ says all three are left.
    let (status, found) = api2.get(&format!("/api/sales/lookup?code={receipt}")).await;
    assert_eq!(status, 200, "{found}");
    assert_eq!((found["elsewhere"].as_bool(), found["returnable"].clone()), (Some(true), json!([3])));
    // One comes back at store 2, to the card that paid; a retry answers the same return.
    let back =
        |n: i64, key: &str| json!({ "code": receipt, "lines": [{ "line": 0, "quantity": n }], "idempotency_key": key });
    let (status, ret) = api2.post("/api/returns", back(1, "ret-2a")).await;
    assert_eq!(status, 200, "{ret}");
    assert_eq!(ret["return"]["refunds"], json!([{ "kind": "card", "amount_kopecks": item.price.0 }]), "{ret}");
    let (_, again) = api2.post("/api/returns", back(1, "ret-2a")).await;
    assert_eq!(
        (again["replayed"].as_bool(), &again["return"]["receipt_no"]),
        (Some(true), &ret["return"]["receipt_no"])
    );
    // More than is left is refused at store 2 (its own return counted before HQ heard).
    let (status, over) = api2.post("/api/returns", back(3, "ret-2b")).await;
    assert_eq!((status, over["error"].as_str()), (422, Some("over_return")), "{over}");
    eventually(WAIT, "HQ to hear store 2's return", || async { (returned_at_hq(&hq, &receipt) == 1).then_some(()) })
        .await;
    // Store 1, online, knows of store 2's return: three more are refused, two taken.
    let own =
        |n: i64, key: &str| json!({ "code": receipt, "lines": [{ "line": 0, "quantity": n }], "idempotency_key": key });
    let (status, over) = api1.post("/api/returns", own(3, "ret-1a")).await;
    assert_eq!((status, over["error"].as_str()), (422, Some("over_return")), "{over}");
    let (status, ret) = api1.post("/api/returns", own(2, "ret-1b")).await;
    assert_eq!(status, 200, "{ret}");
    eventually(WAIT, "HQ to hear store 1's return", || async { (returned_at_hq(&hq, &receipt) == 3).then_some(()) })
        .await;
    assert!(hq.shared.db.over_returns().unwrap().is_empty(), "online, never more than sold");

    // Store 1 is cut off: it cannot see store 2 take back the same milk it takes back.
    let sale = sell_by_card(&api1, &item.sku.0, 2, "sale-2").await;
    let receipt2 = sale["receipt_no"].as_str().unwrap().to_owned();
    hq_has(&hq, &receipt2).await;
    one.relay.cut.store(true, Ordering::Relaxed);
    eventually(WAIT, "store 1 to see HQ gone", || async { (!one.agent.status.borrow().hq.online).then_some(()) }).await;
    // A retry of store 1's earlier return, made online, is the same return offline.
    let (status, replay) = api1.post("/api/returns", own(2, "ret-1b")).await;
    assert_eq!((status, replay["replayed"].as_bool()), (200, Some(true)), "{replay}");
    let both = |key: &str| json!({ "code": receipt2, "lines": [{ "line": 0, "quantity": 2 }], "idempotency_key": key });
    let (status, ret) = api2.post("/api/returns", both("ret-2c")).await;
    assert_eq!(status, 200, "{ret}");
    let (status, ret) = api1.post("/api/returns", both("ret-1c")).await;
    assert_eq!(status, 200, "offline, store 1 goes by what it knows: {ret}");
    one.relay.cut.store(false, Ordering::Relaxed);
    let over = eventually(WAIT, "HQ to list the over-return", || async {
        let over = hq.shared.db.over_returns().unwrap();
        (!over.is_empty()).then_some(over)
    })
    .await;
    assert_eq!((over[0].receipt_no.as_str(), over[0].sold, over[0].returned), (receipt2.as_str(), 2, 4), "{over:?}");
    assert_eq!(over[0].returns.iter().map(|r| r.0).collect::<Vec<_>>().len(), 2, "{over:?}");

    // Offline, another store's receipt is refused plainly; a receipt no store made is
    // not found.
    let (status, missing) = api2.get("/api/sales/lookup?code=0001-01-999999").await;
    assert_eq!((status, missing["error"].as_str()), (404, Some("no_such_sale")), "{missing}");
    two.relay.cut.store(true, Ordering::Relaxed);
    eventually(WAIT, "store 2 to see HQ gone", || async { (!two.agent.status.borrow().hq.online).then_some(()) }).await;
    let (status, offline) = api2.post("/api/returns", back(1, "ret-2d")).await;
    assert_eq!((status, offline["error"].as_str()), (503, Some("return_needs_hq")), "{offline}");
    for store in [&one, &two] {
        let report = store.agent.journal.verify().unwrap();
        assert!(report.ok(), "store {}'s journal verifies: {report:?}", store.id);
    }
    cancel.cancel();
}
