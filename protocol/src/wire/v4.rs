//! Protocol 4 (`kassa-sync/4`), the current protocol: protocol 3 with promotions.
//! - Sales travel in data format 2 ([`crate::format::v2`]): each line says which
//!   promotions gave its discount.
//! - `Hello` carries the version of the promotions the store holds, after its catalog
//!   version; HQ sends a newer set as `PromotionsPage`s (appended to HQ's messages).
//! - A promotion travels as its stored definition: JSON of definition format 1
//!   ([`crate::promotions::definition`]), one string per promotion.
//!
//! **Frozen once released.** Variant order, field order and field types are the
//! encoding; `protocol/tests/fixtures/wire-v4/` holds a frame of every message. A change
//! to any message is a new protocol version beside this one.

use serde::{Deserialize, Serialize};

use super::{check_software_version, from, software, to, try_to};
use crate::format::{v1, v2, FormatError};
use crate::ids::{ActorId, StoreId};
use crate::promotions::definition::Definition;

/// What a store sends, in protocol 4.
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
        entries: Vec<v2::OutboxEntry>,
        head: u64,
    },
    RightsRequest(v1::RightsRequest),
    Digest {
        digests: Vec<v1::ActorDigest>,
        promotions_version: u64,
    },
    Counters {
        entries: Vec<v1::CounterEntry>,
    },
}

/// What HQ sends, in protocol 4.
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
                    software_version: software(4, software_version)?,
                }
            }
            D::Batch { entries, head } => StoreMessage::Batch { entries: try_to(entries)?, head: *head },
            D::RightsRequest(r) => StoreMessage::RightsRequest(r.into()),
            D::Digest { digests, promotions_version, .. } => {
                StoreMessage::Digest { digests: to(digests), promotions_version: *promotions_version }
            }
            D::Counters { entries } => StoreMessage::Counters { entries: to(entries) },
            D::PlaceOrder(_) => return Err(super::not_in_version(4, "orders for pickup")),
            D::FindSale(_) => return Err(super::not_in_version(4, "sales of other stores")),
            D::FindHistory(_) => return Err(super::not_in_version(4, "customer histories")),
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
            StoreMessage::Batch { entries, head } => D::Batch { entries: from(entries), head },
            StoreMessage::RightsRequest(r) => D::RightsRequest(r.into()),
            StoreMessage::Digest { digests, promotions_version } => D::Digest {
                digests: from(digests),
                promotions_version,
                price_schedule_version: 0,
                return_limits_version: 0,
                store_keys_upto: 0,
            },
            StoreMessage::Counters { entries } => D::Counters { entries: from(entries) },
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
                software_version: software(4, software_version)?,
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
            D::Inbound(_) => return Err(super::not_in_version(4, "inbound stock documents")),
            D::PromotionsUsed { .. } => return Err(super::not_in_version(4, "the promotions a customer has had")),
            D::PriceSchedule { .. } => return Err(super::not_in_version(4, "scheduled price changes")),
            D::SaleFound { .. } => return Err(super::not_in_version(4, "sales of other stores")),
            D::History { .. } => return Err(super::not_in_version(4, "customer histories")),
            D::ReturnTerms(_) => return Err(super::not_in_version(4, "return limits and store keys")),
            D::Order(_) | D::OrderCancel { .. } | D::OrderPlaced { .. } => {
                return Err(super::not_in_version(4, "orders for pickup"))
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
            HqMessage::PromotionsPage { version, first, definitions, last } => D::PromotionsPage {
                version,
                first,
                definitions: definitions.iter().map(|d| definition_from_json(d)).collect::<Result<_, _>>()?,
                last,
            },
        })
    }
}
