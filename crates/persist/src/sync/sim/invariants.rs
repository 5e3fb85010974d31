//! [`Checker`]: the invariants of the simulation, checked as it runs and at quiescence.
//!
//! The checker keeps three shadows, each fed by what the simulation sees happen and never by the
//! code under test's own bookkeeping:
//! - the server's history: every version of every item the server ever had, read after each
//!   call that may have changed it, and every op it wrote (its own log, `applied_ops`);
//! - per client, the changes durable in its store and not settled yet (what its outbox must
//!   hold), and the last answer the client received (push answers or a pulled page);
//! - per client, the last durable change of each item and how it ended.
//!
//! Before each request a client sends (the earlier answer is applied by then) and after each
//! sync, the client's real outbox and open conflicts are compared with the shadow: each change
//! that left the outbox must have left for a reason the last answer gives (acknowledged; a
//! conflict with the same value; a conflict its strategy settles with the server's version),
//! each change re-based on a new revision must answer a conflict its strategy decides that way,
//! and each new open conflict must answer a conflict its strategy leaves to the user. A merge's
//! base is the server's version at the revision the client knew before the answer. The
//! invariants:
//! 1. after quiescence (every conflict resolved by the users) every replica equals the server
//!    ([`Checker::at_quiescence`]);
//! 2. every op the server acknowledged is on the server: the acknowledged revision holds the op's
//!    value in the server's history, and no record ever goes back or disappears;
//! 3. every change durable in a client's store reaches the server, unless a newer change of the
//!    same item in the same client replaced it, or its strategy settled it with the server's
//!    version: server-wins, last-writer-wins when the server's version is newer on the hybrid
//!    clock, a merge (or the app's resolver) that came to the server's version, the resolver's
//!    keep-remote, or the user's pick of the server's version. Client-wins and last-writer-wins
//!    re-push it unchanged; the app's resolver's decision is asked again and must be what
//!    happened;
//! 4. no conflict resolved once comes back: an op answered with a conflict is never sent again,
//!    and an op whose conflict was resolved (overruled, re-pushed under a new op id, or decided
//!    by the user) is never written by the server afterwards;
//! 5. a merge never loses a field changed on one side only: when a merge strategy decides a
//!    conflict, every top-level field that one side changed against the base and the other did
//!    not is in the result as that side has it (and merge-else-ask asks only about fields
//!    changed on both sides);
//! 6. a resolved conflict never reappears: once the user resolved a conflict of an item against
//!    the server's revision R, no conflict of that item is opened (or moved) against a revision
//!    at or below R, and the resolution is pushed on R under a new op id;
//! 7. manual conflicts are never resolved automatically: while a conflict is open the item's
//!    value is its client's own last change (only the client's own writes change it), no push
//!    carries an op of the item, and the conflict closes only by the user or because the server
//!    came to the same value; strategies that do not ask never open one.
//!
//! A broken invariant panics with what broke; the simulation adds the seed and how to replay it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;

use persist_engine::{ConflictStrategy, MergeFallback};
use persist_protocol::{Hlc, OpId, PullResponse, PushOp, PushOutcome, PushRequest, PushResponse};
use persist_protocol::{Record, Revision, MAX_PULL_LIMIT};
use serde_json::Value;

use super::values::{custom_decide, union_keys};
use super::{ready, Figures, Key};
use crate::local::SyncRules;
use crate::local::{Conflict, ConflictCase, LocalStore, MemoryStore, OutboxEntry, Resolution};
use crate::remote::{MemoryRemote, Remote};

/// A change durable in a client's store whose fate is not known yet (its outbox entry).
#[derive(Debug, Clone)]
struct Pending {
    /// The op id the outbox entry has now (`origin`, or a re-based id derived from it).
    op_id: OpId,
    /// The op id the change was written with.
    origin: String,
    /// The value written (`None`: a delete); after a merge, the merged value.
    value: Option<Value>,
    /// When the change was made (last-writer-wins compares it).
    hlc: Hlc,
    /// `value` as the store holds it, when known (a quick comparison before parsing).
    text: Option<String>,
}

/// How a durable change ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// The server applied it (or had it already): it reached the server.
    Acknowledged,
    /// A conflict found the server already holding the same value.
    SameValue,
    /// The server's version replaced it (server-wins, an older last writer, the app's resolver).
    Overruled,
    /// A merge (or the app's resolver) came to the server's version.
    MergedToServer,
    /// The user resolved its conflict by taking the server's version.
    UserTookServer,
}

/// The last durable change of one item in one client.
#[derive(Debug, Clone)]
struct LastChange {
    origin: String,
    fate: Option<Fate>,
}

/// The last answer a client received (and applied) from the server.
#[derive(Debug, Clone)]
enum Answer {
    Pushed(Vec<(PushOp, PushOutcome)>),
    Pulled(Vec<Record>),
}

/// What the checker knows of one client.
#[derive(Debug, Default)]
struct Shadow {
    /// Durable changes not settled: what the outbox must hold.
    outbox: BTreeMap<Key, Pending>,
    /// The answer received since the last look at the outbox.
    last: Option<Answer>,
    /// Ops this client received a conflict for.
    conflicted: HashSet<OpId>,
    /// The last durable change of each item.
    last_changes: BTreeMap<Key, LastChange>,
    /// The server revision of each item this client last took (from the answers it applied):
    /// the base its next change of the item must be pushed with.
    known: BTreeMap<Key, Revision>,
    /// For the items of the last answer: the revision known before it (the server's version
    /// there is the base a merge of the answer starts from).
    bases: BTreeMap<Key, Option<Revision>>,
    /// The conflicts open in the store at the last look.
    open: BTreeMap<Key, Conflict>,
    /// For each item the user resolved a conflict of: the newest server revision it resolved
    /// against (invariant 6).
    resolved_at: BTreeMap<Key, Revision>,
}

/// The invariants' shadows for one seed.
#[derive(Debug)]
pub(super) struct Checker {
    keys: Vec<Key>,
    clients: Vec<Shadow>,
    /// Every version the server had: (item, revision) → value (`None`: a tombstone).
    history: BTreeMap<(Key, Revision), Option<Value>>,
    /// Each item's newest revision seen on the server.
    latest: BTreeMap<Key, Revision>,
    head: Revision,
    /// How much of the server's log of applied ops was read.
    log_read: usize,
    /// Ops the server wrote, with the revision written.
    written: HashMap<OpId, Revision>,
    /// Ops whose conflict a client resolved.
    resolved: HashSet<OpId>,
    /// Counts for the figures.
    pub(super) figures: Figures,
}

/// The part of an op id before any re-push suffix (`+<rev>` re-based, `!<n>` dead-letter retry).
fn origin(op_id: &OpId) -> &str {
    op_id.as_str().split(['+', '!']).next().unwrap_or_default()
}

fn record_value(record: &Record) -> Option<Value> {
    (!record.deleted).then(|| record.value.clone())
}

fn op_value(op: &PushOp) -> Option<Value> {
    (!op.delete).then(|| op.value.clone())
}

/// Whether a change stamped `hlc` is newer than the server's `record` (an unstamped record is
/// older than any stamped change), as last-writer-wins decides.
fn local_is_newer(hlc: &Hlc, record: &Record) -> bool {
    record.hlc.as_ref().is_none_or(|theirs| hlc > theirs)
}

/// The fields (top level; `""` for the whole value) that only one side changed against `base`
/// but that `result` does not hold as that side has it.
fn one_sided_losses(
    base: Option<&Value>,
    local: Option<&Value>,
    remote: Option<&Value>,
    result: Option<&Value>,
) -> Vec<String> {
    fn object(value: Option<&Value>) -> Option<&serde_json::Map<String, Value>> {
        value.and_then(Value::as_object)
    }
    fn lost(
        name: &str,
        b: Option<&Value>,
        l: Option<&Value>,
        r: Option<&Value>,
        m: Option<&Value>,
    ) -> Option<String> {
        if l != b && r == b && m != l {
            Some(format!("{name:?} changed here only to {}", show(l)))
        } else if r != b && l == b && m != r {
            Some(format!("{name:?} changed on the server only to {}", show(r)))
        } else {
            None
        }
    }
    match (object(local), object(remote), object(result)) {
        (Some(l), Some(r), Some(m)) if base.is_none() || object(base).is_some() => {
            let b = object(base);
            union_keys(&[Some(l), Some(r), b])
                .into_iter()
                .filter_map(|name| {
                    let field = b.and_then(|b| b.get(name));
                    lost(name, field, l.get(name), r.get(name), m.get(name))
                })
                .collect()
        }
        _ => lost("", base, local, remote, result).into_iter().collect(),
    }
}

fn show(value: Option<&Value>) -> String {
    value.map_or_else(|| "(deleted)".to_owned(), Value::to_string)
}

/// The stored JSON text of `key` (`None`: absent).
fn local_text(store: &MemoryStore, key: &Key) -> Option<String> {
    let found = ready(store.load_items(&key.0, std::slice::from_ref(&key.1))).expect("memory");
    found.into_iter().next().flatten()
}

fn local_value(store: &MemoryStore, key: &Key) -> Option<Value> {
    let found = ready(store.load_items(&key.0, std::slice::from_ref(&key.1))).expect("memory");
    found.into_iter().next().flatten().map(|json| {
        serde_json::from_str(&json)
            .unwrap_or_else(|e| panic!("{key:?}: stored JSON unreadable: {e}"))
    })
}

impl Checker {
    /// A checker for `clients` clients over the items `keys`.
    pub(super) fn new(clients: usize, keys: Vec<Key>) -> Self {
        Checker {
            keys,
            clients: (0..clients).map(|_| Shadow::default()).collect(),
            history: BTreeMap::new(),
            latest: BTreeMap::new(),
            head: 0,
            log_read: 0,
            written: HashMap::new(),
            resolved: HashSet::new(),
            figures: Figures::default(),
        }
    }

    /// Client `client` made `op_id` (the change of `key` to `value`, stored as `text`) durable
    /// in its store.
    pub(super) fn on_durable_write(
        &mut self,
        client: usize,
        key: Key,
        op_id: &OpId,
        value: Option<Value>,
        text: Option<String>,
        hlc: &Hlc,
    ) {
        let shadow = &mut self.clients[client];
        let pending = Pending {
            op_id: op_id.clone(),
            origin: op_id.to_string(),
            value,
            hlc: hlc.clone(),
            text,
        };
        if shadow.outbox.insert(key.clone(), pending).is_some() {
            self.figures.fate_superseded += 1;
        }
        shadow.last_changes.insert(key, LastChange { origin: op_id.to_string(), fate: None });
    }

    /// Client `client` sends `request`: only what its outbox holds, never an op it received a
    /// conflict for (invariant 4).
    pub(super) fn on_request(&mut self, client: usize, request: &PushRequest, open: &[Conflict]) {
        let shadow = &self.clients[client];
        for op in &request.ops {
            self.figures.pushes_checked_for_open += 1;
            assert!(
                !open.iter().any(|c| c.collection == op.collection && c.id == op.id),
                "invariant 7 (an open conflict waits for the user): client {client} pushed op {} \
                 of {}/{} while its conflict is open (the change is pushed without the user's \
                 decision)",
                op.op_id,
                op.collection,
                op.id
            );
            assert!(
                !shadow.conflicted.contains(&op.op_id),
                "invariant 4: client {client} sent op {} again after it received a conflict for \
                 it (a conflict resolved once came back)",
                op.op_id
            );
            let key = (op.collection.clone(), op.id.clone());
            let Some(pending) = shadow.outbox.get(&key) else {
                panic!(
                    "client {client} pushed {} for {key:?}, which has no pending change",
                    op.op_id
                )
            };
            assert_eq!(
                (&pending.op_id, pending.value.as_ref()),
                (&op.op_id, op_value(op).as_ref()),
                "client {client} pushed something else than its pending change of {key:?}"
            );
            let known = shadow.known.get(&key).copied();
            assert_eq!(
                op.base_revision, known,
                "client {client} pushed {} with base revision {:?}, but the last version of \
                 {key:?} it took from the server is {known:?} (a false or a missed conflict)",
                op.op_id, op.base_revision
            );
        }
    }

    /// Client `client` received `response` to `request` (and will apply it).
    pub(super) fn on_push_answer(
        &mut self,
        client: usize,
        request: &PushRequest,
        response: &PushResponse,
    ) {
        let mut answers = Vec::with_capacity(request.ops.len());
        self.clients[client].bases.clear();
        for (op, result) in request.ops.iter().zip(&response.results) {
            let key = (op.collection.clone(), op.id.clone());
            self.capture_base(client, &key);
            match &result.outcome {
                PushOutcome::Applied { revision } => {
                    self.figures.acks_checked += 1;
                    self.check_acknowledged(client, op, &key, *revision);
                    let known = self.clients[client].known.entry(key).or_default();
                    *known = (*known).max(*revision);
                }
                PushOutcome::Conflict { current } => {
                    let shadow = &mut self.clients[client];
                    shadow.conflicted.insert(op.op_id.clone());
                    match current {
                        Some(record) => drop(shadow.known.insert(key, record.revision)),
                        None => drop(shadow.known.remove(&key)),
                    }
                    self.resolved.insert(op.op_id.clone());
                }
                PushOutcome::Rejected { code, message } => {
                    panic!("client {client}: op {} rejected ({code:?}: {message})", op.op_id)
                }
            }
            answers.push((op.clone(), result.outcome.clone()));
        }
        self.clients[client].last = Some(Answer::Pushed(answers));
    }

    /// Client `client` received a pulled page (and will apply it).
    pub(super) fn on_pull_answer(&mut self, client: usize, page: &PullResponse) {
        self.clients[client].bases.clear();
        for record in &page.records {
            self.capture_base(client, &(record.collection.clone(), record.id.clone()));
        }
        let shadow = &mut self.clients[client];
        for record in &page.records {
            let known = shadow.known.entry((record.collection.clone(), record.id.clone()));
            let known = known.or_default();
            *known = (*known).max(record.revision);
        }
        shadow.last = Some(Answer::Pulled(page.records.clone()));
    }

    /// Remembers the server's version of `key` at the revision `client` knows, before an answer
    /// moves it: what a merge of the answer starts from.
    fn capture_base(&mut self, client: usize, key: &Key) {
        let known = self.clients[client].known.get(key).copied();
        self.clients[client].bases.insert(key.clone(), known);
    }

    /// The base a merge of `key` in the last answer to `client` started from.
    fn base(&self, client: usize, key: &Key) -> Option<Value> {
        let known = self.clients[client].bases.get(key).copied().flatten()?;
        self.history.get(&(key.clone(), known)).cloned().flatten()
    }

    /// Invariant 2 for one answer: the server wrote `op`'s value at `revision` (now, or before
    /// with the same value) and has not lost it.
    fn check_acknowledged(&self, client: usize, op: &PushOp, key: &Key, revision: Revision) {
        let wanted = op_value(op);
        if let Some(written) = self.written.get(&op.op_id) {
            assert_eq!(
                *written, revision,
                "invariant 2: op {} was written at revision {written} but acknowledged to client \
                 {client} at {revision}",
                op.op_id
            );
        }
        if revision == 0 {
            assert!(
                wanted.is_none() && !self.latest.contains_key(key),
                "invariant 2: op {} acknowledged at revision 0 though the server has {key:?}",
                op.op_id
            );
            return;
        }
        match self.history.get(&(key.clone(), revision)) {
            Some(value) if *value == wanted => {}
            Some(value) => panic!(
                "invariant 2: op {} ({}) acknowledged to client {client} at revision {revision}, \
                 but the server's version {revision} of {key:?} is {}",
                op.op_id,
                show(wanted.as_ref()),
                show(value.as_ref())
            ),
            None => panic!(
                "invariant 2: op {} acknowledged to client {client} at revision {revision}, a \
                 version of {key:?} the server never had",
                op.op_id
            ),
        }
        let latest = self.latest.get(key).copied().unwrap_or(0);
        assert!(
            latest >= revision,
            "invariant 2: {key:?} acknowledged at {revision}, the server is at {latest}"
        );
    }

    /// After any call that may have changed the server: read its new versions and its log of
    /// written ops. Nothing may go back or disappear (invariant 2), no op may be written twice,
    /// and no op whose conflict was resolved may be written (invariant 4).
    pub(super) fn after_server_call(&mut self, server: &MemoryRemote) {
        let head = server.head();
        assert!(
            head >= self.head,
            "invariant 2: the server's head went back from {} to {head}",
            self.head
        );
        if head != self.head {
            // Only the versions written since: the records above the old head.
            let page = ready(server.pull(self.head, MAX_PULL_LIMIT)).expect("the model server");
            assert!(!page.has_more, "more than {MAX_PULL_LIMIT} writes in one call");
            self.read_versions(page.records);
            self.head = head;
        }
        let new = server.applied_ops(self.log_read);
        self.log_read += new.len();
        for (op_id, revision) in new {
            assert!(
                !self.resolved.contains(&op_id),
                "invariant 4: the server wrote op {op_id} (revision {revision}) after a client \
                 resolved its conflict (a conflict resolved once came back)"
            );
            if let Some(first) = self.written.insert(op_id.clone(), revision) {
                panic!("the server wrote op {op_id} twice: at revisions {first} and {revision}");
            }
        }
    }

    /// Records `records` in the history; none may go back (invariant 2).
    fn read_versions(&mut self, records: Vec<Record>) {
        for record in records {
            let key = (record.collection.clone(), record.id.clone());
            let before = self.latest.insert(key.clone(), record.revision).unwrap_or(0);
            assert!(
                record.revision >= before,
                "invariant 2: {key:?} went back from revision {before} to {}",
                record.revision
            );
            let value = record_value(&record);
            if let Some(seen) = self.history.insert((key.clone(), record.revision), value.clone()) {
                assert_eq!(
                    seen, value,
                    "invariant 2: version {} of {key:?} changed",
                    record.revision
                );
            }
        }
    }

    /// Compares client `client`'s outbox with the shadow, explaining each change that left it
    /// (or was re-based) by the last answer the client received (invariants 3 and 4), and its
    /// open conflicts with what it saw before (invariants 6 and 7).
    pub(super) fn observe(&mut self, client: usize, store: &MemoryStore, rules: &SyncRules) {
        let Some(last) = self.clients[client].last.take() else {
            // No answer applied since the last look: the outbox holds what the tabs wrote, the
            // conflicts are those seen (a user's resolution is told apart).
            return;
        };
        let last = Some(last);
        let open: BTreeMap<Key, Conflict> = ready(store.conflicts())
            .expect("memory")
            .into_iter()
            .map(|conflict| ((conflict.collection.clone(), conflict.id.clone()), conflict))
            .collect();
        self.check_conflicts(client, store, rules, open, last.as_ref());
        // Entries of items with an open conflict are not listed: they wait for the user.
        let actual: BTreeMap<Key, OutboxEntry> = ready(store.outbox(usize::MAX))
            .expect("memory")
            .into_iter()
            .map(|entry| ((entry.collection.clone(), entry.id.clone()), entry))
            .collect();
        for (key, entry) in &actual {
            let known = self.clients[client].outbox.get(key);
            assert!(
                known.is_some_and(|pending| pending.origin == origin(&entry.op_id)),
                "client {client}: outbox entry {} of {key:?} is no change the client made \
                 (expected {:?})",
                entry.op_id,
                known.map(|p| &p.origin)
            );
        }
        let keys: Vec<Key> = self.clients[client].outbox.keys().cloned().collect();
        for key in keys {
            if self.clients[client].open.contains_key(&key) {
                // Still pending, waiting for the user (checked in `check_conflicts`).
                continue;
            }
            let pending = self.clients[client].outbox[&key].clone();
            let strategy = rules.strategy(&key.0);
            match actual.get(&key) {
                Some(entry) if entry.op_id == pending.op_id => {
                    self.still_pending(client, &key, &pending, last.as_ref(), store);
                }
                Some(entry) => {
                    let value =
                        self.rebased(client, &key, &pending, entry, last.as_ref(), strategy, store);
                    let pending = self.clients[client].outbox.get_mut(&key).expect("pending");
                    pending.op_id = entry.op_id.clone();
                    pending.value = value;
                    pending.text = local_text(store, &key);
                }
                None => {
                    let fate = self.settled(client, &key, &pending, last.as_ref(), store, strategy);
                    let shadow = &mut self.clients[client];
                    shadow.outbox.remove(&key);
                    let change = shadow.last_changes.get_mut(&key).expect("a durable change");
                    if change.origin == pending.origin {
                        change.fate = Some(fate);
                    }
                }
            }
        }
    }

    /// The conflicts open in `client`'s store now (`open`) against those at the last look:
    /// - a new one answers a conflict of the last answer, under a strategy that asks the user,
    ///   holds the pending change as its local side and the server's version as its remote
    ///   side, and is never against a revision the user already resolved (invariant 6);
    /// - one still open keeps the item's value as the client's own last change (invariant 7);
    /// - one closed without the user: only when the server came to the same value (invariant 7).
    fn check_conflicts(
        &mut self,
        client: usize,
        store: &MemoryStore,
        rules: &SyncRules,
        open: BTreeMap<Key, Conflict>,
        last: Option<&Answer>,
    ) {
        for (key, conflict) in &open {
            let Some(pending) = self.clients[client].outbox.get(key).cloned() else {
                panic!(
                    "invariant 7: client {client}: a conflict of {key:?} is open with no pending \
                     change"
                )
            };
            let same = local_text(store, key) == pending.text;
            let local = if same { pending.value.clone() } else { local_value(store, key) };
            assert!(
                local == pending.value,
                "invariant 7 (an open conflict waits for the user): client {client}: the value \
                 of {key:?} is {} while its conflict (remote revision {}) is open, but the \
                 client's last change {} wrote {}",
                show(local.as_ref()),
                conflict.remote_revision,
                pending.op_id,
                show(pending.value.as_ref())
            );
            let before = self.clients[client].open.get(key);
            if before.is_some_and(|b| b.remote_revision == conflict.remote_revision) {
                continue;
            }
            if let Some(resolved) = self.clients[client].resolved_at.get(key) {
                assert!(
                    conflict.remote_revision > *resolved,
                    "invariant 6 (a resolved conflict never comes back): client {client}: a \
                     conflict of {key:?} against revision {} is open, but the user resolved one \
                     against revision {resolved} (pending change {})",
                    conflict.remote_revision,
                    pending.op_id
                );
            }
            let Some(Some(record)) = Self::conflict_in(last, key) else {
                panic!(
                    "client {client}: a conflict of {key:?} (remote revision {}) opened or moved \
                     with no server version of it in the last answer {last:?}",
                    conflict.remote_revision
                )
            };
            assert_eq!(
                (conflict.remote_revision, conflict.remote.as_ref()),
                (record.revision, record_value(&record).as_ref()),
                "client {client}: the open conflict of {key:?} is not against the server's \
                 version of the last answer"
            );
            if before.is_some() {
                continue;
            }
            self.figures.conflicts_opened += 1;
            assert_eq!(
                conflict.local, pending.value,
                "client {client}: the conflict of {key:?} does not hold the pending change {} as \
                 its local side",
                pending.op_id
            );
            let strategy = rules.strategy(&key.0);
            match strategy {
                ConflictStrategy::Manual => {}
                ConflictStrategy::Merge(MergeFallback::Manual) => {
                    self.check_unmergeable(client, key, &pending, &record, &conflict.fields);
                }
                ConflictStrategy::Custom => {
                    let decided = self.custom_expected(client, key, &pending, &record);
                    assert!(
                        decided.is_none(),
                        "invariant 7: client {client}: a conflict of {key:?} left to the user \
                         though the app's resolver decides {decided:?}"
                    );
                }
                _ => panic!(
                    "invariant 7: client {client}: a conflict of {key:?} (change {}) left to the \
                     user under {strategy:?}",
                    pending.op_id
                ),
            }
        }
        let closed: Vec<Key> =
            self.clients[client].open.keys().filter(|k| !open.contains_key(*k)).cloned().collect();
        for key in closed {
            // Not by the user (a resolution forgets the conflict at once): only the server
            // coming to the same value may close it.
            let local = local_value(store, &key);
            let theirs = Self::conflict_in(last, &key).flatten().map(|r| record_value(&r));
            assert!(
                theirs.as_ref() == Some(&local),
                "invariant 7 (manual conflicts are never resolved automatically): client {client}: \
                 the conflict of {key:?} closed without the user: local value {}, the server's \
                 version in the last answer {:?}",
                show(local.as_ref()),
                theirs
            );
            self.figures.conflicts_closed_same_value += 1;
        }
        self.clients[client].open = open;
    }

    /// Merge-else-ask opened a conflict: the fields it names changed on both sides, differently.
    fn check_unmergeable(
        &self,
        client: usize,
        key: &Key,
        pending: &Pending,
        record: &Record,
        fields: &[String],
    ) {
        let base = self.base(client, key);
        let remote = record_value(record);
        let field = |value: Option<&Value>, name: &str| -> Option<Value> {
            if name.is_empty() {
                value.cloned()
            } else {
                value.and_then(|v| v.get(name)).cloned()
            }
        };
        assert!(
            !fields.is_empty(),
            "client {client}: merge-else-ask opened {key:?} naming no field"
        );
        for name in fields {
            let (b, l, r) = (
                field(base.as_ref(), name),
                field(pending.value.as_ref(), name),
                field(remote.as_ref(), name),
            );
            assert!(
                l != b && r != b && l != r,
                "client {client}: merge-else-ask left field {name:?} of {key:?} to the user, but \
                 it did not change on both sides (base {b:?}, local {l:?}, remote {r:?})"
            );
        }
    }

    /// What the app's resolver decides for `pending` against `record`.
    fn custom_expected(
        &mut self,
        client: usize,
        key: &Key,
        pending: &Pending,
        record: &Record,
    ) -> Option<Resolution> {
        self.figures.resolver_checked += 1;
        let base = self.base(client, key);
        let remote = record_value(record);
        custom_decide(&ConflictCase {
            collection: &key.0,
            id: &key.1,
            base: base.as_ref(),
            local: pending.value.as_ref(),
            local_hlc: &pending.hlc,
            remote: remote.as_ref(),
            remote_hlc: record.hlc.as_ref(),
        })
    }

    /// Invariant 5: a merge of `pending` with `record` that gave `result` kept every field
    /// changed on one side only (against the base) as that side has it.
    fn check_merge(
        &mut self,
        client: usize,
        key: &Key,
        pending: &Pending,
        record: &Record,
        result: Option<&Value>,
    ) {
        self.figures.merges_checked += 1;
        let base = self.base(client, key);
        let remote = record_value(record);
        let lost = one_sided_losses(base.as_ref(), pending.value.as_ref(), remote.as_ref(), result);
        assert!(
            lost.is_empty(),
            "invariant 5 (a merge keeps what only one side changed): client {client}: merging \
             change {} of {key:?} ({}) with revision {} ({}) over the base {} gave {}, losing {}",
            pending.op_id,
            show(pending.value.as_ref()),
            record.revision,
            show(remote.as_ref()),
            show(base.as_ref()),
            show(result),
            lost.join("; ")
        );
    }

    /// The user resolved `conflict` of client `client` (the store has carried it out): the
    /// resolution is a new change pushed on the conflict's remote revision, or the server's
    /// version taken; the old change is never written afterwards; no conflict against that
    /// revision may come back (invariant 6).
    pub(super) fn on_resolution(
        &mut self,
        client: usize,
        conflict: &Conflict,
        store: &MemoryStore,
    ) {
        let key = (conflict.collection.clone(), conflict.id.clone());
        let shadow = &mut self.clients[client];
        shadow.open.remove(&key);
        let at = shadow.resolved_at.entry(key.clone()).or_default();
        *at = (*at).max(conflict.remote_revision);
        let Some(pending) = shadow.outbox.get(&key).cloned() else {
            panic!(
                "client {client}: the user resolved a conflict of {key:?} with no pending change"
            )
        };
        self.resolved.insert(pending.op_id.clone());
        let entry = ready(store.outbox(usize::MAX))
            .expect("memory")
            .into_iter()
            .find(|entry| entry.collection == key.0 && entry.id == key.1);
        let local = local_value(store, &key);
        let shadow = &mut self.clients[client];
        match entry {
            Some(entry) => {
                assert!(
                    entry.op_id != pending.op_id
                        && entry.base_revision == Some(conflict.remote_revision),
                    "invariant 6: client {client}: the resolution of {key:?} against revision {} \
                     is pushed as {} on {:?} (the old change was {})",
                    conflict.remote_revision,
                    entry.op_id,
                    entry.base_revision,
                    pending.op_id
                );
                let origin = entry.op_id.to_string();
                let resolution = Pending {
                    op_id: entry.op_id,
                    origin: origin.clone(),
                    value: local,
                    hlc: entry.hlc,
                    text: local_text(store, &key),
                };
                shadow.outbox.insert(key.clone(), resolution);
                shadow.last_changes.insert(key, LastChange { origin, fate: None });
                self.figures.user_resolution_pushed += 1;
            }
            None => {
                assert!(
                    local == conflict.remote,
                    "client {client}: the resolution of {key:?} left nothing to push, but the \
                     local value {} is not the server's {}",
                    show(local.as_ref()),
                    show(conflict.remote.as_ref())
                );
                shadow.outbox.remove(&key);
                let change = shadow.last_changes.get_mut(&key).expect("a durable change");
                change.fate = Some(Fate::UserTookServer);
                self.figures.fate_user_took_server += 1;
            }
        }
    }

    /// A change still pending under the same op id: its answer (if any) was not applied as an
    /// acknowledgement or a conflict, and its local value is still the one written.
    fn still_pending(
        &self,
        client: usize,
        key: &Key,
        pending: &Pending,
        last: Option<&Answer>,
        store: &MemoryStore,
    ) {
        if let Some(Answer::Pushed(answers)) = last {
            if let Some((_, outcome)) = answers.iter().find(|(op, _)| op.op_id == pending.op_id) {
                let invariant = match outcome {
                    PushOutcome::Conflict { .. } => "invariant 4",
                    _ => "invariant 3",
                };
                panic!(
                    "{invariant}: client {client}: change {} of {key:?} is still pending under \
                     the same op id after the answer {outcome:?} (it would be pushed again)",
                    pending.op_id
                );
            }
        }
        if local_text(store, key) == pending.text {
            return;
        }
        let local = local_value(store, key);
        assert!(
            local == pending.value,
            "client {client}: the local value of {key:?} is {} while its change {} ({}) is \
             pending: a pending change was overwritten",
            show(local.as_ref()),
            pending.op_id,
            show(pending.value.as_ref())
        );
    }

    /// The server's version a conflict about `key` was found with, from the last answer:
    /// `Some(None)` for a conflict with no server record, `None` when the answer has no conflict
    /// about `key`.
    fn conflict_in(last: Option<&Answer>, key: &Key) -> Option<Option<Record>> {
        match last? {
            Answer::Pushed(answers) => answers.iter().find_map(|(op, outcome)| match outcome {
                PushOutcome::Conflict { current } if op.collection == key.0 && op.id == key.1 => {
                    Some(current.clone())
                }
                _ => None,
            }),
            Answer::Pulled(records) => records
                .iter()
                .rev()
                .find(|r| r.collection == key.0 && r.id == key.1)
                .map(|r| Some(r.clone())),
        }
    }

    /// A change re-pushed under a new op id: that answers a conflict, and resolves it as the
    /// strategy says. The value to push next (the local value: the change's, or a merge).
    #[allow(clippy::too_many_arguments)]
    fn rebased(
        &mut self,
        client: usize,
        key: &Key,
        pending: &Pending,
        entry: &OutboxEntry,
        last: Option<&Answer>,
        strategy: ConflictStrategy,
        store: &MemoryStore,
    ) -> Option<Value> {
        let Some(current) = Self::conflict_in(last, key) else {
            panic!(
                "client {client}: change {} of {key:?} re-based as {} with no conflict in the last \
                 answer {last:?}",
                pending.op_id, entry.op_id
            )
        };
        let own = current
            .as_ref()
            .and_then(|r| r.hlc.as_ref())
            .is_some_and(|hlc| hlc.node.starts_with(&format!("c{client}.")));
        assert_eq!(
            entry.base_revision,
            current.as_ref().map(|r| r.revision),
            "client {client}: {} re-based on the wrong revision",
            entry.op_id
        );
        self.resolved.insert(pending.op_id.clone());
        self.figures.fate_rebased += 1;
        let local = local_value(store, key);
        let unchanged = |why: &str| {
            assert!(
                local == pending.value,
                "invariant 3: client {client}: {why} re-pushed change {} of {key:?} ({}) as {} but \
                 changed the \
                 local value to {}",
                pending.op_id,
                show(pending.value.as_ref()),
                entry.op_id,
                show(local.as_ref())
            );
        };
        let Some(record) = current.filter(|_| !own) else {
            // The server lost the item, or holds this device's own older version: the change
            // goes on top as it is, whatever the strategy.
            unchanged("a re-push as new or over an own version");
            return local;
        };
        match strategy {
            ConflictStrategy::ServerWins => panic!(
                "invariant 3: client {client}: server-wins re-pushed {} over the server's version \
                 {record:?}",
                pending.op_id
            ),
            ConflictStrategy::ClientWins => unchanged("client-wins"),
            ConflictStrategy::LastWriterWins => {
                assert!(
                    local_is_newer(&pending.hlc, &record),
                    "invariant 3: client {client}: last-writer-wins re-pushed change {} of {key:?} (stamped \
                     {:?}) over the newer revision {} (stamped {:?})",
                    pending.op_id,
                    pending.hlc,
                    record.revision,
                    record.hlc
                );
                unchanged("last-writer-wins");
            }
            ConflictStrategy::Merge(_) => {
                self.check_merge(client, key, pending, &record, local.as_ref());
                self.figures.fate_rebased_merged += 1;
            }
            ConflictStrategy::Manual => panic!(
                "invariant 7 (manual conflicts are never resolved automatically): client \
                 {client}: change {} of {key:?} re-pushed as {} over revision {} without the user",
                pending.op_id, entry.op_id, record.revision
            ),
            ConflictStrategy::Custom => match self.custom_expected(client, key, pending, &record) {
                Some(Resolution::KeepLocal) => unchanged("the resolver's keep-local"),
                Some(Resolution::Value(value)) => {
                    assert_eq!(
                        local, value,
                        "invariant 3: client {client}: change {} of {key:?} re-pushed with \
                         another value than the resolver's",
                        pending.op_id
                    );
                    self.figures.fate_rebased_merged += 1;
                }
                decided => panic!(
                    "invariant 3: client {client}: change {} of {key:?} re-pushed over revision \
                     {}, but the resolver decides {decided:?}",
                    pending.op_id, record.revision
                ),
            },
        }
        local
    }

    /// A change that left the outbox: why (invariant 3).
    fn settled(
        &mut self,
        client: usize,
        key: &Key,
        pending: &Pending,
        last: Option<&Answer>,
        store: &MemoryStore,
        strategy: ConflictStrategy,
    ) -> Fate {
        let server_version = match last {
            Some(Answer::Pushed(answers)) => {
                let found = answers.iter().find(|(op, _)| op.collection == key.0 && op.id == key.1);
                let Some((op, outcome)) = found else {
                    panic!(
                        "invariant 3: client {client}: change {} of {key:?} left the outbox, but \
                         the push answer says nothing about {key:?}",
                        pending.op_id
                    )
                };
                match outcome {
                    PushOutcome::Applied { .. } if op.op_id == pending.op_id => {
                        self.figures.fate_acknowledged += 1;
                        return Fate::Acknowledged;
                    }
                    PushOutcome::Applied { .. } => panic!(
                        "invariant 3: client {client}: the answer to {} removed the newer change \
                         {} of {key:?} from the outbox (it never reaches the server)",
                        op.op_id, pending.op_id
                    ),
                    PushOutcome::Conflict { current: Some(record) } => record.clone(),
                    PushOutcome::Conflict { current: None } => panic!(
                        "invariant 3: client {client}: change {} of {key:?} dropped on a conflict \
                         with no server record (it must be pushed again as new)",
                        pending.op_id
                    ),
                    PushOutcome::Rejected { .. } => unreachable!("rejections fail earlier"),
                }
            }
            Some(Answer::Pulled(records)) => {
                let found = records.iter().rev().find(|r| r.collection == key.0 && r.id == key.1);
                let Some(record) = found else {
                    panic!(
                        "invariant 3: client {client}: change {} of {key:?} left the outbox, but \
                         the pulled page has no record of {key:?}",
                        pending.op_id
                    )
                };
                record.clone()
            }
            None => panic!(
                "invariant 3: client {client}: change {} of {key:?} ({}) left the outbox with no \
                 answer from the server",
                pending.op_id,
                show(pending.value.as_ref())
            ),
        };
        let theirs = record_value(&server_version);
        if theirs == pending.value {
            self.figures.fate_same_value += 1;
            return Fate::SameValue;
        }
        let local = local_value(store, key);
        assert!(
            local == theirs,
            "client {client}: change {} of {key:?} overruled by revision {} ({}), but the local \
             value is {}",
            pending.op_id,
            server_version.revision,
            show(theirs.as_ref()),
            show(local.as_ref())
        );
        let own = format!("c{client}.");
        if server_version.hlc.as_ref().is_some_and(|hlc| hlc.node.starts_with(&own)) {
            self.figures.fate_overruled_by_own_change += 1;
        }
        // Found by this simulation once: a lost answer, then a newer edit of the same item, and
        // server-wins let the device's own older edit overrule the newer one.
        assert_eq!(
            self.figures.fate_overruled_by_own_change, 0,
            "client {client}: change {} of {key:?} overruled by this client's own older version \
             (revision {})",
            pending.op_id, server_version.revision
        );
        let dropped = |strategy: &str| -> ! {
            panic!(
                "invariant 3: client {client} ({strategy}): change {} of {key:?} ({}) dropped on a \
                 conflict with revision {} ({}); it never reaches the server",
                pending.op_id,
                show(pending.value.as_ref()),
                server_version.revision,
                show(theirs.as_ref())
            )
        };
        let fate = match strategy {
            ConflictStrategy::ServerWins => Fate::Overruled,
            ConflictStrategy::ClientWins => dropped("client-wins"),
            ConflictStrategy::LastWriterWins => {
                if local_is_newer(&pending.hlc, &server_version) {
                    dropped("last-writer-wins, the change is newer")
                }
                Fate::Overruled
            }
            ConflictStrategy::Merge(_) => {
                self.check_merge(client, key, pending, &server_version, local.as_ref());
                Fate::MergedToServer
            }
            ConflictStrategy::Manual => dropped("manual, without the user"),
            ConflictStrategy::Custom => {
                match self.custom_expected(client, key, pending, &server_version) {
                    Some(Resolution::KeepRemote) => Fate::Overruled,
                    Some(Resolution::Value(value)) if value == theirs => Fate::MergedToServer,
                    _ => dropped("the app's resolver decides otherwise"),
                }
            }
        };
        match fate {
            Fate::Overruled => self.figures.fate_overruled += 1,
            _ => self.figures.fate_merged_to_server += 1,
        }
        fate
    }

    /// After quiescence: every outbox drained, every last durable change reached the server (or
    /// was overruled under server-wins), and every replica equals the server (invariants 1, 3).
    pub(super) fn at_quiescence(
        &mut self,
        stores: &[&MemoryStore],
        server: &MemoryRemote,
        collections: &[&str],
    ) {
        self.after_server_call(server);
        // Every record, as the server has it now: nothing lost, nothing went back.
        for key in &self.keys {
            let record = server.record(&key.0, &key.1);
            assert_eq!(
                record.as_ref().map(|r| r.revision),
                self.latest.get(key).copied(),
                "invariant 2: the server's record of {key:?} is not its newest version"
            );
            if let Some(record) = record {
                assert_eq!(
                    self.history.get(&(key.clone(), record.revision)),
                    Some(&record_value(&record)),
                    "invariant 2: the server's record of {key:?} changed in place"
                );
            }
        }
        for (client, store) in stores.iter().enumerate() {
            let shadow = &self.clients[client];
            assert!(
                shadow.outbox.is_empty(),
                "invariant 3: client {client} still has pending changes after quiescence: {:?}",
                shadow.outbox
            );
            assert_eq!(ready(store.outbox_len()).expect("memory"), 0);
            assert!(ready(store.dead_letters()).expect("memory").is_empty());
            let open = ready(store.conflicts()).expect("memory");
            assert!(
                open.is_empty(),
                "client {client} still has open conflicts after quiescence: {open:?}"
            );
            for (key, change) in &shadow.last_changes {
                assert!(
                    change.fate.is_some(),
                    "invariant 3: client {client}: the last change {} of {key:?} never reached \
                     the server",
                    change.origin
                );
            }
            let mut differences = String::new();
            for collection in collections {
                let theirs = server.items(collection);
                let ours: BTreeMap<String, Value> = store
                    .snapshot(collection)
                    .into_iter()
                    .map(|(id, json)| (id, serde_json::from_str(&json).expect("JSON")))
                    .collect();
                for id in
                    theirs.keys().chain(ours.keys()).collect::<std::collections::BTreeSet<_>>()
                {
                    let (a, b) = (ours.get(id), theirs.get(id));
                    if a != b {
                        let _ = write!(
                            differences,
                            " {collection}/{id}: client {} server {};",
                            show(a),
                            show(b)
                        );
                    }
                }
            }
            self.figures.convergence_checks += 1;
            if !differences.is_empty() {
                self.figures.convergence_failures += 1;
                panic!(
                    "invariant 1: after quiescence client {client} differs from the server:\
                     {differences}"
                );
            }
        }
    }
}
