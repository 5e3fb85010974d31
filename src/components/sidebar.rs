//! The sidebar: the four sections, the conflict page, a search filter, and the items of the
//! open section.

use web_sys::HtmlInputElement;
use yew::prelude::*;
use yewdux::prelude::*;
use yewdux_persist::use_persistence;

use crate::actions::{self, Entry};
use crate::dom::value_of;
use crate::store::Workspace;
use crate::ui::{Page, Section, Ui};

#[function_component]
pub(crate) fn Sidebar() -> Html {
    let (ui, ui_dispatch) = use_store::<Ui>();
    let dispatch = use_dispatch::<Workspace>();
    let section = ui.section;
    let on_conflicts = ui.page == Page::Conflicts;
    // Re-render only when what the sidebar shows changes, not on every keystroke in an editor.
    let listing = use_selector_with_deps(
        |ws: &Workspace, (section, search): &(Section, String)| {
            let counts = [ws.files.len(), ws.models.len(), ws.components.len()];
            (counts, actions::entries(ws, *section, search))
        },
        (section, ui.search.clone()),
    );
    let (counts, entries) = &*listing;

    let tabs = Section::ALL.iter().map(|&tab| {
        let count = match tab {
            Section::Files => Some(counts[0]),
            Section::Models => Some(counts[1]),
            Section::Components => Some(counts[2]),
            Section::Settings => None,
        };
        let onclick = ui_dispatch.reduce_mut_callback(move |ui| {
            ui.show_workspace();
            if ui.section != tab {
                ui.section = tab;
                ui.selected = None;
                ui.renaming = None;
                ui.search.clear();
            }
        });
        let active = tab == section && !on_conflicts;
        html! {
            <li>
                <button
                    class={classes!("tab", active.then_some("active"))}
                    aria-current={active.then_some("page")}
                    {onclick}
                >
                    <span>{ tab.title() }</span>
                    if let Some(count) = count { <span class="count">{ count }</span> }
                </button>
            </li>
        }
    });

    let body = if section == Section::Settings {
        html! { <p class="hint">{ "Theme, font size and autosave. Saved on this device only." }</p> }
    } else {
        let create = {
            let ui_dispatch = ui_dispatch.clone();
            Callback::from(move |_: MouseEvent| {
                let id = dispatch.reduce_mut(|ws| actions::create(ws, section));
                ui_dispatch.reduce_mut(|ui| {
                    ui.show_workspace();
                    ui.selected = id;
                    ui.search.clear();
                });
            })
        };
        let search = ui_dispatch.reduce_mut_callback_with(|ui, e: InputEvent| {
            ui.search = value_of(&e);
        });
        let empty = if ui.search.trim().is_empty() {
            format!("No {}s yet.", section.noun())
        } else {
            format!("No {} matches “{}”.", section.noun(), ui.search.trim())
        };
        html! {
            <>
                <button class="button primary new-item" onclick={create}>
                    { format!("New {}", section.noun()) }
                </button>
                <label class="search">
                    <span class="visually-hidden">{ format!("Search {}", section.title().to_lowercase()) }</span>
                    <input type="search" placeholder="Search…" value={ui.search.clone()} oninput={search} />
                </label>
                if entries.is_empty() {
                    <p class="hint">{ empty }</p>
                } else {
                    <ul class="items" aria-label={section.title()}>
                        { for entries.iter().cloned().map(|entry| {
                            let selected = ui.selected.as_ref() == Some(&entry.id);
                            let renaming = ui.renaming.as_ref() == Some(&entry.id);
                            let key = entry.id.clone();
                            html! {
                                <ItemRow {key} {section} {entry} {selected} {renaming} />
                            }
                        }) }
                    </ul>
                }
            </>
        }
    };

    html! {
        <nav class="sidebar" aria-label="Workspace">
            <ul class="tabs">
                { for tabs }
                <li><ConflictsTab active={on_conflicts} /></li>
            </ul>
            { body }
        </nav>
    }
}

#[derive(Debug, Clone, PartialEq, Properties)]
struct ConflictsTabProps {
    active: bool,
}

/// The link to the conflict page, with the open-conflict count. Its own component: the
/// persistence status changes on every save, and only this link shows it.
#[function_component]
fn ConflictsTab(props: &ConflictsTabProps) -> Html {
    let open = use_persistence().status.sync.open_conflicts;
    html! {
        <a
            id="conflicts-tab"
            class={classes!("tab", "conflicts-tab", props.active.then_some("active"))}
            href={Page::CONFLICTS_HASH}
            aria-current={props.active.then_some("page")}
        >
            <span>{ "Conflicts" }</span>
            <span class={classes!("count", (open > 0).then_some("has-conflicts"))}>{ open }</span>
        </a>
    }
}

#[derive(Debug, Clone, PartialEq, Properties)]
struct ItemRowProps {
    section: Section,
    entry: Entry,
    selected: bool,
    renaming: bool,
}

#[function_component]
fn ItemRow(props: &ItemRowProps) -> Html {
    let ui_dispatch = use_dispatch::<Ui>();
    let dispatch = use_dispatch::<Workspace>();
    let ItemRowProps { section, entry, selected, renaming } = props.clone();
    let label = if entry.name.trim().is_empty() { "(unnamed)".to_owned() } else { entry.name };

    if renaming {
        return html! {
            <li class="item renaming">
                <RenameInput {section} id={entry.id} name={label} />
            </li>
        };
    }
    let open = {
        let id = entry.id.clone();
        ui_dispatch.reduce_mut_callback(move |ui| {
            ui.show_workspace();
            ui.selected = Some(id.clone());
        })
    };
    let start_rename = {
        let id = entry.id.clone();
        ui_dispatch.reduce_mut_callback(move |ui| ui.renaming = Some(id.clone()))
    };
    let delete = {
        let id = entry.id.clone();
        Callback::from(move |_: MouseEvent| {
            dispatch.reduce_mut(|ws| actions::delete(ws, section, &id));
            ui_dispatch.reduce_mut(|ui| {
                if ui.selected.as_deref() == Some(id.as_str()) {
                    ui.selected = None;
                }
            });
        })
    };
    html! {
        <li class={classes!("item", selected.then_some("selected"))}>
            <button class="item-open" aria-current={selected.then_some("true")} onclick={open}>
                <span class="item-name">{ label.clone() }</span>
                <span class="item-detail">{ entry.detail }</span>
            </button>
            <button class="icon" title="Rename" aria-label={format!("Rename {label}")} onclick={start_rename}>
                { "✎" }
            </button>
            <button class="icon danger" title="Delete" aria-label={format!("Delete {label}")} onclick={delete}>
                { "×" }
            </button>
        </li>
    }
}

#[derive(Debug, Clone, PartialEq, Properties)]
struct RenameProps {
    section: Section,
    id: String,
    name: String,
}

/// An inline name input: Enter or leaving it saves, Escape cancels.
#[function_component]
fn RenameInput(props: &RenameProps) -> Html {
    let input = use_node_ref();
    let ui_dispatch = use_dispatch::<Ui>();
    let dispatch = use_dispatch::<Workspace>();
    {
        let input = input.clone();
        use_effect_with((), move |_| {
            if let Some(input) = input.cast::<HtmlInputElement>() {
                let _ = input.focus();
                input.select();
            }
        });
    }
    let finish = {
        let (input, section, id) = (input.clone(), props.section, props.id.clone());
        Callback::from(move |save: bool| {
            // Leaving the input after Enter/Escape finishes again: only the first one counts.
            if ui_dispatch.get().renaming.as_deref() != Some(id.as_str()) {
                return;
            }
            if save {
                if let Some(input) = input.cast::<HtmlInputElement>() {
                    dispatch.reduce_mut(|ws| actions::rename(ws, section, &id, &input.value()));
                }
            }
            ui_dispatch.reduce_mut(|ui| ui.renaming = None);
        })
    };
    let onkeydown = {
        let finish = finish.clone();
        Callback::from(move |e: KeyboardEvent| match e.key().as_str() {
            "Enter" => {
                e.prevent_default();
                finish.emit(true);
            }
            "Escape" => finish.emit(false),
            _ => {}
        })
    };
    let onblur = Callback::from(move |_: FocusEvent| finish.emit(true));
    html! {
        <label class="rename">
            <span class="visually-hidden">{ format!("New name for {}", props.name) }</span>
            <input ref={input} type="text" value={props.name.clone()} {onkeydown} {onblur} />
        </label>
    }
}
