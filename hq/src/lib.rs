//! `kassa-hq`: headquarters.
//!
//! # Layout
//! - [`pki`]: the certificate authority; store enrolment; TLS configuration.
//! - [`db`]: the merged store of every store's sales and counters (a SQLite file, or
//!   PostgreSQL shared by several HQ nodes).
//! - [`nodes`]: what one HQ node publishes reaching the stores of every other
//!   (PostgreSQL's LISTEN/NOTIFY).
//! - [`sync_server`]: the QUIC accept loop and one task per store connection, the shell
//!   around `kassa_protocol::sync::HqSync`.
//! - [`promotions`]: publishing promotions, and pricing a basket for the online shop
//!   with the engine every till runs.
//! - [`auth`]: operators and roles, passwords, console sessions, API tokens and their
//!   scopes, lockouts; the first administrator.
//! - [`catalog`]: catalog edits that cannot wipe a chain (the diff of an import, edits
//!   by SKU).
//! - [`api`]: the HTTP API, every route behind the permission it names (`api::ROUTES`),
//!   and the console (`console`: the page in `hq/web/`, embedded).
//! - [`metrics`]: what `/metrics` shows (Prometheus text), with the batch apply histogram.
//!
//! **Architecture invariant:** `hq` never imports `kassa-agent`; they share only
//! `kassa-protocol`.

pub mod api;
pub mod auth;
pub mod catalog;
pub mod console;
pub mod db;
pub mod metrics;
pub mod nodes;
pub mod orders;
pub mod pki;
pub mod promotions;
pub mod sync_server;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use kassa_protocol::catalog::ImportError;
use kassa_protocol::wire::SUPPORTED_VERSIONS;
use kassa_protocol::{Sku, StoreId};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub use db::Db;
pub use sync_server::{Metrics, Shared};

#[derive(Debug, Clone)]
pub struct HqConfig {
    pub data_dir: PathBuf,
    /// HQ's database: `None` for the SQLite file `data_dir/hq.sqlite` (the embedded
    /// default), or a `postgres://` URL shared by every HQ node ([`db::Db::open_any`]).
    pub database: Option<String>,
    /// The PostgreSQL pool's bounds (unused on SQLite).
    pub pool: db::PoolLimits,
    pub quic_listen: SocketAddr,
    pub http_listen: SocketAddr,
    /// How often connected stores get a fresh view of their neighbours' stock.
    pub nearby_interval: std::time::Duration,
    /// The sync protocol versions HQ offers stores, preferred first. By default every
    /// version this HQ speaks (`wire::SUPPORTED_VERSIONS`: the current one and the
    /// previous one). Fewer only for upgrade tests and staged rollouts: an HQ limited to
    /// an older version behaves, on the wire, like an HQ of an older release.
    pub protocol_versions: Vec<u32>,
    /// Whether `/metrics` needs an API token with the `metrics` scope. Off by default: a
    /// scraper on HQ's own network reads it as it reads the agent's.
    pub metrics_require_token: bool,
    /// Marks the session cookie `Secure` on every answer (set it behind an HTTPS reverse
    /// proxy; it is set anyway on a request that says `X-Forwarded-Proto: https`).
    pub secure_cookies: bool,
    /// Reverse proxies whose `X-Forwarded-For` names the client: wrong passwords are
    /// counted per client address, not per proxy. Empty: the peer's address is the client's.
    pub trusted_proxies: Vec<std::net::IpAddr>,
}

impl HqConfig {
    pub fn new(data_dir: PathBuf, quic_listen: SocketAddr, http_listen: SocketAddr) -> HqConfig {
        HqConfig {
            data_dir,
            database: None,
            pool: db::PoolLimits::default(),
            quic_listen,
            http_listen,
            nearby_interval: sync_server::NEARBY_INTERVAL,
            protocol_versions: SUPPORTED_VERSIONS.to_vec(),
            metrics_require_token: false,
            secure_cookies: false,
            trusted_proxies: Vec::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HqError {
    #[error(transparent)]
    Pki(#[from] pki::PkiError),
    #[error(transparent)]
    Db(#[from] db::DbError),
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("cannot watch for the stop signal: {0}")]
    Signal(std::io::Error),
    #[error("sync protocol versions {0:?}: HQ speaks {SUPPORTED_VERSIONS:?} and needs at least one")]
    ProtocolVersions(Vec<u32>),
    #[error(transparent)]
    FirstAdmin(#[from] auth::FirstAdminError),
}

#[derive(Debug, thiserror::Error)]
pub enum ImportCatalogError {
    #[error(transparent)]
    Invalid(#[from] ImportError),
    #[error(transparent)]
    Db(#[from] db::DbError),
}

/// Validates a catalog CSV and publishes it to every store, replacing the catalog whole
/// (removals included); nothing is published if any row is bad, and nothing if it is
/// identical to the catalog in force (the version in force is returned). For seeding
/// and tests: operators import through the API, which previews removals first.
pub async fn import_catalog(shared: &Shared, csv: &str) -> Result<u64, ImportCatalogError> {
    let items = kassa_protocol::catalog::parse_csv(csv)?;
    let count = items.len();
    let audit = auth::Actor::system("import").audit(sync_server::now_ms(), "catalog.import", serde_json::json!({}));
    let outcome = sync_server::blocking(&shared.db, move |db| db.import_catalog(&items, true, false, &audit)).await?;
    match outcome {
        db::CatalogImport::Published { version, .. } => {
            tracing::info!(version, items = count, "published catalog");
            shared.catalog.send_replace(version);
            Ok(version)
        }
        db::CatalogImport::Unchanged { version }
        | db::CatalogImport::Preview { version, .. }
        | db::CatalogImport::RemovalsUnconfirmed { version, .. } => Ok(version),
    }
}

/// Books deliveries into a store's stock and offers them to connected stores.
pub async fn deliver(shared: &Shared, store: StoreId, deliveries: Vec<(Sku, i64)>) -> Result<(), db::DbError> {
    sync_server::blocking(&shared.db, move |db| db.deliver(store, &deliveries)).await?;
    shared.counters.send_modify(|g| *g += 1);
    Ok(())
}

/// A running HQ.
#[derive(Debug)]
pub struct RunningHq {
    pub quic_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub shared: Shared,
    pub pki: pki::Pki,
    tasks: tokio::task::JoinSet<()>,
}

impl RunningHq {
    /// Issues an API token with `scopes`, lasting `days` (none: until revoked), recorded
    /// in the audit log as issued by `system`/`by`: for programs that run HQ in-process
    /// (the simulator's stack, tests) and then call its HTTP API. The token is returned
    /// once; HQ keeps its hash.
    pub async fn issue_token(
        &self,
        name: &str,
        scopes: auth::Permissions,
        days: Option<u32>,
        by: &str,
    ) -> Result<String, auth::ManageError> {
        let (name, by) = (name.to_owned(), auth::Actor::system(by));
        let issued = sync_server::blocking(&self.shared.db, move |db| {
            Ok(auth::issue_token(db, &name, scopes, days, &by, sync_server::now_ms()))
        })
        .await??;
        Ok(issued.token)
    }

    /// Waits until every task has stopped (after the cancellation token fires).
    pub async fn wait(mut self) {
        while self.tasks.join_next().await.is_some() {}
    }
}

/// HQ's database as `config` names it: PostgreSQL, or the SQLite file in its data directory.
pub fn open_database(config: &HqConfig) -> Result<Db, db::DbError> {
    match &config.database {
        Some(url) => {
            let db = Db::open_any(url, config.pool)?;
            tracing::info!(backend = ?db.backend(), "HQ's database is open");
            Ok(db)
        }
        None => Db::open(&config.data_dir.join("hq.sqlite")),
    }
}

/// Opens the database and PKI under `config.data_dir`, binds both listeners and starts
/// serving until `cancel` fires.
pub async fn start(config: HqConfig, cancel: CancellationToken) -> Result<RunningHq, HqError> {
    let versions = &config.protocol_versions;
    if versions.is_empty() || versions.iter().any(|v| !SUPPORTED_VERSIONS.contains(v)) {
        return Err(HqError::ProtocolVersions(versions.clone()));
    }
    let dir = &config.data_dir;
    std::fs::create_dir_all(dir).map_err(|source| HqError::Io { path: dir.clone(), source })?;
    let pki = pki::Pki::open_or_create(&dir.join("pki"))?;
    let db = Arc::new(open_database(&config)?);
    let version = db.catalog_version()?;
    let data_dir = dir.clone();
    sync_server::blocking(&db, move |db| Ok(auth::ensure_first_admin(db, &data_dir, sync_server::now_ms()))).await??;
    let promotions_version = db.promotions()?.0;
    let schedule_version = db.price_schedule()?.0;
    let return_terms = (db.return_limits()?.0, db.store_keys_head()?);
    let apply_queue = sync_server::apply_queue();
    let shared = Shared {
        db,
        catalog: watch::channel(version).0,
        promotions: watch::channel(promotions_version).0,
        inbound: watch::channel(0).0,
        orders: watch::channel(0).0,
        return_terms: watch::channel(return_terms).0,
        price_schedule: watch::channel(schedule_version).0,
        counters: watch::channel(0).0,
        nearby_interval: config.nearby_interval,
        metrics: Default::default(),
        peers: Default::default(),
        protocol_versions: versions.clone(),
        apply_queue: apply_queue.0,
    };

    let endpoint = quinn::Endpoint::server(pki.server_config(versions)?, config.quic_listen)
        .map_err(|source| HqError::Listen { addr: config.quic_listen, source })?;
    let quic_addr = endpoint.local_addr().map_err(|source| HqError::Listen { addr: config.quic_listen, source })?;
    let listener = tokio::net::TcpListener::bind(config.http_listen)
        .await
        .map_err(|source| HqError::Listen { addr: config.http_listen, source })?;
    let http_addr = listener.local_addr().map_err(|source| HqError::Listen { addr: config.http_listen, source })?;

    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(sync_server::accept_loop(endpoint, shared.clone(), cancel.clone()));
    tasks.spawn(orders::cancel_unpaid(shared.clone(), cancel.clone()));
    for _ in 0..sync_server::APPLIERS {
        let (queue, db, metrics) = (apply_queue.1.clone(), shared.db.clone(), shared.metrics.clone());
        tasks.spawn(sync_server::applier(queue, db, metrics, cancel.clone()));
    }
    nodes::spawn_listener(shared.clone(), cancel.clone());
    let access = api::Access {
        metrics_require_token: config.metrics_require_token,
        secure_cookies: config.secure_cookies,
        trusted_proxies: config.trusted_proxies.clone(),
    };
    let app = api::router(shared.clone(), access).into_make_service_with_connect_info::<SocketAddr>();
    let c = cancel.clone();
    tasks.spawn(async move {
        if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(c.cancelled_owned()).await {
            tracing::error!(error = %e, "HQ HTTP server failed");
        }
    });
    tracing::info!(%quic_addr, %http_addr, protocols = ?config.protocol_versions, "HQ serving");
    Ok(RunningHq { quic_addr, http_addr, shared, pki, tasks })
}

/// `kassa-hq serve`: starts HQ, prints where it listens (one line on stdout, which
/// `kassa-sim fleet` reads), and serves until Ctrl-C or SIGTERM (systemd's stop).
pub async fn serve_until_signal(config: HqConfig) -> Result<(), HqError> {
    let cancel = CancellationToken::new();
    let hq = start(config, cancel.clone()).await?;
    println!("kassa-hq: QUIC on {}, API and console on http://{}", hq.quic_addr, hq.http_addr);
    let mut term =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).map_err(HqError::Signal)?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.map_err(HqError::Signal)?,
        _ = term.recv() => {}
    }
    cancel.cancel();
    hq.wait().await;
    Ok(())
}
