//! The auto-sync scheduler: decides when the runtime syncs with the server.
//!
//! One sync runs at a time; requests made meanwhile collapse into one follow-up that starts as
//! soon as the running sync finishes. Automatic syncs (interval, on change, max pending, retry,
//! online) need auto-sync enabled and the server reachable; a manual sync always starts.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::action::{SyncError, SyncId, SyncReason, SyncSummary};
use crate::config::{AutoSyncConfig, AutoSyncConfigPatch, ConfigError, RetryPolicy};
use crate::rng::SplitMix64;
use crate::time::Time;

/// What the auto-sync is doing, for status displays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AutoSyncStatus {
    /// Whether automatic syncs are enabled.
    pub enabled: bool,
    /// Whether the server is reachable (as last told by the runtime).
    pub online: bool,
    /// Whether a sync is running.
    pub syncing: bool,
    /// When the last sync finished.
    pub last_sync_at: Option<Time>,
    /// Whether the last sync succeeded.
    pub last_sync_ok: Option<bool>,
    /// The last sync's error, if it failed.
    pub last_error: Option<String>,
    /// Locally written changes not yet pushed.
    pub pending_changes: usize,
    /// Time until the next scheduled automatic sync (interval or retry), if any.
    pub next_sync_in: Option<Duration>,
}

/// A sync to start now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SyncStart {
    pub(crate) id: SyncId,
    pub(crate) reason: SyncReason,
}

/// A sync that finished: when it started, and the follow-up to start now, if any.
#[derive(Debug)]
pub(crate) struct SyncFinished {
    pub(crate) started: Time,
    pub(crate) follow_up: Option<SyncStart>,
}

#[derive(Debug)]
pub(crate) struct SyncScheduler {
    config: AutoSyncConfig,
    retry: RetryPolicy,
    online: bool,
    pending: usize,
    next_id: u64,
    running: Option<(SyncId, Time)>,
    follow_up: Option<SyncStart>,
    last_start: Option<Time>,
    /// `None` while an interval request waits as the follow-up (the start re-arms it).
    next_interval_at: Option<Time>,
    retry_at: Option<Time>,
    failures: u32,
    last_sync_at: Option<Time>,
    last_sync_ok: Option<bool>,
    last_error: Option<String>,
}

impl SyncScheduler {
    /// A scheduler whose first interval sync is due one interval after the clock's origin.
    pub(crate) fn new(config: AutoSyncConfig, retry: RetryPolicy) -> Self {
        SyncScheduler {
            next_interval_at: Some(Time::ZERO + config.interval),
            config,
            retry,
            online: true,
            pending: 0,
            next_id: 1,
            running: None,
            follow_up: None,
            last_start: None,
            retry_at: None,
            failures: 0,
            last_sync_at: None,
            last_sync_ok: None,
            last_error: None,
        }
    }

    fn automatic_allowed(&self) -> bool {
        self.config.enabled && self.online
    }

    pub(crate) fn is_running(&self) -> bool {
        self.running.is_some()
    }

    pub(crate) fn pending(&self) -> usize {
        self.pending
    }

    pub(crate) fn config(&self) -> &AutoSyncConfig {
        &self.config
    }

    /// Starts a sync now, or makes it the follow-up of the running one. Returns the id of the
    /// run that will serve the request, and the sync to start now, if any.
    pub(crate) fn request(&mut self, now: Time, reason: SyncReason) -> (SyncId, Option<SyncStart>) {
        if self.running.is_none() {
            let id = self.new_id();
            let start = self.start(now, id, reason);
            return (start.id, Some(start));
        }
        let id = match &mut self.follow_up {
            Some(follow_up) => {
                // A manual request must run even if the server looks unreachable by then.
                if reason == SyncReason::Manual {
                    follow_up.reason = reason;
                }
                follow_up.id
            }
            None => {
                let id = self.new_id();
                self.follow_up = Some(SyncStart { id, reason });
                id
            }
        };
        (id, None)
    }

    fn new_id(&mut self) -> SyncId {
        let id = SyncId(self.next_id);
        self.next_id += 1;
        id
    }

    fn start(&mut self, now: Time, id: SyncId, reason: SyncReason) -> SyncStart {
        self.running = Some((id, now));
        self.last_start = Some(now);
        self.next_interval_at = Some(now + self.config.interval);
        self.retry_at = None;
        SyncStart { id, reason }
    }

    fn request_automatic(&mut self, now: Time, reason: SyncReason) -> Option<SyncStart> {
        if self.automatic_allowed() {
            self.request(now, reason).1
        } else {
            None
        }
    }

    /// Fires the interval and retry timers that are due.
    pub(crate) fn poll(&mut self, now: Time) -> Option<SyncStart> {
        if !self.automatic_allowed() {
            return None;
        }
        if self.retry_at.is_some_and(|t| t <= now) {
            self.retry_at = None;
            return self.request(now, SyncReason::Retry).1;
        }
        if self.next_interval_at.is_some_and(|t| t <= now) {
            self.next_interval_at = None;
            return self.request(now, SyncReason::Interval).1;
        }
        None
    }

    /// The earliest time [`poll`](Self::poll) may start a sync.
    pub(crate) fn next_wakeup(&self) -> Option<Time> {
        if !self.automatic_allowed() {
            return None;
        }
        match (self.retry_at, self.next_interval_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// A local write added `added` changes to push.
    pub(crate) fn local_write(&mut self, now: Time, added: usize) -> Option<SyncStart> {
        if added == 0 {
            return None;
        }
        self.pending += added;
        if self.pending >= self.config.max_pending {
            self.request_automatic(now, SyncReason::MaxPending)
        } else if self.config.sync_on_change {
            self.request_automatic(now, SyncReason::OnChange)
        } else {
            None
        }
    }

    /// The runtime counted the real outbox. Only a rise to the threshold forces a sync, so an
    /// outbox stuck above it (e.g. on conflicts) does not make syncs loop.
    pub(crate) fn set_pending(&mut self, now: Time, count: usize) -> Option<SyncStart> {
        let rose = count > self.pending;
        self.pending = count;
        if rose && count >= self.config.max_pending {
            self.request_automatic(now, SyncReason::MaxPending)
        } else {
            None
        }
    }

    pub(crate) fn set_online(&mut self, now: Time, online: bool) -> Option<SyncStart> {
        let came_back = online && !self.online;
        self.online = online;
        if came_back && self.pending > 0 {
            self.request_automatic(now, SyncReason::Online)
        } else {
            None
        }
    }

    /// Applies a config patch. A new interval counts from the last sync's start (or from now
    /// if that moment has passed).
    pub(crate) fn configure(
        &mut self,
        now: Time,
        patch: &AutoSyncConfigPatch,
    ) -> Result<Option<SyncStart>, ConfigError> {
        let new = patch.apply(&self.config)?;
        let old = std::mem::replace(&mut self.config, new);
        if self.config.interval != old.interval && self.next_interval_at.is_some() {
            let anchor = self.last_start.unwrap_or(Time::ZERO);
            self.next_interval_at = Some((anchor + self.config.interval).max(now));
        }
        let threshold_met = self.pending >= self.config.max_pending;
        let lowered = self.config.max_pending < old.max_pending;
        let enabled = self.config.enabled && !old.enabled;
        if threshold_met && (lowered || enabled) {
            return Ok(self.request_automatic(now, SyncReason::MaxPending));
        }
        Ok(None)
    }

    /// Ends the running sync `id`; `None` if `id` is not running (late or duplicate answer).
    pub(crate) fn finished(
        &mut self,
        now: Time,
        id: SyncId,
        result: &Result<SyncSummary, SyncError>,
        rng: &mut SplitMix64,
    ) -> Option<SyncFinished> {
        let (_, started) = self.running.take_if(|(running, _)| *running == id)?;
        self.last_sync_at = Some(now);
        match result {
            Ok(summary) => {
                self.pending = self.pending.saturating_sub(summary.pushed);
                self.failures = 0;
                self.last_sync_ok = Some(true);
                self.last_error = None;
            }
            Err(error) => {
                self.failures = self.failures.saturating_add(1);
                self.last_sync_ok = Some(false);
                self.last_error = Some(error.message.clone());
                if error.transient {
                    let delay = self.retry.backoff(self.failures, rng.next_spread());
                    let delay = delay.min(self.config.interval);
                    // The server's Retry-After is a floor, for the retry and the interval alike.
                    let wait = error.retry_after.map_or(delay, |asked| delay.max(asked));
                    self.retry_at = Some(now + wait);
                    if let Some(asked) = error.retry_after {
                        self.next_interval_at = self.next_interval_at.map(|at| at.max(now + asked));
                    }
                }
            }
        }
        let follow_up = self.follow_up.take().and_then(|next| {
            (next.reason == SyncReason::Manual || self.automatic_allowed())
                .then(|| self.start(now, next.id, next.reason))
        });
        if self.next_interval_at.is_none() {
            // An interval request was waiting as the follow-up, which was dropped (offline or
            // disabled meanwhile): re-arm the interval so it fires once syncs are allowed again.
            let anchor = self.last_start.unwrap_or(Time::ZERO);
            self.next_interval_at = Some(anchor + self.config.interval);
        }
        Some(SyncFinished { started, follow_up })
    }

    pub(crate) fn status(&self, now: Time) -> AutoSyncStatus {
        AutoSyncStatus {
            enabled: self.config.enabled,
            online: self.online,
            syncing: self.running.is_some(),
            last_sync_at: self.last_sync_at,
            last_sync_ok: self.last_sync_ok,
            last_error: self.last_error.clone(),
            pending_changes: self.pending,
            next_sync_in: self.next_wakeup().map(|t| t.saturating_duration_since(now)),
        }
    }
}
