//! Configuration: CodeForge's defaults, validation errors instead of panics, patches, backoff
//! and the serialised form.

use std::time::Duration;

use persist_engine::{
    AutoSyncConfig, AutoSyncConfigPatch, CollectionConfig, CollectionConfigPatch, ConfigError,
    PersistConfig, RetryPolicy,
};

#[test]
fn defaults_are_codeforges() {
    let config = PersistConfig::default();
    assert_eq!(config.default_collection.debounce, Duration::from_millis(300));
    assert_eq!(config.default_collection.max_wait, Duration::from_secs(2));
    assert_eq!(config.default_collection.batch_size, 10);
    assert!(config.default_collection.enabled && config.default_collection.sync_to_remote);
    assert_eq!(config.auto_sync.interval, Duration::from_secs(30));
    assert_eq!(config.auto_sync.max_pending, 50);
    assert_eq!(config.write_retry.initial, Duration::from_millis(250));
    assert_eq!(config.sync_retry.max, Duration::from_secs(30));
    assert_eq!(config.validate(), Ok(()));
}

#[test]
fn invalid_values_are_reported_not_panicked() {
    let files = CollectionConfig::default().with_batch_size(0);
    let config = PersistConfig::default().with_collection("files", files);
    assert_eq!(
        config.validate(),
        Err(ConfigError::ZeroBatchSize { scope: "collection \"files\"".into() })
    );
    let short = CollectionConfig::default().with_max_wait(Duration::from_millis(100));
    assert!(matches!(short.validate("s"), Err(ConfigError::MaxWaitBelowDebounce { .. })));

    for jitter in [-0.1, 1.5, f64::NAN] {
        let policy = RetryPolicy { jitter, ..RetryPolicy::default() };
        assert!(matches!(policy.validate("p"), Err(ConfigError::InvalidJitter { .. })));
    }
    for multiplier in [0.5, f64::INFINITY, f64::NAN] {
        let policy = RetryPolicy { multiplier, ..RetryPolicy::default() };
        assert!(matches!(policy.validate("p"), Err(ConfigError::InvalidMultiplier { .. })));
    }
    let policy = RetryPolicy { max: Duration::from_millis(1), ..RetryPolicy::default() };
    assert!(matches!(policy.validate("p"), Err(ConfigError::MaxDelayBelowInitial { .. })));
    let policy = RetryPolicy { initial: Duration::ZERO, ..RetryPolicy::default() };
    assert!(matches!(policy.validate("p"), Err(ConfigError::ZeroInitialDelay { .. })));

    let sync = AutoSyncConfigPatch { interval: Some(Duration::ZERO), ..Default::default() };
    assert_eq!(sync.apply(&AutoSyncConfig::default()), Err(ConfigError::ZeroSyncInterval));
    let sync = AutoSyncConfigPatch { max_pending: Some(0), ..Default::default() };
    assert_eq!(sync.apply(&AutoSyncConfig::default()), Err(ConfigError::ZeroMaxPending));
}

#[test]
fn error_messages_name_the_culprit() {
    let err = CollectionConfig::default().with_batch_size(0).validate("collection \"files\"");
    assert_eq!(err.unwrap_err().to_string(), "collection \"files\": batch_size must be at least 1");
}

#[test]
fn patches_change_only_their_fields() {
    let patch =
        CollectionConfigPatch { debounce: Some(Duration::from_millis(500)), ..Default::default() };
    let patched = patch.apply(&CollectionConfig::default(), "s").unwrap();
    assert_eq!(patched, CollectionConfig::default().with_debounce(Duration::from_millis(500)));
    let too_long = CollectionConfigPatch { debounce: Some(Duration::from_secs(5)), ..patch };
    assert!(too_long.apply(&CollectionConfig::default(), "s").is_err());
}

#[test]
fn backoff_grows_caps_and_jitters() {
    let policy = RetryPolicy::default();
    assert_eq!(policy.backoff(1, 0.0), Duration::from_millis(250));
    assert_eq!(policy.backoff(3, 0.0), Duration::from_millis(1_000));
    assert_eq!(policy.backoff(1, 1.0), Duration::from_millis(300));
    assert_eq!(policy.backoff(1, -1.0), Duration::from_millis(200));
    assert_eq!(policy.backoff(20, 0.0), Duration::from_secs(30));
    assert_eq!(policy.backoff(20, 1.0), Duration::from_secs(30));
    assert_eq!(policy.backoff(u32::MAX, 1.0), Duration::from_secs(30));
}

#[test]
fn serialises_durations_as_milliseconds() {
    let json = serde_json::to_value(CollectionConfig::default()).unwrap();
    assert_eq!(json["debounce_ms"], 300);
    assert_eq!(json["max_wait_ms"], 2000);
    let patch: CollectionConfigPatch = serde_json::from_str(r#"{"debounce_ms": 500}"#).unwrap();
    assert_eq!(patch.debounce, Some(Duration::from_millis(500)));
    assert_eq!(patch.batch_size, None);
    let config: PersistConfig =
        serde_json::from_str(r#"{"collections": {"files": {"batch_size": 3}}}"#).unwrap();
    assert_eq!(config.collection("files").batch_size, 3);
    assert_eq!(config.collection("files").debounce, Duration::from_millis(300));
    assert_eq!(config.collection("other"), &CollectionConfig::default());
    let back: PersistConfig =
        serde_json::from_str(&serde_json::to_string(&config).unwrap()).unwrap();
    assert_eq!(back, config);
}
