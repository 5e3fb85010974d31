//! Wire types and pure shared logic of the yewdux-persist sync protocol.
//!
//! This crate has no I/O and builds for `wasm32-unknown-unknown` and native targets alike. The
//! client crate (`yewdux-persist`) and the server (`persist-server`) both speak these types, so a
//! change here is a change of the contract.
//!
//! # The contract in one paragraph
//! A [`Record`] is one item of a collection inside a user's namespace: a JSON value, a server
//! [`Revision`] (monotonic per namespace), a tombstone flag so deletes sync, and the client's
//! [`Hlc`] stamp. A client pushes a [`PushRequest`]: ops with a unique [`OpId`] (a retried push
//! applies once and gets the same answer) and the revision the op was based on. The server answers
//! each op with a [`PushOutcome`]: applied at a new revision, or a conflict carrying the server's
//! current record. Clients pull everything changed since a checkpoint with [`PullResponse`] pages,
//! tombstones included.
//!
//! ```
//! use persist_protocol::{OpId, PushOp, PushRequest};
//! use serde_json::json;
//!
//! let push = PushRequest {
//!     ops: vec![PushOp::put(OpId::new("tab1-1"), "files", "a.rs", json!({"name": "a.rs"}), None)],
//! };
//! let wire = serde_json::to_string(&push).unwrap();
//! assert_eq!(serde_json::from_str::<PushRequest>(&wire).unwrap(), push);
//! ```
#![deny(missing_docs)]

mod error;
mod hlc;
mod key;
mod messages;
mod record;
mod rules;

pub use error::{ErrorBody, ErrorCode};
pub use hlc::Hlc;
pub use key::{
    flat_key, split_flat_key, validate_collection_name, validate_item_key, KeyError,
    MAX_COLLECTION_LEN, MAX_ID_LEN, RESERVED_PREFIX,
};
pub use messages::{
    DevConfig, EventMessage, ExportResponse, HealthResponse, ImportItem, ImportRequest,
    ImportResponse, PullQuery, PullResponse, PushOp, PushOutcome, PushRequest, PushResponse,
    PushResult, StatsResponse, DEFAULT_PULL_LIMIT, MAX_PULL_LIMIT, MAX_PUSH_OPS,
};
pub use record::{OpId, Record, Revision};
pub use rules::{decide_push, CurrentItem, PushDecision};
