//! The app's components, one job per file.

mod component_editor;
mod conflicts_page;
mod edit;
mod editor;
mod file_editor;
mod header;
mod model_editor;
mod settings_form;
mod shell;
mod sidebar;

pub(crate) use shell::Shell;

/// An epoch-milliseconds time as `14:05` today, `3 Apr 14:05` otherwise (`—` for none).
pub(crate) fn format_time(epoch_ms: f64) -> String {
    const MONTHS: [&str; 12] =
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    if epoch_ms <= 0.0 || !epoch_ms.is_finite() {
        return "—".into();
    }
    let date = js_sys::Date::new(&epoch_ms.into());
    let today = js_sys::Date::new_0();
    let time = format!("{:02}:{:02}", date.get_hours(), date.get_minutes());
    if date.to_date_string() == today.to_date_string() {
        time
    } else {
        let month = MONTHS.get(date.get_month() as usize).copied().unwrap_or("?");
        format!("{} {month} {}, {time}", date.get_date(), date.get_full_year())
    }
}
