//! What is persisted: item keys and their changes.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// The key of one persisted item: its collection and its id in it.
///
/// Cheap to clone (shared strings). Ordered by collection, then id; displayed as its CodeForge
/// flat key, `collection:id` ([`persist_protocol::flat_key`]).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ItemKey {
    /// The collection name, e.g. `"files"`.
    pub collection: Arc<str>,
    /// The item's id inside its collection.
    pub id: Arc<str>,
}

impl ItemKey {
    /// The key of item `id` of `collection`.
    pub fn new(collection: impl Into<Arc<str>>, id: impl Into<Arc<str>>) -> Self {
        ItemKey { collection: collection.into(), id: id.into() }
    }
}

impl fmt::Display for ItemKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&persist_protocol::flat_key(&self.collection, &self.id))
    }
}

/// An item's serialised JSON value. Cheap to clone; its length counts as bytes written.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Payload(Arc<str>);

impl Payload {
    /// The JSON text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Length of the JSON text in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the JSON text is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for Payload {
    fn from(json: String) -> Self {
        Payload(json.into())
    }
}

impl From<&str> for Payload {
    fn from(json: &str) -> Self {
        Payload(json.into())
    }
}

impl From<Arc<str>> for Payload {
    fn from(json: Arc<str>) -> Self {
        Payload(json)
    }
}

impl fmt::Display for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A change of one item.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Change {
    /// The item now has this value.
    Put(Payload),
    /// The item was removed. Still written when it follows a put that was never written: the
    /// item may exist in the database from before.
    Delete,
}

impl Change {
    /// A put of `json`.
    pub fn put(json: impl Into<Payload>) -> Self {
        Change::Put(json.into())
    }

    /// Bytes this change writes: the payload length of a put, 0 for a delete.
    pub fn bytes(&self) -> usize {
        match self {
            Change::Put(payload) => payload.len(),
            Change::Delete => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_display_as_the_protocols_flat_key_and_order_by_collection_first() {
        let a = ItemKey::new("files", "z");
        let b = ItemKey::new("models", "a");
        assert_eq!(a.to_string(), "files:z");
        assert!(a < b);
        // The empty collection (CodeForge keys without a colon) is the bare id, as on the server.
        assert_eq!(ItemKey::new("", "plain").to_string(), "plain");
    }

    #[test]
    fn bytes_count_payload_length() {
        assert_eq!(Change::put(r#"{"a":1}"#).bytes(), 7);
        assert_eq!(Change::Delete.bytes(), 0);
        let payload = Payload::from(String::from("[]"));
        assert_eq!((payload.len(), payload.as_str(), payload.is_empty()), (2, "[]", false));
    }
}
