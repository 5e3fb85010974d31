//! How a yewdux store says which parts of it are persisted: the [`Persist`] trait and [`Parts`]
//! (keyed collections and singleton values), and the type-erased [`Part`] the listener and the
//! loader work with.

use std::fmt;
use std::rc::Rc;
use std::sync::Arc;

use persist_engine::{Change, ItemKey};
use serde::de::DeserializeOwned;
use serde::Serialize;
use yewdux::store::Store;

use super::collection::{diff, Collection, ItemDiff};
use crate::local::StoredItem;
use crate::runtime::ItemError;

/// The id under which a [`Parts::singleton`] value is stored in its collection.
pub const SINGLETON_ID: &str = "value";

/// A yewdux store whose parts are persisted.
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use yewdux::prelude::*;
/// use yewdux_persist::{Collection, Parts, Persist};
///
/// #[derive(Clone, PartialEq, Serialize, Deserialize)]
/// struct File { name: String, content: String }
///
/// #[derive(Clone, PartialEq, Default, Serialize, Deserialize)]
/// struct Settings { theme: String }
///
/// #[derive(Clone, PartialEq, Default)]
/// struct Workspace { files: Collection<File>, settings: Settings, selected: Option<String> }
///
/// impl Persist for Workspace {
///     fn parts(parts: &mut Parts<Self>) {
///         parts
///             .collection("files", |s| &s.files, |s| &mut s.files)
///             .singleton("settings", |s| &s.settings, |s| &mut s.settings);
///         // `selected` is not listed: it is not persisted.
///     }
/// }
///
/// impl Store for Workspace {
///     fn new(cx: &yewdux::Context) -> Self {
///         yewdux_persist::install(cx, Self::default())
///     }
///     fn should_notify(&self, old: &Self) -> bool {
///         self != old
///     }
/// }
/// ```
pub trait Persist: Store + Clone {
    /// Lists the persisted parts of this store.
    fn parts(parts: &mut Parts<Self>);
}

/// The parts `S` lists.
pub(super) fn parts_of<S: Persist>() -> Parts<S> {
    let mut parts = Parts::new();
    S::parts(&mut parts);
    parts
}

/// The persisted parts of a store `S`: keyed collections and singleton values, each stored in its
/// own collection (IndexedDB object store).
pub struct Parts<S> {
    pub(super) list: Vec<Rc<dyn Part<S>>>,
}

impl<S: 'static> fmt::Debug for Parts<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.list.iter().map(|part| part.collection())).finish()
    }
}

impl<S: 'static> Parts<S> {
    pub(super) fn new() -> Self {
        Self { list: Vec::new() }
    }

    /// Persists a [`Collection`] field as the collection `name`, one record per item.
    pub fn collection<V>(
        &mut self,
        name: &str,
        get: fn(&S) -> &Collection<V>,
        get_mut: fn(&mut S) -> &mut Collection<V>,
    ) -> &mut Self
    where
        V: Serialize + DeserializeOwned + PartialEq + 'static,
    {
        self.list.push(Rc::new(CollectionPart { name: name.to_owned(), get, get_mut }));
        self
    }

    /// Persists one value as the single record [`SINGLETON_ID`] of the collection `name`.
    pub fn singleton<V>(
        &mut self,
        name: &str,
        get: fn(&S) -> &V,
        get_mut: fn(&mut S) -> &mut V,
    ) -> &mut Self
    where
        V: Serialize + DeserializeOwned + PartialEq + 'static,
    {
        self.list.push(Rc::new(SingletonPart { name: name.to_owned(), get, get_mut }));
        self
    }

    /// The collection names, in declaration order.
    pub fn collections(&self) -> Vec<String> {
        self.list.iter().map(|part| part.collection().to_owned()).collect()
    }
}

/// What the listener gets from a part: changes to enqueue, or errors.
pub(super) enum PartChange<'a> {
    Change { id: &'a str, change: Change },
    Error(ItemError),
}

/// Item changes ready to enqueue, and the items that could not be serialised.
#[derive(Default)]
pub(super) struct Collected {
    pub(super) changes: Vec<(ItemKey, Change)>,
    pub(super) errors: Vec<ItemError>,
}

impl Collected {
    /// A sink for the changes of `part`'s collection (pass it to `diff` or `snapshot`).
    pub(super) fn sink<'s, 'a, S: 'static>(
        &'s mut self,
        part: &dyn Part<S>,
    ) -> impl FnMut(PartChange<'a>) + 's {
        let collection: Arc<str> = Arc::from(part.collection());
        move |change| match change {
            PartChange::Change { id, change } => {
                self.changes.push((ItemKey::new(Arc::clone(&collection), id), change));
            }
            PartChange::Error(error) => self.errors.push(error),
        }
    }
}

/// One persisted part of a store, type-erased.
pub(super) trait Part<S>: 'static {
    fn collection(&self) -> &str;
    /// `true` for a keyed collection (which is saved whole on first run).
    fn is_collection(&self) -> bool;
    /// The changes from `old` to `new`, serialising only changed items.
    fn diff<'a>(&self, old: &'a S, new: &'a S, emit: &mut dyn FnMut(PartChange<'a>));
    /// Every current item as a put.
    fn snapshot<'a>(&self, state: &'a S, emit: &mut dyn FnMut(PartChange<'a>));
    /// Replaces the part with stored items; unreadable items are left out and reported.
    fn load(&self, state: &mut S, items: &[StoredItem]) -> Vec<ItemError>;
    /// Applies changes written elsewhere (another tab): `Some(json)` is a put, `None` a delete.
    fn apply(&self, state: &mut S, changes: &[(String, Option<String>)]) -> Vec<ItemError>;
}

struct CollectionPart<S, V> {
    name: String,
    get: fn(&S) -> &Collection<V>,
    get_mut: fn(&mut S) -> &mut Collection<V>,
}

fn serialise<'a, V: Serialize>(collection: &str, id: &'a str, value: &V) -> PartChange<'a> {
    match serde_json::to_string(value) {
        Ok(json) => PartChange::Change { id, change: Change::put(json) },
        Err(error) => PartChange::Error(ItemError {
            collection: collection.to_owned(),
            id: id.to_owned(),
            message: format!("cannot serialise: {error}"),
        }),
    }
}

fn deserialise<V: DeserializeOwned>(
    collection: &str,
    id: &str,
    json: &str,
) -> Result<V, ItemError> {
    serde_json::from_str(json).map_err(|error| ItemError {
        collection: collection.to_owned(),
        id: id.to_owned(),
        message: format!("cannot read stored value: {error}"),
    })
}

impl<S, V> Part<S> for CollectionPart<S, V>
where
    S: 'static,
    V: Serialize + DeserializeOwned + PartialEq + 'static,
{
    fn collection(&self) -> &str {
        &self.name
    }

    fn is_collection(&self) -> bool {
        true
    }

    fn diff<'a>(&self, old: &'a S, new: &'a S, emit: &mut dyn FnMut(PartChange<'a>)) {
        diff((self.get)(old), (self.get)(new), |change| match change {
            ItemDiff::Upsert(id, item) => emit(serialise(&self.name, id, item)),
            ItemDiff::Removed(id) => emit(PartChange::Change { id, change: Change::Delete }),
        });
    }

    fn snapshot<'a>(&self, state: &'a S, emit: &mut dyn FnMut(PartChange<'a>)) {
        for (id, item) in (self.get)(state).iter() {
            emit(serialise(&self.name, id, item));
        }
    }

    fn load(&self, state: &mut S, items: &[StoredItem]) -> Vec<ItemError> {
        let mut errors = Vec::new();
        let mut loaded = Collection::new();
        for item in items {
            match deserialise::<V>(&self.name, &item.id, &item.json) {
                Ok(value) => {
                    loaded.insert(item.id.clone(), value);
                }
                Err(error) => errors.push(error),
            }
        }
        *(self.get_mut)(state) = loaded;
        errors
    }

    fn apply(&self, state: &mut S, changes: &[(String, Option<String>)]) -> Vec<ItemError> {
        let mut errors = Vec::new();
        let target = (self.get_mut)(state);
        for (id, json) in changes {
            match json {
                Some(json) => match deserialise::<V>(&self.name, id, json) {
                    Ok(value) => {
                        if target.get(id) != Some(&value) {
                            target.insert(id.clone(), value);
                        }
                    }
                    Err(error) => errors.push(error),
                },
                None => {
                    target.remove(id);
                }
            }
        }
        errors
    }
}

struct SingletonPart<S, V> {
    name: String,
    get: fn(&S) -> &V,
    get_mut: fn(&mut S) -> &mut V,
}

impl<S, V> Part<S> for SingletonPart<S, V>
where
    S: 'static,
    V: Serialize + DeserializeOwned + PartialEq + 'static,
{
    fn collection(&self) -> &str {
        &self.name
    }

    fn is_collection(&self) -> bool {
        false
    }

    fn diff<'a>(&self, old: &'a S, new: &'a S, emit: &mut dyn FnMut(PartChange<'a>)) {
        let (old, new) = ((self.get)(old), (self.get)(new));
        if !std::ptr::eq(old, new) && old != new {
            emit(serialise(&self.name, SINGLETON_ID, new));
        }
    }

    fn snapshot<'a>(&self, state: &'a S, emit: &mut dyn FnMut(PartChange<'a>)) {
        emit(serialise(&self.name, SINGLETON_ID, (self.get)(state)));
    }

    fn load(&self, state: &mut S, items: &[StoredItem]) -> Vec<ItemError> {
        // No stored value: keep the default (it is not saved until it changes).
        let Some(item) = items.iter().find(|item| item.id == SINGLETON_ID) else {
            return Vec::new();
        };
        match deserialise::<V>(&self.name, &item.id, &item.json) {
            Ok(value) => {
                *(self.get_mut)(state) = value;
                Vec::new()
            }
            Err(error) => vec![error],
        }
    }

    fn apply(&self, state: &mut S, changes: &[(String, Option<String>)]) -> Vec<ItemError> {
        let mut errors = Vec::new();
        for (id, json) in changes {
            if id != SINGLETON_ID {
                continue;
            }
            if let Some(json) = json {
                match deserialise::<V>(&self.name, id, json) {
                    Ok(value) => *(self.get_mut)(state) = value,
                    Err(error) => errors.push(error),
                }
            }
        }
        errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Clone, PartialEq, Default)]
    struct State {
        files: Collection<File>,
        theme: String,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct File {
        name: String,
    }

    impl Store for State {
        fn new(_: &yewdux::Context) -> Self {
            Self::default()
        }
        fn should_notify(&self, old: &Self) -> bool {
            self != old
        }
    }

    impl Persist for State {
        fn parts(parts: &mut Parts<Self>) {
            parts.collection("files", |s| &s.files, |s| &mut s.files).singleton(
                "theme",
                |s| &s.theme,
                |s| &mut s.theme,
            );
        }
    }

    fn parts() -> Parts<State> {
        parts_of::<State>()
    }

    fn changes(old: &State, new: &State) -> Vec<String> {
        let mut out = Vec::new();
        for part in &parts().list {
            part.diff(old, new, &mut |change| match change {
                PartChange::Change { id, change: Change::Put(json) } => {
                    out.push(format!("{}:{id}={json}", part.collection()))
                }
                PartChange::Change { id, change: Change::Delete } => {
                    out.push(format!("{}:{id} deleted", part.collection()))
                }
                PartChange::Error(error) => out.push(error.to_string()),
            });
        }
        out
    }

    #[test]
    fn diff_serialises_only_changed_items_of_each_part() {
        let mut old = State::default();
        old.files.insert("a", File { name: "a".into() });
        old.files.insert("b", File { name: "b".into() });
        let mut new = old.clone();
        new.files.insert("b", File { name: "B".into() });
        new.files.remove("a");
        new.theme = "dark".into();
        assert_eq!(
            changes(&old, &new),
            [r#"files:a deleted"#, r#"files:b={"name":"B"}"#, r#"theme:value="dark""#]
        );
        assert!(changes(&new, &new.clone()).is_empty());
    }

    #[test]
    fn load_keeps_readable_items_and_reports_the_rest() {
        let mut state = State::default();
        let items = [
            StoredItem { id: "a".into(), json: r#"{"name":"a"}"#.into() },
            StoredItem { id: "bad".into(), json: r#"{"title":1}"#.into() },
        ];
        let errors = parts().list[0].load(&mut state, &items);
        assert_eq!(state.files.len(), 1);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].id, "bad");
        assert!(errors[0].message.contains("missing field `name`"), "{}", errors[0].message);
    }

    #[test]
    fn singleton_without_a_stored_value_keeps_its_default() {
        let mut state = State { theme: "light".into(), ..State::default() };
        assert!(parts().list[1].load(&mut state, &[]).is_empty());
        assert_eq!(state.theme, "light");
        let stored = [StoredItem { id: SINGLETON_ID.into(), json: r#""dark""#.into() }];
        parts().list[1].load(&mut state, &stored);
        assert_eq!(state.theme, "dark");
    }

    #[test]
    fn apply_puts_and_deletes_changes_from_elsewhere() {
        let mut state = State::default();
        state.files.insert("a", File { name: "a".into() });
        let changes =
            [("a".to_owned(), None), ("c".to_owned(), Some(r#"{"name":"c"}"#.to_owned()))];
        assert!(parts().list[0].apply(&mut state, &changes).is_empty());
        assert_eq!(state.files.ids().collect::<Vec<_>>(), ["c"]);
    }
}
