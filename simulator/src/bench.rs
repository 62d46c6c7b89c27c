//! Benchmarks, run in release mode (`cargo run --release -- bench scan`). Each prints a
//! table and ends with the one summary line its issue asks for, comparing against the
//! physical limit measured or computed in the same run.

use std::time::{Duration, Instant};

use kassa_agent::till::TillEvent;
use kassa_hardware::serial::{byte_wire_time, SerialSettings};

use crate::stack::{self, StackOptions};

/// Scans of five milk-like items round-robin, so the basket stays five lines long
/// whatever the number of scans (pieces of an item merge into one line).
const CODES: [&[u8]; 5] = [b"4650001209603", b"4630015509388", b"4600000857831", b"4630015855409", b"4600000369525"];
/// Scans before measuring: first-use costs (page cache, prepared statements) are not
/// what a cashier sees all day.
const WARMUP_SCANS: usize = 200;
/// Longest a single scan may take before the benchmark calls the agent stuck.
const SCAN_TIMEOUT: Duration = Duration::from_secs(5);

/// The machine the figures were measured on, for the report.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cpu}, {cores} cores")
}

pub(crate) fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

/// `kassa-sim bench scan`: `scans` frames through a pty into a running agent; the latency
/// from the moment the frame's last byte is written to the basket event the cashier
/// page receives, beside the serial wire time of the same frame at 9600 8N1. With
/// `promotions` published at HQ first (the mix of `bench promotions` over the demo
/// catalog), every scan reprices the basket under them, as at a real till.
pub async fn scan(scans: usize, promotions: usize) -> anyhow::Result<()> {
    anyhow::ensure!(scans > 0, "at least one scan");
    if cfg!(debug_assertions) {
        eprintln!("warning: a debug build; benchmark figures mean something only with --release");
    }
    let dir = tempfile::tempdir()?;
    let stack = stack::start(StackOptions::ephemeral(dir.path())).await?;
    anyhow::ensure!(stack.catalog_ready, "the store did not get its catalog from HQ");
    if promotions > 0 {
        let version = publish_promotions(&stack, promotions).await?;
        let till = stack.agent.till.clone();
        let deadline = Instant::now() + Duration::from_secs(60);
        while till.promotions_version() != version {
            anyhow::ensure!(Instant::now() < deadline, "the promotions did not reach the till");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        eprintln!("  {promotions} promotions at the till (version {version})");
    }
    let mut status = stack.agent.status.subscribe();
    tokio::time::timeout(SCAN_TIMEOUT, status.wait_for(|s| s.scanner.state == kassa_agent::status::DeviceState::Idle))
        .await??;
    let mut events = stack.agent.till.subscribe();
    let mut latencies = Vec::with_capacity(scans);
    for i in 0..WARMUP_SCANS + scans {
        let code = CODES[i % CODES.len()];
        let sent = Instant::now();
        stack.scanner.scan(code)?;
        loop {
            match tokio::time::timeout(SCAN_TIMEOUT, events.recv()).await {
                Ok(Ok(TillEvent::Basket { .. })) => break,
                Ok(Ok(TillEvent::ScanRejected { reason, .. })) => anyhow::bail!("scan {i} rejected: {reason}"),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => anyhow::bail!("event stream: {e}"),
                Err(_) => anyhow::bail!("scan {i}: no basket event within {SCAN_TIMEOUT:?}"),
            }
        }
        if i >= WARMUP_SCANS {
            latencies.push(sent.elapsed());
            let done = i + 1 - WARMUP_SCANS;
            if done % (scans / 10).max(1) == 0 {
                eprintln!("  {done}/{scans} scans");
            }
        }
    }
    stack.stop().await;
    latencies.sort();
    let frame_bytes = CODES[0].len() + 1; // 13 digits and the CR suffix
    let wire = byte_wire_time(&SerialSettings::default()) * frame_bytes as u32;
    let us = |d: Duration| d.as_micros();
    println!();
    println!("scan latency, frame's last byte written → basket event ({scans} scans, {})", machine());
    println!("{:<28} {:>10}", "", "µs");
    println!("{:<28} {:>10}", "agent p50", us(percentile(&latencies, 50)));
    println!("{:<28} {:>10}", "agent p90", us(percentile(&latencies, 90)));
    println!("{:<28} {:>10}", "agent p99", us(percentile(&latencies, 99)));
    println!("{:<28} {:>10}", "agent max", us(*latencies.last().expect("scans > 0")));
    println!("{:<28} {:>10}", format!("wire, {frame_bytes} bytes at 9600 8N1"), us(wire));
    println!("scan: p99 {} us agent, {} us wire, {promotions} promotions", us(percentile(&latencies, 99)), us(wire));
    Ok(())
}

/// Publishes `n` promotions at the stack's HQ (the same mix as `bench promotions`, over
/// the demo catalog, running today in every store); returns their version.
async fn publish_promotions(stack: &stack::Stack, n: usize) -> anyhow::Result<u64> {
    use kassa_protocol::promotions::definition::Definition;
    let catalog = stack.hq.shared.db.catalog()?;
    let skus: Vec<kassa_protocol::Sku> = catalog.iter().map(|i| i.sku.clone()).collect();
    let mut categories: Vec<String> = catalog.iter().map(|i| i.category.clone()).collect();
    categories.sort();
    categories.dedup();
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as i64;
    let today = kassa_protocol::promotions::LocalTime::from_unix_ms(now_ms, 180).day;
    let mut rng = kassa_protocol::seeded::SeededRng::new(0x9a55_a000);
    let promotions = crate::bench_promotions::mix(
        n,
        &mut rng,
        |rng| skus[rng.below(skus.len() as u64) as usize].clone(),
        |rng| categories[rng.below(categories.len() as u64) as usize].clone(),
        today,
    );
    let definitions: Vec<Definition> = promotions.iter().map(Definition::of).collect();
    Ok(kassa_hq::promotions::publish(&stack.hq.shared, definitions).await?)
}

/// Points HQ holds for the loyalty benchmark's customer: one per redemption and more.
const LOYALTY_POINTS_HELD: i64 = 5_000;

/// `kassa-sim bench loyalty`: online redemption round trips on loopback — the till asks
/// HQ for the rights to spend points (QUIC with TLS, HQ's grant committed in SQLite
/// with `synchronous=FULL`) and waits for the answer.
pub async fn loyalty(redemptions: usize) -> anyhow::Result<()> {
    use kassa_protocol::sale::{Tender, TenderKind};
    anyhow::ensure!(redemptions > 0, "at least one redemption");
    if cfg!(debug_assertions) {
        eprintln!("warning: a debug build; benchmark figures mean something only with --release");
    }
    let dir = tempfile::tempdir()?;
    let stack = stack::start(StackOptions::ephemeral(dir.path())).await?;
    let till = &stack.agent.till;
    let mut status = stack.agent.status.subscribe();
    tokio::time::timeout(SCAN_TIMEOUT, status.wait_for(|s| s.hq.online)).await??;
    // A customer who earned enough at this store, handed over to HQ (the store is online).
    let (id, _, _, _) = stack::DEMO_USERS[0];
    let cashier =
        kassa_agent::journal::User { id: id.into(), name: "bench".into(), role: kassa_agent::journal::Role::Cashier };
    stack.agent.journal.open_shift(till.terminal, id, kassa_protocol::Kopecks(0), "bench-shift", 0).ok();
    let ev = till.new_customer("+7 900 000-00-01".into(), None).await?;
    let TillEvent::Basket { customer: Some(view), .. } = ev else { anyhow::bail!("no customer on the basket") };
    let card = kassa_protocol::loyalty::CustomerId::parse(&view.card)?;
    // 10 ₽ per point: the points wanted, in milk.
    let quantity = LOYALTY_POINTS_HELD * 1000 / 10_690 + 1;
    till.add_sku(kassa_protocol::Sku("100001".into()), quantity, "bench-add").await?;
    let due = 10_690 * quantity;
    till.pay(
        &cashier,
        vec![Tender { kind: TenderKind::Cash, amount: kassa_protocol::Kopecks(due) }],
        None,
        "bench-pay".into(),
    )
    .await?;
    // Wait until HQ holds the rights.
    let hq_db = stack.hq.shared.db.clone();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let held = hq_db.loyalty(&card)?.map_or(0, |(_, a)| a.rights(kassa_protocol::ActorId::HQ));
        if held as usize >= redemptions {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "HQ never got the rights (holds {held})");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut latencies = Vec::with_capacity(redemptions);
    for i in 0..redemptions {
        let t = Instant::now();
        anyhow::ensure!(till.ask_rights(&card, 1).await, "redemption {i}: HQ did not grant in time");
        latencies.push(t.elapsed());
        if (i + 1) % (redemptions / 10).max(1) == 0 {
            eprintln!("  {}/{redemptions} redemptions", i + 1);
        }
    }
    stack.stop().await;
    latencies.sort();
    let ms = |d: Duration| {
        let us = d.as_micros();
        format!("{}.{:03}", us / 1000, us % 1000)
    };
    println!();
    println!("online redemption round trip, till → HQ grant (SQLite commit) → till ({redemptions}, {})", machine());
    println!("{:<12} {:>10}", "", "ms");
    for (name, p) in [("p50", 50), ("p90", 90), ("p99", 99)] {
        println!("{:<12} {:>10}", name, ms(percentile(&latencies, p)));
    }
    println!("{:<12} {:>10}", "max", ms(*latencies.last().expect("> 0")));
    println!("loyalty: p99 {} ms online redeem", ms(percentile(&latencies, 99)));
    Ok(())
}

/// `kassa-sim bench journal`: sales of five lines committed through the journal's
/// `commit_sale`, the code path the cashier API's "pay" takes (hash-chained record,
/// query rows, stock counters, outbox entry, print job, idempotency key: one durable
/// transaction each); beside, in the same run, a plain durable rusqlite insert of one row
/// per sale with the same pragmas (WAL, `synchronous=FULL`), as the limit.
pub fn journal(sales: usize) -> anyhow::Result<()> {
    use kassa_agent::journal::{Role, User};
    use kassa_protocol::basket::Basket;
    use kassa_protocol::sale::{Tender, TenderKind};
    use kassa_protocol::{Kopecks, StoreId};
    anyhow::ensure!(sales > 0, "at least one sale");
    if cfg!(debug_assertions) {
        eprintln!("warning: a debug build; benchmark figures mean something only with --release");
    }
    let dir = tempfile::tempdir()?;
    let journal = kassa_agent::Journal::open(&dir.path().join("journal.sqlite"), StoreId(1))?;
    let items = kassa_protocol::catalog::parse_csv(stack::DEMO_CATALOG_CSV)?;
    journal.apply_catalog(1, &items)?;
    journal.add_user(&User { id: "bench".into(), name: "bench".into(), role: Role::Cashier }, "1111", 0)?;
    journal.open_shift(1, "bench", Kopecks(0), "bench-shift", 0).map_err(|e| anyhow::anyhow!("{e}"))?;
    let pieces: Vec<_> = items.iter().filter(|i| i.unit == kassa_protocol::catalog::Unit::Piece).collect();
    let mut latencies = Vec::with_capacity(sales);
    let started = Instant::now();
    for n in 0..sales {
        let mut basket = Basket::default();
        for k in 0..5 {
            basket.add(pieces[(n * 5 + k) % pieces.len()], 1)?;
        }
        let total = basket.totals().expect("small basket").total;
        let tenders = [Tender { kind: TenderKind::Cash, amount: total }];
        let t = Instant::now();
        journal
            .commit_sale(1, "bench", &basket, &tenders, None, &format!("bench-{n}"), n as i64)
            .map_err(|e| anyhow::anyhow!("sale {n}: {e}"))?;
        latencies.push(t.elapsed());
        if (n + 1) % (sales / 10).max(1) == 0 {
            eprintln!("  {}/{sales} sales", n + 1);
        }
    }
    let journal_elapsed = started.elapsed();

    // The limit: one durable row per sale, same pragmas, nothing else.
    let raw = rusqlite::Connection::open(dir.path().join("raw.sqlite"))?;
    raw.pragma_update(None, "journal_mode", "WAL")?;
    raw.pragma_update(None, "synchronous", "FULL")?;
    raw.execute_batch(
        "CREATE TABLE sales (seq INTEGER PRIMARY KEY, total INTEGER NOT NULL, record BLOB NOT NULL) STRICT",
    )?;
    let record = vec![0u8; 300]; // about an encoded five-line sale

    // Prepared once, as the best plain insert would be: the limit is the durable commit,
    // not the parsing of its SQL. Each row is still its own (autocommit) transaction.
    let mut insert = raw.prepare("INSERT INTO sales (seq, total, record) VALUES (?1, ?2, ?3)")?;
    let started = Instant::now();
    for n in 0..sales {
        insert.execute(rusqlite::params![n as i64, 100, record])?;
    }
    let raw_elapsed = started.elapsed();

    latencies.sort();
    let per_s = |d: Duration| sales as u128 * 1_000_000 / d.as_micros().max(1);
    let (journal_rate, raw_rate) = (per_s(journal_elapsed), per_s(raw_elapsed));
    // The ratio in hundredths, integers only.
    let ratio = journal_rate * 100 / raw_rate.max(1);
    let us = |d: Duration| d.as_micros();
    println!();
    println!("journal commit, 5-line sales ({sales}, {})", machine());
    println!("{:<32} {:>12}", "", "");
    println!("{:<32} {:>12}", "journal sales/s", journal_rate);
    println!("{:<32} {:>12}", "journal commit p50 µs", us(percentile(&latencies, 50)));
    println!("{:<32} {:>12}", "journal commit p99 µs", us(percentile(&latencies, 99)));
    println!("{:<32} {:>12}", "raw durable insert rows/s", raw_rate);
    println!("journal: {journal_rate} sales/s, {}.{:02}x of raw insert", ratio / 100, ratio % 100);
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn percentiles_pick_from_the_sorted_list() {
        let v: Vec<_> = (1..=100).map(std::time::Duration::from_micros).collect();
        assert_eq!(super::percentile(&v, 50).as_micros(), 51);
        assert_eq!(super::percentile(&v, 99).as_micros(), 100);
    }
}
