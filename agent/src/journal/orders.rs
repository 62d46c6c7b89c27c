//! Orders for pickup at this store: kept once as HQ sent them, their lines reserved
//! while they are open, moved through picking and ready, handed over (a sale of the
//! taken lines when paid at pickup) or expired at the store's clock, or cancelled.
//!
//! What happened to an order is appended to `order_events`, one row per state
//! (`kassa_protocol::orders` ranks them); its state is the highest row, so nothing is
//! updated in place, and the table's key (order, state) makes a second handover of an
//! order impossible even for a bug above. Every event goes to HQ through the outbox in
//! the same transaction; reservations are derived from the open orders, never kept.

use kassa_protocol::basket::Basket;
use kassa_protocol::orders::{
    self, Handover, HandoverError, Order, OrderEvent, OrderId, OrderState, OrderUpdate, Payment, StoreStep,
};
use kassa_protocol::sale::{Sale, Tender};
use kassa_protocol::wire::Change;
use kassa_protocol::Sku;
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use super::outbox::push_outbox;
use super::print_queue::queue_print;
use super::types::{PrintDoc, Record};
use super::{exec, format, idempotent, order_and_handover, query_row, Immediate, Journal, JournalError};
use super::{RequestDigest, WriteError};

/// The first final state's rank: an order whose highest event is below it is open.
fn open_below() -> i64 {
    OrderState::Cancelled.rank()
}

/// An order as the till lists and shows it.
#[derive(Debug, Clone)]
pub struct OrderView {
    pub order: Order,
    pub state: OrderState,
    /// When the store received it, at its clock.
    pub received_at_ms: i64,
    /// What was taken of each line, once handed over.
    pub taken: Option<Vec<i64>>,
    /// The sale that paid for it at pickup.
    pub sale_seq: Option<u64>,
}

/// What a handover did: the order, and the sale when it was paid at pickup.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Collected {
    pub order: u64,
    pub sale_seq: Option<u64>,
    pub receipt_no: Option<String>,
    pub change_kopecks: i64,
}

impl super::Response for Collected {
    fn to_stored(&self) -> Result<String, JournalError> {
        Ok(serde_json::to_string(self).expect("plain data serialises"))
    }

    fn from_stored(_: &Connection, stored: &str) -> Result<Self, JournalError> {
        serde_json::from_str(stored).map_err(|e| JournalError::Corrupt(format!("stored handover: {e}")))
    }
}

fn state_of(conn: &Connection, id: OrderId) -> Result<Option<OrderState>, JournalError> {
    let r: Option<i64> = query_row(
        conn,
        "SELECT MAX(rank) FROM order_events WHERE order_id = ?1 HAVING COUNT(*) > 0",
        [id.0 as i64],
        |r| r.get(0),
    )
    .optional()?;
    Ok(r.and_then(OrderState::from_rank))
}

impl Journal {
    /// Keeps an order HQ sent (once: `false` if it was already here), reserves its lines
    /// and accepts it through the outbox, in one transaction.
    pub fn keep_order(&self, order: &Order, now_ms: i64) -> Result<bool, JournalError> {
        let conn = self.conn();
        let tx = Immediate::begin(&conn)?;
        let inserted = exec(
            &tx,
            "INSERT OR IGNORE INTO orders (id, body, format, phone, expires_at_ms, received_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                order.id.0 as i64,
                format::encode_order(order),
                format::ORDER_FORMAT,
                order.phone.as_ref().map(|p| p.digits().to_owned()),
                order.expires_at_ms,
                now_ms
            ],
        )?;
        if inserted == 0 {
            return Ok(false);
        }
        for (i, l) in order.lines.iter().enumerate() {
            exec(
                &tx,
                "INSERT INTO order_lines (order_id, line, sku, quantity) VALUES (?1, ?2, ?3, ?4)",
                params![order.id.0 as i64, i as i64, l.sku.0, l.quantity],
            )?;
        }
        self.order_event(&tx, order.id, OrderEvent::Accepted, "", now_ms, Vec::new())?;
        tx.commit()?;
        Ok(true)
    }

    /// Appends an event of order `id` and sends it to HQ (with `counters`, a handover's
    /// stock totals), in the caller's transaction.
    fn order_event(
        &self,
        tx: &Connection,
        id: OrderId,
        event: OrderEvent,
        by: &str,
        now_ms: i64,
        counters: Vec<kassa_protocol::stock::CounterEntry>,
    ) -> Result<(), JournalError> {
        let state = event.state();
        let (taken, sale) = match &event {
            OrderEvent::Collected { taken, sale } => {
                (Some(serde_json::to_string(taken).expect("numbers serialise")), sale.map(|s| s.seq as i64))
            }
            _ => (None, None),
        };
        exec(
            tx,
            "INSERT INTO order_events (order_id, rank, state, at_ms, by_user, taken, sale_seq)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![id.0 as i64, state.rank(), state.code(), now_ms, by, taken, sale],
        )?;
        let update = OrderUpdate { order: id, store: self.store, event, at_ms: now_ms, by: by.to_owned() };
        push_outbox(tx, Change::Order { update, counters })
    }

    /// HQ cancels order `id`: done unless it already ended here (a handover stands; its
    /// update is on its way to HQ). Returns the order's state after.
    pub fn cancel_order_from_hq(&self, id: OrderId, now_ms: i64) -> Result<Option<OrderState>, JournalError> {
        let conn = self.conn();
        let tx = Immediate::begin(&conn)?;
        let Some(state) = state_of(&tx, id)? else { return Ok(None) };
        if state.is_final() {
            return Ok(Some(state));
        }
        self.order_event(&tx, id, OrderEvent::Cancelled, "", now_ms, Vec::new())?;
        tx.commit()?;
        Ok(Some(OrderState::Cancelled))
    }

    /// A cashier moves order `id` on: picking, ready, or cancelled at the customer's
    /// word. Ready prints nothing; picking prints the picking list.
    pub fn order_step(&self, id: OrderId, step: StoreStep, by: &str, now_ms: i64) -> Result<OrderState, WriteError> {
        let conn = self.conn();
        let tx = Immediate::begin(&conn)?;
        let (order, _) = order_and_handover(&tx, id)?.ok_or(WriteError::NoSuchOrder(id))?;
        let state = state_of(&tx, id)?.ok_or(WriteError::NoSuchOrder(id))?;
        let to = orders::store_step(&order, state, step, now_ms)?;
        if to == state {
            return Ok(state);
        }
        let event = match to {
            OrderState::Picking => OrderEvent::Picking,
            OrderState::Ready => OrderEvent::Ready,
            _ => OrderEvent::Cancelled,
        };
        self.order_event(&tx, id, event, by, now_ms, Vec::new())?;
        if to == OrderState::Picking {
            queue_print(&tx, &PrintDoc::Order { order: id, handover: false }, false, now_ms)?;
        }
        tx.commit()?;
        Ok(to)
    }

    /// Prints order `id`'s picking list again.
    pub fn print_picking_list(&self, id: OrderId, now_ms: i64) -> Result<(), WriteError> {
        let conn = self.conn();
        order_and_handover(&conn, id)?.ok_or(WriteError::NoSuchOrder(id))?;
        queue_print(&conn, &PrintDoc::Order { order: id, handover: false }, false, now_ms)?;
        Ok(())
    }

    /// Expires every open order whose time is up at `now_ms` (the store's clock); their
    /// stock is released. Returns the orders expired.
    pub fn expire_orders(&self, now_ms: i64) -> Result<Vec<OrderId>, JournalError> {
        let conn = self.conn();
        // Read first: the Orders view asks every few seconds, and nothing is usually due;
        // the write lock is taken only when something is.
        if due_orders(&conn, now_ms)?.is_empty() {
            return Ok(Vec::new());
        }
        let tx = Immediate::begin(&conn)?;
        let due = due_orders(&tx, now_ms)?;
        for id in &due {
            self.order_event(&tx, OrderId(*id as u64), OrderEvent::Expired, "", now_ms, Vec::new())?;
        }
        tx.commit()?;
        Ok(due.into_iter().map(|i| OrderId(i as u64)).collect())
    }

    /// Hands order `id` over: `handover` says what the customer takes of each line (the
    /// rest is released). A prepaid order takes no money and records the handover; one
    /// paid at pickup becomes a sale of the taken lines at the order's locked prices,
    /// paid with `tenders`, in the same transaction. An order is handed over once: a
    /// retry with the same key answers what the first did.
    #[allow(clippy::too_many_arguments)]
    pub fn collect_order(
        &self,
        terminal: u16,
        cashier: &str,
        id: OrderId,
        handover: &Handover,
        tenders: &[Tender],
        key: &str,
        now_ms: i64,
    ) -> Result<(Collected, bool), WriteError> {
        let digest = RequestDigest::of("collect", &(id.0, &handover.taken, tenders));
        let conn = self.conn();
        idempotent(&conn, key, "collect", digest, |tx| {
            let (order, _) = order_and_handover(tx, id)?.ok_or(WriteError::NoSuchOrder(id))?;
            let state = state_of(tx, id)?.ok_or(WriteError::NoSuchOrder(id))?;
            handover.validate(&order, state)?;
            let lines = orders::taken_lines(&order, handover);
            let (sale, counters): (Option<Sale>, _) = match order.payment {
                Payment::Prepaid if !tenders.is_empty() => return Err(WriteError::OrderPrepaid(id)),
                Payment::Prepaid => {
                    let counters = self.count(tx, lines.iter().map(|l| (&l.sku, 0, l.quantity)))?;
                    let moved = lines.iter().map(|l| (l.sku.clone(), l.quantity)).collect();
                    super::chain::append(tx, terminal, cashier, now_ms, &Record::Handover { order: id, lines: moved })?;
                    queue_print(tx, &PrintDoc::Order { order: id, handover: true }, false, now_ms)?;
                    (None, counters)
                }
                Payment::AtPickup => {
                    // The sale carries the stock counters, as any sale does.
                    let basket = Basket { lines, ..Basket::default() };
                    let sale = self.pay_in(tx, terminal, cashier, &basket, None, tenders, None, now_ms)?;
                    (Some(sale), Vec::new())
                }
            };
            let event = OrderEvent::Collected { taken: handover.taken.clone(), sale: sale.as_ref().map(|s| s.id) };
            self.order_event(tx, id, event, cashier, now_ms, counters)?;
            Ok(Collected {
                order: id.0,
                sale_seq: sale.as_ref().map(|s| s.id.seq),
                receipt_no: sale.as_ref().map(|s| s.receipt_no.clone()),
                change_kopecks: sale.as_ref().map_or(0, |s| s.change.0),
            })
        })
        .map_err(|e| match e {
            // Two tills handing over at once: the second finds the first's row.
            WriteError::Journal(JournalError::Sqlite(rusqlite::Error::SqliteFailure(f, _)))
                if f.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                WriteError::Handover(HandoverError::Final { order: id, state: OrderState::Collected })
            }
            e => e,
        })
    }

    /// Order `id` as the till shows it.
    pub fn order(&self, id: OrderId) -> Result<Option<OrderView>, JournalError> {
        let conn = self.conn();
        Ok(views(&conn, "o.id = ?1", params![id.0 as i64])?.pop())
    }

    /// The order a phone number has, newest first, at most `max`.
    pub fn orders_by_phone(&self, phone: &str, max: usize) -> Result<Vec<OrderView>, JournalError> {
        let conn = self.conn();
        views(&conn, "o.phone = ?1 ORDER BY o.id DESC LIMIT ?2", params![phone, max as i64])
    }

    /// Orders received from `since_ms` on or still open, newest first, at most `max`.
    pub fn orders(&self, since_ms: i64, max: usize) -> Result<Vec<OrderView>, JournalError> {
        let conn = self.conn();
        views(
            &conn,
            "o.received_at_ms >= ?1 OR (SELECT MAX(rank) FROM order_events e WHERE e.order_id = o.id) < ?2
             ORDER BY o.id DESC LIMIT ?3",
            params![since_ms, open_below(), max as i64],
        )
    }

    /// The highest order number the store holds (0: none): HQ sends orders in their
    /// numbers' order, so every order up to it has arrived (the orders benchmark reads it).
    pub fn orders_received_upto(&self) -> Result<u64, JournalError> {
        let conn = self.conn();
        Ok(query_row(&conn, "SELECT COALESCE(MAX(id), 0) FROM orders", [], |r| r.get::<_, i64>(0))? as u64)
    }

    /// What open orders reserve of `sku`.
    pub fn reserved(&self, sku: &Sku) -> Result<i64, JournalError> {
        let conn = self.conn();
        reserved(&conn, sku)
    }
}

/// Open orders whose time is up at `now_ms`, by number.
fn due_orders(conn: &Connection, now_ms: i64) -> Result<Vec<i64>, JournalError> {
    let mut st = conn.prepare_cached(
        "SELECT o.id FROM orders o WHERE o.expires_at_ms <= ?1
         AND (SELECT MAX(rank) FROM order_events e WHERE e.order_id = o.id) < ?2 ORDER BY o.id",
    )?;
    let rows = st.query_map(params![now_ms, open_below()], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(super) fn reserved(conn: &Connection, sku: &Sku) -> Result<i64, JournalError> {
    Ok(query_row(
        conn,
        "SELECT COALESCE(SUM(l.quantity), 0) FROM order_lines l WHERE l.sku = ?1
         AND (SELECT MAX(rank) FROM order_events e WHERE e.order_id = l.order_id) < ?2",
        params![sku.0, open_below()],
        |r| r.get(0),
    )?)
}

/// The orders `filter` (an SQL condition on `orders o`, with its order and limit) selects,
/// each with its state and handover, in one statement: the Orders view asks every few
/// seconds, under the journal's lock.
fn views<P: rusqlite::Params>(conn: &Connection, filter: &str, params: P) -> Result<Vec<OrderView>, JournalError> {
    let sql = format!(
        "SELECT o.id, o.body, o.format, o.received_at_ms,
                (SELECT MAX(rank) FROM order_events e WHERE e.order_id = o.id), c.taken, c.sale_seq
         FROM orders o LEFT JOIN order_events c ON c.order_id = o.id AND c.state = 'collected'
         WHERE {filter}"
    );
    type Raw = (i64, Vec<u8>, u32, i64, Option<i64>, Option<String>, Option<i64>);
    let mut st = conn.prepare_cached(&sql)?;
    let rows: Vec<Raw> = st
        .query_map(params, |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?)))?
        .collect::<Result<_, _>>()?;
    rows.into_iter()
        .map(|(id, body, f, received_at_ms, rank, taken, sale_seq)| {
            let order = format::decode_order(&body, f)?;
            let taken = taken
                .map(|t| serde_json::from_str(&t))
                .transpose()
                .map_err(|e| JournalError::Corrupt(format!("handover of order {id}: {e}")))?;
            Ok(OrderView {
                order,
                state: rank.and_then(OrderState::from_rank).unwrap_or(OrderState::New),
                received_at_ms,
                taken,
                sale_seq: sale_seq.map(|s| s as u64),
            })
        })
        .collect()
}
