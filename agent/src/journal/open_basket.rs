//! The open basket, kept across restarts in a file of its own.
//!
//! It is not a sale, so it does not need the journal's `synchronous=FULL`: a separate
//! file with `synchronous=NORMAL` keeps its writes off the journal's lock and fsyncs, and
//! off the scan path (a task writes the latest basket after each change). A crash may
//! lose the last change or two of an open basket, never a sale.
//!
//! The file's schema version is `PRAGMA user_version` ([`BasketStore::SCHEMA_VERSION`]),
//! as in the journal: a file newer than the binary is refused before anything writes to
//! it, an older one is migrated at start in one transaction after a copy is kept beside
//! it (`basket.sqlite.v{old}.bak`).
//!
//! Version 1 (the first release, `user_version` 0) stored the basket in that release's
//! encoding, which has no basket id; the current [`Basket`] does not decode from it.
//! **Decision:** a basket saved by an older release is not restored. It was never a
//! sale: the cashier scans it again. Its row is dropped by the migration, which says
//! so in the log ("the basket saved by an older release was not restored"); the copy
//! beside the file keeps it. A basket that does not decode for any other reason is
//! dropped too, with a warning.
//!
//! Version 3 stores the basket in a frozen format of its own, named in the row's
//! `format` column ([`stored`]): format 1 (`NULL`) is the encoding schema 2 wrote, read
//! as it was; format 2 adds each line's category and promotions and the basket's
//! coupons. A basket saved by schema 2 is therefore restored after the upgrade, and
//! priced under the promotions at its next change.

use std::path::Path;
use std::sync::Mutex;

use kassa_protocol::basket::Basket;
use rusqlite::{params, Connection, OptionalExtension};

use super::JournalError;

/// The table as first released (version 1).
const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS open_baskets (
    terminal INTEGER PRIMARY KEY, basket BLOB NOT NULL, customer TEXT
) STRICT;";

/// Steps from version `n - 1` to `n`, run at start in one transaction after a copy of
/// the file is kept beside it.
const MIGRATIONS: &[(u32, &str)] = &[
    (
        2,
        // Baskets carry their id (the journal records the basket each sale paid); a basket
        // in the older encoding is not restored (see the module's documentation).
        "DELETE FROM open_baskets;",
    ),
    (
        3,
        // The stored basket's format (see `stored`); rows written before are format 1.
        "ALTER TABLE open_baskets ADD COLUMN format INTEGER;",
    ),
    (
        4,
        // Baskets parked to serve the next customer, recalled later (stored like the open
        // one, in its format).
        "CREATE TABLE parked_baskets (
             terminal INTEGER NOT NULL, slot INTEGER NOT NULL, basket BLOB NOT NULL, customer TEXT,
             format INTEGER NOT NULL, parked_at_ms INTEGER NOT NULL, PRIMARY KEY (terminal, slot)
         ) STRICT;",
    ),
];

/// Baskets a terminal keeps parked at once: enough for a queue at the till, few enough
/// to find the customer's on a small list.
pub const PARKED_BASKETS_MAX: usize = 5;

/// A parked basket as listed.
#[derive(Debug, Clone)]
pub struct ParkedBasket {
    pub slot: u32,
    pub basket: Basket,
    pub customer: Option<String>,
    pub parked_at_ms: i64,
}

pub mod stored {
    //! The open basket as stored, by format. Frozen: field and variant order are the
    //! encoding.

    use kassa_protocol::basket::{Basket, BasketDiscount};
    use kassa_protocol::format::{v1, v2};
    use kassa_protocol::Kopecks;
    use serde::{Deserialize, Serialize};

    /// The format [`super::BasketStore::save`] writes.
    pub const FORMAT: u32 = 2;

    #[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub enum Discount {
        Percent(u8),
        Amount(Kopecks),
    }

    /// Format 1: what schema 2 wrote (the domain basket of that release).
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct BasketV1 {
        pub lines: Vec<v1::BasketLine>,
        pub discount: Option<Discount>,
        pub id: u64,
    }

    /// Format 2: lines with their category and promotions; the coupons presented.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct BasketV2 {
        pub lines: Vec<v2::BasketLine>,
        pub discount: Option<Discount>,
        pub coupons: Vec<String>,
        pub id: u64,
    }

    fn discount_to(d: Option<BasketDiscount>) -> Option<Discount> {
        d.map(|d| match d {
            BasketDiscount::Percent(p) => Discount::Percent(p),
            BasketDiscount::Amount(a) => Discount::Amount(a),
        })
    }

    fn discount_from(d: Option<Discount>) -> Option<BasketDiscount> {
        d.map(|d| match d {
            Discount::Percent(p) => BasketDiscount::Percent(p),
            Discount::Amount(a) => BasketDiscount::Amount(a),
        })
    }

    impl From<&Basket> for BasketV2 {
        fn from(b: &Basket) -> Self {
            BasketV2 {
                lines: b.lines.iter().map(Into::into).collect(),
                discount: discount_to(b.discount),
                coupons: b.coupons.clone(),
                id: b.id,
            }
        }
    }

    impl From<BasketV2> for Basket {
        fn from(b: BasketV2) -> Self {
            Basket {
                lines: b.lines.into_iter().map(Into::into).collect(),
                discount: discount_from(b.discount),
                coupons: b.coupons,
                id: b.id,
            }
        }
    }

    impl From<BasketV1> for Basket {
        fn from(b: BasketV1) -> Self {
            Basket {
                lines: b.lines.into_iter().map(Into::into).collect(),
                discount: discount_from(b.discount),
                coupons: Vec::new(),
                id: b.id,
            }
        }
    }
}

#[derive(Debug)]
pub struct BasketStore {
    conn: Mutex<Connection>,
}

impl BasketStore {
    /// The basket file's schema version, kept in `PRAGMA user_version`. Version 1 is the
    /// file as first released (`user_version` 0 in files of that release).
    pub const SCHEMA_VERSION: u32 = 4;

    /// Opens (or creates) the basket file, migrating an older one; a file newer than
    /// this binary is refused untouched ([`JournalError::TooNew`]).
    pub fn open(path: &Path) -> Result<BasketStore, JournalError> {
        let conn = Connection::open(path)?;
        // A file from a newer release is refused before anything (even a pragma) writes.
        let version: u32 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version > Self::SCHEMA_VERSION {
            return Err(JournalError::TooNew {
                file: "the open basket's file",
                found: version,
                known: Self::SCHEMA_VERSION,
            });
        }
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        migrate(&conn, path, version)?;
        Ok(BasketStore { conn: Mutex::new(conn) })
    }

    pub fn save(&self, terminal: u16, basket: &Basket, customer: Option<&str>) -> Result<(), JournalError> {
        let blob = super::encode(&stored::BasketV2::from(basket))?;
        self.conn.lock().unwrap_or_else(|p| p.into_inner()).execute(
            "INSERT INTO open_baskets (terminal, basket, customer, format) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT DO UPDATE SET basket = excluded.basket, customer = excluded.customer, format = excluded.format",
            params![terminal, blob, customer, stored::FORMAT],
        )?;
        Ok(())
    }

    /// Parks `basket`; returns its slot, or `None` if [`PARKED_BASKETS_MAX`] are parked.
    pub fn park(
        &self,
        terminal: u16,
        basket: &Basket,
        customer: Option<&str>,
        now_ms: i64,
    ) -> Result<Option<u32>, JournalError> {
        let blob = super::encode(&stored::BasketV2::from(basket))?;
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let tx = conn.transaction()?;
        let (count, last): (i64, i64) = tx.query_row(
            "SELECT COUNT(*), COALESCE(MAX(slot), 0) FROM parked_baskets WHERE terminal = ?1",
            [terminal],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        if count as usize >= PARKED_BASKETS_MAX {
            return Ok(None);
        }
        let slot = last + 1;
        tx.execute(
            "INSERT INTO parked_baskets (terminal, slot, basket, customer, format, parked_at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![terminal, slot, blob, customer, stored::FORMAT, now_ms],
        )?;
        tx.commit()?;
        Ok(Some(slot as u32))
    }

    /// The baskets parked on `terminal`, oldest first (one that does not decode is
    /// skipped with a warning: it was never a sale).
    pub fn parked(&self, terminal: u16) -> Result<Vec<ParkedBasket>, JournalError> {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let mut st = conn.prepare(
            "SELECT slot, basket, customer, format, parked_at_ms FROM parked_baskets WHERE terminal = ?1 ORDER BY slot",
        )?;
        let rows = st.query_map([terminal], |r| {
            Ok((r.get::<_, u32>(0)?, r.get::<_, Vec<u8>>(1)?, r.get(2)?, r.get::<_, u32>(3)?, r.get(4)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (slot, blob, customer, format, parked_at_ms) = row?;
            match decode(&blob, Some(format)) {
                Ok(basket) => out.push(ParkedBasket { slot, basket, customer, parked_at_ms }),
                Err(e) => tracing::warn!(terminal, slot, error = %e, "a parked basket does not decode: skipped"),
            }
        }
        Ok(out)
    }

    /// Takes parked basket `slot` off the list (the till puts it back on the counter).
    pub fn unpark(&self, terminal: u16, slot: u32) -> Result<Option<ParkedBasket>, JournalError> {
        let found = self.parked(terminal)?.into_iter().find(|p| p.slot == slot);
        if found.is_some() {
            self.conn
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .execute("DELETE FROM parked_baskets WHERE terminal = ?1 AND slot = ?2", params![terminal, slot])?;
        }
        Ok(found)
    }

    /// The basket left open on `terminal`, if any. One that does not decode is dropped,
    /// with a warning: it was never a sale.
    pub fn load(&self, terminal: u16) -> Result<Option<(Basket, Option<String>)>, JournalError> {
        let row: Option<(Vec<u8>, Option<String>, Option<u32>)> = self
            .conn
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .query_row("SELECT basket, customer, format FROM open_baskets WHERE terminal = ?1", [terminal], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()?;
        Ok(row.and_then(|(blob, customer, format)| match decode(&blob, format) {
            Ok(basket) => Some((basket, customer)),
            Err(e) => {
                tracing::warn!(terminal, error = %e, "the saved basket does not decode: not restored");
                None
            }
        }))
    }
}

/// A stored basket of `format` (`NULL`: 1).
fn decode(blob: &[u8], format: Option<u32>) -> Result<Basket, String> {
    match format.unwrap_or(1) {
        1 => postcard::from_bytes::<stored::BasketV1>(blob).map(Into::into).map_err(|e| e.to_string()),
        2 => postcard::from_bytes::<stored::BasketV2>(blob).map(Into::into).map_err(|e| e.to_string()),
        other => Err(format!("format {other}, which this program does not know")),
    }
}

/// Brings the file from `version` to [`BasketStore::SCHEMA_VERSION`]: creates a new
/// file, or migrates an older one (after keeping a copy of it).
fn migrate(conn: &Connection, path: &Path, version: u32) -> Result<(), JournalError> {
    let from = version.max(1);
    if from == BasketStore::SCHEMA_VERSION {
        return Ok(());
    }
    let tables: i64 = conn.query_row("SELECT COUNT(*) FROM sqlite_master", [], |r| r.get(0))?;
    let mut dropped = 0;
    if tables > 0 {
        let backup = path.with_extension(format!("sqlite.v{from}.bak"));
        if !backup.exists() {
            conn.execute("VACUUM INTO ?1", [backup.display().to_string()])?;
        }
        if from < 2 {
            dropped = conn.query_row("SELECT COUNT(*) FROM open_baskets", [], |r| r.get::<_, i64>(0))?;
        }
        tracing::info!(from, to = BasketStore::SCHEMA_VERSION, backup = %backup.display(), "migrating the basket file");
    }
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let result = (|| {
        conn.execute_batch(SCHEMA)?;
        for (to, sql) in MIGRATIONS.iter().filter(|(to, _)| *to > from) {
            conn.execute_batch(sql)?;
            conn.pragma_update(None, "user_version", to)?;
        }
        conn.execute_batch("COMMIT")
    })();
    if result.is_err() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    result?;
    if dropped > 0 {
        tracing::info!(baskets = dropped, "the basket saved by an older release was not restored");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A basket file as the first release left it: its table, `user_version` 0, one
    /// basket in that release's encoding (no id: it ends after the discount).
    fn first_release_file(path: &Path) {
        let conn = Connection::open(path).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.execute_batch(SCHEMA).unwrap();
        // An empty basket of the old encoding: no lines, no discount.
        conn.execute("INSERT INTO open_baskets (terminal, basket, customer) VALUES (1, X'0000', NULL)", []).unwrap();
    }

    #[test]
    fn an_older_basket_is_not_restored_and_its_copy_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("basket.sqlite");
        first_release_file(&path);
        let store = BasketStore::open(&path).unwrap();
        assert!(store.load(1).unwrap().is_none());
        let version: u32 = store.conn.lock().unwrap().pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
        assert_eq!(version, BasketStore::SCHEMA_VERSION);
        // The copy holds the old basket.
        let backup = Connection::open(dir.path().join("basket.sqlite.v1.bak")).unwrap();
        let rows: i64 = backup.query_row("SELECT COUNT(*) FROM open_baskets", [], |r| r.get(0)).unwrap();
        assert_eq!(rows, 1);
        // A basket saved now comes back.
        let basket = Basket::new(7);
        store.save(1, &basket, Some("card")).unwrap();
        drop(store);
        let store = BasketStore::open(&path).unwrap();
        assert_eq!(store.load(1).unwrap(), Some((basket, Some("card".into()))));
    }

    #[test]
    fn a_newer_file_is_refused_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("basket.sqlite");
        first_release_file(&path);
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", BasketStore::SCHEMA_VERSION + 1).unwrap();
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).unwrap();
        drop(conn);
        let before = std::fs::read(&path).unwrap();
        let err = BasketStore::open(&path).unwrap_err();
        assert!(
            matches!(err, JournalError::TooNew { found, known, .. } if found == BasketStore::SCHEMA_VERSION + 1 && known == BasketStore::SCHEMA_VERSION),
            "{err:?}"
        );
        assert_eq!(std::fs::read(&path).unwrap(), before);
        assert!(!dir.path().join("basket.sqlite.v1.bak").exists());
    }
}
