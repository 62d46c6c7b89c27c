//! What HQ publishes for returns of other stores' receipts (schema 11): the stores'
//! receipt keys — each store's certificate key, recorded the first time the store
//! connects with it, numbered in that order — and the limits on what a till may refund
//! offline for another store's receipt (`settings.return_limits`, versioned in `meta`).
//! Stores hold both ([`kassa_protocol::returns::ReturnTerms`]).

use super::sql::{params, OptionalExtension};
use kassa_protocol::returns::{ReturnLimits, ReturnTerms, StoreKey, STORE_KEYS_PER_MESSAGE_MAX, STORE_KEY_BYTES_MAX};
use kassa_protocol::{Kopecks, StoreId};
use serde::{Deserialize, Serialize};

use super::access::NewAudit;
use super::{meta, Db, DbError};

pub(super) const SCHEMA_V11: &str = "
CREATE TABLE store_keys (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, store INTEGER NOT NULL, public_key BLOB NOT NULL,
    first_seen_ms INTEGER NOT NULL, UNIQUE (store, public_key)
) STRICT;
";

/// The limits as stored and as HQ's API takes and shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsRecord {
    pub per_receipt_kopecks: i64,
    pub per_shift_kopecks: i64,
}

impl From<LimitsRecord> for ReturnLimits {
    fn from(r: LimitsRecord) -> Self {
        ReturnLimits { per_receipt: Kopecks(r.per_receipt_kopecks), per_shift: Kopecks(r.per_shift_kopecks) }
    }
}

impl From<ReturnLimits> for LimitsRecord {
    fn from(l: ReturnLimits) -> Self {
        LimitsRecord { per_receipt_kopecks: l.per_receipt.0, per_shift_kopecks: l.per_shift.0 }
    }
}

impl Db {
    /// Records `store`'s receipt key as seen on a connection; its number when it is new
    /// (`None`: HQ had it). A key of the wrong size is not recorded. Under the write
    /// lock: keys commit in the order of their numbers, so a reader paging by number
    /// never sees a key numbered after one not yet committed (and then skips it).
    pub fn record_store_key(&self, store: StoreId, public_key: &[u8], now_ms: i64) -> Result<Option<u64>, DbError> {
        if public_key.is_empty() || public_key.len() > STORE_KEY_BYTES_MAX {
            return Ok(None);
        }
        let mut conn = self.conn()?;
        let known: Option<i64> = conn
            .query_row(
                "SELECT seq FROM store_keys WHERE store = ?1 AND public_key = ?2",
                params![store.0, public_key],
                |r| r.get(0),
            )
            .optional()?;
        if known.is_some() {
            return Ok(None); // the common case, every connect after the first: no lock
        }
        let tx = conn.transaction()?;
        if tx.backend() == super::sql::Backend::Postgres {
            // Not waiting for the disk with the lock held (each connect of a new store
            // would queue behind the last one's flush): a key lost to a crash of the
            // database in the next moments is recorded again at the store's next connect.
            tx.execute_batch("SET LOCAL synchronous_commit TO OFF")?;
        }
        let added: Option<i64> = tx
            .query_row(
                "INSERT INTO store_keys (store, public_key, first_seen_ms) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING RETURNING seq",
                params![store.0, public_key, now_ms],
                |r| r.get(0),
            )
            .optional()?;
        tx.commit()?;
        Ok(added.map(|seq| seq as u64))
    }

    /// The highest store key number (0: none yet).
    pub fn store_keys_head(&self) -> Result<u64, DbError> {
        let head: Option<i64> = self.conn()?.query_row("SELECT MAX(seq) FROM store_keys", [], |r| r.get(0))?;
        Ok(head.unwrap_or(0) as u64)
    }

    /// The return limits in force and their version: HQ's defaults (version 1) until an
    /// operator sets others.
    pub fn return_limits(&self) -> Result<(u64, ReturnLimits), DbError> {
        let conn = self.conn()?;
        let version = meta(&conn, "return_limits_version")?.max(1);
        let json: Option<String> =
            conn.query_row("SELECT value FROM settings WHERE key = 'return_limits'", [], |r| r.get(0)).optional()?;
        let limits = match json {
            Some(j) => serde_json::from_str::<LimitsRecord>(&j)
                .map_err(|e| DbError::Corrupt(format!("return limits: {e}")))?
                .into(),
            None => ReturnLimits::DEFAULT,
        };
        Ok((version, limits))
    }

    /// Sets the limits (checked by the caller) with its audit entry, in one transaction;
    /// returns their version.
    pub fn set_return_limits(&self, limits: ReturnLimits, audit: Option<&NewAudit>) -> Result<u64, DbError> {
        // Version 1 is HQ's defaults, never stored: the first limits set are version 2.
        let json = serde_json::to_string(&LimitsRecord::from(limits)).map_err(|e| DbError::Corrupt(e.to_string()))?;
        self.publish_setting("return_limits", "return_limits_version", 1, json, audit)
    }

    /// The limits and the keys numbered after `keys_after`, at most
    /// [`STORE_KEYS_PER_MESSAGE_MAX`] of them, as the database holds them now.
    pub fn return_terms(&self, keys_after: u64) -> Result<ReturnTerms, DbError> {
        let limits_version = meta(&*self.conn()?, "return_limits_version")?.max(1);
        self.return_terms_as_of(keys_after, limits_version, self.store_keys_head()?)
    }

    /// [`Db::return_terms`] for a connection that knows HQ's limits version and highest
    /// key number (a node's watch of them): answered from this node's copy of the keys
    /// and limits, read from the database only when they are behind what is asked. Every
    /// store of a chain pages through every key: thousands of identical reads otherwise.
    pub fn return_terms_as_of(
        &self,
        keys_after: u64,
        limits_version: u64,
        keys_head: u64,
    ) -> Result<ReturnTerms, DbError> {
        let limits = {
            let cached = self.terms_cache().limits.filter(|(v, _)| *v >= limits_version);
            match cached {
                Some(hit) => hit,
                None => {
                    let read = self.return_limits()?;
                    self.terms_cache().limits = Some(read);
                    read
                }
            }
        };
        let after = self.terms_cache().keys_upto();
        if after < keys_head {
            let conn = self.conn()?;
            let mut st =
                conn.prepare_cached("SELECT seq, store, public_key FROM store_keys WHERE seq > ?1 ORDER BY seq")?;
            let new: Vec<StoreKey> = st
                .query_map(params![after as i64], |r| {
                    Ok(StoreKey { seq: r.get::<i64>(0)? as u64, store: StoreId(r.get(1)?), public_key: r.get(2)? })
                })?
                .collect::<Result<_, _>>()?;
            let mut cache = self.terms_cache();
            // Another caller may have read them meanwhile: only what follows its copy.
            let upto = cache.keys_upto();
            cache.keys.extend(new.into_iter().filter(|k| k.seq > upto));
        }
        let cache = self.terms_cache();
        let from = cache.keys.partition_point(|k| k.seq <= keys_after);
        let keys: Vec<StoreKey> = cache.keys[from..].iter().take(STORE_KEYS_PER_MESSAGE_MAX).cloned().collect();
        let keys_upto = keys.last().map_or(keys_after, |k| k.seq);
        let (limits_version, limits) = limits;
        Ok(ReturnTerms { limits_version, limits, keys, keys_after, keys_upto })
    }

    fn terms_cache(&self) -> std::sync::MutexGuard<'_, TermsCache> {
        // Only a copy: whatever a panicking holder left is a prefix of the keys.
        self.terms.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A node's copy of the store keys (every one, in number order: they are only ever
/// added) and of the return limits with their version.
#[derive(Debug, Default)]
pub(super) struct TermsCache {
    keys: Vec<StoreKey>,
    limits: Option<(u64, kassa_protocol::returns::ReturnLimits)>,
}

impl TermsCache {
    /// The highest key number this copy holds every key up to (0: none).
    fn keys_upto(&self) -> u64 {
        self.keys.last().map_or(0, |k| k.seq)
    }
}
