//! The till of one terminal: who is logged in, the open basket, and every cashier
//! action, each turned into journal calls and page events.
//!
//! Every change is published as a [`TillEvent`] to the cashier page (server-sent
//! events), so a scan shows without a reload. The open basket lives in memory; it is
//! not a sale until paid. A task in `lib.rs` saves it after every change (from these
//! events) and [`Till::restore`] puts it back after a restart.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use kassa_hardware::barcode::{self, ReceiptRef, RejectReason, Scan, ScanRules};
use kassa_protocol::basket::{Basket, BasketDiscount, BasketError, Totals};
use kassa_protocol::catalog::{CatalogItem, Unit};
use kassa_protocol::gtin::Gtin;
use kassa_protocol::returns::Return;
use kassa_protocol::sale::{Sale, Tender};
use kassa_protocol::{Kopecks, Sku};
use serde::Serialize;
use tokio::sync::{broadcast, watch, Mutex};

use crate::journal::{
    check_key, refusal_codes, AuthError, Journal, JournalError, LoyaltyUse, Refusal, RequestDigest, ReturnRequest,
    Role, ShiftReport, User, WriteError,
};
use kassa_protocol::loyalty::{self, Customer, CustomerId, LoyaltyRules};
use kassa_protocol::promotions::{Channel, Context, LocalTime};
use kassa_protocol::sale::TenderKind;

/// Events buffered per page; a page that falls further behind skips to the next
/// (whole-basket) event.
pub const EVENTS_QUEUE_MAX: usize = 256;
/// Basket operations remembered by idempotency key (the basket is in memory, so are
/// its keys); a retry older than this many operations is applied again.
pub const BASKET_KEYS_MAX: usize = 256;
/// Logged-in sessions per terminal; the oldest is dropped beyond this.
pub const SESSIONS_MAX: usize = 16;
/// A session ends after this long without being used.
pub const SESSION_IDLE_MS: i64 = 12 * 60 * 60 * 1000;

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

/// What a scanned or typed code means at the till.
enum Resolved {
    Item(CatalogItem, i64),
    Marked(CatalogItem, String),
    Receipt(u64),
    Loyalty(String),
}

#[derive(Debug, Default)]
struct OpenBasket {
    basket: Basket,
    customer: Option<Customer>,
    /// Recent basket operations by idempotency key, with their request's digest and the
    /// event they answered.
    keys: VecDeque<(String, RequestDigest, TillEvent)>,
}

impl OpenBasket {
    /// Ends the basket (paid or voided): the next one has the next id.
    fn next(&mut self) {
        self.basket = Basket::new(self.basket.id + 1);
        self.customer = None;
    }
}

/// A basket operation's idempotency key and what it asked for.
#[derive(Debug, Clone, Copy)]
pub struct OpKey<'a> {
    pub key: &'a str,
    pub digest: RequestDigest,
}

impl<'a> OpKey<'a> {
    pub fn new<T: Serialize + ?Sized>(key: &'a str, op: &str, request: &T) -> Self {
        OpKey { key, digest: RequestDigest::of(op, request) }
    }
}

#[derive(Debug, Clone)]
struct Session {
    user: User,
    last_used_ms: i64,
}

/// What a till is set up with.
#[derive(Debug, Clone)]
pub struct TillConfig {
    pub terminal: u16,
    pub scan_rules: ScanRules,
    /// The store's offset from UTC: promotions' hours and days are the store's.
    pub utc_offset_minutes: i32,
}

/// The till's connections to the rest of the agent.
#[derive(Debug)]
pub struct TillLinks {
    /// Bumped after each commit that wrote to the outbox; the sync client watches it.
    pub outbox_changed: watch::Sender<u64>,
    /// Wakes the print spooler.
    pub print_wake: std::sync::mpsc::SyncSender<()>,
    /// Asks HQ for spending rights through the sync connection.
    pub rights: crate::sync_client::RightsSender,
    /// Whether HQ is reachable (the sync client keeps the status board).
    pub status: watch::Receiver<crate::status::Status>,
    /// The promotions in force (the sync client sends each new set).
    pub promotions: crate::promotions::Receiver,
}

#[derive(Debug)]
pub struct Till {
    pub terminal: u16,
    journal: Arc<Journal>,
    rules: ScanRules,
    utc_offset_minutes: i32,
    promotions: crate::promotions::Receiver,
    basket: Mutex<OpenBasket>,
    sessions: std::sync::Mutex<HashMap<String, Session>>,
    events: broadcast::Sender<TillEvent>,
    /// Bumped after each commit that wrote to the outbox; the sync client watches it.
    outbox_changed: watch::Sender<u64>,
    /// Wakes the print spooler.
    print_wake: std::sync::mpsc::SyncSender<()>,
    /// Asks HQ for spending rights through the sync connection.
    rights: crate::sync_client::RightsSender,
    rights_request_id: std::sync::atomic::AtomicU64,
    /// Whether HQ is reachable (the sync client keeps the status board).
    status: watch::Receiver<crate::status::Status>,
    /// Sale commits, timed in [`Till::pay`] (shown by `/metrics`).
    pub sale_commit_seconds: prometheus_client::metrics::histogram::Histogram,
}

pub use crate::clock::now_ms;

fn token() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the OS random source works");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Till {
    pub fn new(config: TillConfig, journal: Arc<Journal>, links: TillLinks) -> Self {
        let TillConfig { terminal, scan_rules: rules, utc_offset_minutes } = config;
        let TillLinks { outbox_changed, print_wake, rights, status, promotions } = links;
        Till {
            terminal,
            rules,
            utc_offset_minutes,
            promotions,
            journal,
            // Numbered from 1 (`restore` continues after the journal's last one).
            basket: Mutex::new(OpenBasket { basket: Basket::new(1), ..OpenBasket::default() }),
            sessions: std::sync::Mutex::new(HashMap::new()),
            events: broadcast::channel(EVENTS_QUEUE_MAX).0,
            outbox_changed,
            print_wake,
            rights,
            rights_request_id: std::sync::atomic::AtomicU64::new(1),
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

    // ---- users ----

    /// Checks the PIN typed at `source` (the page's address) and opens a session;
    /// returns its token.
    pub async fn login(&self, id: String, pin: String, source: String) -> Result<(String, User), TillError> {
        let user = self.journal(move |j| j.authenticate(&id, &pin, &source, now_ms())).await?;
        let token = token();
        let mut sessions = self.sessions.lock().expect("sessions lock");
        let now = now_ms();
        sessions.retain(|_, s| now - s.last_used_ms < SESSION_IDLE_MS);
        if sessions.len() >= SESSIONS_MAX {
            if let Some(oldest) = sessions.iter().min_by_key(|(_, s)| s.last_used_ms).map(|(t, _)| t.clone()) {
                sessions.remove(&oldest);
            }
        }
        sessions.insert(token.clone(), Session { user: user.clone(), last_used_ms: now });
        tracing::info!(user = %user.id, terminal = self.terminal, "login");
        Ok((token, user))
    }

    /// Puts back the basket left open when the agent stopped (or crashed), unless the
    /// journal says it ended (paid or voided) before the stop: a paid basket's lines must
    /// never come back as the next customer's. Returns whether it was put back.
    pub async fn restore(&self, saved: Option<(Basket, Option<String>)>) -> Result<bool, JournalError> {
        let terminal = self.terminal;
        let ended = self.journal(move |j| j.basket_ended(terminal)).await?;
        let mut open = self.basket.lock().await;
        match saved {
            Some((basket, customer)) if basket.id > ended => {
                let customer = match customer {
                    Some(card) => self.journal(move |j| j.find_customer(&card)).await.ok().flatten(),
                    None => None,
                };
                open.basket = basket;
                open.customer = customer;
                Ok(true)
            }
            saved => {
                let newest_saved = saved.map_or(0, |(b, _)| b.id);
                open.basket = Basket::new(ended.max(newest_saved) + 1);
                open.customer = None;
                Ok(false)
            }
        }
    }

    pub fn logout(&self, token: &str) {
        self.sessions.lock().expect("sessions lock").remove(token);
    }

    /// The user of a session token.
    pub fn session(&self, token: &str) -> Result<User, TillError> {
        let mut sessions = self.sessions.lock().expect("sessions lock");
        let now = now_ms();
        match sessions.get_mut(token) {
            Some(s) if now - s.last_used_ms < SESSION_IDLE_MS => {
                s.last_used_ms = now;
                Ok(s.user.clone())
            }
            _ => Err(TillError::NotLoggedIn),
        }
    }

    /// The approving manager: the logged-in user if a manager, else the one whose
    /// user id and PIN came with the request (typed at `source`).
    pub async fn manager(
        &self,
        user: &User,
        approval: Option<(String, String)>,
        source: String,
    ) -> Result<User, TillError> {
        if user.role == Role::Manager {
            return Ok(user.clone());
        }
        let (id, pin) = approval.ok_or(TillError::NeedsManager)?;
        let approver = self.journal(move |j| j.authenticate(&id, &pin, &source, now_ms())).await?;
        if approver.role != Role::Manager {
            return Err(TillError::NeedsManager);
        }
        Ok(approver)
    }

    // ---- the basket ----

    /// Prices `basket` under the promotions in force, at this store, now, for
    /// `customer` — the engine HQ prices the online shop's baskets with.
    fn price(&self, basket: &mut Basket, customer: Option<&Customer>) {
        let active = self.promotions.borrow().clone();
        if active.set.is_empty() && basket.promotions_saved() == Kopecks::ZERO {
            return;
        }
        let coupons = basket.coupons.clone();
        let used_coupons = std::collections::BTreeSet::new();
        let cx = Context {
            store: self.journal.actor().store,
            channel: Channel::Store,
            at: LocalTime::from_unix_ms(now_ms(), self.utc_offset_minutes),
            customer: customer.map(|c| &c.card),
            coupons: &coupons,
            used_coupons: &used_coupons,
        };
        basket.apply_promotions(&active.set, &cx);
    }

    /// A coupon code the customer presented; the basket is priced again with it.
    pub async fn add_coupon(&self, code: String, key: &str) -> Result<TillEvent, TillError> {
        let key = OpKey::new(key, "coupon", &code);
        self.modify(Some(key), move |b| b.add_coupon(&code)).await
    }

    /// The promotions version the till prices with.
    pub fn promotions_version(&self) -> u64 {
        self.promotions.borrow().version
    }

    pub async fn basket_event(&self) -> TillEvent {
        let (basket, customer) = {
            let b = self.basket.lock().await;
            (b.basket.clone(), b.customer.clone())
        };
        self.basket_ev(basket, customer.as_ref()).await
    }

    /// A basket event, with the customer's points offer for this basket.
    async fn basket_ev(&self, basket: Basket, customer: Option<&Customer>) -> TillEvent {
        let view = match customer {
            Some(c) => match self.customer_view(&basket, c).await {
                Ok(view) => Some(view),
                Err(e) => {
                    tracing::error!(card = %c.card, error = %e, "cannot read the customer's points");
                    None
                }
            },
            None => None,
        };
        TillEvent::Basket { totals: basket.totals(), basket, customer: view }
    }

    async fn customer_view(&self, basket: &Basket, c: &Customer) -> Result<CustomerView, TillError> {
        let rules = self.loyalty_rules().await?;
        let point_value_kopecks = rules.point_value_kopecks();
        let (card, lines) = (c.card.clone(), basket.lines.clone());
        let actor = self.journal.actor();
        let online = self.online();
        let offer = self
            .journal(move |j| {
                let account = j.loyalty_account(&card)?;
                let eligible = j.eligible_total(&rules, &lines)?;
                Ok::<_, JournalError>(loyalty::offline_offer(&rules, &account, actor, eligible))
            })
            .await?;
        Ok(CustomerView {
            card: c.card.as_str().to_owned(),
            name: c.name.clone(),
            balance: offer.balance,
            allowed: offer.allowed,
            spendable_now: offer.spendable_now,
            point_value_kopecks,
            message: offer.message(!online),
        })
    }

    async fn loyalty_rules(&self) -> Result<LoyaltyRules, JournalError> {
        self.journal(|j| j.loyalty_rules()).await
    }

    fn online(&self) -> bool {
        self.status.borrow().hq.online
    }

    /// Asks HQ for rights to `points` of the customer's points (0: just tell us about the
    /// customer); `false` when offline or HQ did not answer in time.
    pub async fn ask_rights(&self, customer: &CustomerId, points: i64) -> bool {
        let request_id = self.rights_request_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (tx, rx) = tokio::sync::oneshot::channel();
        let request = loyalty::RightsRequest { request_id, customer: customer.clone(), points };
        if self.rights.try_send((request, tx)).is_err() {
            return false;
        }
        matches!(
            tokio::time::timeout(loyalty::RIGHTS_REQUEST_TIMEOUT, rx).await,
            Ok(Ok(loyalty::RightsAnswer::Grant(_)))
        )
    }

    /// Puts a customer on the basket by card or phone number; an unknown card is asked
    /// of HQ when online. A typo gives "no such customer", never a new one.
    pub async fn set_customer(&self, code: &str) -> Result<TillEvent, TillError> {
        let code = code.trim().to_owned();
        let c = code.clone();
        let mut found = self.journal(move |j| j.find_customer(&c)).await?;
        if found.is_none() {
            if let Ok(card) = CustomerId::parse(&code) {
                if self.ask_rights(&card, 0).await {
                    let c = code.clone();
                    found = self.journal(move |j| j.find_customer(&c)).await?;
                }
            }
        }
        let customer = found.ok_or(TillError::NoSuchCustomer)?;
        self.attach(customer).await
    }

    /// Issues a new card at the till and puts it on the basket.
    pub async fn new_customer(&self, phone: String, name: Option<String>) -> Result<TillEvent, TillError> {
        let customer = self.journal(move |j| j.issue_customer(&phone, name.as_deref())).await?;
        tracing::info!(card = %customer.card, "loyalty card issued");
        self.committed().await;
        self.attach(customer).await
    }

    async fn attach(&self, customer: Customer) -> Result<TillEvent, TillError> {
        let mut open = self.basket.lock().await;
        open.customer = Some(customer);
        let OpenBasket { basket, customer, .. } = &mut *open;
        self.price(basket, customer.as_ref());
        let ev = self.basket_ev(open.basket.clone(), open.customer.as_ref()).await;
        drop(open);
        self.publish(ev.clone());
        Ok(ev)
    }

    pub async fn clear_customer(&self) -> TillEvent {
        let mut open = self.basket.lock().await;
        open.customer = None;
        self.price(&mut open.basket, None);
        let ev = self.basket_ev(open.basket.clone(), None).await;
        drop(open);
        self.publish(ev.clone());
        ev
    }

    /// A code from the scanner. A rejected scan is published with its reason (the page
    /// shows it) and returned as an error.
    pub async fn scan(&self, raw: &[u8]) -> Result<TillEvent, TillError> {
        let result = self.scan_inner(raw).await;
        if let Err(e) = &result {
            let code = kassa_hardware::escape(raw);
            tracing::info!(%code, reason_code = e.code(), reason = %e, "scan rejected");
            self.publish(TillEvent::ScanRejected { code, reason_code: e.code(), reason: e.to_string() });
        }
        result
    }

    async fn scan_inner(&self, raw: &[u8]) -> Result<TillEvent, TillError> {
        match self.resolve(raw).await? {
            Resolved::Item(item, quantity) => self.modify(None, move |b| b.add(&item, quantity).map(|_| ())).await,
            Resolved::Marked(item, code) => self.modify(None, move |b| b.add_marked(&item, &code).map(|_| ())).await,
            Resolved::Receipt(seq) => {
                let ev = TillEvent::ReceiptScanned { seq };
                self.publish(ev.clone());
                Ok(ev)
            }
            // A card scanned at the till puts its customer on the basket.
            Resolved::Loyalty(card) => self.set_customer(&card).await,
        }
    }

    /// A code typed by the cashier: a barcode, or a PLU of a weighed item.
    pub async fn enter_code(&self, code: &str, key: &str) -> Result<TillEvent, TillError> {
        let key = OpKey::new(key, "scan", code);
        check_key(key.key)?;
        if let Some(ev) = self.remembered(key).await? {
            return Ok(ev);
        }
        match self.resolve(code.trim().as_bytes()).await? {
            Resolved::Item(item, quantity) => self.modify(Some(key), move |b| b.add(&item, quantity).map(|_| ())).await,
            Resolved::Marked(item, code) => {
                self.modify(Some(key), move |b| b.add_marked(&item, &code).map(|_| ())).await
            }
            Resolved::Receipt(seq) => Ok(TillEvent::ReceiptScanned { seq }),
            Resolved::Loyalty(card) => self.set_customer(&card).await,
        }
    }

    pub async fn add_sku(&self, sku: Sku, quantity: i64, key: &str) -> Result<TillEvent, TillError> {
        let key = OpKey::new(key, "add_item", &(&sku, quantity));
        check_key(key.key)?;
        if let Some(ev) = self.remembered(key).await? {
            return Ok(ev);
        }
        let s = sku.clone();
        let item = self.journal(move |j| j.item_by_sku(&s)).await?.ok_or(TillError::UnknownSku(sku.0))?;
        self.modify(Some(key), move |b| b.add(&item, quantity).map(|_| ())).await
    }

    async fn item_by_gtin(&self, gtin: &str) -> Result<CatalogItem, TillError> {
        let g = Gtin::parse(gtin).map_err(RejectReason::from)?;
        match self.journal(move |j| j.item_by_gtin(&g)).await? {
            Some(item) => Ok(item),
            None if self.journal(|j| j.catalog_len()).await? == 0 => Err(TillError::NoCatalog),
            None => Err(TillError::UnknownBarcode(g.short().to_owned())),
        }
    }

    /// What a code means at this till, under the store's scan rules.
    async fn resolve(&self, raw: &[u8]) -> Result<Resolved, TillError> {
        Ok(match barcode::parse_with(raw, &self.rules) {
            Scan::Gtin { gtin } => Resolved::Item(self.item_by_gtin(&gtin).await?, 1),
            // A GS1 label (e.g. a weighed pack with (310n)): the item by (01), the weight
            // as the quantity when the item is sold by weight.
            Scan::Gs1 { gtin: Some(gtin), weight_grams, .. } => {
                let item = self.item_by_gtin(&gtin).await?;
                let quantity = match (item.unit, weight_grams) {
                    (Unit::Kilogram, Some(g)) => g,
                    (Unit::Kilogram, None) => return Err(TillError::NoWeight),
                    (Unit::Piece, _) => 1,
                };
                Resolved::Item(item, quantity)
            }
            Scan::Gs1 { gtin: None, .. } => return Err(TillError::NoProductNumber),
            Scan::Marking { gtin, code, .. } => Resolved::Marked(self.item_by_gtin(&gtin).await?, code),
            Scan::Weighted { plu, weight_grams } => {
                let item = self.journal(move |j| j.item_by_plu(plu)).await?;
                Resolved::Item(item.ok_or(TillError::UnknownPlu(plu))?, weight_grams)
            }
            Scan::Receipt(r) => {
                let code = match r {
                    ReceiptRef::Sale { store, seq } => format!("KASSA:{store}:{seq}"),
                    ReceiptRef::Number { receipt_no } => receipt_no,
                };
                let c = code.clone();
                let seq = self.journal(move |j| j.find_doc(&c)).await?;
                Resolved::Receipt(seq.ok_or(TillError::Write(WriteError::NoSuchSale(code)))?)
            }
            Scan::Loyalty { card } => Resolved::Loyalty(card),
            Scan::Rejected(reason) => return Err(reason.into()),
        })
    }

    pub async fn set_quantity(&self, line: usize, quantity: i64, key: &str) -> Result<TillEvent, TillError> {
        let key = OpKey::new(key, "set_quantity", &(line, quantity));
        self.modify(Some(key), move |b| b.set_quantity(line, quantity)).await
    }

    pub async fn remove_line(&self, line: usize, key: &str) -> Result<TillEvent, TillError> {
        self.modify(Some(OpKey::new(key, "remove_line", &line)), move |b| b.remove(line).map(|_| ())).await
    }

    /// A manager's price override on one line.
    pub async fn override_price(
        &self,
        line: usize,
        price: Kopecks,
        manager: &User,
        key: &str,
    ) -> Result<TillEvent, TillError> {
        tracing::info!(line, %price, manager = %manager.id, "price override");
        let key = OpKey::new(key, "override_price", &(line, price, &manager.id));
        self.modify(Some(key), move |b| b.override_price(line, price)).await
    }

    pub async fn set_discount(
        &self,
        discount: Option<BasketDiscount>,
        manager: &User,
        key: &str,
    ) -> Result<TillEvent, TillError> {
        tracing::info!(?discount, manager = %manager.id, "basket discount");
        let key = OpKey::new(key, "discount", &(discount, &manager.id));
        self.modify(Some(key), move |b| b.set_discount(discount)).await
    }

    /// Abandons the open basket; the void is recorded in the journal.
    pub async fn void(&self, user: &User, key: &str) -> Result<TillEvent, TillError> {
        let key = OpKey::new(key, "void", &());
        check_key(key.key)?;
        let mut open = self.basket.lock().await;
        if let Some(ev) = remembered(&open, key)? {
            return Ok(ev);
        }
        if !open.basket.is_empty() {
            let (terminal, basket, user) = (self.terminal, open.basket.clone(), user.id.clone());
            self.journal(move |j| j.void_basket(terminal, &user, &basket, now_ms())).await?;
            open.next();
        }
        let ev = TillEvent::Basket { basket: open.basket.clone(), totals: None, customer: None };
        remember(&mut open, key, &ev);
        drop(open);
        self.publish(ev.clone());
        Ok(ev)
    }

    /// The answer to a basket operation seen before under `key`, if any.
    async fn remembered(&self, key: OpKey<'_>) -> Result<Option<TillEvent>, TillError> {
        Ok(remembered(&*self.basket.lock().await, key)?)
    }

    /// Applies `f` to the open basket (all or nothing) and publishes the new basket.
    async fn modify(
        &self,
        key: Option<OpKey<'_>>,
        f: impl FnOnce(&mut Basket) -> Result<(), BasketError>,
    ) -> Result<TillEvent, TillError> {
        if let Some(k) = key {
            check_key(k.key)?;
        }
        let mut open = self.basket.lock().await;
        if let Some(k) = key {
            if let Some(ev) = remembered(&open, k)? {
                return Ok(ev);
            }
        }
        let mut next = open.basket.clone();
        f(&mut next)?;
        self.price(&mut next, open.customer.as_ref());
        let ev = self.basket_ev(next.clone(), open.customer.as_ref()).await;
        open.basket = next;
        if let Some(k) = key {
            remember(&mut open, k, &ev);
        }
        drop(open);
        self.publish(ev.clone());
        Ok(ev)
    }

    // ---- money ----

    /// Pays basket `seen_basket` (the one the cashier saw; `None`: the open one). The
    /// basket stays locked until the sale is committed, so no scan slips in between
    /// totals and commit. A retried key returns the same sale, and the basket it paid is
    /// over: the sale records its id in the same commit, so even a crash right after it
    /// cannot bring the paid lines back.
    pub async fn pay(
        &self,
        user: &User,
        tenders: Vec<Tender>,
        seen_basket: Option<u64>,
        key: String,
    ) -> Result<(Sale, bool), TillError> {
        check_key(&key)?;
        let mut open = self.basket.lock().await;
        let (terminal, snapshot, cashier) = (self.terminal, open.basket.clone(), user.id.clone());
        let online = self.online();
        // The rules HQ published (the same code computes the points at every store and HQ).
        // The rules are read only for a sale with a customer: most sales have none.
        let loyalty = match &open.customer {
            Some(c) => Some(LoyaltyUse { customer: c.card.clone(), rules: self.loyalty_rules().await?, online }),
            None => None,
        };
        // Points beyond the rights held here: ask HQ first (a round trip with a timeout);
        // offline, the journal refuses with the offer that can be spent now.
        let points_kopecks: i64 = tenders.iter().filter(|t| t.kind == TenderKind::Points).map(|t| t.amount.0).sum();
        if let (Some(u), true, true) = (&loyalty, points_kopecks > 0, online) {
            let points = points_kopecks / u.rules.point_value_kopecks();
            let card = u.customer.clone();
            let actor = self.journal.actor();
            let held = self.journal(move |j| j.loyalty_account(&card).map(|a| a.rights(actor))).await?;
            if points > held {
                self.ask_rights(&u.customer, points - held).await;
            }
        }
        let started = std::time::Instant::now();
        let (sale, replayed) = self
            .journal(move |j| {
                j.commit_payment(terminal, &cashier, &snapshot, seen_basket, &tenders, loyalty.as_ref(), &key, now_ms())
            })
            .await?;
        if !replayed {
            self.sale_commit_seconds.observe(started.elapsed().as_secs_f64());
            open.next();
            open.keys.clear();
            let next = open.basket.clone();
            drop(open);
            tracing::info!(sale = %sale.id, receipt = %sale.receipt_no, total = %sale.total, "sale committed");
            self.committed().await;
            self.publish(TillEvent::SaleCommitted { sale: sale.clone() });
            self.publish(TillEvent::Basket { basket: next, totals: None, customer: None });
        }
        Ok((sale, replayed))
    }

    /// A return; cash is refunded only from what the drawer holds unless
    /// `drawer_override` names the manager who allowed more.
    pub async fn return_items(
        &self,
        user: &User,
        request: ReturnRequest,
        drawer_override: Option<User>,
        key: String,
    ) -> Result<(Return, bool), TillError> {
        check_key(&key)?;
        // The points the sale earned are taken back from this store's rights; online, ask
        // HQ for enough first, so the customer's refund is not cut for points HQ holds.
        if let (ReturnRequest::WithReceipt { sale_seq, .. } | ReturnRequest::Cancel { sale_seq, .. }, true) =
            (&request, self.online())
        {
            let seq = *sale_seq;
            if let Some(sl) = self.journal(move |j| j.sale(seq)).await?.and_then(|s| s.loyalty) {
                let earned: i64 = sl.lines.iter().map(|l| l.earned_points).sum();
                if earned > 0 {
                    self.ask_rights(&sl.customer, earned).await;
                }
            }
        }
        let (terminal, cashier) = (self.terminal, user.id.clone());
        let manager = drawer_override.map(|m| m.id);
        let (ret, replayed) = self
            .journal(move |j| j.commit_return(terminal, &cashier, &request, manager.as_deref(), &key, now_ms()))
            .await?;
        if !replayed {
            tracing::info!(id = %ret.id, receipt = %ret.receipt_no, total = %ret.total, kind = ?ret.kind, "return committed");
            self.committed().await;
            self.publish(TillEvent::ReturnCommitted { ret: ret.clone() });
        }
        Ok((ret, replayed))
    }

    async fn committed(&self) {
        self.outbox_changed.send_modify(|g| *g += 1);
        let _ = self.print_wake.try_send(());
        self.publish_shift().await;
    }

    /// Publishes the shift's figures (read off the executor).
    pub async fn publish_shift(&self) {
        let terminal = self.terminal;
        if let Ok(report) = self.journal(move |j| j.x_report(terminal)).await {
            self.publish(TillEvent::Shift { report });
        }
    }

    pub async fn reprint(&self, seq: u64) -> Result<bool, TillError> {
        let queued = self.journal(move |j| j.reprint(seq, now_ms())).await?;
        let _ = self.print_wake.try_send(());
        Ok(queued)
    }

    // ---- shifts ----

    pub async fn open_shift(&self, user: &User, float: Kopecks, key: String) -> Result<ShiftReport, TillError> {
        let (terminal, id) = (self.terminal, user.id.clone());
        let (report, _) = self.journal(move |j| j.open_shift(terminal, &id, float, &key, now_ms())).await?;
        self.publish_shift().await;
        Ok(report)
    }

    /// Cash in or out; out only of what the drawer holds unless `drawer_override`
    /// names the manager who allowed more.
    pub async fn cash_move(
        &self,
        user: &User,
        amount: Kopecks,
        reason: String,
        drawer_override: Option<User>,
        key: String,
    ) -> Result<ShiftReport, TillError> {
        let (terminal, id) = (self.terminal, user.id.clone());
        let manager = drawer_override.map(|m| m.id);
        let (report, replayed) = self
            .journal(move |j| j.cash_move(terminal, &id, amount, &reason, manager.as_deref(), &key, now_ms()))
            .await?;
        if !replayed && amount.0 > 0 {
            let _ = self.print_wake.try_send(());
        }
        self.publish_shift().await;
        Ok(report)
    }

    pub async fn x_report(&self, print: bool) -> Result<Option<ShiftReport>, TillError> {
        let terminal = self.terminal;
        let report = self.journal(move |j| j.x_report(terminal)).await?;
        if let (true, Some(r)) = (print, &report) {
            let r = r.clone();
            self.journal(move |j| j.print_x_report(&r, now_ms())).await?;
            let _ = self.print_wake.try_send(());
        }
        Ok(report)
    }

    pub async fn close_shift(&self, manager: &User, counted: Kopecks, key: String) -> Result<ShiftReport, TillError> {
        let (terminal, id) = (self.terminal, manager.id.clone());
        let (z, _) = self.journal(move |j| j.close_shift(terminal, &id, counted, &key, now_ms())).await?;
        let _ = self.print_wake.try_send(());
        self.publish(TillEvent::Shift { report: None });
        Ok(z)
    }
}

/// The answer given before under `key`; the same key with another request is refused.
fn remembered(open: &OpenBasket, key: OpKey<'_>) -> Result<Option<TillEvent>, WriteError> {
    match open.keys.iter().find(|(k, _, _)| k == key.key) {
        Some((_, digest, _)) if *digest != key.digest => Err(WriteError::KeyReuse),
        Some((_, _, ev)) => Ok(Some(ev.clone())),
        None => Ok(None),
    }
}

fn remember(open: &mut OpenBasket, key: OpKey<'_>, ev: &TillEvent) {
    if open.keys.len() >= BASKET_KEYS_MAX {
        open.keys.pop_front();
    }
    open.keys.push_back((key.key.to_owned(), key.digest, ev.clone()));
}
