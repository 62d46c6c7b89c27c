//! Nobody reads or writes at HQ who should not: every route of HQ's API (the table
//! `kassa_hq::api::ROUTES` the router is built from) is called without credentials
//! (401), with a token or a session whose role lacks the route's permission (403), with
//! a revoked token and an unknown one (401) — and after all of it, nothing changed: no
//! catalog, rules, promotions, neighbours, operators or tokens, and no audit entry.
//! Then the console's sessions (cookie, CSRF, logout, lockout, disabled operators) and
//! the catalog edits that cannot wipe a chain.

use std::time::Duration;

use kassa_hq::api::{Guard, Route, ROUTES};
use kassa_hq::auth::{Permission, Permissions};
use kassa_hq::RunningHq;
use kassa_tests::{init_logging, start_hq, HqApi};
use reqwest::Method;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

/// A customer card that exists nowhere (its route answers 404 with a right caller).
const CARD: &str = "0000100000000099";

/// The routes anyone may call: the health check, the console's page and its login
/// (and `/metrics`, open unless configured). A new open route must be added here, on
/// purpose.
const OPEN: &[(&str, &str)] =
    &[("GET", "/api/health"), ("GET", "/"), ("GET", "/console.js"), ("GET", "/console.css"), ("POST", "/api/login")];

/// The route's path with its parameters filled in.
fn concrete(path: &str) -> String {
    path.replace("{store}", "1")
        .replace("{sku}", "100001")
        .replace("{card}", CARD)
        .replace("{login}", "nobody")
        .replace("{id}", "999999")
}

fn method(route: &Route) -> Method {
    Method::from_bytes(route.method.as_bytes()).unwrap()
}

/// One request as a stranger, a token, or a console session (cookie and CSRF token).
#[derive(Clone, Default)]
struct As {
    token: Option<String>,
    cookie: Option<String>,
    csrf: Option<String>,
}

async fn call(base: &str, who: &As, route: &Route) -> (u16, Value) {
    let client = reqwest::Client::new();
    let mut req = client.request(method(route), format!("{base}{}", concrete(route.path)));
    if let Some(t) = &who.token {
        req = req.bearer_auth(t);
    }
    if let Some(c) = &who.cookie {
        req = req.header("cookie", format!("{}={c}", kassa_hq::auth::SESSION_COOKIE));
    }
    if let Some(c) = &who.csrf {
        req = req.header(kassa_hq::auth::CSRF_HEADER, c);
    }
    if route.method != "GET" {
        // What a careless or hostile caller would send; the guard answers before it is read.
        req = req.header("content-type", "application/json").body("{}");
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// What a refused request must not have changed.
#[derive(Debug, PartialEq)]
struct State {
    catalog_version: u64,
    catalog_len: usize,
    rules_version: u64,
    promotions_version: u64,
    neighbours: Vec<kassa_protocol::StoreId>,
    operators: Vec<kassa_hq::db::Operator>,
    tokens: Vec<kassa_hq::db::Token>,
    audit_entries: u64,
}

fn state(hq: &RunningHq) -> State {
    let db = &hq.shared.db;
    State {
        catalog_version: db.catalog_version().unwrap(),
        catalog_len: db.catalog().unwrap().len(),
        rules_version: db.rules().unwrap().0,
        promotions_version: db.promotions().unwrap().0,
        neighbours: db.neighbours(kassa_protocol::StoreId(1)).unwrap(),
        operators: db.operators().unwrap(),
        tokens: db.tokens().unwrap(),
        audit_entries: db.audit_count().unwrap(),
    }
}

fn admin_password(dir: &std::path::Path) -> String {
    std::fs::read_to_string(dir.join("hq").join(kassa_hq::auth::INITIAL_PASSWORD_FILE)).unwrap().trim().to_owned()
}

/// Logs in: the session cookie's value and the CSRF token.
async fn log_in(base: &str, login: &str, password: &str) -> (u16, Value, Option<String>) {
    let resp = reqwest::Client::new()
        .post(format!("{base}/api/login"))
        .json(&json!({ "login": login, "password": password }))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let cookie = resp.headers().get("set-cookie").map(|v| v.to_str().unwrap().to_owned());
    let body: Value = resp.json().await.unwrap();
    let value = cookie.as_deref().and_then(|c| {
        let attrs: Vec<&str> = c.split("; ").collect();
        assert!(attrs.contains(&"HttpOnly") && attrs.contains(&"SameSite=Strict") && attrs.contains(&"Path=/"), "{c}");
        attrs[0].split_once('=').map(|(_, v)| v.to_owned())
    });
    (status, body, value)
}

async fn session(base: &str, login: &str, password: &str) -> As {
    let (status, body, cookie) = log_in(base, login, password).await;
    assert_eq!(status, 200, "{login}: {body}");
    As { token: None, cookie, csrf: body["csrf"].as_str().map(str::to_owned) }
}

async fn start(dir: &std::path::Path, cancel: CancellationToken) -> (RunningHq, HqApi, String) {
    let hq = start_hq(dir, kassa_hq::sync_server::NEARBY_INTERVAL, cancel).await;
    let api = HqApi::admin(&hq).await;
    let base = api.base.clone();
    (hq, api, base)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_refuses_strangers_wrong_roles_and_revoked_tokens_and_nothing_changes() {
    init_logging();
    let dir = tempfile::tempdir().unwrap();
    let cancel = CancellationToken::new();
    let (hq, admin, base) = start(dir.path(), cancel.clone()).await;

    // Open are exactly the routes meant to be, and /metrics by its own rule.
    let open: Vec<(&str, &str)> =
        ROUTES.iter().filter(|r| r.guard == Guard::Open).map(|r| (r.method, r.path)).collect();
    assert_eq!(open, OPEN, "a route was opened (or closed): review it and this list");
    let metrics: Vec<_> = ROUTES.iter().filter(|r| r.guard == Guard::Metrics).map(|r| r.path).collect();
    assert_eq!(metrics, ["/metrics"]);
    let guarded: Vec<&Route> = ROUTES.iter().filter(|r| matches!(r.guard, Guard::Needs(_) | Guard::Signed)).collect();
    assert!(guarded.len() >= 25, "{guarded:?}");

    // The callers: a revoked token, one for each permission holding every other one, and
    // console sessions of each role that writes nothing of somebody else's.
    let (status, revoked) =
        admin.send(Method::POST, "/api/tokens", Some(&json!({ "name": "old", "role": "administrator" }))).await;
    assert_eq!(status, 200, "{revoked}");
    let (status, _) = admin.send(Method::DELETE, &format!("/api/tokens/{}", revoked["id"]), None).await;
    assert_eq!(status, 200);
    let revoked = revoked["token"].as_str().unwrap().to_owned();
    let mut lacking = Vec::new();
    for p in Permission::ALL {
        let scopes: Vec<&str> = Permission::ALL.iter().filter(|q| **q != p).map(|q| q.code()).collect();
        let (status, t) = admin
            .send(Method::POST, "/api/tokens", Some(&json!({ "name": format!("no {p}"), "scopes": scopes })))
            .await;
        assert_eq!(status, 200, "{t}");
        lacking.push((p, t["token"].as_str().unwrap().to_owned()));
    }
    for (login, role) in [("ro", "read_only"), ("sup", "support"), ("merch", "merchandiser"), ("ops", "operations")] {
        let body = json!({ "login": login, "name": login, "role": role, "password": "a long password" });
        let (status, answer) = admin.send(Method::POST, "/api/operators", Some(&body)).await;
        assert_eq!(status, 200, "{answer}");
    }
    let read_only = session(&base, "ro", "a long password").await;
    let support = session(&base, "sup", "a long password").await;
    let before = state(&hq);

    for route in &guarded {
        let what = format!("{} {}", route.method, route.path);
        // No credentials at all.
        let (status, answer) = call(&base, &As::default(), route).await;
        assert_eq!((status, answer["error"].as_str()), (401, Some("unauthenticated")), "{what}: {answer}");
        // A token HQ never issued, and one it revoked.
        for (token, code) in [
            ("khq_".to_owned() + &"0".repeat(64), "bad_token"),
            ("nonsense".into(), "bad_token"),
            (revoked.clone(), "token_revoked"),
        ] {
            let who = As { token: Some(token), ..As::default() };
            let (status, answer) = call(&base, &who, route).await;
            assert_eq!((status, answer["error"].as_str()), (401, Some(code)), "{what}: {answer}");
        }
        // A session cookie of no session.
        let who = As { cookie: Some("f".repeat(64)), ..As::default() };
        let (status, answer) = call(&base, &who, route).await;
        assert_eq!((status, answer["error"].as_str()), (401, Some("session_expired")), "{what}: {answer}");
        // A token with every permission but this route's.
        if let Guard::Needs(p) = route.guard {
            let token = lacking.iter().find(|(q, _)| *q == p).map(|(_, t)| t.clone());
            let (status, answer) = call(&base, &As { token, ..As::default() }, route).await;
            assert_eq!((status, answer["error"].as_str()), (403, Some("forbidden")), "{what}: {answer}");
            assert!(answer["message"].as_str().unwrap().contains(p.code()), "{what}: {answer}");
            // Sessions whose role lacks it, CSRF token and all.
            for who in [&read_only, &support] {
                let (role, permissions) = if who.cookie == read_only.cookie {
                    ("read_only", kassa_hq::auth::Role::ReadOnly.permissions())
                } else {
                    ("support", kassa_hq::auth::Role::Support.permissions())
                };
                if !permissions.contains(p) {
                    let (status, answer) = call(&base, who, route).await;
                    assert_eq!(
                        (status, answer["error"].as_str()),
                        (403, Some("forbidden")),
                        "{what} as {role}: {answer}"
                    );
                }
            }
        }
    }
    // Read-only writes nothing: every route that needs a write permission refuses it.
    let writes: Vec<&&Route> = guarded
        .iter()
        .filter(|r| matches!(r.guard, Guard::Needs(p) if p.code().ends_with(":write") || p == Permission::Operators))
        .collect();
    assert!(writes.len() >= 14, "{writes:?}");
    assert!(
        writes.iter().all(|r| r.method != "GET" || r.path == "/api/operators" || r.path == "/api/tokens"),
        "{writes:?}"
    );
    for route in &writes {
        let (status, answer) = call(&base, &read_only, route).await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (403, Some("forbidden")),
            "{} {}: {answer}",
            route.method,
            route.path
        );
    }
    assert_eq!(state(&hq), before, "a refused request changed something");

    // Every route of the table is a route of the router: with a right caller, none is
    // "no such route", "wrong method" or "no access rule".
    let everything = As { token: Some(admin.token.clone()), ..As::default() };
    for route in ROUTES {
        let (status, answer) = call(&base, &everything, route).await;
        let code = answer["error"].as_str().unwrap_or("");
        assert!(
            !matches!(code, "not_found" | "method_not_allowed" | "internal") && status != 401 && status != 403,
            "{} {}: {status} {answer}",
            route.method,
            route.path
        );
    }
    cancel.cancel();
    hq.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_shown_once_stored_hashed_and_refused_once_revoked_or_expired() {
    init_logging();
    let dir = tempfile::tempdir().unwrap();
    let cancel = CancellationToken::new();
    let (hq, admin, base) = start(dir.path(), cancel.clone()).await;
    let (status, issued) = admin
        .send(
            Method::POST,
            "/api/tokens",
            Some(&json!({ "name": "online shop", "scopes": ["catalog:read", "stock:read"], "days": 30 })),
        )
        .await;
    assert_eq!(status, 200, "{issued}");
    let token = issued["token"].as_str().unwrap().to_owned();
    assert_eq!(issued["scopes"], json!(["catalog:read", "stock:read"]));
    // Listed without the token; the database holds only its hash.
    let (_, listed) = admin.get("/api/tokens").await;
    assert!(!listed.to_string().contains(&token[8..]), "{listed}");
    let db_file = std::fs::read(dir.path().join("hq/hq.sqlite")).unwrap();
    assert!(!db_file.windows(token.len()).any(|w| w == token.as_bytes()));
    let shop = HqApi::with_token(&hq, token.clone());
    assert_eq!(shop.get("/api/catalog").await.0, 200);
    assert_eq!(shop.get("/api/stock/100001").await.0, 200);
    let (status, answer) = shop.get("/api/stores").await;
    assert_eq!((status, answer["error"].as_str()), (403, Some("forbidden")), "{answer}");
    // Thirty days on, it has expired.
    let later = kassa_hq::sync_server::NEARBY_INTERVAL.as_millis() as i64; // any positive offset
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let expired = kassa_hq::auth::token_caller(&hq.shared.db, &token, now + 31 * 24 * 3600 * 1000 + later).unwrap();
    assert_eq!(expired, Err(kassa_hq::auth::TokenRefused::Expired));
    // Revoked: refused at once; the audit log says who issued and revoked it.
    let (status, _) = admin.send(Method::DELETE, &format!("/api/tokens/{}", issued["id"]), None).await;
    assert_eq!(status, 200);
    let (status, answer) = shop.get("/api/catalog").await;
    assert_eq!((status, answer["error"].as_str()), (401, Some("token_revoked")), "{answer}");
    let (_, audit) = admin.get("/api/audit").await;
    let actions: Vec<&str> =
        audit["entries"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(&actions[..2], ["token.revoke", "token.issue"], "{audit}");
    assert_eq!(audit["entries"][1]["summary"]["name"], "online shop");
    // Bad requests for tokens change nothing.
    let before = state(&hq);
    for (body, code) in [
        (json!({ "name": "x", "scopes": ["catalog:rule"] }), "bad_scope"),
        (json!({ "name": "x", "scopes": [] }), "no_scopes"),
        (json!({ "name": "", "scopes": ["metrics"] }), "bad_name"),
        (json!({ "name": "x", "role": "root" }), "bad_role"),
        (json!({ "name": "x", "scopes": ["metrics"], "days": 0 }), "bad_days"),
    ] {
        let (status, answer) = admin.send(Method::POST, "/api/tokens", Some(&body)).await;
        assert_eq!((status, answer["error"].as_str()), (422, Some(code)), "{body}: {answer}");
    }
    assert_eq!(state(&hq), before);
    // `/metrics` is open by default.
    assert_eq!(reqwest::get(format!("{base}/metrics")).await.unwrap().status(), 200);
    cancel.cancel();
    hq.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_require_a_token_with_the_metrics_scope() {
    init_logging();
    let dir = tempfile::tempdir().unwrap();
    let cancel = CancellationToken::new();
    let any = "127.0.0.1:0".parse().unwrap();
    let config =
        kassa_hq::HqConfig { metrics_require_token: true, ..kassa_hq::HqConfig::new(dir.path().join("hq"), any, any) };
    let hq = kassa_hq::start(config, cancel.clone()).await.unwrap();
    let url = format!("http://{}/metrics", hq.http_addr);
    let client = reqwest::Client::new();
    assert_eq!(client.get(&url).send().await.unwrap().status(), 401);
    let catalog_only = hq.issue_token("bi", Permissions::of(&[Permission::CatalogRead]), None, "tests").await.unwrap();
    assert_eq!(client.get(&url).bearer_auth(&catalog_only).send().await.unwrap().status(), 403);
    let scraper = hq.issue_token("prometheus", Permissions::of(&[Permission::Metrics]), None, "tests").await.unwrap();
    assert_eq!(client.get(&url).bearer_auth(&scraper).send().await.unwrap().status(), 200);
    cancel.cancel();
    hq.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_sessions_need_csrf_on_writes_end_on_logout_and_lock_after_wrong_passwords() {
    init_logging();
    let dir = tempfile::tempdir().unwrap();
    let cancel = CancellationToken::new();
    let (hq, admin, base) = start(dir.path(), cancel.clone()).await;
    let password = admin_password(dir.path());
    let (status, body, cookie) = log_in(&base, "admin", &password).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["who"]["role"], "administrator");
    let who = As { token: None, cookie: cookie.clone(), csrf: body["csrf"].as_str().map(str::to_owned) };
    // The session id is stored hashed.
    let db_file = std::fs::read(dir.path().join("hq/hq.sqlite")).unwrap();
    let id = cookie.clone().unwrap();
    assert!(!db_file.windows(id.len()).any(|w| w == id.as_bytes()));

    // A read needs no CSRF token; the session says who is logged in (and the token again).
    let get_session = Route { method: "GET", path: "/api/session", guard: Guard::Signed };
    let (status, me) = call(&base, &As { csrf: None, ..who.clone() }, &get_session).await;
    assert_eq!((status, &me["who"]["login"], &me["csrf"]), (200, &json!("admin"), &json!(who.csrf)), "{me}");
    // A write without it (or with another session's) is refused, and nothing changes.
    let neighbours =
        Route { method: "PUT", path: "/api/stores/{store}/neighbours", guard: Guard::Needs(Permission::StoresWrite) };
    let before = state(&hq);
    for csrf in [None, Some("0".repeat(64))] {
        let (status, answer) = call(&base, &As { csrf, ..who.clone() }, &neighbours).await;
        assert_eq!((status, answer["error"].as_str()), (403, Some("csrf")), "{answer}");
    }
    assert_eq!(state(&hq), before);
    // With it, the write goes through and the audit log names the operator.
    let client = reqwest::Client::new();
    let put = client
        .put(format!("{base}/api/stores/1/neighbours"))
        .header("cookie", format!("kassa_hq_session={id}"))
        .header("x-csrf-token", who.csrf.clone().unwrap())
        .json(&json!([2, 3]))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);
    let (_, audit) = admin.get("/api/audit?limit=1").await;
    assert_eq!(
        (&audit["entries"][0]["actor"], &audit["entries"][0]["action"]),
        (&json!("admin"), &json!("neighbours.set"))
    );
    assert_eq!(audit["entries"][0]["summary"], json!({ "store": 1, "neighbours": [2, 3] }));

    // Logging out ends the session.
    let logout = Route { method: "POST", path: "/api/logout", guard: Guard::Signed };
    assert_eq!(call(&base, &who, &logout).await.0, 200);
    let (status, answer) = call(&base, &who, &get_session).await;
    assert_eq!((status, answer["error"].as_str()), (401, Some("session_expired")));

    // Wrong passwords lock this login from this address; the right one is refused while
    // locked; an unknown login is refused in the same words.
    let (_, body) = admin
        .send(Method::POST, "/api/operators", Some(&json!({ "login": "anna", "name": "Анна", "role": "merchandiser" })))
        .await;
    let anna_password = body["password"].as_str().unwrap().to_owned();
    let anna = session(&base, "anna", &anna_password).await;
    for left in (1..kassa_hq::auth::PASSWORD_ATTEMPTS_MAX).rev() {
        let (status, body, cookie) = log_in(&base, "anna", "wrong password!").await;
        assert_eq!((status, body["error"].as_str(), cookie), (401, Some("bad_credentials"), None), "{body}");
        assert!(body["message"].as_str().unwrap().contains(&format!("{left} attempt")), "{body}");
    }
    let (status, body, _) = log_in(&base, "anna", "wrong password!").await;
    assert_eq!((status, body["error"].as_str()), (429, Some("locked")), "{body}");
    let (status, body, _) = log_in(&base, "anna", &anna_password).await;
    assert_eq!((status, body["error"].as_str()), (429, Some("locked")), "{body}");
    let (status, unknown, _) = log_in(&base, "nobody", "wrong password!").await;
    assert_eq!((status, unknown["error"].as_str()), (401, Some("bad_credentials")));
    let (_, audit) = admin.get("/api/audit?limit=5").await;
    assert!(audit["entries"].as_array().unwrap().iter().any(|e| e["action"] == "login.locked"), "{audit}");

    // Disabling an operator ends their sessions at once.
    let get_catalog = Route { method: "GET", path: "/api/catalog", guard: Guard::Needs(Permission::CatalogRead) };
    assert_eq!(call(&base, &anna, &get_catalog).await.0, 200);
    let (status, _) = admin.send(Method::PATCH, "/api/operators/anna", Some(&json!({ "disabled": true }))).await;
    assert_eq!(status, 200);
    let (status, answer) = call(&base, &anna, &get_catalog).await;
    assert_eq!((status, answer["error"].as_str()), (401, Some("session_expired")));
    // The last administrator is not disabled.
    let (status, answer) = admin.send(Method::PATCH, "/api/operators/admin", Some(&json!({ "disabled": true }))).await;
    assert_eq!((status, answer["error"].as_str()), (409, Some("last_administrator")), "{answer}");
    cancel.cancel();
    hq.wait().await;
}

/// The demo catalog with one price changed, one item dropped and one added.
fn edited_catalog(csv: &str) -> String {
    let mut lines: Vec<String> = csv.lines().map(str::to_owned).collect();
    let milk = lines.iter().position(|l| l.starts_with("100001,")).unwrap();
    lines[milk] = lines[milk].replace(",10690,", ",11990,");
    let dropped = lines.iter().position(|l| l.starts_with("100002,")).unwrap();
    lines.remove(dropped);
    lines.push("999001,,Новый товар,Разное,5000,20,pcs,".into());
    lines.join("\n") + "\n"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_imports_cannot_wipe_the_chain() {
    init_logging();
    let dir = tempfile::tempdir().unwrap();
    let cancel = CancellationToken::new();
    let (hq, admin, _) = start(dir.path(), cancel.clone()).await;
    let csv = kassa_sim::stack::DEMO_CATALOG_CSV;
    let (_, summary) = admin.get("/api/catalog").await;
    let (v1, items) = (summary["version"].as_u64().unwrap(), summary["items"].as_u64().unwrap());

    // The same file again publishes nothing, and says so.
    let (status, same) = admin.send_text(Method::POST, "/api/catalog", csv).await;
    assert_eq!((status, &same["published"], same["version"].as_u64()), (200, &json!(false), Some(v1)), "{same}");
    assert!(same["message"].as_str().unwrap().contains("identical"), "{same}");

    // A one-line file would have removed every other item: refused, with the preview.
    let before = state(&hq);
    let one_line = format!(
        "{}\n100001,4650001209603,Молоко,Молочные продукты,10690,10,pcs,\n",
        kassa_protocol::catalog::CSV_HEADER
    );
    let (status, refused) = admin.send_text(Method::POST, "/api/catalog", &one_line).await;
    assert_eq!((status, refused["error"].as_str()), (409, Some("removals_unconfirmed")), "{refused}");
    assert_eq!(refused["preview"]["removed_count"].as_u64(), Some(items - 1), "{refused}");
    assert!(refused["message"].as_str().unwrap().contains("confirm_removals=true"), "{refused}");
    assert_eq!(state(&hq), before, "nothing published");
    assert_eq!(*hq.shared.catalog.borrow(), v1, "nothing offered to stores");

    // The preview of an edited file, without publishing.
    let edited = edited_catalog(csv);
    let (status, preview) = admin.send_text(Method::POST, "/api/catalog/preview", &edited).await;
    assert_eq!(status, 200, "{preview}");
    let p = &preview["preview"];
    assert_eq!(
        (p["added_count"].as_u64(), p["changed_count"].as_u64(), p["removed_count"].as_u64()),
        (Some(1), Some(1), Some(1)),
        "{p}"
    );
    assert_eq!(p["changed"][0]["fields"]["price_kopecks"], json!({ "from": 10690, "to": 11990 }));
    assert_eq!(p["removed"][0]["sku"], "100002");
    assert_eq!(state(&hq), before, "a preview publishes nothing");
    // Without confirmation it removes nothing; with it, the edit is published.
    let (status, _) = admin.send_text(Method::POST, "/api/catalog", &edited).await;
    assert_eq!(status, 409);
    assert_eq!(state(&hq), before);
    let (status, published) = admin.send_text(Method::POST, "/api/catalog?confirm_removals=true", &edited).await;
    assert_eq!((status, published["version"].as_u64()), (200, Some(v1 + 1)), "{published}");
    assert_eq!(hq.shared.db.catalog().unwrap().len() as u64, items);
    assert_eq!(*hq.shared.catalog.borrow(), v1 + 1, "offered to stores");

    // A bad file: every bad row with its line, nothing published.
    let bad = edited.replacen(",11990,", ",abc,", 1);
    let (status, refused) = admin.send_text(Method::POST, "/api/catalog", &bad).await;
    assert_eq!((status, refused["error"].as_str()), (422, Some("bad_rows")), "{refused}");
    let line = bad.lines().position(|l| l.starts_with("100001,")).unwrap() as u64 + 1;
    assert_eq!(refused["errors"][0]["line"].as_u64(), Some(line), "{refused}");

    // Edits by SKU: a price, a new item, a discontinued one, each a version of its own.
    let (status, changed) =
        admin.send(Method::PATCH, "/api/catalog/items/100001", Some(&json!({ "price_kopecks": 9990 }))).await;
    assert_eq!((status, changed["version"].as_u64()), (200, Some(v1 + 2)), "{changed}");
    let item = json!({ "sku": "999002", "name": "Ещё товар", "category": "Разное", "price_kopecks": 100, "vat_percent": "20", "unit": "pcs" });
    let (status, added) = admin.send(Method::POST, "/api/catalog/items", Some(&item)).await;
    assert_eq!((status, added["version"].as_u64()), (200, Some(v1 + 3)), "{added}");
    let (status, gone) = admin.send(Method::DELETE, "/api/catalog/items/999001", None).await;
    assert_eq!((status, gone["version"].as_u64()), (200, Some(v1 + 4)), "{gone}");
    // Refused edits change nothing.
    let before = state(&hq);
    for (method, path, body, want) in [
        (Method::PATCH, "/api/catalog/items/100001", json!({ "price_kopecks": 0 }), (422, "bad_price")),
        (Method::PATCH, "/api/catalog/items/100001", json!({}), (422, "nothing_to_change")),
        (Method::PATCH, "/api/catalog/items/nope", json!({ "name": "x" }), (404, "no_such_sku")),
        (Method::PATCH, "/api/catalog/items/bad%20sku", json!({ "name": "x" }), (400, "bad_sku")),
        (Method::POST, "/api/catalog/items", item.clone(), (409, "sku_exists")),
        (
            Method::POST,
            "/api/catalog/items",
            json!({ "sku": "999003", "gtin": "4650001209603", "name": "Дубль", "price_kopecks": 100, "vat_percent": "20", "unit": "pcs" }),
            (409, "gtin_taken"),
        ),
        (
            Method::POST,
            "/api/catalog/items",
            json!({ "sku": "999003", "name": "Весовой", "price_kopecks": 100, "vat_percent": "10", "unit": "kg" }),
            (422, "bad_item"),
        ),
        (Method::DELETE, "/api/catalog/items/999001", json!(null), (404, "no_such_sku")),
    ] {
        let (status, answer) = admin.send(method.clone(), path, Some(&body)).await;
        assert_eq!((status, answer["error"].as_str()), (want.0, Some(want.1)), "{method} {path} {body}: {answer}");
    }
    assert_eq!(state(&hq), before);
    // The audit log has each publication, newest first, with who and what.
    let (_, audit) = admin.get("/api/audit?limit=4").await;
    let actions: Vec<&str> =
        audit["entries"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["catalog.discontinue_item", "catalog.add_item", "catalog.change_item", "catalog.import"]);
    assert_eq!(
        audit["entries"][2]["summary"]["diff"]["prices"][0],
        json!({ "sku": "100001", "from_kopecks": 11990, "to_kopecks": 9990 })
    );
    assert!(audit["entries"][2]["actor"].as_str().unwrap().starts_with("token "), "{audit}");
    tokio::time::sleep(Duration::from_millis(10)).await;
    cancel.cancel();
    hq.wait().await;
}
