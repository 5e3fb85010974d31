//! UI-only state: which section and item are open, the search text, the side panel. Never
//! persisted (a plain yewdux store, not installed with `yewdux_persist`).

use yewdux::Store;

use crate::store::WELCOME_ID;

/// The sidebar's sections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Section {
    Files,
    Models,
    Components,
    Settings,
}

impl Section {
    pub(crate) const ALL: [Section; 4] =
        [Section::Files, Section::Models, Section::Components, Section::Settings];

    pub(crate) fn title(self) -> &'static str {
        match self {
            Section::Files => "Files",
            Section::Models => "Models",
            Section::Components => "Components",
            Section::Settings => "Settings",
        }
    }

    /// The singular noun used in buttons ("New file").
    pub(crate) fn noun(self) -> &'static str {
        match self {
            Section::Files => "file",
            Section::Models => "model",
            Section::Components => "component",
            Section::Settings => "setting",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Store)]
pub(crate) struct Ui {
    pub(crate) section: Section,
    /// The item open in the editor (ids are unique across sections).
    pub(crate) selected: Option<String>,
    /// The item being renamed in the sidebar.
    pub(crate) renaming: Option<String>,
    /// Sidebar filter, matched against item names.
    pub(crate) search: String,
    /// Whether the persistence panel is shown.
    pub(crate) panel_open: bool,
}

impl Default for Ui {
    fn default() -> Self {
        Self {
            section: Section::Files,
            selected: Some(WELCOME_ID.to_owned()),
            renaming: None,
            search: String::new(),
            panel_open: false,
        }
    }
}
