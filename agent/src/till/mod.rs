//! The till of one terminal: who is logged in, the open basket, and every cashier
//! action, each turned into journal calls and page events.
//!
//! Every change is published as a [`TillEvent`] to the cashier page (server-sent
//! events), so a scan shows without a reload. The open basket lives in memory; it is
//! not a sale until paid. A task in `lib.rs` saves it after every change (from these
//! events) and [`Till::restore`] puts it back after a restart.
//!
//! # Layout
//! One type, [`Till`], whose methods the API calls; they live with the part of the
//! till they belong to:
//! - this file: the façade — [`Till`], its configuration and links, the events it
//!   publishes and everything it refuses ([`TillError`] and its codes);
//! - `sessions`: who is logged in — login, logout, a session's user, a manager's
//!   approval;
//! - `basket`: the open basket — changes all or nothing under an idempotency key,
//!   pricing with the promotions in force, voids, restore after a restart;
//! - `scan`: what a scanned or typed code means (an item, a weighed or marked item, a
//!   receipt, a loyalty card) and putting it in the basket;
//! - `customer`: the loyalty customer on the basket, their points offer, and rights
//!   asked of HQ;
//! - `payments`: paying the basket, returns, reprints;
//! - `shifts`: opening and closing a shift, cash moves, the X report.
//! - `stock`: receipts, write-offs, transfers and counts; `orders`: orders for pickup —
//!   moving one on and handing it over.
//!
//! The parts use this file and `basket`; none uses another part's types otherwise.

mod basket;
mod customer;
mod orders;
mod parked;
mod payments;
pub use payments::ElsewhereSale;
mod scan;
mod sessions;
mod shifts;
mod stock;

use std::sync::Arc;

use kassa_hardware::barcode::{RejectReason, ScanRules};
use kassa_protocol::basket::{Basket, BasketError, Totals};
use kassa_protocol::returns::Return;
use kassa_protocol::sale::Sale;
use tokio::sync::{broadcast, watch, Mutex};

use crate::journal::{refusal_codes, AuthError, Journal, JournalError, Refusal, ShiftReport, WriteError};

use basket::OpenBasket;
use sessions::Sessions;

pub use crate::clock::now_ms;
pub use basket::{OpKey, BASKET_KEYS_MAX};
pub use sessions::{SESSIONS_MAX, SESSION_IDLE_MS};

/// Events buffered per page; a page that falls further behind skips to the next
/// (whole-basket) event.
pub const EVENTS_QUEUE_MAX: usize = 256;

/// What the till publishes. Not the page's format: the API turns each event into
/// `api::view::EventView` before it leaves the agent.
#[derive(Debug, Clone)]
pub enum TillEvent {
    Basket {
        basket: Basket,
        totals: Option<Totals>,
        customer: Option<CustomerView>,
    },
    /// A scan the till refused: the frame (escaped), why ([`Refusal::code`] of the
    /// [`TillError`]), and the English message for logs and technicians.
    ScanRejected {
        code: String,
        reason_code: &'static str,
        reason: String,
    },
    /// A receipt's code was scanned: the page offers a return of that sale.
    ReceiptScanned {
        seq: u64,
    },
    /// Another store's receipt was scanned: the page offers a return of it by `code`.
    ElsewhereReceiptScanned {
        code: String,
    },
    /// An order's pickup code was scanned (or typed): the page opens the order.
    OrderScanned {
        order: u64,
    },
    SaleCommitted {
        sale: Sale,
    },
    ReturnCommitted {
        ret: Return,
    },
    Shift {
        report: Option<ShiftReport>,
    },
    Status {
        status: crate::status::Status,
    },
}

/// The basket's loyalty customer as the cashier sees them (on the page as
/// `api::view::BasketCustomerView`).
#[derive(Debug, Clone)]
pub struct CustomerView {
    pub card: String,
    pub name: Option<String>,
    pub balance: i64,
    /// Points the rules allow for this basket.
    pub allowed: i64,
    /// Points this store can spend without asking HQ.
    pub spendable_now: i64,
    pub point_value_kopecks: i64,
    /// What limits the offer, in words ("342 of 500 points can be spent while offline").
    pub message: String,
    /// What limits the offer, for the page to say in the cashier's language.
    pub limit: kassa_protocol::loyalty::OfferLimit,
    /// The largest share of the basket points may pay.
    pub max_share_percent: u8,
}

/// Everything the till refuses, each with a stable code ([`Refusal`]) the page turns into
/// words and advice.
#[derive(Debug, thiserror::Error)]
pub enum TillError {
    #[error("unknown barcode {0}: not in the catalog")]
    UnknownBarcode(String),
    #[error("unknown weighed item PLU {0}")]
    UnknownPlu(u32),
    #[error("unknown SKU {0}")]
    UnknownSku(String),
    /// A frame the scan rules refuse.
    #[error(transparent)]
    Scan(#[from] RejectReason),
    /// A GS1 label of an item sold by weight without its net weight (310n).
    #[error("a weighed item's label without weight")]
    NoWeight,
    #[error("a GS1 code without a product number (01)")]
    NoProductNumber,
    #[error("no catalog yet: the store has not reached HQ since it was installed")]
    NoCatalog,
    #[error("log in first")]
    NotLoggedIn,
    #[error("this needs a manager's approval")]
    NeedsManager,
    #[error("no such customer: check the card or phone number")]
    NoSuchCustomer,
    #[error("{max} baskets are parked already: recall one first", max = crate::journal::PARKED_BASKETS_MAX)]
    TooManyParked,
    #[error("no parked basket {0}")]
    NoSuchParked(u32),
    /// A parked basket is recalled onto an empty counter only.
    #[error("finish or park the basket on the till first")]
    BasketNotEmpty,
    /// Ordering for another store (or this one) needs HQ, which is not reachable now.
    #[error("HQ is not reachable: an order can be placed only while the store is online")]
    OrderNeedsHq,
    /// HQ refused the till's order: it cannot be covered.
    #[error("{0}")]
    OrderNotAvailable(String),
    /// HQ refused the till's order for another reason (its words).
    #[error("{0}")]
    OrderRefused(String),
    /// A receipt of another store is returned only while HQ is reachable (it knows what
    /// every store already returned of the sale).
    #[error("HQ is not reachable: this receipt of another store can be returned only while the store is online")]
    ReturnNeedsHq,
    /// Another store's receipt that does not prove itself (offline) or is forged.
    #[error(transparent)]
    Receipt(#[from] kassa_protocol::receipt_proof::ProofError),
    /// No order placed at this till awaits its payment by this number (never placed
    /// here, paid, refused, or placed before a restart).
    #[error("order {0} does not await a payment at this till")]
    NotAwaitingPayment(kassa_protocol::orders::OrderId),
    /// The payment of an order placed here is taken soon after HQ placed it, or not at
    /// all (HQ cancels an order whose payment does not come).
    #[error("order {0} waited too long for its payment: place it again")]
    PaymentTooLate(kassa_protocol::orders::OrderId),
    #[error(transparent)]
    Order(#[from] kassa_protocol::orders::OrderError),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Basket(#[from] BasketError),
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error(transparent)]
    Journal(#[from] JournalError),
}

refusal_codes! {
    TillError {
        TillError::UnknownBarcode(_) => "unknown_barcode",
        TillError::UnknownPlu(_) => "unknown_plu",
        TillError::UnknownSku(_) => "unknown_sku",
        TillError::NoWeight => "scan_no_weight",
        TillError::NoProductNumber => "scan_no_gtin",
        TillError::NoCatalog => "no_catalog",
        TillError::NotLoggedIn => "not_logged_in",
        TillError::NeedsManager => "needs_manager",
        TillError::NoSuchCustomer => "no_such_customer",
        TillError::TooManyParked => "too_many_parked",
        TillError::NoSuchParked(_) => "no_such_parked",
        TillError::BasketNotEmpty => "basket_not_empty",
        TillError::OrderNeedsHq => "order_needs_hq",
        TillError::OrderNotAvailable(_) => "order_not_available",
        TillError::OrderRefused(_) => "order_refused",
        TillError::ReturnNeedsHq => "return_needs_hq",
        TillError::Receipt(kassa_protocol::receipt_proof::ProofError::Unsigned) => "return_needs_hq",
        TillError::Receipt(kassa_protocol::receipt_proof::ProofError::Malformed(_)) => "receipt_damaged",
        TillError::Receipt(kassa_protocol::receipt_proof::ProofError::UnknownStore(_)) => "receipt_store_unknown",
        TillError::Receipt(kassa_protocol::receipt_proof::ProofError::Forged) => "receipt_forged",
        TillError::NotAwaitingPayment(_) => "order_not_awaiting_payment",
        TillError::PaymentTooLate(_) => "order_payment_too_late",
        TillError::Order(_) => "bad_order",
    }
    delegate {
        TillError::Scan => RejectReason,
        TillError::Auth => AuthError,
        TillError::Basket => BasketError,
        TillError::Write => WriteError,
        TillError::Journal => JournalError,
    }
}

refusal_codes! {
    BasketError {
        BasketError::Quantity => "quantity",
        BasketError::Full => "basket_full",
        BasketError::NoSuchLine(_) => "no_such_line",
        BasketError::Overflow => "overflow",
        BasketError::Price => "bad_price",
        BasketError::Discount => "bad_discount",
        BasketError::DuplicateMarking => "duplicate_marking",
        BasketError::MarkedQuantity => "marked_quantity",
        BasketError::Coupon => "bad_coupon",
    }
}

/// The scanner's reasons keep their codes where `kassa_hardware` defines them.
impl Refusal for RejectReason {
    fn code(&self) -> &'static str {
        RejectReason::code(self)
    }

    fn codes() -> Vec<&'static str> {
        RejectReason::ALL_CODES.to_vec()
    }
}

/// What a till is set up with.
#[derive(Debug, Clone)]
pub struct TillConfig {
    pub terminal: u16,
    pub scan_rules: ScanRules,
    /// The store's offset from UTC: promotions' hours and days are the store's.
    pub utc_offset_minutes: i32,
    /// What a cashier does alone, and what needs a manager.
    pub limits: crate::config::Limits,
}

/// Orders placed at the till to be paid now, by number: the order, when HQ placed it, and
/// whether it was paid.
type UnpaidOrders = std::collections::BTreeMap<
    kassa_protocol::orders::OrderId,
    (kassa_protocol::orders::Order, std::time::Instant, bool),
>;

/// The till's connections to the rest of the agent.
#[derive(Debug)]
pub struct TillLinks {
    /// Bumped after each commit that wrote to the outbox; the sync client watches it.
    pub outbox_changed: watch::Sender<u64>,
    /// Wakes the print spooler.
    pub print_wake: std::sync::mpsc::SyncSender<()>,
    /// Asks HQ for spending rights through the sync connection.
    pub rights: crate::sync_client::HqRequestSender,
    /// Whether HQ is reachable (the sync client keeps the status board).
    pub status: watch::Receiver<crate::status::Status>,
    /// The promotions in force (the sync client sends each new set).
    pub promotions: crate::promotions::Receiver,
    /// The basket file, where parked baskets wait.
    pub baskets: Arc<crate::journal::BasketStore>,
}

#[derive(Debug)]
pub struct Till {
    pub terminal: u16,
    journal: Arc<Journal>,
    rules: ScanRules,
    utc_offset_minutes: i32,
    limits: crate::config::Limits,
    promotions: crate::promotions::Receiver,
    baskets: Arc<crate::journal::BasketStore>,
    basket: Mutex<OpenBasket>,
    sessions: Sessions,
    events: broadcast::Sender<TillEvent>,
    /// Bumped after each commit that wrote to the outbox; the sync client watches it.
    outbox_changed: watch::Sender<u64>,
    /// Wakes the print spooler.
    print_wake: std::sync::mpsc::SyncSender<()>,
    /// Asks HQ for spending rights through the sync connection.
    rights: crate::sync_client::HqRequestSender,
    rights_request_id: std::sync::atomic::AtomicU64,
    /// Orders this till placed to be paid now, awaiting the payment: each with when HQ
    /// placed it (memory: after a restart HQ's wait cancels them).
    unpaid_orders: std::sync::Mutex<UnpaidOrders>,
    /// Whether HQ is reachable (the sync client keeps the status board).
    status: watch::Receiver<crate::status::Status>,
    /// Sale commits, timed in [`Till::pay`] (shown by `/metrics`).
    pub sale_commit_seconds: prometheus_client::metrics::histogram::Histogram,
}

impl Till {
    pub fn new(config: TillConfig, journal: Arc<Journal>, links: TillLinks) -> Self {
        let TillConfig { terminal, scan_rules: rules, utc_offset_minutes, limits } = config;
        let TillLinks { outbox_changed, print_wake, rights, status, promotions, baskets } = links;
        Till {
            terminal,
            rules,
            utc_offset_minutes,
            limits,
            promotions,
            baskets,
            journal,
            // Numbered from 1 (`restore` continues after the journal's last one).
            basket: Mutex::new(OpenBasket { basket: Basket::new(1), ..OpenBasket::default() }),
            sessions: Sessions::default(),
            events: broadcast::channel(EVENTS_QUEUE_MAX).0,
            outbox_changed,
            print_wake,
            rights,
            rights_request_id: std::sync::atomic::AtomicU64::new(1),
            unpaid_orders: std::sync::Mutex::default(),
            status,
            sale_commit_seconds: crate::metrics::sale_commit_histogram(),
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<TillEvent> {
        self.events.subscribe()
    }

    pub fn publish(&self, ev: TillEvent) {
        let _ = self.events.send(ev); // nobody listening is fine
    }

    async fn journal<T: Send + 'static, E: Send + 'static>(
        &self,
        f: impl FnOnce(&Journal) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E> {
        let j = self.journal.clone();
        crate::blocking::run(move || f(&j)).await
    }

    /// What a cashier does alone, and what needs a manager.
    pub fn limits(&self) -> crate::config::Limits {
        self.limits
    }

    /// The store's local time now (promotions' windows and scheduled prices are in it).
    fn local_now(&self) -> kassa_protocol::promotions::LocalTime {
        kassa_protocol::promotions::LocalTime::from_unix_ms(now_ms(), self.utc_offset_minutes)
    }

    /// Whether HQ is reachable now.
    fn online(&self) -> bool {
        self.status.borrow().hq.online
    }

    /// After a commit: the sync client and the spooler have work, the shift has new
    /// figures.
    async fn committed(&self) {
        self.outbox_changed.send_modify(|g| *g += 1);
        let _ = self.print_wake.try_send(());
        self.publish_shift().await;
    }
}
