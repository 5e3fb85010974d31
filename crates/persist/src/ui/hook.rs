//! [`use_persistence`]: the runtime's status and metrics in a Yew component.

use std::rc::Rc;

use persist_engine::MetricsSnapshot;
use yew::prelude::*;

use crate::binding::persistence as runtime_of;
use crate::runtime::{PersistStatus, Persistence};

/// What [`use_persistence`] returns: a snapshot that re-renders the component when it changes,
/// and the runtime handle to act on.
#[derive(Debug, Clone, PartialEq)]
pub struct UsePersistence {
    /// Storage, readiness, queue and errors.
    pub status: Rc<PersistStatus>,
    /// Totals, durations, history.
    pub metrics: Rc<MetricsSnapshot>,
    /// The runtime, to flush, configure, enable or disable collections.
    pub persistence: Persistence,
}

impl UsePersistence {
    /// Flushes in the background; failures show in `status`.
    pub fn flush(&self) {
        let flush = self.persistence.flush();
        wasm_bindgen_futures::spawn_local(async move {
            // The outcome is visible in the status (last_error, failed_keys).
            let _ = flush.await;
        });
    }

    /// Share of successful local write ops, in percent (100 when nothing was written yet).
    pub fn success_rate(&self) -> f64 {
        let metrics = &self.metrics;
        if metrics.total_ops == 0 {
            100.0
        } else {
            metrics.successful_ops as f64 * 100.0 / metrics.total_ops as f64
        }
    }
}

#[hook]
fn use_yewdux_context() -> yewdux::Context {
    let provided = use_context::<yewdux::Context>();
    #[cfg(target_arch = "wasm32")]
    {
        provided.unwrap_or_else(yewdux::Context::global)
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        provided.expect("use_persistence needs a YewduxRoot outside the browser")
    }
}

/// The persistence runtime of the component's yewdux context, with live status and metrics.
///
/// ```no_run
/// use yew::prelude::*;
/// use yewdux_persist::use_persistence;
///
/// #[function_component]
/// fn SaveIndicator() -> Html {
///     let persistence = use_persistence();
///     let onclick = {
///         let persistence = persistence.clone();
///         Callback::from(move |_| persistence.flush())
///     };
///     html! {
///         <button {onclick}>
///             { format!("Save now ({} pending)", persistence.status.queue_depth) }
///         </button>
///     }
/// }
/// ```
#[hook]
pub fn use_persistence() -> UsePersistence {
    let cx = use_yewdux_context();
    let persistence = use_memo(cx, runtime_of);
    let status = use_state({
        let persistence = persistence.clone();
        move || Rc::new(persistence.status())
    });
    let metrics = use_state({
        let persistence = persistence.clone();
        move || Rc::new(persistence.metrics())
    });
    {
        let (status, metrics) = (status.setter(), metrics.setter());
        use_effect_with(persistence.clone(), move |persistence| {
            let status_subscription =
                persistence.subscribe_status(move |next| status.set(Rc::new(next.clone())));
            let metrics_subscription =
                persistence.subscribe_metrics(move |next| metrics.set(Rc::new(next.clone())));
            move || drop((status_subscription, metrics_subscription))
        });
    }
    UsePersistence {
        status: (*status).clone(),
        metrics: (*metrics).clone(),
        persistence: (*persistence).clone(),
    }
}

/// `true` once every installed store has loaded its saved data. Re-renders the component only
/// when that changes (not on every queue change, unlike [`use_persistence`]).
#[hook]
pub fn use_persistence_ready() -> bool {
    let cx = use_yewdux_context();
    let persistence = use_memo(cx, runtime_of);
    let ready = use_state_eq({
        let persistence = persistence.clone();
        move || persistence.status().ready
    });
    {
        let ready = ready.setter();
        use_effect_with(persistence, move |persistence| {
            ready.set(persistence.status().ready);
            let subscription = persistence.subscribe_status(move |status| ready.set(status.ready));
            move || drop(subscription)
        });
    }
    *ready
}
