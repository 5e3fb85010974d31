//! What a push answer or a pulled record means for one item on this device, as pure functions:
//! both stores read the item's state, ask [`plan_pushed`] or [`plan_pulled`], and carry the
//! [`ItemPlan`] out in one transaction with the rest of the batch.
//!
//! The rules, per item (an item has at most one outbox entry, its latest change):
//! - **applied**: the server has the change; the known revision becomes the answer's (with the
//!   pushed value as the merge base, for collections that merge or ask). The outbox entry leaves
//!   only if it is still the change that was pushed (a newer local change made during the push
//!   stays, and is pushed next on top of the new revision).
//! - **conflict**: the server changed the item since the change's base. Equal values are no
//!   conflict; a server with no record at all gets the local value again as new; a version this
//!   device wrote itself never overrules its newer change. Otherwise the collection's
//!   [`ConflictStrategy`] decides: server-wins takes the server's version (the local change is
//!   *overruled*); client-wins re-pushes the local value on top of the server's revision under a
//!   new op id; last-writer-wins does one or the other by the hybrid logical clock stamps; merge
//!   runs [`merge3`] against the base kept in the item's [`ItemSync`] and pushes the result on
//!   top (fields changed on both sides go to its fallback); custom asks the app's [`Resolver`];
//!   manual (and a fallback or resolver that declines) opens a [`Conflict`] for the user: the
//!   item, its entry and its known revision stay as they are, and the entry is not pushed until
//!   [`plan_resolution`] settles it on the server revision the user saw.
//! - **an open conflict** is never decided here: a newer server version only updates its remote
//!   side (an equal one closes it).
//! - **rejected**: the op can never succeed; it moves to the dead letters (kept, shown, retried
//!   or discarded by the user), and the local value stays.
//! - **pulled**: a record at or below the known revision is already here (our own change coming
//!   back, or a page read twice) and is skipped. A newer one replaces the local item, unless a
//!   local change is pending: then it is a conflict, decided as above.
//! - **queued**: an item with a local change not in the store yet ([`SyncRules::queued`]) is left
//!   alone; its change is pushed on the old revision and decided then.

use std::collections::BTreeMap;
use std::rc::Rc;

use persist_engine::{ConflictStrategy, MergeFallback};
use persist_protocol::{Hlc, OpId, PushOutcome, Record, Revision};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::conflict::{Conflict, ConflictCase, Resolution, Resolver};
use super::{ItemSync, OutboxEntry};
use crate::merge::{merge3, Side};

/// What one item looks like locally before the plan.
#[derive(Debug, Clone, Default)]
pub(crate) struct ItemState {
    /// Its outbox entry, if a change is pending.
    pub(crate) entry: Option<OutboxEntry>,
    /// What this device knows of the server's copy.
    pub(crate) known: Option<ItemSync>,
    /// Its local value as JSON text (`None` when absent).
    pub(crate) local: Option<String>,
    /// Its open conflict, if the user has one to decide.
    pub(crate) conflict: Option<Conflict>,
}

/// A write to the item itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ItemWrite {
    Keep,
    Put(String),
    Delete,
}

/// A write to the item's outbox entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum EntryWrite {
    Keep,
    Remove,
    Replace(OutboxEntry),
}

/// A write to the item's known server revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KnownWrite {
    Keep,
    Set(ItemSync),
    /// The server has no record of the item: a re-push goes as new.
    Clear,
}

/// A write to the item's open conflict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ConflictWrite {
    Keep,
    Set(Box<Conflict>),
    Remove,
}

/// How a conflict was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decided {
    /// The server's version replaced the local change.
    Overruled,
    /// The local change goes on top of the server's version.
    KeptLocal,
    /// Both merged into a new version.
    Merged,
    /// Left to the user (a new open conflict).
    Manual,
}

/// How the plan shows up in the sync's report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Nothing,
    Acknowledged,
    Changed,
    Conflict(Decided),
    DeadLettered,
}

/// Everything to do for one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ItemPlan {
    pub(crate) item: ItemWrite,
    pub(crate) entry: EntryWrite,
    pub(crate) known: KnownWrite,
    pub(crate) dead: Option<DeadLetter>,
    pub(crate) conflict: ConflictWrite,
    pub(crate) outcome: Outcome,
}

impl ItemPlan {
    fn nothing() -> Self {
        ItemPlan {
            item: ItemWrite::Keep,
            entry: EntryWrite::Keep,
            known: KnownWrite::Keep,
            dead: None,
            conflict: ConflictWrite::Keep,
            outcome: Outcome::Nothing,
        }
    }
}

/// A change the server rejected for good, kept until the user retries or discards it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The change as it was pushed.
    pub entry: OutboxEntry,
    /// The server's reason.
    pub message: String,
    /// How many times it was retried from the dead letters already.
    #[serde(default)]
    pub retries: u32,
}

/// The known revision of `record`; with its value as the base of later merges when `keep_base`.
fn known_of(record: &Record, keep_base: bool) -> ItemSync {
    ItemSync {
        revision: record.revision,
        hlc: record.hlc.clone(),
        base: (keep_base && !record.deleted).then(|| record.value.to_string()),
    }
}

fn item_of(record: &Record) -> ItemWrite {
    if record.deleted {
        ItemWrite::Delete
    } else {
        ItemWrite::Put(record.value.to_string())
    }
}

/// `entry` re-based on `base` (`None`: as new), under a new op id derived from the old one, so
/// the server does not answer it with the remembered conflict.
fn rebased(entry: &OutboxEntry, base: Option<Revision>) -> OutboxEntry {
    let mut entry = entry.clone();
    entry.op_id = OpId::new(format!("{}+{}", entry.op_id, base.unwrap_or(0)));
    entry.base_revision = base;
    entry
}

fn parse(text: Option<&str>) -> Option<Value> {
    text.and_then(|text| serde_json::from_str(text).ok())
}

fn value_of(record: &Record) -> Option<Value> {
    (!record.deleted).then(|| record.value.clone())
}

/// Whether the local value and the record say the same (parsed, so spacing and key order do not
/// matter).
fn same_value(local: Option<&str>, record: &Record) -> bool {
    match (local, record.deleted) {
        (None, true) => true,
        (Some(text), false) => {
            serde_json::from_str::<Value>(text).is_ok_and(|value| value == record.value)
        }
        _ => false,
    }
}

/// How a conflict of one item is decided: its collection's strategy, whether the collection
/// keeps merge bases, and the app's resolver if it has one.
#[derive(Debug, Clone, Copy)]
pub(crate) struct How<'a> {
    pub(crate) strategy: ConflictStrategy,
    pub(crate) keep_base: bool,
    pub(crate) resolver: Option<&'a Resolver>,
}

impl How<'_> {
    /// A plain strategy (tests).
    #[cfg(test)]
    pub(crate) fn of(strategy: ConflictStrategy) -> How<'static> {
        How { strategy, keep_base: strategy.needs_base(), resolver: None }
    }
}

/// The write that closes the item's open conflict, if it has one (the item is settled).
fn closed(state: &ItemState) -> ConflictWrite {
    if state.conflict.is_some() {
        ConflictWrite::Remove
    } else {
        ConflictWrite::Keep
    }
}

/// The server's version replaces the local change.
fn take_remote(current: &Record, state: &ItemState, how: &How<'_>, outcome: Decided) -> ItemPlan {
    ItemPlan {
        item: item_of(current),
        entry: EntryWrite::Remove,
        known: KnownWrite::Set(known_of(current, how.keep_base)),
        dead: None,
        conflict: closed(state),
        outcome: Outcome::Conflict(outcome),
    }
}

/// `value` (the local one, or a merge) pushed on top of the server's version as `entry`.
fn push_on_top(
    entry: OutboxEntry,
    value: Option<&Value>,
    local_unchanged: bool,
    current: &Record,
    state: &ItemState,
    how: &How<'_>,
    outcome: Decided,
) -> ItemPlan {
    let item = match (local_unchanged, value) {
        (true, _) => ItemWrite::Keep,
        (false, Some(value)) => ItemWrite::Put(value.to_string()),
        (false, None) => ItemWrite::Delete,
    };
    let entry = OutboxEntry { delete: value.is_none(), ..entry };
    ItemPlan {
        item,
        entry: EntryWrite::Replace(entry),
        known: KnownWrite::Set(known_of(current, how.keep_base)),
        dead: None,
        conflict: closed(state),
        outcome: Outcome::Conflict(outcome),
    }
}

/// `chosen` as the item's new version: the server's if it equals it, else pushed on top.
fn settle_with(
    chosen: Option<Value>,
    entry: OutboxEntry,
    local: Option<&Value>,
    current: &Record,
    state: &ItemState,
    how: &How<'_>,
    outcome: Decided,
) -> ItemPlan {
    if chosen == value_of(current) {
        let outcome = if chosen.as_ref() == local { Decided::Merged } else { outcome };
        return take_remote(current, state, how, outcome);
    }
    let unchanged = chosen.as_ref() == local;
    push_on_top(entry, chosen.as_ref(), unchanged, current, state, how, outcome)
}

/// Whether the local change is newer than the server's version on the hybrid logical clock (an
/// unstamped server version, written by a CodeForge client, is older than any stamped change).
fn local_is_newer(entry_hlc: &Hlc, current: &Record) -> bool {
    current.hlc.as_ref().is_none_or(|theirs| entry_hlc > theirs)
}

/// A new (or updated) open conflict: nothing changes but the conflict record.
fn ask_user(
    entry: &OutboxEntry,
    current: &Record,
    state: &ItemState,
    local: Option<Value>,
    fields: Vec<String>,
) -> ItemPlan {
    let base = parse(state.known.as_ref().and_then(|k| k.base.as_deref()));
    let outcome = if state.conflict.is_some() {
        Outcome::Nothing
    } else {
        Outcome::Conflict(Decided::Manual)
    };
    let (base, local, local_hlc) = match &state.conflict {
        // Still the same user decision: keep what it was found with, refresh the server side.
        Some(open) => (open.base.clone(), open.local.clone(), open.local_hlc.clone()),
        None => (base, local, entry.hlc.clone()),
    };
    ItemPlan {
        conflict: ConflictWrite::Set(Box::new(Conflict {
            collection: current.collection.clone(),
            id: current.id.clone(),
            base,
            local,
            local_hlc,
            remote: value_of(current),
            remote_revision: current.revision,
            remote_hlc: current.hlc.clone(),
            fields,
        })),
        outcome,
        ..ItemPlan::nothing()
    }
}

/// A conflict with the server's `current` record over the pending `entry`.
fn conflict(
    entry: &OutboxEntry,
    current: Option<&Record>,
    state: &ItemState,
    how: &How<'_>,
) -> ItemPlan {
    let Some(current) = current else {
        // The server has nothing: push the local value again as new, whatever the strategy.
        return ItemPlan {
            entry: EntryWrite::Replace(rebased(entry, None)),
            known: KnownWrite::Clear,
            outcome: Outcome::Conflict(Decided::KeptLocal),
            ..ItemPlan::nothing()
        };
    };
    let local_text = if entry.delete { None } else { state.local.as_deref() };
    if same_value(local_text, current) {
        return ItemPlan {
            entry: EntryWrite::Remove,
            known: KnownWrite::Set(known_of(current, how.keep_base)),
            conflict: closed(state),
            outcome: Outcome::Acknowledged,
            ..ItemPlan::nothing()
        };
    }
    let local = parse(local_text);
    let remote = value_of(current);
    let base = parse(state.known.as_ref().and_then(|k| k.base.as_deref()));
    let unmergeable = || match merge3(base.as_ref(), local.as_ref(), remote.as_ref(), None) {
        Ok(_) => Vec::new(),
        Err(fields) => fields,
    };
    if state.conflict.is_some() {
        // The user has not decided yet: a newer server version only updates the question.
        return ask_user(entry, current, state, local.clone(), unmergeable());
    }
    let rebase = || rebased(entry, Some(current.revision));
    let lww_side = if local_is_newer(&entry.hlc, current) { Side::Local } else { Side::Remote };
    let keep_local =
        |outcome| push_on_top(rebase(), local.as_ref(), true, current, state, how, outcome);
    match how.strategy {
        ConflictStrategy::ServerWins => take_remote(current, state, how, Decided::Overruled),
        ConflictStrategy::ClientWins => keep_local(Decided::KeptLocal),
        ConflictStrategy::LastWriterWins => match lww_side {
            Side::Local => keep_local(Decided::KeptLocal),
            Side::Remote => take_remote(current, state, how, Decided::Overruled),
        },
        ConflictStrategy::Merge(fallback) => {
            let prefer = match fallback {
                MergeFallback::Manual => None,
                MergeFallback::ServerWins => Some(Side::Remote),
                MergeFallback::ClientWins => Some(Side::Local),
                MergeFallback::LastWriterWins => Some(lww_side),
            };
            match merge3(base.as_ref(), local.as_ref(), remote.as_ref(), prefer) {
                Ok(merged) => settle_with(
                    merged,
                    rebase(),
                    local.as_ref(),
                    current,
                    state,
                    how,
                    Decided::Merged,
                ),
                Err(fields) => ask_user(entry, current, state, local.clone(), fields),
            }
        }
        ConflictStrategy::Manual => ask_user(entry, current, state, local.clone(), unmergeable()),
        ConflictStrategy::Custom => {
            let case = ConflictCase {
                collection: &current.collection,
                id: &current.id,
                base: base.as_ref(),
                local: local.as_ref(),
                local_hlc: &entry.hlc,
                remote: remote.as_ref(),
                remote_hlc: current.hlc.as_ref(),
            };
            match how.resolver.and_then(|resolver| resolver.decide(&case)) {
                Some(Resolution::KeepLocal) => keep_local(Decided::KeptLocal),
                Some(Resolution::KeepRemote) => {
                    take_remote(current, state, how, Decided::Overruled)
                }
                Some(Resolution::Value(value)) => settle_with(
                    value,
                    rebase(),
                    local.as_ref(),
                    current,
                    state,
                    how,
                    Decided::Merged,
                ),
                None => ask_user(entry, current, state, local.clone(), unmergeable()),
            }
        }
    }
}

/// The plan for the user's `resolution` of the open conflict of an item: the chosen value is
/// written and pushed on top of the server's version the conflict saw, as a new change stamped
/// `stamp` (so the server accepts it and the conflict cannot come back); the conflict closes.
pub(crate) fn plan_resolution(
    open: &Conflict,
    state: &ItemState,
    resolution: &Resolution,
    stamp: &Hlc,
    keep_base: bool,
) -> ItemPlan {
    let how = How { strategy: ConflictStrategy::Manual, keep_base, resolver: None };
    let current = Record {
        collection: open.collection.clone(),
        id: open.id.clone(),
        deleted: open.remote.is_none(),
        value: open.remote.clone().unwrap_or_default(),
        revision: open.remote_revision,
        updated_at: 0,
        hlc: open.remote_hlc.clone(),
    };
    let local = parse(state.local.as_deref());
    let entry = OutboxEntry {
        collection: open.collection.clone(),
        id: open.id.clone(),
        delete: local.is_none(),
        serial: state.entry.as_ref().map_or(0, |e| e.serial),
        op_id: OpId::new(format!("{}-{}-{}-resolved", stamp.node, stamp.wall_ms, stamp.counter)),
        base_revision: Some(open.remote_revision),
        hlc: stamp.clone(),
    };
    let state = ItemState { conflict: Some(open.clone()), ..state.clone() };
    let chosen = match resolution {
        Resolution::KeepLocal => local.clone(),
        Resolution::KeepRemote => open.remote.clone(),
        Resolution::Value(value) => value.clone(),
    };
    settle_with(chosen, entry, local.as_ref(), &current, &state, &how, Decided::Merged)
}

/// The plan for the server's answer to the pushed change `pushed` (whose value was `value`).
pub(crate) fn plan_pushed(
    pushed: &OutboxEntry,
    value: Option<&str>,
    outcome: &PushOutcome,
    state: &ItemState,
    how: &How<'_>,
) -> ItemPlan {
    let still_pending = state.entry.as_ref().is_some_and(|e| e.op_id == pushed.op_id);
    match outcome {
        PushOutcome::Applied { revision } => {
            // What the server now has is what both sides agree on: the base of later merges. A
            // newer version already known stays known, with its own stamp and base.
            let known = match state.known.as_ref().filter(|k| k.revision > *revision) {
                Some(newer) => newer.clone(),
                None => ItemSync {
                    revision: *revision,
                    hlc: Some(pushed.hlc.clone()),
                    base: if how.keep_base && !pushed.delete {
                        value.map(str::to_owned)
                    } else {
                        None
                    },
                },
            };
            ItemPlan {
                entry: if still_pending { EntryWrite::Remove } else { EntryWrite::Keep },
                known: KnownWrite::Set(known),
                outcome: Outcome::Acknowledged,
                ..ItemPlan::nothing()
            }
        }
        PushOutcome::Conflict { current } => match &state.entry {
            // The change (or a newer one of the same item) is still pending: decide.
            Some(entry) => conflict(entry, current.as_ref(), state, how),
            // Settled meanwhile (discarded): just learn the server's revision.
            None => ItemPlan {
                known: current
                    .as_ref()
                    .map_or(KnownWrite::Keep, |c| KnownWrite::Set(known_of(c, how.keep_base))),
                ..ItemPlan::nothing()
            },
        },
        PushOutcome::Rejected { code, message } => ItemPlan {
            entry: if still_pending { EntryWrite::Remove } else { EntryWrite::Keep },
            dead: Some(DeadLetter {
                entry: pushed.clone(),
                message: format!("{code:?}: {message}"),
                retries: 0,
            }),
            outcome: Outcome::DeadLettered,
            ..ItemPlan::nothing()
        },
    }
}

/// The plan for a record pulled from the server.
pub(crate) fn plan_pulled(record: &Record, state: &ItemState, how: &How<'_>) -> ItemPlan {
    if state.known.as_ref().is_some_and(|known| known.revision >= record.revision) {
        return ItemPlan::nothing();
    }
    match &state.entry {
        Some(entry) => conflict(entry, Some(record), state, how),
        None if same_value(state.local.as_deref(), record) => ItemPlan {
            known: KnownWrite::Set(known_of(record, how.keep_base)),
            ..ItemPlan::nothing()
        },
        None => ItemPlan {
            item: item_of(record),
            known: KnownWrite::Set(known_of(record, how.keep_base)),
            outcome: Outcome::Changed,
            ..ItemPlan::nothing()
        },
    }
}

/// Where a batch of plans leaves the sync's report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncApplied {
    /// Items whose local value changed (`Some(json)` put, `None` deleted), to apply to the
    /// yewdux stores and announce to the other tabs.
    pub changed: Vec<(String, String, Option<String>)>,
    /// Changes the server acknowledged.
    pub acknowledged: usize,
    /// Conflicts found (however they were decided).
    pub conflicts: usize,
    /// Local changes replaced by the server's version.
    pub overruled: usize,
    /// Conflicts merged automatically (three-way merge, or the app's resolver's value).
    pub merged: usize,
    /// Conflicts left to the user (new open conflicts).
    pub manual: usize,
    /// Changes moved to the dead letters.
    pub dead_lettered: usize,
}

impl SyncApplied {
    /// Counts `plan` for the item `collection`/`id`.
    pub(crate) fn add(&mut self, collection: &str, id: &str, plan: &ItemPlan) {
        match plan.outcome {
            Outcome::Nothing | Outcome::Changed => {}
            Outcome::Acknowledged => self.acknowledged += 1,
            Outcome::Conflict(decided) => {
                self.conflicts += 1;
                match decided {
                    Decided::Overruled => self.overruled += 1,
                    Decided::Merged => self.merged += 1,
                    Decided::Manual => self.manual += 1,
                    Decided::KeptLocal => {}
                }
            }
            Outcome::DeadLettered => self.dead_lettered += 1,
        }
        let value = match &plan.item {
            ItemWrite::Keep => return,
            ItemWrite::Put(json) => Some(json.clone()),
            ItemWrite::Delete => None,
        };
        self.changed.push((collection.to_owned(), id.to_owned(), value));
    }

    /// Adds another report to this one.
    pub fn merge(&mut self, other: SyncApplied) {
        self.changed.extend(other.changed);
        self.acknowledged += other.acknowledged;
        self.conflicts += other.conflicts;
        self.overruled += other.overruled;
        self.merged += other.merged;
        self.manual += other.manual;
        self.dead_lettered += other.dead_lettered;
    }
}

/// The conflict strategy of each collection, as the sync run reads it from the configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncRules {
    /// The strategy of collections not listed.
    pub default: ConflictStrategy,
    /// Per-collection strategies.
    pub collections: BTreeMap<String, ConflictStrategy>,
    /// The app's resolvers, per collection, for [`ConflictStrategy::Custom`].
    pub resolvers: BTreeMap<String, Resolver>,
    /// Whether an item has a local change not in the store yet (queued in the engine, or being
    /// written): a pulled version or a push conflict of such an item is left alone (nothing
    /// written, the known revision kept), because the change about to land was made from what
    /// the item was before; it is pushed on the old revision, conflicts, and is decided then with
    /// the newest local value. Deciding now would let that change overwrite the decision (and a
    /// merge's fields from the server) when it lands.
    pub queued: Option<QueuedKeys>,
    /// This device's prefix of HLC node names (`<device>.<session>`). A conflict with a version
    /// this device wrote itself is its own earlier change whose answer was lost (or whose push
    /// was delayed) before a newer local change replaced it: the newer change is pushed on top,
    /// whatever the strategy. Without it, server-wins would let the older edit overrule the
    /// newer one.
    pub device: Option<String>,
}

impl SyncRules {
    /// The strategy of `collection`.
    pub fn strategy(&self, collection: &str) -> ConflictStrategy {
        self.collections.get(collection).copied().unwrap_or(self.default)
    }

    /// Whether `collection`/`id` has a local change the store does not have yet.
    pub fn is_queued(&self, collection: &str, id: &str) -> bool {
        self.queued.as_ref().is_some_and(|queued| (queued.0)(collection, id))
    }

    /// Whether items of `collection` keep the last agreed version (the base of a merge).
    pub fn keeps_base(&self, collection: &str) -> bool {
        self.strategy(collection).needs_base()
    }

    /// How a conflict over an item of `collection` with the server's `current` version is
    /// decided: this device's own earlier version never overrules a newer local change.
    pub(crate) fn decide(&self, collection: &str, current: Option<&Record>) -> How<'_> {
        let own = match (&self.device, current.and_then(|record| record.hlc.as_ref())) {
            (Some(device), Some(stamp)) => {
                stamp.node.strip_prefix(device.as_str()).is_some_and(|rest| rest.starts_with('.'))
            }
            _ => false,
        };
        let strategy = self.strategy(collection);
        How {
            strategy: if own { ConflictStrategy::ClientWins } else { strategy },
            keep_base: strategy.needs_base(),
            resolver: self.resolvers.get(collection),
        }
    }
}

/// Tells whether an item has a local change not in the store yet (see [`SyncRules::queued`]).
#[derive(Clone)]
pub struct QueuedKeys(Rc<QueuedFn>);

type QueuedFn = dyn Fn(&str, &str) -> bool;

impl QueuedKeys {
    /// A predicate over `(collection, id)`.
    pub fn new(queued: impl Fn(&str, &str) -> bool + 'static) -> Self {
        QueuedKeys(Rc::new(queued))
    }
}

impl std::fmt::Debug for QueuedKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("QueuedKeys(..)")
    }
}

impl PartialEq for QueuedKeys {
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for QueuedKeys {}

/// The server's answer to one pushed change.
#[derive(Debug, Clone, PartialEq)]
pub struct PushAnswer {
    /// The change as it was pushed.
    pub entry: OutboxEntry,
    /// The value it pushed (JSON text; `None` for a delete).
    pub value: Option<String>,
    /// What the server did with it.
    pub outcome: PushOutcome,
}

/// What the server said, to apply to the device in one transaction.
#[derive(Debug, Clone, Copy)]
pub enum SyncBatch<'a> {
    /// The answers to a push.
    Pushed(&'a [PushAnswer]),
    /// A pulled page, and the checkpoint to store with it.
    Pulled {
        /// The page's records.
        records: &'a [Record],
        /// The revision the next pull starts after.
        checkpoint: Revision,
    },
}

/// An item's key: `(collection, id)`.
pub(crate) type Key = (String, String);

impl SyncBatch<'_> {
    /// The items the batch touches, each once.
    pub(crate) fn keys(&self) -> Vec<Key> {
        let mut keys: Vec<Key> = match self {
            SyncBatch::Pushed(answers) => {
                answers.iter().map(|a| (a.entry.collection.clone(), a.entry.id.clone())).collect()
            }
            SyncBatch::Pulled { records, .. } => {
                records.iter().map(|r| (r.collection.clone(), r.id.clone())).collect()
            }
        };
        keys.sort_unstable();
        keys.dedup();
        keys
    }
}

/// Carries `plan` into `state`, so a later plan for the same item sees its result.
pub(crate) fn advance(state: &mut ItemState, plan: &ItemPlan) {
    match &plan.item {
        ItemWrite::Keep => {}
        ItemWrite::Put(json) => state.local = Some(json.clone()),
        ItemWrite::Delete => state.local = None,
    }
    match &plan.entry {
        EntryWrite::Keep => {}
        EntryWrite::Remove => state.entry = None,
        EntryWrite::Replace(entry) => state.entry = Some(entry.clone()),
    }
    match &plan.known {
        KnownWrite::Keep => {}
        KnownWrite::Set(known) => state.known = Some(known.clone()),
        KnownWrite::Clear => state.known = None,
    }
    match &plan.conflict {
        ConflictWrite::Keep => {}
        ConflictWrite::Set(open) => state.conflict = Some((**open).clone()),
        ConflictWrite::Remove => state.conflict = None,
    }
}

/// Plans every item of `batch` from `states` (which the plans update, so an item met twice sees
/// the first plan's result), and the report.
pub(crate) fn plan_batch(
    batch: &SyncBatch<'_>,
    rules: &SyncRules,
    states: &mut BTreeMap<Key, ItemState>,
) -> (Vec<(Key, ItemPlan)>, SyncApplied) {
    let mut plans = Vec::new();
    let mut report = SyncApplied::default();
    let mut step = |key: Key, plan_for: &dyn Fn(&ItemState) -> ItemPlan| {
        let state = states.entry(key.clone()).or_default();
        let plan = plan_for(state);
        advance(state, &plan);
        report.add(&key.0, &key.1, &plan);
        plans.push((key, plan));
    };
    match batch {
        SyncBatch::Pushed(answers) => {
            for answer in answers.iter() {
                let key = (answer.entry.collection.clone(), answer.entry.id.clone());
                let current = match &answer.outcome {
                    PushOutcome::Conflict { current } => current.as_ref(),
                    _ => None,
                };
                if current.is_some() && rules.is_queued(&key.0, &key.1) {
                    // Decided when the queued change is pushed (see `SyncRules::queued`).
                    continue;
                }
                let how = rules.decide(&key.0, current);
                step(key, &|state| {
                    plan_pushed(
                        &answer.entry,
                        answer.value.as_deref(),
                        &answer.outcome,
                        state,
                        &how,
                    )
                });
            }
        }
        SyncBatch::Pulled { records, .. } => {
            for record in records.iter() {
                let key = (record.collection.clone(), record.id.clone());
                if rules.is_queued(&key.0, &key.1) {
                    continue;
                }
                let how = rules.decide(&key.0, Some(record));
                step(key, &|state| plan_pulled(record, state, &how));
            }
        }
    }
    (plans, report)
}

#[cfg(test)]
mod tests {
    use persist_protocol::ErrorCode;
    use serde_json::json;

    use super::*;

    fn entry(op: &str, delete: bool) -> OutboxEntry {
        OutboxEntry {
            collection: "files".into(),
            id: "a".into(),
            delete,
            serial: 1,
            op_id: OpId::new(op),
            base_revision: None,
            hlc: Hlc { wall_ms: 5, counter: 0, node: "tab".into() },
        }
    }

    fn record(revision: Revision, value: Option<serde_json::Value>) -> Record {
        Record {
            collection: "files".into(),
            id: "a".into(),
            deleted: value.is_none(),
            value: value.unwrap_or_default(),
            revision,
            updated_at: 0,
            hlc: None,
        }
    }

    fn pending(op: &str, local: &str, known: Option<Revision>) -> ItemState {
        ItemState {
            entry: Some(entry(op, false)),
            known: known.map(|revision| ItemSync { revision, hlc: None, base: None }),
            conflict: None,
            local: Some(local.to_owned()),
        }
    }

    const SW: How<'static> =
        How { strategy: ConflictStrategy::ServerWins, keep_base: false, resolver: None };
    const CW: How<'static> =
        How { strategy: ConflictStrategy::ClientWins, keep_base: false, resolver: None };

    #[test]
    fn an_acknowledged_change_leaves_the_outbox_only_if_no_newer_change_replaced_it() {
        let applied = PushOutcome::Applied { revision: 7 };
        let plan =
            plan_pushed(&entry("t-1", false), None, &applied, &pending("t-1", "1", None), &SW);
        assert_eq!(plan.entry, EntryWrite::Remove);
        assert_eq!(
            plan.known,
            KnownWrite::Set(ItemSync {
                revision: 7,
                hlc: Some(entry("t-1", false).hlc),
                base: None
            })
        );
        let newer =
            plan_pushed(&entry("t-1", false), None, &applied, &pending("t-2", "2", None), &SW);
        assert_eq!(newer.entry, EntryWrite::Keep, "the newer change is pushed next");
        assert!(matches!(newer.known, KnownWrite::Set(ItemSync { revision: 7, .. })));
    }

    #[test]
    fn server_wins_takes_the_servers_version_and_counts_the_local_change_overruled() {
        let conflict = PushOutcome::Conflict { current: Some(record(9, Some(json!({"x": 2})))) };
        let plan = plan_pushed(
            &entry("t-1", false),
            None,
            &conflict,
            &pending("t-1", r#"{"x":1}"#, Some(3)),
            &SW,
        );
        assert_eq!(plan.item, ItemWrite::Put(r#"{"x":2}"#.into()));
        assert_eq!(plan.entry, EntryWrite::Remove);
        assert_eq!(plan.outcome, Outcome::Conflict(Decided::Overruled));
    }

    #[test]
    fn client_wins_re_pushes_on_the_servers_revision_under_a_new_op_id() {
        let conflict = PushOutcome::Conflict { current: Some(record(9, Some(json!(2)))) };
        let plan =
            plan_pushed(&entry("t-1", false), None, &conflict, &pending("t-1", "1", Some(3)), &CW);
        assert_eq!(plan.item, ItemWrite::Keep);
        let EntryWrite::Replace(again) = plan.entry else { panic!("re-pushed: {plan:?}") };
        assert_eq!((again.op_id.as_str(), again.base_revision), ("t-1+9", Some(9)));
        assert!(matches!(plan.known, KnownWrite::Set(ItemSync { revision: 9, .. })));
    }

    #[test]
    fn a_server_that_lost_the_item_gets_the_local_value_again_under_any_strategy() {
        for strategy in [SW, CW] {
            let name = strategy.strategy;
            let lost = PushOutcome::Conflict { current: None };
            let plan = plan_pushed(
                &entry("t-1", false),
                None,
                &lost,
                &pending("t-1", "1", Some(3)),
                &strategy,
            );
            assert_eq!(plan.item, ItemWrite::Keep, "{name:?}");
            assert_eq!(plan.known, KnownWrite::Clear);
            let EntryWrite::Replace(again) = plan.entry else { panic!("re-pushed") };
            assert_eq!(again.base_revision, None);
        }
    }

    #[test]
    fn this_devices_own_earlier_version_never_overrules_its_newer_change() {
        let rules = SyncRules { device: Some("dev1".into()), ..SyncRules::default() };
        let mut own = record(9, Some(json!("older edit")));
        own.hlc = Some(Hlc { wall_ms: 4, counter: 0, node: "dev1.s2".into() });
        assert_eq!(rules.decide("files", Some(&own)).strategy, CW.strategy, "own: push on top");
        let mut other = own.clone();
        other.hlc = Some(Hlc { wall_ms: 4, counter: 0, node: "dev10.s1".into() });
        assert_eq!(
            rules.decide("files", Some(&other)).strategy,
            SW.strategy,
            "another's: strategy"
        );
        let conflict = PushOutcome::Conflict { current: Some(own) };
        let mut batch_states = BTreeMap::new();
        batch_states.insert(("files".to_owned(), "a".to_owned()), pending("t-3", "3", Some(1)));
        let answers = [PushAnswer { entry: entry("t-3", false), value: None, outcome: conflict }];
        let (plans, report) = plan_batch(&SyncBatch::Pushed(&answers), &rules, &mut batch_states);
        assert_eq!(plans[0].1.item, ItemWrite::Keep, "the newer local edit stays");
        assert!(
            matches!(plans[0].1.entry, EntryWrite::Replace(ref e) if e.base_revision == Some(9))
        );
        assert_eq!(report.overruled, 0);
    }

    #[test]
    fn a_conflict_with_the_same_value_is_no_conflict() {
        let conflict =
            PushOutcome::Conflict { current: Some(record(9, Some(json!({"a": 1, "b": 2})))) };
        let plan = plan_pushed(
            &entry("t-1", false),
            None,
            &conflict,
            &pending("t-1", r#"{"b":2,"a":1}"#, Some(3)),
            &SW,
        );
        assert_eq!(
            (plan.item, plan.entry, plan.outcome),
            (ItemWrite::Keep, EntryWrite::Remove, Outcome::Acknowledged)
        );
    }

    #[test]
    fn a_rejected_change_goes_to_the_dead_letters_and_keeps_the_local_value() {
        let rejected =
            PushOutcome::Rejected { code: ErrorCode::InvalidInput, message: "too large".into() };
        let plan =
            plan_pushed(&entry("t-1", false), None, &rejected, &pending("t-1", "1", None), &SW);
        assert_eq!((plan.item, plan.entry.clone()), (ItemWrite::Keep, EntryWrite::Remove));
        assert!(plan.dead.is_some_and(|dead| dead.message.contains("too large")));
    }

    #[test]
    fn pulled_records_already_known_are_skipped_and_new_ones_applied() {
        let known = ItemState {
            known: Some(ItemSync { revision: 5, hlc: None, base: None }),
            local: Some("1".into()),
            ..ItemState::default()
        };
        assert_eq!(plan_pulled(&record(5, Some(json!(1))), &known, &SW), ItemPlan::nothing());
        let plan = plan_pulled(&record(6, None), &known, &SW);
        assert_eq!((plan.item, plan.outcome), (ItemWrite::Delete, Outcome::Changed));
    }

    #[test]
    fn a_pulled_record_over_a_pending_change_is_a_conflict_decided_by_strategy() {
        let state = pending("t-1", "1", Some(2));
        let server = plan_pulled(&record(6, Some(json!(2))), &state, &SW);
        assert_eq!((server.item, server.entry), (ItemWrite::Put("2".into()), EntryWrite::Remove));
        let client = plan_pulled(&record(6, Some(json!(2))), &state, &CW);
        assert_eq!(client.item, ItemWrite::Keep);
        assert!(matches!(client.entry, EntryWrite::Replace(ref e) if e.base_revision == Some(6)));
    }

    /// A pending change of `local` made from revision 3, whose agreed value was `base`.
    fn pending_on(local: serde_json::Value, base: serde_json::Value) -> ItemState {
        ItemState {
            entry: Some(entry("t-1", false)),
            known: Some(ItemSync { revision: 3, hlc: None, base: Some(base.to_string()) }),
            local: Some(local.to_string()),
            conflict: None,
        }
    }

    fn how(strategy: ConflictStrategy) -> How<'static> {
        How::of(strategy)
    }

    fn stamped(revision: Revision, value: serde_json::Value, wall_ms: u64) -> Record {
        let mut record = record(revision, Some(value));
        record.hlc = Some(Hlc { wall_ms, counter: 0, node: "other.s".into() });
        record
    }

    #[test]
    fn last_writer_wins_compares_hybrid_clock_stamps_not_arrival() {
        let lww = how(ConflictStrategy::LastWriterWins);
        let state = pending("t-1", "1", Some(3));
        // The local change is stamped wall 5 (see `entry`).
        let older = plan_pulled(&stamped(9, json!(2), 4), &state, &lww);
        assert_eq!(older.item, ItemWrite::Keep, "the server's older version loses");
        assert!(matches!(older.entry, EntryWrite::Replace(ref e) if e.base_revision == Some(9)));
        let newer = plan_pulled(&stamped(9, json!(2), 6), &state, &lww);
        assert_eq!(newer.item, ItemWrite::Put("2".into()), "the server's newer version wins");
        assert_eq!(newer.outcome, Outcome::Conflict(Decided::Overruled));
    }

    #[test]
    fn merge_takes_each_sides_own_field_changes_and_pushes_the_result_on_top() {
        let base = json!({"title": "a", "body": "x"});
        let state = pending_on(json!({"title": "mine", "body": "x"}), base);
        let theirs = stamped(9, json!({"title": "a", "body": "theirs"}), 6);
        let plan =
            plan_pulled(&theirs, &state, &how(ConflictStrategy::Merge(MergeFallback::Manual)));
        let merged = json!({"title": "mine", "body": "theirs"});
        assert_eq!(plan.item, ItemWrite::Put(merged.to_string()));
        let EntryWrite::Replace(again) = &plan.entry else { panic!("pushed on top: {plan:?}") };
        assert_eq!((again.base_revision, again.delete), (Some(9), false));
        let KnownWrite::Set(known) = &plan.known else { panic!("known moves: {plan:?}") };
        assert_eq!(known.revision, 9);
        assert_eq!(known.base.as_deref(), Some(theirs.value.to_string().as_str()));
        assert_eq!(
            (plan.outcome, &plan.conflict),
            (Outcome::Conflict(Decided::Merged), &ConflictWrite::Keep)
        );
    }

    #[test]
    fn the_same_field_changed_on_both_sides_is_left_to_the_user_with_local_remote_and_base() {
        let base = json!({"title": "a", "body": "x"});
        let state = pending_on(json!({"title": "mine", "body": "x"}), base.clone());
        let theirs = stamped(9, json!({"title": "theirs", "body": "x"}), 6);
        let plan =
            plan_pulled(&theirs, &state, &how(ConflictStrategy::Merge(MergeFallback::Manual)));
        assert_eq!(
            (plan.item, plan.entry, plan.known),
            (ItemWrite::Keep, EntryWrite::Keep, KnownWrite::Keep)
        );
        let ConflictWrite::Set(open) = plan.conflict else { panic!("a conflict for the user") };
        assert_eq!(open.base, Some(base));
        assert_eq!(open.local, Some(json!({"title": "mine", "body": "x"})));
        assert_eq!((open.remote, open.remote_revision), (Some(theirs.value), 9));
        assert_eq!(open.fields, vec!["title".to_owned()]);
        assert_eq!(plan.outcome, Outcome::Conflict(Decided::Manual));
    }

    #[test]
    fn a_merge_fallback_decides_only_the_fields_changed_on_both_sides() {
        let base = json!({"title": "a", "body": "x", "tag": 1});
        let state = pending_on(json!({"title": "mine", "body": "x", "tag": 2}), base);
        let theirs = stamped(9, json!({"title": "theirs", "body": "y", "tag": 1}), 6);
        let server =
            plan_pulled(&theirs, &state, &how(ConflictStrategy::Merge(MergeFallback::ServerWins)));
        let merged = json!({"title": "theirs", "body": "y", "tag": 2});
        assert_eq!(server.item, ItemWrite::Put(merged.to_string()));
        let client =
            plan_pulled(&theirs, &state, &how(ConflictStrategy::Merge(MergeFallback::ClientWins)));
        let merged = json!({"title": "mine", "body": "y", "tag": 2});
        assert_eq!(client.item, ItemWrite::Put(merged.to_string()));
    }

    #[test]
    fn an_open_conflict_is_never_decided_automatically_a_newer_server_version_only_updates_it() {
        let base = json!({"title": "a"});
        let mut state = pending_on(json!({"title": "mine"}), base);
        let first = stamped(9, json!({"title": "theirs"}), 6);
        let plan = plan_pulled(&first, &state, &how(ConflictStrategy::Manual));
        advance(&mut state, &plan);
        assert!(state.conflict.is_some());
        // Whatever the strategy is now, a newer server version keeps the question open.
        for strategy in ConflictStrategy::ALL {
            let newer = stamped(12, json!({"title": "theirs again"}), 7);
            let plan = plan_pulled(&newer, &state, &how(strategy));
            assert_eq!(
                (&plan.item, &plan.entry, &plan.known),
                (&ItemWrite::Keep, &EntryWrite::Keep, &KnownWrite::Keep),
                "{strategy:?}"
            );
            let ConflictWrite::Set(open) = &plan.conflict else { panic!("updated: {strategy:?}") };
            assert_eq!(
                (open.remote_revision, open.local.clone()),
                (12, Some(json!({"title": "mine"})))
            );
            assert_eq!(plan.outcome, Outcome::Nothing, "counted once");
        }
    }

    #[test]
    fn a_resolution_is_pushed_on_the_revision_the_conflict_saw_and_closes_it() {
        let mut state = pending_on(json!({"title": "mine"}), json!({"title": "a"}));
        let theirs = stamped(9, json!({"title": "theirs"}), 6);
        let plan = plan_pulled(&theirs, &state, &how(ConflictStrategy::Manual));
        advance(&mut state, &plan);
        let open = state.conflict.clone().expect("open");
        let stamp = Hlc { wall_ms: 50, counter: 1, node: "dev.s".into() };
        let keep = plan_resolution(&open, &state, &Resolution::KeepLocal, &stamp, true);
        assert_eq!(keep.item, ItemWrite::Keep);
        let EntryWrite::Replace(entry) = &keep.entry else { panic!("pushed: {keep:?}") };
        assert_eq!((entry.base_revision, &entry.hlc), (Some(9), &stamp));
        assert_eq!(keep.conflict, ConflictWrite::Remove);
        let remote = plan_resolution(&open, &state, &Resolution::KeepRemote, &stamp, true);
        assert_eq!(remote.item, ItemWrite::Put(theirs.value.to_string()));
        assert_eq!((remote.entry, remote.conflict), (EntryWrite::Remove, ConflictWrite::Remove));
        let edited = json!({"title": "both"});
        let value =
            plan_resolution(&open, &state, &Resolution::Value(Some(edited.clone())), &stamp, true);
        assert_eq!(value.item, ItemWrite::Put(edited.to_string()));
        assert!(matches!(value.entry, EntryWrite::Replace(ref e) if e.base_revision == Some(9)));
        let deleted = plan_resolution(&open, &state, &Resolution::Value(None), &stamp, true);
        assert!(matches!(deleted.entry, EntryWrite::Replace(ref e) if e.delete));
    }

    #[test]
    fn an_acknowledged_push_keeps_its_value_as_the_merge_base_only_where_merging() {
        let applied = PushOutcome::Applied { revision: 7 };
        let state = pending("t-1", "1", None);
        let merge = how(ConflictStrategy::Merge(MergeFallback::Manual));
        let kept = plan_pushed(&entry("t-1", false), Some("1"), &applied, &state, &merge);
        assert!(
            matches!(kept.known, KnownWrite::Set(ItemSync { base: Some(ref b), .. }) if b == "1")
        );
        let plain = plan_pushed(&entry("t-1", false), Some("1"), &applied, &state, &SW);
        assert!(matches!(plain.known, KnownWrite::Set(ItemSync { base: None, .. })));
    }

    #[test]
    fn an_apps_resolver_decides_or_leaves_the_conflict_to_the_user() {
        let resolver = Resolver::new(|case| {
            let sum = case.local?.as_i64()? + case.remote?.as_i64()?;
            Some(Resolution::Value(Some(json!(sum))))
        });
        let custom =
            How { strategy: ConflictStrategy::Custom, keep_base: true, resolver: Some(&resolver) };
        let plan = plan_pulled(&stamped(9, json!(2), 6), &pending("t-1", "1", Some(3)), &custom);
        assert_eq!(plan.item, ItemWrite::Put("3".into()));
        let text = plan_pulled(&stamped(9, json!("x"), 6), &pending("t-1", "1", Some(3)), &custom);
        assert!(matches!(text.conflict, ConflictWrite::Set(_)), "None: the user decides");
        let none = How { resolver: None, ..custom };
        let plan = plan_pulled(&stamped(9, json!(2), 6), &pending("t-1", "1", Some(3)), &none);
        assert!(matches!(plan.conflict, ConflictWrite::Set(_)), "no resolver: the user decides");
    }

    #[test]
    fn an_item_with_a_change_still_queued_is_decided_only_when_that_change_is_pushed() {
        let rules = SyncRules {
            default: ConflictStrategy::Merge(MergeFallback::Manual),
            queued: Some(QueuedKeys::new(|collection, id| collection == "files" && id == "a")),
            ..SyncRules::default()
        };
        let key = ("files".to_owned(), "a".to_owned());
        let mut states = BTreeMap::new();
        states.insert(key, pending_on(json!({"t": "mine"}), json!({"t": "base"})));
        let records = [stamped(9, json!({"t": "base", "u": 1}), 6)];
        let pulled = SyncBatch::Pulled { records: &records, checkpoint: 9 };
        let (plans, report) = plan_batch(&pulled, &rules, &mut states);
        assert!(plans.is_empty(), "nothing written: the queued change would overwrite it");
        assert_eq!(report, SyncApplied::default());
        let answers = [PushAnswer {
            entry: entry("t-1", false),
            value: None,
            outcome: PushOutcome::Conflict { current: Some(records[0].clone()) },
        }];
        let (plans, _) = plan_batch(&SyncBatch::Pushed(&answers), &rules, &mut states);
        assert!(plans.is_empty(), "a push conflict waits for the queued change too");
        let other = SyncRules { queued: None, ..rules };
        let (plans, _) = plan_batch(&pulled, &other, &mut states);
        assert_eq!(plans.len(), 1, "without a queued change it is merged now");
    }

    #[test]
    fn an_acknowledged_push_never_pairs_an_older_revision_with_a_newer_base() {
        let applied = PushOutcome::Applied { revision: 7 };
        let mut state = pending("t-1", "1", None);
        let newer = ItemSync { revision: 9, hlc: None, base: Some("\"newer\"".into()) };
        state.known = Some(newer.clone());
        let merge = how(ConflictStrategy::Merge(MergeFallback::Manual));
        let plan = plan_pushed(&entry("t-1", false), Some("1"), &applied, &state, &merge);
        assert_eq!(plan.known, KnownWrite::Set(newer), "revision 9 keeps its own base");
    }
}
