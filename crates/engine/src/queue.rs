//! The keyed coalescing write queue: one waiting op per key, in order of first enqueue, each
//! with its own debounce deadline and retry state.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::action::WriteError;
use crate::config::PersistConfig;
use crate::item::{Change, ItemKey};
use crate::time::Time;

/// A change waiting to be written, or in flight.
#[derive(Debug, Clone)]
pub(crate) struct PendingOp {
    pub(crate) key: ItemKey,
    pub(crate) change: Change,
    /// Serial of `change`.
    pub(crate) serial: u64,
    /// When `change` was made, on the engine's hybrid logical clock: wall milliseconds and
    /// counter (the node is the engine's; kept apart so an enqueue copies no string).
    pub(crate) stamp: (u64, u32),
    /// Queue position: the serial of the key's first change since it was last durable.
    pub(crate) position: u64,
    pub(crate) first_change: Time,
    pub(crate) last_change: Time,
    /// Failed write attempts so far.
    pub(crate) attempt: u32,
    /// Backoff: not written before this time (unless flushed).
    pub(crate) not_before: Option<Time>,
    pub(crate) last_error: Option<WriteError>,
    /// Failed permanently on its own: written again only by a flush or a new change.
    pub(crate) parked: bool,
    /// Failed permanently in a batch with others: written alone to find the culprit.
    pub(crate) isolate: bool,
}

impl PendingOp {
    /// When the op becomes due by itself, given its collection's config; `None` if parked.
    pub(crate) fn due_at(&self, config: &PersistConfig) -> Option<Time> {
        if self.parked {
            return None;
        }
        let timing = config.collection(&self.key.collection);
        let debounced =
            (self.last_change + timing.debounce).min(self.first_change + timing.max_wait);
        Some(self.not_before.map_or(debounced, |t| t.max(debounced)))
    }
}

/// What happened to an enqueued change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Enqueued {
    New,
    Coalesced,
}

/// Waiting ops (not in flight), by key, by queue position and by due time.
///
/// Each op caches its due time (it depends on the collection config: call [`WriteQueue::reindex`]
/// after a config change), so the next deadline is found in O(log n) and an enqueue costs
/// O(log n) even with thousands of ops waiting.
#[derive(Debug, Default)]
pub(crate) struct WriteQueue {
    ops: BTreeMap<ItemKey, Entry>,
    order: BTreeMap<u64, ItemKey>,
    /// (due time, position) of every op that is not parked.
    due: BTreeSet<(Time, u64)>,
}

#[derive(Debug)]
struct Entry {
    op: PendingOp,
    due: Option<Time>,
}

impl WriteQueue {
    pub(crate) fn len(&self) -> usize {
        self.ops.len()
    }

    pub(crate) fn contains(&self, key: &ItemKey) -> bool {
        self.ops.contains_key(key)
    }

    #[cfg(test)]
    pub(crate) fn get(&self, key: &ItemKey) -> Option<&PendingOp> {
        self.ops.get(key).map(|e| &e.op)
    }

    /// Waiting ops in queue order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &PendingOp> {
        self.order.values().map(|key| &self.ops[key].op)
    }

    /// Queues `change`, or replaces the key's waiting change (keeping its position). A new
    /// change clears parking and isolation (it is a different value); backoff stays, so a
    /// failing store is not hammered by a key that keeps changing.
    pub(crate) fn enqueue(
        &mut self,
        now: Time,
        key: ItemKey,
        change: Change,
        (serial, stamp): (u64, (u64, u32)),
        config: &PersistConfig,
    ) -> Enqueued {
        if self.ops.contains_key(&key) {
            self.update(&key, config, |op| {
                op.change = change;
                op.serial = serial;
                op.stamp = stamp;
                op.last_change = now;
                if op.parked {
                    op.parked = false;
                    op.attempt = 0;
                    op.not_before = None;
                    op.last_error = None;
                }
                op.isolate = false;
            });
            return Enqueued::Coalesced;
        }
        self.insert(
            PendingOp {
                key,
                change,
                serial,
                stamp,
                position: serial,
                first_change: now,
                last_change: now,
                attempt: 0,
                not_before: None,
                last_error: None,
                parked: false,
                isolate: false,
            },
            config,
        );
        Enqueued::New
    }

    /// Puts back an op whose write failed. If the key got a newer change meanwhile, the failed
    /// op is dropped (it must never overwrite the newer one) and the newer change takes over
    /// the older position and first-change time, plus the backoff. Returns `false` then.
    pub(crate) fn requeue(&mut self, failed: PendingOp, config: &PersistConfig) -> bool {
        let Some(newer) = self.ops.get(&failed.key) else {
            self.insert(failed, config);
            return true;
        };
        debug_assert!(
            newer.op.serial > failed.serial,
            "a waiting change is newer than one in flight"
        );
        let old_position = newer.op.position;
        if failed.position < old_position {
            self.order.remove(&old_position);
            self.order.insert(failed.position, failed.key.clone());
        }
        self.update(&failed.key, config, |newer| {
            newer.position = newer.position.min(failed.position);
            newer.first_change = newer.first_change.min(failed.first_change);
            if !failed.parked {
                newer.attempt = newer.attempt.max(failed.attempt);
                newer.not_before = newer.not_before.max(failed.not_before);
            }
        });
        false
    }

    /// Recomputes every due time, after a collection config changed.
    pub(crate) fn reindex(&mut self, config: &PersistConfig) {
        self.due.clear();
        for entry in self.ops.values_mut() {
            entry.due = entry.op.due_at(config);
            if let Some(due) = entry.due {
                self.due.insert((due, entry.op.position));
            }
        }
    }

    fn insert(&mut self, op: PendingOp, config: &PersistConfig) {
        let due = op.due_at(config);
        if let Some(due) = due {
            self.due.insert((due, op.position));
        }
        self.order.insert(op.position, op.key.clone());
        self.ops.insert(op.key.clone(), Entry { op, due });
    }

    /// Changes one op and re-indexes its due time; a caller that moves the op keeps `order`
    /// in step.
    fn update(
        &mut self,
        key: &ItemKey,
        config: &PersistConfig,
        change: impl FnOnce(&mut PendingOp),
    ) {
        let entry = self.ops.get_mut(key).expect("updated op exists");
        if let Some(due) = entry.due {
            self.due.remove(&(due, entry.op.position));
        }
        change(&mut entry.op);
        entry.due = entry.op.due_at(config);
        if let Some(due) = entry.due {
            self.due.insert((due, entry.op.position));
        }
    }

    fn remove_at(&mut self, position: u64) -> PendingOp {
        let key = self.order.remove(&position).expect("position is queued");
        let entry = self.ops.remove(&key).expect("order and ops agree");
        if let Some(due) = entry.due {
            self.due.remove(&(due, position));
        }
        entry.op
    }

    /// The earliest time an op becomes due by itself.
    pub(crate) fn next_due(&self) -> Option<Time> {
        self.due.first().map(|&(due, _)| due)
    }

    /// Ops that are not parked have a due time; parked ones do not.
    pub(crate) fn parked_len(&self) -> usize {
        self.ops.len() - self.due.len()
    }

    /// Picks a batch among ops due by their own deadline, found through the due-time index: cost
    /// O(d log d) for d due ops, however many wait. Falls back to walking the queue when many
    /// are due (the walk then stops early, at the batch size).
    fn choose_due(&self, now: Time, config: &PersistConfig) -> Vec<u64> {
        const INDEX_LIMIT: usize = 1_024;
        let mut due: Vec<u64> = Vec::new();
        for &(_, position) in self.due.range(..=(now, u64::MAX)) {
            if due.len() == INDEX_LIMIT {
                return self.choose_walking(now, config, |_| false);
            }
            due.push(position);
        }
        due.sort_unstable();
        self.choose_among(due.into_iter(), config, |_| true)
    }

    /// Picks a batch by walking the queue in position order.
    fn choose_walking(
        &self,
        now: Time,
        config: &PersistConfig,
        forced: impl Fn(&ItemKey) -> bool,
    ) -> Vec<u64> {
        let is_due = |e: &Entry| forced(&e.op.key) || e.due.is_some_and(|t| t <= now);
        self.choose_among(self.order.keys().copied(), config, is_due)
    }

    /// The oldest due op among `positions` (in position order) and the next due ops of its
    /// collection, up to the collection's batch size; an isolated op goes alone.
    fn choose_among(
        &self,
        positions: impl Iterator<Item = u64>,
        config: &PersistConfig,
        is_due: impl Fn(&Entry) -> bool,
    ) -> Vec<u64> {
        let mut chosen: Vec<u64> = Vec::new();
        let mut collection: Option<(&str, usize)> = None;
        for position in positions {
            let key = &self.order[&position];
            let entry = &self.ops[key];
            match collection {
                None if is_due(entry) => {
                    chosen.push(position);
                    let limit = config.collection(&key.collection).batch_size;
                    if entry.op.isolate || limit <= 1 {
                        break;
                    }
                    collection = Some((&key.collection, limit));
                }
                Some((name, limit))
                    if name == &*key.collection && !entry.op.isolate && is_due(entry) =>
                {
                    chosen.push(position);
                    if chosen.len() == limit {
                        break;
                    }
                }
                _ => {}
            }
        }
        chosen
    }

    /// Removes and returns the next batch due at `now`: the oldest due op (by position) and
    /// the next due ops of its collection, up to the collection's batch size. Ops for which
    /// `forced` is true (being flushed) are due whatever their deadline, backoff or parking;
    /// `any_forced` says whether there may be any. An isolated op goes alone.
    pub(crate) fn take_batch(
        &mut self,
        now: Time,
        config: &PersistConfig,
        any_forced: bool,
        forced: impl Fn(&ItemKey) -> bool,
    ) -> Option<(Arc<str>, Vec<PendingOp>)> {
        if !any_forced && self.next_due().is_none_or(|due| due > now) {
            return None;
        }
        let chosen = if any_forced {
            self.choose_walking(now, config, forced)
        } else {
            self.choose_due(now, config)
        };
        let name = Arc::clone(&self.order.get(chosen.first()?)?.collection);
        let ops = chosen.into_iter().map(|position| self.remove_at(position)).collect();
        Some((name, ops))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn key(id: &str) -> ItemKey {
        ItemKey::new("files", id)
    }

    fn stamp(counter: u32) -> (u64, u32) {
        (0, counter)
    }

    #[test]
    fn coalescing_keeps_the_first_position() {
        let mut q = WriteQueue::default();
        let c = PersistConfig::default();
        let t = Time::ZERO;
        assert_eq!(q.enqueue(t, key("a"), Change::put("1"), (1, stamp(1)), &c), Enqueued::New);
        assert_eq!(q.enqueue(t, key("b"), Change::put("2"), (2, stamp(2)), &c), Enqueued::New);
        assert_eq!(q.enqueue(t, key("a"), Change::Delete, (3, stamp(3)), &c), Enqueued::Coalesced);
        let order: Vec<(u64, u64)> = q.iter().map(|op| (op.position, op.serial)).collect();
        assert_eq!(order, vec![(1, 3), (2, 2)]);
    }

    #[test]
    fn requeue_under_a_newer_change_is_dropped_and_lends_its_position() {
        let mut q = WriteQueue::default();
        let c = PersistConfig::default();
        let t = Time::ZERO;
        q.enqueue(t, key("a"), Change::put("1"), (1, stamp(1)), &c);
        let (_, mut taken) = q.take_batch(t, &c, true, |_| true).unwrap();
        q.enqueue(t, key("b"), Change::put("2"), (2, stamp(2)), &c);
        q.enqueue(t + Duration::from_millis(5), key("a"), Change::put("3"), (3, stamp(3)), &c);
        let mut failed = taken.remove(0);
        failed.not_before = Some(Time::from_millis(500));
        assert!(!q.requeue(failed, &c));
        let a = q.get(&key("a")).unwrap();
        assert_eq!((a.position, a.serial, a.not_before), (1, 3, Some(Time::from_millis(500))));
        assert_eq!(a.first_change, Time::ZERO);
        assert_eq!(q.iter().next().unwrap().key, key("a"));
    }
}
