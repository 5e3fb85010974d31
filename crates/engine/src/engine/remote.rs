//! The remote half of the engine: syncs with the server and the auto-sync status.

use super::Engine;
use crate::action::{SyncError, SyncId, SyncReason, SyncSummary};
use crate::metrics::OperationKind;
use crate::sync::AutoSyncStatus;
use crate::time::Time;

impl Engine {
    /// Asks for a sync now, even if auto-sync is disabled or the server looks unreachable.
    /// Returns the id of the run that will cover everything durable before this call: a new
    /// run started at once, or the follow-up of the running one.
    pub fn sync_now(&mut self, now: Time) -> SyncId {
        let (id, start) = self.sync.request(now, SyncReason::Manual);
        self.emit_sync(start);
        self.drive(now);
        id
    }

    /// The runtime finished sync `id`. Returns `false` (and changes nothing) if `id` is not
    /// the running sync, e.g. a duplicate answer.
    ///
    /// Success subtracts `pushed` from the pending changes; failure keeps them and, if
    /// transient, schedules a retry with the sync retry policy (at most one interval away).
    /// A queued follow-up starts right away either way.
    pub fn sync_finished(
        &mut self,
        now: Time,
        id: SyncId,
        result: Result<SyncSummary, SyncError>,
    ) -> bool {
        let Some(finished) = self.sync.finished(now, id, &result, &mut self.rng) else {
            return false;
        };
        let (ops, error) = match &result {
            Ok(summary) => {
                self.metrics.add_conflicts(summary.conflicts);
                (summary.pushed + summary.pulled, None)
            }
            Err(error) => (0, Some(error.to_string())),
        };
        self.record(OperationKind::Sync, now, finished.started, ops, 0, error);
        self.emit_sync(finished.follow_up);
        self.drive(now);
        true
    }

    /// The runtime counted the changes waiting to be pushed (at start, or after a sync). A
    /// rise to `max_pending` forces a sync.
    pub fn set_pending_remote(&mut self, now: Time, count: usize) {
        let start = self.sync.set_pending(now, count);
        self.emit_sync(start);
        self.metrics.mark_changed();
        self.drive(now);
    }

    /// The server became reachable or unreachable. Offline, no automatic sync starts and the
    /// pending changes are kept; back online with changes pending, a sync starts
    /// ([`SyncReason::Online`]).
    pub fn set_remote_available(&mut self, now: Time, available: bool) {
        let start = self.sync.set_online(now, available);
        self.emit_sync(start);
        self.metrics.mark_changed();
        self.drive(now);
    }

    /// Local changes not yet pushed, as far as the engine knows (the runtime's last count of the
    /// outbox, plus the changes written since).
    pub fn pending_remote(&self) -> usize {
        self.sync.pending()
    }

    /// Whether a sync is running.
    pub fn is_syncing(&self) -> bool {
        self.sync.is_running()
    }

    /// What the auto-sync is doing; `next_sync_in` counts from `now`.
    pub fn auto_sync_status(&self, now: Time) -> AutoSyncStatus {
        self.sync.status(now)
    }
}
