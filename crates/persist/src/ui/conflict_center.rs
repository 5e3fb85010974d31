//! [`ConflictCenter`]: a drop-in page where the user settles the conflicts the runtime left
//! open (collections with [`ConflictStrategy::Manual`], a merge whose fallback is
//! [`MergeFallback::Manual`](persist_engine::MergeFallback::Manual), or an app resolver that
//! declined).
//!
//! It lists the open conflicts ([`Persistence::conflicts`], reloaded after every sync and
//! whenever the open-conflict count changes), filterable by collection. For the selected one it
//! shows this device's version, the last agreed version (the base) and the server's version
//! side by side, field by field ([`field_changes`]): a field changed here, on the server, or on
//! both sides is highlighted, the fields a three-way merge cannot combine are marked, and text
//! fields with several lines show line diffs base → local and base → remote ([`line_diff`]).
//!
//! The user keeps this device's version, keeps the server's, merges ([`merge3`], choosing which
//! side wins the fields changed on both sides, and seeing the result before using it), or edits
//! the JSON by hand (invalid JSON resolves nothing). "Resolve all" settles every conflict shown
//! (all of them, or one collection's) with one choice. The automatic strategy of each collection
//! (those with open conflicts, plus the ones named in [`ConflictCenterProps::collections`]) is
//! shown and can be changed ([`Persistence::set_conflict_strategy`]); it applies to future
//! conflicts.
//!
//! Stable hooks for tests: the list items are `li.cc-item` with `data-key="collection/id"`; the
//! buttons `#cc-keep-local`, `#cc-keep-remote`, `#cc-merge`, `#cc-use-merged`, `#cc-edit`,
//! `#cc-save-edit`, `#cc-resolve-all`; the selects `#cc-filter`, `#cc-merge-prefer`,
//! `#cc-resolve-all-choice` and `select.cc-strategy-select[data-collection]`; the textarea
//! `#cc-edit-text`; the number of conflicts listed `#cc-count`; messages `#cc-error`,
//! `#cc-edit-error` and `#cc-message`.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::future::Future;
use std::rc::Rc;

use persist_engine::ConflictStrategy;
use serde_json::Value;
use wasm_bindgen::JsValue;
use yew::prelude::*;

use super::hook::use_persistence;
use crate::local::{Conflict, Resolution, ResolveOutcome};
use crate::merge::{field_changes, line_diff, merge3, FieldChange, LineKind, Side};
use crate::Persistence;

/// The conflict center's stylesheet (class names start with `cc-`). It is included by the
/// component. Colours come from the dashboard's CSS variables (`--yp-bg`, `--yp-fg`,
/// `--yp-muted`, `--yp-border`, `--yp-ok-bg`/`-fg`, `--yp-warn-bg`/`-fg`, `--yp-bad-bg`/`-fg`,
/// `--yp-button-bg`) plus `--cc-local` and `--cc-remote` (the highlight of a field changed on
/// this device / on the server) and `--cc-both`, with light defaults.
pub const CONFLICT_CENTER_CSS: &str = r#"
.cc-center { font: 13px/1.4 system-ui, sans-serif; color: var(--yp-fg, #1d2330);
  background: var(--yp-bg, #fff); border: 1px solid var(--yp-border, #d8dce3); border-radius: 8px;
  padding: 12px 14px; }
.cc-center h3 { margin: 0; font-size: 15px; }
.cc-center h4 { margin: 12px 0 6px; font-size: 13px; }
.cc-center button, .cc-center select, .cc-center textarea { font: inherit; color: inherit; }
.cc-center button, .cc-center select { padding: 3px 10px; border-radius: 5px;
  border: 1px solid var(--yp-border, #b8c0cc); background: var(--yp-button-bg, #f6f7f9); }
.cc-center button { cursor: pointer; }
.cc-center button:disabled { cursor: default; opacity: .55; }
.cc-toolbar { display: flex; flex-wrap: wrap; align-items: center; gap: 8px 14px;
  margin-bottom: 10px; }
.cc-toolbar label { display: inline-flex; align-items: center; gap: 6px; }
.cc-count { display: inline-block; min-width: 1.6em; text-align: center; border-radius: 10px;
  padding: 0 7px; background: var(--yp-warn-bg, #fff2d6); color: var(--yp-warn-fg, #7a5200); }
.cc-count.cc-none { background: var(--yp-ok-bg, #dff5e6); color: var(--yp-ok-fg, #17623a); }
.cc-spacer { flex: 1; }
.cc-body { display: grid; grid-template-columns: minmax(160px, 240px) 1fr; gap: 12px; }
@media (max-width: 720px) { .cc-body { grid-template-columns: 1fr; } }
.cc-list { list-style: none; margin: 0; padding: 0; display: flex; flex-direction: column;
  gap: 4px; }
.cc-item button { width: 100%; text-align: left; display: flex; flex-direction: column;
  gap: 1px; }
.cc-item.cc-selected button { border-color: var(--yp-fg, #1d2330);
  box-shadow: inset 3px 0 0 var(--yp-fg, #1d2330); }
.cc-item-key { font-weight: 600; word-break: break-all; }
.cc-item-detail, .cc-muted { color: var(--yp-muted, #5b6474); font-size: 12px; }
.cc-state { display: block; font-size: 0.75em; font-weight: normal; color: var(--yp-muted, #5b6474); }
.cc-empty { color: var(--yp-muted, #5b6474); padding: 18px 0; text-align: center; }
.cc-detail { min-width: 0; }
.cc-detail-head { display: flex; flex-wrap: wrap; gap: 4px 14px; align-items: baseline; }
.cc-legend { display: flex; flex-wrap: wrap; gap: 6px 12px; margin: 6px 0; font-size: 12px; }
.cc-legend span { padding: 0 6px; border-radius: 3px; }
.cc-table-wrap { overflow-x: auto; }
.cc-fields { width: 100%; border-collapse: collapse; table-layout: fixed; }
.cc-fields th, .cc-fields td { border: 1px solid var(--yp-border, #d8dce3); padding: 4px 6px;
  vertical-align: top; text-align: left; word-break: break-word; }
.cc-fields th { font-size: 12px; color: var(--yp-muted, #5b6474); font-weight: 600; }
.cc-fields th.cc-path, .cc-fields td.cc-path { width: 18%; font-family: ui-monospace, monospace; }
.cc-fields td pre, .cc-raw pre, .cc-merged { margin: 0; white-space: pre-wrap;
  word-break: break-word; font: 12px/1.4 ui-monospace, monospace; }
.cc-changed-local, .cc-legend .cc-changed-local { background: var(--cc-local, #e3efff); }
.cc-changed-remote, .cc-legend .cc-changed-remote { background: var(--cc-remote, #efe3ff); }
.cc-changed-both > td.cc-path, .cc-legend .cc-changed-both { background: var(--cc-both, #fff2d6); }
.cc-conflicting > td.cc-path, .cc-legend .cc-conflicting { background: var(--yp-bad-bg, #fde1e1);
  color: var(--yp-bad-fg, #8a1c1c); }
.cc-absent { color: var(--yp-muted, #5b6474); font-style: italic; }
.cc-line { display: block; }
.cc-line-added { background: var(--yp-ok-bg, #dff5e6); color: var(--yp-ok-fg, #17623a); }
.cc-line-removed { background: var(--yp-bad-bg, #fde1e1); color: var(--yp-bad-fg, #8a1c1c);
  text-decoration: line-through; }
.cc-raw { margin-top: 8px; }
.cc-raw-cols { display: grid; grid-template-columns: repeat(3, minmax(0, 1fr)); gap: 8px;
  margin-top: 6px; }
.cc-raw-cols > div { border: 1px solid var(--yp-border, #d8dce3); border-radius: 5px;
  padding: 6px; min-width: 0; }
.cc-actions { display: flex; flex-wrap: wrap; gap: 8px; margin: 10px 0 4px; }
.cc-panel { border: 1px solid var(--yp-border, #d8dce3); border-radius: 6px; padding: 8px 10px;
  margin-top: 8px; }
.cc-panel label { display: inline-flex; align-items: center; gap: 6px; }
.cc-merged { border: 1px solid var(--yp-border, #d8dce3); border-radius: 5px; padding: 6px;
  margin: 6px 0; max-height: 320px; overflow: auto; }
.cc-edit-text { width: 100%; box-sizing: border-box; min-height: 180px; margin: 6px 0;
  font: 12px/1.4 ui-monospace, monospace; border: 1px solid var(--yp-border, #b8c0cc);
  border-radius: 5px; padding: 6px; background: var(--yp-bg, #fff); }
.cc-error { color: var(--yp-bad-fg, #8a1c1c); margin: 6px 0; word-break: break-word; }
.cc-message { color: var(--yp-ok-fg, #17623a); margin: 6px 0; }
.cc-strategies { border-top: 1px solid var(--yp-border, #d8dce3); margin-top: 14px;
  padding-top: 4px; }
.cc-strategy { display: flex; align-items: center; gap: 10px; margin: 4px 0; }
.cc-strategy > span { min-width: 120px; font-family: ui-monospace, monospace; }
"#;

/// Props of [`ConflictCenter`].
#[derive(Debug, Clone, PartialEq, Properties)]
pub struct ConflictCenterProps {
    /// Heading of the page.
    #[prop_or(AttrValue::Static("Conflicts"))]
    pub title: AttrValue,
    /// Collections whose automatic conflict strategy is shown (and can be changed) even while
    /// they have no open conflict. Collections with open conflicts are always shown.
    #[prop_or_default]
    pub collections: Vec<AttrValue>,
}

/// What the detail pane shows for the selected conflict.
#[derive(Debug, Clone, PartialEq)]
enum Mode {
    /// The versions and their differences.
    View,
    /// The merged result, the side winning the fields changed on both sides.
    Merge(Side),
    /// The JSON editor, with its text and the parse error of the last save.
    Edit { text: String, error: Option<String> },
}

/// A "Resolve all" choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bulk {
    KeepLocal,
    KeepRemote,
    MergeLocal,
    MergeRemote,
}

impl Bulk {
    const ALL: [Bulk; 4] = [Bulk::KeepLocal, Bulk::KeepRemote, Bulk::MergeLocal, Bulk::MergeRemote];

    fn value(self) -> &'static str {
        match self {
            Bulk::KeepLocal => "keep-local",
            Bulk::KeepRemote => "keep-remote",
            Bulk::MergeLocal => "merge-local",
            Bulk::MergeRemote => "merge-remote",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Bulk::KeepLocal => "keep this device's versions",
            Bulk::KeepRemote => "keep the server's versions",
            Bulk::MergeLocal => "merge, this device wins conflicting fields",
            Bulk::MergeRemote => "merge, the server wins conflicting fields",
        }
    }

    fn parse(value: &str) -> Bulk {
        Bulk::ALL.into_iter().find(|bulk| bulk.value() == value).unwrap_or(Bulk::KeepLocal)
    }

    fn resolution(self, conflict: &Conflict) -> Resolution {
        let prefer = match self {
            Bulk::KeepLocal => return Resolution::KeepLocal,
            Bulk::KeepRemote => return Resolution::KeepRemote,
            Bulk::MergeLocal => Side::Local,
            Bulk::MergeRemote => Side::Remote,
        };
        Resolution::Value(merged(conflict, prefer))
    }
}

/// The three-way merge of `conflict`, `prefer` winning the fields changed on both sides.
fn merged(conflict: &Conflict, prefer: Side) -> Option<Value> {
    let merge = merge3(
        conflict.base.as_ref(),
        conflict.local.as_ref(),
        conflict.remote.as_ref(),
        Some(prefer),
    );
    // With a preference the merge never fails; should it, the preferred side is kept whole.
    merge.unwrap_or_else(|_| match prefer {
        Side::Local => conflict.local.clone(),
        Side::Remote => conflict.remote.clone(),
    })
}

/// The fields changed on both sides that a merge cannot combine (now: `local` is the item's
/// current value), sorted; `""` is the whole value.
fn conflicting_paths(conflict: &Conflict) -> Vec<String> {
    merge3(conflict.base.as_ref(), conflict.local.as_ref(), conflict.remote.as_ref(), None)
        .err()
        .unwrap_or_default()
}

/// Whether the field at `path` is, or is inside, one of the conflicting `paths`.
fn is_conflicting(paths: &[String], path: &str) -> bool {
    paths.iter().any(|conflict| {
        conflict.is_empty()
            || conflict == path
            || path.strip_prefix(conflict.as_str()).is_some_and(|rest| rest.starts_with('.'))
    })
}

fn key_of(conflict: &Conflict) -> String {
    format!("{}/{}", conflict.collection, conflict.id)
}

/// A value as editable JSON text (`null` for none).
fn pretty(value: Option<&Value>) -> String {
    value.map_or_else(|| "null".to_owned(), |v| serde_json::to_string_pretty(v).unwrap_or_default())
}

/// A text worth a line diff: a string with several lines.
fn multiline(value: Option<&Value>) -> Option<&str> {
    value.and_then(Value::as_str).filter(|text| text.contains('\n'))
}

/// The value of the form control an event came from (`<select>`, `<textarea>`, `<input>`).
fn value_of(event: &Event) -> String {
    event
        .target()
        .and_then(|target| js_sys::Reflect::get(target.as_ref(), &JsValue::from_str("value")).ok())
        .and_then(|value| value.as_string())
        .unwrap_or_default()
}

/// A hybrid-clock wall time as local date and time.
fn when(wall_ms: u64) -> String {
    if wall_ms == 0 {
        return "unknown time".into();
    }
    let date = js_sys::Date::new(&JsValue::from_f64(wall_ms as f64));
    String::from(date.to_locale_string("default", &JsValue::UNDEFINED))
}

/// A one-line description of a conflict for the list.
fn summary(conflict: &Conflict) -> String {
    let name = conflict
        .local
        .as_ref()
        .or(conflict.remote.as_ref())
        .and_then(|value| ["name", "title"].iter().find_map(|k| value.get(*k)?.as_str()))
        .filter(|name| !name.trim().is_empty())
        .map(|name| format!("“{name}” · "))
        .unwrap_or_default();
    let what = match (&conflict.local, &conflict.remote) {
        (None, _) => "deleted here".to_owned(),
        (_, None) => "deleted on the server".to_owned(),
        _ => match conflicting_paths(conflict).len() {
            0 => "merges cleanly".to_owned(),
            1 => "1 conflicting field".to_owned(),
            n => format!("{n} conflicting fields"),
        },
    };
    format!("{name}{what}")
}

/// One value in a cell: compact JSON, or the text itself.
fn value_html(value: Option<&Value>, absent: &'static str) -> Html {
    match value {
        None => html! { <span class="cc-absent">{ absent }</span> },
        Some(Value::String(text)) if text.contains('\n') => html! { <pre>{ text.clone() }</pre> },
        Some(value) => html! { <pre>{ serde_json::to_string(value).unwrap_or_default() }</pre> },
    }
}

/// A line diff `old` → `new`.
fn lines_html(old: &str, new: &str) -> Html {
    html! {
        <pre class="cc-lines">
            { for line_diff(old, new).into_iter().map(|line| {
                let (class, mark) = match line.kind {
                    LineKind::Same => ("cc-line cc-line-same", "  "),
                    LineKind::Removed => ("cc-line cc-line-removed", "- "),
                    LineKind::Added => ("cc-line cc-line-added", "+ "),
                };
                html! { <span class={class}>{ mark }{ line.text }</span> }
            }) }
        </pre>
    }
}

/// The local or remote cell of a field: a line diff from the base for texts that changed,
/// else the value.
fn side_cell(
    change: &FieldChange,
    value: Option<&Value>,
    changed: bool,
    class: &'static str,
) -> Html {
    let text = multiline(value);
    let base_text = change.base.as_ref().and_then(Value::as_str);
    let content = match (changed, text) {
        (true, Some(text)) if base_text.is_some() || change.base.is_none() => {
            lines_html(base_text.unwrap_or(""), text)
        }
        _ => value_html(value, "absent"),
    };
    html! { <td class={classes!(changed.then_some(class))}>{ content }</td> }
}

/// The field-by-field table of a conflict.
fn fields_table(conflict: &Conflict, conflicting: &[String]) -> Html {
    let changes =
        field_changes(conflict.base.as_ref(), conflict.local.as_ref(), conflict.remote.as_ref());
    if changes.is_empty() {
        return html! { <p class="cc-muted">{ "Both versions are the same as the base." }</p> };
    }
    let rows = changes.iter().map(|change| {
        let row_class = classes!(
            "cc-field",
            match (change.local_changed, change.remote_changed) {
                (true, true) => "cc-changed-both",
                (true, false) => "cc-changed-local-only",
                (false, true) => "cc-changed-remote-only",
                (false, false) => "cc-unchanged",
            },
            is_conflicting(conflicting, &change.path).then_some("cc-conflicting"),
        );
        let path = if change.path.is_empty() { "(whole value)".to_owned() } else { change.path.clone() };
        // The row's state in words too, not only in colour (screen readers, colour blindness).
        let state = match (change.local_changed, change.remote_changed) {
            (true, true) if is_conflicting(conflicting, &change.path) => "changed on both, cannot merge",
            (true, true) => "changed on both",
            (true, false) => "changed here",
            (false, true) => "changed on the server",
            (false, false) => "unchanged",
        };
        html! {
            <tr class={row_class} data-path={change.path.clone()}>
                <td class="cc-path">{ path }<span class="cc-state">{ state }</span></td>
                { side_cell(change, change.local.as_ref(), change.local_changed, "cc-changed-local") }
                <td class="cc-base">{ value_html(change.base.as_ref(), "absent") }</td>
                { side_cell(change, change.remote.as_ref(), change.remote_changed, "cc-changed-remote") }
            </tr>
        }
    });
    html! {
        <div class="cc-table-wrap">
            <table class="cc-fields">
                <thead>
                    <tr>
                        <th class="cc-path">{ "Field" }</th>
                        <th>{ "This device" }</th>
                        <th>{ "Base (last agreed)" }</th>
                        <th>{ "Server" }</th>
                    </tr>
                </thead>
                <tbody>{ for rows }</tbody>
            </table>
        </div>
    }
}

/// The three whole values, side by side.
fn raw_values(conflict: &Conflict) -> Html {
    let column = |title: &'static str, value: Option<&Value>, absent: &'static str| {
        html! {
            <div>
                <b>{ title }</b>
                if let Some(value) = value {
                    <pre>{ pretty(Some(value)) }</pre>
                } else {
                    <div class="cc-absent">{ absent }</div>
                }
            </div>
        }
    };
    html! {
        <details class="cc-raw">
            <summary>{ "Whole versions (JSON)" }</summary>
            <div class="cc-raw-cols">
                { column("This device", conflict.local.as_ref(), "deleted") }
                { column("Base", conflict.base.as_ref(), "unknown or absent") }
                { column("Server", conflict.remote.as_ref(), "deleted") }
            </div>
        </details>
    }
}

/// Runs resolutions: one at a time (the buttons are disabled meanwhile), the outcome shown
/// inline, the list reloaded afterwards.
#[derive(Clone)]
struct Runner {
    busy: UseStateHandle<bool>,
    outcome: UseStateHandle<Option<Result<String, String>>>,
    reload: UseStateHandle<u64>,
    reloads: Rc<RefCell<u64>>,
}

impl Runner {
    fn run(&self, work: impl Future<Output = Result<String, String>> + 'static) {
        let this = self.clone();
        self.busy.set(true);
        self.outcome.set(None);
        wasm_bindgen_futures::spawn_local(async move {
            let result = work.await;
            this.busy.set(false);
            this.outcome.set(Some(result));
            this.reload_list();
        });
    }

    fn reload_list(&self) {
        let next = {
            let mut reloads = self.reloads.borrow_mut();
            *reloads += 1;
            *reloads
        };
        self.reload.set(next);
    }

    fn resolve(&self, persistence: &Persistence, conflict: &Conflict, resolution: Resolution) {
        let key = key_of(conflict);
        // The conflict as shown: if the server's version moved since, nothing is written.
        let resolving = persistence.resolve_conflict(conflict, resolution);
        self.run(async move {
            match resolving.await {
                Ok(ResolveOutcome::Resolved) => Ok(format!("Resolved {key}.")),
                Ok(ResolveOutcome::NotOpen) => {
                    Ok(format!("{key} has no open conflict any more (resolved elsewhere)."))
                }
                Ok(ResolveOutcome::RemoteChanged) => Err(format!(
                    "The server's version of {key} changed while you looked: nothing was \
                     saved. Review the new version and decide again."
                )),
                Err(error) => Err(format!("Could not resolve {key}: {error}")),
            }
        });
    }
}

/// The conflict center: a page where the user settles the conflicts the runtime left open
/// ([`ConflictStrategy::Manual`], a merge whose fallback is
/// [`MergeFallback::Manual`](persist_engine::MergeFallback::Manual), an app resolver that
/// declined). Uses [`use_persistence`], so it follows syncs and resolutions made in other tabs.
///
/// - The open conflicts ([`Persistence::conflicts`]), filterable by collection.
/// - For the selected one: this device's version, the base (last agreed) and the server's
///   version side by side, field by field ([`field_changes`]); fields changed here, on the
///   server or on both sides are highlighted, those a merge cannot combine are marked, and
///   multi-line texts show line diffs base → local and base → remote ([`line_diff`]).
/// - Keep local, keep remote, merge ([`merge3`]: the result is shown first, with a choice of
///   which side wins the fields changed on both sides, then "Use merged"), or edit the JSON by
///   hand (prefilled with the merge shown, else the local version; invalid JSON resolves
///   nothing, `null` deletes the item).
/// - "Resolve all" (of the collection filtered on, or all) with one choice: keep local, keep
///   remote, merge preferring local, merge preferring remote.
/// - Each collection's automatic strategy for future conflicts
///   ([`Persistence::set_conflict_strategy`]), for collections with open conflicts and those in
///   [`ConflictCenterProps::collections`].
///
/// Stable hooks for tests: list items `li.cc-item[data-key="collection/id"]`; buttons
/// `#cc-keep-local`, `#cc-keep-remote`, `#cc-merge`, `#cc-use-merged`, `#cc-edit`,
/// `#cc-save-edit`, `#cc-resolve-all`; selects `#cc-filter`, `#cc-merge-prefer`,
/// `#cc-resolve-all-choice`, `select.cc-strategy-select[data-collection]`; the textarea
/// `#cc-edit-text`; `#cc-count` (conflicts listed; `data-total`: all open ones); messages
/// `#cc-error`, `#cc-edit-error`, `#cc-message`; the empty state `.cc-empty` ("No conflicts").
///
/// ```no_run
/// use yew::prelude::*;
/// use yewdux_persist::ConflictCenter;
///
/// #[function_component]
/// fn ConflictsPage() -> Html {
///     let collections = vec![AttrValue::from("notes")];
///     html! { <ConflictCenter title="Conflicts" {collections} /> }
/// }
/// ```
#[function_component]
pub fn ConflictCenter(props: &ConflictCenterProps) -> Html {
    let state = use_persistence();
    let persistence = state.persistence.clone();
    let list = use_state(|| None::<Rc<Vec<Conflict>>>);
    let load_error = use_state(|| None::<String>);
    let filter = use_state(String::new);
    let selected = use_state(|| None::<(String, String)>);
    let mode = use_state(|| (String::new(), Mode::View));
    let bulk = use_state(|| Bulk::KeepLocal);
    let strategy_error = use_state(|| None::<String>);
    let update = use_force_update();
    let runner = Runner {
        busy: use_state(|| false),
        outcome: use_state(|| None),
        reload: use_state(|| 0),
        reloads: use_mut_ref(|| 0),
    };
    let generation = use_mut_ref(|| 0_u64);

    // (Re)load after each sync, when the open-conflict count changes (another tab resolved,
    // a sync found some), after local saves (`local` is the item's current value) and after
    // each resolution here. Only the latest load is shown.
    {
        let sync = &state.status.sync;
        let deps = (
            sync.syncs,
            sync.open_conflicts,
            state.status.last_saved_at.map(f64::to_bits),
            *runner.reload,
        );
        let (list, load_error, persistence) =
            (list.clone(), load_error.clone(), persistence.clone());
        use_effect_with(deps, move |_| {
            let this = {
                let mut generation = generation.borrow_mut();
                *generation += 1;
                *generation
            };
            let loading = persistence.conflicts();
            wasm_bindgen_futures::spawn_local(async move {
                let result = loading.await;
                if *generation.borrow() != this {
                    return;
                }
                match result {
                    Ok(conflicts) => {
                        list.set(Some(Rc::new(conflicts)));
                        load_error.set(None);
                    }
                    Err(error) => {
                        load_error.set(Some(format!("Could not load conflicts: {error}")))
                    }
                }
            });
        });
    }

    let all: Rc<Vec<Conflict>> = (*list).clone().unwrap_or_default();
    let with_conflicts: BTreeSet<String> = all.iter().map(|c| c.collection.clone()).collect();
    let filter_value = (*filter).clone();
    let shown: Vec<&Conflict> =
        all.iter().filter(|c| filter_value.is_empty() || c.collection == filter_value).collect();
    // A selection that left the list (resolved, here or in another tab) selects nothing rather
    // than the next conflict, so a click meant for one item never acts on another.
    let current = match (*selected).as_ref() {
        Some((col, id)) => shown.iter().copied().find(|c| c.collection == *col && c.id == *id),
        None => shown.first().copied(),
    };
    let current_key = current.map(key_of).unwrap_or_default();
    // The mode belongs to the conflict it was chosen for.
    let current_mode = if mode.0 == current_key { mode.1.clone() } else { Mode::View };
    let busy = *runner.busy;

    // Toolbar: count, filter, resolve all.
    let mut filter_options: BTreeSet<String> = with_conflicts.clone();
    if !filter_value.is_empty() {
        filter_options.insert(filter_value.clone());
    }
    let on_filter = Callback::from(move |e: Event| filter.set(value_of(&e)));
    let on_bulk_choice = {
        let bulk = bulk.clone();
        Callback::from(move |e: Event| bulk.set(Bulk::parse(&value_of(&e))))
    };
    let on_resolve_all = {
        let (persistence, runner, choice) = (persistence.clone(), runner.clone(), *bulk);
        let scope = (!filter_value.is_empty()).then(|| filter_value.clone());
        Callback::from(move |_: MouseEvent| {
            let resolving = persistence
                .resolve_conflicts(scope.as_deref(), move |conflict| choice.resolution(conflict));
            runner.run(async move {
                match resolving.await {
                    Ok(1) => Ok("Resolved the one conflict shown.".to_owned()),
                    Ok(n) => Ok(format!("Resolved {n} conflicts.")),
                    Err(error) => Err(format!("Resolving all stopped: {error}")),
                }
            });
        })
    };
    let count_class = classes!("cc-count", shown.is_empty().then_some("cc-none"));
    let toolbar = html! {
        <div class="cc-toolbar">
            <h3>
                { props.title.clone() }{ " " }
                <span id="cc-count" class={count_class} data-total={all.len().to_string()}>
                    { shown.len() }
                </span>
            </h3>
            <label>
                <span>{ "Collection" }</span>
                <select id="cc-filter" onchange={on_filter}>
                    <option value="" selected={filter_value.is_empty()}>{ "All collections" }</option>
                    { for filter_options.iter().map(|collection| html! {
                        <option value={collection.clone()} selected={*collection == filter_value}>
                            { collection.clone() }
                        </option>
                    }) }
                </select>
            </label>
            <span class="cc-spacer"></span>
            <label>
                <span>{ "Resolve all: " }</span>
                <select id="cc-resolve-all-choice" onchange={on_bulk_choice}>
                    { for Bulk::ALL.into_iter().map(|choice| html! {
                        <option value={choice.value()} selected={choice == *bulk}>{ choice.label() }</option>
                    }) }
                </select>
            </label>
            <button id="cc-resolve-all" onclick={on_resolve_all} disabled={busy || shown.is_empty()}>
                { if filter_value.is_empty() { "Resolve all".to_owned() } else { format!("Resolve all in {filter_value}") } }
            </button>
        </div>
    };

    // The list.
    let items = shown.iter().map(|conflict| {
        let key = key_of(conflict);
        let is_current = key == current_key;
        let select = {
            let (selected, item) = (selected.clone(), (conflict.collection.clone(), conflict.id.clone()));
            Callback::from(move |_: MouseEvent| selected.set(Some(item.clone())))
        };
        html! {
            <li class={classes!("cc-item", is_current.then_some("cc-selected"))} data-key={key.clone()} key={key.clone()}>
                <button onclick={select} aria-current={is_current.then_some("true")}>
                    <span class="cc-item-key">{ key }</span>
                    <span class="cc-item-detail">{ summary(conflict) }</span>
                </button>
            </li>
        }
    });

    let detail = match current {
        Some(conflict) => detail_pane(conflict, &current_mode, busy, &persistence, &runner, &mode),
        None => {
            html! { <p class="cc-empty" role="status">{ "Pick a conflict from the list." }</p> }
        }
    };

    let body = match (&*list, &*load_error) {
        (None, None) => html! { <p class="cc-empty" role="status">{ "Loading conflicts…" }</p> },
        (None, Some(_)) => Html::default(),
        (Some(_), _) if shown.is_empty() => {
            let text = if filter_value.is_empty() {
                "No conflicts".to_owned()
            } else {
                format!("No conflicts in {filter_value}")
            };
            html! { <p class="cc-empty" role="status">{ text }</p> }
        }
        (Some(_), _) => html! {
            <div class="cc-body">
                <ul class="cc-list" aria-label="Open conflicts">{ for items }</ul>
                <div class="cc-detail">{ detail }</div>
            </div>
        },
    };

    // Automatic strategies.
    let mut strategy_collections: BTreeSet<String> = with_conflicts;
    strategy_collections.extend(props.collections.iter().map(|c| c.to_string()));
    let strategies = strategy_collections.iter().map(|collection| {
        let strategy_now = persistence.conflict_strategy(collection);
        let onchange = {
            let (persistence, collection) = (persistence.clone(), collection.clone());
            let (strategy_error, update) = (strategy_error.clone(), update.clone());
            Callback::from(move |e: Event| {
                let chosen =
                    value_of(&e).parse::<usize>().ok().and_then(|i| ConflictStrategy::ALL.get(i));
                let Some(&strategy) = chosen else { return };
                match persistence.set_conflict_strategy(&collection, strategy) {
                    Ok(()) => strategy_error.set(None),
                    Err(error) => strategy_error.set(Some(format!("{collection}: {error}"))),
                }
                update.force_update();
            })
        };
        html! {
            <label class="cc-strategy">
                <span>{ collection.clone() }</span>
                <select class="cc-strategy-select" data-collection={collection.clone()} {onchange}
                    aria-label={format!("Automatic conflict strategy of {collection}")}>
                    { for ConflictStrategy::ALL.iter().enumerate().map(|(index, strategy)| html! {
                        <option value={index.to_string()} selected={*strategy == strategy_now}>
                            { strategy.label() }
                        </option>
                    }) }
                </select>
            </label>
        }
    });

    let outcome = match &*runner.outcome {
        Some(Err(error)) => {
            html! { <div id="cc-error" class="cc-error" role="alert">{ error.clone() }</div> }
        }
        Some(Ok(message)) => {
            html! { <div id="cc-message" class="cc-message" role="status">{ message.clone() }</div> }
        }
        None => Html::default(),
    };

    html! {
        <section class="cc-center" aria-label={props.title.clone()}>
            <style>{ CONFLICT_CENTER_CSS }</style>
            { toolbar }
            if let Some(error) = &*load_error {
                <div class="cc-error" role="alert">{ error.clone() }</div>
            }
            { outcome }
            { body }
            if !strategy_collections.is_empty() {
                <div class="cc-strategies">
                    <h4>{ "Automatic resolution of future conflicts" }</h4>
                    { for strategies }
                    if let Some(error) = &*strategy_error {
                        <div class="cc-error" role="alert">{ error.clone() }</div>
                    }
                </div>
            }
        </section>
    }
}

/// The selected conflict: its versions, differences, and the ways to settle it.
fn detail_pane(
    conflict: &Conflict,
    mode: &Mode,
    busy: bool,
    persistence: &Persistence,
    runner: &Runner,
    set_mode: &UseStateHandle<(String, Mode)>,
) -> Html {
    let key = key_of(conflict);
    let conflicting = conflicting_paths(conflict);
    let set = {
        let (set_mode, key) = (set_mode.clone(), key.clone());
        move |mode: Mode| set_mode.set((key.clone(), mode))
    };
    let resolve_with = |resolution: Resolution| {
        let (persistence, runner, conflict) =
            (persistence.clone(), runner.clone(), conflict.clone());
        Callback::from(move |_: MouseEvent| {
            runner.resolve(&persistence, &conflict, resolution.clone());
        })
    };
    let keep_local = resolve_with(Resolution::KeepLocal);
    let keep_remote = resolve_with(Resolution::KeepRemote);
    let merge = {
        let set = set.clone();
        Callback::from(move |_: MouseEvent| set(Mode::Merge(Side::Local)))
    };
    let edit = {
        let set = set.clone();
        // Prefilled with the merge shown, else this device's version.
        let text = match mode {
            Mode::Merge(prefer) => pretty(merged(conflict, *prefer).as_ref()),
            _ => pretty(conflict.local.as_ref()),
        };
        Callback::from(move |_: MouseEvent| set(Mode::Edit { text: text.clone(), error: None }))
    };
    let cancel = {
        let set = set.clone();
        Callback::from(move |_: MouseEvent| set(Mode::View))
    };

    let panel = match mode {
        Mode::View => Html::default(),
        Mode::Merge(prefer) => {
            let result = merged(conflict, *prefer);
            let on_prefer = Callback::from(move |e: Event| {
                let side = if value_of(&e) == "remote" { Side::Remote } else { Side::Local };
                set(Mode::Merge(side));
            });
            let explanation = if conflicting.is_empty() {
                html! { <p>{ "The changes merge without conflicts." }</p> }
            } else {
                let names: Vec<&str> = conflicting
                    .iter()
                    .map(|p| if p.is_empty() { "(whole value)" } else { p.as_str() })
                    .collect();
                html! {
                    <p>
                        { format!("Changed on both sides: {}. ", names.join(", ")) }
                        <label>
                            <span>{ "They take" }</span>
                            <select id="cc-merge-prefer" onchange={on_prefer}>
                                <option value="local" selected={*prefer == Side::Local}>{ "this device's value" }</option>
                                <option value="remote" selected={*prefer == Side::Remote}>{ "the server's value" }</option>
                            </select>
                        </label>
                    </p>
                }
            };
            let use_merged = resolve_with(Resolution::Value(result.clone()));
            html! {
                <div class="cc-panel cc-merge-panel">
                    <b>{ "Merged result" }</b>
                    { explanation }
                    if let Some(value) = &result {
                        <pre id="cc-merged" class="cc-merged">{ pretty(Some(value)) }</pre>
                    } else {
                        <p id="cc-merged" class="cc-absent">{ "The item is deleted." }</p>
                    }
                    <div class="cc-actions">
                        <button id="cc-use-merged" onclick={use_merged} disabled={busy}>{ "Use merged" }</button>
                        <button id="cc-cancel-merge" onclick={cancel.clone()}>{ "Cancel" }</button>
                    </div>
                </div>
            }
        }
        Mode::Edit { text, error } => {
            let on_input = {
                let set = set.clone();
                Callback::from(move |e: InputEvent| {
                    set(Mode::Edit { text: value_of(&e), error: None });
                })
            };
            let save = {
                let text = text.clone();
                let (persistence, runner, conflict) =
                    (persistence.clone(), runner.clone(), conflict.clone());
                Callback::from(move |_: MouseEvent| match serde_json::from_str::<Value>(&text) {
                    Ok(value) => {
                        let value = (!value.is_null()).then_some(value);
                        runner.resolve(&persistence, &conflict, Resolution::Value(value));
                    }
                    Err(error) => set(Mode::Edit {
                        text: text.clone(),
                        error: Some(format!("Invalid JSON: {error}. Nothing was resolved.")),
                    }),
                })
            };
            html! {
                <div class="cc-panel cc-edit-panel">
                    <label for="cc-edit-text"><b>{ "Edit by hand" }</b></label>
                    <span class="cc-muted">{ " JSON; null deletes the item." }</span>
                    <textarea id="cc-edit-text" class="cc-edit-text" value={text.clone()}
                        oninput={on_input} spellcheck="false"
                        aria-invalid={error.is_some().then_some("true")} />
                    if let Some(error) = error {
                        <div id="cc-edit-error" class="cc-error" role="alert">{ error.clone() }</div>
                    }
                    <div class="cc-actions">
                        <button id="cc-save-edit" onclick={save} disabled={busy}>{ "Save and resolve" }</button>
                        <button id="cc-cancel-edit" onclick={cancel}>{ "Cancel" }</button>
                    </div>
                </div>
            }
        }
    };

    let remote_when = conflict
        .remote_hlc
        .as_ref()
        .map_or_else(|| "unstamped".to_owned(), |hlc| when(hlc.wall_ms));
    html! {
        <div class="cc-conflict" data-key={key.clone()}>
            <div class="cc-detail-head">
                <h4>{ key }</h4>
                <span class="cc-muted">{ format!("changed here {}", when(conflict.local_hlc.wall_ms)) }</span>
                <span class="cc-muted">
                    { format!("server revision {} ({remote_when})", conflict.remote_revision) }
                </span>
            </div>
            <div class="cc-legend" aria-hidden="true">
                <span class="cc-changed-local">{ "changed here" }</span>
                <span class="cc-changed-remote">{ "changed on the server" }</span>
                <span class="cc-changed-both">{ "changed on both" }</span>
                <span class="cc-conflicting">{ "cannot merge" }</span>
            </div>
            { fields_table(conflict, &conflicting) }
            { raw_values(conflict) }
            <div class="cc-actions">
                <button id="cc-keep-local" onclick={keep_local} disabled={busy}>{ "Keep local" }</button>
                <button id="cc-keep-remote" onclick={keep_remote} disabled={busy}>{ "Keep remote" }</button>
                <button id="cc-merge" onclick={merge} disabled={busy}>{ "Merge" }</button>
                <button id="cc-edit" onclick={edit} disabled={busy}>{ "Edit by hand" }</button>
            </div>
            { panel }
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn conflicting_paths_cover_their_fields() {
        let paths = vec!["meta".to_owned()];
        assert!(is_conflicting(&paths, "meta"));
        assert!(is_conflicting(&paths, "meta.tags"));
        assert!(!is_conflicting(&paths, "metadata"));
        assert!(is_conflicting(&[String::new()], "anything"));
    }

    #[test]
    fn resolve_all_choices_merge_with_their_side() {
        let conflict = Conflict {
            collection: "notes".into(),
            id: "n1".into(),
            base: Some(json!({"a": 1, "b": 1})),
            local: Some(json!({"a": 2, "b": 1})),
            local_hlc: persist_protocol::Hlc::zero("x"),
            remote: Some(json!({"a": 3, "b": 2})),
            remote_revision: 4,
            remote_hlc: None,
            fields: vec![],
        };
        assert_eq!(conflicting_paths(&conflict), ["a"]);
        assert_eq!(
            Bulk::MergeLocal.resolution(&conflict),
            Resolution::Value(Some(json!({"a": 2, "b": 2})))
        );
        assert_eq!(
            Bulk::MergeRemote.resolution(&conflict),
            Resolution::Value(Some(json!({"a": 3, "b": 2})))
        );
        assert_eq!(Bulk::parse("keep-remote").resolution(&conflict), Resolution::KeepRemote);
    }
}
