//! The journal's stored formats: the bytes of records, outbox entries and print jobs,
//! separate from the types the till reasons with.
//!
//! Each stored blob has a format version, in the `format` column of its row (`records`,
//! `outbox`, `print_jobs`). Rows written before formats were versioned have `NULL`
//! there and are format 1, the first release's: the same encoding as format 1 written
//! now. A record's format is part of its hash (when not `NULL`), so it cannot be
//! changed without breaking the chain.
//!
//! Format 2 ([`v2`], from schema 4) stores sales with their lines' promotions.
//! Format 3 ([`v3`], from schema 5) adds stock movements (receipts, counts, write-offs,
//! transfers); outbox entries are data format 3.
//!
//! A change to what is stored is a new format: a module beside [`v1`] and [`v2`] with
//! conversions, a schema migration (see `journal::MIGRATIONS`) and a fixture; readers
//! keep every older version. Old records must verify, reprint and be returned against
//! for as long as the store keeps its journal.

use kassa_protocol::format::{v1 as data, FormatError};

use super::JournalError;

/// The format new rows are written in. Records and outbox entries are in format 2 from
/// schema 4 on (sale lines with their promotions, [`kassa_protocol::format::v2`]), and
/// in format 3 from schema 5 on (stock movements, [`kassa_protocol::format::v3`]).
pub const RECORD_FORMAT: u32 = 3;
pub const OUTBOX_FORMAT: u32 = 3;
/// Inbound documents (deliveries and transfers to receive) are stored in data format 3.
pub const INBOUND_FORMAT: u32 = 3;
pub const PRINT_JOB_FORMAT: u32 = 1;

fn corrupt(what: String) -> impl FnOnce(FormatError) -> JournalError {
    move |e| JournalError::Corrupt(format!("{what}: {e}"))
}

/// The format of a row: `NULL` is format 1; `known` is the newest this kind of row has.
fn version(format: Option<u32>, known: u32, what: &str) -> Result<u32, JournalError> {
    match format.unwrap_or(1) {
        v if (1..=known).contains(&v) => Ok(v),
        other => Err(JournalError::Corrupt(format!(
            "{what} is in format {other}, which this program does not know (it knows 1 to {known})"
        ))),
    }
}

pub mod v1 {
    //! Format 1 of the journal's own types. Frozen: the first release wrote these bytes.
    //! `DrawerOverride` was appended to [`Record`] in schema version 2; appending a
    //! variant leaves every earlier record's bytes as they were.

    use kassa_protocol::format::v1 as data;
    use kassa_protocol::Kopecks;
    use serde::{Deserialize, Serialize};

    #[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    pub enum Role {
        Cashier,
        Manager,
    }

    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct TenderTotal {
        pub kind: String,
        pub sales: Kopecks,
        pub refunds: Kopecks,
    }

    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct VatLine {
        pub rate: data::VatRate,
        pub sales: Kopecks,
        pub sales_vat: Kopecks,
        pub returns: Kopecks,
        pub returns_vat: Kopecks,
    }

    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
        pub tenders: Vec<TenderTotal>,
        pub vat: Vec<VatLine>,
        pub cash_in: Kopecks,
        pub cash_out: Kopecks,
        pub expected_cash: Kopecks,
        pub counted_cash: Option<Kopecks>,
        pub difference: Option<Kopecks>,
    }

    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub enum Record {
        Sale { sale: data::Sale, shift: i64 },
        Return { ret: data::Return, shift: i64 },
        Void { shift: i64, lines: u32, total: Kopecks },
        ShiftOpen { shift: i64, float: Kopecks },
        CashMove { shift: i64, amount: Kopecks, reason: String },
        ShiftClose { shift: i64, report: ShiftReport },
        UserAdded { id: String, name: String, role: Role },
        DrawerOverride { shift: i64, manager: String, in_drawer: Kopecks, amount: Kopecks },
    }

    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub enum PrintDoc {
        Doc {
            seq: u64,
        },
        Report {
            report: Box<ShiftReport>,
            closing: bool,
        },
        /// Appended in schema 7: an order's picking list, or its handover slip.
        Order {
            order: u64,
            handover: bool,
        },
        /// Appended in schema 8: the receipt of an order's prepayment, by its record.
        Prepayment {
            record: u64,
        },
    }
}

pub mod v2 {
    //! Format 2 of the journal's records: format 1 with sales in data format 2 (each
    //! line says which promotions gave its discount). Frozen once released. Variants
    //! and their order are format 1's.

    use kassa_protocol::format::{v1 as data1, v2 as data};
    use kassa_protocol::Kopecks;
    use serde::{Deserialize, Serialize};

    use super::v1;

    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub enum Record {
        Sale { sale: data::Sale, shift: i64 },
        Return { ret: data1::Return, shift: i64 },
        Void { shift: i64, lines: u32, total: Kopecks },
        ShiftOpen { shift: i64, float: Kopecks },
        CashMove { shift: i64, amount: Kopecks, reason: String },
        ShiftClose { shift: i64, report: v1::ShiftReport },
        UserAdded { id: String, name: String, role: v1::Role },
        DrawerOverride { shift: i64, manager: String, in_drawer: Kopecks, amount: Kopecks },
    }
}

pub mod v3 {
    //! Format 3 of the journal's records: format 2's, with stock movements appended.
    //! Frozen once released.

    use kassa_protocol::format::{v1 as data1, v2 as data2, v3 as data};
    use kassa_protocol::Kopecks;
    use serde::{Deserialize, Serialize};

    use super::v1;

    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub enum Record {
        Sale {
            sale: data2::Sale,
            shift: i64,
        },
        Return {
            ret: data1::Return,
            shift: i64,
        },
        Void {
            shift: i64,
            lines: u32,
            total: Kopecks,
        },
        ShiftOpen {
            shift: i64,
            float: Kopecks,
        },
        CashMove {
            shift: i64,
            amount: Kopecks,
            reason: String,
        },
        ShiftClose {
            shift: i64,
            report: v1::ShiftReport,
        },
        UserAdded {
            id: String,
            name: String,
            role: v1::Role,
        },
        DrawerOverride {
            shift: i64,
            manager: String,
            in_drawer: Kopecks,
            amount: Kopecks,
        },
        Movement {
            movement: data::Movement,
        },
        /// Appended in schema 7: a prepaid order handed over, per SKU what left the stock.
        Handover {
            order: u64,
            lines: Vec<(kassa_protocol::Sku, i64)>,
        },
        /// Appended in schema 8: an order placed at this till and paid now.
        Prepayment {
            shift: i64,
            order: data::Order,
            tenders: Vec<data1::Tender>,
            change: Kopecks,
        },
    }
}

// ---- conversions ----

use super::types::{PrintDoc, Record, Role, ShiftReport, TenderTotal, VatLine};

impl From<Role> for v1::Role {
    fn from(r: Role) -> Self {
        match r {
            Role::Cashier => v1::Role::Cashier,
            Role::Manager => v1::Role::Manager,
        }
    }
}

impl From<v1::Role> for Role {
    fn from(r: v1::Role) -> Self {
        match r {
            v1::Role::Cashier => Role::Cashier,
            v1::Role::Manager => Role::Manager,
        }
    }
}

impl From<&ShiftReport> for v1::ShiftReport {
    fn from(r: &ShiftReport) -> Self {
        v1::ShiftReport {
            shift: r.shift,
            terminal: r.terminal,
            opened_by: r.opened_by.clone(),
            opened_at_ms: r.opened_at_ms,
            closed_by: r.closed_by.clone(),
            closed_at_ms: r.closed_at_ms,
            float: r.float,
            sales_count: r.sales_count,
            sales_total: r.sales_total,
            returns_count: r.returns_count,
            returns_total: r.returns_total,
            voids_count: r.voids_count,
            voids_total: r.voids_total,
            tenders: r
                .tenders
                .iter()
                .map(|t| v1::TenderTotal { kind: t.kind.clone(), sales: t.sales, refunds: t.refunds })
                .collect(),
            vat: r
                .vat
                .iter()
                .map(|v| v1::VatLine {
                    rate: v.rate.into(),
                    sales: v.sales,
                    sales_vat: v.sales_vat,
                    returns: v.returns,
                    returns_vat: v.returns_vat,
                })
                .collect(),
            cash_in: r.cash_in,
            cash_out: r.cash_out,
            expected_cash: r.expected_cash,
            counted_cash: r.counted_cash,
            difference: r.difference,
        }
    }
}

impl From<v1::ShiftReport> for ShiftReport {
    fn from(r: v1::ShiftReport) -> Self {
        ShiftReport {
            shift: r.shift,
            terminal: r.terminal,
            opened_by: r.opened_by,
            opened_at_ms: r.opened_at_ms,
            closed_by: r.closed_by,
            closed_at_ms: r.closed_at_ms,
            float: r.float,
            sales_count: r.sales_count,
            sales_total: r.sales_total,
            returns_count: r.returns_count,
            returns_total: r.returns_total,
            voids_count: r.voids_count,
            voids_total: r.voids_total,
            tenders: r
                .tenders
                .into_iter()
                .map(|t| TenderTotal { kind: t.kind, sales: t.sales, refunds: t.refunds })
                .collect(),
            vat: r
                .vat
                .into_iter()
                .map(|v| VatLine {
                    rate: v.rate.into(),
                    sales: v.sales,
                    sales_vat: v.sales_vat,
                    returns: v.returns,
                    returns_vat: v.returns_vat,
                })
                .collect(),
            cash_in: r.cash_in,
            cash_out: r.cash_out,
            expected_cash: r.expected_cash,
            counted_cash: r.counted_cash,
            difference: r.difference,
        }
    }
}

impl From<&Record> for v1::Record {
    fn from(r: &Record) -> Self {
        match r {
            Record::Sale { sale, shift } => v1::Record::Sale { sale: sale.into(), shift: *shift },
            Record::Movement { .. } | Record::Handover { .. } | Record::Prepayment { .. } => {
                unreachable!("movements, handovers and prepayments are written in format 3 only")
            }
            Record::Return { ret, shift } => v1::Record::Return { ret: ret.into(), shift: *shift },
            Record::Void { shift, lines, total } => v1::Record::Void { shift: *shift, lines: *lines, total: *total },
            Record::ShiftOpen { shift, float } => v1::Record::ShiftOpen { shift: *shift, float: *float },
            Record::CashMove { shift, amount, reason } => {
                v1::Record::CashMove { shift: *shift, amount: *amount, reason: reason.clone() }
            }
            Record::ShiftClose { shift, report } => v1::Record::ShiftClose { shift: *shift, report: report.into() },
            Record::UserAdded { id, name, role } => {
                v1::Record::UserAdded { id: id.clone(), name: name.clone(), role: (*role).into() }
            }
            Record::DrawerOverride { shift, manager, in_drawer, amount } => v1::Record::DrawerOverride {
                shift: *shift,
                manager: manager.clone(),
                in_drawer: *in_drawer,
                amount: *amount,
            },
        }
    }
}

impl From<v1::Record> for Record {
    fn from(r: v1::Record) -> Self {
        match r {
            v1::Record::Sale { sale, shift } => Record::Sale { sale: sale.into(), shift },
            v1::Record::Return { ret, shift } => Record::Return { ret: ret.into(), shift },
            v1::Record::Void { shift, lines, total } => Record::Void { shift, lines, total },
            v1::Record::ShiftOpen { shift, float } => Record::ShiftOpen { shift, float },
            v1::Record::CashMove { shift, amount, reason } => Record::CashMove { shift, amount, reason },
            v1::Record::ShiftClose { shift, report } => Record::ShiftClose { shift, report: report.into() },
            v1::Record::UserAdded { id, name, role } => Record::UserAdded { id, name, role: role.into() },
            v1::Record::DrawerOverride { shift, manager, in_drawer, amount } => {
                Record::DrawerOverride { shift, manager, in_drawer, amount }
            }
        }
    }
}

impl From<&Record> for v2::Record {
    fn from(r: &Record) -> Self {
        match r {
            Record::Sale { sale, shift } => v2::Record::Sale { sale: sale.into(), shift: *shift },
            Record::Movement { .. } | Record::Handover { .. } | Record::Prepayment { .. } => {
                unreachable!("movements, handovers and prepayments are written in format 3 only")
            }
            other => match v1::Record::from(other) {
                v1::Record::Sale { .. } => unreachable!("sales are format 2's own"),
                v1::Record::Return { ret, shift } => v2::Record::Return { ret, shift },
                v1::Record::Void { shift, lines, total } => v2::Record::Void { shift, lines, total },
                v1::Record::ShiftOpen { shift, float } => v2::Record::ShiftOpen { shift, float },
                v1::Record::CashMove { shift, amount, reason } => v2::Record::CashMove { shift, amount, reason },
                v1::Record::ShiftClose { shift, report } => v2::Record::ShiftClose { shift, report },
                v1::Record::UserAdded { id, name, role } => v2::Record::UserAdded { id, name, role },
                v1::Record::DrawerOverride { shift, manager, in_drawer, amount } => {
                    v2::Record::DrawerOverride { shift, manager, in_drawer, amount }
                }
            },
        }
    }
}

impl From<v2::Record> for Record {
    fn from(r: v2::Record) -> Self {
        let as_v1 = match r {
            v2::Record::Sale { sale, shift } => return Record::Sale { sale: sale.into(), shift },
            v2::Record::Return { ret, shift } => v1::Record::Return { ret, shift },
            v2::Record::Void { shift, lines, total } => v1::Record::Void { shift, lines, total },
            v2::Record::ShiftOpen { shift, float } => v1::Record::ShiftOpen { shift, float },
            v2::Record::CashMove { shift, amount, reason } => v1::Record::CashMove { shift, amount, reason },
            v2::Record::ShiftClose { shift, report } => v1::Record::ShiftClose { shift, report },
            v2::Record::UserAdded { id, name, role } => v1::Record::UserAdded { id, name, role },
            v2::Record::DrawerOverride { shift, manager, in_drawer, amount } => {
                v1::Record::DrawerOverride { shift, manager, in_drawer, amount }
            }
        };
        as_v1.into()
    }
}

impl From<&Record> for v3::Record {
    fn from(r: &Record) -> Self {
        match r {
            Record::Movement { movement } => v3::Record::Movement { movement: movement.into() },
            Record::Handover { order, lines } => v3::Record::Handover { order: order.0, lines: lines.clone() },
            Record::Prepayment { shift, order, tenders, change } => v3::Record::Prepayment {
                shift: *shift,
                order: order.as_ref().into(),
                tenders: tenders.iter().map(Into::into).collect(),
                change: *change,
            },
            other => match v2::Record::from(other) {
                v2::Record::Sale { sale, shift } => v3::Record::Sale { sale, shift },
                v2::Record::Return { ret, shift } => v3::Record::Return { ret, shift },
                v2::Record::Void { shift, lines, total } => v3::Record::Void { shift, lines, total },
                v2::Record::ShiftOpen { shift, float } => v3::Record::ShiftOpen { shift, float },
                v2::Record::CashMove { shift, amount, reason } => v3::Record::CashMove { shift, amount, reason },
                v2::Record::ShiftClose { shift, report } => v3::Record::ShiftClose { shift, report },
                v2::Record::UserAdded { id, name, role } => v3::Record::UserAdded { id, name, role },
                v2::Record::DrawerOverride { shift, manager, in_drawer, amount } => {
                    v3::Record::DrawerOverride { shift, manager, in_drawer, amount }
                }
            },
        }
    }
}

impl TryFrom<v3::Record> for Record {
    type Error = FormatError;

    fn try_from(r: v3::Record) -> Result<Self, FormatError> {
        let as_v2 = match r {
            v3::Record::Movement { movement } => return Ok(Record::Movement { movement: movement.try_into()? }),
            v3::Record::Handover { order, lines } => {
                return Ok(Record::Handover { order: kassa_protocol::orders::OrderId(order), lines })
            }
            v3::Record::Prepayment { shift, order, tenders, change } => {
                return Ok(Record::Prepayment {
                    shift,
                    order: Box::new(order.try_into()?),
                    tenders: tenders.into_iter().map(Into::into).collect(),
                    change,
                })
            }
            v3::Record::Sale { sale, shift } => v2::Record::Sale { sale, shift },
            v3::Record::Return { ret, shift } => v2::Record::Return { ret, shift },
            v3::Record::Void { shift, lines, total } => v2::Record::Void { shift, lines, total },
            v3::Record::ShiftOpen { shift, float } => v2::Record::ShiftOpen { shift, float },
            v3::Record::CashMove { shift, amount, reason } => v2::Record::CashMove { shift, amount, reason },
            v3::Record::ShiftClose { shift, report } => v2::Record::ShiftClose { shift, report },
            v3::Record::UserAdded { id, name, role } => v2::Record::UserAdded { id, name, role },
            v3::Record::DrawerOverride { shift, manager, in_drawer, amount } => {
                v2::Record::DrawerOverride { shift, manager, in_drawer, amount }
            }
        };
        Ok(as_v2.into())
    }
}

/// A record's body in the current format ([`RECORD_FORMAT`]).
pub fn encode_record(record: &Record) -> Vec<u8> {
    data::encode(&v3::Record::from(record))
}

/// A record's body in its stored `format`.
pub fn decode_record(body: &[u8], format: Option<u32>, seq: i64) -> Result<Record, JournalError> {
    let what = format!("record {seq}");
    Ok(match version(format, RECORD_FORMAT, &what)? {
        1 => data::decode::<v1::Record>(body, "record").map_err(corrupt(what))?.into(),
        2 => data::decode::<v2::Record>(body, "record").map_err(corrupt(what))?.into(),
        _ => data::decode::<v3::Record>(body, "record").and_then(Record::try_from).map_err(corrupt(what))?,
    })
}

/// An outbox entry in the current format ([`OUTBOX_FORMAT`]).
pub fn encode_outbox(entry: &kassa_protocol::wire::OutboxEntry) -> Vec<u8> {
    data::encode(&kassa_protocol::format::v3::OutboxEntry::from(entry))
}

/// An outbox entry in its stored `format`.
pub fn decode_outbox(blob: &[u8], format: Option<u32>) -> Result<kassa_protocol::wire::OutboxEntry, JournalError> {
    let what = "outbox entry";
    Ok(match version(format, OUTBOX_FORMAT, what)? {
        1 => data::decode::<data::OutboxEntry>(blob, what).map_err(corrupt("outbox".into()))?.into(),
        2 => data::decode::<kassa_protocol::format::v2::OutboxEntry>(blob, what)
            .map_err(corrupt("outbox".into()))?
            .into(),
        _ => data::decode::<kassa_protocol::format::v3::OutboxEntry>(blob, what)
            .and_then(TryInto::try_into)
            .map_err(corrupt("outbox".into()))?,
    })
}

/// An inbound document as the store keeps it (data format 3).
pub fn encode_inbound(doc: &kassa_protocol::movements::Inbound) -> Vec<u8> {
    data::encode(&kassa_protocol::format::v3::Inbound::from(doc))
}

pub fn decode_inbound(blob: &[u8], format: u32) -> Result<kassa_protocol::movements::Inbound, JournalError> {
    let what = "inbound document";
    if format != INBOUND_FORMAT {
        return Err(JournalError::Corrupt(format!("{what} in data format {format}, not {INBOUND_FORMAT}")));
    }
    data::decode::<kassa_protocol::format::v3::Inbound>(blob, what)
        .and_then(TryInto::try_into)
        .map_err(corrupt(what.into()))
}

/// An order as the store keeps it (data format 3, as HQ sent it).
pub const ORDER_FORMAT: u32 = 3;

pub fn encode_order(order: &kassa_protocol::orders::Order) -> Vec<u8> {
    data::encode(&kassa_protocol::format::v3::Order::from(order))
}

pub fn decode_order(blob: &[u8], format: u32) -> Result<kassa_protocol::orders::Order, JournalError> {
    let what = "order";
    if format != ORDER_FORMAT {
        return Err(JournalError::Corrupt(format!("{what} in data format {format}, not {ORDER_FORMAT}")));
    }
    data::decode::<kassa_protocol::format::v3::Order>(blob, what)
        .and_then(TryInto::try_into)
        .map_err(corrupt(what.into()))
}

/// A print job's document in the current format.
pub fn encode_print_doc(doc: &PrintDoc) -> Vec<u8> {
    let stored = match doc {
        PrintDoc::Doc { seq } => v1::PrintDoc::Doc { seq: *seq },
        PrintDoc::Report { report, closing } => {
            v1::PrintDoc::Report { report: Box::new(report.as_ref().into()), closing: *closing }
        }
        PrintDoc::Order { order, handover } => v1::PrintDoc::Order { order: order.0, handover: *handover },
        PrintDoc::Prepayment { record } => v1::PrintDoc::Prepayment { record: *record },
    };
    data::encode(&stored)
}

/// A print job's document in its stored `format`.
pub fn decode_print_doc(blob: &[u8], format: Option<u32>, id: i64) -> Result<PrintDoc, JournalError> {
    let what = format!("print job {id}");
    version(format, PRINT_JOB_FORMAT, &what)?;
    Ok(match data::decode::<v1::PrintDoc>(blob, "print job").map_err(corrupt(what))? {
        v1::PrintDoc::Doc { seq } => PrintDoc::Doc { seq },
        v1::PrintDoc::Report { report, closing } => PrintDoc::Report { report: Box::new((*report).into()), closing },
        v1::PrintDoc::Prepayment { record } => PrintDoc::Prepayment { record },
        v1::PrintDoc::Order { order, handover } => {
            PrintDoc::Order { order: kassa_protocol::orders::OrderId(order), handover }
        }
    })
}

/// A shift report kept as an idempotency key's answer (JSON of format 1).
pub fn report_to_json(report: &ShiftReport) -> String {
    serde_json::to_string(&v1::ShiftReport::from(report)).expect("plain data serialises")
}

pub fn report_from_json(json: &str) -> Result<ShiftReport, JournalError> {
    serde_json::from_str::<v1::ShiftReport>(json)
        .map(Into::into)
        .map_err(|e| JournalError::Corrupt(format!("stored shift report: {e}")))
}

/// A sale or return kept whole as JSON by the first release's idempotency keys.
pub fn legacy_sale_json(json: &str) -> Result<kassa_protocol::sale::Sale, JournalError> {
    serde_json::from_str::<data::Sale>(json)
        .map(Into::into)
        .map_err(|e| JournalError::Corrupt(format!("stored sale: {e}")))
}

pub fn legacy_return_json(json: &str) -> Result<kassa_protocol::returns::Return, JournalError> {
    serde_json::from_str::<data::Return>(json)
        .map(Into::into)
        .map_err(|e| JournalError::Corrupt(format!("stored return: {e}")))
}
