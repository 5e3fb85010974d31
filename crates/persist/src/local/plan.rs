//! What a push answer or a pulled record means for one item on this device, as pure functions:
//! both stores read the item's state, ask [`plan_pushed`] or [`plan_pulled`], and carry the
//! [`ItemPlan`] out in one transaction with the rest of the batch.
//!
//! The rules, per item (an item has at most one outbox entry, its latest change):
//! - **applied**: the server has the change; the known revision becomes the answer's. The outbox
//!   entry leaves only if it is still the change that was pushed (a newer local change made
//!   during the push stays, and is pushed next on top of the new revision).
//! - **conflict**: the server changed the item since the change's base. Server-wins takes the
//!   server's version (the local change is *overruled*); client-wins keeps the local value and
//!   re-pushes it on top of the server's revision, under a new op id (the old one has its answer
//!   remembered). A conflict where the server has no record at all (it lost the item, or was
//!   reset) re-pushes the local value as new whatever the strategy: nothing is lost.
//! - **rejected**: the op can never succeed; it moves to the dead letters (kept, shown, retried
//!   or discarded by the user), and the local value stays.
//! - **pulled**: a record at or below the known revision is already here (our own change coming
//!   back, or a page read twice) and is skipped. A newer one replaces the local item, unless a
//!   local change is pending: then it is a conflict, decided as above; equal values are not a
//!   conflict, they just settle the entry.

use std::collections::BTreeMap;

use persist_engine::ConflictStrategy;
use persist_protocol::{OpId, PushOutcome, Record, Revision};
use serde::{Deserialize, Serialize};

use super::{ItemSync, OutboxEntry};

/// What one item looks like locally before the plan.
#[derive(Debug, Clone, Default)]
pub(crate) struct ItemState {
    /// Its outbox entry, if a change is pending.
    pub(crate) entry: Option<OutboxEntry>,
    /// What this device knows of the server's copy.
    pub(crate) known: Option<ItemSync>,
    /// Its local value as JSON text (`None` when absent).
    pub(crate) local: Option<String>,
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

/// How the plan shows up in the sync's report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Nothing,
    Acknowledged,
    Changed,
    Conflict { overruled: bool },
    DeadLettered,
}

/// Everything to do for one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ItemPlan {
    pub(crate) item: ItemWrite,
    pub(crate) entry: EntryWrite,
    pub(crate) known: KnownWrite,
    pub(crate) dead: Option<DeadLetter>,
    pub(crate) outcome: Outcome,
}

impl ItemPlan {
    fn nothing() -> Self {
        ItemPlan {
            item: ItemWrite::Keep,
            entry: EntryWrite::Keep,
            known: KnownWrite::Keep,
            dead: None,
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

fn known_of(record: &Record) -> ItemSync {
    ItemSync { revision: record.revision, hlc: record.hlc.clone() }
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

/// Whether the local value and the record say the same (parsed, so spacing and key order do not
/// matter).
fn same_value(local: Option<&str>, record: &Record) -> bool {
    match (local, record.deleted) {
        (None, true) => true,
        (Some(text), false) => {
            serde_json::from_str::<serde_json::Value>(text).is_ok_and(|value| value == record.value)
        }
        _ => false,
    }
}

/// A conflict with the server's `current` record over the pending `entry`.
fn conflict(
    entry: &OutboxEntry,
    current: Option<&Record>,
    local: Option<&str>,
    strategy: ConflictStrategy,
) -> ItemPlan {
    let Some(current) = current else {
        // The server has nothing: push the local value again as new, whatever the strategy.
        return ItemPlan {
            entry: EntryWrite::Replace(rebased(entry, None)),
            known: KnownWrite::Clear,
            outcome: Outcome::Conflict { overruled: false },
            ..ItemPlan::nothing()
        };
    };
    if same_value(if entry.delete { None } else { local }, current) {
        return ItemPlan {
            entry: EntryWrite::Remove,
            known: KnownWrite::Set(known_of(current)),
            outcome: Outcome::Acknowledged,
            ..ItemPlan::nothing()
        };
    }
    match strategy {
        ConflictStrategy::ServerWins => ItemPlan {
            item: item_of(current),
            entry: EntryWrite::Remove,
            known: KnownWrite::Set(known_of(current)),
            dead: None,
            outcome: Outcome::Conflict { overruled: true },
        },
        ConflictStrategy::ClientWins => ItemPlan {
            entry: EntryWrite::Replace(rebased(entry, Some(current.revision))),
            known: KnownWrite::Set(known_of(current)),
            outcome: Outcome::Conflict { overruled: false },
            ..ItemPlan::nothing()
        },
    }
}

/// The plan for the server's answer to the pushed change `pushed`.
pub(crate) fn plan_pushed(
    pushed: &OutboxEntry,
    outcome: &PushOutcome,
    state: &ItemState,
    strategy: ConflictStrategy,
) -> ItemPlan {
    let still_pending = state.entry.as_ref().is_some_and(|e| e.op_id == pushed.op_id);
    match outcome {
        PushOutcome::Applied { revision } => {
            let revision = state.known.as_ref().map_or(*revision, |k| k.revision.max(*revision));
            ItemPlan {
                entry: if still_pending { EntryWrite::Remove } else { EntryWrite::Keep },
                known: KnownWrite::Set(ItemSync { revision, hlc: Some(pushed.hlc.clone()) }),
                outcome: Outcome::Acknowledged,
                ..ItemPlan::nothing()
            }
        }
        PushOutcome::Conflict { current } => match &state.entry {
            // The change (or a newer one of the same item) is still pending: decide.
            Some(entry) => conflict(entry, current.as_ref(), state.local.as_deref(), strategy),
            // Settled meanwhile (discarded): just learn the server's revision.
            None => ItemPlan {
                known: current.as_ref().map_or(KnownWrite::Keep, |c| KnownWrite::Set(known_of(c))),
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
pub(crate) fn plan_pulled(
    record: &Record,
    state: &ItemState,
    strategy: ConflictStrategy,
) -> ItemPlan {
    if state.known.as_ref().is_some_and(|known| known.revision >= record.revision) {
        return ItemPlan::nothing();
    }
    match &state.entry {
        Some(entry) => conflict(entry, Some(record), state.local.as_deref(), strategy),
        None if same_value(state.local.as_deref(), record) => {
            ItemPlan { known: KnownWrite::Set(known_of(record)), ..ItemPlan::nothing() }
        }
        None => ItemPlan {
            item: item_of(record),
            known: KnownWrite::Set(known_of(record)),
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
    /// Conflicts found.
    pub conflicts: usize,
    /// Local changes replaced by the server's version (server-wins).
    pub overruled: usize,
    /// Changes moved to the dead letters.
    pub dead_lettered: usize,
}

impl SyncApplied {
    /// Counts `plan` for the item `collection`/`id`.
    pub(crate) fn add(&mut self, collection: &str, id: &str, plan: &ItemPlan) {
        match plan.outcome {
            Outcome::Nothing | Outcome::Changed => {}
            Outcome::Acknowledged => self.acknowledged += 1,
            Outcome::Conflict { overruled } => {
                self.conflicts += 1;
                self.overruled += usize::from(overruled);
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

    /// How a conflict over an item of `collection` with the server's `current` version is
    /// decided: this device's own earlier version never overrules a newer local change.
    pub(crate) fn decide(&self, collection: &str, current: Option<&Record>) -> ConflictStrategy {
        let own = match (&self.device, current.and_then(|record| record.hlc.as_ref())) {
            (Some(device), Some(stamp)) => {
                stamp.node.strip_prefix(device.as_str()).is_some_and(|rest| rest.starts_with('.'))
            }
            _ => false,
        };
        if own {
            ConflictStrategy::ClientWins
        } else {
            self.strategy(collection)
        }
    }
}

/// What the server said, to apply to the device in one transaction.
#[derive(Debug, Clone, Copy)]
pub enum SyncBatch<'a> {
    /// The answers to a push: each change as it was pushed, with its outcome.
    Pushed(&'a [(OutboxEntry, PushOutcome)]),
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
                answers.iter().map(|(e, _)| (e.collection.clone(), e.id.clone())).collect()
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
        report.add(&key.0, &key.1, &plan);
        plans.push((key, plan));
    };
    match batch {
        SyncBatch::Pushed(answers) => {
            for (pushed, outcome) in answers.iter() {
                let key = (pushed.collection.clone(), pushed.id.clone());
                let current = match outcome {
                    PushOutcome::Conflict { current } => current.as_ref(),
                    _ => None,
                };
                let strategy = rules.decide(&key.0, current);
                step(key, &|state| plan_pushed(pushed, outcome, state, strategy));
            }
        }
        SyncBatch::Pulled { records, .. } => {
            for record in records.iter() {
                let key = (record.collection.clone(), record.id.clone());
                let strategy = rules.decide(&key.0, Some(record));
                step(key, &|state| plan_pulled(record, state, strategy));
            }
        }
    }
    (plans, report)
}

#[cfg(test)]
mod tests {
    use persist_protocol::{ErrorCode, Hlc};
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
            known: known.map(|revision| ItemSync { revision, hlc: None }),
            local: Some(local.to_owned()),
        }
    }

    const SW: ConflictStrategy = ConflictStrategy::ServerWins;
    const CW: ConflictStrategy = ConflictStrategy::ClientWins;

    #[test]
    fn an_acknowledged_change_leaves_the_outbox_only_if_no_newer_change_replaced_it() {
        let applied = PushOutcome::Applied { revision: 7 };
        let plan = plan_pushed(&entry("t-1", false), &applied, &pending("t-1", "1", None), SW);
        assert_eq!(plan.entry, EntryWrite::Remove);
        assert_eq!(
            plan.known,
            KnownWrite::Set(ItemSync { revision: 7, hlc: Some(entry("t-1", false).hlc) })
        );
        let newer = plan_pushed(&entry("t-1", false), &applied, &pending("t-2", "2", None), SW);
        assert_eq!(newer.entry, EntryWrite::Keep, "the newer change is pushed next");
        assert!(matches!(newer.known, KnownWrite::Set(ItemSync { revision: 7, .. })));
    }

    #[test]
    fn server_wins_takes_the_servers_version_and_counts_the_local_change_overruled() {
        let conflict = PushOutcome::Conflict { current: Some(record(9, Some(json!({"x": 2})))) };
        let plan = plan_pushed(
            &entry("t-1", false),
            &conflict,
            &pending("t-1", r#"{"x":1}"#, Some(3)),
            SW,
        );
        assert_eq!(plan.item, ItemWrite::Put(r#"{"x":2}"#.into()));
        assert_eq!(plan.entry, EntryWrite::Remove);
        assert_eq!(plan.outcome, Outcome::Conflict { overruled: true });
    }

    #[test]
    fn client_wins_re_pushes_on_the_servers_revision_under_a_new_op_id() {
        let conflict = PushOutcome::Conflict { current: Some(record(9, Some(json!(2)))) };
        let plan = plan_pushed(&entry("t-1", false), &conflict, &pending("t-1", "1", Some(3)), CW);
        assert_eq!(plan.item, ItemWrite::Keep);
        let EntryWrite::Replace(again) = plan.entry else { panic!("re-pushed: {plan:?}") };
        assert_eq!((again.op_id.as_str(), again.base_revision), ("t-1+9", Some(9)));
        assert!(matches!(plan.known, KnownWrite::Set(ItemSync { revision: 9, .. })));
    }

    #[test]
    fn a_server_that_lost_the_item_gets_the_local_value_again_under_any_strategy() {
        for strategy in [SW, CW] {
            let lost = PushOutcome::Conflict { current: None };
            let plan =
                plan_pushed(&entry("t-1", false), &lost, &pending("t-1", "1", Some(3)), strategy);
            assert_eq!(plan.item, ItemWrite::Keep, "{strategy:?}");
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
        assert_eq!(rules.decide("files", Some(&own)), CW, "own version: push on top");
        let mut other = own.clone();
        other.hlc = Some(Hlc { wall_ms: 4, counter: 0, node: "dev10.s1".into() });
        assert_eq!(rules.decide("files", Some(&other)), SW, "another device's: the strategy");
        let conflict = PushOutcome::Conflict { current: Some(own) };
        let mut batch_states = BTreeMap::new();
        batch_states.insert(("files".to_owned(), "a".to_owned()), pending("t-3", "3", Some(1)));
        let answers = [(entry("t-3", false), conflict)];
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
            &conflict,
            &pending("t-1", r#"{"b":2,"a":1}"#, Some(3)),
            SW,
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
        let plan = plan_pushed(&entry("t-1", false), &rejected, &pending("t-1", "1", None), SW);
        assert_eq!((plan.item, plan.entry.clone()), (ItemWrite::Keep, EntryWrite::Remove));
        assert!(plan.dead.is_some_and(|dead| dead.message.contains("too large")));
    }

    #[test]
    fn pulled_records_already_known_are_skipped_and_new_ones_applied() {
        let known = ItemState {
            known: Some(ItemSync { revision: 5, hlc: None }),
            local: Some("1".into()),
            ..ItemState::default()
        };
        assert_eq!(plan_pulled(&record(5, Some(json!(1))), &known, SW), ItemPlan::nothing());
        let plan = plan_pulled(&record(6, None), &known, SW);
        assert_eq!((plan.item, plan.outcome), (ItemWrite::Delete, Outcome::Changed));
    }

    #[test]
    fn a_pulled_record_over_a_pending_change_is_a_conflict_decided_by_strategy() {
        let state = pending("t-1", "1", Some(2));
        let server = plan_pulled(&record(6, Some(json!(2))), &state, SW);
        assert_eq!((server.item, server.entry), (ItemWrite::Put("2".into()), EntryWrite::Remove));
        let client = plan_pulled(&record(6, Some(json!(2))), &state, CW);
        assert_eq!(client.item, ItemWrite::Keep);
        assert!(matches!(client.entry, EntryWrite::Replace(ref e) if e.base_revision == Some(6)));
    }
}
