//! The cashier's JSON API and the page, served by the agent.
//!
//! Every write takes an idempotency key: a retried request returns the first answer
//! and writes nothing; the same key with another request is refused. Every call but
//! the page, login and health needs a session: `Authorization: Bearer <token>` from
//! `POST /api/login` (the event stream, which a browser opens without headers, takes
//! `?token=`); `/metrics` also takes the configured metrics token. Every refusal,
//! the framework's too (bad JSON, a body too large, an unknown route), is
//! `{"error": code, "message": …}`; the page turns the code into words for the cashier.
//! The codes are the refusals' own ([`crate::journal::Refusal`]); [`refusal_codes`]
//! lists them all, and a test checks that the page has words for each.
//!
//! # The format
//! The types of [`view`] are the cashier API's format: every answer and every event is
//! one of them, built from the domain types; a domain type (`Sale`, `Basket`, the
//! journal's `ShiftReport`…) never reaches the page, so its Rust names never do. Names
//! are snake_case; every enumeration is a stable code (`"kg"`, `"card"`, `"10"`,
//! `"with_receipt"`), never a variant name; money is integer kopecks in `…_kopecks`
//! fields. A field may be added (the page ignores what it does not know); none is ever
//! renamed, retyped or removed, and a code keeps its meaning. Requests read codes the
//! same way: a tender kind is `"cash"`, `"card"` or `"points"` ([`view::tender_kind`])
//! and anything else is refused (`bad_tender`), never taken for cash.

mod orders;
mod stock;
pub mod view;

use std::convert::Infallible;
use std::sync::Arc;

use std::net::SocketAddr;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::stream::Stream;
use kassa_protocol::basket::BasketDiscount;
use kassa_protocol::sale::{Tender, TenderKind};
use kassa_protocol::{Kopecks, Sku};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio_stream::wrappers::{BroadcastStream, WatchStream};
use tokio_stream::StreamExt;

use crate::journal::{refusal_codes, AuthError, JournalError, JournalHandle, Refusal, ReturnRequest, User, WriteError};
use crate::status::StatusBoard;
use crate::till::{ElsewhereSale, Till, TillError, TillEvent};
use view::{
    DevicesView, EventView, LoginView, LookupView, MeView, NearbyStockView, PaidView, ReturnedView, SearchView,
    ShiftView, StatusView, StockView, UserView, UsersView,
};

/// Largest request body: a payment or a return is a few hundred bytes.
const REQUEST_BYTES_MAX: usize = 64 * 1024;
/// Tenders per payment.
const TENDERS_MAX: usize = 8;

#[derive(Debug, Clone)]
pub struct AppState {
    pub till: Arc<Till>,
    /// The journal, reached only through its handle (off the executor).
    pub journal: JournalHandle,
    pub status: StatusBoard,
    /// Lets a monitoring system read `/metrics` without a session.
    pub metrics_token: Option<String>,
    /// The histograms `/metrics` shows beside what it reads at each scrape.
    pub metrics: Arc<crate::metrics::Metrics>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(|| async { Html(include_str!("../../web/index.html")) }))
        .route(
            "/app.js",
            get(|| async {
                ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], include_str!("../../web/app.js"))
            }),
        )
        .route("/stock", get(|| async { Html(include_str!("../../web/stock.html")) }))
        .route(
            "/stock.js",
            get(|| async {
                ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], include_str!("../../web/stock.js"))
            }),
        )
        .route("/api/health", get(|| async { Json(json!({ "ok": true })) }))
        .route("/api/devices", get(devices))
        .route("/metrics", get(metrics))
        .route("/api/events", get(events))
        .route("/api/status", get(status))
        .route("/api/users", get(users))
        .route("/api/login", post(login))
        .route("/api/logout", post(logout))
        .route("/api/me", get(me))
        .route("/api/catalog/search", get(search))
        .route("/api/basket", get(basket))
        .route("/api/basket/scan", post(scan))
        .route("/api/basket/items", post(add_item))
        .route("/api/basket/lines/{line}/quantity", post(set_quantity))
        .route("/api/basket/lines/{line}/remove", post(remove_line))
        .route("/api/basket/lines/{line}/price", post(override_price))
        .route("/api/basket/discount", post(discount))
        .route("/api/basket/coupons", post(add_coupon))
        .route("/api/basket/multiplier", post(set_multiplier))
        .route("/api/basket/park", post(park))
        .route("/api/basket/parked", get(parked))
        .route("/api/basket/parked/{slot}/recall", post(recall))
        .route("/api/basket/void", post(void))
        .route("/api/pay", post(pay))
        .route("/api/customer", post(set_customer))
        .route("/api/customer/new", post(new_customer))
        .route("/api/customer/clear", post(clear_customer))
        .route("/api/customer/history", get(customer_history))
        .route("/api/sales/lookup", get(lookup))
        .route("/api/sales/shift", get(shift_sales))
        .route("/api/sales/{seq}", get(sale))
        .route("/api/sales/{seq}/reprint", post(reprint))
        .route("/api/sales/{seq}/cancel", post(cancel))
        .route("/api/returns", post(return_with_receipt))
        .route("/api/returns/without-receipt", post(return_without_receipt))
        .route("/api/shift", get(shift))
        .route("/api/shift/open", post(open_shift))
        .route("/api/shift/cash", post(cash_move))
        .route("/api/shift/x-report", post(x_report))
        .route("/api/shift/close", post(close_shift))
        .route("/api/orders", get(orders::list))
        .route("/api/orders/find", get(orders::find))
        .route("/api/orders/aisle", post(orders::aisle))
        .route("/api/orders/aisle/{id}/pay", post(orders::aisle_pay))
        .route("/api/orders/aisle/{id}/abandon", post(orders::aisle_abandon))
        .route("/api/orders/{id}", get(orders::get))
        .route("/api/orders/{id}/collect", post(orders::collect))
        .route("/api/orders/{id}/{step}", post(orders::step))
        .route("/api/stock/{sku}", get(stock))
        .route("/api/stock", get(stock::levels))
        .route("/api/stock/inbound", get(stock::inbound))
        .route("/api/stock/receive", post(stock::receive))
        .route("/api/stock/write-off", post(stock::write_off))
        .route("/api/stock/transfer", post(stock::transfer))
        .route("/api/stock/movements", get(stock::movements))
        .route("/api/stock/counts", get(stock::open_counts).post(stock::start_count))
        .route("/api/stock/counts/{id}", get(stock::count))
        .route("/api/stock/counts/{id}/scan", post(stock::count_scan))
        .route("/api/stock/counts/{id}/post", post(stock::post_count))
        .fallback(|| async { ApiError::refuse(ApiRefusal::NotFound, "no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::refuse(ApiRefusal::MethodNotAllowed, "this route does not take that method")
        })
        .layer(axum::extract::DefaultBodyLimit::max(REQUEST_BYTES_MAX))
        .with_state(state)
}

/// A JSON body whose rejection (bad JSON, wrong content type, too large) is an
/// [`ApiError`] like every other refusal.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
struct ApiJson<T>(T);

/// A path parameter, refused in the same JSON shape.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
struct Path<T>(T);

/// A query string, refused in the same JSON shape.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
struct Query<T>(T);

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        let refusal = match &r {
            JsonRejection::MissingJsonContentType(_) => ApiRefusal::ContentType,
            JsonRejection::BytesRejection(_) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiRefusal::TooLarge,
            _ => ApiRefusal::BadRequest,
        };
        // axum's status: 400 for JSON that does not parse, 422 for JSON of the wrong shape.
        ApiError::new(r.status(), refusal.code(), r.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        ApiError::refuse(ApiRefusal::BadRequest, r.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::refuse(ApiRefusal::BadRequest, r.body_text())
    }
}

/// Where a request came from (the peer's IP address), for counting wrong PINs per
/// source.
struct Source(String);

impl<S: Send + Sync> FromRequestParts<S> for Source {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let addr = parts.extensions.get::<ConnectInfo<SocketAddr>>();
        Ok(Source(addr.map_or_else(|| "unknown".to_owned(), |ConnectInfo(a)| a.ip().to_string())))
    }
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

    fn refuse(refusal: ApiRefusal, message: impl Into<String>) -> Self {
        Self::new(refusal.status(), refusal.code(), message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.code, "message": self.message }))).into_response()
    }
}

/// The API's own refusals, made before a request reaches the till: the framework's (an
/// unknown route, bad JSON, a body too large) and the handlers' checks of a request's
/// shape.
#[derive(Debug, Clone, Copy)]
enum ApiRefusal {
    NotFound,
    MethodNotAllowed,
    ContentType,
    TooLarge,
    BadRequest,
    BadDiscount,
    BadTender,
    BadReturn,
    BadCountScope,
    BadOrderStep,
}

refusal_codes! {
    ApiRefusal {
        ApiRefusal::NotFound => "not_found",
        ApiRefusal::MethodNotAllowed => "method_not_allowed",
        ApiRefusal::ContentType => "content_type",
        ApiRefusal::TooLarge => "too_large",
        ApiRefusal::BadRequest => "bad_request",
        ApiRefusal::BadDiscount => "bad_discount",
        ApiRefusal::BadTender => "bad_tender",
        ApiRefusal::BadReturn => "bad_return",
        ApiRefusal::BadCountScope => "bad_count_scope",
        ApiRefusal::BadOrderStep => "bad_order_step",
    }
}

impl ApiRefusal {
    fn status(self) -> StatusCode {
        use StatusCode as S;
        match self {
            ApiRefusal::NotFound => S::NOT_FOUND,
            ApiRefusal::MethodNotAllowed => S::METHOD_NOT_ALLOWED,
            ApiRefusal::ContentType => S::UNSUPPORTED_MEDIA_TYPE,
            ApiRefusal::TooLarge => S::PAYLOAD_TOO_LARGE,
            ApiRefusal::BadRequest => S::BAD_REQUEST,
            ApiRefusal::BadDiscount
            | ApiRefusal::BadTender
            | ApiRefusal::BadReturn
            | ApiRefusal::BadCountScope
            | ApiRefusal::BadOrderStep => S::UNPROCESSABLE_ENTITY,
        }
    }
}

/// Every code a refusal of this API can carry: the till's ([`TillError`]'s
/// [`Refusal::codes`], which include the journal's, the basket's and the scanner's) and
/// the API's own. The page has words for each (`agent/tests/refusal_codes.rs`).
pub fn refusal_codes() -> Vec<&'static str> {
    let mut codes = TillError::codes();
    codes.extend(ApiRefusal::codes());
    codes.sort_unstable();
    codes.dedup();
    codes
}

/// Every refusal of the till: its code from [`Refusal::code`], its status from
/// [`till_status`].
impl From<TillError> for ApiError {
    fn from(e: TillError) -> Self {
        let status = till_status(&e);
        if status == StatusCode::INSUFFICIENT_STORAGE {
            tracing::error!(error = %e, "the disk is full: nothing was written");
        } else if status.is_server_error() {
            tracing::error!(error = %e, "internal failure");
        }
        ApiError::new(status, e.code(), e.to_string())
    }
}

fn till_status(e: &TillError) -> StatusCode {
    use StatusCode as S;
    match e {
        TillError::UnknownBarcode(_) | TillError::UnknownPlu(_) | TillError::UnknownSku(_) => S::NOT_FOUND,
        TillError::NoSuchCustomer | TillError::NoSuchParked(_) => S::NOT_FOUND,
        TillError::OrderNeedsHq | TillError::ReturnNeedsHq => S::SERVICE_UNAVAILABLE,
        TillError::Receipt(kassa_protocol::receipt_proof::ProofError::Unsigned) => S::SERVICE_UNAVAILABLE,
        TillError::Receipt(_) => S::UNPROCESSABLE_ENTITY,
        TillError::OrderNotAvailable(_) | TillError::NotAwaitingPayment(_) | TillError::PaymentTooLate(_) => {
            S::CONFLICT
        }
        TillError::OrderRefused(_) | TillError::Order(_) => S::UNPROCESSABLE_ENTITY,
        TillError::TooManyParked | TillError::BasketNotEmpty => S::CONFLICT,
        TillError::Scan(_) | TillError::NoWeight | TillError::NoProductNumber => S::UNPROCESSABLE_ENTITY,
        TillError::Basket(_) => S::UNPROCESSABLE_ENTITY,
        TillError::NoCatalog => S::SERVICE_UNAVAILABLE,
        TillError::NotLoggedIn => S::UNAUTHORIZED,
        TillError::NeedsManager => S::FORBIDDEN,
        TillError::Auth(AuthError::NoSuchUser | AuthError::WrongPin { .. }) => S::UNAUTHORIZED,
        TillError::Auth(AuthError::Locked { .. }) => S::TOO_MANY_REQUESTS,
        TillError::Auth(AuthError::Journal(j)) | TillError::Journal(j) => journal_status(j),
        TillError::Write(w) => write_status(w),
    }
}

fn write_status(w: &WriteError) -> StatusCode {
    use StatusCode as S;
    match w {
        WriteError::IdempotencyKey => S::BAD_REQUEST,
        WriteError::NoSuchSale(_)
        | WriteError::UnknownSku(_)
        | WriteError::NoSuchInbound(_)
        | WriteError::NoSuchCount(_)
        | WriteError::NoSuchOrder(_) => S::NOT_FOUND,
        WriteError::OrderStep(_)
        | WriteError::Handover(_)
        | WriteError::OrderPrepaid(_)
        | WriteError::OrderPaid(_)
        | WriteError::OrderAbandoned(_) => S::CONFLICT,
        WriteError::PrepaymentInPoints | WriteError::OfflineLimit(_) | WriteError::MarkedOffline(_) => {
            S::UNPROCESSABLE_ENTITY
        }
        WriteError::NeedsManager(_) => S::FORBIDDEN,
        WriteError::ReturnElsewhereLoyalty => S::SERVICE_UNAVAILABLE,
        WriteError::AlreadyReceived(_) | WriteError::CountPosted(_) | WriteError::TooManyCounts => S::CONFLICT,
        WriteError::OutOfCount(_) => S::UNPROCESSABLE_ENTITY,
        WriteError::Movement(_) | WriteError::RefundMethod => S::UNPROCESSABLE_ENTITY,
        WriteError::KeyReuse
        | WriteError::NoShift
        | WriteError::ShiftOpen
        | WriteError::AlreadyCancelled(_)
        | WriteError::DrawerShort { .. }
        | WriteError::BasketChanged
        | WriteError::UserExists(_)
        | WriteError::PhoneTaken { .. } => S::CONFLICT,
        WriteError::Payment(_)
        | WriteError::Return(_)
        | WriteError::AmountTooLarge { .. }
        | WriteError::Overflow
        | WriteError::NegativeFloat
        | WriteError::ZeroCashAmount
        | WriteError::CashReason
        | WriteError::NegativeCounted
        | WriteError::Points { .. }
        | WriteError::PointsNeedCustomer
        | WriteError::PointsStep { .. }
        | WriteError::Loyalty(_)
        | WriteError::LoyaltyAccount(_)
        | WriteError::Customer(_)
        | WriteError::BadUserId
        | WriteError::BadUserName
        | WriteError::BadPin => S::UNPROCESSABLE_ENTITY,
        WriteError::PinHash(_) | WriteError::Inconsistent(_) => S::INTERNAL_SERVER_ERROR,
        WriteError::Journal(j) => journal_status(j),
    }
}

fn journal_status(j: &JournalError) -> StatusCode {
    match j {
        JournalError::DiskFull(_) => StatusCode::INSUFFICIENT_STORAGE,
        JournalError::Sqlite(_)
        | JournalError::WrongStore { .. }
        | JournalError::Corrupt(_)
        | JournalError::TooNew { .. } => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<crate::journal::JournalError> for ApiError {
    fn from(e: crate::journal::JournalError) -> Self {
        TillError::from(e).into()
    }
}

/// An answer: one of the API's [`view`] types, or a refusal.
type ApiResult<T = Value> = Result<Json<T>, ApiError>;

/// The logged-in user of the request's bearer token.
struct Cashier(User);

fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    Some(value.strip_prefix("Bearer ")?.trim())
}

impl FromRequestParts<AppState> for Cashier {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = bearer(parts).ok_or(TillError::NotLoggedIn)?;
        Ok(Cashier(state.till.session(token)?))
    }
}

/// A monitoring system with the metrics token, or a logged-in session.
struct MetricsReader;

impl FromRequestParts<AppState> for MetricsReader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = bearer(parts).ok_or(TillError::NotLoggedIn)?;
        let is_metrics_token = state.metrics_token.as_deref().is_some_and(|t| constant_time_eq(t, token));
        if !is_metrics_token {
            state.till.session(token)?;
        }
        Ok(MetricsReader)
    }
}

fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A manager's user id and PIN, when the logged-in user is not a manager.
#[derive(Deserialize)]
struct Approval {
    user: String,
    pin: String,
}

impl Approval {
    fn pair(a: Option<Approval>) -> Option<(String, String)> {
        a.map(|a| (a.user, a.pin))
    }
}

fn event_json(ev: &TillEvent) -> Event {
    Event::default().data(serde_json::to_string(&EventView::from(ev)).unwrap_or_default())
}

#[derive(Deserialize)]
struct EventsQuery {
    token: String,
}

/// Server-sent events: the basket, the shift and the status now, then every change.
/// A browser's `EventSource` sends no headers, so the session comes as `?token=`.
async fn events(
    State(s): State<AppState>,
    Query(q): Query<EventsQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    s.till.session(q.token.trim())?;
    let first = s.till.basket_event().await;
    let (j, terminal) = (s.journal.clone(), s.till.terminal);
    let shift = TillEvent::Shift { report: j.run(move |j| j.x_report(terminal)).await.unwrap_or(None) };
    // A page that fell behind (lagged) skips to the next event; every basket event is a
    // whole snapshot, so the next one brings it up to date.
    let till_events = BroadcastStream::new(s.till.subscribe()).filter_map(|r| r.ok());
    let status = WatchStream::new(s.status.subscribe()).map(|status| TillEvent::Status { status });
    let stream = tokio_stream::iter([first, shift]).chain(till_events.merge(status)).map(|ev| Ok(event_json(&ev)));
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

async fn status(State(s): State<AppState>, _c: Cashier) -> ApiResult<StatusView> {
    let status = StatusView::from(&*s.status.borrow());
    Ok(Json(status))
}

async fn devices(State(s): State<AppState>, _c: Cashier) -> ApiResult<DevicesView> {
    let StatusView { scanner, printer, .. } = StatusView::from(&*s.status.borrow());
    Ok(Json(DevicesView { terminal: s.till.terminal, scanner, printer }))
}

/// The Prometheus text format (see [`crate::metrics`]): gauges read now from the status
/// board and the journal, and the latency histograms.
async fn metrics(State(s): State<AppState>, _r: MetricsReader) -> Result<Response, ApiError> {
    let status = s.status.borrow().clone();
    let j = s.journal.clone();
    let terminal = s.till.terminal;
    let (docs, pending, shift) = j
        .run(move |j| {
            Ok::<_, crate::journal::JournalError>((j.docs_count()?, j.pending_print_jobs()?, j.x_report(terminal)?))
        })
        .await?;
    let readings = crate::metrics::Readings {
        status: &status,
        sales: docs.0,
        returns: docs.1,
        print_jobs_pending: pending,
        shift_expected_cash: shift.map(|r| r.expected_cash),
    };
    let text = s.metrics.encode(&readings).map_err(|e| {
        tracing::error!(error = %e, "could not encode the metrics");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "could not encode the metrics")
    })?;
    Ok(([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response())
}

async fn users(State(s): State<AppState>, _c: Cashier) -> ApiResult<UsersView> {
    let j = s.journal.clone();
    let users = j.run(move |j| j.users()).await?;
    let users = users.iter().map(UserView::from).collect();
    Ok(Json(UsersView { users, terminal: s.till.terminal, store: s.journal.store().0 }))
}

#[derive(Deserialize)]
struct LoginRequest {
    user: String,
    pin: String,
}

async fn login(
    State(s): State<AppState>,
    Source(src): Source,
    ApiJson(req): ApiJson<LoginRequest>,
) -> ApiResult<LoginView> {
    let (token, user) = s.till.login(req.user.trim().to_owned(), req.pin, src).await?;
    Ok(Json(LoginView { token, user: (&user).into(), terminal: s.till.terminal, store: s.journal.store().0 }))
}

async fn logout(State(s): State<AppState>, headers: axum::http::HeaderMap) -> ApiResult {
    if let Some(t) =
        headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "))
    {
        s.till.logout(t.trim());
    }
    Ok(Json(json!({ "ok": true })))
}

async fn me(State(s): State<AppState>, Cashier(user): Cashier) -> ApiResult<MeView> {
    Ok(Json(MeView { user: (&user).into(), terminal: s.till.terminal, store: s.journal.store().0 }))
}

#[derive(Deserialize)]
struct SearchQuery {
    q: String,
}

async fn search(State(s): State<AppState>, _c: Cashier, Query(q): Query<SearchQuery>) -> ApiResult<SearchView> {
    let j = s.journal.clone();
    let items = j.run(move |j| j.search(&q.q)).await?;
    Ok(Json(SearchView { items: items.iter().map(Into::into).collect() }))
}

/// A basket operation's answer: the event it published (the basket, mostly).
fn event(ev: TillEvent) -> Json<EventView> {
    Json(EventView::from(&ev))
}

async fn basket(State(s): State<AppState>, _c: Cashier) -> ApiResult<EventView> {
    Ok(event(s.till.basket_event().await))
}

#[derive(Deserialize)]
struct ScanRequest {
    code: String,
    idempotency_key: String,
}

/// A code typed by the cashier, handled like a scan.
async fn scan(State(s): State<AppState>, _c: Cashier, ApiJson(req): ApiJson<ScanRequest>) -> ApiResult<EventView> {
    Ok(event(s.till.enter_code(&req.code, &req.idempotency_key).await?))
}

/// A coupon code the customer presented: `{"code": "ЙОГУРТ", "idempotency_key": "…"}`.
async fn add_coupon(
    State(s): State<AppState>,
    _c: Cashier,
    ApiJson(req): ApiJson<ScanRequest>,
) -> ApiResult<EventView> {
    Ok(event(s.till.add_coupon(req.code, &req.idempotency_key).await?))
}

#[derive(Deserialize)]
struct AddItem {
    sku: String,
    quantity: i64,
    idempotency_key: String,
}

async fn add_item(State(s): State<AppState>, _c: Cashier, ApiJson(req): ApiJson<AddItem>) -> ApiResult<EventView> {
    let sku = Sku::parse(&req.sku).ok_or_else(|| TillError::UnknownSku(req.sku.clone()))?;
    Ok(event(s.till.add_sku(sku, req.quantity, &req.idempotency_key).await?))
}

#[derive(Deserialize)]
struct Quantity {
    quantity: i64,
    idempotency_key: String,
}

async fn set_quantity(
    State(s): State<AppState>,
    _c: Cashier,
    Path(line): Path<usize>,
    ApiJson(req): ApiJson<Quantity>,
) -> ApiResult<EventView> {
    Ok(event(s.till.set_quantity(line, req.quantity, &req.idempotency_key).await?))
}

#[derive(Deserialize)]
struct KeyOnly {
    idempotency_key: String,
}

#[derive(Deserialize)]
struct Multiplier {
    /// Pieces of the next item scanned or typed (`3 *`); `null` clears it.
    quantity: Option<i64>,
}

/// `POST /api/basket/park`: sets the open basket aside (kept across restarts) and starts
/// a new one for the next customer.
async fn park(State(s): State<AppState>, _c: Cashier, ApiJson(req): ApiJson<KeyOnly>) -> ApiResult<EventView> {
    Ok(event(s.till.park(&req.idempotency_key).await?))
}

/// `GET /api/basket/parked`: this terminal's parked baskets, oldest first.
async fn parked(State(s): State<AppState>, _c: Cashier) -> ApiResult {
    let list: Vec<Value> = s
        .till
        .parked()
        .await?
        .iter()
        .map(|p| {
            let total = p.basket.totals().map_or(0, |t| t.total.0);
            json!({
                "slot": p.slot, "lines": p.basket.lines.len(), "total_kopecks": total,
                "customer": p.customer, "parked_at_ms": p.parked_at_ms,
                "first_item": p.basket.lines.first().map(|l| l.name.clone()),
            })
        })
        .collect();
    Ok(Json(json!({ "parked": list })))
}

/// `POST /api/basket/parked/{slot}/recall`: puts a parked basket back on the (empty)
/// counter.
async fn recall(
    State(s): State<AppState>,
    _c: Cashier,
    Path(slot): Path<u32>,
    ApiJson(req): ApiJson<KeyOnly>,
) -> ApiResult<EventView> {
    Ok(event(s.till.recall(slot, &req.idempotency_key).await?))
}

/// `POST /api/basket/multiplier`: the quantity of the next item (sold by the piece)
/// scanned or typed. Setting it again replaces it; it applies once.
async fn set_multiplier(State(s): State<AppState>, _c: Cashier, ApiJson(req): ApiJson<Multiplier>) -> ApiResult {
    let quantity = s.till.set_multiplier(req.quantity).await?;
    Ok(Json(json!({ "multiplier": quantity })))
}

async fn remove_line(
    State(s): State<AppState>,
    _c: Cashier,
    Path(line): Path<usize>,
    ApiJson(req): ApiJson<KeyOnly>,
) -> ApiResult<EventView> {
    Ok(event(s.till.remove_line(line, &req.idempotency_key).await?))
}

#[derive(Deserialize)]
struct PriceOverride {
    price_kopecks: i64,
    manager: Option<Approval>,
    idempotency_key: String,
}

async fn override_price(
    State(s): State<AppState>,
    Cashier(user): Cashier,
    Source(src): Source,
    Path(line): Path<usize>,
    ApiJson(req): ApiJson<PriceOverride>,
) -> ApiResult<EventView> {
    let manager = s.till.manager(&user, Approval::pair(req.manager), src).await?;
    Ok(event(s.till.override_price(line, Kopecks(req.price_kopecks), &manager, &req.idempotency_key).await?))
}

#[derive(Deserialize)]
struct DiscountRequest {
    percent: Option<u8>,
    amount_kopecks: Option<i64>,
    manager: Option<Approval>,
    idempotency_key: String,
}

async fn discount(
    State(s): State<AppState>,
    Cashier(user): Cashier,
    Source(src): Source,
    ApiJson(req): ApiJson<DiscountRequest>,
) -> ApiResult<EventView> {
    let discount = match (req.percent, req.amount_kopecks) {
        (Some(p), None) => Some(BasketDiscount::Percent(p)),
        (None, Some(a)) => Some(BasketDiscount::Amount(Kopecks(a))),
        (None, None) => None,
        _ => return Err(ApiError::refuse(ApiRefusal::BadDiscount, "a percent or an amount, not both")),
    };
    let manager = s.till.manager(&user, Approval::pair(req.manager), src).await?;
    Ok(event(s.till.set_discount(discount, &manager, &req.idempotency_key).await?))
}

#[derive(Deserialize)]
struct VoidRequest {
    /// A manager's approval, for a basket above the store's limit.
    manager: Option<Approval>,
    idempotency_key: String,
}

async fn void(
    State(s): State<AppState>,
    Cashier(user): Cashier,
    Source(src): Source,
    ApiJson(req): ApiJson<VoidRequest>,
) -> ApiResult<EventView> {
    let manager = match req.manager {
        Some(a) => Some(s.till.manager(&user, Approval::pair(Some(a)), src).await?),
        None => None,
    };
    Ok(event(s.till.void_approved(&user, manager.as_ref(), &req.idempotency_key).await?))
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
    /// The basket the cashier saw (`basket.id` of the last basket event): a basket that
    /// changed since is refused, and a retry after the sale answers the sale.
    basket_id: Option<u64>,
}

fn tenders(requested: &[TenderRequest]) -> Result<Vec<Tender>, ApiError> {
    if requested.is_empty() || requested.len() > TENDERS_MAX {
        return Err(ApiError::refuse(ApiRefusal::BadTender, format!("1 to {TENDERS_MAX} tenders")));
    }
    requested
        .iter()
        .map(|t| {
            let kind = view::tender_kind(&t.kind).ok_or_else(|| {
                ApiError::refuse(ApiRefusal::BadTender, format!("unknown tender `{}`: cash, card or points", t.kind))
            })?;
            Ok(Tender { kind, amount: Kopecks(t.amount_kopecks) })
        })
        .collect()
}

async fn pay(
    State(s): State<AppState>,
    Cashier(user): Cashier,
    ApiJson(req): ApiJson<PayRequest>,
) -> ApiResult<PaidView> {
    let tenders = tenders(&req.tenders)?;
    let (sale, replayed) = s.till.pay(&user, tenders, req.basket_id, req.idempotency_key).await?;
    Ok(Json(PaidView { sale: (&sale).into(), replayed }))
}

#[derive(Deserialize)]
struct CustomerCode {
    /// A loyalty card number or a phone number.
    code: String,
}

/// Puts a loyalty customer on the basket; the answer is the basket with their balance
/// and what can be spent now.
async fn set_customer(
    State(s): State<AppState>,
    _c: Cashier,
    ApiJson(req): ApiJson<CustomerCode>,
) -> ApiResult<EventView> {
    Ok(event(s.till.set_customer(&req.code).await?))
}

#[derive(Deserialize)]
struct NewCustomer {
    phone: String,
    name: Option<String>,
}

/// Issues a new loyalty card at the till.
async fn new_customer(
    State(s): State<AppState>,
    _c: Cashier,
    ApiJson(req): ApiJson<NewCustomer>,
) -> ApiResult<EventView> {
    Ok(event(s.till.new_customer(req.phone, req.name).await?))
}

async fn clear_customer(State(s): State<AppState>, _c: Cashier) -> ApiResult<EventView> {
    Ok(event(s.till.clear_customer().await))
}

/// `GET /api/customer/history?code=…`: a customer (by card or phone) and what they
/// bought and ordered — from HQ, every store and channel, when it is reachable;
/// otherwise this store's own records, marked (`from_hq: false`).
async fn customer_history(
    State(s): State<AppState>,
    _c: Cashier,
    Query(q): Query<CustomerCode>,
) -> ApiResult<view::HistoryView> {
    let (customer, history, from_hq) = s.till.find_customer_history(&q.code).await?;
    Ok(Json(view::HistoryView::new(&customer, &history, from_hq)))
}

#[derive(Deserialize)]
struct LookupQuery {
    code: String,
}

/// A sale by its receipt's code (QR `KASSA:store:seq`) or number, with what is left to
/// return of each line.
async fn lookup(State(s): State<AppState>, _c: Cashier, Query(q): Query<LookupQuery>) -> ApiResult<LookupView> {
    let j = s.journal.clone();
    let code = q.code.trim().to_owned();
    let c = code.clone();
    let found = j
        .run(move |j| -> Result<_, crate::journal::JournalError> {
            let Some(seq) = j.find_doc(&c)? else { return Ok(None) };
            j.returnable(seq)
        })
        .await?;
    match found {
        Some((sale, returnable)) => {
            Ok(Json(LookupView { sale: (&sale).into(), returnable, elsewhere: false, offline: None }))
        }
        // Another store's receipt: HQ says what is left of it (return anywhere), or,
        // with HQ out of reach, its signed code does.
        None if elsewhere(&s, &code).is_some() => match s.till.sale_elsewhere(&code, None).await? {
            ElsewhereSale::Online { sale, returned, .. } => {
                let returnable = kassa_protocol::returns::left_to_return(&sale, &returned);
                Ok(Json(LookupView { sale: sale.as_ref().into(), returnable, elsewhere: true, offline: None }))
            }
            ElsewhereSale::Offline { view: v, .. } => Ok(Json(LookupView {
                sale: (&v.sale).into(),
                returnable: v.returnable,
                elsewhere: true,
                offline: Some(view::OfflineLimitsView {
                    receipt_left_kopecks: v.receipt_left.0,
                    shift_left_kopecks: v.shift_left.0,
                }),
            })),
        },
        None => Err(no_such_sale(code)),
    }
}

/// The sale `code` names when it is another store's (its receipt's QR code or number), or
/// an order's (HQ knows which sale its handover made, at whichever store).
fn elsewhere(s: &AppState, code: &str) -> Option<kassa_protocol::returns::SaleRef> {
    kassa_protocol::sale::sale_ref(code).filter(|by| by.store().is_none_or(|st| st != s.journal.store()))
}

/// No sale by that sequence, receipt number or receipt code.
fn no_such_sale(what: String) -> ApiError {
    TillError::Write(WriteError::NoSuchSale(what)).into()
}

/// `GET /api/sales/shift`: this terminal's receipts of the open shift (or the last one),
/// newest first — for a reprint or a return from the list.
async fn shift_sales(State(s): State<AppState>, _c: Cashier) -> ApiResult {
    let terminal = s.till.terminal;
    let docs = s.journal.run(move |j| j.shift_docs(terminal)).await?;
    Ok(Json(json!({ "terminal": terminal, "docs": docs })))
}

async fn sale(State(s): State<AppState>, _c: Cashier, Path(seq): Path<u64>) -> ApiResult<view::SaleView> {
    let j = s.journal.clone();
    let sale = j.run(move |j| j.sale(seq)).await?;
    match sale {
        Some(sale) => Ok(Json((&sale).into())),
        None => Err(no_such_sale(seq.to_string())),
    }
}

async fn reprint(State(s): State<AppState>, _c: Cashier, Path(seq): Path<u64>) -> ApiResult {
    if s.till.reprint(seq).await? {
        Ok(Json(json!({ "queued": true })))
    } else {
        Err(no_such_sale(seq.to_string()))
    }
}

#[derive(Deserialize)]
struct CancelRequest {
    manager: Option<Approval>,
    /// The manager lets the cash refund exceed what the drawer's figures hold.
    #[serde(default)]
    drawer_override: bool,
    idempotency_key: String,
}

/// The manager of an approved request, as the drawer override when it is asked for.
fn override_by(asked: bool, manager: &User) -> Option<User> {
    asked.then(|| manager.clone())
}

/// The drawer override of a request without other approval: the approving manager,
/// asked for only when the override is.
async fn drawer_override(
    s: &AppState,
    user: &User,
    asked: bool,
    approval: Option<Approval>,
    src: String,
) -> Result<Option<User>, ApiError> {
    if !asked {
        return Ok(None);
    }
    Ok(Some(s.till.manager(user, Approval::pair(approval), src).await?))
}

async fn cancel(
    State(s): State<AppState>,
    Cashier(user): Cashier,
    Source(src): Source,
    Path(seq): Path<u64>,
    ApiJson(req): ApiJson<CancelRequest>,
) -> ApiResult<ReturnedView> {
    let manager = s.till.manager(&user, Approval::pair(req.manager), src).await?;
    let request = ReturnRequest::Cancel { sale_seq: seq, approved_by: manager.id.clone() };
    let drawer = override_by(req.drawer_override, &manager);
    let (ret, replayed) = s.till.return_items(&user, request, drawer, req.idempotency_key).await?;
    Ok(Json(ReturnedView { ret: (&ret).into(), replayed }))
}

#[derive(Deserialize)]
struct ReturnLineRequest {
    line: u32,
    quantity: i64,
}

#[derive(Deserialize)]
struct ReturnRequestBody {
    /// The sale's sequence, or `code`: its receipt number or QR text.
    sale_seq: Option<u64>,
    code: Option<String>,
    lines: Vec<ReturnLineRequest>,
    #[serde(default)]
    drawer_override: bool,
    /// The manager allowing the drawer override (unless the user is one).
    manager: Option<Approval>,
    idempotency_key: String,
}

async fn return_with_receipt(
    State(s): State<AppState>,
    Cashier(user): Cashier,
    Source(src): Source,
    ApiJson(req): ApiJson<ReturnRequestBody>,
) -> ApiResult<ReturnedView> {
    let drawer = drawer_override(&s, &user, req.drawer_override, req.manager, src).await?;
    let lines: Vec<(u32, i64)> = req.lines.iter().map(|l| (l.line, l.quantity)).collect();
    let sale_seq = match (req.sale_seq, req.code) {
        (Some(seq), _) => seq,
        (None, Some(code)) => {
            let j = s.journal.clone();
            let code = code.trim().to_owned();
            let c = code.clone();
            match (j.run(move |j| j.find_doc(&c)).await?, elsewhere(&s, &code)) {
                (Some(seq), _) => seq,
                (None, Some(_)) => {
                    let (ret, replayed) =
                        s.till.return_elsewhere(&user, &code, lines, drawer, req.idempotency_key).await?;
                    return Ok(Json(ReturnedView { ret: (&ret).into(), replayed }));
                }
                (None, None) => return Err(no_such_sale(code)),
            }
        }
        (None, None) => return Err(ApiError::refuse(ApiRefusal::BadReturn, "name the sale: sale_seq or code")),
    };
    let request = ReturnRequest::WithReceipt { sale_seq, lines };
    let (ret, replayed) = s.till.return_items(&user, request, drawer, req.idempotency_key).await?;
    Ok(Json(ReturnedView { ret: (&ret).into(), replayed }))
}

#[derive(Deserialize)]
struct NoReceiptLine {
    /// The item's SKU, or the barcode on the item itself (what a cashier has in hand).
    sku: String,
    quantity: i64,
}

#[derive(Deserialize)]
struct NoReceiptBody {
    lines: Vec<NoReceiptLine>,
    /// How the money goes back: `cash` (the default) or `card`.
    refund: Option<String>,
    manager: Option<Approval>,
    #[serde(default)]
    drawer_override: bool,
    idempotency_key: String,
}

/// The SKU a cashier means by `code`: a valid GTIN (EAN-13/8, UPC, GTIN-14) of a catalog
/// item is that item's SKU; anything else is taken as a SKU.
async fn item_sku(journal: &JournalHandle, code: &str) -> Result<Sku, ApiError> {
    let code = code.trim().to_owned();
    if let Ok(gtin) = kassa_protocol::gtin::Gtin::parse(&code) {
        if let Some(item) = journal.run(move |j| j.item_by_gtin(&gtin)).await? {
            return Ok(item.sku);
        }
    }
    Ok(Sku::parse(&code).ok_or(TillError::UnknownSku(code))?)
}

async fn return_without_receipt(
    State(s): State<AppState>,
    Cashier(user): Cashier,
    Source(src): Source,
    ApiJson(req): ApiJson<NoReceiptBody>,
) -> ApiResult<ReturnedView> {
    let manager = s.till.manager(&user, Approval::pair(req.manager), src).await?;
    let mut lines = Vec::with_capacity(req.lines.len());
    for l in &req.lines {
        lines.push((item_sku(&s.journal, &l.sku).await?, l.quantity));
    }
    let refund = match req.refund.as_deref() {
        None => TenderKind::Cash,
        Some(code) => view::tender_kind(code)
            .ok_or_else(|| ApiError::refuse(ApiRefusal::BadTender, format!("refund `{code}`: cash or card")))?,
    };
    let request = ReturnRequest::WithoutReceipt { lines, approved_by: manager.id.clone(), refund };
    let drawer = override_by(req.drawer_override, &manager);
    let (ret, replayed) = s.till.return_items(&user, request, drawer, req.idempotency_key).await?;
    Ok(Json(ReturnedView { ret: (&ret).into(), replayed }))
}

async fn shift(State(s): State<AppState>, _c: Cashier) -> ApiResult<ShiftView> {
    Ok(Json(ShiftView::of(s.till.x_report(false).await?.as_ref())))
}

#[derive(Deserialize)]
struct OpenShift {
    float_kopecks: i64,
    idempotency_key: String,
}

async fn open_shift(
    State(s): State<AppState>,
    Cashier(user): Cashier,
    ApiJson(req): ApiJson<OpenShift>,
) -> ApiResult<ShiftView> {
    let report = s.till.open_shift(&user, Kopecks(req.float_kopecks), req.idempotency_key).await?;
    Ok(Json(ShiftView::of(Some(&report))))
}

#[derive(Deserialize)]
struct CashMove {
    amount_kopecks: i64,
    reason: String,
    #[serde(default)]
    drawer_override: bool,
    manager: Option<Approval>,
    idempotency_key: String,
}

async fn cash_move(
    State(s): State<AppState>,
    Cashier(user): Cashier,
    Source(src): Source,
    ApiJson(req): ApiJson<CashMove>,
) -> ApiResult<ShiftView> {
    // Cash out needs a manager where the store's limits say so, and an override always.
    let cash_out = req.amount_kopecks < 0 && s.till.limits().cash_out_needs_manager;
    let manager = match (req.manager, cash_out || req.drawer_override) {
        (Some(a), _) => Some(s.till.manager(&user, Approval::pair(Some(a)), src).await?),
        (None, true) => Some(s.till.manager(&user, None, src).await?),
        (None, false) => None,
    };
    let amount = Kopecks(req.amount_kopecks);
    let report = s.till.cash_move(&user, amount, req.reason, manager, req.drawer_override, req.idempotency_key).await?;
    Ok(Json(ShiftView::of(Some(&report))))
}

/// Prints the X report (mid-shift); printing twice prints twice, which is harmless.
async fn x_report(State(s): State<AppState>, _c: Cashier, ApiJson(_req): ApiJson<KeyOnly>) -> ApiResult<ShiftView> {
    match s.till.x_report(true).await? {
        Some(report) => Ok(Json(ShiftView::of(Some(&report)))),
        None => Err(TillError::Write(WriteError::NoShift).into()),
    }
}

#[derive(Deserialize)]
struct CloseShift {
    counted_kopecks: i64,
    manager: Option<Approval>,
    idempotency_key: String,
}

async fn close_shift(
    State(s): State<AppState>,
    Cashier(user): Cashier,
    Source(src): Source,
    ApiJson(req): ApiJson<CloseShift>,
) -> ApiResult<ShiftView> {
    let manager = s.till.manager(&user, Approval::pair(req.manager), src).await?;
    let z = s.till.close_shift(&manager, Kopecks(req.counted_kopecks), req.idempotency_key).await?;
    Ok(Json(ShiftView::of(Some(&z))))
}

async fn stock(State(s): State<AppState>, _c: Cashier, Path(sku): Path<String>) -> ApiResult<StockView> {
    let sku = Sku::parse(&sku).ok_or_else(|| TillError::UnknownSku(sku.clone()))?;
    let j = s.journal.clone();
    let sku2 = sku.clone();
    let (quantity, reserved, (nearby, as_of_ms)) = j
        .run(move |j| {
            Ok::<_, crate::journal::JournalError>((j.stock(&sku2)?, j.reserved(&sku2)?, j.nearby_stock(&sku2)?))
        })
        .await?;
    // The age is by the store's clock against HQ's: good to the minute, which is what a
    // cashier needs ("as of 3 minutes ago").
    let age_ms = (as_of_ms > 0).then(|| (crate::clock::now_ms() - as_of_ms).max(0));
    let nearby = nearby.into_iter().map(|(store, quantity)| NearbyStockView { store, quantity, age_ms }).collect();
    let available = quantity - reserved;
    Ok(Json(StockView { sku: sku.0, store: s.journal.store().0, quantity, reserved, available, nearby }))
}
