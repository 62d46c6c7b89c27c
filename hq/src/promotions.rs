//! Promotions at HQ: publishing a validated, versioned set, and pricing a basket for the
//! online shop (or any channel) with the same engine every till runs,
//! [`kassa_protocol::promotions`].

use std::collections::{BTreeSet, HashMap};

use kassa_protocol::basket::Basket;
use kassa_protocol::catalog::CatalogItem;
use kassa_protocol::loyalty::CustomerId;
use kassa_protocol::promotions::definition::Definition;
use kassa_protocol::promotions::{Catalog, Channel, Context, LocalTime, PromotionError, PromotionSet, PROMOTIONS_MAX};
use kassa_protocol::{pricing, Sku, StoreId};
use serde::{Deserialize, Serialize};

use crate::db::DbError;
use crate::sync_server::{blocking, Shared};

/// Lines of a basket priced by [`price`], as at a till.
pub const PRICE_LINES_MAX: usize = kassa_protocol::basket::BASKET_LINES_MAX;

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("{0}; nothing published")]
    Invalid(PromotionError),
    #[error("more than {PROMOTIONS_MAX} promotions; nothing published")]
    TooMany,
    #[error(transparent)]
    Db(#[from] DbError),
}

/// The catalog a set is checked against.
struct Items<'a> {
    skus: BTreeSet<&'a str>,
    categories: BTreeSet<&'a str>,
}

impl Catalog for Items<'_> {
    fn has_sku(&self, sku: &Sku) -> bool {
        self.skus.contains(sku.as_str())
    }
    fn has_category(&self, category: &str) -> bool {
        self.categories.contains(category)
    }
}

/// Validates `definitions` against each other and the catalog and publishes them as the
/// new set, whole or not at all; returns its version.
pub async fn publish(shared: &Shared, definitions: Vec<Definition>) -> Result<u64, PublishError> {
    if definitions.len() > PROMOTIONS_MAX {
        return Err(PublishError::TooMany);
    }
    let promotions = definitions
        .iter()
        .map(Definition::to_promotion)
        .collect::<Result<Vec<_>, _>>()
        .map_err(PublishError::Invalid)?;
    let catalog = blocking(&shared.db, |db| db.catalog()).await?;
    let items = Items {
        skus: catalog.iter().map(|i| i.sku.as_str()).collect(),
        categories: catalog.iter().map(|i| i.category.as_str()).collect(),
    };
    let set = PromotionSet::new(promotions, &items).map_err(PublishError::Invalid)?;
    let count = set.len();
    let version = blocking(&shared.db, move |db| db.publish_promotions(&definitions, set)).await?;
    shared.promotions.send_replace(version);
    tracing::info!(version, promotions = count, "published promotions");
    Ok(version)
}

/// A basket to price: what the online shop (or any channel) sends.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceRequest {
    pub store: u32,
    /// `store` or `online`.
    pub channel: String,
    /// A loyalty card, for members' and personal offers.
    #[serde(default)]
    pub customer: Option<String>,
    #[serde(default)]
    pub coupons: Vec<String>,
    /// When (Unix ms; now if absent), in the store's zone (`utc_offset_minutes`, Moscow if
    /// absent).
    #[serde(default)]
    pub at_ms: Option<i64>,
    #[serde(default)]
    pub utc_offset_minutes: Option<i32>,
    pub lines: Vec<PriceRequestLine>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceRequestLine {
    pub sku: String,
    /// Pieces, or grams of a weighed item.
    pub quantity: i64,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct PricedLine {
    pub sku: String,
    pub name: String,
    pub unit: &'static str,
    pub quantity: i64,
    pub price_kopecks: i64,
    pub amount_kopecks: i64,
    pub discount_kopecks: i64,
    pub to_pay_kopecks: i64,
    /// `20`, `10`, `0` or `none`.
    pub vat: &'static str,
    /// VAT in what is paid for the line.
    pub vat_kopecks: i64,
    pub promotions: Vec<PricedPromotion>,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct PricedPromotion {
    pub id: u32,
    pub version: u32,
    pub name: String,
    pub amount_kopecks: i64,
}

#[derive(Debug, Serialize)]
pub struct PriceAnswer {
    pub promotions_version: u64,
    pub lines: Vec<PricedLine>,
    pub total_kopecks: i64,
    pub discount_kopecks: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum PriceError {
    #[error("{0}")]
    Invalid(String),
    #[error("unknown SKU {0}")]
    UnknownSku(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Prices a basket for a store and channel with the published promotions.
pub async fn price(shared: &Shared, req: PriceRequest, now_ms: i64) -> Result<PriceAnswer, PriceError> {
    let (version, basket) = price_basket(shared, req, now_ms).await?;
    let out: Vec<PricedLine> = basket
        .lines
        .iter()
        .map(|l| PricedLine {
            sku: l.sku.0.clone(),
            name: l.name.clone(),
            unit: l.unit.code(),
            quantity: l.quantity,
            price_kopecks: l.price.0,
            amount_kopecks: l.amount.0,
            discount_kopecks: l.discount.0,
            to_pay_kopecks: l.net().0,
            vat: l.vat.code(),
            vat_kopecks: pricing::vat_included(l.net(), l.vat).0,
            promotions: l
                .promotions
                .iter()
                .map(|p| PricedPromotion {
                    id: p.promotion,
                    version: p.version,
                    name: p.name.clone(),
                    amount_kopecks: p.amount.0,
                })
                .collect(),
        })
        .collect();
    let total = out.iter().map(|l| l.to_pay_kopecks).sum();
    Ok(PriceAnswer {
        promotions_version: version,
        lines: out,
        total_kopecks: total,
        discount_kopecks: basket.promotions_saved().0,
    })
}

/// The basket a till would build of `req`'s lines, priced by the same function the till
/// calls after every scan, with the promotions version it was priced with. Orders lock
/// these lines' prices.
pub async fn price_basket(shared: &Shared, req: PriceRequest, now_ms: i64) -> Result<(u64, Basket), PriceError> {
    let invalid = |m: String| PriceError::Invalid(m);
    if req.lines.is_empty() || req.lines.len() > PRICE_LINES_MAX {
        return Err(invalid(format!("1 to {PRICE_LINES_MAX} lines")));
    }
    let channel = match req.channel.as_str() {
        "store" => Channel::Store,
        "online" => Channel::Online,
        other => return Err(invalid(format!("channel `{other}`: store or online"))),
    };
    let customer =
        req.customer.as_deref().map(CustomerId::parse).transpose().map_err(|e| invalid(format!("customer: {e}")))?;
    let mut skus = Vec::with_capacity(req.lines.len());
    for l in &req.lines {
        skus.push(Sku::parse(&l.sku).ok_or_else(|| invalid(format!("`{}` is not a SKU", l.sku)))?);
        if !(1..=kassa_protocol::basket::LINE_QUANTITY_MAX).contains(&l.quantity) {
            return Err(invalid(format!("quantity of {}: 1 to {}", l.sku, kassa_protocol::basket::LINE_QUANTITY_MAX)));
        }
    }
    let lookup = skus.clone();
    let card = customer.clone();
    let at = LocalTime::from_unix_ms(req.at_ms.unwrap_or(now_ms), req.utc_offset_minutes.unwrap_or(180));
    let (items, (version, set), used): (HashMap<Sku, CatalogItem>, _, Vec<u32>) = blocking(&shared.db, move |db| {
        let used = match &card {
            Some(c) => db.promotions_used(c)?,
            None => Vec::new(),
        };
        let mut items = db.items(&lookup)?;
        // The price in force at the store's local time, as its till would take it.
        let schedule = db.price_schedule_index()?;
        for item in items.values_mut() {
            if let Some(p) = schedule.price_at(&item.sku, at) {
                item.price = p;
            }
        }
        Ok((items, db.promotion_set()?, used))
    })
    .await?;
    // The basket as a till builds it (pieces of one item on one line), priced by the
    // same function the till calls after every scan.
    let mut basket = Basket::new(0);
    for (sku, l) in skus.iter().zip(&req.lines) {
        let item = items.get(sku).ok_or_else(|| PriceError::UnknownSku(sku.0.clone()))?;
        basket.add(item, l.quantity).map_err(|e| invalid(format!("{sku}: {e}")))?;
    }
    for c in &req.coupons {
        basket.add_coupon(c).map_err(|e| invalid(format!("coupon `{c}`: {e}")))?;
    }
    // What the customer has had anywhere: a single-use coupon already used is not
    // honoured online either.
    let used: BTreeSet<u32> = used.into_iter().collect();
    let cx = Context {
        store: StoreId(req.store),
        channel,
        at,
        customer: customer.as_ref(),
        coupons: &basket.coupons.clone(),
        used_coupons: &used,
    };
    basket.apply_promotions(&set, &cx);
    Ok((version, basket))
}
