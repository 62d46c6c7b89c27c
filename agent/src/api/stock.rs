//! The back room's API: stock on hand, deliveries and transfers to receive, receipts,
//! write-offs, transfers out, stock counts and the movements of a period. Every write
//! needs a session and an idempotency key, like the till's.

use axum::extract::{Path, Query, State};
use axum::Json;
use kassa_protocol::gtin::Gtin;
use kassa_protocol::movements::{Inbound, Movement, MovementKind, WriteOffReason};
use kassa_protocol::{Sku, StoreId};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{ApiJson, ApiResult, AppState, Approval, Cashier, Source};
use crate::journal::{CountScope, JournalError, MovementRequest};
use crate::till::TillError;

/// One line as the page sends it: a SKU or a product's barcode, and a quantity in pieces
/// or grams.
#[derive(Deserialize)]
pub(super) struct LineRequest {
    pub(super) code: String,
    pub(super) quantity: i64,
}

/// The SKU a typed or scanned code names: a SKU of the catalog, else a GTIN barcode.
async fn resolve(s: &AppState, code: &str) -> Result<Sku, TillError> {
    let typed = code.trim().to_owned();
    let found = s
        .journal
        .run(move |j| {
            let code = typed;
            if let Some(sku) = Sku::parse(&code) {
                if let Some(item) = j.item_by_sku(&sku)? {
                    return Ok::<_, JournalError>(Some(item.sku));
                }
            }
            match Gtin::parse(&code) {
                Ok(gtin) => Ok(j.item_by_gtin(&gtin)?.map(|i| i.sku)),
                Err(_) => Ok(None),
            }
        })
        .await?;
    found.ok_or_else(|| TillError::UnknownSku(code.trim().to_owned()))
}

pub(super) async fn resolve_lines(s: &AppState, lines: &[LineRequest]) -> Result<Vec<(Sku, i64)>, TillError> {
    let mut out = Vec::with_capacity(lines.len());
    for l in lines.iter().take(kassa_protocol::movements::MOVEMENT_LINES_MAX + 1) {
        out.push((resolve(s, &l.code).await?, l.quantity));
    }
    Ok(out)
}

/// `GET /api/stock`: every SKU's stock on hand here.
pub(super) async fn levels(State(s): State<AppState>, _c: Cashier) -> ApiResult {
    let levels = s.journal.run(|j| j.stock_levels()).await?;
    Ok(Json(json!({ "store": s.journal.store().0, "stock": levels })))
}

/// `GET /api/stock/inbound`: deliveries and transfers announced and not yet received.
pub(super) async fn inbound(State(s): State<AppState>, _c: Cashier) -> ApiResult {
    let docs = s.journal.run(|j| j.open_inbound()).await?;
    Ok(Json(json!({ "documents": docs.iter().map(inbound_json).collect::<Vec<_>>() })))
}

fn inbound_json(d: &Inbound) -> Value {
    let from_store = match d.source {
        kassa_protocol::movements::InboundSource::Transfer(id) => Some(id.store.0),
        kassa_protocol::movements::InboundSource::Delivery(_) => None,
    };
    json!({
        "source": d.source.key(),
        "from_store": from_store,
        "created_at_ms": d.created_at_ms,
        "lines": d.lines.iter().map(|l| json!({ "sku": l.sku, "name": l.name, "quantity": l.quantity })).collect::<Vec<_>>(),
    })
}

fn movement_json(m: &Movement, replayed: bool) -> Value {
    let to_store = match m.kind {
        MovementKind::TransferOut { to } => Some(to.0),
        _ => None,
    };
    let source = m.kind.source_key();
    json!({
        "id": m.id.to_string(),
        "seq": m.id.seq,
        "reason": m.kind.reason(),
        "source": source,
        "to_store": to_store,
        "by": m.by,
        "approved_by": m.approved_by,
        "note": m.note,
        "created_at_ms": m.created_at_ms,
        "lines": m.lines.iter().map(|l| json!({
            "sku": l.sku, "name": l.name, "quantity": l.quantity, "expected": l.expected,
            "difference": l.difference(),
        })).collect::<Vec<_>>(),
        "replayed": replayed,
    })
}

#[derive(Deserialize)]
pub(super) struct ReceiveRequest {
    /// The delivery or transfer received (`delivery:31`, `transfer:8-17`); none for
    /// goods nobody announced (a manager approves).
    source: Option<String>,
    lines: Vec<LineRequest>,
    manager: Option<Approval>,
    #[serde(default)]
    note: String,
    idempotency_key: String,
}

/// `POST /api/stock/receive`: what arrived. Against a document, every expected line is
/// recorded with what came (0 if nothing), and anything else that came beside it.
pub(super) async fn receive(
    State(s): State<AppState>,
    Cashier(user): Cashier,
    Source(src): Source,
    ApiJson(req): ApiJson<ReceiveRequest>,
) -> ApiResult {
    let lines = resolve_lines(&s, &req.lines).await?;
    let manager = match (&req.source, req.manager) {
        (Some(_), _) => None,
        (None, approval) => Some(s.till.manager(&user, Approval::pair(approval), src).await?),
    };
    let request = MovementRequest::Receive { source: req.source, lines };
    let (m, replayed) = s.till.record_movement(&user, request, manager, req.note, req.idempotency_key).await?;
    Ok(Json(movement_json(&m, replayed)))
}

#[derive(Deserialize)]
pub(super) struct WriteOffRequest {
    reason: WriteOffReason,
    lines: Vec<LineRequest>,
    manager: Option<Approval>,
    #[serde(default)]
    note: String,
    idempotency_key: String,
}

/// `POST /api/stock/write-off`: goods out of stock with a reason; above
/// `WRITE_OFF_UNAPPROVED_MAX` at list price a manager approves.
pub(super) async fn write_off(
    State(s): State<AppState>,
    Cashier(user): Cashier,
    Source(src): Source,
    ApiJson(req): ApiJson<WriteOffRequest>,
) -> ApiResult {
    let lines = resolve_lines(&s, &req.lines).await?;
    let manager = match req.manager {
        Some(a) => Some(s.till.manager(&user, Approval::pair(Some(a)), src).await?),
        None if user.role == crate::journal::Role::Manager => Some(user.clone()),
        None => None,
    };
    let request = MovementRequest::WriteOff { reason: req.reason, lines };
    let (m, replayed) = s.till.record_movement(&user, request, manager, req.note, req.idempotency_key).await?;
    Ok(Json(movement_json(&m, replayed)))
}

#[derive(Deserialize)]
pub(super) struct TransferRequest {
    to_store: u32,
    lines: Vec<LineRequest>,
    #[serde(default)]
    note: String,
    idempotency_key: String,
}

/// `POST /api/stock/transfer`: goods shipped to another store; they leave this store's
/// stock now and reach the other's when it receives them.
pub(super) async fn transfer(
    State(s): State<AppState>,
    Cashier(user): Cashier,
    ApiJson(req): ApiJson<TransferRequest>,
) -> ApiResult {
    let lines = resolve_lines(&s, &req.lines).await?;
    let request = MovementRequest::TransferOut { to: StoreId(req.to_store), lines };
    let (m, replayed) = s.till.record_movement(&user, request, None, req.note, req.idempotency_key).await?;
    Ok(Json(movement_json(&m, replayed)))
}

#[derive(Deserialize)]
pub(super) struct PeriodQuery {
    from_ms: Option<i64>,
    to_ms: Option<i64>,
}

/// `GET /api/stock/movements?from_ms=&to_ms=`: movements of the period, newest first.
pub(super) async fn movements(State(s): State<AppState>, _c: Cashier, Query(q): Query<PeriodQuery>) -> ApiResult {
    let (from, to) = (q.from_ms.unwrap_or(0), q.to_ms.unwrap_or(i64::MAX));
    let list = s.journal.run(move |j| j.movements(from, to)).await?;
    Ok(Json(json!({ "movements": list.iter().map(|m| movement_json(m, false)).collect::<Vec<_>>() })))
}

#[derive(Deserialize)]
pub(super) struct StartCountRequest {
    /// The categories to count; or `skus`, a shelf list (SKUs or barcodes); neither:
    /// everything.
    categories: Option<Vec<String>>,
    skus: Option<Vec<String>>,
    idempotency_key: String,
}

/// `POST /api/stock/counts`: starts a count; several people may then count into it.
pub(super) async fn start_count(
    State(s): State<AppState>,
    Cashier(user): Cashier,
    ApiJson(req): ApiJson<StartCountRequest>,
) -> ApiResult {
    let scope = match (req.categories, req.skus) {
        (Some(_), Some(_)) => {
            return Err(super::ApiError::refuse(
                super::ApiRefusal::BadCountScope,
                "count some categories or a shelf list, not both",
            ))
        }
        (Some(c), None) => CountScope::Categories(c),
        (None, Some(codes)) => {
            let mut skus = Vec::with_capacity(codes.len());
            for code in codes.iter().take(kassa_protocol::movements::MOVEMENT_LINES_MAX + 1) {
                skus.push(resolve(&s, code).await?);
            }
            CountScope::Shelf(skus)
        }
        (None, None) => CountScope::Everything,
    };
    let (report, _) = s.till.start_count(&user, scope, req.idempotency_key).await?;
    Ok(Json(json!(report)))
}

/// `GET /api/stock/counts`: counts not yet posted.
pub(super) async fn open_counts(State(s): State<AppState>, _c: Cashier) -> ApiResult {
    let counts = s.journal.run(|j| j.open_counts()).await?;
    Ok(Json(json!({ "counts": counts })))
}

/// `GET /api/stock/counts/{id}`: a count's report.
pub(super) async fn count(State(s): State<AppState>, _c: Cashier, Path(id): Path<u64>) -> ApiResult {
    let report = s.journal.run(move |j| j.count_report(id)).await?;
    let report = report.ok_or(TillError::Write(crate::journal::WriteError::NoSuchCount(id)))?;
    Ok(Json(json!(report)))
}

#[derive(Deserialize)]
pub(super) struct CountScanRequest {
    code: String,
    /// Pieces or grams found; negative takes back a mistaken scan.
    #[serde(default = "one")]
    quantity: i64,
    idempotency_key: String,
}

fn one() -> i64 {
    1
}

/// `POST /api/stock/counts/{id}/scan`: what one person found of one item.
pub(super) async fn count_scan(
    State(s): State<AppState>,
    Cashier(user): Cashier,
    Path(id): Path<u64>,
    ApiJson(req): ApiJson<CountScanRequest>,
) -> ApiResult {
    let sku = resolve(&s, &req.code).await?;
    let (report, _) = s.till.count_scan(&user, id, sku, req.quantity, req.idempotency_key).await?;
    Ok(Json(json!(report)))
}

#[derive(Deserialize)]
pub(super) struct PostCountRequest {
    manager: Option<Approval>,
    idempotency_key: String,
}

/// `POST /api/stock/counts/{id}/post`: posts the adjustments; a manager approves.
pub(super) async fn post_count(
    State(s): State<AppState>,
    Cashier(user): Cashier,
    Source(src): Source,
    Path(id): Path<u64>,
    ApiJson(req): ApiJson<PostCountRequest>,
) -> ApiResult {
    let manager = s.till.manager(&user, Approval::pair(req.manager), src).await?;
    let (report, _) = s.till.post_count(&manager, id, req.idempotency_key).await?;
    Ok(Json(json!(report)))
}
