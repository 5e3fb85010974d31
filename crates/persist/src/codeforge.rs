//! CodeForge's global functions, for code ported from its TypeScript middleware: they act on the
//! runtime of yewdux's global context (what `use_store` uses when no `YewduxRoot` is given).
//! Browser only. New code uses [`Persistence`]'s methods instead.
//!
//! | CodeForge | here |
//! |---|---|
//! | `flushPersistence()` | [`flush_persistence`] |
//! | `configurePersistence(name, config)` | [`configure_persistence`] |
//! | `enablePersistence(name)` / `disablePersistence(name)` | [`enable_persistence`] / [`disable_persistence`] |
//! | `getSyncMetrics()` / `resetSyncMetrics()` | [`get_sync_metrics`] / [`reset_sync_metrics`] |

use std::future::Future;

use persist_engine::{CollectionConfigPatch, MetricsSnapshot};

use crate::binding::try_persistence;
use crate::error::Error;
use crate::runtime::Persistence;

fn global() -> Result<Persistence, Error> {
    try_persistence(&yewdux::Context::global()).ok_or(Error::NotStarted)
}

/// Writes everything queued now; resolves when every change made before the call is durable
/// (CodeForge's `flushPersistence()`). See [`Persistence::flush`].
///
/// # Errors
/// - [`Error::NotStarted`] when no runtime runs in the global context (e.g. the app uses its own
///   `YewduxRoot`: use [`persistence`](crate::persistence) on that context instead).
/// - the errors of [`Persistence::flush`].
pub fn flush_persistence() -> impl Future<Output = Result<(), Error>> + 'static {
    let flush = global().map(|persistence| persistence.flush());
    async move { flush?.await }
}

/// Changes one collection's configuration (CodeForge's `configurePersistence(name, config)`).
///
/// # Errors
/// - [`Error::NotStarted`] without a runtime in the global context; [`Error::Config`] for an
///   invalid patch (nothing changes).
pub fn configure_persistence(collection: &str, patch: CollectionConfigPatch) -> Result<(), Error> {
    Ok(global()?.configure_collection(collection, patch)?)
}

/// Persists a collection again (CodeForge's `enablePersistence(name)`).
///
/// # Errors
/// - [`Error::NotStarted`] without a runtime in the global context.
pub fn enable_persistence(collection: &str) -> Result<(), Error> {
    global()?.enable_collection(collection);
    Ok(())
}

/// Stops persisting new changes of a collection (CodeForge's `disablePersistence(name)`).
///
/// # Errors
/// - [`Error::NotStarted`] without a runtime in the global context.
pub fn disable_persistence(collection: &str) -> Result<(), Error> {
    global()?.disable_collection(collection);
    Ok(())
}

/// Current metrics (CodeForge's `getSyncMetrics()`); `None` without a runtime.
pub fn get_sync_metrics() -> Option<MetricsSnapshot> {
    global().ok().map(|persistence| persistence.metrics())
}

/// Sets metrics back to zero (CodeForge's `resetSyncMetrics()`).
pub fn reset_sync_metrics() {
    if let Ok(persistence) = global() {
        persistence.reset_metrics();
    }
}
