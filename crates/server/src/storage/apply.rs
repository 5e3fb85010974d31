//! The push rule, shared by both backends: given an op and the item's current row, write it,
//! answer "already there", or answer with a conflict.

use persist_protocol::Revision;

use super::WriteOp;

/// The current row of an item, as far as the push rule needs it.
#[derive(Debug, Clone)]
pub(crate) struct StoredRow {
    pub(crate) revision: Revision,
    pub(crate) deleted: bool,
    /// Compact JSON of the live value (`None` for a tombstone).
    pub(crate) value_json: Option<String>,
}

/// What to do with one op.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// The base matches: write, at a new namespace revision.
    Write,
    /// Nothing to disagree about: answer `Applied` at the item's current revision.
    AlreadyThere(Revision),
    /// The base differs: answer with the server's record.
    Conflict,
}

/// The rule: the current revision is the row's revision (tombstones included), or 0 when there is
/// no row; the base is the op's `base_revision` or 0. Equal → write. Otherwise a conflict, except
/// a delete onto a tombstone or an absent item, and a put of the value the item already holds.
pub(crate) fn decide(op: &WriteOp, current: Option<&StoredRow>) -> Decision {
    let current_revision = current.map_or(0, |row| row.revision);
    if op.base == current_revision {
        return Decision::Write;
    }
    let live_value = current.filter(|row| !row.deleted).and_then(|row| row.value_json.as_deref());
    if op.delete {
        if live_value.is_none() {
            return Decision::AlreadyThere(current_revision);
        }
    } else if let Some(text) = live_value {
        // Compare parsed values, so key order and spacing do not matter.
        if serde_json::from_str::<serde_json::Value>(text).is_ok_and(|stored| stored == op.value) {
            return Decision::AlreadyThere(current_revision);
        }
    }
    Decision::Conflict
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn op(base: Revision, delete: bool, value: serde_json::Value) -> WriteOp {
        WriteOp {
            op_id: "o".into(),
            collection: "c".into(),
            id: "i".into(),
            base,
            delete,
            value_json: value.to_string(),
            value,
            hlc: None,
        }
    }

    fn live(revision: Revision, value: serde_json::Value) -> StoredRow {
        StoredRow { revision, deleted: false, value_json: Some(value.to_string()) }
    }

    fn tombstone(revision: Revision) -> StoredRow {
        StoredRow { revision, deleted: true, value_json: None }
    }

    #[test]
    fn equal_base_writes() {
        assert_eq!(decide(&op(0, false, json!(1)), None), Decision::Write);
        assert_eq!(decide(&op(3, false, json!(1)), Some(&live(3, json!(2)))), Decision::Write);
        assert_eq!(decide(&op(4, true, json!(null)), Some(&tombstone(4))), Decision::Write);
    }

    #[test]
    fn stale_base_conflicts() {
        assert_eq!(decide(&op(2, false, json!(1)), Some(&live(3, json!(2)))), Decision::Conflict);
        assert_eq!(decide(&op(0, false, json!(1)), Some(&tombstone(5))), Decision::Conflict);
        assert_eq!(decide(&op(2, true, json!(null)), Some(&live(3, json!(2)))), Decision::Conflict);
        assert_eq!(decide(&op(7, false, json!(1)), None), Decision::Conflict);
    }

    #[test]
    fn nothing_to_disagree_about_is_applied() {
        assert_eq!(
            decide(&op(1, true, json!(null)), Some(&tombstone(5))),
            Decision::AlreadyThere(5)
        );
        assert_eq!(decide(&op(1, true, json!(null)), None), Decision::AlreadyThere(0));
        let stored = live(9, json!({"a": 1, "b": [1, 2]}));
        assert_eq!(
            decide(&op(2, false, json!({"b": [1, 2], "a": 1})), Some(&stored)),
            Decision::AlreadyThere(9)
        );
    }
}
