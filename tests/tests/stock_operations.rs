//! Stock operations end to end, over real QUIC with TLS, SQLite files and both HTTP APIs:
//! HQ announces a delivery and store 1 receives it with one line short; store 1 counts a
//! shelf while the till keeps selling it; goods are written off (a manager approves above
//! the limit); store 1 ships a transfer to store 2 while store 1 is cut off, and store 2
//! receives it (one piece short) after being cut off itself. Then: every movement is at
//! HQ exactly once, HQ's stock of each store equals the sum of every movement and sale,
//! each store's own view equals HQ's, and both journals verify.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use kassa_agent::journal::{Role, User};
use kassa_protocol::catalog::Unit;
use kassa_protocol::{Sku, StoreId};
use kassa_tests::{eventually, init_logging, AgentApi, HqApi};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(30);

/// A store's stock of each SKU as its back-room API shows it.
async fn store_stock(api: &AgentApi) -> BTreeMap<String, i64> {
    let (status, body) = api.get("/api/stock").await;
    assert_eq!(status, 200, "{body}");
    body["stock"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["sku"].as_str().unwrap().to_owned(), l["on_hand"].as_i64().unwrap()))
        .filter(|(_, q)| *q != 0)
        .collect()
}

/// HQ's stock of `store`, per SKU, from its counters.
fn hq_stock(hq: &kassa_hq::RunningHq, store: u32, skus: &[Sku]) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    for sku in skus {
        let q: i64 = hq.shared.db.stock(sku).unwrap().iter().filter(|s| s.store == store).map(|s| s.quantity).sum();
        if q != 0 {
            out.insert(sku.0.clone(), q);
        }
    }
    out
}

async fn drained(agent: &kassa_agent::RunningAgent, what: &str) {
    let journal = agent.journal.clone();
    eventually(WAIT, what, || {
        let journal = journal.clone();
        async move { (journal.acked_seq().unwrap() == journal.outbox_head().unwrap()).then_some(()) }
    })
    .await;
}

fn line(l: &Value, sku: &Sku) -> Value {
    l["lines"].as_array().unwrap().iter().find(|x| x["sku"] == sku.0).cloned().unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_counts_write_offs_and_transfers_reach_hq_exactly_once() {
    init_logging();
    let dir = tempfile::tempdir().unwrap();
    let cancel = CancellationToken::new();
    let hq = kassa_tests::start_hq(dir.path(), Duration::from_millis(500), cancel.clone()).await;
    let catalog = hq.shared.db.catalog().unwrap();
    let skus: Vec<Sku> = catalog.iter().filter(|i| i.unit == Unit::Piece).take(3).map(|i| i.sku.clone()).collect();
    let (a, b, c) = (skus[0].clone(), skus[1].clone(), skus[2].clone());
    let hq_api = HqApi::admin(&hq).await;

    let one = kassa_tests::start_relayed_store(&hq, dir.path(), 1, cancel.clone()).await;
    let two = kassa_tests::start_relayed_store(&hq, dir.path(), 2, cancel.clone()).await;
    for s in [&one, &two] {
        let manager = User { id: "manager".into(), name: "М".into(), role: Role::Manager };
        s.agent.journal.add_user(&manager, "9999", 0).unwrap();
        let mut status = s.agent.status.subscribe();
        tokio::time::timeout(WAIT, status.wait_for(|x| x.hq.catalog_version > 0)).await.unwrap().unwrap();
    }
    let api1 = AgentApi::login(&one.agent, "kassir", "1111").await;
    let api2 = AgentApi::login(&two.agent, "kassir", "1111").await;
    let manager = json!({ "user": "manager", "pin": "9999" });

    // --- A delivery announced at HQ, received at store 1 with one line short. ---
    let (status, delivery) = hq_api
        .send(
            reqwest::Method::POST,
            "/api/stores/1/deliveries",
            Some(&json!({ "lines": [{ "sku": a.0, "quantity": 20 }, { "sku": b.0, "quantity": 12 }] })),
        )
        .await;
    assert_eq!(status, 200, "{delivery}");
    let source = delivery["delivery"].as_str().unwrap().to_owned();
    // A delivery of an unknown SKU is refused with its line, and nothing is announced.
    let (status, refused) = hq_api
        .send(
            reqwest::Method::POST,
            "/api/stores/1/deliveries",
            Some(&json!({ "lines": [{ "sku": a.0, "quantity": 1 }, { "sku": "NOPE-1", "quantity": 1 }] })),
        )
        .await;
    assert_eq!((status, refused["error"].as_str()), (422, Some("unknown_sku")), "{refused}");
    assert!(refused["message"].as_str().unwrap().contains("line 2"), "{refused}");
    // A supplier's file with a bad line is refused with the file's line number.
    let (status, refused) = hq_api
        .send_text(reqwest::Method::POST, "/api/stores/1/deliveries/csv", "sku,quantity\n100001,3\n100002,три\n")
        .await;
    assert_eq!((status, refused["error"].as_str()), (422, Some("bad_delivery_file")), "{refused}");
    assert!(refused["message"].as_str().unwrap().contains("line 3"), "{refused}");

    let inbound = eventually(WAIT, "store 1 to hear of the delivery", || async {
        let (_, body) = api1.get("/api/stock/inbound").await;
        let docs = body["documents"].as_array().cloned().unwrap_or_default();
        (docs.len() == 1).then(|| docs[0].clone())
    })
    .await;
    assert_eq!(inbound["source"], source);
    let receive = json!({
        "source": source,
        "lines": [{ "code": a.0, "quantity": 20 }, { "code": b.0, "quantity": 11 }],
        "idempotency_key": "receive-1",
    });
    let (status, receipt) = api1.post("/api/stock/receive", receive.clone()).await;
    assert_eq!(status, 200, "{receipt}");
    assert_eq!(
        (line(&receipt, &b)["quantity"].as_i64(), line(&receipt, &b)["difference"].as_i64()),
        (Some(11), Some(-1))
    );
    // The same request again answers the same receipt and moves nothing twice.
    let (status, again) = api1.post("/api/stock/receive", receive).await;
    assert_eq!((status, again["seq"].clone(), again["replayed"].clone()), (200, receipt["seq"].clone(), json!(true)));
    // Another key for the same delivery: it was received.
    let (status, twice) = api1
        .post(
            "/api/stock/receive",
            json!({ "source": source, "lines": [{ "code": a.0, "quantity": 1 }], "idempotency_key": "receive-2" }),
        )
        .await;
    assert_eq!((status, twice["error"].as_str()), (409, Some("already_received")), "{twice}");
    // Goods nobody announced need a manager.
    let unannounced = json!({ "lines": [{ "code": c.0, "quantity": 6 }], "idempotency_key": "receive-3" });
    let (status, refused) = api1.post("/api/stock/receive", unannounced.clone()).await;
    assert_eq!((status, refused["error"].as_str()), (403, Some("needs_manager")), "{refused}");
    let mut with_manager = unannounced;
    with_manager["manager"] = manager.clone();
    let (status, _) = api1.post("/api/stock/receive", with_manager).await;
    assert_eq!(status, 200);
    assert_eq!(store_stock(&api1).await, BTreeMap::from([(a.0.clone(), 20), (b.0.clone(), 11), (c.0.clone(), 6)]));

    // --- A count of A while the till sells it. ---
    let (status, count) =
        api1.post("/api/stock/counts", json!({ "categories": null, "idempotency_key": "count-1" })).await;
    assert_eq!(status, 200, "{count}");
    let id = count["id"].as_u64().unwrap();
    // Two people count A in two places (18 in all: 2 missing against the book's 20).
    for (n, q) in [(1, 10), (2, 8)] {
        let (status, body) = api1
            .post(
                &format!("/api/stock/counts/{id}/scan"),
                json!({ "code": a.0, "quantity": q, "idempotency_key": format!("scan-{n}") }),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    for n in 0..2 {
        let (status, _) = api1
            .post(
                &format!("/api/stock/counts/{id}/scan"),
                json!({ "code": b.0, "quantity": 11, "idempotency_key": format!("scan-b-{n}") }),
            )
            .await;
        assert_eq!(status, 200);
    }
    let (_, _) = api1
        .post(
            &format!("/api/stock/counts/{id}/scan"),
            json!({ "code": b.0, "quantity": -11, "idempotency_key": "scan-b-fix" }),
        )
        .await;
    // Sales during the count: 3 of A, after A was counted.
    one.agent.till.add_sku(a.clone(), 3, "sale-a").await.unwrap();
    kassa_tests::pay_exact(&one.agent.till, &one.cashier, "pay-a".into()).await;
    // C was not counted: a full count takes it as none (all 6 gone).
    let (status, report) = api1.get(&format!("/api/stock/counts/{id}")).await;
    assert_eq!(status, 200);
    let uncounted = line(&report, &c);
    assert_eq!((uncounted["uncounted"].as_bool(), uncounted["book"].as_i64()), (Some(true), Some(6)), "{report}");
    // A cashier cannot post it; a manager can.
    let (status, _) = api1.post(&format!("/api/stock/counts/{id}/post"), json!({ "idempotency_key": "post-0" })).await;
    assert_eq!(status, 403);
    let (status, posted) = api1
        .post(&format!("/api/stock/counts/{id}/post"), json!({ "manager": manager, "idempotency_key": "post-1" }))
        .await;
    assert_eq!(status, 200, "{posted}");
    assert!(posted["posted"].is_u64(), "{posted}");
    let (status, _) = api1
        .post(
            &format!("/api/stock/counts/{id}/scan"),
            json!({ "code": a.0, "quantity": 1, "idempotency_key": "scan-late" }),
        )
        .await;
    assert_eq!(status, 409, "a posted count takes no more scans");
    // A: counted 18 (book 20 then) − 3 sold after = 15; B as booked; C none.
    assert_eq!(store_stock(&api1).await, BTreeMap::from([(a.0.clone(), 15), (b.0.clone(), 11)]));
    // A shelf list: only its items are counted; a count that finds the book right posts
    // no adjustment.
    let (status, refused) = api1
        .post("/api/stock/counts", json!({ "categories": ["x"], "skus": [b.0], "idempotency_key": "count-bad" }))
        .await;
    assert_eq!((status, refused["error"].as_str()), (422, Some("bad_count_scope")), "{refused}");
    let (status, shelf) = api1.post("/api/stock/counts", json!({ "skus": [b.0], "idempotency_key": "count-2" })).await;
    assert_eq!((status, shelf["skus"].clone()), (200, json!([b.0])), "{shelf}");
    let shelf_id = shelf["id"].as_u64().unwrap();
    let scan = |code: &str, key: &str| json!({ "code": code, "quantity": 11, "idempotency_key": key });
    let (status, refused) = api1.post(&format!("/api/stock/counts/{shelf_id}/scan"), scan(&a.0, "shelf-a")).await;
    assert_eq!((status, refused["error"].as_str()), (422, Some("count_out_of_scope")), "{refused}");
    let (status, _) = api1.post(&format!("/api/stock/counts/{shelf_id}/scan"), scan(&b.0, "shelf-b")).await;
    assert_eq!(status, 200);
    let (status, posted) = api1
        .post(&format!("/api/stock/counts/{shelf_id}/post"), json!({ "manager": manager, "idempotency_key": "post-2" }))
        .await;
    assert_eq!(status, 200, "{posted}");
    assert!(posted["lines"].as_array().unwrap().iter().all(|l| l["difference"] == 0), "{posted}");
    assert_eq!(store_stock(&api1).await, BTreeMap::from([(a.0.clone(), 15), (b.0.clone(), 11)]));

    // --- Write-offs: small by the cashier, large only with a manager. ---
    let (status, body) = api1
        .post(
            "/api/stock/write-off",
            json!({ "reason": "damaged", "lines": [{ "code": a.0, "quantity": 1 }], "idempotency_key": "wo-1" }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let big = json!({ "reason": "expired", "lines": [{ "code": b.0, "quantity": 11 }], "note": "срок годности", "idempotency_key": "wo-2" });
    let (status, refused) = api1.post("/api/stock/write-off", big.clone()).await;
    let price_b = catalog.iter().find(|i| i.sku == b).unwrap().price.0;
    if price_b * 11 > kassa_agent::journal::WRITE_OFF_UNAPPROVED_MAX.0 {
        assert_eq!((status, refused["error"].as_str()), (403, Some("needs_manager")), "{refused}");
        let mut approved = big;
        approved["manager"] = manager.clone();
        let (status, body) = api1.post("/api/stock/write-off", approved).await;
        assert_eq!(status, 200, "{body}");
    } else {
        assert_eq!(status, 200, "{refused}");
    }
    let (status, refused) = api1
        .post("/api/stock/write-off", json!({ "reason": "theft", "lines": [{ "code": "0000000000000", "quantity": 1 }], "idempotency_key": "wo-3" }))
        .await;
    assert_eq!((status, refused["error"].as_str()), (404, Some("unknown_sku")), "{refused}");

    // --- A transfer from store 1 (cut off while it ships) to store 2 (cut off too). ---
    drained(&one.agent, "store 1 to send what it has").await;
    one.relay.cut.store(true, Ordering::Relaxed);
    two.relay.cut.store(true, Ordering::Relaxed);
    let (status, shipped) = api1
        .post(
            "/api/stock/transfer",
            json!({ "to_store": 2, "lines": [{ "code": a.0, "quantity": 5 }], "idempotency_key": "tr-1" }),
        )
        .await;
    assert_eq!(status, 200, "{shipped}");
    let (status, refused) = api1
        .post(
            "/api/stock/transfer",
            json!({ "to_store": 1, "lines": [{ "code": a.0, "quantity": 1 }], "idempotency_key": "tr-2" }),
        )
        .await;
    assert_eq!((status, refused["error"].as_str()), (422, Some("transfer_to_self")), "{refused}");
    assert_eq!(store_stock(&api1).await[&a.0], 9, "shipped goods leave at once, offline too");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, transfers) = hq_api.get("/api/transfers?open=true").await;
    assert_eq!(transfers["transfers"], json!([]), "HQ cannot know of it yet");
    one.relay.cut.store(false, Ordering::Relaxed);
    let in_transit = eventually(WAIT, "HQ to see the transfer in transit", || async {
        let (_, t) = hq_api.get("/api/transfers?open=true").await;
        let list = t["transfers"].as_array().cloned().unwrap_or_default();
        (list.len() == 1).then(|| list[0].clone())
    })
    .await;
    assert_eq!((in_transit["store"].as_u64(), in_transit["from_store"].as_u64()), (Some(2), Some(1)));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, nothing) = api2.get("/api/stock/inbound").await;
    assert_eq!(nothing["documents"], json!([]), "store 2 is cut off");
    two.relay.cut.store(false, Ordering::Relaxed);
    let doc = eventually(Duration::from_secs(60), "store 2 to hear of the transfer", || async {
        let (_, body) = api2.get("/api/stock/inbound").await;
        body["documents"].as_array().and_then(|d| d.first().cloned())
    })
    .await;
    assert_eq!(doc["from_store"].as_u64(), Some(1));
    let (status, received) = api2
        .post(
            "/api/stock/receive",
            json!({ "source": doc["source"], "lines": [{ "code": a.0, "quantity": 4 }], "idempotency_key": "tr-in-1" }),
        )
        .await;
    assert_eq!(status, 200, "{received}");
    assert_eq!(received["reason"], "transfer_in");
    assert_eq!(store_stock(&api2).await, BTreeMap::from([(a.0.clone(), 4)]));

    // --- Convergence: exactly once, HQ = sum of movements, stores = HQ. ---
    drained(&one.agent, "store 1 to drain").await;
    drained(&two.agent, "store 2 to drain").await;
    let (_, transfers) = hq_api.get("/api/transfers").await;
    let t = &transfers["transfers"][0];
    assert_eq!(t["received_seq"].as_u64(), received["seq"].as_u64(), "{transfers}");
    assert_eq!(t["differences"], json!([{ "sku": a.0, "name": t["lines"][0]["name"], "quantity": -1 }]));
    let (_, open) = hq_api.get("/api/transfers?open=true").await;
    assert_eq!(open["transfers"], json!([]), "nothing in transit once received");
    let (_, deliveries) = hq_api.get("/api/stores/1/inbound").await;
    assert_eq!(deliveries["documents"][0]["differences"][0]["quantity"], -1, "{deliveries}");

    for (store, api) in [(1u32, &api1), (2, &api2)] {
        let (status, m) = hq_api.get(&format!("/api/stores/{store}/movements")).await;
        assert_eq!(status, 200, "{m}");
        let (_, local) = api.get("/api/stock/movements").await;
        let seqs = |v: &Value, key: &str| -> Vec<u64> {
            let mut s: Vec<u64> = v["movements"].as_array().unwrap().iter().map(|x| x[key].as_u64().unwrap()).collect();
            s.sort();
            s
        };
        assert_eq!(seqs(&m, "seq"), seqs(&local, "seq"), "store {store}: every movement at HQ exactly once");
        assert_eq!(seqs(&m, "seq"), (1..=seqs(&local, "seq").len() as u64).collect::<Vec<_>>());
        // HQ's stock of the store is the sum of its movements and sales, by reason.
        let mut summed: BTreeMap<String, i64> = BTreeMap::new();
        for t in m["totals"].as_array().unwrap() {
            *summed.entry(t["sku"].as_str().unwrap().to_owned()).or_default() += t["quantity"].as_i64().unwrap();
        }
        summed.retain(|_, q| *q != 0);
        let at_hq = hq_stock(&hq, store, &skus);
        assert_eq!(summed, at_hq, "store {store}: HQ's stock is the sum of every movement");
        assert_eq!(store_stock(api).await, at_hq, "store {store}: the store's view equals HQ's");
    }
    assert_eq!(hq_stock(&hq, 1, &skus), BTreeMap::from([(a.0.clone(), 9)]));
    assert_eq!(hq_stock(&hq, 2, &skus), BTreeMap::from([(a.0.clone(), 4)]));
    // A supplier's file announces the next delivery; store 1 hears of it.
    let csv = format!("sku,quantity\n{},24\n{},6\n", a.0, c.0);
    let (status, announced) = hq_api.send_text(reqwest::Method::POST, "/api/stores/1/deliveries/csv", &csv).await;
    assert_eq!(status, 200, "{announced}");
    let expected = announced["delivery"].clone();
    eventually(WAIT, "store 1 to hear of the supplier's delivery", || async {
        let (_, body) = api1.get("/api/stock/inbound").await;
        let docs = body["documents"].as_array().cloned().unwrap_or_default();
        docs.iter().any(|d| d["source"] == expected && d["lines"].as_array().map(Vec::len) == Some(2)).then_some(())
    })
    .await;
    for s in [&one, &two] {
        let v = s.agent.journal.verify().unwrap();
        assert!(v.ok(), "store {}: {v:?}", s.id);
    }
    assert_eq!(StoreId(1), one.id);
    cancel.cancel();
}

/// This file's tests again with HQ on PostgreSQL (issue #17: the same behaviour on both
/// backends); under `CI=true` a missing PostgreSQL fails it.
#[test]
fn the_same_with_hq_on_postgres() {
    kassa_tests::pg::rerun_on_postgres("the_same_with_hq_on_postgres");
}
