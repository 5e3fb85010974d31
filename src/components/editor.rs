//! The main pane: the editor of the selected item, or the settings form.

use yew::prelude::*;
use yewdux::prelude::*;

use super::component_editor::ComponentEditor;
use super::file_editor::FileEditor;
use super::model_editor::ModelEditor;
use super::settings_form::SettingsForm;
use crate::store::Workspace;
use crate::ui::{Section, Ui};

#[function_component]
pub(crate) fn EditorPane() -> Html {
    let section = *use_selector(|ui: &Ui| ui.section);
    let selected = use_selector(|ui: &Ui| ui.selected.clone());
    // Whether the selected item exists in this section (it may have been deleted, or live in
    // another section).
    let exists = *use_selector_with_deps(
        |ws: &Workspace, (section, selected): &(Section, Option<String>)| {
            let Some(id) = selected else { return false };
            match section {
                Section::Files => ws.files.contains(id),
                Section::Models => ws.models.contains(id),
                Section::Components => ws.components.contains(id),
                Section::Settings => false,
            }
        },
        (section, (*selected).clone()),
    );
    let content = match (section, selected.as_ref()) {
        (Section::Settings, _) => html! { <SettingsForm /> },
        (_, Some(id)) if exists => {
            let (key, id) = (id.clone(), AttrValue::from(id.clone()));
            match section {
                Section::Files => html! { <FileEditor {key} {id} /> },
                Section::Models => html! { <ModelEditor {key} {id} /> },
                _ => html! { <ComponentEditor {key} {id} /> },
            }
        }
        _ => html! {
            <div class="empty-state">
                <p>{ format!("Select a {} in the sidebar, or create a new one.", section.noun()) }</p>
            </div>
        },
    };
    html! { <main class="editor" id="editor">{ content }</main> }
}
