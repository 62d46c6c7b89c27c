//! Price changes scheduled at HQ take effect at each store's own local time, offline
//! too, and HQ prices the online shop's basket the same way for the store's zone: two
//! stores, in Moscow (UTC+3) and New York (UTC−5), get a change due an hour from now in
//! UTC terms — in force in Moscow already, not yet in New York.

use std::sync::atomic::Ordering;
use std::time::Duration;

use kassa_agent::till::TillEvent;
use kassa_protocol::price_schedule::format_local;
use kassa_protocol::promotions::LocalTime;
use kassa_protocol::Sku;
use kassa_tests::{eventually, init_logging, HqApi};
use serde_json::{json, Value};

const MILK: &str = "100001";
const MILK_PRICE: i64 = 10690;
const BREAD: &str = "100081";

/// The price of `sku` on a fresh basket line at `till`.
async fn line_price(till: &kassa_agent::Till, sku: &str, key: &str) -> i64 {
    till.add_sku(Sku(sku.into()), 1, key).await.unwrap();
    let TillEvent::Basket { basket, .. } = till.basket_event().await else { panic!("a basket event") };
    basket.lines.iter().find(|l| l.sku.0 == sku).expect("the line").price.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_price_takes_effect_at_each_stores_own_clock() {
    init_logging();
    let dir = tempfile::tempdir().unwrap();
    let cancel = tokio_util::sync::CancellationToken::new();
    let hq = kassa_tests::start_hq(dir.path(), Duration::from_secs(60), cancel.clone()).await;
    let api = HqApi::admin(&hq).await;
    let moscow = kassa_tests::start_relayed_store_in_zone(&hq, dir.path(), 1, 180, cancel.clone()).await;
    let new_york = kassa_tests::start_relayed_store_in_zone(&hq, dir.path(), 2, -300, cancel.clone()).await;

    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let soon = format_local(LocalTime::from_unix_ms(now_ms + 3_600_000, 0));
    let later = format_local(LocalTime::from_unix_ms(now_ms + 30 * 86_400_000, 0));
    let put = |changes: Value| {
        let api = api.clone();
        async move { api.send(reqwest::Method::PUT, "/api/catalog/schedule", Some(&json!({ "changes": changes }))).await }
    };
    // Refused whole, with the change named.
    let (status, refused) = put(json!([{ "sku": MILK, "at": "2026-13-01T00:00", "price_kopecks": 1 }])).await;
    assert_eq!((status, refused["error"].as_str()), (422, Some("bad_schedule")), "{refused}");
    assert!(refused["message"].as_str().unwrap().contains("change 1"), "{refused}");
    let (status, refused) = put(json!([
        { "sku": MILK, "at": soon, "price_kopecks": 9_990 },
        { "sku": "999999", "at": soon, "price_kopecks": 100 },
    ]))
    .await;
    assert_eq!((status, refused["error"].as_str()), (422, Some("unknown_sku")), "{refused}");
    assert!(refused["message"].as_str().unwrap().contains("change 2"), "{refused}");
    let (_, none) = api.get("/api/catalog/schedule").await;
    assert_eq!(none["version"], 0, "nothing published: {none}");

    let (status, published) = put(json!([
        { "sku": MILK, "at": soon, "price_kopecks": 9_990 },
        { "sku": BREAD, "at": later, "price_kopecks": 1 },
    ]))
    .await;
    assert_eq!(status, 200, "{published}");
    let version = published["version"].as_u64().unwrap();
    for s in [&moscow, &new_york] {
        let journal = s.agent.journal.clone();
        eventually(Duration::from_secs(10), "the schedule at the store", || {
            let journal = journal.clone();
            async move { (journal.price_schedule_version().unwrap() == version).then_some(()) }
        })
        .await;
    }
    // Moscow is offline now: the change still comes at its clock.
    moscow.relay.cut.store(true, Ordering::Relaxed);
    assert_eq!(line_price(&moscow.agent.till, MILK, "m-milk").await, 9_990, "in force in Moscow");
    assert_eq!(line_price(&new_york.agent.till, MILK, "ny-milk").await, MILK_PRICE, "not yet in New York");
    let bread_price = hq.shared.db.items(&[Sku(BREAD.into())]).unwrap()[&Sku(BREAD.into())].price.0;
    assert_eq!(line_price(&moscow.agent.till, BREAD, "m-bread").await, bread_price, "a month ahead: not yet");

    // HQ prices the online shop's basket for each store's zone the same way.
    for (store, zone, expected) in [(1, 180, 9_990), (2, -300, MILK_PRICE)] {
        let ask = json!({ "store": store, "channel": "online", "utc_offset_minutes": zone,
                          "lines": [{ "sku": MILK, "quantity": 1 }] });
        let (status, priced) = api.send(reqwest::Method::POST, "/api/price", Some(&ask)).await;
        assert_eq!(status, 200, "{priced}");
        assert_eq!(priced["lines"][0]["price_kopecks"], expected, "store {store}: {priced}");
    }
    // A catalog edit now: HQ says which stores it has handed the new version to, and which
    // version each said it held when it last connected. New York applies it at once;
    // Moscow, cut off, does not have it.
    let (status, edited) = api
        .send(reqwest::Method::PATCH, &format!("/api/catalog/items/{BREAD}"), Some(&json!({ "price_kopecks": 10_490 })))
        .await;
    assert_eq!(status, 200, "{edited}");
    let catalog = edited["version"].as_u64().expect("the new catalog version");
    eventually(Duration::from_secs(10), "New York to be sent the new catalog", || async {
        let row = kassa_tests::hq_store_row(&hq, 2).await?;
        (row["catalog_sent"] == catalog).then_some(())
    })
    .await;
    let journal = new_york.agent.journal.clone();
    eventually(Duration::from_secs(10), "New York to apply it", || {
        let journal = journal.clone();
        async move { (journal.catalog_version().unwrap() == catalog).then_some(()) }
    })
    .await;
    let moscow_row = kassa_tests::hq_store_row(&hq, 1).await.unwrap();
    assert!(moscow_row["catalog_confirmed"].as_u64().unwrap() < catalog, "Moscow is cut off: {moscow_row}");
    assert!(moscow.agent.journal.catalog_version().unwrap() < catalog, "and does not have it");

    // The audit log says who scheduled it.
    let (_, audit) = api.get("/api/audit").await;
    assert!(audit.to_string().contains("catalog.schedule"), "{audit}");
    cancel.cancel();
}

/// This file's tests again with HQ on PostgreSQL (issue #17: the same behaviour on both
/// backends); under `CI=true` a missing PostgreSQL fails it.
#[test]
fn the_same_with_hq_on_postgres() {
    kassa_tests::pg::rerun_on_postgres("the_same_with_hq_on_postgres");
}
