//! HQ's console in a real browser (headless Chromium over WebDriver) against the whole
//! stack: an administrator logs in, uploads a catalog with a bad line and sees the line
//! named, uploads the fixed file, sees the preview and publishes it, changes a price by
//! SKU — and a cashier at the store's page scans the item at its new price; the console's
//! audit log then shows who did it. And stock operations: an administrator announces a
//! delivery to store 1 in the console (after a refusal naming its line), the store hears
//! of it, the console lists it as awaited, the store receives it one piece short, and the
//! console shows it received with the difference.
//!
//! Skipped with a note when Chromium is missing, except under `CI=true` (see
//! `support/browser.rs`).

mod support;

use std::time::Duration;

use kassa_sim::stack::{self, StackOptions};
use kassa_tests::{eventually, init_logging, AgentApi};
use serde_json::json;
use support::browser::{launch, Page};

/// HQ's console at an office screen's width.
const VIEWPORT: (u64, u64) = (1280, 800);
const MILK_GTIN: &str = "4650001209603";
const MILK_LINE_START: &str = "100001,";
const BREAD_SKU: &str = "100081";
const BREAD_GTIN: &str = "4610012796745";
const MILK_SKU: &str = "100001";

/// The demo catalog with milk's price replaced by `price`; and the line it is on.
fn with_milk_price(price: &str) -> (String, usize) {
    let mut lines: Vec<String> = stack::DEMO_CATALOG_CSV.lines().map(str::to_owned).collect();
    let at = lines.iter().position(|l| l.starts_with(MILK_LINE_START)).expect("milk in the demo catalog");
    lines[at] = lines[at].replace(",10690,", &format!(",{price},"));
    (lines.join("\n") + "\n", at + 1)
}

async fn log_in_at_the_till(page: &Page) {
    page.type_into("#login-user", "kassir").await;
    page.type_into("#login-pin", "1111").await;
    page.click("#login-form button").await;
    page.wait_for_text("#who", "Анна Кассирова").await;
    page.wait_for_text("#shift-state", "Смена закрыта").await;
    page.click("#btn-shift").await;
    page.wait_for_text("#dlg-ok", "").await;
    page.type_into("#dlg-float", "0").await;
    page.click("#dlg-ok").await;
    page.wait_for_text("#shift-state", "Смена 1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_price_published_in_the_console_reaches_the_till_and_the_audit_log_says_who() {
    init_logging();
    let Some(page) = launch("hq-console", VIEWPORT).await else { return };
    let dir = tempfile::tempdir().unwrap();
    let stack = stack::start(StackOptions::ephemeral(dir.path())).await.unwrap();
    assert!(stack.catalog_ready, "the store must receive its catalog from HQ");
    let password = stack::initial_admin_password(dir.path()).expect("the first administrator's password");
    let console = format!("http://{}/", stack.hq.http_addr);

    // A wrong password is refused on the form; the right one opens the console.
    page.goto(&console).await;
    page.type_into("#login-user", "admin").await;
    page.type_into("#login-password", "not the password").await;
    page.click("#login-form button[type=submit]").await;
    page.wait_for_text("#login-error", "Неверный логин или пароль. Осталось попыток: 4.").await;
    page.type_into("#login-password", &password).await;
    page.click("#login-form button[type=submit]").await;
    page.wait_for_text("#who", "admin").await;
    page.wait_for_text("#stores-rows", "на связи").await;
    page.screenshot("stores").await;

    // A file with one bad line: the console names the line, and nothing is published.
    page.click("#tabs button[data-tab=catalog]").await;
    page.wait_for_text("#catalog-version", "версия 1").await;
    let files = tempfile::tempdir().unwrap();
    let (bad, line) = with_milk_price("11990руб");
    std::fs::write(files.path().join("bad.csv"), bad).unwrap();
    page.choose_file("#csv-file", &files.path().join("bad.csv")).await;
    let errors = page.wait_for_text("#catalog-errors", &format!("строка {line}:")).await;
    assert!(errors.contains("11990руб"), "{errors}");
    page.screenshot("bad-line").await;
    assert_eq!(stack.hq.shared.db.catalog_version().unwrap(), 1);

    // Fixed: the preview shows the one change; publishing makes version 2.
    let (fixed, _) = with_milk_price("11990");
    std::fs::write(files.path().join("fixed.csv"), fixed).unwrap();
    page.choose_file("#csv-file", &files.path().join("fixed.csv")).await;
    page.wait_for_text("#preview-counts", "изменено: 1, удалено: 0").await;
    page.wait_for_text("#preview-lists", "106,90 → 119,90").await;
    assert_eq!(page.el("#catalog-errors").await.text().await.unwrap(), "");
    page.screenshot("preview").await;
    page.click("#catalog-publish").await;
    page.wait_for_text("#message", "Опубликована версия каталога 2").await;

    // A price changed by SKU: version 3.
    page.type_into("#price-sku", BREAD_SKU).await;
    page.type_into("#price-new", "89,90").await;
    page.click("#price-save").await;
    page.wait_for_text("#message", "версия каталога 3").await;
    page.screenshot("price").await;

    // The store takes the new catalog, and its cashier sells at the new prices.
    let mut status = stack.agent.status.subscribe();
    let taken = tokio::time::timeout(Duration::from_secs(20), status.wait_for(|s| s.hq.catalog_version >= 3)).await;
    assert!(taken.is_ok_and(|r| r.is_ok()), "the store did not take catalog version 3");
    page.goto(&format!("http://{}/", stack.agent.http_addr)).await;
    log_in_at_the_till(&page).await;
    stack.scanner.scan(MILK_GTIN.as_bytes()).unwrap();
    page.wait_for_text("#basket", "119,90").await;
    stack.scanner.scan(BREAD_GTIN.as_bytes()).unwrap();
    page.wait_for_text("#basket", "89,90").await;
    page.wait("#total", "show 209,80", |t| t == "209,80").await;
    page.screenshot("till").await;

    // Back at the console (the session lives on): the audit log says who did what.
    page.goto(&console).await;
    page.wait_for_text("#who", "admin").await;
    page.click("#tabs button[data-tab=audit]").await;
    let audit = page.wait_for_text("#audit-rows", "catalog.change_item").await;
    assert!(audit.contains("catalog.import") && audit.contains("admin"), "{audit}");
    let first = page.el("#audit-rows tr").await.text().await.unwrap();
    assert!(first.contains("admin") && first.contains("catalog.change_item") && first.contains("8990"), "{first}");
    page.screenshot("audit").await;

    // In English too.
    page.click("#app button.lang").await;
    page.wait_for_text("#tabs", "Audit log").await;
    page.close().await;
    stack.stop().await;
}

/// Opens the console at `console` and logs in as `admin` with `password`.
async fn log_in_to_the_console(page: &Page, console: &str, password: &str) {
    page.goto(console).await;
    page.type_into("#login-user", "admin").await;
    page.type_into("#login-password", password).await;
    page.click("#login-form button[type=submit]").await;
    page.wait_for_text("#who", "admin").await;
}

/// Types `sku` and `quantity` into the last row of the delivery form.
async fn type_delivery_line(page: &Page, sku: &str, quantity: &str) {
    page.type_into("#delivery-lines .line:last-child .dl-sku", sku).await;
    page.type_into("#delivery-lines .line:last-child .dl-qty", quantity).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_announced_in_the_console_is_received_short_and_the_console_shows_the_difference() {
    init_logging();
    let Some(page) = launch("hq-console-stock", VIEWPORT).await else { return };
    let dir = tempfile::tempdir().unwrap();
    let stack = stack::start(StackOptions::ephemeral(dir.path())).await.unwrap();
    assert!(stack.catalog_ready, "the store must receive its catalog from HQ");
    let password = stack::initial_admin_password(dir.path()).expect("the first administrator's password");
    let console = format!("http://{}/", stack.hq.http_addr);
    log_in_to_the_console(&page, &console, &password).await;

    // The section opens on the store HQ knows, with the last 7 days' movements (none).
    page.click("#tabs button[data-tab=stockops]").await;
    eventually(Duration::from_secs(15), "the console to pick store 1", || async {
        (page.value("#ops-store").await == "1").then_some(())
    })
    .await;
    page.wait_for_text("#inbound-rows", "Нет данных").await;
    page.wait_for_text("#transfers-rows", "Нет данных").await;

    // A line of an unknown SKU: HQ's refusal names it, the row is marked, nothing is announced.
    type_delivery_line(&page, MILK_SKU, "20").await;
    page.click("#delivery-add").await;
    type_delivery_line(&page, "NOPE-1", "12").await;
    page.click("#delivery-send").await;
    let refusal = page.wait_for_text("#delivery-error", "Поставка не объявлена: line 2: unknown SKU NOPE-1").await;
    assert!(refusal.contains("nothing announced"), "{refusal}");
    page.wait_count("#delivery-lines .line.bad", 1).await;
    page.wait_present("#delivery-lines .line:nth-child(2).bad").await;
    page.screenshot("refused").await;
    let http = reqwest::Client::new();
    let (status, none) = stack.hq_get(&http, "/api/stores/1/inbound").await.unwrap();
    assert_eq!((status, none["documents"].clone()), (200, json!([])), "a refused delivery announces nothing");

    // Fixed: announced as delivery:1, listed as awaited.
    type_delivery_line(&page, BREAD_SKU, "12").await;
    page.click("#delivery-send").await;
    page.wait_for_text("#message", "Поставка delivery:1 объявлена магазину 1: строк 2.").await;
    assert_eq!(page.el("#delivery-error").await.text().await.unwrap(), "");
    let row = page.wait_for_text("#inbound-rows tr[data-source='delivery:1']", "ожидается").await;
    assert!(row.contains("Батон нарезной") && row.contains("× 12") && row.contains("поставка HQ"), "{row}");

    // The store heard of it.
    let store = AgentApi::login(&stack.agent, "kassir", "1111").await;
    let doc = eventually(Duration::from_secs(20), "store 1 to hear of delivery:1", || async {
        let (_, body) = store.get("/api/stock/inbound").await;
        body["documents"].as_array().and_then(|d| d.iter().find(|d| d["source"] == "delivery:1").cloned())
    })
    .await;
    let quantities: Vec<(String, i64)> = doc["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["sku"].as_str().unwrap().to_owned(), l["quantity"].as_i64().unwrap()))
        .collect();
    assert_eq!(quantities, [(MILK_SKU.to_owned(), 20), (BREAD_SKU.to_owned(), 12)]);
    page.click("#ops-refresh").await;
    page.wait_for_text("#inbound-rows tr[data-source='delivery:1']", "ожидается").await;
    page.screenshot("announced").await;

    // The store receives it one loaf short; once HQ has the receipt, the console shows it.
    let receive = json!({
        "source": "delivery:1",
        "lines": [{ "code": MILK_SKU, "quantity": 20 }, { "code": BREAD_SKU, "quantity": 11 }],
        "idempotency_key": "console-receive-1",
    });
    let (status, receipt) = store.post("/api/stock/receive", receive).await;
    assert_eq!(status, 200, "{receipt}");
    eventually(Duration::from_secs(20), "HQ to learn delivery:1 was received", || async {
        let (_, body) = stack.hq_get(&http, "/api/stores/1/inbound").await.unwrap();
        body["documents"][0]["received_seq"].as_u64().map(|_| ())
    })
    .await;
    page.click("#ops-refresh").await;
    let row = page.wait_for_text("#inbound-rows tr.differs[data-source='delivery:1']", "принят").await;
    assert!(row.contains("Батон нарезной 400 г «Уют» (100081): −1"), "{row}");
    assert!(!row.contains("ожидается"), "{row}");
    // Its movement, and the totals per reason and SKU over the last 7 days.
    let movements = page.wait_for_text("#movements-rows", "приёмка").await;
    assert!(movements.contains("delivery:1") && movements.contains("+11 (ожидалось 12)"), "{movements}");
    page.wait_for_text("#totals-head", "приёмка").await;
    let bread = page.wait_for_text(&format!("#totals-rows tr[data-sku='{BREAD_SKU}']"), "+11").await;
    assert!(bread.contains("Батон нарезной"), "{bread}");
    page.wait_for_text(&format!("#totals-rows tr[data-sku='{MILK_SKU}']"), "+20").await;
    page.screenshot("received").await;

    // Only the documents not yet received: none left.
    page.click("#inbound-open").await;
    page.wait_for_text("#inbound-rows", "Нет данных").await;

    // In English too.
    page.click("#app button.lang").await;
    page.wait_for_text("#tab-stockops h2", "Stock operations").await;
    page.wait_for_text("#movements-rows", "receipt").await;
    page.close().await;
    stack.stop().await;
}
