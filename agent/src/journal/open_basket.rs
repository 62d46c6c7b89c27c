//! The open basket, kept across restarts in a file of its own.
//!
//! It is not a sale, so it does not need the journal's `synchronous=FULL`: a separate
//! file with `synchronous=NORMAL` keeps its writes off the journal's lock and fsyncs, and
//! off the scan path (a task writes the latest basket after each change). A crash may
//! lose the last change or two of an open basket, never a sale.

use std::path::Path;
use std::sync::Mutex;

use kassa_protocol::basket::Basket;
use rusqlite::{params, Connection, OptionalExtension};

use super::JournalError;

#[derive(Debug)]
pub struct BasketStore {
    conn: Mutex<Connection>,
}

impl BasketStore {
    pub fn open(path: &Path) -> Result<BasketStore, JournalError> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS open_baskets (
                terminal INTEGER PRIMARY KEY, basket BLOB NOT NULL, customer TEXT
            ) STRICT;",
        )?;
        Ok(BasketStore { conn: Mutex::new(conn) })
    }

    pub fn save(&self, terminal: u16, basket: &Basket, customer: Option<&str>) -> Result<(), JournalError> {
        let blob = super::encode(basket)?;
        self.conn.lock().unwrap_or_else(|p| p.into_inner()).execute(
            "INSERT INTO open_baskets (terminal, basket, customer) VALUES (?1, ?2, ?3)
             ON CONFLICT DO UPDATE SET basket = excluded.basket, customer = excluded.customer",
            params![terminal, blob, customer],
        )?;
        Ok(())
    }

    /// The basket left open on `terminal`, if any. One that no longer decodes (an older
    /// version's) is dropped: it was never a sale.
    pub fn load(&self, terminal: u16) -> Result<Option<(Basket, Option<String>)>, JournalError> {
        let row: Option<(Vec<u8>, Option<String>)> = self
            .conn
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .query_row("SELECT basket, customer FROM open_baskets WHERE terminal = ?1", [terminal], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?;
        Ok(row.and_then(|(blob, customer)| postcard::from_bytes(&blob).ok().map(|b| (b, customer))))
    }
}
