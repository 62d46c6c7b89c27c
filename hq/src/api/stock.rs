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
    let mut lines = Vec::with_capacity(req.lines.len());
    for (i, l) in req.lines.iter().enumerate() {
        let sku = Sku::parse(&l.sku)
            .ok_or_else(|| ApiError::invalid("bad_sku", format!("line {}: `{}` is not a SKU", i + 1, l.sku)))?;
        lines.push((sku, l.quantity));
    }
    announce(s, caller, store, lines).await
}

/// Lines of a supplier's delivery file, in bytes.
pub(super) const DELIVERY_CSV_BYTES_MAX: usize = 1024 * 1024;

/// `POST /api/stores/{store}/deliveries/csv`: a supplier's delivery note as CSV, a header
/// `sku,quantity` and one line per item; a bad line is refused with its line number and
/// nothing is announced.
pub(super) async fn create_delivery_csv(
    State(s): AppState,
    By(caller): By,
    Checked(Path(store)): Checked<Path<u32>>,
    Checked(body): Checked<String>,
) -> Result<serde_json::Value> {
    let lines = parse_delivery_csv(&body)
        .map_err(|m| ApiError::invalid("bad_delivery_file", format!("{m}; nothing announced")))?;
    announce(s, caller, store, lines).await
}

/// `sku,quantity` rows after that header; the line numbers in errors are the file's.
fn parse_delivery_csv(text: &str) -> std::result::Result<Vec<(Sku, i64)>, String> {
    let mut rows = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
    match rows.next() {
        Some((_, header)) if header.trim().trim_start_matches('\u{feff}').replace(' ', "") == "sku,quantity" => {}
        _ => return Err("line 1: the header is `sku,quantity`".into()),
    }
    let mut out = Vec::new();
    for (i, row) in rows {
        let line = i + 1;
        let (sku, quantity) = row.split_once(',').ok_or_else(|| format!("line {line}: `sku,quantity`"))?;
        let sku = Sku::parse(sku.trim()).ok_or_else(|| format!("line {line}: `{}` is not a SKU", sku.trim()))?;
        let quantity: i64 = quantity
            .trim()
            .parse()
            .map_err(|_| format!("line {line}: `{}` is not a whole quantity", quantity.trim()))?;
        out.push((sku, quantity));
    }
    Ok(out)
}

async fn announce(
    s: std::sync::Arc<super::ApiState>,
    caller: crate::auth::Caller,
    store: u32,
    lines: Vec<(Sku, i64)>,
) -> Result<serde_json::Value> {
    if store == 0 {
        return Err(ApiError::invalid("bad_store", "store 0 is HQ itself"));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_suppliers_delivery_file_is_read_or_refused_by_line() {
        let ok = parse_delivery_csv("\u{feff}sku, quantity\n100001,24\n\n100002, 6\n").unwrap();
        assert_eq!(ok, vec![(Sku("100001".into()), 24), (Sku("100002".into()), 6)]);
        assert_eq!(parse_delivery_csv("sku;quantity\n").unwrap_err(), "line 1: the header is `sku,quantity`");
        assert_eq!(
            parse_delivery_csv("sku,quantity\n100001,2\n100002,two\n").unwrap_err(),
            "line 3: `two` is not a whole quantity"
        );
        assert_eq!(parse_delivery_csv("sku,quantity\nмолоко,2\n").unwrap_err(), "line 2: `молоко` is not a SKU");
    }
}
