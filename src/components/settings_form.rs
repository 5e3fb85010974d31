//! The settings form: theme, editor font size, autosave debounce.

use std::time::Duration;

use yew::prelude::*;
use yewdux::prelude::*;
use yewdux_persist::config::ConfigError;
use yewdux_persist::{CollectionConfigPatch, Persistence};

use crate::dom::value_of;
use crate::store::{Settings, Theme, FONT_SIZES};

/// Collections whose writes follow the autosave debounce.
pub(crate) const AUTOSAVED_COLLECTIONS: [&str; 3] = ["files", "models", "components"];

/// Sets the debounce of every autosaved collection, or none of them if it is invalid for any.
pub(crate) fn apply_autosave_debounce(
    persistence: &Persistence,
    debounce_ms: u32,
) -> Result<(), ConfigError> {
    let patch = CollectionConfigPatch {
        debounce: Some(Duration::from_millis(debounce_ms.into())),
        ..Default::default()
    };
    persistence.configure_collections(&AUTOSAVED_COLLECTIONS, patch)
}

#[function_component]
pub(crate) fn SettingsForm() -> Html {
    let (settings, dispatch) = use_store::<Settings>();
    let persistence = yewdux_persist::persistence(
        &use_context::<yewdux::Context>().expect("App provides the context"),
    );
    let debounce_text = use_state(|| settings.autosave_debounce_ms.to_string());
    let debounce_error = use_state(|| None::<String>);
    let font_error = use_state(|| None::<String>);
    {
        // Follow changes made elsewhere (another tab) unless the user is fixing an error here.
        let (debounce_text, debounce_error) = (debounce_text.clone(), debounce_error.clone());
        use_effect_with(settings.autosave_debounce_ms, move |ms| {
            if debounce_error.is_none() {
                debounce_text.set(ms.to_string());
            }
        });
    }

    let on_theme = dispatch.reduce_mut_callback_with(|s, e: Event| {
        s.theme = if value_of(&e) == "dark" { Theme::Dark } else { Theme::Light };
    });
    let on_font = {
        let (dispatch, font_error) = (dispatch.clone(), font_error.clone());
        Callback::from(move |e: InputEvent| match value_of(&e).trim().parse::<u32>() {
            Ok(size) if FONT_SIZES.contains(&size) => {
                font_error.set(None);
                dispatch.reduce_mut(|s| s.font_size = size);
            }
            _ => font_error.set(Some(format!(
                "Enter a size from {} to {} px.",
                FONT_SIZES.start(),
                FONT_SIZES.end()
            ))),
        })
    };
    let on_debounce = {
        let (debounce_text, debounce_error) = (debounce_text.clone(), debounce_error.clone());
        Callback::from(move |e: InputEvent| {
            let text = value_of(&e);
            debounce_text.set(text.clone());
            let result = match text.trim().parse::<u32>() {
                Ok(ms) => apply_autosave_debounce(&persistence, ms)
                    .map(|()| ms)
                    .map_err(|error| format!("Not applied: {error}")),
                Err(_) => Err("Enter a whole number of milliseconds.".to_owned()),
            };
            match result {
                Ok(ms) => {
                    debounce_error.set(None);
                    dispatch.reduce_mut(|s| s.autosave_debounce_ms = ms);
                }
                Err(message) => debounce_error.set(Some(message)),
            }
        })
    };

    let theme = settings.theme;
    html! {
        <section class="editor-form settings-form" aria-label="Settings">
            <h2>{ "Settings" }</h2>
            <label class="field">
                <span>{ "Theme" }</span>
                <select onchange={on_theme}>
                    <option value="light" selected={theme == Theme::Light}>{ "Light" }</option>
                    <option value="dark" selected={theme == Theme::Dark}>{ "Dark" }</option>
                </select>
            </label>
            <label class="field">
                <span>{ "Editor font size (px)" }</span>
                <input type="number" min={FONT_SIZES.start().to_string()} max={FONT_SIZES.end().to_string()}
                    value={settings.font_size.to_string()} oninput={on_font}
                    aria-invalid={font_error.is_some().then_some("true")} />
            </label>
            if let Some(error) = &*font_error {
                <p class="form-error" role="alert">{ error.clone() }</p>
            }
            <label class="field">
                <span>{ "Autosave debounce (ms)" }</span>
                <input type="number" min="0" step="50" value={(*debounce_text).clone()}
                    oninput={on_debounce} aria-invalid={debounce_error.is_some().then_some("true")} />
            </label>
            if let Some(error) = &*debounce_error {
                <p class="form-error" role="alert">{ error.clone() }</p>
            }
            <p class="hint">
                { "How long the editor waits after your last keystroke before saving. \
                   An item that keeps changing is still saved every 2 s. \
                   Settings are kept on this device only (never synced)." }
            </p>
        </section>
    }
}
