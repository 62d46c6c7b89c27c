//! Orders for pickup at a store — click & collect from the online shop, and the endless
//! aisle (a till orders what its store lacks) — and the rules every replica follows.
//!
//! HQ creates an order: it numbers it ([`OrderId`], HQ's own sequence), prices its lines
//! with the basket and promotion code every channel uses (the prices are then locked),
//! and checks that the pickup store can cover it ([`shortfalls`]). The order reaches the
//! pickup store over sync, exactly once (the store keeps it by id); the store reserves
//! its lines, picks it, marks it ready and hands it over — with HQ reachable or not —
//! or lets it expire at the store's own clock. HQ may ask to cancel it.
//!
//! # States and the rule when they cross
//! An order's state is a join-semilattice, ranked
//! `New < Accepted < Picking < Ready < Cancelled < Expired < Collected`. Every replica
//! (the store and HQ) keeps the highest state it has seen, its own or the other's
//! ([`OrderState::join`]): merging is commutative, associative and idempotent, so the
//! store and HQ end in the same state whatever order the messages cross in, however
//! often they are resent.
//! - **A handover that happened stands.** `Collected` is the top: a cancellation HQ
//!   accepted while the store was offline and handed the order over is then *refused*
//!   (HQ shows the order collected and the cancellation refused), never undone.
//! - **The store's final word wins.** The store never leaves a final state, and HQ's own
//!   contribution is only ever a cancellation, the lowest final state; so once the store
//!   ended an order (handed over, expired at its clock, cancelled at the customer's word)
//!   HQ ends it the same way, whatever HQ asked meanwhile. An order that expired at the
//!   store before HQ's cancellation reached it ends expired at both (neither moved stock).
//! - The three final states are `Cancelled`, `Expired` and `Collected`; a replica never
//!   leaves a final state, so an order ends in exactly one of them, the same everywhere.
//!   (`tests::the_store_final_word_wins` and the seeded simulation check it.)
//!
//! # Reservations
//! A store's reserved quantity of a SKU is what its *open* orders (state below `Cancelled`)
//! hold: derived from the orders, never kept as a separate counter, so it cannot drift.
//! HQ counts the same way over the orders it knows for the store, which include those
//! not yet delivered to it. Available = on hand − reserved; a walk-in sale may still
//! take reserved stock (the till warns the cashier).
//!
//! # Handover
//! A handover takes, per line, up to the quantity ordered ([`Handover::validate`]); the
//! rest of the order is released, not sold. A prepaid order's handover is a record of its
//! own; a pay-at-pickup order's is a sale of the taken lines at the order's locked prices
//! ([`taken_lines`]): a partly taken line pays its share of the line's discount, rounded
//! in the customer's favour.
//!
//! # Paid now, at another till (the endless aisle)
//! A till may order for pickup and take the money at once. HQ places such an order
//! *awaiting its till's payment*: it reserves the lines at the pickup store but does not
//! offer the order to that store yet. The ordering till then takes the payment (a
//! prepayment record in its journal, on its receipt and in its X/Z) and tells HQ, through
//! its outbox, exactly once, [`TillPayment::Paid`] — or [`TillPayment::Abandoned`] when
//! the customer did not pay. Only a paid order reaches the pickup store (prepaid); an
//! abandoned one is cancelled. The rule for failure:
//! - no money is taken before HQ placed the order (a refusal or no answer takes nothing);
//! - a till takes the payment only within [`TILL_PAYMENT_TAKE_MS`] of HQ's answer, and HQ
//!   cancels an order still awaiting its payment after [`TILL_PAYMENT_WAIT_MS`] (a till
//!   that crashed or walked away releases the stock by itself);
//! - a payment HQ hears of after it cancelled the order (the till was cut off for longer
//!   than the difference) never revives it: HQ keeps the payment on the order as money
//!   owed back to the customer, and lists it.

use std::collections::BTreeMap;
use std::fmt;

use crate::basket::{BasketLine, BASKET_LINES_MAX, LINE_QUANTITY_MAX};
use crate::ids::{SaleId, Sku, StoreId};
use crate::loyalty::{CustomerId, Phone};
use crate::money::Kopecks;

/// Lines of one order: a basket's bound.
pub const ORDER_LINES_MAX: usize = BASKET_LINES_MAX;
/// Longest note an order carries (customer's name, a comment), in characters.
pub const NOTE_CHARS_MAX: usize = 200;
/// Longest an order may wait for pickup, in days.
pub const PICKUP_DAYS_MAX: i64 = 30;
/// Open orders one store may hold: the till lists them all.
pub const OPEN_ORDERS_PER_STORE_MAX: usize = 10_000;
/// How long a store has to make an order ready after it arrives before the till flags
/// it overdue.
pub const READY_WITHIN_MS: i64 = 2 * 3_600_000;

/// How long after HQ's answer a till may take the payment of an order placed to be paid
/// there.
pub const TILL_PAYMENT_TAKE_MS: i64 = 10 * 60_000;
/// How long HQ holds an order awaiting its till's payment before it cancels it.
pub const TILL_PAYMENT_WAIT_MS: i64 = 30 * 60_000;

/// An order's number, HQ's own sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct OrderId(pub u64);

impl fmt::Display for OrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What a customer shows at pickup (as text and as the QR code the online shop sends):
/// `Z`, the order number, and a check digit, e.g. `Z10457`. The check digit (Luhn, over
/// the number) catches a mistyped number before it opens someone else's order.
pub fn pickup_code(id: OrderId) -> String {
    format!("Z{}{}", id.0, luhn_digit(id.0))
}

/// The order a pickup code names; `None` for anything else (a typo fails the check
/// digit). A bare order number typed by the cashier is read by [`OrderId`] parsing,
/// not here.
pub fn parse_pickup_code(code: &str) -> Option<OrderId> {
    let digits = code.trim().strip_prefix(['Z', 'z'])?;
    if digits.len() < 2 || digits.len() > 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (number, check) = digits.split_at(digits.len() - 1);
    let id: u64 = number.parse().ok()?;
    (id > 0 && u64::from(check.as_bytes()[0] - b'0') == luhn_digit(id)).then_some(OrderId(id))
}

fn luhn_digit(n: u64) -> u64 {
    let sum: u64 = n
        .to_string()
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u64::from(b - b'0');
            if i % 2 == 0 {
                let x = d * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                d
            }
        })
        .sum();
    (10 - sum % 10) % 10
}

/// Where the order was placed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OrderChannel {
    /// The online shop (through HQ's API).
    Online,
    /// A till of this store ordered it (the endless aisle).
    Store(StoreId),
}

/// How the order is paid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Payment {
    /// Paid online when ordered: the store hands it over without taking money.
    Prepaid,
    /// Paid at the till when collected, at the order's locked prices.
    AtPickup,
}

impl Payment {
    pub fn code(self) -> &'static str {
        match self {
            Payment::Prepaid => "prepaid",
            Payment::AtPickup => "at_pickup",
        }
    }

    pub fn from_code(code: &str) -> Option<Payment> {
        [Payment::Prepaid, Payment::AtPickup].into_iter().find(|p| p.code() == code)
    }
}

/// An order for pickup at `store`, its lines priced and locked when it was placed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Order {
    pub id: OrderId,
    /// The pickup store.
    pub store: StoreId,
    pub channel: OrderChannel,
    /// The loyalty customer, if the order names one.
    pub customer: Option<CustomerId>,
    /// The customer's phone, to find the order by.
    pub phone: Option<Phone>,
    /// Free text: the customer's name, a comment.
    pub note: String,
    /// The lines as HQ priced them (promotions and all); what the customer pays.
    pub lines: Vec<BasketLine>,
    pub payment: Payment,
    pub created_at_ms: i64,
    /// When, at the store's clock, an unclaimed order expires and releases its stock.
    pub expires_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderError {
    #[error("an order has 1 to {ORDER_LINES_MAX} lines")]
    Lines,
    #[error("line {line}: quantity must be 1 to {LINE_QUANTITY_MAX}")]
    Quantity { line: usize },
    #[error("line {line}: its discount is more than its amount")]
    Discount { line: usize },
    #[error("the note is longer than {NOTE_CHARS_MAX} characters")]
    Note,
    #[error("an order expires after it is placed, within {PICKUP_DAYS_MAX} days")]
    Expiry,
    #[error("the order was placed online or by a till of another store than its own ({0})")]
    Channel(StoreId),
}

impl Order {
    /// What the customer pays for the whole order.
    pub fn total(&self) -> Kopecks {
        Kopecks(self.lines.iter().map(|l| l.net().0).sum())
    }

    /// What the pickup code ([`pickup_code`]) of this order is.
    pub fn code(&self) -> String {
        pickup_code(self.id)
    }

    pub fn validate(&self) -> Result<(), OrderError> {
        if self.lines.is_empty() || self.lines.len() > ORDER_LINES_MAX {
            return Err(OrderError::Lines);
        }
        for (i, l) in self.lines.iter().enumerate() {
            if !(1..=LINE_QUANTITY_MAX).contains(&l.quantity) {
                return Err(OrderError::Quantity { line: i });
            }
            if l.discount.0 < 0 || l.discount > l.amount {
                return Err(OrderError::Discount { line: i });
            }
        }
        if self.note.chars().count() > NOTE_CHARS_MAX {
            return Err(OrderError::Note);
        }
        let days = (self.expires_at_ms - self.created_at_ms) / 86_400_000;
        if self.expires_at_ms <= self.created_at_ms || days >= PICKUP_DAYS_MAX {
            return Err(OrderError::Expiry);
        }
        if let OrderChannel::Store(s) = self.channel {
            if s.0 == 0 {
                return Err(OrderError::Channel(s));
            }
        }
        Ok(())
    }

    /// What this order holds of each SKU while it is open.
    pub fn quantities(&self) -> BTreeMap<&Sku, i64> {
        let mut out = BTreeMap::new();
        for l in &self.lines {
            *out.entry(&l.sku).or_insert(0) += l.quantity;
        }
        out
    }
}

/// Where an order is. See the module's documentation for the order of states.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OrderState {
    /// Placed at HQ, not yet at the store.
    New,
    /// The store holds it and has reserved its lines.
    Accepted,
    /// Someone at the store is picking it.
    Picking,
    /// Picked and waiting for the customer.
    Ready,
    /// Cancelled (by the customer through HQ, or at the store); its stock released.
    Cancelled,
    /// Not collected in time; its stock released.
    Expired,
    /// Handed over.
    Collected,
}

impl OrderState {
    pub const ALL: [OrderState; 7] = [
        OrderState::New,
        OrderState::Accepted,
        OrderState::Picking,
        OrderState::Ready,
        OrderState::Cancelled,
        OrderState::Expired,
        OrderState::Collected,
    ];

    /// The state's place in the order above (0 for `New`), as databases keep it: the
    /// highest rank stored for an order is its state, and an order whose rank is below
    /// [`OrderState::Cancelled`]'s is open.
    pub fn rank(self) -> i64 {
        OrderState::ALL.iter().position(|x| *x == self).expect("every state is in ALL") as i64
    }

    /// The state of a stored rank; `None` for a number that is none.
    pub fn from_rank(rank: i64) -> Option<OrderState> {
        usize::try_from(rank).ok().and_then(|r| OrderState::ALL.get(r).copied())
    }

    /// The merge of two replicas' states: the higher one.
    pub fn join(self, other: OrderState) -> OrderState {
        self.max(other)
    }

    /// Cancelled, expired or collected: it holds no stock and never changes again.
    pub fn is_final(self) -> bool {
        self >= OrderState::Cancelled
    }

    pub fn code(self) -> &'static str {
        match self {
            OrderState::New => "new",
            OrderState::Accepted => "accepted",
            OrderState::Picking => "picking",
            OrderState::Ready => "ready",
            OrderState::Expired => "expired",
            OrderState::Cancelled => "cancelled",
            OrderState::Collected => "collected",
        }
    }

    pub fn from_code(code: &str) -> Option<OrderState> {
        OrderState::ALL.into_iter().find(|s| s.code() == code)
    }
}

/// What the cashier asks of an order at the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreStep {
    Picking,
    Ready,
    /// The customer does not want it (cancelled at the store).
    Cancel,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepError {
    #[error("order {order} is already {}", state.code())]
    Final { order: OrderId, state: OrderState },
    #[error("order {order} is {}, it cannot go back to {}", state.code(), to.code())]
    Backwards { order: OrderId, state: OrderState, to: OrderState },
    #[error("order {order} has expired at this store's clock")]
    Expired { order: OrderId },
}

/// The state a store step takes an order in `state` to; a final order, or a step back,
/// is refused. Picking or readying an order past its expiry is refused too (it expires
/// instead).
pub fn store_step(order: &Order, state: OrderState, step: StoreStep, now_ms: i64) -> Result<OrderState, StepError> {
    if state.is_final() {
        return Err(StepError::Final { order: order.id, state });
    }
    let to = match step {
        StoreStep::Picking => OrderState::Picking,
        StoreStep::Ready => OrderState::Ready,
        StoreStep::Cancel => return Ok(OrderState::Cancelled),
    };
    if now_ms >= order.expires_at_ms {
        return Err(StepError::Expired { order: order.id });
    }
    if to < state {
        return Err(StepError::Backwards { order: order.id, state, to });
    }
    Ok(to)
}

/// Whether an order in `state`, received at `received_at_ms`, is overdue at `now_ms`: not
/// ready [`READY_WITHIN_MS`] after it arrived, or ready and within its last hour.
pub fn is_overdue(order: &Order, state: OrderState, received_at_ms: i64, now_ms: i64) -> bool {
    match state {
        OrderState::New | OrderState::Accepted | OrderState::Picking => now_ms - received_at_ms >= READY_WITHIN_MS,
        OrderState::Ready => order.expires_at_ms - now_ms <= 3_600_000,
        _ => false,
    }
}

/// Whether an order in `state` expires at `now_ms` (the store's clock).
pub fn expires(order: &Order, state: OrderState, now_ms: i64) -> bool {
    !state.is_final() && now_ms >= order.expires_at_ms
}

/// What a customer takes at pickup: per line of the order, the quantity taken (0 for a
/// refused line).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handover {
    pub taken: Vec<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandoverError {
    #[error("order {order} is already {}: it cannot be handed over", state.code())]
    Final { order: OrderId, state: OrderState },
    #[error("the handover names {given} lines; order {order} has {lines}")]
    Lines { order: OrderId, given: usize, lines: usize },
    #[error("line {line} of order {order}: take 0 to {ordered}, not {taken}")]
    Quantity { order: OrderId, line: usize, ordered: i64, taken: i64 },
    #[error("the customer takes nothing: cancel the order instead")]
    Nothing,
}

impl Handover {
    /// The whole order.
    pub fn all(order: &Order) -> Handover {
        Handover { taken: order.lines.iter().map(|l| l.quantity).collect() }
    }

    /// Checks the handover against the order in `state`: an order is handed over once,
    /// only while open, and never more than ordered. An expired order may still be
    /// handed over if the store still holds it open (the customer is at the till before
    /// the store's clock ran the expiry).
    pub fn validate(&self, order: &Order, state: OrderState) -> Result<(), HandoverError> {
        if state.is_final() {
            return Err(HandoverError::Final { order: order.id, state });
        }
        if self.taken.len() != order.lines.len() {
            return Err(HandoverError::Lines { order: order.id, given: self.taken.len(), lines: order.lines.len() });
        }
        for (i, (t, l)) in self.taken.iter().zip(&order.lines).enumerate() {
            if *t < 0 || *t > l.quantity {
                return Err(HandoverError::Quantity { order: order.id, line: i, ordered: l.quantity, taken: *t });
            }
        }
        if self.taken.iter().all(|t| *t == 0) {
            return Err(HandoverError::Nothing);
        }
        Ok(())
    }
}

/// The order's lines as the customer takes them: a fully taken line as it was locked; a
/// partly taken line with its amount for what is taken and its discount pro rata, rounded
/// up (in the customer's favour: they never pay more per piece than the order said);
/// refused lines left out. Each promotion on a partly taken line shrinks the same way.
pub fn taken_lines(order: &Order, handover: &Handover) -> Vec<BasketLine> {
    let mut out = Vec::new();
    for (l, &taken) in order.lines.iter().zip(&handover.taken) {
        if taken == 0 {
            continue;
        }
        if taken == l.quantity {
            out.push(l.clone());
            continue;
        }
        let share = |k: Kopecks| Kopecks(round_up_share(k.0, taken, l.quantity));
        let mut line = l.clone();
        line.quantity = taken;
        line.amount = crate::pricing::line_amount(l.price, l.unit, taken).unwrap_or(l.amount);
        line.promotions = l
            .promotions
            .iter()
            .map(|p| crate::basket::LinePromotion { amount: share(p.amount), ..p.clone() })
            .collect();
        line.discount = share(l.discount).min(line.amount);
        out.push(line);
    }
    out
}

/// A prepaid order's purchase as a sale by the online shop (store [`StoreId::HQ`],
/// numbered by the order, receipt `0000-00-<order>`): what was handed over
/// ([`taken_lines`]), as it was paid, by card online. Any store returns it by the
/// order's number as it returns another store's sale: within what is left, the refund
/// back to a card. `None` for an order paid at pickup (its store's sale is the purchase)
/// or with nothing handed over.
pub fn shop_sale(order: &Order, taken: &[i64]) -> Option<crate::sale::Sale> {
    use crate::sale::{Sale, Tender, TenderKind};
    if order.payment != Payment::Prepaid || taken.len() != order.lines.len() {
        return None;
    }
    let lines = taken_lines(order, &Handover { taken: taken.to_vec() });
    let total = crate::basket::totals(lines.iter())?.total;
    let sale = Sale {
        id: SaleId { store: StoreId::HQ, seq: order.id.0 },
        receipt_no: crate::sale::receipt_no(StoreId::HQ, 0, order.id.0),
        terminal: 0,
        cashier: "online".into(),
        created_at_ms: order.created_at_ms,
        lines,
        tenders: vec![Tender { kind: TenderKind::Card, amount: total }],
        total,
        change: Kopecks::ZERO,
        loyalty: None,
    };
    sale.validate().is_ok().then_some(sale)
}

/// `⌈k × part / whole⌉` without overflow for money and quantities in their bounds.
fn round_up_share(k: i64, part: i64, whole: i64) -> i64 {
    let n = i128::from(k) * i128::from(part);
    let w = i128::from(whole);
    ((n + w - 1).div_euclid(w)) as i64
}

/// What the store tells HQ about one of its orders (exactly once, through the outbox).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderUpdate {
    pub order: OrderId,
    pub store: StoreId,
    pub event: OrderEvent,
    /// Store clock, informational.
    pub at_ms: i64,
    /// Who at the store (a user id), or empty for the store itself (receipt, expiry).
    pub by: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OrderEvent {
    /// The store holds the order and reserved its lines.
    Accepted,
    Picking,
    Ready,
    /// Handed over: what was taken per line, and the sale that paid for it (pay at
    /// pickup) — `None` for a prepaid order.
    Collected {
        taken: Vec<i64>,
        sale: Option<SaleId>,
    },
    Expired,
    Cancelled,
}

impl OrderEvent {
    /// The state the event puts the order in.
    pub fn state(&self) -> OrderState {
        match self {
            OrderEvent::Accepted => OrderState::Accepted,
            OrderEvent::Picking => OrderState::Picking,
            OrderEvent::Ready => OrderState::Ready,
            OrderEvent::Collected { .. } => OrderState::Collected,
            OrderEvent::Expired => OrderState::Expired,
            OrderEvent::Cancelled => OrderState::Cancelled,
        }
    }
}

/// The ordering store's word on an order it placed to be paid at its till (see the
/// module): sent once, through its outbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderPayment {
    pub order: OrderId,
    /// The store whose till placed the order (not the pickup store).
    pub store: StoreId,
    pub outcome: TillPayment,
    /// Store clock, informational.
    pub at_ms: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TillPayment {
    /// The till took the order's total.
    Paid { amount: Kopecks },
    /// The customer did not pay: HQ cancels the order.
    Abandoned,
}

impl TillPayment {
    pub fn code(&self) -> &'static str {
        match self {
            TillPayment::Paid { .. } => "paid",
            TillPayment::Abandoned => "abandoned",
        }
    }
}

/// A till's order for a store (the endless aisle): what the store asks HQ to place, over
/// sync. HQ prices and places it as the online shop's (the channel says which store
/// ordered) and answers with the order, or why not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderRequest {
    /// The till's own number for the request, to match the answer.
    pub request_id: u64,
    /// The pickup store (the ordering store itself, or another).
    pub store: StoreId,
    /// SKU and quantity (pieces, or grams of a weighed item) per line.
    pub lines: Vec<(Sku, i64)>,
    /// `Prepaid`: paid now, at the ordering till — HQ places it awaiting that payment.
    pub payment: Payment,
    pub customer: Option<CustomerId>,
    pub phone: Option<Phone>,
    pub note: String,
    /// How long the pickup store keeps it.
    pub pickup_hours: u32,
}

impl OrderRequest {
    pub fn validate(&self) -> Result<(), OrderError> {
        if self.lines.is_empty() || self.lines.len() > ORDER_LINES_MAX {
            return Err(OrderError::Lines);
        }
        if let Some(line) = self.lines.iter().position(|(_, q)| !(1..=LINE_QUANTITY_MAX).contains(q)) {
            return Err(OrderError::Quantity { line });
        }
        if self.note.chars().count() > NOTE_CHARS_MAX {
            return Err(OrderError::Note);
        }
        if self.pickup_hours == 0 || i64::from(self.pickup_hours) >= PICKUP_DAYS_MAX * 24 {
            return Err(OrderError::Expiry);
        }
        Ok(())
    }
}

/// HQ's answer to an [`OrderRequest`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OrderAnswer {
    Placed(Order),
    /// Not placed: `code` is stable (`not_available`, `unknown_sku`, `bad_order`,
    /// `internal`), `message` says why in words (English, for logs and technicians).
    Refused {
        code: String,
        message: String,
    },
}

/// A line of an order the pickup store cannot cover.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shortfall {
    pub sku: Sku,
    pub wanted: i64,
    pub available: i64,
}

impl fmt::Display for Shortfall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} wanted, {} available", self.sku, self.wanted, self.available.max(0))
    }
}

/// The SKUs of `wanted` a store cannot cover, given what it has available (on hand minus
/// reserved) of each; empty if it covers them all.
pub fn shortfalls<'a>(
    wanted: impl IntoIterator<Item = (&'a Sku, i64)>,
    mut available: impl FnMut(&Sku) -> i64,
) -> Vec<Shortfall> {
    let mut by_sku: BTreeMap<&Sku, i64> = BTreeMap::new();
    for (sku, q) in wanted {
        *by_sku.entry(sku).or_insert(0) += q;
    }
    by_sku
        .into_iter()
        .filter_map(|(sku, wanted)| {
            let available = available(sku);
            (available < wanted).then(|| Shortfall { sku: sku.clone(), wanted, available })
        })
        .collect()
}

/// What open orders reserve, per SKU: the sum of their lines. The one definition the
/// store's journal, HQ and the simulation's invariant all compute.
pub fn reserved<'a>(open: impl IntoIterator<Item = &'a Order>) -> BTreeMap<Sku, i64> {
    let mut out = BTreeMap::new();
    for o in open {
        for (sku, q) in o.quantities() {
            *out.entry(sku.clone()).or_insert(0) += q;
        }
    }
    out
}

#[cfg(test)]
mod tests;
