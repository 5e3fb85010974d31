//! Item keys and their mapping to the seed's flat `"<collection>:<id>"` keys.
//!
//! The mapping is a bijection over valid keys: a seed key is split at its first `:` when that
//! colon is not the first character; otherwise the whole key is the id of the empty collection.
//! [`validate_item_key`] rejects the few `(collection, id)` pairs that would not round-trip.

/// Longest collection name accepted, in bytes.
pub const MAX_COLLECTION_LEN: usize = 128;
/// Longest item id accepted, in bytes.
pub const MAX_ID_LEN: usize = 1024;

/// Why an item key was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The id is empty.
    #[error("item id must not be empty")]
    EmptyId,
    /// The collection name contains `:`, which separates collection and id in seed keys.
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

/// Checks that `(collection, id)` is a valid item key.
pub fn validate_item_key(collection: &str, id: &str) -> Result<(), KeyError> {
    if id.is_empty() {
        return Err(KeyError::EmptyId);
    }
    if collection.len() > MAX_COLLECTION_LEN {
        return Err(KeyError::TooLong {
            part: "collection",
            len: collection.len(),
            max: MAX_COLLECTION_LEN,
        });
    }
    if id.len() > MAX_ID_LEN {
        return Err(KeyError::TooLong { part: "id", len: id.len(), max: MAX_ID_LEN });
    }
    if collection.chars().any(char::is_control) {
        return Err(KeyError::ControlCharacter("collection"));
    }
    if id.chars().any(char::is_control) {
        return Err(KeyError::ControlCharacter("id"));
    }
    if collection.contains(':') {
        return Err(KeyError::ColonInCollection(collection.to_owned()));
    }
    // Ambiguous when `split_seed_key` would split the bare id: a colon after its first byte
    // while the id does not start with one (a leading colon keeps the whole key an id).
    if collection.is_empty() && matches!(id.find(':'), Some(at) if at > 0) {
        return Err(KeyError::AmbiguousId(id.to_owned()));
    }
    Ok(())
}

/// The seed's flat key of an item: `"<collection>:<id>"`, or just the id for the empty collection.
pub fn seed_key(collection: &str, id: &str) -> String {
    if collection.is_empty() {
        id.to_owned()
    } else {
        format!("{collection}:{id}")
    }
}

/// Splits a seed key into `(collection, id)`; the inverse of [`seed_key`].
pub fn split_seed_key(key: &str) -> (&str, &str) {
    match key.find(':') {
        Some(at) if at > 0 => (&key[..at], &key[at + 1..]),
        _ => ("", key),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_keys_round_trip() {
        for key in ["files:a.rs", "files:dir/a.rs", "a:b:c", "plain", ":leading", "ü:ñ/✓", "x:"]
        {
            let (collection, id) = split_seed_key(key);
            if id.is_empty() {
                assert_eq!(validate_item_key(collection, id), Err(KeyError::EmptyId));
                continue;
            }
            validate_item_key(collection, id).unwrap();
            assert_eq!(seed_key(collection, id), key);
        }
    }

    #[test]
    fn valid_item_keys_round_trip() {
        for (collection, id) in [("files", "a:b"), ("", "plain"), ("", ":x:y"), ("m", "/")] {
            validate_item_key(collection, id).unwrap();
            assert_eq!(split_seed_key(&seed_key(collection, id)), (collection, id));
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
}
