//! What the sidebar does to the workspace, for any section: list, create, rename, delete.

use crate::store::{new_id, now_ms, Component, FileItem, Model, ModelField, Workspace};
use crate::ui::Section;

/// One row of the sidebar list.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    pub(crate) id: String,
    pub(crate) name: String,
    /// A second line: the path, field count...
    pub(crate) detail: String,
}

/// The items of `section` whose name contains `search` (case-insensitive), sorted by name.
pub(crate) fn entries(workspace: &Workspace, section: Section, search: &str) -> Vec<Entry> {
    let mut entries: Vec<Entry> = match section {
        Section::Files => workspace
            .files
            .values()
            .map(|f| Entry { id: f.id.clone(), name: f.name.clone(), detail: f.path.clone() })
            .collect(),
        Section::Models => workspace
            .models
            .values()
            .map(|m| Entry {
                id: m.id.clone(),
                name: m.name.clone(),
                detail: plural(m.fields.len(), "field"),
            })
            .collect(),
        Section::Components => workspace
            .components
            .values()
            .map(|c| Entry {
                id: c.id.clone(),
                name: c.name.clone(),
                detail: plural(c.props.len(), "prop"),
            })
            .collect(),
        Section::Settings => Vec::new(),
    };
    let needle = search.trim().to_lowercase();
    if !needle.is_empty() {
        entries.retain(|entry| entry.name.to_lowercase().contains(&needle));
    }
    entries.sort_by(|a, b| a.name.to_lowercase().cmp(&b.name.to_lowercase()).then(a.id.cmp(&b.id)));
    entries
}

pub(crate) fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// `base` if no name in `taken` equals it, else `base-2`, `base-3`... (before the extension).
fn unique_name<'a>(base: &str, ext: &str, taken: impl Iterator<Item = &'a str>) -> String {
    let taken: Vec<&str> = taken.collect();
    let mut n = 1;
    loop {
        let name = if n == 1 { format!("{base}{ext}") } else { format!("{base}-{n}{ext}") };
        if !taken.contains(&name.as_str()) {
            return name;
        }
        n += 1;
    }
}

/// Adds a new item to `section` and returns its id (`None` for Settings).
pub(crate) fn create(workspace: &mut Workspace, section: Section) -> Option<String> {
    match section {
        Section::Files => {
            let id = new_id("f");
            let name =
                unique_name("untitled", ".md", workspace.files.values().map(|f| f.name.as_str()));
            let file = FileItem {
                id: id.clone(),
                name,
                content: String::new(),
                language: "markdown".into(),
                path: "/".into(),
                updated_at: now_ms(),
            };
            workspace.files.insert(id.clone(), file);
            Some(id)
        }
        Section::Models => {
            let id = new_id("m");
            let name =
                unique_name("NewModel", "", workspace.models.values().map(|m| m.name.as_str()));
            let id_field = ModelField { name: "id".into(), kind: "string".into(), required: true };
            workspace
                .models
                .insert(id.clone(), Model { id: id.clone(), name, fields: vec![id_field] });
            Some(id)
        }
        Section::Components => {
            let id = new_id("c");
            let name = unique_name(
                "NewComponent",
                "",
                workspace.components.values().map(|c| c.name.as_str()),
            );
            let component = Component {
                id: id.clone(),
                name,
                props: Vec::new(),
                template: "<div class=\"card\">\n  {children}\n</div>\n".into(),
            };
            workspace.components.insert(id.clone(), component);
            Some(id)
        }
        Section::Settings => None,
    }
}

/// Renames an item of `section`; blank names are ignored.
pub(crate) fn rename(workspace: &mut Workspace, section: Section, id: &str, name: &str) {
    let name = name.trim();
    if name.is_empty() {
        return;
    }
    match section {
        Section::Files => {
            workspace.files.update(id, |f| {
                if f.name != name {
                    f.name = name.to_owned();
                    f.updated_at = now_ms();
                }
            });
        }
        Section::Models => {
            workspace.models.update(id, |m| m.name = name.to_owned());
        }
        Section::Components => {
            workspace.components.update(id, |c| c.name = name.to_owned());
        }
        Section::Settings => {}
    }
}

/// Deletes an item of `section`.
pub(crate) fn delete(workspace: &mut Workspace, section: Section, id: &str) {
    match section {
        Section::Files => drop(workspace.files.remove(id)),
        Section::Models => drop(workspace.models.remove(id)),
        Section::Components => drop(workspace.components.remove(id)),
        Section::Settings => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_skip_taken_ones() {
        let taken = ["untitled.md", "untitled-2.md"];
        assert_eq!(unique_name("untitled", ".md", taken.into_iter()), "untitled-3.md");
        assert_eq!(unique_name("Model", "", taken.into_iter()), "Model");
    }

    #[test]
    fn entries_are_filtered_and_sorted_by_name() {
        let mut workspace = Workspace::first_run(0.0);
        for (id, name) in [("f-2", "zeta.rs"), ("f-3", "Alpha.md")] {
            let mut file = workspace.files.get("f-welcome").unwrap().clone();
            (file.id, file.name) = (id.into(), name.into());
            workspace.files.insert(id, file);
        }
        let names = |search| -> Vec<String> {
            entries(&workspace, Section::Files, search).into_iter().map(|e| e.name).collect()
        };
        assert_eq!(names(""), ["Alpha.md", "README.md", "zeta.rs"]);
        assert_eq!(names(" .MD"), ["Alpha.md", "README.md"]);
    }
}
