//! Three-way merge of JSON values (for conflict resolution) and line diffs (for showing them).
//!
//! Pure: no I/O and no browser API, so the conflict rules and the UI share one definition of
//! "what changed" and it runs the same natively and in the browser.
//!
//! # Merging: [`merge3`]
//! A conflict is two copies of one item — `local` (this device) and `remote` (the server) —
//! that both changed since `base`, the last value both sides agreed on. `None` means absent
//! (deleted, or never written); `base` is also `None` when it is unknown. The rules, applied at
//! the root and again at every field of an object:
//!
//! 1. **One side changed, or both made the same change.** If `local == remote` the result is
//!    that value; if `local == base` it is `remote`; if `remote == base` it is `local`.
//!    Equality is [`serde_json::Value`] equality. This is the whole point of a three-way merge:
//!    the base tells *which* side changed, so an edit on one side is never mistaken for a
//!    conflict with the other side's stale copy.
//! 2. **Both objects** (and `base` an object or absent): merge key by key over the union of the
//!    keys, recursively, with these same rules. So edits to different fields combine. A key
//!    deleted on one side and unchanged on the other is deleted; deleted on one side and changed
//!    on the other is a conflict at that key's path. An absent `base` counts as `{}` for the
//!    recursion: a field present on both sides with different values and absent from the base
//!    was then added on both sides, which is "changed on both sides" — a conflict.
//! 3. **Both strings, with a string `base`**: a line-level three-way text merge
//!    ([`diffy::merge`]`(base, local, remote)`), so two people editing different lines of one
//!    note body both keep their edits. If the edits touch the same (or adjacent) lines the merge
//!    fails and the field is a conflict. Without a string base there is nothing to merge from:
//!    conflict.
//! 4. **Anything else changed on both sides** — numbers, booleans, arrays (atomic: merging
//!    element by element would need identities the data does not carry), a change of type, or
//!    deleted on one side and changed on the other at the root — is a conflict.
//!
//! Paths name the conflicting fields: object keys joined with `.` (`"meta.tags"`); a conflict at
//! the root (a non-object value) has the path `""`.
//!
//! With `prefer: None`, [`merge3`] collects **all** conflicting paths (sorted), so the caller can
//! show every one of them at once. With `prefer: Some(side)` it never fails: each conflicting
//! field takes that [`Side`]'s value (for a text field whose line merge failed, that side's whole
//! text) and everything else is still merged — a "local wins" policy keeps the remote's
//! non-conflicting edits.
//!
//! # Showing differences: [`field_changes`] and [`line_diff`]
//! [`field_changes`] lists every leaf field that differs between the three values, with which
//! side changed it; [`line_diff`] is a line diff of two texts (for a long text field).

use std::collections::BTreeSet;

use serde_json::{Map, Value};

/// Which side wins a field changed on both sides, when the caller asks for one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Side {
    /// This device's value.
    Local,
    /// The server's value.
    Remote,
}

/// Three-way merge of `local` and `remote`, both derived from `base` (see the [module
/// docs](self) for the rules).
///
/// `None` is an absent or deleted value; `base` is the last value both sides agreed on, `None`
/// when unknown or absent.
///
/// Returns `Ok(merged)` (`None` = deleted), or, when `prefer` is `None`, `Err(paths)`: the sorted
/// paths of the fields changed on both sides to different values that could not be merged
/// (`""` for the root). With `prefer: Some(side)` it never errs: conflicting fields take that
/// side's value.
pub fn merge3(
    base: Option<&Value>,
    local: Option<&Value>,
    remote: Option<&Value>,
    prefer: Option<Side>,
) -> Result<Option<Value>, Vec<String>> {
    let mut conflicts = Vec::new();
    let merged = merge_at("", base, local, remote, prefer, &mut conflicts);
    if conflicts.is_empty() {
        Ok(merged)
    } else {
        conflicts.sort();
        Err(conflicts)
    }
}

/// The path of `key` inside the field at `path`.
fn child_path(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// The keys of the (present) objects, each once, in the order the maps are given.
fn union_keys(maps: [Option<&Map<String, Value>>; 3]) -> Vec<&String> {
    let mut seen = BTreeSet::new();
    let mut keys = Vec::new();
    for key in maps.into_iter().flatten().flat_map(Map::keys) {
        if seen.insert(key) {
            keys.push(key);
        }
    }
    keys
}

/// [`merge3`] at one path; conflicts are pushed to `conflicts` (only when `prefer` is `None`).
fn merge_at(
    path: &str,
    base: Option<&Value>,
    local: Option<&Value>,
    remote: Option<&Value>,
    prefer: Option<Side>,
    conflicts: &mut Vec<String>,
) -> Option<Value> {
    // Rule 1: at most one side changed.
    if local == remote || remote == base {
        return local.cloned();
    }
    if local == base {
        return remote.cloned();
    }
    match (base, local, remote) {
        // Rule 2: both objects, base an object or absent.
        (None | Some(Value::Object(_)), Some(Value::Object(l)), Some(Value::Object(r))) => {
            let b = base.and_then(Value::as_object);
            let mut merged = Map::new();
            for key in union_keys([Some(l), Some(r), b]) {
                let field = merge_at(
                    &child_path(path, key),
                    b.and_then(|b| b.get(key)),
                    l.get(key),
                    r.get(key),
                    prefer,
                    conflicts,
                );
                if let Some(value) = field {
                    merged.insert(key.clone(), value);
                }
            }
            Some(Value::Object(merged))
        }
        // Rule 3: text with a text base: line-level three-way merge.
        (Some(Value::String(b)), Some(Value::String(l)), Some(Value::String(r))) => {
            match diffy::merge(b, l, r) {
                Ok(text) => Some(Value::String(text)),
                Err(_with_markers) => conflict(path, local, remote, prefer, conflicts),
            }
        }
        // Rule 4: everything else changed on both sides.
        _ => conflict(path, local, remote, prefer, conflicts),
    }
}

/// A conflict at `path`: the preferred side's value, or (no preference) record the path.
fn conflict(
    path: &str,
    local: Option<&Value>,
    remote: Option<&Value>,
    prefer: Option<Side>,
    conflicts: &mut Vec<String>,
) -> Option<Value> {
    match prefer {
        Some(Side::Local) => local.cloned(),
        Some(Side::Remote) => remote.cloned(),
        None => {
            conflicts.push(path.to_owned());
            // Discarded: the merge fails.
            local.cloned()
        }
    }
}

/// One field's difference for display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldChange {
    /// The field's path: object keys joined with `.`; `""` for a non-object root.
    pub path: String,
    /// The field in the base (`None`: absent, or no base).
    pub base: Option<Value>,
    /// The field on this device (`None`: absent or deleted).
    pub local: Option<Value>,
    /// The field on the server (`None`: absent or deleted).
    pub remote: Option<Value>,
    /// `local` differs from `base`.
    pub local_changed: bool,
    /// `remote` differs from `base`.
    pub remote_changed: bool,
}

/// Every field that differs between any of the three values, in path order.
///
/// Objects are recursed into (over the union of their keys) and their leaf fields listed, with
/// paths joined by `.`; a value that is not an object on every side where it is present is a
/// leaf (so a non-object root has the path `""`). A field equal on all three sides is left out.
pub fn field_changes(
    base: Option<&Value>,
    local: Option<&Value>,
    remote: Option<&Value>,
) -> Vec<FieldChange> {
    let mut changes = Vec::new();
    collect_changes(String::new(), base, local, remote, &mut changes);
    changes.sort_by(|a, b| a.path.cmp(&b.path));
    changes
}

/// [`field_changes`] at one path.
fn collect_changes(
    path: String,
    base: Option<&Value>,
    local: Option<&Value>,
    remote: Option<&Value>,
    out: &mut Vec<FieldChange>,
) {
    if base == local && local == remote {
        return;
    }
    let present = [base, local, remote];
    let all_objects = present.iter().flatten().all(|value| matches!(value, Value::Object(_)));
    if all_objects {
        let keys = union_keys(present.map(|value| value.and_then(Value::as_object)));
        // An empty object against an absent one has no field to show: it is a leaf.
        if !keys.is_empty() {
            for key in keys {
                collect_changes(
                    child_path(&path, key),
                    field(base, key),
                    field(local, key),
                    field(remote, key),
                    out,
                );
            }
            return;
        }
    }
    out.push(FieldChange {
        path,
        base: base.cloned(),
        local: local.cloned(),
        remote: remote.cloned(),
        local_changed: local != base,
        remote_changed: remote != base,
    });
}

/// The field `key` of `value`, if `value` is an object that has it.
fn field<'a>(value: Option<&'a Value>, key: &str) -> Option<&'a Value> {
    value.and_then(|value| value.get(key))
}

/// What happened to a line in a [`line_diff`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineKind {
    /// In both texts.
    Same,
    /// Only in the old text.
    Removed,
    /// Only in the new text.
    Added,
}

/// One line of a [`line_diff`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffLine {
    /// Whether the line was kept, removed or added.
    pub kind: LineKind,
    /// The line, without its trailing newline (`\n` or `\r\n`).
    pub text: String,
}

/// Line diff from `old` to `new` ([`similar::TextDiff::from_lines`]), every line of both texts
/// in order.
///
/// A last line without a trailing newline differs from the same line with one, so it shows as
/// removed and added with the same text.
pub fn line_diff(old: &str, new: &str) -> Vec<DiffLine> {
    similar::TextDiff::from_lines(old, new)
        .iter_all_changes()
        .map(|change| {
            let kind = match change.tag() {
                similar::ChangeTag::Equal => LineKind::Same,
                similar::ChangeTag::Delete => LineKind::Removed,
                similar::ChangeTag::Insert => LineKind::Added,
            };
            let line = change.value();
            let line = line.strip_suffix('\n').unwrap_or(line);
            let line = line.strip_suffix('\r').unwrap_or(line);
            DiffLine { kind, text: line.to_owned() }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn merge(base: &Value, local: &Value, remote: &Value) -> Result<Option<Value>, Vec<String>> {
        merge3(Some(base), Some(local), Some(remote), None)
    }

    fn conflicts(paths: &[&str]) -> Result<Option<Value>, Vec<String>> {
        Err(paths.iter().map(|p| p.to_string()).collect())
    }

    #[test]
    fn a_field_changed_on_the_local_side_only_takes_the_local_value() {
        let base = json!({"title": "a", "done": false});
        let local = json!({"title": "b", "done": false});
        assert_eq!(merge(&base, &local, &base), Ok(Some(local.clone())));
    }

    #[test]
    fn a_field_changed_on_the_remote_side_only_takes_the_remote_value() {
        let base = json!({"title": "a", "done": false});
        let remote = json!({"title": "a", "done": true});
        assert_eq!(merge(&base, &base, &remote), Ok(Some(remote.clone())));
    }

    #[test]
    fn different_fields_changed_on_each_side_are_both_kept() {
        let base = json!({"title": "a", "done": false});
        let local = json!({"title": "b", "done": false});
        let remote = json!({"title": "a", "done": true});
        assert_eq!(merge(&base, &local, &remote), Ok(Some(json!({"title": "b", "done": true}))));
    }

    #[test]
    fn a_field_changed_on_both_sides_to_the_same_value_takes_that_value() {
        let base = json!({"title": "a", "n": 1});
        let both = json!({"title": "a", "n": 2});
        assert_eq!(merge(&base, &both, &both), Ok(Some(both.clone())));
        // Also when other fields differ.
        let local = json!({"title": "l", "n": 2});
        let remote = json!({"title": "a", "n": 2});
        assert_eq!(merge(&base, &local, &remote), Ok(Some(local.clone())));
    }

    #[test]
    fn a_field_changed_on_both_sides_differently_is_a_conflict_at_its_path() {
        let base = json!({"title": 1, "done": false});
        let local = json!({"title": 2, "done": false});
        let remote = json!({"title": 3, "done": true});
        assert_eq!(merge(&base, &local, &remote), conflicts(&["title"]));
    }

    #[test]
    fn a_nested_conflict_is_reported_with_its_dotted_path() {
        let base = json!({"meta": {"tags": ["a"], "color": "red"}, "title": "t"});
        let local = json!({"meta": {"tags": ["a", "b"], "color": "red"}, "title": "t"});
        let remote = json!({"meta": {"tags": ["c"], "color": "blue"}, "title": "t"});
        assert_eq!(merge(&base, &local, &remote), conflicts(&["meta.tags"]));
    }

    #[test]
    fn all_conflicting_paths_are_reported_sorted() {
        let base = json!({"z": 1, "a": 1, "m": {"x": 1}});
        let local = json!({"z": 2, "a": 2, "m": {"x": 2}});
        let remote = json!({"z": 3, "a": 3, "m": {"x": 3}});
        assert_eq!(merge(&base, &local, &remote), conflicts(&["a", "m.x", "z"]));
    }

    #[test]
    fn arrays_are_atomic_so_both_sides_appending_is_a_conflict() {
        let base = json!({"tags": ["a"]});
        let local = json!({"tags": ["a", "b"]});
        let remote = json!({"tags": ["a", "c"]});
        assert_eq!(merge(&base, &local, &remote), conflicts(&["tags"]));
    }

    #[test]
    fn a_type_change_on_one_side_against_an_edit_on_the_other_is_a_conflict() {
        let base = json!({"v": {"x": 1}});
        let local = json!({"v": "text"});
        let remote = json!({"v": {"x": 2}});
        assert_eq!(merge(&base, &local, &remote), conflicts(&["v"]));
    }

    #[test]
    fn non_overlapping_line_edits_of_a_text_field_are_merged() {
        let base = json!({"body": "one\ntwo\nthree\nfour\nfive\n"});
        let local = json!({"body": "ONE\ntwo\nthree\nfour\nfive\n"});
        let remote = json!({"body": "one\ntwo\nthree\nfour\nFIVE\n"});
        assert_eq!(
            merge(&base, &local, &remote),
            Ok(Some(json!({"body": "ONE\ntwo\nthree\nfour\nFIVE\n"})))
        );
    }

    #[test]
    fn overlapping_line_edits_of_a_text_field_are_a_conflict() {
        let base = json!({"body": "one\ntwo\nthree\n"});
        let local = json!({"body": "one\nTWO\nthree\n"});
        let remote = json!({"body": "one\n2\nthree\n"});
        assert_eq!(merge(&base, &local, &remote), conflicts(&["body"]));
    }

    #[test]
    fn edits_of_adjacent_lines_of_a_text_field_are_a_conflict() {
        let base = json!({"body": "a\nb\nc\nd\n"});
        let local = json!({"body": "a\nB\nc\nd\n"});
        let remote = json!({"body": "a\nb\nC\nd\n"});
        assert_eq!(merge(&base, &local, &remote), conflicts(&["body"]));
    }

    #[test]
    fn the_same_line_edit_on_both_sides_merges_with_a_separate_edit() {
        let base = json!({"body": "a\nb\nc\nd\ne\n"});
        let local = json!({"body": "a\nX\nc\nd\nE\n"});
        let remote = json!({"body": "a\nX\nc\nd\ne\n"});
        assert_eq!(merge(&base, &local, &remote), Ok(Some(local.clone())));
        // Both line-merged, with an edit of its own elsewhere on each side.
        let base = json!({"body": "a\nb\nc\nd\ne\nf\ng\n"});
        let local = json!({"body": "A\nb\nX\nd\ne\nf\ng\n"});
        let remote = json!({"body": "a\nb\nX\nd\ne\nf\nG\n"});
        assert_eq!(
            merge(&base, &local, &remote),
            Ok(Some(json!({"body": "A\nb\nX\nd\ne\nf\nG\n"})))
        );
    }

    #[test]
    fn a_text_changed_on_both_sides_without_a_text_base_is_a_conflict() {
        let local = json!("local");
        let remote = json!("remote");
        assert_eq!(merge3(None, Some(&local), Some(&remote), None), conflicts(&[""]));
        assert_eq!(merge3(Some(&json!(1)), Some(&local), Some(&remote), None), conflicts(&[""]));
    }

    #[test]
    fn prefer_local_takes_local_at_conflicts_and_keeps_remote_elsewhere() {
        let base = json!({"title": "a", "n": 1, "body": "x\n"});
        let local = json!({"title": "a", "n": 2, "body": "local\n"});
        let remote = json!({"title": "b", "n": 3, "body": "remote\n"});
        assert_eq!(
            merge3(Some(&base), Some(&local), Some(&remote), Some(Side::Local)),
            Ok(Some(json!({"title": "b", "n": 2, "body": "local\n"})))
        );
    }

    #[test]
    fn prefer_remote_takes_remote_at_conflicts_and_keeps_local_elsewhere() {
        let base = json!({"title": "a", "n": 1, "body": "x\n"});
        let local = json!({"title": "b", "n": 2, "body": "local\n"});
        let remote = json!({"title": "a", "n": 3, "body": "remote\n"});
        assert_eq!(
            merge3(Some(&base), Some(&local), Some(&remote), Some(Side::Remote)),
            Ok(Some(json!({"title": "b", "n": 3, "body": "remote\n"})))
        );
    }

    #[test]
    fn prefer_applies_to_a_deleted_versus_changed_root() {
        let base = json!({"n": 1});
        let remote = json!({"n": 2});
        assert_eq!(merge3(Some(&base), None, Some(&remote), Some(Side::Local)), Ok(None));
        assert_eq!(
            merge3(Some(&base), None, Some(&remote), Some(Side::Remote)),
            Ok(Some(remote.clone()))
        );
    }

    #[test]
    fn deleted_on_one_side_and_unchanged_on_the_other_is_deleted() {
        let base = json!({"n": 1});
        assert_eq!(merge3(Some(&base), None, Some(&base), None), Ok(None));
        assert_eq!(merge3(Some(&base), Some(&base), None, None), Ok(None));
    }

    #[test]
    fn deleted_on_one_side_and_changed_on_the_other_is_a_conflict_at_the_root() {
        let base = json!({"n": 1});
        let changed = json!({"n": 2});
        assert_eq!(merge3(Some(&base), None, Some(&changed), None), conflicts(&[""]));
        assert_eq!(merge3(Some(&base), Some(&changed), None, None), conflicts(&[""]));
    }

    #[test]
    fn a_field_deleted_on_one_side_follows_the_same_deletion_rules() {
        let base = json!({"a": 1, "b": 1, "c": 1});
        // a: deleted locally, unchanged remotely → deleted; b: deleted remotely, changed
        // locally → conflict; c: untouched.
        let local = json!({"b": 2, "c": 1});
        let remote = json!({"a": 1, "c": 1});
        assert_eq!(merge(&base, &local, &remote), conflicts(&["b"]));
        let remote = json!({"a": 1, "b": 1, "c": 1});
        assert_eq!(merge(&base, &local, &remote), Ok(Some(json!({"b": 2, "c": 1}))));
    }

    #[test]
    fn deleted_on_both_sides_is_deleted() {
        let base = json!({"n": 1});
        assert_eq!(merge3(Some(&base), None, None, None), Ok(None));
    }

    #[test]
    fn with_an_absent_base_two_objects_merge_their_distinct_fields() {
        let local = json!({"a": 1, "same": true});
        let remote = json!({"b": 2, "same": true});
        assert_eq!(
            merge3(None, Some(&local), Some(&remote), None),
            Ok(Some(json!({"a": 1, "b": 2, "same": true})))
        );
    }

    #[test]
    fn with_an_absent_base_a_field_added_on_both_sides_differently_is_a_conflict() {
        let local = json!({"a": 1, "title": "l"});
        let remote = json!({"b": 2, "title": "r"});
        assert_eq!(merge3(None, Some(&local), Some(&remote), None), conflicts(&["title"]));
    }

    #[test]
    fn field_changes_lists_leaf_fields_with_who_changed_them_in_path_order() {
        let base = json!({"title": "a", "meta": {"tags": ["x"], "color": "red"}, "n": 1});
        let local = json!({"title": "b", "meta": {"tags": ["x"], "color": "blue"}, "n": 1});
        let remote = json!({"title": "c", "meta": {"tags": ["y"], "color": "red"}, "n": 1});
        let changes = field_changes(Some(&base), Some(&local), Some(&remote));
        let summary: Vec<_> =
            changes.iter().map(|c| (c.path.as_str(), c.local_changed, c.remote_changed)).collect();
        assert_eq!(
            summary,
            [("meta.color", true, false), ("meta.tags", false, true), ("title", true, true),]
        );
        assert_eq!(
            changes[2],
            FieldChange {
                path: "title".into(),
                base: Some(json!("a")),
                local: Some(json!("b")),
                remote: Some(json!("c")),
                local_changed: true,
                remote_changed: true,
            }
        );
    }

    #[test]
    fn field_changes_reports_absent_fields_and_a_non_object_root() {
        let base = json!({"gone": 1});
        let local = json!({"new": 2});
        let changes = field_changes(Some(&base), Some(&local), Some(&base));
        assert_eq!(
            changes,
            [
                FieldChange {
                    path: "gone".into(),
                    base: Some(json!(1)),
                    local: None,
                    remote: Some(json!(1)),
                    local_changed: true,
                    remote_changed: false,
                },
                FieldChange {
                    path: "new".into(),
                    base: None,
                    local: Some(json!(2)),
                    remote: None,
                    local_changed: true,
                    remote_changed: false,
                },
            ]
        );
        let root = field_changes(Some(&json!(1)), Some(&json!(1)), Some(&json!(2)));
        assert_eq!(root.len(), 1);
        assert_eq!(root[0].path, "");
        assert!(!root[0].local_changed && root[0].remote_changed);
        assert!(field_changes(Some(&base), Some(&base), Some(&base)).is_empty());
    }

    #[test]
    fn line_diff_marks_kept_removed_and_added_lines_without_newlines() {
        let diff = line_diff("a\nb\nc\n", "a\nB\nc\nd\n");
        let kinds: Vec<_> = diff.iter().map(|l| (l.kind, l.text.as_str())).collect();
        assert_eq!(
            kinds,
            [
                (LineKind::Same, "a"),
                (LineKind::Removed, "b"),
                (LineKind::Added, "B"),
                (LineKind::Same, "c"),
                (LineKind::Added, "d"),
            ]
        );
        assert!(line_diff("x\n", "x\n").iter().all(|l| l.kind == LineKind::Same));
    }
}
