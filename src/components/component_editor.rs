//! The component editor: a name, props as a key/value list, and a template.

use yew::prelude::*;
use yewdux::prelude::*;

use super::edit::ItemEditor;
use crate::store::{Component, Prop, Workspace};

#[derive(Debug, Clone, PartialEq, Properties)]
pub(crate) struct ComponentEditorProps {
    pub(crate) id: AttrValue,
}

#[function_component]
pub(crate) fn ComponentEditor(props: &ComponentEditorProps) -> Html {
    let component = use_selector_with_deps(
        |ws: &Workspace, id: &AttrValue| ws.components.get_rc(id).cloned(),
        props.id.clone(),
    );
    let dispatch = use_dispatch::<Workspace>();
    let Some(component) = component.as_ref().clone() else {
        return html! { <p class="hint">{ "This component was deleted." }</p> };
    };
    let editor = {
        let id = props.id.clone();
        ItemEditor::<Component>::new(move |change| {
            dispatch.reduce_mut(|ws| {
                ws.components.update(&id, change);
            });
        })
    };
    let on_name = editor.on_input(|c, v| c.name = v);
    let on_template = editor.on_input(|c, v| c.template = v);
    let add_prop = editor.on_click(|c| {
        let key = format!("prop{}", c.props.len() + 1);
        c.props.push(Prop { key, value: String::new() });
    });

    let rows = component.props.iter().enumerate().map(|(index, prop)| {
        let number = index + 1;
        let on_key = editor.on_input(move |c, v| {
            if let Some(p) = c.props.get_mut(index) {
                p.key = v;
            }
        });
        let on_value = editor.on_input(move |c, v| {
            if let Some(p) = c.props.get_mut(index) {
                p.value = v;
            }
        });
        let remove = editor.on_click(move |c| {
            if index < c.props.len() {
                c.props.remove(index);
            }
        });
        html! {
            <tr>
                <td>
                    <input type="text" aria-label={format!("Prop {number} name")}
                        value={prop.key.clone()} oninput={on_key} spellcheck="false" />
                </td>
                <td>
                    <input type="text" aria-label={format!("Prop {number} default value")}
                        value={prop.value.clone()} oninput={on_value} spellcheck="false" />
                </td>
                <td class="center">
                    <button class="icon danger" title="Remove prop"
                        aria-label={format!("Remove prop {number}")} onclick={remove}>{ "×" }</button>
                </td>
            </tr>
        }
    });

    html! {
        <section class="editor-form component-editor" aria-label={format!("Component {}", component.name)}>
            <label class="field">
                <span>{ "Name" }</span>
                <input type="text" value={component.name.clone()} oninput={on_name} spellcheck="false" />
            </label>
            <table class="grid">
                <caption>{ "Props" }</caption>
                <thead>
                    <tr>
                        <th scope="col">{ "Name" }</th>
                        <th scope="col">{ "Default value" }</th>
                        <th scope="col"><span class="visually-hidden">{ "Remove" }</span></th>
                    </tr>
                </thead>
                <tbody>{ for rows }</tbody>
            </table>
            if component.props.is_empty() {
                <p class="hint">{ "No props yet." }</p>
            }
            <button class="button" onclick={add_prop}>{ "Add prop" }</button>
            <label class="field content">
                <span>{ "Template" }</span>
                <textarea class="code" value={component.template.clone()} oninput={on_template}
                    spellcheck="false" autocomplete="off" />
            </label>
        </section>
    }
}
