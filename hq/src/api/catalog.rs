//! The catalog: whole-file imports (previewed; removals only when confirmed; an identical
//! file publishes nothing) and edits by SKU. Every publication is a new version sent to
//! every store, with its audit entry in the same transaction.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use kassa_protocol::catalog::{parse_csv, CatalogItem, ImportError, CSV_HEADER};
use kassa_protocol::price_schedule::{format_local, parse_local, PriceSchedule, ScheduleError, ScheduledPrice};
use kassa_protocol::{Kopecks, Sku};
use serde::Deserialize;
use serde_json::json;

use super::{blocking, now_ms, ApiError, AppState, By, Checked, Result};
use crate::auth::Caller;
use crate::catalog::{Edit, EditError, ItemView};
use crate::db::CatalogImport;

/// Items per page of `GET /api/catalog/items`.
const ITEMS_PAGE_MAX: usize = 500;

/// A CSV refused: its code, and for bad rows each row's line and reason.
fn csv_refused(e: ImportError) -> ApiError {
    let code = match e {
        ImportError::Header { .. } => "bad_header",
        ImportError::Rows(_) => "bad_rows",
        ImportError::TooManyItems => "too_many_items",
        ImportError::Empty => "empty_catalog",
    };
    let refusal = ApiError::invalid(code, format!("{e}; nothing published"));
    match e {
        ImportError::Rows(rows) => {
            let errors: Vec<_> = rows.iter().map(|r| json!({ "line": r.line, "reason": r.reason })).collect();
            refusal.with("errors", json!(errors))
        }
        _ => refusal,
    }
}

fn edit_refused(e: EditError) -> ApiError {
    let status = match e {
        EditError::NoSuchSku(_) => StatusCode::NOT_FOUND,
        EditError::SkuExists(_) | EditError::GtinTaken { .. } | EditError::PluTaken { .. } | EditError::LastItem(_) => {
            StatusCode::CONFLICT
        }
        EditError::Price(_) | EditError::Name | EditError::Nothing => StatusCode::UNPROCESSABLE_ENTITY,
    };
    ApiError::new(status, e.code(), format!("{e}; nothing published"))
}

fn sku(text: &str) -> std::result::Result<Sku, ApiError> {
    Sku::parse(text).ok_or_else(|| ApiError::new(StatusCode::BAD_REQUEST, "bad_sku", format!("`{text}` is not a SKU")))
}

/// `GET /api/catalog`: the version in force and how many items it holds.
pub(super) async fn summary(State(s): AppState) -> Result<serde_json::Value> {
    let (version, items) = blocking(&s.db, |db| Ok((db.catalog_version()?, db.catalog()?))).await?;
    Ok(Json(json!({ "version": version, "items": items.len() })))
}

#[derive(Deserialize)]
pub(super) struct ItemsQuery {
    /// Part of a SKU, GTIN or name (any case).
    q: Option<String>,
    offset: Option<usize>,
    limit: Option<usize>,
}

/// `GET /api/catalog/items?q=&offset=&limit=`: items in SKU order, at most
/// [`ITEMS_PAGE_MAX`] a page, with how many match.
pub(super) async fn items(
    State(s): AppState,
    Checked(Query(q)): Checked<Query<ItemsQuery>>,
) -> Result<serde_json::Value> {
    let (version, items) = blocking(&s.db, |db| Ok((db.catalog_version()?, db.catalog()?))).await?;
    let needle = q.q.unwrap_or_default().trim().to_lowercase();
    let matching: Vec<&CatalogItem> = items
        .iter()
        .filter(|i| {
            needle.is_empty()
                || i.sku.as_str().contains(&needle)
                || i.gtin.is_some_and(|g| g.short().contains(&needle))
                || i.name.to_lowercase().contains(&needle)
        })
        .collect();
    let page: Vec<ItemView> = matching
        .iter()
        .skip(q.offset.unwrap_or(0))
        .take(q.limit.unwrap_or(100).min(ITEMS_PAGE_MAX))
        .map(|i| ItemView::from(*i))
        .collect();
    Ok(Json(json!({ "version": version, "total": matching.len(), "items": page })))
}

#[derive(Deserialize)]
pub(super) struct ImportQuery {
    /// The operator saw the preview and means to remove what it lists.
    #[serde(default)]
    confirm_removals: bool,
}

/// `POST /api/catalog/preview` with a CSV body: what importing it would add, change and
/// remove; nothing is written.
pub(super) async fn preview(
    State(s): AppState,
    By(caller): By,
    Checked(body): Checked<String>,
) -> Result<serde_json::Value> {
    let items = parse_csv(&body).map_err(csv_refused)?;
    let audit = caller.as_actor().audit(now_ms(), "catalog.preview", json!({}));
    let outcome = blocking(&s.db, move |db| db.import_catalog(&items, false, true, &audit)).await?;
    let CatalogImport::Preview { version, diff } = outcome else {
        return Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "a preview published"));
    };
    Ok(Json(json!({ "version": version, "identical": diff.is_empty(), "preview": diff.preview() })))
}

/// `POST /api/catalog[?confirm_removals=true]` with a CSV body (any content type): the
/// whole catalog. Validated whole (a bad row is refused with its line); identical to
/// the catalog in force → nothing published; removing items without
/// `confirm_removals=true` → refused (409) with a preview; otherwise published.
pub(super) async fn import(
    State(s): AppState,
    By(caller): By,
    Checked(Query(q)): Checked<Query<ImportQuery>>,
    Checked(body): Checked<String>,
) -> Result<serde_json::Value> {
    let items = parse_csv(&body).map_err(csv_refused)?;
    let audit = caller.as_actor().audit(now_ms(), "catalog.import", json!({}));
    let confirm = q.confirm_removals;
    let outcome = blocking(&s.db, move |db| db.import_catalog(&items, confirm, false, &audit)).await?;
    match outcome {
        CatalogImport::Published { version, diff } => {
            tracing::info!(version, actor = %caller.actor(), "published catalog");
            s.catalog.send_replace(version);
            Ok(Json(json!({ "published": true, "version": version, "preview": diff.preview() })))
        }
        CatalogImport::Unchanged { version } => Ok(Json(json!({
            "published": false,
            "version": version,
            "message": "identical to the catalog in force; nothing published",
        }))),
        CatalogImport::RemovalsUnconfirmed { diff, .. } => {
            let n = diff.removed.len();
            let message = format!(
                "this file would remove {n} item(s) from every store; nothing published. \
                 Check the preview and send it again with ?confirm_removals=true to remove them"
            );
            Err(ApiError::new(StatusCode::CONFLICT, "removals_unconfirmed", message).with("preview", diff.preview()))
        }
        CatalogImport::Preview { .. } => {
            Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "an import only previewed"))
        }
    }
}

async fn publish_edit(s: &super::ApiState, caller: &Caller, edit: Edit) -> Result<serde_json::Value> {
    let action = match edit {
        Edit::Add(_) => "catalog.add_item",
        Edit::Change { .. } => "catalog.change_item",
        Edit::Discontinue(_) => "catalog.discontinue_item",
    };
    let audit = caller.as_actor().audit(now_ms(), action, json!({}));
    let (version, diff) = blocking(&s.db, move |db| db.edit_catalog(&edit, &audit)).await?.map_err(edit_refused)?;
    tracing::info!(version, actor = %caller.actor(), action, "published catalog");
    s.catalog.send_replace(version);
    Ok(Json(json!({ "published": true, "version": version, "preview": diff.preview() })))
}

/// A new item, with the CSV's fields.
#[derive(Deserialize)]
pub(super) struct NewItem {
    sku: String,
    gtin: Option<String>,
    name: String,
    #[serde(default)]
    category: String,
    price_kopecks: i64,
    /// `20`, `10`, `0` or `none`.
    vat_percent: String,
    /// `pcs` or `kg`.
    unit: String,
    plu: Option<String>,
}

/// The item as a one-row CSV, checked by the same rules as an import.
fn item_from(req: &NewItem) -> std::result::Result<CatalogItem, ApiError> {
    let mut w = csv::WriterBuilder::new().has_headers(false).from_writer(Vec::new());
    let price = req.price_kopecks.to_string();
    let row = [
        req.sku.as_str(),
        req.gtin.as_deref().unwrap_or(""),
        req.name.as_str(),
        req.category.as_str(),
        price.as_str(),
        req.vat_percent.as_str(),
        req.unit.as_str(),
        req.plu.as_deref().unwrap_or(""),
    ];
    let bad = |m: String| ApiError::invalid("bad_item", format!("{m}; nothing published"));
    w.write_record(row).map_err(|e| bad(e.to_string()))?;
    let line = w.into_inner().map_err(|e| bad(e.to_string()))?;
    let text = format!("{CSV_HEADER}\n{}", String::from_utf8_lossy(&line));
    match parse_csv(&text) {
        Ok(mut items) if items.len() == 1 => Ok(items.remove(0)),
        Ok(_) => Err(bad("one item, please".into())),
        Err(ImportError::Rows(rows)) => Err(bad(rows[0].reason.clone())),
        Err(e) => Err(bad(e.to_string())),
    }
}

/// `POST /api/catalog/items`: adds one item; its SKU, GTIN and PLU must be new.
pub(super) async fn add_item(
    State(s): AppState,
    By(caller): By,
    Checked(Json(req)): Checked<Json<NewItem>>,
) -> Result<serde_json::Value> {
    let item = item_from(&req)?;
    publish_edit(&s, &caller, Edit::Add(item)).await
}

#[derive(Deserialize)]
pub(super) struct ItemPatch {
    price_kopecks: Option<i64>,
    name: Option<String>,
}

/// `PATCH /api/catalog/items/{sku}` with `{"price_kopecks"}` and/or `{"name"}`.
pub(super) async fn change_item(
    State(s): AppState,
    By(caller): By,
    Checked(Path(text)): Checked<Path<String>>,
    Checked(Json(req)): Checked<Json<ItemPatch>>,
) -> Result<serde_json::Value> {
    let edit = Edit::Change { sku: sku(&text)?, price: req.price_kopecks.map(Kopecks), name: req.name };
    publish_edit(&s, &caller, edit).await
}

/// `DELETE /api/catalog/items/{sku}`: discontinues the item (stores stop selling it).
pub(super) async fn discontinue_item(
    State(s): AppState,
    By(caller): By,
    Checked(Path(text)): Checked<Path<String>>,
) -> Result<serde_json::Value> {
    publish_edit(&s, &caller, Edit::Discontinue(sku(&text)?)).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ScheduleRequest {
    changes: Vec<ScheduleLine>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScheduleLine {
    sku: String,
    /// A local date and time, `YYYY-MM-DDTHH:MM`: each store applies it at its own clock.
    at: String,
    price_kopecks: i64,
}

fn schedule_json(version: u64, changes: &[ScheduledPrice]) -> serde_json::Value {
    let list: Vec<_> =
        changes.iter().map(|c| json!({ "sku": c.sku, "at": format_local(c.at), "price_kopecks": c.price.0 })).collect();
    json!({ "version": version, "changes": list })
}

/// `GET /api/catalog/schedule`: the price changes scheduled ahead, and their version.
pub(super) async fn schedule(State(s): AppState) -> Result<serde_json::Value> {
    let (version, changes) = blocking(&s.db, |db| db.price_schedule()).await?;
    Ok(Json(schedule_json(version, &changes)))
}

/// `PUT /api/catalog/schedule` with `{"changes": [{"sku", "at": "YYYY-MM-DDTHH:MM",
/// "price_kopecks"}]}`: replaces the whole schedule as a new version (an empty list
/// cancels every change not yet in force). Each store applies a change at its own local
/// time, offline too; a line already in a basket keeps its price. A bad change is
/// refused with its number, and nothing is published.
pub(super) async fn publish_schedule(
    State(s): AppState,
    By(caller): By,
    Checked(Json(req)): Checked<Json<ScheduleRequest>>,
) -> Result<serde_json::Value> {
    let mut changes = Vec::with_capacity(req.changes.len());
    for (i, c) in req.changes.iter().enumerate() {
        let at = parse_local(&c.at).ok_or_else(|| {
            ApiError::invalid("bad_schedule", ScheduleError::Time { index: i + 1, at: c.at.clone() }.to_string())
        })?;
        let sku = Sku::parse(&c.sku)
            .ok_or_else(|| ApiError::invalid("bad_schedule", format!("change {}: `{}` is not a SKU", i + 1, c.sku)))?;
        changes.push(ScheduledPrice { sku, at, price: Kopecks(c.price_kopecks) });
    }
    PriceSchedule::new(&changes).map_err(|e| ApiError::invalid("bad_schedule", format!("{e}; nothing published")))?;
    let skus: Vec<Sku> = changes.iter().map(|c| c.sku.clone()).collect();
    let known = blocking(&s.db, move |db| db.items(&skus)).await?;
    if let Some((i, c)) = changes.iter().enumerate().find(|(_, c)| !known.contains_key(&c.sku)) {
        let message = format!("change {}: the catalog has no SKU {}; nothing published", i + 1, c.sku);
        return Err(ApiError::invalid("unknown_sku", message));
    }
    let audit = caller.as_actor().audit(now_ms(), "catalog.schedule", json!({ "changes": changes.len() }));
    let stored = changes.clone();
    let version = blocking(&s.db, move |db| db.publish_price_schedule(&stored, &audit)).await?;
    tracing::info!(version, changes = changes.len(), actor = %caller.actor(), "published price schedule");
    s.price_schedule.send_replace(version);
    Ok(Json(schedule_json(version, &changes)))
}
