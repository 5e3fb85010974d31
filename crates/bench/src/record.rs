//! The item every benchmark writes: a realistic file record of about 300 bytes of JSON.

use serde::{Deserialize, Serialize};

/// The collection (IndexedDB object store) the benchmarks write to.
pub const COLLECTION: &str = "files";

/// A file of a workspace editor, as an app would persist it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    /// The file's id (also its key in the collection).
    pub id: String,
    /// File name.
    pub name: String,
    /// Path in the workspace.
    pub path: String,
    /// Language, for highlighting.
    pub language: String,
    /// Size in bytes.
    pub size: u64,
    /// Bumped on every edit.
    pub revision: u64,
    /// Last change, RFC 3339.
    pub modified_at: String,
    /// Free-form tags.
    pub tags: Vec<String>,
    /// The file's text (a short snippet here).
    pub content: String,
}

/// The id of record `i`.
pub fn file_id(i: usize) -> String {
    format!("f{i:06}")
}

/// Record `i` (deterministic).
pub fn file_record(i: usize) -> FileRecord {
    let id = file_id(i);
    FileRecord {
        name: format!("module_{i}.rs"),
        path: format!("src/area_{:02}/module_{i}.rs", i % 37),
        language: "rust".into(),
        size: 1_024 + (i as u64 * 7) % 4_096,
        revision: 1,
        modified_at: format!("2024-05-{:02}T12:{:02}:{:02}.000Z", 1 + i % 28, i % 60, i % 59),
        tags: vec!["draft".into(), format!("owner-{}", i % 17)],
        content: format!(
            "//! Module {i}.\nuse std::collections::HashMap;\n\npub fn handle_{i}(input: &str) -> \
             usize {{\n    input.len() + {i}\n}}\n"
        ),
        id,
    }
}

/// Record `i` as JSON text.
pub fn file_json(i: usize) -> String {
    serde_json::to_string(&file_record(i)).expect("a file record serialises")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_about_three_hundred_bytes_of_json() {
        for i in [0, 7, 1_999, 99_999] {
            let len = file_json(i).len();
            assert!((260..=340).contains(&len), "record {i}: {len} bytes");
        }
    }
}
