use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Hlc;

/// A server revision: monotonic per namespace. `0` means "nothing yet"; the first write is `1`.
pub type Revision = u64;

/// A client-chosen, globally unique id of one op. Retrying a push with the same op id applies the
/// op at most once and returns the first answer again.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OpId(pub String);

impl OpId {
    /// Wraps a string as an op id.
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for OpId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One item as the server stores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The collection (a slice of the app's state, e.g. `files`).
    pub collection: String,
    /// The item's id inside its collection.
    pub id: String,
    /// The item's JSON value; `null` for a tombstone.
    pub value: Value,
    /// The namespace revision at which this version was written.
    pub revision: Revision,
    /// `true` when the item was deleted (a tombstone, kept so deletes sync).
    pub deleted: bool,
    /// Server time of the write, epoch milliseconds.
    pub updated_at: i64,
    /// The writing client's hybrid logical clock stamp, when it sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hlc: Option<Hlc>,
}
