//! The IndexedDB layout and its upgrades.
//!
//! | object store | key | value |
//! |---|---|---|
//! | one per collection (`files`, ...) | the item id | the item (see `codec.rs`) |
//! | `__outbox` | `[collection, id]` | an [`OutboxEntry`]; index `by_hlc` orders the push |
//! | `__sync` | `[collection, id]` | an [`ItemSync`](crate::local::ItemSync) (with the merge base, for collections that merge) |
//! | `__dead` | `[collection, id]` | a [`DeadLetter`](crate::local::DeadLetter): a change the server rejected for good |
//! | `__conflicts` | `[collection, id]` | a [`Conflict`](crate::local::Conflict) waiting for the user (its outbox entry is not pushed meanwhile) |
//! | `__meta` | a name | a string (e.g. `initialized:<collection>`, `sync:checkpoint`) |
//!
//! Every upgrade (a new collection, a higher configured version, an older layout) runs
//! [`upgrade`] inside IndexedDB's version-change transaction: create what is missing (for a
//! database of the first layout, `__sync` and the outbox's push-order index), then run the app's
//! migration hook; any error aborts the whole upgrade. The first layout's outbox entries (no op
//! id, base revision or stamp) are then rewritten in one transaction by
//! [`upgrade_first_layout_entries`], which every new connection runs (a no-op costing two counts
//! once nothing is left to rewrite).

use std::rc::Rc;

use indexed_db_futures::database::{Database, VersionChangeEvent};
use indexed_db_futures::error::Error as IdbError;
use indexed_db_futures::prelude::*;
use indexed_db_futures::transaction::TransactionMode;
use indexed_db_futures::KeyPath;
use wasm_bindgen::JsValue;

use super::errors::js_error_message;
use super::{data_error, from_js_json, to_js_json};
use crate::local::outbox::OutboxEntryV1;
use crate::local::OutboxEntry;

/// Object store of the changes waiting to be pushed.
pub(super) const OUTBOX_STORE: &str = "__outbox";
/// Object store of what this device knows of each item's server copy.
pub(super) const SYNC_STORE: &str = "__sync";
/// Object store of the changes the server rejected for good.
pub(super) const DEAD_STORE: &str = "__dead";
/// Object store of the conflicts waiting for the user.
pub(super) const CONFLICT_STORE: &str = "__conflicts";
/// Object store of bookkeeping values.
pub(super) const META_STORE: &str = "__meta";
/// Index of `__outbox` in push order (the change's HLC stamp).
pub(super) const OUTBOX_ORDER_INDEX: &str = "by_hlc";
const OUTBOX_ORDER_PATH: [&str; 3] = ["hlc.wall_ms", "hlc.counter", "hlc.node"];

/// The stores every database of this crate has, besides its collections.
pub(super) const BOOKKEEPING_STORES: [&str; 5] =
    [OUTBOX_STORE, SYNC_STORE, DEAD_STORE, CONFLICT_STORE, META_STORE];

/// A schema upgrade about to happen: the app's migration hook sees it inside the upgrade
/// transaction, after the runtime has created the object stores it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migration {
    /// The version the database had (0 when it is new).
    pub old_version: u32,
    /// The version it is upgraded to.
    pub new_version: u32,
}

/// A function run inside every schema upgrade, to create or remove the app's own object stores.
/// An error aborts the upgrade (and is reported by the store's next operation).
pub type MigrationHook = Rc<dyn Fn(&Schema<'_>, Migration) -> Result<(), String>>;

/// The database's object stores, as a [`MigrationHook`] may change them during an upgrade.
/// The stores this crate manages (`__*`) cannot be touched here.
pub struct Schema<'a> {
    db: &'a Database,
}

impl std::fmt::Debug for Schema<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Schema").field("stores", &self.store_names()).finish()
    }
}

impl Schema<'_> {
    /// The names of the object stores, in order.
    pub fn store_names(&self) -> Vec<String> {
        self.db.object_store_names().collect()
    }

    /// Creates an object store with out-of-line keys.
    ///
    /// # Errors
    /// A reserved name (`__*`), or what IndexedDB says (e.g. the store exists).
    pub fn create_store(&self, name: &str) -> Result<(), String> {
        refuse_reserved(name)?;
        self.db.create_object_store(name).build().map(drop).map_err(|e| e.to_string())
    }

    /// Deletes an object store and everything in it.
    ///
    /// # Errors
    /// A reserved name (`__*`), or what IndexedDB says (e.g. no such store).
    pub fn delete_store(&self, name: &str) -> Result<(), String> {
        refuse_reserved(name)?;
        self.db.delete_object_store(name).map_err(|e| e.to_string())
    }
}

fn refuse_reserved(name: &str) -> Result<(), String> {
    if name.starts_with(persist_protocol::RESERVED_PREFIX) {
        return Err(format!("{name:?} is managed by yewdux-persist"));
    }
    Ok(())
}

pub(super) fn has_store(db: &Database, name: &str) -> bool {
    db.object_store_names().any(|store| store == name)
}

/// Brings the schema to today's layout with every store in `required` (inside the version-change
/// transaction; synchronous, so an error aborts the upgrade), then runs `hook`.
pub(super) fn upgrade(
    event: &VersionChangeEvent,
    db: &Database,
    required: &[String],
    hook: Option<&MigrationHook>,
) -> indexed_db_futures::Result<()> {
    let first_layout = has_store(db, OUTBOX_STORE) && !has_store(db, SYNC_STORE);
    let mut created = Vec::new();
    for name in required {
        if has_store(db, name) {
            continue;
        }
        let store = db.create_object_store(name.as_str()).build()?;
        if name == OUTBOX_STORE {
            store.create_index(OUTBOX_ORDER_INDEX, KeyPath::from(OUTBOX_ORDER_PATH)).build()?;
        }
        created.push(store);
    }
    if first_layout {
        // The version-change transaction is reachable through a store it created (`__sync`).
        let tx = created.first().expect("__sync was created").transaction();
        let outbox = tx.object_store(OUTBOX_STORE)?;
        outbox.create_index(OUTBOX_ORDER_INDEX, KeyPath::from(OUTBOX_ORDER_PATH)).build()?;
        // Its entries are rewritten by `upgrade_first_layout_entries` right after the open.
    }
    if let Some(hook) = hook {
        let step = Migration {
            old_version: event.old_version() as u32,
            new_version: event.new_version().unwrap_or_default() as u32,
        };
        hook(&Schema { db }, step).map_err(|message| {
            IdbError::from(js_sys::Error::new(&format!("migration failed: {message}")))
        })?;
    }
    Ok(())
}

/// Rewrites the outbox entries of the first layout (no op id, base revision or stamp) in
/// today's form, in one transaction: all or none. Run on every connection open, so entries left
/// by an interrupted upgrade, or written later by a tab still running an old build, are caught
/// too. Cheap when there are none: such entries have no stamp, so the push-order index leaves
/// them out, and two counts that agree mean there is nothing to do.
pub(super) async fn upgrade_first_layout_entries(
    db: &Database,
) -> indexed_db_futures::Result<usize> {
    let tx = db.transaction(OUTBOX_STORE).with_mode(TransactionMode::Readwrite).build()?;
    let outbox = tx.object_store(OUTBOX_STORE)?;
    let all = outbox.count().primitive()?;
    let stamped = outbox.index(OUTBOX_ORDER_INDEX)?.count().primitive()?;
    let (all, stamped) = (all.await?, stamped.await?);
    if all == stamped {
        tx.commit().await?;
        return Ok(0);
    }
    let keys = outbox.get_all_keys::<JsValue>().primitive()?;
    let values = outbox.get_all::<JsValue>().primitive()?;
    let keys: Vec<JsValue> = keys.await?.collect::<Result<_, _>>()?;
    let values: Vec<JsValue> = values.await?.collect::<Result<_, _>>()?;
    // Random per migration, so op ids of entries migrated in two browsers never meet.
    let batch = (js_sys::Math::random() * 2f64.powi(53)) as u64;
    let mut upgraded = 0;
    for (key, value) in keys.into_iter().zip(values) {
        if from_js_json::<OutboxEntry>(&value).is_ok() {
            continue;
        }
        let old: OutboxEntryV1 = from_js_json(&value).map_err(|error| {
            data_error(format!("first-layout outbox entry {}: {error}", js_error_message(&key)))
        })?;
        let entry: OutboxEntry = old.upgrade(batch, upgraded);
        drop(outbox.put(to_js_json(&entry)?).with_key(key).primitive()?);
        upgraded += 1;
    }
    tx.commit().await?;
    Ok(upgraded as usize)
}
