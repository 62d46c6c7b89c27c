//! The SQL of orders for pickup at HQ (schema version 8): orders HQ placed (numbered by
//! `orders.id`), their lines by SKU for reservations, and a feed of what happened to
//! each (`order_events`, numbered: the online shop reads it from where it stopped).
//!
//! An order's state at HQ is the join of HQ's own cancellation and what its store
//! reported (`kassa_protocol::orders`): `rank` is the join, `reported_rank` the store's
//! highest. HQ offers an order to its store until the store accepts it, and a
//! cancellation until the store's final word arrives.

use super::sql::{self, params, Connection, OptionalExtension, Transaction};
use kassa_protocol::format::v3 as data;
use kassa_protocol::orders::{
    Handover, Order, OrderChannel, OrderEvent, OrderId, OrderPayment, OrderState, OrderUpdate, Payment, TillPayment,
    TILL_PAYMENT_WAIT_MS,
};
use kassa_protocol::{Kopecks, Sku, StoreId};
use serde::Serialize;

use super::access::audit_in;
use super::{Db, DbError, NewAudit};

/// Orders one listing returns, and events one read of the feed.
pub const ORDERS_PAGE_MAX: usize = 500;

pub(super) const SCHEMA_V8: &str = "
CREATE TABLE orders (
    id INTEGER PRIMARY KEY, store INTEGER NOT NULL, body BLOB NOT NULL, format INTEGER NOT NULL,
    rank INTEGER NOT NULL, reported_rank INTEGER, cancel_requested_at_ms INTEGER,
    taken TEXT, sale_seq INTEGER, created_at_ms INTEGER NOT NULL, updated_at_ms INTEGER NOT NULL,
    request_key TEXT UNIQUE
) STRICT;
CREATE INDEX orders_by_store ON orders (store, rank);
CREATE TABLE order_lines (
    order_id INTEGER NOT NULL REFERENCES orders(id), line INTEGER NOT NULL, sku TEXT NOT NULL,
    quantity INTEGER NOT NULL, PRIMARY KEY (order_id, line)
) STRICT, WITHOUT ROWID;
CREATE INDEX order_lines_sku ON order_lines (sku);
CREATE TABLE order_events (
    seq INTEGER PRIMARY KEY, order_id INTEGER NOT NULL REFERENCES orders(id), state TEXT NOT NULL,
    source TEXT NOT NULL, at_ms INTEGER NOT NULL
) STRICT;
";

/// Schema 9: an order a till placed to be paid there waits for that store's word
/// (`awaiting_payment_from`); `paid_kopecks` is what its till took, `abandoned_at_ms` when
/// it said the customer did not pay. HQ offers the order to its pickup store only once
/// paid. A payment of an order HQ had cancelled meanwhile stays on it: money owed back.
pub(super) const SCHEMA_V9: &str = "
ALTER TABLE orders ADD COLUMN awaiting_payment_from INTEGER;
ALTER TABLE orders ADD COLUMN paid_kopecks INTEGER;
ALTER TABLE orders ADD COLUMN paid_at_ms INTEGER;
ALTER TABLE orders ADD COLUMN abandoned_at_ms INTEGER;
";

/// SQL: the order may be offered to its store (not awaiting a till's payment).
const OFFERABLE: &str = "(awaiting_payment_from IS NULL OR paid_kopecks IS NOT NULL)";

fn state(rank: i64) -> Result<OrderState, DbError> {
    OrderState::from_rank(rank).ok_or_else(|| DbError::Corrupt(format!("order state rank {rank}")))
}

fn open_below() -> i64 {
    OrderState::Cancelled.rank()
}

/// An order as HQ reports it to the online shop and the console.
#[derive(Debug, Clone)]
pub struct OrderRow {
    pub order: Order,
    pub state: OrderState,
    /// The highest state the store reported; `None` until it accepted the order.
    pub reported: Option<OrderState>,
    pub cancel_requested_at_ms: Option<i64>,
    pub taken: Option<Vec<i64>>,
    pub sale_seq: Option<u64>,
    pub updated_at_ms: i64,
    /// Placed to be paid at this store's till: what it said so far.
    pub till_payment: Option<TillPaymentRow>,
}

/// The payment of an order a till placed to be paid there, as HQ knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TillPaymentRow {
    pub store: StoreId,
    pub paid: Option<(Kopecks, i64)>,
    pub abandoned_at_ms: Option<i64>,
}

impl TillPaymentRow {
    /// `awaiting`, `paid`, `abandoned`.
    pub fn code(&self) -> &'static str {
        match (self.paid, self.abandoned_at_ms) {
            (Some(_), _) => "paid",
            (None, Some(_)) => "abandoned",
            (None, None) => "awaiting",
        }
    }
}

/// What one store has of a SKU for orders.
#[derive(Debug, Clone, Copy)]
pub struct Availability {
    pub store: StoreId,
    pub on_hand: i64,
    /// Held by HQ's open orders for the store.
    pub reserved: i64,
    /// When HQ last heard from the store: the age of `on_hand`.
    pub heard_at_ms: Option<i64>,
}

impl Availability {
    pub fn available(&self) -> i64 {
        (self.on_hand - self.reserved).max(0)
    }
}

/// One entry of the orders feed.
#[derive(Debug, Clone, Serialize)]
pub struct OrderFeedEntry {
    pub seq: i64,
    pub order: u64,
    pub state: &'static str,
    /// `hq` (placed, cancellation asked) or `store`.
    pub source: String,
    pub at_ms: i64,
}

/// Why an order was not placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlaceRefusal {
    /// The store cannot cover these SKUs.
    Short(Vec<kassa_protocol::orders::Shortfall>),
    /// The store holds as many open orders as it may.
    TooManyOpen,
}

/// What a cancellation asked at HQ did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelOutcome {
    /// Cancelled at HQ; the store is told (its stock released when it hears).
    Cancelled,
    /// The order had already ended, this way: nothing changes.
    AlreadyEnded(OrderState),
}

fn event(tx: &Connection, id: OrderId, s: OrderState, source: &str, now_ms: i64) -> sql::Result<()> {
    tx.prepare_cached("INSERT INTO order_events (order_id, state, source, at_ms) VALUES (?1, ?2, ?3, ?4)")?
        .execute(params![id.0 as i64, s.code(), source, now_ms])?;
    Ok(())
}

pub(super) fn row(conn: &Connection, id: OrderId) -> Result<Option<OrderRow>, DbError> {
    type Raw = (Vec<u8>, u32, i64, Option<i64>, Option<i64>, Option<String>, Option<i64>, i64);
    let mut payment = None;
    let raw: Option<Raw> = conn
        .prepare_cached(
            "SELECT body, format, rank, reported_rank, cancel_requested_at_ms, taken, sale_seq, updated_at_ms,
                    awaiting_payment_from, paid_kopecks, paid_at_ms, abandoned_at_ms
             FROM orders WHERE id = ?1",
        )?
        .query_row([id.0 as i64], |r| {
            if let Some(store) = r.get::<Option<u32>>(8)? {
                let paid = r.get::<Option<i64>>(9)?.zip(r.get::<Option<i64>>(10)?);
                let paid = paid.map(|(k, at)| (Kopecks(k), at));
                payment = Some(TillPaymentRow { store: StoreId(store), paid, abandoned_at_ms: r.get(11)? });
            }
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?))
        })
        .optional()?;
    let Some((body, f, rank, reported, cancel, taken, sale, updated)) = raw else { return Ok(None) };
    if f != 3 {
        return Err(DbError::Corrupt(format!("order {id} in data format {f}")));
    }
    let order = super::format::decode::<data::Order>(&body, "order")
        .and_then(TryInto::try_into)
        .map_err(|e| DbError::Corrupt(format!("order {id}: {e}")))?;
    Ok(Some(OrderRow {
        order,
        state: state(rank)?,
        reported: reported.map(state).transpose()?,
        cancel_requested_at_ms: cancel,
        taken: taken.map(|t| serde_json::from_str(&t)).transpose().map_err(|e| DbError::Corrupt(e.to_string()))?,
        sale_seq: sale.map(|s| s as u64),
        updated_at_ms: updated,
        till_payment: payment,
    }))
}

/// Applies a store's update of one of its orders, in the batch's transaction: the
/// state joins; a handover is checked against the order. `Err(reason)` parks the entry.
pub(super) fn apply_update(tx: &Transaction<'_>, u: &OrderUpdate, now_ms: i64) -> Result<Result<(), String>, DbError> {
    let Some(o) = row(tx, u.order)? else { return Ok(Err(format!("order {} was never placed here", u.order))) };
    if o.order.store != u.store {
        return Ok(Err(format!("order {} is for store {}, not {}", u.order, o.order.store, u.store)));
    }
    let to = u.event.state();
    if let OrderEvent::Collected { taken, sale } = &u.event {
        if let Err(e) = (Handover { taken: taken.clone() }).validate(&o.order, OrderState::Ready) {
            return Ok(Err(format!("a handover beyond order {}: {e}", u.order)));
        }
        tx.prepare_cached("UPDATE orders SET taken = ?2, sale_seq = ?3 WHERE id = ?1 AND taken IS NULL")?.execute(
            params![u.order.0 as i64, serde_json::to_string(taken).expect("numbers"), sale.map(|s| s.seq as i64)],
        )?;
    }
    let joined = o.state.join(to);
    let reported = o.reported.map_or(to, |r| r.join(to));
    tx.prepare_cached("UPDATE orders SET rank = ?2, reported_rank = ?3, updated_at_ms = ?4 WHERE id = ?1")?
        .execute(params![u.order.0 as i64, joined.rank(), reported.rank(), now_ms])?;
    event(tx, u.order, to, "store", now_ms)?;
    if to == OrderState::Collected && o.cancel_requested_at_ms.is_some() {
        tracing::warn!(order = %u.order, "a handover at the store overruled HQ's cancellation");
    }
    Ok(Ok(()))
}

/// Applies what a till said of an order it placed to be paid there, in the batch's
/// transaction: paid — the order may now go to its pickup store (returned: store, order);
/// abandoned — HQ cancels it. `Err(reason)` parks the entry.
pub(super) fn apply_payment(
    tx: &Transaction<'_>,
    p: &OrderPayment,
    now_ms: i64,
) -> Result<Result<Option<(StoreId, OrderId)>, String>, DbError> {
    let Some(o) = row(tx, p.order)? else { return Ok(Err(format!("order {} was never placed here", p.order))) };
    match o.till_payment {
        Some(t) if t.store == p.store && t.paid.is_none() && t.abandoned_at_ms.is_none() => {}
        Some(t) if t.store == p.store => return Ok(Err(format!("order {} had its till's word already", p.order))),
        _ => return Ok(Err(format!("order {} was not placed to be paid at store {}", p.order, p.store))),
    }
    let open = !o.state.is_final();
    match p.outcome {
        TillPayment::Paid { amount } => {
            if amount != o.order.total() {
                return Ok(Err(format!("order {} costs {}, its till took {amount}", p.order, o.order.total())));
            }
            tx.prepare_cached(
                "UPDATE orders SET paid_kopecks = ?2, paid_at_ms = ?3, updated_at_ms = ?3 WHERE id = ?1",
            )?
            .execute(params![p.order.0 as i64, amount.0, now_ms])?;
            if !open {
                tracing::warn!(order = %p.order, %amount, store = %p.store,
                    "a till's payment arrived after HQ cancelled the order: the money is owed back to the customer");
                return Ok(Ok(None));
            }
            if tx.backend() == super::sql::Backend::Postgres {
                // Its pickup store may be connected to another node: every node offers it.
                tx.execute("SELECT pg_notify('kassa', 'order_events')", [])?;
            }
            tracing::info!(order = %p.order, %amount, store = %p.store, "order paid at the ordering till");
            Ok(Ok(Some((o.order.store, p.order))))
        }
        TillPayment::Abandoned => {
            tx.prepare_cached("UPDATE orders SET abandoned_at_ms = ?2, updated_at_ms = ?2 WHERE id = ?1")?
                .execute(params![p.order.0 as i64, now_ms])?;
            if open {
                tx.prepare_cached("UPDATE orders SET rank = ?2 WHERE id = ?1")?
                    .execute(params![p.order.0 as i64, o.state.join(OrderState::Cancelled).rank()])?;
                event(tx, p.order, OrderState::Cancelled, &format!("store {}", p.store), now_ms)?;
            }
            Ok(Ok(None))
        }
    }
}

impl Db {
    /// Cancels the orders still awaiting their till's payment [`TILL_PAYMENT_WAIT_MS`]
    /// after they were placed (see `kassa_protocol::orders`): their stock is released.
    pub fn cancel_unpaid_orders(&self, now_ms: i64) -> Result<Vec<OrderId>, DbError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        let ids: Vec<i64> = tx
            .prepare_cached(
                "SELECT id FROM orders WHERE awaiting_payment_from IS NOT NULL AND paid_kopecks IS NULL
                 AND abandoned_at_ms IS NULL AND rank < ?1 AND created_at_ms <= ?2 ORDER BY id LIMIT ?3",
            )?
            .query_map(params![open_below(), now_ms - TILL_PAYMENT_WAIT_MS, ORDERS_PAGE_MAX as i64], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        for &id in &ids {
            tx.prepare_cached(
                "UPDATE orders SET rank = ?2, cancel_requested_at_ms = ?3, updated_at_ms = ?3 WHERE id = ?1",
            )?
            .execute(params![id, open_below(), now_ms])?;
            event(&tx, OrderId(id as u64), OrderState::Cancelled, "hq", now_ms)?;
        }
        tx.commit()?;
        Ok(ids.into_iter().map(|id| OrderId(id as u64)).collect())
    }

    /// Places `order` (its id is set here, HQ's next number): checks, inside the
    /// transaction, that the store still has it available (`available` is asked per SKU
    /// with this transaction's view) and holds fewer than `OPEN_ORDERS_PER_STORE_MAX`
    /// open orders; a request key seen before answers the order it placed. Returns the
    /// order and whether it was placed now.
    pub fn place_order(
        &self,
        mut order: Order,
        request_key: Option<&str>,
        audit: &NewAudit,
        now_ms: i64,
    ) -> Result<Result<(Order, bool), PlaceRefusal>, DbError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        if let Some(key) = request_key {
            let seen: Option<i64> =
                tx.query_row("SELECT id FROM orders WHERE request_key = ?1", [key], |r| r.get(0)).optional()?;
            if let Some(id) = seen {
                let o = row(&tx, OrderId(id as u64))?.ok_or_else(|| DbError::Corrupt(format!("order {id}")))?;
                return Ok(Ok((o.order, false)));
            }
        }
        let wanted: Vec<(&Sku, i64)> = order.lines.iter().map(|l| (&l.sku, l.quantity)).collect();
        let mut failed = None;
        let short = kassa_protocol::orders::shortfalls(wanted, |sku| match available(&tx, order.store, sku) {
            Ok(n) => n,
            Err(e) => {
                failed = Some(e);
                0
            }
        });
        if let Some(e) = failed {
            return Err(e);
        }
        if !short.is_empty() {
            return Ok(Err(PlaceRefusal::Short(short)));
        }
        let open: i64 = tx.query_row(
            "SELECT COUNT(*) FROM orders WHERE store = ?1 AND rank < ?2",
            params![order.store.0, open_below()],
            |r| r.get(0),
        )?;
        if open as usize >= kassa_protocol::orders::OPEN_ORDERS_PER_STORE_MAX {
            return Ok(Err(PlaceRefusal::TooManyOpen));
        }
        let id: i64 = tx.query_row("SELECT COALESCE(MAX(id), 0) + 1 FROM orders", [], |r| r.get(0))?;
        order.id = OrderId(id as u64);
        // A till's prepaid order is paid at that till, after HQ placed it.
        let awaiting = match (order.payment, order.channel) {
            (Payment::Prepaid, OrderChannel::Store(s)) => Some(s.0),
            _ => None,
        };
        tx.execute(
            "INSERT INTO orders (id, store, body, format, rank, created_at_ms, updated_at_ms, request_key,
                                 awaiting_payment_from, phone)
             VALUES (?1, ?2, ?3, 3, ?4, ?5, ?5, ?6, ?7, ?8)",
            params![
                id,
                order.store.0,
                super::format::encode(&data::Order::from(&order)),
                OrderState::New.rank(),
                now_ms,
                request_key,
                awaiting,
                order.phone.as_ref().map(|p| p.digits())
            ],
        )?;
        for (i, l) in order.lines.iter().enumerate() {
            tx.execute(
                "INSERT INTO order_lines (order_id, line, sku, quantity) VALUES (?1, ?2, ?3, ?4)",
                params![id, i as i64, l.sku.as_str(), l.quantity],
            )?;
        }
        event(&tx, order.id, OrderState::New, "hq", now_ms)?;
        let mut audit = audit.clone();
        audit.summary = serde_json::json!({
            "order": id, "store": order.store.0, "lines": order.lines.len(), "total_kopecks": order.total().0,
        });
        audit_in(&tx, &audit)?;
        tx.commit()?;
        Ok(Ok((order, true)))
    }

    /// Order `id` as HQ knows it.
    pub fn order(&self, id: OrderId) -> Result<Option<OrderRow>, DbError> {
        row(&*self.conn()?, id)
    }

    /// Orders of `store` (or every store), newest first; only open ones if `open`.
    pub fn orders(&self, store: Option<StoreId>, open: bool, max: usize) -> Result<Vec<OrderRow>, DbError> {
        let conn = self.conn()?;
        let ids: Vec<i64> = conn
            .prepare_cached(
                "SELECT id FROM orders WHERE (CAST(?1 AS BIGINT) IS NULL OR store = ?1) AND (?2 = 0 OR rank < ?3)
                 ORDER BY id DESC LIMIT ?4",
            )?
            .query_map(params![store.map(|s| s.0), open, open_below(), max.min(ORDERS_PAGE_MAX) as i64], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        ids.into_iter().filter_map(|id| row(&conn, OrderId(id as u64)).transpose()).collect()
    }

    /// HQ cancels order `id` (the customer asked): at once at HQ, unless it already ended.
    pub fn cancel_order(&self, id: OrderId, audit: &NewAudit, now_ms: i64) -> Result<Option<CancelOutcome>, DbError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        let Some(o) = row(&tx, id)? else { return Ok(None) };
        if o.state.is_final() {
            return Ok(Some(CancelOutcome::AlreadyEnded(o.state)));
        }
        tx.execute(
            "UPDATE orders SET rank = ?2, cancel_requested_at_ms = ?3, updated_at_ms = ?3 WHERE id = ?1",
            params![id.0 as i64, o.state.join(OrderState::Cancelled).rank(), now_ms],
        )?;
        event(&tx, id, OrderState::Cancelled, "hq", now_ms)?;
        audit_in(&tx, audit)?;
        tx.commit()?;
        Ok(Some(CancelOutcome::Cancelled))
    }

    /// What HQ offers `store`: the first page of the orders it has not accepted (unless
    /// HQ cancelled them first), and cancellations of orders it accepted and has not
    /// ended.
    pub fn orders_to_offer(&self, store: StoreId) -> Result<(Vec<Order>, Vec<OrderId>), DbError> {
        let conn = self.conn()?;
        // One statement for both (every connected store asks at each digest): the orders
        // to offer (kind 0) and the pending cancellations (kind 1).
        let found: Vec<(i64, i64)> = conn
            .prepare_cached(&format!(
                "SELECT id, 0 FROM (SELECT id FROM orders WHERE store = ?1 AND reported_rank IS NULL AND rank < ?2
                     AND {OFFERABLE} ORDER BY id LIMIT ?3) AS offer
                 UNION ALL
                 SELECT id, 1 FROM (SELECT id FROM orders WHERE store = ?1 AND cancel_requested_at_ms IS NOT NULL
                     AND reported_rank IS NOT NULL AND reported_rank < ?2 ORDER BY id LIMIT ?3) AS cancel
                 ORDER BY 2, 1"
            ))?
            .query_map(params![store.0, open_below(), ORDERS_PAGE_MAX as i64], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        let mut orders = Vec::new();
        let mut cancels = Vec::new();
        for (id, kind) in found {
            if kind == 0 {
                orders.extend(row(&conn, OrderId(id as u64))?.map(|r| r.order));
            } else {
                cancels.push(OrderId(id as u64));
            }
        }
        Ok((orders, cancels))
    }

    /// The orders feed after `after`, oldest first.
    pub fn order_feed(&self, after: i64, max: usize) -> Result<Vec<OrderFeedEntry>, DbError> {
        let conn = self.conn()?;
        let mut st = conn.prepare_cached(
            "SELECT seq, order_id, state, source, at_ms FROM order_events WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        )?;
        let rows = st.query_map(params![after, max.min(ORDERS_PAGE_MAX) as i64], |r| {
            Ok((r.get::<i64>(0)?, r.get::<i64>(1)?, r.get::<String>(2)?, r.get(3)?, r.get(4)?))
        })?;
        let mut out = Vec::new();
        for r in rows {
            let (seq, order, s, source, at_ms) = r?;
            let state = OrderState::from_code(&s).ok_or_else(|| DbError::Corrupt(format!("order state `{s}`")))?;
            out.push(OrderFeedEntry { seq, order: order as u64, state: state.code(), source, at_ms });
        }
        Ok(out)
    }

    /// What `store` has of `sku` for a new order: on hand minus what HQ's open orders
    /// for it hold.
    pub fn available(&self, store: StoreId, sku: &Sku) -> Result<(i64, i64), DbError> {
        let conn = self.conn()?;
        Ok((on_hand(&conn, store, sku)?, reserved(&conn, store, sku)?))
    }

    /// Per store that has any of `sku`: on hand, reserved for orders, and when HQ last
    /// heard from it (the age of these figures).
    pub fn availability(&self, sku: &Sku) -> Result<Vec<Availability>, DbError> {
        let conn = self.conn()?;
        let mut st = conn.prepare_cached(
            "SELECT c.location, SUM(c.p - c.n), (SELECT last_contact_ms FROM stores WHERE store = c.location)
             FROM stock_counters c WHERE c.sku = ?1 GROUP BY c.location ORDER BY c.location",
        )?;
        let rows: Vec<(u32, i64, Option<i64>)> =
            st.query_map([sku.as_str()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect::<Result<_, _>>()?;
        let mut out = Vec::with_capacity(rows.len());
        for (store, on_hand, seen) in rows {
            let reserved = reserved(&conn, StoreId(store), sku)?;
            out.push(Availability { store: StoreId(store), on_hand, reserved, heard_at_ms: seen });
        }
        Ok(out)
    }
}

fn on_hand(conn: &Connection, store: StoreId, sku: &Sku) -> Result<i64, DbError> {
    Ok(conn.query_row(
        "SELECT COALESCE(SUM(p - n), 0) FROM stock_counters WHERE location = ?1 AND sku = ?2",
        params![store.0, sku.as_str()],
        |r| r.get(0),
    )?)
}

pub(super) fn reserved(conn: &Connection, store: StoreId, sku: &Sku) -> Result<i64, DbError> {
    Ok(conn.query_row(
        "SELECT COALESCE(SUM(l.quantity), 0) FROM order_lines l JOIN orders o ON o.id = l.order_id
         WHERE o.store = ?1 AND l.sku = ?2 AND o.rank < ?3",
        params![store.0, sku.as_str(), open_below()],
        |r| r.get(0),
    )?)
}

fn available(conn: &Connection, store: StoreId, sku: &Sku) -> Result<i64, DbError> {
    Ok(on_hand(conn, store, sku)? - reserved(conn, store, sku)?)
}
