//! The sync state machines, sans-IO, in the manner of `quinn-proto`.
//!
//! [`StoreSync`] runs in the agent for one connection to HQ; [`HqSync`] runs in HQ for
//! one connection from a store. Neither touches a socket, a database or a clock: the
//! caller (the "shell") feeds them and carries out what they ask.
//!
//! # Call order
//! Methods come in four kinds: `handle_*` inputs (those that depend on time take `now`,
//! which never goes backwards), mutators, and the outputs `poll_transmit`, `poll_event`,
//! `poll_timeout`. After any input the shell drains, in this order:
//! 1. `poll_event` until `None`, carrying out each event (store data, read the outbox);
//! 2. `poll_transmit` until `None`, sending each message;
//! 3. `poll_timeout`, arming one timer that calls `handle_timeout` when it fires.
//!
//! # Exactly once
//! The store numbers its outbox entries 1, 2, 3…; HQ applies only the contiguous run
//! after what it already holds and acknowledges the highest sequence it has *durably
//! stored* (the shell calls [`HqSync::handle_applied`] after its commit). Everything
//! else — duplicates, gaps, lost messages — is resent and ignored by id. Transport
//! delivery is never taken as an acknowledgement.
//!
//! # Versions
//! Both machines work with the domain messages of [`crate::wire`], whatever protocol
//! version the connection speaks; they only hold the peer to that version (the `version`
//! in `Hello` and `Welcome` must be the connection's) and pass on the peer's software
//! version, which protocol 2 does not carry. The shell encodes and decodes in the
//! negotiated version ([`StoreSync::speaking`], [`HqSync::speaking`]).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::catalog::CatalogItem;
use crate::ids::{ActorId, StoreId};
use crate::loyalty::{Customer, LoyaltyEntry, LoyaltyRules, RightsAnswer, RightsRequest};
use crate::movements::Inbound;
use crate::promotions::definition::Definition;
use crate::promotions::PROMOTIONS_MAX;
use crate::returns::Return;
use crate::sale::Sale;
use crate::stock::{ActorDigest, CounterEntry};
use crate::wire::{
    Change, HqMessage, NearbyStock, OutboxEntry, StoreMessage, BATCH_BYTES_MAX, BATCH_ENTRIES_MAX,
    CATALOG_PAGE_ITEMS_MAX, COUNTERS_PAGE_MAX, PROMOTIONS_PAGE_BYTES_MAX, PROMOTIONS_PAGE_MAX, PROTOCOL_VERSION,
};

/// How long the store waits for an acknowledgement before it resends from the last
/// acknowledged entry. Long enough for HQ's durable commit under load.
pub const ACK_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a store whose outbox is drained compares counter digests with HQ, on
/// average: each wait is this ± a quarter ([`StoreSync::digest_wait`]).
pub const DIGEST_INTERVAL: Duration = Duration::from_secs(60);
/// Entries sent but not yet acknowledged; bounds HQ's work per connection.
pub const INFLIGHT_ENTRIES_MAX: u64 = 4 * BATCH_ENTRIES_MAX as u64;
/// Digests per message: a store has its own actor, HQ's, and old epochs of its own.
pub const DIGESTS_MAX: usize = 64;
/// Nearby-stock entries a store accepts in one view (stores × SKUs).
pub const NEARBY_ENTRIES_MAX: usize = 500_000;
/// Catalog items a store buffers while pages arrive; a bound on a hostile HQ.
pub const CATALOG_ITEMS_MAX: usize = crate::catalog::CATALOG_ITEMS_MAX;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyncError {
    #[error("peer says protocol version {theirs} on a connection of version {ours}")]
    Version { theirs: u32, ours: u32 },
    #[error("unexpected message: {0}")]
    Unexpected(&'static str),
    #[error("store {store} tried to write as {what}")]
    ForeignWrite { store: StoreId, what: String },
    #[error("malformed: {0}")]
    Malformed(String),
    #[error("refused by HQ: {0}")]
    Refused(String),
    #[error(
        "HQ holds this store's outbox up to {hq}, the journal only up to {journal}: restored from an old \
         backup? Sync stopped so that no sale is lost; the journal needs a new actor epoch (see the operator notes)"
    )]
    AheadOfJournal { hq: u64, journal: u64 },
}

/// What the agent's shell must carry out for [`StoreSync`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreEvent {
    /// Handshake done; HQ holds the outbox up to `acked_seq`.
    Connected { acked_seq: u64 },
    /// Read up to `max` outbox entries with sequence > `after` and pass them to
    /// [`StoreSync::handle_outbox`].
    ReadOutbox { after: u64, max: usize },
    /// HQ durably holds every entry up to `upto`: the shell records it (and may prune).
    Acked { upto: u64 },
    /// A whole new catalog version: apply it in one transaction, then call
    /// [`StoreSync::handle_catalog_applied`].
    Catalog { version: u64, items: Vec<CatalogItem> },
    /// Counter entries to max-merge into the store's stock.
    Counters { entries: Vec<CounterEntry> },
    /// A new view of the nearby stores' stock, to replace the old one.
    NearbyStock { as_of_ms: i64, entries: Vec<NearbyStock> },
    /// Time to compare digests: compute the store's counter digests for its own stock and
    /// pass them to [`StoreSync::handle_digests`].
    ComputeDigests,
    /// HQ lacks some of the store's own counters: read them all and pass them to
    /// [`StoreSync::handle_own_counters`].
    SendOwnCounters,
    /// HQ's loyalty rules: keep them if newer than what the store has.
    Rules { version: u64, rules: LoyaltyRules },
    /// A whole set of promotions newer than the store's: keep it (if still newer), start
    /// pricing with it, then call [`StoreSync::handle_promotions_applied`].
    Promotions { version: u64, definitions: Vec<Definition> },
    /// HQ answered a rights request: merge its entries, then wake the waiting till.
    Rights(RightsAnswer),
    /// Customers and loyalty entries to store and max-merge.
    Loyalty { customers: Vec<Customer>, entries: Vec<LoyaltyEntry> },
    /// A delivery or transfer to receive: keep it, once (HQ sends it again until the
    /// store's receipt of it arrives).
    Inbound(Inbound),
    /// Promotions a customer has had anywhere: add them to what the store knows.
    PromotionsUsed { customer: crate::loyalty::CustomerId, promotions: Vec<u32> },
    /// HQ's price schedule, validated: keep it if newer than the store's.
    PriceSchedule { version: u64, changes: Vec<crate::price_schedule::ScheduledPrice> },
    /// An order for pickup here, validated: keep it once (by id), reserve its lines and
    /// accept it through the outbox (HQ sends it again until the acceptance arrives).
    Order(crate::orders::Order),
    /// HQ cancels an order: cancel it unless it is already final here (a handover
    /// stands), and tell HQ the order's final state through the outbox.
    OrderCancel(crate::orders::OrderId),
    /// HQ answered a till's order (the endless aisle): wake the waiting till.
    OrderPlaced { request_id: u64, answer: crate::orders::OrderAnswer },
    /// HQ answered a till's question for a sale (return anywhere): wake the waiting till.
    SaleFound { request_id: u64, answer: crate::returns::SaleAnswer },
    /// HQ answered a till's question for a customer's history: wake the waiting till.
    History { request_id: u64, history: Option<crate::history::CustomerHistory> },
    /// HQ's return limits and store keys, validated: keep the limits if newer, add the
    /// keys (a grow-only set), then call [`StoreSync::handle_return_terms_applied`].
    ReturnTerms(crate::returns::ReturnTerms),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StoreState {
    AwaitingWelcome,
    Ready,
}

/// The store's side of one connection.
#[derive(Debug)]
pub struct StoreSync {
    actor: ActorId,
    /// The protocol version of this connection (its ALPN).
    protocol: u32,
    /// HQ's software version, from its `Welcome` (protocol 3 on).
    hq_software_version: Option<String>,
    state: StoreState,
    /// Highest entry HQ acknowledged.
    acked: u64,
    /// Highest entry sent on this connection (or asked for).
    sent: u64,
    /// Highest entry in the local outbox.
    head: u64,
    /// A read of the outbox is under way; no second one until it is answered.
    reading: bool,
    /// When we last heard progress from HQ while entries were in flight.
    waiting_since: Option<Instant>,
    /// When digests are next compared.
    next_digest: Option<Instant>,
    /// Comparisons scheduled on this connection (spreads their waits).
    digest_rounds: u64,
    catalog_version: u64,
    catalog_pages: Option<(u64, Vec<CatalogItem>)>,
    promotions_version: u64,
    /// The newest set handed to the shell (a repeated page must not hand it twice).
    promotions_handed: u64,
    promotion_pages: Option<(u64, Vec<Definition>)>,
    /// The price schedule version the store holds (said in every `Digest`).
    price_schedule_version: u64,
    /// HQ's return limits version and the highest store key number the store holds
    /// (said in every `Digest`).
    return_terms_held: (u64, u64),
    nearby_pages: Vec<NearbyStock>,
    transmits: VecDeque<StoreMessage>,
    events: VecDeque<StoreEvent>,
}

impl StoreSync {
    /// Starts a connection in the current protocol ([`PROTOCOL_VERSION`]), saying this
    /// crate's version as the store's software version: queues `Hello`. `head` is the
    /// highest local outbox sequence.
    pub fn new(actor: ActorId, catalog_version: u64, head: u64) -> Self {
        Self::speaking(PROTOCOL_VERSION, env!("CARGO_PKG_VERSION"), actor, catalog_version, head)
    }

    /// Starts a connection of protocol version `protocol` (the one TLS negotiated; the
    /// shell encodes what this queues in it). `software_version` is the store's, sent in
    /// `Hello` where the protocol has room for it (protocol 3 on).
    pub fn speaking(protocol: u32, software_version: &str, actor: ActorId, catalog_version: u64, head: u64) -> Self {
        let mut s = StoreSync {
            actor,
            protocol,
            hq_software_version: None,
            state: StoreState::AwaitingWelcome,
            acked: 0,
            sent: 0,
            head,
            reading: false,
            waiting_since: None,
            next_digest: None,
            digest_rounds: 0,
            catalog_version,
            catalog_pages: None,
            promotions_version: 0,
            promotions_handed: 0,
            promotion_pages: None,
            price_schedule_version: 0,
            return_terms_held: (0, 0),
            nearby_pages: Vec::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        };
        let software_version = Some(software_version.to_owned());
        s.transmits.push_back(StoreMessage::Hello {
            version: protocol,
            actor,
            catalog_version,
            promotions_version: 0,
            head,
            software_version,
        });
        s
    }

    /// Says in `Hello` that the store holds promotions of `version` (HQ then sends only
    /// a newer set). Call before the first transmit.
    pub fn holding_promotions(mut self, version: u64) -> Self {
        self.promotions_version = version;
        if let Some(StoreMessage::Hello { promotions_version, .. }) = self.transmits.front_mut() {
            *promotions_version = version;
        }
        self
    }

    /// Says in every `Digest` that the store holds the price schedule of `version`.
    pub fn holding_price_schedule(mut self, version: u64) -> Self {
        self.price_schedule_version = version;
        self
    }

    /// Says in every `Digest` that the store holds HQ's return limits of
    /// `limits_version` and every store key up to number `keys_upto`.
    pub fn holding_return_terms(mut self, limits_version: u64, keys_upto: u64) -> Self {
        self.return_terms_held = (limits_version, keys_upto);
        self
    }

    /// The shell kept HQ's return terms: it now holds limits of `limits_version` (or
    /// newer) and every key up to `keys_upto` (see
    /// [`crate::returns::ReturnTerms::keys_held_after`]).
    pub fn handle_return_terms_applied(&mut self, limits_version: u64, keys_upto: u64) {
        let held = &mut self.return_terms_held;
        *held = (held.0.max(limits_version), held.1.max(keys_upto));
    }

    /// The shell kept (or already held) the price schedule of `version`.
    pub fn handle_price_schedule_applied(&mut self, version: u64) {
        self.price_schedule_version = self.price_schedule_version.max(version);
    }

    /// The protocol version of this connection.
    pub fn protocol(&self) -> u32 {
        self.protocol
    }

    /// Whether HQ's `Welcome` has come: the connection syncs.
    pub fn is_welcomed(&self) -> bool {
        self.state == StoreState::Ready
    }

    /// HQ's software version, once its `Welcome` said it (protocol 3 on).
    pub fn hq_software_version(&self) -> Option<&str> {
        self.hq_software_version.as_deref()
    }

    pub fn acked(&self) -> u64 {
        self.acked
    }

    /// Entries committed locally that HQ has not acknowledged.
    pub fn backlog(&self) -> u64 {
        self.head.saturating_sub(self.acked)
    }

    /// Asserts the sequence invariants: HQ acknowledged only what it was sent, and only
    /// what is in the outbox (acknowledged ≤ sent ≤ head). The seeded simulation checks
    /// them after every step, beside its own checks of the fleet.
    pub fn check_invariants(&self) {
        assert!(self.sent <= self.head, "sent {} beyond the outbox's head {}", self.sent, self.head);
        assert!(self.acked <= self.sent, "acknowledged {} beyond what was sent ({})", self.acked, self.sent);
    }

    pub fn handle_message(&mut self, now: Instant, msg: HqMessage) -> Result<(), SyncError> {
        // `false`: an old or repeated page, ignored; nothing follows from it.
        let taken = match (self.state, msg) {
            (_, HqMessage::Refused { reason }) => return Err(SyncError::Refused(reason)),
            (StoreState::AwaitingWelcome, HqMessage::Welcome { version, store, acked_seq, software_version }) => {
                self.handle_welcome(now, version, store, acked_seq, software_version)?;
                true
            }
            (StoreState::AwaitingWelcome, _) => return Err(SyncError::Unexpected("a message before Welcome")),
            (StoreState::Ready, HqMessage::Welcome { .. }) => return Err(SyncError::Unexpected("a second Welcome")),
            (StoreState::Ready, HqMessage::Ack { upto }) => {
                self.handle_ack(now, upto)?;
                true
            }
            (StoreState::Ready, HqMessage::CatalogPage { version, items, last }) => {
                self.handle_catalog_page(version, items, last)?
            }
            (StoreState::Ready, HqMessage::PromotionsPage { version, first, definitions, last }) => {
                self.handle_promotions_page(version, first, definitions, last)?
            }
            (StoreState::Ready, HqMessage::NearbyStock { as_of_ms, entries, last }) => {
                self.handle_nearby_page(as_of_ms, entries, last)?;
                true
            }
            (StoreState::Ready, HqMessage::SendCounters) => {
                self.events.push_back(StoreEvent::SendOwnCounters);
                true
            }
            (StoreState::Ready, HqMessage::Rules { version, rules }) => {
                self.events.push_back(StoreEvent::Rules { version, rules });
                true
            }
            (StoreState::Ready, HqMessage::Rights(answer)) => {
                if let RightsAnswer::Grant(g) = &answer {
                    if let Some(bad) = g.entries.iter().find(|e| e.check().is_err() || e.customer != g.customer) {
                        return Err(SyncError::Malformed(format!("loyalty entry {bad:?}")));
                    }
                }
                self.events.push_back(StoreEvent::Rights(answer));
                true
            }
            (StoreState::Ready, HqMessage::Loyalty { customers, entries }) => {
                if let Some(bad) = entries.iter().find(|e| e.check().is_err()) {
                    return Err(SyncError::Malformed(format!("loyalty entry {bad:?}")));
                }
                if customers.iter().any(|c| c.validate().is_err()) {
                    return Err(SyncError::Malformed("an invalid customer".into()));
                }
                self.events.push_back(StoreEvent::Loyalty { customers, entries });
                true
            }
            (StoreState::Ready, HqMessage::Counters { entries }) => {
                if let Some(bad) = entries.iter().find(|e| !e.is_valid() || e.location != self.actor.store) {
                    return Err(SyncError::Malformed(format!("counter entry {bad:?}")));
                }
                self.events.push_back(StoreEvent::Counters { entries });
                true
            }
            (StoreState::Ready, msg) => {
                self.handle_document(msg)?;
                false
            }
        };
        if taken {
            self.request_outbox();
        }
        Ok(())
    }

    /// What HQ sends the store outside the outbox's flow once connected: documents to
    /// keep, answers to a till's requests, registers. None of them asks for the outbox.
    fn handle_document(&mut self, msg: HqMessage) -> Result<(), SyncError> {
        match msg {
            HqMessage::Inbound(doc) => {
                if doc.store != self.actor.store {
                    return Err(SyncError::Malformed(format!("an inbound document for store {}", doc.store)));
                }
                self.events.push_back(StoreEvent::Inbound(doc));
            }
            HqMessage::PromotionsUsed { customer, promotions } => {
                if promotions.len() > PROMOTIONS_MAX {
                    return Err(SyncError::Malformed(format!("{} promotions used", promotions.len())));
                }
                self.events.push_back(StoreEvent::PromotionsUsed { customer, promotions });
            }
            HqMessage::Order(order) => {
                if order.store != self.actor.store {
                    return Err(SyncError::Malformed(format!("order {} for store {}", order.id, order.store)));
                }
                self.events.push_back(StoreEvent::Order(order));
            }
            HqMessage::OrderCancel { order } => {
                self.events.push_back(StoreEvent::OrderCancel(order));
            }
            HqMessage::OrderPlaced { request_id, answer } => {
                self.events.push_back(StoreEvent::OrderPlaced { request_id, answer });
            }
            HqMessage::SaleFound { request_id, answer } => {
                if let crate::returns::SaleAnswer::Found { sale, returned, loyalty_owed, .. } = &answer {
                    sale.validate().map_err(|e| SyncError::Malformed(format!("sale {}: {e}", sale.id)))?;
                    if returned.len() > sale.lines.len() {
                        return Err(SyncError::Malformed(format!("sale {}: returns of lines it lacks", sale.id)));
                    }
                    if loyalty_owed.0 < 0 || (loyalty_owed.0 > 0 && sale.loyalty.is_none()) {
                        return Err(SyncError::Malformed(format!("sale {}: owes {loyalty_owed} of points", sale.id)));
                    }
                }
                self.events.push_back(StoreEvent::SaleFound { request_id, answer });
            }
            HqMessage::History { request_id, history } => {
                if let Some(h) = &history {
                    h.validate().map_err(|e| SyncError::Malformed(format!("customer history: {e}")))?;
                }
                self.events.push_back(StoreEvent::History { request_id, history });
            }
            // Kept idempotently by the shell (limits by version, keys as a set).
            HqMessage::ReturnTerms(terms) => self.events.push_back(StoreEvent::ReturnTerms(terms)),
            HqMessage::PriceSchedule { version, changes } => {
                crate::price_schedule::PriceSchedule::new(&changes)
                    .map_err(|e| SyncError::Malformed(format!("price schedule {version}: {e}")))?;
                self.events.push_back(StoreEvent::PriceSchedule { version, changes });
            }
            other => unreachable!("handle_message takes {other:?} itself"),
        }
        Ok(())
    }

    /// HQ's `Welcome`: the connection is ready, and HQ's acknowledgement is where sending
    /// starts.
    fn handle_welcome(
        &mut self,
        now: Instant,
        version: u32,
        store: StoreId,
        acked_seq: u64,
        software_version: Option<String>,
    ) -> Result<(), SyncError> {
        if version != self.protocol {
            return Err(SyncError::Version { theirs: version, ours: self.protocol });
        }
        if store != self.actor.store {
            return Err(SyncError::Malformed(format!("HQ calls us store {store}, we are {}", self.actor.store)));
        }
        // HQ holds entries this journal does not: the store was restored from an
        // old backup (or its journal replaced). Its next entries would reuse
        // numbers HQ already has and be ignored as duplicates — silently lost.
        // Stop syncing and say so; the till keeps selling, nothing is dropped.
        if acked_seq > self.head {
            return Err(SyncError::AheadOfJournal { hq: acked_seq, journal: self.head });
        }
        self.state = StoreState::Ready;
        self.hq_software_version = software_version;
        self.acked = acked_seq;
        self.sent = acked_seq;
        // The first comparison soon after connecting: a drift is repaired at
        // once, not a whole interval later.
        self.next_digest = Some(now + DIGEST_INTERVAL / 30);
        self.events.push_back(StoreEvent::Connected { acked_seq });
        Ok(())
    }

    /// HQ durably holds every entry up to `upto`: the cursor moves (never back).
    fn handle_ack(&mut self, now: Instant, upto: u64) -> Result<(), SyncError> {
        if upto > self.sent.max(self.head) {
            return Err(SyncError::Malformed(format!("ack of {upto}, beyond what we sent")));
        }
        if upto > self.acked {
            self.acked = upto;
            self.waiting_since = (self.sent > self.acked).then_some(now);
            self.events.push_back(StoreEvent::Acked { upto });
        }
        Ok(())
    }

    /// A page of HQ's catalog; the whole catalog goes to the shell with its last page.
    /// `false`: an old or repeated snapshot, ignored.
    fn handle_catalog_page(&mut self, version: u64, items: Vec<CatalogItem>, last: bool) -> Result<bool, SyncError> {
        if version <= self.catalog_version {
            return Ok(false); // an old or repeated snapshot: ignore
        }
        let pages = self.catalog_pages.get_or_insert_with(|| (version, Vec::new()));
        if pages.0 != version {
            // A newer version started before the previous finished: restart.
            *pages = (version, Vec::new());
        }
        if pages.1.len() + items.len() > CATALOG_ITEMS_MAX {
            return Err(SyncError::Malformed("catalog too large".into()));
        }
        pages.1.extend(items);
        if last {
            let (version, items) = self.catalog_pages.take().expect("just inserted");
            self.events.push_back(StoreEvent::Catalog { version, items });
        }
        Ok(true)
    }

    /// A page of HQ's promotions; the set goes to the shell only when every page came in
    /// order. `false`: an old or repeated set, or a set with a hole (dropped), ignored.
    fn handle_promotions_page(
        &mut self,
        version: u64,
        first: u32,
        definitions: Vec<Definition>,
        last: bool,
    ) -> Result<bool, SyncError> {
        if version <= self.promotions_version.max(self.promotions_handed) {
            return Ok(false); // an old or repeated set: ignore
        }
        let pages = self.promotion_pages.get_or_insert_with(|| (version, Vec::new()));
        if pages.0 != version || first == 0 {
            // A new set (or this one from its start again).
            *pages = (version, Vec::new());
        }
        if first as usize != pages.1.len() {
            // A page is missing: drop the set; the next digest says what we hold
            // and HQ sends it again.
            self.promotion_pages = None;
            return Ok(false);
        }
        if pages.1.len() + definitions.len() > PROMOTIONS_MAX {
            return Err(SyncError::Malformed("too many promotions".into()));
        }
        pages.1.extend(definitions);
        if last {
            let (version, definitions) = self.promotion_pages.take().expect("just inserted");
            self.promotions_handed = version;
            self.events.push_back(StoreEvent::Promotions { version, definitions });
        }
        Ok(true)
    }

    /// A page of nearby stores' stock; all of it goes to the shell with the last page.
    fn handle_nearby_page(&mut self, as_of_ms: i64, entries: Vec<NearbyStock>, last: bool) -> Result<(), SyncError> {
        if entries.iter().any(|e| e.store == self.actor.store) {
            return Err(SyncError::Malformed("our own stock as a nearby store's".into()));
        }
        if self.nearby_pages.len() + entries.len() > NEARBY_ENTRIES_MAX {
            return Err(SyncError::Malformed("nearby stock too large".into()));
        }
        self.nearby_pages.extend(entries);
        if last {
            self.events
                .push_back(StoreEvent::NearbyStock { as_of_ms, entries: std::mem::take(&mut self.nearby_pages) });
        }
        Ok(())
    }

    /// Sends a rights request; `false` when not connected (the till falls back to the
    /// offline offer at once).
    pub fn request_rights(&mut self, request: RightsRequest) -> bool {
        if self.state != StoreState::Ready {
            return false;
        }
        self.transmits.push_back(StoreMessage::RightsRequest(request));
        true
    }

    /// Asks HQ for a sale of any store (protocol 5 on); `false` when not connected or the
    /// connection is older.
    pub fn find_sale(&mut self, lookup: crate::returns::SaleLookup) -> bool {
        if self.state != StoreState::Ready || self.protocol < 5 {
            return false;
        }
        self.transmits.push_back(StoreMessage::FindSale(lookup));
        true
    }

    /// Asks HQ for a customer's history in every channel (protocol 5 on); `false` when
    /// not connected or the connection is older.
    pub fn find_history(&mut self, request: crate::history::HistoryRequest) -> bool {
        if self.state != StoreState::Ready || self.protocol < 5 {
            return false;
        }
        self.transmits.push_back(StoreMessage::FindHistory(request));
        true
    }

    /// Asks HQ to place a till's order (protocol 5 on); `false` when not connected or the
    /// connection is older (the till says plainly that it needs HQ).
    pub fn place_order(&mut self, request: crate::orders::OrderRequest) -> bool {
        if self.state != StoreState::Ready || self.protocol < 5 {
            return false;
        }
        self.transmits.push_back(StoreMessage::PlaceOrder(request));
        true
    }

    /// The shell committed entries up to `head` to the local outbox.
    pub fn handle_committed(&mut self, head: u64) {
        self.head = self.head.max(head);
        self.request_outbox();
    }

    /// The answer to [`StoreEvent::ReadOutbox`]: entries in sequence order.
    pub fn handle_outbox(&mut self, now: Instant, entries: Vec<OutboxEntry>) {
        self.reading = false;
        let Some(last) = entries.last().map(|e| e.seq) else { return };
        debug_assert!(entries.windows(2).all(|w| w[0].seq < w[1].seq));
        if self.sent == self.acked {
            self.waiting_since = Some(now);
        }
        self.sent = self.sent.max(last);
        self.head = self.head.max(last);
        // Close a batch before it passes BATCH_BYTES_MAX: a run of very large sales then
        // goes as several frames instead of one the codec would refuse.
        let mut batch = Vec::new();
        let mut batch_bytes = 0;
        for entry in entries {
            // Its size in data format 3, the largest any protocol version sends.
            let bytes = postcard::serialize_with_flavor(
                &crate::format::v3::OutboxEntry::from(&entry),
                postcard::ser_flavors::Size::default(),
            )
            .unwrap_or(0);
            if !batch.is_empty() && batch_bytes + bytes > BATCH_BYTES_MAX {
                self.transmits.push_back(StoreMessage::Batch { entries: std::mem::take(&mut batch), head: self.head });
                batch_bytes = 0;
            }
            batch_bytes += bytes;
            batch.push(entry);
        }
        self.transmits.push_back(StoreMessage::Batch { entries: batch, head: self.head });
        self.request_outbox();
    }

    pub fn handle_catalog_applied(&mut self, version: u64) {
        self.catalog_version = self.catalog_version.max(version);
    }

    /// The shell kept (or already held) promotions of `version`.
    pub fn handle_promotions_applied(&mut self, version: u64) {
        self.promotions_version = self.promotions_version.max(version);
    }

    /// No acknowledgement in time: resend everything after the last acknowledged entry.
    /// Resending is harmless: HQ ignores what it already holds.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(at) = self.next_digest {
            if now >= at {
                self.next_digest = Some(now + self.digest_wait());
                // Only with nothing in flight: otherwise HQ is simply behind.
                if self.state == StoreState::Ready && self.backlog() == 0 && self.sent == self.acked {
                    self.events.push_back(StoreEvent::ComputeDigests);
                }
            }
        }
        if let Some(since) = self.waiting_since {
            if now.duration_since(since) >= ACK_TIMEOUT && self.sent > self.acked {
                self.sent = self.acked;
                self.waiting_since = None;
                self.request_outbox();
            }
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let resend = self.waiting_since.map(|t| t + ACK_TIMEOUT);
        match (resend, self.next_digest) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The wait before the next comparison: [`DIGEST_INTERVAL`] ± a quarter, spread by
    /// store and by round (no randomness needed, only spread), so that stores that
    /// connected together — all of a chain after HQ restarted — do not all compare in the
    /// same seconds of every minute.
    fn digest_wait(&mut self) -> Duration {
        self.digest_rounds += 1;
        let store = u64::from(self.actor.store.0).wrapping_mul(7_919) ^ u64::from(self.actor.epoch).wrapping_mul(131);
        let spread = (store ^ self.digest_rounds.wrapping_mul(104_729)) % 501; // 0..=500
        DIGEST_INTERVAL * 3 / 4 + DIGEST_INTERVAL * spread as u32 / 1000
    }

    /// The answer to [`StoreEvent::ComputeDigests`].
    pub fn handle_digests(&mut self, digests: Vec<ActorDigest>) {
        if self.state == StoreState::Ready {
            let (promotions_version, price_schedule_version) = (self.promotions_version, self.price_schedule_version);
            let (return_limits_version, store_keys_upto) = self.return_terms_held;
            self.transmits.push_back(StoreMessage::Digest {
                digests,
                promotions_version,
                price_schedule_version,
                return_limits_version,
                store_keys_upto,
            });
        }
    }

    /// The answer to [`StoreEvent::SendOwnCounters`]: the store's own entries, in pages.
    pub fn handle_own_counters(&mut self, entries: Vec<CounterEntry>) {
        if self.state != StoreState::Ready {
            return;
        }
        for page in entries.chunks(COUNTERS_PAGE_MAX) {
            self.transmits.push_back(StoreMessage::Counters { entries: page.to_vec() });
        }
    }

    pub fn poll_transmit(&mut self) -> Option<StoreMessage> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<StoreEvent> {
        self.events.pop_front()
    }

    fn request_outbox(&mut self) {
        let window_left = (self.acked + INFLIGHT_ENTRIES_MAX).saturating_sub(self.sent);
        if self.state == StoreState::Ready && !self.reading && self.head > self.sent && window_left > 0 {
            self.reading = true;
            let max = window_left.min(BATCH_ENTRIES_MAX as u64) as usize;
            self.events.push_back(StoreEvent::ReadOutbox { after: self.sent, max });
        }
    }
}

/// What HQ's shell must carry out for [`HqSync`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HqEvent {
    /// The store said hello: look up how far HQ holds its outbox and call
    /// [`HqSync::accept`]; then offer it the catalog and counters it lacks.
    /// `software_version` is the store's (`None` from a protocol-2 store).
    Hello { actor: ActorId, catalog_version: u64, head: u64, software_version: Option<String> },
    /// Apply these entries and record the store's progress `upto` in one transaction,
    /// then call [`HqSync::handle_applied`]. `head` is the store's outbox head.
    Apply { actor: ActorId, entries: Vec<OutboxEntry>, upto: u64, head: u64 },
    /// The store's digests: compare them with HQ's for the same actors at the store's
    /// location and call [`HqSync::digests_compared`]; if HQ's own actor differs, offer
    /// the store HQ's counters.
    CompareDigests { actor: ActorId, theirs: Vec<ActorDigest> },
    /// The store's own counters, sent in full after a digest mismatch: max-merge them.
    MergeCounters { entries: Vec<CounterEntry> },
    /// The store asks for spending rights: grant what HQ holds in one transaction, then
    /// call [`HqSync::answer_rights`].
    RightsRequest { actor: ActorId, request: RightsRequest },
    /// A till of the store orders for pickup (the endless aisle): place it as the online
    /// shop's would be, then call [`HqSync::answer_order`].
    PlaceOrder { actor: ActorId, request: crate::orders::OrderRequest },
    /// A till of the store asks for a sale of any store (return anywhere): look it up
    /// with every store's returns of it, then call [`HqSync::answer_sale`].
    FindSale { actor: ActorId, lookup: crate::returns::SaleLookup },
    /// A till of the store asks for a customer's history: read it, then call
    /// [`HqSync::answer_history`].
    FindHistory { actor: ActorId, request: crate::history::HistoryRequest },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HqState {
    AwaitingHello,
    AwaitingAccept(ActorId),
    Ready(ActorId),
}

/// HQ's side of one connection from a store.
#[derive(Debug)]
pub struct HqSync {
    /// From the store's certificate — never from a message.
    store: StoreId,
    /// The protocol version of this connection (its ALPN).
    protocol: u32,
    /// HQ's software version, sent in `Welcome` where the protocol has room for it.
    software_version: String,
    state: HqState,
    acked: u64,
    /// Highest sequence handed to the shell to apply.
    applying: u64,
    catalog_version: u64,
    /// The promotions version the store holds (from its `Hello`, then what was sent).
    promotions_version: u64,
    /// The price schedule version the store holds: unknown until its first `Digest`
    /// (protocol 5 on), then what it said or was sent.
    price_schedule_version: Option<u64>,
    /// The return limits version and highest store key the store holds: unknown until
    /// its first `Digest` (protocol 5 on).
    return_terms_held: Option<(u64, u64)>,
    transmits: VecDeque<HqMessage>,
    events: VecDeque<HqEvent>,
}

impl HqSync {
    /// A connection in the current protocol ([`PROTOCOL_VERSION`]), saying this crate's
    /// version as HQ's software version.
    pub fn new(store: StoreId) -> Self {
        Self::speaking(store, PROTOCOL_VERSION, env!("CARGO_PKG_VERSION"))
    }

    /// A connection of protocol version `protocol` (the one TLS negotiated; the shell
    /// decodes and encodes in it); `software_version` is HQ's.
    pub fn speaking(store: StoreId, protocol: u32, software_version: &str) -> Self {
        HqSync {
            store,
            protocol,
            software_version: software_version.to_owned(),
            state: HqState::AwaitingHello,
            acked: 0,
            applying: 0,
            catalog_version: 0,
            promotions_version: 0,
            price_schedule_version: None,
            return_terms_held: None,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    pub fn store(&self) -> StoreId {
        self.store
    }

    /// The protocol version of this connection.
    pub fn protocol(&self) -> u32 {
        self.protocol
    }

    /// Handles one message. An error means the connection must be closed; nothing of
    /// the offending message has been handed to the shell.
    pub fn handle_message(&mut self, msg: StoreMessage) -> Result<(), SyncError> {
        let result = self.handle_message_inner(msg);
        if let Err(e) = &result {
            self.transmits.push_back(HqMessage::Refused { reason: e.to_string() });
        }
        result
    }

    fn handle_message_inner(&mut self, msg: StoreMessage) -> Result<(), SyncError> {
        match (self.state, msg) {
            (
                HqState::AwaitingHello,
                StoreMessage::Hello { version, actor, catalog_version, promotions_version, head, software_version },
            ) => {
                if version != self.protocol {
                    return Err(SyncError::Version { theirs: version, ours: self.protocol });
                }
                if actor.store != self.store {
                    return Err(SyncError::ForeignWrite { store: self.store, what: format!("actor {actor}") });
                }
                self.state = HqState::AwaitingAccept(actor);
                self.catalog_version = catalog_version;
                self.promotions_version = promotions_version;
                self.events.push_back(HqEvent::Hello { actor, catalog_version, head, software_version });
                Ok(())
            }
            (HqState::AwaitingHello, _) => Err(SyncError::Unexpected("a message before Hello")),
            (_, StoreMessage::Hello { .. }) => Err(SyncError::Unexpected("a second Hello")),
            (HqState::Ready(actor), StoreMessage::RightsRequest(request)) => {
                // Zero points is a lookup: HQ answers with the customer and the account.
                if request.points < 0 || request.points > crate::loyalty::POINTS_TOTAL_MAX {
                    return Err(SyncError::Malformed(format!("a request for {} points", request.points)));
                }
                self.events.push_back(HqEvent::RightsRequest { actor, request });
                Ok(())
            }
            (_, StoreMessage::RightsRequest(_)) => Err(SyncError::Unexpected("a rights request before Welcome")),
            (HqState::Ready(actor), StoreMessage::PlaceOrder(request)) => {
                request.validate().map_err(|e| SyncError::Malformed(format!("order request: {e}")))?;
                self.events.push_back(HqEvent::PlaceOrder { actor, request });
                Ok(())
            }
            (_, StoreMessage::PlaceOrder(_)) => Err(SyncError::Unexpected("an order request before Welcome")),
            (HqState::Ready(actor), StoreMessage::FindSale(lookup)) => {
                if let Some(c) = &lookup.claim {
                    c.validate().map_err(|e| SyncError::Malformed(format!("return claim: {e}")))?;
                }
                self.events.push_back(HqEvent::FindSale { actor, lookup });
                Ok(())
            }
            (_, StoreMessage::FindSale(_)) => Err(SyncError::Unexpected("a sale lookup before Welcome")),
            (HqState::Ready(actor), StoreMessage::FindHistory(request)) => {
                self.events.push_back(HqEvent::FindHistory { actor, request });
                Ok(())
            }
            (_, StoreMessage::FindHistory(_)) => Err(SyncError::Unexpected("a history lookup before Welcome")),
            (
                HqState::Ready(actor),
                StoreMessage::Digest {
                    digests,
                    promotions_version,
                    price_schedule_version,
                    return_limits_version,
                    store_keys_upto,
                },
            ) => {
                // What the store holds now: a set or schedule that did not arrive is
                // offered again by the shell's next `offer_promotions`/`offer_price_schedule`.
                self.promotions_version = promotions_version;
                self.price_schedule_version = Some(price_schedule_version);
                self.return_terms_held = Some((return_limits_version, store_keys_upto));
                if digests.len() > DIGESTS_MAX {
                    return Err(SyncError::Malformed(format!("{} digests", digests.len())));
                }
                self.events.push_back(HqEvent::CompareDigests { actor, theirs: digests });
                Ok(())
            }
            (HqState::Ready(actor), StoreMessage::Counters { entries }) => {
                if entries.len() > COUNTERS_PAGE_MAX {
                    return Err(SyncError::Malformed(format!("{} counters in one message", entries.len())));
                }
                for c in &entries {
                    if c.actor != actor || c.location != self.store {
                        return Err(SyncError::ForeignWrite {
                            store: self.store,
                            what: format!("counter of actor {} at store {}", c.actor, c.location),
                        });
                    }
                    if !c.is_valid() {
                        return Err(SyncError::Malformed(format!("negative running total {c:?}")));
                    }
                }
                self.events.push_back(HqEvent::MergeCounters { entries });
                Ok(())
            }
            (_, StoreMessage::Digest { .. } | StoreMessage::Counters { .. }) => {
                Err(SyncError::Unexpected("digests or counters before Welcome"))
            }
            (HqState::AwaitingAccept(_), StoreMessage::Batch { .. }) => {
                Err(SyncError::Unexpected("a batch before Welcome"))
            }
            (HqState::Ready(actor), StoreMessage::Batch { entries, head }) => self.take_batch(actor, entries, head),
        }
    }

    /// A batch of the store's outbox: checked whole, then the run that continues what HQ
    /// holds is handed to the shell to apply.
    fn take_batch(&mut self, actor: ActorId, entries: Vec<OutboxEntry>, head: u64) -> Result<(), SyncError> {
        if entries.len() > BATCH_ENTRIES_MAX {
            return Err(SyncError::Malformed(format!("{} entries in one batch", entries.len())));
        }
        if !entries.windows(2).all(|w| w[0].seq < w[1].seq) {
            return Err(SyncError::Malformed("batch out of sequence order".into()));
        }
        for e in &entries {
            self.check_ownership(actor, e)?;
        }
        let mut next = self.applying + 1;
        let mut run: Vec<OutboxEntry> = Vec::new();
        for e in entries {
            if e.seq == next {
                next += 1;
                run.push(e);
            } else if e.seq > next {
                break; // a gap: the store resends from our acknowledgement
            }
        }
        match run.last().map(|e| e.seq) {
            Some(upto) => {
                self.applying = upto;
                self.events.push_back(HqEvent::Apply { actor, entries: run, upto, head });
            }
            // Nothing new (a resend, or a gap): repeat where we stand so the
            // store resends from there.
            None if self.applying == self.acked => self.transmits.push_back(HqMessage::Ack { upto: self.acked }),
            None => {}
        }
        Ok(())
    }

    /// A store may write only its own records and its own actor's counters.
    fn check_ownership(&self, actor: ActorId, e: &OutboxEntry) -> Result<(), SyncError> {
        let foreign = |what: String| Err(SyncError::ForeignWrite { store: self.store, what });
        match &e.change {
            Change::Loyalty { customer, entries } => {
                crate::loyalty::check_written_by(actor, entries).map_err(|e| match e {
                    crate::loyalty::EntryError::Foreign { writer, .. } => {
                        SyncError::ForeignWrite { store: self.store, what: format!("loyalty entry of actor {writer}") }
                    }
                    e => SyncError::Malformed(e.to_string()),
                })?;
                if let Some(c) = customer {
                    c.validate().map_err(|e| SyncError::Malformed(e.to_string()))?;
                }
            }
            Change::Sale { sale: Sale { id, .. }, counters } | Change::Return { ret: Return { id, .. }, counters } => {
                if id.store != self.store {
                    return foreign(format!("record {id}"));
                }
                self.check_counters(actor, counters)?;
            }
            Change::Movement { movement, counters } => {
                if movement.id.store != self.store {
                    return foreign(format!("movement {}", movement.id));
                }
                self.check_counters(actor, counters)?;
            }
            Change::Order { update, counters } => {
                if update.store != self.store {
                    return foreign(format!("an update of order {} of store {}", update.order, update.store));
                }
                self.check_counters(actor, counters)?;
            }
            Change::OrderPayment { payment } => {
                if payment.store != self.store {
                    return foreign(format!("the payment of order {} by store {}", payment.order, payment.store));
                }
                if let crate::orders::TillPayment::Paid { amount } = payment.outcome {
                    if amount.0 <= 0 {
                        return Err(SyncError::Malformed(format!("order {} paid {amount}", payment.order)));
                    }
                }
            }
        }
        Ok(())
    }

    /// The counters a record carries are the store's own actor's, at the store.
    fn check_counters(&self, actor: ActorId, counters: &[CounterEntry]) -> Result<(), SyncError> {
        for c in counters {
            if c.actor != actor || c.location != self.store {
                let what = format!("counter of actor {} at store {}", c.actor, c.location);
                return Err(SyncError::ForeignWrite { store: self.store, what });
            }
            if !c.is_valid() {
                return Err(SyncError::Malformed(format!("negative running total {c:?}")));
            }
        }
        Ok(())
    }

    /// The shell looked up the store's progress: finish the handshake.
    pub fn accept(&mut self, acked_seq: u64) {
        if let HqState::AwaitingAccept(actor) = self.state {
            self.state = HqState::Ready(actor);
            self.acked = acked_seq;
            self.applying = acked_seq;
            self.transmits.push_back(HqMessage::Welcome {
                version: self.protocol,
                store: self.store,
                acked_seq,
                software_version: Some(self.software_version.clone()),
            });
        }
    }

    /// The shell committed entries up to `upto` with the store's progress.
    pub fn handle_applied(&mut self, upto: u64) {
        self.acked = self.acked.max(upto);
        self.debug_check();
        self.transmits.push_back(HqMessage::Ack { upto: self.acked });
    }

    /// The shell could not apply from `from` on (e.g. its database failed): forget the
    /// in-flight run so the store's resend is applied again.
    pub fn handle_apply_failed(&mut self) {
        self.applying = self.acked;
        self.debug_check();
    }

    /// Asserts the sequence invariant: what the shell applied is never more than it was
    /// handed to apply (applied ≤ received). Checked in debug builds where the shell
    /// reports an apply (a shell applying more than it was handed is a programmer error),
    /// and by the seeded simulation after every step.
    pub fn check_invariants(&self) {
        assert!(self.acked <= self.applying, "applied {} beyond what was received ({})", self.acked, self.applying);
    }

    fn debug_check(&self) {
        if cfg!(debug_assertions) {
            self.check_invariants();
        }
    }

    /// The catalog version the store holds: from its `Hello`, then what was sent.
    pub fn catalog_version(&self) -> u64 {
        self.catalog_version
    }

    /// Offers a catalog version; sent only if the store has an older one.
    pub fn offer_catalog(&mut self, version: u64, items: &[CatalogItem]) {
        if !matches!(self.state, HqState::Ready(_)) || version <= self.catalog_version {
            return;
        }
        self.catalog_version = version;
        let mut pages = items.chunks(CATALOG_PAGE_ITEMS_MAX).peekable();
        if pages.peek().is_none() {
            self.transmits.push_back(HqMessage::CatalogPage { version, items: Vec::new(), last: true });
        }
        while let Some(page) = pages.next() {
            let last = pages.peek().is_none();
            self.transmits.push_back(HqMessage::CatalogPage { version, items: page.to_vec(), last });
        }
    }

    /// Whether the store would be sent promotions of `version` (the shell then reads
    /// them): it holds an older set and the connection carries promotions.
    pub fn needs_promotions(&self, version: u64) -> bool {
        matches!(self.state, HqState::Ready(_)) && version > self.promotions_version && self.protocol >= 4
    }

    /// Offers a set of promotions; sent, in pages, only if the store holds an older
    /// version and the connection's protocol carries promotions (4 on).
    pub fn offer_promotions(&mut self, version: u64, definitions: &[Definition]) {
        if !self.needs_promotions(version) {
            return;
        }
        self.promotions_version = version;
        let mut page: Vec<Definition> = Vec::new();
        let (mut first, mut page_bytes) = (0u32, 0);
        for d in definitions {
            let bytes = serde_json::to_string(d).map_or(0, |j| j.len());
            if !page.is_empty() && (page.len() >= PROMOTIONS_PAGE_MAX || page_bytes + bytes > PROMOTIONS_PAGE_BYTES_MAX)
            {
                let definitions = std::mem::take(&mut page);
                let next = first + definitions.len() as u32;
                self.transmits.push_back(HqMessage::PromotionsPage { version, first, definitions, last: false });
                (first, page_bytes) = (next, 0);
            }
            page_bytes += bytes;
            page.push(d.clone());
        }
        self.transmits.push_back(HqMessage::PromotionsPage { version, first, definitions: page, last: true });
    }

    /// Offers the deliveries and transfers the store has yet to receive (protocol 5 on):
    /// each goes as its own message; the store keeps each once.
    pub fn offer_inbound(&mut self, documents: &[Inbound]) {
        if !matches!(self.state, HqState::Ready(_)) || self.protocol < 5 {
            return;
        }
        for d in documents.iter().filter(|d| d.store == self.store) {
            self.transmits.push_back(HqMessage::Inbound(d.clone()));
        }
    }

    /// Offers the orders for pickup at this store that it has not yet accepted, and HQ's
    /// cancellations of orders whose final state the store has not yet told (protocol 5
    /// on): the store keeps each order once and ignores a cancellation of an order it
    /// already ended, so offering again is harmless.
    pub fn offer_orders(&mut self, orders: &[crate::orders::Order], cancels: &[crate::orders::OrderId]) {
        if !matches!(self.state, HqState::Ready(_)) || self.protocol < 5 {
            return;
        }
        for o in orders.iter().filter(|o| o.store == self.store) {
            self.transmits.push_back(HqMessage::Order(o.clone()));
        }
        for &order in cancels {
            self.transmits.push_back(HqMessage::OrderCancel { order });
        }
    }

    /// Whether the store would be sent the price schedule of `version` (the shell then
    /// reads it): the connection carries schedules (protocol 5 on), one is published, and
    /// the store holds an older one or has not said yet.
    pub fn needs_price_schedule(&self, version: u64) -> bool {
        matches!(self.state, HqState::Ready(_))
            && self.protocol >= 5
            && version > 0
            && self.price_schedule_version.is_none_or(|held| version > held)
    }

    /// Offers HQ's price schedule; sent only if [`Self::needs_price_schedule`]. The store
    /// says in its next `Digest` what it holds, so one that did not arrive goes again.
    pub fn offer_price_schedule(&mut self, version: u64, changes: &[crate::price_schedule::ScheduledPrice]) {
        if self.needs_price_schedule(version) {
            self.price_schedule_version = Some(version);
            self.transmits.push_back(HqMessage::PriceSchedule { version, changes: changes.to_vec() });
        }
    }

    /// Offers HQ's loyalty rules (version 0: none published yet, nothing is sent).
    pub fn offer_rules(&mut self, version: u64, rules: &LoyaltyRules) {
        if matches!(self.state, HqState::Ready(_)) && version > 0 {
            self.transmits.push_back(HqMessage::Rules { version, rules: rules.clone() });
        }
    }

    /// After comparing digests: if HQ lacks some of the store's own counters, ask for them.
    pub fn digests_compared(&mut self, own_differs: bool) {
        if own_differs && matches!(self.state, HqState::Ready(_)) {
            self.transmits.push_back(HqMessage::SendCounters);
        }
    }

    /// Tells the store which promotions a customer has had anywhere (protocol 5 on), ahead
    /// of the answer to its lookup.
    pub fn offer_promotions_used(&mut self, customer: &crate::loyalty::CustomerId, promotions: Vec<u32>) {
        if matches!(self.state, HqState::Ready(_)) && self.protocol >= 5 && !promotions.is_empty() {
            let promotions = promotions.into_iter().take(PROMOTIONS_MAX).collect();
            self.transmits.push_back(HqMessage::PromotionsUsed { customer: customer.clone(), promotions });
        }
    }

    /// Sends the answer to a rights request (after the grant is committed).
    pub fn answer_rights(&mut self, customer: Option<Customer>, answer: RightsAnswer) {
        if let Some(c) = customer {
            self.transmits.push_back(HqMessage::Loyalty { customers: vec![c], entries: Vec::new() });
        }
        self.transmits.push_back(HqMessage::Rights(answer));
    }

    /// Answers a till's order request.
    pub fn answer_order(&mut self, request_id: u64, answer: crate::orders::OrderAnswer) {
        self.transmits.push_back(HqMessage::OrderPlaced { request_id, answer });
    }

    /// What of HQ's return terms the store lacks, given HQ's limits version and its
    /// highest store key number: `Some(keys after)` when it lacks something — known
    /// only from its digests (protocol 5 on).
    pub fn needs_return_terms(&self, limits_version: u64, keys_head: u64) -> Option<u64> {
        if !matches!(self.state, HqState::Ready(_)) || self.protocol < 5 {
            return None;
        }
        let (limits, keys) = self.return_terms_held?;
        (limits_version > limits || keys_head > keys).then_some(keys)
    }

    /// Sends HQ's return terms (the shell read the keys after what
    /// [`Self::needs_return_terms`] said, in `keys_after`); counted as held, so the next
    /// offer sends only what is newer still, until the store's next digest says
    /// otherwise.
    pub fn offer_return_terms(&mut self, terms: crate::returns::ReturnTerms) {
        if self.needs_return_terms(terms.limits_version, terms.keys_upto).is_none() {
            return;
        }
        self.return_terms_held = Some((terms.limits_version, terms.keys_upto));
        self.transmits.push_back(HqMessage::ReturnTerms(terms));
    }

    /// Answers a till's sale lookup.
    pub fn answer_sale(&mut self, request_id: u64, answer: crate::returns::SaleAnswer) {
        self.transmits.push_back(HqMessage::SaleFound { request_id, answer });
    }

    /// Answers a till's history lookup (`None`: HQ does not know the card).
    pub fn answer_history(&mut self, request_id: u64, history: Option<crate::history::CustomerHistory>) {
        self.transmits.push_back(HqMessage::History { request_id, history });
    }

    /// Offers a view of the nearby stores' stock (excluding this store's own).
    pub fn offer_nearby_stock(&mut self, as_of_ms: i64, entries: &[NearbyStock]) {
        if !matches!(self.state, HqState::Ready(_)) {
            return;
        }
        let own = self.store;
        let entries: Vec<NearbyStock> = entries.iter().filter(|e| e.store != own).cloned().collect();
        let mut pages = entries.chunks(COUNTERS_PAGE_MAX).peekable();
        if pages.peek().is_none() {
            self.transmits.push_back(HqMessage::NearbyStock { as_of_ms, entries: Vec::new(), last: true });
        }
        while let Some(page) = pages.next() {
            let last = pages.peek().is_none();
            self.transmits.push_back(HqMessage::NearbyStock { as_of_ms, entries: page.to_vec(), last });
        }
    }

    /// Offers counter entries of other actors for this store's stock.
    pub fn offer_counters(&mut self, entries: &[CounterEntry]) {
        if !matches!(self.state, HqState::Ready(_)) {
            return;
        }
        for page in entries.chunks(COUNTERS_PAGE_MAX) {
            self.transmits.push_back(HqMessage::Counters { entries: page.to_vec() });
        }
    }

    pub fn poll_transmit(&mut self) -> Option<HqMessage> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<HqEvent> {
        self.events.pop_front()
    }
}

#[cfg(test)]
mod harness;
#[cfg(test)]
mod sim;
#[cfg(test)]
mod tests;
