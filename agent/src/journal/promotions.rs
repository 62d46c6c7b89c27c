//! The promotions HQ published, as the store keeps them: the definitions (definition
//! format 1, JSON, as HQ stores them) in `promotions`, their version in `meta`. A set is
//! kept whole, and only if newer than the one held (an HQ-published register).

use kassa_protocol::catalog::CatalogItem;
use kassa_protocol::price_schedule::ScheduledPrice;
use kassa_protocol::promotions::definition::Definition;
use kassa_protocol::promotions::LocalTime;
use kassa_protocol::Kopecks;
use rusqlite::{params, OptionalExtension};

use super::{meta, query_row, set_meta, Journal, JournalError};

fn minute_of(at: LocalTime) -> i64 {
    i64::from(at.day) * 1440 + i64::from(at.minute)
}

impl Journal {
    /// The version of the promotions the store holds (0: none yet).
    pub fn promotions_version(&self) -> Result<u64, JournalError> {
        meta(&self.conn(), "promotions_version")
    }

    /// Keeps HQ's promotions of `version` if newer than ours, replacing the whole set in
    /// one transaction; returns whether it did.
    pub fn set_promotions(&self, version: u64, definitions: &[Definition]) -> Result<bool, JournalError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        if meta(&tx, "promotions_version")? >= version {
            return Ok(false);
        }
        tx.execute("DELETE FROM promotions", [])?;
        {
            let mut st = tx.prepare("INSERT INTO promotions (id, definition) VALUES (?1, ?2)")?;
            for d in definitions {
                let json = serde_json::to_string(d).expect("a definition serialises");
                st.execute(params![d.id, json])?;
            }
        }
        set_meta(&tx, "promotions_version", version)?;
        tx.commit()?;
        Ok(true)
    }

    /// The promotions the store holds, with their version.
    pub fn promotions(&self) -> Result<(u64, Vec<Definition>), JournalError> {
        let conn = self.conn();
        let version = meta(&conn, "promotions_version")?;
        let mut st = conn.prepare("SELECT id, definition FROM promotions ORDER BY id")?;
        let rows = st.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (id, json) = row?;
            out.push(
                serde_json::from_str(&json)
                    .map_err(|e| JournalError::Corrupt(format!("stored promotion {id}: {e}")))?,
            );
        }
        Ok((version, out))
    }

    /// Keeps HQ's price schedule of `version` if newer than ours, whole, in one
    /// transaction; returns whether it did.
    pub fn set_price_schedule(&self, version: u64, changes: &[ScheduledPrice]) -> Result<bool, JournalError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        if meta(&tx, "price_schedule_version")? >= version {
            return Ok(false);
        }
        tx.execute("DELETE FROM price_schedule", [])?;
        {
            let mut st = tx
                .prepare("INSERT OR REPLACE INTO price_schedule (sku, at_minute, price_kopecks) VALUES (?1, ?2, ?3)")?;
            for c in changes {
                st.execute(params![c.sku.as_str(), minute_of(c.at), c.price.0])?;
            }
        }
        set_meta(&tx, "price_schedule_version", version)?;
        tx.commit()?;
        Ok(true)
    }

    /// The version of the price schedule the store holds (0: none).
    pub fn price_schedule_version(&self) -> Result<u64, JournalError> {
        meta(&self.conn(), "price_schedule_version")
    }

    /// `item` at the price in force at local time `at`: the latest scheduled change whose
    /// time has come, else the catalog's.
    pub fn priced_at(&self, mut item: CatalogItem, at: LocalTime) -> Result<CatalogItem, JournalError> {
        let conn = self.conn();
        let price: Option<i64> = query_row(
            &conn,
            "SELECT price_kopecks FROM price_schedule WHERE sku = ?1 AND at_minute <= ?2
             ORDER BY at_minute DESC LIMIT 1",
            params![item.sku.as_str(), minute_of(at)],
            |r| r.get(0),
        )
        .optional()?;
        if let Some(p) = price {
            item.price = Kopecks(p);
        }
        Ok(item)
    }
}
