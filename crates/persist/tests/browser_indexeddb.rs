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

mod store {
    use std::cell::RefCell;
    use std::rc::Rc;

    use futures::future::{select, Either};
    use indexed_db_futures::{Build, BuildPrimitive};
    use wasm_bindgen_test::*;
    use yewdux_persist::config::{Migration, Schema};
    use yewdux_persist::local::{
        BatchId, Change, IndexedDbStore, ItemKey, LocalStore, QueuedOp, StoreError, WriteBatch,
    };

    fn unique(name: &str) -> String {
        format!("{name}-{}", (js_sys::Math::random() * 1e12) as u64)
    }

    fn put(collection: &str, id: &str, json: &str, serial: u64) -> WriteBatch {
        WriteBatch {
            id: BatchId(serial),
            collection: collection.into(),
            ops: vec![QueuedOp::new(ItemKey::new(collection, id), Change::put(json), serial)],
        }
    }

    /// Fails the test instead of hanging when `future` does not finish in time.
    async fn within<T>(ms: u32, what: &str, future: impl std::future::Future<Output = T>) -> T {
        let timeout = gloo_timers::future::TimeoutFuture::new(ms);
        match select(Box::pin(future), timeout).await {
            Either::Left((value, _)) => value,
            Either::Right(_) => panic!("{what} did not finish within {ms} ms"),
        }
    }

    #[wasm_bindgen_test]
    async fn records_and_outbox_entries_are_written_together() {
        let store = IndexedDbStore::new(unique("outbox"), 1);
        store.prepare(&["files".to_owned()]).await.unwrap();
        store.write_batch(&put("files", "a", r#"{"v":1}"#, 1)).await.unwrap();
        store.write_batch(&put("files", "a", r#"{"v":2}"#, 2)).await.unwrap();
        let mut delete = put("files", "b", "null", 3);
        delete.ops[0].change = Change::Delete;
        store.write_batch(&delete).await.unwrap();
        let items = store.load_all("files").await.unwrap().items;
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].json, r#"{"v":2}"#);
        // One outbox entry per item: the newest change replaced the older one.
        let outbox = store.outbox(100).await.unwrap();
        assert_eq!(
            outbox.iter().map(|e| (e.id.as_str(), e.serial, e.delete)).collect::<Vec<_>>(),
            [("a", 2, false), ("b", 3, true)]
        );
        assert_eq!(store.outbox_len().await.unwrap(), 2);
        assert_eq!(store.stats().write_transactions, 3);
    }

    #[wasm_bindgen_test]
    async fn invalid_json_fails_the_whole_batch_as_invalid_data() {
        let store = IndexedDbStore::new(unique("invalid"), 1);
        store.prepare(&["files".to_owned()]).await.unwrap();
        let mut batch = put("files", "good", r#"{"ok":true}"#, 1);
        batch.ops.push(QueuedOp {
            sync_to_remote: false,
            ..QueuedOp::new(ItemKey::new("files", "bad"), Change::put("{not json"), 2)
        });
        let error = store.write_batch(&batch).await.unwrap_err();
        assert!(
            matches!(error, StoreError::InvalidData(_) | StoreError::Other { .. }),
            "{error:?}"
        );
        assert!(
            store.load_all("files").await.unwrap().items.is_empty(),
            "nothing of the batch is kept"
        );
    }

    #[wasm_bindgen_test]
    async fn another_tab_upgrading_closes_and_reopens_our_connection() {
        let name = unique("versionchange");
        let first = IndexedDbStore::new(&name, 1);
        first.prepare(&["files".to_owned()]).await.unwrap();
        first.write_batch(&put("files", "a", "1", 1)).await.unwrap();

        // A second connection needs a new object store: a version upgrade. Without closing on
        // `versionchange` the first connection would block it forever.
        let second = IndexedDbStore::new(&name, 1);
        within(3_000, "the upgrade", second.prepare(&["extra".to_owned()])).await.unwrap();
        second.write_batch(&put("extra", "x", "2", 2)).await.unwrap();

        // The first store reopens on its next operation and keeps working.
        within(3_000, "the reopen", first.write_batch(&put("files", "b", "3", 3))).await.unwrap();
        assert_eq!(first.load_all("files").await.unwrap().items.len(), 2);
        assert_eq!(first.load_all("extra").await.unwrap().items.len(), 1);
    }

    #[wasm_bindgen_test]
    async fn the_migration_hook_runs_once_per_upgrade() {
        let name = unique("migration");
        let seen: Rc<RefCell<Vec<Migration>>> = Rc::default();
        let hook = {
            let seen = Rc::clone(&seen);
            Rc::new(move |schema: &Schema<'_>, step: Migration| {
                seen.borrow_mut().push(step);
                if step.old_version < 3 {
                    schema.create_store("legacy")?;
                }
                // The stores this crate manages are out of reach.
                assert!(schema.delete_store("__outbox").is_err());
                Ok(())
            })
        };
        let store = IndexedDbStore::new(&name, 3).with_migration(hook.clone());
        store.prepare(&["files".to_owned()]).await.unwrap();
        assert_eq!(*seen.borrow(), [Migration { old_version: 0, new_version: 3 }]);
        drop(store);

        // Reopening at the same version runs nothing; a new collection is one more upgrade.
        let store = IndexedDbStore::new(&name, 3).with_migration(hook);
        store.prepare(&["files".to_owned(), "models".to_owned()]).await.unwrap();
        assert_eq!(seen.borrow().len(), 2);
        assert_eq!(seen.borrow()[1], Migration { old_version: 3, new_version: 4 });
        store.write_batch(&put("models", "m", "{}", 1)).await.unwrap();
    }

    #[wasm_bindgen_test]
    async fn a_failing_migration_is_reported_not_swallowed() {
        let hook = Rc::new(|_: &Schema<'_>, _: Migration| Err("cannot convert v1 data".to_owned()));
        let store = IndexedDbStore::new(unique("bad-migration"), 2).with_migration(hook);
        let error = store.prepare(&["files".to_owned()]).await.unwrap_err();
        assert!(error.to_string().contains("cannot convert v1 data"), "{error}");
    }

    #[wasm_bindgen_test]
    async fn values_come_back_byte_for_byte_even_with_huge_integers() {
        let store = IndexedDbStore::new(unique("lossless"), 1);
        store.prepare(&["files".to_owned()]).await.unwrap();
        let plain = r#"{"name":"a","n":42,"nested":{"list":[1,2.5,"x"]}}"#;
        let huge = r#"{"id":9007199254740993,"price":0.30000000000000004}"#;
        store.write_batch(&put("files", "plain", plain, 1)).await.unwrap();
        store.write_batch(&put("files", "huge", huge, 2)).await.unwrap();
        let loaded = store.load_all("files").await.unwrap();
        let json = |id: &str| loaded.items.iter().find(|item| item.id == id).unwrap().json.clone();
        assert_eq!(json("plain"), plain);
        assert_eq!(json("huge"), huge, "a JS number would have rounded it");
        let read =
            store.load_items("files", &["huge".to_owned(), "none".to_owned()]).await.unwrap();
        assert_eq!(read, [Some(huge.to_owned()), None]);
    }

    #[wasm_bindgen_test]
    async fn records_that_cannot_be_read_are_listed_not_fatal() {
        let name = unique("foreign");
        let store = IndexedDbStore::new(&name, 1);
        store.prepare(&["files".to_owned()]).await.unwrap();
        store.write_batch(&put("files", "ok", r#"{"a":1}"#, 1)).await.unwrap();
        // A record written by someone else, under a number key.
        let db = indexed_db_futures::database::Database::open(&name).await.unwrap();
        let tx = db
            .transaction("files")
            .with_mode(indexed_db_futures::transaction::TransactionMode::Readwrite)
            .build()
            .unwrap();
        drop(tx.object_store("files").unwrap().put("x").with_key(7u32).primitive().unwrap());
        tx.commit().await.unwrap();
        db.close();
        let loaded = store.load_all("files").await.unwrap();
        assert_eq!(loaded.items.len(), 1);
        assert_eq!(loaded.unreadable.len(), 1);
        assert_eq!(loaded.unreadable[0].id, "7");
    }

    #[wasm_bindgen_test]
    async fn writing_to_a_collection_nobody_prepared_creates_it() {
        let store = IndexedDbStore::new(unique("unprepared"), 1);
        store.prepare(&["files".to_owned()]).await.unwrap();
        within(3_000, "the write", store.write_batch(&put("late", "x", "1", 1))).await.unwrap();
        assert_eq!(store.load_all("late").await.unwrap().items.len(), 1);
    }

    /// Writes a database the way the first layout did (version 1: `files`, `__outbox`, `__meta`;
    /// outbox entries without op id, base revision or stamp), with raw IndexedDB.
    async fn first_layout_database(name: &str) {
        let db = indexed_db_futures::database::Database::open(name)
            .with_version(1u8)
            .with_on_upgrade_needed(|_, db| {
                for store in ["files", "__outbox", "__meta"] {
                    db.create_object_store(store).build()?;
                }
                Ok(())
            })
            .await
            .unwrap();
        let tx = db
            .transaction(["files", "__outbox", "__meta"])
            .with_mode(indexed_db_futures::transaction::TransactionMode::Readwrite)
            .build()
            .unwrap();
        let files = tx.object_store("files").unwrap();
        let outbox = tx.object_store("__outbox").unwrap();
        let json = |text: &str| js_sys::JSON::parse(text).unwrap();
        for (id, value) in [("a.rs", r#"{"n":1}"#), ("b.rs", r#"{"n":2}"#), ("c.rs", r#"{"n":3}"#)]
        {
            drop(files.put(json(value)).with_key(id).primitive().unwrap());
        }
        // Two sessions each counted serials from 1: `a.rs` and `gone.rs` share serial 4.
        for (id, delete, serial) in [("a.rs", false, 4), ("b.rs", false, 9), ("gone.rs", true, 4)] {
            let entry = format!(
                r#"{{"collection":"files","id":"{id}","delete":{delete},"serial":{serial}}}"#
            );
            let key = js_sys::Array::of2(&"files".into(), &id.into());
            drop(
                outbox
                    .put(json(&entry))
                    .with_key(wasm_bindgen::JsValue::from(key))
                    .primitive()
                    .unwrap(),
            );
        }
        let meta = tx.object_store("__meta").unwrap();
        drop(meta.put("true").with_key("initialized:files").primitive().unwrap());
        tx.commit().await.unwrap();
        db.close();
    }

    #[wasm_bindgen_test]
    async fn a_database_of_the_first_layout_keeps_every_record_and_outbox_entry() {
        let name = unique("first-layout");
        first_layout_database(&name).await;

        let store = IndexedDbStore::new(&name, 1);
        store.prepare(&["files".to_owned()]).await.unwrap();
        let items = store.load_all("files").await.unwrap().items;
        let items: Vec<(&str, &str)> =
            items.iter().map(|item| (item.id.as_str(), item.json.as_str())).collect();
        assert_eq!(items, [("a.rs", r#"{"n":1}"#), ("b.rs", r#"{"n":2}"#), ("c.rs", r#"{"n":3}"#)]);
        assert_eq!(store.get_meta("initialized:files").await.unwrap().as_deref(), Some("true"));

        let outbox = store.outbox(100).await.unwrap();
        let mut kept: Vec<(&str, bool, u64)> =
            outbox.iter().map(|e| (e.id.as_str(), e.delete, e.serial)).collect();
        kept.sort();
        assert_eq!(kept, [("a.rs", false, 4), ("b.rs", false, 9), ("gone.rs", true, 4)]);
        let mut op_ids: Vec<&str> = outbox.iter().map(|e| e.op_id.as_str()).collect();
        op_ids.sort();
        op_ids.dedup();
        assert_eq!(op_ids.len(), 3, "every entry got its own op id, serials notwithstanding");
        assert!(outbox.iter().all(|e| e.base_revision.is_none()), "nothing was ever pushed");
        assert_eq!(store.outbox_len().await.unwrap(), 3);

        // The upgraded database takes today's writes: the new change replaces the old entry.
        store.write_batch(&put("files", "a.rs", r#"{"n":10}"#, 1)).await.unwrap();
        let outbox = store.outbox(100).await.unwrap();
        assert_eq!(outbox.len(), 3);
        let a = outbox.iter().find(|e| e.id == "a.rs").unwrap();
        assert_eq!((a.op_id.as_str(), a.serial), ("local-1", 1));
        drop(store);

        // Reopening changes nothing more.
        let again = IndexedDbStore::new(&name, 1);
        again.prepare(&["files".to_owned()]).await.unwrap();
        let reread: Vec<_> = again.outbox(100).await.unwrap();
        assert_eq!(reread, outbox);
    }

    #[wasm_bindgen_test]
    async fn an_entry_an_old_build_writes_later_is_upgraded_by_the_next_connection() {
        let name = unique("old-tab");
        let store = IndexedDbStore::new(&name, 1);
        store.prepare(&["files".to_owned()]).await.unwrap();
        store.write_batch(&put("files", "new.rs", "1", 1)).await.unwrap();
        drop(store);
        // A tab still running the first build opens the upgraded database at its version and
        // records a change the way it always did.
        let db = indexed_db_futures::database::Database::open(&name).await.unwrap();
        let tx = db
            .transaction("__outbox")
            .with_mode(indexed_db_futures::transaction::TransactionMode::Readwrite)
            .build()
            .unwrap();
        let entry = js_sys::JSON::parse(
            r#"{"collection":"files","id":"old.rs","delete":false,"serial":1}"#,
        )
        .unwrap();
        let key = js_sys::Array::of2(&"files".into(), &"old.rs".into());
        let outbox = tx.object_store("__outbox").unwrap();
        drop(outbox.put(entry).with_key(wasm_bindgen::JsValue::from(key)).primitive().unwrap());
        tx.commit().await.unwrap();
        db.close();

        let store = IndexedDbStore::new(&name, 1);
        let entries = store.outbox(100).await.unwrap();
        let ids: Vec<&str> = entries.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["old.rs", "new.rs"], "the old entry is kept, and ordered first");
        assert!(entries[0].op_id.as_str().starts_with("migrated-"));
    }
}
