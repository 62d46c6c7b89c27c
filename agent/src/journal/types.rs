//! The journal's own types, which every other journal module may use and which use
//! none of them: the records of the chain, shift reports, users and print jobs.

use kassa_protocol::catalog::VatRate;
use kassa_protocol::returns::Return;
use kassa_protocol::sale::Sale;
use kassa_protocol::Kopecks;
use serde::{Deserialize, Serialize};

/// One journal record. Appended, never changed. Stored as its format (see
/// [`super::format`](super::format)), never as this type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Sale {
        sale: Sale,
        shift: i64,
    },
    Return {
        ret: Return,
        shift: i64,
    },
    /// An open basket abandoned by the cashier.
    Void {
        shift: i64,
        lines: u32,
        total: Kopecks,
    },
    ShiftOpen {
        shift: i64,
        float: Kopecks,
    },
    /// Cash put into (positive) or taken out of (negative) the drawer.
    CashMove {
        shift: i64,
        amount: Kopecks,
        reason: String,
    },
    ShiftClose {
        shift: i64,
        report: ShiftReport,
    },
    UserAdded {
        id: String,
        name: String,
        role: Role,
    },
    /// A manager let more cash leave the drawer (a refund or a cash-out) than the shift's
    /// figures say it holds. Appended right after the record it allowed.
    DrawerOverride {
        shift: i64,
        manager: String,
        in_drawer: Kopecks,
        amount: Kopecks,
    },
    /// Stock received, counted, written off or transferred (record format 3 on).
    Movement {
        movement: kassa_protocol::movements::Movement,
    },
    /// A prepaid order handed over: what left the stock, per SKU (record format 3 on; an
    /// order paid at pickup is a `Sale`).
    Handover {
        order: kassa_protocol::orders::OrderId,
        lines: Vec<(kassa_protocol::Sku, i64)>,
    },
    /// An order this till placed for pickup (here or at another store), paid now: money
    /// taken, no stock moved (the pickup store hands it over as prepaid). Record format 3
    /// on, journal schema 8.
    Prepayment {
        shift: i64,
        order: Box<kassa_protocol::orders::Order>,
        tenders: Vec<kassa_protocol::sale::Tender>,
        change: Kopecks,
    },
}

impl Record {
    pub fn kind(&self) -> &'static str {
        match self {
            Record::Sale { .. } => "sale",
            Record::Return { .. } => "return",
            Record::Void { .. } => "void",
            Record::ShiftOpen { .. } => "shift_open",
            Record::CashMove { .. } => "cash_move",
            Record::ShiftClose { .. } => "shift_close",
            Record::UserAdded { .. } => "user_added",
            Record::DrawerOverride { .. } => "drawer_override",
            Record::Movement { .. } => "movement",
            Record::Handover { .. } => "handover",
            Record::Prepayment { .. } => "prepayment",
        }
    }
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Cashier,
    Manager,
}

impl Role {
    pub fn code(self) -> &'static str {
        match self {
            Role::Cashier => "cashier",
            Role::Manager => "manager",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "cashier" => Some(Role::Cashier),
            "manager" => Some(Role::Manager),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    pub name: String,
    pub role: Role,
}

/// What a print job prints (stored as its format, see [`super::format`](super::format)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrintDoc {
    /// A sale or return receipt, by its sequence number.
    Doc { seq: u64 },
    /// An X (`closing == false`) or Z report.
    Report { report: Box<ShiftReport>, closing: bool },
    /// An order's picking list, or (`handover`) the slip of its handover.
    Order { order: kassa_protocol::orders::OrderId, handover: bool },
    /// The receipt of an order's prepayment, by its record.
    Prepayment { record: u64 },
}

/// What the spooler renders.
#[derive(Debug, Clone)]
pub enum Printable {
    Sale(Sale),
    Return(Return),
    Report {
        report: Box<ShiftReport>,
        closing: bool,
    },
    /// A picking list (`taken == None`) or the slip of a handover: what was taken of
    /// each line.
    Order {
        order: Box<kassa_protocol::orders::Order>,
        taken: Option<Vec<i64>>,
    },
    /// The receipt of an order paid now at this till: its number is the record's.
    Prepayment(Box<Prepaid>),
}

/// An order's prepayment as its receipt shows it.
#[derive(Debug, Clone)]
pub struct Prepaid {
    pub record: u64,
    pub order: kassa_protocol::orders::Order,
    pub tenders: Vec<kassa_protocol::sale::Tender>,
    pub change: Kopecks,
    pub terminal: u16,
    pub cashier: String,
    pub at_ms: i64,
}

#[derive(Debug, Clone)]
pub struct PrintJob {
    pub id: i64,
    pub printable: Printable,
    /// Reprints and receipts cut short are marked as copies.
    pub copy: bool,
    /// What the receipt says beside the document, read when it is printed.
    pub extras: PrintExtras,
}

/// What a receipt prints that its document does not hold: the cashier's name (the
/// document keeps the login), the receipt number of the sale a return returns, and the
/// customer's points balance after a sale.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrintExtras {
    pub cashier_name: Option<String>,
    pub original_receipt: Option<String>,
    pub points_balance: Option<i64>,
    /// The code a sale's receipt carries, signed by the store's key (the spooler
    /// sets it; `None`: the plain `KASSA:<store>:<seq>`).
    pub receipt_code: Option<String>,
}
