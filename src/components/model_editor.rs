//! The model editor: a name and a table of typed fields.

use yew::prelude::*;
use yewdux::prelude::*;

use super::edit::ItemEditor;
use crate::store::{Model, ModelField, Workspace, FIELD_TYPES};

#[derive(Debug, Clone, PartialEq, Properties)]
pub(crate) struct ModelEditorProps {
    pub(crate) id: AttrValue,
}

#[function_component]
pub(crate) fn ModelEditor(props: &ModelEditorProps) -> Html {
    let model = use_selector_with_deps(
        |ws: &Workspace, id: &AttrValue| ws.models.get_rc(id).cloned(),
        props.id.clone(),
    );
    let dispatch = use_dispatch::<Workspace>();
    let Some(model) = model.as_ref().clone() else {
        return html! { <p class="hint">{ "This model was deleted." }</p> };
    };
    let editor = {
        let id = props.id.clone();
        ItemEditor::<Model>::new(move |change| {
            dispatch.reduce_mut(|ws| {
                ws.models.update(&id, change);
            });
        })
    };
    let on_name = editor.on_input(|m, v| m.name = v);
    let add_field = editor.on_click(|m| {
        let name = format!("field{}", m.fields.len() + 1);
        m.fields.push(ModelField { name, kind: "string".into(), required: false });
    });

    let rows = model.fields.iter().enumerate().map(|(index, field)| {
        let number = index + 1;
        let on_field_name = editor.on_input(move |m, v| {
            if let Some(f) = m.fields.get_mut(index) {
                f.name = v;
            }
        });
        let on_type = editor.on_select(move |m, v| {
            if let Some(f) = m.fields.get_mut(index) {
                f.kind = v;
            }
        });
        let on_required = editor.on_toggle(move |m, checked| {
            if let Some(f) = m.fields.get_mut(index) {
                f.required = checked;
            }
        });
        let remove = editor.on_click(move |m| {
            if index < m.fields.len() {
                m.fields.remove(index);
            }
        });
        let known = FIELD_TYPES.contains(&field.kind.as_str());
        html! {
            <tr>
                <td>
                    <input type="text" aria-label={format!("Field {number} name")}
                        value={field.name.clone()} oninput={on_field_name} spellcheck="false" />
                </td>
                <td>
                    <select aria-label={format!("Field {number} type")} onchange={on_type}>
                        { for FIELD_TYPES.iter().map(|kind| html! {
                            <option value={*kind} selected={field.kind == *kind}>{ *kind }</option>
                        }) }
                        if !known {
                            <option value={field.kind.clone()} selected=true>{ field.kind.clone() }</option>
                        }
                    </select>
                </td>
                <td class="center">
                    <input type="checkbox" aria-label={format!("Field {number} required")}
                        checked={field.required} onchange={on_required} />
                </td>
                <td class="center">
                    <button class="icon danger" title="Remove field"
                        aria-label={format!("Remove field {number}")} onclick={remove}>{ "×" }</button>
                </td>
            </tr>
        }
    });

    html! {
        <section class="editor-form model-editor" aria-label={format!("Model {}", model.name)}>
            <label class="field">
                <span>{ "Name" }</span>
                <input type="text" value={model.name.clone()} oninput={on_name} spellcheck="false" />
            </label>
            <table class="grid">
                <caption>{ "Fields" }</caption>
                <thead>
                    <tr>
                        <th scope="col">{ "Name" }</th>
                        <th scope="col">{ "Type" }</th>
                        <th scope="col">{ "Required" }</th>
                        <th scope="col"><span class="visually-hidden">{ "Remove" }</span></th>
                    </tr>
                </thead>
                <tbody>{ for rows }</tbody>
            </table>
            if model.fields.is_empty() {
                <p class="hint">{ "No fields yet." }</p>
            }
            <button class="button" onclick={add_field}>{ "Add field" }</button>
        </section>
    }
}
