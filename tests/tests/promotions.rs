//! Promotions end to end: published at HQ, at the store's till within a second over
//! sync, applied as items are scanned, printed on the receipt, priced identically by
//! HQ's endpoint for the online shop, and applied offline with the store's own clock.

use std::time::{Duration, Instant};

use kassa_agent::till::TillEvent;
use kassa_protocol::basket::Basket;
use kassa_sim::printer::PrinterEvent;
use kassa_sim::stack::{self, StackOptions};
use kassa_tests::{eventually, init_logging, HqApi};
use serde_json::{json, Value};

const MILK_GTIN: &str = "4650001209603";
const MILK_SKU: &str = "100001";
const MILK_PRICE: i64 = 10690;
/// Another milk of the demo catalog, whose offer starts tomorrow.
const OTHER_SKU: &str = "100004";

/// The local date `days` from today at the store (UTC+3), as a promotion says it.
fn local_date(days: i64) -> String {
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let day = (now_ms + 180 * 60_000).div_euclid(86_400_000) + days;
    kassa_protocol::promotions::definition::format_day(day as i32)
}

/// Milk 10 % off, in every channel, this month; another milk 20 % off from tomorrow.
fn promotions(milk_percent: u8) -> Value {
    json!([
        { "id": 1, "version": 1, "name": format!("Молоко -{milk_percent}%"),
          "kind": { "type": "percent_off", "skus": [MILK_SKU], "percent": milk_percent },
          "from": local_date(-30), "to": local_date(30), "stores": "all",
          "channels": ["store", "online"], "audience": "everyone" },
        { "id": 2, "version": 1, "name": "Прима с завтра",
          "kind": { "type": "percent_off", "skus": [OTHER_SKU], "percent": 20 },
          "from": local_date(1), "to": local_date(30), "stores": "all",
          "channels": ["store", "online"], "audience": "everyone" }
    ])
}

async fn publish(api: &HqApi, set: &Value) -> u64 {
    let (status, answer) = api.send(reqwest::Method::PUT, "/api/promotions", Some(set)).await;
    assert_eq!(status, 200, "{answer}");
    answer["version"].as_u64().unwrap_or_else(|| panic!("a version: {answer}"))
}

fn receipt_text(events: &std::sync::mpsc::Receiver<PrinterEvent>) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match events.recv_timeout(deadline.saturating_duration_since(Instant::now())).expect("a receipt within 10 s") {
            PrinterEvent::Receipt(r) => return r.text(),
            PrinterEvent::DrawerKick => {}
            PrinterEvent::Unknown { offset, byte } => panic!("printer got unknown byte {byte:#x} at {offset}"),
        }
    }
}

/// What pricing decided for a line, as the till's page and HQ's endpoint both say it.
fn line_terms(l: &Value) -> Value {
    let promotions: Vec<Value> = l["promotions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| json!([p["id"], p["version"], p["name"], p["amount_kopecks"]]))
        .collect();
    json!({
        "sku": l["sku"], "quantity": l["quantity"], "amount": l["amount_kopecks"],
        "discount": l["discount_kopecks"], "promotions": promotions,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promotion_published_at_hq_is_at_the_till_within_a_second_and_on_the_receipt() {
    init_logging();
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let stack = stack::start(StackOptions::ephemeral(dir.path())).await.unwrap();
    assert!(stack.catalog_ready);
    let api = HqApi { base: stack.hq_url(), token: stack.hq_token.clone(), client: client.clone() };
    let agent = format!("http://{}", stack.agent.http_addr);
    let token = stack::cashier_token(&client, &agent).await.unwrap();

    // Published at HQ; the connected store has it within a second.
    let published = Instant::now();
    let version = publish(&api, &promotions(10)).await;
    let till = stack.agent.till.clone();
    eventually(Duration::from_secs(1), "the promotions at the till", || {
        let till = till.clone();
        async move { (till.promotions_version() == version).then_some(()) }
    })
    .await;
    let took = published.elapsed();
    assert!(took < Duration::from_secs(1), "took {took:?}");

    // Scanned: the line shows its promotion, the basket what promotions saved.
    stack.scanner.scan(MILK_GTIN.as_bytes()).unwrap();
    stack.scanner.scan(MILK_GTIN.as_bytes()).unwrap();
    let add = json!({ "sku": OTHER_SKU, "quantity": 1, "idempotency_key": "other-1" });
    let (status, _) = post(&client, &agent, &token, "/api/basket/items", &add).await;
    assert_eq!(status, 200);
    let basket = eventually(Duration::from_secs(5), "two milks in the basket", || {
        let (client, agent, token) = (client.clone(), agent.clone(), token.clone());
        async move {
            let b: Value =
                client.get(format!("{agent}/api/basket")).bearer_auth(&token).send().await.ok()?.json().await.ok()?;
            let milk = b["basket"]["lines"].as_array()?.iter().find(|l| l["sku"] == MILK_SKU)?.clone();
            (milk["quantity"] == 2).then_some(b)
        }
    })
    .await;
    let lines = basket["basket"]["lines"].as_array().unwrap();
    let milk = lines.iter().find(|l| l["sku"] == MILK_SKU).unwrap();
    let saving = 2 * MILK_PRICE / 10;
    assert_eq!(milk["discount_kopecks"], saving, "{milk}");
    assert_eq!(milk["promotions"], json!([{ "id": 1, "version": 1, "name": "Молоко -10%", "amount_kopecks": saving }]));
    let other = lines.iter().find(|l| l["sku"] == OTHER_SKU).unwrap();
    assert_eq!(other["promotions"], json!([]), "other's offer starts tomorrow at the store's clock");
    assert_eq!(basket["basket"]["promotions_saved_kopecks"], saving);

    // The online shop asks HQ to price the same basket: the same lines, kopeck for kopeck.
    let ask = json!({ "store": 1, "channel": "store",
                      "lines": [{ "sku": MILK_SKU, "quantity": 2 }, { "sku": OTHER_SKU, "quantity": 1 }] });
    let (status, priced) = api.send(reqwest::Method::POST, "/api/price", Some(&ask)).await;
    assert_eq!(status, 200, "{priced}");
    // Line by line, in SKU order: the scans (through the pty) and the typed item race, so
    // the till's lines may be in either order; the prices do not depend on it.
    let by_sku = |v: &mut Vec<Value>| v.sort_by_key(|l| l["sku"].as_str().unwrap_or_default().to_owned());
    let mut at_hq: Vec<Value> = priced["lines"].as_array().unwrap().iter().map(line_terms).collect();
    let mut at_till: Vec<Value> = lines.iter().map(line_terms).collect();
    by_sku(&mut at_hq);
    by_sku(&mut at_till);
    assert_eq!(at_hq, at_till, "HQ and the till price the basket alike");
    assert_eq!(priced["total_kopecks"], basket["totals"]["total_kopecks"]);

    // Paid: the sale records the promotion, the receipt prints it and the saving.
    let pay = json!({ "tenders": [{ "kind": "cash", "amount_kopecks": 100_000 }],
                      "basket_id": basket["basket"]["id"], "idempotency_key": "pay-1" });
    let (status, paid) = post(&client, &agent, &token, "/api/pay", &pay).await;
    assert_eq!(status, 200, "{paid}");
    let text = receipt_text(&stack.printer_events);
    assert!(text.contains("Акция: Молоко -10%"), "{text}");
    assert!(text.contains("Ваша выгода"), "{text}");
    assert!(text.contains(&format!("-{},{:02}", saving / 100, saving % 100)), "{text}");
    // And HQ receives the sale with what promotions gave (protocol 4 carries it).
    let seq = paid["sale"]["id"]["seq"].as_u64().unwrap();
    let till_sale = stack.agent.journal.sale(seq).unwrap().unwrap();
    assert_eq!(till_sale.lines.iter().find(|l| l.sku.0 == MILK_SKU).unwrap().promotions[0].promotion, 1);
    stack.stop().await;
}

async fn post(client: &reqwest::Client, agent: &str, token: &str, path: &str, body: &Value) -> (u16, Value) {
    let resp = client.post(format!("{agent}{path}")).bearer_auth(token).json(body).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// The milk line's promotions in the till's open basket.
async fn milk_promotions(till: &kassa_agent::Till) -> Vec<(u32, String)> {
    let TillEvent::Basket { basket, .. } = till.basket_event().await else { panic!("a basket event") };
    milk_of(&basket)
}

fn milk_of(basket: &Basket) -> Vec<(u32, String)> {
    let milk = basket.lines.iter().find(|l| l.sku.0 == MILK_SKU).expect("milk in the basket");
    milk.promotions.iter().map(|p| (p.promotion, p.name.clone())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_offline_keeps_applying_what_it_has_and_catches_up_when_back() {
    init_logging();
    let dir = tempfile::tempdir().unwrap();
    let cancel = tokio_util::sync::CancellationToken::new();
    let hq = kassa_tests::start_hq(dir.path(), Duration::from_secs(60), cancel.clone()).await;
    let api = HqApi::admin(&hq).await;
    let store = kassa_tests::start_relayed_store(&hq, dir.path(), 1, cancel.clone()).await;
    let till = store.agent.till.clone();
    let first = publish(&api, &promotions(10)).await;
    eventually(Duration::from_secs(5), "the first set at the store", || {
        let till = till.clone();
        async move { (till.promotions_version() == first).then_some(()) }
    })
    .await;

    // The link goes down; HQ publishes a new set the store cannot hear of.
    store.relay.cut.store(true, std::sync::atomic::Ordering::Relaxed);
    eventually(Duration::from_secs(30), "the store offline", || {
        let status = store.agent.status.clone();
        async move { (!status.borrow().hq.online).then_some(()) }
    })
    .await;
    let second = publish(&api, &promotions(15)).await;
    assert!(second > first);

    // Offline, the till prices with what it has (and its window, at its own clock) and
    // sells; the sale keeps the promotion.
    till.add_sku(kassa_protocol::Sku(MILK_SKU.into()), 1, "offline-milk").await.unwrap();
    assert_eq!(milk_promotions(&till).await, vec![(1, "Молоко -10%".to_owned())]);
    let sale = kassa_tests::pay_exact(&till, &store.cashier, "offline-pay".into()).await;
    assert_eq!(sale.total.0, MILK_PRICE - MILK_PRICE / 10);
    assert_eq!(till.promotions_version(), first, "nothing new offline");
    // A restart offline keeps the set: it is in the journal.
    assert_eq!(store.agent.journal.promotions().unwrap().0, first);

    // Back online: the new set arrives, and the next basket is priced with it.
    store.relay.cut.store(false, std::sync::atomic::Ordering::Relaxed);
    eventually(Duration::from_secs(30), "the new set after the link is back", || {
        let till = till.clone();
        async move { (till.promotions_version() == second).then_some(()) }
    })
    .await;
    till.add_sku(kassa_protocol::Sku(MILK_SKU.into()), 1, "online-milk").await.unwrap();
    assert_eq!(milk_promotions(&till).await, vec![(1, "Молоко -15%".to_owned())]);
    // HQ holds the offline sale, with its promotion's record.
    eventually(Duration::from_secs(30), "the offline sale at HQ", || {
        let status = store.agent.status.clone();
        async move { (status.borrow().hq.backlog == 0).then_some(()) }
    })
    .await;
    cancel.cancel();
    store.agent.wait().await;
    hq.wait().await;
}

/// A single-use coupon: milk half price once per customer.
fn single_use_coupon() -> Value {
    json!([
        { "id": 5, "version": 1, "name": "Молоко -50% по купону",
          "kind": { "type": "percent_off", "skus": [MILK_SKU], "percent": 50 },
          "from": local_date(-30), "to": local_date(30), "stores": "all",
          "channels": ["store", "online"], "audience": "everyone",
          "coupon": { "code": "ONCE-50", "single_use": true } }
    ])
}

/// The coupon's promotion on a basket of one milk, for `customer`, with the coupon.
async fn milk_with_coupon(till: &kassa_agent::Till, customer: &str, key: &str) -> Vec<(u32, String)> {
    till.set_customer(customer).await.unwrap();
    till.add_sku(kassa_protocol::Sku(MILK_SKU.into()), 1, &format!("{key}-milk")).await.unwrap();
    till.add_coupon("ONCE-50".into(), &format!("{key}-coupon")).await.unwrap();
    milk_promotions(till).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_use_coupon_is_honoured_once_per_customer_in_every_channel() {
    init_logging();
    let dir = tempfile::tempdir().unwrap();
    let cancel = tokio_util::sync::CancellationToken::new();
    let hq = kassa_tests::start_hq(dir.path(), Duration::from_secs(60), cancel.clone()).await;
    let api = HqApi::admin(&hq).await;
    let one = kassa_tests::start_relayed_store(&hq, dir.path(), 1, cancel.clone()).await;
    let two = kassa_tests::start_relayed_store(&hq, dir.path(), 2, cancel.clone()).await;
    let version = publish(&api, &single_use_coupon()).await;
    for s in [&one, &two] {
        let till = s.agent.till.clone();
        eventually(Duration::from_secs(10), "the coupon at the store", || {
            let till = till.clone();
            async move { (till.promotions_version() == version).then_some(()) }
        })
        .await;
    }
    let coupon = vec![(5, "Молоко -50% по купону".to_owned())];

    // A customer uses it at store 1.
    one.agent.till.new_customer("79001234567".into(), Some("Анна".into())).await.unwrap();
    let card = one.agent.journal.find_customer("79001234567").unwrap().unwrap().card.as_str().to_owned();
    assert_eq!(milk_with_coupon(&one.agent.till, &card, "first").await, coupon);
    kassa_tests::pay_exact(&one.agent.till, &one.cashier, "pay-first".into()).await;
    // Not again at store 1, which saw it.
    assert_eq!(milk_with_coupon(&one.agent.till, &card, "again").await, vec![], "used once here");
    one.agent.till.void(&one.cashier, "void-again").await.unwrap();
    let journal = one.agent.journal.clone();
    eventually(Duration::from_secs(10), "the sale at HQ", || {
        let journal = journal.clone();
        async move { (journal.acked_seq().unwrap() == journal.outbox_head().unwrap()).then_some(()) }
    })
    .await;

    // Not online either: HQ prices it without the coupon for this customer…
    let ask = |customer: Option<&str>| {
        json!({ "store": 2, "channel": "online", "customer": customer, "coupons": ["ONCE-50"],
                "lines": [{ "sku": MILK_SKU, "quantity": 1 }] })
    };
    let (status, priced) = api.send(reqwest::Method::POST, "/api/price", Some(&ask(Some(&card)))).await;
    assert_eq!(status, 200, "{priced}");
    assert_eq!(priced["lines"][0]["promotions"], json!([]), "used at store 1: {priced}");
    // A single-use coupon needs a customer to be used once by.
    let (_, anonymous) = api.send(reqwest::Method::POST, "/api/price", Some(&ask(None))).await;
    assert_eq!(anonymous["lines"][0]["promotions"], json!([]), "{anonymous}");

    // Nor at store 2, which asks HQ about the card when the customer is identified.
    assert_eq!(milk_with_coupon(&two.agent.till, &card, "elsewhere").await, vec![], "used at store 1");
    let promotions_used =
        two.agent.journal.promotions_used(&kassa_protocol::loyalty::CustomerId::parse(&card).unwrap());
    assert!(promotions_used.unwrap().contains(&5), "store 2 learnt it from HQ");
    two.agent.till.void(&two.cashier, "void-elsewhere").await.unwrap();
    two.agent.till.new_customer("79007654321".into(), None).await.unwrap();
    let other = two.agent.journal.find_customer("79007654321").unwrap().unwrap().card.as_str().to_owned();
    assert_eq!(milk_with_coupon(&two.agent.till, &other, "other").await, coupon, "another customer's first use");
    let (_, online) = api.send(reqwest::Method::POST, "/api/price", Some(&ask(Some(&other)))).await;
    assert_eq!(online["lines"][0]["promotions"][0]["id"], 5, "and online: {online}");
    cancel.cancel();
}

/// This file's tests again with HQ on PostgreSQL (issue #17: the same behaviour on both
/// backends); under `CI=true` a missing PostgreSQL fails it.
#[test]
fn the_same_with_hq_on_postgres() {
    kassa_tests::pg::rerun_on_postgres("the_same_with_hq_on_postgres");
}
