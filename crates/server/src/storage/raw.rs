//! Records on their way out (pulls, exports, CodeForge reads): values stay the JSON text the
//! database holds, from the row to the response body, and pages are cut by bytes as well as by
//! count.
//!
//! Why not [`persist_protocol::Record`]: its `serde_json::Value` costs about 17 times the value's
//! size in memory (a pull of 100 × 254 KiB records once took the server from 51 to 478 MB), and a
//! page of 5,000 such records would have needed ~21 GB. A [`RawValue`] costs its text once, is
//! checked to be JSON when read back, and is written to the answer as it is. The wire format is
//! the same: clients parse these pages into `Record`s.

use persist_protocol::Revision;
use serde::Serialize;
use serde_json::value::RawValue;
use tokio::sync::mpsc;

use super::StorageError;

/// What a record costs in a page beyond its value's bytes (keys, revision, stamps, framing): a
/// page of many tiny records is bounded too.
pub(crate) const RECORD_OVERHEAD_BYTES: u64 = 256;

/// One record as stored (live or tombstone), serialised exactly like
/// [`persist_protocol::Record`].
#[derive(Debug, Serialize)]
pub(crate) struct StoredRecord {
    pub(crate) collection: String,
    pub(crate) id: String,
    /// The value's JSON text; `None` (written as `null`) for a tombstone.
    pub(crate) value: Option<Box<RawValue>>,
    pub(crate) revision: Revision,
    pub(crate) deleted: bool,
    pub(crate) updated_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) hlc: Option<Box<RawValue>>,
}

impl StoredRecord {
    /// A row's columns as a record; the JSON columns are checked to be JSON (a corrupt row is an
    /// error here, not a broken answer later).
    pub(crate) fn from_row(
        collection: String,
        id: String,
        value_json: Option<String>,
        revision: Revision,
        deleted: bool,
        updated_at: i64,
        hlc_json: Option<String>,
    ) -> Result<Self, StorageError> {
        let value =
            match value_json {
                Some(text) if !deleted => Some(RawValue::from_string(text).map_err(|e| {
                    StorageError::Corrupt(format!("value of {collection}:{id}: {e}"))
                })?),
                _ => None,
            };
        // A stamp that does not read back is left out, as `record_from_row` does.
        let hlc = hlc_json.and_then(|text| RawValue::from_string(text).ok());
        Ok(Self { collection, id, value, revision, deleted, updated_at, hlc })
    }

    /// What this record costs in a page (see [`PageBudget`]).
    pub(crate) fn cost(&self) -> u64 {
        record_cost(self.value.as_ref().map_or(0, |value| value.get().len() as u64))
    }
}

/// The page cost of a record whose value has `value_bytes` bytes.
pub(crate) fn record_cost(value_bytes: u64) -> u64 {
    value_bytes.saturating_add(RECORD_OVERHEAD_BYTES)
}

/// One page of `GET /v1/pull`, serialised exactly like [`persist_protocol::PullResponse`].
#[derive(Debug, Serialize)]
pub(crate) struct PullPage {
    pub(crate) records: Vec<StoredRecord>,
    pub(crate) next_since: Revision,
    pub(crate) has_more: bool,
    pub(crate) head: Revision,
}

/// Where a page ends: at most `limit` records and at most `max_bytes` of [`record_cost`] — except
/// that a page always takes its first record, however large, so every record can be pulled.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PageBudget {
    limit: usize,
    max_bytes: u64,
    taken: usize,
    bytes: u64,
}

impl PageBudget {
    pub(crate) fn new(limit: u32, max_bytes: u64) -> Self {
        Self { limit: limit as usize, max_bytes, taken: 0, bytes: 0 }
    }

    /// Whether the next record, costing `cost`, still belongs to the page (and counts it if so).
    /// The first `false` means the page is full and more records follow.
    pub(crate) fn admit(&mut self, cost: u64) -> bool {
        let fits = self.taken == 0
            || (self.taken < self.limit && self.bytes.saturating_add(cost) <= self.max_bytes);
        if fits {
            self.taken += 1;
            self.bytes = self.bytes.saturating_add(cost);
        }
        fits
    }
}

/// Records an export sends at once, at most this many bytes of values (the last record may
/// overrun it by one value). Small enough that an export in flight holds little; large enough
/// that the channel hop per batch costs nothing.
pub(crate) const EXPORT_BATCH_BYTES: u64 = 1024 * 1024;

/// What an export's reader sends: a batch of records, then [`ExportChunk::End`] — or the error
/// that ends the export. A channel closed without `End` means the reader stopped early (the
/// receiver must not take the export as complete).
pub(crate) type ExportBatch = Result<ExportChunk, StorageError>;

/// One message of an export's reader.
#[derive(Debug)]
pub(crate) enum ExportChunk {
    /// The next live records, by collection then id.
    Records(Vec<StoredRecord>),
    /// Every record has been sent.
    End,
}

/// An export being read: its revision is known, its records arrive in batches (ordered by
/// collection, then id) from a reader that works only as fast as the answer is sent, over one
/// consistent snapshot. Dropping it stops the reader.
#[derive(Debug)]
pub(crate) struct ExportStream {
    /// The namespace revision the export is consistent with.
    pub(crate) revision: Revision,
    /// Batches of live records, then `End`; an error ends the stream.
    pub(crate) batches: mpsc::Receiver<ExportBatch>,
}

/// The bounded channel an export's reader fills: one batch waiting while the answer writes the
/// previous one.
pub(crate) fn export_channel() -> (mpsc::Sender<ExportBatch>, mpsc::Receiver<ExportBatch>) {
    mpsc::channel(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_stops_at_its_byte_budget_but_always_takes_one_record() {
        let mut page = PageBudget::new(100, 1_000);
        assert!(page.admit(600), "the first record");
        assert!(page.admit(400), "exactly at the budget");
        assert!(!page.admit(1), "past the budget");

        let mut page = PageBudget::new(100, 1_000);
        assert!(page.admit(5_000), "a record larger than the budget still comes, alone");
        assert!(!page.admit(1));
    }

    #[test]
    fn a_page_stops_at_its_record_limit() {
        let mut page = PageBudget::new(2, u64::MAX);
        assert!(page.admit(1));
        assert!(page.admit(1));
        assert!(!page.admit(1));
    }

    #[test]
    fn a_stored_record_is_written_exactly_like_a_protocol_record() {
        let stored = StoredRecord::from_row(
            "files".into(),
            "a".into(),
            Some(r#"{"text":"hi","n":[1,2]}"#.into()),
            7,
            false,
            1_700_000_000_000,
            Some(r#"{"wall_ms":5,"counter":1,"node":"d.s"}"#.into()),
        )
        .unwrap();
        let as_protocol: persist_protocol::Record =
            serde_json::from_str(&serde_json::to_string(&stored).unwrap()).unwrap();
        assert_eq!(as_protocol.value, serde_json::json!({"text": "hi", "n": [1, 2]}));
        assert_eq!(as_protocol.revision, 7);
        assert_eq!(as_protocol.hlc.unwrap().node, "d.s");

        let tombstone =
            StoredRecord::from_row("files".into(), "a".into(), None, 8, true, 1, None).unwrap();
        let text = serde_json::to_string(&tombstone).unwrap();
        assert!(text.contains(r#""value":null"#) && !text.contains("hlc"), "{text}");
    }

    #[test]
    fn a_corrupt_value_is_an_error_not_a_broken_answer() {
        let error =
            StoredRecord::from_row("c".into(), "i".into(), Some("{".into()), 1, false, 0, None)
                .unwrap_err();
        assert!(matches!(error, StorageError::Corrupt(_)), "{error:?}");
    }
}
