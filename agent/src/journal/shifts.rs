//! Shifts per terminal: open with a cash float, cash in and out, X report (mid-shift)
//! and Z report (close). Reports are computed from the journal's tables, to the kopeck.
//!
//! Expected cash in the drawer = float + cash taken for sales − change given − cash
//! refunded + cash in − cash out.

use kassa_protocol::catalog::VatRate;
use kassa_protocol::{pricing, Kopecks};
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use super::chain::{self, Record};
use super::{idempotent, query_row, Journal, JournalError, WriteError};

#[derive(Debug, Clone)]
pub(super) struct Shift {
    pub id: i64,
    pub opened_by: String,
    pub opened_at_ms: i64,
    pub float: Kopecks,
}

pub(super) fn open_shift(conn: &Connection, terminal: u16) -> Result<Option<Shift>, JournalError> {
    Ok(query_row(
        conn,
        "SELECT id, opened_by, opened_at_ms, float_kopecks FROM shifts WHERE terminal = ?1 AND closed_record IS NULL",
        [terminal],
        |r| Ok(Shift { id: r.get(0)?, opened_by: r.get(1)?, opened_at_ms: r.get(2)?, float: Kopecks(r.get(3)?) }),
    )
    .optional()?)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenderTotal {
    pub kind: String,
    pub sales: Kopecks,
    pub refunds: Kopecks,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VatLine {
    pub rate: VatRate,
    pub sales: Kopecks,
    pub sales_vat: Kopecks,
    pub returns: Kopecks,
    pub returns_vat: Kopecks,
}

/// An X report (mid-shift, `closed_at_ms == None`) or a Z report (at close).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShiftReport {
    pub shift: i64,
    pub terminal: u16,
    pub opened_by: String,
    pub opened_at_ms: i64,
    pub closed_by: Option<String>,
    pub closed_at_ms: Option<i64>,
    pub float: Kopecks,
    pub sales_count: u64,
    pub sales_total: Kopecks,
    pub returns_count: u64,
    pub returns_total: Kopecks,
    pub voids_count: u64,
    pub voids_total: Kopecks,
    /// Per tender: what sales took (net of change for cash) and what returns refunded.
    pub tenders: Vec<TenderTotal>,
    pub vat: Vec<VatLine>,
    pub cash_in: Kopecks,
    pub cash_out: Kopecks,
    pub expected_cash: Kopecks,
    pub counted_cash: Option<Kopecks>,
    /// Counted minus expected: negative is a shortage.
    pub difference: Option<Kopecks>,
}

/// Longest reason for a cash movement.
pub const REASON_LEN_MAX_CHARS: usize = 200;

impl Journal {
    pub fn open_shift(
        &self,
        terminal: u16,
        user: &str,
        float: Kopecks,
        key: &str,
        now_ms: i64,
    ) -> Result<(ShiftReport, bool), WriteError> {
        if float.0 < 0 {
            return Err(WriteError::Invalid("the float cannot be negative".into()));
        }
        let conn = self.conn();
        idempotent(&conn, key, "shift_open", |tx| {
            if open_shift(tx, terminal)?.is_some() {
                return Err(WriteError::ShiftOpen);
            }
            let id: i64 = tx.query_row("SELECT COALESCE(MAX(id), 0) + 1 FROM shifts", [], |r| r.get(0))?;
            chain::append(tx, terminal, user, now_ms, &Record::ShiftOpen { shift: id, float })?;
            tx.execute(
                "INSERT INTO shifts (id, terminal, opened_by, opened_at_ms, float_kopecks) VALUES (?1,?2,?3,?4,?5)",
                params![id, terminal, user, now_ms, float.0],
            )?;
            Ok(report(tx, terminal)?.expect("just opened"))
        })
    }

    /// Cash in (positive) or out (negative) of the drawer, with a reason.
    pub fn cash_move(
        &self,
        terminal: u16,
        user: &str,
        amount: Kopecks,
        reason: &str,
        key: &str,
        now_ms: i64,
    ) -> Result<(ShiftReport, bool), WriteError> {
        let reason = reason.trim();
        if amount.0 == 0 {
            return Err(WriteError::Invalid("the amount cannot be zero".into()));
        }
        if reason.is_empty() || reason.chars().count() > REASON_LEN_MAX_CHARS {
            return Err(WriteError::Invalid(format!("give a reason of 1 to {REASON_LEN_MAX_CHARS} characters")));
        }
        let conn = self.conn();
        idempotent(&conn, key, "cash_move", |tx| {
            let shift = open_shift(tx, terminal)?.ok_or(WriteError::NoShift)?;
            let before = report(tx, terminal)?.expect("open");
            if amount.0 < 0 && before.expected_cash.0 + amount.0 < 0 {
                return Err(WriteError::Invalid(format!("only {} in the drawer", before.expected_cash)));
            }
            let record = Record::CashMove { shift: shift.id, amount, reason: reason.to_owned() };
            let seq = chain::append(tx, terminal, user, now_ms, &record)?;
            tx.execute(
                "INSERT INTO cash_moves (record_seq, shift_id, amount_kopecks, reason) VALUES (?1,?2,?3,?4)",
                params![seq, shift.id, amount.0, reason],
            )?;
            Ok(report(tx, terminal)?.expect("open"))
        })
    }

    /// The X report of the open shift, if any.
    pub fn x_report(&self, terminal: u16) -> Result<Option<ShiftReport>, JournalError> {
        report(&self.conn(), terminal)
    }

    /// Closes the shift with the counted cash: the Z report is recorded and printed.
    pub fn close_shift(
        &self,
        terminal: u16,
        user: &str,
        counted: Kopecks,
        key: &str,
        now_ms: i64,
    ) -> Result<(ShiftReport, bool), WriteError> {
        if counted.0 < 0 {
            return Err(WriteError::Invalid("counted cash cannot be negative".into()));
        }
        let conn = self.conn();
        idempotent(&conn, key, "shift_close", |tx| {
            let shift = open_shift(tx, terminal)?.ok_or(WriteError::NoShift)?;
            let mut z = report(tx, terminal)?.expect("open");
            z.closed_by = Some(user.to_owned());
            z.closed_at_ms = Some(now_ms);
            z.counted_cash = Some(counted);
            z.difference = Some(Kopecks(counted.0 - z.expected_cash.0));
            let seq =
                chain::append(tx, terminal, user, now_ms, &Record::ShiftClose { shift: shift.id, report: z.clone() })?;
            tx.execute("UPDATE shifts SET closed_record = ?2 WHERE id = ?1", params![shift.id, seq])?;
            super::sales::queue_report(tx, &z, true, now_ms)?;
            Ok(z)
        })
    }
}

fn sum(conn: &Connection, sql: &str, shift: i64) -> Result<(u64, Kopecks), JournalError> {
    let (n, total): (i64, i64) = conn.query_row(sql, [shift], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok((n as u64, Kopecks(total)))
}

/// The report of the terminal's open shift, from the tables.
fn report(conn: &Connection, terminal: u16) -> Result<Option<ShiftReport>, JournalError> {
    let Some(shift) = open_shift(conn, terminal)? else { return Ok(None) };
    let id = shift.id;
    let (sales_count, sales_total) = sum(
        conn,
        "SELECT COUNT(*), COALESCE(SUM(total_kopecks), 0) FROM docs WHERE shift_id = ?1 AND kind = 'sale'",
        id,
    )?;
    let (returns_count, returns_total) = sum(
        conn,
        "SELECT COUNT(*), COALESCE(SUM(total_kopecks), 0) FROM docs WHERE shift_id = ?1 AND kind = 'return'",
        id,
    )?;
    let (voids_count, voids_total) =
        sum(conn, "SELECT COUNT(*), COALESCE(SUM(total_kopecks), 0) FROM voids WHERE shift_id = ?1", id)?;
    let (_, cash_in) = sum(
        conn,
        "SELECT COUNT(*), COALESCE(SUM(amount_kopecks), 0) FROM cash_moves WHERE shift_id = ?1 AND amount_kopecks > 0",
        id,
    )?;
    let (_, cash_out) = sum(
        conn,
        "SELECT COUNT(*), COALESCE(-SUM(amount_kopecks), 0) FROM cash_moves WHERE shift_id = ?1 AND amount_kopecks < 0",
        id,
    )?;

    // Tendered per kind; for sales, the change (always cash) comes off the cash taken.
    let mut tenders: Vec<TenderTotal> = Vec::new();
    let mut st = conn.prepare_cached(
        "SELECT d.kind, t.kind, SUM(t.amount_kopecks) FROM doc_tenders t JOIN docs d ON d.seq = t.seq
         WHERE d.shift_id = ?1 GROUP BY d.kind, t.kind ORDER BY t.kind",
    )?;
    for row in st.query_map([id], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?)))? {
        let (doc_kind, kind, amount) = row?;
        let entry = match tenders.iter_mut().position(|t| t.kind == kind) {
            Some(i) => &mut tenders[i],
            None => {
                tenders.push(TenderTotal { kind, sales: Kopecks::ZERO, refunds: Kopecks::ZERO });
                tenders.last_mut().expect("pushed")
            }
        };
        if doc_kind == "sale" {
            entry.sales.0 += amount;
        } else {
            entry.refunds.0 += amount;
        }
    }
    let tendered: i64 = tenders.iter().map(|t| t.sales.0).sum();
    let change = tendered - sales_total.0;
    if let Some(cash) = tenders.iter_mut().find(|t| t.kind == "cash") {
        cash.sales.0 -= change;
    }
    let cash = tenders.iter().find(|t| t.kind == "cash");
    let expected_cash = Kopecks(shift.float.0 + cash.map_or(0, |c| c.sales.0 - c.refunds.0) + cash_in.0 - cash_out.0);

    // VAT per rate, per line, as on the receipts.
    let mut vat: Vec<VatLine> = Vec::new();
    let mut st = conn.prepare_cached(
        "SELECT d.kind, l.vat, l.amount_kopecks FROM doc_lines l JOIN docs d ON d.seq = l.seq WHERE d.shift_id = ?1",
    )?;
    for row in st.query_map([id], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?)))? {
        let (doc_kind, rate, amount) = row?;
        let rate = VatRate::parse(&rate).ok_or_else(|| JournalError::Corrupt(format!("VAT rate {rate}")))?;
        let line_vat = pricing::vat_included(Kopecks(amount), rate).0;
        let entry = match vat.iter_mut().position(|v| v.rate == rate) {
            Some(i) => &mut vat[i],
            None => {
                vat.push(VatLine {
                    rate,
                    sales: Kopecks::ZERO,
                    sales_vat: Kopecks::ZERO,
                    returns: Kopecks::ZERO,
                    returns_vat: Kopecks::ZERO,
                });
                vat.last_mut().expect("pushed")
            }
        };
        if doc_kind == "sale" {
            entry.sales.0 += amount;
            entry.sales_vat.0 += line_vat;
        } else {
            entry.returns.0 += amount;
            entry.returns_vat.0 += line_vat;
        }
    }
    Ok(Some(ShiftReport {
        shift: id,
        terminal,
        opened_by: shift.opened_by,
        opened_at_ms: shift.opened_at_ms,
        closed_by: None,
        closed_at_ms: None,
        float: shift.float,
        sales_count,
        sales_total,
        returns_count,
        returns_total,
        voids_count,
        voids_total,
        tenders,
        vat,
        cash_in,
        cash_out,
        expected_cash,
        counted_cash: None,
        difference: None,
    }))
}
