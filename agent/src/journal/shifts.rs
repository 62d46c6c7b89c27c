//! Shifts per terminal: open with a cash float, cash in and out, X report (mid-shift)
//! and Z report (close). Reports are computed from the journal's tables, to the kopeck.
//!
//! Expected cash in the drawer = float + cash taken for sales − change given − cash
//! refunded + cash in − cash out.

use kassa_protocol::catalog::VatRate;
use kassa_protocol::{pricing, Kopecks};
use rusqlite::{params, Connection, OptionalExtension};

use super::chain;
use super::types::Record;
use super::types::{ShiftReport, TenderTotal, VatLine};
use super::{idempotent, limits, query_row, Journal, JournalError, RequestDigest, WriteError};

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
            return Err(WriteError::NegativeFloat);
        }
        if float > limits::CASH_AMOUNT_MAX {
            return Err(WriteError::AmountTooLarge { what: "the float", max: limits::CASH_AMOUNT_MAX });
        }
        let conn = self.conn();
        idempotent(&conn, key, "shift_open", RequestDigest::of("shift_open", &float), |tx| {
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

    /// Cash in (positive) or out (negative) of the drawer, with a reason. Cash out only
    /// of what the drawer holds, unless `drawer_override` names the manager who allowed
    /// more (recorded in the chain).
    #[allow(clippy::too_many_arguments)]
    pub fn cash_move(
        &self,
        terminal: u16,
        user: &str,
        amount: Kopecks,
        reason: &str,
        drawer_override: Option<&str>,
        key: &str,
        now_ms: i64,
    ) -> Result<(ShiftReport, bool), WriteError> {
        let reason = reason.trim();
        if amount.0 == 0 {
            return Err(WriteError::ZeroCashAmount);
        }
        if amount.0.unsigned_abs() > limits::CASH_AMOUNT_MAX.0.unsigned_abs() {
            return Err(WriteError::AmountTooLarge { what: "a cash movement", max: limits::CASH_AMOUNT_MAX });
        }
        if reason.is_empty() || reason.chars().count() > REASON_LEN_MAX_CHARS {
            return Err(WriteError::CashReason);
        }
        let digest = RequestDigest::of("cash_move", &(amount, reason, drawer_override));
        let conn = self.conn();
        idempotent(&conn, key, "cash_move", digest, |tx| {
            let shift = open_shift(tx, terminal)?.ok_or(WriteError::NoShift)?;
            let out = Kopecks(amount.0.min(0).saturating_neg());
            let overridden = check_drawer(tx, terminal, shift.id, out, drawer_override)?;
            let record = Record::CashMove { shift: shift.id, amount, reason: reason.to_owned() };
            let seq = chain::append(tx, terminal, user, now_ms, &record)?;
            if let Some(o) = overridden {
                chain::append(tx, terminal, user, now_ms, &o)?;
            }
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
            return Err(WriteError::NegativeCounted);
        }
        if counted > limits::COUNTED_CASH_MAX {
            return Err(WriteError::AmountTooLarge { what: "the counted cash", max: limits::COUNTED_CASH_MAX });
        }
        let conn = self.conn();
        idempotent(&conn, key, "shift_close", RequestDigest::of("shift_close", &counted), |tx| {
            let shift = open_shift(tx, terminal)?.ok_or(WriteError::NoShift)?;
            let mut z = report(tx, terminal)?.expect("open");
            z.closed_by = Some(user.to_owned());
            z.closed_at_ms = Some(now_ms);
            z.counted_cash = Some(counted);
            z.difference = Some(Kopecks(counted.0.saturating_sub(z.expected_cash.0)));
            let seq =
                chain::append(tx, terminal, user, now_ms, &Record::ShiftClose { shift: shift.id, report: z.clone() })?;
            tx.execute("UPDATE shifts SET closed_record = ?2 WHERE id = ?1", params![shift.id, seq])?;
            super::print_queue::queue_report(tx, &z, true, now_ms)?;
            Ok(z)
        })
    }
}

/// Whether `cash_out` may leave the drawer of `terminal`'s open shift `shift`: within
/// what it holds, or beyond with a manager's override, which is returned as the record
/// to append.
pub(super) fn check_drawer(
    tx: &Connection,
    terminal: u16,
    shift: i64,
    cash_out: Kopecks,
    drawer_override: Option<&str>,
) -> Result<Option<Record>, WriteError> {
    if cash_out.0 <= 0 {
        return Ok(None);
    }
    let in_drawer = report(tx, terminal)?.map_or(Kopecks::ZERO, |r| r.expected_cash);
    if cash_out <= in_drawer {
        return Ok(None);
    }
    match drawer_override {
        Some(manager) => {
            Ok(Some(Record::DrawerOverride { shift, manager: manager.to_owned(), in_drawer, amount: cash_out }))
        }
        None => Err(WriteError::DrawerShort { in_drawer, needed: cash_out }),
    }
}

/// A sum kept wide: every amount in the journal fits `i64`, their sums may not (a
/// record written before amounts were bounded can be near `i64::MAX`). Reports show
/// a sum beyond `i64` as the nearest bound rather than fail.
fn kopecks(sum: i128) -> Kopecks {
    Kopecks(sum.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64)
}

/// Rows of `(count, sum)` folded in `i128`: SQLite's `SUM` fails on overflow.
fn count_and_sum(conn: &Connection, sql: &str, shift: i64) -> Result<(u64, i128), JournalError> {
    let mut st = conn.prepare_cached(sql)?;
    let mut rows = st.query([shift])?;
    let (mut n, mut total) = (0u64, 0i128);
    while let Some(r) = rows.next()? {
        n += 1;
        total += i128::from(r.get::<_, i64>(0)?);
    }
    Ok((n, total))
}

/// The report of the terminal's open shift, from the tables.
fn report(conn: &Connection, terminal: u16) -> Result<Option<ShiftReport>, JournalError> {
    let Some(shift) = open_shift(conn, terminal)? else { return Ok(None) };
    let id = shift.id;
    // An order paid now at this till (`aisle`) is money in, a receipt among the sales.
    let (sales_count, sales_total) = count_and_sum(
        conn,
        "SELECT total_kopecks FROM docs WHERE shift_id = ?1 AND kind = 'sale'
         UNION ALL SELECT total_kopecks FROM prepayments WHERE shift_id = ?1",
        id,
    )?;
    let (returns_count, returns_total) =
        count_and_sum(conn, "SELECT total_kopecks FROM docs WHERE shift_id = ?1 AND kind = 'return'", id)?;
    let (voids_count, voids_total) = count_and_sum(conn, "SELECT total_kopecks FROM voids WHERE shift_id = ?1", id)?;
    let (_, cash_in) =
        count_and_sum(conn, "SELECT amount_kopecks FROM cash_moves WHERE shift_id = ?1 AND amount_kopecks > 0", id)?;
    let (_, cash_out) =
        count_and_sum(conn, "SELECT amount_kopecks FROM cash_moves WHERE shift_id = ?1 AND amount_kopecks < 0", id)?;
    let cash_out = -cash_out;

    // For sales, the change (always cash) comes off the cash taken.
    let mut per_kind = tendered_per_kind(conn, id)?;
    let tendered: i128 = per_kind.iter().map(|t| t.1).sum();
    let change = tendered - sales_total;
    if let Some(cash) = per_kind.iter_mut().find(|t| t.0 == "cash") {
        cash.1 -= change;
    }
    let cash = per_kind.iter().find(|t| t.0 == "cash");
    let expected_cash = i128::from(shift.float.0) + cash.map_or(0, |c| c.1 - c.2) + cash_in - cash_out;
    let tenders = per_kind
        .into_iter()
        .map(|(kind, sales, refunds)| TenderTotal { kind, sales: kopecks(sales), refunds: kopecks(refunds) })
        .collect();

    let vat = vat_per_rate(conn, id)?;
    let (sales_total, returns_total, voids_total) =
        (kopecks(sales_total), kopecks(returns_total), kopecks(voids_total));
    let (cash_in, cash_out, expected_cash) = (kopecks(cash_in), kopecks(cash_out), kopecks(expected_cash));
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

/// Tendered per kind in the shift: (kind, in sales, in refunds), sales before change.
fn tendered_per_kind(conn: &Connection, id: i64) -> Result<Vec<(String, i128, i128)>, JournalError> {
    let mut per_kind: Vec<(String, i128, i128)> = Vec::new();
    let mut st = conn.prepare_cached(
        "SELECT d.kind, t.kind, t.amount_kopecks FROM doc_tenders t JOIN docs d ON d.seq = t.seq
         WHERE d.shift_id = ?1
         UNION ALL SELECT 'sale', t.kind, t.amount_kopecks FROM prepayment_tenders t
         JOIN prepayments p ON p.record_seq = t.record_seq WHERE p.shift_id = ?1
         ORDER BY 2",
    )?;
    for row in st.query_map([id], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?)))? {
        let (doc_kind, kind, amount) = row?;
        let i = match per_kind.iter().position(|t| t.0 == kind) {
            Some(i) => i,
            None => {
                per_kind.push((kind, 0, 0));
                per_kind.len() - 1
            }
        };
        if doc_kind == "sale" {
            per_kind[i].1 += i128::from(amount);
        } else {
            per_kind[i].2 += i128::from(amount);
        }
    }
    Ok(per_kind)
}

/// VAT per rate in the shift, per line, as on the receipts.
fn vat_per_rate(conn: &Connection, id: i64) -> Result<Vec<VatLine>, JournalError> {
    let mut per_rate: Vec<(VatRate, [i128; 4])> = Vec::new();
    let mut st = conn.prepare_cached(
        "SELECT d.kind, l.vat, l.amount_kopecks FROM doc_lines l JOIN docs d ON d.seq = l.seq WHERE d.shift_id = ?1
         UNION ALL SELECT 'sale', l.vat, l.amount_kopecks FROM prepayment_lines l
         JOIN prepayments p ON p.record_seq = l.record_seq WHERE p.shift_id = ?1",
    )?;
    for row in st.query_map([id], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?)))? {
        let (doc_kind, rate, amount) = row?;
        let rate = VatRate::parse(&rate).ok_or_else(|| JournalError::Corrupt(format!("VAT rate {rate}")))?;
        let line_vat = pricing::vat_included(Kopecks(amount), rate).0;
        let i = match per_rate.iter().position(|v| v.0 == rate) {
            Some(i) => i,
            None => {
                per_rate.push((rate, [0; 4]));
                per_rate.len() - 1
            }
        };
        let sums = &mut per_rate[i].1;
        let at = if doc_kind == "sale" { 0 } else { 2 };
        sums[at] += i128::from(amount);
        sums[at + 1] += i128::from(line_vat);
    }
    Ok(per_rate
        .into_iter()
        .map(|(rate, [sales, sales_vat, returns, returns_vat])| VatLine {
            rate,
            sales: kopecks(sales),
            sales_vat: kopecks(sales_vat),
            returns: kopecks(returns),
            returns_vat: kopecks(returns_vat),
        })
        .collect())
}
