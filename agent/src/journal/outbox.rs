//! The outbox: changes for HQ, in sequence order, appended in the transaction that made
//! them.

use kassa_protocol::wire::{Change, OutboxEntry};
use rusqlite::{params, Connection};

use super::{exec, format, query_row, JournalError};

pub(super) fn push_outbox(tx: &Connection, change: Change) -> Result<(), JournalError> {
    push_outbox_after(tx, outbox_head(tx)?, change)?;
    Ok(())
}

/// Appends `change` after outbox entry `head`, which the caller read in this
/// transaction; returns the new entry's sequence.
pub(super) fn push_outbox_after(tx: &Connection, head: u64, change: Change) -> Result<u64, JournalError> {
    let seq = head + 1;
    exec(
        tx,
        "INSERT INTO outbox (seq, entry, format) VALUES (?1, ?2, ?3)",
        params![seq as i64, format::encode_outbox(&OutboxEntry { seq, change }), format::OUTBOX_FORMAT],
    )?;
    Ok(seq)
}

/// The sequence of the last outbox entry (0: none yet). Read from the table itself (the
/// last rowid is one B-tree descent), as is the last document's sequence in [`heads`],
/// rather than kept in `meta`: a counter row written with every sale cost a page in
/// every commit. Older journals still hold stale `outbox_head` and `doc_seq` rows in
/// `meta`; nothing reads them.
pub(super) fn outbox_head(conn: &Connection) -> Result<u64, JournalError> {
    Ok(query_row(conn, "SELECT COALESCE(MAX(seq), 0) FROM outbox", [], |r| r.get::<_, i64>(0))? as u64)
}
