//! Conflicts waiting for the user: list them (with each item's current local value), resolve
//! one or many, change a collection's automatic strategy. A resolution is written locally in one
//! transaction (`LocalStore::resolve_conflict`), applied to the yewdux stores, announced to the
//! other tabs, and synced; the leader's status then shows the new open-conflict count in every
//! tab.

use std::collections::BTreeMap;
use std::future::Future;
use std::rc::Rc;

use persist_engine::{CollectionConfigPatch, ConfigError, ConflictStrategy};

use super::handle::Persistence;
use super::{clock, leader};
use crate::error::Error;
use crate::local::{Conflict, Resolution, ResolveOutcome};

impl Persistence {
    /// The conflicts waiting for the user, oldest change first. Each one's `local` is the item's
    /// value now (edits made since the conflict was found included).
    ///
    /// # Errors
    /// [`Error::Storage`] when the local store cannot be read.
    pub fn conflicts(&self) -> impl Future<Output = Result<Vec<Conflict>, Error>> + 'static {
        let store = self.inner.store.borrow().clone();
        async move {
            let mut open = store.conflicts().await?;
            let mut by_collection: BTreeMap<String, Vec<usize>> = BTreeMap::new();
            for (index, conflict) in open.iter().enumerate() {
                by_collection.entry(conflict.collection.clone()).or_default().push(index);
            }
            for (collection, indices) in by_collection {
                let ids: Vec<String> = indices.iter().map(|&i| open[i].id.clone()).collect();
                let values = store.load_items(&collection, &ids).await?;
                for (index, value) in indices.into_iter().zip(values) {
                    open[index].local = value.and_then(|json| serde_json::from_str(&json).ok());
                }
            }
            open.sort_by(|a, b| a.local_hlc.cmp(&b.local_hlc));
            Ok(open)
        }
    }

    /// Resolves `conflict` (as read from [`conflicts`](Self::conflicts)): the chosen value is
    /// written here and pushed on top of the server's version the conflict showed, so it is
    /// accepted and the conflict does not come back. Nothing is written when the item's
    /// conflict was resolved meanwhile ([`ResolveOutcome::NotOpen`]) or a newer server version
    /// arrived since it was read ([`ResolveOutcome::RemoteChanged`]: read it again, so nothing
    /// the user has not seen is overwritten).
    ///
    /// # Errors
    /// [`Error::Storage`] when the local store failed; nothing changed then.
    pub fn resolve_conflict(
        &self,
        conflict: &Conflict,
        resolution: Resolution,
    ) -> impl Future<Output = Result<ResolveOutcome, Error>> + 'static {
        let handle = self.clone();
        let conflict = conflict.clone();
        async move {
            let outcome = handle.resolve_one(&conflict, &resolution).await?;
            handle.after_resolving(usize::from(outcome == ResolveOutcome::Resolved)).await;
            Ok(outcome)
        }
    }

    /// Resolves every open conflict (of `collection`, or of all collections with `None`) with
    /// the resolution `choose` picks for each. Resolves with how many were resolved (a conflict
    /// whose server version changed while this ran is left open).
    ///
    /// # Errors
    /// [`Error::Storage`] when the local store failed; the conflicts resolved before stay
    /// resolved.
    pub fn resolve_conflicts(
        &self,
        collection: Option<&str>,
        choose: impl Fn(&Conflict) -> Resolution + 'static,
    ) -> impl Future<Output = Result<usize, Error>> + 'static {
        let handle = self.clone();
        let collection = collection.map(str::to_owned);
        async move {
            let open = handle.conflicts().await?;
            let mut resolved = 0;
            let mut failure = None;
            for conflict in open {
                if collection.as_ref().is_some_and(|c| *c != conflict.collection) {
                    continue;
                }
                let resolution = choose(&conflict);
                match handle.resolve_one(&conflict, &resolution).await {
                    Ok(outcome) => resolved += usize::from(outcome == ResolveOutcome::Resolved),
                    Err(error) => {
                        failure = Some(error);
                        break;
                    }
                }
            }
            handle.after_resolving(resolved).await;
            failure.map_or(Ok(resolved), Err)
        }
    }

    /// The strategy deciding `collection`'s conflicts now.
    pub fn conflict_strategy(&self, collection: &str) -> ConflictStrategy {
        self.collection_config(collection).conflict
    }

    /// Changes how `collection`'s future conflicts are decided (open conflicts stay open), in
    /// every tab of this database (the leader tab decides conflicts). Kept for this session: the
    /// app's [`PersistOptions`](crate::PersistOptions) set the strategies at each start. A
    /// collection switched to a strategy that merges has no merge base for items synced before;
    /// their first conflict merges against an empty base (fields changed on both sides then
    /// conflict).
    ///
    /// # Errors
    /// [`ConfigError`] as for [`configure_collection`](Self::configure_collection).
    pub fn set_conflict_strategy(
        &self,
        collection: &str,
        strategy: ConflictStrategy,
    ) -> Result<(), ConfigError> {
        let patch = CollectionConfigPatch { conflict: Some(strategy), ..Default::default() };
        self.configure_collection(collection, patch)?;
        leader::announce_strategy(&self.inner, collection, strategy);
        self.inner.schedule_notify();
        Ok(())
    }

    /// Resolves one conflict locally and brings the result into the yewdux stores.
    async fn resolve_one(
        &self,
        conflict: &Conflict,
        resolution: &Resolution,
    ) -> Result<ResolveOutcome, Error> {
        // Local edits still queued go first, so "keep local" keeps the newest value.
        self.flush().await?;
        let collection = conflict.collection.as_str();
        // The resolution is a new change, after both versions it decides between on the clock.
        let stamp = {
            let mut engine = self.inner.engine.borrow_mut();
            let seen =
                conflict.remote_hlc.clone().unwrap_or_else(|| persist_protocol::Hlc::zero(""));
            engine.observe_hlc(clock::now(), &seen);
            engine.observe_hlc(clock::now(), &conflict.local_hlc);
            engine.hlc().clone()
        };
        let keep_base = self.inner.sync_rules().keeps_base(collection);
        let store = self.inner.store.borrow().clone();
        let (outcome, applied) =
            store.resolve_conflict(conflict, resolution, &stamp, keep_base).await?;
        self.inner.apply_remote_changes(&applied);
        Ok(outcome)
    }

    /// After resolutions: recount, and sync them. The sync runs in the leader tab, whose status
    /// (with the new open-conflict count) every tab adopts; the values reached the other tabs
    /// with `apply_remote_changes`.
    async fn after_resolving(&self, resolved: usize) {
        let inner = Rc::clone(&self.inner);
        inner.refresh_sync_bookkeeping().await;
        if resolved > 0 && inner.sync.is_some() {
            drop(self.sync_now());
        }
    }
}
