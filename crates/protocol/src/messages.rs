//! Request and response bodies of the sync protocol (`/v1/*`) and the health endpoint.
//!
//! Routes (all JSON, all but `/health` need `Authorization: Bearer <token>`):
//!
//! | method + path | body | answer |
//! |---|---|---|
//! | `POST /v1/push` | [`PushRequest`] | [`PushResponse`] |
//! | `GET /v1/pull?since=<rev>&limit=<n>` | — | [`PullResponse`] |
//! | `GET /v1/export` | — | [`ExportResponse`] |
//! | `POST /v1/import` | [`ImportRequest`] | [`ImportResponse`] |
//! | `GET /v1/events` | — | server-sent events, each `data:` an [`EventMessage`] |
//! | `GET /v1/stats` | — | [`StatsResponse`] |
//! | `GET /health` | — | [`HealthResponse`] |
//! | `GET /dev-config.json` (`--dev` only) | — | [`DevConfig`] |

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Hlc, OpId, Record, Revision};

/// Most ops one push may carry.
pub const MAX_PUSH_OPS: usize = 1_000;
/// Page size of a pull when the client does not ask for one.
pub const DEFAULT_PULL_LIMIT: u32 = 500;
/// Largest page a pull may ask for.
pub const MAX_PULL_LIMIT: u32 = 5_000;

/// One change a client sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PushOp {
    /// Unique id: a retried op applies once and gets its first answer again.
    pub op_id: OpId,
    /// The item's collection.
    pub collection: String,
    /// The item's id.
    pub id: String,
    /// The server revision this change was made from; `None` for an item the client believes is
    /// new. The op conflicts when the server's current revision differs.
    #[serde(default)]
    pub base_revision: Option<Revision>,
    /// `true` to delete the item (leaving a tombstone); `value` is then ignored.
    #[serde(default)]
    pub delete: bool,
    /// The new value of a put.
    #[serde(default)]
    pub value: Value,
    /// The client's HLC stamp of the change (used by last-writer-wins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hlc: Option<Hlc>,
}

impl PushOp {
    /// A put of `value`.
    pub fn put(
        op_id: OpId,
        collection: impl Into<String>,
        id: impl Into<String>,
        value: Value,
        base_revision: Option<Revision>,
    ) -> Self {
        Self {
            op_id,
            collection: collection.into(),
            id: id.into(),
            base_revision,
            delete: false,
            value,
            hlc: None,
        }
    }

    /// A delete.
    pub fn delete(
        op_id: OpId,
        collection: impl Into<String>,
        id: impl Into<String>,
        base_revision: Option<Revision>,
    ) -> Self {
        Self {
            op_id,
            collection: collection.into(),
            id: id.into(),
            base_revision,
            delete: true,
            value: Value::Null,
            hlc: None,
        }
    }
}

/// A batch of ops, applied by the server in one transaction, each op answered separately.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PushRequest {
    /// The ops, at most [`MAX_PUSH_OPS`].
    pub ops: Vec<PushOp>,
}

/// What happened to one pushed op.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum PushOutcome {
    /// The op was applied (now or by an earlier push with the same op id); the item is at
    /// `revision`.
    Applied {
        /// The item's revision after the op.
        revision: Revision,
    },
    /// The server's current revision differs from the op's base revision; nothing was written.
    Conflict {
        /// The server's current record, or `None` when the server has no record of the item.
        current: Option<Record>,
    },
    /// The op itself is invalid (bad key, value too large); retrying it cannot succeed.
    Rejected {
        /// Why, as a stable code.
        code: crate::ErrorCode,
        /// Why, for humans.
        message: String,
    },
}

/// The answer to one op.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PushResult {
    /// The op this answers.
    pub op_id: OpId,
    /// What happened.
    #[serde(flatten)]
    pub outcome: PushOutcome,
}

/// The answer to a push: one result per op, in the request's order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PushResponse {
    /// Per-op results, same order as the request's ops.
    pub results: Vec<PushResult>,
    /// The namespace's newest revision after the push.
    pub revision: Revision,
}

/// Query of `GET /v1/pull`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullQuery {
    /// Return records written after this revision (the client's checkpoint; `0` for everything).
    #[serde(default)]
    pub since: Revision,
    /// Page size, at most [`MAX_PULL_LIMIT`]; [`DEFAULT_PULL_LIMIT`] when absent.
    #[serde(default)]
    pub limit: Option<u32>,
}

/// One page of changes, oldest first, tombstones included.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PullResponse {
    /// Records with `revision > since`, ascending by revision.
    pub records: Vec<Record>,
    /// The checkpoint to send as `since` for the next page (the last record's revision, or
    /// `since` when the page is empty).
    pub next_since: Revision,
    /// `true` when more records follow.
    pub has_more: bool,
    /// The namespace's newest revision when the page was read.
    pub head: Revision,
}

/// `GET /v1/export`: every live record of the namespace (tombstones left out).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportResponse {
    /// The namespace revision the export is consistent with.
    pub revision: Revision,
    /// All live records.
    pub records: Vec<Record>,
}

/// One item of a bulk import.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportItem {
    /// The item's collection.
    pub collection: String,
    /// The item's id.
    pub id: String,
    /// Its value.
    pub value: Value,
}

/// `POST /v1/import`: upserts every item (no conflict check), in one transaction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportRequest {
    /// The items.
    pub items: Vec<ImportItem>,
}

/// The answer to an import.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportResponse {
    /// How many items were written.
    pub imported: u64,
    /// The namespace's revision after the import.
    pub revision: Revision,
}

/// One server-sent event on `GET /v1/events`: the namespace advanced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventMessage {
    /// The namespace's newest revision.
    pub revision: Revision,
}

/// `GET /health`: cheap liveness and readiness. CodeForge's fields (`status`, `timestamp`) come
/// first; the rest are additions old clients ignore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthResponse {
    /// `"ok"` when the database answers, `"degraded"` otherwise.
    pub status: String,
    /// Server time, RFC 3339.
    pub timestamp: String,
    /// The server's version.
    #[serde(default)]
    pub version: String,
    /// `"ok"`, or `"unavailable"` when the database does not answer (the details go to the
    /// server's log, not to unauthenticated callers).
    #[serde(default)]
    pub database: String,
}

/// `GET /v1/stats` (and CodeForge's `GET /api/storage/stats`, which has the same first fields).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsResponse {
    /// Live (non-deleted) items.
    pub total_keys: u64,
    /// Sum of the JSON sizes of the live values, in bytes.
    pub total_size_bytes: u64,
    /// The namespace's newest revision.
    #[serde(default)]
    pub revision: Revision,
    /// Live items per collection.
    #[serde(default)]
    pub collections: BTreeMap<String, u64>,
}

/// `GET /dev-config.json`, served only by `persist-server serve --dev` (loopback only, and only
/// to requests whose `Host` is a loopback name): the development token the app uses when it was
/// given none. Servers started without `--dev` refuse that token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DevConfig {
    /// A bearer token of `user`.
    pub token: String,
    /// The user (namespace) of the token, `"dev"`.
    pub user: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn push_result_wire_form_is_flat_and_tagged() {
        let result =
            PushResult { op_id: OpId::new("o1"), outcome: PushOutcome::Applied { revision: 7 } };
        assert_eq!(
            serde_json::to_value(&result).unwrap(),
            json!({"op_id": "o1", "status": "applied", "revision": 7})
        );
        let conflict: PushResult =
            serde_json::from_value(json!({"op_id": "o2", "status": "conflict", "current": null}))
                .unwrap();
        assert_eq!(conflict.outcome, PushOutcome::Conflict { current: None });
    }

    #[test]
    fn push_op_defaults_make_a_new_put() {
        let op: PushOp =
            serde_json::from_value(json!({"op_id": "x", "collection": "c", "id": "i", "value": 1}))
                .unwrap();
        assert_eq!(op.base_revision, None);
        assert!(!op.delete);
        assert_eq!(op.value, json!(1));
    }
}
