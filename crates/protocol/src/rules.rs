//! The push rule, shared by the server (which applies it) and the client's in-memory remote
//! (which models the server in tests and the simulation): one function, so the two cannot drift.

use serde_json::Value;

use crate::Revision;

/// What the server holds of an item when an op arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CurrentItem<'a> {
    /// The item's revision (a tombstone's included).
    pub revision: Revision,
    /// The live value as compact JSON text; `None` for a tombstone.
    pub live_value: Option<&'a str>,
}

/// What the rule says about one op.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushDecision {
    /// The base matches: write, at a new namespace revision.
    Write,
    /// Nothing to disagree about (a delete of an absent item, a put of the value already
    /// there): answer `Applied` at this, the item's current revision, and write nothing.
    AlreadyThere(Revision),
    /// The base differs: answer with the server's current record, write nothing.
    Conflict,
}

/// The rule: the current revision is the item's revision (tombstones included), or 0 when the
/// server has no record; the base is the op's `base_revision`, or 0. Equal → write. Otherwise a
/// conflict, except a delete onto a tombstone or an absent item, and a put of the value the item
/// already holds (compared parsed, so key order and spacing do not matter).
pub fn decide_push(
    base: Option<Revision>,
    delete: bool,
    value: &Value,
    current: Option<CurrentItem<'_>>,
) -> PushDecision {
    let current_revision = current.map_or(0, |item| item.revision);
    if base.unwrap_or(0) == current_revision {
        return PushDecision::Write;
    }
    let live_value = current.and_then(|item| item.live_value);
    if delete {
        if live_value.is_none() {
            return PushDecision::AlreadyThere(current_revision);
        }
    } else if let Some(text) = live_value {
        if serde_json::from_str::<Value>(text).is_ok_and(|stored| &stored == value) {
            return PushDecision::AlreadyThere(current_revision);
        }
    }
    PushDecision::Conflict
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn live(revision: Revision, text: &str) -> Option<CurrentItem<'_>> {
        Some(CurrentItem { revision, live_value: Some(text) })
    }

    #[test]
    fn an_op_on_the_current_revision_writes() {
        assert_eq!(decide_push(None, false, &json!(1), None), PushDecision::Write);
        assert_eq!(decide_push(Some(3), false, &json!(1), live(3, "2")), PushDecision::Write);
    }

    #[test]
    fn a_stale_base_conflicts_unless_nothing_differs() {
        assert_eq!(decide_push(Some(2), false, &json!(1), live(3, "2")), PushDecision::Conflict);
        assert_eq!(
            decide_push(Some(2), false, &json!({"a": 1, "b": 2}), live(3, r#"{"b":2,"a":1}"#)),
            PushDecision::AlreadyThere(3)
        );
        let tombstone = Some(CurrentItem { revision: 5, live_value: None });
        assert_eq!(
            decide_push(Some(1), true, &Value::Null, tombstone),
            PushDecision::AlreadyThere(5)
        );
        assert_eq!(decide_push(None, false, &json!(1), tombstone), PushDecision::Conflict);
        // The server lost an item this client knew: a conflict with no current record.
        assert_eq!(decide_push(Some(4), false, &json!(1), None), PushDecision::Conflict);
    }
}
