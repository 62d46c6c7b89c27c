//! `kassa-sim fleet --stores N --seconds T`: N simulated stores connected at once to HQ,
//! each selling; HQ's resident memory and the merge lag. With `--hq-nodes K --database
//! postgres://…`, HQ is K nodes (processes) on one PostgreSQL database and the stores
//! are spread over them; the memory reported is the largest node's.
//!
//! HQ is a real HQ in a process of its own (this binary re-run as `kassa-sim hq-serve`,
//! which serves exactly as `kassa-hq serve` does: `kassa_hq::start`), so its memory is
//! measured alone, from `/proc/<pid>/status`. Each store is enrolled with HQ's
//! certificate authority, connects over QUIC with its own client certificate, and runs
//! the same sans-IO `StoreSync` core as the agent; only the journal is replaced by an
//! in-memory outbox, so that a thousand stores fit on the machine that also runs HQ.
//! Sales are real sale records (baskets of catalog items, running stock totals).
//!
//! Merge lag: from a sale's commit at the store to the store holding HQ's
//! acknowledgement, which HQ sends only after its durable commit.
//!
//! Phases: enrol and connect every store (at most [`CONNECTING_MAX`] handshakes at a
//! time); once all are connected, every store sells for T seconds; then the stores
//! stop selling and wait for their last acknowledgement; then the totals at HQ are
//! checked against what the stores sold.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kassa_agent::config::HqLink;
use kassa_protocol::catalog::CatalogItem;
use kassa_protocol::sale::{Sale, Tender, TenderKind};
use kassa_protocol::seeded::SeededRng;
use kassa_protocol::stock::CounterEntry;
use kassa_protocol::sync::{StoreEvent, StoreSync};
use kassa_protocol::wire::{encode_store, Change, FrameDecoder, OutboxEntry, PROTOCOL_VERSION};
use kassa_protocol::{ActorId, Kopecks, SaleId, Sku, StoreId};
use tokio::sync::{watch, Semaphore};

use crate::bench::machine;
use crate::stack::DEMO_CATALOG_CSV;

/// TLS handshakes under way at once while the fleet connects.
pub const CONNECTING_MAX: usize = 32;
/// Stores sharing one client UDP socket (quinn endpoint).
const STORES_PER_ENDPOINT: usize = 50;
/// How long connecting the whole fleet may take.
const CONNECT_ALL_TIMEOUT: Duration = Duration::from_secs(180);
/// How long the stores may take, after they stop selling, to hear their last ack.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(60);
/// Lines per sale: 1 to this many.
const LINES_PER_SALE_MAX: u64 = 5;
/// Stores the benchmark accepts per HQ node: a node's connection limit.
pub const STORES_MAX: usize = kassa_hq::sync_server::CONNECTIONS_MAX;

#[derive(Debug, Clone)]
pub struct FleetOptions {
    pub stores: usize,
    pub seconds: u64,
    /// Sales per store per minute (12: one every five seconds, a busy store's till).
    pub sales_per_minute: u32,
    /// HQ nodes sharing the database, the stores spread over them round robin.
    pub hq_nodes: usize,
    /// HQ's database (an empty PostgreSQL one); `None`: a SQLite file.
    pub database: Option<String>,
    /// The binary to run HQ with (`<exe> hq-serve`): `kassa-sim` itself.
    pub exe: PathBuf,
}

/// HQ nodes the benchmark runs at most.
pub const HQ_NODES_MAX: usize = 8;

#[derive(Debug, Clone)]
pub struct FleetReport {
    pub stores: usize,
    pub hq_nodes: usize,
    pub sales: u64,
    pub deltas: u64,
    pub reconnects: u64,
    pub lag_p50: Duration,
    pub lag_p99: Duration,
    pub lag_max: Duration,
    pub hq_rss_peak_kib: u64,
    pub hq_rss_end_kib: u64,
    pub hq_cpu: Duration,
    pub connect_all: Duration,
    /// p99 merge lag of the sales committed in each [`LAG_WINDOW`] of selling, in order:
    /// whether the tail is spread out or one stall.
    pub lag_p99_by_window: Vec<Duration>,
}

/// The span of selling each figure of [`FleetReport::lag_p99_by_window`] covers.
pub const LAG_WINDOW: Duration = Duration::from_secs(10);

/// The p99 lag of the sales committed in each [`LAG_WINDOW`] from the first commit.
fn lag_by_window(mut lags: Vec<(Instant, Duration)>) -> Vec<Duration> {
    let Some(first) = lags.iter().map(|(at, _)| *at).min() else { return Vec::new() };
    lags.sort_by_key(|(at, _)| *at);
    let mut out = Vec::new();
    for window in lags.chunk_by(|a, b| {
        (a.0 - first).as_secs() / LAG_WINDOW.as_secs() == (b.0 - first).as_secs() / LAG_WINDOW.as_secs()
    }) {
        let mut lags: Vec<Duration> = window.iter().map(|(_, lag)| *lag).collect();
        lags.sort();
        out.push(crate::bench::percentile(&lags, 99));
    }
    out
}

/// What one store task hands back.
#[derive(Debug, Default)]
struct StoreOutcome {
    sales: u64,
    deltas: u64,
    reconnects: u64,
    /// Each acknowledged sale's commit time and merge lag.
    lags: Vec<(Instant, Duration)>,
}

pub async fn fleet(opts: FleetOptions) -> anyhow::Result<FleetReport> {
    anyhow::ensure!(
        opts.stores > 0 && opts.stores <= STORES_MAX * opts.hq_nodes.max(1),
        "1 to {STORES_MAX} stores per HQ node"
    );
    anyhow::ensure!(opts.seconds > 0 && opts.sales_per_minute > 0, "selling takes time and sales");
    anyhow::ensure!((1..=HQ_NODES_MAX).contains(&opts.hq_nodes), "1 to {HQ_NODES_MAX} HQ nodes");
    anyhow::ensure!(
        opts.hq_nodes == 1 || opts.database.is_some(),
        "several HQ nodes share one PostgreSQL database: give --database postgres://…"
    );
    if cfg!(debug_assertions) {
        eprintln!("warning: a debug build; benchmark figures mean something only with --release");
    }
    let dir = tempfile::tempdir()?;
    let hq_dir = dir.path().join("hq");
    std::fs::create_dir_all(&hq_dir)?;
    let items = kassa_protocol::catalog::parse_csv(DEMO_CATALOG_CSV)?;
    let db = match &opts.database {
        Some(url) => kassa_hq::Db::open_any(url, kassa_hq::db::PoolLimits::default())?,
        None => kassa_hq::Db::open(&hq_dir.join("hq.sqlite"))?,
    };
    let held = db.stores()?.len();
    anyhow::ensure!(held == 0, "HQ's database already holds {held} stores: give the fleet an empty one");
    let catalog_version = db.publish_catalog(&items)?;
    // What the fleet reads of HQ's API at the end (its store list) needs a token.
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as i64;
    let by = kassa_hq::auth::Actor::system("kassa-sim fleet");
    let scopes = kassa_hq::auth::Permissions::of(&[kassa_hq::auth::Permission::StoresRead]);
    let hq_token = kassa_hq::auth::issue_token(&db, "kassa-sim fleet", scopes, Some(1), &by, now_ms)?.token;
    drop(db);
    let pki = kassa_hq::pki::Pki::open_or_create(&hq_dir.join("pki"))?;
    eprintln!("  enrolling {} stores", opts.stores);
    let mut configs = Vec::with_capacity(opts.stores);
    for i in 1..=opts.stores {
        let store = StoreId(i as u32);
        let pki_dir = dir.path().join(format!("store-{i}"));
        pki.enroll(store, &pki_dir)?;
        let link = HqLink {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            server_name: String::new(),
            pki_dir,
            protocol_version: None,
            fallback_addrs: Vec::new(),
        };
        configs.push(kassa_agent::sync_client::client_config(&link)?);
    }

    let mut nodes = Vec::with_capacity(opts.hq_nodes);
    for k in 0..opts.hq_nodes {
        let node_dir = if k == 0 { hq_dir.clone() } else { dir.path().join(format!("hq-{}", k + 1)) };
        if k > 0 {
            // Every node has the chain's certificate authority.
            pki.copy_to(&node_dir.join("pki"))?;
        }
        nodes.push(HqProcess::spawn(&opts.exe, &node_dir, opts.database.as_deref())?);
    }
    let result = run_fleet(&opts, &nodes, &hq_token, configs, Arc::new(items), catalog_version).await;
    let (mut peak, mut end, mut cpu) = (0, 0, Duration::ZERO);
    for hq in &mut nodes {
        let (p, e) = hq.rss_kib()?;
        (peak, end) = (peak.max(p), end.max(e));
        cpu += hq.cpu()?;
        hq.stop()?;
    }
    let (outcomes, connect_all) = result?;

    let windows = lag_by_window(outcomes.iter().flat_map(|o| o.lags.iter().copied()).collect());
    let mut lags: Vec<Duration> = outcomes.iter().flat_map(|o| o.lags.iter().map(|(_, lag)| *lag)).collect();
    lags.sort();
    anyhow::ensure!(!lags.is_empty(), "no sale was acknowledged");
    let sales: u64 = outcomes.iter().map(|o| o.sales).sum();
    let report = FleetReport {
        stores: opts.stores,
        hq_nodes: opts.hq_nodes,
        sales,
        deltas: outcomes.iter().map(|o| o.deltas).sum(),
        reconnects: outcomes.iter().map(|o| o.reconnects).sum(),
        lag_p50: crate::bench::percentile(&lags, 50),
        lag_p99: crate::bench::percentile(&lags, 99),
        lag_max: *lags.last().expect("not empty"),
        hq_rss_peak_kib: peak,
        hq_rss_end_kib: end,
        hq_cpu: cpu,
        connect_all,
        lag_p99_by_window: windows,
    };
    anyhow::ensure!(lags.len() as u64 == sales, "{} of {sales} sales acknowledged", lags.len());
    print(&report, &opts);
    Ok(report)
}

async fn run_fleet(
    opts: &FleetOptions,
    nodes: &[HqProcess],
    hq_token: &str,
    configs: Vec<quinn::ClientConfig>,
    items: Arc<Vec<CatalogItem>>,
    catalog_version: u64,
) -> anyhow::Result<(Vec<StoreOutcome>, Duration)> {
    let (phase_tx, phase) = watch::channel(Phase::Connecting);
    let connected = Arc::new(AtomicUsize::new(0));
    let handshakes = Arc::new(Semaphore::new(CONNECTING_MAX));
    let mut endpoints = Vec::new();
    let mut tasks = tokio::task::JoinSet::new();
    let started = Instant::now();
    for (i, config) in configs.into_iter().enumerate() {
        if i % STORES_PER_ENDPOINT == 0 {
            endpoints.push(quinn::Endpoint::client(SocketAddr::from(([127, 0, 0, 1], 0)))?);
        }
        let store = SimStore {
            actor: ActorId { store: StoreId(i as u32 + 1), epoch: 1 },
            endpoint: endpoints.last().expect("pushed").clone(),
            config,
            hq: nodes[i % nodes.len()].quic,
            items: items.clone(),
            catalog_version,
            period: Duration::from_millis(60_000 / u64::from(opts.sales_per_minute)),
            phase: phase.clone(),
            connected: connected.clone(),
            handshakes: handshakes.clone(),
        };
        tasks.spawn(store.run());
    }
    let mut last = 0;
    while connected.load(Ordering::Relaxed) < opts.stores {
        anyhow::ensure!(
            started.elapsed() < CONNECT_ALL_TIMEOUT,
            "only {} of {} stores connected within {CONNECT_ALL_TIMEOUT:?}",
            connected.load(Ordering::Relaxed),
            opts.stores
        );
        if let Some(Ok(Err(e))) = tasks.try_join_next() {
            anyhow::bail!("a store failed while connecting: {e}");
        }
        let now = connected.load(Ordering::Relaxed);
        if now * 10 / opts.stores > last {
            last = now * 10 / opts.stores;
            eprintln!("  {now}/{} stores connected", opts.stores);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let connect_all = started.elapsed();
    eprintln!(
        "  all {} stores connected in {} ms; selling for {} s",
        opts.stores,
        connect_all.as_millis(),
        opts.seconds
    );
    phase_tx.send_replace(Phase::Selling);
    for s in 1..=opts.seconds {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if s % 5 == 0 || s == opts.seconds {
            let rss = nodes.iter().map(|hq| hq.rss_kib().unwrap_or((0, 0)).0).max().unwrap_or(0);
            eprintln!("  {s}/{} s, HQ peak RSS {} MiB (the largest node)", opts.seconds, rss / 1024);
        }
    }
    phase_tx.send_replace(Phase::Draining);
    let mut outcomes = Vec::with_capacity(opts.stores);
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while let Some(r) = tasks.join_next().await {
            outcomes.push(r??);
        }
        anyhow::Ok(())
    })
    .await;
    match drained {
        Ok(r) => r?,
        Err(_) => anyhow::bail!("{} stores still waiting for acks after {DRAIN_TIMEOUT:?}", tasks.len()),
    }
    for e in endpoints {
        e.close(0u32.into(), b"fleet done");
    }
    // Every sale at HQ, once: its own count per store, over HQ's API.
    let stores: serde_json::Value = reqwest::Client::new()
        .get(format!("http://{}/api/stores", nodes[0].http))
        .bearer_auth(hq_token)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let at_hq: u64 = stores["stores"]
        .as_array()
        .ok_or_else(|| anyhow::anyhow!("HQ's store list: {stores}"))?
        .iter()
        .map(|s| s["sales"].as_u64().unwrap_or(0))
        .sum();
    let sold: u64 = outcomes.iter().map(|o| o.sales).sum();
    anyhow::ensure!(at_hq == sold, "HQ holds {at_hq} sales, the stores made {sold}");
    Ok((outcomes, connect_all))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Connecting,
    Selling,
    Draining,
}

struct SimStore {
    actor: ActorId,
    endpoint: quinn::Endpoint,
    config: quinn::ClientConfig,
    hq: SocketAddr,
    items: Arc<Vec<CatalogItem>>,
    catalog_version: u64,
    period: Duration,
    phase: watch::Receiver<Phase>,
    connected: Arc<AtomicUsize>,
    handshakes: Arc<Semaphore>,
}

/// The store's durable state, here in memory: the outbox after HQ's last ack, the
/// commit time of each entry, and its running stock totals.
struct Books {
    /// Entries after `acked`, in sequence order.
    outbox: VecDeque<OutboxEntry>,
    committed_at: VecDeque<(u64, Instant)>,
    head: u64,
    acked: u64,
    /// Own running totals of decreases, per SKU.
    sold: HashMap<Sku, i64>,
    /// Counter entries of other actors (HQ) for this store's stock.
    others: HashMap<(Sku, ActorId), CounterEntry>,
    /// Every store key up to this number was received (their bytes are not kept).
    keys_upto: u64,
    outcome: StoreOutcome,
}

impl SimStore {
    async fn run(mut self) -> anyhow::Result<StoreOutcome> {
        let mut rng = SeededRng::new(u64::from(self.actor.store.0));
        let mut books = Books {
            outbox: VecDeque::new(),
            committed_at: VecDeque::new(),
            head: 0,
            acked: 0,
            keys_upto: 0,
            sold: HashMap::new(),
            others: HashMap::new(),
            outcome: StoreOutcome::default(),
        };
        let mut first = true;
        let mut backoff = Duration::from_millis(kassa_agent::sync_client::BACKOFF_MS_MIN);
        loop {
            match self.session(&mut books, &mut rng, first).await {
                Ok(()) => return Ok(books.outcome),
                Err(e) => {
                    books.outcome.reconnects += 1;
                    tracing::warn!(store = %self.actor.store, error = %e, "fleet store reconnecting");
                    if books.outcome.reconnects > 20 {
                        anyhow::bail!("store {}: {e} (after 20 reconnects)", self.actor.store);
                    }
                }
            }
            first = false;
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    /// One connection; `Ok` once the store has stopped selling and HQ holds everything.
    async fn session(&mut self, books: &mut Books, rng: &mut SeededRng, first: bool) -> anyhow::Result<()> {
        let conn = {
            let _permit = self.handshakes.acquire().await?;
            self.endpoint.connect_with(self.config.clone(), self.hq, kassa_hq::pki::HQ_SERVER_NAME)?.await?
        };
        let (mut send, mut recv) = conn.open_bi().await?;
        let mut sync =
            StoreSync::new(self.actor, self.catalog_version, books.head).holding_return_terms(0, books.keys_upto);
        let mut decoder = FrameDecoder::default();
        let mut buf = vec![0u8; 16 * 1024];
        // Sales spread over the period, not all stores in step: each store's first sale
        // at its own offset from when selling starts (or this session does), not from when
        // it connected — a store that connected early would otherwise make the sales it
        // "missed" all at once when selling starts.
        let offset = self.period * rng.below(1000) as u32 / 1000;
        let mut next_sale: Option<tokio::time::Instant> = None;
        let mut counted = !first;
        let mut phases = self.phase.clone();
        loop {
            while let Some(msg) = sync.poll_transmit() {
                send.write_all(&encode_store(PROTOCOL_VERSION, &msg)?).await?;
            }
            let phase = *phases.borrow_and_update();
            if phase == Phase::Selling && next_sale.is_none() {
                next_sale = Some(tokio::time::Instant::now() + offset);
            }
            let sale_at = next_sale.unwrap_or_else(tokio::time::Instant::now);
            if phase == Phase::Draining && books.head == books.acked && sync.acked() == books.head {
                conn.close(0u32.into(), b"done");
                return Ok(());
            }
            let timer = sync.poll_timeout();
            tokio::select! {
                n = recv.read(&mut buf) => {
                    let Some(n) = n? else { anyhow::bail!("HQ closed the stream") };
                    decoder.push(&buf[..n]);
                    while let Some(msg) = decoder.next_hq(PROTOCOL_VERSION)? {
                        sync.handle_message(Instant::now(), msg)?;
                        self.drive(&mut sync, books, &mut counted)?;
                    }
                }
                _ = tokio::time::sleep_until(sale_at), if phase == Phase::Selling => {
                    next_sale = Some(sale_at + self.period);
                    self.sell(books, rng)?;
                    sync.handle_committed(books.head);
                    self.drive(&mut sync, books, &mut counted)?;
                }
                _ = sleep_until(timer) => {
                    sync.handle_timeout(Instant::now());
                    self.drive(&mut sync, books, &mut counted)?;
                }
                _ = phases.changed() => {}
            }
        }
    }

    fn sell(&self, books: &mut Books, rng: &mut SeededRng) -> anyhow::Result<()> {
        let lines = 1 + rng.below(LINES_PER_SALE_MAX) as usize;
        let basket = crate::bench_sync::random_basket(&self.items, rng, lines)?;
        let (total, cash) = crate::bench_sync::cash_for(&basket)?;
        let seq = books.head + 1;
        let store = self.actor.store;
        let sale = Sale {
            id: SaleId { store, seq },
            receipt_no: kassa_protocol::sale::receipt_no(store, 1, seq),
            terminal: 1,
            cashier: "fleet".into(),
            created_at_ms: kassa_agent::till::now_ms(),
            lines: basket.lines.clone(),
            tenders: vec![Tender { kind: TenderKind::Cash, amount: cash }],
            total,
            change: Kopecks(cash.0 - total.0),
            loyalty: None,
        };
        let counters = basket
            .lines
            .iter()
            .map(|l| {
                let n = books.sold.entry(l.sku.clone()).or_insert(0);
                *n += l.quantity;
                CounterEntry { location: store, sku: l.sku.clone(), actor: self.actor, p: 0, n: *n }
            })
            .collect::<Vec<_>>();
        books.outcome.sales += 1;
        books.outcome.deltas += counters.len() as u64;
        books.outbox.push_back(OutboxEntry { seq, change: Change::Sale { sale, counters } });
        books.committed_at.push_back((seq, Instant::now()));
        books.head = seq;
        Ok(())
    }

    fn drive(&self, sync: &mut StoreSync, books: &mut Books, counted: &mut bool) -> anyhow::Result<()> {
        while let Some(ev) = sync.poll_event() {
            match ev {
                StoreEvent::Connected { acked_seq } => {
                    books.acked = books.acked.max(acked_seq);
                    if !*counted {
                        *counted = true;
                        self.connected.fetch_add(1, Ordering::Relaxed);
                    }
                }
                StoreEvent::ReadOutbox { after, max } => {
                    let entries: Vec<_> = books.outbox.iter().filter(|e| e.seq > after).take(max).cloned().collect();
                    sync.handle_outbox(Instant::now(), entries);
                }
                StoreEvent::Acked { upto } => {
                    let now = Instant::now();
                    while books.committed_at.front().is_some_and(|(seq, _)| *seq <= upto) {
                        let (_, at) = books.committed_at.pop_front().expect("checked");
                        books.outcome.lags.push((at, now - at));
                    }
                    while books.outbox.front().is_some_and(|e| e.seq <= upto) {
                        books.outbox.pop_front();
                    }
                    books.acked = books.acked.max(upto);
                }
                StoreEvent::Catalog { version, .. } => sync.handle_catalog_applied(version),
                StoreEvent::Counters { entries } => {
                    for e in entries {
                        let slot = books.others.entry((e.sku.clone(), e.actor)).or_insert_with(|| e.clone());
                        slot.p = slot.p.max(e.p);
                        slot.n = slot.n.max(e.n);
                    }
                }
                StoreEvent::ComputeDigests => {
                    let own = own_counters(self.actor, books);
                    let all = own.iter().chain(books.others.values());
                    sync.handle_digests(kassa_protocol::stock::digests(all));
                }
                StoreEvent::SendOwnCounters => sync.handle_own_counters(own_counters(self.actor, books)),
                // Kept as a till keeps them (what it holds said in the next digest), so
                // HQ sends each store each key once.
                StoreEvent::ReturnTerms(terms) => {
                    books.keys_upto = terms.keys_held_after(books.keys_upto);
                    sync.handle_return_terms_applied(terms.limits_version, books.keys_upto);
                }
                // What a till would show or use; the fleet only sells for cash.
                StoreEvent::NearbyStock { .. }
                | StoreEvent::Rules { .. }
                | StoreEvent::Promotions { .. }
                | StoreEvent::Rights(_)
                | StoreEvent::Loyalty { .. }
                | StoreEvent::Inbound(_)
                | StoreEvent::PromotionsUsed { .. }
                | StoreEvent::PriceSchedule { .. }
                | StoreEvent::Order(_)
                | StoreEvent::OrderCancel(_)
                | StoreEvent::OrderPlaced { .. }
                | StoreEvent::SaleFound { .. }
                | StoreEvent::History { .. } => {}
            }
        }
        Ok(())
    }
}

fn own_counters(actor: ActorId, books: &Books) -> Vec<CounterEntry> {
    books
        .sold
        .iter()
        .map(|(sku, n)| CounterEntry { location: actor.store, sku: sku.clone(), actor, p: 0, n: *n })
        .collect()
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

/// HQ in a process of its own.
#[derive(Debug)]
pub struct HqProcess {
    child: std::process::Child,
    pub quic: SocketAddr,
    pub http: SocketAddr,
}

impl HqProcess {
    /// Starts `exe hq-serve` (an HQ node, as `kassa-hq serve` runs it) on loopback ports
    /// with its data under `data_dir` and, if given, on PostgreSQL `database`; returns
    /// once it said where it listens.
    pub fn spawn(exe: &Path, data_dir: &Path, database: Option<&str>) -> anyhow::Result<HqProcess> {
        use std::io::BufRead;
        let mut cmd = std::process::Command::new(exe);
        cmd.arg("hq-serve").arg("--data-dir").arg(data_dir).args(["--quic", "127.0.0.1:0", "--http", "127.0.0.1:0"]);
        if let Some(url) = database {
            cmd.args(["--database", url]);
        }
        cmd.stdout(std::process::Stdio::piped()).stdin(std::process::Stdio::null());
        // A thousand "store connected" lines would drown the report.
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "warn");
        }
        let mut child = cmd.spawn().map_err(|e| anyhow::anyhow!("starting HQ ({}): {e}", exe.display()))?;
        let stdout = child.stdout.take().expect("piped");
        let mut line = String::new();
        std::io::BufReader::new(stdout).read_line(&mut line)?;
        // "kassa-hq: QUIC on 127.0.0.1:N, API on http://127.0.0.1:M"
        let addr = |after: &str| -> Option<SocketAddr> {
            let rest = &line[line.find(after)? + after.len()..];
            rest.split([',', ' ', '\n']).next()?.parse().ok()
        };
        let (Some(quic), Some(http)) = (addr("QUIC on "), addr("http://")) else {
            let _ = child.kill();
            anyhow::bail!("HQ did not start: {line:?}");
        };
        Ok(HqProcess { child, quic, http })
    }

    /// (peak, current) resident memory in KiB.
    fn rss_kib(&self) -> anyhow::Result<(u64, u64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or_else(|| anyhow::anyhow!("no {name} in /proc status"))
        };
        Ok((field("VmHWM:")?, field("VmRSS:")?))
    }

    /// User and system CPU time HQ has used.
    fn cpu(&self) -> anyhow::Result<Duration> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))?;
        // Fields after the command name (which may hold spaces) in parentheses.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        // utime and stime are fields 14 and 15 of the whole line: 11 and 12 here, in
        // USER_HZ ticks, which Linux fixes at 100 for user space.
        Ok(Duration::from_millis((ticks(11) + ticks(12)) * 10))
    }

    /// Kills the node at once (SIGKILL): nothing of it runs after this returns.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }

    /// Stops the node as an operator does (SIGTERM), killing it if it has not ended
    /// within ten seconds.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }
}

impl Drop for HqProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn print(r: &FleetReport, opts: &FleetOptions) {
    let ms = |d: Duration| d.as_millis();
    println!();
    println!(
        "fleet: {} stores on {} HQ node(s) on {}, {} s selling, {} sales/min per store ({})",
        r.stores,
        r.hq_nodes,
        if opts.database.is_some() { "PostgreSQL" } else { "SQLite" },
        opts.seconds,
        opts.sales_per_minute,
        machine()
    );
    println!("{:<40} {:>12}", "", "");
    println!("{:<40} {:>12}", "all stores connected after (ms)", ms(r.connect_all));
    println!("{:<40} {:>12}", "sales", r.sales);
    println!("{:<40} {:>12}", "stock deltas", r.deltas);
    println!("{:<40} {:>12}", "sales/s at HQ", r.sales / opts.seconds.max(1));
    println!("{:<40} {:>12}", "reconnects", r.reconnects);
    println!("{:<40} {:>12}", "merge lag p50 (ms)", ms(r.lag_p50));
    println!("{:<40} {:>12}", "merge lag p99 (ms)", ms(r.lag_p99));
    println!("{:<40} {:>12}", "merge lag max (ms)", ms(r.lag_max));
    for (i, p99) in r.lag_p99_by_window.iter().enumerate() {
        let from = i as u64 * LAG_WINDOW.as_secs();
        let span = format!("  p99 of sales made {from}–{} s in (ms)", from + LAG_WINDOW.as_secs());
        println!("{span:<40} {:>12}", ms(*p99));
    }
    println!("{:<40} {:>12}", "HQ RSS peak, largest node (MiB)", r.hq_rss_peak_kib / 1024);
    println!("{:<40} {:>12}", "HQ RSS at the end, largest node (MiB)", r.hq_rss_end_kib / 1024);
    println!("{:<40} {:>12}", "HQ CPU time, all nodes (s)", r.hq_cpu.as_secs());
    println!("fleet: {} stores, {} MiB HQ RSS, {} ms p99 lag", r.stores, r.hq_rss_peak_kib / 1024, ms(r.lag_p99));
}
