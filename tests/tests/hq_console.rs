//! HQ's console in a real browser (headless Chromium over WebDriver) against the whole
//! stack: an administrator logs in, uploads a catalog with a bad line and sees the line
//! named, uploads the fixed file, sees the preview and publishes it, changes a price by
//! SKU — and a cashier at the store's page scans the item at its new price; the console's
//! audit log then shows who did it.
//!
//! Skipped with a note when Chromium is missing, except under `CI=true` (see
//! `support/browser.rs`).

mod support;

use std::time::Duration;

use kassa_sim::stack::{self, StackOptions};
use kassa_tests::init_logging;
use support::browser::{launch, Page};

/// HQ's console at an office screen's width.
const VIEWPORT: (u64, u64) = (1280, 800);
const MILK_GTIN: &str = "4650001209603";
const MILK_LINE_START: &str = "100001,";
const BREAD_SKU: &str = "100081";
const BREAD_GTIN: &str = "4610012796745";

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
