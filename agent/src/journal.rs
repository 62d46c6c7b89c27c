//! The store's journal: SQLite, the store's source of truth.
//!
//! **Architecture invariant:** only this module issues SQL in the agent. A sale, its
//! stock counter changes, its outbox entry and its print job commit in one transaction;
//! the cashier hears "done" only after that commit.

use std::path::Path;
use std::sync::Mutex;

use kassa_protocol::basket::Basket;
use kassa_protocol::catalog::{CatalogItem, Unit, VatRate};
use kassa_protocol::gtin::Gtin;
use kassa_protocol::sale::{self, PaymentError, Sale, Tender};
use kassa_protocol::stock::CounterEntry;
use kassa_protocol::wire::{Change, OutboxEntry};
use kassa_protocol::{ActorId, Kopecks, SaleId, Sku, StoreId};
use rusqlite::{params, Connection, OptionalExtension, Transaction};

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("this journal belongs to store {found}, not {expected}")]
    WrongStore { expected: StoreId, found: StoreId },
    #[error("journal record is corrupt: {0}")]
    Corrupt(String),
}

#[derive(Debug, thiserror::Error)]
pub enum SaleError {
    #[error(transparent)]
    Payment(#[from] PaymentError),
    #[error("the idempotency key must be 1 to {IDEMPOTENCY_KEY_LEN_MAX} characters")]
    IdempotencyKey,
    #[error(transparent)]
    Journal(#[from] JournalError),
}

impl From<rusqlite::Error> for SaleError {
    fn from(e: rusqlite::Error) -> Self {
        SaleError::Journal(e.into())
    }
}

pub const IDEMPOTENCY_KEY_LEN_MAX: usize = 128;

/// A print job waiting for the printer.
#[derive(Debug, Clone)]
pub struct PrintJob {
    pub id: i64,
    pub sale: Sale,
    /// Reprints and receipts cut short are marked as copies.
    pub copy: bool,
}

#[derive(Debug)]
pub struct Journal {
    store: StoreId,
    actor: ActorId,
    conn: Mutex<Connection>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS catalog (
    sku TEXT PRIMARY KEY, gtin TEXT UNIQUE, name TEXT NOT NULL, category TEXT NOT NULL,
    price_kopecks INTEGER NOT NULL, vat TEXT NOT NULL, unit TEXT NOT NULL, plu INTEGER UNIQUE
) STRICT;
CREATE TABLE IF NOT EXISTS sales (
    seq INTEGER PRIMARY KEY, receipt_no TEXT NOT NULL UNIQUE, terminal INTEGER NOT NULL,
    receipt_number INTEGER NOT NULL, created_at_ms INTEGER NOT NULL, total_kopecks INTEGER NOT NULL,
    change_kopecks INTEGER NOT NULL, record BLOB NOT NULL, UNIQUE (terminal, receipt_number)
) STRICT;
CREATE TABLE IF NOT EXISTS sale_lines (
    seq INTEGER NOT NULL REFERENCES sales(seq), line_no INTEGER NOT NULL, sku TEXT NOT NULL,
    quantity INTEGER NOT NULL, amount_kopecks INTEGER NOT NULL, vat TEXT NOT NULL,
    PRIMARY KEY (seq, line_no)
) STRICT;
CREATE TABLE IF NOT EXISTS tenders (
    seq INTEGER NOT NULL REFERENCES sales(seq), idx INTEGER NOT NULL, kind TEXT NOT NULL,
    amount_kopecks INTEGER NOT NULL, PRIMARY KEY (seq, idx)
) STRICT;
CREATE TABLE IF NOT EXISTS idempotency (key TEXT PRIMARY KEY, sale_seq INTEGER NOT NULL REFERENCES sales(seq)) STRICT;
CREATE TABLE IF NOT EXISTS stock_counters (
    sku TEXT NOT NULL, actor_store INTEGER NOT NULL, actor_epoch INTEGER NOT NULL,
    p INTEGER NOT NULL CHECK (p >= 0), n INTEGER NOT NULL CHECK (n >= 0),
    PRIMARY KEY (sku, actor_store, actor_epoch)
) STRICT;
CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY, entry BLOB NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS print_jobs (
    id INTEGER PRIMARY KEY, sale_seq INTEGER NOT NULL REFERENCES sales(seq), copy INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'done')), created_at_ms INTEGER NOT NULL,
    printed_at_ms INTEGER
) STRICT;
CREATE INDEX IF NOT EXISTS print_jobs_pending ON print_jobs (state, id);
";

fn item_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<CatalogItem> {
    let corrupt = |what: &str| rusqlite::Error::InvalidColumnName(format!("corrupt catalog {what}"));
    let gtin: Option<String> = row.get(1)?;
    Ok(CatalogItem {
        sku: Sku::parse(&row.get::<_, String>(0)?).ok_or_else(|| corrupt("sku"))?,
        gtin: gtin.map(|g| Gtin::parse(&g)).transpose().map_err(|_| corrupt("gtin"))?,
        name: row.get(2)?,
        category: row.get(3)?,
        price: Kopecks(row.get(4)?),
        vat: VatRate::parse(&row.get::<_, String>(5)?).ok_or_else(|| corrupt("vat"))?,
        unit: Unit::parse(&row.get::<_, String>(6)?).ok_or_else(|| corrupt("unit"))?,
        plu: row.get(7)?,
    })
}

const ITEM_COLUMNS: &str = "sku, gtin, name, category, price_kopecks, vat, unit, plu";

impl Journal {
    /// Opens (or creates) the journal of `store`.
    pub fn open(path: &Path, store: StoreId) -> Result<Journal, JournalError> {
        let conn = Connection::open(path)?;
        // Explicit pragmas: WAL for concurrent readers; FULL so a commit the cashier was
        // told about survives power loss; foreign keys on (SQLite's default is off).
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        let found = meta(&conn, "store")?;
        if found == 0 {
            set_meta(&conn, "store", u64::from(store.0))?;
            set_meta(&conn, "epoch", 1)?;
        } else if found != u64::from(store.0) {
            return Err(JournalError::WrongStore { expected: store, found: StoreId(found as u32) });
        }
        let epoch = meta(&conn, "epoch")? as u32;
        Ok(Journal { store, actor: ActorId { store, epoch }, conn: Mutex::new(conn) })
    }

    pub fn store(&self) -> StoreId {
        self.store
    }

    pub fn actor(&self) -> ActorId {
        self.actor
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // An open transaction rolls back when its guard unwinds, so the connection is
        // consistent even if a holder panicked.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn catalog_version(&self) -> Result<u64, JournalError> {
        meta(&self.conn(), "catalog_version")
    }

    /// Replaces the catalog with HQ's version `version`, in one transaction.
    pub fn apply_catalog(&self, version: u64, items: &[CatalogItem]) -> Result<(), JournalError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        if meta(&tx, "catalog_version")? >= version {
            return Ok(());
        }
        tx.execute("DELETE FROM catalog", [])?;
        {
            let mut ins =
                tx.prepare(&format!("INSERT INTO catalog ({ITEM_COLUMNS}) VALUES (?1,?2,?3,?4,?5,?6,?7,?8)"))?;
            for i in items {
                ins.execute(params![
                    i.sku.as_str(),
                    i.gtin.map(|g| g.as_gtin14().to_owned()),
                    i.name,
                    i.category,
                    i.price.0,
                    i.vat.code(),
                    i.unit.code(),
                    i.plu
                ])?;
            }
        }
        set_meta(&tx, "catalog_version", version)?;
        tx.commit()?;
        Ok(())
    }

    pub fn item_by_gtin(&self, gtin: &Gtin) -> Result<Option<CatalogItem>, JournalError> {
        let conn = self.conn();
        let sql = format!("SELECT {ITEM_COLUMNS} FROM catalog WHERE gtin = ?1");
        Ok(conn.query_row(&sql, [gtin.as_gtin14()], item_from_row).optional()?)
    }

    pub fn item_by_plu(&self, plu: u32) -> Result<Option<CatalogItem>, JournalError> {
        let conn = self.conn();
        let sql = format!("SELECT {ITEM_COLUMNS} FROM catalog WHERE plu = ?1");
        Ok(conn.query_row(&sql, [plu], item_from_row).optional()?)
    }

    pub fn item_by_sku(&self, sku: &Sku) -> Result<Option<CatalogItem>, JournalError> {
        let conn = self.conn();
        let sql = format!("SELECT {ITEM_COLUMNS} FROM catalog WHERE sku = ?1");
        Ok(conn.query_row(&sql, [sku.as_str()], item_from_row).optional()?)
    }

    pub fn catalog_len(&self) -> Result<u64, JournalError> {
        Ok(self.conn().query_row("SELECT COUNT(*) FROM catalog", [], |r| r.get::<_, i64>(0))? as u64)
    }

    /// Commits a paid basket as a sale. A key seen before returns the sale it made
    /// (`true` = replayed) and writes nothing.
    pub fn commit_sale(
        &self,
        terminal: u16,
        basket: &Basket,
        tenders: &[Tender],
        idempotency_key: &str,
        now_ms: i64,
    ) -> Result<(Sale, bool), SaleError> {
        if idempotency_key.is_empty() || idempotency_key.len() > IDEMPOTENCY_KEY_LEN_MAX {
            return Err(SaleError::IdempotencyKey);
        }
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let seen: Option<i64> = tx
            .query_row("SELECT sale_seq FROM idempotency WHERE key = ?1", [idempotency_key], |r| r.get(0))
            .optional()?;
        if let Some(seq) = seen {
            return Ok((
                sale_by_seq(&tx, seq as u64)?.ok_or_else(|| JournalError::Corrupt(format!("sale {seq}")))?,
                true,
            ));
        }
        let (totals, change) = sale::settle(basket, tenders)?;
        let seq = meta(&tx, "sale_seq")? + 1;
        let receipt_number: i64 = tx.query_row(
            "SELECT COALESCE(MAX(receipt_number), 0) + 1 FROM sales WHERE terminal = ?1",
            [terminal],
            |r| r.get(0),
        )?;
        let sale = Sale {
            id: SaleId { store: self.store, seq },
            receipt_no: sale::receipt_no(self.store, terminal, receipt_number as u64),
            terminal,
            created_at_ms: now_ms,
            lines: basket.lines.clone(),
            tenders: tenders.to_vec(),
            total: totals.total,
            change,
        };
        debug_assert_eq!(sale.validate(), Ok(()));
        let record = postcard::to_allocvec(&sale).map_err(|e| JournalError::Corrupt(e.to_string()))?;
        tx.execute(
            "INSERT INTO sales (seq, receipt_no, terminal, receipt_number, created_at_ms, total_kopecks, change_kopecks, record)
             VALUES (?1,?2,?3,?4,?5,?6,?7,?8)",
            params![seq as i64, sale.receipt_no, terminal, receipt_number, now_ms, sale.total.0, change.0, record],
        )?;
        for (i, l) in sale.lines.iter().enumerate() {
            tx.execute(
                "INSERT INTO sale_lines (seq, line_no, sku, quantity, amount_kopecks, vat) VALUES (?1,?2,?3,?4,?5,?6)",
                params![seq as i64, i as i64, l.sku.as_str(), l.quantity, l.amount.0, l.vat.code()],
            )?;
        }
        for (i, t) in sale.tenders.iter().enumerate() {
            tx.execute(
                "INSERT INTO tenders (seq, idx, kind, amount_kopecks) VALUES (?1,?2,?3,?4)",
                params![seq as i64, i as i64, t.kind.code(), t.amount.0],
            )?;
        }
        tx.execute("INSERT INTO idempotency (key, sale_seq) VALUES (?1, ?2)", params![idempotency_key, seq as i64])?;
        // One entry per SKU, its totals after the last line (a SKU may be on several lines).
        let mut counters = std::collections::BTreeMap::new();
        for l in &sale.lines {
            let entry = self.count(&tx, &l.sku, 0, l.quantity)?;
            counters.insert(entry.sku.clone(), entry);
        }
        let counters: Vec<CounterEntry> = counters.into_values().collect();
        let out_seq = meta(&tx, "outbox_head")? + 1;
        let entry = OutboxEntry { seq: out_seq, change: Change::Sale { sale: sale.clone(), counters } };
        tx.execute(
            "INSERT INTO outbox (seq, entry) VALUES (?1, ?2)",
            params![out_seq as i64, postcard::to_allocvec(&entry).map_err(|e| JournalError::Corrupt(e.to_string()))?],
        )?;
        set_meta(&tx, "outbox_head", out_seq)?;
        set_meta(&tx, "sale_seq", seq)?;
        tx.execute(
            "INSERT INTO print_jobs (sale_seq, copy, state, created_at_ms) VALUES (?1, 0, 'pending', ?2)",
            params![seq as i64, now_ms],
        )?;
        tx.commit()?;
        Ok((sale, false))
    }

    /// Adds to this store's own running totals for `sku`; returns the new entry.
    fn count(&self, tx: &Transaction<'_>, sku: &Sku, plus: i64, minus: i64) -> Result<CounterEntry, JournalError> {
        let (p, n): (i64, i64) = tx.query_row(
            "INSERT INTO stock_counters (sku, actor_store, actor_epoch, p, n) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT DO UPDATE SET p = p + excluded.p, n = n + excluded.n RETURNING p, n",
            params![sku.as_str(), self.actor.store.0, self.actor.epoch, plus, minus],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok(CounterEntry { location: self.store, sku: sku.clone(), actor: self.actor, p, n })
    }

    pub fn sale(&self, seq: u64) -> Result<Option<Sale>, JournalError> {
        sale_by_seq(&self.conn(), seq)
    }

    pub fn sales_count(&self) -> Result<u64, JournalError> {
        Ok(self.conn().query_row("SELECT COUNT(*) FROM sales", [], |r| r.get::<_, i64>(0))? as u64)
    }

    /// Max-merges counter entries of other actors (HQ's deliveries) into our stock.
    /// Our own actor's totals are ours alone and never taken from outside.
    pub fn merge_counters(&self, entries: &[CounterEntry]) -> Result<(), JournalError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        for c in entries.iter().filter(|c| c.location == self.store && c.actor != self.actor && c.is_valid()) {
            tx.execute(
                "INSERT INTO stock_counters (sku, actor_store, actor_epoch, p, n) VALUES (?1,?2,?3,?4,?5)
                 ON CONFLICT DO UPDATE SET p = MAX(p, excluded.p), n = MAX(n, excluded.n)",
                params![c.sku.as_str(), c.actor.store.0, c.actor.epoch, c.p, c.n],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The store's stock of `sku`: the sum over actors of `p − n`. May be negative: an
    /// oversell is a fact to report, not a sale to refuse.
    pub fn stock(&self, sku: &Sku) -> Result<i64, JournalError> {
        Ok(self.conn().query_row(
            "SELECT COALESCE(SUM(p - n), 0) FROM stock_counters WHERE sku = ?1",
            [sku.as_str()],
            |r| r.get(0),
        )?)
    }

    pub fn outbox_head(&self) -> Result<u64, JournalError> {
        meta(&self.conn(), "outbox_head")
    }

    pub fn acked_seq(&self) -> Result<u64, JournalError> {
        meta(&self.conn(), "acked_seq")
    }

    /// Outbox entries after `after`, at most `max`, in sequence order.
    pub fn outbox_after(&self, after: u64, max: usize) -> Result<Vec<OutboxEntry>, JournalError> {
        let conn = self.conn();
        let mut st = conn.prepare_cached("SELECT entry FROM outbox WHERE seq > ?1 ORDER BY seq LIMIT ?2")?;
        let rows = st.query_map(params![after as i64, max as i64], |r| r.get::<_, Vec<u8>>(0))?;
        rows.map(|blob| postcard::from_bytes(&blob?).map_err(|e| JournalError::Corrupt(format!("outbox entry: {e}"))))
            .collect()
    }

    /// Records HQ's acknowledgement. Outbox rows are kept (they are the store's own
    /// record of what it sent); only the cursor moves.
    pub fn set_acked(&self, upto: u64) -> Result<(), JournalError> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO meta (key, value) VALUES ('acked_seq', ?1) ON CONFLICT DO UPDATE SET value = MAX(value, excluded.value)",
            [upto as i64],
        )?;
        Ok(())
    }

    pub fn next_print_job(&self) -> Result<Option<PrintJob>, JournalError> {
        let conn = self.conn();
        let job: Option<(i64, i64, bool)> = conn
            .query_row(
                "SELECT id, sale_seq, copy FROM print_jobs WHERE state = 'pending' ORDER BY id LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let Some((id, seq, copy)) = job else { return Ok(None) };
        let sale = sale_by_seq(&conn, seq as u64)?.ok_or_else(|| JournalError::Corrupt(format!("print job {id}")))?;
        Ok(Some(PrintJob { id, sale, copy }))
    }

    pub fn print_job_done(&self, id: i64, now_ms: i64) -> Result<(), JournalError> {
        self.conn()
            .execute("UPDATE print_jobs SET state = 'done', printed_at_ms = ?2 WHERE id = ?1", params![id, now_ms])?;
        Ok(())
    }

    /// Queues a copy of a sale's receipt; `false` if there is no such sale.
    pub fn reprint(&self, seq: u64, now_ms: i64) -> Result<bool, JournalError> {
        let conn = self.conn();
        let n = conn.execute(
            "INSERT INTO print_jobs (sale_seq, copy, state, created_at_ms) SELECT seq, 1, 'pending', ?2 FROM sales WHERE seq = ?1",
            params![seq as i64, now_ms],
        )?;
        Ok(n == 1)
    }
}

fn sale_by_seq(conn: &Connection, seq: u64) -> Result<Option<Sale>, JournalError> {
    let blob: Option<Vec<u8>> =
        conn.query_row("SELECT record FROM sales WHERE seq = ?1", [seq as i64], |r| r.get(0)).optional()?;
    blob.map(|b| postcard::from_bytes(&b).map_err(|e| JournalError::Corrupt(format!("sale {seq}: {e}")))).transpose()
}

fn meta(conn: &Connection, key: &str) -> Result<u64, JournalError> {
    let v: Option<i64> = conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0)).optional()?;
    Ok(v.unwrap_or(0) as u64)
}

fn set_meta(conn: &Connection, key: &str, value: u64) -> Result<(), JournalError> {
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT DO UPDATE SET value = excluded.value",
        params![key, value as i64],
    )?;
    Ok(())
}
