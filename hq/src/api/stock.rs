//! Stock operations at HQ: deliveries announced to stores, documents in transit, and each
//! store's movements and stock by reason over a period.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use kassa_protocol::movements::{Movement, MovementKind};
use kassa_protocol::{Sku, StoreId};
use serde::Deserialize;
use serde_json::json;

use super::{blocking, now_ms, ApiError, AppState, By, Checked, Result};
use crate::db::DeliveryError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DeliveryRequest {
    lines: Vec<DeliveryLine>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeliveryLine {
    sku: String,
    /// Pieces, or grams of a weighed item.
    quantity: i64,
}

/// `POST /api/stores/{store}/deliveries`: announces what a store is to receive. The
/// store gets it over sync (at once if connected) and receives it against it.
pub(super) async fn create_delivery(
    State(s): AppState,
    By(caller): By,
    Checked(Path(store)): Checked<Path<u32>>,
    Checked(Json(req)): Checked<Json<DeliveryRequest>>,
) -> Result<serde_json::Value> {
    if store == 0 {
        return Err(ApiError::invalid("bad_store", "store 0 is HQ itself"));
    }
    let mut lines = Vec::with_capacity(req.lines.len());
    for (i, l) in req.lines.iter().enumerate() {
        let sku = Sku::parse(&l.sku)
            .ok_or_else(|| ApiError::invalid("bad_sku", format!("line {}: `{}` is not a SKU", i + 1, l.sku)))?;
        lines.push((sku, l.quantity));
    }
    let audit = caller.as_actor().audit(now_ms(), "delivery.create", json!({}));
    let doc = blocking(&s.db, move |db| Ok(db.create_delivery(StoreId(store), &lines, &audit, now_ms())))
        .await?
        .map_err(|e| match e {
            DeliveryError::Db(e) => e.into(),
            DeliveryError::UnknownSku { .. } => ApiError::invalid("unknown_sku", format!("{e}; nothing announced")),
            DeliveryError::Invalid(_) => ApiError::invalid("bad_delivery", format!("{e}; nothing announced")),
            DeliveryError::TooManyOpen { .. } => {
                ApiError::new(StatusCode::CONFLICT, "too_many_deliveries", e.to_string())
            }
        })?;
    tracing::info!(store, delivery = %doc.source.key(), actor = %caller.actor(), "delivery announced");
    s.inbound.send_modify(|g| *g += 1);
    Ok(Json(json!({
        "delivery": doc.source.key(),
        "store": store,
        "lines": doc.lines.iter().map(|l| json!({ "sku": l.sku, "name": l.name, "quantity": l.quantity })).collect::<Vec<_>>(),
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct InboundQuery {
    /// Only what has not been received yet.
    #[serde(default)]
    open: bool,
}

/// `GET /api/stores/{store}/inbound`: the store's deliveries and transfers to receive
/// (`?open=true`) or all of them, with what differed once received.
pub(super) async fn store_inbound(
    State(s): AppState,
    Checked(Path(store)): Checked<Path<u32>>,
    Checked(Query(q)): Checked<Query<InboundQuery>>,
) -> Result<serde_json::Value> {
    let rows = blocking(&s.db, move |db| db.inbound_rows(Some(StoreId(store)), q.open)).await?;
    Ok(Json(json!({ "store": store, "documents": rows })))
}

/// `GET /api/transfers`: transfers between stores, newest first; `?open=true` lists
/// only those in transit (shipped, not yet received).
pub(super) async fn transfers(
    State(s): AppState,
    Checked(Query(q)): Checked<Query<InboundQuery>>,
) -> Result<serde_json::Value> {
    let rows = blocking(&s.db, move |db| db.inbound_rows(None, q.open)).await?;
    let transfers: Vec<_> = rows.into_iter().filter(|r| r.from_store.is_some()).collect();
    Ok(Json(json!({ "transfers": transfers })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PeriodQuery {
    from_ms: Option<i64>,
    to_ms: Option<i64>,
}

/// `GET /api/stores/{store}/movements?from_ms=&to_ms=`: the store's movements in the
/// period (by the store's time; default: everything), and its stock moved per reason and
/// SKU (sales and returns included).
pub(super) async fn movements(
    State(s): AppState,
    Checked(Path(store)): Checked<Path<u32>>,
    Checked(Query(q)): Checked<Query<PeriodQuery>>,
) -> Result<serde_json::Value> {
    let (from, to) = (q.from_ms.unwrap_or(i64::MIN), q.to_ms.unwrap_or(i64::MAX));
    if from > to {
        return Err(ApiError::invalid("bad_period", "from_ms is after to_ms"));
    }
    let (list, totals) = blocking(&s.db, move |db| {
        Ok((db.movements(StoreId(store), from, to)?, db.movement_totals(StoreId(store), from, to)?))
    })
    .await?;
    Ok(Json(json!({
        "store": store,
        "movements": list.iter().map(movement_json).collect::<Vec<_>>(),
        "totals": totals,
    })))
}

fn movement_json(m: &Movement) -> serde_json::Value {
    let refers = match &m.kind {
        MovementKind::Receipt { delivery: Some(n) } => json!({ "delivery": n }),
        MovementKind::Receipt { delivery: None } => json!({}),
        MovementKind::WriteOff { reason } => json!({ "write_off": reason }),
        MovementKind::Count { count } => json!({ "count": count }),
        MovementKind::TransferOut { to } => json!({ "to_store": to.0 }),
        MovementKind::TransferIn { transfer } => {
            json!({ "transfer": kassa_protocol::movements::InboundSource::Transfer(*transfer).key() })
        }
    };
    json!({
        "store": m.id.store.0,
        "seq": m.id.seq,
        "reason": m.kind.reason(),
        "refers": refers,
        "by": m.by,
        "approved_by": m.approved_by,
        "note": m.note,
        "created_at_ms": m.created_at_ms,
        "lines": m.lines.iter().map(|l| json!({
            "sku": l.sku, "name": l.name, "quantity": l.quantity, "expected": l.expected,
        })).collect::<Vec<_>>(),
    })
}
