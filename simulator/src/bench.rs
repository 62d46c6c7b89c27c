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

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

/// `kassa-sim bench scan`: `scans` frames through a pty into a running agent; the latency
/// from the moment the frame's last byte is written to the basket event the cashier
/// page receives, beside the serial wire time of the same frame at 9600 8N1.
pub async fn scan(scans: usize) -> anyhow::Result<()> {
    anyhow::ensure!(scans > 0, "at least one scan");
    if cfg!(debug_assertions) {
        eprintln!("warning: a debug build; benchmark figures mean something only with --release");
    }
    let dir = tempfile::tempdir()?;
    let stack = stack::start(StackOptions::ephemeral(dir.path())).await?;
    anyhow::ensure!(stack.catalog_ready, "the store did not get its catalog from HQ");
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
    println!("scan: p99 {} us agent, {} us wire", us(percentile(&latencies, 99)), us(wire));
    Ok(())
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

#[cfg(test)]
mod tests {
    #[test]
    fn percentiles_pick_from_the_sorted_list() {
        let v: Vec<_> = (1..=100).map(std::time::Duration::from_micros).collect();
        assert_eq!(super::percentile(&v, 50).as_micros(), 51);
        assert_eq!(super::percentile(&v, 99).as_micros(), 100);
    }
}
