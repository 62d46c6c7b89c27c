//! The print queue: jobs for the spooler, appended in the transaction of what they print.

use rusqlite::{params, Connection};

use super::types::{PrintDoc, ShiftReport};
use super::{exec, format, JournalError};

pub(super) fn queue_report(
    conn: &Connection,
    report: &ShiftReport,
    closing: bool,
    now_ms: i64,
) -> Result<(), JournalError> {
    queue_print(conn, &PrintDoc::Report { report: Box::new(report.clone()), closing }, false, now_ms)
}

pub(super) fn queue_print(conn: &Connection, doc: &PrintDoc, copy: bool, now_ms: i64) -> Result<(), JournalError> {
    exec(
        conn,
        "INSERT INTO print_jobs (doc, copy, state, created_at_ms, format) VALUES (?1, ?2, 'pending', ?3, ?4)",
        params![format::encode_print_doc(doc), copy, now_ms, format::PRINT_JOB_FORMAT],
    )?;
    Ok(())
}
