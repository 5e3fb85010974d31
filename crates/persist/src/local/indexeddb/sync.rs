//! The sync bookkeeping on IndexedDB: the next changes to push, and what the server said applied
//! to items, outbox, known revisions, dead letters and checkpoint in one transaction.

use std::collections::BTreeMap;

use indexed_db_futures::error::Error as IdbError;
use indexed_db_futures::object_store::ObjectStore;
use indexed_db_futures::prelude::*;
use indexed_db_futures::transaction::{Transaction, TransactionMode};
use persist_protocol::{PushOutcome, Revision};
use wasm_bindgen::JsValue;

use super::layout::{
    CONFLICT_STORE, DEAD_STORE, META_STORE, OUTBOX_ORDER_INDEX, OUTBOX_STORE, SYNC_STORE,
};
use super::{codec, from_js_json, from_stored, item_key, to_js_json, IndexedDbStore};
use crate::local::memory::CHECKPOINT_KEY;
use crate::local::plan::{
    plan_batch, plan_resolution, ConflictWrite, EntryWrite, ItemPlan, ItemState, ItemWrite, Key,
    KnownWrite,
};
use crate::local::{
    Conflict, DeadLetter, ItemSync, OutboxEntry, PendingPush, Resolution, ResolveOutcome,
    StoreError, SyncApplied, SyncBatch, SyncRules,
};

/// A stored record read inside a transaction, or a `DataError` that aborts it.
fn decode<T: serde::de::DeserializeOwned>(value: Option<JsValue>) -> Result<Option<T>, IdbError> {
    match value {
        Some(value) if !value.is_undefined() => {
            from_js_json(&value).map(Some).map_err(super::data_error)
        }
        _ => Ok(None),
    }
}

impl IndexedDbStore {
    pub(super) async fn read_pending_pushes(
        &self,
        limit: usize,
    ) -> Result<Vec<PendingPush>, StoreError> {
        let db = self.connection.get().await?;
        let limit = u32::try_from(limit).unwrap_or(u32::MAX);
        // Every store: the entries name their collections only once read, and one transaction
        // keeps each entry and its value consistent.
        let scope: Vec<String> = db.object_store_names().collect();
        let result = async {
            let tx = db.transaction(scope.as_slice()).build()?;
            let outbox = tx.object_store(OUTBOX_STORE)?;
            // Items with an open conflict wait for the user: read that many more, leave them out.
            let open = conflict_keys(&tx).await?;
            let wanted = limit.saturating_add(u32::try_from(open.len()).unwrap_or(u32::MAX));
            let values: Vec<JsValue> = outbox
                .index(OUTBOX_ORDER_INDEX)?
                .get_all::<JsValue>()
                .with_limit(wanted)
                .primitive()?
                .await?
                .collect::<Result<_, _>>()?;
            let mut entries = Vec::with_capacity(values.len());
            for value in values {
                let entry = from_js_json::<OutboxEntry>(&value).map_err(super::data_error)?;
                if !open.contains(&(entry.collection.clone(), entry.id.clone())) {
                    entries.push(entry);
                }
            }
            entries.truncate(limit as usize);
            entries.sort_by(|a, b| a.push_order().cmp(&b.push_order()));
            let known_store = tx.object_store(SYNC_STORE)?;
            let mut requests = Vec::with_capacity(entries.len());
            for entry in &entries {
                let key = item_key(&entry.collection, &entry.id);
                let known = known_store.get::<JsValue, JsValue, _>(key).primitive()?;
                let value = if entry.delete || !scope.contains(&entry.collection) {
                    None
                } else {
                    let items = tx.object_store(&entry.collection)?;
                    Some(items.get::<JsValue, _, _>(entry.id.as_str()).primitive()?)
                };
                requests.push((known, value));
            }
            let mut pending = Vec::with_capacity(entries.len());
            for (mut entry, (known, value)) in entries.into_iter().zip(requests) {
                let known: Option<ItemSync> = decode(known.await?)?;
                if entry.base_revision.is_none() {
                    entry.base_revision = known.map(|k| k.revision);
                }
                let value = match value {
                    Some(request) => match request.await? {
                        Some(value) if !value.is_undefined() => Some(value),
                        _ => None,
                    },
                    None => None,
                };
                pending.push((entry, value));
            }
            Ok::<_, IdbError>(pending)
        }
        .await;
        let pending = result.map_err(|e| self.connection.classify(e))?;
        pending
            .into_iter()
            .map(|(entry, value)| {
                let value = value.map(|v| from_stored(&v)).transpose()?;
                Ok(PendingPush { entry, value })
            })
            .collect()
    }

    pub(super) async fn write_sync(
        &self,
        batch: SyncBatch<'_>,
        rules: &SyncRules,
    ) -> Result<SyncApplied, StoreError> {
        let keys = batch.keys();
        let mut collections: Vec<String> = keys.iter().map(|(c, _)| c.clone()).collect();
        collections.sort_unstable();
        collections.dedup();
        // A pulled collection this app never opened gets its store, so nothing pulled is lost.
        self.connection.ensure(&collections).await?;
        let db = self.connection.get().await?;
        let mut scope: Vec<&str> = collections.iter().map(String::as_str).collect();
        scope.extend([OUTBOX_STORE, SYNC_STORE, DEAD_STORE, CONFLICT_STORE, META_STORE]);
        let result = async {
            let tx =
                db.transaction(scope.as_slice()).with_mode(TransactionMode::Readwrite).build()?;
            let (outbox, known_store, dead, conflicts) = (
                tx.object_store(OUTBOX_STORE)?,
                tx.object_store(SYNC_STORE)?,
                tx.object_store(DEAD_STORE)?,
                tx.object_store(CONFLICT_STORE)?,
            );
            // Read only what the rules will look at: each request is a round trip through the
            // browser's event loop, and most items need one or two of the three reads. Pushed:
            // entry and known revision, the local value only for conflicts. Pulled: the known
            // revision, then entry and local value only for records newer than it.
            let needs_local: std::collections::BTreeSet<Key> = match batch {
                SyncBatch::Pushed(answers) => answers
                    .iter()
                    .filter(|a| matches!(a.outcome, PushOutcome::Conflict { .. }))
                    .map(|a| (a.entry.collection.clone(), a.entry.id.clone()))
                    .collect(),
                SyncBatch::Pulled { .. } => Default::default(),
            };
            let pushed = matches!(batch, SyncBatch::Pushed(_));
            let mut first = Vec::with_capacity(keys.len());
            for (collection, id) in &keys {
                let key = item_key(collection, id);
                let known = known_store.get::<JsValue, JsValue, _>(key.clone()).primitive()?;
                let entry = if pushed {
                    Some(outbox.get::<JsValue, JsValue, _>(key).primitive()?)
                } else {
                    None
                };
                first.push((known, entry));
            }
            let mut states: BTreeMap<Key, ItemState> = BTreeMap::new();
            for (key, (known, entry)) in keys.iter().zip(first) {
                let mut state = ItemState { known: decode(known.await?)?, ..ItemState::default() };
                if let Some(entry) = entry {
                    state.entry = decode(entry.await?)?;
                }
                states.insert(key.clone(), state);
            }
            let newest: BTreeMap<Key, Revision> = match batch {
                SyncBatch::Pulled { records, .. } => records
                    .iter()
                    .map(|r| ((r.collection.clone(), r.id.clone()), r.revision))
                    .collect(),
                SyncBatch::Pushed(_) => BTreeMap::new(),
            };
            let mut second = Vec::new();
            for key in &keys {
                let state = &states[key];
                let newer = newest
                    .get(key)
                    .is_some_and(|rev| state.known.as_ref().is_none_or(|k| k.revision < *rev));
                if !(newer || needs_local.contains(key)) {
                    continue;
                }
                let entry = if pushed {
                    None
                } else {
                    Some(outbox.get::<JsValue, JsValue, _>(item_key(&key.0, &key.1)).primitive()?)
                };
                let local =
                    tx.object_store(&key.0)?.get::<JsValue, _, _>(key.1.as_str()).primitive()?;
                let open =
                    conflicts.get::<JsValue, JsValue, _>(item_key(&key.0, &key.1)).primitive()?;
                second.push((key.clone(), entry, local, open));
            }
            for (key, entry, local, open) in second {
                let local = match local.await? {
                    Some(value) if !value.is_undefined() => {
                        Some(from_stored(&value).map_err(|e| super::data_error(e.to_string()))?)
                    }
                    _ => None,
                };
                let state = states.get_mut(&key).expect("read in the first round");
                state.local = local;
                state.conflict = decode(open.await?)?;
                if let Some(entry) = entry {
                    state.entry = decode(entry.await?)?;
                }
            }
            let (plans, report) = plan_batch(&batch, rules, &mut states);
            let stores = Stores { outbox, known: known_store, dead, conflicts };
            for (key, plan) in plans {
                carry_out(&tx, &stores, key, plan)?;
            }
            if let SyncBatch::Pulled { checkpoint, .. } = batch {
                let meta = tx.object_store(META_STORE)?;
                drop(meta.put(checkpoint.to_string()).with_key(CHECKPOINT_KEY).primitive()?);
            }
            tx.commit().await?;
            Ok::<_, IdbError>(report)
        }
        .await;
        result.map_err(|e| self.connection.classify(e))
    }

    pub(super) async fn read_checkpoint(&self) -> Result<Revision, StoreError> {
        let text = self.read_meta(CHECKPOINT_KEY).await?;
        Ok(text.and_then(|t| t.parse().ok()).unwrap_or(0))
    }

    pub(super) async fn delete_checkpoint(&self) -> Result<(), StoreError> {
        let db = self.connection.get().await?;
        let result = async {
            let tx = db.transaction(META_STORE).with_mode(TransactionMode::Readwrite).build()?;
            drop(tx.object_store(META_STORE)?.delete(CHECKPOINT_KEY).primitive()?);
            tx.commit().await
        }
        .await;
        result.map_err(|e| self.connection.classify(e))
    }

    pub(super) async fn write_resends(
        &self,
        collections: &[String],
        prefix: &str,
        stamp: &persist_protocol::Hlc,
    ) -> Result<usize, StoreError> {
        if collections.is_empty() {
            return Ok(0);
        }
        self.connection.ensure(collections).await?;
        let db = self.connection.get().await?;
        let mut scope: Vec<&str> = collections.iter().map(String::as_str).collect();
        scope.push(OUTBOX_STORE);
        let result = async {
            let tx =
                db.transaction(scope.as_slice()).with_mode(TransactionMode::Readwrite).build()?;
            let outbox = tx.object_store(OUTBOX_STORE)?;
            let pending = outbox.get_all_keys::<JsValue>().primitive()?;
            let mut item_keys = Vec::with_capacity(collections.len());
            for collection in collections {
                item_keys.push(tx.object_store(collection)?.get_all_keys::<JsValue>().primitive()?);
            }
            let pending: std::collections::HashSet<(String, String)> = pending
                .await?
                .filter_map(|key| {
                    let key = js_sys::Array::from(&key.ok()?);
                    Some((key.get(0).as_string()?, key.get(1).as_string()?))
                })
                .collect();
            let mut added = 0u32;
            for (collection, ids) in collections.iter().zip(item_keys) {
                for id in ids.await? {
                    let Some(id) = id?.as_string() else { continue };
                    if pending.contains(&(collection.clone(), id.clone())) {
                        continue;
                    }
                    let entry = OutboxEntry::resend(collection, &id, prefix, stamp, added);
                    let key = item_key(collection, &id);
                    drop(outbox.put(to_js_json(&entry)?).with_key(key).primitive()?);
                    added += 1;
                }
            }
            tx.commit().await?;
            Ok::<_, IdbError>(added as usize)
        }
        .await;
        result.map_err(|e| self.connection.classify(e))
    }

    /// Every record of the bookkeeping store `store`.
    async fn read_all_records<T: serde::de::DeserializeOwned>(
        &self,
        store: &str,
    ) -> Result<Vec<T>, StoreError> {
        let db = self.connection.get().await?;
        let result = async {
            let tx = db.transaction(store).build()?;
            let values: Vec<JsValue> = tx
                .object_store(store)?
                .get_all::<JsValue>()
                .primitive()?
                .await?
                .collect::<Result<_, _>>()?;
            Ok::<_, IdbError>(values)
        }
        .await;
        let values = result.map_err(|e| self.connection.classify(e))?;
        values.iter().map(|value| from_js_json(value).map_err(super::invalid_bookkeeping)).collect()
    }

    pub(super) async fn read_dead_letters(&self) -> Result<Vec<DeadLetter>, StoreError> {
        self.read_all_records(DEAD_STORE).await
    }

    pub(super) async fn write_settled_dead_letter(
        &self,
        collection: &str,
        id: &str,
        retry: bool,
    ) -> Result<(), StoreError> {
        let db = self.connection.get().await?;
        let result = async {
            let tx = db
                .transaction([DEAD_STORE, OUTBOX_STORE])
                .with_mode(TransactionMode::Readwrite)
                .build()?;
            let (dead, outbox) = (tx.object_store(DEAD_STORE)?, tx.object_store(OUTBOX_STORE)?);
            let key = item_key(collection, id);
            let letter = dead.get::<JsValue, JsValue, _>(key.clone()).primitive()?;
            let pending = outbox.get::<JsValue, JsValue, _>(key.clone()).primitive()?;
            let letter: Option<DeadLetter> = decode(letter.await?)?;
            let pending: Option<OutboxEntry> = decode(pending.await?)?;
            if let Some(letter) = letter {
                if retry && pending.is_none() {
                    drop(
                        outbox
                            .put(to_js_json(&letter.retried())?)
                            .with_key(key.clone())
                            .primitive()?,
                    );
                }
                drop(dead.delete(key).primitive()?);
            }
            tx.commit().await
        }
        .await;
        result.map_err(|e| self.connection.classify(e))
    }
}

/// The bookkeeping stores of a read-write transaction.
struct Stores<'tx> {
    outbox: ObjectStore<'tx>,
    known: ObjectStore<'tx>,
    dead: ObjectStore<'tx>,
    conflicts: ObjectStore<'tx>,
}

/// Issues the writes of `plan` for the item `key` in `tx` (not awaited: the commit reports
/// their failure).
fn carry_out(
    tx: &Transaction<'_>,
    stores: &Stores<'_>,
    (collection, id): Key,
    plan: ItemPlan,
) -> Result<(), IdbError> {
    let key = item_key(&collection, &id);
    match plan.item {
        ItemWrite::Keep => {}
        ItemWrite::Put(json) => {
            let encoded = codec::encode(&json);
            let value = js_sys::JSON::parse(encoded.text())?;
            let items = tx.object_store(&collection)?;
            drop(items.put(value).with_key(id.as_str()).primitive()?);
        }
        ItemWrite::Delete => {
            drop(tx.object_store(&collection)?.delete(id.as_str()).primitive()?);
        }
    }
    match plan.entry {
        EntryWrite::Keep => {}
        EntryWrite::Remove => drop(stores.outbox.delete(key.clone()).primitive()?),
        EntryWrite::Replace(entry) => {
            drop(stores.outbox.put(to_js_json(&entry)?).with_key(key.clone()).primitive()?)
        }
    }
    match plan.known {
        KnownWrite::Keep => {}
        KnownWrite::Set(sync) => {
            drop(stores.known.put(to_js_json(&sync)?).with_key(key.clone()).primitive()?)
        }
        KnownWrite::Clear => drop(stores.known.delete(key.clone()).primitive()?),
    }
    match plan.conflict {
        ConflictWrite::Keep => {}
        ConflictWrite::Set(open) => {
            drop(stores.conflicts.put(to_js_json(&*open)?).with_key(key.clone()).primitive()?)
        }
        ConflictWrite::Remove => drop(stores.conflicts.delete(key.clone()).primitive()?),
    }
    if let Some(letter) = plan.dead {
        drop(stores.dead.put(to_js_json(&letter)?).with_key(key).primitive()?);
    }
    Ok(())
}

/// The keys of the open conflicts.
async fn conflict_keys(
    tx: &Transaction<'_>,
) -> Result<std::collections::HashSet<(String, String)>, IdbError> {
    let keys = tx.object_store(CONFLICT_STORE)?.get_all_keys::<JsValue>().primitive()?.await?;
    Ok(keys
        .filter_map(|key| {
            let key = js_sys::Array::from(&key.ok()?);
            Some((key.get(0).as_string()?, key.get(1).as_string()?))
        })
        .collect())
}

impl IndexedDbStore {
    pub(super) async fn read_conflicts(&self) -> Result<Vec<Conflict>, StoreError> {
        self.read_all_records(CONFLICT_STORE).await
    }

    pub(super) async fn write_resolution(
        &self,
        seen: &Conflict,
        resolution: &Resolution,
        stamp: &persist_protocol::Hlc,
        keep_base: bool,
    ) -> Result<(ResolveOutcome, SyncApplied), StoreError> {
        let (collection, id) = (seen.collection.as_str(), seen.id.as_str());
        self.connection.ensure(&[collection.to_owned()]).await?;
        let db = self.connection.get().await?;
        let scope = [collection, OUTBOX_STORE, SYNC_STORE, DEAD_STORE, CONFLICT_STORE];
        let result = async {
            let tx = db.transaction(scope).with_mode(TransactionMode::Readwrite).build()?;
            let stores = Stores {
                outbox: tx.object_store(OUTBOX_STORE)?,
                known: tx.object_store(SYNC_STORE)?,
                dead: tx.object_store(DEAD_STORE)?,
                conflicts: tx.object_store(CONFLICT_STORE)?,
            };
            let key = item_key(collection, id);
            let open = stores.conflicts.get::<JsValue, JsValue, _>(key.clone()).primitive()?;
            let entry = stores.outbox.get::<JsValue, JsValue, _>(key.clone()).primitive()?;
            let known = stores.known.get::<JsValue, JsValue, _>(key).primitive()?;
            let local = tx.object_store(collection)?.get::<JsValue, _, _>(id).primitive()?;
            let mut report = SyncApplied::default();
            let Some(open): Option<Conflict> = decode(open.await?)? else {
                return Ok((ResolveOutcome::NotOpen, report));
            };
            if open.remote_revision != seen.remote_revision {
                // A newer server version arrived since the user looked: decide on that one.
                return Ok((ResolveOutcome::RemoteChanged, report));
            }
            let local = match local.await? {
                Some(value) if !value.is_undefined() => {
                    Some(from_stored(&value).map_err(|e| super::data_error(e.to_string()))?)
                }
                _ => None,
            };
            let state = ItemState {
                entry: decode(entry.await?)?,
                known: decode(known.await?)?,
                local,
                conflict: Some(open.clone()),
            };
            let plan = plan_resolution(&open, &state, resolution, stamp, keep_base);
            report.add(collection, id, &plan);
            carry_out(&tx, &stores, (collection.to_owned(), id.to_owned()), plan)?;
            tx.commit().await?;
            Ok::<_, IdbError>((ResolveOutcome::Resolved, report))
        }
        .await;
        result.map_err(|e| self.connection.classify(e))
    }
}
