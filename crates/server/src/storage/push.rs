//! The push step shared by both backends, as pure functions (no I/O): [`decide`] is the rule, and
//! [`plan_push`] turns one op, its remembered answer and the item's current row into a
//! [`PushPlan`]: what to answer, which row to write, what to remember. A backend only reads its
//! inputs and carries the plan out, inside the push's transaction.

use std::collections::HashSet;

use persist_protocol::{
    decide_push, CurrentItem, ErrorCode, PushDecision, PushOutcome, Record, Revision,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{record_from_row, Quota, StorageError, Usage, WriteOp};

/// The current row of an item: what the push rule and a conflict answer need, read in one query.
#[derive(Debug, Clone)]
pub(crate) struct CurrentRow {
    /// Compact JSON of the value (`None` for a tombstone). Parsed only when the rule compares
    /// values or a conflict answer shows it: the write path never parses it.
    pub(crate) value_json: Option<String>,
    pub(crate) revision: Revision,
    pub(crate) deleted: bool,
    /// Server time of the row's write, epoch milliseconds.
    pub(crate) updated_at: i64,
    /// The HLC stamp the row was written with, as JSON.
    pub(crate) hlc_json: Option<String>,
}

impl CurrentRow {
    /// The row as it goes out in a read (value kept as JSON text).
    pub(crate) fn into_stored(
        self,
        collection: String,
        id: String,
    ) -> Result<super::StoredRecord, StorageError> {
        super::StoredRecord::from_row(
            collection,
            id,
            self.value_json,
            self.revision,
            self.deleted,
            self.updated_at,
            self.hlc_json,
        )
    }

    /// The row as the protocol's record of `collection`/`id`.
    pub(crate) fn into_record(
        self,
        collection: String,
        id: String,
    ) -> Result<Record, StorageError> {
        record_from_row(
            collection,
            id,
            self.value_json.as_deref(),
            self.revision,
            self.deleted,
            self.updated_at,
            self.hlc_json.as_deref(),
        )
    }
}

/// What the rule says about one op (the protocol's [`PushDecision`]).
type Decision = PushDecision;

/// The protocol's push rule ([`decide_push`]) on a backend's current row.
fn decide(op: &WriteOp, current: Option<&CurrentRow>) -> Decision {
    let current = current.map(|row| CurrentItem {
        revision: row.revision,
        live_value: if row.deleted { None } else { row.value_json.as_deref() },
    });
    decide_push(Some(op.base), op.delete, &op.value, current)
}

/// The row an applied op writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RowWrite<'op> {
    /// The item's new revision: the namespace head + 1 (the new head).
    pub(crate) revision: Revision,
    /// Compact JSON of the value; `None` writes a tombstone.
    pub(crate) value_json: Option<&'op str>,
    /// The op's HLC stamp, as JSON.
    pub(crate) hlc_json: Option<String>,
}

/// What a backend does for one op.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PushPlan<'op> {
    /// The answer to the op.
    pub(crate) outcome: PushOutcome,
    /// The row to write, if the op applies now.
    pub(crate) write: Option<RowWrite<'op>>,
    /// The answer as JSON (a [`Remembered`], never a value), to store under the op id so a retry
    /// gets the same answer; `None` when the op id already has its answer stored.
    pub(crate) remember: Option<String>,
}

/// What is stored under an op id: the answer without any record (a conflict's record is read
/// again when a retry is answered), so remembered answers never hold values.
///
/// Rows written before this format carried the conflict's record (`"current"`); it is ignored.
/// Each answer also keeps a fingerprint of the op ([`fingerprint`]), so an op id sent again with
/// different content is told so instead of getting the first op's answer (rows written before
/// fingerprints were kept have none and are not checked).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub(crate) enum Remembered {
    /// The op was applied; the item was then at `revision`.
    Applied {
        /// The item's revision after the op.
        revision: Revision,
        /// The op's [`fingerprint`].
        #[serde(default, skip_serializing_if = "Option::is_none")]
        op: Option<String>,
    },
    /// The op conflicted.
    Conflict {
        /// The op's [`fingerprint`].
        #[serde(default, skip_serializing_if = "Option::is_none")]
        op: Option<String>,
    },
}

/// A short hash of everything an op says (key, base revision, delete or value, stamp): equal for
/// a retry of the op, different for another op sent under the same op id.
pub(crate) fn fingerprint(op: &WriteOp) -> String {
    let mut hash = Sha256::new();
    let hlc = op.hlc.as_ref().and_then(|hlc| serde_json::to_string(hlc).ok()).unwrap_or_default();
    let value = if op.delete { "" } else { op.value_json.as_str() };
    for field in [op.collection.as_str(), op.id.as_str(), value, hlc.as_str()] {
        hash.update((field.len() as u64).to_le_bytes());
        hash.update(field.as_bytes());
    }
    hash.update(op.base.to_le_bytes());
    hash.update([u8::from(op.delete)]);
    hash.finalize()[..16].iter().map(|byte| format!("{byte:02x}")).collect()
}

impl Remembered {
    /// Reads a stored answer.
    ///
    /// # Errors
    /// [`StorageError::Corrupt`] when it cannot be read back.
    pub(crate) fn parse(op_id: &str, text: &str) -> Result<Self, StorageError> {
        serde_json::from_str(text).map_err(|e| StorageError::Corrupt(format!("op {op_id}: {e}")))
    }

    /// Whether answering it again needs the item's current row (a conflict shows it).
    pub(crate) fn needs_current(&self) -> bool {
        matches!(self, Remembered::Conflict { .. })
    }

    /// Whether it answers `op` (`false` when the op id was first used for a different op).
    fn answers(&self, op: &WriteOp) -> bool {
        let (Remembered::Applied { op: stored, .. } | Remembered::Conflict { op: stored }) = self;
        stored.as_ref().is_none_or(|stored| *stored == fingerprint(op))
    }

    fn to_json(&self) -> Result<String, StorageError> {
        serde_json::to_string(self)
            .map_err(|e| StorageError::Database(format!("encode outcome: {e}")))
    }
}

/// What one push has answered so far, so that an item's record goes into at most one conflict
/// answer per push: 1,000 ops conflicting with one 256 KiB record answer one copy of it, not
/// 1,000 (conflict amplification).
#[derive(Debug, Default)]
pub(crate) struct PushBatch {
    /// Items whose current record a conflict answer of this push already carries.
    shown: HashSet<(String, String)>,
    /// The namespace's quota.
    quota: Quota,
    /// The namespace's usage after the ops planned so far.
    usage: Usage,
}

impl PushBatch {
    /// A push to a namespace using `usage` before it, under `quota`.
    pub(crate) fn new(quota: Quota, usage: Usage) -> Self {
        Self { shown: HashSet::new(), quota, usage }
    }

    /// The namespace's usage after the ops planned so far.
    pub(crate) fn usage(&self) -> Usage {
        self.usage
    }

    /// The answer to an op that conflicts with `current`: the record, the first time this push
    /// shows the item; afterwards `rejected` (`invalid_input`), never `current: None`, which
    /// would tell the client the server lost the item. A client sends one op per item per push,
    /// so it never sees the rejection.
    fn conflict(
        &mut self,
        op: &WriteOp,
        current: Option<CurrentRow>,
    ) -> Result<PushOutcome, StorageError> {
        let Some(row) = current else {
            return Ok(PushOutcome::Conflict { current: None });
        };
        if !self.shown.insert((op.collection.clone(), op.id.clone())) {
            return Ok(PushOutcome::Rejected {
                code: ErrorCode::InvalidInput,
                message: format!(
                    "conflict at revision {}: this push already answered the item's current \
                     record to an earlier op; send one op per item per push",
                    row.revision
                ),
            });
        }
        let record = row.into_record(op.collection.clone(), op.id.clone())?;
        Ok(PushOutcome::Conflict { current: Some(record) })
    }
}

/// Plans one op of a push. `remembered` is the answer stored under the op id by an earlier push
/// (as stored, JSON); when there is one, it is the answer again and nothing is written, so
/// backends need read `current` then only when [`Remembered::needs_current`] says so (a
/// conflict answers the item's record as it is now). `current` is the item's row and `head` the
/// namespace's revision before this op; `batch` is what this push has answered so far.
///
/// # Errors
/// [`StorageError::Corrupt`] when the remembered answer or the current row cannot be read back.
pub(crate) fn plan_push<'op>(
    op: &'op WriteOp,
    remembered: Option<&Remembered>,
    current: Option<CurrentRow>,
    head: Revision,
    batch: &mut PushBatch,
) -> Result<PushPlan<'op>, StorageError> {
    if let Some(remembered) = remembered {
        let outcome = match remembered {
            _ if !remembered.answers(op) => PushOutcome::Rejected {
                code: ErrorCode::InvalidInput,
                message: format!(
                    "op id {:?} was already used for a different change: give every change \
                     its own op id",
                    op.op_id
                ),
            },
            Remembered::Applied { revision, .. } => PushOutcome::Applied { revision: *revision },
            Remembered::Conflict { .. } => batch.conflict(op, current)?,
        };
        return Ok(PushPlan { outcome, write: None, remember: None });
    }
    let fingerprint = Some(fingerprint(op));
    let (outcome, write, remember) = match decide(op, current.as_ref()) {
        Decision::Write => {
            let live_size = |row: &CurrentRow| {
                (!row.deleted).then(|| row.value_json.as_deref().map_or(0, str::len) as u64)
            };
            let old = current.as_ref().and_then(live_size);
            let new = (!op.delete).then_some(op.value_json.len() as u64);
            let after = batch.usage.replace(old, new);
            if let Err(message) = batch.quota.check(batch.usage, after) {
                // Not remembered: once the user has deleted enough, the op may be sent again.
                let outcome = PushOutcome::Rejected { code: ErrorCode::QuotaExceeded, message };
                return Ok(PushPlan { outcome, write: None, remember: None });
            }
            batch.usage = after;
            let revision = head + 1;
            let write = RowWrite {
                revision,
                value_json: (!op.delete).then_some(op.value_json.as_str()),
                hlc_json: op.hlc.as_ref().and_then(|hlc| serde_json::to_string(hlc).ok()),
            };
            let remember = Remembered::Applied { revision, op: fingerprint };
            (PushOutcome::Applied { revision }, Some(write), remember)
        }
        Decision::AlreadyThere(revision) => (
            PushOutcome::Applied { revision },
            None,
            Remembered::Applied { revision, op: fingerprint },
        ),
        Decision::Conflict => {
            (batch.conflict(op, current)?, None, Remembered::Conflict { op: fingerprint })
        }
    };
    Ok(PushPlan { outcome, write, remember: Some(remember.to_json()?) })
}

#[cfg(test)]
mod tests {
    use persist_protocol::Hlc;
    use serde_json::json;

    use super::*;

    fn write_op(base: Revision, delete: bool, value: serde_json::Value) -> WriteOp {
        WriteOp {
            op_id: "o".into(),
            collection: "c".into(),
            id: "i".into(),
            base,
            delete,
            value_json: if delete { String::new() } else { value.to_string() },
            value,
            hlc: None,
        }
    }

    fn live(revision: Revision, value: serde_json::Value) -> CurrentRow {
        CurrentRow {
            value_json: Some(value.to_string()),
            revision,
            deleted: false,
            updated_at: 1_700_000_000_000,
            hlc_json: None,
        }
    }

    fn tombstone(revision: Revision) -> CurrentRow {
        CurrentRow {
            value_json: None,
            revision,
            deleted: true,
            updated_at: 1_700_000_000_001,
            hlc_json: None,
        }
    }

    fn remembered(answer: &Remembered) -> String {
        serde_json::to_string(answer).unwrap()
    }

    fn plan_one<'op>(
        op: &'op WriteOp,
        remembered: Option<&Remembered>,
        current: Option<CurrentRow>,
        head: Revision,
    ) -> Result<PushPlan<'op>, StorageError> {
        plan_push(op, remembered, current, head, &mut PushBatch::default())
    }

    #[test]
    fn equal_base_writes() {
        assert_eq!(decide(&write_op(0, false, json!(1)), None), Decision::Write);
        assert_eq!(
            decide(&write_op(3, false, json!(1)), Some(&live(3, json!(2)))),
            Decision::Write
        );
        assert_eq!(decide(&write_op(4, true, json!(null)), Some(&tombstone(4))), Decision::Write);
    }

    #[test]
    fn stale_base_conflicts() {
        assert_eq!(
            decide(&write_op(2, false, json!(1)), Some(&live(3, json!(2)))),
            Decision::Conflict
        );
        assert_eq!(decide(&write_op(0, false, json!(1)), Some(&tombstone(5))), Decision::Conflict);
        assert_eq!(
            decide(&write_op(2, true, json!(null)), Some(&live(3, json!(2)))),
            Decision::Conflict
        );
        assert_eq!(decide(&write_op(7, false, json!(1)), None), Decision::Conflict);
    }

    #[test]
    fn nothing_to_disagree_about_is_applied() {
        assert_eq!(
            decide(&write_op(1, true, json!(null)), Some(&tombstone(5))),
            Decision::AlreadyThere(5)
        );
        assert_eq!(decide(&write_op(1, true, json!(null)), None), Decision::AlreadyThere(0));
        let stored = live(9, json!({"a": 1, "b": [1, 2]}));
        assert_eq!(
            decide(&write_op(2, false, json!({"b": [1, 2], "a": 1})), Some(&stored)),
            Decision::AlreadyThere(9)
        );
    }

    #[test]
    fn a_put_that_applies_writes_at_the_next_revision_and_is_remembered() {
        let mut put = write_op(3, false, json!({"n": 1}));
        put.hlc = Some(Hlc { wall_ms: 5, counter: 1, node: "tab".into() });
        let plan = plan_one(&put, None, Some(live(3, json!("old"))), 10).unwrap();
        assert_eq!(plan.outcome, PushOutcome::Applied { revision: 11 });
        assert_eq!(
            plan.write,
            Some(RowWrite {
                revision: 11,
                value_json: Some("{\"n\":1}"),
                hlc_json: Some("{\"wall_ms\":5,\"counter\":1,\"node\":\"tab\"}".into()),
            })
        );
        assert_eq!(
            plan.remember,
            Some(remembered(&Remembered::Applied { revision: 11, op: Some(fingerprint(&put)) }))
        );
    }

    #[test]
    fn a_delete_that_applies_writes_a_tombstone() {
        let op = write_op(4, true, json!(null));
        let plan = plan_one(&op, None, Some(live(4, json!(1))), 4).unwrap();
        assert_eq!(plan.outcome, PushOutcome::Applied { revision: 5 });
        assert_eq!(plan.write, Some(RowWrite { revision: 5, value_json: None, hlc_json: None }));
        assert!(plan.remember.is_some());
    }

    #[test]
    fn writing_never_parses_the_stored_value() {
        let mut unparsable = live(2, json!(0));
        unparsable.value_json = Some("{not json".into());
        let op = write_op(2, false, json!(1));
        let plan = plan_one(&op, None, Some(unparsable), 2).unwrap();
        assert_eq!(plan.outcome, PushOutcome::Applied { revision: 3 });
    }

    #[test]
    fn nothing_to_disagree_about_writes_nothing_and_is_remembered() {
        let same = write_op(1, false, json!({"a": 1}));
        let plan = plan_one(&same, None, Some(live(6, json!({"a": 1}))), 8).unwrap();
        assert_eq!(plan.outcome, PushOutcome::Applied { revision: 6 });
        assert_eq!(plan.write, None);
        assert_eq!(
            plan.remember,
            Some(remembered(&Remembered::Applied { revision: 6, op: Some(fingerprint(&same)) }))
        );
    }

    #[test]
    fn a_conflict_answers_the_current_row_as_a_record_and_writes_nothing() {
        let mut row = live(7, json!({"b": 2, "a": [1]}));
        row.hlc_json = Some("{\"wall_ms\":9,\"counter\":0,\"node\":\"n\"}".into());
        let op = write_op(2, false, json!("mine"));
        let plan = plan_one(&op, None, Some(row), 9).unwrap();
        let expected = Record {
            collection: "c".into(),
            id: "i".into(),
            value: json!({"a": [1], "b": 2}),
            revision: 7,
            deleted: false,
            updated_at: 1_700_000_000_000,
            hlc: Some(Hlc { wall_ms: 9, counter: 0, node: "n".into() }),
        };
        assert_eq!(plan.outcome, PushOutcome::Conflict { current: Some(expected) });
        assert_eq!(plan.write, None);
        // The record is answered, never remembered.
        let conflict = Remembered::Conflict { op: Some(fingerprint(&op)) };
        assert_eq!(plan.remember, Some(remembered(&conflict)));
    }

    #[test]
    fn a_push_answers_an_items_record_once() {
        let mut batch = PushBatch::default();
        let op = write_op(2, false, json!("mine"));
        let first = plan_push(&op, None, Some(live(7, json!("big"))), 9, &mut batch).unwrap();
        assert!(matches!(first.outcome, PushOutcome::Conflict { current: Some(_) }));
        let again = plan_push(&op, None, Some(live(7, json!("big"))), 9, &mut batch).unwrap();
        let PushOutcome::Rejected { code, message } = again.outcome else {
            panic!("rejected expected: {:?}", again.outcome)
        };
        assert_eq!(code, ErrorCode::InvalidInput);
        assert!(message.contains("revision 7"), "{message}");
        let conflict = Remembered::Conflict { op: Some(fingerprint(&op)) };
        assert_eq!(again.remember, Some(remembered(&conflict)));
        // A replayed conflict counts too.
        let replay = Remembered::Conflict { op: None };
        let third = plan_push(&op, Some(&replay), Some(live(7, json!(1))), 9, &mut batch).unwrap();
        assert!(matches!(third.outcome, PushOutcome::Rejected { .. }), "{:?}", third.outcome);
        // Another item still gets its record.
        let mut other = write_op(2, false, json!("mine"));
        other.id = "j".into();
        let fourth = plan_push(&other, None, Some(live(8, json!(2))), 9, &mut batch).unwrap();
        assert!(matches!(fourth.outcome, PushOutcome::Conflict { current: Some(_) }));
    }

    #[test]
    fn a_conflict_with_a_tombstone_or_nothing() {
        let op = write_op(1, false, json!(1));
        let plan = plan_one(&op, None, Some(tombstone(4)), 4).unwrap();
        let PushOutcome::Conflict { current: Some(record) } = plan.outcome else {
            panic!("conflict expected: {:?}", plan.outcome)
        };
        assert!(record.deleted);
        assert_eq!((record.value, record.revision), (json!(null), 4));
        let op = write_op(7, false, json!(1));
        let plan = plan_one(&op, None, None, 3).unwrap();
        assert_eq!(plan.outcome, PushOutcome::Conflict { current: None });
        assert_eq!(plan.write, None);
    }

    #[test]
    fn a_replayed_op_id_gets_its_remembered_answer_and_writes_nothing() {
        let first = Remembered::Applied {
            revision: 2,
            op: Some(fingerprint(&write_op(5, false, json!(1)))),
        };
        // The current row would make the op apply again: the remembered answer wins.
        let op = write_op(5, false, json!(1));
        let plan = plan_one(&op, Some(&first), Some(live(5, json!(0))), 5).unwrap();
        let applied = PushOutcome::Applied { revision: 2 };
        assert_eq!(plan, PushPlan { outcome: applied, write: None, remember: None });
        assert!(!first.needs_current());
        // A remembered conflict answers the item as it is now.
        let conflict = Remembered::Conflict { op: None };
        assert!(conflict.needs_current());
        let op = write_op(0, false, json!(1));
        let plan = plan_one(&op, Some(&conflict), None, 0).unwrap();
        let lost = PushOutcome::Conflict { current: None };
        assert_eq!(plan, PushPlan { outcome: lost, write: None, remember: None });
        let plan = plan_one(&op, Some(&conflict), Some(live(4, json!("now"))), 4).unwrap();
        let PushOutcome::Conflict { current: Some(record) } = plan.outcome else {
            panic!("conflict expected: {:?}", plan.outcome)
        };
        assert_eq!((record.value, record.revision), (json!("now"), 4));
    }

    #[test]
    fn an_op_id_reused_for_another_change_is_rejected() {
        let op = write_op(1, false, json!({"a": 1}));
        let first = Remembered::Applied { revision: 2, op: Some(fingerprint(&op)) };
        let plan = plan_one(&op, Some(&first), None, 2).unwrap();
        assert_eq!(plan.outcome, PushOutcome::Applied { revision: 2 });
        let mut others =
            vec![write_op(1, false, json!({"a": 2})), write_op(2, false, json!({"a": 1}))];
        others.push(write_op(1, true, json!(null)));
        others.push(WriteOp { id: "j".into(), ..op.clone() });
        others.push(WriteOp {
            hlc: Some(Hlc { wall_ms: 1, counter: 0, node: "n".into() }),
            ..op.clone()
        });
        for other in &others {
            let plan = plan_one(other, Some(&first), None, 2).unwrap();
            let PushOutcome::Rejected { code, message } = plan.outcome else {
                panic!("rejected expected for {other:?}: {:?}", plan.outcome)
            };
            assert_eq!(code, ErrorCode::InvalidInput);
            assert!(message.contains("already used"), "{message}");
            assert_eq!((plan.write, plan.remember), (None, None));
        }
        // Answers remembered before fingerprints were kept are not checked.
        let old = Remembered::Applied { revision: 2, op: None };
        let plan = plan_one(&others[0], Some(&old), None, 2).unwrap();
        assert_eq!(plan.outcome, PushOutcome::Applied { revision: 2 });
    }

    #[test]
    fn remembered_answers_written_with_a_record_still_read() {
        let old = r#"{"status":"conflict","current":{"collection":"c","id":"i","value":1}}"#;
        assert_eq!(Remembered::parse("o", old).unwrap(), Remembered::Conflict { op: None });
        let old = r#"{"status":"applied","revision":3}"#;
        assert_eq!(
            Remembered::parse("o", old).unwrap(),
            Remembered::Applied { revision: 3, op: None }
        );
    }

    #[test]
    fn an_unreadable_remembered_answer_is_corrupt() {
        let error = Remembered::parse("o", "{").unwrap_err();
        assert!(matches!(error, StorageError::Corrupt(_)), "{error}");
    }
}
