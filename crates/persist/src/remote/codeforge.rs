//! [`CodeForgeRemote`]: syncs with CodeForge's key-value storage API (`/api/storage/*`, the old
//! Flask backend, or `persist-server`'s compatible routes), so an app not yet moved to the sync
//! protocol can use this crate today.
//!
//! That API has no revisions, no tombstones and no change feed, and this is what it means:
//! - **No conflict detection.** A push is a plain `PUT`: the last writer wins on the server,
//!   whatever the device's strategy; two devices editing the same item offline keep the edit
//!   pushed last. (Our protocol detects these by revision.)
//! - **Deletes do not reach other devices.** A delete removes the key on the server, but a pull
//!   (the whole `GET /api/storage/export`) cannot tell "deleted" from "never seen", so other
//!   devices keep their copy.
//! - **Every pull reads everything.** Each pull is a full export; items whose value did not
//!   change are left as they are. Fine for the small states CodeForge apps keep.
//! - **No live events.** Changes from other devices arrive with the interval (30 s by default).
//!
//! Keys are CodeForge's flat keys, `"<collection>:<id>"` ([`persist_protocol::flat_key`]);
//! `persist-server` maps them onto the same records as the sync protocol, so devices on either
//! remote see each other's items.

use gloo_net::http::Request;
use persist_protocol::{
    flat_key, split_flat_key, PullResponse, PushOutcome, PushRequest, PushResponse, PushResult,
    Record, Revision, StatsResponse,
};
use serde_json::{json, Map, Value};

use super::{Health, HttpRemote, Remote, RemoteError, RemoteErrorKind};
use crate::local::LocalFuture;

/// CodeForge's storage API at `base_url` (see the module documentation for what it cannot do).
///
/// ```no_run
/// use yewdux_persist::remote::CodeForgeRemote;
/// let remote = CodeForgeRemote::new("https://codeforge.example.com", Some("token".to_owned()));
/// ```
#[derive(Debug, Clone)]
pub struct CodeForgeRemote {
    http: HttpRemote,
}

impl CodeForgeRemote {
    /// The API at `base_url` (`""` for the app's own origin), with a bearer token if the server
    /// wants one.
    pub fn new(base_url: impl Into<String>, token: Option<String>) -> Self {
        Self { http: HttpRemote::new(base_url, token) }
    }

    /// `/api/storage/item/<key>`: the alias that is always a key, even one spelled like a route.
    fn item_url(&self, collection: &str, id: &str) -> String {
        let key = String::from(js_sys::encode_uri_component(&flat_key(collection, id)));
        self.http.url(&format!("/api/storage/item/{key}"))
    }

    async fn push_now(&self, request: &PushRequest) -> Result<PushResponse, RemoteError> {
        let mut results = Vec::with_capacity(request.ops.len());
        for op in &request.ops {
            let url = self.item_url(&op.collection, &op.id);
            let (status, text) = if op.delete {
                self.http.send(Request::delete(&url), None).await?
            } else {
                let body = json!({ "value": op.value }).to_string();
                self.http.send(Request::put(&url), Some(body)).await?
            };
            let outcome = match status {
                200..=299 => PushOutcome::Applied { revision: 0 },
                // Deleting what is not there: done already.
                404 if op.delete => PushOutcome::Applied { revision: 0 },
                _ => PushOutcome::Rejected {
                    code: persist_protocol::ErrorCode::InvalidInput,
                    message: format!("{status}: {}", text.chars().take(200).collect::<String>()),
                },
            };
            results.push(PushResult { op_id: op.op_id.clone(), outcome });
        }
        Ok(PushResponse { results, revision: 0 })
    }

    async fn pull_now(&self, since: Revision) -> Result<PullResponse, RemoteError> {
        let (status, text) =
            self.http.send(Request::get(&self.http.url("/api/storage/export")), None).await?;
        if !(200..300).contains(&status) {
            return Err(RemoteError::new(RemoteErrorKind::Rejected { status }, text));
        }
        let all: Map<String, Value> = serde_json::from_str(&text).map_err(|e| {
            RemoteError::new(RemoteErrorKind::Protocol, format!("/api/storage/export: {e}"))
        })?;
        // No revisions: every export is one step newer than the last, so each item is looked at
        // again (an unchanged one is skipped locally without a write).
        let revision = since + 1;
        let records = all
            .into_iter()
            .filter_map(|(key, value)| {
                let (collection, id) = split_flat_key(&key);
                // Keys written by other CodeForge code that are not ours are left alone.
                persist_protocol::validate_item_key(collection, id).ok()?;
                Some(Record {
                    collection: collection.to_owned(),
                    id: id.to_owned(),
                    value,
                    revision,
                    deleted: false,
                    updated_at: 0,
                    hlc: None,
                })
            })
            .collect();
        Ok(PullResponse { records, next_since: revision, has_more: false, head: revision })
    }

    async fn health_now(&self) -> Result<Health, RemoteError> {
        // CodeForge's own client checks connectivity with the stats route.
        let (status, text) =
            self.http.send(Request::get(&self.http.url("/api/storage/stats")), None).await?;
        match status {
            200..=299 if serde_json::from_str::<StatsResponse>(&text).is_ok() => Ok(Health::Ok),
            200..=299 => Ok(Health::Degraded("/api/storage/stats: unexpected answer".into())),
            _ => Err(RemoteError::new(RemoteErrorKind::Rejected { status }, text)),
        }
    }
}

impl Remote for CodeForgeRemote {
    fn push<'a>(
        &'a self,
        request: &'a PushRequest,
    ) -> LocalFuture<'a, Result<PushResponse, RemoteError>> {
        Box::pin(self.push_now(request))
    }

    fn pull(
        &self,
        since: Revision,
        _limit: u32,
    ) -> LocalFuture<'_, Result<PullResponse, RemoteError>> {
        Box::pin(self.pull_now(since))
    }

    fn health(&self) -> LocalFuture<'_, Result<Health, RemoteError>> {
        Box::pin(self.health_now())
    }

    fn set_token(&self, token: Option<String>) {
        self.http.set_token(token);
    }

    /// One request per op: keep pushes small so a sync reports progress often.
    fn max_push_ops(&self) -> usize {
        50
    }
}
