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
//! sync, the client's real outbox is compared with the shadow: each change that left it must
//! have left for a reason the last answer gives (acknowledged; a conflict with the same value;
//! a conflict the server won under server-wins), and each change re-based on a new revision must
//! answer a conflict. The invariants:
//! 1. after quiescence every replica equals the server ([`Checker::at_quiescence`]);
//! 2. every op the server acknowledged is on the server: the acknowledged revision holds the op's
//!    value in the server's history, and no record ever goes back or disappears;
//! 3. every change durable in a client's store reaches the server, unless a newer change of the
//!    same item in the same client replaced it; under server-wins it may instead be overruled
//!    by the server's version (and counted so);
//! 4. no conflict resolved once comes back: an op answered with a conflict is never sent again,
//!    and an op whose conflict was resolved (overruled, or re-pushed under a new op id) is
//!    never written by the server afterwards.
//!
//! A broken invariant panics with what broke; the simulation adds the seed and how to replay it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;

use persist_engine::ConflictStrategy;
use persist_protocol::{OpId, PullResponse, PushOp, PushOutcome, PushRequest, PushResponse};
use persist_protocol::{Record, Revision, MAX_PULL_LIMIT};
use serde_json::Value;

use super::{ready, Figures, Key};
use crate::local::{LocalStore, MemoryStore, OutboxEntry, SyncRules};
use crate::remote::{MemoryRemote, Remote};

/// A change durable in a client's store whose fate is not known yet (its outbox entry).
#[derive(Debug, Clone)]
struct Pending {
    /// The op id the outbox entry has now (`origin`, or a re-based id derived from it).
    op_id: OpId,
    /// The op id the change was written with.
    origin: String,
    /// The value written (`None`: a delete).
    value: Option<Value>,
}

/// How a durable change ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// The server applied it (or had it already): it reached the server.
    Acknowledged,
    /// A conflict found the server already holding the same value.
    SameValue,
    /// Server-wins: the server's version replaced it.
    Overruled,
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

fn show(value: Option<&Value>) -> String {
    value.map_or_else(|| "(deleted)".to_owned(), Value::to_string)
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

    /// Client `client` made `op_id` (the change of `key` to `value`) durable in its store.
    pub(super) fn on_durable_write(
        &mut self,
        client: usize,
        key: Key,
        op_id: &OpId,
        value: Option<Value>,
    ) {
        let shadow = &mut self.clients[client];
        let pending = Pending { op_id: op_id.clone(), origin: op_id.to_string(), value };
        if shadow.outbox.insert(key.clone(), pending).is_some() {
            self.figures.fate_superseded += 1;
        }
        shadow.last_changes.insert(key, LastChange { origin: op_id.to_string(), fate: None });
    }

    /// Client `client` sends `request`: only what its outbox holds, never an op it received a
    /// conflict for (invariant 4).
    pub(super) fn on_request(&mut self, client: usize, request: &PushRequest) {
        let shadow = &self.clients[client];
        for op in &request.ops {
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
        for (op, result) in request.ops.iter().zip(&response.results) {
            let key = (op.collection.clone(), op.id.clone());
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
        let shadow = &mut self.clients[client];
        for record in &page.records {
            let known = shadow.known.entry((record.collection.clone(), record.id.clone()));
            let known = known.or_default();
            *known = (*known).max(record.revision);
        }
        shadow.last = Some(Answer::Pulled(page.records.clone()));
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
    /// (or was re-based) by the last answer the client received (invariants 3 and 4).
    pub(super) fn observe(&mut self, client: usize, store: &MemoryStore, rules: &SyncRules) {
        let Some(last) = self.clients[client].last.take() else {
            // No answer applied since the last look: the outbox holds what the tabs wrote.
            return;
        };
        let last = Some(last);
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
            let pending = self.clients[client].outbox[&key].clone();
            let strategy = rules.strategy(&key.0);
            match actual.get(&key) {
                Some(entry) if entry.op_id == pending.op_id => {
                    self.still_pending(client, &key, &pending, last.as_ref(), store);
                }
                Some(entry) => {
                    self.rebased(client, &key, &pending, entry, last.as_ref(), strategy);
                    self.clients[client].outbox.get_mut(&key).expect("pending").op_id =
                        entry.op_id.clone();
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

    /// A change re-pushed under a new op id: that answers a conflict, and resolves it.
    fn rebased(
        &mut self,
        client: usize,
        key: &Key,
        pending: &Pending,
        entry: &OutboxEntry,
        last: Option<&Answer>,
        strategy: ConflictStrategy,
    ) {
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
        assert!(
            strategy == ConflictStrategy::ClientWins || current.is_none() || own,
            "client {client}: server-wins re-pushed {} over the server's version {current:?}",
            pending.op_id
        );
        assert_eq!(
            entry.base_revision,
            current.as_ref().map(|r| r.revision),
            "client {client}: {} re-based on the wrong revision",
            entry.op_id
        );
        self.resolved.insert(pending.op_id.clone());
        self.figures.fate_rebased += 1;
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
        assert!(
            strategy == ConflictStrategy::ServerWins,
            "invariant 3: client {client} (client-wins): change {} of {key:?} ({}) dropped on a \
             conflict with revision {} ({}); it never reaches the server",
            pending.op_id,
            show(pending.value.as_ref()),
            server_version.revision,
            show(theirs.as_ref())
        );
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
        self.figures.fate_overruled += 1;
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
        Fate::Overruled
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
