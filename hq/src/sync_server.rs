//! The QUIC shell around [`HqSync`]: one task per store connection.
//!
//! ```text
//! accept loop ──spawns──▶ connection task (one per store)
//!                          ├─ reads frames ─▶ HqSync ─▶ events ─▶ Db (spawn_blocking)
//!                          └─ watches catalog / counter publications ─▶ HqSync offers
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kassa_protocol::loyalty::RightsAnswer;
use kassa_protocol::sync::{HqEvent, HqSync};
use kassa_protocol::wire::{encode, FrameDecoder, StoreMessage};
use kassa_protocol::{ActorId, StoreId};
use tokio::sync::{watch, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::db::Db;
use crate::pki::store_of_certificate;

/// Concurrent store connections; beyond this a store waits for its retry.
pub const CONNECTIONS_MAX: usize = 1024;
/// How often a connected store gets a fresh view of its neighbours' stock: fresh enough
/// for "where else is it in stock", cheap enough for a fleet.
pub const NEARBY_INTERVAL: Duration = Duration::from_secs(15);
/// Bytes read from a stream per call.
const READ_CHUNK_BYTES: usize = 64 * 1024;

/// What every connection task shares.
#[derive(Debug, Clone)]
pub struct Shared {
    pub db: Arc<Db>,
    /// The published catalog version; connections offer each new one.
    pub catalog: watch::Sender<u64>,
    /// Bumped whenever HQ books counter changes (deliveries) to offer stores.
    pub counters: watch::Sender<u64>,
    pub nearby_interval: Duration,
    pub metrics: Arc<Metrics>,
}

/// Counters for `/metrics` and the benchmarks: how much HQ merged and how long it took.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Outbox entries applied (sales, returns, loyalty changes), duplicates included.
    pub applied_entries: AtomicU64,
    /// Stock deltas (counter entries) those entries carried.
    pub applied_deltas: AtomicU64,
    /// Time spent applying them, from handing a batch to the database to its commit.
    pub apply_micros: AtomicU64,
    /// Batches applied.
    pub applied_batches: AtomicU64,
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
        tasks.spawn(async move {
            let remote = incoming.remote_address();
            match serve(incoming, shared, cancel).await {
                Ok(()) => {}
                Err(e) if e.is_hang_up() => tracing::info!(%remote, "store hung up"),
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
    #[error("stream: {0}")]
    Read(#[from] quinn::ReadError),
    #[error("stream: {0}")]
    Write(#[from] quinn::WriteError),
    #[error("protocol: {0}")]
    Protocol(String),
    #[error("database: {0}")]
    Db(#[from] crate::db::DbError),
}

impl ConnError {
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
    let identity = conn.peer_identity()?;
    let certs = identity.downcast_ref::<Vec<rustls::pki_types::CertificateDer<'static>>>()?;
    store_of_certificate(certs.first()?)
}

async fn serve(incoming: quinn::Incoming, shared: Shared, cancel: CancellationToken) -> Result<(), ConnError> {
    let conn = incoming.await?;
    let Some(store) = peer_store(&conn) else {
        conn.close(1u32.into(), b"certificate names no store");
        return Err(ConnError::NoIdentity);
    };
    let span = tracing::info_span!("store", %store, remote = %conn.remote_address());
    session(conn, store, shared, cancel).instrument(span).await
}

async fn session(
    conn: quinn::Connection,
    store: StoreId,
    shared: Shared,
    cancel: CancellationToken,
) -> Result<(), ConnError> {
    tracing::info!("store connected");
    let (mut send, mut recv) = tokio::select! {
        _ = cancel.cancelled() => return Ok(()),
        s = conn.accept_bi() => s?,
    };
    let mut session = HqSync::new(store);
    let mut decoder = FrameDecoder::default();
    let mut buf = vec![0u8; READ_CHUNK_BYTES];
    let mut catalog = shared.catalog.subscribe();
    let mut counters = shared.counters.subscribe();
    // The first view goes out with the handshake; the next ones at the interval, give or
    // take a tenth, so that stores that connected together (after HQ restarts) do not
    // all ask at the same moment forever after.
    let mut nearby_ticks = 0u64;
    let nearby = tokio::time::sleep(jittered(shared.nearby_interval, store, nearby_ticks));
    tokio::pin!(nearby);
    let result = loop {
        tokio::select! {
            _ = &mut nearby => {
                nearby_ticks += 1;
                nearby.as_mut().reset(tokio::time::Instant::now() + jittered(shared.nearby_interval, store, nearby_ticks));
                offer_nearby(&mut session, &shared).await?;
                flush(&mut session, &mut send).await?;
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
                decoder.push(&buf[..n]);
                let mut failed = None;
                loop {
                    match decoder.decode_next::<StoreMessage>() {
                        Ok(Some(msg)) => {
                            if let Err(e) = session.handle_message(msg) {
                                failed = Some(e.to_string());
                                break;
                            }
                            drive(&mut session, &shared).await?;
                        }
                        Ok(None) => break,
                        Err(e) => {
                            failed = Some(e.to_string());
                            break;
                        }
                    }
                }
                flush(&mut session, &mut send).await?;
                if let Some(reason) = failed {
                    // Refused: nothing of the offending message reached the database.
                    tracing::warn!(%reason, "closing store connection");
                    let _ = send.finish();
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    conn.close(2u32.into(), reason.as_bytes());
                    return Err(ConnError::Protocol(reason));
                }
            }
            Ok(()) = catalog.changed() => {
                offer_catalog(&mut session, &shared).await?;
                let (version, rules) = blocking(&shared.db, |db| db.rules()).await?;
                session.offer_rules(version, &rules);
                flush(&mut session, &mut send).await?;
            }
            Ok(()) = counters.changed() => {
                let entries = blocking(&shared.db, move |db| db.counters_for(store)).await?;
                session.offer_counters(&entries);
                flush(&mut session, &mut send).await?;
            }
        }
    };
    tracing::info!("store disconnected");
    result
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
    let (version, items) = blocking(&shared.db, |db| Ok((db.catalog_version()?, db.catalog()?))).await?;
    session.offer_catalog(version, &items);
    Ok(())
}

async fn drive(session: &mut HqSync, shared: &Shared) -> Result<(), ConnError> {
    while let Some(ev) = session.poll_event() {
        match ev {
            HqEvent::Hello { actor, catalog_version, head } => {
                let acked = blocking(&shared.db, move |db| db.hello(actor, head, now_ms())).await?;
                tracing::info!(%actor, acked, head, backlog = head.saturating_sub(acked), catalog_version, "store hello");
                session.accept(acked);
                offer_catalog(session, shared).await?;
                let store = actor.store;
                let entries = blocking(&shared.db, move |db| db.counters_for(store)).await?;
                session.offer_counters(&entries);
                offer_nearby(session, shared).await?;
                let (version, rules) = blocking(&shared.db, |db| db.rules()).await?;
                session.offer_rules(version, &rules);
            }
            HqEvent::CompareDigests { actor, theirs } => {
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
            HqEvent::RightsRequest { actor, request } => {
                let (customer, answer) = blocking(&shared.db, move |db| db.grant_rights(actor, &request)).await?;
                if let RightsAnswer::Grant(g) = &answer {
                    tracing::info!(%actor, customer = %g.customer, granted = g.granted, "rights granted");
                }
                session.answer_rights(customer, answer);
            }
            HqEvent::Apply { actor, entries, upto, head } => {
                let n = entries.len();
                let started = std::time::Instant::now();
                match blocking(&shared.db, move |db| db.apply(actor, &entries, upto, head, now_ms())).await {
                    Ok(crate::db::Applied { parked, deltas }) => {
                        let m = &shared.metrics;
                        m.apply_micros.fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
                        m.applied_entries.fetch_add(n as u64, Ordering::Relaxed);
                        m.applied_deltas.fetch_add(deltas as u64, Ordering::Relaxed);
                        m.applied_batches.fetch_add(1, Ordering::Relaxed);
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
        }
    }
    Ok(())
}

async fn flush(session: &mut HqSync, send: &mut quinn::SendStream) -> Result<(), ConnError> {
    while let Some(msg) = session.poll_transmit() {
        let frame = encode(&msg).map_err(|e| ConnError::Protocol(e.to_string()))?;
        send.write_all(&frame).await?;
    }
    Ok(())
}
