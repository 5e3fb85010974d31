//! The seed's global functions, on the runtime of yewdux's global context (what `use_store` uses
//! when no `YewduxRoot` is given). Browser only.

use std::future::Future;

use crate::config::CollectionConfigPatch;
use crate::error::Error;
use crate::listener::try_persistence;
use crate::metrics::MetricsSnapshot;

fn global() -> Result<crate::Persistence, Error> {
    try_persistence(&yewdux::Context::global()).ok_or(Error::NotStarted)
}

/// Writes everything queued now; resolves when every change made before the call is durable
/// (like the seed's `flushPersistence()`). See [`Persistence::flush`](crate::Persistence::flush).
///
/// # Errors
/// - [`Error::NotStarted`] when no runtime runs in the global context (e.g. the app uses its own
///   `YewduxRoot`: use [`persistence`](crate::persistence) on that context instead).
/// - the errors of [`Persistence::flush`](crate::Persistence::flush).
pub fn flush_persistence() -> impl Future<Output = Result<(), Error>> + 'static {
    let flush = global().map(|persistence| persistence.flush());
    async move { flush?.await }
}

/// Changes one slice's configuration (like the seed's `configurePersistence(name, config)`).
///
/// # Errors
/// - [`Error::NotStarted`] without a runtime in the global context; [`Error::Config`] for an
///   invalid patch (nothing changes).
pub fn configure_persistence(slice: &str, patch: CollectionConfigPatch) -> Result<(), Error> {
    Ok(global()?.configure(slice, patch)?)
}

/// Persists a slice again (like the seed's `enablePersistence(name)`).
///
/// # Errors
/// - [`Error::NotStarted`] without a runtime in the global context.
pub fn enable_persistence(slice: &str) -> Result<(), Error> {
    global()?.enable(slice);
    Ok(())
}

/// Stops persisting new changes of a slice (like the seed's `disablePersistence(name)`).
///
/// # Errors
/// - [`Error::NotStarted`] without a runtime in the global context.
pub fn disable_persistence(slice: &str) -> Result<(), Error> {
    global()?.disable(slice);
    Ok(())
}

/// Current metrics (like the seed's `getSyncMetrics()`); `None` without a runtime.
pub fn get_sync_metrics() -> Option<MetricsSnapshot> {
    global().ok().map(|persistence| persistence.metrics())
}

/// Sets metrics back to zero (like the seed's `resetSyncMetrics()`).
pub fn reset_sync_metrics() {
    if let Ok(persistence) = global() {
        persistence.reset_metrics();
    }
}
