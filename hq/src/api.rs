//! HQ's HTTP API (JSON): stores and their sync state, stock across stores, sales,
//! parked records, catalog publishing, loyalty rules.
//!
//! Every refusal — this module's and the framework's (a body that is not JSON or too
//! large, a wrong content type, a bad path or query parameter, an unknown route, a
//! wrong method) — is `{"error": code, "message": …}` with a fitting status: `code` for
//! programs, `message` for a person. The codes:
//!
//! | code | status | what |
//! |---|---|---|
//! | `bad_json` | 400, 422 | a body that is not JSON, or JSON of the wrong shape |
//! | `content_type` | 415 | a JSON route without `Content-Type: application/json` |
//! | `too_large` | 413 | a body over [`JSON_BODY_BYTES_MAX`] ([`CATALOG_UPLOAD_BYTES_MAX`] for a catalog) |
//! | `bad_body` | 400 | a body that is not UTF-8 text |
//! | `bad_path`, `bad_query` | 400 | a path or query parameter that does not parse |
//! | `not_found`, `method_not_allowed` | 404, 405 | no such route, or not with this method |
//! | `bad_sku`, `bad_card` | 400 | not a SKU, not a card number |
//! | `no_such_customer` | 404 | no customer with that card |
//! | `too_many_neighbours` | 400 | more than [`crate::db::NEARBY_STORES_MAX`] |
//! | `bad_header`, `bad_rows`, `too_many_items`, `empty_catalog` | 422 | a catalog refused; nothing published |
//! | `earn_rate`, `point_value`, `share`, `excluded_categories`, `cashback` | 422 | loyalty rules refused (see [`kassa_protocol::loyalty::rules`]); nothing published |
//! | `bad_promotion` | 422 | a promotion refused (the message names it and the field); nothing published |
//! | `bad_price_request`, `unknown_sku` | 422, 404 | a basket to price that is wrong, or holds a SKU not in the catalog |
//! | `disk_full` | 507 | HQ's disk is full; nothing was written |
//! | `internal` | 500 | anything else; logged |

use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection, StringRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use kassa_protocol::catalog::ImportError;
use kassa_protocol::loyalty::rules::RulesRecord;
use kassa_protocol::loyalty::{LoyaltyRules, RulesError};
use kassa_protocol::{Sku, StoreId};
use serde::Deserialize;
use serde_json::json;

use crate::sync_server::{blocking, Shared};

/// Sales per page of `GET /api/stores/{id}/sales`.
const SALES_PAGE_MAX: usize = 500;
/// Largest catalog upload accepted, in bytes.
pub const CATALOG_UPLOAD_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Largest body of any other request, in bytes: loyalty rules with every excluded
/// category as long as it may be (256 × 128 characters of up to 4 bytes) fit.
pub const JSON_BODY_BYTES_MAX: usize = 256 * 1024;

pub fn router(shared: Shared) -> Router {
    use axum::extract::DefaultBodyLimit;
    Router::new()
        .route("/api/health", get(|| async { Json(json!({ "ok": true })) }))
        .route("/metrics", get(metrics))
        .route("/api/stores", get(stores))
        .route("/api/stores/{store}/sales", get(sales))
        .route("/api/stores/{store}/neighbours", get(neighbours).put(set_neighbours))
        .route("/api/stock/{sku}", get(stock))
        .route("/api/parked", get(parked))
        .route("/api/loyalty/rules", get(rules).put(publish_rules))
        .route("/api/loyalty/{card}", get(loyalty))
        .route("/api/promotions", get(promotions).put(publish_promotions))
        .route("/api/price", axum::routing::post(price))
        .route("/api/catalog", get(catalog).post(import_catalog).layer(DefaultBodyLimit::max(CATALOG_UPLOAD_BYTES_MAX)))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "this route does not take that method")
        })
        .layer(DefaultBodyLimit::max(JSON_BODY_BYTES_MAX))
        .with_state(Arc::new(shared))
}

/// An API refusal: a status, a code for programs and a message for a person.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into() }
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
        (self.status, Json(json!({ "error": self.code, "message": self.message }))).into_response()
    }
}

impl From<crate::db::DbError> for ApiError {
    fn from(e: crate::db::DbError) -> Self {
        use rusqlite::ErrorCode;
        if let crate::db::DbError::Sqlite(rusqlite::Error::SqliteFailure(f, _)) = &e {
            if f.code == ErrorCode::DiskFull {
                tracing::error!(error = %e, "HQ's disk is full");
                return ApiError::new(StatusCode::INSUFFICIENT_STORAGE, "disk_full", "HQ's disk is full");
            }
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
async fn metrics(State(s): State<Arc<Shared>>) -> std::result::Result<Response, ApiError> {
    let (stores, parked, version) =
        blocking(&s.db, |db| Ok((db.stores()?, db.parked()?.len(), db.catalog_version()?))).await?;
    let peers = s.peers.snapshot();
    let readings = crate::metrics::Readings {
        stores: &stores,
        peers: &peers,
        parked_records: parked,
        catalog_version: version,
        now_ms: crate::sync_server::now_ms(),
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
async fn stores(State(s): State<Arc<Shared>>) -> Result<serde_json::Value> {
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
    State(s): State<Arc<Shared>>,
    Checked(Path(store)): Checked<Path<u32>>,
    Checked(Query(q)): Checked<Query<SalesQuery>>,
) -> Result<serde_json::Value> {
    let limit = q.limit.unwrap_or(100).min(SALES_PAGE_MAX);
    let after = q.after.unwrap_or(0);
    let sales = blocking(&s.db, move |db| db.sales(StoreId(store), after, limit)).await?;
    Ok(Json(json!({ "store": store, "sales": sales })))
}

async fn neighbours(
    State(s): State<Arc<Shared>>,
    Checked(Path(store)): Checked<Path<u32>>,
) -> Result<serde_json::Value> {
    let list = blocking(&s.db, move |db| db.neighbours(StoreId(store))).await?;
    Ok(Json(json!({ "store": store, "neighbours": list })))
}

/// `PUT /api/stores/{id}/neighbours` with a JSON array of store numbers: whose stock the
/// store's tills show as "nearby".
async fn set_neighbours(
    State(s): State<Arc<Shared>>,
    Checked(Path(store)): Checked<Path<u32>>,
    Checked(Json(list)): Checked<Json<Vec<u32>>>,
) -> Result<serde_json::Value> {
    if list.len() > crate::db::NEARBY_STORES_MAX {
        let max = crate::db::NEARBY_STORES_MAX;
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "too_many_neighbours", format!("at most {max} neighbours")));
    }
    let ids: Vec<StoreId> = list.into_iter().map(StoreId).collect();
    blocking(&s.db, move |db| db.set_neighbours(StoreId(store), &ids)).await?;
    neighbours(State(s), Checked(Path(store))).await
}

async fn stock(State(s): State<Arc<Shared>>, Checked(Path(sku)): Checked<Path<String>>) -> Result<serde_json::Value> {
    let sku = Sku::parse(&sku)
        .ok_or_else(|| ApiError::new(StatusCode::BAD_REQUEST, "bad_sku", format!("`{sku}` is not a SKU")))?;
    let sku2 = sku.clone();
    let stores = blocking(&s.db, move |db| db.stock(&sku2)).await?;
    Ok(Json(json!({ "sku": sku, "stores": stores })))
}

async fn rules(State(s): State<Arc<Shared>>) -> Result<serde_json::Value> {
    let (version, rules) = blocking(&s.db, |db| db.rules()).await?;
    Ok(Json(json!({ "version": version, "rules": rules })))
}

/// `PUT /api/loyalty/rules` with the rules as JSON (any content type): validated (a bad
/// rule set is refused whole, and so are rules outside the sane bounds of
/// [`LoyaltyRules::publishable`]), versioned and sent to every store; every channel then
/// computes the same points.
async fn publish_rules(State(s): State<Arc<Shared>>, Checked(body): Checked<String>) -> Result<serde_json::Value> {
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
    let version = blocking(&s.db, move |db| db.publish_rules(&rules)).await?;
    tracing::info!(version, "published loyalty rules");
    // Connected stores pick the rules up with the catalog notification.
    s.catalog.send_modify(|_| {});
    Ok(Json(json!({ "version": version })))
}

/// A customer's balance, the rights each store holds, and earned/spent per store.
async fn loyalty(
    State(s): State<Arc<Shared>>,
    Checked(Path(card)): Checked<Path<String>>,
) -> Result<serde_json::Value> {
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

async fn parked(State(s): State<Arc<Shared>>) -> Result<serde_json::Value> {
    let parked = blocking(&s.db, |db| db.parked()).await?;
    Ok(Json(json!({ "parked": parked })))
}

async fn catalog(State(s): State<Arc<Shared>>) -> Result<serde_json::Value> {
    let (version, items) = blocking(&s.db, |db| Ok((db.catalog_version()?, db.catalog()?))).await?;
    Ok(Json(json!({ "version": version, "items": items.len() })))
}

/// `POST /api/catalog` with a CSV body (any content type): validated whole, published
/// only if every row is good and there is at least one.
async fn import_catalog(State(s): State<Arc<Shared>>, Checked(body): Checked<String>) -> Result<serde_json::Value> {
    match crate::import_catalog(&s, &body).await {
        Ok(version) => Ok(Json(json!({ "version": version }))),
        Err(crate::ImportCatalogError::Invalid(e)) => {
            let code = match e {
                ImportError::Header { .. } => "bad_header",
                ImportError::Rows(_) => "bad_rows",
                ImportError::TooManyItems => "too_many_items",
                ImportError::Empty => "empty_catalog",
            };
            Err(ApiError::invalid(code, format!("{e}; nothing published")))
        }
        Err(crate::ImportCatalogError::Db(e)) => Err(e.into()),
    }
}

/// The published promotions and their version.
async fn promotions(State(s): State<Arc<Shared>>) -> Result<serde_json::Value> {
    let (version, definitions) = blocking(&s.db, |db| db.promotions()).await?;
    Ok(Json(json!({ "version": version, "promotions": definitions })))
}

/// `PUT /api/promotions` with the whole set as a JSON array of definitions (see
/// [`kassa_protocol::promotions::definition`]): validated against each other and the
/// catalog, and published whole as a new version, or refused naming the promotion and
/// the field, with nothing published.
async fn publish_promotions(State(s): State<Arc<Shared>>, Checked(body): Checked<String>) -> Result<serde_json::Value> {
    let definitions: Vec<kassa_protocol::promotions::definition::Definition> =
        serde_json::from_str(&body).map_err(|e| {
            let status = if e.is_data() { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::BAD_REQUEST };
            ApiError::new(status, "bad_json", format!("promotions: {e}; nothing published"))
        })?;
    match crate::promotions::publish(&s, definitions).await {
        Ok(version) => Ok(Json(json!({ "version": version }))),
        Err(crate::promotions::PublishError::Db(e)) => Err(e.into()),
        Err(e) => Err(ApiError::invalid("bad_promotion", e.to_string())),
    }
}

/// `POST /api/price`: a basket priced for a store and channel with the published
/// promotions, by the same engine as every till.
async fn price(
    State(s): State<Arc<Shared>>,
    Checked(Json(req)): Checked<Json<crate::promotions::PriceRequest>>,
) -> Result<crate::promotions::PriceAnswer> {
    match crate::promotions::price(&s, req, crate::sync_server::now_ms()).await {
        Ok(answer) => Ok(Json(answer)),
        Err(crate::promotions::PriceError::Invalid(m)) => Err(ApiError::invalid("bad_price_request", m)),
        Err(e @ crate::promotions::PriceError::UnknownSku(_)) => {
            Err(ApiError::new(StatusCode::NOT_FOUND, "unknown_sku", e.to_string()))
        }
        Err(crate::promotions::PriceError::Db(e)) => Err(e.into()),
    }
}
