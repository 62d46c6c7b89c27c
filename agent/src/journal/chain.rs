//! The append-only, hash-chained record of everything the till did.
//!
//! Each row carries the SHA-256 of the previous row's hash and its own content, so
//! editing, deleting or reordering any row breaks every link after it. `verify` walks
//! the chain and names the first broken link; it also checks that the query tables
//! (docs, stock counters, receipt numbers) agree with the chain.

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::types::Record;
use super::{format, JournalError};

const GENESIS: [u8; 32] = [0; 32];

/// The link of a record: the previous hash, the record's columns and its body, and its
/// format when it has one (rows written before formats were versioned have none).
#[allow(clippy::too_many_arguments)]
fn link_hash(
    prev: &[u8],
    seq: i64,
    kind: &str,
    terminal: u16,
    user: &str,
    at_ms: i64,
    body: &[u8],
    format: Option<u32>,
) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(seq.to_be_bytes());
    // Length prefixes keep field boundaries unambiguous.
    for field in [kind.as_bytes(), user.as_bytes(), body] {
        h.update((field.len() as u64).to_be_bytes());
        h.update(field);
    }
    h.update(terminal.to_be_bytes());
    h.update(at_ms.to_be_bytes());
    if let Some(f) = format {
        h.update(b"format");
        h.update(f.to_be_bytes());
    }
    h.finalize().into()
}

/// The last record's sequence and hash: what the next record links to.
#[derive(Debug, Clone)]
pub(super) struct Head {
    pub seq: i64,
    pub hash: Vec<u8>,
}

impl Head {
    /// From the last record's columns (both NULL: no record yet).
    pub fn from_columns(seq: Option<i64>, hash: Option<Vec<u8>>) -> Head {
        match (seq, hash) {
            (Some(seq), Some(hash)) => Head { seq, hash },
            _ => Head { seq: 0, hash: GENESIS.to_vec() },
        }
    }
}

/// Appends `record` to the chain; returns its sequence number.
pub(super) fn append(
    tx: &Connection,
    terminal: u16,
    user: &str,
    at_ms: i64,
    record: &Record,
) -> Result<i64, JournalError> {
    let head = super::query_row(tx, "SELECT seq, hash FROM records ORDER BY seq DESC LIMIT 1", [], |r| {
        Ok(Head { seq: r.get(0)?, hash: r.get(1)? })
    })
    .optional()?
    .unwrap_or_else(|| Head::from_columns(None, None));
    append_after(tx, head, terminal, user, at_ms, record)
}

/// Appends `record` after `head`, which the caller read in this transaction.
pub(super) fn append_after(
    tx: &Connection,
    head: Head,
    terminal: u16,
    user: &str,
    at_ms: i64,
    record: &Record,
) -> Result<i64, JournalError> {
    let Head { seq: prev_seq, hash: prev_hash } = head;
    let seq = prev_seq + 1;
    let body = format::encode_record(record);
    let f = format::RECORD_FORMAT;
    let hash = link_hash(&prev_hash, seq, record.kind(), terminal, user, at_ms, &body, Some(f));
    super::exec(
        tx,
        "INSERT INTO records (seq, kind, terminal, user_id, at_ms, body, prev_hash, hash, format)
         VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9)",
        params![seq, record.kind(), terminal, user, at_ms, body, prev_hash, hash.to_vec(), f],
    )?;
    Ok(seq)
}

pub(super) fn record(conn: &Connection, seq: i64) -> Result<Record, JournalError> {
    let (body, f): (Vec<u8>, Option<u32>) =
        super::query_row(conn, "SELECT body, format FROM records WHERE seq = ?1", [seq], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    format::decode_record(&body, f, seq)
}

/// What `kassa-agent verify` found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    pub records: u64,
    pub sales: u64,
    pub returns: u64,
    /// The first broken link of the hash chain, if any.
    pub first_broken: Option<String>,
    /// Disagreements between the query tables and the chain.
    pub problems: Vec<String>,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.first_broken.is_none() && self.problems.is_empty()
    }
}

/// Problems listed at most; a corrupted journal would otherwise flood the report.
const PROBLEMS_MAX: usize = 50;

/// Walks the chain, then checks the query tables against what it says.
pub(super) fn verify(conn: &Connection, own_actor: kassa_protocol::ActorId) -> Result<VerifyReport, JournalError> {
    let mut report = VerifyReport::default();
    let said = walk_chain(conn, &mut report)?;
    if report.first_broken.is_some() {
        return Ok(report);
    }
    check_docs(conn, &said.docs, &mut report)?;
    check_receipt_numbers(conn, &mut report)?;
    check_own_counters(conn, own_actor, said.stock, &mut report)?;
    Ok(report)
}

impl VerifyReport {
    fn problem(&mut self, p: String) {
        if self.problems.len() < PROBLEMS_MAX {
            self.problems.push(p);
        }
    }
}

/// What the chain says, for the query tables to agree with.
#[derive(Default)]
struct ChainSays {
    /// Stock our own actor moved: SKU → (p, n).
    stock: std::collections::BTreeMap<String, (i64, i64)>,
    /// Sales and returns: (record, receipt number, total in kopecks).
    docs: Vec<(i64, String, i64)>,
}

/// Checks every link of the chain in order, counting records, sales and returns; stops
/// at the first broken link (`report.first_broken`).
fn walk_chain(conn: &Connection, report: &mut VerifyReport) -> Result<ChainSays, JournalError> {
    let mut st = conn.prepare(
        "SELECT seq, kind, terminal, user_id, at_ms, body, prev_hash, hash, format FROM records ORDER BY seq",
    )?;
    let mut rows = st.query([])?;
    let mut expected_prev = GENESIS.to_vec();
    let mut expected_seq = 1i64;
    let mut said = ChainSays::default();
    while let Some(row) = rows.next()? {
        let seq: i64 = row.get(0)?;
        let kind: String = row.get(1)?;
        let terminal: u16 = row.get(2)?;
        let user: String = row.get(3)?;
        let at_ms: i64 = row.get(4)?;
        let body: Vec<u8> = row.get(5)?;
        let prev: Vec<u8> = row.get(6)?;
        let hash: Vec<u8> = row.get(7)?;
        let f: Option<u32> = row.get(8)?;
        report.records += 1;
        let broken = if seq != expected_seq {
            Some(format!("record {seq}: expected record {expected_seq} here (a record is missing or inserted)"))
        } else if prev != expected_prev {
            Some(format!("record {seq}: does not link to record {} (previous hash differs)", seq - 1))
        } else if link_hash(&prev, seq, &kind, terminal, &user, at_ms, &body, f).as_slice() != hash.as_slice() {
            Some(format!("record {seq} ({kind}): content does not match its hash (edited)"))
        } else {
            None
        };
        if let Some(b) = broken {
            report.first_broken = Some(b);
            break;
        }
        expected_prev = hash;
        expected_seq += 1;
        let record = format::decode_record(&body, f, seq)?;
        said.count(seq, &record, report);
    }
    Ok(said)
}

impl ChainSays {
    fn count(&mut self, seq: i64, record: &Record, report: &mut VerifyReport) {
        match record {
            Record::Sale { sale, .. } => {
                report.sales += 1;
                self.docs.push((seq, sale.receipt_no.clone(), sale.total.0));
                for l in &sale.lines {
                    self.stock.entry(l.sku.0.clone()).or_default().1 += l.quantity;
                }
            }
            Record::Return { ret, .. } => {
                report.returns += 1;
                self.docs.push((seq, ret.receipt_no.clone(), ret.total.0));
                for l in &ret.lines {
                    self.stock.entry(l.sku.0.clone()).or_default().0 += l.quantity;
                }
            }
            Record::Movement { movement } => {
                for (sku, plus, minus) in movement.counter_moves() {
                    let e = self.stock.entry(sku.0.clone()).or_default();
                    (e.0, e.1) = (e.0 + plus, e.1 + minus);
                }
            }
            Record::Handover { lines, .. } => {
                for (sku, quantity) in lines {
                    self.stock.entry(sku.0.clone()).or_default().1 += quantity;
                }
            }
            _ => {}
        }
    }
}

/// The docs table says what the chain says: one row per sale and return, same receipt
/// number and total.
fn check_docs(conn: &Connection, docs: &[(i64, String, i64)], report: &mut VerifyReport) -> Result<(), JournalError> {
    for (seq, receipt_no, total) in docs {
        let row: Option<(String, i64)> = conn
            .query_row("SELECT receipt_no, total_kopecks FROM docs WHERE record_seq = ?1", [seq], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?;
        match row {
            Some((r, t)) if &r == receipt_no && t == *total => {}
            Some((r, t)) => {
                report.problem(format!("record {seq}: docs table says {r} {t}, the chain {receipt_no} {total}"))
            }
            None => report.problem(format!("record {seq}: missing from the docs table")),
        }
    }
    let doc_rows: i64 = conn.query_row("SELECT COUNT(*) FROM docs", [], |r| r.get(0))?;
    if doc_rows as usize != docs.len() {
        report.problem(format!("docs table has {doc_rows} rows, the chain {} sales and returns", docs.len()));
    }
    Ok(())
}

/// Receipt numbers per terminal: 1, 2, 3… without gaps.
fn check_receipt_numbers(conn: &Connection, report: &mut VerifyReport) -> Result<(), JournalError> {
    let mut st = conn.prepare("SELECT terminal, COUNT(*), MAX(receipt_number) FROM docs GROUP BY terminal")?;
    for row in st.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?)))? {
        let (terminal, count, max) = row?;
        if count != max {
            report.problem(format!("terminal {terminal}: {count} receipts but numbers up to {max} (a gap)"));
        }
    }
    Ok(())
}

/// Our own stock counters are exactly the sum of sales, returns and movements (`stock`).
fn check_own_counters(
    conn: &Connection,
    own_actor: kassa_protocol::ActorId,
    stock: std::collections::BTreeMap<String, (i64, i64)>,
    report: &mut VerifyReport,
) -> Result<(), JournalError> {
    let mut st = conn.prepare("SELECT sku, p, n FROM stock_counters WHERE actor_store = ?1 AND actor_epoch = ?2")?;
    let mut counters: std::collections::BTreeMap<String, (i64, i64)> = Default::default();
    for row in st.query_map(params![own_actor.store.0, own_actor.epoch], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))? {
        let (sku, p, n): (String, i64, i64) = row?;
        counters.insert(sku, (p, n));
    }
    for (sku, expected) in &stock {
        let found = counters.remove(sku).unwrap_or_default();
        if found != *expected {
            report.problem(format!(
                "SKU {sku}: counters say +{} −{}, sales, returns and movements +{} −{}",
                found.0, found.1, expected.0, expected.1
            ));
        }
    }
    for (sku, found) in counters {
        if found != (0, 0) {
            report
                .problem(format!("SKU {sku}: counters +{} −{} without any sale, return or movement", found.0, found.1));
        }
    }
    Ok(())
}
