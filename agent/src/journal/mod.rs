//! The store's journal: SQLite, the store's source of truth.
//!
//! **Architecture invariant:** only this module issues SQL in the agent. A sale, its
//! stock counter changes, its outbox entry, its print job and its hash-chained record
//! commit in one transaction; the cashier hears "done" only after that commit. Nothing
//! is ever updated in place or deleted: a cancellation is a reversal record.
//!
//! # Layout
//! The modules use each other in one direction only, from the top of this list down
//! (`agent/tests/tidy.rs` checks it); this file holds the SQL helpers and errors all use.
//! - `types`: the journal's own types — records, shift reports, users, print jobs.
//! - `format`: the bytes they are stored as, by format version.
//! - `chain`: the append-only, hash-chained `records` table and `verify`.
//! - `outbox`: changes for HQ, in sequence order. `print_queue`: jobs for the spooler.
//! - `users`: cashiers and managers, PINs hashed with Argon2id, lockouts per source.
//! - `loyalty`: customers, points and rules at the store. `promotions`: the set HQ
//!   published, kept whole by version, and HQ's price schedule, likewise.
//!   `return_terms`: the stores' receipt keys and HQ's limits on offline returns of
//!   other stores' receipts.
//!   `history`: which sales and returns carried a customer's card (the customer's
//!   history here, shown offline).
//! - `shifts`: shifts, cash in/out, X and Z reports, the drawer check.
//! - `sales`: sales, returns, cancellations, voids, and the stock counters they move.
//! - `stock`: movements other than sales (receipts, counts, write-offs, transfers) and
//!   the inbound documents HQ sends.
//! - `orders`: orders for pickup here — kept, reserved, picked, handed over (a sale
//!   when paid at pickup), expired or cancelled.
//! - `aisle`: orders this till placed for pickup and paid now — the prepayment (money
//!   in, no stock moved) or the customer's refusal, each told to HQ.
//! - `handle`: the async road to all of it ([`JournalHandle`]); `open_basket`: the open
//!   basket's own file.
//!
//! Every refusal is a variant with a stable code ([`Refusal`]): [`WriteError`],
//! [`AuthError`], [`JournalError`], and the protocol's errors they carry.

mod aisle;
mod chain;
pub mod format;
mod handle;
mod history;
mod loyalty;
mod open_basket;
mod orders;
mod outbox;
mod print_queue;
mod promotions;
mod return_terms;
mod sales;
mod shifts;
mod stock;
mod types;
mod users;

use std::path::Path;
use std::sync::Mutex;

use kassa_protocol::catalog::{CatalogItem, Unit, VatRate};
use kassa_protocol::gtin::Gtin;
use kassa_protocol::loyalty::{AccountError, CustomerError, PointsError};
use kassa_protocol::movements::MovementError;
use kassa_protocol::returns::ReturnError;
use kassa_protocol::sale::PaymentError;
use kassa_protocol::{ActorId, Kopecks, Sku, StoreId};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

pub use aisle::Prepayment;
pub use chain::VerifyReport;
pub use handle::JournalHandle;
pub use open_basket::{BasketStore, ParkedBasket, PARKED_BASKETS_MAX};
pub use orders::{Collected, OrderView};
pub use sales::{DocSummary, LoyaltyUse, OfflineSale, ReturnRequest, SHIFT_DOCS_MAX};
pub use stock::{CountReport, CountReportLine, CountScope, MovementRequest, StockLevel, WRITE_OFF_UNAPPROVED_MAX};
pub use types::{
    Prepaid, PrintDoc, PrintExtras, PrintJob, Printable, Record, Role, ShiftReport, TenderTotal, User, VatLine,
};
pub use users::{lockout_ms, AuthError, LOCKOUT_MAX_MS, LOCKOUT_MS, PIN_ATTEMPTS_MAX};

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal database: {0}")]
    Sqlite(rusqlite::Error),
    /// The disk (or the file system's quota) is full: nothing was written. Free space;
    /// the till goes on where it stopped.
    #[error("the disk is full: the journal cannot write ({0})")]
    DiskFull(rusqlite::Error),
    #[error("this journal belongs to store {found}, not {expected}")]
    WrongStore { expected: StoreId, found: StoreId },
    #[error("journal record is corrupt: {0}")]
    Corrupt(String),
    #[error(
        "{file}'s schema is version {found}, newer than this program knows ({known}): \
         run the newer kassa-agent; the file was not touched"
    )]
    TooNew { file: &'static str, found: u32, known: u32 },
}

impl From<rusqlite::Error> for JournalError {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DiskFull) => JournalError::DiskFull(e),
            _ => JournalError::Sqlite(e),
        }
    }
}

/// A refusal (or a failure) the cashier API reports by a stable code: the page turns
/// each code into words in the cashier's language, with what to do next, and
/// `agent/tests/refusal_codes.rs` checks that it has words for every code. A code never
/// changes its meaning; several variants may share one when the cashier's advice is the
/// same.
pub trait Refusal {
    /// This refusal's code.
    fn code(&self) -> &'static str;
    /// Every code [`Refusal::code`] can return.
    fn codes() -> Vec<&'static str>;
}

/// Implements [`Refusal`] from one list: `pattern => "code"` arms, then `delegate`
/// variants (one field, itself a [`Refusal`]). The match has no catch-all, so a variant
/// added without a code does not compile, and `codes` lists every arm.
macro_rules! refusal_codes {
    ($ty:ty { $($pat:pat => $code:literal,)* } $(delegate { $($variant:path => $inner:ty,)* })?) => {
        impl $crate::journal::Refusal for $ty {
            fn code(&self) -> &'static str {
                match self {
                    $($pat => $code,)*
                    $($($variant(inner) => $crate::journal::Refusal::code(inner),)*)?
                }
            }

            fn codes() -> Vec<&'static str> {
                #[allow(unused_mut)]
                let mut codes: Vec<&'static str> = vec![$($code),*];
                $($(codes.extend(<$inner as $crate::journal::Refusal>::codes());)*)?
                codes
            }
        }
    };
}
pub(crate) use refusal_codes;

refusal_codes! {
    JournalError {
        JournalError::DiskFull(_) => "disk_full",
        JournalError::Sqlite(_) | JournalError::WrongStore { .. } | JournalError::Corrupt(_) | JournalError::TooNew { .. } =>
            "internal",
    }
}

/// Refusals of a write, each with a message a cashier understands and a stable code
/// ([`Refusal`]). Nothing is written when one of these is returned.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Payment(#[from] PaymentError),
    #[error(transparent)]
    Return(#[from] ReturnError),
    #[error("an idempotency key is 1 to {IDEMPOTENCY_KEY_LEN_MAX} characters: letters, digits, `-`, `_`, `.` or `:`")]
    IdempotencyKey,
    #[error("this idempotency key was already used for a different request: send a new key for a new request")]
    KeyReuse,
    /// A cash refund or cash-out beyond what the drawer holds, without a manager's
    /// override.
    #[error("only {in_drawer} in the drawer, {needed} needed: a manager can override")]
    DrawerShort { in_drawer: Kopecks, needed: Kopecks },
    /// An amount typed at the till beyond its documented bound.
    #[error("{what} must be at most {max}")]
    AmountTooLarge { what: &'static str, max: Kopecks },
    /// An amount computed from what was typed (a quantity times a price) beyond `i64`.
    #[error("the amount is too large")]
    Overflow,
    /// The basket changed since the cashier asked to pay it (a scan slipped in).
    #[error("the basket changed: check it and pay again")]
    BasketChanged,
    #[error("no shift is open on this terminal: open a shift first")]
    NoShift,
    #[error("a shift is already open on this terminal")]
    ShiftOpen,
    #[error("the float cannot be negative")]
    NegativeFloat,
    #[error("the amount of a cash movement cannot be zero")]
    ZeroCashAmount,
    #[error("give a reason of 1 to {REASON_LEN_MAX_CHARS} characters", REASON_LEN_MAX_CHARS = shifts::REASON_LEN_MAX_CHARS)]
    CashReason,
    #[error("counted cash cannot be negative")]
    NegativeCounted,
    #[error("no sale or receipt {0}")]
    NoSuchSale(String),
    #[error("sale {0} was already cancelled")]
    AlreadyCancelled(String),
    /// A write-off above the limit, or goods received that nobody announced.
    #[error("a manager must approve {0}")]
    NeedsManager(&'static str),
    #[error(transparent)]
    Movement(#[from] kassa_protocol::movements::MovementError),
    #[error("no delivery or transfer {0} is expected here")]
    NoSuchInbound(String),
    #[error("{0} was already received")]
    AlreadyReceived(String),
    #[error("no stock count {0}")]
    NoSuchCount(u64),
    #[error("stock count {0} was already posted")]
    CountPosted(u64),
    #[error("{max} stock counts are open: post or finish one first", max = stock::OPEN_COUNTS_MAX)]
    TooManyCounts,
    /// A SKU outside the categories a count covers.
    #[error("{0} is not among what this count covers")]
    OutOfCount(Sku),
    /// A return without a receipt names a SKU the catalog does not have.
    #[error("unknown SKU {0}")]
    UnknownSku(Sku),
    /// More points than this store may spend now; `message` says what can be.
    #[error("{message}")]
    Points { message: String, spendable_now: i64 },
    #[error("points need a loyalty customer")]
    PointsNeedCustomer,
    #[error("points pay in steps of {step}")]
    PointsStep { step: Kopecks },
    #[error(transparent)]
    Loyalty(#[from] PointsError),
    #[error("points: {0}")]
    LoyaltyAccount(AccountError),
    #[error(transparent)]
    Customer(#[from] CustomerError),
    #[error("this phone already has card {card}")]
    PhoneTaken { card: String },
    /// A refund without a receipt goes back in cash or to a card, never in points.
    #[error("a refund without a receipt goes back in cash or to a card")]
    RefundMethod,
    #[error("no order {0} is held at this store")]
    NoSuchOrder(kassa_protocol::orders::OrderId),
    #[error(transparent)]
    OrderStep(#[from] kassa_protocol::orders::StepError),
    #[error(transparent)]
    Handover(#[from] kassa_protocol::orders::HandoverError),
    #[error("order {0} was paid online: hand it over without taking money")]
    OrderPrepaid(kassa_protocol::orders::OrderId),
    /// An order placed at this till was paid here already.
    #[error("order {0} is paid already")]
    OrderPaid(kassa_protocol::orders::OrderId),
    /// The customer refused to pay order {0}: HQ cancels it.
    #[error("order {0} was refused by its customer and is cancelled")]
    OrderAbandoned(kassa_protocol::orders::OrderId),
    /// Another store's sale with a loyalty card whose receipt was signed without its
    /// points (proof format 1) is returned while HQ is reachable: the receipt proves
    /// that a card was used, not the points the lines earned.
    #[error(
        "another store's receipt with a loyalty card, signed without its points, is returned while HQ is reachable"
    )]
    ReturnElsewhereLoyalty,
    /// Offline, another store's receipt is refunded only within HQ's limits.
    #[error(transparent)]
    OfflineLimit(#[from] kassa_protocol::returns::OfflineLimit),
    /// A marked unit's code is not on the receipt's proof: offline, another store's
    /// marked goods are not taken back.
    #[error("line {0} is a marked unit: another store's marked goods are returned when HQ is reachable")]
    MarkedOffline(u32),
    /// Points pay a sale of their customer, not an order's prepayment.
    #[error("an order paid now takes cash or a card, not points")]
    PrepaymentInPoints,
    #[error("a user id is 1 to 32 letters, digits, - or _")]
    BadUserId,
    #[error("a name is 1 to 64 characters")]
    BadUserName,
    #[error("a PIN is 4 to 8 digits")]
    BadPin,
    #[error("user {0} exists")]
    UserExists(String),
    #[error("cannot hash the PIN: {0}")]
    PinHash(String),
    /// A record about to be written fails its own checks: a bug, nothing written.
    #[error("refused to write an inconsistent record: {0}")]
    Inconsistent(String),
    #[error(transparent)]
    Journal(#[from] JournalError),
}

refusal_codes! {
    WriteError {
        WriteError::IdempotencyKey => "idempotency_key",
        WriteError::KeyReuse => "key_reuse",
        WriteError::DrawerShort { .. } => "drawer_short",
        WriteError::AmountTooLarge { .. } => "amount_too_large",
        WriteError::Overflow => "overflow",
        WriteError::BasketChanged => "basket_changed",
        WriteError::NoShift => "no_shift",
        WriteError::ShiftOpen => "shift_open",
        WriteError::NegativeFloat => "negative_float",
        WriteError::ZeroCashAmount => "zero_cash_amount",
        WriteError::CashReason => "bad_cash_reason",
        WriteError::NegativeCounted => "negative_counted_cash",
        WriteError::NoSuchSale(_) => "no_such_sale",
        WriteError::AlreadyCancelled(_) => "already_cancelled",
        WriteError::NeedsManager(_) => "needs_manager",
        WriteError::NoSuchInbound(_) => "no_such_inbound",
        WriteError::AlreadyReceived(_) => "already_received",
        WriteError::NoSuchCount(_) => "no_such_count",
        WriteError::CountPosted(_) => "count_posted",
        WriteError::TooManyCounts => "too_many_counts",
        WriteError::OutOfCount(_) => "count_out_of_scope",
        WriteError::UnknownSku(_) => "unknown_sku",
        WriteError::Points { .. } => "points_not_available",
        WriteError::PointsNeedCustomer => "points_need_customer",
        WriteError::PointsStep { .. } => "points_step",
        WriteError::LoyaltyAccount(_) => "points_account",
        WriteError::PhoneTaken { .. } => "phone_has_card",
        WriteError::NoSuchOrder(_) => "no_such_order",
        WriteError::RefundMethod => "bad_refund_method",
        WriteError::OrderPrepaid(_) => "order_prepaid",
        WriteError::OrderPaid(_) => "order_paid",
        WriteError::OrderAbandoned(_) => "order_abandoned",
        WriteError::PrepaymentInPoints => "prepayment_in_points",
        WriteError::ReturnElsewhereLoyalty => "return_elsewhere_loyalty",
        WriteError::OfflineLimit(kassa_protocol::returns::OfflineLimit::Receipt { .. }) => "offline_limit_receipt",
        WriteError::OfflineLimit(kassa_protocol::returns::OfflineLimit::Shift { .. }) => "offline_limit_shift",
        WriteError::MarkedOffline(_) => "marked_offline",
        WriteError::BadUserId => "bad_user_id",
        WriteError::BadUserName => "bad_user_name",
        WriteError::BadPin => "bad_pin_format",
        WriteError::UserExists(_) => "user_exists",
        WriteError::PinHash(_) | WriteError::Inconsistent(_) => "internal",
    }
    delegate {
        WriteError::Payment => PaymentError,
        WriteError::Return => ReturnError,
        WriteError::Loyalty => PointsError,
        WriteError::Customer => CustomerError,
        WriteError::Movement => MovementError,
        WriteError::OrderStep => kassa_protocol::orders::StepError,
        WriteError::Handover => kassa_protocol::orders::HandoverError,
        WriteError::Journal => JournalError,
    }
}

refusal_codes! {
    MovementError {
        MovementError::Empty => "movement_empty",
        MovementError::TooManyLines => "movement_too_many_lines",
        MovementError::DuplicateSku(_) => "movement_duplicate_sku",
        MovementError::Quantity { .. } => "movement_quantity",
        MovementError::Direction { .. } => "movement_direction",
        MovementError::Note => "movement_note",
        MovementError::TransferToSelf => "transfer_to_self",
    }
}

refusal_codes! {
    kassa_protocol::orders::StepError {
        kassa_protocol::orders::StepError::Final { .. } => "order_final",
        kassa_protocol::orders::StepError::Backwards { .. } => "order_backwards",
        kassa_protocol::orders::StepError::Expired { .. } => "order_expired",
    }
}

refusal_codes! {
    kassa_protocol::orders::HandoverError {
        kassa_protocol::orders::HandoverError::Final { .. } => "order_final",
        kassa_protocol::orders::HandoverError::Lines { .. } => "handover_lines",
        kassa_protocol::orders::HandoverError::Quantity { .. } => "handover_quantity",
        kassa_protocol::orders::HandoverError::Nothing => "handover_nothing",
    }
}

refusal_codes! {
    PaymentError {
        PaymentError::EmptyBasket => "empty_basket",
        PaymentError::Short { .. } => "payment_short",
        PaymentError::CardOverpaid { .. } => "card_overpaid",
        PaymentError::NonPositiveTender => "bad_tender",
        PaymentError::Overflow => "overflow",
        PaymentError::ChangeTooLarge { .. } => "change_too_large",
    }
}

refusal_codes! {
    ReturnError {
        ReturnError::NoSuchLine(_) => "return_no_such_line",
        ReturnError::OverReturn { .. } => "over_return",
        ReturnError::Quantity => "return_quantity",
        ReturnError::Empty => "return_empty",
        ReturnError::Duplicate => "return_duplicate_line",
    }
}

refusal_codes! {
    PointsError {
        PointsError::Negative => "points_negative",
        PointsError::OverShare { .. } => "points_over_share",
        PointsError::OverEligible { .. } => "points_over_eligible",
        PointsError::Overflow => "overflow",
        PointsError::Mismatch => "points_mismatch",
    }
}

refusal_codes! {
    CustomerError {
        CustomerError::CardNumber => "bad_card_number",
        CustomerError::Phone => "bad_phone",
        CustomerError::Name => "bad_customer_name",
        CustomerError::NumbersExhausted { .. } => "card_numbers_exhausted",
    }
}

impl From<rusqlite::Error> for WriteError {
    fn from(e: rusqlite::Error) -> Self {
        WriteError::Journal(e.into())
    }
}

pub const IDEMPOTENCY_KEY_LEN_MAX: usize = 128;

/// The one rule for every write's idempotency key, at the till and in the journal: 1 to
/// [`IDEMPOTENCY_KEY_LEN_MAX`] characters, ASCII letters, digits, `-`, `_`, `.` or `:`
/// (a UUID fits).
pub fn check_key(key: &str) -> Result<(), WriteError> {
    let ok = !key.is_empty()
        && key.len() <= IDEMPOTENCY_KEY_LEN_MAX
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    if ok {
        Ok(())
    } else {
        Err(WriteError::IdempotencyKey)
    }
}

/// What identifies a request under its idempotency key: SHA-256 of the operation's name
/// and its parameters (as JSON). The same key with another request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestDigest(pub [u8; 32]);

impl RequestDigest {
    pub fn of<T: Serialize + ?Sized>(op: &str, request: &T) -> RequestDigest {
        use sha2::Digest as _;
        let mut h = sha2::Sha256::new();
        h.update(op.as_bytes());
        h.update([0]);
        // Serialising plain data to JSON cannot fail; a failure would hash as empty.
        h.update(serde_json::to_vec(request).unwrap_or_default());
        RequestDigest(h.finalize().into())
    }
}

/// The amounts a person types, bounded (see ARCHITECTURE.md, "Limits").
pub mod limits {
    use kassa_protocol::Kopecks;

    /// A cash float, a cash-in or a cash-out: 10 million ₽.
    pub const CASH_AMOUNT_MAX: Kopecks = Kopecks(1_000_000_000);
    /// Cash counted at the close of a shift.
    pub const COUNTED_CASH_MAX: Kopecks = CASH_AMOUNT_MAX;
}

/// Prepared statements kept per connection (see [`exec`]).
const STATEMENT_CACHE_CAPACITY: usize = 128;

#[derive(Debug)]
pub struct Journal {
    store: StoreId,
    actor: ActorId,
    conn: Mutex<Db>,
}

/// The connection, and what is kept beside it under the same lock.
#[derive(Debug)]
struct Db {
    conn: Connection,
    /// Every print job below this id is done, so the oldest pending job is found by a
    /// rowid range scan from here rather than through an index of job states, which was
    /// one more B-tree page in every sale's commit. It holds because a job is added
    /// above the highest id (rowids, nothing deleted) and never goes back from done to
    /// pending; it only moves up, to a pending job found with everything below it done.
    /// Another process printing or queueing jobs cannot break it either.
    print_low: i64,
}

impl std::ops::Deref for Db {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        &self.conn
    }
}

impl std::ops::DerefMut for Db {
    fn deref_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS catalog (
    sku TEXT PRIMARY KEY, gtin TEXT UNIQUE, name TEXT NOT NULL, category TEXT NOT NULL,
    price_kopecks INTEGER NOT NULL, vat TEXT NOT NULL, unit TEXT NOT NULL, plu INTEGER UNIQUE
) STRICT;
CREATE TABLE IF NOT EXISTS records (
    seq INTEGER PRIMARY KEY, kind TEXT NOT NULL, terminal INTEGER NOT NULL, user_id TEXT NOT NULL,
    at_ms INTEGER NOT NULL, body BLOB NOT NULL, prev_hash BLOB NOT NULL, hash BLOB NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS users (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, role TEXT NOT NULL CHECK (role IN ('cashier', 'manager')),
    pin_hash TEXT NOT NULL, failed_attempts INTEGER NOT NULL DEFAULT 0, locked_until_ms INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE TABLE IF NOT EXISTS shifts (
    id INTEGER PRIMARY KEY, terminal INTEGER NOT NULL, opened_by TEXT NOT NULL, opened_at_ms INTEGER NOT NULL,
    float_kopecks INTEGER NOT NULL, closed_record INTEGER REFERENCES records(seq)
) STRICT;
CREATE UNIQUE INDEX IF NOT EXISTS one_open_shift ON shifts (terminal) WHERE closed_record IS NULL;
-- receipt_no is the store, terminal and receipt_number as text (sale::receipt_no), so
-- UNIQUE (terminal, receipt_number) makes it unique. Journals created before also have
-- a unique index on the text itself; in new ones that index would be one more B-tree
-- page in every sale's commit, and receipts are found by terminal and number instead.
CREATE TABLE IF NOT EXISTS docs (
    seq INTEGER PRIMARY KEY, record_seq INTEGER NOT NULL UNIQUE REFERENCES records(seq),
    kind TEXT NOT NULL CHECK (kind IN ('sale', 'return')), receipt_no TEXT NOT NULL,
    terminal INTEGER NOT NULL, receipt_number INTEGER NOT NULL, shift_id INTEGER NOT NULL REFERENCES shifts(id),
    total_kopecks INTEGER NOT NULL, sale_seq INTEGER REFERENCES docs(seq), cancels INTEGER NOT NULL DEFAULT 0,
    UNIQUE (terminal, receipt_number)
) STRICT;
-- Returns by the sale they return. Partial: a sale (sale_seq NULL) adds no entry, and
-- the queries' `sale_seq = ?` implies NOT NULL, so the planner still uses it. It
-- replaces the full index on the column that older journals have.
CREATE INDEX IF NOT EXISTS docs_returns_by_sale ON docs (sale_seq) WHERE sale_seq IS NOT NULL;
DROP INDEX IF EXISTS docs_by_sale;
-- WITHOUT ROWID (here and below, for tables keyed by their primary key alone): the rows
-- live in the primary key's B-tree, so a write touches one B-tree, not a table and its
-- key index, and every B-tree page a sale touches is another page in its commit.
-- Journals created before keep rowid tables: same columns and constraints, same SQL.
CREATE TABLE IF NOT EXISTS doc_lines (
    seq INTEGER NOT NULL REFERENCES docs(seq), line_no INTEGER NOT NULL, sale_line INTEGER, sku TEXT NOT NULL,
    quantity INTEGER NOT NULL, amount_kopecks INTEGER NOT NULL, vat TEXT NOT NULL, PRIMARY KEY (seq, line_no)
) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS doc_tenders (
    seq INTEGER NOT NULL REFERENCES docs(seq), idx INTEGER NOT NULL, kind TEXT NOT NULL,
    amount_kopecks INTEGER NOT NULL, PRIMARY KEY (seq, idx)
) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cash_moves (
    record_seq INTEGER PRIMARY KEY REFERENCES records(seq), shift_id INTEGER NOT NULL REFERENCES shifts(id),
    amount_kopecks INTEGER NOT NULL, reason TEXT NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS voids (
    record_seq INTEGER PRIMARY KEY REFERENCES records(seq), shift_id INTEGER NOT NULL REFERENCES shifts(id),
    total_kopecks INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS idempotency (
    key TEXT PRIMARY KEY, op TEXT NOT NULL, response TEXT NOT NULL
) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS stock_counters (
    sku TEXT NOT NULL, actor_store INTEGER NOT NULL, actor_epoch INTEGER NOT NULL,
    p INTEGER NOT NULL CHECK (p >= 0), n INTEGER NOT NULL CHECK (n >= 0),
    PRIMARY KEY (sku, actor_store, actor_epoch)
) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS nearby_stock (
    store INTEGER NOT NULL, sku TEXT NOT NULL, quantity INTEGER NOT NULL, PRIMARY KEY (store, sku)
) STRICT;
CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY, entry BLOB NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS print_jobs (
    id INTEGER PRIMARY KEY, doc BLOB NOT NULL, copy INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'done')), created_at_ms INTEGER NOT NULL,
    printed_at_ms INTEGER
) STRICT;
-- Pending jobs are found without an index (see Db::print_low); older journals had one.
DROP INDEX IF EXISTS print_jobs_pending;
";

/// The journal's schema version, kept in `PRAGMA user_version`. Version 1 is [`SCHEMA`]
/// as first released (`user_version` 0 in files of that release); each later version
/// is one step of [`MIGRATIONS`].
pub const SCHEMA_VERSION: u32 = 12;

/// Steps from version `n - 1` to `n`, run at start in one transaction after a copy of
/// the file is kept beside it (`journal.sqlite.v{old}.bak`).
const MIGRATIONS: &[(u32, &str)] = &[
    (
        2,
        // Idempotency keys remember their request; sales the basket they paid; failed PINs
        // are counted per user and per source (the page's address), and lockouts logged.
        "ALTER TABLE idempotency ADD COLUMN request_digest BLOB;
     ALTER TABLE docs ADD COLUMN basket_id INTEGER;
     CREATE TABLE auth_failures (
         user_id TEXT NOT NULL, source TEXT NOT NULL, failures INTEGER NOT NULL, lockouts INTEGER NOT NULL,
         locked_until_ms INTEGER NOT NULL, PRIMARY KEY (user_id, source)
     ) STRICT, WITHOUT ROWID;
     CREATE TABLE lockouts (
         id INTEGER PRIMARY KEY, user_id TEXT NOT NULL, source TEXT NOT NULL, at_ms INTEGER NOT NULL,
         until_ms INTEGER NOT NULL
     ) STRICT;",
    ),
    (
        3,
        // Every stored blob says its format (see `format`); rows written before have
        // NULL there: format 1.
        "ALTER TABLE records ADD COLUMN format INTEGER;
         ALTER TABLE outbox ADD COLUMN format INTEGER;
         ALTER TABLE print_jobs ADD COLUMN format INTEGER;",
    ),
    (
        4,
        // HQ's promotions, kept by the store (definition format 1, JSON). Records and
        // outbox entries are written in format 2 from here (sale lines with their
        // promotions): an older binary refuses the file rather than meet rows it cannot
        // read.
        "CREATE TABLE promotions (id INTEGER PRIMARY KEY, definition TEXT NOT NULL) STRICT;",
    ),
    (
        5,
        // Stock movements (see `stock`): each is a record in the chain (format 3 from
        // here) with its query rows; `source` names what it received or posted
        // (`delivery:N`, `transfer:SSSS-MN`, `count:N`), so an inbound document or a
        // count is done when a movement names it. Inbound documents HQ sent, kept once
        // (data format 3); stock counts, their scans (appended, never edited) and the
        // book quantity of each SKU when it was first counted.
        "CREATE TABLE movements (
             seq INTEGER PRIMARY KEY, record_seq INTEGER NOT NULL UNIQUE REFERENCES records(seq),
             reason TEXT NOT NULL, source TEXT UNIQUE, at_ms INTEGER NOT NULL
         ) STRICT;
         CREATE TABLE movement_lines (
             seq INTEGER NOT NULL REFERENCES movements(seq), sku TEXT NOT NULL, quantity INTEGER NOT NULL,
             expected INTEGER, PRIMARY KEY (seq, sku)
         ) STRICT, WITHOUT ROWID;
         CREATE TABLE inbound (
             source TEXT PRIMARY KEY, doc BLOB NOT NULL, format INTEGER NOT NULL, arrived_at_ms INTEGER NOT NULL
         ) STRICT;
         CREATE TABLE counts (
             id INTEGER PRIMARY KEY, started_by TEXT NOT NULL, started_at_ms INTEGER NOT NULL, categories TEXT
         ) STRICT;
         CREATE TABLE count_scans (
             count_id INTEGER NOT NULL REFERENCES counts(id), idx INTEGER NOT NULL, sku TEXT NOT NULL,
             quantity INTEGER NOT NULL, by_user TEXT NOT NULL, at_ms INTEGER NOT NULL, PRIMARY KEY (count_id, idx)
         ) STRICT, WITHOUT ROWID;
         CREATE TABLE count_book (
             count_id INTEGER NOT NULL REFERENCES counts(id), sku TEXT NOT NULL, book INTEGER NOT NULL,
             PRIMARY KEY (count_id, sku)
         ) STRICT, WITHOUT ROWID;",
    ),
    (
        6,
        // The promotions each customer has had (see `loyalty::record_promotions`), so
        // that a single-use coupon is honoured once per customer.
        // And HQ's price schedule (`promotions::set_price_schedule`): each change's local
        // time as minutes since 1970-01-01 00:00, the version in `meta`.
        "CREATE TABLE customer_promotions (
             card TEXT NOT NULL, promotion INTEGER NOT NULL, PRIMARY KEY (card, promotion)
         ) STRICT, WITHOUT ROWID;
         CREATE TABLE price_schedule (
             sku TEXT NOT NULL, at_minute INTEGER NOT NULL, price_kopecks INTEGER NOT NULL,
             PRIMARY KEY (sku, at_minute)
         ) STRICT, WITHOUT ROWID;",
    ),
    (
        7,
        // Orders for pickup here (`orders`): each kept once as HQ sent it (data format 3),
        // its lines by SKU for reservations, and what happened to it as events appended
        // in order — its state is the highest event (`rank` is `OrderState`'s order), so
        // nothing is updated in place; at most one handover per order.
        "CREATE TABLE orders (
             id INTEGER PRIMARY KEY, body BLOB NOT NULL, format INTEGER NOT NULL, phone TEXT,
             expires_at_ms INTEGER NOT NULL, received_at_ms INTEGER NOT NULL
         ) STRICT;
         CREATE INDEX orders_phone ON orders(phone) WHERE phone IS NOT NULL;
         CREATE TABLE order_lines (
             order_id INTEGER NOT NULL REFERENCES orders(id), line INTEGER NOT NULL, sku TEXT NOT NULL,
             quantity INTEGER NOT NULL, PRIMARY KEY (order_id, line)
         ) STRICT, WITHOUT ROWID;
         CREATE INDEX order_lines_sku ON order_lines(sku);
         CREATE TABLE order_events (
             order_id INTEGER NOT NULL REFERENCES orders(id), rank INTEGER NOT NULL, state TEXT NOT NULL,
             at_ms INTEGER NOT NULL, by_user TEXT NOT NULL, taken TEXT, sale_seq INTEGER,
             PRIMARY KEY (order_id, rank)
         ) STRICT, WITHOUT ROWID;",
    ),
    (
        8,
        // Orders this till placed for pickup and took the money for now (`aisle`):
        // prepayments with their tenders and VAT for the shift's reports, and the orders
        // whose customer did not pay.
        aisle::SCHEMA_V8,
    ),
    (
        9,
        // Returns anywhere: each return with a receipt names its sale by store (a sale
        // of another store too), with the receipt's number and the outbox entry that
        // carries the return to HQ — so that the till adds its own returns HQ has not yet
        // acknowledged to what HQ says was returned of a sale.
        "CREATE TABLE return_refs (
             doc_seq INTEGER PRIMARY KEY REFERENCES docs(seq), sale_store INTEGER NOT NULL,
             sale_seq INTEGER NOT NULL, sale_receipt_no TEXT NOT NULL, outbox_seq INTEGER NOT NULL
         ) STRICT;
         CREATE INDEX return_refs_by_sale ON return_refs (sale_store, sale_seq);",
    ),
    (
        10,
        // Signed receipts: the stores' receipt keys HQ publishes, and what each return
        // of another store's receipt refunded offline (`return_terms`).
        return_terms::SCHEMA_V10,
    ),
    (
        11,
        // Return rights: whether a return was made under a claim HQ holds (HQ's figures
        // count it until it arrives, so the till does not count it again).
        "ALTER TABLE return_refs ADD COLUMN claimed INTEGER NOT NULL DEFAULT 0;",
    ),
    (
        12,
        // One customer: which sales and returns carried a customer's card
        // (`history`), so the till shows a customer's purchases here offline. Its
        // own step fills it from the records already held.
        history::SCHEMA_V12,
    ),
];

/// Brings the file to [`SCHEMA_VERSION`]: creates a new journal, or migrates an older
/// one (after keeping a copy of it).
fn migrate(conn: &Connection, path: &Path) -> Result<(), JournalError> {
    let version: u32 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let fresh: i64 = conn.query_row("SELECT COUNT(*) FROM sqlite_master", [], |r| r.get(0))?;
    let from = version.max(1);
    if from == SCHEMA_VERSION {
        return Ok(());
    }
    if fresh > 0 {
        let backup = path.with_extension(format!("sqlite.v{from}.bak"));
        if !backup.exists() {
            conn.execute("VACUUM INTO ?1", [backup.display().to_string()])?;
        }
        tracing::info!(from, to = SCHEMA_VERSION, backup = %backup.display(), "migrating the journal");
    }
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let result = (|| {
        conn.execute_batch(SCHEMA)?;
        conn.execute_batch(loyalty::SCHEMA)?;
        for (to, sql) in MIGRATIONS.iter().filter(|(to, _)| *to > from) {
            conn.execute_batch(sql)?;
            if *to == 12 && fresh > 0 {
                history::backfill(conn)?;
            }
            conn.pragma_update(None, "user_version", to)?;
        }
        conn.execute_batch("COMMIT")
    })();
    if result.is_err() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    Ok(result?)
}

fn item_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<CatalogItem> {
    let corrupt = |what: &str| rusqlite::Error::InvalidColumnName(format!("corrupt catalog {what}"));
    let gtin: Option<String> = row.get(1)?;
    Ok(CatalogItem {
        sku: Sku::parse(&row.get::<_, String>(0)?).ok_or_else(|| corrupt("sku"))?,
        gtin: gtin.map(|g| Gtin::parse(&g)).transpose().map_err(|_| corrupt("gtin"))?,
        name: row.get(2)?,
        category: row.get(3)?,
        price: Kopecks(row.get(4)?),
        vat: VatRate::parse(&row.get::<_, String>(5)?).ok_or_else(|| corrupt("vat"))?,
        unit: Unit::parse(&row.get::<_, String>(6)?).ok_or_else(|| corrupt("unit"))?,
        plu: row.get(7)?,
    })
}

const ITEM_COLUMNS: &str = "sku, gtin, name, category, price_kopecks, vat, unit, plu";

/// Items returned by a name search at most.
pub const SEARCH_RESULTS_MAX: usize = 20;

impl Journal {
    /// Opens (or creates) the journal of `store`.
    pub fn open(path: &Path, store: StoreId) -> Result<Journal, JournalError> {
        let conn = Connection::open(path)?;
        // A file from a newer release is refused before anything (even a pragma) writes.
        let version: u32 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version > SCHEMA_VERSION {
            return Err(JournalError::TooNew { file: "the journal", found: version, known: SCHEMA_VERSION });
        }
        // Explicit pragmas: WAL for concurrent readers; FULL so a commit the cashier was
        // told about survives power loss; foreign keys on (SQLite's default is off).
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // A sale alone runs over a dozen distinct statements, returns and reports more;
        // rusqlite's default of 16 cached statements would evict them from each other.
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE_CAPACITY);
        migrate(&conn, path)?;
        let found = meta(&conn, "store")?;
        if found == 0 {
            set_meta(&conn, "store", u64::from(store.0))?;
            set_meta(&conn, "epoch", 1)?;
        } else if found != u64::from(store.0) {
            return Err(JournalError::WrongStore { expected: store, found: StoreId(found as u32) });
        }
        let epoch = meta(&conn, "epoch")? as u32;
        // Once per start, a scan of the jobs' states (see `Db::print_low`).
        let print_low = conn.query_row(
            "SELECT COALESCE(MIN(id), (SELECT COALESCE(MAX(id), 0) + 1 FROM print_jobs)) FROM print_jobs
             WHERE state = 'pending'",
            [],
            |r| r.get(0),
        )?;
        Ok(Journal { store, actor: ActorId { store, epoch }, conn: Mutex::new(Db { conn, print_low }) })
    }

    pub fn store(&self) -> StoreId {
        self.store
    }

    pub fn actor(&self) -> ActorId {
        self.actor
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Db> {
        // An open transaction rolls back when its guard unwinds, so the connection is
        // consistent even if a holder panicked.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn catalog_version(&self) -> Result<u64, JournalError> {
        meta(&self.conn(), "catalog_version")
    }

    /// Replaces the catalog with HQ's version `version`, in one transaction.
    pub fn apply_catalog(&self, version: u64, items: &[CatalogItem]) -> Result<(), JournalError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        if meta(&tx, "catalog_version")? >= version {
            return Ok(());
        }
        tx.execute("DELETE FROM catalog", [])?;
        {
            let mut ins =
                tx.prepare(&format!("INSERT INTO catalog ({ITEM_COLUMNS}) VALUES (?1,?2,?3,?4,?5,?6,?7,?8)"))?;
            for i in items {
                ins.execute(params![
                    i.sku.as_str(),
                    i.gtin.map(|g| g.as_gtin14().to_owned()),
                    i.name,
                    i.category,
                    i.price.0,
                    i.vat.code(),
                    i.unit.code(),
                    i.plu
                ])?;
            }
        }
        set_meta(&tx, "catalog_version", version)?;
        tx.commit()?;
        Ok(())
    }

    pub fn item_by_gtin(&self, gtin: &Gtin) -> Result<Option<CatalogItem>, JournalError> {
        let sql = format!("SELECT {ITEM_COLUMNS} FROM catalog WHERE gtin = ?1");
        Ok(self.conn().query_row(&sql, [gtin.as_gtin14()], item_from_row).optional()?)
    }

    pub fn item_by_plu(&self, plu: u32) -> Result<Option<CatalogItem>, JournalError> {
        let sql = format!("SELECT {ITEM_COLUMNS} FROM catalog WHERE plu = ?1");
        Ok(self.conn().query_row(&sql, [plu], item_from_row).optional()?)
    }

    pub fn item_by_sku(&self, sku: &Sku) -> Result<Option<CatalogItem>, JournalError> {
        let sql = format!("SELECT {ITEM_COLUMNS} FROM catalog WHERE sku = ?1");
        Ok(self.conn().query_row(&sql, [sku.as_str()], item_from_row).optional()?)
    }

    /// Items whose name contains `text` (case-insensitive for Cyrillic too).
    pub fn search(&self, text: &str) -> Result<Vec<CatalogItem>, JournalError> {
        let needle = text.trim().to_lowercase();
        if needle.is_empty() {
            return Ok(Vec::new());
        }
        // Up to five digits is a PLU, typed for a weighed item without a label.
        if needle.len() <= 5 && needle.bytes().all(|b| b.is_ascii_digit()) {
            let plu: u32 = needle.parse().expect("digits");
            return Ok(self.item_by_plu(plu)?.into_iter().collect());
        }
        // SQLite's LIKE folds only ASCII case; the catalog is small enough to filter here.
        let conn = self.conn();
        let mut st = conn.prepare_cached(&format!("SELECT {ITEM_COLUMNS} FROM catalog ORDER BY name"))?;
        let items = st.query_map([], item_from_row)?;
        let mut out = Vec::new();
        for item in items {
            let item = item?;
            if item.name.to_lowercase().contains(&needle) {
                out.push(item);
                if out.len() == SEARCH_RESULTS_MAX {
                    break;
                }
            }
        }
        Ok(out)
    }

    pub fn catalog_len(&self) -> Result<u64, JournalError> {
        Ok(self.conn().query_row("SELECT COUNT(*) FROM catalog", [], |r| r.get::<_, i64>(0))? as u64)
    }

    pub fn outbox_head(&self) -> Result<u64, JournalError> {
        outbox::outbox_head(&self.conn())
    }

    pub fn acked_seq(&self) -> Result<u64, JournalError> {
        meta(&self.conn(), "acked_seq")
    }

    /// Outbox entries after `after`, at most `max`, in sequence order.
    pub fn outbox_after(&self, after: u64, max: usize) -> Result<Vec<kassa_protocol::wire::OutboxEntry>, JournalError> {
        let conn = self.conn();
        let mut st = conn.prepare_cached("SELECT entry, format FROM outbox WHERE seq > ?1 ORDER BY seq LIMIT ?2")?;
        let rows = st.query_map(params![after as i64, max as i64], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get(1)?)))?;
        rows.map(|row| {
            let (blob, f) = row?;
            format::decode_outbox(&blob, f)
        })
        .collect()
    }

    /// Records HQ's acknowledgement. Outbox rows are kept (they are the store's own
    /// record of what it sent); only the cursor moves.
    pub fn set_acked(&self, upto: u64) -> Result<(), JournalError> {
        self.conn().execute(
            "INSERT INTO meta (key, value) VALUES ('acked_seq', ?1) ON CONFLICT DO UPDATE SET value = MAX(value, excluded.value)",
            [upto as i64],
        )?;
        Ok(())
    }

    /// Max-merges counter entries of other actors (HQ's deliveries) into our stock.
    /// Our own actor's totals are ours alone and never taken from outside.
    pub fn merge_counters(&self, entries: &[kassa_protocol::stock::CounterEntry]) -> Result<(), JournalError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        for c in entries.iter().filter(|c| c.location == self.store && c.actor != self.actor && c.is_valid()) {
            tx.execute(
                "INSERT INTO stock_counters (sku, actor_store, actor_epoch, p, n) VALUES (?1,?2,?3,?4,?5)
                 ON CONFLICT DO UPDATE SET p = MAX(p, excluded.p), n = MAX(n, excluded.n)",
                params![c.sku.as_str(), c.actor.store.0, c.actor.epoch, c.p, c.n],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Replaces the view of nearby stores' stock with HQ's latest.
    pub fn set_nearby_stock(
        &self,
        as_of_ms: i64,
        entries: &[kassa_protocol::wire::NearbyStock],
    ) -> Result<(), JournalError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute("DELETE FROM nearby_stock", [])?;
        for e in entries.iter().filter(|e| e.store != self.store) {
            tx.execute(
                "INSERT OR REPLACE INTO nearby_stock (store, sku, quantity) VALUES (?1, ?2, ?3)",
                params![e.store.0, e.sku.as_str(), e.quantity],
            )?;
        }
        set_meta(&tx, "nearby_as_of_ms", as_of_ms.max(0) as u64)?;
        tx.commit()?;
        Ok(())
    }

    /// Stock of `sku` at the nearby stores, and when HQ computed it (0: never).
    pub fn nearby_stock(&self, sku: &Sku) -> Result<(Vec<(u32, i64)>, i64), JournalError> {
        let conn = self.conn();
        let mut st = conn.prepare_cached("SELECT store, quantity FROM nearby_stock WHERE sku = ?1 ORDER BY store")?;
        let rows = st.query_map([sku.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<Result<Vec<_>, _>>()?;
        Ok((rows, meta(&conn, "nearby_as_of_ms")? as i64))
    }

    /// Every counter entry of this store's stock (all actors), for anti-entropy.
    pub fn counters(&self) -> Result<Vec<kassa_protocol::stock::CounterEntry>, JournalError> {
        let conn = self.conn();
        let mut st = conn.prepare("SELECT sku, actor_store, actor_epoch, p, n FROM stock_counters ORDER BY sku")?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, u32>(1)?,
                r.get::<_, u32>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
            ))
        })?;
        rows.map(|row| {
            let (sku, store, epoch, p, n) = row?;
            Ok(kassa_protocol::stock::CounterEntry {
                location: self.store,
                sku: Sku::parse(&sku).ok_or_else(|| JournalError::Corrupt(format!("sku {sku}")))?,
                actor: ActorId { store: StoreId(store), epoch },
                p,
                n,
            })
        })
        .collect()
    }

    /// The store's stock of `sku`: the sum over actors of `p − n`. May be negative: an
    /// oversell is a fact to report, not a sale to refuse.
    pub fn stock(&self, sku: &Sku) -> Result<i64, JournalError> {
        Ok(self.conn().query_row(
            "SELECT COALESCE(SUM(p - n), 0) FROM stock_counters WHERE sku = ?1",
            [sku.as_str()],
            |r| r.get(0),
        )?)
    }
}

/// An operation's answer as kept under its idempotency key, to be given again when the
/// key comes back.
trait Response: Sized {
    fn to_stored(&self) -> Result<String, JournalError>;
    fn from_stored(conn: &Connection, stored: &str) -> Result<Self, JournalError>;
}

/// Shift reports are kept whole, as JSON of their stored format.
impl Response for ShiftReport {
    fn to_stored(&self) -> Result<String, JournalError> {
        Ok(format::report_to_json(self))
    }

    fn from_stored(_: &Connection, stored: &str) -> Result<Self, JournalError> {
        format::report_from_json(stored)
    }
}

/// Runs `op` in one transaction under an idempotency key: a key seen before with the
/// same request returns the stored response and writes nothing; with another request
/// (another operation, or other parameters) it is refused. Keys stored before requests
/// had digests are compared by operation only.
fn idempotent<T: Response>(
    conn: &Connection,
    key: &str,
    op: &str,
    digest: RequestDigest,
    f: impl FnOnce(&Connection) -> Result<T, WriteError>,
) -> Result<(T, bool), WriteError> {
    check_key(key)?;
    let tx = Immediate::begin(conn)?;
    let seen: Option<(String, String, Option<Vec<u8>>)> =
        query_row(&tx, "SELECT op, response, request_digest FROM idempotency WHERE key = ?1", [key], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .optional()?;
    if let Some((seen_op, response, seen_digest)) = seen {
        if seen_op != op || seen_digest.is_some_and(|d| d != digest.0) {
            return Err(WriteError::KeyReuse);
        }
        let value = T::from_stored(&tx, &response)
            .map_err(|e| JournalError::Corrupt(format!("stored response of {key}: {e}")))?;
        return Ok((value, true));
    }
    let value = f(&tx)?;
    let response = value.to_stored()?;
    exec(
        &tx,
        "INSERT INTO idempotency (key, op, response, request_digest) VALUES (?1, ?2, ?3, ?4)",
        params![key, op, response, &digest.0[..]],
    )?;
    tx.commit()?;
    Ok((value, false))
}

/// An IMMEDIATE transaction: the write lock is taken before the first read (a deferred
/// transaction that read first would fail outright, not wait, if another connection,
/// say `kassa-agent users add`, committed before its first write). BEGIN and COMMIT go
/// through the statement cache like every statement of a sale. Dropped uncommitted (an
/// error, a panic), it rolls back.
struct Immediate<'c>(&'c Connection);

impl<'c> Immediate<'c> {
    fn begin(conn: &'c Connection) -> rusqlite::Result<Self> {
        exec(conn, "BEGIN IMMEDIATE", [])?;
        Ok(Immediate(conn))
    }

    fn commit(self) -> rusqlite::Result<()> {
        exec(self.0, "COMMIT", [])?;
        Ok(())
    }
}

impl std::ops::Deref for Immediate<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        self.0
    }
}

impl Drop for Immediate<'_> {
    fn drop(&mut self) {
        // After COMMIT the connection is back in autocommit mode: nothing to undo. A
        // failed ROLLBACK is ignored, as rusqlite's Transaction does: there is no caller
        // left to tell, and the next BEGIN on the connection fails loudly.
        if !self.0.is_autocommit() {
            let _ = self.0.execute_batch("ROLLBACK");
        }
    }
}

/// `execute` through the statement cache: the sale's transaction runs the same few
/// dozen statements every time, and preparing them anew each time was half its cost.
/// An order, and what its handover took of each line (once handed over).
type OrderAndTaken = (kassa_protocol::orders::Order, Option<Vec<i64>>);

/// Order `id` as the store keeps it, and what its handover took (if it was handed
/// over); read here because print jobs (in `sales`) and `orders` both need it.
fn order_and_handover(
    conn: &Connection,
    id: kassa_protocol::orders::OrderId,
) -> Result<Option<OrderAndTaken>, JournalError> {
    let row: Option<(Vec<u8>, u32, Option<String>)> = query_row(
        conn,
        "SELECT o.body, o.format, e.taken FROM orders o
         LEFT JOIN order_events e ON e.order_id = o.id AND e.state = 'collected' WHERE o.id = ?1",
        [id.0 as i64],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
    .optional()?;
    let Some((body, f, taken)) = row else { return Ok(None) };
    let order = format::decode_order(&body, f)?;
    let taken = taken
        .map(|t| serde_json::from_str(&t))
        .transpose()
        .map_err(|e| JournalError::Corrupt(format!("handover of order {id}: {e}")))?;
    Ok(Some((order, taken)))
}

fn exec<P: rusqlite::Params>(conn: &Connection, sql: &str, params: P) -> rusqlite::Result<usize> {
    conn.prepare_cached(sql)?.execute(params)
}

/// `query_row` through the statement cache (see [`exec`]).
fn query_row<T, P: rusqlite::Params>(
    conn: &Connection,
    sql: &str,
    params: P,
    f: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    conn.prepare_cached(sql)?.query_row(params, f)
}

/// Rows per multi-row INSERT: a typical basket's lines go in one statement, and the
/// statement cache holds at most this many variants (one per row count) of each.
const ROWS_PER_INSERT: usize = 8;

/// `{head} VALUES (?,…),(?,…)… {tail}`: `rows` rows of `arity` parameters each.
fn multi_row_sql(head: &str, arity: usize, rows: usize, tail: &str) -> String {
    let row = format!("({})", vec!["?"; arity].join(","));
    format!("{head} VALUES {} {tail}", vec![row.as_str(); rows].join(","))
}

fn meta(conn: &Connection, key: &str) -> Result<u64, JournalError> {
    let v: Option<i64> = query_row(conn, "SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0)).optional()?;
    Ok(v.unwrap_or(0) as u64)
}

fn set_meta(conn: &Connection, key: &str, value: u64) -> Result<(), JournalError> {
    exec(
        conn,
        "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT DO UPDATE SET value = excluded.value",
        params![key, value as i64],
    )?;
    Ok(())
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, JournalError> {
    postcard::to_allocvec(value).map_err(|e| JournalError::Corrupt(e.to_string()))
}

#[cfg(test)]
mod tests;
