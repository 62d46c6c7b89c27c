//! Unplugging the virtual scanner under the real agent: the agent reports the scanner
//! in error, reopens the same path by itself once the cable is back, reports it idle
//! again, and the next scan lands in the basket.

use std::time::Duration;

use kassa_agent::status::{DeviceState, Status};
use kassa_sim::scanner::ScannerError;
use kassa_sim::stack::{self, StackOptions};
use kassa_tests::{eventually, init_logging};
use serde_json::Value;

const MILK_GTIN: &[u8] = b"4650001209603";
const APPLES_1235_G: &[u8] = b"2200001012356";

async fn wait_for_scanner(status: &mut tokio::sync::watch::Receiver<Status>, state: DeviceState, timeout: Duration) {
    let waited =
        tokio::time::timeout(timeout, status.wait_for(|s| s.scanner.state == state)).await.is_ok_and(|r| r.is_ok());
    let now = status.borrow().scanner.clone();
    assert!(waited, "the agent's scanner did not become {state:?} in {timeout:?}: {now:?}");
}

async fn basket_skus(client: &reqwest::Client, agent: &str, token: &str) -> Vec<String> {
    let basket: Value =
        client.get(format!("{agent}/api/basket")).bearer_auth(token).send().await.unwrap().json().await.unwrap();
    basket["basket"]["lines"].as_array().unwrap().iter().map(|l| l["sku"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_survives_scanner_unplug_and_replug() {
    init_logging();
    let dir = tempfile::tempdir().unwrap();
    let stack = stack::start(StackOptions::ephemeral(dir.path())).await.unwrap();
    assert!(stack.catalog_ready);
    let client = reqwest::Client::new();
    let agent = format!("http://{}", stack.agent.http_addr);
    let token = stack::cashier_token(&client, &agent).await.unwrap();
    let mut status = stack.agent.status.subscribe();
    let path = stack.scanner.path();

    wait_for_scanner(&mut status, DeviceState::Idle, Duration::from_secs(10)).await;
    stack.scanner.scan(MILK_GTIN).unwrap();
    eventually(Duration::from_secs(10), "milk in the basket", || async {
        (basket_skus(&client, &agent, &token).await == ["100001"]).then_some(())
    })
    .await;

    assert!(stack.scanner.unplug());
    wait_for_scanner(&mut status, DeviceState::Error, Duration::from_secs(10)).await;
    assert!(status.borrow().scanner.detail.is_some(), "the agent says why");
    assert!(matches!(stack.scanner.scan(APPLES_1235_G), Err(ScannerError::Unplugged)));

    assert!(stack.scanner.replug().unwrap());
    assert_eq!(stack.scanner.path(), path, "the same stable path");
    // The agent reopens with a backoff capped at 5 s.
    wait_for_scanner(&mut status, DeviceState::Idle, Duration::from_secs(20)).await;
    stack.scanner.scan(APPLES_1235_G).unwrap();
    eventually(Duration::from_secs(10), "apples after the milk", || async {
        let skus = basket_skus(&client, &agent, &token).await;
        (skus.len() == 2).then_some(skus)
    })
    .await;
    let skus = basket_skus(&client, &agent, &token).await;
    assert_eq!(skus[0], "100001");
    assert_ne!(skus[1], "100001", "the scan after replug is a new line");
    assert_eq!(status.borrow().scanner.count, 2, "two frames read: none lost, none doubled");

    stack.stop().await;
}
