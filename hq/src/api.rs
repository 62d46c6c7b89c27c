//! HQ's HTTP API (JSON): stores and their sync state, stock across stores, sales,
//! parked records, catalog publishing.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use kassa_protocol::{Sku, StoreId};
use serde::Deserialize;
use serde_json::json;

use crate::sync_server::{blocking, Shared};

/// Sales per page of `GET /api/stores/{id}/sales`.
const SALES_PAGE_MAX: usize = 500;
/// Largest catalog upload accepted.
const CATALOG_UPLOAD_BYTES_MAX: usize = 64 * 1024 * 1024;

pub fn router(shared: Shared) -> Router {
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
        .route("/api/catalog", get(catalog).post(import_catalog))
        .layer(axum::extract::DefaultBodyLimit::max(CATALOG_UPLOAD_BYTES_MAX))
        .with_state(Arc::new(shared))
}

/// An API refusal: a status and a message for a person.
#[derive(Debug)]
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<crate::db::DbError> for ApiError {
    fn from(e: crate::db::DbError) -> Self {
        tracing::error!(error = %e, "API database error");
        ApiError(StatusCode::INTERNAL_SERVER_ERROR, "database error".into())
    }
}

type Result<T> = std::result::Result<Json<T>, ApiError>;

/// Prometheus text format: per store, its backlog and the age of its last contact.
async fn metrics(State(s): State<Arc<Shared>>) -> std::result::Result<Response, ApiError> {
    let (stores, parked, version) =
        blocking(&s.db, |db| Ok((db.stores()?, db.parked()?.len(), db.catalog_version()?))).await?;
    let now = crate::sync_server::now_ms();
    let mut out = String::from("# TYPE kassa_hq_store_backlog_entries gauge\n");
    for st in &stores {
        out.push_str(&format!("kassa_hq_store_backlog_entries{{store=\"{}\"}} {}\n", st.store, st.backlog));
    }
    out.push_str("# TYPE kassa_hq_store_last_contact_age_seconds gauge\n");
    for st in &stores {
        out.push_str(&format!(
            "kassa_hq_store_last_contact_age_seconds{{store=\"{}\"}} {}\n",
            st.store,
            (now - st.last_contact_ms).max(0) / 1000
        ));
    }
    out.push_str(&format!("# TYPE kassa_hq_parked_records gauge\nkassa_hq_parked_records {parked}\n"));
    out.push_str(&format!("# TYPE kassa_hq_catalog_version gauge\nkassa_hq_catalog_version {version}\n"));
    let m = &s.metrics;
    let load = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    for (name, value) in [
        ("kassa_hq_applied_entries_total", load(&m.applied_entries)),
        ("kassa_hq_applied_deltas_total", load(&m.applied_deltas)),
        ("kassa_hq_applied_batches_total", load(&m.applied_batches)),
    ] {
        out.push_str(&format!("# TYPE {name} counter\n{name} {value}\n"));
    }
    let micros = load(&m.apply_micros);
    out.push_str(&format!(
        "# TYPE kassa_hq_apply_seconds_total counter\nkassa_hq_apply_seconds_total {}.{:06}\n",
        micros / 1_000_000,
        micros % 1_000_000
    ));
    Ok(([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response())
}

async fn stores(State(s): State<Arc<Shared>>) -> Result<serde_json::Value> {
    let stores = blocking(&s.db, |db| db.stores()).await?;
    Ok(Json(json!({ "stores": stores })))
}

#[derive(Deserialize)]
struct SalesQuery {
    after: Option<u64>,
    limit: Option<usize>,
}

async fn sales(
    State(s): State<Arc<Shared>>,
    Path(store): Path<u32>,
    Query(q): Query<SalesQuery>,
) -> Result<serde_json::Value> {
    let limit = q.limit.unwrap_or(100).min(SALES_PAGE_MAX);
    let after = q.after.unwrap_or(0);
    let sales = blocking(&s.db, move |db| db.sales(StoreId(store), after, limit)).await?;
    Ok(Json(json!({ "store": store, "sales": sales })))
}

async fn neighbours(State(s): State<Arc<Shared>>, Path(store): Path<u32>) -> Result<serde_json::Value> {
    let list = blocking(&s.db, move |db| db.neighbours(StoreId(store))).await?;
    Ok(Json(json!({ "store": store, "neighbours": list })))
}

/// `PUT /api/stores/{id}/neighbours` with a JSON array of store numbers: whose stock the
/// store's tills show as "nearby".
async fn set_neighbours(
    State(s): State<Arc<Shared>>,
    Path(store): Path<u32>,
    Json(list): Json<Vec<u32>>,
) -> Result<serde_json::Value> {
    if list.len() > crate::db::NEARBY_STORES_MAX {
        return Err(ApiError(StatusCode::BAD_REQUEST, format!("at most {} neighbours", crate::db::NEARBY_STORES_MAX)));
    }
    let ids: Vec<StoreId> = list.into_iter().map(StoreId).collect();
    blocking(&s.db, move |db| db.set_neighbours(StoreId(store), &ids)).await?;
    neighbours(State(s), Path(store)).await
}

async fn stock(State(s): State<Arc<Shared>>, Path(sku): Path<String>) -> Result<serde_json::Value> {
    let sku = Sku::parse(&sku).ok_or_else(|| ApiError(StatusCode::BAD_REQUEST, format!("`{sku}` is not a SKU")))?;
    let sku2 = sku.clone();
    let stores = blocking(&s.db, move |db| db.stock(&sku2)).await?;
    Ok(Json(json!({ "sku": sku, "stores": stores })))
}

async fn rules(State(s): State<Arc<Shared>>) -> Result<serde_json::Value> {
    let (version, rules) = blocking(&s.db, |db| db.rules()).await?;
    Ok(Json(json!({ "version": version, "rules": rules })))
}

/// `PUT /api/loyalty/rules`: validated (a bad rule set is refused whole), versioned and
/// sent to every store; every channel then computes the same points.
async fn publish_rules(State(s): State<Arc<Shared>>, body: String) -> Result<serde_json::Value> {
    let rules: kassa_protocol::loyalty::LoyaltyRules =
        serde_json::from_str(&body).map_err(|e| ApiError(StatusCode::UNPROCESSABLE_ENTITY, format!("rules: {e}")))?;
    let version = blocking(&s.db, move |db| db.publish_rules(&rules)).await?;
    tracing::info!(version, "published loyalty rules");
    // Connected stores pick the rules up with the catalog notification.
    s.catalog.send_modify(|_| {});
    Ok(Json(json!({ "version": version })))
}

/// A customer's balance, the rights each store holds, and earned/spent per store.
async fn loyalty(State(s): State<Arc<Shared>>, Path(card): Path<String>) -> Result<serde_json::Value> {
    let card = kassa_protocol::loyalty::CustomerId::parse(&card)
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("`{card}`: {e}")))?;
    let c2 = card.clone();
    let Some((customer, account)) = blocking(&s.db, move |db| db.loyalty(&c2)).await? else {
        return Err(ApiError(StatusCode::NOT_FOUND, format!("no customer {card}")));
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

/// `POST /api/catalog` with a CSV body: validated whole, published only if every row is good.
async fn import_catalog(State(s): State<Arc<Shared>>, body: String) -> Result<serde_json::Value> {
    match crate::import_catalog(&s, &body).await {
        Ok(version) => Ok(Json(json!({ "version": version }))),
        Err(crate::ImportCatalogError::Invalid(e)) => Err(ApiError(StatusCode::UNPROCESSABLE_ENTITY, e.to_string())),
        Err(crate::ImportCatalogError::Db(e)) => Err(e.into()),
    }
}
