//! The cashier API under hostile or mistaken input, through real HTTP on loopback: every
//! route but the page, login and health needs a session; absurd amounts, reused keys
//! and refunds beyond the drawer are refused with nothing written; wrong PINs from a
//! stranger lock out only the stranger; the framework's own refusals come in the same
//! JSON shape as every other.

// Amounts are written as roubles_kopecks (812_00 = 812,00 ₽) on purpose.
#![allow(clippy::inconsistent_digit_grouping)]

use std::net::IpAddr;
use std::time::Duration;

use kassa_agent::config::HqLink;
use kassa_agent::journal::{Role, User};
use kassa_agent::{AgentConfig, Journal, RunningAgent};
use kassa_protocol::StoreId;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

const CATALOG: &str = include_str!("../../data/catalog.csv");
/// Milk, 106,90 ₽.
const MILK: &str = "4650001209603";
const MILK_PRICE: i64 = 10690;

struct Agent {
    agent: RunningAgent,
    cancel: CancellationToken,
    base: String,
    _dir: tempfile::TempDir,
}

async fn start() -> Agent {
    let dir = tempfile::tempdir().unwrap();
    {
        let j = Journal::open(&dir.path().join("journal.sqlite"), StoreId(1)).unwrap();
        j.apply_catalog(1, &kassa_protocol::catalog::parse_csv(CATALOG).unwrap()).unwrap();
        j.add_user(&User { id: "kassir".into(), name: "Кассир".into(), role: Role::Cashier }, "1111", 0).unwrap();
        j.add_user(&User { id: "boss".into(), name: "Управляющий".into(), role: Role::Manager }, "9999", 0).unwrap();
    }
    let config = AgentConfig {
        store: 1,
        terminal: 1,
        data_dir: dir.path().to_owned(),
        http_listen: "127.0.0.1:0".parse().unwrap(),
        utc_offset_minutes: 180,
        // Not enrolled: offline, which is all these tests need.
        hq: HqLink {
            addr: "127.0.0.1:9".parse().unwrap(),
            server_name: "kassa-hq".into(),
            pki_dir: dir.path().join("none"),
            protocol_version: None,
            fallback_addrs: Vec::new(),
        },
        scan_rules: Default::default(),
        scanner: None,
        printer: None,
        metrics_token: Some("metrics-token-for-the-monitoring-system".into()),
        limits: Default::default(),
    };
    let cancel = CancellationToken::new();
    let agent = kassa_agent::start(config, cancel.clone()).await.unwrap();
    let base = format!("http://{}", agent.http_addr);
    Agent { agent, cancel, base, _dir: dir }
}

impl Agent {
    async fn stop(self) {
        self.cancel.cancel();
        self.agent.wait().await;
    }
}

/// A client at one source address (the till is 127.0.0.1; a stranger another loopback
/// address).
fn client_from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(ip.parse::<IpAddr>().unwrap())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

async fn send(req: reqwest::RequestBuilder) -> (u16, Value) {
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"));
    (status, body)
}

async fn login(client: &reqwest::Client, base: &str, user: &str, pin: &str) -> (u16, Value) {
    send(client.post(format!("{base}/api/login")).json(&json!({ "user": user, "pin": pin }))).await
}

/// Logs in as the cashier and opens the shift with `float` kopecks.
async fn cashier(a: &Agent, float: i64) -> (reqwest::Client, String) {
    let client = client_from("127.0.0.1");
    let (status, body) = login(&client, &a.base, "kassir", "1111").await;
    assert_eq!(status, 200, "{body}");
    let token = body["token"].as_str().unwrap().to_owned();
    let open = json!({ "float_kopecks": float, "idempotency_key": "open" });
    let (status, body) = send(client.post(format!("{}/api/shift/open", a.base)).bearer_auth(&token).json(&open)).await;
    assert_eq!(status, 200, "{body}");
    (client, token)
}

async fn post(client: &reqwest::Client, a: &Agent, token: &str, path: &str, body: Value) -> (u16, Value) {
    send(client.post(format!("{}{path}", a.base)).bearer_auth(token).json(&body)).await
}

async fn get(client: &reqwest::Client, a: &Agent, token: &str, path: &str) -> (u16, Value) {
    send(client.get(format!("{}{path}", a.base)).bearer_auth(token)).await
}

/// Routes open to anyone: the pages (the till's and the back room's), their scripts,
/// health and login.
const OPEN: &[(&str, &str)] = &[
    ("GET", "/"),
    ("GET", "/app.js"),
    ("GET", "/stock"),
    ("GET", "/stock.js"),
    ("GET", "/api/health"),
    ("POST", "/api/login"),
];

/// Every other route, as a request a stranger might send.
const GUARDED: &[(&str, &str)] = &[
    ("GET", "/api/devices"),
    ("GET", "/metrics"),
    ("GET", "/api/events?token=guess"),
    ("GET", "/api/status"),
    ("GET", "/api/users"),
    ("POST", "/api/logout"),
    ("GET", "/api/me"),
    ("GET", "/api/catalog/search?q=milk"),
    ("GET", "/api/basket"),
    ("POST", "/api/basket/scan"),
    ("POST", "/api/basket/items"),
    ("POST", "/api/basket/lines/0/quantity"),
    ("POST", "/api/basket/lines/0/remove"),
    ("POST", "/api/basket/lines/0/price"),
    ("POST", "/api/basket/discount"),
    ("POST", "/api/basket/coupons"),
    ("POST", "/api/basket/multiplier"),
    ("POST", "/api/basket/park"),
    ("GET", "/api/basket/parked"),
    ("POST", "/api/basket/parked/1/recall"),
    ("POST", "/api/basket/void"),
    ("POST", "/api/pay"),
    ("POST", "/api/customer"),
    ("POST", "/api/customer/new"),
    ("POST", "/api/customer/clear"),
    ("GET", "/api/customer/history?code=0000100000000001"),
    ("GET", "/api/sales/lookup?code=KASSA:1:1"),
    ("GET", "/api/sales/shift"),
    ("GET", "/api/sales/1"),
    ("POST", "/api/sales/1/reprint"),
    ("POST", "/api/sales/1/cancel"),
    ("POST", "/api/returns"),
    ("POST", "/api/returns/without-receipt"),
    ("GET", "/api/shift"),
    ("POST", "/api/shift/open"),
    ("POST", "/api/shift/cash"),
    ("POST", "/api/shift/x-report"),
    ("POST", "/api/shift/close"),
    ("GET", "/api/stock/100001"),
    ("GET", "/api/stock"),
    ("GET", "/api/stock/inbound"),
    ("POST", "/api/stock/receive"),
    ("POST", "/api/stock/write-off"),
    ("POST", "/api/stock/transfer"),
    ("GET", "/api/stock/movements"),
    ("GET", "/api/stock/counts"),
    ("POST", "/api/stock/counts"),
    ("GET", "/api/stock/counts/1"),
    ("POST", "/api/stock/counts/1/scan"),
    ("POST", "/api/stock/counts/1/post"),
    ("GET", "/api/orders"),
    ("GET", "/api/orders/find?code=Z10454"),
    ("GET", "/api/orders/1"),
    ("POST", "/api/orders/1/collect"),
    ("POST", "/api/orders/aisle"),
    ("POST", "/api/orders/aisle/1/pay"),
    ("POST", "/api/orders/aisle/1/abandon"),
    ("POST", "/api/orders/1/ready"),
];

/// The routes the router declares, read from its source: the lists above must name
/// every one, so a route added later is guarded or consciously open.
fn declared_routes() -> Vec<String> {
    let src = include_str!("../src/api/mod.rs");
    src.match_indices(".route(\"")
        .map(|(at, m)| {
            let rest = &src[at + m.len()..];
            rest[..rest.find('"').unwrap()].to_owned()
        })
        .collect()
}

/// `/api/sales/{seq}` matches `/api/sales/1`, and a query string is not part of a route.
fn matches(route: &str, path: &str) -> bool {
    let path = path.split('?').next().unwrap();
    let (r, p): (Vec<_>, Vec<_>) = (route.split('/').collect(), path.split('/').collect());
    r.len() == p.len() && r.iter().zip(&p).all(|(r, p)| r.starts_with('{') || r == p)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_but_the_page_login_and_health_needs_a_session() {
    for route in declared_routes() {
        let listed = OPEN.iter().chain(GUARDED).any(|(_, p)| matches(&route, p));
        assert!(listed, "route {route} is in neither list of this test");
    }
    let a = start().await;
    let client = client_from("127.0.0.1");
    for (method, path) in GUARDED {
        let url = format!("{}{path}", a.base);
        let req = match *method {
            "GET" => client.get(url),
            _ => client.post(url).json(&json!({})),
        };
        let (status, body) = send(req).await;
        // Logout without a session is harmless (it ends nothing) and says so.
        if *path == "/api/logout" {
            assert_eq!(status, 200, "{body}");
            continue;
        }
        assert_eq!(status, 401, "{method} {path} without a session: {body}");
        assert_eq!(body["error"], "not_logged_in", "{method} {path}");
        // A made-up token is no better.
        let req = match *method {
            "GET" => client.get(format!("{}{path}", a.base)),
            _ => client.post(format!("{}{path}", a.base)).json(&json!({})),
        };
        let (status, _) = send(req.bearer_auth("0123456789abcdef0123456789abcdef")).await;
        assert_eq!(status, 401, "{method} {path} with a made-up token");
    }
    for (method, path) in OPEN.iter().filter(|(m, _)| *m == "GET") {
        let status = client.get(format!("{}{path}", a.base)).send().await.unwrap().status();
        assert_eq!(status, 200, "{method} {path} is open");
    }
    // The monitoring system reads /metrics with its own token, and only that.
    let metrics = client
        .get(format!("{}/metrics", a.base))
        .bearer_auth("metrics-token-for-the-monitoring-system")
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200);
    assert!(metrics.text().await.unwrap().contains("kassa_sales 0"));
    let (status, _) =
        send(client.get(format!("{}/api/status", a.base)).bearer_auth("metrics-token-for-the-monitoring-system")).await;
    assert_eq!(status, 401, "the metrics token opens /metrics only");
    // With a session, the event stream opens (the token in the query, as EventSource sends it).
    let (_, token) = cashier(&a, 0).await;
    let events = client.get(format!("{}/api/events?token={token}", a.base)).send().await.unwrap();
    assert_eq!(events.status(), 200);
    drop(events);
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absurd_amounts_are_refused_and_the_shift_still_closes() {
    let a = start().await;
    let (client, token) = cashier(&a, 0).await;
    let (status, body) =
        post(&client, &a, &token, "/api/basket/scan", json!({ "code": MILK, "idempotency_key": "s1" })).await;
    assert_eq!(status, 200, "{body}");
    // Cash of i64::MAX kopecks: refused as a typing mistake, nothing written.
    let pay = json!({ "idempotency_key": "p1", "tenders": [{ "kind": "cash", "amount_kopecks": i64::MAX }] });
    let (status, body) = post(&client, &a, &token, "/api/pay", pay).await;
    assert_eq!((status, body["error"].as_str()), (422, Some("change_too_large")), "{body}");
    // Two of them overflow before anything else is checked.
    let pay = json!({ "idempotency_key": "p2", "tenders": [
        { "kind": "cash", "amount_kopecks": i64::MAX }, { "kind": "cash", "amount_kopecks": i64::MAX }] });
    let (status, body) = post(&client, &a, &token, "/api/pay", pay).await;
    assert_eq!((status, body["error"].as_str()), (422, Some("overflow")), "{body}");
    assert_eq!(a.agent.journal.docs_count().unwrap(), (0, 0));
    // Up to the documented change is fine: a 5 000 ₽ note for the milk.
    let change_max = kassa_protocol::sale::CHANGE_MAX.0;
    let pay =
        json!({ "idempotency_key": "p3", "tenders": [{ "kind": "cash", "amount_kopecks": MILK_PRICE + change_max }] });
    let (status, body) = post(&client, &a, &token, "/api/pay", pay).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["sale"]["change_kopecks"], change_max);
    // Cash moves and the count at close are bounded too.
    let max = kassa_agent::journal::limits::CASH_AMOUNT_MAX.0;
    for (path, body) in [
        ("/api/shift/cash", json!({ "amount_kopecks": max + 1, "reason": "x", "idempotency_key": "c1" })),
        (
            "/api/shift/cash",
            json!({ "amount_kopecks": i64::MIN, "reason": "x", "manager": { "user": "boss", "pin": "9999" }, "idempotency_key": "c2" }),
        ),
        (
            "/api/shift/close",
            json!({ "counted_kopecks": i64::MAX, "manager": { "user": "boss", "pin": "9999" }, "idempotency_key": "z0" }),
        ),
    ] {
        let (status, answer) = post(&client, &a, &token, path, body).await;
        assert_eq!((status, answer["error"].as_str()), (422, Some("amount_too_large")), "{path}: {answer}");
    }
    // The shift's figures and the close work as ever.
    let (status, shift) = get(&client, &a, &token, "/api/shift").await;
    assert_eq!(status, 200, "{shift}");
    assert_eq!(shift["report"]["expected_cash_kopecks"], MILK_PRICE);
    let metrics = client.get(format!("{}/metrics", a.base)).bearer_auth(&token).send().await.unwrap();
    assert_eq!(metrics.status(), 200);
    assert!(metrics.text().await.unwrap().contains(&format!("kassa_shift_expected_cash_kopecks {MILK_PRICE}")));
    let close =
        json!({ "counted_kopecks": MILK_PRICE, "manager": { "user": "boss", "pin": "9999" }, "idempotency_key": "z1" });
    let (status, body) = post(&client, &a, &token, "/api/shift/close", close).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["report"]["difference_kopecks"], 0);
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_names_one_request() {
    let a = start().await;
    let (client, token) = cashier(&a, 0).await;
    let (_, scanned) =
        post(&client, &a, &token, "/api/basket/scan", json!({ "code": MILK, "idempotency_key": "s1" })).await;
    let basket_id = scanned["basket"]["id"].as_u64().unwrap();
    let pay = |key: &str, amount: i64, basket: u64| json!({ "idempotency_key": key, "basket_id": basket, "tenders": [{ "kind": "cash", "amount_kopecks": amount }] });
    let (status, first) = post(&client, &a, &token, "/api/pay", pay("k1", 20000, basket_id)).await;
    assert_eq!(status, 200, "{first}");
    // The next customer's basket, paid with the first key and other tenders: refused,
    // and the basket stays as it is (unpaid, not silently "replayed").
    let (_, next) =
        post(&client, &a, &token, "/api/basket/scan", json!({ "code": MILK, "idempotency_key": "s2" })).await;
    let next_id = next["basket"]["id"].as_u64().unwrap();
    assert!(next_id > basket_id);
    let (status, body) = post(&client, &a, &token, "/api/pay", pay("k1", 50000, next_id)).await;
    assert_eq!((status, body["error"].as_str()), (409, Some("key_reuse")), "{body}");
    let (_, basket) = get(&client, &a, &token, "/api/basket").await;
    assert_eq!(basket["basket"]["lines"].as_array().unwrap().len(), 1);
    // The same request again is a replay: the first sale, the new basket untouched.
    let (status, again) = post(&client, &a, &token, "/api/pay", pay("k1", 20000, basket_id)).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!((again["replayed"].as_bool(), &again["sale"]["id"]), (Some(true), &first["sale"]["id"]));
    let (_, basket) = get(&client, &a, &token, "/api/basket").await;
    assert_eq!(basket["basket"]["id"].as_u64(), Some(next_id));
    assert_eq!(basket["basket"]["lines"].as_array().unwrap().len(), 1);
    // Paying a basket other than the one on the till: refused.
    let (status, body) = post(&client, &a, &token, "/api/pay", pay("k2", 20000, next_id + 1)).await;
    assert_eq!((status, body["error"].as_str()), (409, Some("basket_changed")), "{body}");
    // Basket operations follow the same rule: no empty or overlong keys, and one key one request.
    for bad in ["", &"k".repeat(1000), "a b"] {
        let (status, body) =
            post(&client, &a, &token, "/api/basket/scan", json!({ "code": MILK, "idempotency_key": bad })).await;
        assert_eq!((status, body["error"].as_str()), (400, Some("idempotency_key")), "{bad:?}: {body}");
    }
    let (status, body) =
        post(&client, &a, &token, "/api/basket/scan", json!({ "code": "4630015509388", "idempotency_key": "s2" }))
            .await;
    assert_eq!((status, body["error"].as_str()), (409, Some("key_reuse")), "{body}");
    let (status, _) =
        post(&client, &a, &token, "/api/basket/scan", json!({ "code": MILK, "idempotency_key": "s2" })).await;
    assert_eq!(status, 200, "the same scan again is a replay");
    let (_, basket) = get(&client, &a, &token, "/api/basket").await;
    assert_eq!(basket["basket"]["lines"][0]["quantity"], 1, "replayed, not scanned twice");
    assert_eq!(a.agent.journal.docs_count().unwrap(), (1, 0));
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_void_needs_a_manager() {
    let a = start().await;
    let (client, token) = cashier(&a, 0).await;
    // Six milks: 641,40 ₽, above the default limit of 500 ₽.
    for k in 0..6 {
        let scan = json!({ "code": MILK, "idempotency_key": format!("s{k}") });
        assert_eq!(post(&client, &a, &token, "/api/basket/scan", scan).await.0, 200);
    }
    let (status, body) = post(&client, &a, &token, "/api/basket/void", json!({ "idempotency_key": "v1" })).await;
    assert_eq!((status, body["error"].as_str()), (403, Some("needs_manager")), "{body}");
    let (_, basket) = get(&client, &a, &token, "/api/basket").await;
    assert_eq!(basket["basket"]["lines"][0]["quantity"], 6, "nothing voided: {basket}");
    let wrong = json!({ "manager": { "user": "boss", "pin": "0000" }, "idempotency_key": "v2" });
    assert_eq!(post(&client, &a, &token, "/api/basket/void", wrong).await.0, 401);
    let approved = json!({ "manager": { "user": "boss", "pin": "9999" }, "idempotency_key": "v3" });
    let (status, body) = post(&client, &a, &token, "/api/basket/void", approved).await;
    assert_eq!(status, 200, "{body}");
    let (_, basket) = get(&client, &a, &token, "/api/basket").await;
    assert_eq!(basket["basket"]["lines"], json!([]), "{basket}");
    // A small basket is voided by the cashier alone.
    assert_eq!(
        post(&client, &a, &token, "/api/basket/scan", json!({ "code": MILK, "idempotency_key": "s9" })).await.0,
        200
    );
    assert_eq!(post(&client, &a, &token, "/api/basket/void", json!({ "idempotency_key": "v4" })).await.0, 200);
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cash_refunds_stay_within_the_drawer_unless_a_manager_overrides() {
    let a = start().await;
    let (client, token) = cashier(&a, 812_00).await;
    // A return without receipt of 50 kg of apples: more than the 812 ₽ in the drawer.
    let ret = |key: &str, drawer_override: bool| {
        json!({
            "lines": [{ "sku": "100477", "quantity": 50_000 }],
            "manager": { "user": "boss", "pin": "9999" },
            "drawer_override": drawer_override,
            "idempotency_key": key,
        })
    };
    let (status, body) = post(&client, &a, &token, "/api/returns/without-receipt", ret("r1", false)).await;
    assert_eq!((status, body["error"].as_str()), (409, Some("drawer_short")), "{body}");
    assert!(body["message"].as_str().unwrap().contains("812,00"), "{body}");
    assert_eq!(a.agent.journal.docs_count().unwrap(), (0, 0));
    // Cash out needs a manager at all (the store's limits), and beyond the drawer is
    // refused even with one, unless they override.
    let out = json!({ "amount_kopecks": -100_00, "reason": "инкассация", "idempotency_key": "o0" });
    let (status, body) = post(&client, &a, &token, "/api/shift/cash", out).await;
    assert_eq!((status, body["error"].as_str()), (403, Some("needs_manager")), "{body}");
    let boss = json!({ "user": "boss", "pin": "9999" });
    let out = json!({ "amount_kopecks": -900_00, "reason": "инкассация", "manager": boss, "idempotency_key": "o1" });
    let (status, body) = post(&client, &a, &token, "/api/shift/cash", out).await;
    assert_eq!((status, body["error"].as_str()), (409, Some("drawer_short")), "{body}");
    // A cashier cannot override on their own: the override needs a manager's PIN.
    let out =
        json!({ "amount_kopecks": -900_00, "reason": "инкассация", "drawer_override": true, "idempotency_key": "o2" });
    let (status, body) = post(&client, &a, &token, "/api/shift/cash", out).await;
    assert_eq!((status, body["error"].as_str()), (403, Some("needs_manager")), "{body}");
    // The customer may take it back to a card instead: the drawer is not touched, so no
    // override is needed; points are not a way back without a receipt.
    let mut to_card = ret("r-card", false);
    to_card["refund"] = json!("card");
    let (status, body) = post(&client, &a, &token, "/api/returns/without-receipt", to_card).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["return"]["refunds"][0]["kind"], "card", "{body}");
    let mut to_points = ret("r-points", false);
    to_points["refund"] = json!("points");
    let (status, body) = post(&client, &a, &token, "/api/returns/without-receipt", to_points).await;
    assert_eq!((status, body["error"].as_str()), (422, Some("bad_refund_method")), "{body}");
    // With the manager's override the cash refund goes through, and the override is recorded.
    let (status, body) = post(&client, &a, &token, "/api/returns/without-receipt", ret("r2", true)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(a.agent.journal.docs_count().unwrap(), (0, 2));
    assert!(a.agent.journal.verify().unwrap().ok());
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_guessing_pins_locks_out_only_the_stranger() {
    let a = start().await;
    let stranger = client_from("127.0.0.2");
    let mut locked = false;
    for _ in 0..kassa_agent::journal::PIN_ATTEMPTS_MAX {
        let (status, body) = login(&stranger, &a.base, "boss", "0000").await;
        locked = body["error"] == "locked";
        assert!(status == 401 || (locked && status == 429), "{status} {body}");
    }
    assert!(locked, "the stranger is locked out after the allowed attempts");
    let (status, _) = login(&stranger, &a.base, "boss", "9999").await;
    assert_eq!(status, 429, "even with the right PIN, for a while");
    // The manager at the till logs in and approves as ever.
    let (client, token) = cashier(&a, 0).await;
    let (status, body) = login(&client, &a.base, "boss", "9999").await;
    assert_eq!(status, 200, "{body}");
    let (_, scanned) =
        post(&client, &a, &token, "/api/basket/scan", json!({ "code": MILK, "idempotency_key": "s1" })).await;
    assert_eq!(scanned["basket"]["lines"].as_array().unwrap().len(), 1);
    let discount = json!({ "percent": 10, "manager": { "user": "boss", "pin": "9999" }, "idempotency_key": "d1" });
    let (status, body) = post(&client, &a, &token, "/api/basket/discount", discount).await;
    assert_eq!(status, 200, "{body}");
    // The lockout is recorded, with its source.
    let lockouts = a.agent.journal.lockouts(10).unwrap();
    assert_eq!(lockouts.len(), 1);
    assert_eq!((lockouts[0].0.as_str(), lockouts[0].1.as_str()), ("boss", "127.0.0.2"));
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn framework_refusals_come_as_json() {
    let a = start().await;
    let (client, token) = cashier(&a, 0).await;
    let url = |p: &str| format!("{}{p}", a.base);
    let cases: Vec<(&str, reqwest::RequestBuilder, u16, &str)> = vec![
        (
            "bad JSON",
            client.post(url("/api/pay")).bearer_auth(&token).header("content-type", "application/json").body("{"),
            400,
            "bad_request",
        ),
        (
            "a field of the wrong type",
            client.post(url("/api/pay")).bearer_auth(&token).json(&json!({ "idempotency_key": 5, "tenders": [] })),
            422,
            "bad_request",
        ),
        (
            "a weight typed with a comma, sent as it was typed",
            client
                .post(url("/api/basket/items"))
                .bearer_auth(&token)
                .json(&json!({ "sku": "100477", "quantity": "1,5", "idempotency_key": "w1" })),
            422,
            "bad_request",
        ),
        (
            "a weight the page could not read (NaN goes as null)",
            client
                .post(url("/api/basket/items"))
                .bearer_auth(&token)
                .json(&json!({ "sku": "100477", "quantity": null, "idempotency_key": "w2" })),
            422,
            "bad_request",
        ),
        ("no content type", client.post(url("/api/pay")).bearer_auth(&token).body("{}"), 415, "content_type"),
        (
            "a body too large",
            client
                .post(url("/api/basket/scan"))
                .bearer_auth(&token)
                .header("content-type", "application/json")
                .body(format!("{{\"code\": \"{}\", \"idempotency_key\": \"k\"}}", "1".repeat(100_000))),
            413,
            "too_large",
        ),
        ("an unknown route", client.get(url("/api/nothing")).bearer_auth(&token), 404, "not_found"),
        ("a wrong method", client.delete(url("/api/pay")).bearer_auth(&token), 405, "method_not_allowed"),
        ("a bad path parameter", client.get(url("/api/sales/abc")).bearer_auth(&token), 400, "bad_request"),
        ("a missing query parameter", client.get(url("/api/sales/lookup")).bearer_auth(&token), 400, "bad_request"),
        (
            "login with bad JSON",
            client.post(url("/api/login")).header("content-type", "application/json").body("[]"),
            422,
            "bad_request",
        ),
    ];
    for (what, req, want_status, want_code) in cases {
        let (status, body) = send(req).await;
        assert_eq!((status, body["error"].as_str()), (want_status, Some(want_code)), "{what}: {body}");
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}: {body}");
    }
    a.stop().await;
}

/// What serde would write for the domain's enums if one reached the page: the API speaks
/// codes (`"kg"`, `"card"`, `"10"`, `"with_receipt"`) instead.
const VARIANT_NAMES: &[&str] = &[
    "Kilogram",
    "Piece",
    "Cash",
    "Card",
    "Points",
    "Vat20",
    "Vat10",
    "Vat0",
    "None",
    "WithReceipt",
    "WithoutReceipt",
    "Cancellation",
    "Percent",
    "Amount",
    "Cashier",
    "Manager",
    "Closed",
    "Idle",
    "Busy",
    "Error",
];

/// Every key and string of `v` that is a Rust variant name, with where it is.
fn variant_names(v: &Value, at: &str, found: &mut Vec<String>) {
    match v {
        Value::String(s) if VARIANT_NAMES.contains(&s.as_str()) => found.push(format!("{at} = {s:?}")),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                variant_names(item, &format!("{at}[{i}]"), found);
            }
        }
        Value::Object(fields) => {
            for (k, item) in fields {
                if VARIANT_NAMES.contains(&k.as_str()) {
                    found.push(format!("{at}.{k} (a key)"));
                }
                variant_names(item, &format!("{at}.{k}"), found);
            }
        }
        _ => {}
    }
}

/// The page's event stream, read into a string as it comes.
async fn read_events(mut events: reqwest::Response, text: std::sync::Arc<std::sync::Mutex<String>>) {
    while let Ok(Some(chunk)) = events.chunk().await {
        text.lock().unwrap().push_str(&String::from_utf8_lossy(&chunk));
    }
}

/// The JSON of each `data:` line of an event stream.
fn event_data(text: &str) -> Vec<Value> {
    text.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(|d| serde_json::from_str(d.trim()).unwrap_or_else(|e| panic!("an event that is not JSON ({e}): {d}")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_answer_or_event_carries_a_rust_variant_name() {
    let a = start().await;
    let (client, token) = cashier(&a, 5000_00).await;
    let boss = json!({ "user": "boss", "pin": "9999" });
    let events = client.get(format!("{}/api/events?token={token}", a.base)).send().await.unwrap();
    assert_eq!(events.status(), 200);
    let stream = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let reader = tokio::spawn(read_events(events, stream.clone()));

    let mut answers: Vec<(String, Value)> = Vec::new();
    let mut step = async |method: &str, path: &str, body: Option<Value>| -> Value {
        let (status, answer) = match body {
            Some(body) => post(&client, &a, &token, path, body).await,
            None => get(&client, &a, &token, path).await,
        };
        assert_eq!(status, 200, "{method} {path}: {answer}");
        answers.push((format!("{method} {path}"), answer.clone()));
        answer
    };

    for path in ["/api/me", "/api/users", "/api/status", "/api/devices", "/api/shift", "/api/stock/100478"] {
        step("GET", path, None).await;
    }
    let found = step("GET", "/api/catalog/search?q=бананы", None).await;
    assert_eq!((&found["items"][0]["unit"], &found["items"][0]["vat"]), (&json!("kg"), &json!("10")), "{found}");

    // A new customer buys 1 kg of cheese by card and cash, and earns points.
    let customer = step("POST", "/api/customer/new", Some(json!({ "phone": "+7 900 000-00-01" }))).await;
    let card = customer["customer"]["card"].as_str().expect("the customer's card").to_owned();
    step("POST", "/api/basket/items", Some(json!({ "sku": "100482", "quantity": 1000, "idempotency_key": "i1" })))
        .await;
    let pay = json!({ "idempotency_key": "p1", "tenders": [
        { "kind": "card", "amount_kopecks": 500_00 }, { "kind": "cash", "amount_kopecks": 399_00 }] });
    let first = step("POST", "/api/pay", Some(pay)).await;
    let first_seq = first["sale"]["id"]["seq"].as_u64().unwrap();

    // Milk and 1,5 kg of bananas, 10 % off, then an amount off; paid by points, card and cash.
    step("POST", "/api/customer", Some(json!({ "code": card }))).await;
    step("POST", "/api/basket/scan", Some(json!({ "code": MILK, "idempotency_key": "s1" }))).await;
    let basket =
        step("POST", "/api/basket/items", Some(json!({ "sku": "100478", "quantity": 1500, "idempotency_key": "i2" })))
            .await;
    assert_eq!(basket["basket"]["lines"][1]["unit"], "kg", "{basket}");
    let amount_off = json!({ "amount_kopecks": 5_00, "manager": boss, "idempotency_key": "d1" });
    let basket = step("POST", "/api/basket/discount", Some(amount_off)).await;
    assert_eq!(basket["basket"]["discount"], json!({ "amount_kopecks": 5_00 }), "{basket}");
    let percent_off = json!({ "percent": 10, "manager": boss, "idempotency_key": "d2" });
    let basket = step("POST", "/api/basket/discount", Some(percent_off)).await;
    assert_eq!(basket["basket"]["discount"], json!({ "percent": 10 }), "{basket}");
    let total = basket["totals"]["total_kopecks"].as_i64().unwrap();
    // An unknown tender kind is refused, never taken for cash.
    for kind in ["Cash", "CASH", "bonus", ""] {
        let pay = json!({ "idempotency_key": "bad", "tenders": [{ "kind": kind, "amount_kopecks": total }] });
        let (status, body) = post(&client, &a, &token, "/api/pay", pay).await;
        assert_eq!((status, body["error"].as_str()), (422, Some("bad_tender")), "{kind:?}: {body}");
    }
    assert_eq!(a.agent.journal.docs_count().unwrap(), (1, 0));
    let pay = json!({ "idempotency_key": "p2", "tenders": [
        { "kind": "points", "amount_kopecks": 10_00 },
        { "kind": "card", "amount_kopecks": 200_00 },
        { "kind": "cash", "amount_kopecks": total - 200_00 }] });
    let second = step("POST", "/api/pay", Some(pay)).await;
    let kinds: Vec<&Value> = second["sale"]["tenders"].as_array().unwrap().iter().map(|t| &t["kind"]).collect();
    assert_eq!(kinds, [&json!("points"), &json!("card"), &json!("cash")], "{second}");
    let second_seq = second["sale"]["id"]["seq"].as_u64().unwrap();
    step("GET", &format!("/api/sales/{second_seq}"), None).await;
    let receipt = second["sale"]["receipt_no"].as_str().unwrap().to_owned();
    step("GET", &format!("/api/sales/lookup?code={receipt}"), None).await;
    let history = step("GET", &format!("/api/customer/history?code={card}"), None).await;
    assert_eq!(history["purchases"][0]["kind"], "sale", "{history}");

    // Each kind of return.
    let with_receipt =
        json!({ "sale_seq": second_seq, "lines": [{ "line": 1, "quantity": 500 }], "idempotency_key": "r1" });
    let returned = step("POST", "/api/returns", Some(with_receipt)).await;
    assert_eq!(returned["return"]["kind"], "with_receipt", "{returned}");
    let refunds: Vec<&Value> = returned["return"]["refunds"].as_array().unwrap().iter().map(|t| &t["kind"]).collect();
    assert!(refunds.contains(&&json!("points")), "the part points paid goes back as points: {returned}");
    let without = json!({ "lines": [{ "sku": "100001", "quantity": 1 }], "manager": boss, "idempotency_key": "r2" });
    let returned = step("POST", "/api/returns/without-receipt", Some(without)).await;
    assert_eq!(returned["return"]["kind"], "without_receipt", "{returned}");
    let cancel = json!({ "manager": boss, "idempotency_key": "r3" });
    let returned = step("POST", &format!("/api/sales/{first_seq}/cancel"), Some(cancel)).await;
    assert_eq!(returned["return"]["kind"], "cancellation", "{returned}");

    step("POST", "/api/basket/scan", Some(json!({ "code": MILK, "idempotency_key": "s2" }))).await;
    step("POST", "/api/basket/lines/0/quantity", Some(json!({ "quantity": 2, "idempotency_key": "q1" }))).await;
    step("POST", "/api/basket/void", Some(json!({ "idempotency_key": "v1" }))).await;
    step(
        "POST",
        "/api/shift/cash",
        Some(json!({ "amount_kopecks": 10_00, "reason": "размен", "idempotency_key": "c1" })),
    )
    .await;
    step("POST", "/api/shift/x-report", Some(json!({ "idempotency_key": "x1" }))).await;
    let z = json!({ "counted_kopecks": 0, "manager": boss, "idempotency_key": "z1" });
    let z = step("POST", "/api/shift/close", Some(z)).await;
    let tender_kinds: Vec<&Value> = z["report"]["tenders"].as_array().unwrap().iter().map(|t| &t["kind"]).collect();
    assert!(tender_kinds.contains(&&json!("points")), "{z}");

    // Every event the page received meanwhile, through to the Z report.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let events = loop {
        let events = event_data(&stream.lock().unwrap());
        let returns = events.iter().filter(|e| e["type"] == "return_committed").count();
        let closed = events.iter().any(|e| e["type"] == "shift" && e["report"].is_null());
        if returns == 3 && closed {
            break events;
        }
        assert!(tokio::time::Instant::now() < deadline, "events missing: {events:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    reader.abort();
    for kind in ["basket", "sale_committed", "return_committed", "shift", "status"] {
        assert!(events.iter().any(|e| e["type"] == kind), "no {kind} event");
    }
    let returned = events.iter().find(|e| e["type"] == "return_committed").unwrap();
    assert_eq!(returned["return"]["kind"], "with_receipt", "{returned}");
    answers.extend(events.into_iter().map(|e| (format!("event {}", e["type"]), e)));

    let mut found = Vec::new();
    for (what, answer) in &answers {
        variant_names(answer, what, &mut found);
    }
    assert!(found.is_empty(), "Rust variant names reached the page:\n{}", found.join("\n"));
    a.stop().await;
}

/// Offline (here: not even enrolled), the unsent count follows every commit: the till's
/// status line and `/metrics` show what waits for HQ.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_unsent_count_follows_sales_while_offline() {
    let a = start().await;
    let (client, token) = cashier(&a, 0).await;
    for (i, key) in ["p1", "p2"].iter().enumerate() {
        let (status, body) =
            post(&client, &a, &token, "/api/basket/scan", json!({ "code": MILK, "idempotency_key": format!("s{i}") }))
                .await;
        assert_eq!(status, 200, "{body}");
        let pay = json!({ "idempotency_key": key, "tenders": [{ "kind": "cash", "amount_kopecks": MILK_PRICE }] });
        let (status, body) = post(&client, &a, &token, "/api/pay", pay).await;
        assert_eq!(status, 200, "{body}");
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, status) = get(&client, &a, &token, "/api/status").await;
        if status["hq"]["backlog"] == 2 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the unsent count stayed at {}", status["hq"]["backlog"]);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let metrics = client.get(format!("{}/metrics", a.base)).bearer_auth(&token).send().await.unwrap();
    assert!(metrics.text().await.unwrap().contains("kassa_sync_backlog_entries 2"));
    a.stop().await;
}
