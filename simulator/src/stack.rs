//! A whole store on one machine: HQ, one agent, a virtual scanner and printer, wired
//! over loopback QUIC and ptys. The demo runs it; the end-to-end tests run it too.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::Duration;

use kassa_agent::config::{HqLink, PrinterConfig, ScannerConfig};
use kassa_agent::journal::{Role, User};
use kassa_agent::{AgentConfig, RunningAgent};
use kassa_hq::auth::Permissions;
use kassa_hq::{HqConfig, RunningHq};
use kassa_protocol::catalog::Unit;
use kassa_protocol::StoreId;
use tokio_util::sync::CancellationToken;

use crate::printer::{PrinterEvent, VirtualPrinter};
use crate::printer_emu::Model;
use crate::scanner::VirtualScanner;

/// The demo catalog, shipped in the repository.
pub const DEMO_CATALOG_CSV: &str = include_str!("../../data/catalog.csv");
/// The demo's users: (id, name, role, PIN). Printed at start; never use these PINs in a store.
pub const DEMO_USERS: &[(&str, &str, Role, &str)] =
    &[("kassir", "Анна Кассирова", Role::Cashier, "1111"), ("admin", "Пётр Управляющий", Role::Manager, "9999")];
/// Initial stock HQ delivers to a demo store: pieces, or grams of weighed goods.
pub const DEMO_STOCK_PIECES: i64 = 100;
pub const DEMO_STOCK_GRAMS: i64 = 50_000;

#[derive(Debug, Clone)]
pub struct StackOptions {
    pub data_dir: PathBuf,
    pub store: u32,
    pub agent_http: SocketAddr,
    pub hq_http: SocketAddr,
    pub hq_quic: SocketAddr,
    pub printer_model: Model,
}

impl StackOptions {
    /// Every port chosen by the OS: for tests, which may run side by side.
    pub fn ephemeral(data_dir: &Path) -> StackOptions {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        StackOptions {
            data_dir: data_dir.to_owned(),
            store: 1,
            agent_http: any,
            hq_http: any,
            hq_quic: any,
            printer_model: Model::Epson,
        }
    }
}

#[derive(Debug)]
pub struct Stack {
    pub hq: RunningHq,
    pub agent: RunningAgent,
    /// Shared so that the console can scan from a thread of its own.
    pub scanner: Arc<VirtualScanner>,
    pub printer: Arc<VirtualPrinter>,
    pub printer_events: Receiver<PrinterEvent>,
    pub cancel: CancellationToken,
    /// Whether the store had its catalog from HQ when `start` returned.
    pub catalog_ready: bool,
    /// An API token for HQ's HTTP API with every scope (an administrator's integration),
    /// issued at start for a day: `Authorization: Bearer {hq_token}`, or [`Stack::hq_get`]
    /// and [`Stack::hq_send`].
    pub hq_token: String,
}

#[derive(Debug, thiserror::Error)]
pub enum StackError {
    #[error(transparent)]
    Hq(#[from] kassa_hq::HqError),
    #[error(transparent)]
    Pki(#[from] kassa_hq::pki::PkiError),
    #[error(transparent)]
    Agent(#[from] kassa_agent::AgentError),
    #[error("demo catalog: {0}")]
    Catalog(#[from] kassa_hq::ImportCatalogError),
    #[error("HQ database: {0}")]
    Db(#[from] kassa_hq::db::DbError),
    #[error("store journal: {0}")]
    Journal(#[from] kassa_agent::journal::JournalError),
    #[error("demo users: {0}")]
    Users(String),
    #[error("HQ API token: {0}")]
    Token(#[from] kassa_hq::auth::ManageError),
    #[error("virtual device: {0}")]
    Device(#[from] std::io::Error),
}

/// Starts HQ, seeds it on first run (catalog, initial stock), enrols the store on first
/// run, creates the virtual devices and starts the agent. Reuses whatever is already
/// in `data_dir`.
pub async fn start(opts: StackOptions) -> Result<Stack, StackError> {
    let cancel = CancellationToken::new();
    let dir = &opts.data_dir;
    let hq = kassa_hq::start(HqConfig::new(dir.join("hq"), opts.hq_quic, opts.hq_http), cancel.clone()).await?;
    let store = StoreId(opts.store);
    if hq.shared.db.catalog_version()? == 0 {
        kassa_hq::import_catalog(&hq.shared, DEMO_CATALOG_CSV).await?;
    }
    if hq.shared.db.once(&format!("demo_stock_store_{}", store.0))? {
        let deliveries = hq
            .shared
            .db
            .catalog()?
            .into_iter()
            .map(|i| (i.sku, if i.unit == Unit::Kilogram { DEMO_STOCK_GRAMS } else { DEMO_STOCK_PIECES }))
            .collect();
        kassa_hq::deliver(&hq.shared, store, deliveries).await?;
    }
    let store_dir = dir.join(format!("store-{}", store.0));
    let pki_dir = store_dir.join("pki");
    if !pki_dir.join("store.crt").exists() {
        hq.pki.enroll(store, &pki_dir)?;
    }
    let scanner = Arc::new(VirtualScanner::create(Some(&dir.join("dev").join("scanner")))?);
    let (printer, printer_events) = VirtualPrinter::create(Some(&dir.join("dev").join("printer")), opts.printer_model)?;
    let printer = Arc::new(printer);
    let model = match opts.printer_model {
        Model::Epson => "epson",
        Model::Clone => "clone",
    };
    let config = AgentConfig {
        store: store.0,
        terminal: 1,
        data_dir: store_dir,
        http_listen: opts.agent_http,
        utc_offset_minutes: 180,
        hq: HqLink {
            addr: hq.quic_addr,
            server_name: kassa_hq::pki::HQ_SERVER_NAME.into(),
            pki_dir,
            protocol_version: None,
            fallback_addrs: Vec::new(),
        },
        scan_rules: Default::default(),
        scanner: Some(ScannerConfig {
            path: scanner.path().display().to_string(),
            serial: Default::default(),
            framer: Default::default(),
        }),
        printer: Some(PrinterConfig {
            path: printer.path().display().to_string(),
            serial: Default::default(),
            model: model.into(),
        }),
        metrics_token: None,
        limits: Default::default(),
    };
    let agent = kassa_agent::start(config, cancel.clone()).await?;
    if agent.journal.users()?.is_empty() {
        for (id, name, role, pin) in DEMO_USERS {
            let user = User { id: (*id).into(), name: (*name).into(), role: *role };
            agent.journal.add_user(&user, pin, 0).map_err(|e| StackError::Users(e.to_string()))?;
        }
    }
    let catalog_ready = wait_for_catalog(&agent, Duration::from_secs(15)).await;
    let hq_token = hq.issue_token(STACK_TOKEN_NAME, Permissions::ALL, Some(1), "kassa-sim stack").await?;
    Ok(Stack { hq, agent, scanner, printer, printer_events, cancel, catalog_ready, hq_token })
}

/// The name of the token [`start`] issues.
pub const STACK_TOKEN_NAME: &str = "kassa-sim stack";

/// The first administrator's password as HQ wrote it at install (`None` once the file
/// is gone: the administrator has taken it away).
pub fn initial_admin_password(data_dir: &Path) -> Option<String> {
    let path = data_dir.join("hq").join(kassa_hq::auth::INITIAL_PASSWORD_FILE);
    std::fs::read_to_string(path).ok().map(|p| p.trim().to_owned())
}

async fn wait_for_catalog(agent: &RunningAgent, timeout: Duration) -> bool {
    let mut status = agent.status.subscribe();
    tokio::time::timeout(timeout, status.wait_for(|s| s.hq.catalog_version > 0)).await.is_ok_and(|r| r.is_ok())
}

/// Logs in at `agent` (e.g. `http://127.0.0.1:8080`) as the demo cashier and opens the
/// shift if none is open; returns the bearer token for the cashier API.
pub async fn cashier_token(client: &reqwest::Client, agent: &str) -> Result<String, String> {
    let (id, _, _, pin) = DEMO_USERS[0];
    let login: serde_json::Value = client
        .post(format!("{agent}/api/login"))
        .json(&serde_json::json!({ "user": id, "pin": pin }))
        .send()
        .await
        .map_err(|e| format!("login: {e}"))?
        .json()
        .await
        .map_err(|e| format!("login: {e}"))?;
    let token = login["token"].as_str().ok_or_else(|| format!("login refused: {login}"))?.to_owned();
    let key = format!("open-shift-{}", std::process::id());
    let opened = client
        .post(format!("{agent}/api/shift/open"))
        .bearer_auth(&token)
        .json(&serde_json::json!({ "float_kopecks": 0, "idempotency_key": key }))
        .send()
        .await
        .map_err(|e| format!("open shift: {e}"))?;
    // 409: a shift is already open, which is just as good.
    if !opened.status().is_success() && opened.status().as_u16() != 409 {
        return Err(format!("open shift: {}", opened.status()));
    }
    Ok(token)
}

impl Stack {
    /// HQ's API base, `http://127.0.0.1:N`.
    pub fn hq_url(&self) -> String {
        format!("http://{}", self.hq.http_addr)
    }

    /// `GET path` of HQ's API with [`Stack::hq_token`]: the status and the JSON body
    /// (`Null` if it is not JSON).
    pub async fn hq_get(&self, client: &reqwest::Client, path: &str) -> Result<(u16, serde_json::Value), String> {
        self.hq_send(client, reqwest::Method::GET, path, None).await
    }

    /// `method path` of HQ's API with [`Stack::hq_token`] and `body` as JSON.
    pub async fn hq_send(
        &self,
        client: &reqwest::Client,
        method: reqwest::Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<(u16, serde_json::Value), String> {
        let mut req = client.request(method.clone(), format!("{}{path}", self.hq_url())).bearer_auth(&self.hq_token);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| format!("{method} {path}: {e}"))?;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(|e| format!("{method} {path}: {e}"))?;
        Ok((status, serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)))
    }

    /// Stops everything and waits for it.
    pub async fn stop(self) {
        self.cancel.cancel();
        self.agent.wait().await;
        self.hq.wait().await;
    }
}
