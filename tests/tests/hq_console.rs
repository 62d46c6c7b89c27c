//! HQ's console in a real browser (headless Chromium over WebDriver) against the whole
//! stack: an administrator logs in, uploads a catalog with a bad line and sees the line
//! named, uploads the fixed file, sees the preview and publishes it, changes a price by
//! SKU — and a cashier at the store's page scans the item at its new price; the console's
//! audit log then shows who did it. And stock operations: an administrator announces a
//! delivery to store 1 in the console (after a refusal naming its line), the store hears
//! of it, the console lists it as awaited, the store receives it one piece short, and the
//! console shows it received with the difference. And on a portrait tablet (800 px): each
//! store's catalog version on the stores tab and which stores have the version in force;
//! a price schedule published after a refusal naming its bad change; and no page wider
//! than the screen on any tab. And returns anywhere: the limits on offline returns set
//! in the console, a line two stores returned beyond what was sold listed with both
//! returns, and a customer's purchases at every store.
//!
//! Skipped with a note when Chromium is missing, except under `CI=true` (see
//! `support/browser.rs`).

mod support;

use std::time::Duration;

use kassa_protocol::price_schedule::format_local;
use kassa_protocol::promotions::LocalTime;
use kassa_sim::stack::{self, StackOptions};
use kassa_tests::{eventually, init_logging, AgentApi, HqApi};
use serde_json::{json, Value};
use support::browser::{launch, Page};
use tokio_util::sync::CancellationToken;

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

/// HQ's console on a tablet held upright.
const TABLET: (u64, u64) = (800, 1280);
/// Every tab an administrator sees.
const TABS: [&str; 13] = [
    "stores",
    "stock",
    "stockops",
    "sales",
    "parked",
    "returns",
    "customers",
    "catalog",
    "loyalty",
    "promotions",
    "audit",
    "operators",
    "tokens",
];

/// Fails (with a screenshot) if the page is wider than the window: it must never scroll
/// sideways, only tables inside their box.
async fn assert_no_sideways_scroll(page: &Page, at: &str) {
    let sizes = page.js("return [document.documentElement.scrollWidth, window.innerWidth]").await;
    let (width, window) = (sizes[0].as_u64().unwrap(), sizes[1].as_u64().unwrap());
    if width > window {
        page.fail(format!("{at}: the page is {width} px wide in a window of {window} px")).await;
    }
}

/// Fills row `n` of the price schedule. A date-and-time field is set as its picker sets
/// it (what typing into it takes depends on the browser's locale).
async fn type_change(page: &Page, n: usize, sku: &str, at: &str, price: &str) {
    let row = format!("#schedule-rows tr:nth-child({n})");
    page.type_into(&format!("{row} .sc-sku"), sku).await;
    let set = "const e = document.querySelector(arguments[0]); e.value = arguments[1]; \
               e.dispatchEvent(new Event('input', { bubbles: true })); \
               e.dispatchEvent(new Event('change', { bubbles: true })); return e.value;";
    let css = format!("{row} .sc-at");
    match page.client.execute(set, vec![json!(css), json!(at)]).await {
        Ok(v) if v == at => {}
        other => page.fail(format!("cannot set {css} to {at}: {other:?}")).await,
    }
    page.type_into(&format!("{row} .sc-price"), price).await;
}

/// The schedule's rows as the console shows them: SKU, item name, local time, price.
async fn schedule_rows(page: &Page) -> Value {
    page.js(
        "return [...document.querySelectorAll('#schedule-rows tr')].map((r) => [r.querySelector('.sc-sku').value, \
         r.querySelector('.sc-name').textContent, r.querySelector('.sc-at').value, r.querySelector('.sc-price').value])",
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_tablet_the_console_schedules_prices_and_shows_which_stores_have_the_catalog() {
    init_logging();
    let Some(page) = launch("hq-console-tablet", TABLET).await else { return };
    let dir = tempfile::tempdir().unwrap();
    let stack = stack::start(StackOptions::ephemeral(dir.path())).await.unwrap();
    assert!(stack.catalog_ready, "the store must receive its catalog from HQ");
    let password = stack::initial_admin_password(dir.path()).expect("the first administrator's password");
    let console = format!("http://{}/", stack.hq.http_addr);
    let hq = HqApi::with_token(&stack.hq, stack.hq_token.clone());
    log_in_to_the_console(&page, &console, &password).await;

    // The stores tab: the demo store holds catalog version 1 (as it said when it
    // connected, or as HQ then handed it), and is not flagged.
    page.wait_for_text("#stores-rows tr[data-store='1']", "на связи").await;
    let version = page
        .wait("#stores-rows tr[data-store='1'] td.catalog", "show catalog version 1", |t| {
            t == "1" || t == "0 (отправлена 1)"
        })
        .await;
    assert!(!version.contains("нет версии"), "{version}");
    page.wait_for_text("#stores-catalog", "Версию 1 получили: 1 из 1 магазина").await;
    page.screenshot("stores").await;

    // No tab makes the page scroll sideways at 800 px: wide tables scroll in their box.
    for tab in TABS {
        page.click(&format!("#tabs button[data-tab={tab}]")).await;
        page.wait_present(&format!("#tab-{tab}:not(.hidden)")).await;
        tokio::time::sleep(Duration::from_millis(400)).await; // its rows, once loaded
        assert_no_sideways_scroll(&page, &format!("the {tab} tab")).await;
    }

    // The catalog tab: the version, and which stores have received it.
    page.click("#tabs button[data-tab=catalog]").await;
    page.wait_for_text("#catalog-version", "версия 1").await;
    page.wait_for_text("#catalog-receipt", "Версию 1 получили: 1 из 1 магазина").await;
    page.wait_for_text("#schedule", "по местному времени каждого магазина").await;
    page.wait_for_text("#schedule-empty", "Ничего не запланировано.").await;

    // A schedule whose second change is of an unknown SKU: HQ's refusal as it words it,
    // that row marked, nothing published.
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis();
    let later = format_local(LocalTime::from_unix_ms(i64::try_from(now_ms).unwrap() + 30 * 86_400_000, 0));
    page.click("#schedule-add").await;
    type_change(&page, 1, MILK_SKU, &later, "99,90").await;
    page.click("#schedule-add").await;
    type_change(&page, 2, "999999", &later, "10").await;
    page.click("#schedule-publish").await;
    page.wait_for_text(
        "#schedule-error",
        "Расписание не опубликовано: change 2: the catalog has no SKU 999999; nothing published",
    )
    .await;
    page.wait_count("#schedule-rows tr.bad", 1).await;
    page.wait_present("#schedule-rows tr:nth-child(2).bad").await;
    page.screenshot("schedule-refused").await;
    let (status, none) = hq.get("/api/catalog/schedule").await;
    assert_eq!((status, none["version"].as_u64()), (200, Some(0)), "a refused schedule publishes nothing: {none}");

    // Fixed: published as version 1, and listed with the items' names.
    page.type_into("#schedule-rows tr:nth-child(2) .sc-sku", BREAD_SKU).await;
    page.wait_count("#schedule-rows tr.bad", 0).await;
    page.click("#schedule-rows tr:nth-child(2) .sc-price").await;
    page.wait_for_text("#schedule-rows tr:nth-child(2) .sc-name", "Батон нарезной").await;
    page.click("#schedule-publish").await;
    page.wait_for_text("#schedule-status", "Опубликована версия расписания цен 1: изменений 2.").await;
    assert_eq!(page.el("#schedule-error").await.text().await.unwrap(), "");
    let listed = json!([
        [MILK_SKU, "Молоко 3,2% 1 л «Ладога»", later, "99,90"],
        [BREAD_SKU, "Батон нарезной 400 г «Уют»", later, "10,00"],
    ]);
    assert_eq!(schedule_rows(&page).await, listed);
    page.screenshot("schedule-published").await;
    assert_no_sideways_scroll(&page, "the catalog tab with a schedule").await;

    // HQ has it.
    let (status, schedule) = hq.get("/api/catalog/schedule").await;
    assert_eq!(status, 200, "{schedule}");
    assert!(schedule["version"].as_u64().is_some_and(|v| v >= 1), "{schedule}");
    let changes = schedule["changes"].as_array().expect("changes");
    assert!(changes.contains(&json!({ "sku": MILK_SKU, "at": later, "price_kopecks": 9990 })), "{schedule}");
    assert!(changes.contains(&json!({ "sku": BREAD_SKU, "at": later, "price_kopecks": 1000 })), "{schedule}");

    // Opened afresh, the console lists the schedule as HQ keeps it.
    page.goto(&format!("{console}#catalog")).await;
    page.wait_for_text("#schedule-version", "версия расписания 1").await;
    page.wait_count("#schedule-rows tr", 2).await;
    let mut rows: Vec<Value> = schedule_rows(&page).await.as_array().unwrap().clone();
    rows.sort_by_key(|r| r[0].as_str().unwrap().to_owned());
    assert_eq!(Value::Array(rows), listed);

    // A second store took version 1 and went offline: a price published now (version 2)
    // reaches store 1 only, and the console names store 2 as without it.
    let second_dir = tempfile::tempdir().unwrap();
    let second_cancel = CancellationToken::new();
    let second = kassa_tests::start_store_speaking(&stack.hq, second_dir.path(), 2, None, second_cancel.clone()).await;
    let store_2 = || async {
        let (_, body) = hq.get("/api/stores").await;
        body["stores"].as_array().and_then(|s| s.iter().find(|s| s["store"] == 2).cloned())
    };
    eventually(Duration::from_secs(20), "HQ to hand store 2 catalog version 1", || async {
        store_2().await.filter(|s| s["catalog_sent"] == 1 && s["connected"] == true).map(|_| ())
    })
    .await;
    second_cancel.cancel();
    second.wait().await;
    eventually(Duration::from_secs(20), "HQ to see store 2 go", || async {
        store_2().await.filter(|s| s["connected"] == false).map(|_| ())
    })
    .await;
    page.type_into("#price-sku", BREAD_SKU).await;
    page.type_into("#price-new", "89,90").await;
    page.click("#price-save").await;
    page.wait_for_text("#message", "версия каталога 2").await;
    page.wait_for_text("#catalog-receipt", "Версию 2 получили: 1 из 2 магазинов").await;
    page.wait_for_text("#catalog-receipt", "Не получили: магазин 2 — версия 0 (отправлена 1).").await;
    page.screenshot("catalog-receipt").await;
    page.click("#tabs button[data-tab=stores]").await;
    page.wait_for_text("#stores-rows tr[data-store='2'] td.catalog", "0 (отправлена 1) нет версии 2").await;
    let first = page
        .wait("#stores-rows tr[data-store='1'] td.catalog", "show catalog version 2", |t| {
            t == "2" || t == "0 (отправлена 2)"
        })
        .await;
    assert!(!first.contains("нет версии"), "{first}");
    page.wait_for_text("#stores-catalog", "Не получили: магазин 2").await;
    page.screenshot("stores-behind").await;
    assert_no_sideways_scroll(&page, "the stores tab with a store behind").await;

    // In English too: prices with a decimal point, the times still each store's own.
    page.click("#tabs button[data-tab=catalog]").await;
    page.click("#app button.lang").await;
    page.wait_for_text("#schedule", "each store's own local time").await;
    page.wait_for_text("#catalog-receipt", "Version 2 received by 1 of 2 stores").await;
    page.wait_for_text("#schedule-rows tr:nth-child(1) .sc-name", "Молоко").await;
    eventually(Duration::from_secs(15), "the price written the English way", || async {
        (page.value("#schedule-rows tr:nth-child(1) .sc-price").await == "99.90").then_some(())
    })
    .await;
    page.close().await;
    stack.stop().await;
}

/// Store `store`'s return of `quantity` of line 0 of `sale`, refunded in cash, an hour
/// after the sale.
fn return_of(
    sale: &kassa_protocol::sale::Sale,
    store: u32,
    seq: u64,
    quantity: i64,
) -> kassa_protocol::returns::Return {
    let id = kassa_protocol::SaleId { store: kassa_protocol::StoreId(store), seq };
    let ret = kassa_protocol::testing::cash_return(sale, id, quantity);
    kassa_protocol::returns::Return { created_at_ms: sale.created_at_ms + 3_600_000, ..ret }
}

/// Applies `change` at HQ as store `store`'s outbox entry `seq`.
fn apply_at_hq(stack: &stack::Stack, store: u32, seq: u64, change: kassa_protocol::wire::Change) {
    let actor = kassa_protocol::ActorId { store: kassa_protocol::StoreId(store), epoch: 1 };
    stack.hq.shared.db.hello(actor, seq - 1, 1, 0).unwrap();
    let now_ms = kassa_agent::clock::now_ms();
    stack.hq.shared.db.apply(actor, &[kassa_protocol::wire::OutboxEntry { seq, change }], seq, seq, now_ms).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_sets_return_limits_lists_over_returns_and_a_customers_purchases() {
    use kassa_protocol::wire::Change;
    init_logging();
    let Some(page) = launch("hq-console-returns", VIEWPORT).await else { return };
    let dir = tempfile::tempdir().unwrap();
    let stack = stack::start(StackOptions::ephemeral(dir.path())).await.unwrap();
    let password = stack::initial_admin_password(dir.path()).expect("the first administrator's password");
    // Store 2 sold two milks to a loyalty customer; stores 3 and 4, each unable to see
    // the other's return, took both back: four of two.
    let card = kassa_protocol::loyalty::CustomerId::parse("00002000000011").unwrap();
    let customer = kassa_protocol::loyalty::Customer::new(card.clone(), "+7 912 000-77-88", Some("Олег")).unwrap();
    apply_at_hq(&stack, 2, 1, Change::Loyalty { customer: Some(customer), entries: vec![] });
    let milk = stack.hq.shared.db.catalog().unwrap().into_iter().find(|i| i.sku.0 == MILK_SKU).unwrap();
    let mut basket = kassa_protocol::basket::Basket::new(0);
    basket.add(&milk, 2).unwrap();
    let mut sale = kassa_protocol::testing::sale(kassa_protocol::StoreId(2), 2, basket.lines);
    sale.created_at_ms = kassa_agent::clock::now_ms() - 86_400_000;
    sale.loyalty = Some(kassa_protocol::loyalty::SaleLoyalty {
        customer: card.clone(),
        point_value_kopecks: 100,
        redeemed_points: 0,
        lines: vec![kassa_protocol::loyalty::LinePoints {
            paid_in_points: kassa_protocol::Kopecks::ZERO,
            earned_points: 21,
        }],
    });
    apply_at_hq(&stack, 2, 2, Change::Sale { sale: sale.clone(), counters: vec![] });
    apply_at_hq(&stack, 3, 1, Change::Return { ret: return_of(&sale, 3, 1, 2), counters: vec![] });
    apply_at_hq(&stack, 4, 1, Change::Return { ret: return_of(&sale, 4, 1, 2), counters: vec![] });

    log_in_to_the_console(&page, &format!("http://{}/", stack.hq.http_addr), &password).await;
    page.click("#tabs button[data-tab='returns']").await;
    page.wait("#limit-receipt", "HQ's default limit per receipt", |_| true).await;
    let per_receipt = page.value("#limit-receipt").await;
    assert_eq!(per_receipt, "3000,00", "HQ's default, as the console shows it");
    let over = page.wait_for_text("#over-rows", &sale.receipt_no).await;
    assert!(over.contains("магазин № 3: 0003-01-000001") && over.contains("магазин № 4: 0004-01-000001"), "{over}");
    assert!(!over.contains("никогда"), "when HQ found it: {over}");
    assert_eq!(page.el("#limits-save").await.text().await.unwrap(), "Сохранить");
    page.screenshot("over-returns").await;
    // The limit per receipt lowered to 1 500 ₽: saved, versioned, at HQ.
    page.el("#limit-receipt").await.clear().await.unwrap();
    page.type_into("#limit-receipt", "1500").await;
    page.click("#limits-save").await;
    page.wait_for_text("#message", "Пределы сохранены").await;
    let (_, limits) = stack.hq.shared.db.return_limits().unwrap();
    assert_eq!(limits.per_receipt, kassa_protocol::Kopecks(150_000));

    // The customer's purchases at every store, under their points.
    page.click("#tabs button[data-tab='customers']").await;
    page.type_into("#customer-card", card.as_str()).await;
    page.click("#customer-form button[type=submit]").await;
    let purchases = page.wait_for_text("#customer-purchases", &sale.receipt_no).await;
    assert!(purchases.contains("магазин № 2") && purchases.contains("продажа"), "{purchases}");
    assert!(!purchases.contains("никогда"), "when it was bought: {purchases}");
    page.screenshot("customer-history").await;
    page.close().await;
    stack.stop().await;
}
