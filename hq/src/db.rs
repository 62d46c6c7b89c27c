//! HQ's merged store of every store: SQLite, the embedded default.
//!
//! **Architecture invariant:** only this module issues SQL. Counter rows merge by
//! `MAX` upserts, so applying an entry twice, or in any order, gives the same rows.
//!
//! The schema's version is `PRAGMA user_version` ([`SCHEMA_VERSION`]), as in the store's
//! journal. Files of the first release have 0 and are version 1. [`Db::open`] refuses a
//! file newer than this binary before anything writes to it ([`DbError::TooNew`]), and
//! migrates an older one at start, in one transaction, after keeping a copy beside it
//! (`hq.sqlite.v{old}.bak`).

mod access;
mod customers;
mod orders;
mod return_terms;
mod returns;
mod schedule;
mod stock;

pub use access::{
    AddOperator, AuditEntry, NewAudit, Operator, OperatorChange, Token, AUDIT_PAGE_ENTRIES_MAX, AUDIT_ROWS_MAX,
    AUDIT_SUMMARY_BYTES_MAX,
};
pub use customers::HistoryView;
pub use orders::{
    Availability, CancelOutcome, OrderFeedEntry, OrderRow, PlaceRefusal, TillPaymentRow, ORDERS_PAGE_MAX,
};
pub use return_terms::LimitsRecord;
pub use returns::OverReturn;
pub use stock::{DeliveryError, InboundRow, MovementTotal, DELIVERIES_OPEN_MAX, MOVEMENTS_PAGE_MAX};

use kassa_protocol::format::v1 as format;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use kassa_protocol::catalog::{CatalogItem, Unit, VatRate};
use kassa_protocol::gtin::Gtin;
use kassa_protocol::loyalty::{
    answer_rights_request, Customer, CustomerId, EntryKind, LoyaltyAccount, LoyaltyEntry, LoyaltyRules, RightsAnswer,
    RightsRequest,
};
use kassa_protocol::promotions::definition::Definition;
use kassa_protocol::promotions::PromotionSet;
use kassa_protocol::stock::CounterEntry;
use kassa_protocol::wire::{Change, NearbyStock, OutboxEntry};
use kassa_protocol::{ActorId, Kopecks, Sku, StoreId};
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use serde::Serialize;

/// Nearby stores whose stock a store sees: enough for "where else is it in stock"
/// without sending the whole chain to every till.
pub const NEARBY_STORES_MAX: usize = 8;

/// HQ's own actor: deliveries and transfers it books into stores' stock.
pub const HQ_ACTOR: ActorId = ActorId::HQ;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("stored record is corrupt: {0}")]
    Corrupt(String),
    /// The file was written by a newer kassa-hq: nothing was written to it.
    #[error(
        "HQ's database schema is version {found}, newer than this program knows ({known}): \
         run the newer kassa-hq; the file was not touched"
    )]
    TooNew { found: u32, known: u32 },
}

#[derive(Debug)]
pub struct Db {
    conn: Mutex<Connection>,
    /// Each store's stock as its neighbours see it, with when it was read.
    views: Mutex<HashMap<StoreId, StockView>>,
    /// The published promotions, indexed for pricing, and their version; built from the
    /// table on first use and replaced on every publication.
    promotion_set: Mutex<Option<(u64, Arc<PromotionSet>)>>,
    /// The price schedule, indexed for pricing, with its version (`schedule`).
    schedule_index: Mutex<Option<(u64, Arc<kassa_protocol::price_schedule::PriceSchedule>)>>,
}

type StockView = (i64, Arc<Vec<(Sku, i64)>>);

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct StockAt {
    pub store: u32,
    pub quantity: i64,
    /// Held for open orders for pickup there.
    pub reserved: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct StoreStatus {
    pub store: u32,
    pub epoch: u32,
    pub acked_seq: u64,
    /// The store's outbox head when it last told us.
    pub head: u64,
    /// Entries the store has that HQ does not (as of the last contact).
    pub backlog: u64,
    pub last_contact_ms: i64,
    pub sales: u64,
    /// The catalog version the store said it holds when it last connected.
    pub catalog_confirmed: u64,
    /// The newest catalog version HQ has since handed to the store's live connection (a
    /// reliable stream: the store applies a whole version on arrival unless the link dies
    /// first, and then its next connect says what it holds).
    pub catalog_sent: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct SaleSummary {
    pub store: u32,
    pub seq: u64,
    /// `sale` or `return` (returns have negative totals and quantities).
    pub kind: String,
    pub receipt_no: String,
    pub created_at_ms: i64,
    pub total_kopecks: i64,
    pub lines: Vec<SaleLineSummary>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SaleLineSummary {
    pub sku: String,
    pub name: String,
    pub quantity: i64,
    pub amount_kopecks: i64,
}

/// What one [`Db::apply`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// Records parked instead of applied.
    pub parked: usize,
    /// Stock deltas (counter entries) the applied records carried.
    pub deltas: usize,
    /// Stores that have a new document to receive (a transfer shipped to them).
    pub inbound_for: Vec<StoreId>,
    /// Orders a till paid for, now to be offered to their pickup stores: (store, order).
    pub orders_paid: Vec<(StoreId, kassa_protocol::orders::OrderId)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Parked {
    pub id: i64,
    pub store: u32,
    pub seq: u64,
    pub reason: String,
    pub parked_at_ms: i64,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS catalog (
    sku TEXT PRIMARY KEY, gtin TEXT UNIQUE, name TEXT NOT NULL, category TEXT NOT NULL,
    price_kopecks INTEGER NOT NULL, vat TEXT NOT NULL, unit TEXT NOT NULL, plu INTEGER UNIQUE
) STRICT;
CREATE TABLE IF NOT EXISTS stores (
    store INTEGER PRIMARY KEY, epoch INTEGER NOT NULL, acked_seq INTEGER NOT NULL,
    last_contact_ms INTEGER NOT NULL, head INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE TABLE IF NOT EXISTS neighbours (
    store INTEGER NOT NULL, neighbour INTEGER NOT NULL, PRIMARY KEY (store, neighbour)
) STRICT;
CREATE TABLE IF NOT EXISTS sales (
    store INTEGER NOT NULL, seq INTEGER NOT NULL, kind TEXT NOT NULL CHECK (kind IN ('sale', 'return')), receipt_no TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL, total_kopecks INTEGER NOT NULL, record BLOB NOT NULL,
    PRIMARY KEY (store, seq)
) STRICT;
CREATE TABLE IF NOT EXISTS sale_lines (
    store INTEGER NOT NULL, seq INTEGER NOT NULL, line_no INTEGER NOT NULL, sku TEXT NOT NULL,
    name TEXT NOT NULL, quantity INTEGER NOT NULL, amount_kopecks INTEGER NOT NULL,
    PRIMARY KEY (store, seq, line_no)
) STRICT;
CREATE TABLE IF NOT EXISTS stock_counters (
    location INTEGER NOT NULL, sku TEXT NOT NULL, actor_store INTEGER NOT NULL,
    actor_epoch INTEGER NOT NULL, p INTEGER NOT NULL CHECK (p >= 0), n INTEGER NOT NULL CHECK (n >= 0),
    PRIMARY KEY (location, sku, actor_store, actor_epoch)
) STRICT;
CREATE TABLE IF NOT EXISTS customers (
    card TEXT PRIMARY KEY, phone TEXT NOT NULL, name TEXT, issued_by INTEGER NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS customers_by_phone ON customers (phone);
CREATE TABLE IF NOT EXISTS loyalty_entries (
    customer TEXT NOT NULL, kind TEXT NOT NULL CHECK (kind IN ('earned', 'spent', 'transfer')),
    a_store INTEGER NOT NULL, a_epoch INTEGER NOT NULL, b_store INTEGER NOT NULL, b_epoch INTEGER NOT NULL,
    total INTEGER NOT NULL CHECK (total >= 0),
    PRIMARY KEY (customer, kind, a_store, a_epoch, b_store, b_epoch)
) STRICT;
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS parked (
    id INTEGER PRIMARY KEY, store INTEGER NOT NULL, seq INTEGER NOT NULL, reason TEXT NOT NULL,
    record BLOB NOT NULL, parked_at_ms INTEGER NOT NULL
) STRICT;
";

/// The database's schema version, kept in `PRAGMA user_version`. Version 1 is [`SCHEMA`]
/// as first released (`user_version` 0 in files of that release); each later version
/// is one step of [`MIGRATIONS`].
pub const SCHEMA_VERSION: u32 = 13;

/// Steps from version `n - 1` to `n`, run at start in one transaction after a copy of
/// the file is kept beside it (`hq.sqlite.v{old}.bak`).
const MIGRATIONS: &[(u32, &str)] = &[
    (
        2,
        // The first versioned schema: the tables of version 1, unchanged. Stamping it tells
        // the files of this release from those written before versions were kept.
        "",
    ),
    (
        3,
        // Promotions as published: each definition as JSON of its format 1
        // (`kassa_protocol::promotions::definition`), the set versioned in `meta`.
        "CREATE TABLE promotions (id INTEGER PRIMARY KEY, definition TEXT NOT NULL) STRICT;",
    ),
    (
        4,
        // Access control and audit: operators, console sessions, API tokens, wrong-password
        // counts, the audit log (see `access`). The first administrator is created at start
        // (`crate::ensure_first_admin`), not here.
        access::SCHEMA_V4,
    ),
    (
        5,
        // Sales keep their lines' promotions: records from here are data format 2 (the
        // `format` column; NULL is format 1), each line's promotions in their own table.
        // Parked records say their format too (data format 3 from here). Stock
        // movements and the deliveries and transfers stores are to receive (`stock`).
        stock::SCHEMA_V5,
    ),
    (
        6,
        // The promotions each customer has had, from sales with a card (a grow-only set),
        // so that a single-use coupon is honoured once per customer in every channel.
        "CREATE TABLE customer_promotions (
             card TEXT NOT NULL, promotion INTEGER NOT NULL, PRIMARY KEY (card, promotion)
         ) STRICT, WITHOUT ROWID;",
    ),
    // Version 6 has a second step: the price changes scheduled ahead (`schedule`).
    (6, schedule::SCHEMA_V6),
    (
        7,
        // Which catalog version each store holds, for the console: as it said at its last
        // connect, and what HQ has since handed to its connection.
        "ALTER TABLE stores ADD COLUMN catalog_confirmed INTEGER NOT NULL DEFAULT 0;
         ALTER TABLE stores ADD COLUMN catalog_sent INTEGER NOT NULL DEFAULT 0;",
    ),
    (
        8,
        // Orders for pickup (`orders`): each as placed (data format 3), its lines for
        // reservations, its state at HQ and its store's, and the feed of what happened.
        orders::SCHEMA_V8,
    ),
    (
        9,
        // Orders a till placed to be paid there (the endless aisle's "paid now"): the
        // store whose payment HQ awaits, and what it said (`orders`).
        orders::SCHEMA_V9,
    ),
    (
        10,
        // Returns anywhere: which returns took back lines of which sale, and the lines
        // returned beyond what was sold (`returns`). Its own step fills the first from
        // the returns already held.
        returns::SCHEMA_V10,
    ),
    (
        11,
        // Signed receipts: each store's receipt key, numbered as HQ first saw it, for
        // every store to verify another's receipt offline (`return_terms`; the limits on
        // such returns are a setting).
        return_terms::SCHEMA_V11,
    ),
    (
        12,
        // Return rights: the lines HQ holds for a till about to refund them online
        // (`returns`), so that two stores cannot both refund the same goods.
        returns::SCHEMA_V12,
    ),
    (
        13,
        // One customer in every channel: the sales and returns made with each card, the
        // phone of each order (`customers`). Its own step fills both from what is held.
        customers::SCHEMA_V13,
    ),
];

/// The schema version of the file `conn` has open: 0 for a new (empty) file.
fn user_version(conn: &Connection) -> Result<u32, DbError> {
    Ok(conn.pragma_query_value(None, "user_version", |r| r.get(0))?)
}

/// Brings the file to [`SCHEMA_VERSION`]: creates a new database, or migrates an older
/// one (after keeping a copy of it). The caller has refused a newer one.
fn migrate(conn: &Connection, path: &Path) -> Result<(), DbError> {
    let version = user_version(conn)?;
    let tables: i64 = conn.query_row("SELECT COUNT(*) FROM sqlite_master", [], |r| r.get(0))?;
    let from = version.max(1);
    if from == SCHEMA_VERSION {
        return Ok(());
    }
    if tables > 0 {
        let backup = path.with_extension(format!("sqlite.v{from}.bak"));
        // A copy from an earlier, interrupted attempt is the file as it was: keep it.
        if !backup.exists() {
            conn.execute("VACUUM INTO ?1", [backup.display().to_string()])?;
        }
        tracing::info!(from, to = SCHEMA_VERSION, backup = %backup.display(), "migrating HQ's database");
    }
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let result = (|| {
        conn.execute_batch(SCHEMA)?;
        for (to, sql) in MIGRATIONS.iter().filter(|(to, _)| *to > from) {
            conn.execute_batch(sql)?;
            if *to == 10 && tables > 0 {
                returns::backfill(conn)?;
            }
            if *to == 13 && tables > 0 {
                customers::backfill(conn)?;
            }
            conn.pragma_update(None, "user_version", to)?;
        }
        conn.execute_batch("COMMIT")
    })();
    if result.is_err() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    Ok(result?)
}

/// What [`Db::import_catalog`] did.
#[derive(Debug, Clone)]
pub enum CatalogImport {
    /// Only asked for the diff; nothing written.
    Preview {
        version: u64,
        diff: crate::catalog::CatalogDiff,
    },
    /// Identical to the catalog in force: nothing published.
    Unchanged {
        version: u64,
    },
    /// It would remove items and removals were not confirmed: nothing published.
    RemovalsUnconfirmed {
        version: u64,
        diff: crate::catalog::CatalogDiff,
    },
    Published {
        version: u64,
        diff: crate::catalog::CatalogDiff,
    },
}

/// Replaces the catalog with `items` as the next version, inside the caller's transaction.
fn replace_catalog(tx: &Transaction<'_>, items: &[CatalogItem]) -> Result<u64, DbError> {
    tx.execute("DELETE FROM catalog", [])?;
    {
        let mut ins = tx.prepare(
            "INSERT INTO catalog (sku, gtin, name, category, price_kopecks, vat, unit, plu) VALUES (?1,?2,?3,?4,?5,?6,?7,?8)",
        )?;
        for i in items {
            ins.execute(params![
                i.sku.as_str(),
                i.gtin.map(|g| g.short().to_owned()),
                i.name,
                i.category,
                i.price.0,
                i.vat.code(),
                i.unit.code(),
                i.plu
            ])?;
        }
    }
    let version = meta(tx, "catalog_version")? + 1;
    set_meta(tx, "catalog_version", version)?;
    Ok(version)
}

fn catalog_in(conn: &Connection) -> Result<Vec<CatalogItem>, DbError> {
    let mut st =
        conn.prepare("SELECT sku, gtin, name, category, price_kopecks, vat, unit, plu FROM catalog ORDER BY sku")?;
    let rows = st.query_map([], item_from_row)?;
    rows.map(|r| r?.map_err(DbError::Corrupt)).collect()
}

fn item_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Result<CatalogItem, String>> {
    let sku: String = row.get(0)?;
    let gtin: Option<String> = row.get(1)?;
    let vat: String = row.get(5)?;
    let unit: String = row.get(6)?;
    Ok((|| {
        Ok(CatalogItem {
            sku: Sku::parse(&sku).ok_or("bad sku")?,
            gtin: gtin.map(|g| Gtin::parse(&g)).transpose().map_err(|e| e.to_string())?,
            name: row.get(2).map_err(|e| e.to_string())?,
            category: row.get(3).map_err(|e| e.to_string())?,
            price: Kopecks(row.get(4).map_err(|e| e.to_string())?),
            vat: VatRate::parse(&vat).ok_or("bad vat")?,
            unit: Unit::parse(&unit).ok_or("bad unit")?,
            plu: row.get(7).map_err(|e| e.to_string())?,
        })
    })())
}

impl Db {
    /// Opens (or creates) HQ's database, migrating an older file; a file newer than this
    /// binary is refused untouched ([`DbError::TooNew`]).
    pub fn open(path: &Path) -> Result<Db, DbError> {
        let conn = Connection::open(path)?;
        // A file from a newer release is refused before anything (even a pragma) writes.
        let version = user_version(&conn)?;
        if version > SCHEMA_VERSION {
            return Err(DbError::TooNew { found: version, known: SCHEMA_VERSION });
        }
        // Explicit, not defaults: WAL so the API reads while sync writes; FULL so an
        // acknowledged batch survives power loss (we ack only after commit).
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        migrate(&conn, path)?;
        Ok(Db {
            conn: Mutex::new(conn),
            views: Mutex::new(HashMap::new()),
            promotion_set: Mutex::new(None),
            schedule_index: Mutex::new(None),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite consistent (the transaction rolls
        // back on drop), so a poisoned lock is safe to reuse.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn catalog_version(&self) -> Result<u64, DbError> {
        meta(&self.conn(), "catalog_version")
    }

    /// Replaces the catalog with `items` as a new version, in one transaction, whatever
    /// it removes (for seeding and tests; operators go through [`Db::import_catalog`]).
    pub fn publish_catalog(&self, items: &[CatalogItem]) -> Result<u64, DbError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let version = replace_catalog(&tx, items)?;
        tx.commit()?;
        Ok(version)
    }

    /// A whole-file import, checked against the catalog in force within one transaction:
    /// identical → nothing published; removing items without `confirm_removals` →
    /// nothing published, the diff returned for a preview; otherwise published as a new
    /// version with its audit entry. `dry_run` only computes the diff.
    pub fn import_catalog(
        &self,
        items: &[CatalogItem],
        confirm_removals: bool,
        dry_run: bool,
        audit: &NewAudit,
    ) -> Result<CatalogImport, DbError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let current = catalog_in(&tx)?;
        let version = meta(&tx, "catalog_version")?;
        let diff = crate::catalog::diff(&current, items);
        if dry_run {
            return Ok(CatalogImport::Preview { version, diff });
        }
        if diff.is_empty() {
            return Ok(CatalogImport::Unchanged { version });
        }
        if !diff.removed.is_empty() && !confirm_removals {
            return Ok(CatalogImport::RemovalsUnconfirmed { version, diff });
        }
        let version = replace_catalog(&tx, items)?;
        let mut audit = audit.clone();
        audit.summary = serde_json::json!({ "version": version, "items": items.len(), "diff": diff.audit_summary() });
        access::audit_in(&tx, &audit)?;
        tx.commit()?;
        Ok(CatalogImport::Published { version, diff })
    }

    /// One edit by SKU, published as a new version with its audit entry (in one
    /// transaction), or refused with nothing written.
    pub fn edit_catalog(
        &self,
        edit: &crate::catalog::Edit,
        audit: &NewAudit,
    ) -> Result<Result<(u64, crate::catalog::CatalogDiff), crate::catalog::EditError>, DbError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let current = catalog_in(&tx)?;
        let items = match crate::catalog::apply(current.clone(), edit) {
            Ok(items) => items,
            Err(e) => return Ok(Err(e)),
        };
        let diff = crate::catalog::diff(&current, &items);
        let version = replace_catalog(&tx, &items)?;
        let mut audit = audit.clone();
        audit.summary = serde_json::json!({ "version": version, "diff": diff.audit_summary() });
        access::audit_in(&tx, &audit)?;
        tx.commit()?;
        Ok(Ok((version, diff)))
    }

    /// Publishes `definitions` as the new set of promotions (replacing the last), already
    /// validated into `set`; returns its version.
    pub fn publish_promotions(&self, definitions: &[Definition], set: PromotionSet) -> Result<u64, DbError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute("DELETE FROM promotions", [])?;
        {
            let mut ins = tx.prepare("INSERT INTO promotions (id, definition) VALUES (?1, ?2)")?;
            for d in definitions {
                let json = serde_json::to_string(d).map_err(|e| DbError::Corrupt(e.to_string()))?;
                ins.execute(params![d.id, json])?;
            }
        }
        let version = meta(&tx, "promotions_version")? + 1;
        set_meta(&tx, "promotions_version", version)?;
        tx.commit()?;
        *self.promotion_set.lock().unwrap_or_else(|p| p.into_inner()) = Some((version, Arc::new(set)));
        Ok(version)
    }

    /// The published definitions and their version (0: none published yet).
    pub fn promotions(&self) -> Result<(u64, Vec<Definition>), DbError> {
        let conn = self.conn();
        let version = meta(&conn, "promotions_version")?;
        let mut st = conn.prepare("SELECT definition FROM promotions ORDER BY id")?;
        let rows = st.query_map([], |r| r.get::<_, String>(0))?;
        let defs = rows
            .map(|json| serde_json::from_str(&json?).map_err(|e| DbError::Corrupt(format!("stored promotion: {e}"))))
            .collect::<Result<Vec<Definition>, DbError>>()?;
        Ok((version, defs))
    }

    /// The published promotions, indexed for pricing, and their version.
    pub fn promotion_set(&self) -> Result<(u64, Arc<PromotionSet>), DbError> {
        if let Some(cached) = self.promotion_set.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            return Ok(cached);
        }
        let (version, defs) = self.promotions()?;
        let promotions = defs
            .iter()
            .map(Definition::to_promotion)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| DbError::Corrupt(format!("stored {e}")))?;
        // Checked against the catalog when published; stored, they are taken as they are.
        let set = PromotionSet::new(promotions, &AnyCatalog).map_err(|e| DbError::Corrupt(format!("stored {e}")))?;
        let built = (version, Arc::new(set));
        *self.promotion_set.lock().unwrap_or_else(|p| p.into_inner()) = Some(built.clone());
        Ok(built)
    }

    /// Catalog items by SKU (those that exist).
    pub fn items(&self, skus: &[Sku]) -> Result<HashMap<Sku, CatalogItem>, DbError> {
        let conn = self.conn();
        let mut st = conn.prepare_cached(
            "SELECT sku, gtin, name, category, price_kopecks, vat, unit, plu FROM catalog WHERE sku = ?1",
        )?;
        let mut out = HashMap::new();
        for sku in skus {
            if let Some(item) = st.query_row([sku.as_str()], item_from_row).optional()? {
                out.insert(sku.clone(), item.map_err(DbError::Corrupt)?);
            }
        }
        Ok(out)
    }

    pub fn catalog(&self) -> Result<Vec<CatalogItem>, DbError> {
        catalog_in(&self.conn())
    }

    /// Books a delivery of `quantity` into a store's stock, as HQ's actor; returns the
    /// new entry to offer the store.
    pub fn deliver(&self, location: StoreId, deliveries: &[(Sku, i64)]) -> Result<Vec<CounterEntry>, DbError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let mut out = Vec::new();
        for (sku, quantity) in deliveries {
            tx.execute(
                "INSERT INTO stock_counters (location, sku, actor_store, actor_epoch, p, n) VALUES (?1, ?2, ?3, ?4, ?5, 0)
                 ON CONFLICT DO UPDATE SET p = p + excluded.p",
                params![location.0, sku.as_str(), HQ_ACTOR.store.0, HQ_ACTOR.epoch, quantity],
            )?;
            out.extend(counters_where(&tx, location, Some(sku), Some(HQ_ACTOR))?);
        }
        tx.commit()?;
        Ok(out)
    }

    /// Runs `f` once per HQ lifetime flag `key` (demo seeding); true if it ran.
    pub fn once(&self, key: &str) -> Result<bool, DbError> {
        let conn = self.conn();
        let done = meta(&conn, key)? != 0;
        if !done {
            set_meta(&conn, key, 1)?;
        }
        Ok(!done)
    }

    /// The store's acknowledged progress; registers a store on first contact and records
    /// the catalog version it says it holds.
    pub fn hello(&self, actor: ActorId, head: u64, catalog_version: u64, now_ms: i64) -> Result<u64, DbError> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO stores (store, epoch, acked_seq, last_contact_ms, head, catalog_confirmed, catalog_sent)
             VALUES (?1, ?2, 0, ?3, ?4, ?5, ?5)
             ON CONFLICT DO UPDATE SET last_contact_ms = excluded.last_contact_ms, head = excluded.head,
                 catalog_confirmed = excluded.catalog_confirmed, catalog_sent = excluded.catalog_sent",
            params![actor.store.0, actor.epoch, now_ms, head as i64, catalog_version as i64],
        )?;
        let acked: i64 =
            conn.query_row("SELECT acked_seq FROM stores WHERE store = ?1", [actor.store.0], |r| r.get(0))?;
        Ok(acked as u64)
    }

    /// HQ handed catalog `version` whole to `store`'s live connection.
    pub fn catalog_sent(&self, store: StoreId, version: u64) -> Result<(), DbError> {
        self.conn().execute(
            "UPDATE stores SET catalog_sent = MAX(catalog_sent, ?2) WHERE store = ?1",
            params![store.0, version as i64],
        )?;
        Ok(())
    }

    /// Applies a contiguous run of a store's outbox and records its progress, in one
    /// transaction. A record that cannot be applied is parked, never blocking the rest.
    pub fn apply(
        &self,
        actor: ActorId,
        entries: &[OutboxEntry],
        upto: u64,
        head: u64,
        now_ms: i64,
    ) -> Result<Applied, DbError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let mut applied = Applied::default();
        // Batched max-merge: of the running totals a batch carries for one counter only
        // the largest of each matters (they only grow), so each counter row is written
        // once per batch, not once per sale that touched it.
        let mut counters_merged: HashMap<(StoreId, &Sku, ActorId), (i64, i64)> = HashMap::new();
        for e in entries {
            if let Change::Movement { movement, counters } = &e.change {
                if let Some(to) = stock::apply_movement(&tx, movement, now_ms)? {
                    applied.inbound_for.push(to);
                }
                applied.deltas += counters.len();
                for c in counters {
                    let slot = counters_merged.entry((c.location, &c.sku, c.actor)).or_insert((c.p, c.n));
                    *slot = (slot.0.max(c.p), slot.1.max(c.n));
                }
                continue;
            }
            if let Change::OrderPayment { payment } = &e.change {
                match orders::apply_payment(&tx, payment, now_ms)? {
                    Ok(paid) => applied.orders_paid.extend(paid),
                    Err(reason) => {
                        park(&tx, actor, e, &reason, now_ms)?;
                        applied.parked += 1;
                    }
                }
                continue;
            }
            match apply_entry(&tx, e, now_ms) {
                Ok(entry_counters) => {
                    applied.deltas += entry_counters.len();
                    for c in entry_counters {
                        let slot = counters_merged.entry((c.location, &c.sku, c.actor)).or_insert((c.p, c.n));
                        *slot = (slot.0.max(c.p), slot.1.max(c.n));
                    }
                }
                Err(ApplyError::Invalid(reason)) => {
                    park(&tx, actor, e, &reason, now_ms)?;
                    applied.parked += 1;
                }
                Err(ApplyError::Db(e)) => return Err(e.into()),
            }
        }
        for ((location, sku, actor), (p, n)) in counters_merged {
            merge_counter(&tx, &CounterEntry { location, sku: sku.clone(), actor, p, n })?;
        }
        tx.prepare_cached(
            "UPDATE stores SET acked_seq = MAX(acked_seq, ?2), last_contact_ms = ?3, head = MAX(head, ?4) WHERE store = ?1",
        )?
        .execute(params![actor.store.0, upto as i64, now_ms, head as i64])?;
        tx.commit()?;
        Ok(applied)
    }

    /// Counter entries of actors other than the store itself for its stock: what the
    /// store needs from HQ.
    pub fn counters_for(&self, location: StoreId) -> Result<Vec<CounterEntry>, DbError> {
        let conn = self.conn();
        Ok(counters_where(&conn, location, None, None)?.into_iter().filter(|c| c.actor.store != location).collect())
    }

    /// Every counter entry of a store's stock (all actors), for anti-entropy.
    pub fn counters_at(&self, location: StoreId) -> Result<Vec<CounterEntry>, DbError> {
        counters_where(&self.conn(), location, None, None)
    }

    /// Max-merges a store's own counters, sent in full after a digest mismatch.
    pub fn merge_counters(&self, entries: &[CounterEntry]) -> Result<(), DbError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        for c in entries {
            merge_counter(&tx, c)?;
        }
        tx.commit()?;
        Ok(())
    }

    pub fn stock(&self, sku: &Sku) -> Result<Vec<StockAt>, DbError> {
        let conn = self.conn();
        let mut st = conn.prepare(
            "SELECT location, SUM(p - n) FROM stock_counters WHERE sku = ?1 GROUP BY location ORDER BY location",
        )?;
        let rows =
            st.query_map([sku.as_str()], |r| Ok(StockAt { store: r.get(0)?, quantity: r.get(1)?, reserved: 0 }))?;
        let mut out: Vec<StockAt> = rows.collect::<Result<_, _>>()?;
        for s in &mut out {
            s.reserved = orders::reserved(&conn, StoreId(s.store), sku)?;
        }
        Ok(out)
    }

    pub fn stores(&self) -> Result<Vec<StoreStatus>, DbError> {
        let conn = self.conn();
        let mut st = conn.prepare(
            "SELECT s.store, s.epoch, s.acked_seq, s.last_contact_ms, (SELECT COUNT(*) FROM sales WHERE store = s.store AND kind = 'sale'), s.head,
                    s.catalog_confirmed, s.catalog_sent
             FROM stores s ORDER BY s.store",
        )?;
        let rows = st.query_map([], |r| {
            let acked_seq = r.get::<_, i64>(2)? as u64;
            let head = r.get::<_, i64>(5)? as u64;
            Ok(StoreStatus {
                store: r.get(0)?,
                epoch: r.get(1)?,
                acked_seq,
                head,
                backlog: head.saturating_sub(acked_seq),
                last_contact_ms: r.get(3)?,
                sales: r.get::<_, i64>(4)? as u64,
                catalog_confirmed: r.get::<_, i64>(6)? as u64,
                catalog_sent: r.get::<_, i64>(7)? as u64,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn sales(&self, store: StoreId, after_seq: u64, limit: usize) -> Result<Vec<SaleSummary>, DbError> {
        let conn = self.conn();
        let mut st = conn.prepare(
            "SELECT seq, kind, receipt_no, created_at_ms, total_kopecks FROM sales WHERE store = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
        )?;
        let mut lines = conn.prepare(
            "SELECT sku, name, quantity, amount_kopecks FROM sale_lines WHERE store = ?1 AND seq = ?2 ORDER BY line_no",
        )?;
        let heads = st
            .query_map(params![store.0, after_seq as i64, limit as i64], |r| {
                Ok((r.get::<_, i64>(0)? as u64, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        heads
            .into_iter()
            .map(|(seq, kind, receipt_no, created_at_ms, total_kopecks)| {
                let lines = lines
                    .query_map(params![store.0, seq as i64], |r| {
                        Ok(SaleLineSummary {
                            sku: r.get(0)?,
                            name: r.get(1)?,
                            quantity: r.get(2)?,
                            amount_kopecks: r.get(3)?,
                        })
                    })?
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(SaleSummary { store: store.0, seq, kind, receipt_no, created_at_ms, total_kopecks, lines })
            })
            .collect()
    }

    /// The stores whose stock `store` sees as "nearby": those HQ lists for it, or by
    /// default the other stores with the closest numbers, at most [`NEARBY_STORES_MAX`].
    pub fn neighbours(&self, store: StoreId) -> Result<Vec<StoreId>, DbError> {
        let conn = self.conn();
        let mut st = conn.prepare("SELECT neighbour FROM neighbours WHERE store = ?1 ORDER BY neighbour")?;
        let listed: Vec<StoreId> = st.query_map([store.0], |r| Ok(StoreId(r.get(0)?)))?.collect::<Result<_, _>>()?;
        if !listed.is_empty() {
            return Ok(listed);
        }
        let mut st =
            conn.prepare("SELECT store FROM stores WHERE store != ?1 ORDER BY ABS(store - ?1), store LIMIT ?2")?;
        let rows = st.query_map(params![store.0, NEARBY_STORES_MAX as i64], |r| Ok(StoreId(r.get(0)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn set_neighbours(&self, store: StoreId, neighbours: &[StoreId]) -> Result<(), DbError> {
        self.set_neighbours_audited(store, neighbours, None)
    }

    /// [`Db::set_neighbours`] with its audit entry, in one transaction.
    pub fn set_neighbours_audited(
        &self,
        store: StoreId,
        neighbours: &[StoreId],
        audit: Option<&NewAudit>,
    ) -> Result<(), DbError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        if let Some(a) = audit {
            access::audit_in(&tx, a)?;
        }
        tx.execute("DELETE FROM neighbours WHERE store = ?1", [store.0])?;
        for n in neighbours.iter().filter(|n| **n != store).take(NEARBY_STORES_MAX) {
            tx.execute("INSERT OR IGNORE INTO neighbours (store, neighbour) VALUES (?1, ?2)", params![store.0, n.0])?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Stock of every SKU at each of `store`'s neighbours, and when (HQ's clock) the
    /// oldest of those figures was read. A store's stock is read from the counters at
    /// most once per `max_age_ms` and shared by every store that has it as a neighbour:
    /// a thousand stores asking for eight neighbours each would otherwise run hundreds
    /// of grouped queries a second under the lock the merges need.
    pub fn nearby_stock(
        &self,
        store: StoreId,
        now_ms: i64,
        max_age_ms: i64,
    ) -> Result<(i64, Vec<NearbyStock>), DbError> {
        let neighbours = self.neighbours(store)?;
        let mut out = Vec::new();
        let mut as_of_ms = now_ms;
        for n in neighbours {
            let cached = self.views().get(&n).filter(|(at, _)| now_ms - at < max_age_ms).cloned();
            let (at, view) = match cached {
                Some(hit) => hit,
                None => {
                    let view = Arc::new(self.stock_at(n)?);
                    self.views().insert(n, (now_ms, view.clone()));
                    (now_ms, view)
                }
            };
            as_of_ms = as_of_ms.min(at);
            out.extend(view.iter().map(|(sku, quantity)| NearbyStock {
                store: n,
                sku: sku.clone(),
                quantity: *quantity,
            }));
        }
        Ok((as_of_ms, out))
    }

    /// Every SKU's stock at `location`, summed over all actors' counters.
    fn stock_at(&self, location: StoreId) -> Result<Vec<(Sku, i64)>, DbError> {
        let conn = self.conn();
        let mut st = conn.prepare_cached(
            "SELECT sku, SUM(p - n) FROM stock_counters WHERE location = ?1 GROUP BY sku ORDER BY sku",
        )?;
        let rows = st.query_map([location.0], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        rows.map(|row| {
            let (sku, quantity) = row?;
            Ok((Sku::parse(&sku).ok_or_else(|| DbError::Corrupt(format!("sku {sku}")))?, quantity))
        })
        .collect()
    }

    fn views(&self) -> std::sync::MutexGuard<'_, HashMap<StoreId, StockView>> {
        // Only a cache: whatever a panicking holder left in it is still a valid view.
        self.views.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Publishes new loyalty rules; returns their version.
    pub fn publish_rules(&self, rules: &LoyaltyRules) -> Result<u64, DbError> {
        self.publish_rules_audited(rules, None)
    }

    /// [`Db::publish_rules`] with its audit entry (the version is added to its summary),
    /// in one transaction.
    pub fn publish_rules_audited(&self, rules: &LoyaltyRules, audit: Option<&NewAudit>) -> Result<u64, DbError> {
        let json = serde_json::to_string(rules).map_err(|e| DbError::Corrupt(e.to_string()))?;
        self.publish_setting("loyalty_rules", "rules_version", 0, json, audit)
    }

    /// Stores `json` as setting `key` under the next version kept in meta `version_key`
    /// (at least `floor` + 1), with its audit entry (the version added to its summary),
    /// in one transaction; returns the version.
    fn publish_setting(
        &self,
        key: &str,
        version_key: &str,
        floor: u64,
        json: String,
        audit: Option<&NewAudit>,
    ) -> Result<u64, DbError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let version = meta(&tx, version_key)?.max(floor) + 1;
        if let Some(a) = audit {
            let mut a = a.clone();
            if let Some(s) = a.summary.as_object_mut() {
                s.insert("version".into(), version.into());
            }
            access::audit_in(&tx, &a)?;
        }
        tx.execute(
            "INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT DO UPDATE SET value = excluded.value",
            [key, &json],
        )?;
        set_meta(&tx, version_key, version)?;
        tx.commit()?;
        Ok(version)
    }

    /// The published loyalty rules and their version (version 0: none published).
    pub fn rules(&self) -> Result<(u64, LoyaltyRules), DbError> {
        let conn = self.conn();
        let version = meta(&conn, "rules_version")?;
        let json: Option<String> =
            conn.query_row("SELECT value FROM settings WHERE key = 'loyalty_rules'", [], |r| r.get(0)).optional()?;
        let rules = match json {
            Some(j) => serde_json::from_str(&j).map_err(|e| DbError::Corrupt(format!("loyalty rules: {e}")))?,
            None => LoyaltyRules::default(),
        };
        Ok((version, rules))
    }

    /// Grants a store what HQ can of the rights it asks for, in one transaction; the
    /// customer record comes along so the store can show who it is.
    pub fn grant_rights(
        &self,
        store: ActorId,
        request: &RightsRequest,
    ) -> Result<(Option<Customer>, RightsAnswer), DbError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let Some(c) = customer(&tx, &request.customer)? else {
            let answer =
                RightsAnswer::UnknownCustomer { request_id: request.request_id, customer: request.customer.clone() };
            return Ok((None, answer));
        };
        let mut account = loyalty_account(&tx, &request.customer)?;
        let answer = answer_rights_request(&mut account, HQ_ACTOR, store, request);
        for e in account.entries_written_by(HQ_ACTOR) {
            merge_loyalty(&tx, &e)?;
        }
        tx.commit()?;
        Ok((Some(c), answer))
    }

    /// A customer and their account as HQ knows them.
    pub fn loyalty(&self, card: &CustomerId) -> Result<Option<(Customer, LoyaltyAccount)>, DbError> {
        let conn = self.conn();
        let Some(c) = customer(&conn, card)? else { return Ok(None) };
        Ok(Some((c, loyalty_account(&conn, card)?)))
    }

    /// The promotions a customer has had in any store (single-use coupons are honoured
    /// once per customer).
    pub fn promotions_used(&self, card: &CustomerId) -> Result<Vec<u32>, DbError> {
        let conn = self.conn();
        let mut st =
            conn.prepare_cached("SELECT promotion FROM customer_promotions WHERE card = ?1 ORDER BY promotion")?;
        let rows = st.query_map([card.as_str()], |r| r.get::<_, u32>(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn customer_by_phone(&self, phone: &str) -> Result<Option<CustomerId>, DbError> {
        let card: Option<String> = self
            .conn()
            .query_row("SELECT card FROM customers WHERE phone = ?1 ORDER BY card LIMIT 1", [phone], |r| r.get(0))
            .optional()?;
        card.map(|c| CustomerId::parse(&c).map_err(|e| DbError::Corrupt(e.to_string()))).transpose()
    }

    pub fn parked(&self) -> Result<Vec<Parked>, DbError> {
        let conn = self.conn();
        let mut st = conn.prepare("SELECT id, store, seq, reason, parked_at_ms FROM parked ORDER BY id")?;
        let rows = st.query_map([], |r| {
            Ok(Parked {
                id: r.get(0)?,
                store: r.get(1)?,
                seq: r.get::<_, i64>(2)? as u64,
                reason: r.get(3)?,
                parked_at_ms: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// Keeps an entry HQ cannot apply, with why, for an operator (`GET /api/parked`).
fn park(tx: &Transaction<'_>, actor: ActorId, e: &OutboxEntry, reason: &str, now_ms: i64) -> rusqlite::Result<()> {
    tracing::warn!(store = %actor.store, seq = e.seq, %reason, "parked a record HQ cannot apply");
    tx.prepare_cached(
        "INSERT INTO parked (store, seq, reason, record, parked_at_ms, format) VALUES (?1, ?2, ?3, ?4, ?5, 3)",
    )?
    .execute(params![
        actor.store.0,
        e.seq as i64,
        reason,
        format::encode(&kassa_protocol::format::v3::OutboxEntry::from(e)),
        now_ms
    ])?;
    Ok(())
}

enum ApplyError {
    Invalid(String),
    Db(rusqlite::Error),
}

impl From<rusqlite::Error> for ApplyError {
    fn from(e: rusqlite::Error) -> Self {
        ApplyError::Db(e)
    }
}

/// Applies one outbox entry's record; returns the stock counters it carries, for the
/// caller to max-merge with the rest of the batch.
fn apply_entry<'e>(tx: &Transaction<'_>, e: &'e OutboxEntry, now_ms: i64) -> Result<&'e [CounterEntry], ApplyError> {
    if let Change::Order { update, counters } = &e.change {
        return match orders::apply_update(tx, update, now_ms) {
            Ok(Ok(())) => Ok(counters),
            Ok(Err(reason)) => Err(ApplyError::Invalid(reason)),
            Err(DbError::Sqlite(e)) => Err(ApplyError::Db(e)),
            Err(e) => Err(ApplyError::Invalid(e.to_string())),
        };
    }
    if let Change::Loyalty { customer, entries } = &e.change {
        if let Some(c) = customer {
            tx.prepare_cached(
                "INSERT OR IGNORE INTO customers (card, phone, name, issued_by) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![c.card.as_str(), c.phone.digits(), c.name, e.seq as i64])?;
        }
        for entry in entries {
            merge_loyalty(tx, entry)?;
        }
        return Ok(&[]);
    }
    // (id, kind, receipt, time, total, record, lines as (sku, name, signed quantity, signed amount))
    let (id, kind, receipt_no, at, total, record, lines, counters) = match &e.change {
        Change::Sale { sale, counters } => {
            sale.validate().map_err(ApplyError::Invalid)?;
            let lines: Vec<_> =
                sale.lines.iter().map(|l| (l.sku.clone(), l.name.clone(), l.quantity, l.net().0)).collect();
            (
                sale.id,
                "sale",
                &sale.receipt_no,
                sale.created_at_ms,
                sale.total.0,
                stored(&kassa_protocol::format::v2::Sale::from(sale)),
                lines,
                counters,
            )
        }
        Change::Return { ret, counters } => {
            ret.validate().map_err(ApplyError::Invalid)?;
            let lines: Vec<_> =
                ret.lines.iter().map(|l| (l.sku.clone(), l.name.clone(), -l.quantity, -l.amount.0)).collect();
            (
                ret.id,
                "return",
                &ret.receipt_no,
                ret.created_at_ms,
                -ret.total.0,
                stored(&format::Return::from(ret)),
                lines,
                counters,
            )
        }
        Change::Loyalty { .. } | Change::Movement { .. } | Change::Order { .. } | Change::OrderPayment { .. } => {
            unreachable!("applied by the caller or above")
        }
    };
    // Sales in data format 2 (with their lines' promotions), returns in format 1.
    let record_format = if kind == "sale" { 2 } else { 1 };
    let inserted = tx
        .prepare_cached(
            "INSERT OR IGNORE INTO sales (store, seq, kind, receipt_no, created_at_ms, total_kopecks, record, format) VALUES (?1,?2,?3,?4,?5,?6,?7,?8)",
        )?
        .execute(params![id.store.0, id.seq as i64, kind, receipt_no, at, total, record, record_format])?;
    if inserted == 1 {
        let anywhere = match &e.change {
            Change::Return { ret, .. } => returns::returned_now(tx, ret, now_ms),
            _ => returns::sold_now(tx, id, now_ms),
        };
        anywhere.map_err(|e| match e {
            DbError::Sqlite(e) => ApplyError::Db(e),
            e => ApplyError::Invalid(e.to_string()),
        })?;
        record_lines(tx, e, id, &lines)?;
        customers::recorded(tx, &e.change)?;
    }
    Ok(counters.as_slice())
}

/// A sale's or return's lines by SKU (for stock views and reports), a sale's line
/// promotions, and the promotions a customer has had.
fn record_lines(
    tx: &Transaction<'_>,
    e: &OutboxEntry,
    id: kassa_protocol::SaleId,
    lines: &[(Sku, String, i64, i64)],
) -> rusqlite::Result<()> {
    let mut insert = tx.prepare_cached(
        "INSERT INTO sale_lines (store, seq, line_no, sku, name, quantity, amount_kopecks) VALUES (?1,?2,?3,?4,?5,?6,?7)",
    )?;
    for (i, (sku, name, quantity, amount)) in lines.iter().enumerate() {
        insert.execute(params![id.store.0, id.seq as i64, i as i64, sku.as_str(), name, quantity, amount])?;
    }
    if let Change::Sale { sale, .. } = &e.change {
        let mut insert = tx.prepare_cached(
            "INSERT INTO sale_line_promotions (store, seq, line_no, promotion, version, name, amount_kopecks)
             VALUES (?1,?2,?3,?4,?5,?6,?7)",
        )?;
        for (i, l) in sale.lines.iter().enumerate() {
            for p in &l.promotions {
                insert.execute(params![
                    id.store.0,
                    id.seq as i64,
                    i as i64,
                    p.promotion,
                    p.version,
                    p.name,
                    p.amount.0
                ])?;
            }
        }
        if let Some(loyalty) = &sale.loyalty {
            let mut used =
                tx.prepare_cached("INSERT OR IGNORE INTO customer_promotions (card, promotion) VALUES (?1, ?2)")?;
            for p in sale.lines.iter().flat_map(|l| &l.promotions) {
                used.execute(params![loyalty.customer.as_str(), p.promotion])?;
            }
        }
    }
    Ok(())
}

/// A sale or return as HQ stores it: a frozen format of `kassa_protocol::format` (sales
/// in format 2 from schema 5, returns in format 1, as the `format` column says), never
/// the domain type.
fn stored<T: serde::Serialize>(v: &T) -> Vec<u8> {
    format::encode(v)
}

/// The bounded counter's merge, in SQL: per running total, the larger wins.
fn merge_loyalty(conn: &Connection, e: &LoyaltyEntry) -> rusqlite::Result<()> {
    let (kind, a, b) = e.kind.to_columns();
    conn.prepare_cached(
        "INSERT INTO loyalty_entries (customer, kind, a_store, a_epoch, b_store, b_epoch, total) VALUES (?1,?2,?3,?4,?5,?6,?7)
         ON CONFLICT DO UPDATE SET total = MAX(total, excluded.total)",
    )?
    .execute(params![e.customer.as_str(), kind, a.store.0, a.epoch, b.store.0, b.epoch, e.total])?;
    Ok(())
}

fn loyalty_account(conn: &Connection, customer: &CustomerId) -> Result<LoyaltyAccount, DbError> {
    let mut st = conn.prepare_cached(
        "SELECT kind, a_store, a_epoch, b_store, b_epoch, total FROM loyalty_entries WHERE customer = ?1",
    )?;
    let mut account = LoyaltyAccount::new(customer.clone());
    let rows = st.query_map([customer.as_str()], |r| {
        Ok((r.get::<_, String>(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get::<_, i64>(5)?))
    })?;
    for row in rows {
        let (kind, a_store, a_epoch, b_store, b_epoch, total) = row?;
        let a = ActorId { store: StoreId(a_store), epoch: a_epoch };
        let b = ActorId { store: StoreId(b_store), epoch: b_epoch };
        let Some(kind) = EntryKind::from_columns(&kind, a, b) else {
            return Err(DbError::Corrupt(format!("loyalty entry kind {kind}")));
        };
        account
            .merge_entry(&LoyaltyEntry { customer: customer.clone(), kind, total })
            .map_err(|e| DbError::Corrupt(format!("loyalty entry of {customer}: {e}")))?;
    }
    Ok(account)
}

fn customer(conn: &Connection, card: &CustomerId) -> Result<Option<Customer>, DbError> {
    let row: Option<(String, Option<String>)> = conn
        .query_row("SELECT phone, name FROM customers WHERE card = ?1", [card.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    row.map(|(phone, name)| {
        Customer::new(card.clone(), &phone, name.as_deref())
            .map_err(|e| DbError::Corrupt(format!("customer {card}: {e}")))
    })
    .transpose()
}

/// The CRDT merge, in SQL: per entry, the larger running total wins.
fn merge_counter(conn: &Connection, c: &CounterEntry) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO stock_counters (location, sku, actor_store, actor_epoch, p, n) VALUES (?1,?2,?3,?4,?5,?6)
         ON CONFLICT DO UPDATE SET p = MAX(p, excluded.p), n = MAX(n, excluded.n)",
    )?
    .execute(params![c.location.0, c.sku.as_str(), c.actor.store.0, c.actor.epoch, c.p, c.n])?;
    Ok(())
}

fn counters_where(
    conn: &Connection,
    location: StoreId,
    sku: Option<&Sku>,
    actor: Option<ActorId>,
) -> Result<Vec<CounterEntry>, DbError> {
    let mut st = conn.prepare(
        "SELECT sku, actor_store, actor_epoch, p, n FROM stock_counters
         WHERE location = ?1 AND (?2 IS NULL OR sku = ?2) AND (?3 IS NULL OR (actor_store = ?3 AND actor_epoch = ?4))",
    )?;
    let rows = st.query_map(
        params![location.0, sku.map(Sku::as_str), actor.map(|a| a.store.0), actor.map(|a| a.epoch)],
        |r| Ok((r.get::<_, String>(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
    )?;
    rows.map(|r| {
        let (sku, store, epoch, p, n) = r?;
        Ok(CounterEntry {
            location,
            sku: Sku::parse(&sku).ok_or_else(|| DbError::Corrupt(format!("sku {sku}")))?,
            actor: ActorId { store: StoreId(store), epoch },
            p,
            n,
        })
    })
    .collect()
}

/// Stored promotions were checked against the catalog when published.
struct AnyCatalog;

impl kassa_protocol::promotions::Catalog for AnyCatalog {
    fn has_sku(&self, _: &Sku) -> bool {
        true
    }
    fn has_category(&self, _: &str) -> bool {
        true
    }
}

fn meta(conn: &Connection, key: &str) -> Result<u64, DbError> {
    let v: Option<i64> = conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0)).optional()?;
    Ok(v.unwrap_or(0) as u64)
}

fn set_meta(conn: &Connection, key: &str, value: u64) -> Result<(), DbError> {
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT DO UPDATE SET value = excluded.value",
        params![key, value as i64],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kassa_protocol::basket::BasketLine;
    use kassa_protocol::orders::{OrderPayment, TillPayment};
    use kassa_protocol::sale::Sale;
    use kassa_protocol::testing;

    const STORE: StoreId = StoreId(1);
    const ACTOR: ActorId = ActorId { store: STORE, epoch: 1 };

    fn open() -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("hq.sqlite")).unwrap();
        (dir, db)
    }

    /// A sale of one piece of each SKU, with the store's running totals after it.
    fn sale(seq: u64, skus: &[&str], sold: &mut HashMap<String, i64>) -> OutboxEntry {
        let lines: Vec<BasketLine> = skus
            .iter()
            .map(|sku| BasketLine {
                name: "Хлеб".into(), vat: VatRate::Vat10, ..testing::line(sku, Kopecks(5_000))
            })
            .collect();
        let counters = skus
            .iter()
            .map(|sku| {
                let n = sold.entry((*sku).into()).or_default();
                *n += 1;
                CounterEntry { location: STORE, sku: Sku((*sku).into()), actor: ACTOR, p: 0, n: *n }
            })
            .collect();
        let sale = Sale { cashier: "k".into(), ..testing::sale(STORE, seq, lines) };
        OutboxEntry { seq, change: Change::Sale { sale, counters } }
    }

    #[test]
    fn a_batch_merges_each_counter_once_to_what_entry_by_entry_merging_gives() {
        let mut sold = HashMap::new();
        let entries: Vec<_> = (1..=40)
            .map(|seq| sale(seq, &[["1", "2", "3"][seq as usize % 3], ["4", "5"][seq as usize % 2]], &mut sold))
            .collect();
        let (_d1, batched) = open();
        batched.hello(ACTOR, 40, 1, 0).unwrap();
        let applied = batched.apply(ACTOR, &entries, 40, 40, 0).unwrap();
        assert_eq!(applied, Applied { parked: 0, deltas: 80, inbound_for: Vec::new(), orders_paid: Vec::new() });
        let (_d2, one_by_one) = open();
        one_by_one.hello(ACTOR, 40, 1, 0).unwrap();
        for e in &entries {
            one_by_one.apply(ACTOR, std::slice::from_ref(e), e.seq, 40, 0).unwrap();
        }
        assert_eq!(batched.counters_at(STORE).unwrap(), one_by_one.counters_at(STORE).unwrap());
        let sold_1 = batched.counters_at(STORE).unwrap().into_iter().find(|c| c.sku.as_str() == "1").unwrap();
        assert_eq!(sold_1.n, sold["1"]);
        // Applying the batch again changes nothing.
        batched.apply(ACTOR, &entries, 40, 40, 0).unwrap();
        assert_eq!(batched.counters_at(STORE).unwrap(), one_by_one.counters_at(STORE).unwrap());
        assert_eq!(batched.stores().unwrap()[0].sales, 40);
    }

    /// An order store 1's till placed for pickup at store 2, to be paid at the till.
    fn till_order(total: i64, at_ms: i64) -> kassa_protocol::orders::Order {
        use kassa_protocol::orders::{Order, OrderChannel, OrderId, Payment};
        Order {
            id: OrderId(0),
            store: StoreId(2),
            channel: OrderChannel::Store(STORE),
            customer: None,
            phone: None,
            note: String::new(),
            lines: vec![BasketLine { name: "Хлеб".into(), ..testing::line("7", Kopecks(total)) }],
            payment: Payment::Prepaid,
            created_at_ms: at_ms,
            expires_at_ms: at_ms + 86_400_000,
        }
    }

    fn word(seq: u64, order: kassa_protocol::orders::OrderId, outcome: TillPayment) -> OutboxEntry {
        let payment = OrderPayment { order, store: STORE, outcome, at_ms: 0 };
        OutboxEntry { seq, change: Change::OrderPayment { payment } }
    }

    /// An order a till placed to be paid there reaches its pickup store only once paid;
    /// one never paid is cancelled after HQ's wait, and a payment after that is kept as
    /// money owed back; an abandoned one is cancelled; a wrong word is parked.
    #[test]
    fn a_till_order_waits_for_its_payment_before_it_goes_to_its_store() {
        use kassa_protocol::orders::{OrderState, TILL_PAYMENT_WAIT_MS};
        let (_d, db) = open();
        db.deliver(StoreId(2), &[(Sku("7".into()), 10)]).unwrap();
        db.hello(ACTOR, 5, 1, 0).unwrap();
        let audit = NewAudit {
            at_ms: 0,
            actor_kind: "store",
            actor: "1".into(),
            action: "order.place",
            summary: serde_json::Value::Null,
        };
        let place = |total, at| db.place_order(till_order(total, at), None, &audit, at).unwrap().unwrap().0;
        let (paid, late, abandoned) = (place(50_000, 1_000), place(30_000, 2_000), place(10_000, 3_000));
        assert_eq!(db.available(StoreId(2), &Sku("7".into())).unwrap(), (10, 3), "reserved while awaiting");
        assert!(db.orders_to_offer(StoreId(2), 0).unwrap().0.is_empty(), "nothing goes to store 2 unpaid");
        let applied =
            db.apply(ACTOR, &[word(1, paid.id, TillPayment::Paid { amount: Kopecks(50_000) })], 1, 5, 4_000).unwrap();
        assert_eq!(applied.orders_paid, vec![(StoreId(2), paid.id)]);
        let offered: Vec<_> = db.orders_to_offer(StoreId(2), 0).unwrap().0.into_iter().map(|o| o.id).collect();
        assert_eq!(offered, vec![paid.id]);
        // HQ's wait: not a millisecond early.
        assert!(db.cancel_unpaid_orders(2_000 + TILL_PAYMENT_WAIT_MS - 1).unwrap().is_empty());
        assert_eq!(db.cancel_unpaid_orders(2_000 + TILL_PAYMENT_WAIT_MS).unwrap(), vec![late.id]);
        let applied = db
            .apply(ACTOR, &[word(2, late.id, TillPayment::Paid { amount: Kopecks(30_000) })], 2, 5, 9_000_000)
            .unwrap();
        assert!(applied.orders_paid.is_empty(), "a cancelled order is not revived");
        let row = db.order(late.id).unwrap().unwrap();
        assert_eq!(
            (row.state, row.till_payment.unwrap().paid.map(|p| p.0)),
            (OrderState::Cancelled, Some(Kopecks(30_000)))
        );
        // Abandoned: cancelled; a wrong amount, a second word: parked, nothing changed.
        let entries = [
            word(3, abandoned.id, TillPayment::Paid { amount: Kopecks(1) }),
            word(4, abandoned.id, TillPayment::Abandoned),
            word(5, abandoned.id, TillPayment::Paid { amount: Kopecks(10_000) }),
        ];
        let applied = db.apply(ACTOR, &entries, 5, 5, 9_000_001).unwrap();
        assert_eq!((applied.parked, applied.orders_paid.len()), (2, 0));
        let row = db.order(abandoned.id).unwrap().unwrap();
        assert_eq!((row.state, row.till_payment.unwrap().code()), (OrderState::Cancelled, "abandoned"));
        assert_eq!(db.available(StoreId(2), &Sku("7".into())).unwrap(), (10, 1), "only the paid order holds stock");
    }

    /// A return at `store` of `quantity` of line 0 of sale `sale` (1 ₽ each).
    /// Store `store`'s return `seq` of `quantity` of `sale`'s bread, at time `seq`.
    fn ret(store: u32, seq: u64, sale: &Sale, quantity: i64) -> OutboxEntry {
        let id = kassa_protocol::SaleId { store: StoreId(store), seq };
        let ret =
            kassa_protocol::returns::Return { created_at_ms: seq as i64, ..testing::cash_return(sale, id, quantity) };
        OutboxEntry { seq, change: Change::Return { ret, counters: Vec::new() } }
    }

    /// Returns anywhere at HQ: a till of any store is told what every store already took
    /// back of a sale; two stores that took back the same goods (offline) are listed.
    #[test]
    fn every_stores_returns_of_a_sale_are_known_and_an_over_return_is_listed() {
        use kassa_protocol::returns::SaleAnswer;
        let (_d, db) = open();
        let two = ActorId { store: StoreId(2), epoch: 1 };
        db.hello(ACTOR, 1, 1, 0).unwrap();
        db.hello(two, 2, 1, 0).unwrap();
        let bread = BasketLine { name: "Хлеб".into(), ..testing::pieces("1", Kopecks(100), 3) };
        let sale = Sale { cashier: "k".into(), ..testing::sale(STORE, 1, vec![bread]) };
        db.apply(
            ACTOR,
            &[OutboxEntry { seq: 1, change: Change::Sale { sale: sale.clone(), counters: vec![] } }],
            1,
            1,
            0,
        )
        .unwrap();
        let by_id = kassa_protocol::returns::SaleRef::Id;
        let elsewhere = by_id(kassa_protocol::SaleId { store: StoreId(9), seq: 1 });
        assert_eq!(db.sale_for_return(&elsewhere).unwrap(), SaleAnswer::NotFound);
        db.apply(two, &[ret(2, 1, &sale, 2)], 1, 2, 10).unwrap();
        let by_no = kassa_protocol::returns::SaleRef::ReceiptNo(sale.receipt_no.clone());
        assert_eq!(db.sale_for_return(&by_no).unwrap(), db.sale_for_return(&by_id(sale.id)).unwrap());
        let SaleAnswer::Found { sale: found, returned, refunds, loyalty_owed } =
            db.sale_for_return(&by_id(sale.id)).unwrap()
        else {
            panic!("the sale")
        };
        assert_eq!((*found, returned, refunds.len()), (sale.clone(), vec![(2, Kopecks(200))], 1));
        assert_eq!(loyalty_owed, Kopecks::ZERO, "a sale without a card owes no points");
        assert!(db.over_returns().unwrap().is_empty());
        // Store 1, which could not see store 2's return, takes back two more: 4 of 3.
        db.apply(ACTOR, &[ret(1, 2, &sale, 2)], 2, 2, 20).unwrap();
        let over = db.over_returns().unwrap();
        assert_eq!(over.len(), 1, "{over:?}");
        assert_eq!((over[0].sold, over[0].returned, over[0].sku.as_str()), (3, 4, "1"));
        assert_eq!(over[0].returns.iter().map(|r| r.0).collect::<Vec<_>>(), vec![2, 1]);
        // The same batch again changes nothing.
        db.apply(two, &[ret(2, 1, &sale, 2)], 1, 2, 30).unwrap();
        assert_eq!(db.over_returns().unwrap()[0].returned, 4);
    }

    /// Return rights: a claim that fits is held for its store and counted as returned
    /// for the others; one that does not is refused; a retry replaces its claim; the
    /// store's return releases it; an old claim lapses.
    #[test]
    fn return_claims_hold_lines_for_one_store_until_its_return_arrives() {
        use kassa_protocol::returns::{ReturnClaim, SaleAnswer, SaleLookup, SaleRef, RETURN_CLAIM_TTL_MS};
        let (_d, db) = open();
        let two = ActorId { store: StoreId(2), epoch: 1 };
        db.hello(ACTOR, 1, 1, 0).unwrap();
        db.hello(two, 2, 1, 0).unwrap();
        let sale = Sale { cashier: "k".into(), ..testing::sale(STORE, 1, vec![testing::pieces("1", Kopecks(100), 3)]) };
        let entry = OutboxEntry { seq: 1, change: Change::Sale { sale: sale.clone(), counters: vec![] } };
        db.apply(ACTOR, &[entry], 1, 1, 0).unwrap();
        let ask = |store: u32, key: &str, n: i64, now: i64| {
            let claim = (n > 0).then(|| ReturnClaim { key: key.into(), lines: vec![(0, n)] });
            let lookup = SaleLookup { request_id: 1, sale: SaleRef::Id(sale.id), claim };
            match db.sale_for_return_by(&lookup, StoreId(store), now).unwrap() {
                SaleAnswer::Found { returned, .. } => returned[0].0,
                SaleAnswer::NotFound => panic!("the sale"),
            }
        };
        assert_eq!(ask(2, "a", 2, 10), 0, "store 2 holds two; its own claim is not counted for it");
        assert_eq!(ask(1, "", 0, 11), 2, "store 1 sees them as returned");
        assert_eq!(ask(1, "b", 2, 12), 2, "two more do not fit: refused");
        assert_eq!(ask(2, "a", 2, 13), 0, "a retry replaces its claim, not adds to it");
        assert_eq!(ask(2, "c", 2, 14), 2, "a second claim of two does not fit: its own are counted");
        // Store 2's return arrives: the claim is released, the return counts.
        db.apply(two, &[ret(2, 1, &sale, 2)], 1, 2, 20).unwrap();
        assert_eq!(ask(1, "", 0, 21), 2);
        assert_eq!(ask(1, "d", 1, 22), 2, "the last one fits");
        // Store 1 never refunds it: after the claim's time it lapses.
        assert_eq!(ask(2, "", 0, 23), 3);
        assert_eq!(ask(2, "", 0, 22 + RETURN_CLAIM_TTL_MS + 1), 2);
        assert!(db.over_returns().unwrap().is_empty());
    }

    /// A file as the first release left it: its schema, `user_version` 0, some rows.
    fn first_release_file(path: &Path) {
        let conn = Connection::open(path).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.execute_batch(SCHEMA).unwrap();
        conn.execute_batch(
            "INSERT INTO meta (key, value) VALUES ('catalog_version', 3);
             INSERT INTO stores (store, epoch, acked_seq, last_contact_ms, head) VALUES (1, 1, 7, 0, 7);",
        )
        .unwrap();
        assert_eq!(user_version(&conn).unwrap(), 0);
    }

    fn backup_of(path: &Path, version: u32) -> std::path::PathBuf {
        path.with_extension(format!("sqlite.v{version}.bak"))
    }

    #[test]
    fn a_new_file_gets_the_current_version_and_no_backup() {
        let (dir, db) = open();
        assert_eq!(user_version(&db.conn()).unwrap(), SCHEMA_VERSION);
        drop(db);
        let path = dir.path().join("hq.sqlite");
        assert!(!backup_of(&path, 1).exists());
        // Opening it again migrates nothing.
        let db = Db::open(&path).unwrap();
        assert_eq!(user_version(&db.conn()).unwrap(), SCHEMA_VERSION);
        assert_eq!(
            std::fs::read_dir(dir.path())
                .unwrap()
                .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "bak"))
                .count(),
            0
        );
    }

    #[test]
    fn a_first_release_file_is_migrated_after_a_copy_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hq.sqlite");
        first_release_file(&path);
        let db = Db::open(&path).unwrap();
        assert_eq!(user_version(&db.conn()).unwrap(), SCHEMA_VERSION);
        // The data is all there, and the tables of later versions (operators, audit).
        assert_eq!(db.catalog_version().unwrap(), 3);
        assert_eq!(db.stores().unwrap()[0].acked_seq, 7);
        assert_eq!((db.operator_count().unwrap(), db.audit_count().unwrap()), (0, 0));
        let made = crate::auth::ensure_first_admin(&db, dir.path(), 0).unwrap();
        assert!(made.is_some() && db.operators().unwrap()[0].role == crate::auth::Role::Administrator);
        // The copy is the file as it was: version 0, the same rows.
        let backup = Connection::open(backup_of(&path, 1)).unwrap();
        assert_eq!(user_version(&backup).unwrap(), 0);
        let acked: i64 = backup.query_row("SELECT acked_seq FROM stores WHERE store = 1", [], |r| r.get(0)).unwrap();
        assert_eq!(acked, 7);
        drop(backup);
        // Opened again: nothing more to do, and the copy is left as it is.
        let copied = std::fs::read(backup_of(&path, 1)).unwrap();
        drop(db);
        let db = Db::open(&path).unwrap();
        assert_eq!(db.catalog_version().unwrap(), 3);
        assert_eq!(std::fs::read(backup_of(&path, 1)).unwrap(), copied);
    }

    #[test]
    fn a_file_newer_than_the_binary_is_refused_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hq.sqlite");
        first_release_file(&path);
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1).unwrap();
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).unwrap();
        drop(conn);
        let wal = dir.path().join("hq.sqlite-wal");
        assert!(!wal.exists());
        let before = std::fs::read(&path).unwrap();
        let err = Db::open(&path).unwrap_err();
        match &err {
            DbError::TooNew { found, known } => assert_eq!((*found, *known), (SCHEMA_VERSION + 1, SCHEMA_VERSION)),
            other => panic!("{other:?}"),
        }
        let message = err.to_string();
        assert!(message.contains(&format!("version {}", SCHEMA_VERSION + 1)), "{message}");
        assert!(message.contains(&format!("({SCHEMA_VERSION})")), "{message}");
        assert!(message.contains("kassa-hq") && message.contains("not touched"), "{message}");
        assert_eq!(std::fs::read(&path).unwrap(), before, "the file must not change");
        assert!(!wal.exists() || std::fs::metadata(&wal).unwrap().len() == 0);
        assert!(!backup_of(&path, 1).exists() && !backup_of(&path, SCHEMA_VERSION + 1).exists());
    }

    #[test]
    fn a_neighbours_stock_is_reused_for_its_max_age_and_says_how_old_it_is() {
        let (_d, db) = open();
        db.set_neighbours(STORE, &[StoreId(2)]).unwrap();
        let delivery = |n| CounterEntry { location: StoreId(2), sku: Sku("7".into()), actor: ActorId::HQ, p: n, n: 0 };
        db.merge_counters(&[delivery(5)]).unwrap();
        let (as_of, view) = db.nearby_stock(STORE, 1_000, 500).unwrap();
        assert_eq!((as_of, view[0].quantity), (1_000, 5));
        db.merge_counters(&[delivery(9)]).unwrap();
        // Within the max age: the figures read at 1,000, and said to be from then.
        let (as_of, view) = db.nearby_stock(STORE, 1_400, 500).unwrap();
        assert_eq!((as_of, view[0].quantity), (1_000, 5));
        // Past it: read again.
        let (as_of, view) = db.nearby_stock(STORE, 1_600, 500).unwrap();
        assert_eq!((as_of, view[0].quantity), (1_600, 9));
    }
}
