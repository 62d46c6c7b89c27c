//! The promotions HQ published, as the store keeps them: the definitions (definition
//! format 1, JSON, as HQ stores them) in `promotions`, their version in `meta`. A set is
//! kept whole, and only if newer than the one held (an HQ-published register).

use kassa_protocol::promotions::definition::Definition;
use rusqlite::params;

use super::{meta, set_meta, Journal, JournalError};

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
}
