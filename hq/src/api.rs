//! HQ's HTTP API (JSON): stores and their sync state, stock across stores, sales,
//! parked records, catalog publishing and edits, loyalty rules, promotions; operators,
//! API tokens and the audit log; and the console page that uses them.
//!
//! **Access.** Every route is in [`ROUTES`] with the [`Guard`] it needs, and the router
//! is built from that table: a route cannot exist without a rule, and a request whose
//! route has none is refused (fail closed). Only the health check, the console's page
//! and its login are open, and `/metrics` unless [`Access::metrics_require_token`].
//! Everything else needs a caller — a console session (cookie) or an API token
//! (`Authorization: Bearer …`) — holding the route's permission. A console session's
//! writes (any method but GET and HEAD) must also carry its CSRF token in the
//! `X-CSRF-Token` header. These checks run before anything of the request is read.
//! Every write names its caller in the audit log.
//!
//! Every refusal — this module's and the framework's (a body that is not JSON or too
//! large, a wrong content type, a bad path or query parameter, an unknown route, a
//! wrong method) — is `{"error": code, "message": …}` with a fitting status: `code` for
//! programs, `message` for a person. The codes:
//!
//! | code | status | what |
//! |---|---|---|
//! | `unauthenticated` | 401 | no session cookie and no token |
//! | `bad_token`, `token_revoked`, `token_expired` | 401 | a token HQ does not know, revoked or expired |
//! | `session_expired` | 401 | a session cookie of a session that ended (expired, logged out, operator disabled) |
//! | `forbidden` | 403 | the caller's role or scopes do not include the route's permission |
//! | `csrf` | 403 | a console write without its session's `X-CSRF-Token` |
//! | `bad_credentials`, `locked`, `operator_disabled` | 401, 429, 403 | a refused console login |
//! | `bad_login`, `bad_password`, `bad_name`, `bad_role`, `bad_scope`, `no_scopes`, `bad_days` | 422 | an operator or token refused |
//! | `operator_exists`, `last_administrator` | 409 | |
//! | `no_such_operator`, `no_such_token` | 404 | |
//! | `too_many_operators`, `too_many_tokens` | 409 | past [`crate::auth::OPERATORS_MAX`], [`crate::auth::TOKENS_ACTIVE_MAX`] |
//! | `removals_unconfirmed` | 409 | an import that would remove items, without `?confirm_removals=true`; carries `preview`; nothing published |
//! | `no_such_sku`, `sku_exists`, `gtin_taken`, `plu_taken`, `bad_price`, `bad_name`, `nothing_to_change`, `last_item`, `bad_item` | 404, 409, 422 | a catalog edit refused; nothing published |
//! | `bad_json` | 400, 422 | a body that is not JSON, or JSON of the wrong shape |
//! | `content_type` | 415 | a JSON route without `Content-Type: application/json` |
//! | `too_large` | 413 | a body over [`JSON_BODY_BYTES_MAX`] ([`CATALOG_UPLOAD_BYTES_MAX`] for a catalog) |
//! | `bad_body` | 400 | a body that is not UTF-8 text |
//! | `bad_path`, `bad_query` | 400 | a path or query parameter that does not parse |
//! | `not_found`, `method_not_allowed` | 404, 405 | no such route, or not with this method |
//! | `bad_sku`, `bad_card` | 400 | not a SKU, not a card number |
//! | `no_such_customer` | 404 | no customer with that card |
//! | `too_many_neighbours` | 400 | more than [`crate::db::NEARBY_STORES_MAX`] |
//! | `bad_header`, `bad_rows`, `too_many_items`, `empty_catalog` | 422 | a catalog refused; nothing published (`bad_rows` lists `errors`: `{line, reason}`) |
//! | `earn_rate`, `point_value`, `share`, `excluded_categories`, `cashback` | 422 | loyalty rules refused (see [`kassa_protocol::loyalty::rules`]); nothing published |
//! | `bad_promotion` | 422 | a promotion refused (the message names it and the field); nothing published |
//! | `bad_price_request`, `unknown_sku` | 422, 404 | a basket to price that is wrong, or holds a SKU not in the catalog |
//! | `disk_full` | 507 | HQ's disk is full; nothing was written |
//! | `internal` | 500 | anything else; logged |

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection, StringRejection};
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, MatchedPath, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter};
use axum::{Json, Router};
use kassa_protocol::loyalty::rules::RulesRecord;
use kassa_protocol::loyalty::{LoyaltyRules, RulesError};
use kassa_protocol::{Sku, StoreId};
use serde::Deserialize;
use serde_json::json;

use crate::auth::{self, Caller, Permission, TokenRefused};
use crate::sync_server::{blocking, now_ms, Shared};

mod access;
mod catalog;
mod orders;
mod stock;

/// Sales per page of `GET /api/stores/{id}/sales`.
const SALES_PAGE_MAX: usize = 500;
/// Largest catalog upload accepted, in bytes.
pub const CATALOG_UPLOAD_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Largest body of any other request, in bytes: loyalty rules with every excluded
/// category as long as it may be (256 × 128 characters of up to 4 bytes) fit.
pub const JSON_BODY_BYTES_MAX: usize = 256 * 1024;

/// How HQ's HTTP side checks its callers (from [`crate::HqConfig`]).
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// `/metrics` needs a token with the `metrics` scope.
    pub metrics_require_token: bool,
    /// The session cookie is always `Secure` (HTTPS in front).
    pub secure_cookies: bool,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpAddr>,
}

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guard {
    /// Anyone: the health check, the console's page and its login.
    Open,
    /// Open, or a token with the `metrics` scope ([`Access::metrics_require_token`]).
    Metrics,
    /// Any caller (a session or a token), whatever it may do.
    Signed,
    /// A caller holding this permission.
    Needs(Permission),
}

/// A route of the API: its method, its path (as the router matches it) and its guard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub guard: Guard,
}

/// The API's state: what the sync server shares, and how callers are checked.
#[derive(Debug)]
struct ApiState {
    shared: Shared,
    access: Access,
}

impl std::ops::Deref for ApiState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.shared
    }
}

type AppState = State<Arc<ApiState>>;

/// Declares every route once: [`ROUTES`] (what the guard and the tests read) and the
/// router built from it, so the two cannot differ.
macro_rules! routes {
    ($( $method:ident $path:literal $guard:expr => $handler:expr $(, limit $limit:expr)? ;)*) => {
        /// Every route of the API and what it needs. The router is built from this table
        /// (see `routes!`); `tests/tests/hq_access.rs` calls each one without
        /// credentials, with the wrong role and with a revoked token.
        pub const ROUTES: &[Route] = &[ $( Route { method: stringify!($method), path: $path, guard: $guard } ),* ];

        fn add_routes(router: Router<Arc<ApiState>>) -> Router<Arc<ApiState>> {
            router $( .route($path, {
                let route = on(MethodFilter::$method, $handler);
                $( let route = route.layer(axum::extract::DefaultBodyLimit::max($limit)); )?
                route
            }) )*
        }
    };
}

use Guard::{Metrics as MetricsGuard, Needs, Open, Signed};
use Permission::*;

routes! {
    GET "/api/health" Open => health;
    GET "/metrics" MetricsGuard => metrics;
    GET "/" Open => crate::console::page;
    GET "/console.js" Open => crate::console::script;
    GET "/console.css" Open => crate::console::style;
    POST "/api/login" Open => access::login;
    POST "/api/logout" Signed => access::logout;
    GET "/api/session" Signed => access::session;
    GET "/api/stores" Needs(StoresRead) => stores;
    GET "/api/stores/{store}/sales" Needs(StoresRead) => sales;
    GET "/api/stores/{store}/neighbours" Needs(StoresRead) => neighbours;
    PUT "/api/stores/{store}/neighbours" Needs(StoresWrite) => set_neighbours;
    GET "/api/stock/{sku}" Needs(StockRead) => stock;
    POST "/api/stores/{store}/deliveries" Needs(StockWrite) => stock::create_delivery;
    POST "/api/stores/{store}/deliveries/csv" Needs(StockWrite) => stock::create_delivery_csv, limit stock::DELIVERY_CSV_BYTES_MAX;
    GET "/api/stores/{store}/inbound" Needs(StockRead) => stock::store_inbound;
    GET "/api/stores/{store}/movements" Needs(StockRead) => stock::movements;
    GET "/api/transfers" Needs(StockRead) => stock::transfers;
    GET "/api/availability" Needs(OrdersRead) => orders::availability;
    GET "/api/orders" Needs(OrdersRead) => orders::list;
    POST "/api/orders" Needs(OrdersWrite) => orders::place;
    GET "/api/orders/feed" Needs(OrdersRead) => orders::feed;
    GET "/api/orders/{id}" Needs(OrdersRead) => orders::get;
    POST "/api/orders/{id}/cancel" Needs(OrdersWrite) => orders::cancel;
    GET "/api/parked" Needs(ParkedRead) => parked;
    GET "/api/returns/over" Needs(ParkedRead) => over_returns;
    GET "/api/returns/limits" Needs(StoresRead) => return_limits;
    PUT "/api/returns/limits" Needs(StoresWrite) => set_return_limits;
    GET "/api/loyalty/rules" Needs(LoyaltyRead) => rules;
    PUT "/api/loyalty/rules" Needs(LoyaltyWrite) => publish_rules;
    GET "/api/loyalty/{card}" Needs(CustomersRead) => loyalty;
    GET "/api/customers/{card}/history" Needs(CustomersRead) => customer_history;
    GET "/api/promotions" Needs(PromotionsRead) => promotions;
    PUT "/api/promotions" Needs(PromotionsWrite) => publish_promotions;
    POST "/api/price" Needs(PromotionsRead) => price;
    GET "/api/catalog" Needs(CatalogRead) => catalog::summary;
    POST "/api/catalog" Needs(CatalogWrite) => catalog::import, limit CATALOG_UPLOAD_BYTES_MAX;
    POST "/api/catalog/preview" Needs(CatalogWrite) => catalog::preview, limit CATALOG_UPLOAD_BYTES_MAX;
    GET "/api/catalog/items" Needs(CatalogRead) => catalog::items;
    GET "/api/catalog/schedule" Needs(CatalogRead) => catalog::schedule;
    PUT "/api/catalog/schedule" Needs(CatalogWrite) => catalog::publish_schedule;
    POST "/api/catalog/items" Needs(CatalogWrite) => catalog::add_item;
    PATCH "/api/catalog/items/{sku}" Needs(CatalogWrite) => catalog::change_item;
    DELETE "/api/catalog/items/{sku}" Needs(CatalogWrite) => catalog::discontinue_item;
    GET "/api/audit" Needs(AuditRead) => access::audit;
    GET "/api/operators" Needs(Operators) => access::operators;
    POST "/api/operators" Needs(Operators) => access::add_operator;
    PATCH "/api/operators/{login}" Needs(Operators) => access::change_operator;
    GET "/api/tokens" Needs(Operators) => access::tokens;
    POST "/api/tokens" Needs(Operators) => access::issue_token;
    DELETE "/api/tokens/{id}" Needs(Operators) => access::revoke_token;
}

pub fn router(shared: Shared, access: Access) -> Router {
    use axum::extract::DefaultBodyLimit;
    let state = Arc::new(ApiState { shared, access });
    add_routes(Router::new())
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), guard))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "this route does not take that method")
        })
        .layer(DefaultBodyLimit::max(JSON_BODY_BYTES_MAX))
        .with_state(state)
}

/// Whether this node can serve: its database answers (503 while it does not: stores stay
/// connected and keep their records queued, HQ acknowledges nothing).
async fn health(State(s): AppState) -> Response {
    let backend = match s.db.backend() {
        crate::db::sql::Backend::Sqlite => "sqlite",
        crate::db::sql::Backend::Postgres => "postgres",
    };
    match blocking(&s.db, |db| db.ping()).await {
        Ok(()) => Json(json!({ "ok": true, "database": "up", "backend": backend })).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "health: HQ's database does not answer");
            let body = json!({ "ok": false, "database": "unreachable", "backend": backend, "message": e.to_string() });
            (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
        }
    }
}

/// The route's rule from [`ROUTES`] (HEAD is GET's).
fn route_of(method: &Method, path: &str) -> Option<&'static Route> {
    let method = if method == Method::HEAD { "GET" } else { method.as_str() };
    ROUTES.iter().find(|r| r.path == path && r.method == method)
}

/// Checks the caller against the route's [`Guard`] before the handler reads anything;
/// puts the [`Caller`] in the request for the handler (and the audit log).
async fn guard(State(s): AppState, mut req: Request, next: Next) -> Response {
    let path = req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_owned()).unwrap_or_default();
    let Some(route) = route_of(req.method(), &path) else {
        tracing::error!(method = %req.method(), %path, "a route without an access rule; refused");
        return ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "this route has no access rule")
            .into_response();
    };
    let needed = match route.guard {
        Guard::Open => return next.run(req).await,
        Guard::Metrics if !s.access.metrics_require_token => return next.run(req).await,
        Guard::Metrics => Some(Permission::Metrics),
        Guard::Signed => None,
        Guard::Needs(p) => Some(p),
    };
    let (caller, session) = match credentials(&s, req.headers()).await {
        Ok(found) => found,
        Err(refusal) => return refusal.into_response(),
    };
    if let Some(p) = needed {
        if !caller.permissions.contains(p) {
            tracing::info!(actor = %caller.actor(), method = %req.method(), %path, needs = %p, "refused: not permitted");
            let message = format!("{} may not do this: it needs the `{p}` permission", caller.actor());
            return ApiError::new(StatusCode::FORBIDDEN, "forbidden", message).into_response();
        }
    }
    if let Some(session_id) = &session {
        let safe = matches!(*req.method(), Method::GET | Method::HEAD);
        let sent = req.headers().get(auth::CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
        if !safe && !auth::same_secret(sent, &auth::csrf_token(session_id)) {
            tracing::warn!(actor = %caller.actor(), method = %req.method(), %path, "refused: a console write without its CSRF token");
            let message = "this write lacks the session's CSRF token (X-CSRF-Token); reload the console";
            return ApiError::new(StatusCode::FORBIDDEN, "csrf", message).into_response();
        }
    }
    req.extensions_mut().insert(caller);
    req.extensions_mut().insert(SessionId(session));
    next.run(req).await
}

/// The session id the request's cookie carried, if the caller is a console session.
#[derive(Debug, Clone)]
struct SessionId(Option<String>);

/// The caller of a request (a bearer token first, else the session cookie), with its
/// session id if it is a session.
async fn credentials(s: &ApiState, headers: &HeaderMap) -> std::result::Result<(Caller, Option<String>), ApiError> {
    let unauthorized = |code: &'static str, message: &str| ApiError::new(StatusCode::UNAUTHORIZED, code, message);
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let token = value.to_str().ok().and_then(|v| v.strip_prefix("Bearer ")).map(str::trim).unwrap_or("");
        if token.is_empty() {
            return Err(unauthorized("bad_token", "the Authorization header must be `Bearer <token>`"));
        }
        let token = token.to_owned();
        let found = blocking(&s.db, move |db| auth::token_caller(db, &token, now_ms())).await?;
        return match found {
            Ok(caller) => Ok((caller, None)),
            Err(refused) => {
                let code = match refused {
                    TokenRefused::Unknown => "bad_token",
                    TokenRefused::Revoked => "token_revoked",
                    TokenRefused::Expired => "token_expired",
                };
                Err(unauthorized(code, &format!("{refused}; ask an administrator for a token")))
            }
        };
    }
    let Some(session_id) = session_cookie(headers) else {
        return Err(unauthorized(
            "unauthenticated",
            "log in to the console, or send an API token (Authorization: Bearer …)",
        ));
    };
    let id = session_id.clone();
    match blocking(&s.db, move |db| auth::session_caller(db, &id, now_ms())).await? {
        Some(caller) => Ok((caller, Some(session_id))),
        None => Err(unauthorized("session_expired", "your session has ended; log in again")),
    }
}

/// The session id from the request's `Cookie` header(s).
fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == auth::SESSION_COOKIE)
        .map(|(_, value)| value.trim().to_owned())
        .filter(|v| !v.is_empty() && v.len() <= 128)
}

/// The client's address for counting wrong passwords: the peer's, or what a trusted
/// proxy says it forwarded for.
fn client_address(s: &ApiState, parts: &Parts) -> String {
    let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let Some(peer) = peer else { return "unknown".into() };
    if s.access.trusted_proxies.contains(&peer) {
        let forwarded = parts
            .headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .and_then(|v| v.trim().parse::<IpAddr>().ok());
        if let Some(client) = forwarded {
            return client.to_string();
        }
    }
    peer.to_string()
}

/// The guard's [`Caller`], for a handler of a guarded route: `By(caller): By`.
struct By(Caller);

impl<S: Send + Sync> FromRequestParts<S> for By {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> std::result::Result<Self, ApiError> {
        parts.extensions.get::<Caller>().cloned().map(By).ok_or_else(|| {
            tracing::error!(path = %parts.uri.path(), "a handler needs a caller on a route without one");
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "no caller on this route")
        })
    }
}

/// An API refusal: a status, a code for programs and a message for a person.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// More for programs, beside `error` and `message` (a CSV's line-numbered errors, a
    /// preview of what an import would change).
    extra: Option<(&'static str, serde_json::Value)>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), extra: None }
    }

    fn with(mut self, key: &'static str, value: serde_json::Value) -> Self {
        self.extra = Some((key, value));
        self
    }

    fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    /// A framework rejection: its status and text, under `code` unless the status says
    /// more (a body too large, a wrong content type).
    fn rejected(status: StatusCode, code: &'static str, text: String) -> Self {
        let code = match status {
            StatusCode::PAYLOAD_TOO_LARGE => "too_large",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "content_type",
            s if s.is_server_error() => "internal",
            _ => code,
        };
        Self::new(status, code, text)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.code, "message": self.message });
        if let Some((key, value)) = self.extra {
            body[key] = value;
        }
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer realm=\"kassa-hq\""));
        }
        response
    }
}

impl From<crate::db::DbError> for ApiError {
    fn from(e: crate::db::DbError) -> Self {
        if let crate::db::DbError::Sql(s) = &e {
            if s.is_disk_full() {
                tracing::error!(error = %e, "HQ's disk is full");
                return ApiError::new(StatusCode::INSUFFICIENT_STORAGE, "disk_full", "HQ's disk is full");
            }
        }
        if e.is_unavailable() {
            tracing::error!(error = %e, "HQ's database is unreachable");
            return ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "database_unavailable",
                "HQ's database cannot be reached; try again shortly",
            );
        }
        tracing::error!(error = %e, "API database error");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "database error")
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        Self::rejected(r.status(), "bad_json", r.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        Self::rejected(r.status(), "bad_path", r.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        Self::rejected(r.status(), "bad_query", r.body_text())
    }
}

impl From<StringRejection> for ApiError {
    fn from(r: StringRejection) -> Self {
        Self::rejected(r.status(), "bad_body", r.body_text())
    }
}

/// An axum extractor whose refusal is an [`ApiError`]: `Checked(Path(id)):
/// Checked<Path<u32>>` (axum's own rejections are plain text).
struct Checked<E>(E);

impl<S: Send + Sync, E: FromRequestParts<S>> FromRequestParts<S> for Checked<E>
where
    ApiError: From<E::Rejection>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> std::result::Result<Self, ApiError> {
        Ok(Self(E::from_request_parts(parts, state).await?))
    }
}

impl<S: Send + Sync, E: FromRequest<S>> FromRequest<S> for Checked<E>
where
    ApiError: From<E::Rejection>,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> std::result::Result<Self, ApiError> {
        Ok(Self(E::from_request(req, state).await?))
    }
}

type Result<T> = std::result::Result<Json<T>, ApiError>;

/// The Prometheus text format (see [`crate::metrics`]): per store, its backlog and the
/// age of its last contact; connected stores; what HQ applied, with the batch histogram.
async fn metrics(State(s): AppState) -> std::result::Result<Response, ApiError> {
    let read = blocking(&s.db, |db| Ok((db.stores()?, db.parked()?.len(), db.catalog_version()?))).await;
    // The database down is what the scrape must show, not a failed scrape.
    let database_up = !matches!(&read, Err(e) if e.is_unavailable());
    let (stores, parked, version) = if database_up { read? } else { (Vec::new(), 0, 0) };
    let peers = s.peers.snapshot();
    let readings = crate::metrics::Readings {
        stores: &stores,
        peers: &peers,
        parked_records: parked,
        catalog_version: version,
        database_up,
        now_ms: now_ms(),
    };
    let text = s.metrics.encode(&readings).map_err(|e| {
        tracing::error!(error = %e, "could not encode the metrics");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "could not encode the metrics")
    })?;
    Ok(([(axum::http::header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response())
}

/// Every store HQ has heard from, with its sync state; and, from HQ's memory of the live
/// connections, `connected`, the `protocol_version` it speaks (`null` when not
/// connected) and its `software_version` (`"unknown"` when not connected or when it
/// speaks protocol 2, which does not say): during a rolling upgrade, which stores still
/// run an old release.
async fn stores(State(s): AppState) -> Result<serde_json::Value> {
    let stores = blocking(&s.db, |db| db.stores()).await?;
    let peers = s.peers.snapshot();
    let mut out = Vec::with_capacity(stores.len());
    for st in stores {
        let peer = peers.get(&StoreId(st.store));
        let mut row = serde_json::to_value(&st)
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
        if let Some(row) = row.as_object_mut() {
            row.insert("connected".into(), json!(peer.is_some()));
            row.insert("protocol_version".into(), json!(peer.map(|p| p.protocol_version)));
            let software = peer.and_then(|p| p.software_version.as_deref()).unwrap_or("unknown");
            row.insert("software_version".into(), json!(software));
        }
        out.push(row);
    }
    Ok(Json(json!({ "stores": out })))
}

#[derive(Deserialize)]
struct SalesQuery {
    after: Option<u64>,
    limit: Option<usize>,
}

async fn sales(
    State(s): AppState,
    Checked(Path(store)): Checked<Path<u32>>,
    Checked(Query(q)): Checked<Query<SalesQuery>>,
) -> Result<serde_json::Value> {
    let limit = q.limit.unwrap_or(100).min(SALES_PAGE_MAX);
    let after = q.after.unwrap_or(0);
    let sales = blocking(&s.db, move |db| db.sales(StoreId(store), after, limit)).await?;
    Ok(Json(json!({ "store": store, "sales": sales })))
}

async fn neighbours(State(s): AppState, Checked(Path(store)): Checked<Path<u32>>) -> Result<serde_json::Value> {
    let list = blocking(&s.db, move |db| db.neighbours(StoreId(store))).await?;
    Ok(Json(json!({ "store": store, "neighbours": list })))
}

/// `PUT /api/stores/{id}/neighbours` with a JSON array of store numbers: whose stock the
/// store's tills show as "nearby".
async fn set_neighbours(
    State(s): AppState,
    By(caller): By,
    Checked(Path(store)): Checked<Path<u32>>,
    Checked(Json(list)): Checked<Json<Vec<u32>>>,
) -> Result<serde_json::Value> {
    if list.len() > crate::db::NEARBY_STORES_MAX {
        let max = crate::db::NEARBY_STORES_MAX;
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "too_many_neighbours", format!("at most {max} neighbours")));
    }
    let audit = caller.as_actor().audit(now_ms(), "neighbours.set", json!({ "store": store, "neighbours": list }));
    let ids: Vec<StoreId> = list.into_iter().map(StoreId).collect();
    blocking(&s.db, move |db| db.set_neighbours_audited(StoreId(store), &ids, Some(&audit))).await?;
    neighbours(State(s), Checked(Path(store))).await
}

async fn stock(State(s): AppState, Checked(Path(sku)): Checked<Path<String>>) -> Result<serde_json::Value> {
    let sku = Sku::parse(&sku)
        .ok_or_else(|| ApiError::new(StatusCode::BAD_REQUEST, "bad_sku", format!("`{sku}` is not a SKU")))?;
    let sku2 = sku.clone();
    let stores = blocking(&s.db, move |db| db.stock(&sku2)).await?;
    Ok(Json(json!({ "sku": sku, "stores": stores })))
}

async fn rules(State(s): AppState) -> Result<serde_json::Value> {
    let (version, rules) = blocking(&s.db, |db| db.rules()).await?;
    Ok(Json(json!({ "version": version, "rules": rules })))
}

/// `PUT /api/loyalty/rules` with the rules as JSON (any content type): validated (a bad
/// rule set is refused whole, and so are rules outside the sane bounds of
/// [`LoyaltyRules::publishable`]), versioned and sent to every store; every channel then
/// computes the same points.
async fn publish_rules(
    State(s): AppState,
    By(caller): By,
    Checked(body): Checked<String>,
) -> Result<serde_json::Value> {
    let record: RulesRecord = serde_json::from_str(&body).map_err(|e| {
        let status = if e.is_data() { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::BAD_REQUEST };
        ApiError::new(status, "bad_json", format!("rules: {e}"))
    })?;
    let rules = LoyaltyRules::publishable(record).map_err(|e| {
        let code = match e {
            RulesError::EarnRate => "earn_rate",
            RulesError::PointValue | RulesError::PointValueRange { .. } => "point_value",
            RulesError::Share => "share",
            RulesError::TooManyCategories | RulesError::Category => "excluded_categories",
            RulesError::Cashback { .. } => "cashback",
        };
        ApiError::invalid(code, format!("rules: {e}; nothing published"))
    })?;
    let summary = serde_json::to_value(&rules).unwrap_or_default();
    let audit = caller.as_actor().audit(now_ms(), "loyalty_rules.publish", json!({ "rules": summary }));
    let version = blocking(&s.db, move |db| db.publish_rules_audited(&rules, Some(&audit))).await?;
    tracing::info!(version, "published loyalty rules");
    // Connected stores pick the rules up with the catalog notification.
    s.catalog.send_modify(|_| {});
    Ok(Json(json!({ "version": version })))
}

/// A customer's history in every channel: purchases and returns with the card at any
/// store, orders placed with the customer's phone online or at any till, newest first.
async fn customer_history(State(s): AppState, Checked(Path(card)): Checked<Path<String>>) -> Result<serde_json::Value> {
    let card = kassa_protocol::loyalty::CustomerId::parse(&card)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_card", format!("`{card}`: {e}")))?;
    let c2 = card.clone();
    let Some((customer, history)) = blocking(&s.db, move |db| db.customer_history(&c2)).await? else {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "no_such_customer", format!("no customer {card}")));
    };
    Ok(Json(serde_json::to_value(crate::db::HistoryView::new(&customer, &history)).unwrap_or_default()))
}

/// A customer's balance, the rights each store holds, and earned/spent per store.
async fn loyalty(State(s): AppState, Checked(Path(card)): Checked<Path<String>>) -> Result<serde_json::Value> {
    let card = kassa_protocol::loyalty::CustomerId::parse(&card)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_card", format!("`{card}`: {e}")))?;
    let c2 = card.clone();
    let Some((customer, account)) = blocking(&s.db, move |db| db.loyalty(&c2)).await? else {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "no_such_customer", format!("no customer {card}")));
    };
    use kassa_protocol::loyalty::EntryKind;
    let per_store: Vec<_> = account
        .entries()
        .into_iter()
        .filter_map(|e| match e.kind {
            EntryKind::Earned { actor } => Some(json!({ "actor": actor.to_string(), "earned": e.total })),
            EntryKind::Spent { actor } => Some(json!({ "actor": actor.to_string(), "spent": e.total })),
            EntryKind::Transfer { .. } => None,
        })
        .collect();
    let holders: Vec<_> =
        account.holders().into_iter().map(|(a, points)| json!({ "actor": a.to_string(), "rights": points })).collect();
    Ok(Json(json!({
        "customer": customer,
        "balance": account.balance(),
        "earned": account.earned_total(),
        "spent": account.spent_total(),
        "rights": holders,
        "history": per_store,
    })))
}

async fn parked(State(s): AppState) -> Result<serde_json::Value> {
    let parked = blocking(&s.db, |db| db.parked()).await?;
    Ok(Json(json!({ "parked": parked })))
}

/// Lines returned beyond what was sold — stores that could not see each other's returns
/// (offline) took back the same goods — with the returns that did it, for a manager.
async fn over_returns(State(s): AppState) -> Result<serde_json::Value> {
    let over = blocking(&s.db, |db| db.over_returns()).await?;
    Ok(Json(json!({ "over_returns": over })))
}

/// What a till may refund offline for other stores' receipts, and its version.
async fn return_limits(State(s): AppState) -> Result<serde_json::Value> {
    let (version, limits) = blocking(&s.db, |db| db.return_limits()).await?;
    Ok(Json(json!({ "version": version, "limits": crate::db::LimitsRecord::from(limits) })))
}

/// `PUT /api/returns/limits` with `{"per_receipt_kopecks": …, "per_shift_kopecks": …}`:
/// checked, versioned, audited and sent to every store (0 turns offline returns of
/// other stores' receipts off).
async fn set_return_limits(
    State(s): AppState,
    By(caller): By,
    Checked(body): Checked<String>,
) -> Result<serde_json::Value> {
    let record: crate::db::LimitsRecord = serde_json::from_str(&body).map_err(|e| {
        let status = if e.is_data() { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::BAD_REQUEST };
        ApiError::new(status, "bad_json", format!("return limits: {e}"))
    })?;
    let limits = kassa_protocol::returns::ReturnLimits::from(record);
    limits.validate().map_err(|e| ApiError::invalid("return_limits", format!("{e}; nothing changed")))?;
    let audit = caller.as_actor().audit(now_ms(), "return_limits.set", json!({ "limits": record }));
    let version = blocking(&s.db, move |db| db.set_return_limits(limits, Some(&audit))).await?;
    tracing::info!(version, per_receipt = %limits.per_receipt, per_shift = %limits.per_shift, "return limits set");
    s.return_terms.send_modify(|t| t.0 = t.0.max(version));
    Ok(Json(json!({ "version": version })))
}

/// The published promotions and their version.
async fn promotions(State(s): AppState) -> Result<serde_json::Value> {
    let (version, definitions) = blocking(&s.db, |db| db.promotions()).await?;
    Ok(Json(json!({ "version": version, "promotions": definitions })))
}

/// `PUT /api/promotions` with the whole set as a JSON array of definitions (see
/// [`kassa_protocol::promotions::definition`]): validated against each other and the
/// catalog, and published whole as a new version, or refused naming the promotion and
/// the field, with nothing published.
async fn publish_promotions(
    State(s): AppState,
    By(caller): By,
    Checked(body): Checked<String>,
) -> Result<serde_json::Value> {
    let definitions: Vec<kassa_protocol::promotions::definition::Definition> =
        serde_json::from_str(&body).map_err(|e| {
            let status = if e.is_data() { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::BAD_REQUEST };
            ApiError::new(status, "bad_json", format!("promotions: {e}; nothing published"))
        })?;
    let ids: Vec<_> = definitions.iter().take(crate::catalog::AUDIT_SKUS_MAX).map(|d| json!(d.id)).collect();
    let count = definitions.len();
    match crate::promotions::publish(&s, definitions).await {
        Ok(version) => {
            // Publishing is `promotions`' own transaction: its entry follows it.
            let audit = caller.as_actor().audit(
                now_ms(),
                "promotions.publish",
                json!({ "version": version, "promotions": count, "ids": ids }),
            );
            blocking(&s.db, move |db| db.record_audit(&audit)).await?;
            Ok(Json(json!({ "version": version })))
        }
        Err(crate::promotions::PublishError::Db(e)) => Err(e.into()),
        Err(e) => Err(ApiError::invalid("bad_promotion", e.to_string())),
    }
}

/// `POST /api/price`: a basket priced for a store and channel with the published
/// promotions, by the same engine as every till.
async fn price(
    State(s): AppState,
    Checked(Json(req)): Checked<Json<crate::promotions::PriceRequest>>,
) -> Result<crate::promotions::PriceAnswer> {
    match crate::promotions::price(&s, req, now_ms()).await {
        Ok(answer) => Ok(Json(answer)),
        Err(crate::promotions::PriceError::Invalid(m)) => Err(ApiError::invalid("bad_price_request", m)),
        Err(e @ crate::promotions::PriceError::UnknownSku(_)) => {
            Err(ApiError::new(StatusCode::NOT_FOUND, "unknown_sku", e.to_string()))
        }
        Err(crate::promotions::PriceError::Db(e)) => Err(e.into()),
    }
}
