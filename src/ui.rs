//! UI-only state: which page, section and item are open, the search text, the side panel.
//! Never persisted (a plain yewdux store, not installed with `yewdux_persist`).
//!
//! The page follows the URL's hash: `#/conflicts` is the conflict page, anything else the
//! workspace (see [`Page::from_hash`]), so links (the header's "N conflicts", the dashboard's
//! open-conflict count) and the browser's back button work.

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

/// The app's pages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Page {
    /// The sidebar's sections and the editor.
    #[default]
    Workspace,
    /// The conflict center.
    Conflicts,
}

impl Page {
    /// The URL hash of the conflict page.
    pub(crate) const CONFLICTS_HASH: &'static str = "#/conflicts";
    /// The URL hash of the workspace.
    pub(crate) const WORKSPACE_HASH: &'static str = "#/";

    /// The page a URL hash names: `#/conflicts` the conflicts, `#/` or no hash the workspace;
    /// `None` for other hashes (in-page anchors such as the skip link's `#editor`), which keep
    /// the page open.
    pub(crate) fn from_hash(hash: &str) -> Option<Page> {
        match hash.trim_end_matches('/') {
            "#/conflicts" => Some(Page::Conflicts),
            "" | "#" => Some(Page::Workspace),
            _ => None,
        }
    }

    /// The page's URL hash.
    pub(crate) fn hash(self) -> &'static str {
        match self {
            Page::Workspace => Self::WORKSPACE_HASH,
            Page::Conflicts => Self::CONFLICTS_HASH,
        }
    }
}

/// The page's URL hash now (`location.hash`; empty outside a browser).
pub(crate) fn current_hash() -> String {
    web_sys::window()
        .and_then(|window| js_sys::Reflect::get(&window, &"location".into()).ok())
        .and_then(|location| js_sys::Reflect::get(&location, &"hash".into()).ok())
        .and_then(|hash| hash.as_string())
        .unwrap_or_default()
}

/// Opens `page` by its URL hash (a history entry, like following a link).
pub(crate) fn navigate(page: Page) {
    if Page::from_hash(&current_hash()) == Some(page) {
        return;
    }
    if let Some(location) =
        web_sys::window().and_then(|window| js_sys::Reflect::get(&window, &"location".into()).ok())
    {
        let _ = js_sys::Reflect::set(&location, &"hash".into(), &page.hash().into());
    }
}

#[derive(Debug, Clone, PartialEq, Store)]
pub(crate) struct Ui {
    /// The page shown (follows the URL hash).
    pub(crate) page: Page,
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

impl Ui {
    /// Leaves the conflict page for the workspace (and its URL hash), if it is open.
    pub(crate) fn show_workspace(&mut self) {
        if self.page != Page::Workspace {
            self.page = Page::Workspace;
            navigate(Page::Workspace);
        }
    }
}

impl Default for Ui {
    fn default() -> Self {
        Self {
            page: Page::Workspace,
            section: Section::Files,
            selected: Some(WELCOME_ID.to_owned()),
            renaming: None,
            search: String::new(),
            panel_open: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_follow_the_hash() {
        assert_eq!(Page::from_hash("#/conflicts"), Some(Page::Conflicts));
        assert_eq!(Page::from_hash("#/conflicts/"), Some(Page::Conflicts));
        assert_eq!(Page::from_hash(""), Some(Page::Workspace));
        assert_eq!(Page::from_hash("#/"), Some(Page::Workspace));
        assert_eq!(Page::from_hash("#editor"), None, "in-page anchors keep the page");
        for page in [Page::Workspace, Page::Conflicts] {
            assert_eq!(Page::from_hash(page.hash()), Some(page));
        }
    }
}
