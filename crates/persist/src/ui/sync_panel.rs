//! The dashboard's sync section: connection badge, changes to push, last sync, progress,
//! conflicts (found, merged, overruled, and the open ones waiting for the user, linked to the
//! app's conflict page when it has one), dead letters (retry / discard), and the manual
//! operations.

use yew::prelude::*;

use crate::runtime::{Connection, SyncStatus};
use crate::sync::SyncProgress;
use crate::Persistence;

/// The dashboard's sync styles (appended to `DASHBOARD_CSS`).
pub(super) const SYNC_CSS: &str = r#"
.yp-sync-section { border-top: 1px solid var(--yp-border, #d8dce3); margin-top: 10px;
  padding-top: 8px; }
.yp-progress { height: 6px; border-radius: 3px; background: var(--yp-border, #d8dce3);
  overflow: hidden; margin: 6px 0; }
.yp-progress i { display: block; height: 100%; background: var(--yp-bar-sync, #8fcf9f); }
.yp-dead { display: flex; gap: 8px; align-items: center; margin: 4px 0; }
.yp-dead span { flex: 1; word-break: break-word; }
.yp-dead button { font: inherit; font-size: 12px; }
.yp-open-conflicts b a { color: inherit; }
.yp-open-conflicts.yp-has-open b { color: var(--yp-warn-fg, #7a5200); }
"#;

/// The badge class and label of a connection.
pub(super) fn connection_badge(connection: Connection) -> Html {
    let class = match connection {
        Connection::Online => "yp-badge yp-ok",
        Connection::Checking | Connection::Degraded | Connection::LocalOnly => "yp-badge yp-warn",
        Connection::Offline | Connection::SignedOut => "yp-badge yp-bad",
    };
    html! { <span class={class} data-connection={connection.label()}>{ connection.label() }</span> }
}

fn progress_bar(progress: SyncProgress) -> Html {
    match progress {
        SyncProgress::Idle => Html::default(),
        SyncProgress::Pushing { done, total } => {
            let percent = if total == 0 { 100.0 } else { done as f64 / total as f64 * 100.0 };
            html! {
                <div class="yp-progress" title={format!("pushed {done} of {total}")}>
                    <i style={format!("width:{percent:.0}%")}></i>
                </div>
            }
        }
        SyncProgress::Pulling { pages, records } => html! {
            <div class="yp-muted">{ format!("pulling: {records} change(s) in {pages} page(s)") }</div>
        },
    }
}

/// The open-conflict count, a link to `conflicts_href` when there is one.
fn open_conflicts(count: usize, conflicts_href: Option<&AttrValue>) -> Html {
    let value = match conflicts_href {
        Some(href) => html! {
            <a class="yp-conflicts-link" href={href.clone()} title="Resolve the open conflicts">{ count }</a>
        },
        None => html! { count },
    };
    html! {
        <div class={classes!("yp-stat", "yp-open-conflicts", (count > 0).then_some("yp-has-open"))}>
            <b>{ value }</b><span>{ "open conflicts" }</span>
        </div>
    }
}

/// The section, for a runtime with a remote; the open-conflict count links to `conflicts_href`
/// when given.
pub(super) fn sync_section(
    persistence: &Persistence,
    sync: &SyncStatus,
    conflicts_href: Option<&AttrValue>,
    ago: impl Fn(f64) -> String,
    stat: impl Fn(&str, Html) -> Html,
) -> Html {
    let sync_now = {
        let persistence = persistence.clone();
        Callback::from(move |_| drop(persistence.sync_now()))
    };
    let pull_all = {
        let persistence = persistence.clone();
        Callback::from(move |_| drop(persistence.pull_all()))
    };
    let push_all = {
        let persistence = persistence.clone();
        // `push_all` works inside its future (it flushes first): run it.
        Callback::from(move |_| {
            let pushing = persistence.push_all();
            wasm_bindgen_futures::spawn_local(async move { drop(pushing.await) });
        })
    };
    let check = {
        let persistence = persistence.clone();
        Callback::from(move |_| drop(persistence.check_connection()))
    };
    let last_sync = sync.last_sync_at.map(ago).unwrap_or_else(|| "never".into());
    // A sync cannot start while one runs, nor reach a server that is down or refuses the token.
    let cannot_sync =
        sync.syncing || matches!(sync.connection, Connection::Offline | Connection::SignedOut);
    html! {
        <div class="yp-sync-section">
            <h3>{ "Sync " }{ connection_badge(sync.connection) }
                if sync.syncing { <span class="yp-badge yp-warn">{ " syncing…" }</span> }
            </h3>
            <div class="yp-row">
                <div class="yp-stat"><b class="yp-pending">{ sync.pending }</b><span>{ "to push" }</span></div>
                { stat("last sync", html! { last_sync }) }
            </div>
            <div class="yp-row">
                { open_conflicts(sync.open_conflicts, conflicts_href) }
                { stat("conflicts", html! { sync.conflicts }) }
                { stat("merged", html! { sync.merged }) }
                { stat("overruled", html! { sync.overruled }) }
            </div>
            { progress_bar(sync.progress) }
            if let Some(error) = &sync.last_error {
                <div class="yp-error">{ format!("last sync: {error}") }</div>
            }
            { for sync.dead_letters.iter().map(|letter| {
                let (collection, id) = (letter.collection.clone(), letter.id.clone());
                let retry = {
                    let (persistence, collection, id) = (persistence.clone(), collection.clone(), id.clone());
                    Callback::from(move |_| persistence.retry_dead_letter(&collection, &id))
                };
                let discard = {
                    let persistence = persistence.clone();
                    Callback::from(move |_| persistence.discard_dead_letter(&collection, &id))
                };
                html! {
                    <div class="yp-dead yp-error">
                        <span>{ format!("rejected {}:{}: {}", letter.collection, letter.id, letter.message) }</span>
                        <button onclick={retry}>{ "Retry" }</button>
                        <button onclick={discard}>{ "Discard" }</button>
                    </div>
                }
            }) }
            <div class="yp-actions">
                <button class="yp-sync-now" onclick={sync_now} disabled={cannot_sync}>{ "Sync now" }</button>
                <button onclick={push_all} disabled={cannot_sync}>{ "Push all" }</button>
                <button onclick={pull_all} disabled={cannot_sync}>{ "Pull all" }</button>
                <button onclick={check}>{ "Check connection" }</button>
            </div>
        </div>
    }
}
