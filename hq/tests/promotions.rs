//! Promotions at HQ through the real HTTP API: a set is published whole and versioned, or
//! refused naming the promotion and the field with nothing published; the online shop
//! prices a basket with the published promotions, and gets what the engine every till
//! runs gives.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use kassa_protocol::promotions::definition::Definition;
use kassa_protocol::promotions::{Catalog, Channel, Context, LocalTime, PriceLine, PromotionSet};
use kassa_protocol::{Kopecks, Sku, StoreId};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

const CATALOG: &str = include_str!("../../data/catalog.csv");

struct Hq {
    _dir: tempfile::TempDir,
    hq: kassa_hq::RunningHq,
    cancel: CancellationToken,
    base: String,
    client: reqwest::Client,
}

async fn start() -> Hq {
    let dir = tempfile::tempdir().unwrap();
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let cancel = CancellationToken::new();
    let hq = kassa_hq::start(kassa_hq::HqConfig::new(dir.path().join("hq"), any, any), cancel.clone()).await.unwrap();
    kassa_hq::import_catalog(&hq.shared, CATALOG).await.unwrap();
    let base = format!("http://{}", hq.http_addr);
    // HQ's API needs a caller: an all-scopes token, sent on every request.
    let token = hq.issue_token("tests", kassa_hq::auth::Permissions::ALL, None, "tests").await.unwrap();
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::AUTHORIZATION, format!("Bearer {token}").parse().unwrap());
    let client = reqwest::Client::builder().default_headers(headers).build().unwrap();
    Hq { _dir: dir, hq, cancel, base, client }
}

impl Hq {
    async fn send(&self, req: reqwest::RequestBuilder) -> (u16, Value) {
        let resp = req.send().await.unwrap();
        (resp.status().as_u16(), resp.json().await.unwrap())
    }

    async fn publish(&self, set: &Value) -> (u16, Value) {
        self.send(self.client.put(format!("{}/api/promotions", self.base)).body(set.to_string())).await
    }

    async fn price(&self, basket: &Value) -> (u16, Value) {
        self.send(self.client.post(format!("{}/api/price", self.base)).json(basket)).await
    }
}

/// Milk 106,90, a loaf 99,90, apples 189,00/kg.
fn demo_set() -> Value {
    json!([
        { "id": 1, "name": "3 по цене 2: молоко", "kind": { "type": "n_for_m", "skus": ["100001"], "n": 3, "m": 2 },
          "from": "2026-01-01", "to": "2026-12-31", "stores": "all", "channels": ["store", "online"], "audience": "everyone" },
        { "id": 2, "name": "Яблоки по 149,90", "kind": { "type": "fixed_price", "skus": ["100477"], "price_kopecks": 14990 },
          "from": "2026-01-01", "to": "2026-12-31", "stores": "all", "channels": ["online"], "audience": "everyone" },
        { "id": 3, "name": "От 500 ₽ — 5 %", "kind": { "type": "basket_percent", "threshold_kopecks": 50000, "percent": 5 },
          "from": "2026-01-01", "to": "2026-12-31", "stores": { "list": [1] }, "channels": ["store", "online"],
          "audience": "loyalty_members" }
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_set_is_published_whole_or_refused_naming_promotion_and_field() {
    let hq = start().await;
    let (status, body) = hq.publish(&demo_set()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["version"], 1);
    // Each mistake a merchandiser makes is named, and nothing is published.
    let mut bad = demo_set();
    bad[0]["kind"]["m"] = json!(3);
    let cases = [
        (bad, "promotion 1: m"),
        (
            {
                let mut b = demo_set();
                b[1]["to"] = json!("2025-12-31");
                b
            },
            "promotion 2: window: it ends before it starts",
        ),
        (
            {
                let mut b = demo_set();
                b[1]["kind"]["skus"] = json!(["999999"]);
                b
            },
            "promotion 2: items: SKU 999999 is not in the catalog",
        ),
        (
            {
                let mut b = demo_set();
                b[2]["id"] = json!(1);
                b
            },
            "promotion 1: id: used by two promotions",
        ),
        (
            {
                let mut b = demo_set();
                b[0]["kind"] = json!({ "type": "percent_off", "categories": ["Ювелирные изделия"], "percent": 10 });
                b
            },
            "promotion 1: categories: category «Ювелирные изделия» is not in the catalog",
        ),
    ];
    for (set, want) in cases {
        let (status, body) = hq.publish(&set).await;
        assert_eq!((status, body["error"].as_str()), (422, Some("bad_promotion")), "{body}");
        let message = body["message"].as_str().unwrap();
        assert!(message.contains(want) && message.ends_with("nothing published"), "{message}");
    }
    let (status, body) = hq.publish(&json!([{ "id": 1, "kind": { "type": "half_off" } }])).await;
    assert_eq!((status, body["error"].as_str()), (422, Some("bad_json")), "{body}");
    let (_, published) = hq.send(hq.client.get(format!("{}/api/promotions", hq.base))).await;
    assert_eq!(published["version"], 1, "still the first set");
    assert_eq!(published["promotions"].as_array().unwrap().len(), 3);
    hq.cancel.cancel();
    hq.hq.wait().await;
}

/// The catalog's SKUs and categories, for the engine run directly.
struct Demo(Vec<kassa_protocol::catalog::CatalogItem>);

impl Catalog for Demo {
    fn has_sku(&self, sku: &Sku) -> bool {
        self.0.iter().any(|i| &i.sku == sku)
    }
    fn has_category(&self, c: &str) -> bool {
        self.0.iter().any(|i| i.category == c)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_online_shop_prices_with_the_tills_engine() {
    let hq = start().await;
    hq.publish(&demo_set()).await;
    // 2026-06-15 12:00 Moscow.
    let at_ms =
        (kassa_protocol::promotions::definition::parse_day("2026-06-15").unwrap() as i64 * 1440 + 9 * 60) * 60_000;
    let basket = json!({
        "store": 1, "channel": "online", "customer": "2990000000017", "at_ms": at_ms,
        "lines": [{ "sku": "100001", "quantity": 3 }, { "sku": "100477", "quantity": 1500 }, { "sku": "100081", "quantity": 2 }]
    });
    let (status, priced) = hq.price(&basket).await;
    assert_eq!(status, 200, "{priced}");
    let lines = priced["lines"].as_array().unwrap();
    // 3 for 2 on milk: one milk free.
    assert_eq!(lines[0]["promotions"][0]["id"], 1);
    assert_eq!(lines[0]["promotions"][0]["amount_kopecks"], 10690);
    assert_eq!(lines[0]["promotions"][0]["name"], "3 по цене 2: молоко");
    // Apples at 149,90 online: 1.5 kg saves 58,65.
    assert_eq!(lines[1]["promotions"][0]["amount_kopecks"], 5865);
    let sum: i64 = lines.iter().map(|l| l["to_pay_kopecks"].as_i64().unwrap()).sum();
    assert_eq!(priced["total_kopecks"], sum, "the lines add up to the total");
    for l in lines {
        let paid = l["amount_kopecks"].as_i64().unwrap() - l["discount_kopecks"].as_i64().unwrap();
        assert_eq!(l["to_pay_kopecks"], paid);
    }

    // The same basket through the protocol's engine directly gives the same lines.
    let items = kassa_protocol::catalog::parse_csv(CATALOG).unwrap();
    let defs: Vec<Definition> = serde_json::from_value(demo_set()).unwrap();
    let set =
        PromotionSet::new(defs.iter().map(|d| d.to_promotion().unwrap()).collect(), &Demo(items.clone())).unwrap();
    let find = |sku: &str| items.iter().find(|i| i.sku.as_str() == sku).unwrap();
    let rows = [("100001", 3), ("100477", 1500), ("100081", 2)];
    let price_lines: Vec<PriceLine<'_>> = rows
        .iter()
        .map(|(sku, q)| {
            let item = find(sku);
            PriceLine {
                sku: &item.sku,
                category: &item.category,
                unit: item.unit,
                quantity: *q,
                price: item.price,
                amount: kassa_protocol::pricing::line_amount(item.price, item.unit, *q).unwrap(),
            }
        })
        .collect();
    let card = kassa_protocol::loyalty::CustomerId::parse("2990000000017").unwrap();
    let none = BTreeSet::new();
    let direct = set.price(
        &price_lines,
        &Context {
            store: StoreId(1),
            channel: Channel::Online,
            at: LocalTime::from_unix_ms(at_ms, 180),
            customer: Some(&card),
            coupons: &[],
            used_coupons: &none,
        },
    );
    for (l, d) in lines.iter().zip(&direct.lines) {
        assert_eq!(l["discount_kopecks"], d.discount.0);
    }
    assert_eq!(priced["discount_kopecks"], direct.total_discount.0);
    assert!(direct.total_discount > Kopecks::ZERO);

    // In a store's channel, the online-only apple price does not apply; without a card,
    // the members' basket discount does not either.
    let mut at_till = basket.clone();
    at_till["channel"] = json!("store");
    at_till.as_object_mut().unwrap().remove("customer");
    let (_, till) = hq.price(&at_till).await;
    assert_eq!(till["lines"][1]["discount_kopecks"], 0);
    assert!(till["lines"][2]["promotions"].as_array().unwrap().is_empty());

    // A basket HQ cannot price is refused with a reason.
    let (status, body) =
        hq.price(&json!({ "store": 1, "channel": "online", "lines": [{ "sku": "999999", "quantity": 1 }] })).await;
    assert_eq!((status, body["error"].as_str()), (404, Some("unknown_sku")), "{body}");
    let (status, body) =
        hq.price(&json!({ "store": 1, "channel": "phone", "lines": [{ "sku": "100001", "quantity": 1 }] })).await;
    assert_eq!((status, body["error"].as_str()), (422, Some("bad_price_request")), "{body}");
    hq.cancel.cancel();
    hq.hq.wait().await;
}
