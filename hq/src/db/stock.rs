//! The SQL of stock movements at HQ (schema version 5): the movements stores send
//! (receipts, counts, write-offs, transfers) and the documents stores are to receive
//! (deliveries HQ announces, transfers another store shipped).
//!
//! A movement is applied once, by `(store, seq)`, in the batch's transaction, like a
//! sale; its stock change arrives as the store's running totals and is max-merged with
//! the batch's other counters by the caller. A transfer out opens an inbound document for
//! the receiving store; a receipt or transfer in that names a document closes it.

use super::sql::{self, params, Connection, OptionalExtension, Transaction};
use kassa_protocol::format::v3 as data;
use kassa_protocol::movements::{Inbound, InboundLine, InboundSource, Movement, MovementError, MovementKind};
use kassa_protocol::{Sku, StoreId};
use serde::Serialize;

use super::access::audit_in;
use super::{Db, DbError, NewAudit};

/// Open (not yet received) deliveries HQ keeps per store: a store that never receives
/// them is a problem for a person, not a queue to grow without end.
pub const DELIVERIES_OPEN_MAX: usize = 256;
/// Movements one listing returns.
pub const MOVEMENTS_PAGE_MAX: usize = 1000;

pub(super) const SCHEMA_V5: &str = "
ALTER TABLE sales ADD COLUMN format INTEGER;
ALTER TABLE parked ADD COLUMN format INTEGER;
CREATE TABLE sale_line_promotions (
    store INTEGER NOT NULL, seq INTEGER NOT NULL, line_no INTEGER NOT NULL, promotion INTEGER NOT NULL,
    version INTEGER NOT NULL, name TEXT NOT NULL, amount_kopecks INTEGER NOT NULL,
    PRIMARY KEY (store, seq, line_no, promotion)
) STRICT, WITHOUT ROWID;
CREATE TABLE movements (
    store INTEGER NOT NULL, seq INTEGER NOT NULL, reason TEXT NOT NULL, source TEXT, by_user TEXT NOT NULL,
    approved_by TEXT, note TEXT NOT NULL, at_ms INTEGER NOT NULL, applied_at_ms INTEGER NOT NULL,
    record BLOB NOT NULL, format INTEGER NOT NULL, PRIMARY KEY (store, seq)
) STRICT;
CREATE INDEX movements_by_time ON movements (store, at_ms);
CREATE TABLE movement_lines (
    store INTEGER NOT NULL, seq INTEGER NOT NULL, sku TEXT NOT NULL, name TEXT NOT NULL,
    quantity INTEGER NOT NULL, expected INTEGER, PRIMARY KEY (store, seq, sku)
) STRICT, WITHOUT ROWID;
CREATE TABLE inbound (
    store INTEGER NOT NULL, source TEXT NOT NULL, doc BLOB NOT NULL, format INTEGER NOT NULL,
    created_at_ms INTEGER NOT NULL, received_seq INTEGER, received_at_ms INTEGER,
    PRIMARY KEY (store, source)
) STRICT;
CREATE INDEX inbound_open ON inbound (store) WHERE received_seq IS NULL;
";

/// A document as HQ lists it: what it is, where it goes, and whether it arrived.
#[derive(Debug, Clone, Serialize)]
pub struct InboundRow {
    pub source: String,
    pub store: u32,
    /// For a transfer, the store that shipped it.
    pub from_store: Option<u32>,
    pub created_at_ms: i64,
    pub lines: Vec<InboundLineRow>,
    /// The receiving store's movement, once received.
    pub received_seq: Option<u64>,
    pub received_at_ms: Option<i64>,
    /// Per SKU, received minus shipped or announced (negative: short), once received.
    pub differences: Vec<InboundLineRow>,
}

#[derive(Debug, Clone, Serialize)]
pub struct InboundLineRow {
    pub sku: String,
    pub name: String,
    pub quantity: i64,
}

/// Stock moved at a store by one reason and SKU over a period.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct MovementTotal {
    pub reason: String,
    pub sku: String,
    pub quantity: i64,
}

/// Applies one movement of a store's batch (once: a resend changes nothing); returns
/// the store that now has a transfer to receive, if it was a transfer out.
pub(super) fn apply_movement(tx: &Transaction<'_>, m: &Movement, now_ms: i64) -> Result<Option<StoreId>, DbError> {
    let source = m.kind.source_key();
    let inserted = tx
        .prepare_cached(
            "INSERT INTO movements (store, seq, reason, source, by_user, approved_by, note, at_ms, applied_at_ms, record, format)
             VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,3) ON CONFLICT DO NOTHING",
        )?
        .execute(params![
            m.id.store.0,
            m.id.seq as i64,
            m.kind.reason(),
            source,
            m.by,
            m.approved_by,
            m.note,
            m.created_at_ms,
            now_ms,
            super::format::encode(&data::Movement::from(m)),
        ])?;
    if inserted == 0 {
        return Ok(None);
    }
    let mut insert = tx.prepare_cached(
        "INSERT INTO movement_lines (store, seq, sku, name, quantity, expected) VALUES (?1,?2,?3,?4,?5,?6)",
    )?;
    for l in &m.lines {
        insert.execute(params![m.id.store.0, m.id.seq as i64, l.sku.as_str(), l.name, l.quantity, l.expected])?;
    }
    if let Some(doc) = m.kind.received() {
        let source = doc.key();
        tx.prepare_cached(
            "UPDATE inbound SET received_seq = ?3, received_at_ms = ?4 WHERE store = ?1 AND source = ?2 AND received_seq IS NULL",
        )?
        .execute(params![m.id.store.0, source, m.id.seq as i64, m.created_at_ms])?;
    }
    if let MovementKind::TransferOut { to } = m.kind {
        let doc = Inbound {
            source: InboundSource::Transfer(m.id),
            store: to,
            lines: m
                .lines
                .iter()
                .map(|l| InboundLine { sku: l.sku.clone(), name: l.name.clone(), quantity: -l.quantity })
                .collect(),
            created_at_ms: m.created_at_ms,
        };
        insert_inbound(tx, &doc)?;
        return Ok(Some(to));
    }
    Ok(None)
}

fn insert_inbound(conn: &Connection, doc: &Inbound) -> Result<(), DbError> {
    conn.prepare_cached(
        "INSERT INTO inbound (store, source, doc, format, created_at_ms) VALUES (?1, ?2, ?3, 3, ?4) ON CONFLICT DO NOTHING",
    )?
    .execute(params![
        doc.store.0,
        doc.source.key(),
        super::format::encode(&data::Inbound::from(doc)),
        doc.created_at_ms
    ])?;
    Ok(())
}

fn decode_inbound(blob: &[u8]) -> Result<Inbound, DbError> {
    super::format::decode::<data::Inbound>(blob, "inbound document")
        .and_then(TryInto::try_into)
        .map_err(|e| DbError::Corrupt(e.to_string()))
}

/// Why a delivery is refused; nothing is written.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("line {line}: unknown SKU {sku}")]
    UnknownSku { line: usize, sku: String },
    #[error(transparent)]
    Invalid(#[from] MovementError),
    #[error("store {store} has {DELIVERIES_OPEN_MAX} deliveries not yet received")]
    TooManyOpen { store: u32 },
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<sql::Error> for DeliveryError {
    fn from(e: sql::Error) -> Self {
        DeliveryError::Db(e.into())
    }
}

impl Db {
    /// Announces a delivery to a store: lines of catalog SKUs with quantities; the store
    /// receives it against this announcement. Returns the document.
    pub fn create_delivery(
        &self,
        store: StoreId,
        lines: &[(Sku, i64)],
        audit: &NewAudit,
        now_ms: i64,
    ) -> Result<Inbound, DeliveryError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        let mut doc_lines = Vec::with_capacity(lines.len());
        for (i, (sku, quantity)) in lines.iter().enumerate() {
            let name: Option<String> =
                tx.query_row("SELECT name FROM catalog WHERE sku = ?1", [sku.as_str()], |r| r.get(0)).optional()?;
            let name = name.ok_or_else(|| DeliveryError::UnknownSku { line: i + 1, sku: sku.0.clone() })?;
            doc_lines.push(InboundLine { sku: sku.clone(), name, quantity: *quantity });
        }
        let open: i64 = tx.query_row(
            "SELECT COUNT(*) FROM inbound WHERE store = ?1 AND received_seq IS NULL AND source LIKE 'delivery:%'",
            [store.0],
            |r| r.get(0),
        )?;
        if open as usize >= DELIVERIES_OPEN_MAX {
            return Err(DeliveryError::TooManyOpen { store: store.0 });
        }
        let number = super::meta(&tx, "delivery_seq")? + 1;
        super::set_meta(&tx, "delivery_seq", number)?;
        let doc = Inbound { source: InboundSource::Delivery(number), store, lines: doc_lines, created_at_ms: now_ms };
        doc.validate()?;
        insert_inbound(&tx, &doc)?;
        let mut audit = audit.clone();
        audit.summary = serde_json::json!({ "store": store.0, "delivery": number, "lines": lines.len() });
        audit_in(&tx, &audit)?;
        tx.commit()?;
        Ok(doc)
    }

    /// The documents a store has yet to receive, oldest first.
    pub fn open_inbound(&self, store: StoreId) -> Result<Vec<Inbound>, DbError> {
        let conn = self.conn()?;
        let mut st = conn.prepare_cached(
            "SELECT doc FROM inbound WHERE store = ?1 AND received_seq IS NULL ORDER BY created_at_ms, source",
        )?;
        let blobs: Vec<Vec<u8>> = st.query_map([store.0], |r| r.get(0))?.collect::<Result<_, _>>()?;
        blobs.iter().map(|b| decode_inbound(b)).collect()
    }

    /// Documents (deliveries and transfers), for one store or all; only those not yet
    /// received if `open_only` (transfers then are the goods in transit).
    pub fn inbound_rows(&self, store: Option<StoreId>, open_only: bool) -> Result<Vec<InboundRow>, DbError> {
        let conn = self.conn()?;
        let mut st = conn.prepare_cached(
            "SELECT doc, received_seq, received_at_ms FROM inbound
             WHERE (CAST(?1 AS BIGINT) IS NULL OR store = ?1) AND (?2 = 0 OR received_seq IS NULL) ORDER BY created_at_ms DESC LIMIT ?3",
        )?;
        let rows: Vec<(Vec<u8>, Option<i64>, Option<i64>)> = st
            .query_map(params![store.map(|s| s.0), open_only, MOVEMENTS_PAGE_MAX as i64], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?
            .collect::<Result<_, _>>()?;
        rows.into_iter()
            .map(|(blob, received_seq, received_at_ms)| {
                let doc = decode_inbound(&blob)?;
                let differences = match received_seq {
                    Some(seq) => differences(&conn, doc.store, seq as u64)?,
                    None => Vec::new(),
                };
                Ok(InboundRow {
                    source: doc.source.key(),
                    store: doc.store.0,
                    from_store: match doc.source {
                        InboundSource::Transfer(id) => Some(id.store.0),
                        InboundSource::Delivery(_) => None,
                    },
                    created_at_ms: doc.created_at_ms,
                    lines: doc
                        .lines
                        .iter()
                        .map(|l| InboundLineRow { sku: l.sku.0.clone(), name: l.name.clone(), quantity: l.quantity })
                        .collect(),
                    received_seq: received_seq.map(|s| s as u64),
                    received_at_ms,
                    differences,
                })
            })
            .collect()
    }

    /// A store's movements from `from_ms` to `to_ms` (by when the store made them),
    /// newest first.
    pub fn movements(&self, store: StoreId, from_ms: i64, to_ms: i64) -> Result<Vec<Movement>, DbError> {
        let conn = self.conn()?;
        let mut st = conn.prepare_cached(
            "SELECT record FROM movements WHERE store = ?1 AND at_ms >= ?2 AND at_ms < ?3 ORDER BY at_ms DESC, seq DESC LIMIT ?4",
        )?;
        let blobs: Vec<Vec<u8>> = st
            .query_map(params![store.0, from_ms, to_ms, MOVEMENTS_PAGE_MAX as i64], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        blobs
            .iter()
            .map(|b| {
                super::format::decode::<data::Movement>(b, "movement")
                    .and_then(TryInto::try_into)
                    .map_err(|e| DbError::Corrupt(e.to_string()))
            })
            .collect()
    }

    /// A store's stock moved per reason and SKU over a period: sales and returns from
    /// their lines, everything else from movements.
    pub fn movement_totals(&self, store: StoreId, from_ms: i64, to_ms: i64) -> Result<Vec<MovementTotal>, DbError> {
        let conn = self.conn()?;
        let mut st = conn.prepare_cached(
            "SELECT m.reason, l.sku, SUM(l.quantity) FROM movements m
               JOIN movement_lines l ON l.store = m.store AND l.seq = m.seq
             WHERE m.store = ?1 AND m.at_ms >= ?2 AND m.at_ms < ?3 GROUP BY m.reason, l.sku
             UNION ALL
             SELECT s.kind, l.sku, SUM(-l.quantity) FROM sales s
               JOIN sale_lines l ON l.store = s.store AND l.seq = s.seq
             WHERE s.store = ?1 AND s.created_at_ms >= ?2 AND s.created_at_ms < ?3 GROUP BY s.kind, l.sku
             ORDER BY 1, 2",
        )?;
        let rows = st.query_map(params![store.0, from_ms, to_ms], |r| {
            Ok(MovementTotal { reason: r.get(0)?, sku: r.get(1)?, quantity: r.get(2)? })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// What a received document's movement says differed, per SKU.
fn differences(conn: &Connection, store: StoreId, seq: u64) -> Result<Vec<InboundLineRow>, DbError> {
    let mut st = conn.prepare_cached(
        "SELECT sku, name, quantity - expected FROM movement_lines
         WHERE store = ?1 AND seq = ?2 AND expected IS NOT NULL AND quantity != expected ORDER BY sku",
    )?;
    let rows = st.query_map(params![store.0, seq as i64], |r| {
        Ok(InboundLineRow { sku: r.get(0)?, name: r.get(1)?, quantity: r.get(2)? })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}
