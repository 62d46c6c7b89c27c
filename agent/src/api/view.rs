//! The cashier API's format: every answer and every event the page receives, as types
//! of their own, built from the domain types and serialised only (`Serialize`, never
//! `Deserialize`).
//!
//! The rules, for whoever adds to it:
//! - names are snake_case, and every enumeration is a stable code, never a Rust variant
//!   name: units `"pcs"`/`"kg"` ([`Unit::code`](kassa_protocol::catalog::Unit::code)), VAT `"20"`/`"10"`/`"0"`/`"none"`
//!   ([`VatRate::code`](kassa_protocol::catalog::VatRate::code)), tenders `"cash"`/`"card"`/`"points"` ([`TenderKind::code`]),
//!   roles `"cashier"`/`"manager"`, return kinds `"with_receipt"`/`"without_receipt"`/
//!   `"cancellation"`, device states `"closed"`/`"idle"`/`"busy"`/`"error"`;
//! - money is whole kopecks, an integer, in a field named `…_kopecks`; quantities are
//!   pieces, or grams when the unit is `"kg"`; points are whole points (`…_points`, or
//!   the customer's `balance`, `allowed`, `spendable_now`);
//! - a field may be added (the page ignores fields it does not know); a field is never
//!   renamed, retyped or removed, and a code never changes its meaning;
//! - each view of a record (basket, sale, return, report…) is built by destructuring
//!   its domain type whole, so a field added to the domain type does not compile here
//!   until someone decides whether the page gets it. The status board is read field by
//!   field: a field added to `crate::status` reaches the page once it is added here.

use kassa_protocol::basket::{Basket, BasketDiscount, BasketLine, LinePromotion, Totals, VatTotal};
use kassa_protocol::catalog::CatalogItem;
use kassa_protocol::history::{CustomerHistory, OrderEntry, Purchase};
use kassa_protocol::loyalty::{Customer, LinePoints, ReturnLoyalty, SaleLoyalty};
use kassa_protocol::orders::OrderChannel;
use kassa_protocol::returns::{Return, ReturnKind, ReturnLine};
use kassa_protocol::sale::{Sale, Tender, TenderKind};
use kassa_protocol::SaleId;
use serde::Serialize;

use crate::journal::{Role, ShiftReport, TenderTotal, User};
use crate::status::{DeviceState, DeviceStatus, HqStatus, Status, Words};
use crate::till::{CustomerView, TillEvent};

/// Every tender kind, for reading codes back; [`tender_kind`]'s test keeps it whole.
/// A tender kind from its code (`"cash"`, `"card"`, `"points"`): the one parser of
/// tender kinds the API has. Anything else is `None`, never cash.
pub fn tender_kind(code: &str) -> Option<TenderKind> {
    TenderKind::from_code(code)
}

fn role_code(role: Role) -> &'static str {
    role.code()
}

fn device_state_code(state: DeviceState) -> &'static str {
    match state {
        DeviceState::Closed => "closed",
        DeviceState::Idle => "idle",
        DeviceState::Busy => "busy",
        DeviceState::Error => "error",
    }
}

/// A sale or a return: the store and its sequence there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DocIdView {
    pub store: u32,
    pub seq: u64,
}

impl From<SaleId> for DocIdView {
    fn from(SaleId { store, seq }: SaleId) -> Self {
        DocIdView { store: store.0, seq }
    }
}

// ---- the basket ----

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LineView {
    pub sku: String,
    pub name: String,
    /// `"pcs"` or `"kg"`.
    pub unit: &'static str,
    /// Pieces, or grams when the unit is `"kg"`.
    pub quantity: i64,
    /// The catalog's price, per piece or per kilogram.
    pub list_price_kopecks: i64,
    /// The price charged: the list price or a manager's override.
    pub price_kopecks: i64,
    pub vat: &'static str,
    /// Price × quantity, before any discount.
    pub amount_kopecks: i64,
    /// Everything off the line: its promotions and its share of the basket discount.
    pub discount_kopecks: i64,
    /// The promotions that gave part of the discount.
    pub promotions: Vec<LinePromotionView>,
    /// The marking code of a marked unit, as scanned.
    pub marking: Option<String>,
}

/// What one promotion gave one line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LinePromotionView {
    pub id: u32,
    pub version: u32,
    pub name: String,
    pub amount_kopecks: i64,
}

impl From<&LinePromotion> for LinePromotionView {
    fn from(p: &LinePromotion) -> Self {
        let LinePromotion { promotion, version, name, amount } = p;
        LinePromotionView { id: *promotion, version: *version, name: name.clone(), amount_kopecks: amount.0 }
    }
}

impl From<&BasketLine> for LineView {
    fn from(l: &BasketLine) -> Self {
        let BasketLine {
            sku,
            name,
            category: _,
            unit,
            quantity,
            list_price,
            price,
            vat,
            amount,
            discount,
            promotions,
            marking,
        } = l;
        LineView {
            sku: sku.0.clone(),
            name: name.clone(),
            unit: unit.code(),
            quantity: *quantity,
            list_price_kopecks: list_price.0,
            price_kopecks: price.0,
            vat: vat.code(),
            amount_kopecks: amount.0,
            discount_kopecks: discount.0,
            promotions: promotions.iter().map(Into::into).collect(),
            marking: marking.clone(),
        }
    }
}

/// A basket discount: `{"percent": 10}` or `{"amount_kopecks": 500}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum DiscountView {
    #[serde(rename = "percent")]
    Percent(u8),
    #[serde(rename = "amount_kopecks")]
    AmountKopecks(i64),
}

impl From<BasketDiscount> for DiscountView {
    fn from(d: BasketDiscount) -> Self {
        match d {
            BasketDiscount::Percent(p) => DiscountView::Percent(p),
            BasketDiscount::Amount(a) => DiscountView::AmountKopecks(a.0),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BasketView {
    /// The basket's number on its terminal; a payment names the basket it pays.
    pub id: u64,
    pub lines: Vec<LineView>,
    pub discount: Option<DiscountView>,
    /// Coupon codes the customer presented.
    pub coupons: Vec<String>,
    /// What promotions took off the basket ("Ваша выгода", without the manager's
    /// discount).
    pub promotions_saved_kopecks: i64,
}

impl From<&Basket> for BasketView {
    fn from(b: &Basket) -> Self {
        let Basket { lines, discount, coupons, id } = b;
        BasketView {
            id: *id,
            lines: lines.iter().map(LineView::from).collect(),
            discount: discount.map(Into::into),
            coupons: coupons.clone(),
            promotions_saved_kopecks: b.promotions_saved().0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VatTotalView {
    pub rate: &'static str,
    /// What the lines of this rate cost, VAT included.
    pub amount_kopecks: i64,
    pub vat_kopecks: i64,
}

impl From<&VatTotal> for VatTotalView {
    fn from(v: &VatTotal) -> Self {
        let VatTotal { rate, amount, vat } = v;
        VatTotalView { rate: rate.code(), amount_kopecks: amount.0, vat_kopecks: vat.0 }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TotalsView {
    pub total_kopecks: i64,
    pub discount_kopecks: i64,
    pub vat: Vec<VatTotalView>,
}

impl From<&Totals> for TotalsView {
    fn from(t: &Totals) -> Self {
        let Totals { total, discount, vat } = t;
        TotalsView {
            total_kopecks: total.0,
            discount_kopecks: discount.0,
            vat: vat.iter().map(VatTotalView::from).collect(),
        }
    }
}

/// The basket's loyalty customer and what they may pay in points now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BasketCustomerView {
    pub card: String,
    pub name: Option<String>,
    /// Points.
    pub balance: i64,
    /// Points the rules allow for this basket.
    pub allowed: i64,
    /// Points this store can spend without asking HQ.
    pub spendable_now: i64,
    pub point_value_kopecks: i64,
    /// What limits the offer, in English words.
    pub message: String,
    /// What limits the offer: `none`, `share_cap` (at most `max_share_percent` % of the
    /// basket), `offline` (the rights held here, HQ out of reach), `held_elsewhere` (the
    /// rest is held by stores HQ cannot reach).
    pub limit: &'static str,
    pub max_share_percent: u8,
}

impl From<&CustomerView> for BasketCustomerView {
    fn from(c: &CustomerView) -> Self {
        let CustomerView {
            card,
            name,
            balance,
            allowed,
            spendable_now,
            point_value_kopecks,
            message,
            limit,
            max_share_percent,
        } = c;
        BasketCustomerView {
            card: card.clone(),
            name: name.clone(),
            balance: *balance,
            allowed: *allowed,
            spendable_now: *spendable_now,
            point_value_kopecks: *point_value_kopecks,
            message: message.clone(),
            limit: limit.code(),
            max_share_percent: *max_share_percent,
        }
    }
}

// ---- sales and returns ----

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TenderView {
    /// `"cash"`, `"card"` or `"points"` (points at their value in kopecks).
    pub kind: &'static str,
    pub amount_kopecks: i64,
}

impl From<&Tender> for TenderView {
    fn from(t: &Tender) -> Self {
        let Tender { kind, amount } = t;
        TenderView { kind: kind.code(), amount_kopecks: amount.0 }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LinePointsView {
    /// This line's share of what points paid.
    pub paid_in_points_kopecks: i64,
    pub earned_points: i64,
}

impl From<&LinePoints> for LinePointsView {
    fn from(l: &LinePoints) -> Self {
        let LinePoints { paid_in_points, earned_points } = l;
        LinePointsView { paid_in_points_kopecks: paid_in_points.0, earned_points: *earned_points }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SaleLoyaltyView {
    pub card: String,
    pub point_value_kopecks: i64,
    pub redeemed_points: i64,
    /// What the whole sale earned.
    pub earned_points: i64,
    /// One per line of the sale, in the same order.
    pub lines: Vec<LinePointsView>,
}

impl From<&SaleLoyalty> for SaleLoyaltyView {
    fn from(s: &SaleLoyalty) -> Self {
        let SaleLoyalty { customer, point_value_kopecks, redeemed_points, lines } = s;
        SaleLoyaltyView {
            card: customer.as_str().to_owned(),
            point_value_kopecks: *point_value_kopecks,
            redeemed_points: *redeemed_points,
            earned_points: s.earned_points(),
            lines: lines.iter().map(LinePointsView::from).collect(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SaleView {
    pub id: DocIdView,
    /// `SSSS-TT-NNNNNN`.
    pub receipt_no: String,
    pub terminal: u16,
    /// The cashier's user id.
    pub cashier: String,
    pub created_at_ms: i64,
    pub lines: Vec<LineView>,
    pub tenders: Vec<TenderView>,
    pub total_kopecks: i64,
    pub change_kopecks: i64,
    pub loyalty: Option<SaleLoyaltyView>,
}

impl From<&Sale> for SaleView {
    fn from(s: &Sale) -> Self {
        let Sale { id, receipt_no, terminal, cashier, created_at_ms, lines, tenders, total, change, loyalty } = s;
        SaleView {
            id: (*id).into(),
            receipt_no: receipt_no.clone(),
            terminal: *terminal,
            cashier: cashier.clone(),
            created_at_ms: *created_at_ms,
            lines: lines.iter().map(LineView::from).collect(),
            tenders: tenders.iter().map(TenderView::from).collect(),
            total_kopecks: total.0,
            change_kopecks: change.0,
            loyalty: loyalty.as_ref().map(SaleLoyaltyView::from),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReturnLineView {
    /// The line of the original sale (0-based), when there is one.
    pub sale_line: Option<u32>,
    pub sku: String,
    pub name: String,
    pub unit: &'static str,
    pub quantity: i64,
    pub vat: &'static str,
    pub amount_kopecks: i64,
}

impl From<&ReturnLine> for ReturnLineView {
    fn from(l: &ReturnLine) -> Self {
        let ReturnLine { sale_line, sku, name, unit, quantity, vat, amount } = l;
        ReturnLineView {
            sale_line: *sale_line,
            sku: sku.0.clone(),
            name: name.clone(),
            unit: unit.code(),
            quantity: *quantity,
            vat: vat.code(),
            amount_kopecks: amount.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReturnLoyaltyView {
    pub card: String,
    /// Points taken back: what the returned lines earned.
    pub taken_back_points: i64,
    /// Points given back: what points paid for the returned lines.
    pub given_back_points: i64,
    pub earned_points: i64,
    pub spent_points: i64,
    /// Taken-back points the store's rights did not cover, paid for by `deducted_kopecks`.
    pub shortfall_points: i64,
    /// Money kept back from the refund for points the customer had already spent.
    pub deducted_kopecks: i64,
    /// Value of taken-back points not yet paid for, carried to the sale's next return.
    pub owed_kopecks: i64,
    /// What is refunded in money.
    pub money_refund_kopecks: i64,
}

impl From<&ReturnLoyalty> for ReturnLoyaltyView {
    fn from(r: &ReturnLoyalty) -> Self {
        let ReturnLoyalty { customer, take_back, give_back, earn, spend, shortfall, deducted, owed, money_refund } = r;
        ReturnLoyaltyView {
            card: customer.as_str().to_owned(),
            taken_back_points: *take_back,
            given_back_points: *give_back,
            earned_points: *earn,
            spent_points: *spend,
            shortfall_points: *shortfall,
            deducted_kopecks: deducted.0,
            owed_kopecks: owed.0,
            money_refund_kopecks: money_refund.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReturnView {
    pub id: DocIdView,
    pub receipt_no: String,
    pub terminal: u16,
    pub cashier: String,
    pub created_at_ms: i64,
    /// `"with_receipt"`, `"without_receipt"` or `"cancellation"`.
    pub kind: &'static str,
    /// The sale returned against (with a receipt, or cancelled).
    pub sale: Option<DocIdView>,
    /// The manager who approved it (without a receipt, or a cancellation).
    pub approved_by: Option<String>,
    pub lines: Vec<ReturnLineView>,
    /// Given back per tender: `"cash"`, `"card"`, and `"points"` (at the sale's point
    /// value) for what points paid.
    pub refunds: Vec<TenderView>,
    pub total_kopecks: i64,
    pub loyalty: Option<ReturnLoyaltyView>,
}

impl From<&Return> for ReturnView {
    fn from(r: &Return) -> Self {
        let Return { id, receipt_no, terminal, cashier, created_at_ms, kind, lines, refunds, total, loyalty } = r;
        let (kind, sale, approved_by) = match kind {
            ReturnKind::WithReceipt { sale } => ("with_receipt", Some(*sale), None),
            ReturnKind::WithoutReceipt { approved_by } => ("without_receipt", None, Some(approved_by.clone())),
            ReturnKind::Cancellation { sale, approved_by } => ("cancellation", Some(*sale), Some(approved_by.clone())),
        };
        ReturnView {
            id: (*id).into(),
            receipt_no: receipt_no.clone(),
            terminal: *terminal,
            cashier: cashier.clone(),
            created_at_ms: *created_at_ms,
            kind,
            sale: sale.map(Into::into),
            approved_by,
            lines: lines.iter().map(ReturnLineView::from).collect(),
            refunds: refunds.iter().map(TenderView::from).collect(),
            total_kopecks: total.0,
            loyalty: loyalty.as_ref().map(ReturnLoyaltyView::from),
        }
    }
}

// ---- the catalog ----

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CatalogItemView {
    pub sku: String,
    /// The barcode's digits as printed (13 for EAN-13, 8 for GTIN-8).
    pub gtin: Option<String>,
    pub name: String,
    pub category: String,
    /// Per piece, or per kilogram when the unit is `"kg"`.
    pub price_kopecks: i64,
    pub vat: &'static str,
    pub unit: &'static str,
    /// The price look-up code of a weighed item.
    pub plu: Option<u32>,
}

impl From<&CatalogItem> for CatalogItemView {
    fn from(i: &CatalogItem) -> Self {
        let CatalogItem { sku, gtin, name, category, price, vat, unit, plu } = i;
        CatalogItemView {
            sku: sku.0.clone(),
            gtin: gtin.as_ref().map(|g| g.short().to_owned()),
            name: name.clone(),
            category: category.clone(),
            price_kopecks: price.0,
            vat: vat.code(),
            unit: unit.code(),
            plu: *plu,
        }
    }
}

// ---- shifts ----

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TenderTotalView {
    /// A tender kind's code.
    pub kind: String,
    /// What sales took, net of change for cash.
    pub sales_kopecks: i64,
    pub refunds_kopecks: i64,
}

impl From<&TenderTotal> for TenderTotalView {
    fn from(t: &TenderTotal) -> Self {
        let TenderTotal { kind, sales, refunds } = t;
        // The journal keeps tender kinds by their codes already.
        TenderTotalView { kind: kind.clone(), sales_kopecks: sales.0, refunds_kopecks: refunds.0 }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VatLineView {
    pub rate: &'static str,
    pub sales_kopecks: i64,
    pub sales_vat_kopecks: i64,
    pub returns_kopecks: i64,
    pub returns_vat_kopecks: i64,
}

/// An X report (mid-shift: `closed_at_ms` is `null`) or a Z report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShiftReportView {
    pub shift: i64,
    pub terminal: u16,
    pub opened_by: String,
    pub opened_at_ms: i64,
    pub closed_by: Option<String>,
    pub closed_at_ms: Option<i64>,
    pub float_kopecks: i64,
    pub sales_count: u64,
    pub sales_total_kopecks: i64,
    pub returns_count: u64,
    pub returns_total_kopecks: i64,
    pub voids_count: u64,
    pub voids_total_kopecks: i64,
    pub tenders: Vec<TenderTotalView>,
    pub vat: Vec<VatLineView>,
    pub cash_in_kopecks: i64,
    pub cash_out_kopecks: i64,
    pub expected_cash_kopecks: i64,
    pub counted_cash_kopecks: Option<i64>,
    /// Counted minus expected: negative is a shortage.
    pub difference_kopecks: Option<i64>,
}

impl From<&ShiftReport> for ShiftReportView {
    fn from(r: &ShiftReport) -> Self {
        let ShiftReport {
            shift,
            terminal,
            opened_by,
            opened_at_ms,
            closed_by,
            closed_at_ms,
            float,
            sales_count,
            sales_total,
            returns_count,
            returns_total,
            voids_count,
            voids_total,
            tenders,
            vat,
            cash_in,
            cash_out,
            expected_cash,
            counted_cash,
            difference,
        } = r;
        ShiftReportView {
            shift: *shift,
            terminal: *terminal,
            opened_by: opened_by.clone(),
            opened_at_ms: *opened_at_ms,
            closed_by: closed_by.clone(),
            closed_at_ms: *closed_at_ms,
            float_kopecks: float.0,
            sales_count: *sales_count,
            sales_total_kopecks: sales_total.0,
            returns_count: *returns_count,
            returns_total_kopecks: returns_total.0,
            voids_count: *voids_count,
            voids_total_kopecks: voids_total.0,
            tenders: tenders.iter().map(TenderTotalView::from).collect(),
            vat: vat
                .iter()
                .map(|v| VatLineView {
                    rate: v.rate.code(),
                    sales_kopecks: v.sales.0,
                    sales_vat_kopecks: v.sales_vat.0,
                    returns_kopecks: v.returns.0,
                    returns_vat_kopecks: v.returns_vat.0,
                })
                .collect(),
            cash_in_kopecks: cash_in.0,
            cash_out_kopecks: cash_out.0,
            expected_cash_kopecks: expected_cash.0,
            counted_cash_kopecks: counted_cash.map(|k| k.0),
            difference_kopecks: difference.map(|k| k.0),
        }
    }
}

// ---- users and status ----

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserView {
    pub id: String,
    pub name: String,
    /// `"cashier"` or `"manager"`.
    pub role: &'static str,
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        let User { id, name, role } = u;
        UserView { id: id.clone(), name: name.clone(), role: role_code(*role) }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WordsView {
    pub ru: String,
    pub en: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceStatusView {
    pub configured: bool,
    /// `"closed"`, `"idle"`, `"busy"` or `"error"`.
    pub state: &'static str,
    pub path: Option<String>,
    pub detail: Option<String>,
    /// Scanner: frames read; printer: jobs printed.
    pub count: u64,
    /// Scanner: frames rejected.
    pub rejected: u64,
    /// The device's condition in words for the cashier.
    pub words: Option<WordsView>,
}

impl From<&DeviceStatus> for DeviceStatusView {
    fn from(d: &DeviceStatus) -> Self {
        DeviceStatusView {
            configured: d.configured,
            state: device_state_code(d.state),
            path: d.path.clone(),
            detail: d.detail.clone(),
            count: d.count,
            rejected: d.rejected,
            words: d.words.as_ref().map(|Words { ru, en }| WordsView { ru: ru.clone(), en: en.clone() }),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HqStatusView {
    pub online: bool,
    /// Outbox entries HQ has not acknowledged yet.
    pub backlog: u64,
    pub last_contact_ms: Option<i64>,
    pub catalog_version: u64,
    /// The version of the promotions the till prices with (0: none yet).
    pub promotions_version: u64,
    pub last_error: Option<String>,
    /// What kind of trouble `last_error` is, as a code the page translates
    /// (`unreachable`, `disk_full`, `journal`, `not_enrolled`, `hq_older`, `hq_protocol`).
    pub error_code: Option<&'static str>,
    /// The sync protocol version this store speaks, once it has tried.
    pub protocol_version: Option<u32>,
    /// HQ's software version, as HQ announced it.
    pub hq_software_version: Option<String>,
    pub wire_sent_bytes: u64,
    pub wire_received_bytes: u64,
}

impl From<&HqStatus> for HqStatusView {
    fn from(h: &HqStatus) -> Self {
        HqStatusView {
            online: h.online,
            backlog: h.backlog,
            last_contact_ms: h.last_contact_ms,
            catalog_version: h.catalog_version,
            promotions_version: h.promotions_version,
            last_error: h.last_error.clone(),
            error_code: h.error_code,
            protocol_version: h.protocol_version,
            hq_software_version: h.hq_software_version.clone(),
            wire_sent_bytes: h.wire_sent_bytes,
            wire_received_bytes: h.wire_received_bytes,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusView {
    pub hq: HqStatusView,
    pub scanner: DeviceStatusView,
    pub printer: DeviceStatusView,
}

impl From<&Status> for StatusView {
    fn from(s: &Status) -> Self {
        StatusView { hq: (&s.hq).into(), scanner: (&s.scanner).into(), printer: (&s.printer).into() }
    }
}

// ---- events ----

/// One server-sent event: `{"type": "basket", …}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type")]
pub enum EventView {
    /// The whole basket (every basket event is a snapshot), also the answer of every
    /// basket operation.
    #[serde(rename = "basket")]
    Basket { basket: BasketView, totals: Option<TotalsView>, customer: Option<BasketCustomerView> },
    /// A scan refused: the frame as scanned (escaped), the refusal's code (the page's
    /// words for it: the same codes as the API's refusals), and its English message.
    #[serde(rename = "scan_rejected")]
    ScanRejected { code: String, reason_code: &'static str, reason: String },
    /// A receipt's code was scanned: the page offers a return of sale `seq`.
    #[serde(rename = "receipt_scanned")]
    ReceiptScanned { seq: u64 },
    /// Another store's receipt was scanned: the page offers a return of it by `code`
    /// (as scanned: a signed code proves the sale when HQ is out of reach).
    #[serde(rename = "receipt_scanned_elsewhere")]
    ElsewhereReceiptScanned { code: String },
    /// An order's pickup code was scanned: the page opens order `order`.
    #[serde(rename = "order_scanned")]
    OrderScanned { order: u64 },
    #[serde(rename = "sale_committed")]
    SaleCommitted { sale: SaleView },
    #[serde(rename = "return_committed")]
    ReturnCommitted {
        #[serde(rename = "return")]
        ret: ReturnView,
    },
    /// The shift now (`null`: no shift open).
    #[serde(rename = "shift")]
    Shift { report: Option<ShiftReportView> },
    #[serde(rename = "status")]
    Status { status: StatusView },
}

impl From<&TillEvent> for EventView {
    fn from(ev: &TillEvent) -> Self {
        match ev {
            TillEvent::Basket { basket, totals, customer } => EventView::Basket {
                basket: basket.into(),
                totals: totals.as_ref().map(Into::into),
                customer: customer.as_ref().map(Into::into),
            },
            TillEvent::ScanRejected { code, reason_code, reason } => {
                EventView::ScanRejected { code: code.clone(), reason_code, reason: reason.clone() }
            }
            TillEvent::ReceiptScanned { seq } => EventView::ReceiptScanned { seq: *seq },
            TillEvent::ElsewhereReceiptScanned { code } => EventView::ElsewhereReceiptScanned { code: code.clone() },
            TillEvent::OrderScanned { order } => EventView::OrderScanned { order: *order },
            TillEvent::SaleCommitted { sale } => EventView::SaleCommitted { sale: sale.into() },
            TillEvent::ReturnCommitted { ret } => EventView::ReturnCommitted { ret: ret.into() },
            TillEvent::Shift { report } => EventView::Shift { report: report.as_ref().map(Into::into) },
            TillEvent::Status { status } => EventView::Status { status: status.into() },
        }
    }
}

// ---- answers ----

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoginView {
    pub token: String,
    pub user: UserView,
    pub terminal: u16,
    pub store: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MeView {
    pub user: UserView,
    pub terminal: u16,
    pub store: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UsersView {
    pub users: Vec<UserView>,
    pub terminal: u16,
    pub store: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DevicesView {
    pub terminal: u16,
    pub scanner: DeviceStatusView,
    pub printer: DeviceStatusView,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SearchView {
    pub items: Vec<CatalogItemView>,
}

/// The answer to a payment; a retried payment (`replayed`) answers its first sale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PaidView {
    pub sale: SaleView,
    pub replayed: bool,
}

/// The answer to a return or a cancellation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReturnedView {
    #[serde(rename = "return")]
    pub ret: ReturnView,
    pub replayed: bool,
}

/// A sale found by its receipt, with what is left to return of each line (in the
/// line's unit: pieces or grams).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LookupView {
    pub sale: SaleView,
    pub returnable: Vec<i64>,
    /// Another store's sale (returned by its `code`): as HQ knows it, or — `offline` —
    /// as its signed receipt proves it.
    pub elsewhere: bool,
    /// HQ is out of reach: this store's own returns only, and what HQ's limits leave
    /// to refund for this receipt and in the shift.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offline: Option<OfflineLimitsView>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct OfflineLimitsView {
    pub receipt_left_kopecks: i64,
    pub shift_left_kopecks: i64,
}

/// A customer's history at the till: `from_hq`, HQ's (every store and channel, with
/// this store's newest), or else this store's own records only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistoryView {
    pub card: String,
    pub name: Option<String>,
    pub from_hq: bool,
    pub purchases: Vec<PurchaseView>,
    pub orders: Vec<HistoryOrderView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PurchaseView {
    pub store: u32,
    pub seq: u64,
    /// `sale` or `return`.
    pub kind: &'static str,
    pub receipt_no: String,
    pub created_at_ms: i64,
    /// Paid, or refunded for a return.
    pub total_kopecks: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistoryOrderView {
    pub id: u64,
    /// The pickup store.
    pub store: u32,
    /// `online`, or `till` (a till's order: the endless aisle).
    pub channel: &'static str,
    /// `new`, `accepted`, `picking`, `ready`, `collected`, `expired`, `cancelled`.
    pub state: &'static str,
    pub total_kopecks: i64,
    pub created_at_ms: i64,
}

impl HistoryView {
    pub fn new(customer: &Customer, history: &CustomerHistory, from_hq: bool) -> HistoryView {
        let CustomerHistory { purchases, orders } = history;
        let purchases = purchases
            .iter()
            .map(|Purchase { doc, kind, receipt_no, created_at_ms, total }| PurchaseView {
                store: doc.store.0,
                seq: doc.seq,
                kind: kind.code(),
                receipt_no: receipt_no.clone(),
                created_at_ms: *created_at_ms,
                total_kopecks: total.0,
            })
            .collect();
        let orders = orders
            .iter()
            .map(|OrderEntry { id, store, channel, state, total, created_at_ms }| HistoryOrderView {
                id: id.0,
                store: store.0,
                channel: match channel {
                    OrderChannel::Online => "online",
                    OrderChannel::Store(_) => "till",
                },
                state: state.code(),
                total_kopecks: total.0,
                created_at_ms: *created_at_ms,
            })
            .collect();
        HistoryView { card: customer.card.as_str().to_owned(), name: customer.name.clone(), from_hq, purchases, orders }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShiftView {
    /// `null`: no shift open.
    pub report: Option<ShiftReportView>,
}

impl ShiftView {
    pub fn of(report: Option<&ShiftReport>) -> Self {
        ShiftView { report: report.map(Into::into) }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NearbyStockView {
    pub store: u32,
    pub quantity: i64,
    /// How old HQ's figure is, by this store's clock; `null` if HQ never sent one.
    pub age_ms: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StockView {
    pub sku: String,
    pub store: u32,
    /// On hand: pieces, or grams for an item sold by weight.
    pub quantity: i64,
    /// Held for open orders for pickup here.
    pub reserved: i64,
    /// On hand minus reserved: what a walk-in customer may take without touching an
    /// order's stock.
    pub available: i64,
    pub nearby: Vec<NearbyStockView>,
}

#[cfg(test)]
mod tests {
    //! The API's golden shapes: a change that fails these changes what the page reads.

    use kassa_protocol::basket::Basket;
    use kassa_protocol::catalog::{CatalogItem, Unit, VatRate};
    use kassa_protocol::gtin::Gtin;
    use kassa_protocol::loyalty::{CustomerId, LinePoints, ReturnLoyalty, SaleLoyalty};
    use kassa_protocol::returns::{Return, ReturnKind, ReturnLine};
    use kassa_protocol::sale::{Sale, Tender, TenderKind};
    use kassa_protocol::{Kopecks, SaleId, Sku, StoreId};
    use serde_json::{json, Value};

    use super::*;
    use crate::journal::TenderTotal;

    fn item(sku: &str, price: i64, vat: VatRate, unit: Unit) -> CatalogItem {
        CatalogItem {
            sku: Sku::parse(sku).unwrap(),
            gtin: None,
            name: format!("item {sku}"),
            category: "c".into(),
            price: Kopecks(price),
            vat,
            unit,
            plu: None,
        }
    }

    fn to_json(v: impl Serialize) -> Value {
        serde_json::to_value(v).unwrap()
    }

    /// A weighed line (1,5 kg of bananas at 149,00/kg), two pieces, 10 % off.
    fn basket() -> Basket {
        let mut b = Basket::new(7);
        b.add(&item("100478", 14900, VatRate::Vat10, Unit::Kilogram), 1500).unwrap();
        b.add(&item("100001", 10690, VatRate::Vat20, Unit::Piece), 2).unwrap();
        b.set_discount(Some(BasketDiscount::Percent(10))).unwrap();
        b
    }

    fn card() -> CustomerId {
        CustomerId::try_from("00001000000001".to_owned()).unwrap()
    }

    #[test]
    fn a_basket_with_a_weighed_line_and_a_discount() {
        let b = basket();
        let ev = TillEvent::Basket { totals: b.totals(), basket: b, customer: None };
        assert_eq!(
            to_json(EventView::from(&ev)),
            json!({
                "type": "basket",
                "basket": {
                    "id": 7,
                    "lines": [
                        {
                            "sku": "100478", "name": "item 100478", "unit": "kg", "quantity": 1500,
                            "list_price_kopecks": 14900, "price_kopecks": 14900, "vat": "10",
                            "amount_kopecks": 22350, "discount_kopecks": 2235, "promotions": [], "marking": null
                        },
                        {
                            "sku": "100001", "name": "item 100001", "unit": "pcs", "quantity": 2,
                            "list_price_kopecks": 10690, "price_kopecks": 10690, "vat": "20",
                            "amount_kopecks": 21380, "discount_kopecks": 2138, "promotions": [], "marking": null
                        }
                    ],
                    "discount": { "percent": 10 },
                    "coupons": [],
                    "promotions_saved_kopecks": 0
                },
                "totals": {
                    "total_kopecks": 39357,
                    "discount_kopecks": 4373,
                    "vat": [
                        { "rate": "10", "amount_kopecks": 20115, "vat_kopecks": 1829 },
                        { "rate": "20", "amount_kopecks": 19242, "vat_kopecks": 3207 }
                    ]
                },
                "customer": null
            })
        );
        assert_eq!(to_json(DiscountView::from(BasketDiscount::Amount(Kopecks(500)))), json!({ "amount_kopecks": 500 }));
    }

    fn sale() -> Sale {
        let b = basket();
        let lines = b.lines.clone();
        Sale {
            id: SaleId { store: StoreId(1), seq: 12 },
            receipt_no: "0001-01-000012".into(),
            terminal: 1,
            cashier: "kassir".into(),
            created_at_ms: 1_700_000_000_000,
            lines,
            tenders: vec![
                Tender { kind: TenderKind::Card, amount: Kopecks(20000) },
                Tender { kind: TenderKind::Cash, amount: Kopecks(20000) },
                Tender { kind: TenderKind::Points, amount: Kopecks(1000) },
            ],
            total: Kopecks(39357),
            change: Kopecks(1643),
            loyalty: Some(SaleLoyalty {
                customer: card(),
                point_value_kopecks: 100,
                redeemed_points: 10,
                lines: vec![
                    LinePoints { paid_in_points: Kopecks(511), earned_points: 1 },
                    LinePoints { paid_in_points: Kopecks(489), earned_points: 2 },
                ],
            }),
        }
    }

    #[test]
    fn a_sale_paid_by_card_cash_and_points() {
        let json = to_json(PaidView { sale: (&sale()).into(), replayed: false });
        let lines = json["sale"]["lines"].clone();
        assert_eq!(lines, to_json(basket().lines.iter().map(LineView::from).collect::<Vec<_>>()));
        assert_eq!(
            json,
            json!({
                "sale": {
                    "id": { "store": 1, "seq": 12 },
                    "receipt_no": "0001-01-000012",
                    "terminal": 1,
                    "cashier": "kassir",
                    "created_at_ms": 1_700_000_000_000_i64,
                    "lines": lines,
                    "tenders": [
                        { "kind": "card", "amount_kopecks": 20000 },
                        { "kind": "cash", "amount_kopecks": 20000 },
                        { "kind": "points", "amount_kopecks": 1000 }
                    ],
                    "total_kopecks": 39357,
                    "change_kopecks": 1643,
                    "loyalty": {
                        "card": "00001000000001",
                        "point_value_kopecks": 100,
                        "redeemed_points": 10,
                        "earned_points": 3,
                        "lines": [
                            { "paid_in_points_kopecks": 511, "earned_points": 1 },
                            { "paid_in_points_kopecks": 489, "earned_points": 2 }
                        ]
                    }
                },
                "replayed": false
            })
        );
    }

    fn ret(kind: ReturnKind) -> Return {
        Return {
            id: SaleId { store: StoreId(1), seq: 13 },
            receipt_no: "0001-01-000013".into(),
            terminal: 1,
            cashier: "kassir".into(),
            created_at_ms: 1_700_000_100_000,
            kind,
            lines: vec![ReturnLine {
                sale_line: Some(0),
                sku: Sku::parse("100478").unwrap(),
                name: "item 100478".into(),
                unit: Unit::Kilogram,
                quantity: 500,
                vat: VatRate::Vat10,
                amount: Kopecks(6705),
            }],
            refunds: vec![
                Tender { kind: TenderKind::Card, amount: Kopecks(6000) },
                Tender { kind: TenderKind::Cash, amount: Kopecks(535) },
                Tender { kind: TenderKind::Points, amount: Kopecks(170) },
            ],
            total: Kopecks(6705),
            loyalty: None,
        }
    }

    #[test]
    fn a_return_of_each_kind() {
        let sale = SaleId { store: StoreId(1), seq: 12 };
        let with_receipt = ret(ReturnKind::WithReceipt { sale });
        assert_eq!(
            to_json(ReturnedView { ret: (&with_receipt).into(), replayed: true }),
            json!({
                "return": {
                    "id": { "store": 1, "seq": 13 },
                    "receipt_no": "0001-01-000013",
                    "terminal": 1,
                    "cashier": "kassir",
                    "created_at_ms": 1_700_000_100_000_i64,
                    "kind": "with_receipt",
                    "sale": { "store": 1, "seq": 12 },
                    "approved_by": null,
                    "lines": [{
                        "sale_line": 0, "sku": "100478", "name": "item 100478", "unit": "kg",
                        "quantity": 500, "vat": "10", "amount_kopecks": 6705
                    }],
                    "refunds": [
                        { "kind": "card", "amount_kopecks": 6000 },
                        { "kind": "cash", "amount_kopecks": 535 },
                        { "kind": "points", "amount_kopecks": 170 }
                    ],
                    "total_kopecks": 6705,
                    "loyalty": null
                },
                "replayed": true
            })
        );

        let without = to_json(ReturnView::from(&ret(ReturnKind::WithoutReceipt { approved_by: "boss".into() })));
        assert_eq!(
            (&without["kind"], &without["sale"], &without["approved_by"]),
            (&json!("without_receipt"), &Value::Null, &json!("boss"))
        );
        let cancelled = to_json(ReturnView::from(&ret(ReturnKind::Cancellation { sale, approved_by: "boss".into() })));
        assert_eq!(
            (&cancelled["kind"], &cancelled["sale"], &cancelled["approved_by"]),
            (&json!("cancellation"), &json!({ "store": 1, "seq": 12 }), &json!("boss"))
        );

        let mut with_points = ret(ReturnKind::WithReceipt { sale });
        with_points.loyalty = Some(ReturnLoyalty {
            customer: card(),
            take_back: 3,
            give_back: 1,
            earn: 0,
            spend: 2,
            shortfall: 1,
            deducted: Kopecks(100),
            owed: Kopecks(0),
            money_refund: Kopecks(6435),
        });
        assert_eq!(
            to_json(ReturnView::from(&with_points))["loyalty"],
            json!({
                "card": "00001000000001",
                "taken_back_points": 3,
                "given_back_points": 1,
                "earned_points": 0,
                "spent_points": 2,
                "shortfall_points": 1,
                "deducted_kopecks": 100,
                "owed_kopecks": 0,
                "money_refund_kopecks": 6435
            })
        );
    }

    #[test]
    fn a_shift_report() {
        let mut report = ShiftReport {
            shift: 3,
            terminal: 1,
            opened_by: "kassir".into(),
            opened_at_ms: 1_700_000_000_000,
            closed_by: Some("boss".into()),
            closed_at_ms: Some(1_700_030_000_000),
            float: Kopecks(500000),
            sales_count: 2,
            sales_total: Kopecks(50000),
            returns_count: 1,
            returns_total: Kopecks(6705),
            voids_count: 1,
            voids_total: Kopecks(10690),
            tenders: vec![
                TenderTotal { kind: "card".into(), sales: Kopecks(20000), refunds: Kopecks(6000) },
                TenderTotal { kind: "cash".into(), sales: Kopecks(29000), refunds: Kopecks(535) },
                TenderTotal { kind: "points".into(), sales: Kopecks(1000), refunds: Kopecks(170) },
            ],
            vat: Vec::new(),
            cash_in: Kopecks(1000),
            cash_out: Kopecks(2000),
            expected_cash: Kopecks(527465),
            counted_cash: Some(Kopecks(527400)),
            difference: Some(Kopecks(-65)),
        };
        // The journal does not export its VAT line's type: built from its stored form.
        report.vat = serde_json::from_value(json!([
            { "rate": "Vat20", "sales": 21380, "sales_vat": 3563, "returns": 0, "returns_vat": 0 },
            { "rate": "Vat10", "sales": 28620, "sales_vat": 2602, "returns": 6705, "returns_vat": 610 }
        ]))
        .unwrap();
        assert_eq!(
            to_json(ShiftView::of(Some(&report))),
            json!({
                "report": {
                    "shift": 3,
                    "terminal": 1,
                    "opened_by": "kassir",
                    "opened_at_ms": 1_700_000_000_000_i64,
                    "closed_by": "boss",
                    "closed_at_ms": 1_700_030_000_000_i64,
                    "float_kopecks": 500000,
                    "sales_count": 2,
                    "sales_total_kopecks": 50000,
                    "returns_count": 1,
                    "returns_total_kopecks": 6705,
                    "voids_count": 1,
                    "voids_total_kopecks": 10690,
                    "tenders": [
                        { "kind": "card", "sales_kopecks": 20000, "refunds_kopecks": 6000 },
                        { "kind": "cash", "sales_kopecks": 29000, "refunds_kopecks": 535 },
                        { "kind": "points", "sales_kopecks": 1000, "refunds_kopecks": 170 }
                    ],
                    "vat": [
                        { "rate": "20", "sales_kopecks": 21380, "sales_vat_kopecks": 3563, "returns_kopecks": 0, "returns_vat_kopecks": 0 },
                        { "rate": "10", "sales_kopecks": 28620, "sales_vat_kopecks": 2602, "returns_kopecks": 6705, "returns_vat_kopecks": 610 }
                    ],
                    "cash_in_kopecks": 1000,
                    "cash_out_kopecks": 2000,
                    "expected_cash_kopecks": 527465,
                    "counted_cash_kopecks": 527400,
                    "difference_kopecks": -65
                }
            })
        );
        assert_eq!(to_json(ShiftView::of(None)), json!({ "report": null }));
    }

    #[test]
    fn a_catalog_item_a_user_and_the_status() {
        let mut weighed = item("100478", 14900, VatRate::None, Unit::Kilogram);
        weighed.plu = Some(2);
        weighed.gtin = Some(Gtin::parse("4650001209603").unwrap());
        assert_eq!(
            to_json(CatalogItemView::from(&weighed)),
            json!({
                "sku": "100478", "gtin": "4650001209603", "name": "item 100478", "category": "c",
                "price_kopecks": 14900, "vat": "none", "unit": "kg", "plu": 2
            })
        );
        let boss = User { id: "boss".into(), name: "Управляющий".into(), role: Role::Manager };
        assert_eq!(to_json(UserView::from(&boss)), json!({ "id": "boss", "name": "Управляющий", "role": "manager" }));
        let mut status = Status::default();
        status.printer.state = DeviceState::Busy;
        let ev = to_json(EventView::from(&TillEvent::Status { status }));
        assert_eq!(ev["type"], "status");
        assert_eq!(
            (&ev["status"]["printer"]["state"], &ev["status"]["scanner"]["state"]),
            (&json!("busy"), &json!("closed"))
        );
    }

    #[test]
    fn every_code_is_stable() {
        // Each match is exhaustive: a new variant fails to compile here until it has a code.
        for unit in [Unit::Piece, Unit::Kilogram] {
            let want = match unit {
                Unit::Piece => "pcs",
                Unit::Kilogram => "kg",
            };
            assert_eq!(unit.code(), want);
            assert_eq!(Unit::parse(want), Some(unit));
        }
        for rate in [VatRate::Vat20, VatRate::Vat10, VatRate::Vat0, VatRate::None] {
            let want = match rate {
                VatRate::Vat20 => "20",
                VatRate::Vat10 => "10",
                VatRate::Vat0 => "0",
                VatRate::None => "none",
            };
            assert_eq!(rate.code(), want);
        }
        for kind in TenderKind::ALL {
            let want = match kind {
                TenderKind::Cash => "cash",
                TenderKind::Card => "card",
                TenderKind::Points => "points",
            };
            assert_eq!((kind.code(), tender_kind(want)), (want, Some(kind)));
        }
        for role in [Role::Cashier, Role::Manager] {
            let want = match role {
                Role::Cashier => "cashier",
                Role::Manager => "manager",
            };
            assert_eq!(role_code(role), want);
        }
    }

    #[test]
    fn an_unknown_tender_kind_is_nothing() {
        for code in ["", "Cash", "CASH", "cash ", "Card", "Points", "bonus", "cheque"] {
            assert_eq!(tender_kind(code), None, "{code:?}");
        }
    }
}
