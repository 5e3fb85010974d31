//! Flush bookkeeping: which keys each flush still waits for.
//!
//! A flush records, per key, the serial of the key's latest change at the time of the call.
//! A write of that key with a serial at least as high satisfies it (a newer change covers the
//! older ones); a failed write of such a serial fails the key for that flush.

use std::collections::BTreeMap;

use crate::action::{FailedKey, FlushError, FlushId, WriteError};
use crate::item::ItemKey;

#[derive(Debug)]
struct PendingFlush {
    id: FlushId,
    /// Key → serial that must become durable.
    waiting: BTreeMap<ItemKey, u64>,
    failed: BTreeMap<ItemKey, WriteError>,
}

/// The flushes not completed yet.
#[derive(Debug, Default)]
pub(crate) struct FlushTracker {
    flushes: Vec<PendingFlush>,
}

impl FlushTracker {
    /// Starts tracking a flush that waits for `waiting` (key → serial).
    pub(crate) fn begin(&mut self, id: FlushId, waiting: BTreeMap<ItemKey, u64>) {
        self.flushes.push(PendingFlush { id, waiting, failed: BTreeMap::new() });
    }

    /// Whether some flush is still waiting.
    pub(crate) fn is_active(&self) -> bool {
        !self.flushes.is_empty()
    }

    /// Whether some flush still waits for `key`, so its op is due at once.
    pub(crate) fn is_forced(&self, key: &ItemKey) -> bool {
        self.flushes.iter().any(|f| f.waiting.contains_key(key))
    }

    /// `key` is durable up to `serial`.
    pub(crate) fn written(&mut self, key: &ItemKey, serial: u64) {
        for flush in &mut self.flushes {
            if flush.waiting.get(key).is_some_and(|&needed| needed <= serial) {
                flush.waiting.remove(key);
            }
        }
    }

    /// The write of `key` at `serial` failed and no newer change of the key is waiting.
    pub(crate) fn failed(&mut self, key: &ItemKey, serial: u64, error: &WriteError) {
        for flush in &mut self.flushes {
            if flush.waiting.get(key).is_some_and(|&needed| needed <= serial) {
                flush.waiting.remove(key);
                flush.failed.insert(key.clone(), error.clone());
            }
        }
    }

    /// Removes the flushes with nothing left to wait for, with their results.
    pub(crate) fn take_completed(&mut self) -> Vec<(FlushId, Result<(), FlushError>)> {
        let mut done = Vec::new();
        self.flushes.retain_mut(|flush| {
            if !flush.waiting.is_empty() {
                return true;
            }
            let failed: Vec<FailedKey> = std::mem::take(&mut flush.failed)
                .into_iter()
                .map(|(key, error)| FailedKey { key, error })
                .collect();
            let result = if failed.is_empty() { Ok(()) } else { Err(FlushError { failed }) };
            done.push((flush.id, result));
            false
        });
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn older_serials_do_not_satisfy_and_failures_are_reported() {
        let (a, b) = (ItemKey::new("c", "a"), ItemKey::new("c", "b"));
        let mut tracker = FlushTracker::default();
        tracker.begin(FlushId(1), BTreeMap::from([(a.clone(), 5), (b.clone(), 2)]));
        assert!(tracker.is_forced(&a));
        tracker.written(&a, 4);
        tracker.failed(&b, 1, &WriteError::transient("x"));
        assert!(tracker.take_completed().is_empty());
        tracker.written(&a, 6);
        tracker.failed(&b, 2, &WriteError::transient("x"));
        let done = tracker.take_completed();
        let failed = vec![FailedKey { key: b, error: WriteError::transient("x") }];
        assert_eq!(done, vec![(FlushId(1), Err(FlushError { failed }))]);
        assert!(!tracker.is_forced(&a));
    }
}
