//! `/metrics` on both sides, through the whole stack: a scan on the virtual scanner and
//! a sale paid over the cashier API show in the agent's latency histograms, and the
//! batch that carries the sale to HQ in HQ's.

use std::time::Duration;

use kassa_sim::stack::{self, StackOptions};
use kassa_tests::{eventually, init_logging};
use serde_json::{json, Value};

const MILK_GTIN: &str = "4650001209603";

/// The value of the sample named exactly `name` (labels included), if there is one.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// `GET url` (with `token`, when given): the content type and the exposition.
async fn scrape(client: &reqwest::Client, url: &str, token: Option<&str>) -> (String, String) {
    let mut req = client.get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), 200, "{url}");
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_owned();
    (content_type, resp.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_sale_and_batch_apply_show_in_the_histograms() {
    init_logging();
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let stack = stack::start(StackOptions::ephemeral(dir.path())).await.unwrap();
    assert!(stack.catalog_ready, "the store must receive its catalog from HQ");
    let agent = format!("http://{}", stack.agent.http_addr);
    let hq = format!("http://{}", stack.hq.http_addr);
    let token = stack::cashier_token(&client, &agent).await.unwrap();

    // Before anything: the histograms are there, empty, in the Prometheus text format.
    let (content_type, text) = scrape(&client, &format!("{agent}/metrics"), Some(&token)).await;
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    assert!(text.contains("# TYPE kassa_scan_to_basket_seconds histogram\n"), "{text}");
    assert_eq!(sample(&text, "kassa_scan_to_basket_seconds_count"), Some(0.0), "{text}");
    assert_eq!(sample(&text, "kassa_sale_commit_seconds_count"), Some(0.0), "{text}");

    // A scan on the virtual scanner reaches the basket...
    stack.scanner.scan(MILK_GTIN.as_bytes()).unwrap();
    let text = eventually(Duration::from_secs(10), "the scan in the histogram", || {
        let (client, agent, token) = (client.clone(), agent.clone(), token.clone());
        async move {
            let (_, text) = scrape(&client, &format!("{agent}/metrics"), Some(&token)).await;
            (sample(&text, "kassa_scan_to_basket_seconds_count")? >= 1.0).then_some(text)
        }
    })
    .await;
    assert!(sample(&text, "kassa_scan_to_basket_seconds_bucket{le=\"1\"}").is_some(), "up to a second:\n{text}");

    // ...and a sale paid for it is committed and timed.
    let pay = json!({ "idempotency_key": "metrics-pay-1", "tenders": [{ "kind": "cash", "amount_kopecks": 20000 }] });
    let paid: Value = client
        .post(format!("{agent}/api/pay"))
        .bearer_auth(&token)
        .json(&pay)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(paid["replayed"], false, "{paid}");
    let (_, text) = scrape(&client, &format!("{agent}/metrics"), Some(&token)).await;
    assert!(sample(&text, "kassa_sale_commit_seconds_count").unwrap() >= 1.0, "{text}");
    assert!(sample(&text, "kassa_sale_commit_seconds_sum").unwrap() > 0.0, "{text}");
    assert_eq!(sample(&text, "kassa_sales"), Some(1.0), "{text}");
    // A retried payment answers the same sale without committing again: not timed again.
    let count = sample(&text, "kassa_sale_commit_seconds_count").unwrap();
    let again: Value = client
        .post(format!("{agent}/api/pay"))
        .bearer_auth(&token)
        .json(&pay)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["replayed"], true, "{again}");
    let (_, text) = scrape(&client, &format!("{agent}/metrics"), Some(&token)).await;
    assert_eq!(sample(&text, "kassa_sale_commit_seconds_count"), Some(count), "{text}");

    // HQ applies the batch carrying the sale, and times it.
    let text = eventually(Duration::from_secs(10), "HQ to apply the sale's batch", || {
        let (client, hq) = (client.clone(), hq.clone());
        async move {
            let (_, text) = scrape(&client, &format!("{hq}/metrics"), None).await;
            let backlog = sample(&text, "kassa_hq_store_backlog_entries{store=\"1\"}")?;
            (sample(&text, "kassa_hq_batch_apply_seconds_count")? >= 1.0 && backlog == 0.0).then_some(text)
        }
    })
    .await;
    let batches = sample(&text, "kassa_hq_applied_batches_total").unwrap();
    assert_eq!(sample(&text, "kassa_hq_batch_apply_seconds_count"), Some(batches), "one observation a batch:\n{text}");
    assert!(sample(&text, "kassa_hq_applied_entries_total").unwrap() >= 1.0, "{text}");
    let connected = format!("kassa_hq_connected_stores{{protocol=\"{}\"}}", kassa_protocol::wire::PROTOCOL_VERSION);
    assert_eq!(sample(&text, &connected), Some(1.0), "{text}");

    stack.stop().await;
}
