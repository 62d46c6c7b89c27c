//! Orders for pickup at this store, as the till's Orders view uses them: the list (new,
//! picking, ready, and what ended lately; overdue ones flagged), one order by its
//! number, pickup code or the customer's phone, moving one on, its picking list, and
//! the handover. Every call needs a session; the handover an idempotency key.

use axum::extract::{Path, Query, State};
use axum::Json;
use kassa_protocol::orders::{self, Handover, OrderId, Payment, StoreStep};
use kassa_protocol::sale::{Tender, TenderKind};
use kassa_protocol::Kopecks;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{tenders, ApiError, ApiJson, ApiRefusal, ApiResult, AppState, Cashier, TenderRequest};
use crate::journal::OrderView;
use crate::till::TillError;

/// Orders one list shows at most (the open ones and what ended in the last day).
const ORDERS_LISTED_MAX: usize = 500;
/// How far back the list shows orders that ended.
const ENDED_SHOWN_MS: i64 = 24 * 3_600_000;

fn order_json(v: &OrderView, now_ms: i64) -> Value {
    let o = &v.order;
    json!({
        "id": o.id.0,
        "code": o.code(),
        "state": v.state.code(),
        "overdue": orders::is_overdue(o, v.state, v.received_at_ms, now_ms),
        "channel": match o.channel {
            orders::OrderChannel::Online => "online".to_owned(),
            orders::OrderChannel::Store(s) => format!("store:{}", s.0),
        },
        "payment": o.payment.code(),
        "customer": o.customer.as_ref().map(|c| c.as_str().to_owned()),
        "phone": o.phone.as_ref().map(|p| format!("+{}", p.digits())),
        "note": o.note,
        "total_kopecks": o.total().0,
        "created_at_ms": o.created_at_ms,
        "received_at_ms": v.received_at_ms,
        "expires_at_ms": o.expires_at_ms,
        "taken": v.taken,
        "sale_seq": v.sale_seq,
        "lines": o.lines.iter().map(|l| json!({
            "sku": l.sku.0,
            "name": l.name,
            "unit": l.unit.code(),
            "quantity": l.quantity,
            "price_kopecks": l.price.0,
            "amount_kopecks": l.amount.0,
            "discount_kopecks": l.discount.0,
            "to_pay_kopecks": l.net().0,
            "promotions": l.promotions.iter().map(|p| json!({ "name": p.name, "amount_kopecks": p.amount.0 })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

/// Runs the expiry at the store's clock first, so a list never shows as open an order
/// whose time is up.
async fn expire(s: &AppState) -> Result<i64, TillError> {
    let now = crate::clock::now_ms();
    s.till.expire_orders(now).await?;
    Ok(now)
}

/// `GET /api/orders`: open orders and those that ended in the last day, newest first.
pub(super) async fn list(State(s): State<AppState>, _c: Cashier) -> ApiResult {
    let now = expire(&s).await?;
    let list = s.journal.run(move |j| j.orders(now - ENDED_SHOWN_MS, ORDERS_LISTED_MAX)).await?;
    let open = list.iter().filter(|v| !v.state.is_final()).count();
    let overdue = list.iter().filter(|v| orders::is_overdue(&v.order, v.state, v.received_at_ms, now)).count();
    Ok(Json(json!({
        "open": open,
        "overdue": overdue,
        "orders": list.iter().map(|v| order_json(v, now)).collect::<Vec<_>>(),
    })))
}

#[derive(Deserialize)]
pub(super) struct FindQuery {
    /// A pickup code (`Z…`), an order number, or the customer's phone.
    code: String,
}

/// `GET /api/orders/find?code=`: the orders a pickup code, an order number or a phone
/// names.
pub(super) async fn find(State(s): State<AppState>, _c: Cashier, Query(q): Query<FindQuery>) -> ApiResult {
    let now = expire(&s).await?;
    let code = q.code.trim().to_owned();
    let id = orders::parse_pickup_code(&code).or_else(|| code.parse::<u64>().ok().filter(|n| *n > 0).map(OrderId));
    let phone = kassa_protocol::loyalty::Phone::parse(&code).ok();
    let found = s
        .journal
        .run(move |j| {
            let mut out: Vec<OrderView> = id.map(|id| j.order(id)).transpose()?.flatten().into_iter().collect();
            if let Some(p) = phone {
                out.extend(j.orders_by_phone(p.digits(), 20)?.into_iter().filter(|v| Some(v.order.id) != id));
            }
            Ok::<_, crate::journal::JournalError>(out)
        })
        .await?;
    if found.is_empty() {
        return Err(TillError::Write(crate::journal::WriteError::NoSuchOrder(id.unwrap_or(OrderId(0)))).into());
    }
    Ok(Json(json!({ "orders": found.iter().map(|v| order_json(v, now)).collect::<Vec<_>>() })))
}

async fn one(s: &AppState, id: u64) -> Result<Value, ApiError> {
    let now = expire(s).await?;
    let id = OrderId(id);
    let v = s.journal.run(move |j| j.order(id)).await?;
    let v = v.ok_or(TillError::Write(crate::journal::WriteError::NoSuchOrder(id)))?;
    Ok(order_json(&v, now))
}

/// `GET /api/orders/{id}`.
pub(super) async fn get(State(s): State<AppState>, _c: Cashier, Path(id): Path<u64>) -> ApiResult {
    Ok(Json(one(&s, id).await?))
}

/// `POST /api/orders/{id}/{step}`: `picking` (prints the picking list), `ready`,
/// `cancel` (the customer does not want it), or `print` (the picking list again).
pub(super) async fn step(
    State(s): State<AppState>,
    Cashier(user): Cashier,
    Path((id, step)): Path<(u64, String)>,
) -> ApiResult {
    expire(&s).await?;
    let step = match step.as_str() {
        "picking" => StoreStep::Picking,
        "ready" => StoreStep::Ready,
        "cancel" => StoreStep::Cancel,
        "print" => {
            s.till.print_picking_list(OrderId(id)).await?;
            return Ok(Json(one(&s, id).await?));
        }
        other => {
            return Err(ApiError::refuse(
                ApiRefusal::BadOrderStep,
                format!("`{other}` is not a step of an order: picking, ready, cancel or print"),
            ))
        }
    };
    s.till.order_step(&user, OrderId(id), step).await?;
    Ok(Json(one(&s, id).await?))
}

#[derive(Deserialize)]
pub(super) struct AisleRequest {
    /// The pickup store: this one, or another that has the goods.
    store: u32,
    lines: Vec<super::stock::LineRequest>,
    /// The customer's phone, to find the order by at pickup.
    phone: Option<String>,
    #[serde(default)]
    note: String,
    pickup_hours: Option<u32>,
    /// `at_pickup` (the default), or `now`: paid at this till once HQ placed it
    /// (`POST /api/orders/aisle/{id}/pay`, or `…/abandon` if the customer does not pay).
    payment: Option<String>,
}

/// `POST /api/orders/aisle`: the endless aisle — orders what this store lacks for pickup
/// here or at another store, paid at pickup or now. Needs HQ online; says so plainly
/// otherwise. An order paid now is placed first and then paid (`aisle_pay`).
pub(super) async fn aisle(
    State(s): State<AppState>,
    Cashier(user): Cashier,
    ApiJson(req): ApiJson<AisleRequest>,
) -> ApiResult {
    let lines = super::stock::resolve_lines(&s, &req.lines).await?;
    let phone = req
        .phone
        .as_deref()
        .filter(|p| !p.trim().is_empty())
        .map(kassa_protocol::loyalty::Phone::parse)
        .transpose()
        .map_err(|e| TillError::Write(crate::journal::WriteError::Customer(e)))?;
    let payment = match req.payment.as_deref() {
        None | Some("at_pickup") => Payment::AtPickup,
        Some("now") => Payment::Prepaid,
        Some(other) => {
            return Err(ApiError::refuse(ApiRefusal::BadTender, format!("payment `{other}`: at_pickup or now")))
        }
    };
    let request = orders::OrderRequest {
        request_id: 0,
        store: kassa_protocol::StoreId(req.store),
        lines,
        payment,
        customer: None,
        phone,
        note: req.note,
        pickup_hours: req.pickup_hours.unwrap_or(72),
    };
    let order = s.till.place_order(&user, request).await?;
    Ok(Json(json!({
        "id": order.id.0,
        "code": order.code(),
        "store": order.store.0,
        "total_kopecks": order.total().0,
        "expires_at_ms": order.expires_at_ms,
        "payment": order.payment.code(),
    })))
}

/// How an order's money is paid at the till: `tenders` as for a basket, or `pay` (`cash`
/// or `card`) for one tender of what is due, with `cash_kopecks` handed over (cash; what
/// is due if absent).
#[derive(Deserialize)]
pub(super) struct PayBody {
    #[serde(default)]
    tenders: Vec<TenderRequest>,
    pay: Option<String>,
    cash_kopecks: Option<i64>,
}

impl PayBody {
    fn is_empty(&self) -> bool {
        self.tenders.is_empty() && self.pay.is_none()
    }

    /// The tenders; `due` is asked only for `pay`.
    fn tenders(&self, due: impl FnOnce() -> Result<Kopecks, ApiError>) -> Result<Vec<Tender>, ApiError> {
        let Some(kind) = self.pay.as_deref() else { return tenders(&self.tenders) };
        let due = due()?;
        let (kind, amount) = match kind {
            "card" => (TenderKind::Card, due),
            "cash" => (TenderKind::Cash, self.cash_kopecks.map_or(due, Kopecks)),
            other => return Err(ApiError::refuse(ApiRefusal::BadTender, format!("pay `{other}`: cash or card"))),
        };
        Ok(vec![Tender { kind, amount }])
    }
}

#[derive(Deserialize)]
pub(super) struct AislePayRequest {
    /// The order's total is what is due.
    #[serde(flatten)]
    payment: PayBody,
    idempotency_key: String,
}

/// `POST /api/orders/aisle/{id}/pay`: takes the money for an order this till placed to
/// be paid now: a prepayment receipt; the order then goes to its pickup store as prepaid.
pub(super) async fn aisle_pay(
    State(s): State<AppState>,
    Cashier(user): Cashier,
    Path(id): Path<u64>,
    ApiJson(req): ApiJson<AislePayRequest>,
) -> ApiResult {
    let id = OrderId(id);
    let tenders =
        req.payment.tenders(|| Ok(s.till.unpaid_order(id).ok_or(TillError::NotAwaitingPayment(id))?.total()))?;
    let (done, replayed) = s.till.prepay_order(&user, id, tenders, req.idempotency_key).await?;
    Ok(Json(json!({
        "order": done.order,
        "receipt": done.record,
        "total_kopecks": done.total_kopecks,
        "change_kopecks": done.change_kopecks,
        "replayed": replayed,
    })))
}

/// `POST /api/orders/aisle/{id}/abandon`: the customer does not pay an order placed here
/// to be paid now: HQ cancels it.
pub(super) async fn aisle_abandon(State(s): State<AppState>, Cashier(user): Cashier, Path(id): Path<u64>) -> ApiResult {
    s.till.abandon_order(&user, OrderId(id)).await?;
    Ok(Json(json!({ "order": id, "abandoned": true })))
}

#[derive(Deserialize)]
pub(super) struct CollectRequest {
    /// What the customer takes of each line; none: everything.
    taken: Option<Vec<i64>>,
    /// How a pay-at-pickup order is paid (what is due for the lines taken); nothing for a
    /// prepaid order.
    #[serde(flatten)]
    payment: PayBody,
    idempotency_key: String,
}

/// `POST /api/orders/{id}/collect`: hands the order over. A prepaid order takes no
/// money; an order paid at pickup becomes a sale of what is taken, at its locked prices.
pub(super) async fn collect(
    State(s): State<AppState>,
    Cashier(user): Cashier,
    Path(id): Path<u64>,
    ApiJson(req): ApiJson<CollectRequest>,
) -> ApiResult {
    let id = OrderId(id);
    let order = s.journal.run(move |j| j.order(id)).await?;
    let order = order.ok_or(TillError::Write(crate::journal::WriteError::NoSuchOrder(id)))?.order;
    let handover = match req.taken {
        Some(taken) => Handover { taken },
        None => Handover::all(&order),
    };
    let tenders = if order.payment == Payment::Prepaid && req.payment.is_empty() {
        Vec::new()
    } else {
        req.payment.tenders(|| Ok(Kopecks(orders::taken_lines(&order, &handover).iter().map(|l| l.net().0).sum())))?
    };
    let (done, replayed) = s.till.collect_order(&user, id, handover, tenders, req.idempotency_key).await?;
    let mut out = one(&s, id.0).await?;
    out["collected"] = json!({
        "sale_seq": done.sale_seq,
        "receipt_no": done.receipt_no,
        "change_kopecks": done.change_kopecks,
        "replayed": replayed,
    });
    Ok(Json(out))
}
