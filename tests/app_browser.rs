//! The workspace editor in headless Chromium, used like a user would: click buttons, type into
//! labelled inputs, wait for the save indicator; then read IndexedDB directly to check what
//! really got saved, and render the app again on the same database to check it comes back.
//!
//! Each test renders the real `App` into its own `<div>` with its own yewdux context and its own
//! IndexedDB database, so tests never share state.
#![cfg(target_arch = "wasm32")]

use std::time::Duration;

use serde_json::Value;
use wasm_bindgen::JsCast;
use wasm_bindgen_test::*;
use web_sys::{
    Element, Event, EventInit, HtmlElement, HtmlInputElement, HtmlLabelElement, HtmlSelectElement,
    HtmlTextAreaElement, InputEvent, InputEventInit, KeyboardEvent, KeyboardEventInit,
};
use yew::AppHandle;
use yewdux::Context;
use yewdux_persist::local::{IndexedDbStore, LocalStore};

use persist_app::{persist_options, App, AppProps};

wasm_bindgen_test_configure!(run_in_browser);

// ---------------------------------------------------------------------------------------------
// Harness

/// One rendered app: its root element and yewdux context.
struct Mounted {
    root: Element,
    cx: Context,
    handle: AppHandle<App>,
}

fn unique_database(name: &str) -> String {
    format!("app-test-{name}-{}", (js_sys::Math::random() * 1e12) as u64)
}

fn document() -> web_sys::Document {
    web_sys::window().unwrap().document().unwrap()
}

/// Renders the app on `database` with a fresh context, as `run()` does with the global one.
fn mount(database: &str) -> Mounted {
    let cx = Context::new();
    yewdux_persist::start(&cx, persist_options(database)).expect("configure");
    let root = document().create_element("div").unwrap();
    document().body().unwrap().append_child(&root).unwrap();
    let props = AppProps { context: cx.clone() };
    let handle = yew::Renderer::<App>::with_root_and_props(root.clone(), props).render();
    Mounted { root, cx, handle }
}

/// Renders the app and waits until the saved workspace is shown.
async fn mount_ready(database: &str) -> Mounted {
    let app = mount(database);
    assert!(
        wait_until(5_000, || app.root.query_selector("nav.sidebar").unwrap().is_some()).await,
        "the workspace never finished loading: {}",
        text(&app.root)
    );
    app
}

/// Closes the app: writes what is still queued (as hiding the page would), then drops the app
/// and its persistence runtime.
async fn unmount(app: Mounted) {
    let persistence = yewdux_persist::try_persistence(&app.cx).expect("a runtime");
    persistence.flush().await.expect("everything saved before closing");
    app.handle.destroy();
    yewdux_persist::shutdown(&app.cx);
    app.root.remove();
}

async fn sleep_ms(ms: u32) {
    gloo_timers::future::TimeoutFuture::new(ms).await;
}

/// Polls `condition` every 10 ms for up to `timeout_ms`.
async fn wait_until(timeout_ms: u32, mut condition: impl FnMut() -> bool) -> bool {
    for _ in 0..timeout_ms / 10 {
        if condition() {
            return true;
        }
        sleep_ms(10).await;
    }
    condition()
}

/// Polls the records of `collection` in IndexedDB until `condition` holds; returns them.
async fn wait_for_stored(
    database: &str,
    collection: &str,
    condition: impl Fn(&[(String, Value)]) -> bool,
) -> Vec<(String, Value)> {
    let store = IndexedDbStore::new(database, 1);
    store.prepare(&[collection.to_owned()]).await.expect("prepare");
    let mut records = Vec::new();
    for _ in 0..200 {
        records = store
            .load_all(collection)
            .await
            .expect("load")
            .items
            .into_iter()
            .map(|item| (item.id, serde_json::from_str(&item.json).expect("JSON")))
            .collect();
        if condition(&records) {
            return records;
        }
        sleep_ms(25).await;
    }
    panic!("IndexedDB {collection} never matched; it holds {records:?}");
}

fn record<'a>(records: &'a [(String, Value)], id: &str) -> Option<&'a Value> {
    records.iter().find(|(key, _)| key == id).map(|(_, value)| value)
}

fn text(root: &Element) -> String {
    root.text_content().unwrap_or_default()
}

fn all(root: &Element, selector: &str) -> Vec<Element> {
    let list = root.query_selector_all(selector).unwrap();
    (0..list.length()).filter_map(|i| list.item(i)?.dyn_into::<Element>().ok()).collect()
}

/// The names listed in the sidebar.
fn listed(root: &Element) -> Vec<String> {
    all(root, ".items .item-name").iter().map(|e| e.text_content().unwrap_or_default()).collect()
}

/// The button whose text or accessible label is `label`.
fn button(root: &Element, label: &str) -> HtmlElement {
    all(root, "button")
        .into_iter()
        .find(|b| {
            b.text_content().unwrap_or_default().trim() == label
                || b.get_attribute("aria-label").as_deref() == Some(label)
        })
        .unwrap_or_else(|| panic!("no button {label:?} in: {}", text(root)))
        .unchecked_into()
}

/// The sidebar button that opens the item named `name`.
fn item(root: &Element, name: &str) -> HtmlElement {
    all(root, ".item-open")
        .into_iter()
        .find(|b| {
            b.query_selector(".item-name").unwrap().and_then(|n| n.text_content()).as_deref()
                == Some(name)
        })
        .unwrap_or_else(|| panic!("no item {name:?} in {:?}", listed(root)))
        .unchecked_into()
}

/// The tab whose text starts with `label` (tabs also show a count).
fn tab(root: &Element, label: &str) -> HtmlElement {
    all(root, "button.tab")
        .into_iter()
        .find(|b| b.text_content().unwrap_or_default().starts_with(label))
        .unwrap_or_else(|| panic!("no tab {label:?}"))
        .unchecked_into()
}

/// The form control of the `<label>` whose text starts with `label`, or with that aria-label.
fn control(root: &Element, label: &str) -> HtmlElement {
    let by_label = all(root, "label").into_iter().find_map(|l| {
        let l: HtmlLabelElement = l.unchecked_into();
        l.text_content().unwrap_or_default().trim().starts_with(label).then(|| l.control())?
    });
    by_label
        .or_else(|| {
            root.query_selector(&format!("[aria-label=\"{label}\"]"))
                .unwrap()
                .map(|e| e.unchecked_into())
        })
        .unwrap_or_else(|| panic!("no control labelled {label:?} in: {}", text(root)))
}

/// Types `value` into an input or textarea: sets it and fires `input`, as the browser does.
async fn type_into(element: &HtmlElement, value: &str) {
    if let Some(input) = element.dyn_ref::<HtmlInputElement>() {
        input.set_value(value);
    } else {
        element.unchecked_ref::<HtmlTextAreaElement>().set_value(value);
    }
    let init = InputEventInit::new();
    init.set_bubbles(true);
    let event = InputEvent::new_with_event_init_dict("input", &init).unwrap();
    element.dispatch_event(&event).unwrap();
    settle().await;
}

/// Picks `value` in a `<select>` and fires `change`.
async fn choose(element: &HtmlElement, value: &str) {
    element.unchecked_ref::<HtmlSelectElement>().set_value(value);
    let init = EventInit::new();
    init.set_bubbles(true);
    element.dispatch_event(&Event::new_with_event_init_dict("change", &init).unwrap()).unwrap();
    settle().await;
}

async fn press_key(element: &HtmlElement, key: &str) {
    let init = KeyboardEventInit::new();
    init.set_bubbles(true);
    init.set_key(key);
    let event = KeyboardEvent::new_with_keyboard_event_init_dict("keydown", &init).unwrap();
    element.dispatch_event(&event).unwrap();
    settle().await;
}

/// Clicks like a user (a real `click` event that bubbles).
async fn click(element: &HtmlElement) {
    element.click();
    settle().await;
}

/// Lets Yew render what the last event changed (it renders in microtasks, before any timer).
async fn settle() {
    sleep_ms(0).await;
}

fn value_of(element: &HtmlElement) -> String {
    if let Some(input) = element.dyn_ref::<HtmlInputElement>() {
        input.value()
    } else if let Some(select) = element.dyn_ref::<HtmlSelectElement>() {
        select.value()
    } else {
        element.unchecked_ref::<HtmlTextAreaElement>().value()
    }
}

fn app_root(root: &Element) -> Element {
    root.query_selector(".app").unwrap().expect("the app's root element")
}

async fn wait_for_text(root: &Element, needle: &str) {
    assert!(
        wait_until(3_000, || text(root).contains(needle)).await,
        "{needle:?} never appeared in: {}",
        text(root)
    );
}

// ---------------------------------------------------------------------------------------------
// Tests

#[wasm_bindgen_test]
async fn first_run_shows_loading_then_the_welcome_file_and_saves_it() {
    let database = unique_database("first-run");
    let app = mount(&database);
    // Yew renders in a microtask; IndexedDB answers in later tasks, so the first frame the user
    // sees is the loading screen, never the default workspace.
    for _ in 0..10 {
        if app.root.child_element_count() > 0 {
            break;
        }
        wasm_bindgen_futures::JsFuture::from(js_sys::Promise::resolve(
            &wasm_bindgen::JsValue::NULL,
        ))
        .await
        .unwrap();
    }
    assert!(text(&app.root).contains("Loading workspace…"), "first frame: {}", text(&app.root));
    assert!(!text(&app.root).contains("README.md"), "no flash of defaults");

    assert!(wait_until(5_000, || listed(&app.root) == ["README.md"]).await, "{}", text(&app.root));
    assert!(!text(&app.root).contains("Loading workspace…"));
    let content = control(&app.root, "Content");
    assert!(value_of(&content).starts_with("# Welcome"), "the welcome file is open");

    // Saved by the first run, without any edit.
    let files = wait_for_stored(&database, "files", |r| record(r, "f-welcome").is_some()).await;
    let welcome = record(&files, "f-welcome").unwrap();
    assert_eq!(welcome["name"], "README.md");
    assert_eq!(welcome["id"], "f-welcome");
    assert!(welcome["updatedAt"].as_f64().unwrap() > 1.6e12, "{welcome}");
    wait_for_text(&app.root, "All changes saved").await;
    unmount(app).await;
}

#[wasm_bindgen_test]
async fn a_new_file_is_saved_with_its_typed_content() {
    let database = unique_database("new-file");
    let app = mount_ready(&database).await;
    let started = js_sys::Date::now();

    click(&button(&app.root, "New file")).await;
    assert!(wait_until(1_000, || listed(&app.root).contains(&"untitled.md".to_owned())).await);
    assert_eq!(value_of(&control(&app.root, "Name")), "untitled.md", "the new file is open");
    type_into(&control(&app.root, "Name"), "notes.md").await;
    type_into(&control(&app.root, "Path"), "/docs").await;
    choose(&control(&app.root, "Language"), "rust").await;
    type_into(&control(&app.root, "Content"), "fn main() {}\n// ✓").await;
    wait_for_text(&app.root, "17 characters").await;
    assert!(listed(&app.root).contains(&"notes.md".to_owned()));
    wait_for_text(&app.root, "Saving…").await;

    let files = wait_for_stored(&database, "files", |records| {
        records.iter().any(|(_, f)| f["name"] == "notes.md" && f["content"] == "fn main() {}\n// ✓")
    })
    .await;
    let (id, file) = files.iter().find(|(_, f)| f["name"] == "notes.md").unwrap();
    assert!(id.starts_with("f-"), "{id}");
    assert_eq!(file["id"], id.as_str());
    assert_eq!(file["path"], "/docs");
    assert_eq!(file["language"], "rust");
    let updated_at = file["updatedAt"].as_f64().expect("updatedAt is a number");
    assert!(updated_at >= started && updated_at <= js_sys::Date::now(), "{updated_at}");
    assert_eq!(files.len(), 2, "the welcome file is still there: {files:?}");
    wait_for_text(&app.root, "All changes saved").await;
    unmount(app).await;
}

#[wasm_bindgen_test]
async fn a_deleted_file_is_gone_from_indexeddb_and_stays_gone() {
    let database = unique_database("delete");
    let app = mount_ready(&database).await;
    wait_for_stored(&database, "files", |r| record(r, "f-welcome").is_some()).await;

    click(&button(&app.root, "Delete README.md")).await;
    assert!(wait_until(1_000, || listed(&app.root).is_empty()).await);
    wait_for_text(&app.root, "No files yet.").await;
    wait_for_stored(&database, "files", |r| r.is_empty()).await;
    unmount(app).await;

    // The first-run sample does not come back.
    let app = mount_ready(&database).await;
    assert!(listed(&app.root).is_empty(), "{:?}", listed(&app.root));
    wait_for_text(&app.root, "No files yet.").await;
    unmount(app).await;
}

#[wasm_bindgen_test]
async fn the_workspace_and_settings_come_back_after_a_reload() {
    let database = unique_database("reload");
    let app = mount_ready(&database).await;
    click(&button(&app.root, "New file")).await;
    assert!(wait_until(1_000, || listed(&app.root).contains(&"untitled.md".to_owned())).await);
    type_into(&control(&app.root, "Name"), "plan.md").await;
    type_into(&control(&app.root, "Content"), "1. persist\n2. reload").await;
    click(&tab(&app.root, "Settings")).await;
    wait_for_text(&app.root, "Autosave debounce").await;
    choose(&control(&app.root, "Theme"), "dark").await;
    type_into(&control(&app.root, "Editor font size"), "18").await;
    wait_for_stored(&database, "settings", |r| {
        record(r, "value").is_some_and(|s| s["theme"] == "dark" && s["fontSize"] == 18)
    })
    .await;
    wait_for_stored(&database, "files", |r| r.iter().any(|(_, f)| f["name"] == "plan.md")).await;
    unmount(app).await;

    let app = mount_ready(&database).await;
    assert_eq!(listed(&app.root), ["plan.md", "README.md"]);
    assert_eq!(app_root(&app.root).get_attribute("data-theme").as_deref(), Some("dark"));
    assert!(
        tab(&app.root, "Files").class_list().contains("active"),
        "UI state (the open section) is not persisted"
    );
    click(&item(&app.root, "plan.md")).await;
    assert!(wait_until(1_000, || value_of(&control(&app.root, "Name")) == "plan.md").await);
    assert_eq!(value_of(&control(&app.root, "Content")), "1. persist\n2. reload");
    click(&tab(&app.root, "Settings")).await;
    wait_for_text(&app.root, "Autosave debounce").await;
    assert_eq!(value_of(&control(&app.root, "Theme")), "dark");
    assert_eq!(value_of(&control(&app.root, "Editor font size")), "18");
    unmount(app).await;
}

#[wasm_bindgen_test]
async fn choosing_a_theme_changes_the_root_element() {
    let app = mount_ready(&unique_database("theme")).await;
    let root = app_root(&app.root);
    assert_eq!(root.get_attribute("data-theme").as_deref(), Some("light"));
    assert!(root.class_list().contains("theme-light"));

    click(&tab(&app.root, "Settings")).await;
    wait_for_text(&app.root, "Autosave debounce").await;
    choose(&control(&app.root, "Theme"), "dark").await;
    assert!(
        wait_until(1_000, || root.get_attribute("data-theme").as_deref() == Some("dark")).await
    );
    assert!(root.class_list().contains("theme-dark"));
    assert!(!root.class_list().contains("theme-light"));

    choose(&control(&app.root, "Theme"), "light").await;
    assert!(wait_until(1_000, || root.class_list().contains("theme-light")).await);
    unmount(app).await;
}

#[wasm_bindgen_test]
async fn an_invalid_autosave_debounce_is_refused_with_the_error_and_a_valid_one_applies() {
    let database = unique_database("debounce");
    let app = mount_ready(&database).await;
    let persistence = yewdux_persist::try_persistence(&app.cx).unwrap();
    click(&tab(&app.root, "Settings")).await;
    wait_for_text(&app.root, "Autosave debounce").await;
    let input = control(&app.root, "Autosave debounce");

    type_into(&input, "5000").await;
    wait_for_text(&app.root, "Not applied").await;
    let alert = app.root.query_selector("[role=alert]").unwrap().expect("an error").text_content();
    assert!(alert.unwrap_or_default().contains("max_wait"), "the crate's reason is shown");
    assert_eq!(input.get_attribute("aria-invalid").as_deref(), Some("true"));
    assert_eq!(persistence.collection_config("files").debounce, Duration::from_millis(300));

    type_into(&input, "120").await;
    assert!(wait_until(1_000, || app.root.query_selector("[role=alert]").unwrap().is_none()).await);
    for name in ["files", "models", "components"] {
        assert_eq!(
            persistence.collection_config(name).debounce,
            Duration::from_millis(120),
            "{name}"
        );
    }
    let settings = wait_for_stored(&database, "settings", |r| {
        record(r, "value").is_some_and(|s| s["autosaveDebounceMs"] == 120)
    })
    .await;
    assert_eq!(record(&settings, "value").unwrap()["theme"], "light");
    unmount(app).await;

    // The saved debounce is applied again on the next start.
    let app = mount_ready(&database).await;
    let persistence = yewdux_persist::try_persistence(&app.cx).unwrap();
    assert!(
        wait_until(1_000, || persistence.collection_config("files").debounce
            == Duration::from_millis(120))
        .await
    );
    unmount(app).await;
}

#[wasm_bindgen_test]
async fn models_and_components_are_edited_and_saved() {
    let database = unique_database("models");
    let app = mount_ready(&database).await;

    click(&tab(&app.root, "Models")).await;
    wait_for_text(&app.root, "No models yet.").await;
    click(&button(&app.root, "New model")).await;
    assert!(wait_until(1_000, || listed(&app.root) == ["NewModel"]).await);
    type_into(&control(&app.root, "Name"), "Customer").await;
    click(&button(&app.root, "Add field")).await;
    assert!(
        wait_until(1_000, || app
            .root
            .query_selector("[aria-label='Field 2 name']")
            .unwrap()
            .is_some())
        .await
    );
    type_into(&control(&app.root, "Field 2 name"), "email").await;
    choose(&control(&app.root, "Field 2 type"), "text").await;
    click(&control(&app.root, "Field 2 required")).await;
    click(&button(&app.root, "Remove field 1")).await;
    let models = wait_for_stored(&database, "models", |r| {
        r.len() == 1 && r[0].1["fields"].as_array().is_some_and(|f| f.len() == 1)
    })
    .await;
    let model = &models[0].1;
    assert!(models[0].0.starts_with("m-"));
    assert_eq!(model["name"], "Customer");
    assert_eq!(
        model["fields"],
        serde_json::json!([{"name": "email", "type": "text", "required": true}])
    );
    assert_eq!(listed(&app.root), ["Customer"]);

    click(&tab(&app.root, "Components")).await;
    click(&button(&app.root, "New component")).await;
    assert!(wait_until(1_000, || listed(&app.root) == ["NewComponent"]).await);
    type_into(&control(&app.root, "Name"), "Card").await;
    click(&button(&app.root, "Add prop")).await;
    assert!(
        wait_until(1_000, || app
            .root
            .query_selector("[aria-label='Prop 1 name']")
            .unwrap()
            .is_some())
        .await
    );
    type_into(&control(&app.root, "Prop 1 name"), "title").await;
    type_into(&control(&app.root, "Prop 1 default value"), "Hello").await;
    type_into(&control(&app.root, "Template"), "<h2>{title}</h2>").await;
    let components = wait_for_stored(&database, "components", |r| {
        r.len() == 1 && r[0].1["template"] == "<h2>{title}</h2>"
    })
    .await;
    let component = &components[0].1;
    assert_eq!(component["name"], "Card");
    assert_eq!(component["props"], serde_json::json!([{"key": "title", "value": "Hello"}]));
    unmount(app).await;
}

#[wasm_bindgen_test]
async fn the_sidebar_filters_and_renames() {
    let database = unique_database("sidebar");
    let app = mount_ready(&database).await;
    click(&button(&app.root, "New file")).await;
    assert!(wait_until(1_000, || listed(&app.root).len() == 2).await);

    type_into(&control(&app.root, "Search files"), "READ").await;
    assert!(wait_until(1_000, || listed(&app.root) == ["README.md"]).await);
    type_into(&control(&app.root, "Search files"), "nothing like it").await;
    wait_for_text(&app.root, "No file matches").await;
    type_into(&control(&app.root, "Search files"), "").await;
    assert!(wait_until(1_000, || listed(&app.root).len() == 2).await);

    click(&button(&app.root, "Rename README.md")).await;
    let input = control(&app.root, "New name for README.md");
    assert!(wait_until(1_000, || document().active_element().as_ref() == Some(&input)).await);
    input.unchecked_ref::<HtmlInputElement>().set_value("GUIDE.md");
    press_key(&input, "Enter").await;
    assert!(wait_until(1_000, || listed(&app.root) == ["GUIDE.md", "untitled.md"]).await);
    wait_for_stored(&database, "files", |r| {
        record(r, "f-welcome").is_some_and(|f| f["name"] == "GUIDE.md")
    })
    .await;

    // Escape cancels.
    click(&button(&app.root, "Rename GUIDE.md")).await;
    let input = control(&app.root, "New name for GUIDE.md");
    input.unchecked_ref::<HtmlInputElement>().set_value("ignored.md");
    press_key(&input, "Escape").await;
    assert!(wait_until(1_000, || app.root.query_selector(".rename").unwrap().is_none()).await);
    assert_eq!(listed(&app.root), ["GUIDE.md", "untitled.md"]);
    unmount(app).await;
}

#[wasm_bindgen_test]
async fn the_persistence_panel_shows_the_dashboard() {
    let app = mount_ready(&unique_database("panel")).await;
    assert!(app.root.query_selector(".yp-dashboard").unwrap().is_none());
    let toggle = button(&app.root, "Persistence panel");
    assert_eq!(toggle.get_attribute("aria-expanded").as_deref(), Some("false"));
    click(&toggle).await;
    assert!(
        wait_until(1_000, || app.root.query_selector(".yp-dashboard").unwrap().is_some()).await
    );
    assert_eq!(toggle.get_attribute("aria-expanded").as_deref(), Some("true"));
    assert_eq!(toggle.get_attribute("aria-controls").as_deref(), Some("persistence-panel"));
    wait_for_text(&app.root, "IndexedDB").await;
    // "last saved" keeps counting while nothing else changes (the welcome file was saved once).
    let last_saved = || {
        app.root
            .query_selector(".yp-last-saved b")
            .unwrap()
            .and_then(|b| b.text_content())
            .unwrap_or_default()
    };
    assert!(wait_until(3_000, || last_saved().ends_with(" s ago")).await, "{}", last_saved());
    let shown = last_saved();
    assert!(wait_until(2_500, || last_saved() != shown).await, "still {shown:?}");

    click(&toggle).await;
    assert!(
        wait_until(1_000, || app.root.query_selector(".yp-dashboard").unwrap().is_none()).await
    );
    unmount(app).await;
}
