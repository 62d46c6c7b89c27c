//! One customer in every channel (schema 13): which sales and returns, at any store, were
//! made with a customer's loyalty card (`customer_docs`, filled as they are applied and
//! backfilled from the records already held), and each order's phone (`orders.phone`),
//! so that HQ's API serves a customer's history — purchases in every store, orders from
//! the online shop and every till — for the shop and the console.

use super::sql::{self, params, Connection};
use kassa_protocol::history::{CustomerHistory, DocKind, OrderEntry, Purchase, HISTORY_ENTRIES_MAX};
use kassa_protocol::loyalty::{Customer, CustomerId};
use kassa_protocol::orders::OrderChannel;
use kassa_protocol::wire::Change;
use kassa_protocol::{Kopecks, SaleId};
use serde::Serialize;

use super::{Db, DbError};

pub(super) const SCHEMA_V13: &str = "
CREATE TABLE customer_docs (
    card TEXT NOT NULL, store INTEGER NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (card, store, seq)
) STRICT, WITHOUT ROWID;
ALTER TABLE orders ADD COLUMN phone TEXT;
CREATE INDEX orders_by_phone ON orders (phone) WHERE phone IS NOT NULL;
";

/// A customer's history across stores and channels, as HQ's API serves it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistoryView {
    pub card: String,
    pub phone: String,
    pub name: Option<String>,
    pub purchases: Vec<PurchaseView>,
    pub orders: Vec<OrderView>,
}

/// A sale or a return made with the customer's card, at any store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PurchaseView {
    pub store: u32,
    pub seq: u64,
    /// `sale` or `return` (a return's total is negative).
    pub kind: &'static str,
    pub receipt_no: String,
    pub created_at_ms: i64,
    pub total_kopecks: i64,
}

/// An order placed with the customer's phone, in any channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrderView {
    pub id: u64,
    pub store: u32,
    /// `online`, or `store N` for a till's order.
    pub channel: String,
    pub state: &'static str,
    pub total_kopecks: i64,
    pub created_at_ms: i64,
}

impl HistoryView {
    pub fn new(customer: &Customer, history: &CustomerHistory) -> HistoryView {
        let purchases = history
            .purchases
            .iter()
            .map(|p| PurchaseView {
                store: p.doc.store.0,
                seq: p.doc.seq,
                kind: p.kind.code(),
                receipt_no: p.receipt_no.clone(),
                created_at_ms: p.created_at_ms,
                total_kopecks: if p.kind == DocKind::Return { -p.total.0 } else { p.total.0 },
            })
            .collect();
        let orders = history
            .orders
            .iter()
            .map(|o| OrderView {
                id: o.id.0,
                store: o.store.0,
                channel: match o.channel {
                    OrderChannel::Online => "online".to_owned(),
                    OrderChannel::Store(s) => format!("store {s}"),
                },
                state: o.state.code(),
                total_kopecks: o.total.0,
                created_at_ms: o.created_at_ms,
            })
            .collect();
        HistoryView {
            card: customer.card.as_str().to_owned(),
            phone: customer.phone.digits().to_owned(),
            name: customer.name.clone(),
            purchases,
            orders,
        }
    }
}

/// In the batch's transaction, after a sale or return was stored: its customer's card.
pub(super) fn recorded(conn: &Connection, change: &Change) -> sql::Result<()> {
    let (id, card) = match change {
        Change::Sale { sale, .. } => (sale.id, sale.loyalty.as_ref().map(|l| &l.customer)),
        Change::Return { ret, .. } => (ret.id, ret.loyalty.as_ref().map(|l| &l.customer)),
        _ => return Ok(()),
    };
    if let Some(card) = card {
        note(conn, card, id)?;
    }
    Ok(())
}

fn note(conn: &Connection, card: &CustomerId, id: SaleId) -> sql::Result<()> {
    conn.prepare_cached("INSERT INTO customer_docs (card, store, seq) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING")?
        .execute(params![card.as_str(), id.store.0, id.seq as i64])?;
    Ok(())
}

/// Schema 13's own step: the cards of the sales and returns already held, and the
/// phones of the orders (a record that does not decode stops the migration, which then
/// leaves the file as it was).
pub(super) fn backfill(conn: &Connection) -> sql::Result<()> {
    let bad = |e: DbError| sql::Error::conversion(0, e);
    let mut st = conn.prepare("SELECT store, seq, kind, record, format FROM sales")?;
    type Row = (u32, i64, String, Vec<u8>, Option<u32>);
    let rows: Vec<Row> =
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))?.collect::<Result<_, _>>()?;
    for (store, seq, kind, body, format) in rows {
        let id = SaleId { store: kassa_protocol::StoreId(store), seq: seq as u64 };
        let card = if kind == "sale" {
            super::returns::decode_sale(&body, format).map_err(bad)?.loyalty.map(|l| l.customer)
        } else {
            super::returns::decode_return(&body).map_err(bad)?.loyalty.map(|l| l.customer)
        };
        if let Some(card) = card {
            note(conn, &card, id)?;
        }
    }
    let ids: Vec<i64> =
        conn.prepare("SELECT id FROM orders")?.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
    for id in ids {
        let row = super::orders::row(conn, kassa_protocol::orders::OrderId(id as u64)).map_err(bad)?;
        if let Some(phone) = row.and_then(|r| r.order.phone) {
            conn.execute("UPDATE orders SET phone = ?2 WHERE id = ?1", params![id, phone.digits()])?;
        }
    }
    Ok(())
}

impl Db {
    /// A customer's purchases at every store and orders in every channel, newest first
    /// ([`HISTORY_ENTRIES_MAX`] of each); `None` for a card HQ does not know.
    pub fn customer_history(&self, card: &CustomerId) -> Result<Option<(Customer, CustomerHistory)>, DbError> {
        let conn = self.conn()?;
        let Some(customer) = super::customer(&conn, card)? else { return Ok(None) };
        let mut st = conn.prepare_cached(
            "SELECT s.store, s.seq, s.kind, s.receipt_no, s.created_at_ms, s.total_kopecks
             FROM customer_docs c JOIN sales s ON s.store = c.store AND s.seq = c.seq
             WHERE c.card = ?1 ORDER BY s.created_at_ms DESC, s.store, s.seq LIMIT ?2",
        )?;
        let purchases = st
            .query_map(params![card.as_str(), HISTORY_ENTRIES_MAX as i64], |r| {
                let kind: String = r.get(2)?;
                Ok(Purchase {
                    doc: SaleId { store: kassa_protocol::StoreId(r.get(0)?), seq: r.get::<i64>(1)? as u64 },
                    kind: if kind == "return" { DocKind::Return } else { DocKind::Sale },
                    receipt_no: r.get(3)?,
                    created_at_ms: r.get(4)?,
                    // Returns are kept negative.
                    total: Kopecks(r.get::<i64>(5)?.abs()),
                })
            })?
            .collect::<Result<_, _>>()?;
        let ids: Vec<i64> = conn
            .prepare_cached("SELECT id FROM orders WHERE phone = ?1 ORDER BY id DESC LIMIT ?2")?
            .query_map(params![customer.phone.digits(), HISTORY_ENTRIES_MAX as i64], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        let mut orders = Vec::with_capacity(ids.len());
        for id in ids {
            let Some(row) = super::orders::row(&conn, kassa_protocol::orders::OrderId(id as u64))? else { continue };
            orders.push(OrderEntry::of(&row.order, row.state));
        }
        Ok(Some((customer, CustomerHistory { purchases, orders })))
    }
}
