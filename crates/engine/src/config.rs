//! Configuration: per-collection write behaviour, auto-sync and retry policies.
//!
//! Each collection (`"files"`, `"models"`, ...) has a [`CollectionConfig`]; collections without
//! their own entry use [`PersistConfig::default_collection`]. Defaults are CodeForge's: 300 ms
//! debounce, batches of 10, auto-sync every 30 s with a forced sync at 50 pending changes.
//!
//! Durations are written in milliseconds in serialised form (`"debounce_ms": 300`), like
//! CodeForge's `debounceMs`. Every type checks itself with `validate`, and the engine refuses invalid
//! values with a [`ConfigError`] instead of panicking.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Why a configuration was rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// A collection's batch size is zero.
    #[error("{scope}: batch_size must be at least 1")]
    ZeroBatchSize {
        /// Which configuration (`collection "files"`, `default collection`).
        scope: String,
    },
    /// A collection's max wait is shorter than its debounce, so the debounce could never run out.
    #[error("{scope}: max_wait ({max_wait:?}) must not be shorter than debounce ({debounce:?})")]
    MaxWaitBelowDebounce {
        /// Which configuration.
        scope: String,
        /// The debounce asked for.
        debounce: Duration,
        /// The max wait asked for.
        max_wait: Duration,
    },
    /// A retry policy's first delay is zero.
    #[error("{scope}: initial delay must be greater than zero")]
    ZeroInitialDelay {
        /// Which policy (`write_retry`, `sync_retry`).
        scope: String,
    },
    /// A retry policy's multiplier is NaN, infinite or below 1.
    #[error("{scope}: multiplier must be a finite number of at least 1.0, got {multiplier}")]
    InvalidMultiplier {
        /// Which policy.
        scope: String,
        /// The multiplier asked for.
        multiplier: f64,
    },
    /// A retry policy's jitter is NaN or outside `0.0..=1.0`.
    #[error("{scope}: jitter must be a number from 0.0 to 1.0, got {jitter}")]
    InvalidJitter {
        /// Which policy.
        scope: String,
        /// The jitter asked for.
        jitter: f64,
    },
    /// A retry policy's cap is shorter than its first delay.
    #[error(
        "{scope}: max delay ({max:?}) must not be shorter than the initial delay ({initial:?})"
    )]
    MaxDelayBelowInitial {
        /// Which policy.
        scope: String,
        /// The first delay asked for.
        initial: Duration,
        /// The cap asked for.
        max: Duration,
    },
    /// The auto-sync interval is zero.
    #[error("auto_sync: interval must be greater than zero")]
    ZeroSyncInterval,
    /// The auto-sync forced-sync threshold is zero.
    #[error("auto_sync: max_pending must be at least 1")]
    ZeroMaxPending,
}

/// How one collection is persisted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CollectionConfig {
    /// Whether changes of this collection are persisted at all. Disabling a collection ignores its new
    /// changes; changes already queued are still written.
    pub enabled: bool,
    /// Whether this collection's written changes count towards the remote sync.
    pub sync_to_remote: bool,
    /// Quiet time after a key's last change before it is written.
    #[serde(rename = "debounce_ms", with = "crate::time::serde_millis")]
    pub debounce: Duration,
    /// Longest time a key's first pending change waits, however often it keeps changing.
    #[serde(rename = "max_wait_ms", with = "crate::time::serde_millis")]
    pub max_wait: Duration,
    /// Most ops written in one local transaction.
    pub batch_size: usize,
    /// Who wins when the server changed an item this device also changed.
    pub conflict: ConflictStrategy,
}

/// What happens when the server changed an item this device also changed (found by the revision
/// the local change was made from, never by timestamps).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConflictStrategy {
    /// The server's version replaces the local change (the local change is counted as
    /// overruled in the status).
    #[default]
    ServerWins,
    /// The local change is pushed again on top of the server's version and replaces it.
    ClientWins,
    /// The version made last on the hybrid logical clock wins (the clock orders changes across
    /// devices even when their wall clocks drift; wall time alone never decides). A server
    /// version without a stamp (written by a CodeForge client) loses to a stamped local change.
    LastWriterWins,
    /// Field-level three-way merge against the last version both sides agreed on: a field
    /// changed on one side takes that side, text fields changed on both sides merge line by
    /// line where the edits do not overlap. What still conflicts is decided by the fallback.
    Merge(MergeFallback),
    /// Nothing is decided automatically: the conflict is kept with both versions until the user
    /// resolves it; the item keeps its local value meanwhile and is not pushed.
    Manual,
    /// The resolver function the app registered for the collection decides (manual when none
    /// is registered).
    Custom,
}

/// What decides the fields a [`ConflictStrategy::Merge`] could not merge.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MergeFallback {
    /// The user, in the conflict center.
    #[default]
    Manual,
    /// The server's side of each conflicting field.
    ServerWins,
    /// The local side of each conflicting field.
    ClientWins,
    /// The side whose change is newer on the hybrid logical clock.
    LastWriterWins,
}

impl ConflictStrategy {
    /// Every strategy, for pickers (merge with each fallback).
    pub const ALL: [ConflictStrategy; 9] = [
        ConflictStrategy::ServerWins,
        ConflictStrategy::ClientWins,
        ConflictStrategy::LastWriterWins,
        ConflictStrategy::Merge(MergeFallback::Manual),
        ConflictStrategy::Merge(MergeFallback::ServerWins),
        ConflictStrategy::Merge(MergeFallback::ClientWins),
        ConflictStrategy::Merge(MergeFallback::LastWriterWins),
        ConflictStrategy::Manual,
        ConflictStrategy::Custom,
    ];

    /// A short name for the UI (`merge, else manual`, ...).
    pub fn label(self) -> &'static str {
        match self {
            ConflictStrategy::ServerWins => "server wins",
            ConflictStrategy::ClientWins => "this device wins",
            ConflictStrategy::LastWriterWins => "last writer wins",
            ConflictStrategy::Merge(MergeFallback::Manual) => "merge, else ask",
            ConflictStrategy::Merge(MergeFallback::ServerWins) => "merge, else server wins",
            ConflictStrategy::Merge(MergeFallback::ClientWins) => "merge, else this device wins",
            ConflictStrategy::Merge(MergeFallback::LastWriterWins) => {
                "merge, else last writer wins"
            }
            ConflictStrategy::Manual => "ask",
            ConflictStrategy::Custom => "app's resolver",
        }
    }

    /// Whether the strategy reads the last agreed version (the base of a three-way merge),
    /// which the local store then keeps per item.
    pub fn needs_base(self) -> bool {
        matches!(
            self,
            ConflictStrategy::Merge(_) | ConflictStrategy::Manual | ConflictStrategy::Custom
        )
    }
}

impl Default for CollectionConfig {
    fn default() -> Self {
        CollectionConfig {
            enabled: true,
            sync_to_remote: true,
            debounce: Duration::from_millis(300),
            max_wait: Duration::from_secs(2),
            batch_size: 10,
            conflict: ConflictStrategy::ServerWins,
        }
    }
}

impl CollectionConfig {
    /// This config with another debounce.
    pub fn with_debounce(mut self, debounce: Duration) -> Self {
        self.debounce = debounce;
        self
    }

    /// This config with another max wait.
    pub fn with_max_wait(mut self, max_wait: Duration) -> Self {
        self.max_wait = max_wait;
        self
    }

    /// This config with another batch size.
    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size;
        self
    }

    /// This config with another conflict strategy.
    pub fn with_conflict(mut self, conflict: ConflictStrategy) -> Self {
        self.conflict = conflict;
        self
    }

    /// This config, persisted locally only (never counted for the remote sync).
    pub fn local_only(mut self) -> Self {
        self.sync_to_remote = false;
        self
    }

    /// This config, disabled.
    pub fn disabled(mut self) -> Self {
        self.enabled = false;
        self
    }

    /// Checks the values; `scope` names the collection in the error.
    ///
    /// # Errors
    /// - [`ConfigError::ZeroBatchSize`] if `batch_size` is 0.
    /// - [`ConfigError::MaxWaitBelowDebounce`] if `max_wait < debounce`.
    pub fn validate(&self, scope: &str) -> Result<(), ConfigError> {
        if self.batch_size == 0 {
            return Err(ConfigError::ZeroBatchSize { scope: scope.to_owned() });
        }
        if self.max_wait < self.debounce {
            return Err(ConfigError::MaxWaitBelowDebounce {
                scope: scope.to_owned(),
                debounce: self.debounce,
                max_wait: self.max_wait,
            });
        }
        Ok(())
    }
}

/// A partial update of a [`CollectionConfig`]: `None` fields are left as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CollectionConfigPatch {
    /// New [`CollectionConfig::enabled`].
    pub enabled: Option<bool>,
    /// New [`CollectionConfig::sync_to_remote`].
    pub sync_to_remote: Option<bool>,
    /// New [`CollectionConfig::debounce`].
    #[serde(rename = "debounce_ms", with = "crate::time::serde_option_millis")]
    pub debounce: Option<Duration>,
    /// New [`CollectionConfig::max_wait`].
    #[serde(rename = "max_wait_ms", with = "crate::time::serde_option_millis")]
    pub max_wait: Option<Duration>,
    /// New [`CollectionConfig::batch_size`].
    pub batch_size: Option<usize>,
    /// New [`CollectionConfig::conflict`].
    pub conflict: Option<ConflictStrategy>,
}

impl CollectionConfigPatch {
    /// `base` with this patch applied, validated.
    ///
    /// # Errors
    /// The errors of [`CollectionConfig::validate`] for the patched config.
    pub fn apply(
        &self,
        base: &CollectionConfig,
        scope: &str,
    ) -> Result<CollectionConfig, ConfigError> {
        let patched = CollectionConfig {
            enabled: self.enabled.unwrap_or(base.enabled),
            sync_to_remote: self.sync_to_remote.unwrap_or(base.sync_to_remote),
            debounce: self.debounce.unwrap_or(base.debounce),
            max_wait: self.max_wait.unwrap_or(base.max_wait),
            batch_size: self.batch_size.unwrap_or(base.batch_size),
            conflict: self.conflict.unwrap_or(base.conflict),
        };
        patched.validate(scope)?;
        Ok(patched)
    }
}

/// When the engine asks the runtime to sync with the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AutoSyncConfig {
    /// Whether automatic syncs happen at all (a manual sync always works).
    pub enabled: bool,
    /// Time between the starts of two interval syncs.
    #[serde(rename = "interval_ms", with = "crate::time::serde_millis")]
    pub interval: Duration,
    /// Sync as soon as a local write adds pending changes.
    pub sync_on_change: bool,
    /// Pending changes at which a sync is forced even without `sync_on_change`.
    pub max_pending: usize,
}

impl Default for AutoSyncConfig {
    fn default() -> Self {
        AutoSyncConfig {
            enabled: true,
            interval: Duration::from_secs(30),
            sync_on_change: true,
            max_pending: 50,
        }
    }
}

impl AutoSyncConfig {
    /// Checks the values.
    ///
    /// # Errors
    /// - [`ConfigError::ZeroSyncInterval`] if `interval` is zero.
    /// - [`ConfigError::ZeroMaxPending`] if `max_pending` is 0.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.interval.is_zero() {
            return Err(ConfigError::ZeroSyncInterval);
        }
        if self.max_pending == 0 {
            return Err(ConfigError::ZeroMaxPending);
        }
        Ok(())
    }
}

/// A partial update of an [`AutoSyncConfig`]: `None` fields are left as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AutoSyncConfigPatch {
    /// New [`AutoSyncConfig::enabled`].
    pub enabled: Option<bool>,
    /// New [`AutoSyncConfig::interval`].
    #[serde(rename = "interval_ms", with = "crate::time::serde_option_millis")]
    pub interval: Option<Duration>,
    /// New [`AutoSyncConfig::sync_on_change`].
    pub sync_on_change: Option<bool>,
    /// New [`AutoSyncConfig::max_pending`].
    pub max_pending: Option<usize>,
}

impl AutoSyncConfigPatch {
    /// `base` with this patch applied, validated.
    ///
    /// # Errors
    /// The errors of [`AutoSyncConfig::validate`] for the patched config.
    pub fn apply(&self, base: &AutoSyncConfig) -> Result<AutoSyncConfig, ConfigError> {
        let patched = AutoSyncConfig {
            enabled: self.enabled.unwrap_or(base.enabled),
            interval: self.interval.unwrap_or(base.interval),
            sync_on_change: self.sync_on_change.unwrap_or(base.sync_on_change),
            max_pending: self.max_pending.unwrap_or(base.max_pending),
        };
        patched.validate()?;
        Ok(patched)
    }
}

/// Exponential backoff with jitter: the n-th consecutive failure waits
/// `min(initial × multiplierⁿ⁻¹, max) × (1 ± jitter)`, never more than `max`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RetryPolicy {
    /// Delay after the first failure.
    #[serde(rename = "initial_ms", with = "crate::time::serde_millis")]
    pub initial: Duration,
    /// Growth of the delay per further failure (at least 1).
    pub multiplier: f64,
    /// Longest delay.
    #[serde(rename = "max_ms", with = "crate::time::serde_millis")]
    pub max: Duration,
    /// Relative random spread of each delay, from 0.0 (none) to 1.0; spreads the retries of many
    /// clients apart.
    pub jitter: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial: Duration::from_millis(250),
            multiplier: 2.0,
            max: Duration::from_secs(30),
            jitter: 0.2,
        }
    }
}

impl RetryPolicy {
    /// This policy without jitter (exact delays, handy in tests).
    pub fn without_jitter(mut self) -> Self {
        self.jitter = 0.0;
        self
    }

    /// The delay after `failures` consecutive failures (1 for the first), given `spread`, a
    /// random number in `-1.0..=1.0` (0.0 gives the exact exponential delay).
    pub fn backoff(&self, failures: u32, spread: f64) -> Duration {
        let exponent = i32::try_from(failures.saturating_sub(1)).unwrap_or(i32::MAX);
        let max = self.max.as_secs_f64();
        let base = (self.initial.as_secs_f64() * self.multiplier.powi(exponent)).min(max);
        let factor = 1.0 + self.jitter * spread.clamp(-1.0, 1.0);
        // NaN (from a policy that skipped validation) falls back to the cap.
        let secs = (base * factor).clamp(0.0, max);
        if secs.is_nan() {
            self.max
        } else {
            Duration::from_secs_f64(secs)
        }
    }

    /// Checks the values; `scope` names the policy in the error.
    ///
    /// # Errors
    /// - [`ConfigError::ZeroInitialDelay`] if `initial` is zero.
    /// - [`ConfigError::InvalidMultiplier`] if `multiplier` is NaN, infinite or below 1.
    /// - [`ConfigError::InvalidJitter`] if `jitter` is NaN or outside `0.0..=1.0`.
    /// - [`ConfigError::MaxDelayBelowInitial`] if `max < initial`.
    pub fn validate(&self, scope: &str) -> Result<(), ConfigError> {
        let scope = scope.to_owned();
        if self.initial.is_zero() {
            return Err(ConfigError::ZeroInitialDelay { scope });
        }
        if !self.multiplier.is_finite() || self.multiplier < 1.0 {
            return Err(ConfigError::InvalidMultiplier { scope, multiplier: self.multiplier });
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            return Err(ConfigError::InvalidJitter { scope, jitter: self.jitter });
        }
        if self.max < self.initial {
            return Err(ConfigError::MaxDelayBelowInitial {
                scope,
                initial: self.initial,
                max: self.max,
            });
        }
        Ok(())
    }
}

/// The whole configuration of the persistence engine.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PersistConfig {
    /// Config of collections without their own entry in `collections`.
    #[serde(alias = "default_slice")]
    pub default_collection: CollectionConfig,
    /// Config per collection name.
    #[serde(alias = "slices")]
    pub collections: BTreeMap<String, CollectionConfig>,
    /// When to sync with the server.
    pub auto_sync: AutoSyncConfig,
    /// Backoff of failed local writes.
    pub write_retry: RetryPolicy,
    /// Backoff of failed syncs (each delay is also capped at the auto-sync interval).
    pub sync_retry: RetryPolicy,
}

impl PersistConfig {
    /// The config of `collection`: its own entry, or the default collection config.
    pub fn collection(&self, name: &str) -> &CollectionConfig {
        self.collections.get(name).unwrap_or(&self.default_collection)
    }

    /// This config with `collection` configured as `config`.
    pub fn with_collection(
        mut self,
        collection: impl Into<String>,
        config: CollectionConfig,
    ) -> Self {
        self.collections.insert(collection.into(), config);
        self
    }

    /// This config with another default collection config.
    pub fn with_default_collection(mut self, config: CollectionConfig) -> Self {
        self.default_collection = config;
        self
    }

    /// This config with another auto-sync config.
    pub fn with_auto_sync(mut self, config: AutoSyncConfig) -> Self {
        self.auto_sync = config;
        self
    }

    /// This config with another local-write retry policy.
    pub fn with_write_retry(mut self, policy: RetryPolicy) -> Self {
        self.write_retry = policy;
        self
    }

    /// This config with another sync retry policy.
    pub fn with_sync_retry(mut self, policy: RetryPolicy) -> Self {
        self.sync_retry = policy;
        self
    }

    /// Checks every part.
    ///
    /// # Errors
    /// The first error of [`CollectionConfig::validate`] (default collection, then each collection),
    /// [`AutoSyncConfig::validate`] or [`RetryPolicy::validate`] (`write_retry`, `sync_retry`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.default_collection.validate("default collection")?;
        for (name, collection) in &self.collections {
            collection.validate(&format!("collection {name:?}"))?;
        }
        self.auto_sync.validate()?;
        self.write_retry.validate("write_retry")?;
        self.sync_retry.validate("sync_retry")
    }
}
