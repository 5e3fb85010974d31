//! Configuration: the seed's defaults, validation errors instead of panics, patches, backoff
//! and the serialised form.
#![cfg(not(target_arch = "wasm32"))]

use std::time::Duration;

use yewdux_persist::{
    AutoSyncConfig, AutoSyncConfigPatch, ConfigError, PersistConfig, RetryPolicy, SliceConfig,
    SliceConfigPatch,
};

#[test]
fn defaults_are_the_seeds() {
    let config = PersistConfig::default();
    assert_eq!(config.default_slice.debounce, Duration::from_millis(300));
    assert_eq!(config.default_slice.max_wait, Duration::from_secs(2));
    assert_eq!(config.default_slice.batch_size, 10);
    assert!(config.default_slice.enabled && config.default_slice.sync_to_remote);
    assert_eq!(config.auto_sync.interval, Duration::from_secs(30));
    assert_eq!(config.auto_sync.max_pending, 50);
    assert_eq!(config.write_retry.initial, Duration::from_millis(250));
    assert_eq!(config.sync_retry.max, Duration::from_secs(30));
    assert_eq!(config.validate(), Ok(()));
}

#[test]
fn invalid_values_are_reported_not_panicked() {
    let slice = SliceConfig::default().with_batch_size(0);
    let config = PersistConfig::default().with_slice("files", slice);
    assert_eq!(
        config.validate(),
        Err(ConfigError::ZeroBatchSize { scope: "slice \"files\"".into() })
    );
    let slice = SliceConfig::default().with_max_wait(Duration::from_millis(100));
    assert!(matches!(slice.validate("s"), Err(ConfigError::MaxWaitBelowDebounce { .. })));

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
    let err = SliceConfig::default().with_batch_size(0).validate("slice \"files\"");
    assert_eq!(err.unwrap_err().to_string(), "slice \"files\": batch_size must be at least 1");
}

#[test]
fn patches_change_only_their_fields() {
    let patch =
        SliceConfigPatch { debounce: Some(Duration::from_millis(500)), ..Default::default() };
    let patched = patch.apply(&SliceConfig::default(), "s").unwrap();
    assert_eq!(patched, SliceConfig::default().with_debounce(Duration::from_millis(500)));
    let too_long = SliceConfigPatch { debounce: Some(Duration::from_secs(5)), ..patch };
    assert!(too_long.apply(&SliceConfig::default(), "s").is_err());
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
    let json = serde_json::to_value(SliceConfig::default()).unwrap();
    assert_eq!(json["debounce_ms"], 300);
    assert_eq!(json["max_wait_ms"], 2000);
    let patch: SliceConfigPatch = serde_json::from_str(r#"{"debounce_ms": 500}"#).unwrap();
    assert_eq!(patch.debounce, Some(Duration::from_millis(500)));
    assert_eq!(patch.batch_size, None);
    let config: PersistConfig =
        serde_json::from_str(r#"{"slices": {"files": {"batch_size": 3}}}"#).unwrap();
    assert_eq!(config.slice("files").batch_size, 3);
    assert_eq!(config.slice("files").debounce, Duration::from_millis(300));
    assert_eq!(config.slice("other"), &SliceConfig::default());
    let back: PersistConfig =
        serde_json::from_str(&serde_json::to_string(&config).unwrap()).unwrap();
    assert_eq!(back, config);
}

/// The engine stays sans-IO: no file under `src/engine` names a browser, timer, clock, thread,
/// file or network API, or the crate's I/O modules (the rest of the crate uses them; the engine
/// must not).
#[test]
fn the_engine_stays_free_of_io_and_clocks() {
    const FORBIDDEN: [&str; 16] = [
        "web_sys",
        "js_sys",
        "gloo",
        "wasm_bindgen",
        "Instant",
        "SystemTime",
        "chrono",
        "tokio",
        "std::fs",
        "std::net",
        "std::thread",
        "crate::runtime",
        "crate::local",
        "crate::listener",
        "crate::hydrate",
        "crate::global",
    ];
    fn sources(dir: &std::path::Path, found: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("readable folder") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                sources(&path, found);
            } else if path.extension().is_some_and(|e| e == "rs") {
                found.push(path);
            }
        }
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/engine");
    let mut files = Vec::new();
    sources(&dir, &mut files);
    assert!(files.len() >= 5, "expected the engine's modules in {}", dir.display());
    for path in files {
        let source = std::fs::read_to_string(&path).expect("source");
        for forbidden in FORBIDDEN {
            assert!(
                !source.contains(forbidden),
                "{} mentions `{forbidden}`; the engine must stay free of I/O and clocks",
                path.display()
            );
        }
    }
}
