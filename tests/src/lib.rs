//! Helpers shared by Kassa's end-to-end tests (in `tests/tests/`).
//!
//! **Calling HQ's HTTP API.** Every route but `/api/health` and `/metrics` needs a
//! caller. A test that starts HQ itself gets an all-scopes API token with
//! [`hq_token`], or an [`HqApi`] that sends it on every request:
//!
//! ```ignore
//! let api = kassa_tests::HqApi::admin(&hq).await;
//! let (status, body) = api.send(Method::PUT, "/api/promotions", Some(&json!([...]))).await;
//! let (status, stores) = api.get("/api/stores").await;
//! ```
//!
//! A test on `kassa_sim::stack` has the stack's token already: `stack.hq_token`, with
//! `stack.hq_get(…)` / `stack.hq_send(…)`.

pub mod pg;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

/// Polls `f` every 50 ms until it returns `Some`, or panics with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Logs to the test's output when `RUST_LOG` is set.
pub fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// A UDP relay between one store and HQ; `cut` drops every datagram both ways.
#[derive(Debug)]
pub struct Relay {
    pub addr: SocketAddr,
    pub cut: Arc<AtomicBool>,
}

pub async fn relay(hq: SocketAddr, cancel: CancellationToken) -> Relay {
    let front = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let back = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    back.connect(hq).await.unwrap();
    let addr = front.local_addr().unwrap();
    let cut = Arc::new(AtomicBool::new(false));
    let client: Arc<tokio::sync::Mutex<Option<SocketAddr>>> = Default::default();
    {
        let (front, back, cut, client, cancel) =
            (front.clone(), back.clone(), cut.clone(), client.clone(), cancel.clone());
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            loop {
                let (n, from) = tokio::select! {
                    _ = cancel.cancelled() => return,
                    r = front.recv_from(&mut buf) => match r { Ok(r) => r, Err(_) => continue },
                };
                *client.lock().await = Some(from);
                if !cut.load(Ordering::Relaxed) {
                    let _ = back.send(&buf[..n]).await;
                }
            }
        });
    }
    {
        let (cut2, cancel) = (cut.clone(), cancel.clone());
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            loop {
                let n = tokio::select! {
                    _ = cancel.cancelled() => return,
                    r = back.recv(&mut buf) => match r { Ok(n) => n, Err(_) => continue },
                };
                let to = *client.lock().await;
                if let (false, Some(to)) = (cut2.load(Ordering::Relaxed), to) {
                    let _ = front.send_to(&buf[..n], to).await;
                }
            }
        });
    }
    Relay { addr, cut }
}

/// A store behind its own cuttable relay to HQ: an enrolled agent (no devices) with a
/// cashier logged into an open shift.
#[derive(Debug)]
pub struct RelayedStore {
    pub id: kassa_protocol::StoreId,
    pub agent: kassa_agent::RunningAgent,
    pub relay: Relay,
    pub cashier: kassa_agent::journal::User,
}

/// Enrols store `id` at `hq`, puts a relay between them and starts its agent under `dir`.
pub async fn start_relayed_store(
    hq: &kassa_hq::RunningHq,
    dir: &std::path::Path,
    id: u32,
    cancel: CancellationToken,
) -> RelayedStore {
    start_relayed_store_in_zone(hq, dir, id, 180, cancel).await
}

/// [`start_relayed_store`] for a store whose clock is `utc_offset_minutes` from UTC.
pub async fn start_relayed_store_in_zone(
    hq: &kassa_hq::RunningHq,
    dir: &std::path::Path,
    id: u32,
    utc_offset_minutes: i32,
    cancel: CancellationToken,
) -> RelayedStore {
    start_relayed_store_with(hq, dir, id, utc_offset_minutes, Vec::new(), cancel).await
}

/// [`start_relayed_store_in_zone`] for a store that also knows other HQ nodes
/// (`fallback_addrs`, tried directly when `hq` behind the relay does not answer).
pub async fn start_relayed_store_with(
    hq: &kassa_hq::RunningHq,
    dir: &std::path::Path,
    id: u32,
    utc_offset_minutes: i32,
    fallback_addrs: Vec<SocketAddr>,
    cancel: CancellationToken,
) -> RelayedStore {
    start_relayed_store_at(&hq.pki, hq.quic_addr, dir, id, utc_offset_minutes, fallback_addrs, cancel).await
}

/// [`start_relayed_store_with`] for an HQ node known by its chain's certificate
/// authority and its QUIC address (a node in a process of its own).
pub async fn start_relayed_store_at(
    pki: &kassa_hq::pki::Pki,
    hq_addr: SocketAddr,
    dir: &std::path::Path,
    id: u32,
    utc_offset_minutes: i32,
    fallback_addrs: Vec<SocketAddr>,
    cancel: CancellationToken,
) -> RelayedStore {
    use kassa_agent::config::HqLink;
    use kassa_agent::journal::{Role, User};
    let store_dir = dir.join(format!("store-{id}"));
    pki.enroll(kassa_protocol::StoreId(id), &store_dir.join("pki")).unwrap();
    let relay = relay(hq_addr, cancel.clone()).await;
    let link = HqLink {
        addr: relay.addr,
        server_name: kassa_hq::pki::HQ_SERVER_NAME.into(),
        pki_dir: store_dir.join("pki"),
        protocol_version: None,
        fallback_addrs,
    };
    let config = kassa_agent::AgentConfig {
        utc_offset_minutes,
        ..kassa_agent::AgentConfig::on_loopback(id, store_dir.clone(), link)
    };
    let agent = kassa_agent::start(config, cancel).await.unwrap();
    let cashier = User { id: "kassir".into(), name: "К".into(), role: Role::Cashier };
    agent.journal.add_user(&cashier, "1111", 0).unwrap();
    agent.journal.open_shift(1, "kassir", kassa_protocol::Kopecks(0), "shift", 0).unwrap();
    RelayedStore { id: kassa_protocol::StoreId(id), agent, relay, cashier }
}

/// HQ on loopback ports chosen by the OS, its data under `dir/hq`, the demo catalog
/// published; stores get their neighbours' stock every `nearby_interval`.
pub async fn start_hq(
    dir: &std::path::Path,
    nearby_interval: Duration,
    cancel: CancellationToken,
) -> kassa_hq::RunningHq {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let config = kassa_hq::HqConfig {
        nearby_interval,
        database: test_database(),
        ..kassa_hq::HqConfig::new(dir.join("hq"), any, any)
    };
    let hq = kassa_hq::start(config, cancel).await.unwrap();
    kassa_hq::import_catalog(&hq.shared, kassa_sim::stack::DEMO_CATALOG_CSV).await.unwrap();
    hq
}

/// The variable naming a PostgreSQL server for [`start_hq`] (see [`test_database`]).
pub const TEST_DATABASE_VAR: &str = "KASSA_TEST_HQ_DATABASE";

/// HQ's database in [`start_hq`]: `None`, the SQLite file under `dir/hq`, unless
/// [`TEST_DATABASE_VAR`] names a PostgreSQL server (`postgres://kassa@127.0.0.1:5432/`,
/// a role that may create databases) — then a new, empty database on it for each HQ,
/// so that the end-to-end suites run with HQ on PostgreSQL:
/// `KASSA_TEST_HQ_DATABASE=postgres://… cargo test -p kassa-tests`.
pub fn test_database() -> Option<String> {
    static MADE: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let server = std::env::var(TEST_DATABASE_VAR).ok().filter(|s| !s.is_empty())?;
    let base = server.trim_end_matches('/').to_owned();
    let n = MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = format!("kassa_test_{}_{n}", std::process::id());
    // The blocking client may not run on the test's runtime: a thread of its own.
    let url = format!("{base}/postgres");
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut admin = postgres::Client::connect(&url, postgres::NoTls)
                .unwrap_or_else(|e| panic!("{TEST_DATABASE_VAR}: cannot connect to {url}: {e}"));
            admin.batch_execute(&format!("CREATE DATABASE {name}")).expect("a test database");
        })
        .join()
        .expect("creating the test database");
    });
    Some(format!("{base}/{name}"))
}

/// Pays the till's open basket with exactly its total in cash (a till gives at most
/// `CHANGE_MAX` in change, so tests do not hand over arbitrary sums).
pub async fn pay_exact(
    till: &kassa_agent::Till,
    cashier: &kassa_agent::journal::User,
    key: String,
) -> kassa_protocol::sale::Sale {
    let kassa_agent::till::TillEvent::Basket { totals: Some(totals), .. } = till.basket_event().await else {
        panic!("nothing to pay: the basket is empty");
    };
    let tender = kassa_protocol::sale::Tender { kind: kassa_protocol::sale::TenderKind::Cash, amount: totals.total };
    till.pay(cashier, vec![tender], None, key).await.expect("the sale is paid").0
}

/// HQ like [`start_hq`] (its data under `dir/hq`, the demo catalog published), offering
/// stores only the sync protocol `versions` — an HQ of an older release, as far as the
/// wire goes — with QUIC on `quic_listen` (port 0: any; HQ's old address to restart it
/// where its stores look for it).
pub async fn start_hq_speaking(
    dir: &std::path::Path,
    versions: Vec<u32>,
    quic_listen: SocketAddr,
    cancel: CancellationToken,
) -> kassa_hq::RunningHq {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let config =
        kassa_hq::HqConfig { protocol_versions: versions, ..kassa_hq::HqConfig::new(dir.join("hq"), quic_listen, any) };
    let hq = kassa_hq::start(config, cancel).await.unwrap();
    kassa_hq::import_catalog(&hq.shared, kassa_sim::stack::DEMO_CATALOG_CSV).await.unwrap();
    hq
}

/// Starts the agent of store `id` under `dir/store-{id}` (enrolled at `hq` the first
/// time), reaching HQ directly and speaking sync protocol `protocol_version` (`None`:
/// the current one). Started again on the same directory with another version, it is
/// a store upgraded (or rolled back) in place. No users or shift are set up.
pub async fn start_store_speaking(
    hq: &kassa_hq::RunningHq,
    dir: &std::path::Path,
    id: u32,
    protocol_version: Option<u32>,
    cancel: CancellationToken,
) -> kassa_agent::RunningAgent {
    use kassa_agent::config::HqLink;
    let store_dir = dir.join(format!("store-{id}"));
    if !store_dir.join("pki/store.crt").exists() {
        hq.pki.enroll(kassa_protocol::StoreId(id), &store_dir.join("pki")).unwrap();
    }
    let config = kassa_agent::AgentConfig {
        store: id,
        terminal: 1,
        data_dir: store_dir.clone(),
        http_listen: "127.0.0.1:0".parse().unwrap(),
        utc_offset_minutes: 180,
        hq: HqLink {
            addr: hq.quic_addr,
            server_name: kassa_hq::pki::HQ_SERVER_NAME.into(),
            pki_dir: store_dir.join("pki"),
            protocol_version,
            fallback_addrs: Vec::new(),
        },
        scan_rules: Default::default(),
        scanner: None,
        printer: None,
        metrics_token: None,
        limits: Default::default(),
    };
    kassa_agent::start(config, cancel).await.unwrap()
}

/// HQ's `GET /api/stores` row of store `id`, if HQ lists it.
/// What HQ's audit log keeps of a fixture writer's change `action` at `at_ms` (the
/// system, no summary).
pub fn fixture_audit(at_ms: i64, action: &'static str) -> kassa_hq::db::NewAudit {
    kassa_hq::db::NewAudit {
        at_ms,
        actor_kind: "system",
        actor: "fixtures".into(),
        action,
        summary: serde_json::Value::Null,
    }
}

/// The loyalty customer a till's basket event shows (panics if none).
pub fn customer_of(ev: &kassa_agent::till::TillEvent) -> &kassa_agent::till::CustomerView {
    match ev {
        kassa_agent::till::TillEvent::Basket { customer: Some(c), .. } => c,
        other => panic!("no customer on the basket: {other:?}"),
    }
}

pub async fn hq_store_row(hq: &kassa_hq::RunningHq, id: u32) -> Option<serde_json::Value> {
    let (status, body) = HqApi::admin(hq).await.get("/api/stores").await;
    assert_eq!(status, 200, "{body}");
    body["stores"].as_array().unwrap().iter().find(|s| s["store"] == id).cloned()
}

/// An API token for `hq` with every scope (an administrator's integration), valid for a
/// day: send it as `Authorization: Bearer …` (`reqwest`'s `.bearer_auth(token)`).
pub async fn hq_token(hq: &kassa_hq::RunningHq) -> String {
    hq.issue_token("tests", kassa_hq::auth::Permissions::ALL, Some(1), "tests").await.expect("an API token for tests")
}

/// HQ's HTTP API with a token on every request.
#[derive(Debug, Clone)]
pub struct HqApi {
    /// `http://127.0.0.1:N`
    pub base: String,
    pub token: String,
    pub client: reqwest::Client,
}

impl HqApi {
    /// With an all-scopes token ([`hq_token`]).
    pub async fn admin(hq: &kassa_hq::RunningHq) -> HqApi {
        HqApi::with_token(hq, hq_token(hq).await)
    }

    pub fn with_token(hq: &kassa_hq::RunningHq, token: String) -> HqApi {
        HqApi { base: format!("http://{}", hq.http_addr), token, client: reqwest::Client::new() }
    }

    /// `GET path`: the status and the body as JSON (`Null` if it is not JSON).
    pub async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        self.send(reqwest::Method::GET, path, None).await
    }

    /// `method path` with `body` as JSON.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut req = self.client.request(method, format!("{}{path}", self.base)).bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(b);
        }
        self.answer(req).await
    }

    /// `method path` with a raw body (a CSV, rules as text).
    pub async fn send_text(&self, method: reqwest::Method, path: &str, body: &str) -> (u16, serde_json::Value) {
        let req =
            self.client.request(method, format!("{}{path}", self.base)).bearer_auth(&self.token).body(body.to_owned());
        self.answer(req).await
    }

    async fn answer(&self, req: reqwest::RequestBuilder) -> (u16, serde_json::Value) {
        let resp = req.send().await.expect("HQ answers");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("HQ's answer");
        (status, serde_json::from_str(&text).unwrap_or(serde_json::Value::Null))
    }
}

/// A store's cashier API with a logged-in session on every request.
#[derive(Debug, Clone)]
pub struct AgentApi {
    /// `http://127.0.0.1:N`
    pub base: String,
    pub token: String,
    pub client: reqwest::Client,
}

impl AgentApi {
    /// Logs `user` in with `pin` at `agent`'s page address.
    pub async fn login(agent: &kassa_agent::RunningAgent, user: &str, pin: &str) -> AgentApi {
        let base = format!("http://{}", agent.http_addr);
        let client = reqwest::Client::new();
        let resp = client
            .post(format!("{base}/api/login"))
            .json(&serde_json::json!({ "user": user, "pin": pin }))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "login of {user}: {}", resp.status());
        let body: serde_json::Value = resp.json().await.unwrap();
        AgentApi { base, token: body["token"].as_str().expect("a session token").to_owned(), client }
    }

    /// `GET path`: the status and the body as JSON.
    pub async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        let resp = self.client.get(format!("{}{path}", self.base)).bearer_auth(&self.token).send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(serde_json::Value::Null))
    }

    /// `POST path` with a JSON body: the status and the body as JSON.
    pub async fn post(&self, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        let resp =
            self.client.post(format!("{}{path}", self.base)).bearer_auth(&self.token).json(&body).send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(serde_json::Value::Null))
    }
}

/// Copies the fixture files `files` of directory `dir` into a new temporary directory: a
/// test opens the copies, never the fixtures (they are never written after their commit).
pub fn copy_fixtures(dir: &std::path::Path, files: &[&str]) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    for f in files {
        std::fs::copy(dir.join(f), tmp.path().join(f)).unwrap_or_else(|e| panic!("fixture {f}: {e}"));
    }
    tmp
}

/// Leaves the fixture files in `dir` whole on their own: the write-ahead log folded in
/// and switched off, so that each file is one file a later release opens.
pub fn seal_fixtures(dir: &std::path::Path, files: &[&str]) {
    for f in files {
        let conn = rusqlite::Connection::open(dir.join(f)).unwrap();
        conn.pragma_update(None, "wal_checkpoint", "TRUNCATE").unwrap();
        conn.pragma_update(None, "journal_mode", "DELETE").unwrap();
    }
}

/// A journal for a fixture at `path`: the demo catalog, a cashier `kassir` (PIN 1111)
/// and terminal 1's shift open with no float, at `at_ms`.
pub fn fixture_journal(path: &std::path::Path, store: kassa_protocol::StoreId, at_ms: i64) -> kassa_agent::Journal {
    let items = kassa_protocol::catalog::parse_csv(include_str!("../../data/catalog.csv")).unwrap();
    let j = kassa_agent::Journal::open(path, store).unwrap();
    j.apply_catalog(1, &items).unwrap();
    let cashier = kassa_agent::journal::User {
        id: "kassir".into(),
        name: "Касса".into(),
        role: kassa_agent::journal::Role::Cashier,
    };
    j.add_user(&cashier, "1111", at_ms).unwrap();
    j.open_shift(1, "kassir", kassa_protocol::Kopecks(0), "shift", at_ms).unwrap();
    j
}

/// Sale `seq` of `store` at terminal 1 by `olga`, at `at_ms`: three milks (SKU 100001
/// of the demo catalog) paid by card — the other store's sale the return fixtures take
/// back.
pub fn fixture_card_sale(store: kassa_protocol::StoreId, seq: u64, at_ms: i64) -> kassa_protocol::sale::Sale {
    use kassa_protocol::sale::{Tender, TenderKind};
    let items = kassa_protocol::catalog::parse_csv(include_str!("../../data/catalog.csv")).unwrap();
    let milk = items.iter().find(|i| i.sku.0 == "100001").unwrap();
    let mut basket = kassa_protocol::basket::Basket::new(0);
    basket.add(milk, 3).unwrap();
    let lines = basket.lines;
    let total = kassa_protocol::Kopecks(lines.iter().map(|l| l.net().0).sum());
    kassa_protocol::sale::Sale {
        id: kassa_protocol::SaleId { store, seq },
        receipt_no: kassa_protocol::sale::receipt_no(store, 1, seq),
        terminal: 1,
        cashier: "olga".into(),
        created_at_ms: at_ms,
        lines,
        tenders: vec![Tender { kind: TenderKind::Card, amount: total }],
        total,
        change: kassa_protocol::Kopecks::ZERO,
        loyalty: None,
    }
}

/// An online order `id` of `quantity` milks (SKU 100001 of the demo catalog, as HQ
/// prices it: no promotions) for pickup at `store` within three days of `at_ms`, placed
/// with `phone` and `note`: the order the format fixtures keep.
pub fn fixture_milk_order(
    id: u64,
    store: kassa_protocol::StoreId,
    quantity: i64,
    payment: kassa_protocol::orders::Payment,
    (phone, note): (&str, &str),
    at_ms: i64,
) -> kassa_protocol::orders::Order {
    let items = kassa_protocol::catalog::parse_csv(include_str!("../../data/catalog.csv")).unwrap();
    let milk = items.iter().find(|i| i.sku.0 == "100001").unwrap();
    let mut basket = kassa_protocol::basket::Basket::new(0);
    basket.add(milk, quantity).unwrap();
    kassa_protocol::orders::Order {
        id: kassa_protocol::orders::OrderId(id),
        store,
        channel: kassa_protocol::orders::OrderChannel::Online,
        customer: None,
        phone: Some(kassa_protocol::loyalty::Phone::parse(phone).unwrap()),
        note: note.into(),
        lines: basket.lines,
        payment,
        created_at_ms: at_ms,
        expires_at_ms: at_ms + 3 * 86_400_000,
    }
}

/// The schema version (`PRAGMA user_version`) of a fixture as it is on disk, opened
/// read-only and left untouched.
pub fn fixture_version(path: &std::path::Path) -> u32 {
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY;
    let conn = rusqlite::Connection::open_with_flags(path, flags).unwrap();
    conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap()
}

/// Publishes the promotions of `json` (definitions, as HQ's API takes them) at `db`, as
/// a fixture writer does: checked against no catalog (the fixture's catalog has them).
pub fn publish_fixture_promotions(db: &kassa_hq::Db, json: &str) {
    struct AnyCatalog;
    impl kassa_protocol::promotions::Catalog for AnyCatalog {
        fn has_sku(&self, _: &kassa_protocol::Sku) -> bool {
            true
        }
        fn has_category(&self, _: &str) -> bool {
            true
        }
    }
    let defs: Vec<kassa_protocol::promotions::definition::Definition> = serde_json::from_str(json).unwrap();
    let set = kassa_protocol::promotions::PromotionSet::new(
        defs.iter().map(|d| d.to_promotion().unwrap()).collect(),
        &AnyCatalog,
    )
    .unwrap();
    db.publish_promotions(&defs, set).unwrap();
}

/// Waits (at most 20 s) until `store` is online with HQ and holds a catalog.
pub async fn online_with_catalog(store: &RelayedStore) {
    let mut status = store.agent.status.subscribe();
    tokio::time::timeout(Duration::from_secs(20), status.wait_for(|x| x.hq.online && x.hq.catalog_version > 0))
        .await
        .unwrap_or_else(|_| panic!("store {} online with the catalog within 20 s", store.id))
        .unwrap();
}
