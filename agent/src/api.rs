//! The cashier's JSON API and the page, served by the agent.
//!
//! Writes that create records (`pay`) take an idempotency key: a retried request
//! returns the first answer and writes nothing.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use futures_util::stream::Stream;
use kassa_protocol::basket::BasketError;
use kassa_protocol::sale::{PaymentError, Tender, TenderKind};
use kassa_protocol::{Kopecks, Sku};
use serde::Deserialize;
use serde_json::json;
use tokio_stream::wrappers::{BroadcastStream, WatchStream};
use tokio_stream::StreamExt;

use crate::journal::{Journal, SaleError};
use crate::status::StatusBoard;
use crate::till::{Till, TillError, TillEvent};

/// Largest request body: a payment or a typed code is a few hundred bytes.
const REQUEST_BYTES_MAX: usize = 16 * 1024;
/// Tenders per payment.
const TENDERS_MAX: usize = 8;

#[derive(Debug, Clone)]
pub struct AppState {
    pub till: Arc<Till>,
    pub journal: Arc<Journal>,
    pub status: StatusBoard,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(|| async { Html(include_str!("../web/index.html")) }))
        .route(
            "/app.js",
            get(|| async {
                ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], include_str!("../web/app.js"))
            }),
        )
        .route("/api/health", get(|| async { Json(json!({ "ok": true })) }))
        .route("/api/events", get(events))
        .route("/api/status", get(status))
        .route("/api/basket", get(basket))
        .route("/api/basket/scan", post(scan))
        .route("/api/basket/lines/{line}", delete(remove_line))
        .route("/api/basket/void", post(void))
        .route("/api/pay", post(pay))
        .route("/api/sales/{seq}", get(sale))
        .route("/api/sales/{seq}/reprint", post(reprint))
        .route("/api/stock/{sku}", get(stock))
        .layer(axum::extract::DefaultBodyLimit::max(REQUEST_BYTES_MAX))
        .with_state(state)
}

/// A refusal: a machine-readable code the page translates, and an English message.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into() }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.code, "message": self.message }))).into_response()
    }
}

impl From<TillError> for ApiError {
    fn from(e: TillError) -> Self {
        let msg = e.to_string();
        let (status, code) = match &e {
            TillError::UnknownBarcode(_) => (StatusCode::NOT_FOUND, "unknown_barcode"),
            TillError::UnknownPlu(_) => (StatusCode::NOT_FOUND, "unknown_plu"),
            TillError::Rejected(_) => (StatusCode::UNPROCESSABLE_ENTITY, "rejected_scan"),
            TillError::NoCatalog => (StatusCode::SERVICE_UNAVAILABLE, "no_catalog"),
            TillError::Basket(BasketError::Quantity) => (StatusCode::UNPROCESSABLE_ENTITY, "quantity"),
            TillError::Basket(BasketError::Full) => (StatusCode::UNPROCESSABLE_ENTITY, "basket_full"),
            TillError::Basket(BasketError::NoSuchLine(_)) => (StatusCode::NOT_FOUND, "no_such_line"),
            TillError::Basket(BasketError::Overflow) => (StatusCode::UNPROCESSABLE_ENTITY, "overflow"),
            TillError::Sale(SaleError::Payment(p)) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                match p {
                    PaymentError::EmptyBasket => "empty_basket",
                    PaymentError::Short { .. } => "payment_short",
                    PaymentError::CardOverpaid { .. } => "card_overpaid",
                    PaymentError::NonPositiveTender => "bad_tender",
                    PaymentError::Overflow => "overflow",
                },
            ),
            TillError::Sale(SaleError::IdempotencyKey) => (StatusCode::BAD_REQUEST, "idempotency_key"),
            TillError::Sale(SaleError::Journal(_)) | TillError::Journal(_) => {
                tracing::error!(error = %e, "journal failure");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
        };
        ApiError::new(status, code, msg)
    }
}

type ApiResult = Result<Json<serde_json::Value>, ApiError>;

fn event_json(ev: &TillEvent) -> Event {
    Event::default().data(serde_json::to_string(ev).unwrap_or_default())
}

/// Server-sent events: the basket now, the status now, then every change.
async fn events(State(s): State<AppState>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let first = s.till.basket_event().await;
    // A page that fell behind (lagged) skips to the next event; every basket event is a
    // whole snapshot, so the next one brings it up to date.
    let till_events = BroadcastStream::new(s.till.subscribe()).filter_map(|r| r.ok());
    let status = WatchStream::new(s.status.subscribe()).map(|status| TillEvent::Status { status });
    let stream = tokio_stream::once(first).chain(till_events.merge(status)).map(|ev| Ok(event_json(&ev)));
    Sse::new(stream).keep_alive(KeepAlive::default())
}

async fn status(State(s): State<AppState>) -> ApiResult {
    let status = s.status.borrow().clone();
    Ok(Json(json!(status)))
}

async fn basket(State(s): State<AppState>) -> ApiResult {
    Ok(Json(json!(s.till.basket_event().await)))
}

#[derive(Deserialize)]
struct ScanRequest {
    code: String,
}

/// A code typed by the cashier, handled exactly like a scan.
async fn scan(State(s): State<AppState>, Json(req): Json<ScanRequest>) -> ApiResult {
    Ok(Json(json!(s.till.scan(req.code.trim().as_bytes()).await?)))
}

async fn remove_line(State(s): State<AppState>, Path(line): Path<usize>) -> ApiResult {
    Ok(Json(json!(s.till.remove_line(line).await?)))
}

async fn void(State(s): State<AppState>) -> ApiResult {
    Ok(Json(json!(s.till.void().await)))
}

#[derive(Deserialize)]
struct TenderRequest {
    kind: String,
    amount_kopecks: i64,
}

#[derive(Deserialize)]
struct PayRequest {
    idempotency_key: String,
    tenders: Vec<TenderRequest>,
}

async fn pay(State(s): State<AppState>, Json(req): Json<PayRequest>) -> ApiResult {
    if req.tenders.is_empty() || req.tenders.len() > TENDERS_MAX {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "bad_tender", format!("1 to {TENDERS_MAX} tenders")));
    }
    let tenders = req
        .tenders
        .iter()
        .map(|t| {
            let kind = match t.kind.as_str() {
                "cash" => TenderKind::Cash,
                "card" => TenderKind::Card,
                other => {
                    return Err(ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "bad_tender",
                        format!("unknown tender `{other}`"),
                    ))
                }
            };
            Ok(Tender { kind, amount: Kopecks(t.amount_kopecks) })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let (sale, replayed) = s.till.pay(tenders, req.idempotency_key).await?;
    Ok(Json(json!({ "sale": sale, "replayed": replayed })))
}

async fn sale(State(s): State<AppState>, Path(seq): Path<u64>) -> ApiResult {
    let j = s.journal.clone();
    let sale =
        tokio::task::spawn_blocking(move || j.sale(seq)).await.expect("journal task").map_err(TillError::from)?;
    match sale {
        Some(sale) => Ok(Json(json!(sale))),
        None => Err(ApiError::new(StatusCode::NOT_FOUND, "no_such_sale", format!("no sale {seq}"))),
    }
}

async fn reprint(State(s): State<AppState>, Path(seq): Path<u64>) -> ApiResult {
    if s.till.reprint(seq).await? {
        Ok(Json(json!({ "queued": true })))
    } else {
        Err(ApiError::new(StatusCode::NOT_FOUND, "no_such_sale", format!("no sale {seq}")))
    }
}

async fn stock(State(s): State<AppState>, Path(sku): Path<String>) -> ApiResult {
    let sku = Sku::parse(&sku).ok_or_else(|| ApiError::new(StatusCode::BAD_REQUEST, "bad_sku", "not a SKU"))?;
    let j = s.journal.clone();
    let sku2 = sku.clone();
    let quantity =
        tokio::task::spawn_blocking(move || j.stock(&sku2)).await.expect("journal task").map_err(TillError::from)?;
    Ok(Json(json!({ "sku": sku, "store": s.journal.store().0, "quantity": quantity })))
}
