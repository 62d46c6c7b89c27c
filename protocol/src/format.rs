//! What is stored and sent: the boundary types, separate from the types the code
//! reasons with.
//!
//! The domain types ([`crate::sale::Sale`], [`crate::returns::Return`], …) change as the
//! product grows. The bytes a store wrote into its journal last year, and the bytes an
//! older store sends HQ today, must not: so each *format version* is a set of types
//! kept here frozen, with conversions to and from the domain types. Postcard is not
//! self-describing (a field added to a struct changes how every later byte is read),
//! so a change to what is stored or sent is a new version module beside the old one,
//! never an edit of an old one.
//!
//! - [`v1`]: the data as the first release (0.1.0) encoded it: sales, returns, stock
//!   counters, loyalty, catalog items, rules, and the outbox entry that carries them.
//!   The journal's records and outbox, print jobs, and wire protocols 2 and 3 use it.
//! - [`v2`]: sale lines with their category and the promotions that gave their
//!   discount (id, version, name, amount); the sale, the outbox change and the outbox
//!   entry that carry them. Everything else is as in format 1. Journal records and
//!   outbox entries from schema 4 on, and wire protocol 4, use it.
//! - [`v3`]: stock movements (receipts, counts, write-offs, transfers) as an outbox
//!   change, and the inbound documents HQ tells a store to expect. Everything else is
//!   as in format 2. Journal records and outbox entries from schema 5 on, and wire
//!   protocol 5, use it. Orders for pickup (an order as HQ sends it, and what the store
//!   tells HQ about it) were appended to format 3 before its release.
//!
//! The small identity types ([`crate::StoreId`], [`crate::ActorId`], [`crate::SaleId`],
//! [`crate::Sku`], [`crate::Kopecks`], [`crate::loyalty::CustomerId`],
//! [`crate::loyalty::Phone`]) are used as they are: their encodings are a plain number,
//! a string, or a pair of numbers, frozen as such (the fixtures under
//! `protocol/tests/fixtures/` would show any change).
//!
//! Conversions from the domain are total within a format's reach; a domain value an
//! older format has no form for (a stock movement in format 1 or 2) is a
//! [`FormatError`], never dropped silently. Conversions into the domain check what the domain checks and fail with a
//! [`FormatError`] naming what was wrong.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("{what}: {reason}")]
    Invalid { what: &'static str, reason: String },
}

fn invalid(what: &'static str, reason: impl ToString) -> FormatError {
    FormatError::Invalid { what, reason: reason.to_string() }
}

pub mod v1 {
    //! Format 1: the first release's encoding of Kassa's data. Frozen: never edit a type
    //! here (field order and variant order are the encoding).

    use serde::{Deserialize, Serialize};

    use super::{invalid, FormatError};
    use crate::loyalty::{CustomerId, Phone};
    use crate::{catalog, loyalty, returns, sale, stock, wire};
    use crate::{ActorId, Kopecks, SaleId, Sku, StoreId};

    #[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub enum VatRate {
        Vat20,
        Vat10,
        Vat0,
        None,
    }

    #[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub enum Unit {
        Piece,
        Kilogram,
    }

    #[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub enum TenderKind {
        Cash,
        Card,
        Points,
    }

    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Tender {
        pub kind: TenderKind,
        pub amount: Kopecks,
    }

    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct BasketLine {
        pub sku: Sku,
        pub name: String,
        pub unit: Unit,
        pub quantity: i64,
        pub list_price: Kopecks,
        pub price: Kopecks,
        pub vat: VatRate,
        pub amount: Kopecks,
        pub discount: Kopecks,
        pub marking: Option<String>,
    }

    #[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct LinePoints {
        pub paid_in_points: Kopecks,
        pub earned_points: i64,
    }

    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct SaleLoyalty {
        pub customer: CustomerId,
        pub point_value_kopecks: i64,
        pub redeemed_points: i64,
        pub lines: Vec<LinePoints>,
    }

    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Sale {
        pub id: SaleId,
        pub receipt_no: String,
        pub terminal: u16,
        pub cashier: String,
        pub created_at_ms: i64,
        pub lines: Vec<BasketLine>,
        pub tenders: Vec<Tender>,
        pub total: Kopecks,
        pub change: Kopecks,
        pub loyalty: Option<SaleLoyalty>,
    }

    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub enum ReturnKind {
        WithReceipt { sale: SaleId },
        WithoutReceipt { approved_by: String },
        Cancellation { sale: SaleId, approved_by: String },
    }

    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct ReturnLine {
        pub sale_line: Option<u32>,
        pub sku: Sku,
        pub name: String,
        pub unit: Unit,
        pub quantity: i64,
        pub vat: VatRate,
        pub amount: Kopecks,
    }

    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct ReturnLoyalty {
        pub customer: CustomerId,
        pub take_back: i64,
        pub give_back: i64,
        pub earn: i64,
        pub spend: i64,
        pub shortfall: i64,
        pub deducted: Kopecks,
        pub owed: Kopecks,
        pub money_refund: Kopecks,
    }

    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Return {
        pub id: SaleId,
        pub receipt_no: String,
        pub terminal: u16,
        pub cashier: String,
        pub created_at_ms: i64,
        pub kind: ReturnKind,
        pub lines: Vec<ReturnLine>,
        pub refunds: Vec<Tender>,
        pub total: Kopecks,
        pub loyalty: Option<ReturnLoyalty>,
    }

    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct CounterEntry {
        pub location: StoreId,
        pub sku: Sku,
        pub actor: ActorId,
        pub p: i64,
        pub n: i64,
    }

    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct ActorDigest {
        pub actor: ActorId,
        pub entries: u64,
        pub p: i64,
        pub n: i64,
    }

    #[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub enum EntryKind {
        Earned { actor: ActorId },
        Spent { actor: ActorId },
        Transfer { from: ActorId, to: ActorId },
    }

    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct LoyaltyEntry {
        pub customer: CustomerId,
        pub kind: EntryKind,
        pub total: i64,
    }

    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Customer {
        pub card: CustomerId,
        pub phone: Phone,
        pub name: Option<String>,
    }

    /// A GTIN as its 14 ASCII digits.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Gtin(pub [u8; 14]);

    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct CatalogItem {
        pub sku: Sku,
        pub gtin: Option<Gtin>,
        pub name: String,
        pub category: String,
        pub price: Kopecks,
        pub vat: VatRate,
        pub unit: Unit,
        pub plu: Option<u32>,
    }

    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct LoyaltyRules {
        pub earn_kopecks_per_point: i64,
        pub excluded_categories: Vec<String>,
        pub max_share_percent: u8,
        pub point_value_kopecks: i64,
    }

    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct RightsRequest {
        pub request_id: u64,
        pub customer: CustomerId,
        pub points: i64,
    }

    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct RightsGrant {
        pub request_id: u64,
        pub customer: CustomerId,
        pub granted: i64,
        pub entries: Vec<LoyaltyEntry>,
    }

    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub enum RightsAnswer {
        Grant(RightsGrant),
        UnknownCustomer { request_id: u64, customer: CustomerId },
    }

    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct NearbyStock {
        pub store: StoreId,
        pub sku: Sku,
        pub quantity: i64,
    }

    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub enum Change {
        Sale { sale: Sale, counters: Vec<CounterEntry> },
        Return { ret: Return, counters: Vec<CounterEntry> },
        Loyalty { customer: Option<Customer>, entries: Vec<LoyaltyEntry> },
    }

    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct OutboxEntry {
        pub seq: u64,
        pub change: Change,
    }

    // ---- from the domain ----

    impl From<catalog::VatRate> for VatRate {
        fn from(v: catalog::VatRate) -> Self {
            match v {
                catalog::VatRate::Vat20 => VatRate::Vat20,
                catalog::VatRate::Vat10 => VatRate::Vat10,
                catalog::VatRate::Vat0 => VatRate::Vat0,
                catalog::VatRate::None => VatRate::None,
            }
        }
    }

    impl From<VatRate> for catalog::VatRate {
        fn from(v: VatRate) -> Self {
            match v {
                VatRate::Vat20 => catalog::VatRate::Vat20,
                VatRate::Vat10 => catalog::VatRate::Vat10,
                VatRate::Vat0 => catalog::VatRate::Vat0,
                VatRate::None => catalog::VatRate::None,
            }
        }
    }

    impl From<catalog::Unit> for Unit {
        fn from(u: catalog::Unit) -> Self {
            match u {
                catalog::Unit::Piece => Unit::Piece,
                catalog::Unit::Kilogram => Unit::Kilogram,
            }
        }
    }

    impl From<Unit> for catalog::Unit {
        fn from(u: Unit) -> Self {
            match u {
                Unit::Piece => catalog::Unit::Piece,
                Unit::Kilogram => catalog::Unit::Kilogram,
            }
        }
    }

    impl From<sale::TenderKind> for TenderKind {
        fn from(k: sale::TenderKind) -> Self {
            match k {
                sale::TenderKind::Cash => TenderKind::Cash,
                sale::TenderKind::Card => TenderKind::Card,
                sale::TenderKind::Points => TenderKind::Points,
            }
        }
    }

    impl From<TenderKind> for sale::TenderKind {
        fn from(k: TenderKind) -> Self {
            match k {
                TenderKind::Cash => sale::TenderKind::Cash,
                TenderKind::Card => sale::TenderKind::Card,
                TenderKind::Points => sale::TenderKind::Points,
            }
        }
    }

    impl From<&sale::Tender> for Tender {
        fn from(t: &sale::Tender) -> Self {
            Tender { kind: t.kind.into(), amount: t.amount }
        }
    }

    impl From<Tender> for sale::Tender {
        fn from(t: Tender) -> Self {
            sale::Tender { kind: t.kind.into(), amount: t.amount }
        }
    }

    /// Format 1 of a line: its category and the record of its promotions are left out
    /// (what it cost and what came off it stay; a peer of format 1 sees the promotions'
    /// part as discount).
    impl From<&crate::basket::BasketLine> for BasketLine {
        fn from(l: &crate::basket::BasketLine) -> Self {
            BasketLine {
                sku: l.sku.clone(),
                name: l.name.clone(),
                unit: l.unit.into(),
                quantity: l.quantity,
                list_price: l.list_price,
                price: l.price,
                vat: l.vat.into(),
                amount: l.amount,
                discount: l.discount,
                marking: l.marking.clone(),
            }
        }
    }

    impl From<BasketLine> for crate::basket::BasketLine {
        fn from(l: BasketLine) -> Self {
            crate::basket::BasketLine {
                sku: l.sku,
                name: l.name,
                unit: l.unit.into(),
                quantity: l.quantity,
                list_price: l.list_price,
                price: l.price,
                vat: l.vat.into(),
                amount: l.amount,
                discount: l.discount,
                marking: l.marking,
                // Format 1 has neither: a line of the first release had no promotions.
                category: String::new(),
                promotions: Vec::new(),
            }
        }
    }

    impl From<&loyalty::SaleLoyalty> for SaleLoyalty {
        fn from(s: &loyalty::SaleLoyalty) -> Self {
            SaleLoyalty {
                customer: s.customer.clone(),
                point_value_kopecks: s.point_value_kopecks,
                redeemed_points: s.redeemed_points,
                lines: s
                    .lines
                    .iter()
                    .map(|l| LinePoints { paid_in_points: l.paid_in_points, earned_points: l.earned_points })
                    .collect(),
            }
        }
    }

    impl From<SaleLoyalty> for loyalty::SaleLoyalty {
        fn from(s: SaleLoyalty) -> Self {
            loyalty::SaleLoyalty {
                customer: s.customer,
                point_value_kopecks: s.point_value_kopecks,
                redeemed_points: s.redeemed_points,
                lines: s
                    .lines
                    .into_iter()
                    .map(|l| loyalty::LinePoints { paid_in_points: l.paid_in_points, earned_points: l.earned_points })
                    .collect(),
            }
        }
    }

    impl From<&sale::Sale> for Sale {
        fn from(s: &sale::Sale) -> Self {
            Sale {
                id: s.id,
                receipt_no: s.receipt_no.clone(),
                terminal: s.terminal,
                cashier: s.cashier.clone(),
                created_at_ms: s.created_at_ms,
                lines: s.lines.iter().map(Into::into).collect(),
                tenders: s.tenders.iter().map(Into::into).collect(),
                total: s.total,
                change: s.change,
                loyalty: s.loyalty.as_ref().map(Into::into),
            }
        }
    }

    impl From<Sale> for sale::Sale {
        fn from(s: Sale) -> Self {
            sale::Sale {
                id: s.id,
                receipt_no: s.receipt_no,
                terminal: s.terminal,
                cashier: s.cashier,
                created_at_ms: s.created_at_ms,
                lines: s.lines.into_iter().map(Into::into).collect(),
                tenders: s.tenders.into_iter().map(Into::into).collect(),
                total: s.total,
                change: s.change,
                loyalty: s.loyalty.map(Into::into),
            }
        }
    }

    impl From<&returns::ReturnKind> for ReturnKind {
        fn from(k: &returns::ReturnKind) -> Self {
            match k {
                returns::ReturnKind::WithReceipt { sale } => ReturnKind::WithReceipt { sale: *sale },
                returns::ReturnKind::WithoutReceipt { approved_by } => {
                    ReturnKind::WithoutReceipt { approved_by: approved_by.clone() }
                }
                returns::ReturnKind::Cancellation { sale, approved_by } => {
                    ReturnKind::Cancellation { sale: *sale, approved_by: approved_by.clone() }
                }
            }
        }
    }

    impl From<ReturnKind> for returns::ReturnKind {
        fn from(k: ReturnKind) -> Self {
            match k {
                ReturnKind::WithReceipt { sale } => returns::ReturnKind::WithReceipt { sale },
                ReturnKind::WithoutReceipt { approved_by } => returns::ReturnKind::WithoutReceipt { approved_by },
                ReturnKind::Cancellation { sale, approved_by } => {
                    returns::ReturnKind::Cancellation { sale, approved_by }
                }
            }
        }
    }

    impl From<&returns::ReturnLine> for ReturnLine {
        fn from(l: &returns::ReturnLine) -> Self {
            ReturnLine {
                sale_line: l.sale_line,
                sku: l.sku.clone(),
                name: l.name.clone(),
                unit: l.unit.into(),
                quantity: l.quantity,
                vat: l.vat.into(),
                amount: l.amount,
            }
        }
    }

    impl From<ReturnLine> for returns::ReturnLine {
        fn from(l: ReturnLine) -> Self {
            returns::ReturnLine {
                sale_line: l.sale_line,
                sku: l.sku,
                name: l.name,
                unit: l.unit.into(),
                quantity: l.quantity,
                vat: l.vat.into(),
                amount: l.amount,
            }
        }
    }

    impl From<&loyalty::ReturnLoyalty> for ReturnLoyalty {
        fn from(r: &loyalty::ReturnLoyalty) -> Self {
            ReturnLoyalty {
                customer: r.customer.clone(),
                take_back: r.take_back,
                give_back: r.give_back,
                earn: r.earn,
                spend: r.spend,
                shortfall: r.shortfall,
                deducted: r.deducted,
                owed: r.owed,
                money_refund: r.money_refund,
            }
        }
    }

    impl From<ReturnLoyalty> for loyalty::ReturnLoyalty {
        fn from(r: ReturnLoyalty) -> Self {
            loyalty::ReturnLoyalty {
                customer: r.customer,
                take_back: r.take_back,
                give_back: r.give_back,
                earn: r.earn,
                spend: r.spend,
                shortfall: r.shortfall,
                deducted: r.deducted,
                owed: r.owed,
                money_refund: r.money_refund,
            }
        }
    }

    impl From<&returns::Return> for Return {
        fn from(r: &returns::Return) -> Self {
            Return {
                id: r.id,
                receipt_no: r.receipt_no.clone(),
                terminal: r.terminal,
                cashier: r.cashier.clone(),
                created_at_ms: r.created_at_ms,
                kind: (&r.kind).into(),
                lines: r.lines.iter().map(Into::into).collect(),
                refunds: r.refunds.iter().map(Into::into).collect(),
                total: r.total,
                loyalty: r.loyalty.as_ref().map(Into::into),
            }
        }
    }

    impl From<Return> for returns::Return {
        fn from(r: Return) -> Self {
            returns::Return {
                id: r.id,
                receipt_no: r.receipt_no,
                terminal: r.terminal,
                cashier: r.cashier,
                created_at_ms: r.created_at_ms,
                kind: r.kind.into(),
                lines: r.lines.into_iter().map(Into::into).collect(),
                refunds: r.refunds.into_iter().map(Into::into).collect(),
                total: r.total,
                loyalty: r.loyalty.map(Into::into),
            }
        }
    }

    impl From<&stock::CounterEntry> for CounterEntry {
        fn from(c: &stock::CounterEntry) -> Self {
            CounterEntry { location: c.location, sku: c.sku.clone(), actor: c.actor, p: c.p, n: c.n }
        }
    }

    impl From<CounterEntry> for stock::CounterEntry {
        fn from(c: CounterEntry) -> Self {
            stock::CounterEntry { location: c.location, sku: c.sku, actor: c.actor, p: c.p, n: c.n }
        }
    }

    impl From<&stock::ActorDigest> for ActorDigest {
        fn from(d: &stock::ActorDigest) -> Self {
            ActorDigest { actor: d.actor, entries: d.entries, p: d.p, n: d.n }
        }
    }

    impl From<ActorDigest> for stock::ActorDigest {
        fn from(d: ActorDigest) -> Self {
            stock::ActorDigest { actor: d.actor, entries: d.entries, p: d.p, n: d.n }
        }
    }

    impl From<loyalty::EntryKind> for EntryKind {
        fn from(k: loyalty::EntryKind) -> Self {
            match k {
                loyalty::EntryKind::Earned { actor } => EntryKind::Earned { actor },
                loyalty::EntryKind::Spent { actor } => EntryKind::Spent { actor },
                loyalty::EntryKind::Transfer { from, to } => EntryKind::Transfer { from, to },
            }
        }
    }

    impl From<EntryKind> for loyalty::EntryKind {
        fn from(k: EntryKind) -> Self {
            match k {
                EntryKind::Earned { actor } => loyalty::EntryKind::Earned { actor },
                EntryKind::Spent { actor } => loyalty::EntryKind::Spent { actor },
                EntryKind::Transfer { from, to } => loyalty::EntryKind::Transfer { from, to },
            }
        }
    }

    impl From<&loyalty::LoyaltyEntry> for LoyaltyEntry {
        fn from(e: &loyalty::LoyaltyEntry) -> Self {
            LoyaltyEntry { customer: e.customer.clone(), kind: e.kind.into(), total: e.total }
        }
    }

    impl From<LoyaltyEntry> for loyalty::LoyaltyEntry {
        fn from(e: LoyaltyEntry) -> Self {
            loyalty::LoyaltyEntry { customer: e.customer, kind: e.kind.into(), total: e.total }
        }
    }

    impl From<&loyalty::Customer> for Customer {
        fn from(c: &loyalty::Customer) -> Self {
            Customer { card: c.card.clone(), phone: c.phone.clone(), name: c.name.clone() }
        }
    }

    impl From<Customer> for loyalty::Customer {
        fn from(c: Customer) -> Self {
            loyalty::Customer { card: c.card, phone: c.phone, name: c.name }
        }
    }

    impl From<&crate::gtin::Gtin> for Gtin {
        fn from(g: &crate::gtin::Gtin) -> Self {
            let mut digits = [b'0'; 14];
            digits.copy_from_slice(g.as_gtin14().as_bytes());
            Gtin(digits)
        }
    }

    impl TryFrom<Gtin> for crate::gtin::Gtin {
        type Error = FormatError;

        fn try_from(g: Gtin) -> Result<Self, FormatError> {
            let text = std::str::from_utf8(&g.0).map_err(|e| invalid("GTIN", e))?;
            crate::gtin::Gtin::parse(text).map_err(|e| invalid("GTIN", e))
        }
    }

    impl From<&catalog::CatalogItem> for CatalogItem {
        fn from(i: &catalog::CatalogItem) -> Self {
            CatalogItem {
                sku: i.sku.clone(),
                gtin: i.gtin.as_ref().map(Into::into),
                name: i.name.clone(),
                category: i.category.clone(),
                price: i.price,
                vat: i.vat.into(),
                unit: i.unit.into(),
                plu: i.plu,
            }
        }
    }

    impl TryFrom<CatalogItem> for catalog::CatalogItem {
        type Error = FormatError;

        fn try_from(i: CatalogItem) -> Result<Self, FormatError> {
            Ok(catalog::CatalogItem {
                sku: i.sku,
                gtin: i.gtin.map(TryInto::try_into).transpose()?,
                name: i.name,
                category: i.category,
                price: i.price,
                vat: i.vat.into(),
                unit: i.unit.into(),
                plu: i.plu,
            })
        }
    }

    impl From<&loyalty::LoyaltyRules> for LoyaltyRules {
        fn from(r: &loyalty::LoyaltyRules) -> Self {
            let record = loyalty::rules::RulesRecord::from(r.clone());
            LoyaltyRules {
                earn_kopecks_per_point: record.earn_kopecks_per_point,
                excluded_categories: record.excluded_categories,
                max_share_percent: record.max_share_percent,
                point_value_kopecks: record.point_value_kopecks,
            }
        }
    }

    impl TryFrom<LoyaltyRules> for loyalty::LoyaltyRules {
        type Error = FormatError;

        fn try_from(r: LoyaltyRules) -> Result<Self, FormatError> {
            loyalty::LoyaltyRules::try_from(loyalty::rules::RulesRecord {
                earn_kopecks_per_point: r.earn_kopecks_per_point,
                excluded_categories: r.excluded_categories,
                max_share_percent: r.max_share_percent,
                point_value_kopecks: r.point_value_kopecks,
            })
            .map_err(|e| invalid("loyalty rules", e))
        }
    }

    impl From<&loyalty::RightsRequest> for RightsRequest {
        fn from(r: &loyalty::RightsRequest) -> Self {
            RightsRequest { request_id: r.request_id, customer: r.customer.clone(), points: r.points }
        }
    }

    impl From<RightsRequest> for loyalty::RightsRequest {
        fn from(r: RightsRequest) -> Self {
            loyalty::RightsRequest { request_id: r.request_id, customer: r.customer, points: r.points }
        }
    }

    impl From<&loyalty::RightsAnswer> for RightsAnswer {
        fn from(a: &loyalty::RightsAnswer) -> Self {
            match a {
                loyalty::RightsAnswer::Grant(g) => RightsAnswer::Grant(RightsGrant {
                    request_id: g.request_id,
                    customer: g.customer.clone(),
                    granted: g.granted,
                    entries: g.entries.iter().map(Into::into).collect(),
                }),
                loyalty::RightsAnswer::UnknownCustomer { request_id, customer } => {
                    RightsAnswer::UnknownCustomer { request_id: *request_id, customer: customer.clone() }
                }
            }
        }
    }

    impl From<RightsAnswer> for loyalty::RightsAnswer {
        fn from(a: RightsAnswer) -> Self {
            match a {
                RightsAnswer::Grant(g) => loyalty::RightsAnswer::Grant(loyalty::RightsGrant {
                    request_id: g.request_id,
                    customer: g.customer,
                    granted: g.granted,
                    entries: g.entries.into_iter().map(Into::into).collect(),
                }),
                RightsAnswer::UnknownCustomer { request_id, customer } => {
                    loyalty::RightsAnswer::UnknownCustomer { request_id, customer }
                }
            }
        }
    }

    impl From<&wire::NearbyStock> for NearbyStock {
        fn from(n: &wire::NearbyStock) -> Self {
            NearbyStock { store: n.store, sku: n.sku.clone(), quantity: n.quantity }
        }
    }

    impl From<NearbyStock> for wire::NearbyStock {
        fn from(n: NearbyStock) -> Self {
            wire::NearbyStock { store: n.store, sku: n.sku, quantity: n.quantity }
        }
    }

    /// A stock movement has no form in format 1 (it came with format 3).
    impl TryFrom<&wire::Change> for Change {
        type Error = FormatError;

        fn try_from(c: &wire::Change) -> Result<Self, FormatError> {
            Ok(match c {
                wire::Change::Sale { sale, counters } => {
                    Change::Sale { sale: sale.into(), counters: counters.iter().map(Into::into).collect() }
                }
                wire::Change::Return { ret, counters } => {
                    Change::Return { ret: ret.into(), counters: counters.iter().map(Into::into).collect() }
                }
                wire::Change::Loyalty { customer, entries } => Change::Loyalty {
                    customer: customer.as_ref().map(Into::into),
                    entries: entries.iter().map(Into::into).collect(),
                },
                wire::Change::Order { .. } | wire::Change::OrderPayment { .. } => {
                    return Err(super::invalid("outbox entry", "an order's update needs data format 3 (protocol 5)"))
                }
                wire::Change::Movement { .. } => {
                    return Err(super::invalid("outbox entry", "a stock movement needs data format 3 (protocol 5)"))
                }
            })
        }
    }

    impl From<Change> for wire::Change {
        fn from(c: Change) -> Self {
            match c {
                Change::Sale { sale, counters } => {
                    wire::Change::Sale { sale: sale.into(), counters: counters.into_iter().map(Into::into).collect() }
                }
                Change::Return { ret, counters } => {
                    wire::Change::Return { ret: ret.into(), counters: counters.into_iter().map(Into::into).collect() }
                }
                Change::Loyalty { customer, entries } => wire::Change::Loyalty {
                    customer: customer.map(Into::into),
                    entries: entries.into_iter().map(Into::into).collect(),
                },
            }
        }
    }

    impl TryFrom<&wire::OutboxEntry> for OutboxEntry {
        type Error = FormatError;

        fn try_from(e: &wire::OutboxEntry) -> Result<Self, FormatError> {
            Ok(OutboxEntry { seq: e.seq, change: (&e.change).try_into()? })
        }
    }

    impl From<OutboxEntry> for wire::OutboxEntry {
        fn from(e: OutboxEntry) -> Self {
            wire::OutboxEntry { seq: e.seq, change: e.change.into() }
        }
    }

    /// Decodes a postcard blob of format 1.
    pub fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &'static str) -> Result<T, FormatError> {
        postcard::from_bytes(bytes).map_err(|e| invalid(what, e))
    }

    /// Encodes a value of format 1 (postcard of plain data cannot fail).
    pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
        postcard::to_allocvec(value).expect("postcard encodes plain data")
    }
}

pub mod v2 {
    //! Format 2: format 1 with sale lines that say which promotions gave their discount.
    //! Frozen once released, like [`super::v1`]; types not listed here are format 1's.

    use serde::{Deserialize, Serialize};

    use super::{v1, FormatError};
    use crate::{sale, wire};
    use crate::{Kopecks, SaleId, Sku};

    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct LinePromotion {
        pub promotion: u32,
        pub version: u32,
        pub name: String,
        pub amount: Kopecks,
    }

    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct BasketLine {
        pub sku: Sku,
        pub name: String,
        pub category: String,
        pub unit: v1::Unit,
        pub quantity: i64,
        pub list_price: Kopecks,
        pub price: Kopecks,
        pub vat: v1::VatRate,
        pub amount: Kopecks,
        pub discount: Kopecks,
        pub promotions: Vec<LinePromotion>,
        pub marking: Option<String>,
    }

    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Sale {
        pub id: SaleId,
        pub receipt_no: String,
        pub terminal: u16,
        pub cashier: String,
        pub created_at_ms: i64,
        pub lines: Vec<BasketLine>,
        pub tenders: Vec<v1::Tender>,
        pub total: Kopecks,
        pub change: Kopecks,
        pub loyalty: Option<v1::SaleLoyalty>,
    }

    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub enum Change {
        Sale { sale: Sale, counters: Vec<v1::CounterEntry> },
        Return { ret: v1::Return, counters: Vec<v1::CounterEntry> },
        Loyalty { customer: Option<v1::Customer>, entries: Vec<v1::LoyaltyEntry> },
    }

    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct OutboxEntry {
        pub seq: u64,
        pub change: Change,
    }

    impl From<&crate::basket::BasketLine> for BasketLine {
        fn from(l: &crate::basket::BasketLine) -> Self {
            BasketLine {
                sku: l.sku.clone(),
                name: l.name.clone(),
                category: l.category.clone(),
                unit: l.unit.into(),
                quantity: l.quantity,
                list_price: l.list_price,
                price: l.price,
                vat: l.vat.into(),
                amount: l.amount,
                discount: l.discount,
                promotions: l
                    .promotions
                    .iter()
                    .map(|p| LinePromotion {
                        promotion: p.promotion,
                        version: p.version,
                        name: p.name.clone(),
                        amount: p.amount,
                    })
                    .collect(),
                marking: l.marking.clone(),
            }
        }
    }

    impl From<BasketLine> for crate::basket::BasketLine {
        fn from(l: BasketLine) -> Self {
            crate::basket::BasketLine {
                sku: l.sku,
                name: l.name,
                category: l.category,
                unit: l.unit.into(),
                quantity: l.quantity,
                list_price: l.list_price,
                price: l.price,
                vat: l.vat.into(),
                amount: l.amount,
                discount: l.discount,
                promotions: l
                    .promotions
                    .into_iter()
                    .map(|p| crate::basket::LinePromotion {
                        promotion: p.promotion,
                        version: p.version,
                        name: p.name,
                        amount: p.amount,
                    })
                    .collect(),
                marking: l.marking,
            }
        }
    }

    impl From<&sale::Sale> for Sale {
        fn from(s: &sale::Sale) -> Self {
            Sale {
                id: s.id,
                receipt_no: s.receipt_no.clone(),
                terminal: s.terminal,
                cashier: s.cashier.clone(),
                created_at_ms: s.created_at_ms,
                lines: s.lines.iter().map(Into::into).collect(),
                tenders: s.tenders.iter().map(Into::into).collect(),
                total: s.total,
                change: s.change,
                loyalty: s.loyalty.as_ref().map(Into::into),
            }
        }
    }

    impl From<Sale> for sale::Sale {
        fn from(s: Sale) -> Self {
            sale::Sale {
                id: s.id,
                receipt_no: s.receipt_no,
                terminal: s.terminal,
                cashier: s.cashier,
                created_at_ms: s.created_at_ms,
                lines: s.lines.into_iter().map(Into::into).collect(),
                tenders: s.tenders.into_iter().map(Into::into).collect(),
                total: s.total,
                change: s.change,
                loyalty: s.loyalty.map(Into::into),
            }
        }
    }

    /// A stock movement has no form in format 2 (it came with format 3).
    impl TryFrom<&wire::Change> for Change {
        type Error = FormatError;

        fn try_from(c: &wire::Change) -> Result<Self, FormatError> {
            Ok(match c {
                wire::Change::Sale { sale, counters } => {
                    Change::Sale { sale: sale.into(), counters: counters.iter().map(Into::into).collect() }
                }
                wire::Change::Return { ret, counters } => {
                    Change::Return { ret: ret.into(), counters: counters.iter().map(Into::into).collect() }
                }
                wire::Change::Loyalty { customer, entries } => Change::Loyalty {
                    customer: customer.as_ref().map(Into::into),
                    entries: entries.iter().map(Into::into).collect(),
                },
                wire::Change::Order { .. } | wire::Change::OrderPayment { .. } => {
                    return Err(super::invalid("outbox entry", "an order's update needs data format 3 (protocol 5)"))
                }
                wire::Change::Movement { .. } => {
                    return Err(super::invalid("outbox entry", "a stock movement needs data format 3 (protocol 5)"))
                }
            })
        }
    }

    impl From<Change> for wire::Change {
        fn from(c: Change) -> Self {
            match c {
                Change::Sale { sale, counters } => {
                    wire::Change::Sale { sale: sale.into(), counters: counters.into_iter().map(Into::into).collect() }
                }
                Change::Return { ret, counters } => {
                    wire::Change::Return { ret: ret.into(), counters: counters.into_iter().map(Into::into).collect() }
                }
                Change::Loyalty { customer, entries } => wire::Change::Loyalty {
                    customer: customer.map(Into::into),
                    entries: entries.into_iter().map(Into::into).collect(),
                },
            }
        }
    }

    impl TryFrom<&wire::OutboxEntry> for OutboxEntry {
        type Error = FormatError;

        fn try_from(e: &wire::OutboxEntry) -> Result<Self, FormatError> {
            Ok(OutboxEntry { seq: e.seq, change: (&e.change).try_into()? })
        }
    }

    impl From<OutboxEntry> for wire::OutboxEntry {
        fn from(e: OutboxEntry) -> Self {
            wire::OutboxEntry { seq: e.seq, change: e.change.into() }
        }
    }
}

pub mod v3 {
    //! Format 3: format 2 with stock movements. Frozen once released, like [`super::v1`];
    //! types not listed here are format 2's or format 1's.

    use serde::{Deserialize, Serialize};

    use super::{invalid, v1, v2, FormatError};
    use crate::loyalty::{CustomerId, Phone};
    use crate::movements as domain;
    use crate::orders as order;
    use crate::{wire, Kopecks, SaleId, Sku, StoreId};

    #[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct MovementId {
        pub store: StoreId,
        pub seq: u64,
    }

    #[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub enum WriteOffReason {
        Damaged,
        Expired,
        Theft,
        Other,
    }

    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub enum MovementKind {
        Receipt { delivery: Option<u64> },
        WriteOff { reason: WriteOffReason },
        Count { count: u64 },
        TransferOut { to: StoreId },
        TransferIn { transfer: MovementId },
    }

    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct MovementLine {
        pub sku: Sku,
        pub name: String,
        pub quantity: i64,
        pub expected: Option<i64>,
    }

    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Movement {
        pub id: MovementId,
        pub kind: MovementKind,
        pub lines: Vec<MovementLine>,
        pub by: String,
        pub approved_by: Option<String>,
        pub note: String,
        pub created_at_ms: i64,
    }

    #[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub enum InboundSource {
        Delivery(u64),
        Transfer(MovementId),
    }

    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct InboundLine {
        pub sku: Sku,
        pub name: String,
        pub quantity: i64,
    }

    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Inbound {
        pub source: InboundSource,
        pub store: StoreId,
        pub lines: Vec<InboundLine>,
        pub created_at_ms: i64,
    }

    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub enum Change {
        Sale {
            sale: v2::Sale,
            counters: Vec<v1::CounterEntry>,
        },
        Return {
            ret: v1::Return,
            counters: Vec<v1::CounterEntry>,
        },
        Loyalty {
            customer: Option<v1::Customer>,
            entries: Vec<v1::LoyaltyEntry>,
        },
        Movement {
            movement: Movement,
            counters: Vec<v1::CounterEntry>,
        },
        Order {
            update: OrderUpdate,
            counters: Vec<v1::CounterEntry>,
        },
        /// The ordering till's word on an order it placed to be paid there.
        OrderPayment {
            payment: OrderPayment,
        },
    }

    #[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub enum OrderChannel {
        Online,
        Store(StoreId),
    }

    #[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub enum Payment {
        Prepaid,
        AtPickup,
    }

    /// An order for pickup, as HQ sends it to its store.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Order {
        pub id: u64,
        pub store: StoreId,
        pub channel: OrderChannel,
        pub customer: Option<CustomerId>,
        pub phone: Option<Phone>,
        pub note: String,
        pub lines: Vec<v2::BasketLine>,
        pub payment: Payment,
        pub created_at_ms: i64,
        pub expires_at_ms: i64,
    }

    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub enum OrderEvent {
        Accepted,
        Picking,
        Ready,
        Collected { taken: Vec<i64>, sale: Option<SaleId> },
        Expired,
        Cancelled,
    }

    /// A till's order for a store (the endless aisle), as the store sends it.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct OrderRequest {
        pub request_id: u64,
        pub store: StoreId,
        pub lines: Vec<(Sku, i64)>,
        pub payment: Payment,
        pub customer: Option<CustomerId>,
        pub phone: Option<Phone>,
        pub note: String,
        pub pickup_hours: u32,
    }

    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub enum OrderAnswer {
        Placed(Order),
        Refused { code: String, message: String },
    }

    /// What a store tells HQ about one of its orders.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct OrderUpdate {
        pub order: u64,
        pub store: StoreId,
        pub event: OrderEvent,
        pub at_ms: i64,
        pub by: String,
    }

    /// A till's question for a sale of any store.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct SaleLookup {
        pub request_id: u64,
        pub sale: SaleRef,
        /// (key, lines) of a return claim (see `returns::ReturnClaim`).
        pub claim: Option<(String, Vec<(u32, i64)>)>,
    }

    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub enum SaleRef {
        Id(SaleId),
        ReceiptNo(String),
        Order(u64),
    }

    /// HQ's answer: the sale, what was returned of each line, what those returns refunded.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub enum SaleAnswer {
        Found { sale: Box<v2::Sale>, returned: Vec<(i64, Kopecks)>, refunds: Vec<v1::Tender>, loyalty_owed: Kopecks },
        NotFound,
    }

    impl From<&crate::returns::SaleLookup> for SaleLookup {
        fn from(l: &crate::returns::SaleLookup) -> Self {
            let sale = match &l.sale {
                crate::returns::SaleRef::Id(id) => SaleRef::Id(*id),
                crate::returns::SaleRef::ReceiptNo(no) => SaleRef::ReceiptNo(no.clone()),
                crate::returns::SaleRef::Order(id) => SaleRef::Order(id.0),
            };
            let claim = l.claim.as_ref().map(|c| (c.key.clone(), c.lines.clone()));
            SaleLookup { request_id: l.request_id, sale, claim }
        }
    }

    impl From<SaleLookup> for crate::returns::SaleLookup {
        fn from(l: SaleLookup) -> Self {
            let sale = match l.sale {
                SaleRef::Id(id) => crate::returns::SaleRef::Id(id),
                SaleRef::ReceiptNo(no) => crate::returns::SaleRef::ReceiptNo(no),
                SaleRef::Order(id) => crate::returns::SaleRef::Order(crate::orders::OrderId(id)),
            };
            let claim = l.claim.map(|(key, lines)| crate::returns::ReturnClaim { key, lines });
            crate::returns::SaleLookup { request_id: l.request_id, sale, claim }
        }
    }

    impl From<&crate::returns::SaleAnswer> for SaleAnswer {
        fn from(a: &crate::returns::SaleAnswer) -> Self {
            match a {
                crate::returns::SaleAnswer::Found { sale, returned, refunds, loyalty_owed } => SaleAnswer::Found {
                    sale: Box::new(sale.as_ref().into()),
                    returned: returned.clone(),
                    refunds: refunds.iter().map(Into::into).collect(),
                    loyalty_owed: *loyalty_owed,
                },
                crate::returns::SaleAnswer::NotFound => SaleAnswer::NotFound,
            }
        }
    }

    impl From<SaleAnswer> for crate::returns::SaleAnswer {
        fn from(a: SaleAnswer) -> Self {
            match a {
                SaleAnswer::Found { sale, returned, refunds, loyalty_owed } => crate::returns::SaleAnswer::Found {
                    sale: Box::new((*sale).into()),
                    returned,
                    refunds: refunds.into_iter().map(Into::into).collect(),
                    loyalty_owed,
                },
                SaleAnswer::NotFound => crate::returns::SaleAnswer::NotFound,
            }
        }
    }

    /// What a store says of an order its till placed to be paid there.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct OrderPayment {
        pub order: u64,
        pub store: StoreId,
        pub outcome: TillPayment,
        pub at_ms: i64,
    }

    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub enum TillPayment {
        Paid { amount: Kopecks },
        Abandoned,
    }

    /// A scheduled price change: from local day `day` (since 1970-01-01), minute `minute`.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct ScheduledPrice {
        pub sku: Sku,
        pub day: i32,
        pub minute: u16,
        pub price: crate::Kopecks,
    }

    impl From<&crate::price_schedule::ScheduledPrice> for ScheduledPrice {
        fn from(c: &crate::price_schedule::ScheduledPrice) -> Self {
            ScheduledPrice { sku: c.sku.clone(), day: c.at.day, minute: c.at.minute, price: c.price }
        }
    }

    /// A minute of the day is below 1440; the schedule's own rules are checked where the
    /// whole schedule is built.
    impl TryFrom<ScheduledPrice> for crate::price_schedule::ScheduledPrice {
        type Error = FormatError;

        fn try_from(c: ScheduledPrice) -> Result<Self, FormatError> {
            if c.minute >= 1440 {
                return Err(invalid("scheduled price", format!("minute {} of a day", c.minute)));
            }
            let at = crate::promotions::LocalTime { day: c.day, minute: c.minute };
            Ok(crate::price_schedule::ScheduledPrice { sku: c.sku, at, price: c.price })
        }
    }

    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct OutboxEntry {
        pub seq: u64,
        pub change: Change,
    }

    impl From<domain::MovementId> for MovementId {
        fn from(i: domain::MovementId) -> Self {
            MovementId { store: i.store, seq: i.seq }
        }
    }

    impl From<MovementId> for domain::MovementId {
        fn from(i: MovementId) -> Self {
            domain::MovementId { store: i.store, seq: i.seq }
        }
    }

    impl From<domain::WriteOffReason> for WriteOffReason {
        fn from(r: domain::WriteOffReason) -> Self {
            match r {
                domain::WriteOffReason::Damaged => WriteOffReason::Damaged,
                domain::WriteOffReason::Expired => WriteOffReason::Expired,
                domain::WriteOffReason::Theft => WriteOffReason::Theft,
                domain::WriteOffReason::Other => WriteOffReason::Other,
            }
        }
    }

    impl From<WriteOffReason> for domain::WriteOffReason {
        fn from(r: WriteOffReason) -> Self {
            match r {
                WriteOffReason::Damaged => domain::WriteOffReason::Damaged,
                WriteOffReason::Expired => domain::WriteOffReason::Expired,
                WriteOffReason::Theft => domain::WriteOffReason::Theft,
                WriteOffReason::Other => domain::WriteOffReason::Other,
            }
        }
    }

    impl From<&domain::MovementKind> for MovementKind {
        fn from(k: &domain::MovementKind) -> Self {
            match *k {
                domain::MovementKind::Receipt { delivery } => MovementKind::Receipt { delivery },
                domain::MovementKind::WriteOff { reason } => MovementKind::WriteOff { reason: reason.into() },
                domain::MovementKind::Count { count } => MovementKind::Count { count },
                domain::MovementKind::TransferOut { to } => MovementKind::TransferOut { to },
                domain::MovementKind::TransferIn { transfer } => MovementKind::TransferIn { transfer: transfer.into() },
            }
        }
    }

    impl From<MovementKind> for domain::MovementKind {
        fn from(k: MovementKind) -> Self {
            match k {
                MovementKind::Receipt { delivery } => domain::MovementKind::Receipt { delivery },
                MovementKind::WriteOff { reason } => domain::MovementKind::WriteOff { reason: reason.into() },
                MovementKind::Count { count } => domain::MovementKind::Count { count },
                MovementKind::TransferOut { to } => domain::MovementKind::TransferOut { to },
                MovementKind::TransferIn { transfer } => domain::MovementKind::TransferIn { transfer: transfer.into() },
            }
        }
    }

    impl From<&domain::Movement> for Movement {
        fn from(m: &domain::Movement) -> Self {
            Movement {
                id: m.id.into(),
                kind: (&m.kind).into(),
                lines: m
                    .lines
                    .iter()
                    .map(|l| MovementLine {
                        sku: l.sku.clone(),
                        name: l.name.clone(),
                        quantity: l.quantity,
                        expected: l.expected,
                    })
                    .collect(),
                by: m.by.clone(),
                approved_by: m.approved_by.clone(),
                note: m.note.clone(),
                created_at_ms: m.created_at_ms,
            }
        }
    }

    /// Checks what [`domain::Movement::validate`] checks.
    impl TryFrom<Movement> for domain::Movement {
        type Error = FormatError;

        fn try_from(m: Movement) -> Result<Self, FormatError> {
            let movement = domain::Movement {
                id: m.id.into(),
                kind: m.kind.into(),
                lines: m
                    .lines
                    .into_iter()
                    .map(|l| domain::MovementLine {
                        sku: l.sku,
                        name: l.name,
                        quantity: l.quantity,
                        expected: l.expected,
                    })
                    .collect(),
                by: m.by,
                approved_by: m.approved_by,
                note: m.note,
                created_at_ms: m.created_at_ms,
            };
            movement.validate().map_err(|e| invalid("stock movement", e))?;
            Ok(movement)
        }
    }

    impl From<&domain::Inbound> for Inbound {
        fn from(d: &domain::Inbound) -> Self {
            Inbound {
                source: match d.source {
                    domain::InboundSource::Delivery(n) => InboundSource::Delivery(n),
                    domain::InboundSource::Transfer(id) => InboundSource::Transfer(id.into()),
                },
                store: d.store,
                lines: d
                    .lines
                    .iter()
                    .map(|l| InboundLine { sku: l.sku.clone(), name: l.name.clone(), quantity: l.quantity })
                    .collect(),
                created_at_ms: d.created_at_ms,
            }
        }
    }

    /// Checks what [`domain::Inbound::validate`] checks.
    impl TryFrom<Inbound> for domain::Inbound {
        type Error = FormatError;

        fn try_from(d: Inbound) -> Result<Self, FormatError> {
            let inbound = domain::Inbound {
                source: match d.source {
                    InboundSource::Delivery(n) => domain::InboundSource::Delivery(n),
                    InboundSource::Transfer(id) => domain::InboundSource::Transfer(id.into()),
                },
                store: d.store,
                lines: d
                    .lines
                    .into_iter()
                    .map(|l| domain::InboundLine { sku: l.sku, name: l.name, quantity: l.quantity })
                    .collect(),
                created_at_ms: d.created_at_ms,
            };
            inbound.validate().map_err(|e| invalid("inbound document", e))?;
            Ok(inbound)
        }
    }

    impl From<&wire::Change> for Change {
        fn from(c: &wire::Change) -> Self {
            let counters = |c: &[crate::stock::CounterEntry]| c.iter().map(Into::into).collect();
            match c {
                wire::Change::Sale { sale, counters: c } => Change::Sale { sale: sale.into(), counters: counters(c) },
                wire::Change::Return { ret, counters: c } => Change::Return { ret: ret.into(), counters: counters(c) },
                wire::Change::Loyalty { customer, entries } => Change::Loyalty {
                    customer: customer.as_ref().map(Into::into),
                    entries: entries.iter().map(Into::into).collect(),
                },
                wire::Change::Movement { movement, counters: c } => {
                    Change::Movement { movement: movement.into(), counters: counters(c) }
                }
                wire::Change::Order { update, counters: c } => {
                    Change::Order { update: update.into(), counters: counters(c) }
                }
                wire::Change::OrderPayment { payment: p } => Change::OrderPayment {
                    payment: OrderPayment {
                        order: p.order.0,
                        store: p.store,
                        outcome: match p.outcome {
                            order::TillPayment::Paid { amount } => TillPayment::Paid { amount },
                            order::TillPayment::Abandoned => TillPayment::Abandoned,
                        },
                        at_ms: p.at_ms,
                    },
                },
            }
        }
    }

    impl TryFrom<Change> for wire::Change {
        type Error = FormatError;

        fn try_from(c: Change) -> Result<Self, FormatError> {
            Ok(match c {
                Change::Movement { movement, counters } => wire::Change::Movement {
                    movement: movement.try_into()?,
                    counters: counters.into_iter().map(Into::into).collect(),
                },
                Change::Order { update, counters } => wire::Change::Order {
                    update: update.into(),
                    counters: counters.into_iter().map(Into::into).collect(),
                },
                Change::OrderPayment { payment: p } => wire::Change::OrderPayment {
                    payment: order::OrderPayment {
                        order: order::OrderId(p.order),
                        store: p.store,
                        outcome: match p.outcome {
                            TillPayment::Paid { amount } => order::TillPayment::Paid { amount },
                            TillPayment::Abandoned => order::TillPayment::Abandoned,
                        },
                        at_ms: p.at_ms,
                    },
                },
                Change::Sale { sale, counters } => v2::Change::Sale { sale, counters }.into(),
                Change::Return { ret, counters } => v2::Change::Return { ret, counters }.into(),
                Change::Loyalty { customer, entries } => v2::Change::Loyalty { customer, entries }.into(),
            })
        }
    }

    impl From<&wire::OutboxEntry> for OutboxEntry {
        fn from(e: &wire::OutboxEntry) -> Self {
            OutboxEntry { seq: e.seq, change: (&e.change).into() }
        }
    }

    impl From<order::OrderChannel> for OrderChannel {
        fn from(c: order::OrderChannel) -> Self {
            match c {
                order::OrderChannel::Online => OrderChannel::Online,
                order::OrderChannel::Store(s) => OrderChannel::Store(s),
            }
        }
    }

    impl From<OrderChannel> for order::OrderChannel {
        fn from(c: OrderChannel) -> Self {
            match c {
                OrderChannel::Online => order::OrderChannel::Online,
                OrderChannel::Store(s) => order::OrderChannel::Store(s),
            }
        }
    }

    impl From<&order::Order> for Order {
        fn from(o: &order::Order) -> Self {
            Order {
                id: o.id.0,
                store: o.store,
                channel: o.channel.into(),
                customer: o.customer.clone(),
                phone: o.phone.clone(),
                note: o.note.clone(),
                lines: o.lines.iter().map(Into::into).collect(),
                payment: match o.payment {
                    order::Payment::Prepaid => Payment::Prepaid,
                    order::Payment::AtPickup => Payment::AtPickup,
                },
                created_at_ms: o.created_at_ms,
                expires_at_ms: o.expires_at_ms,
            }
        }
    }

    /// Checks what [`order::Order::validate`] checks.
    impl TryFrom<Order> for order::Order {
        type Error = FormatError;

        fn try_from(o: Order) -> Result<Self, FormatError> {
            let out = order::Order {
                id: order::OrderId(o.id),
                store: o.store,
                channel: o.channel.into(),
                customer: o.customer,
                phone: o.phone,
                note: o.note,
                lines: o.lines.into_iter().map(Into::into).collect(),
                payment: match o.payment {
                    Payment::Prepaid => order::Payment::Prepaid,
                    Payment::AtPickup => order::Payment::AtPickup,
                },
                created_at_ms: o.created_at_ms,
                expires_at_ms: o.expires_at_ms,
            };
            out.validate().map_err(|e| invalid("order", format!("order {}: {e}", o.id)))?;
            Ok(out)
        }
    }

    fn payment_to(p: order::Payment) -> Payment {
        match p {
            order::Payment::Prepaid => Payment::Prepaid,
            order::Payment::AtPickup => Payment::AtPickup,
        }
    }

    fn payment_from(p: Payment) -> order::Payment {
        match p {
            Payment::Prepaid => order::Payment::Prepaid,
            Payment::AtPickup => order::Payment::AtPickup,
        }
    }

    impl From<&order::OrderRequest> for OrderRequest {
        fn from(r: &order::OrderRequest) -> Self {
            OrderRequest {
                request_id: r.request_id,
                store: r.store,
                lines: r.lines.clone(),
                payment: payment_to(r.payment),
                customer: r.customer.clone(),
                phone: r.phone.clone(),
                note: r.note.clone(),
                pickup_hours: r.pickup_hours,
            }
        }
    }

    /// Checks what [`order::OrderRequest::validate`] checks.
    impl TryFrom<OrderRequest> for order::OrderRequest {
        type Error = FormatError;

        fn try_from(r: OrderRequest) -> Result<Self, FormatError> {
            let out = order::OrderRequest {
                request_id: r.request_id,
                store: r.store,
                lines: r.lines,
                payment: payment_from(r.payment),
                customer: r.customer,
                phone: r.phone,
                note: r.note,
                pickup_hours: r.pickup_hours,
            };
            out.validate().map_err(|e| invalid("order request", e))?;
            Ok(out)
        }
    }

    impl From<&order::OrderAnswer> for OrderAnswer {
        fn from(a: &order::OrderAnswer) -> Self {
            match a {
                order::OrderAnswer::Placed(o) => OrderAnswer::Placed(o.into()),
                order::OrderAnswer::Refused { code, message } => {
                    OrderAnswer::Refused { code: code.clone(), message: message.clone() }
                }
            }
        }
    }

    impl TryFrom<OrderAnswer> for order::OrderAnswer {
        type Error = FormatError;

        fn try_from(a: OrderAnswer) -> Result<Self, FormatError> {
            Ok(match a {
                OrderAnswer::Placed(o) => order::OrderAnswer::Placed(o.try_into()?),
                OrderAnswer::Refused { code, message } => order::OrderAnswer::Refused { code, message },
            })
        }
    }

    impl From<&order::OrderUpdate> for OrderUpdate {
        fn from(u: &order::OrderUpdate) -> Self {
            OrderUpdate {
                order: u.order.0,
                store: u.store,
                event: match &u.event {
                    order::OrderEvent::Accepted => OrderEvent::Accepted,
                    order::OrderEvent::Picking => OrderEvent::Picking,
                    order::OrderEvent::Ready => OrderEvent::Ready,
                    order::OrderEvent::Collected { taken, sale } => {
                        OrderEvent::Collected { taken: taken.clone(), sale: *sale }
                    }
                    order::OrderEvent::Expired => OrderEvent::Expired,
                    order::OrderEvent::Cancelled => OrderEvent::Cancelled,
                },
                at_ms: u.at_ms,
                by: u.by.clone(),
            }
        }
    }

    impl From<OrderUpdate> for order::OrderUpdate {
        fn from(u: OrderUpdate) -> Self {
            order::OrderUpdate {
                order: order::OrderId(u.order),
                store: u.store,
                event: match u.event {
                    OrderEvent::Accepted => order::OrderEvent::Accepted,
                    OrderEvent::Picking => order::OrderEvent::Picking,
                    OrderEvent::Ready => order::OrderEvent::Ready,
                    OrderEvent::Collected { taken, sale } => order::OrderEvent::Collected { taken, sale },
                    OrderEvent::Expired => order::OrderEvent::Expired,
                    OrderEvent::Cancelled => order::OrderEvent::Cancelled,
                },
                at_ms: u.at_ms,
                by: u.by,
            }
        }
    }

    impl TryFrom<OutboxEntry> for wire::OutboxEntry {
        type Error = FormatError;

        fn try_from(e: OutboxEntry) -> Result<Self, FormatError> {
            Ok(wire::OutboxEntry { seq: e.seq, change: e.change.try_into()? })
        }
    }
}
