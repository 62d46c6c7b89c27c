//! Orders this till placed for pickup (the endless aisle) and paid now: the money
//! taken as a prepayment — a chain record, a receipt, the shift's figures — with no
//! stock moving here (the pickup store hands the order over as prepaid), or the
//! customer's refusal to pay. Either goes to HQ through the outbox in the same
//! transaction, exactly once (`kassa_protocol::orders`, "Paid now").
//!
//! A prepayment counts in the X and Z reports as the money it is: a receipt with its
//! tenders (change off the cash, as for a sale) and its VAT per rate, among the sales.
//! An order is paid at most once (`prepayments.order_id` is unique) and never after its
//! customer refused it (`abandoned_orders`), nor refused after it was paid.

use kassa_protocol::basket::Basket;
use kassa_protocol::orders::{Order, OrderId, OrderPayment, TillPayment};
use kassa_protocol::sale::{self, Tender, TenderKind};
use kassa_protocol::wire::Change;
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use super::outbox::push_outbox;
use super::print_queue::queue_print;
use super::shifts::open_shift;
use super::types::{PrintDoc, Record};
use super::{exec, idempotent, query_row, Journal, JournalError, RequestDigest, WriteError};

/// Journal schema 8: prepayments of orders placed at this till, their tenders and their
/// lines' VAT (for the shift's reports), and the orders whose customer did not pay.
pub(super) const SCHEMA_V8: &str = "
CREATE TABLE prepayments (
    record_seq INTEGER PRIMARY KEY REFERENCES records(seq), order_id INTEGER NOT NULL UNIQUE,
    shift_id INTEGER NOT NULL REFERENCES shifts(id), total_kopecks INTEGER NOT NULL
) STRICT;
CREATE INDEX prepayments_by_shift ON prepayments (shift_id);
CREATE TABLE prepayment_tenders (
    record_seq INTEGER NOT NULL REFERENCES prepayments(record_seq), idx INTEGER NOT NULL, kind TEXT NOT NULL,
    amount_kopecks INTEGER NOT NULL, PRIMARY KEY (record_seq, idx)
) STRICT, WITHOUT ROWID;
CREATE TABLE prepayment_lines (
    record_seq INTEGER NOT NULL REFERENCES prepayments(record_seq), line_no INTEGER NOT NULL, vat TEXT NOT NULL,
    amount_kopecks INTEGER NOT NULL, PRIMARY KEY (record_seq, line_no)
) STRICT, WITHOUT ROWID;
CREATE TABLE abandoned_orders (order_id INTEGER PRIMARY KEY, at_ms INTEGER NOT NULL) STRICT;
";

/// What a prepayment did: its record (the receipt's number) and the change.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Prepayment {
    pub order: u64,
    pub record: u64,
    pub total_kopecks: i64,
    pub change_kopecks: i64,
}

impl super::Response for Prepayment {
    fn to_stored(&self) -> Result<String, JournalError> {
        Ok(serde_json::to_string(self).expect("plain data serialises"))
    }

    fn from_stored(_: &Connection, stored: &str) -> Result<Self, JournalError> {
        serde_json::from_str(stored).map_err(|e| JournalError::Corrupt(e.to_string()))
    }
}

fn paid(tx: &Connection, id: OrderId) -> Result<bool, JournalError> {
    Ok(query_row(tx, "SELECT 1 FROM prepayments WHERE order_id = ?1", [id.0 as i64], |_| Ok(())).optional()?.is_some())
}

fn abandoned(tx: &Connection, id: OrderId) -> Result<bool, JournalError> {
    Ok(query_row(tx, "SELECT 1 FROM abandoned_orders WHERE order_id = ?1", [id.0 as i64], |_| Ok(()))
        .optional()?
        .is_some())
}

impl Journal {
    /// Takes the payment of `order` (placed at HQ by this till, to be paid here) with
    /// `tenders`: cash (change given) or card — not points, which belong to a sale's
    /// customer. A retry with the same key answers what the first did.
    #[allow(clippy::too_many_arguments)]
    pub fn prepay_order(
        &self,
        terminal: u16,
        cashier: &str,
        order: &Order,
        tenders: &[Tender],
        key: &str,
        now_ms: i64,
    ) -> Result<(Prepayment, bool), WriteError> {
        let digest = RequestDigest::of("prepay", &(order.id.0, tenders));
        let conn = self.conn();
        idempotent(&conn, key, "prepay", digest, |tx| {
            let shift = open_shift(tx, terminal)?.ok_or(WriteError::NoShift)?;
            if tenders.iter().any(|t| t.kind == TenderKind::Points) {
                return Err(WriteError::PrepaymentInPoints);
            }
            if paid(tx, order.id)? {
                return Err(WriteError::OrderPaid(order.id));
            }
            if abandoned(tx, order.id)? {
                return Err(WriteError::OrderAbandoned(order.id));
            }
            let basket = Basket { lines: order.lines.clone(), ..Basket::default() };
            let (totals, change) = sale::settle(&basket, tenders)?;
            debug_assert_eq!(totals.total, order.total());
            let record = Record::Prepayment {
                shift: shift.id,
                order: Box::new(order.clone()),
                tenders: tenders.to_vec(),
                change,
            };
            let seq = super::chain::append(tx, terminal, cashier, now_ms, &record)?;
            exec(
                tx,
                "INSERT INTO prepayments (record_seq, order_id, shift_id, total_kopecks) VALUES (?1, ?2, ?3, ?4)",
                params![seq, order.id.0 as i64, shift.id, totals.total.0],
            )?;
            for (i, t) in tenders.iter().enumerate() {
                exec(
                    tx,
                    "INSERT INTO prepayment_tenders (record_seq, idx, kind, amount_kopecks) VALUES (?1, ?2, ?3, ?4)",
                    params![seq, i as i64, t.kind.code(), t.amount.0],
                )?;
            }
            for (i, l) in order.lines.iter().enumerate() {
                exec(
                    tx,
                    "INSERT INTO prepayment_lines (record_seq, line_no, vat, amount_kopecks) VALUES (?1, ?2, ?3, ?4)",
                    params![seq, i as i64, l.vat.code(), l.net().0],
                )?;
            }
            let outcome = TillPayment::Paid { amount: totals.total };
            push_outbox(tx, Change::OrderPayment { payment: payment(self, order.id, outcome, now_ms) })?;
            queue_print(tx, &PrintDoc::Prepayment { record: seq as u64 }, false, now_ms)?;
            Ok(Prepayment {
                order: order.id.0,
                record: seq as u64,
                total_kopecks: totals.total.0,
                change_kopecks: change.0,
            })
        })
    }

    /// The customer did not pay order `id` (placed by this till to be paid here): HQ is
    /// told, and cancels it. Saying it twice is harmless; after the payment it is refused.
    pub fn abandon_order(&self, id: OrderId, now_ms: i64) -> Result<(), WriteError> {
        let conn = self.conn();
        let tx = super::Immediate::begin(&conn)?;
        if paid(&tx, id)? {
            return Err(WriteError::OrderPaid(id));
        }
        if abandoned(&tx, id)? {
            return Ok(());
        }
        exec(&tx, "INSERT INTO abandoned_orders (order_id, at_ms) VALUES (?1, ?2)", params![id.0 as i64, now_ms])?;
        push_outbox(&tx, Change::OrderPayment { payment: payment(self, id, TillPayment::Abandoned, now_ms) })?;
        tx.commit()?;
        Ok(())
    }
}

fn payment(j: &Journal, order: OrderId, outcome: TillPayment, now_ms: i64) -> OrderPayment {
    OrderPayment { order, store: j.store, outcome, at_ms: now_ms }
}
