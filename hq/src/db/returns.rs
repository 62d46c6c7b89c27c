//! Returns anywhere at HQ (schema 10): which returns, made at any store, took back lines
//! of which sale (`returns_by_sale`), so that a till of any store can be told what is
//! left to return of a sale (`Db::sale_for_return`); and the lines returned beyond what
//! was sold (`over_returns`) — stores that could not see each other's returns took back
//! the same goods — kept for a manager with the returns that did it.

use super::sql::{self, params, Connection, OptionalExtension};
use kassa_protocol::format::{v1, v2};
use kassa_protocol::returns::{self, Return, Returned, SaleAnswer, SaleRef, RETURNS_PER_SALE_MAX};
use kassa_protocol::sale::{Sale, Tender};
use kassa_protocol::{Kopecks, SaleId};
use serde::Serialize;

use super::{format, Db, DbError};

pub(super) const SCHEMA_V10: &str = "
CREATE INDEX sales_by_receipt_no ON sales (receipt_no);
CREATE TABLE returns_by_sale (
    sale_store INTEGER NOT NULL, sale_seq INTEGER NOT NULL, return_store INTEGER NOT NULL,
    return_seq INTEGER NOT NULL, PRIMARY KEY (sale_store, sale_seq, return_store, return_seq)
) STRICT, WITHOUT ROWID;
CREATE TABLE over_returns (
    sale_store INTEGER NOT NULL, sale_seq INTEGER NOT NULL, line INTEGER NOT NULL, sold INTEGER NOT NULL,
    returned INTEGER NOT NULL, detected_at_ms INTEGER NOT NULL, PRIMARY KEY (sale_store, sale_seq, line)
) STRICT, WITHOUT ROWID;
";

/// Schema 12: the return rights HQ holds for tills about to refund lines of a sale
/// (`kassa_protocol::returns::ReturnClaim`), per claiming store and key, per line.
pub(super) const SCHEMA_V12: &str = "
CREATE TABLE return_claims (
    sale_store INTEGER NOT NULL, sale_seq INTEGER NOT NULL, store INTEGER NOT NULL, key TEXT NOT NULL,
    line INTEGER NOT NULL, quantity INTEGER NOT NULL, claimed_at_ms INTEGER NOT NULL,
    PRIMARY KEY (sale_store, sale_seq, store, key, line)
) STRICT, WITHOUT ROWID;
";

/// A line returned beyond what was sold, as HQ lists it for a manager.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OverReturn {
    pub sale_store: u32,
    pub sale_seq: u64,
    pub receipt_no: String,
    pub line: u32,
    pub sku: String,
    pub sold: i64,
    pub returned: i64,
    /// The returns of the sale: (store, receipt number).
    pub returns: Vec<(u32, String)>,
    pub detected_at_ms: i64,
}

pub(super) fn decode_sale(body: &[u8], f: Option<u32>) -> Result<Sale, DbError> {
    let sale = match f.unwrap_or(1) {
        1 => format::decode::<v1::Sale>(body, "sale").map(Into::into),
        _ => format::decode::<v2::Sale>(body, "sale").map(Into::into),
    };
    sale.map_err(|e| DbError::Corrupt(e.to_string()))
}

pub(super) fn decode_return(body: &[u8]) -> Result<Return, DbError> {
    format::decode::<v1::Return>(body, "return").map(Into::into).map_err(|e| DbError::Corrupt(e.to_string()))
}

fn sale(conn: &Connection, id: SaleId) -> Result<Option<Sale>, DbError> {
    if id.store == kassa_protocol::StoreId::HQ {
        return shop_sale(conn, kassa_protocol::orders::OrderId(id.seq));
    }
    let row: Option<(Vec<u8>, Option<u32>)> = conn
        .prepare_cached("SELECT record, format FROM sales WHERE store = ?1 AND seq = ?2 AND kind = 'sale'")?
        .query_row(params![id.store.0, id.seq as i64], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    row.map(|(body, f)| decode_sale(&body, f)).transpose()
}

/// Every return HQ holds of sale `id`, oldest first (bounded).
fn returns_of(conn: &Connection, id: SaleId) -> Result<Vec<Return>, DbError> {
    let mut st = conn.prepare_cached(
        "SELECT s.record FROM returns_by_sale r JOIN sales s ON s.store = r.return_store AND s.seq = r.return_seq
         WHERE r.sale_store = ?1 AND r.sale_seq = ?2 ORDER BY s.created_at_ms, s.store, s.seq LIMIT ?3",
    )?;
    let rows =
        st.query_map(params![id.store.0, id.seq as i64, RETURNS_PER_SALE_MAX as i64], |r| r.get::<Vec<u8>>(0))?;
    rows.map(|body| decode_return(&body?)).collect()
}

/// What every store's returns took back of each line of `sale` and refunded, and what
/// the latest of them left owed for the customer's points.
fn returned(conn: &Connection, sale: &Sale) -> Result<(Returned, Vec<Tender>, Kopecks), DbError> {
    let (mut returned, mut refunds) = (Vec::new(), Vec::new());
    let returns = returns_of(conn, sale.id)?;
    for r in &returns {
        returns::add_returned(sale, &mut returned, &mut refunds, r);
    }
    returned.resize(sale.lines.len(), (0, Kopecks::ZERO));
    let owed = returns.last().and_then(|r| r.loyalty.as_ref()).map_or(Kopecks::ZERO, |l| l.owed);
    Ok((returned, refunds, owed))
}

/// Lists the lines of sale `id` returned beyond what was sold (if HQ holds the sale).
fn check_over_return(conn: &Connection, id: SaleId, now_ms: i64) -> Result<(), DbError> {
    let Some(sale) = sale(conn, id)? else { return Ok(()) };
    let (returned, ..) = returned(conn, &sale)?;
    for (line, sold, back) in returns::over_returned(&sale, &returned) {
        tracing::warn!(sale = %id, line, sold, returned = back, "a line was returned beyond what was sold");
        conn.prepare_cached(
            "INSERT INTO over_returns (sale_store, sale_seq, line, sold, returned, detected_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (sale_store, sale_seq, line) DO UPDATE SET returned = excluded.returned",
        )?
        .execute(params![id.store.0, id.seq as i64, line, sold, back, now_ms])?;
    }
    Ok(())
}

/// In the batch's transaction, after a return was stored: which sale it returns, and
/// whether that sale's lines are now returned beyond what was sold.
pub(super) fn returned_now(conn: &Connection, ret: &Return, now_ms: i64) -> Result<(), DbError> {
    let Some(sale_id) = ret.kind.sale() else { return Ok(()) };
    conn.prepare_cached(
        "INSERT INTO returns_by_sale (sale_store, sale_seq, return_store, return_seq) VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
    )?
    .execute(params![sale_id.store.0, sale_id.seq as i64, ret.id.store.0, ret.id.seq as i64])?;
    release_claims(conn, sale_id, ret)?;
    check_over_return(conn, sale_id, now_ms)
}

/// The return arrived: what the returning store claimed of those lines is released,
/// oldest claims first.
fn release_claims(conn: &Connection, sale: SaleId, ret: &Return) -> Result<(), DbError> {
    for l in &ret.lines {
        let Some(line) = l.sale_line else { continue };
        let mut left = l.quantity;
        let mut st = conn.prepare_cached(
            "SELECT key, quantity FROM return_claims WHERE sale_store = ?1 AND sale_seq = ?2 AND store = ?3 AND line = ?4
             ORDER BY claimed_at_ms, key",
        )?;
        let claims: Vec<(String, i64)> = st
            .query_map(params![sale.store.0, sale.seq as i64, ret.id.store.0, line], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        for (key, quantity) in claims {
            if left <= 0 {
                break;
            }
            let taken = quantity.min(left);
            left -= taken;
            let at = params![sale.store.0, sale.seq as i64, ret.id.store.0, key, line];
            if taken == quantity {
                conn.prepare_cached(
                    "DELETE FROM return_claims WHERE sale_store = ?1 AND sale_seq = ?2 AND store = ?3 AND key = ?4 AND line = ?5",
                )?
                .execute(at)?;
            } else {
                conn.prepare_cached(
                    "UPDATE return_claims SET quantity = quantity - ?6
                     WHERE sale_store = ?1 AND sale_seq = ?2 AND store = ?3 AND key = ?4 AND line = ?5",
                )?
                .execute(params![sale.store.0, sale.seq as i64, ret.id.store.0, key, line, taken])?;
            }
        }
    }
    Ok(())
}

/// What live claims hold of each line of `sale`: (other stores', `store`'s own, not
/// counting its claim `key`, which a retry replaces).
fn claimed(
    conn: &Connection,
    sale: &Sale,
    store: kassa_protocol::StoreId,
    key: Option<&str>,
    now_ms: i64,
) -> Result<(Vec<i64>, Vec<i64>), DbError> {
    let (mut others, mut own) = (vec![0; sale.lines.len()], vec![0; sale.lines.len()]);
    let mut st = conn.prepare_cached(
        "SELECT store, key, line, quantity FROM return_claims
         WHERE sale_store = ?1 AND sale_seq = ?2 AND claimed_at_ms > ?3",
    )?;
    let since = now_ms - returns::RETURN_CLAIM_TTL_MS;
    let rows = st.query_map(params![sale.id.store.0, sale.id.seq as i64, since], |r| {
        Ok((r.get::<u32>(0)?, r.get::<String>(1)?, r.get::<u32>(2)?, r.get::<i64>(3)?))
    })?;
    for row in rows {
        let (by, k, line, quantity) = row?;
        let slot = if by != store.0 {
            others.get_mut(line as usize)
        } else if Some(k.as_str()) != key {
            own.get_mut(line as usize)
        } else {
            None
        };
        if let Some(slot) = slot {
            *slot += quantity;
        }
    }
    Ok((others, own))
}

/// In the batch's transaction, after sales were stored: whether returns HQ already held
/// (from another store, arrived first) now return any of them beyond what was sold; one
/// statement for the run, whatever its stores (nearly always finding none, and then no
/// sale is read back).
pub(super) fn sold_now(conn: &Connection, ids: impl Iterator<Item = SaleId>, now_ms: i64) -> Result<(), DbError> {
    let rows: Vec<Vec<sql::Value<'_>>> =
        ids.map(|id| vec![sql::Value::Int(id.store.0.into()), sql::Value::Int(id.seq as i64)]).collect();
    let returned: std::collections::BTreeSet<(u32, u64)> = sql::insert_rows(
        conn,
        "WITH sold (store, seq) AS (",
        &rows,
        ") SELECT DISTINCT r.sale_store, r.sale_seq FROM returns_by_sale r
           JOIN sold ON r.sale_store = sold.store AND r.sale_seq = sold.seq",
        |r| Ok((r.get::<u32>(0)?, r.get::<i64>(1)? as u64)),
    )?
    .into_iter()
    .collect();
    for (store, seq) in returned {
        check_over_return(conn, SaleId { store: kassa_protocol::StoreId(store), seq }, now_ms)?;
    }
    Ok(())
}

/// Schema 10's own step: the returns HQ already holds, by the sale they return (a record
/// that does not decode stops the migration, which then leaves the file as it was).
pub(super) fn backfill(conn: &Connection) -> sql::Result<()> {
    let mut st = conn.prepare("SELECT record FROM sales WHERE kind = 'return'")?;
    let bodies: Vec<Vec<u8>> = st.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
    for body in bodies {
        let ret = decode_return(&body).map_err(|e| sql::Error::conversion(0, e))?;
        if let Some(sale_id) = ret.kind.sale() {
            conn.execute(
                "INSERT INTO returns_by_sale (sale_store, sale_seq, return_store, return_seq)
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
                params![sale_id.store.0, sale_id.seq as i64, ret.id.store.0, ret.id.seq as i64],
            )?;
        }
    }
    Ok(())
}

impl Db {
    /// Sale `id` of any store for a till that takes a return of it: the sale, and what
    /// every store's returns HQ holds took back and refunded.
    pub fn sale_for_return(&self, by: &SaleRef) -> Result<SaleAnswer, DbError> {
        let conn = self.conn()?;
        let Some(sale) = find_sale(&conn, by)? else { return Ok(SaleAnswer::NotFound) };
        let (returned, refunds, loyalty_owed) = returned(&conn, &sale)?;
        Ok(SaleAnswer::Found { sale: Box::new(sale), returned, refunds, loyalty_owed })
    }

    /// A till of `store` asks for a sale to return, maybe claiming lines of it (see
    /// `kassa_protocol::returns::ReturnClaim`), in one transaction: the figures count
    /// every live claim as returned but this one (a retry's earlier self), and a claim
    /// that fits within them is held. The till plans with the same figures, so it
    /// refunds exactly when HQ held the lines, and each return's share of the line's
    /// money is a segment no other return's overlaps.
    pub fn sale_for_return_by(
        &self,
        lookup: &kassa_protocol::returns::SaleLookup,
        store: kassa_protocol::StoreId,
        now_ms: i64,
    ) -> Result<SaleAnswer, DbError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        let Some(sale) = find_sale(&tx, &lookup.sale)? else { return Ok(SaleAnswer::NotFound) };
        let (mut returned, refunds, loyalty_owed) = returned(&tx, &sale)?;
        let key = lookup.claim.as_ref().map(|c| c.key.as_str());
        let (others, own) = claimed(&tx, &sale, store, key, now_ms)?;
        let add = |returned: &mut Returned, more: &[i64]| {
            for (r, m) in returned.iter_mut().zip(more) {
                r.0 += m;
            }
        };
        add(&mut returned, &others);
        add(&mut returned, &own);
        if let Some(claim) = &lookup.claim {
            let taken: Vec<i64> = returned.iter().map(|r| r.0).collect();
            if claim.fits(&sale, &taken) {
                tx.execute(
                    "DELETE FROM return_claims WHERE sale_store = ?1 AND sale_seq = ?2 AND store = ?3 AND key = ?4",
                    params![sale.id.store.0, sale.id.seq as i64, store.0, claim.key],
                )?;
                for &(line, quantity) in &claim.lines {
                    tx.execute(
                        "INSERT INTO return_claims (sale_store, sale_seq, store, key, line, quantity, claimed_at_ms)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                        params![sale.id.store.0, sale.id.seq as i64, store.0, claim.key, line, quantity, now_ms],
                    )?;
                }
            } else {
                tracing::info!(sale = %sale.id, %store, "a return claim beyond what is left: refused");
            }
        }
        tx.execute("DELETE FROM return_claims WHERE claimed_at_ms <= ?1", [now_ms - returns::RETURN_CLAIM_TTL_MS])?;
        tx.commit()?;
        Ok(SaleAnswer::Found { sale: Box::new(sale), returned, refunds, loyalty_owed })
    }
}

/// The sale a receipt names, if HQ holds it: a store's, or the online shop's of a
/// prepaid order (by the order's number, or its `0000-00-…` receipt number).
fn find_sale(conn: &Connection, by: &SaleRef) -> Result<Option<Sale>, DbError> {
    let id = match by {
        SaleRef::Id(id) => Some(*id),
        SaleRef::ReceiptNo(no) => match kassa_protocol::sale::parse_receipt_no(no) {
            Some((store, _, number)) if store == kassa_protocol::StoreId::HQ => Some(SaleId { store, seq: number }),
            _ => conn
                .prepare_cached("SELECT store, seq FROM sales WHERE receipt_no = ?1 AND kind = 'sale'")?
                .query_row([no], |r| {
                    Ok(SaleId { store: kassa_protocol::StoreId(r.get(0)?), seq: r.get::<i64>(1)? as u64 })
                })
                .optional()?,
        },
        // The sale an order's handover made at its store (paid at pickup), or, for a
        // prepaid order, the shop's.
        SaleRef::Order(order) => Some(
            conn.prepare_cached("SELECT store, sale_seq FROM orders WHERE id = ?1 AND sale_seq IS NOT NULL")?
                .query_row([order.0 as i64], |r| {
                    Ok(SaleId { store: kassa_protocol::StoreId(r.get(0)?), seq: r.get::<i64>(1)? as u64 })
                })
                .optional()?
                .unwrap_or(SaleId { store: kassa_protocol::StoreId::HQ, seq: order.0 }),
        ),
    };
    id.map(|id| sale(conn, id)).transpose().map(Option::flatten)
}

/// A prepaid order's purchase, once handed over (`orders::shop_sale`).
fn shop_sale(conn: &Connection, id: kassa_protocol::orders::OrderId) -> Result<Option<Sale>, DbError> {
    let Some(row) = super::orders::row(conn, id)? else { return Ok(None) };
    match (row.state, &row.taken) {
        (kassa_protocol::orders::OrderState::Collected, Some(taken)) => {
            Ok(kassa_protocol::orders::shop_sale(&row.order, taken))
        }
        _ => Ok(None),
    }
}

impl Db {
    /// The lines returned beyond what was sold, newest first.
    pub fn over_returns(&self) -> Result<Vec<OverReturn>, DbError> {
        let conn = self.conn()?;
        let mut st = conn.prepare(
            "SELECT o.sale_store, o.sale_seq, o.line, o.sold, o.returned, o.detected_at_ms,
                    COALESCE(s.receipt_no, ''), COALESCE(l.sku, '')
             FROM over_returns o
             LEFT JOIN sales s ON s.store = o.sale_store AND s.seq = o.sale_seq
             LEFT JOIN sale_lines l ON l.store = o.sale_store AND l.seq = o.sale_seq AND l.line_no = o.line
             ORDER BY o.detected_at_ms DESC LIMIT 500",
        )?;
        type Row = (u32, i64, u32, i64, i64, i64, String, String);
        let rows: Vec<Row> = st
            .query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?))
            })?
            .collect::<Result<_, _>>()?;
        let mut out = Vec::with_capacity(rows.len());
        for (sale_store, sale_seq, line, sold, returned, detected_at_ms, receipt_no, sku) in rows {
            let mut by = conn.prepare_cached(
                "SELECT s.store, s.receipt_no FROM returns_by_sale r
                 JOIN sales s ON s.store = r.return_store AND s.seq = r.return_seq
                 WHERE r.sale_store = ?1 AND r.sale_seq = ?2 ORDER BY s.created_at_ms",
            )?;
            let returns = by
                .query_map(params![sale_store, sale_seq], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?;
            let sale_seq = sale_seq as u64;
            out.push(OverReturn {
                sale_store,
                sale_seq,
                receipt_no,
                line,
                sku,
                sold,
                returned,
                returns,
                detected_at_ms,
            });
        }
        Ok(out)
    }
}
