//! The QUIC shell around [`StoreSync`]: connect, run one session, reconnect with
//! capped backoff. It never holds up the till: it only reads the journal's outbox and
//! writes what HQ sends, each in short transactions of its own.
//!
//! The store offers one protocol version (ALPN `kassa-sync/N`): the current one, or the
//! one `[hq] protocol_version` sets. An HQ that does not speak it (an HQ older than the
//! store) fails the TLS handshake with "no application protocol"; the store says so
//! plainly (`hq_older` on the status board), keeps selling offline, and retries.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use kassa_protocol::sync::{StoreEvent, StoreSync};
use kassa_protocol::wire::{self, FrameDecoder, PROTOCOL_VERSION};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::collections::HashMap;

use kassa_protocol::history::{CustomerHistory, HistoryRequest};
use kassa_protocol::loyalty::{RightsAnswer, RightsRequest};
use kassa_protocol::orders::{OrderAnswer, OrderRequest};
use kassa_protocol::promotions::definition::Definition;
use kassa_protocol::returns::{SaleAnswer, SaleLookup};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::HqLink;
use crate::journal::{Journal, JournalError};
use crate::status::StatusBoard;

/// What a till asks of HQ over the sync connection, and where HQ's answer goes: spending
/// rights, an order for pickup (the endless aisle), a sale of any store to return, or a
/// customer's history (`None`: HQ does not know the card).
#[derive(Debug)]
pub enum HqRequest {
    Rights(RightsRequest, oneshot::Sender<RightsAnswer>),
    Order(OrderRequest, oneshot::Sender<OrderAnswer>),
    Sale(SaleLookup, oneshot::Sender<SaleAnswer>),
    History(HistoryRequest, oneshot::Sender<Option<CustomerHistory>>),
}
pub type HqRequestSender = mpsc::Sender<HqRequest>;
pub type HqRequestReceiver = mpsc::Receiver<HqRequest>;
/// Requests of each kind in flight per connection; a till asks one at a time.
const REQUESTS_WAITING_MAX: usize = 64;

/// The tills waiting for HQ's answers on this connection, by request id.
#[derive(Default)]
struct Waiting {
    rights: HashMap<u64, oneshot::Sender<RightsAnswer>>,
    orders: HashMap<u64, oneshot::Sender<OrderAnswer>>,
    sales: HashMap<u64, oneshot::Sender<SaleAnswer>>,
    histories: HashMap<u64, oneshot::Sender<Option<CustomerHistory>>>,
}

impl Waiting {
    /// Sends a till's request to HQ if connected and not too many wait; otherwise drops
    /// its answer channel (the till hears "no answer" at once).
    fn ask(&mut self, sync: &mut StoreSync, request: HqRequest) {
        self.rights.retain(|_, w| !w.is_closed());
        self.orders.retain(|_, w| !w.is_closed());
        self.sales.retain(|_, w| !w.is_closed());
        self.histories.retain(|_, w| !w.is_closed());
        match request {
            HqRequest::Rights(request, reply) => {
                if self.rights.len() < REQUESTS_WAITING_MAX && sync.request_rights(request.clone()) {
                    self.rights.insert(request.request_id, reply);
                }
            }
            HqRequest::Order(request, reply) => {
                if self.orders.len() < REQUESTS_WAITING_MAX && sync.place_order(request.clone()) {
                    self.orders.insert(request.request_id, reply);
                }
            }
            HqRequest::Sale(lookup, reply) => {
                if self.sales.len() < REQUESTS_WAITING_MAX && sync.find_sale(lookup.clone()) {
                    self.sales.insert(lookup.request_id, reply);
                }
            }
            HqRequest::History(request, reply) => {
                if self.histories.len() < REQUESTS_WAITING_MAX && sync.find_history(request.clone()) {
                    self.histories.insert(request.request_id, reply);
                }
            }
        }
    }
}

/// Reconnect backoff: 250 ms doubling to 30 s. A store offline for days retries twice
/// a minute; a blip is bridged in a fraction of a second.
pub const BACKOFF_MS_MIN: u64 = 250;
pub const BACKOFF_MS_MAX: u64 = 30_000;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a store waits for HQ's `Welcome` after its `Hello`; then it connects again.
/// An HQ that cannot answer (say, its database is down) would otherwise hold the store
/// on a live connection that syncs nothing.
pub const WELCOME_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a session on a fallback HQ node lasts before the store tries its first one
/// again (`HqLink::fallback_addrs`): a store goes back to its own node once it is back.
pub const FALLBACK_SESSION_MAX: Duration = Duration::from_secs(600);
const READ_CHUNK_BYTES: usize = 64 * 1024;
/// The software version this store says in protocol 3's `Hello`.
pub const SOFTWARE_VERSION: &str = env!("CARGO_PKG_VERSION");
/// TLS's `no_application_protocol` alert, which QUIC carries as a crypto error.
const TLS_ALERT_NO_APPLICATION_PROTOCOL: u8 = 120;

#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("{path}: {reason}")]
    File { path: String, reason: String },
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
    #[error("hq.protocol_version {0}: not a version this agent speaks")]
    Protocol(u32),
}

/// The store's receipt signer: its certificate key (`store.key`, PKCS#8 P-256, as
/// enrolment writes it). `None` (said in the log) when it cannot be read: receipts then
/// carry the plain code, returned elsewhere only online.
pub fn receipt_signer(link: &HqLink) -> Option<kassa_protocol::receipt_proof::ReceiptSigner> {
    let path = link.pki_dir.join("store.key");
    let signer = match PrivateKeyDer::from_pem_file(&path) {
        Ok(PrivateKeyDer::Pkcs8(der)) => {
            kassa_protocol::receipt_proof::ReceiptSigner::from_pkcs8(der.secret_pkcs8_der())
        }
        Ok(_) => Err("not a PKCS#8 key".to_owned()),
        Err(e) => Err(e.to_string()),
    };
    signer.inspect_err(|e| tracing::warn!(path = %path.display(), error = %e, "receipts are not signed")).ok()
}

/// The client TLS configuration: TLS 1.3 only, HQ verified against our CA, our own
/// certificate presented (HQ derives our store id from it), ALPN offering the one
/// protocol version this store speaks ([`HqLink::protocol`]).
pub fn client_config(link: &HqLink) -> Result<quinn::ClientConfig, TlsSetupError> {
    let file_err = |p: &std::path::Path, e: &dyn std::fmt::Display| TlsSetupError::File {
        path: p.display().to_string(),
        reason: e.to_string(),
    };
    let ca_path = link.pki_dir.join("ca.crt");
    let crt_path = link.pki_dir.join("store.crt");
    let key_path = link.pki_dir.join("store.key");
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_file_iter(&ca_path).map_err(|e| file_err(&ca_path, &e))? {
        roots.add(ca.map_err(|e| file_err(&ca_path, &e))?)?;
    }
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&crt_path)
        .map_err(|e| file_err(&crt_path, &e))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_err(&crt_path, &e))?;
    let key = PrivateKeyDer::from_pem_file(&key_path).map_err(|e| file_err(&key_path, &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, key)?;
    let alpn = wire::alpn(link.protocol()).ok_or(TlsSetupError::Protocol(link.protocol()))?;
    tls.alpn_protocols = vec![alpn.to_vec()];
    let crypto =
        quinn::crypto::rustls::QuicClientConfig::try_from(tls).map_err(|e| rustls::Error::General(e.to_string()))?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    // Keep-alive inside HQ's idle timeout; notice a dead link within seconds.
    transport.keep_alive_interval(Some(Duration::from_secs(2)));
    transport.max_idle_timeout(Some(Duration::from_secs(10).try_into().expect("fits")));
    config.transport_config(Arc::new(transport));
    Ok(config)
}

#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error("connect: {0}")]
    Connect(#[from] quinn::ConnectError),
    #[error("connection: {0}")]
    Connection(#[from] quinn::ConnectionError),
    #[error("timed out connecting")]
    Timeout,
    #[error("HQ did not answer the store's hello within {} s; connecting again", WELCOME_TIMEOUT.as_secs())]
    NotWelcomed,
    /// HQ refused the TLS handshake for want of a common protocol version.
    #[error("{}", protocol_refused_message(*protocol))]
    ProtocolRefused { protocol: u32 },
    #[error("read: {0}")]
    Read(#[from] quinn::ReadError),
    #[error("write: {0}")]
    Write(#[from] quinn::WriteError),
    #[error("protocol: {0}")]
    Protocol(String),
    #[error(transparent)]
    Journal(#[from] JournalError),
}

/// What the store says when HQ does not speak its protocol version `protocol`.
fn protocol_refused_message(protocol: u32) -> String {
    if protocol == PROTOCOL_VERSION {
        format!("HQ does not speak kassa-sync/{protocol} (it is older than this store): upgrade HQ; selling offline")
    } else {
        format!(
            "HQ does not speak kassa-sync/{protocol} (this store is set to it by [hq] protocol_version): \
             remove that setting; selling offline"
        )
    }
}

/// Whether a failed handshake is HQ refusing every protocol version we offered.
fn is_no_common_protocol(e: &quinn::ConnectionError) -> bool {
    let code = quinn::TransportErrorCode::crypto(TLS_ALERT_NO_APPLICATION_PROTOCOL);
    match e {
        quinn::ConnectionError::ConnectionClosed(c) => c.error_code == code,
        quinn::ConnectionError::TransportError(t) => t.code == code,
        _ => false,
    }
}

/// What the sync client keeps up to date at the store.
#[derive(Debug, Clone)]
pub struct Store {
    pub journal: Arc<Journal>,
    pub status: StatusBoard,
    /// The promotions the till prices with: a new set from HQ is kept in the journal,
    /// then sent here.
    pub promotions: crate::promotions::Sender,
}

/// Runs until `cancel` fires.
pub async fn run(
    link: HqLink,
    tls: quinn::ClientConfig,
    store: Store,
    mut outbox_changed: watch::Receiver<u64>,
    mut rights: HqRequestReceiver,
    cancel: CancellationToken,
) {
    let status = &store.status;
    let bind: SocketAddr = if link.addr.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse().expect("valid");
    let mut endpoint = match quinn::Endpoint::client(bind) {
        Ok(e) => e,
        Err(e) => {
            tracing::error!(error = %e, "cannot open a UDP socket for sync; the store sells, but offline");
            return;
        }
    };
    endpoint.set_default_client_config(tls);
    status.send_modify(|s| s.hq.protocol_version = Some(link.protocol()));
    let mut backoff_ms = BACKOFF_MS_MIN;
    let mut nodes = Nodes::new(link.addrs());
    while !cancel.is_cancelled() {
        let addr = nodes.current();
        let result = session(&endpoint, &link, addr, &store, &mut outbox_changed, &mut rights, &cancel).await;
        let connected = status.borrow().hq.online;
        status.send_modify(|s| s.hq.online = false);
        if let Err(e) = result {
            // The store's own trouble is not HQ's: a full disk or a failing journal is said
            // as such (the sync waits for it, sales are refused with the same code).
            let code = match &e {
                SessionError::Journal(JournalError::DiskFull(_)) => {
                    tracing::error!(error = %e, retry_ms = backoff_ms, "the store's disk is full: sync waits for space");
                    "disk_full"
                }
                SessionError::Journal(_) => {
                    tracing::error!(error = %e, retry_ms = backoff_ms, "the store's journal failed during sync");
                    "journal"
                }
                SessionError::ProtocolRefused { protocol } => {
                    tracing::error!(hq = %addr, retry_ms = backoff_ms, "{}", protocol_refused_message(*protocol));
                    if *protocol == PROTOCOL_VERSION {
                        "hq_older"
                    } else {
                        "hq_protocol"
                    }
                }
                _ => {
                    tracing::warn!(error = %e, hq = %addr, retry_ms = backoff_ms, "HQ unreachable; selling offline");
                    "unreachable"
                }
            };
            status.send_modify(|s| {
                s.hq.last_error = Some(e.to_string());
                s.hq.error_code = Some(code);
            });
        }
        if connected {
            backoff_ms = BACKOFF_MS_MIN;
        }
        if !nodes.next(connected) {
            // Another HQ node has not been tried since the last pause: try it at once.
            continue;
        }
        let pause = tokio::time::sleep(Duration::from_millis(backoff_ms));
        tokio::pin!(pause);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = &mut pause => break,
                // Offline: a request is answered "no" at once (its sender is dropped):
                // the till makes its offline offer, or says an order needs HQ.
                Some(_) = rights.recv() => {}
            }
        }
        backoff_ms = (backoff_ms * 2).min(BACKOFF_MS_MAX);
    }
    endpoint.close(0u32.into(), b"agent shutting down");
}

async fn blocking<T: Send + 'static>(
    journal: &Arc<Journal>,
    f: impl FnOnce(&Journal) -> Result<T, JournalError> + Send + 'static,
) -> Result<T, JournalError> {
    let j = journal.clone();
    crate::blocking::run(move || f(&j)).await
}

/// Which HQ node to try: the first, the others in order when it does not answer.
#[derive(Debug)]
struct Nodes {
    addrs: Vec<SocketAddr>,
    at: usize,
    /// Nodes that failed to connect since the last pause.
    failed: usize,
}

impl Nodes {
    fn new(addrs: Vec<SocketAddr>) -> Nodes {
        assert!(!addrs.is_empty(), "HqLink::addrs starts with addr");
        Nodes { addrs, at: 0, failed: 0 }
    }

    fn current(&self) -> SocketAddr {
        self.addrs[self.at]
    }

    /// After a session on the current node: which to try next, and whether to pause
    /// first (every node failed since the last pause, or a session ended). A session that
    /// ended goes back to the first node, unless the first is what just failed.
    fn next(&mut self, connected: bool) -> bool {
        if connected {
            self.failed = 0;
            self.at = usize::from(self.at == 0 && self.addrs.len() > 1);
            return true;
        }
        self.failed += 1;
        self.at = (self.at + 1) % self.addrs.len();
        if self.failed >= self.addrs.len() {
            self.failed = 0;
            return true;
        }
        false
    }
}

async fn session(
    endpoint: &quinn::Endpoint,
    link: &HqLink,
    addr: SocketAddr,
    store: &Store,
    outbox_changed: &mut watch::Receiver<u64>,
    rights: &mut HqRequestReceiver,
    cancel: &CancellationToken,
) -> Result<(), SessionError> {
    let (journal, status) = (&store.journal, &store.status);
    let protocol = link.protocol();
    let connecting = endpoint.connect(addr, &link.server_name)?;
    let conn =
        tokio::time::timeout(CONNECT_TIMEOUT, connecting).await.map_err(|_| SessionError::Timeout)?.map_err(|e| {
            if is_no_common_protocol(&e) {
                SessionError::ProtocolRefused { protocol }
            } else {
                SessionError::Connection(e)
            }
        })?;
    let (mut send, mut recv) = conn.open_bi().await?;
    let (catalog_version, promotions_version, schedule_version, head) = blocking(journal, |j| {
        Ok((j.catalog_version()?, j.promotions_version()?, j.price_schedule_version()?, j.outbox_head()?))
    })
    .await?;
    let (limits_version, keys_upto) = blocking(journal, |j| j.return_terms_held()).await?;
    let mut sync = StoreSync::speaking(protocol, SOFTWARE_VERSION, journal.actor(), catalog_version, head)
        .holding_promotions(promotions_version)
        .holding_price_schedule(schedule_version)
        .holding_return_terms(limits_version, keys_upto);
    let mut decoder = FrameDecoder::default();
    let mut buf = vec![0u8; READ_CHUNK_BYTES];
    outbox_changed.mark_unchanged();
    let mut waiting = Waiting::default();
    // The traffic of earlier connections; this one's is added as it goes.
    let (sent_before, received_before) = {
        let s = status.borrow();
        (s.hq.wire_sent_bytes, s.hq.wire_received_bytes)
    };
    flush(&mut sync, &mut send).await?;
    // On a fallback node, only for a while: then the first node is tried again.
    let give_way = (addr != link.addr).then(|| std::time::Instant::now() + FALLBACK_SESSION_MAX);
    let welcome_by = Some(std::time::Instant::now() + WELCOME_TIMEOUT);
    tracing::info!(hq = %addr, fallback = give_way.is_some(), "connected to HQ");
    loop {
        let timer = sync.poll_timeout();
        tokio::select! {
            _ = cancel.cancelled() => {
                conn.close(0u32.into(), b"agent shutting down");
                return Ok(());
            }
            _ = sleep_until(give_way) => {
                conn.close(0u32.into(), b"back to the store's first HQ node");
                return Ok(());
            }
            _ = sleep_until(welcome_by), if !sync.is_welcomed() => {
                conn.close(0u32.into(), b"no welcome");
                return Err(SessionError::NotWelcomed);
            }
            n = recv.read(&mut buf) => {
                let Some(n) = n? else { return Err(SessionError::Protocol("HQ closed the stream".into())) };
                decoder.push(&buf[..n]);
                while let Some(msg) = decoder.next_hq(protocol).map_err(|e| SessionError::Protocol(e.to_string()))? {
                    sync.handle_message(Instant::now().into_std(), msg).map_err(|e| SessionError::Protocol(e.to_string()))?;
                    drive(&mut sync, store, &mut waiting).await?;
                }
            }
            Some(request) = rights.recv() => waiting.ask(&mut sync, request),
            Ok(()) = outbox_changed.changed() => {
                let head = blocking(journal, |j| j.outbox_head()).await?;
                sync.handle_committed(head);
                drive(&mut sync, store, &mut waiting).await?;
            }
            _ = sleep_until(timer) => {
                sync.handle_timeout(Instant::now().into_std());
                drive(&mut sync, store, &mut waiting).await?;
            }
        }
        flush(&mut sync, &mut send).await?;
        let traffic = conn.stats();
        // Whole IP packets: QUIC's datagrams and the IP and UDP headers around each.
        let header_bytes: u64 = if addr.is_ipv4() { 20 + 8 } else { 40 + 8 };
        status.send_modify(|s| {
            s.hq.backlog = sync.backlog();
            s.hq.wire_sent_bytes = sent_before + traffic.udp_tx.bytes + traffic.udp_tx.datagrams * header_bytes;
            s.hq.wire_received_bytes = received_before + traffic.udp_rx.bytes + traffic.udp_rx.datagrams * header_bytes;
        });
    }
}

async fn sleep_until(deadline: Option<std::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(Instant::from_std(d)).await,
        None => std::future::pending().await,
    }
}

/// Does what the sync core asks, event by event, until it asks nothing more.
async fn drive(sync: &mut StoreSync, store: &Store, waiting: &mut Waiting) -> Result<(), SessionError> {
    let (journal, status) = (&store.journal, &store.status);
    while let Some(ev) = sync.poll_event() {
        match ev {
            StoreEvent::Connected { acked_seq } => connected(sync, store, acked_seq).await?,
            StoreEvent::ReadOutbox { after, max } => send_outbox(sync, journal, after, max).await?,
            StoreEvent::Acked { upto } => {
                blocking(journal, move |j| j.set_acked(upto)).await?;
                status.send_modify(|s| s.hq.last_contact_ms = Some(crate::clock::now_ms()));
            }
            StoreEvent::Catalog { version, items } => {
                let n = items.len();
                blocking(journal, move |j| j.apply_catalog(version, &items)).await?;
                sync.handle_catalog_applied(version);
                tracing::info!(version, items = n, "catalog from HQ applied");
                status.send_modify(|s| s.hq.catalog_version = version);
            }
            StoreEvent::NearbyStock { as_of_ms, entries } => {
                let n = entries.len();
                blocking(journal, move |j| j.set_nearby_stock(as_of_ms, &entries)).await?;
                tracing::debug!(entries = n, "nearby stock from HQ");
            }
            StoreEvent::ComputeDigests => {
                let entries = blocking(journal, |j| j.counters()).await?;
                sync.handle_digests(kassa_protocol::stock::digests(&entries));
            }
            StoreEvent::SendOwnCounters => {
                let own = journal.actor();
                let entries = blocking(journal, |j| j.counters()).await?;
                let own_entries: Vec<_> = entries.into_iter().filter(|e| e.actor == own).collect();
                tracing::warn!(entries = own_entries.len(), "HQ's digest of our counters differs; sending them all");
                sync.handle_own_counters(own_entries);
            }
            StoreEvent::Rules { version, rules } => {
                if blocking(journal, move |j| j.set_loyalty_rules(version, &rules)).await? {
                    tracing::info!(version, "loyalty rules from HQ applied");
                }
            }
            StoreEvent::Promotions { version, definitions } => {
                apply_promotions(sync, store, version, definitions).await?
            }
            StoreEvent::Loyalty { customers, entries } => {
                blocking(journal, move |j| j.merge_loyalty(&customers, &entries)).await?;
            }
            StoreEvent::Rights(answer) => answer_rights(journal, &mut waiting.rights, answer).await?,
            StoreEvent::OrderPlaced { request_id, answer } => {
                if let Some(waiter) = waiting.orders.remove(&request_id) {
                    let _ = waiter.send(answer);
                }
            }
            StoreEvent::ReturnTerms(terms) => {
                let (keys, limits_version) = (terms.keys.len(), terms.limits_version);
                let (limits, upto) = blocking(journal, move |j| j.apply_return_terms(&terms)).await?;
                sync.handle_return_terms_applied(limits, upto);
                tracing::info!(keys, limits_version, keys_upto = upto, "return terms from HQ kept");
            }
            StoreEvent::SaleFound { request_id, answer } => {
                if let Some(waiter) = waiting.sales.remove(&request_id) {
                    let _ = waiter.send(answer);
                }
            }
            StoreEvent::History { request_id, history } => {
                if let Some(waiter) = waiting.histories.remove(&request_id) {
                    let _ = waiter.send(history);
                }
            }
            StoreEvent::Counters { entries } => {
                let n = entries.len();
                blocking(journal, move |j| j.merge_counters(&entries)).await?;
                tracing::debug!(entries = n, "stock counters from HQ merged");
            }
            StoreEvent::PriceSchedule { version, changes } => {
                let n = changes.len();
                if blocking(journal, move |j| j.set_price_schedule(version, &changes)).await? {
                    tracing::info!(version, changes = n, "price schedule from HQ kept");
                }
                sync.handle_price_schedule_applied(version);
            }
            StoreEvent::PromotionsUsed { customer, promotions } => {
                blocking(journal, move |j| j.merge_promotions_used(&customer, &promotions)).await?;
            }
            StoreEvent::Order(order) => keep_order(sync, journal, order).await?,
            StoreEvent::OrderCancel(id) => cancel_order(sync, journal, id).await?,
            StoreEvent::Inbound(doc) => {
                let source = doc.source.key();
                let lines = doc.lines.len();
                if blocking(journal, move |j| j.keep_inbound(&doc, crate::clock::now_ms())).await? {
                    tracing::info!(%source, lines, "a delivery or transfer to receive, from HQ");
                }
            }
        }
    }
    Ok(())
}

/// An order for pickup here, from HQ: kept once and reserved; its acceptance, in the
/// outbox, goes at once.
async fn keep_order(
    sync: &mut StoreSync,
    journal: &Arc<Journal>,
    order: kassa_protocol::orders::Order,
) -> Result<(), SessionError> {
    let (id, lines) = (order.id, order.lines.len());
    if blocking(journal, move |j| j.keep_order(&order, crate::clock::now_ms())).await? {
        tracing::info!(order = %id, lines, "an order for pickup here, from HQ: reserved and accepted");
        let head = blocking(journal, |j| j.outbox_head()).await?;
        sync.handle_committed(head);
    }
    Ok(())
}

/// HQ cancels an order: done unless it already ended here (a handover stands).
async fn cancel_order(
    sync: &mut StoreSync,
    journal: &Arc<Journal>,
    id: kassa_protocol::orders::OrderId,
) -> Result<(), SessionError> {
    let state = blocking(journal, move |j| j.cancel_order_from_hq(id, crate::clock::now_ms())).await?;
    match state {
        Some(kassa_protocol::orders::OrderState::Cancelled) => {
            tracing::info!(order = %id, "order cancelled by HQ; its stock released");
            let head = blocking(journal, |j| j.outbox_head()).await?;
            sync.handle_committed(head);
        }
        Some(s) => tracing::info!(order = %id, state = s.code(), "HQ's cancellation came after the order ended here"),
        None => tracing::warn!(order = %id, "HQ cancelled an order this store never received"),
    }
    Ok(())
}

/// HQ said hello: its acknowledgement moves the cursor, and the status board says online.
async fn connected(sync: &StoreSync, store: &Store, acked_seq: u64) -> Result<(), SessionError> {
    blocking(&store.journal, move |j| j.set_acked(acked_seq)).await?;
    let hq_software = sync.hq_software_version().map(str::to_owned);
    tracing::info!(
        acked_seq,
        backlog = sync.backlog(),
        protocol = sync.protocol(),
        hq_software = hq_software.as_deref().unwrap_or("unknown"),
        "connected to HQ"
    );
    store.status.send_modify(|s| {
        s.hq.online = true;
        s.hq.last_error = None;
        s.hq.error_code = None;
        s.hq.hq_software_version = hq_software;
        s.hq.last_contact_ms = Some(crate::clock::now_ms());
    });
    Ok(())
}

/// Reads the next batch of the outbox for the sync core to send.
async fn send_outbox(sync: &mut StoreSync, journal: &Arc<Journal>, after: u64, max: usize) -> Result<(), SessionError> {
    let entries = blocking(journal, move |j| j.outbox_after(after, max)).await?;
    if let (Some(first), Some(last)) = (entries.first(), entries.last()) {
        // After an outage, a line per batch shows the catch-up's progress.
        if sync.backlog() > entries.len() as u64 {
            tracing::info!(from = first.seq, to = last.seq, backlog = sync.backlog(), "catching up with HQ");
        } else {
            tracing::debug!(from = first.seq, to = last.seq, "sending batch");
        }
    }
    sync.handle_outbox(Instant::now().into_std(), entries);
    Ok(())
}

/// Keeps a promotions set from HQ (if newer than the one held) and prices with it.
async fn apply_promotions(
    sync: &mut StoreSync,
    store: &Store,
    version: u64,
    definitions: Vec<Definition>,
) -> Result<(), SessionError> {
    // Checked before it is kept: a set the engine refuses is not stored (HQ
    // sends it again after the next digest, and the log says why).
    let active = match crate::promotions::build(version, &definitions) {
        Ok(active) => active,
        Err(e) => {
            tracing::error!(version, error = %e, "HQ's promotions do not validate here: not applied");
            return Ok(());
        }
    };
    let n = definitions.len();
    if blocking(&store.journal, move |j| j.set_promotions(version, &definitions)).await? {
        store.promotions.send_replace(Arc::new(active));
        tracing::info!(version, promotions = n, "promotions from HQ applied");
    }
    sync.handle_promotions_applied(version);
    store.status.send_modify(|s| s.hq.promotions_version = version);
    Ok(())
}

/// HQ's answer to a rights request: a grant is merged, and the till waiting for it told.
async fn answer_rights(
    journal: &Arc<Journal>,
    waiting: &mut HashMap<u64, oneshot::Sender<RightsAnswer>>,
    answer: RightsAnswer,
) -> Result<(), SessionError> {
    if let RightsAnswer::Grant(g) = &answer {
        let entries = g.entries.clone();
        blocking(journal, move |j| j.merge_loyalty(&[], &entries)).await?;
    }
    let id = match &answer {
        RightsAnswer::Grant(g) => g.request_id,
        RightsAnswer::UnknownCustomer { request_id, .. } => *request_id,
    };
    // A late answer to an abandoned request: its rights are kept all the same.
    if let Some(waiter) = waiting.remove(&id) {
        let _ = waiter.send(answer);
    }
    Ok(())
}

async fn flush(sync: &mut StoreSync, send: &mut quinn::SendStream) -> Result<(), SessionError> {
    while let Some(msg) = sync.poll_transmit() {
        let frame = wire::encode_store(sync.protocol(), &msg).map_err(|e| SessionError::Protocol(e.to_string()))?;
        send.write_all(&frame).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_tries_each_hq_node_once_before_it_pauses_and_goes_back_to_its_first() {
        let addrs: Vec<SocketAddr> = ["10.0.0.1:1", "10.0.0.2:1", "10.0.0.3:1"].map(|a| a.parse().unwrap()).to_vec();
        let mut nodes = Nodes::new(addrs.clone());
        assert_eq!(nodes.current(), addrs[0]);
        // The first does not answer: the second at once, then the third, then a pause.
        assert!(!nodes.next(false));
        assert_eq!(nodes.current(), addrs[1]);
        assert!(!nodes.next(false));
        assert_eq!(nodes.current(), addrs[2]);
        assert!(nodes.next(false), "every node failed: pause");
        assert_eq!(nodes.current(), addrs[0]);
        // Connected to the second; when that session ends, the first is tried again.
        nodes.next(false);
        assert!(nodes.next(true));
        assert_eq!(nodes.current(), addrs[0]);
        // A session on the first that ends (the node died) tries the second next.
        assert!(nodes.next(true));
        assert_eq!(nodes.current(), addrs[1]);
        // One node only: always it, with a pause each time.
        let mut one = Nodes::new(addrs[..1].to_vec());
        assert!(one.next(false) && one.next(true));
        assert_eq!(one.current(), addrs[0]);
    }
}
