//! The QUIC shell around [`HqSync`]: one task per store connection.
//!
//! Each connection speaks the protocol version TLS negotiated (its ALPN, one of
//! [`crate::HqConfig::protocol_versions`]): frames are decoded and encoded in it, so
//! stores one release behind are served while they wait for their upgrade. [`Peers`]
//! remembers which version and software each connected store speaks.
//!
//! ```text
//! accept loop ──spawns──▶ connection task (one per store)
//!                          ├─ reads frames ─▶ HqSync ─▶ events ─▶ Db (spawn_blocking)
//!                          └─ watches catalog / counter publications ─▶ HqSync offers
//! ```

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kassa_protocol::loyalty::RightsAnswer;
use kassa_protocol::sync::{HqEvent, HqSync};
use kassa_protocol::wire::{self, FrameDecoder};
use kassa_protocol::{ActorId, StoreId};
use tokio::sync::{watch, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::db::Db;
pub use crate::metrics::Metrics;
use crate::pki::store_of_certificate;

/// Concurrent store connections a node serves; beyond this a store waits for its retry
/// (or moves to another node). 5,000: the chain's sizing per node (ARCHITECTURE).
pub const CONNECTIONS_MAX: usize = 5_000;
/// How often a connected store gets a fresh view of its neighbours' stock: fresh enough
/// for "where else is it in stock", cheap enough for a fleet.
pub const NEARBY_INTERVAL: Duration = Duration::from_secs(15);
/// Bytes read from a stream per call.
const READ_CHUNK_BYTES: usize = 64 * 1024;
/// HQ's software version, said in protocol 3's `Welcome`.
pub const SOFTWARE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// What every connection task shares.
#[derive(Debug, Clone)]
pub struct Shared {
    pub db: Arc<Db>,
    /// The published catalog version; connections offer each new one.
    pub catalog: watch::Sender<u64>,
    /// The published promotions version; connections offer each new set.
    pub promotions: watch::Sender<u64>,
    /// The published price schedule's version; connections offer each new one.
    pub price_schedule: watch::Sender<u64>,
    /// Bumped whenever HQ books counter changes (deliveries) to offer stores.
    pub counters: watch::Sender<u64>,
    /// Bumped whenever a store has a new document to receive (a delivery announced, a
    /// transfer shipped to it): connections offer their store's open documents.
    pub inbound: watch::Sender<u64>,
    /// Bumped whenever an order is placed or HQ cancels one: connections offer their
    /// store's new orders and pending cancellations.
    pub orders: watch::Sender<u64>,
    /// HQ's return limits version and its highest store key number: connections offer
    /// a store what it lacks of them after its digests and with each view of nearby
    /// stock, and new limits at once (a new key does not wake every connection:
    /// thousands of stores connecting together would each wake thousands).
    pub return_terms: watch::Sender<(u64, u64)>,
    pub nearby_interval: Duration,
    pub metrics: Arc<Metrics>,
    /// The stores connected now and what they speak.
    pub peers: Arc<Peers>,
    /// The sync protocol versions HQ offers (its configuration).
    pub protocol_versions: Vec<u32>,
    /// Store batches waiting to be applied, several to a transaction ([`applier`]).
    pub apply_queue: tokio::sync::mpsc::Sender<ApplyJob>,
}

/// Tasks applying the node's queued batches; each takes what has arrived, at most
/// [`COALESCE_BATCHES_MAX`] batches, into one transaction.
pub const APPLIERS: usize = 2;
/// Batches of different stores one transaction applies at most.
pub const COALESCE_BATCHES_MAX: usize = 64;
/// Batches waiting for an applier, at most (a store waits to send beyond).
pub const APPLY_QUEUE_MAX: usize = 1_024;

/// A store's batch waiting to be applied, and where its outcome goes.
#[derive(Debug)]
pub struct ApplyJob {
    actor: ActorId,
    entries: Vec<kassa_protocol::wire::OutboxEntry>,
    upto: u64,
    head: u64,
    reply: tokio::sync::oneshot::Sender<Result<crate::db::Applied, Arc<crate::db::DbError>>>,
}

/// The queue of batches and its receiving end, for [`applier`].
pub fn apply_queue(
) -> (tokio::sync::mpsc::Sender<ApplyJob>, Arc<tokio::sync::Mutex<tokio::sync::mpsc::Receiver<ApplyJob>>>) {
    let (tx, rx) = tokio::sync::mpsc::channel(APPLY_QUEUE_MAX);
    (tx, Arc::new(tokio::sync::Mutex::new(rx)))
}

/// Applies queued batches until HQ stops: the first one waiting and whatever else
/// has arrived meanwhile, in one transaction with one commit (`Db::apply_many`) — at a
/// busy hour thousands of stores' batches a second would otherwise each wait for a commit
/// of their own. Each store hears its own outcome; a failed transaction fails them all
/// and each store sends its batch again.
pub async fn applier(
    queue: Arc<tokio::sync::Mutex<tokio::sync::mpsc::Receiver<ApplyJob>>>,
    db: Arc<Db>,
    metrics: Arc<Metrics>,
    cancel: CancellationToken,
) {
    loop {
        let jobs = {
            let mut rx = tokio::select! {
                _ = cancel.cancelled() => return,
                rx = queue.lock() => rx,
            };
            let first = tokio::select! {
                _ = cancel.cancelled() => return,
                first = rx.recv() => match first { Some(job) => job, None => return },
            };
            let mut jobs = vec![first];
            while jobs.len() < COALESCE_BATCHES_MAX {
                match rx.try_recv() {
                    Ok(job) => jobs.push(job),
                    Err(_) => break,
                }
            }
            jobs
        };
        let started = std::time::Instant::now();
        let db = db.clone();
        let (jobs, result) = tokio::task::spawn_blocking(move || {
            let batches: Vec<crate::db::Batch<'_>> = jobs
                .iter()
                .map(|j| crate::db::Batch { actor: j.actor, entries: &j.entries, upto: j.upto, head: j.head })
                .collect();
            let result = db.apply_many(&batches, now_ms());
            (jobs, result)
        })
        .await
        .expect("database task panicked");
        match result {
            Ok(applied) => {
                let entries = jobs.iter().map(|j| j.entries.len()).sum();
                metrics.batch_applied(entries, applied.iter().map(|a| a.deltas).sum(), started.elapsed());
                for (job, applied) in jobs.into_iter().zip(applied) {
                    let _ = job.reply.send(Ok(applied));
                }
            }
            Err(e) => {
                let e = Arc::new(e);
                for job in jobs {
                    let _ = job.reply.send(Err(e.clone()));
                }
            }
        }
    }
}

/// What HQ knows of the stores connected right now: the protocol version and software
/// each speaks. Memory, not the database: during a rolling upgrade it shows which stores
/// still run an old release (`GET /api/stores`, `/metrics`).
#[derive(Debug, Default)]
pub struct Peers {
    by_store: Mutex<BTreeMap<StoreId, Peer>>,
    next_connection: AtomicU64,
}

/// A connected store, as of its `Hello`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Peer {
    pub protocol_version: u32,
    /// `None` from a protocol-2 store, which does not say.
    pub software_version: Option<String>,
    #[serde(skip)]
    connection: u64,
}

impl Peers {
    /// The connected stores, by store.
    pub fn snapshot(&self) -> BTreeMap<StoreId, Peer> {
        self.by_store.lock().expect("peers lock").clone()
    }

    pub fn get(&self, store: StoreId) -> Option<Peer> {
        self.by_store.lock().expect("peers lock").get(&store).cloned()
    }

    fn new_connection(&self) -> u64 {
        self.next_connection.fetch_add(1, Ordering::Relaxed)
    }

    /// A store's `Hello` was accepted on `connection`: it is the store's live connection
    /// (a newer one replaces an older one that has not noticed it is dead yet).
    fn said_hello(&self, store: StoreId, connection: u64, protocol_version: u32, software_version: Option<String>) {
        let peer = Peer { protocol_version, software_version, connection };
        self.by_store.lock().expect("peers lock").insert(store, peer);
    }

    /// `connection` ended; forgets the store unless a newer connection replaced it.
    fn gone(&self, store: StoreId, connection: u64) {
        let mut peers = self.by_store.lock().expect("peers lock");
        if peers.get(&store).is_some_and(|p| p.connection == connection) {
            peers.remove(&store);
        }
    }
}

/// Forgets a connection in [`Peers`] however its task ends.
struct PeerGuard {
    peers: Arc<Peers>,
    store: StoreId,
    connection: u64,
}

impl Drop for PeerGuard {
    fn drop(&mut self) {
        self.peers.gone(self.store, self.connection);
    }
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Runs `f` against the database on the blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(
    db: &Arc<Db>,
    f: impl FnOnce(&Db) -> Result<T, crate::db::DbError> + Send + 'static,
) -> Result<T, crate::db::DbError> {
    let db = db.clone();
    tokio::task::spawn_blocking(move || f(&db)).await.expect("database task panicked")
}

pub async fn accept_loop(endpoint: quinn::Endpoint, shared: Shared, cancel: CancellationToken) {
    let permits = Arc::new(Semaphore::new(CONNECTIONS_MAX));
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        let incoming = tokio::select! {
            _ = cancel.cancelled() => break,
            i = endpoint.accept() => match i { Some(i) => i, None => break },
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::warn!(remote = %incoming.remote_address(), "too many store connections, refusing");
            incoming.refuse();
            continue;
        };
        let (shared, cancel) = (shared.clone(), cancel.clone());
        let shared_versions = shared.protocol_versions.clone();
        tasks.spawn(async move {
            let remote = incoming.remote_address();
            match serve(incoming, shared, cancel).await {
                Ok(()) => {}
                Err(e) if e.is_hang_up() => tracing::info!(%remote, "store hung up"),
                Err(e) if e.is_no_common_protocol() => tracing::warn!(
                    %remote,
                    hq_offers = ?shared_versions,
                    "a store offered no sync protocol version this HQ offers (a store newer than HQ?); refused"
                ),
                Err(e) => tracing::warn!(%remote, error = %e, "store connection ended"),
            }
            drop(permit);
        });
        while tasks.try_join_next().is_some() {}
    }
    endpoint.close(0u32.into(), b"HQ shutting down");
    while tasks.join_next().await.is_some() {}
}

#[derive(Debug, thiserror::Error)]
enum ConnError {
    #[error("handshake: {0}")]
    Connect(#[from] quinn::ConnectionError),
    #[error("the client certificate names no store")]
    NoIdentity,
    #[error("no sync protocol version was negotiated")]
    NoProtocol,
    #[error("stream: {0}")]
    Read(#[from] quinn::ReadError),
    #[error("stream: {0}")]
    Write(#[from] quinn::WriteError),
    #[error("protocol: {0}")]
    Protocol(String),
    #[error("database: {0}")]
    Db(#[from] crate::db::DbError),
    #[error("the store's hello could not be answered: {0}")]
    Unwelcomed(crate::db::DbError),
}

impl ConnError {
    /// The TLS handshake failed for want of a common protocol version (ALPN).
    fn is_no_common_protocol(&self) -> bool {
        const NO_APPLICATION_PROTOCOL: u8 = 120; // TLS alert, carried as a QUIC crypto error
        let code = quinn::TransportErrorCode::crypto(NO_APPLICATION_PROTOCOL);
        match self {
            ConnError::Connect(quinn::ConnectionError::TransportError(t)) => t.code == code,
            ConnError::Connect(quinn::ConnectionError::ConnectionClosed(c)) => c.error_code == code,
            _ => false,
        }
    }

    /// The store closed the connection properly (code 0, as an agent shutting down does)
    /// while HQ was reading or writing: not a fault.
    fn is_hang_up(&self) -> bool {
        let lost = match self {
            ConnError::Read(quinn::ReadError::ConnectionLost(c))
            | ConnError::Write(quinn::WriteError::ConnectionLost(c)) => c,
            _ => return false,
        };
        matches!(lost, quinn::ConnectionError::ApplicationClosed(a) if a.error_code == quinn::VarInt::from_u32(0))
    }
}

fn peer_store(conn: &quinn::Connection) -> Option<StoreId> {
    store_of_certificate(&peer_certificate(conn)?)
}

fn peer_certificate(conn: &quinn::Connection) -> Option<rustls::pki_types::CertificateDer<'static>> {
    let identity = conn.peer_identity()?;
    let certs = identity.downcast_ref::<Vec<rustls::pki_types::CertificateDer<'static>>>()?;
    certs.first().cloned()
}

/// Records the key of the certificate a store connected with — the key its receipts
/// are signed with — and tells every connection when it is new.
async fn record_store_key(conn: &quinn::Connection, store: StoreId, shared: &Shared) -> Result<(), ConnError> {
    let Some(key) = peer_certificate(conn).as_ref().and_then(crate::pki::public_key_of_certificate) else {
        return Ok(());
    };
    if let Some(seq) = blocking(&shared.db, move |db| db.record_store_key(store, &key, now_ms())).await? {
        tracing::info!(%store, seq, "a store's receipt key, new to HQ");
        shared.return_terms.send_if_modified(|t| {
            t.1 = t.1.max(seq);
            false // offered with each store's next digest or nearby view
        });
    }
    Ok(())
}

/// The protocol version TLS negotiated for `conn` (its ALPN).
fn negotiated_protocol(conn: &quinn::Connection) -> Option<u32> {
    let data = conn.handshake_data()?.downcast::<quinn::crypto::rustls::HandshakeData>().ok()?;
    wire::version_of_alpn(data.protocol.as_deref()?)
}

async fn serve(incoming: quinn::Incoming, shared: Shared, cancel: CancellationToken) -> Result<(), ConnError> {
    let conn = incoming.await?;
    let Some(store) = peer_store(&conn) else {
        conn.close(1u32.into(), b"certificate names no store");
        return Err(ConnError::NoIdentity);
    };
    // QUIC requires ALPN, and HQ offers only versions it speaks: always known.
    let Some(protocol) = negotiated_protocol(&conn) else {
        conn.close(1u32.into(), b"no sync protocol version");
        return Err(ConnError::NoProtocol);
    };
    let span = tracing::info_span!("store", %store, protocol, remote = %conn.remote_address());
    // A key not recorded now is recorded at the store's next connection: the store
    // syncs either way.
    if let Err(e) = record_store_key(&conn, store, &shared).instrument(span.clone()).await {
        tracing::warn!(%store, error = %e, "could not record the store's receipt key");
    }
    session(conn, store, protocol, shared, cancel).instrument(span).await
}

async fn session(
    conn: quinn::Connection,
    store: StoreId,
    protocol: u32,
    shared: Shared,
    cancel: CancellationToken,
) -> Result<(), ConnError> {
    tracing::info!("store connected");
    let (mut send, mut recv) = tokio::select! {
        _ = cancel.cancelled() => return Ok(()),
        s = conn.accept_bi() => s?,
    };
    let mut session = HqSync::speaking(store, protocol, SOFTWARE_VERSION);
    let peer = PeerGuard { peers: shared.peers.clone(), store, connection: shared.peers.new_connection() };
    let mut decoder = FrameDecoder::default();
    let mut buf = vec![0u8; READ_CHUNK_BYTES];
    let mut catalog = shared.catalog.subscribe();
    let mut promotions = shared.promotions.subscribe();
    let mut schedule = shared.price_schedule.subscribe();
    let mut counters = shared.counters.subscribe();
    let mut inbound = shared.inbound.subscribe();
    let mut orders = shared.orders.subscribe();
    let mut return_terms = shared.return_terms.subscribe();
    // The first view goes out with the handshake; the next ones at the interval, give or
    // take a tenth, so that stores that connected together (after HQ restarts) do not
    // all ask at the same moment forever after.
    let mut nearby_ticks = 0u64;
    let nearby = tokio::time::sleep(jittered(shared.nearby_interval, store, nearby_ticks));
    tokio::pin!(nearby);
    let result = loop {
        // What each event does; the database being down is outlived (`outlive`).
        let step: Result<(), ConnError> = tokio::select! {
            _ = &mut nearby => {
                nearby_ticks += 1;
                nearby.as_mut().reset(tokio::time::Instant::now() + jittered(shared.nearby_interval, store, nearby_ticks));
                // Keys of stores that connected since: at most one page a tick.
                async { offer_nearby(&mut session, &shared).await?; offer_return_terms(&mut session, &shared).await }.await
            }
            _ = cancel.cancelled() => break Ok(()),
            n = recv.read(&mut buf) => {
                let n = match n {
                    Ok(Some(n)) => n,
                    Ok(None) => break Ok(()),
                    // The store hung up properly (an agent shutting down): not a fault.
                    Err(quinn::ReadError::ConnectionLost(quinn::ConnectionError::ApplicationClosed(c)))
                        if c.error_code == quinn::VarInt::from_u32(0) => break Ok(()),
                    Err(e) => break Err(e.into()),
                };
                match take_messages(&mut session, &mut decoder, &buf[..n], &shared, &peer).await {
                    Ok(Some(reason)) => {
                        flush(&mut session, &mut send).await?;
                        return refuse(&conn, &mut send, reason).await;
                    }
                    other => other.map(|_| ()),
                }
            }
            Ok(()) = catalog.changed() => async {
                offer_catalog(&mut session, &shared).await?;
                let (version, rules) = blocking(&shared.db, |db| db.rules()).await?;
                session.offer_rules(version, &rules);
                Ok(())
            }.await,
            Ok(()) = promotions.changed() => offer_promotions(&mut session, &shared).await,
            Ok(()) = schedule.changed() => offer_price_schedule(&mut session, &shared).await,
            Ok(()) = counters.changed() => async {
                session.offer_counters(&blocking(&shared.db, move |db| db.counters_for(store)).await?);
                Ok(())
            }.await,
            Ok(()) = inbound.changed() => offer_inbound(&mut session, &shared).await,
            Ok(()) = orders.changed() => offer_orders(&mut session, &shared, &peer).await,
            Ok(()) = return_terms.changed() => offer_return_terms(&mut session, &shared).await,
        };
        outlive(step)?;
        flush(&mut session, &mut send).await?;
    };
    tracing::info!("store disconnected");
    result
}

/// A step that failed because HQ's database cannot be reached keeps the connection: the
/// store stays connected and keeps its records queued (nothing was acknowledged), and
/// what it asked is answered once the database is back or not at all (its own timeout).
fn outlive(step: Result<(), ConnError>) -> Result<(), ConnError> {
    match step {
        Err(ConnError::Db(e)) if e.is_unavailable() => {
            tracing::warn!(error = %e, "HQ's database cannot be reached; the store stays connected");
            Ok(())
        }
        other => other,
    }
}

/// Feeds the bytes read to the decoder and every whole message to the sync core, doing
/// what each asks; stops at the first message refused, and returns why.
async fn take_messages(
    session: &mut HqSync,
    decoder: &mut FrameDecoder,
    bytes: &[u8],
    shared: &Shared,
    peer: &PeerGuard,
) -> Result<Option<String>, ConnError> {
    decoder.push(bytes);
    loop {
        match decoder.next_store(session.protocol()) {
            Ok(Some(msg)) => {
                if let Err(e) = session.handle_message(msg) {
                    return Ok(Some(e.to_string()));
                }
                drive(session, shared, peer).await?;
            }
            Ok(None) => return Ok(None),
            Err(e) => return Ok(Some(e.to_string())),
        }
    }
}

/// Closes a connection whose store sent what HQ refuses. Nothing of the offending
/// message reached the database.
async fn refuse(conn: &quinn::Connection, send: &mut quinn::SendStream, reason: String) -> Result<(), ConnError> {
    tracing::warn!(%reason, "closing store connection");
    let _ = send.finish();
    tokio::time::sleep(Duration::from_millis(50)).await;
    conn.close(2u32.into(), reason.as_bytes());
    Err(ConnError::Protocol(reason))
}

async fn offer_nearby(session: &mut HqSync, shared: &Shared) -> Result<(), ConnError> {
    let store = session.store();
    // A neighbour's figures may be reused for a third of the interval: a view is never
    // older than that when it is sent, and says how old it is.
    let max_age_ms = i64::try_from(shared.nearby_interval.as_millis() / 3).unwrap_or(i64::MAX);
    let (as_of_ms, entries) = blocking(&shared.db, move |db| db.nearby_stock(store, now_ms(), max_age_ms)).await?;
    session.offer_nearby_stock(as_of_ms, &entries);
    Ok(())
}

/// `interval` ± 10 %, spread by store and tick (no randomness needed, only spread).
fn jittered(interval: Duration, store: StoreId, tick: u64) -> Duration {
    let spread = (u64::from(store.0).wrapping_mul(7_919) ^ tick.wrapping_mul(104_729)) % 201; // 0..=200
    interval * 9 / 10 + interval * spread as u32 / 1000
}

async fn offer_catalog(session: &mut HqSync, shared: &Shared) -> Result<(), ConnError> {
    let before = session.catalog_version();
    let Some((version, items)) = blocking(&shared.db, move |db| db.catalog_newer_than(before)).await? else {
        return Ok(()); // the common case: the store has it (no items read)
    };
    session.offer_catalog(version, &items);
    if session.catalog_version() > before {
        // Queued on the connection's stream, which carries it whole or fails: recorded as
        // the store's (its next Hello says so too).
        let (store, sent) = (session.store(), session.catalog_version());
        blocking(&shared.db, move |db| db.catalog_sent(store, sent)).await?;
    }
    Ok(())
}

/// Offers HQ's promotions; the session sends them only to a store of protocol 4 on that
/// holds an older set.
async fn offer_promotions(session: &mut HqSync, shared: &Shared) -> Result<(), ConnError> {
    if !session.needs_promotions(*shared.promotions.borrow()) {
        return Ok(()); // the common case: the store has them (no database read)
    }
    let (version, definitions) = blocking(&shared.db, |db| db.promotions()).await?;
    session.offer_promotions(version, &definitions);
    Ok(())
}

/// Offers HQ's price schedule to a store that lacks it (as its last digest said).
async fn offer_price_schedule(session: &mut HqSync, shared: &Shared) -> Result<(), ConnError> {
    if !session.needs_price_schedule(*shared.price_schedule.borrow()) {
        return Ok(()); // the common case: the store has it (no database read)
    }
    let (version, changes) = blocking(&shared.db, |db| db.price_schedule()).await?;
    session.offer_price_schedule(version, &changes);
    Ok(())
}

/// Offers the return limits and store keys the store lacks (as its last digest said):
/// one message of at most [`kassa_protocol::returns::STORE_KEYS_PER_MESSAGE_MAX`] keys;
/// a store further behind gets the next ones after its next digest.
async fn offer_return_terms(session: &mut HqSync, shared: &Shared) -> Result<(), ConnError> {
    let (limits_version, keys_head) = *shared.return_terms.borrow();
    if let Some(after) = session.needs_return_terms(limits_version, keys_head) {
        let terms = blocking(&shared.db, move |db| db.return_terms_as_of(after, limits_version, keys_head)).await?;
        session.offer_return_terms(terms);
    }
    Ok(())
}

/// Offers the orders for pickup the store has not yet accepted (a page of them) and
/// HQ's pending cancellations (protocol 5 on), at every wake: an order that became
/// offerable after later ones (paid at another store's till, through any node) is among
/// them, and one lost on the way goes again. The store keeps each order once, so
/// offering again is harmless; an order stops being offered once the store said it has it.
async fn offer_orders(session: &mut HqSync, shared: &Shared, peer: &PeerGuard) -> Result<(), ConnError> {
    if session.protocol() < 5 || session.store() != peer.store {
        return Ok(());
    }
    let store = session.store();
    let (orders, cancels) = blocking(&shared.db, move |db| db.orders_to_offer(store)).await?;
    session.offer_orders(&orders, &cancels);
    Ok(())
}

/// Offers the deliveries and transfers the store has yet to receive (protocol 5 on);
/// the store keeps each once, so offering again is harmless.
async fn offer_inbound(session: &mut HqSync, shared: &Shared) -> Result<(), ConnError> {
    if session.protocol() < 5 {
        return Ok(());
    }
    let store = session.store();
    let documents = blocking(&shared.db, move |db| db.open_inbound(store)).await?;
    session.offer_inbound(&documents);
    Ok(())
}

async fn drive(session: &mut HqSync, shared: &Shared, peer: &PeerGuard) -> Result<(), ConnError> {
    while let Some(ev) = session.poll_event() {
        match ev {
            HqEvent::Hello { actor, catalog_version, head, software_version } => {
                // Not outlived: a store not welcomed would wait for ever on a live
                // connection; it connects again instead.
                let acked = blocking(&shared.db, move |db| db.hello(actor, head, catalog_version, now_ms()))
                    .await
                    .map_err(ConnError::Unwelcomed)?;
                tracing::info!(
                    %actor,
                    acked,
                    head,
                    backlog = head.saturating_sub(acked),
                    catalog_version,
                    software = software_version.as_deref().unwrap_or("unknown"),
                    "store hello"
                );
                shared.peers.said_hello(peer.store, peer.connection, session.protocol(), software_version);
                session.accept(acked);
                offer_catalog(session, shared).await?;
                let store = actor.store;
                let entries = blocking(&shared.db, move |db| db.counters_for(store)).await?;
                session.offer_counters(&entries);
                offer_nearby(session, shared).await?;
                let (version, rules) = blocking(&shared.db, |db| db.rules()).await?;
                session.offer_rules(version, &rules);
                offer_promotions(session, shared).await?;
                offer_inbound(session, shared).await?;
                offer_orders(session, shared, peer).await?;
            }
            HqEvent::CompareDigests { actor, theirs } => {
                // The store's digest says which promotions it holds: a set that did not
                // arrive whole goes again; so do documents it has not yet received.
                offer_promotions(session, shared).await?;
                offer_price_schedule(session, shared).await?;
                offer_return_terms(session, shared).await?;
                offer_inbound(session, shared).await?;
                offer_orders(session, shared, peer).await?;
                let store = actor.store;
                let ours =
                    kassa_protocol::stock::digests(&blocking(&shared.db, move |db| db.counters_at(store)).await?);
                let find = |d: &[kassa_protocol::stock::ActorDigest], a| d.iter().find(|x| x.actor == a).cloned();
                let own_differs = find(&ours, actor) != find(&theirs, actor);
                if own_differs {
                    tracing::warn!(%actor, "counter digests differ; asking the store for its counters");
                }
                session.digests_compared(own_differs);
                if find(&ours, ActorId::HQ) != find(&theirs, ActorId::HQ) {
                    let entries = blocking(&shared.db, move |db| db.counters_for(store)).await?;
                    session.offer_counters(&entries);
                }
            }
            HqEvent::MergeCounters { entries } => {
                let n = entries.len();
                blocking(&shared.db, move |db| db.merge_counters(&entries)).await?;
                tracing::info!(entries = n, "store counters merged after a digest mismatch");
            }
            HqEvent::FindSale { actor, lookup } => {
                let (store, asked) = (actor.store, lookup.clone());
                let answer = blocking(&shared.db, move |db| db.sale_for_return_by(&asked, store, now_ms())).await?;
                tracing::info!(%actor, sale = ?lookup.sale, found = matches!(answer, kassa_protocol::returns::SaleAnswer::Found { .. }), "a till looked up a sale to return");
                session.answer_sale(lookup.request_id, answer);
            }
            HqEvent::FindHistory { actor, request } => {
                let card = request.customer.clone();
                let history = blocking(&shared.db, move |db| db.customer_history(&card)).await?.map(|(_, h)| h);
                tracing::info!(%actor, customer = %request.customer, known = history.is_some(), "a till asked for a customer's history");
                session.answer_history(request.request_id, history);
            }
            HqEvent::PlaceOrder { actor, request } => {
                let request_id = request.request_id;
                let answer = place_for_till(shared, actor, request).await?;
                session.answer_order(request_id, answer);
            }
            HqEvent::RightsRequest { actor, request } => {
                let card = request.customer.clone();
                let used = blocking(&shared.db, move |db| db.promotions_used(&card)).await?;
                session.offer_promotions_used(&request.customer, used);
                let (customer, answer) = blocking(&shared.db, move |db| db.grant_rights(actor, &request)).await?;
                if let RightsAnswer::Grant(g) = &answer {
                    tracing::info!(%actor, customer = %g.customer, granted = g.granted, "rights granted");
                }
                session.answer_rights(customer, answer);
            }
            HqEvent::Apply { actor, entries, upto, head } => {
                apply_batch(session, shared, actor, entries, upto, head).await
            }
        }
    }
    Ok(())
}

/// Applies a store's batch in one transaction with its progress and acknowledges it;
/// tells the other stores' connections what it made theirs (a transfer shipped to them,
/// an order paid at another store's till); a failure is answered so the store resends.
async fn apply_batch(
    session: &mut HqSync,
    shared: &Shared,
    actor: ActorId,
    entries: Vec<kassa_protocol::wire::OutboxEntry>,
    upto: u64,
    head: u64,
) {
    let n = entries.len();
    let (reply, outcome) = tokio::sync::oneshot::channel();
    let queued = shared.apply_queue.send(ApplyJob { actor, entries, upto, head, reply }).await;
    let stopping = || Arc::new(crate::db::DbError::Config("HQ is stopping".into()));
    let result = match queued {
        Ok(()) => outcome.await.unwrap_or_else(|_| Err(stopping())),
        Err(_) => Err(stopping()),
    };
    match result {
        Ok(crate::db::Applied { parked, deltas: _, inbound_for, orders_paid }) => {
            if !orders_paid.is_empty() {
                shared.orders.send_modify(|g| *g += 1);
            }
            if !inbound_for.is_empty() {
                tracing::info!(%actor, to = ?inbound_for, "transfer shipped; telling the receiving stores");
                shared.inbound.send_modify(|g| *g += 1);
            }
            // Catch-up progress for operators: a line per batch while behind.
            if head > upto {
                tracing::info!(%actor, entries = n, upto, head, behind = head - upto, parked, "catching up");
            } else {
                tracing::debug!(%actor, entries = n, upto, parked, "applied batch");
            }
            session.handle_applied(upto);
        }
        Err(e) => {
            tracing::error!(%actor, error = %e, "could not apply a batch; the store will resend");
            session.handle_apply_failed();
        }
    }
}

/// A till's endless-aisle order, placed as the online shop's would be; a refusal goes
/// back with its code and words, a database failure ends the connection (the till hears
/// nothing and says HQ did not answer).
async fn place_for_till(
    shared: &Shared,
    actor: ActorId,
    request: kassa_protocol::orders::OrderRequest,
) -> Result<kassa_protocol::orders::OrderAnswer, ConnError> {
    use crate::orders::{PlaceError, PlaceInput};
    use kassa_protocol::orders::{OrderAnswer, OrderChannel};
    let input = PlaceInput {
        store: request.store.0,
        lines: request
            .lines
            .iter()
            .map(|(sku, quantity)| crate::promotions::PriceRequestLine { sku: sku.0.clone(), quantity: *quantity })
            .collect(),
        payment: request.payment,
        customer: request.customer,
        phone: request.phone,
        note: request.note,
        coupons: Vec::new(),
        pickup_hours: i64::from(request.pickup_hours),
        channel: OrderChannel::Store(actor.store),
        request_key: Some(format!("till:{}:{}:{}", actor.store, actor.epoch, request.request_id)),
        audit: crate::db::NewAudit {
            at_ms: now_ms(),
            actor_kind: "store",
            actor: format!("store {}", actor.store),
            action: "order.place",
            summary: serde_json::Value::Null,
        },
    };
    match crate::orders::place(shared, input, now_ms()).await {
        Ok((order, _)) => {
            tracing::info!(%actor, order = %order.id, to = order.store.0, "a till's order placed");
            Ok(OrderAnswer::Placed(order))
        }
        Err(PlaceError::Db(e)) => Err(e.into()),
        Err(e) => {
            tracing::info!(%actor, code = e.code(), reason = %e, "a till's order refused");
            Ok(OrderAnswer::Refused { code: e.code().to_owned(), message: e.to_string() })
        }
    }
}

async fn flush(session: &mut HqSync, send: &mut quinn::SendStream) -> Result<(), ConnError> {
    while let Some(msg) = session.poll_transmit() {
        let frame = wire::encode_hq(session.protocol(), &msg).map_err(|e| ConnError::Protocol(e.to_string()))?;
        send.write_all(&frame).await?;
    }
    Ok(())
}
