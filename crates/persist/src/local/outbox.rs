//! The sync bookkeeping a local store keeps beside the items: an [`OutboxEntry`] per item with a
//! change the server has not acknowledged, and an [`ItemSync`] per item the server knows.
//!
//! Both are keyed by `[collection, id]`, so an item has at most one of each: a newer change of an
//! item replaces its older outbox entry (the server only needs the latest value).
//!
//! An entry is written in the same transaction as its item, with nothing read first: the page-exit
//! flush must issue every request of its transaction at once, before the page goes away. So the
//! base revision is not known yet when an entry is written; the push takes it from the item's
//! [`ItemSync`] and records it in the entry, so a retried push sends the same op id and the same
//! base. For that to be right, the known revision of an item whose change is still waiting must
//! not move past what the change was made from: a pulled version of such an item is a conflict,
//! not a new known revision.

use persist_engine::{Change, QueuedOp};
use persist_protocol::{Hlc, OpId, Revision};
use serde::{Deserialize, Serialize};

/// One item change waiting to be pushed to the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// The item's collection.
    pub collection: String,
    /// The item's id.
    pub id: String,
    /// `true` for a delete (the value is read from the item's record otherwise).
    pub delete: bool,
    /// The engine serial of the change (orders changes of one session).
    pub serial: u64,
    /// The id the change is pushed with; a retried push sends the same id, so the server
    /// applies it once.
    pub op_id: OpId,
    /// The server revision the change was made from: `None` until the entry is first pushed
    /// (the push fills it in from the item's [`ItemSync`]; still `None` then for an item the
    /// server has not seen from this device).
    pub base_revision: Option<Revision>,
    /// When the change was made, on the hybrid logical clock (orders the outbox across sessions
    /// and decides last-writer-wins).
    pub hlc: Hlc,
}

impl OutboxEntry {
    /// The entry recording `op`, not pushed yet.
    pub fn for_op(op: &QueuedOp) -> Self {
        OutboxEntry {
            collection: op.key.collection.to_string(),
            id: op.key.id.to_string(),
            delete: matches!(op.change, Change::Delete),
            serial: op.serial,
            op_id: op.op_id.clone(),
            base_revision: None,
            hlc: op.hlc.clone(),
        }
    }

    /// The entry of `push all` for an item with no pending change: a put of its current value,
    /// the `n`-th of a batch whose op ids start with `prefix`.
    pub fn resend(collection: &str, id: &str, prefix: &str, stamp: &Hlc, n: u32) -> Self {
        OutboxEntry {
            collection: collection.to_owned(),
            id: id.to_owned(),
            delete: false,
            serial: 0,
            op_id: OpId::new(format!("{prefix}-{n}")),
            base_revision: None,
            hlc: Hlc { counter: stamp.counter.saturating_add(n), ..stamp.clone() },
        }
    }

    /// The push order: oldest change first; entries migrated from before op ids existed (wall
    /// time 0) come first, in their old serial order.
    pub fn push_order(&self) -> (u64, u32, &str, u64) {
        (self.hlc.wall_ms, self.hlc.counter, &self.hlc.node, self.serial)
    }
}

/// What this device knows of an item's server copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemSync {
    /// The item's revision on the server, as last acknowledged or pulled.
    pub revision: Revision,
    /// The stamp of that version, when the server had one.
    pub hlc: Option<Hlc>,
    /// That version's value as JSON text, kept for collections that merge: the last version
    /// both sides agreed on, the base of a three-way merge. Written together with `revision`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
}

/// An outbox entry as the first layout wrote it (before op ids, base revisions and stamps).
#[derive(Debug, Clone, Deserialize)]
pub(super) struct OutboxEntryV1 {
    pub(super) collection: String,
    pub(super) id: String,
    pub(super) delete: bool,
    pub(super) serial: u64,
}

/// Node name of the stamps and op ids given to entries of the first layout.
pub(super) const MIGRATED_NODE: &str = "migrated";

impl OutboxEntryV1 {
    /// The entry in today's layout. `batch` (random per migration) and `index` (its position in
    /// the migration) make the op id unique: serials restarted at 1 every session, so two old
    /// entries may share one. No push ever happened before op ids existed, so the server has not
    /// seen the item from this device: no base revision. Wall time 0 orders them before every
    /// newer change.
    pub(super) fn upgrade(self, batch: u64, index: u32) -> OutboxEntry {
        OutboxEntry {
            op_id: OpId::new(format!("{MIGRATED_NODE}-{batch:x}-{index}")),
            base_revision: None,
            hlc: Hlc { wall_ms: 0, counter: index, node: MIGRATED_NODE.to_owned() },
            collection: self.collection,
            id: self.id,
            delete: self.delete,
            serial: self.serial,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_layout_entries_get_unique_ids_and_sort_first_in_their_order() {
        let old: Vec<OutboxEntryV1> = serde_json::from_str(
            r#"[{"collection":"files","id":"a","delete":false,"serial":7},
                {"collection":"files","id":"b","delete":true,"serial":7}]"#,
        )
        .unwrap();
        let upgraded: Vec<OutboxEntry> =
            old.into_iter().enumerate().map(|(i, e)| e.upgrade(0xab, i as u32)).collect();
        assert_ne!(upgraded[0].op_id, upgraded[1].op_id, "same serial, different op ids");
        assert_eq!(upgraded[0].op_id.as_str(), "migrated-ab-0");
        assert!((upgraded[1].delete, upgraded[1].base_revision) == (true, None));
        let newer = OutboxEntry {
            hlc: Hlc { wall_ms: 1, counter: 0, node: "tab".into() },
            ..upgraded[1].clone()
        };
        assert!(upgraded[0].push_order() < upgraded[1].push_order());
        assert!(upgraded[1].push_order() < newer.push_order());
    }

    #[test]
    fn entries_round_trip_through_json() {
        let entry = OutboxEntry {
            collection: "files".into(),
            id: "a.rs".into(),
            delete: false,
            serial: 3,
            op_id: OpId::new("tab-3"),
            base_revision: Some(12),
            hlc: Hlc { wall_ms: 1_700_000_000_000, counter: 2, node: "tab".into() },
        };
        let json = serde_json::to_string(&entry).unwrap();
        assert_eq!(serde_json::from_str::<OutboxEntry>(&json).unwrap(), entry);
        // A first-layout entry is not mistaken for today's.
        assert!(serde_json::from_str::<OutboxEntry>(
            r#"{"collection":"files","id":"a","delete":false,"serial":7}"#
        )
        .is_err());
    }
}
