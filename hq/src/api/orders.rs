//! Orders for pickup, for the online shop (a token with `orders:write`) and the console:
//! where an item is available, placing an order at a store, reading it, cancelling it,
//! and a feed of what happened to orders.
//!
//! **How the online shop hears of progress** (ready, collected, expired): it reads
//! `GET /api/orders/feed?after=N`, a numbered feed of every state change, from where it
//! stopped (a cursor it keeps), or one order's state. A pull feed needs nothing of the
//! shop but HTTP, survives either side restarting, and never loses a change; a webhook
//! would need retries and a queue of its own to promise as much.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use kassa_protocol::loyalty::{CustomerId, Phone};
use kassa_protocol::orders::{self, OrderChannel, OrderId, Payment};
use kassa_protocol::{Sku, StoreId};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{blocking, now_ms, ApiError, AppState, By, Checked, Result};
use crate::db::{CancelOutcome, OrderRow};
use crate::orders::{PlaceError, PlaceInput, PICKUP_HOURS_DEFAULT};
use crate::promotions::PriceRequestLine;

fn order_json(r: &OrderRow) -> Value {
    let o = &r.order;
    // Done once the store cancelled too (or never had the order: HQ no longer offers
    // it); refused if the store ended it its own way first (a handover stands); pending
    // until the store hears.
    let cancellation = match (r.cancel_requested_at_ms, r.reported) {
        (None, _) => Value::Null,
        (Some(_), None | Some(orders::OrderState::Cancelled)) => json!("done"),
        (Some(_), Some(s)) if s.is_final() => json!("refused"),
        (Some(_), Some(_)) => json!("pending"),
    };
    json!({
        "id": o.id.0,
        "code": o.code(),
        "store": o.store.0,
        "channel": match o.channel { OrderChannel::Online => "online".to_owned(), OrderChannel::Store(s) => format!("store:{}", s.0) },
        "state": r.state.code(),
        "store_state": r.reported.map(|s| s.code()),
        "cancellation": cancellation,
        "payment": o.payment.code(),
        "customer": o.customer.as_ref().map(|c| c.as_str().to_owned()),
        "phone": o.phone.as_ref().map(|p| format!("+{}", p.digits())),
        "note": o.note,
        "total_kopecks": o.total().0,
        "created_at_ms": o.created_at_ms,
        "expires_at_ms": o.expires_at_ms,
        "updated_at_ms": r.updated_at_ms,
        "taken": r.taken,
        "sale_seq": r.sale_seq,
        // An order a till placed to be paid there: `awaiting` its payment (not yet at
        // its pickup store), `paid`, or `abandoned`; `refund_owed_kopecks` when the
        // payment came after HQ cancelled the order.
        "till_payment": r.till_payment.map(|t| json!({
            "store": t.store.0,
            "state": t.code(),
            "paid_kopecks": t.paid.map(|p| p.0 .0),
            "refund_owed_kopecks": t.paid.filter(|_| r.state == orders::OrderState::Cancelled).map(|p| p.0 .0),
        })),
        "lines": o.lines.iter().map(|l| json!({
            "sku": l.sku.0, "name": l.name, "unit": l.unit.code(), "quantity": l.quantity,
            "price_kopecks": l.price.0, "amount_kopecks": l.amount.0, "discount_kopecks": l.discount.0,
            "to_pay_kopecks": l.net().0,
            "promotions": l.promotions.iter().map(|p| json!({ "id": p.promotion, "version": p.version, "name": p.name, "amount_kopecks": p.amount.0 })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AvailabilityQuery {
    sku: String,
}

/// `GET /api/availability?sku=`: per store, on hand, reserved for orders, available, and
/// how old HQ's figures for that store are (since it last heard from it).
pub(super) async fn availability(
    State(s): AppState,
    Checked(Query(q)): Checked<Query<AvailabilityQuery>>,
) -> Result<Value> {
    let sku = Sku::parse(&q.sku).ok_or_else(|| ApiError::invalid("bad_sku", format!("`{}` is not a SKU", q.sku)))?;
    let lookup = sku.clone();
    let rows = blocking(&s.db, move |db| db.availability(&lookup)).await?;
    let now = now_ms();
    Ok(Json(json!({
        "sku": sku.0,
        "stores": rows.iter().map(|a| json!({
            "store": a.store.0,
            "on_hand": a.on_hand,
            "reserved": a.reserved,
            "available": a.available(),
            "age_ms": a.heard_at_ms.map(|t| (now - t).max(0)),
        })).collect::<Vec<_>>(),
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PlaceRequest {
    /// The pickup store.
    store: u32,
    lines: Vec<PriceRequestLine>,
    /// `prepaid` (paid online) or `at_pickup`.
    payment: String,
    /// A loyalty card number, for members' and personal offers.
    #[serde(default)]
    customer: Option<String>,
    #[serde(default)]
    phone: Option<String>,
    #[serde(default)]
    note: String,
    #[serde(default)]
    coupons: Vec<String>,
    /// How long the store keeps it (72 h unless said; at most 30 days).
    #[serde(default)]
    pickup_hours: Option<i64>,
    /// A till's order for its own or another store (the endless aisle): the ordering
    /// store. None: the online shop.
    #[serde(default)]
    from_store: Option<u32>,
    /// Placing the same key again answers the order it placed.
    #[serde(default)]
    idempotency_key: Option<String>,
}

/// `POST /api/orders`: places an order for pickup, priced now by the shared pricing and
/// promotion code, if the store can cover it (counting what open orders reserve). A
/// store that cannot is refused with the lines short and the stores that could.
pub(super) async fn place(
    State(s): AppState,
    By(caller): By,
    Checked(Json(req)): Checked<Json<PlaceRequest>>,
) -> Result<Value> {
    let payment = Payment::from_code(&req.payment)
        .ok_or_else(|| ApiError::invalid("bad_payment", format!("payment `{}`: prepaid or at_pickup", req.payment)))?;
    let customer = req
        .customer
        .as_deref()
        .map(CustomerId::parse)
        .transpose()
        .map_err(|e| ApiError::invalid("bad_customer", format!("customer: {e}")))?;
    let phone = req
        .phone
        .as_deref()
        .map(Phone::parse)
        .transpose()
        .map_err(|e| ApiError::invalid("bad_phone", e.to_string()))?;
    let input = PlaceInput {
        store: req.store,
        lines: req.lines,
        payment,
        customer,
        phone,
        note: req.note,
        coupons: req.coupons,
        pickup_hours: req.pickup_hours.unwrap_or(PICKUP_HOURS_DEFAULT),
        channel: match req.from_store {
            None | Some(0) => OrderChannel::Online,
            Some(s) => OrderChannel::Store(StoreId(s)),
        },
        request_key: req.idempotency_key,
        audit: caller.as_actor().audit(now_ms(), "order.place", json!({})),
    };
    let (order, new) = crate::orders::place(&s, input, now_ms()).await.map_err(|e| match e {
        PlaceError::Db(e) => e.into(),
        e @ PlaceError::UnknownSku(_) => ApiError::new(StatusCode::NOT_FOUND, e.code(), e.to_string()),
        e @ PlaceError::Invalid(..) => ApiError::invalid(e.code(), e.to_string()),
        ref e @ PlaceError::NotAvailable { store, ref short, ref elsewhere } => {
            ApiError::new(StatusCode::CONFLICT, e.code(), e.to_string()).with(
                "details",
                json!({
                    "short": short.iter().map(|x| json!({ "sku": x.sku.0, "wanted": x.wanted, "available": x.available.max(0) })).collect::<Vec<_>>(),
                    "elsewhere": elsewhere.iter().map(|(sku, stores)| json!({
                        "sku": sku.0,
                        "stores": stores.iter().filter(|a| a.store.0 != store && a.available() > 0)
                            .map(|a| json!({ "store": a.store.0, "available": a.available() })).collect::<Vec<_>>(),
                    })).collect::<Vec<_>>(),
                }),
            )
        }
    })?;
    if new {
        tracing::info!(order = %order.id, actor = %caller.actor(), "order placed through the API");
    }
    let id = order.id;
    let row = blocking(&s.db, move |db| db.order(id))
        .await?
        .ok_or_else(|| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "the order placed is gone"))?;
    let mut out = order_json(&row);
    out["replayed"] = json!(!new);
    Ok(Json(out))
}

/// `GET /api/orders/{id}`: the order, and, once handed over, what stores took back of
/// it (`returned`: per line of the purchase, what came back and was refunded) — a
/// prepaid order returned at a store was refunded there, not by the shop.
pub(super) async fn get(State(s): AppState, Checked(Path(id)): Checked<Path<u64>>) -> Result<Value> {
    use kassa_protocol::returns::{SaleAnswer, SaleRef};
    let (row, purchase) = blocking(&s.db, move |db| {
        Ok::<_, crate::db::DbError>((db.order(OrderId(id))?, db.sale_for_return(&SaleRef::Order(OrderId(id)))?))
    })
    .await?;
    let row = row.ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "no_such_order", format!("no order {id}")))?;
    let mut out = order_json(&row);
    if let SaleAnswer::Found { sale, returned, refunds, .. } = purchase {
        out["returned"] = json!({
            "receipt_no": sale.receipt_no,
            "lines": sale.lines.iter().zip(&returned).map(|(l, r)| json!({
                "sku": l.sku.0, "taken": l.quantity, "returned": r.0, "refunded_kopecks": r.1 .0,
            })).collect::<Vec<_>>(),
            "refunded_kopecks": refunds.iter().map(|t| t.amount.0).sum::<i64>(),
        });
    }
    Ok(Json(out))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListQuery {
    store: Option<u32>,
    #[serde(default)]
    open: bool,
}

/// `GET /api/orders?store=&open=`: newest first.
pub(super) async fn list(State(s): AppState, Checked(Query(q)): Checked<Query<ListQuery>>) -> Result<Value> {
    let rows = blocking(&s.db, move |db| db.orders(q.store.map(StoreId), q.open, crate::db::ORDERS_PAGE_MAX)).await?;
    Ok(Json(json!({ "orders": rows.iter().map(order_json).collect::<Vec<_>>() })))
}

/// `POST /api/orders/{id}/cancel`: the customer cancels. Done at once at HQ and sent to
/// the store; if the store hands the order over before it hears (offline), the handover
/// stands and the cancellation shows as refused. An order that already ended is refused.
pub(super) async fn cancel(State(s): AppState, By(caller): By, Checked(Path(id)): Checked<Path<u64>>) -> Result<Value> {
    let audit = caller.as_actor().audit(now_ms(), "order.cancel", json!({ "order": id }));
    let outcome = blocking(&s.db, move |db| db.cancel_order(OrderId(id), &audit, now_ms())).await?;
    match outcome {
        None => Err(ApiError::new(StatusCode::NOT_FOUND, "no_such_order", format!("no order {id}"))),
        Some(CancelOutcome::AlreadyEnded(state)) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "order_ended",
            format!("order {id} is already {}: it cannot be cancelled", state.code()),
        )),
        Some(CancelOutcome::Cancelled) => {
            tracing::info!(order = id, actor = %caller.actor(), "order cancelled at HQ");
            s.orders.send_modify(|g| *g += 1);
            get(State(s), Checked(Path(id))).await
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FeedQuery {
    #[serde(default)]
    after: i64,
}

/// `GET /api/orders/feed?after=N`: what happened to orders after entry `N`, oldest first
/// (at most 500); `next` is the cursor for the next read.
pub(super) async fn feed(State(s): AppState, Checked(Query(q)): Checked<Query<FeedQuery>>) -> Result<Value> {
    let after = q.after;
    let entries = blocking(&s.db, move |db| db.order_feed(after, crate::db::ORDERS_PAGE_MAX)).await?;
    let next = entries.last().map_or(after, |e| e.seq);
    Ok(Json(json!({ "entries": entries, "next": next })))
}
