//! One loyalty card, two stores, HQ, over QUIC through cuttable relays: a card issued
//! at store 1 earns there; store 2 finds it through HQ and redeems online (asking HQ for
//! the rights); then both stores go offline and each tries to spend the whole balance.
//! Neither may spend a point it does not hold: the total spent never exceeds what was
//! earned, and the cashier who cannot is told plainly how many points can be spent.

use std::sync::atomic::Ordering;
use std::time::Duration;

use kassa_agent::till::TillError;
use kassa_protocol::sale::{Tender, TenderKind};
use kassa_protocol::{Kopecks, Sku};
use kassa_tests::{customer_of, eventually, init_logging};
use tokio_util::sync::CancellationToken;

fn cash(k: i64) -> Tender {
    Tender { kind: TenderKind::Cash, amount: Kopecks(k) }
}

fn points(p: i64) -> Tender {
    // Default rules: one point is worth one rouble.
    Tender { kind: TenderKind::Points, amount: Kopecks(p * 100) }
}

const MILK: &str = "100001"; // 106,90 ₽, "Молочные продукты": earns points

/// Stores 1 and 2 behind cuttable relays, each online with HQ's catalog.
async fn two_stores_online(
    hq: &kassa_hq::RunningHq,
    dir: &std::path::Path,
    cancel: &CancellationToken,
) -> Vec<kassa_tests::RelayedStore> {
    let mut stores = Vec::new();
    for id in 1..=2u32 {
        let store = kassa_tests::start_relayed_store(hq, dir, id, cancel.clone()).await;
        let mut st = store.agent.status.subscribe();
        tokio::time::timeout(Duration::from_secs(15), st.wait_for(|x| x.hq.online && x.hq.catalog_version > 0))
            .await
            .unwrap()
            .unwrap();
        stores.push(store);
    }
    stores
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_offline_stores_cannot_spend_one_balance_twice() {
    init_logging();
    let dir = tempfile::tempdir().unwrap();
    let cancel = CancellationToken::new();
    let hq = kassa_tests::start_hq(dir.path(), kassa_hq::sync_server::NEARBY_INTERVAL, cancel.clone()).await;
    let stores = two_stores_online(&hq, dir.path(), &cancel).await;
    let (a, b) = (&stores[0], &stores[1]);

    // Store 1 issues a card; a typo is "no such customer", never a new one.
    a.agent.till.new_customer("+7 (912) 345-67-89".into(), Some("Мария".into())).await.unwrap();
    let card = customer_of(&a.agent.till.basket_event().await).card.clone();
    assert!(matches!(a.agent.till.set_customer("0000100000000099").await, Err(TillError::NoSuchCustomer)));
    a.agent.till.set_customer(&card).await.unwrap();
    // 50 × 106,90 = 5 345,00 ₽ earns 534 points (1 per 10 ₽, rounded down).
    a.agent.till.add_sku(Sku(MILK.into()), 50, "a-add-1").await.unwrap();
    a.agent.till.pay(&a.cashier, vec![cash(534_500)], None, "a-pay-1".into()).await.unwrap();
    // Online, store 1 hands its spare rights to HQ: HQ can grant them anywhere.
    let api = kassa_tests::HqApi::admin(&hq).await;
    let http = format!("/api/loyalty/{card}");
    eventually(Duration::from_secs(10), "HQ to hold the points", || {
        let (api, http) = (api.clone(), http.clone());
        async move {
            let (_, v) = api.get(&http).await;
            (v["balance"] == 534 && v["rights"][0]["actor"] == "0000/1").then_some(())
        }
    })
    .await;

    // Store 2 has never seen the card: the code on store 1's receipt is scanned (a card
    // issued at a till has no EAN check digit, so the receipt prints its own code); the
    // till asks HQ, then redeems online (HQ grants rights).
    let view = b.agent.till.scan(kassa_hardware::barcode::card_code(&card).as_bytes()).await.unwrap();
    assert_eq!(customer_of(&view).balance, 534);
    b.agent.till.add_sku(Sku(MILK.into()), 10, "b-add-1").await.unwrap(); // 1 069,00 ₽: up to 534 points (50 %)
    let (sale, _) =
        b.agent.till.pay(&b.cashier, vec![points(300), cash(76_900)], None, "b-pay-1".into()).await.unwrap();
    assert_eq!(sale.loyalty.as_ref().unwrap().redeemed_points, 300);

    // Store 1 earns more while cut off: those rights stay at store 1.
    a.relay.cut.store(true, Ordering::Relaxed);
    b.relay.cut.store(true, Ordering::Relaxed);
    for s in [a, b] {
        let mut st = s.agent.status.subscribe();
        tokio::time::timeout(Duration::from_secs(20), st.wait_for(|x| !x.hq.online)).await.unwrap().unwrap();
    }
    a.agent.till.set_customer(&card).await.unwrap();
    a.agent.till.add_sku(Sku(MILK.into()), 20, "a-add-2").await.unwrap(); // 2 138,00 ₽: +213 points
    a.agent.till.pay(&a.cashier, vec![cash(213_800)], None, "a-pay-2".into()).await.unwrap();

    // Now both try to spend everything. Store 2 holds no rights: a clear refusal.
    b.agent.till.set_customer(&card).await.unwrap();
    let view = b.agent.till.add_sku(Sku(MILK.into()), 20, "b-add-2").await.unwrap();
    let offer = customer_of(&view).clone();
    assert_eq!(offer.spendable_now, 0, "{offer:?}");
    assert!(offer.message.contains("offline"), "{}", offer.message);
    let refused =
        b.agent.till.pay(&b.cashier, vec![points(offer.allowed.max(1)), cash(213_800)], None, "b-pay-2".into()).await;
    match refused {
        Err(TillError::Write(kassa_agent::journal::WriteError::Points { message, spendable_now })) => {
            assert_eq!(spendable_now, 0);
            assert!(message.contains("offline"), "{message}");
        }
        other => panic!("store 2 spent points it does not hold: {other:?}"),
    }
    // Store 1 holds the 213 it earned offline: a partial offer, which it can spend.
    a.agent.till.set_customer(&card).await.unwrap();
    let view = a.agent.till.add_sku(Sku(MILK.into()), 20, "a-add-3").await.unwrap();
    let offer = customer_of(&view).clone();
    assert_eq!(offer.spendable_now, 213, "{offer:?}");
    assert!(offer.message.contains("213 of"), "{}", offer.message);
    let over = a.agent.till.pay(&a.cashier, vec![points(offer.allowed), cash(213_800)], None, "a-pay-3".into()).await;
    assert!(matches!(over, Err(TillError::Write(kassa_agent::journal::WriteError::Points { .. }))), "{over:?}");
    let due = 213_800 - 213 * 100;
    a.agent.till.pay(&a.cashier, vec![points(213), cash(due)], None, "a-pay-4".into()).await.unwrap();

    // Heal: HQ's balance = earned − spent, never below zero, every store agrees.
    a.relay.cut.store(false, Ordering::Relaxed);
    b.relay.cut.store(false, Ordering::Relaxed);
    let v: serde_json::Value = eventually(Duration::from_secs(40), "HQ to converge", || {
        let (api, http) = (api.clone(), http.clone());
        let (ja, jb) = (a.agent.journal.clone(), b.agent.journal.clone());
        async move {
            let (_, v) = api.get(&http).await;
            let drained =
                ja.acked_seq().ok()? == ja.outbox_head().ok()? && jb.acked_seq().ok()? == jb.outbox_head().ok()?;
            (drained && v["spent"] == 513).then_some(v)
        }
    })
    .await;
    let (earned, spent, balance) =
        (v["earned"].as_i64().unwrap(), v["spent"].as_i64().unwrap(), v["balance"].as_i64().unwrap());
    assert!(spent <= earned && balance == earned - spent && balance >= 0, "{v}");

    // Online, a return takes back what the returned lines earned: 10 of the first sale's
    // 50 milks earned ⌈534 × 10/50⌉ = 107 points. Store 1 asks HQ for the rights, so the
    // money refund is whole.
    let first_sale = a.agent.journal.find_doc("0001-01-000001").unwrap().unwrap();
    let request = kassa_agent::journal::ReturnRequest::WithReceipt { sale_seq: first_sale, lines: vec![(0, 10)] };
    let (ret, _) = a.agent.till.return_items(&a.cashier, request, None, "a-ret-1".into()).await.unwrap();
    let rl = ret.loyalty.clone().expect("the return carries its points");
    assert_eq!((rl.take_back, rl.shortfall, rl.deducted), (107, 0, Kopecks(0)), "{rl:?}");
    assert_eq!(ret.refunds.iter().map(|t| t.amount.0).sum::<i64>(), 106_900);
    eventually(Duration::from_secs(20), "HQ to take the points back", || {
        let (api, http) = (api.clone(), http.clone());
        async move {
            let (_, v) = api.get(&http).await;
            (v["balance"].as_i64()? == balance - 107).then_some(())
        }
    })
    .await;
    // HQ publishes new rules; every store takes them (the same rules code computes the
    // points everywhere), and a bad rule set is refused whole.
    let bad =
        r#"{"earn_kopecks_per_point":0,"excluded_categories":[],"max_share_percent":50,"point_value_kopecks":100}"#;
    let (status, _) = api.send_text(reqwest::Method::PUT, "/api/loyalty/rules", bad).await;
    assert_eq!(status, 422);
    let good = r#"{"earn_kopecks_per_point":500,"excluded_categories":["Табак"],"max_share_percent":30,"point_value_kopecks":100}"#;
    let (_, published) = api.send_text(reqwest::Method::PUT, "/api/loyalty/rules", good).await;
    assert_eq!(published["version"], 1);
    for s in [a, b] {
        let journal = s.agent.journal.clone();
        eventually(Duration::from_secs(10), "the store to take HQ's rules", || {
            let journal = journal.clone();
            async move { (journal.loyalty_rules().ok()?.earn_kopecks_per_point() == 500).then_some(()) }
        })
        .await;
    }
    cancel.cancel();
    for s in stores {
        s.agent.wait().await;
    }
    hq.wait().await;
}

/// One customer in every channel: purchases with the card at two stores and an order
/// placed online with the customer's phone all show in HQ's history of the card, newest
/// first; a card HQ does not know is not found.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customers_history_spans_every_store_and_channel() {
    init_logging();
    let dir = tempfile::tempdir().unwrap();
    let cancel = CancellationToken::new();
    let hq = kassa_tests::start_hq(dir.path(), Duration::from_millis(300), cancel.clone()).await;
    let stores = two_stores_online(&hq, dir.path(), &cancel).await;
    let (a, b) = (&stores[0], &stores[1]);
    a.agent.till.new_customer("+7 (912) 345-67-89".into(), Some("Мария".into())).await.unwrap();
    let card = customer_of(&a.agent.till.basket_event().await).card.clone();
    a.agent.till.add_sku(Sku(MILK.into()), 2, "h-add-1").await.unwrap();
    a.agent.till.pay(&a.cashier, vec![cash(21_380)], None, "h-pay-1".into()).await.unwrap();
    // Store 2 finds the card through HQ, once store 1 has told HQ of it.
    let api = kassa_tests::HqApi::admin(&hq).await;
    eventually(Duration::from_secs(15), "HQ to know the card", || async {
        (api.get(&format!("/api/loyalty/{card}")).await.0 == 200).then_some(())
    })
    .await;
    b.agent.till.scan(kassa_hardware::barcode::card_code(&card).as_bytes()).await.unwrap();
    b.agent.till.add_sku(Sku(MILK.into()), 1, "h-add-2").await.unwrap();
    b.agent.till.pay(&b.cashier, vec![cash(10_690)], None, "h-pay-2".into()).await.unwrap();
    hq.shared.db.deliver(kassa_protocol::StoreId(2), &[(Sku(MILK.into()), 10)]).unwrap();
    let order = serde_json::json!({
        "store": 2, "payment": "at_pickup", "phone": "8 912 345 67 89",
        "lines": [{ "sku": MILK, "quantity": 1 }], "idempotency_key": "h-order",
    });
    let (status, placed) = api.send(reqwest::Method::POST, "/api/orders", Some(&order)).await;
    assert_eq!(status, 200, "{placed}");

    let history = eventually(Duration::from_secs(15), "HQ to hold both purchases", || {
        let (api, path) = (api.clone(), format!("/api/customers/{card}/history"));
        async move {
            let (_, v) = api.get(&path).await;
            (v["purchases"].as_array().map_or(0, Vec::len) == 2).then_some(v)
        }
    })
    .await;
    let stores_of = |v: &serde_json::Value| -> Vec<u64> {
        v.as_array().unwrap().iter().map(|p| p["store"].as_u64().unwrap()).collect()
    };
    assert_eq!(stores_of(&history["purchases"]), vec![2, 1], "newest first: {history}");
    assert_eq!(history["purchases"][1]["total_kopecks"], 21_380, "{history}");
    assert_eq!(history["orders"].as_array().unwrap().len(), 1, "{history}");
    assert_eq!(history["orders"][0]["channel"], "online", "{history}");
    assert_eq!(history["orders"][0]["id"], placed["id"], "{history}");
    assert_eq!(history["name"], "Мария");
    let (status, missing) = api.get("/api/customers/0000100000000099/history").await;
    assert_eq!((status, missing["error"].as_str()), (404, Some("no_such_customer")), "{missing}");

    // At store 2's till, found by phone: HQ's history (both stores, the online order).
    let till = kassa_tests::AgentApi::login(&b.agent, "kassir", "1111").await;
    let (status, seen) = till.get("/api/customer/history?code=%2B79123456789").await;
    assert_eq!(status, 200, "{seen}");
    assert_eq!((seen["from_hq"].as_bool(), seen["name"].as_str()), (Some(true), Some("Мария")), "{seen}");
    assert_eq!(stores_of(&seen["purchases"]), vec![2, 1], "{seen}");
    assert_eq!(
        (seen["orders"][0]["id"].clone(), seen["orders"][0]["channel"].as_str()),
        (placed["id"].clone(), Some("online"))
    );
    // Cut off from HQ, store 2 shows what it knows itself, marked: its own sale, and the
    // order for pickup there.
    eventually(Duration::from_secs(15), "store 2 to hold the order", || async {
        (!b.agent.journal.orders_by_phone("79123456789", 5).unwrap().is_empty()).then_some(())
    })
    .await;
    b.relay.cut.store(true, Ordering::Relaxed);
    let mut st = b.agent.status.subscribe();
    tokio::time::timeout(Duration::from_secs(20), st.wait_for(|x| !x.hq.online)).await.unwrap().unwrap();
    let (status, own) = till.get(&format!("/api/customer/history?code={card}")).await;
    assert_eq!((status, own["from_hq"].as_bool()), (200, Some(false)), "{own}");
    assert_eq!(stores_of(&own["purchases"]), vec![2], "{own}");
    assert_eq!(own["purchases"][0]["total_kopecks"], 10_690, "{own}");
    assert_eq!(own["orders"][0]["id"], placed["id"], "{own}");
    let (status, missing) = till.get("/api/customer/history?code=0000100000000099").await;
    assert_eq!((status, missing["error"].as_str()), (404, Some("no_such_customer")), "{missing}");
    cancel.cancel();
}

/// This file's tests again with HQ on PostgreSQL (issue #17: the same behaviour on both
/// backends); under `CI=true` a missing PostgreSQL fails it.
#[test]
fn the_same_with_hq_on_postgres() {
    kassa_tests::pg::rerun_on_postgres("the_same_with_hq_on_postgres");
}
