//! Stock movements other than sales: goods received (against a delivery or transfer HQ
//! announced, or unannounced with a manager's approval), written off, shipped to
//! another store, and stock counts. Each movement commits like a sale: its record in the
//! chain, its query rows, the store's stock counters, and its outbox entry for HQ, in one
//! transaction under an idempotency key.

use std::collections::BTreeMap;

use kassa_protocol::catalog::{CatalogItem, Unit};
use kassa_protocol::movements::{
    count_adjustments, count_key, CountedSku, Inbound, Movement, MovementError, MovementId, MovementKind, MovementLine,
    WriteOffReason, MOVEMENT_LINES_MAX, MOVEMENT_QUANTITY_MAX,
};
use kassa_protocol::wire::Change;
use kassa_protocol::{Kopecks, Sku, StoreId};
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use super::outbox::push_outbox;
use super::sales::item;
use super::types::Record;
use super::{chain, exec, format, idempotent, query_row, Journal, JournalError, RequestDigest, WriteError};

/// Goods written off beyond this value (at list price) need a manager's approval.
pub const WRITE_OFF_UNAPPROVED_MAX: Kopecks = Kopecks(100_000);
/// Open stock counts at once: counts are meant to be finished.
pub const OPEN_COUNTS_MAX: usize = 8;
/// Movements one listing returns.
pub const MOVEMENTS_PAGE_MAX: usize = 500;

/// A movement as the store's staff ask for it; quantities are positive, in pieces or
/// grams, and the kind says which way they go.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum MovementRequest {
    /// What arrived; against an announced delivery or transfer (`source`), or without
    /// one (a manager approves).
    Receive {
        source: Option<String>,
        lines: Vec<(Sku, i64)>,
    },
    WriteOff {
        reason: WriteOffReason,
        lines: Vec<(Sku, i64)>,
    },
    TransferOut {
        to: StoreId,
        lines: Vec<(Sku, i64)>,
    },
}

/// What a count covers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CountScope {
    /// Every SKU with stock.
    Everything,
    /// Every SKU of these categories.
    Categories(Vec<String>),
    /// A shelf list: these SKUs.
    Shelf(Vec<Sku>),
}

/// How a scope is kept in `counts.categories`: NULL for everything, a JSON array of
/// categories (as the first journals of schema 5 wrote it), or `{"skus": [...]}`.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum StoredScope {
    Categories(Vec<String>),
    Shelf { skus: Vec<Sku> },
}

impl CountScope {
    fn to_stored(&self) -> Option<String> {
        let stored = match self {
            CountScope::Everything => return None,
            CountScope::Categories(c) => StoredScope::Categories(c.clone()),
            CountScope::Shelf(skus) => StoredScope::Shelf { skus: skus.clone() },
        };
        Some(serde_json::to_string(&stored).expect("strings serialise"))
    }

    fn from_stored(id: u64, column: Option<String>) -> Result<CountScope, JournalError> {
        let Some(text) = column else { return Ok(CountScope::Everything) };
        match serde_json::from_str(&text) {
            Ok(StoredScope::Categories(c)) => Ok(CountScope::Categories(c)),
            Ok(StoredScope::Shelf { skus }) => Ok(CountScope::Shelf(skus)),
            Err(e) => Err(JournalError::Corrupt(format!("count {id}'s scope: {e}"))),
        }
    }

    /// Whether an item of `sku` and `category` is in the count.
    fn covers(&self, sku: &Sku, category: &str) -> bool {
        match self {
            CountScope::Everything => true,
            CountScope::Categories(c) => c.iter().any(|x| x == category),
            CountScope::Shelf(skus) => skus.contains(sku),
        }
    }
}

/// One SKU of a count's report.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CountReportLine {
    pub sku: Sku,
    pub name: String,
    /// Book quantity when first counted (for a SKU nobody counted: now).
    pub book: i64,
    pub counted: i64,
    pub difference: i64,
    /// In scope but nobody counted it: counted as none when posted.
    pub uncounted: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CountReport {
    pub id: u64,
    pub started_by: String,
    pub started_at_ms: i64,
    /// `None`: a full count (or a shelf list); else the categories counted.
    pub categories: Option<Vec<String>>,
    /// A shelf list: only these SKUs are counted.
    pub skus: Option<Vec<Sku>>,
    pub lines: Vec<CountReportLine>,
    /// The movement that posted it (its sequence at the store), once posted.
    pub posted: Option<u64>,
}

/// A SKU's stock at the store.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct StockLevel {
    pub sku: Sku,
    pub name: String,
    pub on_hand: i64,
}

/// A movement's idempotency key keeps its sequence; the record holds the movement.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MovementRef {
    movement: u64,
}

impl super::Response for Movement {
    fn to_stored(&self) -> Result<String, JournalError> {
        serde_json::to_string(&MovementRef { movement: self.id.seq }).map_err(|e| JournalError::Corrupt(e.to_string()))
    }

    fn from_stored(conn: &Connection, stored: &str) -> Result<Self, JournalError> {
        let r: MovementRef = serde_json::from_str(stored).map_err(|e| JournalError::Corrupt(e.to_string()))?;
        movement(conn, r.movement)?.ok_or_else(|| JournalError::Corrupt(format!("no movement {}", r.movement)))
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CountRef {
    count: u64,
}

impl super::Response for CountReport {
    fn to_stored(&self) -> Result<String, JournalError> {
        serde_json::to_string(&CountRef { count: self.id }).map_err(|e| JournalError::Corrupt(e.to_string()))
    }

    fn from_stored(conn: &Connection, stored: &str) -> Result<Self, JournalError> {
        let r: CountRef = serde_json::from_str(stored).map_err(|e| JournalError::Corrupt(e.to_string()))?;
        count_report(conn, r.count)?.ok_or_else(|| JournalError::Corrupt(format!("no count {}", r.count)))
    }
}

impl Journal {
    /// Records a movement: receipt, write-off or transfer out. A key seen before answers
    /// the movement it made (`true` = replayed) and writes nothing.
    #[allow(clippy::too_many_arguments)]
    pub fn record_movement(
        &self,
        terminal: u16,
        user: &str,
        request: &MovementRequest,
        approved_by: Option<&str>,
        note: &str,
        key: &str,
        now_ms: i64,
    ) -> Result<(Movement, bool), WriteError> {
        let digest = RequestDigest::of("movement", &(request, approved_by, note));
        let conn = self.conn();
        idempotent(&conn, key, "movement", digest, |tx| {
            let (kind, lines) = plan_movement(tx, request, approved_by)?;
            let movement = Movement {
                id: MovementId { store: self.store, seq: next_movement_seq(tx)? },
                kind,
                lines,
                by: user.to_owned(),
                approved_by: approved_by.map(str::to_owned),
                note: note.to_owned(),
                created_at_ms: now_ms,
            };
            self.commit_movement(tx, terminal, movement)
        })
    }

    /// Writes a planned movement: record, query rows, counters, outbox entry.
    fn commit_movement(&self, tx: &Connection, terminal: u16, movement: Movement) -> Result<Movement, WriteError> {
        movement.validate()?;
        let record = Record::Movement { movement: movement.clone() };
        let record_seq = chain::append(tx, terminal, &movement.by, movement.created_at_ms, &record)?;
        exec(
            tx,
            "INSERT INTO movements (seq, record_seq, reason, source, at_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                movement.id.seq as i64,
                record_seq,
                movement.kind.reason(),
                movement.kind.source_key(),
                movement.created_at_ms
            ],
        )?;
        for l in &movement.lines {
            exec(
                tx,
                "INSERT INTO movement_lines (seq, sku, quantity, expected) VALUES (?1, ?2, ?3, ?4)",
                params![movement.id.seq as i64, l.sku.as_str(), l.quantity, l.expected],
            )?;
        }
        let counters = self.count(tx, movement.counter_moves())?;
        push_outbox(tx, Change::Movement { movement: movement.clone(), counters })?;
        Ok(movement)
    }

    /// Keeps a delivery or transfer HQ says is coming; `false` if it was already kept.
    pub fn keep_inbound(&self, doc: &Inbound, now_ms: i64) -> Result<bool, JournalError> {
        let n = self.conn().execute(
            "INSERT OR IGNORE INTO inbound (source, doc, format, arrived_at_ms) VALUES (?1, ?2, ?3, ?4)",
            params![doc.source.key(), format::encode_inbound(doc), format::INBOUND_FORMAT, now_ms],
        )?;
        Ok(n == 1)
    }

    /// Deliveries and transfers announced and not yet received, oldest first.
    pub fn open_inbound(&self) -> Result<Vec<Inbound>, JournalError> {
        let conn = self.conn();
        let mut st = conn.prepare_cached(
            "SELECT doc, format FROM inbound WHERE source NOT IN (SELECT source FROM movements WHERE source IS NOT NULL)
             ORDER BY arrived_at_ms, source",
        )?;
        let rows = st.query_map([], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, u32>(1)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (doc, f) = row?;
            out.push(format::decode_inbound(&doc, f)?);
        }
        Ok(out)
    }

    /// Movements recorded from `from_ms` (inclusive) to `to_ms` (exclusive), newest first.
    pub fn movements(&self, from_ms: i64, to_ms: i64) -> Result<Vec<Movement>, JournalError> {
        let conn = self.conn();
        let mut st = conn
            .prepare_cached("SELECT seq FROM movements WHERE at_ms >= ?1 AND at_ms < ?2 ORDER BY seq DESC LIMIT ?3")?;
        let seqs: Vec<i64> = st
            .query_map(params![from_ms, to_ms, MOVEMENTS_PAGE_MAX as i64], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        let mut out = Vec::with_capacity(seqs.len());
        for seq in seqs {
            out.extend(movement(&conn, seq as u64)?);
        }
        Ok(out)
    }

    /// Stock on hand of every SKU the catalog has or the counters know, by SKU.
    pub fn stock_levels(&self) -> Result<Vec<StockLevel>, JournalError> {
        let conn = self.conn();
        let mut st = conn.prepare_cached(
            "SELECT s.sku, COALESCE(c.name, ''), s.on_hand FROM
               (SELECT sku, SUM(p - n) AS on_hand FROM stock_counters GROUP BY sku
                UNION ALL SELECT sku, 0 FROM catalog WHERE sku NOT IN (SELECT sku FROM stock_counters)) s
             LEFT JOIN catalog c ON c.sku = s.sku ORDER BY s.sku",
        )?;
        let rows = st.query_map([], |r| Ok(StockLevel { sku: Sku(r.get(0)?), name: r.get(1)?, on_hand: r.get(2)? }))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Starts a stock count of everything, of some categories, or of a shelf list.
    pub fn start_count(
        &self,
        user: &str,
        scope: CountScope,
        key: &str,
        now_ms: i64,
    ) -> Result<(CountReport, bool), WriteError> {
        let digest = RequestDigest::of("count_start", &scope);
        let conn = self.conn();
        idempotent(&conn, key, "count_start", digest, |tx| {
            let open: i64 = query_row(
                tx,
                "SELECT COUNT(*) FROM counts WHERE ('count:' || id) NOT IN
                   (SELECT source FROM movements WHERE source IS NOT NULL)",
                [],
                |r| r.get(0),
            )?;
            if open as usize >= OPEN_COUNTS_MAX {
                return Err(WriteError::TooManyCounts);
            }
            if let CountScope::Shelf(skus) = &scope {
                if skus.is_empty() || skus.len() > MOVEMENT_LINES_MAX {
                    return Err(MovementError::TooManyLines.into());
                }
            }
            let scope = scope.to_stored();
            exec(
                tx,
                "INSERT INTO counts (started_by, started_at_ms, categories) VALUES (?1, ?2, ?3)",
                params![user, now_ms, scope],
            )?;
            let id = tx.last_insert_rowid() as u64;
            Ok(count_report(tx, id)?.expect("just started"))
        })
    }

    /// Adds what one person counted of one SKU (a negative quantity corrects a mistake;
    /// a SKU's count never goes below zero). The SKU's book quantity is taken when it
    /// is first counted.
    #[allow(clippy::too_many_arguments)]
    pub fn count_scan(
        &self,
        count: u64,
        user: &str,
        sku: &Sku,
        quantity: i64,
        key: &str,
        now_ms: i64,
    ) -> Result<(CountReport, bool), WriteError> {
        let digest = RequestDigest::of("count_scan", &(count, sku, quantity));
        let conn = self.conn();
        idempotent(&conn, key, "count_scan", digest, |tx| {
            let report = count_report(tx, count)?.ok_or(WriteError::NoSuchCount(count))?;
            if report.posted.is_some() {
                return Err(WriteError::CountPosted(count));
            }
            let item = item(tx, sku)?.ok_or_else(|| WriteError::UnknownSku(sku.clone()))?;
            if !report.scope().covers(&item.sku, &item.category) {
                return Err(WriteError::OutOfCount(item.sku));
            }
            let so_far = report.lines.iter().find(|l| &l.sku == sku && !l.uncounted).map_or(0, |l| l.counted);
            let total = so_far.checked_add(quantity).ok_or(WriteError::Overflow)?;
            if quantity == 0 || !(0..=MOVEMENT_QUANTITY_MAX).contains(&total) {
                return Err(MovementError::Quantity { sku: sku.clone() }.into());
            }
            if so_far == 0 && report.lines.iter().filter(|l| !l.uncounted).count() >= MOVEMENT_LINES_MAX {
                return Err(MovementError::TooManyLines.into());
            }
            exec(
                tx,
                "INSERT OR IGNORE INTO count_book (count_id, sku, book)
                 SELECT ?1, ?2, COALESCE(SUM(p - n), 0) FROM stock_counters WHERE sku = ?2",
                params![count as i64, item.sku.as_str()],
            )?;
            exec(
                tx,
                "INSERT INTO count_scans (count_id, idx, sku, quantity, by_user, at_ms)
                 SELECT ?1, COALESCE(MAX(idx), 0) + 1, ?2, ?3, ?4, ?5 FROM count_scans WHERE count_id = ?1",
                params![count as i64, item.sku.as_str(), quantity, user, now_ms],
            )?;
            Ok(count_report(tx, count)?.expect("exists"))
        })
    }

    /// The report of a count (open or posted).
    pub fn count_report(&self, count: u64) -> Result<Option<CountReport>, JournalError> {
        count_report(&self.conn(), count)
    }

    /// Counts not yet posted, newest first.
    pub fn open_counts(&self) -> Result<Vec<CountReport>, JournalError> {
        let conn = self.conn();
        let ids: Vec<i64> = conn
            .prepare_cached(
                "SELECT id FROM counts WHERE ('count:' || id) NOT IN
                   (SELECT source FROM movements WHERE source IS NOT NULL) ORDER BY id DESC",
            )?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        let mut out = Vec::new();
        for id in ids {
            out.extend(count_report(&conn, id as u64)?);
        }
        Ok(out)
    }

    /// Posts a count: one adjustment per SKU that differs (see
    /// [`kassa_protocol::movements::count_adjustments`]) as one movement.
    pub fn post_count(
        &self,
        terminal: u16,
        count: u64,
        user: &str,
        key: &str,
        now_ms: i64,
    ) -> Result<(CountReport, bool), WriteError> {
        let digest = RequestDigest::of("count_post", &count);
        let conn = self.conn();
        idempotent(&conn, key, "count_post", digest, |tx| {
            let report = count_report(tx, count)?.ok_or(WriteError::NoSuchCount(count))?;
            if report.posted.is_some() {
                return Err(WriteError::CountPosted(count));
            }
            let counted: Vec<CountedSku> = report
                .lines
                .iter()
                .filter(|l| !l.uncounted)
                .map(|l| CountedSku {
                    sku: l.sku.clone(),
                    name: l.name.clone(),
                    book_at_count: l.book,
                    counted: l.counted,
                })
                .collect();
            let uncounted: Vec<(Sku, String, i64)> =
                report.lines.iter().filter(|l| l.uncounted).map(|l| (l.sku.clone(), l.name.clone(), l.book)).collect();
            let movement = Movement {
                id: MovementId { store: self.store, seq: next_movement_seq(tx)? },
                kind: MovementKind::Count { count },
                lines: count_adjustments(&counted, &uncounted),
                by: user.to_owned(),
                approved_by: None,
                note: String::new(),
                created_at_ms: now_ms,
            };
            self.commit_movement(tx, terminal, movement)?;
            Ok(count_report(tx, count)?.expect("exists"))
        })
    }
}

fn next_movement_seq(tx: &Connection) -> Result<u64, JournalError> {
    Ok(query_row(tx, "SELECT COALESCE(MAX(seq), 0) + 1 FROM movements", [], |r| r.get::<_, i64>(0))? as u64)
}

/// What a request moves: its kind and its lines (signed, named), checked against the
/// catalog, the inbound documents and the approval rules.
fn plan_movement(
    tx: &Connection,
    request: &MovementRequest,
    approved_by: Option<&str>,
) -> Result<(MovementKind, Vec<MovementLine>), WriteError> {
    let items = |lines: &[(Sku, i64)]| -> Result<Vec<(CatalogItem, i64)>, WriteError> {
        if lines.len() > MOVEMENT_LINES_MAX {
            return Err(MovementError::TooManyLines.into());
        }
        lines
            .iter()
            .map(|(sku, q)| {
                if !(1..=MOVEMENT_QUANTITY_MAX).contains(q) {
                    return Err(MovementError::Quantity { sku: sku.clone() }.into());
                }
                let item = item(tx, sku)?.ok_or_else(|| WriteError::UnknownSku(sku.clone()))?;
                Ok((item, *q))
            })
            .collect()
    };
    let signed = |items: Vec<(CatalogItem, i64)>, sign: i64| -> Vec<MovementLine> {
        items
            .into_iter()
            .map(|(i, q)| MovementLine { sku: i.sku, name: i.name, quantity: sign * q, expected: None })
            .collect()
    };
    match request {
        MovementRequest::Receive { source: Some(key), lines } => {
            let doc = inbound(tx, key)?.ok_or_else(|| WriteError::NoSuchInbound(key.clone()))?;
            if received(tx, key)? {
                return Err(WriteError::AlreadyReceived(key.clone()));
            }
            let mut arrived: BTreeMap<Sku, (String, i64)> = BTreeMap::new();
            for (i, q) in items(lines)? {
                if arrived.insert(i.sku.clone(), (i.name, q)).is_some() {
                    return Err(MovementError::DuplicateSku(i.sku).into());
                }
            }
            Ok((MovementKind::receiving(doc.source), doc.receipt_lines(&arrived)))
        }
        MovementRequest::Receive { source: None, lines } => {
            if approved_by.is_none() {
                return Err(WriteError::NeedsManager("goods received without a delivery"));
            }
            Ok((MovementKind::Receipt { delivery: None }, signed(items(lines)?, 1)))
        }
        MovementRequest::WriteOff { reason, lines } => {
            let items = items(lines)?;
            let value = items.iter().try_fold(0i64, |sum, (i, q)| sum.checked_add(value_of(i, *q)?));
            if value.is_none_or(|v| v > WRITE_OFF_UNAPPROVED_MAX.0) && approved_by.is_none() {
                return Err(WriteError::NeedsManager("a write-off of this value"));
            }
            Ok((MovementKind::WriteOff { reason: *reason }, signed(items, -1)))
        }
        MovementRequest::TransferOut { to, lines } => {
            Ok((MovementKind::TransferOut { to: *to }, signed(items(lines)?, -1)))
        }
    }
}

/// What `quantity` of an item is worth at its list price (a weighed item's price is per
/// kilogram, its quantity in grams); `None` on overflow.
fn value_of(item: &CatalogItem, quantity: i64) -> Option<i64> {
    match item.unit {
        Unit::Piece => item.price.0.checked_mul(quantity),
        Unit::Kilogram => item.price.0.checked_mul(quantity).map(|v| v / 1000),
    }
}

fn inbound(conn: &Connection, key: &str) -> Result<Option<Inbound>, JournalError> {
    let row: Option<(Vec<u8>, u32)> =
        query_row(conn, "SELECT doc, format FROM inbound WHERE source = ?1", [key], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
    row.map(|(doc, f)| format::decode_inbound(&doc, f)).transpose()
}

fn received(conn: &Connection, key: &str) -> Result<bool, JournalError> {
    Ok(query_row(conn, "SELECT EXISTS (SELECT 1 FROM movements WHERE source = ?1)", [key], |r| r.get(0))?)
}

fn movement(conn: &Connection, seq: u64) -> Result<Option<Movement>, JournalError> {
    let record_seq: Option<i64> =
        query_row(conn, "SELECT record_seq FROM movements WHERE seq = ?1", [seq as i64], |r| r.get(0)).optional()?;
    let Some(record_seq) = record_seq else { return Ok(None) };
    match chain::record(conn, record_seq)? {
        Record::Movement { movement } => Ok(Some(movement)),
        other => Err(JournalError::Corrupt(format!("movement {seq} is a {} record", other.kind()))),
    }
}

fn count_report(conn: &Connection, id: u64) -> Result<Option<CountReport>, JournalError> {
    let head: Option<(String, i64, Option<String>)> =
        query_row(conn, "SELECT started_by, started_at_ms, categories FROM counts WHERE id = ?1", [id as i64], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .optional()?;
    let Some((started_by, started_at_ms, scope)) = head else { return Ok(None) };
    let scope = CountScope::from_stored(id, scope)?;
    let posted: Option<i64> =
        query_row(conn, "SELECT seq FROM movements WHERE source = ?1", [count_key(id)], |r| r.get(0)).optional()?;
    let mut lines: Vec<CountReportLine> = conn
        .prepare_cached(
            "SELECT b.sku, COALESCE(c.name, ''), b.book, (SELECT SUM(quantity) FROM count_scans s
                 WHERE s.count_id = b.count_id AND s.sku = b.sku)
             FROM count_book b LEFT JOIN catalog c ON c.sku = b.sku WHERE b.count_id = ?1 ORDER BY b.sku",
        )?
        .query_map([id as i64], |r| {
            let (book, counted): (i64, i64) = (r.get(2)?, r.get(3)?);
            Ok(CountReportLine {
                sku: Sku(r.get(0)?),
                name: r.get(1)?,
                book,
                counted,
                difference: counted - book,
                uncounted: false,
            })
        })?
        .collect::<Result<_, _>>()?;
    if posted.is_none() {
        lines.extend(uncounted(conn, id, &scope)?);
    }
    let (categories, skus) = match scope {
        CountScope::Everything => (None, None),
        CountScope::Categories(c) => (Some(c), None),
        CountScope::Shelf(s) => (None, Some(s)),
    };
    Ok(Some(CountReport {
        id,
        started_by,
        started_at_ms,
        categories,
        skus,
        lines,
        posted: posted.map(|seq| seq as u64),
    }))
}

impl CountReport {
    /// What the count covers.
    pub fn scope(&self) -> CountScope {
        match (&self.categories, &self.skus) {
            (Some(c), _) => CountScope::Categories(c.clone()),
            (None, Some(s)) => CountScope::Shelf(s.clone()),
            (None, None) => CountScope::Everything,
        }
    }
}

/// SKUs in a count's scope that nobody has counted and the book says are there (or
/// short): a full count's scope is every SKU with stock, a partial one's every SKU of
/// its categories or of its shelf list.
fn uncounted(conn: &Connection, id: u64, scope: &CountScope) -> Result<Vec<CountReportLine>, JournalError> {
    let mut st = conn.prepare_cached(
        "SELECT t.sku, COALESCE(c.name, ''), t.book, COALESCE(c.category, '') FROM
           (SELECT sku, SUM(p - n) AS book FROM stock_counters GROUP BY sku) t
         LEFT JOIN catalog c ON c.sku = t.sku
         WHERE t.book != 0 AND t.sku NOT IN (SELECT sku FROM count_book WHERE count_id = ?1) ORDER BY t.sku",
    )?;
    let rows = st.query_map([id as i64], |r| {
        Ok((Sku(r.get(0)?), r.get::<_, String>(1)?, r.get::<_, i64>(2)?, r.get::<_, String>(3)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (sku, name, book, category) = row?;
        if !scope.covers(&sku, &category) {
            continue;
        }
        out.push(CountReportLine { sku, name, book, counted: 0, difference: -book, uncounted: true });
    }
    Ok(out)
}
