//! The file editor: name, path, language and content.

use yew::prelude::*;
use yewdux::prelude::*;

use super::edit::ItemEditor;
use super::format_time;
use crate::store::{now_ms, FileItem, Workspace, LANGUAGES};

#[derive(Debug, Clone, PartialEq, Properties)]
pub(crate) struct FileEditorProps {
    pub(crate) id: AttrValue,
}

#[function_component]
pub(crate) fn FileEditor(props: &FileEditorProps) -> Html {
    let file = use_selector_with_deps(
        |ws: &Workspace, id: &AttrValue| ws.files.get_rc(id).cloned(),
        props.id.clone(),
    );
    let dispatch = use_dispatch::<Workspace>();
    let Some(file) = file.as_ref().clone() else {
        return html! { <p class="hint">{ "This file was deleted." }</p> };
    };

    let editor = {
        let id = props.id.clone();
        ItemEditor::<FileItem>::new(move |change| {
            dispatch.reduce_mut(|ws| {
                ws.files.update(&id, |file| {
                    change(file);
                    file.updated_at = now_ms(); // every edit stamps `updatedAt`
                });
            });
        })
    };
    let on_name = editor.on_input(|f, v| f.name = v);
    let on_path = editor.on_input(|f, v| f.path = v);
    let on_language = editor.on_select(|f, v| f.language = v);
    let on_content = editor.on_input(|f, v| f.content = v);

    let characters = file.content.chars().count();
    let lines = file.content.lines().count();
    let known = LANGUAGES.iter().any(|(value, _)| *value == file.language);
    html! {
        <section class="editor-form file-editor" aria-label={format!("File {}", file.name)}>
            <div class="row">
                <label class="field grow">
                    <span>{ "Name" }</span>
                    <input type="text" value={file.name.clone()} oninput={on_name} spellcheck="false" />
                </label>
                <label class="field grow">
                    <span>{ "Path" }</span>
                    <input type="text" value={file.path.clone()} oninput={on_path} spellcheck="false" />
                </label>
                <label class="field">
                    <span>{ "Language" }</span>
                    <select onchange={on_language}>
                        { for LANGUAGES.iter().map(|(value, label)| html! {
                            <option value={*value} selected={file.language == *value}>{ *label }</option>
                        }) }
                        if !known {
                            <option value={file.language.clone()} selected=true>{ file.language.clone() }</option>
                        }
                    </select>
                </label>
            </div>
            <label class="field content">
                <span>{ "Content" }</span>
                <textarea class="code" value={file.content.clone()} oninput={on_content}
                    spellcheck="false" autocomplete="off" />
            </label>
            <p class="meta">
                <span>{ format!("{} characters", group_digits(characters)) }</span>
                <span>{ crate::actions::plural(lines, "line") }</span>
                <span>{ format!("Edited {}", format_time(file.updated_at)) }</span>
            </p>
        </section>
    }
}

/// `12345` → `12,345`.
fn group_digits(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn digits_are_grouped_by_thousands() {
        assert_eq!(super::group_digits(0), "0");
        assert_eq!(super::group_digits(999), "999");
        assert_eq!(super::group_digits(1_234_567), "1,234,567");
    }
}
