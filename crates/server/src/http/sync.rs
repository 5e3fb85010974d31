//! The sync protocol: push, pull, export, import, stats.

use std::collections::HashMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;
use persist_protocol::{
    validate_item_key, ErrorCode, ExportResponse, ImportRequest, ImportResponse, PullQuery,
    PullResponse, PushOutcome, PushRequest, PushResponse, PushResult, StatsResponse,
    DEFAULT_PULL_LIMIT, MAX_PULL_LIMIT, MAX_PUSH_OPS,
};

use super::extract::AuthUser;
use super::json::JsonBody;
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
    for op in request.ops {
        match check_op(&op, max_value) {
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

/// `GET /v1/pull?since=&limit=`.
pub(super) async fn pull(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    query: Result<Query<PullQuery>, QueryRejection>,
) -> Result<Json<PullResponse>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::invalid(format!("bad query: {e}")))?;
    let limit = query.limit.unwrap_or(DEFAULT_PULL_LIMIT).clamp(1, MAX_PULL_LIMIT);
    Ok(Json(state.storage.pull(&user, query.since, limit).await?))
}

/// `GET /v1/export`.
pub(super) async fn export(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
) -> Result<Json<ExportResponse>, ApiError> {
    Ok(Json(state.storage.export(&user).await?))
}

/// `POST /v1/import`: unconditional upserts (the last of duplicate keys wins). Any invalid item
/// fails the whole import (400 / 413) and an import past the quota is refused whole (507), before
/// anything is written. A large import is not atomic on SQLite: it is written in slices, each
/// committed on its own so that other users' writes are not held up behind it; an import that
/// fails midway (the server dies) may leave its first slices written — resend it, imports are
/// idempotent upserts. (PostgreSQL writes it in one transaction.)
pub(super) async fn import(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    JsonBody(request): JsonBody<ImportRequest>,
) -> Result<Json<ImportResponse>, ApiError> {
    let max_value = state.config.limits.max_value_bytes;
    let mut rows = Vec::with_capacity(request.items.len());
    for item in request.items {
        rows.push(upsert_row(item.collection, item.id, &item.value, max_value)?);
    }
    let (imported, revision) = write_upserts(&state, &user, rows).await?;
    Ok(Json(ImportResponse { imported, revision }))
}

/// Validates one upsert (key and value size).
pub(super) fn upsert_row(
    collection: String,
    id: String,
    value: &serde_json::Value,
    max_value: usize,
) -> Result<UpsertRow, ApiError> {
    validate_item_key(&collection, &id)
        .map_err(|e| ApiError::invalid(format!("invalid key {collection:?}/{id:?}: {e}")))?;
    let value_json =
        serde_json::to_string(value).map_err(|e| ApiError::invalid(format!("value: {e}")))?;
    if value_json.len() > max_value {
        return Err(ApiError::too_large(format!(
            "the value of {collection:?}/{id:?} is {} bytes, more than the {max_value} allowed",
            value_json.len()
        )));
    }
    Ok(UpsertRow { collection, id, value_json })
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
