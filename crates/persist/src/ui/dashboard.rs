//! [`PersistenceDashboard`]: a drop-in panel showing what persistence is doing.

use std::time::Duration;

use yew::prelude::*;

use persist_engine::{OperationKind, OperationRecord};

use super::hook::use_persistence;
use super::sync_panel::{sync_section, SYNC_CSS};
use crate::local::StorageKind;
use crate::runtime::Connection;

/// The dashboard's stylesheet (class names start with `yp-`). It is included by the component.
/// Colours come from CSS variables with light defaults (`--yp-bg`, `--yp-fg`, `--yp-muted`,
/// `--yp-border`, `--yp-ok-bg`/`-fg`, `--yp-warn-bg`/`-fg`, `--yp-bad-bg`/`-fg`, `--yp-bar`,
/// `--yp-bar-failed`, `--yp-bar-sync`, `--yp-button-bg`): set them on any ancestor for a dark
/// theme.
pub const DASHBOARD_CSS: &str = r#"
.yp-dashboard { font: 13px/1.4 system-ui, sans-serif; color: var(--yp-fg, #1d2330);
  background: var(--yp-bg, #fff); border: 1px solid var(--yp-border, #d8dce3); border-radius: 8px;
  padding: 12px 14px; max-width: 560px; }
.yp-dashboard h3 { margin: 0 0 8px; font-size: 14px; }
.yp-row { display: flex; flex-wrap: wrap; gap: 6px 18px; margin: 6px 0; }
.yp-stat { display: flex; flex-direction: column; min-width: 88px; }
.yp-stat b { font-size: 16px; }
.yp-stat span { color: var(--yp-muted, #5b6474); font-size: 11px; text-transform: uppercase;
  letter-spacing: .03em; }
.yp-badge { display: inline-block; border-radius: 10px; padding: 1px 8px; font-size: 12px; }
.yp-ok { background: var(--yp-ok-bg, #dff5e6); color: var(--yp-ok-fg, #17623a); }
.yp-warn { background: var(--yp-warn-bg, #fff2d6); color: var(--yp-warn-fg, #7a5200); }
.yp-bad { background: var(--yp-bad-bg, #fde1e1); color: var(--yp-bad-fg, #8a1c1c); }
.yp-error { color: var(--yp-bad-fg, #8a1c1c); margin: 4px 0; word-break: break-word; }
.yp-history { display: flex; align-items: flex-end; gap: 1px; height: 36px; margin: 8px 0; }
.yp-history i { flex: 1; background: var(--yp-bar, #7aa7e8); min-height: 2px; }
.yp-history i.yp-failed { background: var(--yp-bar-failed, #e07a7a); }
.yp-history i.yp-sync { background: var(--yp-bar-sync, #8fcf9f); }
.yp-actions { display: flex; gap: 8px; margin-top: 8px; }
.yp-actions button { font: inherit; color: inherit; padding: 3px 10px; border-radius: 5px;
  border: 1px solid var(--yp-border, #b8c0cc); background: var(--yp-button-bg, #f6f7f9);
  cursor: pointer; }
"#;

/// Props of [`PersistenceDashboard`].
#[derive(Debug, Clone, PartialEq, Properties)]
pub struct DashboardProps {
    /// Heading of the panel.
    #[prop_or(AttrValue::Static("Persistence"))]
    pub title: AttrValue,
    /// Where the open-conflict count links to (the app's conflict page, e.g. one showing a
    /// `ConflictCenter`); without it the count is plain text.
    #[prop_or_default]
    pub conflicts_href: Option<AttrValue>,
}

fn format_duration(duration: Duration) -> String {
    let micros = duration.as_micros();
    if micros < 1_000 {
        format!("{micros} µs")
    } else if micros < 1_000_000 {
        format!("{:.1} ms", micros as f64 / 1_000.0)
    } else {
        format!("{:.1} s", micros as f64 / 1_000_000.0)
    }
}

fn format_bytes(bytes: u64) -> String {
    match bytes {
        0..=1_023 => format!("{bytes} B"),
        1_024..=1_048_575 => format!("{:.1} KiB", bytes as f64 / 1_024.0),
        _ => format!("{:.1} MiB", bytes as f64 / 1_048_576.0),
    }
}

fn ago(epoch_ms: f64) -> String {
    let seconds = ((js_sys::Date::now() - epoch_ms) / 1_000.0).max(0.0);
    if seconds < 1.0 {
        "just now".into()
    } else if seconds < 60.0 {
        format!("{seconds:.0} s ago")
    } else {
        format!("{:.0} min ago", seconds / 60.0)
    }
}

/// Re-renders every second while `active`, so relative times ("3 s ago") stay true when nothing
/// else changes. The interval is dropped with the component (or when `active` turns false).
#[hook]
fn use_seconds_ticking(active: bool) {
    let update = use_force_update();
    use_effect_with(active, move |active| {
        let interval = active
            .then(|| gloo_timers::callback::Interval::new(1_000, move || update.force_update()));
        move || drop(interval)
    });
}

fn stat(label: &str, value: impl Into<Html>) -> Html {
    html! { <div class="yp-stat"><b>{ value.into() }</b><span>{ label.to_owned() }</span></div> }
}

fn history_bar(record: &OperationRecord, longest: Duration) -> Html {
    let height = if longest.is_zero() {
        100.0
    } else {
        (record.duration.as_secs_f64() / longest.as_secs_f64() * 100.0).max(5.0)
    };
    let class = match (record.ok, record.kind) {
        (false, _) => "yp-failed",
        (true, OperationKind::Sync) => "yp-sync",
        (true, OperationKind::LocalWrite) => "",
    };
    let title = format!(
        "{:?}: {} op(s), {}, {}{}",
        record.kind,
        record.ops,
        format_bytes(record.bytes as u64),
        format_duration(record.duration),
        record.error.as_deref().map(|e| format!(" — {e}")).unwrap_or_default()
    );
    html! { <i class={class} style={format!("height:{height:.0}%")} title={title}></i> }
}

/// A panel with storage state, queue, totals, durations, the last 100 operations, errors, and
/// Flush / Reset buttons. Uses [`use_persistence`], so it updates live.
///
/// ```no_run
/// use yew::prelude::*;
/// use yewdux_persist::PersistenceDashboard;
///
/// #[function_component]
/// fn Sidebar() -> Html {
///     html! { <PersistenceDashboard title="Saving" /> }
/// }
/// ```
#[function_component]
pub fn PersistenceDashboard(props: &DashboardProps) -> Html {
    let state = use_persistence();
    use_seconds_ticking(
        state.status.last_saved_at.is_some() || state.status.sync.last_sync_at.is_some(),
    );
    let status = &state.status;
    let metrics = &state.metrics;

    let (storage_class, storage_label) = match (status.storage, status.ready) {
        (_, false) => ("yp-badge yp-warn", "loading…".to_owned()),
        (StorageKind::IndexedDb, true) => ("yp-badge yp-ok", "IndexedDB".to_owned()),
        (StorageKind::Memory, true) => ("yp-badge yp-bad", "memory only".to_owned()),
    };
    let healthy = status.failed_keys.is_empty()
        && status.last_error.is_none()
        && status.blocked.is_none()
        && status.collection_errors.is_empty();
    let saving = if healthy {
        if status.queue_depth + status.in_flight == 0 {
            html! { <span class="yp-badge yp-ok">{ "all saved" }</span> }
        } else {
            html! { <span class="yp-badge yp-warn">{ "saving…" }</span> }
        }
    } else {
        html! { <span class="yp-badge yp-bad">{ "save problems" }</span> }
    };
    let last_saved = status.last_saved_at.map(ago).unwrap_or_else(|| "never".into());
    let longest = metrics.history.iter().map(|record| record.duration).max().unwrap_or_default();

    let flush = {
        let state = state.clone();
        Callback::from(move |_| state.flush())
    };
    let reset = {
        let persistence = state.persistence.clone();
        Callback::from(move |_| persistence.reset_metrics())
    };

    html! {
        <section class="yp-dashboard" aria-label={props.title.clone()}>
            <style>{ DASHBOARD_CSS }{ SYNC_CSS }</style>
            <h3>{ props.title.clone() }{ " " }<span class={storage_class}>{ storage_label }</span>{ " " }{ saving }</h3>
            if let Some(note) = &status.storage_note {
                <div class="yp-error">{ note.clone() }</div>
            }
            if let Some(blocked) = &status.blocked {
                <div class="yp-error" role="alert">{ blocked.clone() }</div>
            }
            <div class="yp-row">
                { stat("queued", status.queue_depth.to_string()) }
                { stat("writing", status.in_flight.to_string()) }
                <div class="yp-stat yp-last-saved"><b>{ last_saved }</b><span>{ "last saved" }</span></div>
                { stat("coalesced", metrics.coalesced.to_string()) }
            </div>
            <div class="yp-row">
                { stat("ops", metrics.total_ops.to_string()) }
                { stat("success", format!("{:.1} %", state.success_rate())) }
                { stat("failed", metrics.failed_ops.to_string()) }
                { stat("avg", format_duration(metrics.average_duration)) }
                { stat("p95", format_duration(metrics.p95_duration)) }
                { stat("written", format_bytes(metrics.bytes_written)) }
            </div>
            <div class="yp-history" title="last 100 operations">
                { for metrics.history.iter().map(|record| history_bar(record, longest)) }
            </div>
            if let Some(error) = &status.last_error {
                <div class="yp-error">{ error.clone() }</div>
            }
            { for status.collection_errors.iter().map(|(collection, error)| html! {
                <div class="yp-error">{ format!("{collection}: {error}") }</div>
            }) }
            { for status.failed_keys.iter().map(|key| html! {
                <div class="yp-error">{ format!("not saved: {key}") }</div>
            }) }
            { for status.item_errors.iter().rev().take(5).map(|error| html! {
                <div class="yp-error">{ error.to_string() }</div>
            }) }
            <div class="yp-actions">
                <button onclick={flush}>{ "Save now" }</button>
                <button onclick={reset}>{ "Reset metrics" }</button>
            </div>
            if status.sync.connection != Connection::LocalOnly {
                { sync_section(
                    &state.persistence,
                    &status.sync,
                    props.conflicts_href.as_ref(),
                    ago,
                    stat,
                ) }
            }
        </section>
    }
}
