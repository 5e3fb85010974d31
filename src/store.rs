//! The persisted stores: the [`Workspace`] (files, models, components) and the [`Settings`].
//!
//! Record shapes follow the old CodeForge app where it matters: a file is
//! `{id, name, content, language, path, updatedAt}` with `updatedAt` in epoch milliseconds.

use serde::{Deserialize, Serialize};
use yewdux::Store;
use yewdux_persist::{Collection, Parts, Persist};

/// Id of the sample file a new user starts with.
pub const WELCOME_ID: &str = "f-welcome";

/// Languages offered by the file editor, as `(value, label)`.
pub const LANGUAGES: &[(&str, &str)] = &[
    ("markdown", "Markdown"),
    ("plaintext", "Plain text"),
    ("rust", "Rust"),
    ("typescript", "TypeScript"),
    ("javascript", "JavaScript"),
    ("json", "JSON"),
    ("html", "HTML"),
    ("css", "CSS"),
];

/// Field types offered by the model editor.
pub const FIELD_TYPES: &[&str] = &["string", "text", "number", "boolean", "date", "reference"];

/// A file of the workspace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileItem {
    /// Same as its key in [`Workspace::files`].
    pub id: String,
    /// File name, e.g. `README.md`.
    pub name: String,
    /// The text.
    pub content: String,
    /// One of [`LANGUAGES`] (other values are kept as they are).
    pub language: String,
    /// Folder path, e.g. `/docs`.
    pub path: String,
    /// Last edit, epoch milliseconds (a number, like JavaScript's `Date.now()`).
    pub updated_at: f64,
}

/// One field of a [`Model`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelField {
    /// Field name.
    pub name: String,
    /// One of [`FIELD_TYPES`].
    #[serde(rename = "type")]
    pub kind: String,
    /// Whether a value is required.
    pub required: bool,
}

/// A data model: a name and typed fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Model {
    /// Same as its key in [`Workspace::models`].
    pub id: String,
    /// Model name.
    pub name: String,
    /// Its fields, in order.
    pub fields: Vec<ModelField>,
}

/// One property of a [`Component`], with its default value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prop {
    /// Property name.
    pub key: String,
    /// Default value, as text.
    pub value: String,
}

/// A UI component: props and a template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Component {
    /// Same as its key in [`Workspace::components`].
    pub id: String,
    /// Component name.
    pub name: String,
    /// Its properties, in order.
    pub props: Vec<Prop>,
    /// Markup template.
    pub template: String,
}

/// The user's work: every item is one IndexedDB record in its own collection.
#[derive(Debug, Clone, PartialEq)]
pub struct Workspace {
    /// Collection `files`.
    pub files: Collection<FileItem>,
    /// Collection `models`.
    pub models: Collection<Model>,
    /// Collection `components`.
    pub components: Collection<Component>,
}

impl Workspace {
    /// A first-run workspace: one welcome file, stamped `now` (saved on the very first start).
    pub fn first_run(now: f64) -> Self {
        let welcome = FileItem {
            id: WELCOME_ID.into(),
            name: "README.md".into(),
            content: WELCOME_TEXT.into(),
            language: "markdown".into(),
            path: "/".into(),
            updated_at: now,
        };
        Self {
            files: [(WELCOME_ID, welcome)].into_iter().collect(),
            models: Collection::new(),
            components: Collection::new(),
        }
    }
}

const WELCOME_TEXT: &str = "# Welcome\n\n\
This workspace is saved in your browser (IndexedDB) as you type.\n\n\
- Files, models and components are listed on the left.\n\
- Reload the page: everything is still here.\n\
- Open the persistence panel (top right) to see each write.\n";

impl Persist for Workspace {
    fn parts(parts: &mut Parts<Self>) {
        parts
            .collection("files", |s| &s.files, |s| &mut s.files)
            .collection("models", |s| &s.models, |s| &mut s.models)
            .collection("components", |s| &s.components, |s| &mut s.components);
    }
}

impl Store for Workspace {
    fn new(cx: &yewdux::Context) -> Self {
        yewdux_persist::install(cx, Self::first_run(now_ms()))
    }

    fn should_notify(&self, old: &Self) -> bool {
        self != old
    }
}

/// Colour theme.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Theme {
    /// Dark text on light background.
    #[default]
    Light,
    /// Light text on dark background.
    Dark,
}

impl Theme {
    /// The value used in markup and storage.
    pub fn as_str(self) -> &'static str {
        match self {
            Theme::Light => "light",
            Theme::Dark => "dark",
        }
    }
}

/// Smallest and largest editor font size, in CSS pixels.
pub const FONT_SIZES: std::ops::RangeInclusive<u32> = 10..=28;

/// User preferences: one record (`settings/value`), kept on this device only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Settings {
    /// Colour theme.
    pub theme: Theme,
    /// Editor font size, CSS pixels.
    pub font_size: u32,
    /// Quiet time after the last keystroke before an item is written.
    pub autosave_debounce_ms: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self { theme: Theme::Light, font_size: 14, autosave_debounce_ms: 300 }
    }
}

impl Persist for Settings {
    fn parts(parts: &mut Parts<Self>) {
        parts.singleton("settings", |s| s, |s| s);
    }
}

impl Store for Settings {
    fn new(cx: &yewdux::Context) -> Self {
        yewdux_persist::install(cx, Self::default())
    }

    fn should_notify(&self, old: &Self) -> bool {
        self != old
    }
}

/// Now, in epoch milliseconds.
pub fn now_ms() -> f64 {
    js_sys::Date::now()
}

/// A new id like `f-lx2k9a0c8h3`: `prefix`, the time and a random part, in base 36.
pub fn new_id(prefix: &str) -> String {
    let time = now_ms() as u64;
    let random = (js_sys::Math::random() * 36f64.powi(6)) as u64;
    format!("{prefix}-{}{:0>6}", base36(time), base36(random))
}

fn base36(mut n: u64) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).expect("ASCII digits")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base36_digits() {
        assert_eq!(base36(0), "0");
        assert_eq!(base36(35), "z");
        assert_eq!(base36(36), "10");
    }

    #[test]
    fn file_records_use_the_old_field_names() {
        let file = Workspace::first_run(0.0).files.get(WELCOME_ID).cloned().unwrap();
        let json = serde_json::to_value(&file).unwrap();
        let mut keys: Vec<_> = json.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(keys, ["content", "id", "language", "name", "path", "updatedAt"]);
        // Old records carry integer timestamps.
        let old = r#"{"id":"f-1","name":"a","content":"","language":"rust","path":"/","updatedAt":1712000000000}"#;
        assert_eq!(serde_json::from_str::<FileItem>(old).unwrap().updated_at, 1.712e12);
    }

    #[test]
    fn model_fields_are_named_type() {
        let field = ModelField { name: "title".into(), kind: "string".into(), required: true };
        assert_eq!(
            serde_json::to_string(&field).unwrap(),
            r#"{"name":"title","type":"string","required":true}"#
        );
    }

    #[test]
    fn settings_fill_missing_values_with_defaults() {
        let settings: Settings = serde_json::from_str(r#"{"theme":"dark"}"#).unwrap();
        assert_eq!(settings.theme, Theme::Dark);
        assert_eq!(settings.font_size, 14);
    }
}
