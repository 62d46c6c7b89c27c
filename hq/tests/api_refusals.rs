//! HQ's HTTP API refuses what it must, through the real server on loopback: an empty
//! or bad catalog and loyalty rules outside their bounds are refused and nothing is
//! published; every refusal, the framework's too, is `{"error": code, "message": …}`.
//!
//! Requests are written by hand over TCP so that bodies, content types and methods can
//! be anything at all.

use std::net::SocketAddr;

use kassa_protocol::catalog::CSV_HEADER;
use kassa_protocol::loyalty::rules::{EARN_KOPECKS_PER_POINT_MAX, EXCLUDED_CATEGORIES_MAX, POINT_VALUE_KOPECKS_MAX};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

const CATALOG: &str = "sku,gtin,name,category,price_kopecks,vat_percent,unit,plu\n\
    100001,4650001209603,\"Молоко 3,2% 1 л\",Молочные продукты,10690,10,pcs,\n\
    100477,,\"Яблоки, кг\",Весовой товар,18900,10,kg,00001\n";

struct Hq {
    _dir: tempfile::TempDir,
    hq: kassa_hq::RunningHq,
    cancel: CancellationToken,
    /// An all-scopes API token, sent with every request.
    token: String,
}

impl Hq {
    /// HQ on loopback ports chosen by the OS, with a two-item catalog (version 1).
    async fn start() -> Hq {
        let dir = tempfile::tempdir().unwrap();
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let cancel = CancellationToken::new();
        let config = kassa_hq::HqConfig::new(dir.path().join("hq"), any, any);
        let hq = kassa_hq::start(config, cancel.clone()).await.unwrap();
        assert_eq!(kassa_hq::import_catalog(&hq.shared, CATALOG).await.unwrap(), 1);
        let token = hq.issue_token("tests", kassa_hq::auth::Permissions::ALL, None, "tests").await.unwrap();
        Hq { _dir: dir, hq, cancel, token }
    }

    async fn stop(self) {
        self.cancel.cancel();
        self.hq.wait().await;
    }

    /// One request on its own connection: the status and the body as JSON (`Null` if it
    /// is not JSON). Asserts the answer says it is JSON.
    async fn send(&self, method: &str, path: &str, content_type: Option<&str>, body: &[u8]) -> (u16, Value) {
        let mut conn = tokio::net::TcpStream::connect(self.hq.http_addr).await.unwrap();
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: hq\r\nConnection: close\r\nAuthorization: Bearer {}\r\nContent-Length: {}\r\n",
            self.token,
            body.len()
        );
        if let Some(t) = content_type {
            head.push_str(&format!("Content-Type: {t}\r\n"));
        }
        head.push_str("\r\n");
        conn.write_all(head.as_bytes()).await.unwrap();
        conn.write_all(body).await.unwrap();
        let mut answer = Vec::new();
        conn.read_to_end(&mut answer).await.unwrap();
        let answer = String::from_utf8(answer).unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").expect("a whole HTTP answer");
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        let lower = head.to_ascii_lowercase();
        assert!(lower.contains("content-type: application/json"), "{method} {path}: {head}");
        assert!(!lower.contains("transfer-encoding"), "{method} {path}: {head}");
        (status, serde_json::from_str(body).unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> Value {
        let (status, body) = self.send("GET", path, None, b"").await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    /// Asserts a refusal: its status, and the documented shape with its code.
    async fn refused(&self, method: &str, path: &str, content_type: Option<&str>, body: &[u8], want: (u16, &str)) {
        let (status, answer) = self.send(method, path, content_type, body).await;
        assert_refusal(&answer, want.1, &format!("{method} {path}"));
        assert_eq!(status, want.0, "{method} {path}: {answer}");
    }
}

fn assert_refusal(answer: &Value, code: &str, what: &str) {
    let object = answer.as_object().unwrap_or_else(|| panic!("{what}: not a JSON object: {answer}"));
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    // A catalog's bad rows are also listed, each with its line, for programs.
    let want: &[&str] = if code == "bad_rows" { &["error", "errors", "message"] } else { &["error", "message"] };
    assert_eq!(keys, want, "{what}: {answer}");
    assert_eq!(answer["error"], code, "{what}: {answer}");
    assert!(answer["message"].as_str().is_some_and(|m| !m.trim().is_empty()), "{what}: {answer}");
}

#[tokio::test]
async fn an_empty_or_bad_catalog_is_refused_and_nothing_published() {
    let hq = Hq::start().await;
    let before = hq.get("/api/catalog").await;
    assert_eq!((before["version"].as_u64(), before["items"].as_u64()), (Some(1), Some(2)));

    let hq_ref = &hq;
    let post = |csv: String| async move { hq_ref.send("POST", "/api/catalog", Some("text/csv"), csv.as_bytes()).await };
    for (csv, code) in [
        (CSV_HEADER.to_owned(), "empty_catalog"),
        (format!("{CSV_HEADER}\r\n"), "empty_catalog"),
        (format!("\u{feff}{CSV_HEADER}\n\n"), "empty_catalog"),
        (format!("{CSV_HEADER}\n1,,Хлеб,Х,0,10,pcs,\n2,,Сыр,М,abc,10,pcs,\n"), "bad_rows"),
        (format!("{CSV_HEADER}\n1,,Хлеб,Х,100000001,10,pcs,\n"), "bad_rows"),
        (format!("{CSV_HEADER}\n1,,Хлеб,Х,100,10,pcs,\n1,,Сыр,М,100,10,pcs,\n"), "bad_rows"),
        (format!("{CSV_HEADER}\n1,4650001209603,Хлеб,Х,100,10,pcs,\n2,4650001209603,Сыр,М,100,10,pcs,\n"), "bad_rows"),
        (format!("{CSV_HEADER}\n1,,Хлеб,Х,100,10,kg,5\n2,,Сыр,М,100,10,kg,00005\n"), "bad_rows"),
        (String::new(), "bad_header"),
        ("name,price\nХлеб,100\n".into(), "bad_header"),
    ] {
        let (status, answer) = post(csv.clone()).await;
        assert_refusal(&answer, code, &format!("catalog {csv:?}"));
        assert_eq!(status, 422, "{answer}");
        assert!(answer["message"].as_str().unwrap().contains("nothing published"), "{answer}");
    }
    let (_, empty) = post(CSV_HEADER.into()).await;
    assert!(empty["message"].as_str().unwrap().contains("no items"), "{empty}");
    let (_, dup) = post(format!("{CSV_HEADER}\n1,,Хлеб,Х,100,10,pcs,\n1,,Сыр,М,100,10,pcs,\n")).await;
    assert!(dup["message"].as_str().unwrap().contains("line 3: SKU 1 appears twice"), "{dup}");

    // Nothing was published: the same version, the same items, nothing offered to stores.
    assert_eq!(hq.get("/api/catalog").await, before);
    assert_eq!(*hq.hq.shared.catalog.borrow(), 1);
    assert_eq!(hq.hq.shared.db.catalog().unwrap().len(), 2);
    // The bad rows are listed with their lines.
    assert_eq!(dup["errors"], serde_json::json!([{ "line": 3, "reason": "SKU 1 appears twice" }]), "{dup}");
    // The same catalog again publishes nothing; a changed one goes through.
    let (status, answer) = post(CATALOG.into()).await;
    assert_eq!((status, answer["version"].as_u64(), &answer["published"]), (200, Some(1), &false.into()), "{answer}");
    let (status, answer) = post(CATALOG.replace("10690", "11990")).await;
    assert_eq!((status, answer["version"].as_u64()), (200, Some(2)), "{answer}");
    hq.stop().await;
}

fn rules_json(earn: i64, share: i64, value: i64, excluded: &[String]) -> String {
    serde_json::json!({
        "earn_kopecks_per_point": earn,
        "excluded_categories": excluded,
        "max_share_percent": share,
        "point_value_kopecks": value,
    })
    .to_string()
}

#[tokio::test]
async fn loyalty_rules_outside_their_bounds_are_refused() {
    let hq = Hq::start().await;
    let none: &[String] = &[];
    let twice = ["Табак".to_owned(), "Табак".to_owned()];
    let many: Vec<String> = (0..=EXCLUDED_CATEGORIES_MAX).map(|i| format!("c{i}")).collect();
    let long = ["К".repeat(129)];
    for (body, want) in [
        // 100 % cashback: a point worth what earns it.
        (rules_json(100, 50, 100, none), (422, "cashback")),
        // 200 %: named by the publishing bound, not the arithmetic's 100 %.
        (rules_json(50, 50, 100, none), (422, "cashback")),
        // 30.03 %: 1 point per 3.33 RUB, worth 1 RUB.
        (rules_json(333, 50, 100, none), (422, "cashback")),
        (rules_json(0, 50, 1, none), (422, "earn_rate")),
        (rules_json(-1000, 50, 1, none), (422, "earn_rate")),
        (rules_json(EARN_KOPECKS_PER_POINT_MAX + 1, 50, 100, none), (422, "earn_rate")),
        (rules_json(1000, 50, 0, none), (422, "point_value")),
        (rules_json(1000, 50, 2000, none), (422, "point_value")),
        (rules_json(EARN_KOPECKS_PER_POINT_MAX, 50, POINT_VALUE_KOPECKS_MAX + 1, none), (422, "point_value")),
        (rules_json(1000, 101, 100, none), (422, "share")),
        // Not even a share: not a u8.
        (rules_json(1000, 1000, 100, none), (422, "bad_json")),
        (rules_json(1000, -1, 100, none), (422, "bad_json")),
        (rules_json(1000, 50, 100, &twice), (422, "excluded_categories")),
        (rules_json(1000, 50, 100, &many), (422, "excluded_categories")),
        (rules_json(1000, 50, 100, &long), (422, "excluded_categories")),
        (r#"{"earn_kopecks_per_point":1000}"#.into(), (422, "bad_json")),
        ("{".into(), (400, "bad_json")),
        ("".into(), (400, "bad_json")),
    ] {
        hq.refused("PUT", "/api/loyalty/rules", Some("application/json"), body.as_bytes(), want).await;
    }
    let (_, answer) = hq.send("PUT", "/api/loyalty/rules", None, rules_json(100, 50, 100, none).as_bytes()).await;
    let message = answer["message"].as_str().unwrap();
    assert!(message.contains("30 %") && message.contains("334") && message.contains("nothing published"), "{message}");
    // Nothing was published.
    assert_eq!(hq.get("/api/loyalty/rules").await["version"], 0);
    assert_eq!(hq.hq.shared.db.rules().unwrap().0, 0);
    // At the bounds: exactly 30 %, a point worth 10 RUB.
    for (n, body) in
        [rules_json(1000, 100, 300, none), rules_json(3334, 0, POINT_VALUE_KOPECKS_MAX, none)].iter().enumerate()
    {
        let (status, answer) = hq.send("PUT", "/api/loyalty/rules", None, body.as_bytes()).await;
        assert_eq!((status, answer["version"].as_u64()), (200, Some(n as u64 + 1)), "{answer}");
    }
    hq.stop().await;
}

#[tokio::test]
async fn framework_refusals_are_json_with_a_code_and_a_message() {
    let hq = Hq::start().await;
    let json = Some("application/json");
    let too_large = vec![b' '; kassa_hq::api::JSON_BODY_BYTES_MAX + 1];
    for (method, path, content_type, body, want) in [
        // Bad JSON, through axum's extractor and through HQ's own parsing.
        ("PUT", "/api/stores/1/neighbours", json, &b"[1,"[..], (400, "bad_json")),
        ("PUT", "/api/stores/1/neighbours", json, b"{\"a\":1}", (422, "bad_json")),
        ("PUT", "/api/stores/1/neighbours", json, b"[-1]", (422, "bad_json")),
        ("PUT", "/api/loyalty/rules", json, b"not json", (400, "bad_json")),
        // Wrong or missing content type.
        ("PUT", "/api/stores/1/neighbours", Some("text/plain"), b"[2]", (415, "content_type")),
        ("PUT", "/api/stores/1/neighbours", None, b"[2]", (415, "content_type")),
        // Bodies too large.
        ("PUT", "/api/loyalty/rules", json, &too_large[..], (413, "too_large")),
        ("PUT", "/api/stores/1/neighbours", json, &too_large[..], (413, "too_large")),
        // Not UTF-8.
        ("POST", "/api/catalog", Some("text/csv"), b"sku\xff\xfe", (400, "bad_body")),
        // Unknown routes and wrong methods.
        ("GET", "/api/nope", None, b"", (404, "not_found")),
        ("GET", "/nope.html", None, b"", (404, "not_found")),
        ("POST", "/api/stores/1/sales/2", None, b"", (404, "not_found")),
        ("DELETE", "/api/catalog", None, b"", (405, "method_not_allowed")),
        ("POST", "/api/stores", json, b"{}", (405, "method_not_allowed")),
        ("PUT", "/api/stock/100001", None, b"", (405, "method_not_allowed")),
        // Path and query parameters that do not parse.
        ("GET", "/api/stores/abc/sales", None, b"", (400, "bad_path")),
        ("GET", "/api/stores/-1/neighbours", None, b"", (400, "bad_path")),
        ("GET", "/api/stores/4294967296/neighbours", None, b"", (400, "bad_path")),
        ("PUT", "/api/stores/x/neighbours", json, b"[2]", (400, "bad_path")),
        ("GET", "/api/stores/1/sales?limit=lots", None, b"", (400, "bad_query")),
        ("GET", "/api/stores/1/sales?after=-5", None, b"", (400, "bad_query")),
        // HQ's own refusals, in the same shape.
        ("GET", "/api/stock/not%20a%20sku", None, b"", (400, "bad_sku")),
        ("GET", "/api/loyalty/12", None, b"", (400, "bad_card")),
        ("GET", "/api/loyalty/123456789", None, b"", (404, "no_such_customer")),
        ("PUT", "/api/stores/1/neighbours", json, b"[2,3,4,5,6,7,8,9,10]", (400, "too_many_neighbours")),
    ] {
        hq.refused(method, path, content_type, body, want).await;
    }
    // A 405 still says which methods the route takes.
    let mut conn = tokio::net::TcpStream::connect(hq.hq.http_addr).await.unwrap();
    conn.write_all(b"DELETE /api/catalog HTTP/1.1\r\nHost: hq\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).await.unwrap();
    assert!(answer.to_ascii_lowercase().contains("allow: get,head,post"), "{answer}");
    // And what is well-formed still works.
    let (status, answer) = hq.send("PUT", "/api/stores/1/neighbours", json, b"[2, 3]").await;
    assert_eq!((status, &answer["neighbours"]), (200, &serde_json::json!([2, 3])), "{answer}");
    assert_eq!(hq.get("/api/stores/1/sales?limit=5&after=0").await["sales"], serde_json::json!([]));
    hq.stop().await;
}
