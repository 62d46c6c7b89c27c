//! `kassa-sim bench sync`: a store's catch-up with HQ after an outage, over QUIC with
//! mutual TLS on loopback, beside a raw quinn bulk transfer of the same bytes.
//!
//! The store's journal is filled first with `sales` five-line sales committed through
//! the journal's own `commit_sale` while no HQ is reachable: `5 × sales` stock deltas
//! pending in its outbox. Then the agent starts and its sync client catches up. Measured:
//! - seconds from the agent's start to the moment the store holds HQ's acknowledgement
//!   of its last entry (HQ acknowledges only what it committed);
//! - bytes both ways on that connection as whole IP packets (IP, UDP and QUIC headers,
//!   acks, handshake included), per stock delta;
//! - HQ's merge rate: deltas over the time HQ spent applying batches (hand-over to the
//!   database to commit);
//! - the limit: the same number of bytes the store sent, pushed through one quinn
//!   stream between two endpoints on the same loopback with the same transport
//!   settings, handshake included.
//!
//! It then checks that the catch-up is complete: every sale at HQ once, and HQ's
//! counters for the store equal to the store's own.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kassa_agent::config::HqLink;
use kassa_agent::journal::{Role, User};
use kassa_protocol::basket::Basket;
use kassa_protocol::sale::{Tender, TenderKind};
use kassa_protocol::seeded::SeededRng;
use kassa_protocol::{Kopecks, StoreId};
use tokio_util::sync::CancellationToken;

use crate::bench::machine;
use crate::stack::DEMO_CATALOG_CSV;

/// Lines per sale, as the issue specifies.
const LINES_PER_SALE: usize = 5;
/// Longest the catch-up may take before the benchmark gives up.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(300);
const STORE: StoreId = StoreId(1);

/// What one run measured.
#[derive(Debug, Clone)]
pub struct SyncReport {
    /// HQ's database: `SQLite` or `PostgreSQL`.
    pub backend: &'static str,
    pub sales: usize,
    pub deltas: u64,
    pub catch_up: Duration,
    pub wire_sent_bytes: u64,
    pub wire_received_bytes: u64,
    pub hq_deltas: u64,
    pub hq_apply: Duration,
    pub hq_batches: u64,
    pub raw: Duration,
}

impl SyncReport {
    /// Bytes both ways per delta, in tenths.
    pub fn tenths_of_bytes_per_delta(&self) -> u64 {
        (self.wire_sent_bytes + self.wire_received_bytes) * 10 / self.deltas.max(1)
    }

    /// Deltas HQ merges per second of its applying time.
    pub fn hq_deltas_per_s(&self) -> u64 {
        (u128::from(self.hq_deltas) * 1_000_000 / self.hq_apply.as_micros().max(1)) as u64
    }
}

/// Runs the benchmark and prints its table and summary line.
/// HQ's database is a SQLite file in a temporary directory, or the empty PostgreSQL
/// database `database` names.
pub async fn sync(sales: usize, database: Option<String>) -> anyhow::Result<SyncReport> {
    anyhow::ensure!(sales > 0, "at least one sale");
    if cfg!(debug_assertions) {
        eprintln!("warning: a debug build; benchmark figures mean something only with --release");
    }
    let dir = tempfile::tempdir()?;
    let cancel = CancellationToken::new();
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    let backend = if database.is_some() { "PostgreSQL" } else { "SQLite" };
    let config = kassa_hq::HqConfig { database, ..kassa_hq::HqConfig::new(dir.path().join("hq"), any, any) };
    let hq = kassa_hq::start(config, cancel.clone()).await?;
    let held = hq.shared.db.stores()?.len();
    if held > 0 {
        cancel.cancel();
        hq.wait().await;
        anyhow::bail!("HQ's database already holds {held} stores: give the benchmark an empty one");
    }
    let catalog_version = kassa_hq::import_catalog(&hq.shared, DEMO_CATALOG_CSV).await?;
    let store_dir = dir.path().join("store-1");
    let pki_dir = store_dir.join("pki");
    hq.pki.enroll(STORE, &pki_dir)?;

    // The outage: sales pile up in the journal with no HQ to send them to.
    let fill_dir = store_dir.clone();
    let deltas = tokio::task::spawn_blocking(move || fill_journal(&fill_dir, catalog_version, sales)).await??;

    let link = HqLink {
        addr: hq.quic_addr,
        server_name: kassa_hq::pki::HQ_SERVER_NAME.into(),
        pki_dir,
        protocol_version: None,
        fallback_addrs: Vec::new(),
    };
    let config = kassa_agent::AgentConfig::on_loopback(STORE.0, store_dir, link);
    let started = Instant::now();
    let agent = kassa_agent::start(config, cancel.clone()).await?;
    let head = agent.journal.outbox_head()?;
    let mut progress = Progress::new("catch-up", head);
    loop {
        let acked = agent.journal.acked_seq()?;
        progress.show(acked);
        if acked >= head {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < CATCH_UP_TIMEOUT,
            "no catch-up within {CATCH_UP_TIMEOUT:?}: {acked}/{head}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let catch_up = started.elapsed();
    let status = agent.status.borrow().hq.clone();

    // Complete and exact: every sale once, and the same counters on both sides.
    let stores = hq.shared.db.stores()?;
    let at_hq = stores.iter().find(|s| s.store == STORE.0).map_or(0, |s| s.sales);
    anyhow::ensure!(at_hq == sales as u64, "HQ holds {at_hq} sales of the store's {sales}");
    let mut ours = agent.journal.counters()?;
    let mut theirs = hq.shared.db.counters_at(STORE)?;
    ours.sort_by(|a, b| (&a.sku, a.actor).cmp(&(&b.sku, b.actor)));
    theirs.sort_by(|a, b| (&a.sku, a.actor).cmp(&(&b.sku, b.actor)));
    anyhow::ensure!(ours == theirs, "HQ's counters for the store differ from the store's");
    let m = &hq.shared.metrics;
    let (hq_deltas, hq_apply, hq_batches) = (
        m.applied_deltas.load(Ordering::Relaxed),
        Duration::from_micros(m.apply_micros.load(Ordering::Relaxed)),
        m.applied_batches.load(Ordering::Relaxed),
    );
    anyhow::ensure!(hq_deltas == deltas, "HQ applied {hq_deltas} deltas, the store had {deltas}");
    cancel.cancel();
    agent.wait().await;
    hq.wait().await;

    let raw = raw_quinn_transfer(status.wire_sent_bytes).await?;
    let report = SyncReport {
        backend,
        sales,
        deltas,
        catch_up,
        wire_sent_bytes: status.wire_sent_bytes,
        wire_received_bytes: status.wire_received_bytes,
        hq_deltas,
        hq_apply,
        hq_batches,
        raw,
    };
    print(&report);
    Ok(report)
}

/// Commits `sales` sales of five distinct items each; returns the stock deltas (lines).
fn fill_journal(store_dir: &std::path::Path, catalog_version: u64, sales: usize) -> anyhow::Result<u64> {
    std::fs::create_dir_all(store_dir)?;
    let journal = kassa_agent::Journal::open(&store_dir.join("journal.sqlite"), STORE)?;
    let items = kassa_protocol::catalog::parse_csv(DEMO_CATALOG_CSV)?;
    // The store has the catalog HQ publishes: the catch-up carries sales, not a catalog.
    journal.apply_catalog(catalog_version, &items)?;
    journal.add_user(&User { id: "bench".into(), name: "bench".into(), role: Role::Cashier }, "1111", 0)?;
    journal.open_shift(1, "bench", Kopecks(0), "bench-shift", 0).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut rng = SeededRng::new(0x5EED);
    let mut deltas = 0;
    let started = Instant::now();
    let mut progress = Progress::new("outage, selling", sales as u64);
    for n in 0..sales {
        let basket = random_basket(&items, &mut rng, LINES_PER_SALE)?;
        deltas += basket.lines.len() as u64;
        let (_, cash) = cash_for(&basket)?;
        let tenders = [Tender { kind: TenderKind::Cash, amount: cash }];
        let at_ms = 1_790_000_000_000 + n as i64 * 3_000;
        journal
            .commit_sale(1, "bench", &basket, &tenders, None, &format!("bench-{n}"), at_ms)
            .map_err(|e| anyhow::anyhow!("sale {n}: {e}"))?;
        progress.show(n as u64 + 1);
    }
    eprintln!("  {sales} sales committed offline in {} ms", started.elapsed().as_millis());
    Ok(deltas)
}

/// Sends `bytes` bytes over one quinn stream on loopback, with TLS 1.3 and HQ's
/// transport settings, handshake included; returns the time until the receiver has
/// read them all and said so.
pub async fn raw_quinn_transfer(bytes: u64) -> anyhow::Result<Duration> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()])?;
    let cert_der = cert.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
    let server_tls = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(vec![cert_der.clone()], key)?;
    let mut server_config = quinn::ServerConfig::with_crypto(Arc::new(
        quinn::crypto::rustls::QuicServerConfig::try_from(server_tls).map_err(|e| anyhow::anyhow!("{e}"))?,
    ));
    server_config.transport_config(Arc::new(kassa_hq::pki::transport_config()));
    let server = quinn::Endpoint::server(server_config, SocketAddr::from(([127, 0, 0, 1], 0)))?;
    let server_addr = server.local_addr()?;
    let receiver = tokio::spawn(async move {
        let conn = server.accept().await.ok_or_else(|| anyhow::anyhow!("no connection"))?.await?;
        let (mut send, mut recv) = conn.accept_bi().await?;
        let mut buf = vec![0u8; 64 * 1024];
        let mut got = 0u64;
        while let Some(n) = recv.read(&mut buf).await? {
            got += n as u64;
        }
        send.write_all(&got.to_be_bytes()).await?;
        send.finish()?;
        conn.closed().await;
        anyhow::Ok(())
    });

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert_der)?;
    let client_tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut client_config = quinn::ClientConfig::new(Arc::new(
        quinn::crypto::rustls::QuicClientConfig::try_from(client_tls).map_err(|e| anyhow::anyhow!("{e}"))?,
    ));
    client_config.transport_config(Arc::new(kassa_hq::pki::transport_config()));
    let mut client = quinn::Endpoint::client(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    client.set_default_client_config(client_config);

    let chunk = vec![0x5Au8; 64 * 1024];
    let started = Instant::now();
    let conn = client.connect(server_addr, "localhost")?.await?;
    let (mut send, mut recv) = conn.open_bi().await?;
    let mut left = bytes;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        send.write_all(&chunk[..n]).await?;
        left -= n as u64;
    }
    send.finish()?;
    let mut got = [0u8; 8];
    recv.read_exact(&mut got).await?;
    let elapsed = started.elapsed();
    anyhow::ensure!(u64::from_be_bytes(got) == bytes, "the receiver got {} of {bytes} bytes", u64::from_be_bytes(got));
    conn.close(0u32.into(), b"done");
    receiver.await??;
    client.wait_idle().await;
    Ok(elapsed)
}

/// A progress bar on stderr: redrawn in place on a terminal, a line per tenth otherwise
/// (logs, CI).
#[derive(Debug)]
pub struct Progress {
    label: &'static str,
    total: u64,
    shown: Option<u64>,
    terminal: bool,
}

impl Progress {
    /// Width of the bar in characters.
    const WIDTH: u64 = 40;

    pub fn new(label: &'static str, total: u64) -> Progress {
        use std::io::IsTerminal;
        Progress { label, total: total.max(1), shown: None, terminal: std::io::stderr().is_terminal() }
    }

    pub fn show(&mut self, done: u64) {
        let done = done.min(self.total);
        // Redraw per bar character on a terminal, per tenth in a log.
        let step = if self.terminal { done * Self::WIDTH / self.total } else { done * 10 / self.total };
        if self.shown == Some(step) {
            return;
        }
        self.shown = Some(step);
        let filled = (done * Self::WIDTH / self.total) as usize;
        let bar = format!("{}{}", "#".repeat(filled), ".".repeat(Self::WIDTH as usize - filled));
        let line = format!("  {} [{bar}] {:>3}% {done}/{}", self.label, done * 100 / self.total, self.total);
        if self.terminal {
            eprint!("\r{line}");
            if done == self.total {
                eprintln!();
            }
        } else {
            eprintln!("{line}");
        }
    }
}

/// A basket of `lines` distinct catalog items: 1–3 pieces, or 150–1,649 g of a weighed
/// item. The sync benchmark and the fleet sell these.
pub(crate) fn random_basket(
    items: &[kassa_protocol::catalog::CatalogItem],
    rng: &mut SeededRng,
    lines: usize,
) -> anyhow::Result<Basket> {
    use kassa_protocol::catalog::Unit;
    anyhow::ensure!(lines <= items.len(), "{lines} distinct items from a catalog of {}", items.len());
    let mut basket = Basket::default();
    while basket.lines.len() < lines {
        let item = &items[rng.below(items.len() as u64) as usize];
        if basket.lines.iter().any(|l| l.sku == item.sku) {
            continue;
        }
        let quantity = match item.unit {
            Unit::Kilogram => 150 + rng.below(1_500) as i64,
            Unit::Piece => 1 + rng.below(3) as i64,
        };
        basket.add(item, quantity)?;
    }
    Ok(basket)
}

/// The basket's total and the cash a customer hands over for it: rounded up to the next
/// hundred roubles, so most sales give change.
pub(crate) fn cash_for(basket: &Basket) -> anyhow::Result<(Kopecks, Kopecks)> {
    let total = basket.totals().ok_or_else(|| anyhow::anyhow!("basket total overflows"))?.total;
    Ok((total, Kopecks((total.0 / 10_000 + 1) * 10_000)))
}

fn print(r: &SyncReport) {
    let ms = |d: Duration| {
        let us = d.as_micros();
        format!("{}.{:03}", us / 1_000_000, us / 1000 % 1000)
    };
    let per_s = |n: u64, d: Duration| u128::from(n) * 1_000_000 / d.as_micros().max(1);
    let tenths = r.tenths_of_bytes_per_delta();
    println!();
    println!(
        "catch-up after an outage: {} sales × {LINES_PER_SALE} lines = {} stock deltas, HQ on {} ({})",
        r.sales,
        r.deltas,
        r.backend,
        machine()
    );
    println!("{:<44} {:>14}", "", "");
    println!("{:<44} {:>14}", "catch-up, agent start → last ack (s)", ms(r.catch_up));
    println!("{:<44} {:>14}", "store → HQ on the wire (IP bytes)", r.wire_sent_bytes);
    println!("{:<44} {:>14}", "HQ → store on the wire (IP bytes)", r.wire_received_bytes);
    println!("{:<44} {:>14}", "bytes per delta, both ways", format!("{}.{}", tenths / 10, tenths % 10));
    println!("{:<44} {:>14}", "HQ batches applied", r.hq_batches);
    println!("{:<44} {:>14}", "HQ time applying (s)", ms(r.hq_apply));
    println!("{:<44} {:>14}", "HQ merge rate (deltas/s of applying)", r.hq_deltas_per_s());
    println!("{:<44} {:>14}", "end-to-end rate (deltas/s of catch-up)", per_s(r.deltas, r.catch_up));
    println!("{:<44} {:>14}", "raw quinn, same bytes one way (s)", ms(r.raw));
    println!("{:<44} {:>14}", "raw quinn throughput (MB/s)", u128::from(r.wire_sent_bytes) / r.raw.as_micros().max(1));
    println!(
        "{:<44} {:>14}",
        "catch-up / raw transfer (x)",
        format!("{}", r.catch_up.as_micros() / r.raw.as_micros().max(1))
    );
    let s = r.catch_up.as_millis();
    println!(
        "sync: {}.{:02} s catch-up, {}.{} B/delta, {} deltas/s at HQ",
        s / 1000,
        s % 1000 / 10,
        tenths / 10,
        tenths % 10,
        r.hq_deltas_per_s()
    );
}
