//! Protocol 5 (`kassa-sync/5`), the current protocol: protocol 4 with stock movements.
//! - `Digest` also says the version of the price schedule the store holds.
//! - Outbox entries travel in data format 3 ([`crate::format::v3`]): a change may be a
//!   stock movement (receipt, count adjustments, write-off, transfer out or in) with the
//!   store's running totals after it.
//! - HQ sends `Inbound` (appended to HQ's messages): a delivery or transfer the store
//!   is to receive, one document per message; and `PromotionsUsed`: the promotions a
//!   customer has had, with the answer to a lookup (single-use coupons); and
//!   `PriceSchedule`: the price changes HQ scheduled, whole and versioned; `Order`: an
//!   order for pickup at the store; `OrderCancel`: HQ cancels one; `OrderPlaced`: HQ's
//!   answer to a till's order.
//! - The store sends `PlaceOrder` (appended to the store's messages): a till orders for
//!   pickup what its store lacks (the endless aisle); and `FindSale`: a till asks for a
//!   sale of any store to take a return of it, which HQ answers with `SaleFound`.
//! - `Digest` also says the version of HQ's return limits the store holds and the
//!   highest store key it has; HQ answers an older one with `ReturnTerms`: the limits on
//!   offline returns of other stores' receipts and the keys their signatures verify with.
//! - Outbox entries may carry what happened to an order at the store (data format 3's
//!   `Change::Order`).
//!
//! **Frozen once released.** Variant order, field order and field types are the
//! encoding; `protocol/tests/fixtures/wire-v5/` holds a frame of every message. A change
//! to any message is a new protocol version beside this one.

use serde::{Deserialize, Serialize};

use super::{check_software_version, from, software, to};
use crate::format::{v1, v3, FormatError};
use crate::ids::{ActorId, StoreId};
use crate::loyalty::CustomerId;
use crate::promotions::definition::Definition;

/// What a store sends, in protocol 5.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StoreMessage {
    Hello {
        version: u32,
        actor: ActorId,
        catalog_version: u64,
        promotions_version: u64,
        head: u64,
        software_version: String,
    },
    Batch {
        entries: Vec<v3::OutboxEntry>,
        head: u64,
    },
    RightsRequest(v1::RightsRequest),
    Digest {
        digests: Vec<v1::ActorDigest>,
        promotions_version: u64,
        price_schedule_version: u64,
        return_limits_version: u64,
        store_keys_upto: u64,
    },
    Counters {
        entries: Vec<v1::CounterEntry>,
    },
    PlaceOrder(v3::OrderRequest),
    FindSale(v3::SaleLookup),
    FindHistory {
        request_id: u64,
        customer: CustomerId,
    },
}

/// What HQ sends, in protocol 5.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum HqMessage {
    Welcome { version: u32, store: StoreId, acked_seq: u64, software_version: String },
    CatalogPage { version: u64, items: Vec<v1::CatalogItem>, last: bool },
    Counters { entries: Vec<v1::CounterEntry> },
    Ack { upto: u64 },
    NearbyStock { as_of_ms: i64, entries: Vec<v1::NearbyStock>, last: bool },
    Rules { version: u64, rules: v1::LoyaltyRules },
    SendCounters,
    Rights(v1::RightsAnswer),
    Loyalty { customers: Vec<v1::Customer>, entries: Vec<v1::LoyaltyEntry> },
    Refused { reason: String },
    PromotionsPage { version: u64, first: u32, definitions: Vec<String>, last: bool },
    Inbound(v3::Inbound),
    PromotionsUsed { customer: CustomerId, promotions: Vec<u32> },
    PriceSchedule { version: u64, changes: Vec<v3::ScheduledPrice> },
    Order(v3::Order),
    OrderCancel { order: u64 },
    OrderPlaced { request_id: u64, answer: v3::OrderAnswer },
    SaleFound { request_id: u64, answer: v3::SaleAnswer },
    ReturnTerms(ReturnTerms),
    History { request_id: u64, history: Option<CustomerHistory> },
}

/// A customer's history (`crate::history`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerHistory {
    pub purchases: Vec<Purchase>,
    pub orders: Vec<OrderEntry>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Purchase {
    pub store: StoreId,
    pub seq: u64,
    pub is_return: bool,
    pub receipt_no: String,
    pub created_at_ms: i64,
    pub total_kopecks: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderEntry {
    pub id: u64,
    pub store: StoreId,
    pub channel: v3::OrderChannel,
    pub state: OrderState,
    pub total_kopecks: i64,
    pub created_at_ms: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderState {
    New,
    Accepted,
    Picking,
    Ready,
    Cancelled,
    Expired,
    Collected,
}

impl From<&crate::history::CustomerHistory> for CustomerHistory {
    fn from(h: &crate::history::CustomerHistory) -> Self {
        use crate::orders::OrderState as S;
        let purchases = h
            .purchases
            .iter()
            .map(|p| Purchase {
                store: p.doc.store,
                seq: p.doc.seq,
                is_return: p.kind == crate::history::DocKind::Return,
                receipt_no: p.receipt_no.clone(),
                created_at_ms: p.created_at_ms,
                total_kopecks: p.total.0,
            })
            .collect();
        let orders = h
            .orders
            .iter()
            .map(|o| OrderEntry {
                id: o.id.0,
                store: o.store,
                channel: o.channel.into(),
                state: match o.state {
                    S::New => OrderState::New,
                    S::Accepted => OrderState::Accepted,
                    S::Picking => OrderState::Picking,
                    S::Ready => OrderState::Ready,
                    S::Cancelled => OrderState::Cancelled,
                    S::Expired => OrderState::Expired,
                    S::Collected => OrderState::Collected,
                },
                total_kopecks: o.total.0,
                created_at_ms: o.created_at_ms,
            })
            .collect();
        CustomerHistory { purchases, orders }
    }
}

impl TryFrom<CustomerHistory> for crate::history::CustomerHistory {
    type Error = FormatError;

    fn try_from(h: CustomerHistory) -> Result<Self, FormatError> {
        use crate::history::{DocKind, OrderEntry as O, Purchase as P};
        use crate::orders::OrderState as S;
        let purchases = h
            .purchases
            .into_iter()
            .map(|p| P {
                doc: crate::ids::SaleId { store: p.store, seq: p.seq },
                kind: if p.is_return { DocKind::Return } else { DocKind::Sale },
                receipt_no: p.receipt_no,
                created_at_ms: p.created_at_ms,
                total: crate::Kopecks(p.total_kopecks),
            })
            .collect();
        let orders = h
            .orders
            .into_iter()
            .map(|o| O {
                id: crate::orders::OrderId(o.id),
                store: o.store,
                channel: o.channel.into(),
                state: match o.state {
                    OrderState::New => S::New,
                    OrderState::Accepted => S::Accepted,
                    OrderState::Picking => S::Picking,
                    OrderState::Ready => S::Ready,
                    OrderState::Cancelled => S::Cancelled,
                    OrderState::Expired => S::Expired,
                    OrderState::Collected => S::Collected,
                },
                total: crate::Kopecks(o.total_kopecks),
                created_at_ms: o.created_at_ms,
            })
            .collect();
        let history = crate::history::CustomerHistory { purchases, orders };
        history.validate().map_err(|reason| FormatError::Invalid { what: "customer history", reason })?;
        Ok(history)
    }
}

/// HQ's return limits and the stores' keys a store lacks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReturnTerms {
    pub limits_version: u64,
    pub per_receipt_kopecks: i64,
    pub per_shift_kopecks: i64,
    /// (number, store, public key)
    pub keys: Vec<(u64, u32, Vec<u8>)>,
    pub keys_after: u64,
    pub keys_upto: u64,
}

impl From<&crate::returns::ReturnTerms> for ReturnTerms {
    fn from(t: &crate::returns::ReturnTerms) -> Self {
        ReturnTerms {
            limits_version: t.limits_version,
            per_receipt_kopecks: t.limits.per_receipt.0,
            per_shift_kopecks: t.limits.per_shift.0,
            keys: t.keys.iter().map(|k| (k.seq, k.store.0, k.public_key.clone())).collect(),
            keys_after: t.keys_after,
            keys_upto: t.keys_upto,
        }
    }
}

impl TryFrom<ReturnTerms> for crate::returns::ReturnTerms {
    type Error = FormatError;

    fn try_from(t: ReturnTerms) -> Result<Self, FormatError> {
        use crate::returns::{ReturnLimits, StoreKey, STORE_KEYS_PER_MESSAGE_MAX, STORE_KEY_BYTES_MAX};
        let invalid = |reason: String| FormatError::Invalid { what: "return terms", reason };
        let limits = ReturnLimits {
            per_receipt: crate::Kopecks(t.per_receipt_kopecks),
            per_shift: crate::Kopecks(t.per_shift_kopecks),
        };
        limits.validate().map_err(invalid)?;
        if t.keys.len() > STORE_KEYS_PER_MESSAGE_MAX {
            return Err(invalid(format!("{} keys in one message", t.keys.len())));
        }
        let keys = t
            .keys
            .into_iter()
            .map(|(seq, store, public_key)| {
                if public_key.is_empty()
                    || public_key.len() > STORE_KEY_BYTES_MAX
                    || seq <= t.keys_after
                    || seq > t.keys_upto
                {
                    return Err(invalid(format!("store {store}'s key {seq} is malformed")));
                }
                Ok(StoreKey { seq, store: StoreId(store), public_key })
            })
            .collect::<Result<_, _>>()?;
        Ok(crate::returns::ReturnTerms {
            limits_version: t.limits_version,
            limits,
            keys,
            keys_after: t.keys_after,
            keys_upto: t.keys_upto,
        })
    }
}

fn definition_to_json(d: &Definition) -> String {
    serde_json::to_string(d).expect("a definition serialises")
}

fn definition_from_json(json: &str) -> Result<Definition, FormatError> {
    serde_json::from_str(json).map_err(|e| FormatError::Invalid { what: "promotion definition", reason: e.to_string() })
}

impl TryFrom<&super::StoreMessage> for StoreMessage {
    type Error = FormatError;

    fn try_from(m: &super::StoreMessage) -> Result<Self, FormatError> {
        use super::StoreMessage as D;
        Ok(match m {
            D::Hello { version, actor, catalog_version, promotions_version, head, software_version } => {
                StoreMessage::Hello {
                    version: *version,
                    actor: *actor,
                    catalog_version: *catalog_version,
                    promotions_version: *promotions_version,
                    head: *head,
                    software_version: software(5, software_version)?,
                }
            }
            D::Batch { entries, head } => StoreMessage::Batch { entries: to(entries), head: *head },
            D::RightsRequest(r) => StoreMessage::RightsRequest(r.into()),
            D::Digest {
                digests,
                promotions_version,
                price_schedule_version,
                return_limits_version,
                store_keys_upto,
            } => StoreMessage::Digest {
                digests: to(digests),
                promotions_version: *promotions_version,
                price_schedule_version: *price_schedule_version,
                return_limits_version: *return_limits_version,
                store_keys_upto: *store_keys_upto,
            },
            D::Counters { entries } => StoreMessage::Counters { entries: to(entries) },
            D::PlaceOrder(r) => StoreMessage::PlaceOrder(r.into()),
            D::FindSale(l) => StoreMessage::FindSale(l.into()),
            D::FindHistory(r) => StoreMessage::FindHistory { request_id: r.request_id, customer: r.customer.clone() },
        })
    }
}

impl TryFrom<StoreMessage> for super::StoreMessage {
    type Error = FormatError;

    fn try_from(m: StoreMessage) -> Result<Self, FormatError> {
        use super::StoreMessage as D;
        Ok(match m {
            StoreMessage::Hello { version, actor, catalog_version, promotions_version, head, software_version } => {
                check_software_version(&software_version)?;
                D::Hello {
                    version,
                    actor,
                    catalog_version,
                    promotions_version,
                    head,
                    software_version: Some(software_version),
                }
            }
            StoreMessage::Batch { entries, head } => {
                D::Batch { entries: entries.into_iter().map(TryInto::try_into).collect::<Result<_, _>>()?, head }
            }
            StoreMessage::RightsRequest(r) => D::RightsRequest(r.into()),
            StoreMessage::Digest {
                digests,
                promotions_version,
                price_schedule_version,
                return_limits_version,
                store_keys_upto,
            } => D::Digest {
                digests: from(digests),
                promotions_version,
                price_schedule_version,
                return_limits_version,
                store_keys_upto,
            },
            StoreMessage::Counters { entries } => D::Counters { entries: from(entries) },
            StoreMessage::PlaceOrder(r) => D::PlaceOrder(r.try_into()?),
            StoreMessage::FindSale(l) => D::FindSale(l.into()),
            StoreMessage::FindHistory { request_id, customer } => {
                D::FindHistory(crate::history::HistoryRequest { request_id, customer })
            }
        })
    }
}

impl TryFrom<&super::HqMessage> for HqMessage {
    type Error = FormatError;

    fn try_from(m: &super::HqMessage) -> Result<Self, FormatError> {
        use super::HqMessage as D;
        Ok(match m {
            D::Welcome { version, store, acked_seq, software_version } => HqMessage::Welcome {
                version: *version,
                store: *store,
                acked_seq: *acked_seq,
                software_version: software(5, software_version)?,
            },
            D::CatalogPage { version, items, last } => {
                HqMessage::CatalogPage { version: *version, items: to(items), last: *last }
            }
            D::Counters { entries } => HqMessage::Counters { entries: to(entries) },
            D::Ack { upto } => HqMessage::Ack { upto: *upto },
            D::NearbyStock { as_of_ms, entries, last } => {
                HqMessage::NearbyStock { as_of_ms: *as_of_ms, entries: to(entries), last: *last }
            }
            D::Rules { version, rules } => HqMessage::Rules { version: *version, rules: rules.into() },
            D::SendCounters => HqMessage::SendCounters,
            D::Rights(a) => HqMessage::Rights(a.into()),
            D::Loyalty { customers, entries } => HqMessage::Loyalty { customers: to(customers), entries: to(entries) },
            D::Refused { reason } => HqMessage::Refused { reason: reason.clone() },
            D::Inbound(d) => HqMessage::Inbound(d.into()),
            D::PromotionsUsed { customer, promotions } => {
                HqMessage::PromotionsUsed { customer: customer.clone(), promotions: promotions.clone() }
            }
            D::PriceSchedule { version, changes } => {
                HqMessage::PriceSchedule { version: *version, changes: to(changes) }
            }
            D::Order(o) => HqMessage::Order(o.into()),
            D::OrderCancel { order } => HqMessage::OrderCancel { order: order.0 },
            D::OrderPlaced { request_id, answer } => {
                HqMessage::OrderPlaced { request_id: *request_id, answer: answer.into() }
            }
            D::SaleFound { request_id, answer } => {
                HqMessage::SaleFound { request_id: *request_id, answer: answer.into() }
            }
            D::ReturnTerms(t) => HqMessage::ReturnTerms(t.into()),
            D::History { request_id, history } => {
                HqMessage::History { request_id: *request_id, history: history.as_ref().map(Into::into) }
            }
            D::PromotionsPage { version, first, definitions, last } => HqMessage::PromotionsPage {
                version: *version,
                first: *first,
                definitions: definitions.iter().map(definition_to_json).collect(),
                last: *last,
            },
        })
    }
}

impl TryFrom<HqMessage> for super::HqMessage {
    type Error = FormatError;

    fn try_from(m: HqMessage) -> Result<Self, FormatError> {
        use super::HqMessage as D;
        Ok(match m {
            HqMessage::Welcome { version, store, acked_seq, software_version } => {
                check_software_version(&software_version)?;
                D::Welcome { version, store, acked_seq, software_version: Some(software_version) }
            }
            HqMessage::CatalogPage { version, items, last } => D::CatalogPage {
                version,
                items: items.into_iter().map(TryInto::try_into).collect::<Result<_, _>>()?,
                last,
            },
            HqMessage::Counters { entries } => D::Counters { entries: from(entries) },
            HqMessage::Ack { upto } => D::Ack { upto },
            HqMessage::NearbyStock { as_of_ms, entries, last } => {
                D::NearbyStock { as_of_ms, entries: from(entries), last }
            }
            HqMessage::Rules { version, rules } => D::Rules { version, rules: rules.try_into()? },
            HqMessage::SendCounters => D::SendCounters,
            HqMessage::Rights(a) => D::Rights(a.into()),
            HqMessage::Loyalty { customers, entries } => {
                D::Loyalty { customers: from(customers), entries: from(entries) }
            }
            HqMessage::Refused { reason } => D::Refused { reason },
            HqMessage::Inbound(d) => D::Inbound(d.try_into()?),
            HqMessage::PromotionsUsed { customer, promotions } => D::PromotionsUsed { customer, promotions },
            HqMessage::Order(o) => D::Order(o.try_into()?),
            HqMessage::OrderCancel { order } => D::OrderCancel { order: crate::orders::OrderId(order) },
            HqMessage::OrderPlaced { request_id, answer } => D::OrderPlaced { request_id, answer: answer.try_into()? },
            HqMessage::SaleFound { request_id, answer } => D::SaleFound { request_id, answer: answer.into() },
            HqMessage::ReturnTerms(t) => D::ReturnTerms(t.try_into()?),
            HqMessage::History { request_id, history } => {
                D::History { request_id, history: history.map(TryInto::try_into).transpose()? }
            }
            HqMessage::PriceSchedule { version, changes } => D::PriceSchedule {
                version,
                changes: changes.into_iter().map(TryInto::try_into).collect::<Result<_, _>>()?,
            },
            HqMessage::PromotionsPage { version, first, definitions, last } => D::PromotionsPage {
                version,
                first,
                definitions: definitions.iter().map(|d| definition_from_json(d)).collect::<Result<_, _>>()?,
                last,
            },
        })
    }
}
