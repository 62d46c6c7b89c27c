//! HQ's merged store of every store: a SQLite file (the embedded default) or PostgreSQL,
//! shared by any number of HQ nodes (issue #17). Each query is written once ([`sql`]).
//!
//! **Architecture invariant:** only this module issues SQL. Counter rows merge by
//! `MAX` upserts, so applying an entry twice, or in any order, gives the same rows.
//!
//! SQLite keeps the schema's version in `PRAGMA user_version` ([`SCHEMA_VERSION`]), as
//! in the store's journal; PostgreSQL in the table `schema_version`, its schema being the
//! same steps spelled for it ([`sql::pg_ddl`]). Files of the first release have 0 and are version 1. [`Db::open`] refuses a
//! file newer than this binary before anything writes to it ([`DbError::TooNew`]), and
//! migrates an older one at start, in one transaction, after keeping a copy beside it
//! (`hq.sqlite.v{old}.bak`).

mod access;
mod customers;
mod orders;
mod return_terms;
mod returns;
mod schedule;
pub mod sql;
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
use serde::Serialize;
use sql::{params, Connection, OptionalExtension, Transaction};

/// Nearby stores whose stock a store sees: enough for "where else is it in stock"
/// without sending the whole chain to every till.
pub const NEARBY_STORES_MAX: usize = 8;

/// HQ's own actor: deliveries and transfers it books into stores' stock.
pub const HQ_ACTOR: ActorId = ActorId::HQ;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database: {0}")]
    Sql(#[from] sql::Error),
    #[error("stored record is corrupt: {0}")]
    Corrupt(String),
    /// The file was written by a newer kassa-hq: nothing was written to it.
    #[error(
        "HQ's database schema is version {found}, newer than this program knows ({known}): \
         run the newer kassa-hq; the file was not touched"
    )]
    TooNew { found: u32, known: u32 },
    /// `--database` names neither a file nor a `postgres://` URL HQ can use.
    #[error("database {0}")]
    Config(String),
}

impl From<rusqlite::Error> for DbError {
    fn from(e: rusqlite::Error) -> Self {
        DbError::Sql(e.into())
    }
}

impl DbError {
    /// The database is unreachable (PostgreSQL down, the pool empty): HQ keeps stores
    /// connected and stops acknowledging until it is back.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, DbError::Sql(e) if e.is_unavailable())
    }
}

/// A PostgreSQL pool's bounds: connections per node and how long to wait for one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolLimits {
    pub connections_max: u32,
    pub wait: std::time::Duration,
}

impl Default for PoolLimits {
    fn default() -> Self {
        PoolLimits { connections_max: 16, wait: std::time::Duration::from_secs(3) }
    }
}

#[derive(Debug)]
pub struct Db {
    conn: Pool,
    /// Each store's stock as its neighbours see it, with when it was read.
    views: Mutex<HashMap<StoreId, StockView>>,
    /// Each store's neighbours, with when the list was read.
    neighbour_lists: Mutex<HashMap<StoreId, NeighbourList>>,
    /// The published promotions, indexed for pricing, and their version; built from the
    /// table on first use and replaced on every publication.
    promotion_set: Mutex<Option<(u64, Arc<PromotionSet>)>>,
    /// The price schedule, indexed for pricing, with its version (`schedule`).
    schedule_index: Mutex<Option<(u64, Arc<kassa_protocol::price_schedule::PriceSchedule>)>>,
    /// The catalog's items of the version this node last read, for offering them.
    catalog_copy: Mutex<Option<CatalogCopy>>,
    /// The store keys and return limits, as this node last read them.
    terms: Mutex<return_terms::TermsCache>,
}

type StockView = (i64, Arc<Vec<(Sku, i64)>>);
type NeighbourList = (i64, Arc<Vec<StoreId>>);
/// A catalog version and its items.
pub type CatalogCopy = (u64, Arc<Vec<CatalogItem>>);

/// Where HQ's connections come from: SQLite's one connection, or PostgreSQL's pool.
#[derive(Debug)]
enum Pool {
    Lite(Mutex<Connection>),
    /// The pool, and how to open a connection outside it (for `LISTEN`).
    Pg(r2d2::Pool<sql::PgManager>, sql::PgManager),
}

/// A connection held for one call.
enum Conn<'a> {
    Lite(std::sync::MutexGuard<'a, Connection>),
    Pg(Box<r2d2::PooledConnection<sql::PgManager>>),
}

impl std::ops::Deref for Conn<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        match self {
            Conn::Lite(c) => c,
            Conn::Pg(c) => c,
        }
    }
}

impl std::ops::DerefMut for Conn<'_> {
    fn deref_mut(&mut self) -> &mut Connection {
        match self {
            Conn::Lite(c) => c,
            Conn::Pg(c) => c,
        }
    }
}

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
fn user_version(conn: &rusqlite::Connection) -> Result<u32, DbError> {
    Ok(conn.pragma_query_value(None, "user_version", |r| r.get(0))?)
}

/// Brings the file to [`SCHEMA_VERSION`]: creates a new database, or migrates an older
/// one (after keeping a copy of it). The caller has refused a newer one.
fn migrate(conn: &Connection, path: &Path) -> Result<(), DbError> {
    let lite = conn.as_sqlite().expect("a SQLite connection");
    let version = user_version(lite)?;
    let tables: i64 = conn.query_row("SELECT COUNT(*) FROM sqlite_master", [], |r| r.get(0))?;
    let from = version.max(1);
    if from == SCHEMA_VERSION {
        return Ok(());
    }
    if tables > 0 {
        let backup = path.with_extension(format!("sqlite.v{from}.bak"));
        // A copy from an earlier, interrupted attempt is the file as it was: keep it.
        if !backup.exists() {
            lite.execute("VACUUM INTO ?1", [backup.display().to_string()])?;
        }
        tracing::info!(from, to = SCHEMA_VERSION, backup = %backup.display(), "migrating HQ's database");
    }
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let result = (|| {
        conn.execute_batch(SCHEMA)?;
        for (to, step) in MIGRATIONS.iter().filter(|(to, _)| *to > from) {
            conn.execute_batch(step)?;
            backfill(conn, *to, tables > 0)?;
            lite.pragma_update(None, "user_version", to)?;
        }
        conn.execute_batch("COMMIT")
    })();
    if result.is_err() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    Ok(result?)
}

/// The steps that fill a new table from what an older schema held.
fn backfill(conn: &Connection, to: u32, had_data: bool) -> sql::Result<()> {
    match to {
        10 if had_data => returns::backfill(conn),
        13 if had_data => customers::backfill(conn),
        _ => Ok(()),
    }
}

/// PostgreSQL only: what stores are offered changed, for every HQ node (`crate::nodes`):
/// a notification on commit naming the version in `meta`, or the table.
const PG_NOTIFY: &str = "
CREATE FUNCTION kassa_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'meta' THEN
        PERFORM pg_notify('kassa', 'meta:' || NEW.key);
    ELSE
        PERFORM pg_notify('kassa', TG_TABLE_NAME);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER meta_changed AFTER INSERT OR UPDATE ON meta FOR EACH ROW EXECUTE FUNCTION kassa_notify();
CREATE TRIGGER store_key_added AFTER INSERT ON store_keys FOR EACH STATEMENT EXECUTE FUNCTION kassa_notify();
CREATE TRIGGER inbound_added AFTER INSERT ON inbound FOR EACH STATEMENT EXECUTE FUNCTION kassa_notify();
CREATE TRIGGER order_event AFTER INSERT ON order_events FOR EACH STATEMENT EXECUTE FUNCTION kassa_notify();
";

/// Brings a PostgreSQL database to [`SCHEMA_VERSION`] in one transaction (under the
/// write lock, so two nodes starting at once migrate it once); a newer one is refused
/// before anything is written.
fn migrate_postgres(conn: &mut Connection) -> Result<(), DbError> {
    let tx = conn.transaction()?;
    tx.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")?;
    let found: Option<u32> = tx.query_row("SELECT version FROM schema_version", [], |r| r.get(0)).optional()?;
    if let Some(found) = found.filter(|v| *v > SCHEMA_VERSION) {
        return Err(DbError::TooNew { found, known: SCHEMA_VERSION });
    }
    if found == Some(SCHEMA_VERSION) {
        return Ok(());
    }
    let from = found.unwrap_or(0).max(1);
    if found.is_none() {
        tx.execute_batch(&sql::pg_ddl(SCHEMA))?;
        tx.execute("INSERT INTO schema_version (version) VALUES (1)", [])?;
    }
    tracing::info!(from, to = SCHEMA_VERSION, "migrating HQ's PostgreSQL database");
    for (to, step) in MIGRATIONS.iter().filter(|(to, _)| *to > from) {
        tx.execute_batch(&sql::pg_ddl(step))?;
        backfill(&tx, *to, found.is_some())?;
        tx.execute("UPDATE schema_version SET version = ?1", [*to])?;
    }
    if found.is_none() {
        tx.execute_batch(PG_NOTIFY)?;
    }
    tx.commit()?;
    Ok(())
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

fn item_from_row(row: &sql::Row<'_>) -> sql::Result<Result<CatalogItem, String>> {
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
        let conn = rusqlite::Connection::open(path)?;
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
        let conn = Connection::sqlite(conn);
        migrate(&conn, path)?;
        Ok(Db::with(Pool::Lite(Mutex::new(conn))))
    }

    /// Connects to PostgreSQL at `url` (`postgres://user@host:port/db`) with a pool of at
    /// most `limits.connections_max` connections, migrating its schema; a database newer
    /// than this binary is refused untouched ([`DbError::TooNew`]).
    pub fn open_postgres(url: &str, limits: PoolLimits) -> Result<Db, DbError> {
        let manager = sql::PgManager::new(url, limits.wait).map_err(DbError::Config)?;
        let pool = r2d2::Pool::builder()
            .max_size(limits.connections_max)
            .min_idle(Some(1))
            .connection_timeout(limits.wait)
            .build(manager.clone())
            .map_err(|e| sql::Error::Pool(e.to_string()))?;
        let db = Db::with(Pool::Pg(pool, manager));
        migrate_postgres(&mut *db.conn()?)?;
        Ok(db)
    }

    /// Opens `database`: a `postgres://` (or `postgresql://`) URL, or else a SQLite file's path.
    pub fn open_any(database: &str, limits: PoolLimits) -> Result<Db, DbError> {
        if is_postgres_url(database) {
            Db::open_postgres(database, limits)
        } else {
            Db::open(Path::new(database))
        }
    }

    fn with(conn: Pool) -> Db {
        Db {
            conn,
            views: Mutex::new(HashMap::new()),
            neighbour_lists: Mutex::new(HashMap::new()),
            promotion_set: Mutex::new(None),
            schedule_index: Mutex::new(None),
            catalog_copy: Mutex::new(None),
            terms: Mutex::new(Default::default()),
        }
    }

    /// Which database this is.
    pub fn backend(&self) -> sql::Backend {
        match &self.conn {
            Pool::Lite(_) => sql::Backend::Sqlite,
            Pool::Pg(..) => sql::Backend::Postgres,
        }
    }

    /// A connection for one call: SQLite's (waiting for the call before), or one from the
    /// pool, waiting at most the pool's limit ([`DbError::is_unavailable`] after).
    fn conn(&self) -> Result<Conn<'_>, DbError> {
        match &self.conn {
            // A panic while holding the lock leaves SQLite consistent (the transaction
            // rolls back on drop), so a poisoned lock is safe to reuse.
            Pool::Lite(c) => Ok(Conn::Lite(c.lock().unwrap_or_else(|p| p.into_inner()))),
            Pool::Pg(pool, _) => {
                pool.get().map(|c| Conn::Pg(Box::new(c))).map_err(|e| sql::Error::Pool(e.to_string()).into())
            }
        }
    }

    /// A connection of its own for `LISTEN` (PostgreSQL only), outside the pool.
    pub fn listen_connection(&self) -> Result<postgres::Client, DbError> {
        match &self.conn {
            Pool::Pg(_, manager) => Ok(manager.client()?),
            Pool::Lite(_) => Err(DbError::Config("SQLite has no notifications".into())),
        }
    }

    /// Whether the database answers now (for `/api/health`).
    pub fn ping(&self) -> Result<(), DbError> {
        self.conn()?.query_row("SELECT 1", [], |_| Ok(()))?;
        Ok(())
    }

    pub fn catalog_version(&self) -> Result<u64, DbError> {
        meta(&*self.conn()?, "catalog_version")
    }

    /// Replaces the catalog with `items` as a new version, in one transaction, whatever
    /// it removes (for seeding and tests; operators go through [`Db::import_catalog`]).
    pub fn publish_catalog(&self, items: &[CatalogItem]) -> Result<u64, DbError> {
        let mut conn = self.conn()?;
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
        let mut conn = self.conn()?;
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
        let mut conn = self.conn()?;
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
        let mut conn = self.conn()?;
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
        let conn = self.conn()?;
        let version = meta(&conn, "promotions_version")?;
        let mut st = conn.prepare("SELECT definition FROM promotions ORDER BY id")?;
        let rows = st.query_map([], |r| r.get::<String>(0))?;
        let defs = rows
            .map(|json| serde_json::from_str(&json?).map_err(|e| DbError::Corrupt(format!("stored promotion: {e}"))))
            .collect::<Result<Vec<Definition>, DbError>>()?;
        Ok((version, defs))
    }

    /// The published promotions, indexed for pricing, and their version.
    /// Rebuilt when the version in the database moves (another HQ node published).
    pub fn promotion_set(&self) -> Result<(u64, Arc<PromotionSet>), DbError> {
        let current = meta(&*self.conn()?, "promotions_version")?;
        if let Some(cached) = self.promotion_set.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            if cached.0 == current {
                return Ok(cached);
            }
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
        let conn = self.conn()?;
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
        catalog_in(&*self.conn()?)
    }

    /// The published catalog and its version if it is newer than `held` (what a store
    /// holds), else `None` without reading the items. The items of a version are read
    /// once per node and shared: after a publication every store asks for the same.
    pub fn catalog_newer_than(&self, held: u64) -> Result<Option<CatalogCopy>, DbError> {
        let conn = self.conn()?;
        let version = meta(&conn, "catalog_version")?;
        if version <= held {
            return Ok(None);
        }
        let cached = self.catalog_copy().as_ref().filter(|(v, _)| *v == version).map(|(_, items)| items.clone());
        if let Some(items) = cached {
            return Ok(Some((version, items)));
        }
        let items = Arc::new(catalog_in(&conn)?);
        // Published again between the two reads: these items may be the newer version's,
        // so they are not kept under this one (the store is offered the newer one next).
        if meta(&conn, "catalog_version")? == version {
            *self.catalog_copy() = Some((version, items.clone()));
        }
        Ok(Some((version, items)))
    }

    fn catalog_copy(&self) -> std::sync::MutexGuard<'_, Option<CatalogCopy>> {
        // Only a copy: a panicking holder leaves either the old or the new one whole.
        self.catalog_copy.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Books a delivery of `quantity` into a store's stock, as HQ's actor; returns the
    /// new entry to offer the store.
    pub fn deliver(&self, location: StoreId, deliveries: &[(Sku, i64)]) -> Result<Vec<CounterEntry>, DbError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        let mut out = Vec::new();
        for (sku, quantity) in deliveries {
            tx.execute(
                "INSERT INTO stock_counters (location, sku, actor_store, actor_epoch, p, n) VALUES (?1, ?2, ?3, ?4, ?5, 0)
                 ON CONFLICT (location, sku, actor_store, actor_epoch) DO UPDATE SET p = stock_counters.p + excluded.p",
                params![location.0, sku.as_str(), HQ_ACTOR.store.0, HQ_ACTOR.epoch, quantity],
            )?;
            out.extend(counters_where(&tx, location, Some(sku), Some(HQ_ACTOR))?);
        }
        if tx.backend() == sql::Backend::Postgres {
            // Every HQ node offers it to its connected stores (`crate::nodes`).
            tx.execute("SELECT pg_notify('kassa', 'counters')", [])?;
        }
        tx.commit()?;
        Ok(out)
    }

    /// Runs `f` once per HQ lifetime flag `key` (demo seeding); true if it ran.
    pub fn once(&self, key: &str) -> Result<bool, DbError> {
        let conn = self.conn()?;
        let done = meta(&conn, key)? != 0;
        if !done {
            set_meta(&conn, key, 1)?;
        }
        Ok(!done)
    }

    /// The store's acknowledged progress; registers a store on first contact and records
    /// the catalog version it says it holds.
    pub fn hello(&self, actor: ActorId, head: u64, catalog_version: u64, now_ms: i64) -> Result<u64, DbError> {
        let acked: i64 = self.conn()?.query_row(
            "INSERT INTO stores (store, epoch, acked_seq, last_contact_ms, head, catalog_confirmed, catalog_sent)
             VALUES (?1, ?2, 0, ?3, ?4, ?5, ?5)
             ON CONFLICT (store) DO UPDATE SET last_contact_ms = excluded.last_contact_ms, head = excluded.head,
                 catalog_confirmed = excluded.catalog_confirmed, catalog_sent = excluded.catalog_sent
             RETURNING acked_seq",
            params![actor.store.0, actor.epoch, now_ms, head as i64, catalog_version as i64],
            |r| r.get(0),
        )?;
        Ok(acked as u64)
    }

    /// HQ handed catalog `version` whole to `store`'s live connection.
    pub fn catalog_sent(&self, store: StoreId, version: u64) -> Result<(), DbError> {
        self.conn()?.execute(
            "UPDATE stores SET catalog_sent = GREATEST(catalog_sent, ?2) WHERE store = ?1",
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
        let batch = Batch { actor, entries, upto, head };
        Ok(self.apply_many(std::slice::from_ref(&batch), now_ms)?.remove(0))
    }

    /// [`Db::apply`] for the batches of several stores, in one transaction (one commit
    /// for them all: a node coalesces the batches that arrive together). All or nothing:
    /// an error leaves every one of them unapplied, for its store to send again.
    pub fn apply_many(&self, batches: &[Batch<'_>], now_ms: i64) -> Result<Vec<Applied>, DbError> {
        let mut conn = self.conn()?;
        let plain = batches.iter().all(|b| b.entries.iter().all(is_sale));
        let tx = if plain { conn.transaction_shared()? } else { conn.transaction()? };
        let applied = apply_batches(&tx, batches, now_ms)?;
        tx.commit()?;
        Ok(applied)
    }
}

/// One store's batch: entries of its outbox, up to `upto`, with its outbox head.
#[derive(Debug, Clone, Copy)]
pub struct Batch<'a> {
    pub actor: ActorId,
    pub entries: &'a [OutboxEntry],
    pub upto: u64,
    pub head: u64,
}

/// The batches' records and their stores' progress, in the caller's transaction, as one
/// run: consecutive sales of every batch go in the same few statements (records, lines),
/// the counters they all carry are max-merged once, and each store's progress is
/// recorded; a record that cannot be applied is parked under its batch's store.
fn apply_batches(tx: &Transaction<'_>, batches: &[Batch<'_>], now_ms: i64) -> Result<Vec<Applied>, DbError> {
    let mut applied = vec![Applied::default(); batches.len()];
    let entries: Vec<(usize, &OutboxEntry)> =
        batches.iter().enumerate().flat_map(|(i, b)| b.entries.iter().map(move |e| (i, e))).collect();
    // Batched max-merge: of the running totals the batches carry for one counter only the
    // largest of each matters (they only grow), so each counter row is written once.
    let mut merged: HashMap<(StoreId, &Sku, ActorId), (i64, i64)> = HashMap::new();
    let mut parked: Vec<(usize, &OutboxEntry, String)> = Vec::new();
    for run in entries.chunk_by(|a, b| is_sale(a.1) == is_sale(b.1)) {
        if is_sale(run[0].1) {
            let (counters, refused) = apply_sales(tx, run.iter().map(|(_, e)| *e), now_ms)?;
            merge_into(&mut merged, counters);
            for &(i, e) in run {
                applied[i].deltas += sale_counters(e);
            }
            for (e, reason) in refused {
                let &(i, _) = run.iter().find(|(_, x)| std::ptr::eq(*x, e)).expect("a sale of the run");
                applied[i].deltas -= sale_counters(e);
                parked.push((i, e, reason));
            }
            continue;
        }
        for &(i, e) in run {
            if let Change::Movement { movement, counters } = &e.change {
                if let Some(to) = stock::apply_movement(tx, movement, now_ms)? {
                    applied[i].inbound_for.push(to);
                }
                applied[i].deltas += merge_into(&mut merged, counters);
                continue;
            }
            if let Change::OrderPayment { payment } = &e.change {
                match orders::apply_payment(tx, payment, now_ms)? {
                    Ok(paid) => applied[i].orders_paid.extend(paid),
                    Err(reason) => parked.push((i, e, reason)),
                }
                continue;
            }
            match apply_entry(tx, e, now_ms) {
                Ok(counters) => applied[i].deltas += merge_into(&mut merged, counters),
                Err(ApplyError::Invalid(reason)) => parked.push((i, e, reason)),
                Err(ApplyError::Db(e)) => return Err(e.into()),
            }
        }
    }
    for (i, e, reason) in &parked {
        park(tx, batches[*i].actor, e, reason, now_ms)?;
        applied[*i].parked += 1;
    }
    let rows: Vec<Vec<sql::Value<'_>>> =
        merged.iter().map(|((location, sku, actor), (p, n))| counter_row(*location, sku, *actor, *p, *n)).collect();
    merge_counter_rows(tx, &rows)?;
    let progress: Vec<_> = batches.iter().map(|b| (b.actor.store, b.upto, b.head)).collect();
    record_progress(tx, &progress, now_ms)?;
    Ok(applied)
}

/// The stock deltas a sale carries.
fn sale_counters(e: &OutboxEntry) -> usize {
    match &e.change {
        Change::Sale { counters, .. } => counters.len(),
        _ => 0,
    }
}

/// Each store's acknowledged progress and outbox head, and that it was heard from now.
fn record_progress(tx: &Transaction<'_>, progress: &[(StoreId, u64, u64)], now_ms: i64) -> sql::Result<()> {
    if tx.backend() == sql::Backend::Postgres && progress.len() > 1 {
        let column = |f: fn(&(StoreId, u64, u64)) -> i64| progress.iter().map(f).collect::<Vec<i64>>();
        let (stores, upto, head) = (column(|p| p.0 .0.into()), column(|p| p.1 as i64), column(|p| p.2 as i64));
        return tx.execute_arrays(
            "UPDATE stores SET acked_seq = GREATEST(stores.acked_seq, u.upto), last_contact_ms = ?4,
                 head = GREATEST(stores.head, u.head)
             FROM UNNEST(?1::bigint[], ?2::bigint[], ?3::bigint[]) AS u(store, upto, head) WHERE stores.store = u.store",
            &[&stores, &upto, &head, &now_ms],
        );
    }
    let mut st = tx.prepare_cached(
        "UPDATE stores SET acked_seq = GREATEST(acked_seq, ?2), last_contact_ms = ?3, head = GREATEST(head, ?4) WHERE store = ?1",
    )?;
    for (store, upto, head) in progress {
        st.execute(params![store.0, *upto as i64, now_ms, *head as i64])?;
    }
    Ok(())
}

impl Db {
    /// Counter entries of actors other than the store itself for its stock: what the
    /// store needs from HQ.
    pub fn counters_for(&self, location: StoreId) -> Result<Vec<CounterEntry>, DbError> {
        let conn = self.conn()?;
        Ok(counters_where(&conn, location, None, None)?.into_iter().filter(|c| c.actor.store != location).collect())
    }

    /// Every counter entry of a store's stock (all actors), for anti-entropy.
    pub fn counters_at(&self, location: StoreId) -> Result<Vec<CounterEntry>, DbError> {
        counters_where(&*self.conn()?, location, None, None)
    }

    /// Max-merges a store's own counters, sent in full after a digest mismatch.
    pub fn merge_counters(&self, entries: &[CounterEntry]) -> Result<(), DbError> {
        let mut merged = HashMap::new();
        merge_into(&mut merged, entries);
        let rows: Vec<Vec<sql::Value<'_>>> =
            merged.iter().map(|((location, sku, actor), (p, n))| counter_row(*location, sku, *actor, *p, *n)).collect();
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        merge_counter_rows(&tx, &rows)?;
        tx.commit()?;
        Ok(())
    }

    pub fn stock(&self, sku: &Sku) -> Result<Vec<StockAt>, DbError> {
        let conn = self.conn()?;
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
        let conn = self.conn()?;
        let mut st = conn.prepare(
            "SELECT s.store, s.epoch, s.acked_seq, s.last_contact_ms, (SELECT COUNT(*) FROM sales WHERE store = s.store AND kind = 'sale'), s.head,
                    s.catalog_confirmed, s.catalog_sent
             FROM stores s ORDER BY s.store",
        )?;
        let rows = st.query_map([], |r| {
            let acked_seq = r.get::<i64>(2)? as u64;
            let head = r.get::<i64>(5)? as u64;
            Ok(StoreStatus {
                store: r.get(0)?,
                epoch: r.get(1)?,
                acked_seq,
                head,
                backlog: head.saturating_sub(acked_seq),
                last_contact_ms: r.get(3)?,
                sales: r.get::<i64>(4)? as u64,
                catalog_confirmed: r.get::<i64>(6)? as u64,
                catalog_sent: r.get::<i64>(7)? as u64,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn sales(&self, store: StoreId, after_seq: u64, limit: usize) -> Result<Vec<SaleSummary>, DbError> {
        let conn = self.conn()?;
        let mut st = conn.prepare(
            "SELECT seq, kind, receipt_no, created_at_ms, total_kopecks FROM sales WHERE store = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
        )?;
        let mut lines = conn.prepare(
            "SELECT sku, name, quantity, amount_kopecks FROM sale_lines WHERE store = ?1 AND seq = ?2 ORDER BY line_no",
        )?;
        let heads = st
            .query_map(params![store.0, after_seq as i64, limit as i64], |r| {
                Ok((r.get::<i64>(0)? as u64, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
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
        // One statement (every connected store asks at each nearby view): the listed
        // neighbours, else the closest numbers below and above, each side read from the
        // key's index (ordering all stores by distance scanned every row, a query of a
        // millisecond each at 5,000 stores).
        let conn = self.conn()?;
        let mut st = conn.prepare_cached(
            "SELECT neighbour, 0 FROM neighbours WHERE store = ?1
             UNION ALL
             SELECT store, ABS(store - ?1) FROM (
                 SELECT store FROM (SELECT store FROM stores WHERE store < ?1 ORDER BY store DESC LIMIT ?2) AS below
                 UNION ALL
                 SELECT store FROM (SELECT store FROM stores WHERE store > ?1 ORDER BY store LIMIT ?2) AS above
             ) AS near
             WHERE NOT EXISTS (SELECT 1 FROM neighbours WHERE store = ?1)
             ORDER BY 2, 1",
        )?;
        let rows = st.query_map(params![store.0, NEARBY_STORES_MAX as i64], |r| Ok(StoreId(r.get(0)?)))?;
        let mut found: Vec<StoreId> = rows.collect::<Result<_, _>>()?;
        found.truncate(NEARBY_STORES_MAX);
        Ok(found)
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
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        if let Some(a) = audit {
            access::audit_in(&tx, a)?;
        }
        tx.execute("DELETE FROM neighbours WHERE store = ?1", [store.0])?;
        for n in neighbours.iter().filter(|n| **n != store).take(NEARBY_STORES_MAX) {
            tx.execute(
                "INSERT INTO neighbours (store, neighbour) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                params![store.0, n.0],
            )?;
        }
        tx.commit()?;
        // This node's stores see the new list at once; another node's within its max age.
        self.neighbour_lists().remove(&store);
        Ok(())
    }

    /// Stock of every SKU at each of `store`'s neighbours, and when (HQ's clock) the
    /// oldest of those figures was read. A store's stock is read from the counters at
    /// most once per `max_age_ms` and shared by every store that has it as a neighbour,
    /// and so is the list of a store's neighbours; the views a call lacks are read in one
    /// statement. Every connected store asks every [`crate::sync_server::NEARBY_INTERVAL`]:
    /// thousands of stores asking for eight neighbours each would otherwise be thousands
    /// of queries a second.
    pub fn nearby_stock(
        &self,
        store: StoreId,
        now_ms: i64,
        max_age_ms: i64,
    ) -> Result<(i64, Vec<NearbyStock>), DbError> {
        let fresh = |at: i64| now_ms - at < max_age_ms;
        let listed = self.neighbour_lists().get(&store).filter(|(at, _)| fresh(*at)).map(|(_, l)| l.clone());
        let neighbours = match listed {
            Some(hit) => hit,
            None => {
                let read = Arc::new(self.neighbours(store)?);
                self.neighbour_lists().insert(store, (now_ms, read.clone()));
                read
            }
        };
        let stale: Vec<StoreId> = {
            let views = self.views();
            neighbours.iter().filter(|n| !views.get(n).is_some_and(|(at, _)| fresh(*at))).copied().collect()
        };
        let mut read = self.stock_of(&stale)?;
        let mut views = self.views();
        for n in stale {
            views.insert(n, (now_ms, Arc::new(read.remove(&n).unwrap_or_default())));
        }
        let mut out = Vec::new();
        let mut as_of_ms = now_ms;
        for (n, (at, view)) in neighbours.iter().filter_map(|n| Some((*n, views.get(n)?))) {
            as_of_ms = as_of_ms.min(*at);
            out.extend(view.iter().map(|(sku, quantity)| NearbyStock {
                store: n,
                sku: sku.clone(),
                quantity: *quantity,
            }));
        }
        Ok((as_of_ms, out))
    }

    /// Every SKU's stock at each of `locations` (at most [`NEARBY_STORES_MAX`]), summed
    /// over all actors' counters, in one statement.
    fn stock_of(&self, locations: &[StoreId]) -> Result<HashMap<StoreId, Vec<(Sku, i64)>>, DbError> {
        let mut out: HashMap<StoreId, Vec<(Sku, i64)>> = HashMap::new();
        if locations.is_empty() {
            return Ok(out);
        }
        let placeholders: Vec<String> = (1..=locations.len()).map(|i| format!("?{i}")).collect();
        let conn = self.conn()?;
        let mut st = conn.prepare_cached(&format!(
            "SELECT location, sku, SUM(p - n) FROM stock_counters WHERE location IN ({})
             GROUP BY location, sku ORDER BY location, sku",
            placeholders.join(", ")
        ))?;
        let ids: Vec<sql::Value<'_>> = locations.iter().map(|l| sql::Value::Int(l.0.into())).collect();
        let rows = st.query_map(ids.as_slice(), |r| Ok((r.get::<u32>(0)?, r.get::<String>(1)?, r.get::<i64>(2)?)))?;
        for row in rows {
            let (location, sku, quantity) = row?;
            let sku = Sku::parse(&sku).ok_or_else(|| DbError::Corrupt(format!("sku {sku}")))?;
            out.entry(StoreId(location)).or_default().push((sku, quantity));
        }
        Ok(out)
    }

    fn neighbour_lists(&self) -> std::sync::MutexGuard<'_, HashMap<StoreId, NeighbourList>> {
        // Only a cache: whatever a panicking holder left in it is still a valid list.
        self.neighbour_lists.lock().unwrap_or_else(|p| p.into_inner())
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
        let mut conn = self.conn()?;
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
            "INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [key, &json],
        )?;
        set_meta(&tx, version_key, version)?;
        tx.commit()?;
        Ok(version)
    }

    /// The published loyalty rules and their version (version 0: none published).
    pub fn rules(&self) -> Result<(u64, LoyaltyRules), DbError> {
        // One statement: every store is offered the rules at each connect.
        let (version, json): (Option<i64>, Option<String>) = self.conn()?.query_row(
            "SELECT (SELECT value FROM meta WHERE key = 'rules_version'),
                    (SELECT value FROM settings WHERE key = 'loyalty_rules')",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let version = version.unwrap_or(0) as u64;
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
        let mut conn = self.conn()?;
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
        let conn = self.conn()?;
        let Some(c) = customer(&conn, card)? else { return Ok(None) };
        Ok(Some((c, loyalty_account(&conn, card)?)))
    }

    /// The promotions a customer has had in any store (single-use coupons are honoured
    /// once per customer).
    pub fn promotions_used(&self, card: &CustomerId) -> Result<Vec<u32>, DbError> {
        let conn = self.conn()?;
        let mut st =
            conn.prepare_cached("SELECT promotion FROM customer_promotions WHERE card = ?1 ORDER BY promotion")?;
        let rows = st.query_map([card.as_str()], |r| r.get::<u32>(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn customer_by_phone(&self, phone: &str) -> Result<Option<CustomerId>, DbError> {
        let card: Option<String> = self
            .conn()?
            .query_row("SELECT card FROM customers WHERE phone = ?1 ORDER BY card LIMIT 1", [phone], |r| r.get(0))
            .optional()?;
        card.map(|c| CustomerId::parse(&c).map_err(|e| DbError::Corrupt(e.to_string()))).transpose()
    }

    pub fn parked(&self) -> Result<Vec<Parked>, DbError> {
        let conn = self.conn()?;
        let mut st = conn.prepare("SELECT id, store, seq, reason, parked_at_ms FROM parked ORDER BY id")?;
        let rows = st.query_map([], |r| {
            Ok(Parked {
                id: r.get(0)?,
                store: r.get(1)?,
                seq: r.get::<i64>(2)? as u64,
                reason: r.get(3)?,
                parked_at_ms: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// Keeps an entry HQ cannot apply, with why, for an operator (`GET /api/parked`).
fn park(tx: &Transaction<'_>, actor: ActorId, e: &OutboxEntry, reason: &str, now_ms: i64) -> sql::Result<()> {
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
    Db(sql::Error),
}

impl From<sql::Error> for ApplyError {
    fn from(e: sql::Error) -> Self {
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
            Err(DbError::Sql(e)) => Err(ApplyError::Db(e)),
            Err(e) => Err(ApplyError::Invalid(e.to_string())),
        };
    }
    if let Change::Loyalty { customer, entries } = &e.change {
        if let Some(c) = customer {
            tx.prepare_cached(
                "INSERT INTO customers (card, phone, name, issued_by) VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
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
        Change::Sale { .. }
        | Change::Loyalty { .. }
        | Change::Movement { .. }
        | Change::Order { .. }
        | Change::OrderPayment { .. } => {
            unreachable!("applied by the caller (sales: `apply_sales`) or above")
        }
    };
    // Returns in data format 1.
    let record_format = 1;
    let inserted = tx
        .prepare_cached(
            "INSERT INTO sales (store, seq, kind, receipt_no, created_at_ms, total_kopecks, record, format) VALUES (?1,?2,?3,?4,?5,?6,?7,?8) ON CONFLICT DO NOTHING",
        )?
        .execute(params![id.store.0, id.seq as i64, kind, receipt_no, at, total, record, record_format])?;
    if inserted == 1 {
        let Change::Return { ret, .. } = &e.change else { unreachable!("a return") };
        let anywhere = returns::returned_now(tx, ret, now_ms);
        anywhere.map_err(|e| match e {
            DbError::Sql(e) => ApplyError::Db(e),
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
) -> sql::Result<()> {
    let mut insert = tx.prepare_cached(
        "INSERT INTO sale_lines (store, seq, line_no, sku, name, quantity, amount_kopecks) VALUES (?1,?2,?3,?4,?5,?6,?7)",
    )?;
    for (i, (sku, name, quantity, amount)) in lines.iter().enumerate() {
        insert.execute(params![id.store.0, id.seq as i64, i as i64, sku.as_str(), name, quantity, amount])?;
    }
    record_promotions(tx, e)
}

/// A sale's line promotions, and the promotions its customer has had.
fn record_promotions(tx: &Transaction<'_>, e: &OutboxEntry) -> sql::Result<()> {
    if let Change::Sale { sale, .. } = &e.change {
        let id = sale.id;
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
            let mut used = tx.prepare_cached(
                "INSERT INTO customer_promotions (card, promotion) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
            )?;
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
fn merge_loyalty(conn: &Connection, e: &LoyaltyEntry) -> sql::Result<()> {
    let (kind, a, b) = e.kind.to_columns();
    conn.prepare_cached(
        "INSERT INTO loyalty_entries (customer, kind, a_store, a_epoch, b_store, b_epoch, total) VALUES (?1,?2,?3,?4,?5,?6,?7)
         ON CONFLICT (customer, kind, a_store, a_epoch, b_store, b_epoch) DO UPDATE SET total = GREATEST(loyalty_entries.total, excluded.total)",
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
        Ok((r.get::<String>(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get::<i64>(5)?))
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
/// Each row once (the caller merged a batch's totals per counter: PostgreSQL refuses a
/// statement that would update one row twice).
fn merge_counter_rows(conn: &Connection, rows: &[Vec<sql::Value<'_>>]) -> sql::Result<()> {
    sql::insert_rows(
        conn,
        "INSERT INTO stock_counters (location, sku, actor_store, actor_epoch, p, n)",
        rows,
        "ON CONFLICT (location, sku, actor_store, actor_epoch) DO UPDATE SET p = GREATEST(stock_counters.p, excluded.p), n = GREATEST(stock_counters.n, excluded.n)",
        |_| Ok(()),
    )?;
    Ok(())
}

fn counter_row(location: StoreId, sku: &Sku, actor: ActorId, p: i64, n: i64) -> Vec<sql::Value<'_>> {
    use sql::Value::{Int, Text};
    vec![
        Int(location.0.into()),
        Text(sku.as_str().into()),
        Int(actor.store.0.into()),
        Int(actor.epoch.into()),
        Int(p),
        Int(n),
    ]
}

/// A batch's counters, each the largest of its running totals; returns how many there were.
fn merge_into<'e>(
    merged: &mut HashMap<(StoreId, &'e Sku, ActorId), (i64, i64)>,
    counters: impl IntoIterator<Item = &'e CounterEntry>,
) -> usize {
    let mut n = 0;
    for c in counters {
        n += 1;
        let slot = merged.entry((c.location, &c.sku, c.actor)).or_insert((c.p, c.n));
        *slot = (slot.0.max(c.p), slot.1.max(c.n));
    }
    n
}

fn is_sale(e: &OutboxEntry) -> bool {
    matches!(e.change, Change::Sale { .. })
}

/// A run of sales, a few statements for them all: the records (those HQ had already are
/// left as they were), their lines, and for the new ones what else a sale records (its
/// promotions, its card, whether earlier returns now over-return it). Returns the counters
/// the sales carry and the sales refused, with why.
#[allow(clippy::type_complexity)]
fn apply_sales<'e>(
    tx: &Transaction<'_>,
    run: impl IntoIterator<Item = &'e OutboxEntry>,
    now_ms: i64,
) -> Result<(Vec<&'e CounterEntry>, Vec<(&'e OutboxEntry, String)>), DbError> {
    use sql::Value::{Blob, Int, Text};
    let (mut counters, mut refused, mut valid) = (Vec::new(), Vec::new(), Vec::new());
    for e in run {
        let Change::Sale { sale, counters: c } = &e.change else { unreachable!("a run of sales") };
        match sale.validate() {
            Ok(()) => {
                counters.extend(c);
                valid.push((e, sale, stored(&kassa_protocol::format::v2::Sale::from(sale))));
            }
            Err(reason) => refused.push((e, reason)),
        }
    }
    // Sales in data format 2 (with their lines' promotions).
    let rows: Vec<Vec<sql::Value<'_>>> = valid
        .iter()
        .map(|(_, sale, record)| {
            vec![
                Int(sale.id.store.0.into()),
                Int(sale.id.seq as i64),
                Text("sale".into()),
                Text(sale.receipt_no.as_str().into()),
                Int(sale.created_at_ms),
                Int(sale.total.0),
                Blob(record.as_slice().into()),
                Int(2),
            ]
        })
        .collect();
    let new: std::collections::HashSet<(u32, u64)> = sql::insert_rows(
        tx,
        "INSERT INTO sales (store, seq, kind, receipt_no, created_at_ms, total_kopecks, record, format)",
        &rows,
        "ON CONFLICT DO NOTHING RETURNING store, seq",
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?
    .into_iter()
    .collect();
    let fresh: Vec<_> = valid.iter().filter(|(_, s, _)| new.contains(&(s.id.store.0, s.id.seq))).collect();
    let lines: Vec<Vec<sql::Value<'_>>> = fresh
        .iter()
        .flat_map(|(_, sale, _)| {
            sale.lines.iter().enumerate().map(|(i, l)| {
                vec![
                    Int(sale.id.store.0.into()),
                    Int(sale.id.seq as i64),
                    Int(i as i64),
                    Text(l.sku.as_str().into()),
                    Text(l.name.as_str().into()),
                    Int(l.quantity),
                    Int(l.net().0),
                ]
            })
        })
        .collect();
    sql::insert_rows(
        tx,
        "INSERT INTO sale_lines (store, seq, line_no, sku, name, quantity, amount_kopecks)",
        &lines,
        "",
        |_| Ok(()),
    )?;
    returns::sold_now(tx, fresh.iter().map(|(_, s, _)| s.id), now_ms)?;
    for (e, _, _) in &fresh {
        record_promotions(tx, e)?;
        customers::recorded(tx, &e.change)?;
    }
    Ok((counters, refused))
}

fn counters_where(
    conn: &Connection,
    location: StoreId,
    sku: Option<&Sku>,
    actor: Option<ActorId>,
) -> Result<Vec<CounterEntry>, DbError> {
    let mut st = conn.prepare(
        "SELECT sku, actor_store, actor_epoch, p, n FROM stock_counters
         WHERE location = ?1 AND (CAST(?2 AS TEXT) IS NULL OR sku = ?2) AND (CAST(?3 AS BIGINT) IS NULL OR (actor_store = ?3 AND actor_epoch = ?4))
         ORDER BY sku, actor_store, actor_epoch",
    )?;
    let rows = st.query_map(
        params![location.0, sku.map(Sku::as_str), actor.map(|a| a.store.0), actor.map(|a| a.epoch)],
        |r| Ok((r.get::<String>(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
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

/// Whether `database` is a PostgreSQL URL rather than a SQLite file's path.
pub fn is_postgres_url(database: &str) -> bool {
    database.starts_with("postgres://") || database.starts_with("postgresql://")
}

fn meta(conn: &Connection, key: &str) -> Result<u64, DbError> {
    let v: Option<i64> = conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0)).optional()?;
    Ok(v.unwrap_or(0) as u64)
}

fn set_meta(conn: &Connection, key: &str, value: u64) -> Result<(), DbError> {
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        params![key, value as i64],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    //! The SQLite file's own lifecycle (versions, backups, refusal). What HQ stores is
    //! tested on both backends in `tests/tests/hq_storage.rs`.
    use super::*;

    fn open() -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("hq.sqlite")).unwrap();
        (dir, db)
    }

    /// A file as the first release left it: its schema, `user_version` 0, some rows.
    fn first_release_file(path: &Path) {
        let conn = rusqlite::Connection::open(path).unwrap();
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
        assert_eq!(user_version(db.conn().unwrap().as_sqlite().unwrap()).unwrap(), SCHEMA_VERSION);
        drop(db);
        let path = dir.path().join("hq.sqlite");
        assert!(!backup_of(&path, 1).exists());
        // Opening it again migrates nothing.
        let db = Db::open(&path).unwrap();
        assert_eq!(user_version(db.conn().unwrap().as_sqlite().unwrap()).unwrap(), SCHEMA_VERSION);
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
        assert_eq!(user_version(db.conn().unwrap().as_sqlite().unwrap()).unwrap(), SCHEMA_VERSION);
        // The data is all there, and the tables of later versions (operators, audit).
        assert_eq!(db.catalog_version().unwrap(), 3);
        assert_eq!(db.stores().unwrap()[0].acked_seq, 7);
        assert_eq!((db.operator_count().unwrap(), db.audit_count().unwrap()), (0, 0));
        let made = crate::auth::ensure_first_admin(&db, dir.path(), 0).unwrap();
        assert!(made.is_some() && db.operators().unwrap()[0].role == crate::auth::Role::Administrator);
        // The copy is the file as it was: version 0, the same rows.
        let backup = rusqlite::Connection::open(backup_of(&path, 1)).unwrap();
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
        let conn = rusqlite::Connection::open(&path).unwrap();
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
}
