//! Proves the headless-browser harness: a real IndexedDB round trip in Chromium.
#![cfg(target_arch = "wasm32")]

use indexed_db_futures::database::Database;
use indexed_db_futures::prelude::*;
use indexed_db_futures::transaction::TransactionMode;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct FileRecord {
    id: String,
    name: String,
    content: String,
}

#[wasm_bindgen_test]
async fn indexeddb_round_trip_survives_reopen() {
    let name = format!("harness-{}", js_sys::Math::random());
    let open = || {
        Database::open(&name).with_version(1u8).with_on_upgrade_needed(|_, db| {
            db.create_object_store("files").with_key_path("id".into()).build()?;
            Ok(())
        })
    };
    let record =
        FileRecord { id: "a.rs".into(), name: "a.rs".into(), content: "fn main() {}".into() };

    let db = open().await.expect("open");
    let tx = db.transaction("files").with_mode(TransactionMode::Readwrite).build().unwrap();
    tx.object_store("files").unwrap().put(&record).serde().unwrap();
    tx.commit().await.expect("commit");
    db.close();

    let db = open().await.expect("reopen");
    let tx = db.transaction("files").build().unwrap();
    let read: Option<FileRecord> =
        tx.object_store("files").unwrap().get("a.rs").serde().unwrap().await.unwrap();
    drop(tx);
    assert_eq!(read, Some(record));
    db.close();
}
