//! Item keys: what a valid `(collection, id)` is, and its CodeForge flat key `"<collection>:<id>"`.
//!
//! Both sides call these functions: the client when a store registers a collection
//! ([`validate_collection_name`]) and when it records a change ([`validate_item_key`]), the server
//! for every pushed op and every CodeForge storage API key. One set of rules, one owner.
//!
//! The flat key mapping is a bijection over valid keys: a flat key is split at its first `:` when
//! that colon is not the first character; otherwise the whole key is the id of the empty
//! collection (CodeForge keys without a collection). [`validate_item_key`] rejects the few
//! `(collection, id)` pairs that would not round-trip.

/// Longest collection name accepted, in bytes.
pub const MAX_COLLECTION_LEN: usize = 128;
/// Longest item id accepted, in bytes.
pub const MAX_ID_LEN: usize = 1024;
/// Collection names starting with this are kept for the client's own bookkeeping stores
/// (`__outbox`, `__meta`, ...): no app collection and no synced item may use them.
pub const RESERVED_PREFIX: &str = "__";

/// Why an item key or a collection name was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The id is empty.
    #[error("item id must not be empty")]
    EmptyId,
    /// A collection an app registers needs a name.
    #[error("collection name must not be empty")]
    EmptyCollection,
    /// The collection name starts with [`RESERVED_PREFIX`].
    #[error("collection name {0:?} is reserved (names starting with \"__\")")]
    ReservedCollection(String),
    /// The collection name contains `:`, which separates collection and id in flat keys.
    #[error("collection name {0:?} must not contain ':'")]
    ColonInCollection(String),
    /// A key of the empty collection whose id would read back as another collection.
    #[error("id {0:?} of the empty collection must not contain ':' after its first character")]
    AmbiguousId(String),
    /// A part is longer than allowed.
    #[error("{part} is {len} bytes, more than the {max} allowed")]
    TooLong {
        /// `"collection"` or `"id"`.
        part: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The limit in bytes.
        max: usize,
    },
    /// A part contains a control character (tabs, newlines, NUL...).
    #[error("{0} must not contain control characters")]
    ControlCharacter(&'static str),
}

/// Checks a collection name as an app registers it: what [`validate_item_key`] asks of a
/// collection, and not empty (the empty collection only exists for CodeForge keys without a
/// `:`).
///
/// ```
/// use persist_protocol::{validate_collection_name, KeyError};
///
/// assert!(validate_collection_name("files").is_ok());
/// assert!(matches!(validate_collection_name("__outbox"), Err(KeyError::ReservedCollection(_))));
/// ```
pub fn validate_collection_name(collection: &str) -> Result<(), KeyError> {
    if collection.is_empty() {
        return Err(KeyError::EmptyCollection);
    }
    check_collection(collection)
}

fn check_collection(collection: &str) -> Result<(), KeyError> {
    if collection.len() > MAX_COLLECTION_LEN {
        return Err(KeyError::TooLong {
            part: "collection",
            len: collection.len(),
            max: MAX_COLLECTION_LEN,
        });
    }
    if collection.starts_with(RESERVED_PREFIX) {
        return Err(KeyError::ReservedCollection(collection.to_owned()));
    }
    if collection.chars().any(char::is_control) {
        return Err(KeyError::ControlCharacter("collection"));
    }
    if collection.contains(':') {
        return Err(KeyError::ColonInCollection(collection.to_owned()));
    }
    Ok(())
}

/// Checks that `(collection, id)` is a valid item key: both parts within their length limits and
/// free of control characters, the collection not reserved and without `:`, and the pair
/// round-tripping through [`flat_key`] / [`split_flat_key`].
pub fn validate_item_key(collection: &str, id: &str) -> Result<(), KeyError> {
    if id.is_empty() {
        return Err(KeyError::EmptyId);
    }
    check_collection(collection)?;
    if id.len() > MAX_ID_LEN {
        return Err(KeyError::TooLong { part: "id", len: id.len(), max: MAX_ID_LEN });
    }
    if id.chars().any(char::is_control) {
        return Err(KeyError::ControlCharacter("id"));
    }
    // Ambiguous when `split_flat_key` would split the bare id: a colon after its first byte
    // while the id does not start with one (a leading colon keeps the whole key an id).
    if collection.is_empty() && matches!(id.find(':'), Some(at) if at > 0) {
        return Err(KeyError::AmbiguousId(id.to_owned()));
    }
    Ok(())
}

/// The CodeForge flat key of an item: `"<collection>:<id>"`, or just the id for the empty
/// collection.
pub fn flat_key(collection: &str, id: &str) -> String {
    if collection.is_empty() {
        id.to_owned()
    } else {
        format!("{collection}:{id}")
    }
}

/// Splits a CodeForge flat key into `(collection, id)`; the inverse of [`flat_key`].
pub fn split_flat_key(key: &str) -> (&str, &str) {
    match key.find(':') {
        Some(at) if at > 0 => (&key[..at], &key[at + 1..]),
        _ => ("", key),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_keys_round_trip() {
        for key in ["files:a.rs", "files:dir/a.rs", "a:b:c", "plain", ":leading", "ü:ñ/✓", "x:"]
        {
            let (collection, id) = split_flat_key(key);
            if id.is_empty() {
                assert_eq!(validate_item_key(collection, id), Err(KeyError::EmptyId));
                continue;
            }
            validate_item_key(collection, id).unwrap();
            assert_eq!(flat_key(collection, id), key);
        }
    }

    #[test]
    fn valid_item_keys_round_trip() {
        for (collection, id) in [("files", "a:b"), ("", "plain"), ("", ":x:y"), ("m", "/")] {
            validate_item_key(collection, id).unwrap();
            assert_eq!(split_flat_key(&flat_key(collection, id)), (collection, id));
        }
    }

    #[test]
    fn rejects_what_would_not_round_trip() {
        assert!(matches!(validate_item_key("a:b", "c"), Err(KeyError::ColonInCollection(_))));
        assert!(matches!(validate_item_key("", "x:y"), Err(KeyError::AmbiguousId(_))));
        assert!(matches!(
            validate_item_key("files", "a\nb"),
            Err(KeyError::ControlCharacter("id"))
        ));
        let long = "x".repeat(MAX_ID_LEN + 1);
        assert!(matches!(validate_item_key("files", &long), Err(KeyError::TooLong { .. })));
    }

    #[test]
    fn reserved_collections_are_refused_everywhere() {
        for name in ["__outbox", "__meta", "__anything"] {
            let reserved = KeyError::ReservedCollection(name.to_owned());
            assert_eq!(validate_item_key(name, "x"), Err(reserved.clone()));
            assert_eq!(validate_collection_name(name), Err(reserved));
        }
        // A single underscore, or `__` inside the name or in an id, is fine.
        validate_item_key("_files", "__x").unwrap();
        validate_collection_name("files__old").unwrap();
        // The empty collection holds CodeForge keys without `:`; an app cannot register it.
        validate_item_key("", "__proto").unwrap();
        assert_eq!(validate_collection_name(""), Err(KeyError::EmptyCollection));
        assert!(matches!(validate_collection_name("a:b"), Err(KeyError::ColonInCollection(_))));
    }
}
