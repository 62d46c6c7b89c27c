//! Placing an order for pickup: the one road for the online shop (`POST /api/orders`)
//! and a till's endless-aisle order (over sync). Priced by the shared basket and
//! promotion code (channel `online`, the prices then locked), checked against what the
//! pickup store has available (on hand minus what open orders reserve), committed with
//! HQ's number, and offered to the store at once.

use kassa_protocol::loyalty::{CustomerId, Phone};
use kassa_protocol::orders::{Order, OrderChannel, OrderId, Payment, Shortfall, PICKUP_DAYS_MAX};
use kassa_protocol::{Sku, StoreId};

use crate::db::{Availability, DbError, NewAudit, PlaceRefusal};
use crate::promotions::{PriceError, PriceRequest, PriceRequestLine};
use crate::sync_server::{blocking, Shared};

/// How long an order waits for pickup unless the request says.
pub const PICKUP_HOURS_DEFAULT: i64 = 72;

/// An order to place, as the shop or a till asks for it.
#[derive(Debug)]
pub struct PlaceInput {
    pub store: u32,
    pub lines: Vec<PriceRequestLine>,
    pub payment: Payment,
    pub customer: Option<CustomerId>,
    pub phone: Option<Phone>,
    pub note: String,
    pub coupons: Vec<String>,
    pub pickup_hours: i64,
    pub channel: OrderChannel,
    /// Placing the same key again answers the order it placed.
    pub request_key: Option<String>,
    /// Who places it, for the audit log (its summary is the order's, filled in).
    pub audit: NewAudit,
}

#[derive(Debug, thiserror::Error)]
pub enum PlaceError {
    /// A request that cannot be an order: its code and why.
    #[error("{1}")]
    Invalid(&'static str, String),
    #[error("unknown SKU {0}")]
    UnknownSku(String),
    /// The store cannot cover it: what is short, and who has each SKU.
    #[error("store {store} cannot cover this order: {}", short.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    NotAvailable { store: u32, short: Vec<Shortfall>, elsewhere: Vec<(Sku, Vec<Availability>)> },
    #[error(transparent)]
    Db(#[from] DbError),
}

impl PlaceError {
    /// The stable code an API answer or a till's refusal carries.
    pub fn code(&self) -> &'static str {
        match self {
            PlaceError::Invalid(code, _) => code,
            PlaceError::UnknownSku(_) => "unknown_sku",
            PlaceError::NotAvailable { .. } => "not_available",
            PlaceError::Db(_) => "internal",
        }
    }
}

/// Places an order (see the module). Returns it and whether it was placed now (`false`:
/// a request key seen before).
pub async fn place(shared: &Shared, input: PlaceInput, now_ms: i64) -> Result<(Order, bool), PlaceError> {
    if input.store == 0 {
        return Err(PlaceError::Invalid("bad_store", "store 0 is HQ itself".into()));
    }
    if !(1..PICKUP_DAYS_MAX * 24).contains(&input.pickup_hours) {
        let message = format!("pickup_hours: 1 to {}", PICKUP_DAYS_MAX * 24 - 1);
        return Err(PlaceError::Invalid("bad_pickup_hours", message));
    }
    let price = PriceRequest {
        store: input.store,
        channel: "online".into(),
        customer: input.customer.as_ref().map(|c| c.as_str().to_owned()),
        coupons: input.coupons,
        at_ms: Some(now_ms),
        utc_offset_minutes: None,
        lines: input.lines,
    };
    let (_, basket) = crate::promotions::price_basket(shared, price, now_ms).await.map_err(|e| match e {
        PriceError::Invalid(m) => PlaceError::Invalid("bad_order", m),
        PriceError::UnknownSku(s) => PlaceError::UnknownSku(s),
        PriceError::Db(e) => PlaceError::Db(e),
    })?;
    let order = Order {
        id: OrderId(0),
        store: StoreId(input.store),
        channel: input.channel,
        customer: input.customer,
        phone: input.phone,
        note: input.note,
        lines: basket.lines,
        payment: input.payment,
        created_at_ms: now_ms,
        expires_at_ms: now_ms + input.pickup_hours * 3_600_000,
    };
    order.validate().map_err(|e| PlaceError::Invalid("bad_order", e.to_string()))?;
    let (key, audit) = (input.request_key, input.audit);
    let placed = blocking(&shared.db, move |db| db.place_order(order, key.as_deref(), &audit, now_ms)).await?;
    let (order, new) = match placed {
        Ok(done) => done,
        Err(PlaceRefusal::TooManyOpen) => {
            let message = format!(
                "store {} holds {} open orders already: let some be collected or expire first",
                input.store,
                kassa_protocol::orders::OPEN_ORDERS_PER_STORE_MAX
            );
            return Err(PlaceError::Invalid("too_many_orders", message));
        }
        Err(PlaceRefusal::Short(short)) => {
            let skus: Vec<Sku> = short.iter().map(|x| x.sku.clone()).collect();
            let elsewhere = blocking(&shared.db, move |db| {
                skus.iter().map(|sku| Ok((sku.clone(), db.availability(sku)?))).collect::<Result<Vec<_>, DbError>>()
            })
            .await?;
            return Err(PlaceError::NotAvailable { store: input.store, short, elsewhere });
        }
    };
    if new {
        tracing::info!(order = %order.id, store = order.store.0, channel = ?order.channel, total = %order.total(), "order placed");
        shared.orders.send_modify(|g| *g += 1);
    }
    Ok((order, new))
}

/// How often HQ looks for orders whose till never said it was paid.
pub const UNPAID_CHECK_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

/// Cancels, every [`UNPAID_CHECK_INTERVAL`], the orders still awaiting their till's
/// payment after `kassa_protocol::orders::TILL_PAYMENT_WAIT_MS` (never offered to their
/// pickup store, so only HQ's reservation is released).
pub async fn cancel_unpaid(shared: Shared, cancel: tokio_util::sync::CancellationToken) {
    let mut tick = tokio::time::interval(UNPAID_CHECK_INTERVAL);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = crate::sync_server::now_ms();
        match blocking(&shared.db, move |db| db.cancel_unpaid_orders(now)).await {
            Ok(ids) if !ids.is_empty() => {
                tracing::info!(orders = ?ids, "orders never paid at their till cancelled; stock released");
                shared.orders.send_modify(|g| *g += 1);
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "could not cancel unpaid orders; trying again later"),
        }
    }
}
