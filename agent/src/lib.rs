//! `kassa-agent`: the store daemon.
//!
//! # Layout
//! - [`config`]: the TOML configuration.
//! - [`journal`]: the SQLite journal — sales, stock counters, outbox, print jobs. The
//!   only module that issues SQL.
//! - [`till`]: the terminal's till, in parts: logged-in sessions, the open basket,
//!   scans, the customer on the basket, payments and returns, shifts.
//! - [`promotions`]: the set of HQ's promotions the till prices with (a watch channel
//!   the sync client feeds).
//! - [`devices`]: scanner and print-spooler threads.
//! - [`receipt`]: a sale rendered as ESC/POS.
//! - [`sync_client`]: the QUIC shell around `kassa_protocol::sync::StoreSync`.
//! - [`api`]: the cashier's HTTP API and page.
//! - [`status`]: the status board shown on the page.
//! - [`blocking`]: the one way off the async executor for blocking work.
//! - [`clock`]: the wall clock.
//! - [`metrics`]: what `/metrics` shows (Prometheus text), with the latency histograms.
//!
//! # Task tree
//! ```text
//! start ─┬─ HTTP server (axum)            ─┐
//!        ├─ sync client (tokio task)       ├─ all stop on the root CancellationToken
//!        ├─ scan task ◀── scanner thread  │  (threads poll a stop flag it sets)
//!        └─ spooler thread                ─┘
//! ```
//!
//! **Architecture invariant:** `agent` never imports `kassa-hq`.

pub mod api;
pub mod blocking;
pub mod clock;
pub mod config;
pub mod devices;
pub mod journal;
pub mod metrics;
pub mod promotions;
pub mod receipt;
pub mod status;
pub mod sync_client;
pub mod till;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

pub use config::AgentConfig;
pub use journal::Journal;
pub use till::Till;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Journal(#[from] journal::JournalError),
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
}

/// How long the basket saver waits for a burst of changes to end before writing.
const BASKET_SAVE_DEBOUNCE: std::time::Duration = std::time::Duration::from_millis(100);

/// A running agent.
#[derive(Debug)]
pub struct RunningAgent {
    pub http_addr: SocketAddr,
    pub journal: Arc<Journal>,
    pub till: Arc<Till>,
    pub status: status::StatusBoard,
    tasks: tokio::task::JoinSet<()>,
    threads: Vec<std::thread::JoinHandle<()>>,
    stop: Arc<AtomicBool>,
}

impl RunningAgent {
    /// Waits for every task and thread to stop (after the token fires).
    pub async fn wait(mut self) {
        while self.tasks.join_next().await.is_some() {}
        self.stop.store(true, Ordering::Relaxed);
        let threads = std::mem::take(&mut self.threads);
        crate::blocking::run(move || {
            for t in threads {
                let _ = t.join();
            }
        })
        .await;
    }
}

/// Opens the journal, starts devices, the sync client and the HTTP server.
pub async fn start(config: AgentConfig, cancel: CancellationToken) -> Result<RunningAgent, AgentError> {
    config.validate()?;
    let dir = &config.data_dir;
    std::fs::create_dir_all(dir).map_err(|source| AgentError::Io { path: dir.display().to_string(), source })?;
    let journal = Arc::new(Journal::open(&dir.join("journal.sqlite"), kassa_protocol::StoreId(config.store))?);
    // Without its certificates the store cannot reach HQ, but it can still sell.
    let tls = sync_client::client_config(&config.hq)
        .inspect_err(
            |e| tracing::error!(error = %e, "no TLS identity for HQ: selling offline until the store is enrolled"),
        )
        .ok();
    let status = status::board();
    let (promotions_tx, promotions_rx) = show_what_the_journal_holds(&journal, &status)?;

    let (outbox_changed, outbox_rx) = watch::channel(0u64);
    let (print_wake, print_rx) = std::sync::mpsc::sync_channel(1);
    // A till asks one rights request at a time; a few queued cover several terminals.
    let (rights_tx, rights_rx) = mpsc::channel(8);
    // The open basket survives a restart: restored below, saved after every change by a
    // task of its own (never on the scan path); parked baskets live in the same file.
    let baskets = Arc::new(journal::BasketStore::open(&dir.join("basket.sqlite"))?);
    let till = Arc::new(Till::new(
        till::TillConfig {
            terminal: config.terminal,
            scan_rules: config.scan_rules.clone(),
            utc_offset_minutes: config.utc_offset_minutes,
            limits: config.limits,
        },
        journal.clone(),
        till::TillLinks {
            outbox_changed,
            print_wake,
            rights: rights_tx,
            status: status.subscribe(),
            promotions: promotions_rx,
            baskets: baskets.clone(),
        },
    ));
    let metrics = Arc::new(metrics::Metrics::new(till.sale_commit_seconds.clone()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = tokio::task::JoinSet::new();

    restore_basket(&till, &baskets, config.terminal).await?;
    tasks.spawn(save_baskets(till.subscribe(), baskets, config.terminal, cancel.clone()));

    let mut threads = Vec::new();
    if let Some(scanner) = config.scanner.clone() {
        let (tx, rx) = mpsc::channel::<devices::ScannedFrame>(devices::SCAN_QUEUE_MAX);
        threads.push(devices::spawn_scanner(scanner, status.clone(), tx, stop.clone()));
        tasks.spawn(handle_scans(rx, till.clone(), status.clone(), metrics.clone(), cancel.clone()));
    }
    if let Some(printer) = config.printer.clone() {
        threads.push(devices::spawn_spooler(
            printer,
            config.utc_offset_minutes,
            tls.as_ref().and_then(|_| sync_client::receipt_signer(&config.hq)).map(Arc::new),
            journal.clone(),
            status.clone(),
            print_rx,
            stop.clone(),
        ));
    }

    // The unsent count follows every commit, online or not (the sync client also sets it
    // as HQ acknowledges): a store offline for hours shows what waits.
    let handle = journal::JournalHandle::new(journal.clone());
    tasks.spawn(count_unsent(outbox_rx.clone(), status.clone(), handle, cancel.clone()));
    tasks.spawn(expire_orders(till.clone(), cancel.clone()));

    if let Some(tls) = tls {
        let store = sync_client::Store { journal: journal.clone(), status: status.clone(), promotions: promotions_tx };
        tasks.spawn(sync_client::run(config.hq.clone(), tls, store, outbox_rx, rights_rx, cancel.clone()));
    } else {
        status.send_modify(|s| {
            s.hq.last_error = Some("not enrolled: no certificate for HQ".into());
            s.hq.error_code = Some("not_enrolled");
        });
    }

    let state = api::AppState {
        till: till.clone(),
        journal: journal::JournalHandle::new(journal.clone()),
        status: status.clone(),
        metrics_token: config.metrics_token.clone(),
        metrics,
    };
    let http_addr = serve_http(config.http_listen, state, &mut tasks, cancel, stop.clone()).await?;
    tracing::info!(store = config.store, terminal = config.terminal, %http_addr, "agent running");
    Ok(RunningAgent { http_addr, journal, till, status, tasks, threads, stop })
}

/// Puts what the journal holds on the status board (catalog and promotions versions,
/// the unsent count) and opens the promotions channel with the set it holds.
fn show_what_the_journal_holds(
    journal: &Journal,
    status: &status::StatusBoard,
) -> Result<(promotions::Sender, promotions::Receiver), AgentError> {
    let catalog_version = journal.catalog_version()?;
    let backlog = journal.outbox_head()?.saturating_sub(journal.acked_seq()?);
    let (promotions_version, definitions) = journal.promotions()?;
    let channel = promotions::channel(promotions_version, &definitions);
    status.send_modify(|s| {
        s.hq.catalog_version = catalog_version;
        s.hq.promotions_version = promotions_version;
        s.hq.backlog = backlog;
    });
    Ok(channel)
}

/// Puts back the basket saved before the stop, unless the journal says it was paid or
/// voided by then.
async fn restore_basket(till: &Till, baskets: &journal::BasketStore, terminal: u16) -> Result<(), AgentError> {
    let saved = baskets.load(terminal)?;
    let lines = saved.as_ref().map_or(0, |(b, _)| b.lines.len());
    match till.restore(saved).await? {
        true if lines > 0 => tracing::info!(lines, "restored the open basket"),
        false if lines > 0 => {
            tracing::info!(lines, "the saved basket was paid or voided before the stop: not restored")
        }
        _ => {}
    }
    Ok(())
}

/// The basket saver: writes the open basket to `basket.sqlite` after each burst of
/// changes, until cancelled.
async fn save_baskets(
    mut events: tokio::sync::broadcast::Receiver<till::TillEvent>,
    baskets: Arc<journal::BasketStore>,
    terminal: u16,
    cancel: CancellationToken,
) {
    loop {
        let ev = tokio::select! {
            _ = cancel.cancelled() => break,
            ev = events.recv() => ev,
        };
        let (mut basket, mut customer) = match ev {
            Ok(till::TillEvent::Basket { basket, customer, .. }) => (basket, customer.map(|c| c.card)),
            Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
            Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
        };
        // A burst of scans is written once, as it ends: the cashier's scans never
        // share the CPU with a write per scan.
        tokio::time::sleep(BASKET_SAVE_DEBOUNCE).await;
        while let Ok(ev) = events.try_recv() {
            if let till::TillEvent::Basket { basket: b, customer: c, .. } = ev {
                (basket, customer) = (b, c.map(|c| c.card));
            }
        }
        let store = baskets.clone();
        let saved = crate::blocking::run(move || store.save(terminal, &basket, customer.as_deref())).await;
        if let Err(e) = saved {
            tracing::warn!(error = %e, "could not save the open basket");
        }
    }
}

/// The scan task: each frame from the scanner thread goes to the till, timed from its
/// last byte to its basket event.
async fn handle_scans(
    mut frames: mpsc::Receiver<devices::ScannedFrame>,
    till: Arc<Till>,
    status: status::StatusBoard,
    metrics: Arc<metrics::Metrics>,
    cancel: CancellationToken,
) {
    loop {
        let frame = tokio::select! {
            _ = cancel.cancelled() => break,
            f = frames.recv() => match f { Some(f) => f, None => break },
        };
        match till.scan(&frame.bytes).await {
            // `scan` returns once its event is published.
            Ok(till::TillEvent::Basket { .. }) => metrics.scanned_into_basket(frame.at),
            Ok(_) => {}
            Err(_) => status.send_modify(|s| s.scanner.rejected += 1),
        }
        tracing::debug!(latency_us = frame.at.elapsed().as_micros() as u64, "scan handled");
    }
}

/// Sets the status board's unsent count after every commit that wrote to the outbox.
/// How often the agent expires the orders whose pickup time is up (the Orders list also
/// does before it shows them).
const ORDER_EXPIRY_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

async fn expire_orders(till: Arc<Till>, cancel: CancellationToken) {
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(ORDER_EXPIRY_INTERVAL) => {}
        }
        if let Err(e) = till.expire_orders(crate::clock::now_ms()).await {
            tracing::warn!(error = %e, "cannot expire orders");
        }
    }
}

async fn count_unsent(
    mut changed: watch::Receiver<u64>,
    status: status::StatusBoard,
    handle: journal::JournalHandle,
    cancel: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            r = changed.changed() => if r.is_err() { break },
        }
        let backlog =
            handle.run(|j| Ok::<_, journal::JournalError>(j.outbox_head()?.saturating_sub(j.acked_seq()?))).await;
        match backlog {
            Ok(backlog) => status.send_if_modified(|s| std::mem::replace(&mut s.hq.backlog, backlog) != backlog),
            Err(e) => {
                tracing::warn!(error = %e, "cannot count the unsent entries");
                false
            }
        };
    }
}

/// Binds the cashier's HTTP server and serves it on a task until cancelled (then sets
/// `stop` for the device threads); returns the address it listens on.
async fn serve_http(
    listen: SocketAddr,
    state: api::AppState,
    tasks: &mut tokio::task::JoinSet<()>,
    cancel: CancellationToken,
    stop: Arc<AtomicBool>,
) -> Result<SocketAddr, AgentError> {
    let listener =
        tokio::net::TcpListener::bind(listen).await.map_err(|source| AgentError::Listen { addr: listen, source })?;
    let http_addr = listener.local_addr().map_err(|source| AgentError::Listen { addr: listen, source })?;
    let app = api::router(state);
    tasks.spawn(async move {
        // The peer's address is the source of a typed PIN (see `Journal::authenticate`).
        let app = app.into_make_service_with_connect_info::<SocketAddr>();
        if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(cancel.cancelled_owned()).await {
            tracing::error!(error = %e, "agent HTTP server failed");
        }
        stop.store(true, Ordering::Relaxed);
    });
    Ok(http_addr)
}
