//! One customer, at the till (journal schema 12): which of this store's sales and
//! returns carried a customer's card (`customer_docs`, written with each and backfilled
//! from the records when an older journal is migrated), so that with HQ out of reach,
//! finding a customer still shows what this store knows of them — its own purchases,
//! and the orders for pickup here placed with their phone — marked as the store's own.

use kassa_protocol::history::{CustomerHistory, DocKind, OrderEntry, Purchase, HISTORY_ENTRIES_MAX};
use kassa_protocol::loyalty::CustomerId;
use kassa_protocol::{Kopecks, SaleId};
use rusqlite::{params, Connection};

use super::chain;
use super::types::Record;
use super::{Journal, JournalError};

pub(super) const SCHEMA_V12: &str = "
CREATE TABLE customer_docs (
    card TEXT NOT NULL, doc_seq INTEGER NOT NULL REFERENCES docs(seq), PRIMARY KEY (card, doc_seq)
) STRICT, WITHOUT ROWID;
";

/// In a sale's or return's transaction: the document carried the customer's card.
pub(super) fn note(conn: &Connection, card: &CustomerId, doc_seq: u64) -> Result<(), JournalError> {
    conn.prepare_cached("INSERT OR IGNORE INTO customer_docs (card, doc_seq) VALUES (?1, ?2)")?
        .execute(params![card.as_str(), doc_seq as i64])?;
    Ok(())
}

/// Schema 12's own step: the cards of the sales and returns already recorded (a record
/// that does not read stops the migration, which then leaves the file as it was).
pub(super) fn backfill(conn: &Connection) -> rusqlite::Result<()> {
    let bad = |e: JournalError| rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Blob, Box::new(e));
    let docs: Vec<(i64, i64)> = conn
        .prepare("SELECT seq, record_seq FROM docs ORDER BY seq")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    for (seq, record_seq) in docs {
        let card = match chain::record(conn, record_seq).map_err(bad)? {
            Record::Sale { sale, .. } => sale.loyalty.map(|l| l.customer),
            Record::Return { ret, .. } => ret.loyalty.map(|l| l.customer),
            _ => None,
        };
        if let Some(card) = card {
            note(conn, &card, seq as u64).map_err(bad)?;
        }
    }
    Ok(())
}

impl Journal {
    /// What this store knows of customer `card`: its sales and returns with the card and
    /// the orders for pickup here placed with their phone, newest first, at most
    /// [`HISTORY_ENTRIES_MAX`] of each.
    pub fn customer_history(&self, card: &CustomerId) -> Result<CustomerHistory, JournalError> {
        let conn = self.conn();
        let mut st = conn.prepare_cached(
            "SELECT d.seq, d.kind, d.receipt_no, r.at_ms, d.total_kopecks
             FROM customer_docs c JOIN docs d ON d.seq = c.doc_seq JOIN records r ON r.seq = d.record_seq
             WHERE c.card = ?1 ORDER BY d.seq DESC LIMIT ?2",
        )?;
        let store = self.store;
        let purchases = st
            .query_map(params![card.as_str(), HISTORY_ENTRIES_MAX as i64], |r| {
                let kind: String = r.get(1)?;
                Ok(Purchase {
                    doc: SaleId { store, seq: r.get::<_, i64>(0)? as u64 },
                    kind: if kind == "return" { DocKind::Return } else { DocKind::Sale },
                    receipt_no: r.get(2)?,
                    created_at_ms: r.get(3)?,
                    total: Kopecks(r.get::<_, i64>(4)?.abs()),
                })
            })?
            .collect::<Result<_, _>>()?;
        drop(st);
        drop(conn);
        let phone = self.find_customer(card.as_str())?.map(|c| c.phone.digits().to_owned());
        let orders = match phone {
            Some(phone) => self
                .orders_by_phone(&phone, HISTORY_ENTRIES_MAX)?
                .into_iter()
                .map(|v| OrderEntry::of(&v.order, v.state))
                .collect(),
            None => Vec::new(),
        };
        Ok(CustomerHistory { purchases, orders })
    }
}
