//! [`MemoryRemote`]: a model of the server in memory, for native and browser tests and the
//! simulation. It applies the protocol's push rule ([`decide_push`]) exactly as the server does,
//! remembers each op's answer under its op id, keeps tombstones, and can be made unreachable,
//! busy or unauthorized on purpose.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::rc::{Rc, Weak};

use persist_protocol::{
    decide_push, validate_item_key, CurrentItem, ErrorCode, OpId, PullResponse, PushDecision,
    PushOutcome, PushRequest, PushResponse, PushResult, Record, Revision, MAX_PULL_LIMIT,
    MAX_PUSH_OPS,
};
use serde_json::Value;

use super::{EventCallback, Health, Remote, RemoteError, RemoteErrorKind, Subscription};
use crate::local::LocalFuture;

/// An in-memory server. Clones share the same state, so a test keeps one clone to look inside
/// (or to write as "another device") while the runtime syncs with the other.
#[derive(Debug, Clone, Default)]
pub struct MemoryRemote {
    state: Rc<RefCell<State>>,
}

#[derive(Default)]
struct State {
    records: BTreeMap<(String, String), Record>,
    head: Revision,
    outcomes: HashMap<OpId, PushOutcome>,
    unreachable: bool,
    unauthorized: bool,
    failures: VecDeque<RemoteError>,
    listeners: Vec<Weak<EventCallback>>,
    pushes: u64,
    pushed_ops: u64,
    lose_answers: usize,
    max_value_bytes: Option<usize>,
    /// Every op that wrote a revision, in order: op id and the revision written.
    applied: Vec<(OpId, Revision)>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("records", &self.records.len())
            .field("head", &self.head)
            .field("unreachable", &self.unreachable)
            .finish_non_exhaustive()
    }
}

/// Keeps a listener registered; the remote holds it weakly.
struct Listener(#[allow(dead_code)] Rc<EventCallback>);
impl Subscription for Listener {}
impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Listener")
    }
}

impl MemoryRemote {
    /// An empty server.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes every call fail as unreachable (`false`), or answer again (`true`).
    pub fn set_reachable(&self, reachable: bool) {
        self.state.borrow_mut().unreachable = !reachable;
    }

    /// Makes every call but the health check fail with 401 (`true`) until set back.
    pub fn set_unauthorized(&self, unauthorized: bool) {
        self.state.borrow_mut().unauthorized = unauthorized;
    }

    /// Makes the next push or pull fail with `error` (queued: one failure per call).
    pub fn fail_next(&self, error: RemoteError) {
        self.state.borrow_mut().failures.push_back(error);
    }

    /// Applies the next `count` pushes but loses their answers (the client sees the network
    /// fail), as when a connection drops after the server committed.
    pub fn lose_next_answers(&self, count: usize) {
        self.state.borrow_mut().lose_answers = count;
    }

    /// Refuses, as a whole (413), any push carrying a value larger than `bytes` of JSON.
    pub fn set_max_value_bytes(&self, bytes: Option<usize>) {
        self.state.borrow_mut().max_value_bytes = bytes;
    }

    /// Forgets everything, as a server restored from an empty backup.
    pub fn reset(&self) {
        let mut state = self.state.borrow_mut();
        state.records.clear();
        state.outcomes.clear();
        state.applied.clear();
        state.head = 0;
    }

    /// Writes an item as another device would (`None` deletes it), and announces the change.
    /// Returns the new revision.
    pub fn write(&self, collection: &str, id: &str, value: Option<Value>) -> Revision {
        let revision = {
            let mut state = self.state.borrow_mut();
            state.head += 1;
            let revision = state.head;
            let record = record(collection, id, value, revision);
            state.records.insert((collection.to_owned(), id.to_owned()), record);
            revision
        };
        self.announce(revision);
        revision
    }

    /// The record of an item (tombstones included).
    pub fn record(&self, collection: &str, id: &str) -> Option<Record> {
        self.state.borrow().records.get(&(collection.to_owned(), id.to_owned())).cloned()
    }

    /// The live items of a collection: id → value.
    pub fn items(&self, collection: &str) -> BTreeMap<String, Value> {
        let state = self.state.borrow();
        state
            .records
            .values()
            .filter(|r| r.collection == collection && !r.deleted)
            .map(|r| (r.id.clone(), r.value.clone()))
            .collect()
    }

    /// The namespace's newest revision.
    pub fn head(&self) -> Revision {
        self.state.borrow().head
    }

    /// The ops this server applied by writing a revision, from the `from`-th on (0: all), oldest
    /// first: each op id with the revision it wrote. Ops answered from the op-id memory or found
    /// already there (same value) wrote nothing and are not listed. Forgotten by
    /// [`reset`](Self::reset).
    pub fn applied_ops(&self, from: usize) -> Vec<(OpId, Revision)> {
        let state = self.state.borrow();
        state.applied.get(from..).map(<[_]>::to_vec).unwrap_or_default()
    }

    /// Pushes received, and ops in them.
    pub fn push_counts(&self) -> (u64, u64) {
        let state = self.state.borrow();
        (state.pushes, state.pushed_ops)
    }

    fn announce(&self, revision: Revision) {
        let listeners: Vec<Rc<EventCallback>> = {
            let mut state = self.state.borrow_mut();
            state.listeners.retain(|l| l.strong_count() > 0);
            state.listeners.iter().filter_map(Weak::upgrade).collect()
        };
        for listener in listeners {
            listener(revision);
        }
    }

    fn check(&self) -> Result<(), RemoteError> {
        let mut state = self.state.borrow_mut();
        if state.unreachable {
            return Err(RemoteError::new(RemoteErrorKind::Unreachable, "server unreachable"));
        }
        if let Some(error) = state.failures.pop_front() {
            return Err(error);
        }
        if state.unauthorized {
            return Err(RemoteError::new(RemoteErrorKind::Unauthorized, "401: token revoked"));
        }
        Ok(())
    }

    fn push_now(&self, request: &PushRequest) -> Result<PushResponse, RemoteError> {
        self.check()?;
        if request.ops.len() > MAX_PUSH_OPS {
            return Err(RemoteError::new(
                RemoteErrorKind::Rejected { status: 400 },
                "too many ops",
            ));
        }
        if let Some(max) = self.state.borrow().max_value_bytes {
            if request.ops.iter().any(|op| op.value.to_string().len() > max) {
                return Err(RemoteError::new(
                    RemoteErrorKind::Rejected { status: 413 },
                    "413: a value is too large",
                ));
            }
        }
        let mut state = self.state.borrow_mut();
        state.pushes += 1;
        state.pushed_ops += request.ops.len() as u64;
        let before = state.head;
        let mut results = Vec::with_capacity(request.ops.len());
        for op in &request.ops {
            if let Some(outcome) = state.outcomes.get(&op.op_id) {
                results.push(PushResult { op_id: op.op_id.clone(), outcome: outcome.clone() });
                continue;
            }
            let outcome = if let Err(error) = validate_item_key(&op.collection, &op.id) {
                PushOutcome::Rejected { code: ErrorCode::InvalidInput, message: error.to_string() }
            } else {
                let key = (op.collection.clone(), op.id.clone());
                let current = state.records.get(&key);
                let text = current.filter(|r| !r.deleted).map(|r| r.value.to_string());
                let item = current
                    .map(|r| CurrentItem { revision: r.revision, live_value: text.as_deref() });
                match decide_push(op.base_revision, op.delete, &op.value, item) {
                    PushDecision::Write => {
                        state.head += 1;
                        let revision = state.head;
                        let value = (!op.delete).then(|| op.value.clone());
                        let mut record = record(&op.collection, &op.id, value, revision);
                        record.hlc = op.hlc.clone();
                        state.records.insert(key, record);
                        state.applied.push((op.op_id.clone(), revision));
                        PushOutcome::Applied { revision }
                    }
                    PushDecision::AlreadyThere(revision) => PushOutcome::Applied { revision },
                    PushDecision::Conflict => {
                        PushOutcome::Conflict { current: state.records.get(&key).cloned() }
                    }
                }
            };
            state.outcomes.insert(op.op_id.clone(), outcome.clone());
            results.push(PushResult { op_id: op.op_id.clone(), outcome });
        }
        let head = state.head;
        let lost = state.lose_answers > 0;
        state.lose_answers = state.lose_answers.saturating_sub(1);
        drop(state);
        if head != before {
            self.announce(head);
        }
        if lost {
            return Err(RemoteError::new(RemoteErrorKind::Unreachable, "connection reset"));
        }
        Ok(PushResponse { results, revision: head })
    }

    fn pull_now(&self, since: Revision, limit: u32) -> Result<PullResponse, RemoteError> {
        self.check()?;
        let limit = limit.clamp(1, MAX_PULL_LIMIT) as usize;
        let state = self.state.borrow();
        let mut changed: Vec<&Record> =
            state.records.values().filter(|r| r.revision > since).collect();
        changed.sort_by_key(|r| r.revision);
        let has_more = changed.len() > limit;
        let records: Vec<Record> = changed.into_iter().take(limit).cloned().collect();
        let next_since = records.last().map_or(since, |r| r.revision);
        Ok(PullResponse { records, next_since, has_more, head: state.head })
    }
}

fn record(collection: &str, id: &str, value: Option<Value>, revision: Revision) -> Record {
    Record {
        collection: collection.to_owned(),
        id: id.to_owned(),
        deleted: value.is_none(),
        value: value.unwrap_or(Value::Null),
        revision,
        updated_at: 0,
        hlc: None,
    }
}

impl Remote for MemoryRemote {
    fn push<'a>(
        &'a self,
        request: &'a PushRequest,
    ) -> LocalFuture<'a, Result<PushResponse, RemoteError>> {
        let result = self.push_now(request);
        Box::pin(async move { result })
    }

    fn pull(
        &self,
        since: Revision,
        limit: u32,
    ) -> LocalFuture<'_, Result<PullResponse, RemoteError>> {
        let result = self.pull_now(since, limit);
        Box::pin(async move { result })
    }

    fn health(&self) -> LocalFuture<'_, Result<Health, RemoteError>> {
        let result = if self.state.borrow().unreachable {
            Err(RemoteError::new(RemoteErrorKind::Unreachable, "server unreachable"))
        } else {
            Ok(Health::Ok)
        };
        Box::pin(async move { result })
    }

    fn subscribe(&self, on_change: EventCallback) -> Option<Box<dyn Subscription>> {
        let listener = Rc::new(on_change);
        self.state.borrow_mut().listeners.push(Rc::downgrade(&listener));
        Some(Box::new(Listener(listener)))
    }
}
