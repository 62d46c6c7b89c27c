//! What HQ publishes for returns of other stores' receipts (journal schema 10): the
//! stores' receipt keys (a grow-only set: a key once held stays, so a receipt signed
//! before a store was re-enrolled still verifies) and HQ's limits on what this store may
//! refund offline for such receipts (a register, newest version wins). With them the
//! till verifies another store's receipt with no network and takes a return of it
//! within the limits; `return_refs.offline_kopecks` counts what it refunded so.

use kassa_protocol::returns::{ReturnLimits, ReturnTerms};
use kassa_protocol::{Kopecks, StoreId};
use rusqlite::{params, Connection};

use super::{exec, meta, set_meta, Journal, JournalError};

/// Journal schema 10.
pub(super) const SCHEMA_V10: &str = "
CREATE TABLE store_keys (
    store INTEGER NOT NULL, public_key BLOB NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (store, public_key)
) STRICT, WITHOUT ROWID;
ALTER TABLE return_refs ADD COLUMN offline_kopecks INTEGER NOT NULL DEFAULT 0;
";

/// Keys of one store kept at most (re-enrolments); more is a fault at HQ, refused.
pub const KEYS_PER_STORE_MAX: usize = 16;

impl Journal {
    /// Keeps HQ's return terms: the limits if newer, the keys added. Returns what the
    /// store now holds: (limits version, every key up to this number).
    pub fn apply_return_terms(&self, terms: &ReturnTerms) -> Result<(u64, u64), JournalError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let version = meta(&tx, "return_limits_version")?;
        if terms.limits_version > version {
            set_meta(&tx, "return_limits_version", terms.limits_version)?;
            set_meta(&tx, "return_limit_receipt_kopecks", terms.limits.per_receipt.0.max(0) as u64)?;
            set_meta(&tx, "return_limit_shift_kopecks", terms.limits.per_shift.0.max(0) as u64)?;
        }
        for k in &terms.keys {
            let held: i64 =
                tx.query_row("SELECT COUNT(*) FROM store_keys WHERE store = ?1", [k.store.0], |r| r.get(0))?;
            if held as usize >= KEYS_PER_STORE_MAX {
                tracing::warn!(store = %k.store, "HQ sent more keys of a store than a till keeps; ignored");
                continue;
            }
            exec(
                &tx,
                "INSERT INTO store_keys (store, public_key, seq) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
                params![k.store.0, k.public_key, k.seq as i64],
            )?;
        }
        let upto = terms.keys_held_after(meta(&tx, "store_keys_upto")?);
        set_meta(&tx, "store_keys_upto", upto)?;
        let held = (meta(&tx, "return_limits_version")?, upto);
        tx.commit()?;
        Ok(held)
    }

    /// What the store holds of HQ's return terms: (limits version, keys up to).
    pub fn return_terms_held(&self) -> Result<(u64, u64), JournalError> {
        let conn = self.conn();
        Ok((meta(&conn, "return_limits_version")?, meta(&conn, "store_keys_upto")?))
    }

    /// HQ's limits on offline returns of other stores' receipts ([`ReturnLimits::NONE`]
    /// until HQ has said).
    pub fn return_limits(&self) -> Result<ReturnLimits, JournalError> {
        return_limits(&self.conn())
    }

    /// The receipt keys this store holds for `store`.
    pub fn store_keys(&self, store: StoreId) -> Result<Vec<Vec<u8>>, JournalError> {
        let conn = self.conn();
        let mut st = conn.prepare_cached("SELECT public_key FROM store_keys WHERE store = ?1 ORDER BY seq")?;
        let keys = st.query_map([store.0], |r| r.get(0))?.collect::<Result<_, _>>()?;
        Ok(keys)
    }
}

pub(super) fn return_limits(conn: &Connection) -> Result<ReturnLimits, JournalError> {
    if meta(conn, "return_limits_version")? == 0 {
        return Ok(ReturnLimits::NONE);
    }
    Ok(ReturnLimits {
        per_receipt: Kopecks(meta(conn, "return_limit_receipt_kopecks")? as i64),
        per_shift: Kopecks(meta(conn, "return_limit_shift_kopecks")? as i64),
    })
}

/// What this store refunded offline for another store's sale (over all its terminals),
/// and for such receipts in `shift`.
pub(super) fn offline_refunded(
    conn: &Connection,
    sale: kassa_protocol::SaleId,
    shift: i64,
) -> Result<(Kopecks, Kopecks), JournalError> {
    let receipt: Option<i64> = conn.query_row(
        "SELECT SUM(offline_kopecks) FROM return_refs WHERE sale_store = ?1 AND sale_seq = ?2",
        params![sale.store.0, sale.seq as i64],
        |r| r.get(0),
    )?;
    let in_shift: Option<i64> = conn.query_row(
        "SELECT SUM(r.offline_kopecks) FROM return_refs r JOIN docs d ON d.seq = r.doc_seq WHERE d.shift_id = ?1",
        [shift],
        |r| r.get(0),
    )?;
    Ok((Kopecks(receipt.unwrap_or(0)), Kopecks(in_shift.unwrap_or(0))))
}
