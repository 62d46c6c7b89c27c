//! `kassa-sim bench orders`: orders for pickup placed at HQ's API and how soon the
//! store's till has them, over QUIC with mutual TLS on loopback.
//!
//! HQ books stock into store 1, the store's agent connects, then `orders` one-line
//! orders are placed one after another through `POST /api/orders` (an operator's token,
//! as the online shop would). For each order: the time HQ took to answer (price it,
//! check availability, commit — the first part of the path, and the limit this run
//! measures beside the whole), and the time from sending it until the store's journal
//! holds it (the till lists it from there). Then it checks every order reached the
//! store once, is reserved there, and HQ heard each accepted.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use kassa_agent::config::HqLink;
use kassa_protocol::StoreId;
use tokio_util::sync::CancellationToken;

use crate::bench::machine;
use crate::bench_sync::Progress;
use crate::stack::DEMO_CATALOG_CSV;

const STORE: StoreId = StoreId(1);
/// Longest the store may take to hold every order before the benchmark gives up.
const ARRIVAL_TIMEOUT: Duration = Duration::from_secs(120);
/// Stock booked per SKU: more than any run orders.
const STOCK_PER_SKU: i64 = 1_000_000;
/// Target from the issue: p99 order to till.
pub const TARGET_P99_MS: u128 = 1_000;

/// What one run measured, in microseconds per order.
#[derive(Debug, Clone)]
pub struct OrdersReport {
    pub orders: usize,
    pub placed_us: Vec<u64>,
    pub to_till_us: Vec<u64>,
}

/// The `per_mille`th quantile of `sorted` (nearest rank), in integers.
fn quantile(sorted: &[u64], per_mille: usize) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() - 1) * per_mille + 500) / 1000;
    sorted[i.min(sorted.len() - 1)]
}

/// Runs the benchmark and prints its table and summary line.
pub async fn orders(orders: usize) -> anyhow::Result<OrdersReport> {
    anyhow::ensure!(orders > 0, "at least one order");
    if cfg!(debug_assertions) {
        eprintln!("warning: a debug build; benchmark figures mean something only with --release");
    }
    let dir = tempfile::tempdir()?;
    let cancel = CancellationToken::new();
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    let hq = kassa_hq::start(kassa_hq::HqConfig::new(dir.path().join("hq"), any, any), cancel.clone()).await?;
    kassa_hq::import_catalog(&hq.shared, DEMO_CATALOG_CSV).await?;
    let items = kassa_protocol::catalog::parse_csv(DEMO_CATALOG_CSV)?;
    let skus: Vec<_> = items
        .iter()
        .filter(|i| i.unit == kassa_protocol::catalog::Unit::Piece)
        .take(5)
        .map(|i| i.sku.clone())
        .collect();
    let booked: Vec<_> = skus.iter().map(|s| (s.clone(), STOCK_PER_SKU)).collect();
    hq.shared.db.deliver(STORE, &booked)?;
    hq.shared.counters.send_modify(|g| *g += 1);
    let store_dir = dir.path().join("store-1");
    let pki_dir = store_dir.join("pki");
    hq.pki.enroll(STORE, &pki_dir)?;
    let link = HqLink {
        addr: hq.quic_addr,
        server_name: kassa_hq::pki::HQ_SERVER_NAME.into(),
        pki_dir,
        protocol_version: None,
        fallback_addrs: Vec::new(),
    };
    let config = kassa_agent::AgentConfig::on_loopback(STORE.0, store_dir, link);
    let agent = kassa_agent::start(config, cancel.clone()).await?;
    // Connected, with HQ's catalog and the stock booked.
    let started = Instant::now();
    while agent.status.borrow().hq.catalog_version == 0 || agent.journal.stock(&skus[0])? < STOCK_PER_SKU {
        anyhow::ensure!(started.elapsed() < ARRIVAL_TIMEOUT, "the store never connected");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let token = hq.issue_token("bench", kassa_hq::auth::Permissions::ALL, Some(1), "bench").await?;
    let client = reqwest::Client::new();
    let url = format!("http://{}/api/orders", hq.http_addr);
    // The watcher: the store receives orders in their numbers' order, so the highest
    // number its journal holds says which have arrived.
    let (sent_tx, mut sent_rx) = tokio::sync::mpsc::unbounded_channel::<(u64, Instant)>();
    let journal = agent.journal.clone();
    let watcher = tokio::spawn(async move {
        let mut pending: std::collections::VecDeque<(u64, Instant)> = Default::default();
        let mut to_till = Vec::with_capacity(orders);
        let mut progress = Progress::new("orders at the till", orders as u64);
        let deadline = Instant::now() + ARRIVAL_TIMEOUT;
        while to_till.len() < orders {
            while let Ok(p) = sent_rx.try_recv() {
                pending.push_back(p);
            }
            let upto = journal.orders_received_upto()?;
            let now = Instant::now();
            while pending.front().is_some_and(|(id, _)| *id <= upto) {
                let (_, sent) = pending.pop_front().expect("checked");
                to_till.push(now.duration_since(sent).as_micros() as u64);
            }
            progress.show(to_till.len() as u64);
            anyhow::ensure!(now < deadline, "only {} of {orders} orders reached the till", to_till.len());
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        Ok::<_, anyhow::Error>(to_till)
    });
    let mut placed_us = Vec::with_capacity(orders);
    let mut progress = Progress::new("orders placed", orders as u64);
    for n in 0..orders {
        let body = serde_json::json!({
            "store": STORE.0,
            "payment": if n % 2 == 0 { "prepaid" } else { "at_pickup" },
            "lines": [{ "sku": skus[n % skus.len()].0, "quantity": 1 }],
            "idempotency_key": format!("bench-{n}"),
        });
        let sent = Instant::now();
        let resp = client.post(&url).bearer_auth(&token).json(&body).send().await?;
        anyhow::ensure!(resp.status().is_success(), "order {n}: {}", resp.text().await?);
        let placed: serde_json::Value = resp.json().await?;
        placed_us.push(sent.elapsed().as_micros() as u64);
        let id = placed["id"].as_u64().ok_or_else(|| anyhow::anyhow!("order {n}: no id"))?;
        sent_tx.send((id, sent))?;
        progress.show(n as u64 + 1);
    }
    let mut to_till = watcher.await??;

    // Complete and exact: every order at the store once and reserved, and HQ heard each
    // accepted.
    let started = Instant::now();
    loop {
        let open = hq.shared.db.orders(Some(STORE), true, kassa_hq::db::ORDERS_PAGE_MAX)?;
        if open.iter().all(|o| o.reported.is_some()) {
            break;
        }
        anyhow::ensure!(started.elapsed() < ARRIVAL_TIMEOUT, "HQ did not hear every order accepted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let reserved: i64 = skus.iter().map(|s| agent.journal.reserved(s)).sum::<Result<i64, _>>()?;
    anyhow::ensure!(reserved == orders as i64, "the store reserved {reserved} pieces for {orders} one-piece orders");
    cancel.cancel();
    agent.wait().await;
    hq.wait().await;

    placed_us.sort_unstable();
    to_till.sort_unstable();
    let report = OrdersReport { orders, placed_us, to_till_us: to_till };
    print(&report);
    Ok(report)
}

fn print(r: &OrdersReport) {
    let ms = |us: u64| format!("{}.{:03}", us / 1000, us % 1000);
    println!();
    println!("orders for pickup: {} one-line orders placed at HQ for a connected store ({})", r.orders, machine());
    println!("{:<36} {:>10} {:>10} {:>10} {:>10}", "ms", "p50", "p90", "p99", "max");
    for (name, v) in
        [("HQ places it (POST answered) [limit]", &r.placed_us), ("order to till (journal holds it)", &r.to_till_us)]
    {
        println!(
            "{:<36} {:>10} {:>10} {:>10} {:>10}",
            name,
            ms(quantile(v, 500)),
            ms(quantile(v, 900)),
            ms(quantile(v, 990)),
            ms(*v.last().unwrap_or(&0))
        );
    }
    let p99 = quantile(&r.to_till_us, 990);
    let limit = quantile(&r.placed_us, 990);
    println!(
        "{:<36} {:>10}",
        "order to till / placing, p99 (x)",
        format!("{}.{}", p99 / limit.max(1), p99 * 10 / limit.max(1) % 10)
    );
    println!(
        "orders: p99 {} ms order to till (target ≤ {TARGET_P99_MS} ms: {}; placing alone p99 {} ms)",
        ms(p99),
        if u128::from(p99) <= TARGET_P99_MS * 1000 { "met" } else { "MISSED" },
        ms(limit)
    );
}
