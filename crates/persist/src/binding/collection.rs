//! [`Collection`]: a keyed set of items with structural sharing, so the listener can tell what
//! changed between two store states without looking at unchanged items.

use std::borrow::Borrow;
use std::fmt;
use std::rc::Rc;

use imbl::shared_ptr::RcK;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An item as the map holds it: shared, and compared by pointer before by value, so unchanged
/// items (the same `Rc`) are never compared field by field.
struct Item<V>(Rc<V>);

impl<V> Clone for Item<V> {
    fn clone(&self) -> Self {
        Item(Rc::clone(&self.0))
    }
}

impl<V: PartialEq> PartialEq for Item<V> {
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.0, &other.0) || self.0 == other.0
    }
}

/// Item ids: shared strings, cheap to copy when the map copies a node.
type Id = Rc<str>;
type Map<V> = imbl::GenericOrdMap<Id, Item<V>, RcK>;

/// Items keyed by id: a persistent (structurally shared) ordered map.
///
/// Put a `Collection` in your yewdux store for every persisted collection. Cloning is O(1);
/// inserting, updating or removing one item is O(log n) and shares every untouched node with the
/// previous version. So comparing two versions (`==`, and the persistence listener's diff) skips
/// all shared nodes and costs O(changed items × log n), not O(n), and only changed items are ever
/// serialised.
///
/// ```
/// use yewdux_persist::Collection;
///
/// let mut files: Collection<String> = Collection::new();
/// files.insert("a.rs", "fn main() {}".to_string());
/// let before = files.clone();
/// files.insert("b.rs", String::new());
/// assert_eq!(before.len(), 1);
/// assert_eq!(files.len(), 2);
/// assert!(files.get("a.rs").is_some());
/// ```
pub struct Collection<V> {
    items: Map<V>,
}

impl<V> Collection<V> {
    /// An empty collection.
    pub fn new() -> Self {
        Self { items: Map::default() }
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// `true` when there are no items.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The item with this id.
    pub fn get(&self, id: &str) -> Option<&V> {
        self.items.get(id).map(|item| &*item.0)
    }

    /// The item with this id, as the shared `Rc`.
    pub fn get_rc(&self, id: &str) -> Option<&Rc<V>> {
        self.items.get(id).map(|item| &item.0)
    }

    /// `true` when an item has this id.
    pub fn contains(&self, id: &str) -> bool {
        self.items.contains_key(id)
    }

    /// Items in id order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &V)> + '_ {
        self.items.iter().map(|(id, item)| (id.borrow(), &*item.0))
    }

    /// Ids in order.
    pub fn ids(&self) -> impl Iterator<Item = &str> + '_ {
        self.items.keys().map(|id| id.borrow())
    }

    /// Values in id order.
    pub fn values(&self) -> impl Iterator<Item = &V> + '_ {
        self.items.values().map(|item| &*item.0)
    }

    /// Inserts or replaces an item; returns the previous one.
    pub fn insert(&mut self, id: impl Into<String>, item: V) -> Option<Rc<V>> {
        self.insert_rc(id, Rc::new(item))
    }

    /// Inserts or replaces an item that is already shared.
    pub fn insert_rc(&mut self, id: impl Into<String>, item: Rc<V>) -> Option<Rc<V>> {
        let id: Id = Rc::from(id.into());
        self.items.insert(id, Item(item)).map(|old| old.0)
    }

    /// Removes an item; returns it.
    pub fn remove(&mut self, id: &str) -> Option<Rc<V>> {
        self.items.remove(id).map(|old| old.0)
    }

    /// Changes one item in place (cloning it only if it is shared). Returns `false` when there is
    /// no item with this id.
    pub fn update(&mut self, id: &str, change: impl FnOnce(&mut V)) -> bool
    where
        V: Clone,
    {
        match self.items.get_mut(id) {
            Some(item) => {
                change(Rc::make_mut(&mut item.0));
                true
            }
            None => false,
        }
    }

    /// Removes every item.
    pub fn clear(&mut self) {
        if !self.items.is_empty() {
            self.items = Map::default();
        }
    }

    /// `true` when both are the same version (so nothing can differ). O(1).
    pub fn ptr_eq(&self, other: &Self) -> bool {
        self.items.ptr_eq(&other.items)
    }
}

impl<V> Clone for Collection<V> {
    fn clone(&self) -> Self {
        Self { items: self.items.clone() }
    }
}

impl<V> Default for Collection<V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V: PartialEq> PartialEq for Collection<V> {
    /// O(changed items × log n) between versions that share structure.
    fn eq(&self, other: &Self) -> bool {
        self.ptr_eq(other) || self.items == other.items
    }
}

impl<V: fmt::Debug> fmt::Debug for Collection<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<V, K: Into<String>> FromIterator<(K, V)> for Collection<V> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut collection = Self::new();
        for (id, item) in iter {
            collection.insert(id, item);
        }
        collection
    }
}

impl<V: Serialize> Serialize for Collection<V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for Collection<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let items = std::collections::BTreeMap::<String, V>::deserialize(deserializer)?;
        Ok(items.into_iter().collect())
    }
}

/// One difference between two versions of a collection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum ItemDiff<'a, V> {
    /// The item is new or changed.
    Upsert(&'a str, &'a V),
    /// The item is gone.
    Removed(&'a str),
}

/// Differences from `old` to `new`, in id order. Nodes the two versions share are skipped, so
/// the cost follows the number of changed items, not the size of the collection.
pub(super) fn diff<'a, V: PartialEq>(
    old: &'a Collection<V>,
    new: &'a Collection<V>,
    mut emit: impl FnMut(ItemDiff<'a, V>),
) {
    if old.ptr_eq(new) {
        return;
    }
    for change in old.items.diff(&new.items) {
        match change {
            imbl::ordmap::DiffItem::Add(id, item) => emit(ItemDiff::Upsert(id, &item.0)),
            imbl::ordmap::DiffItem::Update { new: (id, item), .. } => {
                emit(ItemDiff::Upsert(id, &item.0))
            }
            imbl::ordmap::DiffItem::Remove(id, _) => emit(ItemDiff::Removed(id)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    fn changes(old: &Collection<i32>, new: &Collection<i32>) -> Vec<String> {
        let mut out = Vec::new();
        diff(old, new, |change| match change {
            ItemDiff::Upsert(id, v) => out.push(format!("+{id}={v}")),
            ItemDiff::Removed(id) => out.push(format!("-{id}")),
        });
        out
    }

    #[test]
    fn diff_reports_inserts_updates_and_removals_in_id_order() {
        let old: Collection<i32> = [("a", 1), ("b", 2), ("c", 3)].into_iter().collect();
        let mut new = old.clone();
        new.insert("b", 20);
        new.remove("c");
        new.insert("d", 4);
        new.insert("0", 0);
        assert_eq!(changes(&old, &new), ["+0=0", "+b=20", "-c", "+d=4"]);
        assert_eq!(changes(&new, &new.clone()), Vec::<String>::new());
    }

    #[test]
    fn an_equal_value_in_a_new_rc_is_not_a_change() {
        let old: Collection<i32> = [("a", 1)].into_iter().collect();
        let mut new = old.clone();
        new.insert("a", 1);
        assert!(!new.ptr_eq(&old));
        assert!(changes(&old, &new).is_empty());
    }

    /// Counts `PartialEq` calls to prove unchanged items are compared by pointer only.
    #[derive(Debug)]
    struct Counted<'a>(i32, &'a Cell<usize>);
    impl PartialEq for Counted<'_> {
        fn eq(&self, other: &Self) -> bool {
            self.1.set(self.1.get() + 1);
            self.0 == other.0
        }
    }

    #[test]
    fn unchanged_items_are_never_compared_by_value() {
        let comparisons = Cell::new(0);
        let old: Collection<Counted<'_>> =
            (0..1_000).map(|i| (format!("{i:04}"), Counted(i, &comparisons))).collect();
        let mut new = old.clone();
        new.insert("0500", Counted(-1, &comparisons));
        let mut changed = Vec::new();
        diff(&old, &new, |change| changed.push(format!("{change:?}")));
        assert_eq!(changed.len(), 1);
        assert_eq!(comparisons.get(), 1, "only the replaced item is compared by value");
    }

    #[test]
    fn update_copies_on_write() {
        let mut a: Collection<Vec<i32>> = [("x", vec![1])].into_iter().collect();
        let b = a.clone();
        assert!(a.update("x", |v| v.push(2)));
        assert!(!a.update("missing", |v| v.push(3)));
        assert_eq!(a.get("x"), Some(&vec![1, 2]));
        assert_eq!(b.get("x"), Some(&vec![1]));
    }

    #[test]
    fn serde_is_a_plain_map() {
        let c: Collection<i32> = [("a", 1), ("b", 2)].into_iter().collect();
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(json, r#"{"a":1,"b":2}"#);
        let back: Collection<i32> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, c);
    }
}
