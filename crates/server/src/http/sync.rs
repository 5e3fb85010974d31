//! The sync protocol: push, pull, export, import, stats.
//!
//! Values go out (pull, export) and come in (import) as JSON text, never parsed into a
//! `serde_json::Value` tree (about 17 times their size in memory); only a push, bounded by
//! `--max-body-bytes`, parses its values, as the push rule compares them.

use std::collections::HashMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequest, Query, Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use persist_protocol::{
    validate_item_key, ErrorCode, ImportResponse, PullQuery, PushOutcome, PushRequest,
    PushResponse, PushResult, StatsResponse, DEFAULT_PULL_LIMIT, MAX_PULL_LIMIT, MAX_PUSH_OPS,
};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::export::ExportFormat;
use super::extract::AuthUser;
use super::json::{parse, BodyBytes, JsonBody};
use super::AppState;
use crate::error::ApiError;
use crate::storage::{Applied, Mutation, UpsertRow, WriteOp};

/// `POST /v1/push`: invalid ops are rejected one by one; the valid ones are applied in one
/// transaction.
pub(super) async fn push(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    JsonBody(request): JsonBody<PushRequest>,
) -> Result<Json<PushResponse>, ApiError> {
    if request.ops.len() > MAX_PUSH_OPS {
        return Err(ApiError::invalid(format!(
            "a push carries at most {MAX_PUSH_OPS} ops, this one has {}",
            request.ops.len()
        )));
    }
    let max_value = state.config.limits.max_value_bytes;
    let mut results: Vec<(persist_protocol::OpId, Option<PushOutcome>)> =
        Vec::with_capacity(request.ops.len());
    let mut valid = Vec::with_capacity(request.ops.len());
    // The op id each item was first pushed with in this push: a later op of the same item with
    // another op id is rejected here, before storage reads anything. A client sends one op per
    // item per push; without this, 1,000 ops on one large item made the writer read (and
    // compare) the item 1,000 times. The same op sent twice still gets its one answer twice.
    let mut items: HashMap<(String, String), String> = HashMap::new();
    for op in request.ops {
        let first = items
            .entry((op.collection.clone(), op.id.clone()))
            .or_insert_with(|| op.op_id.0.clone());
        let checked = if *first == op.op_id.0 {
            check_op(&op, max_value)
        } else {
            Err((
                ErrorCode::InvalidInput,
                format!(
                    "this push already carries op {first:?} for {:?}/{:?}; send one op per item \
                     per push",
                    op.collection, op.id
                ),
            ))
        };
        match checked {
            Err((code, message)) => {
                results.push((op.op_id, Some(PushOutcome::Rejected { code, message })));
            }
            Ok(value_json) => {
                results.push((op.op_id.clone(), None));
                valid.push(WriteOp {
                    op_id: op.op_id.0,
                    collection: op.collection,
                    id: op.id,
                    base: op.base_revision.unwrap_or(0),
                    delete: op.delete,
                    value: op.value,
                    value_json,
                    hlc: op.hlc,
                });
            }
        }
    }
    let (mut outcomes, head) = if valid.is_empty() {
        (Vec::new(), state.storage.head(&user).await?)
    } else {
        let written = state.storage.write(&user, Mutation::Push(valid)).await?;
        match written.applied {
            Applied::Push(outcomes) => (outcomes, written.head),
            other => return Err(unexpected(other)),
        }
    };
    outcomes.reverse();
    let (mut applied, mut conflicts, mut rejected) = (0, 0, 0);
    let results = results
        .into_iter()
        .map(|(op_id, outcome)| {
            let outcome = outcome.or_else(|| outcomes.pop()).unwrap_or(PushOutcome::Rejected {
                code: ErrorCode::Internal,
                message: "no outcome".into(),
            });
            match outcome {
                PushOutcome::Applied { .. } => applied += 1,
                PushOutcome::Conflict { .. } => conflicts += 1,
                PushOutcome::Rejected { .. } => rejected += 1,
            }
            PushResult { op_id, outcome }
        })
        .collect();
    state.metrics.observe_push(applied, conflicts, rejected);
    Ok(Json(PushResponse { results, revision: head }))
}

/// Longest op id a push op may carry.
const MAX_OP_ID_BYTES: usize = 256;
/// Longest `hlc.node` a push op may carry (it is stored with the record and answered in pulls).
const MAX_HLC_NODE_BYTES: usize = 128;

/// Checks one op; returns its value's compact JSON (empty for a delete) or why it is rejected.
fn check_op(
    op: &persist_protocol::PushOp,
    max_value: usize,
) -> Result<String, (ErrorCode, String)> {
    let reject = |code, message: String| (code, message);
    if op.op_id.as_str().is_empty() || op.op_id.as_str().len() > MAX_OP_ID_BYTES {
        return Err(reject(
            ErrorCode::InvalidInput,
            format!("op_id must have 1 to {MAX_OP_ID_BYTES} bytes"),
        ));
    }
    if op.op_id.as_str().chars().any(char::is_control) {
        return Err(reject(
            ErrorCode::InvalidInput,
            "op_id must not contain control characters".into(),
        ));
    }
    if let Some(hlc) = &op.hlc {
        if hlc.node.len() > MAX_HLC_NODE_BYTES {
            return Err(reject(
                ErrorCode::InvalidInput,
                format!("hlc.node must have at most {MAX_HLC_NODE_BYTES} bytes"),
            ));
        }
        if hlc.node.chars().any(char::is_control) {
            return Err(reject(
                ErrorCode::InvalidInput,
                "hlc.node must not contain control characters".into(),
            ));
        }
    }
    validate_item_key(&op.collection, &op.id)
        .map_err(|e| reject(ErrorCode::InvalidInput, e.to_string()))?;
    if op.delete {
        return Ok(String::new());
    }
    let value_json = serde_json::to_string(&op.value)
        .map_err(|e| reject(ErrorCode::InvalidInput, format!("value: {e}")))?;
    if value_json.len() > max_value {
        return Err(reject(
            ErrorCode::PayloadTooLarge,
            format!("value is {} bytes, more than the {max_value} allowed", value_json.len()),
        ));
    }
    Ok(value_json)
}

pub(super) fn unexpected(applied: Applied) -> ApiError {
    tracing::error!(?applied, "storage answered a different mutation");
    ApiError::new(ErrorCode::Internal, "internal error")
}

/// `GET /v1/pull?since=&limit=`: a page of at most `limit` records and `--max-page-bytes` of
/// values (less while many pages are in flight, see [`ReadMemory`](super::ReadMemory)), its
/// values written as stored.
pub(super) async fn pull(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    query: Result<Query<PullQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::invalid(format!("bad query: {e}")))?;
    let limit = query.limit.unwrap_or(DEFAULT_PULL_LIMIT).clamp(1, MAX_PULL_LIMIT);
    let share = state.read_memory.page().await?;
    let page = state.storage.pull(&user, query.since, limit, share.bytes()).await?;
    // Megabytes of copying: off the async workers, which must stay free for every other request
    // (`/health` included).
    let answer = tokio::task::spawn_blocking(move || serde_json::to_vec(&page))
        .await
        .map_err(|e| ApiError::new(ErrorCode::Internal, format!("page task failed: {e}")))?
        .map_err(|e| ApiError::new(ErrorCode::Internal, format!("cannot write the page: {e}")))?;
    Ok(([(header::CONTENT_TYPE, "application/json")], share.body(answer)).into_response())
}

/// `GET /v1/export`: every live record, streamed as it is read (see [`export`](super::export)).
pub(super) async fn export(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
) -> Result<Response, ApiError> {
    let slot = state.export_slots.acquire(&user)?;
    let export = state.storage.export(&user).await?;
    Ok(super::export::response(ExportFormat::Records, export, slot, export_deadline(&state)))
}

/// How long an export may take to be read: the bulk routes' timeout (`None`: no timeout).
pub(super) fn export_deadline(state: &AppState) -> Option<std::time::Duration> {
    let limit = super::timeout::bulk_limit(state.config.limits.request_timeout);
    (!limit.is_zero()).then_some(limit)
}

/// One item of `POST /v1/import`, its value kept as the JSON text it arrived as.
#[derive(Deserialize)]
struct ImportItem<'a> {
    collection: String,
    id: String,
    #[serde(borrow)]
    value: &'a RawValue,
}

/// The body of `POST /v1/import` (the protocol's `ImportRequest`, values unparsed).
#[derive(Deserialize)]
struct ImportBody<'a> {
    #[serde(borrow)]
    items: Vec<ImportItem<'a>>,
}

/// `POST /v1/import`: unconditional upserts (the last of duplicate keys wins). Any invalid item
/// fails the whole import (400 / 413) and an import past the quota is refused whole (507), before
/// anything is written. A large import is not atomic on SQLite: it is written in slices, each
/// committed on its own so that other users' writes are not held up behind it; an import that
/// fails midway (the server dies) may leave its first slices written — resend it, imports are
/// idempotent upserts. (PostgreSQL writes it in one transaction.) The import's place
/// (`--max-imports-per-user`, `--max-imports`) is taken before its body is read; values stay the
/// JSON text they arrived as, never parsed into a tree.
pub(super) async fn import(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    request: Request,
) -> Result<Json<ImportResponse>, ApiError> {
    let _slot = state.import_slots.acquire(&user)?;
    let body = BodyBytes::from_request(request, &state).await?.0?;
    let max_value = state.config.limits.max_value_bytes;
    // Checking up to `--max-import-bytes` of JSON takes a while: off the async workers. The body
    // is dropped there too: the rows own their values.
    let rows = off_the_workers(move || {
        let request: ImportBody<'_> = parse(&body)?;
        let mut rows = Vec::with_capacity(request.items.len());
        for item in request.items {
            rows.push(upsert_row(item.collection, item.id, item.value, max_value)?);
        }
        Ok(rows)
    })
    .await?;
    let (imported, revision) = write_upserts(&state, &user, rows).await?;
    Ok(Json(ImportResponse { imported, revision }))
}

/// Runs CPU-heavy request work (parsing a bulk body) on tokio's blocking pool, so the async
/// workers keep answering other requests meanwhile.
pub(super) async fn off_the_workers<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::new(ErrorCode::Internal, format!("request task failed: {e}")))?
}

/// Validates one upsert (key and value size); the value is stored as the JSON text it came as.
pub(super) fn upsert_row(
    collection: String,
    id: String,
    value: &RawValue,
    max_value: usize,
) -> Result<UpsertRow, ApiError> {
    validate_item_key(&collection, &id)
        .map_err(|e| ApiError::invalid(format!("invalid key {collection:?}/{id:?}: {e}")))?;
    let value_json = value.get();
    if value_json.len() > max_value {
        return Err(ApiError::too_large(format!(
            "the value of {collection:?}/{id:?} is {} bytes, more than the {max_value} allowed",
            value_json.len()
        )));
    }
    Ok(UpsertRow { collection, id, value_json: value_json.to_owned() })
}

/// Writes upserts (the last of duplicate keys wins); returns (items written, head).
pub(super) async fn write_upserts(
    state: &AppState,
    user: &str,
    rows: Vec<UpsertRow>,
) -> Result<(u64, u64), ApiError> {
    let count = rows.len() as u64;
    let rows = dedupe_last_wins(rows);
    let written = state.storage.write(user, Mutation::Upsert(rows)).await?;
    match written.applied {
        Applied::Upsert(rows) => {
            tracing::debug!(user, received = count, rows, "upserts written");
            state.metrics.observe_import(count);
            Ok((count, written.head))
        }
        other => Err(unexpected(other)),
    }
}

fn dedupe_last_wins(rows: Vec<UpsertRow>) -> Vec<UpsertRow> {
    let mut last: HashMap<(&str, &str), usize> = HashMap::with_capacity(rows.len());
    for (index, row) in rows.iter().enumerate() {
        last.insert((&row.collection, &row.id), index);
    }
    if last.len() == rows.len() {
        return rows;
    }
    let keep: std::collections::HashSet<usize> = last.into_values().collect();
    rows.into_iter().enumerate().filter(|(i, _)| keep.contains(i)).map(|(_, row)| row).collect()
}

/// `GET /v1/stats`.
pub(super) async fn stats(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
) -> Result<Json<StatsResponse>, ApiError> {
    Ok(Json(state.storage.stats(&user).await?))
}
